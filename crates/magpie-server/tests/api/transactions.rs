//! The ledger API: CRUD, validation, soft delete, filters, keyset pagination, bulk changes, categories and
//! reports, on both engines.

use axum::http::Method;
use serde_json::{Value, json};

use crate::app_test;
use crate::support::{TestApp, TestUser};

const TX: &str = "/api/v1/transactions";

async fn create(app: &TestApp, user: &TestUser, body: Value) -> Value {
    let res = app.authed(Method::POST, TX, &user.access, Some(&body)).await;
    assert_eq!(res.status, 201, "{}", String::from_utf8_lossy(&res.body));
    res.json()
}

async fn tx(
    app: &TestApp,
    user: &TestUser,
    amount: &str,
    date: &str,
    category: &str,
    kind: &str,
    description: &str,
) -> Value {
    create(
        app,
        user,
        json!({"amount": amount, "date": date, "category": category, "type": kind, "description": description}),
    )
    .await
}

async fn list(app: &TestApp, user: &TestUser, query: &str) -> Value {
    let res = app.authed(Method::GET, &format!("{TX}?{query}"), &user.access, None).await;
    assert_eq!(res.status, 200, "{query}: {}", String::from_utf8_lossy(&res.body));
    res.json()
}

fn descriptions(page: &Value) -> Vec<String> {
    page["items"].as_array().unwrap().iter().map(|t| t["description"].as_str().unwrap().to_owned()).collect()
}

fn field_errors(body: &Value) -> Vec<String> {
    body["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap().to_owned()).collect()
}

app_test!(create_returns_money_as_a_two_decimal_string_and_marks_manual, |app| {
    let user = app.user().await;
    let t = create(
        app,
        &user,
        json!({"amount": 12.3, "date": "2026-03-05", "description": "  Farmers   market ", "type": "EXPENSE"}),
    )
    .await;
    assert_eq!(t["amount"], "12.30");
    assert_eq!(t["source"], "MANUAL");
    assert_eq!(t["category"], "Uncategorized");
    assert_eq!(t["description"], "Farmers market");
    assert!(t["confidence_score"].is_null() && t["deleted_at"].is_null() && t["connection_id"].is_null());
    let exact = create(app, &user, json!({"amount": "9999999999.99", "date": "2026-03-05", "description": "Max", "type": "INCOME", "category": "Salary"})).await;
    assert_eq!(exact["amount"], "9999999999.99");
    let tenth =
        create(app, &user, json!({"amount": 0.1, "date": "2026-03-05", "description": "Tenth", "type": "EXPENSE"}))
            .await;
    assert_eq!(tenth["amount"], "0.10");
    let got = app.authed(Method::GET, &format!("{TX}/{}", t["id"].as_str().unwrap()), &user.access, None).await.json();
    assert_eq!(got, t);
});

app_test!(create_names_every_invalid_field, |app| {
    let user = app.user().await;
    let res = app.authed(Method::POST, TX, &user.access, Some(&json!({
        "amount": "-5.00", "date": "2026-02-30", "description": "  ", "category": "x".repeat(51), "type": "income"
    }))).await;
    let body = res.assert_problem(422, "validation");
    assert_eq!(field_errors(&body), ["amount", "date", "description", "category", "type"]);
    for (amount, why) in [("1.234", "three decimals"), ("10000000000.00", "too large"), ("abc", "not a number")] {
        let res = app
            .authed(
                Method::POST,
                TX,
                &user.access,
                Some(&json!({"amount": amount, "date": "2026-01-01", "description": "x", "type": "EXPENSE"})),
            )
            .await;
        assert_eq!(field_errors(&res.assert_problem(422, "validation")), ["amount"], "{why}");
    }
    let res = app
        .authed(
            Method::POST,
            TX,
            &user.access,
            Some(&json!({"amount": 1.005, "date": "2026-01-01", "description": "x", "type": "EXPENSE"})),
        )
        .await;
    assert_eq!(field_errors(&res.assert_problem(422, "validation")), ["amount"], "a JSON number with three decimals");
    for field in ["source", "confidence_score", "user_id", "connection_id"] {
        let mut body = json!({"amount": "1", "date": "2026-01-01", "description": "x", "type": "EXPENSE"});
        body[field] = json!("MANUAL");
        let res = app.authed(Method::POST, TX, &user.access, Some(&body)).await;
        assert_eq!(field_errors(&res.assert_problem(422, "validation")), [field], "{field} is not settable");
    }
});

app_test!(patch_updates_fields_and_a_category_clears_the_model_confidence, |app| {
    let user = app.user().await;
    let t = tx(app, &user, "10.00", "2026-03-01", "Dining", "EXPENSE", "Lunch").await;
    let id = t["id"].as_str().unwrap();
    // Give it a model confidence, as the categorizer would.
    {
        let mut c = app.test_db.db.conn().await.unwrap();
        magpie_db::transactions::update(
            c.c(),
            user.id.parse().unwrap(),
            id.parse().unwrap(),
            &magpie_db::transactions::TransactionPatch {
                confidence_score: Some(Some(magpie_domain::Confidence::from_hundredths(72).unwrap())),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .unwrap();
    }
    let p = app
        .authed(
            Method::PATCH,
            &format!("{TX}/{id}"),
            &user.access,
            Some(&json!({"amount": "11", "description": "Team lunch"})),
        )
        .await
        .json();
    assert_eq!(
        (p["amount"].as_str(), p["description"].as_str(), p["category"].as_str()),
        (Some("11.00"), Some("Team lunch"), Some("Dining"))
    );
    assert_eq!(p["confidence_score"], 0.72, "untouched when the category is not set");
    assert_ne!(p["updated_at"], t["updated_at"]);
    let p = app
        .authed(
            Method::PATCH,
            &format!("{TX}/{id}"),
            &user.access,
            Some(&json!({"category": "Coffee Shops", "type": "EXPENSE", "date": "2026-03-02"})),
        )
        .await
        .json();
    assert_eq!(p["category"], "Coffee Shops");
    assert!(p["confidence_score"].is_null(), "a person's choice replaces the model's");
    let bad = app
        .authed(Method::PATCH, &format!("{TX}/{id}"), &user.access, Some(&json!({"amount": "-1", "colour": "red"})))
        .await;
    assert_eq!(field_errors(&bad.assert_problem(422, "validation")), ["colour"]);
    let bad = app.authed(Method::PATCH, &format!("{TX}/{id}"), &user.access, Some(&json!({"amount": "-1"}))).await;
    assert_eq!(field_errors(&bad.assert_problem(422, "validation")), ["amount"]);
});

app_test!(soft_delete_hides_from_lists_and_reports_and_restore_brings_back, |app| {
    let user = app.user().await;
    let keep = tx(app, &user, "5.00", "2026-04-01", "Dining", "EXPENSE", "Keep").await;
    let gone = tx(app, &user, "7.00", "2026-04-02", "Dining", "EXPENSE", "Gone").await;
    let id = gone["id"].as_str().unwrap();
    assert_eq!(app.authed(Method::DELETE, &format!("{TX}/{id}"), &user.access, None).await.status, 204);
    app.authed(Method::DELETE, &format!("{TX}/{id}"), &user.access, None).await.assert_problem(404, "not-found");
    assert_eq!(descriptions(&list(app, &user, "").await), ["Keep"]);
    assert_eq!(descriptions(&list(app, &user, "deleted=only").await), ["Gone"]);
    assert_eq!(descriptions(&list(app, &user, "deleted=include").await), ["Gone", "Keep"]);
    let by_id = app.authed(Method::GET, &format!("{TX}/{id}"), &user.access, None).await.json();
    assert!(by_id["deleted_at"].is_string(), "kept for audit, visible by id");
    app.authed(Method::PATCH, &format!("{TX}/{id}"), &user.access, Some(&json!({"amount": "1"})))
        .await
        .assert_problem(404, "not-found");
    let summary = app
        .authed(Method::GET, "/api/v1/reports/summary?from=2026-04-01&to=2026-04-30", &user.access, None)
        .await
        .json();
    assert_eq!(summary["totals"]["expense"], "5.00");
    let cats = app.authed(Method::GET, "/api/v1/categories", &user.access, None).await.json();
    let dining = cats.as_array().unwrap().iter().find(|c| c["name"] == "Dining").unwrap().clone();
    assert_eq!(dining["transaction_count"], 1);

    let restored = app.authed(Method::POST, &format!("{TX}/{id}/restore"), &user.access, None).await;
    assert_eq!(restored.status, 200);
    assert!(restored.json()["deleted_at"].is_null());
    app.authed(Method::POST, &format!("{TX}/{id}/restore"), &user.access, None).await.assert_problem(404, "not-found");
    app.authed(Method::POST, &format!("{TX}/{}/restore", keep["id"].as_str().unwrap()), &user.access, None)
        .await
        .assert_problem(404, "not-found");
    let summary = app
        .authed(Method::GET, "/api/v1/reports/summary?from=2026-04-01&to=2026-04-30", &user.access, None)
        .await
        .json();
    assert_eq!(summary["totals"]["expense"], "12.00");
});

app_test!(every_filter_narrows_the_list, |app| {
    let user = app.user().await;
    tx(app, &user, "1200.00", "2026-01-31", "Salary", "INCOME", "ACME PAYROLL").await;
    tx(app, &user, "45.10", "2026-02-03", "Groceries", "EXPENSE", "WHOLE FOODS #12").await;
    tx(app, &user, "3.50", "2026-02-04", "Coffee Shops", "EXPENSE", "Starbucks 100% arabica").await;
    tx(app, &user, "60.00", "2026-02-10", "Dining", "EXPENSE", "Sushi night").await;
    create(
        app,
        &user,
        json!({"amount": "9.99", "date": "2026-02-11", "type": "EXPENSE", "description": "Mystery charge"}),
    )
    .await;
    let u = &user;
    let d = |q: &str| {
        let q = q.to_owned();
        async move { descriptions(&list(app, u, &q).await) }
    };
    assert_eq!(d("from=2026-02-04&to=2026-02-10").await, ["Sushi night", "Starbucks 100% arabica"]);
    assert_eq!(d("category=Dining&category=Groceries").await, ["Sushi night", "WHOLE FOODS #12"]);
    assert_eq!(d("type=INCOME").await, ["ACME PAYROLL"]);
    assert_eq!(d("source=MANUAL").await.len(), 5);
    assert!(d("source=API").await.is_empty());
    assert_eq!(d("min_amount=9.99&max_amount=60").await, ["Mystery charge", "Sushi night", "WHOLE FOODS #12"]);
    assert_eq!(d("q=whole%20foods").await, ["WHOLE FOODS #12"], "case-insensitive");
    assert_eq!(d("q=100%25").await, ["Starbucks 100% arabica"], "% is matched literally");
    assert!(d("q=_").await.is_empty(), "_ is not a wildcard");
    assert_eq!(d("needs_review=true").await, ["Mystery charge"]);
    assert_eq!(d("sort=amount&limit=2").await, ["Starbucks 100% arabica", "Mystery charge"]);
    assert_eq!(d("sort=-amount&limit=1").await, ["ACME PAYROLL"]);
    assert_eq!(d("sort=date&limit=1").await, ["ACME PAYROLL"]);
    assert!(d(&format!("connection_id={}", uuid::Uuid::new_v4())).await.is_empty());
    let bad = app
        .authed(
            Method::GET,
            &format!("{TX}?from=2026-03-01&to=2026-02-01&type=BOTH&limit=501&sort=name&deleted=maybe&min_amount=x"),
            &user.access,
            None,
        )
        .await;
    let body = bad.assert_problem(422, "validation");
    assert_eq!(
        field_errors(&body),
        ["query.from", "query.type", "query.min_amount", "query.deleted", "query.sort", "query.limit"]
    );
});

app_test!(keyset_pages_cover_everything_once_and_are_stable_under_inserts, |app| {
    let user = app.user().await;
    // 23 transactions over 5 days: many share a date, so the id tie-breaker matters.
    for i in 0..23 {
        tx(
            app,
            &user,
            &format!("{}.00", 100 - i % 7),
            &format!("2026-05-0{}", 1 + i % 5),
            "Dining",
            "EXPENSE",
            &format!("t{i:02}"),
        )
        .await;
    }
    for sort in ["-date", "date", "-amount", "amount"] {
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        loop {
            let mut q = format!("limit=5&sort={sort}");
            if let Some(c) = &cursor {
                q.push_str(&format!("&cursor={c}"));
            }
            let page = list(app, &user, &q).await;
            seen.extend(descriptions(&page));
            pages += 1;
            if pages == 2 && sort == "-date" {
                // Rows inserted mid-walk: an older one (after the cursor) appears once, a newer one (before
                // it) does not appear; nothing is duplicated or skipped.
                tx(app, &user, "1.00", "2026-04-01", "Dining", "EXPENSE", "late-old").await;
                tx(app, &user, "1.00", "2026-06-01", "Dining", "EXPENSE", "late-new").await;
            }
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => break,
            }
        }
        let mut unique = seen.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), seen.len(), "{sort}: no duplicates");
        let expected = if sort == "-date" { 24 } else { 25 };
        assert_eq!(seen.len(), expected, "{sort}: {seen:?}");
        if sort == "-date" {
            assert!(seen.contains(&"late-old".to_owned()) && !seen.contains(&"late-new".to_owned()));
        }
    }
    // A cursor from one sort order is refused by another.
    let page = list(app, &user, "limit=5&sort=-date").await;
    let c = page["next_cursor"].as_str().unwrap();
    let res = app.authed(Method::GET, &format!("{TX}?sort=amount&cursor={c}"), &user.access, None).await;
    assert_eq!(field_errors(&res.assert_problem(422, "validation")), ["query.cursor"]);
});

app_test!(bulk_changes_are_all_or_nothing, |app| {
    let user = app.user().await;
    let other = app.user().await;
    let mut ids = Vec::new();
    for i in 0..4 {
        ids.push(
            tx(app, &user, "2.00", "2026-06-01", "Uncategorized", "EXPENSE", &format!("b{i}")).await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let theirs =
        tx(app, &other, "2.00", "2026-06-01", "Dining", "EXPENSE", "theirs").await["id"].as_str().unwrap().to_owned();
    let token = user.access.clone();
    let token = &token;
    let bulk = |body: Value| async move { app.authed(Method::POST, &format!("{TX}/bulk"), token, Some(&body)).await };

    let mut with_foreign = ids.clone();
    with_foreign.push(theirs.clone());
    bulk(json!({"action": "set_category", "ids": with_foreign, "category": "Travel"}))
        .await
        .assert_problem(404, "not-found");
    assert!(descriptions(&list(app, &user, "category=Travel").await).is_empty(), "nothing changed");
    let theirs_now = app.authed(Method::GET, &format!("{TX}/{theirs}"), &other.access, None).await.json();
    assert_eq!(theirs_now["category"], "Dining");

    let r = bulk(json!({"action": "set_category", "ids": ids[..3], "category": "Travel"})).await;
    assert_eq!(r.json()["updated"], 3);
    assert_eq!(list(app, &user, "category=Travel").await["items"].as_array().unwrap().len(), 3);
    let r = bulk(json!({"action": "delete", "ids": ids[..2]})).await;
    assert_eq!(r.json()["updated"], 2);
    // Deleting again includes already-deleted rows: refused as a whole.
    bulk(json!({"action": "delete", "ids": ids})).await.assert_problem(404, "not-found");
    assert_eq!(list(app, &user, "").await["items"].as_array().unwrap().len(), 2);
    let r = bulk(json!({"action": "restore", "ids": ids[..2]})).await;
    assert_eq!(r.json()["updated"], 2);
    bulk(json!({"action": "restore", "ids": ids[..1]})).await.assert_problem(404, "not-found");
    let bad = bulk(json!({"action": "explode", "ids": []})).await;
    assert_eq!(field_errors(&bad.assert_problem(422, "validation")), ["ids", "action"]);
    let bad = bulk(json!({"action": "set_category", "ids": ids})).await;
    assert_eq!(field_errors(&bad.assert_problem(422, "validation")), ["category"]);
});

app_test!(categories_list_defaults_and_usage_and_rename_merges_everywhere, |app| {
    let user = app.user().await;
    tx(app, &user, "10.00", "2026-07-01", "Food", "EXPENSE", "a").await;
    tx(app, &user, "20.00", "2026-07-02", "Food", "EXPENSE", "b").await;
    let deleted = tx(app, &user, "30.00", "2026-07-03", "Food", "EXPENSE", "c").await;
    app.authed(Method::DELETE, &format!("{TX}/{}", deleted["id"].as_str().unwrap()), &user.access, None).await;
    tx(app, &user, "5.00", "2026-07-04", "Groceries", "EXPENSE", "d").await;
    let cats = app.authed(Method::GET, "/api/v1/categories", &user.access, None).await.json();
    let find = |cats: &Value, name: &str| cats.as_array().unwrap().iter().find(|c| c["name"] == name).cloned();
    assert_eq!(find(&cats, "Food").unwrap()["transaction_count"], 2);
    assert_eq!(find(&cats, "Food").unwrap()["is_default"], false);
    assert_eq!(find(&cats, "Salary").unwrap()["transaction_count"], 0);

    // A budget and a goal that use both names.
    let (uid, db) = (user.id.parse::<magpie_domain::UserId>().unwrap(), &app.test_db.db);
    {
        let mut c = db.conn().await.unwrap();
        magpie_db::budgets::create(
            c.c(),
            uid,
            &magpie_db::budgets::NewBudget {
                name: "July".into(),
                period_start: "2026-07-01".parse().unwrap(),
                period_end: "2026-07-31".parse().unwrap(),
                allocations: serde_json::from_value(json!({"Food": "100.00", "Groceries": "50.05", "Rent": "900.00"}))
                    .unwrap(),
            },
        )
        .await
        .unwrap();
        magpie_db::goals::create(
            c.c(),
            uid,
            &magpie_db::goals::NewGoal {
                name: "Eat less out".into(),
                target_amount: "100.00".parse().unwrap(),
                deadline: None,
                category: Some(magpie_domain::Category::parse("Food").unwrap()),
                tracking_start: None,
            },
        )
        .await
        .unwrap();
    }
    let r = app
        .authed(
            Method::POST,
            "/api/v1/categories/rename",
            &user.access,
            Some(&json!({"from": "Food", "to": "Groceries"})),
        )
        .await;
    assert_eq!(r.json(), json!({"transactions": 3, "budgets": 1, "goals": 1}));
    let cats = app.authed(Method::GET, "/api/v1/categories", &user.access, None).await.json();
    assert!(find(&cats, "Food").is_none());
    assert_eq!(find(&cats, "Groceries").unwrap()["transaction_count"], 3);
    let mut c = db.conn().await.unwrap();
    let budget = &magpie_db::budgets::list(c.c(), uid).await.unwrap()[0];
    assert_eq!(serde_json::to_value(&budget.allocations).unwrap(), json!({"Groceries": "150.05", "Rent": "900.00"}));
    assert_eq!(
        magpie_db::goals::list(c.c(), uid, None).await.unwrap()[0].category.as_ref().unwrap().as_str(),
        "Groceries"
    );
    // The deleted transaction was renamed too, so restoring it brings back the new name.
    let restored = app
        .authed(Method::POST, &format!("{TX}/{}/restore", deleted["id"].as_str().unwrap()), &user.access, None)
        .await
        .json();
    assert_eq!(restored["category"], "Groceries");
    let same = app
        .authed(Method::POST, "/api/v1/categories/rename", &user.access, Some(&json!({"from": "Rent", "to": " Rent "})))
        .await;
    assert_eq!(field_errors(&same.assert_problem(422, "validation")), ["to"]);
});

app_test!(reports_sum_exactly_by_category_month_week_and_type, |app| {
    let user = app.user().await;
    for _ in 0..10 {
        tx(app, &user, "0.10", "2026-01-05", "Coffee Shops", "EXPENSE", "c").await;
        tx(app, &user, "0.20", "2026-02-10", "Coffee Shops", "EXPENSE", "c").await;
    }
    tx(app, &user, "2500.00", "2026-01-30", "Salary", "INCOME", "pay").await;
    tx(app, &user, "2500.01", "2026-02-27", "Salary", "INCOME", "pay").await;
    tx(app, &user, "1234.56", "2026-02-01", "Rent", "EXPENSE", "rent").await;
    tx(app, &user, "99.99", "2026-03-15", "Rent", "EXPENSE", "outside the period").await;
    let token = &user.access;
    let get = |q: &str| {
        let q = q.to_owned();
        async move {
            app.authed(Method::GET, &format!("/api/v1/reports/summary?from=2026-01-01&to=2026-02-28&{q}"), token, None)
                .await
                .json()
        }
    };
    let by_cat = get("group_by=category").await;
    assert_eq!(by_cat["totals"], json!({"income": "5000.01", "expense": "1237.56", "net": "3762.45", "count": 23}));
    let coffee = by_cat["groups"].as_array().unwrap().iter().find(|g| g["key"] == "Coffee Shops").unwrap();
    assert_eq!(coffee["expense"], "3.00");
    assert_eq!(coffee["count"], 20);
    let by_month = get("group_by=month").await;
    let months: Vec<_> = by_month["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| (g["key"].as_str().unwrap().to_owned(), g["net"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(months, [("2026-01".to_owned(), "2499.00".to_owned()), ("2026-02".to_owned(), "1263.45".to_owned())]);
    let by_week = get("group_by=week").await;
    let weeks: Vec<_> =
        by_week["groups"].as_array().unwrap().iter().map(|g| g["key"].as_str().unwrap().to_owned()).collect();
    // Mondays: 2026-01-05 is a Monday; 2026-02-01 is a Sunday (week of 01-26).
    assert_eq!(weeks, ["2026-01-05", "2026-01-26", "2026-02-09", "2026-02-23"]);
    let by_type = get("group_by=type").await;
    assert_eq!(by_type["groups"][0]["key"], "EXPENSE");
    assert_eq!(by_type["groups"][1]["income"], "5000.01");
    let bad = app.authed(Method::GET, "/api/v1/reports/summary?group_by=day", &user.access, None).await;
    assert_eq!(field_errors(&bad.assert_problem(422, "validation")), ["query.group_by"]);

    let cf = app
        .authed(Method::GET, "/api/v1/reports/cashflow?from=2025-12-01&to=2026-04-10", &user.access, None)
        .await
        .json();
    let rows: Vec<_> = cf["months"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["month"].as_str().unwrap().to_owned(),
                m["net"].as_str().unwrap().to_owned(),
                m["running_net"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("2025-12".into(), "0.00".into(), "0.00".into()),
            ("2026-01".into(), "2499.00".into(), "2499.00".into()),
            ("2026-02".into(), "1263.45".into(), "3762.45".into()),
            ("2026-03".into(), "-99.99".into(), "3662.46".into()),
            ("2026-04".into(), "0.00".into(), "3662.46".into()),
        ]
    );
});
