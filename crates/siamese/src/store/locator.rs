//! Where the database is: a SQLite file (the default) or a PostgreSQL URL, from `--db`, from
//! `SIAMESE_DB`, or from a file (`@PATH`, so a password stays out of shell history); and the
//! one way to print it (`redacted`: a password is never shown).

use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// Environment variable naming the database when `--db` is not given.
pub const DB_ENV: &str = "SIAMESE_DB";

/// A database location.
#[derive(Clone, PartialEq, Eq)]
pub enum Locator {
    /// A SQLite file (created when missing).
    Sqlite(PathBuf),
    /// A PostgreSQL connection string: `postgres://user:pass@host:port/db` or libpq's
    /// `host=... user=... password=...` form.
    Postgres(String),
}

// Debug goes through `redacted` so a password cannot reach a log by `{:?}`.
impl std::fmt::Debug for Locator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Locator({})", self.redacted())
    }
}

impl std::fmt::Display for Locator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl Locator {
    /// Reads `--db`'s value: a `postgres://` / `postgresql://` URL, a libpq key=value string
    /// (containing `host=` or `dbname=`), `@PATH` (the locator is the first line of that file),
    /// or else a SQLite file path.
    pub fn parse(value: &str) -> Result<Self> {
        if let Some(file) = value.strip_prefix('@') {
            let path = Path::new(file);
            let bytes = crate::input::read_file(path)?;
            let text = String::from_utf8(bytes)
                .map_err(|_| Error::format(path, "database locator file is not UTF-8 text"))?;
            let line = text.lines().map(str::trim).find(|l| !l.is_empty());
            let line = line.ok_or_else(|| {
                Error::format(
                    path,
                    "database locator file is empty (want a URL or a path)",
                )
            })?;
            if line.starts_with('@') {
                return Err(Error::format(
                    path,
                    "a locator file cannot name another one",
                ));
            }
            return Self::parse(line);
        }
        if value.trim().is_empty() {
            return Err(Error::config("--db", "empty database location"));
        }
        let lower = value.to_ascii_lowercase();
        if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
            return Ok(Locator::Postgres(value.to_string()));
        }
        if lower.contains("://") {
            return Err(Error::config(
                "--db",
                format!(
                    "{}: unknown scheme (want postgres://… or a SQLite file path)",
                    redact(value)
                ),
            ));
        }
        if let Some(keys) = conninfo_keys(value) {
            if keys.len() > 1 || keys.iter().any(|k| k == "host" || k == "dbname") {
                return Ok(Locator::Postgres(value.to_string()));
            }
        }
        Ok(Locator::Sqlite(PathBuf::from(value)))
    }

    /// `--db` when given, else `$SIAMESE_DB`, else the SQLite file `default`.
    pub fn resolve(arg: Option<&str>, default: impl FnOnce() -> PathBuf) -> Result<Self> {
        match arg {
            Some(v) => Self::parse(v),
            None => match std::env::var(DB_ENV) {
                Ok(v) if !v.trim().is_empty() => Self::parse(&v).map_err(|e| match e {
                    Error::Config { message, .. } => Error::config(DB_ENV, message),
                    other => other,
                }),
                _ => Ok(Locator::Sqlite(default())),
            },
        }
    }

    /// The location with any password replaced by `***`: the only form ever printed.
    pub fn redacted(&self) -> String {
        match self {
            Locator::Sqlite(p) => p.display().to_string(),
            Locator::Postgres(url) => redact(url),
        }
    }
}

/// The keywords of a libpq `key=value key='quoted value'` string, or `None` when `value` is
/// not one (a word without `=`, an unclosed quote): then it is a file path.
fn conninfo_keys(value: &str) -> Option<Vec<String>> {
    let mut keys = Vec::new();
    let mut chars = value.trim().chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if key.is_empty() || chars.next() != Some('=') {
            return None;
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek() == Some(&'\'') {
            chars.next();
            let mut closed = false;
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        chars.next();
                    }
                    '\'' => {
                        closed = true;
                        break;
                    }
                    _ => {}
                }
            }
            if !closed {
                return None;
            }
        } else {
            while chars.peek().is_some_and(|c| !c.is_whitespace()) {
                chars.next();
            }
        }
        keys.push(key);
    }
    (!keys.is_empty()).then_some(keys)
}

/// `text` with the password of a URL (`scheme://user:PASS@`) and every `password=VALUE`
/// (query parameter or libpq keyword) replaced by `***`.
pub fn redact(text: &str) -> String {
    let mut out = text.to_string();
    if let Some(scheme_end) = out.find("://") {
        let rest = scheme_end + 3;
        let authority_end = out[rest..]
            .find(['/', '?'])
            .map(|i| rest + i)
            .unwrap_or(out.len());
        if let Some(at) = out[rest..authority_end].rfind('@').map(|i| rest + i) {
            if let Some(colon) = out[rest..at].find(':').map(|i| rest + i) {
                out.replace_range(colon + 1..at, "***");
            }
        }
    }
    let mut result = String::with_capacity(out.len());
    let mut rest = out.as_str();
    while let Some(i) = rest.to_ascii_lowercase().find("password") {
        // libpq allows spaces around `=`; a `password` not followed by `=` is left as it is.
        let after = &rest[i + "password".len()..];
        let spaced = after.len() - after.trim_start().len();
        if !after.trim_start().starts_with('=') {
            result.push_str(&rest[..i + "password".len()]);
            rest = after;
            continue;
        }
        let eq = after.trim_start()[1..].to_string();
        let value_start = i + "password".len() + spaced + 1 + (eq.len() - eq.trim_start().len());
        result.push_str(&rest[..value_start]);
        result.push_str("***");
        let tail = &rest[value_start..];
        let end = if let Some(quoted) = tail.strip_prefix('\'') {
            closing_quote(quoted).map(|j| j + 2).unwrap_or(tail.len())
        } else {
            tail.find([' ', '&', ';']).unwrap_or(tail.len())
        };
        rest = &tail[end..];
    }
    result.push_str(rest);
    result
}

/// Byte offset of the quote closing a libpq single-quoted value (backslash escapes skipped).
fn closing_quote(quoted: &str) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in quoted.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '\'' => return Some(i),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        let cases = [
            (
                "postgres://alice:s3cret@db.example:5432/faces",
                "postgres://alice:***@db.example:5432/faces",
            ),
            (
                "postgresql://bob:p%40ss@localhost/x?sslmode=disable",
                "postgresql://bob:***@localhost/x?sslmode=disable",
            ),
            (
                "postgres://carol@localhost/x?password=hunter2&sslmode=disable",
                "postgres://carol@localhost/x?password=***&sslmode=disable",
            ),
            (
                "host=localhost user=dave password='a b c' dbname=faces",
                "host=localhost user=dave password=*** dbname=faces",
            ),
            (
                "dbname = faces password = plain",
                "dbname = faces password = ***",
            ),
            (
                r"host=h password='it\'s' user=u",
                "host=h password=*** user=u",
            ),
            ("postgres://localhost/x", "postgres://localhost/x"),
        ];
        for (url, shown) in cases {
            let loc = Locator::parse(url).unwrap();
            assert!(matches!(loc, Locator::Postgres(_)), "{url}");
            assert_eq!(loc.redacted(), shown);
            assert_eq!(format!("{loc:?}"), format!("Locator({shown})"));
            assert!(!format!("{loc}").contains("s3cret"));
        }
    }

    #[test]
    fn paths_and_bad_schemes() {
        assert_eq!(
            Locator::parse("faces.db").unwrap(),
            Locator::Sqlite("faces.db".into())
        );
        let err = Locator::parse("mysql://u:pw@h/x").unwrap_err().to_string();
        assert!(
            err.contains("unknown scheme") && !err.contains("pw@"),
            "{err}"
        );
        assert!(Locator::parse("").is_err());
    }
}
