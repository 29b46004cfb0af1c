//! The PostgreSQL server the tests talk to, and a fresh database per test on it.
//!
//! `$SIAMESE_TEST_POSTGRES_URL` (a superuser URL, or a role that may create databases and roles)
//! names an existing server. Otherwise the first test of a test binary starts one with
//! `scripts/pg-server serve DIR` (pgvector from the PyPI wheel pgserver==0.1.4) and keeps the
//! child's standard input, a pipe, open in a static. Statics are never dropped, but when the
//! test process exits (passing, failing, or killed, even by SIGKILL) the kernel closes the pipe;
//! the script sees end of input, stops the server and removes DIR. So no server outlives the run,
//! and nothing depends on a destructor or on the last test to run.
//!
//! When no server can be had the test records a one-line skip like `test_data.rs` does (and fails
//! under `SIAMESE_REQUIRE_TEST_DATA=1`, which CI sets).
//!
//! Used by both crates' integration tests (`#[path = ".../common/postgres.rs"] mod postgres;`).

#![allow(dead_code)]

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

/// Names an existing server instead of starting one.
pub const URL_ENV: &str = "SIAMESE_TEST_POSTGRES_URL";

/// A server started for this test binary; its pipes live as long as the process.
struct Started {
    url: String,
    _child: Mutex<Child>,
    _stdin: Mutex<ChildStdin>,
    _stdout: Mutex<ChildStdout>,
}

static SERVER: OnceLock<Result<Started, String>> = OnceLock::new();

/// The server script of this checkout.
pub fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/pg-server")
}

fn start() -> Result<Started, String> {
    let dir = std::env::temp_dir().join(format!("siamese-pg-test-{}", std::process::id()));
    let mut child = Command::new("bash")
        .arg(script())
        .arg("serve")
        .arg(&dir)
        .env("SIAMESE_PG_OPTIONS", "-c fsync=off -c max_connections=200")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", script().display()))?;
    let stdin = child.stdin.take().expect("piped stdin");
    let mut stdout = std::io::BufReader::new(child.stdout.take().expect("piped stdout"));
    let mut line = String::new();
    let read = stdout.read_line(&mut line);
    let url = line.trim().to_string();
    if read.is_err() || !url.starts_with("postgres://") {
        let _ = child.wait();
        return Err(format!(
            "{} serve did not start a PostgreSQL server (see its message above)",
            script().display()
        ));
    }
    Ok(Started {
        url,
        _child: Mutex::new(child),
        _stdin: Mutex::new(stdin),
        _stdout: Mutex::new(stdout.into_inner()),
    })
}

/// Whether a missing server must fail the test (`SIAMESE_REQUIRE_TEST_DATA=1`).
fn required() -> bool {
    std::env::var("SIAMESE_REQUIRE_TEST_DATA").is_ok_and(|v| v == "1")
}

/// Records (or under CI, panics with) the one line saying why the test cannot run.
fn skip(line: &str) {
    if required() {
        panic!("{line}");
    }
    let name = std::thread::current()
        .name()
        .unwrap_or("unnamed test")
        .to_string();
    let record = format!("{name}: skipped, {line}");
    eprintln!("{record}");
    let skips = match std::env::var_os("SIAMESE_TEST_SKIPS") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => Path::new(env!("CARGO_TARGET_TMPDIR")).join("skipped-tests"),
    };
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
}

/// The server's administrative URL, or `None` after recording a skip.
pub fn server_url() -> Option<String> {
    if let Ok(url) = std::env::var(URL_ENV) {
        if !url.trim().is_empty() {
            return Some(url.trim().to_string());
        }
    }
    match SERVER.get_or_init(start) {
        Ok(s) => Some(s.url.clone()),
        Err(why) => {
            skip(&format!(
                "no PostgreSQL server: {why}; set {URL_ENV} to use an existing one"
            ));
            None
        }
    }
}

/// `url` with its database name replaced by `db` (URL form only).
pub fn with_database(url: &str, db: &str) -> String {
    let (head, query) = match url.find('?') {
        Some(i) => (&url[..i], &url[i..]),
        None => (url, ""),
    };
    let scheme_end = head.find("://").map(|i| i + 3).unwrap_or(0);
    let base = match head[scheme_end..].find('/') {
        Some(i) => &head[..scheme_end + i],
        None => head,
    };
    format!("{base}/{db}{query}")
}

/// `url` with user `user` and password `password` instead of its own.
pub fn with_user(url: &str, user: &str, password: &str) -> String {
    let scheme_end = url.find("://").map(|i| i + 3).unwrap_or(0);
    let rest = &url[scheme_end..];
    let host = match rest.find('@') {
        Some(at) if rest[..at].find('/').is_none() => &rest[at + 1..],
        _ => rest,
    };
    format!("{}{user}:{password}@{host}", &url[..scheme_end])
}

/// Runs SQL as the administrator, on database `db` of the server.
pub fn admin(db: &str, sql: &str) {
    let url = with_database(&server_url().expect("a server"), db);
    let mut client = postgres::Client::connect(&url, postgres::NoTls)
        .unwrap_or_else(|e| panic!("admin connection: {e}"));
    client
        .batch_execute(sql)
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
}

/// A database made for one test, dropped when the test ends (its value is dropped).
pub struct TestDatabase {
    pub name: String,
    pub url: String,
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Some(server) = server_url() {
            if let Ok(mut c) =
                postgres::Client::connect(&with_database(&server, "postgres"), postgres::NoTls)
            {
                let _ = c.batch_execute(&format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    self.name
                ));
            }
        }
    }
}

/// A new empty database on the server (`None` after recording a skip).
pub fn fresh_database(tag: &str) -> Option<TestDatabase> {
    static COUNT: AtomicUsize = AtomicUsize::new(0);
    let server = server_url()?;
    let name = format!(
        "siamese_test_{tag}_{}_{}",
        std::process::id(),
        COUNT.fetch_add(1, Ordering::Relaxed)
    );
    admin("postgres", &format!("CREATE DATABASE {name}"));
    Some(TestDatabase {
        url: with_database(&server, &name),
        name,
    })
}
