//! The demo's face stage on the sample photos of the face packages, an adapter over
//! [`crate::faces`] (dlib's ResNet behind SeetaFace detection and dlib's 5-point alignment):
//! every face embedded through the store (`faces::store::embed_files`), grouped into people
//! (`faces::grouping::group_faces`) and searched (`faces::search::StoreIndex`), the verdict at
//! the threshold for the settings. With `--lfw DIR` the demo runs [`super::stage_lfw`] instead,
//! which shares this file's helpers.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use super::context::DemoContext;
use super::document::{StageRecord, Table};
use super::face_figures::{boxed_photos, groups_grid};
use crate::assets::face_samples;
use crate::faces::eval_lfw::LfwReport;
use crate::faces::grouping::{
    count_clusters, group_faces, ClusterEvalReport, GroupingParams, MethodName,
    CHINESE_WHISPERS_CUT_FACTOR,
};
use crate::faces::pipeline::{FacePipeline, PipelineOptions, Timings};
use crate::faces::search::StoreIndex;
use crate::faces::store::embed_files;
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
pub fn grouping(ctx: &DemoContext, threshold: f32) -> GroupingParams {
    GroupingParams {
        seed: ctx.seed,
        ..GroupingParams::from_threshold(threshold)
    }
}

/// The pipeline's speed rows of a table.
pub fn speed_rows(t: &mut Table, timings: &Timings) {
    if timings.faces > 0 {
        let per_s = |s: f64| format!("{:.1}", timings.faces as f64 / s.max(1e-9));
        let total = per_s(timings.prepare_s + timings.embed_s);
        t.row([
            "faces/s (detection + alignment + embedding)".to_string(),
            total,
        ]);
        t.row([
            "faces/s (embedding alone)".to_string(),
            per_s(timings.embed_s),
        ]);
    }
}

pub fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Indices grouped by label, largest group first.
pub fn groups_by_size(labels: &[u32]) -> Vec<Vec<usize>> {
    let mut members: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for (j, &l) in labels.iter().enumerate() {
        members.entry(l).or_default().push(j);
    }
    let mut groups: Vec<Vec<usize>> = members.into_values().collect();
    groups.sort_by_key(|c| std::cmp::Reverse(c.len()));
    groups
}

/// A table of `(name, value)` rows.
pub fn two_col(caption: &str, rows: Vec<(&str, String)>) -> Table {
    let mut t = Table::new(caption, &["", "value"]);
    for (k, v) in rows {
        t.row([k.to_string(), v]);
    }
    t
}

/// Stage (without `--lfw`): the sample photos.
pub fn stage_faces(ctx: &DemoContext, rec: &mut StageRecord) -> Result<FacesResult> {
    let photos = face_samples::fetch_sample_photos()?;
    let pipeline = FacePipeline::from_cache(PipelineOptions::default())?;
    let threshold = resolve_threshold(None, pipeline.options())?;
    let store_path = ctx.work_dir("faces").join("sample-faces.db");
    let embedded = embed_files(&store_path, &photos, &pipeline, ctx.progress)?;
    let (store, keys) = (&embedded.store, &embedded.keys);
    for (i, k) in keys.iter().enumerate() {
        let stored = store
            .get(k)
            .ok_or_else(|| Error::format(&photos[i], "not in the face store after embedding"))?;
        if let Some(e) = &stored.error {
            return Err(Error::format(&photos[i], e.clone()));
        }
    }
    let params = grouping(ctx, threshold);
    let groups = group_faces(store, keys, MethodName::ChineseWhispers, &params)?;
    // Every face: (photo index, face), photo after photo.
    let faces: Vec<_> = (groups.faces.iter())
        .map(|&(p, f)| (p, &store.get(&keys[p]).expect("checked above").faces[f]))
        .collect();
    let n = faces.len();
    if n < 2 {
        let why = format!("only {n} faces found in the sample photos");
        return Err(Error::format(face_samples::samples_dir(), why));
    }
    let people = count_clusters(&groups.labels).0;
    // A person's display number (1-based, largest group first) picks its colour.
    let clusters = groups_by_size(&groups.labels);
    let mut display = vec![0usize; n];
    for (r, c) in clusters.iter().enumerate() {
        c.iter().for_each(|&j| display[j] = r);
    }
    let multi_photo = (clusters.iter())
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
    let reuse = format!("{} / {}", update.embedded_photos, update.reused_photos);
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
            ("photos embedded now / reused from the store", reuse),
        ],
    );
    speed_rows(&mut t, &update.timings);
    rec.tables.push(t);
    let mut per_photo = Table::new(
        "Faces per photo",
        &["photo", "size", "faces", "people (cluster numbers)"],
    );
    for (i, k) in keys.iter().enumerate() {
        let p = store.get(k).expect("checked above");
        let mut ids: Vec<usize> = (0..n)
            .filter(|&j| faces[j].0 == i)
            .map(|j| display[j] + 1)
            .collect();
        ids.sort_unstable();
        let ids: Vec<String> = ids.iter().map(|d| d.to_string()).collect();
        let size = format!("{}x{}", p.width, p.height);
        let count = p.faces.len().to_string();
        per_photo.row([file_name(&photos[i]), size, count, ids.join(", ")]);
    }
    rec.tables.push(per_photo);

    // Search: for the first faces, the nearest face in another photo.
    let index = StoreIndex::for_photos(store, keys)?;
    let row_of: HashMap<(&str, usize), usize> = (groups.faces.iter().enumerate())
        .map(|(j, &(p, f))| ((keys[p].as_str(), f), j))
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
        let hits = index.search(&faces[q].1.embedding, n, threshold)?;
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
    let (boxed, thumbs) = boxed_photos(
        &ctx.report_dir,
        "faces-detected.png",
        &photos,
        &faces,
        &display,
    )?;
    rec.figures.push(boxed);
    rec.figures.push(groups_grid(
        &ctx.report_dir,
        "faces-clusters.png",
        "Up to 4 aligned chips per person found, largest clusters first (the bar colour matches the boxes).",
        &clusters,
        12,
        |j| Ok(thumbs[j].clone()),
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
