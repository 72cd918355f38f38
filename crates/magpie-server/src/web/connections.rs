//! Bank connections: link through SimpleFIN (a setup token), Plaid (a public token) or GoCardless (a
//! consent at the bank, then back here), see each connection's status, accounts and last error, sync
//! now, and remove one.
//!
//! Plaid's own Link widget is a script served by Plaid; this app loads nothing from other hosts, so in
//! the browser a Plaid connection is made from a public token (from Plaid Link run elsewhere, or from
//! the sandbox). GoCardless sends the person to their bank's consent page and back, which is the one
//! place the browser leaves this site, on purpose.

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use axum::routing::{get, post};
use magpie_domain::{BankProvider, ConnectionId, ConnectionStatus};
use serde::Deserialize;

use crate::api::connections::{
    CreateConnectionRequest, DeleteQuery, InstitutionsQuery, RequisitionRequest, create_connection,
    create_gocardless_requisition, delete_connection, list_connections, list_gocardless_institutions, sync_connection,
};
use crate::app::AppState;
use crate::auth::extract::ClientInfo;
use crate::error::AppError;
use crate::http::extract::{ApiJson, ApiQuery};
use crate::web::session::{self, Flash, WebUser};
use crate::web::{Layout, WebError, WebForm, back_with_error, finish, page, redirect, redirect_with};

/// The cookie holding the GoCardless requisition while the person is at their bank.
const REQUISITION_COOKIE: &str = "magpie_requisition";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/connections", get(show_connections))
        .route("/connections/simplefin", post(link_simplefin))
        .route("/connections/plaid", post(link_plaid))
        .route("/connections/gocardless", post(start_gocardless))
        .route("/connections/gocardless/return", get(finish_gocardless))
        .route("/connections/{id}/sync", post(sync_now))
        .route("/connections/{id}/delete", post(remove_connection))
}

pub struct Conn {
    pub id: String,
    pub provider: String,
    pub institution: String,
    pub status: String,
    pub healthy: bool,
    pub last_sync: String,
    pub next_sync: String,
    pub error: String,
    pub consent: String,
    pub accounts: Vec<String>,
}

#[derive(Template)]
#[template(path = "connections.html")]
struct ConnectionsPage {
    l: Layout,
    connections: Vec<Conn>,
    plaid: bool,
    gocardless: bool,
    country: String,
    institutions: Vec<(String, String)>,
    institutions_error: String,
}

fn when(t: Option<magpie_domain::Timestamp>) -> String {
    t.map(|t| t.as_datetime().format("%Y-%m-%d %H:%M UTC").to_string()).unwrap_or_else(|| "—".into())
}

#[derive(Deserialize, Default)]
pub struct CountryQuery {
    #[serde(default)]
    country: String,
}

async fn show_connections(
    State(state): State<AppState>,
    user: WebUser,
    Query(q): Query<CountryQuery>,
) -> Result<Response, WebError> {
    let list = list_connections(State(state.clone()), user.auth).await?.0;
    let connections = list
        .into_iter()
        .map(|c| Conn {
            id: c.id.to_string(),
            provider: match c.provider {
                BankProvider::Plaid => "Plaid",
                BankProvider::Simplefin => "SimpleFIN",
                BankProvider::Gocardless => "GoCardless",
            }
            .to_owned(),
            institution: c.institution_name,
            status: match c.status {
                ConnectionStatus::Active => "connected",
                ConnectionStatus::Expired => "login expired: link it again",
                ConnectionStatus::Error => "failing",
            }
            .to_owned(),
            healthy: c.status == ConnectionStatus::Active && c.last_error.is_none(),
            last_sync: when(c.last_sync),
            next_sync: when(c.next_sync_at),
            error: c.last_error.map(|e| format!("{e} ({})", when(c.last_error_at))).unwrap_or_default(),
            consent: c.consent_expires_at.map(|t| t.as_datetime().format("%Y-%m-%d").to_string()).unwrap_or_default(),
            accounts: c
                .accounts
                .into_iter()
                .map(|a| match a.mask {
                    Some(m) => format!("{} ••{m}", a.name),
                    None => a.name,
                })
                .collect(),
        })
        .collect();
    let enabled = state.bank.enabled();
    let gocardless = enabled.contains(&BankProvider::Gocardless);
    let country = q.country.trim().to_uppercase();
    let (mut institutions, mut institutions_error) = (Vec::new(), String::new());
    if gocardless && !country.is_empty() {
        match list_gocardless_institutions(
            State(state.clone()),
            user.auth,
            ApiQuery(InstitutionsQuery { country: country.clone() }),
        )
        .await
        {
            Ok(list) => institutions = list.0.into_iter().map(|i| (i.id, i.name)).collect(),
            Err(e) => institutions_error = e.problem().detail,
        }
    }
    let shown = user.flash.is_some();
    let tpl = ConnectionsPage {
        l: Layout::new(&user, "Bank connections", "connections"),
        connections,
        plaid: enabled.contains(&BankProvider::Plaid),
        gocardless,
        country,
        institutions,
        institutions_error,
    };
    Ok(page(&tpl, shown))
}

async fn link(state: &AppState, user: &WebUser, client: ClientInfo, req: CreateConnectionRequest) -> Response {
    let result = create_connection(State(state.clone()), user.auth, client, ApiJson(req)).await;
    finish(state, result, "/connections", |(_, c)| {
        format!(
            "Connected {}. The first sync has started; refresh in a moment to see it.",
            c.0.connection.institution_name
        )
    })
}

#[derive(Deserialize)]
pub struct TokenForm {
    token: String,
}

/// A connection from a one-time token: a SimpleFIN setup token or a Plaid public token.
async fn link_token(
    state: &AppState,
    user: &WebUser,
    client: ClientInfo,
    provider: BankProvider,
    token: &str,
) -> Response {
    let token = Some(token.trim().to_owned());
    let req = CreateConnectionRequest {
        provider: provider.as_str().to_owned(),
        setup_token: if provider == BankProvider::Simplefin { token.clone() } else { None },
        public_token: if provider == BankProvider::Plaid { token } else { None },
        requisition_id: None,
    };
    link(state, user, client, req).await
}

async fn link_simplefin(
    State(state): State<AppState>,
    user: WebUser,
    client: ClientInfo,
    WebForm(f): WebForm<TokenForm>,
) -> Response {
    link_token(&state, &user, client, BankProvider::Simplefin, &f.token).await
}

async fn link_plaid(
    State(state): State<AppState>,
    user: WebUser,
    client: ClientInfo,
    WebForm(f): WebForm<TokenForm>,
) -> Response {
    link_token(&state, &user, client, BankProvider::Plaid, &f.token).await
}

#[derive(Deserialize)]
pub struct InstitutionForm {
    institution_id: String,
}

/// This site's origin as the browser sees it (for the bank to send the person back to).
fn origin(state: &AppState, headers: &HeaderMap) -> String {
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("localhost");
    let scheme = if session::is_secure(state, headers) { "https" } else { "http" };
    format!("{scheme}://{host}")
}

async fn start_gocardless(
    State(state): State<AppState>,
    headers: HeaderMap,
    user: WebUser,
    WebForm(f): WebForm<InstitutionForm>,
) -> Response {
    let req = RequisitionRequest {
        institution_id: f.institution_id.trim().to_owned(),
        redirect: format!("{}/connections/gocardless/return", origin(&state, &headers)),
    };
    match create_gocardless_requisition(State(state.clone()), user.auth, ApiJson(req)).await {
        Ok((_, r)) => {
            let value = format!(
                "{}.{}",
                r.0.requisition_id,
                state.cookie_key.sign("requisition", &format!("{}|{}", user.id(), r.0.requisition_id))
            );
            let mut res = redirect(&r.0.link);
            let cookie =
                session::set_cookie(REQUISITION_COOKIE, &value, Some(3600), session::is_secure(&state, &headers));
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                res.headers_mut().append(header::SET_COOKIE, v);
            }
            res
        }
        Err(e) => back_with_error(&state, e, "/connections"),
    }
}

/// Back from the bank: the requisition (from our signed cookie, bound to this user) becomes a
/// connection when its consent is complete.
async fn finish_gocardless(
    State(state): State<AppState>,
    headers: HeaderMap,
    user: WebUser,
    client: ClientInfo,
) -> Response {
    let requisition = session::cookie(&headers, REQUISITION_COOKIE).and_then(|v| {
        let (id, sig) = v.rsplit_once('.')?;
        state.cookie_key.verify("requisition", &format!("{}|{id}", user.id()), sig).then(|| id.to_owned())
    });
    let Some(requisition_id) = requisition else {
        return redirect_with(
            &state,
            "/connections",
            Some(Flash::error(
                "The bank sent you back, but this browser did not start that link. Start again here.",
                vec![],
            )),
        );
    };
    let req = CreateConnectionRequest {
        provider: "GOCARDLESS".into(),
        requisition_id: Some(requisition_id),
        public_token: None,
        setup_token: None,
    };
    let mut res = link(&state, &user, client, req).await;
    if let Ok(v) = HeaderValue::from_str(&session::set_cookie(REQUISITION_COOKIE, "", Some(0), false)) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    res
}

async fn sync_now(
    State(state): State<AppState>,
    user: WebUser,
    Path(id): Path<ConnectionId>,
    WebForm(_): WebForm<crate::web::Empty>,
) -> Response {
    let result = sync_connection(State(state.clone()), user.auth, Path(id)).await;
    finish(&state, result, "/connections", |_| "Sync started; refresh in a moment to see what it brought.".into())
}

#[derive(Deserialize)]
pub struct DeleteForm {
    #[serde(default)]
    force: String,
}

async fn remove_connection(
    State(state): State<AppState>,
    user: WebUser,
    client: ClientInfo,
    Path(id): Path<ConnectionId>,
    WebForm(f): WebForm<DeleteForm>,
) -> Response {
    let q = DeleteQuery { force: f.force == "1" };
    let result: Result<_, AppError> =
        delete_connection(State(state.clone()), user.auth, client, Path(id), ApiQuery(q)).await;
    finish(&state, result, "/connections", |_| "Connection removed; its transactions stay in your ledger.".into())
}
