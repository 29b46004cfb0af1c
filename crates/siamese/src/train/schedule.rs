//! The learning-rate schedule of a training run (cosine decay to 5 %) and its per-epoch
//! progress bar.

use indicatif::{ProgressBar, ProgressStyle};

/// Cosine decay from `base` to 5 % of it over the run.
pub fn cosine_lr(base: f64, step: usize, total: usize) -> f64 {
    let t = step as f64 / total.max(1) as f64;
    let floor = 0.05 * base;
    floor + (base - floor) * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
}

pub fn progress_bar(show: bool, len: usize, epoch: usize, epochs: usize) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len as u64);
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} ({eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_prefix(format!("epoch {epoch}/{epochs}"));
    bar
}
