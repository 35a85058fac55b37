//! The one place where the compute device is chosen.

use burn::prelude::*;

use crate::{Error, Result};

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

fn not_built(kind: DeviceKind, feature: &str) -> Error {
    Error::Device(format!(
        "--device {} needs the `{feature}` cargo feature: rebuild with `cargo build --release \
         -p trainer --features {feature}` (see README, Backends)",
        kind.name()
    ))
}

/// The inference device of `kind`; `.autodiff()` of it trains.
#[allow(deprecated)] // burn marks its ndarray and tch devices deprecated; they still work
pub fn device(kind: DeviceKind) -> Result<Device> {
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
