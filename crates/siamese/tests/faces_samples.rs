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

#[path = "common/face_reference.rs"]
mod face_reference;

fn models() -> face_models::FaceModelPaths {
    face_models::locate().expect("face models in the cache: run `siamese fetch face-models` first")
}

fn sample_photo(name: &str) -> PathBuf {
    let photos = siamese::assets::face_samples::fetch_sample_photos()
        .unwrap_or_else(|e| panic!("{e} (the sample photos are fetched with npm)"));
    photos.into_iter().find(|p| p.ends_with(name)).unwrap()
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
    face_reference::assert_matches_reference(&got, &reference);
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

/// A JPEG with an EXIF APP1 segment (orientation `orientation`) inserted after its SOI marker.
fn with_exif_orientation(jpeg: &[u8], orientation: u16) -> Vec<u8> {
    let mut tiff = b"MM\0\x2a\0\0\0\x08".to_vec(); // big-endian TIFF, first IFD at 8
    tiff.extend_from_slice(&1u16.to_be_bytes()); // one entry
    tiff.extend_from_slice(&0x0112u16.to_be_bytes()); // Orientation
    tiff.extend_from_slice(&3u16.to_be_bytes()); // SHORT
    tiff.extend_from_slice(&1u32.to_be_bytes()); // one value
    tiff.extend_from_slice(&orientation.to_be_bytes());
    tiff.extend_from_slice(&[0, 0]); // value padding
    tiff.extend_from_slice(&0u32.to_be_bytes()); // no next IFD
    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend_from_slice(&tiff);
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&((app1.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(&app1);
    out.extend_from_slice(&jpeg[2..]);
    out
}

/// A phone photo stored sideways with EXIF orientation 6 ("turn 90° clockwise to view") and the
/// same photo as WebP are read upright: the same faces are found, each matching the JPEG's.
#[test]
fn exif_rotated_and_webp_photos_are_found_and_matched() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline =
        FacePipeline::load(&models(), PipelineOptions::default(), &Device::default()).unwrap();
    let original = sample_photo("sample3.jpg");
    let upright = image::open(&original).unwrap();
    let reference = pipeline.process_image(&upright.to_rgb8()).unwrap();
    assert_eq!(reference.len(), 3);

    // Stored as the sensor saw it: the upright picture turned 90° anticlockwise.
    let mut sideways = Vec::new();
    upright
        .rotate270()
        .write_to(
            &mut std::io::Cursor::new(&mut sideways),
            image::ImageFormat::Jpeg,
        )
        .unwrap();
    let phone = dir.path().join("phone.jpg");
    std::fs::write(&phone, with_exif_orientation(&sideways, 6)).unwrap();
    let webp = dir.path().join("photo.webp");
    upright.save(&webp).unwrap();

    for path in [&phone, &webp] {
        let img = siamese::faces::load::load_rgb(path).unwrap();
        assert_eq!(
            (img.width(), img.height()),
            (upright.width(), upright.height()),
            "{}",
            path.display()
        );
        let faces = pipeline.process_image(&img).unwrap();
        assert_eq!(faces.len(), reference.len(), "{}", path.display());
        for f in &faces {
            let nearest = reference
                .iter()
                .map(|r| euclidean(&f.embedding, &r.embedding))
                .fold(f32::INFINITY, f32::min);
            // Re-encoding (JPEG quality) moves a face a little; another person is ≥ 0.5 away.
            assert!(nearest < 0.3, "{}: nearest {nearest}", path.display());
        }
    }
}

/// A corrupted weights file of the right size: the cache check names it as corrupt, and a network
/// loaded from it anyway refuses to hand on non-finite embeddings (no "distance NaN").
#[test]
fn corrupt_weights_are_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let good = models();
    for f in [
        "face_recognition_model.weights",
        "shape_predictor_5_face_landmarks.dat",
        "seeta_fd_frontal_v1.0.bin",
    ] {
        std::fs::copy(good.recognition.with_file_name(f), dir.path().join(f)).unwrap();
    }
    let weights = dir.path().join("face_recognition_model.weights");
    let mut bytes = std::fs::read(&weights).unwrap();
    // Finite but huge values in the first convolution: the activations overflow to inf / NaN.
    for v in bytes[..4 * 64].chunks_exact_mut(4) {
        v.copy_from_slice(&3.0e38f32.to_le_bytes());
    }
    std::fs::write(&weights, &bytes).unwrap();
    let err = face_models::locate_in(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("face_recognition_model.weights")
            && err.contains("corrupt")
            && err.contains("siamese fetch face-models")
            && err.lines().count() == 1,
        "{err}"
    );
    let net = FaceResNet::load(&weights, &Device::default()).unwrap();
    let chip = sample_chips().remove(0);
    let err = net
        .embed_rgb_chips(chip.as_raw(), 1)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("face_recognition_model.weights") && err.contains("not finite"),
        "{err}"
    );
}

/// Garbage detector models of the right size (random bytes; the real file with its middle
/// scrambled) are one-line errors naming the file, never a panic of the third-party parser.
#[test]
fn garbage_detector_models_are_errors_not_panics() {
    use siamese::faces::detect::{DetectorOptions, FaceDetector};
    let dir = tempfile::tempdir().unwrap();
    let real = std::fs::read(models().detector).unwrap();
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut random = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 24) as u8
    };
    let noise: Vec<u8> = (0..real.len()).map(|_| random()).collect();
    let mut scrambled = real.clone();
    let mid = real.len() / 2;
    for b in &mut scrambled[mid - 4096..mid + 4096] {
        *b = random();
    }
    let mut head_only = real.clone();
    for b in &mut head_only[64..] {
        *b = 0xFF;
    }
    for (name, bytes) in [
        ("noise.bin", noise),
        ("scrambled.bin", scrambled),
        ("head.bin", head_only),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        match FaceDetector::load(&path, DetectorOptions::default()) {
            Err(e) => {
                let msg = e.to_string();
                assert!(
                    msg.contains(name) && msg.lines().count() == 1,
                    "{name}: {msg}"
                );
            }
            // A scrambled stretch can happen to parse; then it must still detect without a panic.
            Ok(d) => {
                let img = image::open(sample_photo("sample2.jpg")).unwrap().to_luma8();
                let grey = siamese::faces::landmarks::GreyImage {
                    width: img.width() as usize,
                    height: img.height() as usize,
                    pixels: img.into_raw(),
                };
                let _ = d.detect(&grey);
            }
        }
    }
}
