//! Classification metrics: accuracy, macro- and weighted-F1, per-class precision and recall.

use serde::Serialize;

/// Precision, recall and F1 of one class.
#[derive(Debug, Clone, Serialize)]
pub struct ClassMetrics {
    /// Class name.
    pub label: String,
    /// Rows of the class in the evaluated set.
    pub support: usize,
    /// Precision.
    pub precision: f64,
    /// Recall.
    pub recall: f64,
    /// F1.
    pub f1: f64,
}

/// The metrics of a set of predictions.
#[derive(Debug, Clone, Serialize)]
pub struct Metrics {
    /// Share of rows predicted right.
    pub accuracy: f64,
    /// Unweighted mean of the per-class F1 (classes present in truth or predictions).
    pub macro_f1: f64,
    /// Support-weighted mean F1.
    pub weighted_f1: f64,
    /// Macro-averaged precision.
    pub macro_precision: f64,
    /// Macro-averaged recall.
    pub macro_recall: f64,
    /// Per class.
    pub per_class: Vec<ClassMetrics>,
}

/// Compare predictions with the truth (`labels` names the class indexes).
pub fn evaluate(truth: &[usize], predicted: &[usize], labels: &[String]) -> Metrics {
    let k = labels.len();
    let (mut tp, mut fp, mut fn_) = (vec![0usize; k], vec![0usize; k], vec![0usize; k]);
    for (&t, &p) in truth.iter().zip(predicted) {
        if t == p {
            tp[t] += 1;
        } else {
            fp[p] += 1;
            fn_[t] += 1;
        }
    }
    let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let mut per_class = Vec::new();
    let (mut f1_sum, mut p_sum, mut r_sum, mut weighted, mut present) = (0.0, 0.0, 0.0, 0.0, 0);
    for c in 0..k {
        let support = tp[c] + fn_[c];
        if support == 0 && fp[c] == 0 {
            continue;
        }
        let precision = ratio(tp[c], tp[c] + fp[c]);
        let recall = ratio(tp[c], support);
        let f1 = if precision + recall == 0.0 { 0.0 } else { 2.0 * precision * recall / (precision + recall) };
        f1_sum += f1;
        p_sum += precision;
        r_sum += recall;
        weighted += f1 * support as f64;
        present += 1;
        per_class.push(ClassMetrics { label: labels[c].clone(), support, precision, recall, f1 });
    }
    let n = truth.len().max(1) as f64;
    let present = f64::from(present.max(1));
    Metrics {
        accuracy: tp.iter().sum::<usize>() as f64 / n,
        macro_f1: f1_sum / present,
        weighted_f1: weighted / n,
        macro_precision: p_sum / present,
        macro_recall: r_sum / present,
        per_class,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        let labels = vec!["a".to_owned(), "b".to_owned()];
        // a: tp 2, fn 1 (predicted b); b: tp 1, fp 1.
        let m = evaluate(&[0, 0, 0, 1], &[0, 0, 1, 1], &labels);
        assert!((m.accuracy - 0.75).abs() < 1e-12);
        let f1_a = 2.0 * 1.0 * (2.0 / 3.0) / (1.0 + 2.0 / 3.0);
        let f1_b = 2.0 * 0.5 * 1.0 / 1.5;
        assert!((m.macro_f1 - (f1_a + f1_b) / 2.0).abs() < 1e-12);
        assert!((m.weighted_f1 - (3.0 * f1_a + f1_b) / 4.0).abs() < 1e-12);
    }
}
