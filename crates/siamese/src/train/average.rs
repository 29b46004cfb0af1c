//! Exponential moving average of the embedding network's weights during training (Polyak
//! averaging): the model a run delivers is the average of its last few hundred steps, which
//! smooths out the noise of the final Adam steps.
//!
//! Weights are kept flattened, one `[n]` tensor per parameter in the module's visiting order
//! (the same order for every instance of the same architecture).

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::Tensor;

use crate::model::embedding_cnn::EmbeddingCnn;

/// The running average `avg ← d·avg + (1 − d)·w` after every optimizer step.
///
/// At the run's step `t`, `d = min(decay, (1 + t) / (10 + t))` (TensorFlow's
/// `ExponentialMovingAverage` with `num_updates`): the random initial weights are forgotten at
/// once, and until `t` reaches about `9 / (1 − decay)` steps (4,490 for 0.998) the average
/// spans roughly the last ninth of the steps taken.
#[derive(Debug, Clone)]
pub struct WeightAverage {
    decay: f64,
    values: Vec<Tensor<1>>,
}

impl WeightAverage {
    /// Starts the average at `model`'s weights (a fresh model, or the average a resumed run
    /// saved).
    pub fn new(model: &EmbeddingCnn, decay: f64) -> Self {
        WeightAverage {
            decay,
            values: flat_weights(model),
        }
    }

    /// Folds `model`'s weights after the run's step `step` (counted from 0) into the average.
    pub fn update(&mut self, model: &EmbeddingCnn, step: usize) {
        let t = step as f64;
        let d = self.decay.min((1.0 + t) / (10.0 + t));
        for (avg, w) in self.values.iter_mut().zip(flat_weights(model)) {
            *avg = avg.clone().mul_scalar(d).add(w.mul_scalar(1.0 - d));
        }
    }

    /// A copy of `model` (for inference) carrying the averaged weights.
    pub fn averaged(&self, model: &EmbeddingCnn) -> EmbeddingCnn {
        let mut mapper = Replace {
            values: &self.values,
            next: 0,
        };
        model.valid().map(&mut mapper)
    }
}

/// Every float parameter of the (inference copy of the) model, flattened, in visiting order.
fn flat_weights(model: &EmbeddingCnn) -> Vec<Tensor<1>> {
    let mut collect = Collect { values: Vec::new() };
    model.valid().visit(&mut collect);
    collect.values
}

struct Collect {
    values: Vec<Tensor<1>>,
}

impl ModuleVisitor for Collect {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let value = param.val();
        let n = value.shape().num_elements();
        self.values.push(value.reshape([n]));
    }
}

struct Replace<'a> {
    values: &'a [Tensor<1>],
    next: usize,
}

impl ModuleMapper for Replace<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let flat = self.values[self.next].clone();
        self.next += 1;
        param.map(|value| flat.reshape(value.dims()))
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::Device;

    use super::*;
    use crate::model::embedding_cnn::EmbeddingCnnConfig;

    fn first_weights(model: &EmbeddingCnn) -> Vec<f32> {
        flat_weights(model)[0]
            .clone()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap()
    }

    #[test]
    fn average_follows_the_documented_update() {
        let device = Device::default();
        let config = EmbeddingCnnConfig::new().with_image_size(8).with_dim(4);
        device.seed(1);
        let a = config.init(&device).unwrap();
        device.seed(2);
        let b = config.init(&device).unwrap();
        let (wa, wb) = (first_weights(&a), first_weights(&b));
        assert_ne!(wa, wb);

        // After 100 steps the ramp (101/110) is above the decay, so d = 0.9.
        let mut average = WeightAverage::new(&a, 0.9);
        average.update(&b, 100);
        let got = first_weights(&average.averaged(&a));
        for ((g, x), y) in got.iter().zip(&wa).zip(&wb) {
            assert!((g - (0.9 * x + 0.1 * y)).abs() < 1e-6, "{g} vs {x}, {y}");
        }

        // At the first step the ramp gives d = 1/10: the average jumps most of the way.
        let mut fresh = WeightAverage::new(&a, 0.999);
        fresh.update(&b, 0);
        let got = first_weights(&fresh.averaged(&a));
        for ((g, x), y) in got.iter().zip(&wa).zip(&wb) {
            assert!((g - (0.1 * x + 0.9 * y)).abs() < 1e-6, "{g} vs {x}, {y}");
        }
        // The averaged copy has the architecture's every parameter.
        assert_eq!(
            flat_weights(&fresh.averaged(&a)).len(),
            flat_weights(&a).len()
        );
    }
}
