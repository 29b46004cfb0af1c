//! PNG charts: loss curves, embedding scatter plots and distance histograms (montages and image
//! grids are in `montage`; the canvas, font, colours and PNG writing in `canvas`).

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor;

use crate::{Error, Result};

use super::canvas::{class_colour, draw_error, render, UNKNOWN_GREY};

/// Size of [`loss_curves_png`] and [`histogram_png`] figures.
pub const CHART_SIZE: (u32, u32) = (1000, 650);
/// Size of [`scatter_png`] figures (the right 220 px hold the legend).
pub const SCATTER_SIZE: (u32, u32) = (1220, 1000);

/// Padded (lo, hi) over finite values, never empty.
fn padded_range(values: impl Iterator<Item = f64>, pad: f64) -> Option<(f64, f64)> {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if lo > hi {
        return None;
    }
    let span = if hi > lo { hi - lo } else { lo.abs().max(1.0) };
    Some((lo - pad * span, hi + pad * span))
}

/// Training and validation loss per epoch (epochs 1, 2, … on x). `val` may be empty.
pub fn loss_curves_png(
    path: impl AsRef<Path>,
    train: &[f64],
    val: &[f64],
    title: &str,
) -> Result<()> {
    let path = path.as_ref();
    let (y_lo, y_hi) = padded_range(train.iter().chain(val).copied(), 0.06)
        .ok_or_else(|| Error::config("loss curves", "no finite loss value to plot"))?;
    let epochs = train.len().max(val.len()) as i32;
    let x_range = if epochs >= 2 { 1..epochs } else { 0..2 };
    render(path, CHART_SIZE, |root| {
        let err = |e| draw_error(path, e);
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 30))
            .margin(20)
            .x_label_area_size(55)
            .y_label_area_size(80)
            .build_cartesian_2d(x_range, y_lo..y_hi)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("epoch")
            .y_desc("loss")
            .axis_desc_style(("sans-serif", 22))
            .label_style(("sans-serif", 18))
            .x_labels(epochs.clamp(2, 12) as usize)
            .y_label_formatter(&|v| format!("{v:.3}"))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(err)?;
        for (values, name, colour) in [
            (train, "train", class_colour(0)),
            (val, "validation", class_colour(1)),
        ] {
            if values.is_empty() {
                continue;
            }
            let series: Vec<(i32, f64)> = values
                .iter()
                .enumerate()
                .filter(|(_, v)| v.is_finite())
                .map(|(i, &v)| (i as i32 + 1, v))
                .collect();
            chart
                .draw_series(LineSeries::new(
                    series.iter().copied(),
                    colour.stroke_width(3),
                ))
                .map_err(err)?
                .label(name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 28, y)], colour.stroke_width(3))
                });
            chart
                .draw_series(series.iter().map(|&p| Circle::new(p, 4, colour.filled())))
                .map_err(err)?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 20))
            .draw()
            .map_err(err)
    })
}

/// Most classes whose names are written at their cluster centres.
const MAX_CENTRE_LABELS: usize = 20;

/// A tick label with as many decimals as the axis span needs.
fn tick(v: f64, span: f64) -> String {
    match span {
        s if s >= 20.0 => format!("{v:.0}"),
        s if s >= 2.0 => format!("{v:.1}"),
        s if s >= 0.2 => format!("{v:.2}"),
        _ => format!("{v:.3}"),
    }
}

/// Median of a non-empty list (sorts it).
fn median(values: &mut [f32]) -> f32 {
    values.sort_unstable_by(f32::total_cmp);
    values[values.len() / 2]
}

/// Text with a white halo, centred on `at` (pixel coordinates).
fn halo_text<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    text: &str,
    at: (i32, i32),
    size: u32,
) -> Result<(), String> {
    let style = TextStyle::from(("sans-serif", size).into_font()).pos(text_anchor::Pos::new(
        text_anchor::HPos::Center,
        text_anchor::VPos::Center,
    ));
    for (dx, dy) in [
        (-2, 0),
        (2, 0),
        (0, -2),
        (0, 2),
        (-1, -1),
        (1, 1),
        (-1, 1),
        (1, -1),
    ] {
        area.draw(&Text::new(
            text.to_string(),
            (at.0 + dx, at.1 + dy),
            style.color(&WHITE),
        ))
        .map_err(|e| e.to_string())?;
    }
    area.draw(&Text::new(text.to_string(), at, style.color(&BLACK)))
        .map_err(|e| e.to_string())
}

/// 2-D embedding coloured by class, each class's name at its median point (up to 20 classes),
/// unknowns (if any) in grey on top, and a legend on the right. `labels[i]` indexes `class_names` (a label past
/// its end is shown as its number).
pub fn scatter_png(
    path: impl AsRef<Path>,
    points: &[[f32; 2]],
    labels: &[u32],
    class_names: &[String],
    unknown_points: Option<&[[f32; 2]]>,
    title: &str,
) -> Result<()> {
    let path = path.as_ref();
    if points.len() != labels.len() {
        return Err(Error::config(
            "scatter plot",
            format!("{} points but {} labels", points.len(), labels.len()),
        ));
    }
    let unknown = unknown_points.unwrap_or(&[]);
    let all = || points.iter().chain(unknown);
    let (x_lo, x_hi) = padded_range(all().map(|p| f64::from(p[0])), 0.04)
        .ok_or_else(|| Error::config("scatter plot", "no finite point to plot"))?;
    let (y_lo, y_hi) = padded_range(all().map(|p| f64::from(p[1])), 0.04).unwrap_or((0.0, 1.0));
    let mut classes: Vec<u32> = labels.to_vec();
    classes.sort_unstable();
    classes.dedup();
    let name = |l: u32| {
        class_names
            .get(l as usize)
            .cloned()
            .unwrap_or_else(|| l.to_string())
    };
    let colour_of = |l: u32| class_colour(classes.binary_search(&l).unwrap_or(0));
    let total = points.len() + unknown.len();
    let radius = if total <= 2_000 {
        3
    } else if total <= 20_000 {
        2
    } else {
        1
    };
    // An interleaved drawing order keeps one class from always covering the others.
    let mut order: Vec<usize> = (0..points.len()).collect();
    order.sort_by_key(|&i| {
        (i as u64)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .rotate_left(17)
    });

    render(path, SCATTER_SIZE, |root| {
        let err = |e| draw_error(path, e);
        let (plot_area, legend_area) = root.split_horizontally(SCATTER_SIZE.0 - 220);
        let mut chart = ChartBuilder::on(&plot_area)
            .caption(title, ("sans-serif", 30))
            .margin(20)
            .x_label_area_size(50)
            .y_label_area_size(70)
            .build_cartesian_2d(x_lo..x_hi, y_lo..y_hi)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("axis 1")
            .y_desc("axis 2")
            .axis_desc_style(("sans-serif", 20))
            .label_style(("sans-serif", 16))
            .x_label_formatter(&|v| tick(*v, x_hi - x_lo))
            .y_label_formatter(&|v| tick(*v, y_hi - y_lo))
            .light_line_style(RGBColor(240, 240, 240))
            .draw()
            .map_err(err)?;
        chart
            .draw_series(order.iter().map(|&i| {
                let p = points[i];
                Circle::new(
                    (f64::from(p[0]), f64::from(p[1])),
                    radius,
                    colour_of(labels[i]).mix(0.7).filled(),
                )
            }))
            .map_err(err)?;
        chart
            .draw_series(unknown.iter().map(|p| {
                Circle::new(
                    (f64::from(p[0]), f64::from(p[1])),
                    radius,
                    UNKNOWN_GREY.mix(0.55).filled(),
                )
            }))
            .map_err(err)?;
        // Class names at their medians (robust to stray points), drawn last so they stay
        // readable; past 20 classes they would bury the points, so the legend alone names them.
        for &c in classes
            .iter()
            .filter(|_| classes.len() <= MAX_CENTRE_LABELS)
        {
            let (mut xs, mut ys): (Vec<f32>, Vec<f32>) = points
                .iter()
                .zip(labels)
                .filter(|(_, &l)| l == c)
                .map(|(p, _)| (p[0], p[1]))
                .unzip();
            let at = chart.backend_coord(&(f64::from(median(&mut xs)), f64::from(median(&mut ys))));
            let size = if classes.len() <= 10 { 30 } else { 22 };
            halo_text(&plot_area, &name(c), at, size).map_err(|e| draw_error(path, e))?;
        }
        draw_legend(&legend_area, &classes, &name, !unknown.is_empty())
            .map_err(|e| draw_error(path, e))
    })
}

/// Legend panel: a coloured dot and the name of each class (as many as fit), then "unknown".
fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    classes: &[u32],
    name: &dyn Fn(u32) -> String,
    with_unknown: bool,
) -> Result<(), String> {
    let row = 26i32;
    let top = 80i32;
    let rows_free = ((area.dim_in_pixel().1 as i32 - top - 20) / row).max(1) as usize;
    let mut entries: Vec<(String, RGBColor)> = Vec::new();
    if with_unknown {
        entries.push(("unknown".into(), UNKNOWN_GREY));
    }
    let room = rows_free.saturating_sub(entries.len());
    let shown = if classes.len() > room {
        room.saturating_sub(1)
    } else {
        classes.len()
    };
    for (i, &c) in classes.iter().enumerate().take(shown) {
        entries.insert(
            entries.len() - usize::from(with_unknown),
            (name(c), class_colour(i)),
        );
    }
    let style = TextStyle::from(("sans-serif", 18).into_font()).pos(text_anchor::Pos::new(
        text_anchor::HPos::Left,
        text_anchor::VPos::Center,
    ));
    area.draw(&Text::new(
        "classes",
        (16, top - 30),
        ("sans-serif", 20).into_font(),
    ))
    .map_err(|e| e.to_string())?;
    for (k, (label, colour)) in entries.iter().enumerate() {
        let y = top + k as i32 * row;
        area.draw(&Circle::new((24, y), 7, colour.filled()))
            .map_err(|e| e.to_string())?;
        let mut text = label.clone();
        if text.chars().count() > 18 {
            text = text.chars().take(17).collect::<String>() + "…";
        }
        area.draw(&Text::new(text, (40, y), style.clone()))
            .map_err(|e| e.to_string())?;
    }
    if shown < classes.len() {
        let y = top + entries.len() as i32 * row;
        area.draw(&Text::new(
            format!("… {} more", classes.len() - shown),
            (16, y),
            style,
        ))
        .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Two overlaid translucent histograms (each normalised to fractions of its own set, so sets
/// of different sizes compare) and an optional vertical threshold line.
pub fn histogram_png(
    path: impl AsRef<Path>,
    known: &[f32],
    unknown: &[f32],
    threshold: Option<f32>,
    labels: (&str, &str),
    title: &str,
) -> Result<()> {
    const BINS: usize = 60;
    let path = path.as_ref();
    let values = || known.iter().chain(unknown).map(|&v| f64::from(v));
    let (lo, hi) = padded_range(values().chain(threshold.map(f64::from)), 0.0)
        .ok_or_else(|| Error::config("histogram", "no finite value to plot"))?;
    let width = (hi - lo) / BINS as f64;
    let fractions = |set: &[f32]| {
        let mut bins = vec![0f64; BINS];
        let finite: Vec<f64> = set
            .iter()
            .map(|&v| f64::from(v))
            .filter(|v| v.is_finite())
            .collect();
        for v in &finite {
            bins[(((v - lo) / width) as usize).min(BINS - 1)] += 1.0 / finite.len() as f64;
        }
        bins
    };
    let (known_bins, unknown_bins) = (fractions(known), fractions(unknown));
    let y_hi = known_bins
        .iter()
        .chain(&unknown_bins)
        .copied()
        .fold(0.0, f64::max)
        .max(1e-3)
        * 1.12;
    let x_pad = 0.02 * (hi - lo);
    render(path, CHART_SIZE, |root| {
        let err = |e| draw_error(path, e);
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 30))
            .margin(20)
            .x_label_area_size(55)
            .y_label_area_size(80)
            .build_cartesian_2d(lo - x_pad..hi + x_pad, 0.0..y_hi)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("score (distance; higher = more likely unknown)")
            .y_desc("fraction of samples")
            .axis_desc_style(("sans-serif", 22))
            .label_style(("sans-serif", 18))
            .y_label_formatter(&|v| format!("{v:.2}"))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(err)?;
        for (bins, name, colour, count) in [
            (&known_bins, labels.0, class_colour(0), known.len()),
            (&unknown_bins, labels.1, class_colour(3), unknown.len()),
        ] {
            if count == 0 {
                continue;
            }
            chart
                .draw_series(
                    bins.iter()
                        .enumerate()
                        .filter(|(_, &f)| f > 0.0)
                        .map(|(b, &f)| {
                            let x0 = lo + b as f64 * width;
                            Rectangle::new([(x0, 0.0), (x0 + width, f)], colour.mix(0.45).filled())
                        }),
                )
                .map_err(err)?
                .label(format!("{name} (n = {count})"))
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 7), (x + 24, y + 7)], colour.mix(0.6).filled())
                });
        }
        if let Some(t) = threshold.filter(|t| t.is_finite()) {
            let t = f64::from(t);
            chart
                .draw_series(DashedLineSeries::new(
                    vec![(t, 0.0), (t, y_hi)],
                    10,
                    6,
                    BLACK.stroke_width(3),
                ))
                .map_err(err)?
                .label(format!("threshold {t:.3}"))
                .legend(|(x, y)| {
                    PathElement::new(vec![(x, y), (x + 24, y)], BLACK.stroke_width(3))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 20))
            .draw()
            .map_err(err)
    })
}
