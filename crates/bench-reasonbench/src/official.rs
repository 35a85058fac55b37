//! T2I-ReasonBench's layout: one image per prompt, `0001.png ... NNNN.png`, in a folder per
//! dimension, which its judge scripts read (an image's number is its prompt's 1-based `id`).

use std::path::{Path, PathBuf};

use bench_compbench::{Error, Generator, Request, Result};
use compworld::{Category, Image};
use serde::Serialize;
use serde_json::Value;

/// The official dimension folder a compworld reasoning category exports to.
pub fn official_dimension(c: Category) -> Option<&'static str> {
    Some(match c {
        Category::Knowledge => "entity",
        Category::Arithmetic | Category::Geometry => "scientific",
        Category::Composite => "idiom",
        _ => return None,
    })
}

/// `{id:04}.png`, as the official scripts expect (`int(name[0:4])` is the prompt id).
pub fn image_name(id: usize) -> String {
    format!("{id:04}.png")
}

/// A prompt of a T2I-ReasonBench JSON file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReasonPrompt {
    /// 1-based; the image is `{id:04}.png`.
    pub id: usize,
    pub prompt: String,
}

/// Reads a T2I-ReasonBench prompt file: a JSON array of objects, each with a `prompt` string
/// and optionally an integer `id` (default: position + 1).
pub fn read_prompt_json(path: &Path) -> Result<Vec<ReasonPrompt>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Io(format!("reading {}: {e}", path.display())))?;
    let bad = |line: usize, msg: String| Error::Parse {
        path: path.display().to_string(),
        line,
        msg,
    };
    let v: Value = serde_json::from_str(text.trim_start_matches('\u{feff}'))
        .map_err(|e| bad(e.line(), e.to_string()))?;
    let arr = v.as_array().ok_or_else(|| {
        bad(
            1,
            "expected a JSON array of {\"prompt\": ...} objects".into(),
        )
    })?;
    if arr.is_empty() {
        return Err(Error::Empty(format!("{}: no prompts", path.display())));
    }
    arr.iter()
        .enumerate()
        .map(|(i, o)| {
            let prompt = o
                .get("prompt")
                .and_then(Value::as_str)
                .ok_or_else(|| bad(0, format!("entry {i}: no string field 'prompt'")))?;
            let id = match o.get("id") {
                None => i + 1,
                Some(x) => x.as_u64().filter(|&n| n >= 1).ok_or_else(|| {
                    bad(0, format!("entry {i}: 'id' {x} is not a positive integer"))
                })? as usize,
            };
            Ok(ReasonPrompt {
                id,
                prompt: prompt.to_string(),
            })
        })
        .collect()
}

/// Writes `images[k]` as `<dir>/<folder>/{prompts[k].id:04}.png` and the list as
/// `<dir>/<folder>/prompts.json`; returns the folder.
pub fn export_folder(
    dir: &Path,
    folder: &str,
    prompts: &[ReasonPrompt],
    images: &[Image],
) -> Result<PathBuf> {
    if prompts.len() != images.len() {
        return Err(Error::Layout(format!(
            "{folder}: {} images for {} prompts",
            images.len(),
            prompts.len()
        )));
    }
    let out = dir.join(folder);
    std::fs::create_dir_all(&out)
        .map_err(|e| Error::Io(format!("creating {}: {e}", out.display())))?;
    for (p, img) in prompts.iter().zip(images) {
        img.save_png(&out.join(image_name(p.id)))?;
    }
    let list = serde_json::to_string_pretty(prompts).expect("prompts serialise");
    let path = out.join("prompts.json");
    std::fs::write(&path, list + "\n")
        .map_err(|e| Error::Io(format!("writing {}: {e}", path.display())))?;
    Ok(out)
}

/// Generates one image per prompt (seed `seed`) and writes the official layout for it.
pub fn export_generated(
    dir: &Path,
    folder: &str,
    prompts: &[ReasonPrompt],
    seed: u64,
    generator: &mut dyn Generator,
) -> Result<PathBuf> {
    let requests: Vec<Request<'_>> = prompts
        .iter()
        .enumerate()
        .map(|(i, p)| Request {
            category: folder,
            prompt: &p.prompt,
            prompt_index: i,
            sample: 0,
            samples_per_prompt: 1,
            seed,
        })
        .collect();
    let (images, _) = bench_compbench::harness::generate_all(generator, &requests, &mut |_| ())?;
    export_folder(dir, folder, prompts, &images)
}

/// The compworld reasoning prompts of each category numbered within its official folder
/// (arithmetic first, then geometry, in `scientific`), as exported.
pub fn numbered(
    categories: &[(String, Vec<compworld::Prompt>)],
) -> Vec<(&'static str, Vec<ReasonPrompt>)> {
    let mut out: Vec<(&'static str, Vec<ReasonPrompt>)> = Vec::new();
    for (_, ps) in categories {
        for p in ps {
            let Some(folder) = official_dimension(p.category) else {
                continue;
            };
            let i = match out.iter().position(|(f, _)| *f == folder) {
                Some(i) => i,
                None => {
                    out.push((folder, Vec::new()));
                    out.len() - 1
                }
            };
            let id = out[i].1.len() + 1;
            out[i].1.push(ReasonPrompt {
                id,
                prompt: p.text.clone(),
            });
        }
    }
    out
}
