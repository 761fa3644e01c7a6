//! Chaos: an API that fails a random share of requests with mixed faults (5xx, 429, the
//! Testsigma rate-limit 500, resets, stalls, garbage, truncated bodies) across many polls.
//! Whatever happens, what is published is always one complete poll's count, never part of
//! one, and nothing panics.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::helpers::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

/// Users a page.
const PER_PAGE: usize = 10;

/// The account as of generation `g`: its user count (never a multiple of [`PER_PAGE`], so a
/// partial count, which is, can never pass for it) and how many users are inactive.
fn account(g: usize) -> (usize, usize) {
    (23 + 10 * (g % 4), g % 5)
}

/// The accounts served so far, `(users, inactive)` by generation.
type Served = Arc<Mutex<BTreeMap<usize, (usize, usize)>>>;

/// A page of generation `g`. The cursor carries the generation, so a walk sees one account.
fn good_page(g: usize, page: usize) -> Vec<u8> {
    let (total, inactive) = account(g);
    let users: Vec<_> = (page * PER_PAGE..total.min((page + 1) * PER_PAGE))
        .map(|i| {
            let status = if i < inactive { "inactive" } else { "ACTIVE" };
            json!({"id": format!("g{g}-u{i}"), "status": status})
        })
        .collect();
    let next = if (page + 1) * PER_PAGE < total {
        json!(format!("g{g}-p{}", page + 1))
    } else {
        json!(null)
    };
    let body = json!({"data": users, "page_info": {"next": next, "total_count": total}});
    let body = serde_json::to_vec(&body).unwrap();
    http_response(200, &[("content-type", "application/json")], &body)
}

/// The chaotic API: about 40% of requests fail, in one of nine ways.
async fn chaotic_api(seed: u64) -> (RawServer, Served) {
    let rng = Mutex::new(StdRng::seed_from_u64(seed));
    let served: Served = Arc::default();
    let generations = Mutex::new(0usize);
    let server = RawServer::start({
        let served = served.clone();
        move |_, request| {
            let roll = rng.lock().unwrap().random_range(0..100);
            let json = [("content-type", "application/json")];
            match roll {
                0..=5 => RawReply::Bytes(http_response(503, &[], b"<html>Service Unavailable</html>")),
                6..=9 => RawReply::Bytes(http_response(429, &[("retry-after", "0")], b"")),
                10 => RawReply::Bytes(http_response(
                    500,
                    &[("x-tms-api-remaining", "0")],
                    br#"{"message": "rate limit exceeded"}"#,
                )),
                11..=17 => RawReply::Reset,
                18..=21 => RawReply::Hang,
                22..=25 => RawReply::Stream {
                    head: b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 500\r\n\r\n".to_vec(),
                    chunk: br#"{"data": [{"id": "#.to_vec(),
                    every: Duration::from_secs(5),
                    total: 500,
                },
                26..=29 => RawReply::Bytes(
                    b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 400\r\n\r\n{\"data\": [".to_vec(),
                ),
                30..=33 => RawReply::Bytes(http_response(200, &[], b"<html><body>Oops</body></html>")),
                34..=37 => RawReply::Bytes(http_response(200, &json, br#"{"data": {"projects": []}}"#)),
                _ => {
                    let cursor = request
                        .target
                        .split(['?', '&'])
                        .find_map(|kv| kv.strip_prefix("cursor="));
                    let (g, page) = match cursor.and_then(|c| {
                        let (g, p) = c.strip_prefix('g')?.split_once("-p")?;
                        Some((g.parse().ok()?, p.parse().ok()?))
                    }) {
                        Some(at) => at,
                        None => {
                            // A first page starts the next generation of the account.
                            let mut g = generations.lock().unwrap();
                            *g += 1;
                            served.lock().unwrap().insert(*g, account(*g));
                            (*g, 0)
                        }
                    };
                    RawReply::Bytes(good_page(g, page))
                }
            }
        }
    })
    .await;
    (server, served)
}

/// Checks one scrape: either no count yet, or exactly one served account's, consistent
/// across the series. Returns `(successful polls, users)`.
fn check_scrape(text: &str, served: &Served) -> (f64, Option<f64>) {
    let successes = value(text, r#"testsigma_polls_total{result="success"}"#).unwrap_or(0.0);
    let Some(users) = value(text, "testsigma_users") else {
        assert_eq!(successes, 0.0, "a success published no count:\n{text}");
        assert!(by_status(text).is_empty(), "{text}");
        return (successes, None);
    };
    let statuses: BTreeMap<String, f64> = by_status(text).into_iter().collect();
    let inactive = statuses.get("inactive").copied().unwrap_or(-1.0);
    assert_eq!(statuses.values().sum::<f64>(), users, "{text}");
    assert_eq!(statuses.get("active"), Some(&(users - inactive)), "{text}");
    assert_eq!(
        value(text, "testsigma_users_reported"),
        Some(users),
        "{text}"
    );
    let served = served.lock().unwrap();
    assert!(
        served
            .values()
            .any(|(t, i)| *t as f64 == users && *i as f64 == inactive),
        "published {users} users, {inactive} inactive: not any account served ({served:?})"
    );
    (successes, Some(users))
}

/// Scrapes `scrape` until `polls` polls finished, checking each scrape and that the count
/// only ever changes together with the success counter. Returns the last scrape.
async fn watch<F, Fut>(scrape: F, served: &Served, polls_wanted: f64) -> String
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = String>,
{
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut last: Option<(f64, Option<f64>)> = None;
    loop {
        let text = scrape().await;
        let now = check_scrape(&text, served);
        if let Some((successes, users)) = last {
            if successes == now.0 {
                assert_eq!(users, now.1, "the count changed without a successful poll");
            }
            assert!(now.0 >= successes);
        }
        last = Some(now);
        if polls(&text) >= polls_wanted {
            return text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "too few polls:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn published_counts_are_always_whole_under_mixed_faults() {
    let (api, served) = chaotic_api(0x7e57_5167).await;
    let app = spawn_app(settings(
        &api.base_url(),
        &[
            "--poll-interval",
            "10ms",
            "--request-timeout",
            "100ms",
            "--max-retries",
            "2",
        ],
    ))
    .await;
    let text = watch(|| app.scrape(), &served, 25.0).await;
    let successes = value(&text, r#"testsigma_polls_total{result="success"}"#).unwrap();
    let failures = value(&text, r#"testsigma_polls_total{result="failure"}"#).unwrap();
    assert!(successes >= 1.0 && failures >= 1.0, "{text}");
    // Several kinds of failure were met, and survived.
    assert!(failed_reasons(&text).len() >= 2, "{text}");
    assert_eq!(app.get("/healthz").await.0, 200);
    // A panic in the poller would surface here as an error.
    app.stop().await.expect("the poller ran to the end");
}

#[tokio::test]
async fn the_binary_survives_mixed_faults_without_a_panic() {
    let (api, served) = chaotic_api(0x5eed).await;
    let mut bin = spawn_exporter(
        &[
            "--base-url",
            &api.base_url(),
            "--poll-interval",
            "10ms",
            "--request-timeout",
            "100ms",
            "--max-retries",
            "1",
            "--max-request-rate",
            "0",
            "--log.level",
            "debug",
        ],
        &[("TESTSIGMA_API_KEY", KEY)],
    )
    .await;
    watch(|| bin.scrape(), &served, 8.0).await;
    bin.signal(libc::SIGTERM);
    let (code, lines) = bin.wait_exit(Duration::from_secs(10)).await;
    let output = lines.join("\n");
    assert_eq!(code, Some(0), "{output}");
    assert!(!output.contains("panicked"), "{output}");
    assert!(output.contains("poll failed"), "{output}");
}
