//! All or nothing: a poll that fails part way publishes nothing, and the last good counts
//! stay; before the first success there are no user counts at all.

use std::time::Duration;

use serde_json::json;
use wiremock::matchers::{query_param, query_param_is_missing};
use wiremock::{MockServer, ResponseTemplate};

use crate::helpers::*;

/// A first good poll over two pages, then every poll fails on page 2 with `broken`: the
/// counts of the good poll stay, and the failure is counted under `reason`.
async fn last_good_counts_stay(broken: ResponseTemplate, reason: &str) {
    let mock = MockServer::start().await;
    users_get()
        .and(query_param_is_missing("cursor"))
        .respond_with(json_ok(page(
            &[("a", "active"), ("b", "active"), ("c", "invited")],
            json!("p2"),
            Some(4),
        )))
        .mount(&mock)
        .await;
    users_get()
        .and(query_param("cursor", "p2"))
        .respond_with(json_ok(page(&[("d", "inactive")], json!(""), Some(4))))
        .mount(&mock)
        .await;
    let app = spawn_app(settings(&base_url(&mock), &["--poll-interval", "100ms"])).await;
    let good = app
        .scrape_until(Duration::from_secs(10), |t| {
            value(t, r#"testsigma_polls_total{result="success"}"#) >= Some(1.0)
        })
        .await;
    let expected = by_status(&good);
    assert_eq!(
        expected,
        [
            ("active".to_owned(), 2.0),
            ("inactive".to_owned(), 1.0),
            ("invited".to_owned(), 1.0)
        ]
    );

    // From now on page 1 differs (partial counts would show "suspended") and page 2 breaks.
    users_get()
        .and(query_param_is_missing("cursor"))
        .respond_with(json_ok(page(
            &[("x", "suspended"), ("y", "suspended"), ("a", "active")],
            json!("p2"),
            Some(9),
        )))
        .with_priority(1)
        .mount(&mock)
        .await;
    users_get()
        .and(query_param("cursor", "p2"))
        .respond_with(broken)
        .with_priority(1)
        .mount(&mock)
        .await;
    let failure = r#"testsigma_polls_total{result="failure"}"#;
    let reason_series = format!(r#"testsigma_poll_errors_total{{reason="{reason}"}}"#);
    let text = app
        .scrape_until(Duration::from_secs(10), |t| {
            assert!(!t.contains("suspended"), "partial counts published:\n{t}");
            value(t, failure) >= Some(2.0)
        })
        .await;
    assert_eq!(value(&text, "testsigma_up"), Some(0.0), "{text}");
    assert_eq!(value(&text, "testsigma_users"), Some(4.0));
    assert_eq!(value(&text, "testsigma_users_reported"), Some(4.0));
    assert_eq!(by_status(&text), expected);
    assert_eq!(value(&text, &reason_series), value(&text, failure));
    let last_success = value(&text, "testsigma_last_successful_poll_timestamp_seconds");
    let successes = value(&text, r#"testsigma_polls_total{result="success"}"#);
    assert!(last_success.is_some());

    // Later failures change nothing but their counters.
    let failures = value(&text, failure).expect("failures counted");
    let later = app
        .scrape_until(Duration::from_secs(10), |t| {
            value(t, failure) >= Some(failures + 1.0)
        })
        .await;
    assert_eq!(value(&later, "testsigma_users"), Some(4.0));
    assert_eq!(by_status(&later), expected);
    assert_eq!(
        value(&later, "testsigma_last_successful_poll_timestamp_seconds"),
        last_success
    );
    assert_eq!(
        value(&later, r#"testsigma_polls_total{result="success"}"#),
        successes
    );
    assert_eq!(value(&later, &reason_series), value(&later, failure));
    // Still ready: the counts served are real, if old.
    assert_eq!(app.get("/readyz").await.0, 200);
    app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn garbage_on_page_two_keeps_the_last_good_counts() {
    last_good_counts_stay(
        ResponseTemplate::new(200).set_body_string("<html><body>Bad Gateway</body></html>"),
        "decode",
    )
    .await;
}

#[tokio::test]
async fn not_found_on_page_two_keeps_the_last_good_counts() {
    last_good_counts_stay(
        ResponseTemplate::new(404).set_body_json(json!({"message": "Not found"})),
        "http",
    )
    .await;
}

#[tokio::test]
async fn before_the_first_success_there_are_no_user_counts() {
    let mock = mock_api(ResponseTemplate::new(401).set_body_json(fixture("error-401.json"))).await;
    let app = spawn_app(settings(&base_url(&mock), &["--poll-interval", "100ms"])).await;
    let text = app.wait_polls(2.0).await;
    assert!(!text.contains("testsigma_users"), "{text}");
    assert!(
        !text.contains("testsigma_last_successful_poll_timestamp_seconds"),
        "{text}"
    );
    assert_eq!(value(&text, "testsigma_up"), Some(0.0));
    assert_eq!(
        value(&text, r#"testsigma_polls_total{result="success"}"#),
        Some(0.0)
    );
    assert_eq!(
        value(&text, r#"testsigma_poll_errors_total{reason="auth"}"#),
        value(&text, r#"testsigma_polls_total{result="failure"}"#)
    );
    assert_eq!(app.get("/readyz").await.0, 503);
    assert_eq!(app.get("/healthz").await.0, 200);
    app.stop().await.expect("clean stop");
}
