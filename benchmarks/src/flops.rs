//! Analytic FLOP counts of the unified model (a multiply-add is 2 FLOPs).
//!
//! A forward pass over `batch` rows of `text` text tokens, `und` understanding-image tokens and
//! `gen` generation tokens (`s = text + und + gen`), with width `d`, `L` layers, MLP ratio `r`,
//! vocabulary `V`, patch dimension `P = 3 p^2`, stem channels `c`, image side `H`:
//!
//! | part | FLOPs |
//! |---|---|
//! | layer projections (QKV, O, MLP; one expert per token) | `L * batch * s * 2 (4 + 2 r) d^2` |
//! | attention scores and weighted sum | `L * batch * 4 s^2 d` |
//! | understanding stem (two 3x3 convolutions) | `batch * 2 * 9 H^2 (3 c + c^2)` (if `und > 0`) |
//! | understanding patch embedding | `batch * und * 2 (c p^2) d` (or `P d` without a stem) |
//! | understanding encoder layers | as the layer rows with `s = und` |
//! | generation patch embedding, time MLP | `batch * (gen * 2 P d + 2 (f d + d^2))` (if `gen > 0`) |
//! | heads | `batch * (text * 2 d V + gen * 2 d P)` |
//!
//! Element-wise work (norms, softmax, GELU, the mask, the loss) is left out, as in the usual
//! `6 N` rule: it is memory-bound and a small share of the arithmetic. A training step counts
//! three forward passes (the backward pass costs about two).

use umm_model::UmmConfig;

/// Token counts of one forward pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pass {
    pub batch: usize,
    pub text: usize,
    pub und: usize,
    pub gen_tokens: usize,
}

/// Layer projections and attention of `layers` layers over `s` tokens per row.
fn layers(c: &UmmConfig, n: usize, batch: usize, s: usize) -> f64 {
    let (d, r) = (c.d_model as f64, c.mlp_ratio as f64);
    let (b, s) = (batch as f64, s as f64);
    n as f64 * b * (s * 2.0 * (4.0 + 2.0 * r) * d * d + 4.0 * s * s * d)
}

/// FLOPs of one forward pass.
pub fn forward(c: &UmmConfig, p: Pass) -> f64 {
    let d = c.d_model as f64;
    let b = p.batch as f64;
    let pd = c.patch_dim() as f64;
    let s = p.text + p.und + p.gen_tokens;
    let mut f = layers(c, c.n_layers, p.batch, s);
    if p.und > 0 {
        let side = c.resolution as f64;
        let ch = c.und_stem as f64;
        let embed_in = if c.und_stem > 0 {
            f += b * 2.0 * 9.0 * side * side * (3.0 * ch + ch * ch);
            ch * (c.patch * c.patch) as f64
        } else {
            pd
        };
        f += b * p.und as f64 * 2.0 * embed_in * d;
        f += layers(c, c.und_encoder_layers, p.batch, p.und);
    }
    if p.gen_tokens > 0 {
        let tf = c.time_freq_dim as f64;
        f += b * (p.gen_tokens as f64 * 2.0 * pd * d + 2.0 * (tf * d + d * d));
        f += b * p.gen_tokens as f64 * 2.0 * d * pd;
    }
    f + b * p.text as f64 * 2.0 * d * c.vocab_size as f64
}

/// FLOPs of one training step: three times the forward passes.
pub fn train_step(c: &UmmConfig, passes: &[Pass]) -> f64 {
    3.0 * passes.iter().map(|&p| forward(c, p)).sum::<f64>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_one_layer_text_only_pass_counts_by_hand() {
        // d = 4, r = 2, one layer, no stem: 2 rows of 3 text tokens.
        let c = UmmConfig {
            d_model: 4,
            n_layers: 1,
            n_heads: 1,
            mlp_ratio: 2,
            vocab_size: 10,
            und_stem: 0,
            und_encoder_layers: 0,
            ..UmmConfig::micro()
        };
        let p = Pass {
            batch: 2,
            text: 3,
            und: 0,
            gen_tokens: 0,
        };
        // Projections: 6 tokens * 2 * 8 * 16 = 1536; attention: 2 * 4 * 9 * 4 = 288;
        // lm head: 6 tokens * 2 * 4 * 10 = 480.
        assert_eq!(forward(&c, p), 1536.0 + 288.0 + 480.0);
        assert_eq!(train_step(&c, &[p, p]), 6.0 * (1536.0 + 288.0 + 480.0));
    }

    #[test]
    fn the_tiny_generation_pass_is_dominated_by_its_layers() {
        let c = UmmConfig::tiny();
        let p = Pass {
            batch: 32,
            text: 16,
            und: 0,
            gen_tokens: 64,
        };
        let f = forward(&c, p);
        let l = layers(&c, 4, 32, 80);
        // 32 rows * 80 tokens * 4 layers * 2 * 8 * 128^2 = 2.68 GFLOP of projections alone.
        assert!((l - (2.68e9 + 4.0 * 32.0 * 4.0 * 6400.0 * 128.0)).abs() < 0.01e9);
        assert!(f > l && f < 1.2 * l, "{f} vs {l}");
    }
}
