//! The Barnes–Hut machinery of `tsne`: points sorted along a Z-order (Morton) curve, and a
//! point-region quadtree over the 2-D layout whose cells far enough away (width / distance < θ)
//! stand for all their points in the repulsive forces.

/// Point indices sorted along a Z-order curve over the layout's bounding box.
pub(crate) fn morton_order(y: &[[f32; 2]]) -> Vec<u32> {
    let (lo, hi) = bounds(y);
    let scale = [
        65535.0 / (hi[0] - lo[0]).max(f32::MIN_POSITIVE),
        65535.0 / (hi[1] - lo[1]).max(f32::MIN_POSITIVE),
    ];
    let spread = |v: u32| {
        let mut v = u64::from(v) & 0xffff;
        v = (v | (v << 8)) & 0x00ff_00ff;
        v = (v | (v << 4)) & 0x0f0f_0f0f;
        v = (v | (v << 2)) & 0x3333_3333;
        (v | (v << 1)) & 0x5555_5555
    };
    let mut keyed: Vec<u64> = y
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let qx = ((p[0] - lo[0]) * scale[0]) as u32;
            let qy = ((p[1] - lo[1]) * scale[1]) as u32;
            ((spread(qx) | (spread(qy) << 1)) << 32) | i as u64
        })
        .collect();
    keyed.sort_unstable();
    keyed.into_iter().map(|k| k as u32).collect()
}

fn bounds(y: &[[f32; 2]]) -> ([f32; 2], [f32; 2]) {
    let (mut lo, mut hi) = ([f32::INFINITY; 2], [f32::NEG_INFINITY; 2]);
    for p in y {
        for c in 0..2 {
            lo[c] = lo[c].min(p[c]);
            hi[c] = hi[c].max(p[c]);
        }
    }
    (lo, hi)
}

/// A point-region quadtree over the layout in one arena; the children of a node are four
/// consecutive nodes. The traversal reads only `summary` (centre of mass, count, squared
/// width: 16 bytes) and `links`; the geometry used while inserting lives apart.
pub(crate) struct QuadTree {
    /// [centre of mass x, y, point count, (cell width)²].
    summary: Vec<[f32; 4]>,
    /// [first child (0 for a leaf), the leaf's point (u32::MAX when empty)].
    links: Vec<[u32; 2]>,
    /// [cell centre x, y, half width], for insertion.
    cells: Vec<[f32; 3]>,
}

/// Deeper than this, coincident points share a leaf instead of splitting forever.
const MAX_DEPTH: usize = 48;

impl QuadTree {
    pub(crate) fn build(y: &[[f32; 2]], order: &[u32]) -> Self {
        let (lo, hi) = bounds(y);
        let centre = [(lo[0] + hi[0]) / 2.0, (lo[1] + hi[1]) / 2.0];
        let half = ((hi[0] - lo[0]).max(hi[1] - lo[1]) / 2.0) * (1.0 + 1e-5) + 1e-12;
        let capacity = 3 * y.len() + 1;
        let mut tree = QuadTree {
            summary: Vec::with_capacity(capacity),
            links: Vec::with_capacity(capacity),
            cells: Vec::with_capacity(capacity),
        };
        tree.push_cell([centre[0], centre[1], half]);
        for &i in order {
            tree.insert(i, y[i as usize], y);
        }
        for s in &mut tree.summary {
            if s[2] > 0.0 {
                s[0] /= s[2];
                s[1] /= s[2];
            }
        }
        tree
    }

    fn push_cell(&mut self, cell: [f32; 3]) {
        let width = 2.0 * cell[2];
        self.summary.push([0.0, 0.0, 0.0, width * width]);
        self.links.push([0, u32::MAX]);
        self.cells.push(cell);
    }

    fn insert(&mut self, index: u32, p: [f32; 2], y: &[[f32; 2]]) {
        let mut at = 0usize;
        for depth in 0.. {
            let s = &mut self.summary[at];
            s[0] += p[0];
            s[1] += p[1];
            s[2] += 1.0;
            let count = s[2];
            if self.links[at][0] == 0 {
                if count == 1.0 {
                    self.links[at][1] = index;
                    return;
                }
                let other = self.links[at][1];
                let q = y[other as usize];
                if depth >= MAX_DEPTH || q == p {
                    return; // coincident (or nearly): share this leaf
                }
                self.split(at);
                // Move the resident point one level down, then go on with the new one.
                let child = self.child_for(at, q);
                self.summary[child][0] = q[0];
                self.summary[child][1] = q[1];
                self.summary[child][2] = 1.0;
                self.links[child][1] = other;
                self.links[at][1] = u32::MAX;
            }
            at = self.child_for(at, p);
        }
    }

    fn split(&mut self, at: usize) {
        let [cx, cy, half] = self.cells[at];
        let h = half / 2.0;
        let first = self.summary.len() as u32;
        for q in 0..4 {
            let x = if q & 1 == 1 { cx + h } else { cx - h };
            let y = if q & 2 == 2 { cy + h } else { cy - h };
            self.push_cell([x, y, h]);
        }
        self.links[at][0] = first;
    }

    fn child_for(&self, at: usize, p: [f32; 2]) -> usize {
        let [cx, cy, _] = self.cells[at];
        let q = usize::from(p[0] >= cx) + 2 * usize::from(p[1] >= cy);
        self.links[at][0] as usize + q
    }

    /// Σ_j q_ij² Z² (y_i − y_j) and Σ_j q_ij Z over all j ≠ i; a cell is summarised when
    /// (cell width)² < θ² · distance².
    pub(crate) fn repulsion(
        &self,
        i: u32,
        yi: [f32; 2],
        theta2: f32,
        stack: &mut Vec<u32>,
    ) -> ([f32; 2], f32) {
        let (mut fx, mut fy, mut sum_q) = (0f32, 0f32, 0f32);
        stack.clear();
        stack.push(0);
        while let Some(at) = stack.pop() {
            let [mx, my, count, width2] = self.summary[at as usize];
            let [child, point] = self.links[at as usize];
            let (dx, dy) = (yi[0] - mx, yi[1] - my);
            let d2 = dx * dx + dy * dy;
            let count = if child == 0 {
                // A leaf: itself excluded.
                if point == i {
                    count - 1.0
                } else {
                    count
                }
            } else if width2 < theta2 * d2 {
                count
            } else {
                for c in child..child + 4 {
                    if self.summary[c as usize][2] > 0.0 {
                        stack.push(c);
                    }
                }
                continue;
            };
            let q = 1.0 / (1.0 + d2);
            let cq = count * q;
            sum_q += cq;
            fx += cq * q * dx;
            fy += cq * q * dy;
        }
        ([fx, fy], sum_q)
    }
}
