//! The noun phrases a prompt states in so many words: "two striped red circles" is a phrase
//! (count 2, striped, red, circle); "a cross the colour of a carrot" states only "a cross"
//! (the colour must be inferred, which is the global reward's job); "two plus one blue
//! diamonds" states blue diamonds with no literal count. Only the prompt's text is read: no
//! parser of the world's meaning, no ground truth. A colour given by reference ("the colour of
//! a carrot") is found here ([`colour_references`]) and resolved by asking the model itself
//! (`crate::region`).

use compworld::{Colour, Shape, Size, Texture};

/// One literally stated object description.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Phrase {
    /// Exact count when the text states one ("two circles"; "a circle" is 1).
    pub count: Option<u8>,
    pub size: Option<Size>,
    pub texture: Option<Texture>,
    pub colour: Option<Colour>,
    pub shape: Shape,
}

impl Phrase {
    /// Whether an object named with these attributes fits this phrase (a name without a
    /// texture word is plain, as the model's region answers leave "plain" unsaid; size cannot
    /// be seen in a crop resized to the canvas, so it is not compared).
    pub fn fits(&self, name: &Phrase) -> bool {
        self.shape == name.shape
            && self.colour.is_none_or(|c| name.colour == Some(c))
            && self
                .texture
                .is_none_or(|t| name.texture.unwrap_or(Texture::Solid) == t)
    }
}

/// Words that end an entity reference: the next phrase or a relation begins.
const STOP: &[&str] = &[
    "and", "on", "near", "next", "in", "behind", "hidden", "inside", "around", "touching",
];

fn words_of(text: &str) -> Vec<String> {
    text.split_whitespace()
        .map(|w| {
            w.trim_matches(|c: char| !c.is_alphanumeric())
                .to_lowercase()
        })
        .collect()
}

/// For each phrase of [`literal_phrases`] followed by "the colour of <entity>", the phrase's
/// index and the entity's words ("a carrot", "the sky").
pub fn colour_references(text: &str) -> Vec<(usize, String)> {
    let words = words_of(text);
    let mut out = Vec::new();
    let mut phrase = 0;
    for (i, w) in words.iter().enumerate() {
        if Shape::from_word(w)
            .or_else(|| Shape::from_plural(w))
            .is_none()
        {
            continue;
        }
        let next: Vec<&str> = words[i + 1..].iter().take(3).map(String::as_str).collect();
        if next == ["the", "colour", "of"] {
            let entity: Vec<&str> = words[i + 4..]
                .iter()
                .map(String::as_str)
                .take_while(|w| !STOP.contains(w))
                .collect();
            if !entity.is_empty() {
                out.push((phrase, entity.join(" ")));
            }
        }
        phrase += 1;
    }
    out
}

fn number(w: &str) -> Option<u8> {
    ["zero", "one", "two", "three", "four", "five", "six"]
        .iter()
        .position(|&n| n == w)
        .map(|i| i as u8)
}

/// The phrases of `text`, in order: each shape word (singular or plural) with the size,
/// texture and colour words right before it and a count word before those.
pub fn literal_phrases(text: &str) -> Vec<Phrase> {
    let words: Vec<String> = text
        .split_whitespace()
        .map(|w| {
            w.trim_matches(|c: char| !c.is_alphanumeric())
                .to_lowercase()
        })
        .collect();
    let mut out = Vec::new();
    for (i, w) in words.iter().enumerate() {
        let Some(shape) = Shape::from_word(w).or_else(|| Shape::from_plural(w)) else {
            continue;
        };
        let mut p = Phrase {
            count: None,
            size: None,
            texture: None,
            colour: None,
            shape,
        };
        let mut j = i;
        while j > 0 {
            let prev = words[j - 1].as_str();
            if p.colour.is_none() && Colour::from_word(prev).is_some() {
                p.colour = Colour::from_word(prev);
            } else if p.texture.is_none() && Texture::from_word(prev).is_some() {
                p.texture = Texture::from_word(prev);
            } else if p.size.is_none() && Size::from_word(prev).is_some() {
                p.size = Size::from_word(prev);
            } else {
                break;
            }
            j -= 1;
        }
        if j > 0 {
            let det = words[j - 1].as_str();
            // "two plus one circles": the count is arithmetic, not stated.
            let arithmetic = j >= 2 && matches!(words[j - 2].as_str(), "plus" | "minus");
            p.count = match det {
                "a" | "an" => Some(1),
                _ if arithmetic => None,
                d => number(d),
            };
        }
        out.push(p);
    }
    out
}
