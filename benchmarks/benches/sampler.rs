//! The sampler on every backend built: one guided Euler step for a batch of 32 images (two
//! forward passes), and whole 32x32 images (20 guided Euler steps, 32 images a batch).
//!
//! `cargo bench -p benchmarks --bench sampler`. Throughput is in FLOPs ("elem/s" reads as
//! FLOP/s; counts in `benchmarks::flops`).

use std::hint::black_box;

use benchmarks::race::{self, RaceInputs};
use benchmarks::{backends, sync};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use umm_model::UmmConfig;

const STEPS: usize = 20;
const CFG_SCALE: f32 = 2.0;

fn sampler(c: &mut Criterion) {
    let cfg = UmmConfig::tiny();
    let mut group = c.benchmark_group("sampler");
    group
        .sample_size(10)
        .measurement_time(std::time::Duration::from_secs(10));
    for (kind, dev) in backends() {
        let name = benchmarks::bench_name(kind);
        let inputs = RaceInputs::new(&cfg, 32, &dev).unwrap();
        let model = race::fresh(&cfg, &dev);
        group.throughput(Throughput::Elements(inputs.sample_flops(&cfg, 1) as u64));
        group.bench_function(format!("guided_step_batch32/{name}"), |b| {
            b.iter(|| {
                let v =
                    race::guided_velocity(&model, &inputs, inputs.noise.clone(), 0.5, CFG_SCALE);
                sync(&dev);
                black_box(v)
            })
        });
        group.throughput(Throughput::Elements(inputs.sample_flops(&cfg, STEPS) as u64));
        group.bench_function(format!("images_32x32_batch32_{STEPS}steps/{name}"), |b| {
            b.iter(|| black_box(race::sample(&model, &inputs, STEPS, CFG_SCALE)))
        });
    }
    group.finish();
}

criterion_group!(benches, sampler);
criterion_main!(benches);
