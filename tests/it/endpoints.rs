//! The HTTP side: landing page, metrics (format, custom path), health and readiness, 404
//! and 405, and the series that exist from the start. Compression is in `exposition`.

use std::time::Duration;

use serde_json::json;
use wiremock::matchers::{query_param, query_param_is_missing};
use wiremock::{MockServer, ResponseTemplate};

use crate::helpers::*;

#[tokio::test]
async fn landing_page_links_to_the_metrics() {
    let (_mock, app) = polled_app(fixture("users-documented.json"), &[]).await;
    let response = app.http.get(app.url("/")).send().await.expect("GET /");
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(content_type.starts_with("text/html"), "{content_type}");
    let body = response.text().await.expect("body");
    assert!(body.contains(r#"href="/metrics""#), "{body}");
    assert!(body.contains("testsigma-exporter"), "{body}");
    assert!(body.contains(env!("CARGO_PKG_VERSION")), "{body}");
    app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn metrics_are_text_format_0_0_4() {
    let (_mock, app) = polled_app(fixture("users-documented.json"), &[]).await;
    // A client that does not ask for gzip by itself, so the plain form is what comes.
    let plain = reqwest::Client::builder()
        .no_gzip()
        .timeout(ANSWER_TIMEOUT)
        .build()
        .expect("client");
    let response = plain.get(app.url("/metrics")).send().await.expect("GET");
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    assert!(response.headers().get("content-encoding").is_none());
    let text = response.text().await.expect("body");
    assert!(text.starts_with("# HELP "), "{text}");
    assert_eq!(value(&text, "testsigma_users"), Some(2.0), "{text}");
    // The served exposition includes the process collector (on Linux).
    if cfg!(target_os = "linux") {
        assert!(text.contains("\nprocess_resident_memory_bytes "), "{text}");
    }
    app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn custom_telemetry_path() {
    let (_mock, app) = polled_app(
        fixture("users-documented.json"),
        &["--web.telemetry-path", "/probe/testsigma"],
    )
    .await;
    let (status, text) = app.get("/probe/testsigma").await;
    assert_eq!(status, 200);
    assert!(text.contains("\ntestsigma_up 1\n"), "{text}");
    assert_eq!(value(&text, "testsigma_users"), Some(2.0), "{text}");
    assert_eq!(app.get("/metrics").await.0, 404);
    let (_, landing) = app.get("/").await;
    assert!(landing.contains(r#"href="/probe/testsigma""#), "{landing}");
    app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn unknown_paths_are_404_and_wrong_methods_405() {
    let (_mock, app) = polled_app(fixture("users-documented.json"), &[]).await;
    for path in ["/nope", "/metrics/extra", "/favicon.ico"] {
        assert_eq!(app.get(path).await.0, 404, "{path}");
    }
    for path in ["/metrics", "/", "/healthz", "/readyz"] {
        let response = app.http.post(app.url(path)).send().await.expect("POST");
        assert_eq!(response.status(), 405, "POST {path}");
    }
    let response = app
        .http
        .delete(app.url("/metrics"))
        .send()
        .await
        .expect("DELETE");
    assert_eq!(response.status(), 405);
    app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn ready_after_the_first_poll_with_every_counter_at_zero_before() {
    let mock = MockServer::start().await;
    // The first poll takes a while, so the exporter can be seen before it.
    users_get()
        .respond_with(json_ok(fixture("users-documented.json")).set_delay(Duration::from_secs(1)))
        .mount(&mock)
        .await;
    let app = spawn_app(settings(&base_url(&mock), &["--request-timeout", "10s"])).await;
    let text = app.scrape().await;
    assert_eq!(app.get("/readyz").await.0, 503);
    assert_eq!(app.get("/healthz").await.0, 200);
    assert_eq!(value(&text, "testsigma_up"), Some(0.0), "{text}");
    for result in ["success", "failure"] {
        let series = format!(r#"testsigma_polls_total{{result="{result}"}}"#);
        assert_eq!(value(&text, &series), Some(0.0), "{series}");
    }
    for reason in REASONS {
        let series = format!(r#"testsigma_poll_errors_total{{reason="{reason}"}}"#);
        assert_eq!(value(&text, &series), Some(0.0), "{series} in\n{text}");
    }
    assert!(!text.contains("testsigma_users"), "{text}");
    let build_info = format!(
        r#"testsigma_exporter_build_info{{revision="{}",version="{}"}}"#,
        env!("TESTSIGMA_EXPORTER_REVISION"),
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(value(&text, &build_info), Some(1.0), "{text}");

    let text = app.wait_polls(1.0).await;
    assert_eq!(value(&text, "testsigma_users"), Some(2.0));
    assert_eq!(app.get("/readyz").await.0, 200);
    app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn api_requests_are_counted_by_code() {
    let mock = MockServer::start().await;
    users_get()
        .and(query_param_is_missing("cursor"))
        .respond_with(json_ok(page(&[("a", "active")], json!("p2"), None)))
        .expect(1)
        .mount(&mock)
        .await;
    // Page 2 fails once, then the retry gets it.
    users_get()
        .and(query_param("cursor", "p2"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .expect(1)
        .mount(&mock)
        .await;
    users_get()
        .and(query_param("cursor", "p2"))
        .respond_with(json_ok(page(&[("b", "inactive")], json!(null), None)))
        .expect(1)
        .mount(&mock)
        .await;
    let app = spawn_app(settings(&base_url(&mock), &["--max-retries", "1"])).await;
    let text = app.wait_polls(1.0).await;
    assert_eq!(value(&text, "testsigma_up"), Some(1.0), "{text}");
    assert_eq!(value(&text, "testsigma_users"), Some(2.0));
    assert_eq!(
        value(&text, r#"testsigma_api_requests_total{code="200"}"#),
        Some(2.0)
    );
    assert_eq!(
        value(&text, r#"testsigma_api_requests_total{code="503"}"#),
        Some(1.0)
    );
    assert_eq!(
        value(&text, r#"testsigma_api_requests_total{code="error"}"#),
        None
    );
    app.stop().await.expect("clean stop");
    mock.verify().await;
}

#[tokio::test]
async fn requests_that_get_no_answer_count_as_error() {
    // A port that was free a moment ago: nothing listens there.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = closed.local_addr().expect("address");
    drop(closed);
    let app = spawn_app(settings(&format!("http://{addr}/api/v1"), &[])).await;
    let text = app.wait_polls(1.0).await;
    assert_eq!(
        value(&text, r#"testsigma_api_requests_total{code="error"}"#),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(&text, r#"testsigma_poll_errors_total{reason="connect"}"#),
        Some(1.0)
    );
    app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn help_texts_say_values_come_from_a_background_poll() {
    let (_mock, app) = polled_app(fixture("users-documented.json"), &[]).await;
    let text = app.scrape().await;
    assert_eq!(value(&text, "testsigma_users"), Some(2.0), "{text}");
    let helps: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("# HELP testsigma_"))
        .filter(|l| !l.starts_with("# HELP testsigma_exporter_build_info "))
        .collect();
    // users, by_status, reported, up, last success, duration, polls, errors, requests.
    assert!(helps.len() >= 9, "{text}");
    for help in helps {
        assert!(
            help.to_lowercase().contains("background poll"),
            "HELP does not mention the background poll: {help}"
        );
    }
    app.stop().await.expect("clean stop");
}
