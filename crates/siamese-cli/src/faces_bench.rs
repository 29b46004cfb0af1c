//! `siamese faces bench DIR`: faces/s of detection + alignment + embedding and of the network
//! alone (batched) on a folder's photos, with the load average; `--save-chips` writes the chips
//! for dlib's C++ encoder (bench/dlib_faces.sh).

use std::path::PathBuf;

use clap::Args;
use siamese::faces::bench::bench_faces;
use siamese::faces::pipeline::{FacePipeline, FaceSelection, PipelineOptions};

#[derive(Args)]
pub struct FaceBenchArgs {
    /// Folder of photos (searched recursively).
    dir: PathBuf,
    /// At most this many photos (the first in path order).
    #[arg(long, default_value_t = 200)]
    photos: usize,
    /// Rounds of the network over all chips (the median is reported).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Chips per forward pass.
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Write the aligned chips here as chip_NNNNN.png.
    #[arg(long)]
    save_chips: Option<PathBuf>,
    /// The network's arithmetic: f32, or bf16 on AMX tiles.
    #[arg(long, default_value = "f32", value_parser = crate::precision::parse_precision)]
    precision: siamese::kernels::Precision,
    /// Print one JSON object on stdout.
    #[arg(long)]
    json: bool,
}

pub fn run(args: FaceBenchArgs) -> anyhow::Result<()> {
    let mut files = siamese::faces::load::list_files(&args.dir)?;
    files.truncate(args.photos);
    if files.is_empty() {
        anyhow::bail!("{}: no files", args.dir.display());
    }
    let options = PipelineOptions {
        selection: FaceSelection::All,
        batch_size: args.batch_size,
        precision: crate::precision::usable(args.precision, "embedding"),
        ..PipelineOptions::default()
    };
    let pipeline = FacePipeline::from_cache(options)?;
    let r = bench_faces(&pipeline, &files, args.rounds, args.save_chips.as_deref())?;
    if args.json {
        println!("{}", serde_json::to_string(&r)?);
        return Ok(());
    }
    println!(
        "{} faces in {} photos, {} threads, batch {}; load average {:.2} before, {:.2} after",
        r.faces,
        r.photos,
        r.threads,
        r.batch_size,
        r.load_before.unwrap_or(f64::NAN),
        r.load_after.unwrap_or(f64::NAN)
    );
    println!(
        "detection + alignment + embedding: {:.1} faces/s (detection + alignment {:.2} s)",
        r.pipeline_faces_per_s, r.prepare_s
    );
    let rounds: Vec<String> = r
        .embed_rounds_faces_per_s
        .iter()
        .map(|x| format!("{x:.1}"))
        .collect();
    println!(
        "embedding alone: {:.1} faces/s (median of rounds {}); network: {}, {} loops, {}",
        r.embed_faces_per_s,
        rounds.join(", "),
        r.network_path,
        r.simd_level,
        r.precision
    );
    println!("cpu flags: {}", r.cpu_flags.join(" "));
    for s in &r.skipped {
        eprintln!("skipped: {s}");
    }
    Ok(())
}
