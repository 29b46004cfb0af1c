//! The report module: the HTML and JSON written for a report (escaping, relative figures with
//! their sizes, failed stages shown), atomic writing that refuses figures outside the folder,
//! the stage runner (errors and panics recorded, later stages still run, times measured), dates,
//! shell quoting, the demo's option checks and the pinned burn version.

use std::path::Path;
use std::time::Duration;

use siamese::report::document::{
    format_utc, shell_quote, Versions, BURN_VERSION, REPORT_HTML, REPORT_JSON,
};
use siamese::report::html::{escape, format_duration};
use siamese::report::{
    load_report, write_report, DemoOptions, DemoPlan, DemoSize, Figure, Headline, Report,
    StageRecord, StageRunner, StageStatus, Table,
};

fn png(path: &Path, w: u32, h: u32) {
    image::RgbImage::from_pixel(w, h, image::Rgb([10, 120, 200]))
        .save(path)
        .unwrap();
}

fn sample_report() -> Report {
    let mut ok = StageRecord::new("train-mnist", "Train <the> CNN & more");
    ok.seconds = 75.5;
    ok.summary.push("Trained \"fast\" with α = 0.2".into());
    let mut t = Table::new("Metrics", &["metric", "value"]);
    t.row(["precision@1", "0.9931"]).row(["NMI", "0.97"]);
    ok.tables.push(t);
    ok.figures.push(Figure {
        file: "loss.png".into(),
        caption: "Loss per epoch".into(),
        width: 64,
        height: 48,
    });
    ok.metrics.insert("precision_at_1".into(), 0.9931.into());
    let mut failed = StageRecord::new("faces", "Faces");
    failed.status = StageStatus::Failed;
    failed.error = Some("lfw/pairs.txt: line 3: malformed pair".into());
    failed.seconds = 1.25;
    let mut skipped = StageRecord::new("sweep", "Margin sweep");
    skipped.status = StageStatus::Skipped;
    skipped.error = Some("not selected".into());
    Report {
        title: "siamese — demo report".into(),
        command_line: "siamese demo --quick --out 'my demo'".into(),
        started_utc: format_utc(1_700_000_000),
        quick: true,
        seed: 7,
        versions: Versions::detect(),
        total_seconds: 3723.0,
        headlines: vec![Headline {
            label: "MNIST precision@1".into(),
            value: "99.31 %".into(),
            detail: "10000 test digits".into(),
        }],
        stages: vec![ok, failed, skipped],
    }
}

#[test]
fn html_and_json_hold_every_stage_table_figure_and_error() {
    let dir = tempfile::tempdir().unwrap();
    png(&dir.path().join("loss.png"), 64, 48);
    let report = sample_report();
    write_report(dir.path(), &report).unwrap();
    let html = std::fs::read_to_string(dir.path().join(REPORT_HTML)).unwrap();
    // Self-contained, no JavaScript, figures linked relatively with their sizes.
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(
        !html.contains("<script"),
        "the page must not need JavaScript"
    );
    assert!(html.contains("<style>"));
    assert!(
        html.contains(r#"<img src="loss.png" width="64" height="48""#),
        "{html}"
    );
    // Text is escaped.
    assert!(html.contains("Train &lt;the&gt; CNN &amp; more"));
    assert!(!html.contains("Train <the>"));
    assert!(html.contains("Trained &quot;fast&quot; with α = 0.2"));
    assert!(html.contains("siamese demo --quick --out &#39;my demo&#39;"));
    // Tables, the failure, the skip, times and versions.
    assert!(
        html.contains("<td class=\"n\">0.9931</td>"),
        "numbers right-aligned"
    );
    assert!(html.contains("lfw/pairs.txt: line 3: malformed pair"));
    assert!(html.contains("badge failed") && html.contains("badge skipped"));
    assert!(html.contains("1 min 16 s"), "stage time shown");
    assert!(html.contains("1 h 02 min"), "total time shown");
    assert!(html.contains("1 failed"));
    assert!(html.contains(BURN_VERSION));
    assert!(html.contains("2023-11-14 22:13:20 UTC"));
    assert!(html.contains("99.31 %"));
    // Every stage has an anchor in the overview.
    for s in &report.stages {
        assert!(html.contains(&format!("href=\"#{}\"", s.id)));
        assert!(html.contains(&format!("<section id=\"{}\"", s.id)));
    }
    let back = load_report(&dir.path().join(REPORT_JSON)).unwrap();
    assert_eq!(back, report);
    assert_eq!(back.failed().count(), 1);
    // Nothing temporary left behind.
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.contains(".tmp")), "{names:?}");
}

#[test]
fn figures_outside_the_folder_or_missing_are_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let mut report = sample_report();
    // loss.png was never written.
    let err = write_report(dir.path(), &report).unwrap_err().to_string();
    assert!(err.contains("loss.png") && err.contains("missing"), "{err}");
    assert!(!dir.path().join(REPORT_HTML).exists());
    assert!(!dir.path().join(REPORT_JSON).exists());
    report.stages[0].figures[0].file = "../loss.png".into();
    png(&dir.path().join("loss.png"), 4, 4);
    let err = write_report(dir.path(), &report).unwrap_err().to_string();
    assert!(err.contains("../loss.png"), "{err}");
    assert!(!dir.path().join(REPORT_HTML).exists());
}

#[test]
fn runner_records_errors_and_panics_and_keeps_going() {
    let mut runner = StageRunner::new(4, false);
    let a = runner.run("a", "First", |rec| {
        std::thread::sleep(Duration::from_millis(120));
        rec.summary.push("did a".into());
        Ok(41 + 1)
    });
    assert_eq!(a, Some(42));
    let b: Option<()> = runner.run("b", "Second", |rec| {
        rec.summary.push("partial work is kept".into());
        Err(siamese::Error::format("data/x.idx", "bad magic\nnumber 7"))
    });
    assert_eq!(b, None);
    let c: Option<()> = runner.run("c", "Third", |_| panic!("index out of range: 9"));
    assert_eq!(c, None);
    let d = runner.run("d", "Fourth", |_| Ok("still runs"));
    assert_eq!(d, Some("still runs"));
    runner.skip("e", "Fifth", "not selected");
    let r = runner.into_records();
    assert_eq!(r.len(), 5);
    assert_eq!(r[0].status, StageStatus::Ok);
    assert!(r[0].seconds >= 0.12, "timed: {}", r[0].seconds);
    assert_eq!(r[1].status, StageStatus::Failed);
    assert_eq!(
        r[1].error.as_deref(),
        Some("data/x.idx: bad magic number 7"),
        "one line"
    );
    assert_eq!(r[1].summary, vec!["partial work is kept".to_string()]);
    assert_eq!(r[2].status, StageStatus::Failed);
    let msg = r[2].error.as_deref().unwrap();
    assert!(
        msg.contains("panic") && msg.contains("index out of range: 9"),
        "{msg}"
    );
    assert_eq!(r[3].status, StageStatus::Ok);
    assert_eq!(r[4].status, StageStatus::Skipped);
}

#[test]
fn dates_durations_quoting_and_escaping() {
    assert_eq!(format_utc(0), "1970-01-01 00:00:00 UTC");
    assert_eq!(format_utc(951_782_400), "2000-02-29 00:00:00 UTC");
    assert_eq!(format_utc(1_700_000_000), "2023-11-14 22:13:20 UTC");
    assert_eq!(format_utc(4_107_542_399), "2100-02-28 23:59:59 UTC");
    assert_eq!(format_duration(4.24), "4.2 s");
    assert_eq!(format_duration(65.0), "1 min 05 s");
    assert_eq!(format_duration(7260.0), "2 h 01 min");
    assert_eq!(shell_quote("--out"), "--out");
    assert_eq!(shell_quote("a b"), "'a b'");
    assert_eq!(shell_quote("it's"), r"'it'\''s'");
    assert_eq!(shell_quote(""), "''");
    assert_eq!(
        escape(r#"<a href="x">&'"#),
        "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
    );
}

#[test]
fn burn_version_matches_the_lock_file() {
    let lock =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../Cargo.lock")).unwrap();
    let at = lock.find("name = \"burn\"\n").expect("burn in Cargo.lock");
    let version = lock[at..]
        .lines()
        .nth(1)
        .unwrap()
        .trim_start_matches("version = ")
        .trim_matches('"');
    assert_eq!(version, BURN_VERSION);
    assert_eq!(Versions::detect().siamese, env!("CARGO_PKG_VERSION"));
}

#[test]
fn demo_options_are_checked_and_plans_shrink_with_size() {
    let mut o = DemoOptions::new("out");
    o.stages = Some(vec!["train-mnist".into(), "traning".into()]);
    let err = o.check().unwrap_err().to_string();
    assert!(
        err.contains("traning") && err.contains("train-mnist"),
        "{err}"
    );
    let mut o = DemoOptions::new("out");
    o.lfw = Some("/nonexistent/lfw-deepfunneled.tar".into());
    let err = o.check().unwrap_err().to_string();
    assert!(err.contains("/nonexistent/lfw-deepfunneled.tar"), "{err}");
    let (full, quick, tiny) = (
        DemoPlan::for_size(DemoSize::Full),
        DemoPlan::for_size(DemoSize::Quick),
        DemoPlan::for_size(DemoSize::Tiny),
    );
    assert_eq!(
        full.mnist_limit, None,
        "the full demo trains on all of MNIST"
    );
    assert_eq!(full.sweep_margins.len(), 10, "0, 0.1, ..., 0.9");
    assert!(quick.sweep_margins.len() < full.sweep_margins.len());
    assert!(quick.mnist_limit.unwrap() > tiny.mnist_limit.unwrap());
    assert!(quick.mnist_epochs <= full.mnist_epochs);
    assert!(quick.lfw_pairs_per_fold.is_some());
    assert_ne!(
        quick.suffix, full.suffix,
        "runs of different sizes live apart"
    );
}
