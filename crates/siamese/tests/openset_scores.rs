//! The open-set scores on hand-made embeddings against numbers computed by hand (k-th
//! neighbour on L2-normalised embeddings, prototypes, Mahalanobis with a shared covariance,
//! MSP, energy, Gini), AUPR, the noise sets, the calibration of every score, and the refusals:
//! a calibration without the chosen score, an exposure set that is also a test set, an exposure
//! folder without images.

use siamese::distance::Distance;
use siamese::embed::Embeddings;
use siamese::eval::openset::aupr;
use siamese::recognize::calibration::calibrate_ensemble;
use siamese::recognize::calibration::Calibration;
use siamese::recognize::ensemble::ProbedEmbeddings;
use siamese::recognize::gini::SoftmaxLayer;
use siamese::recognize::openset::{check_disjoint, parse_unknown_list, NoiseKind, UnknownSource};
use siamese::recognize::recognizer::calibrate_embeddings;
use siamese::recognize::scores::{knn_kth, MahalanobisFit, Score, Scorer};
use siamese::recognize::{CalibrateOptions, Gallery};
use siamese::train::outliers::OutlierSource;

#[path = "common/two_classes.rs"]
mod two_classes;
use two_classes::two_classes;

fn close(a: f32, b: f32) -> bool {
    (a - b).abs() < 1e-4
}

/// A 2-class softmax over 2-d embeddings whose logits are the embedding itself.
fn identity_softmax() -> SoftmaxLayer {
    SoftmaxLayer {
        dim: 2,
        classes: 2,
        weights: vec![1.0, 0.0, 0.0, 1.0],
        bias: vec![0.0, 0.0],
    }
}

#[test]
fn mahalanobis_and_prototypes_match_hand_computed_distances() {
    let (x, labels) = two_classes();
    let gallery = Gallery::new(x.clone(), labels.clone(), 2, 2, Distance::Euclidean).unwrap();
    assert_eq!(gallery.prototypes, vec![0.0, 0.0, 10.0, 0.0]);
    let fit = MahalanobisFit::fit(&x, &labels, &gallery.prototypes, 2).unwrap();
    // Σ = diag(0.5, 2) ⇒ Σ⁻¹ = diag(2, 0.5) (up to the 1e-6 ridge).
    assert!((fit.precision[0] - 2.0).abs() < 1e-4 && (fit.precision[3] - 0.5).abs() < 1e-4);
    assert!(fit.precision[1].abs() < 1e-9);
    // (1, 1): 1²·2 + 1²·0.5 = 2.5 from class 0; (9, 1): 81·2 + 0.5 = 162.5 from class 1.
    let pred = fit.predict(&[1.0, 1.0, 9.0, 1.0]);
    assert_eq!((pred[0].0, pred[1].0), (0, 1));
    assert!(close(pred[0].1, 2.5) && close(pred[1].1, 2.5), "{pred:?}");
    // (1, 1) and (0, 3) by Euclidean distance to the prototypes: √2 and 3; by Mahalanobis,
    // (0, 3) is 9·0.5 = 4.5 (the shared covariance says y varies four times more than x).
    let softmax = identity_softmax();
    let scorer = Scorer {
        gallery: &gallery,
        k: 3,
        softmax: &softmax,
        mahalanobis: Some(&fit),
        ensemble: None,
    };
    let protos = scorer
        .score(Score::Prototypes, &[1.0, 1.0, 0.0, 3.0])
        .unwrap();
    assert!(
        close(protos[0].1, 2f32.sqrt()) && close(protos[1].1, 3.0),
        "{protos:?}"
    );
    let maha = scorer.score(Score::Mahalanobis, &[0.0, 3.0]).unwrap();
    assert!(close(maha[0].1, 4.5), "{maha:?}");
}

#[test]
fn kth_neighbour_is_measured_on_l2_normalised_embeddings() {
    // Gallery directions 0°, 90°, 180° (class 0, 0, 1), at different lengths: normalising
    // makes them the unit vectors.
    let gallery = [3.0, 0.0, 0.0, 0.5, -2.0, 0.0];
    let labels = [0, 0, 1];
    // The query (5, 5) is at 45°: distance to 0° and 90° unit vectors is √(2 − √2) each, to
    // 180° it is √(2 + √2).
    let near = (2.0f32 - 2f32.sqrt()).sqrt();
    let far = (2.0f32 + 2f32.sqrt()).sqrt();
    let k2 = knn_kth(&[5.0, 5.0], &gallery, &labels, 2, 2);
    assert_eq!(k2[0].0, 0);
    assert!(close(k2[0].1, near), "{k2:?}");
    let k3 = knn_kth(&[5.0, 5.0], &gallery, &labels, 2, 3);
    assert!(close(k3[0].1, far), "{k3:?}");
    // k beyond the gallery is clamped to its size.
    assert!(close(
        knn_kth(&[5.0, 5.0], &gallery, &labels, 2, 50)[0].1,
        far
    ));
}

#[test]
fn softmax_scores_match_hand_computed_values() {
    let (x, labels) = two_classes();
    let gallery = Gallery::new(x, labels, 2, 2, Distance::Euclidean).unwrap();
    // Identity weights: logits = x. At (ln 3, 0): p = (3/4, 1/4).
    let softmax = identity_softmax();
    let scorer = Scorer {
        gallery: &gallery,
        k: 1,
        softmax: &softmax,
        mahalanobis: None,
        ensemble: None,
    };
    let q = [3f32.ln(), 0.0];
    let msp = scorer.score(Score::Msp, &q).unwrap()[0];
    let energy = scorer.score(Score::Energy, &q).unwrap()[0];
    let gini = scorer.score(Score::Gini, &q).unwrap()[0];
    assert_eq!((msp.0, energy.0, gini.0), (0, 0, 0));
    assert!(close(msp.1, 0.25), "{msp:?}");
    assert!(close(energy.1, -(4f32.ln())), "{energy:?}");
    assert!(close(gini.1, 1.0 - 0.5625 - 0.0625), "{gini:?}");
    // Without a Mahalanobis fit that score is refused, not guessed.
    assert!(scorer.score(Score::Mahalanobis, &q).is_err());
    assert_eq!("knn-kth".parse::<Score>().unwrap(), Score::KnnKth);
    let err = "nearest".parse::<Score>().unwrap_err().to_string();
    assert!(
        err.contains("nearest") && err.contains("mahalanobis"),
        "{err}"
    );
}

#[test]
fn aupr_matches_hand_computed_average_precision() {
    // Ranked by score: 0.8 U, 0.4 K, 0.35 U, 0.1 K ⇒ AP = (1/1 + 2/3) / 2.
    let ap = aupr(&[0.1, 0.4], &[0.35, 0.8]);
    assert!((ap - 5.0 / 6.0).abs() < 1e-12, "{ap}");
    assert!((aupr(&[0.0, 0.1], &[0.5, 0.9]) - 1.0).abs() < 1e-12);
    // All tied: precision is the unknowns' share everywhere.
    assert!((aupr(&[1.0; 3], &[1.0]) - 0.25).abs() < 1e-12);
    assert!(aupr(&[], &[1.0]).is_nan());
}

#[test]
fn every_score_is_calibrated_and_a_missing_one_is_a_one_line_error() {
    let (x, labels) = two_classes();
    let emb = Embeddings {
        values: x.clone(),
        dim: 2,
    };
    let names = vec!["a".to_string(), "b".to_string()];
    let options = CalibrateOptions {
        k: 2,
        ..CalibrateOptions::default()
    };
    let (gallery, mut cal) = calibrate_embeddings(
        &emb,
        &labels,
        &emb,
        &labels,
        &names,
        Distance::Euclidean,
        &options,
    )
    .unwrap();
    let run = std::path::Path::new("some-run");
    // Calibrated from embeddings alone, `ensemble` is missing; with conv1 summaries it is not.
    assert!(cal.require_score(run, Score::Ensemble).is_err());
    let probed = ProbedEmbeddings {
        embeddings: emb.clone(),
        conv1_means: x.clone(),
        conv1_stds: x.iter().map(|v| v.abs()).collect(),
        channels: 2,
    };
    calibrate_ensemble(&mut cal, &gallery, &probed, &labels, &probed, &labels).unwrap();
    for score in Score::ALL {
        let t = cal.require_score(run, score).unwrap();
        assert!(t.global.is_finite(), "{score}");
    }
    // The Mahalanobis threshold at 95 % TPR of 8 points is the 8th smallest score: each point
    // is 1 or 2 standard deviations along an axis ⇒ distance 2 (x: 1²·2, y: 2²·0.5).
    let m = cal.require_score(run, Score::Mahalanobis).unwrap().global;
    assert!(close(m, 2.0), "{m}");
    cal.score_thresholds.remove("msp");
    let err = cal.require_score(run, Score::Msp).unwrap_err().to_string();
    assert!(
        !err.contains('\n') && err.contains("msp") && err.contains("--calibrate"),
        "{err}"
    );
    let json = serde_json::to_string(&cal).unwrap();
    let back: Calibration = serde_json::from_str(&json).unwrap();
    assert_eq!(back, cal);
}

#[test]
fn noise_sets_are_deterministic_and_all_expands_to_every_builtin_set() {
    let a = NoiseKind::Gaussian.images(3, 7);
    assert_eq!(a.pixels, NoiseKind::Gaussian.images(3, 7).pixels);
    assert_ne!(a.pixels, NoiseKind::Gaussian.images(3, 8).pixels);
    assert_eq!(a.pixels.len(), 3 * 28 * 28);
    assert!(a.pixels.iter().all(|v| (0.0..=1.0).contains(v)));
    let u = NoiseKind::Uniform.images(2, 1);
    let mean = u.pixels.iter().sum::<f32>() / u.pixels.len() as f32;
    assert!((mean - 0.5).abs() < 0.05, "{mean}");
    assert!(NoiseKind::Blank
        .images(2, 0)
        .pixels
        .iter()
        .all(|&v| v == 0.0));
    assert!(NoiseKind::Ink.images(2, 0).pixels.iter().all(|&v| v == 1.0));
    let all = parse_unknown_list(&["all".to_string()], &[]).unwrap();
    let labels: Vec<String> = all.iter().map(|s| s.label()).collect();
    assert_eq!(
        labels,
        [
            "letters",
            "letters without l,o",
            "omniglot",
            "fashion-mnist",
            "noise-gaussian",
            "noise-uniform",
            "blank",
            "all-ink"
        ]
    );
    let err = parse_unknown_list(&["no/such/folder".to_string()], &[])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no/such/folder") && !err.contains('\n'),
        "{err}"
    );
}

#[test]
fn an_exposure_set_that_is_also_a_test_set_is_refused() {
    let seen = OutlierSource::Omniglot {
        zip: "omniglot.zip".into(),
        alphabets: vec!["Greek".into(), "Korean".into()],
    };
    let greek = UnknownSource::Omniglot {
        alphabet: "Greek".into(),
    };
    let err = check_disjoint(Some(&seen), &greek).unwrap_err().to_string();
    assert!(
        err.contains("omniglot:Greek") && err.contains("seen in training"),
        "{err}"
    );
    let latin = UnknownSource::Omniglot {
        alphabet: "Latin".into(),
    };
    assert!(check_disjoint(Some(&seen), &latin).is_ok());
    assert!(check_disjoint(Some(&seen), &UnknownSource::Letters).is_ok());
    assert!(check_disjoint(None, &greek).is_ok());
    // A folder: the same folder, or one inside it, is refused.
    let dir = tempfile::tempdir().unwrap();
    let inner = dir.path().join("inner");
    std::fs::create_dir(&inner).unwrap();
    let folder = OutlierSource::Images {
        path: dir.path().to_path_buf(),
    };
    assert!(check_disjoint(Some(&folder), &UnknownSource::Path(inner.clone())).is_err());
    assert!(check_disjoint(Some(&folder), &UnknownSource::FashionMnist).is_ok());
    // An exposure folder without images: a one-line error naming it.
    let err = OutlierSource::parse(inner.to_str().unwrap(), None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("inner") && err.contains("no images") && !err.contains('\n'),
        "{err}"
    );
    let err = OutlierSource::parse("omniglot:", None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("no Omniglot alphabet"), "{err}");
}
