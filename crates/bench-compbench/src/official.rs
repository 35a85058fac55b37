//! The official T2I-CompBench files: prompt lists in, the `samples/` layout out, and its
//! evaluation scripts' `vqa_result.json` back in.
//!
//! The official scripts find everything from file names: the prompt of an image is
//! `name.split('_')[0]`, its counter `int(name.split('_')[-1].split('.')[0])`, and images are
//! taken in counter order, the k-th one getting `question_id = k`. So a prompt may not contain
//! `_` (or `/`), every file in `samples/` must be a PNG, and the counter is written as
//! `prompt index x N + sample index` with six digits.

use std::path::{Path, PathBuf};

use compworld::Image;
use serde::Deserialize;

use crate::error::io;
use crate::{Error, Result};

/// Longest prompt (in bytes) whose file name fits the usual 255-byte limit.
pub const MAX_PROMPT_BYTES: usize = 240;

/// A prompt list as read from a file.
#[derive(Debug, Clone, PartialEq)]
pub struct PromptFile {
    pub path: PathBuf,
    /// One per non-blank line, in file order, trimmed. Duplicates are kept: the official
    /// protocol makes images for every line.
    pub prompts: Vec<String>,
    /// Prompts that occur more than once (each listed once).
    pub duplicates: Vec<String>,
    /// Blank lines skipped (a trailing newline does not count).
    pub blank_lines: usize,
}

/// Reads a prompt list: UTF-8 (a byte-order mark is dropped), LF or CRLF, one prompt a line,
/// surrounding whitespace trimmed, blank lines skipped. A file that is not UTF-8 or holds no
/// prompt is an error naming the file.
pub fn read_prompt_file(path: &Path) -> Result<PromptFile> {
    let bytes = std::fs::read(path).map_err(|e| io("reading prompt file", path, e))?;
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
    let text = std::str::from_utf8(bytes).map_err(|e| Error::Parse {
        path: path.display().to_string(),
        line: 1 + bytes[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count(),
        msg: "not valid UTF-8".into(),
    })?;
    let mut prompts = Vec::new();
    let mut blank_lines = 0;
    let body = text.strip_suffix('\n').unwrap_or(text);
    for line in body.split('\n') {
        let p = line.trim();
        if p.is_empty() {
            blank_lines += 1;
        } else {
            prompts.push(p.to_string());
        }
    }
    if prompts.is_empty() {
        return Err(Error::Empty(format!(
            "{}: no prompts in the file",
            path.display()
        )));
    }
    let mut count = std::collections::HashMap::<&str, usize>::new();
    for p in &prompts {
        *count.entry(p).or_default() += 1;
    }
    let mut duplicates: Vec<String> = Vec::new();
    for p in &prompts {
        if count[p.as_str()] > 1 && !duplicates.contains(p) {
            duplicates.push(p.clone());
        }
    }
    Ok(PromptFile {
        path: path.to_path_buf(),
        prompts,
        duplicates,
        blank_lines,
    })
}

/// `{prompt}_{counter:06}.png`, or an error when the official scripts could not read the
/// prompt back from the name.
pub fn compbench_file_name(prompt: &str, counter: usize) -> Result<String> {
    if let Some(c) = prompt
        .chars()
        .find(|c| matches!(c, '_' | '/' | '\\' | '\0'))
    {
        return Err(Error::Layout(format!(
            "prompt \"{prompt}\" contains {c:?}: the official scripts read the prompt from the file name up to the first '_'"
        )));
    }
    if prompt.len() > MAX_PROMPT_BYTES {
        return Err(Error::Layout(format!(
            "prompt \"{}...\" is {} bytes long; file names allow {MAX_PROMPT_BYTES}",
            &prompt[..prompt.floor_char_boundary(40)],
            prompt.len()
        )));
    }
    Ok(format!("{prompt}_{counter:06}.png"))
}

/// One file of a `samples/` folder, read by the official rules.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleFile {
    pub name: String,
    /// `name.split('_')[0]`.
    pub prompt: String,
    /// `int(name.split('_')[-1].split('.')[0])`.
    pub counter: u64,
}

/// Parses one file name as the official scripts do; `None` when they would fail on it.
pub fn parse_sample_name(name: &str) -> Option<SampleFile> {
    if !name.ends_with(".png") {
        return None;
    }
    let prompt = name.split('_').next()?.to_string();
    let last = name.rsplit('_').next()?;
    let counter = last.split('.').next()?.parse::<u64>().ok()?;
    (name.contains('_')).then(|| SampleFile {
        name: name.to_string(),
        prompt,
        counter,
    })
}

/// Lists a `samples/` folder in counter order (the official order), refusing anything the
/// official scripts would trip on: a file that is not a PNG named `{prompt}_{counter}.png`,
/// a sub-folder, or two files with one counter.
pub fn check_samples_dir(dir: &Path) -> Result<Vec<SampleFile>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| io("listing", dir, e))? {
        let entry = entry.map_err(|e| io("listing", dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let ok = entry.file_type().is_ok_and(|t| t.is_file());
        match parse_sample_name(&name) {
            Some(f) if ok => out.push(f),
            _ => {
                return Err(Error::Layout(format!(
                    "{}: '{name}' is not a '{{prompt}}_{{NNNNNN}}.png' image; the official scripts read every file in samples/",
                    dir.display()
                )));
            }
        }
    }
    out.sort_by_key(|f| f.counter);
    if let Some(w) = out.windows(2).find(|w| w[0].counter == w[1].counter) {
        return Err(Error::Layout(format!(
            "{}: '{}' and '{}' share counter {}",
            dir.display(),
            w[0].name,
            w[1].name,
            w[0].counter
        )));
    }
    Ok(out)
}

/// Writes `images[k]` (prompt `k / n`, sample `k % n`) as
/// `<dir>/<category>/samples/{prompt}_{NNNNNN}.png`; returns the folder written.
pub fn export_category(
    dir: &Path,
    category: &str,
    prompts: &[String],
    n: usize,
    images: &[Image],
) -> Result<PathBuf> {
    if images.len() != prompts.len() * n {
        return Err(Error::Layout(format!(
            "{category}: {} images for {} prompts x {n}",
            images.len(),
            prompts.len()
        )));
    }
    let samples = dir.join(category).join("samples");
    std::fs::create_dir_all(&samples).map_err(|e| io("creating", &samples, e))?;
    for (k, img) in images.iter().enumerate() {
        let path = samples.join(compbench_file_name(&prompts[k / n], k)?);
        img.save_png(&path)?;
    }
    Ok(samples)
}

/// Where each official evaluation script writes its scores, relative to the category folder
/// it was run on, by our category name.
pub fn official_result_file(category: &str) -> Option<&'static str> {
    Some(match category {
        "color" | "shape" | "texture" => "annotation_blip/vqa_result.json",
        "spatial" => "labels/annotation_obj_detection_2d/vqa_result.json",
        "3d_spatial" => "labels/annotation_obj_detection_3d/vqa_result.json",
        "numeracy" => "annotation_num/vqa_result.json",
        "non_spatial" => "annotation_clip/vqa_result.json",
        "complex" => "annotation_3_in_1/vqa_result.json",
        _ => return None,
    })
}

#[derive(Deserialize)]
struct VqaRow {
    question_id: u64,
    answer: serde_json::Value,
}

/// One image's score from an official result file.
#[derive(Debug, Clone, PartialEq)]
pub struct OfficialScore {
    pub file: SampleFile,
    pub score: f64,
}

/// Reads `<dir>/<category>/<result file>` and pairs each `question_id` with the image it
/// scored (the `question_id`-th file of `samples/` in counter order). Answers may be numbers
/// or strings of numbers (BLIP-VQA writes `"0.8123"`).
pub fn import_category(dir: &Path, category: &str) -> Result<Vec<OfficialScore>> {
    let rel = official_result_file(category).ok_or_else(|| {
        Error::Layout(format!(
            "no official evaluation script is known for category '{category}'"
        ))
    })?;
    let path = dir.join(category).join(rel);
    let text = std::fs::read_to_string(&path).map_err(|e| io("reading", &path, e))?;
    let rows: Vec<VqaRow> = serde_json::from_str(&text).map_err(|e| Error::Parse {
        path: path.display().to_string(),
        line: e.line(),
        msg: format!("expected a list of {{question_id, answer}}: {e}"),
    })?;
    let files = check_samples_dir(&dir.join(category).join("samples"))?;
    if rows.len() != files.len() {
        return Err(Error::Layout(format!(
            "{}: {} scores for {} images in samples/",
            path.display(),
            rows.len(),
            files.len()
        )));
    }
    rows.into_iter()
        .map(|r| {
            let score = match &r.answer {
                serde_json::Value::Number(n) => n.as_f64(),
                serde_json::Value::String(s) => s.trim().parse::<f64>().ok(),
                _ => None,
            }
            .ok_or_else(|| Error::Parse {
                path: path.display().to_string(),
                line: 0,
                msg: format!(
                    "question {}: answer {} is not a number",
                    r.question_id, r.answer
                ),
            })?;
            let file = files.get(r.question_id as usize).cloned().ok_or_else(|| {
                Error::Layout(format!(
                    "{}: question_id {} but samples/ has {} images",
                    path.display(),
                    r.question_id,
                    files.len()
                ))
            })?;
            Ok(OfficialScore { file, score })
        })
        .collect()
}
