//! Graceful shutdown and the request timeout.

use std::time::{Duration, Instant};

use axum::Router;
use axum::middleware::from_fn_with_state;
use axum::routing::get;
use magpie_server::app::run_server;
use magpie_server::http::middleware::enforce_timeout;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn slow_router(delay: Duration) -> Router {
    Router::new().route(
        "/slow",
        get(move || async move {
            tokio::time::sleep(delay).await;
            "done"
        }),
    )
}

async fn raw_get(addr: std::net::SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

#[tokio::test]
async fn in_flight_requests_finish_after_the_shutdown_signal() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(run_server(
        listener,
        slow_router(Duration::from_millis(400)),
        async move {
            let _ = rx.await;
        },
        Duration::from_secs(10),
    ));
    let request = tokio::spawn(raw_get(addr, "/slow"));
    tokio::time::sleep(Duration::from_millis(100)).await;
    tx.send(()).unwrap();
    let response = request.await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with("done"), "{response}");
    tokio::time::timeout(Duration::from_secs(5), server).await.expect("server stops").unwrap().unwrap();
    assert!(TcpStream::connect(addr).await.is_err(), "no longer accepting connections");
}

#[tokio::test]
async fn the_grace_period_bounds_shutdown() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(run_server(
        listener,
        slow_router(Duration::from_secs(60)),
        async move {
            let _ = rx.await;
        },
        Duration::from_millis(200),
    ));
    let _stuck = tokio::spawn(raw_get(addr, "/slow"));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), server).await.expect("server stops").unwrap().unwrap();
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn a_request_over_the_timeout_is_a_503_problem() {
    let router =
        slow_router(Duration::from_secs(5)).layer(from_fn_with_state(Duration::from_millis(100), enforce_timeout));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(run_server(listener, router, std::future::pending(), Duration::from_secs(1)));
    let response = raw_get(addr, "/slow").await;
    assert!(response.starts_with("HTTP/1.1 503"), "{response}");
    assert!(response.contains("application/problem+json"), "{response}");
    assert!(response.contains("/problems/timeout"), "{response}");
}
