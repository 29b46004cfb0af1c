//! Face throughput (`siamese faces bench`): faces/s of the whole pipeline (decode, detect,
//! landmarks, align, embed) and of the network alone on the same 150x150 chips, batched, median
//! of several rounds, with the load average beside it. The chips can be written out as PNGs so
//! that dlib's own C++ encoder can be timed on exactly the same input (`bench/dlib_faces.sh`).

use std::path::{Path, PathBuf};
use std::time::Instant;

use image::RgbImage;

use super::pipeline::FacePipeline;
use crate::output::write_atomic;
use crate::train::bench::median;
use crate::{Error, Result};

/// What `siamese faces bench` reports.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FaceBenchReport {
    pub photos: usize,
    /// Faces found (one chip each).
    pub faces: usize,
    /// Photos that could not be read, with the reason.
    pub skipped: Vec<String>,
    pub batch_size: usize,
    /// The network's arithmetic (`f32`, or `bf16` on AMX).
    #[serde(default)]
    pub precision: crate::kernels::Precision,
    /// Worker threads (rayon) used by detection and by the network.
    pub threads: usize,
    /// Seconds for decoding, detection, landmarks and alignment of every photo.
    pub prepare_s: f64,
    /// Faces/s of detection + alignment + embedding (prepare plus the first embedding round).
    pub pipeline_faces_per_s: f64,
    /// Faces/s of the network alone, per round.
    pub embed_rounds_faces_per_s: Vec<f64>,
    /// Median of the rounds.
    pub embed_faces_per_s: f64,
    /// `/proc/loadavg`'s 1-minute figure before and after (other work on the machine).
    pub load_before: Option<f64>,
    pub load_after: Option<f64>,
    /// Where the chips were written (`--save-chips`).
    pub chips_dir: Option<PathBuf>,
    /// How the network ran ([`crate::model::face_resnet::FaceResNet::pass_name`]).
    pub network_path: String,
    /// The SIMD level our loops ran at, and the CPU's relevant flags.
    pub simd_level: String,
    pub cpu_flags: Vec<String>,
}

/// The 1-minute load average, where the system reports one (`None` serialises as `null`).
fn load_average() -> Option<f64> {
    Some(crate::train::bench::load_average()).filter(|v| v.is_finite())
}

/// Writes `chips` as `chip_00000.png`, … into `dir` (each file atomically).
pub fn save_chips(chips: &[RgbImage], dir: &Path) -> Result<()> {
    for (i, chip) in chips.iter().enumerate() {
        let path = dir.join(format!("chip_{i:05}.png"));
        let mut bytes = Vec::new();
        chip.write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .map_err(|e| Error::format(&path, format!("cannot encode PNG: {e}")))?;
        write_atomic(&path, &bytes)?;
    }
    Ok(())
}

/// Times the pipeline on `files`: one pass of detection and alignment, then `rounds` passes of
/// the network over all chips (`rounds ≥ 1`).
pub fn bench_faces(
    pipeline: &FacePipeline,
    files: &[PathBuf],
    rounds: usize,
    chips_dir: Option<&Path>,
) -> Result<FaceBenchReport> {
    if rounds == 0 {
        return Err(Error::config("rounds", "must be at least 1"));
    }
    let load_before = load_average();
    let start = Instant::now();
    let prepared = pipeline.chips_of_files(files);
    let prepare_s = start.elapsed().as_secs_f64();
    let mut chips = Vec::new();
    let mut skipped = Vec::new();
    for r in prepared {
        match r {
            Ok(c) => chips.extend(c),
            Err(e) => skipped.push(e.to_string()),
        }
    }
    if chips.is_empty() {
        return Err(Error::Other(format!(
            "no face found in any of the {} photos",
            files.len()
        )));
    }
    let mut rates = Vec::with_capacity(rounds);
    let mut first_embed_s = 0.0;
    for round in 0..rounds {
        let start = Instant::now();
        let out = pipeline.embed_chips(&chips)?;
        let dt = start.elapsed().as_secs_f64();
        debug_assert_eq!(out.len(), chips.len());
        if round == 0 {
            first_embed_s = dt;
        }
        rates.push(chips.len() as f64 / dt);
    }
    if let Some(dir) = chips_dir {
        save_chips(&chips, dir)?;
    }
    Ok(FaceBenchReport {
        photos: files.len(),
        faces: chips.len(),
        skipped,
        batch_size: pipeline.options().batch_size,
        precision: pipeline.options().precision,
        threads: rayon::current_num_threads(),
        prepare_s,
        pipeline_faces_per_s: chips.len() as f64 / (prepare_s + first_embed_s),
        embed_faces_per_s: median(&mut rates.clone()),
        embed_rounds_faces_per_s: rates,
        load_before,
        load_after: load_average(),
        chips_dir: chips_dir.map(Path::to_path_buf),
        network_path: pipeline.network().pass_name().to_string(),
        simd_level: crate::kernels::simd::level().name().to_string(),
        cpu_flags: crate::kernels::simd::cpu_flags()
            .into_iter()
            .map(String::from)
            .collect(),
    })
}
