//! Turning a model's top-class probability into a confidence that means what it says: among
//! predictions made with confidence 0.8, eight in ten are right.
//!
//! A softmax over one-vs-rest SVM scores, even with a fitted temperature, is under-confident for
//! unsure predictions and over-confident for sure ones. The calibrator is fitted on out-of-fold
//! predictions (each training row predicted by a model that did not see it): isotonic regression of
//! correctness on the probability when there are enough of them, Platt scaling (a logistic fit on the
//! probability's logit) when there are few. Either way it is kept as a monotone piecewise-linear map.

use serde::{Deserialize, Serialize};

/// Out-of-fold predictions needed for isotonic regression; below, Platt scaling.
const ISOTONIC_MIN: usize = 300;

/// A monotone map from probability to confidence, piecewise linear between knots.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibrator {
    /// (probability, confidence) knots, probability increasing, confidence non-decreasing.
    pub knots: Vec<(f32, f32)>,
}

impl Default for Calibrator {
    /// The identity.
    fn default() -> Self {
        Calibrator { knots: vec![(0.0, 0.0), (1.0, 1.0)] }
    }
}

impl Calibrator {
    /// Fit on (top-class probability, whether the prediction was right) pairs.
    pub fn fit(pairs: &[(f32, bool)]) -> Calibrator {
        if pairs.len() < 20 {
            return Calibrator::default();
        }
        if pairs.len() >= ISOTONIC_MIN { isotonic(pairs) } else { platt(pairs) }
    }

    /// The confidence of a probability.
    pub fn apply(&self, p: f32) -> f32 {
        let k = &self.knots;
        if k.is_empty() || !p.is_finite() {
            return p.clamp(0.0, 1.0);
        }
        if p <= k[0].0 {
            return k[0].1;
        }
        for w in k.windows(2) {
            let ((x0, y0), (x1, y1)) = (w[0], w[1]);
            if p <= x1 {
                let t = if x1 > x0 { (p - x0) / (x1 - x0) } else { 1.0 };
                return y0 + t * (y1 - y0);
            }
        }
        k[k.len() - 1].1
    }

    /// Whether the knots are well formed (finite, in 0..1, increasing, monotone), for loading files.
    pub fn is_valid(&self) -> bool {
        !self.knots.is_empty()
            && self
                .knots
                .iter()
                .all(|(x, y)| x.is_finite() && y.is_finite() && (0.0..=1.0).contains(x) && (0.0..=1.0).contains(y))
            && self.knots.windows(2).all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1)
    }
}

/// Pool adjacent violators over bins of at least `max(10, n / 50)` predictions (so that no knot rests
/// on a handful of rows), each block's confidence smoothed as (right + 1) / (n + 2).
fn isotonic(pairs: &[(f32, bool)]) -> Calibrator {
    let mut sorted: Vec<(f32, bool)> = pairs.iter().copied().filter(|(p, _)| p.is_finite()).collect();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    let bin = (sorted.len() / 50).max(10);
    // (sum of probabilities, rights, count)
    let mut blocks: Vec<(f64, f64, f64)> = Vec::new();
    for chunk in sorted.chunks(bin) {
        let p: f64 = chunk.iter().map(|(p, _)| f64::from(*p)).sum();
        let r = chunk.iter().filter(|(_, ok)| *ok).count() as f64;
        blocks.push((p, r, chunk.len() as f64));
        // Merge while the last block's accuracy is below the one before it.
        while blocks.len() >= 2 {
            let (a, b) = (blocks[blocks.len() - 2], blocks[blocks.len() - 1]);
            if (a.1 + 1.0) / (a.2 + 2.0) <= (b.1 + 1.0) / (b.2 + 2.0) {
                break;
            }
            blocks.pop();
            let last = blocks.len() - 1;
            blocks[last] = (a.0 + b.0, a.1 + b.1, a.2 + b.2);
        }
    }
    let mut knots: Vec<(f32, f32)> =
        blocks.iter().map(|(p, r, n)| ((p / n) as f32, ((r + 1.0) / (n + 2.0)) as f32)).collect();
    // Two blocks can share a mean probability after merging; keep x strictly usable for interpolation.
    knots.dedup_by(|b, a| b.0 <= a.0);
    if knots.first().is_some_and(|k| k.0 > 0.0) {
        knots.insert(0, (0.0, knots[0].1));
    }
    if knots.last().is_some_and(|k| k.0 < 1.0) {
        let y = knots[knots.len() - 1].1;
        knots.push((1.0, y));
    }
    Calibrator { knots }
}

fn logit(p: f32) -> f64 {
    let p = f64::from(p).clamp(1e-4, 1.0 - 1e-4);
    (p / (1.0 - p)).ln()
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

/// `confidence = sigmoid(a * logit(p) + b)`, fitted by Newton's method on the log-loss (with Platt's
/// smoothed targets), tabulated at 21 knots.
fn platt(pairs: &[(f32, bool)]) -> Calibrator {
    let n1 = pairs.iter().filter(|(_, ok)| *ok).count() as f64;
    let n0 = pairs.len() as f64 - n1;
    let (t1, t0) = ((n1 + 1.0) / (n1 + 2.0), 1.0 / (n0 + 2.0));
    let data: Vec<(f64, f64)> = pairs.iter().map(|(p, ok)| (logit(*p), if *ok { t1 } else { t0 })).collect();
    let loss = |a: f64, b: f64| -> f64 {
        data.iter()
            .map(|(z, t)| {
                let s = a * z + b;
                // log(1 + e^s) - t s, computed without overflow.
                (if s > 0.0 { s + (-s).exp().ln_1p() } else { s.exp().ln_1p() }) - t * s
            })
            .sum()
    };
    let (mut a, mut b) = (1.0f64, 0.0f64);
    let mut current = loss(a, b);
    for _ in 0..100 {
        let (mut ga, mut gb, mut haa, mut hab, mut hbb) = (0.0, 0.0, 1e-12, 0.0, 1e-12);
        for (z, t) in &data {
            let q = sigmoid(a * z + b);
            let d = q - t;
            let w = q * (1.0 - q);
            ga += d * z;
            gb += d;
            haa += w * z * z;
            hab += w * z;
            hbb += w;
        }
        let det = haa * hbb - hab * hab;
        if det.abs() < 1e-15 {
            break;
        }
        let (da, db) = ((hbb * ga - hab * gb) / det, (haa * gb - hab * ga) / det);
        // Newton's step, halved until the loss goes down (a full step can overshoot).
        let mut step = 1.0;
        let mut improved = false;
        while step > 1e-6 {
            let (na, nb) = (a - step * da, b - step * db);
            let l = loss(na, nb);
            if l < current {
                (a, b, current, improved) = (na, nb, l, true);
                break;
            }
            step /= 2.0;
        }
        if !improved || (step * (da.abs() + db.abs())) < 1e-10 {
            break;
        }
    }
    // A negative slope would mean "surer is less often right": not a calibration to trust.
    if !a.is_finite() || !b.is_finite() || a <= 0.0 {
        return Calibrator::default();
    }
    let knots = (0..=20)
        .map(|i| {
            let p = i as f32 / 20.0;
            (p, sigmoid(a * logit(p) + b) as f32)
        })
        .collect();
    Calibrator { knots }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_overconfident_model_is_pulled_back() {
        // Predictions at 0.9 are right half of the time, at 0.3 a fifth.
        let mut pairs = Vec::new();
        for i in 0..1000 {
            pairs.push((0.9, i % 2 == 0));
            pairs.push((0.3, i % 5 == 0));
        }
        let c = Calibrator::fit(&pairs);
        assert!(c.is_valid());
        assert!((c.apply(0.9) - 0.5).abs() < 0.03, "{}", c.apply(0.9));
        assert!((c.apply(0.3) - 0.2).abs() < 0.03, "{}", c.apply(0.3));
        // Monotone in between.
        assert!(c.apply(0.5) >= c.apply(0.3) && c.apply(0.5) <= c.apply(0.9));
        // Few pairs: Platt scaling, also monotone and pulled back.
        let small: Vec<(f32, bool)> = (0..50).flat_map(|i| [(0.9, i % 2 == 0), (0.3, i % 5 == 0)]).collect();
        let p = Calibrator::fit(&small);
        assert!(p.is_valid() && p.apply(0.9) < 0.75, "{}", p.apply(0.9));
    }

    #[test]
    fn too_little_data_leaves_probabilities_alone() {
        let c = Calibrator::fit(&[(0.7, true); 5]);
        assert_eq!(c.apply(0.7), 0.7);
    }
}
