//! Tests of crate::viz: PCA and t-SNE recover structure; plots are real PNGs of the stated size.

mod common;
use common::cpu_seconds;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use siamese::viz::pca::pca_2d_fit;
use siamese::viz::*;

/// Standard normal by Box–Muller (keeps the test free of extra crates).
fn normal(rng: &mut ChaCha8Rng) -> f32 {
    let (u, v): (f32, f32) = (rng.random::<f32>().max(1e-7), rng.random());
    (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos()
}

/// `per` points around each of `centres` (row-major, `dim` columns), σ = `spread`.
fn blobs(centres: &[f32], dim: usize, per: usize, spread: f32, seed: u64) -> (Vec<f32>, Vec<u32>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (mut data, mut labels) = (Vec::new(), Vec::new());
    for i in 0..per * (centres.len() / dim) {
        let c = (i % (centres.len() / dim)) as u32;
        labels.push(c);
        for d in 0..dim {
            data.push(centres[c as usize * dim + d] + spread * normal(&mut rng));
        }
    }
    (data, labels)
}

/// Fraction of points closer to their own class's 2-D centroid than to any other.
fn nearest_centroid_accuracy(points: &[[f32; 2]], labels: &[u32]) -> f64 {
    let classes = *labels.iter().max().unwrap() as usize + 1;
    let mut sums = vec![[0f64; 3]; classes];
    for (p, &l) in points.iter().zip(labels) {
        let s = &mut sums[l as usize];
        s[0] += f64::from(p[0]);
        s[1] += f64::from(p[1]);
        s[2] += 1.0;
    }
    let centroids: Vec<[f64; 2]> = sums.iter().map(|s| [s[0] / s[2], s[1] / s[2]]).collect();
    let right = points
        .iter()
        .zip(labels)
        .filter(|(p, &l)| {
            let d =
                |c: &[f64; 2]| (f64::from(p[0]) - c[0]).powi(2) + (f64::from(p[1]) - c[1]).powi(2);
            let own = d(&centroids[l as usize]);
            centroids.iter().all(|c| d(c) >= own)
        })
        .count();
    right as f64 / points.len() as f64
}

#[test]
fn tsne_separates_two_blobs() {
    let dim = 50;
    let mut centres = vec![0f32; 2 * dim];
    centres[dim..].iter_mut().for_each(|v| *v = 1.5); // ‖Δ‖ = 10.6 against σ = 1 per axis
    let (data, labels) = blobs(&centres, dim, 200, 1.0, 5);
    let start = std::time::Instant::now();
    let points = tsne(&data, dim, 30.0, 7, 500).unwrap();
    eprintln!("t-SNE 400 x 50: {:.2} s", start.elapsed().as_secs_f64());
    assert_eq!(points.len(), 400);
    assert!(points.iter().all(|p| p[0].is_finite() && p[1].is_finite()));
    let accuracy = nearest_centroid_accuracy(&points, &labels);
    assert!(accuracy >= 0.99, "nearest-centroid accuracy {accuracy}");
    // Same seed, same picture.
    assert_eq!(points, tsne(&data, dim, 30.0, 7, 500).unwrap());
}

#[test]
fn tsne_rejects_bad_input() {
    assert!(tsne(&[1.0, 2.0, 3.0], 2, 30.0, 0, 10)
        .unwrap_err()
        .to_string()
        .contains("dimension 2"));
    assert!(tsne(&[1.0, f32::NAN], 1, 30.0, 0, 10)
        .unwrap_err()
        .to_string()
        .contains("non-finite"));
    assert!(tsne(&[1.0, 2.0], 1, 0.0, 0, 10)
        .unwrap_err()
        .to_string()
        .contains("perplexity"));
    assert_eq!(tsne(&[1.0], 1, 30.0, 0, 10).unwrap(), vec![[0.0, 0.0]]);
    // Tiny sets lower the perplexity instead of failing.
    assert_eq!(
        tsne(&[0.0, 1.0, 5.0, 6.0, 9.0], 1, 30.0, 0, 50)
            .unwrap()
            .len(),
        5
    );
}

#[test]
fn pca_recovers_the_dominant_direction() {
    // Points along (3, 4, 0)/5 with large spread, small noise elsewhere.
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let mut data = Vec::new();
    for _ in 0..500 {
        let t = 10.0 * normal(&mut rng);
        let (a, b, c) = (normal(&mut rng), normal(&mut rng), normal(&mut rng));
        data.extend_from_slice(&[0.6 * t + 0.1 * a + 7.0, 0.8 * t + 0.1 * b - 2.0, 0.5 * c]);
    }
    let fit = pca_2d_fit(&data, 3);
    let axis = &fit.axes[0];
    assert!(
        (axis[0] - 0.6).abs() < 0.01 && (axis[1] - 0.8).abs() < 0.01 && axis[2].abs() < 0.01,
        "{axis:?}"
    );
    // Second axis: the z direction (σ 0.5 beats the in-plane noise 0.1), sign fixed positive.
    assert!((fit.axes[1][2] - 1.0).abs() < 0.01, "{:?}", fit.axes[1]);
    assert!(fit.explained_variance_ratio[0] > 0.99);
    // The projection is the centred data on the axis.
    let p = pca_2d(&data, 3);
    let along = 0.6 * (data[0] - 7.0) + 0.8 * (data[1] + 2.0);
    assert!((p[0][0] - along).abs() < 0.5, "{} vs {along}", p[0][0]);
    assert_eq!(pca_2d(&data[..3], 3), vec![[0.0, 0.0]]);
}

/// 10 000 points of 10 classes in 64-D: t-SNE time and separation.
/// `cargo test --release -p siamese --test viz -- --ignored --nocapture`
#[test]
#[ignore]
fn tsne_timing_10k() {
    let dim = 64;
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let centres: Vec<f32> = (0..10 * dim).map(|_| 3.0 * normal(&mut rng)).collect();
    let (data, labels) = blobs(&centres, dim, 1000, 1.0, 2);
    {
        let iterations = 1000;
        let (start, cpu) = (std::time::Instant::now(), cpu_seconds());
        let points = tsne(&data, dim, 30.0, 0, iterations).unwrap();
        println!(
            "t-SNE 10k x 64, {iterations} iterations: {:.1} s wall, {:.1} s CPU, nearest-centroid accuracy {:.4}",
            start.elapsed().as_secs_f64(),
            cpu_seconds() - cpu,
            nearest_centroid_accuracy(&points, &labels)
        );
    }
}

/// Where plot tests write: `$SIAMESE_TEST_PLOTS` (to look at the pictures) or a temporary folder.
fn plot_dir() -> (Option<tempfile::TempDir>, std::path::PathBuf) {
    match std::env::var_os("SIAMESE_TEST_PLOTS") {
        Some(dir) => {
            std::fs::create_dir_all(&dir).unwrap();
            (None, dir.into())
        }
        None => {
            let tmp = tempfile::tempdir().unwrap();
            let path = tmp.path().to_path_buf();
            (Some(tmp), path)
        }
    }
}

/// Decodes `path` as PNG (by content, not by name) and returns its size.
fn png_size(path: &std::path::Path) -> (u32, u32) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(
        &bytes[..8],
        b"\x89PNG\r\n\x1a\n",
        "{} is not a PNG",
        path.display()
    );
    let image = image::load_from_memory_with_format(&bytes, image::ImageFormat::Png).unwrap();
    (image.width(), image.height())
}

/// Fraction of pixels that are not white: a drawn figure has some ink but is not a solid block.
fn ink(path: &std::path::Path) -> f64 {
    let image = image::open(path).unwrap().to_rgb8();
    let inked = image.pixels().filter(|p| p.0 != [255, 255, 255]).count();
    inked as f64 / (image.width() * image.height()) as f64
}

#[test]
fn loss_curves_and_histogram_are_pngs_of_the_stated_size() {
    let (_keep, dir) = plot_dir();
    let train: Vec<f64> = (0..12)
        .map(|e| 0.5 * (-0.3 * e as f64).exp() + 0.02)
        .collect();
    let val: Vec<f64> = (0..12)
        .map(|e| 0.55 * (-0.25 * e as f64).exp() + 0.04)
        .collect();
    let loss = dir.join("loss.png");
    loss_curves_png(&loss, &train, &val, "Triplet loss (margin 0.2)").unwrap();
    assert_eq!(png_size(&loss), plot::CHART_SIZE);
    let ink_loss = ink(&loss);
    assert!(ink_loss > 0.01 && ink_loss < 0.5, "ink {ink_loss}");
    // One epoch and no validation still draws.
    loss_curves_png(dir.join("loss1.png"), &[0.3], &[], "one epoch").unwrap();
    assert!(loss_curves_png(dir.join("none.png"), &[], &[], "x").is_err());
    assert!(!dir.join("none.png").exists());

    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let known: Vec<f32> = (0..2000)
        .map(|_| (0.3 + 0.08 * normal(&mut rng)).max(0.0))
        .collect();
    let unknown: Vec<f32> = (0..700)
        .map(|_| (0.9 + 0.15 * normal(&mut rng)).max(0.0))
        .collect();
    let hist = dir.join("histogram.png");
    histogram_png(
        &hist,
        &known,
        &unknown,
        Some(0.45),
        ("digits", "letters"),
        "Distance to the nearest prototype",
    )
    .unwrap();
    assert_eq!(png_size(&hist), plot::CHART_SIZE);
    assert!(ink(&hist) > 0.02);
    assert!(histogram_png(dir.join("h.png"), &[], &[], None, ("a", "b"), "t").is_err());
}

#[test]
fn scatter_montage_and_grid_are_pngs_of_the_stated_size() {
    let (_keep, dir) = plot_dir();
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    let (mut points, mut labels) = (Vec::new(), Vec::new());
    for i in 0..3000u32 {
        let c = i % 10;
        let angle = c as f32 * std::f32::consts::TAU / 10.0;
        points.push([
            20.0 * angle.cos() + 2.5 * normal(&mut rng),
            20.0 * angle.sin() + 2.5 * normal(&mut rng),
        ]);
        labels.push(c);
    }
    let unknown: Vec<[f32; 2]> = (0..300)
        .map(|_| [3.0 * normal(&mut rng), 3.0 * normal(&mut rng)])
        .collect();
    let names: Vec<String> = (0..10).map(|d| d.to_string()).collect();
    let scatter = dir.join("scatter.png");
    scatter_png(
        &scatter,
        &points,
        &labels,
        &names,
        Some(&unknown),
        "t-SNE of test embeddings",
    )
    .unwrap();
    assert_eq!(png_size(&scatter), plot::SCATTER_SIZE);
    assert!(ink(&scatter) > 0.03);
    assert!(scatter_png(
        dir.join("bad.png"),
        &points,
        &labels[..5],
        &names,
        None,
        "x"
    )
    .is_err());

    // Many classes with long names: the legend truncates instead of overflowing.
    let faces: Vec<String> = (0..60)
        .map(|i| format!("Person_Number_{i}_With_A_Long_Name"))
        .collect();
    let face_labels: Vec<u32> = (0..600u32).map(|i| i % 60).collect();
    let face_points: Vec<[f32; 2]> = face_labels
        .iter()
        .map(|&l| {
            [
                (l % 8) as f32 * 10.0 + normal(&mut rng),
                (l / 8) as f32 * 10.0 + normal(&mut rng),
            ]
        })
        .collect();
    scatter_png(
        dir.join("scatter_many.png"),
        &face_points,
        &face_labels,
        &faces,
        None,
        "60 people",
    )
    .unwrap();

    let tiles = [
        scatter.clone(),
        dir.join("scatter_many.png"),
        scatter.clone(),
    ];
    let titles: Vec<String> = ["margin 0.1", "margin 0.5", "margin 0.9"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let montage = dir.join("montage.png");
    montage_png(&montage, &tiles, 2, &titles).unwrap();
    // Tiles scaled to 700 px wide (1220 × 1000 → 700 × 573), 2 columns × 2 rows.
    let (tw, th) = (700u32, (1000.0f64 * 700.0 / 1220.0) as u32);
    let gap = montage::TILE_GAP;
    assert_eq!(
        png_size(&montage),
        (
            2 * tw + 3 * gap,
            2 * (th + montage::MONTAGE_TITLE_HEIGHT) + 3 * gap
        )
    );
    let missing =
        montage_png(dir.join("m.png"), &[dir.join("no-such.png")], 2, &titles).unwrap_err();
    assert!(missing.to_string().contains("no-such.png"), "{missing}");

    let faces: Vec<image::RgbImage> = (0..7u8)
        .map(|k| {
            image::RgbImage::from_fn(150, 120 + u32::from(k) * 10, |x, y| {
                image::Rgb([k * 30, (x % 256) as u8, (y % 256) as u8])
            })
        })
        .collect();
    let grid = dir.join("grid.png");
    image_grid_png(&grid, &faces, 4, 100).unwrap();
    assert_eq!(png_size(&grid), (4 * 100 + 5 * gap, 2 * 100 + 3 * gap));
    assert!(image_grid_png(dir.join("g.png"), &[], 4, 100).is_err());
}

#[test]
fn unwritable_output_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let blocker = tmp.path().join("file");
    std::fs::write(&blocker, b"x").unwrap();
    // A path below a regular file cannot be created.
    let err = loss_curves_png(blocker.join("loss.png"), &[1.0, 0.5], &[], "t")
        .unwrap_err()
        .to_string();
    assert!(err.contains("file"), "{err}");
}
