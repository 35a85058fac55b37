use compworld::{Colour, Object, Prompt, Scene, Shape, Size, Texture, render};

fn obj(shape: Shape, colour: Colour, size: Size, x: f32, y: f32) -> Object {
    Object {
        shape,
        colour,
        texture: Texture::Solid,
        size,
        x,
        y,
    }
}

fn score(text: &str, objects: Vec<Object>) -> f32 {
    let p = Prompt::parse(text).unwrap();
    scene_oracle::score(&render(&Scene { objects }, 32), &p).score
}

use Colour::*;
use Shape::*;
use Size::*;

#[test]
fn spatial_by_centre_offsets() {
    let t = "a red circle on the left of a blue square";
    assert_eq!(
        score(
            t,
            vec![
                obj(Circle, Red, Large, 8.0, 16.0),
                obj(Square, Blue, Large, 24.0, 16.0)
            ]
        ),
        1.0
    );
    assert_eq!(
        score(
            t,
            vec![
                obj(Circle, Red, Large, 24.0, 16.0),
                obj(Square, Blue, Large, 8.0, 16.0)
            ]
        ),
        0.0
    );
    // Mostly vertical offset: not "left of" even though dx > 0.
    assert_eq!(
        score(
            t,
            vec![
                obj(Circle, Red, Small, 12.0, 6.0),
                obj(Square, Blue, Small, 16.0, 24.0)
            ]
        ),
        0.0
    );
    // Wrong colour: the relation needs the described objects.
    assert_eq!(
        score(
            t,
            vec![
                obj(Circle, Green, Large, 8.0, 16.0),
                obj(Square, Blue, Large, 24.0, 16.0)
            ]
        ),
        0.0
    );
}

#[test]
fn binding_is_a_product_over_phrases() {
    let t = "a red circle and a blue square";
    assert_eq!(
        score(
            t,
            vec![
                obj(Circle, Red, Large, 8.0, 8.0),
                obj(Square, Blue, Large, 24.0, 24.0)
            ]
        ),
        1.0
    );
    // Colours swapped: both phrases fail.
    assert_eq!(
        score(
            t,
            vec![
                obj(Circle, Blue, Large, 8.0, 8.0),
                obj(Square, Red, Large, 24.0, 24.0)
            ]
        ),
        0.0
    );
    // One phrase missing.
    assert_eq!(score(t, vec![obj(Circle, Red, Large, 8.0, 8.0)]), 0.0);
    // Two phrases need two distinct objects.
    assert_eq!(
        score(
            "a red circle and a red circle",
            vec![obj(Circle, Red, Large, 8.0, 8.0)]
        ),
        0.0
    );
}

#[test]
fn numeracy_gives_half_for_presence() {
    let t = "three circles";
    let c = |x, y| obj(Circle, Blue, Small, x, y);
    assert_eq!(score(t, vec![c(6.0, 6.0), c(20.0, 6.0), c(6.0, 20.0)]), 1.0);
    assert_eq!(score(t, vec![c(6.0, 6.0), c(20.0, 6.0)]), 0.5);
    assert_eq!(
        score(
            t,
            vec![c(6.0, 6.0), c(20.0, 6.0), c(6.0, 20.0), c(22.0, 22.0)]
        ),
        0.5
    );
    assert_eq!(score(t, vec![obj(Square, Blue, Small, 6.0, 6.0)]), 0.0);
    // Product over groups.
    let t2 = "two circles and one square";
    assert_eq!(
        score(t2, vec![c(6.0, 6.0), obj(Square, Red, Small, 22.0, 22.0)]),
        0.5
    );
}

#[test]
fn complex_is_the_mean_of_its_parts() {
    let t = "a red circle on the left of a blue square and two green triangles";
    let base = vec![
        obj(Circle, Red, Small, 6.0, 8.0),
        obj(Square, Blue, Small, 24.0, 8.0),
    ];
    let tri = |x| obj(Triangle, Green, Small, x, 24.0);
    let mut all = base.clone();
    all.extend([tri(8.0), tri(22.0)]);
    assert_eq!(score(t, all), 1.0);
    let mut one = base.clone();
    one.push(tri(8.0));
    // Binding 1, relation 1, count 0.5.
    assert!((score(t, one) - (1.0 + 1.0 + 0.5) / 3.0).abs() < 1e-6);
}

#[test]
fn occlusion_order_and_containment() {
    let t = "a red square in front of a blue circle";
    let back = obj(Circle, Blue, Large, 12.0, 16.0);
    let front = obj(Square, Red, Large, 20.0, 16.0);
    assert_eq!(score(t, vec![back, front]), 1.0);
    assert_eq!(score(t, vec![front, back]), 0.0);
    assert_eq!(
        score("a blue circle hidden by a red square", vec![back, front]),
        1.0
    );

    let t = "a small red circle inside a large blue square";
    let container = obj(Square, Blue, Large, 16.0, 16.0);
    assert_eq!(
        score(t, vec![container, obj(Circle, Red, Small, 16.0, 16.0)]),
        1.0
    );
    assert_eq!(
        score(t, vec![container, obj(Circle, Red, Small, 16.0, 4.5)]),
        0.0
    );
}

#[test]
fn textures_and_knowledge() {
    for t in [
        Texture::Solid,
        Texture::Striped,
        Texture::Dotted,
        Texture::Outline,
    ] {
        let o = Object {
            texture: t,
            ..obj(Circle, Pink, Large, 16.0, 16.0)
        };
        let v = scene_oracle::perceive(&render(&Scene { objects: vec![o] }, 32));
        assert_eq!(v.objects.len(), 1);
        assert_eq!((v.objects[0].texture, v.objects[0].shape), (t, Circle));
    }
    let t = "a circle the colour of the sky";
    assert_eq!(score(t, vec![obj(Circle, Blue, Large, 16.0, 16.0)]), 1.0);
    assert_eq!(score(t, vec![obj(Circle, Green, Large, 16.0, 16.0)]), 0.0);
    // Arithmetic is all-or-nothing: off by one is wrong, not half right.
    let t = "two plus one squares";
    let s = |x, y| obj(Square, Red, Small, x, y);
    assert_eq!(score(t, vec![s(6.0, 6.0), s(20.0, 6.0), s(6.0, 20.0)]), 1.0);
    assert_eq!(score(t, vec![s(6.0, 6.0), s(20.0, 6.0)]), 0.0);
}

#[test]
fn perception_reads_size_and_position() {
    let v = scene_oracle::perceive(&render(
        &Scene {
            objects: vec![
                obj(Triangle, Yellow, Small, 7.0, 9.0),
                obj(Diamond, Purple, Large, 22.0, 20.0),
            ],
        },
        32,
    ));
    assert_eq!(v.objects.len(), 2);
    let tri = v.objects.iter().find(|d| d.shape == Triangle).unwrap();
    let dia = v.objects.iter().find(|d| d.shape == Diamond).unwrap();
    assert_eq!(
        (tri.size, tri.colour, dia.size, dia.colour),
        (Small, Yellow, Large, Purple)
    );
    assert!(
        (tri.centre[0] - 7.0).abs() < 1.0 && (tri.centre[1] - 9.0).abs() < 1.0,
        "{:?}",
        tri.centre
    );
    assert!(
        (dia.centre[0] - 22.0).abs() < 1.0 && (dia.centre[1] - 20.0).abs() < 1.0,
        "{:?}",
        dia.centre
    );
    // A blank canvas has nothing in it.
    assert!(
        scene_oracle::perceive(&render(&Scene::default(), 32))
            .objects
            .is_empty()
    );
}

#[test]
fn captions_are_true_of_their_scenes() {
    // The caption is written from the scene; the oracle reads only the pixels. They agree.
    let mut rng = compworld::Rng::new(21);
    let (mut total, mut n) = (0.0, 0);
    for cat in compworld::Category::ALL {
        for _ in 0..10 {
            let p = compworld::generate(*cat, &mut rng);
            let scene = compworld::sample_scene(&p.meaning, &p.text, &mut rng).unwrap();
            let c = compworld::caption(&scene);
            total += scene_oracle::score(&render(&scene, 32), &c).score;
            n += 1;
        }
    }
    let mean = total / n as f32;
    assert!(mean >= 0.97, "captions scored {mean}");
}
