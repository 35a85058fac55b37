//! `cargo xtask bench compbench|reasonbench|understanding`: the benchmark harness on a
//! checkpoint (or a folder of images), with progress bars, written to an output folder.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use bench_compbench::harness::import_official;
use bench_compbench::official::{export_category, read_prompt_file};
use bench_compbench::{BenchConfig, FolderImages, Generator, Plan, Report, UmmGenerator};
use burn::prelude::*;
use clap::{Args, Subcommand};
use compworld::Category;
use compworld::splits::load_split;
use indicatif::{ProgressBar, ProgressStyle};
use umm_model::sampler::{SampleConfig, Solver};

/// Images sampled per forward batch.
const GEN_BATCH: usize = 64;

#[derive(Subcommand, Debug)]
pub enum BenchCmd {
    /// CompBench-style: the eight T2I-CompBench categories on compworld's val prompts,
    /// oracle-scored; summary.json, per_image.csv, summary.md, one grid per category.
    Compbench(BenchArgs),
    /// ReasonBench-style: knowledge, arithmetic, geometry and composite prompts, question
    /// lists answered by the oracle (1 / 0.5 / 0).
    Reasonbench(BenchArgs),
    /// Understanding kept? Prompt-match (true render vs one-constraint violation, balanced)
    /// and region-identification accuracy of a checkpoint on the test split.
    Understanding {
        /// Model weights (.safetensors with its .meta.toml sidecar).
        #[arg(long, default_value = "datasets/checkpoints/base-tiny.safetensors")]
        checkpoint: PathBuf,
        /// Prompt split (the test split; never the one you tune on).
        #[arg(long, default_value = "datasets/splits/test.tsv")]
        split: PathBuf,
        /// Where summary.json and summary.md go.
        #[arg(long, default_value = "out/bench/understanding")]
        out: PathBuf,
    },
    /// Paired comparison of benchmark runs of the same plan (same split, images per prompt and
    /// seeds): each run against the first, prompt by prompt, with the standard error of the
    /// difference. Takes run folders (holding per_image.csv) or per_image.csv files.
    Compare {
        /// The run everything is compared with.
        #[arg(long)]
        base: PathBuf,
        /// The runs to compare with it.
        #[arg(required = true)]
        runs: Vec<PathBuf>,
        /// Also print every category.
        #[arg(long)]
        categories: bool,
    },
    /// Burn against PyTorch on this machine: training step, sampling, MFU, SRUM round cost;
    /// writes results/speed.json and results/speed.md (see xtask/src/speed.rs).
    Speed(crate::speed::SpeedArgs),
}

/// The sampler flags every generating command shares.
#[derive(Args, Debug, Clone, Copy)]
pub struct SamplerArgs {
    /// Sampler integration steps.
    #[arg(long, default_value_t = 20)]
    pub steps: usize,
    /// Classifier-free guidance scale.
    #[arg(long, default_value_t = umm_model::sampler::DEFAULT_CFG_SCALE)]
    pub cfg_scale: f32,
    /// Guide only at flow times above this (0 to 1; 0 guides every step, 1 none).
    #[arg(long, default_value_t = 0.0)]
    pub cfg_min_t: f32,
    /// Use Heun's method instead of Euler's.
    #[arg(long)]
    pub heun: bool,
}

impl SamplerArgs {
    /// The sampler configuration the flags describe.
    pub fn config(&self) -> SampleConfig {
        SampleConfig {
            steps: self.steps,
            cfg_scale: self.cfg_scale,
            cfg_min_t: self.cfg_min_t,
            solver: if self.heun {
                Solver::Heun
            } else {
                Solver::Euler
            },
            ..Default::default()
        }
    }
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Model weights to generate with (.safetensors with its .meta.toml sidecar).
    #[arg(long, default_value = "datasets/checkpoints/base-tiny.safetensors")]
    checkpoint: PathBuf,
    /// Score the images already in this folder (official layout: <category>/samples/ for
    /// compbench, as `--export official` writes it) instead of generating.
    #[arg(long, conflicts_with = "official_results")]
    images: Option<PathBuf>,
    /// Read the official scripts' vqa_result.json files from this folder (one sub-folder per
    /// category, as `--export official` wrote it) into the same summary. Compbench only.
    #[arg(long)]
    official_results: Option<PathBuf>,
    /// Prompt split whose prompts are benchmarked.
    #[arg(long, default_value = DEFAULT_BENCH_SPLIT)]
    split: PathBuf,
    /// Images per prompt (official protocol: 10 for CompBench, 1 for ReasonBench). Default:
    /// 4 for compbench (a tiny-preset run takes minutes on a CPU), 1 for reasonbench.
    #[arg(long)]
    samples: Option<usize>,
    /// Seed of the first image of every prompt; image k uses seed + k.
    #[arg(long, default_value_t = bench_compbench::FIRST_SEED)]
    seed: u64,
    #[command(flatten)]
    sampler: SamplerArgs,
    /// Also write the images in an official layout: `--export official <DIR>`
    /// (T2I-CompBench's <category>/samples/{prompt}_{NNNNNN}.png, or T2I-ReasonBench's
    /// <dimension>/NNNN.png).
    #[arg(long, num_args = 2, value_names = ["FORMAT", "DIR"])]
    export: Option<Vec<String>>,
    /// Where summary.json, per_image.csv, summary.md and the grids go.
    #[arg(long)]
    out: Option<PathBuf>,
    /// The command line to record in summary.json (default: rebuilt from the flags).
    #[arg(long)]
    command: Option<String>,
    /// Skip the labelled per-category PNG grids.
    #[arg(long)]
    no_grids: bool,
}

/// Which generation benchmark [`bench_checkpoint`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    Compbench,
    Reasonbench,
}

/// Benchmarks `checkpoint` on the prompts of `split` without grids (what `cargo xtask ablate`
/// runs for every variant); returns the summary.json it wrote under `out`.
#[allow(clippy::too_many_arguments)]
pub fn bench_checkpoint(
    which: Which,
    checkpoint: &Path,
    split: &Path,
    samples: usize,
    seed: u64,
    sampler: SamplerArgs,
    out: &Path,
    command: String,
) -> Result<serde_json::Value> {
    let a = BenchArgs {
        checkpoint: checkpoint.to_path_buf(),
        images: None,
        official_results: None,
        split: split.to_path_buf(),
        samples: Some(samples),
        seed,
        sampler,
        export: None,
        out: Some(out.to_path_buf()),
        command: Some(command),
        no_grids: true,
    };
    match which {
        Which::Compbench => compbench(&a)?,
        Which::Reasonbench => reasonbench(&a)?,
    }
    read_summary(out)
}

/// Reads `<dir>/summary.json`.
pub fn read_summary(dir: &Path) -> Result<serde_json::Value> {
    let p = dir.join("summary.json");
    let text = std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", p.display()))
}

fn progress(n: usize, what: &str) -> ProgressBar {
    ProgressBar::new(n as u64).with_style(
        ProgressStyle::with_template(&format!(
            "{what}: {{elapsed_precise}} [{{bar:30}}] {{pos}}/{{len}} images, eta {{eta}}"
        ))
        .expect("a valid template")
        .progress_chars("=> "),
    )
}

fn load_plan(split: &Path, cats: &[Category]) -> Result<Plan> {
    ensure!(split.exists(), "prompt split {} not found", split.display());
    Ok(Plan::from_split(&load_split(split)?, cats)?)
}

fn generator(a: &BenchArgs) -> Result<Box<dyn Generator>> {
    Ok(match &a.images {
        Some(dir) => {
            ensure!(dir.is_dir(), "image folder {} not found", dir.display());
            Box::new(FolderImages::new(dir, compworld::DEFAULT_RESOLUTION))
        }
        None => {
            ensure!(
                a.checkpoint.exists(),
                "checkpoint {} not found",
                a.checkpoint.display()
            );
            let sample = a.sampler.config();
            Box::new(UmmGenerator::load(
                &a.checkpoint,
                sample,
                GEN_BATCH,
                &Device::flex(),
            )?)
        }
    })
}

fn export_dir(a: &BenchArgs) -> Result<Option<PathBuf>> {
    match a.export.as_deref() {
        None => Ok(None),
        Some([format, dir]) if format == "official" => Ok(Some(PathBuf::from(dir))),
        Some([format, _]) => bail!("unknown export format '{format}' (expected: official)"),
        Some(other) => bail!("--export takes FORMAT DIR, got {other:?}"),
    }
}

/// The prompt split the benchmarks read unless told otherwise.
const DEFAULT_BENCH_SPLIT: &str = "datasets/splits/val.tsv";

fn command_line(which: &str, a: &BenchArgs, samples: usize) -> String {
    if let Some(c) = &a.command {
        return c.clone();
    }
    let mut c = format!("cargo xtask bench {which}");
    match &a.images {
        Some(d) => c += &format!(" --images {}", d.display()),
        None => c += &format!(" --checkpoint {}", a.checkpoint.display()),
    }
    if a.split != Path::new(DEFAULT_BENCH_SPLIT) {
        c += &format!(" --split {}", a.split.display());
    }
    c += &format!(" --samples {samples} --seed {}", a.seed);
    if a.images.is_none() {
        c += &format!(
            " --steps {} --cfg-scale {}",
            a.sampler.steps, a.sampler.cfg_scale
        );
        if a.sampler.cfg_min_t > 0.0 {
            c += &format!(" --cfg-min-t {}", a.sampler.cfg_min_t);
        }
        if a.sampler.heun {
            c += " --heun";
        }
    }
    if let Some(o) = &a.out {
        c += &format!(" --out {}", o.display());
    }
    c
}

/// Prompts per category grid.
const GRID_PROMPTS: usize = 10;

fn finish(
    report: &mut Report,
    a: &BenchArgs,
    which: &str,
    samples: usize,
    out: &Path,
    images: Option<&[compworld::Image]>,
) -> Result<()> {
    report.command = Some(command_line(which, a, samples));
    // The library's grids are plain contact sheets; here each row is labelled with its prompt
    // and each image with its score.
    report.write(out, None)?;
    if let Some(images) = images.filter(|_| !a.no_grids) {
        for cat in &report.categories {
            let mut rows: Vec<crate::plot::GridRow> = Vec::new();
            for (r, img) in report.images.iter().zip(images) {
                if &r.category != cat || r.prompt_index >= GRID_PROMPTS {
                    continue;
                }
                if r.sample == 0 {
                    rows.push(crate::plot::GridRow {
                        caption: format!("{}. {}", r.prompt_index + 1, r.prompt),
                        images: Vec::new(),
                    });
                }
                if let Some(row) = rows.last_mut() {
                    row.images.push((img.clone(), r.score));
                }
            }
            let title = format!(
                "{which} / {cat}: first {} prompts, score under each image",
                rows.len()
            );
            crate::plot::labelled_grid(&rows, &title, 3, &out.join(format!("grid_{cat}.png")))?;
        }
    }
    if !a.no_grids {
        println!("{}", report.markdown());
    }
    println!("wrote {}", out.display());
    Ok(())
}

pub fn run(cmd: BenchCmd) -> Result<()> {
    match cmd {
        BenchCmd::Compbench(a) => compbench(&a),
        BenchCmd::Reasonbench(a) => reasonbench(&a),
        BenchCmd::Understanding {
            checkpoint,
            split,
            out,
        } => understanding(&checkpoint, &split, &out),
        BenchCmd::Speed(a) => crate::speed::run(&a),
        BenchCmd::Compare {
            base,
            runs,
            categories,
        } => compare(&base, &runs, categories),
    }
}

fn compbench(a: &BenchArgs) -> Result<()> {
    let samples = a.samples.unwrap_or(bench_compbench::DEFAULT_SAMPLES);
    ensure!(samples >= 1, "--samples must be at least 1");
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| "out/bench/compbench".into());
    if let Some(dir) = &a.official_results {
        let cats: Vec<&str> = Category::COMPBENCH.iter().map(|c| c.name()).collect();
        let mut report = import_official(dir, &cats, samples)?;
        return finish(&mut report, a, "compbench", samples, &out, None);
    }
    let plan = load_plan(&a.split, Category::COMPBENCH)?;
    let cfg = BenchConfig {
        samples,
        first_seed: a.seed,
    };
    let mut g = generator(a)?;
    let bar = progress(plan.image_count(samples), "compbench");
    let (mut report, images) =
        bench_compbench::run(g.as_mut(), &plan, cfg, &mut |n| bar.set_position(n as u64))?;
    bar.finish_and_clear();
    if let Some(dir) = export_dir(a)? {
        let mut k = 0;
        for (cat, prompts) in &plan.categories {
            let n = prompts.len() * samples;
            export_category(&dir, cat, &plan.texts(cat), samples, &images[k..k + n])?;
            k += n;
        }
        println!("official layout written under {}", dir.display());
    }
    finish(&mut report, a, "compbench", samples, &out, Some(&images))
}

fn reasonbench(a: &BenchArgs) -> Result<()> {
    ensure!(
        a.official_results.is_none(),
        "--official-results is for compbench; T2I-ReasonBench's judge writes its own CSV"
    );
    let samples = a.samples.unwrap_or(1);
    ensure!(samples >= 1, "--samples must be at least 1");
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| "out/bench/reasonbench".into());
    let plan = load_plan(&a.split, bench_reasonbench::DIMENSIONS)?;
    let cfg = BenchConfig {
        samples,
        first_seed: a.seed,
    };
    if a.images.is_some() {
        bail!(
            "--images for reasonbench: score a folder by exporting it from the same plan; only compbench reads folders so far"
        );
    }
    let mut g = generator(a)?;
    let bar = progress(plan.image_count(samples), "reasonbench");
    let (mut report, images) =
        bench_reasonbench::run(g.as_mut(), &plan, cfg, &mut |n| bar.set_position(n as u64))?;
    bar.finish_and_clear();
    if let Some(dir) = export_dir(a)? {
        // One image per prompt (the first sample), numbered within each official folder.
        for (folder, prompts) in bench_reasonbench::official::numbered(&plan.categories) {
            let imgs: Vec<compworld::Image> = report
                .images
                .iter()
                .zip(&images)
                .filter(|(r, _)| r.sample == 0 && r.file.starts_with(&format!("{folder}/")))
                .map(|(_, i)| i.clone())
                .collect();
            bench_reasonbench::official::export_folder(&dir, folder, &prompts, &imgs)?;
        }
        println!("official layout written under {}", dir.display());
    }
    finish(&mut report, a, "reasonbench", samples, &out, Some(&images))
}

/// The understanding benchmark of `checkpoint` (prompt match and region identification);
/// writes summary.json and summary.md under `out`.
pub fn understanding(checkpoint: &Path, split: &Path, out: &Path) -> Result<()> {
    let t0 = std::time::Instant::now();
    ensure!(
        checkpoint.exists(),
        "checkpoint {} not found",
        checkpoint.display()
    );
    ensure!(split.exists(), "prompt split {} not found", split.display());
    let device = Device::flex();
    let (model, meta) = umm_model::checkpoint::load(checkpoint, &device)?;
    let prompts: Vec<compworld::Prompt> =
        load_split(split)?.into_iter().map(|e| e.prompt).collect();
    eprintln!(
        "understanding: {} prompts of {}",
        prompts.len(),
        split.display()
    );
    let und = trainer::eval::evaluate_understanding(
        &model,
        &meta.config,
        &umm_model::WordTokenizer::compworld(),
        &prompts,
        0,
        &device,
    )?;
    let by_category: serde_json::Map<String, serde_json::Value> = und
        .by_category
        .iter()
        .map(|(k, (y, n))| {
            (
                k.clone(),
                serde_json::json!({
                    "prompt_match": 0.5 * (y.accuracy() + n.accuracy()),
                    "yes": y.accuracy(),
                    "no": n.accuracy(),
                    "questions": y.total + n.total,
                }),
            )
        })
        .collect();
    let wall = t0.elapsed().as_secs_f64();
    let summary = serde_json::json!({
        "benchmark": "understanding",
        "checkpoint": checkpoint.display().to_string(),
        "split": split.display().to_string(),
        "prompt_match": und.prompt_match_acc(),
        "prompt_match_yes": und.match_yes.accuracy(),
        "prompt_match_no": und.match_no.accuracy(),
        "region": und.region.accuracy(),
        "region_questions": und.region.total,
        "by_category": by_category,
        "wall_s": (wall * 10.0).round() / 10.0,
        "command": format!("cargo xtask bench understanding --checkpoint {} --split {} --out {}", checkpoint.display(), split.display(), out.display()),
    });
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    std::fs::write(
        out.join("summary.json"),
        serde_json::to_string_pretty(&summary)? + "\n",
    )?;
    let mut md = format!(
        "# understanding summary\n\n- checkpoint: {}\n- split: {}\n- prompt match (balanced): {:.3} (yes {:.3}, no {:.3})\n- region identification: {:.3} ({} crops)\n- wall time: {wall:.0} s\n\n| category | prompt match | yes | no |\n|---|---:|---:|---:|\n",
        checkpoint.display(),
        split.display(),
        und.prompt_match_acc(),
        und.match_yes.accuracy(),
        und.match_no.accuracy(),
        und.region.accuracy(),
        und.region.total
    );
    for (k, (y, n)) in &und.by_category {
        md += &format!(
            "| {k} | {:.3} | {:.3} | {:.3} |\n",
            0.5 * (y.accuracy() + n.accuracy()),
            y.accuracy(),
            n.accuracy()
        );
    }
    std::fs::write(out.join("summary.md"), &md)?;
    println!("{md}");
    println!("wrote {}", out.display());
    Ok(())
}

/// Reads the official prompt files of a T2I-CompBench checkout (`<dir>/<category>_val.txt`)
/// and reports what it found: how many prompts, duplicates and blank lines per category.
pub fn check_prompt_files(dir: &Path) -> Result<()> {
    for c in Category::COMPBENCH {
        let path = dir.join(format!("{}_val.txt", c.name()));
        let f = read_prompt_file(&path)?;
        println!(
            "{:<12} {:>4} prompts, {} duplicated, {} blank lines skipped ({})",
            c.name(),
            f.prompts.len(),
            f.duplicates.len(),
            f.blank_lines,
            path.display()
        );
    }
    Ok(())
}

/// `bench compare`: a markdown table of each run against the base, paired by prompt.
fn compare(base: &Path, runs: &[PathBuf], categories: bool) -> Result<()> {
    use bench_compbench::compare::{paired, read_per_image};
    let csv = |p: &Path| {
        if p.is_dir() {
            p.join("per_image.csv")
        } else {
            p.to_path_buf()
        }
    };
    let base_rows = read_per_image(&csv(base))?;
    println!("base: {}\n", base.display());
    println!("| run | overall | base | difference (paired) | standard error |");
    println!("|---|---:|---:|---:|---:|");
    let mut per_cat = Vec::new();
    for r in runs {
        let p = paired(&base_rows, &read_per_image(&csv(r))?)
            .with_context(|| format!("comparing {} with {}", r.display(), base.display()))?;
        println!(
            "| {} | {:.2} | {:.2} | {:+.2} | {:.2} |",
            r.display(),
            p.other,
            p.base,
            p.diff(),
            p.se
        );
        per_cat.push((r, p));
    }
    if categories {
        for (r, p) in per_cat {
            println!("\n{}\n", r.display());
            println!("| category | prompts | run | base | difference | standard error |");
            println!("|---|---:|---:|---:|---:|---:|");
            for c in &p.categories {
                println!(
                    "| {} | {} | {:.1} | {:.1} | {:+.1} | {:.1} |",
                    c.category,
                    c.prompts,
                    c.other,
                    c.base,
                    c.other - c.base,
                    c.se
                );
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_recorded_command_names_a_split_and_a_guidance_interval_only_when_set() {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            a: BenchArgs,
        }
        let parse = |args: &[&str]| {
            let v = std::iter::once("compbench").chain(args.iter().copied());
            command_line("compbench", &<Cli as clap::Parser>::parse_from(v).a, 2)
        };
        let plain = parse(&["--checkpoint", "m.safetensors"]);
        assert!(!plain.contains("--split"), "{plain}");
        let dev = parse(&[
            "--checkpoint",
            "m.safetensors",
            "--split",
            "datasets/splits/dev.tsv",
        ]);
        assert!(
            dev.starts_with(
                "cargo xtask bench compbench --checkpoint m.safetensors --split datasets/splits/dev.tsv --samples 2"
            ),
            "{dev}"
        );
        // The guidance interval is named when set, and only then.
        assert!(!plain.contains("--cfg-min-t"), "{plain}");
        let interval = parse(&["--checkpoint", "m.safetensors", "--cfg-min-t", "0.5"]);
        assert!(
            interval.contains("--cfg-scale 8 --cfg-min-t 0.5"),
            "{interval}"
        );
    }
}
