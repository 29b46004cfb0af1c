//! Tests of crate::eval: retrieval metrics on hand-computed galleries, k-NN search against brute
//! force, NMI/AMI/pairwise scores against scikit-learn, k-means, and open-set scores.

mod common;
use common::cpu_seconds;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use siamese::cluster::kmeans::{kmeans, kmeans_with, KMeansConfig};
use siamese::distance::Distance;
use siamese::eval::clustering::{noise_as_singletons, NOISE};
use siamese::eval::openset::roc_area;
use siamese::eval::*;

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol
}

fn random_matrix(rows: usize, dim: usize, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..rows * dim)
        .map(|_| rng.random::<f32>() * 2.0 - 1.0)
        .collect()
}

#[test]
fn distances_match_hand_values() {
    let (a, b) = ([1.0f32, 2.0, 2.0], [1.0f32, 0.0, 0.0]);
    assert!((Distance::Euclidean.between(&a, &b) - 8f32.sqrt()).abs() < 1e-6);
    assert!((Distance::SquaredEuclidean.between(&a, &b) - 8.0).abs() < 1e-6);
    // cos = 1 / 3
    assert!((Distance::Cosine.between(&a, &b) - 2.0 / 3.0).abs() < 1e-6);
    assert!((Distance::L1.between(&a, &b) - 4.0).abs() < 1e-6);
    assert_eq!(Distance::Cosine.between(&[0.0, 0.0], &[1.0, 0.0]), 1.0);
    for d in Distance::ALL {
        assert_eq!(d.name().parse::<Distance>().unwrap(), d);
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(json, format!("\"{}\"", d.name()));
        assert_eq!(serde_json::from_str::<Distance>(&json).unwrap(), d);
    }
    let err = "chebyshev".parse::<Distance>().unwrap_err().to_string();
    assert!(err.contains("chebyshev"), "{err}");
}

/// 1-D gallery: A at 0, B at 1, A at 2, B at 3, A at 10. Queries (hand-ranked in the comments).
#[test]
fn retrieval_metrics_on_hand_made_gallery() {
    let gallery = [0.0f32, 1.0, 2.0, 3.0, 10.0];
    let gallery_labels = [0u32, 1, 0, 1, 0];
    // q 0.4 (A): A B A B A, R = 3 → P@1 1, RP 2/3, MAP (1 + 2/3)/3 = 5/9, 5-NN A.
    // q 1.2 (B): B A A B A, R = 2 → P@1 1, RP 1/2, MAP 1/2, 5-NN A (wrong).
    // q 2.9 (A): B A B A A, R = 3 → P@1 0, RP 1/3, MAP (1/2)/3 = 1/6, 5-NN A.
    // q 5.0 (label 7): no such label in the gallery → left out of every metric.
    let query = [0.4f32, 1.2, 2.9, 5.0];
    let query_labels = [0u32, 1, 0, 7];
    for distance in Distance::ALL.into_iter().filter(|d| *d != Distance::Cosine) {
        let m = retrieval_metrics(
            &query,
            &query_labels,
            &gallery,
            &gallery_labels,
            1,
            distance,
            false,
        )
        .unwrap();
        assert!(
            close(m.precision_at_1, 2.0 / 3.0, 1e-9),
            "{distance}: {m:?}"
        );
        assert!(close(m.r_precision, 0.5, 1e-9), "{distance}: {m:?}");
        assert!(close(m.map_at_r, 11.0 / 27.0, 1e-9), "{distance}: {m:?}");
        assert!(
            close(m.knn_accuracy_1, 2.0 / 3.0, 1e-9),
            "{distance}: {m:?}"
        );
        assert!(
            close(m.knn_accuracy_5, 2.0 / 3.0, 1e-9),
            "{distance}: {m:?}"
        );
    }
}

/// Leave-one-out on points 0, 0.1 (A), 5, 5.1 (B), 5.3 (A); 5-NN ties (2–2) go to the nearer label.
#[test]
fn retrieval_metrics_leave_one_out() {
    let points = [0.0f32, 0.1, 5.0, 5.1, 5.3];
    let labels = [0u32, 0, 1, 1, 0];
    let m = retrieval_metrics(
        &points,
        &labels,
        &points,
        &labels,
        1,
        Distance::Euclidean,
        true,
    )
    .unwrap();
    assert!(close(m.precision_at_1, 0.8, 1e-9), "{m:?}");
    assert!(close(m.r_precision, 0.6, 1e-9), "{m:?}");
    assert!(close(m.map_at_r, 0.6, 1e-9), "{m:?}");
    assert!(close(m.knn_accuracy_5, 0.4, 1e-9), "{m:?}");
    // Without exclusion every point finds itself first.
    let m = retrieval_metrics(
        &points,
        &labels,
        &points,
        &labels,
        1,
        Distance::Euclidean,
        false,
    )
    .unwrap();
    assert_eq!(m.precision_at_1, 1.0);
}

#[test]
fn retrieval_metrics_reject_bad_input() {
    let e = |r: siamese::Result<RetrievalMetrics>| r.unwrap_err().to_string();
    let g = [0.0f32, 1.0, 2.0, 3.0];
    assert!(e(retrieval_metrics(
        &g,
        &[0, 1],
        &g,
        &[0, 1],
        3,
        Distance::L1,
        false
    ))
    .contains("dimension 3"));
    assert!(e(retrieval_metrics(
        &g,
        &[0],
        &g,
        &[0, 1],
        2,
        Distance::L1,
        false
    ))
    .contains("query labels"));
    assert!(e(retrieval_metrics(
        &g,
        &[0, 1],
        &g,
        &[0, 1],
        0,
        Distance::L1,
        false
    ))
    .contains("dim"));
    assert!(e(retrieval_metrics(
        &[f32::NAN, 0.0],
        &[0],
        &g,
        &[0, 1],
        2,
        Distance::L1,
        false
    ))
    .contains("non-finite"));
    assert!(e(retrieval_metrics(
        &g[..2],
        &[0],
        &g,
        &[0, 1],
        2,
        Distance::L1,
        true
    ))
    .contains("same set"));
    assert!(e(retrieval_metrics(
        &g,
        &[0, 1],
        &g,
        &[0, 1],
        2,
        Distance::L1,
        true
    ))
    .contains("no query"));
}

#[test]
fn nearest_matches_brute_force_for_every_distance() {
    let dim = 7;
    let query = random_matrix(130, dim, 1);
    let gallery = random_matrix(300, dim, 2);
    for distance in Distance::ALL {
        let got = nearest(&query, &gallery, dim, distance, 4);
        let matrix = pairwise_distances(&query, &gallery, dim, distance).unwrap();
        assert_eq!(got.len(), 130);
        for (qi, row) in got.iter().enumerate() {
            let q = &query[qi * dim..(qi + 1) * dim];
            let mut brute: Vec<(usize, f32)> = gallery
                .chunks_exact(dim)
                .map(|g| distance.between(q, g))
                .enumerate()
                .collect();
            brute.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
            let ids: Vec<usize> = row.iter().map(|r| r.0).collect();
            let want: Vec<usize> = brute[..4].iter().map(|r| r.0).collect();
            assert_eq!(ids, want, "{distance} query {qi}");
            for (&(j, d), (_, bd)) in row.iter().zip(&brute) {
                assert!((d - bd).abs() < 1e-5, "{distance}");
                assert!(
                    (matrix[qi * 300 + j] - d).abs() < 1e-4,
                    "{distance}: {} vs {d}",
                    matrix[qi * 300 + j]
                );
            }
        }
    }
    assert!(nearest(&query, &gallery, dim, Distance::L1, 0)
        .iter()
        .all(Vec::is_empty));
    assert_eq!(
        nearest(&query, &gallery[..2 * dim], dim, Distance::L1, 5)[0].len(),
        2
    );
}

/// A gallery past the size where `nearest` walks it in tiles: the same neighbours as sorting
/// every distance, ties (duplicated rows) to the lower index, for both GEMM distances.
#[test]
fn nearest_in_tiles_matches_brute_force_with_ties() {
    let dim = 12;
    let n = 70_000;
    let mut gallery = random_matrix(n, dim, 5);
    // Rows 40,000.. repeat rows 0..: every query near one of those has a tie at distance d.
    let (head, tail) = gallery.split_at_mut(40_000 * dim);
    tail[..1_000 * dim].copy_from_slice(&head[..1_000 * dim]);
    let mut query = random_matrix(300, dim, 6);
    query[..dim].copy_from_slice(&gallery[3 * dim..4 * dim]);
    for distance in [Distance::SquaredEuclidean, Distance::Cosine] {
        let got = nearest(&query, &gallery, dim, distance, 10);
        let matrix = pairwise_distances(&query, &gallery, dim, distance).unwrap();
        for (qi, row) in got.iter().enumerate() {
            let mut brute: Vec<(usize, f32)> = matrix[qi * n..(qi + 1) * n]
                .iter()
                .copied()
                .enumerate()
                .collect();
            brute.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
            let ids: Vec<usize> = row.iter().map(|r| r.0).collect();
            let want: Vec<usize> = brute[..10].iter().map(|r| r.0).collect();
            assert_eq!(ids, want, "{distance} query {qi}");
        }
        // The query equal to row 3 finds row 3, then its copy 40,003, at distance 0.
        assert_eq!(got[0][0].0, 3, "{distance}");
        assert_eq!(got[0][1].0, 40_003, "{distance}");
    }
}

// Reference values: scikit-learn 1.9.1, normalized_mutual_info_score and
// adjusted_mutual_info_score (average_method="arithmetic"), and pair_confusion_matrix for the
// pairwise scores, computed once in a throwaway virtual environment on the same label vectors.
#[test]
fn nmi_ami_pairwise_match_scikit_learn() {
    let small_t = [0u32, 0, 0, 1, 1, 1, 2, 2, 2, 2];
    let small_p = [0u32, 0, 1, 1, 1, 2, 2, 2, 0, 0];
    let formula_t: Vec<u32> = (0..200u32).map(|i| (i * 7 + 3) % 5).collect();
    let formula_p: Vec<u32> = (0..200u32).map(|i| (i * i + 2 * i) % 7).collect();
    let blocks_t: Vec<u32> = (0..300u32).map(|i| i / 20).collect();
    let blocks_p: Vec<u32> = (0..300u32)
        .map(|i| {
            if i % 10 != 0 {
                i / 20
            } else {
                (i / 20 + 1) % 15
            }
        })
        .collect();
    // (truth, predicted, nmi, ami, [precision, recall, f1])
    type Case<'a> = (&'a [u32], &'a [u32], f64, f64, [f64; 3]);
    let cases: [Case; 3] = [
        (
            &small_t,
            &small_p,
            0.3946483716358942,
            0.17152423540072848,
            [1.0 / 3.0; 3],
        ),
        (
            &formula_t,
            &formula_p,
            0.0012041986902801354,
            -0.020124282189881264,
            [
                0.18533409917671836,
                0.24820512820512822,
                0.21221089553874822,
            ],
        ),
        (
            &blocks_t,
            &blocks_p,
            0.8799568142203807,
            0.8596550268112717,
            [0.8105263157894737; 3],
        ),
    ];
    for (t, p, want_nmi, want_ami, want_pw) in cases {
        assert!(
            close(nmi(t, p), want_nmi, 1e-9),
            "nmi {} vs {want_nmi}",
            nmi(t, p)
        );
        assert!(
            close(ami(t, p), want_ami, 1e-9),
            "ami {} vs {want_ami}",
            ami(t, p)
        );
        let s = pairwise_scores(t, p);
        assert!(close(s.precision, want_pw[0], 1e-12), "{s:?}");
        assert!(close(s.recall, want_pw[1], 1e-12), "{s:?}");
        assert!(close(s.f1, want_pw[2], 1e-12), "{s:?}");
    }
    // A relabelled perfect clustering, and the single-cluster limit case.
    let perm: Vec<u32> = small_t.iter().map(|l| (l + 1) % 3).collect();
    assert!(close(nmi(&small_t, &perm), 1.0, 1e-12) && close(ami(&small_t, &perm), 1.0, 1e-12));
    assert_eq!(nmi(&[4, 4, 4], &[1, 1, 1]), 1.0);
    assert_eq!(ami(&[4, 4, 4], &[1, 1, 1]), 1.0);
}

#[test]
fn noise_items_are_singletons() {
    let t = [0u32, 0, 0, 0, 1, 1, 1, 2, 2];
    let p = [5u32, 5, 5, NOISE, 7, 7, NOISE, NOISE, NOISE];
    // scikit-learn 1.9.1 with each noise item relabelled to its own cluster:
    // pairwise (1.0, 0.4, 0.5714285714285715), NMI 0.7749577168016911, AMI 0.535250069201366.
    let s = pairwise_scores(&t, &p);
    assert!(
        close(s.precision, 1.0, 1e-12)
            && close(s.recall, 0.4, 1e-12)
            && close(s.f1, 0.5714285714285715, 1e-12),
        "{s:?}"
    );
    let q = noise_as_singletons(&p);
    assert!(close(nmi(&t, &q), 0.7749577168016911, 1e-9));
    assert!(close(ami(&t, &q), 0.535250069201366, 1e-9));
    // Everything noise: no predicted pair, so precision is vacuous and recall 0.
    let s = pairwise_scores(&t, &[NOISE; 9]);
    assert_eq!((s.precision, s.recall, s.f1), (1.0, 0.0, 0.0));
}

/// Three well-separated Gaussian blobs in 5-D: k-means finds them exactly, deterministically.
#[test]
fn kmeans_recovers_blobs() {
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let dim = 5;
    let mut data = Vec::new();
    let mut truth = Vec::new();
    for i in 0..300u32 {
        let c = i % 3;
        truth.push(c);
        for d in 0..dim {
            let centre = if d as u32 == c { 10.0 } else { 0.0 };
            data.push(centre + rng.random::<f32>() - 0.5);
        }
    }
    let pred = kmeans(&data, dim, 3, 42, 100);
    assert_eq!(pred.len(), 300);
    assert_eq!(nmi(&truth, &pred), 1.0);
    assert_eq!(pred, kmeans(&data, dim, 3, 42, 100));
    let fit = kmeans_with(
        &data,
        dim,
        &KMeansConfig {
            k: 3,
            seed: 1,
            max_iter: 50,
            restarts: 2,
        },
    )
    .unwrap();
    // Each point is within 0.5·√5 of its centre: inertia below 300 · 5 · 0.25 / 3.
    assert!(fit.inertia < 150.0, "{}", fit.inertia);
    assert_eq!(fit.centroids.len(), 3 * dim);
    // k beyond the number of points is clamped, and an error through the strict entry point.
    assert_eq!(kmeans(&data[..2 * dim], dim, 5, 0, 10).len(), 2);
    assert!(kmeans_with(
        &data[..2 * dim],
        dim,
        &KMeansConfig {
            k: 5,
            seed: 0,
            max_iter: 5,
            restarts: 1
        }
    )
    .is_err());
}

#[test]
fn auroc_and_thresholds() {
    let known = [0.1f32, 0.2, 0.3, 0.4];
    assert_eq!(auroc(&known, &[0.5, 0.6, 0.9]), 1.0);
    assert_eq!(auroc(&known, &known), 0.5);
    assert_eq!(auroc(&[0.5, 0.6], &known), 0.0);
    // Hand case: unknown 0.25 beats 2 knowns, 0.3 beats 2 and ties 1, 0.5 beats 4 → 8.5 / 12.
    assert!(close(auroc(&known, &[0.25, 0.3, 0.5]), 8.5 / 12.0, 1e-12));
    assert!(close(
        roc_area(&roc_curve(&known, &[0.25, 0.3, 0.5])),
        8.5 / 12.0,
        1e-12
    ));
    assert!(auroc(&[], &known).is_nan());

    let known: Vec<f32> = (1..=100).map(|i| i as f32 / 100.0).collect();
    assert_eq!(threshold_for_tpr(&known, 0.95), 0.95);
    assert_eq!(threshold_for_tpr(&known, 0.07), 0.07);
    assert_eq!(threshold_for_tpr(&known, 1.0), 1.0);
    assert!(threshold_for_tpr(&known, 0.0) < 0.01);
    let unknown: Vec<f32> = (0..10).map(|i| 0.9 + i as f32 / 100.0).collect();
    // Threshold 0.95 accepts unknowns 0.90..=0.95: 6 of 10.
    assert!(close(fpr_at_tpr(&known, &unknown, 0.95), 0.6, 1e-12));
    let curve = roc_curve(&known, &unknown);
    assert_eq!(curve.first().map(|p| (p.tpr, p.fpr)), Some((0.0, 0.0)));
    assert_eq!(curve.last().map(|p| (p.tpr, p.fpr)), Some((1.0, 1.0)));
    assert!(close(roc_area(&curve), auroc(&known, &unknown), 1e-12));
}

/// Timing at MNIST scale (10k test queries × 60k train gallery, dim 64):
/// `cargo test --release -p siamese --test eval -- --ignored --nocapture`.
#[test]
#[ignore]
fn retrieval_timing_mnist_scale() {
    let dim = 64;
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let centres = random_matrix(10, dim, 4);
    let mut make = |n: usize| {
        let labels: Vec<u32> = (0..n).map(|_| rng.random_range(0..10u32)).collect();
        let data: Vec<f32> = labels
            .iter()
            .flat_map(|&l| (0..dim).map(move |d| (l as usize, d)))
            .map(|(l, d)| centres[l * dim + d] + 0.3 * (rng.random::<f32>() - 0.5))
            .collect();
        (data, labels)
    };
    let (q, ql) = make(10_000);
    let (g, gl) = make(60_000);
    // Prints wall and CPU seconds (CPU time says more on a shared machine).
    let timed = |what: &str, run: &mut dyn FnMut() -> String| {
        let (start, cpu) = (std::time::Instant::now(), cpu_seconds());
        let result = run();
        println!(
            "{what}: {:.2} s wall, {:.2} s CPU: {result}",
            start.elapsed().as_secs_f64(),
            cpu_seconds() - cpu
        );
    };
    for distance in [Distance::Euclidean, Distance::Cosine] {
        timed(&format!("{distance} 10k x 60k x 64"), &mut || {
            let m = retrieval_metrics(&q, &ql, &g, &gl, dim, distance, false).unwrap();
            format!("{m:?}")
        });
    }
    timed("nearest k=5, 10k x 60k x 64", &mut || {
        format!(
            "{} rows",
            nearest(&q, &g, dim, Distance::Euclidean, 5).len()
        )
    });
    let (big, _) = siamese::index::synthetic::faces(100_000, 10, 128, 1);
    let few = siamese::index::synthetic::queries(100_000, 128, 1, 1000);
    timed("nearest k=10, 1k x 1M x 128 (tiles)", &mut || {
        let found = nearest(&few, &big, 128, Distance::Euclidean, 10);
        format!("{} rows, first {:?}", found.len(), found[0][0])
    });
    timed("leave-one-out 10k x 10k x 64", &mut || {
        let m = retrieval_metrics(&q, &ql, &q, &ql, dim, Distance::Euclidean, true).unwrap();
        format!("{m:?}")
    });
    timed("k-means 10k x 64, k=10", &mut || {
        format!("nmi {:.4}", nmi(&ql, &kmeans(&q, dim, 10, 0, 100)))
    });
}
