//! `cargo xtask reward-calibration`: how well the self-rewards agree with the benchmark's
//! judge. It lives here, in the harness, because it uses the oracle and the renderer's ground
//! truth; the reward crates never do.
//!
//! - Proposal recall: true renders of the val prompts with 2 to 6 objects; an object is found
//!   when some proposal has IoU >= 0.7 with its ground-truth box.
//! - Global: the base model's own images of the val prompts; AUC of g for telling images the
//!   oracle scores 1 (correct) from the rest.
//! - Local: each proposed region matched (IoU >= 0.5) to an object the oracle perceives; the
//!   oracle's verdict on that object (+1 it fits a phrase of the prompt's meaning, -1 its shape
//!   is asked for with other attributes, 0 not asked for) against the sign of the region
//!   score.
//! - A reliability plot: the share of oracle-correct images per bin of g.

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::{Result, ensure};
use bench_compbench::{BenchConfig, Plan, UmmGenerator};
use burn::prelude::*;
use compworld::splits::load_split;
use compworld::{Category, Image, Prompt, Rng, render, sample_scene};
use indicatif::{ProgressBar, ProgressStyle};
use reward_local::proposer::BoxPx;
use reward_local::{ProposerConfig, propose, score_regions_with};
use serde::Serialize;
use umm_model::sampler::SampleConfig;
use umm_model::{Umm, UmmConfig, WordTokenizer};

/// The prompt split a calibration reads unless told otherwise.
pub const DEFAULT_SPLIT: &str = "datasets/splits/val.tsv";

/// Settings of one calibration run.
#[derive(Debug, Clone)]
pub struct CalibrationArgs {
    pub checkpoint: std::path::PathBuf,
    /// Judge the images with this checkpoint's understanding instead of `checkpoint`'s (the
    /// images still come from `checkpoint`): two judges compared on the same images.
    pub judge: Option<std::path::PathBuf>,
    pub split: std::path::PathBuf,
    pub samples: usize,
    /// Score true renders and one-constraint violations of the prompts instead of the model's
    /// own images: the judgment on clean images, apart from the generator's blobs.
    pub renders: bool,
    /// With `renders`: redraw every render (and violation) in the generator's style before it
    /// is judged, as pretraining's `und_restyle` does (noised to this flow time, carried back
    /// to 0 by [`REDRAW_STEPS`] Euler steps of `checkpoint`'s unconditional velocity); the
    /// oracle judges the redrawn images. Between clean renders (0) and the model's own images
    /// (1): where along the way the judge stops agreeing with the oracle.
    pub redraw: Option<f32>,
    /// Guidance of the model's own images (unused with `renders`).
    pub cfg_scale: f32,
    /// Guidance only above this flow time ([`SampleConfig::cfg_min_t`]; 0 = every step).
    pub cfg_min_t: f32,
    /// How g is read off the model (the default of the reward: combined).
    pub global: reward_global::GlobalMode,
    /// How region names become scores.
    pub regions: reward_local::RegionScoring,
    pub out_json: std::path::PathBuf,
    pub out_png: std::path::PathBuf,
    /// One JSON line per image, if given.
    pub per_image: Option<std::path::PathBuf>,
}

/// Euler steps of `--redraw`: those of pretraining's restyling (`und_restyle_steps`' default).
pub const REDRAW_STEPS: usize = 4;

/// The sampler of the model's own images: the default one at the run's guidance.
fn sample_config(a: &CalibrationArgs) -> SampleConfig {
    SampleConfig {
        cfg_scale: a.cfg_scale,
        cfg_min_t: a.cfg_min_t,
        ..SampleConfig::default()
    }
}

#[derive(Debug, Default, Serialize, Clone)]
struct CategoryRow {
    images: usize,
    oracle_correct: usize,
    auc_global: Option<f64>,
    region_matched: usize,
    region_sign_agreement: Option<f64>,
    proposal_objects: usize,
    proposal_recall_iou70: Option<f64>,
}

#[derive(Debug, Serialize)]
struct Calibration {
    /// AUC of g as `global_mode` reads it.
    auc_global: f64,
    /// Its 95% bootstrap interval ([`auc_interval`], 2,000 resamples, seed 0).
    auc_global_ci95: Option<[f64; 2]>,
    global_mode: reward_global::GlobalMode,
    /// How region names became scores (`greedy` unless `--regions` said otherwise).
    region_scoring: reward_local::RegionScoring,
    /// AUC of the prompt-match answer alone, for comparison.
    auc_global_question: f64,
    /// AUC of the constraint score (`reward_global::constraint_score`: one whole-image
    /// question per stated attribute and count of each literal phrase), over the images whose
    /// prompt states a phrase, for comparison.
    auc_global_constraints: f64,
    region_sign_agreement: f64,
    proposal_recall_iou70: f64,
    images: usize,
    oracle_correct: usize,
    region_matched: usize,
    proposal_objects: usize,
    /// Per (region score sign, oracle verdict) counts: "+/+", "+/0", ...
    region_confusion: BTreeMap<String, usize>,
    /// The model's name of each matched region against what the oracle perceives there: the
    /// share of regions named with a shape (`named`), and among those the share whose shape,
    /// colour and texture (unstated = solid) agree with the oracle's. Which attribute the
    /// judge misreads.
    region_name_agreement: BTreeMap<String, f64>,
    /// Named matched regions per (the model's shape word / the oracle's shape): "circle/square"
    /// counts regions the model called a circle where the oracle perceives a square.
    region_shape_confusion: BTreeMap<String, usize>,
    reliability: Vec<ReliabilityBin>,
    per_category: BTreeMap<String, CategoryRow>,
    checkpoint: String,
    /// The checkpoint that judged, when it is not `checkpoint`.
    #[serde(skip_serializing_if = "Option::is_none")]
    judge: Option<String>,
    /// What was scored.
    source: String,
    /// The flow time the renders were redrawn from (`--redraw`), when they were.
    #[serde(skip_serializing_if = "Option::is_none")]
    redraw: Option<f32>,
    samples_per_prompt: usize,
    command: String,
    wall_s: f64,
}

#[derive(Debug, Serialize, serde::Deserialize, Clone)]
struct ReliabilityBin {
    g_lo: f64,
    g_hi: f64,
    images: usize,
    oracle_correct_share: Option<f64>,
}

/// The reliability plot of one calibration: bars per bin of g, the base rate as a line.
fn draw(
    bins: &[ReliabilityBin],
    correct: usize,
    images: usize,
    auc: f64,
    png: &std::path::Path,
) -> Result<()> {
    crate::plot::reliability(
        &bins
            .iter()
            .map(|b| ((b.g_lo + b.g_hi) / 2.0, b.images, b.oracle_correct_share))
            .collect::<Vec<_>>(),
        correct as f64 / images.max(1) as f64,
        auc,
        png,
    )
}

/// Redraw a calibration's reliability plot from its JSON report (`cargo xtask plot`), so a
/// change to the plot's layout reaches the committed PNGs without rerunning the model.
pub fn replot(json: &std::path::Path, png: &std::path::Path) -> Result<()> {
    #[derive(serde::Deserialize)]
    struct Saved {
        auc_global: f64,
        images: usize,
        oracle_correct: usize,
        reliability: Vec<ReliabilityBin>,
    }
    let text = std::fs::read_to_string(json)
        .map_err(|e| anyhow::anyhow!("reading {}: {e}", json.display()))?;
    let r: Saved = serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("{} is not a calibration report: {e}", json.display()))?;
    draw(
        &r.reliability,
        r.oracle_correct,
        r.images,
        r.auc_global,
        png,
    )
}

/// One point of a redraw sweep, read back from a calibration report.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct SweepPoint {
    /// Flow time of the redrawing; 0 for clean renders; `None` for the model's own images.
    #[serde(skip)]
    pub t: Option<f64>,
    pub auc_global: f64,
    /// The AUC's 95% bootstrap interval (wide where the oracle calls few images correct).
    #[serde(default)]
    pub auc_global_ci95: Option<[f64; 2]>,
    pub region_sign_agreement: f64,
    pub region_name_agreement: BTreeMap<String, f64>,
    pub oracle_correct: usize,
    pub images: usize,
    source: String,
    #[serde(default)]
    redraw: Option<f64>,
    /// The command that made the report (its `--cfg-scale` names the own images' guidance).
    #[serde(default)]
    command: String,
}

/// The calibration reports of a redraw sweep in `dir` (`renders-*.json` and `own.json`): the
/// renders' points ordered by flow time, and the own images' point, if there.
pub fn read_sweep(dir: &std::path::Path) -> Result<(Vec<SweepPoint>, Option<SweepPoint>)> {
    let mut points = Vec::new();
    let mut own = None;
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| anyhow::anyhow!("reading {}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    for f in files {
        let text = std::fs::read_to_string(&f)?;
        let mut p: SweepPoint = serde_json::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{} is not a calibration report: {e}", f.display()))?;
        if p.source.starts_with("true renders") {
            p.t = Some(p.redraw.unwrap_or(0.0));
            points.push(p);
        } else {
            ensure!(
                own.is_none(),
                "two reports of own images in {}",
                dir.display()
            );
            own = Some(p);
        }
    }
    points.sort_by(|a, b| a.t.partial_cmp(&b.t).expect("finite flow times"));
    ensure!(
        !points.is_empty(),
        "no reports of renders in {}",
        dir.display()
    );
    Ok((points, own))
}

/// The judge against the oracle along a redraw sweep: AUC of g, region sign agreement and the
/// shape agreement of region names, against the flow time the renders were redrawn from, with
/// the model's own images as dashed levels; and the share of images the oracle calls correct.
pub fn plot_sweep(dir: &std::path::Path, png: &std::path::Path) -> Result<()> {
    use plotters::prelude::*;
    crate::plot::init_font()?;
    let (points, own) = read_sweep(dir)?;
    let root = BitMapBackend::new(png, (900, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "The judge against the oracle, renders redrawn by the generator",
            ("sans-serif", 21),
        )
        .margin(14)
        .x_label_area_size(44)
        .y_label_area_size(52)
        // Headroom above 1 for the legend.
        .build_cartesian_2d(0.0..1.0, 0.0..1.32)?;
    chart
        .configure_mesh()
        .x_desc("flow time the renders were redrawn from (0: clean renders)")
        .y_desc("share (for g: AUC, with its 95% interval)")
        .y_labels(8)
        .label_style(("sans-serif", 14))
        .draw()?;
    type Metric = fn(&SweepPoint) -> f64;
    let series: [(&str, RGBColor, Metric); 4] = [
        ("AUC of g", BLUE, |p| p.auc_global),
        ("region sign agreement", RED, |p| p.region_sign_agreement),
        ("region shape words the oracle agrees with", GREEN, |p| {
            p.region_name_agreement
                .get("shape")
                .copied()
                .unwrap_or(f64::NAN)
        }),
        (
            "images the oracle calls correct",
            RGBColor(120, 120, 120),
            |p| p.oracle_correct as f64 / p.images.max(1) as f64,
        ),
    ];
    chart.draw_series(points.iter().filter_map(|p| {
        let [lo, hi] = p.auc_global_ci95?;
        let t = p.t.unwrap_or(0.0);
        // The interval as a thin vertical bar (plotters' ErrorBar needs a feature).
        Some(PathElement::new(
            vec![(t, lo), (t, hi)],
            BLUE.stroke_width(1),
        ))
    }))?;
    for (name, colour, f) in series {
        let xy: Vec<(f64, f64)> = points.iter().map(|p| (p.t.unwrap_or(0.0), f(p))).collect();
        chart
            .draw_series(LineSeries::new(xy.clone(), colour.stroke_width(2)))?
            .label(name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
            });
        chart.draw_series(xy.iter().map(|&c| Circle::new(c, 4, colour.filled())))?;
        if let Some(o) = &own {
            let v = f(o);
            chart.draw_series(DashedLineSeries::new(
                vec![(0.0, v), (1.0, v)],
                6,
                4,
                colour.stroke_width(1),
            ))?;
        }
    }
    if let Some(o) = &own {
        let guidance = o
            .command
            .split_once("--cfg-scale ")
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .map(|g| format!(" (guidance {g})"))
            .unwrap_or_default();
        chart.draw_series(std::iter::once(Text::new(
            format!("dashed: the model's own images{guidance}"),
            (0.02, 0.04),
            ("sans-serif", 14),
        )))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .position(SeriesLabelPosition::UpperRight)
        .draw()?;
    root.present()?;
    Ok(())
}

/// Area under the ROC curve: the chance a positive outranks a negative (ties count half).
/// Computed from ranks (Mann-Whitney U, tied values given their mean rank), so a bootstrap
/// over thousands of images stays cheap.
pub fn auc(pos: &[f64], neg: &[f64]) -> Option<f64> {
    if pos.is_empty() || neg.is_empty() {
        return None;
    }
    let mut all: Vec<(f64, bool)> = pos
        .iter()
        .map(|&v| (v, true))
        .chain(neg.iter().map(|&v| (v, false)))
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < all.len() {
        let mut j = i;
        while j < all.len() && all[j].0 == all[i].0 {
            j += 1;
        }
        // Ranks i+1 ..= j share their mean.
        let mean_rank = (i + 1 + j) as f64 / 2.0;
        rank_sum += mean_rank * all[i..j].iter().filter(|x| x.1).count() as f64;
        i = j;
    }
    let (np, nn) = (pos.len() as f64, neg.len() as f64);
    Some((rank_sum - np * (np + 1.0) / 2.0) / (np * nn))
}

/// A 95% percentile-bootstrap interval of [`auc`]: positives and negatives resampled
/// separately with replacement, `reps` times, from a fixed seed. With few positives (the base
/// model's own images: about 20 oracle-correct of 1,154) the point estimate alone says little.
pub fn auc_interval(pos: &[f64], neg: &[f64], reps: usize, seed: u64) -> Option<[f64; 2]> {
    if pos.is_empty() || neg.is_empty() {
        return None;
    }
    let mut rng = compworld::Rng::new(seed);
    let mut draw =
        |xs: &[f64]| -> Vec<f64> { (0..xs.len()).map(|_| xs[rng.below(xs.len())]).collect() };
    let mut aucs: Vec<f64> = (0..reps.max(1))
        .map(|_| {
            let (p, n) = (draw(pos), draw(neg));
            auc(&p, &n).expect("non-empty")
        })
        .collect();
    aucs.sort_by(f64::total_cmp);
    let at = |q: f64| aucs[((aucs.len() - 1) as f64 * q).round() as usize];
    Some([at(0.025), at(0.975)])
}

fn bar(n: usize, what: &str) -> ProgressBar {
    ProgressBar::new(n as u64).with_style(
        ProgressStyle::with_template(&format!(
            "{what}: {{elapsed_precise}} [{{bar:30}}] {{pos}}/{{len}}"
        ))
        .expect("a valid template")
        .progress_chars("=> "),
    )
}

fn units_to_px(b: [f32; 4], res: usize) -> BoxPx {
    let k = res as f32 / compworld::world::CANVAS_UNITS;
    BoxPx {
        x0: b[0] * k,
        y0: b[1] * k,
        x1: b[2] * k,
        y1: b[3] * k,
        area: 0,
    }
}

/// The oracle's verdict on one perceived object for a prompt: +1 it fits a phrase, -1 its
/// shape is asked for but no phrase with that shape fits, 0 it is not asked for.
fn oracle_verdict(d: &scene_oracle::Detection, p: &Prompt) -> i32 {
    let specs: Vec<_> = p.meaning.phrases.iter().map(|ph| ph.spec).collect();
    let fits = |s: &compworld::prompt::ObjectSpec| {
        s.shape.is_none_or(|x| x == d.shape)
            && s.colour.is_none_or(|c| c == d.colour)
            && s.texture.is_none_or(|t| t == d.texture)
    };
    if specs.iter().any(fits) {
        1
    } else if specs.iter().any(|s| s.shape == Some(d.shape)) {
        -1
    } else {
        0
    }
}

/// Whether the model's name of a region agrees with the oracle's perception of the object
/// there, on shape, colour and texture (a name without a texture word says solid); `None` when
/// the name has no shape.
fn name_agreement(name: &str, d: &scene_oracle::Detection) -> Option<[bool; 3]> {
    let n = reward_local::region::read_name(name)?;
    Some([
        n.shape == d.shape,
        n.colour == Some(d.colour),
        n.texture.unwrap_or(compworld::Texture::Solid) == d.texture,
    ])
}

fn sign(v: f32) -> i32 {
    if v > 0.0 {
        1
    } else if v < 0.0 {
        -1
    } else {
        0
    }
}

/// `images` redrawn by the generator `model` (configuration `cfg`) from flow time `t`
/// ([`REDRAW_STEPS`] unconditional Euler steps, pretraining's `restyle`), 32 at a time, seeded.
fn redraw(
    images: &[Image],
    t: f32,
    model: &Umm,
    cfg: &UmmConfig,
    device: &Device,
) -> Result<Vec<Image>> {
    ensure!(
        t > 0.0 && t <= 1.0,
        "--redraw must be a flow time in (0, 1], not {t}"
    );
    let tok = WordTokenizer::compworld();
    let mut rng = Rng::new(0x7ed7a3);
    let pb = bar(images.len(), "redrawing");
    let mut out = Vec::with_capacity(images.len());
    for chunk in images.chunks(32) {
        let refs: Vec<&Image> = chunk.iter().collect();
        let x = umm_model::patchify(
            umm_model::understand::images_tensor(&refs, device),
            cfg.patch,
        );
        let all = vec![true; chunk.len()];
        let x = trainer::pretrain::restyle(
            model,
            cfg,
            &tok,
            x,
            &all,
            1.0,
            [t, t],
            REDRAW_STEPS,
            &mut rng,
        )?;
        let px = umm_model::unpatchify(x, cfg.patch, cfg.resolution)
            .add_scalar(1.0)
            .div_scalar(2.0);
        out.extend(umm_model::sampler::to_images(px)?);
        pb.set_position(out.len() as u64);
    }
    pb.finish_and_clear();
    Ok(out)
}

/// A picture of what a redraw sweep scores: the true render of the first prompt of each
/// category of `split` (the calibration's first sample, same scene), redrawn by `checkpoint`
/// from each flow time of `times` (0: the render itself), one row per time, and a row of the
/// model's own image of each prompt (guidance `cfg_scale`, the calibration's first seed) for
/// each guidance interval start of `own_min_t` ([`SampleConfig::cfg_min_t`]; 0: guided every
/// step). The oracle's score is written under each image.
pub fn redraw_grid(
    checkpoint: &std::path::Path,
    split: &std::path::Path,
    times: &[f32],
    cfg_scale: f32,
    own_min_t: &[f32],
    out: &std::path::Path,
) -> Result<()> {
    let device = Device::flex();
    let plan = Plan::from_split(&load_split(split)?, Category::ALL)?;
    let (model, meta) = umm_model::checkpoint::load(checkpoint, &device)?;
    let res = meta.config.resolution;
    let requests = plan.requests(BenchConfig {
        samples: 1,
        first_seed: bench_compbench::FIRST_SEED,
    });
    // The first prompt of each category.
    let firsts: Vec<_> = requests.iter().filter(|r| r.prompt_index == 0).collect();
    let prompts: Vec<&Prompt> = plan
        .categories
        .iter()
        .filter_map(|(_, ps)| ps.first())
        .collect();
    ensure!(firsts.len() == prompts.len(), "one request per category");
    let renders: Vec<Image> = firsts
        .iter()
        .zip(&prompts)
        .map(|(r, p)| {
            let mut rng = Rng::derive(r.seed, &p.text);
            let scene = sample_scene(&p.meaning, &p.text, &mut rng)?;
            Ok(render(&scene, res))
        })
        .collect::<Result<_, compworld::Error>>()?;
    let scored = |images: Vec<Image>| -> Vec<(Image, f64)> {
        images
            .into_iter()
            .zip(&prompts)
            .map(|(i, p)| {
                let s = f64::from(scene_oracle::score(&i, p).score);
                (i, s)
            })
            .collect()
    };
    let mut rows = Vec::new();
    for &t in times {
        let images = if t == 0.0 {
            renders.clone()
        } else {
            redraw(&renders, t, &model, &meta.config, &device)?
        };
        rows.push(crate::plot::GridRow {
            caption: if t == 0.0 {
                "true renders".into()
            } else {
                format!("redrawn from flow time {t}")
            },
            images: scored(images),
        });
    }
    let reqs: Vec<_> = firsts.iter().map(|r| (*r).clone()).collect();
    let mut generator = UmmGenerator::load(checkpoint, SampleConfig::default(), 64, &device)?;
    for &cfg_min_t in own_min_t {
        generator.set_sample(SampleConfig {
            cfg_scale,
            cfg_min_t,
            ..SampleConfig::default()
        });
        let (own, _) = bench_compbench::harness::generate_all(&mut generator, &reqs, &mut |_| {})?;
        rows.push(crate::plot::GridRow {
            caption: if cfg_min_t > 0.0 {
                format!("the model's own images (guidance {cfg_scale} above flow time {cfg_min_t})")
            } else {
                format!("the model's own images (guidance {cfg_scale})")
            },
            images: scored(own),
        });
    }
    let names: Vec<String> = plan.categories.iter().map(|(c, _)| c.clone()).collect();
    crate::plot::labelled_grid(&rows, &format!("columns: {}", names.join(", ")), 3, out)
}

/// Proposal recall on true renders: (found, total) per category.
fn proposal_recall(plan: &Plan, res: usize) -> BTreeMap<String, (usize, usize)> {
    let cfg = ProposerConfig::default();
    let mut out: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for (cat, prompts) in &plan.categories {
        for p in prompts {
            if !(2..=6).contains(&p.meaning.object_count()) {
                continue;
            }
            let mut rng = Rng::derive(7, &p.text);
            let Ok(scene) = sample_scene(&p.meaning, &p.text, &mut rng) else {
                continue;
            };
            let boxes = propose(&render(&scene, res), &cfg);
            let e = out.entry(cat.clone()).or_default();
            for o in &scene.objects {
                let gt = units_to_px(o.bbox(), res);
                e.1 += 1;
                e.0 += usize::from(boxes.iter().any(|b| b.iou(&gt) >= 0.7));
            }
        }
    }
    out
}

pub fn run(a: &CalibrationArgs) -> Result<()> {
    let t0 = Instant::now();
    ensure!(
        a.checkpoint.exists(),
        "checkpoint {} not found",
        a.checkpoint.display()
    );
    ensure!(
        a.split.exists(),
        "prompt split {} not found",
        a.split.display()
    );
    let device = Device::flex();
    let plan = Plan::from_split(&load_split(&a.split)?, Category::ALL)?;
    let judge = a.judge.as_ref().unwrap_or(&a.checkpoint);
    ensure!(judge.exists(), "judge {} not found", judge.display());
    let (model, meta) = umm_model::checkpoint::load(judge, &device)?;
    let cfg = meta.config;
    let res = cfg.resolution;
    let tok = WordTokenizer::compworld();

    eprintln!("proposal recall on true renders ...");
    let recall = proposal_recall(&plan, res);

    let bcfg = BenchConfig {
        samples: a.samples,
        first_seed: bench_compbench::FIRST_SEED,
    };
    let requests = plan.requests(bcfg);
    let prompts: Vec<&Prompt> = plan
        .categories
        .iter()
        .flat_map(|(_, ps)| ps.iter().flat_map(|p| std::iter::repeat_n(p, a.samples)))
        .collect();
    let images: Vec<Image> = if a.renders {
        // Even samples: a true render; odd samples: a one-constraint violation (when one can
        // be drawn, else another true render).
        let renders: Vec<Image> = requests
            .iter()
            .zip(&prompts)
            .map(|(r, p)| {
                let mut rng = Rng::derive(r.seed, &p.text);
                let meaning = if r.sample % 2 == 1 {
                    let mut kinds = compworld::violation::applicable(&p.meaning);
                    rng.shuffle(&mut kinds);
                    kinds
                        .iter()
                        .find_map(|&k| compworld::violation::violate(&p.meaning, k, &mut rng))
                        .unwrap_or_else(|| p.meaning.clone())
                } else {
                    p.meaning.clone()
                };
                let scene = sample_scene(&meaning, &p.text, &mut rng)
                    .or_else(|_| sample_scene(&p.meaning, &p.text, &mut rng))
                    .expect("a val prompt has a scene");
                render(&scene, res)
            })
            .collect();
        match a.redraw {
            Some(t) => {
                // The generator is `checkpoint`, whoever judges.
                let (generator, gmeta) = umm_model::checkpoint::load(&a.checkpoint, &device)?;
                redraw(&renders, t, &generator, &gmeta.config, &device)?
            }
            None => renders,
        }
    } else {
        let mut generator = UmmGenerator::load(&a.checkpoint, sample_config(a), 64, &device)?;
        let pb = bar(requests.len(), "generating");
        let (images, _) =
            bench_compbench::harness::generate_all(&mut generator, &requests, &mut |n| {
                pb.set_position(n as u64)
            })?;
        pb.finish_and_clear();
        images
    };

    // Rewards, in chunks, with a progress bar.
    let pcfg = ProposerConfig::default();
    let proposals: Vec<Vec<BoxPx>> = images.iter().map(|i| propose(i, &pcfg)).collect();
    let pb = bar(images.len(), "self-rewards");
    let mut g = Vec::with_capacity(images.len());
    let mut g_question = Vec::with_capacity(images.len());
    let mut coverage: Vec<Option<f32>> = Vec::with_capacity(images.len());
    let mut phrase_probs: Vec<Vec<f32>> = Vec::with_capacity(images.len());
    let mut regions = Vec::with_capacity(images.len());
    for start in (0..images.len()).step_by(32) {
        let end = (start + 32).min(images.len());
        let items: Vec<(&Image, &str)> = (start..end)
            .map(|k| (&images[k], prompts[k].text.as_str()))
            .collect();
        let q = reward_global::global_scores(&model, &cfg, &tok, &items, &device)?;
        let ritems: Vec<(&Image, &str, &[BoxPx])> = (start..end)
            .map(|k| {
                (
                    &images[k],
                    prompts[k].text.as_str(),
                    proposals[k].as_slice(),
                )
            })
            .collect();
        let found = score_regions_with(&model, &cfg, &tok, &ritems, a.regions, &device)?;
        let phrases = reward_local::region::resolve_colours(
            &model,
            &cfg,
            &tok,
            (start..end).map(|k| prompts[k].text.as_str()),
            &device,
        )?;
        let pitems: Vec<(&Image, &[reward_local::phrases::Phrase])> = (start..end)
            .zip(&phrases)
            .map(|(k, ps)| (&images[k], ps.as_slice()))
            .collect();
        let pp = reward_global::phrase_probabilities(&model, &cfg, &tok, &pitems, &device)?;
        for ((qk, f), pk) in q.into_iter().zip(found).zip(pp) {
            let ck = reward_global::constraint_score(&pk);
            g.push(reward_global::combine(a.global, qk, f.coverage, ck));
            g_question.push(qk);
            coverage.push(f.coverage);
            phrase_probs.push(pk);
            regions.push(f.regions);
        }
        pb.set_position(end as u64);
    }
    pb.finish_and_clear();

    // The judge's view.
    let verdicts: Vec<scene_oracle::Verdict> = images
        .iter()
        .zip(&prompts)
        .map(|(i, p)| scene_oracle::score(i, p))
        .collect();
    let mut per: BTreeMap<String, CategoryRow> = BTreeMap::new();
    let mut by_cat: BTreeMap<String, (Vec<f64>, Vec<f64>, usize, usize)> = BTreeMap::new();
    let mut confusion: BTreeMap<String, usize> = BTreeMap::new();
    let (mut all_pos, mut all_neg) = (Vec::new(), Vec::new());
    let (mut agree, mut matched) = (0usize, 0usize);
    // Named regions, then agreements on shape, colour, texture.
    let mut names = [0usize; 4];
    let mut shapes: BTreeMap<String, usize> = BTreeMap::new();
    for (k, r) in requests.iter().enumerate() {
        let correct = verdicts[k].score >= 0.999;
        let e = by_cat.entry(r.category.to_string()).or_default();
        if correct {
            e.0.push(f64::from(g[k]));
            all_pos.push(f64::from(g[k]));
        } else {
            e.1.push(f64::from(g[k]));
            all_neg.push(f64::from(g[k]));
        }
        for reg in &regions[k] {
            let b = BoxPx {
                x0: reg.bbox[0],
                y0: reg.bbox[1],
                x1: reg.bbox[2],
                y1: reg.bbox[3],
                area: reg.area,
            };
            let best = verdicts[k]
                .perception
                .objects
                .iter()
                .map(|d| (units_to_px(d.bbox, res).iou(&b), d))
                .max_by(|x, y| x.0.total_cmp(&y.0));
            if let Some((iou, d)) = best
                && iou >= 0.5
            {
                let v = oracle_verdict(d, prompts[k]);
                let s = sign(reg.score);
                let sym = |x: i32| ["-", "0", "+"][(x + 1) as usize];
                *confusion
                    .entry(format!("{}/{}", sym(s), sym(v)))
                    .or_default() += 1;
                e.2 += 1;
                e.3 += usize::from(s == v);
                matched += 1;
                agree += usize::from(s == v);
                if let Some(same) = name_agreement(&reg.phrase, d) {
                    if let Some(n) = reward_local::region::read_name(&reg.phrase) {
                        *shapes
                            .entry(format!("{}/{}", n.shape.word(), d.shape.word()))
                            .or_default() += 1;
                    }
                    names[0] += 1;
                    for (n, s) in names[1..].iter_mut().zip(same) {
                        *n += usize::from(s);
                    }
                }
            }
        }
    }
    for (cat, (pos, neg, m, ag)) in &by_cat {
        let (found, total) = recall.get(cat).copied().unwrap_or((0, 0));
        per.insert(
            cat.clone(),
            CategoryRow {
                images: pos.len() + neg.len(),
                oracle_correct: pos.len(),
                auc_global: auc(pos, neg),
                region_matched: *m,
                region_sign_agreement: (*m > 0).then(|| *ag as f64 / *m as f64),
                proposal_objects: total,
                proposal_recall_iou70: (total > 0).then(|| found as f64 / total as f64),
            },
        );
    }
    let (found, total) = recall
        .values()
        .fold((0, 0), |(a, b), (f, t)| (a + f, b + t));
    let reliability: Vec<ReliabilityBin> = (0..10)
        .map(|b| {
            let (lo, hi) = (-1.0 + 0.2 * b as f64, -0.8 + 0.2 * b as f64);
            let inside: Vec<bool> = g
                .iter()
                .zip(&verdicts)
                .filter(|(gv, _)| {
                    let x = f64::from(**gv);
                    x >= lo && (x < hi || (b == 9 && x <= 1.0))
                })
                .map(|(_, v)| v.score >= 0.999)
                .collect();
            ReliabilityBin {
                g_lo: lo,
                g_hi: hi,
                images: inside.len(),
                oracle_correct_share: (!inside.is_empty())
                    .then(|| inside.iter().filter(|&&c| c).count() as f64 / inside.len() as f64),
            }
        })
        .collect();
    let pick = |correct: bool| -> Vec<f64> {
        g_question
            .iter()
            .zip(&verdicts)
            .filter(|(_, v)| (v.score >= 0.999) == correct)
            .map(|(q, _)| f64::from(*q))
            .collect()
    };
    let constraints: Vec<Option<f32>> = phrase_probs
        .iter()
        .map(|p| reward_global::constraint_score(p))
        .collect();
    let pick_c = |correct: bool| -> Vec<f64> {
        constraints
            .iter()
            .zip(&verdicts)
            .filter(|(_, v)| (v.score >= 0.999) == correct)
            .filter_map(|(c, _)| c.map(f64::from))
            .collect()
    };
    if let Some(path) = &a.per_image {
        let mut lines = String::new();
        for (k, r) in requests.iter().enumerate() {
            let row = serde_json::json!({
                "category": r.category.to_string(),
                "prompt": prompts[k].text,
                "sample": r.sample,
                "oracle_score": verdicts[k].score,
                "g": g[k],
                "g_question": g_question[k],
                "coverage": coverage[k],
                "phrase_probs": phrase_probs[k],
                "constraint_score": constraints[k],
            });
            lines += &format!("{row}\n");
        }
        std::fs::write(path, lines)?;
    }
    let report = Calibration {
        auc_global: auc(&all_pos, &all_neg).unwrap_or(f64::NAN),
        auc_global_ci95: auc_interval(&all_pos, &all_neg, 2000, 0),
        global_mode: a.global,
        region_scoring: a.regions,
        auc_global_question: auc(&pick(true), &pick(false)).unwrap_or(f64::NAN),
        auc_global_constraints: auc(&pick_c(true), &pick_c(false)).unwrap_or(f64::NAN),
        region_sign_agreement: agree as f64 / matched.max(1) as f64,
        proposal_recall_iou70: found as f64 / total.max(1) as f64,
        images: images.len(),
        oracle_correct: all_pos.len(),
        region_matched: matched,
        proposal_objects: total,
        region_confusion: confusion,
        region_shape_confusion: shapes,
        region_name_agreement: {
            let share = |a: usize, b: usize| a as f64 / b.max(1) as f64;
            BTreeMap::from([
                ("named".to_string(), share(names[0], matched)),
                ("shape".to_string(), share(names[1], names[0])),
                ("colour".to_string(), share(names[2], names[0])),
                ("texture".to_string(), share(names[3], names[0])),
            ])
        },
        reliability: reliability.clone(),
        per_category: per,
        checkpoint: a.checkpoint.display().to_string(),
        judge: a.judge.as_ref().map(|j| j.display().to_string()),
        redraw: a.redraw.filter(|_| a.renders),
        samples_per_prompt: a.samples,
        command: format!(
            "cargo xtask reward-calibration --checkpoint {}{}{} --samples {}{}{}{} --out {} --plot {}",
            a.checkpoint.display(),
            a.judge
                .as_ref()
                .map(|j| format!(" --judge {}", j.display()))
                .unwrap_or_default(),
            if a.split == std::path::Path::new(DEFAULT_SPLIT) {
                String::new()
            } else {
                format!(" --split {}", a.split.display())
            },
            a.samples,
            if a.renders {
                " --renders".to_string()
                    + &a.redraw
                        .map(|t| format!(" --redraw {t}"))
                        .unwrap_or_default()
            } else if a.cfg_min_t > 0.0 {
                format!(" --cfg-scale {} --cfg-min-t {}", a.cfg_scale, a.cfg_min_t)
            } else {
                format!(" --cfg-scale {}", a.cfg_scale)
            },
            match a.global {
                reward_global::GlobalMode::Combined => String::new(),
                m => format!(" --global {}", m.name()),
            },
            match a.regions {
                reward_local::RegionScoring::Greedy => String::new(),
                r => format!(" --regions {}", r.name()),
            },
            a.out_json.display(),
            a.out_png.display()
        ),
        source: if let (true, Some(t)) = (a.renders, a.redraw) {
            format!(
                "true renders (even samples) and one-constraint violations (odd samples), each \
                 redrawn by the generator from flow time {t} in {REDRAW_STEPS} Euler steps"
            )
        } else if a.renders {
            "true renders (even samples) and one-constraint violations (odd samples)".into()
        } else {
            "the model's own images".into()
        },
        wall_s: (t0.elapsed().as_secs_f64() * 10.0).round() / 10.0,
    };
    if let Some(d) = a.out_json.parent() {
        std::fs::create_dir_all(d)?;
    }
    std::fs::write(&a.out_json, serde_json::to_string_pretty(&report)? + "\n")?;
    draw(
        &reliability,
        all_pos.len(),
        images.len(),
        report.auc_global,
        &a.out_png,
    )?;
    println!(
        "AUC of the prompt-match answer alone {:.3}; of the constraint score {:.3}",
        report.auc_global_question, report.auc_global_constraints
    );
    if let Some([lo, hi]) = report.auc_global_ci95 {
        println!("AUC of g, 95% bootstrap interval: {lo:.3} to {hi:.3}");
    }
    println!(
        "AUC of g {:.3} ({} correct of {} images); region sign agreement {:.3} ({} matched regions); proposal recall@0.7 {:.3} ({} objects); {:.0} s",
        report.auc_global,
        report.oracle_correct,
        report.images,
        report.region_sign_agreement,
        matched,
        report.proposal_recall_iou70,
        total,
        report.wall_s
    );
    println!(
        "confusion (region sign / oracle verdict): {:?}",
        report.region_confusion
    );
    println!(
        "region names against the oracle's perception: {:?}",
        report.region_name_agreement
    );
    println!(
        "region shapes (model / oracle): {:?}",
        report.region_shape_confusion
    );
    for (c, r) in &report.per_category {
        println!(
            "  {c:<12} images {:>4} correct {:>3} auc {:>6} agree {:>6} recall {:>6}",
            r.images,
            r.oracle_correct,
            r.auc_global.map_or("-".into(), |v| format!("{v:.3}")),
            r.region_sign_agreement
                .map_or("-".into(), |v| format!("{v:.3}")),
            r.proposal_recall_iou70
                .map_or("-".into(), |v| format!("{v:.3}")),
        );
    }
    println!("wrote {} and {}", a.out_json.display(), a.out_png.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{auc, auc_interval, name_agreement, read_sweep, redraw, replot};

    #[test]
    fn a_sweep_orders_the_renders_by_flow_time_and_keeps_the_own_images_apart() {
        let dir = std::env::temp_dir().join(format!("srum-sweep-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let report = |source: &str, redraw: Option<f64>, auc: f64| {
            let mut v = serde_json::json!({
                "auc_global": auc, "region_sign_agreement": 0.5,
                "region_name_agreement": {"shape": 0.4}, "oracle_correct": 3, "images": 10,
                "source": source,
            });
            if let Some(t) = redraw {
                v["redraw"] = t.into();
            }
            v.to_string()
        };
        let renders = "true renders (even samples) and one-constraint violations (odd samples)";
        // File names sort 0.9 < none, and "own" between: the order must come from the reports.
        std::fs::write(
            dir.join("renders-0.9.json"),
            report(renders, Some(0.9), 0.6),
        )
        .unwrap();
        std::fs::write(
            dir.join("renders-0.3.json"),
            report(renders, Some(0.3), 0.8),
        )
        .unwrap();
        std::fs::write(dir.join("renders-none.json"), report(renders, None, 0.9)).unwrap();
        std::fs::write(
            dir.join("own.json"),
            report("the model's own images", None, 0.62),
        )
        .unwrap();
        std::fs::write(dir.join("notes.txt"), "not a report").unwrap();
        let (points, own) = read_sweep(&dir).unwrap();
        let ts: Vec<Option<f64>> = points.iter().map(|p| p.t).collect();
        assert_eq!(ts, [Some(0.0), Some(0.3), Some(0.9)]);
        let aucs: Vec<f64> = points.iter().map(|p| p.auc_global).collect();
        assert_eq!(aucs, [0.9, 0.8, 0.6]);
        assert_eq!(own.map(|o| o.auc_global), Some(0.62));
        // A second report of own images is ambiguous.
        std::fs::write(
            dir.join("own2.json"),
            report("the model's own images", None, 0.5),
        )
        .unwrap();
        assert!(read_sweep(&dir).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn redrawing_keeps_a_render_at_low_noise_and_replaces_it_at_full_noise() {
        use compworld::{Rng, render, sample_scene};
        let base = std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../datasets/checkpoints/base-tiny.safetensors"
        ));
        let device = burn::prelude::Device::flex();
        let (model, meta) = umm_model::checkpoint::load(base, &device).expect("the shipped base");
        let renders: Vec<compworld::Image> = ["a red circle", "a blue square and a green cross"]
            .iter()
            .map(|p| {
                let m = compworld::Prompt::parse(p).expect("a prompt").meaning;
                let s = sample_scene(&m, p, &mut Rng::new(3)).expect("a scene");
                render(&s, 32)
            })
            .collect();
        // Mean absolute pixel change, over both images.
        let change = |t: f32| {
            let out = redraw(&renders, t, &model, &meta.config, &device).expect("redrawn");
            assert_eq!(out.len(), 2);
            let (a, b): (Vec<f32>, Vec<f32>) = (
                renders.iter().flat_map(|i| i.to_chw()).collect(),
                out.iter().flat_map(|i| i.to_chw()).collect(),
            );
            assert!(b.iter().all(|v| (0.0..=1.0).contains(v)));
            a.iter().zip(&b).map(|(x, y)| (x - y).abs()).sum::<f32>() / a.len() as f32
        };
        let (low, full) = (change(0.05), change(1.0));
        // Pixels handed over in the wrong range (the bug restyle once had) move every pixel by
        // about half the range even at t = 0.05.
        assert!(low < 0.05, "t = 0.05 changed pixels by {low}");
        assert!(full > 4.0 * low, "t = 1 changed {full}, t = 0.05 {low}");
        assert!(redraw(&renders, 0.0, &model, &meta.config, &device).is_err());
        assert!(redraw(&renders, 1.5, &model, &meta.config, &device).is_err());
    }

    #[test]
    fn region_names_are_compared_with_the_oracle_attribute_by_attribute() {
        use compworld::{Colour, Shape, Size, Texture};
        let d = |shape, colour, texture| scene_oracle::Detection {
            shape,
            colour,
            texture,
            size: Size::Large,
            centre: [0.5, 0.5],
            side: 0.3,
            bbox: [0.35, 0.35, 0.65, 0.65],
            fit: 0.9,
            pixels: 40,
        };
        let striped = d(Shape::Circle, Colour::Red, Texture::Striped);
        assert_eq!(
            name_agreement("striped red circle", &striped),
            Some([true, true, true])
        );
        // No texture word reads as solid; a blue name disagrees on colour only.
        assert_eq!(
            name_agreement("blue circle", &striped),
            Some([true, false, false])
        );
        let solid = d(Shape::Square, Colour::Red, Texture::Solid);
        assert_eq!(
            name_agreement("red circle", &solid),
            Some([false, true, true])
        );
        assert_eq!(name_agreement("red", &solid), None);
    }

    /// The committed reliability plots are what their committed reports draw with the current
    /// plot code (`cargo xtask plot` redraws them after a layout change).
    #[test]
    fn committed_calibration_plots_match_their_reports() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let dir = std::env::temp_dir().join(format!("xtask-replot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for stem in ["reward-calibration", "reward-calibration-renders"] {
            let json = root.join(format!("results/{stem}.json"));
            let png = dir.join(format!("{stem}.png"));
            replot(&json, &png).unwrap();
            let committed = std::fs::read(root.join(format!("results/{stem}.png"))).unwrap();
            assert!(
                std::fs::read(&png).unwrap() == committed,
                "results/{stem}.png is stale: run `cargo xtask plot`"
            );
        }
        // The redraw sweep's plot, from its reports.
        let png = dir.join("redraw-sweep.png");
        super::plot_sweep(&root.join("results/redraw-sweep"), &png).unwrap();
        assert!(
            std::fs::read(&png).unwrap()
                == std::fs::read(root.join("results/redraw-sweep.png")).unwrap(),
            "results/redraw-sweep.png is stale: run `cargo xtask plot`"
        );
        let bad = dir.join("bad.json");
        std::fs::write(&bad, "{\"auc_global\": 0.5}").unwrap();
        let err = replot(&bad, &dir.join("bad.png")).unwrap_err().to_string();
        assert!(err.contains("not a calibration report"), "{err}");
        std::fs::remove_dir_all(&dir).ok();
    }

    /// The definition, pair by pair.
    fn auc_pairs(pos: &[f64], neg: &[f64]) -> f64 {
        let wins: f64 = pos
            .iter()
            .flat_map(|p| neg.iter().map(move |n| (p, n)))
            .map(|(p, n)| {
                if p > n {
                    1.0
                } else if p == n {
                    0.5
                } else {
                    0.0
                }
            })
            .sum();
        wins / (pos.len() * neg.len()) as f64
    }

    /// Scores on a coarse grid (many ties), positives shifted up by `shift`.
    fn sample(n: usize, shift: f32, seed: u64) -> Vec<f64> {
        let mut rng = compworld::Rng::new(seed);
        (0..n)
            .map(|_| f64::from(((rng.normal() + shift) * 4.0).round() / 4.0))
            .collect()
    }

    #[test]
    fn rank_auc_equals_the_pairwise_definition_with_ties() {
        for seed in 0..5 {
            let (p, n) = (sample(37, 0.7, seed), sample(211, 0.0, seed + 100));
            let (fast, slow) = (auc(&p, &n).unwrap(), auc_pairs(&p, &n));
            assert!((fast - slow).abs() < 1e-12, "{fast} against {slow}");
        }
    }

    #[test]
    fn the_bootstrap_interval_reflects_the_number_of_positives() {
        // Perfect separation: every resample is perfect too.
        assert_eq!(
            auc_interval(&[0.9, 0.8], &[0.1, 0.2], 200, 0),
            Some([1.0, 1.0])
        );
        assert_eq!(auc_interval(&[], &[0.1], 200, 0), None);
        // 20 positives against 1,134 negatives at an AUC near 0.7, as in the base model's
        // calibration: the Hanley-McNeil standard error is about 0.065, so the interval spans
        // about 0.25. Resampling the negatives alone would give about 0.06.
        let neg = sample(1134, 0.0, 1);
        let few = sample(20, 0.7, 2);
        let a = auc(&few, &neg).unwrap();
        let [lo, hi] = auc_interval(&few, &neg, 2000, 0).unwrap();
        assert!(lo < a && a < hi, "{lo} {a} {hi}");
        assert!((0.15..0.40).contains(&(hi - lo)), "width {}", hi - lo);
        // 2,000 positives: a far narrower interval.
        let many = sample(2000, 0.7, 3);
        let [lo2, hi2] = auc_interval(&many, &neg, 500, 0).unwrap();
        assert!(
            hi2 - lo2 < (hi - lo) / 3.0,
            "{} against {}",
            hi2 - lo2,
            hi - lo
        );
    }

    #[test]
    fn auc_counts_pairs_and_half_ties() {
        assert_eq!(auc(&[0.9, 0.8], &[0.1, 0.2]), Some(1.0));
        assert_eq!(auc(&[0.1], &[0.9]), Some(0.0));
        // (0.5 vs 0.5) ties, (0.5 vs 0.2) wins: (0.5 + 1) / 2.
        assert_eq!(auc(&[0.5], &[0.5, 0.2]), Some(0.75));
        assert_eq!(auc(&[], &[0.1]), None);
    }
}
