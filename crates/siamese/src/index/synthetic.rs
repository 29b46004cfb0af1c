//! Face-like embeddings for the index and clustering benchmarks: `people` random centres, each
//! with `per_person` faces scattered around it, seeded, with the spread of dlib's 128-d face
//! embeddings on LFW.
//!
//! A centre is a Gaussian draw whose coordinate `i` (1-based) has variance proportional to
//! `1/i`, in all [`CENTRE_VARIANCE`]: like real embeddings, the people spread over a few strong
//! directions (about 18 effective dimensions) rather than uniformly over the sphere, where no
//! index can route (on uniform random centres HNSW reached recall@10 0.85 at ef 256 on 100,000
//! vectors). A face adds isotropic Gaussian noise of per-coordinate deviation `s / √dim`, with
//! `s` drawn per person uniformly in [`SPREAD`]. Two faces of one person are then 0.34–0.55
//! apart (10th–90th percentile), two people 0.77–1.05: the ranges of dlib's embeddings on LFW
//! (same person 0.3–0.6, different people 0.8–1.0).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Total variance of the person centres (sum over the coordinates).
pub const CENTRE_VARIANCE: f32 = 0.30;
/// Range of a person's spread `s` (the distance of a face to its centre, about).
pub const SPREAD: (f32, f32) = (0.22, 0.40);

/// A standard normal draw (Box–Muller; two uniforms per draw, deterministic under the seed).
fn normal(rng: &mut ChaCha8Rng) -> f32 {
    let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
    let u2: f64 = rng.random();
    ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
}

/// Person centres and spreads: `[people, dim]` row-major and one spread each.
pub fn centres(people: usize, dim: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let weights: Vec<f32> = (1..=dim).map(|i| 1.0 / i as f32).collect();
    let total: f32 = weights.iter().sum();
    let deviation: Vec<f32> = weights
        .iter()
        .map(|w| (CENTRE_VARIANCE * w / total).sqrt())
        .collect();
    let mut out = Vec::with_capacity(people * dim);
    let mut spreads = Vec::with_capacity(people);
    for _ in 0..people {
        out.extend(deviation.iter().map(|d| d * normal(&mut rng)));
        spreads.push(rng.random_range(SPREAD.0..SPREAD.1));
    }
    (out, spreads)
}

/// One face of the person with centre `centre` and spread `s`.
fn face(centre: &[f32], s: f32, rng: &mut ChaCha8Rng, out: &mut Vec<f32>) {
    let scale = s / (centre.len() as f32).sqrt();
    out.extend(centre.iter().map(|&c| c + scale * normal(rng)));
}

/// `people × per_person` faces (person after person) and each face's person.
pub fn faces(people: usize, per_person: usize, dim: usize, seed: u64) -> (Vec<f32>, Vec<u32>) {
    let (c, s) = centres(people, dim, seed);
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5EED_FACE);
    let mut data = Vec::with_capacity(people * per_person * dim);
    let mut truth = Vec::with_capacity(people * per_person);
    for p in 0..people {
        for _ in 0..per_person {
            face(&c[p * dim..(p + 1) * dim], s[p], &mut rng, &mut data);
            truth.push(p as u32);
        }
    }
    (data, truth)
}

/// `count` new faces of randomly chosen people among those [`faces`] made with `seed` (fresh
/// photos of known people: the queries of the index benchmark).
pub fn queries(people: usize, dim: usize, seed: u64, count: usize) -> Vec<f32> {
    let (c, s) = centres(people, dim, seed);
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x0005_17E5);
    let mut out = Vec::with_capacity(count * dim);
    for _ in 0..count {
        let p = rng.random_range(0..people);
        face(&c[p * dim..(p + 1) * dim], s[p], &mut rng, &mut out);
    }
    out
}
