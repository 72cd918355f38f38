//! One-vs-rest linear support vector machines trained by dual coordinate descent (the L2-regularized,
//! L2-loss dual solver of LIBLINEAR, which scikit-learn's `LinearSVC` wraps), on sparse rows.
//!
//! Hand-written because no maintained Rust crate trains linear models on sparse input: linfa's SVM and
//! logistic regression take dense `ndarray` matrices, which a few hundred thousand n-gram columns do not
//! fit. The solver is short: each step updates one training row's dual variable in closed form and adds
//! the change to the weights, so an epoch costs one pass over the non-zeros.

use crate::rng::Rng;

/// Rows of a sparse matrix (compressed sparse rows).
#[derive(Debug, Clone, Default)]
pub struct Csr {
    /// Start of each row in `entries`, plus the end.
    pub indptr: Vec<usize>,
    /// (column, value) pairs.
    pub entries: Vec<(u32, f32)>,
    /// Number of columns.
    pub columns: usize,
}

impl Csr {
    /// An empty matrix with `columns` columns.
    pub fn new(columns: usize) -> Csr {
        Csr { indptr: vec![0], entries: Vec::new(), columns }
    }

    /// Append a row.
    pub fn push(&mut self, row: &[(u32, f32)]) {
        self.entries.extend_from_slice(row);
        self.indptr.push(self.entries.len());
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.indptr.len() - 1
    }

    /// Row `i`.
    pub fn row(&self, i: usize) -> &[(u32, f32)] {
        &self.entries[self.indptr[i]..self.indptr[i + 1]]
    }

    /// The rows at `idx`, in that order.
    pub fn select(&self, idx: &[usize]) -> Csr {
        let mut out = Csr::new(self.columns);
        for &i in idx {
            out.push(self.row(i));
        }
        out
    }
}

/// Solver settings.
#[derive(Debug, Clone)]
pub struct SvmParams {
    /// Inverse regularization strength.
    pub c: f32,
    /// Scale each class's features by their naive-Bayes log-count ratio before fitting (NBSVM, Wang and
    /// Manning 2012): a word seen mostly with one class starts out counting more for it. Strong on bank
    /// strings whose channel codes mark the class (`/MOB/`, `TRF`), weaker on merchant names.
    pub nb_scaling: bool,
    /// Stopping tolerance on the projected gradient's spread (LIBLINEAR's default 0.1).
    pub tolerance: f32,
    /// Most passes over the data. Identical rows with different labels (a merchant filed under two
    /// categories) make the dual ill-conditioned and its last digits slow; 50 passes leave the
    /// predictions as they are at 1,000 on every dataset we measured, at a fraction of the time.
    pub max_epochs: usize,
    /// Seed for the visiting order.
    pub seed: u64,
}

impl Default for SvmParams {
    fn default() -> Self {
        SvmParams { c: 1.0, nb_scaling: false, tolerance: 0.1, max_epochs: 50, seed: 42 }
    }
}

/// A trained one-vs-rest model: `scores[k] = bias[k] + sum(x[j] * weights[j * classes + k])`.
#[derive(Debug, Clone)]
pub struct LinearModel {
    /// Number of classes.
    pub classes: usize,
    /// Feature-major weights (all classes of a feature side by side, so a sparse row touches few
    /// cache lines).
    pub weights: Vec<f32>,
    /// Per-class bias.
    pub bias: Vec<f32>,
}

impl LinearModel {
    /// Decision values of a sparse row into `scores` (length `classes`).
    pub fn scores(&self, row: &[(u32, f32)], scores: &mut [f32]) {
        scores.copy_from_slice(&self.bias);
        let k = self.classes;
        for &(col, v) in row {
            let w = &self.weights[col as usize * k..col as usize * k + k];
            for (s, w) in scores.iter_mut().zip(w) {
                *s += v * w;
            }
        }
    }
}

/// Per class, the naive-Bayes log-count ratio of every feature, feature-major (`r[j * classes + k]`):
/// `ln((p_j / |p|) / (q_j / |q|))` with `p` the (weighted) number of the class's rows that have feature j
/// plus one, `q` the same over the other rows.
fn nb_ratios(x: &Csr, labels: &[usize], row_weight: &[f32], classes: usize) -> Vec<f32> {
    let cols = x.columns;
    let mut count = vec![0f32; cols * classes];
    let mut total = vec![0f32; cols];
    for i in 0..x.rows() {
        let (l, rw) = (labels[i], row_weight[i]);
        for &(c, v) in x.row(i) {
            if v != 0.0 {
                count[c as usize * classes + l] += rw;
                total[c as usize] += rw;
            }
        }
    }
    let mut p_sum = vec![0f64; classes];
    let mut q_sum = vec![0f64; classes];
    for j in 0..cols {
        for k in 0..classes {
            let p = count[j * classes + k] + 1.0;
            p_sum[k] += f64::from(p);
            q_sum[k] += f64::from(total[j] - p + 2.0);
        }
    }
    let mut r = count;
    for j in 0..cols {
        for k in 0..classes {
            let p = f64::from(r[j * classes + k] + 1.0);
            let q = f64::from(total[j]) - p + 2.0;
            r[j * classes + k] = ((p / p_sum[k]) / (q / q_sum[k])).ln() as f32;
        }
    }
    r
}

/// One class's problem: which rows are positive, and with naive-Bayes scaling the class's feature scale.
struct Binary<'a> {
    x: &'a Csr,
    label: usize,
    labels: &'a [usize],
    /// 1 / (2 C_i): the L2 loss's term on the dual's diagonal.
    diag: &'a [f32],
    scale: Option<Vec<f32>>,
}

/// Dual coordinate descent for one class with LIBLINEAR's shrinking: a row at zero whose gradient points
/// outward is left out until the active set converges, then everything is checked once more.
fn train_binary(p: &Binary<'_>, params: &SvmParams, seed: u64) -> (Vec<f32>, f32) {
    let x = p.x;
    let n = x.rows();
    let mut w = vec![0f32; x.columns];
    let mut b = 0f32;
    let mut alpha = vec![0f32; n];
    // With a scale the problem is over x * s; rows are scaled once here rather than in every pass.
    let scaled: Option<Csr> = p.scale.as_ref().map(|s| {
        let mut out = x.clone();
        for (c, v) in &mut out.entries {
            *v *= s[*c as usize];
        }
        out
    });
    let x = scaled.as_ref().unwrap_or(x);
    // Diagonal of the dual's Hessian: |x_i|^2 + 1 (the bias column) + 1 / (2 C_i).
    let qd: Vec<f32> = (0..n).map(|i| x.row(i).iter().map(|(_, v)| v * v).sum::<f32>() + 1.0 + p.diag[i]).collect();
    let mut active: Vec<usize> = (0..n).collect();
    let mut rng = Rng::new(seed);
    let mut pg_max_old = f32::INFINITY;
    for _ in 0..params.max_epochs {
        rng.shuffle(&mut active);
        let (mut pg_max, mut pg_min) = (f32::NEG_INFINITY, f32::INFINITY);
        let mut s = 0;
        while s < active.len() {
            let i = active[s];
            let yi = if p.labels[i] == p.label { 1.0 } else { -1.0 };
            let row = x.row(i);
            let mut dot = b;
            for &(c, v) in row {
                dot += w[c as usize] * v;
            }
            let g = yi * dot - 1.0 + alpha[i] * p.diag[i];
            let pg = if alpha[i] == 0.0 {
                if g > pg_max_old {
                    active.swap_remove(s);
                    continue;
                }
                g.min(0.0)
            } else {
                g
            };
            pg_max = pg_max.max(pg);
            pg_min = pg_min.min(pg);
            if pg.abs() > 1e-12 {
                let old = alpha[i];
                alpha[i] = (old - g / qd[i]).max(0.0);
                let d = (alpha[i] - old) * yi;
                for &(c, v) in row {
                    w[c as usize] += d * v;
                }
                b += d;
            }
            s += 1;
        }
        if pg_max - pg_min <= params.tolerance {
            if active.len() == n {
                break;
            }
            active = (0..n).collect();
            pg_max_old = f32::INFINITY;
            continue;
        }
        // With an unbounded dual (L2 loss) only rows at zero can be shrunk, so only the upper spread
        // matters.
        pg_max_old = if pg_max <= 0.0 { f32::INFINITY } else { pg_max };
    }
    // Scoring uses the unscaled row: fold the scale into the weights.
    if let Some(sc) = &p.scale {
        for (w, s) in w.iter_mut().zip(sc) {
            *w *= s;
        }
    }
    (w, b)
}

/// Train one-vs-rest linear SVMs: `labels[i]` in `0..classes`; row i costs `C * class_weight[labels[i]] *
/// row_weight[i]` (a row weight of n stands for n identical rows, which is exactly equivalent for this
/// loss). Each class is `min 1/2 |w|^2 + sum C_i max(0, 1 - y_i (w.x_i + b))^2` with the bias as an
/// extra feature of value 1 (LIBLINEAR's `-s 1 -B 1`), solved in its dual; the classes are spread over
/// `threads` threads when the problem is big enough to pay for them.
pub fn train(
    x: &Csr,
    labels: &[usize],
    row_weight: &[f32],
    classes: usize,
    class_weight: &[f32],
    params: &SvmParams,
    threads: usize,
) -> LinearModel {
    let diag: Vec<f32> =
        labels.iter().zip(row_weight).map(|(&l, &rw)| 0.5 / (params.c * class_weight[l] * rw)).collect();
    let ratios = params.nb_scaling.then(|| nb_ratios(x, labels, row_weight, classes));
    let mut per_class: Vec<(Vec<f32>, f32)> = vec![(Vec::new(), 0.0); classes];
    let threads = if x.entries.len() < 50_000 { 1 } else { threads.clamp(1, classes.max(1)) };
    let per = classes.div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        for (t, slots) in per_class.chunks_mut(per).enumerate() {
            let (diag, ratios) = (&diag, &ratios);
            let mut work = move || {
                for (j, slot) in slots.iter_mut().enumerate() {
                    let k = t * per + j;
                    let scale = ratios.as_ref().map(|r| (0..x.columns).map(|c| r[c * classes + k]).collect());
                    let problem = Binary { x, label: k, labels, diag, scale };
                    *slot = train_binary(&problem, params, params.seed.wrapping_add(k as u64));
                }
            };
            if threads == 1 {
                work();
            } else {
                scope.spawn(work);
            }
        }
    });
    let mut weights = vec![0f32; x.columns * classes];
    let mut bias = vec![0f32; classes];
    for (k, (w, b)) in per_class.into_iter().enumerate() {
        for (j, v) in w.into_iter().enumerate() {
            weights[j * classes + k] = v;
        }
        bias[k] = b;
    }
    LinearModel { classes, weights, bias }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separable_points_are_separated() {
        // Class 0 lives on column 0, class 1 on column 1, class 2 on both with column 2.
        let mut x = Csr::new(3);
        let mut labels = Vec::new();
        for i in 0..30 {
            match i % 3 {
                0 => x.push(&[(0, 1.0)]),
                1 => x.push(&[(1, 1.0)]),
                _ => x.push(&[(0, 0.5), (1, 0.5), (2, 1.0)]),
            }
            labels.push(i % 3);
        }
        let m = train(&x, &labels, &[1.0; 30], 3, &[1.0; 3], &SvmParams::default(), 2);
        let mut s = [0f32; 3];
        for (i, label) in labels.iter().enumerate() {
            m.scores(x.row(i), &mut s);
            let best = (0..3).max_by(|a, b| s[*a].total_cmp(&s[*b])).unwrap();
            assert_eq!(best, *label, "row {i}: {s:?}");
        }
    }
}
