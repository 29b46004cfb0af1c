//! The inference-only convolution (`siamese::kernels::conv2d_bias`, used by the face ResNet)
//! against burn's `conv2d`. It needs no turn-taking on burn's device state, so it runs apart from
//! the serialised training-kernel tests of `kernels.rs`.

use burn::tensor::Device;

use siamese::kernels::{self, fast_kernel_calls, with_kernel_path, Kernels};

#[path = "common/tensors.rs"]
mod tensors;
use tensors::{host, max_error, random};

/// The inference convolution (`kernels::conv2d_bias`) equals burn's `conv2d` on the face
/// ResNet's geometries: the 7x7/2 stem, 3x3 "same" convolutions and 3x3/2 "valid" downsampling.
#[test]
fn inference_conv_matches_burn_on_face_network_shapes() {
    let device = Device::default();
    let cases = [
        ([2, 3, 40, 40], 8, 7, 2, 0),
        ([2, 16, 18, 18], 16, 3, 1, 1),
        ([2, 16, 18, 18], 32, 3, 2, 0),
        ([1, 32, 9, 9], 32, 3, 1, 1),
    ];
    for (i, (input, out_channels, k, stride, padding)) in cases.into_iter().enumerate() {
        let seed = 100 + 3 * i as u64;
        let x = random(input, seed, &device);
        let w = random([out_channels, input[1], k, k], seed + 1, &device);
        let b = random([out_channels], seed + 2, &device);
        for relu_after in [false, true] {
            let run = |path| {
                with_kernel_path(path, || {
                    host(kernels::conv2d_bias(
                        x.clone(),
                        w.clone(),
                        b.clone(),
                        [stride; 2],
                        [padding; 2],
                        relu_after,
                    ))
                })
            };
            let before = fast_kernel_calls();
            let fast = run(Kernels::Im2col);
            assert!(fast_kernel_calls() > before, "the fast path did not run");
            let plain = run(Kernels::Plain);
            max_error(
                &format!("conv {k}x{k}/{stride} pad {padding} relu {relu_after}"),
                &fast,
                &plain,
            );
        }
    }
}
