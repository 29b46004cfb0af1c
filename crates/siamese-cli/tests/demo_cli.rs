//! `siamese demo` end to end on seconds-scale stages (`--tiny`: every stage of the real demo,
//! shrunk; the quick demo itself is too long for CI), then the report opened in headless
//! Chromium by `scripts/screenshot-report`: every image loads, the page is as tall as a full
//! report, the screenshot is a PNG of the page. Also: a failed stage is shown in the report while
//! the others still run, and bad options are one-line errors.
//!
//! Needs the assets CI fetches (`siamese fetch mnist letters face-models backbone`); the demo
//! fetches its sample photos itself. The screenshot script installs Debian's `chromium` when
//! it is missing.

use std::path::Path;
use std::process::{Command, Output};

#[path = "../../siamese/tests/common/test_data.rs"]
mod test_data;
use test_data::{locate, TestData};

fn siamese() -> Command {
    Command::new(env!("CARGO_BIN_EXE_siamese"))
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("the binary starts")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn report_json(out: &Path) -> serde_json::Value {
    let path = out.join("report/report.json");
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn stage<'a>(report: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    report["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id)
        .unwrap_or_else(|| panic!("no stage {id}"))
}

#[test]
fn tiny_demo_writes_a_full_report_that_renders_in_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("demo");
    // The one-shot stage runs on Omniglot when the test data has it, and is skipped otherwise.
    let omniglot = locate(TestData::Omniglot);
    let started = std::time::Instant::now();
    let mut demo = siamese();
    demo.args(["demo", "--tiny", "--seed", "3", "--out"])
        .arg(&out);
    match &omniglot {
        Some(dir) => demo.arg("--omniglot").arg(dir),
        None => demo.env_remove("SIAMESE_OMNIGLOT"),
    };
    let result = run(&mut demo);
    let seconds = started.elapsed().as_secs_f64();
    eprintln!("tiny demo: {seconds:.0} s\n{}", text(&result.stderr));
    assert!(result.status.success(), "{}", text(&result.stderr));

    let report = report_json(&out);
    let ids: Vec<&str> = report["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "fetch",
            "train-mnist",
            "evaluate",
            "openset",
            "sweep",
            "faces",
            "triplets",
            "oneshot"
        ]
    );
    for s in report["stages"].as_array().unwrap() {
        if s["id"] == "oneshot" && omniglot.is_none() {
            assert_eq!(s["status"], "skipped", "{s}");
            assert!(s["error"].as_str().unwrap().contains("--omniglot"), "{s}");
            continue;
        }
        assert_eq!(s["status"], "ok", "{}: {}", s["id"], s["error"]);
        assert!(s["seconds"].as_f64().unwrap() > 0.0);
    }
    if omniglot.is_some() {
        // One tiny epoch on the background sets already beats chance (5 %) by far on the 20
        // one-shot runs of unseen alphabets.
        let oneshot = &stage(&report, "oneshot")["metrics"];
        let mean = oneshot["mean_accuracy"].as_f64().unwrap();
        assert_eq!(oneshot["runs"], 20, "{oneshot}");
        assert!(mean > 0.3 && mean <= 1.0, "one-shot accuracy {mean}");
    }
    let sum: f64 = report["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["seconds"].as_f64().unwrap())
        .sum();
    let total = report["total_seconds"].as_f64().unwrap();
    assert!(
        total >= sum && total <= seconds + 1.0,
        "total {total}, stages {sum}"
    );
    let line = report["command_line"].as_str().unwrap();
    let given = match &omniglot {
        Some(dir) => format!(" --omniglot {}", dir.display()),
        None => String::new(),
    };
    assert!(
        line.ends_with(&format!(
            "demo --tiny --seed 3 --out {}{given}",
            out.display()
        )),
        "{line}"
    );
    assert_eq!(report["seed"], 3);
    assert_eq!(report["versions"]["burn"], "0.22.1");

    // Real numbers from real (tiny) runs: better than chance, in range.
    let eval = &stage(&report, "evaluate")["metrics"];
    let p1 = eval["precision_at_1"].as_f64().unwrap();
    assert!(
        p1 > 0.5 && p1 <= 1.0,
        "precision@1 {p1} after one tiny epoch"
    );
    let auroc = stage(&report, "openset")["metrics"]["letters"]["auroc"]
        .as_f64()
        .unwrap();
    assert!((0.0..=1.0).contains(&auroc));
    // Every set at hand, each with every score; noise is told from digits by the ensemble
    // score even after one tiny epoch (conv1 sees strokes from the start).
    let sets = stage(&report, "openset")["metrics"]["sets"]["sets"]
        .as_array()
        .unwrap();
    assert!(
        sets.len() >= 6,
        "letters twice and four noise sets: {sets:?}"
    );
    for set in sets {
        assert_eq!(set["methods"].as_array().unwrap().len(), 8, "{set}");
        if set["unknown_source"] == "noise-gaussian" {
            let ensemble = &set["methods"][7];
            assert_eq!(ensemble["method"], "ensemble");
            assert!(ensemble["auroc"].as_f64().unwrap() > 0.9, "{ensemble}");
        }
    }
    let sweep = stage(&report, "sweep")["metrics"]["points"]
        .as_array()
        .unwrap();
    assert_eq!(sweep.len(), 2);
    let faces = &stage(&report, "faces")["metrics"];
    assert_eq!(faces["photos"], 6);
    assert!(faces["faces"].as_u64().unwrap() >= 12, "{faces}");
    let people = faces["people_found"].as_u64().unwrap();
    assert!(people >= 2 && people <= faces["faces"].as_u64().unwrap());
    let trip = stage(&report, "triplets")["metrics"]["test_accuracy"]
        .as_f64()
        .unwrap();
    assert!(trip > 0.5, "triplet accuracy {trip}");
    assert!(!report["headlines"].as_array().unwrap().is_empty());

    // Every figure is a PNG in the report folder with the size the page declares.
    let mut figures = 0;
    for s in report["stages"].as_array().unwrap() {
        for f in s["figures"].as_array().unwrap() {
            let file = f["file"].as_str().unwrap();
            assert!(!file.contains('/'), "relative, in the folder: {file}");
            let (w, h) = image::image_dimensions(out.join("report").join(file)).unwrap();
            assert_eq!(
                (w, h),
                (
                    f["width"].as_u64().unwrap() as u32,
                    f["height"].as_u64().unwrap() as u32
                )
            );
            figures += 1;
        }
    }
    // Loss curve, letters histogram, t-SNE, sweep montage, detected faces, face clusters,
    // triplet-head loss (the faces t-SNE needs LFW).
    assert!(figures >= 7, "{figures} figures");
    for id in ["train-mnist", "openset", "sweep", "faces", "triplets"] {
        assert!(
            !stage(&report, id)["figures"].as_array().unwrap().is_empty(),
            "stage {id} has no figure"
        );
    }
    let html = std::fs::read_to_string(out.join("report/index.html")).unwrap();
    assert!(!html.contains("<script"));
    assert_eq!(html.matches("<img ").count(), figures);

    // Headless Chromium: images load, the page is a full report, the screenshot is the page.
    let shot = dir.path().join("report.png");
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../scripts/screenshot-report"
    );
    let check = run(Command::new("bash")
        .arg(script)
        .arg(out.join("report"))
        .arg("--out")
        .arg(&shot)
        .args(["--min-height", "4000"]));
    let stdout = text(&check.stdout);
    assert!(check.status.success(), "{stdout}\n{}", text(&check.stderr));
    let line = stdout.lines().last().unwrap();
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["broken"].as_array().unwrap().len(), 0);
    assert_eq!(v["images"].as_u64().unwrap() as usize, figures);
    let height = v["page_height"].as_u64().unwrap();
    assert!(height >= 4000, "page height {height}");
    let (w, h) = image::image_dimensions(&shot).unwrap();
    assert_eq!(w, 1280);
    assert_eq!(u64::from(h), height.min(16000));

    // A second run reuses the trained model and the embedded faces.
    let again = run(siamese()
        .args([
            "demo",
            "--tiny",
            "--seed",
            "3",
            "--stages",
            "train-mnist,faces",
            "--json",
            "--out",
        ])
        .arg(&out));
    assert!(again.status.success(), "{}", text(&again.stderr));
    let second: serde_json::Value = serde_json::from_str(&text(&again.stdout)).unwrap();
    assert_eq!(
        stage(&second, "train-mnist")["metrics"]["action"],
        "reused the finished run"
    );
    assert_eq!(
        stage(&second, "faces")["tables"][0]["rows"][4][1],
        "0 / 6",
        "photos embedded now / reused"
    );
}

#[test]
fn a_failed_stage_is_reported_and_the_rest_still_runs() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("demo");
    // No trained model in a fresh folder: evaluation fails, the fetch stage after it is fine.
    let result = run(siamese()
        .args([
            "demo",
            "--tiny",
            "--quiet",
            "--stages",
            "evaluate,fetch",
            "--out",
        ])
        .arg(&out));
    assert_eq!(result.status.code(), Some(1));
    let err = text(&result.stderr);
    assert!(err.contains("1 of 2 stages failed (evaluate)"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one-line error: {err}");
    let report = report_json(&out);
    let fetch = stage(&report, "fetch");
    let evaluate = stage(&report, "evaluate");
    assert_eq!(fetch["status"], "ok");
    assert_eq!(evaluate["status"], "failed");
    let msg = evaluate["error"].as_str().unwrap();
    assert!(
        msg.contains("mnist-tiny") && msg.contains("no trained MNIST model"),
        "{msg}"
    );
    let html = std::fs::read_to_string(out.join("report/index.html")).unwrap();
    assert!(html.contains("no trained MNIST model"));
    assert!(html.contains("badge failed"));
}

#[test]
fn bad_options_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("demo");
    let r = run(siamese()
        .args(["demo", "--stages", "train,faces", "--out"])
        .arg(&out));
    assert_eq!(r.status.code(), Some(1));
    let err = text(&r.stderr);
    assert!(err.contains("unknown stage `train`"), "{err}");
    let r = run(siamese()
        .args(["demo", "--lfw", "/nonexistent/lfw.tar", "--out"])
        .arg(&out));
    assert_eq!(r.status.code(), Some(1));
    let err = text(&r.stderr);
    assert!(err.contains("/nonexistent/lfw.tar"), "{err}");
    let r = run(siamese()
        .args(["demo", "--omniglot", "/nonexistent/omniglot", "--out"])
        .arg(&out));
    assert_eq!(r.status.code(), Some(1));
    let err = text(&r.stderr);
    assert!(
        err.contains("/nonexistent/omniglot: no such Omniglot folder"),
        "{err}"
    );
    assert!(
        !out.join("report").exists(),
        "nothing written on bad options"
    );
}
