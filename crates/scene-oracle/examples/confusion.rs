//! Confusion of single-object reads under a degradation: for every shape, size and texture,
//! render objects at random places and colours and count what the oracle reads.
//!
//! cargo run --release -p scene-oracle --example confusion [-- --clean]

use compworld::{Colour, Object, Rng, Scene, Shape, Size, Texture, render};

fn main() {
    let clean = std::env::args().any(|a| a == "--clean");
    let blur_only = std::env::args().any(|a| a == "--blur");
    let mut rng = Rng::new(5);
    for &size in Size::ALL {
        for &texture in Texture::ALL {
            for &shape in Shape::ALL {
                let (mut ok_shape, mut ok_tex, mut ok_size, mut ok_col, n) = (0, 0, 0, 0, 100);
                let mut wrong: std::collections::BTreeMap<String, usize> = Default::default();
                for _ in 0..n {
                    let colour = *rng.pick(Colour::ALL);
                    let h = size.units() / 2.0 + 1.0;
                    let o = Object {
                        shape,
                        colour,
                        texture,
                        size,
                        x: rng.range_f32(h, 32.0 - h),
                        y: rng.range_f32(h, 32.0 - h),
                    };
                    let img = render(&Scene { objects: vec![o] }, 32);
                    let img = if clean {
                        img
                    } else if blur_only {
                        img.box_blur3()
                    } else {
                        img.box_blur3().add_noise(0.05, &mut rng)
                    };
                    let p = scene_oracle::perceive(&img);
                    let Some(d) = p.objects.first() else {
                        *wrong.entry("none".into()).or_default() += 1;
                        continue;
                    };
                    ok_shape += usize::from(d.shape == shape);
                    ok_tex += usize::from(d.texture == texture);
                    ok_size += usize::from(d.size == size);
                    ok_col += usize::from(d.colour == colour);
                    if d.shape != shape {
                        *wrong.entry(format!("{:?}", d.shape)).or_default() += 1;
                    }
                    if d.texture != texture {
                        *wrong.entry(format!("{:?}", d.texture)).or_default() += 1;
                    }
                    if p.objects.len() != 1 {
                        *wrong
                            .entry(format!("{} objects", p.objects.len()))
                            .or_default() += 1;
                    }
                }
                println!(
                    "{size:?} {texture:?} {shape:?}: shape {ok_shape} texture {ok_tex} size {ok_size} colour {ok_col} / {n}  {wrong:?}"
                );
            }
        }
    }
}
