//! Faces: the ResNet against an independent numpy reference, landmarks and chips against dlib's
//! own C++ output, verification of known LFW pairs, the embedding store, clustering, search and
//! bad input. Needs `siamese fetch face-models`; the LFW tests need the evaluation data
//! (`tests/common/test_data.rs`) and are skipped without it.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use serde_json::Value;
use sha2::{Digest, Sha256};
use siamese::assets::face_models;
use siamese::distance::euclidean;
use siamese::faces::align::{aligned_chip, chip_placement, CHIP_PADDING};
use siamese::faces::landmarks::{DlibRect, GreyImage, ShapePredictor};
use siamese::faces::lfw;
use siamese::model::face_resnet::FaceResNet;

#[path = "common/test_data.rs"]
mod test_data;
use test_data::{locate, TestData};

#[path = "common/face_reference.rs"]
mod face_reference;
use face_reference::floats;

fn fixture(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/faces")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// The LFW images folder (unpacked into the cache on first use), or `None` (the test is skipped)
/// without the evaluation data.
fn lfw_images() -> Option<PathBuf> {
    let lfw = locate(TestData::Lfw)?;
    Some(lfw::unpack(&lfw.join("lfw-deepfunneled.tar")).expect("LFW tarball unpacks"))
}

fn models() -> face_models::FaceModelPaths {
    face_models::locate().expect("face models in the cache: run `siamese fetch face-models` first")
}

#[test]
fn resnet_matches_numpy_reference() {
    let reference = fixture("resnet_reference.json");
    let net = FaceResNet::load(&models().recognition, &Device::default()).unwrap();
    let Some(images) = lfw_images() else {
        return;
    };
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
    face_reference::assert_matches_reference(&got, &reference);
}

#[test]
fn landmarks_and_chips_match_dlib() {
    let reference = fixture("dlib_reference.json");
    let sp = ShapePredictor::load(&models().landmarks).unwrap();
    assert_eq!(sp.num_parts(), 5);
    let net = FaceResNet::load(&models().recognition, &Device::default()).unwrap();
    let Some(images) = lfw_images() else {
        return;
    };
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

use siamese::cluster::{self, Linkage, Method};
use siamese::eval::clustering::{pairwise_scores, NOISE};
use siamese::faces::gallery::{write_gallery, GalleryFace};
use siamese::faces::pipeline::{FacePipeline, PipelineOptions};
use siamese::faces::search::StoreIndex;
use siamese::faces::store::{self, EmbeddingStore};
use siamese::faces::verify::{best_threshold, k_fold, LFW_THRESHOLD};
use std::sync::OnceLock;

/// One pipeline shared by the tests (photo collections: every face).
fn pipeline() -> &'static FacePipeline {
    static P: OnceLock<FacePipeline> = OnceLock::new();
    P.get_or_init(|| {
        FacePipeline::load(&models(), PipelineOptions::default(), &Device::default()).unwrap()
    })
}

/// `n` photos of each of `people`, copied into `dir/<person>/`; `None` without LFW.
fn copy_people(dir: &Path, people: &[&str], n: usize) -> Option<Vec<PathBuf>> {
    let images = lfw_images()?;
    let mut out = Vec::new();
    for person in people {
        std::fs::create_dir_all(dir.join(person)).unwrap();
        for i in 1..=n {
            let src = lfw::image_path(&images, person, i);
            let dst = dir.join(person).join(src.file_name().unwrap());
            std::fs::copy(&src, &dst).unwrap();
            out.push(dst);
        }
    }
    Some(out)
}

#[test]
fn known_lfw_pairs_verify() {
    let Some(images) = lfw_images() else {
        return;
    };
    let p = pipeline();
    let face = |name: &str, i: usize| p.embed_one(&lfw::image_path(&images, name, i)).unwrap();
    // The first matched and mismatched pairs of pairs.txt's first fold, and one more of each.
    let same = [
        ("Abel_Pacheco", 1, "Abel_Pacheco", 4),
        ("Akhmed_Zakayev", 1, "Akhmed_Zakayev", 3),
    ];
    let different = [
        ("Abdel_Madi_Shabneh", 1, "Dean_Barker", 1),
        ("Abdel_Madi_Shabneh", 1, "Giancarlo_Fisichella", 1),
    ];
    for (a, i, b, j) in same {
        let d = euclidean(&face(a, i).embedding, &face(b, j).embedding);
        assert!(
            d < LFW_THRESHOLD,
            "{a} {i} vs {b} {j}: distance {d} should verify"
        );
    }
    for (a, i, b, j) in different {
        let d = euclidean(&face(a, i).embedding, &face(b, j).embedding);
        assert!(
            d > LFW_THRESHOLD,
            "{a} {i} vs {b} {j}: distance {d} should not verify"
        );
    }
}

#[test]
fn store_second_run_embeds_nothing_and_bad_files_are_listed() {
    let dir = tempfile::tempdir().unwrap();
    let Some(photos) = copy_people(dir.path(), &["Colin_Powell", "Tony_Blair"], 3) else {
        return;
    };
    // Bad input beside the good photos: not an image, a truncated JPEG, a 1x1 PNG, a header that
    // claims 20000x20000, and a photo without a face.
    std::fs::write(dir.path().join("notes.txt"), b"not an image").unwrap();
    let jpeg = std::fs::read(&photos[0]).unwrap();
    std::fs::write(dir.path().join("truncated.jpg"), &jpeg[..jpeg.len() / 3]).unwrap();
    image::RgbImage::new(1, 1)
        .save(dir.path().join("tiny.png"))
        .unwrap();
    std::fs::write(dir.path().join("huge.png"), png_header(20_000, 20_000)).unwrap();
    image::RgbImage::from_fn(200, 200, |x, y| {
        image::Rgb([(x * 7 % 256) as u8, (y * 3 % 256) as u8, 90])
    })
    .save(dir.path().join("pattern.png"))
    .unwrap();
    let files = siamese::faces::load::list_files(dir.path()).unwrap();
    assert_eq!(files.len(), 11);

    let store_path = dir.path().join("out/faces.db");
    let store::EmbeddedFiles {
        store: st,
        keys,
        report: first,
        collection,
    } = store::embed_files(&store_path, &files, pipeline(), false).unwrap();
    assert_eq!(first.embedded_photos, 11);
    assert_eq!(first.reused_photos, 0);
    assert!(
        first.embedded_faces >= 6,
        "{} faces in 6 portraits",
        first.embedded_faces
    );
    let skipped: Vec<String> = first.skipped.iter().map(|(_, m)| m.clone()).collect();
    let reason = |file: &str| {
        skipped
            .iter()
            .find(|m| m.contains(file))
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(skipped.len(), 5, "{skipped:?}");
    assert!(reason("notes.txt").contains("not an image"), "{skipped:?}");
    assert!(
        reason("truncated.jpg").contains("cannot decode"),
        "{skipped:?}"
    );
    assert!(reason("tiny.png").contains("too small"), "{skipped:?}");
    assert!(reason("huge.png").contains("20000x20000"), "{skipped:?}");
    assert!(reason("pattern.png").contains("no face"), "{skipped:?}");
    for k in keys
        .iter()
        .filter(|k| k.contains("Colin") || k.contains("Tony"))
    {
        let photo = st.get(k).unwrap();
        assert!(
            !photo.faces.is_empty() && photo.faces[0].embedding.len() == 128,
            "{k}"
        );
        assert!(photo.faces[0]
            .landmarks
            .as_ref()
            .is_some_and(|l| l.len() == 5));
        assert!(photo.faces.iter().all(|f| f.id.is_some()), "{k}");
    }

    // Second run over the unchanged folder: nothing is embedded, everything comes back equal
    // (bit for bit, read back from the database).
    let again = store::embed_files(&store_path, &files, pipeline(), false).unwrap();
    assert_eq!(again.collection, collection);
    let second = &again.report;
    assert_eq!((second.embedded_photos, second.embedded_faces), (0, 0));
    assert_eq!(second.reused_photos, 11);
    assert_eq!(second.skipped.len(), 5, "bad files are still listed");
    assert_eq!(again.store, st);

    // A changed photo is embedded again, alone.
    image::open(&photos[0])
        .unwrap()
        .fliph()
        .save(&photos[0])
        .unwrap();
    let third = store::embed_files(&store_path, &files, pipeline(), false).unwrap();
    assert_eq!(
        (third.report.embedded_photos, third.report.reused_photos),
        (1, 10)
    );
}

/// A PNG (correct CRCs) whose header claims `w`x`h` RGB but which holds no pixels.
fn png_header(w: u32, h: u32) -> Vec<u8> {
    fn crc32(bytes: &[u8]) -> u32 {
        let mut c = 0xFFFF_FFFFu32;
        for &b in bytes {
            c ^= b as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
        }
        !c
    }
    let mut chunk = b"IHDR".to_vec();
    chunk.extend_from_slice(&w.to_be_bytes());
    chunk.extend_from_slice(&h.to_be_bytes());
    chunk.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    // IHDR, a tiny IDAT (an empty zlib stream) and IEND: a well-formed file that lies.
    let idat = [
        b"IDAT".as_slice(),
        &[0x78, 0x9C, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
    ]
    .concat();
    for chunk in [chunk, idat, b"IEND".to_vec()] {
        out.extend_from_slice(&(chunk.len() as u32 - 4).to_be_bytes());
        out.extend_from_slice(&chunk);
        out.extend_from_slice(&crc32(&chunk).to_be_bytes());
    }
    out
}

#[test]
fn missing_or_wrong_size_weights_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let err = face_models::locate_in(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("face_recognition_model.weights") && err.contains("siamese fetch face-models"),
        "{err}"
    );
    let bad = dir.path().join("face_recognition_model.weights");
    std::fs::write(&bad, vec![0u8; 1000]).unwrap();
    let err = face_models::locate_in(dir.path()).unwrap_err().to_string();
    assert!(err.contains("1000 bytes, expected 22458368"), "{err}");
    let err = FaceResNet::load(&bad, &Device::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("1000 bytes") && err.contains("face_recognition_model.weights"),
        "{err}"
    );
    // A truncated landmark model is refused with its name, never a panic.
    let sp = std::fs::read(models().landmarks).unwrap();
    let cut = dir.path().join("sp.dat");
    std::fs::write(&cut, &sp[..sp.len() / 2]).unwrap();
    let err = ShapePredictor::load(&cut).unwrap_err().to_string();
    assert!(
        err.contains("sp.dat") && err.contains("not a dlib shape predictor"),
        "{err}"
    );
}

#[test]
fn tiny_cluster_run_groups_people_and_writes_gallery() {
    let dir = tempfile::tempdir().unwrap();
    let people = [
        "George_W_Bush",
        "Colin_Powell",
        "Tony_Blair",
        "Serena_Williams",
    ];
    let Some(photos) = copy_people(&dir.path().join("photos"), &people, 4) else {
        return;
    };
    let mut st = EmbeddingStore::new(&pipeline().options().fingerprint());
    let (report, keys) = store::update(&mut st, &photos, pipeline(), false);
    assert_eq!(report.skipped.len(), 0);
    let mut faces = Vec::new();
    let mut data = Vec::new();
    let mut truth = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        // LFW photos can show bystanders: keep the face nearest the centre, as LFW intends.
        let photo = st.get(k).unwrap();
        let f = photo
            .faces
            .iter()
            .enumerate()
            .min_by(|a, b| {
                let d = |f: &store::StoredFace| {
                    (f.bbox.center()[0] - 125.0).abs() + (f.bbox.center()[1] - 125.0).abs()
                };
                d(a.1).total_cmp(&d(b.1))
            })
            .unwrap();
        data.extend_from_slice(&f.1.embedding);
        truth.push((i / 4) as u32);
        faces.push(GalleryFace {
            photo: PathBuf::from(&photo.path),
            face: f.0,
            bbox: f.1.bbox,
            landmarks: f.1.landmarks.clone(),
            cluster: 0,
            person: None,
        });
    }
    let methods = [
        Method::ChineseWhispers {
            threshold: LFW_THRESHOLD,
            max_rounds: 100,
        },
        Method::Agglomerative {
            linkage: Linkage::Average,
            threshold: LFW_THRESHOLD,
        },
        Method::Dbscan {
            eps: 0.85 * LFW_THRESHOLD,
            min_points: 2,
        },
        Method::Kmeans { k: 4 },
    ];
    for method in methods {
        let labels = cluster::cluster(&data, 128, &method, 1).unwrap();
        let f1 = pairwise_scores(&truth, &labels).f1;
        assert!(f1 >= 0.9, "{}: pairwise F1 {f1}", method.name());
        // The neighbour-graph version equals the full-matrix one on these 16 faces.
        let matrix = cluster::cluster_matrix(&data, 128, &method, 1).unwrap();
        assert_eq!(labels, matrix, "{}", method.name());
    }
    let labels = cluster::cluster(&data, 128, &methods[0], 1).unwrap();
    for (f, l) in faces.iter_mut().zip(&labels) {
        f.cluster = *l;
    }
    let out = dir.path().join("gallery");
    let written = write_gallery(&out, &faces, "test").unwrap();
    assert_eq!(written.people, 4);
    assert_eq!(written.montages.len(), 4);
    let montage = image::open(&written.montages[0]).unwrap();
    assert!(montage.width() > 4 * 150 && montage.height() > 150);
    let csv = std::fs::read_to_string(&written.csv).unwrap();
    assert_eq!(csv.lines().count(), 17);
    assert!(csv.starts_with("path,face,left,top,width,height,cluster,cluster_size,person,name\n"));
    let html = std::fs::read_to_string(&written.html).unwrap();
    // The index: one chip per person, linking to a page per person with every face.
    assert_eq!(html.matches("<figure id=\"person_").count(), 4);
    assert!(html.contains("href=\"people/person_001.html\""), "{html}");
    let page = std::fs::read_to_string(out.join("people/person_001.html")).unwrap();
    assert!(page.contains("src=\"../faces/") && page.contains("href=\"../../photos/"));
    assert!(
        page.contains("src=\"../montages/person_001.png\""),
        "{page}"
    );
    for text in [&html, &page] {
        assert!(
            !text.contains(&*dir.path().to_string_lossy()),
            "links must be relative"
        );
    }

    // Exact search: a stored face finds itself first, then the same person.
    let index = StoreIndex::new(&st).unwrap();
    let query = &st.get(&keys[5]).unwrap();
    let q = &query.faces[faces[5].face].embedding;
    let hits = index.search(q, 3, LFW_THRESHOLD).unwrap();
    assert_eq!(hits[0].path, query.path);
    assert!(
        hits[0].distance < 1e-3 && hits[1].same_person && hits[1].path.contains("Colin_Powell")
    );
}

#[test]
fn clustering_algorithms_on_blobs() {
    // Three tight blobs far apart in 2-D, plus one far outlier.
    let mut data = Vec::new();
    for (cx, cy) in [(0.0f32, 0.0f32), (10.0, 0.0), (0.0, 10.0)] {
        for k in 0..5 {
            data.extend_from_slice(&[cx + 0.1 * k as f32, cy - 0.05 * k as f32]);
        }
    }
    data.extend_from_slice(&[50.0, 50.0]);
    let truth: Vec<u32> = (0..16).map(|i| (i / 5) as u32).collect();
    let db = cluster::cluster(
        &data,
        2,
        &Method::Dbscan {
            eps: 1.0,
            min_points: 3,
        },
        0,
    )
    .unwrap();
    assert_eq!(&db[..15], &[0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2]);
    assert_eq!(db[15], NOISE);
    for linkage in [Linkage::Average, Linkage::Complete, Linkage::Single] {
        let labels = cluster::cluster(
            &data,
            2,
            &Method::Agglomerative {
                linkage,
                threshold: 3.0,
            },
            0,
        )
        .unwrap();
        assert_eq!(labels, truth, "{linkage:?}");
    }
    let cw = cluster::cluster(
        &data,
        2,
        &Method::ChineseWhispers {
            threshold: 3.0,
            max_rounds: 50,
        },
        7,
    )
    .unwrap();
    assert_eq!(cw, truth);
    // Complete linkage cuts a chain that single linkage keeps whole.
    let chain: Vec<f32> = [0.0f32, 1.0, 2.2, 3.2, 4.4, 5.4]
        .iter()
        .flat_map(|&x| [x, 0.0])
        .collect();
    let single = cluster::cluster(
        &chain,
        2,
        &Method::Agglomerative {
            linkage: Linkage::Single,
            threshold: 1.5,
        },
        0,
    )
    .unwrap();
    let complete = cluster::cluster(
        &chain,
        2,
        &Method::Agglomerative {
            linkage: Linkage::Complete,
            threshold: 1.5,
        },
        0,
    )
    .unwrap();
    assert_eq!(single, vec![0; 6]);
    assert_eq!(complete, vec![0, 0, 1, 1, 2, 2]);
    assert!(cluster::cluster(
        &data,
        2,
        &Method::Dbscan {
            eps: -1.0,
            min_points: 2
        },
        0
    )
    .is_err());
}

#[test]
fn ten_fold_threshold_selection() {
    // Same pairs at 0.3..0.5, different at 0.7..0.9, one different pair at 0.4 (an error).
    let mut pairs = Vec::new();
    let mut folds = Vec::new();
    for fold in 0..10 {
        for k in 0..10 {
            pairs.push((0.3 + 0.02 * k as f32, true));
            pairs.push((0.7 + 0.02 * k as f32, false));
            folds.extend([fold, fold]);
        }
    }
    pairs.push((0.4, false));
    folds.push(3);
    let t = best_threshold(&pairs);
    assert!(t > 0.48 && t < 0.7, "threshold {t}");
    let r = k_fold(&pairs, &folds).unwrap();
    assert_eq!(r.folds.len(), 10);
    let fold3 = r.folds[3].accuracy;
    assert!((fold3 - 20.0 / 21.0).abs() < 1e-9, "{fold3}");
    assert!(r
        .folds
        .iter()
        .enumerate()
        .all(|(i, f)| i == 3 || f.accuracy == 1.0));
    assert!((r.mean_accuracy - (9.0 + 20.0 / 21.0) / 10.0).abs() < 1e-9);
    assert!(r.std_accuracy > 0.0);
}

/// `--lfw` is always honoured: a file that is not a tar archive is an error naming it, even when
/// the cache already holds an unpacked LFW.
#[test]
fn a_wrong_lfw_tarball_is_refused_whatever_the_cache_holds() {
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in [
        ("garbage.zip", b"PK\x03\x04 not lfw at all".to_vec()),
        ("empty.tar", Vec::new()),
        ("zeros.tar", vec![0u8; 4096]),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let msg = lfw::unpack(&path).unwrap_err().to_string();
        assert!(
            msg.contains(name) && msg.contains("not a tar archive") && msg.lines().count() == 1,
            "{msg}"
        );
    }
}
