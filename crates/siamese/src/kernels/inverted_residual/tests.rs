//! The fused pass against the layer-by-layer kernels on small random networks.

use super::super::conv_infer::{conv_forward, Epilogue, InferConvShape};
use super::super::depthwise::{depthwise_forward, DepthwiseShape};
use super::*;

struct Rng(u32);
impl Rng {
    fn values(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n)
            .map(|_| {
                self.0 = self.0.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                ((self.0 >> 8) as f32 / 16_777_216.0 - 0.5) * scale
            })
            .collect()
    }
}

type Conv = (Vec<f32>, Vec<f32>);
/// Expand, depthwise (with its stride), project, skip.
type RawBlock = (Option<Conv>, (Vec<f32>, Vec<f32>, usize), Conv, bool);

/// Raw PyTorch-layout layers of a small network, run layer by layer in NCHW through the
/// tested layer kernels as the reference.
struct Layers {
    stem: (Vec<f32>, [usize; 4], Vec<f32>),
    blocks: Vec<RawBlock>,
    head: (Vec<f32>, Vec<f32>),
}

fn layers() -> Layers {
    let mut rng = Rng(7);
    let mut conv = |o: usize, i: usize, kk: usize| {
        // About unit gain per layer, biases mostly positive: activations stay between
        // ReLU6's ends, so a wrong input row shows in the pooled features.
        let scale = 5.0 / ((i * kk) as f32).sqrt();
        let bias = rng.values(o, 0.5).iter().map(|b| b + 0.2).collect();
        (rng.values(o * i * kk, scale), bias)
    };
    let (sw, sb) = conv(24, 3, 9);
    // (expand ratio, out channels, stride): channel counts off the 64/16 steps on purpose
    // (24, 40, 80, 120 hidden: the vector chunks and the one-by-one tail), strides 1 and 2,
    // skips where stride 1 keeps the channels.
    let plan = [(1, 16, 1), (6, 20, 2), (6, 20, 1), (4, 24, 2), (5, 24, 1)];
    let mut blocks = Vec::new();
    let mut input = 24;
    for (t, c, s) in plan {
        let hidden = input * t;
        let expand = (t != 1).then(|| conv(hidden, input, 1));
        let (dw, db) = conv(hidden, 1, 9);
        let (pw, pb) = conv(c, hidden, 1);
        blocks.push((expand, (dw, db, s), (pw, pb), s == 1 && input == c));
        input = c;
    }
    let head = conv(40, input, 1);
    Layers {
        stem: (sw, [24, 3, 3, 3], sb),
        blocks,
        head,
    }
}

fn fused(l: &Layers) -> FusedMobileNet {
    FusedMobileNet {
        stem: Stem::new(&l.stem.0, l.stem.1, &l.stem.2, 2, 1),
        blocks: l
            .blocks
            .iter()
            .map(|(e, (dw, db, s), (pw, pb), residual)| Block {
                expand: e.as_ref().map(|(w, b)| Pointwise::from_oihw(w, b)),
                depthwise: Depthwise3x3::from_c1kk(dw, db, *s),
                project: Pointwise::from_oihw(pw, pb),
                residual: *residual,
            })
            .collect(),
        head: Pointwise::from_oihw(&l.head.0, &l.head.1),
    }
}

fn reference(l: &Layers, x: &[f32], batch: usize, (h, w): (usize, usize)) -> Vec<f32> {
    fn conv(
        x: &[f32],
        dims: [usize; 4],
        (wt, b): (&[f32], &[f32]),
        (k, s): (usize, usize),
        e: Epilogue,
    ) -> (Vec<f32>, [usize; 4]) {
        let shape = InferConvShape::of(&dims, &[b.len(), dims[1], k, k], [s, s], [k / 2, k / 2]);
        let y = conv_forward(&shape, x, wt, b, e);
        (y, [dims[0], b.len(), shape.out_h(), shape.out_w()])
    }
    let (mut y, mut d) = conv(
        x,
        [batch, 3, h, w],
        (&l.stem.0, &l.stem.2),
        (3, 2),
        Epilogue::Relu6,
    );
    for (expand, (dw, db, s), (pw, pb), residual) in &l.blocks {
        let input = y.clone();
        let (mut hid, mut hd) = (y, d);
        if let Some((ew, eb)) = expand {
            (hid, hd) = conv(&hid, hd, (ew, eb), (1, 1), Epilogue::Relu6);
        }
        let ds = DepthwiseShape {
            batch,
            channels: hd[1],
            in_h: hd[2],
            in_w: hd[3],
            kernel: 3,
            stride: *s,
            padding: 1,
        };
        let f = depthwise_forward(&ds, &hid, dw, db, true);
        let fd = [batch, hd[1], ds.out_h(), ds.out_w()];
        let e = if *residual {
            Epilogue::Add(&input)
        } else {
            Epilogue::Identity
        };
        (y, d) = conv(&f, fd, (pw, pb), (1, 1), e);
    }
    let (y, d) = conv(&y, d, (&l.head.0, &l.head.1), (1, 1), Epilogue::Relu6);
    let plane = d[2] * d[3];
    y.chunks_exact(plane)
        .map(|p| p.iter().sum::<f32>() / plane as f32)
        .collect()
}

#[test]
fn fused_blocks_equal_the_layer_by_layer_network() {
    let l = layers();
    let net = fused(&l);
    // 70 × 45: odd sizes at every stride, and strips of several rows (144-channel hidden
    // rows: the strip budget holds a few of them) so the kept-row hand-over runs.
    for (batch, h, w) in [(3, 70, 45), (1, 9, 7), (2, 2, 3)] {
        let x = Rng(11).values(batch * 3 * h * w, 2.0);
        let got = net.features(&x, batch, (h, w));
        let want = reference(&l, &x, batch, (h, w));
        assert_eq!(got.len(), want.len());
        let scale = want.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
        let worst = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(
            worst <= 1e-4 * scale,
            "{batch}×{h}×{w}: {worst} (scale {scale})"
        );
        assert!(
            want.iter().any(|v| *v > 0.0),
            "a network that outputs zeros tests nothing"
        );
    }
}

#[test]
fn strips_hold_at_least_one_row_and_at_most_the_image() {
    assert_eq!(
        strip_rows(112, 96, 2, 56),
        (STRIP_BYTES / (112 * 96 * 4) - 3) / 2 + 1
    );
    assert_eq!(
        strip_rows(7, 960, 1, 7),
        (STRIP_BYTES / (7 * 960 * 4) - 3 + 1).min(7)
    );
    assert_eq!(strip_rows(10_000, 960, 1, 5), 1);
    assert_eq!(strip_rows(3, 16, 1, 2), 2);
}
