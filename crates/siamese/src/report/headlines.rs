//! The numbers at the top of the demo's page, read from the stages' typed results.

use super::document::Headline;
use super::stage_faces::FacesResult;
use crate::eval::oneshot::OneShotReport;
use crate::recognize::openset::OpensetReport;
use crate::recognize::sweep::SweepReport;
use crate::run::EvalReport;
use crate::train::head_predict::PredictOutcome;

/// What the stages that ran returned (`None`: not run, or failed).
#[derive(Debug, Clone, Default)]
pub struct StageResults {
    pub eval: Option<EvalReport>,
    pub openset: Option<OpensetReport>,
    pub sweep: Option<SweepReport>,
    pub faces: Option<FacesResult>,
    pub triplets: Option<PredictOutcome>,
    pub oneshot: Option<OneShotReport>,
}

fn percent(v: f64) -> String {
    format!("{:.2} %", 100.0 * v)
}

/// The headlines of the stages that ran.
pub fn headlines(results: &StageResults) -> Vec<Headline> {
    let mut out = Vec::new();
    let mut push = |label: &str, value: String, detail: String| {
        out.push(Headline {
            label: label.into(),
            value,
            detail,
        })
    };
    if let Some(e) = &results.eval {
        push(
            "MNIST precision@1",
            percent(e.precision_at_1),
            format!("{} test digits vs {} training images", e.queries, e.gallery),
        );
    }
    if let Some(o) = &results.openset {
        push(
            "Digits vs letters AUROC",
            format!("{:.4}", o.headline.auroc),
            format!("Gini-of-softmax baseline: {:.4}", o.gini.auroc),
        );
        push(
            "Letters rejected",
            percent(o.headline.unknown_rejected),
            format!(
                "accepted digits {} right (threshold from validation digits)",
                percent(o.headline.accepted_accuracy)
            ),
        );
    }
    if let Some(best) = results.sweep.as_ref().and_then(SweepReport::best) {
        push(
            "Best margin α",
            format!("{:.2}", best.margin),
            format!("precision@1 {} in the sweep", percent(best.precision_at_1)),
        );
    }
    match &results.faces {
        Some(FacesResult::Sample {
            photos,
            faces,
            people,
        }) => push(
            "Faces in the sample photos",
            faces.to_string(),
            format!("{people} people found by clustering in {photos} photos"),
        ),
        Some(FacesResult::Lfw {
            verification,
            clustering: c,
        }) => {
            if let Some(v) = verification {
                push(
                    "LFW verification",
                    percent(v.mean_accuracy),
                    format!("± {:.2} over 10 folds", 100.0 * v.std_accuracy),
                );
            }
            push(
                "LFW clustering F1",
                format!("{:.3}", c.pairwise_f1),
                format!("{} clusters for {} people", c.clusters_found, c.people),
            );
        }
        None => {}
    }
    if let Some(t) = &results.triplets {
        push(
            "Triplet accuracy (head)",
            percent(t.accuracy),
            format!(
                "raw MobileNetV2 features: {}",
                percent(t.raw_feature_accuracy_euclidean)
            ),
        );
    }
    if let Some(o) = &results.oneshot {
        push(
            "Omniglot 20-way one-shot",
            percent(o.mean_accuracy),
            format!(
                "mean of {} runs on unseen alphabets (Koch et al. 2015: 92.0 %)",
                o.runs.len()
            ),
        );
    }
    out
}
