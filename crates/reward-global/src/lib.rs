//! reward-global: the global half of SRUM's self-reward (DESIGN.md section 1, step 4).
//!
//! The model is asked, about the whole image, the question it was pretrained to answer for
//! whole prompts, `does this image show : <prompt> ?`, and the global score is read off its
//! next-token distribution at `<ans>`:
//!
//! `g = (P(yes) - P(no)) / (P(yes) + P(no))`, in [-1, 1]
//!
//! (the two probabilities renormalised to the yes/no choice: +1 when the model is sure the
//! image shows the prompt, -1 when it is sure it does not, 0 when it cannot tell). A model
//! that answers prompt matches with its reasons (`UmmConfig::prompt_match_rationale`) writes
//! them first, and the probabilities are those of its verdict
//! (`umm_model::understand::prompt_match_yes_no`). Reasoning
//! prompts ("a cross the colour of a carrot") reach the model as written, so inferring what
//! they mean is the model's own job. As in the reference, a sample whose global score is
//! exactly 0 carries no signal and may be dropped ([`keep`]).
//!
//! [`GlobalMode::Combined`] (the default of [`self_rewards`]) averages that answer with the
//! phrase coverage of the model's own region names (`reward_local::region::phrase_coverage`:
//! how many of the objects the prompt states, with their attributes and counts, the model
//! finds when it names the regions), `g = (g_question + coverage) / 2`, or `g_question` alone
//! when the prompt states no object. Both halves come from the model's understanding; the
//! second uses its strongest skill (naming a region: 0.96 on the test split) where the whole-
//! image question is its weakest (0.63). `cargo xtask reward-calibration` reports the AUC of
//! both.
//!
//! [`GlobalMode::Constraints`] asks instead, about the whole image, the questions the model was
//! pretrained on for each object the prompt states literally ([`constraint_questions`]: "is
//! there a red circle ?", "what texture is the circle ?", "how many circles ?"), reads each
//! wanted answer's probability among its alternatives, and multiplies them over every phrase:
//! `g = 2 x product - 1`, the model's estimate that everything stated holds ([`constraint_score`];
//! colours given by reference are resolved by the model, as for the coverage). A prompt that
//! states no object literally ("a traffic light") falls back to the prompt-match answer.
//!
//! **Invariant:** nothing here depends on the benchmark oracle or reads a scene's ground truth.

use burn::prelude::*;
use compworld::Image;
use reward_local::Result;
use reward_local::phrases::Phrase;
use reward_local::region::check_input;
use umm_model::understand::{first_word_probs, prompt_match_yes_no, word_id};
use umm_model::{Tokenizer, Umm, UmmConfig};

/// `g` from the model's probabilities of "yes" and "no" (0 when both are 0).
pub fn score_from(p_yes: f32, p_no: f32) -> f32 {
    let s = p_yes + p_no;
    if s <= 0.0 {
        0.0
    } else {
        ((p_yes - p_no) / s).clamp(-1.0, 1.0)
    }
}

/// Whether a sample with global score `g` is kept for training (the reference drops g = 0).
pub fn keep(g: f32) -> bool {
    g != 0.0
}

/// The global score of each `(image, prompt)`, asked in batches. Images must be at the model's
/// resolution; prompts must be non-empty and in its vocabulary.
pub fn global_scores(
    model: &Umm,
    cfg: &UmmConfig,
    tok: &dyn Tokenizer,
    items: &[(&Image, &str)],
    device: &Device,
) -> Result<Vec<f32>> {
    for (img, prompt) in items {
        check_input(cfg, tok, img, prompt)?;
    }
    let asked: Vec<(&str, &Image)> = items.iter().map(|(img, p)| (*p, *img)).collect();
    Ok(prompt_match_yes_no(model, cfg, tok, &asked, device)?
        .into_iter()
        .map(|(y, n)| score_from(y, n))
        .collect())
}

/// One question of [`constraint_questions`]: the words its answer may begin with, and the
/// one that satisfies the prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConstraintQuestion {
    pub question: String,
    /// The answer words the model's choice is renormalised over.
    pub choices: Vec<&'static str>,
    /// The word among `choices` that satisfies the prompt.
    pub wanted: &'static str,
}

const COUNT_WORDS: [&str; 7] = ["zero", "one", "two", "three", "four", "five", "six"];

/// The questions that check one literal phrase, each worded as the model was pretrained to be
/// asked (compworld's presence, attribute and count questions): "is there a [size] [colour]
/// <shape> ?" (yes), "what texture is the <shape> ?" when the phrase states a texture, and "how
/// many <shapes> ?" when it states a count of two or more.
pub fn constraint_questions(p: &Phrase) -> Vec<ConstraintQuestion> {
    let mut words: Vec<&str> = Vec::new();
    words.extend(p.size.map(|z| z.word()));
    words.extend(p.colour.map(|c| c.word()));
    words.push(p.shape.word());
    let article = if words[0].starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    let mut out = vec![ConstraintQuestion {
        question: format!("is there {article} {} ?", words.join(" ")),
        choices: vec!["yes", "no"],
        wanted: "yes",
    }];
    if let Some(t) = p.texture {
        out.push(ConstraintQuestion {
            question: format!("what texture is the {} ?", p.shape.word()),
            choices: compworld::Texture::ALL.iter().map(|t| t.word()).collect(),
            wanted: t.word(),
        });
    }
    if let Some(n) = p.count.filter(|&n| n >= 2) {
        out.push(ConstraintQuestion {
            question: format!("how many {} ?", p.shape.plural()),
            choices: COUNT_WORDS.to_vec(),
            wanted: COUNT_WORDS[usize::from(n).min(6)],
        });
    }
    out
}

/// The probability of `q.wanted` among `q.choices` in the distribution `probs` over the
/// vocabulary (0.5 when the model gives the choices no mass at all).
pub fn choice_probability(
    tok: &dyn Tokenizer,
    q: &ConstraintQuestion,
    probs: &[f32],
) -> Result<f32> {
    let mut total = 0.0;
    let mut wanted = 0.0;
    for &w in &q.choices {
        let p = probs[word_id(tok, w)?];
        total += p;
        if w == q.wanted {
            wanted = p;
        }
    }
    Ok(if total > 0.0 { wanted / total } else { 0.5 })
}

/// For each image with the literal phrases of its prompt (as `reward_local::region::
/// resolve_colours` gives them), each phrase's probability of being satisfied: the product of
/// [`choice_probability`] over its [`constraint_questions`], asked about the whole image.
pub fn phrase_probabilities(
    model: &Umm,
    cfg: &UmmConfig,
    tok: &dyn Tokenizer,
    items: &[(&Image, &[Phrase])],
    device: &Device,
) -> Result<Vec<Vec<f32>>> {
    let per: Vec<Vec<Vec<ConstraintQuestion>>> = items
        .iter()
        .map(|(_, ps)| ps.iter().map(constraint_questions).collect())
        .collect();
    let questions: Vec<(String, Image)> = items
        .iter()
        .zip(&per)
        .flat_map(|((img, _), ps)| {
            ps.iter()
                .flatten()
                .map(move |q| (q.question.clone(), (*img).clone()))
        })
        .collect();
    let probs = if questions.is_empty() {
        Vec::new()
    } else {
        first_word_probs(model, cfg, tok, &questions, device)?
    };
    let mut next = probs.iter();
    per.iter()
        .map(|ps| {
            ps.iter()
                .map(|qs| {
                    qs.iter().try_fold(1.0, |acc, q| {
                        let p = next.next().expect("one distribution per question");
                        Ok(acc * choice_probability(tok, q, p)?)
                    })
                })
                .collect()
        })
        .collect()
}

/// The constraint score of an image from its phrases' probabilities: `2 x product - 1`, the
/// model's estimate that every phrase holds, in [-1, 1]; `None` without phrases.
pub fn constraint_score(phrase_probs: &[f32]) -> Option<f32> {
    (!phrase_probs.is_empty()).then(|| 2.0 * phrase_probs.iter().product::<f32>() - 1.0)
}

/// How the global score is read off the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GlobalMode {
    /// The prompt-match answer alone.
    Question,
    /// The answer averaged with the phrase coverage of the region names.
    Combined,
    /// The [`constraint_score`] of the prompt's literal phrases (one whole-image question per
    /// stated attribute and count), or the prompt-match answer when the prompt states none.
    Constraints,
}

impl GlobalMode {
    /// The name used in configs and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            GlobalMode::Question => "question",
            GlobalMode::Combined => "combined",
            GlobalMode::Constraints => "constraints",
        }
    }
}

impl std::str::FromStr for GlobalMode {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        [
            GlobalMode::Question,
            GlobalMode::Combined,
            GlobalMode::Constraints,
        ]
        .into_iter()
        .find(|m| m.name() == s)
        .ok_or_else(|| {
            format!("unknown global mode '{s}' (expected question, combined or constraints)")
        })
    }
}

/// The global score of one image in `mode` from its question score, phrase coverage and
/// constraint score (`None` when the prompt states no literal phrase).
pub fn combine(
    mode: GlobalMode,
    question: f32,
    coverage: Option<f32>,
    constraint: Option<f32>,
) -> f32 {
    match (mode, coverage, constraint) {
        (GlobalMode::Combined, Some(c), _) => (question + c) / 2.0,
        (GlobalMode::Constraints, _, Some(c)) => c,
        _ => question,
    }
}

/// Everything that decides a self-reward besides the model.
#[derive(Debug, Clone, PartialEq)]
pub struct RewardConfig {
    pub proposer: reward_local::ProposerConfig,
    pub map: reward_local::MapConfig,
    pub global: GlobalMode,
    /// How region names become scores.
    pub regions: reward_local::RegionScoring,
}

impl Default for RewardConfig {
    fn default() -> Self {
        RewardConfig {
            proposer: reward_local::ProposerConfig::default(),
            map: reward_local::MapConfig::default(),
            global: GlobalMode::Combined,
            regions: reward_local::RegionScoring::Greedy,
        }
    }
}

/// The whole self-reward of one image: what the model said and the map made of it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SelfReward {
    /// The global score g (see [`GlobalMode`]).
    pub global: f32,
    /// The prompt-match half of it.
    pub global_question: f32,
    /// The phrase coverage half (`None`: the prompt states no object).
    pub coverage: Option<f32>,
    /// The [`constraint_score`] (`None`: the prompt states no literal phrase, or `global` is
    /// not [`GlobalMode::Constraints`], the only mode that asks its questions).
    pub constraint: Option<f32>,
    /// Whether the sample is kept for training ([`keep`]).
    pub kept: bool,
    /// Proposed regions with the model's names and their scores.
    pub regions: Vec<reward_local::RegionScore>,
    /// The reward map, `resolution x resolution`, row-major.
    #[serde(skip)]
    pub map: Vec<f32>,
    /// The map averaged per generation token (patchify order).
    pub token_weights: Vec<f32>,
}

/// Scores a batch of `(image, prompt)`: proposals, region names and scores, the global score,
/// the reward map and its token weights. An item with bad input (wrong size, empty prompt,
/// unknown word) gets its own error and the others are still scored.
pub fn self_rewards(
    model: &Umm,
    cfg: &UmmConfig,
    tok: &dyn Tokenizer,
    items: &[(&Image, &str)],
    rc: &RewardConfig,
    device: &Device,
) -> Vec<Result<SelfReward>> {
    let (proposer, map, mode) = (&rc.proposer, &rc.map, rc.global);
    let checked: Vec<Result<()>> = items
        .iter()
        .map(|(img, p)| check_input(cfg, tok, img, p))
        .collect();
    let good: Vec<usize> = (0..items.len()).filter(|&k| checked[k].is_ok()).collect();
    let proposals: Vec<Vec<reward_local::BoxPx>> = good
        .iter()
        .map(|&k| reward_local::propose(items[k].0, proposer))
        .collect();
    #[allow(clippy::type_complexity)]
    let batch = || -> Result<(Vec<f32>, Vec<reward_local::ImageRegions>, Vec<Option<f32>>)> {
        let g_items: Vec<(&Image, &str)> = good.iter().map(|&k| items[k]).collect();
        let g = global_scores(model, cfg, tok, &g_items, device)?;
        let r_items: Vec<(&Image, &str, &[reward_local::BoxPx])> = good
            .iter()
            .zip(&proposals)
            .map(|(&k, b)| (items[k].0, items[k].1, b.as_slice()))
            .collect();
        let r = reward_local::score_regions_with(model, cfg, tok, &r_items, rc.regions, device)?;
        let c: Vec<Option<f32>> = if mode == GlobalMode::Constraints {
            let phrases = reward_local::region::resolve_colours(
                model,
                cfg,
                tok,
                g_items.iter().map(|(_, p)| *p),
                device,
            )?;
            let c_items: Vec<(&Image, &[Phrase])> = g_items
                .iter()
                .zip(&phrases)
                .map(|((img, _), ps)| (*img, ps.as_slice()))
                .collect();
            phrase_probabilities(model, cfg, tok, &c_items, device)?
                .iter()
                .map(|p| constraint_score(p))
                .collect()
        } else {
            vec![None; g_items.len()]
        };
        Ok((g, r, c))
    };
    let (g, regions, constraints) = match batch() {
        Ok(v) => v,
        Err(e) => {
            let msg = e.to_string();
            return items
                .iter()
                .map(|_| Err(reward_local::Error::Input(msg.clone())))
                .collect();
        }
    };
    let mut scored = good.iter().zip(g.into_iter().zip(regions).zip(constraints));
    let res = cfg.resolution;
    checked
        .into_iter()
        .map(|c| {
            c?;
            let (_, ((question, found), constraint)) =
                scored.next().expect("one score per good item");
            let global = combine(mode, question, found.coverage, constraint);
            let regions = found.regions;
            let boxes: Vec<reward_local::ScoredBox> = regions
                .iter()
                .map(|r| reward_local::ScoredBox {
                    bbox: r.bbox,
                    score: r.score,
                })
                .collect();
            let m = reward_local::reward_map(res, res, global, &boxes, map);
            Ok(SelfReward {
                global,
                global_question: question,
                coverage: found.coverage,
                constraint,
                kept: keep(global),
                token_weights: reward_local::token_weights(&m, res, res, cfg.patch),
                map: m,
                regions,
            })
        })
        .collect()
}
