//! reward-local: the local half of SRUM's self-reward (DESIGN.md section 1, steps 2, 3 and 5).
//!
//! - [`proposer`]: class-agnostic region proposals from pixels alone (colour-similarity
//!   components at several thresholds and whole foreground components, boxes sorted by area,
//!   top K), the stand-in for the reference's SAM automatic masks;
//! - [`phrases`]: the noun phrases a prompt literally states ("two striped red circles");
//! - [`region`]: each proposed region cropped, resized to the canvas and named by the model
//!   itself ("what is this ?"), the name scored against the prompt's phrases in [-1, 1];
//! - [`map`]: reward maps (`unit` as the reference code, `signed` as the paper's prose, bounded;
//!   `binary` as the paper's ablation), switches for the global and local parts, and the map
//!   averaged down to one weight per generation token.
//!
//! **Invariant:** nothing here depends on the benchmark oracle or reads a scene's ground truth:
//! the reward sees the prompt's text, the model and the pixels (`cargo xtask firewall`).

pub mod map;
pub mod phrases;
pub mod proposer;
pub mod region;

pub use map::{MapConfig, MapMode, ScoredBox, reward_map, token_weights};
pub use proposer::{BoxPx, ProposerConfig, propose};
pub use region::{ImageRegions, RegionScore, RegionScoring, score_regions, score_regions_with};

/// Everything that can go wrong in reward-local. Messages are one line and name the culprit.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad input: an image of the wrong size, an empty prompt.
    #[error("{0}")]
    Input(String),
    /// The model failed (e.g. a word outside its vocabulary).
    #[error(transparent)]
    Model(#[from] umm_model::Error),
}

/// Result with the crate's error.
pub type Result<T> = std::result::Result<T, Error>;
