//! The demo and its report: a stage runner (progress, timing, failures recorded while the rest
//! still runs), the stages themselves as thin adapters over the library, and the report as
//! `report.json` + a self-contained `index.html` (inline CSS, relative PNG links, no JavaScript).
//!
//! `demo` runs the stages in `context`'s order and plan; each `stage_*` fills a record and
//! returns a typed result the `headlines` read; `document` is the report as data, `html` renders
//! it, `files` writes it; `figures` and `plots` draw into the report folder.

pub mod context;
pub mod demo;
pub mod document;
pub mod face_figures;
pub mod figures;
pub mod files;
pub mod headlines;
pub mod html;
pub mod plots;
pub mod runner;
pub mod stage_faces;
pub mod stage_lfw;
pub mod stage_mnist;
pub mod stage_oneshot;
pub mod stage_openset;
pub mod stage_sweep;
pub mod stage_triplets;

pub use context::{DemoContext, DemoPlan, DemoSize, Stage};
pub use demo::{run_demo, DemoOptions};
pub use document::{Figure, Headline, Report, StageRecord, StageStatus, Table};
pub use files::{load_report, write_report};
pub use runner::StageRunner;
