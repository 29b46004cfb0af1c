//! dlib's face ResNet in one channels-last pass per chip (`kernels::face_resnet_hwc`, what
//! `FaceResNet::embed_rgb_chips` runs on the CPU) against the same weights layer by layer
//! through burn's tensors, on every SIMD level the CPU has and in bf16 where it has AMX.

use burn::tensor::Device;
use siamese::assets::face_models;
use siamese::kernels::fast_kernel_calls;
use siamese::kernels::simd::{cpu_level, cpu_levels, set_level};
use siamese::model::face_resnet::{FaceResNet, CHIP_SIZE, EMBEDDING_DIM};

/// The SIMD level and the precision are process-wide: the tests of this file take turns (under
/// `cargo test` they share one process; a bf16 run beside the fp32 comparison broke it).
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Chips with structure at every scale: a smooth colour field, a face-sized bright disc, and
/// per-pixel noise (deterministic), so that every layer sees values of both signs after its
/// batch-norm and no ReLU is idle.
fn chips(n: usize) -> Vec<u8> {
    let mut state = 0x9e37_79b9u32;
    let mut out = Vec::with_capacity(n * CHIP_SIZE * CHIP_SIZE * 3);
    for i in 0..n {
        for y in 0..CHIP_SIZE {
            for x in 0..CHIP_SIZE {
                let (dx, dy) = (x as f32 - 75.0, y as f32 - 70.0 - 4.0 * i as f32);
                let disc = if dx * dx + dy * dy < 45.0f32.powi(2) {
                    90.0
                } else {
                    0.0
                };
                for c in 0..3 {
                    state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    let noise = (state >> 24) as f32 / 8.0;
                    let v = 40.0 + (x * (c + 1) + y * (3 - c) + 17 * i) as f32 * 0.3 + disc + noise;
                    out.push(v.clamp(0.0, 255.0) as u8);
                }
            }
        }
    }
    out
}

/// Largest difference relative to the largest reference value.
fn relative_error(got: &[f32], want: &[f32]) -> f32 {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    assert!(scale > 1e-3, "reference embeddings are all near zero");
    got.iter()
        .zip(want)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()))
        / scale
}

#[test]
fn the_pass_per_chip_equals_the_network_layer_by_layer_on_every_simd_level() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let paths = face_models::locate()
        .expect("face models in the cache: run `siamese fetch face-models` first");
    let net = FaceResNet::load(&paths.recognition, &Device::default()).unwrap();
    let chips = chips(5);
    let want = net.embed_rgb_chips_layer_by_layer(&chips, 5).unwrap();
    assert_eq!(want.len(), 5 * EMBEDDING_DIM);
    // The chips differ, so their embeddings must too (a pass that ignored its input would not).
    assert!(want[..EMBEDDING_DIM] != want[EMBEDDING_DIM..2 * EMBEDDING_DIM]);
    for level in cpu_levels() {
        assert_eq!(set_level(level), level);
        let before = fast_kernel_calls();
        // Batches of 2 (2 + 2 + 1): the split into batches must not change the numbers.
        let got = net.embed_rgb_chips(&chips, 2).unwrap();
        assert_eq!(
            fast_kernel_calls(),
            before + 3,
            "{level:?}: one fused call a batch"
        );
        let err = relative_error(&got, &want);
        assert!(err < 1e-4, "{level:?}: relative error {err}");
    }
    set_level(cpu_level());
}

#[test]
fn the_pass_per_chip_in_bf16_stays_within_bf16_rounding_of_fp32() {
    use siamese::kernels::{gemm_bf16, Precision, PrecisionScope};
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !gemm_bf16::available() {
        eprintln!("no AMX on this CPU: bf16 not tested");
        return;
    }
    let paths = face_models::locate()
        .expect("face models in the cache: run `siamese fetch face-models` first");
    let net = FaceResNet::load(&paths.recognition, &Device::default()).unwrap();
    let chips = chips(4);
    let fp32 = net.embed_rgb_chips(&chips, 4).unwrap();
    let bf16 = {
        let _bf16 = PrecisionScope::set(Precision::Bf16).unwrap();
        net.embed_rgb_chips(&chips, 4).unwrap()
    };
    let err = relative_error(&bf16, &fp32);
    // bf16 keeps 8 significant bits (relative rounding 2^-9 per input); 29 layers of sums with
    // fp32 accumulation land within a few percent of the largest value, never more.
    assert!(err > 0.0, "bf16 changed nothing: the AMX path did not run");
    assert!(err < 0.05, "bf16 relative error {err}");
}
