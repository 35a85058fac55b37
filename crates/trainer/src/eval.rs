//! Understanding evaluation: the model answers questions about rendered scenes and its answers
//! are compared with the truth the scenes were built from. No oracle is involved; the
//! generation side of the base-model gap is scored by `cargo xtask base-eval`.

use std::collections::BTreeMap;

use burn::prelude::*;
use compworld::violation::{applicable, violate};
use compworld::vqa::{describe, rationale, reasons, verdict};
use compworld::world::CANVAS_UNITS;
use compworld::{Image, Prompt, Rng, sample_scene};
use serde::{Deserialize, Serialize};
use umm_model::{Tokenizer, Umm, UmmConfig};

use crate::Result;
use crate::data::{REGION_QUESTION, prompt_match_question, question_image};

pub use umm_model::understand::answer;

/// Correct answers out of asked questions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Tally {
    pub correct: usize,
    pub total: usize,
}

impl Tally {
    fn add(&mut self, ok: bool) {
        self.correct += usize::from(ok);
        self.total += 1;
    }

    /// Fraction correct (0 when nothing was asked).
    pub fn accuracy(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.correct as f64 / self.total as f64
        }
    }
}

/// Understanding accuracy on a set of prompts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UndReport {
    /// "does this image show : <prompt> ?" about the true render (answer yes).
    pub match_yes: Tally,
    /// The same question about a render that breaks exactly one constraint (answer no).
    pub match_no: Tally,
    /// Per category: yes and no questions together (one of each per prompt when a
    /// violation exists).
    pub by_category: BTreeMap<String, (Tally, Tally)>,
    /// "what is this ?" about a crop around one object of the true render, exact answer.
    pub region: Tally,
    /// The "no" questions by the constraint their render breaks (`ViolationKind::name`):
    /// which violations the model lets through.
    #[serde(default)]
    pub no_by_violation: BTreeMap<String, Tally>,
    /// For a model that answers prompt matches with reasons (`prompt_match_rationale`): the
    /// answers whose reasons, every constraint's word and verdict, are exactly the truth's
    /// (`compworld::vqa::rationale`); empty otherwise.
    #[serde(default)]
    pub reasons_exact: Tally,
    /// The same answers whose verdict agrees with their own reasons (yes exactly when no
    /// reason says no): whether the verdict follows the reasons the model wrote.
    #[serde(default)]
    pub verdict_follows_reasons: Tally,
}

impl UndReport {
    /// Balanced prompt-match accuracy: the mean of the yes and no accuracies.
    pub fn prompt_match_acc(&self) -> f64 {
        0.5 * (self.match_yes.accuracy() + self.match_no.accuracy())
    }

    /// Balanced prompt-match accuracy of one category.
    pub fn category_acc(&self, name: &str) -> Option<f64> {
        self.by_category
            .get(name)
            .map(|(y, n)| 0.5 * (y.accuracy() + n.accuracy()))
    }
}

/// For an answer with reasons and the right one: whether its reasons are exactly the right
/// ones, and whether its verdict follows its own reasons (yes exactly when none says no).
/// An answer without `:` has no reasons: neither.
pub fn judge_reasons(got: &str, truth: &str) -> (bool, bool) {
    let Some(given) = reasons(got) else {
        return (false, false);
    };
    let broken = given.split(' ').any(|w| w == "no");
    (
        Some(given) == reasons(truth),
        verdict(got) == if broken { "no" } else { "yes" },
    )
}

/// Asks the model, for each prompt, whether the true render and a one-constraint violation
/// show the prompt, and what one object of the true render is. Scenes come from `seed`.
pub fn evaluate_understanding(
    model: &Umm,
    cfg: &UmmConfig,
    tok: &dyn Tokenizer,
    prompts: &[Prompt],
    seed: u64,
    device: &Device,
) -> Result<UndReport> {
    let mut rng = Rng::derive(seed, "eval-understanding");
    let res = cfg.resolution;
    /// What a question is tallied under.
    enum Asked {
        /// Prompt match about the true render, with the reasons of a right answer.
        Yes(String),
        /// Prompt match about a render that breaks this constraint, and the right reasons.
        No(&'static str, String),
        /// Region identification.
        Region,
    }
    // (question, image, expected answer, category, kind)
    let mut items: Vec<(String, Image, String, String, Asked)> = Vec::new();
    for p in prompts {
        let Ok(truth) = sample_scene(&p.meaning, &p.text, &mut rng) else {
            continue;
        };
        let q = prompt_match_question(&p.text);
        let cat = p.category.name().to_string();
        items.push((
            q.clone(),
            question_image(Some(&truth), None, res),
            "yes".into(),
            cat.clone(),
            Asked::Yes(rationale(&p.meaning, &p.meaning)),
        ));
        let mut kinds = applicable(&p.meaning);
        rng.shuffle(&mut kinds);
        let negative = kinds.iter().find_map(|&k| {
            let m = violate(&p.meaning, k, &mut rng)?;
            sample_scene(&m, &p.text, &mut rng)
                .ok()
                .map(|s| (s, k.name(), rationale(&p.meaning, &m)))
        });
        if let Some((s, broken, reasons)) = negative {
            items.push((
                q,
                question_image(Some(&s), None, res),
                "no".into(),
                cat.clone(),
                Asked::No(broken, reasons),
            ));
        }
        let o = *rng.pick(&truth.objects);
        let [x0, y0, x1, y1] = o.bbox();
        let pad = 1.0;
        let b = [
            (x0 - pad).max(0.0),
            (y0 - pad).max(0.0),
            (x1 + pad).min(CANVAS_UNITS),
            (y1 + pad).min(CANVAS_UNITS),
        ];
        items.push((
            REGION_QUESTION.into(),
            question_image(Some(&truth), Some(b), res),
            describe(&o),
            cat,
            Asked::Region,
        ));
    }
    let questions: Vec<(String, Image)> = items
        .iter()
        .map(|(q, i, ..)| (q.clone(), i.clone()))
        .collect();
    // Room for a prompt match's reasons when the model gives them (region names are shorter).
    let max_words = umm_model::understand::prompt_match_max_tokens(cfg).max(5);
    let answers = answer(model, cfg, tok, &questions, max_words, device)?;
    // A prompt match with reasons is judged by its verdict; every other answer as a whole.
    let right: Vec<bool> = items
        .iter()
        .zip(&answers)
        .map(|((_, _, want, _, asked), got)| match asked {
            Asked::Yes(_) | Asked::No(..) if cfg.prompt_match_rationale => verdict(got) == want,
            _ => got == want,
        })
        .collect();
    if std::env::var_os("SRUM_EVAL_DEBUG").is_some() {
        // The first 40 wrong answers.
        let wrong = items
            .iter()
            .zip(&answers)
            .zip(&right)
            .filter(|(_, ok)| !**ok)
            .map(|(item, _)| item);
        for ((q, _, want, _, asked), got) in wrong.take(40) {
            let kind = match asked {
                Asked::No(broken, _) => broken,
                Asked::Yes(_) => "true render",
                Asked::Region => "region",
            };
            eprintln!("{q} -> {got:?} (want {want:?}; {kind})");
        }
    }
    let mut r = UndReport::default();
    for (((_, _, _, cat, asked), got), &ok) in items.iter().zip(answers).zip(&right) {
        if let (Asked::Yes(truth) | Asked::No(_, truth), true) = (asked, cfg.prompt_match_rationale)
        {
            let (exact, follows) = judge_reasons(&got, truth);
            r.reasons_exact.add(exact);
            r.verdict_follows_reasons.add(follows);
        }
        match asked {
            Asked::Yes(_) => {
                r.match_yes.add(ok);
                r.by_category.entry(cat.clone()).or_default().0.add(ok);
            }
            Asked::No(broken, _) => {
                r.match_no.add(ok);
                r.by_category.entry(cat.clone()).or_default().1.add(ok);
                r.no_by_violation
                    .entry(broken.to_string())
                    .or_default()
                    .add(ok);
            }
            Asked::Region => r.region.add(ok),
        }
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::judge_reasons;

    #[test]
    fn reasons_are_judged_apart_from_the_verdict() {
        let truth = "circle yes squares no left yes : no";
        assert_eq!(judge_reasons(truth, truth), (true, true));
        // Right reasons, verdict against them.
        assert_eq!(
            judge_reasons("circle yes squares no left yes : yes", truth),
            (true, false)
        );
        // Wrong reasons, verdict following them (the commonest miss: a changed shape let by).
        assert_eq!(
            judge_reasons("circle yes squares yes left yes : yes", truth),
            (false, true)
        );
        assert_eq!(judge_reasons("yes", truth), (false, false));
    }
}
