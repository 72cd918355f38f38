//! Forecasts, the PREDICTION model, recurring payments and anomalies through the API, on a demo
//! history ending today.

use axum::http::Method;
use chrono::Datelike;
use rust_decimal::Decimal;
use serde_json::{Value, json};

use crate::support::{TestApp, TestUser};

async fn seeded(app: &TestApp, transactions: usize) -> TestUser {
    let user = app.user().await;
    let args = magpie_server::cli::demo::SeedDemoArgs { user: user.email.clone(), transactions, months: 36, seed: 42 };
    magpie_server::cli::demo::seed(&app.test_db.db, &args).await.unwrap();
    user
}

fn dec(v: &Value) -> Decimal {
    v.as_str().unwrap_or_else(|| panic!("money as a string: {v}")).parse().unwrap()
}

fn assert_ordered(m: &Value) {
    let (l95, l80, e, h80, h95) =
        (dec(&m["low_95"]), dec(&m["low_80"]), dec(&m["expected"]), dec(&m["high_80"]), dec(&m["high_95"]));
    assert!(l95 <= l80 && l80 <= e && e <= h80 && h80 <= h95, "{m}");
    assert!(l95 >= Decimal::ZERO, "{m}");
}

crate::app_test!(forecasts_cover_every_category_with_intervals_and_a_model_is_registered, |app| {
    let user = seeded(app, 4_000).await;
    let f = app.authed(Method::GET, "/api/v1/forecasts?months=3", &user.access, None).await;
    assert_eq!(f.status, 200, "{}", String::from_utf8_lossy(&f.body));
    let f = f.json();
    assert!(f["model_id"].is_null(), "fitted for the request: there is no model yet");
    let categories = f["categories"].as_array().unwrap();
    assert!(categories.len() >= 15, "{}", categories.len());
    for c in categories {
        assert_eq!(c["months"].as_array().unwrap().len(), 3);
        c["months"].as_array().unwrap().iter().for_each(assert_ordered);
    }
    let rent = categories.iter().find(|c| c["name"] == "Rent").unwrap();
    // Rent is fixed and rises once a year: a flat, tight forecast near the latest rent.
    let m = &rent["months"][0];
    assert!(dec(&m["high_95"]) - dec(&m["low_95"]) < dec(&m["expected"]) * Decimal::new(2, 1), "{rent}");
    assert_ordered(&f["total_expense"]["months"][0]);
    let cash = f["cashflow"].as_array().unwrap();
    assert_eq!(cash.len(), 3);
    for c in cash {
        let (i, e, n) = (dec(&c["income"]), dec(&c["expense"]), dec(&c["net"]));
        assert!((i - e - n).abs() <= Decimal::new(2, 2), "{c}");
        assert!(dec(&c["net_low_95"]) <= dec(&c["net_low_80"]) && dec(&c["net_high_80"]) <= dec(&c["net_high_95"]));
    }
    // The request queued a training; it registers the PREDICTION model, which later requests use.
    assert_eq!(magpie_server::jobs::run_pending(&app.state).await.unwrap(), 1);
    let models = app.authed(Method::GET, "/api/v1/models", &user.access, None).await.json();
    let prediction = models.as_array().unwrap().iter().find(|m| m["model_type"] == "PREDICTION").expect("registered");
    let accuracy = prediction["accuracy"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&accuracy), "{prediction}");
    assert!(prediction["precision"].is_null() && prediction["recall"].is_null());
    let again = app.authed(Method::GET, "/api/v1/forecasts?months=6", &user.access, None).await.json();
    assert_eq!(again["model_id"], prediction["id"]);
    assert_eq!(again["categories"][0]["months"].as_array().unwrap().len(), 6);
    assert_eq!(magpie_server::jobs::run_pending(&app.state).await.unwrap(), 0, "a current model queues nothing");

    // One category.
    let one = app.authed(Method::GET, "/api/v1/forecasts/categories/Groceries?months=2", &user.access, None).await;
    assert_eq!(one.status, 200);
    assert_eq!(one.json()["months"].as_array().unwrap().len(), 2);
    app.authed(Method::GET, "/api/v1/forecasts/categories/Nothing%20Here", &user.access, None)
        .await
        .assert_problem(404, "not-found");
    for bad in ["months=0", "months=7", "months=x"] {
        let res = app.authed(Method::GET, &format!("/api/v1/forecasts?{bad}"), &user.access, None).await;
        assert!(res.status == 422 || res.status == 400, "{bad}: {}", res.status);
    }

    // A budget of this month is projected with the forecast.
    let today = chrono::Utc::now().date_naive();
    let start = today.with_day0(0).unwrap();
    let end = start.checked_add_months(chrono::Months::new(1)).unwrap().pred_opt().unwrap();
    if today < end {
        let b = app
            .authed(Method::POST, "/api/v1/budgets", &user.access, Some(&json!({"name": "This month",
                "period_start": start.to_string(), "period_end": end.to_string(), "allocations": {"Groceries": "600"}})))
            .await
            .json();
        let s = app
            .authed(Method::GET, &format!("/api/v1/budgets/{}/status", b["id"].as_str().unwrap()), &user.access, None)
            .await
            .json();
        assert_eq!(s["status"]["projection"], "forecast", "{s}");
    }
});

crate::app_test!(recurring_payments_and_upcoming_ones_are_found, |app| {
    let user = seeded(app, 3_000).await;
    let r = app.authed(Method::GET, "/api/v1/insights/recurring", &user.access, None).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let r = r.json();
    let series = r.as_array().unwrap();
    let find = |word: &str| {
        series
            .iter()
            .find(|s| s["description"].as_str().unwrap().contains(word))
            .unwrap_or_else(|| panic!("{word} in {r}"))
    };
    let netflix = find("NETFLIX");
    assert_eq!((netflix["cadence"].as_str(), netflix["category"].as_str()), (Some("monthly"), Some("Subscriptions")));
    assert_eq!(netflix["next_amount"], "17.99");
    assert_eq!(netflix["price_change"]["from"], "15.49");
    assert_eq!(netflix["type"], "EXPENSE");
    assert!(netflix["transaction_ids"].as_array().unwrap().len() >= 20);
    let salary = find("PAYROLL");
    assert_eq!((salary["cadence"].as_str(), salary["type"].as_str()), (Some("monthly"), Some("INCOME")));
    let up = app.authed(Method::GET, "/api/v1/insights/upcoming?days=31", &user.access, None).await.json();
    let up = up.as_array().unwrap();
    assert!(up.iter().any(|u| u["description"].as_str().unwrap().contains("RENT")), "{up:?}");
    let dates: Vec<&str> = up.iter().map(|u| u["date"].as_str().unwrap()).collect();
    assert!(dates.windows(2).all(|w| w[0] <= w[1]), "by date: {dates:?}");
    app.authed(Method::GET, "/api/v1/insights/upcoming?days=500", &user.access, None)
        .await
        .assert_problem(422, "validation");
});

crate::app_test!(anomalies_find_a_planted_outlier_and_a_double_charge, |app| {
    let user = seeded(app, 4_000).await;
    let day = (chrono::Utc::now().date_naive() - chrono::Days::new(5)).to_string();
    let next = (chrono::Utc::now().date_naive() - chrono::Days::new(4)).to_string();
    for (description, amount, category, date) in [
        ("OLIVE GARDEN 0442", "1450.00", "Dining", &day),
        ("BEST BUY #0042", "249.99", "Shopping", &day),
        ("BEST BUY #0042", "249.99", "Shopping", &next),
    ] {
        let res = app
            .authed(Method::POST, "/api/v1/transactions", &user.access,
                Some(&json!({"amount": amount, "date": date, "description": description, "type": "EXPENSE", "category": category})))
            .await;
        assert_eq!(res.status, 201);
    }
    let a = app.authed(Method::GET, "/api/v1/insights/anomalies?days=30", &user.access, None).await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let a = a.json();
    let list = a.as_array().unwrap();
    let big = list.iter().find(|x| x["amount"] == "1450.00").unwrap_or_else(|| panic!("the outlier in {a}"));
    assert!(big["explanation"].as_str().unwrap().contains("times your usual"), "{big}");
    assert_eq!(big["transaction_ids"].as_array().unwrap().len(), 1);
    let double = list
        .iter()
        .find(|x| x["kind"] == "possible_double_charge")
        .unwrap_or_else(|| panic!("the double charge in {a}"));
    assert_eq!(double["transaction_ids"].as_array().unwrap().len(), 2);
    app.authed(Method::GET, "/api/v1/insights/anomalies?days=0", &user.access, None)
        .await
        .assert_problem(422, "validation");
    // Another user sees none of it.
    let other = app.user().await;
    let theirs = app.authed(Method::GET, "/api/v1/insights/anomalies", &other.access, None).await.json();
    assert!(theirs.as_array().unwrap().is_empty());
});

crate::app_test!(a_forecast_model_trained_before_the_history_arrived_is_not_used, |app| {
    // An empty ledger: the first forecast request queues a training on nothing.
    let user = app.user().await;
    let f = app.authed(Method::GET, "/api/v1/forecasts?months=3", &user.access, None).await.json();
    assert!(f["categories"].as_array().unwrap().is_empty());
    magpie_server::jobs::run_pending(&app.state).await.unwrap();
    let f = app.authed(Method::GET, "/api/v1/forecasts?months=3", &user.access, None).await.json();
    assert!(!f["model_id"].is_null(), "the empty model is current for an empty ledger");
    // Then two years arrive (an import, say) in the same month: the empty model no longer describes
    // the history, so the forecast is fitted for the request and a new training is queued.
    let args =
        magpie_server::cli::demo::SeedDemoArgs { user: user.email.clone(), transactions: 2_000, months: 24, seed: 7 };
    magpie_server::cli::demo::seed(&app.test_db.db, &args).await.unwrap();
    let f = app.authed(Method::GET, "/api/v1/forecasts?months=3", &user.access, None).await.json();
    assert!(f["model_id"].is_null(), "{f}");
    assert!(!f["categories"].as_array().unwrap().is_empty());
    assert!(f["total_expense"]["months"].as_array().is_some_and(|m| m.len() == 3), "{f}");
    magpie_server::jobs::run_pending(&app.state).await.unwrap();
    let f = app.authed(Method::GET, "/api/v1/forecasts?months=3", &user.access, None).await.json();
    assert!(!f["model_id"].is_null(), "the retrained model is used: {f}");
    assert!(!f["categories"].as_array().unwrap().is_empty());
});
