//! compworld: the synthetic world every SRUM-rs experiment lives in.
//!
//! Scenes of 1 to 6 objects (shape, colour, texture, size, position, drawing order) on a plain
//! background, a deterministic anti-aliased renderer (32x32 by default, 64x64 optional), and a
//! prompt language in the grammar of T2I-CompBench's eight categories and of four
//! T2I-ReasonBench-like reasoning dimensions. Every prompt carries its explicit meaning: the
//! phrases, counts and relations a correct image satisfies (see DESIGN.md section 2).
//!
//! **Invariant:** this crate knows nothing about models, rewards or the benchmark oracle.

pub mod caption;
pub mod error;
pub mod generate;
pub mod prompt;
pub mod render;
pub mod rng;
pub mod sampler;
pub mod scene;
pub mod splits;
pub mod violation;
pub mod vqa;
pub mod world;

pub use caption::caption;
pub use error::{Error, Result};
pub use generate::generate;
pub use prompt::{Category, Constraint, Meaning, Prompt, Relation};
pub use render::{Image, render};
pub use rng::Rng;
pub use sampler::sample_scene;
pub use scene::{Object, Scene};
pub use world::{Colour, Shape, Size, Texture};

/// Default canvas resolution in pixels.
pub const DEFAULT_RESOLUTION: usize = 32;
