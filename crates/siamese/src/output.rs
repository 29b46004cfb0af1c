//! Writing output files safely: every file the library or the CLI writes goes through
//! [`write_atomic`] (also [`write_npy`], for the benchmarks' Python peers).
//!
//! - Only regular files are replaced. A directory, FIFO, socket or device at the path is refused
//!   with a one-line error before anything is written (as root, `--out /dev/null` would otherwise
//!   turn `/dev/null` into a plain file).
//! - A symbolic link is written through to its target when that target is a regular file (or does
//!   not exist yet, in an existing folder); a link to anything else, or a link loop, is refused.
//!   The link itself stays a link.
//! - The bytes go to a temporary file in the target's own folder, are flushed to disk (`fsync`),
//!   and the file is renamed over the target, so a crash leaves the old file or the new one,
//!   never half of either.
//! - [`check_distinct`] refuses two outputs of one command that would land on the same file
//!   (checked before any work starts).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::{Error, Result};

/// What sits at a path that is not a regular file, in words.
pub(crate) fn kind_of(meta: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_symlink() {
        "a symbolic link"
    } else {
        "not a regular file"
    }
}

/// The file a write to `path` replaces: `path` itself, or for a symbolic link its final target.
/// Refuses (one-line error naming `path`) anything that is not, or does not lead to, a regular
/// file or a new file in an existing folder.
pub fn output_target(path: &Path) -> Result<PathBuf> {
    if path.as_os_str().is_empty() || path.file_name().is_none() {
        return Err(Error::format(path, "not a file path"));
    }
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(path.to_path_buf()),
        Err(e) => return Err(Error::io(path, e)),
    };
    if meta.file_type().is_file() {
        return Ok(path.to_path_buf());
    }
    if !meta.file_type().is_symlink() {
        return Err(Error::format(
            path,
            format!(
                "is {}, not a regular file; refusing to replace it",
                kind_of(&meta)
            ),
        ));
    }
    // A link: follow it to its end (at most 40 hops, as the kernel does).
    let mut at = path.to_path_buf();
    for _ in 0..40 {
        let link = std::fs::read_link(&at).map_err(|e| Error::io(&at, e))?;
        let next = match at.parent() {
            Some(dir) if link.is_relative() => dir.join(&link),
            _ => link,
        };
        match std::fs::symlink_metadata(&next) {
            Ok(m) if m.file_type().is_symlink() => at = next,
            Ok(m) if m.file_type().is_file() => return Ok(next),
            Ok(m) => {
                return Err(Error::format(
                    path,
                    format!(
                        "is a symbolic link to {} ({}), not to a regular file; refusing to write \
                         through it",
                        next.display(),
                        kind_of(&m)
                    ),
                ))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let folder_exists = next
                    .parent()
                    .filter(|d| !d.as_os_str().is_empty())
                    .is_none_or(Path::is_dir);
                return if folder_exists {
                    Ok(next)
                } else {
                    Err(Error::format(
                        path,
                        format!(
                            "is a symbolic link to {}, whose folder does not exist",
                            next.display()
                        ),
                    ))
                };
            }
            Err(e) => return Err(Error::io(&next, e)),
        }
    }
    Err(Error::format(
        path,
        "symbolic links loop; refusing to write",
    ))
}

/// Writes `bytes` to `path` (see the module docs: regular files only, through symbolic links to
/// regular files, temporary sibling + fsync + rename). Creates missing parent folders of a plain
/// path.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    static WRITES: AtomicU64 = AtomicU64::new(0);
    let target = output_target(path)?;
    let dir = target
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf);
    if let Some(dir) = &dir {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let file_name = target
        .file_name()
        .ok_or_else(|| Error::format(path, "not a file path"))?
        .to_string_lossy();
    let tmp = target.with_file_name(format!(
        ".{file_name}.tmp-{}-{}",
        std::process::id(),
        WRITES.fetch_add(1, Ordering::Relaxed)
    ));
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io(path, e));
    }
    std::fs::rename(&tmp, &target).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(path, e)
    })?;
    // The rename itself is durable once the folder is synced (best effort: not every file
    // system lets a folder be opened for that).
    if let Some(dir) = dir {
        if let Ok(d) = std::fs::File::open(&dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// Refuses outputs of one command that would land on the same file (after following symbolic
/// links and `.`/`..`): `what` names each output as the user gave it (e.g. `--out`).
pub fn check_distinct(outputs: &[(&str, &Path)]) -> Result<()> {
    let resolved: Vec<PathBuf> = outputs
        .iter()
        .map(|(_, p)| {
            let target = output_target(p).unwrap_or_else(|_| p.to_path_buf());
            absolute(&target)
        })
        .collect();
    for i in 0..outputs.len() {
        for j in 0..i {
            if resolved[i] == resolved[j] {
                return Err(Error::config(
                    outputs[i].0,
                    format!(
                        "{} is also the file of {}: two outputs cannot share a file",
                        outputs[i].1.display(),
                        outputs[j].0
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// `path` made absolute with its existing folder resolved (`..`, links), for comparing paths.
fn absolute(path: &Path) -> PathBuf {
    let name = path.file_name().map(PathBuf::from).unwrap_or_default();
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    match std::fs::canonicalize(dir) {
        Ok(d) => d.join(name),
        Err(_) => std::env::current_dir()
            .map(|c| c.join(path))
            .unwrap_or_else(|_| path.to_path_buf()),
    }
}

/// Writes a row-major f32 (`<f4`) or i64 (`<i8`) array of `shape` as `.npy`.
pub fn write_npy(path: &Path, descr: &str, shape: &[usize], bytes: &[u8]) -> Result<()> {
    let dims: Vec<String> = shape.iter().map(|d| format!("{d}, ")).collect();
    let header = format!(
        "{{'descr': '{descr}', 'fortran_order': False, 'shape': ({}), }}",
        dims.concat().trim_end()
    );
    let pad = (64 - (10 + header.len() + 1) % 64) % 64;
    let header = format!("{header}{}\n", " ".repeat(pad));
    let mut out = Vec::with_capacity(10 + header.len() + bytes.len());
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(bytes);
    write_atomic(path, &out)
}
