//! bench-reasonbench: the ReasonBench-style benchmark.
//!
//! Four dimensions of compworld prompts whose meaning must be inferred: world knowledge
//! (`knowledge`, "a cross the colour of a carrot"), arithmetic ("two plus one blue
//! diamonds"), geometry ("a shape with four corners and a flat top") and named composites
//! ("a traffic light"). T2I-ReasonBench calls the first *entity* reasoning and the next two
//! *scientific*; composites, named things that stand for an arrangement, take the place of its
//! *idiom* dimension. compworld has no text rendering, so T2I-ReasonBench's *textual image
//! design* has no counterpart.
//!
//! Scoring follows the official two stages. Stage 1 turns each prompt's explicit meaning into
//! a question list with criteria ([`questions`]): one question per constraint. Stage 2 has the
//! oracle answer each question 1, 0.5 or 0 ([`answer`]); an image's accuracy is the mean of
//! its answers and a dimension's score is 100 x the mean accuracy of its images. `overall` is
//! the mean of the four dimensions.
//!
//! Official interop: [`official`] writes one image per prompt as `0001.png ... NNNN.png` in a
//! folder per official dimension (with a `prompts.json` saying which prompt each number is),
//! and reads the JSON prompt files of a user's T2I-ReasonBench checkout (not vendored: they
//! carry no licence).

pub mod official;

use bench_compbench::harness::run_with;
use bench_compbench::{BenchConfig, Generator, ImageScore, Plan, Report, Result};
use compworld::prompt::{Constraint, Meaning};
use compworld::{Category, Image, Prompt};
use serde::Serialize;

/// The four dimensions, in report order.
pub const DIMENSIONS: &[Category] = Category::REASONING;

/// One stage-1 question and its scoring criterion.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Question {
    pub question: String,
    pub criterion: String,
}

fn article(words: &str) -> &'static str {
    if words.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

/// Stage 1: one question per constraint of the prompt's explicit meaning, in
/// [`Meaning::constraints`] order.
pub fn questions(meaning: &Meaning) -> Vec<Question> {
    let d = |i: usize| meaning.phrases[i].spec.describe();
    meaning
        .constraints()
        .into_iter()
        .map(|c| match c {
            Constraint::Present { phrase } => Question {
                question: format!("is there {} {}?", article(&d(phrase)), d(phrase)),
                criterion: "1: one is drawn; 0: none".into(),
            },
            Constraint::Count { phrase, n } => Question {
                question: format!("are there exactly {n} of: {}?", d(phrase)),
                criterion: format!("1: exactly {n}; 0.5: at least one but not {n}; 0: none"),
            },
            Constraint::Relation { a, rel, b } => {
                let words = if rel.words().is_empty() {
                    rel.name().replace('_', " ")
                } else {
                    rel.words().join(" ")
                };
                Question {
                    question: format!("is the {} {words} the {}?", d(a), d(b)),
                    criterion: "1: both are drawn and the relation holds; 0: otherwise".into(),
                }
            }
        })
        .collect()
}

/// Stage 2: the oracle's answer (1, 0.5 or 0) to each question of [`questions`].
pub fn answer(img: &Image, prompt: &Prompt) -> Vec<f64> {
    // The numeracy rule gives counts their partial credit; presence and relations are
    // scored as in every category.
    let v = scene_oracle::score_perception(
        scene_oracle::perceive(img),
        &prompt.meaning,
        Category::Numeracy,
    );
    v.constraints
        .iter()
        .map(|c| (f64::from(c.score) * 2.0).round() / 2.0)
        .collect()
}

/// Runs the benchmark on the reasoning prompts of `plan`: images generated, questions
/// answered by the oracle, accuracy per image and score per dimension.
pub fn run(
    generator: &mut dyn Generator,
    plan: &Plan,
    cfg: BenchConfig,
    progress: &mut dyn FnMut(usize),
) -> Result<(Report, Vec<Image>)> {
    // Official folder and the id of each category's first prompt in it.
    let mut first_id = std::collections::HashMap::new();
    let mut next: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for (c, ps) in &plan.categories {
        let folder = Category::from_name(c)
            .ok()
            .and_then(official::official_dimension)
            .unwrap_or(c.as_str());
        let n = next.entry(folder).or_insert(1);
        first_id.insert(c.as_str(), (folder, *n));
        *n += ps.len();
    }
    run_with(
        "reasonbench",
        generator,
        plan,
        cfg,
        progress,
        &|r, img, p| {
            let qs = questions(&p.meaning);
            let a = answer(img, p);
            let accuracy = if a.is_empty() {
                0.0
            } else {
                a.iter().sum::<f64>() / a.len() as f64
            };
            let (folder, id) = first_id[r.category];
            Ok(ImageScore {
                category: r.category.to_string(),
                prompt_index: r.prompt_index,
                prompt: r.prompt.to_string(),
                sample: r.sample,
                seed: r.seed,
                file: format!("{folder}/{}", official::image_name(id + r.prompt_index)),
                score: accuracy,
                breakdown: qs.into_iter().map(|q| q.question).zip(a).collect(),
            })
        },
    )
}
