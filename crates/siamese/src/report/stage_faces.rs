//! The demo's face stage, an adapter over [`crate::faces`] (dlib's ResNet behind SeetaFace
//! detection and dlib's 5-point alignment). With `--lfw DIR`: LFW's 10-fold verification
//! (`faces::eval_lfw`), clustering LFW people (`faces::grouping::cluster_people`) and
//! nearest-face search (`faces::search::StoreIndex`). Without it: the sample photos of the face
//! packages, every face embedded through the store, grouped into people and searched.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use super::context::DemoContext;
use super::document::{StageRecord, Table};
use super::figures::{
    centre_crop, draw_rect, face_thumb, figure_at, fit_width, group_grid, palette, push_figure,
    save_png,
};
use crate::assets::face_samples;
use crate::faces::eval_lfw::{evaluate_lfw, lfw_options, LfwReport};
use crate::faces::grouping::{
    cluster_people, count_clusters, resolve_method, ClusterEvalReport, GroupingParams, MethodName,
    CHINESE_WHISPERS_CUT_FACTOR,
};
use crate::faces::lfw::{find_pairs, people, resolve_images, write_reduced_pairs};
use crate::faces::load::load_rgb;
use crate::faces::pipeline::{FacePipeline, PipelineOptions, Timings};
use crate::faces::search::StoreIndex;
use crate::faces::store::{embed_files, StoredFace, DIM};
use crate::faces::verify::resolve_threshold;
use crate::{Error, Result};

/// What the face stage found, for the headlines.
#[derive(Debug, Clone)]
pub enum FacesResult {
    Sample {
        photos: usize,
        faces: usize,
        people: usize,
    },
    Lfw {
        verification: Option<Box<LfwReport>>,
        clustering: Box<ClusterEvalReport>,
    },
}

/// Chinese whispers at the library's default cut for `threshold`, seeded by the demo's seed.
fn grouping(ctx: &DemoContext, threshold: f32) -> GroupingParams {
    GroupingParams {
        seed: ctx.seed,
        ..GroupingParams::from_threshold(threshold)
    }
}

fn speed_rows(t: &mut Table, timings: &Timings) {
    if timings.faces > 0 {
        let per_s = |s: f64| format!("{:.1}", timings.faces as f64 / s.max(1e-9));
        t.row([
            "faces/s (detection + alignment + embedding)".to_string(),
            per_s(timings.prepare_s + timings.embed_s),
        ]);
        t.row([
            "faces/s (embedding alone)".to_string(),
            per_s(timings.embed_s),
        ]);
    }
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Indices grouped by label, largest group first.
fn groups_by_size(labels: &[u32]) -> Vec<Vec<usize>> {
    let mut members: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for (j, &l) in labels.iter().enumerate() {
        members.entry(l).or_default().push(j);
    }
    let mut groups: Vec<Vec<usize>> = members.into_values().collect();
    groups.sort_by_key(|c| std::cmp::Reverse(c.len()));
    groups
}

fn two_col(caption: &str, rows: Vec<(&str, String)>) -> Table {
    let mut t = Table::new(caption, &["", "value"]);
    for (k, v) in rows {
        t.row([k.to_string(), v]);
    }
    t
}

/// Stage entry: LFW when `--lfw` was given, else the sample photos.
pub fn stage_faces(ctx: &DemoContext, rec: &mut StageRecord) -> Result<FacesResult> {
    match &ctx.lfw {
        Some(dir) => faces_lfw(ctx, dir, rec),
        None => faces_sample(ctx, rec),
    }
}

fn faces_sample(ctx: &DemoContext, rec: &mut StageRecord) -> Result<FacesResult> {
    let photos = face_samples::fetch_sample_photos()?;
    let pipeline = FacePipeline::from_cache(PipelineOptions::default())?;
    let threshold = resolve_threshold(None, pipeline.options())?;
    let store_path = ctx.work_dir("faces").join("sample-faces.store");
    let embedded = embed_files(&store_path, &photos, &pipeline, ctx.progress)?;
    let (store, keys) = (&embedded.store, &embedded.keys);
    // Every face of every photo: (photo index, face index in the photo, face).
    let mut faces: Vec<(usize, usize, &StoredFace)> = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        let stored = store
            .get(k)
            .ok_or_else(|| Error::format(&photos[i], "not in the face store after embedding"))?;
        if let Some(e) = &stored.error {
            return Err(Error::format(&photos[i], e.clone()));
        }
        faces.extend(
            stored
                .faces
                .iter()
                .enumerate()
                .map(|(f, face)| (i, f, face)),
        );
    }
    let n = faces.len();
    if n < 2 {
        let why = format!("only {n} faces found in the sample photos");
        return Err(Error::format(face_samples::samples_dir(), why));
    }
    let data: Vec<f32> = faces.iter().flat_map(|f| f.2.embedding.clone()).collect();
    let params = grouping(ctx, threshold);
    let method = resolve_method(MethodName::ChineseWhispers, &params, &data, DIM)?;
    let labels = crate::cluster::cluster(&data, DIM, &method, params.seed)?;
    let people = count_clusters(&labels).0;
    // A person's display number (1-based, largest group first) picks its colour.
    let clusters = groups_by_size(&labels);
    let mut display = vec![0usize; n];
    for (r, c) in clusters.iter().enumerate() {
        c.iter().for_each(|&j| display[j] = r);
    }
    let multi_photo = clusters
        .iter()
        .filter(|c| c.iter().any(|&j| faces[j].0 != faces[c[0]].0))
        .count();
    rec.summary.push(format!(
        "No --lfw folder was given, so this stage runs on the {} sample photos that ship in npm \
         {}. Every face is detected (SeetaFace), aligned to dlib's 150x150 chip with dlib's \
         5-point landmarks and embedded with dlib's ResNet (128-d, stored by file hash so a \
         second run embeds nothing); faces are grouped into people with chinese whispers at \
         {CHINESE_WHISPERS_CUT_FACTOR} × the LFW threshold {threshold}. Pass --lfw DIR for LFW's \
         verification protocol and identity clustering with known names.",
        photos.len(),
        face_samples::SAMPLES_PACKAGE,
    ));
    let update = &embedded.report;
    let mut t = two_col(
        "Faces in the sample photos",
        vec![
            ("photos", photos.len().to_string()),
            ("faces detected", n.to_string()),
            ("people found (clusters)", people.to_string()),
            (
                "people seen in more than one photo",
                multi_photo.to_string(),
            ),
            (
                "photos embedded now / reused from the store",
                format!("{} / {}", update.embedded_photos, update.reused_photos),
            ),
        ],
    );
    speed_rows(&mut t, &update.timings);
    rec.tables.push(t);
    let faces_ref = &faces;
    let of_photo = |i: usize| (0..n).filter(move |&j| faces_ref[j].0 == i);
    let mut per_photo = Table::new(
        "Faces per photo",
        &["photo", "size", "faces", "people (cluster numbers)"],
    );
    for (i, k) in keys.iter().enumerate() {
        let p = store.get(k).expect("checked above");
        let mut ids: Vec<usize> = of_photo(i).map(|j| display[j] + 1).collect();
        ids.sort_unstable();
        let ids: Vec<String> = ids.iter().map(|d| d.to_string()).collect();
        let size = format!("{}x{}", p.width, p.height);
        let count = p.faces.len().to_string();
        per_photo.row([file_name(&photos[i]), size, count, ids.join(", ")]);
    }
    rec.tables.push(per_photo);

    // Search: for the first faces, the nearest face in another photo.
    let index = StoreIndex::for_photos(store, keys)?;
    let row_of: HashMap<(&str, usize), usize> = (0..n)
        .map(|j| ((keys[faces[j].0].as_str(), faces[j].1), j))
        .collect();
    let mut s = Table::new(
        "Nearest-face search (exact, Euclidean): each query's nearest face in the other photos",
        &[
            "query",
            "nearest",
            "distance",
            &format!("verdict at {threshold}"),
        ],
    );
    let label = |j: usize| {
        let photo = file_name(&photos[faces[j].0]);
        format!("{photo} face {} (person {})", j + 1, display[j] + 1)
    };
    for q in 0..n.min(8) {
        let hits = index.search(&faces[q].2.embedding, n, threshold)?;
        let own = keys[faces[q].0].as_str();
        if let Some(h) = hits.iter().find(|h| h.path != own) {
            let j = row_of[&(h.path.as_str(), h.face)];
            let verdict = if h.same_person {
                "same person"
            } else {
                "different people"
            };
            let d = format!("{:.3}", h.distance);
            s.row([label(q), label(j), d, verdict.to_string()]);
        }
    }
    rec.tables.push(s);

    // Figures: the photos with boxes coloured by person, and 4 chips per person.
    let mut images = Vec::new();
    let mut chips: Vec<Option<image::RgbImage>> = vec![None; n];
    let mut titles = Vec::new();
    for (i, path) in photos.iter().enumerate() {
        let mut img = load_rgb(path)?;
        let thick = (img.width() / 250).max(3);
        for j in of_photo(i) {
            chips[j] = Some(face_thumb(&img, faces[j].2, 110));
        }
        for j in of_photo(i) {
            let b = &faces[j].2.bbox;
            let colour = palette(display[j]);
            draw_rect(&mut img, b.left, b.top, b.width, b.height, thick, colour);
        }
        images.push(fit_width(&img, 900).0);
        let k = of_photo(i).count();
        let plural = if k == 1 { "" } else { "s" };
        titles.push(format!("{}: {k} face{plural}", file_name(path)));
    }
    let name = "faces-detected.png";
    crate::viz::montage_images_png(ctx.report_dir.join(name), &images, 3, &titles)?;
    rec.figures.push(figure_at(
        &ctx.report_dir,
        name,
        "The sample photos with every detected face boxed; one colour per person found by clustering.",
    )?);
    let rows: Vec<Vec<_>> = clusters
        .iter()
        .take(12)
        .map(|c| c.iter().take(4).filter_map(|&j| chips[j].clone()).collect())
        .collect();
    rec.figures.push(save_png(
        &ctx.report_dir,
        &group_grid(&rows, 4, 2, 110, 6),
        "faces-clusters.png",
        "Up to 4 aligned chips per person found, largest clusters first (the bar colour matches the boxes).",
    )?);
    rec.metrics.insert("photos".into(), photos.len().into());
    rec.metrics.insert("faces".into(), n.into());
    rec.metrics.insert("people_found".into(), people.into());
    rec.metrics
        .insert("people_in_several_photos".into(), multi_photo.into());
    let timings = serde_json::to_value(update.timings).unwrap_or_default();
    rec.metrics.insert("timings".into(), timings);
    Ok(FacesResult::Sample {
        photos: photos.len(),
        faces: n,
        people,
    })
}

fn faces_lfw(ctx: &DemoContext, lfw: &Path, rec: &mut StageRecord) -> Result<FacesResult> {
    let plan = &ctx.plan;
    let images = resolve_images(lfw)?;
    let pipeline = FacePipeline::from_cache(lfw_options(true))?;
    let threshold = resolve_threshold(None, pipeline.options())?;
    let work = ctx.work_dir("faces");
    let store_path = work.join("lfw-faces.store");

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
            let r = evaluate_lfw(&images, &pairs_used, &pipeline, &store_path, ctx.progress)?;
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
    let mut rows = Vec::new();
    for group in groups_by_size(&c.labels).iter().take(8) {
        let photos = group.iter().take(4).map(|&j| &c.files[c.photo[j]]);
        rows.push(
            photos
                .map(|p| Ok(centre_crop(&load_rgb(p)?)))
                .collect::<Result<_>>()?,
        );
    }
    rec.figures.push(save_png(
        &ctx.report_dir,
        &group_grid(&rows, 4, 2, 110, 6),
        "faces-clusters.png",
        "The 8 largest clusters, 4 pictures each.",
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
