//! Comparing the face network's embeddings with a numpy reference fixture
//! (`tests/fixtures/faces/resnet_reference*.json`, made by `shared/tools/face_reference.py`).

use serde_json::Value;
use siamese::distance::euclidean;

/// A JSON array of numbers as `f32`s.
pub fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

/// `got` (`n × 128`, row-major) against the fixture's `images[i].embedding` (every value within
/// 1e-3) and its `distances` (every pairwise Euclidean distance within 1e-3).
pub fn assert_matches_reference(got: &[f32], reference: &Value) {
    let items = reference["images"].as_array().unwrap();
    assert_eq!(got.len(), items.len() * 128);
    let rows: Vec<&[f32]> = got.chunks_exact(128).collect();
    for (i, (row, item)) in rows.iter().zip(items).enumerate() {
        let want = floats(&item["embedding"]);
        let max_diff = row
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(
            max_diff < 1e-3,
            "image {i}: max |diff| {max_diff} vs the numpy reference"
        );
    }
    let distances = reference["distances"].as_array().unwrap();
    for i in 0..rows.len() {
        for j in 0..rows.len() {
            let want = distances[i][j].as_f64().unwrap() as f32;
            let d = euclidean(rows[i], rows[j]);
            assert!((d - want).abs() < 1e-3, "distance {i}-{j}: {d} vs {want}");
        }
    }
}
