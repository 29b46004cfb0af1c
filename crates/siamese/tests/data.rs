//! Data layer: IDX parsing (good and corrupt), MNIST and letters from the cache, MNIST-style
//! transform, image folders, Omniglot, and the stratified split.

use std::path::{Path, PathBuf};

use siamese::data::idx::{
    encode_idx_images, encode_idx_labels, load_idx_pair, read_idx_images, read_idx_labels,
};
use siamese::data::letters::load_letters_raw;
use siamese::data::transform::{
    centre_of_mass, ink_to_mnist, mnist_style, mnist_style_with, stroke_fraction, MnistStyle,
};
use siamese::data::{
    check_trainable, load_image_folder, load_image_mnist_style, load_letters, load_mnist,
    load_omniglot_alphabet, load_unknown_images, stratified_split, FolderMode, MnistSplit,
};

use image::{DynamicImage, GrayImage, Luma, Rgb, RgbImage, Rgba, RgbaImage};

#[path = "common/test_data.rs"]
mod test_data;
use test_data::{locate, TestData};

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn idx_good_files_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let pixels: Vec<u8> = (0..3 * 4 * 5).map(|i| i as u8).collect();
    let p = write(tmp.path(), "img", &encode_idx_images(&pixels, 3, 4, 5));
    let (read, n, rows, cols) = read_idx_images(&p).unwrap();
    assert_eq!((n, rows, cols), (3, 4, 5));
    assert_eq!(read, pixels);
    let l = write(tmp.path(), "lab", &encode_idx_labels(&[7, 1, 9]));
    assert_eq!(read_idx_labels(&l).unwrap(), vec![7, 1, 9]);
}

fn idx_error(path: &Path, images: bool) -> String {
    let e = if images {
        read_idx_images(path).map(|_| ()).unwrap_err()
    } else {
        read_idx_labels(path).map(|_| ()).unwrap_err()
    };
    let msg = e.to_string();
    assert!(
        msg.contains(&path.display().to_string()),
        "error does not name the file: {msg}"
    );
    msg
}

#[test]
fn idx_corrupt_files_are_rejected_with_the_file_name() {
    let tmp = tempfile::tempdir().unwrap();
    let good = encode_idx_images(&[0u8; 2 * 3 * 3], 2, 3, 3);

    // Labels magic in an images file, and images magic read as labels.
    let p = write(tmp.path(), "wrong_magic", &encode_idx_labels(&[1, 2]));
    assert!(idx_error(&p, true).contains("magic"));
    let p = write(tmp.path(), "wrong_magic2", &good);
    assert!(idx_error(&p, false).contains("magic"));

    // Truncated inside the header and inside the data.
    let p = write(tmp.path(), "short_header", &good[..10]);
    assert!(idx_error(&p, true).contains("truncated"));
    let p = write(tmp.path(), "short_data", &good[..good.len() - 1]);
    assert!(idx_error(&p, true).contains("truncated"));
    let lab = encode_idx_labels(&[1, 2, 3]);
    let p = write(tmp.path(), "short_labels", &lab[..lab.len() - 2]);
    assert!(idx_error(&p, false).contains("truncated"));

    // Extra bytes after the data.
    let mut long = good.clone();
    long.push(0);
    let p = write(tmp.path(), "long", &long);
    assert!(idx_error(&p, true).contains("extra"));

    // Zero dimension.
    let p = write(tmp.path(), "zero", &encode_idx_images(&[], 0, 28, 28));
    assert!(idx_error(&p, true).contains("zero"));
    let p = write(tmp.path(), "zero_rows", &encode_idx_images(&[], 5, 0, 28));
    assert!(idx_error(&p, true).contains("zero"));

    // Dimensions whose product is absurd for the file length (would overflow 32 bits).
    let mut huge = Vec::new();
    for v in [0x0803u32, u32::MAX, u32::MAX, u32::MAX] {
        huge.extend_from_slice(&v.to_be_bytes());
    }
    let p = write(tmp.path(), "huge", &huge);
    let msg = idx_error(&p, true);
    assert!(
        msg.contains("overflow") || msg.contains("truncated"),
        "{msg}"
    );

    // Missing file: an I/O error naming it.
    let p = tmp.path().join("absent");
    idx_error(&p, true);
}

#[test]
fn missing_cache_files_tell_the_user_to_fetch() {
    let tmp = tempfile::tempdir().unwrap();
    let images = tmp.path().join("mnist").join("train-images-idx3-ubyte");
    let labels = tmp.path().join("mnist").join("train-labels-idx1-ubyte");
    let names = (0..10).map(|d| d.to_string()).collect();
    let msg = load_idx_pair(&images, &labels, names, "mnist")
        .unwrap_err()
        .to_string();
    assert!(msg.contains("siamese fetch mnist"), "{msg}");
    assert!(msg.contains(&images.display().to_string()), "{msg}");
    // Images and labels that disagree on the count: the label file is named.
    std::fs::create_dir_all(images.parent().unwrap()).unwrap();
    std::fs::write(&images, encode_idx_images(&[0; 8], 2, 2, 2)).unwrap();
    std::fs::write(&labels, encode_idx_labels(&[1, 2, 3])).unwrap();
    let names = (0..10).map(|d| d.to_string()).collect();
    let msg = load_idx_pair(&images, &labels, names, "mnist")
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains(&labels.display().to_string()) && msg.contains("3 labels"),
        "{msg}"
    );
}

const FETCH_HINT: &str = "the asset cache lacks it: run `siamese fetch mnist letters` first";

#[test]
fn mnist_from_cache_has_official_counts() {
    let train = load_mnist(MnistSplit::Train).expect(FETCH_HINT);
    let test = load_mnist(MnistSplit::Test).expect(FETCH_HINT);
    assert_eq!(train.len(), 60_000);
    assert_eq!(test.len(), 10_000);
    for set in [&train, &test] {
        assert_eq!((set.channels, set.height, set.width), (1, 28, 28));
        assert_eq!(set.pixels.len(), set.len() * 784);
        assert_eq!(
            set.class_names,
            (0..10).map(|d| d.to_string()).collect::<Vec<_>>()
        );
        assert!(set.pixels.iter().all(|&v| (0.0..=1.0).contains(&v)));
        let mut counts = [0usize; 10];
        set.labels.iter().for_each(|&l| counts[l as usize] += 1);
        // Every digit is 8-12 % of each split.
        assert!(
            counts
                .iter()
                .all(|&c| c * 100 > set.len() * 8 && c * 100 < set.len() * 12),
            "{counts:?}"
        );
    }
    // Known first labels of the official files.
    assert_eq!(&train.labels[..5], &[5, 0, 4, 1, 9]);
    assert_eq!(&test.labels[..5], &[7, 2, 1, 0, 4]);
    // The ink of a digit: a good share of zero background and a bright stroke.
    let first = train.image(0);
    assert!(first.iter().filter(|&&v| v == 0.0).count() > 500);
    assert!(first.contains(&1.0));
}

#[test]
fn letters_from_cache_are_mnist_style() {
    let raw = load_letters_raw().expect(FETCH_HINT);
    assert_eq!(raw.len(), 52_152);
    assert_eq!((raw.channels, raw.height, raw.width), (1, 16, 8));
    assert!(
        raw.pixels.iter().all(|&v| v == 0.0 || v == 1.0),
        "letters are binary"
    );
    let mut counts = [0usize; 26];
    raw.labels.iter().for_each(|&l| counts[l as usize] += 1);
    // Frequencies of the OCR letters data set: a 4034, e 4955, n 5024 (the most), j 189 (the fewest).
    assert_eq!(
        (counts[0], counts[4], counts[13], counts[9]),
        (4034, 4955, 5024, 189)
    );

    let letters = load_letters().expect(FETCH_HINT);
    assert_eq!(letters.len(), 52_152);
    assert_eq!(
        (letters.channels, letters.height, letters.width),
        (1, 28, 28)
    );
    assert_eq!(letters.class_names.first().map(String::as_str), Some("a"));
    assert_eq!(letters.class_names.last().map(String::as_str), Some("z"));
    assert_eq!(letters.labels, raw.labels);
    let mut centred = 0;
    for i in (0..letters.len()).step_by(97) {
        let img = letters.image(i);
        assert!(img.iter().all(|&v| (0.0..=1.0).contains(&v)));
        let (x0, y0, x1, y1) = ink_box(img);
        assert!(
            (x1 - x0).max(y1 - y0) <= 20,
            "letter {i} exceeds the 20-px box"
        );
        let (cx, cy) = centre_of_mass(img, 28, 28);
        if (cx - 14.0).abs() <= 1.0 && (cy - 14.0).abs() <= 1.0 {
            centred += 1;
        }
    }
    let sampled = letters.len().div_ceil(97);
    assert!(
        centred * 100 >= sampled * 99,
        "{centred}/{sampled} letters centred by mass"
    );
}

/// Bounding box `(x0, y0, x1, y1)` of the non-zero pixels of a 28 x 28 image.
fn ink_box(img: &[f32]) -> (usize, usize, usize, usize) {
    let (mut x0, mut y0, mut x1, mut y1) = (28, 28, 0, 0);
    for y in 0..28 {
        for x in 0..28 {
            if img[y * 28 + x] > 0.0 {
                x0 = x0.min(x);
                y0 = y0.min(y);
                x1 = x1.max(x + 1);
                y1 = y1.max(y + 1);
            }
        }
    }
    (x0, y0, x1, y1)
}

/// A 300 x 200 white page with a thick black "L" drawn off-centre (top left).
fn black_l_on_white() -> GrayImage {
    let mut img = GrayImage::from_pixel(300, 200, Luma([255]));
    for y in 20..140 {
        for x in 30..46 {
            img.put_pixel(x, y, Luma([0]));
        }
    }
    for y in 124..140 {
        for x in 30..100 {
            img.put_pixel(x, y, Luma([0]));
        }
    }
    img
}

#[test]
fn transform_crops_scales_and_centres_by_mass() {
    let img = DynamicImage::ImageLuma8(black_l_on_white());
    let out = mnist_style(&img);
    assert_eq!(out.len(), 784);
    assert!(out.iter().all(|&v| (0.0..=1.0).contains(&v)));
    // Inverted: the page is black, the ink white.
    assert_eq!(out[0], 0.0);
    assert!(out.iter().any(|&v| v > 0.99));
    // Longer side (the L's 120-px height) becomes 20 px; aspect kept (70/120 * 20 ≈ 12 px).
    let (x0, y0, x1, y1) = ink_box(&out);
    assert!((19..=20).contains(&(y1 - y0)), "height {}", y1 - y0);
    assert!((11..=13).contains(&(x1 - x0)), "width {}", x1 - x0);
    // Centre of mass at the field's centre, not the box's.
    let (cx, cy) = centre_of_mass(&out, 28, 28);
    assert!(
        (cx - 14.0).abs() <= 1.0 && (cy - 14.0).abs() <= 1.0,
        "({cx}, {cy})"
    );
    let box_centre_x = (x0 + x1) as f32 / 2.0;
    assert!(
        box_centre_x > cx + 1.0,
        "mass of an L lies left of its box centre"
    );

    // The same drawing as white ink on black needs no inversion and gives the same result.
    let mut inverted = black_l_on_white();
    image::imageops::invert(&mut inverted);
    let same = mnist_style(&DynamicImage::ImageLuma8(inverted));
    let diff = out
        .iter()
        .zip(&same)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(diff < 1e-4, "max difference {diff}");

    // The same drawing 8x larger (2400 x 1600, shrunk before conversion) gives the same digit.
    let small = black_l_on_white();
    let big = image::imageops::resize(&small, 2400, 1600, image::imageops::FilterType::Nearest);
    let from_big = mnist_style(&DynamicImage::ImageLuma8(big));
    let diff = out
        .iter()
        .zip(&from_big)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(diff < 0.1, "max difference {diff}");

    // RGB and RGBA with a transparent background behave like grey on white.
    let rgb = RgbImage::from_fn(300, 200, |x, y| {
        let v = black_l_on_white().get_pixel(x, y)[0];
        Rgb([v, v, v])
    });
    let from_rgb = mnist_style(&DynamicImage::ImageRgb8(rgb));
    let rgba = RgbaImage::from_fn(300, 200, |x, y| {
        if black_l_on_white().get_pixel(x, y)[0] == 0 {
            Rgba([0, 0, 0, 255])
        } else {
            Rgba([0, 0, 0, 0])
        }
    });
    let from_rgba = mnist_style(&DynamicImage::ImageRgba8(rgba));
    for other in [&from_rgb, &from_rgba] {
        let diff = out
            .iter()
            .zip(other)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(diff < 1e-3, "max difference {diff}");
    }
}

#[test]
fn transform_thickens_thin_strokes_and_survives_blank_images() {
    // A 2-px pen circle on a 400 x 400 page: far thinner than MNIST's strokes.
    let mut page = GrayImage::from_pixel(400, 400, Luma([250]));
    for y in 0..400 {
        for x in 0..400 {
            let r =
                (((x as f32 - 200.0).powi(2) + (y as f32 - 180.0).powi(2)).sqrt() - 120.0).abs();
            if r < 1.0 {
                page.put_pixel(x, y, Luma([20]));
            }
        }
    }
    let img = DynamicImage::ImageLuma8(page);
    let plain = mnist_style_with(
        &img,
        MnistStyle {
            normalise_strokes: false,
            ..MnistStyle::default()
        },
    );
    let thick = mnist_style(&img);
    // Without normalisation the 8.9x downscale fades the pen to a ghost; with it the ring has
    // a bright, digit-like stroke (MNIST's median stroke fraction is 0.10, lower quartile 0.084).
    let peak = |v: &[f32]| v.iter().copied().fold(0.0f32, f32::max);
    assert!(peak(&plain) < 0.5, "plain peak {}", peak(&plain));
    assert!(peak(&thick) > 0.9, "normalised peak {}", peak(&thick));
    let thin_fraction = stroke_fraction(&plain, 28, 28).unwrap_or(0.0);
    let thick_fraction = stroke_fraction(&thick, 28, 28).unwrap();
    assert!(
        thin_fraction < 0.05,
        "plain stroke fraction {thin_fraction}"
    );
    assert!(
        (0.07..0.14).contains(&thick_fraction),
        "normalised stroke fraction {thick_fraction}"
    );
    let (cx, cy) = centre_of_mass(&thick, 28, 28);
    assert!((cx - 14.0).abs() <= 1.0 && (cy - 14.0).abs() <= 1.0);

    // No ink, a 1 x 1 image, and an all-zero ink map: zeros, no panic.
    for blank in [
        DynamicImage::ImageLuma8(GrayImage::from_pixel(50, 40, Luma([255]))),
        DynamicImage::ImageLuma8(GrayImage::from_pixel(50, 40, Luma([0]))),
        DynamicImage::ImageLuma8(GrayImage::from_pixel(1, 1, Luma([0]))),
    ] {
        assert_eq!(mnist_style(&blank), vec![0.0; 784]);
    }
    assert_eq!(
        ink_to_mnist(&[0.0; 12], 4, 3, MnistStyle::default()),
        vec![0.0; 784]
    );
}

#[test]
fn unreadable_images_are_errors_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let good = tmp.path().join("l.png");
    black_l_on_white().save(&good).unwrap();
    assert_eq!(load_image_mnist_style(&good).unwrap().len(), 784);
    let bytes = std::fs::read(&good).unwrap();
    let truncated = write(tmp.path(), "truncated.png", &bytes[..bytes.len() / 2]);
    let text = write(tmp.path(), "text.png", b"this is not an image");
    for bad in [truncated, text, tmp.path().join("absent.png")] {
        let msg = load_image_mnist_style(&bad).unwrap_err().to_string();
        assert!(msg.contains(&bad.display().to_string()), "{msg}");
    }
}

#[test]
fn stratified_split_is_deterministic_and_stratified() {
    // Three classes of 100, 40 and 7 images, interleaved by a fixed permutation.
    let by_class = |k: usize| {
        if k < 100 {
            0
        } else if k < 140 {
            1
        } else {
            2
        }
    };
    let labels: Vec<u32> = (0..147).map(|i| by_class(i * 37 % 147)).collect();
    let (train, val) = stratified_split(&labels, 0.2, 7).unwrap();
    assert_eq!(
        (train.clone(), val.clone()),
        stratified_split(&labels, 0.2, 7).unwrap()
    );
    assert_ne!(val, stratified_split(&labels, 0.2, 8).unwrap().1);
    let mut all: Vec<usize> = train.iter().chain(&val).copied().collect();
    all.sort_unstable();
    assert_eq!(
        all,
        (0..labels.len()).collect::<Vec<_>>(),
        "a partition of the indices"
    );
    let count = |idx: &[usize], c: u32| idx.iter().filter(|&&i| labels[i] == c).count();
    assert_eq!([count(&val, 0), count(&val, 1), count(&val, 2)], [20, 8, 1]);
    // A class with one image stays in training.
    let (train, val) = stratified_split(&[0, 0, 0, 0, 1], 0.5, 1).unwrap();
    assert!(train.contains(&4) && val.len() == 2);
    for bad in [0.0, 1.0, -0.1, f64::NAN] {
        assert!(stratified_split(&labels, bad, 1).is_err(), "{bad} accepted");
    }
}

fn save_digit(path: &Path, shift: u32) {
    let mut img = GrayImage::from_pixel(40, 40, Luma([255]));
    for y in 5..35 {
        for x in (10 + shift)..(16 + shift) {
            img.put_pixel(x, y, Luma([0]));
        }
    }
    img.save(path).unwrap();
}

#[test]
fn image_folders_load_and_bad_folders_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("set");
    for (class, n) in [("b", 3), ("a", 2)] {
        std::fs::create_dir_all(root.join(class)).unwrap();
        for i in 0..n {
            let ext = if i % 2 == 0 { "png" } else { "jpg" };
            save_digit(&root.join(class).join(format!("{i}.{ext}")), i);
        }
    }
    let set = load_image_folder(&root, FolderMode::MnistStyle).unwrap();
    assert_eq!(set.class_names, vec!["a", "b"]);
    assert_eq!(set.labels, vec![0, 0, 1, 1, 1]);
    assert_eq!((set.channels, set.height, set.width), (1, 28, 28));
    check_trainable(&set).unwrap();
    let rgb = load_image_folder(
        &root,
        FolderMode::Rgb {
            width: 8,
            height: 6,
        },
    )
    .unwrap();
    assert_eq!(
        (rgb.channels, rgb.height, rgb.width, rgb.pixels.len()),
        (3, 6, 8, 5 * 3 * 48)
    );
    // A white corner pixel is (1, 1, 1) in all three planes.
    assert!((0..3).all(|c| rgb.image(0)[c * 48] > 0.99));

    // A class folder with a single image: loads, but cannot train; the error names it.
    std::fs::create_dir_all(root.join("c_single")).unwrap();
    save_digit(&root.join("c_single").join("only.png"), 0);
    let set = load_image_folder(&root, FolderMode::MnistStyle).unwrap();
    let msg = check_trainable(&set).unwrap_err().to_string();
    assert!(msg.contains("c_single"), "{msg}");

    // A non-image file and a corrupt image are errors naming them.
    let notes = write(&root.join("a"), "notes.txt", b"hello");
    let msg = load_image_folder(&root, FolderMode::MnistStyle)
        .unwrap_err()
        .to_string();
    assert!(msg.contains(&notes.display().to_string()), "{msg}");
    std::fs::remove_file(&notes).unwrap();
    let corrupt = write(&root.join("b"), "zz.png", b"\x89PNG\r\n\x1a\nbroken");
    let msg = load_image_folder(&root, FolderMode::MnistStyle)
        .unwrap_err()
        .to_string();
    assert!(msg.contains(&corrupt.display().to_string()), "{msg}");

    // Missing and empty folders.
    let missing = tmp.path().join("nope");
    assert!(load_image_folder(&missing, FolderMode::MnistStyle)
        .unwrap_err()
        .to_string()
        .contains("nope"));
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    assert!(load_image_folder(&empty, FolderMode::MnistStyle).is_err());
    assert!(load_unknown_images(&empty).is_err());

    // Unknowns: a nested folder, non-image files skipped.
    std::fs::remove_file(&corrupt).unwrap();
    write(&root, "readme.txt", b"x");
    let unknown = load_unknown_images(&root).unwrap();
    assert_eq!(unknown.len(), 6);
    assert_eq!(unknown.class_names, vec!["unknown"]);
}

#[test]
fn omniglot_latin_alphabet_and_zip_unknowns() {
    let Some(omniglot) = locate(TestData::Omniglot) else {
        return;
    };
    let small1 = omniglot.join("images_background_small1.zip");
    let latin = load_omniglot_alphabet(&small1, "Latin").unwrap();
    assert_eq!(latin.class_names.len(), 26);
    assert_eq!(latin.len(), 26 * 20);
    assert!(latin.class_names[0].ends_with("Latin/character01"));
    assert!((0..26u32).all(|c| latin.labels.iter().filter(|&&l| l == c).count() == 20));
    // Black ink on white became white ink on black, centred by mass.
    for i in (0..latin.len()).step_by(37) {
        let img = latin.image(i);
        assert_eq!(img[0], 0.0);
        let (cx, cy) = centre_of_mass(img, 28, 28);
        assert!(
            (cx - 14.0).abs() <= 1.0 && (cy - 14.0).abs() <= 1.0,
            "image {i}: ({cx}, {cy})"
        );
        // Thin 105-px pen strokes are thickened towards MNIST's.
        let fraction = stroke_fraction(img, 28, 28).unwrap();
        assert!(fraction >= 0.07, "image {i}: stroke fraction {fraction}");
    }
    let msg = load_omniglot_alphabet(&small1, "Klingon")
        .unwrap_err()
        .to_string();
    assert!(msg.contains("Klingon") && msg.contains("Latin"), "{msg}");

    let all = load_unknown_images(&small1).unwrap();
    assert_eq!(all.len(), 2720);
}

/// The skip is never silent: without the data a test records one line saying what is missing and
/// how to get it; under `SIAMESE_REQUIRE_TEST_DATA=1` (CI) the same test fails with that line.
/// Runs this binary's Omniglot test again with the data pointed at an empty folder.
#[test]
fn missing_test_data_is_a_recorded_skip_or_under_ci_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    let skips = dir.path().join("skips");
    let rerun = |require: bool| {
        let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
        cmd.args([
            "omniglot_latin_alphabet_and_zip_unknowns",
            "--exact",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env("SIAMESE_TEST_DATA", dir.path().join("no-data-here"))
        .env("SIAMESE_TEST_SKIPS", &skips);
        if require {
            cmd.env("SIAMESE_REQUIRE_TEST_DATA", "1");
        } else {
            cmd.env_remove("SIAMESE_REQUIRE_TEST_DATA");
        }
        cmd.output().unwrap()
    };

    let skipped = rerun(false);
    assert!(skipped.status.success(), "{skipped:?}");
    let records: Vec<String> = std::fs::read_dir(&skips)
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    assert_eq!(records.len(), 1, "{records:?}");
    let record = &records[0];
    assert_eq!(record.lines().count(), 1, "{record}");
    for needle in [
        "omniglot_latin_alphabet_and_zip_unknowns: skipped",
        "no-data-here/omniglot/images_background_small1.zip",
        "Omniglot",
        "SIAMESE_TEST_DATA",
    ] {
        assert!(record.contains(needle), "{needle} in {record}");
    }

    let failed = rerun(true);
    assert!(!failed.status.success(), "must fail under CI: {failed:?}");
    let out = String::from_utf8_lossy(&failed.stdout).into_owned()
        + &String::from_utf8_lossy(&failed.stderr);
    let line = out
        .lines()
        .find(|l| l.starts_with("missing test data: "))
        .unwrap_or_else(|| panic!("no one-line message in: {out}"));
    assert!(
        line.contains("no-data-here/omniglot") && line.contains("SIAMESE_TEST_DATA"),
        "{line}"
    );
}

/// A FIFO among the images (or given as one image) is a one-line error naming it, not a read
/// that waits forever.
#[test]
fn fifos_among_images_are_errors_not_hangs() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    for class in ["a", "b"] {
        std::fs::create_dir_all(root.join(class)).unwrap();
        for i in 0..2 {
            GrayImage::from_pixel(28, 28, Luma([i * 90]))
                .save(root.join(class).join(format!("{i}.png")))
                .unwrap();
        }
    }
    let fifo = root.join("b").join("stuck.png");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    for msg in [
        load_image_folder(&root, FolderMode::MnistStyle)
            .unwrap_err()
            .to_string(),
        load_unknown_images(&root).unwrap_err().to_string(),
        load_image_mnist_style(&fifo).unwrap_err().to_string(),
    ] {
        assert!(
            msg.contains("stuck.png") && msg.contains("FIFO") && msg.lines().count() == 1,
            "{msg}"
        );
    }
}
