//! Grouping faces by person: choosing a clustering method's parameters from the same-person
//! threshold calibrated on LFW, grouping the faces of stored photos ([`group_faces`]), and the
//! clustering evaluation on LFW people with at least N photos ([`cluster_people`]: pairwise
//! precision/recall/F1, NMI, AMI, clusters found vs true).
//!
//! Defaults, with `T` the LFW threshold (`verify::LFW_THRESHOLD`, the pairwise same/different
//! cut): every method that chains faces into groups needs a tighter cut than `T`, because in a
//! large collection one pair just under `T` joins two whole groups. The factors below were
//! chosen on LFW people with 2–4 photos (2,817 faces, disjoint from the ≥ 5 evaluation set) as
//! the cut with the best pairwise F1 on a 0.05 grid (0.40 DBSCAN, 0.45 chinese whispers, 0.50
//! agglomerative) divided by `T` = 0.612:
//! - agglomerative (average linkage) joins groups closer than `AGGLOMERATIVE_CUT_FACTOR · T`;
//! - chinese whispers links faces closer than `CHINESE_WHISPERS_CUT_FACTOR · T`;
//! - DBSCAN uses `eps = DBSCAN_EPS_FACTOR · T` with `min_points = 2`;
//! - k-means, which needs a count, uses the number of groups agglomerative finds.

use std::path::{Path, PathBuf};
use std::time::Instant;

use super::lfw::{people, resolve_images};
use super::pipeline::{FacePipeline, Timings};
use super::store;
use crate::cluster::{self, Linkage, Method};
use crate::eval::clustering::{ami, nmi, noise_as_singletons, pairwise_scores, NOISE};
use crate::{Error, Result};

/// DBSCAN's radius as a fraction of the same-person threshold.
pub const DBSCAN_EPS_FACTOR: f32 = 0.65;
/// Chinese whispers' edge cut as a fraction of the same-person threshold.
pub const CHINESE_WHISPERS_CUT_FACTOR: f32 = 0.74;
/// Agglomerative clustering's cut as a fraction of the same-person threshold.
pub const AGGLOMERATIVE_CUT_FACTOR: f32 = 0.82;

/// Method names as on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MethodName {
    Dbscan,
    Kmeans,
    Agglomerative,
    ChineseWhispers,
}

impl std::str::FromStr for MethodName {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "dbscan" => Ok(MethodName::Dbscan),
            "kmeans" => Ok(MethodName::Kmeans),
            "agglomerative" => Ok(MethodName::Agglomerative),
            "chinese-whispers" => Ok(MethodName::ChineseWhispers),
            _ => Err(Error::config(
                "method",
                format!("{s:?} is not dbscan, kmeans, agglomerative or chinese-whispers"),
            )),
        }
    }
}

/// User overrides; `None` takes the default derived from the threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupingParams {
    /// The same-person threshold the defaults derive from.
    pub threshold: f32,
    pub eps: Option<f32>,
    pub min_points: usize,
    pub linkage: Linkage,
    /// Distance cut for agglomerative and chinese whispers (default: the method's factor times
    /// `threshold`).
    pub cut: Option<f32>,
    pub k: Option<usize>,
    pub seed: u64,
}

impl GroupingParams {
    /// Defaults from `threshold`.
    pub fn from_threshold(threshold: f32) -> Self {
        GroupingParams {
            threshold,
            eps: None,
            min_points: 2,
            linkage: Linkage::Average,
            cut: None,
            k: None,
            seed: 1,
        }
    }
}

/// The method with every parameter filled in (k-means' default count needs the data).
pub fn resolve_method(
    name: MethodName,
    p: &GroupingParams,
    data: &[f32],
    dim: usize,
) -> Result<Method> {
    let agglomerative_cut = p.cut.unwrap_or(AGGLOMERATIVE_CUT_FACTOR * p.threshold);
    Ok(match name {
        MethodName::Dbscan => Method::Dbscan {
            eps: p.eps.unwrap_or(DBSCAN_EPS_FACTOR * p.threshold),
            min_points: p.min_points,
        },
        MethodName::Agglomerative => Method::Agglomerative {
            linkage: p.linkage,
            threshold: agglomerative_cut,
        },
        MethodName::ChineseWhispers => Method::ChineseWhispers {
            threshold: p.cut.unwrap_or(CHINESE_WHISPERS_CUT_FACTOR * p.threshold),
            max_rounds: 100,
        },
        MethodName::Kmeans => {
            let k = match p.k {
                Some(k) => k,
                None => {
                    let agg = Method::Agglomerative {
                        linkage: Linkage::Average,
                        threshold: AGGLOMERATIVE_CUT_FACTOR * p.threshold,
                    };
                    let labels = cluster::cluster(data, dim, &agg, p.seed)?;
                    count_clusters(&labels).0.max(1)
                }
            };
            Method::Kmeans { k }
        }
    })
}

/// `(clusters, noise points)`: distinct non-noise labels and points labelled noise.
pub fn count_clusters(labels: &[u32]) -> (usize, usize) {
    let mut ids: Vec<u32> = labels.iter().copied().filter(|&l| l != NOISE).collect();
    ids.sort_unstable();
    ids.dedup();
    (ids.len(), labels.iter().filter(|&&l| l == NOISE).count())
}

/// Every face of some stored photos, grouped into people by [`group_faces`].
#[derive(Debug, Clone)]
pub struct FaceGroups {
    /// Each face: (its photo, an index into the keys given; its index in the photo).
    pub faces: Vec<(usize, usize)>,
    /// Their embeddings, rows of [`store::DIM`].
    pub data: Vec<f32>,
    pub method: Method,
    /// One cluster label per face.
    pub labels: Vec<u32>,
}

/// Groups every face of the photos stored under `keys` with the method `name` (parameters from
/// `params`); an error when there is no face.
pub fn group_faces(
    st: &store::EmbeddingStore,
    keys: &[String],
    name: MethodName,
    params: &GroupingParams,
) -> Result<FaceGroups> {
    let mut faces = Vec::new();
    let mut data = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        for (f, face) in st.get(k).iter().flat_map(|p| p.faces.iter().enumerate()) {
            faces.push((i, f));
            data.extend_from_slice(&face.embedding);
        }
    }
    if faces.is_empty() {
        return Err(Error::config("faces", "no face found in any photo"));
    }
    let method = resolve_method(name, params, &data, store::DIM)?;
    let labels = cluster::cluster(&data, store::DIM, &method, params.seed)?;
    Ok(FaceGroups {
        faces,
        data,
        method,
        labels,
    })
}

/// What `siamese faces eval-cluster` reports.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ClusterEvalReport {
    pub min_images: usize,
    pub method: Method,
    /// People (true identities) with at least `min_images` photos.
    pub people: usize,
    pub photos: usize,
    /// Faces clustered (one per readable photo).
    pub faces: usize,
    /// Groups found (noise excluded) vs the true number of people.
    pub clusters_found: usize,
    pub clusters_true: usize,
    /// Faces DBSCAN left as noise (counted as singletons in the scores).
    pub noise: usize,
    pub pairwise_precision: f64,
    pub pairwise_recall: f64,
    pub pairwise_f1: f64,
    pub nmi: f64,
    pub ami: f64,
    /// Photos where no face was detected (a centred face was assumed).
    pub detection_failures: usize,
    pub embedded_photos: usize,
    pub reused_photos: usize,
    pub timings: Timings,
    pub cluster_seconds: f64,
}

/// LFW people clustered by [`cluster_people`]: the report and what the figures need.
#[derive(Debug, Clone)]
pub struct PeopleClustering {
    pub report: ClusterEvalReport,
    /// Every photo, person after person.
    pub files: Vec<PathBuf>,
    /// For each clustered face: its photo (an index into `files`), its person (an index into
    /// the people given) and its cluster label.
    pub photo: Vec<usize>,
    pub truth: Vec<u32>,
    pub labels: Vec<u32>,
    /// The faces' embeddings, rows of [`store::DIM`].
    pub data: Vec<f32>,
    /// The store's key of each photo in `files`, and the store.
    pub keys: Vec<String>,
    pub store: store::EmbeddingStore,
}

/// Embeds the photos of `people` (name, photos; through the store at `store_path`), clusters
/// their first face each and scores the result against the true identities. `min_images` is
/// only reported.
pub fn cluster_people(
    people: &[(String, Vec<PathBuf>)],
    min_images: usize,
    name: MethodName,
    params: &GroupingParams,
    pipeline: &FacePipeline,
    store_path: &Path,
    progress: bool,
) -> Result<PeopleClustering> {
    let mut files: Vec<PathBuf> = Vec::new();
    let mut truth_of_file: Vec<u32> = Vec::new();
    for (id, (_, photos)) in people.iter().enumerate() {
        files.extend(photos.iter().cloned());
        truth_of_file.extend(std::iter::repeat_n(id as u32, photos.len()));
    }
    let store::EmbeddedFiles {
        store: st,
        keys,
        report: update,
        ..
    } = store::embed_files(store_path, &files, pipeline, progress)?;
    let mut data = Vec::new();
    let mut truth = Vec::new();
    let mut photo = Vec::new();
    let mut detection_failures = 0;
    for (i, (k, &t)) in keys.iter().zip(&truth_of_file).enumerate() {
        if let Some(face) = st.get(k).and_then(|p| p.faces.first()) {
            data.extend_from_slice(&face.embedding);
            truth.push(t);
            photo.push(i);
            detection_failures += usize::from(face.assumed);
        }
    }
    let start = Instant::now();
    let method = resolve_method(name, params, &data, store::DIM)?;
    let labels = cluster::cluster(&data, store::DIM, &method, params.seed)?;
    let cluster_seconds = start.elapsed().as_secs_f64();
    let scores = pairwise_scores(&truth, &labels);
    let (clusters_found, noise) = count_clusters(&labels);
    let singletons = noise_as_singletons(&labels);
    let report = ClusterEvalReport {
        min_images,
        method,
        people: people.len(),
        photos: files.len(),
        faces: truth.len(),
        clusters_found,
        clusters_true: people.len(),
        noise,
        pairwise_precision: scores.precision,
        pairwise_recall: scores.recall,
        pairwise_f1: scores.f1,
        nmi: nmi(&truth, &singletons),
        ami: ami(&truth, &singletons),
        detection_failures,
        embedded_photos: update.embedded_photos,
        reused_photos: update.reused_photos,
        timings: update.timings,
        cluster_seconds,
    };
    Ok(PeopleClustering {
        report,
        files,
        photo,
        truth,
        labels,
        data,
        keys,
        store: st,
    })
}

/// Embeds the photos of LFW people with ≥ `min_images` photos (through the store at
/// `store_path`), clusters them and scores the result against the true identities.
pub fn evaluate_lfw_clustering(
    lfw: &Path,
    min_images: usize,
    name: MethodName,
    params: &GroupingParams,
    pipeline: &FacePipeline,
    store_path: &Path,
    progress: bool,
) -> Result<ClusterEvalReport> {
    let images = resolve_images(lfw)?;
    let selected = people(&images, min_images)?;
    if selected.len() < 2 {
        return Err(Error::config(
            "min_images",
            format!(
                "only {} LFW people have {min_images} photos",
                selected.len()
            ),
        ));
    }
    let clustered = cluster_people(
        &selected, min_images, name, params, pipeline, store_path, progress,
    )?;
    Ok(clustered.report)
}
