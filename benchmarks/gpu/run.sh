#!/usr/bin/env bash
# The GPU check, run on a GPU machine from the repository root with target/gpu-kit carried
# (see build-kit.sh). Writes $OUT/speed-gpu.json (OUT defaults to results/) with the device
# name: Burn's training step and sampler on tch-cuda (the machine's own libtorch) and on wgpu
# (the NVIDIA Vulkan driver, when the machine has one), beside the PyTorch reference (eager and
# torch.compile) on the same GPU, and the GPU's FP32 matmul peak. Each part that fails is
# recorded with its error and the rest still runs.
set -u
cd "$(dirname "$0")/../.."
KIT=${KIT:-target/gpu-kit}
OUT=${OUT:-results}
PY=${PYTHON:-python3}
LOG="$OUT/gpu-logs"
mkdir -p "$OUT" "$LOG"
TORCH_LIB=$($PY -c "import torch, os; print(os.path.join(os.path.dirname(torch.__file__), 'lib'))")
export LD_LIBRARY_PATH="$TORCH_LIB:$KIT:${LD_LIBRARY_PATH:-}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$LOG/nvidia-smi.txt" 2>&1
$PY -c "import torch; print(torch.__version__, torch.version.cuda)" > "$LOG/torch-version.txt" 2>&1

run() { # name, command...: stdout JSON to $LOG/name.json, stderr to $LOG/name.err
  local name=$1; shift
  echo "== $name"
  timeout 240 "$@" > "$LOG/$name.json" 2> "$LOG/$name.err" || echo "   failed ($?): $(tail -c 300 "$LOG/$name.err")"
}
for B in 32 256; do
  run "burn-tch-cuda-train-b$B" "$KIT/burn-speed-tch" train --device tch-cuda --batch $B --warmup 3 --steps 10
  run "torch-eager-cuda-train-b$B" $PY benchmarks/pytorch-ref/ref.py train --device cuda --dir "$KIT/race-b$B" --warmup 3 --steps 10
done
run burn-tch-cuda-sample "$KIT/burn-speed-tch" sample --device tch-cuda --warmup 1 --reps 3
run torch-eager-cuda-sample $PY benchmarks/pytorch-ref/ref.py sample --device cuda --dir "$KIT/race-b32" --warmup 1 --reps 3
run torch-compile-cuda-train-b32 $PY benchmarks/pytorch-ref/ref.py train --device cuda --compile --dir "$KIT/race-b32" --warmup 3 --steps 10
run sgemm $PY benchmarks/pytorch-ref/ref.py sgemm --device cuda --n 8192 --reps 9

# wgpu over NVIDIA's Vulkan driver: use the machine's ICD, or write one for the driver's
# libGLX_nvidia (present whenever the driver's graphics libraries are).
if ! ls /usr/share/vulkan/icd.d/nvidia_icd.json /etc/vulkan/icd.d/nvidia_icd.json > /dev/null 2>&1; then
  GLX=$(ldconfig -p | awk '/libGLX_nvidia.so.0/ {print $NF; exit}')
  if [ -n "$GLX" ]; then
    printf '{"file_format_version":"1.0.0","ICD":{"library_path":"%s","api_version":"1.3.0"}}\n' "$GLX" > "$LOG/nvidia_icd.json"
    export VK_ICD_FILENAMES="$LOG/nvidia_icd.json"
  fi
fi
ls /usr/share/vulkan/icd.d /etc/vulkan/icd.d > "$LOG/vulkan-icds.txt" 2>&1
if [ -x "$KIT/burn-speed-wgpu" ]; then
  run burn-wgpu-train-b32 "$KIT/burn-speed-wgpu" train --device wgpu --warmup 3 --steps 10
fi

$PY - "$LOG" "$OUT/speed-gpu.json" <<'PY'
import datetime, json, os, statistics, sys
log, out = sys.argv[1], sys.argv[2]
def load(name):
    p = os.path.join(log, name + ".json")
    try:
        with open(p) as f:
            return json.loads(f.read().strip().splitlines()[-1])
    except Exception:
        err = open(os.path.join(log, name + ".err")).read()[-600:] if os.path.exists(os.path.join(log, name + ".err")) else ""
        return {"error": err or "no output"}
names = sorted(n[:-5] for n in os.listdir(log) if n.endswith(".json"))
runs = {n: load(n) for n in names}
for n, r in runs.items():
    if "step_s" in r:
        r["step_s_median"] = statistics.median(r["step_s"])
    if "batch_s" in r:
        r["images_per_s"] = r["images"] / statistics.median(r["batch_s"])
def med(n):
    return runs.get(n, {}).get("step_s_median")
gpu = open(os.path.join(log, "nvidia-smi.txt")).read().strip()
report = {
    "date": datetime.date.today().isoformat(),
    "device": gpu,
    "torch": open(os.path.join(log, "torch-version.txt")).read().strip(),
    "command": "bash benchmarks/gpu/run.sh (kit from benchmarks/gpu/build-kit.sh)",
    "burn_backend": "tch-cuda",
    "burn_step_s": med("burn-tch-cuda-train-b32"),
    "torch_step_s": med("torch-eager-cuda-train-b32"),
    "peak_gflops": runs.get("sgemm", {}).get("median_gflops"),
    "runs": runs,
}
b, t = report["burn_step_s"], report["torch_step_s"]
report["ratio_burn_over_torch"] = b / t if b and t else None
flops = runs.get("burn-tch-cuda-train-b32", {}).get("flops")
if b and flops and report["peak_gflops"]:
    report["burn_gflops"] = flops / b / 1e9
    report["mfu"] = report["burn_gflops"] / report["peak_gflops"]
with open(out, "w") as f:
    json.dump(report, f, indent=2)
print(json.dumps({k: v for k, v in report.items() if k != "runs"}, indent=2))
PY
