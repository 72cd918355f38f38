//! Keys that recognise a transaction seen before, whatever file it came in and whatever the categorizer
//! later does with it. Two layers (see docs/import.md):
//! 1. the file's own id (FITID, bank reference), namespaced by account: `x1:` + hash;
//! 2. a fingerprint of account, date, amount, normalized description and the row's occurrence index
//!    among identical rows of the same day in its file: `f1:` + hash. Two real identical coffees on one
//!    day get indexes 0 and 1 and are both kept; importing the file again finds both.
//!
//! The version prefix lets the normalization change without silently breaking old keys.

use std::collections::HashMap;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use sha2::{Digest, Sha256};

use crate::Row;

fn hash(input: &str) -> String {
    let digest = Sha256::digest(input.as_bytes());
    // 128 bits are plenty to avoid collisions within one user's ledger and halve the index size.
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// Lower case, digits dropped, punctuation to spaces, whitespace collapsed: reference numbers and card
/// digits that banks vary between exports of the same transaction do not change the key.
pub fn normalize_description(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut space = false;
    for c in s.chars() {
        if c.is_alphabetic() {
            if space && !out.is_empty() {
                out.push(' ');
            }
            space = false;
            out.extend(c.to_lowercase());
        } else if !c.is_numeric() {
            space = true;
        }
    }
    out
}

/// The key of the file's own id, namespaced by account.
pub fn external_key(account: &str, external_id: &str) -> String {
    format!("x1:{}", hash(&format!("{account}\u{1f}{}", external_id.trim())))
}

/// The fingerprint of a row.
pub fn fingerprint(account: &str, date: NaiveDate, amount: Decimal, description: &str, occurrence: usize) -> String {
    let amount = amount.normalize();
    format!(
        "f1:{}",
        hash(&format!(
            "{account}\u{1f}{date}\u{1f}{amount}\u{1f}{}\u{1f}{occurrence}",
            normalize_description(description)
        ))
    )
}

/// Occurrence indexes for rows in file order: the n-th row with the same (date, amount, normalized
/// description) gets n. Keyed by a 128-bit hash rather than the text so that a million-row file costs
/// tens of megabytes here, not hundreds.
#[derive(Debug, Default)]
pub struct Occurrences {
    seen: HashMap<u128, u32>,
}

impl Occurrences {
    /// A fresh counter (one per file and account).
    pub fn new() -> Self {
        Self::default()
    }

    /// The index of this row among identical rows seen so far.
    pub fn next(&mut self, row: &Row) -> usize {
        let digest = Sha256::digest(
            format!("{}\u{1f}{}\u{1f}{}", row.date, row.amount.normalize(), normalize_description(&row.description))
                .as_bytes(),
        );
        let key = u128::from_le_bytes(digest[..16].try_into().expect("16 bytes"));
        let n = self.seen.entry(key).or_insert(0);
        let current = *n;
        *n += 1;
        current as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_numbers_do_not_change_the_fingerprint() {
        let d = NaiveDate::from_ymd_opt(2024, 1, 2).unwrap();
        let a = fingerprint("acct", d, "-3.50".parse().unwrap(), "STARBUCKS #1234 card 5678", 0);
        let b = fingerprint("acct", d, "-3.500".parse().unwrap(), "Starbucks  #99 CARD", 0);
        assert_eq!(a, b);
        assert_ne!(a, fingerprint("acct", d, "-3.50".parse().unwrap(), "STARBUCKS", 1));
        assert_ne!(a, fingerprint("other", d, "-3.50".parse().unwrap(), "STARBUCKS", 0));
        assert!(a.starts_with("f1:") && a.len() == 35);
    }
}
