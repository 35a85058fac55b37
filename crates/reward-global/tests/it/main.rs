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
    assert!((combine(GlobalMode::Combined, 0.2, Some(1.0), Some(-0.5)) - 0.6).abs() < 1e-6);
    assert_eq!(
        combine(GlobalMode::Question, 0.2, Some(1.0), Some(-0.5)),
        0.2
    );
    assert_eq!(combine(GlobalMode::Combined, 0.2, None, None), 0.2);
    assert_eq!(
        combine(GlobalMode::Constraints, 0.2, Some(1.0), Some(-0.5)),
        -0.5
    );
    assert_eq!(combine(GlobalMode::Constraints, 0.2, Some(1.0), None), 0.2);
    for m in [
        GlobalMode::Question,
        GlobalMode::Combined,
        GlobalMode::Constraints,
    ] {
        assert_eq!(m.name().parse::<GlobalMode>(), Ok(m));
    }
    assert!(
        "coverage"
            .parse::<GlobalMode>()
            .unwrap_err()
            .contains("constraints")
    );
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

/// The constraint questions of a phrase, worded as the model was pretrained to be asked, and
/// the renormalised probability of the wanted answer, on hand-made distributions.
#[test]
fn constraint_questions_and_their_scores_by_hand() {
    use compworld::{Colour, Shape, Size, Texture};
    use reward_global::{choice_probability, constraint_questions, constraint_score};
    use reward_local::phrases::Phrase;
    use umm_model::Tokenizer;
    let plain = Phrase {
        count: Some(1),
        size: None,
        texture: None,
        colour: Some(Colour::Orange),
        shape: Shape::Circle,
    };
    let qs = constraint_questions(&plain);
    assert_eq!(qs.len(), 1, "one object: presence only");
    assert_eq!(qs[0].question, "is there an orange circle ?");
    assert_eq!(
        (qs[0].choices.clone(), qs[0].wanted),
        (vec!["yes", "no"], "yes")
    );
    let full = Phrase {
        count: Some(3),
        size: Some(Size::Small),
        texture: Some(Texture::Striped),
        colour: Some(Colour::Red),
        shape: Shape::Cross,
    };
    let qs = constraint_questions(&full);
    let words: Vec<&str> = qs.iter().map(|q| q.question.as_str()).collect();
    assert_eq!(
        words,
        [
            "is there a small red cross ?",
            "what texture is the cross ?",
            "how many crosses ?"
        ]
    );
    assert_eq!((qs[1].wanted, qs[2].wanted), ("striped", "three"));
    assert_eq!(qs[1].choices.len(), 4);
    // Every question must be in the model's vocabulary.
    let tok = WordTokenizer::compworld();
    for q in &qs {
        tok.encode(&q.question).unwrap();
    }
    // P(three) = 0.2 among the count words, whose mass is 0.2 + 0.1 + 0.1 = 0.4 -> 0.5; the
    // other words' mass (0.6 on "yes") does not count.
    let id = |w: &str| tok.id(w).unwrap() as usize;
    let mut p = vec![0.0f32; tok.vocab_size()];
    p[id("three")] = 0.2;
    p[id("two")] = 0.1;
    p[id("four")] = 0.1;
    p[id("yes")] = 0.6;
    assert!((choice_probability(&tok, &qs[2], &p).unwrap() - 0.5).abs() < 1e-6);
    // No mass on the choices at all: undecided.
    assert_eq!(choice_probability(&tok, &qs[1], &p).unwrap(), 0.5);
    // Every phrase must hold: 2 x 0.5 x 0.8 - 1 = -0.2; no phrase, no score.
    assert!((constraint_score(&[0.5, 0.8]).unwrap() + 0.2).abs() < 1e-6);
    assert_eq!(constraint_score(&[1.0]), Some(1.0));
    assert_eq!(constraint_score(&[]), None);
}

/// The shipped model's constraint score tells a true render of the prompt from a render of
/// another prompt, and the questions are asked per image (batching changes nothing).
#[test]
fn the_shipped_model_gives_true_renders_a_higher_constraint_score() {
    use reward_global::{constraint_score, phrase_probabilities};
    use reward_local::phrases::literal_phrases;
    let (model, cfg) = shipped();
    let tok = WordTokenizer::compworld();
    let dev = Device::flex();
    let draw = |text: &str, seed: u64| {
        let p = Prompt::parse(text).unwrap();
        render(
            &sample_scene(&p.meaning, &p.text, &mut Rng::new(seed)).unwrap(),
            cfg.resolution,
        )
    };
    let prompt = "two green crosses and a red circle";
    let phrases = literal_phrases(prompt);
    assert_eq!(phrases.len(), 2);
    let mut true_higher = 0;
    for seed in 0..4 {
        let right = draw(prompt, seed);
        let wrong = draw("a blue square", seed);
        let both = phrase_probabilities(
            &model,
            &cfg,
            &tok,
            &[(&right, &phrases), (&wrong, &phrases)],
            &dev,
        )
        .unwrap();
        let alone = phrase_probabilities(&model, &cfg, &tok, &[(&wrong, &phrases)], &dev).unwrap();
        assert!((both[1][0] - alone[0][0]).abs() < 1e-5 && (both[1][1] - alone[0][1]).abs() < 1e-5);
        let [r, w] = [&both[0], &both[1]].map(|p| constraint_score(p).unwrap());
        assert!((-1.0..=1.0).contains(&r) && (-1.0..=1.0).contains(&w));
        true_higher += usize::from(r > w);
    }
    assert_eq!(
        true_higher, 4,
        "the true render scored higher in {true_higher} of 4"
    );
}

/// `self_rewards` in the constraints mode: g is the constraint score computed directly from the
/// phrases' probabilities, or the prompt-match answer when the prompt states no object; the
/// other modes ask no constraint questions.
#[test]
fn the_constraints_mode_reads_g_from_the_constraint_score() {
    use reward_global::{
        GlobalMode, RewardConfig, constraint_score, phrase_probabilities, self_rewards,
    };
    use reward_local::phrases::literal_phrases;
    let (model, cfg) = shipped();
    let tok = WordTokenizer::compworld();
    let dev = Device::flex();
    let text = "a red circle and two green squares";
    let p = Prompt::parse(text).unwrap();
    let img = render(
        &sample_scene(&p.meaning, &p.text, &mut Rng::new(5)).unwrap(),
        cfg.resolution,
    );
    let no_object = "a traffic light";
    assert!(literal_phrases(no_object).is_empty());
    let items = [(&img, text), (&img, no_object)];
    let rc = RewardConfig {
        global: GlobalMode::Constraints,
        ..RewardConfig::default()
    };
    let r: Vec<_> = self_rewards(&model, &cfg, &tok, &items, &rc, &dev)
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    let phrases = literal_phrases(text);
    let direct = phrase_probabilities(&model, &cfg, &tok, &[(&img, &phrases)], &dev).unwrap();
    let c = constraint_score(&direct[0]).unwrap();
    assert!((r[0].constraint.unwrap() - c).abs() < 1e-5);
    assert!((r[0].global - c).abs() < 1e-5);
    assert!(r[0].global != r[0].global_question);
    assert_eq!(r[1].constraint, None);
    assert_eq!(r[1].global, r[1].global_question);
    let plain = self_rewards(
        &model,
        &cfg,
        &tok,
        &items[..1],
        &RewardConfig::default(),
        &dev,
    );
    assert_eq!(plain[0].as_ref().unwrap().constraint, None);
}
