//! Integration tests of the trainer (release profile: `cargo test --workspace --release`).

mod backends;
mod cli;
mod config;
mod pretrain;
mod reward;
mod shipped;
mod srum;
