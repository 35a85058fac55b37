//! `srum reward` on a folder: good items scored, bad ones skipped with a reason.

use std::path::PathBuf;

use burn::prelude::*;
use compworld::{Image, Prompt, Rng, render, sample_scene};
use trainer::reward_cmd::{read_folder, run};
use umm_model::{WordTokenizer, checkpoint};

#[test]
fn a_folder_run_scores_good_items_and_lists_the_bad_ones() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("reward-folder");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut rng = Rng::new(2);
    for (name, prompt) in [("a.png", "a red circle"), ("b.png", "two blue squares")] {
        let p = Prompt::parse(prompt).unwrap();
        render(&sample_scene(&p.meaning, &p.text, &mut rng).unwrap(), 32)
            .save_png(&dir.join(name))
            .unwrap();
    }
    Image::filled(16, 16, [0.5; 3])
        .save_png(&dir.join("small.png"))
        .unwrap();
    std::fs::write(
        dir.join("prompts.tsv"),
        "# file\tprompt\na.png\ta red circle\nb.png\ttwo blue squares\r\nmissing.png\ta red circle\nsmall.png\ta red circle\na.png\ta red unicorn\n",
    )
    .unwrap();
    let items = read_folder(&dir, 32).unwrap();
    assert_eq!(items.len(), 5);
    let ckpt = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../datasets/checkpoints/base-tiny.safetensors");
    let dev = Device::flex();
    let (model, meta) = checkpoint::load(&ckpt, &dev).unwrap();
    let out = dir.join("out");
    let r = run(
        &model,
        &meta.config,
        &WordTokenizer::compworld(),
        &items,
        &reward_global::RewardConfig::default(),
        &out,
        &dev,
        &|_| (),
    )
    .unwrap();
    assert_eq!(r.scored, 2);
    let skipped: Vec<&str> = r.skipped.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(skipped, ["missing.png", "small.png", "a.png"]);
    assert!(r.skipped[1].1.contains("16x16"), "{:?}", r.skipped);
    assert!(r.skipped[2].1.contains("unicorn"), "{:?}", r.skipped);
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(out.join("rewards.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[1]["prompt"], "two blue squares");
    assert_eq!(
        lines[0]["map"]["token_weights"].as_array().unwrap().len(),
        64
    );
    assert!(!lines[0]["regions"].as_array().unwrap().is_empty());
    assert!(out.join("overlays/a.png").exists() && out.join("overlays/b.png").exists());
    // A malformed list is one clear error.
    std::fs::write(dir.join("prompts.tsv"), "a.png a red circle\n").unwrap();
    let e = read_folder(&dir, 32).unwrap_err().to_string();
    assert!(
        e.contains("prompts.tsv:1: expected 'file<TAB>prompt'"),
        "{e}"
    );
}
