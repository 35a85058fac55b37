//! The one place where the compute device is chosen.

use burn::prelude::*;

use crate::Result;

/// A compute backend and device, as `srum --device` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DeviceKind {
    /// burn's pure-Rust `flex` CPU backend (the default; always built).
    Cpu,
    /// burn's deprecated `ndarray` CPU backend (cargo feature `ndarray`; kept for comparison).
    Ndarray,
    /// WebGPU through wgpu: Vulkan, Metal or DX12; Mesa's software Vulkan on CPU-only
    /// machines (cargo feature `wgpu`).
    Wgpu,
    /// libtorch on the CPU (cargo feature `tch`; needs PyTorch 2.9.0's libraries).
    TchCpu,
    /// libtorch on CUDA GPU 0 (cargo feature `tch`, CUDA libtorch).
    TchCuda,
}

impl DeviceKind {
    /// The `--device` spelling.
    pub fn name(self) -> &'static str {
        match self {
            DeviceKind::Cpu => "cpu",
            DeviceKind::Ndarray => "ndarray",
            DeviceKind::Wgpu => "wgpu",
            DeviceKind::TchCpu => "tch-cpu",
            DeviceKind::TchCuda => "tch-cuda",
        }
    }
}

/// The error for a `--device` whose backend this build left out (unused when every backend
/// feature is on).
#[cfg(not(all(feature = "ndarray", feature = "wgpu", feature = "tch")))]
fn not_built(kind: DeviceKind, feature: &str) -> crate::Error {
    crate::Error::Device(format!(
        "--device {} needs the `{feature}` cargo feature: rebuild with `cargo build --release \
         -p trainer --features {feature}` (see README, Backends)",
        kind.name()
    ))
}

/// Freed memory up to this size stays in the process (glibc's `M_TRIM_THRESHOLD`).
pub const KEEP_FREED_BYTES: i32 = 1 << 30;
/// Blocks from this size up are mapped and unmapped one by one (`M_MMAP_THRESHOLD`; glibc's
/// largest allowed value on 64-bit).
pub const MMAP_FROM_BYTES: i32 = 32 << 20;

/// Tells glibc's allocator to keep freed memory for reuse instead of handing it back to the
/// kernel at every free. Sampling frees and reallocates the same few-MB activations in every
/// layer of every step; with glibc's defaults (blocks over its adaptive mmap threshold mapped
/// and unmapped one by one, the heap's top trimmed above 128 kB) each new block is fresh
/// memory, and the first write to each page faults: 12% of a libtorch sampling batch's time
/// here went to page faults (`perf`), and setting these two values took a 32-image batch from
/// 1.34 s to 0.88 s on libtorch CPU and from 5.4 s to 3.5 s on flex (medians of the A/B in
/// README, Performance; `benchmarks/tests/allocator.rs` checks the faults are gone). The
/// cost is memory: up to [`KEEP_FREED_BYTES`] of freed memory is kept. Called by [`device`];
/// does nothing off glibc, or when the environment sets `SRUM_MALLOC_DEFAULTS=1` (to measure
/// the difference).
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("SRUM_MALLOC_DEFAULTS").is_none_or(|v| v != "1") {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            // SAFETY: `mallopt` only sets two of glibc's allocator parameters; it is called
            // once, before the device exists, and both values are in glibc's allowed ranges.
            #[allow(unsafe_code)]
            let ok = unsafe {
                libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_FROM_BYTES) == 1
                    && libc::mallopt(libc::M_TRIM_THRESHOLD, KEEP_FREED_BYTES) == 1
            };
            if !ok {
                tracing::warn!("glibc refused the allocator settings; continuing without them");
            }
        });
    }
}

/// The inference device of `kind`; `.autodiff()` of it trains. Sets the allocator up first
/// ([`keep_freed_memory`]).
#[allow(deprecated)] // burn marks its ndarray and tch devices deprecated; they still work
pub fn device(kind: DeviceKind) -> Result<Device> {
    keep_freed_memory();
    match kind {
        DeviceKind::Cpu => Ok(Device::flex()),
        DeviceKind::Ndarray => {
            #[cfg(feature = "ndarray")]
            return Ok(Device::ndarray());
            #[cfg(not(feature = "ndarray"))]
            Err(not_built(kind, "ndarray"))
        }
        DeviceKind::Wgpu => {
            #[cfg(feature = "wgpu")]
            return Ok(Device::wgpu(burn::tensor::DeviceKind::DefaultDevice));
            #[cfg(not(feature = "wgpu"))]
            Err(not_built(kind, "wgpu"))
        }
        DeviceKind::TchCpu => {
            #[cfg(feature = "tch")]
            return Ok(Device::libtorch());
            #[cfg(not(feature = "tch"))]
            Err(not_built(kind, "tch"))
        }
        DeviceKind::TchCuda => {
            #[cfg(feature = "tch")]
            return Ok(Device::libtorch_cuda(0));
            #[cfg(not(feature = "tch"))]
            Err(not_built(kind, "tch"))
        }
    }
}
