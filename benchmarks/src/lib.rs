//! What the benchmarks share: the backends compiled in, analytic FLOP counts, and the fixed
//! training batch and sampling inputs that Burn (`burn-speed`) and the PyTorch reference
//! (`benchmarks/pytorch-ref/ref.py`) race on.
//!
//! Run the criterion suite with `cargo bench -p benchmarks` (default CPU backend), or with
//! `--features tch` / `wgpu` / `ndarray` to add those backends; every bench name ends in the
//! backend it ran on ([`bench_name`], which also names flex's opt-in `avx512` and `fast-gelu`
//! kernels). `cargo xtask bench speed` runs the race and writes `results/speed.json`.

pub mod flops;
pub mod race;

use burn::prelude::*;
use trainer::device::{DeviceKind, device};

/// The backends this build can run: the default CPU backend, then each extra one whose cargo
/// feature is on. A backend that is built but cannot start (no Vulkan driver, no libtorch) is
/// reported on stderr and left out.
pub fn backends() -> Vec<(DeviceKind, Device)> {
    let mut kinds = vec![DeviceKind::Cpu];
    if cfg!(feature = "ndarray") {
        kinds.push(DeviceKind::Ndarray);
    }
    if cfg!(feature = "tch") {
        kinds.push(DeviceKind::TchCpu);
    }
    if cfg!(feature = "wgpu") {
        kinds.push(DeviceKind::Wgpu);
    }
    kinds
        .into_iter()
        .filter_map(|k| match device(k) {
            Ok(d) => Some((k, d)),
            Err(e) => {
                eprintln!("backend {} left out: {e}", k.name());
                None
            }
        })
        .collect()
}

/// The name a bench ends in for backend `kind`: the backend's name, and for the pure-Rust
/// CPU backend the opt-in kernels this build has (`cpu+avx512`, `cpu+fast-gelu`), so that
/// criterion keeps the history of each build apart.
pub fn bench_name(kind: DeviceKind) -> String {
    let mut name = kind.name().to_string();
    if kind == DeviceKind::Cpu {
        for (on, feature) in [
            (cfg!(feature = "avx512"), "avx512"),
            (cfg!(feature = "fast-gelu"), "fast-gelu"),
        ] {
            if on {
                name += "+";
                name += feature;
            }
        }
    }
    name
}

/// Waits for the device's queued work (asynchronous backends), so a timer stopped after it
/// measures the work itself.
pub fn sync(device: &Device) {
    device
        .clone()
        .inner()
        .sync()
        .expect("the device finished its queued work");
}
