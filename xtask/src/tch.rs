//! `cargo xtask tch -- <srum args>`: run `srum` on burn's libtorch backend in one command.
//!
//! burn-tch 0.22 needs PyTorch 2.9.0's libraries exactly. This sets up (once) a virtual
//! environment `.venv-torch` with the torch 2.9.0 wheel and its dependencies (about 6.7 GB:
//! the wheel's `libtorch.so` links the CUDA libraries even for CPU work, so the slimmer
//! `--no-deps` install does not load here), builds `srum` with the `tch` feature into
//! `target/tch` (its own target folder, so the default build is not disturbed) with `LIBTORCH`
//! pointing at the wheel, and runs it with `LD_LIBRARY_PATH` at the wheel's `torch/lib`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

const VENV: &str = ".venv-torch";
const TORCH: &str = "torch==2.9.0";

fn status(cmd: &mut Command) -> Result<()> {
    let s = cmd
        .status()
        .with_context(|| format!("cannot start {cmd:?}"))?;
    if !s.success() {
        bail!("{cmd:?} failed ({s})");
    }
    Ok(())
}

fn torch_lib(venv: &Path) -> Result<PathBuf> {
    let lib = venv.join("lib");
    for e in std::fs::read_dir(&lib).with_context(|| format!("cannot read {}", lib.display()))? {
        let p = e?.path().join("site-packages/torch/lib");
        if p.join("libtorch_cpu.so").exists() {
            return Ok(p);
        }
    }
    bail!("no torch/lib with libtorch_cpu.so under {}", lib.display())
}

/// Installs torch if needed, builds srum with `tch`, runs it with `args`.
pub fn run(args: &[String]) -> Result<()> {
    let venv = PathBuf::from(VENV);
    let py = venv.join("bin/python");
    if torch_lib(&venv).is_err() {
        eprintln!("setting up {VENV} with {TORCH} (once; about 6.7 GB)");
        status(Command::new("python3").args(["-m", "venv", VENV]))?;
        status(Command::new(&py).args(["-m", "pip", "install", TORCH]))?;
    }
    let lib = torch_lib(&venv)?;
    let torch_dir = lib
        .parent()
        .context("torch/lib has a parent")?
        .canonicalize()?;
    status(
        Command::new("cargo")
            .args(["build", "--release", "-p", "trainer", "--features", "tch"])
            .env("LIBTORCH", &torch_dir)
            .env("LIBTORCH_CXX11_ABI", "1")
            .env("CARGO_TARGET_DIR", "target/tch"),
    )?;
    let ld = format!(
        "{}:{}",
        lib.canonicalize()?.display(),
        std::env::var("LD_LIBRARY_PATH").unwrap_or_default()
    );
    status(
        Command::new("target/tch/release/srum")
            .args(args)
            .env("LD_LIBRARY_PATH", ld),
    )
}
