//! `cargo xtask bench speed`: Burn against PyTorch on this machine, in one run.
//!
//! Builds `burn-speed` for the default CPU backend (flex) and for libtorch (`--features tch`,
//! against `.venv-torch`; flex with polynomial GELU kernels, `--features fast-gelu`; and flex
//! with AVX-512 matmul kernels, `--features avx512`), exports the fixed inputs (`burn-speed export`), then alternates
//! the contenders round by round (Burn flex, Burn tch-cpu, PyTorch eager, PyTorch
//! `torch.compile`: A B C D A B C D ...), one process per measurement, and writes
//! `results/speed.json` and `results/speed.md`: median training-step time of each, the ratio
//! Burn / PyTorch, achieved GFLOP/s and MFU against the machine's matmul peak (a 2048^3 sgemm
//! through torch's MKL/oneDNN, measured once per round), sampling images/s, and the cost of a
//! SRUM round at three prompt counts (flex; generation, self-reward and training phases).
//!
//! Every contender starts from the same weights and batch; their losses are compared step by
//! step (`loss_check`), so the race is between implementations of one computation.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};
use clap::Args;
use serde_json::{Value, json};

use crate::tch::{Torch, build_with_tch, ensure_torch};

#[derive(Args, Debug, Clone)]
pub struct SpeedArgs {
    /// Measured rounds; each runs every contender once, in turn.
    #[arg(long, default_value_t = 5)]
    pub rounds: usize,
    /// Timed training steps per process (after 2 untimed ones).
    #[arg(long, default_value_t = 3)]
    pub steps: usize,
    /// Leave out torch.compile (its compilation takes about a minute per process here).
    #[arg(long)]
    pub no_compile: bool,
    /// Leave out Burn on libtorch (needs .venv-torch; installed on first use, about 6.7 GB).
    #[arg(long)]
    pub no_tch: bool,
    /// Leave out every flex contender (plain, fast GELU, AVX-512): Burn on libtorch against
    /// PyTorch alone, a race of a few minutes to check a libtorch change. The report's pure-Rust
    /// fields are then null. The SRUM round cost runs on flex in-process whatever this says;
    /// `--round-prompts ""` skips it.
    #[arg(long, conflicts_with = "no_tch")]
    pub no_flex: bool,
    /// Leave out flex with AVX-512 matmul kernels (`--features avx512`, built into
    /// target/v4: a second build of Burn, about 8 minutes the first time).
    #[arg(long)]
    pub no_avx512: bool,
    /// Leave out flex with polynomial GELU kernels (`--features fast-gelu`, built in the main
    /// target folder first and copied to target/release/burn-speed-fast-gelu).
    #[arg(long)]
    pub no_fast_gelu: bool,
    /// Prompt counts of the SRUM round-cost measurement (empty: skip it).
    #[arg(long, default_value = "48,96,192", value_parser = prompt_counts)]
    pub round_prompts: PromptCounts,
    /// Where speed.json and speed.md go.
    #[arg(long, default_value = "results")]
    pub out: PathBuf,
}

/// A comma-separated list of prompt counts, possibly empty (one clap value, so that
/// `--round-prompts ""` reads as no counts rather than as one unparsable count).
pub type PromptCounts = Vec<usize>;

fn prompt_counts(s: &str) -> Result<PromptCounts, String> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.parse::<usize>()
                .map_err(|e| format!("{p:?} is not a prompt count: {e}"))
        })
        .collect()
}

impl SpeedArgs {
    /// The command that reproduces this race: the flags that change what is measured
    /// (`--out` does not).
    fn command(&self) -> String {
        let mut c = String::from("cargo xtask bench speed");
        if self.rounds != 5 {
            c += &format!(" --rounds {}", self.rounds);
        }
        if self.steps != 3 {
            c += &format!(" --steps {}", self.steps);
        }
        for (on, flag) in [
            (self.no_compile, " --no-compile"),
            (self.no_tch, " --no-tch"),
            (self.no_flex, " --no-flex"),
            (self.no_avx512, " --no-avx512"),
            (self.no_fast_gelu, " --no-fast-gelu"),
        ] {
            if on {
                c += flag;
            }
        }
        if self.round_prompts != [48, 96, 192] {
            let p: Vec<String> = self.round_prompts.iter().map(|n| n.to_string()).collect();
            c += &if p.is_empty() {
                " --round-prompts \"\"".to_string()
            } else {
                format!(" --round-prompts {}", p.join(","))
            };
        }
        c
    }
}

/// One way to run the step.
struct Contender {
    name: &'static str,
    /// Program and leading arguments; `train`/`sample` and their flags follow.
    program: PathBuf,
    lead: Vec<String>,
    ld_path: Option<String>,
    /// Arguments of the sub-command that select the backend.
    backend_args: Vec<String>,
}

impl Contender {
    /// The contender's program with its leading arguments and library path.
    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.lead);
        if let Some(ld) = &self.ld_path {
            cmd.env("LD_LIBRARY_PATH", ld);
        }
        cmd
    }

    fn run(&self, sub: &str, extra: &[&str]) -> Result<Value> {
        let mut cmd = self.command();
        cmd.arg(sub).args(&self.backend_args).args(extra);
        let out = cmd
            .output()
            .with_context(|| format!("cannot start {cmd:?}"))?;
        if !out.status.success() {
            bail!(
                "{} {sub} failed ({}): {}",
                self.name,
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text.lines().last().context("no output")?;
        serde_json::from_str(line).with_context(|| format!("{} printed: {text}", self.name))
    }
}

fn floats(v: &Value, key: &str) -> Vec<f64> {
    v[key]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default()
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    if s.is_empty() {
        f64::NAN
    } else {
        s[s.len() / 2]
    }
}

/// Today's date (UTC), from `date`.
fn today() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%d"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// Builds the flex `burn-speed` with `feature` (if any), into `target_dir` (if any; else the
/// main target folder).
fn cargo_build_flex(feature: Option<&str>, target_dir: Option<&str>) -> Result<PathBuf> {
    let mut cmd = Command::new("cargo");
    cmd.args([
        "build",
        "--release",
        "-p",
        "benchmarks",
        "--bin",
        "burn-speed",
    ]);
    if let Some(f) = feature {
        cmd.args(["--features", f]);
    }
    let dir = PathBuf::from(target_dir.unwrap_or("target"));
    if let Some(t) = target_dir {
        cmd.env("CARGO_TARGET_DIR", t);
    }
    ensure!(cmd.status()?.success(), "building burn-speed failed");
    Ok(dir.join("release/burn-speed"))
}

/// `burn-speed` with `feature` built in the main target folder, copied aside (the plain build
/// that follows overwrites target/release/burn-speed; only the crates above burn rebuild).
fn cargo_build_flex_aside(feature: &str) -> Result<PathBuf> {
    let built = cargo_build_flex(Some(feature), None)?;
    let aside = PathBuf::from(format!("target/release/burn-speed-{feature}"));
    std::fs::copy(&built, &aside)
        .with_context(|| format!("cannot copy burn-speed to {}", aside.display()))?;
    Ok(aside)
}

fn contenders(a: &SpeedArgs, torch: &Torch, race: &Path) -> Result<Vec<Contender>> {
    let dir = race.display().to_string();
    let mut v = Vec::new();
    if !a.no_flex {
        // fast-gelu first: it is built in the main target folder and copied aside before the
        // plain build takes its place.
        let fast_gelu = if a.no_fast_gelu {
            None
        } else {
            Some(cargo_build_flex_aside("fast-gelu")?)
        };
        let flex = |name, program| Contender {
            name,
            program,
            lead: vec![],
            ld_path: None,
            backend_args: vec!["--device".into(), "cpu".into()],
        };
        v.push(flex("burn-flex", cargo_build_flex(None, None)?));
        if let Some(program) = fast_gelu {
            v.push(flex("burn-flex-fast-gelu", program));
        }
        if !a.no_avx512 {
            let program = cargo_build_flex(Some("avx512"), Some("target/v4"))?;
            v.push(flex("burn-flex-avx512", program));
        }
    }
    if !a.no_tch {
        v.push(Contender {
            name: "burn-tch-cpu",
            program: build_with_tch(torch, "benchmarks", "burn-speed")?,
            lead: vec![],
            ld_path: Some(torch.ld_library_path()),
            backend_args: vec!["--device".into(), "tch-cpu".into()],
        });
    }
    let reference = "benchmarks/pytorch-ref/ref.py".to_string();
    v.push(Contender {
        name: "torch-eager",
        program: torch.python.clone(),
        lead: vec![reference.clone()],
        ld_path: None,
        backend_args: vec!["--dir".into(), dir.clone()],
    });
    if !a.no_compile {
        v.push(Contender {
            name: "torch-compile",
            program: torch.python.clone(),
            lead: vec![reference],
            ld_path: None,
            backend_args: vec!["--dir".into(), dir, "--compile".into()],
        });
    }
    Ok(v)
}

/// The cost of one SRUM round (generation, self-reward, training; flex) at `n` prompts, two
/// training epochs of batch 32 each.
fn srum_round(n: usize) -> Result<Value> {
    let base = trainer::srum::SrumConfig::default();
    let set: toml::Table = toml::from_str(&format!(
        "\"prompts.count\" = {n}\n\"train.steps_per_round\" = {}\n\"train.checkpoint_every\" = 1000000",
        (2 * n).div_ceil(base.train.batch)
    ))?;
    let cfg = crate::ablate::apply_overrides(&base, &[&set])?;
    let dir = PathBuf::from(format!("target/speed-round-{n}"));
    let _ = std::fs::remove_dir_all(&dir);
    let opts = trainer::srum::SrumOptions {
        resume: false,
        progress: false,
        poison_step: None,
    };
    let out = trainer::srum::run(&cfg, &dir, &burn::prelude::Device::flex(), &opts)?;
    let r = &out.rounds[0];
    let _ = std::fs::remove_dir_all(&dir);
    Ok(json!({
        "prompts": n,
        "train_steps": r.steps,
        "generate_s": r.generate_s,
        "reward_s": r.reward_s,
        "train_s": r.train_s,
        "total_s": r.generate_s + r.reward_s + r.train_s,
    }))
}

/// Least-squares line through `(x, y)`: slope, intercept, R^2.
fn fit(x: &[f64], y: &[f64]) -> (f64, f64, f64) {
    let n = x.len() as f64;
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let sxy: f64 = x.iter().zip(y).map(|(a, b)| (a - mx) * (b - my)).sum();
    let sxx: f64 = x.iter().map(|a| (a - mx).powi(2)).sum();
    let slope = sxy / sxx;
    let icpt = my - slope * mx;
    let ss_res: f64 = x
        .iter()
        .zip(y)
        .map(|(a, b)| (b - (icpt + slope * a)).powi(2))
        .sum();
    let ss_tot: f64 = y.iter().map(|b| (b - my).powi(2)).sum();
    (slope, icpt, 1.0 - ss_res / ss_tot)
}

pub fn run(a: &SpeedArgs) -> Result<()> {
    ensure!(
        a.rounds >= 1 && a.steps >= 1,
        "--rounds and --steps must be at least 1"
    );
    let t_start = Instant::now();
    let torch = ensure_torch()?;
    let race = PathBuf::from("target/speed-race");
    let cs = contenders(a, &torch, &race)?;
    // Every `burn-speed` exports the same inputs (built on flex whatever its backend).
    let s = cs[0]
        .command()
        .args(["export", "--out"])
        .arg(&race)
        .status()?;
    ensure!(s.success(), "burn-speed export failed");
    let steps = a.steps.to_string();
    let first_libtorch = cs
        .iter()
        .position(|c| !c.name.starts_with("burn-flex"))
        .expect("torch-eager always runs");
    let mut train: Vec<Vec<f64>> = vec![Vec::new(); cs.len()];
    // Each contender's median step of each round, for the paired (round by round) figures.
    let mut per_round: Vec<Vec<f64>> = vec![Vec::new(); cs.len()];
    let mut sample: Vec<Vec<f64>> = vec![Vec::new(); cs.len()];
    let mut losses: Vec<Vec<f64>> = vec![Vec::new(); cs.len()];
    let mut sample_abs: Vec<f64> = vec![f64::NAN; cs.len()];
    let (mut flops, mut sample_flops) = (0.0, 0.0);
    let mut peaks = Vec::new();
    let mut peak_library = String::new();
    for round in 0..a.rounds {
        eprintln!(
            "round {}/{} ({:.0} s so far)",
            round + 1,
            a.rounds,
            t_start.elapsed().as_secs_f64()
        );
        for (i, c) in cs.iter().enumerate() {
            // The round's peak, measured just before the libtorch contenders (Burn's fastest
            // and PyTorch) rather than a minute earlier before flex's, so each round's MFU
            // divides by what the host gave in those same seconds.
            if i == first_libtorch {
                let peak = Command::new(&torch.python)
                    .args(["benchmarks/pytorch-ref/ref.py", "sgemm"])
                    .output()?;
                let p: Value = serde_json::from_slice(&peak.stdout).context("sgemm output")?;
                peaks.push(p["median_gflops"].as_f64().unwrap_or(f64::NAN));
                peak_library = p["library"].as_str().unwrap_or_default().to_string();
            }
            let v = c.run("train", &["--steps", &steps])?;
            train[i].extend(floats(&v, "step_s"));
            per_round[i].push(median(&floats(&v, "step_s")));
            losses[i] = floats(&v, "loss");
            if let Some(f) = v["flops"].as_f64() {
                flops = f;
            }
            eprintln!(
                "  {:<14} train  median {:.3} s",
                c.name,
                median(&floats(&v, "step_s"))
            );
        }
        for (i, c) in cs.iter().enumerate() {
            let v = c.run("sample", &["--reps", "1"])?;
            let per = v["images"].as_f64().unwrap_or(32.0);
            sample[i].extend(floats(&v, "batch_s").iter().map(|s| per / s));
            sample_abs[i] = v["mean_abs"].as_f64().unwrap_or(f64::NAN);
            if let Some(f) = v["flops"].as_f64() {
                sample_flops = f;
            }
            eprintln!("  {:<14} sample {:.1} images/s", c.name, median(&sample[i]));
        }
    }
    let peak = median(&peaks);
    let eager = cs
        .iter()
        .position(|c| c.name == "torch-eager")
        .expect("torch-eager always runs");
    let mut rows = Vec::new();
    for (i, c) in cs.iter().enumerate() {
        let step = median(&train[i]);
        let dloss = losses[i]
            .iter()
            .zip(&losses[eager])
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f64::max);
        let rounds = Paired::of(&per_round[i], &per_round[eager], &peaks, flops);
        rows.push(json!({
            "name": c.name,
            "step_s_median": step,
            "step_s": train[i],
            "ratio_over_torch_eager": step / median(&train[eager]),
            "gflops": flops / step / 1e9,
            "mfu": flops / step / 1e9 / peak,
            "sampling_images_per_s": median(&sample[i]),
            "sampling_gflops": sample_flops * median(&sample[i]) / 32.0 / 1e9,
            "losses": losses[i],
            "max_loss_diff_vs_torch_eager": dloss,
            "sample_mean_abs": sample_abs[i],
            "step_s_per_round": per_round[i],
            "ratio_per_round": rounds.ratios,
            "ratio_median_of_rounds": median(&rounds.ratios),
            "faster_than_torch_eager_rounds": rounds.faster,
            "mfu_per_round": rounds.mfus,
            "mfu_median_of_rounds": median(&rounds.mfus),
        }));
    }
    // The fastest Burn backend, and the fastest pure-Rust one (none with --no-flex).
    let fastest = |prefix: &str| {
        rows.iter()
            .filter(|r| r["name"].as_str().is_some_and(|n| n.starts_with(prefix)))
            .min_by(|a, b| f(&a["step_s_median"]).total_cmp(&f(&b["step_s_median"])))
    };
    let burn = fastest("burn-").expect("a Burn contender always runs");
    let none = Value::Null;
    let flex = fastest("burn-flex").unwrap_or(&none);
    let torch_row = &rows[eager];
    // How a SRUM round's cost grows with its prompts.
    let mut scaling = Vec::new();
    for &n in &a.round_prompts {
        eprintln!("SRUM round with {n} prompts (flex)");
        scaling.push(srum_round(n)?);
    }
    let scaling_fit = if scaling.len() >= 2 {
        let x: Vec<f64> = scaling
            .iter()
            .map(|r| r["prompts"].as_f64().unwrap_or(0.0))
            .collect();
        let y: Vec<f64> = scaling
            .iter()
            .map(|r| r["total_s"].as_f64().unwrap_or(0.0))
            .collect();
        let (slope, icpt, r2) = fit(&x, &y);
        json!({"seconds_per_prompt": slope, "intercept_s": icpt, "r2": r2})
    } else {
        Value::Null
    };
    let commit = crate::ablate::commit();
    let report = json!({
        "date": today(),
        "commit": commit,
        "command": a.command(),
        "cpu_model": cpu_model(),
        "threads": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "preset": "tiny",
        "batch": "32 understanding + 32 generation examples",
        "train_flops_per_step": flops,
        "burn_backend": burn["name"],
        "burn_step_s": burn["step_s_median"],
        "torch_backend": "torch-eager",
        "torch_step_s": torch_row["step_s_median"],
        "ratio_burn_over_torch": burn["ratio_over_torch_eager"],
        "burn_gflops": burn["gflops"],
        "peak_gflops": peak,
        "peak_gflops_per_round": peaks,
        "peak_library": peak_library,
        "mfu": burn["mfu"],
        "ratio_burn_over_torch_paired": burn["ratio_median_of_rounds"],
        "mfu_paired": burn["mfu_median_of_rounds"],
        "burn_faster_rounds": burn["faster_than_torch_eager_rounds"],
        "pure_rust_backend": flex["name"],
        "pure_rust_step_s": flex["step_s_median"],
        "ratio_pure_rust_over_torch": flex["ratio_over_torch_eager"],
        "sampling_images_per_s": burn["sampling_images_per_s"],
        "sampling": "32 images of 32x32 per batch, 20 guided Euler steps (cfg 2, two passes a step)",
        "rounds": a.rounds,
        "timed_steps_per_round": a.steps,
        "contenders": rows,
        "srum_round_cost": scaling,
        "srum_round_fit": scaling_fit,
        "wall_s": t_start.elapsed().as_secs_f64(),
    });
    std::fs::create_dir_all(&a.out)?;
    let path = a.out.join("speed.json");
    std::fs::write(&path, serde_json::to_string_pretty(&report)? + "\n")?;
    std::fs::write(a.out.join("speed.md"), markdown(&report))?;
    println!("{}", markdown(&report));
    println!("wrote {} and speed.md", path.display());
    Ok(())
}

/// A contender against PyTorch eager round by round: each round's two medians were measured
/// minutes apart at most, so a host that slows down for a while slows both, where the
/// medians over all rounds compare steps taken at different times.
#[derive(Debug)]
struct Paired {
    /// The contender's median step over eager's, per round.
    ratios: Vec<f64>,
    /// Model FLOP/s of the contender's median step over the peak measured in the same round.
    mfus: Vec<f64>,
    /// Rounds in which the contender's median step was the shorter.
    faster: usize,
}

impl Paired {
    fn of(steps: &[f64], eager: &[f64], peaks: &[f64], flops: f64) -> Self {
        let ratios: Vec<f64> = steps.iter().zip(eager).map(|(a, b)| a / b).collect();
        Self {
            faster: ratios.iter().filter(|&&r| r < 1.0).count(),
            ratios,
            mfus: steps
                .iter()
                .zip(peaks)
                .map(|(s, p)| flops / s / 1e9 / p)
                .collect(),
        }
    }
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

/// The table of `speed.md`.
pub fn markdown(r: &Value) -> String {
    let mut s = format!(
        "# Speed: Burn against PyTorch ({}, {} threads)\n\n`{}` on {} (commit {}), {} rounds of {} timed steps per contender, contenders alternated; medians.\nTraining step: tiny preset, {}, forward + backward + AdamW, {:.1} GFLOP (analytic, `benchmarks/src/flops.rs`).\nPeak: {:.0} GFLOP/s, a 2048^3 sgemm through {} (median of one per round, each measured just before the libtorch contenders).\n\n",
        r["cpu_model"].as_str().unwrap_or("?"),
        r["threads"],
        r["command"].as_str().unwrap_or("?"),
        r["date"].as_str().unwrap_or("?"),
        r["commit"].as_str().unwrap_or("?"),
        r["rounds"],
        r["timed_steps_per_round"],
        r["batch"].as_str().unwrap_or("?"),
        f(&r["train_flops_per_step"]) / 1e9,
        f(&r["peak_gflops"]),
        r["peak_library"].as_str().unwrap_or("?"),
    );
    s += "Step, ratio and MFU: medians over every timed step of every round; round by round: the median of each round's ratio of medians (the contender and PyTorch eager run minutes apart at most), and of each round's MFU against that round's peak.\n\n";
    s += "| contender | step (s) | / torch eager | GFLOP/s | MFU | / torch eager, round by round | MFU, round by round | sampling (images/s) | max loss diff vs torch eager |\n|---|---|---|---|---|---|---|---|---|\n";
    for c in r["contenders"].as_array().into_iter().flatten() {
        s += &format!(
            "| {} | {:.3} | {:.2} | {:.1} | {:.1}% | {:.2} (faster in {} of {}) | {:.1}% | {:.1} | {:.1e} |\n",
            c["name"].as_str().unwrap_or("?"),
            f(&c["step_s_median"]),
            f(&c["ratio_over_torch_eager"]),
            f(&c["gflops"]),
            100.0 * f(&c["mfu"]),
            f(&c["ratio_median_of_rounds"]),
            c["faster_than_torch_eager_rounds"],
            r["rounds"],
            100.0 * f(&c["mfu_median_of_rounds"]),
            f(&c["sampling_images_per_s"]),
            f(&c["max_loss_diff_vs_torch_eager"]),
        );
    }
    if let Some(rows) = r["srum_round_cost"].as_array().filter(|a| !a.is_empty()) {
        s += "\nSRUM round cost on flex (generation + self-reward + training, two epochs of batch 32):\n\n| prompts | generate (s) | reward (s) | train (s) | total (s) | s per prompt |\n|---|---|---|---|---|---|\n";
        for row in rows {
            s += &format!(
                "| {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.3} |\n",
                row["prompts"],
                f(&row["generate_s"]),
                f(&row["reward_s"]),
                f(&row["train_s"]),
                f(&row["total_s"]),
                f(&row["total_s"]) / f(&row["prompts"]),
            );
        }
        let fit = &r["srum_round_fit"];
        s += &format!(
            "\nLinear fit: {:.3} s per prompt + {:.1} s, R^2 = {:.4}.\n",
            f(&fit["seconds_per_prompt"]),
            f(&fit["intercept_s"]),
            f(&fit["r2"])
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_fit_recovers_a_line_and_flags_a_curve() {
        let x = [48.0, 96.0, 192.0];
        let (m, c, r2) = fit(&x, &[2.0 + 0.5 * 48.0, 2.0 + 0.5 * 96.0, 2.0 + 0.5 * 192.0]);
        assert!((m - 0.5).abs() < 1e-12 && (c - 2.0).abs() < 1e-9 && (r2 - 1.0).abs() < 1e-12);
        let (_, _, r2) = fit(&x, &x.map(|v| v * v));
        assert!(r2 < 0.999, "{r2}");
    }

    #[test]
    fn the_recorded_command_names_the_flags_that_change_the_race() {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            a: SpeedArgs,
        }
        let parse = |args: &[&str]| {
            let v = std::iter::once("speed").chain(args.iter().copied());
            <Cli as clap::Parser>::parse_from(v).a.command()
        };
        assert_eq!(parse(&["--out", "/tmp/x"]), "cargo xtask bench speed");
        assert_eq!(
            parse(&["--no-avx512", "--rounds", "3", "--round-prompts", "8,16"]),
            "cargo xtask bench speed --rounds 3 --no-avx512 --round-prompts 8,16"
        );
        assert_eq!(
            parse(&["--no-flex", "--no-compile", "--round-prompts", ""]),
            "cargo xtask bench speed --no-compile --no-flex --round-prompts \"\""
        );
        let counts = |args: &[&str]| {
            let v = std::iter::once("speed").chain(args.iter().copied());
            <Cli as clap::Parser>::try_parse_from(v).map(|c| c.a.round_prompts)
        };
        assert_eq!(counts(&[]).unwrap(), [48, 96, 192]);
        assert_eq!(counts(&["--round-prompts", "8, 16"]).unwrap(), [8, 16]);
        assert!(counts(&["--round-prompts", ""]).unwrap().is_empty());
        assert!(counts(&["--round-prompts", "8,x"]).is_err());
        // Without flex and without libtorch no Burn contender would be left.
        let both = ["speed", "--no-flex", "--no-tch"];
        assert!(<Cli as clap::Parser>::try_parse_from(both).is_err());
    }

    #[test]
    fn paired_figures_compare_each_round_with_itself() {
        // Round 2 is slow for both; the contender is 10% faster in rounds 1 and 2 and 10%
        // slower in round 3, and its MFU uses each round's own peak (in GFLOP/s).
        let p = Paired::of(
            &[0.9, 1.8, 1.1],
            &[1.0, 2.0, 1.0],
            &[100.0, 50.0, 100.0],
            9e10,
        );
        let close = |a: &[f64], b: &[f64]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-12);
        assert!(close(&p.ratios, &[0.9, 0.9, 1.1]), "{:?}", p.ratios);
        assert!(
            close(&p.mfus, &[1.0, 1.0, 9e10 / 1.1 / 1e9 / 100.0]),
            "{:?}",
            p.mfus
        );
        assert_eq!(p.faster, 2);
        // The medians over all rounds compare the contender's 1.1 s with eager's 1.0 s, steps
        // from different rounds, and call it 10% slower; round by round it is 10% faster.
        assert_eq!(median(&[0.9, 1.8, 1.1]) / median(&[1.0, 2.0, 1.0]), 1.1);
        assert_eq!(median(&p.ratios), 0.9);
    }

    #[test]
    fn medians_take_the_middle_value() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert!(median(&[]).is_nan());
    }
}
