//! Model configuration: every field documented, named presets, TOML in and out with unknown
//! keys rejected.
//!
//! Sizes of the presets, for the Mixture-of-Transformers (two experts, each with its own norms,
//! QKV/O and MLP per layer: about `(4 + 2 * mlp_ratio) * d_model^2` weights per expert and
//! layer): the transformer layers of `tiny` hold about 1.05M weights (the CPU default; 1.23M
//! with embeddings, the understanding stem and the heads, as shipped), `small` about 6.3M,
//! `base` about 75M (GPU), `micro` about 33k (tests).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Configuration of the unified model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UmmConfig {
    /// Width of every token, text and image alike.
    pub d_model: usize,
    /// Number of transformer layers.
    pub n_layers: usize,
    /// Attention heads per layer; must divide `d_model`.
    pub n_heads: usize,
    /// MLP hidden width as a multiple of `d_model`.
    pub mlp_ratio: usize,
    /// `false`: Mixture-of-Transformers, separate weights (norms, QKV/O, MLP) for
    /// understanding tokens (text and clean image) and generation tokens (BAGEL-like).
    /// `true`: one shared set of weights (Janus/Show-o-like dense model).
    pub dense: bool,
    /// Image side in pixels: 32 (default) or 64.
    pub resolution: usize,
    /// Side of a square image patch in pixels; each patch is one token.
    pub patch: usize,
    /// Longest text, in tokens, including the begin and end tokens.
    pub max_text_len: usize,
    /// Size of the text vocabulary; must match the tokenizer's.
    pub vocab_size: usize,
    /// Width of the sinusoidal timestep features fed to the timestep MLP.
    pub time_freq_dim: usize,
    /// `true`: the generation head predicts the clean patches and the velocity is derived
    /// from them, `v = (x_t - x0_hat) / max(t, 0.05)` (x-prediction, as in Li and He's JiT,
    /// 2025: clean images are easier for a small network to predict than noise).
    /// `false`: the head predicts the velocity directly.
    #[serde(default = "default_true")]
    pub predict_clean: bool,
    /// Channels of the convolutional stem of the understanding image path: two 3x3
    /// convolutions (3 -> c -> c, GELU) before the 4x4 patches are embedded, so each
    /// understanding token sees an 8x8 neighbourhood and has edge and texture features to
    /// work with (after Xiao et al., 2021, "Early convolutions help transformers see
    /// better"; BAGEL likewise gives understanding its own vision encoder). `0`: a plain
    /// linear patch embedding. Generation always uses plain pixel patches.
    #[serde(default)]
    pub und_stem: usize,
    /// Transformer layers that see only the understanding image, run before the shared
    /// stack (a small vision encoder, as BAGEL's ViT), so the question reads objects already
    /// found rather than raw patches. `0`: none, as in the presets: two such layers on the
    /// tiny preset cost about 15% of its throughput and, after 1,000 steps, had not changed
    /// its accuracy on whole-scene questions.
    #[serde(default)]
    pub und_encoder_layers: usize,
    /// `true`: the flow time also modulates every layer's generation tokens, adaLN-Zero as in
    /// DiT (Peebles and Xie, 2023): per layer a linear map of the time embedding gives a shift,
    /// a scale and a gate for the attention and the MLP branch, zero-initialised so each branch
    /// starts closed. `false`: the time embedding is only added to the generation tokens at the
    /// input. It adds `n_layers * 6 d (d + 1)` weights and no per-token matrix products.
    /// Measured on the tiny preset (generation-only single-object probes, README): a little
    /// ahead after 3,000 steps (0.263 against 0.244), well behind after 8,000 (0.287 against
    /// 0.431) at the same loss; off in every preset.
    #[serde(default)]
    pub gen_adaln: bool,
    /// `true`: a fixed two-dimensional sinusoidal code of each understanding patch's column
    /// and row (half the width for each axis, after the 2D codes of MAE, He et al. 2022) is
    /// added to the learned understanding positions, so where a patch lies can be read off
    /// its token by a linear map from the first step: the lowest frequency is monotonic
    /// across the image, which is what "left of" and "above" compare. `false` (the shipped
    /// base): learned positions alone. Adds no weights. Written only when on, so configs
    /// and checkpoints without it read as before. Measured (README, "Why relations sit at
    /// chance"): switched on over the shipped base it did not help relation questions (0.460
    /// against 0.430 after 1,500 steps); what did was position questions and side words.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub und_pos_2d: bool,
    /// `true`: the model answers "does this image show : <prompt> ?" with its reasons first,
    /// each constraint of the prompt named by one word and judged, then `:` and the verdict
    /// ("circle yes squares no left yes : no", `compworld::vqa::rationale`); pretraining
    /// teaches that answer and every reader of a prompt match (evaluation, the global reward)
    /// decodes the reasons greedily and reads the verdict's yes/no probabilities
    /// ([`crate::understand::prompt_match_yes_no`]). `false` (every shipped or kept base;
    /// measured on dev, reasons did not help, README "Answers with reasons"): a bare "yes" or
    /// "no" at `<ans>`. Adds no weights. Written only when on.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub prompt_match_rationale: bool,
}

fn default_true() -> bool {
    true
}

/// The smallest time the x-prediction velocity divides by.
pub const MIN_FLOW_TIME: f32 = 0.05;

/// Names accepted by [`UmmConfig::preset`].
pub const PRESETS: [&str; 4] = ["micro", "tiny", "small", "base"];

impl UmmConfig {
    fn with(d_model: usize, n_layers: usize, n_heads: usize) -> Self {
        use crate::Tokenizer;
        UmmConfig {
            d_model,
            n_layers,
            n_heads,
            mlp_ratio: 2,
            dense: false,
            resolution: 32,
            patch: 4,
            max_text_len: 48,
            vocab_size: crate::WordTokenizer::compworld().vocab_size(),
            time_freq_dim: 64,
            predict_clean: true,
            und_stem: 32,
            und_encoder_layers: 0,
            gen_adaln: false,
            und_pos_2d: false,
            prompt_match_rationale: false,
        }
    }

    /// About 33k transformer weights, for tests.
    pub fn micro() -> Self {
        UmmConfig {
            time_freq_dim: 16,
            und_stem: 8,
            // One layer, so the tests exercise the encoder path.
            und_encoder_layers: 1,
            ..Self::with(32, 2, 2)
        }
    }

    /// About 1.05M transformer weights: the CPU default.
    pub fn tiny() -> Self {
        Self::with(128, 4, 4)
    }

    /// About 6.3M transformer weights.
    pub fn small() -> Self {
        Self::with(256, 6, 8)
    }

    /// About 75M transformer weights (GPU).
    pub fn base() -> Self {
        UmmConfig {
            mlp_ratio: 4,
            ..Self::with(512, 12, 8)
        }
    }

    /// A preset by name (`micro`, `tiny`, `small`, `base`).
    pub fn preset(name: &str) -> Result<Self> {
        match name {
            "micro" => Ok(Self::micro()),
            "tiny" => Ok(Self::tiny()),
            "small" => Ok(Self::small()),
            "base" => Ok(Self::base()),
            other => Err(Error::Config(format!(
                "unknown preset '{other}' (expected one of: {})",
                PRESETS.join(", ")
            ))),
        }
    }

    /// Checks that the fields fit together.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Config(m));
        if self.d_model == 0 || self.n_layers == 0 || self.n_heads == 0 || self.mlp_ratio == 0 {
            return bad("d_model, n_layers, n_heads and mlp_ratio must be positive".into());
        }
        if !self.d_model.is_multiple_of(self.n_heads) {
            return bad(format!(
                "n_heads = {} does not divide d_model = {}",
                self.n_heads, self.d_model
            ));
        }
        if self.resolution != 32 && self.resolution != 64 {
            return bad(format!(
                "resolution must be 32 or 64, got {}",
                self.resolution
            ));
        }
        if self.patch == 0 || !self.resolution.is_multiple_of(self.patch) {
            return bad(format!(
                "patch = {} does not divide resolution = {}",
                self.patch, self.resolution
            ));
        }
        if self.und_pos_2d && !self.d_model.is_multiple_of(4) {
            return bad(format!(
                "und_pos_2d needs d_model divisible by 4, got {}",
                self.d_model
            ));
        }
        if self.max_text_len < 3 || self.vocab_size == 0 || !self.time_freq_dim.is_multiple_of(2) {
            return bad(
                "max_text_len >= 3, vocab_size > 0 and an even time_freq_dim are required".into(),
            );
        }
        Ok(())
    }

    /// Image tokens per image (`(resolution / patch)^2`: 64 at 32x32 with 4x4 patches).
    pub fn image_tokens(&self) -> usize {
        (self.resolution / self.patch).pow(2)
    }

    /// Values per patch token (`3 * patch^2`).
    pub fn patch_dim(&self) -> usize {
        3 * self.patch * self.patch
    }

    /// The configuration as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a config always serialises")
    }

    /// Parses TOML; unknown keys, missing keys and inconsistent values are errors.
    pub fn from_toml(text: &str) -> Result<Self> {
        let c: UmmConfig = toml::from_str(text)
            .map_err(|e| Error::Config(format!("bad model config: {}", e.message().trim_end())))?;
        c.validate()?;
        Ok(c)
    }

    /// Reads a TOML file; errors name the file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Config(format!("reading {}: {e}", path.display())))?;
        Self::from_toml(&text).map_err(|e| Error::Config(format!("{}: {e}", path.display())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_valid_and_round_trip() {
        for name in PRESETS {
            let c = UmmConfig::preset(name).unwrap();
            c.validate().unwrap();
            assert_eq!(UmmConfig::from_toml(&c.to_toml()).unwrap(), c, "{name}");
        }
        let t = UmmConfig::tiny();
        assert_eq!((t.image_tokens(), t.patch_dim()), (64, 48));
    }

    #[test]
    fn bad_configs_give_clear_errors() {
        let e = UmmConfig::preset("huge").unwrap_err().to_string();
        assert!(
            e.contains("unknown preset 'huge'") && e.contains("tiny"),
            "{e}"
        );

        let mut text = UmmConfig::tiny().to_toml();
        text.push_str("dropout = 0.1\n");
        let e = UmmConfig::from_toml(&text).unwrap_err().to_string();
        assert!(e.contains("unknown field") && e.contains("dropout"), "{e}");

        let text = UmmConfig::tiny()
            .to_toml()
            .replace("n_heads = 4", "n_heads = 3");
        let e = UmmConfig::from_toml(&text).unwrap_err().to_string();
        assert!(
            e.contains("n_heads = 3 does not divide d_model = 128"),
            "{e}"
        );

        let e = UmmConfig::from_toml("d_model = [").unwrap_err().to_string();
        assert!(e.starts_with("bad model config"), "{e}");

        let text = UmmConfig::tiny()
            .to_toml()
            .replace("resolution = 32", "resolution = 48");
        assert!(
            UmmConfig::from_toml(&text)
                .unwrap_err()
                .to_string()
                .contains("32 or 64")
        );

        let e = UmmConfig::from_file(Path::new("/nonexistent/model.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/model.toml"), "{e}");
    }
}
