//! The categorizer: features, a one-vs-rest linear SVM, and a temperature that turns its decision
//! values into calibrated probabilities; trained from labelled examples, saved to and loaded from a
//! versioned model file.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use std::collections::HashMap;

use crate::calibrate::Calibrator;
use crate::features::{self, Counter, Example, FeatureConfig, Scratch, Vocabulary};
use crate::linear::{self, Csr, LinearModel, SvmParams};
use crate::split;

/// Why training or loading failed.
#[derive(Debug, thiserror::Error)]
pub enum MlError {
    /// Not enough to learn from.
    #[error("cannot train: {0}")]
    Training(String),
    /// A model file that cannot be used.
    #[error("invalid model file: {0}")]
    ModelFile(String),
}

/// How much each class's rows weigh in training.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClassWeight {
    /// Every row the same.
    Uniform,
    /// Rows of rare classes weigh more, by the square root of the imbalance: a middle way between
    /// accuracy (uniform) and macro-F1 (fully balanced).
    SqrtBalanced,
    /// Every class weighs the same in total.
    Balanced,
}

/// One setting of the solver the trainer may pick.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    /// Inverse regularization strength.
    pub c: f32,
    /// Naive-Bayes feature scaling (see [`SvmParams::nb_scaling`]).
    pub nb_scaling: bool,
}

/// Training settings.
#[derive(Debug, Clone)]
pub struct TrainConfig {
    /// Features.
    pub features: FeatureConfig,
    /// Solver (its `c` and `nb_scaling` are replaced by the chosen candidate).
    pub svm: SvmParams,
    /// Class weights.
    pub class_weight: ClassWeight,
    /// Folds of the cross-validation that picks a candidate and calibrates the probabilities on
    /// out-of-fold decision values (below 2: no selection, no calibration).
    pub calibration_folds: usize,
    /// Folds used instead when there are at most `small_rows` rows: a small ledger is cheap to train and
    /// its estimates are noisy, so more folds pay.
    pub small_folds: usize,
    /// See `small_folds`.
    pub small_rows: usize,
    /// Above this many rows, one stratified 20% holdout replaces the folds, and `large_candidates`
    /// the candidates: with that much data the choice is clearer and a third of the work decides it.
    pub large_rows: usize,
    /// The candidates tried above `large_rows` (all of `candidates` when empty).
    pub large_candidates: Vec<Candidate>,
    /// Largest model file, in bytes: the vocabulary is cut to what fits with this many classes.
    pub max_model_bytes: usize,
    /// The solver settings to choose among by cross-validated accuracy plus macro-F1. Which works best
    /// depends on the data (a small ledger wants more regularization than a large one; channel codes
    /// favour naive-Bayes scaling, merchant names do not), so each user's model picks its own.
    pub candidates: Vec<Candidate>,
    /// Threads training may use.
    pub threads: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            features: FeatureConfig::default(),
            svm: SvmParams::default(),
            class_weight: ClassWeight::SqrtBalanced,
            calibration_folds: 3,
            small_folds: 5,
            small_rows: 5_000,
            large_rows: 20_000,
            // Regularization pays at every size we measured once rows are many; whether NB scaling
            // helps still depends on the data.
            large_candidates: vec![Candidate { c: 0.3, nb_scaling: false }, Candidate { c: 0.3, nb_scaling: true }],
            max_model_bytes: 9_500_000,
            candidates: vec![
                Candidate { c: 1.0, nb_scaling: false },
                Candidate { c: 0.3, nb_scaling: false },
                Candidate { c: 1.0, nb_scaling: true },
                Candidate { c: 0.3, nb_scaling: true },
            ],
            threads: 2,
        }
    }
}

/// What the trainer found while choosing.
#[derive(Debug, Clone, Serialize)]
pub struct Selection {
    /// Each candidate with its out-of-fold accuracy and macro-F1.
    pub tried: Vec<(Candidate, f64, f64)>,
    /// The one chosen.
    pub chosen: Candidate,
    /// The chosen candidate's cross-validated metrics: every training row predicted by a model that
    /// did not see it (what the registry records as accuracy, precision and recall). `None` when there
    /// were too few rows to cross-validate.
    pub held_out: Option<crate::metrics::Metrics>,
}

/// A trained categorizer.
#[derive(Debug, Clone)]
pub struct Categorizer {
    /// Class names, in model order.
    pub labels: Vec<String>,
    /// Feature settings it was trained with.
    pub features: FeatureConfig,
    vocabulary: Vocabulary,
    model: LinearModel,
    /// Softmax temperature over the decision values.
    pub temperature: f32,
    /// Maps the top class's probability to a calibrated confidence.
    pub calibrator: Calibrator,
    /// Rows it was trained on.
    pub trained_rows: usize,
    /// Cross-validated metrics of the training run, when there were enough rows.
    pub held_out: Option<HeldOut>,
}

/// A model's cross-validated (held-out) metrics, kept in its file.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HeldOut {
    /// Accuracy.
    pub accuracy: f64,
    /// Macro-averaged precision.
    pub precision: f64,
    /// Macro-averaged recall.
    pub recall: f64,
    /// Macro-F1.
    pub macro_f1: f64,
}

/// Reusable buffers for prediction (one per thread).
#[derive(Default)]
pub struct Workspace {
    scratch: Scratch,
    counter: Counter,
    row: Vec<(u32, f32)>,
    scores: Vec<f32>,
}

/// A class and its probability.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scored {
    /// Class index in [`Categorizer::labels`].
    pub class: usize,
    /// Calibrated probability.
    pub probability: f32,
}

fn softmax_into(scores: &[f32], temperature: f32, out: &mut [f32]) {
    let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    let inv = 1.0 / temperature;
    for (o, s) in out.iter_mut().zip(scores) {
        let z = (s - max) * inv;
        // e^-30 is 1e-13 of the top class: nothing an f32 sum or a shown confidence can tell.
        *o = if z < -30.0 { 0.0 } else { z.exp() };
        sum += *o;
    }
    for o in out.iter_mut() {
        *o /= sum;
    }
}

/// Index of the largest value (the first of equals).
fn argmax(values: &[f32]) -> usize {
    let mut best = 0;
    for (i, v) in values.iter().enumerate() {
        if *v > values[best] {
            best = i;
        }
    }
    best
}

/// Mean negative log-likelihood of the true classes under softmax(scores / t).
fn nll(scores: &[Vec<f32>], truth: &[usize], t: f32) -> f64 {
    let mut p = vec![0f32; scores.first().map_or(0, Vec::len)];
    let mut total = 0.0;
    for (s, &y) in scores.iter().zip(truth) {
        softmax_into(s, t, &mut p);
        total -= f64::from(p[y].max(1e-7)).ln();
    }
    total / scores.len().max(1) as f64
}

/// The temperature that minimizes the negative log-likelihood (golden-section search on its log).
fn fit_temperature(scores: &[Vec<f32>], truth: &[usize]) -> f32 {
    let (mut lo, mut hi) = ((0.005f64).ln(), (5.0f64).ln());
    let phi = (5f64.sqrt() - 1.0) / 2.0;
    let f = |x: f64| nll(scores, truth, x.exp() as f32);
    let (mut a, mut b) = (hi - phi * (hi - lo), lo + phi * (hi - lo));
    let (mut fa, mut fb) = (f(a), f(b));
    for _ in 0..40 {
        if fa < fb {
            hi = b;
            b = a;
            fb = fa;
            a = hi - phi * (hi - lo);
            fa = f(a);
        } else {
            lo = a;
            a = b;
            fa = fb;
            b = lo + phi * (hi - lo);
            fb = f(b);
        }
    }
    ((lo + hi) / 2.0).exp() as f32
}

/// Identical training rows (same features, same label) merged into one with a weight: bank ledgers
/// repeat the same merchant string many times, and merging is exact for the solver's loss.
struct Groups {
    /// One row per group.
    x: Csr,
    /// Label of each group.
    label: Vec<usize>,
    /// Group of each original row.
    of_row: Vec<usize>,
}

/// The training rows as sparse vectors, grouped, with the vocabulary. The text features of a
/// description are computed once however often it occurs.
fn vectorize_training(examples: &[Example<'_>], y: &[usize], config: &FeatureConfig) -> (Vocabulary, Groups) {
    let mut scratch = Scratch::default();
    // Distinct descriptions: their text features and how many rows have each.
    let mut text_id: HashMap<&str, usize> = HashMap::new();
    let mut texts: Vec<(Vec<(u8, u64)>, u32)> = Vec::new();
    let mut of_text: Vec<usize> = Vec::with_capacity(examples.len());
    // Each row's metadata tokens.
    let mut metas: Vec<Vec<(u8, u64)>> = Vec::with_capacity(examples.len());
    for ex in examples {
        let id = *text_id.entry(ex.text).or_insert_with(|| {
            features::extract_text(ex.text, config, &mut scratch);
            texts.push((scratch.hashes().to_vec(), 0));
            texts.len() - 1
        });
        texts[id].1 += 1;
        of_text.push(id);
        scratch_meta(ex, config, &mut scratch);
        metas.push(scratch.hashes().to_vec());
    }
    let vocabulary = Vocabulary::build(
        texts.iter().map(|(h, n)| (h.as_slice(), *n)).chain(metas.iter().map(|m| (m.as_slice(), 1))),
        config.max_columns,
    );
    // A row is its text's vector (each text block unit length on its own) plus its metadata tokens.
    let mut counter = Counter::default();
    let mut text_vectors: Vec<Vec<(u32, f32)>> = Vec::with_capacity(texts.len());
    for (h, _) in &texts {
        let mut v = Vec::new();
        vocabulary.vectorize(h, config.meta_weight, &mut counter, &mut v);
        text_vectors.push(v);
    }
    let mut index: HashMap<(usize, Vec<(u32, u32)>), usize> = HashMap::new();
    let mut groups = Groups { x: Csr::new(vocabulary.len()), label: Vec::new(), of_row: Vec::with_capacity(y.len()) };
    let mut row = Vec::new();
    for (i, &label) in y.iter().enumerate() {
        row.clear();
        row.extend_from_slice(&text_vectors[of_text[i]]);
        vocabulary.vectorize(&metas[i], config.meta_weight, &mut counter, &mut row);
        let key = (label, row.iter().map(|(c, v)| (*c, v.to_bits())).collect::<Vec<_>>());
        let next = groups.label.len();
        let g = *index.entry(key).or_insert_with(|| {
            groups.x.push(&row);
            groups.label.push(label);
            next
        });
        groups.of_row.push(g);
    }
    (vocabulary, groups)
}

/// The metadata tokens of `ex` alone in `scratch`.
fn scratch_meta(ex: &Example<'_>, config: &FeatureConfig, scratch: &mut Scratch) {
    features::extract_text("", config, scratch);
    features::extract_meta(ex, config, scratch);
}

impl Categorizer {
    /// Train on `examples` labelled `targets` (class names).
    pub fn train(examples: &[Example<'_>], targets: &[&str], config: &TrainConfig) -> Result<Categorizer, MlError> {
        Self::train_with_selection(examples, targets, config).map(|(model, _)| model)
    }

    /// [`Categorizer::train`], also saying which solver setting was chosen and why.
    pub fn train_with_selection(
        examples: &[Example<'_>],
        targets: &[&str],
        config: &TrainConfig,
    ) -> Result<(Categorizer, Selection), MlError> {
        if examples.len() != targets.len() {
            return Err(MlError::Training("one label per example".into()));
        }
        let mut labels: Vec<String> = targets.iter().map(|t| (*t).to_owned()).collect();
        labels.sort();
        labels.dedup();
        if labels.len() < 2 {
            return Err(MlError::Training(format!("{} class(es); at least two are needed", labels.len())));
        }
        if config.candidates.is_empty() {
            return Err(MlError::Training("no solver candidates".into()));
        }
        let y: Vec<usize> =
            targets.iter().map(|t| labels.binary_search_by(|l| l.as_str().cmp(t)).unwrap_or(0)).collect();
        let classes = labels.len();
        // A column costs its key, block and IDF (13 bytes) and a half-precision weight per class.
        let mut features = config.features.clone();
        features.max_columns =
            features.max_columns.min(config.max_model_bytes.saturating_sub(64 * 1024) / (13 + 2 * classes));
        let (vocabulary, groups) = vectorize_training(examples, &y, &features);
        let mut counts = vec![0usize; classes];
        for &l in &y {
            counts[l] += 1;
        }
        let n = y.len() as f32;
        let class_weight: Vec<f32> = counts
            .iter()
            .map(|&c| {
                let balanced = n / (classes as f32 * c.max(1) as f32);
                match config.class_weight {
                    ClassWeight::Uniform => 1.0,
                    ClassWeight::SqrtBalanced => balanced.sqrt(),
                    ClassWeight::Balanced => balanced,
                }
            })
            .collect();
        let params_of = |c: Candidate| SvmParams { c: c.c, nb_scaling: c.nb_scaling, ..config.svm.clone() };
        let train_on = |weight: &[f32], params: &SvmParams, threads: usize| {
            let used: Vec<usize> = (0..weight.len()).filter(|&g| weight[g] > 0.0).collect();
            if used.len() == weight.len() {
                return linear::train(&groups.x, &groups.label, weight, classes, &class_weight, params, threads);
            }
            let sub = groups.x.select(&used);
            let sub_y: Vec<usize> = used.iter().map(|&g| groups.label[g]).collect();
            let sub_w: Vec<f32> = used.iter().map(|&g| weight[g]).collect();
            linear::train(&sub, &sub_y, &sub_w, classes, &class_weight, params, threads)
        };

        // Validation over the original rows (a merchant seen in another part counts as seen, as it would
        // in the ledger), training on the groups the other parts' rows make up: k folds, or for a large
        // training set one stratified holdout (plenty of rows to choose and calibrate on, at a third of
        // the cost).
        let large = y.len() > config.large_rows;
        let candidates: &[Candidate] =
            if large && !config.large_candidates.is_empty() { &config.large_candidates } else { &config.candidates };
        let folds = if y.len() <= config.small_rows && config.calibration_folds >= 2 {
            config.small_folds.max(config.calibration_folds)
        } else {
            config.calibration_folds
        };
        let mut temperature = 1.0;
        let mut calibrator = Calibrator::default();
        let mut selection = Selection { tried: Vec::new(), chosen: candidates[0], held_out: None };
        if folds >= 2 && y.len() >= 10 * folds {
            // `parts` partition the rows; the first `validated` of them are each held out once.
            let (parts, validated) = if large {
                let (train, test) = split::train_test(&y, classes, 0.2, config.svm.seed);
                (vec![test, train], 1)
            } else {
                (split::folds(&y, classes, folds, config.svm.seed), folds)
            };
            // Every (candidate, held-out part) is an independent training: spread them over the
            // threads, each training on one.
            let jobs: Vec<(usize, usize)> =
                (0..candidates.len()).flat_map(|c| (0..validated).map(move |f| (c, f))).collect();
            let next = std::sync::atomic::AtomicUsize::new(0);
            let results: std::sync::Mutex<Vec<(usize, usize, LinearModel)>> = Default::default();
            std::thread::scope(|scope| {
                for _ in 0..config.threads.clamp(1, jobs.len()) {
                    scope.spawn(|| {
                        loop {
                            let j = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            let Some(&(c, f)) = jobs.get(j) else { break };
                            let mut weight = vec![0f32; groups.label.len()];
                            for (g, part) in parts.iter().enumerate() {
                                if g != f {
                                    for &i in part {
                                        weight[groups.of_row[i]] += 1.0;
                                    }
                                }
                            }
                            let model = train_on(&weight, &params_of(candidates[c]), 1);
                            results.lock().expect("no panics while held").push((c, f, model));
                        }
                    });
                }
            });
            let mut results = results.into_inner().expect("no panics while held");
            results.sort_by_key(|(c, f, _)| (*c, *f));
            // The rows that were held out, in a fixed order, and their truth.
            let rows: Vec<usize> = parts[..validated].iter().flatten().copied().collect();
            let truth: Vec<usize> = rows.iter().map(|&i| y[i]).collect();
            let mut best: Option<(f64, Vec<Vec<f32>>)> = None;
            for (c, candidate) in candidates.iter().enumerate() {
                let mut scores: Vec<Vec<f32>> = Vec::with_capacity(rows.len());
                for (_, f, model) in results.iter().filter(|r| r.0 == c) {
                    let mut s = vec![0f32; classes];
                    for &i in &parts[*f] {
                        model.scores(groups.x.row(groups.of_row[i]), &mut s);
                        scores.push(s.clone());
                    }
                }
                let predicted: Vec<usize> = scores.iter().map(|s| argmax(s)).collect();
                let m = crate::metrics::evaluate(&truth, &predicted, &labels);
                selection.tried.push((*candidate, m.accuracy, m.macro_f1));
                let score = m.accuracy + m.macro_f1;
                // Ties keep the earlier (simpler) candidate.
                if best.as_ref().is_none_or(|(b, _)| score > *b + 1e-9) {
                    best = Some((score, scores));
                    selection.chosen = *candidate;
                    selection.held_out = Some(m);
                }
            }
            if let Some((_, scores)) = best {
                temperature = fit_temperature(&scores, &truth);
                let mut p = vec![0f32; classes];
                let pairs: Vec<(f32, bool)> = scores
                    .iter()
                    .zip(&truth)
                    .map(|(s, &t)| {
                        softmax_into(s, temperature, &mut p);
                        let top = argmax(&p);
                        (p[top], top == t)
                    })
                    .collect();
                calibrator = Calibrator::fit(&pairs);
            }
        }
        let mut weight = vec![0f32; groups.label.len()];
        for &g in &groups.of_row {
            weight[g] += 1.0;
        }
        let model = train_on(&weight, &params_of(selection.chosen), config.threads);
        let held_out = selection.held_out.as_ref().map(|m| HeldOut {
            accuracy: m.accuracy,
            precision: m.macro_precision,
            recall: m.macro_recall,
            macro_f1: m.macro_f1,
        });
        let categorizer = Categorizer {
            labels,
            features,
            vocabulary,
            model,
            temperature,
            calibrator,
            trained_rows: y.len(),
            held_out,
        };
        Ok((categorizer, selection))
    }

    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.labels.len()
    }

    /// Number of feature columns.
    pub fn columns(&self) -> usize {
        self.vocabulary.len()
    }

    /// The softmax probabilities of every class, in [`Categorizer::labels`] order (before calibration:
    /// use them to rank classes; [`Categorizer::predict`] and [`Categorizer::top`] give calibrated
    /// confidences).
    pub fn probabilities<'w>(&self, ex: &Example<'_>, ws: &'w mut Workspace) -> &'w [f32] {
        features::extract(ex, &self.features, &mut ws.scratch);
        ws.row.clear();
        self.vocabulary.vectorize(ws.scratch.hashes(), self.features.meta_weight, &mut ws.counter, &mut ws.row);
        let k = self.classes();
        ws.scores.resize(2 * k, 0.0);
        let (scores, probs) = ws.scores.split_at_mut(k);
        self.model.scores(&ws.row, scores);
        softmax_into(scores, self.temperature, probs);
        &ws.scores[k..]
    }

    /// The most likely class and its probability.
    pub fn predict(&self, ex: &Example<'_>, ws: &mut Workspace) -> Scored {
        let p = self.probabilities(ex, ws);
        let class = argmax(p);
        Scored { class, probability: self.calibrator.apply(p.get(class).copied().unwrap_or(0.0)) }
    }

    /// The `n` most likely classes, most likely first.
    pub fn top(&self, ex: &Example<'_>, n: usize, ws: &mut Workspace) -> Vec<Scored> {
        let p = self.probabilities(ex, ws);
        let mut all: Vec<Scored> =
            p.iter().enumerate().map(|(class, &probability)| Scored { class, probability }).collect();
        all.sort_by(|a, b| b.probability.total_cmp(&a.probability));
        all.truncate(n);
        // The calibration was fitted on top choices; applied to the runners-up it keeps their order.
        for s in &mut all {
            s.probability = self.calibrator.apply(s.probability);
        }
        all
    }
}

// ----------------------------------------------------------------------------------------------------
// Model files

/// First bytes of every model file.
const MAGIC: &[u8; 8] = b"MAGPIEML";
/// The format this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// What a model file says about itself, before the numbers.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Header {
    kind: String,
    features: FeatureConfig,
    labels: Vec<String>,
    columns: usize,
    temperature: f32,
    #[serde(default)]
    calibrator: Calibrator,
    trained_rows: usize,
    #[serde(default)]
    held_out: Option<HeldOut>,
}

fn put_f32s(out: &mut Vec<u8>, values: &[f32]) {
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
}

/// Reads little-endian values off a byte slice, failing on truncation.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], MlError> {
        if self.0.len() < n {
            return Err(MlError::ModelFile("the file is truncated".into()));
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }
    fn u32(&mut self) -> Result<u32, MlError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }
    fn f32s(&mut self, n: usize) -> Result<Vec<f32>, MlError> {
        let bytes = self.take(n.checked_mul(4).ok_or_else(|| MlError::ModelFile("size overflow".into()))?)?;
        Ok(bytes.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes"))).collect())
    }
}

impl Categorizer {
    /// The model file: magic, format version, a JSON header (feature settings, labels), the vocabulary,
    /// the weights, and a SHA-256 of all of it.
    pub fn to_bytes(&self) -> Vec<u8> {
        let header = Header {
            kind: "categorizer".into(),
            features: self.features.clone(),
            labels: self.labels.clone(),
            columns: self.vocabulary.len(),
            temperature: self.temperature,
            calibrator: self.calibrator.clone(),
            trained_rows: self.trained_rows,
            held_out: self.held_out,
        };
        let header = serde_json::to_vec(&header).expect("the header serializes");
        let k = self.classes();
        let cols = self.vocabulary.len();
        let mut out = Vec::with_capacity(64 + header.len() + cols * (13 + 2 * k));
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&(header.len() as u32).to_le_bytes());
        out.extend_from_slice(&header);
        for key in &self.vocabulary.keys {
            out.extend_from_slice(&key.to_le_bytes());
        }
        out.extend_from_slice(&self.vocabulary.blocks);
        put_f32s(&mut out, &self.vocabulary.idf);
        // Half precision for the weights: a thousandth of relative error, half the file.
        for w in &self.model.weights {
            out.extend_from_slice(&half::f16::from_f32(*w).to_le_bytes());
        }
        put_f32s(&mut out, &self.model.bias);
        let digest = Sha256::digest(&out);
        out.extend_from_slice(&digest);
        out
    }

    /// Load a model file written by [`Categorizer::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Categorizer, MlError> {
        if bytes.len() < MAGIC.len() + 8 + 32 || &bytes[..MAGIC.len()] != MAGIC {
            return Err(MlError::ModelFile("not a Magpie model file".into()));
        }
        let (body, digest) = bytes.split_at(bytes.len() - 32);
        let mut r = Reader(&body[MAGIC.len()..]);
        let version = r.u32()?;
        if version != FORMAT_VERSION {
            return Err(MlError::ModelFile(format!(
                "format version {version} is not supported (this build reads version {FORMAT_VERSION})"
            )));
        }
        if Sha256::digest(body).as_slice() != digest {
            return Err(MlError::ModelFile("checksum mismatch: the file is corrupt".into()));
        }
        let header_len = r.u32()? as usize;
        let header: Header = serde_json::from_slice(r.take(header_len)?)
            .map_err(|e| MlError::ModelFile(format!("unreadable header: {e}")))?;
        if header.kind != "categorizer" {
            return Err(MlError::ModelFile(format!("a '{}' model, not a categorizer", header.kind)));
        }
        let (cols, k) = (header.columns, header.labels.len());
        if k < 2 || !header.temperature.is_finite() || header.temperature <= 0.0 || !header.calibrator.is_valid() {
            return Err(MlError::ModelFile("inconsistent header".into()));
        }
        let keys_bytes = r.take(cols.checked_mul(8).ok_or_else(|| MlError::ModelFile("size overflow".into()))?)?;
        let keys: Vec<u64> =
            keys_bytes.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes"))).collect();
        let blocks = r.take(cols)?.to_vec();
        let idf = r.f32s(cols)?;
        let weight_bytes =
            r.take(cols.checked_mul(k * 2).ok_or_else(|| MlError::ModelFile("size overflow".into()))?)?;
        let weights: Vec<f32> = weight_bytes
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes(c.try_into().expect("2 bytes")).to_f32())
            .collect();
        let bias = r.f32s(k)?;
        if !r.0.is_empty() {
            return Err(MlError::ModelFile("unexpected bytes after the weights".into()));
        }
        let mut vocabulary = Vocabulary { index: Default::default(), keys, blocks, idf };
        vocabulary.reindex();
        Ok(Categorizer {
            labels: header.labels,
            features: header.features,
            vocabulary,
            model: LinearModel { classes: k, weights, bias },
            temperature: header.temperature,
            calibrator: header.calibrator,
            trained_rows: header.trained_rows,
            held_out: header.held_out,
        })
    }
}
