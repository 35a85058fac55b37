//! The oracle's own acceptance check: true renders, one-constraint violations, and blurred,
//! noisy renders of random prompts from every category.

use std::collections::BTreeMap;

use compworld::violation::{ViolationKind, applicable, violate};
use compworld::{Category, Rng, generate, render, sample_scene};
use rayon::prelude::*;
use serde::Serialize;

use crate::score;

/// Per-group statistics.
#[derive(Debug, Clone, Default, Serialize)]
pub struct GroupStats {
    pub n: usize,
    pub true_mean: f32,
    pub noisy_mean: f32,
    /// Prompts whose violation could be rendered.
    pub violations: usize,
    pub violation_lower_frac: f32,
    pub violation_below_half_frac: f32,
    pub violation_mean: f32,
}

/// A prompt the oracle got wrong, for inspection.
#[derive(Debug, Clone, Serialize)]
pub struct Miss {
    /// Prompt index (the file stem under SRUM_ORACLE_DUMP).
    pub index: usize,
    pub what: String,
    pub category: Category,
    pub prompt: String,
    pub score: f32,
    pub failed: Vec<String>,
}

/// The check's figures (all fractions in [0, 1]).
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    pub seed: u64,
    pub prompts: usize,
    pub resolution: usize,
    pub noise_sigma: f32,
    pub true_mean: f32,
    pub true_min_category: f32,
    pub violation_lower_frac: f32,
    pub violation_below_half_frac: f32,
    pub noisy_mean: f32,
    pub per_category: BTreeMap<String, GroupStats>,
    pub per_violation_kind: BTreeMap<String, GroupStats>,
    /// Up to 40 misses (true or noisy render scored below 1, or a violation not scored lower).
    pub misses: Vec<Miss>,
}

struct One {
    category: Category,
    true_score: f32,
    noisy_score: f32,
    violation: Option<(ViolationKind, f32)>,
    misses: Vec<Miss>,
}

fn failed(v: &crate::Verdict) -> Vec<String> {
    v.constraints
        .iter()
        .filter(|c| c.score < 1.0)
        .map(|c| format!("{} = {}", c.description, c.score))
        .collect()
}

fn run_one(seed: u64, i: usize, resolution: usize, sigma: f32) -> One {
    let category = Category::ALL[i % Category::ALL.len()];
    let mut rng = Rng::derive(seed, &format!("oracle-check-{i}"));
    let prompt = generate(category, &mut rng);
    let scene = sample_scene(&prompt.meaning, &prompt.text, &mut rng)
        .expect("generated prompts are always drawable");
    let img = render(&scene, resolution);
    let miss = |what: String, v: &crate::Verdict| Miss {
        index: i,
        what,
        category,
        prompt: prompt.text.clone(),
        score: v.score,
        failed: failed(v),
    };
    let mut misses = Vec::new();
    let t = score(&img, &prompt);
    if t.score < 1.0 {
        misses.push(miss("true".into(), &t));
    }
    let noisy = img.box_blur3().add_noise(sigma, &mut rng);
    let nv = score(&noisy, &prompt);
    if let Ok(dir) = std::env::var("SRUM_ORACLE_DUMP") {
        // Debug aid: keep the images of misses to look at (and to feed `--example explain`).
        let dir = std::path::Path::new(&dir);
        let _ = std::fs::create_dir_all(dir);
        if t.score < 1.0 {
            let _ = img.save_png(&dir.join(format!("{i:05}-true.png")));
        }
        if nv.score < 1.0 {
            let _ = noisy.save_png(&dir.join(format!("{i:05}-noisy.png")));
        }
    }
    if nv.score < 1.0 {
        misses.push(miss("noisy".into(), &nv));
    }
    // One violation: a kind drawn uniformly among those that apply and can be drawn.
    let mut kinds = applicable(&prompt.meaning);
    rng.shuffle(&mut kinds);
    let mut violation = None;
    for kind in kinds {
        let Some(m) = violate(&prompt.meaning, kind, &mut rng) else {
            continue;
        };
        let Ok(bad) = sample_scene(&m, &prompt.text, &mut rng) else {
            continue;
        };
        let v = score(&render(&bad, resolution), &prompt);
        if v.score >= t.score {
            misses.push(miss(format!("violation {} not lower", kind.name()), &v));
        }
        violation = Some((kind, v.score));
        break;
    }
    One {
        category,
        true_score: t.score,
        noisy_score: nv.score,
        violation,
        misses,
    }
}

/// Runs the check on `prompts` random prompts (categories in turn) at `resolution` pixels.
pub fn oracle_check(seed: u64, prompts: usize, resolution: usize) -> CheckReport {
    oracle_check_with_progress(seed, prompts, resolution, &|| {})
}

/// [`oracle_check`], calling `tick` once per finished prompt (from worker threads).
pub fn oracle_check_with_progress(
    seed: u64,
    prompts: usize,
    resolution: usize,
    tick: &(dyn Fn() + Sync),
) -> CheckReport {
    let sigma = 0.05;
    let runs: Vec<One> = (0..prompts)
        .into_par_iter()
        .map(|i| {
            let one = run_one(seed, i, resolution, sigma);
            tick();
            one
        })
        .collect();
    summarise(seed, prompts, resolution, sigma, runs)
}

fn summarise(
    seed: u64,
    prompts: usize,
    resolution: usize,
    sigma: f32,
    runs: Vec<One>,
) -> CheckReport {
    let mut per_category: BTreeMap<String, GroupStats> = BTreeMap::new();
    let mut per_kind: BTreeMap<String, GroupStats> = BTreeMap::new();
    let mut misses = Vec::new();
    let (mut t_sum, mut n_sum, mut lower, mut below, mut nviol) =
        (0.0, 0.0, 0usize, 0usize, 0usize);
    for r in &runs {
        let g = per_category
            .entry(r.category.name().to_string())
            .or_default();
        g.n += 1;
        g.true_mean += r.true_score;
        g.noisy_mean += r.noisy_score;
        t_sum += r.true_score;
        n_sum += r.noisy_score;
        if let Some((kind, v_score)) = r.violation {
            let is_lower = v_score < r.true_score;
            let is_below = v_score < 0.5;
            for g in [
                per_category.get_mut(r.category.name()).unwrap(),
                per_kind.entry(kind.name().to_string()).or_default(),
            ] {
                g.violations += 1;
                g.violation_lower_frac += f32::from(u8::from(is_lower));
                g.violation_below_half_frac += f32::from(u8::from(is_below));
                g.violation_mean += v_score;
            }
            nviol += 1;
            lower += usize::from(is_lower);
            below += usize::from(is_below);
        }
        for m in &r.misses {
            if misses.len() < 200 {
                misses.push(m.clone());
            }
        }
    }
    for g in per_category.values_mut().chain(per_kind.values_mut()) {
        if g.n > 0 {
            g.true_mean /= g.n as f32;
            g.noisy_mean /= g.n as f32;
        }
        if g.violations > 0 {
            let v = g.violations as f32;
            g.violation_lower_frac /= v;
            g.violation_below_half_frac /= v;
            g.violation_mean /= v;
        }
    }
    let true_min_category = per_category
        .values()
        .map(|g| g.true_mean)
        .fold(1.0, f32::min);
    CheckReport {
        seed,
        prompts,
        resolution,
        noise_sigma: sigma,
        true_mean: t_sum / runs.len() as f32,
        true_min_category,
        violation_lower_frac: lower as f32 / nviol.max(1) as f32,
        violation_below_half_frac: below as f32 / nviol.max(1) as f32,
        noisy_mean: n_sum / runs.len() as f32,
        per_category,
        per_violation_kind: per_kind,
        misses,
    }
}
