//! The model's pieces on every backend built: attention, GELU (forward + backward), one
//! Mixture-of-Transformers block (forward, and forward + backward), and a whole tiny-preset
//! training step (batch 32 + 32).
//!
//! `cargo bench -p benchmarks --bench model` (add `--features tch` etc. for more backends).
//! Throughput is in FLOPs: criterion's "elem/s" reads as FLOP/s (counts in `benchmarks::flops`).

use std::hint::black_box;

use benchmarks::race::{self, RaceInputs};
use benchmarks::{backends, bench_name, sync};
use burn::prelude::*;
use burn::tensor::Distribution;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use umm_model::{Block, UmmConfig, attention};

/// The generation pass of a training step: 32 rows of 16 text + 64 image tokens.
const B: usize = 32;
const TEXT: usize = 16;
const SEQ: usize = TEXT + 64;

fn pieces(c: &mut Criterion) {
    let cfg = UmmConfig::tiny();
    let d = cfg.d_model;
    let mut group = c.benchmark_group("model");
    group.sample_size(20);
    for (kind, dev) in backends() {
        let name = bench_name(kind);
        let bias = Tensor::<4>::zeros([B, 1, SEQ, SEQ], &dev);
        // Attention alone: scores and weighted sum, 4 b s^2 d.
        let qkv = Tensor::<3>::random([B, SEQ, 3 * d], Distribution::Normal(0.0, 1.0), &dev);
        group.throughput(Throughput::Elements((4 * B * SEQ * SEQ * d) as u64));
        group.bench_function(format!("attention/{name}"), |b| {
            b.iter(|| {
                let out = attention(qkv.clone(), cfg.n_heads, bias.clone());
                sync(&dev);
                black_box(out)
            })
        });
        // GELU forward and backward over one block's MLP activations, [b s, r d] (counted as
        // one FLOP per element each way): the op `--features fast-gelu` replaces on flex.
        let ad = dev.clone().autodiff();
        let h = Tensor::<2>::random(
            [B * SEQ, cfg.mlp_ratio * d],
            Distribution::Normal(0.0, 1.0),
            &ad,
        );
        group.throughput(Throughput::Elements(
            (2 * B * SEQ * cfg.mlp_ratio * d) as u64,
        ));
        group.bench_function(format!("gelu_forward_backward/{name}"), |b| {
            b.iter(|| {
                let h = h.clone().require_grad();
                let grads = umm_model::fused::gelu(h.clone()).sum().backward();
                let g = h.grad(&grads);
                sync(&ad);
                black_box(g)
            })
        });
        // One block: projections (2 (4 + 2 r) d^2 per token) plus attention.
        let r = cfg.mlp_ratio;
        let block_flops = B * SEQ * 2 * (4 + 2 * r) * d * d + 4 * B * SEQ * SEQ * d;
        let block = Block::init(&cfg, &dev);
        let x = Tensor::<3>::random([B, SEQ, d], Distribution::Normal(0.0, 1.0), &dev);
        group.throughput(Throughput::Elements(block_flops as u64));
        group.bench_function(format!("block_forward/{name}"), |b| {
            b.iter(|| {
                let out = block.forward(x.clone(), TEXT, bias.clone());
                sync(&dev);
                black_box(out)
            })
        });
        let block = Block::init(&cfg, &ad);
        let x = Tensor::<3>::random([B, SEQ, d], Distribution::Normal(0.0, 1.0), &ad);
        let bias = Tensor::<4>::zeros([B, 1, SEQ, SEQ], &ad);
        group.throughput(Throughput::Elements(3 * block_flops as u64));
        group.bench_function(format!("block_forward_backward/{name}"), |b| {
            b.iter(|| {
                let grads = block
                    .forward(x.clone(), TEXT, bias.clone())
                    .square()
                    .mean()
                    .backward();
                sync(&ad);
                black_box(grads)
            })
        });
    }
    group.finish();
}

fn train_step(c: &mut Criterion) {
    let cfg = UmmConfig::tiny();
    let mut group = c.benchmark_group("train_step");
    // About 0.25 to 0.7 s a step on 2 CPU cores: ten samples.
    group
        .sample_size(10)
        .measurement_time(std::time::Duration::from_secs(10));
    for (kind, dev) in backends() {
        let dev = dev.autodiff();
        let inputs = RaceInputs::new(&cfg, 32, &dev).unwrap();
        let mut model = Some(race::fresh(&cfg, &dev));
        let mut optim = race::optimizer();
        group.throughput(Throughput::Elements(inputs.train_flops(&cfg) as u64));
        group.bench_function(format!("tiny_batch32/{}", bench_name(kind)), |b| {
            b.iter(|| {
                let (m, loss) = race::step(model.take().unwrap(), &mut optim, &inputs);
                sync(&dev);
                model = Some(m);
                black_box(loss)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, pieces, train_step);
criterion_main!(benches);
