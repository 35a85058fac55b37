//! Every official prompt file in ../shared/datasets parses, with the right counts and lines.

use bench_compbench::geneval::read_metadata;
use bench_compbench::official::read_prompt_file;

use crate::shared_datasets;

/// (file, prompts, distinct duplicated prompts, first prompt, last prompt) as counted with
/// `grep -c ''` and `sort | uniq -d` on the copies in ../shared.
const COMPBENCH: &[(&str, usize, usize, &str, &str)] = &[
    (
        "color_val.txt",
        300,
        0,
        "a green bench and a blue bowl",
        "a black bathroom with a black and white shower curtain",
    ),
    (
        "shape_val.txt",
        300,
        0,
        "an oblong cucumber and a teardrop plum",
        "The big house and the small cabin provided different types of accommodations.",
    ),
    (
        "texture_val.txt",
        300,
        0,
        "a plastic toy and a glass bottle",
        "The metallic pen and fluffy notebook jot down ideas on the wooden desk.",
    ),
    (
        "spatial_val.txt",
        300,
        0,
        "a giraffe next to a lamp",
        "a pig on the bottom of a wallet",
    ),
    (
        "3d_spatial_val.txt",
        300,
        0,
        "a dog in front of a desk",
        "a fish in front of a book",
    ),
    (
        "numeracy_val.txt",
        300,
        0,
        "two boys",
        "two cups, three paintings, four lamps, and four bananas decorated the art studio",
    ),
    (
        "non_spatial_val.txt",
        300,
        0,
        "A person is looking at a rainbow and marveling at its beauty.",
        "A child is playing with a toy construction set and building a tower.",
    ),
    (
        "complex_val.txt",
        300,
        0,
        "The red hat was on top of the brown coat rack.",
        "The towering, majestic elephants strode through the savanna, their powerful trunks reaching for the leaves of the trees.",
    ),
];

#[test]
fn every_t2i_compbench_prompt_file_parses() {
    let Some(d) = shared_datasets("every_t2i_compbench_prompt_file_parses") else {
        return;
    };
    let dir = d.join("t2i-compbench");
    let mut files = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let path = e.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.ends_with(".txt") || name.starts_with("LICENSE") {
            continue;
        }
        let f = read_prompt_file(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        // No prompt keeps a carriage return or surrounding spaces.
        assert!(
            f.prompts.iter().all(|p| !p.contains('\r') && p.trim() == p),
            "{name}"
        );
        // Counted independently: non-blank lines of the raw text.
        let raw = std::fs::read_to_string(&path).unwrap();
        let lines = raw.lines().filter(|l| !l.trim().is_empty()).count();
        assert_eq!(f.prompts.len(), lines, "{name}");
        files += 1;
    }
    assert_eq!(files, 37, "prompt files in {}", dir.display());

    for &(file, n, dups, first, last) in COMPBENCH {
        let f = read_prompt_file(&dir.join(file)).unwrap();
        assert_eq!(f.prompts.len(), n, "{file}");
        assert_eq!(f.duplicates.len(), dups, "{file}");
        assert_eq!(f.prompts[0], first, "{file}");
        assert_eq!(f.prompts[n - 1], last, "{file}");
    }
    // CRLF, UTF-8 and duplicates in the full lists.
    let color = read_prompt_file(&dir.join("color.txt")).unwrap();
    assert_eq!(color.duplicates.len(), 18);
    let non_spatial = read_prompt_file(&dir.join("non_spatial.txt")).unwrap();
    assert_eq!(
        non_spatial.prompts[4],
        "A person is wearing sunglasses and people-watching at a caf\u{e9}."
    );
    let shape = read_prompt_file(&dir.join("shape.txt")).unwrap();
    assert_eq!(
        shape.prompts[186],
        "a conical birthday hat and a spherical pi\u{f1}ata"
    );
}

#[test]
fn geneval_metadata_and_lists_parse() {
    let Some(d) = shared_datasets("geneval_metadata_and_lists_parse") else {
        return;
    };
    let dir = d.join("geneval");
    let meta = read_metadata(&dir.join("evaluation_metadata.jsonl")).unwrap();
    assert_eq!(meta.len(), 553);
    assert_eq!(meta[0].prompt, "a photo of a bench");
    assert_eq!(meta[0].tag, "single_object");
    let mut tags: Vec<&str> = meta.iter().map(|m| m.tag.as_str()).collect();
    tags.sort_unstable();
    tags.dedup();
    assert_eq!(
        tags,
        [
            "color_attr",
            "colors",
            "counting",
            "position",
            "single_object",
            "two_object"
        ]
    );
    // The plain prompt list has the same prompts in the same order.
    let prompts = read_prompt_file(&dir.join("generation_prompts.txt")).unwrap();
    assert_eq!(prompts.prompts.len(), 553);
    assert!(
        prompts
            .prompts
            .iter()
            .zip(&meta)
            .all(|(p, m)| *p == m.prompt)
    );
    let objects = read_prompt_file(&dir.join("object_names.txt")).unwrap();
    assert_eq!(objects.prompts.len(), 80);
    assert_eq!(objects.prompts[0], "person");
}
