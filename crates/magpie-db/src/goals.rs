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
    /// Auto-tracking counts the category's transactions from this day (none: from creation).
    pub tracking_start: Option<NaiveDate>,
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
    /// Auto-tracking start.
    pub tracking_start: Option<NaiveDate>,
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
    /// New tracking start.
    pub tracking_start: Option<Option<NaiveDate>>,
}

macro_rules! cols {
    () => {
        "id, user_id, name, target_amount, current_amount, deadline, category, status, tracking_start, created_at, \
         updated_at"
    };
}

/// Insert a goal for `user` (ACTIVE, current amount 0: the schema's defaults).
#[tracing::instrument(skip_all, fields(user.id = %user))]
pub async fn create(conn: Conn<'_>, user: UserId, new: &NewGoal) -> Result<Goal> {
    // current_amount and status are left to the column defaults (0, 'ACTIVE') and read back.
    const SQL: &str = concat!(
        "insert into financial_goals (id, user_id, name, target_amount, deadline, category, tracking_start, \
         created_at, updated_at) values ($1, $2, $3, $4, $5, $6, $8, $7, $7) returning ",
        cols!()
    );
    Ok(on_conn!(conn, c => sqlx::query_as(SQL)
        .bind(GoalId::new()).bind(user).bind(&new.name).bind(new.target_amount)
        .bind(new.deadline).bind(new.category.as_ref()).bind(Timestamp::now()).bind(new.tracking_start)
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
           tracking_start = case when $12 then $13 else tracking_start end, \
           updated_at = $11 \
         where id = $1 and user_id = $2 returning ",
        cols!()
    );
    let (set_deadline, deadline) = split(patch.deadline);
    let (set_category, category) = split(patch.category.clone());
    let (set_start, start) = split(patch.tracking_start);
    Ok(on_conn!(conn, c => sqlx::query_as(SQL)
        .bind(id).bind(user).bind(patch.name.as_deref()).bind(patch.target_amount).bind(patch.current_amount)
        .bind(set_deadline).bind(deadline).bind(set_category).bind(category.clone())
        .bind(patch.status).bind(Timestamp::now()).bind(set_start).bind(start)
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

/// A row of `goal_contributions`.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Contribution {
    /// Id.
    pub id: uuid::Uuid,
    /// The goal.
    pub goal_id: GoalId,
    /// Amount, > 0.
    pub amount: Money,
    /// Date.
    pub date: NaiveDate,
    /// Note.
    pub note: Option<String>,
    /// Creation time.
    pub created_at: Timestamp,
}

/// Lock one of the user's goals for the rest of the transaction (a row lock on PostgreSQL; SQLite's
/// write transactions are serialized already) and return it, so that two concurrent changes to its
/// amount are applied one after the other and neither is lost.
pub async fn lock(conn: Conn<'_>, user: UserId, id: GoalId) -> Result<Option<Goal>> {
    const SQL: &str = concat!(
        "update financial_goals set updated_at = updated_at where id = $1 and user_id = $2 returning ",
        cols!()
    );
    Ok(on_conn!(conn, c => sqlx::query_as(SQL).bind(id).bind(user).fetch_optional(&mut *c).await?))
}

/// Add a contribution to a goal the caller has locked.
pub async fn add_contribution(
    conn: Conn<'_>,
    user: UserId,
    goal: GoalId,
    amount: Money,
    date: NaiveDate,
    note: Option<&str>,
) -> Result<Contribution> {
    const SQL: &str = "insert into goal_contributions (id, goal_id, user_id, amount, date, note, created_at) \
        values ($1, $2, $3, $4, $5, $6, $7) returning id, goal_id, amount, date, note, created_at";
    Ok(on_conn!(conn, c => sqlx::query_as(SQL)
        .bind(uuid::Uuid::now_v7()).bind(goal).bind(user).bind(amount).bind(date).bind(note).bind(Timestamp::now())
        .fetch_one(&mut *c).await?))
}

/// A goal's contributions, newest first.
pub async fn contributions(conn: Conn<'_>, user: UserId, goal: GoalId) -> Result<Vec<Contribution>> {
    const SQL: &str = "select id, goal_id, amount, date, note, created_at from goal_contributions \
        where goal_id = $1 and user_id = $2 order by date desc, id desc";
    Ok(on_conn!(conn, c => sqlx::query_as(SQL).bind(goal).bind(user).fetch_all(&mut *c).await?))
}

/// Delete a contribution of a goal the caller has locked.
pub async fn delete_contribution(conn: Conn<'_>, user: UserId, goal: GoalId, id: uuid::Uuid) -> Result<bool> {
    let n = on_conn!(conn, c => sqlx::query("delete from goal_contributions where id = $1 and goal_id = $2 and user_id = $3")
        .bind(id).bind(goal).bind(user).execute(&mut *c).await?.rows_affected());
    Ok(n > 0)
}

/// Where a goal's money comes from, summed exactly by the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Contributions.
    pub contributed: Money,
    /// Auto-tracked: the linked category's expenses minus its income, from the tracking start.
    pub tracked: Money,
}

/// The goal's contributions and tracked money dated within `from..=to` (all of them without bounds).
pub async fn progress(
    mut conn: Conn<'_>,
    goal: &Goal,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
) -> Result<Progress> {
    const CONTRIBUTED: &str = "select sum(amount) from goal_contributions where goal_id = $1 \
        and ($2 is null or date >= $2) and ($3 is null or date <= $3)";
    let contributed: Option<Money> = on_conn!(conn.reborrow(), c => sqlx::query_scalar(CONTRIBUTED)
        .bind(goal.id).bind(from).bind(to).fetch_one(&mut *c).await?);
    let mut tracked = Money::ZERO;
    if let Some(category) = &goal.category {
        let start = goal.tracking_start.unwrap_or_else(|| goal.created_at.as_datetime().date_naive());
        let from = from.map_or(start, |f| f.max(start));
        // An index-only range scan of idx_transactions_user_category_live. SQLite is told so: with the
        // statistics of a one-user database it prefers the date-first covering index, which reads every
        // category of the range (2x slower at 100,000 rows).
        let table = match conn.engine() {
            crate::Engine::Sqlite => "transactions indexed by idx_transactions_user_category_live",
            crate::Engine::Postgres => "transactions",
        };
        // The largest date both engines write the same way (SQLite compares dates as text).
        let to = to.unwrap_or(NaiveDate::from_ymd_opt(9999, 12, 31).expect("a valid date"));
        let sql = format!(
            "select type, sum(amount) from {table} where user_id = $1 and category = $2 \
             and deleted_at is null and date >= $3 and date <= $4 group by type"
        );
        let rows: Vec<(magpie_domain::TransactionType, Money)> = on_conn!(conn, c => sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(goal.user_id).bind(category).bind(from).bind(to).fetch_all(&mut *c).await?);
        for (kind, sum) in rows {
            tracked = match kind {
                magpie_domain::TransactionType::Expense => tracked.checked_add(sum),
                magpie_domain::TransactionType::Income => tracked.checked_sub(sum),
            }
            .unwrap_or(tracked);
        }
    }
    Ok(Progress { contributed: contributed.unwrap_or(Money::ZERO), tracked })
}

/// Recompute a locked goal's `current_amount` (contributions plus tracked money, never below zero or
/// above the column's range) and its status: ACHIEVED once the target is reached, ACTIVE again if the
/// amount falls below it; ARCHIVED is left alone (only the person archives and un-archives).
pub async fn recompute(mut conn: Conn<'_>, goal: &Goal) -> Result<Goal> {
    let p = progress(conn.reborrow(), goal, None, None).await?;
    let mut current = p.contributed.checked_add(p.tracked).unwrap_or(Money::MAX_COLUMN);
    if current.is_negative() {
        current = Money::ZERO;
    }
    if current > Money::MAX_COLUMN {
        current = Money::MAX_COLUMN;
    }
    let status = match goal.status {
        GoalStatus::Archived => GoalStatus::Archived,
        _ if current >= goal.target_amount => GoalStatus::Achieved,
        _ => GoalStatus::Active,
    };
    if current == goal.current_amount && status == goal.status {
        return Ok(goal.clone());
    }
    const SQL: &str = concat!(
        "update financial_goals set current_amount = $3, status = $4, updated_at = $5 where id = $1 and user_id = $2 \
         returning ",
        cols!()
    );
    Ok(on_conn!(conn, c => sqlx::query_as(SQL)
        .bind(goal.id).bind(goal.user_id).bind(current).bind(status).bind(Timestamp::now())
        .fetch_one(&mut *c).await?))
}

/// Recompute every auto-tracked goal of the user (after transactions changed); returns how many
/// changed. Goals are locked in id order, so two such recomputes never deadlock.
pub async fn recompute_tracked(mut conn: Conn<'_>, user: UserId) -> Result<usize> {
    const SQL: &str =
        concat!("select ", cols!(), " from financial_goals where user_id = $1 and category is not null order by id");
    let goals: Vec<Goal> = on_conn!(conn.reborrow(), c => sqlx::query_as(SQL).bind(user).fetch_all(&mut *c).await?);
    let mut changed = 0;
    for g in goals {
        let Some(locked) = lock(conn.reborrow(), user, g.id).await? else { continue };
        let after = recompute(conn.reborrow(), &locked).await?;
        if after != locked {
            changed += 1;
        }
    }
    Ok(changed)
}
