//! Runs the demo's stages one after another: announces each one (`[3/7] Open-set ...`), times
//! it, and records a failure — an error or a panic inside the stage — as that stage's message
//! while the following stages still run.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;

use super::document::{StageRecord, StageStatus};
use crate::Result;

/// Collects [`StageRecord`]s.
pub struct StageRunner {
    total: usize,
    progress: bool,
    records: Vec<StageRecord>,
}

impl StageRunner {
    /// `total`: how many stages will run (for the `[i/total]` prefix); `progress`: print the
    /// announcements and results on stderr.
    pub fn new(total: usize, progress: bool) -> Self {
        StageRunner {
            total,
            progress,
            records: Vec::new(),
        }
    }

    /// Runs one stage. `body` fills the record (summary, tables, figures, metrics) and returns a
    /// value for later stages; an `Err` or a panic marks the stage failed with its message and
    /// yields `None`. Whatever the body had put into the record before failing is kept.
    pub fn run<T>(
        &mut self,
        id: &str,
        title: &str,
        body: impl FnOnce(&mut StageRecord) -> Result<T>,
    ) -> Option<T> {
        let index = self.records.len() + 1;
        if self.progress {
            eprintln!("[{index}/{}] {title} ...", self.total.max(index));
        }
        let mut record = StageRecord::new(id, title);
        let started = Instant::now();
        let outcome = catch_unwind(AssertUnwindSafe(|| body(&mut record)));
        record.seconds = started.elapsed().as_secs_f64();
        let value = match outcome {
            Ok(Ok(v)) => Some(v),
            Ok(Err(e)) => {
                record.status = StageStatus::Failed;
                record.error = Some(one_line(&e.to_string()));
                None
            }
            Err(panic) => {
                let msg = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "unknown panic".into());
                record.status = StageStatus::Failed;
                record.error = Some(one_line(&format!("internal error (panic): {msg}")));
                None
            }
        };
        if self.progress {
            match record.status {
                StageStatus::Failed => eprintln!(
                    "[{index}/{}] FAILED after {:.1} s: {}",
                    self.total.max(index),
                    record.seconds,
                    record.error.as_deref().unwrap_or("")
                ),
                _ => eprintln!(
                    "[{index}/{}] done in {:.1} s",
                    self.total.max(index),
                    record.seconds
                ),
            }
        }
        self.records.push(record);
        value
    }

    /// Records a stage that did not run, with the reason.
    pub fn skip(&mut self, id: &str, title: &str, reason: &str) {
        let index = self.records.len() + 1;
        if self.progress {
            eprintln!("[{index}/{}] {title}: skipped ({reason})", self.total);
        }
        let mut record = StageRecord::new(id, title);
        record.status = StageStatus::Skipped;
        record.error = Some(reason.to_string());
        self.records.push(record);
    }

    /// The records so far.
    pub fn records(&self) -> &[StageRecord] {
        &self.records
    }

    /// The records, consumed.
    pub fn into_records(self) -> Vec<StageRecord> {
        self.records
    }
}

/// Collapses a message onto one line.
fn one_line(msg: &str) -> String {
    msg.split_whitespace().collect::<Vec<_>>().join(" ")
}
