//! The demo and its report: a stage runner (progress, timing, failures recorded while the rest
//! still runs), the stages themselves as thin adapters over the library, and the report as
//! `report.json` + a self-contained `index.html` (inline CSS, relative PNG links, no JavaScript).

pub mod demo;
pub mod document;
pub mod figures;
pub mod html;
pub mod plots;
pub mod runner;
pub mod stage_faces;
pub mod stage_mnist;
pub mod stage_sweep;
pub mod stage_triplets;

pub use demo::{run_demo, DemoOptions, DemoPlan, DemoSize, STAGES};
pub use document::{
    load_report, write_report, Figure, Headline, Report, StageRecord, StageStatus, Table,
};
pub use runner::StageRunner;
