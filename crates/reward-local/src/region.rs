//! Region scores from the model's own understanding (DESIGN.md section 1, step 3).
//!
//! Each proposed box, padded by one pixel and clipped to the image, is cut out and resized to
//! the canvas (as region questions were asked in pretraining) and the model is asked
//! `what is this ?`; its greedy answer, e.g. "striped red circle", is kept for inspection and
//! read as a phrase ([`crate::phrases`]). The score against the prompt's literal phrases:
//!
//! | the model's name | score |
//! |---|---|
//! | names no shape | 0 (nothing recognisable) |
//! | a shape the prompt does not mention | 0 (irrelevant, harmless) |
//! | a shape the prompt mentions, with its stated colour and texture | +1 |
//! | a shape the prompt mentions, but no phrase with that shape fits | -1 (wrong attribute) |
//! | a fitting object beyond a phrase's stated count | -1 (one too many) |
//!
//! A colour given by reference ("a cross the colour of a carrot") is resolved by asking the
//! model the world-knowledge question it was pretrained on, `what colour is a carrot ?`,
//! about a blank canvas; its answer becomes the phrase's colour (no answer that is a colour
//! word: the colour stays open). Inferring the meaning is the model's own job.
//!
//! For "one too many", the fitting regions of a counted phrase are taken largest first, and a
//! region whose centre lies inside an already counted region's box is the same object seen at
//! another scale, not another object.

use burn::prelude::*;
use compworld::Image;
use serde::Serialize;
use umm_model::understand::{REGION_QUESTION, answer, answer_with_probs};
use umm_model::{Tokenizer, Umm, UmmConfig};

use crate::phrases::{Phrase, colour_references, literal_phrases};
use crate::proposer::BoxPx;
use crate::{Error, Result};

/// Padding around a box before it is cut out, in pixels.
pub const CROP_PAD: f32 = 1.0;
/// Longest region answer read, in words.
const MAX_ANSWER_WORDS: usize = 5;

/// One scored region.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RegionScore {
    /// `[x0, y0, x1, y1]` in pixels.
    pub bbox: [f32; 4],
    /// Pixels of the proposed component.
    pub area: usize,
    /// What the model called it.
    pub phrase: String,
    /// In [-1, 1].
    pub score: f32,
    /// Which row of the table gave the score.
    pub why: &'static str,
}

/// The crop the model is shown for a box.
pub fn crop(img: &Image, b: &BoxPx, resolution: usize) -> Image {
    let (w, h) = (img.width as f32, img.height as f32);
    let padded = [
        (b.x0 - CROP_PAD).max(0.0),
        (b.y0 - CROP_PAD).max(0.0),
        (b.x1 + CROP_PAD).min(w),
        (b.y1 + CROP_PAD).min(h),
    ];
    img.crop_resize(padded, resolution)
}

/// The model's name read as a phrase (`None` when it names no shape).
pub fn read_name(name: &str) -> Option<Phrase> {
    literal_phrases(name).into_iter().next()
}

/// Groups regions into objects, largest region first: a region whose centre lies inside the
/// box of an object's first (largest) region is that object seen at another scale.
fn objects(regions: impl Iterator<Item = usize>, boxes: &[BoxPx]) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = regions.collect();
    order.sort_by_key(|&i| std::cmp::Reverse(boxes[i].area));
    let mut out: Vec<Vec<usize>> = Vec::new();
    for i in order {
        let (cx, cy) = (
            (boxes[i].x0 + boxes[i].x1) / 2.0,
            (boxes[i].y0 + boxes[i].y1) / 2.0,
        );
        let inside = |b: &BoxPx| cx >= b.x0 && cx < b.x1 && cy >= b.y0 && cy < b.y1;
        match out.iter_mut().find(|o| inside(&boxes[o[0]])) {
            Some(o) => o.push(i),
            None => out.push(vec![i]),
        }
    }
    out
}

/// One name's row of the table (all but "one too many", which needs the other regions).
fn name_score(phrases: &[Phrase], name: &str) -> (f32, &'static str) {
    match read_name(name) {
        None => (0.0, "names no shape"),
        Some(named) => {
            if !phrases.iter().any(|p| p.shape == named.shape) {
                (0.0, "shape not in the prompt")
            } else if phrases.iter().any(|p| p.fits(&named)) {
                (1.0, "fits a phrase")
            } else {
                (-1.0, "wrong attribute")
            }
        }
    }
}

/// How a region's name becomes its score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegionScoring {
    /// The greedy name through the table of the module docs (the reference's reading).
    #[default]
    Greedy,
    /// The greedy name's attributes with the shape marginalised: at the step where the model
    /// chose the shape word, its probabilities over every shape word (renormalised) weigh the
    /// table's verdict on the name with that shape, giving `P(+1)`, `P(0)` and `P(-1)`. The most
    /// probable of the three decides: 0 stays 0, otherwise the score is `P(+1) - P(-1)`. A
    /// region whose greedy name is one too many keeps -1; a name without a shape keeps 0.
    MarginalShape,
    /// Yes/no questions about the crop instead of its name: for each phrase of the prompt,
    /// "is there a [colour] <shape> ?" (`p_full`) and "is there a <shape> ?" (`p_shape`), each
    /// the renormalised yes. Over the phrases, `P(+1) = max p_full`, `P(-1) = max(max p_shape -
    /// max p_full, 0)` (the shape without the attributes), `P(0) = 1 - max p_shape`; the most
    /// probable of the three decides: 0 stays 0, otherwise the score is `P(+1) - P(-1)` (as
    /// [`RegionScoring::MarginalShape`]). The greedy name is still read, for inspection and
    /// the phrase coverage; counts ("one too many") are not judged.
    Questions,
}

impl RegionScoring {
    /// Every scoring.
    pub const ALL: [RegionScoring; 3] = [
        RegionScoring::Greedy,
        RegionScoring::MarginalShape,
        RegionScoring::Questions,
    ];

    /// The name used in configs and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            RegionScoring::Greedy => "greedy",
            RegionScoring::MarginalShape => "marginal_shape",
            RegionScoring::Questions => "questions",
        }
    }
}

impl std::str::FromStr for RegionScoring {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        RegionScoring::ALL
            .into_iter()
            .find(|r| r.name() == s)
            .ok_or_else(|| {
                format!(
                    "unknown region scoring '{s}' (expected greedy, marginal_shape or questions)"
                )
            })
    }
}

/// [`RegionScoring::MarginalShape`] of one region: `shape_probs[k]` is the model's probability
/// of `Shape::ALL[k]` at the step that chose `name`'s shape word. `None` when the name has no
/// shape word.
pub fn marginal_shape_score(
    phrases: &[Phrase],
    name: &str,
    shape_probs: &[f32],
) -> Option<(f32, &'static str)> {
    let words: Vec<&str> = name.split_whitespace().collect();
    let at = words
        .iter()
        .rposition(|w| compworld::Shape::from_word(w).is_some())?;
    let total: f32 = shape_probs.iter().sum();
    if total <= 0.0 {
        return None;
    }
    let mut p = [0.0f32; 3]; // P(-1), P(0), P(+1)
    for (shape, &q) in compworld::Shape::ALL.iter().zip(shape_probs) {
        let mut w = words.clone();
        w[at] = shape.word();
        let (v, _) = name_score(phrases, &w.join(" "));
        p[(v as i32 + 1) as usize] += q / total;
    }
    let (neg, zero, pos) = (p[0], p[1], p[2]);
    Some(if zero >= pos && zero >= neg {
        (0.0, "marginal: shape not in the prompt")
    } else if pos >= neg {
        (pos - neg, "marginal: fits a phrase")
    } else {
        (pos - neg, "marginal: wrong attribute")
    })
}

/// Scores named regions against a prompt's literal phrases by the table of the module docs.
/// `names[i]` is the model's name for `boxes[i]`.
pub fn score_names(prompt: &str, boxes: &[BoxPx], names: &[String]) -> Vec<(f32, &'static str)> {
    score_names_with(&literal_phrases(prompt), boxes, names)
}

/// [`score_names`] against given phrases (with colours resolved by the model).
pub fn score_names_with(
    phrases: &[Phrase],
    boxes: &[BoxPx],
    names: &[String],
) -> Vec<(f32, &'static str)> {
    let mut out: Vec<(f32, &'static str)> = names.iter().map(|n| name_score(phrases, n)).collect();
    // One too many: per counted phrase, the fitting objects beyond its count (every region
    // of such an object).
    for p in phrases.iter().filter(|p| p.count.is_some()) {
        let n = usize::from(p.count.unwrap_or(0));
        let fitting = (0..names.len())
            .filter(|&i| out[i].0 > 0.0 && read_name(&names[i]).is_some_and(|m| p.fits(&m)));
        for object in objects(fitting, boxes).iter().skip(n) {
            for &i in object {
                out[i] = (-1.0, "one too many");
            }
        }
    }
    out
}

/// How much of what the prompt states the model finds among the regions, in [-1, 1]: a phrase
/// is found when at least one region's name fits it and, if the phrase states a count, exactly
/// that many distinct objects fit (a region whose centre lies inside a larger fitting region is
/// the same object). `2 x (share of phrases found) - 1`; `None` when the prompt states no
/// phrase ("a traffic light").
pub fn phrase_coverage(phrases: &[Phrase], boxes: &[BoxPx], names: &[String]) -> Option<f32> {
    if phrases.is_empty() {
        return None;
    }
    let named: Vec<Option<Phrase>> = names.iter().map(|n| read_name(n)).collect();
    let found = phrases
        .iter()
        .filter(|p| {
            let fitting = (0..boxes.len()).filter(|&i| named[i].is_some_and(|m| p.fits(&m)));
            let n = objects(fitting, boxes).len();
            n > 0 && p.count.is_none_or(|c| n == usize::from(c))
        })
        .count();
    Some(2.0 * found as f32 / phrases.len() as f32 - 1.0)
}

/// The regions of one image with their scores, and the phrase coverage.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImageRegions {
    pub regions: Vec<RegionScore>,
    /// [`phrase_coverage`].
    pub coverage: Option<f32>,
}

/// The literal phrases of each prompt, with colours given by reference resolved by the model
/// (one batch of knowledge questions about a blank canvas).
pub fn resolve_colours<'a>(
    model: &Umm,
    cfg: &UmmConfig,
    tok: &dyn Tokenizer,
    prompts: impl Iterator<Item = &'a str>,
    device: &Device,
) -> Result<Vec<Vec<Phrase>>> {
    let prompts: Vec<&str> = prompts.collect();
    let refs: Vec<Vec<(usize, String)>> = prompts.iter().map(|p| colour_references(p)).collect();
    let blank = compworld::render(&compworld::Scene::default(), cfg.resolution);
    let questions: Vec<(String, Image)> = refs
        .iter()
        .flatten()
        .map(|(_, e)| (format!("what colour is {e} ?"), blank.clone()))
        .collect();
    let answers = if questions.is_empty() {
        Vec::new()
    } else {
        answer(model, cfg, tok, &questions, 2, device)?
    };
    let mut a = answers.iter();
    Ok(prompts
        .iter()
        .zip(&refs)
        .map(|(p, refs)| {
            let mut phrases = literal_phrases(p);
            for (i, _) in refs {
                let said = a
                    .next()
                    .and_then(|w| compworld::Colour::from_word(w.trim()));
                if let (Some(ph), Some(c)) = (phrases.get_mut(*i), said) {
                    ph.colour = Some(c);
                }
            }
            phrases
        })
        .collect())
}

/// Checks an image and a prompt before anything is asked.
pub fn check_input(cfg: &UmmConfig, tok: &dyn Tokenizer, img: &Image, prompt: &str) -> Result<()> {
    let r = cfg.resolution;
    if img.width != r || img.height != r {
        return Err(Error::Input(format!(
            "image is {}x{}, the model works at {r}x{r}",
            img.width, img.height
        )));
    }
    if prompt.trim().is_empty() {
        return Err(Error::Input("empty prompt".into()));
    }
    tok.encode(prompt)?;
    Ok(())
}

/// Names and scores the proposed regions of several images at once (one batch of questions).
/// `items[k] = (image, prompt, boxes)`.
pub fn score_regions(
    model: &Umm,
    cfg: &UmmConfig,
    tok: &dyn Tokenizer,
    items: &[(&Image, &str, &[BoxPx])],
    device: &Device,
) -> Result<Vec<ImageRegions>> {
    score_regions_with(model, cfg, tok, items, RegionScoring::Greedy, device)
}

/// [`RegionScoring::Questions`] of one region from its `(p_full, p_shape)` per phrase.
pub fn question_score(per_phrase: &[(f32, f32)]) -> (f32, &'static str) {
    let full = per_phrase.iter().map(|p| p.0).fold(0.0f32, f32::max);
    let shape = per_phrase.iter().map(|p| p.1).fold(0.0f32, f32::max);
    let (plus, minus, zero) = (full, (shape - full).max(0.0), 1.0 - shape);
    if zero >= plus && zero >= minus {
        (0.0, "shape not asked for")
    } else if plus >= minus {
        (plus - minus, "fits a phrase")
    } else {
        (plus - minus, "wrong attribute")
    }
}

/// The [`RegionScoring::Questions`] score of every box of every item, in order.
fn question_scores(
    model: &Umm,
    cfg: &UmmConfig,
    tok: &dyn Tokenizer,
    items: &[(&Image, &str, &[BoxPx])],
    phrases: &[Vec<Phrase>],
    device: &Device,
) -> Result<Vec<(f32, &'static str)>> {
    let mut questions: Vec<(String, Image)> = Vec::new();
    let mut shape: Vec<usize> = Vec::new(); // phrases per box
    for ((img, _, boxes), ps) in items.iter().zip(phrases) {
        for b in boxes.iter() {
            let c = crop(img, b, cfg.resolution);
            for p in ps {
                let full = match p.colour {
                    Some(col) => format!("{} {}", col.word(), p.shape.word()),
                    None => p.shape.word().to_string(),
                };
                questions.push((is_there(&full), c.clone()));
                questions.push((is_there(p.shape.word()), c.clone()));
            }
            shape.push(ps.len());
        }
    }
    let answers = if questions.is_empty() {
        Vec::new()
    } else {
        umm_model::understand::yes_no(model, cfg, tok, &questions, device)?
    };
    let yes = |(y, n): (f32, f32)| if y + n > 0.0 { y / (y + n) } else { 0.5 };
    let mut a = answers.into_iter();
    Ok(shape
        .into_iter()
        .map(|n| {
            let per: Vec<(f32, f32)> = (0..n)
                .map(|_| {
                    let full = yes(a.next().expect("one answer per question"));
                    let shape = yes(a.next().expect("one answer per question"));
                    (full, shape)
                })
                .collect();
            question_score(&per)
        })
        .collect())
}

/// "is there a red circle ?" / "is there an orange cross ?"
fn is_there(what: &str) -> String {
    let article = if what.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    format!("is there {article} {what} ?")
}

/// [`score_regions`] with a choice of [`RegionScoring`].
pub fn score_regions_with(
    model: &Umm,
    cfg: &UmmConfig,
    tok: &dyn Tokenizer,
    items: &[(&Image, &str, &[BoxPx])],
    scoring: RegionScoring,
    device: &Device,
) -> Result<Vec<ImageRegions>> {
    for (img, prompt, _) in items {
        check_input(cfg, tok, img, prompt)?;
    }
    let phrases = resolve_colours(model, cfg, tok, items.iter().map(|i| i.1), device)?;
    let questions: Vec<(String, Image)> = items
        .iter()
        .flat_map(|(img, _, boxes)| {
            boxes
                .iter()
                .map(|b| (REGION_QUESTION.to_string(), crop(img, b, cfg.resolution)))
        })
        .collect();
    let (names, shape_probs): (Vec<String>, Vec<Option<Vec<f32>>>) = match scoring {
        RegionScoring::Greedy | RegionScoring::Questions => {
            let names = answer(model, cfg, tok, &questions, MAX_ANSWER_WORDS, device)?;
            let none = vec![None; names.len()];
            (names, none)
        }
        RegionScoring::MarginalShape => {
            let shape_ids: Vec<Option<u32>> = compworld::Shape::ALL
                .iter()
                .map(|s| tok.id(s.word()))
                .collect();
            answer_with_probs(model, cfg, tok, &questions, MAX_ANSWER_WORDS, device)?
                .into_iter()
                .map(|a| {
                    // The step that chose the (last) shape word.
                    let at = a.ids.iter().rposition(|id| shape_ids.contains(&Some(*id)));
                    let probs = at.map(|j| {
                        shape_ids
                            .iter()
                            .map(|id| id.map_or(0.0, |id| a.probs[j][id as usize]))
                            .collect()
                    });
                    (a.text, probs)
                })
                .unzip()
        }
    };
    let asked = if scoring == RegionScoring::Questions {
        Some(question_scores(model, cfg, tok, items, &phrases, device)?)
    } else {
        None
    };
    let mut k = 0;
    Ok(items
        .iter()
        .zip(&phrases)
        .map(|((_, _, boxes), phrases)| {
            let mine = &names[k..k + boxes.len()];
            let probs = &shape_probs[k..k + boxes.len()];
            let mut scores = match &asked {
                Some(a) => a[k..k + boxes.len()].to_vec(),
                None => score_names_with(phrases, boxes, mine),
            };
            k += boxes.len();
            for ((sc, name), p) in scores.iter_mut().zip(mine).zip(probs) {
                if let Some(p) = p
                    && sc.1 != "one too many"
                    && let Some(m) = marginal_shape_score(phrases, name, p)
                {
                    *sc = m;
                }
            }
            let regions = scores
                .into_iter()
                .zip(boxes.iter().zip(mine))
                .map(|((score, why), (b, name))| RegionScore {
                    bbox: b.corners(),
                    area: b.area,
                    phrase: name.clone(),
                    score,
                    why,
                })
                .collect();
            ImageRegions {
                regions,
                coverage: phrase_coverage(phrases, boxes, mine),
            }
        })
        .collect())
}
