//! One pretraining step of the tiny preset (batch 32 generation + 32 understanding), on the
//! default CPU backend: data drawing, forward, backward and the AdamW update.
//!
//! `cargo bench -p trainer --bench train_step` (on the project's 2-core CPU: about 0.71 s a step,
//! criterion's interval [0.696, 0.727] s)

use std::hint::black_box;

use burn::optim::{AdamWConfig, GradientsParams};
use burn::prelude::*;
use compworld::Rng;
use criterion::{Criterion, criterion_group, criterion_main};
use trainer::data::{DataStream, MixConfig, gen_batch, und_batch};
use trainer::pretrain::{gen_loss, init_model, und_loss};
use umm_model::{UmmConfig, WordTokenizer};

fn train_step(c: &mut Criterion) {
    let device = Device::flex().autodiff();
    let cfg = UmmConfig::tiny();
    let tok = WordTokenizer::compworld();
    let mut stream = DataStream::new(&MixConfig::default(), cfg.resolution, Rng::new(1))
        .unwrap()
        .with_max_text_len(cfg.max_text_len);
    let mut model = Some(init_model(&cfg, 0, &device));
    let mut optim = AdamWConfig::new().init();
    let mut rng = Rng::new(2);
    let mut group = c.benchmark_group("pretrain");
    // About 0.7 s a step here: ten samples need about 8 s.
    group
        .sample_size(10)
        .measurement_time(std::time::Duration::from_secs(10));
    group.bench_function("tiny_step_batch32", |b| {
        b.iter(|| {
            let m = model.take().unwrap();
            let ub = und_batch(&tok, &cfg, &stream.und_examples(32), &device).unwrap();
            let gb = gen_batch(&tok, &cfg, &stream.gen_examples(32), &mut rng, &device).unwrap();
            let loss =
                und_loss(&m, &ub) + gen_loss(&m, &gb, trainer::pretrain::DEFAULT_LOW_T_FLOOR);
            let grads = GradientsParams::from_grads(loss.backward(), &m);
            model = Some(black_box(optim.step(1e-3, m, grads)));
        })
    });
    group.finish();
}

criterion_group!(benches, train_step);
criterion_main!(benches);
