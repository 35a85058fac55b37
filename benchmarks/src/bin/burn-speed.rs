//! The Burn side of `cargo xtask bench speed`: times training steps or sampling on one
//! backend and prints one JSON object on stdout; `export` writes the inputs the PyTorch
//! reference needs. One process per measurement, so the race can alternate Burn and PyTorch
//! runs (A B A B ...).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use benchmarks::race::{self, RaceInputs};
use clap::{Parser, Subcommand};
use trainer::device::{DeviceKind, device};
use umm_model::UmmConfig;

#[derive(Parser, Debug)]
#[command(about = "Time the tiny model's training step or sampler on one backend")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Write config.json, init.safetensors and inputs.safetensors for the reference.
    Export {
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        shape: Shape,
    },
    /// Time training steps; prints {"backend", "step_s": [...], "phases_s": [[forward,
    /// backward, update], ...], "loss": [...], "flops"}.
    Train {
        #[command(flatten)]
        shape: Shape,
        #[arg(long, value_enum, default_value = "cpu")]
        device: DeviceKind,
        /// Untimed steps first.
        #[arg(long, default_value_t = 2)]
        warmup: usize,
        /// Timed steps.
        #[arg(long, default_value_t = 5)]
        steps: usize,
    },
    /// Time sampling the batch; prints {"backend", "batch_s": [...], "minor_faults", "images",
    /// "flops"} (`minor_faults`: the process's page faults during the timed batches, from
    /// /proc/self/stat; null off Linux).
    Sample {
        #[command(flatten)]
        shape: Shape,
        #[arg(long, value_enum, default_value = "cpu")]
        device: DeviceKind,
        /// Euler steps per image (two guided passes each).
        #[arg(long, default_value_t = 20)]
        euler_steps: usize,
        #[arg(long, default_value_t = 2.0)]
        cfg_scale: f32,
        #[arg(long, default_value_t = 1)]
        warmup: usize,
        /// Timed batches.
        #[arg(long, default_value_t = 2)]
        reps: usize,
    },
}

#[derive(clap::Args, Debug)]
struct Shape {
    /// Model preset.
    #[arg(long, default_value = "tiny")]
    preset: String,
    /// Examples per batch (each of understanding and generation).
    #[arg(long, default_value_t = 32)]
    batch: usize,
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Cmd::Export { out, shape } => {
            let cfg = UmmConfig::preset(&shape.preset)?;
            race::export(&out, &cfg, shape.batch)?;
            eprintln!("wrote {}", out.display());
        }
        Cmd::Train {
            shape,
            device: kind,
            warmup,
            steps,
        } => {
            let cfg = UmmConfig::preset(&shape.preset)?;
            let dev = device(kind)?.autodiff();
            let inputs = RaceInputs::new(&cfg, shape.batch, &dev)?;
            let mut model = race::fresh(&cfg, &dev);
            let mut optim = race::optimizer();
            let (mut times, mut losses, mut phases) = (Vec::new(), Vec::new(), Vec::new());
            for i in 0..warmup + steps {
                let t0 = Instant::now();
                let (m, loss, p) = race::step_phases(model, &mut optim, &inputs);
                benchmarks::sync(&dev);
                model = m;
                if i >= warmup {
                    times.push(t0.elapsed().as_secs_f64());
                    phases.push(p);
                }
                losses.push(loss);
            }
            let out = serde_json::json!({
                "backend": kind.name(),
                "step_s": times,
                "phases_s": phases,
                "loss": losses,
                "flops": inputs.train_flops(&cfg),
            });
            println!("{out}");
        }
        Cmd::Sample {
            shape,
            device: kind,
            euler_steps,
            cfg_scale,
            warmup,
            reps,
        } => {
            let cfg = UmmConfig::preset(&shape.preset)?;
            let dev = device(kind)?;
            let inputs = RaceInputs::new(&cfg, shape.batch, &dev)?;
            let model = race::fresh(&cfg, &dev);
            let mut times = Vec::new();
            let mut checksum = 0.0;
            let mut faults = None;
            for i in 0..warmup + reps {
                if i == warmup {
                    faults = minor_faults();
                }
                let t0 = Instant::now();
                let x = race::sample(&model, &inputs, euler_steps, cfg_scale);
                if i >= warmup {
                    times.push(t0.elapsed().as_secs_f64());
                }
                checksum = x.abs().mean().into_scalar::<f32>();
            }
            let faults = faults.zip(minor_faults()).map(|(a, b)| b - a);
            let out = serde_json::json!({
                "backend": kind.name(),
                "batch_s": times,
                "minor_faults": faults,
                "images": shape.batch,
                "mean_abs": checksum,
                "flops": inputs.sample_flops(&cfg, euler_steps),
            });
            println!("{out}");
        }
    }
    Ok(())
}

/// The process's minor page faults so far (field 10 of /proc/self/stat), on Linux.
fn minor_faults() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count after it.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(7)?.parse().ok()
}
