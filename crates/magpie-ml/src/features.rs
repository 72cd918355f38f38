//! Sparse features of a transaction: word 1-2-grams of the normalized description and character
//! 2-5-grams (scikit-learn's `char_wb`) of its lower-cased text, each block TF-IDF weighted with sublinear
//! term frequency and L2-normalized, as a `TfidfVectorizer` union would; plus tokens for the direction,
//! the order of magnitude and the exact value of the amount, optionally the day of the week, and an
//! optional extra code (a merchant category code).
//!
//! Features are hashed to 64 bits and mapped through a vocabulary built from the training rows, so a
//! model holds weights only for what it has seen. Written by hand rather than taken from a library: the
//! Rust ML crates (linfa and friends) take dense `ndarray` matrices, and a 40,000-row training set has a
//! few hundred thousand distinct n-grams, which only a sparse representation holds.

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};

use crate::text;

/// Money in or out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Direction {
    /// Income.
    In,
    /// Expense.
    Out,
}

/// What the categorizer sees of a transaction.
#[derive(Debug, Clone, Copy, Default)]
pub struct Example<'a> {
    /// The bank's description.
    pub text: &'a str,
    /// Amount in cents, exact (its sign is not used; see `direction`).
    pub amount_cents: Option<i64>,
    /// Income or expense.
    pub direction: Option<Direction>,
    /// Booking date.
    pub date: Option<NaiveDate>,
    /// An extra categorical code when the source has one (a merchant category code).
    pub extra: Option<&'a str>,
}

/// Which text the character n-grams are taken from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CharText {
    /// The normalized text (digits as `0`, decoration removed), like the words.
    Normalized,
    /// The text lower-cased and nothing else: digits and punctuation carry meaning in some banks'
    /// strings (`TRF/`, `/MOB/`, channel codes), and rare n-grams cost little.
    Lowercase,
}

/// Which features, and how much the non-text ones weigh.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureConfig {
    /// Longest word n-gram (1 or 2).
    pub word_max_n: usize,
    /// Shortest character n-gram.
    pub char_min_n: usize,
    /// Longest character n-gram.
    pub char_max_n: usize,
    /// Text of the character n-grams.
    pub char_text: CharText,
    /// Value of each metadata token (direction, amount, weekday, extra).
    pub meta_weight: f32,
    /// Whether the weekday is a feature.
    pub weekday: bool,
    /// Whether the exact amount is a feature: a subscription or a bill repeats its amount to the cent,
    /// and two plans of one merchant differ by it (a streaming service's two tiers).
    pub exact_amount: bool,
    /// Most feature columns kept (the most frequent in training), which bounds the model's size.
    pub max_columns: usize,
}

impl Default for FeatureConfig {
    fn default() -> Self {
        FeatureConfig {
            word_max_n: 2,
            char_min_n: 2,
            char_max_n: 5,
            char_text: CharText::Lowercase,
            meta_weight: 0.5,
            weekday: false,
            exact_amount: true,
            max_columns: 250_000,
        }
    }
}

/// Feature blocks: each text block is normalized on its own.
pub(crate) const WORD: u8 = 1;
pub(crate) const CHAR: u8 = 2;
pub(crate) const META: u8 = 3;

const SEED: u64 = 0x9E37_79B9_7F4A_7C15;

/// FxHash-style mixing of bytes: `step` extends a state by one byte, `finish` turns a state into a
/// well-mixed key (SplitMix64's avalanche), so that an n-gram's key can be extended to the (n+1)-gram's.
#[inline]
fn step(h: u64, b: u8) -> u64 {
    (h.rotate_left(5) ^ u64::from(b)).wrapping_mul(0x517C_C1B7_2722_0A95)
}

#[inline]
fn finish(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn hash_bytes(namespace: u64, bytes: &[u8]) -> u64 {
    finish(bytes.iter().fold(namespace.wrapping_mul(SEED), |h, &b| step(h, b)))
}

/// Feature hash to column: a flat open-addressing table (linear probing, at most half full). The keys
/// are already well-mixed 64-bit hashes, so their low bits are the slot; a lookup, hit or miss, is
/// usually one cache line, which matters because a prediction makes one per n-gram.
#[derive(Debug, Clone, Default)]
pub struct HashIndex {
    slots: Vec<(u64, u32)>,
    len: usize,
}

const EMPTY: u32 = u32::MAX;

impl HashIndex {
    fn with_capacity(n: usize) -> HashIndex {
        let size = (2 * n.max(1)).next_power_of_two();
        HashIndex { slots: vec![(0, EMPTY); size], len: 0 }
    }

    /// Insert (keys are distinct).
    pub fn insert(&mut self, key: u64, col: u32) {
        if 2 * (self.len + 1) > self.slots.len() {
            let old = std::mem::take(&mut self.slots);
            *self = HashIndex::with_capacity(2 * (self.len + 1));
            for (k, c) in old.into_iter().filter(|(_, c)| *c != EMPTY) {
                self.insert(k, c);
            }
        }
        let mask = self.slots.len() - 1;
        let mut i = key as usize & mask;
        while self.slots[i].1 != EMPTY {
            i = (i + 1) & mask;
        }
        self.slots[i] = (key, col);
        self.len += 1;
    }

    /// The column of `key`.
    #[inline]
    pub fn get(&self, key: &u64) -> Option<&u32> {
        if self.slots.is_empty() {
            return None;
        }
        let mask = self.slots.len() - 1;
        let mut i = *key as usize & mask;
        loop {
            let (k, c) = &self.slots[i];
            if *c == EMPTY {
                return None;
            }
            if *k == *key {
                return Some(c);
            }
            i = (i + 1) & mask;
        }
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Reusable buffers for feature extraction (no allocation per transaction once warm).
#[derive(Default)]
pub struct Scratch {
    normalized: String,
    lower: String,
    bounds: Vec<usize>,
    meta: String,
    /// (block, hash) of every feature occurrence.
    hashes: Vec<(u8, u64)>,
}

impl Scratch {
    /// The features of the last extraction, as (block, hash), unsorted, with repeats.
    pub fn hashes(&self) -> &[(u8, u64)] {
        &self.hashes
    }
}

/// Word and character n-grams of a description into `scratch` (replacing what was there).
pub fn extract_text(raw: &str, config: &FeatureConfig, scratch: &mut Scratch) {
    scratch.hashes.clear();
    text::normalize_into(raw, &mut scratch.normalized);
    if config.char_text == CharText::Lowercase {
        text::lowercase_into(raw, &mut scratch.lower);
    }
    let Scratch { normalized, lower, bounds, hashes, .. } = scratch;
    let char_source: &str = match config.char_text {
        CharText::Normalized => normalized,
        CharText::Lowercase => lower,
    };

    // Word unigrams and bigrams.
    let word_seed = u64::from(WORD).wrapping_mul(SEED);
    let mut previous: Option<u64> = None;
    for w in text::words(normalized) {
        let h = finish(w.bytes().fold(word_seed, step));
        hashes.push((WORD, h));
        if config.word_max_n >= 2
            && let Some(p) = previous
        {
            hashes.push((WORD, finish(p.rotate_left(17) ^ h.wrapping_mul(0x2545_F491_4F6C_DD1D))));
        }
        previous = Some(h);
    }

    // Character n-grams inside each whitespace word padded with a space on both sides, as
    // scikit-learn's `char_wb` does (a word shorter than the shortest n-gram gives itself once). Each
    // start position extends one running hash from the shortest n-gram to the longest.
    let (min_n, max_n) = (config.char_min_n.max(1), config.char_max_n.max(config.char_min_n.max(1)));
    let char_seed = u64::from(CHAR).wrapping_mul(SEED);
    for w in char_source.split(' ').filter(|w| !w.is_empty()) {
        let padded_len = w.len() + 2;
        let byte = |i: usize| -> u8 { if i == 0 || i == padded_len - 1 { b' ' } else { w.as_bytes()[i - 1] } };
        bounds.clear();
        bounds.push(0);
        bounds.extend(w.char_indices().map(|(i, _)| i + 1));
        bounds.push(padded_len - 1);
        bounds.push(padded_len);
        // bounds[c] is the byte offset of char c of the padded word; bounds[chars] its length.
        let chars = bounds.len() - 1;
        if chars < min_n {
            hashes.push((CHAR, finish((0..padded_len).map(byte).fold(char_seed, step))));
            continue;
        }
        for start in 0..chars {
            let mut h = char_seed;
            let mut at = bounds[start];
            for n in 1..=max_n.min(chars - start) {
                let end = bounds[start + n];
                while at < end {
                    h = step(h, byte(at));
                    at += 1;
                }
                if n >= min_n {
                    hashes.push((CHAR, finish(h)));
                }
            }
        }
    }
}

/// The metadata tokens of an example, appended to `scratch`'s hashes.
pub fn extract_meta(ex: &Example<'_>, config: &FeatureConfig, scratch: &mut Scratch) {
    let Scratch { meta, hashes, .. } = scratch;
    let mut token = |tag: &str, value: i64| {
        use std::fmt::Write;
        meta.clear();
        let _ = write!(meta, "{tag}{value}");
        hashes.push((META, hash_bytes(u64::from(META), meta.as_bytes())));
    };
    match ex.direction {
        Some(Direction::In) => token("dir", 1),
        Some(Direction::Out) => token("dir", -1),
        None => {}
    }
    if let Some(cents) = ex.amount_cents {
        let cents = cents.unsigned_abs();
        // Order of magnitude as a power of two of the amount plus one: 10 and 14 share a token, 10
        // and 100 do not.
        let magnitude = (cents + 100) / 100;
        token("amt", i64::from(63 - magnitude.leading_zeros()));
        if config.exact_amount {
            token("amx", cents as i64);
        }
    }
    if config.weekday
        && let Some(d) = ex.date
    {
        token("dow", i64::from(d.weekday().num_days_from_monday()));
    }
    if let Some(x) = ex.extra.map(str::trim).filter(|x| !x.is_empty()) {
        meta.clear();
        meta.extend(x.chars().flat_map(char::to_lowercase));
        hashes.push((META, hash_bytes(u64::from(META) + 7, meta.as_bytes())));
    }
}

/// Every feature of an example into `scratch`.
pub fn extract(ex: &Example<'_>, config: &FeatureConfig, scratch: &mut Scratch) {
    extract_text(ex.text, config, scratch);
    extract_meta(ex, config, scratch);
}

/// Counts repeated columns of a row without sorting: a small open-addressing table from column to
/// its place in the row, cleared by bumping a generation rather than by writing.
#[derive(Default)]
pub struct Counter {
    /// (generation, column, slot in the row).
    table: Vec<(u32, u32, u32)>,
    generation: u32,
}

impl Counter {
    /// Get ready for a row of at most `n` features.
    fn start(&mut self, n: usize) {
        let size = (2 * n).next_power_of_two().max(64);
        if self.table.len() < size {
            self.table = vec![(0, 0, 0); size];
            self.generation = 0;
        }
        self.generation = self.generation.wrapping_add(1);
        if self.generation == 0 {
            self.table.iter_mut().for_each(|e| e.0 = 0);
            self.generation = 1;
        }
    }

    /// The slot of `col` if it was seen in this row, else records `slot` for it and returns `None`.
    #[inline]
    fn find_or_insert(&mut self, col: u32, slot: u32) -> Option<u32> {
        let mask = self.table.len() - 1;
        let mut i = (col as usize).wrapping_mul(0x9E37_79B9) & mask;
        loop {
            let e = &mut self.table[i];
            if e.0 != self.generation {
                *e = (self.generation, col, slot);
                return None;
            }
            if e.1 == col {
                return Some(e.2);
            }
            i = (i + 1) & mask;
        }
    }
}

/// The features a model knows, with their inverse document frequencies.
#[derive(Debug, Clone, Default)]
pub struct Vocabulary {
    /// Hash to column.
    pub index: HashIndex,
    /// Hash of each column, in column order.
    pub keys: Vec<u64>,
    /// Block of each column.
    pub blocks: Vec<u8>,
    /// IDF of each column (1 for metadata).
    pub idf: Vec<f32>,
}

impl Vocabulary {
    /// Build from the training rows' features, each row given with the number of training rows it
    /// stands for: the `max_columns` most frequent (all of them for most training sets),
    /// `idf = ln((1 + n) / (1 + df)) + 1`.
    pub fn build<'r>(rows: impl Iterator<Item = (&'r [(u8, u64)], u32)>, max_columns: usize) -> Vocabulary {
        // Every distinct (block, hash) of each row, with the row's count, then summed by key.
        let mut all: Vec<((u8, u64), u32)> = Vec::new();
        let mut seen: Vec<(u8, u64)> = Vec::new();
        let mut n = 0u64;
        for (row, count) in rows {
            n += u64::from(count);
            seen.clear();
            seen.extend_from_slice(row);
            seen.sort_unstable();
            seen.dedup();
            all.extend(seen.iter().map(|f| (*f, count)));
        }
        all.sort_unstable_by_key(|(f, _)| *f);
        let mut features: Vec<((u8, u64), u32)> = Vec::new();
        for (f, c) in all {
            match features.last_mut() {
                Some((g, total)) if *g == f => *total += c,
                _ => features.push((f, c)),
            }
        }
        if features.len() > max_columns {
            // Metadata first, then by document frequency; the rare n-grams cut are mostly one-offs.
            features.sort_unstable_by(|a, b| (b.0.0 == META, b.1, a.0).cmp(&(a.0.0 == META, a.1, b.0)));
            features.truncate(max_columns);
            features.sort_unstable();
        }
        let n = n as f32;
        let mut v = Vocabulary { index: HashIndex::with_capacity(features.len()), ..Vocabulary::default() };
        for (i, ((block, key), count)) in features.into_iter().enumerate() {
            v.index.insert(key, i as u32);
            v.keys.push(key);
            v.blocks.push(block);
            v.idf.push(if block == META { 1.0 } else { ((1.0 + n) / (1.0 + count as f32)).ln() + 1.0 });
        }
        v
    }

    /// Number of columns.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Rebuild the index after loading keys.
    pub fn reindex(&mut self) {
        self.index = HashIndex::with_capacity(self.keys.len());
        for (i, k) in self.keys.iter().enumerate() {
            self.index.insert(*k, i as u32);
        }
    }

    /// The weighted sparse vector of a row's features, appended to `out`: TF-IDF with sublinear tf per
    /// text block, each text block scaled to unit length, metadata tokens at `meta_weight`. Unknown
    /// features are dropped. Columns come out in first-seen order.
    pub fn vectorize(&self, hashes: &[(u8, u64)], meta_weight: f32, counter: &mut Counter, out: &mut Vec<(u32, f32)>) {
        let start = out.len();
        counter.start(hashes.len());
        for (_, h) in hashes {
            if let Some(&col) = self.index.get(h) {
                match counter.find_or_insert(col, out.len() as u32) {
                    Some(slot) => out[slot as usize].1 += 1.0,
                    None => out.push((col, 1.0)),
                }
            }
        }
        let row = &mut out[start..];
        let mut norms = [0f32; 4];
        for (col, v) in row.iter_mut() {
            let c = *col as usize;
            let block = self.blocks[c];
            if block == META {
                *v = meta_weight;
            } else {
                // Sublinear tf; most n-grams occur once, and ln(1) is 0.
                let tf = if *v == 1.0 { 1.0 } else { 1.0 + v.ln() };
                *v = tf * self.idf[c];
                norms[usize::from(block)] += *v * *v;
            }
        }
        for n in &mut norms {
            *n = if *n > 0.0 { 1.0 / n.sqrt() } else { 0.0 };
        }
        for (col, v) in row.iter_mut() {
            let block = self.blocks[*col as usize];
            if block != META {
                *v *= norms[usize::from(block)];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feats(text: &str) -> Vec<(u8, u64)> {
        let mut s = Scratch::default();
        extract(&Example { text, ..Example::default() }, &FeatureConfig::default(), &mut s);
        s.hashes.clone()
    }

    #[test]
    fn char_ngrams_follow_char_wb_and_words_give_unigrams_and_bigrams() {
        // " ab " has 4 chars: 3 bigrams, 2 trigrams, 1 four-gram; nothing longer.
        assert_eq!(feats("ab").iter().filter(|(b, _)| *b == CHAR).count(), 3 + 2 + 1);
        // A word shorter than the shortest n-gram gives itself once: " " + "" is not a word, but
        // with min_n 5 a two-letter word is.
        let mut s = Scratch::default();
        let config = FeatureConfig { char_min_n: 5, char_max_n: 6, ..FeatureConfig::default() };
        extract_text("ab", &config, &mut s);
        assert_eq!(s.hashes().iter().filter(|(b, _)| *b == CHAR).count(), 1);
        let f = feats("blue bottle");
        assert_eq!(f.iter().filter(|(b, _)| *b == WORD).count(), 3);
        // Store numbers do not change the words.
        let words = |t: &str| feats(t).into_iter().filter(|(b, _)| *b == WORD).collect::<Vec<_>>();
        assert_eq!(words("SHELL OIL 57444"), words("Shell Oil 12345"));
        // The incremental char hash is the hash of the n-gram's bytes.
        assert!(feats("ab").contains(&(CHAR, hash_bytes(u64::from(CHAR), b" ab"))));
        // Multi-byte characters are whole characters of an n-gram.
        assert!(feats("é").contains(&(CHAR, hash_bytes(u64::from(CHAR), " é ".as_bytes()))));
    }

    #[test]
    fn amounts_give_a_magnitude_and_an_exact_token() {
        let meta = |cents: i64| {
            let mut s = Scratch::default();
            extract_meta(
                &Example { amount_cents: Some(cents), ..Example::default() },
                &FeatureConfig::default(),
                &mut s,
            );
            s.hashes.clone()
        };
        // 10.00 and 14.00 share the magnitude, not the exact amount; a sign changes neither.
        assert_eq!(meta(1000)[0], meta(1400)[0]);
        assert_ne!(meta(1000)[1], meta(1400)[1]);
        assert_ne!(meta(1000)[0], meta(10000)[0]);
        assert_eq!(meta(-1176), meta(1176));
    }

    #[test]
    fn vectors_are_unit_length_per_text_block() {
        let rows = [feats("blue bottle coffee"), feats("shell oil"), feats("blue shell")];
        let v = Vocabulary::build(rows.iter().map(|r| (r.as_slice(), 1)), usize::MAX);
        let mut out = Vec::new();
        let mut counter = Counter::default();
        v.vectorize(&rows[0], 0.5, &mut counter, &mut out);
        let norm = |block: u8| -> f32 {
            out.iter().filter(|(c, _)| v.blocks[*c as usize] == block).map(|(_, x)| x * x).sum::<f32>().sqrt()
        };
        assert!((norm(WORD) - 1.0).abs() < 1e-5 && (norm(CHAR) - 1.0).abs() < 1e-5);
        // Each column once.
        let mut cols: Vec<u32> = out.iter().map(|(c, _)| *c).collect();
        cols.sort();
        cols.dedup();
        assert_eq!(cols.len(), out.len());
        // Unknown features vanish.
        out.clear();
        v.vectorize(&feats("zzzz qqqq"), 0.5, &mut counter, &mut out);
        assert!(out.iter().all(|(c, _)| v.blocks[*c as usize] != WORD));
    }
}
