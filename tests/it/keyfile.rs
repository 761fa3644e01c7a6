//! `--api-key-file` is read afresh before every poll: a rotated key applies without a
//! restart, and a missing or empty file fails only that poll (`auth`).

use std::time::Duration;

use serde_json::json;
use wiremock::matchers::bearer_token;
use wiremock::MockServer;

use crate::helpers::*;

const FAILURE: &str = r#"testsigma_polls_total{result="failure"}"#;
const SUCCESS: &str = r#"testsigma_polls_total{result="success"}"#;
const AUTH: &str = r#"testsigma_poll_errors_total{reason="auth"}"#;

/// Only `keys` open the mock API; any other key gets a 404 and fails the poll.
async fn api_for(keys: &[&str]) -> MockServer {
    let mock = MockServer::start().await;
    for key in keys {
        users_get()
            .and(bearer_token(*key))
            .respond_with(json_ok(page(
                &[("1", "active"), ("2", "inactive")],
                json!(""),
                None,
            )))
            .mount(&mock)
            .await;
    }
    mock
}

#[tokio::test]
async fn a_rotated_key_file_is_used_from_the_next_poll() {
    let scratch = tempfile::tempdir().expect("temporary directory");
    let key_file = scratch.path().join("api-key");
    write_atomically(&key_file, b"key-A\n");
    let mock = api_for(&["key-A", "key-B"]).await;
    let app = spawn_app(settings(
        &base_url(&mock),
        &[
            "--api-key-file",
            key_file.to_str().expect("UTF-8 path"),
            "--poll-interval",
            "100ms",
        ],
    ))
    .await;
    app.scrape_until(Duration::from_secs(10), |t| value(t, SUCCESS) >= Some(1.0))
        .await;
    assert!(requests_with_key(&mock, "key-A").await >= 1);
    assert_eq!(requests_with_key(&mock, "key-B").await, 0);

    write_atomically(&key_file, b"  key-B  \n");
    wait_for(Duration::from_secs(10), "a request with key B", || async {
        requests_with_key(&mock, "key-B").await >= 1
    })
    .await;
    // Every poll that starts from now on uses B.
    let with_a = requests_with_key(&mock, "key-A").await;
    let with_b = requests_with_key(&mock, "key-B").await;
    wait_for(
        Duration::from_secs(10),
        "two more polls with key B",
        || async { requests_with_key(&mock, "key-B").await >= with_b + 2 },
    )
    .await;
    assert_eq!(requests_with_key(&mock, "key-A").await, with_a);
    let text = app.scrape().await;
    assert_eq!(value(&text, FAILURE), Some(0.0), "{text}");
    assert!(value(&text, SUCCESS) >= Some(3.0), "{text}");
    assert_eq!(value(&text, "testsigma_up"), Some(1.0));
    app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn an_unreadable_key_file_fails_the_poll_and_the_exporter_recovers() {
    let scratch = tempfile::tempdir().expect("temporary directory");
    let key_path = scratch.path().join("api-key");
    let key_arg = key_path.to_str().expect("UTF-8 path");
    let mock = api_for(&["key-C"]).await;
    let app = spawn_app(settings(
        &base_url(&mock),
        &["--api-key-file", key_arg, "--poll-interval", "100ms"],
    ))
    .await;

    // No file yet: each poll fails as `auth`, and nothing is sent without a key.
    let text = app
        .scrape_until(Duration::from_secs(10), |t| value(t, FAILURE) >= Some(2.0))
        .await;
    assert_eq!(value(&text, AUTH), value(&text, FAILURE), "{text}");
    assert_eq!(failed_reasons(&text), ["auth"], "{text}");
    assert_eq!(value(&text, SUCCESS), Some(0.0));
    assert!(!text.contains("testsigma_users"), "{text}");
    assert_eq!(app.get("/readyz").await.0, 503);
    assert_eq!(app.get("/healthz").await.0, 200);
    assert_eq!(request_count(&mock).await, 0, "requests sent without a key");
    // The log line names the file.
    let run = run_exporter(
        &[
            "--once",
            "--base-url",
            &base_url(&mock),
            "--api-key-file",
            key_arg,
        ],
        &[],
    )
    .await;
    assert_eq!(run.code, Some(1), "{run:?}");
    assert_eq!(value(&run.stdout, AUTH), Some(1.0), "{}", run.stdout);
    assert!(
        run.stderr.contains("cannot read the API key file") && run.stderr.contains(key_arg),
        "{}",
        run.stderr
    );

    // An empty file is no key either.
    write_atomically(&key_path, b" \n");
    let failures = value(&text, FAILURE).expect("failures");
    let text = app
        .scrape_until(Duration::from_secs(10), |t| {
            value(t, FAILURE) >= Some(failures + 2.0)
        })
        .await;
    assert_eq!(value(&text, AUTH), value(&text, FAILURE), "{text}");
    assert_eq!(request_count(&mock).await, 0);

    // The Secret appears: the exporter recovers without a restart, the key trimmed.
    write_atomically(&key_path, b"  key-C\n");
    let text = app
        .scrape_until(Duration::from_secs(10), |t| value(t, SUCCESS) >= Some(1.0))
        .await;
    assert_eq!(value(&text, "testsigma_up"), Some(1.0), "{text}");
    assert_eq!(value(&text, "testsigma_users"), Some(2.0), "{text}");
    assert!(!text.contains("key-C"), "the key in /metrics: {text}");
    assert_eq!(app.get("/readyz").await.0, 200);

    // It goes away again: polls fail, the last good counts stay.
    std::fs::remove_file(&key_path).expect("remove key file");
    let auth = value(&text, AUTH).expect("auth failures");
    let text = app
        .scrape_until(Duration::from_secs(10), |t| value(t, AUTH) > Some(auth))
        .await;
    assert_eq!(value(&text, "testsigma_up"), Some(0.0), "{text}");
    assert_eq!(value(&text, "testsigma_users"), Some(2.0));
    app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn a_key_that_cannot_go_in_a_header_or_an_oversized_file_fails_as_auth_without_a_request() {
    let mock = api_for(&["key-A"]).await;
    let scratch = tempfile::tempdir().expect("temporary directory");
    let key_path = scratch.path().join("api-key");
    for (contents, says) in [
        (b"key-A\nkey-B\n".to_vec(), "line break"),
        (vec![b'k'; 64 * 1024 + 1], "larger than 64 KiB"),
    ] {
        write_atomically(&key_path, &contents);
        let run = run_exporter(
            &[
                "--once",
                "--base-url",
                &base_url(&mock),
                "--api-key-file",
                key_path.to_str().expect("UTF-8 path"),
            ],
            &[],
        )
        .await;
        assert_eq!(run.code, Some(1), "{run:?}");
        assert_eq!(value(&run.stdout, AUTH), Some(1.0), "{}", run.stdout);
        assert!(run.stderr.contains(says), "{}", run.stderr);
    }
    assert_eq!(request_count(&mock).await, 0);
}

/// A FIFO at `path`, as a wrong `--api-key-file` could name (opening one for reading waits
/// for a writer).
fn make_fifo(path: &std::path::Path) {
    let made = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("run mkfifo");
    assert!(made.success(), "mkfifo failed");
}

#[tokio::test]
async fn a_fifo_as_key_file_fails_each_poll_as_auth_at_once_and_up_goes_to_0() {
    let scratch = tempfile::tempdir().expect("temporary directory");
    let key_path = scratch.path().join("api-key");
    let key_arg = key_path.to_str().expect("UTF-8 path");
    write_atomically(&key_path, b"key-A\n");
    let mock = api_for(&["key-A"]).await;
    let app = spawn_app(settings(
        &base_url(&mock),
        &["--api-key-file", key_arg, "--poll-interval", "100ms"],
    ))
    .await;
    app.scrape_until(Duration::from_secs(10), |t| value(t, SUCCESS) >= Some(1.0))
        .await;

    // The Secret is replaced by a FIFO nobody writes to: polls keep failing (rather than
    // waiting for a writer forever), each counted, and up says so.
    std::fs::remove_file(&key_path).expect("remove key file");
    make_fifo(&key_path);
    let text = app
        .scrape_until(Duration::from_secs(10), |t| value(t, AUTH) >= Some(3.0))
        .await;
    assert_eq!(value(&text, "testsigma_up"), Some(0.0), "{text}");
    assert_eq!(failed_reasons(&text), ["auth"], "{text}");
    assert_eq!(
        value(&text, "testsigma_users"),
        Some(2.0),
        "last good count kept"
    );

    // A directory is no key file either; a regular file again and the exporter recovers.
    std::fs::remove_file(&key_path).expect("remove FIFO");
    std::fs::create_dir(&key_path).expect("directory");
    let auth = value(&text, AUTH).expect("auth failures");
    app.scrape_until(Duration::from_secs(10), |t| {
        value(t, AUTH) >= Some(auth + 2.0)
    })
    .await;
    std::fs::remove_dir(&key_path).expect("remove directory");
    write_atomically(&key_path, b"key-A\n");
    let successes = value(&app.scrape().await, SUCCESS).expect("successes");
    let text = app
        .scrape_until(Duration::from_secs(10), |t| {
            value(t, SUCCESS) > Some(successes)
        })
        .await;
    assert_eq!(value(&text, "testsigma_up"), Some(1.0), "{text}");
    app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn once_with_a_fifo_as_key_file_exits_1_at_once_naming_the_file() {
    let scratch = tempfile::tempdir().expect("temporary directory");
    let key_path = scratch.path().join("api-key");
    let key_arg = key_path.to_str().expect("UTF-8 path");
    make_fifo(&key_path);
    let mock = api_for(&["key-A"]).await;
    // run_exporter gives up (and fails the test) if the binary has not exited in time.
    let run = run_exporter(
        &[
            "--once",
            "--base-url",
            &base_url(&mock),
            "--api-key-file",
            key_arg,
        ],
        &[],
    )
    .await;
    assert_eq!(run.code, Some(1), "{run:?}");
    assert_eq!(value(&run.stdout, AUTH), Some(1.0), "{}", run.stdout);
    assert_eq!(
        value(&run.stdout, "testsigma_up"),
        Some(0.0),
        "{}",
        run.stdout
    );
    assert!(
        run.stderr.contains(key_arg) && run.stderr.contains("not a regular file"),
        "{}",
        run.stderr
    );
    assert_eq!(request_count(&mock).await, 0);
}
