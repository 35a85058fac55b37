//! The exported layouts, read back by the official scripts' own rules.

use std::path::Path;

use bench_compbench::geneval::{self, read_metadata};
use bench_compbench::harness::import_official;
use bench_compbench::official::{
    check_samples_dir, compbench_file_name, export_category, read_prompt_file,
};
use bench_compbench::{Generator, NoiseImages, Request};

use crate::{scratch, shared_datasets};

/// What the official T2I-CompBench scripts do with a file name (Python semantics).
fn official_prompt(name: &str) -> &str {
    name.split('_').next().unwrap()
}
fn official_counter(name: &str) -> i64 {
    name.rsplit('_')
        .next()
        .unwrap()
        .split('.')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

fn noise_images(prompts: &[String], n: usize) -> Vec<compworld::Image> {
    let reqs: Vec<Request<'_>> = prompts
        .iter()
        .enumerate()
        .flat_map(|(i, p)| {
            (0..n).map(move |k| Request {
                category: "color",
                prompt: p,
                prompt_index: i,
                sample: k,
                samples_per_prompt: n,
                seed: 42 + k as u64,
            })
        })
        .collect();
    NoiseImages { resolution: 32 }.generate(&reqs).unwrap()
}

fn replay_official_rules(samples: &Path, prompts: &[String], n: usize) {
    let mut names: Vec<String> = std::fs::read_dir(samples)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().all(|f| f.ends_with(".png")),
        "only PNGs in samples/"
    );
    assert_eq!(names.len(), prompts.len() * n);
    // The scripts sort by the counter and take the k-th image as question k.
    names.sort_by_key(|f| official_counter(f));
    for (k, name) in names.iter().enumerate() {
        assert_eq!(official_counter(name), k as i64, "{name}");
        assert_eq!(official_prompt(name), prompts[k / n], "{name}");
    }
}

#[test]
fn official_compbench_layout_reads_back_by_the_scripts_rules() {
    let Some(d) = shared_datasets("official_compbench_layout_reads_back_by_the_scripts_rules")
    else {
        return;
    };
    let dir = scratch("official-layout");
    // Every val prompt of every category can be named; a few are written and read back.
    for cat in [
        "color",
        "shape",
        "texture",
        "spatial",
        "3d_spatial",
        "numeracy",
        "non_spatial",
        "complex",
    ] {
        let f = read_prompt_file(&d.join(format!("t2i-compbench/{cat}_val.txt"))).unwrap();
        for (i, p) in f.prompts.iter().enumerate() {
            let name = compbench_file_name(p, i * 10 + 9).unwrap();
            assert_eq!(official_prompt(&name), p);
            assert_eq!(official_counter(&name), (i * 10 + 9) as i64);
        }
        let prompts = &f.prompts[..4];
        let samples = export_category(&dir, cat, prompts, 3, &noise_images(prompts, 3)).unwrap();
        replay_official_rules(&samples, prompts, 3);
        assert_eq!(check_samples_dir(&samples).unwrap().len(), 12);
    }
}

#[test]
fn names_the_official_scripts_would_misread_are_refused() {
    let err = compbench_file_name("a red_circle", 0)
        .unwrap_err()
        .to_string();
    assert!(err.contains("contains '_'"), "{err}");
    assert!(compbench_file_name("a cat/dog", 0).is_err());
    assert!(
        compbench_file_name(&"a".repeat(300), 0)
            .unwrap_err()
            .to_string()
            .contains("300 bytes")
    );
    assert_eq!(
        compbench_file_name("a red circle.", 17).unwrap(),
        "a red circle._000017.png"
    );
}

#[test]
fn official_result_files_come_back_as_a_summary() {
    let dir = scratch("import");
    let prompts: Vec<String> = ["a red circle", "a blue square"].map(String::from).to_vec();
    export_category(&dir, "color", &prompts, 2, &noise_images(&prompts, 2)).unwrap();
    let res = dir.join("color/annotation_blip");
    std::fs::create_dir_all(&res).unwrap();
    // BLIP-VQA writes answers as strings; ids follow the counter order.
    std::fs::write(
        res.join("vqa_result.json"),
        r#"[{"question_id": 0, "answer": "1.0000"}, {"question_id": 1, "answer": "0.5000"},
            {"question_id": 2, "answer": "0.2500"}, {"question_id": 3, "answer": 0.25}]"#,
    )
    .unwrap();
    let r = import_official(&dir, &["color"], 2).unwrap();
    assert_eq!(r.images.len(), 4);
    assert_eq!(r.images[2].prompt, "a blue square");
    assert_eq!((r.images[2].prompt_index, r.images[2].sample), (1, 0));
    assert!((r.overall() - 50.0).abs() < 1e-9, "{}", r.overall());
    // One score too few: an error, not a shifted pairing.
    std::fs::write(
        res.join("vqa_result.json"),
        r#"[{"question_id": 0, "answer": "1"}, {"question_id": 1, "answer": "1"}, {"question_id": 2, "answer": "1"}]"#,
    )
    .unwrap();
    let err = import_official(&dir, &["color"], 2)
        .unwrap_err()
        .to_string();
    assert!(err.contains("3 scores for 4 images"), "{err}");
    // A category without a result file.
    let err = import_official(&dir, &["spatial"], 2)
        .unwrap_err()
        .to_string();
    assert!(err.contains("annotation_obj_detection_2d"), "{err}");
}

#[test]
fn geneval_layout_matches_its_evaluator() {
    let Some(d) = shared_datasets("geneval_layout_matches_its_evaluator") else {
        return;
    };
    let meta = read_metadata(&d.join("geneval/evaluation_metadata.jsonl")).unwrap();
    let dir = scratch("geneval");
    let some: Vec<_> = meta.iter().step_by(100).cloned().collect();
    let folders = geneval::export(&dir, &some, 4, 42, &mut NoiseImages { resolution: 32 }).unwrap();
    assert_eq!(folders.len(), 6);
    for (i, f) in folders.iter().enumerate() {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        // evaluate_images.py: folder names are all digits, metadata is one JSON object.
        assert!(
            name.len() == 5 && name.chars().all(|c| c.is_ascii_digit()),
            "{name}"
        );
        assert_eq!(name.parse::<usize>().unwrap(), i);
        let m: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(f.join("metadata.jsonl")).unwrap())
                .unwrap();
        assert_eq!(m["prompt"], some[i].prompt.as_str());
        let mut imgs: Vec<String> = std::fs::read_dir(f.join("samples"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        imgs.sort();
        assert_eq!(imgs, ["0000.png", "0001.png", "0002.png", "0003.png"]);
        // `re.match(r"\d+\.png", name)`.
        assert!(imgs.iter().all(|n| {
            let stem = n.strip_suffix(".png").unwrap();
            !stem.is_empty() && stem.chars().all(|c| c.is_ascii_digit())
        }));
    }
}

#[test]
fn bad_prompt_files_give_one_clear_error() {
    let dir = scratch("bad-prompts");
    let err = read_prompt_file(&dir.join("nope.txt"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("nope.txt"), "{err}");
    std::fs::write(dir.join("empty.txt"), "\r\n\n  \n").unwrap();
    let err = read_prompt_file(&dir.join("empty.txt"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("no prompts"), "{err}");
    std::fs::write(dir.join("latin1.txt"), b"a red circle\nna\xefve\n").unwrap();
    let err = read_prompt_file(&dir.join("latin1.txt"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("latin1.txt:2: not valid UTF-8"), "{err}");
    // BOM, CRLF, trailing blank lines and a duplicate.
    std::fs::write(
        dir.join("ok.txt"),
        "\u{feff}a red circle\r\na blue square \r\na red circle\r\n\r\n\r\n",
    )
    .unwrap();
    let f = read_prompt_file(&dir.join("ok.txt")).unwrap();
    assert_eq!(f.prompts, ["a red circle", "a blue square", "a red circle"]);
    assert_eq!(f.duplicates, ["a red circle"]);
    assert_eq!(f.blank_lines, 2);
}
