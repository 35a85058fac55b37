//! One-constraint violations of a meaning: the hard negatives of the world.
//!
//! A violation changes the meaning (never the scene), and a scene is then sampled for the
//! changed meaning, so every violating scene is as well-formed as a true one. Used by the
//! oracle check and, later, for understanding data ("does this image show ...?").

use serde::{Deserialize, Serialize};

use crate::prompt::{Meaning, RelationFact};
use crate::rng::Rng;
use crate::scene::MAX_OBJECTS;
use crate::world::{Colour, Shape, Size, Texture};

/// The kinds of single-constraint violation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ViolationKind {
    /// Colours of two phrases exchanged (or, with one coloured phrase, its colour changed).
    ColourSwap,
    /// One phrase's shape changed to a shape no other phrase names.
    ShapeChange,
    /// One phrase's stated size flipped.
    SizeChange,
    /// One phrase's stated texture changed.
    TextureChange,
    /// One relation replaced by a contradicting one.
    RelationFlip,
    /// One counted group one larger or smaller.
    CountOffByOne,
    /// One phrase (a whole group for counted phrases) removed.
    ObjectMissing,
}

impl ViolationKind {
    pub const ALL: &'static [ViolationKind] = &[
        ViolationKind::ColourSwap,
        ViolationKind::ShapeChange,
        ViolationKind::SizeChange,
        ViolationKind::TextureChange,
        ViolationKind::RelationFlip,
        ViolationKind::CountOffByOne,
        ViolationKind::ObjectMissing,
    ];

    /// Snake-case name for reports.
    pub fn name(self) -> &'static str {
        match self {
            ViolationKind::ColourSwap => "colour_swap",
            ViolationKind::ShapeChange => "shape_change",
            ViolationKind::SizeChange => "size_change",
            ViolationKind::TextureChange => "texture_change",
            ViolationKind::RelationFlip => "relation_flip",
            ViolationKind::CountOffByOne => "count_off_by_one",
            ViolationKind::ObjectMissing => "object_missing",
        }
    }
}

/// The kinds that apply to a meaning (a prompt without colours cannot have them swapped).
pub fn applicable(m: &Meaning) -> Vec<ViolationKind> {
    let ph = &m.phrases;
    let mut v = Vec::new();
    if ph.iter().any(|p| p.spec.colour.is_some()) {
        v.push(ViolationKind::ColourSwap);
    }
    if ph.iter().any(|p| p.spec.shape.is_some()) {
        v.push(ViolationKind::ShapeChange);
    }
    if ph.iter().any(|p| p.spec.size.is_some()) {
        v.push(ViolationKind::SizeChange);
    }
    if ph.iter().any(|p| p.spec.texture.is_some()) {
        v.push(ViolationKind::TextureChange);
    }
    if !m.relations.is_empty() {
        v.push(ViolationKind::RelationFlip);
    }
    if ph.iter().any(|p| p.counted) {
        v.push(ViolationKind::CountOffByOne);
    }
    if ph.len() > 1 || ph.iter().any(|p| p.counted) {
        v.push(ViolationKind::ObjectMissing);
    }
    v
}

/// A meaning that breaks `m` in one way of `kind`, or `None` when the kind does not apply.
pub fn violate(m: &Meaning, kind: ViolationKind, rng: &mut Rng) -> Option<Meaning> {
    let mut out = m.clone();
    let pick_phrase = |rng: &mut Rng, f: &dyn Fn(usize) -> bool| {
        let idx: Vec<usize> = (0..m.phrases.len()).filter(|&i| f(i)).collect();
        if idx.is_empty() {
            None
        } else {
            Some(*rng.pick(&idx))
        }
    };
    match kind {
        ViolationKind::ColourSwap => {
            let coloured: Vec<usize> = (0..m.phrases.len())
                .filter(|&i| m.phrases[i].spec.colour.is_some())
                .collect();
            let distinct: Vec<(usize, usize)> = coloured
                .iter()
                .flat_map(|&i| coloured.iter().map(move |&j| (i, j)))
                .filter(|&(i, j)| i < j && m.phrases[i].spec.colour != m.phrases[j].spec.colour)
                .collect();
            if let Some(&(i, j)) = (!distinct.is_empty()).then(|| rng.pick(&distinct)) {
                let (ci, cj) = (m.phrases[i].spec.colour, m.phrases[j].spec.colour);
                out.phrases[i].spec.colour = cj;
                out.phrases[j].spec.colour = ci;
            } else {
                let i = *rng.pick(&coloured);
                let old = m.phrases[i].spec.colour?;
                let others: Vec<Colour> =
                    Colour::ALL.iter().copied().filter(|c| *c != old).collect();
                out.phrases[i].spec.colour = Some(*rng.pick(&others));
            }
        }
        ViolationKind::ShapeChange => {
            let i = pick_phrase(rng, &|i| m.phrases[i].spec.shape.is_some())?;
            let used: Vec<Shape> = m.phrases.iter().filter_map(|p| p.spec.shape).collect();
            let mut free: Vec<Shape> = Shape::ALL
                .iter()
                .copied()
                .filter(|s| !used.contains(s))
                .collect();
            // A container must stay able to hold its content.
            let is_container = m.relations.iter().any(|r| {
                (r.rel == crate::prompt::Relation::Inside && r.b == i)
                    || (r.rel == crate::prompt::Relation::Around && r.a == i)
            });
            if is_container {
                free.retain(|s| matches!(s, Shape::Circle | Shape::Square));
            }
            if free.is_empty() {
                return None;
            }
            out.phrases[i].spec.shape = Some(*rng.pick(&free));
        }
        ViolationKind::SizeChange => {
            let i = pick_phrase(rng, &|i| m.phrases[i].spec.size.is_some())?;
            let in_containment = m.relations.iter().any(|r| {
                (r.a == i || r.b == i)
                    && matches!(
                        r.rel,
                        crate::prompt::Relation::Inside | crate::prompt::Relation::Around
                    )
            });
            if in_containment {
                return None; // sizes are what makes containment possible
            }
            out.phrases[i].spec.size = Some(match m.phrases[i].spec.size? {
                Size::Small => Size::Large,
                Size::Large => Size::Small,
            });
        }
        ViolationKind::TextureChange => {
            let i = pick_phrase(rng, &|i| m.phrases[i].spec.texture.is_some())?;
            let old = m.phrases[i].spec.texture?;
            let shape = m.phrases[i].spec.shape.unwrap_or(Shape::Circle);
            let others: Vec<Texture> = Texture::ALL
                .iter()
                .copied()
                .filter(|t| *t != old && t.suits(shape))
                .collect();
            out.phrases[i].spec.texture = Some(*rng.pick(&others));
        }
        ViolationKind::RelationFlip => {
            if m.relations.is_empty() {
                return None;
            }
            let k = rng.below(m.relations.len());
            out.relations[k].rel = m.relations[k].rel.flipped();
        }
        ViolationKind::CountOffByOne => {
            let i = pick_phrase(rng, &|i| m.phrases[i].counted)?;
            let n = m.phrases[i].count;
            let can_add = m.object_count() < MAX_OBJECTS;
            let up = if n == 1 {
                true
            } else if !can_add {
                false
            } else {
                rng.chance(0.5)
            };
            if up && !can_add {
                return None;
            }
            out.phrases[i].count = if up { n + 1 } else { n - 1 };
        }
        ViolationKind::ObjectMissing => {
            if m.phrases.len() < 2 && !m.phrases.iter().any(|p| p.counted) {
                return None;
            }
            let i = rng.below(m.phrases.len());
            out.phrases.remove(i);
            out.relations = m
                .relations
                .iter()
                .filter(|r| r.a != i && r.b != i)
                .map(|r| RelationFact {
                    a: if r.a > i { r.a - 1 } else { r.a },
                    rel: r.rel,
                    b: if r.b > i { r.b - 1 } else { r.b },
                })
                .collect();
        }
    }
    (out != *m).then_some(out)
}
