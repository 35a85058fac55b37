//! Bad input to `srum` gives one clear error line and a failing exit code, never a panic.

use std::path::PathBuf;
use std::process::Command;

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("srum-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs srum, expects failure, returns its stderr (checked to be one line, no panic).
fn fails(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_srum"))
        .args(args)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "srum {args:?} succeeded");
    assert!(!err.contains("panicked"), "srum {args:?} panicked: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(lines.len(), 1, "srum {args:?}: {err}");
    assert_eq!(err.trim().lines().count(), 1, "srum {args:?}: {err}");
    err
}

#[test]
fn bad_input_is_one_clear_line() {
    let d = tmp("bad");
    let out = d.join("run");
    let out = out.to_str().unwrap();

    let e = fails(&["pretrain", "--preset", "huge", "--out", out]);
    assert!(e.contains("unknown preset 'huge'"), "{e}");

    let cfg = d.join("run.toml");
    let good = trainer::pretrain::PretrainConfig::for_preset("micro")
        .unwrap()
        .to_toml();
    std::fs::write(
        &cfg,
        good.replace("[train]", "[train]\nlearning_rate = 0.1"),
    )
    .unwrap();
    let e = fails(&["pretrain", "--config", cfg.to_str().unwrap(), "--out", out]);
    assert!(e.contains("learning_rate") && e.contains("run.toml"), "{e}");

    std::fs::write(&cfg, "[model\nd_model = 3").unwrap();
    let e = fails(&["pretrain", "--config", cfg.to_str().unwrap(), "--out", out]);
    assert!(e.contains("run.toml"), "{e}");

    // A post-training config for the other method: refused, not silently overridden.
    let sft = d.join("sft.toml");
    let c = trainer::srum::SrumConfig {
        method: trainer::srum::Method::Sft,
        ..Default::default()
    };
    std::fs::write(&sft, c.to_toml()).unwrap();
    let e = fails(&["train", "--config", sft.to_str().unwrap(), "--out", out]);
    assert!(
        e.contains("method = \"sft\"") && e.contains("srum sft --config"),
        "{e}"
    );

    let missing = d.join("none.safetensors");
    let e = fails(&["eval-und", "--checkpoint", missing.to_str().unwrap()]);
    assert!(e.contains("none"), "{e}");

    // A truncated checkpoint: a real one cut in half.
    let ck = d.join("m.safetensors");
    let model = umm_model::Umm::init(
        &umm_model::UmmConfig::micro(),
        &burn::prelude::Device::flex(),
    );
    let meta = umm_model::checkpoint::CheckpointMeta::new(umm_model::UmmConfig::micro(), 0, [1; 4]);
    umm_model::checkpoint::save(&model, &meta, &ck).unwrap();
    let bytes = std::fs::read(&ck).unwrap();
    std::fs::write(&ck, &bytes[..bytes.len() / 2]).unwrap();
    let e = fails(&[
        "sample",
        "--checkpoint",
        ck.to_str().unwrap(),
        "--prompt",
        "a red circle",
    ]);
    assert!(e.contains("m.safetensors"), "{e}");

    #[cfg(not(feature = "wgpu"))]
    {
        let e = fails(&["pretrain", "--out", out, "--device", "wgpu"]);
        assert!(e.contains("`wgpu` cargo feature"), "{e}");
    }
    std::fs::remove_dir_all(&d).unwrap();
}
