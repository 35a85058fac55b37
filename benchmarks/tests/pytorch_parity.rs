//! The PyTorch reference computes what Burn computes: same weights, same batch, the same
//! losses over three training steps (forward, backward and AdamW). Needs a python with torch:
//! `SRUM_TORCH_PYTHON`, else `.venv-torch/bin/python` (what `cargo xtask tch` installs), else
//! `python3`; without torch the test says that it skipped.

use std::path::PathBuf;
use std::process::Command;

use benchmarks::race::{self, RaceInputs};
use burn::prelude::*;
use umm_model::UmmConfig;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn python_with_torch() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("SRUM_TORCH_PYTHON").map(PathBuf::from),
        Some(root().join(".venv-torch/bin/python")),
        Some(PathBuf::from("python3")),
    ];
    candidates.into_iter().flatten().find(|p| {
        Command::new(p)
            .args(["-c", "import torch"])
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

#[test]
fn the_pytorch_reference_gives_burns_losses() {
    let Some(python) = python_with_torch() else {
        eprintln!("SKIPPED: no python with torch (set SRUM_TORCH_PYTHON or run `cargo xtask tch`)");
        return;
    };
    let cfg = UmmConfig::tiny();
    let batch = 8;
    let dir = std::env::temp_dir().join(format!("srum-parity-{}", std::process::id()));
    race::export(&dir, &cfg, batch).unwrap();
    // Burn: three steps on the default CPU backend.
    let dev = Device::flex().autodiff();
    let inputs = RaceInputs::new(&cfg, batch, &dev).unwrap();
    let mut model = race::fresh(&cfg, &dev);
    let mut optim = race::optimizer();
    let mut burn = Vec::new();
    for _ in 0..3 {
        let (m, loss) = race::step(model, &mut optim, &inputs);
        model = m;
        burn.push(loss);
    }
    let out = Command::new(&python)
        .arg(root().join("benchmarks/pytorch-ref/ref.py"))
        .args(["train", "--warmup", "0", "--steps", "3", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).ok();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let torch: Vec<f32> = v["loss"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect();
    eprintln!("burn {burn:?}\ntorch {torch:?}");
    assert_eq!(torch.len(), 3);
    for (b, t) in burn.iter().zip(&torch) {
        assert!((b - t).abs() < 1e-4, "burn {b} vs torch {t}");
    }
    // The steps changed the loss: the comparison covers backward and the update.
    assert!(burn[0] - burn[2] > 0.1, "{burn:?}");
    // Parameter counts agree too.
    assert_eq!(v["params"].as_u64().unwrap() as usize, model_params(&cfg));
}

fn model_params(cfg: &UmmConfig) -> usize {
    use burn::module::Module;
    race::fresh(cfg, &Device::flex()).num_params()
}
