//! Deterministic anti-aliased renderer (4x4 supersampling) and the RGB image type.

use std::path::Path;

use crate::error::{Error, Result};
use crate::scene::{Object, Scene};
use crate::world::{
    BACKGROUND, CANVAS_UNITS, DOT_RADIUS, INK, PATTERN_PERIOD, STRIPE_HALF_WIDTH, Texture,
    outline_stroke,
};

/// An RGB image with `f32` components in [0, 1], row-major, interleaved (`[h][w][3]`).
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    pub width: usize,
    pub height: usize,
    pub data: Vec<f32>,
}

impl Image {
    /// A uniformly coloured image.
    pub fn filled(width: usize, height: usize, rgb: [f32; 3]) -> Self {
        let mut data = Vec::with_capacity(width * height * 3);
        for _ in 0..width * height {
            data.extend_from_slice(&rgb);
        }
        Image {
            width,
            height,
            data,
        }
    }

    /// Pixel `(x, y)`.
    pub fn get(&self, x: usize, y: usize) -> [f32; 3] {
        let i = (y * self.width + x) * 3;
        [self.data[i], self.data[i + 1], self.data[i + 2]]
    }

    /// Sets pixel `(x, y)`.
    pub fn set(&mut self, x: usize, y: usize, rgb: [f32; 3]) {
        let i = (y * self.width + x) * 3;
        self.data[i..i + 3].copy_from_slice(&rgb);
    }

    /// Planar `[3][h][w]` copy, the layout tensors want.
    pub fn to_chw(&self) -> Vec<f32> {
        let n = self.width * self.height;
        let mut out = vec![0.0; 3 * n];
        for p in 0..n {
            for c in 0..3 {
                out[c * n + p] = self.data[p * 3 + c];
            }
        }
        out
    }

    /// Builds an image from a planar `[3][h][w]` buffer.
    pub fn from_chw(width: usize, height: usize, chw: &[f32]) -> Result<Self> {
        let n = width * height;
        if chw.len() != 3 * n {
            return Err(Error::Image(format!(
                "planar buffer has {} values, expected 3x{height}x{width} = {}",
                chw.len(),
                3 * n
            )));
        }
        let mut data = vec![0.0; 3 * n];
        for p in 0..n {
            for c in 0..3 {
                data[p * 3 + c] = chw[c * n + p];
            }
        }
        Ok(Image {
            width,
            height,
            data,
        })
    }

    /// The image as an 8-bit PNG stores it ([`Image::save_png`] then [`Image::load_png`] gives
    /// back exactly this): every value clamped to [0, 1] and rounded to a multiple of 1/255.
    pub fn quantized(mut self) -> Self {
        for v in &mut self.data {
            *v = (v.clamp(0.0, 1.0) * 255.0).round() / 255.0;
        }
        self
    }

    /// Writes an 8-bit RGB PNG.
    pub fn save_png(&self, path: &Path) -> Result<()> {
        let bytes: Vec<u8> = self
            .data
            .iter()
            .map(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8)
            .collect();
        image::save_buffer(
            path,
            &bytes,
            self.width as u32,
            self.height as u32,
            image::ExtendedColorType::Rgb8,
        )
        .map_err(|e| Error::Io(format!("writing {}: {e}", path.display())))
    }

    /// Reads an 8-bit RGB PNG of exactly `expect x expect` pixels. Other sizes and channel
    /// layouts (grey, RGBA, 16-bit) are refused with an error naming the file.
    pub fn load_png(path: &Path, expect: usize) -> Result<Self> {
        let img = image::open(path)
            .map_err(|e| Error::Image(format!("reading {}: {e}", path.display())))?;
        let (w, h) = (img.width() as usize, img.height() as usize);
        if (w, h) != (expect, expect) {
            return Err(Error::Image(format!(
                "{}: image is {w}x{h}, expected {expect}x{expect}",
                path.display()
            )));
        }
        let rgb = match img {
            image::DynamicImage::ImageRgb8(rgb) => rgb,
            other => {
                return Err(Error::Image(format!(
                    "{}: expected 8-bit RGB (3 channels), found {:?} ({} channels)",
                    path.display(),
                    other.color(),
                    other.color().channel_count()
                )));
            }
        };
        let data = rgb
            .into_raw()
            .into_iter()
            .map(|b| f32::from(b) / 255.0)
            .collect();
        Ok(Image {
            width: w,
            height: h,
            data,
        })
    }

    /// 3x3 box blur with edge clamping (used by robustness checks).
    /// The box `[x0, y0, x1, y1]` (pixels, may be fractional) cut out and resized to
    /// `out x out` with bilinear sampling: how region crops reach a model.
    pub fn crop_resize(&self, b: [f32; 4], out: usize) -> Image {
        let mut img = Image::filled(out, out, [0.0; 3]);
        let (w, h) = (self.width as f32, self.height as f32);
        let sample = |x: f32, y: f32| {
            let x = (x - 0.5).clamp(0.0, w - 1.0);
            let y = (y - 0.5).clamp(0.0, h - 1.0);
            let (x0, y0) = (x.floor() as usize, y.floor() as usize);
            let (x1, y1) = ((x0 + 1).min(self.width - 1), (y0 + 1).min(self.height - 1));
            let (fx, fy) = (x - x0 as f32, y - y0 as f32);
            let (a, b, c, d) = (
                self.get(x0, y0),
                self.get(x1, y0),
                self.get(x0, y1),
                self.get(x1, y1),
            );
            std::array::from_fn(|k| {
                (a[k] * (1.0 - fx) + b[k] * fx) * (1.0 - fy) + (c[k] * (1.0 - fx) + d[k] * fx) * fy
            })
        };
        let (bw, bh) = (b[2] - b[0], b[3] - b[1]);
        for y in 0..out {
            for x in 0..out {
                let sx = b[0] + (x as f32 + 0.5) * bw / out as f32;
                let sy = b[1] + (y as f32 + 0.5) * bh / out as f32;
                img.set(x, y, sample(sx, sy));
            }
        }
        img
    }

    pub fn box_blur3(&self) -> Image {
        let mut out = self.clone();
        let (w, h) = (self.width as isize, self.height as isize);
        for y in 0..h {
            for x in 0..w {
                let mut acc = [0.0f32; 3];
                for dy in -1..=1 {
                    for dx in -1..=1 {
                        let p = self.get(
                            (x + dx).clamp(0, w - 1) as usize,
                            (y + dy).clamp(0, h - 1) as usize,
                        );
                        for c in 0..3 {
                            acc[c] += p[c] / 9.0;
                        }
                    }
                }
                out.set(x as usize, y as usize, acc);
            }
        }
        out
    }

    /// Adds Gaussian noise of standard deviation `sigma` to every component, clamped to [0, 1].
    pub fn add_noise(&self, sigma: f32, rng: &mut crate::Rng) -> Image {
        let mut out = self.clone();
        for v in &mut out.data {
            *v = (*v + sigma * rng.normal()).clamp(0.0, 1.0);
        }
        out
    }
}

/// What an object paints at a point inside its shape.
fn paint(o: &Object, px: f32, py: f32) -> Option<[f32; 3]> {
    if !o.contains(px, py) {
        return None;
    }
    let (dx, dy) = (px - o.x, py - o.y);
    let half = PATTERN_PERIOD * 0.5;
    // Distance of v to the nearest multiple of the pattern period.
    let off = |v: f32| {
        let m = v.rem_euclid(PATTERN_PERIOD);
        m.min(PATTERN_PERIOD - m)
    };
    match o.texture {
        Texture::Solid => Some(o.colour.rgb()),
        // Stripes centred half a period away from the centre row, so the centre row is colour.
        Texture::Striped => {
            if (off(dy) - half).abs() < STRIPE_HALF_WIDTH {
                Some(INK)
            } else {
                Some(o.colour.rgb())
            }
        }
        Texture::Dotted => {
            let (ox, oy) = (off(dx), off(dy));
            if ox * ox + oy * oy < DOT_RADIUS * DOT_RADIUS {
                Some(INK)
            } else {
                Some(o.colour.rgb())
            }
        }
        Texture::Outline => {
            let stroke = outline_stroke(o.shape, o.side());
            let on_edge = (0..16).any(|k| {
                let a = k as f32 * std::f32::consts::PI / 8.0;
                !o.contains(px + stroke * a.cos(), py + stroke * a.sin())
            });
            // Inside an outline the background shows through (and so do objects behind it).
            if on_edge { Some(o.colour.rgb()) } else { None }
        }
    }
}

/// Renders a scene at `px x px` pixels (32 by default; 64 doubles the detail).
pub fn render(scene: &Scene, px: usize) -> Image {
    const SS: usize = 4;
    let scale = CANVAS_UNITS / px as f32;
    let mut img = Image::filled(px, px, BACKGROUND);
    for y in 0..px {
        for x in 0..px {
            let mut acc = [0.0f32; 3];
            for sy in 0..SS {
                for sx in 0..SS {
                    let ux = (x as f32 + (sx as f32 + 0.5) / SS as f32) * scale;
                    let uy = (y as f32 + (sy as f32 + 0.5) / SS as f32) * scale;
                    let mut c = BACKGROUND;
                    for o in scene.objects.iter().rev() {
                        if let Some(p) = paint(o, ux, uy) {
                            c = p;
                            break;
                        }
                    }
                    for k in 0..3 {
                        acc[k] += c[k];
                    }
                }
            }
            let n = (SS * SS) as f32;
            img.set(x, y, [acc[0] / n, acc[1] / n, acc[2] / n]);
        }
    }
    img
}

/// Tiles images into one sheet (nearest-neighbour upscaled by `scale`, 2-pixel white gutters),
/// for people to look at.
pub fn contact_sheet(images: &[Image], cols: usize, scale: usize) -> Image {
    let cols = cols.max(1);
    let rows = images.len().div_ceil(cols).max(1);
    let (tw, th) = images
        .first()
        .map_or((1, 1), |i| (i.width * scale, i.height * scale));
    let gut = 2;
    let mut sheet = Image::filled(
        cols * (tw + gut) + gut,
        rows * (th + gut) + gut,
        [1.0, 1.0, 1.0],
    );
    for (k, img) in images.iter().enumerate() {
        let (ox, oy) = (gut + (k % cols) * (tw + gut), gut + (k / cols) * (th + gut));
        for y in 0..img.height * scale {
            for x in 0..img.width * scale {
                sheet.set(ox + x, oy + y, img.get(x / scale, y / scale));
            }
        }
    }
    sheet
}
