//! The self-reward of one image on the shipped tiny model: region proposals, up to 10 region
//! questions (greedy names), the global question, the reward map and its token weights. One
//! image at a time, and a batch of 32 (per image), on the default CPU backend.
//!
//! `cargo bench -p reward-global --bench self_reward` (on the project's 2-core CPU, flex backend:
//! one image 100 ms, criterion's interval [98.6, 101.8] ms, about 10 images a second; a batch of
//! 32 takes 4.28 s, 7.5 images a second: greedy naming re-reads every padded row at each word)

use std::hint::black_box;

use burn::prelude::*;
use compworld::{Prompt, Rng, render, sample_scene};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use reward_global::self_rewards;
use umm_model::{WordTokenizer, checkpoint};

fn bench(c: &mut Criterion) {
    let dev = Device::flex();
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../datasets/checkpoints/base-tiny.safetensors");
    let (model, meta) = checkpoint::load(&path, &dev).unwrap();
    let cfg = meta.config;
    let tok = WordTokenizer::compworld();
    let mut rng = Rng::new(5);
    let prompts = [
        "a red circle and a blue square",
        "two striped green triangles",
        "a yellow diamond on the left of a pink cross",
        "three orange circles",
    ];
    let images: Vec<_> = (0..32)
        .map(|i| {
            let p = Prompt::parse(prompts[i % prompts.len()]).unwrap();
            render(
                &sample_scene(&p.meaning, &p.text, &mut rng).unwrap(),
                cfg.resolution,
            )
        })
        .collect();
    let items: Vec<(&compworld::Image, &str)> = images
        .iter()
        .enumerate()
        .map(|(i, img)| (img, prompts[i % prompts.len()]))
        .collect();
    let rc = reward_global::RewardConfig::default();
    let mut group = c.benchmark_group("self_reward");
    group.sample_size(10);
    group.throughput(Throughput::Elements(1));
    group.bench_function("one_image", |b| {
        b.iter(|| black_box(self_rewards(&model, &cfg, &tok, &items[..1], &rc, &dev)))
    });
    group.throughput(Throughput::Elements(32));
    group.bench_function("batch_of_32", |b| {
        b.iter(|| black_box(self_rewards(&model, &cfg, &tok, &items, &rc, &dev)))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
