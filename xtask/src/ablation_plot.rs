//! Plots of an ablation grid, drawn from its committed CSVs alone (`cargo xtask plot` redraws
//! them on a fresh clone): grouped bars per category with error bars, paired deltas against
//! the base in the style of the paper's ablation figure, and post-training curves. Each as PNG
//! and SVG.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::plot::init_font;

/// One row of `summary.csv`: variant, seed and every numeric column.
#[derive(Debug, Clone)]
pub struct Row {
    pub variant: String,
    pub seed: u64,
    pub values: BTreeMap<String, f64>,
}

/// Reads `summary.csv` (variants in file order).
pub fn read_summary_csv(path: &Path) -> Result<Vec<Row>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines
        .next()
        .with_context(|| format!("{} is empty", path.display()))?
        .split(',')
        .collect();
    let mut out = Vec::new();
    for (i, l) in lines.enumerate() {
        let f: Vec<&str> = l.split(',').collect();
        if f.len() != header.len() {
            bail!(
                "{}:{}: {} fields, expected {}",
                path.display(),
                i + 2,
                f.len(),
                header.len()
            );
        }
        let mut values = BTreeMap::new();
        for (h, v) in header.iter().zip(&f) {
            if let Ok(x) = v.parse::<f64>() {
                values.insert(h.to_string(), x);
            }
        }
        out.push(Row {
            variant: f[0].to_string(),
            seed: f[1]
                .parse()
                .with_context(|| format!("{}:{}: seed", path.display(), i + 2))?,
            values,
        });
    }
    Ok(out)
}

fn variants(rows: &[Row]) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    for r in rows {
        if !v.contains(&r.variant) {
            v.push(r.variant.clone());
        }
    }
    v
}

/// Mean and sample standard deviation (0 for one value, NaN mean for none).
pub fn mean_std(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    if xs.is_empty() {
        return (f64::NAN, 0.0);
    }
    let m = xs.iter().sum::<f64>() / n;
    let s = if xs.len() > 1 {
        (xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
    } else {
        0.0
    };
    (m, s)
}

fn stat(rows: &[Row], variant: &str, col: &str) -> (f64, f64) {
    let xs: Vec<f64> = rows
        .iter()
        .filter(|r| r.variant == variant)
        .filter_map(|r| r.values.get(col).copied())
        .collect();
    mean_std(&xs)
}

/// The delta of `col` against `other`, paired by seed: (mean, std) over the shared seeds.
fn paired(rows: &[Row], variant: &str, other: &str, col: &str) -> Option<(f64, f64)> {
    let d: Vec<f64> = rows
        .iter()
        .filter(|r| r.variant == variant)
        .filter_map(|r| {
            let o = rows
                .iter()
                .find(|o| o.variant == other && o.seed == r.seed)?;
            Some(r.values.get(col)? - o.values.get(col)?)
        })
        .collect();
    (!d.is_empty()).then(|| mean_std(&d))
}

/// The two panels: each benchmark's overall score, then its categories.
fn bench_panels() -> [(&'static str, Vec<&'static str>); 2] {
    use crate::ablate::{CB, RB};
    [
        (
            "CompBench-style (val, points)",
            std::iter::once("compbench_overall").chain(CB).collect(),
        ),
        (
            "ReasonBench-style (val, points)",
            std::iter::once("reasonbench_overall").chain(RB).collect(),
        ),
    ]
}

/// Distinct colours: Tableau 10, then six darker ones, so a grid of up to 16 variants repeats
/// none; then repeating.
fn colour(i: usize) -> RGBColor {
    const C: [(u8, u8, u8); 16] = [
        (78, 121, 167),
        (242, 142, 43),
        (225, 87, 89),
        (118, 183, 178),
        (89, 161, 79),
        (237, 201, 72),
        (176, 122, 161),
        (255, 157, 167),
        (156, 117, 95),
        (186, 176, 172),
        (31, 48, 94),
        (117, 70, 160),
        (60, 60, 60),
        (140, 140, 30),
        (0, 110, 110),
        (200, 40, 150),
    ];
    let (r, g, b) = C[i % C.len()];
    RGBColor(r, g, b)
}

fn short(col: &str) -> &str {
    match col {
        "compbench_overall" | "reasonbench_overall" => "overall",
        c => c,
    }
}

fn bars_on<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    rows: &[Row],
    title: &str,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let root = root.titled(title, ("sans-serif", 22))?;
    let vs = variants(rows);
    let panels = root.split_evenly((2, 1));
    for (area, (name, cols)) in panels.iter().zip(bench_panels()) {
        let top = cols
            .iter()
            .flat_map(|c| vs.iter().map(move |v| (v, c)))
            .map(|(v, c)| {
                let (m, s) = stat(rows, v, c);
                m + s
            })
            .filter(|x| x.is_finite())
            .fold(1.0, f64::max)
            * 1.15;
        let n = cols.len() as f64;
        let mut chart = ChartBuilder::on(area)
            .caption(name, ("sans-serif", 17))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(50)
            .build_cartesian_2d(0.0..n, 0.0..top)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(cols.len() * 2 + 1)
            .x_label_formatter(&|x| {
                let k = x.floor() as usize;
                if (x - k as f64 - 0.5).abs() < 0.01 && k < cols.len() {
                    short(cols[k]).to_string()
                } else {
                    String::new()
                }
            })
            .y_desc("score")
            .label_style(("sans-serif", 13))
            .draw()?;
        let w = 0.8 / vs.len() as f64;
        for (i, v) in vs.iter().enumerate() {
            let c = colour(i);
            let mut bars = Vec::new();
            let mut errs = Vec::new();
            for (k, col) in cols.iter().enumerate() {
                let (m, s) = stat(rows, v, col);
                if !m.is_finite() {
                    continue;
                }
                let x0 = k as f64 + 0.1 + i as f64 * w;
                bars.push(Rectangle::new([(x0, 0.0), (x0 + w * 0.9, m)], c.filled()));
                if s > 0.0 {
                    let xc = x0 + w * 0.45;
                    errs.push(PathElement::new([(xc, m - s), (xc, m + s)], BLACK));
                }
            }
            chart
                .draw_series(bars)?
                .label(v.clone())
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], c.filled()));
            chart.draw_series(errs)?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .border_style(BLACK)
            .background_style(WHITE.mix(0.85))
            .label_font(("sans-serif", 12))
            .draw()?;
    }
    root.present()?;
    Ok(())
}

/// Every variant but `base`, labelled, with its paired delta of `col` against its own base:
/// `vs_base[variant]` where the grid names one (a variant from another base model), else `base`.
fn deltas(
    rows: &[Row],
    vs_base: &BTreeMap<String, String>,
    col: &str,
) -> Vec<(String, Option<(f64, f64)>)> {
    variants(rows)
        .into_iter()
        .filter(|v| v != "base")
        .map(|v| match vs_base.get(&v) {
            Some(b) => (format!("{v} (vs {b})"), paired(rows, &v, b, col)),
            None => (v.clone(), paired(rows, &v, "base", col)),
        })
        .collect()
}

fn delta_on<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    rows: &[Row],
    vs_base: &BTreeMap<String, String>,
    title: &str,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let root = root.titled(title, ("sans-serif", 20))?;
    let panels = root.split_evenly((1, 2));
    for (area, (col, name)) in panels.iter().zip([
        ("compbench_overall", "CompBench-style overall"),
        ("reasonbench_overall", "ReasonBench-style overall"),
    ]) {
        let labelled = deltas(rows, vs_base, col);
        let vs: Vec<String> = labelled.iter().map(|(l, _)| l.clone()).collect();
        let d: Vec<(usize, (f64, f64))> = labelled
            .iter()
            .enumerate()
            .filter_map(|(i, (_, d))| Some((i, (*d)?)))
            .collect();
        let span = d.iter().map(|(_, (m, s))| m.abs() + s).fold(1.0, f64::max) * 1.2;
        let n = vs.len().max(1) as f64;
        let mut chart = ChartBuilder::on(area)
            .caption(
                format!("{name}: change vs base (points)"),
                ("sans-serif", 15),
            )
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(150)
            .build_cartesian_2d(-span..span, 0.0..n)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(vs.len() * 2 + 1)
            .y_label_formatter(&|y| {
                let k = y.floor() as usize;
                if (y - k as f64 - 0.5).abs() < 0.01 && k < vs.len() {
                    vs[vs.len() - 1 - k].clone()
                } else {
                    String::new()
                }
            })
            .label_style(("sans-serif", 12))
            .draw()?;
        for (i, (m, s)) in &d {
            let y = (vs.len() - 1 - i) as f64;
            let c = if *m >= 0.0 {
                RGBColor(89, 161, 79)
            } else {
                RGBColor(225, 87, 89)
            };
            chart.draw_series(std::iter::once(Rectangle::new(
                [(0.0, y + 0.2), (*m, y + 0.8)],
                c.mix(0.7).filled(),
            )))?;
            if *s > 0.0 {
                chart.draw_series(std::iter::once(PathElement::new(
                    [(m - s, y + 0.5), (m + s, y + 0.5)],
                    BLACK,
                )))?;
            }
            chart.draw_series(std::iter::once(Text::new(
                format!("{m:+.1}"),
                (if *m >= 0.0 { m + s } else { 0.0 } + span * 0.02, y + 0.65),
                ("sans-serif", 11).into_font(),
            )))?;
        }
        chart.draw_series(std::iter::once(PathElement::new(
            [(0.0, 0.0), (0.0, n)],
            BLACK,
        )))?;
    }
    root.present()?;
    Ok(())
}

/// A variant's colour index, name and [step, loss, plain loss, mean weight] points.
type CurveRun = (usize, String, Vec<[f64; 4]>);

/// [step, loss, plain loss, mean token weight] of a run's metrics.csv, steps counted across
/// rounds.
fn read_curve(path: &Path) -> Result<Vec<[f64; 4]>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = Vec::new();
    let mut offset = 0.0;
    let mut last_round = 1.0;
    let mut last_step = 0.0;
    for l in text.lines().skip(1) {
        let f: Vec<f64> = l.split(',').filter_map(|x| x.parse().ok()).collect();
        if f.len() < 7 {
            continue;
        }
        if f[0] != last_round {
            offset += last_step;
            last_round = f[0];
        }
        last_step = f[1];
        out.push([offset + f[1], f[3], f[5], f[6]]);
    }
    Ok(out)
}

fn curves_on<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    runs: &[CurveRun],
    title: &str,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let root = root.titled(title, ("sans-serif", 20))?;
    let names = [
        "training loss (weighted + lambda plain; SFT: plain)",
        "plain flow-matching loss (unweighted)",
        "mean token weight of the batch",
    ];
    let panels = root.split_evenly((1, names.len()));
    for (p, (area, name)) in panels.iter().zip(names).enumerate() {
        let pick = |t: &[f64; 4]| t[p + 1];
        let max_x = runs
            .iter()
            .flat_map(|(_, _, c)| c.iter().map(|t| t[0]))
            .fold(1.0, f64::max);
        let hi = runs
            .iter()
            .flat_map(|(_, _, c)| c.iter().map(pick))
            .fold(0.0, f64::max)
            * 1.1;
        let mut chart = ChartBuilder::on(area)
            .caption(name, ("sans-serif", 14))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(55)
            .build_cartesian_2d(0.0..max_x, 0.0..hi.max(1e-3))?;
        chart
            .configure_mesh()
            .x_desc("step")
            .label_style(("sans-serif", 12))
            .draw()?;
        for (i, v, c) in runs {
            let col = colour(*i);
            chart
                .draw_series(LineSeries::new(
                    c.iter().map(|t| (t[0], pick(t))),
                    col.stroke_width(2),
                ))?
                .label(v.clone())
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], col));
        }
        // One legend, on the weight panel, where the curves leave room.
        if p == names.len() - 1 {
            chart
                .configure_series_labels()
                .border_style(BLACK)
                .background_style(WHITE.mix(0.85))
                .label_font(("sans-serif", 12))
                .draw()?;
        }
    }
    root.present()?;
    Ok(())
}

/// Draws `bars`, `delta` and `curves` (PNG and SVG) of the grid whose results are in `dir`
/// from its CSVs and returns the files written; `vs_base` names, per variant, the row its
/// deltas are taken against when that is not `base` (the grid's `vs_base` keys).
pub fn plot_grid(dir: &Path, vs_base: &BTreeMap<String, String>) -> Result<Vec<PathBuf>> {
    init_font()?;
    let name = dir
        .file_name()
        .map_or("grid".into(), |s| s.to_string_lossy().to_string());
    let rows = read_summary_csv(&dir.join("summary.csv"))?;
    if rows.is_empty() {
        bail!("{} has no rows", dir.join("summary.csv").display());
    }
    let mut written = Vec::new();
    let title = format!("ablation '{name}': mean ± std over seeds");
    let bars = (1200, 800);
    let p = dir.join("bars.png");
    bars_on(
        BitMapBackend::new(&p, bars).into_drawing_area(),
        &rows,
        &title,
    )?;
    let s = dir.join("bars.svg");
    bars_on(SVGBackend::new(&s, bars).into_drawing_area(), &rows, &title)?;
    written.extend([p, s]);
    if rows.iter().any(|r| r.variant == "base") {
        let title =
            format!("ablation '{name}': change vs base, paired by seed (bar: mean, line: ± std)");
        let size = (1200, 120 + 40 * variants(&rows).len() as u32);
        let p = dir.join("delta.png");
        delta_on(
            BitMapBackend::new(&p, size).into_drawing_area(),
            &rows,
            vs_base,
            &title,
        )?;
        let s = dir.join("delta.svg");
        delta_on(
            SVGBackend::new(&s, size).into_drawing_area(),
            &rows,
            vs_base,
            &title,
        )?;
        written.extend([p, s]);
    }
    let mut runs = Vec::new();
    for (i, v) in variants(&rows).into_iter().enumerate() {
        let m = dir.join(&v).join("s0").join("metrics.csv");
        if m.exists() {
            runs.push((i, v, read_curve(&m)?));
        }
    }
    if !runs.is_empty() {
        let title = format!("ablation '{name}': post-training curves (seed 0)");
        let p = dir.join("curves.png");
        curves_on(
            BitMapBackend::new(&p, (1500, 450)).into_drawing_area(),
            &runs,
            &title,
        )?;
        let s = dir.join("curves.svg");
        curves_on(
            SVGBackend::new(&s, (1500, 450)).into_drawing_area(),
            &runs,
            &title,
        )?;
        written.extend([p, s]);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small grid on disk: summary.csv and one metrics.csv per trained variant.
    fn fake_grid(dir: &Path) {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).unwrap();
        let mut csv = String::from(
            "variant,seed,compbench_overall,reasonbench_overall,understanding,color,shape,texture,spatial,3d_spatial,numeracy,non_spatial,complex,knowledge,arithmetic,geometry,composite\n",
        );
        for (v, shift) in [("base", 0.0), ("sft", 0.5), ("srum", 1.5)] {
            for s in 0..3 {
                let x = 3.0 + shift + s as f64 * 0.3;
                csv += &format!(
                    "{v},{s},{x},{},62.5,{x},{x},{x},{x},{x},{x},{x},{x},10,20,30,{}\n",
                    18.0 + shift,
                    10.0 + shift
                );
            }
            if v != "base" {
                let m = dir.join(v).join("s0");
                std::fs::create_dir_all(&m).unwrap();
                let mut t = String::from(
                    "round,step,lr,loss,loss_weighted,loss_plain,mean_reward,grad_norm,examples_per_s,wall_s\n",
                );
                for k in 1..=10 {
                    t += &format!(
                        "1,{},1e-4,{},0.01,0.05,{},0.3,90,1\n",
                        k * 10,
                        0.06 - k as f64 * 0.001,
                        0.2 + shift * 0.1
                    );
                }
                std::fs::write(m.join("metrics.csv"), t).unwrap();
            }
        }
        std::fs::write(dir.join("summary.csv"), csv).unwrap();
    }

    #[test]
    fn plots_are_drawn_from_the_csvs_alone_and_redraw_identically() {
        let dir = std::env::temp_dir().join(format!("xtask-plot-{}", std::process::id()));
        fake_grid(&dir);
        let files = plot_grid(&dir, &BTreeMap::new()).unwrap();
        let names: Vec<String> = files
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().to_string())
            .collect();
        assert_eq!(
            names,
            [
                "bars.png",
                "bars.svg",
                "delta.png",
                "delta.svg",
                "curves.png",
                "curves.svg"
            ]
        );
        let first: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
        assert!(first.iter().all(|b| b.len() > 1000));
        // The paired deltas: srum - base = +1.5 on every seed.
        let rows = read_summary_csv(&dir.join("summary.csv")).unwrap();
        let (m, s) = paired(&rows, "srum", "base", "compbench_overall").unwrap();
        assert!((m - 1.5).abs() < 1e-9 && s < 1e-9, "{m} {s}");
        plot_grid(&dir, &BTreeMap::new()).unwrap();
        let again: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
        assert_eq!(first, again, "a redraw must give the same bytes");
        // A variant from another base model is paired with that model's row, not `base`.
        let vs_base = BTreeMap::from([("srum".to_string(), "sft".to_string())]);
        let d = deltas(&rows, &vs_base, "compbench_overall");
        assert_eq!(d[0].0, "sft");
        assert!((d[0].1.unwrap().0 - 0.5).abs() < 1e-9, "{d:?}");
        assert_eq!(d[1].0, "srum (vs sft)");
        assert!((d[1].1.unwrap().0 - 1.0).abs() < 1e-9, "{d:?}");
        if std::env::var_os("KEEP_PLOTS").is_none() {
            std::fs::remove_dir_all(dir).unwrap();
        }
    }
}
