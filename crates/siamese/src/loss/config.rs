//! Which loss a run trains with ([`LossConfig`], stored in `config.json`) and the per-loss
//! options of the command line ([`LossOptions`]): an option that does not belong to the chosen
//! loss is refused by name, so `--temperature` with contrastive or `--margin` with NT-Xent never
//! passes silently.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::arcface::MarginSoftmaxConfig;
use super::circle::CircleConfig;
use super::contrastive::ContrastiveConfig;
use super::multi_similarity::MultiSimilarityConfig;
use super::nt_xent::TemperatureConfig;
use super::proxy_anchor::ProxyAnchorConfig;
use crate::distance::Distance;
use crate::{Error, Result};

/// The loss of a training run. `Triplet` takes its margin from the run's `margin` and its
/// triplets from the run's sampling; the others carry their own settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "name", rename_all = "kebab-case")]
pub enum LossConfig {
    /// The triplet margin loss (the seeds'; see [`super::triplet`]).
    #[default]
    Triplet,
    /// Hadsell et al.'s contrastive pair loss on every pair of the batch.
    Contrastive(ContrastiveConfig),
    /// Multi-similarity loss on the pairs its miner keeps.
    MultiSimilarity(MultiSimilarityConfig),
    /// Circle loss on every pair of the batch.
    Circle(CircleConfig),
    /// Proxy-Anchor with one learnable proxy per class.
    ProxyAnchor(ProxyAnchorConfig),
    /// ArcFace with a learnable class-weight head.
    Arcface(MarginSoftmaxConfig),
    /// CosFace with a learnable class-weight head.
    Cosface(MarginSoftmaxConfig),
    /// NT-Xent on every positive pair of the batch.
    NtXent(TemperatureConfig),
    /// Supervised contrastive loss.
    Supcon(TemperatureConfig),
}

/// Every loss name `--loss` accepts.
pub const LOSS_NAMES: &str =
    "triplet, contrastive, multi-similarity, circle, proxy-anchor, arcface, cosface, nt-xent, supcon";

/// Per-loss options as given on the command line (`None`: not given, the loss's default).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LossOptions {
    /// `--margin`: triplet α, circle m, Proxy-Anchor δ, ArcFace / CosFace m.
    pub margin: Option<f64>,
    /// `--pos-margin`, `--neg-margin`: contrastive.
    pub pos_margin: Option<f64>,
    pub neg_margin: Option<f64>,
    /// `--alpha`: multi-similarity α, Proxy-Anchor α.
    pub alpha: Option<f64>,
    /// `--beta`, `--base`, `--epsilon`: multi-similarity β, λ and its miner's ε.
    pub beta: Option<f64>,
    pub base: Option<f64>,
    pub epsilon: Option<f64>,
    /// `--scale`: circle γ, ArcFace / CosFace s.
    pub scale: Option<f64>,
    /// `--temperature`: NT-Xent, SupCon.
    pub temperature: Option<f64>,
}

impl LossConfig {
    /// The name `--loss` takes.
    pub fn name(&self) -> &'static str {
        match self {
            LossConfig::Triplet => "triplet",
            LossConfig::Contrastive(_) => "contrastive",
            LossConfig::MultiSimilarity(_) => "multi-similarity",
            LossConfig::Circle(_) => "circle",
            LossConfig::ProxyAnchor(_) => "proxy-anchor",
            LossConfig::Arcface(_) => "arcface",
            LossConfig::Cosface(_) => "cosface",
            LossConfig::NtXent(_) => "nt-xent",
            LossConfig::Supcon(_) => "supcon",
        }
    }

    /// Whether the loss trains a class-vector head ([`super::class_weights::ClassWeights`]).
    pub fn has_class_head(&self) -> bool {
        matches!(
            self,
            LossConfig::ProxyAnchor(_) | LossConfig::Arcface(_) | LossConfig::Cosface(_)
        )
    }

    /// Whether the loss compares embeddings with the run's `--distance` (triplet,
    /// contrastive); the others work on cosine similarities of L2-normalised embeddings
    /// whatever the distance (which then only serves evaluation).
    pub fn uses_distance(&self) -> bool {
        matches!(self, LossConfig::Triplet | LossConfig::Contrastive(_))
    }

    /// Refuses an explicitly given `--distance` for a loss that ignores it.
    pub fn check_distance_option(&self, given: Option<Distance>) -> Result<()> {
        match given {
            Some(d) if !self.uses_distance() => Err(Error::config(
                "--distance",
                format!(
                    "{d} does not apply to --loss {self}, which uses cosine similarity on \
                     L2-normalised embeddings (--distance is for triplet and contrastive)"
                ),
            )),
            _ => Ok(()),
        }
    }

    /// The loss `name` with `options` applied over its defaults; an unknown name, or an option
    /// that the loss does not have, is an error naming it. The triplet margin is not stored
    /// here (it is the run's `margin`), so `--margin` is accepted for triplet.
    pub fn from_options(name: &str, options: &LossOptions) -> Result<LossConfig> {
        let o = options;
        let mut given: Vec<&'static str> = [
            ("--margin", o.margin),
            ("--pos-margin", o.pos_margin),
            ("--neg-margin", o.neg_margin),
            ("--alpha", o.alpha),
            ("--beta", o.beta),
            ("--base", o.base),
            ("--epsilon", o.epsilon),
            ("--scale", o.scale),
            ("--temperature", o.temperature),
        ]
        .into_iter()
        .filter(|(_, v)| v.is_some())
        .map(|(n, _)| n)
        .collect();
        let or = |v: Option<f64>, d: f64| v.unwrap_or(d);
        let (config, allowed): (LossConfig, &[&str]) =
            match name.to_ascii_lowercase().replace('_', "-").as_str() {
                "triplet" => (LossConfig::Triplet, &["--margin"]),
                "contrastive" => {
                    let d = ContrastiveConfig::default();
                    (
                        LossConfig::Contrastive(ContrastiveConfig {
                            pos_margin: or(o.pos_margin, d.pos_margin),
                            neg_margin: or(o.neg_margin, d.neg_margin),
                        }),
                        &["--pos-margin", "--neg-margin"],
                    )
                }
                "multi-similarity" | "ms" => {
                    let d = MultiSimilarityConfig::default();
                    (
                        LossConfig::MultiSimilarity(MultiSimilarityConfig {
                            alpha: or(o.alpha, d.alpha),
                            beta: or(o.beta, d.beta),
                            base: or(o.base, d.base),
                            epsilon: or(o.epsilon, d.epsilon),
                        }),
                        &["--alpha", "--beta", "--base", "--epsilon"],
                    )
                }
                "circle" => {
                    let d = CircleConfig::default();
                    (
                        LossConfig::Circle(CircleConfig {
                            margin: or(o.margin, d.margin),
                            scale: or(o.scale, d.scale),
                        }),
                        &["--margin", "--scale"],
                    )
                }
                "proxy-anchor" => {
                    let d = ProxyAnchorConfig::default();
                    (
                        LossConfig::ProxyAnchor(ProxyAnchorConfig {
                            alpha: or(o.alpha, d.alpha),
                            margin: or(o.margin, d.margin),
                        }),
                        &["--alpha", "--margin"],
                    )
                }
                "arcface" | "cosface" => {
                    let arc = name.eq_ignore_ascii_case("arcface");
                    let d = if arc {
                        MarginSoftmaxConfig::arcface()
                    } else {
                        MarginSoftmaxConfig::cosface()
                    };
                    let c = MarginSoftmaxConfig {
                        margin: or(o.margin, d.margin),
                        scale: or(o.scale, d.scale),
                    };
                    let config = if arc {
                        LossConfig::Arcface(c)
                    } else {
                        LossConfig::Cosface(c)
                    };
                    (config, &["--margin", "--scale"])
                }
                "nt-xent" | "ntxent" | "supcon" => {
                    let c = TemperatureConfig {
                        temperature: or(o.temperature, TemperatureConfig::default().temperature),
                    };
                    let config = if name.eq_ignore_ascii_case("supcon") {
                        LossConfig::Supcon(c)
                    } else {
                        LossConfig::NtXent(c)
                    };
                    (config, &["--temperature"])
                }
                _ => {
                    return Err(Error::config(
                        "--loss",
                        format!("unknown loss `{name}` ({LOSS_NAMES})"),
                    ))
                }
            };
        given.retain(|g| !allowed.contains(g));
        if let Some(first) = given.first() {
            return Err(Error::config(
                *first,
                format!(
                    "does not apply to --loss {} (its options: {})",
                    config.name(),
                    allowed.join(", ")
                ),
            ));
        }
        config.check()?;
        Ok(config)
    }

    /// Checks the loss's settings.
    pub fn check(&self) -> Result<()> {
        match self {
            LossConfig::Triplet => Ok(()),
            LossConfig::Contrastive(c) => c.check(),
            LossConfig::MultiSimilarity(c) => c.check(),
            LossConfig::Circle(c) => c.check(),
            LossConfig::ProxyAnchor(c) => c.check(),
            LossConfig::Arcface(c) | LossConfig::Cosface(c) => c.check(),
            LossConfig::NtXent(c) | LossConfig::Supcon(c) => c.check(),
        }
    }
}

impl fmt::Display for LossConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
