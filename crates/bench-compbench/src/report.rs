//! A benchmark run's scores and the files written from them: `summary.json`, `per_image.csv`,
//! `summary.md` and one image grid per category.

use std::fmt::Write as _;
use std::path::Path;

use compworld::Image;
use compworld::render::contact_sheet;
use serde::Serialize;

use crate::error::io;
use crate::{Error, Result};

/// Prompts shown per category grid.
const GRID_PROMPTS: usize = 10;

/// The score of one image.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ImageScore {
    pub category: String,
    pub prompt_index: usize,
    pub prompt: String,
    pub sample: usize,
    pub seed: u64,
    /// File name in the official layout.
    pub file: String,
    /// In [0, 1].
    pub score: f64,
    /// Per-constraint (or per-question) scores, when the scorer gives them.
    pub breakdown: Vec<(String, f64)>,
}

/// Mean score of one category.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CategoryScore {
    /// Mean image score x 100.
    pub score: f64,
    pub prompts: usize,
    pub images: usize,
}

/// Everything one run measured.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// `compbench` or `reasonbench`.
    pub benchmark: String,
    pub generator: String,
    pub samples_per_prompt: usize,
    pub seeds: Vec<u64>,
    /// Category (or dimension) names in report order.
    pub categories: Vec<String>,
    pub images: Vec<ImageScore>,
    /// Files found but not scored (a folder holding more than the plan asked for).
    pub skipped: Vec<String>,
    pub wall_s: f64,
    /// The command that made the run, if the caller says.
    pub command: Option<String>,
}

#[derive(Serialize)]
struct Summary<'a> {
    benchmark: &'a str,
    /// Mean of the category scores, in points (0-100).
    overall: f64,
    categories: std::collections::BTreeMap<&'a str, CategoryScore>,
    generator: &'a str,
    samples_per_prompt: usize,
    seeds: &'a [u64],
    images: usize,
    skipped: &'a [String],
    wall_s: f64,
    command: Option<&'a str>,
}

impl Report {
    /// Each category's mean, in report order.
    pub fn category_scores(&self) -> Vec<(String, CategoryScore)> {
        self.categories
            .iter()
            .map(|c| {
                let rows: Vec<&ImageScore> =
                    self.images.iter().filter(|r| &r.category == c).collect();
                let mut prompts: Vec<usize> = rows.iter().map(|r| r.prompt_index).collect();
                prompts.sort_unstable();
                prompts.dedup();
                let mean = if rows.is_empty() {
                    0.0
                } else {
                    rows.iter().map(|r| r.score).sum::<f64>() / rows.len() as f64
                };
                (
                    c.clone(),
                    CategoryScore {
                        score: 100.0 * mean,
                        prompts: prompts.len(),
                        images: rows.len(),
                    },
                )
            })
            .collect()
    }

    /// The mean of the category scores, in points.
    pub fn overall(&self) -> f64 {
        let s = self.category_scores();
        if s.is_empty() {
            0.0
        } else {
            s.iter().map(|(_, c)| c.score).sum::<f64>() / s.len() as f64
        }
    }

    /// `summary.json`'s content.
    pub fn summary_json(&self) -> String {
        let scores = self.category_scores();
        let s = Summary {
            benchmark: &self.benchmark,
            overall: self.overall(),
            categories: scores
                .iter()
                .map(|(n, c)| (n.as_str(), c.clone()))
                .collect(),
            generator: &self.generator,
            samples_per_prompt: self.samples_per_prompt,
            seeds: &self.seeds,
            images: self.images.len(),
            skipped: &self.skipped,
            wall_s: (self.wall_s * 10.0).round() / 10.0,
            command: self.command.as_deref(),
        };
        serde_json::to_string_pretty(&s).expect("a summary serialises")
    }

    /// `summary.md`: one row per category and the overall score.
    pub fn markdown(&self) -> String {
        let mut md = String::new();
        let _ = writeln!(md, "# {} summary\n", self.benchmark);
        let _ = writeln!(md, "- generator: {}", self.generator);
        let _ = writeln!(
            md,
            "- {} image(s) per prompt, seeds {}",
            self.samples_per_prompt,
            seed_range(&self.seeds)
        );
        if let Some(c) = &self.command {
            let _ = writeln!(md, "- command: `{c}`");
        }
        let _ = writeln!(md, "- wall time: {:.0} s", self.wall_s);
        if !self.skipped.is_empty() {
            let _ = writeln!(md, "- skipped (not scored): {} file(s)", self.skipped.len());
        }
        let _ = writeln!(md, "\n| category | score (0-100) | prompts | images |");
        let _ = writeln!(md, "|---|---:|---:|---:|");
        for (name, c) in self.category_scores() {
            let _ = writeln!(
                md,
                "| {name} | {:.1} | {} | {} |",
                c.score, c.prompts, c.images
            );
        }
        let _ = writeln!(
            md,
            "| **overall** (mean of categories) | **{:.1}** | | |",
            self.overall()
        );
        md
    }

    /// `per_image.csv`: one row per image with its per-constraint breakdown.
    pub fn per_image_csv(&self) -> Result<String> {
        let mut w = csv::Writer::from_writer(Vec::new());
        let err = |e: csv::Error| Error::Io(format!("writing per_image.csv: {e}"));
        w.write_record([
            "category",
            "prompt_index",
            "sample",
            "seed",
            "prompt",
            "file",
            "score",
            "breakdown",
        ])
        .map_err(err)?;
        for r in &self.images {
            let breakdown: Vec<String> = r
                .breakdown
                .iter()
                .map(|(d, s)| format!("{d} = {s:.3}"))
                .collect();
            w.write_record([
                r.category.clone(),
                r.prompt_index.to_string(),
                r.sample.to_string(),
                r.seed.to_string(),
                r.prompt.clone(),
                r.file.clone(),
                format!("{:.4}", r.score),
                breakdown.join("; "),
            ])
            .map_err(err)?;
        }
        let bytes = w.into_inner().map_err(|e| Error::Io(e.to_string()))?;
        Ok(String::from_utf8(bytes).expect("csv of strings is UTF-8"))
    }

    /// Writes the summary files into `out`, and `grid_<category>.png` (the first prompts of
    /// each category, one row per prompt) when `images` (in the order of `self.images`) are
    /// given.
    pub fn write(&self, out: &Path, images: Option<&[Image]>) -> Result<()> {
        std::fs::create_dir_all(out).map_err(|e| io("creating", out, e))?;
        let put = |name: &str, text: &str| {
            let p = out.join(name);
            std::fs::write(&p, text).map_err(|e| io("writing", &p, e))
        };
        put("summary.json", &(self.summary_json() + "\n"))?;
        put("summary.md", &self.markdown())?;
        put("per_image.csv", &self.per_image_csv()?)?;
        if let Some(images) = images {
            for cat in &self.categories {
                let picked: Vec<Image> = self
                    .images
                    .iter()
                    .zip(images)
                    .filter(|(r, _)| &r.category == cat && r.prompt_index < GRID_PROMPTS)
                    .map(|(_, i)| i.clone())
                    .collect();
                if picked.is_empty() {
                    continue;
                }
                let sheet = contact_sheet(&picked, self.samples_per_prompt.max(1), 3);
                sheet.save_png(&out.join(format!("grid_{cat}.png")))?;
            }
        }
        Ok(())
    }
}

fn seed_range(seeds: &[u64]) -> String {
    match (seeds.first(), seeds.last()) {
        (Some(a), Some(b)) if a != b => format!("{a}..{b}"),
        (Some(a), _) => a.to_string(),
        _ => "none".into(),
    }
}
