use compworld::world::BACKGROUND;
use compworld::{
    Colour, Object, Prompt, Rng, Scene, Shape, Size, Texture, caption, generate, render,
    sample_scene,
};

fn one(shape: Shape, texture: Texture) -> Scene {
    Scene {
        objects: vec![Object {
            shape,
            colour: Colour::Red,
            texture,
            size: Size::Large,
            x: 16.0,
            y: 16.0,
        }],
    }
}

#[test]
fn render_is_deterministic_and_resolution_independent() {
    let mut rng = Rng::new(9);
    for cat in compworld::Category::ALL {
        let p = generate(*cat, &mut rng);
        let s = sample_scene(&p.meaning, &p.text, &mut rng).unwrap();
        let a = render(&s, 32);
        assert_eq!(a, render(&s, 32));
        // The 64 px render averaged over 2x2 blocks is the 32 px render up to anti-aliasing.
        let b = render(&s, 64);
        let (mut worst, mut total) = (0.0f32, 0.0f32);
        for y in 0..32 {
            for x in 0..32 {
                for c in 0..3 {
                    let avg = (0..4)
                        .map(|k| b.get(2 * x + k % 2, 2 * y + k / 2)[c])
                        .sum::<f32>()
                        / 4.0;
                    let d = (avg - a.get(x, y)[c]).abs();
                    worst = worst.max(d);
                    total += d;
                }
            }
        }
        assert!(
            worst < 0.35 && total / 3072.0 < 0.01,
            "{}: worst {worst} mean {}",
            p.text,
            total / 3072.0
        );
    }
}

#[test]
fn textures_paint_what_they_say() {
    let ink_fraction = |img: &compworld::Image| {
        let mut n = 0;
        for y in 0..32 {
            for x in 0..32 {
                let p = img.get(x, y);
                // Mostly ink: every channel well below the red's 0.9.
                n += usize::from(p.iter().all(|&v| v < 0.6));
            }
        }
        n
    };
    let bg_centre = |img: &compworld::Image| img.get(16, 16) == BACKGROUND;
    assert_eq!(
        ink_fraction(&render(&one(Shape::Square, Texture::Solid), 32)),
        0
    );
    let striped = ink_fraction(&render(&one(Shape::Square, Texture::Striped), 32));
    let dotted = ink_fraction(&render(&one(Shape::Square, Texture::Dotted), 32));
    assert!(
        striped > 20 && dotted > 4 && striped > dotted,
        "striped {striped} dotted {dotted}"
    );
    assert!(bg_centre(&render(
        &one(Shape::Square, Texture::Outline),
        32
    )));
    assert!(!bg_centre(&render(&one(Shape::Square, Texture::Solid), 32)));
    // Stripes are horizontal: a row is all ink or all colour inside the square.
    let img = render(&one(Shape::Square, Texture::Striped), 32);
    let row: Vec<[f32; 3]> = (12..20).map(|x| img.get(x, 14)).collect();
    assert!(row.windows(2).all(|w| w[0] == w[1]));
}

#[test]
fn captions_parse_and_describe_every_object() {
    let mut rng = Rng::new(10);
    for cat in compworld::Category::ALL {
        for _ in 0..20 {
            let p = generate(*cat, &mut rng);
            let s = sample_scene(&p.meaning, &p.text, &mut rng).unwrap();
            let c = caption(&s);
            let q = Prompt::parse(&c.text).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(q.meaning.object_count(), s.objects.len(), "{}", c.text);
            for o in &s.objects {
                assert!(
                    q.meaning
                        .phrases
                        .iter()
                        .any(|ph| ph.spec.matches(o.shape, o.colour, o.texture, o.size)),
                    "{:?} not in {}",
                    o,
                    c.text
                );
            }
        }
    }
}

#[test]
fn crop_resize_cuts_out_the_box() {
    let mut rng = Rng::new(4);
    let p = compworld::generate::single_object(&mut rng);
    let scene = compworld::sample_scene(&p.meaning, &p.text, &mut rng).unwrap();
    let img = compworld::render(&scene, 32);
    // The whole canvas at the same size is the image itself.
    let same = img.crop_resize([0.0, 0.0, 32.0, 32.0], 32);
    let diff = same
        .data
        .iter()
        .zip(&img.data)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(diff < 1e-5, "{diff}");
    // A crop around the object is mostly object; a crop of an empty corner is background.
    let o = &scene.objects[0];
    let ink = |i: &compworld::Image| {
        let n = i.width * i.height;
        (0..n)
            .filter(|k| {
                let px = &i.data[3 * k..3 * k + 3];
                px.iter()
                    .zip(compworld::world::BACKGROUND)
                    .any(|(a, b)| (a - b).abs() > 0.1)
            })
            .count() as f32
            / n as f32
    };
    let b = o.bbox();
    let around = img.crop_resize(b, 32);
    assert!(
        ink(&around) > 2.0 * ink(&img),
        "{} vs {}",
        ink(&around),
        ink(&img)
    );
}

#[test]
fn single_object_prompts_name_one_object_and_parse_back() {
    let mut rng = Rng::new(5);
    for _ in 0..200 {
        let p = compworld::generate::single_object(&mut rng);
        assert_eq!(p.meaning.object_count(), 1, "{}", p.text);
        assert_eq!(compworld::Prompt::parse(&p.text).unwrap(), p);
        assert!(p.meaning.phrases[0].spec.colour.is_some(), "{}", p.text);
    }
}

#[test]
fn object_at_finds_the_front_most_shape_under_a_point() {
    let obj = |shape, colour, texture, x| Object {
        shape,
        colour,
        texture,
        size: Size::Large,
        x,
        y: 16.0,
    };
    // A blue outlined square in front of part of a red circle.
    let scene = Scene {
        objects: vec![
            obj(Shape::Circle, Colour::Red, Texture::Solid, 12.0),
            obj(Shape::Square, Colour::Blue, Texture::Outline, 18.0),
        ],
    };
    let at = |x, y| scene.object_at(x, y).map(|o| (o.shape, o.colour));
    assert_eq!(at(8.0, 16.0), Some((Shape::Circle, Colour::Red)));
    // Where they overlap the front one (last drawn) wins, even inside its outline.
    assert_eq!(at(16.0, 16.0), Some((Shape::Square, Colour::Blue)));
    assert_eq!(at(22.0, 16.0), Some((Shape::Square, Colour::Blue)));
    assert_eq!(at(1.0, 1.0), None);
}
