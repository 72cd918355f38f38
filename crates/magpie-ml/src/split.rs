//! Stratified splits: every class keeps its share in each part.

use crate::rng::Rng;

/// Row indexes grouped by label, each group shuffled.
fn by_class(labels: &[usize], classes: usize, rng: &mut Rng) -> Vec<Vec<usize>> {
    let mut groups = vec![Vec::new(); classes];
    for (i, &l) in labels.iter().enumerate() {
        groups[l].push(i);
    }
    for g in &mut groups {
        rng.shuffle(g);
    }
    groups
}

/// (train, test) indexes with `test_fraction` of each class in the test part (at least one row of a class
/// with two or more; rounding as scikit-learn's `train_test_split` does overall).
pub fn train_test(labels: &[usize], classes: usize, test_fraction: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let mut rng = Rng::new(seed);
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for g in by_class(labels, classes, &mut rng) {
        let mut t = (g.len() as f64 * test_fraction).round() as usize;
        if g.len() >= 2 {
            t = t.clamp(1, g.len() - 1);
        } else {
            t = 0;
        }
        test.extend_from_slice(&g[..t]);
        train.extend_from_slice(&g[t..]);
    }
    rng.shuffle(&mut train);
    rng.shuffle(&mut test);
    (train, test)
}

/// `k` stratified folds: each row in exactly one fold.
pub fn folds(labels: &[usize], classes: usize, k: usize, seed: u64) -> Vec<Vec<usize>> {
    let mut rng = Rng::new(seed);
    let mut out = vec![Vec::new(); k];
    let mut next = 0;
    for g in by_class(labels, classes, &mut rng) {
        for i in g {
            out[next % k].push(i);
            next += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_are_stratified_disjoint_and_deterministic() {
        let labels: Vec<usize> = (0..100).map(|i| if i < 80 { 0 } else { 1 }).collect();
        let (tr, te) = train_test(&labels, 2, 0.2, 42);
        assert_eq!((tr.len(), te.len()), (80, 20));
        assert_eq!(te.iter().filter(|&&i| labels[i] == 1).count(), 4);
        let mut all: Vec<usize> = tr.iter().chain(&te).copied().collect();
        all.sort();
        assert_eq!(all, (0..100).collect::<Vec<_>>());
        assert_eq!(train_test(&labels, 2, 0.2, 42), (tr, te));
        let f = folds(&labels, 2, 3, 1);
        assert_eq!(f.iter().map(Vec::len).sum::<usize>(), 100);
        assert!(f.iter().all(|fold| fold.iter().any(|&i| labels[i] == 1)));
    }
}
