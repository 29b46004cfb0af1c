//! The demo's triplet-file task (seed 003): `anchor positive negative` files, a frozen ImageNet
//! MobileNetV2 as feature extractor (features cached on disk), a small head trained with triplet
//! loss, and the prediction "anchor closer to the second image" on held-out triplets, beside the
//! raw backbone features' accuracy. With `--lfw`: triplets of LFW people, test people disjoint
//! from training people. Without: MNIST test digits written as a labelled PNG folder (any
//! folder of `class/*.png` works the same way), test images disjoint from training images.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::context::DemoContext;
use super::document::{StageRecord, Table};
use super::figures::{add_png, digit_image};
use crate::data::idx::{load_mnist, MnistSplit};
use crate::data::split::stratified_subset;
use crate::data::triplet_file::{
    list_classes, make_triplets, read_triplets, split_classes, write_triplets, MakeOptions,
};
use crate::faces::lfw::resolve_images;
use crate::model::backbone::{Backbone, BackboneKind, FeatureExtractor};
use crate::model::feature_cache;
use crate::train::head::{train_head, HeadRunConfig, LOSS_PNG};
use crate::train::head_predict::{predict_triplet_file, triplet_file_features, PredictOutcome};
use crate::{Error, Result};

type Classes = BTreeMap<String, Vec<String>>;

/// Writes `per_class` MNIST test digits of each class as `dir/<digit>/<i>.png` (once).
fn write_digit_folder(dir: &Path, per_class: usize, seed: u64) -> Result<()> {
    let marker = dir.join(format!(".complete-{per_class}-{seed}"));
    if marker.is_file() {
        return Ok(());
    }
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let test = load_mnist(MnistSplit::Test)?;
    let subset = stratified_subset(&test, per_class * test.class_names.len(), seed);
    for i in 0..subset.len() {
        let class = &subset.class_names[subset.labels[i] as usize];
        let path = dir.join(class).join(format!("{i:05}.png"));
        let img = digit_image(&subset, i);
        let mut bytes = Vec::new();
        img.write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .map_err(|e| Error::Other(format!("cannot encode {}: {e}", path.display())))?;
        crate::output::write_atomic(&path, &bytes)?;
    }
    std::fs::write(&marker, b"").map_err(|e| Error::io(&marker, e))
}

/// Splits every class's images in two halves (alternating), for image-disjoint train/test.
fn split_images(classes: &Classes) -> (Classes, Classes) {
    let (mut a, mut b) = (Classes::new(), Classes::new());
    for (k, v) in classes {
        a.insert(k.clone(), v.iter().step_by(2).cloned().collect());
        b.insert(k.clone(), v.iter().skip(1).step_by(2).cloned().collect());
    }
    (a, b)
}

/// Stage: make triplet files, train the head on frozen MobileNetV2 features, predict the test
/// file. Returns the test accuracy.
pub fn stage_triplets(ctx: &DemoContext, rec: &mut StageRecord) -> Result<PredictOutcome> {
    let plan = &ctx.plan;
    let work = ctx.work_dir(&format!("triplets{}", plan.suffix));
    let (images, train_classes, test_classes, what): (PathBuf, Classes, Classes, String) =
        match &ctx.lfw {
            Some(lfw) => {
                let images = resolve_images(lfw)?;
                let classes = list_classes(&images)?;
                let (tr, te) = split_classes(&classes, 0.2, ctx.seed)?;
                (
                    images,
                    tr,
                    te,
                    "LFW people (the test file's people never appear in training)".into(),
                )
            }
            None => {
                let images = work.join("digits");
                write_digit_folder(&images, plan.triplet_digits_per_class, ctx.seed)?;
                let (tr, te) = split_images(&list_classes(&images)?);
                (
                    images,
                    tr,
                    te,
                    format!(
                        "MNIST test digits written as a labelled PNG folder ({} per digit; training \
                         and test triplets use disjoint images)",
                        plan.triplet_digits_per_class
                    ),
                )
            }
        };
    let train_file = work.join("train.txt");
    let test_file = work.join("test.txt");
    let train = make_triplets(
        &train_classes,
        MakeOptions {
            n: plan.triplets_train,
            seed: ctx.seed,
        },
        &images,
    )?;
    let test = make_triplets(
        &test_classes,
        MakeOptions {
            n: plan.triplets_test,
            seed: ctx.seed.wrapping_add(1),
        },
        &images,
    )?;
    write_triplets(&train_file, &train)?;
    write_triplets(&test_file, &test)?;

    let backbone = Backbone::load_cpu(BackboneKind::MobileNetV2, None)?;
    let cache = feature_cache::default_dir();
    let file = read_triplets(&train_file, &images)?;
    let (data, stats) = triplet_file_features(&file, &images, &backbone, &cache, ctx.progress)?;
    let config = HeadRunConfig {
        epochs: plan.head_epochs,
        seed: ctx.seed,
        ..HeadRunConfig::new(
            BackboneKind::MobileNetV2,
            backbone.id(),
            backbone.feature_dim(),
        )
    };
    let run = work.join("head");
    let outcome = train_head(&data, &config, &run, ctx.progress)?;
    let predicted = predict_triplet_file(&run, &images, &test_file, &cache, ctx.progress)?;
    let best = &outcome.history[outcome.best_epoch - 1];

    rec.summary.push(format!(
        "Triplets from {what}: {} training and {} test triplets (`anchor positive negative` per \
         line, the seeds' format). A frozen MobileNetV2 (ImageNet weights) turns each image into \
         {} features, cached on disk ({} computed now, {} from the cache); a head (dense {} → \
         ReLU → dropout → dense {} → L2) is trained with triplet loss for {} epochs. The \
         prediction for a triplet is 1 when the anchor is closer to the second image.",
        train.len(),
        test.len(),
        backbone.feature_dim(),
        stats.computed,
        stats.hits,
        config.head.hidden,
        config.head.dim,
        config.epochs,
    ));
    let mut t = Table::new(
        "Triplet accuracy on the held-out test file",
        &["features", "accuracy"],
    );
    t.row([
        "trained head (Euclidean)".to_string(),
        format!("{:.2} %", 100.0 * predicted.accuracy),
    ]);
    t.row([
        "raw backbone features, Euclidean".to_string(),
        format!("{:.2} %", 100.0 * predicted.raw_feature_accuracy_euclidean),
    ]);
    t.row([
        "raw backbone features, cosine".to_string(),
        format!("{:.2} %", 100.0 * predicted.raw_feature_accuracy_cosine),
    ]);
    rec.tables.push(t);
    let mut h = Table::new(
        format!(
            "Head training ({} train / {} validation triplets; best epoch {} kept)",
            outcome.train_triplets, outcome.val_triplets, outcome.best_epoch
        ),
        &["", "value"],
    );
    h.row([
        "best validation loss".to_string(),
        format!("{:.4}", best.val_loss),
    ]);
    h.row([
        "validation accuracy".to_string(),
        format!("{:.2} %", 100.0 * best.val_accuracy),
    ]);
    rec.tables.push(h);
    let loss = run.join(LOSS_PNG);
    if loss.is_file() {
        rec.figures.push(add_png(
            &ctx.report_dir,
            &loss,
            "triplets-loss.png",
            "Triplet head: training and validation loss per epoch.",
        )?);
    }
    rec.metrics
        .insert("test_accuracy".into(), predicted.accuracy.into());
    rec.metrics.insert(
        "raw_feature_accuracy_euclidean".into(),
        predicted.raw_feature_accuracy_euclidean.into(),
    );
    rec.metrics.insert(
        "raw_feature_accuracy_cosine".into(),
        predicted.raw_feature_accuracy_cosine.into(),
    );
    rec.metrics
        .insert("train_triplets".into(), train.len().into());
    rec.metrics
        .insert("test_triplets".into(), test.len().into());
    rec.metrics.insert("data".into(), what.into());
    Ok(predicted)
}
