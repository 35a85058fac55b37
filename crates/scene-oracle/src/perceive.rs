//! Perception: from RGB pixels to a list of objects, with no access to the scene that made them.
//!
//! 1. **Unmixing.** Every pixel is explained as `bg + a (c - bg) + b (ink - bg)` for each palette
//!    colour `c`, with `a, b` in [0, 1] by least squares; the colour with the smallest residual
//!    labels the pixel. Anti-aliased edges (colour over background) and stripe edges (colour
//!    over ink) are explained exactly, so they do not turn into spurious colours.
//! 2. **Segmentation.** Same-colour pixels are connected (8-neighbourhood); components of one
//!    colour that touch the same ink region (the stripes of one object) are merged; specks and
//!    thin slivers (colour mixtures where two objects meet) are dropped; ink and leftovers join
//!    the nearest object.
//! 3. **Shape by template fitting.** Each object's filled mask is matched against every shape
//!    template over sizes and positions; pixels of other objects are "don't know" (they may
//!    hide part of this one), which recovers the full (amodal) shape of occluded objects.
//! 4. **Texture** from the interior: background showing through (outline), ink fraction
//!    (solid), and whether ink varies between rows only (stripes) or within rows too (dots).
//! 5. **Pairwise facts:** how much of each object's amodal shape another one covers
//!    (occlusion order), adjacency (touching) and containment (inside).

// Pixel loops index several parallel per-pixel arrays at once; ranges read better than zips.
#![allow(clippy::needless_range_loop)]

use compworld::world::{BACKGROUND, CANVAS_UNITS, INK};
use compworld::{Colour, Image, Shape, Size, Texture};
use serde::Serialize;

/// An object the oracle sees.
#[derive(Debug, Clone, Serialize)]
pub struct Detection {
    pub shape: Shape,
    pub colour: Colour,
    pub texture: Texture,
    pub size: Size,
    /// Centre of the fitted (amodal) shape, in units.
    pub centre: [f32; 2],
    /// Side of the fitted shape's bounding square, in units.
    pub side: f32,
    /// Fitted bounding box `[x0, y0, x1, y1]`, in units.
    pub bbox: [f32; 4],
    /// Intersection-over-union of the fitted template with the object's pixels.
    pub fit: f32,
    /// Visible pixels.
    pub pixels: usize,
}

/// Everything perceived in one image.
#[derive(Debug, Clone, Serialize)]
pub struct Perception {
    pub objects: Vec<Detection>,
    /// `cover[i][j]`: fraction of object j's fitted shape covered by object i's visible pixels
    /// (i in front of j when large).
    pub cover: Vec<Vec<f32>>,
    /// `contained[i][j]`: fraction of object i's visible pixels inside object j's fitted shape.
    pub contained: Vec<Vec<f32>>,
    /// Whether the visible pixels of i and j touch (8-neighbourhood).
    pub adjacent: Vec<Vec<bool>>,
}

const BG: u8 = 255;

/// `SRUM_ORACLE_DEBUG=1` prints the fitting evidence to stderr (read once).
fn debug_enabled() -> bool {
    static DEBUG: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *DEBUG.get_or_init(|| std::env::var_os("SRUM_ORACLE_DEBUG").is_some())
}
const INK_LABEL: u8 = 254;

struct Pixels {
    w: usize,
    h: usize,
    label: Vec<u8>,
    /// Colour label of faint pixels (0.3 <= a + b < 0.5, colour-dominant), else `BG`: the
    /// blurred edges that can close a broken outline ring.
    weak: Vec<u8>,
    alpha: Vec<f32>,
    beta: Vec<f32>,
    /// Squared residual of the best unmixing: large where two colours blend.
    resid: Vec<f32>,
}

fn sub(a: [f32; 3], b: [f32; 3]) -> [f32; 3] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

fn dot(a: [f32; 3], b: [f32; 3]) -> f32 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

/// Best `(a, b, residual)` with `d ~ a u + b v`, `a, b` in [0, 1].
fn unmix(d: [f32; 3], u: [f32; 3], v: [f32; 3]) -> (f32, f32, f32) {
    let (uu, uv, vv, ud, vd) = (dot(u, u), dot(u, v), dot(v, v), dot(u, d), dot(v, d));
    let resid = |a: f32, b: f32| {
        let r = [
            d[0] - a * u[0] - b * v[0],
            d[1] - a * u[1] - b * v[1],
            d[2] - a * u[2] - b * v[2],
        ];
        dot(r, r)
    };
    let mut best = (0.0, 0.0, resid(0.0, 0.0));
    let mut try_ab = |a: f32, b: f32| {
        let (a, b) = (a.clamp(0.0, 1.0), b.clamp(0.0, 1.0));
        let r = resid(a, b);
        if r < best.2 {
            best = (a, b, r);
        }
    };
    let det = uu * vv - uv * uv;
    if det.abs() > 1e-9 {
        try_ab((ud * vv - vd * uv) / det, (vd * uu - ud * uv) / det);
    }
    // Box edges: one coefficient pinned, the other optimal.
    for a in [0.0f32, 1.0] {
        try_ab(a, (vd - a * uv) / vv);
    }
    for b in [0.0f32, 1.0] {
        try_ab((ud - b * uv) / uu, b);
    }
    best
}

fn classify(img: &Image) -> Pixels {
    let (w, h) = (img.width, img.height);
    let v = sub(INK, BACKGROUND);
    let us: Vec<[f32; 3]> = Colour::ALL
        .iter()
        .map(|c| sub(c.rgb(), BACKGROUND))
        .collect();
    let mut px = Pixels {
        w,
        h,
        label: vec![BG; w * h],
        weak: vec![BG; w * h],
        alpha: vec![0.0; w * h],
        beta: vec![0.0; w * h],
        resid: vec![0.0; w * h],
    };
    for y in 0..h {
        for x in 0..w {
            let d = sub(img.get(x, y), BACKGROUND);
            let mut best = (0usize, 0.0f32, 0.0f32, f32::INFINITY);
            for (k, u) in us.iter().enumerate() {
                let (a, b, r) = unmix(d, *u, v);
                if r < best.3 {
                    best = (k, a, b, r);
                }
            }
            let i = y * w + x;
            let (k, a, b, r) = best;
            px.resid[i] = r;
            px.alpha[i] = a;
            px.beta[i] = b;
            if (0.3..0.5).contains(&(a + b)) && a >= b {
                px.weak[i] = k as u8;
            }
            px.label[i] = if a + b < 0.5 {
                BG
            } else if a >= 0.3 {
                k as u8
            } else {
                INK_LABEL
            };
        }
    }
    px
}

fn neighbours8(i: usize, w: usize, h: usize) -> impl Iterator<Item = usize> {
    let (x, y) = ((i % w) as isize, (i / w) as isize);
    (-1..=1isize)
        .flat_map(move |dy| (-1..=1isize).map(move |dx| (dx, dy)))
        .filter_map(move |(dx, dy)| {
            let (nx, ny) = (x + dx, y + dy);
            ((dx, dy) != (0, 0) && nx >= 0 && ny >= 0 && nx < w as isize && ny < h as isize)
                .then(|| ny as usize * w + nx as usize)
        })
}

/// Connected components (8-neighbourhood) of pixels where `member` holds and `same` links them.
fn components(
    n: usize,
    w: usize,
    h: usize,
    member: impl Fn(usize) -> bool,
    same: impl Fn(usize, usize) -> bool,
) -> Vec<Option<usize>> {
    let mut comp = vec![None; n];
    let mut next = 0;
    let mut stack = Vec::new();
    for s in 0..n {
        if comp[s].is_some() || !member(s) {
            continue;
        }
        comp[s] = Some(next);
        stack.push(s);
        while let Some(i) = stack.pop() {
            for j in neighbours8(i, w, h) {
                if comp[j].is_none() && member(j) && same(i, j) {
                    comp[j] = Some(next);
                    stack.push(j);
                }
            }
        }
        next += 1;
    }
    comp
}

fn find(parent: &mut [usize], mut i: usize) -> usize {
    while parent[i] != i {
        parent[i] = parent[parent[i]];
        i = parent[i];
    }
    i
}

/// Mask with enclosed holes filled: everything not reachable from the border without crossing
/// the mask.
fn fill_holes(mask: &[bool], w: usize, h: usize) -> Vec<bool> {
    let mut outside = vec![false; w * h];
    let mut stack: Vec<usize> = Vec::new();
    for i in 0..w * h {
        let (x, y) = (i % w, i / w);
        if (x == 0 || y == 0 || x == w - 1 || y == h - 1) && !mask[i] {
            outside[i] = true;
            stack.push(i);
        }
    }
    while let Some(i) = stack.pop() {
        let (x, y) = (i % w, i / w);
        let mut visit = |j: usize| {
            if !outside[j] && !mask[j] {
                outside[j] = true;
                stack.push(j);
            }
        };
        if x > 0 {
            visit(i - 1);
        }
        if x + 1 < w {
            visit(i + 1);
        }
        if y > 0 {
            visit(i - w);
        }
        if y + 1 < h {
            visit(i + w);
        }
    }
    outside.iter().map(|o| !o).collect()
}

/// Adds the faint pixels of the mask's own colour that touch it (closes blurred rings before
/// hole filling).
fn add_faint_edge(mask: &mut [bool], px: &Pixels, w: usize, h: usize) {
    let Some(label) = (0..w * h)
        .find(|&i| mask[i] && px.label[i] < INK_LABEL)
        .map(|i| px.label[i])
    else {
        return;
    };
    let add: Vec<usize> = (0..w * h)
        .filter(|&i| !mask[i] && px.weak[i] == label && neighbours8(i, w, h).any(|j| mask[j]))
        .collect();
    for i in add {
        mask[i] = true;
    }
}

/// 3x3 erosion, `times` times.
fn erode(mask: &[bool], w: usize, h: usize, times: usize) -> Vec<bool> {
    let mut m = mask.to_vec();
    for _ in 0..times {
        let prev = m.clone();
        for i in 0..w * h {
            let (x, y) = (i % w, i / w);
            let border = x == 0 || y == 0 || x == w - 1 || y == h - 1;
            m[i] = prev[i] && !border && neighbours8(i, w, h).all(|j| prev[j]);
        }
    }
    m
}

/// A candidate shape placement, in pixel coordinates.
#[derive(Debug, Clone, Copy)]
struct Fit {
    shape: Shape,
    side: f32,
    cx: f32,
    cy: f32,
    /// Binary IoU (pass 1) or soft quality (pass 2).
    iou: f32,
    /// Selection score of pass 2.
    score: f32,
}

fn template(
    shape: Shape,
    side: f32,
    cx: f32,
    cy: f32,
    w: usize,
    h: usize,
) -> (Vec<usize>, [usize; 4]) {
    let x0 = ((cx - side * 0.5).floor().max(0.0)) as usize;
    let y0 = ((cy - side * 0.5).floor().max(0.0)) as usize;
    let x1 = ((cx + side * 0.5).ceil() as usize).min(w);
    let y1 = ((cy + side * 0.5).ceil() as usize).min(h);
    let mut v = Vec::new();
    for y in y0..y1 {
        for x in x0..x1 {
            if shape.contains(x as f32 + 0.5 - cx, y as f32 + 0.5 - cy, side) {
                v.push(y * w + x);
            }
        }
    }
    (v, [x0, y0, x1, y1])
}

/// An object's binary evidence for pass-1 fitting.
#[derive(Clone, Copy)]
struct Evidence<'a> {
    /// The object's filled mask.
    fill: &'a [bool],
    fill_count: usize,
    /// Pixels of other objects, which may hide this one.
    unknown: &'a [bool],
    w: usize,
    h: usize,
}

/// IoU of the template with `fill`, ignoring `unknown` pixels.
fn score_template(shape: Shape, side: f32, cx: f32, cy: f32, ev: &Evidence) -> f32 {
    let Evidence {
        fill,
        fill_count,
        unknown,
        w,
        h,
    } = *ev;
    let (t, _) = template(shape, side, cx, cy, w, h);
    let (mut inter, mut t_known, mut hidden) = (0usize, 0usize, 0usize);
    for &i in &t {
        if unknown[i] {
            hidden += 1;
            continue;
        }
        t_known += 1;
        inter += usize::from(fill[i]);
    }
    // Template area cut off by the canvas edge counts against it.
    let full = (side * side * shape.fill_fraction()).round() as usize;
    let clipped = full.saturating_sub(t.len());
    let union = fill_count + t_known + clipped - inter;
    if union == 0 {
        return 0.0;
    }
    // Explaining pixels as hidden costs something, or a cross on top of a square would read as
    // a square half-hidden behind it: a back object covered by 20-45% still wins against any
    // visible-only reading, a complete front object keeps its own shape.
    inter as f32 / union as f32 - HIDDEN_PENALTY * hidden as f32 / t.len().max(1) as f32
}

/// Cost, in IoU, of a template whose pixels are all hidden behind other objects.
const HIDDEN_PENALTY: f32 = 0.5;

/// Anti-aliased coverage of a shape over a window `[x0, y0, x1, y1)` (4x4 supersampling),
/// optionally seen through a 3x3 box blur.
fn soft_template(
    shape: Shape,
    side: f32,
    cx: f32,
    cy: f32,
    win: [usize; 4],
    blur: bool,
) -> Vec<f32> {
    let [x0, y0, x1, y1] = win;
    let (ww, wh) = (x1 - x0, y1 - y0);
    let mut t = vec![0.0f32; ww * wh];
    for y in 0..wh {
        for x in 0..ww {
            let mut k = 0;
            for sy in 0..4 {
                for sx in 0..4 {
                    let px = (x0 + x) as f32 + (sx as f32 + 0.5) / 4.0 - cx;
                    let py = (y0 + y) as f32 + (sy as f32 + 0.5) / 4.0 - cy;
                    k += usize::from(shape.contains(px, py, side));
                }
            }
            t[y * ww + x] = k as f32 / 16.0;
        }
    }
    if !blur {
        return t;
    }
    let mut b = vec![0.0f32; ww * wh];
    for y in 0..wh {
        for x in 0..ww {
            let mut acc = 0.0;
            for dy in -1isize..=1 {
                for dx in -1isize..=1 {
                    let (nx, ny) = (x as isize + dx, y as isize + dy);
                    if nx >= 0 && ny >= 0 && (nx as usize) < ww && (ny as usize) < wh {
                        acc += t[ny as usize * ww + nx as usize];
                    }
                }
            }
            b[y * ww + x] = acc / 9.0;
        }
    }
    b
}

/// Log-likelihood-style score of a soft template against coverage `c`: minus the squared error
/// over the known pixels of a window shared by all candidates, minus [`HIDDEN_COST`] per unit
/// of template mass hidden behind other objects. Also returns a quality in [0, 1]
/// (`1 - error / template energy`) for reports.
fn soft_score(c: &[f32], unknown: &[bool], w: usize, t: &[f32], win: [usize; 4]) -> (f32, f32) {
    let [x0, y0, x1, _] = win;
    let ww = x1 - x0;
    let (mut ssd, mut tt, mut hidden) = (0.0f32, 0.0f32, 0.0f32);
    for (k, &tv) in t.iter().enumerate() {
        let i = (y0 + k / ww) * w + x0 + k % ww;
        if unknown[i] {
            hidden += tv;
            continue;
        }
        ssd += (c[i] - tv).powi(2);
        tt += tv * tv;
    }
    (
        -(ssd + HIDDEN_COST * hidden),
        (1.0 - ssd / tt.max(1e-6)).max(0.0),
    )
}

/// Cost of one pixel's worth of template hidden behind other objects, against a squared error
/// of 1 for a visible pixel that is wrong.
const HIDDEN_COST: f32 = 0.25;

fn fit_shape(
    fill: &[bool],
    cover: &[f32],
    unknown: &[bool],
    w: usize,
    h: usize,
    search: bool,
    scale: f32,
) -> Fit {
    let idx: Vec<usize> = (0..w * h).filter(|&i| fill[i]).collect();
    let fill_count = idx.len();
    let evidence = Evidence {
        fill,
        fill_count,
        unknown,
        w,
        h,
    };
    let (mut x0, mut y0, mut x1, mut y1) = (w, h, 0, 0);
    for &i in &idx {
        let (x, y) = (i % w, i / w);
        (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x + 1), y1.max(y + 1));
    }
    let (bw, bh) = ((x1 - x0) as f32, (y1 - y0) as f32);
    let base = bw.max(bh);
    // Pass 1: binary IoU over a coarse grid, best placement per shape.
    let mut per_shape: Vec<Fit> = Shape::ALL
        .iter()
        .map(|&shape| Fit {
            shape,
            side: base,
            cx: 0.0,
            cy: 0.0,
            iou: -1.0,
            score: 0.0,
        })
        .collect();
    let (mx, my) = ((x0 + x1) as f32 * 0.5, (y0 + y1) as f32 * 0.5);
    for (si, &shape) in Shape::ALL.iter().enumerate() {
        let best = &mut per_shape[si];
        let mut consider = |side: f32, cx: f32, cy: f32| {
            let iou = score_template(shape, side, cx, cy, &evidence);
            // Prefer the smaller template on ties: it needs fewer hidden pixels.
            if iou > best.iou + 1e-4 || (iou > best.iou - 1e-4 && side < best.side) {
                *best = Fit {
                    shape,
                    side,
                    cx,
                    cy,
                    iou,
                    score: 0.0,
                };
            }
        };
        if !search {
            for ds in [-1.0f32, -0.5, 0.0, 0.5] {
                for ox in [-0.5f32, 0.0, 0.5] {
                    for oy in [-0.5f32, 0.0, 0.5] {
                        consider(base + ds, mx + ox, my + oy);
                    }
                }
            }
        } else {
            // The hidden part may extend the shape past its visible box in any direction.
            let max_side = (compworld::world::LARGE_UNITS * 1.25 * scale).max(base + 1.0);
            let mut side = (base - 1.0).max(2.0);
            while side <= max_side {
                let (lo_x, hi_x) = (x1 as f32 - side * 0.5 - 0.5, x0 as f32 + side * 0.5 + 0.5);
                let (lo_y, hi_y) = (y1 as f32 - side * 0.5 - 0.5, y0 as f32 + side * 0.5 + 0.5);
                let mut cx = lo_x.min(mx);
                while cx <= hi_x.max(mx) {
                    let mut cy = lo_y.min(my);
                    while cy <= hi_y.max(my) {
                        consider(side, cx, cy);
                        cy += 0.5;
                    }
                    cx += 0.5;
                }
                side += 0.5;
            }
        }
    }
    // Pass 2: soft refinement around each shape's best, sharp and blurred, on coverage. This
    // is what keeps a blurred small square from reading as a circle.
    let mut best = Fit {
        shape: Shape::Square,
        side: base,
        cx: mx,
        cy: my,
        iou: 0.0,
        score: f32::NEG_INFINITY,
    };
    let debug = debug_enabled();
    // One window for every candidate: the visible box grown by the largest template's reach.
    let reach = per_shape.iter().map(|f| f.side).fold(base, f32::max) + 1.0 - base + 3.0;
    let window = [
        (x0 as f32 - reach).floor().max(0.0) as usize,
        (y0 as f32 - reach).floor().max(0.0) as usize,
        ((x1 as f32 + reach).ceil() as usize).min(w),
        ((y1 as f32 + reach).ceil() as usize).min(h),
    ];
    for f in per_shape {
        let before = best;
        best.score = f32::NEG_INFINITY;
        for ds in [-1.5f32, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5] {
            let side = f.side + ds;
            if side < 2.0 {
                continue;
            }
            let win = window;
            for ox in [-1.0f32, -0.5, 0.0, 0.5, 1.0] {
                for oy in [-1.0f32, -0.5, 0.0, 0.5, 1.0] {
                    for blur in [false, true] {
                        let (cx, cy) = (f.cx + ox, f.cy + oy);
                        let t = soft_template(f.shape, side, cx, cy, win, blur);
                        let (sc, quality) = soft_score(cover, unknown, w, &t, win);
                        if sc > best.score + 1e-4 || (sc > best.score - 1e-4 && side < best.side) {
                            best = Fit {
                                shape: f.shape,
                                side,
                                cx,
                                cy,
                                iou: quality,
                                score: sc,
                            };
                        }
                    }
                }
            }
        }
        if debug {
            eprintln!(
                "  fit {:?}: binary {:.3} soft {:.3} side {} at ({}, {}) px",
                f.shape, f.iou, best.score, best.side, best.cx, best.cy
            );
        }
        if before.score >= best.score {
            best = before;
        }
    }
    best
}

/// Reads the texture from the interior (the filled mask eroded by about a unit), unmixing each
/// pixel against the object's own colour and ink: background showing through means an outline,
/// no ink means solid; then ink that repeats along rows (stripes) or alternates along rows and
/// columns alike (dots), measured by correlations at half a pattern period.
fn texture_of(img: &Image, colour: Colour, fill: &[bool], unknown: &[bool], scale: f32) -> Texture {
    let (w, h) = (img.width, img.height);
    let r = (scale.round() as usize).max(1);
    let core = erode(fill, w, h, r);
    // Pixels next to another object blend with it under blur; they say nothing of texture.
    let interior: Vec<usize> = (0..w * h)
        .filter(|&i| core[i] && !unknown[i] && neighbours8(i, w, h).all(|j| !unknown[j]))
        .collect();
    if interior.is_empty() {
        return Texture::Solid;
    }
    let (u, v) = (sub(colour.rgb(), BACKGROUND), sub(INK, BACKGROUND));
    let mut beta = vec![0.0f32; w * h];
    let mut empty = 0.0;
    for &i in &interior {
        let (a, b, _) = unmix(sub(img.get(i % w, i / w), BACKGROUND), u, v);
        beta[i] = b;
        empty += (1.0 - a - b).max(0.0);
    }
    let n = interior.len() as f32;
    if empty / n > 0.45 {
        return Texture::Outline;
    }
    let ink = interior.iter().map(|&i| beta[i]).sum::<f32>() / n;
    if ink < 0.07 {
        return Texture::Solid;
    }
    let lag = ((compworld::world::PATTERN_PERIOD * 0.5 * scale).round() as usize).max(1);
    let corr = |dx: usize, dy: usize| {
        let (mut sxy, mut sxx, mut syy) = (0.0f32, 0.0f32, 0.0f32);
        for &i in &interior {
            let (x, y) = (i % w + dx, i / w + dy);
            if x < w && y < h && core[y * w + x] && !unknown[y * w + x] {
                let (a, b) = (beta[i] - ink, beta[y * w + x] - ink);
                sxy += a * b;
                sxx += a * a;
                syy += b * b;
            }
        }
        sxy / (sxx * syy).sqrt().max(1e-6)
    };
    // Stripes: along a row the ink repeats (+), half a period down it flips (-).
    // Dots: half a period away is colour in both directions (both -).
    if corr(lag, 0) - corr(0, lag) > 0.7 {
        Texture::Striped
    } else {
        Texture::Dotted
    }
}

/// Kept pieces: colour label and pixel indices.
type Pieces = Vec<(u8, Vec<usize>)>;

/// Pieces enclosed by the same container that touch each other are one object: blur blends a
/// small object's edge with its container into a ring of a third colour (red on green reads
/// yellow), which would otherwise be an object of its own. The merged object takes the colour
/// that, together with the container's, best explains all its pixels.
fn merge_enclosed(
    mut owner: Vec<Option<usize>>,
    mut kept: Pieces,
    px: &Pixels,
    img: &Image,
) -> (Vec<Option<usize>>, Pieces) {
    let (w, h) = (px.w, px.h);
    let n = w * h;
    let k = kept.len();
    let masks: Vec<Vec<bool>> = (0..k)
        .map(|o| owner.iter().map(|&x| x == Some(o)).collect())
        .collect();
    let area: Vec<usize> = masks
        .iter()
        .map(|m| m.iter().filter(|&&b| b).count())
        .collect();
    let rings: Vec<Vec<Option<usize>>> = (0..k)
        .map(|o| ring_owners(&masks[o], &owner, w, h))
        .collect();
    // Pieces that hardly touch the background are embedded in something; embedded pieces that
    // touch each other form one candidate, and a candidate whose ring is mostly one much larger
    // object lies inside that object.
    let embedded: Vec<bool> = rings
        .iter()
        .map(|r| r.iter().filter(|x| x.is_none()).count() * 4 <= r.len())
        .collect();
    let mut cand: Vec<usize> = (0..k).collect();
    for i in 0..n {
        let Some(a) = owner[i] else { continue };
        for j in neighbours8(i, w, h) {
            if let Some(b) = owner[j]
                && a != b
                && embedded[a]
                && embedded[b]
            {
                let (ra, rb) = (find(&mut cand, a), find(&mut cand, b));
                cand[ra] = rb;
            }
        }
    }
    let mut changed = false;
    for root in 0..k {
        let members: Vec<usize> = (0..k)
            .filter(|&o| embedded[o] && find(&mut cand, o) == root)
            .collect();
        if members.len() < 2 {
            continue;
        }
        let total: usize = members.iter().map(|&o| area[o]).sum();
        let mut counts = vec![0usize; k];
        let mut ring_len = 0usize;
        for &o in &members {
            for x in &rings[o] {
                if x.is_none_or(|y| !members.contains(&y)) {
                    ring_len += 1;
                    if let Some(y) = x {
                        counts[*y] += 1;
                    }
                }
            }
        }
        let container = (0..k).find(|&a| counts[a] * 5 >= ring_len * 3 && area[a] * 2 > total * 3);
        if debug_enabled() {
            eprintln!("  embedded pieces {members:?} ({total} px): container {container:?}");
        }
        let Some(c) = container else { continue };
        let uc = sub(Colour::ALL[usize::from(kept[c].0)].rgb(), BACKGROUND);
        let pixels: Vec<usize> = members
            .iter()
            .flat_map(|&o| kept_pixels(&owner, o))
            .collect();
        let best = members
            .iter()
            .map(|&o| {
                let u = sub(Colour::ALL[usize::from(kept[o].0)].rgb(), BACKGROUND);
                let r: f32 = pixels
                    .iter()
                    .map(|&i| unmix(sub(img.get(i % w, i / w), BACKGROUND), u, uc).2)
                    .sum();
                (o, r)
            })
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map_or(members[0], |(o, _)| o);
        for &i in &pixels {
            owner[i] = Some(best);
        }
        changed = true;
    }
    if !changed {
        return (owner, kept);
    }
    // Compact: objects left without pixels disappear.
    let mut remap = vec![None; k];
    let mut new_kept = Vec::new();
    for o in 0..k {
        let pix = kept_pixels(&owner, o);
        if !pix.is_empty() {
            remap[o] = Some(new_kept.len());
            new_kept.push((kept[o].0, pix));
        }
    }
    for x in owner.iter_mut() {
        *x = x.and_then(|o| remap[o]);
    }
    kept = new_kept;
    (owner, kept)
}

/// The owners (None = background) of the pixels that ring a mask, each pixel once.
fn ring_owners(mask: &[bool], owner: &[Option<usize>], w: usize, h: usize) -> Vec<Option<usize>> {
    let mut seen = vec![false; w * h];
    let mut ring = Vec::new();
    for i in (0..w * h).filter(|&i| mask[i]) {
        for j in neighbours8(i, w, h) {
            if !mask[j] && !seen[j] {
                seen[j] = true;
                ring.push(owner[j]);
            }
        }
    }
    ring
}

fn kept_pixels(owner: &[Option<usize>], o: usize) -> Vec<usize> {
    (0..owner.len()).filter(|&i| owner[i] == Some(o)).collect()
}

/// Perceives the objects of an image whose canvas is [`CANVAS_UNITS`] units wide.
pub fn perceive(img: &Image) -> Perception {
    let (w, h) = (img.width, img.height);
    let n = w * h;
    let scale = w as f32 / CANVAS_UNITS; // pixels per unit
    let px = classify(img);
    let is_colour = |i: usize| px.label[i] < Colour::ALL.len() as u8;

    // 2. Same-colour components, merged through shared ink regions.
    let comp = components(n, w, h, is_colour, |i, j| px.label[i] == px.label[j]);
    let ncomp = comp.iter().flatten().max().map_or(0, |m| m + 1);
    let mut parent: Vec<usize> = (0..ncomp).collect();
    let ink = components(n, w, h, |i| px.label[i] == INK_LABEL, |_, _| true);
    let nink = ink.iter().flatten().max().map_or(0, |m| m + 1);
    let mut touching: Vec<Vec<usize>> = vec![Vec::new(); nink];
    for i in 0..n {
        if let Some(r) = ink[i] {
            for j in neighbours8(i, w, h) {
                if let Some(c) = comp[j] {
                    touching[r].push(c);
                }
            }
        }
    }
    let comp_label: Vec<u8> = {
        let mut l = vec![0u8; ncomp];
        for i in 0..n {
            if let Some(c) = comp[i] {
                l[c] = px.label[i];
            }
        }
        l
    };
    for cs in &touching {
        for a in 0..cs.len() {
            for b in 0..a {
                if comp_label[cs[a]] == comp_label[cs[b]] {
                    let (ra, rb) = (find(&mut parent, cs[a]), find(&mut parent, cs[b]));
                    parent[ra] = rb;
                }
            }
        }
    }
    // A faint pixel touching two pieces of the same colour joins them (a blurred outline ring
    // broken at a thin spot). Two objects two pixels apart never share such a pixel.
    for i in 0..n {
        let l = px.weak[i];
        if l == BG {
            continue;
        }
        let mut first: Option<usize> = None;
        for j in neighbours8(i, w, h) {
            if let Some(c) = comp[j]
                && comp_label[c] == l
            {
                match first {
                    None => first = Some(c),
                    Some(f) => {
                        let (ra, rb) = (find(&mut parent, f), find(&mut parent, c));
                        parent[ra] = rb;
                    }
                }
            }
        }
    }
    let mut root_of = vec![usize::MAX; ncomp];
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for c in 0..ncomp {
        let r = find(&mut parent, c);
        if root_of[r] == usize::MAX {
            root_of[r] = groups.len();
            groups.push(Vec::new());
        }
        root_of[c] = root_of[r];
    }
    for i in 0..n {
        if let Some(c) = comp[i] {
            groups[root_of[c]].push(i);
        }
    }
    // Ink regions each group touches: a striped object's colour bands can be thinner than
    // one erosion, so its core is judged with its stripes.
    let mut group_ink: Vec<Vec<usize>> = vec![Vec::new(); groups.len()];
    for (r, cs) in touching.iter().enumerate() {
        for &c in cs {
            if !group_ink[root_of[c]].contains(&r) {
                group_ink[root_of[c]].push(r);
            }
        }
    }

    // Drop specks and slivers (no core after one erosion of the filled mask).
    let min_area = (6.0 * scale * scale) as usize;
    let mut owner: Vec<Option<usize>> = vec![None; n];
    let mut kept: Vec<(u8, Vec<usize>)> = Vec::new();
    for (gi, g) in groups.iter().enumerate() {
        if g.len() < min_area {
            continue;
        }
        let mut mask = vec![false; n];
        for &i in g {
            mask[i] = true;
        }
        for i in 0..n {
            if ink[i].is_some_and(|r| group_ink[gi].contains(&r)) {
                mask[i] = true;
            }
        }
        add_faint_edge(&mut mask, &px, w, h);
        let filled = fill_holes(&mask, w, h);
        // Slivers where two objects blend are thin *and* badly explained by one colour; a
        // thin but clean object (a small cross's arms) stays.
        let core = erode(&filled, w, h, 1).iter().filter(|&&b| b).count();
        let resid = g.iter().map(|&i| px.resid[i]).sum::<f32>() / g.len() as f32;
        if core < (3.0 * scale * scale) as usize
            && (resid > 0.015 || g.len() < (12.0 * scale * scale) as usize)
        {
            continue;
        }
        let k = kept.len();
        for &i in g {
            owner[i] = Some(k);
        }
        kept.push((px.label[g[0]], g.clone()));
    }
    // Ink and dropped pixels join the nearest object (breadth-first through foreground).
    let mut queue: std::collections::VecDeque<usize> =
        (0..n).filter(|&i| owner[i].is_some()).collect();
    let seeded: Vec<bool> = owner.iter().map(Option::is_some).collect();
    while let Some(i) = queue.pop_front() {
        for j in neighbours8(i, w, h) {
            if owner[j].is_none() && px.label[j] != BG {
                owner[j] = owner[i];
                queue.push_back(j);
            }
        }
    }
    // A joined pixel between two objects goes to the one whose colour explains more of it
    // (the blend of a red and a yellow edge reads as orange and would otherwise go to
    // whichever object the search reached first).
    let colour_of = |o: usize| sub(Colour::ALL[usize::from(kept[o].0)].rgb(), BACKGROUND);
    let reassigned: Vec<(usize, usize)> = (0..n)
        .filter(|&i| !seeded[i] && owner[i].is_some())
        .filter_map(|i| {
            let a = owner[i]?;
            let b = neighbours8(i, w, h).find_map(|j| owner[j].filter(|&x| x != a))?;
            let d = sub(img.get(i % w, i / w), BACKGROUND);
            let (ca, cb, _) = unmix(d, colour_of(a), colour_of(b));
            (cb > ca).then_some((i, b))
        })
        .collect();
    for (i, b) in reassigned {
        owner[i] = Some(b);
    }
    let (owner, kept) = merge_enclosed(owner, kept, &px, img);

    // 3-4. Per object: filled mask, shape fit with other objects unknown, texture.
    let k = kept.len();
    let masks: Vec<Vec<bool>> = (0..k)
        .map(|o| owner.iter().map(|&x| x == Some(o)).collect())
        .collect();
    let mut adjacent = vec![vec![false; k]; k];
    for i in 0..n {
        if let Some(a) = owner[i] {
            for j in neighbours8(i, w, h) {
                if let Some(b) = owner[j]
                    && a != b
                {
                    adjacent[a][b] = true;
                    adjacent[b][a] = true;
                }
            }
        }
    }
    let mut objects = Vec::with_capacity(k);
    let mut templates: Vec<Vec<bool>> = Vec::with_capacity(k);
    // Each mask with its faint edge, and that filled: computed once per object.
    let edged_all: Vec<Vec<bool>> = masks
        .iter()
        .map(|m| {
            let mut e = m.clone();
            add_faint_edge(&mut e, &px, w, h);
            e
        })
        .collect();
    let filled_all: Vec<Vec<bool>> = edged_all.iter().map(|e| fill_holes(e, w, h)).collect();
    // An object lying within another (inside its filled outline, or ringed by it almost all
    // round) is on top of it: nothing of it is hidden there, so the container's pixels are
    // evidence (mostly "not here"), not unknown.
    let area: Vec<usize> = masks
        .iter()
        .map(|m| m.iter().filter(|&&b| b).count())
        .collect();
    let enclosing: Vec<Option<usize>> = (0..k)
        .map(|o| {
            let ring = ring_owners(&masks[o], &owner, w, h);
            (0..k).find(|&a| {
                a != o
                    && ((0..n).all(|i| !masks[o][i] || filled_all[a][i])
                        || (area[a] * 2 > area[o] * 3
                            && ring.iter().filter(|&&x| x == Some(a)).count() * 20
                                >= ring.len() * 17))
            })
        })
        .collect();
    for o in 0..k {
        let unknown: Vec<bool> = (0..n)
            .map(|i| owner[i].is_some_and(|x| x != o && Some(x) != enclosing[o]))
            .collect();
        let edged = &edged_all[o];
        let filled = filled_all[o].clone();
        let fill: Vec<bool> = (0..n)
            .map(|i| filled[i] && !unknown[i] || masks[o][i])
            .collect();
        let search = adjacent[o].iter().any(|&b| b);
        // Soft coverage: enclosed holes count as covered, every other pixel by unmixing it
        // against this object's own colour (a faint edge pixel's best colour is often another).
        let u = sub(Colour::ALL[usize::from(kept[o].0)].rgb(), BACKGROUND);
        let v = sub(INK, BACKGROUND);
        // A solid object is measured along its colour alone, unclamped: unbiased, and much less
        // noisy than the two-coefficient fit for colours close to grey's direction (blue).
        let foreign: Vec<bool> = (0..n).map(|i| owner[i].is_some_and(|x| x != o)).collect();
        let texture = texture_of(
            img,
            Colour::ALL[usize::from(kept[o].0)],
            &filled,
            &foreign,
            scale,
        );
        let uu = dot(u, u);
        let cover: Vec<f32> = (0..n)
            .map(|i| {
                let d = sub(img.get(i % w, i / w), BACKGROUND);
                let inner = filled[i] && neighbours8(i, w, h).all(|j| filled[j]);
                // An enclosed hole (inside an outline) belongs to the shape, and so does the
                // stroke's inner edge.
                let hole = filled[i] && !edged[i] && owner[i].is_none();
                if hole || (texture == Texture::Outline && inner && !unknown[i]) {
                    1.0
                } else if let Some(other) = (!unknown[i])
                    .then(|| {
                        owner[i].filter(|&x| x != o).or_else(|| {
                            neighbours8(i, w, h).find_map(|j| owner[j].filter(|&x| x != o))
                        })
                    })
                    .flatten()
                {
                    // Where this object meets another, the pixel blends the two colours, not
                    // colour and background: unmix against both and keep this one's share.
                    let u2 = sub(Colour::ALL[usize::from(kept[other].0)].rgb(), BACKGROUND);
                    let (a, _, _) = unmix(d, u, u2);
                    a
                } else if texture == Texture::Solid {
                    dot(d, u) / uu
                } else {
                    let (a, b, _) = unmix(d, u, v);
                    (a + b).min(1.0)
                }
            })
            .collect();
        if debug_enabled() && masks[o].iter().filter(|&&b| b).count() < 60 {
            let idx: Vec<usize> = (0..n).filter(|&i| masks[o][i]).collect();
            let (x0, x1) = (
                idx.iter()
                    .map(|i| i % w)
                    .min()
                    .unwrap_or(0)
                    .saturating_sub(2),
                idx.iter().map(|i| i % w).max().unwrap_or(0) + 3,
            );
            let (y0, y1) = (
                idx.iter()
                    .map(|i| i / w)
                    .min()
                    .unwrap_or(0)
                    .saturating_sub(2),
                idx.iter().map(|i| i / w).max().unwrap_or(0) + 3,
            );
            for y in y0..y1.min(h) {
                let row: Vec<String> = (x0..x1.min(w))
                    .map(|x| {
                        let i = y * w + x;
                        if unknown[i] {
                            "  ?".into()
                        } else {
                            format!("{:3.0}", cover[i] * 10.0)
                        }
                    })
                    .collect();
                eprintln!("  cover {}", row.join(""));
            }
        }
        let fit = fit_shape(&fill, &cover, &unknown, w, h, search, scale);
        let (t, _) = template(fit.shape, fit.side, fit.cx, fit.cy, w, h);
        let mut tmask = vec![false; n];
        for i in t {
            tmask[i] = true;
        }
        let side = fit.side / scale;
        let (cx, cy) = (fit.cx / scale, fit.cy / scale);
        objects.push(Detection {
            shape: fit.shape,
            colour: Colour::ALL[usize::from(kept[o].0)],
            texture,
            size: Size::from_units(side),
            centre: [cx, cy],
            side,
            bbox: [
                cx - side * 0.5,
                cy - side * 0.5,
                cx + side * 0.5,
                cy + side * 0.5,
            ],
            fit: fit.iou,
            pixels: masks[o].iter().filter(|&&b| b).count(),
        });
        templates.push(tmask);
    }

    // 5. Pairwise cover and containment.
    let mut cover = vec![vec![0.0; k]; k];
    let mut contained = vec![vec![0.0; k]; k];
    for a in 0..k {
        for b in 0..k {
            if a == b {
                continue;
            }
            let tb = templates[b].iter().filter(|&&x| x).count().max(1);
            let both = (0..n).filter(|&i| masks[a][i] && templates[b][i]).count();
            cover[a][b] = both as f32 / tb as f32;
            contained[a][b] = both as f32 / objects[a].pixels.max(1) as f32;
        }
    }
    Perception {
        objects,
        cover,
        contained,
        adjacent,
    }
}

/// A text map of the pixel labels (`.` background, `#` ink, otherwise the colour's initial;
/// `P` purple, `k` pink), one string per row: a debugging aid.
pub fn label_map(img: &Image) -> Vec<String> {
    let px = classify(img);
    (0..px.h)
        .map(|y| {
            (0..px.w)
                .map(|x| match px.label[y * px.w + x] {
                    BG => '.',
                    INK_LABEL => '#',
                    k => match Colour::ALL[usize::from(k)] {
                        Colour::Purple => 'P',
                        Colour::Pink => 'k',
                        c => c.word().chars().next().unwrap_or('?'),
                    },
                })
                .collect()
        })
        .collect()
}
