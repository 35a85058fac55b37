//! Plots, drawn with plotters and the DejaVu Sans font kept in `assets/fonts` (registered at
//! start, so no system font is needed).

use std::path::Path;

use anyhow::{Context, Result, anyhow};
use plotters::prelude::*;
use plotters::style::FontStyle;
use plotters::style::register_font;

const FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

/// Registers the bundled font as "sans-serif" (idempotent).
pub fn init_font() -> Result<()> {
    register_font("sans-serif", FontStyle::Normal, FONT)
        .map_err(|_| anyhow!("the bundled font assets/fonts/DejaVuSans.ttf is invalid"))
}

/// One training curve: step and value.
type Curve = Vec<(f64, f64)>;

/// Reads `metrics.csv` of a run: (understanding loss, generation loss) per logged step.
fn read_run(dir: &Path) -> Result<(Curve, Curve)> {
    let path = dir.join("metrics.csv");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let (mut und, mut gen_) = (Vec::new(), Vec::new());
    for (i, line) in text.lines().enumerate().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let num = |k: usize| -> Result<f64> {
            f.get(k)
                .and_then(|v| v.parse().ok())
                .with_context(|| format!("{}:{}: malformed row '{line}'", path.display(), i + 1))
        };
        und.push((num(0)?, num(2)?));
        gen_.push((num(0)?, num(3)?));
    }
    if und.is_empty() {
        anyhow::bail!("{} has no rows", path.display());
    }
    Ok((und, gen_))
}

/// Both pretraining losses of a run against the step, one panel each (log scale).
pub fn plot_run(dir: &Path, out: &Path, title: &str) -> Result<()> {
    init_font()?;
    let (und, gen_) = read_run(dir)?;
    let root = BitMapBackend::new(out, (1000, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(title, ("sans-serif", 22))?;
    let panels = root.split_evenly((1, 2));
    let series = [
        ("understanding: answer cross-entropy", &und, BLUE),
        ("generation: flow velocity MSE", &gen_, RED),
    ];
    for (area, (name, data, colour)) in panels.iter().zip(series) {
        let max_step = data.last().map_or(1.0, |p| p.0);
        let lo = data
            .iter()
            .map(|p| p.1)
            .fold(f64::INFINITY, f64::min)
            .max(1e-4);
        let hi = data.iter().map(|p| p.1).fold(0.0, f64::max);
        let mut chart = ChartBuilder::on(area)
            .caption(name, ("sans-serif", 17))
            .margin(12)
            .x_label_area_size(38)
            .y_label_area_size(55)
            .build_cartesian_2d(0.0..max_step, (lo * 0.9..hi * 1.1).log_scale())?;
        chart
            .configure_mesh()
            .x_desc("step")
            .y_desc("loss (log scale)")
            .y_labels(10)
            .y_label_formatter(&|v| format!("{v:.2}"))
            .label_style(("sans-serif", 13))
            .draw()?;
        chart.draw_series(LineSeries::new(
            data.iter().copied(),
            colour.stroke_width(2),
        ))?;
    }
    root.present()?;
    Ok(())
}

/// One row of a labelled grid: a caption and its images with a score under each.
pub struct GridRow {
    pub caption: String,
    pub images: Vec<(compworld::Image, f64)>,
}

/// Rows of images with the prompt above each row and each image's score (0-1) under it, for
/// people to look at: `title` on top, images drawn `scale` times their size.
pub fn labelled_grid(rows: &[GridRow], title: &str, scale: u32, out: &Path) -> Result<()> {
    init_font()?;
    let cols = rows
        .iter()
        .map(|r| r.images.len())
        .max()
        .unwrap_or(1)
        .max(1) as u32;
    let side = rows
        .iter()
        .flat_map(|r| r.images.first())
        .map(|(i, _)| i.width as u32)
        .next()
        .unwrap_or(32)
        * scale;
    let (gap, caption_h, score_h, title_h) = (8u32, 20u32, 16u32, 34u32);
    let row_h = caption_h + side + score_h + gap;
    let width = (cols * (side + gap) + gap).max(9 * title.chars().count() as u32 + 2 * gap);
    let height = title_h + rows.len() as u32 * row_h + gap;
    let root = BitMapBackend::new(out, (width, height)).into_drawing_area();
    root.fill(&WHITE)?;
    root.draw(&Text::new(
        title.to_string(),
        (gap as i32, 8),
        ("sans-serif", 18).into_font(),
    ))?;
    for (r, row) in rows.iter().enumerate() {
        let y0 = title_h + r as u32 * row_h;
        let mut caption = row.caption.clone();
        let max_chars = (width / 7) as usize;
        if caption.chars().count() > max_chars {
            caption = caption
                .chars()
                .take(max_chars.saturating_sub(3))
                .collect::<String>()
                + "...";
        }
        root.draw(&Text::new(
            caption,
            (gap as i32, y0 as i32 + 3),
            ("sans-serif", 13).into_font(),
        ))?;
        for (c, (img, score)) in row.images.iter().enumerate() {
            let x0 = gap + c as u32 * (side + gap);
            let top = y0 + caption_h;
            for y in 0..img.height {
                for x in 0..img.width {
                    let [rr, gg, bb] = img
                        .get(x, y)
                        .map(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8);
                    let (px, py) = (
                        (x0 + x as u32 * scale) as i32,
                        (top + y as u32 * scale) as i32,
                    );
                    root.draw(&Rectangle::new(
                        [(px, py), (px + scale as i32, py + scale as i32)],
                        RGBColor(rr, gg, bb).filled(),
                    ))?;
                }
            }
            let colour = if *score >= 0.999 {
                RGBColor(0, 130, 0)
            } else if *score > 0.0 {
                RGBColor(190, 120, 0)
            } else {
                RGBColor(180, 0, 0)
            };
            root.draw(&Text::new(
                format!("{score:.2}"),
                (x0 as i32, (top + side + 2) as i32),
                ("sans-serif", 12).into_font().color(&colour),
            ))?;
        }
    }
    root.present()?;
    Ok(())
}

/// Reliability of the global score: per bin of g (centre, images, share the oracle scores
/// correct), as bars of the share with the image count written above each.
pub fn reliability(
    bins: &[(f64, usize, Option<f64>)],
    base_rate: f64,
    auc: f64,
    out: &Path,
) -> Result<()> {
    init_font()?;
    let top = bins
        .iter()
        .filter_map(|b| b.2)
        .fold(base_rate, f64::max)
        .mul_add(1.25, 0.02)
        .min(1.05);
    let root = BitMapBackend::new(out, (760, 460)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("global self-reward g vs the oracle (AUC {auc:.3})"),
            ("sans-serif", 20),
        )
        .margin(14)
        .x_label_area_size(40)
        .y_label_area_size(55)
        .build_cartesian_2d(-1.0..1.0, 0.0..top)?;
    chart
        .configure_mesh()
        .x_desc("g (bin centre)")
        .y_desc("share of images the oracle scores correct")
        .label_style(("sans-serif", 13))
        .draw()?;
    for &(c, n, share) in bins {
        if let Some(s) = share {
            chart.draw_series(std::iter::once(Rectangle::new(
                [(c - 0.09, 0.0), (c + 0.09, s)],
                BLUE.mix(0.6).filled(),
            )))?;
        }
        chart.draw_series(std::iter::once(Text::new(
            format!("{n}"),
            (c - 0.05, share.unwrap_or(0.0) + 0.03 * top),
            ("sans-serif", 12).into_font(),
        )))?;
    }
    chart
        .draw_series(LineSeries::new(
            [(-1.0, base_rate), (1.0, base_rate)],
            RED.stroke_width(1),
        ))?
        .label(format!("all images: {base_rate:.3}"))
        .legend(|(x, y)| PathElement::new([(x, y), (x + 18, y)], RED));
    // Upper left: the low-g bins are the short ones (the default, middle right, covered the
    // count above the last bar).
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE)
        .border_style(BLACK)
        .label_font(("sans-serif", 13))
        .draw()?;
    root.present()?;
    Ok(())
}
