//! Frozen prompt splits: train / dev / val / test, with held-out attribute-object combinations
//! (like T2I-CompBench's `*_val_unseen`), reproducible byte for byte from a seed.
//!
//! - `train` never contains a held-out combination and shares no prompt text with the others.
//! - `dev` is for tuning (the val and test splits are never tuned on).
//! - `val` and `test` mix seen and held-out ("unseen") prompts, about one third unseen where the
//!   category can express them.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;

use crate::error::{Error, Result};
use crate::generate::generate;
use crate::prompt::{Category, Item, Np, Prompt};
use crate::rng::Rng;
use crate::world::{Colour, Shape, Texture};

/// (colour, shape) pairs that train never binds in one phrase.
pub const HELD_OUT_COLOUR_SHAPE: &[(Colour, Shape)] = &[
    (Colour::Blue, Shape::Diamond),
    (Colour::Green, Shape::Cross),
    (Colour::Purple, Shape::Circle),
    (Colour::Cyan, Shape::Triangle),
    (Colour::Pink, Shape::Square),
    (Colour::Orange, Shape::Cross),
];
/// (texture, shape) pairs that train never binds in one phrase.
pub const HELD_OUT_TEXTURE_SHAPE: &[(Texture, Shape)] = &[
    (Texture::Striped, Shape::Circle),
    (Texture::Dotted, Shape::Triangle),
    (Texture::Outline, Shape::Diamond),
];

/// Whether a noun phrase binds a held-out combination.
pub fn np_is_held_out(np: &Np) -> bool {
    let spec = np.spec();
    let Some(shape) = spec.shape else {
        return false;
    };
    spec.colour
        .is_some_and(|c| HELD_OUT_COLOUR_SHAPE.contains(&(c, shape)))
        || spec
            .texture
            .is_some_and(|t| HELD_OUT_TEXTURE_SHAPE.contains(&(t, shape)))
}

/// Whether any written noun phrase of the prompt binds a held-out combination. (Composite
/// parts are fixed conventions and never held out.)
pub fn is_held_out(p: &Prompt) -> bool {
    p.ast.clauses.iter().any(|c| {
        matches!(&c.head, Item::Np(np) if np_is_held_out(np))
            || c.rel.as_ref().is_some_and(|(_, np)| np_is_held_out(np))
    })
}

/// The split names, in file order.
pub const SPLIT_NAMES: [&str; 4] = ["train", "dev", "val", "test"];

/// Prompts per category in each split: train, dev, val, test. Categories whose grammar has
/// fewer distinct prompts get proportionally fewer (the split file says how many).
pub const PER_CATEGORY: [usize; 4] = [400, 30, 50, 50];

/// One line of a split file.
#[derive(Debug, Clone, PartialEq)]
pub struct SplitEntry {
    pub prompt: Prompt,
    /// Binds a held-out combination (only ever true outside train).
    pub unseen: bool,
}

/// The four splits.
#[derive(Debug, Clone, PartialEq)]
pub struct Splits {
    pub seed: u64,
    /// train, dev, val, test.
    pub splits: [Vec<SplitEntry>; 4],
}

/// Builds the splits from a seed. Each category draws from its own random stream.
pub fn make_splits(seed: u64) -> Splits {
    let mut splits: [Vec<SplitEntry>; 4] = Default::default();
    for cat in Category::ALL {
        let mut rng = Rng::derive(seed, cat.name());
        let total: usize = PER_CATEGORY.iter().sum();
        let mut seen_text = BTreeSet::new();
        let (mut seen, mut unseen) = (Vec::new(), Vec::new());
        // One third of each evaluation split is unseen where the category can express it.
        let unseen_target: usize = PER_CATEGORY[1..].iter().map(|q| q / 3).sum();
        for _ in 0..total * 40 {
            if seen.len() + unseen.len().min(unseen_target) >= total {
                break;
            }
            let p = generate(*cat, &mut rng);
            if !seen_text.insert(p.text.clone()) {
                continue;
            }
            if is_held_out(&p) {
                if unseen.len() < unseen_target {
                    unseen.push(p);
                }
            } else {
                seen.push(p);
            }
        }
        // Scale quotas down when the category's grammar is small; train keeps at least half.
        let found = seen.len() + unseen.len();
        let quota: Vec<usize> = PER_CATEGORY
            .iter()
            .map(|q| q * found.min(total) / total)
            .collect();
        let mut seen = seen.into_iter();
        let mut unseen = unseen.into_iter();
        // Evaluation splits first (test, val, dev), one third unseen where possible.
        for k in [3usize, 2, 1] {
            let want_unseen = quota[k] / 3;
            let mut taken = 0;
            for p in unseen.by_ref().take(want_unseen) {
                splits[k].push(SplitEntry {
                    prompt: p,
                    unseen: true,
                });
                taken += 1;
            }
            for p in seen.by_ref().take(quota[k] - taken) {
                splits[k].push(SplitEntry {
                    prompt: p,
                    unseen: false,
                });
            }
        }
        for p in seen.take(quota[0]) {
            splits[0].push(SplitEntry {
                prompt: p,
                unseen: false,
            });
        }
    }
    Splits { seed, splits }
}

impl Splits {
    /// The text of one split file.
    pub fn file_text(&self, k: usize) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "# compworld {} split, seed {}; regenerate: cargo run --release -p compworld -- splits --seed {} --out datasets/splits",
            SPLIT_NAMES[k], self.seed, self.seed
        );
        s.push_str("category\tunseen\tprompt\n");
        for e in &self.splits[k] {
            let _ = writeln!(
                s,
                "{}\t{}\t{}",
                e.prompt.category,
                u8::from(e.unseen),
                e.prompt.text
            );
        }
        s
    }

    /// Writes `{train,dev,val,test}.tsv` into `dir`.
    pub fn write(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::Io(format!("creating {}: {e}", dir.display())))?;
        for (k, name) in SPLIT_NAMES.iter().enumerate() {
            let path = dir.join(format!("{name}.tsv"));
            std::fs::write(&path, self.file_text(k))
                .map_err(|e| Error::Io(format!("writing {}: {e}", path.display())))?;
        }
        Ok(())
    }
}

/// Reads a split file written by [`Splits::write`]; every prompt is parsed and labelled.
pub fn load_split(path: &Path) -> Result<Vec<SplitEntry>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Io(format!("reading {}: {e}", path.display())))?;
    let err = |line: usize, msg: String| Error::Split {
        path: path.display().to_string(),
        line,
        msg,
    };
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.is_empty() || line.starts_with('#') || line.starts_with("category\t") {
            continue;
        }
        let cols: Vec<&str> = line.split('\t').collect();
        if cols.len() != 3 {
            return Err(err(
                i + 1,
                format!("expected 3 tab-separated columns, found {}", cols.len()),
            ));
        }
        let cat = Category::from_name(cols[0]).map_err(|e| err(i + 1, e.to_string()))?;
        let unseen = match cols[1] {
            "0" => false,
            "1" => true,
            x => return Err(err(i + 1, format!("unseen must be 0 or 1, found '{x}'"))),
        };
        let prompt = Prompt::parse_as(cols[2], cat).map_err(|e| err(i + 1, e.to_string()))?;
        out.push(SplitEntry { prompt, unseen });
    }
    Ok(out)
}
