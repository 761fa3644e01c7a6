//! The API key stays secret: in no log line at any level, error, metric or `Debug` output,
//! even when the API echoes it back; an unreadable key file fails a poll, not the exporter.

use std::time::Duration;

use crate::helpers::*;
use serde_json::json;
use testsigma_exporter::metrics::Metrics;
use testsigma_exporter::poller::Poller;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Fails if `text` holds the key or any 12 characters of it.
fn assert_no_key(text: &str, context: &str) {
    let chars: Vec<char> = KEY.chars().collect();
    for window in chars.windows(12) {
        let piece: String = window.iter().collect();
        assert!(
            !text.contains(&piece),
            "{context}: {piece:?} of the key found in:\n{text}"
        );
    }
}

/// Answers that put the key in every place the exporter might log: the API echoing it in
/// error bodies, in a body that is not JSON, and in next links.
fn echoing_answers() -> Vec<(&'static str, ResponseTemplate)> {
    vec![
        (
            "401 echoing the key",
            ResponseTemplate::new(401)
                .set_body_json(json!({"message": format!("invalid key {KEY}")})),
        ),
        (
            "404 echoing the key",
            ResponseTemplate::new(404)
                .set_body_json(json!({"message": format!("no such key {KEY}")})),
        ),
        (
            "500 echoing the key, retried",
            ResponseTemplate::new(500)
                .set_body_string(format!("<pre>Authorization: Bearer {KEY}</pre>")),
        ),
        (
            "HTML echoing the key across the excerpt's cut",
            ResponseTemplate::new(200)
                .set_body_string(format!("<html>{}{KEY}</html>", "x".repeat(105))),
        ),
        (
            "JSON of another shape echoing the key",
            ResponseTemplate::new(200).set_body_json(json!({"data": KEY})),
        ),
        (
            "the key as next cursor, forever",
            ResponseTemplate::new(200).set_body_json(page(
                &[("user-1", "active")],
                json!(KEY),
                None,
            )),
        ),
        (
            "the key in a foreign next link",
            ResponseTemplate::new(200).set_body_json(page(
                &[("user-1", "active")],
                json!(format!("https://{KEY}.example.com/users?key={KEY}")),
                None,
            )),
        ),
        (
            "a two-page success",
            ResponseTemplate::new(200).set_body_json(page(
                &[("user-1", "active")],
                json!(""),
                Some(1),
            )),
        ),
    ]
}

#[tokio::test]
async fn the_key_is_in_no_output_at_trace_level_in_either_format() {
    for (name, answer) in echoing_answers() {
        for format in ["logfmt", "json"] {
            let mock = MockServer::start().await;
            mount_script(&mock, {
                let answer = answer.clone();
                move |_, _| answer.clone()
            })
            .await;
            let run = run_once(&[
                "--base-url",
                &base_url(&mock),
                "--log.level",
                "trace",
                "--log.format",
                format,
                "--max-retries",
                "1",
                "--max-request-rate",
                "0",
            ])
            .await;
            let (code, output) = (run.code, run.output());
            let context = format!("{name} ({format})");
            assert_no_key(&output, &context);
            // The run did what the scenario meant: the exposition was printed, and where
            // the API echoed the key, the log shows where it was blanked out.
            assert!(output.contains("testsigma_up "), "{context}: {output}");
            if name == "a two-page success" {
                assert_eq!(code, Some(0), "{context}: {output}");
            } else {
                assert_eq!(code, Some(1), "{context}: {output}");
                if !name.starts_with("401") {
                    // (The excerpt may cut the marker short.)
                    assert!(output.contains("[REDACT"), "{context}: {output}");
                }
            }
        }
    }
}

#[tokio::test]
async fn errors_and_debug_output_hold_no_key() {
    let mock = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v1/users"))
        .respond_with(
            ResponseTemplate::new(404)
                .set_body_json(json!({"message": format!("no such key {KEY}")})),
        )
        .mount(&mock)
        .await;
    let settings = settings(&base_url(&mock), &[]);
    assert_no_key(&format!("{settings:?}"), "Settings");
    let poller = Poller::new(&settings, Metrics::new()).expect("poller");
    assert_no_key(&format!("{poller:?}"), "Poller");
    let error = poller.poll().await.expect_err("404 fails the poll");
    assert_no_key(&error.to_string(), "PollError Display");
    assert_no_key(&format!("{error:?}"), "PollError Debug");
    assert!(error.to_string().contains("[REDACTED]"), "{error}");
}

#[tokio::test]
async fn an_unreadable_key_file_fails_a_poll_and_the_exporter_lives_on() {
    let mock = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v1/users"))
        .and(header("authorization", format!("Bearer {KEY}").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("users-documented.json")))
        .mount(&mock)
        .await;
    let dir = std::env::temp_dir().join(format!("testsigma-key-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key_file = dir.join("key");
    let _ = std::fs::remove_file(&key_file);
    let key_arg = key_file.to_str().unwrap();

    // One poll alone: the error names the file and what to do.
    let poller = Poller::new(
        &settings(&base_url(&mock), &["--api-key-file", key_arg]),
        Metrics::new(),
    )
    .expect("poller");
    let error = poller.poll().await.expect_err("no key file");
    assert_eq!(error.reason().as_str(), "auth");
    let message = error.to_string();
    assert!(
        message.contains("cannot read the API key file") && message.contains(key_arg),
        "{message}"
    );

    // The exporter keeps polling and picks the key up once the file appears.
    let app = spawn_app(settings(
        &base_url(&mock),
        &["--api-key-file", key_arg, "--poll-interval", "100ms"],
    ))
    .await;
    let text = app.wait_polls(2.0).await;
    assert_eq!(failed_reasons(&text), ["auth"], "{text}");
    assert_eq!(app.get("/healthz").await.0, 200);
    std::fs::write(&key_file, format!("  {KEY}\n")).unwrap();
    let text = app
        .scrape_until(Duration::from_secs(10), |t| {
            value(t, "testsigma_up") == Some(1.0)
        })
        .await;
    assert_eq!(value(&text, "testsigma_users"), Some(2.0));
    assert_no_key(&text, "/metrics");
    app.stop().await.expect("clean stop");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn plain_http_to_a_remote_host_warns_and_to_loopback_does_not() {
    let mock = MockServer::start().await;
    mount_users(&mock, fixture("users-documented.json")).await;
    let port = mock.address().port();
    // 0.0.0.0 is not a loopback address, yet on Linux a connection to it stays on this
    // machine: the warning is due and no traffic leaves.
    let run = run_once(&["--base-url", &format!("http://0.0.0.0:{port}/api/v1")]).await;
    let output = run.output();
    assert_eq!(run.code, Some(0), "{output}");
    assert!(output.contains("travels unencrypted"), "{output}");

    for base in [base_url(&mock), format!("http://localhost:{port}/api/v1")] {
        let run = run_once(&["--base-url", &base]).await;
        let output = run.output();
        assert_eq!(run.code, Some(0), "{output}");
        assert!(!output.contains("travels unencrypted"), "{output}");
    }
}
