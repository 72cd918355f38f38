//! Tables of sign-in security (issue 23): bank requisitions with their creator, TOTP authenticators
//! and recovery codes, passkeys, OpenID Connect identities, invitations and short-lived sign-in
//! challenges. Secrets arrive sealed or hashed: this module never sees a TOTP seed, a recovery code or
//! a challenge token in clear.

use magpie_domain::{Timestamp, UserId};
use sqlx::types::Json;

use crate::{Conn, Result, on_conn};

// ---- bank requisitions ----

/// Remember that `user` started requisition `id` with `reference`.
pub async fn create_requisition(conn: Conn<'_>, user: UserId, id: &str, reference: &str) -> Result<()> {
    on_conn!(conn, c => {
        sqlx::query("insert into bank_requisitions (id, user_id, provider, reference, created_at) values ($1, $2, 'GOCARDLESS', $3, $4)")
            .bind(id).bind(user).bind(reference).bind(Timestamp::now()).execute(&mut *c).await?;
    });
    Ok(())
}

/// The reference of `user`'s requisition `id`; none when the requisition is unknown or someone else's.
pub async fn requisition_reference(conn: Conn<'_>, user: UserId, id: &str) -> Result<Option<String>> {
    Ok(on_conn!(conn, c => sqlx::query_scalar(
        "select reference from bank_requisitions where id = $1 and user_id = $2")
        .bind(id).bind(user).fetch_optional(&mut *c).await?))
}

// ---- TOTP ----

/// A TOTP authenticator.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Totp {
    /// Owner.
    pub user_id: UserId,
    /// The seed, sealed.
    pub secret_sealed: String,
    /// When a first code confirmed it (none while enrolling).
    pub confirmed_at: Option<Timestamp>,
    /// The last time step a code was accepted for.
    pub last_step: i64,
    /// Enrolment start.
    pub created_at: Timestamp,
}

/// Start (or restart) an enrolment: an unconfirmed authenticator replaces an unconfirmed one; a
/// confirmed one is left alone (false).
pub async fn begin_totp(conn: Conn<'_>, user: UserId, sealed: &str) -> Result<bool> {
    let n = on_conn!(conn, c => sqlx::query(
        "insert into user_totp (user_id, secret_sealed, confirmed_at, last_step, created_at) values ($1, $2, null, 0, $3) \
         on conflict (user_id) do update set secret_sealed = excluded.secret_sealed, created_at = excluded.created_at, \
         last_step = 0 where user_totp.confirmed_at is null")
        .bind(user).bind(sealed).bind(Timestamp::now()).execute(&mut *c).await?.rows_affected());
    Ok(n > 0)
}

/// The user's authenticator.
pub async fn get_totp(conn: Conn<'_>, user: UserId) -> Result<Option<Totp>> {
    Ok(on_conn!(conn, c => sqlx::query_as(
        "select user_id, secret_sealed, confirmed_at, last_step, created_at from user_totp where user_id = $1")
        .bind(user).fetch_optional(&mut *c).await?))
}

/// Accept a code for time step `step`: only if no code of this step or a later one was accepted
/// before (a code works once, and an older code after a newer one never). Confirms an enrolment.
/// False when the step was already used: two concurrent uses of one code cannot both pass.
pub async fn use_totp_step(conn: Conn<'_>, user: UserId, step: i64, now: Timestamp) -> Result<bool> {
    let n = on_conn!(conn, c => sqlx::query(
        "update user_totp set last_step = $2, confirmed_at = coalesce(confirmed_at, $3) where user_id = $1 and last_step < $2")
        .bind(user).bind(step).bind(now).execute(&mut *c).await?.rows_affected());
    Ok(n > 0)
}

/// Every sealed seed, for re-sealing under a new key: (user, sealed).
pub async fn all_totp_secrets(conn: Conn<'_>) -> Result<Vec<(UserId, String)>> {
    Ok(on_conn!(conn, c => sqlx::query_as("select user_id, secret_sealed from user_totp order by user_id")
        .fetch_all(&mut *c).await?))
}

/// Replace a sealed seed, only if it is still `old` (a concurrent re-enrolment wins).
pub async fn replace_totp_secret(conn: Conn<'_>, user: UserId, old: &str, new: &str) -> Result<bool> {
    let n = on_conn!(conn, c => sqlx::query(
        "update user_totp set secret_sealed = $3 where user_id = $1 and secret_sealed = $2")
        .bind(user).bind(old).bind(new).execute(&mut *c).await?.rows_affected());
    Ok(n > 0)
}

/// Remove the authenticator and the recovery codes.
pub async fn delete_totp(mut conn: Conn<'_>, user: UserId) -> Result<bool> {
    let n = on_conn!(conn.reborrow(), c => sqlx::query("delete from user_totp where user_id = $1")
        .bind(user).execute(&mut *c).await?.rows_affected());
    on_conn!(conn, c => {
        sqlx::query("delete from recovery_codes where user_id = $1").bind(user).execute(&mut *c).await?;
    });
    Ok(n > 0)
}

/// Replace the user's recovery codes with these hashes.
pub async fn replace_recovery_codes(mut conn: Conn<'_>, user: UserId, hashes: &[String]) -> Result<()> {
    on_conn!(conn.reborrow(), c => {
        sqlx::query("delete from recovery_codes where user_id = $1").bind(user).execute(&mut *c).await?;
    });
    let now = Timestamp::now();
    for h in hashes {
        on_conn!(conn.reborrow(), c => {
            sqlx::query("insert into recovery_codes (id, user_id, code_hash, used_at, created_at) values ($1, $2, $3, null, $4)")
                .bind(uuid::Uuid::now_v7()).bind(user).bind(h).bind(now).execute(&mut *c).await?;
        });
    }
    Ok(())
}

/// Use a recovery code (by hash): true once, false when unknown or used.
pub async fn use_recovery_code(conn: Conn<'_>, user: UserId, hash: &str, now: Timestamp) -> Result<bool> {
    let n = on_conn!(conn, c => sqlx::query(
        "update recovery_codes set used_at = $3 where user_id = $1 and code_hash = $2 and used_at is null")
        .bind(user).bind(hash).bind(now).execute(&mut *c).await?.rows_affected());
    Ok(n > 0)
}

/// Recovery codes not used yet.
pub async fn recovery_codes_left(conn: Conn<'_>, user: UserId) -> Result<i64> {
    Ok(on_conn!(conn, c => sqlx::query_scalar(
        "select count(*) from recovery_codes where user_id = $1 and used_at is null")
        .bind(user).fetch_one(&mut *c).await?))
}

// ---- passkeys ----

/// A registered passkey.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Passkey {
    /// Id.
    pub id: uuid::Uuid,
    /// Owner.
    pub user_id: UserId,
    /// The authenticator's credential id, base64url.
    pub credential_id: String,
    /// COSE public key.
    pub public_key: Vec<u8>,
    /// COSE algorithm (-7 ES256, -257 RS256).
    pub algorithm: i32,
    /// Signature counter last seen.
    pub sign_count: i64,
    /// The user's name for it.
    pub name: String,
    /// Transports the browser reported (comma-separated), as a hint for sign-in.
    pub transports: Option<String>,
    /// Registered.
    pub created_at: Timestamp,
    /// Last sign-in.
    pub last_used_at: Option<Timestamp>,
}

const PASSKEY_COLUMNS: &str =
    "id, user_id, credential_id, public_key, algorithm, sign_count, name, transports, created_at, last_used_at";

/// Store a new passkey.
pub async fn create_passkey(conn: Conn<'_>, p: &Passkey) -> Result<()> {
    on_conn!(conn, c => {
        sqlx::query("insert into passkeys (id, user_id, credential_id, public_key, algorithm, sign_count, name, transports, created_at, last_used_at) \
                     values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)")
            .bind(p.id).bind(p.user_id).bind(&p.credential_id).bind(&p.public_key).bind(p.algorithm).bind(p.sign_count)
            .bind(&p.name).bind(p.transports.as_deref()).bind(p.created_at).bind(p.last_used_at)
            .execute(&mut *c).await?;
    });
    Ok(())
}

/// The user's passkeys, oldest first.
pub async fn list_passkeys(conn: Conn<'_>, user: UserId) -> Result<Vec<Passkey>> {
    let sql = format!("select {PASSKEY_COLUMNS} from passkeys where user_id = $1 order by created_at, id");
    Ok(on_conn!(conn, c => sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(user).fetch_all(&mut *c).await?))
}

/// A passkey by credential id (any user's: sign-in finds the user from it).
pub async fn find_passkey(conn: Conn<'_>, credential_id: &str) -> Result<Option<Passkey>> {
    let sql = format!("select {PASSKEY_COLUMNS} from passkeys where credential_id = $1");
    Ok(on_conn!(conn, c => sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(credential_id).fetch_optional(&mut *c).await?))
}

/// After a sign-in: the new counter, only if it moved forward (or both are zero, for authenticators
/// without a counter). False means a counter that went back: a cloned authenticator.
pub async fn touch_passkey(conn: Conn<'_>, id: uuid::Uuid, sign_count: i64, now: Timestamp) -> Result<bool> {
    let n = on_conn!(conn, c => sqlx::query(
        "update passkeys set sign_count = $2, last_used_at = $3 where id = $1 and (sign_count < $2 or (sign_count = 0 and $2 = 0))")
        .bind(id).bind(sign_count).bind(now).execute(&mut *c).await?.rows_affected());
    Ok(n > 0)
}

/// Rename one of the user's passkeys.
pub async fn rename_passkey(conn: Conn<'_>, user: UserId, id: uuid::Uuid, name: &str) -> Result<bool> {
    let n = on_conn!(conn, c => sqlx::query("update passkeys set name = $3 where id = $1 and user_id = $2")
        .bind(id).bind(user).bind(name).execute(&mut *c).await?.rows_affected());
    Ok(n > 0)
}

/// Delete one of the user's passkeys.
pub async fn delete_passkey(conn: Conn<'_>, user: UserId, id: uuid::Uuid) -> Result<bool> {
    let n = on_conn!(conn, c => sqlx::query("delete from passkeys where id = $1 and user_id = $2")
        .bind(id).bind(user).execute(&mut *c).await?.rows_affected());
    Ok(n > 0)
}

// ---- OpenID Connect identities ----

/// An identity at an OpenID Connect provider.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Identity {
    /// Id.
    pub id: uuid::Uuid,
    /// Owner.
    pub user_id: UserId,
    /// The provider's issuer URL.
    pub issuer: String,
    /// The subject (the provider's stable id of the person).
    pub subject: String,
    /// The email the provider gave when linked (for display).
    pub email: Option<String>,
    /// Linked.
    pub created_at: Timestamp,
    /// Last sign-in with it.
    pub last_used_at: Option<Timestamp>,
}

const IDENTITY_COLUMNS: &str = "id, user_id, issuer, subject, email, created_at, last_used_at";

/// Link an identity.
pub async fn create_identity(conn: Conn<'_>, i: &Identity) -> Result<()> {
    on_conn!(conn, c => {
        sqlx::query("insert into user_identities (id, user_id, issuer, subject, email, created_at, last_used_at) values ($1, $2, $3, $4, $5, $6, $7)")
            .bind(i.id).bind(i.user_id).bind(&i.issuer).bind(&i.subject).bind(i.email.as_deref()).bind(i.created_at).bind(i.last_used_at)
            .execute(&mut *c).await?;
    });
    Ok(())
}

/// The identity with this issuer and subject, whoever it belongs to.
pub async fn find_identity(conn: Conn<'_>, issuer: &str, subject: &str) -> Result<Option<Identity>> {
    let sql = format!("select {IDENTITY_COLUMNS} from user_identities where issuer = $1 and subject = $2");
    Ok(
        on_conn!(conn, c => sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(issuer).bind(subject).fetch_optional(&mut *c).await?),
    )
}

/// The user's identities.
pub async fn list_identities(conn: Conn<'_>, user: UserId) -> Result<Vec<Identity>> {
    let sql = format!("select {IDENTITY_COLUMNS} from user_identities where user_id = $1 order by created_at, id");
    Ok(on_conn!(conn, c => sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(user).fetch_all(&mut *c).await?))
}

/// Note a sign-in with an identity.
pub async fn touch_identity(conn: Conn<'_>, id: uuid::Uuid, now: Timestamp) -> Result<()> {
    on_conn!(conn, c => {
        sqlx::query("update user_identities set last_used_at = $2 where id = $1").bind(id).bind(now).execute(&mut *c).await?;
    });
    Ok(())
}

/// Unlink one of the user's identities.
pub async fn delete_identity(conn: Conn<'_>, user: UserId, id: uuid::Uuid) -> Result<bool> {
    let n = on_conn!(conn, c => sqlx::query("delete from user_identities where id = $1 and user_id = $2")
        .bind(id).bind(user).execute(&mut *c).await?.rows_affected());
    Ok(n > 0)
}

// ---- invitations ----

/// Create an invitation (by the hash of its code), optionally for one email.
pub async fn create_invite(conn: Conn<'_>, hash: &str, email: Option<&str>, expires_at: Timestamp) -> Result<()> {
    on_conn!(conn, c => {
        sqlx::query("insert into invites (code_hash, email, created_at, expires_at) values ($1, $2, $3, $4)")
            .bind(hash).bind(email).bind(Timestamp::now()).bind(expires_at).execute(&mut *c).await?;
    });
    Ok(())
}

/// Use an invitation for `email`: true once, when it exists, is unused, unexpired and (if it names an
/// email) for this email. Run in the transaction that creates the account, then [`invite_used_by`].
pub async fn use_invite(conn: Conn<'_>, hash: &str, email: &str, now: Timestamp) -> Result<bool> {
    let n = on_conn!(conn, c => sqlx::query(
        "update invites set used_at = $3 where code_hash = $1 and used_at is null and expires_at > $3 \
         and (email is null or email = $2)")
        .bind(hash).bind(email).bind(now).execute(&mut *c).await?.rows_affected());
    Ok(n > 0)
}

/// Record who used an invitation.
pub async fn invite_used_by(conn: Conn<'_>, hash: &str, user: UserId) -> Result<()> {
    on_conn!(conn, c => {
        sqlx::query("update invites set used_by = $2 where code_hash = $1").bind(hash).bind(user).execute(&mut *c).await?;
    });
    Ok(())
}

// ---- sign-in challenges ----

/// A pending sign-in step.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Challenge {
    /// `second_factor`, `passkey_register`, `passkey_sign_in` or `oidc`.
    pub purpose: String,
    /// Whose (none before the user is known: a passkey sign-in, an OpenID Connect sign-in).
    pub user_id: Option<UserId>,
    /// What the step needs (the WebAuthn challenge, the PKCE verifier and nonce…).
    pub payload: Json<serde_json::Value>,
    /// Failed attempts so far.
    pub attempts: i32,
    /// Its end.
    pub expires_at: Timestamp,
}

/// Store a challenge under the hash of its token; expired challenges are swept on the way.
pub async fn create_challenge(
    mut conn: Conn<'_>,
    hash: &str,
    purpose: &str,
    user: Option<UserId>,
    payload: &serde_json::Value,
    expires_at: Timestamp,
) -> Result<()> {
    let now = Timestamp::now();
    on_conn!(conn.reborrow(), c => {
        sqlx::query("delete from auth_challenges where expires_at < $1").bind(now).execute(&mut *c).await?;
    });
    on_conn!(conn, c => {
        sqlx::query("insert into auth_challenges (token_hash, purpose, user_id, payload, attempts, created_at, expires_at) values ($1, $2, $3, $4, 0, $5, $6)")
            .bind(hash).bind(purpose).bind(user).bind(Json(payload)).bind(now).bind(expires_at).execute(&mut *c).await?;
    });
    Ok(())
}

/// A live challenge for `purpose`, left in place (a wrong second factor may be retried).
pub async fn get_challenge(conn: Conn<'_>, hash: &str, purpose: &str, now: Timestamp) -> Result<Option<Challenge>> {
    Ok(on_conn!(conn, c => sqlx::query_as(
        "select purpose, user_id, payload, attempts, expires_at from auth_challenges \
         where token_hash = $1 and purpose = $2 and expires_at > $3")
        .bind(hash).bind(purpose).bind(now).fetch_optional(&mut *c).await?))
}

/// Take a live challenge for `purpose` (it is deleted: exactly one caller gets it).
pub async fn take_challenge(
    mut conn: Conn<'_>,
    hash: &str,
    purpose: &str,
    now: Timestamp,
) -> Result<Option<Challenge>> {
    let found = get_challenge(conn.reborrow(), hash, purpose, now).await?;
    if found.is_none() {
        return Ok(None);
    }
    let n = on_conn!(conn, c => sqlx::query("delete from auth_challenges where token_hash = $1")
        .bind(hash).execute(&mut *c).await?.rows_affected());
    Ok(if n == 1 { found } else { None })
}

/// Count a failed attempt at a challenge; returns the attempts so far.
pub async fn fail_challenge(conn: Conn<'_>, hash: &str) -> Result<i32> {
    Ok(on_conn!(conn, c => sqlx::query_scalar(
        "update auth_challenges set attempts = attempts + 1 where token_hash = $1 returning attempts")
        .bind(hash).fetch_optional(&mut *c).await?.unwrap_or(0)))
}

/// Delete a challenge.
pub async fn delete_challenge(conn: Conn<'_>, hash: &str) -> Result<()> {
    on_conn!(conn, c => {
        sqlx::query("delete from auth_challenges where token_hash = $1").bind(hash).execute(&mut *c).await?;
    });
    Ok(())
}
