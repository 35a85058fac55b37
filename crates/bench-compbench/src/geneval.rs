//! GenEval's layout: `<dir>/NNNNN/metadata.jsonl` (the prompt's metadata, one JSON object)
//! and `<dir>/NNNNN/samples/NNNN.png`, read by its `evaluate_images.py` (folders whose name is
//! all digits, images matching `\d+\.png`).

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::io;
use crate::{Error, Generator, Request, Result};

/// One line of GenEval's `evaluation_metadata.jsonl`.
#[derive(Debug, Clone, PartialEq)]
pub struct GenevalPrompt {
    /// The line as read (written back verbatim as the folder's `metadata.jsonl`).
    pub line: String,
    pub prompt: String,
    /// `single_object`, `two_object`, `counting`, `colors`, `position`, `color_attr`.
    pub tag: String,
}

/// Reads `evaluation_metadata.jsonl`: one JSON object a line with at least `prompt` and `tag`.
pub fn read_metadata(path: &Path) -> Result<Vec<GenevalPrompt>> {
    let text = std::fs::read_to_string(path).map_err(|e| io("reading", path, e))?;
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim_start_matches('\u{feff}').trim();
        if line.is_empty() {
            continue;
        }
        let bad = |msg: String| Error::Parse {
            path: path.display().to_string(),
            line: i + 1,
            msg,
        };
        let v: Value = serde_json::from_str(line).map_err(|e| bad(e.to_string()))?;
        let field = |k: &str| {
            v.get(k)
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| bad(format!("no string field '{k}'")))
        };
        out.push(GenevalPrompt {
            line: line.to_string(),
            prompt: field("prompt")?,
            tag: field("tag")?,
        });
    }
    if out.is_empty() {
        return Err(Error::Empty(format!("{}: no prompts", path.display())));
    }
    Ok(out)
}

/// Generates `n` images per prompt (seeds `first_seed..first_seed + n`) and writes GenEval's
/// layout into `dir`; returns the prompt folders written.
pub fn export(
    dir: &Path,
    prompts: &[GenevalPrompt],
    n: usize,
    first_seed: u64,
    generator: &mut dyn Generator,
) -> Result<Vec<PathBuf>> {
    let mut folders = Vec::new();
    for (i, p) in prompts.iter().enumerate() {
        let folder = dir.join(format!("{i:05}"));
        let samples = folder.join("samples");
        std::fs::create_dir_all(&samples).map_err(|e| io("creating", &samples, e))?;
        let meta = folder.join("metadata.jsonl");
        std::fs::write(&meta, format!("{}\n", p.line)).map_err(|e| io("writing", &meta, e))?;
        let requests: Vec<Request<'_>> = (0..n)
            .map(|k| Request {
                category: &p.tag,
                prompt: &p.prompt,
                prompt_index: i,
                sample: k,
                samples_per_prompt: n,
                seed: first_seed + k as u64,
            })
            .collect();
        for (k, img) in generator.generate(&requests)?.iter().enumerate() {
            img.save_png(&samples.join(format!("{k:04}.png")))?;
        }
        folders.push(folder);
    }
    Ok(folders)
}
