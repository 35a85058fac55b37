//! Every map mode against numbers written out by hand.

use reward_local::{MapConfig, MapMode, ScoredBox, reward_map, token_weights};

fn cfg(mode: MapMode) -> MapConfig {
    MapConfig {
        mode,
        ..MapConfig::default()
    }
}

fn sb(bbox: [f32; 4], score: f32) -> ScoredBox {
    ScoredBox { bbox, score }
}

fn assert_map(got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() < 1e-6,
            "pixel {i}: got {g}, want {w}\n{got:?}"
        );
    }
}

#[test]
fn unit_map_with_overlapping_boxes() {
    // g = 0.5: global factor 0.75. Box A (s = 1) covers x 0..2, y 0..2: M = 1. Box B (s = -1)
    // covers x 1..3, y 1..3: (s + 1) / 2 = 0 < 0.5, so M stays 0.5 there, except where A
    // also covers (pixel (1, 1)): max(1, 0) = 1.
    let m = reward_map(
        4,
        4,
        0.5,
        &[
            sb([0.0, 0.0, 2.0, 2.0], 1.0),
            sb([1.0, 1.0, 3.0, 3.0], -1.0),
        ],
        &cfg(MapMode::Unit),
    );
    let (hi, bg) = (0.75, 0.375);
    #[rustfmt::skip]
    let want = [
        hi, hi, bg, bg,
        hi, hi, bg, bg,
        bg, bg, bg, bg,
        bg, bg, bg, bg,
    ];
    assert_map(&m, &want);
}

#[test]
fn unit_map_with_a_half_score_and_boxes_outside_the_image() {
    // s = 0.6 -> M = 0.8. The box reaches outside the image: only pixel (0, 0) is covered
    // (pixel centres decide). A box entirely outside changes nothing. g = 1: factor 1.
    let m = reward_map(
        3,
        2,
        1.0,
        &[
            sb([-2.0, -2.0, 1.0, 1.0], 0.6),
            sb([5.0, 5.0, 9.0, 9.0], 1.0),
        ],
        &cfg(MapMode::Unit),
    );
    assert_map(&m, &[0.8, 0.5, 0.5, 0.5, 0.5, 0.5]);
}

#[test]
fn no_boxes_and_the_three_global_extremes() {
    for (g, want) in [(-1.0, 0.0), (0.0, 0.25), (1.0, 0.5)] {
        let m = reward_map(2, 2, g, &[], &cfg(MapMode::Unit));
        assert_map(&m, &[want; 4]);
    }
    // g = -1 wipes out even a perfect region.
    let m = reward_map(
        2,
        1,
        -1.0,
        &[sb([0.0, 0.0, 2.0, 1.0], 1.0)],
        &cfg(MapMode::Unit),
    );
    assert_map(&m, &[0.0, 0.0]);
}

#[test]
fn signed_map_goes_below_zero_and_contradictions_win_overlaps() {
    // beta = 0.25: s = -1 -> m = 0.5 - 0.75 = -0.25; s = -0.5 -> 0.5 - 0.375 = 0.125;
    // s = 1 -> 1. Pixel 1 is covered by s = 1 and s = -0.5: the negative one wins.
    // g = 0: factor 0.5.
    let m = reward_map(
        4,
        1,
        0.0,
        &[
            sb([0.0, 0.0, 2.0, 1.0], 1.0),
            sb([1.0, 0.0, 2.0, 1.0], -0.5),
            sb([2.0, 0.0, 3.0, 1.0], -1.0),
        ],
        &cfg(MapMode::Signed),
    );
    assert_map(&m, &[0.5, 0.0625, -0.125, 0.25]);
    // Bounded: the lowest weight is -beta, and beta must stay below lambda.
    let m = reward_map(
        1,
        1,
        1.0,
        &[sb([0.0, 0.0, 1.0, 1.0], -1.0)],
        &cfg(MapMode::Signed),
    );
    assert_map(&m, &[-0.25]);
    let bad = MapConfig {
        beta: 0.5,
        ..cfg(MapMode::Signed)
    };
    assert!(bad.validate().unwrap_err().contains("beta = 0.5"));
    assert!(cfg(MapMode::Signed).validate().is_ok());
}

#[test]
fn binary_map_thresholds_scores_to_plus_or_minus_one() {
    // s = 0.2 -> +1 -> M = 1; s = -0.1 -> -1 -> M = 0.5; g = 0.3 -> +1 -> factor 1.
    let boxes = [
        sb([0.0, 0.0, 1.0, 1.0], 0.2),
        sb([1.0, 0.0, 2.0, 1.0], -0.1),
    ];
    let m = reward_map(3, 1, 0.3, &boxes, &cfg(MapMode::Binary));
    assert_map(&m, &[1.0, 0.5, 0.5]);
    // g = -0.3 -> -1 -> factor 0.
    let m = reward_map(3, 1, -0.3, &boxes, &cfg(MapMode::Binary));
    assert_map(&m, &[0.0, 0.0, 0.0]);
    // The same scores in unit mode: M = 0.6 and 0.5, factor 0.65.
    let m = reward_map(3, 1, 0.3, &boxes, &cfg(MapMode::Unit));
    assert_map(&m, &[0.39, 0.325, 0.325]);
}

#[test]
fn global_and_local_parts_can_be_switched_off() {
    let boxes = [sb([0.0, 0.0, 1.0, 1.0], 1.0)];
    let no_global = MapConfig {
        use_global: false,
        ..MapConfig::default()
    };
    assert_map(&reward_map(2, 1, -1.0, &boxes, &no_global), &[1.0, 0.5]);
    let no_local = MapConfig {
        use_local: false,
        ..MapConfig::default()
    };
    assert_map(&reward_map(2, 1, 0.5, &boxes, &no_local), &[0.75, 0.75]);
}

#[test]
fn token_weights_average_each_patch_in_patchify_order() {
    // 4x4 map, 2x2 patches: tokens (0,0) (1,0) (0,1) (1,1), row-major over patches.
    #[rustfmt::skip]
    let map = [
        1.0, 0.0, 0.5, 0.5,
        0.0, 1.0, 0.5, 0.5,
        0.2, 0.2, 0.0, 0.0,
        0.2, 0.2, 0.0, 0.4,
    ];
    let t = token_weights(&map, 4, 4, 2);
    assert_map(&t, &[0.5, 0.5, 0.2, 0.1]);
}
