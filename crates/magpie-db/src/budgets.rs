//! The `budgets` table. `allocations` is JSONB on PostgreSQL and JSON text on SQLite, holding
//! category -> two-decimal string amounts.

use chrono::NaiveDate;
use magpie_domain::{Allocations, BudgetId, Timestamp, UserId};
use sqlx::types::Json;

use crate::{Conn, Result, on_conn};

/// A row of `budgets`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Budget {
    /// Id.
    pub id: BudgetId,
    /// Owner.
    pub user_id: UserId,
    /// Name.
    pub name: String,
    /// First day of the period.
    pub period_start: NaiveDate,
    /// Last day of the period (inclusive).
    pub period_end: NaiveDate,
    /// Category -> amount.
    #[sqlx(json)]
    pub allocations: Allocations,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
}

/// What creating (or fully replacing) a budget needs.
#[derive(Debug, Clone)]
pub struct NewBudget {
    /// Name (at most 100 characters).
    pub name: String,
    /// First day.
    pub period_start: NaiveDate,
    /// Last day, >= `period_start`.
    pub period_end: NaiveDate,
    /// Allocations.
    pub allocations: Allocations,
}

macro_rules! cols {
    () => {
        "id, user_id, name, period_start, period_end, allocations, created_at, updated_at"
    };
}

/// Insert a budget for `user`.
#[tracing::instrument(skip_all, fields(user.id = %user))]
pub async fn create(conn: Conn<'_>, user: UserId, new: &NewBudget) -> Result<Budget> {
    const SQL: &str = concat!("insert into budgets (", cols!(), ") values ($1, $2, $3, $4, $5, $6, $7, $8)");
    let now = Timestamp::now();
    let row = Budget {
        id: BudgetId::new(),
        user_id: user,
        name: new.name.clone(),
        period_start: new.period_start,
        period_end: new.period_end,
        allocations: new.allocations.clone(),
        created_at: now,
        updated_at: now,
    };
    on_conn!(conn, c => {
        sqlx::query(SQL)
            .bind(row.id).bind(row.user_id).bind(&row.name).bind(row.period_start).bind(row.period_end)
            .bind(Json(&row.allocations)).bind(row.created_at).bind(row.updated_at)
            .execute(&mut *c).await?;
    });
    Ok(row)
}

/// One of the user's budgets.
#[tracing::instrument(skip_all, fields(user.id = %user))]
pub async fn get(conn: Conn<'_>, user: UserId, id: BudgetId) -> Result<Option<Budget>> {
    const SQL: &str = concat!("select ", cols!(), " from budgets where id = $1 and user_id = $2");
    Ok(on_conn!(conn, c => sqlx::query_as(SQL).bind(id).bind(user).fetch_optional(&mut *c).await?))
}

/// The user's budgets, latest period first.
#[tracing::instrument(skip_all, fields(user.id = %user))]
pub async fn list(conn: Conn<'_>, user: UserId) -> Result<Vec<Budget>> {
    const SQL: &str =
        concat!("select ", cols!(), " from budgets where user_id = $1 order by period_start desc, id desc");
    Ok(on_conn!(conn, c => sqlx::query_as(SQL).bind(user).fetch_all(&mut *c).await?))
}

/// The seed's query 3: budgets whose period contains `day` (index `idx_budgets_user_period`).
#[tracing::instrument(skip_all, fields(user.id = %user))]
pub async fn current(conn: Conn<'_>, user: UserId, day: NaiveDate) -> Result<Vec<Budget>> {
    const SQL: &str = concat!(
        "select ",
        cols!(),
        " from budgets where user_id = $1 and period_start <= $2 and period_end >= $2 \
         order by period_start desc, id desc"
    );
    Ok(on_conn!(conn, c => sqlx::query_as(SQL).bind(user).bind(day).fetch_all(&mut *c).await?))
}

/// Replace name, period and allocations.
#[tracing::instrument(skip_all, fields(user.id = %user))]
pub async fn update(conn: Conn<'_>, user: UserId, id: BudgetId, new: &NewBudget) -> Result<Option<Budget>> {
    const SQL: &str = concat!(
        "update budgets set name = $3, period_start = $4, period_end = $5, allocations = $6, updated_at = $7 \
         where id = $1 and user_id = $2 returning ",
        cols!()
    );
    Ok(on_conn!(conn, c => sqlx::query_as(SQL)
        .bind(id).bind(user).bind(&new.name).bind(new.period_start).bind(new.period_end)
        .bind(Json(&new.allocations)).bind(Timestamp::now())
        .fetch_optional(&mut *c).await?))
}

/// Delete one of the user's budgets.
#[tracing::instrument(skip_all, fields(user.id = %user))]
pub async fn delete(conn: Conn<'_>, user: UserId, id: BudgetId) -> Result<bool> {
    let n = on_conn!(conn, c => sqlx::query("delete from budgets where id = $1 and user_id = $2")
        .bind(id).bind(user).execute(&mut *c).await?.rows_affected());
    Ok(n > 0)
}
