//! The run's `metrics.csv` and `loss_curve.png` (drawn here: a small line
//! plot of train and validation loss per epoch, no plotting dependency).

use std::path::Path;

const WIDTH: usize = 640;
const HEIGHT: usize = 400;
const MARGIN: usize = 40;

/// Writes `metrics.csv` and `loss_curve.png` into `dir`.
pub fn write_metrics(dir: &Path, curve: &[(usize, f64, f64)]) -> Result<(), String> {
    let mut csv = String::from("epoch,train_loss,valid_loss,valid_bits_per_byte\n");
    for (epoch, train, valid) in curve {
        csv += &format!(
            "{epoch},{train:.6},{valid:.6},{:.6}\n",
            valid / core::f64::consts::LN_2
        );
    }
    std::fs::write(dir.join("metrics.csv"), csv).map_err(|e| format!("metrics.csv: {e}"))?;
    let png = render(curve);
    std::fs::write(dir.join("loss_curve.png"), png).map_err(|e| format!("loss_curve.png: {e}"))
}

/// Writes `metrics.csv` with the total loss and every head's train and
/// validation means per epoch (`train_<name>`, `valid_<name>` columns), and
/// `loss_curve.png` of the total loss, into `dir`.
pub fn write_metrics_with_heads(
    dir: &Path,
    curve: &[(usize, f64, f64)],
    heads: &[(String, crate::run::Curve)],
) -> Result<(), String> {
    let mut csv = String::from("epoch,train_loss,valid_loss");
    for (name, _) in heads {
        csv += &format!(",train_{name},valid_{name}");
    }
    csv += "\n";
    for (epoch, train, valid) in curve {
        csv += &format!("{epoch},{train:.6},{valid:.6}");
        for (_, head) in heads {
            match head.iter().find(|h| h.0 == *epoch) {
                Some((_, t, v)) => csv += &format!(",{t:.6},{v:.6}"),
                None => csv += ",,",
            }
        }
        csv += "\n";
    }
    std::fs::write(dir.join("metrics.csv"), csv).map_err(|e| format!("metrics.csv: {e}"))?;
    std::fs::write(dir.join("loss_curve.png"), render(curve))
        .map_err(|e| format!("loss_curve.png: {e}"))
}

/// The loss curve as PNG bytes: train loss in blue, validation loss in red,
/// on axes from 0 to the largest loss.
pub fn render(curve: &[(usize, f64, f64)]) -> Vec<u8> {
    let mut pixels = vec![255u8; WIDTH * HEIGHT * 3];
    let mut set = |x: usize, y: usize, rgb: [u8; 3]| {
        if x < WIDTH && y < HEIGHT {
            pixels[(y * WIDTH + x) * 3..(y * WIDTH + x) * 3 + 3].copy_from_slice(&rgb);
        }
    };
    // Axes.
    for x in MARGIN..WIDTH - MARGIN / 2 {
        set(x, HEIGHT - MARGIN, [0, 0, 0]);
    }
    for y in MARGIN / 2..HEIGHT - MARGIN {
        set(MARGIN, y, [0, 0, 0]);
    }
    let max_loss = curve
        .iter()
        .flat_map(|c| [c.1, c.2])
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max)
        .max(1e-9);
    let last_epoch = curve.last().map(|c| c.0).unwrap_or(1).max(1) as f64;
    let first_epoch = curve.first().map(|c| c.0).unwrap_or(0) as f64;
    let span = (last_epoch - first_epoch).max(1.0);
    let to_px = |epoch: f64, loss: f64| -> (f64, f64) {
        let x = MARGIN as f64 + (epoch - first_epoch) / span * (WIDTH - 3 * MARGIN / 2) as f64;
        let y = (HEIGHT - MARGIN) as f64 - loss / max_loss * (HEIGHT - 3 * MARGIN / 2) as f64;
        (x, y)
    };
    // Horizontal grid lines at every nat.
    let mut nat = 1.0;
    while nat < max_loss {
        let (_, y) = to_px(first_epoch, nat);
        for x in (MARGIN..WIDTH - MARGIN / 2).step_by(4) {
            set(x, y as usize, [200, 200, 200]);
        }
        nat += 1.0;
    }
    for (series, rgb) in [(1usize, [40, 90, 220]), (2, [220, 50, 40])] {
        let points: Vec<(f64, f64)> = curve
            .iter()
            .map(|c| to_px(c.0 as f64, if series == 1 { c.1 } else { c.2 }))
            .collect();
        for pair in points.windows(2) {
            let ((x0, y0), (x1, y1)) = (pair[0], pair[1]);
            let steps = ((x1 - x0).abs().max((y1 - y0).abs()) as usize).max(1);
            for s in 0..=steps {
                let f = s as f64 / steps as f64;
                let (x, y) = (x0 + f * (x1 - x0), y0 + f * (y1 - y0));
                for dy in 0..2 {
                    set(x as usize, y as usize + dy, rgb);
                }
            }
        }
        for (x, y) in points {
            for dx in 0..5 {
                for dy in 0..5 {
                    set(
                        (x as usize + dx).saturating_sub(2),
                        (y as usize + dy).saturating_sub(2),
                        rgb,
                    );
                }
            }
        }
    }
    let mut out = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut out, WIDTH as u32, HEIGHT as u32);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().expect("in-memory PNG header");
        writer
            .write_image_data(&pixels)
            .expect("in-memory PNG data");
    }
    out
}
