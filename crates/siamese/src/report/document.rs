//! The report as data: stages with their status, time, metric tables and figures, plus the
//! command line and versions. Serialised as `report.json` and rendered as `index.html`
//! ([`super::html`]); both are written atomically by [`super::files::write_report`].

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// burn's version: pinned with `=` in the library's Cargo.toml (a test checks the lock file).
pub const BURN_VERSION: &str = "0.22.1";
/// The report's JSON file name inside the report folder.
pub const REPORT_JSON: &str = "report.json";
/// The report's HTML file name inside the report folder.
pub const REPORT_HTML: &str = "index.html";

/// Outcome of one stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StageStatus {
    Ok,
    Failed,
    Skipped,
}

impl StageStatus {
    pub fn name(self) -> &'static str {
        match self {
            StageStatus::Ok => "ok",
            StageStatus::Failed => "failed",
            StageStatus::Skipped => "skipped",
        }
    }
}

/// A table of figures: a caption, column headers and rows of already formatted cells.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Table {
    pub caption: String,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(caption: impl Into<String>, columns: &[&str]) -> Self {
        Table {
            caption: caption.into(),
            columns: columns.iter().map(|c| c.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// Appends a row (shorter rows are padded with empty cells when rendered).
    pub fn row<S: ToString>(&mut self, cells: impl IntoIterator<Item = S>) -> &mut Self {
        self.rows
            .push(cells.into_iter().map(|c| c.to_string()).collect());
        self
    }
}

/// A PNG in the report folder, linked relatively.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Figure {
    /// File name relative to the report folder (no `..`, no absolute path).
    pub file: String,
    pub caption: String,
    /// Pixel size of the PNG (written into `<img>` so the layout does not jump).
    pub width: u32,
    pub height: u32,
}

/// One headline number shown at the top of the page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Headline {
    pub label: String,
    /// Formatted value, e.g. `99.31 %`.
    pub value: String,
    /// What it was measured on.
    pub detail: String,
}

/// One stage of the demo.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageRecord {
    /// Short machine name (`train-mnist`).
    pub id: String,
    /// Human title (`Train the embedding CNN on MNIST`).
    pub title: String,
    pub status: StageStatus,
    /// Wall time, seconds.
    pub seconds: f64,
    /// The error message of a failed stage (one line), or why it was skipped.
    pub error: Option<String>,
    /// A sentence or two saying what the stage did.
    pub summary: Vec<String>,
    pub tables: Vec<Table>,
    pub figures: Vec<Figure>,
    /// The stage's numbers as JSON (for scripts reading `report.json`).
    pub metrics: serde_json::Map<String, serde_json::Value>,
}

impl StageRecord {
    pub fn new(id: &str, title: &str) -> Self {
        StageRecord {
            id: id.to_string(),
            title: title.to_string(),
            status: StageStatus::Ok,
            seconds: 0.0,
            error: None,
            summary: Vec::new(),
            tables: Vec::new(),
            figures: Vec::new(),
            metrics: serde_json::Map::new(),
        }
    }
}

/// Versions of what produced the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Versions {
    pub siamese: String,
    pub burn: String,
    /// `rustc --version`, when a compiler is on the PATH.
    pub rustc: Option<String>,
    pub os: String,
    pub arch: String,
    /// Logical CPUs seen by the process.
    pub cpus: usize,
}

impl Versions {
    /// The versions of this build and machine.
    pub fn detect() -> Self {
        let rustc = std::process::Command::new(std::env::var_os("RUSTC").unwrap_or("rustc".into()))
            .arg("--version")
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .filter(|s| !s.is_empty());
        Versions {
            siamese: env!("CARGO_PKG_VERSION").to_string(),
            burn: BURN_VERSION.to_string(),
            rustc,
            os: std::env::consts::OS.to_string(),
            arch: std::env::consts::ARCH.to_string(),
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

/// The whole report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub title: String,
    /// The exact command line, shell-quoted.
    pub command_line: String,
    /// UTC start time, `YYYY-MM-DD HH:MM:SS UTC`.
    pub started_utc: String,
    pub quick: bool,
    pub seed: u64,
    pub versions: Versions,
    /// Wall time of the whole demo, seconds.
    pub total_seconds: f64,
    pub headlines: Vec<Headline>,
    pub stages: Vec<StageRecord>,
}

impl Report {
    /// Stages that failed.
    pub fn failed(&self) -> impl Iterator<Item = &StageRecord> {
        self.stages
            .iter()
            .filter(|s| s.status == StageStatus::Failed)
    }

    /// Checks that every figure is a plain relative file name present in `dir`.
    pub fn check_figures(&self, dir: &Path) -> Result<()> {
        for stage in &self.stages {
            for fig in &stage.figures {
                let safe = !fig.file.is_empty()
                    && !fig.file.contains("..")
                    && !fig.file.starts_with('/')
                    && !fig.file.contains('\\');
                if !safe {
                    return Err(Error::config(
                        "figure",
                        format!("`{}` is not a file name inside the report folder", fig.file),
                    ));
                }
                if !dir.join(&fig.file).is_file() {
                    return Err(Error::format(
                        dir.join(&fig.file),
                        "figure missing from the report folder",
                    ));
                }
            }
        }
        Ok(())
    }
}

/// `secs` since the Unix epoch as `YYYY-MM-DD HH:MM:SS UTC` (civil-from-days, proleptic
/// Gregorian), so no date crate is needed.
pub fn format_utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// The current time as [`format_utc`] text.
pub fn now_utc() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format_utc(secs)
}

/// Quotes one argument for a POSIX shell when it needs it.
pub fn shell_quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
    if plain {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

/// The process's command line, shell-quoted (the program as the user typed it).
pub fn command_line() -> String {
    std::env::args()
        .map(|a| shell_quote(&a))
        .collect::<Vec<_>>()
        .join(" ")
}
