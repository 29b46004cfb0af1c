//! Helpers the CLI tests share: run the binary, read its JSON, check a clean one-line failure,
//! copy a run folder.
#![allow(dead_code)] // each test binary uses its own share of them

use std::path::Path;
use std::process::{Command, Output};

pub fn siamese() -> Command {
    Command::new(env!("CARGO_BIN_EXE_siamese"))
}

pub fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("the binary starts")
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn json(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "{}", stderr(out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not one JSON object ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// A failed command: exit code 1, one `error:` line naming `needle` (progress lines before it
/// are fine), no panic.
pub fn assert_clean_failure(out: &Output, needle: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(errors.len(), 1, "one error line: {err}");
    assert_eq!(
        err.trim().lines().last(),
        Some(errors[0]),
        "error last: {err}"
    );
    assert!(errors[0].contains(needle), "{needle}: {err}");
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let dest = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_dir(&path, &dest);
        } else {
            std::fs::copy(&path, &dest).unwrap();
        }
    }
}
