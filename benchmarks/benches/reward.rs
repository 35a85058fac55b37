//! The host-side parts of the self-reward (plain Rust, no tensor backend): the region
//! proposer on rendered 32x32 scenes, and the reward map built from ten scored boxes with its
//! downsampling to one weight per generation token.
//!
//! `cargo bench -p benchmarks --bench reward`. Throughput is in images.

use std::hint::black_box;

use compworld::{Prompt, Rng, render, sample_scene};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use reward_local::{
    MapConfig, MapMode, ProposerConfig, ScoredBox, propose, reward_map, token_weights,
};

const SIDE: usize = 32;
const PATCH: usize = 4;

fn reward(c: &mut Criterion) {
    let mut rng = Rng::new(11);
    let prompts = [
        "a red circle and a blue square",
        "two striped green triangles",
        "a yellow diamond on the left of a pink cross",
        "three orange circles",
    ];
    let images: Vec<_> = (0..32)
        .map(|i| {
            let p = Prompt::parse(prompts[i % prompts.len()]).unwrap();
            render(&sample_scene(&p.meaning, &p.text, &mut rng).unwrap(), SIDE)
        })
        .collect();
    let mut group = c.benchmark_group("reward");
    group.throughput(Throughput::Elements(images.len() as u64));
    let pc = ProposerConfig::default();
    group.bench_function("propose_32_images/cpu-native", |b| {
        b.iter(|| {
            for img in &images {
                black_box(propose(img, &pc));
            }
        })
    });
    // Ten overlapping boxes with scores of both signs.
    let boxes: Vec<ScoredBox> = (0..10)
        .map(|i| {
            let x = (i * 3) as f32;
            ScoredBox {
                bbox: [x, x / 2.0, (x + 9.0).min(32.0), (x / 2.0 + 12.0).min(32.0)],
                score: if i % 3 == 0 {
                    -0.6
                } else {
                    0.4 + 0.05 * i as f32
                },
            }
        })
        .collect();
    for mode in [MapMode::Unit, MapMode::Signed] {
        let mc = MapConfig {
            mode,
            ..MapConfig::default()
        };
        group.bench_function(
            format!("map_and_token_weights_32_images_{mode:?}/cpu-native"),
            |b| {
                b.iter(|| {
                    for _ in 0..32 {
                        let map = reward_map(SIDE, SIDE, 0.7, &boxes, &mc);
                        black_box(token_weights(&map, SIDE, SIDE, PATCH));
                    }
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, reward);
criterion_main!(benches);
