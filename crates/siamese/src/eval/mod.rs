//! Evaluation of embeddings: exact k-NN search, retrieval metrics (P@1, R-precision, MAP@R, k-NN),
//! clustering quality (NMI, AMI, pairwise F1), open-set scores (AUROC, FPR@TPR) and 20-way
//! one-shot classification (Omniglot).

pub mod clustering;
pub mod knn;
pub mod oneshot;
pub mod openset;
pub mod retrieval;

pub use clustering::{ami, nmi, pairwise_scores, PairwiseScores};
pub use knn::{nearest, pairwise_distances};
pub use openset::{auroc, fpr_at_tpr, roc_curve, threshold_for_tpr, RocPoint};
pub use retrieval::{retrieval_metrics, RetrievalMetrics};
