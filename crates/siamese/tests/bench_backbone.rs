//! `siamese bench backbone` without its peer: ours is timed, the report says why the peer is
//! missing, bad counts are refused; and the exported layers the ONNX peer is built from compute
//! the same features as the network itself (replayed here with burn's plain convolution), as
//! do its fused per-image pass and its layer-by-layer one.

use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Tensor, TensorData};

use siamese::model::frozen::ExportedConv;
use siamese::model::mobilenet_v2::MobileNetV2;
use siamese::model::weights::Weights;
use siamese::train::bench::backbone::{run_backbone_bench, BackboneBenchConfig};

fn replay(conv: &ExportedConv, x: Tensor<4>, device: &Device) -> Tensor<4> {
    let weight = Tensor::<4>::from_data(TensorData::new(conv.weight.clone(), conv.shape), device);
    let bias = Tensor::<1>::from_data(TensorData::new(conv.bias.clone(), [conv.shape[0]]), device);
    let (s, p) = (conv.stride, conv.padding);
    conv2d(
        x,
        weight,
        Some(bias),
        ConvOptions::new([s, s], [p, p], [1, 1], conv.groups),
    )
}

#[test]
fn the_exported_layers_compute_the_networks_features() {
    let device = Device::default();
    let path = siamese::assets::backbone::fetch_mobilenet_v2().unwrap();
    let net = MobileNetV2::from_weights(Weights::load(&path).unwrap(), &device).unwrap();
    let values: Vec<f32> = (0..2 * 3 * 224 * 224)
        .map(|i| ((i * 7919 % 1013) as f32 / 1013.0 - 0.5) * 4.0)
        .collect();
    let images = Tensor::<4>::from_data(TensorData::new(values, [2, 3, 224, 224]), &device);
    let want: Vec<f32> = net
        .features(images.clone())
        .into_data()
        .try_to_vec()
        .unwrap();
    // `features` takes the fused per-image pass on the CPU kernels; the layer-by-layer one
    // must agree with it.
    let by_layer: Vec<f32> = net
        .features_layer_by_layer(images.clone())
        .into_data()
        .try_to_vec()
        .unwrap();
    let apart = by_layer
        .iter()
        .zip(&want)
        .map(|(g, w)| (g - w).abs())
        .fold(0.0f32, f32::max);
    assert!(
        apart < 1e-4,
        "fused and layer-by-layer passes differ by {apart}"
    );
    let layers = net.export();
    assert_eq!(layers.blocks.len(), 17);
    assert_eq!(layers.blocks.iter().filter(|b| b.residual).count(), 10);
    let relu6 = |x: Tensor<4>| x.clamp(0.0, 6.0);
    let mut x = relu6(replay(&layers.stem, images, &device));
    for block in &layers.blocks {
        let mut h = x.clone();
        if let Some(expand) = &block.expand {
            h = relu6(replay(expand, h, &device));
        }
        h = relu6(replay(&block.depthwise, h, &device));
        h = replay(&block.project, h, &device);
        x = if block.residual { h + x } else { h };
    }
    let x = relu6(replay(&layers.head, x, &device));
    let [b, c, hh, ww] = x.dims();
    let got: Vec<f32> = x
        .reshape([b, c, hh * ww])
        .mean_dim(2)
        .reshape([b, c])
        .into_data()
        .try_to_vec()
        .unwrap();
    assert_eq!(got.len(), 2 * 1280);
    let worst = got
        .iter()
        .zip(&want)
        .map(|(g, w)| (g - w).abs())
        .fold(0.0f32, f32::max);
    assert!(worst < 1e-4, "exported layers differ by {worst}");
    assert!(want.iter().any(|v| *v > 0.1), "features are not all zero");
}

#[test]
fn ours_is_timed_and_a_missing_peer_says_why() {
    let config = BackboneBenchConfig {
        batch: 2,
        warmup: 0,
        rounds: 2,
        threads: 2,
        seed: 3,
    };
    let report = run_backbone_bench(&config, false, &mut |_| {}).unwrap();
    assert_eq!(report.round_seconds.len(), 2);
    assert!(report.img_per_s > 0.0 && report.img_per_s.is_finite());
    assert!(report.onnxruntime.is_none() && report.ratio_vs_onnxruntime.is_none());
    assert_eq!(report.peer_error.as_deref(), Some("skipped (--no-peer)"));
    let json = serde_json::to_value(&report).unwrap();
    for key in [
        "img_per_s",
        "onnxruntime_img_per_s",
        "ratio_vs_onnxruntime",
        "cpu_model",
    ] {
        assert!(json.get(key).is_some(), "{key}");
    }
    let bad = BackboneBenchConfig { batch: 0, ..config };
    let err = run_backbone_bench(&bad, false, &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("batch 0") && !err.contains('\n'), "{err}");
}
