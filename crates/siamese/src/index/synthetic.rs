//! Face-like embeddings for the index and clustering benchmarks: `people` random centres, each
//! with `per_person` faces scattered around it, seeded, with the spread of dlib's 128-d face
//! embeddings on LFW.
//!
//! A centre is a Gaussian draw whose coordinate `i` (1-based) has variance proportional to
//! `1/i`, in all [`CENTRE_VARIANCE`]: like real embeddings, the people spread over a few strong
//! directions (about 20 effective dimensions) rather than uniformly over the sphere, where no
//! index can route (on uniform random centres HNSW reached recall@10 0.85 at ef 256 on 100,000
//! vectors). A face adds Gaussian noise whose coordinate `i` has variance proportional to
//! `i^-`[`NOISE_DECAY`] (about 60 effective dimensions, strongest along the centres' strong
//! directions), scaled to a squared length of `(s·t)²` on average: `s` is the person's spread
//! (log-normal around [`SPREAD_MEDIAN`], [`PERSON_SPREAD_SIGMA`]) and `t` the face's own factor
//! (log-normal with [`FACE_SPREAD_SIGMA`], mean square 1), since some photos of a person are
//! typical and some are not.
//!
//! Every constant is fitted to dlib's 128-d embeddings of the LFW people with at least 10
//! photos (10 drawn each; numbers as 10th / 50th / 90th percentile, LFW then these vectors):
//! two faces of one person 0.342 / 0.438 / 0.538 apart against 0.354 / 0.434 / 0.533; a face
//! and its nearest face of the same person 0.278 / 0.359 / 0.440 against 0.310 / 0.372 / 0.446
//! (92.5 % against 92.0 % under chinese whispers' default cut 0.453); a face to its person's
//! mean 0.234 / 0.290 / 0.361 against 0.229 / 0.289 / 0.364; two people's means 0.566 / 0.690
//! / 0.819 against 0.582 / 0.686 / 0.848; within-person variance 0.095 against 0.089 over 60
//! effective dimensions against 60. An earlier, isotropic version with one spread a person
//! matched the first figure only: its people fell apart into 3.7 times too many clusters.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Total variance of the person centres (sum over the coordinates).
pub const CENTRE_VARIANCE: f32 = 0.24;
/// Median of a person's spread `s` (the root-mean-square distance of a face to its centre).
pub const SPREAD_MEDIAN: f32 = 0.315;
/// Log-normal sigma of the spread across people.
pub const PERSON_SPREAD_SIGMA: f32 = 0.07;
/// Log-normal sigma of a face's own factor on its person's spread.
pub const FACE_SPREAD_SIGMA: f32 = 0.16;
/// The face noise's variance of coordinate `i` (1-based) is proportional to `i^-NOISE_DECAY`.
pub const NOISE_DECAY: f32 = 0.62;

/// A standard normal draw (Box–Muller; two uniforms per draw, deterministic under the seed).
fn normal(rng: &mut ChaCha8Rng) -> f32 {
    let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
    let u2: f64 = rng.random();
    ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
}

/// Per-coordinate standard deviations whose variances are proportional to `i^-decay` and sum
/// to `total`.
fn deviations(dim: usize, decay: f32, total: f32) -> Vec<f32> {
    let weights: Vec<f32> = (1..=dim).map(|i| (i as f32).powf(-decay)).collect();
    let sum: f32 = weights.iter().sum();
    weights.iter().map(|w| (total * w / sum).sqrt()).collect()
}

/// Person centres and spreads: `[people, dim]` row-major and one spread each.
pub fn centres(people: usize, dim: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let deviation = deviations(dim, 1.0, CENTRE_VARIANCE);
    let mut out = Vec::with_capacity(people * dim);
    let mut spreads = Vec::with_capacity(people);
    for _ in 0..people {
        out.extend(deviation.iter().map(|d| d * normal(&mut rng)));
        spreads.push(SPREAD_MEDIAN * (PERSON_SPREAD_SIGMA * normal(&mut rng)).exp());
    }
    (out, spreads)
}

/// One face of the person with centre `centre` and spread `s`; `noise` is
/// `deviations(dim, NOISE_DECAY, 1.0)`.
fn face(centre: &[f32], s: f32, noise: &[f32], rng: &mut ChaCha8Rng, out: &mut Vec<f32>) {
    // exp(σ·N(0,1)) has mean square exp(2σ²): divide it out so `s` stays the RMS distance.
    let sigma = FACE_SPREAD_SIGMA;
    let t = (sigma * normal(rng) - sigma * sigma).exp();
    let scale = s * t;
    out.extend(
        centre
            .iter()
            .zip(noise)
            .map(|(&c, &d)| c + scale * d * normal(rng)),
    );
}

/// `people × per_person` faces (person after person) and each face's person.
pub fn faces(people: usize, per_person: usize, dim: usize, seed: u64) -> (Vec<f32>, Vec<u32>) {
    let (c, s) = centres(people, dim, seed);
    let noise = deviations(dim, NOISE_DECAY, 1.0);
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5EED_FACE);
    let mut data = Vec::with_capacity(people * per_person * dim);
    let mut truth = Vec::with_capacity(people * per_person);
    for p in 0..people {
        for _ in 0..per_person {
            face(
                &c[p * dim..(p + 1) * dim],
                s[p],
                &noise,
                &mut rng,
                &mut data,
            );
            truth.push(p as u32);
        }
    }
    (data, truth)
}

/// `count` new faces of randomly chosen people among those [`faces`] made with `seed` (fresh
/// photos of known people: the queries of the index benchmark).
pub fn queries(people: usize, dim: usize, seed: u64, count: usize) -> Vec<f32> {
    let (c, s) = centres(people, dim, seed);
    let noise = deviations(dim, NOISE_DECAY, 1.0);
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x0005_17E5);
    let mut out = Vec::with_capacity(count * dim);
    for _ in 0..count {
        let p = rng.random_range(0..people);
        face(&c[p * dim..(p + 1) * dim], s[p], &noise, &mut rng, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn percentile(mut v: Vec<f32>, p: f64) -> f32 {
        v.sort_by(f32::total_cmp);
        v[((v.len() - 1) as f64 * p).round() as usize]
    }

    fn distance(a: &[f32], b: &[f32]) -> f32 {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y) * (x - y))
            .sum::<f32>()
            .sqrt()
    }

    /// The figures of the module's docs, within what 400 people's sampling moves them.
    #[test]
    fn faces_have_the_spread_measured_on_lfw() {
        let dim = 128;
        let (data, truth) = faces(400, 10, dim, 5);
        assert_eq!((data.len(), truth.len()), (400 * 10 * dim, 4000));
        let (mut pairs, mut nearest, mut means) = (Vec::new(), Vec::new(), Vec::new());
        for person in data.chunks_exact(10 * dim) {
            let rows: Vec<&[f32]> = person.chunks_exact(dim).collect();
            for (i, a) in rows.iter().enumerate() {
                let mut best = f32::INFINITY;
                for (j, b) in rows.iter().enumerate() {
                    if i != j {
                        best = best.min(distance(a, b));
                        if j > i {
                            pairs.push(distance(a, b));
                        }
                    }
                }
                nearest.push(best);
            }
            means.push(
                (0..dim)
                    .map(|c| rows.iter().map(|r| r[c]).sum::<f32>() / 10.0)
                    .collect::<Vec<f32>>(),
            );
        }
        let between: Vec<f32> = (0..200)
            .flat_map(|i| ((i + 1)..200).map(move |j| (i, j)))
            .map(|(i, j)| distance(&means[i], &means[j]))
            .collect();
        let close = |got: f32, want: f32| (got - want).abs() < 0.015;
        for (name, values, want) in [
            ("same-person pairs", &pairs, [0.354, 0.434, 0.533]),
            ("nearest same-person face", &nearest, [0.310, 0.372, 0.446]),
            ("two people's means", &between, [0.582, 0.686, 0.848]),
        ] {
            let got = [0.1, 0.5, 0.9].map(|p| percentile(values.clone(), p));
            assert!(
                got.iter().zip(want).all(|(&g, w)| close(g, w)),
                "{name}: {got:?}, want {want:?}"
            );
        }
        let under_cut = nearest.iter().filter(|&&d| d < 0.453).count() as f64 / 4000.0;
        assert!((0.89..0.95).contains(&under_cut), "{under_cut}");
        // Seeded: the same call gives the same vectors, another seed others.
        assert_eq!(faces(3, 2, 8, 1), faces(3, 2, 8, 1));
        assert_ne!(faces(3, 2, 8, 1).0, faces(3, 2, 8, 2).0);
    }
}
