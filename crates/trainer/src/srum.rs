//! SRUM post-training (DESIGN.md section 1) and its SFT baseline.
//!
//! One round:
//!
//! 1. **Candidates.** The model at the start of the round generates `candidates_per_prompt`
//!    images for each training prompt, each from its own seeded noise. Images are kept as an
//!    8-bit PNG stores them, so a resumed run trains on exactly the same pixels.
//! 2. **Self-reward** (SRUM only). A frozen snapshot of the same round-start model scores each
//!    image ([`reward_global::self_rewards`]: global score, region scores, reward map, one
//!    weight per generation token). It is loaded from the round-start checkpoint on the
//!    inference device and never trained, so the judge cannot drift while it is trained
//!    against. Samples with `g = 0` are dropped (as in the reference).
//! 3. **Update.** The weighted flow-matching loss on the candidates,
//!    `L = mean(r * err) + lambda * mean(err)`, `err` the per-token squared velocity error and
//!    `r` the token weights; the SFT baseline uses `mean(err)` on the same images. Times are
//!    logit-normal (`t = sigmoid(n)`, `n ~ N(0, 1)`), the prompt is dropped with probability
//!    `text_dropout`, AdamW (beta 0.9, 0.95), gradients clipped to a global L2 norm, linear
//!    warm-up then cosine decay. Scope `all` trains every weight (both experts, as the
//!    reference did); `gen-expert` only the generation side
//!    ([`Umm::generation_param_ids`]); `gen-expert` with `lora_rank > 0` freezes every weight
//!    and trains LoRA adapters on the generation expert's matrices (burn's
//!    [`Module::apply_lora`], merged into the weights at the end of each round).
//!
//! Later rounds regenerate with the improved model. Each round starts a fresh optimiser and
//! schedule (it is a new fine-tuning set).
//!
//! A run folder:
//!
//! ```text
//! runs/srum-tiny/
//!   config.toml                 the run's configuration, written before anything else
//!   metrics.csv                 round, step, lr, loss parts, mean reward, grad norm, throughput
//!   rounds.csv                  one row of reward statistics and phase times per round
//!   rounds/round-0/samples.png  the fixed prompts from the base model (rows: prompts)
//!   rounds/round-1/
//!     candidates/NNNNNN-C.png   the round's generations (prompt index, candidate)
//!     candidates.jsonl          one record per candidate: prompt, seed, g, kept, regions,
//!                               token weights (written last: its presence marks the phase done)
//!     overlays.png              the first 16 candidates beside their reward maps (SRUM)
//!     samples.png, stats.json, model.safetensors (+ .meta.toml)
//!   checkpoints/r01-s000050/    model, optimiser state and position, written atomically
//!   model.safetensors           the final weights (+ .meta.toml)
//! ```
//!
//! **Resume.** Every random draw is a function of the seed, the round and the step, and a
//! checkpoint directory is complete or absent (written under a temporary name, every file
//! fsynced, then renamed), so a run killed at any moment and resumed with
//! [`SrumOptions::resume`] ends with the same weights as an unbroken run.
//!
//! **Invariant:** nothing here reads the benchmark oracle, and the prompt split must be a
//! training split (a split file whose header names val or test is refused).

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::{Lora, Module, ModuleVisitor, Param, ParamGroup, ParamId};
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use burn::tensor::TensorData;
use compworld::render::contact_sheet;
use compworld::splits::load_split;
use compworld::{Category, Image, Prompt, Rng, Scene, render, sample_scene};
use indicatif::{ProgressBar, ProgressStyle};
use reward_global::{GlobalMode, RewardConfig, self_rewards};
use reward_local::{MapConfig, MapMode, ProposerConfig, RegionScoring};
use serde::{Deserialize, Serialize};
use umm_model::checkpoint::{self, CheckpointMeta};
use umm_model::sampler::{SampleConfig, Solver, generate_from_noise, image_noise, to_images};
use umm_model::tokenizer::{BOS, EOS};
use umm_model::understand::images_tensor;
use umm_model::{Tokenizer, Umm, UmmConfig, WordTokenizer, patchify};

use crate::data::TimeFocus;
use crate::{Error, Result};

/// SRUM or its SFT baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// Reward-weighted loss plus the unweighted constraint.
    Srum,
    /// The plain flow loss on the same self-generated images (no rewards computed).
    Sft,
}

impl Method {
    /// The name in configuration files and `rounds.csv`.
    pub fn name(self) -> &'static str {
        match self {
            Method::Srum => "srum",
            Method::Sft => "sft",
        }
    }

    /// The `srum` subcommand that runs it.
    pub fn command(self) -> &'static str {
        match self {
            Method::Srum => "train",
            Method::Sft => "sft",
        }
    }
}

/// Which weights are updated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scope {
    /// Every weight (both experts), as the reference.
    All,
    /// The generation side only (see [`Umm::generation_param_ids`]).
    GenExpert,
}

/// How flow times are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TimeSampling {
    /// `t = sigmoid(n)`, `n ~ N(0, 1)` (the reference).
    LogitNormal,
    /// `t ~ U(0.001, 1)` (what pretraining used).
    Uniform,
}

/// Where a round's candidate images come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CandidateSource {
    /// The current model's own samples (SRUM and its SFT baseline).
    #[default]
    Model,
    /// A diagnostic, not SRUM: compworld's true render of each training prompt (a scene drawn
    /// from the prompt's meaning with the candidate's seed). Training on these is supervised
    /// training on the ground truth of the same prompts, with the same steps and optimiser: the
    /// ceiling a perfect reward filter could give this procedure. No oracle is involved (the
    /// scene is the prompt's meaning, drawn by compworld's sampler as pretraining draws it).
    Renders,
}

/// Where the training prompts come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromptConfig {
    /// A compworld split file (`category<TAB>unseen<TAB>prompt`); must be a training split.
    pub split: PathBuf,
    /// Prompts used, drawn evenly over the categories from a seeded shuffle (0: all).
    pub count: usize,
}

/// How candidates are sampled.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SamplerSettings {
    /// Integration steps.
    pub steps: usize,
    /// Classifier-free guidance scale.
    pub cfg_scale: f32,
    /// Guidance only at flow times above this (0, the default, guides every step; see
    /// `umm_model::sampler::SampleConfig::cfg_min_t`).
    #[serde(default)]
    pub cfg_min_t: f32,
    /// Heun's method instead of Euler's.
    pub heun: bool,
    /// Images per forward batch.
    pub batch: usize,
}

impl SamplerSettings {
    fn config(&self) -> SampleConfig {
        SampleConfig {
            steps: self.steps,
            cfg_scale: self.cfg_scale,
            cfg_min_t: self.cfg_min_t,
            solver: if self.heun {
                Solver::Heun
            } else {
                Solver::Euler
            },
            seed: 0,
        }
    }
}

/// The self-reward (ignored by SFT).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RewardSettings {
    /// Map mode: `unit` (the reference), `signed` or `binary`.
    pub map: MapMode,
    /// Use the global score (off: `g = 1`).
    pub use_global: bool,
    /// Use the region scores (off: `M = 1`).
    pub use_local: bool,
    /// How the global score is read: `combined`, `question` or `constraints`
    /// ([`reward_global::GlobalMode`]).
    pub global: GlobalMode,
    /// Depth of the signed map below zero; must stay below `train.lambda`.
    pub beta: f32,
    /// Regions proposed per image.
    pub top_k: usize,
    /// Drop samples whose global score is exactly 0 (the reference does).
    pub drop_zero_global: bool,
    /// Images scored per batch.
    pub batch: usize,
    /// How regions are scored: `greedy` (the reference: the greedy name through the table of
    /// `reward_local::region`), `marginal_shape` (the shape word's probabilities
    /// marginalised) or `questions` (yes/no questions about each crop;
    /// `reward_local::RegionScoring`). Absent in run folders written before it: greedy.
    #[serde(default)]
    pub regions: RegionScoring,
    /// Share of a round's scored candidates to train on, those with the highest global score
    /// (a rank-based threshold): when below 1, every g of the round is re-centred at the
    /// threshold between the kept and the rest (`g - tau`, clamped to [-1, 1]) before its map
    /// is built, so with the `binary` map exactly the top share has weight, whatever the scale
    /// of g. 1: off (absent in run folders written before it).
    #[serde(default = "keep_all")]
    pub keep_top: f32,
}

fn keep_all() -> f32 {
    1.0
}

impl RewardSettings {
    /// The reward crates' configuration, with the loss's `lambda`.
    pub fn reward_config(&self, lambda: f32) -> RewardConfig {
        RewardConfig {
            proposer: ProposerConfig {
                top_k: self.top_k,
                ..ProposerConfig::default()
            },
            map: MapConfig {
                mode: self.map,
                use_global: self.use_global,
                use_local: self.use_local,
                beta: self.beta,
                lambda,
            },
            global: self.global,
            regions: self.regions,
        }
    }
}

/// Optimisation of one round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostTrainConfig {
    /// Optimiser steps per round.
    pub steps_per_round: u64,
    /// Candidates per step.
    pub batch: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Steps of linear warm-up.
    pub warmup_steps: u64,
    /// The cosine decay ends at `lr * min_lr_ratio`.
    pub min_lr_ratio: f64,
    /// AdamW's first-moment decay.
    pub beta1: f32,
    /// AdamW's second-moment decay.
    pub beta2: f32,
    /// AdamW's decoupled weight decay.
    pub weight_decay: f32,
    /// The global L2 norm of the gradient is clipped to this.
    pub grad_clip: f32,
    /// Weight of the unweighted constraint term (SRUM only).
    pub lambda: f32,
    /// Probability of dropping the prompt (classifier-free guidance).
    pub text_dropout: f32,
    /// How flow times are drawn.
    pub time: TimeSampling,
    /// A share of each batch's times drawn uniformly from `t_focus_range` instead of by
    /// `time` (0: none, the default), as pretraining's `train.gen_t_focus` draws them: the
    /// shipped base was pretrained with half of its times in [0.6, 0.95], where the generator
    /// decides shapes.
    #[serde(default)]
    pub t_focus: f32,
    /// The window of `t_focus`, `[lo, hi]` within (0, 1].
    #[serde(default = "crate::pretrain::default_t_focus_range")]
    pub t_focus_range: [f32; 2],
    /// The x-prediction floor of [`crate::pretrain::gen_loss`] (0: plain velocity error).
    pub low_t_floor: f32,
    /// Which weights are updated.
    pub scope: Scope,
    /// Rank of the LoRA adapters on the generation expert's weight matrices (0: no LoRA, the
    /// weights of `scope` are trained directly). With a rank, `scope` must be `gen-expert`:
    /// every weight is frozen, the QKV, output and MLP matrices of each layer's generation
    /// expert get `W + (alpha / rank) * A B` with `A` drawn from the seed and `B = 0`, and only
    /// `A`, `B` are trained. The adapters are merged into the weights at the end of each round
    /// (the round's model is a plain checkpoint); the next round attaches fresh ones.
    #[serde(default)]
    pub lora_rank: usize,
    /// LoRA's scale numerator (the update is scaled by `lora_alpha / lora_rank`).
    #[serde(default = "default_lora_alpha")]
    pub lora_alpha: f64,
    /// Seed of the prompt choice, the candidates' noise and every training draw.
    pub seed: u64,
    /// Write a checkpoint every this many steps (0: only at the end of a round).
    pub checkpoint_every: u64,
    /// Append a metrics row every this many steps.
    pub log_every: u64,
}

/// Default [`PostTrainConfig::lora_alpha`].
pub const DEFAULT_LORA_ALPHA: f64 = 16.0;

fn default_lora_alpha() -> f64 {
    DEFAULT_LORA_ALPHA
}

/// The fixed prompts drawn after every round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GridSettings {
    /// Prompts, one row each (empty: the first training prompt of every category).
    pub prompts: Vec<String>,
    /// Images per prompt (columns).
    pub images_per_prompt: usize,
    /// Seed of the first column; column k uses seed + k.
    pub seed: u64,
}

/// `config.toml` of a SRUM (or SFT) run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SrumConfig {
    /// `srum` or `sft`.
    pub method: Method,
    /// The starting checkpoint (`.safetensors` with its `.meta.toml`).
    pub base: PathBuf,
    /// Rounds of generate, reward, train.
    pub rounds: u32,
    /// Images generated per prompt and round.
    pub candidates_per_prompt: usize,
    /// `model` (the default: the model's own samples) or `renders` (a diagnostic: compworld's
    /// true renders of the prompts; see [`CandidateSource`]).
    #[serde(default)]
    pub candidates: CandidateSource,
    pub prompts: PromptConfig,
    pub sampler: SamplerSettings,
    pub reward: RewardSettings,
    pub train: PostTrainConfig,
    pub samples: GridSettings,
}

/// The shipped base checkpoint, relative to the repository root.
pub const DEFAULT_BASE: &str = "datasets/checkpoints/base-tiny.safetensors";
/// The training split, relative to the repository root.
pub const DEFAULT_SPLIT: &str = "datasets/splits/train.tsv";

impl Default for SrumConfig {
    fn default() -> Self {
        SrumConfig {
            method: Method::Srum,
            base: DEFAULT_BASE.into(),
            rounds: 1,
            candidates_per_prompt: 1,
            candidates: CandidateSource::Model,
            prompts: PromptConfig {
                split: DEFAULT_SPLIT.into(),
                count: 1200,
            },
            sampler: SamplerSettings {
                steps: 20,
                cfg_scale: umm_model::sampler::DEFAULT_CFG_SCALE,
                cfg_min_t: 0.0,
                heun: false,
                batch: 64,
            },
            reward: RewardSettings {
                map: MapMode::Unit,
                use_global: true,
                use_local: true,
                global: GlobalMode::Combined,
                beta: 0.25,
                top_k: 10,
                drop_zero_global: true,
                regions: RegionScoring::Greedy,
                batch: 32,
                keep_top: 1.0,
            },
            train: PostTrainConfig {
                steps_per_round: 300,
                batch: 32,
                lr: 2e-4,
                warmup_steps: 20,
                min_lr_ratio: 0.1,
                beta1: 0.9,
                beta2: 0.95,
                weight_decay: 0.0,
                grad_clip: 1.0,
                lambda: 0.5,
                text_dropout: 0.1,
                time: TimeSampling::LogitNormal,
                t_focus: 0.0,
                t_focus_range: crate::pretrain::default_t_focus_range(),
                low_t_floor: crate::pretrain::DEFAULT_LOW_T_FLOOR,
                scope: Scope::All,
                lora_rank: 0,
                lora_alpha: DEFAULT_LORA_ALPHA,
                seed: 0,
                checkpoint_every: 50,
                log_every: 10,
            },
            samples: GridSettings {
                prompts: Vec::new(),
                images_per_prompt: 4,
                seed: 7,
            },
        }
    }
}

impl SrumConfig {
    /// Parses and checks a TOML configuration. Missing sections are errors (a run's
    /// `config.toml` is complete); write one with `srum train --print-config`.
    pub fn from_toml(text: &str) -> Result<Self> {
        crate::pretrain::parse_toml(text, Self::validate)
    }

    /// Reads a configuration file.
    pub fn from_file(path: &Path) -> Result<Self> {
        crate::pretrain::read_toml(path, Self::from_toml)
    }

    /// The TOML text.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("the configuration serialises")
    }

    /// Checks every field that could make a run meaningless or divergent.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::Config(m.to_string()));
        let t = &self.train;
        if self.rounds == 0 || self.candidates_per_prompt == 0 {
            return bad("rounds and candidates_per_prompt must be >= 1");
        }
        if t.steps_per_round == 0 || t.batch == 0 || t.log_every == 0 {
            return bad("train.steps_per_round, train.batch and train.log_every must be >= 1");
        }
        if self.sampler.steps == 0 || self.sampler.batch == 0 || self.reward.batch == 0 {
            return bad("sampler.steps, sampler.batch and reward.batch must be >= 1");
        }
        if !(0.0..=1.0).contains(&self.sampler.cfg_min_t) {
            return bad(
                "sampler.cfg_min_t must be in [0, 1] (guidance applies above this flow time)",
            );
        }
        if !(t.lr.is_finite() && t.lr > 0.0 && t.grad_clip > 0.0) {
            return bad("train.lr and train.grad_clip must be > 0");
        }
        if !(0.0..=1.0).contains(&t.min_lr_ratio)
            || !(0.0..1.0).contains(&t.beta1)
            || !(0.0..1.0).contains(&t.beta2)
        {
            return bad("train.min_lr_ratio must be in [0, 1], train.beta1 and beta2 in [0, 1)");
        }
        if !(0.0..1.0).contains(&t.text_dropout) {
            return bad("train.text_dropout must be in [0, 1)");
        }
        if !TimeFocus::valid(t.t_focus, t.t_focus_range) {
            return bad(
                "train.t_focus must be in [0, 1] and train.t_focus_range within (0, 1], lo < hi",
            );
        }
        if t.weight_decay < 0.0 || t.low_t_floor < 0.0 {
            return bad("train.weight_decay and train.low_t_floor must be >= 0");
        }
        if t.lora_rank > 0 && t.scope != Scope::GenExpert {
            return bad(
                "train.lora_rank > 0 adapts the generation expert only: set train.scope = \"gen-expert\"",
            );
        }
        if t.lora_rank > 0 && !(t.lora_alpha.is_finite() && t.lora_alpha > 0.0) {
            return bad("train.lora_alpha must be > 0");
        }
        if !(self.reward.keep_top > 0.0 && self.reward.keep_top <= 1.0) {
            return bad("reward.keep_top must be in (0, 1]");
        }
        if self.samples.images_per_prompt == 0 {
            return bad("samples.images_per_prompt must be >= 1");
        }
        self.reward
            .reward_config(t.lambda)
            .map
            .validate()
            .map_err(Error::Config)
    }
}

/// Options that are not part of the run's configuration.
#[derive(Debug, Clone, Default)]
pub struct SrumOptions {
    /// Continue the run in the folder (its `config.toml` must equal the configuration).
    pub resume: bool,
    /// Draw progress bars.
    pub progress: bool,
    /// Test hook: make the loss of this global step non-finite (checks the divergence guard).
    pub poison_step: Option<u64>,
}

/// What [`run`] returns.
#[derive(Debug)]
pub struct SrumOutcome {
    /// The final weights on the inference device.
    pub model: Umm,
    /// Statistics of every round.
    pub rounds: Vec<RoundStats>,
}

/// Per-round statistics (`rounds/round-N/stats.json`, a row of `rounds.csv`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoundStats {
    pub round: u32,
    pub method: Method,
    pub prompts: usize,
    pub candidates: usize,
    /// Candidates trained on (SRUM drops `g = 0` and unscorable ones).
    pub trained_on: usize,
    /// Candidates the reward could not score (error), SRUM only.
    pub reward_errors: usize,
    pub mean_global: Option<f32>,
    /// Fraction of kept candidates with `g > 0`.
    pub frac_global_positive: Option<f32>,
    /// Mean token weight over the kept candidates.
    pub mean_weight: Option<f32>,
    pub regions_per_image: Option<f32>,
    pub frac_regions_positive: Option<f32>,
    pub frac_regions_negative: Option<f32>,
    pub generate_s: f64,
    pub reward_s: f64,
    pub train_s: f64,
    pub steps: u64,
    pub final_loss: f32,
    /// The threshold `tau` on g of `reward.keep_top` (SRUM with `keep_top < 1`; absent in run
    /// folders written before it was recorded).
    #[serde(default)]
    pub keep_top_threshold: Option<f32>,
}

/// One line of `candidates.jsonl`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CandidateRecord {
    /// Index in the round's candidate list.
    pub index: usize,
    /// PNG file under `candidates/`.
    pub file: String,
    pub prompt: String,
    pub category: String,
    /// Seed of the starting noise.
    pub seed: u64,
    /// Global score (SRUM).
    pub global: Option<f32>,
    /// Used for training.
    pub kept: bool,
    /// Proposed regions with names and scores, as [`reward_global::SelfReward`] has them.
    pub regions: Option<serde_json::Value>,
    /// The reward map averaged per generation token (SRUM).
    pub token_weights: Option<Vec<f32>>,
    /// Why the reward could not score this image.
    pub error: Option<String>,
}

/// A round's training set: images with prompts and, for SRUM, token weights.
#[derive(Debug, Clone)]
pub struct Pool {
    pub records: Vec<CandidateRecord>,
    pub images: Vec<Image>,
    pub generate_s: f64,
    pub reward_s: f64,
    /// The threshold `tau` of `reward.keep_top`, when it acted.
    pub keep_top_threshold: Option<f32>,
}

impl Pool {
    /// Indices of the candidates trained on.
    pub fn kept(&self) -> Vec<usize> {
        (0..self.records.len())
            .filter(|&k| self.records[k].kept)
            .collect()
    }
}

/// Paths of a run folder.
#[derive(Debug, Clone)]
pub struct SrumRun(pub PathBuf);

impl SrumRun {
    pub fn config(&self) -> PathBuf {
        self.0.join("config.toml")
    }
    pub fn metrics(&self) -> PathBuf {
        self.0.join("metrics.csv")
    }
    pub fn rounds_csv(&self) -> PathBuf {
        self.0.join("rounds.csv")
    }
    pub fn round(&self, r: u32) -> PathBuf {
        self.0.join("rounds").join(format!("round-{r}"))
    }
    pub fn round_model(&self, r: u32) -> PathBuf {
        self.round(r).join("model.safetensors")
    }
    pub fn checkpoints(&self) -> PathBuf {
        self.0.join("checkpoints")
    }
    pub fn final_model(&self) -> PathBuf {
        self.0.join("model.safetensors")
    }
    /// Complete checkpoints of round `r`, oldest first, with their step.
    pub fn round_checkpoints(&self, r: u32) -> Vec<(u64, PathBuf)> {
        let Ok(rd) = fs::read_dir(self.checkpoints()) else {
            return Vec::new();
        };
        let mut found: Vec<(u64, PathBuf)> = rd
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().to_string();
                let (round, step) = name.strip_prefix('r')?.split_once("-s")?;
                (round.parse::<u32>().ok()? == r).then_some((step.parse().ok()?, e.path()))
            })
            .collect();
        found.sort();
        found
    }
}

/// The position a checkpoint resumes from (`state.toml`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct TrainState {
    round: u32,
    step: u64,
    seed: u64,
    /// The next draw of every random stream is a function of these three.
    rng: String,
    /// Sums of the metrics of the steps since the last logged row (loss, weighted, plain,
    /// reward, grad norm), so that a resumed run logs the same rows.
    acc: [f64; 5],
    /// Steps in `acc`.
    n_acc: u32,
}

fn io_err(what: &str, p: &Path, e: impl std::fmt::Display) -> Error {
    Error::Io(format!("cannot {what} {}: {e}", p.display()))
}

/// Writes `bytes` to `path` through a temporary file, fsynced, then renamed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = fs::File::create(&tmp).map_err(|e| io_err("create", &tmp, e))?;
    f.write_all(bytes).map_err(|e| io_err("write", &tmp, e))?;
    f.sync_all().map_err(|e| io_err("sync", &tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| io_err("rename", &tmp, e))
}

fn sync_dir(dir: &Path) -> Result<()> {
    fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(|e| io_err("sync", dir, e))
}

/// The training prompts: `count` prompts spread evenly over the split's categories (each
/// category's prompts in a seeded shuffle, taken round-robin), or all of them.
pub fn training_prompts(cfg: &SrumConfig) -> Result<Vec<Prompt>> {
    let split = &cfg.prompts.split;
    let head = fs::read_to_string(split).map_err(|e| io_err("read", split, e))?;
    let first = head.lines().next().unwrap_or("");
    if first.starts_with('#') && (first.contains(" val ") || first.contains(" test ")) {
        return Err(Error::Config(format!(
            "{} is an evaluation split ({first}); post-training reads only a training split",
            split.display()
        )));
    }
    let entries = load_split(split).map_err(|e| Error::Config(e.to_string()))?;
    let mut by_cat: Vec<Vec<Prompt>> = Category::ALL
        .iter()
        .map(|c| {
            let mut v: Vec<Prompt> = entries
                .iter()
                .filter(|e| e.prompt.category == *c)
                .map(|e| e.prompt.clone())
                .collect();
            Rng::derive(cfg.train.seed, &format!("srum-prompts-{}", c.name())).shuffle(&mut v);
            v
        })
        .filter(|v| !v.is_empty())
        .collect();
    let total: usize = by_cat.iter().map(Vec::len).sum();
    if total == 0 {
        return Err(Error::Config(format!("{} has no prompts", split.display())));
    }
    let want = if cfg.prompts.count == 0 {
        total
    } else {
        cfg.prompts.count.min(total)
    };
    let mut out = Vec::with_capacity(want);
    let mut k = 0;
    while out.len() < want {
        for v in &mut by_cat {
            if k < v.len() && out.len() < want {
                out.push(v[k].clone());
            }
        }
        k += 1;
    }
    for v in &mut by_cat {
        v.clear();
    }
    Ok(out)
}

/// The grid prompts: the configured ones, or the first training prompt of each category.
fn grid_prompts(cfg: &SrumConfig, prompts: &[Prompt]) -> Vec<String> {
    if !cfg.samples.prompts.is_empty() {
        return cfg.samples.prompts.clone();
    }
    let mut out: Vec<String> = Vec::new();
    for c in Category::ALL {
        if let Some(p) = prompts.iter().find(|p| p.category == *c) {
            out.push(p.text.clone());
        }
    }
    out
}

fn bar(n: u64, what: &str, unit: &str, on: bool) -> ProgressBar {
    if !on {
        return ProgressBar::hidden();
    }
    ProgressBar::new(n).with_style(
        ProgressStyle::with_template(&format!(
            "{what}: {{elapsed_precise}} [{{bar:30}}] {{pos}}/{{len}} {unit}, eta {{eta}} | {{msg}}"
        ))
        .expect("a valid template")
        .progress_chars("=> "),
    )
}

/// Generates images of `prompts` from per-image seeds, in batches, 8-bit quantised.
pub fn generate_seeded(
    model: &Umm,
    mcfg: &UmmConfig,
    tok: &dyn Tokenizer,
    items: &[(&str, u64)],
    sampler: &SamplerSettings,
    device: &Device,
    mut progress: impl FnMut(usize),
) -> Result<Vec<Image>> {
    let (n, d) = (mcfg.image_tokens(), mcfg.patch_dim());
    let mut out = Vec::with_capacity(items.len());
    for chunk in items.chunks(sampler.batch) {
        let noise: Vec<f32> = chunk
            .iter()
            .flat_map(|(_, s)| image_noise(mcfg, *s))
            .collect();
        let x1 = Tensor::<3>::from_data(TensorData::new(noise, [chunk.len(), n, d]), device);
        let prompts: Vec<&str> = chunk.iter().map(|(p, _)| *p).collect();
        let imgs = generate_from_noise(model, mcfg, tok, &prompts, x1, sampler.config())?;
        out.extend(to_images(imgs)?.into_iter().map(Image::quantized));
        progress(out.len());
    }
    Ok(out)
}

/// `candidates = "renders"`: a scene drawn from the prompt's meaning with `seed`, rendered.
fn true_render(p: &Prompt, seed: u64, resolution: usize) -> std::result::Result<Image, String> {
    let mut rng = Rng::new(seed);
    let scene = sample_scene(&p.meaning, &p.text, &mut rng).map_err(|e| e.to_string())?;
    Ok(render(&scene, resolution).quantized())
}

fn candidate_seed(seed: u64, round: u32, prompt: usize, c: usize) -> u64 {
    Rng::derive(seed, &format!("srum-candidate-r{round}-p{prompt}-c{c}")).next_u64()
}

/// Generates and (for SRUM) scores the candidates of round `r` with `snapshot`.
#[allow(clippy::too_many_arguments)]
fn make_pool(
    cfg: &SrumConfig,
    run: &SrumRun,
    r: u32,
    snapshot: &Umm,
    mcfg: &UmmConfig,
    prompts: &[Prompt],
    device: &Device,
    progress: bool,
) -> Result<Pool> {
    let tok = WordTokenizer::compworld();
    let dir = run.round(r);
    let cand_dir = dir.join("candidates");
    fs::create_dir_all(&cand_dir).map_err(|e| io_err("create", &cand_dir, e))?;
    let mut records = Vec::new();
    let mut items: Vec<(&str, u64)> = Vec::new();
    for (k, p) in prompts.iter().enumerate() {
        for c in 0..cfg.candidates_per_prompt {
            let seed = candidate_seed(cfg.train.seed, r, k, c);
            records.push(CandidateRecord {
                index: records.len(),
                file: format!("{k:06}-{c}.png"),
                prompt: p.text.clone(),
                category: p.category.name().to_string(),
                seed,
                global: None,
                kept: true,
                regions: None,
                token_weights: None,
                error: None,
            });
            items.push((&p.text, seed));
        }
    }
    let t0 = Instant::now();
    let images = match cfg.candidates {
        CandidateSource::Model => {
            let b = bar(items.len() as u64, "generate", "images", progress);
            let images =
                generate_seeded(snapshot, mcfg, &tok, &items, &cfg.sampler, device, |n| {
                    b.set_position(n as u64)
                })?;
            b.finish_and_clear();
            images
        }
        CandidateSource::Renders => {
            let per = cfg.candidates_per_prompt;
            let mut images = Vec::with_capacity(records.len());
            for (k, rec) in records.iter_mut().enumerate() {
                let p = &prompts[k / per];
                images.push(
                    true_render(p, rec.seed, mcfg.resolution).unwrap_or_else(|e| {
                        rec.kept = false;
                        rec.error = Some(e);
                        render(&Scene::default(), mcfg.resolution)
                    }),
                );
            }
            images
        }
    };
    for (rec, img) in records.iter().zip(&images) {
        img.save_png(&cand_dir.join(&rec.file))
            .map_err(|e| Error::Io(e.to_string()))?;
    }
    let generate_s = t0.elapsed().as_secs_f64();
    tracing::info!(
        round = r,
        images = images.len(),
        seconds = generate_s,
        "candidates generated"
    );

    let t1 = Instant::now();
    let mut keep_top_threshold = None;
    if cfg.method == Method::Srum {
        let rc = cfg.reward.reward_config(cfg.train.lambda);
        let b = bar(images.len() as u64, "self-reward", "images", progress);
        let mut done = 0;
        for chunk in (0..images.len())
            .collect::<Vec<_>>()
            .chunks(cfg.reward.batch)
        {
            let batch: Vec<(&Image, &str)> = chunk
                .iter()
                .map(|&k| (&images[k], records[k].prompt.as_str()))
                .collect();
            let scored = self_rewards(snapshot, mcfg, &tok, &batch, &rc, device);
            for (&k, s) in chunk.iter().zip(scored) {
                let rec = &mut records[k];
                match s {
                    Ok(s) => {
                        rec.global = Some(s.global);
                        // A candidate that already failed (a render whose prompt has no
                        // scene) stays out, whatever its placeholder image scores.
                        rec.kept = rec.error.is_none() && (s.kept || !cfg.reward.drop_zero_global);
                        rec.regions =
                            Some(serde_json::to_value(&s.regions).expect("regions serialise"));
                        rec.token_weights = Some(s.token_weights);
                    }
                    Err(e) => {
                        rec.kept = false;
                        rec.error = Some(e.to_string());
                    }
                }
            }
            done += chunk.len();
            b.set_position(done as u64);
        }
        b.finish_and_clear();
        if cfg.reward.keep_top < 1.0 {
            let tau = keep_top(&mut records, cfg.reward.keep_top, &rc.map, mcfg);
            keep_top_threshold = tau;
            tracing::info!(
                round = r,
                threshold = tau,
                "global scores re-centred (reward.keep_top)"
            );
        }
        write_overlays(&dir, &images, &records)?;
    }
    let reward_s = t1.elapsed().as_secs_f64();
    let mut text = String::new();
    for rec in &records {
        text.push_str(&serde_json::to_string(rec).expect("records serialise"));
        text.push('\n');
    }
    let timing = serde_json::json!({
        "generate_s": generate_s,
        "reward_s": reward_s,
        "keep_top_threshold": keep_top_threshold,
    });
    write_atomic(&dir.join("pool-timing.json"), timing.to_string().as_bytes())?;
    write_atomic(&dir.join("candidates.jsonl"), text.as_bytes())?;
    Ok(Pool {
        records,
        images,
        generate_s,
        reward_s,
        keep_top_threshold,
    })
}

/// `reward.keep_top`: keeps the share `q` of the scored records with the highest g and rebuilds
/// every scored record's map from `g - tau` (clamped to [-1, 1]), `tau` halfway between the
/// lowest kept g and the highest g left out. Records keep their own g; the regions are read
/// back from the record. Returns `tau` (`None` when nothing was scored).
fn keep_top(
    records: &mut [CandidateRecord],
    q: f32,
    map: &reward_local::MapConfig,
    mcfg: &UmmConfig,
) -> Option<f32> {
    let mut g: Vec<f32> = records
        .iter()
        .filter(|r| r.error.is_none())
        .filter_map(|r| r.global)
        .collect();
    if g.is_empty() {
        return None;
    }
    g.sort_by(|a, b| b.total_cmp(a));
    let k = ((q * g.len() as f32).round() as usize).clamp(1, g.len());
    let tau = if k == g.len() {
        g[k - 1] - 1e-3
    } else {
        (g[k - 1] + g[k]) / 2.0
    };
    let res = mcfg.resolution;
    for rec in records.iter_mut().filter(|r| r.error.is_none()) {
        let Some(global) = rec.global else { continue };
        // A stored region carries more than a box and a score; the rest is ignored.
        let boxes: Vec<reward_local::ScoredBox> = rec
            .regions
            .as_ref()
            .and_then(|v| Vec::deserialize(v).ok())
            .unwrap_or_default();
        let shifted = (global - tau).clamp(-1.0, 1.0);
        let m = reward_local::reward_map(res, res, shifted, &boxes, map);
        rec.token_weights = Some(reward_local::token_weights(&m, res, res, mcfg.patch));
        rec.kept = global > tau;
    }
    Some(tau)
}

/// Reads back a round's candidates (`None` if the phase did not finish).
fn read_pool(run: &SrumRun, r: u32, resolution: usize) -> Result<Option<Pool>> {
    let dir = run.round(r);
    let path = dir.join("candidates.jsonl");
    let Ok(text) = fs::read_to_string(&path) else {
        return Ok(None);
    };
    let mut records = Vec::new();
    let mut images = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let rec: CandidateRecord = serde_json::from_str(line)
            .map_err(|e| Error::Io(format!("{}:{}: {e}", path.display(), i + 1)))?;
        let img = Image::load_png(&dir.join("candidates").join(&rec.file), resolution)
            .map_err(|e| Error::Io(e.to_string()))?;
        records.push(rec);
        images.push(img);
    }
    let timing: serde_json::Value = fs::read_to_string(dir.join("pool-timing.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    Ok(Some(Pool {
        records,
        images,
        generate_s: timing["generate_s"].as_f64().unwrap_or(0.0),
        reward_s: timing["reward_s"].as_f64().unwrap_or(0.0),
        keep_top_threshold: timing["keep_top_threshold"].as_f64().map(|x| x as f32),
    }))
}

/// The first 16 candidates and their reward maps, side by side, for people to look at.
fn write_overlays(dir: &Path, images: &[Image], records: &[CandidateRecord]) -> Result<()> {
    let mut cells = Vec::new();
    for (img, rec) in images.iter().zip(records).take(16) {
        let Some(w) = &rec.token_weights else {
            continue;
        };
        cells.extend([img.clone(), weight_image(w, img.width)]);
    }
    if cells.is_empty() {
        return Ok(());
    }
    contact_sheet(&cells, 8, 4)
        .save_png(&dir.join("overlays.png"))
        .map_err(|e| Error::Io(e.to_string()))
}

/// Token weights (a square grid) as a heat image (black 0, yellow 1; blue below 0).
fn weight_image(w: &[f32], side: usize) -> Image {
    let g = (w.len() as f64).sqrt().round() as usize;
    let mut img = Image::filled(side, side, [0.0; 3]);
    for y in 0..side {
        for x in 0..side {
            let v = w[(y * g / side) * g + x * g / side];
            let rgb = if v >= 0.0 {
                [v.min(1.0), v.min(1.0) * 0.85, 0.0]
            } else {
                [0.0, 0.0, (-v).min(1.0)]
            };
            img.set(x, y, rgb);
        }
    }
    img
}

/// The fixed prompts' sample grid of `model` (rows: prompts; columns: seeds).
fn write_samples(
    cfg: &SrumConfig,
    model: &Umm,
    mcfg: &UmmConfig,
    prompts: &[String],
    path: &Path,
    device: &Device,
) -> Result<()> {
    let k = cfg.samples.images_per_prompt;
    let items: Vec<(&str, u64)> = prompts
        .iter()
        .flat_map(|p| (0..k).map(move |c| (p.as_str(), cfg.samples.seed + c as u64)))
        .collect();
    let tok = WordTokenizer::compworld();
    let imgs = generate_seeded(model, mcfg, &tok, &items, &cfg.sampler, device, |_| {})?;
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(|e| io_err("create", dir, e))?;
    }
    contact_sheet(&imgs, k, 3)
        .save_png(path)
        .map_err(|e| Error::Io(e.to_string()))?;
    let list: String = prompts.iter().map(|p| format!("{p}\n")).collect();
    write_atomic(&path.with_extension("txt"), list.as_bytes())
}

/// A post-training batch on the (autodiff) device.
#[derive(Debug, Clone)]
pub struct PostBatch {
    /// `[BOS] prompt [EOS]` (or `[BOS, EOS]` when dropped), padded.
    pub text: Tensor<2, Int>,
    /// Clean patches `[b, tokens, patch_dim]` in model space.
    pub x0: Tensor<3>,
    /// Noise of the same shape.
    pub noise: Tensor<3>,
    /// Flow times `[b]`.
    pub t: Tensor<1>,
    /// Token weights `[b, tokens]` (ones for SFT).
    pub weights: Tensor<2>,
}

/// Draws flow times.
pub fn draw_time(mode: TimeSampling, rng: &mut Rng) -> f32 {
    match mode {
        TimeSampling::LogitNormal => {
            let n = rng.normal();
            (1.0 / (1.0 + (-n).exp())).clamp(1e-3, 1.0 - 1e-3)
        }
        TimeSampling::Uniform => rng.range_f32(1e-3, 1.0),
    }
}

/// Indices of the pool entries (positions in `kept`) that step `step` trains on: the pool is
/// walked in a fresh seeded permutation every epoch, so the batch is a function of the step.
pub fn batch_indices(n: usize, batch: usize, seed: u64, round: u32, step: u64) -> Vec<usize> {
    let mut out = Vec::with_capacity(batch);
    let mut cache: Option<(usize, Vec<usize>)> = None;
    for i in 0..batch {
        let pos = step as usize * batch + i;
        let (epoch, at) = (pos / n, pos % n);
        if cache.as_ref().is_none_or(|(e, _)| *e != epoch) {
            let mut perm: Vec<usize> = (0..n).collect();
            Rng::derive(seed, &format!("srum-order-r{round}-e{epoch}")).shuffle(&mut perm);
            cache = Some((epoch, perm));
        }
        out.push(cache.as_ref().expect("just filled").1[at]);
    }
    out
}

/// Builds the batch of step `step` of round `round`.
#[allow(clippy::too_many_arguments)]
pub fn post_batch(
    cfg: &SrumConfig,
    mcfg: &UmmConfig,
    tok: &dyn Tokenizer,
    pool: &Pool,
    kept: &[usize],
    round: u32,
    step: u64,
    device: &Device,
) -> Result<PostBatch> {
    let t = &cfg.train;
    let idx: Vec<usize> = batch_indices(kept.len(), t.batch, t.seed, round, step)
        .into_iter()
        .map(|i| kept[i])
        .collect();
    let mut rng = Rng::derive(t.seed, &format!("srum-step-r{round}-s{step}"));
    let mut rows = Vec::with_capacity(idx.len());
    for &k in &idx {
        let mut ids = vec![BOS];
        if !rng.chance(t.text_dropout) {
            ids.extend(tok.encode(&pool.records[k].prompt)?);
        }
        ids.push(EOS);
        rows.push(ids);
    }
    let len = rows.iter().map(Vec::len).max().unwrap_or(2);
    if len > mcfg.max_text_len {
        return Err(Error::Config(format!(
            "a prompt of {len} tokens exceeds the model's max_text_len = {}",
            mcfg.max_text_len
        )));
    }
    let text = umm_model::sampler::pad_rows(&rows, device);
    let images: Vec<&Image> = idx.iter().map(|&k| &pool.images[k]).collect();
    let x0 = patchify(images_tensor(&images, device), mcfg.patch);
    let (b, n, d) = (idx.len(), mcfg.image_tokens(), mcfg.patch_dim());
    let noise: Vec<f32> = (0..b * n * d).map(|_| rng.normal()).collect();
    // No extra draw without a focus, so runs without one keep their random stream.
    let focus = TimeFocus::from_config(t.t_focus, t.t_focus_range);
    let times: Vec<f32> = (0..b)
        .map(|_| TimeFocus::draw(focus, &mut rng, |r| draw_time(t.time, r)))
        .collect();
    let mut weights = Vec::with_capacity(b * n);
    for &k in &idx {
        match (&pool.records[k].token_weights, cfg.method) {
            (Some(w), Method::Srum) if w.len() == n => weights.extend_from_slice(w),
            (_, Method::Sft) => weights.extend(std::iter::repeat_n(1.0, n)),
            _ => {
                return Err(Error::Config(format!(
                    "candidate {} has no token weights of {n} tokens",
                    pool.records[k].file
                )));
            }
        }
    }
    Ok(PostBatch {
        text,
        x0,
        noise: Tensor::from_data(TensorData::new(noise, [b, n, d]), device),
        t: Tensor::from_data(TensorData::new(times, [b]), device),
        weights: Tensor::from_data(TensorData::new(weights, [b, n]), device),
    })
}

/// The two parts of the post-training loss: `(mean(r * err), mean(err))`, `err` the per-token
/// mean squared velocity error (with the x-prediction floor of [`crate::pretrain::gen_loss`]).
pub fn flow_loss_parts(model: &Umm, b: &PostBatch, low_t_floor: f32) -> (Tensor<1>, Tensor<1>) {
    let t3 = b.t.clone().unsqueeze_dim::<2>(1).unsqueeze_dim::<3>(2);
    let v = b.noise.clone() - b.x0.clone();
    let xt = b.x0.clone() + v.clone() * t3.clone();
    let floor = if low_t_floor > 0.0 {
        (t3.clone() / t3.clamp_min(low_t_floor)).powi_scalar(2)
    } else {
        Tensor::ones([1, 1, 1], &xt.device())
    };
    let pred = model.velocity(b.text.clone(), xt, b.t.clone());
    let [bs, n, _] = pred.dims();
    let err = ((pred - v).square() * floor).mean_dim(2).reshape([bs, n]);
    ((err.clone() * b.weights.clone()).mean(), err.mean())
}

/// The objective of `method`: SRUM `mean(r err) + lambda mean(err)`, SFT `mean(err)`.
pub fn objective(method: Method, weighted: Tensor<1>, plain: Tensor<1>, lambda: f32) -> Tensor<1> {
    match method {
        Method::Srum => weighted + plain.mul_scalar(lambda),
        Method::Sft => plain,
    }
}

/// Rescales `grads` so their global L2 norm over `model`'s parameters is at most `max`;
/// returns the norm before clipping. (burn's own clipping works per parameter tensor.)
pub fn clip_global(model: &Umm, grads: &mut GradientsParams, max: f32) -> f32 {
    struct SqSum<'a> {
        grads: &'a GradientsParams,
        total: f64,
    }
    impl ModuleVisitor for SqSum<'_> {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            if let Some(g) = self.grads.get::<D>(p.id) {
                self.total += f64::from(g.square().sum().into_scalar::<f32>());
            }
        }
    }
    struct Scale<'a> {
        grads: &'a mut GradientsParams,
        coef: f32,
    }
    impl ModuleVisitor for Scale<'_> {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            if let Some(g) = self.grads.remove::<D>(p.id) {
                self.grads.register::<D>(p.id, g.mul_scalar(self.coef));
            }
        }
    }
    let mut sq = SqSum {
        grads: &*grads,
        total: 0.0,
    };
    model.visit(&mut sq);
    let norm = sq.total.sqrt() as f32;
    if norm > max && norm.is_finite() {
        model.visit(&mut Scale {
            grads,
            coef: max / (norm + 1e-6),
        });
    }
    norm
}

/// Linear warm-up then cosine decay to `lr * min_lr_ratio` at the round's last step.
pub fn post_lr(t: &PostTrainConfig, step: u64) -> f64 {
    if step < t.warmup_steps {
        return t.lr * (step + 1) as f64 / t.warmup_steps as f64;
    }
    let span = t.steps_per_round.saturating_sub(t.warmup_steps).max(1) as f64;
    let p = ((step - t.warmup_steps) as f64 / span).min(1.0);
    let floor = t.lr * t.min_lr_ratio;
    floor + (t.lr - floor) * 0.5 * (1.0 + (std::f64::consts::PI * p).cos())
}

const METRICS_HEADER: &str =
    "round,step,lr,loss,loss_weighted,loss_plain,mean_reward,grad_norm,examples_per_s,wall_s\n";

/// One row of `metrics.csv` (averages over the logged interval).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PostMetrics {
    pub round: u32,
    pub step: u64,
    pub lr: f64,
    pub loss: f32,
    pub loss_weighted: f32,
    pub loss_plain: f32,
    pub mean_reward: f32,
    pub grad_norm: f32,
    pub examples_per_s: f64,
    pub wall_s: f64,
}

fn metrics_row(m: &PostMetrics) -> String {
    format!(
        "{},{},{:.6e},{:.6},{:.6},{:.6},{:.5},{:.5},{:.1},{:.1}\n",
        m.round,
        m.step,
        m.lr,
        m.loss,
        m.loss_weighted,
        m.loss_plain,
        m.mean_reward,
        m.grad_norm,
        m.examples_per_s,
        m.wall_s
    )
}

/// Rewrites `metrics.csv` without the rows after `(round, step)` (they will be logged again).
fn truncate_metrics(path: &Path, round: u32, step: u64) -> Result<f64> {
    let text = fs::read_to_string(path).unwrap_or_else(|_| METRICS_HEADER.to_string());
    let mut out = String::from(METRICS_HEADER);
    let mut wall = 0.0;
    for l in text.lines().skip(1) {
        let f: Vec<&str> = l.split(',').collect();
        let (Some(r), Some(s)) = (
            f.first().and_then(|x| x.parse::<u32>().ok()),
            f.get(1).and_then(|x| x.parse::<u64>().ok()),
        ) else {
            continue;
        };
        if (r, s) <= (round, step) {
            out.push_str(l);
            out.push('\n');
            wall = f.get(9).and_then(|x| x.parse().ok()).unwrap_or(wall);
        }
    }
    write_atomic(path, out.as_bytes())?;
    Ok(wall)
}

/// Saves a training checkpoint of round `r` at `step` as one directory: written under a
/// temporary name, every file fsynced, the directory renamed into place. Keeps the newest
/// two of the round.
#[allow(clippy::too_many_arguments)]
fn save_checkpoint(
    run: &SrumRun,
    mcfg: &UmmConfig,
    r: u32,
    step: u64,
    seed: u64,
    model: &Umm,
    optim: &ModuleOptimizer,
    acc: ([f64; 5], u32),
) -> Result<()> {
    let name = format!("r{r:02}-s{step:06}");
    let tmp = run.checkpoints().join(format!(".tmp-{name}"));
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(&tmp).map_err(|e| io_err("create", &tmp, e))?;
    let meta = CheckpointMeta::new(mcfg.clone(), step, [0; 4]);
    checkpoint::save(model, &meta, &tmp.join("model.safetensors"))?;
    let op = tmp.join("optim.bpk");
    optim
        .save(&op)
        .map_err(|e| Error::Checkpoint(format!("{}: {e}", op.display())))?;
    fs::File::open(&op)
        .and_then(|f| f.sync_all())
        .map_err(|e| io_err("sync", &op, e))?;
    let state = TrainState {
        round: r,
        step,
        seed,
        rng: format!("derive(seed, \"srum-step-r{r}-s<step>\") and \"srum-order-r{r}-e<epoch>\""),
        acc: acc.0,
        n_acc: acc.1,
    };
    write_atomic(
        &tmp.join("state.toml"),
        toml::to_string(&state)
            .expect("state serialises")
            .as_bytes(),
    )?;
    sync_dir(&tmp)?;
    let dest = run.checkpoints().join(&name);
    let _ = fs::remove_dir_all(&dest);
    fs::rename(&tmp, &dest).map_err(|e| io_err("rename", &tmp, e))?;
    sync_dir(&run.checkpoints())?;
    let all = run.round_checkpoints(r);
    for (_, old) in all.iter().take(all.len().saturating_sub(2)) {
        let _ = fs::remove_dir_all(old);
    }
    Ok(())
}

/// The round-start model as it is trained: with LoRA adapters on the generation expert's
/// matrices when `train.lora_rank > 0` (everything else frozen, `A` drawn from the seed and the
/// round), and parameter ids numbered in visiting order (see [`crate::init::renumber`]).
pub fn trainable(model: Umm, t: &PostTrainConfig, r: u32) -> Result<Umm> {
    if t.lora_rank == 0 {
        return Ok(crate::init::renumber(model));
    }
    let ids = model.generation_expert_matrix_ids();
    if ids.is_empty() {
        return Err(Error::Config(
            "train.lora_rank > 0 adapts the generation expert, and this model (dense) has none"
                .into(),
        ));
    }
    let m = model.apply_lora(
        Lora::new(t.lora_rank, t.lora_alpha).set_param_group(ParamGroup::from_ids(ids)),
    );
    let m = crate::init::seeded_lora(m, t.seed, &format!("srum-lora-r{r}"));
    Ok(crate::init::renumber(m))
}

/// Trains round `r` from the round-start weights (or the newest checkpoint of the round).
#[allow(clippy::too_many_arguments)]
fn train_round(
    cfg: &SrumConfig,
    run: &SrumRun,
    r: u32,
    start: &Path,
    pool: &Pool,
    device: &Device,
    opts: &SrumOptions,
    global_step0: u64,
) -> Result<(Umm, f32, f64)> {
    let t = &cfg.train;
    let ad = device.clone().autodiff();
    let tok = WordTokenizer::compworld();
    let kept = pool.kept();
    if kept.is_empty() {
        return Err(Error::Config(format!(
            "round {r}: no candidate is left to train on ({} generated, all dropped)",
            pool.records.len()
        )));
    }
    let mut optim = umm_model::optim::adamw(
        &AdamWConfig::new()
            .with_beta_1(t.beta1)
            .with_beta_2(t.beta2)
            .with_weight_decay(t.weight_decay),
    );
    let resume_from = run.round_checkpoints(r).pop();
    let mut acc = [0.0f64; 5]; // loss, weighted, plain, reward, grad norm
    let mut n_acc = 0u32;
    let (mut model, mcfg, mut step) = match resume_from {
        Some((step, dir)) => {
            let sp = dir.join("state.toml");
            let state: TrainState = fs::read_to_string(&sp)
                .map_err(|e| io_err("read", &sp, e))
                .and_then(|t| {
                    toml::from_str(&t)
                        .map_err(|e| Error::Checkpoint(format!("{}: {e}", sp.display())))
                })?;
            if (state.round, state.step, state.seed) != (r, step, t.seed) {
                return Err(Error::Checkpoint(format!(
                    "{}: round {} step {} seed {} does not match its place (round {r}, step {step}, seed {})",
                    sp.display(),
                    state.round,
                    state.step,
                    state.seed,
                    t.seed
                )));
            }
            (acc, n_acc) = (state.acc, state.n_acc);
            // The round-start model in its training form (adapters and all), then the
            // checkpoint's values.
            let (m, meta) = checkpoint::load(start, &ad)?;
            let m = checkpoint::load_into(trainable(m, t, r)?, &dir.join("model.safetensors"))?;
            let op = dir.join("optim.bpk");
            optim = optim
                .load(&op)
                .map_err(|e| Error::Checkpoint(format!("{}: {e}", op.display())))?;
            tracing::info!(round = r, step, "resuming from {}", dir.display());
            (crate::init::renumber(m), meta.config, step)
        }
        None => {
            let (m, meta) = checkpoint::load(start, &ad)?;
            (trainable(m, t, r)?, meta.config, 0)
        }
    };
    let wall0 = truncate_metrics(&run.metrics(), r, step)?;
    // With LoRA the generation side's ids include its adapters (the only weights that require
    // gradients then).
    let gen_ids: Option<Vec<ParamId>> =
        (t.scope == Scope::GenExpert).then(|| model.generation_param_ids());
    let mut csv = fs::OpenOptions::new()
        .append(true)
        .open(run.metrics())
        .map_err(|e| io_err("open", &run.metrics(), e))?;
    let b = bar(
        t.steps_per_round,
        &format!("train r{r}"),
        "steps",
        opts.progress,
    );
    b.set_position(step);
    let began = Instant::now();
    let (mut since, mut last_loss) = (Instant::now(), f32::NAN);
    while step < t.steps_per_round {
        let lr = post_lr(t, step);
        let batch = post_batch(cfg, &mcfg, &tok, pool, &kept, r, step, &ad)?;
        let (weighted, plain) = flow_loss_parts(&model, &batch, t.low_t_floor);
        let mut loss = objective(cfg.method, weighted.clone(), plain.clone(), t.lambda);
        if opts.poison_step == Some(global_step0 + step) {
            loss = loss.mul_scalar(f32::NAN);
        }
        let lv = loss.clone().into_scalar::<f32>();
        if !lv.is_finite() {
            b.abandon();
            return Err(Error::Config(format!(
                "training diverged in round {r} at step {step}: the loss is {lv}; the last good \
                 checkpoint is kept in {} (lower train.lr, or resume with --resume)",
                run.checkpoints().display()
            )));
        }
        let mut grads = match &gen_ids {
            None => GradientsParams::from_grads(loss.backward(), &model),
            Some(ids) => GradientsParams::from_params(&mut loss.backward(), &model, ids),
        };
        let norm = clip_global(&model, &mut grads, t.grad_clip);
        model = optim.step(lr, model, grads);
        step += 1;
        last_loss = lv;
        let mr = batch.weights.clone().mean().into_scalar::<f32>();
        for (a, v) in acc.iter_mut().zip([
            lv,
            weighted.into_scalar::<f32>(),
            plain.into_scalar::<f32>(),
            mr,
            norm,
        ]) {
            *a += f64::from(v);
        }
        n_acc += 1;
        if step % t.log_every == 0 || step == t.steps_per_round {
            let k = f64::from(n_acc);
            let m = PostMetrics {
                round: r,
                step,
                lr,
                loss: (acc[0] / k) as f32,
                loss_weighted: (acc[1] / k) as f32,
                loss_plain: (acc[2] / k) as f32,
                mean_reward: (acc[3] / k) as f32,
                grad_norm: (acc[4] / k) as f32,
                examples_per_s: (n_acc as usize * t.batch) as f64 / since.elapsed().as_secs_f64(),
                wall_s: wall0 + began.elapsed().as_secs_f64(),
            };
            csv.write_all(metrics_row(&m).as_bytes())
                .map_err(|e| io_err("append to", &run.metrics(), e))?;
            b.set_message(format!(
                "loss {:.4} reward {:.3} |g| {:.2} {:.0} ex/s",
                m.loss, m.mean_reward, m.grad_norm, m.examples_per_s
            ));
            (acc, n_acc, since) = ([0.0; 5], 0, Instant::now());
        }
        b.set_position(step);
        let periodic = t.checkpoint_every > 0 && step % t.checkpoint_every == 0;
        if periodic || step == t.steps_per_round {
            save_checkpoint(run, &mcfg, r, step, t.seed, &model, &optim, (acc, n_acc))?;
        }
    }
    b.finish_and_clear();
    // LoRA adapters are folded into their weights: the round's model is a plain checkpoint.
    Ok((
        model.valid().materialize(),
        last_loss,
        began.elapsed().as_secs_f64(),
    ))
}

fn stats_of(cfg: &SrumConfig, r: u32, prompts: usize, pool: &Pool) -> RoundStats {
    let kept = pool.kept();
    let mean = |xs: &[f32]| (!xs.is_empty()).then(|| xs.iter().sum::<f32>() / xs.len() as f32);
    let g: Vec<f32> = kept
        .iter()
        .filter_map(|&k| pool.records[k].global)
        .collect();
    let w: Vec<f32> = kept
        .iter()
        .filter_map(|&k| pool.records[k].token_weights.as_ref())
        .flatten()
        .copied()
        .collect();
    let scores: Vec<f32> = kept
        .iter()
        .filter_map(|&k| pool.records[k].regions.as_ref())
        .filter_map(|v| v.as_array())
        .flatten()
        .filter_map(|r| r["score"].as_f64())
        .map(|s| s as f32)
        .collect();
    let srum = cfg.method == Method::Srum;
    let frac = |f: &dyn Fn(f32) -> bool, xs: &[f32]| {
        (!xs.is_empty()).then(|| xs.iter().filter(|&&x| f(x)).count() as f32 / xs.len() as f32)
    };
    RoundStats {
        round: r,
        method: cfg.method,
        prompts,
        candidates: pool.records.len(),
        trained_on: kept.len(),
        reward_errors: pool.records.iter().filter(|r| r.error.is_some()).count(),
        mean_global: mean(&g),
        frac_global_positive: frac(&|x| x > 0.0, &g),
        mean_weight: mean(&w),
        regions_per_image: (srum && !kept.is_empty())
            .then(|| scores.len() as f32 / kept.len() as f32),
        frac_regions_positive: frac(&|x| x > 0.0, &scores),
        frac_regions_negative: frac(&|x| x < 0.0, &scores),
        generate_s: pool.generate_s,
        reward_s: pool.reward_s,
        train_s: 0.0,
        steps: cfg.train.steps_per_round,
        final_loss: f32::NAN,
        keep_top_threshold: pool.keep_top_threshold,
    }
}

fn write_rounds_csv(run: &SrumRun, stats: &[RoundStats]) -> Result<()> {
    let opt = |x: Option<f32>| x.map_or(String::new(), |v| format!("{v:.4}"));
    let mut text = String::from(
        "round,method,prompts,candidates,trained_on,reward_errors,mean_global,frac_global_positive,\
         mean_weight,regions_per_image,frac_regions_positive,frac_regions_negative,generate_s,\
         reward_s,train_s,steps,final_loss,keep_top_threshold\n",
    );
    for s in stats {
        text.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{},{},{:.1},{:.1},{:.1},{},{:.5},{}\n",
            s.round,
            s.method.name(),
            s.prompts,
            s.candidates,
            s.trained_on,
            s.reward_errors,
            opt(s.mean_global),
            opt(s.frac_global_positive),
            opt(s.mean_weight),
            opt(s.regions_per_image),
            opt(s.frac_regions_positive),
            opt(s.frac_regions_negative),
            s.generate_s,
            s.reward_s,
            s.train_s,
            s.steps,
            s.final_loss,
            opt(s.keep_top_threshold)
        ));
    }
    write_atomic(&run.rounds_csv(), text.as_bytes())
}

/// Runs (or resumes) SRUM or SFT post-training into `dir`. `device` is the inference device;
/// training uses `device.autodiff()`.
pub fn run(
    cfg: &SrumConfig,
    dir: &Path,
    device: &Device,
    opts: &SrumOptions,
) -> Result<SrumOutcome> {
    cfg.validate()?;
    let run = SrumRun(dir.to_path_buf());
    if opts.resume && run.config().exists() {
        let saved = SrumConfig::from_file(&run.config())?;
        if saved != *cfg {
            return Err(Error::Config(format!(
                "cannot resume {}: its config.toml differs from this run's configuration",
                dir.display()
            )));
        }
    } else if run.config().exists() {
        return Err(Error::Config(format!(
            "{} already holds a run: pass --resume to continue it, or choose another --out",
            dir.display()
        )));
    }
    fs::create_dir_all(run.checkpoints()).map_err(|e| io_err("create", &run.checkpoints(), e))?;
    if !run.config().exists() {
        write_atomic(&run.config(), cfg.to_toml().as_bytes())?;
        write_atomic(&run.metrics(), METRICS_HEADER.as_bytes())?;
    }
    // Half-written checkpoints of a killed run.
    if let Ok(rd) = fs::read_dir(run.checkpoints()) {
        for e in rd.filter_map(|e| e.ok()) {
            if e.file_name().to_string_lossy().starts_with(".tmp-") {
                let _ = fs::remove_dir_all(e.path());
            }
        }
    }
    if !cfg.base.exists() {
        return Err(Error::Config(format!(
            "base checkpoint {} not found",
            cfg.base.display()
        )));
    }
    let prompts = training_prompts(cfg)?;
    let grid = grid_prompts(cfg, &prompts);
    let (base, meta) = checkpoint::load(&cfg.base, device)?;
    let mcfg = meta.config;
    let before = run.round(0).join("samples.png");
    if !before.exists() {
        write_samples(cfg, &base, &mcfg, &grid, &before, device)?;
    }
    drop(base);
    let mut stats: Vec<RoundStats> = Vec::new();
    let mut global_step = 0;
    for r in 1..=cfg.rounds {
        let stats_path = run.round(r).join("stats.json");
        if run.round_model(r).exists()
            && let Some(s) = fs::read_to_string(&stats_path)
                .ok()
                .and_then(|t| serde_json::from_str::<RoundStats>(&t).ok())
        {
            stats.push(s);
            global_step += cfg.train.steps_per_round;
            continue;
        }
        let start = if r == 1 {
            cfg.base.clone()
        } else {
            run.round_model(r - 1)
        };
        tracing::info!(round = r, "round starts from {}", start.display());
        let pool = match read_pool(&run, r, mcfg.resolution)? {
            Some(p) => p,
            None => {
                // The frozen judge and generator of this round: the round-start weights.
                let (snapshot, _) = checkpoint::load(&start, device)?;
                make_pool(
                    cfg,
                    &run,
                    r,
                    &snapshot,
                    &mcfg,
                    &prompts,
                    device,
                    opts.progress,
                )?
            }
        };
        let mut s = stats_of(cfg, r, prompts.len(), &pool);
        tracing::info!(
            round = r,
            kept = s.trained_on,
            mean_global = s.mean_global,
            mean_weight = s.mean_weight,
            "candidates ready"
        );
        let (model, last, train_s) =
            train_round(cfg, &run, r, &start, &pool, device, opts, global_step)?;
        global_step += cfg.train.steps_per_round;
        s.train_s = train_s;
        s.final_loss = last;
        let meta = CheckpointMeta::new(mcfg.clone(), global_step, [0; 4]);
        checkpoint::save(&model, &meta, &run.round_model(r))?;
        let plain = checkpoint::load(&run.round_model(r), device)?.0;
        write_samples(
            cfg,
            &plain,
            &mcfg,
            &grid,
            &run.round(r).join("samples.png"),
            device,
        )?;
        write_atomic(
            &stats_path,
            serde_json::to_string_pretty(&s)
                .expect("stats serialise")
                .as_bytes(),
        )?;
        stats.push(s);
        write_rounds_csv(&run, &stats)?;
        tracing::info!(round = r, train_s, "round done");
    }
    let last = run.round_model(cfg.rounds);
    let (model, meta) = checkpoint::load(&last, device)?;
    checkpoint::save(&model, &meta, &run.final_model())?;
    Ok(SrumOutcome {
        model,
        rounds: stats,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use reward_local::{MapConfig, MapMode};

    fn record(global: Option<f32>, regions: serde_json::Value, error: bool) -> CandidateRecord {
        CandidateRecord {
            index: 0,
            file: String::new(),
            prompt: "a red circle".into(),
            category: "color".into(),
            seed: 0,
            global,
            kept: !error,
            regions: Some(regions),
            token_weights: Some(vec![9.0]),
            error: error.then(|| "bad".into()),
        }
    }

    #[test]
    fn keep_top_trains_on_the_top_share_and_recentres_g() {
        let mcfg = UmmConfig::tiny(); // 32 x 32 pixels, 4 x 4 patches: 8 x 8 tokens
        assert_eq!((mcfg.resolution, mcfg.patch), (32, 4));
        let top_left_right = serde_json::json!([{"bbox": [0.0, 0.0, 4.0, 4.0], "score": 1.0,
            "area": 16, "phrase": "red circle", "why": "match"}]);
        let records = vec![
            record(Some(0.3), top_left_right, false),
            record(Some(-0.2), serde_json::json!([]), false),
            record(Some(-0.6), serde_json::json!([]), false),
            record(Some(0.9), serde_json::json!([]), false),
            record(Some(5.0), serde_json::json!([]), true), // errors are neither ranked nor changed
        ];
        let map = |mode| MapConfig {
            mode,
            lambda: 0.0,
            ..MapConfig::default()
        };

        // Binary map: the top half (g = 0.9 and 0.3) keeps its weight, whatever the sign of g.
        let mut r = records.clone();
        let tau = keep_top(&mut r, 0.5, &map(MapMode::Binary), &mcfg).unwrap();
        assert!((tau - 0.05).abs() < 1e-6, "tau {tau}");
        let kept: Vec<bool> = r.iter().map(|x| x.kept).collect();
        assert_eq!(kept, [true, false, false, true, false]);
        let w0 = r[0].token_weights.as_ref().unwrap();
        assert_eq!(w0.len(), 64);
        assert_eq!(w0[0], 1.0, "the right region's token");
        assert!(
            w0[1..].iter().all(|&w| w == 0.5),
            "the rest of a kept image"
        );
        assert!(
            r[1].token_weights
                .as_ref()
                .unwrap()
                .iter()
                .all(|&w| w == 0.0)
        );
        assert_eq!(r[4].token_weights, Some(vec![9.0]));
        assert_eq!(r[4].global, Some(5.0), "records keep their own g");

        // Unit map: g - tau is what the map sees: (0.9 - 0.05 + 1) / 2 * 0.5.
        let mut r = records.clone();
        keep_top(&mut r, 0.5, &map(MapMode::Unit), &mcfg).unwrap();
        let w3 = r[3].token_weights.as_ref().unwrap();
        assert!(w3.iter().all(|&w| (w - 0.4625).abs() < 1e-6), "{}", w3[0]);

        // A quarter of four: only the best; everything kept when the share rounds to all.
        let mut r = records.clone();
        keep_top(&mut r, 0.25, &map(MapMode::Binary), &mcfg).unwrap();
        assert_eq!(r.iter().filter(|x| x.kept).count(), 1);
        assert!(r[3].kept);
        let mut r = records.clone();
        keep_top(&mut r, 0.99, &map(MapMode::Binary), &mcfg).unwrap();
        assert_eq!(r.iter().filter(|x| x.kept).count(), 4);
    }

    /// The round's statistics and `rounds.csv` carry the threshold that `keep_top` chose, and
    /// count only the candidates it kept.
    #[test]
    fn rounds_csv_records_the_keep_top_threshold() {
        let mcfg = UmmConfig::tiny();
        let mut records: Vec<CandidateRecord> = [0.3, -0.2, -0.6, 0.9]
            .into_iter()
            .map(|g| record(Some(g), serde_json::json!([]), false))
            .collect();
        let map = MapConfig {
            mode: MapMode::Binary,
            lambda: 0.0,
            ..MapConfig::default()
        };
        let tau = keep_top(&mut records, 0.5, &map, &mcfg);
        let pool = Pool {
            images: vec![Image::filled(32, 32, [0.0; 3]); records.len()],
            records,
            generate_s: 1.0,
            reward_s: 2.0,
            keep_top_threshold: tau,
        };
        let cfg = SrumConfig::default();
        let stats = stats_of(&cfg, 1, 4, &pool);
        assert_eq!(stats.trained_on, 2);
        assert_eq!(
            stats.mean_global,
            Some(0.6),
            "the mean of the kept g (0.9, 0.3)"
        );
        assert_eq!(stats.keep_top_threshold, tau);
        let off = stats_of(
            &cfg,
            1,
            4,
            &Pool {
                keep_top_threshold: None,
                ..pool
            },
        );
        let dir = std::env::temp_dir().join(format!("srum-rounds-csv-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let run = SrumRun(dir.clone());
        write_rounds_csv(&run, &[stats.clone(), off]).unwrap();
        let text = fs::read_to_string(run.rounds_csv()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0].ends_with(",final_loss,keep_top_threshold"),
            "{}",
            lines[0]
        );
        assert!(lines[1].ends_with(",0.0500"), "{}", lines[1]);
        assert!(
            lines[2].ends_with(','),
            "no threshold when it did not act: {}",
            lines[2]
        );
        // A stats.json written before the field existed reads as no threshold (a finished
        // round's stats.json has its final loss).
        let finished = RoundStats {
            final_loss: 0.5,
            ..stats
        };
        let mut old = serde_json::to_value(&finished).unwrap();
        old.as_object_mut().unwrap().remove("keep_top_threshold");
        let back: RoundStats = serde_json::from_value(old).unwrap();
        assert_eq!(back.keep_top_threshold, None);
        fs::remove_dir_all(&dir).ok();
    }

    /// `train.t_focus` draws that share of the times from its window; at 0 the batch's times
    /// are exactly `time`'s draws (no extra draw, so older runs keep their random stream).
    #[test]
    fn t_focus_draws_its_share_from_the_window_and_leaves_the_stream_alone_at_zero() {
        let mcfg = UmmConfig::tiny();
        let n = 512;
        let pool = Pool {
            images: vec![Image::filled(32, 32, [0.5; 3]); n],
            records: (0..n)
                .map(|_| CandidateRecord {
                    prompt: "a red circle".into(),
                    ..record(None, serde_json::json!([]), false)
                })
                .collect(),
            generate_s: 0.0,
            reward_s: 0.0,
            keep_top_threshold: None,
        };
        let kept: Vec<usize> = (0..n).collect();
        let device = Device::flex();
        let tok = WordTokenizer::compworld();
        let times = |cfg: &SrumConfig| -> Vec<f32> {
            let b = post_batch(cfg, &mcfg, &tok, &pool, &kept, 1, 0, &device).unwrap();
            b.t.into_data().try_to_vec::<f32>().unwrap()
        };
        let mut cfg = SrumConfig {
            method: Method::Sft,
            ..SrumConfig::default()
        };
        cfg.train.batch = n;
        let plain = times(&cfg);
        // The same stream by hand: per row a dropout draw, then the noise, then the times.
        let mut rng = Rng::derive(cfg.train.seed, "srum-step-r1-s0");
        for _ in 0..n {
            rng.chance(cfg.train.text_dropout);
        }
        for _ in 0..n * mcfg.image_tokens() * mcfg.patch_dim() {
            rng.normal();
        }
        let want: Vec<f32> = (0..n)
            .map(|_| draw_time(TimeSampling::LogitNormal, &mut rng))
            .collect();
        assert_eq!(plain, want);
        cfg.train.t_focus = 0.5;
        cfg.train.t_focus_range = [0.6, 0.95];
        let focused = times(&cfg);
        let inside = focused
            .iter()
            .filter(|&&t| (0.6..=0.95).contains(&t))
            .count();
        let plain_inside = plain.iter().filter(|&&t| (0.6..=0.95).contains(&t)).count();
        // Logit-normal puts about 35% in [0.6, 0.95]; half from the window makes it about 67%.
        assert!((150..230).contains(&plain_inside), "{plain_inside}");
        assert!((300..380).contains(&inside), "{inside}");
        cfg.train.t_focus_range = [0.9, 0.6];
        assert!(cfg.validate().is_err());
    }
}
