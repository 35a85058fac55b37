#!/usr/bin/env bash
# Builds the GPU kit: everything `benchmarks/gpu/run.sh` needs on a GPU machine that has
# PyTorch (2.11, CUDA 13) but no Rust toolchain and no network. Run from the repository root:
#
#   bash benchmarks/gpu/build-kit.sh        # about 10 min cold on 2 cores
#
# It writes target/gpu-kit/ (about 20 MB, 50 MB with wgpu; under the device tool's 64 MiB carry limit):
#   burn-speed-tch   burn-speed built with `--features tch` against the PyPI torch 2.11 wheel's
#                    headers (LIBTORCH_BYPASS_VERSION_CHECK=1: burn-tch 0.22 expects 2.9), so at
#                    run time it loads the GPU machine's own libtorch (tch-cuda)
#   burn-speed-wgpu  with WITH_WGPU=1 only: burn-speed built with `--features wgpu` (Vulkan),
#                    plus libvulkan.so.1
#   race-b32/, race-b256/  the fixed weights and batches (`burn-speed export`)
# The torch wheel is only unpacked for its headers and libraries to link against; nothing of it
# is carried.
set -euo pipefail
cd "$(dirname "$0")/../.."
KIT=target/gpu-kit
WHEEL_DIR=${WHEEL_DIR:-target/torch-wheel}
mkdir -p "$KIT" "$WHEEL_DIR"
if [ ! -f "$WHEEL_DIR/torch/lib/libtorch_cuda.so" ]; then
  python3 -m pip download "torch==2.11.*" --no-deps -d "$WHEEL_DIR/whl"
  python3 - "$WHEEL_DIR" <<'PY'
import glob, sys, zipfile
d = sys.argv[1]
z = zipfile.ZipFile(glob.glob(f"{d}/whl/torch-2.11*.whl")[0])
z.extractall(d, [n for n in z.namelist() if n.startswith(("torch/lib/", "torch/include/", "torch/share/")) or n == "torch/version.py"])
PY
fi
TORCH=$(cd "$WHEEL_DIR/torch" && pwd -P)
# The wheel's libtorch_cuda.so needs the CUDA libraries, which are not installed here: the
# linker is told to leave their symbols to the GPU machine's loader.
LIBTORCH="$TORCH" LIBTORCH_CXX11_ABI=1 LIBTORCH_BYPASS_VERSION_CHECK=1 \
  RUSTFLAGS="-C link-arg=-Wl,--allow-shlib-undefined" CARGO_TARGET_DIR=target/tch211 \
  cargo build --release -p benchmarks --features tch --bin burn-speed
cp target/tch211/release/burn-speed "$KIT/burn-speed-tch"
if [ "${WITH_WGPU:-0}" = 1 ]; then
  # About 15 minutes more: wgpu brings CubeCL and its shader compilers.
  CARGO_TARGET_DIR=target/wgpu cargo build --release -p benchmarks --features wgpu --bin burn-speed
  cp target/wgpu/release/burn-speed "$KIT/burn-speed-wgpu"
  cp -L /usr/lib/x86_64-linux-gnu/libvulkan.so.1 "$KIT/" 2>/dev/null || echo "no libvulkan.so.1 here: the wgpu run will rely on the GPU machine's loader"
fi
cargo build --release -p benchmarks --bin burn-speed
for B in 32 256; do target/release/burn-speed export --out "$KIT/race-b$B" --batch $B; done
du -sh "$KIT"
