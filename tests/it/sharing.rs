//! One key shared by several exporters: the API's budget of 10 requests a second belongs to
//! the key, and each exporter slows down on the `x-tms-api-*` headers so that together they
//! stay under it; one exporter alone keeps `--max-request-rate`.

use std::time::Duration;

use wiremock::MockServer;

use crate::helpers::*;

/// The flags an operator would leave at their defaults (the test helper's are faster).
const DEFAULTS: [&str; 4] = ["--max-request-rate", "5", "--max-retries", "3"];
/// Pages each exporter walks, of 5 users each: three exporters send over 100 requests, so
/// that the 1% allowed is at least one refused request (and the run about 20 s).
const PAGES: usize = 34;

#[tokio::test]
async fn three_exporters_on_one_key_stay_under_its_limit_without_a_failed_poll() {
    let mock = MockServer::start().await;
    let log = PagedApi::new(PAGES, 5, 10).mount(&mock).await;
    let poll = || poll_once(settings(&base_url(&mock), &DEFAULTS));
    let (a, b, c) = tokio::join!(poll(), poll(), poll());
    let log = log.lock().unwrap().clone();
    let refused = log.iter().filter(|(_, tripped)| *tripped).count();
    for (ok, text) in [&a, &b, &c] {
        assert!(
            *ok,
            "a poll failed ({refused} of {} refused):\n{text}",
            log.len()
        );
        assert_eq!(value(text, "testsigma_users"), Some((PAGES * 5) as f64));
    }
    // Each page once, plus the retries of refused requests.
    assert_eq!(log.len(), 3 * PAGES + refused);
    // At most 1% refused, counted in whole requests: one of 102 or more (none allowed, with
    // fewer than 100 requests, would make one unlucky refusal fail the test).
    assert!(log.len() >= 100);
    assert!(
        refused <= log.len() / 100,
        "{refused} of {} requests refused",
        log.len()
    );
    // The pace each exporter chose is shown, and at least one had to go below the maximum.
    let paces: Vec<f64> = [&a, &b, &c]
        .iter()
        .map(|(_, text)| value(text, "testsigma_api_request_rate_limit").expect("pace gauge"))
        .collect();
    assert!(paces.iter().all(|p| *p > 0.0 && *p <= 5.0), "{paces:?}");
    assert!(paces.iter().any(|p| *p < 5.0), "{paces:?}");
}

#[tokio::test]
async fn one_exporter_alone_polls_at_max_request_rate() {
    let mock = MockServer::start().await;
    let log = PagedApi::new(PAGES, 5, 10).mount(&mock).await;
    let (ok, text) = poll_once(settings(&base_url(&mock), &DEFAULTS)).await;
    assert!(ok, "{text}");
    let log = log.lock().unwrap().clone();
    assert_eq!(log.len(), PAGES, "one request a page, none refused");
    assert!(log.iter().all(|(_, tripped)| !tripped));
    assert_eq!(value(&text, "testsigma_api_request_rate_limit"), Some(5.0));
    // Never faster than 5 a second: 33 gaps of 200 ms at least (a slow machine only adds).
    // That a lone exporter never slows down is asserted on the pacer with paused time
    // (`alone_the_pace_stays_at_the_maximum`) and measured by scripts/bench.sh, not timed here.
    let took = log[PAGES - 1].0 - log[0].0;
    assert!(
        took >= Duration::from_millis(190 * (PAGES as u64 - 1)),
        "{took:?}"
    );
}
