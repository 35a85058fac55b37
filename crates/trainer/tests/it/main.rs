//! Integration tests of the trainer (release profile: `cargo test --workspace --release`).

mod config;
mod pretrain;
mod shipped;
