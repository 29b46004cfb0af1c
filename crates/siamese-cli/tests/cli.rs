//! The `siamese` binary end to end: resume after a kill, `eval --json` keys, and bad input
//! giving one-line errors that name the file, a non-zero exit and no half-written output.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn siamese() -> Command {
    Command::new(env!("CARGO_BIN_EXE_siamese"))
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("the binary starts")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The user's real cache (where CI's `siamese fetch` put MNIST).
fn default_home() -> Option<PathBuf> {
    std::env::var_os("SIAMESE_HOME").map(PathBuf::from)
}

fn with_home<'a>(cmd: &'a mut Command, home: Option<&Path>) -> &'a mut Command {
    if let Some(h) = home {
        cmd.env("SIAMESE_HOME", h);
    }
    cmd
}

fn epochs_done(run: &Path) -> usize {
    let Ok(text) = std::fs::read_to_string(run.join("checkpoint/state.json")) else {
        return 0;
    };
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["epochs_done"].as_u64().unwrap() as usize
}

fn train_args(out: &Path, epochs: usize) -> Vec<String> {
    [
        "train",
        "--data",
        "mnist",
        "--limit",
        "1200",
        "--epochs",
        &epochs.to_string(),
        "--seed",
        "5",
        // Resuming must continue the weight average too (`training.safetensors`).
        "--ema-decay",
        "0.99",
        "--quiet",
        "--out",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([out.display().to_string()])
    .collect()
}

/// A safetensors file's tensors as (name, raw bytes), sorted by name (the JSON header's key
/// order is not fixed, so files are compared by content).
fn safetensors_data(path: &Path) -> Vec<(String, Vec<u8>)> {
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let mut out: Vec<(String, Vec<u8>)> = header
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| *k != "__metadata__")
        .map(|(k, v)| {
            let at = |i: usize| v["data_offsets"][i].as_u64().unwrap() as usize + 8 + n;
            (k.clone(), bytes[at(0)..at(1)].to_vec())
        })
        .collect();
    out.sort();
    out
}

#[test]
fn resume_continues_an_interrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let home = default_home();
    // Start a 4-epoch run and kill it mid-epoch once the first checkpoint exists.
    let mut child = with_home(&mut siamese(), home.as_deref())
        .args(train_args(&out, 4))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while epochs_done(&out) < 1 {
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "no checkpoint after 10 minutes"
        );
        if let Some(status) = child.try_wait().unwrap() {
            panic!("training ended early: {status}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(1500));
    child.kill().unwrap();
    child.wait().unwrap();
    let done_at_kill = epochs_done(&out);
    assert!(
        (1..4).contains(&done_at_kill),
        "killed mid-run, after {done_at_kill} epochs"
    );
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("checkpoint/state.json")).unwrap())
            .unwrap();
    let first_epoch = state["history"]["epochs"][0].clone();

    let mut args = train_args(&out, 4);
    args.push("--resume".into());
    args.push("--json".into());
    let res = run(with_home(&mut siamese(), home.as_deref()).args(&args));
    assert!(res.status.success(), "{}", stderr(&res));
    assert_eq!(epochs_done(&out), 4);
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("checkpoint/state.json")).unwrap())
            .unwrap();
    // The epochs before the kill were kept, not retrained.
    assert_eq!(state["history"]["epochs"][0], first_epoch);
    assert_eq!(state["history"]["epochs"].as_array().unwrap().len(), 4);
    assert!(
        out.join("checkpoint/training.safetensors").is_file(),
        "an averaged run keeps the optimizer's own weights for --resume"
    );
    // Resumed exactly: the same weights, bit for bit, and the same history as a run that was
    // never interrupted (Adam's moments, the average, samplers and dropout all continue).
    let whole = dir.path().join("whole");
    let res = run(with_home(&mut siamese(), home.as_deref()).args(train_args(&whole, 4)));
    assert!(res.status.success(), "{}", stderr(&res));
    for file in ["model.safetensors", "training.safetensors"] {
        assert_eq!(
            safetensors_data(&out.join("checkpoint").join(file)),
            safetensors_data(&whole.join("checkpoint").join(file)),
            "{file}: the resumed run's weights differ from the uninterrupted run's"
        );
    }
    let whole_state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(whole.join("checkpoint/state.json")).unwrap(),
    )
    .unwrap();
    for (a, b) in state["history"]["epochs"]
        .as_array()
        .unwrap()
        .iter()
        .zip(whole_state["history"]["epochs"].as_array().unwrap())
    {
        assert_eq!(a["train_loss"], b["train_loss"]);
        assert_eq!(a["val_loss"], b["val_loss"]);
    }

    // eval --json prints one object with the documented keys.
    let eval = run(with_home(&mut siamese(), home.as_deref())
        .args(["eval", "--json", "--model"])
        .arg(&out));
    assert!(eval.status.success(), "{}", stderr(&eval));
    let v: serde_json::Value = serde_json::from_slice(&eval.stdout).unwrap();
    for key in [
        "precision_at_1",
        "r_precision",
        "map_at_r",
        "knn_accuracy_1",
        "knn_accuracy_5",
        "nmi",
        "ami",
    ] {
        let x = v[key]
            .as_f64()
            .unwrap_or_else(|| panic!("missing {key} in {v}"));
        assert!((0.0..=1.0).contains(&x), "{key} = {x}");
    }
    assert!(
        v["precision_at_1"].as_f64().unwrap() > 0.5,
        "a 4-epoch run on 1,080 images already beats chance (0.1) by far"
    );

    // embed writes a float32 .npy of N×D and a labels CSV.
    let npy = dir.path().join("emb.npy");
    let e = run(with_home(&mut siamese(), home.as_deref())
        .args(["embed", "--model"])
        .arg(&out)
        .arg("--out")
        .arg(&npy));
    assert!(e.status.success(), "{}", stderr(&e));
    let bytes = std::fs::read(&npy).unwrap();
    assert_eq!(&bytes[..6], b"\x93NUMPY");
    let header = String::from_utf8_lossy(&bytes[10..128]);
    assert!(
        header.contains("'<f4'") && header.contains("(240, 64)"),
        "{header}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("emb.csv"))
            .unwrap()
            .lines()
            .count(),
        241
    );
}

#[test]
fn missing_cache_names_the_file_and_the_fix() {
    let empty = tempfile::tempdir().unwrap();
    let out = empty.path().join("run");
    let res = run(siamese()
        .env("SIAMESE_HOME", empty.path())
        .args(train_args(&out, 1)));
    assert!(!res.status.success());
    let err = stderr(&res);
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(err.contains("siamese fetch mnist"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn corrupt_idx_is_reported_with_its_path() {
    let home = tempfile::tempdir().unwrap();
    let mnist = home.path().join("mnist");
    std::fs::create_dir_all(&mnist).unwrap();
    for name in [
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ] {
        std::fs::write(mnist.join(name), b"\x00\x00\x08\x03garbage").unwrap();
    }
    let out = home.path().join("run");
    let res = run(siamese()
        .env("SIAMESE_HOME", home.path())
        .args(train_args(&out, 1)));
    assert!(!res.status.success());
    let err = stderr(&res);
    assert!(err.contains("idx"), "names the IDX file: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(!out.join("checkpoint").exists(), "nothing half-written");
}

#[test]
fn unwritable_output_folder_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let out = file.join("run");
    let res = run(with_home(&mut siamese(), default_home().as_deref()).args(train_args(&out, 1)));
    assert!(!res.status.success());
    let err = stderr(&res);
    assert!(err.contains("a-file"), "names the path: {err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn class_folder_with_one_image_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for (class, n) in [("cats", 3), ("dogs", 1)] {
        std::fs::create_dir_all(data.join(class)).unwrap();
        for i in 0..n {
            let img =
                image::GrayImage::from_fn(28, 28, |x, y| image::Luma([((x * y + i) % 255) as u8]));
            img.save(data.join(class).join(format!("{i}.png"))).unwrap();
        }
    }
    let out = dir.path().join("run");
    let res = run(siamese()
        .args(["train", "--quiet", "--data"])
        .arg(&data)
        .arg("--out")
        .arg(&out));
    assert!(!res.status.success());
    let err = stderr(&res);
    assert!(err.contains("dogs"), "names the class folder: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(!out.join("checkpoint").exists());
}

/// Outputs never replace a device or a FIFO, and two outputs of one command never share a file;
/// each is refused before any work with one line naming the path.
#[test]
fn outputs_refuse_devices_and_shared_files() {
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("images");
    for class in ["a", "b", "c", "d"] {
        std::fs::create_dir_all(images.join(class)).unwrap();
        for i in 0..3 {
            let img = image::GrayImage::from_fn(8, 8, |x, y| image::Luma([(x * y * i) as u8]));
            img.save(images.join(class).join(format!("{i}.png")))
                .unwrap();
        }
    }
    let make = |out: &Path, test_out: Option<&Path>| {
        let mut cmd = siamese();
        cmd.args(["triplets", "make", "--n", "12", "--images"])
            .arg(&images)
            .arg("--out")
            .arg(out);
        if let Some(t) = test_out {
            cmd.args(["--test-fraction", "0.5", "--test-n", "6", "--test-out"])
                .arg(t);
        }
        run(&mut cmd)
    };
    if Path::new("/dev/full").exists() {
        let out = make(Path::new("/dev/full"), None);
        assert!(!out.status.success());
        let err = stderr(&out);
        assert!(
            err.lines().count() == 1 && err.contains("/dev/full") && err.contains("device"),
            "{err}"
        );
        assert!(!Path::new("/dev/full").is_file(), "/dev/full was replaced");
    }
    let same = dir.path().join("t.txt");
    let out = make(&same, Some(&same));
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.lines().count() == 1 && err.contains("--test-out") && err.contains("t.txt"),
        "{err}"
    );
    assert!(!same.exists(), "nothing written");
    // Distinct files: both written.
    let test = dir.path().join("test.txt");
    let out = make(&same, Some(&test));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(same.is_file() && test.is_file());
}

/// A batch whose training step cannot fit in memory is refused before training, with the numbers,
/// and the run folder is not touched.
#[test]
fn a_batch_that_cannot_fit_in_memory_is_refused_up_front() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let res = run(with_home(&mut siamese(), default_home().as_deref())
        .env("SIAMESE_MAX_MEMORY", "64M")
        .args([
            "train", "--data", "mnist", "--limit", "1200", "--k", "40", "--out",
        ])
        .arg(&out));
    assert!(!res.status.success());
    let err = stderr(&res);
    assert!(
        err.lines().count() == 1
            && err.contains("10×40")
            && err.contains("GiB")
            && err.contains("--k"),
        "{err}"
    );
    assert!(!out.join("checkpoint").exists() && !out.join("config.json").exists());
}

/// A small folder (2 classes × 15 images) trains: the P×K batch is checked against the training
/// data, the held-out images are halved class by class, and a validation batch takes the classes
/// its split has.
#[test]
fn a_small_two_class_folder_trains() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("shapes");
    for (c, class) in ["ring", "bar"].iter().enumerate() {
        std::fs::create_dir_all(data.join(class)).unwrap();
        for i in 0..15u32 {
            let img = image::GrayImage::from_fn(28, 28, |x, y| {
                let on = if c == 0 {
                    let (dx, dy) = (x as i32 - 14, y as i32 - 14);
                    (dx * dx + dy * dy - (6 + i as i32 % 3).pow(2)).abs() < 12
                } else {
                    (x as i32 - 14).abs() < 2 + (i as i32 % 2) && (4..24).contains(&y)
                };
                image::Luma([if on { 255 } else { 0 }])
            });
            img.save(data.join(class).join(format!("{i}.png"))).unwrap();
        }
    }
    let out = dir.path().join("run");
    let res = run(siamese()
        .args([
            "train", "--epochs", "2", "--p", "2", "--k", "4", "--quiet", "--data",
        ])
        .arg(&data)
        .arg("--out")
        .arg(&out));
    assert!(res.status.success(), "{}", stderr(&res));
    // Asking for more classes a batch than the folder has names the training data.
    let res = run(siamese()
        .args(["train", "--epochs", "1", "--quiet", "--data"])
        .arg(&data)
        .arg("--out")
        .arg(dir.path().join("run2")));
    let err = stderr(&res);
    assert!(
        !res.status.success() && err.contains("training data") && err.contains("2 classes"),
        "{err}"
    );
}

#[test]
fn argument_errors_are_one_line_naming_what_is_missing_or_wrong() {
    for (args, named) in [
        (&["train"][..], "--out <OUT>"),
        (&["faces", "verify"][..], "<A> <B>"),
        (
            &["train", "--out", "x", "--epochs", "abc"][..],
            "'abc' for '--epochs",
        ),
        (&["train", "--out", "x", "--bogus"][..], "'--bogus'"),
    ] {
        let out = run(siamese().args(args));
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(named), "{args:?}: {err}");
    }
}
