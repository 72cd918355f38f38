//! The `transactions` table.
//!
//! Soft delete: `deleted_at` set means the row is gone from every list, total, budget and goal but kept
//! for audit; `get` and the lists here never return such rows, `get_including_deleted` does.

use chrono::NaiveDate;
use magpie_domain::{
    Category, Confidence, ConnectionId, Money, Source, Timestamp, TransactionId, TransactionType, UserId,
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
    /// The bank connection it came from, if any.
    pub connection_id: Option<ConnectionId>,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
    /// Soft-delete time.
    pub deleted_at: Option<Timestamp>,
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
        "id, user_id, amount, date, description, category, type, source, confidence_score, connection_id, \
         created_at, updated_at, deleted_at"
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
        connection_id: new.connection_id,
        created_at: now,
        updated_at: now,
        deleted_at: None,
    };
    on_conn!(conn, c => {
        sqlx::query(concat!("insert into transactions (", cols!(), ") values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"))
            .bind(row.id)
            .bind(row.user_id)
            .bind(row.amount)
            .bind(row.date)
            .bind(&row.description)
            .bind(&row.category)
            .bind(row.kind)
            .bind(row.source)
            .bind(row.confidence_score)
            .bind(row.connection_id)
            .bind(row.created_at)
            .bind(row.updated_at)
            .bind(row.deleted_at)
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
