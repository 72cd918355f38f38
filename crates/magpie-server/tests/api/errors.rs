//! Every error is problem+json with the right status, wherever it comes from.

use axum::http::Method;

use crate::app_test;

app_test!(an_unknown_route_is_a_404_problem, |app| {
    app.get("/api/v1/does-not-exist").await.assert_problem(404, "not-found");
    app.get("/nothing-here").await.assert_problem(404, "not-found");
});

app_test!(a_wrong_method_is_a_405_problem_with_allow, |app| {
    let res = app.raw(Method::DELETE, "/healthz", None, "").await;
    res.assert_problem(405, "method-not-allowed");
    assert!(res.header("allow").unwrap().contains("GET"));
});

app_test!(malformed_json_is_a_400_problem, |app| {
    let res = app.raw(Method::POST, "/api/v1/auth/register", Some("application/json"), "{\"email\": ").await;
    let body = res.assert_problem(400, "bad-request");
    assert!(body["detail"].as_str().unwrap().contains("not valid JSON"), "{body}");
    let res = app.raw(Method::POST, "/api/v1/auth/register", Some("application/json"), "{} trailing").await;
    res.assert_problem(400, "bad-request");
});

app_test!(a_wrong_content_type_is_a_415_problem, |app| {
    let body = r#"{"email":"a@example.com","password":"correct horse battery"}"#;
    app.raw(Method::POST, "/api/v1/auth/register", Some("text/plain"), body)
        .await
        .assert_problem(415, "unsupported-media-type");
    app.raw(Method::POST, "/api/v1/auth/register", None, body).await.assert_problem(415, "unsupported-media-type");
    let ok = app.raw(Method::POST, "/api/v1/auth/register", Some("application/json; charset=utf-8"), body).await;
    assert_eq!(ok.status, 201);
});

app_test!(an_oversize_body_is_a_413_problem, |app| {
    let big = format!(r#"{{"email":"a@example.com","password":"{}"}}"#, "x".repeat(2 * 1024 * 1024));
    app.raw(Method::POST, "/api/v1/auth/register", Some("application/json"), big)
        .await
        .assert_problem(413, "payload-too-large");
});

app_test!(a_wrongly_typed_field_is_a_422_naming_it, |app| {
    let res = app
        .json(
            Method::POST,
            "/api/v1/auth/register",
            &serde_json::json!({"email": 42, "password": "correct horse battery"}),
        )
        .await;
    let body = res.assert_problem(422, "validation");
    assert_eq!(body["errors"][0]["field"], "email");
});
