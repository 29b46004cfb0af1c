//! `siamese verify --model RUN A B`: are two images of the same class, by a trained run's
//! embeddings? Prints the distance, the threshold (calibrated on the run's validation pairs and
//! kept in `RUN/verification.json`, or `--threshold`) and `same` / `different`.

use std::path::PathBuf;

use clap::Args;

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// Run folder written by `siamese train`.
    #[arg(long)]
    pub model: PathBuf,
    /// The first image (any format, converted MNIST-style like the run's data).
    pub a: PathBuf,
    /// The second image.
    pub b: PathBuf,
    /// A distance threshold overriding the calibrated one (pairs at most this far apart are
    /// `same`).
    #[arg(long, allow_negative_numbers = true)]
    pub threshold: Option<f32>,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: VerifyArgs) -> anyhow::Result<()> {
    let v =
        siamese::recognize::verify::verify_images(&args.model, &args.a, &args.b, args.threshold)?;
    if args.json {
        println!("{}", serde_json::to_string(&v)?);
        return Ok(());
    }
    let verdict = if v.same { "same" } else { "different" };
    let how = match &v.calibration {
        Some(c) => format!(
            "calibrated on {} validation pairs, {:.1} % right",
            c.same_pairs + c.different_pairs,
            100.0 * c.accuracy
        ),
        None => "given".to_string(),
    };
    println!(
        "{} vs {}: {} distance {:.4} {} threshold {:.4} ({how}): {verdict}",
        v.a,
        v.b,
        v.metric,
        v.distance,
        if v.same { "≤" } else { ">" },
        v.threshold
    );
    Ok(())
}
