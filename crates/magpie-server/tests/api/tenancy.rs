//! The tenancy harness: for every route that takes an id, a second user gets 404 (never 403, never data)
//! when reading, changing or deleting the first user's record, and the record is untouched afterwards.
//! Each feature adds its routes to `OWNED_ROUTES`; a check over the OpenAPI document makes sure no route
//! with an id is left out.

use axum::http::Method;
use serde_json::{Value, json};

use crate::support::{TestApp, TestUser};

/// A route over one of the owner's records: (method, path template with `{id}`, body).
type OwnedRoute = (Method, &'static str, Option<Value>);

/// Creates a record owned by `owner`; returns its id, the routes to attack, and a check that it is intact.
struct Resource {
    id: String,
    routes: Vec<OwnedRoute>,
    /// GET path (with `{id}`) the owner uses to prove the record is intact; `None` if the record is
    /// checked through a list path instead.
    check: (&'static str, &'static str),
}

/// The id-taking routes of each feature, keyed by the OpenAPI path they cover.
async fn resources(app: &TestApp, owner: &TestUser) -> Vec<Resource> {
    let token = app
        .authed(Method::POST, "/api/v1/me/tokens", &owner.access, Some(&json!({"name": "owned", "scope": "read"})))
        .await
        .json();
    let transaction = app
        .authed(
            Method::POST,
            "/api/v1/transactions",
            &owner.access,
            Some(&json!({"amount": "12.30", "date": "2026-01-02", "description": "Owned", "type": "EXPENSE"})),
        )
        .await
        .json();
    let deleted = app
        .authed(
            Method::POST,
            "/api/v1/transactions",
            &owner.access,
            Some(&json!({"amount": "1.00", "date": "2026-01-03", "description": "Owned, deleted", "type": "EXPENSE"})),
        )
        .await
        .json();
    let deleted_id = deleted["id"].as_str().unwrap().to_owned();
    let rule = app
        .authed(Method::POST, "/api/v1/rules", &owner.access, Some(&json!({"pattern": "owned", "category": "Mine"})))
        .await
        .json();
    // A personal model and a training job of the owner's.
    for i in 0..52 {
        let category = if i % 2 == 0 { "OwnedA" } else { "OwnedB" };
        app.authed(
            Method::POST,
            "/api/v1/transactions",
            &owner.access,
            Some(&json!({"amount": "1.00", "date": "2026-01-04", "description": format!("{category} {i}"),
                         "type": "EXPENSE", "category": category})),
        )
        .await;
    }
    let job = app.authed(Method::POST, "/api/v1/models/train", &owner.access, None).await.json();
    magpie_server::jobs::run_pending(&app.state).await.unwrap();
    let finished = app
        .authed(Method::GET, &format!("/api/v1/jobs/{}", job["id"].as_str().unwrap()), &owner.access, None)
        .await
        .json();
    let model_id = finished["result"]["model_id"].as_str().expect("the owner's model was trained").to_owned();
    let budget = app
        .authed(
            Method::POST,
            "/api/v1/budgets",
            &owner.access,
            Some(&json!({"name": "Owned", "period_start": "2026-01-01", "period_end": "2026-01-31",
                         "allocations": {"Groceries": "100.00"}})),
        )
        .await
        .json();
    let goal = app
        .authed(Method::POST, "/api/v1/goals", &owner.access, Some(&json!({"name": "Owned", "target_amount": "500"})))
        .await
        .json();
    let goal_id = goal["id"].as_str().unwrap().to_owned();
    let contribution = app
        .authed(
            Method::POST,
            &format!("/api/v1/goals/{goal_id}/contributions"),
            &owner.access,
            Some(&json!({"amount": "10.00"})),
        )
        .await
        .json();
    let contribution_id = contribution["contribution"]["id"].as_str().unwrap().to_owned();
    let csv = "Date,Description,Amount\n2026-01-05,Owned import,-9.99\n";
    let batch = app.import(&owner.access, "filename=owned.csv", csv.as_bytes()).await.json();
    app.authed(Method::DELETE, &format!("/api/v1/transactions/{deleted_id}"), &owner.access, None).await;
    let (setup, _) = app.bank.sandbox.simplefin_setup_token();
    let connection = app
        .authed(
            Method::POST,
            "/api/v1/connections",
            &owner.access,
            Some(&json!({"provider": "SIMPLEFIN", "setup_token": setup})),
        )
        .await
        .json();
    // A passkey (the test server has a public_url) and an identity at an OpenID provider.
    let mut key = crate::passkeys::SoftKey::new();
    let options = app.authed(Method::POST, "/api/v1/me/passkeys/options", &owner.access, None).await.json();
    let credential = key.register(&options["options"]);
    let passkey = app
        .authed(
            Method::POST,
            "/api/v1/me/passkeys",
            &owner.access,
            Some(&json!({"name": "Owned", "credential": credential})),
        )
        .await
        .json();
    let identity_id = uuid::Uuid::now_v7();
    {
        let mut c = app.test_db.db.conn().await.unwrap();
        let now = magpie_domain::Timestamp::now();
        let row = magpie_db::security::Identity {
            id: identity_id,
            user_id: owner.id.parse().unwrap(),
            issuer: "https://id.example".into(),
            subject: format!("owned-{identity_id}"),
            email: None,
            created_at: now,
            last_used_at: None,
        };
        magpie_db::security::create_identity(c.c(), &row).await.unwrap();
    }
    vec![
        Resource {
            id: passkey["id"].as_str().expect("the owner's passkey").to_owned(),
            routes: vec![
                (Method::PATCH, "/api/v1/me/passkeys/{id}", Some(json!({"name": "Stolen"}))),
                (Method::DELETE, "/api/v1/me/passkeys/{id}", None),
            ],
            check: ("/api/v1/me/passkeys", "id"),
        },
        Resource {
            id: identity_id.to_string(),
            routes: vec![(Method::DELETE, "/api/v1/me/identities/{id}", None)],
            check: ("/api/v1/me/identities", "id"),
        },
        Resource {
            id: connection["id"].as_str().expect("the owner's connection").to_owned(),
            routes: vec![
                (Method::GET, "/api/v1/connections/{id}", None),
                (Method::POST, "/api/v1/connections/{id}/sync", None),
                (Method::DELETE, "/api/v1/connections/{id}", None),
            ],
            check: ("/api/v1/connections", "id"),
        },
        Resource {
            id: token["id"].as_str().unwrap().to_owned(),
            routes: vec![(Method::DELETE, "/api/v1/me/tokens/{id}", None)],
            check: ("/api/v1/me/tokens", "id"),
        },
        Resource {
            id: transaction["id"].as_str().unwrap().to_owned(),
            routes: vec![
                (Method::GET, "/api/v1/transactions/{id}", None),
                (Method::PATCH, "/api/v1/transactions/{id}", Some(json!({"amount": "0.01", "category": "Stolen"}))),
                (Method::DELETE, "/api/v1/transactions/{id}", None),
            ],
            check: ("/api/v1/transactions?limit=500", "id"),
        },
        Resource {
            id: batch["batch_id"].as_str().unwrap().to_owned(),
            routes: vec![(Method::GET, "/api/v1/imports/{id}", None), (Method::DELETE, "/api/v1/imports/{id}", None)],
            check: ("/api/v1/imports", "id"),
        },
        Resource {
            id: rule["id"].as_str().unwrap().to_owned(),
            routes: vec![
                (Method::GET, "/api/v1/rules/{id}", None),
                (Method::PATCH, "/api/v1/rules/{id}", Some(json!({"category": "Stolen"}))),
                (Method::DELETE, "/api/v1/rules/{id}", None),
            ],
            check: ("/api/v1/rules", "id"),
        },
        Resource {
            id: model_id,
            routes: vec![(Method::POST, "/api/v1/models/{id}/activate", None)],
            check: ("/api/v1/models", "id"),
        },
        Resource {
            id: job["id"].as_str().unwrap().to_owned(),
            routes: vec![(Method::GET, "/api/v1/jobs/{id}", None)],
            check: ("/api/v1/jobs/{owned}", "id"),
        },
        Resource {
            id: budget["id"].as_str().unwrap().to_owned(),
            routes: vec![
                (Method::GET, "/api/v1/budgets/{id}", None),
                (Method::PATCH, "/api/v1/budgets/{id}", Some(json!({"name": "Stolen"}))),
                (Method::GET, "/api/v1/budgets/{id}/status", None),
                (Method::POST, "/api/v1/budgets/{id}/roll-forward", Some(json!({"name": "Stolen"}))),
                (Method::DELETE, "/api/v1/budgets/{id}", None),
            ],
            check: ("/api/v1/budgets", "id"),
        },
        Resource {
            id: goal_id.clone(),
            routes: vec![
                (Method::GET, "/api/v1/goals/{id}", None),
                (Method::PATCH, "/api/v1/goals/{id}", Some(json!({"target_amount": "1.00"}))),
                (Method::GET, "/api/v1/goals/{id}/contributions", None),
                (Method::POST, "/api/v1/goals/{id}/contributions", Some(json!({"amount": "5.00"}))),
                (Method::DELETE, "/api/v1/goals/{id}", None),
            ],
            check: ("/api/v1/goals", "id"),
        },
        Resource {
            // Two ids: the goal's, then the contribution's.
            id: format!("{goal_id}|{contribution_id}"),
            routes: vec![(Method::DELETE, "/api/v1/goals/{id}/contributions/{id}", None)],
            check: ("/api/v1/goals/{owned}/contributions", "id"),
        },
        Resource {
            // A category only the owner spends in (the 52 transactions above).
            id: "OwnedA".to_owned(),
            routes: vec![(Method::GET, "/api/v1/forecasts/categories/{id}", None)],
            check: ("/api/v1/forecasts/categories/{owned}", "name"),
        },
        Resource {
            id: deleted_id,
            routes: vec![(Method::POST, "/api/v1/transactions/{id}/restore", None)],
            check: ("/api/v1/transactions?deleted=only", "id"),
        },
    ]
}

async fn assert_isolated(app: &TestApp) {
    let owner = app.user().await;
    let intruder = app.user().await;
    for resource in resources(app, &owner).await {
        // A route may take several ids (`{id}` each, in order), given as `a|b`.
        let ids: Vec<&str> = resource.id.split('|').collect();
        for (method, template, body) in &resource.routes {
            let mut path = (*template).to_owned();
            for id in &ids {
                path = path.replacen("{id}", id, 1);
            }
            let res = app.authed(method.clone(), &path, &intruder.access, body.as_ref()).await;
            res.assert_problem(404, "not-found");
            let text = String::from_utf8_lossy(&res.body);
            assert!(ids.iter().all(|id| !text.contains(id)), "{method} {template} leaked an id: {text}");
        }
        // The owner still sees the record, unchanged.
        let (list_path, id_field) = resource.check;
        let list_path = list_path.replace("{owned}", ids[0]);
        let record = ids[ids.len() - 1];
        let list = app.authed(Method::GET, &list_path, &owner.access, None).await.json();
        // Lists are a bare array, a page with `items`, or the record itself.
        let items = list.as_array().or_else(|| list["items"].as_array()).cloned().unwrap_or_else(|| vec![list.clone()]);
        assert!(items.iter().any(|i| i[id_field] == record), "{list_path} lost the record");
    }
}

crate::app_test!(another_users_records_are_404_on_every_id_route, |app| {
    assert_isolated(app).await;
});

#[tokio::test]
async fn every_route_with_an_id_is_covered_by_the_harness() {
    let app = TestApp::sqlite().await;
    let owner = app.user().await;
    let covered: Vec<(String, String)> = resources(&app, &owner)
        .await
        .into_iter()
        .flat_map(|r| r.routes.into_iter().map(|(m, p, _)| (m.as_str().to_lowercase(), p.to_owned())))
        .collect();
    let doc = app.get("/openapi.json").await.json();
    for (path, item) in doc["paths"].as_object().unwrap() {
        if !path.contains('{') {
            continue;
        }
        for method in item.as_object().unwrap().keys() {
            let normalized = regex_lite_replace(path);
            assert!(
                covered.iter().any(|(m, p)| m == method && *p == normalized),
                "{} {path} takes an id but is not in the tenancy harness",
                method.to_uppercase()
            );
        }
    }
}

/// `/api/v1/x/{token_id}/y` -> `/api/v1/x/{id}/y`.
fn regex_lite_replace(path: &str) -> String {
    let mut out = String::new();
    let mut in_param = false;
    for ch in path.chars() {
        match ch {
            '{' => {
                in_param = true;
                out.push_str("{id}");
            }
            '}' => in_param = false,
            c if !in_param => out.push(c),
            _ => {}
        }
    }
    out
}
