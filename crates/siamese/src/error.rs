//! The library's error type: every variant names the file or value that is wrong.

use std::path::{Path, PathBuf};

/// Result alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors surfaced to users. Messages are one line and name the offending file or value.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O failure on a named path.
    // The OS error is printed in the message, so it is not also exposed as `#[source]` (a field
    // named `source` would be, by thiserror's rule): `{:#}` chains would print it twice.
    #[error("{}: {error}", path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    /// A file whose contents are not what they should be.
    #[error("{}: {message}", path.display())]
    Format { path: PathBuf, message: String },
    /// An invalid hyper-parameter or argument.
    #[error("invalid {name}: {message}")]
    Config { name: String, message: String },
    /// A required asset is not in the cache.
    #[error("{}: missing asset; run `siamese fetch {what}` first", path.display())]
    MissingAsset { path: PathBuf, what: String },
    /// An external command (npm, pip, ...) failed.
    #[error("command `{command}` failed: {message}")]
    Command { command: String, message: String },
    /// Anything else, with context.
    #[error("{0}")]
    Other(String),
}

impl Error {
    /// An I/O error on `path`.
    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.as_ref().to_path_buf(),
            error: source,
        }
    }

    /// A format error on `path`. Line breaks in the message (a name read from a damaged file may
    /// hold one) become spaces, as the CLI and the demo's report fold them, so it stays one line.
    pub fn format(path: impl AsRef<Path>, message: impl Into<String>) -> Self {
        Error::Format {
            path: path.as_ref().to_path_buf(),
            message: message.into().replace(['\n', '\r'], " "),
        }
    }

    /// An invalid parameter.
    pub fn config(name: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Config {
            name: name.into(),
            message: message.into(),
        }
    }
}
