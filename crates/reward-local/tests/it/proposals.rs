//! The proposer on hand-made images with known boxes.

use compworld::Image;
use reward_local::{ProposerConfig, propose};

const BG: [f32; 3] = [0.96, 0.96, 0.96];

fn paint(img: &mut Image, x: std::ops::Range<usize>, y: std::ops::Range<usize>, rgb: [f32; 3]) {
    for yy in y {
        for xx in x.clone() {
            img.set(xx, yy, rgb);
        }
    }
}

#[test]
fn two_objects_give_their_boxes_largest_first() {
    let mut img = Image::filled(16, 16, BG);
    paint(&mut img, 2..6, 3..8, [0.9, 0.1, 0.1]); // 4 x 5 = 20 px
    paint(&mut img, 9..15, 9..13, [0.1, 0.2, 0.9]); // 6 x 4 = 24 px
    let b = propose(&img, &ProposerConfig::default());
    let got: Vec<[f32; 4]> = b.iter().map(|b| b.corners()).collect();
    assert_eq!(got, [[9.0, 9.0, 15.0, 13.0], [2.0, 3.0, 6.0, 8.0]]);
    assert_eq!((b[0].area, b[1].area), (24, 20));
}

#[test]
fn a_two_coloured_object_and_touching_objects_also_get_a_whole_box() {
    let mut img = Image::filled(16, 16, BG);
    // Red rows striped with near-black ink rows: 6 x 6, the parts are single rows.
    for y in 2..8 {
        let c = if y % 2 == 0 {
            [0.9, 0.1, 0.1]
        } else {
            [0.12, 0.12, 0.12]
        };
        paint(&mut img, 1..7, y..y + 1, c);
    }
    // A blue block touching a yellow block.
    paint(&mut img, 9..12, 9..14, [0.1, 0.2, 0.9]);
    paint(&mut img, 12..15, 9..14, [0.95, 0.85, 0.1]);
    let b = propose(&img, &ProposerConfig::default());
    let got: Vec<[f32; 4]> = b.iter().map(|b| b.corners()).collect();
    assert!(got.contains(&[1.0, 2.0, 7.0, 8.0]), "{got:?}");
    assert!(got.contains(&[9.0, 9.0, 15.0, 14.0]), "{got:?}");
    assert!(got.contains(&[9.0, 9.0, 12.0, 14.0]), "{got:?}");
    assert!(got.contains(&[12.0, 9.0, 15.0, 14.0]), "{got:?}");
    // Sorted by component area, at most K.
    assert!(b.windows(2).all(|w| w[0].area >= w[1].area));
    let two = ProposerConfig {
        top_k: 2,
        ..ProposerConfig::default()
    };
    assert_eq!(propose(&img, &two).len(), 2);
}

#[test]
fn a_blank_image_has_no_proposals() {
    assert!(propose(&Image::filled(8, 8, BG), &ProposerConfig::default()).is_empty());
}
