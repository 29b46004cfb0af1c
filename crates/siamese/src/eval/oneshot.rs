//! 20-way one-shot classification (Lake et al. 2015; Koch et al. 2015 for siamese networks):
//! in each run, every test drawing is assigned the class of its nearest training drawing
//! (one per class) in embedding space, and the run's accuracy is the share assigned right.
//!
//! Input: the runs ([`crate::data::omniglot::OneShotRun`], `1 × 28 × 28` drawings) and any
//! embedding network; output: accuracy per run and their mean.

use serde::Serialize;

use crate::data::omniglot::OneShotRun;
use crate::distance::Distance;
use crate::embed::embed_images;
use crate::model::EmbeddingNet;
use crate::Result;
use burn::tensor::Device;

/// One run's result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OneShotRunResult {
    pub run: String,
    pub correct: usize,
    pub total: usize,
    pub accuracy: f64,
}

/// Every run's result and the mean accuracy over the runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OneShotReport {
    pub runs: Vec<OneShotRunResult>,
    pub mean_accuracy: f64,
    pub distance: String,
}

/// Evaluates `model` on `runs` with nearest-neighbour assignment under `distance` (ties go to
/// the first class in the run's order).
pub fn evaluate_oneshot<M: EmbeddingNet>(
    model: &M,
    runs: &[OneShotRun],
    distance: Distance,
) -> Result<OneShotReport> {
    let device = Device::default();
    let mut results = Vec::with_capacity(runs.len());
    for run in runs {
        let train = embed_images(model, &run.training, 64, &device)?;
        let test = embed_images(model, &run.test, 64, &device)?;
        let dim = train.dim;
        let train_rows: Vec<&[f32]> = train.values.chunks_exact(dim).collect();
        let mut correct = 0;
        for (q, &answer) in test.values.chunks_exact(dim).zip(&run.test.labels) {
            let mut best = (f32::INFINITY, 0usize);
            for (c, t) in train_rows.iter().enumerate() {
                let d = distance.between(q, t);
                if d < best.0 {
                    best = (d, c);
                }
            }
            correct += usize::from(run.training.labels[best.1] == answer);
        }
        let total = run.test.len();
        results.push(OneShotRunResult {
            run: run.name.clone(),
            correct,
            total,
            accuracy: correct as f64 / total.max(1) as f64,
        });
    }
    let mean_accuracy =
        results.iter().map(|r| r.accuracy).sum::<f64>() / results.len().max(1) as f64;
    Ok(OneShotReport {
        runs: results,
        mean_accuracy,
        distance: distance.to_string(),
    })
}
