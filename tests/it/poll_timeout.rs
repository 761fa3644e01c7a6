//! `--poll-timeout`: a whole poll, every page, retry and wait included, that takes longer
//! fails as `timeout`, however quickly each single answer comes.

use std::time::Duration;

use wiremock::MockServer;

use crate::helpers::*;

#[tokio::test]
async fn a_poll_that_outlasts_poll_timeout_fails_as_timeout_and_up_goes_to_0() {
    // 1000 pages, each answered within --request-timeout but 100 ms late: a poll would
    // take over 100 s.
    let mock = MockServer::start().await;
    let arrivals = mount_script(&mock, |n, _| {
        json_ok(synthetic_page(n, 1000, 2)).set_delay(Duration::from_millis(100))
    })
    .await;
    let app = spawn_app(settings(
        &base_url(&mock),
        &["--poll-timeout", "1s", "--poll-interval", "1h"],
    ))
    .await;
    let text = app
        .scrape_until(Duration::from_secs(20), |t| polls(t) >= 1.0)
        .await;
    assert_eq!(failed_reasons(&text), ["timeout"], "{text}");
    assert_eq!(value(&text, "testsigma_up"), Some(0.0), "{text}");
    assert!(!text.contains("testsigma_users "), "{text}");
    let duration = value(&text, "testsigma_poll_duration_seconds").expect("duration");
    assert!(duration >= 1.0, "{text}");
    // The walk stopped there: no request after the deadline.
    let sent = arrivals.len();
    assert!((2..1000).contains(&sent), "{sent} requests");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(arrivals.len(), sent, "requests after the poll failed");
    app.stop().await.expect("clean stop");

    // Every answer on time and a short poll: the deadline does not get in the way.
    let mock = MockServer::start().await;
    mount_script(&mock, |n, _| json_ok(synthetic_page(n, 3, 2))).await;
    let (ok, text) = poll_once(settings(&base_url(&mock), &["--poll-timeout", "5s"])).await;
    assert!(ok, "{text}");
    assert_eq!(value(&text, "testsigma_users"), Some(6.0));
}
