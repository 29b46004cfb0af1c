//! The fast flex kernels (`siamese::kernels`) against burn's own layers: forward values and the
//! gradients of input, weight and bias agree within 1e-4 (relative to the values' scale) on random
//! inputs, model shapes and odd ones; a short training run of the seeds' CNN gives the same losses.

use std::sync::Mutex;

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::MaxPool2dConfig;
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};

use siamese::kernels::{self, fast_kernel_calls, with_kernel_path, with_kernels, Kernels};
use siamese::loss::TripletLossConfig;
use siamese::model::embedding_cnn::EmbeddingCnnConfig;
use siamese::train::trainer::new_optimizer;

#[path = "common/tensors.rs"]
mod tensors;
use tensors::{host, max_error, max_error_within, random, rms_error_within};

/// burn's random generator is per device and shared by this binary's threads: weight
/// initialisation and dropout masks must not interleave between tests.
static DEVICE_RNG: Mutex<()> = Mutex::new(());

/// Every test of this binary runs alone: run side by side, the same-seed training and dropout
/// runs differed about one time in seven (30 of 30 passed with one test thread), as burn's
/// device state is shared by the binary's threads. Taken first by each test; [`DEVICE_RNG`]
/// stays for the helpers.
static SERIAL: Mutex<()> = Mutex::new(());

/// Output and gradients `(y, gx, gw, gb)` of `relu(conv(x))` weighted by a fixed random
/// upstream gradient, through the fast or the plain path.
fn conv_run(
    conv: &Conv2d,
    x: &Tensor<4>,
    input_grad: bool,
    path: Kernels,
) -> (Vec<f32>, Option<Vec<f32>>, Vec<f32>, Vec<f32>) {
    let fast = path != Kernels::Plain;
    let x = if input_grad {
        x.clone().require_grad()
    } else {
        x.clone()
    };
    let before = fast_kernel_calls();
    let y = if fast {
        with_kernel_path(path, || kernels::conv2d_relu(conv, x.clone()))
    } else {
        relu(conv.forward(x.clone()))
    };
    if fast {
        assert!(fast_kernel_calls() > before, "the fast kernel did not run");
    }
    let upstream = random(y.dims(), 99, &y.device());
    let grads = (y.clone() * upstream).sum().backward();
    let gx = input_grad.then(|| host(x.grad(&grads).unwrap()));
    let gw = host(conv.weight.val().grad(&grads).unwrap());
    let gb = host(conv.bias.as_ref().unwrap().val().grad(&grads).unwrap());
    (host(y), gx, gw, gb)
}

fn check_conv(input: [usize; 4], out_channels: usize, kernel: [usize; 2], input_grad: bool) {
    let device = Device::default().autodiff();
    let conv = {
        let _turn = DEVICE_RNG.lock().unwrap_or_else(|e| e.into_inner());
        device.seed(5);
        Conv2dConfig::new([input[1], out_channels], kernel).init(&device)
    };
    let x = random(input, 1, &device);
    let plain = conv_run(&conv, &x, input_grad, Kernels::Plain);
    for path in [Kernels::Winograd, Kernels::Im2col] {
        let fast = conv_run(&conv, &x, input_grad, path);
        let name = format!("{path:?} conv {input:?} -> {out_channels}, kernel {kernel:?}");
        max_error(&format!("{name}: output"), &fast.0, &plain.0);
        if input_grad {
            max_error(
                &format!("{name}: input gradient"),
                fast.1.as_ref().unwrap(),
                plain.1.as_ref().unwrap(),
            );
        }
        max_error(&format!("{name}: weight gradient"), &fast.2, &plain.2);
        max_error(&format!("{name}: bias gradient"), &fast.3, &plain.3);
    }
    // ReLU must have cut something, or the mask is not being tested.
    let zeros = plain.0.iter().filter(|v| **v == 0.0).count();
    assert!(zeros > 0 && zeros < plain.0.len());
}

#[test]
fn conv_matches_burn_on_model_shapes() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    check_conv([2, 1, 28, 28], 32, [3, 3], false);
    check_conv([2, 1, 28, 28], 32, [3, 3], true);
    check_conv([3, 32, 26, 26], 64, [3, 3], true);
}

#[test]
fn conv_matches_burn_on_odd_shapes() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    check_conv([3, 2, 9, 7], 5, [3, 3], true);
    check_conv([5, 3, 8, 11], 4, [2, 5], true);
    check_conv([1, 1, 3, 3], 2, [3, 3], true);
    check_conv([7, 6, 5, 13], 3, [1, 1], true);
    // Winograd's partial edge tiles: odd output sides, a single output pixel, one image.
    check_conv([3, 5, 9, 7], 6, [3, 3], true);
    check_conv([2, 4, 3, 3], 3, [3, 3], true);
    check_conv([1, 8, 4, 6], 2, [3, 3], false);
}

#[test]
fn conv_inference_matches_burn_without_autodiff() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let device = Device::default();
    let conv = {
        let _turn = DEVICE_RNG.lock().unwrap_or_else(|e| e.into_inner());
        device.seed(6);
        Conv2dConfig::new([3, 7], [3, 3]).init(&device)
    };
    let x = random([4, 3, 10, 9], 2, &device);
    let before = fast_kernel_calls();
    let fast = host(with_kernels(true, || {
        kernels::conv2d_relu(&conv, x.clone())
    }));
    assert!(fast_kernel_calls() > before);
    let plain = host(relu(conv.forward(x)));
    max_error("inference conv output", &fast, &plain);
}

#[test]
fn max_pool_matches_burn() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let device = Device::default().autodiff();
    let pool = MaxPool2dConfig::new([2, 2]).init();
    for (shape, seed) in [([2, 3, 9, 7], 3), ([4, 64, 24, 24], 4), ([1, 1, 2, 2], 5)] {
        let x = random(shape, seed, &device).require_grad();
        let run = |fast: bool| {
            let y = if fast {
                with_kernels(true, || kernels::max_pool2d(&pool, x.clone()))
            } else {
                pool.forward(x.clone())
            };
            let upstream = random(y.dims(), 77, &device);
            let grads = (y.clone() * upstream).sum().backward();
            (host(y), host(x.grad(&grads).unwrap()))
        };
        let before = fast_kernel_calls();
        let (fast_y, fast_gx) = run(true);
        assert!(fast_kernel_calls() > before);
        let (plain_y, plain_gx) = run(false);
        assert_eq!(
            fast_y.len(),
            shape[0] * shape[1] * (shape[2] / 2) * (shape[3] / 2)
        );
        max_error(&format!("pool {shape:?}: output"), &fast_y, &plain_y);
        max_error(
            &format!("pool {shape:?}: input gradient"),
            &fast_gx,
            &plain_gx,
        );
    }
}

/// Losses of `steps` Adam steps of the seeds' CNN (dropout off) on fixed random triplets.
fn training_losses(path: Kernels, steps: usize) -> Vec<f32> {
    let _turn = DEVICE_RNG.lock().unwrap_or_else(|e| e.into_inner());
    with_kernel_path(path, || {
        let device = Device::default().autodiff();
        device.seed(11);
        // No dropout: the fast path draws its masks differently (tested on its own below).
        let mut model = EmbeddingCnnConfig::new()
            .with_dropout_conv(0.0)
            .with_dropout_dense(0.0)
            .init(&device)
            .unwrap();
        let mut optimizer = new_optimizer();
        let loss_fn = TripletLossConfig::new().init().unwrap();
        let t = 8;
        (0..steps)
            .map(|step| {
                let x = random([3 * t, 1, 28, 28], 100 + step as u64, &device);
                let emb = model.forward(x);
                let loss = loss_fn.forward(
                    emb.clone().narrow(0, 0, t),
                    emb.clone().narrow(0, t, t),
                    emb.narrow(0, 2 * t, t),
                );
                let grads = burn::optim::GradientsParams::from_grads(loss.backward(), &model);
                let value = loss.clone().into_scalar::<f32>();
                model = optimizer.step(1e-3, model.clone(), grads);
                value
            })
            .collect()
    })
}

#[test]
fn short_training_gives_the_same_losses() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let steps = 6;
    let plain = training_losses(Kernels::Plain, steps);
    assert!(plain[0] > 0.0, "a zero first loss tests nothing");
    for path in [Kernels::Im2col, Kernels::Winograd] {
        let fast = training_losses(path, steps);
        println!("losses {path:?} {fast:?}\nlosses plain {plain:?}");
        for (i, (f, p)) in fast.iter().zip(&plain).enumerate() {
            assert!(
                (f - p).abs() <= 1e-3 * p.abs().max(1.0),
                "{path:?} step {i}: loss {f} vs plain {p}"
            );
        }
    }
    // The model moved: the losses are not all equal.
    assert!(plain.iter().any(|l| (l - plain[0]).abs() > 1e-6));
}

#[test]
fn embedding_cnn_inference_is_the_same_on_both_paths() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let device = Device::default();
    let model = {
        let _turn = DEVICE_RNG.lock().unwrap_or_else(|e| e.into_inner());
        device.seed(12);
        EmbeddingCnnConfig::new().init(&device).unwrap()
    };
    let model = model.valid();
    let x = random([5, 1, 28, 28], 21, &device);
    let fast = host(with_kernels(true, || model.forward(x.clone())));
    let plain = host(with_kernels(false, || model.forward(x)));
    max_error("EmbeddingCnn embeddings", &fast, &plain);
}

#[test]
fn dropout_kernel_keeps_the_expected_fraction_and_passes_its_mask_back() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let device = Device::default().autodiff();
    let drop = burn::nn::DropoutConfig::new(0.25).init();
    let run = |seed: u64| {
        let _turn = DEVICE_RNG.lock().unwrap_or_else(|e| e.into_inner());
        device.seed(seed);
        let x = Tensor::<2>::ones([64, 1000], &device).require_grad();
        let before = fast_kernel_calls();
        let y = with_kernels(true, || kernels::dropout(&drop, x.clone()));
        assert!(fast_kernel_calls() > before, "the fast kernel did not run");
        let grads = y.clone().sum().backward();
        (host(y), host(x.grad(&grads).unwrap()))
    };
    let (y, gx) = run(3);
    let kept = y.iter().filter(|v| **v != 0.0).count() as f64 / y.len() as f64;
    println!("kept fraction {kept:.4}");
    assert!((kept - 0.75).abs() < 0.01, "kept {kept}");
    assert!(y.iter().all(|v| *v == 0.0 || (v - 1.0 / 0.75).abs() < 1e-6));
    // d(sum y)/dx = mask / keep = y for x = 1.
    assert_eq!(gx, y);
    // Deterministic under the device seed, different for another seed.
    assert_eq!(run(3).0, y);
    assert_ne!(run(4).0, y);
    // Not training (inner device): the identity, as burn's Dropout.
    let plain = Tensor::<2>::ones([4, 5], &Device::default());
    assert_eq!(host(kernels::dropout(&drop, plain)), vec![1.0; 20]);
}

/// Output and gradients `(y, gx, gw, gb)` of conv + ReLU + 2x2 pool + dropout under one device
/// seed, through the model's fused call or the three separate fast kernels.
fn conv_pool_run(
    conv: &Conv2d,
    drop: &burn::nn::Dropout,
    x: &Tensor<4>,
    fused: bool,
    seed: u64,
) -> (Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>) {
    let pool = MaxPool2dConfig::new([2, 2]).init();
    let x = x.clone().require_grad();
    let y = {
        let _turn = DEVICE_RNG.lock().unwrap_or_else(|e| e.into_inner());
        x.device().seed(seed);
        with_kernel_path(Kernels::Im2col, || {
            if fused {
                kernels::conv2d_relu_pool_dropout(conv, &pool, drop, x.clone())
            } else {
                kernels::dropout(
                    drop,
                    kernels::max_pool2d(&pool, kernels::conv2d_relu(conv, x.clone())),
                )
            }
        })
    };
    let upstream = random(y.dims(), 98, &y.device());
    let grads = (y.clone() * upstream).sum().backward();
    let gx = host(x.grad(&grads).unwrap());
    let gw = host(conv.weight.val().grad(&grads).unwrap());
    let gb = host(conv.bias.as_ref().unwrap().val().grad(&grads).unwrap());
    (host(y), gx, gw, gb)
}

#[test]
fn fused_conv_pool_dropout_matches_the_separate_layers_on_every_simd_level() {
    use siamese::kernels::simd::{cpu_level, cpu_levels, set_level};
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let device = Device::default().autodiff();
    let shapes = [
        ([3, 32, 26, 26], 64, [3, 3]),
        ([24, 32, 26, 26], 64, [3, 3]),
        // More input channels on odd sizes, and a 2x3 kernel.
        ([2, 16, 9, 8], 5, [2, 3]),
        ([3, 20, 7, 11], 17, [3, 3]),
        ([2, 3, 9, 7], 5, [3, 3]),
        ([2, 2, 6, 7], 3, [2, 3]),
        ([1, 4, 3, 3], 2, [2, 2]),
    ];
    for level in cpu_levels() {
        assert_eq!(set_level(level), level);
        for (input, out_channels, kernel) in shapes {
            let conv = {
                let _turn = DEVICE_RNG.lock().unwrap_or_else(|e| e.into_inner());
                device.seed(7);
                Conv2dConfig::new([input[1], out_channels], kernel).init(&device)
            };
            let x = random(input, 3, &device);
            for prob in [0.0, 0.25] {
                let drop = burn::nn::DropoutConfig::new(prob).init();
                let before = fast_kernel_calls();
                let fused = conv_pool_run(&conv, &drop, &x, true, 40);
                assert_eq!(fast_kernel_calls(), before + 1, "one fused call");
                let separate = conv_pool_run(&conv, &drop, &x, false, 40);
                let name =
                    format!("{level:?} {input:?} -> {out_channels} {kernel:?} dropout {prob}");
                max_error(&format!("{name}: output"), &fused.0, &separate.0);
                max_error(&format!("{name}: input gradient"), &fused.1, &separate.1);
                max_error(&format!("{name}: weight gradient"), &fused.2, &separate.2);
                max_error(&format!("{name}: bias gradient"), &fused.3, &separate.3);
                let zeros = fused.0.iter().filter(|v| **v == 0.0).count();
                assert!(zeros > 0 && zeros < fused.0.len(), "{name}: {zeros} zeros");
                if prob > 0.0 && fused.0.len() > 50 {
                    // Another seed draws another mask.
                    assert_ne!(conv_pool_run(&conv, &drop, &x, true, 41).0, fused.0);
                }
            }
        }
    }
    set_level(cpu_level());
}

/// Output and gradients `(y, gx, gw, gb)` of dense + ReLU + dropout under one device seed,
/// through the model's fused call or burn's `Linear` and ReLU, then the dropout kernel.
fn dense_run(
    dense: &burn::nn::Linear,
    drop: &burn::nn::Dropout,
    x: &Tensor<2>,
    path: Option<Kernels>,
    seed: u64,
) -> (Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>) {
    let x = x.clone().require_grad();
    let y = {
        let _turn = DEVICE_RNG.lock().unwrap_or_else(|e| e.into_inner());
        x.device().seed(seed);
        let before = fast_kernel_calls();
        match path {
            Some(path) => {
                let y =
                    with_kernel_path(path, || kernels::dense_relu_dropout(dense, drop, x.clone()));
                if path != Kernels::Plain {
                    assert!(
                        fast_kernel_calls() > before,
                        "the fused dense layer did not run"
                    );
                }
                y
            }
            None => with_kernel_path(Kernels::Im2col, || {
                kernels::dropout(drop, relu(dense.forward(x.clone())))
            }),
        }
    };
    let upstream = random(y.dims(), 97, &y.device());
    let grads = (y.clone() * upstream).sum().backward();
    let gx = host(x.grad(&grads).unwrap());
    let gw = host(dense.weight.val().grad(&grads).unwrap());
    let gb = host(dense.bias.as_ref().unwrap().val().grad(&grads).unwrap());
    (host(y), gx, gw, gb)
}

#[test]
fn fused_dense_relu_dropout_matches_burns_layer_and_the_dropout_kernel() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let device = Device::default().autodiff();
    // The model's shape at a small batch, and shapes that split unevenly across threads.
    for (batch, inputs, outputs) in [(12, 9216, 128), (1, 5, 3), (7, 33, 17), (40, 300, 1)] {
        let dense = {
            let _turn = DEVICE_RNG.lock().unwrap_or_else(|e| e.into_inner());
            device.seed(8);
            burn::nn::LinearConfig::new(inputs, outputs).init(&device)
        };
        let x = random([batch, inputs], 4, &device);
        for prob in [0.0, 0.5] {
            let drop = burn::nn::DropoutConfig::new(prob).init();
            let name = format!("[{batch}, {inputs}] -> {outputs}, dropout {prob}");
            let fused = dense_run(&dense, &drop, &x, Some(Kernels::Im2col), 30);
            let separate = dense_run(&dense, &drop, &x, None, 30);
            let mut references = vec![("separate kernels", separate)];
            if prob == 0.0 {
                // burn's own dropout draws another mask: only without dropout.
                references.push((
                    "plain",
                    dense_run(&dense, &drop, &x, Some(Kernels::Plain), 30),
                ));
            }
            for (what, reference) in references {
                let name = format!("{name} vs {what}");
                max_error(&format!("{name}: output"), &fused.0, &reference.0);
                max_error(&format!("{name}: input gradient"), &fused.1, &reference.1);
                max_error(&format!("{name}: weight gradient"), &fused.2, &reference.2);
                max_error(&format!("{name}: bias gradient"), &fused.3, &reference.3);
            }
            if fused.0.len() > 20 {
                let zeros = fused.0.iter().filter(|v| **v == 0.0).count();
                assert!(zeros > 0 && zeros < fused.0.len(), "{name}: {zeros} zeros");
            }
            if prob > 0.0 && fused.0.len() > 50 {
                assert_ne!(
                    dense_run(&dense, &drop, &x, Some(Kernels::Im2col), 31).0,
                    fused.0
                );
            }
        }
    }
    // Without autodiff (inference): the same values as burn's layer and ReLU.
    let inner = Device::default();
    let dense = {
        let _turn = DEVICE_RNG.lock().unwrap_or_else(|e| e.into_inner());
        inner.seed(9);
        burn::nn::LinearConfig::new(200, 64).init(&inner)
    };
    let drop = burn::nn::DropoutConfig::new(0.5).init();
    let x = random([9, 200], 5, &inner);
    let before = fast_kernel_calls();
    let fused = host(with_kernel_path(Kernels::Im2col, || {
        kernels::dense_relu_dropout(&dense, &drop, x.clone())
    }));
    assert!(
        fast_kernel_calls() > before,
        "the fused dense layer did not run"
    );
    max_error("inference dense", &fused, &host(relu(dense.forward(x))));
}

#[test]
fn fused_adam_equals_burns_adam_bit_for_bit() {
    use burn::optim::{AdamConfig, Optimizer};
    use siamese::kernels::adam::FusedAdam;
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let device = Device::default();
    let burn_adam = AdamConfig::new().build();
    let fused = FusedAdam::default();
    // Larger than one rayon task (16,384 values), and a small odd one.
    for n in [40_000usize, 7] {
        let (mut p_burn, mut p_fused) = (random([n], 1, &device), random([n], 1, &device));
        let (mut s_burn, mut s_fused) = (None, None);
        for step in 0..5u64 {
            // Gradients with zeros and tiny values, where sqrt(v) + ε decides the step.
            let g = random([n], 10 + step, &device).mul_scalar(10f32.powi(-(step as i32)));
            let lr = 1e-3 * (1.0 + step as f64);
            let before = host(p_fused.clone());
            (p_burn, s_burn) = burn_adam.step(lr, p_burn, g.clone(), s_burn);
            let calls = fast_kernel_calls();
            (p_fused, s_fused) = with_kernel_path(Kernels::Im2col, || {
                fused.step(lr, p_fused.clone(), g, s_fused.clone())
            });
            assert!(fast_kernel_calls() > calls, "the fused step did not run");
            let (a, b) = (host(p_fused.clone()), host(p_burn.clone()));
            assert_eq!(a, b, "n {n}, step {step}: parameters");
            assert_ne!(a, before, "n {n}, step {step}: the step moved nothing");
            let (mf, mb) = (
                &s_fused.as_ref().unwrap().momentum,
                &s_burn.as_ref().unwrap().momentum,
            );
            assert_eq!(mf.time, mb.time);
            assert_eq!(
                host(mf.moment_1.clone()),
                host(mb.moment_1.clone()),
                "first moment"
            );
            assert_eq!(
                host(mf.moment_2.clone()),
                host(mb.moment_2.clone()),
                "second moment"
            );
        }
    }
}

/// bf16 products (AMX) against fp32 on the model's shapes: the fused training op's output and
/// gradients, and the inference pass, differ from fp32 by at most [`BF16_TOLERANCE`] (relative
/// to max(1, |value|)) and the gradients by at most `BF16_RMS` of their RMS: bf16 keeps 8
/// significant bits, so each input is off by up to 2^-9 of itself and the errors of a sum of K
/// products partly cancel; a pool window whose maximum is a near tie may pick another element,
/// and a ReLU input near zero may change side, each moving one gradient whole. Measured here:
/// conv2's gradients 4.7 % RMS off (2 % for the bias, a sum of random upstream values that
/// mostly cancel); conv1's, whose forward stays fp32 so nothing flips, 0.25 % (rounding alone). The products themselves are checked exactly against
/// bf16-rounded sums in `gemm_bf16`'s unit test.
#[test]
fn bf16_products_stay_within_their_tolerance_of_fp32() {
    const BF16_TOLERANCE: f32 = 2e-2;
    const BF16_RMS: f64 = 0.1;
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !kernels::gemm_bf16::available() {
        eprintln!("skipped: this CPU has no AMX bf16 (fp32 only)");
        return;
    }
    let device = Device::default().autodiff();
    for (input, out_channels) in [([24, 32, 26, 26], 64), ([8, 1, 28, 28], 32)] {
        let conv = {
            let _turn = DEVICE_RNG.lock().unwrap_or_else(|e| e.into_inner());
            device.seed(7);
            Conv2dConfig::new([input[1], out_channels], [3, 3]).init(&device)
        };
        let x = random(input, 3, &device);
        let drop = burn::nn::DropoutConfig::new(0.25).init();
        // burn initialises the parameters on first read, from the device generator the dropout
        // mask also draws from: a first run does that, so both timed runs draw the same mask.
        conv_pool_run(&conv, &drop, &x, true, 40);
        let fp32 = conv_pool_run(&conv, &drop, &x, true, 40);
        let bf16 = {
            let _bf16 = kernels::PrecisionScope::set(kernels::Precision::Bf16).unwrap();
            assert_eq!(kernels::precision(), kernels::Precision::Bf16);
            conv_pool_run(&conv, &drop, &x, true, 40)
        };
        assert_eq!(
            kernels::precision(),
            kernels::Precision::F32,
            "the scope restores"
        );
        let name = format!("bf16 {input:?} -> {out_channels}");
        // conv1's forward products are 9 long, too short for AMX to pay: they stay fp32, and
        // only its gradients (676 long) move. conv2's outputs move too, by rounding only.
        assert_eq!(bf16.0 == fp32.0, input[1] == 1, "{name}: forward in bf16");
        assert!(bf16.2 != fp32.2, "{name}: weight gradient in bf16");
        max_error_within(&format!("{name}: output"), &bf16.0, &fp32.0, BF16_TOLERANCE);
        rms_error_within(
            &format!("{name}: input gradient"),
            &bf16.1,
            &fp32.1,
            BF16_RMS,
        );
        rms_error_within(
            &format!("{name}: weight gradient"),
            &bf16.2,
            &fp32.2,
            BF16_RMS,
        );
        rms_error_within(
            &format!("{name}: bias gradient"),
            &bf16.3,
            &fp32.3,
            BF16_RMS,
        );
    }
    // Inference of the whole network: embeddings within the same tolerance.
    let model = {
        let _turn = DEVICE_RNG.lock().unwrap_or_else(|e| e.into_inner());
        let plain = Device::default();
        plain.seed(11);
        EmbeddingCnnConfig::new().init(&plain).unwrap()
    };
    let images = random([64, 1, 28, 28], 5, &Device::default());
    let fp32 = host(model.forward(images.clone()));
    let bf16 = {
        let _bf16 = kernels::PrecisionScope::set(kernels::Precision::Bf16).unwrap();
        host(model.forward(images))
    };
    assert!(bf16 != fp32, "bf16 changed no embedding");
    max_error_within("bf16 embeddings", &bf16, &fp32, BF16_TOLERANCE);
}

#[test]
fn two_convolutions_and_the_pool_in_one_inference_pass_match_burn() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let device = Device::default();
    let pool = MaxPool2dConfig::new([2, 2]).init();
    let drop = burn::nn::DropoutConfig::new(0.25).init();
    for (input, mid, out, k1, k2) in [
        ([3, 1, 28, 28], 32, 64, [3, 3], [3, 3]),
        ([2, 3, 11, 9], 4, 5, [3, 3], [2, 2]),
        ([1, 2, 8, 7], 3, 4, [2, 1], [3, 3]),
        // A second kernel wider than tall and one taller than wide, on odd sizes.
        ([2, 1, 10, 13], 6, 7, [3, 3], [2, 4]),
        ([2, 1, 9, 9], 5, 3, [2, 2], [4, 1]),
    ] {
        let (conv1, conv2) = {
            let _turn = DEVICE_RNG.lock().unwrap_or_else(|e| e.into_inner());
            device.seed(9);
            (
                Conv2dConfig::new([input[1], mid], k1).init(&device),
                Conv2dConfig::new([mid, out], k2).init(&device),
            )
        };
        let x = random(input, 4, &device);
        let before = fast_kernel_calls();
        let fast = host(with_kernel_path(Kernels::Im2col, || {
            kernels::two_conv2d_relu_pool_dropout(&conv1, &conv2, &pool, &drop, x.clone())
        }));
        assert_eq!(fast_kernel_calls(), before + 1, "one fused call");
        let plain = host(pool.forward(relu(conv2.forward(relu(conv1.forward(x))))));
        max_error(
            &format!("two convs {input:?} -> {mid} -> {out}"),
            &fast,
            &plain,
        );
        assert!(plain.iter().any(|v| *v > 0.0), "all outputs cut by ReLU");
    }
}

#[test]
fn inference_max_pool_matches_burn_for_any_window_and_stride() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let device = Device::default();
    for (shape, k, stride) in [
        ([2, 32, 72, 72], 3, 2),
        ([1, 3, 9, 8], 3, 2),
        ([2, 2, 7, 5], 2, 1),
        ([1, 1, 3, 3], 3, 3),
    ] {
        let x = random(shape, 8, &device);
        let before = fast_kernel_calls();
        let fast = host(with_kernels(true, || {
            kernels::max_pool2d_infer(x.clone(), k, stride)
        }));
        assert_eq!(fast_kernel_calls(), before + 1);
        let options = burn::tensor::ops::MaxPoolOptions::new([k, k]).with_stride([stride, stride]);
        let plain = host(burn::tensor::module::max_pool2d(x, options));
        max_error(&format!("max-pool {shape:?} k{k} s{stride}"), &fast, &plain);
    }
}
