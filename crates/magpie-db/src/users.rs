//! The `users` table.
//!
//! A user can only ever see themselves, so these functions take the user's own id; `list` and
//! `find_by_email` exist for sign-in and for operators (`magpie user list`).

use magpie_domain::{Email, PasswordHash, Timestamp, UserId};

use crate::{Conn, DbError, Result, on_conn};

/// A row of `users`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct User {
    /// Id.
    pub id: UserId,
    /// Normalized email (unique).
    pub email: Email,
    /// bcrypt hash (never leaves the server).
    pub password_hash: PasswordHash,
    /// First name.
    pub first_name: Option<String>,
    /// Last name.
    pub last_name: Option<String>,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
}

/// What creating a user needs.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// Normalized email.
    pub email: Email,
    /// bcrypt hash.
    pub password_hash: PasswordHash,
    /// First name, at most 100 characters.
    pub first_name: Option<String>,
    /// Last name, at most 100 characters.
    pub last_name: Option<String>,
}

/// The column list of `User`, as a literal so statements can be built with `concat!` at compile time.
macro_rules! cols {
    () => {
        "id, email, password_hash, first_name, last_name, created_at, updated_at"
    };
}

/// Insert a user. A taken email is [`DbError::UniqueViolation`].
#[tracing::instrument(skip_all)]
pub async fn create(conn: Conn<'_>, new: &NewUser) -> Result<User> {
    let now = Timestamp::now();
    let user = User {
        id: UserId::new(),
        email: new.email.clone(),
        password_hash: new.password_hash.clone(),
        first_name: new.first_name.clone(),
        last_name: new.last_name.clone(),
        created_at: now,
        updated_at: now,
    };
    on_conn!(conn, c => {
        sqlx::query(
            "insert into users (id, email, password_hash, first_name, last_name, created_at, updated_at) \
             values ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(user.id)
        .bind(&user.email)
        .bind(&user.password_hash)
        .bind(&user.first_name)
        .bind(&user.last_name)
        .bind(user.created_at)
        .bind(user.updated_at)
        .execute(&mut *c)
        .await?;
    });
    Ok(user)
}

/// The user with this id.
#[tracing::instrument(skip_all, fields(user.id = %id))]
pub async fn get(conn: Conn<'_>, id: UserId) -> Result<Option<User>> {
    const SQL: &str = concat!("select ", cols!(), " from users where id = $1");
    Ok(on_conn!(conn, c => sqlx::query_as(SQL).bind(id).fetch_optional(&mut *c).await?))
}

/// The user with this (normalized) email.
#[tracing::instrument(skip_all)]
pub async fn find_by_email(conn: Conn<'_>, email: &Email) -> Result<Option<User>> {
    const SQL: &str = concat!("select ", cols!(), " from users where email = $1");
    Ok(on_conn!(conn, c => sqlx::query_as(SQL).bind(email).fetch_optional(&mut *c).await?))
}

/// Every user, oldest first (operators only).
pub async fn list(conn: Conn<'_>) -> Result<Vec<User>> {
    const SQL: &str = concat!("select ", cols!(), " from users order by created_at, id");
    Ok(on_conn!(conn, c => sqlx::query_as(SQL).fetch_all(&mut *c).await?))
}

/// Set the names (either may be cleared with `None`).
#[tracing::instrument(skip_all, fields(user.id = %id))]
pub async fn update_names(
    conn: Conn<'_>,
    id: UserId,
    first_name: Option<&str>,
    last_name: Option<&str>,
) -> Result<User> {
    const SQL: &str = concat!(
        "update users set first_name = $2, last_name = $3, updated_at = $4 where id = $1 returning ",
        cols!(),
        ""
    );
    on_conn!(conn, c => sqlx::query_as(SQL)
        .bind(id).bind(first_name).bind(last_name).bind(Timestamp::now())
        .fetch_optional(&mut *c).await?)
    .ok_or(DbError::NotFound)
}

/// Change the email. A taken email is [`DbError::UniqueViolation`].
#[tracing::instrument(skip_all, fields(user.id = %id))]
pub async fn update_email(conn: Conn<'_>, id: UserId, email: &Email) -> Result<User> {
    const SQL: &str = concat!("update users set email = $2, updated_at = $3 where id = $1 returning ", cols!(), "");
    on_conn!(conn, c => sqlx::query_as(SQL)
        .bind(id).bind(email).bind(Timestamp::now())
        .fetch_optional(&mut *c).await?)
    .ok_or(DbError::NotFound)
}

/// Replace the password hash.
#[tracing::instrument(skip_all, fields(user.id = %id))]
pub async fn update_password_hash(conn: Conn<'_>, id: UserId, hash: &PasswordHash) -> Result<()> {
    let n = on_conn!(conn, c => sqlx::query("update users set password_hash = $2, updated_at = $3 where id = $1")
        .bind(id).bind(hash).bind(Timestamp::now())
        .execute(&mut *c).await?.rows_affected());
    if n == 0 { Err(DbError::NotFound) } else { Ok(()) }
}

/// Delete the user; every child row goes with it by cascade. False when there was no such user.
#[tracing::instrument(skip_all, fields(user.id = %id))]
pub async fn delete(conn: Conn<'_>, id: UserId) -> Result<bool> {
    let n = on_conn!(conn, c => sqlx::query("delete from users where id = $1")
        .bind(id).execute(&mut *c).await?.rows_affected());
    Ok(n > 0)
}
