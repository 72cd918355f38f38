//! The `ml_models` table: the model registry. Global models have `user_id` NULL and are readable by every
//! user; a user's own models are readable only by that user.

use magpie_domain::{ModelId, ModelType, Timestamp, UserId};

use crate::{Conn, Result, on_conn};

/// A row of `ml_models`.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct MlModel {
    /// Id.
    pub id: ModelId,
    /// CATEGORIZATION or PREDICTION.
    pub model_type: ModelType,
    /// Owner; `None` for a global model.
    pub user_id: Option<UserId>,
    /// Version string (at most 20 characters).
    pub version: String,
    /// Held-out accuracy, 0..1.
    pub accuracy: Option<f64>,
    /// Held-out precision, 0..1.
    pub precision: Option<f64>,
    /// Held-out recall, 0..1.
    pub recall: Option<f64>,
    /// When it was trained.
    pub trained_at: Timestamp,
    /// Where the model file is (object-store path).
    pub model_path: String,
    /// Whether predictions use it.
    pub is_active: bool,
}

/// What registering a model needs.
#[derive(Debug, Clone)]
pub struct NewModel {
    /// Type.
    pub model_type: ModelType,
    /// Owner, `None` for global.
    pub user_id: Option<UserId>,
    /// Version.
    pub version: String,
    /// Accuracy.
    pub accuracy: Option<f64>,
    /// Precision.
    pub precision: Option<f64>,
    /// Recall.
    pub recall: Option<f64>,
    /// Training time.
    pub trained_at: Timestamp,
    /// Model file path.
    pub model_path: String,
    /// Active on insert.
    pub is_active: bool,
}

macro_rules! cols {
    () => {
        r#"id, model_type, user_id, version, accuracy, "precision", recall, trained_at, model_path, is_active"#
    };
}

/// Register a model.
pub async fn create(conn: Conn<'_>, new: &NewModel) -> Result<MlModel> {
    create_with_id(conn, ModelId::new(), new).await
}

/// Register a model under a given id (the one its file is named after).
#[tracing::instrument(skip_all)]
pub async fn create_with_id(conn: Conn<'_>, id: ModelId, new: &NewModel) -> Result<MlModel> {
    const SQL: &str = concat!("insert into ml_models (", cols!(), ") values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)");
    let row = MlModel {
        id,
        model_type: new.model_type,
        user_id: new.user_id,
        version: new.version.clone(),
        accuracy: new.accuracy,
        precision: new.precision,
        recall: new.recall,
        trained_at: new.trained_at,
        model_path: new.model_path.clone(),
        is_active: new.is_active,
    };
    on_conn!(conn, c => {
        sqlx::query(SQL)
            .bind(row.id).bind(row.model_type).bind(row.user_id).bind(&row.version)
            .bind(row.accuracy).bind(row.precision).bind(row.recall).bind(row.trained_at)
            .bind(&row.model_path).bind(row.is_active)
            .execute(&mut *c).await?;
    });
    Ok(row)
}

/// A model the user may see: one of their own, or a global one.
#[tracing::instrument(skip_all, fields(user.id = %user))]
pub async fn get_visible(conn: Conn<'_>, user: UserId, id: ModelId) -> Result<Option<MlModel>> {
    const SQL: &str =
        concat!("select ", cols!(), " from ml_models where id = $1 and (user_id = $2 or user_id is null)");
    Ok(on_conn!(conn, c => sqlx::query_as(SQL).bind(id).bind(user).fetch_optional(&mut *c).await?))
}

/// One of the user's own models (not a global one).
#[tracing::instrument(skip_all, fields(user.id = %user))]
pub async fn get_own(conn: Conn<'_>, user: UserId, id: ModelId) -> Result<Option<MlModel>> {
    const SQL: &str = concat!("select ", cols!(), " from ml_models where id = $1 and user_id = $2");
    Ok(on_conn!(conn, c => sqlx::query_as(SQL).bind(id).bind(user).fetch_optional(&mut *c).await?))
}

/// The user's models and the global ones, newest first, optionally of one type.
#[tracing::instrument(skip_all, fields(user.id = %user))]
pub async fn list_visible(conn: Conn<'_>, user: UserId, model_type: Option<ModelType>) -> Result<Vec<MlModel>> {
    const SQL: &str = concat!(
        "select ",
        cols!(),
        " from ml_models where (user_id = $1 or user_id is null) \
         and ($2 is null or model_type = $2) order by trained_at desc, id desc"
    );
    Ok(on_conn!(conn, c => sqlx::query_as(SQL).bind(user).bind(model_type).fetch_all(&mut *c).await?))
}

/// The seed's query 5: the active model of a type for `user` (index `idx_ml_models_user_type_active`),
/// or with `None` the active global model.
#[tracing::instrument(skip_all)]
pub async fn find_active(conn: Conn<'_>, user: Option<UserId>, model_type: ModelType) -> Result<Option<MlModel>> {
    Ok(match user {
        Some(user) => {
            const SQL: &str = concat!(
                "select ",
                cols!(),
                " from ml_models where user_id = $1 and model_type = $2 and is_active = true \
                 order by trained_at desc limit 1"
            );
            on_conn!(conn, c => sqlx::query_as(SQL).bind(user).bind(model_type).fetch_optional(&mut *c).await?)
        }
        None => {
            const SQL: &str = concat!(
                "select ",
                cols!(),
                " from ml_models where user_id is null and model_type = $1 and is_active = true \
                 order by trained_at desc limit 1"
            );
            on_conn!(conn, c => sqlx::query_as(SQL).bind(model_type).fetch_optional(&mut *c).await?)
        }
    })
}

/// Make `id` the one active model of its (owner, type), deactivating the others. Call inside a
/// transaction ([`crate::Db::begin`]) so that readers never see zero or two active models. Returns
/// false (and changes nothing) when `id` is not a model of `owner`.
#[tracing::instrument(skip_all)]
pub async fn activate(mut conn: Conn<'_>, owner: Option<UserId>, id: ModelId) -> Result<bool> {
    const FIND: &str = "select model_type from ml_models where id = $1 and \
        (($2 is null and user_id is null) or user_id = $2)";
    let model_type: Option<ModelType> =
        on_conn!(conn.reborrow(), c => sqlx::query_scalar(FIND).bind(id).bind(owner).fetch_optional(&mut *c).await?);
    let Some(model_type) = model_type else { return Ok(false) };
    const DEACTIVATE: &str = "update ml_models set is_active = false where model_type = $1 and \
        (($2 is null and user_id is null) or user_id = $2) and id <> $3 and is_active = true";
    const ACTIVATE: &str = "update ml_models set is_active = true where id = $1";
    on_conn!(conn, c => {
        sqlx::query(DEACTIVATE).bind(model_type).bind(owner).bind(id).execute(&mut *c).await?;
        sqlx::query(ACTIVATE).bind(id).execute(&mut *c).await?;
    });
    Ok(true)
}

/// Delete one of the user's own models.
#[tracing::instrument(skip_all, fields(user.id = %user))]
pub async fn delete_own(conn: Conn<'_>, user: UserId, id: ModelId) -> Result<bool> {
    let n = on_conn!(conn, c => sqlx::query("delete from ml_models where id = $1 and user_id = $2")
        .bind(id).bind(user).execute(&mut *c).await?.rows_affected());
    Ok(n > 0)
}

/// The version the next model of (owner, type) gets: `v1`, `v2`, ...
pub async fn next_version(conn: Conn<'_>, owner: Option<UserId>, model_type: ModelType) -> Result<String> {
    const SQL: &str = "select count(*) from ml_models where model_type = $1 and \
        (($2 is null and user_id is null) or user_id = $2)";
    let n: i64 = on_conn!(conn, c => sqlx::query_scalar(SQL).bind(model_type).bind(owner).fetch_one(&mut *c).await?);
    Ok(format!("v{}", n + 1))
}

/// The active model id of (owner, type), cheaply (the prediction cache checks it on every batch).
pub async fn active_id(conn: Conn<'_>, owner: Option<UserId>, model_type: ModelType) -> Result<Option<ModelId>> {
    const SQL: &str = "select id from ml_models where model_type = $1 and is_active = true and \
        (($2 is null and user_id is null) or user_id = $2) order by trained_at desc limit 1";
    Ok(on_conn!(conn, c => sqlx::query_scalar(SQL).bind(model_type).bind(owner).fetch_optional(&mut *c).await?))
}

/// Any model by id (for loading its file).
pub async fn get_any(conn: Conn<'_>, id: ModelId) -> Result<Option<MlModel>> {
    const SQL: &str = concat!("select ", cols!(), " from ml_models where id = $1");
    Ok(on_conn!(conn, c => sqlx::query_as(SQL).bind(id).fetch_optional(&mut *c).await?))
}

/// The active models by type and scope: how many, and their mean accuracy (for `/metrics`).
pub async fn active_summary(conn: Conn<'_>) -> Result<Vec<(String, bool, i64, Option<f64>)>> {
    const SQL: &str = "select model_type, user_id is null, count(*), cast(avg(accuracy) as double precision) from ml_models \
                       where is_active group by model_type, user_id is null order by 1, 2";
    Ok(on_conn!(conn, c => sqlx::query_as(SQL).fetch_all(&mut *c).await?))
}
