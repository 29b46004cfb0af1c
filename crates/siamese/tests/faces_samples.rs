//! Faces on data a registry ships (no evaluation data): the group photos of npm
//! `@vladmandic/face-api@1.7.15` (fetched with npm on first use) and their mirror images. dlib's
//! ResNet against the independent numpy reference on crops of those photos, and the whole
//! pipeline (detection, landmarks, alignment, embedding): every face matches its own mirror image
//! more closely than anybody else in its photo. Needs `siamese fetch face-models`.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use image::RgbImage;
use serde_json::Value;
use sha2::{Digest, Sha256};
use siamese::assets::face_models;
use siamese::distance::euclidean;
use siamese::faces::pipeline::{FacePipeline, PipelineOptions};
use siamese::model::face_resnet::FaceResNet;

fn models() -> face_models::FaceModelPaths {
    face_models::locate().expect("face models in the cache: run `siamese fetch face-models` first")
}

fn sample_photo(name: &str) -> PathBuf {
    let photos = siamese::assets::face_samples::fetch_sample_photos()
        .unwrap_or_else(|e| panic!("{e} (the sample photos are fetched with npm)"));
    photos.into_iter().find(|p| p.ends_with(name)).unwrap()
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

/// `(photo, left, top, side)`: the face boxes the pipeline's detector finds in sample2.jpg and
/// sample3.jpg (rounded), cropped and resized to the network's 150x150 input.
const CROPS: [(&str, u32, u32, u32); 5] = [
    ("sample2.jpg", 1432, 174, 216),
    ("sample2.jpg", 887, 264, 191),
    ("sample3.jpg", 568, 351, 242),
    ("sample3.jpg", 1065, 229, 264),
    ("sample3.jpg", 1487, 330, 216),
];

/// The crops of [`CROPS`], decoded by the `image` crate and resized with its triangle filter.
fn sample_chips() -> Vec<RgbImage> {
    CROPS
        .iter()
        .map(|&(photo, left, top, side)| {
            let img = image::open(sample_photo(photo)).unwrap().to_rgb8();
            let crop = image::imageops::crop_imm(&img, left, top, side, side).to_image();
            image::imageops::resize(&crop, 150, 150, image::imageops::FilterType::Triangle)
        })
        .collect()
}

/// The fixture was made from the chips this test writes to `$SIAMESE_WRITE_REFERENCE_CHIPS`
/// (PNG, so the numpy side reads the same pixels):
/// `python3 ../shared/tools/face_reference.py WEIGHTS chip_0.png … chip_4.png`.
#[test]
fn resnet_matches_numpy_reference_on_sample_photos() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/faces/resnet_reference_samples.json");
    let reference: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let chips = sample_chips();
    if let Some(dir) = std::env::var_os("SIAMESE_WRITE_REFERENCE_CHIPS") {
        std::fs::create_dir_all(&dir).unwrap();
        for (i, chip) in chips.iter().enumerate() {
            chip.save(Path::new(&dir).join(format!("chip_{i}.png")))
                .unwrap();
        }
    }
    let items = reference["images"].as_array().unwrap();
    assert_eq!(items.len(), chips.len());
    let mut pixels = Vec::new();
    for (chip, item) in chips.iter().zip(items) {
        let sha: String = Sha256::digest(chip.as_raw())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            sha,
            item["chip_sha256"].as_str().unwrap(),
            "decoded input differs from the reference's"
        );
        pixels.extend_from_slice(chip.as_raw());
    }
    let net = FaceResNet::load(&models().recognition, &Device::default()).unwrap();
    // One batch of 5 against single chips: batching must not change the numbers.
    let got = net.embed_rgb_chips(&pixels, 5).unwrap();
    let mut embeddings = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let want = floats(&item["embedding"]);
        let row = &got[i * 128..(i + 1) * 128];
        let max_diff = row
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(
            max_diff < 1e-3,
            "chip {i}: max |diff| {max_diff} vs the numpy reference"
        );
        embeddings.push(row.to_vec());
    }
    let distances = reference["distances"].as_array().unwrap();
    for i in 0..embeddings.len() {
        for j in 0..embeddings.len() {
            let want = distances[i][j].as_f64().unwrap() as f32;
            let d = euclidean(&embeddings[i], &embeddings[j]);
            assert!((d - want).abs() < 1e-3, "distance {i}-{j}: {d} vs {want}");
        }
    }
}

#[test]
fn sample_faces_match_their_mirror_images_before_anybody_else() {
    let pipeline =
        FacePipeline::load(&models(), PipelineOptions::default(), &Device::default()).unwrap();
    for name in ["sample2.jpg", "sample3.jpg"] {
        let img = image::open(sample_photo(name)).unwrap().to_rgb8();
        let faces = pipeline.process_image(&img).unwrap();
        let mirrored = pipeline
            .process_image(&image::imageops::flip_horizontal(&img))
            .unwrap();
        let want = CROPS.iter().filter(|c| c.0 == name).count();
        assert_eq!((faces.len(), mirrored.len()), (want, want), "{name}");
        let width = img.width() as f32;
        for (i, face) in faces.iter().enumerate() {
            // Its mirror image: the mirrored photo's face whose box is this box mirrored.
            let b = &face.bbox;
            let (j, m) = mirrored
                .iter()
                .enumerate()
                .min_by(|x, y| {
                    let off = |f: &siamese::faces::pipeline::Face| {
                        (width - f.bbox.left - f.bbox.width - b.left).abs()
                            + (f.bbox.top - b.top).abs()
                    };
                    off(x.1).total_cmp(&off(y.1))
                })
                .unwrap();
            let off = (width - m.bbox.left - m.bbox.width - b.left).abs();
            assert!(off < 0.1 * b.width, "{name} face {i}: no mirrored box");
            let same = euclidean(&face.embedding, &m.embedding);
            // Measured 0.18-0.33 for a mirror, 0.53-0.74 for another person.
            assert!(same < 0.4, "{name} face {i} vs its mirror: {same}");
            for (k, other) in mirrored.iter().enumerate().filter(|(k, _)| *k != j) {
                let d = euclidean(&face.embedding, &other.embedding);
                eprintln!("{name} face {i}: mirror {same:.3}, mirrored face {k} {d:.3}");
                assert!(
                    d > same + 0.2,
                    "{name} face {i} vs mirrored face {k} (another person): {d}, mirror {same}"
                );
            }
            for (k, other) in faces.iter().enumerate().filter(|(k, _)| *k != i) {
                let d = euclidean(&face.embedding, &other.embedding);
                assert!(
                    d > same + 0.2,
                    "{name} faces {i} and {k}: {d}, mirror {same}"
                );
            }
        }
    }
}
