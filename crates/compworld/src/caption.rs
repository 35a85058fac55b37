//! Captions: a prompt that a scene satisfies, written from the scene.

use crate::prompt::{Ast, Clause, Det, Item, Noun, Np, Prompt, Relation};
use crate::sampler::geometric_relation;
use crate::scene::{Object, Scene};
use crate::world::Texture;

/// A caption of the scene: every object with all its attributes (identical objects grouped
/// with a number), and, when the first two groups are single objects in a clear 2D
/// arrangement, that relation. The scene satisfies its caption's meaning.
pub fn caption(scene: &Scene) -> Prompt {
    // Group identical-looking objects, keeping first-appearance order.
    let key = |o: &Object| (o.shape, o.colour, o.texture, o.size);
    let mut groups: Vec<(Object, u8)> = Vec::new();
    for o in &scene.objects {
        match groups.iter_mut().find(|(g, _)| key(g) == key(o)) {
            Some((_, n)) => *n += 1,
            None => groups.push((*o, 1)),
        }
    }
    let np = |o: &Object, n: u8| Np {
        det: if n == 1 { Det::A } else { Det::Num(n) },
        size: Some(o.size),
        texture: (o.texture != Texture::Solid).then_some(o.texture),
        colour: Some(o.colour),
        noun: Noun::Shape(o.shape),
        colour_of: None,
    };
    let mut clauses: Vec<Clause> = Vec::new();
    let mut rest = &groups[..];
    if groups.len() >= 2 && groups[0].1 == 1 && groups[1].1 == 1 {
        let (a, b) = (&groups[0].0, &groups[1].0);
        let rel = [
            Relation::LeftOf,
            Relation::RightOf,
            Relation::Above,
            Relation::Below,
        ]
        .into_iter()
        .find(|r| geometric_relation(a, b, *r, false));
        if let Some(rel) = rel {
            clauses.push(Clause {
                head: Item::Np(np(a, 1)),
                rel: Some((rel, np(b, 1))),
            });
            rest = &groups[2..];
        }
    }
    clauses.extend(rest.iter().map(|(o, n)| Clause {
        head: Item::Np(np(o, *n)),
        rel: None,
    }));
    Prompt::from_ast(Ast { clauses })
}
