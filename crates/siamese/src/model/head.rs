//! The small trainable head put on frozen backbone features for triplet similarity (seed 003):
//!
//! ```text
//! [B, F] → dense 512, ReLU → dropout → dense D → L2 normalisation → [B, D]
//! ```
//! F is the backbone's feature length (1280 for MobileNetV2), D defaults to 10.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig, Relu};
use burn::tensor::{Device, Tensor};

use super::embedding_cnn::l2_normalize_rows;
use crate::{Error, Result};

/// Hyper-parameters of [`TripletHead`]; stored beside every checkpoint as JSON.
#[derive(Config, Debug, PartialEq)]
pub struct TripletHeadConfig {
    /// Length of the backbone features fed in.
    pub input_dim: usize,
    /// Width of the hidden dense layer. Default: `512`.
    #[config(default = 512)]
    pub hidden: usize,
    /// Embedding dimension D. Default: `10`.
    #[config(default = 10)]
    pub dim: usize,
    /// Dropout after the hidden layer (training only). Default: `0.5`.
    #[config(default = 0.5)]
    pub dropout: f64,
}

impl TripletHeadConfig {
    /// Checks the hyper-parameters.
    pub fn check(&self) -> Result<()> {
        for (name, v) in [
            ("input_dim", self.input_dim),
            ("hidden", self.hidden),
            ("dim", self.dim),
        ] {
            if v == 0 {
                return Err(Error::config(name, "must be at least 1"));
            }
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(Error::config(
                "dropout",
                format!("{} is not in [0, 1)", self.dropout),
            ));
        }
        Ok(())
    }

    /// Builds the head with freshly initialised weights on `device`.
    pub fn init(&self, device: &Device) -> Result<TripletHead> {
        self.check()?;
        Ok(TripletHead {
            hidden: LinearConfig::new(self.input_dim, self.hidden).init(device),
            activation: Relu::new(),
            dropout: DropoutConfig::new(self.dropout).init(),
            output: LinearConfig::new(self.hidden, self.dim).init(device),
        })
    }
}

/// Dense–ReLU–dropout–dense–L2 head over frozen features.
#[derive(Module, Debug)]
pub struct TripletHead {
    hidden: Linear,
    activation: Relu,
    dropout: Dropout,
    output: Linear,
}

impl TripletHead {
    /// `[B, F] → [B, D]`, rows of unit length. Dropout acts only on an autodiff device.
    pub fn forward(&self, features: Tensor<2>) -> Tensor<2> {
        let x = self.activation.forward(self.hidden.forward(features));
        let x = self.output.forward(self.dropout.forward(x));
        l2_normalize_rows(x)
    }
}
