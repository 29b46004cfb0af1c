//! Clustering quality against true labels: NMI and AMI (scikit-learn's definitions,
//! arithmetic-mean normalisation) and pair-counting precision/recall/F1. Label vectors are `&[u32]`; in a *predicted* labelling
//! [`NOISE`] marks an item left unclustered (e.g. by DBSCAN).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// The predicted label of an item that belongs to no cluster; it counts as its own singleton.
pub const NOISE: u32 = u32::MAX;

/// A copy of `pred` where every [`NOISE`] item gets a fresh label of its own, so that NMI/AMI
/// treat noise as singletons (as [`pairwise_scores`] does) rather than as one big cluster.
pub fn noise_as_singletons(pred: &[u32]) -> Vec<u32> {
    let mut next = pred
        .iter()
        .filter(|&&p| p != NOISE)
        .max()
        .map_or(0, |m| m + 1);
    pred.iter()
        .map(|&p| {
            if p == NOISE {
                next += 1;
                next - 1
            } else {
                p
            }
        })
        .collect()
}

/// The counts of a map, ordered by key (so sums run in a fixed order).
fn counts_by_key<K: Ord>(m: HashMap<K, u64>) -> Vec<u64> {
    let mut v: Vec<(K, u64)> = m.into_iter().collect();
    v.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    v.into_iter().map(|(_, c)| c).collect()
}

/// The contingency table of two labellings: non-zero cells, row sums and column sums.
struct Contingency {
    cells: Vec<u64>,
    rows: Vec<u64>,
    cols: Vec<u64>,
    n: u64,
}

fn contingency(truth: &[u32], pred: &[u32]) -> Contingency {
    assert_eq!(
        truth.len(),
        pred.len(),
        "truth and prediction must label the same items"
    );
    let mut cells: HashMap<(u32, u32), u64> = HashMap::new();
    let mut rows: HashMap<u32, u64> = HashMap::new();
    let mut cols: HashMap<u32, u64> = HashMap::new();
    for (&t, &p) in truth.iter().zip(pred) {
        *cells.entry((t, p)).or_default() += 1;
        *rows.entry(t).or_default() += 1;
        *cols.entry(p).or_default() += 1;
    }
    Contingency {
        cells: counts_by_key(cells),
        rows: counts_by_key(rows),
        cols: counts_by_key(cols),
        n: truth.len() as u64,
    }
}

fn entropy(counts: &[u64], n: u64) -> f64 {
    let n = n as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / n;
            -p * p.ln()
        })
        .sum()
}

fn mutual_information(t: &Contingency) -> f64 {
    // MI = H(T) + H(P) − H(T, P); clamp the rounding below zero as scikit-learn does.
    (entropy(&t.rows, t.n) + entropy(&t.cols, t.n) - entropy(&t.cells, t.n)).max(0.0)
}

/// Normalised mutual information with the arithmetic mean of the entropies (scikit-learn's
/// `normalized_mutual_info_score` default). Panics if the lengths differ.
pub fn nmi(truth: &[u32], pred: &[u32]) -> f64 {
    let t = contingency(truth, pred);
    if t.rows.len() == t.cols.len() && t.rows.len() <= 1 {
        return 1.0;
    }
    let mi = mutual_information(&t);
    if mi == 0.0 {
        return 0.0;
    }
    mi / ((entropy(&t.rows, t.n) + entropy(&t.cols, t.n)) / 2.0)
}

/// Adjusted mutual information (scikit-learn's `adjusted_mutual_info_score`, arithmetic mean):
/// (MI − E[MI]) / (mean(H(T), H(P)) − E[MI]), E[MI] under the hypergeometric model.
/// Panics if the lengths differ.
pub fn ami(truth: &[u32], pred: &[u32]) -> f64 {
    let t = contingency(truth, pred);
    if t.rows.len() == t.cols.len() && t.rows.len() <= 1 {
        return 1.0;
    }
    let mi = mutual_information(&t);
    let emi = expected_mutual_information(&t.rows, &t.cols, t.n);
    let normaliser = (entropy(&t.rows, t.n) + entropy(&t.cols, t.n)) / 2.0;
    let mut denominator = normaliser - emi;
    denominator = if denominator < 0.0 {
        denominator.min(-f64::EPSILON)
    } else {
        denominator.max(f64::EPSILON)
    };
    (mi - emi) / denominator
}

/// E[MI] of two labellings with marginals `a` and `b` over `n` items (Vinh, Epps, Bailey 2010).
fn expected_mutual_information(a: &[u64], b: &[u64], n: u64) -> f64 {
    if a.len() == 1 || b.len() == 1 {
        return 0.0;
    }
    // ln(k!) for k = 0..=n by cumulative sums: exact enough and no gamma function needed.
    let mut ln_fact = vec![0f64; n as usize + 1];
    for k in 1..=n as usize {
        ln_fact[k] = ln_fact[k - 1] + (k as f64).ln();
    }
    let nf = n as f64;
    let ln_n = nf.ln();
    let mut emi = 0f64;
    for &ai in a {
        for &bj in b {
            let start = (ai + bj).saturating_sub(n).max(1);
            let end = ai.min(bj);
            let fixed = ln_fact[ai as usize]
                + ln_fact[bj as usize]
                + ln_fact[(n - ai) as usize]
                + ln_fact[(n - bj) as usize]
                - ln_fact[n as usize];
            let ln_ab = (ai as f64).ln() + (bj as f64).ln();
            for nij in start..=end {
                let nijf = nij as f64;
                let ln_p = fixed
                    - ln_fact[nij as usize]
                    - ln_fact[(ai - nij) as usize]
                    - ln_fact[(bj - nij) as usize]
                    - ln_fact[(n - ai - bj + nij) as usize];
                emi += nijf / nf * (ln_n + nijf.ln() - ln_ab) * ln_p.exp();
            }
        }
    }
    emi
}

/// Pair-counting scores of a clustering: of the pairs put in one cluster, the fraction truly
/// together (precision), of the truly-together pairs, the fraction put together (recall), F1.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PairwiseScores {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
}

/// Pairwise precision/recall/F1 from the contingency table (O(n), not O(n²)). A [`NOISE`] item
/// in `pred` is a singleton. With no predicted pairs precision is 1 (nothing wrongly joined);
/// with no true pairs recall is 1. Panics if the lengths differ.
pub fn pairwise_scores(truth: &[u32], pred: &[u32]) -> PairwiseScores {
    let pred = noise_as_singletons(pred);
    let t = contingency(truth, &pred);
    let pairs = |counts: &[u64]| {
        counts
            .iter()
            .map(|&c| c * c.saturating_sub(1) / 2)
            .sum::<u64>()
    };
    let (together, pred_pairs, true_pairs) = (pairs(&t.cells), pairs(&t.cols), pairs(&t.rows));
    let ratio = |num: u64, den: u64| {
        if den == 0 {
            1.0
        } else {
            num as f64 / den as f64
        }
    };
    let precision = ratio(together, pred_pairs);
    let recall = ratio(together, true_pairs);
    let f1 = if precision + recall > 0.0 {
        2.0 * precision * recall / (precision + recall)
    } else {
        0.0
    };
    PairwiseScores {
        precision,
        recall,
        f1,
    }
}
