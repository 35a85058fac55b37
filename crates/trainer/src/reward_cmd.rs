//! `srum reward`: the self-rewards of a folder of images (or of fresh generations), one JSON
//! record per image and a picture of each reward map, for people to look at.
//!
//! Input folder: PNGs at the model's resolution and a `prompts.tsv` of `file<TAB>prompt`
//! lines (`#` comments and blank lines skipped). Output folder: `rewards.jsonl`, one record per
//! image (`image`, `prompt`, `global_score` with its two halves `global_question` and
//! `coverage` and, with `--global constraints`, the `constraint` score it is read from,
//! `kept`, `regions` with `bbox`, `phrase`, `score`, `why`, and `map` statistics), and
//! `overlays/<image>.png`: the image beside its reward map
//! drawn over it (blue below 0, through dark at 0.5, to yellow at 1) with the boxes outlined
//! (green +1, grey 0, red -1). Items with bad input are skipped and listed, never fatal.

use std::path::{Path, PathBuf};

use burn::prelude::*;
use compworld::Image;
use reward_global::{RewardConfig, SelfReward, self_rewards};
use serde::Serialize;
use umm_model::{Tokenizer, Umm, UmmConfig};

use crate::{Error, Result};

/// Images scored per batch.
const BATCH: usize = 32;
/// Overlay pixels per image pixel.
const SCALE: usize = 8;

/// One input: an image file and its prompt.
#[derive(Debug, Clone)]
pub struct Item {
    pub name: String,
    pub prompt: String,
    pub image: std::result::Result<Image, String>,
}

/// Reads `<dir>/prompts.tsv` and the images it lists. A missing or unreadable image becomes an
/// item with an error (reported, skipped); a malformed line is an error naming the line.
pub fn read_folder(dir: &Path, resolution: usize) -> Result<Vec<Item>> {
    let list = dir.join("prompts.tsv");
    let text = std::fs::read_to_string(&list)
        .map_err(|e| Error::Io(format!("reading {}: {e}", list.display())))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((file, prompt)) = line.split_once('\t') else {
            return Err(Error::Config(format!(
                "{}:{}: expected 'file<TAB>prompt'",
                list.display(),
                i + 1
            )));
        };
        let image = Image::load_png(&dir.join(file), resolution).map_err(|e| e.to_string());
        out.push(Item {
            name: file.to_string(),
            prompt: prompt.to_string(),
            image,
        });
    }
    if out.is_empty() {
        return Err(Error::Config(format!(
            "{}: no images listed",
            list.display()
        )));
    }
    Ok(out)
}

#[derive(Serialize)]
struct MapStats {
    mode: reward_local::MapMode,
    mean: f32,
    min: f32,
    max: f32,
    token_weights: Vec<f32>,
}

#[derive(Serialize)]
struct Record<'a> {
    image: &'a str,
    prompt: &'a str,
    global_score: f32,
    /// The prompt-match half of the global score, and the phrase coverage half.
    global_question: f32,
    coverage: Option<f32>,
    /// The constraint score (with `--global constraints`).
    constraint: Option<f32>,
    kept: bool,
    regions: &'a [reward_local::RegionScore],
    map: MapStats,
}

/// What a run did.
#[derive(Debug, Default)]
pub struct RewardRun {
    pub scored: usize,
    /// `(image, why)` of the items skipped.
    pub skipped: Vec<(String, String)>,
}

fn heat(w: f32) -> [f32; 3] {
    // -beta..0 blue, 0..0.5 dark, 0.5..1 red to yellow.
    if w < 0.0 {
        [0.0, 0.2, 0.6 + 0.4 * (-w).min(1.0)]
    } else if w < 0.5 {
        let t = w / 0.5;
        [0.5 * t, 0.05, 0.2 * (1.0 - t)]
    } else {
        let t = (w - 0.5) / 0.5;
        [0.5 + 0.5 * t, 0.05 + 0.9 * t, 0.0]
    }
}

/// The image and, beside it, the map over the image with the boxes outlined.
pub fn overlay(img: &Image, r: &SelfReward) -> Image {
    let (w, h) = (img.width, img.height);
    let map = map_image(img, r, SCALE);
    let mut out = Image::filled(2 * w * SCALE + 4, h * SCALE, [1.0; 3]);
    for y in 0..h * SCALE {
        for x in 0..w * SCALE {
            out.set(x, y, img.get(x / SCALE, y / SCALE));
            out.set(w * SCALE + 4 + x, y, map.get(x, y));
        }
    }
    out
}

/// The reward map blended over the image (`scale` times its size): dark 0 to 0.5, red to
/// yellow 0.5 to 1, blue below 0; the proposed boxes outlined green (score > 0), red (< 0) or
/// grey (0).
pub fn map_image(img: &Image, r: &SelfReward, scale: usize) -> Image {
    let (w, h) = (img.width, img.height);
    let mut out = Image::filled(w * scale, h * scale, [1.0; 3]);
    for y in 0..h * scale {
        for x in 0..w * scale {
            let p = img.get(x / scale, y / scale);
            let hm = heat(r.map[(y / scale) * w + x / scale]);
            out.set(x, y, std::array::from_fn(|c| 0.35 * p[c] + 0.65 * hm[c]));
        }
    }
    for reg in &r.regions {
        let colour = if reg.score > 0.0 {
            [0.0, 0.85, 0.2]
        } else if reg.score < 0.0 {
            [0.95, 0.0, 0.0]
        } else {
            [0.6, 0.6, 0.6]
        };
        let [x0, y0, x1, y1] = reg.bbox.map(|v| (v * scale as f32).round() as isize);
        let mut put = |x: isize, y: isize| {
            let (x, y) = (
                x.clamp(0, (w * scale - 1) as isize),
                y.clamp(0, (h * scale - 1) as isize),
            );
            out.set(x as usize, y as usize, colour);
        };
        for x in x0..x1 {
            put(x, y0);
            put(x, y1 - 1);
        }
        for y in y0..y1 {
            put(x0, y);
            put(x1 - 1, y);
        }
    }
    out
}

/// Scores `items` and writes `rewards.jsonl` and `overlays/` into `out`.
#[allow(clippy::too_many_arguments)]
pub fn run(
    model: &Umm,
    cfg: &UmmConfig,
    tok: &dyn Tokenizer,
    items: &[Item],
    rc: &RewardConfig,
    out: &Path,
    device: &Device,
    progress: &dyn Fn(usize),
) -> Result<RewardRun> {
    rc.map.validate().map_err(Error::Config)?;
    let overlays: PathBuf = out.join("overlays");
    std::fs::create_dir_all(&overlays)
        .map_err(|e| Error::Io(format!("creating {}: {e}", overlays.display())))?;
    let mut jsonl = String::new();
    let mut run = RewardRun::default();
    let mut done = 0;
    for chunk in items.chunks(BATCH) {
        let readable: Vec<&Item> = chunk
            .iter()
            .filter(|it| match &it.image {
                Ok(_) => true,
                Err(e) => {
                    run.skipped.push((it.name.clone(), e.clone()));
                    false
                }
            })
            .collect();
        let pairs: Vec<(&Image, &str)> = readable
            .iter()
            .map(|it| (it.image.as_ref().expect("readable"), it.prompt.as_str()))
            .collect();
        let rewards = self_rewards(model, cfg, tok, &pairs, rc, device);
        for (it, r) in readable.iter().zip(rewards) {
            let r = match r {
                Ok(r) => r,
                Err(e) => {
                    run.skipped.push((it.name.clone(), e.to_string()));
                    continue;
                }
            };
            let img = it.image.as_ref().expect("readable");
            let (lo, hi) = r
                .map
                .iter()
                .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| {
                    (a.min(v), b.max(v))
                });
            let rec = Record {
                image: &it.name,
                prompt: &it.prompt,
                global_score: r.global,
                global_question: r.global_question,
                coverage: r.coverage,
                constraint: r.constraint,
                kept: r.kept,
                regions: &r.regions,
                map: MapStats {
                    mode: rc.map.mode,
                    mean: r.map.iter().sum::<f32>() / r.map.len().max(1) as f32,
                    min: lo,
                    max: hi,
                    token_weights: r.token_weights.clone(),
                },
            };
            jsonl.push_str(&serde_json::to_string(&rec).expect("a record serialises"));
            jsonl.push('\n');
            let stem = Path::new(&it.name)
                .file_stem()
                .map_or("image".into(), |s| s.to_string_lossy().into_owned());
            overlay(img, &r)
                .save_png(&overlays.join(format!("{stem}.png")))
                .map_err(|e| Error::Io(e.to_string()))?;
            run.scored += 1;
        }
        done += chunk.len();
        progress(done);
    }
    let path = out.join("rewards.jsonl");
    std::fs::write(&path, jsonl)
        .map_err(|e| Error::Io(format!("writing {}: {e}", path.display())))?;
    Ok(run)
}
