//! Adam's update of one parameter tensor in a single pass over its values, the moments updated
//! in place: the same arithmetic as burn 0.22.1's `Adam` (no weight decay, no AMSGrad), in the
//! same order, so the result is equal bit for bit, and the same state (`AdamState`), so
//! checkpoints written by either resume with the other.
//!
//! Shapes: the parameter, its gradient and both moments have one shape; the pass reads them as
//! flat slices. Why: burn's step runs nine tensor operations a parameter (each a pass over the
//! values and a new buffer); for the seeds' CNN, whose dense weight has 1.18 million values,
//! that took 7.4 ms of a 140 ms training step on two Xeon cores.

use burn::backend::flex::FlexTensor;
use burn::backend::Flex;
use burn::optim::{Adam, AdamConfig, AdamState, AdaptiveMomentumState, LearningRate, Optimizer};
use burn::tensor::{Device, Tensor, TensorData};
use rayon::prelude::*;

use super::simd::vectorize;

/// Values a rayon task updates.
const CHUNK: usize = 1 << 14;

/// burn's defaults, which [`AdamConfig::new`] sets and the trainer uses.
const BETA_1: f32 = 0.9;
const BETA_2: f32 = 0.999;
const EPSILON: f32 = 1e-5;

/// Adam with burn's default settings whose step on f32 flex tensors is [`adam_pass`]; anywhere
/// else (another backend, a shared or strided tensor) burn's own step runs.
#[derive(Clone)]
pub struct FusedAdam {
    burn: Adam,
}

impl Default for FusedAdam {
    fn default() -> Self {
        FusedAdam {
            burn: AdamConfig::new()
                .with_beta_1(BETA_1)
                .with_beta_2(BETA_2)
                .with_epsilon(EPSILON)
                .build(),
        }
    }
}

/// The scalars of one step, computed as burn computes them.
#[derive(Debug, Clone, Copy)]
pub struct StepScalars {
    first: bool,
    combined_factor: f32,
    epsilon_term: f32,
    lr: f32,
}

impl StepScalars {
    /// Step `time` (1 for the first) at learning rate `lr`.
    pub fn new(time: usize, lr: LearningRate) -> Self {
        let t = time as i32;
        let bias_correction2_sqrt = (1.0 - BETA_2.powi(t)).sqrt();
        StepScalars {
            first: time == 1,
            combined_factor: bias_correction2_sqrt / (1.0 - BETA_1.powi(t)),
            epsilon_term: EPSILON * bias_correction2_sqrt,
            lr: lr as f32,
        }
    }
}

/// One Adam step over flat slices: `m` and `v` are read (unless this is the first step) and
/// written, `p` is updated in place. The expression order is burn's, term for term (no fused
/// multiply-adds: Rust does not contract `a * b + c`).
pub fn adam_pass(p: &mut [f32], m: &mut [f32], v: &mut [f32], g: &[f32], s: StepScalars) {
    assert!(p.len() == g.len() && m.len() == g.len() && v.len() == g.len());
    let (f1, f2) = (1.0 - BETA_1, 1.0 - BETA_2);
    p.par_chunks_mut(CHUNK)
        .zip(m.par_chunks_mut(CHUNK))
        .zip(v.par_chunks_mut(CHUNK))
        .zip(g.par_chunks(CHUNK))
        .for_each(|(((p, m), v), g)| {
            vectorize(
                #[inline(always)]
                || {
                    for (((p, m), v), &g) in p.iter_mut().zip(m).zip(v).zip(g) {
                        let (m1, m2) = if s.first {
                            (g * f1, (g * g) * f2)
                        } else {
                            (*m * BETA_1 + g * f1, *v * BETA_2 + (g * g) * f2)
                        };
                        *m = m1;
                        *v = m2;
                        let update = (m1 * s.combined_factor) / (m2.sqrt() + s.epsilon_term);
                        *p -= update * s.lr;
                    }
                },
            )
        });
}

/// A plain (no autodiff) f32 flex tensor as a contiguous flex buffer (the caller checked it is
/// one). Updating it in place copies its values first only when they are shared.
fn contiguous_flex<const D: usize>(t: Tensor<D>) -> FlexTensor {
    let flex = t
        .try_into_primitive::<Flex>()
        .expect("checked: a flex tensor");
    if flex.as_slice::<f32>().is_some() {
        flex
    } else {
        flex.to_contiguous()
    }
}

impl Optimizer for FusedAdam {
    type State<const D: usize> = AdamState<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        let applies = super::fast_kernels()
            && super::fast_context(&[&tensor, &grad]) == Some(false)
            && state.as_ref().is_none_or(|s| {
                s.momentum.max_moment_2.is_none()
                    && super::fast_context(&[&s.momentum.moment_1, &s.momentum.moment_2])
                        == Some(false)
                    && s.momentum.moment_1.shape() == tensor.shape()
                    && s.momentum.moment_2.shape() == tensor.shape()
            })
            && tensor.shape() == grad.shape();
        if !applies {
            return self.burn.step(lr, tensor, grad, state);
        }
        super::FAST_CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let shape = tensor.shape();
        let mut p = contiguous_flex(tensor);
        let g = contiguous_flex(grad);
        let (mut m, mut v, time) = match state {
            Some(s) => (
                contiguous_flex(s.momentum.moment_1),
                contiguous_flex(s.momentum.moment_2),
                s.momentum.time + 1,
            ),
            None => {
                let zeros = || {
                    let values = vec![0.0f32; shape.num_elements()];
                    FlexTensor::from_data(TensorData::new(values, shape.clone()))
                };
                (zeros(), zeros(), 1)
            }
        };
        adam_pass(
            p.storage_mut::<f32>(),
            m.storage_mut::<f32>(),
            v.storage_mut::<f32>(),
            g.as_slice::<f32>().expect("contiguous"),
            StepScalars::new(time, lr),
        );
        let back = Tensor::<D>::from_primitive::<Flex>;
        let momentum = AdaptiveMomentumState::new(time, back(m), back(v));
        (back(p), Some(AdamState::new(momentum)))
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &Device) -> Self::State<D> {
        Adam::to_device(state, device)
    }
}
