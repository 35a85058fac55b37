//! The whole harness on the frozen val split: a perfect generator scores at the top, noise at
//! the bottom, and a folder of exported images scores exactly as the run that made it.

use std::path::{Path, PathBuf};

use bench_compbench::official::export_category;
use bench_compbench::{BenchConfig, FolderImages, NoiseImages, Plan, TrueRenders, run};
use compworld::Category;
use compworld::splits::load_split;

use crate::scratch;

fn val_plan() -> Plan {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../datasets/splits/val.tsv");
    Plan::from_split(&load_split(&path).unwrap(), Category::COMPBENCH).unwrap()
}

#[test]
fn a_perfect_generator_scores_at_least_99_in_every_category() {
    let plan = val_plan();
    assert_eq!(plan.categories.len(), 8);
    let cfg = BenchConfig {
        samples: 2,
        first_seed: 42,
    };
    let mut done = 0;
    let (report, _) = run(&mut TrueRenders { resolution: 32 }, &plan, cfg, &mut |n| {
        done = n
    })
    .unwrap();
    assert_eq!(done, plan.image_count(2));
    for (cat, s) in report.category_scores() {
        println!("perfect {cat}: {:.2} over {} images", s.score, s.images);
        assert!(s.score >= 99.0, "{cat}: {:.2}", s.score);
        assert_eq!(s.images, 2 * s.prompts);
    }
    assert!(report.overall() >= 99.0);
}

#[test]
fn noise_scores_at_most_5_in_every_category() {
    let plan = val_plan();
    let cfg = BenchConfig {
        samples: 1,
        first_seed: 42,
    };
    let (report, _) = run(&mut NoiseImages { resolution: 32 }, &plan, cfg, &mut |_| ()).unwrap();
    for (cat, s) in report.category_scores() {
        println!("noise {cat}: {:.2}", s.score);
        assert!(s.score <= 5.0, "{cat}: {:.2}", s.score);
    }
}

/// Two categories, a few prompts each: small enough to export and rescore in a test.
fn small_plan() -> Plan {
    let mut plan = val_plan();
    plan.categories
        .retain(|(c, _)| c == "color" || c == "spatial");
    for (_, ps) in &mut plan.categories {
        ps.truncate(6);
    }
    plan
}

fn export(plan: &Plan, dir: &Path, cfg: BenchConfig) -> bench_compbench::Report {
    let (report, images) =
        run(&mut TrueRenders { resolution: 32 }, plan, cfg, &mut |_| ()).unwrap();
    let mut k = 0;
    for (cat, prompts) in &plan.categories {
        let n = prompts.len() * cfg.samples;
        export_category(dir, cat, &plan.texts(cat), cfg.samples, &images[k..k + n]).unwrap();
        k += n;
    }
    report
}

#[test]
fn an_exported_folder_scores_exactly_as_the_run_that_made_it() {
    let plan = small_plan();
    let cfg = BenchConfig {
        samples: 3,
        first_seed: 42,
    };
    let dir = scratch("roundtrip");
    let made = export(&plan, &dir, cfg);
    let (again, _) = run(&mut FolderImages::new(&dir, 32), &plan, cfg, &mut |_| ()).unwrap();
    assert!(again.skipped.is_empty());
    assert_eq!(made.images.len(), again.images.len());
    for (a, b) in made.images.iter().zip(&again.images) {
        assert_eq!((&a.file, a.score), (&b.file, b.score));
    }
    // And the files are written: summary, per-image rows, one grid per category.
    let out = scratch("roundtrip-out");
    again.write(&out, None).unwrap();
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let overall = summary["overall"].as_f64().unwrap();
    assert!((overall - again.overall()).abs() < 1e-9);
    assert_eq!(summary["categories"].as_object().unwrap().len(), 2);
    let csv = std::fs::read_to_string(out.join("per_image.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 2 * 6 * 3);
}

#[test]
fn a_folder_with_missing_images_is_refused_and_extra_ones_are_reported() {
    let plan = small_plan();
    let cfg = BenchConfig {
        samples: 2,
        first_seed: 42,
    };
    let dir = scratch("missing-extra");
    export(&plan, &dir, cfg);
    // An extra image nobody asked for: scored runs still work and name it as skipped.
    let samples = dir.join("color/samples");
    let first = std::fs::read_dir(&samples)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let extra = samples.join("a red circle_999999.png");
    std::fs::copy(&first, &extra).unwrap();
    let (r, _) = run(&mut FolderImages::new(&dir, 32), &plan, cfg, &mut |_| ()).unwrap();
    assert_eq!(r.skipped, ["color/samples/a red circle_999999.png"]);
    assert!(r.summary_json().contains("a red circle_999999.png"));
    // A missing image: an error naming it, before anything is scored.
    let gone = samples.join(format!("{}_000001.png", plan.categories[0].1[0].text));
    std::fs::remove_file(&gone).unwrap();
    let err = run(&mut FolderImages::new(&dir, 32), &plan, cfg, &mut |_| ())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("1 image(s) missing") && err.contains("_000001.png"),
        "{err}"
    );
    // A stray non-image file in samples/ would break the official scripts: refused.
    std::fs::copy(&first, &gone).unwrap();
    std::fs::write(samples.join("notes.txt"), "hi").unwrap();
    let err = run(&mut FolderImages::new(&dir, 32), &plan, cfg, &mut |_| ())
        .unwrap_err()
        .to_string();
    assert!(err.contains("'notes.txt' is not a"), "{err}");
    // A category folder that is not there at all.
    std::fs::remove_dir_all(dir.join("spatial")).unwrap();
    std::fs::remove_file(samples.join("notes.txt")).unwrap();
    let err = run(&mut FolderImages::new(&dir, 32), &plan, cfg, &mut |_| ())
        .unwrap_err()
        .to_string();
    assert!(err.contains("spatial/samples is not a folder"), "{err}");
}

#[test]
fn an_empty_category_is_an_error_not_a_missing_row() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../datasets/splits/val.tsv");
    let mut entries = load_split(&path).unwrap();
    entries.retain(|e| e.prompt.category != Category::Texture);
    let err = Plan::from_split(&entries, Category::COMPBENCH)
        .unwrap_err()
        .to_string();
    assert!(err.contains("'texture' has no prompts"), "{err}");
}

fn shipped() -> Option<bench_compbench::UmmGenerator> {
    let ckpt = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../datasets/checkpoints/base-tiny.safetensors");
    let sample = umm_model::sampler::SampleConfig {
        steps: 8,
        ..Default::default()
    };
    Some(
        bench_compbench::UmmGenerator::load(&ckpt, sample, 16, &burn::prelude::Device::flex())
            .unwrap(),
    )
}

#[test]
fn model_images_rescore_exactly_from_the_exported_folder() {
    // Generated images are not clean renders: scores near the oracle's thresholds move if
    // the PNG's 8-bit rounding is skipped. Every image is scored as stored.
    let plan = small_plan();
    let cfg = BenchConfig {
        samples: 2,
        first_seed: 42,
    };
    let mut g = shipped().unwrap();
    let (made, images) = run(&mut g, &plan, cfg, &mut |_| ()).unwrap();
    let dir = scratch("umm-roundtrip");
    let mut k = 0;
    for (cat, prompts) in &plan.categories {
        let n = prompts.len() * cfg.samples;
        export_category(&dir, cat, &plan.texts(cat), cfg.samples, &images[k..k + n]).unwrap();
        k += n;
    }
    let (again, loaded) = run(&mut FolderImages::new(&dir, 32), &plan, cfg, &mut |_| ()).unwrap();
    // The scored images are exactly the stored ones, so the scores agree too.
    assert!(
        images == loaded,
        "scored images differ from the exported PNGs"
    );
    for (a, b) in made.images.iter().zip(&again.images) {
        assert_eq!(
            (&a.file, a.score, &a.breakdown),
            (&b.file, b.score, &b.breakdown)
        );
    }
}

#[test]
fn a_model_image_depends_on_its_seed_not_on_its_batch() {
    use bench_compbench::{Generator, Request};
    let req = |prompt_index: usize, prompt: &'static str, seed: u64| Request {
        category: "color",
        prompt,
        prompt_index,
        sample: 0,
        samples_per_prompt: 1,
        seed,
    };
    let mut g = shipped().unwrap();
    let alone = g.generate(&[req(0, "a red circle", 42)]).unwrap();
    let batch = g
        .generate(&[
            req(0, "a blue square", 7),
            req(1, "a red circle", 42),
            req(2, "a red circle", 43),
        ])
        .unwrap();
    let diff = |a: &compworld::Image, b: &compworld::Image| {
        a.data
            .iter()
            .zip(&b.data)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max)
    };
    assert!(
        diff(&alone[0], &batch[1]) < 1e-4,
        "{}",
        diff(&alone[0], &batch[1])
    );
    // Another seed gives another image.
    assert!(diff(&batch[1], &batch[2]) > 0.05);
}
