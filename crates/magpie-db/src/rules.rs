//! `categorization_rules`: a person's own rules, applied before any model in priority order.

use magpie_domain::{Category, Money, RuleId, RuleMatch, Timestamp, TransactionType, UserId};

use crate::{Conn, Result, on_conn};

/// A row of `categorization_rules`.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Rule {
    /// Id.
    pub id: RuleId,
    /// Owner.
    pub user_id: UserId,
    /// A name for people.
    pub name: String,
    /// Lower runs first.
    pub priority: i32,
    /// How `pattern` matches the description.
    pub match_kind: RuleMatch,
    /// Text or regular expression.
    pub pattern: String,
    /// Amount at least.
    pub min_amount: Option<Money>,
    /// Amount at most.
    pub max_amount: Option<Money>,
    /// Only this type.
    #[sqlx(rename = "type")]
    pub kind: Option<TransactionType>,
    /// The category it gives.
    pub category: Category,
    /// Whether it applies.
    pub enabled: bool,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
}

/// A rule's content (everything but id, owner and times).
#[derive(Debug, Clone, PartialEq)]
pub struct RuleFields {
    /// Name.
    pub name: String,
    /// Priority.
    pub priority: i32,
    /// Match kind.
    pub match_kind: RuleMatch,
    /// Pattern.
    pub pattern: String,
    /// Amount at least.
    pub min_amount: Option<Money>,
    /// Amount at most.
    pub max_amount: Option<Money>,
    /// Type.
    pub kind: Option<TransactionType>,
    /// Category.
    pub category: Category,
    /// Enabled.
    pub enabled: bool,
}

macro_rules! cols {
    () => {
        "id, user_id, name, priority, match_kind, pattern, min_amount, max_amount, type, category, enabled, \
         created_at, updated_at"
    };
}

/// Create a rule.
#[tracing::instrument(skip_all, fields(user.id = %user))]
pub async fn create(conn: Conn<'_>, user: UserId, f: &RuleFields) -> Result<Rule> {
    const SQL: &str = concat!(
        "insert into categorization_rules (",
        cols!(),
        ") values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12) returning ",
        cols!()
    );
    Ok(on_conn!(conn, c => sqlx::query_as(SQL)
        .bind(RuleId::new()).bind(user).bind(&f.name).bind(f.priority).bind(f.match_kind).bind(&f.pattern)
        .bind(f.min_amount).bind(f.max_amount).bind(f.kind).bind(&f.category).bind(f.enabled).bind(Timestamp::now())
        .fetch_one(&mut *c).await?))
}

/// One of the user's rules.
#[tracing::instrument(skip_all, fields(user.id = %user))]
pub async fn get(conn: Conn<'_>, user: UserId, id: RuleId) -> Result<Option<Rule>> {
    const SQL: &str = concat!("select ", cols!(), " from categorization_rules where id = $1 and user_id = $2");
    Ok(on_conn!(conn, c => sqlx::query_as(SQL).bind(id).bind(user).fetch_optional(&mut *c).await?))
}

/// The user's rules in the order they apply: priority, then age.
#[tracing::instrument(skip_all, fields(user.id = %user))]
pub async fn list(conn: Conn<'_>, user: UserId) -> Result<Vec<Rule>> {
    const SQL: &str =
        concat!("select ", cols!(), " from categorization_rules where user_id = $1 order by priority, created_at, id");
    Ok(on_conn!(conn, c => sqlx::query_as(SQL).bind(user).fetch_all(&mut *c).await?))
}

/// Replace a rule's content.
#[tracing::instrument(skip_all, fields(user.id = %user))]
pub async fn update(conn: Conn<'_>, user: UserId, id: RuleId, f: &RuleFields) -> Result<Option<Rule>> {
    const SQL: &str = concat!(
        "update categorization_rules set name = $3, priority = $4, match_kind = $5, pattern = $6, \
         min_amount = $7, max_amount = $8, type = $9, category = $10, enabled = $11, updated_at = $12 \
         where id = $1 and user_id = $2 returning ",
        cols!()
    );
    Ok(on_conn!(conn, c => sqlx::query_as(SQL)
        .bind(id).bind(user).bind(&f.name).bind(f.priority).bind(f.match_kind).bind(&f.pattern)
        .bind(f.min_amount).bind(f.max_amount).bind(f.kind).bind(&f.category).bind(f.enabled).bind(Timestamp::now())
        .fetch_optional(&mut *c).await?))
}

/// Delete one of the user's rules.
#[tracing::instrument(skip_all, fields(user.id = %user))]
pub async fn delete(conn: Conn<'_>, user: UserId, id: RuleId) -> Result<bool> {
    let n = on_conn!(conn, c => sqlx::query("delete from categorization_rules where id = $1 and user_id = $2")
        .bind(id).bind(user).execute(&mut *c).await?.rows_affected());
    Ok(n > 0)
}

/// Rename a category in the user's rules (part of a category rename or merge).
pub async fn rename_category(conn: Conn<'_>, user: UserId, from: &Category, to: &Category) -> Result<u64> {
    const SQL: &str =
        "update categorization_rules set category = $3, updated_at = $4 where user_id = $1 and category = $2";
    Ok(on_conn!(conn, c => sqlx::query(SQL).bind(user).bind(from).bind(to).bind(Timestamp::now())
        .execute(&mut *c).await?.rows_affected()))
}
