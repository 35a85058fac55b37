//! Extra backends give the default CPU backend's numbers: same weights (seeded on the CPU, so
//! identical everywhere), same input, outputs and one training step equal within 1e-4.
//! Each test exists only when its cargo feature is on (`--features tch` / `--features wgpu`);
//! see the README's "Backends" for how CI runs them.

#![allow(dead_code)]

use burn::optim::{AdamWConfig, GradientsParams};
use burn::prelude::*;
use compworld::Rng;
use trainer::data::{DataStream, MixConfig, gen_batch, und_batch};
use trainer::device::{DeviceKind, device};
use trainer::pretrain::{gen_loss, init_model, und_loss};
use umm_model::{UmmConfig, UmmInput, WordTokenizer};

fn max_diff(a: Vec<f32>, b: Vec<f32>) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.to_data().convert::<f32>().try_to_vec::<f32>().unwrap()
}

/// Forward outputs, then the losses before and after one AdamW step, on `kind` and on
/// `reference`.
fn equivalent(kind: DeviceKind, reference: DeviceKind) {
    let cfg = UmmConfig::micro();
    let tok = WordTokenizer::compworld();
    let results: Vec<(Vec<f32>, Vec<f32>, [f32; 4])> = [reference, kind]
        .into_iter()
        .map(|k| {
            let dev = device(k).unwrap().autodiff();
            let model = init_model(&cfg, 7, &dev);
            let mut stream =
                DataStream::new(&MixConfig::default(), cfg.resolution, Rng::new(5)).unwrap();
            let ub = und_batch(&tok, &cfg, &stream.und_examples(4), &dev).unwrap();
            let gb =
                gen_batch(&tok, &cfg, &stream.gen_examples(4), &mut Rng::new(6), &dev).unwrap();
            let out = model.forward(UmmInput {
                text: gb.text.clone(),
                und_image: Some(ub.image.clone().slice_dim(0, 0..4)),
                gen_image: Some((gb.x0.clone(), gb.t.clone())),
            });
            let logits = to_vec(out.logits);
            let velocity = to_vec(out.velocity.unwrap());
            let (lu, lg) = (
                und_loss(&model, &ub),
                gen_loss(&model, &gb, trainer::pretrain::DEFAULT_LOW_T_FLOOR),
            );
            let before = [
                lu.clone().into_scalar::<f32>(),
                lg.clone().into_scalar::<f32>(),
            ];
            let grads = GradientsParams::from_grads((lu + lg).backward(), &model);
            // The project's optimiser: burn's AdamW, updated in place on libtorch.
            let model = umm_model::optim::adamw(&AdamWConfig::new()).step(1e-3, model, grads);
            let after = [
                und_loss(&model, &ub).into_scalar::<f32>(),
                gen_loss(&model, &gb, trainer::pretrain::DEFAULT_LOW_T_FLOOR).into_scalar::<f32>(),
            ];
            (logits, velocity, [before[0], before[1], after[0], after[1]])
        })
        .collect();
    let (a, b) = (&results[0], &results[1]);
    let dl = max_diff(a.0.clone(), b.0.clone());
    let dv = max_diff(a.1.clone(), b.1.clone());
    let dloss = max_diff(a.2.to_vec(), b.2.to_vec());
    eprintln!(
        "{} vs {}: logits {dl:.2e}, velocity {dv:.2e}, losses {dloss:.2e} ({:?} vs {:?})",
        kind.name(),
        reference.name(),
        b.2,
        a.2
    );
    assert!(dl < 1e-4 && dv < 1e-4 && dloss < 1e-4, "{dl} {dv} {dloss}");
    // The step changed the losses: the comparison covers the backward pass and the update.
    assert!((a.2[0] - a.2[2]).abs() > 1e-4);
}

#[cfg(feature = "tch")]
#[test]
fn tch_cpu_matches_cpu() {
    equivalent(DeviceKind::TchCpu, DeviceKind::Cpu);
}

#[cfg(feature = "wgpu")]
#[test]
fn wgpu_matches_cpu() {
    equivalent(DeviceKind::Wgpu, DeviceKind::Cpu);
}

#[cfg(feature = "ndarray")]
#[test]
fn ndarray_matches_cpu() {
    equivalent(DeviceKind::Ndarray, DeviceKind::Cpu);
}

#[cfg(all(feature = "tch", feature = "ndarray"))]
#[test]
fn tch_cpu_matches_ndarray() {
    equivalent(DeviceKind::TchCpu, DeviceKind::Ndarray);
}

#[cfg(all(feature = "wgpu", feature = "ndarray"))]
#[test]
fn wgpu_matches_ndarray() {
    equivalent(DeviceKind::Wgpu, DeviceKind::Ndarray);
}
