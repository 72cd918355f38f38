//! Training runs: a user's model from their categorized transactions, and the global model from the
//! project's own training set. Each run writes a model file to the store and a row to `ml_models`, and
//! makes the new model the active one in the same database transaction that registers it.

use magpie_db::models::{self, NewModel};
use magpie_domain::{Category, ModelId, ModelType, Timestamp, UserId};
use magpie_ml::{Categorizer, Direction, Example, HeldOut, TrainConfig, global};
use serde::Serialize;

use crate::app::AppState;

/// The seed's rule: a user model needs more than this many categorized transactions.
pub const MIN_USER_ROWS: i64 = 50;
/// The most recent rows a user model learns from.
const MAX_USER_ROWS: i64 = 50_000;
/// Rows per category of the global training set.
pub const GLOBAL_ROWS_PER_CATEGORY: usize = 250;

/// What a training run did.
#[derive(Debug, Clone, Serialize)]
pub struct TrainOutcome {
    /// The model registered, if one was trained.
    pub model_id: Option<ModelId>,
    /// Its version.
    pub version: Option<String>,
    /// Why none was trained.
    pub skipped: Option<String>,
    /// Rows learned from.
    pub rows: usize,
    /// Categories.
    pub classes: usize,
    /// Held-out accuracy.
    pub accuracy: Option<f64>,
    /// Seconds spent training.
    pub train_seconds: f64,
}

impl TrainOutcome {
    fn skipped(why: String, rows: usize) -> TrainOutcome {
        TrainOutcome {
            model_id: None,
            version: None,
            skipped: Some(why),
            rows,
            classes: 0,
            accuracy: None,
            train_seconds: 0.0,
        }
    }
}

/// Owned training rows.
struct Rows {
    text: Vec<String>,
    cents: Vec<i64>,
    direction: Vec<Direction>,
    date: Vec<Option<chrono::NaiveDate>>,
    label: Vec<String>,
}

/// Store a trained model's file and register it as the active model of `owner` (`None`: global), in
/// one database transaction. `id` names the file; registering the same id twice is a no-op.
pub async fn register(
    state: &AppState,
    owner: Option<UserId>,
    id: ModelId,
    bytes: Vec<u8>,
    held_out: Option<HeldOut>,
) -> anyhow::Result<(ModelId, String)> {
    let path = match owner {
        Some(u) => format!("categorization/{u}/{id}.mgm"),
        None => format!("categorization/global/{id}.mgm"),
    };
    // The file first: a registered model always has its file. A file without a row (the process died
    // in between) is harmless.
    state.ml.store.put(&path, bytes).await?;
    let mut tx = state.db.begin().await?;
    if let Some(existing) = models::get_any(tx.c(), id).await? {
        return Ok((id, existing.version));
    }
    let version = models::next_version(tx.c(), owner, ModelType::Categorization).await?;
    let unit = |v: f64| (v.is_finite() && (0.0..=1.0).contains(&v)).then_some(v);
    let new = NewModel {
        model_type: ModelType::Categorization,
        user_id: owner,
        version: version.clone(),
        accuracy: held_out.and_then(|m| unit(m.accuracy)),
        precision: held_out.and_then(|m| unit(m.precision)),
        recall: held_out.and_then(|m| unit(m.recall)),
        trained_at: Timestamp::now(),
        model_path: path,
        is_active: false,
    };
    models::create_with_id(tx.c(), id, &new).await?;
    models::activate(tx.c(), owner, id).await?;
    tx.commit().await?;
    Ok((id, version))
}

/// Train a model on owned rows (on a blocking thread), then store and register it.
async fn train_and_register(
    state: &AppState,
    owner: Option<UserId>,
    model_id: ModelId,
    rows: Rows,
    config: TrainConfig,
) -> anyhow::Result<TrainOutcome> {
    let n = rows.text.len();
    let started = std::time::Instant::now();
    let (categorizer, selection) = tokio::task::spawn_blocking(move || {
        let examples: Vec<Example<'_>> = (0..rows.text.len())
            .map(|i| Example {
                text: &rows.text[i],
                amount_cents: Some(rows.cents[i]),
                direction: Some(rows.direction[i]),
                date: rows.date[i],
                extra: None,
            })
            .collect();
        let targets: Vec<&str> = rows.label.iter().map(String::as_str).collect();
        Categorizer::train_with_selection(&examples, &targets, &config)
    })
    .await
    .map_err(|e| anyhow::anyhow!("training stopped: {e}"))??;
    let train_seconds = started.elapsed().as_secs_f64();
    let classes = categorizer.classes();
    let held_out = categorizer.held_out;
    let bytes = tokio::task::spawn_blocking(move || categorizer.to_bytes())
        .await
        .map_err(|e| anyhow::anyhow!("model serialization stopped: {e}"))?;
    let (id, version) = register(state, owner, model_id, bytes, held_out).await?;
    tracing::info!(
        model.id = %id, owner = ?owner, version, rows = n, classes, train_seconds,
        accuracy = ?held_out.map(|m| m.accuracy), chosen = ?selection.chosen,
        "trained a categorization model"
    );
    Ok(TrainOutcome {
        model_id: Some(id),
        version: Some(version),
        skipped: None,
        rows: n,
        classes,
        accuracy: held_out.map(|m| m.accuracy),
        train_seconds,
    })
}

/// Train `user`'s model from their categorized transactions, if they have more than 50.
pub async fn train_user(state: &AppState, user: UserId) -> anyhow::Result<TrainOutcome> {
    train_user_as(state, user, ModelId::new()).await
}

/// [`train_user`], registering the model as `model_id`. A job passes an id derived from its own, so a
/// job run again after its worker died between registering the model and recording the job as done
/// finds the model and does not make a second one.
pub async fn train_user_as(state: &AppState, user: UserId, model_id: ModelId) -> anyhow::Result<TrainOutcome> {
    let mut conn = state.db.conn().await?;
    if let Some(done) = models::get_any(conn.c(), model_id).await? {
        tracing::info!(model.id = %model_id, "this training already registered its model");
        return Ok(TrainOutcome {
            model_id: Some(done.id),
            version: Some(done.version),
            skipped: None,
            rows: 0,
            classes: 0,
            accuracy: done.accuracy,
            train_seconds: 0.0,
        });
    }
    let (corrections, _) = magpie_db::memory::training_state(conn.c(), user).await?;
    let count = magpie_db::transactions::count_labelled(conn.c(), user).await?;
    if count <= MIN_USER_ROWS {
        return Ok(TrainOutcome::skipped(
            format!("a personal model needs more than {MIN_USER_ROWS} categorized transactions; there are {count}"),
            count as usize,
        ));
    }
    let labelled = magpie_db::transactions::labelled(conn.c(), user, MAX_USER_ROWS).await?;
    drop(conn);
    let mut distinct: Vec<&Category> = labelled.iter().map(|l| &l.category).collect();
    distinct.sort();
    distinct.dedup();
    if distinct.len() < 2 {
        return Ok(TrainOutcome::skipped(
            "a personal model needs transactions in at least two categories".into(),
            labelled.len(),
        ));
    }
    let rows = Rows {
        text: labelled.iter().map(|l| l.description.clone()).collect(),
        cents: labelled.iter().map(|l| l.amount.cents()).collect(),
        direction: labelled
            .iter()
            .map(|l| match l.kind {
                magpie_domain::TransactionType::Income => Direction::In,
                magpie_domain::TransactionType::Expense => Direction::Out,
            })
            .collect(),
        date: labelled.iter().map(|l| Some(l.date)).collect(),
        label: labelled.iter().map(|l| l.category.as_str().to_owned()).collect(),
    };
    let outcome = train_and_register(state, Some(user), model_id, rows, TrainConfig::default()).await?;
    let mut conn = state.db.conn().await?;
    magpie_db::memory::mark_trained(conn.c(), user, corrections, Timestamp::now()).await?;
    Ok(outcome)
}

/// The training settings of the global model. The shipped set is large and clean: three folds are
/// enough, and a cap on columns keeps the file at about 3 MB.
pub fn global_config() -> TrainConfig {
    let mut config = TrainConfig { calibration_folds: 3, small_rows: 0, ..TrainConfig::default() };
    config.features.max_columns = 40_000;
    config
}

/// Train the global model from the shipped training set (`per_category` rows per category). Pure:
/// `magpie ml train-global` writes the shipped file with it, and a test checks the shipped file is
/// what it produces.
pub fn train_global_model(per_category: usize) -> Result<Categorizer, magpie_ml::MlError> {
    let set = global::training_set(per_category, 42);
    let examples: Vec<Example<'_>> = set.iter().map(global::GlobalRow::example).collect();
    let targets: Vec<&str> = set.iter().map(|r| r.category).collect();
    Categorizer::train(&examples, &targets, &global_config())
}

/// Retrain the global model from the shipped training set and make it the active one, registered as
/// `model_id` (see [`train_user_as`] for why a job passes its own).
pub async fn train_global(state: &AppState, per_category: usize, model_id: ModelId) -> anyhow::Result<TrainOutcome> {
    {
        let mut conn = state.db.conn().await?;
        if let Some(done) = models::get_any(conn.c(), model_id).await? {
            return Ok(TrainOutcome {
                model_id: Some(done.id),
                version: Some(done.version),
                skipped: None,
                rows: 0,
                classes: 0,
                accuracy: done.accuracy,
                train_seconds: 0.0,
            });
        }
    }
    let started = std::time::Instant::now();
    let categorizer = tokio::task::spawn_blocking(move || train_global_model(per_category))
        .await
        .map_err(|e| anyhow::anyhow!("training stopped: {e}"))??;
    let train_seconds = started.elapsed().as_secs_f64();
    let (rows, classes, held_out) = (categorizer.trained_rows, categorizer.classes(), categorizer.held_out);
    let (id, version) = register(state, None, model_id, categorizer.to_bytes(), held_out).await?;
    Ok(TrainOutcome {
        model_id: Some(id),
        version: Some(version),
        skipped: None,
        rows,
        classes,
        accuracy: held_out.map(|m| m.accuracy),
        train_seconds,
    })
}

/// The global model shipped with the binary: `train_global_model(GLOBAL_ROWS_PER_CATEGORY)`, written
/// by `magpie ml train-global --out crates/magpie-server/models/global-categorizer.mgm`.
pub const SHIPPED_GLOBAL_MODEL: &[u8] = include_bytes!("../../models/global-categorizer.mgm");

/// On start: when there is no active global model, register the shipped one. Its id is derived from
/// its content, so replicas starting together register it once.
pub async fn install_shipped_global_model(state: &AppState) -> anyhow::Result<Option<ModelId>> {
    if has_global_model(state).await? {
        return Ok(None);
    }
    let model = Categorizer::from_bytes(SHIPPED_GLOBAL_MODEL)
        .map_err(|e| anyhow::anyhow!("the shipped global model is unreadable: {e}"))?;
    let digest = <sha2::Sha256 as sha2::Digest>::digest(SHIPPED_GLOBAL_MODEL);
    let mut id = [0u8; 16];
    id.copy_from_slice(&digest[..16]);
    let id = ModelId(uuid::Uuid::from_bytes(id));
    let (id, version) = register(state, None, id, SHIPPED_GLOBAL_MODEL.to_vec(), model.held_out).await?;
    tracing::info!(model.id = %id, version, classes = model.classes(), "installed the shipped global categorization model");
    Ok(Some(id))
}

/// Whether there is an active global categorization model.
pub async fn has_global_model(state: &AppState) -> anyhow::Result<bool> {
    let mut conn = state.db.conn().await?;
    Ok(models::active_id(conn.c(), None, ModelType::Categorization).await?.is_some())
}
