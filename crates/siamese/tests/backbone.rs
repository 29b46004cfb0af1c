//! Frozen ImageNet backbones: the pickle machine and torch checkpoint readers, MobileNetV2 and
//! ResNet-50 against reference outputs computed with PyTorch + torchvision
//! (`tests/fixtures/backbone/make_reference.py`), ImageNet preprocessing, and the feature cache.
//!
//! Needs `siamese fetch backbone` (MobileNetV2 weights and the scikit-image sample pictures).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use burn::tensor::{Device, Tensor, TensorData};
use siamese::model::backbone::{Backbone, BackboneKind, FeatureExtractor};
use siamese::model::feature_cache::{ExtractOptions, FeatureCache};
use siamese::model::imagenet::{top_k, Preprocess};
use siamese::model::resnet50;
use siamese::model::weights::pickle::{self, Value};
use siamese::model::weights::{write_safetensors, WeightTensor, Weights};

fn fixture(name: &str) -> PathBuf {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/backbone"
    ))
    .join(name)
}

fn reference() -> serde_json::Value {
    let text = std::fs::read_to_string(fixture("reference.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn floats(v: &serde_json::Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

/// Largest |a − b| relative to the largest |b|.
fn relative_error(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0f32, |m, v| m.max(v.abs()));
    let diff = a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    diff / scale
}

fn mobilenet(device: &Device) -> Backbone {
    Backbone::load(BackboneKind::MobileNetV2, None, device)
        .unwrap_or_else(|e| panic!("{e} (run `siamese fetch backbone` before the tests)"))
}

fn logits_of(backbone: &Backbone, input: Vec<f32>, device: &Device) -> Vec<f32> {
    let side = (input.len() / 3).isqrt();
    let x = Tensor::<4>::from_data(TensorData::new(input, [1, 3, side, side]), device);
    backbone
        .classify_features(backbone.extract(x))
        .into_data()
        .try_to_vec::<f32>()
        .unwrap()
}

#[test]
fn pickle_machine_decodes_protocols_0_2_and_4_alike() {
    // pickle.dumps({'a': [1, -2, 300, 70000, 2**40, 2.5, 'x', None, True, False],
    //               'b': (b'\x00\xff',), 'c': {'n': (1, 2, 3)}, 'big': 2**70}, protocol=p)
    let p0 = "286470300a56610a70310a286c70320a49310a61492d320a61493330300a614937303030300a614c313039393531313632373737364c0a6146322e350a6156780a70330a614e614930310a614930300a617356620a70340a28635f636f646563730a656e636f64650a70350a28565c7530303030ff0a70360a566c6174696e310a70370a7470380a5270390a747031300a7356630a7031310a28647031320a566e0a7031330a2849310a49320a49330a747031340a7373566269670a7031350a4c313138303539313632303731373431313330333432344c0a732e";
    let p2 = "80027d71002858010000006171015d7102284b014afeffffff4d2c014a701101008a0600000000000147400400000000000058010000007871034e8889655801000000627104635f636f646563730a656e636f64650a7105580300000000c3bf710658060000006c6174696e31710786710852710985710a580100000063710b7d710c58010000006e710d4b014b024b0387710e735803000000626967710f8a09000000000000000040752e";
    let p4 = "80049563000000000000007d94288c0161945d94284b014afeffffff4d2c014a701101008a060000000000014740040000000000008c0178944e8889658c016294430200ff9485948c0163947d948c016e944b014b024b038794738c03626967948a09000000000000000040752e";
    let expected_a = Value::List(vec![
        Value::Int(1),
        Value::Int(-2),
        Value::Int(300),
        Value::Int(70000),
        Value::Int(1 << 40),
        Value::Float(2.5),
        Value::Str("x".into()),
        Value::None,
        Value::Bool(true),
        Value::Bool(false),
    ]);
    let mut big = vec![0u8; 9];
    big[8] = 0x40;
    for (protocol, hex) in [(0, p0), (2, p2), (4, p4)] {
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        let (v, used) = pickle::load(&bytes).unwrap();
        assert_eq!(used, bytes.len(), "protocol {protocol}");
        assert_eq!(v.get("a"), Some(&expected_a), "protocol {protocol}");
        let n = v.get("c").and_then(|c| c.get("n")).unwrap();
        assert_eq!(
            n,
            &Value::Tuple(vec![Value::Int(1), Value::Int(2), Value::Int(3)])
        );
        assert_eq!(
            v.get("big"),
            Some(&Value::BigInt(big.clone())),
            "protocol {protocol}"
        );
        // Bytes are a literal in protocol 4 and a `_codecs.encode` call before it.
        let b = &v.get("b").unwrap().as_seq().unwrap()[0];
        match (protocol, b) {
            (4, Value::Bytes(b)) => assert_eq!(b, &[0u8, 255]),
            (_, Value::Reduce { callable, .. }) => {
                assert_eq!(callable.global_name().as_deref(), Some("_codecs.encode"))
            }
            other => panic!("unexpected {other:?}"),
        }
        // Every truncation is an error, never a panic.
        for cut in 0..bytes.len() {
            assert!(pickle::load(&bytes[..cut]).is_err(), "cut at {cut}");
        }
    }
}

#[test]
fn legacy_and_zip_checkpoints_hold_the_values_torch_saved() {
    let reference = reference();
    let small = reference["small"].as_object().unwrap();
    for file in ["small_legacy.pth", "small_zip.pth"] {
        let w = Weights::load(&fixture(file)).unwrap();
        assert_eq!(w.tensors.len(), small.len(), "{file}");
        for (name, t) in small {
            let got = &w.tensors[name];
            let shape: Vec<usize> = t["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap() as usize)
                .collect();
            assert_eq!(got.shape, shape, "{file} {name}");
            assert_eq!(got.values, floats(&t["values"]), "{file} {name}");
        }
    }
    // The transposed tensor was saved with its original storage and strides.
    let w = Weights::load(&fixture("small_legacy.pth")).unwrap();
    assert_eq!(
        w.tensors["b.transposed"].values,
        vec![0.0, 3.0, 1.0, 4.0, 2.0, 5.0]
    );
    assert_eq!(w.tensors["e.slice"].values, vec![1.0, 1.5, 2.0]);
}

#[test]
fn damaged_weight_files_are_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let legacy = std::fs::read(fixture("small_legacy.pth")).unwrap();
    let zip = std::fs::read(fixture("small_zip.pth")).unwrap();
    let mut cases: Vec<(String, Vec<u8>)> = vec![
        ("empty.pth".into(), vec![]),
        ("junk.pth".into(), b"definitely not weights".to_vec()),
        (
            "trailing.pth".into(),
            [legacy.clone(), vec![1, 2, 3]].concat(),
        ),
        ("zip_cut.pth".into(), zip[..zip.len() / 2].to_vec()),
    ];
    for cut in [20, 100, 400, legacy.len() - 5] {
        cases.push((format!("legacy_cut_{cut}.pth"), legacy[..cut].to_vec()));
    }
    for (name, bytes) in cases {
        let path = dir.path().join(&name);
        std::fs::write(&path, bytes).unwrap();
        let err = Weights::load(&path).unwrap_err().to_string();
        assert!(err.contains(&name), "{name}: {err}");
        assert!(!err.contains('\n'), "{name}: one line expected: {err}");
    }
}

#[test]
fn mobilenet_v2_matches_torchvision_logits_on_sample_pictures() {
    let device = Device::default();
    let net = mobilenet(&device);
    let reference = reference();
    // The fixtures are torchvision's own Resize(256) + CenterCrop(224) output, so only the
    // network is compared here.
    let exact = Preprocess {
        resize: 224,
        crop: 224,
    };
    for (name, class) in [("chelsea", 285usize), ("coffee", 967)] {
        let img = image::open(fixture(&format!("{name}_224.png")))
            .unwrap()
            .to_rgb8();
        let logits = logits_of(&net, exact.apply(&img), &device);
        let want = floats(&reference["mobilenet_v2"][name]["logits"]);
        let top5: Vec<usize> = reference["mobilenet_v2"][name]["top5"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(top5[0], class, "reference top-1 of {name}");
        assert_eq!(top_k(&logits, 5), top5, "{name}");
        let err = relative_error(&logits, &want);
        eprintln!(
            "mobilenet_v2 {name}: top-5 {:?}, relative logit error {err:.2e}",
            top_k(&logits, 5)
        );
        assert!(err < 1e-3, "{name}: relative logit error {err}");
    }
}

#[test]
fn full_preprocessing_of_original_pictures_agrees_with_torchvision() {
    let device = Device::default();
    let net = mobilenet(&device);
    let reference = reference();
    let samples = siamese::assets::backbone::samples_dir();
    for name in ["chelsea", "coffee"] {
        let original = samples.join(format!("{name}.png"));
        assert!(
            original.exists(),
            "{} missing: run `siamese fetch backbone`",
            original.display()
        );
        // Our resize + crop against PIL's: within a grey level or two on average.
        let ours = Preprocess::default().resize_crop(&image::open(&original).unwrap().to_rgb8());
        let pil = image::open(fixture(&format!("{name}_224.png")))
            .unwrap()
            .to_rgb8();
        assert_eq!(ours.dimensions(), (224, 224));
        let mean_abs: f64 = ours
            .as_raw()
            .iter()
            .zip(pil.as_raw())
            .map(|(&a, &b)| (a as f64 - b as f64).abs())
            .sum::<f64>()
            / ours.as_raw().len() as f64;
        assert!(mean_abs < 0.5, "{name}: mean pixel difference {mean_abs}");
        let logits = logits_of(
            &net,
            Preprocess::default().load(&original).unwrap(),
            &device,
        );
        let want = floats(&reference["mobilenet_v2"][name]["logits"]);
        assert_eq!(top_k(&logits, 1), top_k(&want, 1), "{name}");
        let err = relative_error(&logits, &want);
        eprintln!("full preprocessing {name}: mean pixel difference {mean_abs:.3}, relative logit error {err:.2e}");
        assert!(err < 0.03, "{name}: relative logit error {err}");
    }
}

/// FNV-1a, 32 bits (the formula weights' per-tensor offset; same as make_reference.py).
fn fnv1a32(s: &str) -> u32 {
    s.bytes().fold(0x811C9DC5u32, |h, b| {
        (h ^ b as u32).wrapping_mul(0x01000193)
    })
}

/// The deterministic "formula" weights make_reference.py loaded into torchvision's ResNet-50.
fn formula(name: &str, shape: &[usize]) -> Vec<f32> {
    const PHI: f64 = 0.6180339887498949;
    let n: usize = shape.iter().product();
    let offset = fnv1a32(name) as f64 / 2f64.powi(32);
    (1..=n)
        .map(|i| {
            let u = (i as f64 * PHI + offset) % 1.0 - 0.5;
            let v = if name.ends_with("running_var") {
                1.0 + (u + 0.5) * 0.5
            } else if name.ends_with("running_mean") || name.ends_with("bias") {
                u * 0.2
            } else if shape.len() == 1 {
                1.0 + u * 0.2
            } else {
                let fan_in: usize = shape[1..].iter().product();
                u * (24.0 / fan_in as f64).sqrt()
            };
            v as f32
        })
        .collect()
}

fn formula_weights() -> BTreeMap<String, WeightTensor> {
    resnet50::parameter_shapes()
        .into_iter()
        .map(|(name, shape)| {
            let values = formula(&name, &shape);
            (name, WeightTensor { shape, values })
        })
        .collect()
}

#[test]
fn resnet50_with_generated_weights_matches_torchvision() {
    let device = Device::default();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("resnet50.safetensors");
    let tensors = formula_weights();
    assert_eq!(
        tensors.len(),
        53 * 5 + 2,
        "53 conv+BN pairs and the fc layer"
    );
    write_safetensors(&path, &tensors).unwrap();
    let net = Backbone::load(BackboneKind::ResNet50, Some(&path), &device).unwrap();
    assert_eq!(net.feature_dim(), 2048);
    assert!(net.id().starts_with("resnet50-"));

    let img = image::open(fixture("chelsea_224.png")).unwrap().to_rgb8();
    let input = Preprocess {
        resize: 224,
        crop: 224,
    }
    .apply(&img);
    let x = Tensor::<4>::from_data(TensorData::new(input.clone(), [1, 3, 224, 224]), &device);
    let features = net.extract(x.clone());
    assert_eq!(features.dims(), [1, 2048]);
    let reference = reference();
    let f: Vec<f32> = features.into_data().try_to_vec().unwrap();
    let first8 = floats(&reference["resnet50_formula"]["feature_first8"]);
    assert!(
        relative_error(&f[..8], &first8) < 1e-3,
        "features {:?} vs {first8:?}",
        &f[..8]
    );
    let logits = logits_of(&net, input.clone(), &device);
    let want = floats(&reference["resnet50_formula"]["logits"]);
    let err = relative_error(&logits, &want);
    eprintln!("resnet50 formula weights: relative logit error {err:.2e}");
    assert!(err < 1e-3, "relative logit error {err}");
    // Deterministic: the same input gives the same bits.
    assert_eq!(logits_of(&net, input, &device), logits);
}

#[test]
fn resnet50_rejects_weights_that_do_not_fit() {
    let device = Device::default();
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, tensors: &BTreeMap<String, WeightTensor>| {
        let path = dir.path().join(name);
        write_safetensors(&path, tensors).unwrap();
        path
    };
    let mut missing = formula_weights();
    missing.remove("layer3.2.conv2.weight");
    let err = Backbone::load(
        BackboneKind::ResNet50,
        Some(&write("missing.safetensors", &missing)),
        &device,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("missing.safetensors") && err.contains("layer3.2.conv2.weight"),
        "{err}"
    );

    let mut wrong = formula_weights();
    wrong.get_mut("fc.bias").unwrap().shape = vec![10, 100];
    let err = Backbone::load(
        BackboneKind::ResNet50,
        Some(&write("wrong.safetensors", &wrong)),
        &device,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("fc.bias") && err.contains("[10, 100]"),
        "{err}"
    );

    let mut extra = formula_weights();
    extra.insert(
        "head.weight".into(),
        WeightTensor {
            shape: vec![1],
            values: vec![0.0],
        },
    );
    let err = Backbone::load(
        BackboneKind::ResNet50,
        Some(&write("extra.safetensors", &extra)),
        &device,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("head.weight"), "{err}");

    // MobileNetV2's checkpoint is not a ResNet-50.
    let mnv2 = siamese::assets::backbone::mobilenet_v2_path();
    let err = Backbone::load(BackboneKind::ResNet50, Some(&mnv2), &device)
        .unwrap_err()
        .to_string();
    assert!(err.contains("conv1.weight"), "{err}");
}

/// Wraps a backbone and counts the images it runs forward.
struct Counting<'a> {
    inner: &'a Backbone,
    images: AtomicUsize,
}

impl FeatureExtractor for Counting<'_> {
    fn id(&self) -> String {
        self.inner.id()
    }
    fn feature_dim(&self) -> usize {
        self.inner.feature_dim()
    }
    fn preprocess(&self) -> Preprocess {
        self.inner.preprocess()
    }
    fn extract(&self, images: Tensor<4>) -> Tensor<2> {
        self.images.fetch_add(images.dims()[0], Ordering::SeqCst);
        self.inner.extract(images)
    }
}

#[test]
fn feature_cache_second_run_does_no_forward_pass() {
    let device = Device::default();
    let net = mobilenet(&device);
    let work = tempfile::tempdir().unwrap();
    let images = work.path().join("images");
    std::fs::create_dir_all(&images).unwrap();
    let mut paths = Vec::new();
    for (src, dst) in [
        ("chelsea_224.png", "cat.png"),
        ("coffee_224.png", "coffee.png"),
        ("chelsea_224.png", "same_cat_renamed.png"),
    ] {
        std::fs::copy(fixture(src), images.join(dst)).unwrap();
        paths.push(images.join(dst));
    }
    for i in 0..3u8 {
        let img = image::RgbImage::from_fn(300 + i as u32 * 40, 200, |x, y| {
            image::Rgb([(x as u8).wrapping_mul(i + 1), y as u8, 40 * i])
        });
        let p = images.join(format!("synthetic_{i}.jpg"));
        img.save(&p).unwrap();
        paths.push(p);
    }
    let cache_dir = work.path().join("cache");
    let options = ExtractOptions {
        batch: 4,
        chunk: 4,
        progress: false,
    };
    let counting = Counting {
        inner: &net,
        images: AtomicUsize::new(0),
    };

    let mut cache = FeatureCache::open(&cache_dir, &net.id(), net.feature_dim()).unwrap();
    let (first, stats) = cache
        .features(&counting, &paths, &options, &device)
        .unwrap();
    assert_eq!(first.len(), 6 * 1280);
    assert_eq!(
        (stats.images, stats.unique, stats.computed, stats.hits),
        (6, 5, 5, 0)
    );
    assert_eq!(counting.images.load(Ordering::SeqCst), 5);
    // A renamed copy gets the same features without being run again.
    assert_eq!(first[..1280], first[2 * 1280..3 * 1280]);
    // Cached features are the network's: the classifier on them still sees the cat.
    let row = Tensor::<2>::from_data(TensorData::new(first[..1280].to_vec(), [1, 1280]), &device);
    let logits: Vec<f32> = net.classify_features(row).into_data().try_to_vec().unwrap();
    assert_eq!(top_k(&logits, 1), vec![285]);

    // A new process (a fresh cache object reading the same file): no forward pass at all.
    let mut again = FeatureCache::open(&cache_dir, &net.id(), net.feature_dim()).unwrap();
    assert_eq!(again.len(), 5);
    let (second, stats) = again
        .features(&counting, &paths, &options, &device)
        .unwrap();
    assert_eq!((stats.computed, stats.hits), (0, 5));
    assert_eq!(
        counting.images.load(Ordering::SeqCst),
        5,
        "second run ran the backbone"
    );
    assert_eq!(first, second);

    // A run killed mid-append leaves a torn record: it is dropped and the cache still works.
    let file = again.path().to_path_buf();
    let mut bytes = std::fs::read(&file).unwrap();
    bytes.extend_from_slice(&[7u8; 100]);
    std::fs::write(&file, &bytes).unwrap();
    let mut third = FeatureCache::open(&cache_dir, &net.id(), net.feature_dim()).unwrap();
    assert_eq!(third.len(), 5);
    let (_, stats) = third
        .features(&counting, &paths, &options, &device)
        .unwrap();
    assert_eq!(stats.computed, 0);

    // A cache file of another extractor or length is refused, not misread.
    std::fs::copy(&file, cache_dir.join("other.features")).unwrap();
    let err = FeatureCache::open(&cache_dir, "other", 1280)
        .unwrap_err()
        .to_string();
    assert!(err.contains("other.features"), "{err}");

    // An undecodable image is an error naming it.
    let bad = images.join("broken.png");
    std::fs::write(&bad, b"not a png").unwrap();
    let err = third
        .features(&counting, &[bad], &options, &device)
        .unwrap_err()
        .to_string();
    assert!(err.contains("broken.png"), "{err}");
}
