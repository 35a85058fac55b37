//! trainer: pretraining of the unified model on compworld (and, in later issues, SRUM
//! post-training), plus the `srum` command-line tool.
//!
//! - [`data`]: the on-the-fly data stream and its mixture, batching for both tasks;
//! - [`pretrain`]: the loop (AdamW, warm-up + cosine, clipping, checkpoints, metrics);
//! - [`eval`]: understanding accuracy read off the model's own answers (no oracle here);
//! - [`device`]: the one place the backend is chosen;
//! - [`init`]: seeded, backend-independent weight initialisation;
//! - [`ema`]: a moving average of the weights, kept beside training.
//!
//! **Invariant:** nothing here depends on `scene-oracle` (`cargo xtask firewall` checks it).

pub mod bench;
pub mod data;
pub mod device;
pub mod ema;
pub mod eval;
pub mod init;
pub mod pretrain;
pub mod reward_cmd;
pub mod srum;

/// Everything that can go wrong in training. Messages are one line and name the culprit.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A malformed or inconsistent configuration.
    #[error("{0}")]
    Config(String),
    /// A file that cannot be read or written.
    #[error("{0}")]
    Io(String),
    /// A checkpoint problem.
    #[error("{0}")]
    Checkpoint(String),
    /// A backend that is not built in or cannot start.
    #[error("{0}")]
    Device(String),
    /// The loss stopped being finite.
    #[error("training diverged at step {0}: understanding loss {1}, generation loss {2}")]
    Diverged(u64, f32, f32),
    /// An error from the model crate.
    #[error(transparent)]
    Model(#[from] umm_model::Error),
}

/// Result with the crate's error.
pub type Result<T> = std::result::Result<T, Error>;
