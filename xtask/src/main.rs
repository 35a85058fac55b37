//! `cargo xtask <command>`: project automation. Logic lives in the library crates; each command
//! here parses flags, calls a library, and writes results.

mod ablate;
mod ablation_plot;
mod base_eval;
mod bench;
mod calibration;
mod denoise;
mod firewall;
mod plot;
mod sample_grid;
mod speed;
mod tch;

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "xtask", about = "SRUM-rs project automation")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run a grid of post-training variants (SRUM, SFT, ablations) from the base model, each
    /// trained and benchmarked per seed; finished rows are skipped. Writes
    /// results/ablation/<grid>/ (summary.csv, summary.md, one folder per variant and seed).
    Ablate {
        /// Grid name (configs/ablation/<name>.toml) or a path to a grid TOML.
        #[arg(long, default_value = "default")]
        grid: String,
        /// Seeds of variants that do not set their own.
        #[arg(long, default_value_t = 3)]
        seeds: u64,
        /// Run only this variant.
        #[arg(long)]
        only: Option<String>,
        /// `quick`: the quick grid (fewer prompts and steps, one seed; what the README's main
        /// job runs). Overrides --grid and --seeds.
        #[arg(long, value_parser = ["quick"])]
        preset: Option<String>,
    },
    /// The same val prompts (first of each category) from base, SFT and SRUM side by side, each
    /// beside its reward map under the frozen base judge. Needs the grid's run folders
    /// (runs/ablation/<grid>/, not committed); writes results/ablation/<grid>/samples.png.
    SampleGrid {
        /// Grid whose runs to draw (runs/ablation/<grid>/sft-s<seed>, srum-s<seed>).
        #[arg(long, default_value = "core")]
        grid: String,
        /// Seed of the runs.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Prompt split (val: never trained on).
        #[arg(long, default_value = "datasets/splits/val.tsv")]
        split: PathBuf,
    },
    /// Redraw every ablation plot from the committed CSVs (results/ablation/<grid>/summary.csv
    /// and each variant's metrics.csv) and the reward calibrations' reliability plots from
    /// their JSON reports, without rerunning anything.
    Plot,
    /// Check that only bench-* crates and xtask depend on scene-oracle (the benchmark judge).
    Firewall,
    /// Check the benchmark oracle on true renders, one-constraint violations and blurred,
    /// noisy renders of random prompts; writes results/oracle-check.json.
    OracleCheck {
        /// Number of random prompts (categories in turn).
        #[arg(long, default_value_t = 2000)]
        prompts: usize,
        /// Random seed.
        #[arg(long, default_value_t = 2026)]
        seed: u64,
        /// Resolution in pixels (32 or 64).
        #[arg(long, default_value_t = 32)]
        resolution: usize,
        /// Output JSON path.
        #[arg(long, default_value = "results/oracle-check.json")]
        out: PathBuf,
    },
    /// Measure a checkpoint's understanding-generation gap on a prompt split: writes
    /// base-gap.json, base-eval.json, base-eval.md and sample sheets into --out-dir.
    BaseEval {
        /// Model weights (.safetensors with its .meta.toml sidecar).
        #[arg(long, default_value = "datasets/checkpoints/base-tiny.safetensors")]
        checkpoint: PathBuf,
        /// Prompt split to evaluate on (never the one you tune on).
        #[arg(long, default_value = "datasets/splits/test.tsv")]
        split: PathBuf,
        /// Images generated per prompt.
        #[arg(long, default_value_t = base_eval::DEFAULT_SAMPLES)]
        samples: usize,
        /// Sampler integration steps.
        #[arg(long, default_value_t = 20)]
        steps: usize,
        /// Classifier-free guidance scale.
        #[arg(long, default_value_t = umm_model::sampler::DEFAULT_CFG_SCALE)]
        cfg_scale: f32,
        /// Guide only at flow times above this (0 to 1; 0 guides every step, 1 none).
        #[arg(long, default_value_t = 0.0)]
        cfg_min_t: f32,
        /// Where the results go (default: `results`, the committed files, for the shipped
        /// checkpoint on the test split with the default sampler; `out/base-eval` for anything
        /// else, so that a dev-split or other-checkpoint evaluation cannot overwrite them).
        #[arg(long)]
        out_dir: Option<PathBuf>,
    },
    /// Oracle score of a checkpoint's images of the 40 single-object prompts ("a red
    /// circle"), with a sheet to look at: a quick generation check while tuning.
    Singles {
        /// Model weights (.safetensors with its .meta.toml sidecar).
        checkpoint: PathBuf,
        /// Images per prompt.
        #[arg(long, default_value_t = 4)]
        per_prompt: usize,
        #[command(flatten)]
        sampler: bench::SamplerArgs,
        /// Seed of the starting noise: tune a sampler on one seed, report on another (the
        /// manifest's `gen_single_object` uses 0).
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Where the sheet goes.
        #[arg(long, default_value = "singles.png")]
        sheet: PathBuf,
    },
    /// What the generator believes at each noise level: true renders of the 40 single-object
    /// prompts noised to flow time t, the model's one-step clean-image estimate drawn (one row
    /// per time, under the truth row) and scored by the oracle.
    Denoise {
        /// Model weights (.safetensors with its .meta.toml sidecar).
        checkpoint: PathBuf,
        /// Scenes per prompt.
        #[arg(long, default_value_t = 4)]
        per_prompt: usize,
        /// Seed of the scenes and the noise.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Where the sheet goes.
        #[arg(long, default_value = "denoise.png")]
        sheet: PathBuf,
    },
    /// Run `srum` on libtorch (CPU or CUDA): installs PyTorch 2.9.0 into .venv-torch once,
    /// builds srum with the `tch` feature into target/tch, runs it with the right library
    /// path. Example: `cargo xtask tch -- pretrain --device tch-cpu --out runs/base-tiny`.
    Tch {
        /// Arguments for srum.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Benchmarks: `bench compbench`, `bench reasonbench`, `bench understanding`.
    Bench {
        #[command(subcommand)]
        which: bench::BenchCmd,
    },
    /// A picture of a redraw sweep (`reward-calibration --renders --redraw T`): the first
    /// prompt of each category rendered, redrawn by the generator from each flow time, and
    /// drawn by the model itself, the oracle's score under each image.
    RedrawGrid {
        /// The generator (.safetensors with its .meta.toml sidecar).
        #[arg(long, default_value = "datasets/checkpoints/base-tiny.safetensors")]
        checkpoint: PathBuf,
        /// Prompt split.
        #[arg(long, default_value = calibration::DEFAULT_SPLIT)]
        split: PathBuf,
        /// Flow times, one row each (0: the true render).
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "0,0.15,0.3,0.45,0.6,0.75,0.9,1"
        )]
        times: Vec<f32>,
        /// Guidance of the last rows, the model's own images.
        #[arg(long, default_value_t = umm_model::sampler::DEFAULT_CFG_SCALE)]
        cfg_scale: f32,
        /// One row of the model's own images per value: guidance only above this flow time
        /// (0: every step).
        #[arg(long, value_delimiter = ',', default_value = "0")]
        own_min_t: Vec<f32>,
        /// Output PNG.
        #[arg(long, default_value = "results/redraw-sweep-images.png")]
        out: PathBuf,
    },
    /// How well the self-rewards agree with the oracle on the base model's own images of the
    /// val prompts (AUC of the global score, region-score sign agreement, proposal recall on
    /// true renders); writes results/reward-calibration.json and a reliability plot.
    RewardCalibration {
        /// Model weights (.safetensors with its .meta.toml sidecar).
        #[arg(long, default_value = "datasets/checkpoints/base-tiny.safetensors")]
        checkpoint: PathBuf,
        /// Judge the images with this checkpoint's understanding module instead (the images
        /// still come from --checkpoint), to compare two judges on the same images.
        #[arg(long)]
        judge: Option<PathBuf>,
        /// Prompt split.
        #[arg(long, default_value = calibration::DEFAULT_SPLIT)]
        split: PathBuf,
        /// Images per prompt.
        #[arg(long, default_value_t = 2)]
        samples: usize,
        /// Score true renders and one-constraint violations instead of the model's own images
        /// (the judgment on clean images; use with other --out and --plot paths).
        #[arg(long)]
        renders: bool,
        /// With --renders: redraw each render in the generator's style from this flow time
        /// (0 to 1; 4 unconditional Euler steps, as pretraining's und_restyle) before it is
        /// judged; the oracle judges the redrawn images.
        #[arg(long, requires = "renders")]
        redraw: Option<f32>,
        /// Guidance of the model's own images (ignored with --renders).
        #[arg(long, default_value_t = umm_model::sampler::DEFAULT_CFG_SCALE)]
        cfg_scale: f32,
        /// Guide only at flow times above this (0 to 1; 0 guides every step, 1 none): the
        /// low-noise end of the path then follows the conditional velocity alone.
        #[arg(long, default_value_t = 0.0)]
        cfg_min_t: f32,
        /// How g is read off the model: combined (the reward's default: the prompt-match
        /// answer averaged with the phrase coverage of the region names), question (the answer
        /// alone) or constraints (one question per stated attribute and count).
        #[arg(long, default_value = "combined")]
        global: reward_global::GlobalMode,
        /// The same as `--global question`.
        #[arg(long, conflicts_with = "global")]
        question_only: bool,
        /// How regions are scored: greedy (the reward's default), marginal_shape or questions.
        #[arg(long, default_value = "greedy")]
        regions: reward_local::RegionScoring,
        /// Output JSON.
        #[arg(long, default_value = "results/reward-calibration.json")]
        out: PathBuf,
        /// Output reliability plot.
        #[arg(long, default_value = "results/reward-calibration.png")]
        plot: PathBuf,
        /// Also write one JSON line per image (category, oracle verdict, every score the
        /// judge gave it) for analyses of your own.
        #[arg(long)]
        per_image: Option<PathBuf>,
    },
    /// Read the official T2I-CompBench val prompt files of a checkout
    /// (`<dir>/<category>_val.txt`) and report prompts, duplicates and blank lines.
    CheckPrompts {
        /// Folder holding the prompt files (e.g. ../shared/datasets/t2i-compbench).
        dir: PathBuf,
    },
    /// Plot a training run's losses (metrics.csv) to a PNG.
    PlotRun {
        /// The run folder.
        #[arg(long)]
        run: PathBuf,
        /// Output PNG.
        #[arg(long)]
        out: PathBuf,
        /// Title.
        #[arg(long, default_value = "pretraining")]
        title: String,
    },
    /// Ship a finished pretraining run as the base model: copy its final weights to
    /// datasets/checkpoints/<name>.safetensors, evaluate them on the test split (as base-eval,
    /// into results/) and write the manifest datasets/checkpoints/<name>.toml.
    ShipBase {
        /// The run folder (with model.safetensors and metrics.csv).
        #[arg(long)]
        run: PathBuf,
        /// Name of the shipped checkpoint.
        #[arg(long, default_value = "base-tiny")]
        name: String,
        /// The exact command that produced the run (recorded in the manifest).
        #[arg(long)]
        command: String,
        /// Images generated per test prompt.
        #[arg(long, default_value_t = base_eval::DEFAULT_SAMPLES)]
        samples: usize,
        /// Where the evaluation goes (base-gap.json, base-eval.{json,md}, sheets); default
        /// `results` for `base-tiny`, `results/<name>` for any other name.
        #[arg(long)]
        out_dir: Option<PathBuf>,
    },
}

fn main() -> std::process::ExitCode {
    // The xtask commands run the model on flex directly; the allocator setting of
    // `trainer::device` applies to them too.
    trainer::device::keep_freed_memory();
    // One line per error (with its causes), whatever RUST_BACKTRACE says.
    match run(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.cmd {
        Cmd::BaseEval {
            checkpoint,
            split,
            samples,
            steps,
            cfg_scale,
            cfg_min_t,
            out_dir,
        } => {
            let sample = umm_model::sampler::SampleConfig {
                steps,
                cfg_scale,
                cfg_min_t,
                ..Default::default()
            };
            let out_dir = out_dir.unwrap_or_else(|| {
                base_eval::default_out_dir(&checkpoint, &split, samples, &sample)
            });
            base_eval::run(&base_eval::EvalArgs {
                checkpoint,
                split,
                samples,
                sample,
                out_dir,
            })?;
        }
        Cmd::Singles {
            checkpoint,
            per_prompt,
            sampler,
            seed,
            sheet,
        } => {
            let sample = umm_model::sampler::SampleConfig {
                seed,
                ..sampler.config()
            };
            let t0 = std::time::Instant::now();
            let score = base_eval::singles(&checkpoint, per_prompt, sample, &sheet)?;
            println!(
                "single-object oracle score {score:.3} ({per_prompt} images per prompt, {sample:?}; sheet {}; {:.0} s)",
                sheet.display(),
                t0.elapsed().as_secs_f64()
            );
        }
        Cmd::Denoise {
            checkpoint,
            per_prompt,
            seed,
            sheet,
        } => {
            for (t, s) in denoise::run(&checkpoint, per_prompt, seed, &sheet)? {
                println!("t = {t:.2}: one-step estimate oracle score {s:.3}");
            }
            println!("sheet {}", sheet.display());
        }
        Cmd::Tch { args } => tch::run(&args)?,
        Cmd::Bench { which } => bench::run(which)?,
        Cmd::RedrawGrid {
            checkpoint,
            split,
            times,
            cfg_scale,
            own_min_t,
            out,
        } => {
            calibration::redraw_grid(&checkpoint, &split, &times, cfg_scale, &own_min_t, &out)?;
            println!("wrote {}", out.display());
        }
        Cmd::RewardCalibration {
            checkpoint,
            judge,
            split,
            samples,
            renders,
            redraw,
            cfg_scale,
            cfg_min_t,
            global,
            question_only,
            regions,
            out,
            plot,
            per_image,
        } => calibration::run(&calibration::CalibrationArgs {
            checkpoint,
            judge,
            split,
            samples,
            renders,
            redraw,
            cfg_scale,
            cfg_min_t,
            global: if question_only {
                reward_global::GlobalMode::Question
            } else {
                global
            },
            regions,
            out_json: out,
            out_png: plot,
            per_image,
        })?,
        Cmd::Ablate {
            grid,
            seeds,
            only,
            preset,
        } => match preset.as_deref() {
            Some(p) => ablate::run(p, 1, only.as_deref())?,
            None => ablate::run(&grid, seeds, only.as_deref())?,
        },
        Cmd::Plot => {
            let mut grids: Vec<PathBuf> = std::fs::read_dir("results/ablation")
                .context("reading results/ablation (run from the repository root)")?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.join("summary.csv").exists())
                .collect();
            grids.sort();
            for g in grids {
                if ablate::resummarise(&g)? {
                    println!(
                        "wrote {}/summary.{{csv,md}} and its README section",
                        g.display()
                    );
                }
                for f in ablation_plot::plot_grid(&g, &ablate::vs_base_of(&g)?)? {
                    println!("wrote {}", f.display());
                }
            }
            // The reward calibrations' reliability plots, redrawn from their reports.
            for stem in [
                "results/reward-calibration",
                "results/reward-calibration-renders",
                "results/reward-calibration-constraints",
                "results/reward-calibration-renders-constraints",
                "results/guidance-interval/val-g8-t0.5",
                "results/guidance-interval/val-g8-t0.5-constraints",
                "results/base-tiny-v5/reward-calibration-min-t05",
                "results/base-tiny-v5/reward-calibration-min-t05-constraints",
            ] {
                let json = PathBuf::from(format!("{stem}.json"));
                if json.exists() {
                    let png = json.with_extension("png");
                    calibration::replot(&json, &png)?;
                    println!("wrote {}", png.display());
                }
            }
            // The judge along the redraw sweep, from its reports.
            let sweep = PathBuf::from("results/redraw-sweep");
            if sweep.is_dir() {
                let png = sweep.with_extension("png");
                calibration::plot_sweep(&sweep, &png)?;
                println!("wrote {}", png.display());
            }
        }
        Cmd::SampleGrid { grid, seed, split } => {
            let out = PathBuf::from("results/ablation")
                .join(&grid)
                .join("samples.png");
            sample_grid::run(&grid, seed, &split, &out)?;
            println!("wrote {}", out.display());
        }
        Cmd::CheckPrompts { dir } => bench::check_prompt_files(&dir)?,
        Cmd::PlotRun { run, out, title } => {
            plot::plot_run(&run, &out, &title)?;
            println!("wrote {}", out.display());
        }
        Cmd::ShipBase {
            run,
            name,
            command,
            samples,
            out_dir,
        } => {
            let out = out_dir.unwrap_or_else(|| match name.as_str() {
                "base-tiny" => PathBuf::from("results"),
                other => PathBuf::from("results").join(other),
            });
            base_eval::ship(&run, &name, &command, samples, &out)?
        }
        Cmd::Firewall => {
            let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .parent()
                .context("xtask has no parent")?;
            let graph = firewall::workspace_graph(root)?;
            let v = firewall::violations(&graph);
            for (name, deps) in &graph {
                let tag = if firewall::allowed(name) {
                    "may see the oracle"
                } else {
                    "blind"
                };
                let ws: Vec<&String> = deps.iter().filter(|d| graph.contains_key(*d)).collect();
                println!("{name:<18} {tag:<19} workspace deps: {ws:?}");
            }
            if !v.is_empty() {
                for (name, path) in &v {
                    eprintln!(
                        "firewall broken: {name} reaches scene-oracle via {}",
                        path.join(" -> ")
                    );
                }
                anyhow::bail!("{} crate(s) break the firewall", v.len());
            }
            println!("firewall holds");
        }
        Cmd::OracleCheck {
            prompts,
            seed,
            resolution,
            out,
        } => {
            anyhow::ensure!(
                resolution == 32 || resolution == 64,
                "resolution must be 32 or 64, got {resolution}"
            );
            let start = std::time::Instant::now();
            let bar = indicatif::ProgressBar::new(prompts as u64).with_style(
                indicatif::ProgressStyle::with_template(
                    "{elapsed_precise} [{bar:40}] {pos}/{len} prompts, eta {eta}",
                )?
                .progress_chars("=> "),
            );
            let report =
                scene_oracle::check::oracle_check_with_progress(seed, prompts, resolution, &|| {
                    bar.inc(1)
                });
            bar.finish_and_clear();
            let wall = start.elapsed().as_secs_f64();
            let mut json = serde_json::to_value(&report)?;
            json["command"] = format!(
                "cargo xtask oracle-check --prompts {prompts} --seed {seed} --resolution {resolution}"
            )
            .into();
            json["wall_s"] = ((wall * 10.0).round() / 10.0).into();
            if let Some(dir) = out.parent() {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
            }
            std::fs::write(&out, serde_json::to_string_pretty(&json)? + "\n")
                .with_context(|| format!("writing {}", out.display()))?;
            println!("oracle check: {prompts} prompts, seed {seed}, {resolution}px, {wall:.1} s");
            println!(
                "  true renders      mean {:.4}  (worst category {:.4})",
                report.true_mean, report.true_min_category
            );
            println!(
                "  violations        lower than true {:.4}, below 0.5 {:.4}",
                report.violation_lower_frac, report.violation_below_half_frac
            );
            println!("  blur + noise 0.05 mean {:.4}", report.noisy_mean);
            println!("  per category (true / noisy / viol lower / viol < 0.5):");
            for (c, g) in &report.per_category {
                println!(
                    "    {c:<12} {:.3} / {:.3} / {:.3} / {:.3}",
                    g.true_mean, g.noisy_mean, g.violation_lower_frac, g.violation_below_half_frac
                );
            }
            println!("  per violation kind (n / lower / < 0.5 / mean score):");
            for (k, g) in &report.per_violation_kind {
                println!(
                    "    {k:<17} {:>4} / {:.3} / {:.3} / {:.3}",
                    g.violations,
                    g.violation_lower_frac,
                    g.violation_below_half_frac,
                    g.violation_mean
                );
            }
            println!("wrote {}", out.display());
        }
    }
    Ok(())
}
