//! Caches of views derived from a user's whole ledger (recurring payments found in two years of
//! transactions, the monthly totals forecasts are fitted on), which cost a scan of tens of thousands
//! of rows to compute and change only when the ledger does.
//!
//! An entry is valid for the ledger's stamp (`magpie_db::transactions::ledger_stamp`: the count of the
//! user's transactions and their latest `updated_at`, one index-only read) and the day it was computed
//! for; every write to a transaction sets `updated_at` and every removal changes the count, so any
//! change on any replica makes the entry stale. Entries also expire after ten minutes, which bounds
//! what clock skew between replicas (a write stamped earlier than the latest) could leave stale. The
//! stamp is read before the data, so a write racing the computation makes the entry stale at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use magpie_domain::{Timestamp, UserId};

use crate::app::AppState;

/// How long an entry may be used at most.
const TTL: Duration = Duration::from_secs(600);
/// Users kept per cache.
const CAPACITY: usize = 1024;

/// What an entry is valid for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    count: i64,
    latest: Option<Timestamp>,
    day: NaiveDate,
}

/// The ledger's stamp now, for computations as of `day`.
pub async fn stamp(state: &AppState, user: UserId, day: NaiveDate) -> Result<Stamp, magpie_db::DbError> {
    let mut conn = state.db.conn().await?;
    let (count, latest) = magpie_db::transactions::ledger_stamp(conn.c(), user).await?;
    Ok(Stamp { count, latest, day })
}

/// A cached view: what it was computed for, when, and the value.
type Entry<T> = (Stamp, Instant, Arc<T>);

/// One derived view per user.
pub struct LedgerCache<T> {
    entries: Mutex<HashMap<UserId, Entry<T>>>,
}

impl<T> Default for LedgerCache<T> {
    fn default() -> Self {
        LedgerCache { entries: Mutex::new(HashMap::new()) }
    }
}

impl<T> LedgerCache<T> {
    /// The user's entry, if computed for this stamp and not expired.
    pub fn get(&self, user: UserId, stamp: &Stamp) -> Option<Arc<T>> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.get(&user).filter(|(s, at, _)| s == stamp && at.elapsed() < TTL).map(|(_, _, v)| v.clone())
    }

    /// Keep `value` for the user under `stamp`.
    pub fn put(&self, user: UserId, stamp: Stamp, value: Arc<T>) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= CAPACITY && !entries.contains_key(&user) {
            entries.retain(|_, (_, at, _)| at.elapsed() < TTL);
            if entries.len() >= CAPACITY
                && let Some(oldest) = entries.iter().min_by_key(|(_, (_, at, _))| *at).map(|(u, _)| *u)
            {
                entries.remove(&oldest);
            }
        }
        entries.insert(user, (stamp, Instant::now(), value));
    }

    /// Users held (for tests).
    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Recomputes a user's derived views soon after their ledger changed, in the background, so the next
/// dashboard finds them ready instead of paying for a scan of the whole ledger. At most one pending
/// warm-up per user (a burst of edits is one), and one at a time per process.
pub struct Warmer {
    pending: Mutex<std::collections::HashSet<UserId>>,
    running: tokio::sync::Semaphore,
}

impl Default for Warmer {
    fn default() -> Self {
        Warmer { pending: Mutex::default(), running: tokio::sync::Semaphore::new(1) }
    }
}

impl Warmer {
    /// Wait until no warm-up is pending or running (tests take snapshots of the database after it:
    /// a warm-up may queue a forecast training).
    pub async fn settle(&self) {
        loop {
            let pending = !self.pending.lock().unwrap_or_else(|e| e.into_inner()).is_empty();
            if !pending && let Ok(permit) = self.running.try_acquire() {
                drop(permit);
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// After this quiet time the views are recomputed (edits usually come in bursts).
const SETTLE: Duration = Duration::from_millis(500);

/// Note that `user`'s ledger changed.
pub fn ledger_changed(state: &AppState, user: UserId) {
    {
        let mut pending = state.warmer.pending.lock().unwrap_or_else(|e| e.into_inner());
        if !pending.insert(user) {
            return;
        }
    }
    let state = state.clone();
    tokio::spawn(async move {
        tokio::time::sleep(SETTLE).await;
        let Ok(_permit) = state.warmer.running.acquire().await else { return };
        state.warmer.pending.lock().unwrap_or_else(|e| e.into_inner()).remove(&user);
        let today = chrono::Utc::now().date_naive();
        let (recurring, forecast) = tokio::join!(
            crate::api::insights::warm_recurring(&state, user),
            // Fits for the request if the model is stale, which also queues its training.
            crate::forecasting::for_user(&state, user, today, 3),
        );
        if let Err(e) = recurring {
            tracing::debug!(error = %e, "warming recurring payments failed");
        }
        if let Err(e) = forecast {
            tracing::debug!(error = %format!("{e:#}"), "warming the forecast failed");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_serves_only_its_stamp_and_the_oldest_goes_first() {
        let cache: LedgerCache<u32> = LedgerCache::default();
        let day = NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
        let s = Stamp { count: 3, latest: None, day };
        let u = UserId::new();
        cache.put(u, s, Arc::new(7));
        assert_eq!(cache.get(u, &s).as_deref(), Some(&7));
        assert!(cache.get(u, &Stamp { count: 4, ..s }).is_none());
        assert!(cache.get(u, &Stamp { day: day.succ_opt().unwrap(), ..s }).is_none());
        assert!(cache.get(UserId::new(), &s).is_none());
        for _ in 0..CAPACITY + 5 {
            cache.put(UserId::new(), s, Arc::new(1));
        }
        assert_eq!(cache.len(), CAPACITY);
        assert!(cache.get(u, &s).is_none(), "the oldest entry was dropped");
    }
}
