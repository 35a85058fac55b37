//! The inputs Burn and the PyTorch reference race on, and the Burn side of each timed unit.
//!
//! - Training: one pretraining step of the model on fixed batches (`trainer::bench`):
//!   `batch` understanding examples (question, image, answer) and `batch` generation examples
//!   (prompt, clean image, noise, time), both losses, backward, AdamW, the loss read back.
//! - Sampling: `batch` images from fixed noise and the generation batch's prompts, Euler steps
//!   with classifier-free guidance (two forward passes per step), as `umm_model::sampler`.
//!
//! [`export`] writes everything the reference needs to rebuild the same computation: the
//! configuration, the initial weights (seed 0) and the batches, as safetensors files.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use burn::optim::{AdamWConfig, ModuleOptimizer};
use burn::prelude::*;
use burn::tensor::TensorData;
use trainer::bench::{fixed_batches, train_step, train_step_phases};
use trainer::data::{GenBatch, UndBatch};
use trainer::pretrain::init_model;
use umm_model::sampler::{Solver, guide, integrate, pad_rows};
use umm_model::tokenizer::{BOS, EOS};
use umm_model::{Umm, UmmConfig, checkpoint};

use crate::flops::{self, Pass};

/// Seed of the initial weights of every raced model.
pub const INIT_SEED: u64 = 0;
/// Seed of the sampling noise.
pub const NOISE_SEED: u64 = 3;

/// The fixed inputs of the race on one device.
#[derive(Debug, Clone)]
pub struct RaceInputs {
    pub und: UndBatch,
    pub gen_batch: GenBatch,
    /// The empty prompt `[BOS, EOS]` once per row (the unguided branch).
    pub empty: Tensor<2, Int>,
    /// Starting noise of the sampler, `[batch, tokens, patch_dim]`.
    pub noise: Tensor<3>,
}

impl RaceInputs {
    pub fn new(cfg: &UmmConfig, batch: usize, device: &Device) -> Result<Self> {
        let (und, gen_batch) = fixed_batches(cfg, batch, device)?;
        let empty = pad_rows(&vec![vec![BOS, EOS]; batch], device);
        let noise: Vec<f32> = (0..batch)
            .flat_map(|i| umm_model::sampler::image_noise(cfg, NOISE_SEED + i as u64))
            .collect();
        let noise = Tensor::from_data(
            TensorData::new(noise, [batch, cfg.image_tokens(), cfg.patch_dim()]),
            device,
        );
        Ok(RaceInputs {
            und,
            gen_batch,
            empty,
            noise,
        })
    }

    /// The two forward passes of a training step.
    pub fn train_passes(&self, cfg: &UmmConfig) -> [Pass; 2] {
        let [b, tu] = self.und.text.dims();
        let tg = self.gen_batch.text.dims()[1];
        let n = cfg.image_tokens();
        [
            Pass {
                batch: b,
                text: tu,
                und: n,
                gen_tokens: 0,
            },
            Pass {
                batch: b,
                text: tg,
                und: 0,
                gen_tokens: n,
            },
        ]
    }

    /// FLOPs of one training step.
    pub fn train_flops(&self, cfg: &UmmConfig) -> f64 {
        flops::train_step(cfg, &self.train_passes(cfg))
    }

    /// FLOPs of sampling the batch in `steps` guided Euler steps (two passes a step; the
    /// unguided pass has 2 text tokens).
    pub fn sample_flops(&self, cfg: &UmmConfig, steps: usize) -> f64 {
        let [b, tg] = self.gen_batch.text.dims();
        let pass = |text| Pass {
            batch: b,
            text,
            und: 0,
            gen_tokens: cfg.image_tokens(),
        };
        steps as f64 * (flops::forward(cfg, pass(tg)) + flops::forward(cfg, pass(2)))
    }
}

/// A fresh model and optimiser for the race, on an autodiff device.
pub fn fresh(cfg: &UmmConfig, device: &Device) -> Umm {
    init_model(cfg, INIT_SEED, device)
}

/// The optimiser of the race (burn's AdamW defaults, updated in place on libtorch, see
/// `umm_model::optim`: betas 0.9/0.999, eps 1e-5, weight
/// decay 1e-4; learning rate `trainer::bench::BENCH_LR`).
pub fn optimizer() -> ModuleOptimizer {
    umm_model::optim::adamw(&AdamWConfig::new())
}

/// One training step; returns the updated model and the loss before it.
pub fn step(model: Umm, optim: &mut ModuleOptimizer, inputs: &RaceInputs) -> (Umm, f32) {
    train_step(model, optim, &inputs.und, &inputs.gen_batch)
}

/// [`step`] with the seconds of its forward, backward and update phases.
pub fn step_phases(
    model: Umm,
    optim: &mut ModuleOptimizer,
    inputs: &RaceInputs,
) -> (Umm, f32, [f64; 3]) {
    train_step_phases(model, optim, &inputs.und, &inputs.gen_batch)
}

/// The guided velocity of the generation batch at time `t`.
pub fn guided_velocity(
    model: &Umm,
    inputs: &RaceInputs,
    x: Tensor<3>,
    t: f32,
    cfg_scale: f32,
) -> Tensor<3> {
    let b = x.dims()[0];
    let device = x.device();
    let v = |text: &Tensor<2, Int>| {
        let time = Tensor::<1>::from_data(TensorData::new(vec![t; b], [b]), &device);
        model.velocity(text.clone(), x.clone(), time)
    };
    guide(v(&inputs.gen_batch.text), v(&inputs.empty), cfg_scale)
}

/// Samples the batch: `steps` guided Euler steps from the fixed noise; returns the clean
/// patches `[batch, tokens, patch_dim]` (in the model's `2 x - 1` space), synced.
pub fn sample(model: &Umm, inputs: &RaceInputs, steps: usize, cfg_scale: f32) -> Tensor<3> {
    let x = integrate(inputs.noise.clone(), steps, Solver::Euler, |x, t| {
        guided_velocity(model, inputs, x, t, cfg_scale)
    });
    crate::sync(&x.device());
    x
}

/// One tensor for a safetensors file.
enum Raw {
    F32(Vec<f32>, Vec<usize>),
    I64(Vec<i64>, Vec<usize>),
}

fn float<const D: usize>(t: &Tensor<D>) -> Raw {
    let d = t.to_data().convert::<f32>();
    Raw::F32(d.try_to_vec::<f32>().expect("f32 data"), t.dims().to_vec())
}

fn int<const D: usize>(t: &Tensor<D, Int>) -> Raw {
    let d = t.to_data().convert::<i64>();
    Raw::I64(d.try_to_vec::<i64>().expect("i64 data"), t.dims().to_vec())
}

/// Writes a safetensors file (header length, JSON header, little-endian data).
fn write_safetensors(path: &Path, tensors: BTreeMap<&str, Raw>) -> Result<()> {
    let mut header = serde_json::Map::new();
    let mut data: Vec<u8> = Vec::new();
    for (name, raw) in &tensors {
        let start = data.len();
        let (dtype, shape) = match raw {
            Raw::F32(v, s) => {
                v.iter().for_each(|x| data.extend(x.to_le_bytes()));
                ("F32", s)
            }
            Raw::I64(v, s) => {
                v.iter().for_each(|x| data.extend(x.to_le_bytes()));
                ("I64", s)
            }
        };
        header.insert(
            name.to_string(),
            serde_json::json!({"dtype": dtype, "shape": shape, "data_offsets": [start, data.len()]}),
        );
    }
    let mut h = serde_json::to_vec(&header)?;
    while h.len() % 8 != 0 {
        h.push(b' ');
    }
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend(h);
    out.extend(data);
    std::fs::write(path, out).with_context(|| format!("cannot write {}", path.display()))
}

/// Writes `config.json`, `init.safetensors` (the seed-0 weights, burn's layout: linear
/// weights `[in, out]`) and `inputs.safetensors` (the batches and the sampling inputs) to
/// `dir`, for the PyTorch reference.
pub fn export(dir: &Path, cfg: &UmmConfig, batch: usize) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let dev = Device::flex();
    let inputs = RaceInputs::new(cfg, batch, &dev)?;
    std::fs::write(dir.join("config.json"), serde_json::to_string_pretty(cfg)?)?;
    let meta = checkpoint::CheckpointMeta::new(cfg.clone(), 0, [0; 4]);
    checkpoint::save(&fresh(cfg, &dev), &meta, &dir.join("init.safetensors"))?;
    let (u, g) = (&inputs.und, &inputs.gen_batch);
    let tensors = BTreeMap::from([
        ("und_text", int(&u.text)),
        ("und_image", float(&u.image)),
        ("und_targets", int(&u.targets)),
        ("und_mask", float(&u.mask)),
        ("gen_text", int(&g.text)),
        ("gen_x0", float(&g.x0)),
        ("gen_noise", float(&g.noise)),
        ("gen_t", float(&g.t)),
        ("sample_empty", int(&inputs.empty)),
        ("sample_noise", float(&inputs.noise)),
    ]);
    write_safetensors(&dir.join("inputs.safetensors"), tensors)
}
