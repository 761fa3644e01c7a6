//! SIGTERM and SIGINT stop the binary with exit code 0 within 5 s, even in the middle of a
//! poll that would take much longer, or with a client that never finishes its request.

use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use wiremock::MockServer;

use crate::helpers::*;

/// The contract's bound on shutdown (DESIGN.md: "exit 0 within 5 s").
const SHUTDOWN_BOUND: Duration = Duration::from_secs(5);

/// Starts the binary against an API that takes 30 s to answer and waits until a poll is in
/// flight.
async fn binary_mid_poll() -> (MockServer, BinApp) {
    let mock = MockServer::start().await;
    users_get()
        .respond_with(json_ok(fixture("users-documented.json")).set_delay(Duration::from_secs(30)))
        .mount(&mock)
        .await;
    let base = base_url(&mock);
    let app = spawn_exporter(
        &["--base-url", &base, "--request-timeout", "60s"],
        &[("TESTSIGMA_API_KEY", KEY)],
    )
    .await;
    wait_for(BIN_TIMEOUT, "the first poll to reach the API", || async {
        !mock
            .received_requests()
            .await
            .expect("recording")
            .is_empty()
    })
    .await;
    // A scrape answers at once while the poll is in flight.
    let text = app.scrape().await;
    assert_eq!(polls(&text), 0.0, "{text}");
    (mock, app)
}

/// Sends `signal` and returns the exit code, how long the exit took, and stderr.
async fn stop_with(app: &mut BinApp, signal: i32) -> (Option<i32>, Duration, Vec<String>) {
    let sent = Instant::now();
    app.signal(signal);
    // Generous: the assertion on the elapsed time, not this timeout, checks the contract.
    let (code, stderr) = app.wait_exit(Duration::from_secs(20)).await;
    (code, sent.elapsed(), stderr)
}

#[tokio::test]
async fn sigterm_mid_poll_exits_0_within_5s() {
    let (_mock, mut app) = binary_mid_poll().await;
    let (code, took, stderr) = stop_with(&mut app, libc::SIGTERM).await;
    assert_eq!(code, Some(0), "{stderr:#?}");
    assert!(took < SHUTDOWN_BOUND, "took {took:?}: {stderr:#?}");
    assert!(stderr.iter().any(|l| l.contains("SIGTERM")), "{stderr:#?}");
}

#[tokio::test]
async fn sigint_mid_poll_exits_0_within_5s() {
    let (_mock, mut app) = binary_mid_poll().await;
    let (code, took, stderr) = stop_with(&mut app, libc::SIGINT).await;
    assert_eq!(code, Some(0), "{stderr:#?}");
    assert!(took < SHUTDOWN_BOUND, "took {took:?}: {stderr:#?}");
    assert!(stderr.iter().any(|l| l.contains("SIGINT")), "{stderr:#?}");
}

#[tokio::test]
async fn a_client_that_never_finishes_its_request_does_not_hold_up_shutdown() {
    let (_mock, mut app) = binary_mid_poll().await;
    let mut slow = tokio::net::TcpStream::connect(app.addr)
        .await
        .expect("connect");
    slow.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("send half a request head");
    // Make sure the server has the connection before the signal.
    assert_eq!(app.get("/healthz").await.0, 200);
    let (code, took, stderr) = stop_with(&mut app, libc::SIGTERM).await;
    assert_eq!(code, Some(0), "{stderr:#?}");
    assert!(took < SHUTDOWN_BOUND, "took {took:?}: {stderr:#?}");
    drop(slow);
}
