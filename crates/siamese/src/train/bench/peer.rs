//! The peer of the benchmark: Keras 3 on tensorflow-cpu, installed by package name with pinned
//! versions into `<home>/bench-venv`, running `bench/keras_bench.py`, which prints one
//! `BENCH_JSON {...}` line with the same fields as [`SideReport`].

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{BenchConfig, SideReport};
use crate::{assets, Error, Result};

/// Pinned versions of the peer, one `name==version` a line (comments allowed).
pub const PEER_REQUIREMENTS: &str = include_str!("../../../../../bench/requirements.txt");
/// The peer's benchmark script.
pub const PEER_SCRIPT: &str = include_str!("../../../../../bench/keras_bench.py");
/// The line prefix under which the peer prints its JSON report.
const PEER_JSON_PREFIX: &str = "BENCH_JSON ";

/// The peer's Python interpreter, creating `<home>/bench-venv` and installing
/// [`PEER_REQUIREMENTS`] into it by package name when not done yet. `log` hears about
/// the one-time install.
pub fn peer_python(log: &mut dyn FnMut(&str)) -> Result<PathBuf> {
    assets::python_venv::peer_venv("bench-venv", PEER_REQUIREMENTS, "peer's", log)
}

pub use crate::assets::python_venv::requirement_lines;

/// Runs the peer script with `python` on the MNIST files in `mnist_dir`.
pub fn run_peer(config: &BenchConfig, python: &Path, mnist_dir: &Path) -> Result<SideReport> {
    config.check()?;
    let dir = python
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_else(assets::home);
    let script = dir.join("keras_bench.py");
    crate::output::write_atomic(&script, PEER_SCRIPT.as_bytes())?;
    let threads = config.threads.to_string();
    let mut cmd = Command::new(python);
    cmd.arg(&script)
        .arg("--mnist")
        .arg(mnist_dir)
        .args(["--steps", &config.steps.to_string()])
        .args(["--warmup", &config.warmup.to_string()])
        .args(["--rounds", &config.rounds.to_string()])
        .args(["--threads", &threads])
        .args(["--triplets", &config.triplets_per_step.to_string()])
        .args(["--infer-batch", &config.infer_batch.to_string()])
        .args(["--dim", &config.dim.to_string()])
        .args(["--margin", &config.margin.to_string()])
        .args(["--lr", &config.learning_rate.to_string()])
        .args(["--seed", &config.seed.to_string()])
        .env("OMP_NUM_THREADS", &threads)
        .env("TF_NUM_INTRAOP_THREADS", &threads)
        .env("TF_NUM_INTEROP_THREADS", &threads)
        .env("TF_CPP_MIN_LOG_LEVEL", "2");
    if !config.epoch {
        cmd.arg("--no-epoch");
    }
    let stdout = assets::run_command(&mut cmd, &dir)?;
    parse_peer_output(&stdout, &script)
}

/// The peer's report from its stdout (the `BENCH_JSON` line; other lines are ignored).
pub fn parse_peer_output(stdout: &str, script: &Path) -> Result<SideReport> {
    let line = stdout
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix(PEER_JSON_PREFIX))
        .ok_or_else(|| Error::format(script, "the peer printed no BENCH_JSON line"))?;
    serde_json::from_str(line)
        .map_err(|e| Error::format(script, format!("the peer's report is not valid: {e}")))
}
