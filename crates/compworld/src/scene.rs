//! Scenes: a plain background with 1 to 6 objects, drawn in order (later objects on top).

use serde::{Deserialize, Serialize};

use crate::world::{CANVAS_UNITS, Colour, Shape, Size, Texture};

/// Most objects a scene may hold.
pub const MAX_OBJECTS: usize = 6;

/// One object of a scene. Position is the centre of its bounding square, in units.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Object {
    pub shape: Shape,
    pub colour: Colour,
    pub texture: Texture,
    pub size: Size,
    /// Centre x in units (0 = left edge).
    pub x: f32,
    /// Centre y in units (0 = top edge).
    pub y: f32,
}

impl Object {
    /// Side of the bounding square in units.
    pub fn side(&self) -> f32 {
        self.size.units()
    }

    /// Bounding box `[x0, y0, x1, y1]` in units.
    pub fn bbox(&self) -> [f32; 4] {
        let h = self.side() * 0.5;
        [self.x - h, self.y - h, self.x + h, self.y + h]
    }

    /// Whether the point (units) is inside the object's shape.
    pub fn contains(&self, px: f32, py: f32) -> bool {
        self.shape.contains(px - self.x, py - self.y, self.side())
    }

    /// Whether the object lies wholly inside the canvas with `margin` units to spare.
    pub fn fits_canvas(&self, margin: f32) -> bool {
        let [x0, y0, x1, y1] = self.bbox();
        x0 >= margin && y0 >= margin && x1 <= CANVAS_UNITS - margin && y1 <= CANVAS_UNITS - margin
    }
}

/// Gap between two axis-aligned boxes (units): 0 when they touch or overlap.
pub fn bbox_gap(a: [f32; 4], b: [f32; 4]) -> f32 {
    let dx = (a[0] - b[2]).max(b[0] - a[2]).max(0.0);
    let dy = (a[1] - b[3]).max(b[1] - a[3]).max(0.0);
    (dx * dx + dy * dy).sqrt()
}

/// A scene: objects in drawing order (the last one is in front).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Scene {
    pub objects: Vec<Object>,
}

impl Scene {
    /// The front-most object whose shape covers the point `(x, y)` (units), if any. An
    /// outlined object covers its inside too: the point belongs to the object even where the
    /// background shows through.
    pub fn object_at(&self, x: f32, y: f32) -> Option<&Object> {
        self.objects.iter().rev().find(|o| o.contains(x, y))
    }

    /// Fraction of `back`'s shape area covered by `front`'s shape (sampled on a 0.25-unit grid).
    pub fn overlap_fraction(back: &Object, front: &Object) -> f32 {
        let [x0, y0, x1, y1] = back.bbox();
        let step = 0.25;
        let (mut inside, mut covered) = (0usize, 0usize);
        let mut y = y0 + step * 0.5;
        while y < y1 {
            let mut x = x0 + step * 0.5;
            while x < x1 {
                if back.contains(x, y) {
                    inside += 1;
                    covered += usize::from(front.contains(x, y));
                }
                x += step;
            }
            y += step;
        }
        if inside == 0 {
            0.0
        } else {
            covered as f32 / inside as f32
        }
    }
}
