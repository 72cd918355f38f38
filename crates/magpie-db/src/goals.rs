//! The `financial_goals` table.

use chrono::NaiveDate;
use magpie_domain::{Category, GoalId, GoalStatus, Money, Timestamp, UserId};

use crate::{Conn, Result, on_conn};

/// A row of `financial_goals`.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Goal {
    /// Id.
    pub id: GoalId,
    /// Owner.
    pub user_id: UserId,
    /// Name.
    pub name: String,
    /// Target, > 0.
    pub target_amount: Money,
    /// Progress, >= 0.
    pub current_amount: Money,
    /// Optional deadline.
    pub deadline: Option<NaiveDate>,
    /// Optional linked category for auto-tracking.
    pub category: Option<Category>,
    /// ACTIVE, ACHIEVED or ARCHIVED.
    pub status: GoalStatus,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
}

/// What creating a goal needs.
#[derive(Debug, Clone)]
pub struct NewGoal {
    /// Name (at most 100 characters).
    pub name: String,
    /// Target, > 0.
    pub target_amount: Money,
    /// Deadline.
    pub deadline: Option<NaiveDate>,
    /// Linked category.
    pub category: Option<Category>,
}

/// A partial update; for nullable fields `Some(None)` clears.
#[derive(Debug, Clone, Default)]
pub struct GoalPatch {
    /// New name.
    pub name: Option<String>,
    /// New target.
    pub target_amount: Option<Money>,
    /// New progress.
    pub current_amount: Option<Money>,
    /// New deadline.
    pub deadline: Option<Option<NaiveDate>>,
    /// New category.
    pub category: Option<Option<Category>>,
    /// New status.
    pub status: Option<GoalStatus>,
}

macro_rules! cols {
    () => {
        "id, user_id, name, target_amount, current_amount, deadline, category, status, created_at, updated_at"
    };
}

/// Insert a goal for `user` (ACTIVE, current amount 0: the schema's defaults).
#[tracing::instrument(skip_all, fields(user.id = %user))]
pub async fn create(conn: Conn<'_>, user: UserId, new: &NewGoal) -> Result<Goal> {
    // current_amount and status are left to the column defaults (0, 'ACTIVE') and read back.
    const SQL: &str = concat!(
        "insert into financial_goals (id, user_id, name, target_amount, deadline, category, created_at, updated_at) \
         values ($1, $2, $3, $4, $5, $6, $7, $7) returning ",
        cols!()
    );
    Ok(on_conn!(conn, c => sqlx::query_as(SQL)
        .bind(GoalId::new()).bind(user).bind(&new.name).bind(new.target_amount)
        .bind(new.deadline).bind(new.category.as_ref()).bind(Timestamp::now())
        .fetch_one(&mut *c).await?))
}

/// One of the user's goals.
#[tracing::instrument(skip_all, fields(user.id = %user))]
pub async fn get(conn: Conn<'_>, user: UserId, id: GoalId) -> Result<Option<Goal>> {
    const SQL: &str = concat!("select ", cols!(), " from financial_goals where id = $1 and user_id = $2");
    Ok(on_conn!(conn, c => sqlx::query_as(SQL).bind(id).bind(user).fetch_optional(&mut *c).await?))
}

/// The user's goals, optionally of one status (the seed's query 4 with `Active`, index
/// `idx_financial_goals_user_status`), nearest deadline first.
#[tracing::instrument(skip_all, fields(user.id = %user))]
pub async fn list(conn: Conn<'_>, user: UserId, status: Option<GoalStatus>) -> Result<Vec<Goal>> {
    const SQL: &str = concat!(
        "select ",
        cols!(),
        " from financial_goals where user_id = $1 and ($2 is null or status = $2) \
         order by deadline is null, deadline, created_at, id"
    );
    Ok(on_conn!(conn, c => sqlx::query_as(SQL).bind(user).bind(status).fetch_all(&mut *c).await?))
}

/// Apply a patch in one statement.
#[tracing::instrument(skip_all, fields(user.id = %user))]
pub async fn update(conn: Conn<'_>, user: UserId, id: GoalId, patch: &GoalPatch) -> Result<Option<Goal>> {
    const SQL: &str = concat!(
        "update financial_goals set \
           name = coalesce($3, name), \
           target_amount = coalesce($4, target_amount), \
           current_amount = coalesce($5, current_amount), \
           deadline = case when $6 then $7 else deadline end, \
           category = case when $8 then $9 else category end, \
           status = coalesce($10, status), \
           updated_at = $11 \
         where id = $1 and user_id = $2 returning ",
        cols!()
    );
    let (set_deadline, deadline) = split(patch.deadline);
    let (set_category, category) = split(patch.category.clone());
    Ok(on_conn!(conn, c => sqlx::query_as(SQL)
        .bind(id).bind(user).bind(patch.name.as_deref()).bind(patch.target_amount).bind(patch.current_amount)
        .bind(set_deadline).bind(deadline).bind(set_category).bind(category.clone())
        .bind(patch.status).bind(Timestamp::now())
        .fetch_optional(&mut *c).await?))
}

/// Delete one of the user's goals.
#[tracing::instrument(skip_all, fields(user.id = %user))]
pub async fn delete(conn: Conn<'_>, user: UserId, id: GoalId) -> Result<bool> {
    let n = on_conn!(conn, c => sqlx::query("delete from financial_goals where id = $1 and user_id = $2")
        .bind(id).bind(user).execute(&mut *c).await?.rows_affected());
    Ok(n > 0)
}

/// `Option<Option<T>>` as (should set, value) for `case when $set then $value else col end`.
fn split<T>(v: Option<Option<T>>) -> (bool, Option<T>) {
    match v {
        Some(inner) => (true, inner),
        None => (false, None),
    }
}

/// Rename a category on the user's goals; returns the number changed.
pub async fn rename_category(conn: Conn<'_>, user: UserId, from: &Category, to: &Category) -> Result<u64> {
    const SQL: &str = "update financial_goals set category = $3, updated_at = $4 where user_id = $1 and category = $2";
    Ok(on_conn!(conn, c => sqlx::query(SQL).bind(user).bind(from).bind(to).bind(Timestamp::now())
        .execute(&mut *c).await?.rows_affected()))
}
