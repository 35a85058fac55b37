use std::path::PathBuf;

use compworld::{Image, Rng, generate, render, sample_scene};

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("compworld-io-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[test]
fn png_round_trip_within_quantisation() {
    let mut rng = Rng::new(1);
    let p = generate(compworld::Category::Complex, &mut rng);
    let img = render(&sample_scene(&p.meaning, &p.text, &mut rng).unwrap(), 32);
    let path = tmp("round.png");
    img.save_png(&path).unwrap();
    let back = Image::load_png(&path, 32).unwrap();
    let worst = img
        .data
        .iter()
        .zip(&back.data)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(worst <= 0.5 / 255.0 + 1e-6, "{worst}");
    // Planar layout round trip.
    assert_eq!(Image::from_chw(32, 32, &img.to_chw()).unwrap(), img);
    assert!(Image::from_chw(32, 32, &[0.0; 10]).is_err());
}

#[test]
fn bad_pngs_give_clear_errors() {
    let small = tmp("small.png");
    Image::filled(16, 16, [0.5; 3]).save_png(&small).unwrap();
    let e = Image::load_png(&small, 32).unwrap_err().to_string();
    assert!(
        e.contains("16x16") && e.contains("expected 32x32") && e.contains("small.png"),
        "{e}"
    );

    let rgba = tmp("rgba.png");
    image::save_buffer(
        &rgba,
        &[0u8; 32 * 32 * 4],
        32,
        32,
        image::ExtendedColorType::Rgba8,
    )
    .unwrap();
    let e = Image::load_png(&rgba, 32).unwrap_err().to_string();
    assert!(
        e.contains("4 channels") && e.contains("expected 8-bit RGB"),
        "{e}"
    );

    let grey = tmp("grey.png");
    image::save_buffer(&grey, &[0u8; 32 * 32], 32, 32, image::ExtendedColorType::L8).unwrap();
    assert!(
        Image::load_png(&grey, 32)
            .unwrap_err()
            .to_string()
            .contains("1 channels")
    );

    let e = Image::load_png(&tmp("missing.png"), 32)
        .unwrap_err()
        .to_string();
    assert!(e.contains("missing.png"), "{e}");
    let junk = tmp("junk.png");
    std::fs::write(&junk, b"not a png").unwrap();
    assert!(
        Image::load_png(&junk, 32)
            .unwrap_err()
            .to_string()
            .contains("junk.png")
    );
}
