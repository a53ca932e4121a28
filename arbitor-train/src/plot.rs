//! The run's loss curves, drawn with `plotters`: `loss_curve.png` and
//! `loss_curve.svg` in the run directory, one panel per logged series (the
//! total loss, then every head), each with the per-step train values (faint),
//! their moving average, and the per-epoch validation means, on labelled axes
//! with units, a legend and the run's name in the title.
//!
//! The labels are drawn with an embedded font (DejaVu Sans Mono,
//! `assets/DejaVuSansMono.ttf`, Bitstream Vera licence), so no system font
//! library is needed.

use std::{path::Path, sync::Once};

use plotters::{
    coord::Shift,
    prelude::*,
    style::{register_font, FontStyle},
};

use crate::logger::Series;

const FONT: &[u8] = include_bytes!("../assets/DejaVuSansMono.ttf");
const FAMILY: &str = "sans-serif";
const PANEL: (u32, u32) = (720, 440);
const TRAIN: RGBColor = RGBColor(40, 90, 200);
const VALID: RGBColor = RGBColor(210, 50, 40);

fn register() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The bytes are a valid TrueType font; a failure would only leave
        // the labels out, never the curves.
        let _ = register_font(FAMILY, FontStyle::Normal, FONT);
    });
}

/// A trailing moving average of `values` over `window` points (fewer at the start).
pub fn moving_average(values: &[f64], window: usize) -> Vec<f64> {
    let window = window.max(1);
    let mut out = Vec::with_capacity(values.len());
    let mut sum = 0.0;
    for (i, v) in values.iter().enumerate() {
        sum += v;
        if i >= window {
            sum -= values[i - window];
        }
        out.push(sum / (i + 1).min(window) as f64);
    }
    out
}

/// The smoothing window of a run of `steps` steps: about 1/40 of the run.
pub fn smoothing_window(steps: usize) -> usize {
    (steps / 40).clamp(1, 200)
}

/// Panels per row for `n` panels.
fn columns(n: usize) -> usize {
    match n {
        0..=1 => 1,
        2..=4 => 2,
        _ => 3,
    }
}

/// Writes `loss_curve.png` and `loss_curve.svg` of `series` into `dir`, titled `title`.
pub fn write_loss_curves(dir: &Path, title: &str, series: &[Series]) -> Result<(), String> {
    register();
    let cols = columns(series.len());
    let rows = series.len().div_ceil(cols).max(1);
    let size = (PANEL.0 * cols as u32, PANEL.1 * rows as u32 + 40);
    let png = dir.join("loss_curve.png");
    {
        let root = BitMapBackend::new(&png, size).into_drawing_area();
        draw(root, title, series, (rows, cols)).map_err(|e| format!("loss_curve.png: {e}"))?;
    }
    let svg = dir.join("loss_curve.svg");
    let root = SVGBackend::new(&svg, size).into_drawing_area();
    draw(root, title, series, (rows, cols)).map_err(|e| format!("loss_curve.svg: {e}"))
}

fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    title: &str,
    series: &[Series],
    grid: (usize, usize),
) -> Result<(), String> {
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(err)?;
    let body = root.titled(title, (FAMILY, 24).into_font()).map_err(err)?;
    for (panel, s) in body.split_evenly(grid).into_iter().zip(series) {
        draw_panel(&panel, s).map_err(err)?;
    }
    root.present().map_err(err)
}

/// The y range of a panel: every smoothed and validation value, and the raw
/// values between their 1st and 99th percentile (a rare spike does not
/// flatten the curve), padded by 5%.
fn y_range(train: &[f64], smooth: &[f64], valid: &[f64]) -> (f64, f64) {
    let mut raw: Vec<f64> = train.iter().copied().filter(|v| v.is_finite()).collect();
    raw.sort_by(f64::total_cmp);
    let pick = |q: f64| {
        raw.get(((raw.len() as f64 - 1.0) * q).round() as usize)
            .copied()
    };
    let values = smooth
        .iter()
        .chain(valid)
        .copied()
        .chain(pick(0.01))
        .chain(pick(0.99))
        .filter(|v| v.is_finite());
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.05).max(1e-6 * hi.abs().max(1.0));
    (lo - pad, hi + pad)
}

/// Decimals of the y labels of a range `span` wide (about 8 labels).
fn label_decimals(span: f64) -> usize {
    (1.0 - (span / 8.0).log10().floor()).clamp(0.0, 5.0) as usize
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    s: &Series,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let steps: Vec<f64> = s.train.iter().map(|p| p.0 as f64).collect();
    let raw: Vec<f64> = s.train.iter().map(|p| p.2).collect();
    let smooth = moving_average(&raw, smoothing_window(raw.len()));
    let valid: Vec<f64> = s.valid.iter().map(|p| p.2).collect();
    let last = steps
        .last()
        .copied()
        .unwrap_or(1.0)
        .max(s.valid.last().map(|v| v.0 as f64).unwrap_or(1.0));
    let (lo, hi) = y_range(&raw, &smooth, &valid);
    let decimals = label_decimals(hi - lo);
    let mut chart = ChartBuilder::on(area)
        .caption(&s.name, (FAMILY, 18).into_font())
        .margin(12)
        .x_label_area_size(42)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..last, lo..hi)?;
    let y_desc = if s.unit.is_empty() {
        s.name.clone()
    } else {
        format!("{} ({})", s.name, s.unit)
    };
    chart
        .configure_mesh()
        .x_desc("step")
        .y_desc(y_desc)
        .x_labels(8)
        .y_labels(8)
        .label_style((FAMILY, 13))
        .axis_desc_style((FAMILY, 14))
        .light_line_style(RGBColor(235, 235, 235))
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.decimals$}"))
        .draw()?;
    let finite = |x: f64, y: f64| y.is_finite().then_some((x, y));
    chart
        .draw_series(LineSeries::new(
            steps.iter().zip(&raw).filter_map(|(x, y)| finite(*x, *y)),
            TRAIN.mix(0.2),
        ))?
        .label("train, per step")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], TRAIN.mix(0.2)));
    let window = smoothing_window(raw.len());
    chart
        .draw_series(LineSeries::new(
            steps
                .iter()
                .zip(&smooth)
                .filter_map(|(x, y)| finite(*x, *y)),
            TRAIN.stroke_width(2),
        ))?
        .label(format!("train, mean of {window} steps"))
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], TRAIN.stroke_width(2)));
    let valid_points: Vec<(f64, f64)> = s
        .valid
        .iter()
        .filter_map(|p| finite(p.0 as f64, p.2))
        .collect();
    chart
        .draw_series(LineSeries::new(
            valid_points.iter().copied(),
            VALID.stroke_width(2),
        ))?
        .label("validation, per epoch")
        .legend(|(x, y)| {
            EmptyElement::at((x + 10, y))
                + Circle::new((0, 0), 4, VALID.filled())
                + PathElement::new([(-10, 0), (10, 0)], VALID.stroke_width(2))
        });
    chart.draw_series(
        valid_points
            .iter()
            .map(|p| Circle::new(*p, 4, VALID.filled())),
    )?;
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font((FAMILY, 13))
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(180, 180, 180))
        .draw()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_have_the_decimals_their_range_needs() {
        assert_eq!(label_decimals(12.0), 1);
        assert_eq!(label_decimals(0.08), 3);
        assert_eq!(label_decimals(800.0), 0);
    }

    #[test]
    fn moving_average_of_a_step() {
        let avg = moving_average(&[0.0, 0.0, 4.0, 4.0, 4.0], 2);
        assert_eq!(avg, vec![0.0, 0.0, 2.0, 4.0, 4.0]);
    }

    #[test]
    fn writes_png_and_svg_with_labels() {
        let dir = std::env::temp_dir().join(format!("arbitor-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let series = Series {
            name: "Loss".into(),
            unit: "nats/byte".into(),
            train: (1..=100)
                .map(|s| (s, 1 + (s - 1) / 50, 5.0 / (s as f64).sqrt()))
                .collect(),
            valid: vec![(50, 1, 1.0), (100, 2, 0.7)],
        };
        write_loss_curves(&dir, "test run", &[series]).unwrap();
        let png = std::fs::read(dir.join("loss_curve.png")).unwrap();
        assert_eq!(&png[1..4], b"PNG");
        let svg = std::fs::read_to_string(dir.join("loss_curve.svg")).unwrap();
        for text in ["test run", "nats/byte", "validation, per epoch", "step"] {
            assert!(svg.contains(text), "{text} in the SVG");
        }
        std::fs::remove_dir_all(dir).unwrap();
    }
}
