//! `srum`: the command-line tool of SRUM-rs.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use compworld::Prompt;
use compworld::splits::load_split;
use trainer::device::{DeviceKind, device};
use trainer::eval::evaluate_understanding;
use trainer::pretrain::{PretrainConfig, RunOptions, pretrain};
use trainer::srum::{Method, SrumConfig, SrumOptions};
use umm_model::WordTokenizer;
use umm_model::checkpoint;
use umm_model::sampler::{SampleConfig, Solver, generate};

#[derive(Parser, Debug)]
#[command(
    name = "srum",
    version,
    about = "Self-rewarding post-training of a unified multimodal model"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Pretrain the unified model on compworld from scratch (or resume a run).
    Pretrain {
        /// Model preset: micro, tiny (CPU default), small or base.
        #[arg(long, default_value = "tiny")]
        preset: String,
        /// A full run configuration (TOML, as written to a run's config.toml); overrides
        /// --preset.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Run folder: config.toml, metrics.csv, checkpoints/, model.safetensors.
        #[arg(long)]
        out: PathBuf,
        /// Override train.steps.
        #[arg(long)]
        steps: Option<u64>,
        /// Override train.seed.
        #[arg(long)]
        seed: Option<u64>,
        /// Override train.init: start from this checkpoint's weights (a second stage of
        /// pretraining) instead of a seeded initialisation.
        #[arg(long, conflicts_with = "resume")]
        init: Option<PathBuf>,
        /// Continue from the newest checkpoint in --out.
        #[arg(long)]
        resume: bool,
        /// Stop after this many steps of this invocation (the schedule still spans all steps);
        /// resume later with --resume.
        #[arg(long)]
        max_steps_now: Option<u64>,
        /// Compute backend.
        #[arg(long, value_enum, default_value = "cpu")]
        device: DeviceKind,
    },
    /// SRUM post-training of a base checkpoint: generate candidates for the training prompts,
    /// score them with the model's own understanding, train on the reward-weighted flow loss.
    Train(PostArgs),
    /// The SFT baseline: the same self-generated images and prompts, the plain flow loss, no
    /// rewards (the configuration's `method` is set to `sft`).
    Sft(PostArgs),
    /// Time training steps of a preset on several backends, alternated round by round;
    /// prints medians.
    BenchStep {
        /// Model preset.
        #[arg(long, default_value = "tiny")]
        preset: String,
        /// Generation and understanding examples per step (each).
        #[arg(long, default_value_t = 32)]
        batch: usize,
        /// Backends to compare (repeat the flag).
        #[arg(long = "device", value_enum, default_values_t = [DeviceKind::Cpu])]
        devices: Vec<DeviceKind>,
        /// Measured rounds; each runs --steps steps on every backend in turn.
        #[arg(long, default_value_t = 5)]
        rounds: usize,
        /// Steps per backend per round.
        #[arg(long, default_value_t = 4)]
        steps: usize,
    },
    /// Measure understanding on a prompt split: balanced prompt-match and region accuracy.
    EvalUnd {
        /// Model weights (.safetensors with its .meta.toml sidecar).
        #[arg(long)]
        checkpoint: PathBuf,
        /// A split file (category, unseen, prompt), e.g. datasets/splits/test.tsv.
        #[arg(long, default_value = "datasets/splits/test.tsv")]
        split: PathBuf,
        /// Seed of the scenes drawn for each prompt.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Compute backend.
        #[arg(long, value_enum, default_value = "cpu")]
        device: DeviceKind,
    },
    /// Generate images for prompts and save them as one PNG grid.
    Sample {
        /// Model weights (.safetensors with its .meta.toml sidecar).
        #[arg(long)]
        checkpoint: PathBuf,
        /// Prompts (repeat the flag for several).
        #[arg(long = "prompt", required = true)]
        prompts: Vec<String>,
        /// Images per prompt (one row each).
        #[arg(long, default_value_t = 4)]
        per_prompt: usize,
        /// Integration steps.
        #[arg(long, default_value_t = 20)]
        steps: usize,
        /// Use Heun's second-order solver instead of Euler.
        #[arg(long)]
        heun: bool,
        /// Classifier-free guidance scale (1 = none).
        #[arg(long, default_value_t = umm_model::sampler::DEFAULT_CFG_SCALE)]
        cfg_scale: f32,
        /// Guide only at flow times above this (0 to 1; 0 guides every step, 1 none).
        #[arg(long, default_value_t = 0.0)]
        cfg_min_t: f32,
        /// Seed of the starting noise.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Output PNG.
        #[arg(long, default_value = "samples.png")]
        out: PathBuf,
        /// Compute backend.
        #[arg(long, value_enum, default_value = "cpu")]
        device: DeviceKind,
    },
    /// The model's self-rewards of images: one JSON record per image (global score, regions
    /// with the model's names and scores, reward-map statistics) in <out>/rewards.jsonl and an
    /// overlay PNG per image in <out>/overlays/.
    Reward {
        /// Model weights (.safetensors with its .meta.toml sidecar): the judge.
        #[arg(long)]
        checkpoint: PathBuf,
        /// A folder of PNGs with a prompts.tsv of `file<TAB>prompt` lines.
        #[arg(long, conflicts_with = "prompt")]
        images: Option<PathBuf>,
        /// Or prompts to generate images for with the same checkpoint (repeat the flag).
        #[arg(long = "prompt")]
        prompt: Vec<String>,
        /// Seed of the generated images' noise.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Guidance of the generated images.
        #[arg(long, default_value_t = umm_model::sampler::DEFAULT_CFG_SCALE)]
        cfg_scale: f32,
        /// Guide the generated images only at flow times above this (0 to 1; 0 guides every
        /// step, 1 none).
        #[arg(long, default_value_t = 0.0)]
        cfg_min_t: f32,
        /// Reward-map mode: unit (as the reference code), signed (bounded) or binary.
        #[arg(long, default_value = "unit")]
        map: reward_local::MapMode,
        /// Leave the global score out of the map (ablation).
        #[arg(long)]
        no_global: bool,
        /// Leave the region scores out of the map (ablation).
        #[arg(long)]
        no_local: bool,
        /// How the global score is read: combined (the default: the prompt-match answer
        /// averaged with the phrase coverage of the model's region names), question (the answer
        /// alone) or constraints (one question per stated attribute and count).
        #[arg(long, default_value = "combined")]
        global: reward_global::GlobalMode,
        /// The same as `--global question`.
        #[arg(long, conflicts_with = "global")]
        question_only: bool,
        /// How regions are scored: greedy (the reference), marginal_shape (the shape word's
        /// probabilities marginalised) or questions (yes/no questions about each crop).
        #[arg(long, default_value = "greedy")]
        regions: reward_local::RegionScoring,
        /// Regions proposed per image.
        #[arg(long, default_value_t = 10)]
        top_k: usize,
        /// Output folder.
        #[arg(long, default_value = "out/reward")]
        out: PathBuf,
        /// Compute backend.
        #[arg(long, value_enum, default_value = "cpu")]
        device: DeviceKind,
    },
}

/// Flags of `srum train` and `srum sft`.
#[derive(clap::Args, Debug)]
struct PostArgs {
    /// Run configuration (TOML, as `--print-config` writes it; every section required).
    /// Default: the built-in defaults (SRUM on the shipped base-tiny checkpoint).
    #[arg(long, conflicts_with = "resume")]
    config: Option<PathBuf>,
    /// Run folder (must not hold a run yet).
    #[arg(long, required_unless_present_any = ["resume", "print_config"])]
    out: Option<PathBuf>,
    /// Continue the run in this folder from its config.toml and newest checkpoint.
    #[arg(long, value_name = "RUN")]
    resume: Option<PathBuf>,
    /// Override train.seed.
    #[arg(long, conflicts_with = "resume")]
    seed: Option<u64>,
    /// Override prompts.count (0: the whole split).
    #[arg(long, conflicts_with = "resume")]
    prompts: Option<usize>,
    /// Override train.steps_per_round.
    #[arg(long, conflicts_with = "resume")]
    steps: Option<u64>,
    /// Print the configuration this invocation would run (TOML) and exit.
    #[arg(long)]
    print_config: bool,
    /// Compute backend.
    #[arg(long, value_enum, default_value = "cpu")]
    device: DeviceKind,
}

fn post_train(a: PostArgs, method: Method) -> Result<()> {
    let (cfg, dir, resume) = match &a.resume {
        Some(run) => {
            let path = run.join("config.toml");
            if !path.exists() {
                bail!("{} is not a run folder (no config.toml)", run.display());
            }
            (SrumConfig::from_file(&path)?, run.clone(), true)
        }
        None => {
            let mut cfg = match &a.config {
                Some(p) => {
                    let cfg = SrumConfig::from_file(p)?;
                    // The subcommand names the method; a file that names the other one is a
                    // mistake (`srum train --config sft.toml` would otherwise train SRUM).
                    if cfg.method != method {
                        bail!(
                            "{} sets method = \"{}\" but `srum {}` runs {}: run `srum {} --config {}`, or change the file's method",
                            p.display(),
                            cfg.method.name(),
                            method.command(),
                            method.name(),
                            cfg.method.command(),
                            p.display()
                        );
                    }
                    cfg
                }
                None => SrumConfig::default(),
            };
            cfg.method = method;
            if let Some(s) = a.seed {
                cfg.train.seed = s;
            }
            if let Some(n) = a.prompts {
                cfg.prompts.count = n;
            }
            if let Some(n) = a.steps {
                cfg.train.steps_per_round = n;
            }
            cfg.validate()?;
            (cfg, a.out.clone().unwrap_or_default(), false)
        }
    };
    if a.print_config {
        print!("{}", cfg.to_toml());
        return Ok(());
    }
    let dev = device(a.device)?;
    eprintln!(
        "{} post-training of {} ({} round(s), {} prompts x {} candidate(s), {} steps of {}) on {} into {}",
        match cfg.method {
            Method::Srum => "SRUM",
            Method::Sft => "SFT",
        },
        cfg.base.display(),
        cfg.rounds,
        cfg.prompts.count,
        cfg.candidates_per_prompt,
        cfg.train.steps_per_round,
        cfg.train.batch,
        a.device.name(),
        dir.display()
    );
    let t0 = Instant::now();
    let opts = SrumOptions {
        resume,
        progress: true,
        poison_step: None,
    };
    let o = trainer::srum::run(&cfg, &dir, &dev, &opts)?;
    for s in &o.rounds {
        eprintln!(
            "round {}: {} candidates, {} trained on, mean g {}, mean weight {}; generate {:.0} s, \
             reward {:.0} s, train {:.0} s",
            s.round,
            s.candidates,
            s.trained_on,
            s.mean_global.map_or("-".into(), |g| format!("{g:.3}")),
            s.mean_weight.map_or("-".into(), |g| format!("{g:.3}")),
            s.generate_s,
            s.reward_s,
            s.train_s
        );
    }
    eprintln!(
        "done in {:.0} s; final weights {}",
        t0.elapsed().as_secs_f64(),
        dir.join("model.safetensors").display()
    );
    Ok(())
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_max_level(tracing::Level::INFO)
        .init();
    match cli.command {
        Command::Train(a) => post_train(a, Method::Srum),
        Command::Sft(a) => post_train(a, Method::Sft),
        Command::Pretrain {
            preset,
            config,
            out,
            steps,
            seed,
            init,
            resume,
            max_steps_now,
            device: kind,
        } => {
            let mut cfg = match &config {
                Some(p) => PretrainConfig::from_file(p)?,
                None => PretrainConfig::for_preset(&preset)?,
            };
            if let Some(s) = steps {
                cfg.train.steps = s;
            }
            if let Some(s) = seed {
                cfg.train.seed = s;
            }
            if init.is_some() {
                cfg.train.init = init;
            }
            let dev = device(kind)?.autodiff();
            let t = &cfg.train;
            let batches = match t.und_step_share {
                None => format!("batch {}+{}", t.gen_batch, t.und_batch),
                Some(s) => format!(
                    "one batch a step: {} understanding on {:.0}% of them, {} generation on the rest",
                    t.und_batch,
                    100.0 * s,
                    t.gen_batch
                ),
            };
            eprintln!(
                "pretraining {} ({} steps, {batches}) on {} into {}",
                config
                    .as_deref()
                    .map_or(preset.clone(), |p| p.display().to_string()),
                t.steps,
                kind.name(),
                out.display()
            );
            let opts = RunOptions {
                resume,
                progress: true,
                max_steps_now,
            };
            let o = pretrain(&cfg, &out, &dev, &opts)?;
            let last = o.metrics.last();
            eprintln!(
                "step {} in {:.0} s; last losses: understanding {:.4}, generation {:.4}",
                o.step,
                o.wall_s,
                last.map_or(f32::NAN, |m| m.loss_und),
                last.map_or(f32::NAN, |m| m.loss_gen)
            );
            Ok(())
        }
        Command::BenchStep {
            preset,
            batch,
            devices,
            rounds,
            steps,
        } => {
            let cfg = umm_model::UmmConfig::preset(&preset)?;
            let devs = devices
                .iter()
                .map(|&k| Ok((k.name().to_string(), device(k)?.autodiff())))
                .collect::<Result<Vec<_>>>()?;
            let times = trainer::bench::time_steps(&cfg, batch, &devs, rounds, steps)?;
            let base = times[0].median();
            println!("preset {preset}, batch {batch}+{batch}, {rounds} rounds x {steps} steps");
            for t in &times {
                println!(
                    "{:<10} median {:.3} s/step ({:.2}x the first)  [min {:.3}, max {:.3}]",
                    t.backend,
                    t.median(),
                    t.median() / base,
                    t.seconds.iter().copied().fold(f64::INFINITY, f64::min),
                    t.seconds.iter().copied().fold(0.0, f64::max)
                );
            }
            Ok(())
        }
        Command::EvalUnd {
            checkpoint: ckpt,
            split,
            seed,
            device: kind,
        } => {
            let dev = device(kind)?;
            let (model, meta) = checkpoint::load(&ckpt, &dev)?;
            let prompts = read_split(&split)?;
            let t0 = Instant::now();
            let r = evaluate_understanding(
                &model,
                &meta.config,
                &WordTokenizer::compworld(),
                &prompts,
                seed,
                &dev,
            )?;
            println!("category       prompt-match");
            for name in r.by_category.keys() {
                println!("{name:<14} {:.3}", r.category_acc(name).unwrap_or(0.0));
            }
            println!("violation         \"no\" accuracy (questions)");
            for (name, t) in &r.no_by_violation {
                println!("{name:<17} {:.3} ({})", t.accuracy(), t.total);
            }
            if r.reasons_exact.total > 0 {
                println!(
                    "reasons exactly right {:.3}, verdict follows its reasons {:.3} ({} answers)",
                    r.reasons_exact.accuracy(),
                    r.verdict_follows_reasons.accuracy(),
                    r.reasons_exact.total
                );
            }
            println!(
                "prompt-match (balanced) {:.4}  [yes {:.3}, no {:.3}]\nregion {:.4}\n({} prompts, {:.0} s)",
                r.prompt_match_acc(),
                r.match_yes.accuracy(),
                r.match_no.accuracy(),
                r.region.accuracy(),
                prompts.len(),
                t0.elapsed().as_secs_f64()
            );
            Ok(())
        }
        Command::Sample {
            checkpoint: ckpt,
            prompts,
            per_prompt,
            steps,
            heun,
            cfg_scale,
            cfg_min_t,
            seed,
            out,
            device: kind,
        } => {
            let dev = device(kind)?;
            let (model, meta) = checkpoint::load(&ckpt, &dev)?;
            let tok = WordTokenizer::compworld();
            for p in &prompts {
                Prompt::parse(p).with_context(|| format!("prompt \"{p}\""))?;
            }
            let all: Vec<&str> = prompts
                .iter()
                .flat_map(|p| std::iter::repeat_n(p.as_str(), per_prompt))
                .collect();
            let sample = SampleConfig {
                steps,
                solver: if heun { Solver::Heun } else { Solver::Euler },
                cfg_scale,
                cfg_min_t,
                seed,
            };
            let imgs = generate(&model, &meta.config, &tok, &all, sample, &dev)?;
            let images = umm_model::sampler::to_images(imgs)?;
            let sheet = compworld::render::contact_sheet(&images, per_prompt, 4);
            sheet.save_png(&out)?;
            eprintln!("wrote {} ({} images)", out.display(), images.len());
            Ok(())
        }
        Command::Reward {
            checkpoint: ckpt,
            images,
            prompt,
            seed,
            cfg_scale,
            cfg_min_t,
            map,
            no_global,
            no_local,
            global,
            question_only,
            regions,
            top_k,
            out,
            device: kind,
        } => {
            let dev = device(kind)?;
            let (model, meta) = checkpoint::load(&ckpt, &dev)?;
            let cfg = meta.config;
            let tok = WordTokenizer::compworld();
            let items = match images {
                Some(dir) => trainer::reward_cmd::read_folder(&dir, cfg.resolution)?,
                None => {
                    if prompt.is_empty() {
                        bail!("give --images <folder> or at least one --prompt");
                    }
                    let texts: Vec<&str> = prompt.iter().map(String::as_str).collect();
                    let sample = SampleConfig {
                        seed,
                        cfg_scale,
                        cfg_min_t,
                        ..SampleConfig::default()
                    };
                    let imgs = generate(&model, &cfg, &tok, &texts, sample, &dev)?;
                    umm_model::sampler::to_images(imgs)?
                        .into_iter()
                        .zip(&prompt)
                        .enumerate()
                        .map(|(i, (img, p))| trainer::reward_cmd::Item {
                            name: format!("{i:04}.png"),
                            prompt: p.clone(),
                            image: Ok(img),
                        })
                        .collect()
                }
            };
            let rc = reward_global::RewardConfig {
                proposer: reward_local::ProposerConfig {
                    top_k,
                    ..Default::default()
                },
                map: reward_local::MapConfig {
                    mode: map,
                    use_global: !no_global,
                    use_local: !no_local,
                    ..Default::default()
                },
                global: if question_only {
                    reward_global::GlobalMode::Question
                } else {
                    global
                },
                regions,
            };
            let pb = indicatif::ProgressBar::new(items.len() as u64);
            let t0 = Instant::now();
            let run =
                trainer::reward_cmd::run(&model, &cfg, &tok, &items, &rc, &out, &dev, &|n| {
                    pb.set_position(n as u64)
                })?;
            pb.finish_and_clear();
            for (name, why) in &run.skipped {
                eprintln!("skipped {name}: {why}");
            }
            eprintln!(
                "scored {} image(s), skipped {}, in {:.1} s; wrote {}/rewards.jsonl and {}/overlays/",
                run.scored,
                run.skipped.len(),
                t0.elapsed().as_secs_f64(),
                out.display(),
                out.display()
            );
            Ok(())
        }
    }
}

fn read_split(path: &Path) -> Result<Vec<Prompt>> {
    if !path.exists() {
        bail!("split file {} not found", path.display());
    }
    Ok(load_split(path)?.into_iter().map(|e| e.prompt).collect())
}
