//! Synthetic video: squares and discs moving with constant velocity on a
//! torus (they leave one edge and come back at the other), rendered straight
//! into `[channels, height, width]` latents. Seeded and deterministic.
//!
//! Each shape has one of [`PALETTE`] colours, a fixed ±1 pattern over the
//! channels, so a latent pixel covered by a shape is that pattern (times the
//! shape's antialiased coverage) and the background is zero. A scene's
//! *descriptor* (what conditions the video head) lists, per shape slot,
//! whether it is used, its position and velocity, size, kind and colour.

use rand::{rngs::SmallRng, Rng, SeedableRng};

/// Number of shape colours.
pub const PALETTE: usize = 4;
/// Descriptor values per shape slot: present, x, y, vx, vy, size, is-disc,
/// and a one-hot colour.
pub const SLOT_WIDTH: usize = 7 + PALETTE;

/// The kind of a shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShapeKind {
    /// An axis-aligned square of side `2·size`.
    Square,
    /// A disc of radius `size`.
    Disc,
}

/// One moving shape; positions and sizes are in pixels.
#[derive(Clone, Debug, PartialEq)]
pub struct Shape {
    /// Square or disc.
    pub kind: ShapeKind,
    /// Centre at frame 0.
    pub x: f32,
    /// See `x`.
    pub y: f32,
    /// Velocity, pixels per frame.
    pub vx: f32,
    /// See `vx`.
    pub vy: f32,
    /// Half-side or radius.
    pub size: f32,
    /// Index into the palette.
    pub colour: usize,
}

/// A scene: shapes seen at one frame.
#[derive(Clone, Debug, PartialEq)]
pub struct Scene {
    /// The shapes (1 to `max_shapes`).
    pub shapes: Vec<Shape>,
    /// The frame at which the scene is seen.
    pub frame: usize,
}

/// The generator: latent geometry and scene statistics.
#[derive(Clone, Debug)]
pub struct MovingShapes {
    /// Latent channels.
    pub channels: usize,
    /// Latent height.
    pub height: usize,
    /// Latent width.
    pub width: usize,
    /// Most shapes per scene.
    pub max_shapes: usize,
    /// Frames per clip (scenes are seen at a frame in `0..clip_frames`).
    pub clip_frames: usize,
    palette: Vec<Vec<f32>>,
}

impl MovingShapes {
    /// A generator; the palette is fixed (the same for every seed).
    pub fn new(
        channels: usize,
        height: usize,
        width: usize,
        max_shapes: usize,
        clip_frames: usize,
    ) -> Self {
        let mut rng = SmallRng::seed_from_u64(0x5_4a9e5);
        let palette = (0..PALETTE)
            .map(|_| {
                (0..channels)
                    .map(|_| if rng.random::<bool>() { 1.0 } else { -1.0 })
                    .collect()
            })
            .collect();
        Self {
            channels,
            height,
            width,
            max_shapes,
            clip_frames,
            palette,
        }
    }

    /// Width of a scene descriptor: one value for the frame, then
    /// [`SLOT_WIDTH`] per shape slot.
    pub fn descriptor_width(&self) -> usize {
        1 + SLOT_WIDTH * self.max_shapes
    }

    /// Values per latent, `channels · height · width`.
    pub fn latent_len(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// A random scene.
    pub fn scene(&self, rng: &mut SmallRng) -> Scene {
        let small = self.height.min(self.width) as f32;
        let count = rng.random_range(1..=self.max_shapes.max(1));
        let shapes = (0..count)
            .map(|_| {
                let speed = small / 16.0;
                Shape {
                    kind: if rng.random::<bool>() {
                        ShapeKind::Square
                    } else {
                        ShapeKind::Disc
                    },
                    x: rng.random_range(0.0..self.width as f32),
                    y: rng.random_range(0.0..self.height as f32),
                    vx: rng.random_range(-speed..=speed),
                    vy: rng.random_range(-speed..=speed),
                    size: rng.random_range(small / 8.0..=small / 4.0).max(1.0),
                    colour: rng.random_range(0..PALETTE),
                }
            })
            .collect();
        Scene {
            shapes,
            frame: rng.random_range(0..self.clip_frames.max(1)),
        }
    }

    /// Shortest signed offset from `a` to `b` on a circle of length `n`.
    fn wrap(d: f32, n: f32) -> f32 {
        d - n * (d / n).round()
    }

    /// Coverage (0..1, antialiased over one pixel) of pixel `(px, py)` by `shape` at `frame`.
    fn coverage(&self, shape: &Shape, frame: usize, px: f32, py: f32) -> f32 {
        let (w, h) = (self.width as f32, self.height as f32);
        let cx = (shape.x + shape.vx * frame as f32).rem_euclid(w);
        let cy = (shape.y + shape.vy * frame as f32).rem_euclid(h);
        let dx = Self::wrap(px + 0.5 - cx, w);
        let dy = Self::wrap(py + 0.5 - cy, h);
        let distance = match shape.kind {
            ShapeKind::Square => dx.abs().max(dy.abs()),
            ShapeKind::Disc => (dx * dx + dy * dy).sqrt(),
        };
        (shape.size + 0.5 - distance).clamp(0.0, 1.0)
    }

    /// The latent of `scene`, `[channels, height, width]` channel-major.
    pub fn render(&self, scene: &Scene) -> Vec<f32> {
        let plane = self.height * self.width;
        let mut out = vec![0f32; self.channels * plane];
        for shape in &scene.shapes {
            let colour = &self.palette[shape.colour];
            for py in 0..self.height {
                for px in 0..self.width {
                    let c = self.coverage(shape, scene.frame, px as f32, py as f32);
                    if c > 0.0 {
                        for (ch, v) in colour.iter().enumerate() {
                            out[ch * plane + py * self.width + px] += c * v;
                        }
                    }
                }
            }
        }
        out
    }

    /// The descriptor of `scene` (see the module docs), [`descriptor_width`](Self::descriptor_width) values.
    pub fn descriptor(&self, scene: &Scene) -> Vec<f32> {
        let (w, h) = (self.width as f32, self.height as f32);
        let mut out = vec![0f32; self.descriptor_width()];
        out[0] = scene.frame as f32 / self.clip_frames.max(1) as f32;
        for (slot, shape) in scene.shapes.iter().take(self.max_shapes).enumerate() {
            let d = &mut out[1 + slot * SLOT_WIDTH..1 + (slot + 1) * SLOT_WIDTH];
            let cx = (shape.x + shape.vx * scene.frame as f32).rem_euclid(w);
            let cy = (shape.y + shape.vy * scene.frame as f32).rem_euclid(h);
            d[0] = 1.0;
            d[1] = cx / w * 2.0 - 1.0;
            d[2] = cy / h * 2.0 - 1.0;
            d[3] = shape.vx;
            d[4] = shape.vy;
            d[5] = shape.size / h.min(w) * 4.0;
            d[6] = if shape.kind == ShapeKind::Disc {
                1.0
            } else {
                -1.0
            };
            d[7 + shape.colour] = 1.0;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenes_are_seeded_and_move_with_constant_velocity() {
        let shapes = MovingShapes::new(16, 16, 16, 2, 16);
        let a = shapes.scene(&mut SmallRng::seed_from_u64(3));
        let b = shapes.scene(&mut SmallRng::seed_from_u64(3));
        assert_eq!(a, b);
        assert_eq!(shapes.render(&a), shapes.render(&b));
        // A square moving one pixel per frame to the right: its latent shifts by one column.
        let square = Shape {
            kind: ShapeKind::Square,
            x: 8.0,
            y: 8.0,
            vx: 1.0,
            vy: 0.0,
            size: 2.0,
            colour: 1,
        };
        let at = |frame| {
            shapes.render(&Scene {
                shapes: vec![square.clone()],
                frame,
            })
        };
        let (f0, f3) = (at(0), at(3));
        for ch in 0..16 {
            for y in 0..16 {
                for x in 0..16 {
                    let i = |x: usize| ch * 256 + y * 16 + x;
                    assert_eq!(f3[i((x + 3) % 16)], f0[i(x)], "channel {ch} at ({x}, {y})");
                }
            }
        }
        // Covered pixels carry the colour pattern; the rest is zero.
        let covered = (0..256).filter(|p| f0[*p] != 0.0).count();
        assert_eq!(covered, 16, "a 4×4 square");
        assert_eq!(shapes.descriptor(&a).len(), 1 + 2 * SLOT_WIDTH);
    }

    #[test]
    fn shapes_wrap_around_the_edges() {
        let shapes = MovingShapes::new(1, 8, 8, 1, 8);
        let disc = Shape {
            kind: ShapeKind::Disc,
            x: 7.5,
            y: 4.0,
            vx: 0.0,
            vy: 0.0,
            size: 1.5,
            colour: 0,
        };
        let f = shapes.render(&Scene {
            shapes: vec![disc],
            frame: 0,
        });
        assert!(
            f[3 * 8 + 7] != 0.0 && f[3 * 8] != 0.0,
            "both edges are covered"
        );
    }
}
