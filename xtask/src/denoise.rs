//! What the generator believes at each noise level: true renders of the single-object prompts
//! are noised to flow time `t` and the model's one-step estimate of the clean image,
//! `x0_hat = x_t - t v(x_t, t)`, is drawn and scored by the oracle. If the estimates are crisp
//! shapes at middle times but blobs near `t = 1`, the sampler's early steps (layout) are what
//! fails; if they are blobs already at middle times, the model cannot read a shape through
//! noise. A diagnostic for issue 3 (`cargo xtask denoise <checkpoint>`).

use std::path::Path;

use anyhow::Result;
use burn::prelude::*;
use burn::tensor::TensorData;
use compworld::{Image, Rng, render, sample_scene};
use umm_model::sampler::{encode_prompts, to_images};
use umm_model::understand::images_tensor;
use umm_model::{WordTokenizer, checkpoint, patchify, unpatchify};

use crate::base_eval::single_object_prompts;

/// The flow times probed.
pub const TIMES: [f32; 6] = [0.3, 0.5, 0.7, 0.8, 0.9, 0.97];

/// Mean oracle score of the one-step estimates at each of [`TIMES`] (`per_prompt` scenes of each
/// of the 40 prompts), and a sheet: the truth row, then one row per time; columns are the
/// first scene of each of the five red prompts and of the five blue ones.
pub fn run(
    checkpoint: &Path,
    per_prompt: usize,
    seed: u64,
    sheet: &Path,
) -> Result<Vec<(f32, f64)>> {
    let device = Device::flex();
    let (model, meta) = checkpoint::load(checkpoint, &device)?;
    let cfg = meta.config;
    let tok = WordTokenizer::compworld();
    let prompts = single_object_prompts();
    let mut rng = Rng::derive(seed, "denoise");
    let mut truths: Vec<(compworld::Prompt, Image)> = Vec::new();
    for (p, _) in &prompts {
        for _ in 0..per_prompt {
            let scene = sample_scene(&p.meaning, &p.text, &mut rng)?;
            truths.push((p.clone(), render(&scene, cfg.resolution)));
        }
    }
    let texts: Vec<&str> = truths.iter().map(|(p, _)| p.text.as_str()).collect();
    let images: Vec<&Image> = truths.iter().map(|(_, i)| i).collect();
    let b = truths.len();
    let x0 = patchify(images_tensor(&images, &device), cfg.patch);
    let dims = x0.dims();
    let noise: Vec<f32> = (0..dims.iter().product::<usize>())
        .map(|_| rng.normal())
        .collect();
    let noise = Tensor::<3>::from_data(TensorData::new(noise, dims), &device);
    let text = encode_prompts(&tok, &texts, cfg.max_text_len, &device)?;
    let mut rows: Vec<Vec<Image>> = vec![truths.iter().map(|(_, i)| i.clone()).collect()];
    let mut scores = Vec::new();
    for &t in &TIMES {
        let xt = x0.clone() + (noise.clone() - x0.clone()).mul_scalar(t);
        let time = Tensor::<1>::from_data(TensorData::new(vec![t; b], [b]), &device);
        let v = model.velocity(text.clone(), xt.clone(), time);
        let est = xt - v.mul_scalar(t);
        let imgs = to_images(
            unpatchify(est, cfg.patch, cfg.resolution)
                .add_scalar(1.0)
                .div_scalar(2.0)
                .clamp(0.0, 1.0),
        )?;
        let s: Vec<f64> = truths
            .iter()
            .zip(&imgs)
            .map(|((p, _), i)| f64::from(scene_oracle::score(i, p).score))
            .collect();
        scores.push((t, s.iter().sum::<f64>() / s.len() as f64));
        rows.push(imgs);
    }
    // Columns: the five shapes in red, then the five shapes in blue (first scene of each).
    let pick: Vec<usize> = (0..5).chain(25..30).map(|k| k * per_prompt).collect();
    let cells: Vec<Image> = rows
        .iter()
        .flat_map(|r| pick.iter().map(|&k| r[k].clone()))
        .collect();
    render::contact_sheet(&cells, pick.len(), 3).save_png(sheet)?;
    Ok(scores)
}
