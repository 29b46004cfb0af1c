//! The fast kernels as burn operations on the flex backend: a plain `Flex` version (inference) and
//! an `Autodiff<Flex>` version that registers its own backward step in burn's autodiff graph.
//!
//! Shapes as in [`super::conv`] and [`super::pool`]. Tensors cross in and out through burn's
//! backend-extension API (`Tensor::try_into_primitive` / `Tensor::from_primitive`); the caller
//! ([`super`]) has already checked that all inputs are f32 flex tensors in one autodiff context.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::NodeId;
use burn::backend::flex::FlexTensor;
use burn::backend::{Autodiff, Flex};
use burn::tensor::{DType, Shape, Tensor, TensorData};

use super::conv::{conv_relu_backward, conv_relu_forward, ConvReluGrads, ConvShape, Wanted};
use super::conv_infer::{conv_forward, Epilogue, InferConvShape};
use super::conv_pool::{conv_relu_pool_backward, conv_relu_pool_forward, DropMask};
use super::conv_pool_hwc::two_conv_relu_pool_hwc;
use super::dense::{dense_relu_backward, dense_relu_forward, DenseShape};
use super::dropout::apply_mask;
use super::pool::{max_pool2x2_backward, max_pool2x2_forward, max_pool_forward, PoolShape};
use super::winograd;

/// Autodiff on flex without gradient checkpointing (what `Device::autodiff()` gives).
type AdFlex = Autodiff<Flex, NoCheckpointing>;

/// The elements of a flex f32 tensor in row-major order (borrowed when already contiguous).
fn values(t: &FlexTensor) -> std::borrow::Cow<'_, [f32]> {
    match t.as_slice::<f32>() {
        Some(s) => std::borrow::Cow::Borrowed(s),
        None => std::borrow::Cow::Owned(t.to_contiguous().as_slice::<f32>().unwrap().to_vec()),
    }
}

fn flex_tensor(data: Vec<f32>, shape: Vec<usize>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(data, Shape::from(shape)))
}

fn dims(t: &FlexTensor) -> Vec<usize> {
    burn::backend::TensorMetadata::shape(t).to_vec()
}

fn conv_shape(x: &FlexTensor, w: &FlexTensor) -> ConvShape {
    let (xs, ws) = (dims(x), dims(w));
    ConvShape {
        batch: xs[0],
        in_channels: xs[1],
        height: xs[2],
        width: xs[3],
        out_channels: ws[0],
        kernel_h: ws[2],
        kernel_w: ws[3],
    }
}

fn conv_forward_flex(x: &FlexTensor, w: &FlexTensor, b: &FlexTensor, winograd: bool) -> FlexTensor {
    let s = conv_shape(x, w);
    let y = if winograd && winograd::applies(&s) {
        winograd::forward(&s, &values(x), &values(w), &values(b))
    } else {
        conv_relu_forward(&s, &values(x), &values(w), &values(b))
    };
    flex_tensor(y, vec![s.batch, s.out_channels, s.out_h(), s.out_w()])
}

fn pool_shape(x: &FlexTensor) -> (PoolShape, [usize; 4]) {
    let d = dims(x);
    let s = PoolShape {
        planes: d[0] * d[1],
        height: d[2],
        width: d[3],
    };
    (s, [d[0], d[1], s.out_h(), s.out_w()])
}

fn pool_forward_flex(x: &FlexTensor) -> FlexTensor {
    let (s, out) = pool_shape(x);
    flex_tensor(max_pool2x2_forward(&s, &values(x)), out.to_vec())
}

/// Input, weight and bias of a convolution as flex tensors (the caller checked they are).
fn flex_inputs(x: Tensor<4>, w: Tensor<4>, b: Tensor<1>) -> (FlexTensor, FlexTensor, FlexTensor) {
    (
        x.try_into_primitive::<Flex>().expect("checked: flex"),
        w.try_into_primitive::<Flex>().expect("checked: flex"),
        b.try_into_primitive::<Flex>().expect("checked: flex"),
    )
}

/// A tensor as an autodiff flex primitive (the caller checked that it is one).
macro_rules! autodiff_flex {
    ($t:expr) => {
        $t.try_into_primitive::<AdFlex>()
            .expect("checked: autodiff flex")
    };
}

/// Registers the gradients a convolution's backward computed for the parents that want them.
fn register_conv_grads(
    grads: &mut Gradients,
    nodes: [Option<NodeId>; 3],
    g: ConvReluGrads,
    dims: [Vec<usize>; 3],
) {
    register_grads(grads, nodes, [g.x, g.weight, g.bias], dims);
}

/// Registers the gradients of input, weight and bias (each with its shape) for the parents that
/// want them.
fn register_grads(
    grads: &mut Gradients,
    [node_x, node_w, node_b]: [Option<NodeId>; 3],
    [gx, gw, gb]: [Option<Vec<f32>>; 3],
    [x_dims, w_dims, b_dims]: [Vec<usize>; 3],
) {
    for (node, values, shape) in [
        (node_x, gx, x_dims),
        (node_w, gw, w_dims),
        (node_b, gb, b_dims),
    ] {
        if let (Some(node), Some(values)) = (node, values) {
            grads.register::<Flex>(node, flex_tensor(values, shape));
        }
    }
}

/// Backward step of the fused convolution + bias + ReLU.
#[derive(Debug)]
struct ConvReluBackward;

impl Backward<Flex, 3> for ConvReluBackward {
    /// Input, weight and output (ReLU's mask) of the forward pass, and whether it took Winograd.
    type State = (FlexTensor, FlexTensor, FlexTensor, bool);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_w, node_b] = ops.parents;
        let gy = grads.consume::<Flex>(&ops.node);
        let (x, w, y, winograd) = ops.state;
        let s = conv_shape(&x, &w);
        let wanted = Wanted {
            x: node_x.is_some(),
            weight: node_w.is_some(),
            bias: node_b.is_some(),
        };
        let (x_v, w_v, y_v, gy_v) = (values(&x), values(&w), values(&y), values(&gy));
        let g = if winograd && winograd::applies(&s) {
            winograd::backward(&s, &x_v, &w_v, &y_v, &gy_v, wanted)
        } else {
            conv_relu_backward(&s, &x_v, &w_v, &y_v, &gy_v, wanted)
        };
        register_conv_grads(
            grads,
            [node_x, node_w, node_b].map(|n| n.map(|n| n.id)),
            g,
            [dims(&x), dims(&w), vec![s.out_channels]],
        );
    }
}

/// Backward step of the 2x2 max-pool.
#[derive(Debug)]
struct MaxPoolBackward;

impl Backward<Flex, 1> for MaxPoolBackward {
    /// Input of the forward pass (the arg-max is recomputed from it).
    type State = FlexTensor;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x] = ops.parents;
        let gy = grads.consume::<Flex>(&ops.node);
        if let Some(node) = node_x {
            let x = ops.state;
            let (s, _) = pool_shape(&x);
            let gx = max_pool2x2_backward(&s, &values(&x), &values(&gy));
            grads.register::<Flex>(node.id, flex_tensor(gx, dims(&x)));
        }
    }
}

/// `relu(conv2d(x, w) + b)` on flex tensors, with or without autodiff (`autodiff` says which).
pub(super) fn conv2d_relu(
    x: Tensor<4>,
    w: Tensor<4>,
    b: Tensor<1>,
    autodiff: bool,
    winograd: bool,
) -> Tensor<4> {
    if !autodiff {
        let (x, w, b) = flex_inputs(x, w, b);
        return Tensor::from_primitive::<Flex>(conv_forward_flex(&x, &w, &b, winograd));
    }
    let (x, w, b) = (autodiff_flex!(x), autodiff_flex!(w), autodiff_flex!(b));
    let prep = ConvReluBackward
        .prepare::<NoCheckpointing>([x.node(), w.node(), b.node()])
        .compute_bound()
        .stateful();
    let y = conv_forward_flex(x.primitive(), w.primitive(), b.primitive(), winograd);
    let out = match prep {
        OpsKind::Tracked(prep) => prep.finish(
            (
                x.primitive().clone(),
                w.primitive().clone(),
                y.clone(),
                winograd,
            ),
            y,
        ),
        OpsKind::UnTracked(prep) => prep.finish(y),
    };
    Tensor::from_primitive::<AdFlex>(out)
}

/// Backward step of the fused convolution + bias + ReLU + 2x2 max-pool (+ dropout).
#[derive(Debug)]
struct ConvPoolBackward;

impl Backward<Flex, 3> for ConvPoolBackward {
    /// Input and weight of the forward pass, its index bytes and the dropout scale.
    type State = (FlexTensor, FlexTensor, Vec<u8>, f32);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_w, node_b] = ops.parents;
        let g_out = grads.consume::<Flex>(&ops.node);
        let (x, w, index, scale) = ops.state;
        let s = conv_shape(&x, &w);
        let wanted = Wanted {
            x: node_x.is_some(),
            weight: node_w.is_some(),
            bias: node_b.is_some(),
        };
        let g = conv_relu_pool_backward(
            &s,
            &values(&x),
            &values(&w),
            &index,
            scale,
            &values(&g_out),
            wanted,
        );
        register_conv_grads(
            grads,
            [node_x, node_w, node_b].map(|n| n.map(|n| n.id)),
            g,
            [dims(&x), dims(&w), vec![s.out_channels]],
        );
    }
}

/// `dropout(max_pool2x2(relu(conv2d(x, w) + b)))` on flex tensors in one pass (see
/// [`super::conv_pool`]); `drop` is `None` when dropout is off (inference, or probability 0).
pub(super) fn conv2d_relu_pool(
    x: Tensor<4>,
    w: Tensor<4>,
    b: Tensor<1>,
    autodiff: bool,
    drop: Option<DropMask>,
) -> Tensor<4> {
    let shape_of = |x: &FlexTensor, w: &FlexTensor| {
        let s = conv_shape(x, w);
        (
            s,
            vec![s.batch, s.out_channels, s.out_h() / 2, s.out_w() / 2],
        )
    };
    if !autodiff {
        let (x, w, b) = flex_inputs(x, w, b);
        let (s, out_dims) = shape_of(&x, &w);
        let (out, _) =
            conv_relu_pool_forward(&s, &values(&x), &values(&w), &values(&b), drop, false);
        return Tensor::from_primitive::<Flex>(flex_tensor(out, out_dims));
    }
    let (x, w, b) = (autodiff_flex!(x), autodiff_flex!(w), autodiff_flex!(b));
    let prep = ConvPoolBackward
        .prepare::<NoCheckpointing>([x.node(), w.node(), b.node()])
        .compute_bound()
        .stateful();
    let (s, out_dims) = shape_of(x.primitive(), w.primitive());
    let tracked = matches!(prep, OpsKind::Tracked(_));
    let (out, index) = conv_relu_pool_forward(
        &s,
        &values(x.primitive()),
        &values(w.primitive()),
        &values(b.primitive()),
        drop,
        tracked,
    );
    let out = flex_tensor(out, out_dims);
    let scale = drop.map_or(1.0, |mask| mask.scale);
    let out = match prep {
        OpsKind::Tracked(prep) => prep.finish(
            (x.primitive().clone(), w.primitive().clone(), index, scale),
            out,
        ),
        OpsKind::UnTracked(prep) => prep.finish(out),
    };
    Tensor::from_primitive::<AdFlex>(out)
}

/// `max_pool2x2(relu(conv2d(relu(conv2d(x, w1) + b1), w2) + b2))` on flex tensors without
/// autodiff, in one pass per image (see [`super::conv_pool_hwc::two_conv_relu_pool_hwc`]).
pub(super) fn two_conv_relu_pool(
    x: Tensor<4>,
    (w1, b1): (Tensor<4>, Tensor<1>),
    (w2, b2): (Tensor<4>, Tensor<1>),
) -> Tensor<4> {
    let flex = |t: Tensor<4>| t.try_into_primitive::<Flex>().expect("checked: flex");
    let flex1 = |t: Tensor<1>| t.try_into_primitive::<Flex>().expect("checked: flex");
    let (x, w1, b1, w2, b2) = (flex(x), flex(w1), flex1(b1), flex(w2), flex1(b2));
    let first = conv_shape(&x, &w1);
    let ws = dims(&w2);
    let second = ConvShape {
        batch: first.batch,
        in_channels: first.out_channels,
        height: first.out_h(),
        width: first.out_w(),
        out_channels: ws[0],
        kernel_h: ws[2],
        kernel_w: ws[3],
    };
    let out = two_conv_relu_pool_hwc(
        (&first, &values(&w1), &values(&b1)),
        (&second, &values(&w2), &values(&b2)),
        &values(&x),
    );
    let out_dims = vec![
        second.batch,
        second.out_channels,
        second.out_h() / 2,
        second.out_w() / 2,
    ];
    Tensor::from_primitive::<Flex>(flex_tensor(out, out_dims))
}

/// Inference convolution + bias, then ReLU when `relu`, or `relu(· + residual)` when a residual
/// is given, on flex tensors without autodiff (see [`super::conv_infer`]).
pub(super) fn conv2d_infer(
    x: Tensor<4>,
    w: Tensor<4>,
    b: Tensor<1>,
    stride: [usize; 2],
    padding: [usize; 2],
    activation: super::Activation,
    residual: Option<Tensor<4>>,
) -> Tensor<4> {
    let x = x.try_into_primitive::<Flex>().expect("checked: flex");
    let w = w.try_into_primitive::<Flex>().expect("checked: flex");
    let b = b.try_into_primitive::<Flex>().expect("checked: flex");
    let (xs, ws) = (dims(&x), dims(&w));
    let s = InferConvShape::of(&xs, &ws, stride, padding);
    let residual = residual.map(|r| r.try_into_primitive::<Flex>().expect("checked: flex"));
    let skip = residual.as_ref().map(values);
    use super::Activation as A;
    let epilogue = match (&skip, activation) {
        (Some(r), A::Relu) => Epilogue::AddRelu(r),
        (Some(r), _) => Epilogue::Add(r),
        (None, A::Relu) => Epilogue::Relu,
        (None, A::Relu6) => Epilogue::Relu6,
        (None, A::Identity) => Epilogue::Identity,
    };
    let y = conv_forward(&s, &values(&x), &values(&w), &values(&b), epilogue);
    Tensor::from_primitive::<Flex>(flex_tensor(
        y,
        vec![s.batch, s.out_channels, s.out_h(), s.out_w()],
    ))
}

/// `k × k` max-pool with stride `stride` on a flex tensor without autodiff (inference).
pub(super) fn max_pool_infer(x: Tensor<4>, k: usize, stride: usize) -> Tensor<4> {
    let x = x.try_into_primitive::<Flex>().expect("checked: flex");
    let (s, _) = pool_shape(&x);
    let d = dims(&x);
    let y = max_pool_forward(&s, k, stride, &values(&x));
    let (oh, ow) = ((d[2] - k) / stride + 1, (d[3] - k) / stride + 1);
    Tensor::from_primitive::<Flex>(flex_tensor(y, vec![d[0], d[1], oh, ow]))
}

/// Depthwise convolution + bias (+ ReLU6) on flex tensors, inference only.
pub(super) fn depthwise_infer(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Tensor<1>,
    stride: usize,
    padding: usize,
    relu6: bool,
) -> Tensor<4> {
    let x = x.try_into_primitive::<Flex>().expect("checked: flex");
    let w = weight.try_into_primitive::<Flex>().expect("checked: flex");
    let b = bias.try_into_primitive::<Flex>().expect("checked: flex");
    let (d, k) = (dims(&x), dims(&w)[2]);
    let s = super::depthwise::DepthwiseShape {
        batch: d[0],
        channels: d[1],
        in_h: d[2],
        in_w: d[3],
        kernel: k,
        stride,
        padding,
    };
    let y = super::depthwise::depthwise_forward(&s, &values(&x), &values(&w), &values(&b), relu6);
    Tensor::from_primitive::<Flex>(flex_tensor(y, vec![d[0], d[1], s.out_h(), s.out_w()]))
}

/// MobileNetV2's pooled features `[N, F]` of flex images `[N, C, H, W]` through the fused
/// per-image pass ([`super::inverted_residual`]), inference only.
pub(super) fn mobilenet_features(
    net: &super::inverted_residual::FusedMobileNet,
    images: Tensor<4>,
) -> Tensor<2> {
    let x = images.try_into_primitive::<Flex>().expect("checked: flex");
    let d = dims(&x);
    let y = net.features(&values(&x), d[0], (d[2], d[3]));
    Tensor::from_primitive::<Flex>(flex_tensor(y, vec![d[0], net.feature_dim()]))
}

/// 2x2 stride-2 max-pool on a flex tensor, with or without autodiff.
pub(super) fn max_pool2x2(x: Tensor<4>, autodiff: bool) -> Tensor<4> {
    if !autodiff {
        let x = x.try_into_primitive::<Flex>().expect("checked: flex");
        return Tensor::from_primitive::<Flex>(pool_forward_flex(&x));
    }
    let x = x
        .try_into_primitive::<AdFlex>()
        .expect("checked: autodiff flex");
    let prep = MaxPoolBackward
        .prepare::<NoCheckpointing>([x.node()])
        .compute_bound()
        .stateful();
    let y = pool_forward_flex(x.primitive());
    let out = match prep {
        OpsKind::Tracked(prep) => prep.finish(x.primitive().clone(), y),
        OpsKind::UnTracked(prep) => prep.finish(y),
    };
    Tensor::from_primitive::<AdFlex>(out)
}

/// Backward step of the fused dense layer + bias + ReLU (+ dropout).
#[derive(Debug)]
struct DenseBackward;

impl Backward<Flex, 3> for DenseBackward {
    /// Input, weight and output of the forward pass, and the dropout scale (1 without).
    type State = (FlexTensor, FlexTensor, Vec<f32>, f32);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_w, node_b] = ops.parents;
        let gy = grads.consume::<Flex>(&ops.node);
        let (x, w, y, scale) = ops.state;
        let s = dense_shape(&x, &w);
        let wanted = (node_x.is_some(), node_w.is_some(), node_b.is_some());
        let g = dense_relu_backward(
            &s,
            &values(&x),
            &values(&w),
            &y,
            scale,
            &values(&gy),
            wanted,
        );
        register_grads(
            grads,
            [node_x, node_w, node_b].map(|n| n.map(|n| n.id)),
            [g.x, g.weight, g.bias],
            [dims(&x), dims(&w), vec![s.outputs]],
        );
    }
}

fn dense_shape(x: &FlexTensor, w: &FlexTensor) -> DenseShape {
    let (xs, ws) = (dims(x), dims(w));
    DenseShape {
        batch: xs[0],
        inputs: xs[1],
        outputs: ws[1],
    }
}

/// `dropout(relu(x · w + b))` on flex tensors in one pass (see [`super::dense`]); `drop` is
/// `None` when dropout is off (inference, or probability 0).
pub(super) fn dense_relu_dropout(
    x: Tensor<2>,
    w: Tensor<2>,
    b: Tensor<1>,
    autodiff: bool,
    drop: Option<DropMask>,
) -> Tensor<2> {
    if !autodiff {
        let x = x.try_into_primitive::<Flex>().expect("checked: flex");
        let w = w.try_into_primitive::<Flex>().expect("checked: flex");
        let b = b.try_into_primitive::<Flex>().expect("checked: flex");
        let s = dense_shape(&x, &w);
        let y = dense_relu_forward(&s, &values(&x), &values(&w), &values(&b), drop);
        return Tensor::from_primitive::<Flex>(flex_tensor(y, vec![s.batch, s.outputs]));
    }
    let (x, w, b) = (autodiff_flex!(x), autodiff_flex!(w), autodiff_flex!(b));
    let prep = DenseBackward
        .prepare::<NoCheckpointing>([x.node(), w.node(), b.node()])
        .compute_bound()
        .stateful();
    let s = dense_shape(x.primitive(), w.primitive());
    let y = dense_relu_forward(
        &s,
        &values(x.primitive()),
        &values(w.primitive()),
        &values(b.primitive()),
        drop,
    );
    let scale = drop.map_or(1.0, |mask| mask.scale);
    let out = match prep {
        OpsKind::Tracked(prep) => {
            let state = (
                x.primitive().clone(),
                w.primitive().clone(),
                y.clone(),
                scale,
            );
            prep.finish(state, flex_tensor(y, vec![s.batch, s.outputs]))
        }
        OpsKind::UnTracked(prep) => prep.finish(flex_tensor(y, vec![s.batch, s.outputs])),
    };
    Tensor::from_primitive::<AdFlex>(out)
}

/// Backward step of the hashed dropout mask.
#[derive(Debug)]
struct DropoutBackward;

impl Backward<Flex, 1> for DropoutBackward {
    /// The mask's seed and threshold, and the scale of kept elements.
    type State = (u32, u64, f32);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x] = ops.parents;
        let gy = grads.consume::<Flex>(&ops.node);
        if let Some(node) = node_x {
            let (seed, threshold, scale) = ops.state;
            let gx = apply_mask(seed, threshold, scale, &values(&gy));
            grads.register::<Flex>(node.id, flex_tensor(gx, dims(&gy)));
        }
    }
}

/// Dropout of an autodiff flex tensor with the hashed mask of `seed` (see [`super::dropout`]).
pub(super) fn dropout<const D: usize>(x: Tensor<D>, mask: DropMask) -> Tensor<D> {
    let DropMask {
        seed,
        threshold,
        scale,
    } = mask;
    let x = x
        .try_into_primitive::<AdFlex>()
        .expect("checked: autodiff flex");
    let prep = DropoutBackward
        .prepare::<NoCheckpointing>([x.node()])
        .compute_bound()
        .stateful();
    let y = flex_tensor(
        apply_mask(seed, threshold, scale, &values(x.primitive())),
        dims(x.primitive()),
    );
    let out = match prep {
        OpsKind::Tracked(prep) => prep.finish((seed, threshold, scale), y),
        OpsKind::UnTracked(prep) => prep.finish(y),
    };
    Tensor::from_primitive::<AdFlex>(out)
}

/// Whether `dtype` is the one the kernels handle.
pub(super) fn is_f32(dtype: DType) -> bool {
    dtype == DType::F32
}
