//! umm-model: the unified multimodal model of SRUM-rs (DESIGN.md section 4), a small BAGEL-like
//! Mixture-of-Transformers that both answers questions about images and generates images.
//!
//! - [`tokenizer`]: a closed word-level vocabulary behind a trait, so a real tokenizer can be
//!   plugged in;
//! - [`config`]: documented fields, named presets, TOML in and out;
//! - [`model`]: the Burn Mixture-of-Transformers forward pass (understanding logits and
//!   generation velocities), with its attention mask, and image patchify/unpatchify;
//! - [`checkpoint`]: safetensors weights plus a TOML sidecar, written atomically, checked on load;
//! - [`sampler`]: Euler and Heun rectified-flow integration with classifier-free guidance;
//! - [`understand`]: asking the model about images (question format, greedy answers, yes/no
//!   probabilities), the one way training, evaluation and the self-rewards ask;
//! - [`optim`]: burn's AdamW, with an in-place update on libtorch.
//!
//! **Invariant:** umm-model knows nothing about rewards or the benchmark oracle.

pub mod checkpoint;
pub mod config;
pub mod fused;
pub mod model;
pub mod optim;
pub mod sampler;
pub mod tokenizer;
pub mod understand;

pub use config::UmmConfig;
pub use model::{Block, Umm, UmmInput, UmmOutput, attention, patchify, unpatchify};
pub use tokenizer::{Tokenizer, WordTokenizer};

/// Everything that can go wrong in umm-model. Messages are one line and name the culprit.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A word outside the tokenizer's vocabulary.
    #[error("unknown word '{word}' in \"{text}\" (not in the model's vocabulary)")]
    UnknownWord { word: String, text: String },
    /// A token id outside the vocabulary.
    #[error("token id {0} is outside the vocabulary of {1} tokens")]
    BadTokenId(u32, usize),
    /// A malformed or inconsistent configuration.
    #[error("{0}")]
    Config(String),
    /// A checkpoint that cannot be written or read, or does not match its configuration.
    #[error("{0}")]
    Checkpoint(String),
}

/// Result with the crate's error.
pub type Result<T> = std::result::Result<T, Error>;
