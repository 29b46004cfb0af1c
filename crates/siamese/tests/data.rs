//! Data layer: IDX parsing (good and corrupt), MNIST and letters from the cache, MNIST-style
//! transform, image folders, Omniglot, and the stratified split.

use std::path::{Path, PathBuf};

use siamese::data::idx::{encode_idx_images, encode_idx_labels, read_idx_images, read_idx_labels};
use siamese::data::{load_mnist, MnistSplit};

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
    assert!(first.iter().any(|&v| v == 1.0));
}
