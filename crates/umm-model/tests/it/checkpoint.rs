use std::path::PathBuf;

use burn::prelude::*;
use burn::tensor::{Distribution, TensorData};
use umm_model::checkpoint::{CheckpointMeta, load, load_meta, save, sidecar_path};
use umm_model::{Umm, UmmConfig, UmmInput};

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("umm-ckpt-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn probe(model: &Umm, img: &Tensor<3>, device: &Device) -> Tensor<3> {
    let text = Tensor::<2, Int>::from_data(TensorData::new(vec![7i64, 8, 9, 10], [1, 4]), device);
    let t = Tensor::<1>::from_data(TensorData::new(vec![0.5f32], [1]), device);
    let out = model.forward(UmmInput {
        text,
        und_image: None,
        gen_image: Some((img.clone(), t)),
    });
    Tensor::cat(
        vec![out.logits.sum_dim(2), out.velocity.unwrap().sum_dim(2)],
        1,
    )
}

#[test]
fn round_trip_is_exact_and_self_describing() {
    let device = Device::flex();
    let model = Umm::init(&UmmConfig::micro(), &device);
    let path = dir("rt").join("run/model.safetensors");
    let meta = CheckpointMeta::new(UmmConfig::micro(), 1234, [1, 2, 3, 4]);
    save(&model, &meta, &path).unwrap();
    assert!(sidecar_path(&path).exists());
    assert!(!path.with_extension("safetensors.tmp").exists());
    let (back, meta2) = load(&path, &device).unwrap();
    assert_eq!(meta2, meta);
    // Same weights, same outputs.
    let c = UmmConfig::micro();
    let img = Tensor::<3>::random(
        [1, c.image_tokens(), c.patch_dim()],
        Distribution::Default,
        &device,
    );
    let a = probe(&model, &img, &device);
    let b = probe(&back, &img, &device);
    assert_eq!((a - b).abs().max().into_scalar::<f32>(), 0.0);
}

#[test]
fn the_file_is_plain_safetensors() {
    // The format PyTorch's `safetensors` reads: an 8-byte little-endian header length, a JSON
    // header of name -> {dtype, shape, data_offsets}, then the data.
    let device = Device::flex();
    let model = Umm::init(&UmmConfig::micro(), &device);
    let path = dir("fmt").join("m.safetensors");
    save(
        &model,
        &CheckpointMeta::new(UmmConfig::micro(), 0, [0; 4]),
        &path,
    )
    .unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let tok = &header["tok.weight"];
    let c = UmmConfig::micro();
    assert_eq!(tok["dtype"], "F32");
    assert_eq!(tok["shape"], serde_json::json!([c.vocab_size, c.d_model]));
    let end = header
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| *k != "__metadata__")
        .map(|(_, v)| v["data_offsets"][1].as_u64().unwrap() as usize)
        .max()
        .unwrap();
    assert_eq!(8 + n + end, bytes.len());
    assert!(
        header.get("blocks.0.gen_expert.qkv.weight").is_some(),
        "{header}"
    );
}

#[test]
fn bad_checkpoints_give_clear_errors() {
    let device = Device::flex();
    let d = dir("bad");
    let path = d.join("m.safetensors");
    let model = Umm::init(&UmmConfig::micro(), &device);
    save(
        &model,
        &CheckpointMeta::new(UmmConfig::micro(), 7, [0; 4]),
        &path,
    )
    .unwrap();

    // Missing sidecar / missing weights.
    let e = load(&d.join("none.safetensors"), &device)
        .unwrap_err()
        .to_string();
    assert!(e.contains("none.meta.toml") && e.contains("sidecar"), "{e}");

    // A config that does not match the weights (wider model).
    let wide = d.join("wide.safetensors");
    std::fs::copy(&path, &wide).unwrap();
    let meta = CheckpointMeta::new(
        UmmConfig {
            d_model: 64,
            ..UmmConfig::micro()
        },
        7,
        [0; 4],
    );
    std::fs::write(sidecar_path(&wide), toml::to_string(&meta).unwrap()).unwrap();
    let e = load(&wide, &device).unwrap_err().to_string();
    assert!(e.contains("wide.safetensors"), "{e}");

    // Truncated weights.
    let cut = d.join("cut.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    std::fs::copy(sidecar_path(&path), sidecar_path(&cut)).unwrap();
    let e = load(&cut, &device).unwrap_err().to_string();
    assert!(e.contains("cut.safetensors"), "{e}");

    // A sidecar with an unknown key or a future format.
    let odd = d.join("odd.safetensors");
    std::fs::copy(&path, &odd).unwrap();
    let text = std::fs::read_to_string(sidecar_path(&path)).unwrap();
    std::fs::write(sidecar_path(&odd), format!("optimiser = \"sgd\"\n{text}")).unwrap();
    let e = load_meta(&odd).unwrap_err().to_string();
    assert!(
        e.contains("odd.meta.toml") && e.contains("optimiser"),
        "{e}"
    );
    std::fs::write(sidecar_path(&odd), text.replace("format = 1", "format = 9")).unwrap();
    assert!(
        load_meta(&odd)
            .unwrap_err()
            .to_string()
            .contains("format 9")
    );
}

#[test]
fn python_safetensors_reads_it_when_installed() {
    let ok = std::process::Command::new("python3")
        .args(["-c", "import safetensors.numpy"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!(
            "skipped: Python's safetensors package is not installed (the format test covers the layout)"
        );
        return;
    }
    let device = Device::flex();
    let path = dir("py").join("m.safetensors");
    let model = Umm::init(&UmmConfig::micro(), &device);
    save(
        &model,
        &CheckpointMeta::new(UmmConfig::micro(), 0, [0; 4]),
        &path,
    )
    .unwrap();
    let script = format!(
        "from safetensors.numpy import load_file\nd = load_file({:?})\nprint(len(d), d['tok.weight'].shape)",
        path.display().to_string()
    );
    let out = std::process::Command::new("python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let c = UmmConfig::micro();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains(&format!("({}, {})", c.vocab_size, c.d_model)),
        "{text}"
    );
}
