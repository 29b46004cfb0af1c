//! The learnable class vectors of the proxy and margin-softmax losses: one `D`-vector per class
//! (`[C, D]`), the proxies of ProxyAnchor or the class weights of ArcFace / CosFace. They are
//! trained with the network by the same optimizer and saved in the run's checkpoint
//! (`head.safetensors`), so `--resume` continues them exactly.

use burn::module::{Module, Param};
use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};

use crate::{Error, Result};

/// `[C, D]` class vectors.
#[derive(Module, Debug)]
pub struct ClassWeights {
    pub weights: Param<Tensor<2>>,
}

impl ClassWeights {
    /// `classes` random vectors of `dim` values (standard normal: on the unit sphere after
    /// normalisation, uniformly spread) on `device`, drawn from the device's seeded generator.
    pub fn new(classes: usize, dim: usize, device: &Device) -> Self {
        let w = Tensor::<2>::random([classes, dim], Distribution::Normal(0.0, 1.0), device);
        ClassWeights {
            weights: Param::from_tensor(w),
        }
    }

    /// These vectors `[C, D]` as the (trainable) head.
    pub fn from_vectors(vectors: Tensor<2>) -> Self {
        ClassWeights {
            weights: Param::from_tensor(vectors),
        }
    }

    /// Number of classes C.
    pub fn classes(&self) -> usize {
        self.weights.val().dims()[0]
    }

    /// The vectors `[C, D]`.
    pub fn vectors(&self) -> Tensor<2> {
        self.weights.val()
    }

    /// Labels as an index tensor `[B]`, or an error when a label has no class vector (the data
    /// has more classes than the head: `loss` names the loss in the message).
    pub fn check_labels(&self, loss: &str, labels: &[u32]) -> Result<()> {
        let classes = self.classes();
        match labels.iter().find(|&&l| l as usize >= classes) {
            Some(&l) => Err(Error::config(
                "labels",
                format!(
                    "class {l} but the {loss} head has {classes} classes; train it on data with \
                     at most {classes} classes"
                ),
            )),
            None => Ok(()),
        }
    }
}

/// One-hot rows `[B, C]` of `labels` (each `< classes`).
pub fn one_hot(labels: &[u32], classes: usize, device: &Device) -> Tensor<2> {
    let idx: Vec<i64> = labels.iter().map(|&l| l as i64).collect();
    Tensor::<1, Int>::from_data(TensorData::new(idx, [labels.len()]), device)
        .one_hot::<2>(classes)
        .float()
}
