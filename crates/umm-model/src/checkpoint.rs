//! Checkpoints: the weights as a safetensors file (which PyTorch's `safetensors` opens) plus a
//! TOML sidecar beside it (`model.safetensors` + `model.toml`) that makes the checkpoint
//! self-describing: format version, model configuration, training step and RNG state.
//!
//! Both files are written to a temporary name, flushed to disk and renamed, so a crash never
//! leaves a half-written checkpoint under the real name. Loading checks every tensor's name
//! and shape against the configuration and refuses missing, extra or mis-shaped tensors.

use std::io::Write;
use std::path::{Path, PathBuf};

use burn::prelude::*;
use burn::store::{ModuleSnapshot, SafetensorsStore};
use serde::{Deserialize, Serialize};

use crate::{Error, Result, Umm, UmmConfig};

/// Version of the checkpoint layout.
pub const FORMAT: u32 = 1;

/// The sidecar's contents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointMeta {
    /// Layout version ([`FORMAT`]).
    pub format: u32,
    /// Training step the weights are from.
    pub step: u64,
    /// State of the data/noise generator at that step (`compworld::Rng::state`).
    pub rng_state: [u64; 4],
    /// The model's configuration.
    pub config: UmmConfig,
}

impl CheckpointMeta {
    /// Metadata for a model at a step.
    pub fn new(config: UmmConfig, step: u64, rng_state: [u64; 4]) -> Self {
        CheckpointMeta {
            format: FORMAT,
            step,
            rng_state,
            config,
        }
    }
}

/// The sidecar of a weights file: same name, `.meta.toml` (so `name.toml` stays free for a
/// manifest beside a shipped checkpoint).
pub fn sidecar_path(weights: &Path) -> PathBuf {
    weights.with_extension("meta.toml")
}

fn err(path: &Path, msg: impl std::fmt::Display) -> Error {
    Error::Checkpoint(format!("{}: {msg}", path.display()))
}

/// Writes `bytes` to `path` atomically: temporary file, fsync, rename.
fn write_atomic(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let tmp = path.with_extension(format!(
        "{}.tmp",
        path.extension().and_then(|e| e.to_str()).unwrap_or("")
    ));
    let _ = std::fs::remove_file(&tmp);
    write(&tmp)?;
    std::fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(|e| err(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| err(path, e))
}

/// Saves weights to `path` (`*.safetensors`) and the metadata beside it.
pub fn save(model: &Umm, meta: &CheckpointMeta, path: &Path) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| err(dir, e))?;
    }
    write_atomic(path, |tmp| {
        let mut store = SafetensorsStore::from_file(tmp).overwrite(true);
        model.save_into(&mut store).map_err(|e| err(tmp, e))
    })?;
    let toml = toml::to_string(meta).map_err(|e| err(path, e))?;
    let side = sidecar_path(path);
    write_atomic(&side, |tmp| {
        let mut f = std::fs::File::create(tmp).map_err(|e| err(tmp, e))?;
        f.write_all(toml.as_bytes()).map_err(|e| err(tmp, e))
    })
}

/// Reads only the sidecar.
pub fn load_meta(path: &Path) -> Result<CheckpointMeta> {
    let side = sidecar_path(path);
    let text = std::fs::read_to_string(&side).map_err(|e| {
        err(
            &side,
            format!("{e} (a checkpoint is `name.safetensors` plus its `name.meta.toml` sidecar)"),
        )
    })?;
    let meta: CheckpointMeta =
        toml::from_str(&text).map_err(|e| err(&side, e.message().trim_end()))?;
    if meta.format != FORMAT {
        return Err(err(
            &side,
            format!(
                "checkpoint format {} (this build reads {FORMAT})",
                meta.format
            ),
        ));
    }
    meta.config.validate().map_err(|e| err(&side, e))?;
    Ok(meta)
}

/// Loads a checkpoint onto `device`. Every tensor of the model must be in the file with the
/// right shape, and the file must hold nothing else.
pub fn load(path: &Path, device: &Device) -> Result<(Umm, CheckpointMeta)> {
    let meta = load_meta(path)?;
    if !path.exists() {
        return Err(err(path, "no such weights file"));
    }
    let model = load_into(Umm::init(&meta.config, device), path)?;
    Ok((model, meta))
}

/// Loads the weights of `path` into `model`, which may carry more than a plain [`Umm`] (LoRA
/// adapters, for instance): every tensor of `model` must be in the file with the right shape,
/// and the file must hold nothing else. The sidecar is not read.
pub fn load_into(mut model: Umm, path: &Path) -> Result<Umm> {
    if !path.exists() {
        return Err(err(path, "no such weights file"));
    }
    let mut store = SafetensorsStore::from_file(path)
        .validate(true)
        .allow_partial(false);
    let applied = model
        .load_from(&mut store)
        .map_err(|e| err(path, format!("unreadable weights ({e})")))?;
    let mut problems: Vec<String> = Vec::new();
    problems.extend(applied.errors.iter().map(|e| format!("{e:?}")));
    problems.extend(
        applied
            .missing
            .iter()
            .map(|(p, _)| format!("missing tensor {p}")),
    );
    problems.extend(
        applied
            .unused
            .iter()
            .map(|p| format!("unexpected tensor {p}")),
    );
    if !problems.is_empty() {
        let n = problems.len();
        problems.truncate(3);
        return Err(err(
            path,
            format!(
                "does not match its config ({n} problems: {})",
                problems.join("; ")
            ),
        ));
    }
    Ok(model)
}
