//! Categorization in the server: which category a transaction gets, and from whom.
//!
//! The order is fixed: the person's own rules (in priority order), then the corrections they made
//! (remembered per merchant, so a correction applies at once), then their own model once they have one
//! (trained on more than 50 of their categorized transactions), else the global model. A model's
//! category is applied only at or above the configured confidence; below it the transaction stays
//! `Uncategorized` and is listed for review with the model's top suggestions. A category a person set
//! is never replaced by any of this.
//!
//! Models are loaded from the model store once per process and cached by id; every batch asks the
//! registry which model is active (one indexed query), so a newly trained or re-activated model is
//! picked up by every replica at its next batch.

pub mod store;
pub mod training;

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::NaiveDate;
use magpie_db::models::{self, MlModel};
use magpie_db::rules::Rule;
use magpie_db::{Conn, DbError};
use magpie_domain::{
    Category, CategorySource, Confidence, ModelId, ModelType, Money, RuleMatch, TransactionType, UserId,
};
use magpie_ml::{Categorizer, Direction, Example, Workspace};
use serde::Serialize;
use utoipa::ToSchema;

use crate::config::Config;
use store::ModelStore;

/// Most models kept in memory at once (a user model of a typical ledger is well under a megabyte).
const CACHE_CAPACITY: usize = 256;

/// The categorizer's share of the application state.
pub struct Ml {
    /// Model files.
    pub store: ModelStore,
    /// The confidence below which a model's category is not applied.
    pub threshold: f32,
    /// Corrections that trigger a background retraining.
    pub retrain_after: i64,
    cache: Mutex<Cache>,
}

#[derive(Default)]
struct Cache {
    models: HashMap<ModelId, (Arc<Categorizer>, u64)>,
    tick: u64,
}

impl Ml {
    /// From the configuration: the model store is `model_store`, or `<data_dir>/models`.
    pub fn new(config: &Config) -> anyhow::Result<Ml> {
        let spec = match &config.model_store {
            Some(s) => s.clone(),
            None => config.data_dir.join("models").display().to_string(),
        };
        Ok(Ml {
            store: ModelStore::open(&spec)?,
            threshold: config.ml_confidence_threshold as f32,
            retrain_after: i64::from(config.ml_retrain_after_corrections),
            cache: Mutex::new(Cache::default()),
        })
    }

    /// Delete every model file of `user` (categorization and forecasting models): when an account is
    /// deleted its rows go by cascade, and its files must go too (a forecast model holds the person's
    /// monthly spending per category). Returns how many files went.
    pub async fn forget_user(&self, user: UserId) -> anyhow::Result<usize> {
        let mut n = 0;
        for prefix in ["categorization", "prediction"] {
            n += self.store.delete_prefix(&format!("{prefix}/{user}")).await?;
        }
        Ok(n)
    }

    /// A registered model, from the cache or the store.
    pub async fn load(&self, model: &MlModel) -> anyhow::Result<Arc<Categorizer>> {
        if let Some(hit) = self.cached(model.id) {
            return Ok(hit);
        }
        let bytes = self.store.get(&model.model_path).await?;
        let categorizer = tokio::task::spawn_blocking(move || Categorizer::from_bytes(&bytes))
            .await
            .map_err(|e| anyhow::anyhow!("model loading stopped: {e}"))?
            .map_err(|e| anyhow::anyhow!("model {} ({}): {e}", model.id, model.model_path))?;
        let categorizer = Arc::new(categorizer);
        self.insert(model.id, categorizer.clone());
        Ok(categorizer)
    }

    fn cached(&self, id: ModelId) -> Option<Arc<Categorizer>> {
        let mut cache = self.cache.lock().expect("the cache lock is never poisoned");
        cache.tick += 1;
        let tick = cache.tick;
        cache.models.get_mut(&id).map(|(m, used)| {
            *used = tick;
            m.clone()
        })
    }

    fn insert(&self, id: ModelId, model: Arc<Categorizer>) {
        let mut cache = self.cache.lock().expect("the cache lock is never poisoned");
        cache.tick += 1;
        let tick = cache.tick;
        if cache.models.len() >= CACHE_CAPACITY
            && let Some(oldest) = cache.models.iter().min_by_key(|(_, (_, used))| *used).map(|(id, _)| *id)
        {
            cache.models.remove(&oldest);
        }
        cache.models.insert(id, (model, tick));
    }

    /// Whether a model is in memory (for tests of the cache).
    pub fn is_cached(&self, id: ModelId) -> bool {
        self.cache.lock().expect("the cache lock is never poisoned").models.contains_key(&id)
    }
}

/// A rule ready to match.
struct CompiledRule {
    matcher: Matcher,
    min: Option<Money>,
    max: Option<Money>,
    kind: Option<TransactionType>,
    category: Category,
}

enum Matcher {
    Contains(String),
    Exact(String),
    Regex(regex_lite::Regex),
}

/// Longest regular expression a rule may have, and the most memory its compiled program may take:
/// rules run on every imported row, so a pathological pattern must be refused when it is saved.
pub const MAX_PATTERN_CHARS: usize = 500;
const REGEX_SIZE_LIMIT: usize = 256 * 1024;

/// Compile a rule's regular expression as matching uses it (case-insensitive); the error is for people.
pub fn compile_regex(pattern: &str) -> Result<regex_lite::Regex, String> {
    regex_lite::RegexBuilder::new(pattern)
        .case_insensitive(true)
        .size_limit(REGEX_SIZE_LIMIT)
        .nest_limit(50)
        .build()
        .map_err(|e| format!("not a valid regular expression: {e}"))
}

impl CompiledRule {
    fn compile(rule: &Rule) -> Option<CompiledRule> {
        let matcher = match rule.match_kind {
            RuleMatch::Contains => Matcher::Contains(rule.pattern.to_lowercase()),
            RuleMatch::Exact => Matcher::Exact(rule.pattern.trim().to_lowercase()),
            RuleMatch::Regex => match compile_regex(&rule.pattern) {
                Ok(r) => Matcher::Regex(r),
                Err(e) => {
                    // Patterns are checked when saved; one that no longer compiles is skipped, not fatal.
                    tracing::warn!(rule.id = %rule.id, error = %e, "skipping a rule whose pattern does not compile");
                    return None;
                }
            },
        };
        Some(CompiledRule {
            matcher,
            min: rule.min_amount,
            max: rule.max_amount,
            kind: rule.kind,
            category: rule.category.clone(),
        })
    }

    fn matches(&self, s: &Subject<'_>, lower: &str) -> bool {
        if self.kind.is_some_and(|k| k != s.kind)
            || self.min.is_some_and(|m| s.amount < m)
            || self.max.is_some_and(|m| s.amount > m)
        {
            return false;
        }
        match &self.matcher {
            Matcher::Contains(p) => lower.contains(p.as_str()),
            Matcher::Exact(p) => lower.trim() == p,
            Matcher::Regex(r) => r.is_match(s.description),
        }
    }
}

/// What the categorizer looks at.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    /// Description.
    pub description: &'a str,
    /// Amount (positive).
    pub amount: Money,
    /// Type.
    pub kind: TransactionType,
    /// Booking date.
    pub date: NaiveDate,
}

impl Subject<'_> {
    fn example(&self) -> Example<'_> {
        Example {
            text: self.description,
            amount_cents: Some(self.amount.cents()),
            direction: Some(match self.kind {
                TransactionType::Income => Direction::In,
                TransactionType::Expense => Direction::Out,
            }),
            date: Some(self.date),
            extra: None,
        }
    }
}

/// A category decision.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// The category (`Uncategorized` when nobody was sure enough).
    pub category: Category,
    /// The model's calibrated probability of its top category, when a model decided.
    pub confidence: Option<Confidence>,
    /// Who decided.
    pub source: CategorySource,
}

impl Decision {
    fn none() -> Decision {
        Decision { category: Category::uncategorized(), confidence: None, source: CategorySource::None }
    }
}

/// A category a model suggests, with its probability.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Suggestion {
    /// Category.
    pub category: String,
    /// Calibrated probability, 0 to 1.
    pub confidence: f32,
}

/// Which model decided, for reports.
#[derive(Debug, Clone)]
pub struct ActiveModel {
    /// Its registry id.
    pub id: ModelId,
    /// Its owner (`None`: the global model).
    pub owner: Option<UserId>,
    /// The model.
    pub categorizer: Arc<Categorizer>,
}

thread_local! {
    static WORKSPACE: RefCell<Workspace> = RefCell::new(Workspace::default());
}

/// Everything needed to categorize one user's transactions: rules, remembered corrections, the model.
/// Cheap to share between threads (an import categorizes on its reading thread).
pub struct Categorizing {
    rules: Vec<CompiledRule>,
    memory: HashMap<String, Category>,
    /// The model used (the user's own, else the global one), if any.
    pub model: Option<ActiveModel>,
    threshold: f32,
}

/// Which remembered corrections to load.
pub enum MemoryScope<'a> {
    /// All of the user's (for batches).
    All,
    /// Only these descriptions' merchants (for one transaction).
    For(&'a [&'a str]),
}

impl Categorizing {
    /// Load the user's rules, remembered corrections and active model.
    pub async fn load(
        ml: &Ml,
        mut conn: Conn<'_>,
        user: UserId,
        scope: MemoryScope<'_>,
    ) -> Result<Categorizing, DbError> {
        let rules = magpie_db::rules::list(conn.reborrow(), user)
            .await?
            .iter()
            .filter(|r| r.enabled)
            .filter_map(CompiledRule::compile)
            .collect();
        let memory = match scope {
            MemoryScope::All => magpie_db::memory::all(conn.reborrow(), user).await?.into_iter().collect(),
            MemoryScope::For(descriptions) => {
                let mut found = HashMap::new();
                for d in descriptions {
                    let key = magpie_ml::text::merchant_key(d);
                    if !key.is_empty()
                        && let Some(c) = magpie_db::memory::lookup(conn.reborrow(), user, &key).await?
                    {
                        found.insert(key, c);
                    }
                }
                found
            }
        };
        let model = active_model(ml, conn, user).await?;
        Ok(Categorizing { rules, memory, model, threshold: ml.threshold })
    }

    /// Nothing but the model (for suggestions).
    pub fn has_model(&self) -> bool {
        self.model.is_some()
    }

    /// The category for `s`.
    pub fn decide(&self, s: &Subject<'_>) -> Decision {
        self.decide_with_hint(s, None)
    }

    /// The category for `s` when the bank aggregator suggested one with a confidence: the person's rules
    /// and remembered corrections still come first; then the aggregator's category if it is at least as
    /// sure as the configured threshold; then the models.
    pub fn decide_with_hint(&self, s: &Subject<'_>, hint: Option<(&Category, Option<Confidence>)>) -> Decision {
        let lower = s.description.to_lowercase();
        if let Some(rule) = self.rules.iter().find(|r| r.matches(s, &lower)) {
            return Decision { category: rule.category.clone(), confidence: None, source: CategorySource::Rule };
        }
        if !self.memory.is_empty() {
            let key = magpie_ml::text::merchant_key(s.description);
            if let Some(c) = self.memory.get(&key) {
                return Decision { category: c.clone(), confidence: None, source: CategorySource::Memory };
            }
        }
        if let Some((category, Some(confidence))) = hint
            && confidence.as_f64() >= f64::from(self.threshold)
        {
            return Decision {
                category: category.clone(),
                confidence: Some(confidence),
                source: CategorySource::Provider,
            };
        }
        let Some(model) = &self.model else { return Decision::none() };
        let top = WORKSPACE.with(|ws| model.categorizer.predict(&s.example(), &mut ws.borrow_mut()));
        let probability = f64::from(top.probability).clamp(0.0, 1.0);
        // Round down, so that a stored 0.50 never stands for a probability under the threshold.
        let confidence = Confidence::from_hundredths((probability * 100.0).floor() as u8).ok();
        let category = match Category::parse(&model.categorizer.labels[top.class]) {
            Ok(c) if top.probability >= self.threshold => c,
            _ => Category::uncategorized(),
        };
        Decision { category, confidence, source: CategorySource::Model }
    }

    /// The model's `n` most likely categories for `s`.
    pub fn suggestions(&self, s: &Subject<'_>, n: usize) -> Vec<Suggestion> {
        let Some(model) = &self.model else { return Vec::new() };
        WORKSPACE.with(|ws| {
            model
                .categorizer
                .top(&s.example(), n, &mut ws.borrow_mut())
                .into_iter()
                .map(|t| Suggestion {
                    category: model.categorizer.labels[t.class].clone(),
                    confidence: (t.probability * 100.0).round() / 100.0,
                })
                .collect()
        })
    }
}

/// The user's active categorization model, else the active global one.
pub async fn active_model(ml: &Ml, mut conn: Conn<'_>, user: UserId) -> Result<Option<ActiveModel>, DbError> {
    for owner in [Some(user), None] {
        let Some(id) = models::active_id(conn.reborrow(), owner, ModelType::Categorization).await? else { continue };
        let categorizer = match ml.cached(id) {
            Some(c) => c,
            None => {
                let Some(row) = models::get_any(conn.reborrow(), id).await? else { continue };
                match ml.load(&row).await {
                    Ok(c) => c,
                    Err(e) => {
                        // A missing or corrupt file must not stop categorization: fall back to the next
                        // model (the user's to the global one), and say so.
                        tracing::error!(model.id = %id, error = %e, "cannot load the active model; skipping it");
                        continue;
                    }
                }
            }
        };
        return Ok(Some(ActiveModel { id, owner, categorizer }));
    }
    Ok(None)
}

/// A person filed transactions (`description`, `category`) by hand: remember each merchant's category
/// (used from the next transaction on) and count the corrections towards the next training. Runs in
/// the caller's transaction; returns the corrections since the last training.
pub async fn learn(mut conn: Conn<'_>, user: UserId, corrections: &[(&str, &Category)]) -> Result<i64, DbError> {
    let mut seen = std::collections::HashSet::new();
    for (description, category) in corrections {
        let key = magpie_ml::text::merchant_key(description);
        // A description that is only numbers and references has no merchant to remember.
        if key.is_empty() || key.chars().count() > 200 || !seen.insert(key.clone()) {
            continue;
        }
        if category.as_str() == Category::UNCATEGORIZED {
            magpie_db::memory::forget(conn.reborrow(), user, &key).await?;
        } else {
            magpie_db::memory::remember(conn.reborrow(), user, &key, category).await?;
        }
    }
    magpie_db::memory::add_corrections(conn, user, corrections.len() as i64).await
}

/// Queue a training of the user's model when it is due: their first model once they have more than
/// 50 categorized transactions, then a retraining after `ml_retrain_after_corrections` corrections
/// (`corrections`: the count since the last training, when this call follows corrections). The
/// labelling itself has already succeeded, so a failure here is logged, not returned.
pub async fn train_if_due(state: &crate::app::AppState, user: UserId, corrections: Option<i64>) {
    let due = async {
        let mut conn = state.db.conn().await?;
        let has_model = models::active_id(conn.c(), Some(user), ModelType::Categorization).await?.is_some();
        let due = if has_model {
            corrections.is_some_and(|n| n >= state.ml.retrain_after)
        } else {
            magpie_db::transactions::has_more_labelled_than(conn.c(), user, training::MIN_USER_ROWS).await?
        };
        drop(conn);
        if due {
            let (job, new) = crate::jobs::enqueue_training(state, user).await?;
            if new {
                tracing::info!(job.id = %job, first = !has_model, ?corrections, "queued a training of the user's model");
            }
        }
        anyhow::Ok(())
    };
    if let Err(e) = due.await {
        tracing::warn!(error = %format!("{e:#}"), "cannot queue a training");
    }
}
