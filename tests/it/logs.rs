//! Logs on stderr: logfmt by default or JSON, one line per poll with what it counted, and
//! failure lines that say what to do. That the key is never logged is in `secrets`.

use std::time::Duration;

use serde_json::{json, Value};
use wiremock::matchers::{query_param, query_param_is_missing};
use wiremock::{MockServer, ResponseTemplate};

use crate::helpers::*;

/// A two-page API (3 users) behind the test key.
async fn two_page_api() -> MockServer {
    let mock = MockServer::start().await;
    users_get()
        .and(query_param_is_missing("cursor"))
        .respond_with(json_ok(page(
            &[("a", "active"), ("b", "inactive")],
            json!("p2"),
            Some(3),
        )))
        .mount(&mock)
        .await;
    users_get()
        .and(query_param("cursor", "p2"))
        .respond_with(json_ok(page(&[("c", "active")], json!(""), Some(3))))
        .mount(&mock)
        .await;
    mock
}

/// Splits a logfmt line into its key/value pairs, or `None` if it is not logfmt.
fn logfmt(line: &str) -> Option<Vec<(String, String)>> {
    let mut pairs = vec![];
    let mut rest = line.trim_end();
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=')?;
        if key.is_empty() || key.contains([' ', '"']) {
            return None;
        }
        let (value, after) = if let Some(quoted) = after.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let end = loop {
                match chars.next()? {
                    (_, '\\') => value.push(chars.next()?.1),
                    (i, '"') => break i + 1,
                    (_, c) => value.push(c),
                }
            };
            (value, &quoted[end..])
        } else {
            let end = after.find(' ').unwrap_or(after.len());
            (after[..end].to_owned(), &after[end..])
        };
        if !(after.is_empty() || after.starts_with(' ')) {
            return None;
        }
        pairs.push((key.to_owned(), value));
        rest = after.trim_start();
    }
    (!pairs.is_empty()).then_some(pairs)
}

fn field<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

#[tokio::test]
async fn json_logs_have_one_line_per_poll_with_its_numbers() {
    let mock = two_page_api().await;
    let base = base_url(&mock);
    let run = run_once(&["--log.format", "json", "--base-url", &base]).await;
    assert_eq!(run.code, Some(0), "{run:?}");
    let lines: Vec<Value> = run
        .stderr_lines()
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let polls: Vec<&Value> = lines
        .iter()
        .filter(|l| l["message"] == "poll succeeded")
        .collect();
    assert_eq!(polls.len(), 1, "{lines:#?}");
    let poll = polls[0];
    assert_eq!(poll["users"], 3, "{poll}");
    assert_eq!(poll["pages"], 2, "{poll}");
    assert!(poll["duration_ms"].is_u64(), "{poll}");
    assert_eq!(poll["level"], "INFO");
}

#[tokio::test]
async fn json_logs_of_a_running_exporter_are_all_json() {
    let mock = two_page_api().await;
    let base = base_url(&mock);
    let mut app = spawn_exporter(
        &["--log.format", "json", "--base-url", &base],
        &[("TESTSIGMA_API_KEY", KEY)],
    )
    .await;
    app.wait_polls(1.0).await;
    app.signal(libc::SIGTERM);
    let (code, stderr) = app.wait_exit(BIN_TIMEOUT).await;
    assert_eq!(code, Some(0), "{stderr:#?}");
    let lines: Vec<Value> = stderr
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let listening = lines
        .iter()
        .find(|l| l["message"] == "testsigma-exporter listening")
        .expect("a start-up line");
    assert_eq!(listening["address"], app.addr.to_string());
    // One poll (the interval is a minute), one line for it.
    let polls = lines
        .iter()
        .filter(|l| l["message"] == "poll succeeded")
        .count();
    assert_eq!(polls, 1, "{lines:#?}");
}

#[tokio::test]
async fn logs_are_logfmt_by_default() {
    let mock = two_page_api().await;
    let base = base_url(&mock);
    let run = run_once(&["--base-url", &base]).await;
    assert_eq!(run.code, Some(0), "{run:?}");
    let lines = run.stderr_lines();
    assert!(!lines.is_empty());
    let mut polls = 0;
    for line in lines {
        let pairs = logfmt(line).unwrap_or_else(|| panic!("not logfmt: {line}"));
        assert!(field(&pairs, "ts").is_some(), "{line}");
        assert!(field(&pairs, "level").is_some(), "{line}");
        if field(&pairs, "message") == Some("poll succeeded") {
            polls += 1;
            assert_eq!(field(&pairs, "users"), Some("3"), "{line}");
            assert_eq!(field(&pairs, "pages"), Some("2"), "{line}");
            let ms = field(&pairs, "duration_ms").expect("duration_ms");
            assert!(ms.parse::<u64>().is_ok(), "{line}");
        }
    }
    assert_eq!(polls, 1, "{}", run.stderr);
}

/// The one "poll failed" line of a `--once` run against `mock`, as logfmt pairs.
async fn failure_line(mock: &MockServer, key: &str) -> Vec<(String, String)> {
    let base = base_url(mock);
    let run = run_exporter(
        &["--once", "--base-url", &base, "--max-retries", "0"],
        &[("TESTSIGMA_API_KEY", key)],
    )
    .await;
    assert_eq!(run.code, Some(1), "{run:?}");
    let failed: Vec<_> = run
        .stderr_lines()
        .into_iter()
        .filter_map(logfmt)
        .filter(|pairs| field(pairs, "message").is_some_and(|m| m.starts_with("poll failed")))
        .collect();
    assert_eq!(failed.len(), 1, "{}", run.stderr);
    failed.into_iter().next().expect("one line")
}

#[tokio::test]
async fn poll_failures_log_what_to_do() {
    let html = "<html><body>Bad Gateway</body></html>";
    // What came instead of a page is shown, cut short.
    let excerpt = format!("body starts with {html:?}");
    for (answer, key, reason, advice) in [
        (
            ResponseTemplate::new(401).set_body_json(fixture("error-401.json")),
            "not-the-key",
            "auth",
            &["TESTSIGMA_API_KEY", "--api-key-file"][..],
        ),
        (ResponseTemplate::new(404), KEY, "http", &["--base-url"]),
        (
            ResponseTemplate::new(400).set_body_json(fixture("error-400.json")),
            KEY,
            "http",
            &["API says"],
        ),
        (
            rate_limit_500(),
            KEY,
            "rate_limited",
            &["--max-request-rate"],
        ),
        (
            ResponseTemplate::new(200).set_body_string(html),
            KEY,
            "decode",
            &[excerpt.as_str()],
        ),
    ] {
        let mock = mock_api(answer).await;
        let line = failure_line(&mock, key).await;
        assert_eq!(field(&line, "level"), Some("error"), "{line:?}");
        assert_eq!(field(&line, "reason"), Some(reason), "{line:?}");
        let error = field(&line, "error").expect("error field");
        for advice in advice {
            assert!(error.contains(advice), "{advice:?} not in {error:?}");
        }
    }
}

#[tokio::test]
async fn polls_longer_than_the_interval_are_warned_about() {
    let mock = MockServer::start().await;
    let slow = json_ok(fixture("users-documented.json")).set_delay(Duration::from_millis(400));
    users_get().respond_with(slow).mount(&mock).await;
    let base = base_url(&mock);
    let mut app = spawn_exporter(
        &[
            "--log.format",
            "json",
            "--base-url",
            &base,
            "--poll-interval",
            "100ms",
        ],
        &[("TESTSIGMA_API_KEY", KEY)],
    )
    .await;
    app.wait_polls(2.0).await;
    app.signal(libc::SIGTERM);
    let (code, stderr) = app.wait_exit(BIN_TIMEOUT).await;
    assert_eq!(code, Some(0), "{stderr:#?}");
    let warning = stderr
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("the poll took longer"))
        })
        .unwrap_or_else(|| panic!("no warning: {stderr:#?}"));
    assert_eq!(warning["level"], "WARN");
    assert_eq!(warning["poll_interval"], "100ms");
    assert!(warning["duration_ms"].as_u64().unwrap() >= 400, "{warning}");
}
