//! Faces: the ResNet against an independent numpy reference, landmarks and chips against dlib's
//! own C++ output, verification of known LFW pairs, the embedding store, clustering, search and
//! bad input. Needs `siamese fetch face-models` and `../shared/data/lfw`.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use serde_json::Value;
use sha2::{Digest, Sha256};
use siamese::assets::face_models;
use siamese::faces::align::{aligned_chip, chip_placement, CHIP_PADDING};
use siamese::faces::landmarks::{DlibRect, GreyImage, ShapePredictor};
use siamese::faces::lfw;
use siamese::faces::pipeline::euclidean;
use siamese::model::face_resnet::FaceResNet;

fn shared_lfw() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/data/lfw"
    ))
}

fn fixture(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/faces")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// The LFW images folder (unpacked into the cache on first use).
fn lfw_images() -> PathBuf {
    lfw::unpack(&shared_lfw().join("lfw-deepfunneled.tar"))
        .expect("LFW tarball in ../shared/data/lfw")
}

fn models() -> face_models::FaceModelPaths {
    face_models::locate().expect("face models in the cache: run `siamese fetch face-models` first")
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

#[test]
fn resnet_matches_numpy_reference() {
    let reference = fixture("resnet_reference.json");
    let net = FaceResNet::load(&models().recognition, &Device::default()).unwrap();
    let images = lfw_images();
    let crop: Vec<u32> = reference["crop"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect();
    let mut chips = Vec::new();
    for item in reference["images"].as_array().unwrap() {
        let img = image::open(images.join(item["path"].as_str().unwrap()))
            .unwrap()
            .to_rgb8();
        let chip = image::imageops::crop_imm(&img, crop[0], crop[1], crop[2], crop[3]).to_image();
        // The reference ran on these exact pixels (JPEG decoders differ by a few levels).
        let sha: String = Sha256::digest(chip.as_raw())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            sha,
            item["crop_sha256"].as_str().unwrap(),
            "decoded input differs from the reference's"
        );
        chips.extend_from_slice(chip.as_raw());
    }
    // One batch of 4: batching must not change the numbers.
    let got = net.embed_rgb_chips(&chips, 4).unwrap();
    let mut embeddings = Vec::new();
    for (i, item) in reference["images"].as_array().unwrap().iter().enumerate() {
        let want = floats(&item["embedding"]);
        let row = &got[i * 128..(i + 1) * 128];
        let max_diff = row
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(
            max_diff < 1e-3,
            "image {i}: max |diff| {max_diff} vs the numpy reference"
        );
        embeddings.push(row.to_vec());
    }
    let distances = reference["distances"].as_array().unwrap();
    for i in 0..4 {
        for j in 0..4 {
            let want = distances[i][j].as_f64().unwrap() as f32;
            let d = euclidean(&embeddings[i], &embeddings[j]);
            assert!((d - want).abs() < 1e-3, "distance {i}-{j}: {d} vs {want}");
        }
    }
}

#[test]
fn landmarks_and_chips_match_dlib() {
    let reference = fixture("dlib_reference.json");
    let sp = ShapePredictor::load(&models().landmarks).unwrap();
    assert_eq!(sp.num_parts(), 5);
    let net = FaceResNet::load(&models().recognition, &Device::default()).unwrap();
    let images = lfw_images();
    let (mut worst, mut total, mut count) = (0f32, 0f32, 0usize);
    for item in reference["images"].as_array().unwrap() {
        let path = images.join(item["path"].as_str().unwrap());
        let img = image::open(&path).unwrap().to_rgb8();
        let b: Vec<f32> = floats(&item["box"]);
        let rect = DlibRect {
            left: b[0],
            top: b[1],
            right: b[2],
            bottom: b[3],
        };
        let points = sp.predict(&GreyImage::from_rgb(&img), &rect);
        let want: Vec<Vec<f32>> = item["landmarks"]
            .as_array()
            .unwrap()
            .iter()
            .map(floats)
            .collect();
        for (p, w) in points.iter().zip(&want) {
            // dlib rounds its landmarks to whole pixels; ours are not rounded.
            let err = ((p[0] - w[0]).powi(2) + (p[1] - w[1]).powi(2)).sqrt();
            worst = worst.max(err);
            total += err;
            count += 1;
            // Rounding alone is up to 0.71 px; JPEG decoders differ by a few grey levels.
            assert!(
                err <= 1.0,
                "{}: landmark {p:?} vs dlib {w:?}",
                path.display()
            );
        }
        // Chip from dlib's rounded landmarks → embedding close to dlib's own descriptor.
        let five: [[f32; 2]; 5] = std::array::from_fn(|k| [want[k][0], want[k][1]]);
        let placement = chip_placement(&five, 150, CHIP_PADDING);
        assert!(placement.step > 0.5 && placement.step < 2.0);
        let chip = aligned_chip(&img, &five);
        let ours = net.embed_rgb_chips(chip.as_raw(), 1).unwrap();
        let d = euclidean(&ours, &floats(&item["descriptor"]));
        eprintln!("{}: chip embedding {d:.4} from dlib's", path.display());
        assert!(
            d < 0.02,
            "{}: embedding {d} away from dlib's descriptor",
            path.display()
        );
    }
    let mean = total / count as f32;
    eprintln!("landmarks vs dlib: mean {mean:.3} px, worst {worst:.3} px");
    assert!(mean < 0.6, "mean landmark error {mean} px");
}
