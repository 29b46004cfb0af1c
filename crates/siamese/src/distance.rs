//! Distances between embedding vectors (`&[f32]` of one length), named as in the CLI and configs:
//! `euclidean`, `squared_euclidean`, `cosine`, `l1`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::Error;

/// A distance between two embeddings. Serialised in lowercase (`"squared_euclidean"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Distance {
    /// ‖a − b‖₂.
    #[default]
    Euclidean,
    /// ‖a − b‖₂².
    SquaredEuclidean,
    /// 1 − a·b / (‖a‖ ‖b‖); a zero vector is at distance 1 from everything.
    Cosine,
    /// Σ |aᵢ − bᵢ|.
    L1,
}

impl Distance {
    /// Every distance, in the order the CLI lists them.
    pub const ALL: [Distance; 4] = [
        Distance::Euclidean,
        Distance::SquaredEuclidean,
        Distance::Cosine,
        Distance::L1,
    ];

    /// The lowercase name used in configs, JSON and on the command line.
    pub fn name(&self) -> &'static str {
        match self {
            Distance::Euclidean => "euclidean",
            Distance::SquaredEuclidean => "squared_euclidean",
            Distance::Cosine => "cosine",
            Distance::L1 => "l1",
        }
    }

    /// The distance between `a` and `b` (which must have the same length; extra entries of the
    /// longer one are ignored).
    pub fn between(&self, a: &[f32], b: &[f32]) -> f32 {
        match self {
            Distance::Euclidean => squared_euclidean(a, b).sqrt(),
            Distance::SquaredEuclidean => squared_euclidean(a, b),
            Distance::Cosine => {
                let (dot, na, nb) = a
                    .iter()
                    .zip(b)
                    .fold((0f32, 0f32, 0f32), |(d, x, y), (p, q)| {
                        (d + p * q, x + p * p, y + q * q)
                    });
                let denom = (na * nb).sqrt();
                if denom > 0.0 {
                    (1.0 - dot / denom).max(0.0)
                } else {
                    1.0
                }
            }
            Distance::L1 => a.iter().zip(b).map(|(p, q)| (p - q).abs()).sum(),
        }
    }
}

/// ‖a − b‖₂: the distance of face verification and of the default embeddings.
pub fn euclidean(a: &[f32], b: &[f32]) -> f32 {
    squared_euclidean(a, b).sqrt()
}

fn squared_euclidean(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(p, q)| (p - q) * (p - q)).sum()
}

impl fmt::Display for Distance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Distance {
    type Err = Error;

    /// Parses the lowercase names; `sqeuclidean`, `squared-euclidean` and `manhattan` are accepted too.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().replace('-', "_").as_str() {
            "euclidean" | "l2" => Ok(Distance::Euclidean),
            "squared_euclidean" | "sqeuclidean" => Ok(Distance::SquaredEuclidean),
            "cosine" => Ok(Distance::Cosine),
            "l1" | "manhattan" => Ok(Distance::L1),
            _ => Err(Error::config(
                "distance",
                format!("`{s}` is not one of euclidean, squared_euclidean, cosine, l1"),
            )),
        }
    }
}
