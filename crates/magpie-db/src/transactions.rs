//! The `transactions` table.
//!
//! Soft delete: `deleted_at` set means the row is gone from every list, total, budget and goal but kept
//! for audit; `get` and the lists here never return such rows, `get_including_deleted` does.

use chrono::NaiveDate;
use magpie_domain::{
    Category, CategorySource, Confidence, ConnectionId, Money, Source, Timestamp, TransactionId, TransactionType,
    UserId,
};

use crate::{Conn, DbError, Result, on_conn};

/// A row of `transactions`.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Transaction {
    /// Id.
    pub id: TransactionId,
    /// Owner.
    pub user_id: UserId,
    /// Amount, always >= 0; the direction is `kind`.
    pub amount: Money,
    /// Booking date.
    pub date: NaiveDate,
    /// Description as the bank or the user wrote it.
    pub description: String,
    /// Category.
    pub category: Category,
    /// INCOME or EXPENSE (column `type`).
    #[sqlx(rename = "type")]
    pub kind: TransactionType,
    /// MANUAL, API or FILE_IMPORT.
    pub source: Source,
    /// Model confidence, when a model chose the category.
    pub confidence_score: Option<Confidence>,
    /// Who decided the category.
    pub category_source: CategorySource,
    /// The bank connection it came from, if any.
    pub connection_id: Option<ConnectionId>,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
    /// Soft-delete time.
    pub deleted_at: Option<Timestamp>,
    /// Not yet booked by the bank (bank-synced rows only; it posts or vanishes at a later sync).
    pub pending: bool,
}

/// What creating a transaction needs.
#[derive(Debug, Clone)]
pub struct NewTransaction {
    /// Amount, >= 0.
    pub amount: Money,
    /// Booking date.
    pub date: NaiveDate,
    /// Description.
    pub description: String,
    /// Category.
    pub category: Category,
    /// INCOME or EXPENSE.
    pub kind: TransactionType,
    /// Where it came from.
    pub source: Source,
    /// Model confidence.
    pub confidence_score: Option<Confidence>,
    /// Who decided the category.
    pub category_source: CategorySource,
    /// Bank connection (must be the same user's).
    pub connection_id: Option<ConnectionId>,
}

/// A partial update: `None` leaves a field as it is; for nullable fields `Some(None)` clears it.
#[derive(Debug, Clone, Default)]
pub struct TransactionPatch {
    /// New amount.
    pub amount: Option<Money>,
    /// New date.
    pub date: Option<NaiveDate>,
    /// New description.
    pub description: Option<String>,
    /// New category.
    pub category: Option<Category>,
    /// New type.
    pub kind: Option<TransactionType>,
    /// New confidence (`Some(None)` clears it, e.g. when a person sets the category).
    pub confidence_score: Option<Option<Confidence>>,
    /// Who decided the new category.
    pub category_source: Option<CategorySource>,
}

/// Exact income and expense totals of a period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    /// Sum of INCOME amounts.
    pub income: Money,
    /// Sum of EXPENSE amounts.
    pub expense: Money,
}

macro_rules! cols {
    () => {
        "id, user_id, amount, date, description, category, type, source, confidence_score, category_source, \
         connection_id, created_at, updated_at, deleted_at, pending"
    };
}

/// Insert a transaction for `user`. A `connection_id` that is not one of the user's connections is
/// [`DbError::NotFound`].
#[tracing::instrument(skip_all, fields(user.id = %user))]
pub async fn create(mut conn: Conn<'_>, user: UserId, new: &NewTransaction) -> Result<Transaction> {
    if let Some(connection) = new.connection_id {
        // The foreign key only proves the connection exists; tenancy needs it to be this user's.
        if crate::connections::get(conn.reborrow(), user, connection).await?.is_none() {
            return Err(DbError::NotFound);
        }
    }
    let now = Timestamp::now();
    let row = Transaction {
        id: TransactionId::new(),
        user_id: user,
        amount: new.amount,
        date: new.date,
        description: new.description.clone(),
        category: new.category.clone(),
        kind: new.kind,
        source: new.source,
        confidence_score: new.confidence_score,
        category_source: new.category_source,
        connection_id: new.connection_id,
        created_at: now,
        updated_at: now,
        deleted_at: None,
        pending: false,
    };
    on_conn!(conn, c => {
        sqlx::query(concat!("insert into transactions (", cols!(), ") values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"))
            .bind(row.id)
            .bind(row.user_id)
            .bind(row.amount)
            .bind(row.date)
            .bind(&row.description)
            .bind(&row.category)
            .bind(row.kind)
            .bind(row.source)
            .bind(row.confidence_score)
            .bind(row.category_source)
            .bind(row.connection_id)
            .bind(row.created_at)
            .bind(row.updated_at)
            .bind(row.deleted_at)
            .bind(row.pending)
            .execute(&mut *c)
            .await?;
    });
    Ok(row)
}

/// One of the user's live (not soft-deleted) transactions.
#[tracing::instrument(skip_all, fields(user.id = %user))]
pub async fn get(conn: Conn<'_>, user: UserId, id: TransactionId) -> Result<Option<Transaction>> {
    const SQL: &str =
        concat!("select ", cols!(), " from transactions where id = $1 and user_id = $2 and deleted_at is null");
    Ok(on_conn!(conn, c => sqlx::query_as(SQL).bind(id).bind(user).fetch_optional(&mut *c).await?))
}

/// One of the user's transactions, soft-deleted or not.
#[tracing::instrument(skip_all, fields(user.id = %user))]
pub async fn get_including_deleted(conn: Conn<'_>, user: UserId, id: TransactionId) -> Result<Option<Transaction>> {
    const SQL: &str = concat!("select ", cols!(), " from transactions where id = $1 and user_id = $2");
    Ok(on_conn!(conn, c => sqlx::query_as(SQL).bind(id).bind(user).fetch_optional(&mut *c).await?))
}

/// The seed's query 1: live transactions in `from..=to`, newest first (index `idx_transactions_user_date`).
#[tracing::instrument(skip_all, fields(user.id = %user))]
pub async fn list_by_date_range(
    conn: Conn<'_>,
    user: UserId,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<Transaction>> {
    const SQL: &str = concat!(
        "select ",
        cols!(),
        " from transactions where user_id = $1 and date between $2 and $3 \
         and deleted_at is null order by date desc, id desc"
    );
    Ok(on_conn!(conn, c => sqlx::query_as(SQL).bind(user).bind(from).bind(to).fetch_all(&mut *c).await?))
}

/// The seed's query 2: live transactions of one category (index `idx_transactions_user_category`).
#[tracing::instrument(skip_all, fields(user.id = %user))]
pub async fn list_by_category(conn: Conn<'_>, user: UserId, category: &Category) -> Result<Vec<Transaction>> {
    const SQL: &str = concat!(
        "select ",
        cols!(),
        " from transactions where user_id = $1 and category = $2 \
         and deleted_at is null order by date desc, id desc"
    );
    Ok(on_conn!(conn, c => sqlx::query_as(SQL).bind(user).bind(category).fetch_all(&mut *c).await?))
}

/// Apply a patch to a live transaction in one statement (no read-modify-write race).
#[tracing::instrument(skip_all, fields(user.id = %user))]
pub async fn update(
    conn: Conn<'_>,
    user: UserId,
    id: TransactionId,
    patch: &TransactionPatch,
) -> Result<Option<Transaction>> {
    const SQL: &str = concat!(
        "update transactions set \
           amount = coalesce($3, amount), \
           date = coalesce($4, date), \
           description = coalesce($5, description), \
           category = coalesce($6, category), \
           type = coalesce($7, type), \
           confidence_score = case when $8 then $9 else confidence_score end, \
           category_source = coalesce($11, category_source), \
           updated_at = $10 \
         where id = $1 and user_id = $2 and deleted_at is null returning ",
        cols!()
    );
    let (set_confidence, confidence) = match patch.confidence_score {
        Some(c) => (true, c),
        None => (false, None),
    };
    Ok(on_conn!(conn, c => sqlx::query_as(SQL)
        .bind(id)
        .bind(user)
        .bind(patch.amount)
        .bind(patch.date)
        .bind(patch.description.as_deref())
        .bind(patch.category.as_ref())
        .bind(patch.kind)
        .bind(set_confidence)
        .bind(confidence)
        .bind(Timestamp::now())
        .bind(patch.category_source)
        .fetch_optional(&mut *c)
        .await?))
}

/// Soft-delete a live transaction. False when there is no such live transaction.
#[tracing::instrument(skip_all, fields(user.id = %user))]
pub async fn soft_delete(conn: Conn<'_>, user: UserId, id: TransactionId) -> Result<bool> {
    let now = Timestamp::now();
    let n = on_conn!(conn, c => sqlx::query(
        "update transactions set deleted_at = $3, updated_at = $3 where id = $1 and user_id = $2 and deleted_at is null")
        .bind(id).bind(user).bind(now).execute(&mut *c).await?.rows_affected());
    Ok(n > 0)
}

/// Bring back a soft-deleted transaction. False when there is no such deleted transaction.
#[tracing::instrument(skip_all, fields(user.id = %user))]
pub async fn restore(conn: Conn<'_>, user: UserId, id: TransactionId) -> Result<bool> {
    let n = on_conn!(conn, c => sqlx::query(
        "update transactions set deleted_at = null, updated_at = $3 where id = $1 and user_id = $2 and deleted_at is not null")
        .bind(id).bind(user).bind(Timestamp::now()).execute(&mut *c).await?.rows_affected());
    Ok(n > 0)
}

/// Exact income and expense totals of live transactions in `from..=to`, summed by the database.
#[tracing::instrument(skip_all, fields(user.id = %user))]
pub async fn totals(conn: Conn<'_>, user: UserId, from: NaiveDate, to: NaiveDate) -> Result<Totals> {
    const SQL: &str = "select type, sum(amount) from transactions \
        where user_id = $1 and date between $2 and $3 and deleted_at is null group by type";
    let rows: Vec<(TransactionType, Money)> =
        on_conn!(conn, c => sqlx::query_as(SQL).bind(user).bind(from).bind(to).fetch_all(&mut *c).await?);
    let mut totals = Totals { income: Money::ZERO, expense: Money::ZERO };
    for (kind, sum) in rows {
        match kind {
            TransactionType::Income => totals.income = sum,
            TransactionType::Expense => totals.expense = sum,
        }
    }
    Ok(totals)
}

/// Which rows to return by deletion state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Deleted {
    /// Live rows only (the default everywhere).
    #[default]
    Exclude,
    /// Soft-deleted rows only (the audit view).
    Only,
    /// Both.
    Include,
}

/// List filters; every field narrows the result, empty means "no constraint".
#[derive(Debug, Clone, Default)]
pub struct TransactionFilter {
    /// On or after this date.
    pub from: Option<NaiveDate>,
    /// On or before this date.
    pub to: Option<NaiveDate>,
    /// Any of these categories.
    pub categories: Vec<Category>,
    /// INCOME or EXPENSE.
    pub kind: Option<TransactionType>,
    /// Where it came from.
    pub source: Option<Source>,
    /// Amount at least.
    pub min_amount: Option<Money>,
    /// Amount at most.
    pub max_amount: Option<Money>,
    /// Case-insensitive substring of the description (ASCII case-folding on SQLite, full Unicode on
    /// PostgreSQL).
    pub text: Option<String>,
    /// From this bank connection.
    pub connection_id: Option<ConnectionId>,
    /// Only transactions waiting for a person's decision (category `Uncategorized`).
    pub needs_review: bool,
    /// Deletion state.
    pub deleted: Deleted,
}

/// Sort order of a list; ties are broken by id so the order is total and pages never overlap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sort {
    /// Newest first (the default).
    #[default]
    DateDesc,
    /// Oldest first.
    DateAsc,
    /// Largest first.
    AmountDesc,
    /// Smallest first.
    AmountAsc,
}

/// Where a page starts: the sort value and id of the previous page's last row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum After {
    /// For date sorts.
    Date(NaiveDate, TransactionId),
    /// For amount sorts.
    Amount(Money, TransactionId),
}

impl After {
    /// The position just after `t` in `sort` order.
    pub fn of(t: &Transaction, sort: Sort) -> After {
        match sort {
            Sort::DateDesc | Sort::DateAsc => After::Date(t.date, t.id),
            Sort::AmountDesc | Sort::AmountAsc => After::Amount(t.amount, t.id),
        }
    }
}

/// Escape `%`, `_` and `\` for a LIKE pattern with `escape '\'`.
fn like_pattern(text: &str) -> String {
    let mut p = String::with_capacity(text.len() + 2);
    p.push('%');
    for ch in text.chars() {
        if matches!(ch, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(ch);
    }
    p.push('%');
    p
}

/// One page of the user's transactions: filtered, sorted, starting after `after`, at most `limit` rows.
/// Keyset pagination: each page is an index range scan (`idx_transactions_user_live_date` /
/// `_amount`), as fast for page 1,000 as for page 1, and stable while rows are inserted.
#[tracing::instrument(skip_all, fields(user.id = %user))]
pub async fn list(
    conn: Conn<'_>,
    user: UserId,
    filter: &TransactionFilter,
    sort: Sort,
    after: Option<After>,
    limit: u32,
) -> Result<Vec<Transaction>> {
    let like = match conn.engine() {
        crate::Engine::Postgres => " ilike ",
        crate::Engine::Sqlite => " like ",
    };
    let pattern = filter.text.as_deref().map(like_pattern);
    Ok(on_conn!(conn, c => {
        let mut qb = sqlx::QueryBuilder::new(concat!("select ", cols!(), " from transactions where user_id = "));
        qb.push_bind(user);
        qb.push(match filter.deleted {
            Deleted::Exclude => " and deleted_at is null",
            Deleted::Only => " and deleted_at is not null",
            Deleted::Include => "",
        });
        if let Some(from) = filter.from {
            qb.push(" and date >= ").push_bind(from);
        }
        if let Some(to) = filter.to {
            qb.push(" and date <= ").push_bind(to);
        }
        if !filter.categories.is_empty() {
            qb.push(" and category in (");
            let mut sep = qb.separated(", ");
            for category in &filter.categories {
                sep.push_bind(category);
            }
            qb.push(")");
        }
        if let Some(kind) = filter.kind {
            qb.push(" and type = ").push_bind(kind);
        }
        if let Some(source) = filter.source {
            qb.push(" and source = ").push_bind(source);
        }
        if let Some(min) = filter.min_amount {
            qb.push(" and amount >= ").push_bind(min);
        }
        if let Some(max) = filter.max_amount {
            qb.push(" and amount <= ").push_bind(max);
        }
        if let Some(pattern) = &pattern {
            qb.push(" and description").push(like).push_bind(pattern).push(" escape '\\'");
        }
        if let Some(connection) = filter.connection_id {
            qb.push(" and connection_id = ").push_bind(connection);
        }
        if filter.needs_review {
            qb.push(" and category = ").push_bind(Category::UNCATEGORIZED);
        }
        let (column, desc) = match sort {
            Sort::DateDesc => ("date", true),
            Sort::DateAsc => ("date", false),
            Sort::AmountDesc => ("amount", true),
            Sort::AmountAsc => ("amount", false),
        };
        let op = if desc { " < (" } else { " > (" };
        match after {
            Some(After::Date(d, id)) => {
                qb.push(" and (date, id)").push(op).push_bind(d).push(", ").push_bind(id).push(")");
            }
            Some(After::Amount(a, id)) => {
                qb.push(" and (amount, id)").push(op).push_bind(a).push(", ").push_bind(id).push(")");
            }
            None => {}
        }
        let dir = if desc { " desc" } else { " asc" };
        qb.push(" order by ").push(column).push(dir).push(", id").push(dir);
        qb.push(" limit ").push_bind(i64::from(limit));
        qb.build_query_as::<Transaction>().fetch_all(&mut *c).await?
    }))
}

/// Insert many transactions for `user` in multi-row statements (500 rows each), inside the caller's
/// transaction. Every `connection_id` must be one of the user's connections.
#[tracing::instrument(skip_all, fields(user.id = %user, rows = rows.len()))]
pub async fn insert_many(mut conn: Conn<'_>, user: UserId, rows: &[NewTransaction]) -> Result<Vec<TransactionId>> {
    let mut connections: Vec<ConnectionId> = rows.iter().filter_map(|r| r.connection_id).collect();
    connections.sort();
    connections.dedup();
    for connection in connections {
        if crate::connections::get(conn.reborrow(), user, connection).await?.is_none() {
            return Err(DbError::NotFound);
        }
    }
    let now = Timestamp::now();
    let mut ids = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(500) {
        let chunk_ids: Vec<TransactionId> = chunk.iter().map(|_| TransactionId::new()).collect();
        on_conn!(conn.reborrow(), c => {
            let mut qb = sqlx::QueryBuilder::new(concat!("insert into transactions (", cols!(), ") "));
            qb.push_values(chunk.iter().zip(&chunk_ids), |mut b, (r, id)| {
                b.push_bind(*id)
                    .push_bind(user)
                    .push_bind(r.amount)
                    .push_bind(r.date)
                    .push_bind(&r.description)
                    .push_bind(&r.category)
                    .push_bind(r.kind)
                    .push_bind(r.source)
                    .push_bind(r.confidence_score)
                    .push_bind(r.category_source)
                    .push_bind(r.connection_id)
                    .push_bind(now)
                    .push_bind(now)
                    .push_bind(None::<Timestamp>)
                    .push_bind(false);
            });
            qb.build().execute(&mut *c).await?;
        });
        ids.extend(chunk_ids);
    }
    Ok(ids)
}

/// How many of `ids` are the user's transactions in the given deletion state (for all-or-nothing bulk
/// operations: the caller compares this with the number of ids).
pub async fn count_owned(conn: Conn<'_>, user: UserId, ids: &[TransactionId], deleted: Deleted) -> Result<i64> {
    if ids.is_empty() {
        return Ok(0);
    }
    Ok(on_conn!(conn, c => {
        let mut qb = sqlx::QueryBuilder::new("select count(*) from transactions where user_id = ");
        qb.push_bind(user);
        qb.push(match deleted {
            Deleted::Exclude => " and deleted_at is null",
            Deleted::Only => " and deleted_at is not null",
            Deleted::Include => "",
        });
        qb.push(" and id in (");
        let mut sep = qb.separated(", ");
        for id in ids {
            sep.push_bind(*id);
        }
        qb.push(")");
        qb.build_query_scalar::<i64>().fetch_one(&mut *c).await?
    }))
}

/// What a bulk operation does to each selected transaction.
#[derive(Debug, Clone)]
pub enum BulkChange {
    /// Set the category of live rows (a person's decision: the model confidence is cleared).
    SetCategory(Category),
    /// Soft-delete live rows.
    SoftDelete,
    /// Restore soft-deleted rows.
    Restore,
}

/// Apply a change to the user's transactions among `ids`; returns the number changed.
#[tracing::instrument(skip_all, fields(user.id = %user, ids = ids.len()))]
pub async fn bulk_change(conn: Conn<'_>, user: UserId, ids: &[TransactionId], change: &BulkChange) -> Result<u64> {
    if ids.is_empty() {
        return Ok(0);
    }
    let now = Timestamp::now();
    Ok(on_conn!(conn, c => {
        let mut qb = sqlx::QueryBuilder::new("update transactions set ");
        match change {
            BulkChange::SetCategory(category) => {
                qb.push("category = ")
                    .push_bind(category)
                    .push(", confidence_score = null, category_source = 'USER', updated_at = ")
                    .push_bind(now);
                qb.push(" where deleted_at is null");
            }
            BulkChange::SoftDelete => {
                qb.push("deleted_at = ").push_bind(now).push(", updated_at = ").push_bind(now);
                qb.push(" where deleted_at is null");
            }
            BulkChange::Restore => {
                qb.push("deleted_at = null, updated_at = ").push_bind(now);
                qb.push(" where deleted_at is not null");
            }
        }
        qb.push(" and user_id = ").push_bind(user).push(" and id in (");
        let mut sep = qb.separated(", ");
        for id in ids {
            sep.push_bind(*id);
        }
        qb.push(")");
        qb.build().execute(&mut *c).await?.rows_affected()
    }))
}

/// Mark a transaction soft-deleted at a given time (loading an export keeps when it was deleted).
pub async fn mark_deleted(conn: Conn<'_>, user: UserId, id: TransactionId, at: Timestamp) -> Result<bool> {
    let n = on_conn!(conn, c => sqlx::query(
        "update transactions set deleted_at = $3, updated_at = $4 where id = $1 and user_id = $2 and deleted_at is null")
        .bind(id).bind(user).bind(at).bind(Timestamp::now()).execute(&mut *c).await?.rows_affected());
    Ok(n == 1)
}

/// The ledger's stamp: how many transactions the user has (live or soft-deleted) and when the latest
/// was written. Every write sets `updated_at`, and removals change the count, so a cache of something
/// derived from the ledger is current while the stamp is the same. One index-only read
/// (`idx_transactions_user_updated`).
pub async fn ledger_stamp(conn: Conn<'_>, user: UserId) -> Result<(i64, Option<Timestamp>)> {
    const SQL: &str = "select count(*), max(updated_at) from transactions where user_id = $1";
    Ok(on_conn!(conn, c => sqlx::query_as(SQL).bind(user).fetch_one(&mut *c).await?))
}

/// The user's categories in use on live transactions, with counts.
#[tracing::instrument(skip_all, fields(user.id = %user))]
pub async fn category_counts(conn: Conn<'_>, user: UserId) -> Result<Vec<(Category, i64)>> {
    const SQL: &str = "select category, count(*) from transactions where user_id = $1 and deleted_at is null \
                       group by category order by category";
    Ok(on_conn!(conn, c => sqlx::query_as(SQL).bind(user).fetch_all(&mut *c).await?))
}

/// Rename a category on all of the user's transactions (soft-deleted ones too, so a restore brings back
/// the new name); returns the number of rows changed.
pub async fn rename_category(conn: Conn<'_>, user: UserId, from: &Category, to: &Category) -> Result<u64> {
    const SQL: &str = "update transactions set category = $3, updated_at = $4 where user_id = $1 and category = $2";
    Ok(on_conn!(conn, c => sqlx::query(SQL).bind(user).bind(from).bind(to).bind(Timestamp::now())
        .execute(&mut *c).await?.rows_affected()))
}

/// How a summary groups transactions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    /// By category.
    Category,
    /// By calendar month (`YYYY-MM`).
    Month,
    /// By ISO week, keyed by its Monday (`YYYY-MM-DD`).
    Week,
    /// By INCOME / EXPENSE.
    Type,
}

/// One group of a summary, for one direction.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SummaryRow {
    /// The group's key.
    pub key: String,
    /// INCOME or EXPENSE.
    #[sqlx(rename = "type")]
    pub kind: TransactionType,
    /// Exact sum of amounts.
    pub total: Money,
    /// Number of transactions.
    pub count: i64,
}

/// Exact sums and counts of the user's live transactions in `from..=to`, grouped, computed by the
/// database. Grouping by month or week is the one place where the SQL differs by dialect.
#[tracing::instrument(skip_all, fields(user.id = %user))]
pub async fn summary(
    conn: Conn<'_>,
    user: UserId,
    from: NaiveDate,
    to: NaiveDate,
    group_by: GroupBy,
) -> Result<Vec<SummaryRow>> {
    let key = match (group_by, conn.engine()) {
        (GroupBy::Category, _) => "category",
        (GroupBy::Type, _) => "type",
        (GroupBy::Month, crate::Engine::Sqlite) => "substr(date, 1, 7)",
        (GroupBy::Month, crate::Engine::Postgres) => "to_char(date, 'YYYY-MM')",
        (GroupBy::Week, crate::Engine::Sqlite) => "date(date, 'weekday 0', '-6 days')",
        (GroupBy::Week, crate::Engine::Postgres) => "to_char(date_trunc('week', date), 'YYYY-MM-DD')",
    };
    // The covering index answers the query without touching the table. SQLite is told so: with
    // statistics of a one-user database (user_id not selective) its planner prefers walking
    // idx_transactions_user_category to skip a sort, which reads every row of the user, 5x slower.
    let table = match conn.engine() {
        crate::Engine::Sqlite => "transactions indexed by idx_transactions_user_live_date",
        crate::Engine::Postgres => "transactions",
    };
    let sql = format!(
        "select {key} as key, type, sum(amount) as total, count(*) as count from {table} \
         where user_id = $1 and deleted_at is null and date >= $2 and date <= $3 \
         group by 1, 2 order by 1, 2"
    );
    Ok(
        on_conn!(conn, c => sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(user).bind(from).bind(to).fetch_all(&mut *c).await?),
    )
}

/// A transaction whose category a person decided (directly, by a rule or by a remembered correction):
/// what a user's model learns from.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Labelled {
    /// Description.
    pub description: String,
    /// Amount.
    pub amount: Money,
    /// Type.
    #[sqlx(rename = "type")]
    pub kind: TransactionType,
    /// Date.
    pub date: NaiveDate,
    /// The category.
    pub category: Category,
}

const LABELLED: &str = "user_id = $1 and deleted_at is null and category <> 'Uncategorized' \
    and category_source in ('USER', 'RULE', 'MEMORY')";

/// The user's most recent `limit` labelled transactions (see [`Labelled`]).
#[tracing::instrument(skip_all, fields(user.id = %user))]
pub async fn labelled(conn: Conn<'_>, user: UserId, limit: i64) -> Result<Vec<Labelled>> {
    let sql = format!(
        "select description, amount, type, date, category from transactions where {LABELLED} \
         order by date desc, id desc limit $2"
    );
    Ok(on_conn!(conn, c => sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(user).bind(limit).fetch_all(&mut *c).await?))
}

/// How many labelled transactions the user has (the seed's rule: a user model needs more than 50).
#[tracing::instrument(skip_all, fields(user.id = %user))]
pub async fn count_labelled(conn: Conn<'_>, user: UserId) -> Result<i64> {
    let sql = format!("select count(*) from transactions where {LABELLED}");
    Ok(on_conn!(conn, c => sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).bind(user).fetch_one(&mut *c).await?))
}

/// Whether the user has more than `n` labelled transactions, reading at most `n + 1` rows (cheap
/// enough to ask after every labelling action).
pub async fn has_more_labelled_than(conn: Conn<'_>, user: UserId, n: i64) -> Result<bool> {
    let sql = format!("select count(*) from (select 1 from transactions where {LABELLED} limit $2) as labelled");
    let count: i64 = on_conn!(conn, c => sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).bind(user).bind(n + 1).fetch_one(&mut *c).await?);
    Ok(count > n)
}

/// Live transactions a model may (re)categorize: the given ones, or without ids every uncategorized
/// one; never those whose category a person set.
#[tracing::instrument(skip_all, fields(user.id = %user))]
pub async fn categorizable(
    conn: Conn<'_>,
    user: UserId,
    ids: Option<&[TransactionId]>,
    limit: i64,
) -> Result<Vec<Transaction>> {
    Ok(on_conn!(conn, c => {
        let mut qb = sqlx::QueryBuilder::new(concat!(
            "select ", cols!(), " from transactions where deleted_at is null and category_source <> 'USER' and user_id = "
        ));
        qb.push_bind(user);
        match ids {
            Some(ids) => {
                qb.push(" and id in (");
                let mut sep = qb.separated(", ");
                for id in ids {
                    sep.push_bind(*id);
                }
                qb.push(")");
            }
            None => {
                qb.push(" and category = ").push_bind(Category::UNCATEGORIZED);
            }
        }
        qb.push(" order by date desc, id desc limit ").push_bind(limit);
        qb.build_query_as::<Transaction>().fetch_all(&mut *c).await?
    }))
}

/// A category decided by the categorizer for one transaction.
#[derive(Debug, Clone)]
pub struct CategoryChange {
    /// The transaction.
    pub id: TransactionId,
    /// Its category.
    pub category: Category,
    /// The model's confidence (none for rules and memory).
    pub confidence_score: Option<Confidence>,
    /// Who decided.
    pub category_source: CategorySource,
}

/// Write categorizer decisions. Rows whose category a person set in the meantime are left alone.
#[tracing::instrument(skip_all, fields(user.id = %user, rows = changes.len()))]
pub async fn set_categories(mut conn: Conn<'_>, user: UserId, changes: &[CategoryChange]) -> Result<u64> {
    const SQL: &str = "update transactions set category = $3, confidence_score = $4, category_source = $5, \
        updated_at = $6 where id = $1 and user_id = $2 and deleted_at is null and category_source <> 'USER'";
    let now = Timestamp::now();
    let mut n = 0;
    for ch in changes {
        n += on_conn!(conn.reborrow(), c => sqlx::query(SQL)
            .bind(ch.id).bind(user).bind(&ch.category).bind(ch.confidence_score).bind(ch.category_source).bind(now)
            .execute(&mut *c).await?.rows_affected());
    }
    Ok(n)
}

/// The user's live transactions among `ids`.
pub async fn list_by_ids(conn: Conn<'_>, user: UserId, ids: &[TransactionId]) -> Result<Vec<Transaction>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(on_conn!(conn, c => {
        let mut qb = sqlx::QueryBuilder::new(concat!(
            "select ", cols!(), " from transactions where deleted_at is null and user_id = "
        ));
        qb.push_bind(user).push(" and id in (");
        let mut sep = qb.separated(", ");
        for id in ids {
            sep.push_bind(*id);
        }
        qb.push(")");
        qb.build_query_as::<Transaction>().fetch_all(&mut *c).await?
    }))
}

/// How many of the user's live transactions have a category (not `Uncategorized`) chosen by `source`.
pub async fn count_categorized_by(conn: Conn<'_>, user: UserId, source: CategorySource) -> Result<i64> {
    const SQL: &str = "select count(*) from transactions where user_id = $1 and deleted_at is null \
        and category_source = $2 and category <> 'Uncategorized'";
    Ok(on_conn!(conn, c => sqlx::query_scalar(SQL).bind(user).bind(source).fetch_one(&mut *c).await?))
}

/// One (month, category, type) total.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct MonthlyTotal {
    /// `YYYY-MM`.
    pub month: String,
    /// Category.
    pub category: Category,
    /// INCOME or EXPENSE.
    #[sqlx(rename = "type")]
    pub kind: TransactionType,
    /// Exact sum.
    pub total: Money,
}

/// The user's live transactions in `from..=to` summed by month, category and type (the series the
/// forecasts are made from), over the covering date index.
#[tracing::instrument(skip_all, fields(user.id = %user))]
pub async fn monthly_totals(conn: Conn<'_>, user: UserId, from: NaiveDate, to: NaiveDate) -> Result<Vec<MonthlyTotal>> {
    let (month, table) = match conn.engine() {
        crate::Engine::Sqlite => ("substr(date, 1, 7)", "transactions indexed by idx_transactions_user_live_date"),
        crate::Engine::Postgres => ("to_char(date, 'YYYY-MM')", "transactions"),
    };
    let sql = format!(
        "select {month} as month, category, type, sum(amount) as total from {table} \
         where user_id = $1 and deleted_at is null and date >= $2 and date <= $3 group by 1, 2, 3 order by 1, 2, 3"
    );
    Ok(
        on_conn!(conn, c => sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(user).bind(from).bind(to).fetch_all(&mut *c).await?),
    )
}

/// What the recurring and anomaly detectors read of a transaction.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Observed {
    /// Id.
    pub id: TransactionId,
    /// Date.
    pub date: NaiveDate,
    /// Amount.
    pub amount: Money,
    /// Type.
    #[sqlx(rename = "type")]
    pub kind: TransactionType,
    /// Description.
    pub description: String,
    /// Category.
    pub category: Category,
}

/// The user's live transactions dated from `from` on, oldest first.
#[tracing::instrument(skip_all, fields(user.id = %user))]
pub async fn observed_since(conn: Conn<'_>, user: UserId, from: NaiveDate) -> Result<Vec<Observed>> {
    const SQL: &str = "select id, date, amount, type, description, category from transactions \
        where user_id = $1 and deleted_at is null and date >= $2 order by date, id";
    Ok(on_conn!(conn, c => sqlx::query_as(SQL).bind(user).bind(from).fetch_all(&mut *c).await?))
}
