//! What is counted: distinct users across pages, normalised statuses, the label cap, and
//! label sets that follow the API from one poll to the next.

use std::time::Duration;

use serde_json::json;
use wiremock::matchers::{query_param, query_param_is_missing};
use wiremock::MockServer;

use crate::helpers::*;

fn statuses(pairs: &[(&str, f64)]) -> Vec<(String, f64)> {
    pairs.iter().map(|(s, n)| (s.to_string(), *n)).collect()
}

#[tokio::test]
async fn users_seen_on_two_pages_are_counted_once() {
    let mock = MockServer::start().await;
    // An offset page shifted by a user added during the walk repeats "b".
    users_get()
        .and(query_param_is_missing("cursor"))
        .respond_with(json_ok(page(
            &[("a", "active"), ("b", "active")],
            json!("p2"),
            Some(3),
        )))
        .expect(1)
        .mount(&mock)
        .await;
    users_get()
        .and(query_param("cursor", "p2"))
        .respond_with(json_ok(page(
            &[("b", "active"), ("c", "inactive")],
            json!(""),
            Some(3),
        )))
        .expect(1)
        .mount(&mock)
        .await;
    let app = spawn_app(settings(&base_url(&mock), &[])).await;
    let text = app.wait_polls(1.0).await;
    assert_eq!(value(&text, "testsigma_up"), Some(1.0), "{text}");
    assert_eq!(value(&text, "testsigma_users"), Some(3.0));
    assert_eq!(
        by_status(&text),
        statuses(&[("active", 2.0), ("inactive", 1.0)])
    );
    app.stop().await.expect("clean stop");
    mock.verify().await;
}

#[tokio::test]
async fn statuses_are_trimmed_lower_cased_and_missing_is_unknown() {
    let body = json!({"data": [
        {"id": "1", "status": " Active "},
        {"id": "2", "status": "ACTIVE"},
        {"id": "3"},
        {"id": "4", "status": null},
        {"id": "5", "status": ""},
        {"id": "6", "status": "Invited "},
        {"id": "7", "status": "inactive"},
    ]});
    let (mock, app) = polled_app(body, &[]).await;
    let text = app.scrape().await;
    assert_eq!(request_count(&mock).await, 1);
    assert_eq!(value(&text, "testsigma_users"), Some(7.0));
    assert_eq!(
        by_status(&text),
        statuses(&[
            ("active", 2.0),
            ("inactive", 1.0),
            ("invited", 1.0),
            ("unknown", 3.0)
        ])
    );
    app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn active_and_inactive_are_always_present() {
    let (mock, app) = polled_app(json!({"data": []}), &[]).await;
    let text = app.scrape().await;
    assert_eq!(request_count(&mock).await, 1);
    assert_eq!(value(&text, "testsigma_users"), Some(0.0));
    assert_eq!(
        by_status(&text),
        statuses(&[("active", 0.0), ("inactive", 0.0)])
    );
    app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn statuses_past_the_cap_count_as_other_and_totals_add_up() {
    let mut users = vec![];
    for (status, n) in [("a", 5), ("b", 4), ("c", 3), ("active", 1)] {
        users.extend((0..n).map(|i| json!({"id": format!("{status}-{i}"), "status": status})));
    }
    let (mock, app) = polled_app(json!({"data": users}), &["--max-statuses", "4"]).await;
    let text = app.scrape().await;
    assert_eq!(request_count(&mock).await, 1);
    assert_eq!(value(&text, "testsigma_users"), Some(13.0));
    let counted = by_status(&text);
    assert_eq!(
        counted,
        statuses(&[
            ("a", 5.0),
            ("active", 1.0),
            ("inactive", 0.0),
            ("other", 7.0)
        ])
    );
    assert_eq!(counted.iter().map(|(_, n)| n).sum::<f64>(), 13.0);
    app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn a_status_that_vanishes_is_dropped() {
    let body = page(&[("1", "active"), ("2", "suspended")], json!(""), None);
    let (mock, app) = polled_app(body, &["--poll-interval", "100ms"]).await;
    let text = app.scrape().await;
    assert_eq!(
        by_status(&text),
        statuses(&[("active", 1.0), ("inactive", 0.0), ("suspended", 1.0)])
    );
    // From now on the API answers without "suspended" (a higher priority wins).
    users_get()
        .respond_with(json_ok(page(
            &[("1", "active"), ("2", "inactive")],
            json!(""),
            None,
        )))
        .with_priority(1)
        .mount(&mock)
        .await;
    let text = app
        .scrape_until(Duration::from_secs(10), |t| {
            !by_status(t).iter().any(|(s, _)| s == "suspended")
        })
        .await;
    assert_eq!(value(&text, "testsigma_up"), Some(1.0), "{text}");
    assert_eq!(
        by_status(&text),
        statuses(&[("active", 1.0), ("inactive", 1.0)])
    );
    app.stop().await.expect("clean stop");
}
