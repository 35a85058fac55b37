//! reward-global on hand-made numbers and on the shipped model.

use burn::prelude::*;
use compworld::{Image, Prompt, Rng, render, sample_scene};
use reward_global::{global_scores, keep, score_from};
use umm_model::{WordTokenizer, checkpoint};

#[test]
fn the_score_is_the_renormalised_yes_no_margin() {
    assert!((score_from(0.6, 0.2) - 0.5).abs() < 1e-6);
    assert_eq!(score_from(0.0, 0.3), -1.0);
    assert_eq!(score_from(0.3, 0.3), 0.0);
    assert_eq!(score_from(0.0, 0.0), 0.0);
    assert!(!keep(0.0) && keep(-0.01) && keep(1.0));
    use reward_global::{GlobalMode, combine};
    assert!((combine(GlobalMode::Combined, 0.2, Some(1.0)) - 0.6).abs() < 1e-6);
    assert_eq!(combine(GlobalMode::Question, 0.2, Some(1.0)), 0.2);
    assert_eq!(combine(GlobalMode::Combined, 0.2, None), 0.2);
}

fn shipped() -> (umm_model::Umm, umm_model::UmmConfig) {
    let p = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../datasets/checkpoints/base-tiny.safetensors");
    let (m, meta) = checkpoint::load(&p, &Device::flex()).unwrap();
    (m, meta.config)
}

#[test]
fn the_shipped_model_scores_batches_like_single_images_and_refuses_bad_input() {
    let (model, cfg) = shipped();
    let tok = WordTokenizer::compworld();
    let dev = Device::flex();
    let mut rng = Rng::new(3);
    let p = Prompt::parse("a red circle").unwrap();
    let img = render(
        &sample_scene(&p.meaning, &p.text, &mut rng).unwrap(),
        cfg.resolution,
    );
    let other = Image::filled(cfg.resolution, cfg.resolution, [0.96; 3]);
    let both = global_scores(
        &model,
        &cfg,
        &tok,
        &[
            (&img, "a red circle"),
            (&other, "two blue squares left of a green cross"),
        ],
        &dev,
    )
    .unwrap();
    let alone = global_scores(&model, &cfg, &tok, &[(&img, "a red circle")], &dev).unwrap();
    assert!((both[0] - alone[0]).abs() < 1e-5);
    assert!(both.iter().all(|g| (-1.0..=1.0).contains(g)));
    // A true render of a single object is judged to show it.
    assert!(alone[0] > 0.0, "g = {}", alone[0]);
    // Bad input: one clear error each.
    let small = Image::filled(8, 8, [0.5; 3]);
    let e = global_scores(&model, &cfg, &tok, &[(&small, "a red circle")], &dev).unwrap_err();
    assert!(e.to_string().contains("8x8"), "{e}");
    let e = global_scores(&model, &cfg, &tok, &[(&img, "  ")], &dev).unwrap_err();
    assert!(e.to_string().contains("empty prompt"), "{e}");
    let e = global_scores(&model, &cfg, &tok, &[(&img, "a red unicorn")], &dev).unwrap_err();
    assert!(e.to_string().contains("unicorn"), "{e}");
}

#[test]
fn a_batch_scores_the_good_items_and_reports_the_bad_ones() {
    let (model, cfg) = shipped();
    let tok = WordTokenizer::compworld();
    let dev = Device::flex();
    let mut rng = Rng::new(11);
    let p = Prompt::parse("a blue square and a red circle").unwrap();
    let img = render(
        &sample_scene(&p.meaning, &p.text, &mut rng).unwrap(),
        cfg.resolution,
    );
    let small = Image::filled(8, 8, [0.5; 3]);
    let items = [
        (&img, "a blue square and a red circle"),
        (&small, "a red circle"),
        (&img, "a red unicorn"),
        (&img, "a green triangle"),
    ];
    let out = reward_global::self_rewards(
        &model,
        &cfg,
        &tok,
        &items,
        &reward_global::RewardConfig::default(),
        &dev,
    );
    assert_eq!(out.len(), 4);
    assert!(out[1].as_ref().unwrap_err().to_string().contains("8x8"));
    assert!(out[2].as_ref().unwrap_err().to_string().contains("unicorn"));
    let a = out[0].as_ref().unwrap();
    // Two objects in a true render: at least two regions, the map and one weight per token.
    assert!(a.regions.len() >= 2, "{:?}", a.regions);
    assert_eq!(a.map.len(), cfg.resolution * cfg.resolution);
    assert_eq!(a.token_weights.len(), cfg.image_tokens());
    assert!(a.map.iter().all(|w| (0.0..=1.0).contains(w)));
    // The same image, the same proposals, whatever the prompt; the prompt changes the scores.
    let d = out[3].as_ref().unwrap();
    assert_eq!(a.regions.len(), d.regions.len());
    assert!(d.regions.iter().all(|r| r.score <= 0.0), "{:?}", d.regions);
}
