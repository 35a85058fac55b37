//! The benchmark loop: plan the images, generate them through a [`Generator`], score each with
//! the oracle, and gather a [`Report`].

use std::path::Path;
use std::time::Instant;

use compworld::splits::SplitEntry;
use compworld::{Category, Image, Prompt};
use rayon::prelude::*;

use crate::official::{compbench_file_name, import_category};
use crate::{Error, Generator, ImageScore, Report, Request, Result};

/// Images per generator call: progress is reported after each.
const CHUNK: usize = 64;

/// How many images per prompt, from which seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BenchConfig {
    /// Images per prompt (N).
    pub samples: usize,
    /// Sample k of every prompt uses seed `first_seed + k` (official: 42..51).
    pub first_seed: u64,
}

impl Default for BenchConfig {
    fn default() -> Self {
        BenchConfig {
            samples: crate::DEFAULT_SAMPLES,
            first_seed: crate::FIRST_SEED,
        }
    }
}

/// The prompts of each category, in report order.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub categories: Vec<(String, Vec<Prompt>)>,
}

impl Plan {
    /// The prompts of `cats` from a split file's entries. A category without prompts is an
    /// error: its score would be missing from the overall mean.
    pub fn from_split(entries: &[SplitEntry], cats: &[Category]) -> Result<Plan> {
        let mut categories = Vec::new();
        for &c in cats {
            let prompts: Vec<Prompt> = entries
                .iter()
                .filter(|e| e.prompt.category == c)
                .map(|e| e.prompt.clone())
                .collect();
            if prompts.is_empty() {
                return Err(Error::Empty(format!(
                    "category '{c}' has no prompts in the split; every category must be scored"
                )));
            }
            categories.push((c.name().to_string(), prompts));
        }
        Ok(Plan { categories })
    }

    /// One request per image: category by category, prompt by prompt, sample by sample.
    pub fn requests(&self, cfg: BenchConfig) -> Vec<Request<'_>> {
        let mut out = Vec::new();
        for (cat, prompts) in &self.categories {
            for (i, p) in prompts.iter().enumerate() {
                for k in 0..cfg.samples {
                    out.push(Request {
                        category: cat,
                        prompt: &p.text,
                        prompt_index: i,
                        sample: k,
                        samples_per_prompt: cfg.samples,
                        seed: cfg.first_seed + k as u64,
                    });
                }
            }
        }
        out
    }

    /// The prompt texts of one category.
    pub fn texts(&self, category: &str) -> Vec<String> {
        self.categories
            .iter()
            .find(|(c, _)| c == category)
            .map(|(_, ps)| ps.iter().map(|p| p.text.clone()).collect())
            .unwrap_or_default()
    }

    /// Total images for `samples` per prompt.
    pub fn image_count(&self, samples: usize) -> usize {
        self.categories.iter().map(|(_, p)| p.len()).sum::<usize>() * samples
    }
}

/// Generates every request's image in chunks, calling `progress(done)` after each chunk.
/// The generator's audit runs first, so a folder with missing images fails before any work.
pub fn generate_all(
    generator: &mut dyn Generator,
    requests: &[Request<'_>],
    progress: &mut dyn FnMut(usize),
) -> Result<(Vec<Image>, Vec<String>)> {
    let skipped = generator.audit(requests)?;
    let mut images = Vec::with_capacity(requests.len());
    for chunk in requests.chunks(CHUNK) {
        let got = generator.generate(chunk)?;
        if got.len() != chunk.len() {
            return Err(Error::Generator(format!(
                "{} returned {} images for {} requests",
                generator.describe(),
                got.len(),
                chunk.len()
            )));
        }
        images.extend(got.into_iter().map(as_stored));
        progress(images.len());
    }
    Ok((images, skipped))
}

/// The image as an 8-bit PNG stores it. Every image is scored in this form, so scoring a
/// folder written by `--export` gives exactly the scores of the run that wrote it.
pub fn as_stored(img: Image) -> Image {
    img.quantized()
}

/// What a scorer is given for each image: its request, the image and the prompt.
pub type Scorer<'s> = dyn Fn(&Request<'_>, &Image, &Prompt) -> Result<ImageScore> + Sync + 's;

/// The benchmark loop shared by every benchmark: generate every image of the plan, score each
/// (in parallel) with `score`, and gather the report named `benchmark`. Returns the report and
/// the images (in the report's order).
pub fn run_with(
    benchmark: &str,
    generator: &mut dyn Generator,
    plan: &Plan,
    cfg: BenchConfig,
    progress: &mut dyn FnMut(usize),
    score: &Scorer<'_>,
) -> Result<(Report, Vec<Image>)> {
    let t0 = Instant::now();
    let requests = plan.requests(cfg);
    let (images, skipped) = generate_all(generator, &requests, progress)?;
    let prompts: Vec<&Prompt> = plan
        .categories
        .iter()
        .flat_map(|(_, ps)| ps.iter().flat_map(|p| std::iter::repeat_n(p, cfg.samples)))
        .collect();
    let rows: Vec<ImageScore> = requests
        .par_iter()
        .zip(images.par_iter())
        .zip(prompts.par_iter())
        .map(|((r, img), p)| score(r, img, p))
        .collect::<Result<_>>()?;
    let report = Report {
        benchmark: benchmark.into(),
        generator: generator.describe(),
        samples_per_prompt: cfg.samples,
        seeds: (0..cfg.samples as u64)
            .map(|k| cfg.first_seed + k)
            .collect(),
        categories: plan.categories.iter().map(|(c, _)| c.clone()).collect(),
        images: rows,
        skipped,
        wall_s: t0.elapsed().as_secs_f64(),
        command: None,
    };
    Ok((report, images))
}

/// Runs the CompBench-style benchmark: every image of the plan generated and scored by the
/// oracle (the category rule of each prompt). Returns the report and the images (in the
/// report's order).
pub fn run(
    generator: &mut dyn Generator,
    plan: &Plan,
    cfg: BenchConfig,
    progress: &mut dyn FnMut(usize),
) -> Result<(Report, Vec<Image>)> {
    run_with("compbench", generator, plan, cfg, progress, &|r, img, p| {
        let v = scene_oracle::score(img, p);
        Ok(ImageScore {
            category: r.category.to_string(),
            prompt_index: r.prompt_index,
            prompt: r.prompt.to_string(),
            sample: r.sample,
            seed: r.seed,
            file: compbench_file_name(r.prompt, r.counter())?,
            score: f64::from(v.score),
            breakdown: v
                .constraints
                .iter()
                .map(|c| (c.description.clone(), f64::from(c.score)))
                .collect(),
        })
    })
}

/// A report from the official scripts' result files under `dir` (one folder per category, as
/// [`crate::official::export_category`] writes them), for `categories`. The prompt index and
/// sample come from the file counter and `samples` per prompt.
pub fn import_official(dir: &Path, categories: &[&str], samples: usize) -> Result<Report> {
    let mut images = Vec::new();
    for &cat in categories {
        for s in import_category(dir, cat)? {
            let c = s.file.counter as usize;
            images.push(ImageScore {
                category: cat.to_string(),
                prompt_index: c / samples.max(1),
                prompt: s.file.prompt.clone(),
                sample: c % samples.max(1),
                seed: crate::FIRST_SEED + (c % samples.max(1)) as u64,
                file: s.file.name.clone(),
                score: s.score,
                breakdown: Vec::new(),
            });
        }
    }
    Ok(Report {
        benchmark: "compbench (official scripts)".into(),
        generator: format!("images under {}", dir.display()),
        samples_per_prompt: samples,
        seeds: (0..samples as u64).map(|k| crate::FIRST_SEED + k).collect(),
        categories: categories.iter().map(|c| c.to_string()).collect(),
        images,
        ..Report::default()
    })
}
