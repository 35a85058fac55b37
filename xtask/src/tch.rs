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

/// The PyTorch 2.9.0 install that burn-tch links against.
#[derive(Debug, Clone)]
pub struct Torch {
    /// The virtual environment's python (the PyTorch reference runs on it).
    pub python: PathBuf,
    /// `.../site-packages/torch` (what `LIBTORCH` names).
    pub dir: PathBuf,
    /// `.../torch/lib` (what `LD_LIBRARY_PATH` needs).
    pub lib: PathBuf,
}

impl Torch {
    /// `LD_LIBRARY_PATH` with the torch libraries first.
    pub fn ld_library_path(&self) -> String {
        format!(
            "{}:{}",
            self.lib.display(),
            std::env::var("LD_LIBRARY_PATH").unwrap_or_default()
        )
    }
}

/// Sets up `.venv-torch` with torch 2.9.0 if it is not there yet.
pub fn ensure_torch() -> Result<Torch> {
    let venv = PathBuf::from(VENV);
    let py = venv.join("bin/python");
    if torch_lib(&venv).is_err() {
        eprintln!("setting up {VENV} with {TORCH} (once; about 6.7 GB)");
        status(Command::new("python3").args(["-m", "venv", VENV]))?;
        status(Command::new(&py).args(["-m", "pip", "install", TORCH]))?;
    }
    let lib = torch_lib(&venv)?.canonicalize()?;
    let dir = lib
        .parent()
        .context("torch/lib has a parent")?
        .to_path_buf();
    Ok(Torch {
        // Not canonicalised: the venv's python is a symlink, and only its own path makes it
        // use the venv.
        python: std::path::absolute(&py)?,
        dir,
        lib,
    })
}

/// Builds `bin` of `package` with the `tch` feature into `target/tch` (its own folder, so the
/// default build is not disturbed); returns the binary's path.
pub fn build_with_tch(torch: &Torch, package: &str, bin: &str) -> Result<PathBuf> {
    status(
        Command::new("cargo")
            .args([
                "build",
                "--release",
                "-p",
                package,
                "--features",
                "tch",
                "--bin",
                bin,
            ])
            .env("LIBTORCH", &torch.dir)
            .env("LIBTORCH_CXX11_ABI", "1")
            .env("CARGO_TARGET_DIR", "target/tch"),
    )?;
    Ok(PathBuf::from("target/tch/release").join(bin))
}

/// Installs torch if needed, builds srum with `tch`, runs it with `args`.
pub fn run(args: &[String]) -> Result<()> {
    let torch = ensure_torch()?;
    let srum = build_with_tch(&torch, "trainer", "srum")?;
    status(
        Command::new(srum)
            .args(args)
            .env("LD_LIBRARY_PATH", torch.ld_library_path()),
    )
}
