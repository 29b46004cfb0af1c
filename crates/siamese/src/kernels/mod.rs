//! Fast CPU kernels for the seeds' CNN on burn's flex backend: a fused "valid" convolution +
//! bias + ReLU (`[N, C, H, W] → [N, O, H-KH+1, W-KW+1]`) and a 2x2 max-pool
//! (`[N, C, H, W] → [N, C, H/2, W/2]`), each with its own backward step in burn's autodiff graph,
//! and a dropout whose mask is a counter-based hash (recomputed, not stored, for the backward).
//!
//! Models call [`conv2d_relu`] and [`max_pool2d`] with their plain burn modules (`Conv2d`,
//! `MaxPool2d`); these take the fast path when it applies (f32 flex tensors, stride 1, no padding,
//! no dilation, one group, a bias; a 2x2 stride-2 pool) and the switch is on, and otherwise run
//! exactly burn's own `relu(conv.forward(x))` / `pool.forward(x)`.
//!
//! [`conv2d_bias`] is the inference-only convolution (any kernel, stride, zero padding; no
//! backward) that pretrained networks such as dlib's face ResNet run through.
//!
//! The switch ([`Kernels`]): [`set_kernels`] (process-wide), [`with_kernel_path`] (one thread, one
//! closure), or the environment variable `SIAMESE_KERNELS` read on first use: `im2col` (the
//! default, also `fast`: im2col + GEMM), `winograd` (Winograd F(2x2, 3x3) for 3x3 convolutions
//! with 4+ input channels, im2col for the others) or `plain`.

pub mod adam;
mod buffer;
pub mod conv;
pub mod conv_infer;
pub mod conv_pool;
pub mod conv_pool_hwc;
pub mod dense;
pub mod depthwise;
pub mod dropout;
pub mod face_resnet_hwc;
mod flex_ops;
mod gemm;
pub mod gemm_bf16;
mod inference;
pub mod inverted_residual;
pub use gemm::{precision, set_precision, Precision, PrecisionScope};
pub mod pool;
#[cfg(target_arch = "x86_64")]
mod pool_avx512;
pub mod simd;
pub mod winograd;
mod winograd_rows;

use std::cell::Cell;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

use burn::backend::{DispatchAutodiffContext, DispatchTensorKind, GradientCheckpointingStrategy};
use burn::nn::conv::Conv2d;
use burn::nn::pool::MaxPool2d;
use burn::nn::{Dropout, Linear, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Distribution, Tensor};

pub use inference::{
    conv2d_bias, conv2d_bias_add_relu, conv2d_bias_then, depthwise_conv2d_bias,
    fused_face_embeddings, fused_face_pass_on, fused_mobilenet_features, max_pool2d_infer,
    Activation,
};

/// Calls that took a fast kernel (lets tests and the benchmark check that the fast path ran).
static FAST_CALLS: AtomicUsize = AtomicUsize::new(0);

/// How many calls of [`conv2d_relu`] and [`max_pool2d`] took a fast kernel in this process.
pub fn fast_kernel_calls() -> usize {
    FAST_CALLS.load(Ordering::Relaxed)
}

/// Which convolution path models take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernels {
    /// Fused kernels; 3x3 convolutions with 4+ input channels use Winograd F(2x2, 3x3).
    Winograd,
    /// Fused kernels; every convolution uses im2col + GEMM.
    Im2col,
    /// burn's own layers.
    Plain,
}

impl Kernels {
    /// The name used by `SIAMESE_KERNELS` and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Kernels::Winograd => "winograd",
            Kernels::Im2col => "im2col",
            Kernels::Plain => "plain",
        }
    }

    /// Parses a `SIAMESE_KERNELS` value (`fast` = [`DEFAULT`], `winograd`, `im2col`, `plain`).
    pub fn parse(name: &str) -> Option<Kernels> {
        match name.trim() {
            "fast" => Some(DEFAULT),
            "winograd" => Some(Kernels::Winograd),
            "im2col" => Some(Kernels::Im2col),
            "plain" => Some(Kernels::Plain),
            _ => None,
        }
    }

    fn code(self) -> u8 {
        match self {
            Kernels::Winograd => 1,
            Kernels::Im2col => 2,
            Kernels::Plain => 3,
        }
    }
}

/// The path taken when nothing chooses one.
pub const DEFAULT: Kernels = Kernels::Im2col;

/// 0: not decided yet (read the environment), else [`Kernels::code`].
static MODE: AtomicU8 = AtomicU8::new(0);

/// Chooses the path for the whole process.
pub fn set_kernels(kernels: Kernels) {
    MODE.store(kernels.code(), Ordering::Relaxed);
}

/// Turns the fast kernels on (Winograd) or off (plain) for the whole process.
pub fn set_fast_kernels(on: bool) {
    set_kernels(if on {
        Kernels::Winograd
    } else {
        Kernels::Plain
    });
}

thread_local! {
    /// A per-thread choice that overrides [`MODE`] (see [`with_kernels`]).
    static OVERRIDE: Cell<Option<Kernels>> = const { Cell::new(None) };
}

/// Runs `f` with `kernels` on this thread only (tests and the benchmark compare paths in one
/// process without touching the process-wide choice). The choice is read when a layer runs
/// forward; its backward step follows that choice.
pub fn with_kernel_path<T>(kernels: Kernels, f: impl FnOnce() -> T) -> T {
    let before = OVERRIDE.with(|o| o.replace(Some(kernels)));
    let out = f();
    OVERRIDE.with(|o| o.set(before));
    out
}

/// [`with_kernel_path`] with the default fast path (`true`) or burn's plain layers (`false`).
pub fn with_kernels<T>(fast: bool, f: impl FnOnce() -> T) -> T {
    with_kernel_path(
        if fast {
            Kernels::Winograd
        } else {
            Kernels::Plain
        },
        f,
    )
}

/// The path models take now: the thread's override, else the process-wide choice, else
/// `SIAMESE_KERNELS`, else [`DEFAULT`].
pub fn kernels() -> Kernels {
    if let Some(k) = OVERRIDE.with(|o| o.get()) {
        return k;
    }
    match MODE.load(Ordering::Relaxed) {
        1 => Kernels::Winograd,
        2 => Kernels::Im2col,
        3 => Kernels::Plain,
        _ => {
            let k = std::env::var("SIAMESE_KERNELS")
                .ok()
                .and_then(|v| Kernels::parse(&v))
                .unwrap_or(DEFAULT);
            set_kernels(k);
            k
        }
    }
}

/// What one layer (or fused group of layers) of the seeds' CNN runs, for reports.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LayerPath {
    pub layers: String,
    pub training: String,
    pub inference: String,
}

/// The paths the seeds' CNN ([`crate::model::embedding_cnn`]) takes now, from [`kernels`] and
/// [`simd::level`]: the `gemm` crate picks its own micro-kernel (AVX-512 F where the CPU has
/// it, else AVX2 + FMA) at run time.
pub fn embedding_cnn_paths() -> Vec<LayerPath> {
    let loops = simd::level().name();
    let row = |layers: &str, training: String, inference: String| LayerPath {
        layers: layers.into(),
        training,
        inference,
    };
    let burn = || "burn 0.22.1 (flex)".to_string();
    match kernels() {
        Kernels::Plain => vec![
            row("conv1, conv2 + ReLU", burn(), burn()),
            row("max-pool, dropout", burn(), burn()),
            row("dense + ReLU + dropout, output", burn(), burn()),
        ],
        Kernels::Winograd => vec![
            row("conv1 + ReLU", format!("im2col + gemm, {loops} loops"), format!("im2col + gemm, {loops} loops")),
            row("conv2 + ReLU", "Winograd F(2x2,3x3) + gemm".into(), "Winograd F(2x2,3x3) + gemm".into()),
            row("max-pool, dropout", format!("own kernels, {loops} loops"), format!("own kernels, {loops} loops")),
            row("dense + ReLU + dropout, output", format!("fused dense + ReLU + hashed dropout, gemm split across threads ({loops})"), "fused dense + ReLU, gemm split across threads".into()),
        ],
        Kernels::Im2col => vec![
            row(
                "conv1 + ReLU",
                format!("im2col + gemm, {loops} loops"),
                format!("fused with conv2 + pool, one pass per image, {loops} loops"),
            ),
            row(
                "conv2 + ReLU + max-pool + dropout",
                format!("fused per image: im2col + gemm + pool + mask ({loops}); backward from index bytes"),
                format!("fused with conv1, pixel-major: gemm over shifted rows (no im2col) + pool ({loops})"),
            ),
            row("dense + ReLU + dropout, output", format!("fused dense + ReLU + hashed dropout, gemm split across threads ({loops})"), "fused dense + ReLU, gemm split across threads".into()),
        ],
    }
}

/// Whether models take the fused kernels at all.
pub fn fast_kernels() -> bool {
    kernels() != Kernels::Plain
}

/// Names the path [`kernels`] selects, for reports.
pub fn kernels_name() -> &'static str {
    kernels().name()
}

/// Where a set of tensors can run the fast path: `Some(autodiff)` when they are all f32 flex
/// tensors and their autodiff contexts agree (all off, or all on without checkpointing).
fn fast_context<const D: usize>(tensors: &[&Tensor<D>]) -> Option<bool> {
    let mut autodiff = None;
    for t in tensors {
        if !flex_ops::is_f32(t.dtype()) {
            return None;
        }
        let d = (*t).clone().into_dispatch();
        let flex = match &d.kind {
            DispatchTensorKind::Autodiff(inner) => matches!(**inner, DispatchTensorKind::Flex(_)),
            kind => matches!(kind, DispatchTensorKind::Flex(_)),
        };
        if !flex {
            return None;
        }
        let on = match d.autodiff {
            DispatchAutodiffContext::Disabled => false,
            DispatchAutodiffContext::Enabled(GradientCheckpointingStrategy::Disabled) => true,
            DispatchAutodiffContext::Enabled(_) => return None,
        };
        if *autodiff.get_or_insert(on) != on {
            return None;
        }
    }
    autodiff
}

/// Whether `conv` on an input of height `h` and width `w` has the fused kernels' geometry:
/// stride 1, no dilation, one group, no padding, a kernel that fits.
fn plain_conv_geometry(conv: &Conv2d, h: usize, w: usize) -> bool {
    let [kh, kw] = conv.kernel_size;
    conv.stride == [1, 1]
        && conv.dilation == [1, 1]
        && conv.groups == 1
        && matches!(
            conv.padding,
            PaddingConfig2d::Valid | PaddingConfig2d::Explicit(0, 0, 0, 0)
        )
        && h >= kh
        && w >= kw
}

/// The autodiff context shared by `x` and `conv`'s weight and bias when the fused convolution
/// kernels apply to them (the fast path is on, the geometry fits, a bias, f32 flex tensors).
fn fast_conv_context(conv: &Conv2d, x: &Tensor<4>) -> Option<bool> {
    let [_, _, h, w] = x.dims();
    let bias = conv.bias.as_ref()?;
    if !fast_kernels() || !plain_conv_geometry(conv, h, w) {
        return None;
    }
    let (autodiff, bias_autodiff) =
        fast_context(&[x, &conv.weight.val()]).zip(fast_context(&[&bias.val()]))?;
    (autodiff == bias_autodiff).then_some(autodiff)
}

/// `relu(conv.forward(x))` for `x [N, C, H, W]`, through the fused kernel when it applies.
pub fn conv2d_relu(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    if let Some(autodiff) = fast_conv_context(conv, &x) {
        let bias = conv.bias.as_ref().expect("checked: a bias").val();
        FAST_CALLS.fetch_add(1, Ordering::Relaxed);
        let winograd = kernels() == Kernels::Winograd;
        return flex_ops::conv2d_relu(x, conv.weight.val(), bias, autodiff, winograd);
    }
    relu(conv.forward(x))
}

/// `drop.forward(pool.forward(relu(conv.forward(x))))` for `x [N, C, H, W]`: one fused pass
/// ([`conv_pool`]) on the im2col path when the convolution and the 2x2 pool both take the fast
/// kernels; otherwise [`dropout`] of [`max_pool2d`] of [`conv2d_relu`]. Both draw the dropout
/// seed the same way, so they give the same result within float rounding.
pub fn conv2d_relu_pool_dropout(
    conv: &Conv2d,
    pool: &MaxPool2d,
    drop: &Dropout,
    x: Tensor<4>,
) -> Tensor<4> {
    let fused = kernels() == Kernels::Im2col && pool_is_2x2(pool);
    if let (true, Some(autodiff)) = (fused, fast_conv_context(conv, &x)) {
        if let Some(drop_mask) = fused_drop_mask(drop, &x, autodiff) {
            let bias = conv.bias.as_ref().expect("checked: a bias").val();
            FAST_CALLS.fetch_add(1, Ordering::Relaxed);
            return flex_ops::conv2d_relu_pool(x, conv.weight.val(), bias, autodiff, drop_mask);
        }
    }
    dropout(drop, max_pool2d(pool, conv2d_relu(conv, x)))
}

/// `drop.forward(pool.forward(relu(conv2.forward(relu(conv1.forward(x))))))`: for inference
/// (no autodiff, dropout off) on the im2col path, one pass per image that keeps the first
/// convolution's output in cache ([`conv_pool_hwc::two_conv_relu_pool_hwc`]); otherwise
/// [`conv2d_relu_pool_dropout`] of [`conv2d_relu`].
pub fn two_conv2d_relu_pool_dropout(
    conv1: &Conv2d,
    conv2: &Conv2d,
    pool: &MaxPool2d,
    drop: &Dropout,
    x: Tensor<4>,
) -> Tensor<4> {
    let [_, _, h, w] = x.dims();
    let [kh, kw] = conv1.kernel_size;
    // conv1's parameters are read before conv2's: burn initialises parameters lazily, on first
    // use, from the device's generator, so the order of first reads decides their values.
    let fits = kernels() == Kernels::Im2col
        && pool_is_2x2(pool)
        && !dropout_trains(drop, &x)
        && h >= kh
        && w >= kw
        && fast_conv_context(conv1, &x) == Some(false)
        && conv2.weight.dims()[1] == conv1.weight.dims()[0]
        && plain_conv_geometry(conv2, h + 1 - kh, w + 1 - kw);
    if let (true, Some(b1), Some(b2)) = (fits, conv1.bias.as_ref(), conv2.bias.as_ref()) {
        let (w2, b2) = (conv2.weight.val(), b2.val());
        if fast_context(&[&w2]) == Some(false) && fast_context(&[&b2]) == Some(false) {
            FAST_CALLS.fetch_add(1, Ordering::Relaxed);
            return flex_ops::two_conv_relu_pool(x, (conv1.weight.val(), b1.val()), (w2, b2));
        }
    }
    conv2d_relu_pool_dropout(conv2, pool, drop, conv2d_relu(conv1, x))
}

/// Whether `pool` is the 2x2 stride-2 pool of the fast kernel.
fn pool_is_2x2(pool: &MaxPool2d) -> bool {
    pool.kernel_size == [2, 2]
        && pool.stride == [2, 2]
        && pool.dilation == [1, 1]
        && !pool.ceil_mode
        && matches!(
            pool.padding,
            PaddingConfig2d::Valid | PaddingConfig2d::Explicit(0, 0, 0, 0)
        )
}

/// `pool.forward(x)` for `x [N, C, H, W]`, through the fast kernel for a 2x2 stride-2 pool.
pub fn max_pool2d(pool: &MaxPool2d, x: Tensor<4>) -> Tensor<4> {
    if fast_kernels() && pool_is_2x2(pool) {
        if let Some(autodiff) = fast_context(&[&x]) {
            FAST_CALLS.fetch_add(1, Ordering::Relaxed);
            return flex_ops::max_pool2x2(x, autodiff);
        }
    }
    pool.forward(x)
}

/// Whether `drop` masks `x` now: training, a probability above 0, an autodiff device.
fn dropout_trains<const D: usize>(drop: &Dropout, x: &Tensor<D>) -> bool {
    drop.training.is_enabled() && drop.prob > 0.0 && x.device().is_autodiff()
}

/// The dropout a fused kernel applies to `x`: `Some(None)` when `drop` does not mask now,
/// `Some(mask)` when it trains on an autodiff tensor, and `None` (do not fuse) when it trains on
/// a tensor without autodiff, which the separate dropout kernel would not mask either, or when
/// the draw failed.
fn fused_drop_mask<const D: usize>(
    drop: &Dropout,
    x: &Tensor<D>,
    autodiff: bool,
) -> Option<Option<conv_pool::DropMask>> {
    match (dropout_trains(drop, x), autodiff) {
        (false, _) => Some(None),
        (true, true) => draw_drop_mask(drop, &x.device()).map(Some),
        (true, false) => None,
    }
}

/// The hashed mask of one dropout call, its 32-bit seed from two 24-bit uniform draws of the
/// device's generator (`None` if the draw failed).
fn draw_drop_mask(drop: &Dropout, device: &Device) -> Option<conv_pool::DropMask> {
    let draws = Tensor::<1>::random([2], Distribution::Default, device)
        .into_data()
        .try_to_vec::<f32>()
        .unwrap_or_default();
    let [a, b] = draws[..] else { return None };
    let keep = 1.0 - drop.prob;
    Some(conv_pool::DropMask {
        seed: ((a * 16_777_216.0) as u32) ^ (((b * 16_777_216.0) as u32) << 8),
        threshold: self::dropout::keep_threshold(keep),
        scale: (1.0 / keep) as f32,
    })
}

/// `drop.forward(relu(dense.forward(x)))` for `x [B, I]`: one fused pass ([`dense`]: each
/// product split across the rayon pool, ReLU and the hashed mask on the output while it is in
/// cache) when the fast kernels are on and `x`, the weight and the bias are f32 flex tensors in
/// one autodiff context; otherwise [`dropout`] of burn's layer and ReLU. Both draw the dropout
/// seed the same way, after reading the layer's parameters, so they give the same result within
/// float rounding.
pub fn dense_relu_dropout(dense: &Linear, drop: &Dropout, x: Tensor<2>) -> Tensor<2> {
    if fast_kernels() {
        if let Some(bias) = dense.bias.as_ref() {
            let (w, b) = (dense.weight.val(), bias.val());
            let context = fast_context(&[&x, &w])
                .zip(fast_context(&[&b]))
                .and_then(|(a, b)| (a == b).then_some(a));
            let mask = context.and_then(|autodiff| fused_drop_mask(drop, &x, autodiff));
            if let (Some(autodiff), Some(mask)) = (context, mask) {
                FAST_CALLS.fetch_add(1, Ordering::Relaxed);
                return flex_ops::dense_relu_dropout(x, w, b, autodiff, mask);
            }
        }
    }
    dropout(drop, relu(dense.forward(x)))
}

/// `drop.forward(x)`; while training on an autodiff flex device, through the hashed-mask kernel
/// ([`dropout`]) seeded from the device's random generator (so deterministic under
/// `device.seed`, but not the same mask as burn's `Dropout`). Inference: the identity, as burn's.
pub fn dropout<const D: usize>(drop: &Dropout, x: Tensor<D>) -> Tensor<D> {
    if fast_kernels() && dropout_trains(drop, &x) && fast_context(&[&x]) == Some(true) {
        if let Some(mask) = draw_drop_mask(drop, &x.device()) {
            FAST_CALLS.fetch_add(1, Ordering::Relaxed);
            return flex_ops::dropout(x, mask);
        }
    }
    drop.forward(x)
}
