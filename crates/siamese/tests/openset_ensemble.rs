//! The `ensemble` open-set score on hand-made numbers: the conformal p-value term, Fisher's sum
//! over the four components, the conv1 fits, a whole score through
//! [`Scorer::score_probed`] computed by hand, and the one-line refusals (no conv1 summaries, no
//! fit).

use siamese::distance::Distance;
use siamese::embed::Embeddings;
use siamese::recognize::ensemble::{fisher_term, EnsembleFit, ProbedEmbeddings};
use siamese::recognize::gini::SoftmaxLayer;
use siamese::recognize::scores::{knn_kth, MahalanobisFit, Score, Scorer};
use siamese::recognize::Gallery;

#[path = "common/two_classes.rs"]
mod two_classes;
use two_classes::two_classes;

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-5
}

#[test]
fn the_p_value_term_is_minus_log_of_the_conformal_p_value() {
    let reference = [1.0f32, 2.0, 3.0, 4.0];
    // p = (1 + #{reference ≥ v}) / 5.
    assert!(close(fisher_term(&reference, 0.0), 0.0)); // 5/5
    assert!(close(fisher_term(&reference, 2.0), -(4.0f64 / 5.0).ln())); // 2, 3, 4 ≥ 2
    assert!(close(fisher_term(&reference, 2.5), -(3.0f64 / 5.0).ln()));
    assert!(close(fisher_term(&reference, 9.0), 5f64.ln())); // beyond all: 1/5
    assert!(close(fisher_term(&reference, f32::NAN), 5f64.ln()));
}

#[test]
fn the_score_is_fishers_sum_over_the_four_components() {
    let (x, labels) = two_classes();
    // conv1 "means" are the points themselves, conv1 "stds" the points shifted by (5, 5):
    // both fits then see the same shared covariance, diag(0.5, 2).
    let shifted: Vec<f32> = x.iter().map(|v| v + 5.0).collect();
    let train = ProbedEmbeddings {
        embeddings: Embeddings {
            values: x.clone(),
            dim: 2,
        },
        conv1_means: x.clone(),
        conv1_stds: shifted.clone(),
        channels: 2,
    };
    let fit = EnsembleFit::fit_conv1(&train, &labels, 2).unwrap();
    // Every training point is at Mahalanobis distance 2 from its class mean (1²·2 or 2²·0.5).
    let [m, s] = fit.conv1_components(&train);
    assert!(
        m.iter().chain(&s).all(|&d| close(d as f64, 2.0)),
        "{m:?} {s:?}"
    );
    // Reference: each component's "validation" scores 1, 2, 3, 4.
    let reference: [Vec<f32>; 4] = std::array::from_fn(|_| vec![4.0, 1.0, 3.0, 2.0]);
    let fit = fit.with_reference(reference).unwrap();
    assert_eq!(fit.reference[0], vec![1.0, 2.0, 3.0, 4.0]);
    // Components 2, 2.5, 9, 0 ⇒ −ln(4/5) − ln(3/5) − ln(1/5) − ln(5/5).
    let combined = fit
        .combine(&[vec![2.0], vec![2.5], vec![9.0], vec![0.0]])
        .unwrap();
    let expected = -(0.8f64.ln() + 0.6f64.ln() + 0.2f64.ln());
    assert!(close(combined[0] as f64, expected), "{combined:?}");

    // Through the scorer: a query at (1, 1) with conv1 summaries (1, 1) and (6, 6).
    let gallery = Gallery::new(x.clone(), labels.clone(), 2, 2, Distance::Euclidean).unwrap();
    let maha = MahalanobisFit::fit(&x, &labels, &gallery.prototypes, 2).unwrap();
    let softmax = SoftmaxLayer {
        dim: 2,
        classes: 2,
        weights: vec![1.0, 0.0, 0.0, 1.0],
        bias: vec![0.0, 0.0],
    };
    let scorer = Scorer {
        gallery: &gallery,
        k: 2,
        softmax: &softmax,
        mahalanobis: Some(&maha),
        ensemble: Some(&fit),
    };
    let query = ProbedEmbeddings {
        embeddings: Embeddings {
            values: vec![1.0, 1.0],
            dim: 2,
        },
        conv1_means: vec![1.0, 1.0],
        conv1_stds: vec![6.0, 6.0],
        channels: 2,
    };
    let got = scorer.score_probed(Score::Ensemble, &query).unwrap();
    // conv1 components: (1, 1) from (0, 0) under diag(2, 0.5) = 2.5, twice; embedding
    // Mahalanobis the same 2.5; k-th (k = 2) neighbour on L2-normalised rows, by hand below.
    let kth = knn_kth(&[1.0, 1.0], &x, &labels, 2, 2)[0];
    let by_hand = 3.0 * fisher_term(&fit.reference[0], 2.5) + fisher_term(&fit.reference[3], kth.1);
    assert_eq!(got[0].0, kth.0, "the class is the k-th neighbour vote's");
    assert!(close(got[0].1 as f64, by_hand), "{got:?} vs {by_hand}");
    // 2.5 is above 1 and 2 of the reference: −ln(3/5) each.
    assert!(close(fisher_term(&fit.reference[0], 2.5), -(0.6f64.ln())));

    // Refusals, each one line: embeddings alone, and a scorer without the fit.
    let err = scorer
        .score(Score::Ensemble, &[1.0, 1.0])
        .unwrap_err()
        .to_string();
    assert!(err.contains("ensemble") && !err.contains('\n'), "{err}");
    let without = Scorer {
        ensemble: None,
        ..scorer
    };
    let err = without
        .score_probed(Score::Ensemble, &query)
        .unwrap_err()
        .to_string();
    assert!(err.contains("calibration") && !err.contains('\n'), "{err}");
    // A reference of the wrong shape is refused.
    let bad = EnsembleFit::fit_conv1(&train, &labels, 2)
        .unwrap()
        .with_reference([vec![1.0], vec![1.0, 2.0], vec![1.0], vec![1.0]]);
    assert!(bad.is_err());
}
