//! Paired comparison of two benchmark runs on the same prompts and seeds (`cargo xtask bench
//! compare`).
//!
//! A run's `overall` is the mean over categories of the mean image score. Two runs of the same
//! plan score the same prompts, so their difference can be read prompt by prompt: for each
//! category, the mean over prompts of `other - base` (each prompt's mean over its images), and
//! overall the mean of the categories. With equal images per prompt within a category this is
//! exactly `overall(other) - overall(base)`; its standard error comes from the spread of the
//! per-prompt differences, `sqrt(sum_c var_c / n_c) / C`, which leaves out the spread between
//! prompts that both runs share (some prompts are hard for every model), so it is smaller than
//! the error of either overall. Scores are in points (0-100), as in `summary.json`.

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::io;
use crate::{Error, Result};

/// One image's row of `per_image.csv`, as far as the comparison needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub category: String,
    pub prompt_index: usize,
    pub prompt: String,
    /// In [0, 1].
    pub score: f64,
}

/// Reads the rows of a run's `per_image.csv`.
pub fn read_per_image(path: &Path) -> Result<Vec<Row>> {
    let text = std::fs::read_to_string(path).map_err(|e| io("reading", path, e))?;
    let mut r = csv::Reader::from_reader(text.as_bytes());
    let bad = |what: String| Error::Io(format!("{}: {what}", path.display()));
    let head = r.headers().map_err(|e| bad(e.to_string()))?.clone();
    let col = |name: &str| {
        head.iter()
            .position(|h| h == name)
            .ok_or_else(|| bad(format!("no column `{name}`")))
    };
    let (c, i, p, s) = (
        col("category")?,
        col("prompt_index")?,
        col("prompt")?,
        col("score")?,
    );
    let mut out = Vec::new();
    for (line, rec) in r.records().enumerate() {
        let rec = rec.map_err(|e| bad(e.to_string()))?;
        let num = |k: usize| -> Result<f64> {
            rec[k]
                .parse()
                .map_err(|_| bad(format!("row {}: `{}` is not a number", line + 2, &rec[k])))
        };
        out.push(Row {
            category: rec[c].to_string(),
            prompt_index: num(i)? as usize,
            prompt: rec[p].to_string(),
            score: num(s)?,
        });
    }
    Ok(out)
}

/// The paired difference of one category.
#[derive(Debug, Clone, PartialEq)]
pub struct CategoryDiff {
    pub category: String,
    pub prompts: usize,
    /// Category scores (points).
    pub base: f64,
    pub other: f64,
    /// Standard error of `other - base` (points).
    pub se: f64,
}

/// The paired difference of two runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Paired {
    pub categories: Vec<CategoryDiff>,
    /// Overall scores (points): the means of the category scores.
    pub base: f64,
    pub other: f64,
    /// Standard error of `other - base` (points).
    pub se: f64,
}

impl Paired {
    /// `other - base` (points).
    pub fn diff(&self) -> f64 {
        self.other - self.base
    }
}

/// Per category, per prompt index: (prompt, mean score).
fn prompt_means(rows: &[Row]) -> BTreeMap<String, BTreeMap<usize, (String, f64)>> {
    let mut acc: BTreeMap<String, BTreeMap<usize, (String, f64, usize)>> = BTreeMap::new();
    for r in rows {
        let e = acc
            .entry(r.category.clone())
            .or_default()
            .entry(r.prompt_index)
            .or_insert((r.prompt.clone(), 0.0, 0));
        e.1 += r.score;
        e.2 += 1;
    }
    acc.into_iter()
        .map(|(c, m)| {
            let m = m
                .into_iter()
                .map(|(k, (p, s, n))| (k, (p, s / n as f64)))
                .collect();
            (c, m)
        })
        .collect()
}

/// Compares `other` with `base` prompt by prompt. Both must hold the same categories and, in
/// each, the same prompts (by index and text); anything else is an error, since the
/// difference would no longer be paired.
pub fn paired(base: &[Row], other: &[Row]) -> Result<Paired> {
    let (a, b) = (prompt_means(base), prompt_means(other));
    let differ = |what: String| Err(Error::Io(format!("the two runs differ: {what}")));
    if a.keys().ne(b.keys()) {
        return differ(format!(
            "categories {:?} against {:?}",
            a.keys().collect::<Vec<_>>(),
            b.keys().collect::<Vec<_>>()
        ));
    }
    if a.is_empty() {
        return differ("no images".into());
    }
    let mut categories = Vec::new();
    for (cat, pa) in &a {
        let pb = &b[cat];
        if pa.len() != pb.len() {
            return differ(format!("{cat}: {} prompts against {}", pa.len(), pb.len()));
        }
        let mut d = Vec::with_capacity(pa.len());
        let (mut sa, mut sb) = (0.0, 0.0);
        for (k, (text, s)) in pa {
            let Some((text_b, t)) = pb.get(k) else {
                return differ(format!("{cat}: prompt {k} is missing from the second run"));
            };
            if text != text_b {
                return differ(format!("{cat}: prompt {k} is `{text}` against `{text_b}`"));
            }
            d.push(t - s);
            sa += s;
            sb += t;
        }
        let n = d.len() as f64;
        let mean = d.iter().sum::<f64>() / n;
        let var = if d.len() > 1 {
            d.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)
        } else {
            0.0
        };
        categories.push(CategoryDiff {
            category: cat.clone(),
            prompts: d.len(),
            base: 100.0 * sa / n,
            other: 100.0 * sb / n,
            se: 100.0 * (var / n).sqrt(),
        });
    }
    let c = categories.len() as f64;
    let mean = |f: fn(&CategoryDiff) -> f64| categories.iter().map(f).sum::<f64>() / c;
    let se = categories
        .iter()
        .map(|x| (x.se / 100.0).powi(2))
        .sum::<f64>()
        .sqrt()
        * 100.0
        / c;
    Ok(Paired {
        base: mean(|x| x.base),
        other: mean(|x| x.other),
        se,
        categories,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(category: &str, prompt_index: usize, score: f64) -> Row {
        row_of(
            category,
            prompt_index,
            &format!("{category} prompt {prompt_index}"),
            score,
        )
    }

    #[test]
    fn paired_difference_by_hand() {
        // color: prompts 0, 1 with two images each; shape: prompts 0, 1, 2 with one image.
        let base = [
            row("color", 0, 1.0),
            row("color", 0, 0.0),
            row("color", 1, 0.0),
            row("color", 1, 0.0),
            row("shape", 0, 1.0),
            row("shape", 1, 0.0),
            row("shape", 2, 0.0),
        ];
        let other = [
            row("color", 0, 1.0),
            row("color", 0, 1.0),
            row("color", 1, 1.0),
            row("color", 1, 0.0),
            row("shape", 0, 0.0),
            row("shape", 1, 0.0),
            row("shape", 2, 1.0),
        ];
        let p = paired(&base, &other).unwrap();
        // color: prompt means 0.5, 0 -> 1, 0.5: base 25, other 75, differences 0.5, 0.5:
        // variance 0, se 0. shape: base 33.3, other 33.3, differences -1, 0, 1: variance 1,
        // se sqrt(1/3) = 57.7 points.
        let c = &p.categories;
        assert_eq!((c[0].category.as_str(), c[0].prompts), ("color", 2));
        assert!((c[0].base - 25.0).abs() < 1e-9 && (c[0].other - 75.0).abs() < 1e-9);
        assert!(c[0].se.abs() < 1e-9);
        assert!((c[1].base - 100.0 / 3.0).abs() < 1e-9);
        assert!((c[1].se - 100.0 * (1.0f64 / 3.0).sqrt()).abs() < 1e-9);
        // Overall: base (25 + 33.3) / 2 = 29.17, other (75 + 33.3) / 2 = 54.17, +25;
        // se sqrt(0 + 1/3) / 2 = 28.9 points.
        assert!((p.base - 175.0 / 6.0).abs() < 1e-9);
        assert!((p.diff() - 25.0).abs() < 1e-9);
        assert!((p.se - 50.0 * (1.0f64 / 3.0).sqrt()).abs() < 1e-9);
    }

    #[test]
    fn runs_of_different_prompts_are_refused() {
        let base = [row("color", 0, 1.0), row("color", 1, 0.0)];
        let mut other = base.to_vec();
        other[1].prompt = "another prompt".into();
        let e = paired(&base, &other).unwrap_err().to_string();
        assert!(e.contains("prompt 1"), "{e}");
        let e = paired(&base, &[row("shape", 0, 1.0)])
            .unwrap_err()
            .to_string();
        assert!(e.contains("categories"), "{e}");
        let e = paired(&base, &base[..1]).unwrap_err().to_string();
        assert!(e.contains("2 prompts against 1"), "{e}");
    }

    #[test]
    fn per_image_csv_reads_back() {
        let dir = std::env::temp_dir().join(format!("compare-csv-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let report = crate::Report {
            benchmark: "compbench".into(),
            categories: vec!["color".into()],
            images: vec![crate::ImageScore {
                category: "color".into(),
                prompt_index: 3,
                prompt: "a red circle, and more".into(),
                sample: 0,
                seed: 42,
                file: "x.png".into(),
                score: 0.25,
                breakdown: vec![("present: red circle".into(), 0.25)],
            }],
            ..Default::default()
        };
        let path = dir.join("per_image.csv");
        std::fs::write(&path, report.per_image_csv().unwrap()).unwrap();
        let rows = read_per_image(&path).unwrap();
        assert_eq!(rows, [row_of("color", 3, "a red circle, and more", 0.25)]);
        std::fs::remove_dir_all(dir).ok();
    }

    fn row_of(category: &str, prompt_index: usize, prompt: &str, score: f64) -> Row {
        Row {
            category: category.into(),
            prompt_index,
            prompt: prompt.into(),
            score,
        }
    }
}
