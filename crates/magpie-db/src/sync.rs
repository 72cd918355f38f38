//! `sync_transactions`: for every bank-synced transaction, the provider's id and what the provider
//! last said about it. A sync loads these for the connection, plans with `magpie_sync::reconcile`, and
//! applies the plan here, inside the caller's transaction, together with the connection's new state.

use chrono::NaiveDate;
use magpie_domain::{
    Category, CategorySource, Confidence, ConnectionId, Money, Source, Timestamp, TransactionId, TransactionType,
    UserId,
};

use crate::{Conn, Result, on_conn};

/// A synced row: the provider's last word on it and the transaction's current state.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SyncedRow {
    /// The transaction.
    pub transaction_id: TransactionId,
    /// What the provider said when it was last synced.
    #[sqlx(flatten)]
    pub provider: ProviderRow,
    /// The transaction's description now (differs when the person edited it).
    pub current_description: String,
    /// Who decided the transaction's category.
    pub category_source: CategorySource,
}

/// The provider's identity and last word on a row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ProviderRow {
    /// Provider account id (at most 100 characters).
    pub account_id: String,
    /// Provider transaction id (at most 200 characters).
    pub provider_txn_id: String,
    /// Pending.
    pub pending: bool,
    /// Date.
    pub date: NaiveDate,
    /// Signed amount.
    pub amount: Money,
    /// Description.
    pub description: String,
    /// Our own hash, not the bank's id.
    pub weak_id: bool,
}

/// A new synced transaction.
#[derive(Debug, Clone)]
pub struct NewSynced {
    /// The provider's view.
    pub provider: ProviderRow,
    /// Category.
    pub category: Category,
    /// Who chose it.
    pub category_source: CategorySource,
    /// With what confidence.
    pub confidence_score: Option<Confidence>,
}

/// A change to a synced transaction.
#[derive(Debug, Clone)]
pub struct SyncedUpdate {
    /// The transaction.
    pub transaction_id: TransactionId,
    /// Its previous provider key (it changes when a pending row posts under a new id).
    pub old_account_id: String,
    /// Previous provider transaction id.
    pub old_provider_txn_id: String,
    /// The provider's view now.
    pub provider: ProviderRow,
    /// New description, or `None` to keep the person's.
    pub description: Option<String>,
    /// New category, or `None` to keep the current one.
    pub category: Option<(Category, CategorySource, Option<Confidence>)>,
}

/// Every synced row of a connection.
#[tracing::instrument(skip_all)]
pub async fn rows(conn: Conn<'_>, user: UserId, connection: ConnectionId) -> Result<Vec<SyncedRow>> {
    const SQL: &str = "select s.transaction_id, s.account_id, s.provider_txn_id, s.pending, s.date, s.amount, \
        s.description, s.weak_id, t.description as current_description, t.category_source \
        from sync_transactions s join transactions t on t.id = s.transaction_id \
        where s.connection_id = $1 and t.user_id = $2";
    Ok(on_conn!(conn, c => sqlx::query_as(SQL).bind(connection).bind(user).fetch_all(&mut *c).await?))
}

fn split(amount: Money) -> (Money, TransactionType) {
    if amount.is_negative() { (amount.abs(), TransactionType::Expense) } else { (amount, TransactionType::Income) }
}

/// Insert new synced transactions (source API, the connection's) and their provider rows, 400 at a
/// time. Returns the new transaction ids in order.
#[tracing::instrument(skip_all, fields(rows = rows.len()))]
pub async fn insert(
    mut conn: Conn<'_>,
    user: UserId,
    connection: ConnectionId,
    rows: &[NewSynced],
) -> Result<Vec<TransactionId>> {
    let now = Timestamp::now();
    let mut ids = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(400) {
        let chunk_ids: Vec<TransactionId> = chunk.iter().map(|_| TransactionId::new()).collect();
        on_conn!(conn.reborrow(), c => {
            let mut qb = sqlx::QueryBuilder::new(
                "insert into transactions (id, user_id, amount, date, description, category, type, source, \
                 confidence_score, category_source, connection_id, created_at, updated_at, pending) ");
            qb.push_values(chunk.iter().zip(&chunk_ids), |mut b, (r, id)| {
                let (amount, kind) = split(r.provider.amount);
                b.push_bind(*id).push_bind(user).push_bind(amount).push_bind(r.provider.date)
                    .push_bind(&r.provider.description).push_bind(&r.category).push_bind(kind).push_bind(Source::Api)
                    .push_bind(r.confidence_score).push_bind(r.category_source).push_bind(connection)
                    .push_bind(now).push_bind(now).push_bind(r.provider.pending);
            });
            qb.build().execute(&mut *c).await?;
            let mut qb = sqlx::QueryBuilder::new(
                "insert into sync_transactions (connection_id, account_id, provider_txn_id, transaction_id, pending, \
                 date, amount, description, weak_id, updated_at) ");
            qb.push_values(chunk.iter().zip(&chunk_ids), |mut b, (r, id)| {
                let p = &r.provider;
                b.push_bind(connection).push_bind(&p.account_id).push_bind(&p.provider_txn_id).push_bind(*id)
                    .push_bind(p.pending).push_bind(p.date).push_bind(p.amount).push_bind(&p.description)
                    .push_bind(p.weak_id).push_bind(now);
            });
            qb.build().execute(&mut *c).await?;
        });
        ids.extend(chunk_ids);
    }
    Ok(ids)
}

/// Apply a provider change to a synced transaction. The person's description and category stay unless
/// the update carries new ones; a soft-deleted transaction stays deleted.
#[tracing::instrument(skip_all)]
pub async fn update(mut conn: Conn<'_>, user: UserId, connection: ConnectionId, u: &SyncedUpdate) -> Result<()> {
    let now = Timestamp::now();
    let (amount, kind) = split(u.provider.amount);
    let (category, source, confidence) = match &u.category {
        Some((c, s, conf)) => (Some(c), Some(*s), *conf),
        None => (None, None, None),
    };
    let keep_category = u.category.is_none();
    on_conn!(conn.reborrow(), c => {
        sqlx::query(
            "update transactions set amount = $3, type = $4, date = $5, pending = $6, \
             description = coalesce($7, description), category = coalesce($8, category), \
             category_source = coalesce($9, category_source), \
             confidence_score = case when $10 then confidence_score else $11 end, updated_at = $12 \
             where id = $1 and user_id = $2")
            .bind(u.transaction_id).bind(user).bind(amount).bind(kind).bind(u.provider.date).bind(u.provider.pending)
            .bind(u.description.as_deref()).bind(category).bind(source).bind(keep_category).bind(confidence).bind(now)
            .execute(&mut *c).await?;
        sqlx::query(
            "update sync_transactions set account_id = $4, provider_txn_id = $5, pending = $6, date = $7, amount = $8, \
             description = $9, weak_id = $10, updated_at = $11 \
             where connection_id = $1 and account_id = $2 and provider_txn_id = $3")
            .bind(connection).bind(&u.old_account_id).bind(&u.old_provider_txn_id)
            .bind(&u.provider.account_id).bind(&u.provider.provider_txn_id).bind(u.provider.pending)
            .bind(u.provider.date).bind(u.provider.amount).bind(&u.provider.description).bind(u.provider.weak_id).bind(now)
            .execute(&mut *c).await?;
    });
    Ok(())
}

/// The provider no longer has the transaction: soft-delete it (kept for audit) and forget its key.
#[tracing::instrument(skip_all)]
pub async fn remove(
    mut conn: Conn<'_>,
    user: UserId,
    connection: ConnectionId,
    transaction: TransactionId,
) -> Result<()> {
    let now = Timestamp::now();
    on_conn!(conn.reborrow(), c => {
        sqlx::query("update transactions set deleted_at = $3, updated_at = $3 where id = $1 and user_id = $2 and deleted_at is null")
            .bind(transaction).bind(user).bind(now).execute(&mut *c).await?;
        sqlx::query("delete from sync_transactions where connection_id = $1 and transaction_id = $2")
            .bind(connection).bind(transaction).execute(&mut *c).await?;
    });
    Ok(())
}

/// How many transactions a connection has synced that are live (for reports and tests).
pub async fn count_live(conn: Conn<'_>, connection: ConnectionId) -> Result<i64> {
    Ok(on_conn!(conn, c => sqlx::query_scalar(
        "select count(*) from sync_transactions s join transactions t on t.id = s.transaction_id \
         where s.connection_id = $1 and t.deleted_at is null")
        .bind(connection).fetch_one(&mut *c).await?))
}
