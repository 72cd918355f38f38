//! What the categorizer learns from a person between trainings: `merchant_categories` (the category a
//! person gave a merchant, applied at once) and `ml_training_state` (how many corrections the next
//! training will learn from).

use magpie_domain::{Category, Timestamp, UserId};

use crate::{Conn, Result, on_conn};

/// Remember that the person files `merchant_key` under `category` (replacing what was remembered).
#[tracing::instrument(skip_all, fields(user.id = %user))]
pub async fn remember(conn: Conn<'_>, user: UserId, merchant_key: &str, category: &Category) -> Result<()> {
    const SQL: &str = "insert into merchant_categories (user_id, merchant_key, category, corrections, updated_at) \
        values ($1, $2, $3, 1, $4) \
        on conflict (user_id, merchant_key) do update set category = excluded.category, \
        corrections = merchant_categories.corrections + 1, updated_at = excluded.updated_at";
    on_conn!(conn, c => {
        sqlx::query(SQL).bind(user).bind(merchant_key).bind(category).bind(Timestamp::now()).execute(&mut *c).await?;
    });
    Ok(())
}

/// Forget a merchant.
pub async fn forget(conn: Conn<'_>, user: UserId, merchant_key: &str) -> Result<bool> {
    let n = on_conn!(conn, c => sqlx::query("delete from merchant_categories where user_id = $1 and merchant_key = $2")
        .bind(user).bind(merchant_key).execute(&mut *c).await?.rows_affected());
    Ok(n > 0)
}

/// The category remembered for one merchant.
pub async fn lookup(conn: Conn<'_>, user: UserId, merchant_key: &str) -> Result<Option<Category>> {
    const SQL: &str = "select category from merchant_categories where user_id = $1 and merchant_key = $2";
    Ok(on_conn!(conn, c => sqlx::query_scalar(SQL).bind(user).bind(merchant_key).fetch_optional(&mut *c).await?))
}

/// Everything remembered for the user (merchant key, category), for categorizing many rows at once.
pub async fn all(conn: Conn<'_>, user: UserId) -> Result<Vec<(String, Category)>> {
    const SQL: &str = "select merchant_key, category from merchant_categories where user_id = $1";
    Ok(on_conn!(conn, c => sqlx::query_as(SQL).bind(user).fetch_all(&mut *c).await?))
}

/// Rename a category in the memory (part of a category rename or merge).
pub async fn rename_category(conn: Conn<'_>, user: UserId, from: &Category, to: &Category) -> Result<u64> {
    const SQL: &str = "update merchant_categories set category = $3 where user_id = $1 and category = $2";
    Ok(on_conn!(conn, c => sqlx::query(SQL).bind(user).bind(from).bind(to).execute(&mut *c).await?.rows_affected()))
}

/// Count `n` more corrections towards the next training; returns the total since the last one.
pub async fn add_corrections(conn: Conn<'_>, user: UserId, n: i64) -> Result<i64> {
    const SQL: &str = "insert into ml_training_state (user_id, corrections_since_training) values ($1, $2) \
        on conflict (user_id) do update set corrections_since_training = \
        ml_training_state.corrections_since_training + excluded.corrections_since_training \
        returning corrections_since_training";
    let total: i32 = on_conn!(conn, c => sqlx::query_scalar(SQL).bind(user).bind(n as i32).fetch_one(&mut *c).await?);
    Ok(i64::from(total))
}

/// Corrections since the last training, and when that was.
pub async fn training_state(conn: Conn<'_>, user: UserId) -> Result<(i64, Option<Timestamp>)> {
    const SQL: &str = "select corrections_since_training, last_trained_at from ml_training_state where user_id = $1";
    let row: Option<(i32, Option<Timestamp>)> =
        on_conn!(conn, c => sqlx::query_as(SQL).bind(user).fetch_optional(&mut *c).await?);
    Ok(row.map_or((0, None), |(n, at)| (i64::from(n), at)))
}

/// A training has learned from `consumed` corrections (those counted when it started; any made while
/// it ran stay counted for the next one).
pub async fn mark_trained(conn: Conn<'_>, user: UserId, consumed: i64, at: Timestamp) -> Result<()> {
    const SQL: &str = "insert into ml_training_state (user_id, corrections_since_training, last_trained_at) \
        values ($1, 0, $3) on conflict (user_id) do update set \
        corrections_since_training = case when ml_training_state.corrections_since_training > $2 \
            then ml_training_state.corrections_since_training - $2 else 0 end, \
        last_trained_at = excluded.last_trained_at";
    on_conn!(conn, c => {
        sqlx::query(SQL).bind(user).bind(consumed as i32).bind(at).execute(&mut *c).await?;
    });
    Ok(())
}
