//! The pair, proxy and margin-softmax losses and the multi-similarity miner against values
//! computed by hand (each formula evaluated term by term in plain floating point), and the
//! refusal of bad loss settings.

use burn::tensor::{Device, Tensor, TensorData};
use siamese::distance::Distance;
use siamese::loss::arcface::{arcface_loss, MarginSoftmaxConfig};
use siamese::loss::circle::{circle_loss, CircleConfig};
use siamese::loss::contrastive::{contrastive_loss, ContrastiveConfig};
use siamese::loss::cosface::cosface_loss;
use siamese::loss::multi_similarity::{multi_similarity_loss, MultiSimilarityConfig};
use siamese::loss::nt_xent::{nt_xent_loss, supcon_loss, TemperatureConfig};
use siamese::loss::pairs::{all_pairs, PairSet};
use siamese::loss::proxy_anchor::{proxy_anchor_loss, ProxyAnchorConfig};
use siamese::loss::{ClassWeights, LossConfig, LossOptions};
use siamese::sampling::pair_mining::multi_similarity_pairs;

/// Four unit vectors: cosines S01 = 0.6, S02 = 0, S03 = −1, S12 = 0.8, S13 = −0.6, S23 = 0;
/// Euclidean distances d01 = √0.8, d02 = √2, d03 = 2, d12 = √0.4, d13 = √3.2, d23 = √2.
const X: [[f32; 2]; 4] = [[1.0, 0.0], [0.6, 0.8], [0.0, 1.0], [-1.0, 0.0]];
const LABELS: [u32; 4] = [0, 0, 1, 1];

fn rows(v: &[[f32; 2]]) -> Tensor<2> {
    let flat: Vec<f32> = v.iter().flatten().copied().collect();
    Tensor::from_data(TensorData::new(flat, [v.len(), 2]), &Device::default())
}

fn value(t: Tensor<1>) -> f32 {
    t.into_scalar()
}

fn close(got: f32, want: f64) {
    assert!(
        (got as f64 - want).abs() < 1e-4 * want.abs().max(1.0),
        "got {got}, want {want}"
    );
}

fn host() -> Vec<f32> {
    X.iter().flatten().copied().collect()
}

fn unit_proxies() -> ClassWeights {
    ClassWeights::from_vectors(rows(&[[1.0, 0.0], [0.0, 1.0]]))
}

#[test]
fn contrastive_matches_hand_computed_values() {
    // Positives: ½·0.8 twice, ½·2 twice → 0.7. Negatives inside the margin 1: only d12 = √0.4,
    // twice: ½(1 − √0.4)² = 0.0675445 → their non-zero mean. Sum 0.7675445.
    let pairs = all_pairs(&LABELS);
    let l = contrastive_loss(
        &ContrastiveConfig::default(),
        Distance::Euclidean,
        rows(&X),
        &pairs,
    );
    close(value(l), 0.7675444679663244);
    // Margins 0.5 / 1.5: positives ½(√0.8 − 0.5)², ½(√2 − 0.5)²; negatives ½(1.5 − √0.4)²,
    // ½(1.5 − √2)² (d02, d23 … each twice).
    let c = ContrastiveConfig {
        pos_margin: 0.5,
        neg_margin: 1.5,
    };
    close(
        value(contrastive_loss(&c, Distance::Euclidean, rows(&X), &pairs)),
        0.4378379908516691,
    );
}

#[test]
fn multi_similarity_miner_keeps_the_informative_pairs() {
    // Anchor 0: hardest positive 0.6, negatives 0 and −1 are not within ε = 0.1 of it, and its
    // positive is not within ε of its hardest negative 0 → nothing. Anchor 1: negative 2 (0.8)
    // is, and so its positive 0. Anchor 2: hardest positive 0, negatives 0 (0) and 1 (0.8) are
    // kept, and its positive 3. Anchor 3: nothing.
    let pairs = multi_similarity_pairs(&host(), &LABELS, 2, 0.1);
    assert_eq!(pairs.positives, vec![(1, 0), (2, 3)]);
    assert_eq!(pairs.negatives, vec![(1, 2), (2, 0), (2, 1)]);
}

#[test]
fn multi_similarity_matches_hand_computed_values() {
    // Anchor 1: ½ ln(1 + e^{−2(0.6−0.5)}) + 1/50 ln(1 + e^{50(0.8−0.5)});
    // anchor 2: ½ ln(1 + e^{−2(0−0.5)}) + 1/50 ln(1 + e^{50(0−0.5)} + e^{50(0.8−0.5)}); mean.
    let pairs = PairSet {
        positives: vec![(1, 0), (2, 3)],
        negatives: vec![(1, 2), (2, 0), (2, 1)],
    };
    let l = multi_similarity_loss(&MultiSimilarityConfig::default(), rows(&X), &pairs);
    close(value(l), 0.7778501453429992);
}

#[test]
fn circle_matches_hand_computed_values() {
    let pairs = all_pairs(&LABELS);
    let small = CircleConfig {
        margin: 0.25,
        scale: 2.0,
    };
    close(
        value(circle_loss(&small, rows(&X), &pairs)),
        2.23712347696858,
    );
    // The default γ = 80 puts the exponents near 100: still exact.
    close(
        value(circle_loss(&CircleConfig::default(), rows(&X), &pairs)),
        64.67506735973346,
    );
}

#[test]
fn nt_xent_and_supcon_match_hand_computed_values() {
    // Labels 0, 0, 0, 1: anchors 0..2 have two positives each, so the two losses differ.
    let labels = [0, 0, 0, 1];
    let pairs = all_pairs(&labels);
    let t = |temperature| TemperatureConfig { temperature };
    close(
        value(nt_xent_loss(&t(0.5), rows(&X), &pairs)),
        0.19829970734926805,
    );
    close(
        value(nt_xent_loss(&t(0.1), rows(&X), &pairs)),
        0.11558917901484622,
    );
    close(
        value(supcon_loss(&t(0.5), rows(&X), &pairs)),
        0.9273602942515146,
    );
    close(
        value(supcon_loss(&t(0.1), rows(&X), &pairs)),
        2.7100250803771626,
    );
}

#[test]
fn proxy_anchor_matches_hand_computed_values() {
    let l = |alpha| {
        let c = ProxyAnchorConfig { alpha, margin: 0.1 };
        value(proxy_anchor_loss(&c, rows(&X), &LABELS, &unit_proxies()).unwrap())
    };
    close(l(32.0), 17.639953389434147);
    close(l(1.0), 2.029998466768504);
}

#[test]
fn arcface_and_cosface_match_hand_computed_values() {
    let c = |margin, scale| MarginSoftmaxConfig { margin, scale };
    let arc = |m, s| value(arcface_loss(&c(m, s), rows(&X), &LABELS, &unit_proxies()).unwrap());
    close(arc(0.5, 2.0), 0.543423996617491);
    close(arc(0.5, 30.0), 4.927431745064059);
    let cos = |m, s| value(cosface_loss(&c(m, s), rows(&X), &LABELS, &unit_proxies()).unwrap());
    close(cos(0.35, 2.0), 0.5275901716536018);
    close(cos(0.35, 30.0), 4.125000019612708);
    // θ + m past π (the embedding opposite its class vector): the target logit becomes
    // s·(cos θ − m·sin m) = 2·(−1 − 0.5·sin 0.5).
    let opposite = arcface_loss(&c(0.5, 2.0), rows(&[[-1.0, 0.0]]), &[0], &unit_proxies());
    close(value(opposite.unwrap()), 2.55989093846587);
}

#[test]
fn a_label_beyond_the_head_is_one_line_naming_it() {
    let err = proxy_anchor_loss(
        &ProxyAnchorConfig::default(),
        rows(&X),
        &[0, 1, 2, 1],
        &unit_proxies(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("class 2") && err.contains("2 classes"),
        "{err}"
    );
    assert!(!err.contains('\n'));
}

#[test]
fn loss_names_and_options_are_checked() {
    let none = LossOptions::default();
    let err = LossConfig::from_options("hinge", &none)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`hinge`") && err.contains("contrastive"),
        "{err}"
    );
    let temp = LossOptions {
        temperature: Some(0.1),
        ..none
    };
    let err = LossConfig::from_options("contrastive", &temp)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("--temperature") && err.contains("contrastive"),
        "{err}"
    );
    let margin = LossOptions {
        margin: Some(0.2),
        ..none
    };
    let err = LossConfig::from_options("nt-xent", &margin)
        .unwrap_err()
        .to_string();
    assert!(err.contains("--margin") && err.contains("nt-xent"), "{err}");
    let bad = LossOptions {
        temperature: Some(0.0),
        ..none
    };
    let err = LossConfig::from_options("supcon", &bad)
        .unwrap_err()
        .to_string();
    assert!(err.contains("temperature") && err.contains('0'), "{err}");
    // Defaults come through, options land where they belong.
    assert_eq!(
        LossConfig::from_options("arcface", &margin).unwrap(),
        LossConfig::Arcface(MarginSoftmaxConfig {
            margin: 0.2,
            scale: 30.0
        })
    );
    assert_eq!(
        LossConfig::from_options("contrastive", &none).unwrap(),
        LossConfig::Contrastive(ContrastiveConfig::default())
    );
}

/// `rows` on the autodiff device, tracked.
fn tracked(v: &[[f32; 2]]) -> Tensor<2> {
    let flat: Vec<f32> = v.iter().flatten().copied().collect();
    let device = Device::default().autodiff();
    Tensor::<2>::from_data(TensorData::new(flat, [v.len(), 2]), &device).require_grad()
}

fn host_rows(t: Tensor<2>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

#[test]
fn pair_losses_against_a_memory_equal_the_whole_set_with_batch_anchors() {
    // Batch: X's rows 0, 1; memory: rows 2, 3 (constants). Mined against the memory, the pairs
    // are every pair with a batch anchor; on the four rows as one batch with the same pairs the
    // loss is the same, and so is the gradient of the batch rows.
    let pairs = siamese::loss::pairs::all_pairs_against(&LABELS, 2);
    let mut full = all_pairs(&LABELS);
    full.positives.retain(|p| p.0 < 2);
    full.negatives.retain(|p| p.0 < 2);
    assert_eq!(pairs, full);
    type Loss = dyn Fn(siamese::loss::pairs::PairRows, &PairSet) -> Tensor<1>;
    let t = TemperatureConfig { temperature: 0.5 };
    let losses: [(&str, Box<Loss>); 5] = [
        (
            "contrastive",
            Box::new(|r, p| {
                contrastive_loss(&ContrastiveConfig::default(), Distance::Euclidean, r, p)
            }),
        ),
        (
            "multi-similarity",
            Box::new(|r, p| multi_similarity_loss(&MultiSimilarityConfig::default(), r, p)),
        ),
        (
            "circle",
            Box::new(|r, p| {
                circle_loss(
                    &CircleConfig {
                        margin: 0.25,
                        scale: 4.0,
                    },
                    r,
                    p,
                )
            }),
        ),
        ("nt-xent", Box::new(move |r, p| nt_xent_loss(&t, r, p))),
        ("supcon", Box::new(move |r, p| supcon_loss(&t, r, p))),
    ];
    for (name, loss) in losses {
        let whole = tracked(&X);
        let l_whole = loss(whole.clone().into(), &full);
        let g_whole = host_rows(whole.grad(&l_whole.clone().backward()).unwrap());
        let batch = tracked(&X[..2]);
        let memory = rows(&X[2..]);
        let device = batch.device();
        let rows_of = siamese::loss::pairs::PairRows {
            batch: batch.clone(),
            memory: Some(Tensor::from_data(memory.into_data(), &device)),
        };
        let l_mem = loss(rows_of, &pairs);
        let g_mem = host_rows(batch.grad(&l_mem.clone().backward()).unwrap());
        close(value(l_mem), value(l_whole) as f64);
        for (a, b) in g_mem.iter().zip(&g_whole[..4]) {
            assert!(
                (a - b).abs() < 1e-5,
                "{name}: gradient {g_mem:?} vs {g_whole:?}"
            );
        }
        assert!(g_mem.iter().any(|g| g.abs() > 1e-4), "{name}: {g_mem:?}");
    }
}

#[test]
fn the_weighted_triplet_loss_equals_the_mean_hinge_of_its_triplets() {
    use siamese::loss::TripletLossConfig;
    use siamese::sampling::mining::{mine_triplets, triplet_pair_weights};
    use siamese::sampling::MiningStrategy;
    let loss = TripletLossConfig::new().with_margin(0.5).init().unwrap();
    for strategy in [
        MiningStrategy::BatchAll,
        MiningStrategy::BatchHard,
        MiningStrategy::SemiHard,
    ] {
        let triplets = mine_triplets(&host(), &LABELS, 2, Distance::Euclidean, 0.5, strategy);
        let w = triplet_pair_weights(&host(), &LABELS, 4, 2, Distance::Euclidean, 0.5, strategy);
        assert_eq!(w.triplets, triplets.len(), "{strategy}");
        let x = tracked(&X);
        let idx = |f: fn(&siamese::sampling::Triplet) -> usize| {
            let v: Vec<i64> = triplets.iter().map(|t| f(t) as i64).collect();
            let n = v.len();
            Tensor::<1, burn::tensor::Int>::from_data(TensorData::new(v, [n]), &x.device())
        };
        let gathered = loss.forward(
            x.clone().select(0, idx(|t| t.anchor)),
            x.clone().select(0, idx(|t| t.positive)),
            x.clone().select(0, idx(|t| t.negative)),
        );
        let g1 = host_rows(x.grad(&gathered.clone().backward()).unwrap());
        let y = tracked(&X);
        let weighted = loss.forward_weighted(
            y.clone(),
            y.clone(),
            &w.pairs,
            &w.weights,
            w.active,
            w.triplets,
        );
        let g2 = host_rows(y.grad(&weighted.clone().backward()).unwrap());
        close(value(weighted), value(gathered) as f64);
        for (a, b) in g1.iter().zip(&g2) {
            assert!((a - b).abs() < 1e-5, "{strategy}: {g1:?} vs {g2:?}");
        }
    }
}
