//! `siamese faces cluster` and `eval-cluster`: grouping a folder's faces into people, and the
//! clustering evaluation on LFW identities; the grouping parameters derive from the LFW threshold.

use super::*;
use siamese::faces::people::{update_people, PeopleParams};

#[derive(Clone, Copy, ValueEnum)]
enum MethodArg {
    Dbscan,
    Kmeans,
    Agglomerative,
    ChineseWhispers,
}

impl MethodArg {
    fn name(self) -> MethodName {
        match self {
            MethodArg::Dbscan => MethodName::Dbscan,
            MethodArg::Kmeans => MethodName::Kmeans,
            MethodArg::Agglomerative => MethodName::Agglomerative,
            MethodArg::ChineseWhispers => MethodName::ChineseWhispers,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum LinkageArg {
    Average,
    Complete,
    Single,
}

/// Clustering parameters; every default derives from the LFW-calibrated threshold.
#[derive(Args, Clone)]
struct GroupingArgs {
    /// Clustering method.
    #[arg(long, value_enum, default_value = "chinese-whispers")]
    method: MethodArg,
    /// Same-person threshold the defaults derive from (default: the LFW-calibrated one).
    #[arg(long)]
    threshold: Option<f32>,
    /// DBSCAN radius (default 0.65 x threshold).
    #[arg(long)]
    eps: Option<f32>,
    /// DBSCAN: faces within eps a face needs (itself included) to seed a group.
    #[arg(long, default_value_t = 2)]
    min_points: usize,
    /// Agglomerative linkage.
    #[arg(long, value_enum, default_value = "average")]
    linkage: LinkageArg,
    /// Distance cut for agglomerative and chinese whispers (default 0.82 x threshold for
    /// agglomerative, 0.74 x threshold for chinese whispers).
    #[arg(long)]
    cut: Option<f32>,
    /// k-means clusters (default: the number agglomerative finds at its default cut).
    #[arg(long)]
    k: Option<usize>,
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

impl GroupingArgs {
    /// The parameters; the threshold defaults to the LFW one of the pipeline settings in use.
    fn params(&self, options: &PipelineOptions) -> anyhow::Result<GroupingParams> {
        let mut p = GroupingParams::from_threshold(resolve_threshold(self.threshold, options)?);
        p.eps = self.eps;
        p.min_points = self.min_points;
        p.linkage = match self.linkage {
            LinkageArg::Average => Linkage::Average,
            LinkageArg::Complete => Linkage::Complete,
            LinkageArg::Single => Linkage::Single,
        };
        p.cut = self.cut;
        p.k = self.k;
        p.seed = self.seed;
        Ok(p)
    }
}

#[derive(Args)]
pub(super) struct ClusterArgs {
    /// Folder of photos (searched recursively).
    dir: PathBuf,
    /// Output folder: clusters.csv, montages/, faces/, index.html.
    #[arg(long, default_value = "face-clusters")]
    out: PathBuf,
    /// Embedding database (default `<out>/faces.db`): a second run embeds only new photos and
    /// assigns only new faces to the people kept there.
    #[command(flatten)]
    db: DbArgs,
    /// Cluster every face again instead of assigning new faces to the people kept (names
    /// survive: a new group keeps the id and name of the person most of its faces had).
    #[arg(long)]
    recluster: bool,
    #[command(flatten)]
    grouping: GroupingArgs,
    #[command(flatten)]
    pipeline: PipelineArgs,
    /// Print one JSON object on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub(super) struct EvalClusterArgs {
    /// LFW: the deep-funneled tarball or its unpacked folder.
    #[arg(long)]
    lfw: PathBuf,
    /// People with at least this many photos.
    #[arg(long, default_value_t = 5)]
    min_images: usize,
    /// Embedding database, a SQLite file (default: the one eval-lfw uses).
    #[arg(long = "db", alias = "store")]
    store: Option<PathBuf>,
    #[command(flatten)]
    grouping: GroupingArgs,
    #[command(flatten)]
    pipeline: PipelineArgs,
    /// Print one JSON object on stdout.
    #[arg(long)]
    json: bool,
}

pub(super) fn run_cluster(args: ClusterArgs) -> anyhow::Result<()> {
    let options = args.pipeline.options(FaceSelection::All);
    let params = args.grouping.params(&options)?;
    // Validated before the default database (and its folder) is made.
    siamese::input::check_dir(&args.dir)?;
    let locator = args.db.locator_in(&args.out)?;
    let mut folder = embed_folder(&args.dir, locator, &args.pipeline, options, args.json)?;
    let keys = folder.embedded.keys.clone();
    let st = &mut folder.embedded.store;
    if keys
        .iter()
        .filter_map(|k| st.get(k))
        .all(|p| p.faces.is_empty())
    {
        anyhow::bail!("{}: no face found in any photo", args.dir.display());
    }
    let mut people_params = PeopleParams::new(args.grouping.method.name(), params);
    people_params.recluster = args.recluster;
    let update = update_people(
        folder.database.as_mut(),
        folder.embedded.collection,
        st,
        &people_params,
    )?;
    let names: std::collections::HashMap<i64, Option<String>> = folder
        .database
        .people(folder.embedded.collection)?
        .into_iter()
        .map(|p| (p.id, p.name))
        .collect();
    // The gallery shows this folder's faces, grouped by their kept person.
    let mut dense: std::collections::HashMap<i64, u32> = Default::default();
    let mut faces: Vec<GalleryFace> = Vec::new();
    for k in &keys {
        let Some(photo) = st.get(k) else { continue };
        for (i, f) in photo.faces.iter().enumerate() {
            let cluster = match f.person {
                Some(p) => {
                    let next = dense.len() as u32;
                    *dense.entry(p).or_insert(next)
                }
                None => siamese::eval::clustering::NOISE,
            };
            faces.push(GalleryFace {
                photo: PathBuf::from(&photo.path),
                face: i,
                bbox: f.bbox,
                landmarks: f.landmarks.clone(),
                cluster,
                person: f
                    .person
                    .map(|p| (p, names.get(&p).cloned().unwrap_or_default())),
            });
        }
    }
    let method = people_params.method;
    let title = format!("Faces of {}", args.dir.display());
    let out = write_gallery(&args.out, &faces, &title)?;
    let report = &folder.embedded.report;
    if args.json {
        let json = serde_json::json!({
            "method": method, "people": out.people, "ungrouped_faces": out.ungrouped,
            "faces": faces.len(), "photos": keys.len(),
            "clusters_csv": out.csv, "index_html": out.html, "montages": out.montages,
            "database": folder.locator.redacted(), "collection": folder.embedded.collection,
            "people_update": update,
            "embedded_photos": report.embedded_photos,
            "reused_photos": report.reused_photos, "embedded_faces": report.embedded_faces,
            "skipped": report.skipped.iter().map(|(_, m)| m).collect::<Vec<_>>(),
        });
        println!("{json}");
    } else {
        let how = if update.clustered {
            format!(
                "clustered every face ({})",
                serde_json::to_string(&method)?.trim_matches('"')
            )
        } else {
            format!(
                "{} new faces joined known people, {} new people",
                update.joined_existing, update.new_people
            )
        };
        println!(
            "{} people (groups of 2+ faces), {} ungrouped faces, {} faces in {} photos; {how}",
            out.people,
            out.ungrouped,
            faces.len(),
            keys.len(),
        );
        println!(
            "wrote {}, {} and {} montages; people kept in {}",
            out.csv.display(),
            out.html.display(),
            out.montages.len(),
            folder.locator
        );
    }
    Ok(())
}

pub(super) fn run_eval_cluster(args: EvalClusterArgs) -> anyhow::Result<()> {
    let options = args.pipeline.lfw_options();
    let params = args.grouping.params(&options)?;
    let pipeline = args.pipeline.load(options)?;
    std::fs::metadata(&args.lfw).map_err(|e| siamese::Error::io(&args.lfw, e))?;
    let store = match args.store.clone() {
        Some(s) => s,
        None => siamese::store::legacy::default_database_in(&siamese::faces::lfw::lfw_cache_dir())?,
    };
    let r = evaluate_lfw_clustering(
        &args.lfw,
        args.min_images,
        args.grouping.method.name(),
        &params,
        &pipeline,
        &store,
        !args.json,
    )?;
    if args.json {
        println!("{}", serde_json::to_string(&r)?);
        return Ok(());
    }
    println!(
        "LFW people with >= {} photos: {} people, {} photos, {} faces ({} with no detected face)",
        r.min_images, r.people, r.photos, r.faces, r.detection_failures
    );
    println!(
        "{}: {} clusters found vs {} true ({} noise); pairwise precision {:.4} recall {:.4} F1 {:.4}; NMI {:.4}, AMI {:.4}",
        r.method.name(),
        r.clusters_found,
        r.clusters_true,
        r.noise,
        r.pairwise_precision,
        r.pairwise_recall,
        r.pairwise_f1,
        r.nmi,
        r.ami
    );
    print_speed(&r.timings, r.embedded_photos, r.reused_photos);
    Ok(())
}
