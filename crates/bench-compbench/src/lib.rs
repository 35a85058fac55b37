//! bench-compbench: the CompBench-style benchmark harness.
//!
//! - **On compworld** ([`harness`]): the eight T2I-CompBench++ categories (colour, shape,
//!   texture, 2D spatial, 3D spatial, numeracy, non-spatial, complex), the frozen val prompts
//!   of each (`datasets/splits/val.tsv`), N images per prompt with fixed seeds (the official
//!   protocol is 10 per prompt, seeds 42..51; N is a parameter), every image scored by
//!   `scene-oracle`, a mean per category and `overall` = the mean of the categories (as the
//!   SRUM paper aggregates). Outputs: `summary.json`, `per_image.csv`, `summary.md` and one
//!   image grid per category ([`report`]).
//! - **Any model** ([`generator`]): a [`Generator`] trait with the project's UMM behind it,
//!   a folder of images made elsewhere (so scoring can be rerun without regenerating), the
//!   true renders (a perfect generator, for tests) and noise.
//! - **Paired comparison** ([`compare`]): two runs of one plan, prompt by prompt, with the
//!   standard error of their difference (`cargo xtask bench compare`).
//! - **Official interop** ([`official`], [`geneval`]): read the official T2I-CompBench prompt
//!   files; write images in its layout (`<category>/samples/{prompt}_{NNNNNN}.png`,
//!   NNNNNN = prompt index x N + sample index) for its BLIP-VQA / UniDet / CLIPScore / 3-in-1
//!   scripts; read their `vqa_result.json` back into the same summary; write GenEval's layout
//!   (`NNNNN/metadata.jsonl`, `NNNNN/samples/NNNN.png`).
//!
//! This crate may use the judge (`scene-oracle`); nothing that trains or rewards a model may
//! depend on this crate (`cargo xtask firewall`).

pub mod compare;
pub mod error;
pub mod generator;
pub mod geneval;
pub mod harness;
pub mod official;
pub mod report;

pub use error::{Error, Result};
pub use generator::{FolderImages, Generator, NoiseImages, Request, TrueRenders, UmmGenerator};
pub use harness::{BenchConfig, Plan, run};
pub use report::{ImageScore, Report};

/// The first seed of the official protocol (T2I-CompBench samples seeds 42..51).
pub const FIRST_SEED: u64 = 42;
/// Images per prompt by default. The official protocol uses 10; 4 keeps a tiny-preset run on
/// the 397 val prompts to about 4 minutes on a 2-core CPU (1,588 images).
pub const DEFAULT_SAMPLES: usize = 4;
