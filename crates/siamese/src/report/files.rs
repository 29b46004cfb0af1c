//! The report folder on disk: `report.json` and `index.html` written atomically (figures
//! checked first), and `report.json` read back.

use std::path::Path;

use super::document::{Report, REPORT_HTML, REPORT_JSON};
use super::html::render;
use crate::output::write_atomic;
use crate::{Error, Result};

/// Writes `report.json` and `index.html` into `dir` (each atomically; the HTML last, so a page
/// that exists always has its JSON beside it).
pub fn write_report(dir: &Path, report: &Report) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    report.check_figures(dir)?;
    let json = serde_json::to_string_pretty(report).map_err(|e| Error::Other(e.to_string()))?;
    write_atomic(&dir.join(REPORT_JSON), json.as_bytes())?;
    let html = render(report);
    write_atomic(&dir.join(REPORT_HTML), html.as_bytes())
}

/// Reads a `report.json`.
pub fn load_report(path: &Path) -> Result<Report> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| Error::format(path, e.to_string()))
}
