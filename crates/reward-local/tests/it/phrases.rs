//! Literal phrases and the region-score table.

use reward_local::BoxPx;
use reward_local::phrases::literal_phrases;
use reward_local::region::score_names;

#[test]
fn phrases_are_read_from_the_words_of_the_prompt() {
    let p = literal_phrases("two striped red circles and a large blue square");
    assert_eq!(p.len(), 2);
    assert_eq!(p[0].count, Some(2));
    assert_eq!(p[0].texture.map(|t| t.word()), Some("striped"));
    assert_eq!(p[0].colour.map(|c| c.word()), Some("red"));
    assert_eq!(p[0].shape.word(), "circle");
    assert_eq!(p[1].count, Some(1));
    assert_eq!(p[1].size.map(|s| s.word()), Some("large"));
    // Arithmetic states no count; knowledge states no colour; geometry states no shape word.
    assert_eq!(literal_phrases("two plus one blue diamonds")[0].count, None);
    let k = literal_phrases("a cross the colour of a carrot");
    assert_eq!((k.len(), k[0].colour), (1, None));
    assert!(literal_phrases("an orange plus sign").is_empty());
}

fn boxes(n: usize) -> Vec<BoxPx> {
    // Side by side, far apart, decreasing area.
    (0..n)
        .map(|i| BoxPx {
            x0: 10.0 * i as f32,
            y0: 0.0,
            x1: 10.0 * i as f32 + 5.0,
            y1: 5.0,
            area: 20 - i,
        })
        .collect()
}

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn region_scores_follow_the_table() {
    let n = names(&[
        "red circle",
        "green circle",
        "yellow triangle",
        "",
        "blue square",
    ]);
    let s: Vec<f32> = score_names("a red circle and a blue square", &boxes(5), &n)
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    assert_eq!(s, [1.0, -1.0, 0.0, 0.0, 1.0]);
    // Texture: a name without one is plain.
    let n = names(&["red circle", "striped red circle"]);
    let s: Vec<f32> = score_names("a striped red circle", &boxes(2), &n)
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    assert_eq!(s, [-1.0, 1.0]);
}

#[test]
fn the_object_beyond_a_stated_count_scores_minus_one() {
    let n = names(&["red circle", "red circle", "red circle"]);
    let s = score_names("two red circles", &boxes(3), &n);
    assert_eq!(s[2], (-1.0, "one too many"));
    assert_eq!((s[0].0, s[1].0), (1.0, 1.0));
    // A smaller box inside a counted one is the same object at another scale, not a third.
    let mut b = boxes(2);
    b.push(BoxPx {
        x0: 1.0,
        y0: 1.0,
        x1: 4.0,
        y1: 4.0,
        area: 5,
    });
    let s = score_names("two red circles", &b, &n);
    assert!(s.iter().all(|(v, _)| *v == 1.0), "{s:?}");
    // Without a stated count there is no "too many".
    let s = score_names("two plus one red circles", &boxes(3), &n);
    assert!(s.iter().all(|(v, _)| *v == 1.0), "{s:?}");
}

#[test]
fn colours_given_by_reference_are_found_and_resolved_by_the_model() {
    use reward_local::phrases::colour_references;
    let refs = colour_references(
        "a large cross the colour of a carrot and a diamond the colour of the sky",
    );
    assert_eq!(
        refs,
        [(0, "a carrot".to_string()), (1, "the sky".to_string())]
    );
    assert!(colour_references("a red circle next to a square").is_empty());

    use burn::prelude::*;
    let ckpt = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../datasets/checkpoints/base-tiny.safetensors");
    let dev = Device::flex();
    let (model, meta) = umm_model::checkpoint::load(&ckpt, &dev).unwrap();
    let tok = umm_model::WordTokenizer::compworld();
    let prompts = [
        "a cross the colour of a carrot",
        "a red circle",
        "a diamond the colour of grass",
    ];
    let phrases = reward_local::region::resolve_colours(
        &model,
        &meta.config,
        &tok,
        prompts.iter().copied(),
        &dev,
    )
    .unwrap();
    // The shipped model answers its knowledge questions (1.0 on the training distribution).
    assert_eq!(phrases[0][0].colour.map(|c| c.word()), Some("orange"));
    assert_eq!(phrases[1][0].colour.map(|c| c.word()), Some("red"));
    assert_eq!(phrases[2][0].colour.map(|c| c.word()), Some("green"));
}

#[test]
fn phrase_coverage_counts_the_stated_objects_found() {
    use reward_local::phrases::literal_phrases;
    use reward_local::region::phrase_coverage;
    let phrases = literal_phrases("two red circles and a blue square");
    // Both phrases found: 2 x 1 - 1 = 1.
    let n = names(&["red circle", "red circle", "blue square"]);
    assert_eq!(phrase_coverage(&phrases, &boxes(3), &n), Some(1.0));
    // One red circle only: the counted phrase is not found; 2 x 1/2 - 1 = 0.
    let n = names(&["red circle", "green cross", "blue square"]);
    assert_eq!(phrase_coverage(&phrases, &boxes(3), &n), Some(0.0));
    // A nested box is the same circle, not the second one.
    let mut b = boxes(2);
    b.push(BoxPx {
        x0: 1.0,
        y0: 1.0,
        x1: 4.0,
        y1: 4.0,
        area: 5,
    });
    let n = names(&["red circle", "blue square", "red circle"]);
    assert_eq!(phrase_coverage(&phrases, &b, &n), Some(0.0));
    // Nothing found: -1; nothing stated: no coverage.
    assert_eq!(
        phrase_coverage(&phrases, &boxes(1), &names(&["yellow cross"])),
        Some(-1.0)
    );
    assert_eq!(
        phrase_coverage(
            &literal_phrases("a traffic light"),
            &boxes(1),
            &names(&["red circle"])
        ),
        None
    );
}

#[test]
fn a_marginal_shape_score_weighs_the_table_by_the_shape_probabilities() {
    use compworld::Shape;
    use reward_local::region::marginal_shape_score;
    let phrases = literal_phrases("a red circle and a blue square");
    let probs = |v: &[(Shape, f32)]| -> Vec<f32> {
        Shape::ALL
            .iter()
            .map(|s| v.iter().find(|(t, _)| t == s).map_or(0.0, |(_, p)| *p))
            .collect()
    };
    use Shape::{Circle, Square, Triangle};
    // "red circle" +1 with 0.5, "red square" -1 (the square is blue) with 0.3, "red
    // triangle" 0 (not asked for) with 0.2: +1 is the likeliest, score 0.5 - 0.3.
    let s = marginal_shape_score(
        &phrases,
        "red circle",
        &probs(&[(Circle, 0.5), (Square, 0.3), (Triangle, 0.2)]),
    )
    .unwrap();
    assert!(
        (s.0 - 0.2).abs() < 1e-6 && s.1 == "marginal: fits a phrase",
        "{s:?}"
    );
    // The same proportions unnormalised (the other words took half the mass).
    let s = marginal_shape_score(
        &phrases,
        "red circle",
        &probs(&[(Circle, 0.25), (Square, 0.15), (Triangle, 0.1)]),
    )
    .unwrap();
    assert!((s.0 - 0.2).abs() < 1e-6, "{s:?}");
    // The greedy shape (circle, 0.3) is not the likeliest outcome: "not asked for" has 0.4.
    let s = marginal_shape_score(
        &phrases,
        "red circle",
        &probs(&[(Circle, 0.3), (Square, 0.3), (Triangle, 0.4)]),
    )
    .unwrap();
    assert_eq!(s, (0.0, "marginal: shape not in the prompt"));
    // A greedy triangle (0 by the table) whose alternatives are mostly a wrong-coloured square.
    let s = marginal_shape_score(
        &phrases,
        "red triangle",
        &probs(&[(Circle, 0.2), (Square, 0.5), (Triangle, 0.3)]),
    )
    .unwrap();
    assert!(
        (s.0 + 0.3).abs() < 1e-6 && s.1 == "marginal: wrong attribute",
        "{s:?}"
    );
    // The attributes of the greedy name stay: a blue name is -1 for circles and +1 for squares.
    let s = marginal_shape_score(
        &phrases,
        "blue circle",
        &probs(&[(Circle, 0.3), (Square, 0.7)]),
    )
    .unwrap();
    assert!((s.0 - 0.4).abs() < 1e-6, "{s:?}");
    // No shape word, nothing to marginalise.
    assert_eq!(
        marginal_shape_score(&phrases, "red", &probs(&[(Circle, 1.0)])),
        None
    );
}

/// The questions scoring on hand-made answers: `(p_full, p_shape)` per phrase.
#[test]
fn a_question_score_weighs_full_and_shape_only_answers() {
    use reward_local::region::question_score;
    // One phrase: yes to "a red circle" 0.7, to "a circle" 0.9: P(+1) 0.7, P(-1) 0.2, P(0) 0.1.
    let (s, why) = question_score(&[(0.7, 0.9)]);
    assert!(
        (s - 0.5).abs() < 1e-6 && why == "fits a phrase",
        "{s} {why}"
    );
    // The shape without the colour: P(+1) 0.1, P(-1) 0.7, P(0) 0.2.
    let (s, why) = question_score(&[(0.1, 0.8)]);
    assert!(
        (s + 0.6).abs() < 1e-6 && why == "wrong attribute",
        "{s} {why}"
    );
    // No shape asked for is there: P(0) 0.8 decides.
    assert_eq!(question_score(&[(0.05, 0.2)]), (0.0, "shape not asked for"));
    // Two phrases: the best full match and the best shape match count (0.6 and 0.65).
    let (s, _) = question_score(&[(0.6, 0.62), (0.1, 0.65)]);
    assert!((s - 0.55).abs() < 1e-6, "{s}");
    // No phrase at all: nothing is asked for.
    assert_eq!(question_score(&[]), (0.0, "shape not asked for"));
}
