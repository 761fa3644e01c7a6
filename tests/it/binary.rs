//! The binary as users run it: `--once`, exit codes and one-line configuration errors,
//! `--help` and `--version`, and environment variables as an alternative to flags.

use wiremock::matchers::{bearer_token, query_param};
use wiremock::{MockServer, ResponseTemplate};

use crate::helpers::*;

/// The command-line table of DESIGN.md, plus `--web.config.file` (TLS and basic auth):
/// flag, environment variable, default.
const FLAGS: &[(&str, Option<&str>, Option<&str>)] = &[
    ("--api-key-file", Some("TESTSIGMA_API_KEY_FILE"), None),
    (
        "--web.config.file",
        Some("TESTSIGMA_EXPORTER_WEB_CONFIG_FILE"),
        None,
    ),
    (
        "--base-url",
        Some("TESTSIGMA_BASE_URL"),
        Some("https://test-management.testsigma.com/api/v1"),
    ),
    ("--api-ca-file", Some("TESTSIGMA_API_CA_FILE"), None),
    (
        "--web.listen-address",
        Some("TESTSIGMA_EXPORTER_LISTEN_ADDRESS"),
        Some(":9874"),
    ),
    (
        "--web.telemetry-path",
        Some("TESTSIGMA_EXPORTER_TELEMETRY_PATH"),
        Some("/metrics"),
    ),
    (
        "--poll-interval",
        Some("TESTSIGMA_POLL_INTERVAL"),
        Some("60s"),
    ),
    ("--page-size", Some("TESTSIGMA_PAGE_SIZE"), Some("100")),
    (
        "--request-timeout",
        Some("TESTSIGMA_REQUEST_TIMEOUT"),
        Some("30s"),
    ),
    ("--max-retries", Some("TESTSIGMA_MAX_RETRIES"), Some("3")),
    (
        "--max-request-rate",
        Some("TESTSIGMA_MAX_REQUEST_RATE"),
        Some("5"),
    ),
    ("--max-statuses", Some("TESTSIGMA_MAX_STATUSES"), Some("20")),
    (
        "--poll-timeout",
        Some("TESTSIGMA_POLL_TIMEOUT"),
        Some("15m"),
    ),
    (
        "--users-by-email-domain",
        Some("TESTSIGMA_USERS_BY_EMAIL_DOMAIN"),
        None,
    ),
    (
        "--max-email-domains",
        Some("TESTSIGMA_MAX_EMAIL_DOMAINS"),
        Some("20"),
    ),
    (
        "--log.level",
        Some("TESTSIGMA_EXPORTER_LOG_LEVEL"),
        Some("info"),
    ),
    (
        "--log.format",
        Some("TESTSIGMA_EXPORTER_LOG_FORMAT"),
        Some("logfmt"),
    ),
    ("--once", None, None),
    ("--demo", None, None),
];

#[tokio::test]
async fn once_prints_the_exposition_and_exits_0() {
    let mock = MockServer::start().await;
    users_get()
        .and(bearer_token(KEY))
        .respond_with(json_ok(fixture("users-documented.json")))
        .mount(&mock)
        .await;
    let base = base_url(&mock);
    let run = run_once(&["--base-url", &base]).await;
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(value(&run.stdout, "testsigma_up"), Some(1.0), "{run:?}");
    assert_eq!(value(&run.stdout, "testsigma_users"), Some(2.0));
    assert_eq!(
        by_status(&run.stdout),
        [("active".to_owned(), 1.0), ("inactive".to_owned(), 1.0)]
    );
    // For node_exporter's textfile collector, which has process_* of its own.
    assert!(!run.stdout.contains("process_"), "{}", run.stdout);
}

#[tokio::test]
async fn once_exits_1_when_the_poll_fails() {
    let mock = MockServer::start().await;
    users_get()
        .respond_with(ResponseTemplate::new(401).set_body_json(fixture("error-401.json")))
        .expect(1)
        .mount(&mock)
        .await;
    let base = base_url(&mock);
    let run = run_exporter(
        &["--once", "--base-url", &base],
        &[("TESTSIGMA_API_KEY", "wrong")],
    )
    .await;
    assert_eq!(run.code, Some(1), "{run:?}");
    assert_eq!(value(&run.stdout, "testsigma_up"), Some(0.0), "{run:?}");
    assert!(!run.stdout.contains("testsigma_users"), "{}", run.stdout);
    mock.verify().await;
}

#[tokio::test]
async fn once_with_demo_needs_no_key() {
    let run = run_exporter(&["--once", "--demo"], &[]).await;
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(value(&run.stdout, "testsigma_up"), Some(1.0));
    let users = value(&run.stdout, "testsigma_users").expect("users counted");
    assert!(users > 0.0, "{}", run.stdout);
    let by_status_total: f64 = by_status(&run.stdout).iter().map(|(_, n)| n).sum();
    assert_eq!(by_status_total, users);
}

/// Runs the binary expecting a configuration error: exit 2 and one line on stderr.
async fn config_error(args: &[&str], env: &[(&str, &str)]) -> String {
    let run = run_exporter(args, env).await;
    assert_eq!(run.code, Some(2), "{args:?}: {run:?}");
    let lines = run.stderr_lines();
    assert_eq!(lines.len(), 1, "{args:?}: one line on stderr: {run:?}");
    assert!(run.stdout.is_empty(), "{run:?}");
    lines[0].to_owned()
}

#[tokio::test]
async fn bad_values_exit_2_with_one_line_naming_the_flag() {
    let key = [("TESTSIGMA_API_KEY", KEY)];
    for (args, flag, env, shown) in [
        (
            &["--poll-interval", "abc"][..],
            "--poll-interval",
            "TESTSIGMA_POLL_INTERVAL",
            "abc",
        ),
        // The problem, not the value: a mistaken URL may carry the key.
        (
            &["--base-url", "not a url"],
            "--base-url",
            "TESTSIGMA_BASE_URL",
            "not a URL",
        ),
        (
            &["--page-size", "0"],
            "--page-size",
            "TESTSIGMA_PAGE_SIZE",
            "0",
        ),
    ] {
        let line = config_error(args, &key).await;
        for part in [flag, env, shown] {
            assert!(line.contains(part), "{args:?}: {part:?} not in {line:?}");
        }
    }
}

#[tokio::test]
async fn bad_environment_values_exit_2_naming_the_variable() {
    let line = config_error(
        &[],
        &[("TESTSIGMA_API_KEY", KEY), ("TESTSIGMA_PAGE_SIZE", "0")],
    )
    .await;
    assert!(line.contains("TESTSIGMA_PAGE_SIZE"), "{line}");
    let line = config_error(
        &[],
        &[
            ("TESTSIGMA_API_KEY", KEY),
            ("TESTSIGMA_POLL_INTERVAL", "soon"),
        ],
    )
    .await;
    assert!(line.contains("TESTSIGMA_POLL_INTERVAL"), "{line}");
}

#[tokio::test]
async fn command_line_mistakes_exit_2_with_one_line() {
    let key = [("TESTSIGMA_API_KEY", KEY)];
    let line = config_error(&["--log.format", "xml"], &key).await;
    assert!(line.contains("--log.format"), "{line}");
    assert!(line.contains("logfmt, json"), "names the choices: {line}");
    // There is no flag for the key.
    let with_key = format!("--api-key={KEY}");
    for args in [&["--api-key", KEY][..], &[with_key.as_str()]] {
        let line = config_error(args, &key).await;
        assert!(line.contains("'--api-key'"), "{line}");
        assert!(!line.contains(KEY), "the key is not echoed: {line}");
    }
    let line = config_error(&["--page-size"], &key).await;
    assert!(line.contains("--page-size"), "{line}");
    // A bad value from a variable names the variable.
    let line = config_error(
        &[],
        &[
            ("TESTSIGMA_API_KEY", KEY),
            ("TESTSIGMA_EXPORTER_LOG_LEVEL", "loud"),
        ],
    )
    .await;
    assert!(line.contains("TESTSIGMA_EXPORTER_LOG_LEVEL"), "{line}");
}

#[tokio::test]
async fn a_missing_key_names_both_ways_to_give_one() {
    // exporter_command drops the caller's TESTSIGMA_API_KEY.
    let line = config_error(&[], &[]).await;
    assert!(line.contains("TESTSIGMA_API_KEY"), "{line}");
    assert!(line.contains("--api-key-file"), "{line}");
    // A blank key is no key.
    let line = config_error(&[], &[("TESTSIGMA_API_KEY", "  ")]).await;
    assert!(line.contains("--api-key-file"), "{line}");
}

#[tokio::test]
async fn two_sources_of_the_key_exit_2_naming_both() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("api-key");
    std::fs::write(&file, "from-the-file").unwrap();
    let line = config_error(
        &["--api-key-file", file.to_str().unwrap()],
        &[("TESTSIGMA_API_KEY", KEY)],
    )
    .await;
    assert!(
        line.contains("--api-key-file") && line.contains("TESTSIGMA_API_KEY is set as well"),
        "{line}"
    );
    assert!(
        !line.contains(KEY) && !line.contains("from-the-file"),
        "{line}"
    );
}

#[tokio::test]
async fn an_address_in_use_exits_2_naming_it() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("address").to_string();
    let line = config_error(
        &[
            "--web.listen-address",
            &addr,
            "--base-url",
            "http://127.0.0.1:9/api/v1",
        ],
        &[("TESTSIGMA_API_KEY", KEY)],
    )
    .await;
    assert!(line.contains(&addr), "{line}");
    assert!(line.contains("--web.listen-address"), "{line}");
    drop(taken);
}

/// The help text of one option: its lines up to the next option, whitespace collapsed.
fn option_help<'a>(help: &'a str, flag: &str) -> Option<String> {
    let mut lines = help.lines().skip_while(|l| {
        let t = l.trim_start();
        !(t.starts_with(&format!("{flag} ")) || t == flag)
    });
    let first = lines.next()?;
    let rest = lines.take_while(|l| {
        let t = l.trim_start();
        !t.is_empty() && !t.starts_with('-')
    });
    let text: Vec<&'a str> = std::iter::once(first)
        .chain(rest)
        .flat_map(str::split_whitespace)
        .collect();
    Some(text.join(" "))
}

#[tokio::test]
async fn help_lists_every_flag_with_its_variable_and_default() {
    let run = run_exporter(&["--help"], &[]).await;
    assert_eq!(run.code, Some(0), "{run:?}");
    let help = &run.stdout;
    for (flag, env, default) in FLAGS {
        let text = option_help(help, flag).unwrap_or_else(|| panic!("{flag} missing:\n{help}"));
        if let Some(env) = env {
            assert!(text.contains(&format!("[env: {env}=]")), "{text}");
        }
        if let Some(default) = default {
            assert!(text.contains(&format!("[default: {default}]")), "{text}");
        }
    }
    // No flag beyond the contract's (and clap's own).
    for line in help.lines() {
        let Some(flag) = line.split_whitespace().next() else {
            continue;
        };
        if line.starts_with("  ") && flag.starts_with("--") {
            assert!(
                FLAGS.iter().any(|(f, ..)| f == &flag) || ["--help", "--version"].contains(&flag),
                "{flag} is not in the contract"
            );
        }
    }
    // Where the key comes from (there is no flag for the key itself, checked above).
    let words: Vec<&str> = help
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
        .collect();
    assert!(words.contains(&"TESTSIGMA_API_KEY"), "{help}");
    assert!(words.contains(&"--api-key-file"), "{help}");
}

#[tokio::test]
async fn version_prints_the_version() {
    let run = run_exporter(&["--version"], &[]).await;
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(
        run.stdout.trim(),
        concat!("testsigma-exporter ", env!("CARGO_PKG_VERSION"))
    );
}

#[tokio::test]
async fn environment_variables_stand_in_for_flags() {
    let mock = MockServer::start().await;
    users_get()
        .and(query_param("page_size", "7"))
        .and(bearer_token(KEY))
        .respond_with(json_ok(fixture("users-documented.json")))
        .expect(1)
        .mount(&mock)
        .await;
    let base = base_url(&mock);
    let run = run_exporter(
        &["--once"],
        &[
            ("TESTSIGMA_API_KEY", KEY),
            ("TESTSIGMA_BASE_URL", &base),
            ("TESTSIGMA_PAGE_SIZE", "7"),
        ],
    )
    .await;
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(value(&run.stdout, "testsigma_users"), Some(2.0));
    mock.verify().await;
}

#[tokio::test]
async fn a_flag_beats_its_variable() {
    let mock = MockServer::start().await;
    users_get()
        .and(query_param("page_size", "3"))
        .respond_with(json_ok(fixture("users-documented.json")))
        .expect(1)
        .mount(&mock)
        .await;
    let base = base_url(&mock);
    let run = run_exporter(
        &["--once", "--page-size", "3", "--base-url", &base],
        &[
            ("TESTSIGMA_API_KEY", KEY),
            ("TESTSIGMA_BASE_URL", "http://127.0.0.1:9/api/v1"),
            ("TESTSIGMA_PAGE_SIZE", "7"),
        ],
    )
    .await;
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(value(&run.stdout, "testsigma_users"), Some(2.0));
    mock.verify().await;
}
