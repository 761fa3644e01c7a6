//! Basic auth under a flood of wrong passwords: 520 keep-alive connections guessing (more
//! than the 512 connections served at once) do not keep a scraper whose credentials were
//! already verified waiting: each scrape, on a new connection, answers within 2 s.

use std::time::{Duration, Instant};

use crate::helpers::*;

const USER: &str = "prometheus";
const ATTACKERS: usize = 520;
const SCRAPES: usize = 10;

// Two worker threads, so that the scraper's timing is not queued behind the attackers' tasks
// on one thread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verified_credentials_scrape_within_2_s_during_a_password_flood() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("web.yml");
    let yaml = format!("basic_auth_users:\n  {USER}: '{}'\n", bcrypt_hash("s3cret"));
    write_atomically(&path, yaml.as_bytes());
    let app = spawn_exporter(
        &["--demo", "--web.config.file", path.to_str().unwrap()],
        &[],
    )
    .await;
    let metrics = app.url("/metrics");
    // A new connection for every scrape, as after an idle keep-alive connection was closed.
    let scraper = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let scrape = || async {
        let started = Instant::now();
        let response = scraper
            .get(&metrics)
            .basic_auth(USER, Some("s3cret"))
            .send()
            .await;
        (response.map(|r| r.status().as_u16()), started.elapsed())
    };
    // Verified once, so the credentials are in the cache.
    assert_eq!(scrape().await.0.expect("first scrape"), 200);

    let flood = password_flood(&metrics, USER, ATTACKERS, Duration::from_millis(500));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut latencies = Vec::new();
    for i in 0..SCRAPES {
        let (status, took) = scrape().await;
        match status {
            Ok(200) => latencies.push(took),
            other => panic!("scrape {i} during the flood: {other:?} after {took:?}"),
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let statuses = flood.stop().await;
    latencies.sort();
    eprintln!("scrape latencies during the flood: {latencies:?}; the flood saw {statuses:?}");
    let slowest = latencies[latencies.len() - 1];
    assert!(
        slowest < Duration::from_secs(2),
        "slowest scrape {slowest:?}"
    );
    let refused: u64 = [401, 429].iter().filter_map(|s| statuses.get(s)).sum();
    assert!(
        refused >= ATTACKERS as u64,
        "too small a flood: {statuses:?}"
    );
    assert!(!statuses.contains_key(&200), "a guess got in: {statuses:?}");
    assert_eq!(app.get("/healthz").await.0, 200);
}
