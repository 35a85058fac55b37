//! `cargo xtask base-eval`: the base model's understanding-generation gap, and the shipped
//! checkpoint's manifest.
//!
//! Understanding: balanced prompt-match accuracy (true render vs a one-constraint violation)
//! and region identification, per category of the test split (`trainer::eval`, no oracle).
//! Generation: the oracle's score of the model's own images of the same test prompts, and of
//! every colour-shape single-object prompt ("a red circle", 40 prompts, 6 of them pairs that
//! generation training never saw).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use burn::prelude::*;
use compworld::splits::{HELD_OUT_COLOUR_SHAPE, load_split};
use compworld::{Colour, Image, Prompt, Shape};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use trainer::eval::{UndReport, evaluate_understanding};
use umm_model::sampler::{SampleConfig, generate};
use umm_model::{Umm, UmmConfig, WordTokenizer, checkpoint};

/// Images generated per prompt.
pub const DEFAULT_SAMPLES: usize = 2;

/// The split the shipped base model is measured on.
pub const TEST_SPLIT: &str = "datasets/splits/test.tsv";

/// Prompts generated per forward batch.
const GEN_BATCH: usize = 64;

/// Settings of one evaluation.
#[derive(Debug, Clone)]
pub struct EvalArgs {
    pub checkpoint: PathBuf,
    pub split: PathBuf,
    pub samples: usize,
    pub sample: SampleConfig,
    pub out_dir: PathBuf,
}

#[derive(Debug, Serialize)]
struct GapRow {
    understanding: f64,
    generation: f64,
}

#[derive(Debug, Serialize)]
struct Detail {
    checkpoint: String,
    split: String,
    samples_per_prompt: usize,
    sampler: String,
    und_prompt_match_acc: f64,
    und_match_yes_acc: f64,
    und_match_no_acc: f64,
    und_region_acc: f64,
    gen_single_object: f64,
    gen_single_object_seen: f64,
    gen_single_object_unseen: f64,
    by_category: BTreeMap<String, GapRow>,
    gen_unseen_prompts: f64,
    gen_seen_prompts: f64,
    wall_s: f64,
}

/// What an evaluation measured.
#[derive(Debug, Clone)]
pub struct EvalOutcome {
    pub und: UndReport,
    pub gen_single: f64,
}

fn bar(n: usize, what: &str) -> ProgressBar {
    let b = ProgressBar::new(n as u64);
    b.set_style(
        ProgressStyle::with_template(&format!(
            "{what}: {{elapsed_precise}} [{{bar:30}}] {{pos}}/{{len}} images"
        ))
        .expect("a valid template")
        .progress_chars("=> "),
    );
    b
}

/// Generates `samples` images for each prompt (seeds 0..samples) and returns them in order.
fn generate_all(
    model: &Umm,
    cfg: &UmmConfig,
    prompts: &[&str],
    samples: usize,
    sample: SampleConfig,
    device: &Device,
    what: &str,
) -> Result<Vec<Vec<Image>>> {
    let tok = WordTokenizer::compworld();
    let mut out: Vec<Vec<Image>> = vec![Vec::new(); prompts.len()];
    let pb = bar(prompts.len() * samples, what);
    for s in 0..samples {
        for (ci, chunk) in prompts.chunks(GEN_BATCH).enumerate() {
            // Seeds differ per sample round and per chunk, so no two images share noise.
            let sc = SampleConfig {
                seed: sample.seed + (s * 1000 + ci) as u64,
                ..sample
            };
            let t = generate(model, cfg, &tok, chunk, sc, device)?;
            for (i, img) in umm_model::sampler::to_images(t)?.into_iter().enumerate() {
                out[ci * GEN_BATCH + i].push(img);
            }
            pb.inc(chunk.len() as u64);
        }
    }
    pb.finish_and_clear();
    Ok(out)
}

fn mean(xs: &[f64]) -> f64 {
    if xs.is_empty() {
        0.0
    } else {
        xs.iter().sum::<f64>() / xs.len() as f64
    }
}

/// The 40 colour-shape prompts and whether each pair is held out of generation training.
pub fn single_object_prompts() -> Vec<(Prompt, bool)> {
    let mut v = Vec::new();
    for &c in Colour::ALL {
        for &s in Shape::ALL {
            let article = if c.word().starts_with(['a', 'e', 'i', 'o', 'u']) {
                "an"
            } else {
                "a"
            };
            let p = Prompt::parse(&format!("{article} {} {}", c.word(), s.word()))
                .expect("a colour-shape prompt parses");
            v.push((p, HELD_OUT_COLOUR_SHAPE.contains(&(c, s))));
        }
    }
    v
}

/// Runs the evaluation, writes `base-gap.json`, `base-eval.json`, `base-eval.md` and sample
/// sheets into `out_dir`.
pub fn run(a: &EvalArgs) -> Result<EvalOutcome> {
    let t0 = Instant::now();
    let device = Device::flex();
    let (model, meta) = checkpoint::load(&a.checkpoint, &device)?;
    let cfg = meta.config.clone();
    if !a.split.exists() {
        bail!("split file {} not found", a.split.display());
    }
    let entries = load_split(&a.split)?;
    let prompts: Vec<Prompt> = entries.iter().map(|e| e.prompt.clone()).collect();
    eprintln!("understanding: {} prompts", prompts.len());
    let und = evaluate_understanding(
        &model,
        &cfg,
        &WordTokenizer::compworld(),
        &prompts,
        0,
        &device,
    )?;

    let texts: Vec<&str> = prompts.iter().map(|p| p.text.as_str()).collect();
    // "test split", "dev split": named after the split file, for the progress bar and summary.
    let split_name = format!(
        "{} split",
        a.split
            .file_stem()
            .map_or("prompt".into(), |s| s.to_string_lossy())
    );
    let images = generate_all(
        &model,
        &cfg,
        &texts,
        a.samples,
        a.sample,
        &device,
        &split_name,
    )?;
    let mut per_cat: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let (mut seen, mut unseen) = (Vec::new(), Vec::new());
    for ((p, e), imgs) in prompts.iter().zip(&entries).zip(&images) {
        for img in imgs {
            let s = f64::from(scene_oracle::score(img, p).score);
            per_cat
                .entry(p.category.name().to_string())
                .or_default()
                .push(s);
            if e.unseen { &mut unseen } else { &mut seen }.push(s);
        }
    }
    let gen_by_category: BTreeMap<String, f64> =
        per_cat.iter().map(|(k, v)| (k.clone(), mean(v))).collect();

    let singles = score_singles(&model, &cfg, 4, a.sample, &device)?;
    let pick = |held: bool| -> Vec<f64> {
        singles
            .scores
            .iter()
            .filter(|(h, _)| *h == held)
            .map(|(_, s)| *s)
            .collect()
    };
    let (s_seen, s_unseen) = (pick(false), pick(true));
    let gen_single = singles.mean();

    std::fs::create_dir_all(&a.out_dir)?;
    // Sheets for people to look at: first image of the first 8 prompts of each category, and
    // the single-object prompts.
    let mut sheet = Vec::new();
    for cat in compworld::Category::ALL {
        let row: Vec<Image> = prompts
            .iter()
            .zip(&images)
            .filter(|(p, _)| p.category == *cat)
            .take(8)
            .map(|(_, v)| v[0].clone())
            .collect();
        sheet.extend(row);
    }
    compworld::render::contact_sheet(&sheet, 8, 3).save_png(&a.out_dir.join("base-samples.png"))?;
    singles.save_sheet(&a.out_dir.join("base-single-objects.png"))?;

    let gap: BTreeMap<String, GapRow> = gen_by_category
        .iter()
        .map(|(k, &g)| {
            let u = und.category_acc(k).unwrap_or(0.0);
            (
                k.clone(),
                GapRow {
                    understanding: u,
                    generation: g,
                },
            )
        })
        .collect();
    let detail = Detail {
        checkpoint: a.checkpoint.display().to_string(),
        split: a.split.display().to_string(),
        samples_per_prompt: a.samples,
        sampler: format!("{:?}", a.sample),
        und_prompt_match_acc: und.prompt_match_acc(),
        und_match_yes_acc: und.match_yes.accuracy(),
        und_match_no_acc: und.match_no.accuracy(),
        und_region_acc: und.region.accuracy(),
        gen_single_object: gen_single,
        gen_single_object_seen: mean(&s_seen),
        gen_single_object_unseen: mean(&s_unseen),
        by_category: gap,
        gen_unseen_prompts: mean(&unseen),
        gen_seen_prompts: mean(&seen),
        wall_s: t0.elapsed().as_secs_f64(),
    };
    let gap_only: BTreeMap<&String, &GapRow> = detail.by_category.iter().collect();
    std::fs::write(
        a.out_dir.join("base-gap.json"),
        serde_json::to_string_pretty(&gap_only)? + "\n",
    )?;
    std::fs::write(
        a.out_dir.join("base-eval.json"),
        serde_json::to_string_pretty(&detail)? + "\n",
    )?;
    let mut md = String::from(
        "| category | understanding (prompt match) | generation (oracle) | gap (points) |\n|---|---|---|---|\n",
    );
    let mut wide = 0;
    for (k, r) in &detail.by_category {
        let gap = 100.0 * (r.understanding - r.generation);
        wide += usize::from(gap >= 15.0);
        writeln!(
            md,
            "| {k} | {:.3} | {:.3} | {gap:+.1} |",
            r.understanding, r.generation
        )?;
    }
    writeln!(
        md,
        "\nCategories where understanding leads by >= 15 points: {wide}.\n\
         Understanding: prompt match {:.3} (yes {:.3}, no {:.3}), region {:.3}.\n\
         Generation: single objects {:.3} (seen pairs {:.3}, held-out pairs {:.3}); {split_name} seen prompts {:.3}, unseen {:.3}.",
        detail.und_prompt_match_acc,
        detail.und_match_yes_acc,
        detail.und_match_no_acc,
        detail.und_region_acc,
        detail.gen_single_object,
        detail.gen_single_object_seen,
        detail.gen_single_object_unseen,
        detail.gen_seen_prompts,
        detail.gen_unseen_prompts,
    )?;
    std::fs::write(a.out_dir.join("base-eval.md"), &md)?;
    println!("{md}");
    eprintln!("evaluated in {:.0} s", detail.wall_s);
    Ok(EvalOutcome { und, gen_single })
}

/// The model's images of the 40 single-object prompts and the oracle's scores of them.
struct Singles {
    /// `(held-out pair, score)` of every image, prompt by prompt.
    scores: Vec<(bool, f64)>,
    /// `per_prompt` images of each prompt.
    images: Vec<Vec<Image>>,
}

impl Singles {
    fn mean(&self) -> f64 {
        mean(&self.scores.iter().map(|(_, s)| *s).collect::<Vec<_>>())
    }

    /// The first image of each prompt: colours by row, shapes by column.
    fn save_sheet(&self, path: &Path) -> Result<()> {
        let first: Vec<Image> = self.images.iter().map(|v| v[0].clone()).collect();
        compworld::render::contact_sheet(&first, 5, 3).save_png(path)?;
        Ok(())
    }
}

fn score_singles(
    model: &Umm,
    cfg: &UmmConfig,
    per_prompt: usize,
    sample: SampleConfig,
    device: &Device,
) -> Result<Singles> {
    let prompts = single_object_prompts();
    let texts: Vec<&str> = prompts.iter().map(|(p, _)| p.text.as_str()).collect();
    let images = generate_all(
        model,
        cfg,
        &texts,
        per_prompt,
        sample,
        device,
        "single objects",
    )?;
    let scores = prompts
        .iter()
        .zip(&images)
        .flat_map(|((p, held), v)| {
            v.iter()
                .map(move |i| (*held, f64::from(scene_oracle::score(i, p).score)))
        })
        .collect();
    Ok(Singles { scores, images })
}

/// Oracle score of the model's images of the 40 single-object prompts (`per_prompt` images
/// each), and a sheet of the first image of each at `sheet`: the quick check of generation
/// while tuning a sampler or a pretraining recipe (`cargo xtask singles`).
pub fn singles(
    checkpoint: &Path,
    per_prompt: usize,
    sample: SampleConfig,
    sheet: &Path,
) -> Result<f64> {
    let device = Device::flex();
    let (model, meta) = checkpoint::load(checkpoint, &device)?;
    let s = score_singles(&model, &meta.config, per_prompt, sample, &device)?;
    s.save_sheet(sheet)?;
    Ok(s.mean())
}

/// Hex SHA-256 of a file.
pub fn sha256_file(path: &Path) -> Result<String> {
    use sha2::Digest;
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(format!("{:x}", sha2::Sha256::digest(&bytes)))
}

/// The manifest of a shipped checkpoint (`datasets/checkpoints/<name>.toml`).
#[derive(Debug, Serialize)]
struct Manifest {
    /// SHA-256 of the .safetensors file.
    sha256: String,
    /// The command that trained it.
    command: String,
    /// Wall time of pretraining on the machine below, in seconds (all stages).
    pretrain_wall_s: f64,
    /// Where it was trained.
    machine: String,
    /// Optimiser steps (all stages).
    steps: u64,
    /// Balanced prompt-match accuracy on the test split (true renders vs one-constraint
    /// violations).
    und_prompt_match_acc: f64,
    /// Region identification accuracy on the test split (exact answer).
    und_region_acc: f64,
    /// Oracle score of generated single-object prompts (40 colour-shape prompts, 4 images).
    gen_single_object: f64,
    /// The sampler the generation numbers were measured with (the project's default then).
    gen_sampler: String,
    /// How these numbers were measured.
    eval_command: String,
    /// With more than one stage (`train.init`), each stage's run, steps and wall time, first
    /// stage first; `command` then lists their commands joined by `&&`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    stages: Vec<Stage>,
}

/// Where `base-eval` writes when `--out-dir` is not given: `results` (the committed files) only
/// for the shipped checkpoint on the test split with the default sampler and sample count,
/// `out/base-eval` otherwise.
pub fn default_out_dir(
    checkpoint: &Path,
    split: &Path,
    samples: usize,
    sample: &SampleConfig,
) -> PathBuf {
    let shipped = checkpoint == Path::new(trainer::srum::DEFAULT_BASE)
        && split == Path::new(TEST_SPLIT)
        && samples == DEFAULT_SAMPLES
        && {
            let d = SampleConfig::default();
            let key = |s: &SampleConfig| (s.steps, s.solver, s.cfg_scale, s.cfg_min_t, s.seed);
            key(sample) == key(&d)
        };
    PathBuf::from(if shipped { "results" } else { "out/base-eval" })
}

/// One pretraining stage behind a shipped checkpoint: a run folder, its steps and wall time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stage {
    /// The run folder.
    pub run: String,
    /// Optimiser steps of this stage.
    pub steps: u64,
    /// Wall time of this stage (the last `wall_s` of its metrics.csv), seconds.
    pub wall_s: f64,
}

/// The stages that produced `run_dir`'s weights, first stage first: the run itself and, while a
/// run's `train.init` names the final weights or a checkpoint of another run folder, that run.
/// An init that is not inside a run folder (no `metrics.csv` beside it) is an error, since its
/// cost would be missing from the manifest.
pub fn pretrain_stages(run_dir: &Path) -> Result<Vec<Stage>> {
    let mut stages = Vec::new();
    let mut dir = run_dir.to_path_buf();
    loop {
        let last = trainer::pretrain::read_metrics(&dir.join("metrics.csv"), u64::MAX)
            .pop()
            .with_context(|| format!("{}/metrics.csv has no rows", dir.display()))?;
        let (steps, wall_s) = (last.step, last.wall_s);
        stages.push(Stage {
            run: dir.display().to_string(),
            steps,
            wall_s,
        });
        if stages.len() > 16 {
            bail!(
                "more than 16 chained stages from {}: a cycle?",
                run_dir.display()
            );
        }
        let cfg = trainer::pretrain::PretrainConfig::from_file(&dir.join("config.toml"))?;
        let Some(init) = cfg.train.init else { break };
        // runs/x/model.safetensors or runs/x/checkpoints/step-N.safetensors
        let parent = init.parent().unwrap_or(Path::new("."));
        let prev = if parent.file_name().is_some_and(|n| n == "checkpoints") {
            parent.parent().unwrap_or(Path::new(".")).to_path_buf()
        } else {
            parent.to_path_buf()
        };
        if !prev.join("metrics.csv").exists() {
            bail!(
                "{}: train.init = {} is not in a run folder (no metrics.csv beside it), so the \
                 first stage's wall time is unknown; ship from a chain of run folders",
                dir.display(),
                init.display()
            );
        }
        dir = prev;
    }
    stages.reverse();
    Ok(stages)
}

/// `cargo xtask ship-base`.
pub fn ship(run_dir: &Path, name: &str, command: &str, samples: usize, out: &Path) -> Result<()> {
    let weights = run_dir.join("model.safetensors");
    if !weights.exists() {
        bail!(
            "{} not found: the run has not finished (resume it with `srum pretrain --resume`)",
            weights.display()
        );
    }
    let stages = pretrain_stages(run_dir)?;
    let wall: f64 = stages.iter().map(|s| s.wall_s).sum();
    let dir = PathBuf::from("datasets/checkpoints");
    std::fs::create_dir_all(&dir)?;
    let dest = dir.join(format!("{name}.safetensors"));
    std::fs::copy(&weights, &dest)?;
    std::fs::copy(
        checkpoint::sidecar_path(&weights),
        checkpoint::sidecar_path(&dest),
    )?;
    let meta = checkpoint::load_meta(&dest)?;
    let sample = SampleConfig::default();
    let args = EvalArgs {
        checkpoint: dest.clone(),
        split: PathBuf::from(TEST_SPLIT),
        samples,
        sample,
        out_dir: out.to_path_buf(),
    };
    let o = run(&args)?;
    let m = Manifest {
        sha256: sha256_file(&dest)?,
        command: command.to_string(),
        pretrain_wall_s: wall,
        machine: "2-core x86-64 CPU, no GPU (the project's reference machine)".into(),
        steps: stages.iter().map(|s| s.steps).sum::<u64>().max(meta.step),
        und_prompt_match_acc: o.und.prompt_match_acc(),
        und_region_acc: o.und.region.accuracy(),
        gen_single_object: o.gen_single,
        gen_sampler: format!("{}, noise seed {}", sample.describe(), sample.seed),
        eval_command: format!(
            "cargo xtask base-eval --checkpoint {} --samples {samples} --cfg-scale {}",
            dest.display(),
            sample.cfg_scale
        ),
        stages: if stages.len() > 1 { stages } else { Vec::new() },
    };
    let text = format!(
        "# The shipped base model: {name}.safetensors (+ {name}.meta.toml). Written by\n\
         # `cargo xtask ship-base`; metrics measured on datasets/splits/test.tsv.\n{}",
        toml::to_string(&m)?
    );
    std::fs::write(dir.join(format!("{name}.toml")), text)?;
    eprintln!(
        "shipped {} ({} bytes)",
        dest.display(),
        std::fs::metadata(&dest)?.len()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use trainer::pretrain::PretrainConfig;

    fn fake_run(dir: &Path, init: Option<PathBuf>, steps: u64, wall: f64) {
        std::fs::create_dir_all(dir.join("checkpoints")).unwrap();
        let mut c = PretrainConfig::for_preset("micro").unwrap();
        c.train.init = init;
        std::fs::write(dir.join("config.toml"), c.to_toml()).unwrap();
        let csv = format!(
            "step,lr,loss_und,loss_gen,examples_per_s,wall_s\n10,1e-3,1.0,1.0,9.0,1.5\n{steps},1e-4,0.5,0.5,9.0,{wall}\n"
        );
        std::fs::write(dir.join("metrics.csv"), csv).unwrap();
    }

    #[test]
    fn a_shipped_second_stage_counts_the_first_stages_steps_and_time() {
        let root = std::env::temp_dir().join(format!("xtask-stages-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let (a, b, c) = (root.join("a"), root.join("b"), root.join("c"));
        fake_run(&a, None, 22_000, 3200.5);
        fake_run(&b, Some(a.join("model.safetensors")), 2_500, 330.0);
        fake_run(
            &c,
            Some(b.join("checkpoints/step-000500.safetensors")),
            100,
            20.0,
        );
        let s = pretrain_stages(&c).unwrap();
        assert_eq!(
            s.iter().map(|s| (s.steps, s.wall_s)).collect::<Vec<_>>(),
            vec![(22_000, 3200.5), (2_500, 330.0), (100, 20.0)]
        );
        assert_eq!(s[0].run, a.display().to_string());
        assert_eq!(pretrain_stages(&a).unwrap().len(), 1);
        // A stage begun from a loose checkpoint has no known cost: refused.
        let d = root.join("d");
        fake_run(&d, Some(root.join("elsewhere/model.safetensors")), 10, 1.0);
        let err = pretrain_stages(&d).unwrap_err().to_string();
        assert!(err.contains("not in a run folder"), "{err}");
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_manifest_with_stages_is_valid_toml_with_the_stages_last() {
        let st = |run: &str, steps, wall_s| Stage {
            run: run.into(),
            steps,
            wall_s,
        };
        let m = Manifest {
            sha256: "00".into(),
            command: "a && b".into(),
            pretrain_wall_s: 3530.5,
            machine: "m".into(),
            steps: 24_500,
            und_prompt_match_acc: 0.8,
            und_region_acc: 0.99,
            gen_single_object: 0.88,
            gen_sampler: "s".into(),
            eval_command: "e".into(),
            stages: vec![st("runs/a", 22_000, 3200.5), st("runs/b", 2_500, 330.0)],
        };
        let text = toml::to_string(&m).unwrap();
        let v: toml::Value = toml::from_str(&text).unwrap();
        assert_eq!(v["pretrain_wall_s"].as_float(), Some(3530.5));
        let stages = v["stages"].as_array().unwrap();
        assert_eq!(stages[1]["steps"].as_integer(), Some(2_500));
        assert_eq!(stages[0]["run"].as_str(), Some("runs/a"));
    }

    #[test]
    fn only_the_shipped_evaluation_writes_into_results() {
        let (ck, test) = (
            Path::new("datasets/checkpoints/base-tiny.safetensors"),
            Path::new("datasets/splits/test.tsv"),
        );
        let d = SampleConfig::default();
        let out = |c: &Path, s: &Path, n: usize, sc: &SampleConfig| default_out_dir(c, s, n, sc);
        assert_eq!(out(ck, test, DEFAULT_SAMPLES, &d), PathBuf::from("results"));
        let elsewhere = PathBuf::from("out/base-eval");
        assert_eq!(
            out(
                ck,
                Path::new("datasets/splits/dev.tsv"),
                DEFAULT_SAMPLES,
                &d
            ),
            elsewhere
        );
        assert_eq!(
            out(
                Path::new("runs/x/model.safetensors"),
                test,
                DEFAULT_SAMPLES,
                &d
            ),
            elsewhere
        );
        assert_eq!(out(ck, test, DEFAULT_SAMPLES + 1, &d), elsewhere);
        let g2 = SampleConfig {
            cfg_scale: 2.0,
            ..d
        };
        assert_eq!(out(ck, test, DEFAULT_SAMPLES, &g2), elsewhere);
    }
}
