//! Understanding data: questions about scenes with their answers, for pretraining the model's
//! understanding (DESIGN.md section 2). Every answer is read off the scene itself, never off a
//! model or the oracle.
//!
//! Kinds: presence ("is there a red circle ?"), attribute ("what colour is the circle ?"),
//! count ("how many squares ?"), relation ("is the circle on the left of the square ?"),
//! prompt match with hard negatives ("does this image show : <prompt> ?", the negatives break
//! exactly one constraint), region identification ("what is this ?" about a crop box) and
//! text-only world knowledge ("what colour is the sky ?"), captions, and position ("is the
//! circle on the left ?": where one named object lies in the image, the first-order step that
//! relations between two objects are built from).

use serde::{Deserialize, Serialize};

use crate::generate::generate;
use crate::prompt::{
    Category, Constraint, Entity, Meaning, ObjectSpec, Prompt, Relation, RelationFact,
};
use crate::rng::Rng;
use crate::sampler::sample_scene;
use crate::scene::{Object, Scene};
use crate::violation::{ViolationKind, applicable, violate};
use crate::world::{Colour, Shape, Size, Texture};

/// The kinds of question.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QaKind {
    Presence,
    Attribute,
    Count,
    Relation,
    PromptMatch,
    Region,
    Knowledge,
    /// "what does this image show ?" answered with the scene's caption, objects listed left
    /// to right: a dense, every-token signal that ties image features to attribute words.
    Caption,
    /// "is the circle on the left ?" (or right, top, bottom) about an object with a unique
    /// shape clearly on one side of the image's centre line; answered yes or no. A relation
    /// question's answer depends on where two named objects lie and on the relation word at
    /// once, so no single feature of the image predicts it and a model trained on relations
    /// alone sits at chance (the shipped base does, 0.43-0.46); where one named object lies is
    /// the step below, readable as soon as the question's word finds the object's patches.
    Position,
}

impl QaKind {
    /// Every kind.
    pub const ALL: [QaKind; 9] = [
        QaKind::Presence,
        QaKind::Attribute,
        QaKind::Count,
        QaKind::Relation,
        QaKind::PromptMatch,
        QaKind::Region,
        QaKind::Knowledge,
        QaKind::Caption,
        QaKind::Position,
    ];
}

/// One example: a question, its answer, and what it is asked about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QaExample {
    pub kind: QaKind,
    pub question: String,
    pub answer: String,
    /// The scene the question is about (none for world knowledge).
    pub scene: Option<Scene>,
    /// For region questions: the crop `[x0, y0, x1, y1]` in units, to be cut out and resized
    /// to the canvas before the model sees it.
    pub region: Option<[f32; 4]>,
}

fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.to_string()
}

/// "striped red circle": what an object is, as the answer to a region question (plain texture
/// left unsaid). Size is left out: a crop resized to the canvas no longer shows it.
pub fn describe(o: &Object) -> String {
    let mut w = Vec::new();
    if o.texture != Texture::Solid {
        w.push(o.texture.word());
    }
    w.push(o.colour.word());
    w.push(o.shape.word());
    w.join(" ")
}

/// Pairs of objects with unique shapes in a clear 2D arrangement: `(i, j, rel, holds)`.
fn clear_pairs(scene: &Scene) -> Vec<(usize, usize, Relation, bool)> {
    let objs = &scene.objects;
    let unique = |s: Shape| objs.iter().filter(|o| o.shape == s).count() == 1;
    let rels = [
        Relation::LeftOf,
        Relation::RightOf,
        Relation::Above,
        Relation::Below,
    ];
    let mut found = Vec::new();
    for i in 0..objs.len() {
        for j in 0..objs.len() {
            if i == j || !unique(objs[i].shape) || !unique(objs[j].shape) {
                continue;
            }
            for r in rels {
                if let Some(holds) = clear_relation(&objs[i], &objs[j], r) {
                    found.push((i, j, r, holds));
                }
            }
        }
    }
    found
}

/// The side of the canvas an object clearly lies on along each axis, `(left | right, top |
/// bottom)`: its centre is at least 4 units (an eighth of the canvas) from that axis's centre
/// line (y grows down). Position questions ask about these; the patch-word loss can name them.
pub fn object_sides(o: &Object) -> (Option<&'static str>, Option<&'static str>) {
    let mid = crate::world::CANVAS_UNITS / 2.0;
    let side = |off: f32, lo: &'static str, hi: &'static str| {
        (off.abs() >= 4.0).then_some(if off < 0.0 { lo } else { hi })
    };
    (
        side(o.x - mid, "left", "right"),
        side(o.y - mid, "top", "bottom"),
    )
}

/// Objects with unique shapes clearly on one side of a centre line ([`object_sides`]):
/// `(i, side, holds)` for each of the four sides, on the named side (`holds`) or on the
/// opposite one.
fn clear_sides(scene: &Scene) -> Vec<(usize, &'static str, bool)> {
    let objs = &scene.objects;
    let mut found = Vec::new();
    for (i, o) in objs.iter().enumerate() {
        if objs.iter().filter(|p| p.shape == o.shape).count() != 1 {
            continue;
        }
        let (sx, sy) = object_sides(o);
        for (side, pair) in [(sx, ["left", "right"]), (sy, ["top", "bottom"])] {
            if let Some(side) = side {
                found.extend(pair.map(|named| (i, named, named == side)));
            }
        }
    }
    found
}

/// "is there a red circle ?" / "is there an orange cross ?"
fn is_there(spec: &ObjectSpec) -> String {
    let d = spec.describe();
    let article = if d.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    format!("is there {article} {d} ?")
}

/// Whether "`a` rel `b`" clearly holds (`Some(true)`), clearly fails because the opposite
/// holds (`Some(false)`), or is unclear (`None`). Only the four 2D directions.
fn clear_relation(a: &Object, b: &Object, rel: Relation) -> Option<bool> {
    let (dx, dy) = (b.x - a.x, b.y - a.y);
    let (along, across) = match rel {
        Relation::LeftOf => (dx, dy),
        Relation::RightOf => (-dx, dy),
        Relation::Above => (dy, dx),
        Relation::Below => (-dy, dx),
        _ => return None,
    };
    (along.abs() >= 3.0 && along.abs() >= 1.5 * across.abs()).then_some(along > 0.0)
}

fn count_word(n: usize) -> &'static str {
    ["zero", "one", "two", "three", "four", "five", "six"][n.min(6)]
}

/// A random scene from a random accepted prompt of any category.
fn random_scene(rng: &mut Rng, accept: &dyn Fn(&Prompt) -> bool) -> (Prompt, Scene) {
    loop {
        let p = generate(*rng.pick(Category::ALL), rng);
        if !accept(&p) {
            continue;
        }
        if let Ok(s) = sample_scene(&p.meaning, &p.text, rng) {
            return (p, s);
        }
    }
}

/// The word a rationale names a constraint by: the phrase's shape ("shape" when it names
/// none), plural for a counted phrase ("circles"), or the relation's own word ("left",
/// "top", "front", "inside", ...).
pub fn constraint_word(m: &Meaning, c: &Constraint) -> &'static str {
    match *c {
        Constraint::Present { phrase } => m.phrases[phrase].spec.shape.map_or("shape", Shape::word),
        Constraint::Count { phrase, .. } => {
            m.phrases[phrase].spec.shape.map_or("shapes", Shape::plural)
        }
        Constraint::Relation { rel, .. } => rel
            .words()
            .iter()
            .copied()
            .find(|w| !matches!(*w, "on" | "the" | "of" | "to" | "by" | "in"))
            .unwrap_or("near"),
    }
}

/// For each constraint of `m` ([`Meaning::constraints`], phrases then relations), whether a
/// scene drawn for `shown` satisfies it, where `shown` is `m` itself or a one-constraint
/// violation of it ([`violate`]): a phrase holds when it is drawn unchanged (same attributes,
/// same count), a relation when both its phrases are drawn with unchanged attributes and the
/// relation itself is drawn. Read off the two meanings, never off a model or the oracle.
pub fn constraint_verdicts(m: &Meaning, shown: &Meaning) -> Vec<bool> {
    // Where each phrase of `m` went in `shown` (an object removal shifts the later ones).
    let map: Vec<Option<usize>> = if shown.phrases.len() + 1 == m.phrases.len() {
        let removed = (0..m.phrases.len())
            .find(|&r| {
                m.phrases
                    .iter()
                    .enumerate()
                    .filter(|&(i, _)| i != r)
                    .map(|(_, p)| p)
                    .eq(shown.phrases.iter())
            })
            .unwrap_or(0);
        (0..m.phrases.len())
            .map(|i| match i.cmp(&removed) {
                std::cmp::Ordering::Less => Some(i),
                std::cmp::Ordering::Equal => None,
                std::cmp::Ordering::Greater => Some(i - 1),
            })
            .collect()
    } else {
        (0..m.phrases.len())
            .map(|i| (i < shown.phrases.len()).then_some(i))
            .collect()
    };
    let same_spec = |i: usize| map[i].is_some_and(|j| shown.phrases[j].spec == m.phrases[i].spec);
    m.constraints()
        .iter()
        .map(|c| match *c {
            Constraint::Present { phrase } | Constraint::Count { phrase, .. } => {
                map[phrase].is_some_and(|j| shown.phrases[j] == m.phrases[phrase])
            }
            Constraint::Relation { a, rel, b } => {
                same_spec(a)
                    && same_spec(b)
                    && shown.relations.contains(&RelationFact {
                        a: map[a].expect("same_spec"),
                        rel,
                        b: map[b].expect("same_spec"),
                    })
            }
        })
        .collect()
}

/// The answer to "does this image show : <prompt> ?" with its reasons: each constraint's
/// word and whether it holds, then `:` and the verdict, "circle yes squares no left yes : no"
/// (see [`constraint_word`] and [`constraint_verdicts`]). A model trained on these answers
/// checks the prompt one constraint at a time before it says yes or no.
pub fn rationale(m: &Meaning, shown: &Meaning) -> String {
    let verdicts = constraint_verdicts(m, shown);
    let mut words: Vec<&str> = Vec::with_capacity(2 * verdicts.len() + 2);
    for (c, &ok) in m.constraints().iter().zip(&verdicts) {
        words.push(constraint_word(m, c));
        words.push(if ok { "yes" } else { "no" });
    }
    words.push(":");
    words.push(if verdicts.iter().all(|&v| v) {
        "yes"
    } else {
        "no"
    });
    words.join(" ")
}

/// The verdict of a prompt-match answer: the word after the last `:` of a [`rationale`], or
/// the whole answer when it gives no reasons ("yes").
pub fn verdict(answer: &str) -> &str {
    answer.rsplit_once(" : ").map_or(answer, |(_, v)| v).trim()
}

/// The reasons of a prompt-match answer: what comes before the last `:` of a [`rationale`]
/// ("circle yes squares no"), none when it gives no reasons.
pub fn reasons(answer: &str) -> Option<&str> {
    answer.rsplit_once(" : ").map(|(r, _)| r)
}

/// A prompt-match pair: "does this image show : <prompt> ?" about a true render (answer
/// yes) and about a render of the prompt with exactly one constraint broken (answer no; none
/// when no violation of the prompt can be drawn). Trained side by side, the two differ in one
/// thing and in their answer: the cleanest signal for what the prompt requires.
pub fn prompt_match_pair(
    rng: &mut Rng,
    accept: &dyn Fn(&Prompt) -> bool,
) -> (QaExample, Option<QaExample>) {
    prompt_match_pair_weighted(rng, accept, &[])
}

/// [`prompt_match_pair`] with the violation kinds tried in a weighted random order: each next
/// kind is drawn among the applicable ones not yet tried with probability proportional to its
/// weight; kinds not listed, or weighted 0, are never tried (a prompt none of whose listed kinds
/// applies has no negative). An empty `weights` is [`prompt_match_pair`]'s uniform order, drawn
/// exactly as before (same random numbers), so streams without weights are unchanged.
pub fn prompt_match_pair_weighted(
    rng: &mut Rng,
    accept: &dyn Fn(&Prompt) -> bool,
    weights: &[(ViolationKind, f32)],
) -> (QaExample, Option<QaExample>) {
    prompt_match_pair_styled(rng, accept, weights, QaStyle::default())
}

/// [`prompt_match_pair_weighted`] in a given [`QaStyle`]: with
/// [`QaStyle::prompt_match_rationale`] the answers are [`rationale`]s; the random numbers drawn
/// are the same either way.
pub fn prompt_match_pair_styled(
    rng: &mut Rng,
    accept: &dyn Fn(&Prompt) -> bool,
    weights: &[(ViolationKind, f32)],
    style: QaStyle,
) -> (QaExample, Option<QaExample>) {
    let (p, truth) = random_scene(rng, accept);
    let mut kinds = applicable(&p.meaning);
    if weights.is_empty() {
        rng.shuffle(&mut kinds);
    } else {
        kinds = weighted_order(&kinds, weights, rng);
    }
    let negative = kinds.iter().find_map(|&k| {
        let m = violate(&p.meaning, k, rng)?;
        sample_scene(&m, &p.text, rng).ok().map(|s| (s, m))
    });
    let question = format!("does this image show : {} ?", p.text);
    let ex = |scene, shown: &Meaning| QaExample {
        kind: QaKind::PromptMatch,
        question: question.clone(),
        answer: match_answer(&p.meaning, shown, style),
        scene: Some(scene),
        region: None,
    };
    (ex(truth, &p.meaning), negative.map(|(s, m)| ex(s, &m)))
}

/// A prompt-match answer about a render of `shown` for a prompt meaning `m`: "yes" or "no",
/// or a [`rationale`] in that style.
fn match_answer(m: &Meaning, shown: &Meaning, style: QaStyle) -> String {
    if style.prompt_match_rationale {
        rationale(m, shown)
    } else {
        yes_no(m == shown)
    }
}

/// `kinds` (those with a positive weight) in a random order, each next one drawn with
/// probability proportional to its weight among those left.
fn weighted_order(
    kinds: &[ViolationKind],
    weights: &[(ViolationKind, f32)],
    rng: &mut Rng,
) -> Vec<ViolationKind> {
    let weight = |k: ViolationKind| {
        weights
            .iter()
            .find(|(w, _)| *w == k)
            .map_or(0.0, |(_, w)| *w)
    };
    let mut left: Vec<(ViolationKind, f32)> = kinds
        .iter()
        .map(|&k| (k, weight(k)))
        .filter(|(_, w)| *w > 0.0)
        .collect();
    let mut out = Vec::with_capacity(left.len());
    while !left.is_empty() {
        let w: Vec<f32> = left.iter().map(|(_, w)| *w).collect();
        let i = rng.weighted_index(&w);
        out.push(left.remove(i).0);
    }
    out
}

/// Draws one example of `kind` about scenes of any prompt.
pub fn example(kind: QaKind, rng: &mut Rng) -> QaExample {
    example_with(kind, rng, &|_| true)
}

/// How some kinds of question are worded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct QaStyle {
    /// Presence questions about present and absent objects are drawn the same way (shape
    /// always, colour 70%, size 30%), so the wording alone says nothing about the answer. The
    /// default (`false`) is the older wording, where absent objects are always named by shape
    /// and colour and never by size: that wording alone answers about 75% of the questions, and
    /// the shipped base model of 2026-11 was trained on it.
    pub presence_alike: bool,
    /// Prompt-match questions are answered with their reasons, one constraint at a time, then
    /// the verdict ([`rationale`]: "circle yes squares no left yes : no") instead of a bare
    /// "yes" or "no". Off by default and in every shipped or kept base model (the second
    /// stages that tried it are in the README, "Answers with reasons").
    #[serde(default)]
    pub prompt_match_rationale: bool,
}

/// Draws one example of `kind`, its scene drawn from a prompt that `accept` allows (training
/// uses this to keep evaluation prompts out).
pub fn example_with(kind: QaKind, rng: &mut Rng, accept: &dyn Fn(&Prompt) -> bool) -> QaExample {
    example_styled(kind, rng, accept, QaStyle::default())
}

/// [`example_with`] in a given [`QaStyle`].
pub fn example_styled(
    kind: QaKind,
    rng: &mut Rng,
    accept: &dyn Fn(&Prompt) -> bool,
    style: QaStyle,
) -> QaExample {
    match kind {
        QaKind::Knowledge => {
            let e = *rng.pick(Entity::ALL);
            QaExample {
                kind,
                question: format!("what colour is {} ?", e.words().join(" ")),
                answer: e.colour().word().to_string(),
                scene: None,
                region: None,
            }
        }
        QaKind::PromptMatch => {
            let (p, truth) = random_scene(rng, accept);
            let mut kinds = applicable(&p.meaning);
            rng.shuffle(&mut kinds);
            let negative = rng
                .chance(0.5)
                .then(|| {
                    kinds.iter().find_map(|&k| {
                        let m = violate(&p.meaning, k, rng)?;
                        sample_scene(&m, &p.text, rng).ok().map(|s| (s, m))
                    })
                })
                .flatten();
            let (scene, shown) = match negative {
                Some((s, m)) => (s, m),
                None => (truth, p.meaning.clone()),
            };
            QaExample {
                kind,
                question: format!("does this image show : {} ?", p.text),
                answer: match_answer(&p.meaning, &shown, style),
                scene: Some(scene),
                region: None,
            }
        }
        _ => {
            // Relation questions need two objects in a clear arrangement: redraw a few times.
            let mut scene = random_scene(rng, accept).1;
            for _ in 0..20 {
                let clear = match kind {
                    QaKind::Relation => !clear_pairs(&scene).is_empty(),
                    QaKind::Position => !clear_sides(&scene).is_empty(),
                    _ => true,
                };
                if clear {
                    break;
                }
                scene = random_scene(rng, accept).1;
            }
            scene_question(kind, scene, rng, style)
        }
    }
}

fn scene_question(kind: QaKind, scene: Scene, rng: &mut Rng, style: QaStyle) -> QaExample {
    let objs = &scene.objects;
    let unique_shape = |s: Shape| objs.iter().filter(|o| o.shape == s).count() == 1;
    let (question, answer, region) = match kind {
        QaKind::Presence => {
            // Half the time ask about a present object, by a random subset of its attributes
            // (shape always, colour 70%, size 30%), otherwise about a description nothing in
            // the scene matches. Worded alike, absent descriptions are drawn the same way, so
            // only the image can answer; the older wording names shape and colour, never size.
            if rng.chance(0.5) {
                let o = rng.pick(objs);
                let spec = ObjectSpec {
                    shape: Some(o.shape),
                    colour: rng.chance(0.7).then_some(o.colour),
                    texture: None,
                    size: rng.chance(0.3).then_some(o.size),
                };
                (is_there(&spec), yes_no(true), None)
            } else {
                let draw = |rng: &mut Rng| {
                    let shape = Some(*rng.pick(Shape::ALL));
                    if style.presence_alike {
                        ObjectSpec {
                            shape,
                            colour: rng.chance(0.7).then(|| *rng.pick(Colour::ALL)),
                            texture: None,
                            size: rng.chance(0.3).then(|| *rng.pick(Size::ALL)),
                        }
                    } else {
                        ObjectSpec {
                            shape,
                            colour: Some(*rng.pick(Colour::ALL)),
                            texture: None,
                            size: None,
                        }
                    }
                };
                let spec = loop {
                    let s = draw(rng);
                    if !objs
                        .iter()
                        .any(|o| s.matches(o.shape, o.colour, o.texture, o.size))
                    {
                        break s;
                    }
                };
                (is_there(&spec), yes_no(false), None)
            }
        }
        QaKind::Count => {
            let s = *rng.pick(Shape::ALL);
            let n = objs.iter().filter(|o| o.shape == s).count();
            (
                format!("how many {} ?", s.plural()),
                count_word(n).to_string(),
                None,
            )
        }
        QaKind::Attribute => match objs.iter().find(|o| unique_shape(o.shape)) {
            Some(o) if rng.chance(0.6) => (
                format!("what colour is the {} ?", o.shape.word()),
                o.colour.word().into(),
                None,
            ),
            Some(o) => (
                format!("what texture is the {} ?", o.shape.word()),
                o.texture.word().into(),
                None,
            ),
            None => return scene_question(QaKind::Count, scene, rng, style),
        },
        QaKind::Relation => {
            // Only clear cases: the offset along the relation's axis is at least 3 units and
            // 1.5 times the offset across it; then the answer is yes or no without doubt.
            let found = clear_pairs(&scene);
            if found.is_empty() {
                return scene_question(QaKind::Presence, scene, rng, style);
            }
            let (i, j, r, holds) = *rng.pick(&found);
            let q = format!(
                "is the {} {} the {} ?",
                objs[i].shape.word(),
                r.words().join(" "),
                objs[j].shape.word()
            );
            (q, yes_no(holds), None)
        }
        QaKind::Position => {
            let found = clear_sides(&scene);
            if found.is_empty() {
                return scene_question(QaKind::Presence, scene, rng, style);
            }
            let (i, side, holds) = *rng.pick(&found);
            let q = format!("is the {} on the {side} ?", objs[i].shape.word());
            (q, yes_no(holds), None)
        }
        QaKind::Region => {
            let o = rng.pick(objs);
            let [x0, y0, x1, y1] = o.bbox();
            let pad = rng.range_f32(0.5, 2.0);
            let b = [
                (x0 - pad).max(0.0),
                (y0 - pad).max(0.0),
                (x1 + pad).min(32.0),
                (y1 + pad).min(32.0),
            ];
            ("what is this ?".to_string(), describe(o), Some(b))
        }
        QaKind::Caption => {
            // Left to right, so the order of the words can be read off the image.
            let mut sorted = scene.clone();
            sorted.objects.sort_by(|a, b| a.x.total_cmp(&b.x));
            let text = crate::caption::caption(&sorted).text;
            ("what does this image show ?".to_string(), text, None)
        }
        QaKind::Knowledge | QaKind::PromptMatch => unreachable!("handled by example()"),
    };
    QaExample {
        kind,
        question,
        answer,
        scene: Some(scene),
        region,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_true_of_their_scenes() {
        let mut rng = Rng::new(8);
        let (mut yes, mut no) = (0, 0);
        for _ in 0..300 {
            for kind in QaKind::ALL {
                let ex = example(kind, &mut rng);
                match ex.answer.as_str() {
                    "yes" => yes += 1,
                    "no" => no += 1,
                    _ => {}
                }
                if let (QaKind::Count, Some(s)) = (ex.kind, &ex.scene) {
                    let plural = ex.question.split(' ').nth(2).unwrap();
                    let shape = Shape::from_plural(plural).unwrap();
                    let n = s.objects.iter().filter(|o| o.shape == shape).count();
                    assert_eq!(ex.answer, count_word(n), "{}", ex.question);
                }
                if ex.kind == QaKind::Relation && ex.question.starts_with("is the") {
                    assert!(ex.answer == "yes" || ex.answer == "no");
                }
                if let (QaKind::Position, Some(s)) = (ex.kind, &ex.scene) {
                    // "is the circle on the left ?": the one circle's centre is at least 4 units
                    // from the centre line, on the named side exactly when the answer is yes.
                    let w: Vec<&str> = ex.question.split(' ').collect();
                    let shape = Shape::from_word(w[2]).unwrap();
                    let o = s.objects.iter().find(|o| o.shape == shape).unwrap();
                    let off = match w[5] {
                        "left" => 16.0 - o.x,
                        "right" => o.x - 16.0,
                        "top" => 16.0 - o.y,
                        "bottom" => o.y - 16.0,
                        other => panic!("side {other}"),
                    };
                    assert!(off.abs() >= 4.0, "{}", ex.question);
                    assert_eq!(ex.answer, yes_no(off > 0.0), "{} {o:?}", ex.question);
                }
                if let (QaKind::Region, Some(s), Some(b)) = (ex.kind, &ex.scene, ex.region) {
                    // The box holds the centre of an object that the answer describes.
                    assert!(s.objects.iter().any(|o| describe(o) == ex.answer
                        && o.x > b[0]
                        && o.x < b[2]
                        && o.y > b[1]
                        && o.y < b[3]));
                }
            }
        }
        // Yes and no both common: a model cannot score well by always saying one.
        assert!(yes > 300 && no > 300, "yes {yes} no {no}");
    }

    #[test]
    fn presence_wording_gives_the_answer_away_unless_worded_alike() {
        // The share of "yes" among questions of each wording pattern (with or without a
        // colour, with or without a size): near one half in the alike style, so only the image
        // can answer; in the old style a size always means "yes".
        let tally = |style: QaStyle| {
            let mut rng = Rng::new(21);
            let mut tally = std::collections::BTreeMap::<(bool, bool), (u32, u32)>::new();
            for _ in 0..4000 {
                let ex = example_styled(QaKind::Presence, &mut rng, &|_| true, style);
                let words: Vec<&str> = ex.question.split(' ').collect();
                let colour = words.iter().any(|w| Colour::from_word(w).is_some());
                let size = words.iter().any(|w| Size::from_word(w).is_some());
                let t = tally.entry((colour, size)).or_default();
                t.0 += u32::from(ex.answer == "yes");
                t.1 += 1;
            }
            tally
        };
        let alike = tally(QaStyle {
            presence_alike: true,
            ..QaStyle::default()
        });
        assert_eq!(alike.len(), 4, "{alike:?}");
        for (pattern, (yes, n)) in alike {
            let share = f64::from(yes) / f64::from(n);
            assert!(
                n > 200 && (0.35..0.65).contains(&share),
                "{pattern:?}: {yes}/{n}"
            );
        }
        let old = tally(QaStyle::default());
        let (yes, n) = old[&(true, true)];
        assert_eq!(
            yes, n,
            "old style: a size is only ever asked about present objects"
        );
    }

    #[test]
    fn violation_weights_order_the_kinds_by_weight_and_skip_the_unweighted() {
        use ViolationKind::*;
        let kinds = [ColourSwap, ShapeChange, CountOffByOne, ObjectMissing];
        let weights = [(ColourSwap, 3.0), (ShapeChange, 1.0), (CountOffByOne, 0.0)];
        let mut rng = Rng::new(4);
        let mut colour_first = 0;
        for _ in 0..4000 {
            let order = weighted_order(&kinds, &weights, &mut rng);
            // Weighted 0 (CountOffByOne) or not listed (ObjectMissing): never tried.
            assert_eq!(order.len(), 2, "{order:?}");
            assert!(order.contains(&ColourSwap) && order.contains(&ShapeChange));
            colour_first += usize::from(order[0] == ColourSwap);
        }
        // 3 : 1 puts the colour swap first three times in four.
        let share = colour_first as f64 / 4000.0;
        assert!((share - 0.75).abs() < 0.03, "{share}");
    }

    #[test]
    fn weighted_pairs_break_only_the_weighted_constraints() {
        // Only object removals: every negative shows fewer objects than its true render. The
        // uniform draw breaks colours and shapes too, which keep the object count.
        let fewer = |weights: &[(ViolationKind, f32)]| {
            let mut rng = Rng::new(12);
            let (mut fewer, mut n) = (0, 0);
            for _ in 0..200 {
                let (yes, no) = prompt_match_pair_weighted(&mut rng, &|_| true, weights);
                if let Some(no) = no {
                    let count = |e: &QaExample| e.scene.as_ref().unwrap().objects.len();
                    fewer += usize::from(count(&no) < count(&yes));
                    n += 1;
                }
            }
            (fewer, n)
        };
        let (f, n) = fewer(&[(ViolationKind::ObjectMissing, 1.0)]);
        assert!(n > 150 && f == n, "{f} of {n}");
        let (f, n) = fewer(&[]);
        assert!(
            f < n * 2 / 3,
            "uniform: {f} of {n} negatives had fewer objects"
        );
        // No weights is the uniform draw, random number for random number.
        let (a, b) = (Rng::new(3), Rng::new(3));
        let (mut a, mut b) = (a, b);
        for _ in 0..20 {
            assert_eq!(
                prompt_match_pair(&mut a, &|_| true),
                prompt_match_pair_weighted(&mut b, &|_| true, &[])
            );
        }
    }

    #[test]
    fn rationales_name_each_constraint_and_whether_the_drawn_meaning_keeps_it() {
        let m = Prompt::parse("a red circle on the left of three blue squares")
            .unwrap()
            .meaning;
        let with = |f: &dyn Fn(&mut Meaning)| {
            let mut shown = m.clone();
            f(&mut shown);
            rationale(&m, &shown)
        };
        assert_eq!(rationale(&m, &m), "circle yes squares yes left yes : yes");
        // A flipped relation: both phrases still hold.
        assert_eq!(
            with(&|s| s.relations[0].rel = Relation::RightOf),
            "circle yes squares yes left no : no"
        );
        // Colours exchanged: neither phrase is drawn, so neither is the relation between them.
        assert_eq!(
            with(&|s| {
                s.phrases[0].spec.colour = Some(Colour::Blue);
                s.phrases[1].spec.colour = Some(Colour::Red);
            }),
            "circle no squares no left no : no"
        );
        // One square too many: the squares are still squares, and still on the right.
        assert_eq!(
            with(&|s| s.phrases[1].count = 4),
            "circle yes squares no left yes : no"
        );
        // The squares removed: the relation's indices shift with the removal.
        assert_eq!(
            with(&|s| {
                s.phrases.remove(1);
                s.relations.clear();
            }),
            "circle yes squares no left no : no"
        );
        assert_eq!(
            with(&|s| {
                s.phrases.remove(0);
                s.relations.clear();
            }),
            "circle no squares yes left no : no"
        );
        assert_eq!(verdict("circle yes squares no left yes : no"), "no");
        assert_eq!(verdict("yes"), "yes");
        let m = Prompt::parse("a cross inside a square").unwrap().meaning;
        assert_eq!(rationale(&m, &m), "cross yes square yes inside yes : yes");
    }

    #[test]
    fn rationale_pairs_draw_the_same_scenes_and_agree_with_the_plain_answers() {
        let style = QaStyle {
            prompt_match_rationale: true,
            ..QaStyle::default()
        };
        let (mut a, mut b) = (Rng::new(8), Rng::new(8));
        let mut negatives = 0;
        for _ in 0..300 {
            let (py, pn) = prompt_match_pair_weighted(&mut a, &|_| true, &[]);
            let (ry, rn) = prompt_match_pair_styled(&mut b, &|_| true, &[], style);
            assert_eq!((&py.scene, &py.question), (&ry.scene, &ry.question));
            assert_eq!(py.answer, "yes");
            assert!(!ry.answer.contains(" no"), "{}", ry.answer);
            assert_eq!(verdict(&ry.answer), "yes");
            assert_eq!(pn.is_some(), rn.is_some());
            if let (Some(pn), Some(rn)) = (pn, rn) {
                assert_eq!(pn.scene, rn.scene);
                assert_eq!(verdict(&rn.answer), "no", "{}", rn.answer);
                // Some constraint is named as broken, and the words come in (word, verdict) pairs.
                let w: Vec<&str> = rn.answer.split(' ').collect();
                assert!(
                    w[..w.len() - 2].chunks(2).any(|c| c[1] == "no"),
                    "{}",
                    rn.answer
                );
                assert_eq!(w[w.len() - 2], ":");
                negatives += 1;
            }
        }
        assert!(negatives > 250, "{negatives}");
    }

    #[test]
    fn same_seed_same_examples() {
        let a: Vec<QaExample> = (0..20)
            .map(|i| example(QaKind::ALL[i % 8], &mut Rng::new(i as u64)))
            .collect();
        let b: Vec<QaExample> = (0..20)
            .map(|i| example(QaKind::ALL[i % 8], &mut Rng::new(i as u64)))
            .collect();
        assert_eq!(a, b);
    }
}

#[cfg(test)]
mod relation_tests {
    use super::*;
    use crate::world::Size;

    #[test]
    fn clear_relations_only() {
        let o = |x, y| Object {
            shape: Shape::Circle,
            colour: Colour::Red,
            texture: Texture::Solid,
            size: Size::Small,
            x,
            y,
        };
        assert_eq!(
            clear_relation(&o(5.0, 10.0), &o(20.0, 12.0), Relation::LeftOf),
            Some(true)
        );
        assert_eq!(
            clear_relation(&o(5.0, 10.0), &o(20.0, 12.0), Relation::RightOf),
            Some(false)
        );
        assert_eq!(
            clear_relation(&o(5.0, 10.0), &o(10.0, 20.0), Relation::LeftOf),
            None
        );
        assert_eq!(
            clear_relation(&o(5.0, 5.0), &o(6.0, 25.0), Relation::Above),
            Some(true)
        );
        assert_eq!(
            clear_relation(&o(5.0, 5.0), &o(6.0, 6.0), Relation::Above),
            None
        );
        assert_eq!(
            is_there(&ObjectSpec {
                colour: Some(Colour::Orange),
                shape: Some(Shape::Cross),
                ..Default::default()
            }),
            "is there an orange cross ?"
        );
    }
}
