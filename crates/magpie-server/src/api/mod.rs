//! The HTTP API: one router per resource, merged here, documented by utoipa from the handlers
//! themselves so the OpenAPI document cannot drift from the code. Everything user-facing is under
//! `/api/v1`; operational routes (`/healthz`, `/readyz`, `/metrics`) are at the root.

pub mod audit;
pub mod auth;
pub mod budgets;
pub mod categories;
pub mod connections;
pub mod export;
pub mod goals;
pub mod identities;
pub mod imports;
pub mod insights;
pub mod me;
pub mod models;
pub mod passkeys;
pub mod reports;
pub mod rules;
pub mod system;
pub mod totp;
pub mod transactions;
pub mod webhooks;

use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::app::AppState;
use crate::error::{FieldError, Problem};

/// The OpenAPI document's fixed parts.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Magpie API",
        description = "Self-hosted personal finance: transactions, imports, bank sync, budgets, goals and \
                       machine-learned categorization. Money is always a string with two decimals. Errors are \
                       RFC 9457 `application/problem+json`.",
        license(name = "AGPL-3.0-or-later"),
    ),
    components(schemas(Problem, FieldError)),
    modifiers(&BearerAuth),
    tags(
        (name = "auth", description = "Registration, sign-in, tokens"),
        (name = "me", description = "The signed-in user's account"),
        (name = "transactions", description = "The ledger: income and expenses"),
        (name = "categories", description = "The category taxonomy"),
        (name = "reports", description = "Totals and cash flow"),
        (name = "imports", description = "Statement file imports"),
        (name = "connections", description = "Bank connections (Plaid, SimpleFIN, GoCardless), syncs and provider webhooks"),
        (name = "budgets", description = "Budgets and budget against actual"),
        (name = "goals", description = "Financial goals, contributions and projections"),
        (name = "insights", description = "Forecasts, recurring payments and anomalies"),
        (name = "rules", description = "Categorization rules"),
        (name = "models", description = "Categorization models and background jobs"),
        (name = "system", description = "Health, readiness, metrics"),
    )
)]
pub struct ApiDoc;

/// Declares the `bearer` security scheme: an access token from sign-in or a personal access token.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT or mgp_pat_ personal access token")
                    .description(Some("An access token from POST /api/v1/auth/login, or a personal access token."))
                    .build(),
            ),
        );
    }
}

/// Every route of the application, with its OpenAPI description.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi()).merge(system::router()).nest("/api/v1", v1())
}

/// The `/api/v1` routes.
fn v1() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(auth::router())
        .merge(me::router())
        .merge(totp::router())
        .merge(passkeys::router())
        .merge(identities::router())
        .merge(export::router())
        .merge(audit::router())
        .merge(transactions::router())
        .merge(categories::router())
        .merge(reports::router())
        .merge(imports::router())
        .merge(connections::router())
        .merge(webhooks::router())
        .merge(budgets::router())
        .merge(goals::router())
        .merge(insights::router())
        .merge(rules::router())
        .merge(models::router())
}

/// Every operation also answers with a `default` response: an error as problem+json. The handlers list
/// the statuses that mean something for them; this covers the rest every route can produce (a
/// malformed path id or query: 400; a body over the limit: 413; the wrong media type: 415; too many
/// sign-ins: 429; a timeout or an unavailable database: 503; a bug: 500), so a client (or a fuzzer
/// checking responses against the document) finds every error described.
pub fn document_errors(openapi: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
    let response = ResponseBuilder::new()
        .description("An error, as RFC 9457 problem+json (see the `type` for which)")
        .content(
            "application/problem+json",
            ContentBuilder::new().schema(Some(Ref::from_schema_name("Problem"))).build(),
        )
        .build();
    for item in openapi.paths.paths.values_mut() {
        for op in [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch, &mut item.head]
            .into_iter()
            .flatten()
        {
            op.responses.responses.entry("default".to_owned()).or_insert_with(|| RefOr::T(response.clone()));
        }
    }
}
