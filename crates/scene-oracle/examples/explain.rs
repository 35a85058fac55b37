//! Render a prompt (or read a PNG) and print what the oracle perceives and how it scores it.
//!
//! cargo run --release -p scene-oracle --example explain -- "a red circle inside a large square" [seed] [--noisy] [--png out.png]

use compworld::{Image, Prompt, Rng, render, sample_scene};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(text) = args.first() else {
        eprintln!("usage: explain <prompt> [seed] [--noisy] [--png out.png] [--image in.png]");
        std::process::exit(2);
    };
    let seed: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let flag = |f: &str| {
        args.iter()
            .position(|a| a == f)
            .and_then(|i| args.get(i + 1))
    };
    let prompt = match Prompt::parse(text) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    let mut rng = Rng::new(seed);
    let img = if let Some(path) = flag("--image") {
        Image::load_png(std::path::Path::new(path), 32).unwrap_or_else(|e| {
            eprintln!("error: {e}");
            std::process::exit(2)
        })
    } else {
        let scene = sample_scene(&prompt.meaning, &prompt.text, &mut rng).expect("drawable");
        for o in &scene.objects {
            println!(
                "truth: {:?} {:?} {:?} {:?} at ({:.1}, {:.1})",
                o.size, o.texture, o.colour, o.shape, o.x, o.y
            );
        }
        let img = render(&scene, 32);
        if args.iter().any(|a| a == "--noisy") {
            img.box_blur3().add_noise(0.05, &mut rng)
        } else if args.iter().any(|a| a == "--blur") {
            img.box_blur3()
        } else {
            img
        }
    };
    if let Some(out) = flag("--png") {
        img.save_png(std::path::Path::new(out)).expect("write png");
    }
    if args.iter().any(|a| a == "--map") {
        for row in scene_oracle::perceive::label_map(&img) {
            println!("{row}");
        }
    }
    let v = scene_oracle::score(&img, &prompt);
    for (i, d) in v.perception.objects.iter().enumerate() {
        println!(
            "seen {i}: {:?} {:?} {:?} {:?} centre ({:.1}, {:.1}) side {:.1} fit {:.2} px {}",
            d.size, d.texture, d.colour, d.shape, d.centre[0], d.centre[1], d.side, d.fit, d.pixels
        );
    }
    println!("cover: {:?}", v.perception.cover);
    println!("contained: {:?}", v.perception.contained);
    for c in &v.constraints {
        println!("  {} -> {}", c.description, c.score);
    }
    println!("{} score {}", v.category, v.score);
}
