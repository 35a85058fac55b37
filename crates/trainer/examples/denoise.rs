//! One-step denoising check of a checkpoint: for a few training-distribution generation pairs,
//! noise the image to time t, predict the velocity once and jump to `x0_hat = x_t - t v`.
//! Rows: clean, noisy (t = 0.3, 0.6, 0.9) and their one-step estimates. Also prints the MSE of
//! the estimate per t. If the estimates look right but sampled images do not, suspect the
//! sampler; if the estimates are wrong, the model has not learned the flow.
//!
//! `cargo run --release -p trainer --example denoise -- <checkpoint.safetensors> <out.png>`

use burn::prelude::*;
use compworld::{Image, Rng};
use trainer::data::{DataStream, MixConfig, gen_batch};
use umm_model::{UmmInput, WordTokenizer, checkpoint, unpatchify};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (ckpt, out) = (&args[1], &args[2]);
    let dev = Device::flex();
    let (model, meta) = checkpoint::load(std::path::Path::new(ckpt), &dev)?;
    let cfg = meta.config;
    let tok = WordTokenizer::compworld();
    let mix = MixConfig {
        text_dropout: 0.0,
        ..MixConfig::default()
    };
    let mut stream = DataStream::new(&mix, cfg.resolution, Rng::new(3))?;
    let ex = stream.gen_examples(8);
    for e in &ex {
        eprintln!("{}", e.prompt);
    }
    let mut rows: Vec<Image> = ex.iter().map(|e| e.image.clone()).collect();
    // Model space (2 x - 1) back to [0, 1].
    let to_images = |t: Tensor<4>| -> anyhow::Result<Vec<Image>> {
        Ok(umm_model::sampler::to_images(
            t.add_scalar(1.0).div_scalar(2.0).clamp(0.0, 1.0),
        )?)
    };

    for t in [0.3f32, 0.6, 0.9, 1.0] {
        let mut b = gen_batch(&tok, &cfg, &ex, &mut Rng::new(4), &dev)?;
        b.t = Tensor::from_data(burn::tensor::TensorData::new(vec![t; 8], [8]), &dev);
        let xt = b.x0.clone() + (b.noise.clone() - b.x0.clone()).mul_scalar(t);
        let v = model
            .forward(UmmInput {
                text: b.text.clone(),
                und_image: None,
                gen_image: Some((xt.clone(), b.t.clone())),
            })
            .velocity
            .unwrap();
        let x0_hat = xt.clone() - v.mul_scalar(t);
        let mse = (x0_hat.clone() - b.x0.clone())
            .square()
            .mean()
            .into_scalar::<f32>();
        eprintln!("t = {t}: one-step x0 MSE {mse:.4}");
        rows.extend(to_images(unpatchify(xt, cfg.patch, cfg.resolution))?);
        rows.extend(to_images(unpatchify(x0_hat, cfg.patch, cfg.resolution))?);
    }
    compworld::render::contact_sheet(&rows, 8, 3).save_png(std::path::Path::new(out))?;
    Ok(())
}
