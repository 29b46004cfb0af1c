//! Reading input files safely: only regular files (or links to them) are opened, so a FIFO,
//! socket or device given as an image, a weights file or a data file is a one-line error instead
//! of a read that waits forever or never ends.

use std::path::Path;

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

/// The bytes of the regular file at `path` ([`check_regular`] first).
pub fn read_file(path: &Path) -> Result<Vec<u8>> {
    check_regular(path)?;
    std::fs::read(path).map_err(|e| Error::io(path, e))
}
