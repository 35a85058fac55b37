//! Integration tests of the ReasonBench-style benchmark.

use std::path::PathBuf;

use bench_compbench::{BenchConfig, NoiseImages, Plan, TrueRenders};
use bench_reasonbench::official::{export_folder, numbered, read_prompt_json};
use bench_reasonbench::{DIMENSIONS, answer, questions, run};
use compworld::splits::load_split;
use compworld::{Prompt, Rng, render, sample_scene};

fn val_plan() -> Plan {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../datasets/splits/val.tsv");
    Plan::from_split(&load_split(&path).unwrap(), DIMENSIONS).unwrap()
}

fn scratch(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn questions_follow_the_explicit_meaning() {
    let p = Prompt::parse("two plus one blue diamonds").unwrap();
    let q: Vec<String> = questions(&p.meaning)
        .into_iter()
        .map(|q| q.question)
        .collect();
    // A counted phrase is one count question (presence is its half credit).
    assert_eq!(q, ["are there exactly 3 of: blue diamond?"]);
    let p = Prompt::parse("two minus one orange crosses and a blue circle").unwrap();
    let q: Vec<String> = questions(&p.meaning)
        .into_iter()
        .map(|q| q.question)
        .collect();
    assert_eq!(
        q,
        [
            "are there exactly 1 of: orange cross?",
            "is there a blue circle?"
        ]
    );
    let p = Prompt::parse("a cross the colour of a carrot").unwrap();
    assert_eq!(
        questions(&p.meaning)[0].question,
        "is there an orange cross?"
    );
}

#[test]
fn the_oracle_answers_one_for_truth_and_partial_or_zero_for_mistakes() {
    let p = Prompt::parse("two plus one blue diamonds").unwrap();
    let mut rng = Rng::new(5);
    let truth = render(&sample_scene(&p.meaning, &p.text, &mut rng).unwrap(), 32);
    assert_eq!(answer(&truth, &p), [1.0]);
    // Two blue diamonds instead of three: present, count half right.
    let two = Prompt::parse("two blue diamonds").unwrap();
    let img = render(
        &sample_scene(&two.meaning, &two.text, &mut rng).unwrap(),
        32,
    );
    assert_eq!(answer(&img, &p), [0.5]);
    // Red diamonds: nothing of it.
    let red = Prompt::parse("three red diamonds").unwrap();
    let img = render(
        &sample_scene(&red.meaning, &red.text, &mut rng).unwrap(),
        32,
    );
    assert_eq!(answer(&img, &p), [0.0]);
}

#[test]
fn a_perfect_generator_scores_at_least_99_and_noise_at_most_5() {
    let plan = val_plan();
    assert_eq!(plan.categories.len(), 4);
    let cfg = BenchConfig {
        samples: 2,
        first_seed: 42,
    };
    let (perfect, _) = run(&mut TrueRenders { resolution: 32 }, &plan, cfg, &mut |_| ()).unwrap();
    let (noise, _) = run(&mut NoiseImages { resolution: 32 }, &plan, cfg, &mut |_| ()).unwrap();
    for ((d, p), (_, n)) in perfect
        .category_scores()
        .into_iter()
        .zip(noise.category_scores())
    {
        println!("{d}: perfect {:.2}, noise {:.2}", p.score, n.score);
        assert!(p.score >= 99.0, "{d}: perfect {:.2}", p.score);
        assert!(n.score <= 5.0, "{d}: noise {:.2}", n.score);
    }
    // Breakdown: one answered question per constraint.
    let r = &perfect.images[0];
    assert!(!r.breakdown.is_empty());
    assert!(r.file.starts_with("entity/0001.png"), "{}", r.file);
    // Geometry continues arithmetic's numbering in the official `scientific` folder.
    let n_arith = plan.categories[1].1.len();
    let g = perfect
        .images
        .iter()
        .find(|r| r.category == "geometry")
        .unwrap();
    assert_eq!(g.file, format!("scientific/{:04}.png", n_arith + 1));
}

#[test]
fn official_layout_numbers_images_by_prompt_id() {
    let plan = val_plan();
    let folders = numbered(&plan.categories);
    let names: Vec<&str> = folders.iter().map(|(f, _)| *f).collect();
    assert_eq!(names, ["entity", "scientific", "idiom"]);
    let (_, sci) = &folders[1];
    assert_eq!(
        sci.len(),
        plan.categories[1].1.len() + plan.categories[2].1.len()
    );
    assert!(sci.iter().enumerate().all(|(i, p)| p.id == i + 1));
    let dir = scratch("reason-official");
    let few = &folders[0].1[..5];
    let imgs: Vec<_> = (0..5)
        .map(|_| compworld::Image::filled(32, 32, [0.5, 0.5, 0.5]))
        .collect();
    let out = export_folder(&dir, "entity", few, &imgs).unwrap();
    let mut files: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".png"))
        .collect();
    files.sort();
    assert_eq!(
        files,
        ["0001.png", "0002.png", "0003.png", "0004.png", "0005.png"]
    );
    // The judge scripts take `int(name[0:4])` as the prompt id.
    let back = read_prompt_json(&out.join("prompts.json")).unwrap();
    for f in &files {
        let id: usize = f[0..4].parse().unwrap();
        assert_eq!(back[id - 1].id, id);
        assert_eq!(back[id - 1].prompt, few[id - 1].prompt);
    }
}

#[test]
fn checkout_prompt_files_parse_and_bad_ones_are_refused() {
    let dir = scratch("reason-json");
    let ok = dir.join("entity.json");
    std::fs::write(
        &ok,
        r#"[{"id": 1, "prompt": "the flag of a country"}, {"prompt": "a fruit", "extra": 3}]"#,
    )
    .unwrap();
    let ps = read_prompt_json(&ok).unwrap();
    assert_eq!(ps.len(), 2);
    assert_eq!((ps[0].id, ps[1].id), (1, 2));
    assert_eq!(ps[1].prompt, "a fruit");
    let bad = dir.join("bad.json");
    std::fs::write(&bad, r#"[{"text": "x"}]"#).unwrap();
    let e = read_prompt_json(&bad).unwrap_err().to_string();
    assert!(e.contains("no string field 'prompt'"), "{e}");
    std::fs::write(&bad, "[]").unwrap();
    assert!(
        read_prompt_json(&bad)
            .unwrap_err()
            .to_string()
            .contains("no prompts")
    );
    std::fs::write(&bad, "{\"prompt\": 1").unwrap();
    assert!(
        read_prompt_json(&bad)
            .unwrap_err()
            .to_string()
            .contains("bad.json")
    );
    let e = read_prompt_json(&dir.join("missing.json"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("missing.json"), "{e}");
}
