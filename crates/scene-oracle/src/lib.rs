//! scene-oracle: the benchmark's judge. It reads a generated RGB image (and nothing about the
//! scene that produced it), perceives its objects ([`perceive`]) and scores the image against a
//! prompt's explicit meaning, constraint by constraint, with rules that mirror the official
//! T2I-CompBench / GenEval metrics:
//!
//! | category | rule |
//! |---|---|
//! | color, shape, texture | attribute binding: product over noun phrases of "a distinct object with these attributes is present" (BLIP-VQA style) |
//! | spatial | both objects found and the relation holds by fitted-shape centre offsets (`left of`: dx > 0 and \|dx\| > \|dy\|; `near`: box gap <= 5.5 units) (UniDet/GenEval style) |
//! | 3d_spatial | both found and the occlusion order holds (front object covers >= 7% of the back one's fitted shape and more than the reverse, or >= 4.9% and 3x the reverse) |
//! | non_spatial | both found and inside (>= 90% of the content inside the container's shape) / touching (pixels meet, < 7% cover) holds |
//! | numeracy | per counted group 0.5 for presence + 0.5 for the exact count; product over groups |
//! | complex | mean of its parts: binding (product), relations (mean), counts (numeracy rule) |
//! | knowledge, arithmetic, geometry, composite | every constraint all-or-nothing (the implied entity, number or arrangement is either drawn or not); product |
//!
//! **Invariant:** nothing that trains or rewards a model depends on this crate (a test in the
//! workspace checks the dependency graph). It is the judge, never the model's teacher.

pub mod check;
pub mod perceive;

use compworld::prompt::{Constraint, Meaning, Relation};
use compworld::{Category, Image, Prompt};
use serde::Serialize;

pub use perceive::{Detection, Perception, perceive};

/// Box gap (units) at or below which two objects are `near`.
pub const NEAR_GAP_UNITS: f32 = 5.5;
/// Cover fraction above which an object is in front of another.
pub const FRONT_COVER: f32 = 0.07;
/// Fraction of an object's pixels inside another's shape for `inside`.
pub const INSIDE_FRACTION: f32 = 0.90;

/// The score of one constraint.
#[derive(Debug, Clone, Serialize)]
pub struct ConstraintScore {
    pub constraint: Constraint,
    /// Human-readable constraint ("relation: red circle left of square").
    pub description: String,
    /// Score in [0, 1].
    pub score: f32,
}

/// The oracle's verdict on one image.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub category: Category,
    /// Category score in [0, 1].
    pub score: f32,
    pub constraints: Vec<ConstraintScore>,
    pub perception: Perception,
}

/// Scores an image against a prompt by the rule of the prompt's category.
pub fn score(img: &Image, prompt: &Prompt) -> Verdict {
    let perception = perceive(img);
    score_perception(perception, &prompt.meaning, prompt.category)
}

/// Scores an already perceived image (to score one image against many prompts).
pub fn score_perception(perception: Perception, meaning: &Meaning, category: Category) -> Verdict {
    let cons = meaning.constraints();
    let present: Vec<usize> = cons
        .iter()
        .filter_map(|c| match c {
            Constraint::Present { phrase } => Some(*phrase),
            _ => None,
        })
        .collect();
    let matched = binding(&perception, meaning, &present);
    let strict = category.is_reasoning();
    let constraints: Vec<ConstraintScore> = cons
        .iter()
        .map(|c| {
            let score = match *c {
                Constraint::Present { phrase } => f32::from(u8::from(
                    matched[present.iter().position(|&p| p == phrase).unwrap()],
                )),
                Constraint::Count { phrase, n } => {
                    let k = count(&perception, meaning, phrase);
                    if strict {
                        f32::from(u8::from(k == usize::from(n)))
                    } else {
                        0.5 * f32::from(u8::from(k >= 1))
                            + 0.5 * f32::from(u8::from(k == usize::from(n)))
                    }
                }
                Constraint::Relation { a, rel, b } => {
                    f32::from(u8::from(relation_holds(&perception, meaning, a, rel, b)))
                }
            };
            ConstraintScore {
                constraint: *c,
                description: meaning.describe(c),
                score,
            }
        })
        .collect();
    let score = aggregate(category, &constraints);
    Verdict {
        category,
        score,
        constraints,
        perception,
    }
}

fn aggregate(category: Category, cs: &[ConstraintScore]) -> f32 {
    let of = |f: fn(&Constraint) -> bool| -> Vec<f32> {
        cs.iter()
            .filter(|c| f(&c.constraint))
            .map(|c| c.score)
            .collect()
    };
    let product = |v: &[f32]| v.iter().product::<f32>();
    let mean = |v: &[f32]| {
        if v.is_empty() {
            0.0
        } else {
            v.iter().sum::<f32>() / v.len() as f32
        }
    };
    let present = of(|c| matches!(c, Constraint::Present { .. }));
    let counts = of(|c| matches!(c, Constraint::Count { .. }));
    let rels = of(|c| matches!(c, Constraint::Relation { .. }));
    match category {
        Category::Colour | Category::Shape | Category::Texture => {
            product(&present) * product(&counts)
        }
        Category::Spatial2d | Category::Spatial3d | Category::NonSpatial => {
            if rels.is_empty() {
                product(&present)
            } else {
                mean(&rels)
            }
        }
        Category::Numeracy => product(&counts) * product(&present),
        Category::Complex => {
            let mut parts = Vec::new();
            if !present.is_empty() {
                parts.push(product(&present));
            }
            if !rels.is_empty() {
                parts.push(mean(&rels));
            }
            if !counts.is_empty() {
                parts.push(product(&counts));
            }
            mean(&parts)
        }
        Category::Knowledge | Category::Arithmetic | Category::Geometry | Category::Composite => {
            cs.iter().map(|c| c.score).product()
        }
    }
}

fn matches(d: &Detection, meaning: &Meaning, phrase: usize) -> bool {
    meaning.phrases[phrase]
        .spec
        .matches(d.shape, d.colour, d.texture, d.size)
}

/// Maximum matching of present-phrases to distinct detections (Kuhn's augmenting paths).
/// Returns, per phrase in `present`, whether it got an object.
fn binding(p: &Perception, meaning: &Meaning, present: &[usize]) -> Vec<bool> {
    let n = p.objects.len();
    let mut owner: Vec<Option<usize>> = vec![None; n];
    fn augment(
        k: usize,
        present: &[usize],
        p: &Perception,
        meaning: &Meaning,
        owner: &mut [Option<usize>],
        seen: &mut [bool],
    ) -> bool {
        for o in 0..p.objects.len() {
            if seen[o] || !matches(&p.objects[o], meaning, present[k]) {
                continue;
            }
            seen[o] = true;
            if owner[o].is_none_or(|j| augment(j, present, p, meaning, owner, seen)) {
                owner[o] = Some(k);
                return true;
            }
        }
        false
    }
    for k in 0..present.len() {
        let mut seen = vec![false; n];
        augment(k, present, p, meaning, &mut owner, &mut seen);
    }
    (0..present.len())
        .map(|k| owner.contains(&Some(k)))
        .collect()
}

fn count(p: &Perception, meaning: &Meaning, phrase: usize) -> usize {
    p.objects
        .iter()
        .filter(|d| matches(d, meaning, phrase))
        .count()
}

fn bbox_gap(a: [f32; 4], b: [f32; 4]) -> f32 {
    compworld::scene::bbox_gap(a, b)
}

/// Whether "object i rel object j" holds in the perception.
pub fn pair_relation(p: &Perception, i: usize, rel: Relation, j: usize) -> bool {
    let (a, b) = (&p.objects[i], &p.objects[j]);
    let (dx, dy) = (b.centre[0] - a.centre[0], b.centre[1] - a.centre[1]);
    let near = bbox_gap(a.bbox, b.bbox) <= NEAR_GAP_UNITS;
    let inside = |x: usize, y: usize| {
        p.contained[x][y] >= INSIDE_FRACTION && p.objects[x].side < p.objects[y].side
    };
    // In front: a clear cover, or a smaller one that is very lopsided (blur eats the visible
    // edge of the front object and the hidden tip of a diamond or triangle is little area).
    let in_front = |x: usize, y: usize| {
        let (c, r) = (p.cover[x][y], p.cover[y][x]);
        (c >= FRONT_COVER && c > r) || (c >= FRONT_COVER * 0.7 && c >= 3.0 * r)
    };
    match rel {
        Relation::LeftOf => dx > 0.0 && dx.abs() > dy.abs(),
        Relation::RightOf => dx < 0.0 && dx.abs() > dy.abs(),
        Relation::Above => dy > 0.0 && dy.abs() > dx.abs(),
        Relation::Below => dy < 0.0 && dy.abs() > dx.abs(),
        Relation::Near => near,
        Relation::NextTo => near && dx.abs() > dy.abs(),
        Relation::Far => !near,
        Relation::InFrontOf => in_front(i, j),
        Relation::Behind | Relation::HiddenBy => in_front(j, i),
        Relation::Inside => inside(i, j),
        Relation::Around => inside(j, i),
        Relation::Touching => {
            p.adjacent[i][j] && !inside(i, j) && !inside(j, i) && !in_front(i, j) && !in_front(j, i)
        }
        Relation::Apart => !p.adjacent[i][j] && !inside(i, j) && !inside(j, i),
    }
}

fn relation_holds(p: &Perception, meaning: &Meaning, a: usize, rel: Relation, b: usize) -> bool {
    let n = p.objects.len();
    (0..n).any(|i| {
        matches(&p.objects[i], meaning, a)
            && (0..n).any(|j| {
                j != i && matches(&p.objects[j], meaning, b) && pair_relation(p, i, rel, j)
            })
    })
}
