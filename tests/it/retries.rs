//! Retries and failure reasons: which answers are tried again, how long the client waits
//! first, and the `reason` a poll that gives up is counted under. What the failure's log
//! line advises is in `logs`.

use std::time::{Duration, SystemTime};

use crate::helpers::*;
use wiremock::{MockServer, ResponseTemplate};

fn ok_page() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(fixture("users-documented.json"))
}

#[tokio::test]
async fn server_errors_are_retried_until_one_succeeds() {
    let mock = MockServer::start().await;
    let arrivals = mount_script(&mock, |n, _| match n {
        0 => ResponseTemplate::new(503),
        1 => ResponseTemplate::new(502).set_body_string("<html><body>Bad Gateway</body></html>"),
        _ => ok_page(),
    })
    .await;
    let (ok, text) = poll_once(settings(&base_url(&mock), &["--max-retries", "2"])).await;
    assert!(ok, "{text}");
    assert_eq!(arrivals.len(), 3);
    assert_eq!(value(&text, "testsigma_users"), Some(2.0));
    for code in ["503", "502", "200"] {
        let series = format!("testsigma_api_requests_total{{code=\"{code}\"}}");
        assert_eq!(value(&text, &series), Some(1.0), "{series} in {text}");
    }
}

#[tokio::test]
async fn server_errors_past_max_retries_fail_the_poll_as_http() {
    let mock = MockServer::start().await;
    let arrivals = mount_script(&mock, |_, _| ResponseTemplate::new(503)).await;
    let (ok, text) = poll_once(settings(&base_url(&mock), &["--max-retries", "2"])).await;
    assert!(!ok);
    assert_eq!(arrivals.len(), 3, "one try and two retries");
    assert_eq!(failed_reasons(&text), ["http"], "{text}");
    assert_eq!(value(&text, "testsigma_up"), Some(0.0));
    assert!(!text.contains("\ntestsigma_users "), "{text}");
}

#[tokio::test]
async fn client_errors_and_bad_bodies_fail_at_once_with_their_reason() {
    let cases: Vec<(&str, ResponseTemplate, &str)> = vec![
        (
            "401",
            ResponseTemplate::new(401).set_body_json(fixture("error-401.json")),
            "auth",
        ),
        ("403", ResponseTemplate::new(403), "auth"),
        ("404", ResponseTemplate::new(404), "http"),
        (
            "400",
            ResponseTemplate::new(400).set_body_json(fixture("error-400.json")),
            "http",
        ),
        ("422", ResponseTemplate::new(422), "http"),
        (
            "200 HTML",
            ResponseTemplate::new(200)
                .set_body_string("<!DOCTYPE html><html><body>Maintenance</body></html>"),
            "decode",
        ),
        (
            "200 other shape",
            ResponseTemplate::new(200).set_body_json(serde_json::json!({"data": {"projects": []}})),
            "decode",
        ),
        (
            "200 truncated JSON",
            ResponseTemplate::new(200).set_body_string("{\"data\": [{\"id\": \"a\""),
            "decode",
        ),
    ];
    for (name, answer, reason) in cases {
        let mock = MockServer::start().await;
        let arrivals = mount_script(&mock, move |_, _| answer.clone()).await;
        let (ok, text) = poll_once(settings(&base_url(&mock), &["--max-retries", "3"])).await;
        assert!(!ok, "{name}");
        assert_eq!(arrivals.len(), 1, "{name}: not retried");
        assert_eq!(failed_reasons(&text), [reason], "{name}: {text}");
    }
}

#[tokio::test]
async fn retry_after_in_seconds_is_waited_for() {
    let mock = MockServer::start().await;
    let arrivals = mount_script(&mock, |n, _| match n {
        0 => ResponseTemplate::new(429).insert_header("retry-after", "1"),
        _ => ok_page(),
    })
    .await;
    let (ok, text) = poll_once(settings(&base_url(&mock), &["--max-retries", "1"])).await;
    assert!(ok, "{text}");
    let gaps = arrivals.gaps();
    assert_eq!(gaps.len(), 1);
    assert!(gaps[0] >= Duration::from_secs(1), "waited only {gaps:?}");
}

#[tokio::test]
async fn retry_after_as_an_http_date_is_waited_for() {
    let mock = MockServer::start().await;
    let arrivals = mount_script(&mock, |n, _| match n {
        0 => {
            // HTTP dates have whole seconds: this is 1 to 2 s from now.
            let when = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(2));
            ResponseTemplate::new(429).insert_header("retry-after", when.as_str())
        }
        _ => ok_page(),
    })
    .await;
    let (ok, text) = poll_once(settings(&base_url(&mock), &["--max-retries", "1"])).await;
    assert!(ok, "{text}");
    let gaps = arrivals.gaps();
    assert!(gaps[0] >= Duration::from_secs(1), "waited only {gaps:?}");
}

#[tokio::test]
async fn the_testsigma_rate_limit_500_waits_at_least_a_second() {
    let mock = MockServer::start().await;
    let arrivals = mount_script(&mock, |n, _| match n {
        0 => rate_limit_500(),
        _ => ok_page(),
    })
    .await;
    let (ok, text) = poll_once(settings(&base_url(&mock), &["--max-retries", "1"])).await;
    assert!(ok, "{text}");
    let gaps = arrivals.gaps();
    assert!(gaps[0] >= Duration::from_secs(1), "waited only {gaps:?}");
    assert_eq!(
        value(&text, r#"testsigma_api_requests_total{code="500"}"#),
        Some(1.0)
    );
}

#[tokio::test]
async fn rate_limits_past_max_retries_count_as_rate_limited() {
    for (name, answer, retries) in [
        (
            "429",
            ResponseTemplate::new(429).insert_header("retry-after", "0"),
            "2",
        ),
        ("Testsigma 500", rate_limit_500(), "0"),
    ] {
        let mock = MockServer::start().await;
        let arrivals = mount_script(&mock, move |_, _| answer.clone()).await;
        let (ok, text) = poll_once(settings(&base_url(&mock), &["--max-retries", retries])).await;
        assert!(!ok, "{name}");
        assert_eq!(
            arrivals.len(),
            1 + retries.parse::<usize>().unwrap(),
            "{name}"
        );
        assert_eq!(failed_reasons(&text), ["rate_limited"], "{name}: {text}");
    }
}

#[tokio::test]
async fn timeouts_are_retried_then_fail_as_timeout() {
    let mock = MockServer::start().await;
    let arrivals = mount_script(&mock, |_, _| ok_page().set_delay(Duration::from_secs(3))).await;
    let (ok, text) = poll_once(settings(
        &base_url(&mock),
        &["--max-retries", "1", "--request-timeout", "300ms"],
    ))
    .await;
    assert!(!ok);
    assert_eq!(arrivals.len(), 2);
    assert_eq!(failed_reasons(&text), ["timeout"], "{text}");
    assert_eq!(
        value(&text, r#"testsigma_api_requests_total{code="error"}"#),
        Some(2.0)
    );
}

#[tokio::test]
async fn a_body_that_stalls_half_way_times_out() {
    // The head comes at once; the body never finishes. The request timeout covers the body.
    let server = RawServer::start(|_, _| RawReply::Stream {
        head: b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n"
            .to_vec(),
        chunk: br#"{"data": ["#.to_vec(),
        every: Duration::from_secs(30),
        total: 1000,
    })
    .await;
    let (ok, text) = poll_once(settings(
        &server.base_url(),
        &["--max-retries", "1", "--request-timeout", "500ms"],
    ))
    .await;
    assert!(!ok);
    assert_eq!(server.requests().len(), 2, "timed out and retried once");
    assert_eq!(failed_reasons(&text), ["timeout"], "{text}");
}

#[tokio::test]
async fn connection_resets_are_retried() {
    let server = RawServer::start(|n, _| match n {
        0 => RawReply::Reset,
        _ => {
            let body = serde_json::to_vec(&fixture("users-documented.json")).unwrap();
            RawReply::Bytes(http_response(
                200,
                &[("content-type", "application/json")],
                &body,
            ))
        }
    })
    .await;
    let (ok, text) = poll_once(settings(&server.base_url(), &["--max-retries", "1"])).await;
    assert!(ok, "{text}");
    assert_eq!(server.requests().len(), 2);
    assert_eq!(value(&text, "testsigma_users"), Some(2.0));
}

#[tokio::test]
async fn an_unreachable_api_fails_as_connect() {
    // A port that was just free: nothing listens there.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let (ok, text) = poll_once(settings(
        &format!("http://127.0.0.1:{port}/api/v1"),
        &["--max-retries", "1"],
    ))
    .await;
    assert!(!ok);
    assert_eq!(failed_reasons(&text), ["connect"], "{text}");
    assert_eq!(
        value(&text, r#"testsigma_api_requests_total{code="error"}"#),
        Some(2.0)
    );
}

#[tokio::test]
async fn shutdown_cancels_a_retry_after_wait() {
    let mock = MockServer::start().await;
    let arrivals = mount_script(&mock, |_, _| {
        ResponseTemplate::new(429).insert_header("retry-after", "60")
    })
    .await;
    let app = spawn_app(settings(&base_url(&mock), &["--max-retries", "3"])).await;
    wait_for(Duration::from_secs(10), "the first request", || async {
        arrivals.len() > 0
    })
    .await;
    // The client now waits 60 s before its retry; stopping must not wait with it.
    tokio::time::timeout(Duration::from_secs(3), app.stop())
        .await
        .expect("stop returns within 3 s though a 60 s wait is pending")
        .expect("clean stop");
    assert_eq!(arrivals.len(), 1);
}
