//! Region scores from the model's own understanding (DESIGN.md section 1, step 3).
//!
//! Each proposed box, padded by one pixel and clipped to the image, is cut out and resized to
//! the canvas (as region questions were asked in pretraining) and the model is asked
//! `what is this ?`; its greedy answer, e.g. "striped red circle", is kept for inspection and
//! read as a phrase ([`crate::phrases`]). The score against the prompt's literal phrases:
//!
//! | the model's name | score |
//! |---|---|
//! | names no shape | 0 (nothing recognisable) |
//! | a shape the prompt does not mention | 0 (irrelevant, harmless) |
//! | a shape the prompt mentions, with its stated colour and texture | +1 |
//! | a shape the prompt mentions, but no phrase with that shape fits | -1 (wrong attribute) |
//! | a fitting object beyond a phrase's stated count | -1 (one too many) |
//!
//! For "one too many", the fitting regions of a counted phrase are taken largest first, and a
//! region whose centre lies inside an already counted region's box is the same object seen at
//! another scale, not another object.

use burn::prelude::*;
use compworld::Image;
use serde::Serialize;
use umm_model::understand::{REGION_QUESTION, answer};
use umm_model::{Tokenizer, Umm, UmmConfig};

use crate::phrases::{Phrase, literal_phrases};
use crate::proposer::BoxPx;
use crate::{Error, Result};

/// Padding around a box before it is cut out, in pixels.
pub const CROP_PAD: f32 = 1.0;
/// Longest region answer read, in words.
const MAX_ANSWER_WORDS: usize = 5;

/// One scored region.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RegionScore {
    /// `[x0, y0, x1, y1]` in pixels.
    pub bbox: [f32; 4],
    /// Pixels of the proposed component.
    pub area: usize,
    /// What the model called it.
    pub phrase: String,
    /// In [-1, 1].
    pub score: f32,
    /// Which row of the table gave the score.
    pub why: &'static str,
}

/// The crop the model is shown for a box.
pub fn crop(img: &Image, b: &BoxPx, resolution: usize) -> Image {
    let (w, h) = (img.width as f32, img.height as f32);
    let padded = [
        (b.x0 - CROP_PAD).max(0.0),
        (b.y0 - CROP_PAD).max(0.0),
        (b.x1 + CROP_PAD).min(w),
        (b.y1 + CROP_PAD).min(h),
    ];
    img.crop_resize(padded, resolution)
}

/// The model's name read as a phrase (`None` when it names no shape).
pub fn read_name(name: &str) -> Option<Phrase> {
    literal_phrases(name).into_iter().next()
}

/// Scores named regions against a prompt by the table of the module docs. `names[i]` is the
/// model's name for `boxes[i]`.
pub fn score_names(prompt: &str, boxes: &[BoxPx], names: &[String]) -> Vec<(f32, &'static str)> {
    let phrases = literal_phrases(prompt);
    let mut out: Vec<(f32, &'static str)> = names
        .iter()
        .map(|n| match read_name(n) {
            None => (0.0, "names no shape"),
            Some(named) => {
                if !phrases.iter().any(|p| p.shape == named.shape) {
                    (0.0, "shape not in the prompt")
                } else if phrases.iter().any(|p| p.fits(&named)) {
                    (1.0, "fits a phrase")
                } else {
                    (-1.0, "wrong attribute")
                }
            }
        })
        .collect();
    // One too many: per counted phrase, the fitting objects beyond its count.
    for p in phrases.iter().filter(|p| p.count.is_some()) {
        let n = usize::from(p.count.unwrap_or(0));
        let mut fitting: Vec<usize> = (0..names.len())
            .filter(|&i| out[i].0 > 0.0 && read_name(&names[i]).is_some_and(|m| p.fits(&m)))
            .collect();
        fitting.sort_by(|&a, &b| boxes[b].area.cmp(&boxes[a].area));
        let mut counted: Vec<usize> = Vec::new();
        for i in fitting {
            let (cx, cy) = (
                (boxes[i].x0 + boxes[i].x1) / 2.0,
                (boxes[i].y0 + boxes[i].y1) / 2.0,
            );
            let same = counted.iter().any(|&k| {
                let b = &boxes[k];
                cx >= b.x0 && cx < b.x1 && cy >= b.y0 && cy < b.y1
            });
            if same {
                continue;
            }
            if counted.len() >= n {
                out[i] = (-1.0, "one too many");
            } else {
                counted.push(i);
            }
        }
    }
    out
}

/// Checks an image and a prompt before anything is asked.
pub fn check_input(cfg: &UmmConfig, tok: &dyn Tokenizer, img: &Image, prompt: &str) -> Result<()> {
    let r = cfg.resolution;
    if img.width != r || img.height != r {
        return Err(Error::Input(format!(
            "image is {}x{}, the model works at {r}x{r}",
            img.width, img.height
        )));
    }
    if prompt.trim().is_empty() {
        return Err(Error::Input("empty prompt".into()));
    }
    tok.encode(prompt)?;
    Ok(())
}

/// Names and scores the proposed regions of several images at once (one batch of questions).
/// `items[k] = (image, prompt, boxes)`.
pub fn score_regions(
    model: &Umm,
    cfg: &UmmConfig,
    tok: &dyn Tokenizer,
    items: &[(&Image, &str, &[BoxPx])],
    device: &Device,
) -> Result<Vec<Vec<RegionScore>>> {
    for (img, prompt, _) in items {
        check_input(cfg, tok, img, prompt)?;
    }
    let questions: Vec<(String, Image)> = items
        .iter()
        .flat_map(|(img, _, boxes)| {
            boxes
                .iter()
                .map(|b| (REGION_QUESTION.to_string(), crop(img, b, cfg.resolution)))
        })
        .collect();
    let names = answer(model, cfg, tok, &questions, MAX_ANSWER_WORDS, device)?;
    let mut k = 0;
    Ok(items
        .iter()
        .map(|(_, prompt, boxes)| {
            let mine = &names[k..k + boxes.len()];
            k += boxes.len();
            score_names(prompt, boxes, mine)
                .into_iter()
                .zip(boxes.iter().zip(mine))
                .map(|((score, why), (b, name))| RegionScore {
                    bbox: b.corners(),
                    area: b.area,
                    phrase: name.clone(),
                    score,
                    why,
                })
                .collect()
        })
        .collect())
}
