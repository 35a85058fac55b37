//! Random prompt generators, one per category.
//!
//! Every generated prompt is drawable: at most [`MAX_OBJECTS`](crate::scene::MAX_OBJECTS)
//! objects, phrases with distinct shapes (so that counts and bindings never interfere),
//! related phrases that name exactly one object each, and containers of `inside`/`around`
//! that are circles or squares (the only shapes a small object fits in).

use crate::prompt::{
    Ast, Category, Clause, Composite, Det, Entity, Item, Noun, Np, Prompt, Relation,
};
use crate::rng::Rng;
use crate::world::{Colour, Shape, Size, Texture};

/// Draws a random prompt of a category.
pub fn generate(category: Category, rng: &mut Rng) -> Prompt {
    let ast = match category {
        Category::Colour => colour(rng),
        Category::Shape => shape(rng),
        Category::Texture => texture(rng),
        Category::Spatial2d => relational(rng, &SPATIAL2D),
        Category::Spatial3d => relational(rng, &SPATIAL3D),
        Category::NonSpatial => relational(rng, &NON_SPATIAL),
        Category::Numeracy => numeracy(rng),
        Category::Complex => complex(rng),
        Category::Knowledge => knowledge(rng),
        Category::Arithmetic => arithmetic(rng),
        Category::Geometry => geometry(rng),
        Category::Composite => composite(rng),
    };
    let p = Prompt::from_ast(ast);
    debug_assert_eq!(p.category, category, "{}", p.text);
    p
}

/// "a [size] [texture] <colour> <shape>": one object, the simplest thing to draw. Its category
/// is whatever the attributes make it (colour, shape or texture).
pub fn single_object(rng: &mut Rng) -> Prompt {
    let shape = *rng.pick(Shape::ALL);
    let texture = rng
        .chance(0.3)
        .then(|| *rng.pick(Texture::ALL))
        .filter(|t| t.suits(shape));
    let np = Np {
        size: rng.chance(0.3).then(|| *rng.pick(Size::ALL)),
        texture,
        colour: Some(*rng.pick(Colour::ALL)),
        ..np(shape)
    };
    Prompt::from_ast(list(vec![np]))
}

const SPATIAL2D: [Relation; 6] = [
    Relation::LeftOf,
    Relation::RightOf,
    Relation::Above,
    Relation::Below,
    Relation::Near,
    Relation::NextTo,
];
const SPATIAL3D: [Relation; 3] = [Relation::InFrontOf, Relation::Behind, Relation::HiddenBy];
const NON_SPATIAL: [Relation; 3] = [Relation::Inside, Relation::Around, Relation::Touching];

/// `k` distinct shapes in random order.
fn shapes(rng: &mut Rng, k: usize) -> Vec<Shape> {
    let mut v = Shape::ALL.to_vec();
    rng.shuffle(&mut v);
    v.truncate(k);
    v
}

/// `k` distinct colours in random order.
fn colours(rng: &mut Rng, k: usize) -> Vec<Colour> {
    let mut v = Colour::ALL.to_vec();
    rng.shuffle(&mut v);
    v.truncate(k);
    v
}

fn np(shape: Shape) -> Np {
    Np::a(Noun::Shape(shape))
}

fn list(nps: Vec<Np>) -> Ast {
    Ast {
        clauses: nps
            .into_iter()
            .map(|n| Clause {
                head: Item::Np(n),
                rel: None,
            })
            .collect(),
    }
}

fn two_or_three(rng: &mut Rng) -> usize {
    if rng.chance(0.3) { 3 } else { 2 }
}

fn colour(rng: &mut Rng) -> Ast {
    let k = two_or_three(rng);
    let (s, c) = (shapes(rng, k), colours(rng, k));
    list(
        (0..k)
            .map(|i| Np {
                colour: Some(c[i]),
                ..np(s[i])
            })
            .collect(),
    )
}

fn shape(rng: &mut Rng) -> Ast {
    let k = two_or_three(rng);
    let s = shapes(rng, k);
    let mut sizes: Vec<Size> = (0..k).map(|_| *rng.pick(Size::ALL)).collect();
    if k == 3 {
        sizes[rng.below(3)] = Size::Small; // three large objects rarely fit
    }
    list(
        (0..k)
            .map(|i| Np {
                size: Some(sizes[i]),
                ..np(s[i])
            })
            .collect(),
    )
}

fn texture(rng: &mut Rng) -> Ast {
    let k = if rng.chance(0.25) { 3 } else { 2 };
    let s = shapes(rng, k);
    let with_colour = rng.chance(0.3);
    let c = colours(rng, k);
    let mut t: Vec<Texture> = Texture::ALL.to_vec();
    rng.shuffle(&mut t);
    // Give each shape a texture that suits it (only crosses are picky).
    if let Some(i) = (0..k).find(|&i| !t[i].suits(s[i])) {
        let j = (k..t.len())
            .chain(0..k)
            .find(|&j| j != i && t[j].suits(s[i]) && (j >= k || t[i].suits(s[j])));
        if let Some(j) = j {
            t.swap(i, j);
        }
    }
    list(
        (0..k)
            .map(|i| Np {
                texture: Some(t[i]),
                colour: with_colour.then_some(c[i]),
                ..np(s[i])
            })
            .collect(),
    )
}

/// A relational clause between two single objects; attributes optional.
fn relation_clause(
    rng: &mut Rng,
    rel: Relation,
    s: [Shape; 2],
    c: [Colour; 2],
    p_colour: f32,
) -> Clause {
    let mut a = np(s[0]);
    let mut b = np(s[1]);
    if rng.chance(p_colour) {
        a.colour = Some(c[0]);
    }
    if rng.chance(p_colour) {
        b.colour = Some(c[1]);
    }
    // Containers must be able to hold a small object, and sizes may be said aloud.
    let say_size = rng.chance(0.5);
    match rel {
        Relation::Inside => {
            b.noun = Noun::Shape(*rng.pick(&[Shape::Circle, Shape::Square]));
            if b.noun == a.noun {
                a.noun = Noun::Shape(other_shape(rng, &[b.noun.shape().unwrap()]));
            }
            if say_size {
                (a.size, b.size) = (Some(Size::Small), Some(Size::Large));
            }
        }
        Relation::Around => {
            a.noun = Noun::Shape(*rng.pick(&[Shape::Circle, Shape::Square]));
            if b.noun == a.noun {
                b.noun = Noun::Shape(other_shape(rng, &[a.noun.shape().unwrap()]));
            }
            if say_size {
                (a.size, b.size) = (Some(Size::Large), Some(Size::Small));
            }
        }
        _ => {}
    }
    Clause {
        head: Item::Np(a),
        rel: Some((rel, b)),
    }
}

fn other_shape(rng: &mut Rng, used: &[Shape]) -> Shape {
    let free: Vec<Shape> = Shape::ALL
        .iter()
        .copied()
        .filter(|s| !used.contains(s))
        .collect();
    *rng.pick(&free)
}

fn relational(rng: &mut Rng, rels: &[Relation]) -> Ast {
    let rel = *rng.pick(rels);
    let s = shapes(rng, 2);
    let c = colours(rng, 2);
    Ast {
        clauses: vec![relation_clause(rng, rel, [s[0], s[1]], [c[0], c[1]], 0.5)],
    }
}

fn numeracy(rng: &mut Rng) -> Ast {
    let groups = rng.range_incl(1, 3);
    let s = shapes(rng, groups);
    let c = colours(rng, groups);
    let with_colour = rng.chance(0.4);
    let mut left = 6usize;
    let mut nps = Vec::new();
    for i in 0..groups {
        let reserve = groups - i - 1; // at least one object for each later group
        let n = rng.range_incl(1, 4.min(left - reserve));
        left -= n;
        nps.push(Np {
            det: Det::Num(n as u8),
            colour: with_colour.then_some(c[i]),
            ..np(s[i])
        });
    }
    list(nps)
}

fn complex(rng: &mut Rng) -> Ast {
    let all: Vec<Relation> = SPATIAL2D
        .iter()
        .chain(&SPATIAL3D)
        .chain(&NON_SPATIAL)
        .copied()
        .collect();
    let rel = *rng.pick(&all);
    let s = shapes(rng, 3);
    let c = colours(rng, 3);
    let first = relation_clause(rng, rel, [s[0], s[1]], [c[0], c[1]], 0.7);
    // Keep the related pair's shapes out of the second clause (they may have been changed).
    let used: Vec<Shape> = match (&first.head, &first.rel) {
        (Item::Np(a), Some((_, b))) => [a.noun.shape(), b.noun.shape()]
            .into_iter()
            .flatten()
            .collect(),
        _ => vec![],
    };
    let third = if used.contains(&s[2]) {
        other_shape(rng, &used)
    } else {
        s[2]
    };
    let mut second = np(third);
    let textured = rng.chance(0.3);
    if textured {
        let shape = second.noun.shape().unwrap_or(Shape::Circle);
        let ok: Vec<Texture> = [Texture::Striped, Texture::Dotted, Texture::Outline]
            .into_iter()
            .filter(|t| t.suits(shape))
            .collect();
        second.texture = Some(*rng.pick(&ok));
    }
    if !textured && rng.chance(0.4) {
        second.det = Det::Num(2);
    } else {
        second.colour = Some(c[2]);
    }
    Ast {
        clauses: vec![
            first,
            Clause {
                head: Item::Np(second),
                rel: None,
            },
        ],
    }
}

fn knowledge(rng: &mut Rng) -> Ast {
    let k = if rng.chance(0.35) { 2 } else { 1 };
    let mut ents = Entity::ALL.to_vec();
    rng.shuffle(&mut ents);
    let s = shapes(rng, k);
    let nps = (0..k)
        .map(|i| {
            let noun = if rng.chance(0.3) {
                Noun::AnyShape
            } else {
                Noun::Shape(s[i])
            };
            Np {
                size: if rng.chance(0.25) {
                    Some(*rng.pick(Size::ALL))
                } else {
                    None
                },
                colour_of: Some(ents[i]),
                ..Np::a(noun)
            }
        })
        .collect::<Vec<_>>();
    // Two "shape" phrases would be indistinguishable by shape; keep at most one.
    let mut nps = nps;
    if k == 2 && nps.iter().all(|n| n.noun == Noun::AnyShape) {
        nps[1].noun = Noun::Shape(s[1]);
    }
    list(nps)
}

fn arithmetic(rng: &mut Rng) -> Ast {
    let det = loop {
        let d = match rng.below(3) {
            0 => Det::AsManyAsCorners(*rng.pick(&[Shape::Triangle, Shape::Square, Shape::Diamond])),
            1 => {
                let a = rng.range_incl(1, 3) as u8;
                Det::Plus(a, rng.range_incl(1, (4 - a).into()) as u8)
            }
            _ => {
                let a = rng.range_incl(2, 4) as u8;
                Det::Minus(a, rng.range_incl(1, (a - 1).into()) as u8)
            }
        };
        if (1..=4).contains(&d.count()) {
            break d;
        }
    };
    let s = shapes(rng, 2);
    let c = colours(rng, 2);
    let head = Np {
        det,
        colour: rng.chance(0.4).then_some(c[0]),
        ..np(s[0])
    };
    let mut nps = vec![head];
    if rng.chance(0.3) && det.count() <= 3 {
        nps.push(Np {
            colour: Some(c[1]),
            ..np(s[1])
        });
    }
    list(nps)
}

fn geometry(rng: &mut Rng) -> Ast {
    let k = if rng.chance(0.35) { 2 } else { 1 };
    let s = shapes(rng, k);
    let c = colours(rng, k);
    list(
        (0..k)
            .map(|i| Np {
                colour: rng.chance(0.6).then_some(c[i]),
                ..Np::a(Noun::Definition(s[i]))
            })
            .collect(),
    )
}

fn composite(rng: &mut Rng) -> Ast {
    let comp = *rng.pick(Composite::ALL);
    let mut clauses = vec![Clause {
        head: Item::Composite(comp),
        rel: None,
    }];
    if rng.chance(0.5) {
        let (parts, _) = comp.parts();
        let used: Vec<Shape> = parts.iter().filter_map(|p| p.shape).collect();
        let s = other_shape(rng, &used);
        clauses.push(Clause {
            head: Item::Np(Np {
                colour: Some(*rng.pick(Colour::ALL)),
                size: rng.chance(0.5).then(|| *rng.pick(Size::ALL)),
                ..np(s)
            }),
            rel: None,
        });
    }
    Ast { clauses }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scene::MAX_OBJECTS;

    #[test]
    fn generated_prompts_round_trip_and_keep_their_category() {
        let mut rng = Rng::new(3);
        for cat in Category::ALL {
            for _ in 0..300 {
                let p = generate(*cat, &mut rng);
                assert_eq!(p.category, *cat, "{}", p.text);
                let q = Prompt::parse(&p.text).unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(q, p, "{}", p.text);
                assert!(p.meaning.object_count() <= MAX_OBJECTS, "{}", p.text);
            }
        }
    }

    #[test]
    fn textures_suit_their_shapes() {
        let mut rng = Rng::new(5);
        for cat in Category::ALL {
            for _ in 0..300 {
                let p = generate(*cat, &mut rng);
                for ph in &p.meaning.phrases {
                    if let (Some(t), Some(s)) = (ph.spec.texture, ph.spec.shape) {
                        assert!(t.suits(s), "{}", p.text);
                    }
                }
            }
        }
    }

    #[test]
    fn phrases_have_distinct_shapes() {
        let mut rng = Rng::new(4);
        for cat in Category::ALL {
            for _ in 0..200 {
                let p = generate(*cat, &mut rng);
                let mut s: Vec<Shape> = p
                    .meaning
                    .phrases
                    .iter()
                    .filter_map(|x| x.spec.shape)
                    .collect();
                if *cat == Category::Composite {
                    continue; // a traffic light is three circles by definition
                }
                let n = s.len();
                s.sort();
                s.dedup();
                assert_eq!(s.len(), n, "{}", p.text);
            }
        }
    }
}
