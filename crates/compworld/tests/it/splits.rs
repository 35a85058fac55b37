use std::path::PathBuf;

use compworld::Category;
use compworld::splits::{PER_CATEGORY, SPLIT_NAMES, is_held_out, load_split, make_splits};

fn splits_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../datasets/splits")
}

#[test]
fn committed_splits_regenerate_byte_for_byte() {
    let s = make_splits(2026);
    for (k, name) in SPLIT_NAMES.iter().enumerate() {
        let path = splits_dir().join(format!("{name}.tsv"));
        let committed =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            committed == s.file_text(k),
            "{} differs from `compworld splits --seed 2026`",
            path.display()
        );
    }
}

#[test]
fn train_is_disjoint_and_never_binds_held_out_combinations() {
    let s = make_splits(2026);
    let train: std::collections::BTreeSet<&str> =
        s.splits[0].iter().map(|e| e.prompt.text.as_str()).collect();
    assert!(
        s.splits[0]
            .iter()
            .all(|e| !e.unseen && !is_held_out(&e.prompt))
    );
    for (name, split) in SPLIT_NAMES.iter().zip(&s.splits).skip(1) {
        for e in split {
            assert!(
                !train.contains(e.prompt.text.as_str()),
                "{} in train and {name}",
                e.prompt.text
            );
            assert_eq!(e.unseen, is_held_out(&e.prompt));
        }
    }
    // Every category is present in every split, and the colour category has unseen prompts.
    for (k, split) in s.splits.iter().enumerate() {
        for cat in Category::ALL {
            let n = split.iter().filter(|e| e.prompt.category == *cat).count();
            assert!(
                n > 0 && n <= PER_CATEGORY[k],
                "{} {cat}: {n}",
                SPLIT_NAMES[k]
            );
        }
    }
    let unseen_colour = s.splits[3]
        .iter()
        .filter(|e| e.unseen && e.prompt.category == Category::Colour)
        .count();
    assert!(unseen_colour >= PER_CATEGORY[3] / 4, "{unseen_colour}");
}

#[test]
fn loading_a_split_parses_every_prompt_and_reports_bad_lines() {
    let entries = load_split(&splits_dir().join("val.tsv")).unwrap();
    assert_eq!(entries.len(), make_splits(2026).splits[2].len());
    assert!(entries.iter().all(|e| !e.prompt.meaning.phrases.is_empty()));

    let dir = std::env::temp_dir().join(format!("compworld-split-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.tsv");
    std::fs::write(
        &bad,
        "category\tunseen\tprompt\ncolor\t0\ta red circle\ncolor\t0\ta red unicorn\n",
    )
    .unwrap();
    let e = load_split(&bad).unwrap_err().to_string();
    assert!(e.contains(":3:") && e.contains("'unicorn'"), "{e}");
    std::fs::write(&bad, "colour\t0\ta red circle\n").unwrap();
    let e = load_split(&bad).unwrap_err().to_string();
    assert!(
        e.contains(":1:") && e.contains("unknown category 'colour'"),
        "{e}"
    );
    std::fs::write(&bad, "color\ta red circle\n").unwrap();
    assert!(
        load_split(&bad)
            .unwrap_err()
            .to_string()
            .contains("3 tab-separated columns")
    );
    let _ = std::fs::remove_dir_all(&dir);
}
