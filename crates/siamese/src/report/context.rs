//! What every stage of the demo sees: its size ([`DemoSize`] → [`DemoPlan`], how many images,
//! epochs, margins, pairs each stage uses), the stages themselves ([`Stage`]: ids and titles, in
//! order) and the [`DemoContext`] (output folders, plan, seed, progress, LFW).

use std::path::PathBuf;

use crate::train::TrainConfig;
use crate::{Error, Result};

/// How much work the demo does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DemoSize {
    /// The real thing (~30–40 minutes on 2 cores with `--lfw`).
    Full,
    /// Every stage, shortened (under 10 minutes on 2 cores).
    Quick,
    /// Seconds-scale stages for tests of the report itself; numbers are not meaningful.
    Tiny,
}

/// Sizes of every stage.
#[derive(Debug, Clone, PartialEq)]
pub struct DemoPlan {
    /// Suffix of work folders (`-quick`), so runs of different sizes do not replace each other.
    pub suffix: &'static str,
    pub mnist_limit: Option<usize>,
    pub mnist_epochs: usize,
    /// Unknown images in the open-set evaluation.
    pub max_unknown: usize,
    pub sweep_margins: Vec<f64>,
    pub sweep_limit: usize,
    pub sweep_epochs: usize,
    pub sweep_unknown: usize,
    /// LFW verification: pairs of each kind per fold (`None`: all 300).
    pub lfw_pairs_per_fold: Option<usize>,
    pub lfw_cluster_min_images: usize,
    pub lfw_cluster_people: usize,
    pub lfw_cluster_max_photos: usize,
    pub triplets_train: usize,
    pub triplets_test: usize,
    /// Without LFW: MNIST digits per class written for the triplet task.
    pub triplet_digits_per_class: usize,
    pub head_epochs: usize,
    /// Points in t-SNE plots of digit embeddings.
    pub plot_points: usize,
    /// Epochs of the Omniglot one-shot run (the README's recipe: 40).
    pub oneshot_epochs: usize,
}

impl DemoPlan {
    pub fn for_size(size: DemoSize) -> Self {
        match size {
            DemoSize::Full => DemoPlan {
                suffix: "",
                mnist_limit: None,
                mnist_epochs: TrainConfig::default().epochs,
                max_unknown: 10_000,
                sweep_margins: (0..10).map(|i| f64::from(i) / 10.0).collect(),
                sweep_limit: 10_000,
                sweep_epochs: 2,
                sweep_unknown: 2_000,
                lfw_pairs_per_fold: None,
                lfw_cluster_min_images: 10,
                lfw_cluster_people: 1_000,
                lfw_cluster_max_photos: 1_000,
                triplets_train: 10_000,
                triplets_test: 2_000,
                triplet_digits_per_class: 100,
                head_epochs: 40,
                plot_points: 3_000,
                oneshot_epochs: 40,
            },
            DemoSize::Quick => DemoPlan {
                suffix: "-quick",
                // With the fast kernels this plan took about 4 minutes on 2 idle cores.
                mnist_limit: Some(30_000),
                mnist_epochs: 3,
                max_unknown: 3_000,
                sweep_margins: vec![0.0, 0.2, 0.5],
                sweep_limit: 6_000,
                sweep_epochs: 2,
                sweep_unknown: 1_000,
                lfw_pairs_per_fold: Some(20),
                lfw_cluster_min_images: 20,
                lfw_cluster_people: 15,
                lfw_cluster_max_photos: 20,
                triplets_train: 1_000,
                triplets_test: 300,
                triplet_digits_per_class: 20,
                head_epochs: 30,
                plot_points: 1_500,
                oneshot_epochs: 10,
            },
            DemoSize::Tiny => DemoPlan {
                suffix: "-tiny",
                mnist_limit: Some(1_500),
                mnist_epochs: 1,
                max_unknown: 300,
                sweep_margins: vec![0.1, 0.4],
                sweep_limit: 1_000,
                sweep_epochs: 1,
                sweep_unknown: 200,
                lfw_pairs_per_fold: Some(3),
                lfw_cluster_min_images: 10,
                lfw_cluster_people: 4,
                lfw_cluster_max_photos: 6,
                triplets_train: 150,
                triplets_test: 60,
                triplet_digits_per_class: 8,
                head_epochs: 5,
                plot_points: 300,
                oneshot_epochs: 1,
            },
        }
    }
}

/// The demo's stages, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Fetch,
    TrainMnist,
    Evaluate,
    Openset,
    Sweep,
    Faces,
    Triplets,
    Oneshot,
}

impl Stage {
    /// Every stage, in order.
    pub const ALL: [Stage; 8] = [
        Stage::Fetch,
        Stage::TrainMnist,
        Stage::Evaluate,
        Stage::Openset,
        Stage::Sweep,
        Stage::Faces,
        Stage::Triplets,
        Stage::Oneshot,
    ];

    /// The id used by `--stages` and in `report.json`.
    pub fn id(self) -> &'static str {
        match self {
            Stage::Fetch => "fetch",
            Stage::TrainMnist => "train-mnist",
            Stage::Evaluate => "evaluate",
            Stage::Openset => "openset",
            Stage::Sweep => "sweep",
            Stage::Faces => "faces",
            Stage::Triplets => "triplets",
            Stage::Oneshot => "oneshot",
        }
    }

    /// The heading in the report.
    pub fn title(self) -> &'static str {
        match self {
            Stage::Fetch => "Fetch assets",
            Stage::TrainMnist => "Train the embedding CNN on MNIST",
            Stage::Evaluate => "Evaluate: retrieval and clustering",
            Stage::Openset => "Open-set recognition: digits vs letters",
            Stage::Sweep => "Margin sweep",
            Stage::Faces => "Faces: detect, align, embed, verify, cluster, search",
            Stage::Triplets => "Triplet files on a frozen MobileNetV2",
            Stage::Oneshot => "Omniglot: 20-way one-shot learning of unseen characters",
        }
    }

    /// The stage with this id.
    pub fn parse(id: &str) -> Result<Stage> {
        Stage::ALL
            .into_iter()
            .find(|s| s.id() == id)
            .ok_or_else(|| {
                let known: Vec<&str> = Stage::ALL.iter().map(|s| s.id()).collect();
                Error::config(
                    "stages",
                    format!("unknown stage `{id}` (known: {})", known.join(", ")),
                )
            })
    }
}

/// What every stage sees.
pub struct DemoContext {
    pub out: PathBuf,
    pub report_dir: PathBuf,
    pub plan: DemoPlan,
    pub seed: u64,
    pub progress: bool,
    pub lfw: Option<PathBuf>,
    /// The Omniglot folder (or one of its zips) for the one-shot stage and the open-set
    /// stage's alphabets.
    pub omniglot: Option<PathBuf>,
}

impl DemoContext {
    /// A work folder inside the output folder.
    pub fn work_dir(&self, name: &str) -> PathBuf {
        self.out.join(name)
    }
}
