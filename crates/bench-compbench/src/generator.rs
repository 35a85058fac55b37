//! Where benchmark images come from: the [`Generator`] trait and its implementations.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::prelude::*;
use burn::tensor::TensorData;
use compworld::{Image, Prompt, Rng, render, sample_scene};
use umm_model::sampler::{SampleConfig, generate_from_noise, image_noise, to_images};
use umm_model::{Umm, UmmConfig, WordTokenizer};

use crate::official::{check_samples_dir, compbench_file_name};
use crate::{Error, Result};

/// One image a benchmark asks for.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// Category or dimension folder name (`color`, `spatial`, ...).
    pub category: &'a str,
    pub prompt: &'a str,
    /// Position of the prompt in its category's list.
    pub prompt_index: usize,
    /// Which of the prompt's images (0-based).
    pub sample: usize,
    /// Images per prompt in this run (for the official file counter).
    pub samples_per_prompt: usize,
    pub seed: u64,
}

impl Request<'_> {
    /// The official T2I-CompBench counter: prompt index x N + sample index.
    pub fn counter(&self) -> usize {
        self.prompt_index * self.samples_per_prompt + self.sample
    }
}

/// Anything that turns prompts into images. Implement it to benchmark your own model.
pub trait Generator {
    /// A one-line description for reports ("umm datasets/checkpoints/base-tiny.safetensors").
    fn describe(&self) -> String;

    /// One image per request, in order. Batching is up to the implementation.
    fn generate(&mut self, requests: &[Request<'_>]) -> Result<Vec<Image>>;

    /// Checked before anything is generated: an error when the generator cannot serve the
    /// whole plan (a folder with missing images), or files it holds that the plan does not
    /// use (reported as skipped, never scored).
    fn audit(&self, _plan: &[Request<'_>]) -> Result<Vec<String>> {
        Ok(Vec::new())
    }
}

/// The project's unified model from a checkpoint. Each image's starting noise comes from its
/// seed alone ([`image_noise`]), so an image does not depend on its batch.
#[derive(Debug)]
pub struct UmmGenerator {
    model: Umm,
    config: UmmConfig,
    tok: WordTokenizer,
    sample: SampleConfig,
    device: Device,
    batch: usize,
    checkpoint: PathBuf,
}

impl UmmGenerator {
    /// Loads `checkpoint` on `device`; images are sampled with `sample`, `batch` at a time.
    pub fn load(
        checkpoint: &Path,
        sample: SampleConfig,
        batch: usize,
        device: &Device,
    ) -> Result<Self> {
        let (model, meta) = umm_model::checkpoint::load(checkpoint, device)
            .map_err(|e| Error::Generator(e.to_string()))?;
        Ok(UmmGenerator {
            model,
            config: meta.config,
            tok: WordTokenizer::compworld(),
            sample,
            device: device.clone(),
            batch: batch.max(1),
            checkpoint: checkpoint.to_path_buf(),
        })
    }

    /// Samples from now on with `sample` (the loaded weights kept).
    pub fn set_sample(&mut self, sample: SampleConfig) {
        self.sample = sample;
    }

    /// The model's canvas side in pixels.
    pub fn resolution(&self) -> usize {
        self.config.resolution
    }
}

impl Generator for UmmGenerator {
    fn describe(&self) -> String {
        format!(
            "umm {} ({})",
            self.checkpoint.display(),
            self.sample.describe()
        )
    }

    fn generate(&mut self, requests: &[Request<'_>]) -> Result<Vec<Image>> {
        let mut out = Vec::with_capacity(requests.len());
        let (n, dim) = (self.config.image_tokens(), self.config.patch_dim());
        for chunk in requests.chunks(self.batch) {
            let noise: Vec<f32> = chunk
                .iter()
                .flat_map(|r| image_noise(&self.config, r.seed))
                .collect();
            let x1 =
                Tensor::<3>::from_data(TensorData::new(noise, [chunk.len(), n, dim]), &self.device);
            let prompts: Vec<&str> = chunk.iter().map(|r| r.prompt).collect();
            let t = generate_from_noise(
                &self.model,
                &self.config,
                &self.tok,
                &prompts,
                x1,
                self.sample,
            )
            .map_err(|e| Error::Generator(e.to_string()))?;
            out.extend(to_images(t).map_err(|e| Error::Generator(e.to_string()))?);
        }
        Ok(out)
    }
}

/// Images already on disk in the official T2I-CompBench layout:
/// `<root>/<category>/samples/{prompt}_{NNNNNN}.png`.
#[derive(Debug, Clone)]
pub struct FolderImages {
    root: PathBuf,
    resolution: usize,
}

impl FolderImages {
    /// Images under `root`, each `resolution x resolution` RGB.
    pub fn new(root: &Path, resolution: usize) -> Self {
        FolderImages {
            root: root.to_path_buf(),
            resolution,
        }
    }

    fn path(&self, r: &Request<'_>) -> Result<PathBuf> {
        Ok(self
            .root
            .join(r.category)
            .join("samples")
            .join(compbench_file_name(r.prompt, r.counter())?))
    }
}

impl Generator for FolderImages {
    fn describe(&self) -> String {
        format!("images from {}", self.root.display())
    }

    fn generate(&mut self, requests: &[Request<'_>]) -> Result<Vec<Image>> {
        requests
            .iter()
            .map(|r| Ok(Image::load_png(&self.path(r)?, self.resolution)?))
            .collect()
    }

    /// Missing images are an error (listing how many and the first few); files the plan does
    /// not use are returned as skipped.
    fn audit(&self, plan: &[Request<'_>]) -> Result<Vec<String>> {
        let mut by_cat: HashMap<&str, Vec<String>> = HashMap::new();
        for r in plan {
            by_cat
                .entry(r.category)
                .or_default()
                .push(compbench_file_name(r.prompt, r.counter())?);
        }
        let mut missing = Vec::new();
        let mut extra = Vec::new();
        let mut cats: Vec<_> = by_cat.into_iter().collect();
        cats.sort();
        for (cat, wanted) in cats {
            let dir = self.root.join(cat).join("samples");
            if !dir.is_dir() {
                return Err(Error::Layout(format!(
                    "{} is not a folder: expected the images of category '{cat}' there",
                    dir.display()
                )));
            }
            let found = check_samples_dir(&dir)?;
            let have: std::collections::HashSet<&str> =
                found.iter().map(|f| f.name.as_str()).collect();
            let want: std::collections::HashSet<&str> = wanted.iter().map(String::as_str).collect();
            missing.extend(
                wanted
                    .iter()
                    .filter(|w| !have.contains(w.as_str()))
                    .map(|w| format!("{cat}/samples/{w}")),
            );
            extra.extend(
                found
                    .iter()
                    .filter(|f| !want.contains(f.name.as_str()))
                    .map(|f| format!("{cat}/samples/{}", f.name)),
            );
        }
        if !missing.is_empty() {
            return Err(Error::Layout(format!(
                "{} image(s) missing under {} (first: {})",
                missing.len(),
                self.root.display(),
                missing
                    .iter()
                    .take(3)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        Ok(extra)
    }
}

/// The perfect generator: a true render of each prompt, its scene drawn from the seed. What
/// the harness must score at the top of the scale.
#[derive(Debug, Clone)]
pub struct TrueRenders {
    pub resolution: usize,
}

impl Generator for TrueRenders {
    fn describe(&self) -> String {
        "true renders (perfect generator)".into()
    }

    fn generate(&mut self, requests: &[Request<'_>]) -> Result<Vec<Image>> {
        requests
            .iter()
            .map(|r| {
                let p = Prompt::parse(r.prompt)?;
                let mut rng = Rng::derive(r.seed, r.prompt);
                let scene = sample_scene(&p.meaning, &p.text, &mut rng)?;
                Ok(render(&scene, self.resolution))
            })
            .collect()
    }
}

/// Uniform random pixels from each seed: what the harness must score at the bottom.
#[derive(Debug, Clone)]
pub struct NoiseImages {
    pub resolution: usize,
}

impl Generator for NoiseImages {
    fn describe(&self) -> String {
        "uniform noise".into()
    }

    fn generate(&mut self, requests: &[Request<'_>]) -> Result<Vec<Image>> {
        Ok(requests
            .iter()
            .map(|r| {
                let mut rng = Rng::derive(r.seed, &format!("{}#{}", r.prompt, r.prompt_index));
                let s = self.resolution;
                let chw: Vec<f32> = (0..3 * s * s).map(|_| rng.range_f32(0.0, 1.0)).collect();
                Image::from_chw(s, s, &chw).expect("sizes match")
            })
            .collect())
    }
}
