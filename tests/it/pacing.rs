//! Pacing against a server that enforces the live API's limit of 10 requests a second, and
//! the `x-tms-api-remaining` header.

use std::time::{Duration, Instant};

use crate::helpers::*;
use wiremock::MockServer;

/// Most requests that arrived within any `window`.
fn busiest(times: &[Instant], window: Duration) -> usize {
    (0..times.len())
        .map(|i| {
            times[i..]
                .iter()
                .take_while(|t| **t - times[i] < window)
                .count()
        })
        .max()
        .unwrap_or(0)
}

#[tokio::test]
async fn a_long_poll_at_the_default_rate_never_trips_a_10_per_second_limit() {
    let mock = MockServer::start().await;
    // Without the quota headers, so that the pacing alone keeps under the limit.
    let log = PagedApi::new(20, 5, 10)
        .without_quota_headers()
        .mount(&mock)
        .await;
    // The default --max-request-rate is 5; the test helper's default of 0 is overridden.
    let (ok, text) = poll_once(settings(&base_url(&mock), &["--max-request-rate", "5"])).await;
    assert!(ok, "{text}");
    assert_eq!(value(&text, "testsigma_users"), Some(100.0));
    let log = log.lock().unwrap().clone();
    assert_eq!(log.len(), 20, "one request a page, none retried");
    assert!(log.iter().all(|(_, tripped)| !tripped), "limit tripped");
    let times: Vec<Instant> = log.iter().map(|(at, _)| *at).collect();
    // Starts are 200 ms apart: never more than 5 in 800 ms, leaving 200 ms for scheduling
    // jitter on a busy machine (at 10 a second there would be 8).
    assert!(busiest(&times, Duration::from_millis(800)) <= 5);
}

#[tokio::test]
async fn unpaced_the_quota_header_alone_keeps_under_the_limit() {
    let mock = MockServer::start().await;
    let log = PagedApi::new(15, 5, 10).mount(&mock).await;
    let (ok, text) = poll_once(settings(&base_url(&mock), &["--max-request-rate", "0"])).await;
    assert!(ok, "{text}");
    assert_eq!(value(&text, "testsigma_users"), Some(75.0));
    let log = log.lock().unwrap().clone();
    assert_eq!(log.len(), 15);
    assert!(log.iter().all(|(_, tripped)| !tripped), "limit tripped");
    assert!(value(&text, "testsigma_api_rate_limit_remaining").is_some());
}

#[tokio::test]
async fn unpaced_and_without_quota_headers_the_same_server_trips_its_limit() {
    // The counterpart of the tests above: the mock does enforce its limit.
    let mock = MockServer::start().await;
    let log = PagedApi::new(20, 5, 10)
        .without_quota_headers()
        .mount(&mock)
        .await;
    let (ok, text) = poll_once(settings(&base_url(&mock), &["--max-request-rate", "0"])).await;
    assert!(!ok);
    assert_eq!(failed_reasons(&text), ["rate_limited"], "{text}");
    assert!(log.lock().unwrap().iter().any(|(_, tripped)| *tripped));
}

#[tokio::test]
async fn a_spent_quota_pauses_a_second_and_the_remaining_header_is_exported() {
    // An API that never sends the header: no series at all rather than a made-up value.
    let mock = mock_api(json_ok(fixture("users-documented.json"))).await;
    let (ok, text) = poll_once(settings(&base_url(&mock), &[])).await;
    assert!(ok, "{text}");
    assert!(
        !text.contains("testsigma_api_rate_limit_remaining "),
        "{text}"
    );

    // Page 1 comes without the quota headers, page 2 says the quota is spent, page 3 that
    // 7 requests are left.
    let mock = MockServer::start().await;
    let arrivals = mount_script(&mock, |n, _| {
        let answer = json_ok(synthetic_page(n, 3, 3));
        let remaining = match n {
            0 => return answer,
            1 => "0",
            _ => "7",
        };
        answer
            .insert_header("x-tms-api-limit", "10")
            .insert_header("x-tms-api-remaining", remaining)
    })
    .await;
    let (ok, text) = poll_once(settings(&base_url(&mock), &[])).await;
    assert!(ok, "{text}");
    assert_eq!(value(&text, "testsigma_users"), Some(9.0));
    let gaps = arrivals.gaps();
    assert_eq!(gaps.len(), 2);
    assert!(gaps[1] >= Duration::from_secs(1), "waited only {gaps:?}");
    assert_eq!(
        value(&text, "testsigma_api_rate_limit_remaining"),
        Some(7.0)
    );
}
