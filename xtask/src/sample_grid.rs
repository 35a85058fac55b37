//! `cargo xtask sample-grid --grid <name>`: the same val prompts (the first of each category)
//! drawn by the base model, SFT and SRUM from the same noise, each image beside its reward map
//! as the frozen base judge sees it (what round 1 of post-training weights the loss with).
//!
//! It reads the grid's run folders (`runs/ablation/<grid>/{sft,srum}-s<seed>/`, not committed),
//! so it is not part of `cargo xtask plot`; the PNG it writes is committed. The number under an
//! image is the benchmark oracle's score (this is the harness, where the oracle may be read);
//! under a map, the map's mean weight.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::prelude::*;
use compworld::splits::load_split;
use compworld::{Category, Image};
use reward_global::self_rewards;
use trainer::reward_cmd::map_image;
use trainer::srum::{SrumConfig, generate_seeded};
use umm_model::{WordTokenizer, checkpoint};

use crate::plot::{GridRow, labelled_grid};

/// Pixels per image pixel in the grid.
const SCALE: usize = 4;

fn upscale(img: &Image, s: usize) -> Image {
    let mut out = Image::filled(img.width * s, img.height * s, [0.0; 3]);
    for y in 0..img.height * s {
        for x in 0..img.width * s {
            out.set(x, y, img.get(x / s, y / s));
        }
    }
    out
}

/// Draws the grid of `grid`'s seed-`seed` runs into `out`.
pub fn run(grid: &str, seed: u64, split: &Path, out: &Path) -> Result<()> {
    let cfg = SrumConfig::default();
    let runs = PathBuf::from("runs/ablation").join(grid);
    let models = [
        ("base".to_string(), cfg.base.clone()),
        (
            "SFT".to_string(),
            runs.join(format!("sft-s{seed}/model.safetensors")),
        ),
        (
            "SRUM".to_string(),
            runs.join(format!("srum-s{seed}/model.safetensors")),
        ),
    ];
    for (name, p) in &models {
        if !p.exists() {
            bail!(
                "{name}: {} not found (run `cargo xtask ablate --grid {grid}` first; run folders \
                 are not committed)",
                p.display()
            );
        }
    }
    let entries = load_split(split).with_context(|| format!("reading {}", split.display()))?;
    let prompts: Vec<compworld::Prompt> = Category::ALL
        .iter()
        .filter_map(|c| {
            entries
                .iter()
                .find(|e| e.prompt.category == *c)
                .map(|e| e.prompt.clone())
        })
        .collect();
    let device = Device::flex();
    let tok = WordTokenizer::compworld();
    let (judge, meta) = checkpoint::load(&cfg.base, &device)?;
    let mcfg = meta.config;
    let items: Vec<(&str, u64)> = prompts
        .iter()
        .enumerate()
        .map(|(i, p)| (p.text.as_str(), bench_compbench::FIRST_SEED + i as u64))
        .collect();
    let rc = cfg.reward.reward_config(cfg.train.lambda);
    let mut rows: Vec<GridRow> = prompts
        .iter()
        .map(|p| GridRow {
            caption: format!("{}: {}", p.category.name(), p.text),
            images: Vec::new(),
        })
        .collect();
    for (name, path) in &models {
        eprintln!("{name}: generating {} images", items.len());
        let (model, _) = checkpoint::load(path, &device)?;
        let images = generate_seeded(&model, &mcfg, &tok, &items, &cfg.sampler, &device, |_| {})?;
        let pairs: Vec<(&Image, &str)> = images
            .iter()
            .zip(&prompts)
            .map(|(i, p)| (i, p.text.as_str()))
            .collect();
        let rewards = self_rewards(&judge, &mcfg, &tok, &pairs, &rc, &device);
        for ((row, (img, p)), r) in rows
            .iter_mut()
            .zip(images.iter().zip(&prompts))
            .zip(rewards)
        {
            let r = r.with_context(|| format!("{name}: scoring '{}'", p.text))?;
            let oracle = scene_oracle::score(img, p).score;
            let mean = r.map.iter().sum::<f32>() / r.map.len() as f32;
            row.images.push((upscale(img, SCALE), f64::from(oracle)));
            row.images
                .push((map_image(img, &r, SCALE), f64::from(mean)));
        }
    }
    let title = format!(
        "{grid}, seed {seed}: base | map, SFT | map, SRUM | map (val prompts; under an image the \
         oracle score, under a map its mean weight)"
    );
    labelled_grid(&rows, &title, 1, out)?;
    Ok(())
}
