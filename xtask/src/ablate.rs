//! `cargo xtask ablate --grid <name|toml> --seeds N`: a grid of post-training variants from
//! the shipped base model, each trained (`trainer::srum`) and benchmarked (CompBench-style,
//! ReasonBench-style, understanding), with one row per variant and seed.
//!
//! A grid file (`configs/ablation/<name>.toml`):
//!
//! ```toml
//! [defaults]                 # dotted overrides of `srum train --print-config`, every variant
//! "prompts.count" = 1200
//! [eval]
//! compbench_samples = 4      # images per val prompt
//! reasonbench_samples = 4
//! [[variant]]
//! name = "base"
//! train = false              # benchmark the base checkpoint itself
//! [[variant]]
//! name = "sft"
//! set = { method = "sft" }   # dotted overrides of this variant
//! seeds = 3                  # default: --seeds
//! ```
//!
//! Seed `s` sets `train.seed = s` and benchmarks with image seeds starting at `42 + 1000 s`, the
//! same for every variant, so variants are compared on the same noise (paired by seed).
//!
//! Layout: runs under `runs/ablation/<grid>/<variant>-s<seed>/` (large, not committed);
//! results under `results/ablation/<grid>/<variant>/s<seed>/` (`row.json`, the three
//! benchmark summaries, the run's `metrics.csv`, `rounds.csv` and `config.toml`), then
//! `summary.csv` (one row per variant and seed) and `summary.md` (mean +- std over seeds,
//! paired deltas). A row whose `row.json` exists is not rerun, so a grid can be spread over
//! several sittings and a finished grid reruns in seconds. Sittings may run side by side
//! (`--only <variant>` each): a row being run is claimed by `runs/ablation/<grid>/<variant>-
//! s<seed>.lock` (the owner's process id) and skipped by the others; a lock whose process is gone
//! is taken over.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, ensure};
use burn::prelude::*;
use serde::Deserialize;
use trainer::srum::{SrumConfig, SrumOptions};

use crate::ablation_plot::mean_std;
use crate::bench::{SamplerArgs, Which, bench_checkpoint, read_summary, understanding};

/// The val split every generation benchmark reads; the test split for understanding.
const VAL: &str = "datasets/splits/val.tsv";
const TEST: &str = "datasets/splits/test.tsv";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Grid {
    /// Also write the issue-6 comparison of the grid's `base`, `sft` and `srum` rows to this
    /// JSON file ([`write_comparison`]); a top-level key, before the first table.
    comparison: Option<PathBuf>,
    #[serde(default)]
    defaults: toml::Table,
    #[serde(default)]
    eval: EvalSettings,
    variant: Vec<Variant>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct EvalSettings {
    compbench_samples: usize,
    reasonbench_samples: usize,
    /// Guidance of the benchmark images; unset, the variant's own `sampler.cfg_scale` (the one
    /// its SRUM candidates are drawn with), so candidates and benchmark may differ only when
    /// this is set.
    cfg_scale: Option<f32>,
}

impl Default for EvalSettings {
    fn default() -> Self {
        EvalSettings {
            compbench_samples: 4,
            reasonbench_samples: 4,
            cfg_scale: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Variant {
    name: String,
    #[serde(default = "yes")]
    train: bool,
    #[serde(default)]
    set: toml::Table,
    seeds: Option<u64>,
    /// The row the table's "vs base" deltas are taken against (default `base`): a variant
    /// trained from another base model (the dense design) names that model's own row.
    vs_base: Option<String>,
    /// What the paper reports for this row (T2I-CompBench overall, T2I-ReasonBench), for the
    /// table.
    paper: Option<toml::Table>,
}

fn yes() -> bool {
    true
}

/// Applies dotted overrides (`"train.lambda" = 0.0`) to a configuration; an unknown key is an
/// error naming it.
pub fn apply_overrides(cfg: &SrumConfig, sets: &[&toml::Table]) -> Result<SrumConfig> {
    let mut v = toml::Value::try_from(cfg)?;
    for set in sets {
        for (key, value) in *set {
            let mut at = &mut v;
            let parts: Vec<&str> = key.split('.').collect();
            for (i, part) in parts.iter().enumerate() {
                let table = at
                    .as_table_mut()
                    .with_context(|| format!("override '{key}': '{part}' is not a section"))?;
                ensure!(
                    table.contains_key(*part),
                    "override '{key}': no field '{part}' (see `srum train --print-config`)"
                );
                if i + 1 == parts.len() {
                    table.insert(part.to_string(), value.clone());
                    break;
                }
                at = table.get_mut(*part).expect("checked above");
            }
        }
    }
    let text = toml::to_string(&v)?;
    Ok(SrumConfig::from_toml(&text)?)
}

/// Finds a grid by name (`configs/ablation/<name>.toml`) or path.
fn grid_path(grid: &str) -> (PathBuf, String) {
    let p = PathBuf::from(grid);
    if p.extension().is_some_and(|e| e == "toml") {
        let name = p
            .file_stem()
            .map_or("grid".into(), |s| s.to_string_lossy().to_string());
        (p, name)
    } else {
        (
            PathBuf::from(format!("configs/ablation/{grid}.toml")),
            grid.to_string(),
        )
    }
}

/// The short hash of the commit this binary was built from (`-dirty` when code or
/// configuration differed from it; "unknown" outside a git checkout), written by `build.rs`.
/// Not the checkout's HEAD at run time: a grid that runs for hours while later commits land
/// records the code that actually produced its rows.
pub fn commit() -> String {
    env!("SRUM_BUILD_COMMIT").to_string()
}

/// Runs the grid; finished rows are skipped.
pub fn run(grid: &str, seeds: u64, only: Option<&str>) -> Result<()> {
    let (path, name) = grid_path(grid);
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("reading grid {}", path.display()))?;
    let g: Grid = toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    ensure!(!g.variant.is_empty(), "{}: no [[variant]]", path.display());
    let results = PathBuf::from("results/ablation").join(&name);
    let runs = PathBuf::from("runs/ablation").join(&name);
    std::fs::create_dir_all(&results)?;
    std::fs::create_dir_all(&runs)?;
    let t0 = Instant::now();
    let (mut done, mut skipped, mut busy) = (0, 0, 0);
    for v in &g.variant {
        if only.is_some_and(|o| o != v.name) {
            continue;
        }
        let n = v.seeds.unwrap_or(seeds);
        for seed in 0..n {
            let row_dir = results.join(&v.name).join(format!("s{seed}"));
            if row_dir.join("row.json").exists() {
                skipped += 1;
                continue;
            }
            let lock = runs.join(format!("{}-s{seed}.lock", v.name));
            let Some(_lock) = RowLock::take(&lock)? else {
                eprintln!(
                    "== {name} / {} / seed {seed}: another ablate process is running it ({}), skipped",
                    v.name,
                    lock.display()
                );
                busy += 1;
                continue;
            };
            let mut cfg = apply_overrides(&SrumConfig::default(), &[&g.defaults, &v.set])
                .with_context(|| format!("variant '{}'", v.name))?;
            cfg.train.seed = seed;
            eprintln!(
                "== {name} / {} / seed {seed} ({})",
                v.name,
                if v.train { "train + eval" } else { "eval" }
            );
            run_row(&g, v, &cfg, seed, &runs, &row_dir, &name)?;
            done += 1;
            write_summary(&g, &results)?;
        }
    }
    write_summary(&g, &results)?;
    // Nothing to draw while every row is still running elsewhere.
    if done + skipped > 0 {
        for f in crate::ablation_plot::plot_grid(&results, &vs_base(&g))? {
            eprintln!("wrote {}", f.display());
        }
    }
    let busy = if busy > 0 {
        format!(", {busy} running in another process")
    } else {
        String::new()
    };
    eprintln!(
        "{name}: {done} row(s) run, {skipped} already finished{busy}, in {:.0} s; {}",
        t0.elapsed().as_secs_f64(),
        results.join("summary.csv").display()
    );
    Ok(())
}

/// A claim on one row's run folder, so two `ablate` processes never train the same row at
/// once (parallel sittings on disjoint rows are the intended use). The file holds the owner's
/// process id and goes when the claim is dropped; a lock left by a process that no longer runs
/// (killed, machine restarted) is taken over, so a dead sitting never blocks a rerun.
struct RowLock(PathBuf);

impl RowLock {
    /// The claim, or `None` when a live process holds the row.
    fn take(path: &Path) -> Result<Option<RowLock>> {
        loop {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
            {
                Ok(mut f) => {
                    use std::io::Write;
                    write!(f, "{}", std::process::id())?;
                    return Ok(Some(RowLock(path.to_path_buf())));
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let owner = std::fs::read_to_string(path)
                        .ok()
                        .and_then(|s| s.trim().parse::<u32>().ok());
                    if owner.is_some_and(process_alive) {
                        return Ok(None);
                    }
                    eprintln!(
                        "{}: left by a process that is gone ({owner:?}); taking the row over",
                        path.display()
                    );
                    std::fs::remove_file(path)
                        .with_context(|| format!("removing stale lock {}", path.display()))?;
                }
                Err(e) => return Err(e).with_context(|| format!("creating {}", path.display())),
            }
        }
    }
}

impl Drop for RowLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Whether process `pid` runs on this machine (`/proc` on Linux, `kill -0` elsewhere).
fn process_alive(pid: u32) -> bool {
    if Path::new("/proc/self").exists() {
        return Path::new(&format!("/proc/{pid}")).exists();
    }
    std::process::Command::new("kill")
        .args(["-0", &pid.to_string()])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn run_row(
    g: &Grid,
    v: &Variant,
    cfg: &SrumConfig,
    seed: u64,
    runs: &Path,
    row_dir: &Path,
    grid: &str,
) -> Result<()> {
    let t0 = Instant::now();
    std::fs::create_dir_all(row_dir)?;
    let mut row = serde_json::Map::new();
    let checkpoint = if v.train {
        let dir = runs.join(format!("{}-s{seed}", v.name));
        let opts = SrumOptions {
            resume: dir.join("config.toml").exists(),
            progress: true,
            poison_step: None,
        };
        let out = trainer::srum::run(cfg, &dir, &Device::flex(), &opts)
            .with_context(|| format!("training {}", dir.display()))?;
        for f in ["metrics.csv", "rounds.csv", "config.toml"] {
            std::fs::copy(dir.join(f), row_dir.join(f))?;
        }
        let sum =
            |f: fn(&trainer::srum::RoundStats) -> f64| -> f64 { out.rounds.iter().map(f).sum() };
        row.insert("generate_s".into(), sum(|s| s.generate_s).into());
        row.insert("reward_s".into(), sum(|s| s.reward_s).into());
        row.insert("train_s".into(), sum(|s| s.train_s).into());
        if let Some(s) = out.rounds.last() {
            row.insert("mean_global".into(), s.mean_global.map(f64::from).into());
            row.insert("mean_weight".into(), s.mean_weight.map(f64::from).into());
            row.insert("trained_on".into(), s.trained_on.into());
        }
        dir.join("model.safetensors")
    } else {
        cfg.base.clone()
    };
    let image_seed = bench_compbench::FIRST_SEED + 1000 * seed;
    let sampler = eval_sampler(g, cfg);
    let cmd = format!("cargo xtask ablate --grid {grid} --only {}", v.name);
    let t_eval = Instant::now();
    let cb = bench_checkpoint(
        Which::Compbench,
        &checkpoint,
        Path::new(VAL),
        g.eval.compbench_samples,
        image_seed,
        sampler,
        &row_dir.join("compbench"),
        cmd.clone(),
    )?;
    let rb = bench_checkpoint(
        Which::Reasonbench,
        &checkpoint,
        Path::new(VAL),
        g.eval.reasonbench_samples,
        image_seed,
        sampler,
        &row_dir.join("reasonbench"),
        cmd.clone(),
    )?;
    understanding(&checkpoint, Path::new(TEST), &row_dir.join("understanding"))?;
    let und = read_summary(&row_dir.join("understanding"))?;
    row.insert("eval_s".into(), t_eval.elapsed().as_secs_f64().into());
    row.insert("variant".into(), v.name.clone().into());
    row.insert("seed".into(), seed.into());
    row.insert("compbench_overall".into(), cb["overall"].clone());
    row.insert("reasonbench_overall".into(), rb["overall"].clone());
    row.insert(
        "understanding".into(),
        (und["prompt_match"].as_f64().unwrap_or(f64::NAN) * 100.0).into(),
    );
    for s in [&cb, &rb] {
        if let Some(cats) = s["categories"].as_object() {
            for (k, c) in cats {
                row.insert(k.clone(), c["score"].clone());
            }
        }
    }
    row.insert("commit".into(), commit().into());
    row.insert("command".into(), cmd.into());
    row.insert("wall_s".into(), t0.elapsed().as_secs_f64().into());
    std::fs::write(
        row_dir.join("row.json"),
        serde_json::to_string_pretty(&row)? + "\n",
    )?;
    Ok(())
}

/// The CompBench-style categories, in the order of the tables.
pub const CB: [&str; 8] = [
    "color",
    "shape",
    "texture",
    "spatial",
    "3d_spatial",
    "numeracy",
    "non_spatial",
    "complex",
];
/// The ReasonBench-style dimensions.
pub const RB: [&str; 4] = ["knowledge", "arithmetic", "geometry", "composite"];

/// Every finished row of a results folder, by variant in grid order.
fn rows(g: &Grid, results: &Path) -> Result<Vec<serde_json::Value>> {
    let mut out = Vec::new();
    for v in &g.variant {
        let dir = results.join(&v.name);
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut seeds: Vec<PathBuf> = rd
            .filter_map(|e| e.ok().map(|e| e.path().join("row.json")))
            .filter(|p| p.exists())
            .collect();
        seeds.sort();
        for p in seeds {
            out.push(serde_json::from_str(&std::fs::read_to_string(&p)?)?);
        }
    }
    Ok(out)
}

fn num(r: &serde_json::Value, k: &str) -> f64 {
    r[k].as_f64().unwrap_or(f64::NAN)
}

/// Writes `summary.csv` and `summary.md` from the rows on disk.
fn write_summary(g: &Grid, results: &Path) -> Result<()> {
    let rows = rows(g, results)?;
    let mut cols = vec![
        "variant",
        "seed",
        "compbench_overall",
        "reasonbench_overall",
        "understanding",
    ];
    cols.extend(CB);
    cols.extend(RB);
    cols.extend(["generate_s", "reward_s", "train_s", "eval_s", "commit"]);
    let mut csv = cols.join(",") + "\n";
    for r in &rows {
        let cells: Vec<String> = cols
            .iter()
            .map(|c| match &r[*c] {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Number(n) => {
                    let x = n.as_f64().unwrap_or(f64::NAN);
                    if x.fract() == 0.0 && x.abs() < 1e9 {
                        format!("{x}")
                    } else {
                        format!("{x:.3}")
                    }
                }
                _ => String::new(),
            })
            .collect();
        csv += &(cells.join(",") + "\n");
    }
    std::fs::write(results.join("summary.csv"), csv)?;
    let name = results
        .file_name()
        .map_or("grid".into(), |n| n.to_string_lossy().to_string());
    let md = summary_markdown(g, &name, &rows);
    std::fs::write(results.join("summary.md"), &md)?;
    update_readme(Path::new(README), &name, &md)?;
    if let Some(path) = &g.comparison
        && let Some(c) = comparison(g, &name, &rows)?
    {
        std::fs::write(path, serde_json::to_string_pretty(&c)? + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// The sampler of a row's benchmark images: the variant's own sampler, at the grid's
/// `[eval] cfg_scale` when it sets one.
fn eval_sampler(g: &Grid, cfg: &SrumConfig) -> SamplerArgs {
    SamplerArgs {
        steps: cfg.sampler.steps,
        cfg_scale: g.eval.cfg_scale.unwrap_or(cfg.sampler.cfg_scale),
        cfg_min_t: cfg.sampler.cfg_min_t,
        heun: cfg.sampler.heun,
    }
}

/// Issue 6's bars: SRUM over base and over SFT (CompBench-style overall, every seed), SRUM
/// over base (ReasonBench-style), and the largest change of understanding, in points; and the
/// longest round, in seconds.
const BARS: [(&str, f64); 5] = [
    ("srum_minus_base", 5.0),
    ("srum_minus_sft", 2.0),
    ("reason_srum_minus_base", 3.0),
    ("und_change_max", 1.0),
    ("round_wall_s_max", 900.0),
];

/// The comparison of the `base`, `sft` and `srum` rows seed by seed (`results/srum-vs-base.json`
/// for the grid on the shipped base): per seed the scores in points (0-100) and the wall time
/// of SRUM's round (generate, reward, train, evaluate), then the mean deltas and, per bar,
/// whether it is met. `None` until some seed has all three rows.
fn comparison(
    g: &Grid,
    grid: &str,
    rows: &[serde_json::Value],
) -> Result<Option<serde_json::Value>> {
    use serde_json::json;
    let row = |variant: &str, seed: u64| {
        rows.iter()
            .find(|r| r["variant"] == variant && r["seed"].as_u64() == Some(seed))
    };
    let mut seeds: Vec<u64> = rows.iter().filter_map(|r| r["seed"].as_u64()).collect();
    seeds.sort_unstable();
    seeds.dedup();
    let mut per_seed = Vec::new();
    for seed in seeds {
        let (Some(b), Some(f), Some(s)) = (row("base", seed), row("sft", seed), row("srum", seed))
        else {
            continue;
        };
        let phase = |k: &str| num(s, k);
        let phases = ["generate_s", "reward_s", "train_s", "eval_s"];
        per_seed.push(json!({
            "seed": seed,
            "base_overall": num(b, "compbench_overall"),
            "sft_overall": num(f, "compbench_overall"),
            "srum_overall": num(s, "compbench_overall"),
            "reason_base": num(b, "reasonbench_overall"),
            "reason_sft": num(f, "reasonbench_overall"),
            "reason_srum": num(s, "reasonbench_overall"),
            "und_base": num(b, "understanding"),
            "und_sft": num(f, "understanding"),
            "und_srum": num(s, "understanding"),
            "round_wall_s": phases.iter().map(|k| phase(k)).sum::<f64>(),
            "round_phases_s": phases.iter().map(|k| (k.trim_end_matches("_s"), phase(k)))
                .collect::<BTreeMap<_, _>>(),
            "commit": s["commit"],
        }));
    }
    if per_seed.is_empty() {
        return Ok(None);
    }
    let each = |f: &dyn Fn(&serde_json::Value) -> f64| per_seed.iter().map(f).collect::<Vec<f64>>();
    let d = |a: &str, b: &str| each(&|r| num(r, a) - num(r, b));
    let cb_base = d("srum_overall", "base_overall");
    let cb_sft = d("srum_overall", "sft_overall");
    let rb_base = d("reason_srum", "reason_base");
    let und = each(&|r| (num(r, "und_srum") - num(r, "und_base")).abs());
    let wall = each(&|r| num(r, "round_wall_s"));
    let mean = |xs: &[f64]| mean_std(xs).0;
    let max = |xs: &[f64]| xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let min = |xs: &[f64]| xs.iter().copied().fold(f64::INFINITY, f64::min);
    let bar = |k: &str| BARS.iter().find(|(n, _)| *n == k).map_or(f64::NAN, |b| b.1);
    let cfg = apply_overrides(&SrumConfig::default(), &[&g.defaults])?;
    Ok(Some(json!({
        "grid": grid,
        "command": format!("cargo xtask ablate --grid {grid} --seeds {}", per_seed.len()),
        "base_checkpoint": cfg.base,
        "val_split": VAL,
        "understanding_split": TEST,
        "seeds": per_seed.iter().map(|r| r["seed"].clone()).collect::<Vec<_>>(),
        "per_seed": per_seed,
        "mean": {
            "srum_minus_base": mean(&cb_base),
            "srum_minus_sft": mean(&cb_sft),
            "reason_srum_minus_base": mean(&rb_base),
            "und_change_max": max(&und),
            "round_wall_s_max": max(&wall),
        },
        "bars": BARS.iter().map(|(k, v)| (*k, *v)).collect::<BTreeMap<_, _>>(),
        "met": {
            "srum_minus_base": mean(&cb_base) >= bar("srum_minus_base")
                && min(&cb_base) > 0.0,
            "srum_minus_sft": mean(&cb_sft) >= bar("srum_minus_sft") && min(&cb_sft) > 0.0,
            "reason_srum_minus_base": mean(&rb_base) >= bar("reason_srum_minus_base"),
            "und_change_max": max(&und) <= bar("und_change_max"),
            "round_wall_s_max": max(&wall) <= bar("round_wall_s_max"),
            "three_seeds": per_seed.len() >= 3,
        },
    })))
}

/// The results README whose generated sections [`update_readme`] rewrites.
pub const README: &str = "results/README.md";

/// Replaces the text between `<!-- ablation:<grid> -->` and `<!-- /ablation:<grid> -->` in
/// `readme` with `md`; a README without the markers is left alone.
pub fn update_readme(readme: &Path, grid: &str, md: &str) -> Result<()> {
    let Ok(text) = std::fs::read_to_string(readme) else {
        return Ok(());
    };
    let (open, close) = (
        format!("<!-- ablation:{grid} -->"),
        format!("<!-- /ablation:{grid} -->"),
    );
    let (Some(a), Some(b)) = (text.find(&open), text.find(&close)) else {
        return Ok(());
    };
    ensure!(a < b, "{}: {close} comes before {open}", readme.display());
    let new = format!("{}{open}\n{md}{}", &text[..a], &text[b..]);
    if new != text {
        std::fs::write(readme, new)?;
    }
    Ok(())
}

/// Each variant's `vs_base`, where it names one.
fn vs_base(g: &Grid) -> BTreeMap<String, String> {
    g.variant
        .iter()
        .filter_map(|v| Some((v.name.clone(), v.vs_base.clone()?)))
        .collect()
}

/// The grid whose results are in `results` (`configs/ablation/<folder name>.toml`), if any.
fn grid_of(results: &Path) -> Result<Option<Grid>> {
    let Some(name) = results.file_name().map(|n| n.to_string_lossy().to_string()) else {
        return Ok(None);
    };
    let (path, _) = grid_path(&name);
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(None);
    };
    let g = toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    Ok(Some(g))
}

/// The `vs_base` map of the grid whose results are in `results`; empty without its TOML.
pub fn vs_base_of(results: &Path) -> Result<BTreeMap<String, String>> {
    Ok(grid_of(results)?.as_ref().map(vs_base).unwrap_or_default())
}

/// Regenerates `summary.csv`, `summary.md` and the README section of the grid in `results`
/// from its `row.json` files (`cargo xtask plot`); grids without a TOML are skipped.
pub fn resummarise(results: &Path) -> Result<bool> {
    let Some(g) = grid_of(results)? else {
        return Ok(false);
    };
    write_summary(&g, results)?;
    Ok(true)
}

/// Mean +- std per variant, and paired deltas (same seed) against base and SFT.
fn summary_markdown(g: &Grid, grid: &str, rows: &[serde_json::Value]) -> String {
    let by: BTreeMap<(String, u64), &serde_json::Value> = rows
        .iter()
        .map(|r| {
            (
                (
                    r["variant"].as_str().unwrap_or("").to_string(),
                    r["seed"].as_u64().unwrap_or(0),
                ),
                r,
            )
        })
        .collect();
    let mut md = String::from(
        "| variant | seeds | CompBench overall | ReasonBench overall | understanding | \
         CompBench vs base (per seed) | CompBench vs SFT (per seed) | ReasonBench vs base | \
         ReasonBench vs SFT | understanding vs base |\n\
         |---|---:|---:|---:|---:|---|---|---|---|---:|\n",
    );
    for v in &g.variant {
        let mine: Vec<&&serde_json::Value> = by
            .iter()
            .filter(|((n, _), _)| *n == v.name)
            .map(|(_, r)| r)
            .collect();
        if mine.is_empty() {
            continue;
        }
        let col = |k: &str| mine.iter().map(|r| num(r, k)).collect::<Vec<f64>>();
        let fmt = |xs: &[f64]| {
            let (m, s) = mean_std(xs);
            if xs.len() > 1 {
                format!("{m:.1} ± {s:.1}")
            } else {
                format!("{m:.1}")
            }
        };
        // Paired by seed; the base row gets none (it is what the others are compared with).
        let delta = |other: &str, k: &str, each: bool| -> String {
            let other = if other == "base" {
                v.vs_base.as_deref().unwrap_or("base")
            } else {
                other
            };
            if v.name == other || v.name == "base" || (other == "sft" && v.vs_base.is_some()) {
                return String::new();
            }
            let d: Vec<f64> = mine
                .iter()
                .filter_map(|r| {
                    let s = r["seed"].as_u64()?;
                    let o = by.get(&(other.to_string(), s))?;
                    Some(num(r, k) - num(o, k))
                })
                .collect();
            if d.is_empty() {
                return String::new();
            }
            let (m, _) = mean_std(&d);
            if !each {
                return format!("{m:+.1}");
            }
            let per: Vec<String> = d.iter().map(|x| format!("{x:+.1}")).collect();
            format!("{m:+.1} ({})", per.join(", "))
        };
        md += &format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            v.name,
            mine.len(),
            fmt(&col("compbench_overall")),
            fmt(&col("reasonbench_overall")),
            fmt(&col("understanding")),
            delta("base", "compbench_overall", true),
            delta("sft", "compbench_overall", true),
            delta("base", "reasonbench_overall", true),
            delta("sft", "reasonbench_overall", true),
            delta("base", "understanding", false),
        );
    }
    for v in g.variant.iter().filter(|v| v.vs_base.is_some()) {
        md += &format!(
            "\n`{}` starts from another base model: its \"vs base\" deltas are against `{}`, and \
             it has no SFT to compare with.\n",
            v.name,
            v.vs_base.as_deref().unwrap_or_default()
        );
    }
    md += "\nPer category (mean over seeds):\n\n| variant |";
    for c in CB.iter().chain(RB.iter()) {
        md += &format!(" {c} |");
    }
    md += "\n|---|";
    md += &"---:|".repeat(CB.len() + RB.len());
    md += "\n";
    for v in &g.variant {
        let mine: Vec<&serde_json::Value> = rows
            .iter()
            .filter(|r| r["variant"].as_str() == Some(&v.name))
            .collect();
        if mine.is_empty() {
            continue;
        }
        md += &format!("| {} |", v.name);
        for c in CB.iter().chain(RB.iter()) {
            let xs: Vec<f64> = mine.iter().map(|r| num(r, c)).collect();
            md += &format!(" {:.1} |", mean_std(&xs).0);
        }
        md += "\n";
    }
    if g.variant.iter().any(|v| v.paper.is_some()) {
        md += "\nThe paper's numbers (T2I-CompBench overall, T2I-ReasonBench; a 7B BAGEL, not comparable in level, only in direction):\n\n| variant | CompBench | ReasonBench |\n|---|---:|---:|\n";
        for v in &g.variant {
            if let Some(p) = &v.paper {
                let get = |k: &str| {
                    p.get(k)
                        .and_then(|x| x.as_float().or(x.as_integer().map(|i| i as f64)))
                        .map_or("-".into(), |x| format!("{x:.2}"))
                };
                md += &format!(
                    "| {} | {} | {} |\n",
                    v.name,
                    get("compbench"),
                    get("reasonbench")
                );
            }
        }
    }
    // Which command and commit produced each row.
    md += &format!(
        "\nRows produced by `cargo xtask ablate --grid {grid}` (one row alone: `--only <variant>`), \
         at these commits:\n\n| variant | seeds | commit |\n|---|---|---|\n"
    );
    for v in &g.variant {
        let mut by_commit: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for r in rows
            .iter()
            .filter(|r| r["variant"].as_str() == Some(&v.name))
        {
            by_commit
                .entry(r["commit"].as_str().unwrap_or("unknown").to_string())
                .or_default()
                .push(r["seed"].as_u64().map_or("?".into(), |s| s.to_string()));
        }
        for (c, seeds) in by_commit {
            md += &format!("| {} | {} | {c} |\n", v.name, seeds.join(", "));
        }
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_reach_nested_fields_and_unknown_keys_fail() {
        let mut set = toml::Table::new();
        set.insert("train.lambda".into(), toml::Value::Float(0.0));
        set.insert("method".into(), toml::Value::String("sft".into()));
        set.insert("reward.use_global".into(), toml::Value::Boolean(false));
        let c = apply_overrides(&SrumConfig::default(), &[&set]).unwrap();
        assert_eq!(c.train.lambda, 0.0);
        assert_eq!(c.method, trainer::srum::Method::Sft);
        assert!(!c.reward.use_global && c.reward.use_local);
        let mut bad = toml::Table::new();
        bad.insert("train.lamda".into(), toml::Value::Float(0.0));
        let e = apply_overrides(&SrumConfig::default(), &[&bad]).unwrap_err();
        assert!(e.to_string().contains("lamda"), "{e}");
        // Values are still validated: a signed map deeper than lambda is refused.
        let mut unsafe_ = toml::Table::new();
        unsafe_.insert("reward.map".into(), toml::Value::String("signed".into()));
        unsafe_.insert("train.lambda".into(), toml::Value::Float(0.1));
        assert!(apply_overrides(&SrumConfig::default(), &[&unsafe_]).is_err());
    }

    /// The issue-6 comparison pairs rows by seed, ignores a seed without all three rows, and
    /// a bar counts as met only when the mean reaches it and every seed is positive.
    #[test]
    fn the_comparison_pairs_rows_by_seed_and_checks_every_bar() {
        let g: Grid = toml::from_str(
            "comparison = \"x.json\"\n[[variant]]\nname = \"base\"\ntrain = false\n\
             [[variant]]\nname = \"sft\"\n[[variant]]\nname = \"srum\"\n",
        )
        .unwrap();
        let row = |v: &str, seed: u64, cb: f64, rb: f64, und: f64| {
            serde_json::json!({
                "variant": v, "seed": seed, "compbench_overall": cb,
                "reasonbench_overall": rb, "understanding": und,
                "generate_s": 100.0, "reward_s": 50.0, "train_s": 200.0, "eval_s": 30.0 + seed as f64,
            })
        };
        let rows = vec![
            row("base", 0, 10.0, 20.0, 80.0),
            row("base", 1, 12.0, 22.0, 80.0),
            row("base", 2, 11.0, 21.0, 80.0),
            row("sft", 0, 12.0, 20.0, 80.5),
            row("sft", 1, 13.0, 22.0, 80.0),
            row("srum", 0, 18.0, 25.0, 79.5),
            row("srum", 1, 16.0, 24.0, 81.5),
            // Seed 2 has no SFT row: left out.
            row("srum", 2, 30.0, 40.0, 80.0),
        ];
        let c = comparison(&g, "t", &rows).unwrap().unwrap();
        assert_eq!(c["seeds"], serde_json::json!([0, 1]));
        assert_eq!(c["per_seed"][1]["srum_overall"], 16.0);
        assert_eq!(c["per_seed"][0]["round_wall_s"], 380.0);
        assert_eq!(c["per_seed"][1]["round_wall_s"], 381.0);
        let m = &c["mean"];
        // SRUM - base: (8 + 4) / 2; - SFT: (6 + 3) / 2; ReasonBench: (5 + 2) / 2.
        assert_eq!(m["srum_minus_base"], 6.0);
        assert_eq!(m["srum_minus_sft"], 4.5);
        assert_eq!(m["reason_srum_minus_base"], 3.5);
        assert_eq!(m["und_change_max"], 1.5);
        let met = &c["met"];
        assert_eq!(met["srum_minus_base"], true);
        assert_eq!(met["srum_minus_sft"], true);
        assert_eq!(met["und_change_max"], false);
        assert_eq!(met["round_wall_s_max"], true);
        assert_eq!(met["three_seeds"], false);
        // A mean above the bar with one seed below zero is not met.
        let mut rows = rows;
        rows[6] = row("srum", 1, 11.0, 24.0, 80.0);
        rows[0] = row("base", 0, 2.0, 20.0, 80.0);
        let c = comparison(&g, "t", &rows).unwrap().unwrap();
        assert_eq!(c["mean"]["srum_minus_base"], 7.5);
        assert_eq!(c["met"]["srum_minus_base"], false);
        assert!(comparison(&g, "t", &rows[..3]).unwrap().is_none());
    }

    /// A grid's `[eval] cfg_scale` sets the benchmark's guidance apart from the candidates'.
    #[test]
    fn the_benchmark_guidance_follows_the_variant_unless_the_grid_sets_its_own() {
        let text = "[defaults]\n\"sampler.cfg_scale\" = 2.0\n[[variant]]\nname = \"srum\"\n";
        let g: Grid = toml::from_str(text).unwrap();
        let c = apply_overrides(&SrumConfig::default(), &[&g.defaults]).unwrap();
        assert_eq!(c.sampler.cfg_scale, 2.0);
        assert_eq!(eval_sampler(&g, &c).cfg_scale, 2.0);
        let g: Grid = toml::from_str(&format!("{text}[eval]\ncfg_scale = 8.0\n")).unwrap();
        let c = apply_overrides(&SrumConfig::default(), &[&g.defaults]).unwrap();
        assert_eq!(c.sampler.cfg_scale, 2.0, "the candidates keep theirs");
        let e = eval_sampler(&g, &c);
        assert_eq!(
            (e.cfg_scale, e.steps, e.heun),
            (8.0, c.sampler.steps, false)
        );
    }

    #[test]
    fn every_committed_grid_parses_and_its_overrides_apply() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/ablation");
        let (mut n, mut checked) = (0, 0);
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let g: Grid = toml::from_str(&std::fs::read_to_string(&p).unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            for v in &g.variant {
                let c = apply_overrides(&SrumConfig::default(), &[&g.defaults, &v.set])
                    .unwrap_or_else(|e| panic!("{} / {}: {e:#}", p.display(), v.name));
                assert!(c.prompts.split.ends_with("train.tsv"), "{}", v.name);
                // Every base model a grid names is committed.
                let base = Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("..")
                    .join(&c.base);
                assert!(
                    base.exists(),
                    "{} / {}: {}",
                    p.display(),
                    v.name,
                    base.display()
                );
                if let Some(b) = &v.vs_base {
                    assert!(
                        g.variant.iter().any(|w| &w.name == b),
                        "{}: vs_base {b}",
                        v.name
                    );
                }
                // Rerunning a committed row must sample as it did: every committed benchmark
                // summary of the variant names the sampler the grid resolves to now (a grid
                // made before a default changed pins the old value).
                let stem = p.file_stem().unwrap().to_string_lossy();
                let rows = Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("../results/ablation")
                    .join(&*stem)
                    .join(&v.name);
                let want = format!("({})", eval_sampler(&g, &c).config().describe());
                for seed in std::fs::read_dir(&rows).into_iter().flatten() {
                    let s = seed.unwrap().path().join("compbench/summary.json");
                    let Ok(text) = std::fs::read_to_string(&s) else {
                        continue;
                    };
                    let j: serde_json::Value = serde_json::from_str(&text).unwrap();
                    let got = j["generator"].as_str().unwrap_or_default();
                    assert!(
                        got.ends_with(&want),
                        "{}: {got} (grid: {want})",
                        s.display()
                    );
                    checked += 1;
                }
            }
            n += 1;
        }
        assert!(n >= 3, "{n} grids");
        assert!(checked >= 30, "{checked} committed rows checked");
    }

    #[test]
    fn a_row_held_by_a_live_process_is_skipped_and_a_dead_ones_lock_taken_over() {
        let dir = std::env::temp_dir().join(format!("xtask-lock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("srum-s0.lock");
        let held = RowLock::take(&p).unwrap().expect("a free row");
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            std::process::id().to_string()
        );
        assert!(
            RowLock::take(&p).unwrap().is_none(),
            "held by this (live) process"
        );
        drop(held);
        assert!(!p.exists(), "dropping the claim removes the lock");
        // A lock left by a process that has exited is taken over.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        std::fs::write(&p, dead.to_string()).unwrap();
        let taken = RowLock::take(&p)
            .unwrap()
            .expect("a stale lock is taken over");
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            std::process::id().to_string()
        );
        drop(taken);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn the_table_pairs_deltas_by_seed() {
        let g: Grid = toml::from_str(
            "[[variant]]\nname = \"base\"\ntrain = false\n[[variant]]\nname = \"srum\"\n",
        )
        .unwrap();
        let row = |v: &str, seed: u64, cb: f64| {
            serde_json::json!({"variant": v, "seed": seed, "compbench_overall": cb,
                "reasonbench_overall": 10.0, "understanding": 60.0})
        };
        let rows = vec![
            row("base", 0, 3.0),
            row("base", 1, 5.0),
            row("srum", 0, 4.0),
            row("srum", 1, 8.0),
        ];
        let md = summary_markdown(&g, "test", &rows);
        // srum - base per seed: +1.0 and +3.0, mean +2.0; means 4.0 +- 1.4 and 6.0 +- 2.8.
        assert!(md.contains("+2.0 (+1.0, +3.0)"), "{md}");
        assert!(md.contains("| base | 2 | 4.0 ± 1.4 |"), "{md}");
        assert!(md.contains("| srum | 2 | 6.0 ± 2.8 |"), "{md}");
        // Each row's commit is listed (these rows have none).
        assert!(md.contains("| srum | 0, 1 | unknown |"), "{md}");
        // A variant with its own base is compared with that row, not with `base`.
        let g: Grid = toml::from_str(
            "[[variant]]\nname = \"base\"\ntrain = false\n[[variant]]\nname = \"dense-base\"\n\
             train = false\n[[variant]]\nname = \"dense\"\nvs_base = \"dense-base\"\n",
        )
        .unwrap();
        let rows = vec![
            row("base", 0, 3.0),
            row("dense-base", 0, 1.0),
            row("dense", 0, 1.5),
        ];
        let md = summary_markdown(&g, "test", &rows);
        assert!(
            md.contains("| dense-base | 1 | 1.0 | 10.0 | 60.0 | -2.0 (-2.0) |"),
            "{md}"
        );
        assert!(
            md.contains("| dense | 1 | 1.5 | 10.0 | 60.0 | +0.5 (+0.5) |"),
            "{md}"
        );
    }

    #[test]
    fn the_readme_section_between_the_markers_is_replaced_and_the_rest_kept() {
        let dir = std::env::temp_dir().join(format!("srum-readme-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("README.md");
        let text = "intro\n<!-- ablation:g -->\nold table\n<!-- /ablation:g -->\noutro\n";
        std::fs::write(&p, text).unwrap();
        update_readme(&p, "g", "| new |\n").unwrap();
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            "intro\n<!-- ablation:g -->\n| new |\n<!-- /ablation:g -->\noutro\n"
        );
        // Another grid's markers are not touched; a README without markers is left alone.
        update_readme(&p, "other", "x").unwrap();
        assert!(std::fs::read_to_string(&p).unwrap().contains("| new |"));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
