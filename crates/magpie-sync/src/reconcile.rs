//! What a [`Batch`] means for the rows already stored for a connection: which to insert, which stored
//! row each changed or newly posted transaction updates, and which to remove.
//!
//! * A transaction already stored under its provider id is updated (or left alone when nothing changed,
//!   so syncing the same data twice writes nothing).
//! * Pending -> posted, Plaid: the posted row names its pending row (`pending_transaction_id`); the
//!   stored pending row becomes the posted one, so the person's edits stay with it.
//! * Pending -> posted, SimpleFIN and GoCardless: a stored pending row inside a [`Window`] that did not
//!   come back has vanished. A new posted row of the same account matches it when the amounts agree
//!   (or differ by at most [`Tolerance`], for tips and exchange rates, when the texts share a word or
//!   it is the only candidate) and it posted at most [`Tolerance::max_days`] after the pending date. The
//!   best match wins: exact amount, then shared text, then the nearest date.
//! * Vanished pending rows that matched nothing, and rows the provider removed, are removed.

use std::collections::{HashMap, HashSet};

use chrono::NaiveDate;
use rust_decimal::Decimal;

use crate::{Batch, Txn};

/// A row stored for the connection, with what the provider last said about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored<K> {
    /// The caller's key (the transaction id).
    pub key: K,
    /// The provider's account id.
    pub account_id: String,
    /// The provider's transaction id.
    pub id: String,
    /// Pending when last seen.
    pub pending: bool,
    /// Date last seen.
    pub date: NaiveDate,
    /// Signed amount last seen (positive = money in).
    pub amount: Decimal,
    /// The provider's description last seen.
    pub description: String,
}

/// How far a posted row may differ from the pending row it replaces.
#[derive(Debug, Clone, Copy)]
pub struct Tolerance {
    /// Largest absolute difference always allowed.
    pub absolute: Decimal,
    /// Largest difference as a share of the pending amount (tips are usually under 25%).
    pub relative: Decimal,
    /// Most days between the pending date and the posting date.
    pub max_days: i64,
}

impl Default for Tolerance {
    fn default() -> Self {
        Tolerance { absolute: Decimal::new(200, 2), relative: Decimal::new(25, 2), max_days: 7 }
    }
}

/// Why a stored row goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    /// The provider said so.
    Removed,
    /// A pending row that did not come back and matched no posted row.
    Vanished,
}

/// One change to the stored rows.
#[derive(Debug, Clone, PartialEq)]
pub enum Action<K> {
    /// A new row.
    Insert(Txn),
    /// The stored row `key` is now `txn` (its provider id changes when a pending row posted).
    Update {
        /// Stored row.
        key: K,
        /// What it is now.
        txn: Txn,
        /// It was pending and `txn` is its posted version.
        posted: bool,
    },
    /// The stored row goes (soft delete).
    Remove {
        /// Stored row.
        key: K,
        /// Why.
        reason: Removal,
    },
}

/// Counts of a plan, for the sync's report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct PlanStats {
    /// New rows.
    pub inserted: usize,
    /// Rows whose provider data changed (including pending rows that posted).
    pub updated: usize,
    /// Pending rows that posted.
    pub posted: usize,
    /// Rows removed.
    pub removed: usize,
    /// Rows the provider sent again unchanged.
    pub unchanged: usize,
}

/// The changes, in an order that is safe to apply one by one.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan<K> {
    /// Changes.
    pub actions: Vec<Action<K>>,
    /// Counts.
    pub stats: PlanStats,
}

fn same(stored: &Stored<impl Sized>, t: &Txn) -> bool {
    stored.id == t.id
        && stored.pending == t.pending
        && stored.date == t.date
        && stored.amount == t.amount
        && stored.description == t.description
}

fn words(s: &str) -> HashSet<String> {
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.chars().count() >= 3 && !w.chars().all(|c| c.is_ascii_digit()))
        .map(str::to_lowercase)
        .collect()
}

/// Plan how `batch` changes `stored` (every row stored for the connection).
pub fn plan<K: Clone>(stored: &[Stored<K>], batch: &Batch, tolerance: &Tolerance) -> Plan<K> {
    let mut stats = PlanStats::default();
    let mut actions = Vec::new();
    let index: HashMap<(&str, &str), usize> =
        stored.iter().enumerate().map(|(i, s)| ((s.account_id.as_str(), s.id.as_str()), i)).collect();
    let mut consumed = vec![false; stored.len()];
    let seen: HashSet<(&str, &str)> = batch.upserts.iter().map(|t| (t.account_id.as_str(), t.id.as_str())).collect();
    let removed: HashSet<(&str, &str)> = batch.removed.iter().map(|r| (r.account_id.as_str(), r.id.as_str())).collect();
    let windowed: HashSet<&str> = batch.windows.iter().map(|w| w.account_id.as_str()).collect();

    // Posted rows of windowed accounts that are new: they may be a vanished pending row, posted.
    let mut fresh_posted: Vec<&Txn> = Vec::new();
    for t in &batch.upserts {
        if let Some(&i) = index.get(&(t.account_id.as_str(), t.id.as_str())) {
            consumed[i] = true;
            if same(&stored[i], t) {
                stats.unchanged += 1;
            } else {
                let posted = stored[i].pending && !t.pending;
                stats.updated += 1;
                stats.posted += usize::from(posted);
                actions.push(Action::Update { key: stored[i].key.clone(), txn: t.clone(), posted });
            }
            continue;
        }
        if let Some(p) = &t.pending_of
            && let Some(&i) = index.get(&(t.account_id.as_str(), p.as_str()))
            && !consumed[i]
            && stored[i].pending
        {
            consumed[i] = true;
            stats.updated += 1;
            stats.posted += 1;
            actions.push(Action::Update { key: stored[i].key.clone(), txn: t.clone(), posted: true });
            continue;
        }
        if !t.pending && windowed.contains(t.account_id.as_str()) {
            fresh_posted.push(t);
        } else {
            stats.inserted += 1;
            actions.push(Action::Insert(t.clone()));
        }
    }

    // Pending rows that are gone: removed explicitly, or absent from a window covering their date.
    let in_window =
        |s: &Stored<K>| batch.windows.iter().any(|w| w.account_id == s.account_id && w.from <= s.date && s.date < w.to);
    let mut vanished: Vec<usize> = Vec::new();
    for (i, s) in stored.iter().enumerate() {
        if consumed[i] {
            continue;
        }
        let key = (s.account_id.as_str(), s.id.as_str());
        if removed.contains(&key) {
            consumed[i] = true;
            stats.removed += 1;
            actions.push(Action::Remove { key: s.key.clone(), reason: Removal::Removed });
        } else if s.pending && !seen.contains(&key) && in_window(s) {
            vanished.push(i);
        }
    }

    // Match new posted rows to vanished pending rows, best pairs first.
    // (posted row, pending row, rank: inexact amount, no shared text, days apart, difference)
    type Rank = (u8, u8, i64, Decimal);
    let mut candidates: Vec<(usize, usize, Rank)> = Vec::new();
    for (c, t) in fresh_posted.iter().enumerate() {
        let text = words(&t.description);
        let in_account: Vec<usize> =
            vanished.iter().copied().filter(|&v| stored[v].account_id == t.account_id).collect();
        for &v in &in_account {
            let p = &stored[v];
            let days = (t.date - p.date).num_days();
            if days < -1 || days > tolerance.max_days || p.amount.is_sign_negative() != t.amount.is_sign_negative() {
                continue;
            }
            let diff = (t.amount - p.amount).abs();
            let allowed = tolerance.absolute.max(p.amount.abs() * tolerance.relative);
            let shares_text = !text.is_disjoint(&words(&p.description));
            let exact = diff.is_zero();
            if !exact && (diff > allowed || !(shares_text || in_account.len() == 1)) {
                continue;
            }
            candidates.push((c, v, (u8::from(!exact), u8::from(!shares_text), days.abs(), diff)));
        }
    }
    candidates.sort_by(|a, b| a.2.cmp(&b.2).then(a.0.cmp(&b.0)).then(a.1.cmp(&b.1)));
    let mut matched_posted = vec![false; fresh_posted.len()];
    for (c, v, _) in candidates {
        if matched_posted[c] || consumed[v] {
            continue;
        }
        matched_posted[c] = true;
        consumed[v] = true;
        stats.updated += 1;
        stats.posted += 1;
        actions.push(Action::Update { key: stored[v].key.clone(), txn: fresh_posted[c].clone(), posted: true });
    }
    for (c, t) in fresh_posted.iter().enumerate() {
        if !matched_posted[c] {
            stats.inserted += 1;
            actions.push(Action::Insert((*t).clone()));
        }
    }
    for v in vanished {
        if !consumed[v] {
            stats.removed += 1;
            actions.push(Action::Remove { key: stored[v].key.clone(), reason: Removal::Vanished });
        }
    }
    Plan { actions, stats }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{TxnRef, Window};

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn txn(id: &str, pending: bool, date: &str, amount: i64, text: &str) -> Txn {
        Txn {
            account_id: "acc".into(),
            id: id.into(),
            weak_id: false,
            pending,
            pending_of: None,
            date: d(date),
            amount: Decimal::new(amount, 2),
            currency: Some("USD".into()),
            description: text.into(),
            category: None,
        }
    }

    fn stored(key: u32, t: &Txn) -> Stored<u32> {
        Stored {
            key,
            account_id: t.account_id.clone(),
            id: t.id.clone(),
            pending: t.pending,
            date: t.date,
            amount: t.amount,
            description: t.description.clone(),
        }
    }

    fn window() -> Vec<Window> {
        vec![Window { account_id: "acc".into(), from: d("2026-06-01"), to: d("2026-07-01") }]
    }

    #[test]
    fn the_same_data_twice_changes_nothing() {
        let a = txn("a", false, "2026-06-02", -1250, "COFFEE");
        let p = txn("p", true, "2026-06-05", -999, "STREAMCO");
        let batch = Batch { upserts: vec![a.clone(), p.clone()], windows: window(), ..Batch::default() };
        let plan = plan(&[stored(1, &a), stored(2, &p)], &batch, &Tolerance::default());
        assert!(plan.actions.is_empty(), "{:?}", plan.actions);
        assert_eq!(plan.stats.unchanged, 2);
    }

    #[test]
    fn plaid_pending_posts_through_its_link_and_the_removal_is_absorbed() {
        let p = txn("p", true, "2026-06-01", -1250, "SQ *BLUE BOTTLE");
        let mut posted = txn("q", false, "2026-06-03", -1500, "SQ *BLUE BOTTLE 0412");
        posted.pending_of = Some("p".into());
        let batch = Batch {
            upserts: vec![posted.clone()],
            removed: vec![TxnRef { account_id: "acc".into(), id: "p".into() }],
            ..Batch::default()
        };
        let plan = plan(&[stored(7, &p)], &batch, &Tolerance::default());
        assert_eq!(plan.actions, vec![Action::Update { key: 7, txn: posted, posted: true }]);
        assert_eq!(plan.stats.posted, 1);
    }

    #[test]
    fn a_vanished_pending_row_matches_its_posted_row_with_a_new_id_and_amount() {
        let p = txn("h:1", true, "2026-06-05", -4000, "CAFE ZUID");
        let posted = txn("2026060812", false, "2026-06-07", -4600, "PAS 1234 CAFE ZUID AMSTERDAM");
        let other = txn("2026060813", false, "2026-06-07", -4500, "SUPERMARKT");
        let batch = Batch { upserts: vec![other.clone(), posted.clone()], windows: window(), ..Batch::default() };
        let plan = plan(&[stored(3, &p)], &batch, &Tolerance::default());
        assert!(plan.actions.contains(&Action::Update { key: 3, txn: posted, posted: true }), "{:?}", plan.actions);
        assert!(plan.actions.contains(&Action::Insert(other)));
        assert_eq!(plan.stats, PlanStats { inserted: 1, updated: 1, posted: 1, removed: 0, unchanged: 0 });
    }

    #[test]
    fn exact_amount_wins_and_unmatched_pending_rows_are_removed() {
        let p1 = txn("h:1", true, "2026-06-05", -999, "STREAMCO");
        let p2 = txn("h:2", true, "2026-06-05", -2000, "DINER");
        let posted = txn("b1", false, "2026-06-06", -999, "STREAMCO.COM");
        let batch = Batch { upserts: vec![posted.clone()], windows: window(), ..Batch::default() };
        let plan = plan(&[stored(1, &p1), stored(2, &p2)], &batch, &Tolerance::default());
        assert!(plan.actions.contains(&Action::Update { key: 1, txn: posted, posted: true }));
        assert!(plan.actions.contains(&Action::Remove { key: 2, reason: Removal::Vanished }));
    }

    #[test]
    fn pending_rows_outside_the_window_or_too_different_stay_or_go_on_their_own() {
        let old = txn("h:old", true, "2026-05-20", -500, "PARKING");
        let far = txn("h:far", true, "2026-06-01", -1000, "HOTEL");
        let posted = txn("b9", false, "2026-06-20", -1000, "HOTEL");
        let batch = Batch { upserts: vec![posted.clone()], windows: window(), ..Batch::default() };
        let plan = plan(&[stored(1, &old), stored(2, &far)], &batch, &Tolerance::default());
        // 19 days later is not the same payment; the pending row vanished on its own.
        assert!(plan.actions.contains(&Action::Insert(posted)));
        assert!(plan.actions.contains(&Action::Remove { key: 2, reason: Removal::Vanished }));
        assert!(!plan.actions.iter().any(|a| matches!(a, Action::Remove { key: 1, .. })), "outside the window");
    }

    #[test]
    fn a_different_amount_needs_shared_text_when_there_are_several_candidates() {
        let a = txn("h:a", true, "2026-06-05", -1000, "ALPHA");
        let b = txn("h:b", true, "2026-06-05", -1100, "BRAVO");
        let posted = txn("x", false, "2026-06-06", -1150, "CHARLIE");
        let batch = Batch { upserts: vec![posted.clone()], windows: window(), ..Batch::default() };
        let plan = plan(&[stored(1, &a), stored(2, &b)], &batch, &Tolerance::default());
        assert!(plan.actions.contains(&Action::Insert(posted)));
        assert_eq!(plan.stats.removed, 2);
    }

    #[test]
    fn explicit_removals_remove_posted_rows_too() {
        let a = txn("a", false, "2026-06-02", -100, "X");
        let batch = Batch { removed: vec![TxnRef { account_id: "acc".into(), id: "a".into() }], ..Batch::default() };
        let plan = plan(&[stored(1, &a)], &batch, &Tolerance::default());
        assert_eq!(plan.actions, vec![Action::Remove { key: 1, reason: Removal::Removed }]);
    }
}
