//! The hand-made open-set fixture: two classes in 2-D whose statistics are known by hand.

/// Two classes in 2-D: class 0 around (0, 0), class 1 around (10, 0), each spread ±1 in x and
/// ±2 in y, so the shared covariance is diag(0.5, 2) and the class means are (0, 0), (10, 0).
pub fn two_classes() -> (Vec<f32>, Vec<u32>) {
    let mut x = Vec::new();
    let mut labels = Vec::new();
    for (c, cx) in [(0u32, 0.0f32), (1, 10.0)] {
        for (dx, dy) in [(1.0, 0.0), (-1.0, 0.0), (0.0, 2.0), (0.0, -2.0)] {
            x.extend([cx + dx, dy]);
            labels.push(c);
        }
    }
    (x, labels)
}
