//! Reading input files safely: only regular files (or links to them) are opened, so a FIFO,
//! socket or device given as an image, a weights file or a data file is a one-line error instead
//! of a read that waits forever or never ends.

use std::path::Path;

use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// Refuses `path` unless it is (or links to) a regular file.
pub fn check_regular(path: &Path) -> Result<()> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.is_file() {
        Ok(())
    } else {
        Err(Error::format(
            path,
            format!("is {}, not a regular file", crate::output::kind_of(&meta)),
        ))
    }
}

/// Refuses `path` unless it is (or links to) a folder.
pub fn check_dir(path: &Path) -> Result<()> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.is_dir() {
        Ok(())
    } else if meta.is_file() {
        Err(Error::format(path, "is a file, not a folder"))
    } else {
        Err(Error::format(
            path,
            format!("is {}, not a folder", crate::output::kind_of(&meta)),
        ))
    }
}

/// The bytes of the regular file at `path` ([`check_regular`] first).
pub fn read_file(path: &Path) -> Result<Vec<u8>> {
    check_regular(path)?;
    std::fs::read(path).map_err(|e| Error::io(path, e))
}

/// Walks a JPEG's markers: header segments by their lengths, entropy-coded scans byte by byte
/// (skipping stuffed `FF 00` and restart markers), until the end-of-image marker. Bytes after it
/// (camera trailers, appended videos) are ignored; reaching the end of the file first means the
/// file was cut short.
pub fn jpeg_is_complete(bytes: &[u8]) -> bool {
    if bytes.len() < 4 || bytes[0] != 0xFF || bytes[1] != 0xD8 {
        return false;
    }
    let mut i = 2;
    while i + 1 < bytes.len() {
        if bytes[i] != 0xFF {
            return false;
        }
        let marker = bytes[i + 1];
        match marker {
            0xD9 => return true,
            0xFF => i += 1,
            0x01 | 0xD0..=0xD7 => i += 2,
            _ => {
                if i + 3 >= bytes.len() {
                    return false;
                }
                let len = u16::from_be_bytes([bytes[i + 2], bytes[i + 3]]) as usize;
                i += 2 + len;
                if marker == 0xDA {
                    // Entropy-coded data runs to the next marker that is not FF00 or RSTn.
                    while i + 1 < bytes.len() {
                        if bytes[i] == 0xFF
                            && bytes[i + 1] != 0x00
                            && !(0xD0..=0xD7).contains(&bytes[i + 1])
                        {
                            break;
                        }
                        i += 1;
                    }
                }
            }
        }
    }
    false
}

/// Hex SHA-256 and size of a regular file ([`check_regular`] first).
pub fn file_hash(path: &Path) -> Result<(String, u64)> {
    check_regular(path)?;
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut hasher = Sha256::new();
    let size = std::io::copy(&mut file, &mut hasher).map_err(|e| Error::io(path, e))?;
    Ok((
        hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
        size,
    ))
}

/// Absolute form of `path` (the database's key of a file).
pub fn key(path: &Path) -> String {
    std::fs::canonicalize(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .to_string_lossy()
        .into_owned()
}
