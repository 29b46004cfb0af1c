//! Where the tests find the evaluation data that no package registry ships (LFW, Omniglot), and
//! what a test does when it is absent: skips with one recorded line, or fails under CI.
//!
//! The data lives in `$SIAMESE_TEST_DATA` (a folder laid out like the project's `../shared/data`:
//! `lfw/lfw-deepfunneled.tar` + `lfw/pairs.txt`, `omniglot/*.zip`), else in `../shared/data`
//! beside the checkout. When a data set is missing:
//! - with `SIAMESE_REQUIRE_TEST_DATA=1` (CI) the test fails with one line naming what is missing;
//! - otherwise the test returns early and writes that line into `$SIAMESE_TEST_SKIPS` (a folder;
//!   default `<target>/tmp/skipped-tests`), which `scripts/test` sums up at the end.
//!
//! Used by both crates' integration tests (`#[path = ".../common/test_data.rs"] mod test_data;`).

#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// An evaluation data set that only `SIAMESE_TEST_DATA` / `../shared/data` can provide.
#[derive(Clone, Copy, Debug)]
pub enum TestData {
    /// LFW deep-funneled: `lfw/lfw-deepfunneled.tar` and `lfw/pairs.txt`.
    Lfw,
    /// Omniglot: `omniglot/images_background_small{1,2}.zip` and `omniglot/all_runs.zip`.
    Omniglot,
}

impl TestData {
    /// The folder below the data root.
    pub fn folder(self) -> &'static str {
        match self {
            TestData::Lfw => "lfw",
            TestData::Omniglot => "omniglot",
        }
    }

    /// Files (relative to the data set's folder) a test may read.
    pub fn files(self) -> &'static [&'static str] {
        match self {
            TestData::Lfw => &["lfw-deepfunneled.tar", "pairs.txt"],
            TestData::Omniglot => &[
                "images_background_small1.zip",
                "images_background_small2.zip",
                "all_runs.zip",
            ],
        }
    }

    /// What the data set is and where its public copy comes from.
    pub fn how_to_get(self) -> &'static str {
        match self {
            TestData::Lfw => {
                "LFW deep-funneled (lfw-deepfunneled.tar + pairs.txt from the Labeled Faces in \
                 the Wild page of the University of Massachusetts Amherst)"
            }
            TestData::Omniglot => {
                "Omniglot (images_background_small1.zip, images_background_small2.zip, \
                 all_runs.zip from Brenden Lake's omniglot repository on GitHub)"
            }
        }
    }
}

/// `$SIAMESE_TEST_DATA`, else `../shared/data` beside the checkout.
pub fn data_root() -> PathBuf {
    match std::env::var_os("SIAMESE_TEST_DATA") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"),
    }
}

/// Whether missing data must fail the test (`SIAMESE_REQUIRE_TEST_DATA=1`, set by `.ci/run`).
pub fn data_required() -> bool {
    std::env::var("SIAMESE_REQUIRE_TEST_DATA").is_ok_and(|v| v == "1")
}

/// The folder skip records are written to.
pub fn skips_dir() -> PathBuf {
    match std::env::var_os("SIAMESE_TEST_SKIPS") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => Path::new(env!("CARGO_TARGET_TMPDIR")).join("skipped-tests"),
    }
}

/// The running test's name (the test harness names each test's thread after it).
fn test_name() -> String {
    std::thread::current()
        .name()
        .unwrap_or("unnamed test")
        .to_string()
}

/// The data set's folder when every file of it is present. Otherwise: under
/// `SIAMESE_REQUIRE_TEST_DATA=1` a panic with one line saying what is missing; else `None`
/// after recording the skip (see the module docs):
/// `let Some(lfw) = locate(TestData::Lfw) else { return };`.
pub fn locate(data: TestData) -> Option<PathBuf> {
    let dir = data_root().join(data.folder());
    let missing: Vec<String> = data
        .files()
        .iter()
        .map(|f| dir.join(f))
        .filter(|p| !p.is_file())
        .map(|p| p.display().to_string())
        .collect();
    if missing.is_empty() {
        return Some(dir);
    }
    let line = format!(
        "missing test data: {} not found; put {} there or point SIAMESE_TEST_DATA at a folder \
         holding {}/",
        missing.join(", "),
        data.how_to_get(),
        data.folder()
    );
    if data_required() {
        panic!("{line}");
    }
    let name = test_name();
    let record = format!("{name}: skipped, {line}");
    eprintln!("{record}");
    let skips = skips_dir();
    let file: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let binary = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_default();
    if std::fs::create_dir_all(&skips).is_ok() {
        let _ = std::fs::write(skips.join(format!("{binary}-{file}.txt")), record + "\n");
    }
    None
}
