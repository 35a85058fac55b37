//! Seeded weight initialisation that does not depend on the backend.
//!
//! Burn draws initial weights from its backend's global generator, so the same seed can give
//! different weights on two backends, and tests running in parallel would share one generator.
//! [`seeded`] redraws every weight from compworld's own generator instead, in the order the
//! module visits its parameters:
//!
//! - linear weights `[fan_in, fan_out]` and convolution weights `[out, in, k, k]`: uniform in
//!   `±1/sqrt(fan_in)` (burn's default scale); their biases: zero;
//! - embeddings (tokens and the three position tables): normal with standard deviation 0.5,
//!   the scale of a patch embedding at initialisation. With GPT-2's 0.02 the position signal
//!   of an image token was 3% of its content, the model took thousands of steps to find where
//!   patches are, and generated scattered patches;
//! - position tables: sine-cosine codes instead of noise, 2D (row and column, as in MAE and
//!   DiT) for the two image tables, 1D for text, so the model knows from step 1 which patches
//!   are neighbours (a 1M-parameter model trained for an hour cannot afford to discover it);
//! - layer norms: left at burn's ones and zeros.

use burn::module::{Module, ModuleMapper, Param, ParamId};
use burn::prelude::*;
use burn::tensor::TensorData;
use compworld::Rng;

/// Standard deviation of embedding tables at initialisation.
pub const EMBEDDING_STD: f32 = 0.5;

struct Seeded {
    rng: Rng,
    /// (field name, type of the struct that holds it) of the modules entered so far.
    path: Vec<(String, String)>,
}

impl ModuleMapper for Seeded {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.path
            .push((name.to_string(), container_type.to_string()));
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (field, holder) = self
            .path
            .last()
            .map(|(n, t)| (n.as_str(), t.as_str()))
            .unwrap_or(("", ""));
        let (field, holder) = (field.to_string(), holder.to_string());
        // The field that holds the embedding module (e.g. `gen_pos`).
        let parent = self
            .path
            .len()
            .checked_sub(2)
            .map_or(String::new(), |i| self.path[i].0.clone());
        let rng = &mut self.rng;
        param.map(|t| {
            let dims = t.dims();
            let n: usize = dims.iter().product();
            let values: Option<Vec<f32>> = match (holder.as_str(), field.as_str()) {
                ("Struct:Embedding", "weight")
                    if matches!(parent.as_str(), "und_pos" | "gen_pos") =>
                {
                    Some(sincos_2d(dims[0], dims[1]))
                }
                ("Struct:Embedding", "weight") if parent == "text_pos" => {
                    Some(sincos_1d(dims[0], dims[1]))
                }
                ("Struct:Linear", "weight") => {
                    let bound = 1.0 / (dims[0] as f32).sqrt();
                    Some((0..n).map(|_| rng.range_f32(-bound, bound)).collect())
                }
                ("Struct:Linear" | "Struct:Conv2d", "bias") => Some(vec![0.0; n]),
                ("Struct:Conv2d", "weight") => {
                    // [out, in, k, k]: fan-in is in * k * k.
                    let bound = 1.0 / ((n / dims[0]) as f32).sqrt();
                    Some((0..n).map(|_| rng.range_f32(-bound, bound)).collect())
                }
                ("Struct:Embedding", "weight") => {
                    Some((0..n).map(|_| rng.normal() * EMBEDDING_STD).collect())
                }
                _ => None,
            };
            match values {
                // Keep the parameter trainable: a fresh tensor does not inherit that.
                Some(v) => Tensor::from_data(TensorData::new(v, dims), &t.device())
                    .set_require_grad(t.is_require_grad()),
                None => t,
            }
        })
    }
}

/// Sine-cosine codes of positions `0..n`, `[n, d]` flattened: for frequency
/// `w_i = 10000^(-i / (d/2))`, `sin(p w_i)` in the first half and `cos(p w_i)` in the second.
fn sincos_1d(n: usize, d: usize) -> Vec<f32> {
    let half = d / 2;
    let mut v = vec![0.0; n * d];
    for p in 0..n {
        for i in 0..half {
            let w = (10_000f32).powf(-(i as f32) / half as f32);
            v[p * d + i] = (p as f32 * w).sin();
            v[p * d + half + i] = (p as f32 * w).cos();
        }
    }
    v
}

/// 2D codes of the `n = g x g` patches of a row-major grid, `[n, d]` flattened: the first half
/// of each row codes the patch's row, the second half its column (1D codes of width `d/2`).
fn sincos_2d(n: usize, d: usize) -> Vec<f32> {
    let g = (n as f64).sqrt().round() as usize;
    let half = d / 2;
    let rows = sincos_1d(g, half);
    let mut v = vec![0.0; n * d];
    for p in 0..n {
        let (r, c) = (p / g.max(1), p % g.max(1));
        v[p * d..p * d + half].copy_from_slice(&rows[r * half..(r + 1) * half]);
        v[p * d + half..(p + 1) * d].copy_from_slice(&rows[c * half..(c + 1) * half]);
    }
    v
}

/// `module` with every linear and embedding weight redrawn from `seed`.
pub fn seeded<M: Module>(module: M, seed: u64) -> M {
    module.map(&mut Seeded {
        rng: Rng::derive(seed, "init"),
        path: Vec::new(),
    })
}

/// Draws the `A` factor of every LoRA adapter in `module` from `seed` (normal, standard
/// deviation `1 / rank`, burn's default), so that a run's adapters depend on its seed and not
/// on the backend's generator. `B` stays zero: attaching adapters leaves the model's outputs
/// unchanged.
pub fn seeded_lora<M: Module>(module: M, seed: u64, stream: &str) -> M {
    module.map(&mut SeededLora {
        rng: Rng::derive(seed, stream),
        path: Vec::new(),
    })
}

struct SeededLora {
    rng: Rng,
    path: Vec<(String, String)>,
}

impl ModuleMapper for SeededLora {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.path
            .push((name.to_string(), container_type.to_string()));
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let is_a = self
            .path
            .last()
            .is_some_and(|(n, t)| n == "a" && t.ends_with("LoraAdapter"));
        if !is_a {
            return param;
        }
        let rng = &mut self.rng;
        param.map(|t| {
            let dims = t.dims();
            let std = 1.0 / dims[D - 1] as f32;
            let v: Vec<f32> = (0..t.shape().num_elements())
                .map(|_| rng.normal() * std)
                .collect();
            Tensor::from_data(TensorData::new(v, dims), &t.device())
                .set_require_grad(t.is_require_grad())
        })
    }
}

struct Renumber(u64);

impl ModuleMapper for Renumber {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        self.0 += 1;
        let (_, tensor, mapper) = param.consume();
        Param::from_mapped_value(ParamId::from(self.0), tensor, mapper)
    }
}

/// `module` with its parameter ids set to 1, 2, 3, ... in visiting order.
///
/// The optimiser keeps its state per parameter id, and burn draws ids at random when a module
/// is built, so a model loaded from a checkpoint would not find its saved optimiser state.
/// Numbering the ids the same way at initialisation and after loading makes resuming exact.
pub fn renumber<M: Module>(module: M) -> M {
    module.map(&mut Renumber(0))
}

#[cfg(test)]
mod tests {
    use burn::optim::{GradientsParams, SgdConfig};
    use umm_model::{Umm, UmmConfig, UmmInput};

    use super::*;

    fn weights(m: &Umm) -> Vec<f32> {
        let mut v = Vec::new();
        for t in burn::store::ModuleSnapshot::collect(m, None, None, false) {
            let bytes = t.to_bytes().unwrap();
            v.extend(
                bytes
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            );
        }
        v
    }

    #[test]
    fn image_position_codes_put_neighbours_close() {
        let (n, d) = (64, 128);
        let v = sincos_2d(n, d);
        let dist = |a: usize, b: usize| -> f32 {
            (0..d)
                .map(|k| (v[a * d + k] - v[b * d + k]).powi(2))
                .sum::<f32>()
                .sqrt()
        };
        // Patch 27 is row 3, column 3 of the 8x8 grid.
        let (right, below, far, diagonal_far) =
            (dist(27, 28), dist(27, 35), dist(27, 31), dist(27, 63));
        assert!(
            right > 0.1 && (right - below).abs() < 1e-4,
            "{right} {below}"
        );
        assert!(
            far > 2.0 * right && diagonal_far > far,
            "{right} {far} {diagonal_far}"
        );
        // Same row, same first half; same column, same second half.
        assert_eq!(v[27 * d..27 * d + 64], v[31 * d..31 * d + 64]);
        assert_eq!(v[27 * d + 64..28 * d], v[59 * d + 64..60 * d]);
    }

    #[test]
    fn seeded_weights_are_reproducible_and_trainable() {
        let device = Device::flex().autodiff();
        let cfg = UmmConfig::micro();
        let a = seeded(Umm::init(&cfg, &device), 5);
        let b = seeded(Umm::init(&cfg, &device), 5);
        let c = seeded(Umm::init(&cfg, &device), 6);
        assert_eq!(weights(&a), weights(&b));
        assert_ne!(weights(&a), weights(&c));
        // One SGD step changes every parameter tensor that gets a gradient: redrawn weights
        // must still require gradients.
        let text =
            Tensor::<2, Int>::from_data(TensorData::new(vec![1i64, 7, 9, 2], [1, 4]), &device);
        let out = a.forward(UmmInput {
            text,
            und_image: None,
            gen_image: None,
        });
        let grads = GradientsParams::from_grads(out.logits.sum().backward(), &a);
        let before = weights(&a);
        let mut opt = SgdConfig::new().init();
        let after = weights(&opt.step(0.1, a, grads));
        let changed = before.iter().zip(&after).filter(|(x, y)| x != y).count();
        assert!(
            changed > before.len() / 4,
            "{changed} of {} weights moved",
            before.len()
        );
    }
}
