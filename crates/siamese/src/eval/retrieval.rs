//! Retrieval metrics of embeddings (row-major `[n, dim]` f32 with one `u32` label per row): P@1,
//! R-precision, MAP@R and k-NN accuracy, after Musgrave, Belongie, Lim, "A Metric Learning
//! Reality Check" (2020), over the exact nearest neighbours of `knn`.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::knn::{key_index, rows_of, Prepared};
use crate::distance::Distance;
use crate::{Error, Result};

/// Retrieval quality of a query set against a gallery (all in [0, 1]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RetrievalMetrics {
    /// Fraction of queries whose nearest gallery item has the query's label.
    pub precision_at_1: f64,
    /// Mean over queries of r/R, r = same-label items among the R nearest, R = same-label items in the gallery.
    pub r_precision: f64,
    /// Mean over queries of (1/R) Σ_{i≤R} P(i)·rel(i).
    pub map_at_r: f64,
    /// Accuracy of the nearest neighbour's label.
    pub knn_accuracy_1: f64,
    /// Accuracy of a majority vote of the 5 nearest (ties go to the label met first).
    pub knn_accuracy_5: f64,
}

/// Majority label among `labels` (in nearest-first order); a tie goes to the label met first.
fn majority(labels: impl Iterator<Item = u32>) -> Option<u32> {
    let mut votes: Vec<(u32, usize)> = Vec::new();
    for l in labels {
        match votes.iter_mut().find(|(v, _)| *v == l) {
            Some((_, c)) => *c += 1,
            None => votes.push((l, 1)),
        }
    }
    // `votes` is in first-met order; max_by_key returns the last maximum, so scan for the first.
    let best = votes.iter().map(|(_, c)| *c).max()?;
    votes.iter().find(|(_, c)| *c == best).map(|(l, _)| *l)
}

/// Retrieval metrics of `query` against `gallery` (both row-major with `dim` columns).
///
/// `exclude_self`: query and gallery are the same set (leave-one-out); query `i` never retrieves
/// gallery row `i`. A query whose label has no other item in the gallery (R = 0) is left out of
/// every metric, as in the paper's evaluation code; if no query is left, that is an error.
pub fn retrieval_metrics(
    query: &[f32],
    query_labels: &[u32],
    gallery: &[f32],
    gallery_labels: &[u32],
    dim: usize,
    distance: Distance,
    exclude_self: bool,
) -> Result<RetrievalMetrics> {
    let nq = rows_of("query embeddings", query, dim)?;
    let ng = rows_of("gallery embeddings", gallery, dim)?;
    if query_labels.len() != nq {
        return Err(Error::config(
            "query labels",
            format!("{} labels for {nq} query rows", query_labels.len()),
        ));
    }
    if gallery_labels.len() != ng {
        return Err(Error::config(
            "gallery labels",
            format!("{} labels for {ng} gallery rows", gallery_labels.len()),
        ));
    }
    if exclude_self && nq != ng {
        return Err(Error::config(
            "exclude_self",
            format!("query ({nq} rows) and gallery ({ng} rows) must be the same set"),
        ));
    }
    let mut label_count: HashMap<u32, usize> = HashMap::new();
    for &l in gallery_labels {
        *label_count.entry(l).or_default() += 1;
    }
    let own = usize::from(exclude_self);
    let available = ng - own;
    let prepared = Prepared::new(query, gallery, dim, distance);

    // Per query: (P@1, R-precision, MAP@R, 1-NN hit, 5-NN hit), or None when R = 0.
    let per_query = prepared.map_queries(|qi, nearest| {
        let label = query_labels[qi];
        let r = label_count
            .get(&label)
            .copied()
            .unwrap_or(0)
            .saturating_sub(own);
        if r == 0 {
            return None;
        }
        let m = r.max(5).min(available);
        let keys = nearest(m, exclude_self.then_some(qi));
        let labels = keys.iter().map(|&k| gallery_labels[key_index(k)]);
        let mut hits = 0usize;
        let mut ap = 0f64;
        for (i, l) in labels.clone().take(r).enumerate() {
            if l == label {
                hits += 1;
                ap += hits as f64 / (i + 1) as f64;
            }
        }
        let first = f64::from(u8::from(gallery_labels[key_index(keys[0])] == label));
        let five = f64::from(u8::from(majority(labels.take(5)) == Some(label)));
        Some([first, hits as f64 / r as f64, ap / r as f64, first, five])
    });
    let counted: Vec<[f64; 5]> = per_query.into_iter().flatten().collect();
    if counted.is_empty() {
        return Err(Error::config(
            "gallery labels",
            "no query has another item of its label in the gallery",
        ));
    }
    let mean = |i: usize| counted.iter().map(|q| q[i]).sum::<f64>() / counted.len() as f64;
    Ok(RetrievalMetrics {
        precision_at_1: mean(0),
        r_precision: mean(1),
        map_at_r: mean(2),
        knn_accuracy_1: mean(3),
        knn_accuracy_5: mean(4),
    })
}
