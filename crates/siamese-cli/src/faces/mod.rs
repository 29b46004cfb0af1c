//! `siamese faces verify|eval-lfw|embed|cluster|search|plot|eval-cluster|bench`: the face pipeline
//! (SeetaFace detection, dlib landmarks and alignment, dlib's ResNet) from the command line.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand, ValueEnum};
use siamese::cluster::Linkage;
use siamese::faces::eval_lfw::{evaluate_lfw, lfw_options};
use siamese::faces::gallery::{write_gallery, GalleryFace};
use siamese::faces::grouping::{evaluate_lfw_clustering, GroupingParams, MethodName};
use siamese::faces::pipeline::{FacePipeline, FaceSelection, PipelineOptions};
use siamese::faces::verify::resolve_threshold;
use siamese::faces::{plot as face_plot, store};

mod cluster;
mod people;
use cluster::{run_cluster, run_eval_cluster, ClusterArgs, EvalClusterArgs};
use people::DbArgs;

#[derive(Args)]
pub struct FacesArgs {
    #[command(subcommand)]
    command: FacesCommand,
}

#[derive(Subcommand)]
enum FacesCommand {
    /// Distance between the faces of two photos, the threshold, and same/different.
    Verify(VerifyArgs),
    /// LFW's 10-fold verification protocol: accuracy ± std, ROC AUC, detection failures.
    EvalLfw(EvalLfwArgs),
    /// Embed every face of a folder into the database (only new or changed photos are embedded).
    Embed(EmbedArgs),
    /// Group a folder's faces by person: clusters.csv, a montage per person, index.html.
    Cluster(ClusterArgs),
    /// The stored faces nearest to the face in a query photo.
    Search(SearchArgs),
    /// t-SNE of a folder's faces coloured by sub-folder (identity), beside an ImageNet backbone's.
    Plot(PlotArgs),
    /// Clustering quality on LFW people with at least N photos: pairwise P/R/F1, NMI, AMI.
    EvalCluster(EvalClusterArgs),
    /// Faces/s of detection + alignment + embedding and of the network alone.
    Bench(crate::faces_bench::FaceBenchArgs),
    /// The people of the database: id, name, faces, sample photos.
    People(people::PeopleArgs),
    /// Give a person a name.
    Name(people::NameArgs),
    /// Merge two people (the second one's faces join the first).
    Merge(people::MergeArgs),
    /// Move one face to another person (or `new`: split it off).
    Move(people::MoveArgs),
    /// Check the database's integrity (SQLite's `PRAGMA integrity_check`).
    Check(people::CheckArgs),
}

/// Settings shared by every command that embeds photos.
#[derive(Args, Clone)]
struct PipelineArgs {
    /// Photos are already face crops: resize each whole photo to the 150x150 chip instead of
    /// detecting and aligning.
    #[arg(long)]
    no_align: bool,
    /// Chips per forward pass of the network.
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Smallest face side searched by the detector, in pixels.
    #[arg(long, default_value_t = 40)]
    min_face: u32,
    /// Average each face's embedding with its mirror image's (twice the network time).
    #[arg(long)]
    flip: bool,
    /// Also average in the embeddings of this many jittered copies of each chip (dlib's
    /// jitter: ±3°, ±2 % shifts, mirrored half of the time; N+1 times the network time).
    #[arg(long, default_value_t = 0)]
    jitter: usize,
    /// Another dlib shape predictor (e.g. shape_predictor_68_face_landmarks.dat) instead of the
    /// fetched 5-point model.
    #[arg(long)]
    landmarks_model: Option<PathBuf>,
    /// The network's arithmetic: f32, or bf16 inputs with fp32 sums on AMX tiles (Intel Xeon
    /// Sapphire Rapids and later; elsewhere it says so and runs fp32). bf16 embeddings are a
    /// collection of their own in the database.
    #[arg(long, default_value = "f32", value_parser = crate::precision::parse_precision)]
    precision: siamese::kernels::Precision,
}

impl PipelineArgs {
    /// Loads the models (with `--landmarks-model` when given).
    fn load(&self, options: PipelineOptions) -> anyhow::Result<FacePipeline> {
        Ok(FacePipeline::from_cache_with(
            options,
            self.landmarks_model.as_deref(),
        )?)
    }

    /// The defaults with these arguments and `selection`.
    fn options(&self, selection: FaceSelection) -> PipelineOptions {
        self.applied_to(PipelineOptions {
            selection,
            ..PipelineOptions::default()
        })
    }

    /// LFW's settings (central face, assumed box when nothing is detected) with these arguments.
    fn lfw_options(&self) -> PipelineOptions {
        self.applied_to(lfw_options(!self.no_align))
    }

    /// `base` with every setting these arguments name.
    fn applied_to(&self, mut base: PipelineOptions) -> PipelineOptions {
        base.align = !self.no_align;
        base.batch_size = self.batch_size;
        base.flip = self.flip;
        base.jitter = self.jitter;
        base.detector.min_face = self.min_face;
        base.precision = crate::precision::usable(self.precision, "embedding");
        base
    }
}

#[derive(Args)]
struct VerifyArgs {
    /// First photo.
    a: PathBuf,
    /// Second photo.
    b: PathBuf,
    /// Same-person threshold (default: the LFW-calibrated one).
    #[arg(long)]
    threshold: Option<f32>,
    #[command(flatten)]
    pipeline: PipelineArgs,
    /// Print one JSON object on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct EvalLfwArgs {
    /// LFW: the deep-funneled tarball or its unpacked folder.
    #[arg(long)]
    lfw: PathBuf,
    /// The View 2 protocol file (pairs.txt).
    #[arg(long)]
    pairs: PathBuf,
    /// Embedding database (reused by later runs); default `<cache>/lfw/faces.db`.
    #[command(flatten)]
    db: DbArgs,
    #[command(flatten)]
    pipeline: PipelineArgs,
    /// Print one JSON object on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct EmbedArgs {
    /// Folder of photos (searched recursively).
    dir: PathBuf,
    #[command(flatten)]
    db: DbArgs,
    #[command(flatten)]
    pipeline: PipelineArgs,
    /// Print one JSON object on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct SearchArgs {
    /// The database `faces embed` or `faces cluster` filled.
    #[command(flatten)]
    db: DbArgs,
    /// Photo with the face to look for (its most confident face).
    query: PathBuf,
    /// Results.
    #[arg(short, long, default_value_t = 5)]
    k: usize,
    /// Same-person threshold marking hits (default: the LFW-calibrated one).
    #[arg(long)]
    threshold: Option<f32>,
    /// Exact search even where the database has an approximate index.
    #[arg(long)]
    exact: bool,
    #[command(flatten)]
    pipeline: PipelineArgs,
    /// Print one JSON object on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct PlotArgs {
    /// Folder of identity folders (`person/*.jpg`).
    dir: PathBuf,
    /// Output folder for the PNGs.
    #[arg(long, default_value = "face-plots")]
    out: PathBuf,
    /// Embedding database (default `<out>/faces.db`).
    #[command(flatten)]
    db: DbArgs,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[command(flatten)]
    pipeline: PipelineArgs,
    /// Print one JSON object on stdout.
    #[arg(long)]
    json: bool,
}

pub fn run(args: FacesArgs) -> anyhow::Result<()> {
    match args.command {
        FacesCommand::Verify(a) => verify(a),
        FacesCommand::EvalLfw(a) => eval_lfw(a),
        FacesCommand::Embed(a) => embed(a),
        FacesCommand::Cluster(a) => run_cluster(a),
        FacesCommand::Search(a) => search(a),
        FacesCommand::Plot(a) => plot(a),
        FacesCommand::EvalCluster(a) => run_eval_cluster(a),
        FacesCommand::Bench(a) => crate::faces_bench::run(a),
        FacesCommand::People(a) => people::people(a),
        FacesCommand::Name(a) => people::name(a),
        FacesCommand::Merge(a) => people::merge(a),
        FacesCommand::Move(a) => people::move_face(a),
        FacesCommand::Check(a) => people::check(a),
    }
}

fn verify(args: VerifyArgs) -> anyhow::Result<()> {
    let options = args.pipeline.options(FaceSelection::All);
    let threshold = resolve_threshold(args.threshold, &options)?;
    let pipeline = args.pipeline.load(options)?;
    let result = siamese::faces::verify::verify_photos(&pipeline, &args.a, &args.b, threshold)?;
    let nearest = result.nearest();
    if args.json {
        let out = serde_json::json!({
            "a": args.a, "b": args.b, "distance": nearest.distance, "threshold": threshold,
            "same": nearest.same, "box_a": nearest.box_a, "box_b": nearest.box_b,
            "faces_a": result.faces_a, "faces_b": result.faces_b, "pairs": result.pairs,
        });
        println!("{out}");
        return Ok(());
    }
    let word = |same: bool| {
        if same {
            "same person"
        } else {
            "different people"
        }
    };
    if result.pairs.len() == 1 {
        println!(
            "distance {:.4}, threshold {threshold:.4}: {}",
            nearest.distance,
            word(nearest.same)
        );
        return Ok(());
    }
    println!(
        "{} faces in {}, {} in {}; threshold {threshold:.4}; every pair, nearest first:",
        result.faces_a,
        args.a.display(),
        result.faces_b,
        args.b.display()
    );
    let at = |b: &siamese::faces::detect::FaceBox| {
        format!(
            "({:.0},{:.0} {:.0}x{:.0})",
            b.left, b.top, b.width, b.height
        )
    };
    for p in &result.pairs {
        println!(
            "  a face {} {} ~ b face {} {}: distance {:.4}: {}",
            p.face_a,
            at(&p.box_a),
            p.face_b,
            at(&p.box_b),
            p.distance,
            word(p.same)
        );
    }
    Ok(())
}

fn eval_lfw(args: EvalLfwArgs) -> anyhow::Result<()> {
    let options = args.pipeline.lfw_options();
    let pipeline = args.pipeline.load(options)?;
    // The arguments are checked before the default database (a legacy import) is touched.
    std::fs::metadata(&args.lfw).map_err(|e| siamese::Error::io(&args.lfw, e))?;
    siamese::input::check_regular(&args.pairs)?;
    let locator = args.db.locator_in(&siamese::faces::lfw::lfw_cache_dir())?;
    let report = evaluate_lfw(&args.lfw, &args.pairs, &pipeline, &locator, !args.json)?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
        return Ok(());
    }
    for f in &report.folds {
        println!(
            "fold {:2}: threshold {:.4}  accuracy {:.2} %",
            f.fold + 1,
            f.threshold,
            100.0 * f.accuracy
        );
    }
    println!(
        "LFW 10-fold accuracy {:.2} % ± {:.2} (std), ROC AUC {:.4}, threshold {:.4}",
        100.0 * report.mean_accuracy,
        100.0 * report.std_accuracy,
        report.roc_auc,
        report.threshold
    );
    println!(
        "{} pairs over {} photos; no face detected in {} ({})",
        report.pairs, report.photos, report.detection_failures, report.detection_failure_handling
    );
    if report.pairs_skipped > 0 {
        println!("{} pairs skipped: unreadable photos", report.pairs_skipped);
    }
    print_speed(
        &report.timings,
        report.embedded_photos,
        report.reused_photos,
    );
    Ok(())
}

fn print_speed(t: &siamese::faces::pipeline::Timings, embedded: usize, reused: usize) {
    println!("embedded {embedded} photos, reused {reused} from the store");
    if t.faces > 0 {
        println!(
            "speed: {:.1} faces/s end to end (detection+alignment {:.1} s, embedding {:.1} s = {:.1} faces/s)",
            t.faces as f64 / (t.prepare_s + t.embed_s),
            t.prepare_s,
            t.embed_s,
            t.faces as f64 / t.embed_s
        );
    }
}

/// A folder's photos embedded into the database, and the database.
struct EmbeddedFolder {
    database: Box<dyn siamese::store::Backend>,
    locator: siamese::store::Locator,
    embedded: store::EmbeddedFiles,
}

/// Lists a folder's files, embeds what is new into the database at `locator`, prints skipped
/// files.
fn embed_folder(
    dir: &Path,
    locator: siamese::store::Locator,
    pipeline_args: &PipelineArgs,
    options: PipelineOptions,
    quiet: bool,
) -> anyhow::Result<EmbeddedFolder> {
    let listing = siamese::faces::load::list_folder(dir)?;
    let files = listing.files;
    if files.is_empty() {
        anyhow::bail!("{}: no files", dir.display());
    }
    let pipeline = pipeline_args.load(options)?;
    let mut database = siamese::store::open(&locator)?;
    let mut embedded = store::embed_files_in(database.as_mut(), &files, &pipeline, !quiet)?;
    // FIFOs, devices and links to folders are listed with the files that could not be used.
    embedded.report.skipped.splice(0..0, listing.skipped);
    if !quiet {
        let report = &embedded.report;
        print_speed(
            &report.timings,
            report.embedded_photos,
            report.reused_photos,
        );
        print_skipped(&report.skipped);
    }
    Ok(EmbeddedFolder {
        database,
        locator,
        embedded,
    })
}

fn print_skipped(skipped: &[(PathBuf, String)]) {
    if skipped.is_empty() {
        return;
    }
    eprintln!("skipped {} file(s):", skipped.len());
    for (_, why) in skipped {
        eprintln!("  {why}");
    }
}

fn embed(args: EmbedArgs) -> anyhow::Result<()> {
    let options = args.pipeline.options(FaceSelection::All);
    let locator = args.db.locator()?;
    let folder = embed_folder(&args.dir, locator, &args.pipeline, options, args.json)?;
    let (st, keys, report) = (
        &folder.embedded.store,
        &folder.embedded.keys,
        &folder.embedded.report,
    );
    let faces: usize = keys
        .iter()
        .filter_map(|k| st.get(k))
        .map(|p| p.faces.len())
        .sum();
    if args.json {
        let out = serde_json::json!({
            "database": folder.locator.redacted(), "collection": folder.embedded.collection,
            "photos": keys.len(), "faces": faces,
            "embedded_photos": report.embedded_photos, "reused_photos": report.reused_photos,
            "embedded_faces": report.embedded_faces, "timings": report.timings,
            "skipped": report.skipped.iter().map(|(_, m)| m).collect::<Vec<_>>(),
        });
        println!("{out}");
    } else {
        println!(
            "{} photos, {faces} faces in {} (collection {})",
            keys.len(),
            folder.locator,
            folder.embedded.collection
        );
    }
    Ok(())
}

fn search(args: SearchArgs) -> anyhow::Result<()> {
    let options = args.pipeline.options(FaceSelection::All);
    let threshold = resolve_threshold(args.threshold, &options)?;
    let locator = args.db.locator()?;
    let mut database = siamese::store::open_existing(&locator)?;
    let fingerprint = options.fingerprint();
    let collections = database.collections()?;
    let Some(collection) = collections
        .iter()
        .find(|c| c.spec.fingerprint == fingerprint)
    else {
        let made: Vec<String> = collections
            .iter()
            .map(|c| format!("{} ({} faces)", c.spec.fingerprint, c.faces))
            .collect();
        anyhow::bail!(
            "{locator}: no faces embedded with these settings ({fingerprint}); it holds: {}; pass \
             the flags they were made with",
            if made.is_empty() {
                "nothing".to_string()
            } else {
                made.join(", ")
            }
        );
    };
    let st = database.load(collection.id)?;
    let searched = st.face_count();
    let pipeline = args.pipeline.load(options)?;
    let query = pipeline.embed_one(&args.query)?;
    let hits = siamese::faces::search::search_database(
        database.as_mut(),
        collection.id,
        &st,
        &query.embedding,
        args.k,
        threshold,
        args.exact,
    )?;
    if args.json {
        let out = serde_json::json!({
            "query": args.query, "query_box": query.bbox, "threshold": threshold,
            "faces_searched": searched, "hits": hits,
        });
        println!("{out}");
    } else {
        println!("{searched} faces searched; threshold {threshold:.3}");
        for h in &hits {
            let mark = if h.same_person { "same" } else { "    " };
            println!(
                "{:3}. {:.4} {mark} {} (face {})",
                h.rank, h.distance, h.path, h.face
            );
        }
    }
    Ok(())
}

fn plot(args: PlotArgs) -> anyhow::Result<()> {
    siamese::input::check_dir(&args.dir)?;
    let locator = args.db.locator_in(&args.out)?;
    let options = args.pipeline.options(FaceSelection::All);
    let folder = embed_folder(&args.dir, locator, &args.pipeline, options, args.json)?;
    let (st, keys) = (&folder.embedded.store, &folder.embedded.keys);
    let out = face_plot::plot_faces(st, keys, &args.dir, &args.out, args.seed)?;
    if args.json {
        println!("{}", serde_json::to_string(&out)?);
    } else {
        println!(
            "{} faces of {} identities: {}",
            out.points,
            out.identities,
            out.comparison_png.display()
        );
        if out.backbone_png.is_none() {
            println!(
                "(no ImageNet backbone in the cache: `siamese fetch backbone` adds the comparison)"
            );
        }
    }
    Ok(())
}
