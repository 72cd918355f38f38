//! `/api/v1/connections`: links to banks through Plaid, SimpleFIN or GoCardless. Creating one
//! exchanges the provider's one-time credential (a Plaid public token, a SimpleFIN setup token, a linked
//! GoCardless requisition) for lasting access, seals it (AES-256-GCM, never returned or logged) and
//! queues the first sync. Deleting one revokes the access at the provider; its transactions stay, with
//! `connection_id` set to null.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::Utc;
use magpie_db::connections::{self as repo, Connection, NewConnection};
use magpie_domain::{BankProvider, ConnectionId, ConnectionStatus, JobId, Timestamp};
use magpie_sync::{Linked, SyncError};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::auth::AuthUser;
use crate::auth::extract::ClientInfo;
use crate::error::{AppError, Problem, Result};
use crate::http::extract::{ApiJson, ApiQuery};
use crate::http::validate::Validator;

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_connections, create_connection))
        .routes(routes!(get_connection, delete_connection))
        .routes(routes!(sync_connection))
        .routes(routes!(list_providers))
        .routes(routes!(create_plaid_link_token))
        .routes(routes!(list_gocardless_institutions))
        .routes(routes!(create_gocardless_requisition))
}

/// A bank account behind a connection.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AccountResponse {
    /// The provider's account id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Last digits of the account number.
    pub mask: Option<String>,
    /// Kind, as the provider names it.
    pub kind: Option<String>,
    /// ISO 4217 currency.
    pub currency: Option<String>,
    /// Balance (positive = yours; negative on a credit card = owed).
    #[schema(value_type = Option<String>, example = "1520.04")]
    pub balance: Option<Decimal>,
    /// Available balance.
    #[schema(value_type = Option<String>)]
    pub available: Option<Decimal>,
}

/// A connection as the API shows it (never its token).
#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectionResponse {
    /// Id.
    pub id: ConnectionId,
    /// PLAID, SIMPLEFIN or GOCARDLESS.
    pub provider: BankProvider,
    /// The provider's institution id.
    pub institution_id: String,
    /// The institution's name.
    pub institution_name: String,
    /// ACTIVE (syncing), EXPIRED (sign in at the bank again) or ERROR (link it again).
    pub status: ConnectionStatus,
    /// Last successful sync.
    pub last_sync: Option<Timestamp>,
    /// The last problem, in words (no credentials, no URLs).
    pub last_error: Option<String>,
    /// When it happened.
    pub last_error_at: Option<Timestamp>,
    /// When the bank's consent ends, if it does.
    pub consent_expires_at: Option<Timestamp>,
    /// When it syncs next by itself.
    pub next_sync_at: Option<Timestamp>,
    /// Accounts.
    pub accounts: Vec<AccountResponse>,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
}

impl From<Connection> for ConnectionResponse {
    fn from(c: Connection) -> Self {
        let accounts = serde_json::from_value(c.accounts.0).unwrap_or_default();
        ConnectionResponse {
            id: c.id,
            provider: c.provider,
            institution_id: c.institution_id,
            institution_name: c.institution_name,
            status: c.status,
            last_sync: c.last_sync,
            last_error: c.last_error,
            last_error_at: c.last_error_at,
            consent_expires_at: c.consent_expires_at,
            // Only an ACTIVE connection is synced by the scheduler.
            next_sync_at: c.next_sync_at.filter(|_| c.status == ConnectionStatus::Active),
            accounts,
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

/// A new connection, with the job of its first sync.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedConnection {
    /// The connection.
    #[serde(flatten)]
    pub connection: ConnectionResponse,
    /// The first sync (`GET /api/v1/jobs/{id}`).
    pub sync_job_id: JobId,
}

/// Link a bank: `provider` and the one credential that provider hands over.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateConnectionRequest {
    /// PLAID, SIMPLEFIN or GOCARDLESS.
    #[schema(example = "SIMPLEFIN")]
    pub provider: String,
    /// PLAID: the `public_token` Plaid Link returned.
    #[serde(default)]
    pub public_token: Option<String>,
    /// SIMPLEFIN: the setup token from the SimpleFIN Bridge.
    #[serde(default)]
    pub setup_token: Option<String>,
    /// GOCARDLESS: a requisition whose consent is complete (from `POST /connections/gocardless/requisitions`).
    #[serde(default)]
    pub requisition_id: Option<String>,
}

/// A sync that was queued.
#[derive(Debug, Serialize, ToSchema)]
pub struct SyncQueued {
    /// The job (`GET /api/v1/jobs/{id}`).
    pub job_id: JobId,
    /// False when a sync was already waiting (this is that one).
    pub queued: bool,
}

/// Options of `DELETE /connections/{id}`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeleteQuery {
    /// Forget the connection even when the provider cannot be reached to revoke it.
    #[serde(default)]
    pub force: bool,
}

/// Providers this server is configured for.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProvidersResponse {
    /// Usable with `POST /connections`.
    pub providers: Vec<BankProvider>,
}

/// What to start Plaid Link with.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct LinkTokenRequest {
    /// A PLAID connection to repair (update mode, after its login expired); absent for a new link.
    #[serde(default)]
    pub connection_id: Option<ConnectionId>,
}

/// A Plaid Link token.
#[derive(Debug, Serialize, ToSchema)]
pub struct LinkTokenResponse {
    /// Hand this to Plaid Link.
    pub link_token: String,
    /// When it stops working.
    pub expiration: String,
}

/// Which country's banks.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InstitutionsQuery {
    /// ISO 3166 two-letter country code.
    pub country: String,
}

/// A bank offered by GoCardless.
#[derive(Debug, Serialize, ToSchema)]
pub struct InstitutionResponse {
    /// Id, for `POST /connections/gocardless/requisitions`.
    pub id: String,
    /// Name.
    pub name: String,
    /// BIC.
    pub bic: Option<String>,
    /// Days of history the bank gives.
    pub transaction_total_days: Option<u32>,
    /// Longest consent, in days.
    pub max_access_valid_for_days: Option<u32>,
    /// Logo.
    pub logo: Option<String>,
}

/// Start a GoCardless consent flow.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RequisitionRequest {
    /// The bank (from `GET /connections/gocardless/institutions`).
    pub institution_id: String,
    /// Where the bank sends the person back (an http(s) URL of your app).
    pub redirect: String,
}

/// A consent flow to send the person through.
#[derive(Debug, Serialize, ToSchema)]
pub struct RequisitionResponse {
    /// Give this to `POST /connections` once the person is back.
    pub requisition_id: String,
    /// Send the person here.
    pub link: String,
    /// The requisition's status (`CR` until consent is given).
    pub status: String,
}

/// The problem a provider error is for the person linking.
fn link_error(field: &str, e: SyncError) -> AppError {
    match e {
        SyncError::RateLimited { .. } | SyncError::Transient { .. } => {
            AppError::Unavailable(format!("The bank provider is not answering ({}); try again shortly.", e.code()))
        }
        SyncError::Invalid { code, message } if code == "not_configured" => AppError::field("provider", message),
        other => AppError::field(field, other.to_string()),
    }
}

/// Your bank connections.
#[utoipa::path(
    get, path = "/connections", tag = "connections", security(("bearer" = [])),
    responses((status = 200, body = Vec<ConnectionResponse>), (status = 401, body = Problem, content_type = "application/problem+json"))
)]
pub async fn list_connections(State(state): State<AppState>, user: AuthUser) -> Result<Json<Vec<ConnectionResponse>>> {
    let mut conn = state.db.conn().await?;
    Ok(Json(repo::list(conn.c(), user.id, None).await?.into_iter().map(Into::into).collect()))
}

/// Link a bank. The provider is asked to confirm the credential before anything is stored; the first
/// sync is queued.
#[utoipa::path(
    post, path = "/connections", tag = "connections", security(("bearer" = [])), request_body = CreateConnectionRequest,
    responses(
        (status = 201, body = CreatedConnection),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already connected", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad or used credential, or provider not configured", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Provider unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create_connection(
    State(state): State<AppState>,
    user: AuthUser,
    client: ClientInfo,
    ApiJson(req): ApiJson<CreateConnectionRequest>,
) -> Result<(StatusCode, Json<CreatedConnection>)> {
    let mut v = Validator::new();
    let provider = v.check("provider", req.provider.parse::<BankProvider>());
    let wanted = match provider {
        Some(BankProvider::Plaid) => "public_token",
        Some(BankProvider::Simplefin) => "setup_token",
        Some(BankProvider::Gocardless) => "requisition_id",
        None => "",
    };
    let given = [
        ("public_token", &req.public_token),
        ("setup_token", &req.setup_token),
        ("requisition_id", &req.requisition_id),
    ];
    let mut credential = None;
    for (field, value) in given {
        match value {
            Some(val) if field == wanted => {
                if val.trim().is_empty() || val.len() > 4096 {
                    v.error(field, format!("{field} must be 1 to 4096 characters"));
                } else {
                    credential = Some(val.trim().to_owned());
                }
            }
            Some(_) if provider.is_some() => v.error(field, format!("{field} is not used with this provider")),
            _ => {}
        }
    }
    if provider.is_some() && credential.is_none() && !given.iter().any(|(f, val)| *f == wanted && val.is_some()) {
        v.error(wanted, format!("{wanted} is required for this provider"));
    }
    v.finish()?;
    let (provider, credential) = (provider.expect("validated"), credential.expect("validated"));
    let bank = &state.bank;
    let linked: Linked = match provider {
        BankProvider::Plaid => bank
            .plaid()
            .map_err(|e| link_error("provider", e))?
            .exchange(&credential)
            .await
            .map_err(|e| link_error(wanted, e))?,
        BankProvider::Simplefin => {
            bank.simplefin.claim(&credential, Utc::now()).await.map_err(|e| link_error(wanted, e))?
        }
        BankProvider::Gocardless => {
            // Only a requisition this user started here: its id shows in the consent link, so anyone
            // who saw the link could otherwise connect (and read) the bank behind it.
            let mut conn = state.db.conn().await?;
            let reference = magpie_db::security::requisition_reference(conn.c(), user.id, &credential).await?;
            drop(conn);
            let Some(reference) = reference else {
                return Err(AppError::field(
                    "requisition_id",
                    "unknown requisition: start one with POST /connections/gocardless/requisitions",
                ));
            };
            bank.gocardless()
                .map_err(|e| link_error("provider", e))?
                .connect_checked(&credential, Some(&reference))
                .await
                .map_err(|e| link_error(wanted, e))?
        }
    };
    let id = ConnectionId::new();
    let sealed = bank.keyring.seal(linked.secret.expose(), id, user.id).map_err(|e| AppError::Internal(e.into()))?;
    let mut tx = state.db.begin().await?;
    let duplicate =
        repo::find_by_external(tx.c(), provider, &linked.external_id).await?.into_iter().find(|c| c.user_id == user.id);
    if let Some(existing) = duplicate {
        drop(tx);
        return Err(AppError::Conflict(format!("this bank link is already connected as connection {}", existing.id)));
    }
    let new = NewConnection {
        external_id: Some(linked.external_id.clone()),
        sync_state: linked.state.clone(),
        accounts: serde_json::to_value(&linked.accounts).map_err(|e| AppError::Internal(e.into()))?,
        consent_expires_at: linked.consent_expires_at.map(Timestamp::from_datetime),
        next_sync_at: Some(Timestamp::from_datetime(
            Utc::now() + chrono::Duration::seconds(state.config.sync_interval_secs as i64),
        )),
        ..NewConnection::new(
            id,
            provider,
            linked.institution_id.chars().take(100).collect::<String>(),
            linked.institution_name.chars().take(200).collect::<String>(),
            sealed,
        )
    };
    let created = repo::create(tx.c(), user.id, &new).await?;
    tx.commit().await?;
    let (job, _) = crate::sync::enqueue(&state, id, user.id, true, Timestamp::now()).await?;
    tracing::info!(connection.id = %id, provider = provider.as_str(), institution = %created.institution_id, "bank connected");
    let detail =
        serde_json::json!({"connection_id": id, "provider": provider, "institution": created.institution_name});
    crate::audit::record(&state, user.id, "connection_created", &client, detail).await?;
    Ok((StatusCode::CREATED, Json(CreatedConnection { connection: created.into(), sync_job_id: job })))
}

/// One connection.
#[utoipa::path(
    get, path = "/connections/{id}", tag = "connections", security(("bearer" = [])),
    params(("id" = ConnectionId, Path, description = "Connection id")),
    responses(
        (status = 200, body = ConnectionResponse),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_connection(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<ConnectionId>,
) -> Result<Json<ConnectionResponse>> {
    let mut conn = state.db.conn().await?;
    Ok(Json(repo::get(conn.c(), user.id, id).await?.ok_or(AppError::NotFound)?.into()))
}

/// Disconnect a bank: the access is revoked at the provider, then forgotten. Its transactions stay (no
/// longer linked to a connection).
#[utoipa::path(
    delete, path = "/connections/{id}", tag = "connections", security(("bearer" = [])),
    params(("id" = ConnectionId, Path, description = "Connection id"), DeleteQuery),
    responses(
        (status = 204, description = "Revoked and deleted"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The provider could not be reached to revoke; retry, or use force=true", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn delete_connection(
    State(state): State<AppState>,
    user: AuthUser,
    client: ClientInfo,
    Path(id): Path<ConnectionId>,
    ApiQuery(q): ApiQuery<DeleteQuery>,
) -> Result<StatusCode> {
    let c = {
        let mut conn = state.db.conn().await?;
        repo::get(conn.c(), user.id, id).await?.ok_or(AppError::NotFound)?
    };
    match state.bank.keyring.open(&c.access_token, c.id, c.user_id) {
        Ok(secret) => {
            if let Err(e) = state.bank.revoke(c.provider, &secret).await {
                if !q.force {
                    return Err(AppError::Unavailable(format!(
                        "The provider could not revoke the access ({}); try again, or delete with force=true to forget \
                         the connection anyway.",
                        e.code()
                    )));
                }
                tracing::warn!(connection.id = %id, code = e.code(), "deleting a connection the provider did not revoke");
            }
        }
        Err(e) if !q.force => {
            return Err(AppError::Unavailable(format!(
                "The stored access cannot be opened to revoke it ({e}); delete with force=true to forget it anyway."
            )));
        }
        Err(_) => {}
    }
    let mut conn = state.db.conn().await?;
    if !repo::delete(conn.c(), user.id, id).await? {
        return Err(AppError::NotFound);
    }
    tracing::info!(connection.id = %id, provider = c.provider.as_str(), "bank disconnected");
    let detail = serde_json::json!({"connection_id": id, "provider": c.provider, "institution": c.institution_name});
    crate::audit::record(&state, user.id, "connection_deleted", &client, detail).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sync a connection now (queued; at most one sync of a connection runs at a time).
#[utoipa::path(
    post, path = "/connections/{id}/sync", tag = "connections", security(("bearer" = [])),
    params(("id" = ConnectionId, Path, description = "Connection id")),
    responses(
        (status = 202, body = SyncQueued),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn sync_connection(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<ConnectionId>,
) -> Result<(StatusCode, Json<SyncQueued>)> {
    {
        let mut conn = state.db.conn().await?;
        repo::get(conn.c(), user.id, id).await?.ok_or(AppError::NotFound)?;
    }
    let (job_id, queued) = crate::sync::enqueue(&state, id, user.id, true, Timestamp::now()).await?;
    Ok((StatusCode::ACCEPTED, Json(SyncQueued { job_id, queued })))
}

/// The providers this server can link banks through.
#[utoipa::path(
    get, path = "/connections/providers", tag = "connections", security(("bearer" = [])),
    responses((status = 200, body = ProvidersResponse), (status = 401, body = Problem, content_type = "application/problem+json"))
)]
pub async fn list_providers(State(state): State<AppState>, _user: AuthUser) -> Json<ProvidersResponse> {
    Json(ProvidersResponse { providers: state.bank.enabled() })
}

/// A Plaid Link token: for a new link, or (with `connection_id`) to repair a connection whose login
/// expired.
#[utoipa::path(
    post, path = "/connections/plaid/link-token", tag = "connections", security(("bearer" = [])), request_body = LinkTokenRequest,
    responses(
        (status = 200, body = LinkTokenResponse),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create_plaid_link_token(
    State(state): State<AppState>,
    user: AuthUser,
    body: axum::body::Bytes,
) -> Result<Json<LinkTokenResponse>> {
    // The body is optional: no body (or `{}`) asks for a new link.
    let req: LinkTokenRequest = if body.iter().all(u8::is_ascii_whitespace) {
        LinkTokenRequest::default()
    } else {
        crate::http::extract::parse_json(&body)?
    };
    let plaid = state.bank.plaid().map_err(|e| link_error("provider", e))?;
    let access = match req.connection_id {
        Some(id) => {
            let mut conn = state.db.conn().await?;
            let c = repo::get(conn.c(), user.id, id).await?.ok_or(AppError::NotFound)?;
            if c.provider != BankProvider::Plaid {
                return Err(AppError::field("connection_id", "this connection does not go through Plaid"));
            }
            Some(state.bank.keyring.open(&c.access_token, c.id, c.user_id).map_err(|e| AppError::Internal(e.into()))?)
        }
        None => None,
    };
    let token = plaid
        .create_link_token(&user.id.to_string(), access.as_ref())
        .await
        .map_err(|e| link_error("connection_id", e))?;
    Ok(Json(LinkTokenResponse { link_token: token.link_token, expiration: token.expiration }))
}

/// Banks GoCardless offers in a country.
#[utoipa::path(
    get, path = "/connections/gocardless/institutions", tag = "connections", security(("bearer" = [])), params(InstitutionsQuery),
    responses(
        (status = 200, body = Vec<InstitutionResponse>),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_gocardless_institutions(
    State(state): State<AppState>,
    _user: AuthUser,
    ApiQuery(q): ApiQuery<InstitutionsQuery>,
) -> Result<Json<Vec<InstitutionResponse>>> {
    let gc = state.bank.gocardless().map_err(|e| link_error("provider", e))?;
    let list = gc.institutions(&q.country).await.map_err(|e| link_error("query.country", e))?;
    Ok(Json(
        list.into_iter()
            .map(|i| InstitutionResponse {
                id: i.id,
                name: i.name,
                bic: i.bic,
                transaction_total_days: i.transaction_total_days,
                max_access_valid_for_days: i.max_access_valid_for_days,
                logo: i.logo,
            })
            .collect(),
    ))
}

/// Start linking a bank through GoCardless: send the person to `link`; when the bank sends them back to
/// `redirect`, create the connection with the requisition id.
#[utoipa::path(
    post, path = "/connections/gocardless/requisitions", tag = "connections", security(("bearer" = [])), request_body = RequisitionRequest,
    responses(
        (status = 201, body = RequisitionResponse),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create_gocardless_requisition(
    State(state): State<AppState>,
    user: AuthUser,
    ApiJson(req): ApiJson<RequisitionRequest>,
) -> Result<(StatusCode, Json<RequisitionResponse>)> {
    let mut v = Validator::new();
    let redirect_ok = (req.redirect.starts_with("https://") || req.redirect.starts_with("http://"))
        && req.redirect.len() <= 1024
        && !req.redirect.chars().any(char::is_whitespace);
    if !redirect_ok {
        v.error("redirect", "redirect must be an http(s) URL of at most 1024 characters");
    }
    v.finish()?;
    let gc = state.bank.gocardless().map_err(|e| link_error("provider", e))?;
    let reference = uuid::Uuid::new_v4().simple().to_string();
    let r = gc
        .create_requisition(&req.institution_id, &req.redirect, &reference)
        .await
        .map_err(|e| link_error("institution_id", e))?;
    let link = r.link.ok_or_else(|| AppError::Unavailable("GoCardless returned no consent link; try again.".into()))?;
    let mut conn = state.db.conn().await?;
    magpie_db::security::create_requisition(conn.c(), user.id, &r.id, &reference).await?;
    Ok((StatusCode::CREATED, Json(RequisitionResponse { requisition_id: r.id, link, status: r.status })))
}
