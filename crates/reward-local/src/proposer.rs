//! Class-agnostic region proposals: boxes around whatever stands out from the background,
//! from the pixels alone. Nothing here knows the palette, the shapes or the prompt.
//!
//! 1. The background colour is the per-channel median of the border pixels; a pixel is
//!    foreground when its RGB distance from it exceeds [`ProposerConfig::foreground`].
//! 2. At each colour threshold of [`ProposerConfig::thresholds`], foreground pixels are joined
//!    with their 4-neighbours of a colour closer than the threshold (union-find), so one
//!    object's body is one component and differently coloured neighbours stay apart; the
//!    foreground mask's own components (any colour) are added, so a striped or dotted object
//!    (two colours) and touching objects also get a box around the whole.
//! 3. Components smaller than [`ProposerConfig::min_pixels`] are dropped, boxes that nearly
//!    repeat a larger one (IoU above [`ProposerConfig::dedupe_iou`]) are merged away, and the
//!    rest are sorted by component area, largest first, and cut to the top K (as the
//!    reference sorts SAM's masks by area and keeps 10).

use compworld::Image;
use serde::Serialize;

/// A box in pixel coordinates of the image it was proposed on: `[x0, x1)` x `[y0, y1)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BoxPx {
    pub x0: f32,
    pub y0: f32,
    pub x1: f32,
    pub y1: f32,
    /// Pixels of the component the box was drawn around.
    pub area: usize,
}

impl BoxPx {
    /// Width times height.
    pub fn box_area(&self) -> f32 {
        (self.x1 - self.x0).max(0.0) * (self.y1 - self.y0).max(0.0)
    }

    /// Intersection over union of the two boxes.
    pub fn iou(&self, o: &BoxPx) -> f32 {
        let iw = (self.x1.min(o.x1) - self.x0.max(o.x0)).max(0.0);
        let ih = (self.y1.min(o.y1) - self.y0.max(o.y0)).max(0.0);
        let inter = iw * ih;
        let union = self.box_area() + o.box_area() - inter;
        if union <= 0.0 { 0.0 } else { inter / union }
    }

    /// `[x0, y0, x1, y1]`.
    pub fn corners(&self) -> [f32; 4] {
        [self.x0, self.y0, self.x1, self.y1]
    }
}

/// Proposer settings. Distances are Euclidean in RGB with components in [0, 1].
#[derive(Debug, Clone, PartialEq)]
pub struct ProposerConfig {
    /// Boxes returned at most (the reference keeps SAM's 10 largest masks).
    pub top_k: usize,
    /// Distance from the background above which a pixel is foreground.
    pub foreground: f32,
    /// Colour thresholds of the similarity components, one scale each.
    pub thresholds: Vec<f32>,
    /// Smallest component kept, in pixels.
    pub min_pixels: usize,
    /// Boxes overlapping a larger kept box by more than this are dropped.
    pub dedupe_iou: f32,
}

impl Default for ProposerConfig {
    fn default() -> Self {
        ProposerConfig {
            top_k: 10,
            foreground: 0.2,
            thresholds: vec![0.12, 0.3],
            min_pixels: 6,
            dedupe_iou: 0.9,
        }
    }
}

fn dist(a: [f32; 3], b: [f32; 3]) -> f32 {
    ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2) + (a[2] - b[2]).powi(2)).sqrt()
}

/// The per-channel median of the border pixels.
pub fn background(img: &Image) -> [f32; 3] {
    let (w, h) = (img.width, img.height);
    let mut border = Vec::new();
    for x in 0..w {
        border.push(img.get(x, 0));
        border.push(img.get(x, h - 1));
    }
    for y in 1..h.saturating_sub(1) {
        border.push(img.get(0, y));
        border.push(img.get(w - 1, y));
    }
    std::array::from_fn(|c| {
        let mut v: Vec<f32> = border.iter().map(|p| p[c]).collect();
        v.sort_by(f32::total_cmp);
        v[v.len() / 2]
    })
}

struct UnionFind(Vec<usize>);

impl UnionFind {
    fn find(&mut self, mut i: usize) -> usize {
        while self.0[i] != i {
            self.0[i] = self.0[self.0[i]];
            i = self.0[i];
        }
        i
    }
    fn union(&mut self, a: usize, b: usize) {
        let (a, b) = (self.find(a), self.find(b));
        if a != b {
            self.0[b] = a;
        }
    }
}

/// Components of foreground pixels joined when `join(a, b)`; one box per component.
fn components(img: &Image, fg: &[bool], join: impl Fn([f32; 3], [f32; 3]) -> bool) -> Vec<BoxPx> {
    let (w, h) = (img.width, img.height);
    let mut uf = UnionFind((0..w * h).collect());
    for y in 0..h {
        for x in 0..w {
            let i = y * w + x;
            if !fg[i] {
                continue;
            }
            for (nx, ny) in [(x + 1, y), (x, y + 1)] {
                if nx < w && ny < h && fg[ny * w + nx] && join(img.get(x, y), img.get(nx, ny)) {
                    uf.union(i, ny * w + nx);
                }
            }
        }
    }
    let mut boxes: std::collections::HashMap<usize, BoxPx> = std::collections::HashMap::new();
    for y in 0..h {
        for x in 0..w {
            let i = y * w + x;
            if !fg[i] {
                continue;
            }
            let r = uf.find(i);
            let b = boxes.entry(r).or_insert(BoxPx {
                x0: x as f32,
                y0: y as f32,
                x1: x as f32 + 1.0,
                y1: y as f32 + 1.0,
                area: 0,
            });
            b.x0 = b.x0.min(x as f32);
            b.y0 = b.y0.min(y as f32);
            b.x1 = b.x1.max(x as f32 + 1.0);
            b.y1 = b.y1.max(y as f32 + 1.0);
            b.area += 1;
        }
    }
    let mut v: Vec<BoxPx> = boxes.into_values().collect();
    // A fixed order before sorting by area, so equal areas come out the same every run.
    v.sort_by(|a, b| a.corners().partial_cmp(&b.corners()).expect("finite"));
    v
}

/// Boxes around the regions of `img` that stand out from its background, largest first.
pub fn propose(img: &Image, cfg: &ProposerConfig) -> Vec<BoxPx> {
    if img.width == 0 || img.height == 0 {
        return Vec::new();
    }
    let bg = background(img);
    let fg: Vec<bool> = (0..img.height)
        .flat_map(|y| (0..img.width).map(move |x| (x, y)))
        .map(|(x, y)| dist(img.get(x, y), bg) > cfg.foreground)
        .collect();
    let mut all = Vec::new();
    for &t in &cfg.thresholds {
        all.extend(components(img, &fg, |a, b| dist(a, b) < t));
    }
    all.extend(components(img, &fg, |_, _| true));
    all.retain(|b| b.area >= cfg.min_pixels);
    all.sort_by_key(|b| std::cmp::Reverse(b.area));
    let mut kept: Vec<BoxPx> = Vec::new();
    for b in all {
        if kept.iter().all(|k| k.iou(&b) <= cfg.dedupe_iou) {
            kept.push(b);
        }
        if kept.len() == cfg.top_k {
            break;
        }
    }
    kept
}
