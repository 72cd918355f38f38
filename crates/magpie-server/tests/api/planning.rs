//! Budgets and goals through the API, on both engines: validation, budget against actual with
//! hand-computed figures, soft deletes and renames, roll forward, goals with contributions (also
//! concurrent ones), auto-tracking of a category, automatic status, projections.

use axum::http::Method;
use serde_json::{Value, json};

use crate::support::{TestApp, TestUser};

async fn post(app: &TestApp, user: &TestUser, path: &str, body: Value) -> Value {
    let res = app.authed(Method::POST, path, &user.access, Some(&body)).await;
    assert!(res.status.is_success(), "{path}: {} {}", res.status, String::from_utf8_lossy(&res.body));
    res.json()
}

async fn get(app: &TestApp, user: &TestUser, path: &str) -> Value {
    let res = app.authed(Method::GET, path, &user.access, None).await;
    assert_eq!(res.status, 200, "{path}: {}", String::from_utf8_lossy(&res.body));
    res.json()
}

async fn spend(app: &TestApp, user: &TestUser, date: &str, amount: &str, category: &str, kind: &str) -> Value {
    post(
        app,
        user,
        "/api/v1/transactions",
        json!({"amount": amount, "date": date, "description": format!("{category} thing"), "type": kind, "category": category}),
    )
    .await
}

fn find<'a>(list: &'a Value, category: &str) -> &'a Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|c| c["category"] == category)
        .unwrap_or_else(|| panic!("{category} in {list}"))
}

crate::app_test!(budgets_validate_every_field, |app| {
    let user = app.user().await;
    let res = app
        .authed(
            Method::POST,
            "/api/v1/budgets",
            &user.access,
            Some(&json!({"name": "", "period_start": "2026-06-30", "period_end": "2026-06-01",
                          "allocations": {"Groceries": "-5", "Dining": 1.005, "": "10", "Rent": "abc"}})),
        )
        .await;
    let body = res.assert_problem(422, "validation");
    let errors = body["errors"].to_string();
    for field in
        ["name", "period_end", "allocations.Groceries", "allocations.Dining", "allocations.", "allocations.Rent"]
    {
        assert!(errors.contains(&format!("\"{field}\"")), "{field} missing in {errors}");
    }
    let res = app
        .authed(
            Method::POST,
            "/api/v1/budgets",
            &user.access,
            Some(&json!({"name": "x", "period_start": "2026-06-01", "period_end": "2026-06-30", "allocations": {}, "extra": 1})),
        )
        .await;
    res.assert_problem(422, "validation");
    // Numbers and strings in, two-decimal strings out.
    let b = post(
        app,
        &user,
        "/api/v1/budgets",
        json!({"name": "June", "period_start": "2026-06-01",
        "period_end": "2026-06-30", "allocations": {"Groceries": 500, "Dining": "200.5"}}),
    )
    .await;
    assert_eq!(b["allocations"], json!({"Dining": "200.50", "Groceries": "500.00"}));
    let id = b["id"].as_str().unwrap();
    let patched = app
        .authed(
            Method::PATCH,
            &format!("/api/v1/budgets/{id}"),
            &user.access,
            Some(&json!({"allocations": {"Rent": "900"}})),
        )
        .await
        .json();
    assert_eq!(patched["allocations"], json!({"Rent": "900.00"}), "allocations are replaced");
    assert_eq!(patched["name"], "June");
    assert_eq!(app.authed(Method::DELETE, &format!("/api/v1/budgets/{id}"), &user.access, None).await.status, 204);
    app.authed(Method::GET, &format!("/api/v1/budgets/{id}"), &user.access, None)
        .await
        .assert_problem(404, "not-found");
});

crate::app_test!(budget_status_matches_hand_computed_figures, |app| {
    let user = app.user().await;
    let b = post(
        app,
        &user,
        "/api/v1/budgets",
        json!({"name": "June", "period_start": "2026-06-01",
        "period_end": "2026-06-30", "allocations": {"Groceries": "500.00", "Dining": "200.00"}}),
    )
    .await;
    let id = b["id"].as_str().unwrap();
    spend(app, &user, "2026-06-02", "212.37", "Groceries", "EXPENSE").await;
    spend(app, &user, "2026-06-09", "200.00", "Groceries", "EXPENSE").await;
    spend(app, &user, "2026-06-05", "250.10", "Dining", "EXPENSE").await;
    spend(app, &user, "2026-06-07", "99.99", "Travel", "EXPENSE").await;
    // Not counted: income, another month, after the as-of day, a soft-deleted expense.
    spend(app, &user, "2026-06-03", "3000.00", "Groceries", "INCOME").await;
    spend(app, &user, "2026-05-31", "40.00", "Groceries", "EXPENSE").await;
    spend(app, &user, "2026-06-20", "17.00", "Dining", "EXPENSE").await;
    let gone = spend(app, &user, "2026-06-04", "1000.00", "Dining", "EXPENSE").await;
    app.authed(Method::DELETE, &format!("/api/v1/transactions/{}", gone["id"].as_str().unwrap()), &user.access, None)
        .await;

    let s = get(app, &user, &format!("/api/v1/budgets/{id}/status?as_of=2026-06-10")).await["status"].clone();
    assert_eq!((s["days_elapsed"].as_i64(), s["days_total"].as_i64()), (Some(10), Some(30)));
    let groceries = find(&s["categories"], "Groceries");
    assert_eq!(groceries["spent"], "412.37");
    assert_eq!(groceries["remaining"], "87.63");
    assert_eq!(groceries["percent_used"], 82.5);
    assert_eq!(groceries["projected"], "1237.11");
    assert_eq!(groceries["thresholds_reached"], json!([80]));
    assert_eq!(groceries["thresholds_projected"], json!([80, 100]));
    let dining = find(&s["categories"], "Dining");
    assert_eq!((dining["spent"].as_str(), dining["remaining"].as_str()), (Some("250.10"), Some("-50.10")));
    assert_eq!(dining["thresholds_reached"], json!([80, 100]));
    assert_eq!(s["unbudgeted"], json!([{"category": "Travel", "spent": "99.99"}]));
    assert_eq!(s["totals"]["allocated"], "700.00");
    assert_eq!(s["totals"]["spent"], "662.47");
    assert_eq!(s["totals"]["total_spent"], "762.46");
    // Custom thresholds.
    let s = get(app, &user, &format!("/api/v1/budgets/{id}/status?as_of=2026-06-10&thresholds=50,150")).await["status"]
        .clone();
    assert_eq!(find(&s["categories"], "Dining")["thresholds_reached"], json!([50]));
    app.authed(Method::GET, &format!("/api/v1/budgets/{id}/status?thresholds=lots"), &user.access, None)
        .await
        .assert_problem(422, "validation");

    // Restoring the deleted expense brings it back into the status.
    app.authed(
        Method::POST,
        &format!("/api/v1/transactions/{}/restore", gone["id"].as_str().unwrap()),
        &user.access,
        None,
    )
    .await;
    let s = get(app, &user, &format!("/api/v1/budgets/{id}/status?as_of=2026-06-10")).await["status"].clone();
    assert_eq!(find(&s["categories"], "Dining")["spent"], "1250.10");

    // A rename moves the allocation and the spending together.
    post(app, &user, "/api/v1/categories/rename", json!({"from": "Dining", "to": "Eating Out"})).await;
    let s = get(app, &user, &format!("/api/v1/budgets/{id}/status?as_of=2026-06-10")).await["status"].clone();
    let eating = find(&s["categories"], "Eating Out");
    assert_eq!((eating["allocated"].as_str(), eating["spent"].as_str()), (Some("200.00"), Some("1250.10")));

    // The seed's query 3: budgets of the day, with their status.
    let current = get(app, &user, "/api/v1/budgets/current?as_of=2026-06-15").await;
    assert_eq!(current.as_array().unwrap().len(), 1);
    assert_eq!(current[0]["budget"]["id"], b["id"]);
    assert!(get(app, &user, "/api/v1/budgets/current?as_of=2026-07-01").await.as_array().unwrap().is_empty());
});

crate::app_test!(a_budget_rolls_forward_with_or_without_carry_over_once, |app| {
    let user = app.user().await;
    let b = post(
        app,
        &user,
        "/api/v1/budgets",
        json!({"name": "Monthly", "period_start": "2026-01-01",
        "period_end": "2026-01-31", "allocations": {"A": "100.00", "B": "50.00", "C": "10.00"}}),
    )
    .await;
    let id = b["id"].as_str().unwrap();
    spend(app, &user, "2026-01-10", "60.00", "A", "EXPENSE").await;
    spend(app, &user, "2026-01-11", "70.00", "B", "EXPENSE").await;
    spend(app, &user, "2026-01-12", "25.00", "C", "EXPENSE").await;
    let rolled = post(app, &user, &format!("/api/v1/budgets/{id}/roll-forward"), json!({"carry": "all"})).await;
    let next = &rolled["budget"];
    assert_eq!((next["period_start"].as_str(), next["period_end"].as_str()), (Some("2026-02-01"), Some("2026-02-28")));
    assert_eq!(next["allocations"], json!({"A": "140.00", "B": "30.00"}));
    assert_eq!(rolled["carried"], json!({"A": "40.00", "B": "-20.00"}));
    assert_eq!(rolled["dropped"], json!(["C"]));
    // Rolling the same budget again would double it.
    app.authed(Method::POST, &format!("/api/v1/budgets/{id}/roll-forward"), &user.access, Some(&json!({})))
        .await
        .assert_problem(409, "conflict");
    // Without carry-over, the same allocations (under another name, so it is not a double roll).
    let plain = post(app, &user, &format!("/api/v1/budgets/{id}/roll-forward"), json!({"name": "Plain"})).await;
    assert_eq!(plain["budget"]["allocations"], json!({"A": "100.00", "B": "50.00", "C": "10.00"}));
    let unspent =
        post(app, &user, &format!("/api/v1/budgets/{id}/roll-forward"), json!({"name": "U", "carry": "unspent"})).await;
    assert_eq!(unspent["budget"]["allocations"], json!({"A": "140.00", "B": "50.00", "C": "10.00"}));
    app.authed(
        Method::POST,
        &format!("/api/v1/budgets/{id}/roll-forward"),
        &user.access,
        Some(&json!({"carry": "some"})),
    )
    .await
    .assert_problem(422, "validation");
});

crate::app_test!(goal_contributions_and_status_follow_the_rules, |app| {
    let user = app.user().await;
    let res = app
        .authed(
            Method::POST,
            "/api/v1/goals",
            &user.access,
            Some(&json!({"name": "", "target_amount": "0", "deadline": "soon"})),
        )
        .await;
    let errors = res.assert_problem(422, "validation")["errors"].to_string();
    for field in ["name", "target_amount", "deadline"] {
        assert!(errors.contains(field), "{field}: {errors}");
    }
    let g =
        post(app, &user, "/api/v1/goals", json!({"name": "Bike", "target_amount": "300.00", "deadline": "2099-12-31"}))
            .await;
    assert_eq!((g["status"].as_str(), g["current_amount"].as_str()), (Some("ACTIVE"), Some("0.00")));
    let id = g["id"].as_str().unwrap();
    let path = format!("/api/v1/goals/{id}/contributions");
    let a = post(app, &user, &path, json!({"amount": "100.10", "date": "2026-01-05", "note": "first"})).await;
    assert_eq!(a["goal"]["current_amount"], "100.10");
    let b = post(app, &user, &path, json!({"amount": 199.9})).await;
    assert_eq!(
        (b["goal"]["current_amount"].as_str(), b["goal"]["status"].as_str()),
        (Some("300.00"), Some("ACHIEVED"))
    );
    assert_eq!(get(app, &user, &path).await.as_array().unwrap().len(), 2);
    // Deleting one brings it back below the target: ACTIVE again.
    let cid = a["contribution"]["id"].as_str().unwrap();
    let after = app.authed(Method::DELETE, &format!("{path}/{cid}"), &user.access, None).await.json();
    assert_eq!((after["current_amount"].as_str(), after["status"].as_str()), (Some("199.90"), Some("ACTIVE")));
    // ACHIEVED cannot be set by hand; ARCHIVED can, and stays while money comes in.
    app.authed(Method::PATCH, &format!("/api/v1/goals/{id}"), &user.access, Some(&json!({"status": "ACHIEVED"})))
        .await
        .assert_problem(422, "validation");
    let archived = app
        .authed(Method::PATCH, &format!("/api/v1/goals/{id}"), &user.access, Some(&json!({"status": "ARCHIVED"})))
        .await
        .json();
    assert_eq!(archived["status"], "ARCHIVED");
    let more = post(app, &user, &path, json!({"amount": "500.00"})).await;
    assert_eq!(more["goal"]["status"], "ARCHIVED");
    // Un-archived, it is ACHIEVED at once (699.90 of 300).
    let back = app
        .authed(Method::PATCH, &format!("/api/v1/goals/{id}"), &user.access, Some(&json!({"status": "ACTIVE"})))
        .await
        .json();
    assert_eq!(back["status"], "ACHIEVED");
    // A higher target makes it ACTIVE again.
    let higher = app
        .authed(Method::PATCH, &format!("/api/v1/goals/{id}"), &user.access, Some(&json!({"target_amount": "1000"})))
        .await
        .json();
    assert_eq!(
        (higher["status"].as_str(), higher["projection"]["remaining"].as_str()),
        (Some("ACTIVE"), Some("300.10"))
    );
    // The seed's query 4.
    post(app, &user, "/api/v1/goals", json!({"name": "Other", "target_amount": "5"})).await;
    let active = get(app, &user, "/api/v1/goals?status=ACTIVE").await;
    assert_eq!(active.as_array().unwrap().len(), 2);
    app.authed(Method::GET, "/api/v1/goals?status=DONE", &user.access, None).await.assert_problem(422, "validation");
    app.authed(Method::POST, &path, &user.access, Some(&json!({"amount": "-5"})))
        .await
        .assert_problem(422, "validation");
});

crate::app_test!(a_goal_tracks_its_category_through_every_change, |app| {
    let user = app.user().await;
    // Savings before the tracking start do not count.
    spend(app, &user, "2026-01-01", "999.00", "Savings", "EXPENSE").await;
    let g = post(
        app,
        &user,
        "/api/v1/goals",
        json!({"name": "Fund", "target_amount": "1000.00",
        "category": "Savings", "tracking_start": "2026-02-01"}),
    )
    .await;
    let id = g["id"].as_str().unwrap();
    assert_eq!(goal_state(app, &user, id).await.0, "0.00");
    let t1 = spend(app, &user, "2026-02-03", "400.00", "Savings", "EXPENSE").await;
    spend(app, &user, "2026-02-04", "50.00", "Groceries", "EXPENSE").await;
    assert_eq!(goal_state(app, &user, id).await.0, "400.00");
    // Money taken back out of the fund counts against it.
    spend(app, &user, "2026-02-05", "100.00", "Savings", "INCOME").await;
    assert_eq!(goal_state(app, &user, id).await.0, "300.00");
    // An edit, a soft delete and a restore are followed.
    let t1id = t1["id"].as_str().unwrap();
    app.authed(
        Method::PATCH,
        &format!("/api/v1/transactions/{t1id}"),
        &user.access,
        Some(&json!({"amount": "1100.00"})),
    )
    .await;
    assert_eq!(goal_state(app, &user, id).await, ("1000.00".into(), "ACHIEVED".into(), json!("1000.00")));
    app.authed(Method::DELETE, &format!("/api/v1/transactions/{t1id}"), &user.access, None).await;
    assert_eq!(goal_state(app, &user, id).await.1, "ACTIVE", "back below the target after the deletion");
    app.authed(Method::POST, &format!("/api/v1/transactions/{t1id}/restore"), &user.access, None).await;
    assert_eq!(goal_state(app, &user, id).await.0, "1000.00");
    // Re-filing it elsewhere stops counting it; so does an import into the category start counting.
    app.authed(
        Method::PATCH,
        &format!("/api/v1/transactions/{t1id}"),
        &user.access,
        Some(&json!({"category": "Groceries"})),
    )
    .await;
    assert_eq!(goal_state(app, &user, id).await.0, "0.00", "-100 is floored at zero");
    let rule = json!({"pattern": "fund transfer", "category": "Savings"});
    app.authed(Method::POST, "/api/v1/rules", &user.access, Some(&rule)).await;
    let csv = "Date,Description,Amount\n2026-02-10,FUND TRANSFER 1,-250.00\n2026-02-11,FUND TRANSFER 2,-75.50\n";
    let report = app.import(&user.access, "filename=fund.csv", csv.as_bytes()).await.json();
    assert_eq!(report["imported"], 2, "{report}");
    assert_eq!(goal_state(app, &user, id).await.0, "225.50", "-100 + 250 + 75.50");
    // Reverting the import takes it back out.
    let batch = report["batch_id"].as_str().unwrap();
    app.authed(Method::DELETE, &format!("/api/v1/imports/{batch}"), &user.access, None).await;
    assert_eq!(goal_state(app, &user, id).await.0, "0.00");
    // Contributions add to the tracked money.
    post(app, &user, &format!("/api/v1/goals/{id}/contributions"), json!({"amount": "150.00"})).await;
    let (current, _, tracked) = goal_state(app, &user, id).await;
    assert_eq!((current.as_str(), tracked), ("50.00", json!("-100.00")));
});

/// (current amount, status, tracked) of a goal.
async fn goal_state(app: &TestApp, user: &TestUser, id: &str) -> (String, String, Value) {
    let g = get(app, user, &format!("/api/v1/goals/{id}")).await;
    (g["current_amount"].as_str().unwrap().to_owned(), g["status"].as_str().unwrap().to_owned(), g["tracked"].clone())
}

crate::app_test!(concurrent_contributions_are_never_lost, |app| {
    let user = app.user().await;
    let g = post(app, &user, "/api/v1/goals", json!({"name": "Pot", "target_amount": "100000.00"})).await;
    let path = format!("/api/v1/goals/{}/contributions", g["id"].as_str().unwrap());
    // 24 requests at once, each on its own task over a clone of the router.
    let tasks: Vec<_> = (0..24)
        .map(|_| {
            let router = app.router.clone();
            let req = axum::http::Request::post(path.clone())
                .header("authorization", format!("Bearer {}", user.access))
                .header("content-type", "application/json")
                .body(axum::body::Body::from(r#"{"amount": "12.34"}"#))
                .unwrap();
            tokio::spawn(async move { tower::ServiceExt::oneshot(router, req).await.unwrap().status() })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), 201);
    }
    let goal = get(app, &user, &format!("/api/v1/goals/{}", g["id"].as_str().unwrap())).await;
    assert_eq!(goal["current_amount"], "296.16", "24 x 12.34");
    assert_eq!(goal["contributed"], "296.16");
});

crate::app_test!(a_goal_projection_says_what_it_takes, |app| {
    let user = app.user().await;
    let today = chrono::Utc::now().date_naive();
    let deadline = today.checked_add_months(chrono::Months::new(11)).unwrap();
    let g = post(
        app,
        &user,
        "/api/v1/goals",
        json!({"name": "Trip", "target_amount": "1200.00",
        "deadline": deadline.to_string()}),
    )
    .await;
    let p = &g["projection"];
    assert_eq!(p["months_left"], 12);
    assert_eq!(p["monthly_needed"], "100.00");
    assert!(p["projected_completion"].is_null(), "nothing came in: not at this pace");
    assert!(p["summary"].as_str().unwrap().contains("Not reached at this pace"));
    let path = format!("/api/v1/goals/{}/contributions", g["id"].as_str().unwrap());
    let added = post(app, &user, &path, json!({"amount": "600.00", "date": today.to_string()})).await;
    let p = &added["goal"]["projection"];
    assert_eq!(p["pace_per_month"], "200.00", "600 over the last 3 months");
    assert_eq!(p["monthly_needed"], "50.00");
    assert_eq!(p["projected_completion"], today.checked_add_months(chrono::Months::new(3)).unwrap().to_string());
    assert_eq!(p["on_track"], true);
});
