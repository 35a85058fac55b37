//! Reward maps and token weights (DESIGN.md section 1, steps 5 and 6).
//!
//! Inputs: the global score `g` in [-1, 1] and scored boxes `(box, s)` with `s` in [-1, 1], in
//! pixel coordinates of a `width x height` image (boxes may reach outside it; only the part
//! inside counts). Output: one weight per pixel, row-major.
//!
//! - [`MapMode::Unit`], exactly the reference code: `M = 0.5` everywhere, inside each box
//!   `M = max(M, (s + 1) / 2)`, and `W = ((g + 1) / 2) * M`, so `W` is in [0, 1]. A region the
//!   model finds wrong can only fall back to the background's 0.5.
//! - [`MapMode::Signed`], the paper's prose (negative regions push away), bounded: outside
//!   boxes `m = 0.5`; inside a box `m = (s + 1) / 2` for `s >= 0` and `m = 0.5 + (0.5 + beta) s`
//!   for `s < 0`, reaching `-beta` at `s = -1`; where boxes overlap, the lowest score wins if any
//!   is negative (a contradiction anywhere in the pixel), else the highest; `W = ((g + 1) / 2) *
//!   m`, in `[-beta, 1]`. The training loss adds `lambda * mean(err^2)` (the reference
//!   constraint, `lambda = 0.5` by default) to `mean(W * err^2)`, so as long as
//!   `beta < lambda` every pixel's total weight `W + lambda` stays positive: the loss is a
//!   positively weighted squared error, bounded below by zero, and cannot diverge; wrong regions
//!   are pulled towards the model's own sample less than the rest (by up to `lambda - beta`),
//!   which is as far as "pushing away" can go on a regression to one's own image.
//!   [`MapConfig::validate`] refuses `beta >= lambda`.
//! - [`MapMode::Binary`], the paper's 0-1 ablation: the `unit` map of binarised scores
//!   (`s > 0` becomes +1, otherwise -1; the same for `g`).
//!
//! Ablations: `use_global = false` takes `g = 1` (the map is the local part alone);
//! `use_local = false` takes `M = 1` everywhere (the map is the global weight alone).

use serde::{Deserialize, Serialize};

/// How scores become a map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MapMode {
    Unit,
    Signed,
    Binary,
}

impl std::str::FromStr for MapMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "unit" => Ok(MapMode::Unit),
            "signed" => Ok(MapMode::Signed),
            "binary" => Ok(MapMode::Binary),
            _ => Err(format!(
                "unknown map mode '{s}' (expected unit, signed or binary)"
            )),
        }
    }
}

/// Map settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MapConfig {
    pub mode: MapMode,
    /// Use the global score (off: `g = 1`).
    pub use_global: bool,
    /// Use the region scores (off: `M = 1` everywhere).
    pub use_local: bool,
    /// Depth of the signed map below zero (`W >= -beta`); must stay below `lambda`.
    pub beta: f32,
    /// Weight of the unweighted reference-constraint term of the loss.
    pub lambda: f32,
}

impl Default for MapConfig {
    fn default() -> Self {
        MapConfig {
            mode: MapMode::Unit,
            use_global: true,
            use_local: true,
            beta: 0.25,
            lambda: 0.5,
        }
    }
}

impl MapConfig {
    /// Refuses settings under which training could diverge.
    pub fn validate(&self) -> Result<(), String> {
        if self.mode == MapMode::Signed && !(0.0 <= self.beta && self.beta < self.lambda) {
            return Err(format!(
                "signed map: beta = {} must be in [0, lambda = {}) so every pixel keeps a positive total weight",
                self.beta, self.lambda
            ));
        }
        if self.lambda < 0.0 {
            return Err(format!("lambda = {} must be >= 0", self.lambda));
        }
        Ok(())
    }
}

/// A region and its score in [-1, 1], in pixel coordinates `[x0, y0, x1, y1]`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ScoredBox {
    pub bbox: [f32; 4],
    pub score: f32,
}

/// Pixel `(x, y)` (its centre `x + 0.5, y + 0.5`) lies inside the box.
fn covers(b: &[f32; 4], x: usize, y: usize) -> bool {
    let (cx, cy) = (x as f32 + 0.5, y as f32 + 0.5);
    cx >= b[0] && cx < b[2] && cy >= b[1] && cy < b[3]
}

fn binarise(v: f32) -> f32 {
    if v > 0.0 { 1.0 } else { -1.0 }
}

/// The reward map, `width x height` weights, row-major.
pub fn reward_map(
    width: usize,
    height: usize,
    g: f32,
    boxes: &[ScoredBox],
    cfg: &MapConfig,
) -> Vec<f32> {
    let bin = cfg.mode == MapMode::Binary;
    let g = if !cfg.use_global {
        1.0
    } else if bin {
        binarise(g)
    } else {
        g.clamp(-1.0, 1.0)
    };
    let global = (g + 1.0) / 2.0;
    let mut out = vec![0.0; width * height];
    for y in 0..height {
        for x in 0..width {
            let m = if !cfg.use_local {
                1.0
            } else {
                let scores = boxes.iter().filter(|b| covers(&b.bbox, x, y)).map(|b| {
                    let s = b.score.clamp(-1.0, 1.0);
                    if bin { binarise(s) } else { s }
                });
                match cfg.mode {
                    MapMode::Unit | MapMode::Binary => {
                        scores.fold(0.5f32, |m, s| m.max((s + 1.0) / 2.0))
                    }
                    MapMode::Signed => {
                        let v: Vec<f32> = scores.collect();
                        let lo = v.iter().copied().fold(f32::INFINITY, f32::min);
                        let hi = v.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                        if v.is_empty() {
                            0.5
                        } else if lo < 0.0 {
                            0.5 + (0.5 + cfg.beta) * lo
                        } else {
                            (hi + 1.0) / 2.0
                        }
                    }
                }
            };
            out[y * width + x] = global * m;
        }
    }
    out
}

/// The map averaged over each `patch x patch` block: one weight per generation token, in the
/// model's token order (row-major over patches, as `umm_model::patchify`).
pub fn token_weights(map: &[f32], width: usize, height: usize, patch: usize) -> Vec<f32> {
    let (gw, gh) = (width / patch, height / patch);
    let mut out = Vec::with_capacity(gw * gh);
    for ty in 0..gh {
        for tx in 0..gw {
            let mut sum = 0.0;
            for y in ty * patch..(ty + 1) * patch {
                for x in tx * patch..(tx + 1) * patch {
                    sum += map[y * width + x];
                }
            }
            out.push(sum / (patch * patch) as f32);
        }
    }
    out
}
