//! The demo's face stage with `--lfw DIR`, an adapter over [`crate::faces`]: LFW's 10-fold
//! verification (`faces::eval_lfw`, the pairs shortened by the plan), clustering the first
//! people with enough photos (`faces::grouping::cluster_people`) and nearest-face search among
//! them (`faces::search::StoreIndex`), at the threshold for the pipeline settings.

use std::collections::HashMap;
use std::path::Path;

use super::context::DemoContext;
use super::document::{StageRecord, Table};
use super::face_figures::{centre_crop, groups_grid};
use super::figures::push_figure;
use super::stage_faces::{file_name, grouping, groups_by_size, speed_rows, two_col, FacesResult};
use crate::faces::eval_lfw::{evaluate_lfw, lfw_options};
use crate::faces::grouping::{cluster_people, MethodName, CHINESE_WHISPERS_CUT_FACTOR};
use crate::faces::lfw::{find_pairs, people, resolve_images, write_reduced_pairs};
use crate::faces::load::load_rgb;
use crate::faces::pipeline::FacePipeline;
use crate::faces::search::StoreIndex;
use crate::faces::store::DIM;
use crate::faces::verify::resolve_threshold;
use crate::{Error, Result};

/// Stage (with `--lfw DIR`): verification, clustering and search on LFW.
pub fn stage_lfw(ctx: &DemoContext, lfw: &Path, rec: &mut StageRecord) -> Result<FacesResult> {
    let plan = &ctx.plan;
    let images = resolve_images(lfw)?;
    let pipeline = FacePipeline::from_cache(lfw_options(true))?;
    let threshold = resolve_threshold(None, pipeline.options())?;
    let work = ctx.work_dir("faces");
    let store_path = work.join("lfw-faces.db");

    // 1. Verification: LFW's View 2, 10 folds.
    let verification = match find_pairs(lfw) {
        Some(pairs_file) => {
            let (pairs_used, note) = match plan.lfw_pairs_per_fold {
                Some(n) => {
                    let p = work.join(format!("pairs-{n}-per-fold.txt"));
                    write_reduced_pairs(&pairs_file, &p, n)?;
                    let note = format!(
                        " (quick: the first {n} matched and {n} mismatched pairs of each fold)"
                    );
                    (p, note)
                }
                None => (pairs_file, String::new()),
            };
            let r = evaluate_lfw(
                &images,
                &pairs_used,
                &pipeline,
                &crate::store::Locator::Sqlite(store_path.clone()),
                ctx.progress,
            )?;
            rec.summary.push(format!(
                "LFW verification, the standard 10-fold protocol of pairs.txt{note}: the threshold \
                 is chosen on 9 folds and tested on the 10th."
            ));
            let acc = 100.0 * r.mean_accuracy;
            let failures = format!(
                "{} ({})",
                r.detection_failures, r.detection_failure_handling
            );
            let mut t = two_col(
                "LFW verification",
                vec![
                    (
                        "accuracy (mean ± std over 10 folds)",
                        format!("{acc:.2} % ± {:.2}", 100.0 * r.std_accuracy),
                    ),
                    ("ROC AUC", format!("{:.4}", r.roc_auc)),
                    ("threshold (mean of folds)", format!("{:.3}", r.threshold)),
                    ("pairs", r.pairs.to_string()),
                    ("photos", r.photos.to_string()),
                    ("detection failures", failures),
                ],
            );
            speed_rows(&mut t, &r.timings);
            rec.tables.push(t);
            let json = serde_json::to_value(&r).unwrap_or_default();
            rec.metrics.insert("verification".into(), json);
            Some(Box::new(r))
        }
        None => {
            rec.summary.push(format!(
                "No pairs.txt next to {}: LFW verification skipped.",
                lfw.display()
            ));
            None
        }
    };

    // 2. Clustering the first people with enough photos.
    let mut chosen = people(&images, plan.lfw_cluster_min_images)?;
    chosen.truncate(plan.lfw_cluster_people);
    for (_, photos) in &mut chosen {
        photos.truncate(plan.lfw_cluster_max_photos);
    }
    if chosen.len() < 2 {
        let min = plan.lfw_cluster_min_images;
        let why = format!("fewer than 2 people with {min} or more photos");
        return Err(Error::format(&images, why));
    }
    let params = grouping(ctx, threshold);
    let c = cluster_people(
        &chosen,
        plan.lfw_cluster_min_images,
        MethodName::ChineseWhispers,
        &params,
        &pipeline,
        &store_path,
        ctx.progress,
    )?;
    let r = &c.report;
    rec.summary.push(format!(
        "Clustering: {} photos of the first {} people (alphabetically) with at least {} photos \
         (at most {} each), chinese whispers at {CHINESE_WHISPERS_CUT_FACTOR} × the threshold \
         {threshold}.",
        r.faces, r.people, plan.lfw_cluster_min_images, plan.lfw_cluster_max_photos,
    ));
    rec.tables.push(two_col(
        "LFW identity clustering",
        vec![
            ("people (true)", r.people.to_string()),
            ("clusters found", r.clusters_found.to_string()),
            ("pairwise precision", format!("{:.4}", r.pairwise_precision)),
            ("pairwise recall", format!("{:.4}", r.pairwise_recall)),
            ("pairwise F1", format!("{:.4}", r.pairwise_f1)),
            ("NMI", format!("{:.4}", r.nmi)),
        ],
    ));
    rec.metrics.insert(
        "clustering".into(),
        serde_json::json!({
            "people": r.people, "photos": r.faces, "clusters": r.clusters_found,
            "pairwise_precision": r.pairwise_precision, "pairwise_recall": r.pairwise_recall,
            "pairwise_f1": r.pairwise_f1, "nmi": r.nmi,
        }),
    );
    // 4 pictures per cluster, largest clusters first.
    rec.figures.push(groups_grid(
        &ctx.report_dir,
        "faces-clusters.png",
        "The 8 largest clusters, 4 pictures each.",
        &groups_by_size(&c.labels),
        8,
        |j| Ok(centre_crop(&load_rgb(&c.files[c.photo[j]])?)),
    )?);

    // 3. Search: two query faces against the other clustered photos.
    let index = StoreIndex::for_photos(&c.store, &c.keys)?;
    let person: HashMap<&str, u32> = (0..c.truth.len())
        .map(|j| (c.keys[c.photo[j]].as_str(), c.truth[j]))
        .collect();
    let mut s = Table::new(
        "Nearest-face search (exact, Euclidean): 5 nearest photos of a query",
        &["query", "rank", "photo", "distance", "same person?"],
    );
    for q in [0, c.truth.len() / 2] {
        if q >= c.truth.len() {
            continue;
        }
        let (file, key) = (&c.files[c.photo[q]], c.keys[c.photo[q]].as_str());
        let hits = index.search(&c.data[q * DIM..(q + 1) * DIM], 6, threshold)?;
        for (rank, h) in hits.iter().filter(|h| h.path != key).take(5).enumerate() {
            let same = person.get(h.path.as_str()) == Some(&c.truth[q]);
            s.row([
                file_name(file),
                (rank + 1).to_string(),
                file_name(Path::new(&h.path)),
                format!("{:.3}", h.distance),
                if same { "yes" } else { "no" }.to_string(),
            ]);
        }
    }
    rec.tables.push(s);
    let names: Vec<String> = chosen.iter().map(|(n, _)| n.replace('_', " ")).collect();
    push_figure(
        rec,
        super::plots::faces_tsne(ctx, &c.data, &c.truth, &names, "faces-tsne.png").map(|f| vec![f]),
    );
    Ok(FacesResult::Lfw {
        verification,
        clustering: Box::new(c.report),
    })
}
