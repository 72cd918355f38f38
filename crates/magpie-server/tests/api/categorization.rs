//! Categorization through the API: rules, remembered corrections, the global and per-user models,
//! confidence thresholds and review, the registry (training, activation, rollback), corrupt model
//! files, retraining after corrections, and categorization of imports and on demand.

use axum::http::Method;
use magpie_server::jobs;
use magpie_server::ml::training;
use serde_json::{Value, json};

use crate::support::{TestApp, TestUser, test_config};

async fn create(app: &TestApp, user: &TestUser, body: Value) -> Value {
    let res = app.authed(Method::POST, "/api/v1/transactions", &user.access, Some(&body)).await;
    assert_eq!(res.status, 201, "{}", String::from_utf8_lossy(&res.body));
    res.json()
}

async fn expense(app: &TestApp, user: &TestUser, description: &str, amount: &str) -> Value {
    create(app, user, json!({"amount": amount, "date": "2026-03-04", "description": description, "type": "EXPENSE"}))
        .await
}

async fn install_global(app: &TestApp) {
    training::install_shipped_global_model(&app.state).await.unwrap().expect("installed");
}

crate::app_test!(a_new_transaction_without_a_category_is_categorized_by_the_global_model, |app| {
    let user = app.user().await;
    // No model yet: the transaction waits for review.
    let t = expense(app, &user, "STARBUCKS STORE 10234", "5.75").await;
    assert_eq!(t["category"], "Uncategorized");
    assert_eq!(t["category_source"], "NONE");
    assert!(t["confidence_score"].is_null());

    install_global(app).await;
    // Installing again is a no-op (replicas starting together register it once).
    assert!(training::install_shipped_global_model(&app.state).await.unwrap().is_none());
    for (description, amount, category) in [
        ("STARBUCKS STORE 10234", "5.75", "Coffee Shops"),
        ("SHELL OIL 57444 SEATTLE WA", "48.10", "Fuel"),
        ("NETFLIX.COM 866-579-7172 CA", "15.49", "Subscriptions"),
        ("WHOLE FOODS MKT #10234", "84.12", "Groceries"),
    ] {
        let t = expense(app, &user, description, amount).await;
        assert_eq!(t["category"], category, "{description}: {t}");
        assert_eq!(t["category_source"], "MODEL");
        let confidence = t["confidence_score"].as_f64().unwrap();
        assert!((0.5..=1.0).contains(&confidence), "{description}: {confidence}");
    }
    // A category given by the person is theirs.
    let t = create(
        app,
        &user,
        json!({"amount": "5.75", "date": "2026-03-04", "description": "STARBUCKS", "type": "EXPENSE", "category": "Treats"}),
    )
    .await;
    assert_eq!((t["category"].as_str(), t["category_source"].as_str()), (Some("Treats"), Some("USER")));
    assert!(t["confidence_score"].is_null());
});

crate::app_test!(rules_apply_first_in_priority_order_with_every_condition, |app| {
    let user = app.user().await;
    install_global(app).await;
    let rule = |body: Value| {
        let token = user.access.clone();
        async move {
            let res = app.authed(Method::POST, "/api/v1/rules", &token, Some(&body)).await;
            assert_eq!(res.status, 201, "{}", String::from_utf8_lossy(&res.body));
            res.json()
        }
    };
    let broad = rule(json!({"pattern": "starbucks", "category": "Coffee Rule", "priority": 50})).await;
    rule(json!({"pattern": "starbucks", "category": "Big Coffee", "priority": 10, "min_amount": "20.00"})).await;
    rule(json!({"match_kind": "REGEX", "pattern": "^amzn mktp", "category": "Amazon", "type": "EXPENSE"})).await;
    rule(json!({"match_kind": "EXACT", "pattern": "Payroll ACME", "category": "Paycheck"})).await;

    // The rule beats the model, which would say Coffee Shops.
    let t = expense(app, &user, "STARBUCKS STORE 10234", "5.75").await;
    assert_eq!((t["category"].as_str(), t["category_source"].as_str()), (Some("Coffee Rule"), Some("RULE")));
    assert!(t["confidence_score"].is_null());
    // The higher-priority rule's amount condition holds here.
    assert_eq!(expense(app, &user, "Starbucks reserve", "25.00").await["category"], "Big Coffee");
    assert_eq!(expense(app, &user, "AMZN Mktp US*2K3LM0AB2", "19.99").await["category"], "Amazon");
    // The type condition: income does not match the Amazon rule.
    let refund = create(
        app,
        &user,
        json!({"amount": "19.99", "date": "2026-03-04", "description": "AMZN Mktp refund", "type": "INCOME"}),
    )
    .await;
    assert_ne!(refund["category"], "Amazon");
    // EXACT ignores case and surrounding spaces, but not extra words.
    assert_eq!(expense(app, &user, "  payroll acme ", "1.00").await["category"], "Paycheck");
    assert_ne!(expense(app, &user, "payroll acme corp", "1.00").await["category"], "Paycheck");

    // Disabling the broad rule lets the model decide again.
    let id = broad["id"].as_str().unwrap();
    let res =
        app.authed(Method::PATCH, &format!("/api/v1/rules/{id}"), &user.access, Some(&json!({"enabled": false}))).await;
    assert_eq!(res.status, 200);
    assert_eq!(expense(app, &user, "STARBUCKS STORE 10234", "5.75").await["category"], "Coffee Shops");

    // The list is in application order.
    let rules = app.authed(Method::GET, "/api/v1/rules", &user.access, None).await.json();
    let priorities: Vec<i64> = rules.as_array().unwrap().iter().map(|r| r["priority"].as_i64().unwrap()).collect();
    assert!(priorities.windows(2).all(|w| w[0] <= w[1]), "{priorities:?}");
});

crate::app_test!(bad_rules_get_field_errors, |app| {
    let user = app.user().await;
    let post = |body: Value| {
        let token = user.access.clone();
        async move { app.authed(Method::POST, "/api/v1/rules", &token, Some(&body)).await }
    };
    let body = post(json!({"match_kind": "REGEX", "pattern": "(unclosed", "category": "X"}))
        .await
        .assert_problem(422, "validation");
    assert!(body["errors"].to_string().contains("pattern"), "{body}");
    let body = post(
        json!({"pattern": "", "category": "", "match_kind": "SOUNDS_LIKE", "min_amount": "5", "max_amount": "1.00"}),
    )
    .await
    .assert_problem(422, "validation");
    let fields = body["errors"].to_string();
    for field in ["pattern", "category", "match_kind", "min_amount"] {
        assert!(fields.contains(field), "{field} missing in {fields}");
    }
    post(json!({"pattern": "x".repeat(501), "category": "X"})).await.assert_problem(422, "validation");
    post(json!({"pattern": "x", "category": "X", "colour": "red"})).await.assert_problem(422, "validation");
});

crate::app_test!(a_correction_is_learned_at_once_for_the_merchant, |app| {
    let user = app.user().await;
    install_global(app).await;
    let t = expense(app, &user, "SQ *BLUE BOTTLE COFFEE 0042", "6.50").await;
    assert_eq!(t["category_source"], "MODEL");
    let id = t["id"].as_str().unwrap();
    let res = app
        .authed(
            Method::PATCH,
            &format!("/api/v1/transactions/{id}"),
            &user.access,
            Some(&json!({"category": "Cafe Visits"})),
        )
        .await;
    assert_eq!(res.status, 200);
    assert_eq!(res.json()["category_source"], "USER");
    // The next charge of the same merchant, with another store number, gets the correction.
    let next = expense(app, &user, "SQ *BLUE BOTTLE COFFEE 7731", "4.25").await;
    assert_eq!((next["category"].as_str(), next["category_source"].as_str()), (Some("Cafe Visits"), Some("MEMORY")));
    // Bulk corrections are learned too.
    let other = expense(app, &user, "TST* JOES DINER 0042", "23.00").await;
    let res = app
        .authed(
            Method::POST,
            "/api/v1/transactions/bulk",
            &user.access,
            Some(&json!({"action": "set_category", "ids": [other["id"]], "category": "Date Night"})),
        )
        .await;
    assert_eq!(res.status, 200);
    assert_eq!(expense(app, &user, "TST* JOES DINER 0099", "31.00").await["category"], "Date Night");
    // Another user's corrections are not ours.
    let stranger = app.user().await;
    assert_ne!(expense(app, &stranger, "SQ *BLUE BOTTLE COFFEE 7731", "4.25").await["category"], "Cafe Visits");
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn below_the_threshold_a_transaction_waits_for_review_with_three_suggestions() {
    let config = magpie_server::config::Config { ml_confidence_threshold: 0.999, ..test_config() };
    let app = TestApp::with(magpie_db::testing::TestDb::sqlite().await, config).await;
    let user = app.user().await;
    install_global(&app).await;
    let t = expense(&app, &user, "CARD 4411 ZX QUARTERLY", "120.00").await;
    assert_eq!(t["category"], "Uncategorized");
    assert_eq!(t["category_source"], "MODEL");
    let confidence = t["confidence_score"].as_f64().unwrap();
    assert!(confidence < 0.999, "{confidence}");
    let page = app.authed(Method::GET, "/api/v1/transactions?needs_review=true", &user.access, None).await.json();
    let item = &page["items"][0];
    assert_eq!(item["id"], t["id"]);
    let suggestions = item["suggestions"].as_array().unwrap();
    assert_eq!(suggestions.len(), 3, "{item}");
    let confidences: Vec<f64> = suggestions.iter().map(|s| s["confidence"].as_f64().unwrap()).collect();
    assert!(confidences.windows(2).all(|w| w[0] >= w[1]), "{confidences:?}");
    // Plain lists do not carry suggestions.
    let page = app.authed(Method::GET, "/api/v1/transactions", &user.access, None).await.json();
    assert!(page["items"][0].get("suggestions").is_none());
}

/// `n` categorized transactions in four categories of the user's own taxonomy.
async fn ledger(app: &TestApp, user: &TestUser, n: usize) {
    let kinds = [
        ("HOPS & BARLEY TAPROOM {}", "Beer Fund", "18.00"),
        ("CITY CLIMBING GYM {}", "Bouldering", "65.00"),
        ("VINYL VAULT RECORDS {}", "Records", "27.50"),
        ("GREEN LEAF NURSERY {}", "Garden", "42.00"),
    ];
    for i in 0..n {
        let (d, category, amount) = kinds[i % kinds.len()];
        let body = json!({
            "amount": amount, "date": format!("2026-02-{:02}", 1 + i % 28), "type": "EXPENSE",
            "description": d.replace("{}", &format!("{:04}", i * 37 % 9999)), "category": category,
        });
        create(app, user, body).await;
    }
}

async fn train(app: &TestApp, user: &TestUser) -> Value {
    let res = app.authed(Method::POST, "/api/v1/models/train", &user.access, None).await;
    assert_eq!(res.status, 202, "{}", String::from_utf8_lossy(&res.body));
    let job = res.json();
    assert_eq!(job["status"], "QUEUED");
    assert!(jobs::run_pending(&app.state).await.unwrap() >= 1);
    let id = job["id"].as_str().unwrap();
    let done = app.authed(Method::GET, &format!("/api/v1/jobs/{id}"), &user.access, None).await.json();
    assert_eq!(done["status"], "DONE", "{done}");
    done["result"].clone()
}

crate::app_test!(a_personal_model_needs_more_than_50_categorized_transactions, |app| {
    let user = app.user().await;
    ledger(app, &user, 50).await;
    let result = train(app, &user).await;
    assert!(result["skipped"].as_str().unwrap().contains("more than 50"), "{result}");
    assert!(result["model_id"].is_null());
    let models = app.authed(Method::GET, "/api/v1/models", &user.access, None).await.json();
    assert!(models.as_array().unwrap().iter().all(|m| m["global"] == true), "{models}");

    ledger(app, &user, 1).await;
    let result = train(app, &user).await;
    assert_eq!(result["rows"], 51, "{result}");
    assert_eq!(result["version"], "v1");
    let models = app.authed(Method::GET, "/api/v1/models", &user.access, None).await.json();
    let own: Vec<&Value> = models.as_array().unwrap().iter().filter(|m| m["global"] == false).collect();
    assert_eq!(own.len(), 1);
    let m = own[0];
    assert_eq!((m["model_type"].as_str(), m["is_active"].as_bool()), (Some("CATEGORIZATION"), Some(true)));
    for metric in ["accuracy", "precision", "recall"] {
        let v = m[metric].as_f64().unwrap_or_else(|| panic!("{metric} missing: {m}"));
        assert!((0.0..=1.0).contains(&v), "{metric} {v}");
    }
    // The user's own taxonomy: a new charge of a known merchant gets the user's category from the model.
    let t = expense(app, &user, "CITY CLIMBING GYM 8120", "65.00").await;
    assert_eq!((t["category"].as_str(), t["category_source"].as_str()), (Some("Bouldering"), Some("MODEL")), "{t}");
    // Another user's training never sees these rows.
    let stranger = app.user().await;
    let result = train(app, &stranger).await;
    assert!(result["skipped"].is_string(), "{result}");
});

crate::app_test!(the_first_model_is_trained_by_itself_once_there_are_enough_categorized_transactions, |app| {
    let user = app.user().await;
    ledger(app, &user, 50).await;
    assert_eq!(jobs::run_pending(&app.state).await.unwrap(), 0, "50 are not enough");
    ledger(app, &user, 1).await;
    assert_eq!(jobs::run_pending(&app.state).await.unwrap(), 1, "the 51st queues the first training");
    let models = app.authed(Method::GET, "/api/v1/models", &user.access, None).await.json();
    assert!(models.as_array().unwrap().iter().any(|m| m["global"] == false && m["is_active"] == true), "{models}");
    // With a model, more categorized transactions do not retrain it; corrections do.
    ledger(app, &user, 5).await;
    assert_eq!(jobs::run_pending(&app.state).await.unwrap(), 0);
});

crate::app_test!(activation_rolls_back_and_forward_and_prediction_follows, |app| {
    let user = app.user().await;
    ledger(app, &user, 60).await;
    let v1 = train(app, &user).await;
    // v2 learns a new category.
    for i in 0..20 {
        let body = json!({"amount": "9.00", "date": "2026-02-10", "type": "EXPENSE",
                          "description": format!("PIXEL ARCADE {i:04}"), "category": "Games"});
        create(app, &user, body).await;
    }
    let v2 = train(app, &user).await;
    assert_eq!(v2["version"], "v2");
    let active = |models: &Value| -> Vec<String> {
        models
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["is_active"] == true && m["global"] == false)
            .map(|m| m["version"].as_str().unwrap().to_owned())
            .collect()
    };
    let models = app.authed(Method::GET, "/api/v1/models", &user.access, None).await.json();
    assert_eq!(active(&models), ["v2"]);
    assert_eq!(expense(app, &user, "PIXEL ARCADE 0042", "9.00").await["category"], "Games");

    // Roll back: exactly one active model, and prediction uses it at once.
    let id = v1["model_id"].as_str().unwrap();
    let res = app.authed(Method::POST, &format!("/api/v1/models/{id}/activate"), &user.access, None).await;
    assert_eq!(res.status, 200, "{}", String::from_utf8_lossy(&res.body));
    let models = app.authed(Method::GET, "/api/v1/models", &user.access, None).await.json();
    assert_eq!(active(&models), ["v1"]);
    assert_ne!(expense(app, &user, "PIXEL ARCADE 0042", "9.00").await["category"], "Games");
    // And forward again.
    let id = v2["model_id"].as_str().unwrap();
    assert_eq!(
        app.authed(Method::POST, &format!("/api/v1/models/{id}/activate"), &user.access, None).await.status,
        200
    );
    assert_eq!(expense(app, &user, "PIXEL ARCADE 0042", "9.00").await["category"], "Games");
    // A global model cannot be activated by a user.
    let models = app.authed(Method::GET, "/api/v1/models", &user.access, None).await.json();
    if let Some(global) = models.as_array().unwrap().iter().find(|m| m["global"] == true) {
        let gid = global["id"].as_str().unwrap();
        app.authed(Method::POST, &format!("/api/v1/models/{gid}/activate"), &user.access, None)
            .await
            .assert_problem(404, "not-found");
    }
});

crate::app_test!(a_corrupt_model_file_falls_back_to_the_global_model, |app| {
    let user = app.user().await;
    install_global(app).await;
    ledger(app, &user, 60).await;
    let result = train(app, &user).await;
    let id = result["model_id"].as_str().unwrap();
    // Damage the active user model's file in the store (as a bad disk or a partial copy would).
    let path = app.models.path().join(format!("categorization/{}/{id}.mgm", user.id));
    let mut bytes = std::fs::read(&path).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    // A fresh process (no cache) must not fail: it uses the global model and says why in the log.
    let fresh = magpie_server::app::AppState::build(app.state.config.clone(), app.test_db.db.clone()).await.unwrap();
    let router = magpie_server::app::router(fresh);
    let req = axum::http::Request::post("/api/v1/transactions")
        .header("authorization", format!("Bearer {}", user.access))
        .header("content-type", "application/json")
        .body(axum::body::Body::from(
            json!({"amount": "5.75", "date": "2026-03-04", "description": "STARBUCKS STORE 10234", "type": "EXPENSE"})
                .to_string(),
        ))
        .unwrap();
    let res = tower::ServiceExt::oneshot(router, req).await.unwrap();
    assert_eq!(res.status(), 201);
    let body = http_body_util::BodyExt::collect(res.into_body()).await.unwrap().to_bytes();
    let t: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(t["category"], "Coffee Shops", "{t}");
    assert!(crate::logs::text().contains("cannot load the active model"), "the failure is logged");
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enough_corrections_queue_a_retraining() {
    let config = magpie_server::config::Config { ml_retrain_after_corrections: 3, ..test_config() };
    let app = TestApp::with(magpie_db::testing::TestDb::sqlite().await, config).await;
    let user = app.user().await;
    ledger(&app, &user, 60).await;
    train(&app, &user).await;
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(expense(&app, &user, &format!("MYSTERY SHOP {i}"), "3.00").await["id"].as_str().unwrap().to_owned());
    }
    for id in &ids[..2] {
        app.authed(
            Method::PATCH,
            &format!("/api/v1/transactions/{id}"),
            &user.access,
            Some(&json!({"category": "Records"})),
        )
        .await;
    }
    assert_eq!(jobs::run_pending(&app.state).await.unwrap(), 0, "two corrections are not enough");
    app.authed(
        Method::PATCH,
        &format!("/api/v1/transactions/{}", ids[2]),
        &user.access,
        Some(&json!({"category": "Records"})),
    )
    .await;
    assert_eq!(jobs::run_pending(&app.state).await.unwrap(), 1, "the third queues a retraining");
    let models = app.authed(Method::GET, "/api/v1/models", &user.access, None).await.json();
    assert!(models.as_array().unwrap().iter().any(|m| m["version"] == "v2" && m["is_active"] == true), "{models}");
}

crate::app_test!(imports_are_categorized_and_categorize_fills_in_the_rest_without_touching_user_choices, |app| {
    let user = app.user().await;
    let csv = "Date,Description,Amount\n2026-01-05,STARBUCKS STORE 1234,-4.50\n2026-01-06,SHELL OIL 57444,-40.00\n\
               2026-01-07,WHOLE FOODS MKT #102,-61.20\n";
    // Without any model everything waits.
    let report = app.import(&user.access, "filename=a.csv", csv.as_bytes()).await.json();
    assert_eq!(report["imported"], 3, "{report}");
    let page = app.authed(Method::GET, "/api/v1/transactions?needs_review=true", &user.access, None).await.json();
    assert_eq!(page["items"].as_array().unwrap().len(), 3);
    // One is filed by hand.
    let hand = &page["items"][0]["id"];
    app.authed(
        Method::PATCH,
        &format!("/api/v1/transactions/{}", hand.as_str().unwrap()),
        &user.access,
        Some(&json!({"category": "Mine"})),
    )
    .await;

    install_global(app).await;
    let out = app.authed(Method::POST, "/api/v1/transactions/categorize", &user.access, Some(&json!({}))).await;
    assert_eq!(out.status, 200, "{}", String::from_utf8_lossy(&out.body));
    let out = out.json();
    assert_eq!(out["examined"], 2, "{out}");
    assert_eq!(out["by_model"], 2, "{out}");
    assert_eq!(out["remaining"], false);
    let page = app.authed(Method::GET, "/api/v1/transactions", &user.access, None).await.json();
    for t in page["items"].as_array().unwrap() {
        if t["id"] == *hand {
            assert_eq!((t["category"].as_str(), t["category_source"].as_str()), (Some("Mine"), Some("USER")));
        } else {
            assert_eq!(t["category_source"], "MODEL", "{t}");
            assert_ne!(t["category"], "Uncategorized", "{t}");
        }
    }
    // Asking for the hand-filed one by id leaves it alone too.
    let out = app
        .authed(Method::POST, "/api/v1/transactions/categorize", &user.access, Some(&json!({"ids": [hand]})))
        .await
        .json();
    assert_eq!(out["examined"], 0, "{out}");

    // A new import is categorized as it is written, and the preview shows the categories.
    let csv2 = "Date,Description,Amount\n2026-02-05,NETFLIX.COM 866-579-7172,-15.49\n";
    let preview = app.import(&user.access, "filename=b.csv&dry_run=true", csv2.as_bytes()).await.json();
    assert_eq!(preview["rows"][0]["category"], "Subscriptions", "{preview}");
    let report = app.import(&user.access, "filename=b.csv", csv2.as_bytes()).await.json();
    assert_eq!(report["imported"], 1);
    let page = app.authed(Method::GET, "/api/v1/transactions?q=netflix", &user.access, None).await.json();
    assert_eq!(page["items"][0]["category"], "Subscriptions");
    // Dedup does not depend on categories: re-importing adds nothing.
    let again = app.import(&user.access, "filename=b.csv", csv2.as_bytes()).await.json();
    assert_eq!((again["imported"].as_i64(), again["duplicates"].as_i64()), (Some(0), Some(1)));
});

#[tokio::test]
async fn the_shipped_global_model_is_what_the_shipped_training_set_produces() {
    let shipped = magpie_ml::Categorizer::from_bytes(training::SHIPPED_GLOBAL_MODEL).expect("the shipped model loads");
    let fresh = training::train_global_model(training::GLOBAL_ROWS_PER_CATEGORY).unwrap();
    assert_eq!(shipped.labels, fresh.labels);
    assert_eq!(shipped.features, fresh.features);
    let probe = magpie_ml::global::training_set(5, 7);
    let (mut a, mut b) = (magpie_ml::Workspace::default(), magpie_ml::Workspace::default());
    for r in &probe {
        let (x, y) = (shipped.predict(&r.example(), &mut a), fresh.predict(&r.example(), &mut b));
        assert_eq!(x.class, y.class, "{}: regenerate with `magpie ml train-global --out ...`", r.text);
        assert!((x.probability - y.probability).abs() < 0.02, "{}: {x:?} vs {y:?}", r.text);
    }
    assert!(training::SHIPPED_GLOBAL_MODEL.len() < 10_000_000);
}
