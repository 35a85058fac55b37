//! The closed world: shapes, colours, textures, sizes, and the fixed geometry of drawing them.
//!
//! All geometry is in *units*: the canvas is always [`CANVAS_UNITS`] units wide, whatever its
//! pixel resolution (32 px by default, 64 px optional), so a scene renders identically at both.

use serde::{Deserialize, Serialize};

/// The canvas side in units. One unit is one pixel at the default 32x32 resolution.
pub const CANVAS_UNITS: f32 = 32.0;
/// Side of a small object's bounding square, in units.
pub const SMALL_UNITS: f32 = 8.0;
/// Side of a large object's bounding square, in units.
pub const LARGE_UNITS: f32 = 13.0;
/// Fitted sizes below this (units) read as small, above as large.
pub const SIZE_THRESHOLD_UNITS: f32 = 10.5;
/// Period of stripes and of the dot grid, in units.
pub const PATTERN_PERIOD: f32 = 4.0;
/// Half-thickness of an ink stripe, in units.
pub const STRIPE_HALF_WIDTH: f32 = 0.8;
/// Radius of an ink dot, in units.
pub const DOT_RADIUS: f32 = 1.3;
/// Background colour (light grey).
pub const BACKGROUND: [f32; 3] = [0.96, 0.96, 0.96];
/// Ink used for stripes and dots (near black).
pub const INK: [f32; 3] = [0.12, 0.12, 0.12];

/// Stroke width of an outlined object, in units: thicker on large objects, thinner on the
/// narrow arms of a cross so that its inside still shows.
pub fn outline_stroke(shape: Shape, side: f32) -> f32 {
    match shape {
        Shape::Cross => (0.1 * side).max(1.0),
        // A triangle's inside is small: a thinner stroke keeps it open.
        Shape::Triangle => (0.12 * side).max(1.25),
        _ => (0.15 * side).max(1.25),
    }
}

macro_rules! word_enum {
    ($(#[$m:meta])* $name:ident { $($var:ident => $word:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "lowercase")]
        pub enum $name { $($var),+ }

        impl $name {
            /// Every value, in a fixed order.
            pub const ALL: &'static [$name] = &[$($name::$var),+];

            /// The word used in prompts.
            pub fn word(self) -> &'static str {
                match self { $($name::$var => $word),+ }
            }

            /// Parses the prompt word.
            pub fn from_word(w: &str) -> Option<Self> {
                match w { $($word => Some($name::$var),)+ _ => None }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.word())
            }
        }
    };
}

word_enum!(
    /// Object shape. Every shape is drawn inside an axis-aligned square of side `size`.
    Shape { Circle => "circle", Square => "square", Triangle => "triangle", Diamond => "diamond", Cross => "cross" }
);
word_enum!(
    /// Named colour with a fixed RGB value ([`Colour::rgb`]).
    Colour { Red => "red", Orange => "orange", Yellow => "yellow", Green => "green", Cyan => "cyan", Blue => "blue", Purple => "purple", Pink => "pink" }
);
word_enum!(
    /// Surface texture. `Solid` is the default and is called "plain" in prompts.
    Texture { Solid => "plain", Striped => "striped", Dotted => "dotted", Outline => "outlined" }
);
word_enum!(
    /// Object size: a small or large bounding square.
    Size { Small => "small", Large => "large" }
);

impl Shape {
    /// Plural noun.
    pub fn plural(self) -> &'static str {
        match self {
            Shape::Circle => "circles",
            Shape::Square => "squares",
            Shape::Triangle => "triangles",
            Shape::Diamond => "diamonds",
            Shape::Cross => "crosses",
        }
    }

    /// Parses a plural noun.
    pub fn from_plural(w: &str) -> Option<Self> {
        Shape::ALL.iter().copied().find(|s| s.plural() == w)
    }

    /// Number of corners of the drawn outline (used by arithmetic prompts).
    pub fn corners(self) -> u8 {
        match self {
            Shape::Circle => 0,
            Shape::Triangle => 3,
            Shape::Square | Shape::Diamond => 4,
            Shape::Cross => 12,
        }
    }

    /// Whether the point `(dx, dy)` (units, relative to the centre, y down) lies inside this
    /// shape drawn in a square of side `side`.
    pub fn contains(self, dx: f32, dy: f32, side: f32) -> bool {
        let h = side * 0.5;
        match self {
            Shape::Circle => dx * dx + dy * dy <= h * h,
            Shape::Square => dx.abs() <= h && dy.abs() <= h,
            // Apex at the top centre, base along the bottom edge.
            Shape::Triangle => dy >= -h && dy <= h && dx.abs() <= (dy + h) * 0.5,
            Shape::Diamond => dx.abs() + dy.abs() <= h,
            Shape::Cross => {
                let arm = side * 0.15;
                dx.abs() <= h && dy.abs() <= h && (dx.abs() <= arm || dy.abs() <= arm)
            }
        }
    }

    /// Fraction of the bounding square the shape covers.
    pub fn fill_fraction(self) -> f32 {
        match self {
            Shape::Circle => std::f32::consts::FRAC_PI_4,
            Shape::Square => 1.0,
            Shape::Triangle | Shape::Diamond => 0.5,
            Shape::Cross => 0.51,
        }
    }
}

impl Texture {
    /// Whether generated prompts use this texture on this shape: a cross's arms are too
    /// narrow at 32 px for an outline to leave any inside visible.
    pub fn suits(self, shape: Shape) -> bool {
        !(self == Texture::Outline && shape == Shape::Cross)
    }
}

impl Colour {
    /// The fixed sRGB value, components in [0, 1].
    pub fn rgb(self) -> [f32; 3] {
        match self {
            Colour::Red => [0.90, 0.12, 0.12],
            Colour::Orange => [1.00, 0.55, 0.00],
            Colour::Yellow => [0.98, 0.88, 0.10],
            Colour::Green => [0.15, 0.68, 0.20],
            Colour::Cyan => [0.10, 0.80, 0.85],
            Colour::Blue => [0.15, 0.30, 0.90],
            Colour::Purple => [0.55, 0.18, 0.75],
            Colour::Pink => [1.00, 0.45, 0.75],
        }
    }
}

impl Size {
    /// Side of the bounding square, in units.
    pub fn units(self) -> f32 {
        match self {
            Size::Small => SMALL_UNITS,
            Size::Large => LARGE_UNITS,
        }
    }

    /// The size class of a measured side (units).
    pub fn from_units(side: f32) -> Size {
        if side < SIZE_THRESHOLD_UNITS {
            Size::Small
        } else {
            Size::Large
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip() {
        for s in Shape::ALL {
            assert_eq!(Shape::from_word(s.word()), Some(*s));
            assert_eq!(Shape::from_plural(s.plural()), Some(*s));
        }
        for c in Colour::ALL {
            assert_eq!(Colour::from_word(c.word()), Some(*c));
        }
        assert_eq!(Texture::from_word("plain"), Some(Texture::Solid));
        assert_eq!(Colour::from_word("mauve"), None);
    }

    #[test]
    fn shapes_have_their_area() {
        // Monte-Carlo area of each shape inside its square matches the documented fraction.
        for s in Shape::ALL {
            let n = 200;
            let mut inside = 0;
            for i in 0..n {
                for j in 0..n {
                    let x = (i as f32 + 0.5) / n as f32 - 0.5;
                    let y = (j as f32 + 0.5) / n as f32 - 0.5;
                    inside += usize::from(s.contains(x, y, 1.0));
                }
            }
            let frac = inside as f32 / (n * n) as f32;
            assert!((frac - s.fill_fraction()).abs() < 0.01, "{s}: {frac}");
        }
    }

    #[test]
    fn palette_colours_are_far_apart() {
        for a in Colour::ALL {
            for b in Colour::ALL {
                if a < b {
                    let (x, y) = (a.rgb(), b.rgb());
                    let d: f32 = (0..3).map(|k| (x[k] - y[k]).powi(2)).sum::<f32>().sqrt();
                    assert!(d > 0.3, "{a} vs {b}: {d}");
                }
            }
        }
    }
}
