//! The scene sampler: a random scene that satisfies a meaning, by rejection sampling.
//!
//! Geometry it guarantees (and the oracle's thresholds sit safely inside):
//! - every object lies inside the canvas with a 1-unit margin;
//! - objects whose colour the prompt leaves free get colours no other object has (while the
//!   palette lasts);
//! - unrelated objects keep a bounding-box gap of at least [`FREE_GAP`] units;
//! - 2D relations: the centre offset along the relation's axis is at least ~3x the other;
//! - `near`/`next to`: bounding-box gap in [2, 4] units; `far`: at least 9;
//! - `in front of`/`behind`/`hidden by`: the front object covers 20-45% of the back one;
//!   occluding and touching objects are large unless the prompt gives a size;
//! - `touching`: the shapes meet, each covering at most 3% of the other;
//! - `inside`/`around`: the small object lies wholly inside the container, drawn on top.

use crate::error::{Error, Result};
use crate::prompt::{Meaning, Relation};
use crate::rng::Rng;
use crate::scene::{Object, Scene, bbox_gap};
use crate::world::{CANVAS_UNITS, Colour, Shape, Size, Texture};

/// Minimum bounding-box gap between unrelated objects, in units.
pub const FREE_GAP: f32 = 2.0;
/// Canvas margin, in units.
const MARGIN: f32 = 1.0;
const ATTEMPTS: usize = 400;

/// Samples a scene satisfying `meaning`. `text` is only used in the error message.
pub fn sample_scene(meaning: &Meaning, text: &str, rng: &mut Rng) -> Result<Scene> {
    let fail = |why: &str| Err(Error::Unsatisfiable(text.to_string(), why.to_string()));
    if meaning.object_count() > crate::scene::MAX_OBJECTS {
        return fail("a scene holds at most 6 objects");
    }
    for r in &meaning.relations {
        let container = if r.rel == Relation::Inside { r.b } else { r.a };
        let containment = matches!(r.rel, Relation::Inside | Relation::Around);
        if containment
            && meaning.phrases[container]
                .spec
                .shape
                .is_some_and(|s| !matches!(s, Shape::Circle | Shape::Square))
        {
            return fail("only a circle or a square can hold another object");
        }
        if meaning.phrases[r.a].count != 1 || meaning.phrases[r.b].count != 1 {
            return fail("a relation must be between two single objects");
        }
    }
    for attempt in 0..ATTEMPTS {
        // After half the budget, shrink every object whose size is free.
        let prefer_small = attempt >= ATTEMPTS / 2;
        if let Some(scene) = try_sample(meaning, rng, prefer_small) {
            return Ok(scene);
        }
    }
    fail("no placement found within the sampling budget (too many or too large objects?)")
}

struct Slot {
    obj: Object,
    phrase: usize,
    z: f32,
    placed: bool,
}

fn try_sample(m: &Meaning, rng: &mut Rng, prefer_small: bool) -> Option<Scene> {
    let total = m.object_count();
    let specified_colours: Vec<Colour> = m.phrases.iter().filter_map(|p| p.spec.colour).collect();
    let specified_shapes: Vec<Shape> = m.phrases.iter().filter_map(|p| p.spec.shape).collect();
    let mut slots: Vec<Slot> = Vec::new();
    for (pi, p) in m.phrases.iter().enumerate() {
        let rel_size = m.relations.iter().find_map(|r| match r.rel {
            Relation::Inside if r.a == pi => Some(Size::Small),
            Relation::Inside if r.b == pi => Some(Size::Large),
            Relation::Around if r.a == pi => Some(Size::Large),
            Relation::Around if r.b == pi => Some(Size::Small),
            // Overlap and contact between two 8-unit objects is barely legible at 32 px, so
            // occluding and touching pairs are drawn large unless the prompt says otherwise.
            Relation::InFrontOf | Relation::Behind | Relation::HiddenBy | Relation::Touching
                if (r.a == pi || r.b == pi) && !prefer_small =>
            {
                Some(Size::Large)
            }
            _ => None,
        });
        let is_container = m.relations.iter().any(|r| {
            (r.rel == Relation::Inside && r.b == pi) || (r.rel == Relation::Around && r.a == pi)
        });
        for _ in 0..p.count {
            let shape = p.spec.shape.unwrap_or_else(|| {
                let pool: Vec<Shape> = if is_container {
                    vec![Shape::Circle, Shape::Square]
                } else {
                    let free: Vec<Shape> = Shape::ALL
                        .iter()
                        .copied()
                        .filter(|s| !specified_shapes.contains(s))
                        .collect();
                    if free.is_empty() {
                        Shape::ALL.to_vec()
                    } else {
                        free
                    }
                };
                *rng.pick(&pool)
            });
            // A free colour differs from every stated colour and, while colours last, from
            // every object drawn so far: two same-coloured objects that touch, overlap or nest
            // would read as one.
            let used: Vec<Colour> = slots.iter().map(|s| s.obj.colour).collect();
            let colour = p.spec.colour.unwrap_or_else(|| {
                let mut free: Vec<Colour> = Colour::ALL
                    .iter()
                    .copied()
                    .filter(|c| !specified_colours.contains(c) && !used.contains(c))
                    .collect();
                if free.is_empty() {
                    free = Colour::ALL
                        .iter()
                        .copied()
                        .filter(|c| !specified_colours.contains(c))
                        .collect();
                }
                if free.is_empty() {
                    *rng.pick(Colour::ALL)
                } else {
                    *rng.pick(&free)
                }
            });
            let texture = p.spec.texture.unwrap_or(Texture::Solid);
            let size = p.spec.size.or(rel_size).unwrap_or_else(|| {
                if texture != Texture::Solid {
                    Size::Large
                } else if prefer_small || total >= 4 {
                    Size::Small
                } else {
                    *rng.pick(Size::ALL)
                }
            });
            slots.push(Slot {
                obj: Object {
                    shape,
                    colour,
                    texture,
                    size,
                    x: 0.0,
                    y: 0.0,
                },
                phrase: pi,
                z: slots.len() as f32,
                placed: false,
            });
        }
    }
    // Related phrases name one object each, so phrase -> slot is one-to-one for them.
    let phrase_slot: Vec<usize> = slots.iter().map(|s| s.phrase).collect();
    let slot_of = |phrase: usize| phrase_slot.iter().position(|&p| p == phrase);
    // Pairs of slots bound by a relation: exempt from the free-gap rule between them.
    let mut bound: Vec<(usize, usize)> = Vec::new();
    for r in &m.relations {
        let (Some(a), Some(b)) = (slot_of(r.a), slot_of(r.b)) else {
            return None;
        };
        bound.push((a, b));
        match (slots[a].placed, slots[b].placed) {
            (false, false) => {
                place_free(&mut slots, b, &bound, rng)?;
                place_relative(&mut slots, a, r.rel, b, rng)?;
            }
            (false, true) => place_relative(&mut slots, a, r.rel, b, rng)?,
            (true, false) => place_relative(&mut slots, b, inverse(r.rel), a, rng)?,
            (true, true) => {}
        }
    }
    if m.relations.is_empty() && rng.chance(0.5) {
        place_grid(&mut slots, rng)?;
    }
    for i in 0..slots.len() {
        if !slots[i].placed {
            place_free(&mut slots, i, &bound, rng)?;
        }
    }
    // Every pair not bound by a relation keeps the free gap (placement may have moved things).
    for i in 0..slots.len() {
        if !slots[i].obj.fits_canvas(MARGIN) {
            return None;
        }
        for j in 0..i {
            let is_bound = bound.contains(&(i, j)) || bound.contains(&(j, i));
            if !is_bound && bbox_gap(slots[i].obj.bbox(), slots[j].obj.bbox()) < FREE_GAP {
                return None;
            }
        }
    }
    // Chains (a traffic light) must keep every stated relation.
    for r in &m.relations {
        let (a, b) = (slot_of(r.a)?, slot_of(r.b)?);
        let front = slots[a].z > slots[b].z;
        if !geometric_relation(&slots[a].obj, &slots[b].obj, r.rel, front) {
            return None;
        }
    }
    slots.sort_by(|x, y| x.z.total_cmp(&y.z));
    Some(Scene {
        objects: slots.into_iter().map(|s| s.obj).collect(),
    })
}

/// The relation seen from the other object.
fn inverse(rel: Relation) -> Relation {
    match rel {
        Relation::LeftOf => Relation::RightOf,
        Relation::RightOf => Relation::LeftOf,
        Relation::Above => Relation::Below,
        Relation::Below => Relation::Above,
        Relation::InFrontOf => Relation::Behind,
        Relation::Behind | Relation::HiddenBy => Relation::InFrontOf,
        Relation::Inside => Relation::Around,
        Relation::Around => Relation::Inside,
        r @ (Relation::Near
        | Relation::NextTo
        | Relation::Touching
        | Relation::Apart
        | Relation::Far) => r,
    }
}

/// Places every slot in its own cell of a shuffled grid (dense scenes that random placement
/// rarely packs), jittered as far as the free gap allows.
fn place_grid(slots: &mut [Slot], rng: &mut Rng) -> Option<()> {
    let n = slots.len();
    let (cols, rows) = match n {
        0 => return Some(()),
        1 => (1, 1),
        2 => {
            if rng.chance(0.5) {
                (2, 1)
            } else {
                (1, 2)
            }
        }
        3 | 4 => (2, 2),
        _ => {
            if rng.chance(0.5) {
                (3, 2)
            } else {
                (2, 3)
            }
        }
    };
    let usable = CANVAS_UNITS - 2.0 * MARGIN;
    let (px, py) = (usable / cols as f32, usable / rows as f32);
    let mut cells: Vec<usize> = (0..cols * rows).collect();
    rng.shuffle(&mut cells);
    let max_side = slots.iter().map(|s| s.obj.side()).fold(0.0, f32::max);
    let jx = ((px - max_side - FREE_GAP) * 0.5).max(0.0);
    let jy = ((py - max_side - FREE_GAP) * 0.5).max(0.0);
    for (slot, &cell) in slots.iter_mut().zip(&cells) {
        let (cx, cy) = ((cell % cols) as f32, (cell / cols) as f32);
        slot.obj.x = MARGIN + (cx + 0.5) * px + rng.range_f32(-jx, jx + 1e-6);
        slot.obj.y = MARGIN + (cy + 0.5) * py + rng.range_f32(-jy, jy + 1e-6);
        slot.placed = true;
    }
    Some(())
}

/// Places slot `i` anywhere, keeping the free gap to every placed object it is not bound to.
fn place_free(slots: &mut [Slot], i: usize, bound: &[(usize, usize)], rng: &mut Rng) -> Option<()> {
    let h = slots[i].obj.side() * 0.5;
    for _ in 0..300 {
        let x = rng.range_f32(MARGIN + h, CANVAS_UNITS - MARGIN - h);
        let y = rng.range_f32(MARGIN + h, CANVAS_UNITS - MARGIN - h);
        let cand = Object {
            x,
            y,
            ..slots[i].obj
        };
        let ok = slots.iter().enumerate().all(|(j, s)| {
            j == i
                || !s.placed
                || bound.contains(&(i, j))
                || bound.contains(&(j, i))
                || bbox_gap(cand.bbox(), s.obj.bbox()) >= FREE_GAP
        });
        if ok {
            slots[i].obj = cand;
            slots[i].placed = true;
            return Some(());
        }
    }
    None
}

/// Places slot `n` so that "`n` rel `a`" holds, with `a` already placed.
fn place_relative(
    slots: &mut [Slot],
    n: usize,
    rel: Relation,
    a: usize,
    rng: &mut Rng,
) -> Option<()> {
    let anchor = slots[a].obj;
    let base = slots[n].obj;
    let reach = (anchor.side() + base.side()) * 0.5;
    let at = |dx: f32, dy: f32| Object {
        x: anchor.x + dx,
        y: anchor.y + dy,
        ..base
    };
    let along = |rng: &mut Rng, gap: f32| {
        // Offset along an axis plus a small perpendicular jitter.
        let d = reach + gap;
        (d, rng.range_f32(-0.3, 0.3) * d)
    };
    for _ in 0..40 {
        let (obj, z) = match rel {
            Relation::LeftOf | Relation::RightOf | Relation::Above | Relation::Below => {
                let gap = rng.range_f32(2.0, 7.0);
                let (d, j) = along(rng, gap);
                let o = match rel {
                    Relation::LeftOf => at(-d, j),
                    Relation::RightOf => at(d, j),
                    Relation::Above => at(j, -d),
                    _ => at(j, d),
                };
                (o, slots[n].z)
            }
            Relation::NextTo => {
                let gap = rng.range_f32(2.0, 4.0);
                let (d, j) = along(rng, gap);
                let (d, j) = (d * if rng.chance(0.5) { 1.0 } else { -1.0 }, j * 0.5);
                (at(d, j), slots[n].z)
            }
            Relation::Near => {
                // Walk outwards along a random direction until the wanted box gap opens.
                let ang = rng.range_f32(0.0, std::f32::consts::TAU);
                let want = rng.range_f32(2.2, 3.8);
                let mut dist = reach * 0.5;
                let mut o = at(dist * ang.cos(), dist * ang.sin());
                while bbox_gap(o.bbox(), anchor.bbox()) < want && dist < CANVAS_UNITS {
                    dist += 0.25;
                    o = at(dist * ang.cos(), dist * ang.sin());
                }
                (o, slots[n].z)
            }
            Relation::Far | Relation::Apart => {
                let ang = rng.range_f32(0.0, std::f32::consts::TAU);
                let r = rng.range_f32(reach * 0.5, CANVAS_UNITS * 0.8);
                (at(r * ang.cos(), r * ang.sin()), slots[n].z)
            }
            Relation::InFrontOf | Relation::Behind | Relation::HiddenBy | Relation::Touching => {
                let ang = rng.range_f32(0.0, std::f32::consts::TAU);
                let (c, s) = (ang.cos(), ang.sin());
                let front = rel == Relation::InFrontOf || rel == Relation::Touching;
                let z = if front {
                    slots[a].z + 0.5
                } else {
                    slots[a].z - 0.5
                };
                // Search the distance along the direction that gives the wanted overlap.
                let target = if rel == Relation::Touching {
                    (0.0005, 0.03)
                } else {
                    (0.2, 0.45)
                };
                let mut found = None;
                let mut dist = reach;
                while dist > 0.0 {
                    let o = at(dist * c, dist * s);
                    let (back, fr) = if front { (&anchor, &o) } else { (&o, &anchor) };
                    let cov = Scene::overlap_fraction(back, fr);
                    let cov2 = Scene::overlap_fraction(fr, back);
                    let ok = if rel == Relation::Touching {
                        cov >= target.0 && cov <= target.1 && cov2 <= target.1
                    } else {
                        cov >= target.0 && cov <= target.1
                    };
                    if ok {
                        found = Some(o);
                        break;
                    }
                    if cov > target.1 {
                        break;
                    }
                    dist -= 0.25;
                }
                match found {
                    Some(o) => (o, z),
                    None => continue,
                }
            }
            Relation::Inside | Relation::Around => {
                let (small, big) = if rel == Relation::Inside {
                    (base, anchor)
                } else {
                    (anchor, base)
                };
                let room = (big.side() - small.side()) * 0.5;
                let (dx, dy) = (rng.range_f32(-room, room), rng.range_f32(-room, room));
                let z = if rel == Relation::Inside {
                    slots[a].z + 0.5
                } else {
                    slots[a].z - 0.5
                };
                let o = if rel == Relation::Inside {
                    at(dx, dy)
                } else {
                    at(-dx, -dy)
                };
                (o, z)
            }
        };
        if !obj.fits_canvas(MARGIN) {
            continue;
        }
        let front = z > slots[a].z;
        if !geometric_relation(&obj, &anchor, rel, front) {
            continue;
        }
        slots[n].obj = obj;
        slots[n].z = z;
        slots[n].placed = true;
        return Some(());
    }
    None
}

/// Whether "`a` rel `b`" holds geometrically for the sampler (strict margins; the oracle's
/// thresholds are looser). `a_in_front` says whether `a` is drawn after `b`.
pub fn geometric_relation(a: &Object, b: &Object, rel: Relation, a_in_front: bool) -> bool {
    let (dx, dy) = (b.x - a.x, b.y - a.y); // from a to b
    let gap = bbox_gap(a.bbox(), b.bbox());
    match rel {
        Relation::LeftOf => dx > 0.0 && dy.abs() <= 0.35 * dx.abs(),
        Relation::RightOf => dx < 0.0 && dy.abs() <= 0.35 * dx.abs(),
        Relation::Above => dy > 0.0 && dx.abs() <= 0.35 * dy.abs(),
        Relation::Below => dy < 0.0 && dx.abs() <= 0.35 * dy.abs(),
        Relation::Near => (2.0..=4.0).contains(&gap),
        Relation::NextTo => (2.0..=4.0).contains(&gap) && dy.abs() <= 0.3 * dx.abs(),
        Relation::Far => gap >= 9.0,
        Relation::Apart => gap >= FREE_GAP,
        Relation::InFrontOf => a_in_front && (0.2..=0.45).contains(&Scene::overlap_fraction(b, a)),
        Relation::Behind | Relation::HiddenBy => {
            !a_in_front && (0.2..=0.45).contains(&Scene::overlap_fraction(a, b))
        }
        Relation::Touching => {
            let (x, y) = if a_in_front { (b, a) } else { (a, b) };
            let c1 = Scene::overlap_fraction(x, y);
            c1 > 0.0 && c1 <= 0.03 && Scene::overlap_fraction(y, x) <= 0.03
        }
        Relation::Inside => a_in_front && wholly_inside(a, b),
        Relation::Around => !a_in_front && wholly_inside(b, a),
    }
}

/// Whether every point of `small` lies inside `big` with half a unit to spare.
fn wholly_inside(small: &Object, big: &Object) -> bool {
    let [x0, y0, x1, y1] = small.bbox();
    let step = 0.5;
    let mut y = y0 + step * 0.5;
    while y < y1 {
        let mut x = x0 + step * 0.5;
        while x < x1 {
            if small.contains(x, y) {
                let ok = (0..8).all(|k| {
                    let a = k as f32 * std::f32::consts::FRAC_PI_4;
                    big.contains(x + 0.5 * a.cos(), y + 0.5 * a.sin())
                });
                if !ok {
                    return false;
                }
            }
            x += step;
        }
        y += step;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::generate;
    use crate::prompt::Category;

    #[test]
    fn impossible_prompts_say_why() {
        let mut rng = Rng::new(1);
        let p = crate::Prompt::parse("a small red circle inside a large triangle").unwrap();
        let e = sample_scene(&p.meaning, &p.text, &mut rng)
            .unwrap_err()
            .to_string();
        assert!(e.contains("only a circle or a square can hold"), "{e}");
        let p = crate::Prompt::parse("two circles touching a square").unwrap();
        let e = sample_scene(&p.meaning, &p.text, &mut rng)
            .unwrap_err()
            .to_string();
        assert!(e.contains("two single objects"), "{e}");
        let p = crate::Prompt::parse("four circles and three squares").unwrap();
        let e = sample_scene(&p.meaning, &p.text, &mut rng)
            .unwrap_err()
            .to_string();
        assert!(e.contains("at most 6 objects"), "{e}");
    }

    #[test]
    fn every_category_samples() {
        let mut rng = Rng::new(11);
        for cat in Category::ALL {
            for _ in 0..300 {
                let p = generate(*cat, &mut rng);
                let s = sample_scene(&p.meaning, &p.text, &mut rng)
                    .unwrap_or_else(|e| panic!("{cat}: {e}"));
                assert_eq!(s.objects.len(), p.meaning.object_count(), "{}", p.text);
            }
        }
    }
}
