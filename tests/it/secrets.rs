//! The API key stays secret: in no log line at any level, error, metric or `Debug` output,
//! even when the API echoes it back; and a warning when it would travel unencrypted.

use crate::helpers::*;
use serde_json::json;
use wiremock::ResponseTemplate;

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
            let mock = mock_api(answer.clone()).await;
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
            // The run did what the scenario meant: the key went out with the request, the
            // exposition was printed, and where the API echoed the key, the log shows where
            // it was blanked out.
            assert!(requests_with_key(&mock, KEY).await >= 1, "{context}");
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
    let mock = mock_api(
        ResponseTemplate::new(404).set_body_json(json!({"message": format!("no such key {KEY}")})),
    )
    .await;
    let settings = settings(&base_url(&mock), &[]);
    assert_no_key(&format!("{settings:?}"), "Settings");
    let failed = failed_poll(&settings).await;
    assert_no_key(&failed.poller, "Poller");
    assert_no_key(&failed.message, "PollError Display");
    assert_no_key(&failed.debug, "PollError Debug");
    assert!(failed.message.contains("[REDACTED]"), "{}", failed.message);
}

#[tokio::test]
async fn plain_http_to_a_remote_host_warns_and_to_loopback_does_not() {
    let mock = mock_api(json_ok(fixture("users-documented.json"))).await;
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

#[tokio::test]
async fn a_key_echoed_as_a_cursor_is_blanked_out_percent_encoded_too() {
    // A key with the characters a query string encodes: `+`, `/` and `=`.
    const PLAIN: &str = "Zm9v+YmFy/YmF6=cXV4+";
    let encoded = [
        "Zm9v%2BYmFy%2FYmF6%3DcXV4%2B",
        "Zm9v%2bYmFy%2fYmF6%3dcXV4%2b",
    ];
    let mock = wiremock::MockServer::start().await;
    // Page 1 sends the key back as the next cursor; the page it names fails, and its error
    // body quotes the cursor lower-case encoded, as some servers write it.
    mount_script(&mock, move |n, _| match n {
        0 => json_ok(page(&[("user-1", "active")], json!(PLAIN), None)),
        _ => ResponseTemplate::new(400).set_body_json(
            json!({"message": format!("bad cursor {}", "Zm9v%2bYmFy%2fYmF6%3dcXV4%2b")}),
        ),
    })
    .await;
    let run = run_exporter(
        &[
            "--once",
            "--base-url",
            &base_url(&mock),
            "--log.level",
            "trace",
            "--max-request-rate",
            "0",
        ],
        &[("TESTSIGMA_API_KEY", PLAIN)],
    )
    .await;
    let output = run.output();
    assert_eq!(run.code, Some(1), "{output}");
    assert_eq!(failed_reasons(&run.stdout), ["http"], "{output}");
    assert!(requests_with_key(&mock, PLAIN).await >= 2, "{output}");
    for spelling in std::iter::once(PLAIN).chain(encoded) {
        assert!(!output.contains(spelling), "{spelling} in:\n{output}");
        // Nor a long piece of it, in any case.
        let piece = &spelling[..12];
        assert!(
            !output.to_lowercase().contains(&piece.to_lowercase()),
            "{piece} in:\n{output}"
        );
    }
    assert!(output.contains("cursor=[REDACTED]"), "{output}");
    assert!(output.contains("bad cursor [REDACTED]"), "{output}");
}

#[tokio::test]
async fn a_next_cursor_of_megabytes_fails_as_pagination_with_a_short_log_line() {
    // The key echoed at the start of a 4 MiB cursor: it would become a 4 MiB URL, then a
    // request and log lines as long, blanked out at several times their size.
    let next = format!("{KEY}{}", "c".repeat(4 << 20));
    let mock = mock_api(ResponseTemplate::new(200).set_body_json(page(
        &[("user-1", "active")],
        json!(next),
        None,
    )))
    .await;
    let run = run_once(&[
        "--base-url",
        &base_url(&mock),
        "--log.level",
        "trace",
        "--max-request-rate",
        "0",
    ])
    .await;
    let output = run.output();
    assert_eq!(run.code, Some(1), "{}", &output[..output.len().min(2000)]);
    assert_eq!(
        failed_reasons(&run.stdout),
        ["pagination"],
        "{}",
        run.stdout
    );
    assert_eq!(request_count(&mock).await, 1, "the cursor was followed");
    let longest = run.stderr.lines().map(str::len).max().unwrap_or(0);
    assert!(longest < 1024, "a log line of {longest} bytes");
    assert!(run.stderr.contains("more than the 8 KiB"), "{}", run.stderr);
    assert!(run.stderr.contains("[REDACTED]ccc"), "{}", run.stderr);
    assert_no_key(&output, "a cursor of megabytes");
}
