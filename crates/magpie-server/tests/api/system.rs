//! Health, readiness, metrics, OpenAPI and request ids.

use axum::body::Body;
use axum::http::Request;

use crate::app_test;

app_test!(healthz_is_ok, |app| {
    let res = app.get("/healthz").await;
    assert_eq!(res.status, 200);
    assert_eq!(res.json()["status"], "ok");
});

app_test!(readyz_reports_the_engine, |app| {
    let res = app.get("/readyz").await;
    assert_eq!(res.status, 200);
    assert_eq!(res.json()["database"], app.test_db.db.engine().as_str());
});

app_test!(readyz_is_503_when_the_database_is_gone, |app| {
    app.test_db.db.close().await;
    let res = app.get("/readyz").await;
    res.assert_problem(503, "unavailable");
    assert!(res.header("retry-after").is_some());
});

app_test!(metrics_count_requests_by_route_and_status_and_show_the_pool, |app| {
    app.get("/healthz").await;
    app.get("/readyz").await;
    app.get("/no/such/route/12345").await;
    let res = app.get("/metrics").await;
    assert_eq!(res.status, 200);
    assert!(res.header("content-type").unwrap().starts_with("text/plain"));
    let text = String::from_utf8(res.body.clone()).unwrap();
    assert!(text.contains(r#"http_requests_total{method="GET",route="/healthz",status="200"}"#), "{text}");
    assert!(text.contains(r#"route="unmatched",status="404""#), "{text}");
    assert!(!text.contains("12345"), "raw paths must not become labels");
    assert!(text.contains("http_request_duration_seconds_bucket"), "latency is a histogram");
    assert!(text.contains(r#"magpie_db_pool_connections{state="idle"}"#), "{text}");
    assert!(text.contains(r#"magpie_db_pool_connections{state="in_use"}"#), "{text}");
    assert!(text.contains("magpie_db_pool_max_connections"), "{text}");
    assert!(text.contains("magpie_db_pool_acquire_seconds_bucket"), "pool wait times: {text}");
});

app_test!(the_openapi_document_lists_the_routes, |app| {
    let res = app.get("/openapi.json").await;
    assert_eq!(res.status, 200);
    let doc = res.json();
    assert_eq!(doc["openapi"], "3.1.0");
    for path in ["/healthz", "/readyz", "/metrics"] {
        assert!(doc["paths"][path].is_object(), "{path} missing from the OpenAPI document");
    }
    assert!(doc["components"]["schemas"]["Problem"].is_object());
});

app_test!(a_request_id_is_generated_or_echoed, |app| {
    let generated = app.get("/healthz").await;
    let id = generated.header("x-request-id").expect("generated id");
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");

    let mine =
        app.send(Request::get("/healthz").header("x-request-id", "trace-abc-123").body(Body::empty()).unwrap()).await;
    assert_eq!(mine.header("x-request-id"), Some("trace-abc-123"));

    // Unprintable or oversized ids are replaced rather than echoed into logs.
    let long = "x".repeat(500);
    let replaced =
        app.send(Request::get("/healthz").header("x-request-id", long.as_str()).body(Body::empty()).unwrap()).await;
    assert_ne!(replaced.header("x-request-id"), Some(long.as_str()));

    // Error bodies carry the same id.
    let missing = app.send(Request::get("/nope").header("x-request-id", "req-404").body(Body::empty()).unwrap()).await;
    assert_eq!(missing.json()["request_id"], "req-404");
});

app_test!(metrics_show_the_job_queue_connections_syncs_and_models, |app| {
    let user = app.user().await;
    let (setup, _) = app.bank.sandbox.simplefin_setup_token();
    let body = serde_json::json!({"provider": "SIMPLEFIN", "setup_token": setup});
    let res = app.authed(axum::http::Method::POST, "/api/v1/connections", &user.access, Some(&body)).await;
    assert_eq!(res.status, 201);
    // The first sync is queued.
    let text = String::from_utf8(app.get("/metrics").await.body).unwrap();
    assert!(text.contains("magpie_jobs{state=\"queued\"}"), "{text}");
    assert!(text.contains("magpie_jobs_oldest_queued_age_seconds"));
    assert!(text.contains("magpie_connections{provider=\"SIMPLEFIN\",status=\"ACTIVE\"}"), "{text}");
    magpie_server::jobs::run_pending(&app.state).await.unwrap();
    let text = String::from_utf8(app.get("/metrics").await.body).unwrap();
    assert!(text.contains("magpie_syncs_total{provider=\"SIMPLEFIN\",outcome=\"synced\"}"), "{text}");
    assert!(text.contains("magpie_jobs_total{kind=\"sync_connection\",outcome=\"done\"}"), "{text}");
    assert!(text.contains("magpie_audit_events_total{kind=\"connection_created\"}"));
});
