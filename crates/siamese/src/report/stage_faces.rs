//! The demo's face stage (dlib's ResNet behind SeetaFace detection and dlib's 5-point
//! alignment). With `--lfw DIR`: LFW's 10-fold verification protocol, clustering of LFW people
//! with 4 pictures per cluster, nearest-face search. Without it: the sample group photo from the
//! face packages — every face found, embedded, clustered (each person once, so the right answer
//! is one cluster per face) and searched.

use std::path::{Path, PathBuf};

use image::{imageops, RgbImage};

use super::demo::DemoContext;
use super::document::{StageRecord, Table};
use super::figures::{draw_rect, fit_width, group_grid, palette, save_png};
use super::stage_mnist::push_figure;
use crate::cluster::{cluster, Method};
use crate::distance::euclidean;
use crate::eval::clustering::{nmi, pairwise_scores};
use crate::faces::align::aligned_chip;
use crate::faces::eval_lfw::{evaluate_lfw, lfw_options};
use crate::faces::grouping::CHINESE_WHISPERS_CUT_FACTOR;
use crate::faces::lfw::{people, read_pairs, resolve_images};
use crate::faces::load::load_rgb;
use crate::faces::pipeline::{FacePipeline, PipelineOptions, Timings};
use crate::faces::store::{self, EmbeddingStore, StoredFace};
use crate::faces::verify::LFW_THRESHOLD;
use crate::{Error, Result};

/// Chinese whispers rounds (dlib's default is 100).
const CW_ROUNDS: usize = 100;

/// Embeds `files` through the store at `store_path` (only new photos are embedded).
fn embed_files(
    ctx: &DemoContext,
    pipeline: &FacePipeline,
    store_path: &Path,
    files: &[PathBuf],
) -> Result<(EmbeddingStore, Vec<String>, store::UpdateReport)> {
    let mut store = EmbeddingStore::load_or_new(store_path, &pipeline.options().fingerprint())?;
    let (report, keys) = store::update(&mut store, files, pipeline, ctx.progress);
    store.save(store_path)?;
    Ok((store, keys, report))
}

fn speed_row(t: &mut Table, timings: &Timings) {
    if timings.faces > 0 {
        let total = timings.prepare_s + timings.embed_s;
        t.row([
            "faces/s (detection + alignment + embedding)".to_string(),
            format!("{:.1}", timings.faces as f64 / total.max(1e-9)),
        ]);
        t.row([
            "faces/s (embedding alone)".to_string(),
            format!("{:.1}", timings.faces as f64 / timings.embed_s.max(1e-9)),
        ]);
    }
}

/// Square crop around a face box (1.4× its size), resized to `side`.
fn face_thumb(img: &RgbImage, face: &StoredFace, side: u32) -> RgbImage {
    if let Some(l) = &face.landmarks {
        if l.len() >= 5 {
            let five = [l[0], l[1], l[2], l[3], l[4]];
            return imageops::resize(
                &aligned_chip(img, &five),
                side,
                side,
                imageops::FilterType::Triangle,
            );
        }
    }
    let b = &face.bbox;
    let s = (b.width.max(b.height) * 1.4).max(1.0);
    let (cx, cy) = (b.left + b.width / 2.0, b.top + b.height / 2.0);
    let x = (cx - s / 2.0).clamp(0.0, (img.width() as f32 - 1.0).max(0.0)) as u32;
    let y = (cy - s / 2.0).clamp(0.0, (img.height() as f32 - 1.0).max(0.0)) as u32;
    let w = (s as u32).min(img.width() - x).max(1);
    let h = (s as u32).min(img.height() - y).max(1);
    let crop = imageops::crop_imm(img, x, y, w, h).to_image();
    imageops::resize(&crop, side, side, imageops::FilterType::Triangle)
}

/// Chinese whispers at the library's default cut (a factor of the LFW threshold chosen on LFW
/// people with 2–4 photos: at the full threshold it chains different people together).
fn default_grouping() -> Method {
    Method::ChineseWhispers {
        threshold: CHINESE_WHISPERS_CUT_FACTOR * LFW_THRESHOLD,
        max_rounds: CW_ROUNDS,
    }
}

/// Number of distinct cluster ids.
fn count_clusters(labels: &[u32]) -> usize {
    let mut l = labels.to_vec();
    l.sort_unstable();
    l.dedup();
    l.len()
}

/// Stage entry: LFW when `--lfw` was given, else the sample photo.
pub fn stage_faces(ctx: &DemoContext, rec: &mut StageRecord) -> Result<()> {
    match &ctx.lfw {
        Some(dir) => faces_lfw(ctx, dir, rec),
        None => faces_sample(ctx, rec),
    }
}

fn faces_sample(ctx: &DemoContext, rec: &mut StageRecord) -> Result<()> {
    let photos = crate::assets::face_samples::fetch_sample_photos()?;
    let pipeline = FacePipeline::from_cache(PipelineOptions::default())?;
    let store_path = ctx.work_dir("faces").join("sample-faces.store");
    let (store, keys, update) = embed_files(ctx, &pipeline, &store_path, &photos)?;
    // Every face of every photo: (photo index, face).
    let mut faces: Vec<(usize, &StoredFace)> = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        let stored = store
            .get(k)
            .ok_or_else(|| Error::format(&photos[i], "not in the face store after embedding"))?;
        if let Some(e) = &stored.error {
            return Err(Error::format(&photos[i], e.clone()));
        }
        faces.extend(stored.faces.iter().map(|f| (i, f)));
    }
    if faces.len() < 2 {
        return Err(Error::format(
            crate::assets::face_samples::samples_dir(),
            format!("only {} faces found in the sample photos", faces.len()),
        ));
    }
    let n = faces.len();
    let data: Vec<f32> = faces
        .iter()
        .flat_map(|(_, f)| f.embedding.clone())
        .collect();
    let labels = cluster(&data, store::DIM, &default_grouping(), ctx.seed)?;
    // Clusters by size (largest first); a cluster's display index picks its colour.
    let mut members: std::collections::BTreeMap<u32, Vec<usize>> = Default::default();
    for (j, &l) in labels.iter().enumerate() {
        members.entry(l).or_default().push(j);
    }
    let mut clusters: Vec<Vec<usize>> = members.into_values().collect();
    clusters.sort_by_key(|c| std::cmp::Reverse(c.len()));
    let mut display = vec![0usize; n];
    for (r, c) in clusters.iter().enumerate() {
        for &j in c {
            display[j] = r;
        }
    }
    let multi_photo = clusters
        .iter()
        .filter(|c| {
            let mut p: Vec<usize> = c.iter().map(|&j| faces[j].0).collect();
            p.sort_unstable();
            p.dedup();
            p.len() > 1
        })
        .count();
    rec.summary.push(format!(
        "No --lfw folder was given, so this stage runs on the {} sample photos that ship in npm \
         {}. Every face is detected (SeetaFace), aligned to dlib's 150x150 chip with dlib's \
         5-point landmarks and embedded with dlib's ResNet (128-d, stored by file hash so a \
         second run embeds nothing); faces are grouped into people \
         with chinese whispers at {CHINESE_WHISPERS_CUT_FACTOR} × the LFW threshold {LFW_THRESHOLD}. Pass --lfw DIR for LFW's verification \
         protocol and identity clustering with known names.",
        photos.len(),
        crate::assets::face_samples::SAMPLES_PACKAGE
    ));
    let mut t = Table::new("Faces in the sample photos", &["", "value"]);
    t.row(["photos".to_string(), photos.len().to_string()]);
    t.row(["faces detected".to_string(), n.to_string()]);
    t.row([
        "people found (clusters)".to_string(),
        clusters.len().to_string(),
    ]);
    t.row([
        "people seen in more than one photo".to_string(),
        multi_photo.to_string(),
    ]);
    t.row([
        "photos embedded now / reused from the store".to_string(),
        format!("{} / {}", update.embedded_photos, update.reused_photos),
    ]);
    speed_row(&mut t, &update.timings);
    rec.tables.push(t);

    let photo_name = |i: usize| {
        photos[i]
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
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
        per_photo.row([
            photo_name(i),
            format!("{}x{}", p.width, p.height),
            p.faces.len().to_string(),
            ids.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", "),
        ]);
    }
    rec.tables.push(per_photo);

    // Search: for the first faces, the nearest face in another photo.
    let mut s = Table::new(
        "Nearest-face search (exact, Euclidean): each query's nearest face in the other photos",
        &[
            "query",
            "nearest",
            "distance",
            &format!("verdict at {LFW_THRESHOLD}"),
        ],
    );
    for q in 0..n.min(8) {
        let best = (0..n)
            .filter(|&j| faces[j].0 != faces[q].0)
            .map(|j| (euclidean(&faces[q].1.embedding, &faces[j].1.embedding), j))
            .min_by(|a, b| a.0.total_cmp(&b.0));
        if let Some((d, j)) = best {
            s.row([
                format!(
                    "{} face {} (person {})",
                    photo_name(faces[q].0),
                    q + 1,
                    display[q] + 1
                ),
                format!(
                    "{} face {} (person {})",
                    photo_name(faces[j].0),
                    j + 1,
                    display[j] + 1
                ),
                format!("{d:.3}"),
                if d <= LFW_THRESHOLD {
                    "same person"
                } else {
                    "different people"
                }
                .to_string(),
            ]);
        }
    }
    rec.tables.push(s);

    // Figures: the photos with boxes coloured by person, and 4 chips per person.
    let mut images = Vec::new();
    let mut chips_by_face: Vec<Option<RgbImage>> = vec![None; n];
    for (i, path) in photos.iter().enumerate() {
        let img = load_rgb(path)?;
        for j in (0..n).filter(|&j| faces[j].0 == i) {
            chips_by_face[j] = Some(face_thumb(&img, faces[j].1, 110));
        }
        let mut boxed = img;
        let thick = (boxed.width() / 250).max(3);
        for j in (0..n).filter(|&j| faces[j].0 == i) {
            let b = &faces[j].1.bbox;
            draw_rect(
                &mut boxed,
                b.left,
                b.top,
                b.width,
                b.height,
                thick,
                palette(display[j]),
            );
        }
        images.push(fit_width(&boxed, 900).0);
    }
    let titles: Vec<String> = (0..photos.len())
        .map(|i| {
            let k = (0..n).filter(|&j| faces[j].0 == i).count();
            format!(
                "{}: {k} face{}",
                photo_name(i),
                if k == 1 { "" } else { "s" }
            )
        })
        .collect();
    let name = "faces-detected.png";
    crate::viz::montage_images_png(ctx.report_dir.join(name), &images, 3, &titles)?;
    let (width, height) = image::image_dimensions(ctx.report_dir.join(name))
        .map_err(|e| Error::format(ctx.report_dir.join(name), e.to_string()))?;
    rec.figures.push(super::document::Figure {
        file: name.to_string(),
        caption: "The sample photos with every detected face boxed; one colour per person found by clustering.".into(),
        width,
        height,
    });
    let rows: Vec<Vec<RgbImage>> = clusters
        .iter()
        .take(12)
        .map(|c| {
            c.iter()
                .take(4)
                .filter_map(|&j| chips_by_face[j].clone())
                .collect()
        })
        .collect();
    rec.figures.push(save_png(
        &ctx.report_dir,
        &group_grid(&rows, 4, 2, 110, 6),
        "faces-clusters.png",
        "Up to 4 aligned chips per person found, largest clusters first (the bar colour matches the boxes).",
    )?);
    rec.metrics.insert("photos".into(), photos.len().into());
    rec.metrics.insert("faces".into(), n.into());
    rec.metrics
        .insert("people_found".into(), clusters.len().into());
    rec.metrics
        .insert("people_in_several_photos".into(), multi_photo.into());
    rec.metrics.insert(
        "timings".into(),
        serde_json::to_value(update.timings).unwrap_or_default(),
    );
    Ok(())
}

/// `pairs.txt` beside the LFW folder or tarball.
fn find_pairs(lfw: &Path) -> Option<PathBuf> {
    let mut dirs = vec![lfw.to_path_buf()];
    if let Some(p) = lfw.parent() {
        dirs.push(p.to_path_buf());
    }
    dirs.into_iter()
        .map(|d| d.join("pairs.txt"))
        .find(|p| p.is_file())
}

/// A copy of `pairs.txt` keeping the first `n` matched and `n` mismatched pairs of each fold.
fn reduced_pairs(src: &Path, dest: &Path, n: usize) -> Result<()> {
    let pairs = read_pairs(src)?;
    let folds = pairs.iter().map(|p| p.fold).max().map_or(0, |f| f + 1);
    let name_index = |p: &Path| -> (String, String) {
        let name = p
            .parent()
            .and_then(|d| d.file_name())
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let stem = p
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let idx = stem
            .rsplit('_')
            .next()
            .and_then(|s| s.parse::<usize>().ok())
            .unwrap_or(0);
        (name, idx.to_string())
    };
    let mut text = format!("{folds}\t{n}\n");
    for fold in 0..folds {
        for same in [true, false] {
            let chosen: Vec<_> = pairs
                .iter()
                .filter(|p| p.fold == fold && p.same == same)
                .take(n)
                .collect();
            if chosen.len() < n {
                return Err(Error::format(
                    src,
                    format!("fold {} has fewer than {n} pairs of a kind", fold + 1),
                ));
            }
            for p in chosen {
                let (na, ia) = name_index(&p.a);
                let (nb, ib) = name_index(&p.b);
                if same {
                    text.push_str(&format!("{na}\t{ia}\t{ib}\n"));
                } else {
                    text.push_str(&format!("{na}\t{ia}\t{nb}\t{ib}\n"));
                }
            }
        }
    }
    crate::assets::write_atomic(dest, text.as_bytes())
}

fn faces_lfw(ctx: &DemoContext, lfw: &Path, rec: &mut StageRecord) -> Result<()> {
    let plan = &ctx.plan;
    let images = resolve_images(lfw)?;
    let pipeline = FacePipeline::from_cache(lfw_options(true))?;
    let work = ctx.work_dir("faces");
    let store_path = work.join("lfw-faces.store");
    let mut metrics = serde_json::Map::new();

    // 1. Verification: LFW's View 2, 10 folds.
    match find_pairs(lfw) {
        Some(pairs_file) => {
            let pairs_used = match plan.lfw_pairs_per_fold {
                Some(n) => {
                    let p = work.join(format!("pairs-{n}-per-fold.txt"));
                    reduced_pairs(&pairs_file, &p, n)?;
                    p
                }
                None => pairs_file.clone(),
            };
            let r = evaluate_lfw(&images, &pairs_used, &pipeline, &store_path, ctx.progress)?;
            rec.summary.push(format!(
                "LFW verification, the standard 10-fold protocol of pairs.txt{}: the threshold is \
                 chosen on 9 folds and tested on the 10th.",
                match plan.lfw_pairs_per_fold {
                    Some(n) => format!(
                        " (quick: the first {n} matched and {n} mismatched pairs of each fold)"
                    ),
                    None => String::new(),
                }
            ));
            let mut t = Table::new("LFW verification", &["", "value"]);
            t.row([
                "accuracy (mean ± std over 10 folds)".to_string(),
                format!(
                    "{:.2} % ± {:.2}",
                    100.0 * r.mean_accuracy,
                    100.0 * r.std_accuracy
                ),
            ]);
            t.row(["ROC AUC".to_string(), format!("{:.4}", r.roc_auc)]);
            t.row([
                "threshold (mean of folds)".to_string(),
                format!("{:.3}", r.threshold),
            ]);
            t.row(["pairs".to_string(), r.pairs.to_string()]);
            t.row(["photos".to_string(), r.photos.to_string()]);
            t.row([
                "detection failures".to_string(),
                format!(
                    "{} ({})",
                    r.detection_failures, r.detection_failure_handling
                ),
            ]);
            speed_row(&mut t, &r.timings);
            rec.tables.push(t);
            metrics.insert(
                "verification".into(),
                serde_json::to_value(&r).unwrap_or_default(),
            );
        }
        None => rec.summary.push(format!(
            "No pairs.txt next to {}: LFW verification skipped.",
            lfw.display()
        )),
    }

    // 2. Clustering people with enough photos.
    let mut chosen = people(&images, plan.lfw_cluster_min_images)?;
    chosen.truncate(plan.lfw_cluster_people);
    if chosen.len() < 2 {
        return Err(Error::format(
            &images,
            format!(
                "fewer than 2 people with {} or more photos",
                plan.lfw_cluster_min_images
            ),
        ));
    }
    let mut files = Vec::new();
    let mut truth = Vec::new();
    for (i, (_, photos)) in chosen.iter().enumerate() {
        for p in photos.iter().take(plan.lfw_cluster_max_photos) {
            files.push(p.clone());
            truth.push(i as u32);
        }
    }
    let (store, keys, _) = embed_files(ctx, &pipeline, &store_path, &files)?;
    let mut data = Vec::new();
    let mut kept = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        if let Some(face) = store.get(k).and_then(|p| p.faces.first()) {
            data.extend_from_slice(&face.embedding);
            kept.push(i);
        }
    }
    let truth_kept: Vec<u32> = kept.iter().map(|&i| truth[i]).collect();
    let labels = cluster(&data, store::DIM, &default_grouping(), ctx.seed)?;
    let pw = pairwise_scores(&truth_kept, &labels);
    let found = count_clusters(&labels);
    rec.summary.push(format!(
        "Clustering: {} photos of the first {} people (alphabetically) with at least {} photos \
         (at most {} each), chinese whispers at {CHINESE_WHISPERS_CUT_FACTOR} × the threshold {LFW_THRESHOLD}.",
        kept.len(),
        chosen.len(),
        plan.lfw_cluster_min_images,
        plan.lfw_cluster_max_photos
    ));
    let mut t = Table::new("LFW identity clustering", &["", "value"]);
    t.row(["people (true)".to_string(), chosen.len().to_string()]);
    t.row(["clusters found".to_string(), found.to_string()]);
    t.row([
        "pairwise precision".to_string(),
        format!("{:.4}", pw.precision),
    ]);
    t.row(["pairwise recall".to_string(), format!("{:.4}", pw.recall)]);
    t.row(["pairwise F1".to_string(), format!("{:.4}", pw.f1)]);
    t.row([
        "NMI".to_string(),
        format!("{:.4}", nmi(&truth_kept, &labels)),
    ]);
    rec.tables.push(t);
    metrics.insert(
        "clustering".into(),
        serde_json::json!({
            "people": chosen.len(), "photos": kept.len(), "clusters": found,
            "pairwise_precision": pw.precision, "pairwise_recall": pw.recall,
            "pairwise_f1": pw.f1, "nmi": nmi(&truth_kept, &labels),
        }),
    );

    // 4 pictures per cluster, largest clusters first.
    let mut by_cluster: std::collections::BTreeMap<u32, Vec<usize>> = Default::default();
    for (j, &l) in labels.iter().enumerate() {
        by_cluster.entry(l).or_default().push(kept[j]);
    }
    let mut clusters: Vec<Vec<usize>> = by_cluster.into_values().collect();
    clusters.sort_by_key(|c| std::cmp::Reverse(c.len()));
    let mut rows = Vec::new();
    for c in clusters.iter().take(8) {
        let mut row = Vec::new();
        for &i in c.iter().take(4) {
            let img = load_rgb(&files[i])?;
            let side = img.width().min(img.height());
            let crop_side = side * 3 / 5;
            let crop = imageops::crop_imm(
                &img,
                (img.width() - crop_side) / 2,
                (img.height() - crop_side) / 2,
                crop_side,
                crop_side,
            )
            .to_image();
            row.push(crop);
        }
        rows.push(row);
    }
    rec.figures.push(save_png(
        &ctx.report_dir,
        &group_grid(&rows, 4, 2, 110, 6),
        "faces-clusters.png",
        "The 8 largest clusters, 4 pictures each.",
    )?);

    // 3. Search: the first photo of each of the first people against all others.
    let mut s = Table::new(
        "Nearest-face search (exact, Euclidean): 5 nearest photos of a query",
        &["query", "rank", "photo", "distance", "same person?"],
    );
    let name_of = |i: usize| chosen[truth[i] as usize].0.clone();
    let file_name = |i: usize| {
        files[i]
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    for &(q_pos, _) in [(0usize, ()), (kept.len() / 2, ())].iter() {
        if q_pos >= kept.len() {
            continue;
        }
        let q = &data[q_pos * store::DIM..(q_pos + 1) * store::DIM];
        let mut hits: Vec<(f32, usize)> = (0..kept.len())
            .filter(|&j| j != q_pos)
            .map(|j| (euclidean(q, &data[j * store::DIM..(j + 1) * store::DIM]), j))
            .collect();
        hits.sort_by(|a, b| a.0.total_cmp(&b.0));
        for (rank, (d, j)) in hits.iter().take(5).enumerate() {
            s.row([
                file_name(kept[q_pos]),
                (rank + 1).to_string(),
                file_name(kept[*j]),
                format!("{d:.3}"),
                if name_of(kept[*j]) == name_of(kept[q_pos]) {
                    "yes"
                } else {
                    "no"
                }
                .to_string(),
            ]);
        }
    }
    rec.tables.push(s);
    let names: Vec<String> = chosen.iter().map(|(n, _)| n.replace('_', " ")).collect();
    push_figure(
        rec,
        super::plots::faces_tsne(ctx, &data, &truth_kept, &names, "faces-tsne.png")
            .map(|f| vec![f]),
    );
    rec.metrics.extend(metrics);
    Ok(())
}
