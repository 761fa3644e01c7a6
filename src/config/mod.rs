//! Command line in two steps: [`Cli`] records what the user typed (clap derive; every flag
//! also from its environment variable, each value parsed and range-checked by clap), and
//! [`Cli::into_settings`] resolves it into the [`Settings`] the exporter runs with.

use std::path::PathBuf;
use std::time::Duration;

use clap::{CommandFactory, Parser, ValueEnum};
use secrecy::SecretString;
use url::Url;

mod parse;

pub use parse::usage_error;
use parse::{base_url, duration, request_rate, telemetry_path, whole};

/// Default API root of Testsigma Test Management.
pub const DEFAULT_BASE_URL: &str = "https://test-management.testsigma.com/api/v1";

const AFTER_HELP: &str = "\
The API key is read from the TESTSIGMA_API_KEY environment variable or, preferably, from the
file given by --api-key-file (re-read before every poll, so a rotated Kubernetes Secret works
without a restart), never from both. There is deliberately no --api-key flag: a key on the
command line shows in `ps`. With --demo no key is needed.";

/// Prometheus exporter for the users of a Testsigma Test Management account.
///
/// Polls every page of GET {base}/users on an interval, counts users in total and per status,
/// and serves the counts with the exporter's own health metrics on /metrics.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None, after_help = AFTER_HELP, allow_negative_numbers = true)]
pub struct Cli {
    /// File holding the API key (trimmed), re-read before every poll.
    #[arg(long, env = "TESTSIGMA_API_KEY_FILE", value_name = "PATH")]
    pub api_key_file: Option<PathBuf>,

    // Checked by `into_settings` rather than a value parser, whose error would show the value:
    // a mistaken URL may carry the key (in its user part or its query).
    /// API root; users are listed at {base}/users.
    #[arg(
        long,
        env = "TESTSIGMA_BASE_URL",
        value_name = "URL",
        default_value = DEFAULT_BASE_URL
    )]
    pub base_url: String,

    /// PEM certificates to trust for the API besides the system's store (e.g. a corporate
    /// TLS-inspection CA); read at start-up.
    #[arg(long, env = "TESTSIGMA_API_CA_FILE", value_name = "PATH")]
    pub api_ca_file: Option<PathBuf>,

    // `help` rather than a doc comment: rustdoc would read "[::]" as a link.
    #[arg(
        help = "Address to serve on: host:port, :port or [::]:port",
        long = "web.listen-address",
        env = "TESTSIGMA_EXPORTER_LISTEN_ADDRESS",
        value_name = "ADDR",
        default_value = ":9874"
    )]
    pub listen_address: String,

    /// Path under which metrics are served.
    #[arg(
        long = "web.telemetry-path",
        env = "TESTSIGMA_EXPORTER_TELEMETRY_PATH",
        value_name = "PATH",
        default_value = "/metrics",
        value_parser = telemetry_path
    )]
    pub telemetry_path: String,

    /// Time between the starts of two polls (30s, 5m, ...).
    #[arg(
        long,
        env = "TESTSIGMA_POLL_INTERVAL",
        value_name = "DUR",
        default_value = "60s",
        value_parser = duration
    )]
    pub poll_interval: Duration,

    /// Users per page, sent as page_size (1..=1000).
    #[arg(
        long,
        env = "TESTSIGMA_PAGE_SIZE",
        value_name = "N",
        default_value = "100",
        value_parser = whole::<u32, 1, 1000>
    )]
    pub page_size: u32,

    /// Timeout of one HTTP request to the API, body included.
    #[arg(
        long,
        env = "TESTSIGMA_REQUEST_TIMEOUT",
        value_name = "DUR",
        default_value = "30s",
        value_parser = duration
    )]
    pub request_timeout: Duration,

    /// Retries per request for 5xx, 429, timeouts and connection errors.
    #[arg(
        long,
        env = "TESTSIGMA_MAX_RETRIES",
        value_name = "N",
        default_value = "3",
        value_parser = whole::<u32, 0, 100>
    )]
    pub max_retries: u32,

    /// Requests per second to the API at most; 0 means no limit.
    #[arg(
        long,
        env = "TESTSIGMA_MAX_REQUEST_RATE",
        value_name = "R",
        default_value = "5",
        value_parser = request_rate
    )]
    pub max_request_rate: f64,

    /// Distinct status label values at most (3 or more); the rest count as "other".
    #[arg(
        long,
        env = "TESTSIGMA_MAX_STATUSES",
        value_name = "N",
        default_value = "20",
        value_parser = whole::<usize, 3, 10_000>
    )]
    pub max_statuses: usize,

    /// Deadline of a whole poll (every page, retries and waits included); past it the poll
    /// fails as timeout.
    #[arg(
        long,
        env = "TESTSIGMA_POLL_TIMEOUT",
        value_name = "DUR",
        default_value = "15m",
        value_parser = duration
    )]
    pub poll_timeout: Duration,

    /// Also publish testsigma_users_by_email_domain (off by default: domains say who works
    /// with the account).
    #[arg(
        long,
        env = "TESTSIGMA_USERS_BY_EMAIL_DOMAIN",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub users_by_email_domain: bool,

    /// Distinct domain label values at most (3 or more); the rest count as "other".
    #[arg(
        long,
        env = "TESTSIGMA_MAX_EMAIL_DOMAINS",
        value_name = "N",
        default_value = "20",
        value_parser = whole::<usize, 3, 10_000>
    )]
    pub max_email_domains: usize,

    /// Log level: error, warn, info, debug or trace.
    #[arg(
        long = "log.level",
        env = "TESTSIGMA_EXPORTER_LOG_LEVEL",
        value_name = "LVL",
        default_value = "info",
        ignore_case = true
    )]
    pub log_level: LogLevel,

    /// Log format on stderr.
    #[arg(
        long = "log.format",
        env = "TESTSIGMA_EXPORTER_LOG_FORMAT",
        value_name = "FMT",
        default_value = "logfmt",
        ignore_case = true
    )]
    pub log_format: LogFormat,

    /// TLS and basic-auth configuration, in the Prometheus exporter-toolkit web config format
    /// (as for node_exporter); re-read when it changes. Without it: plain HTTP, no auth.
    #[arg(
        long = "web.config.file",
        env = "TESTSIGMA_EXPORTER_WEB_CONFIG_FILE",
        value_name = "PATH",
        // '' means no file, as with the toolkit.
        value_parser = clap::builder::TypedValueParser::map(clap::builder::OsStringValueParser::new(), PathBuf::from)
    )]
    pub web_config_file: Option<PathBuf>,

    /// Poll once, print the exposition to stdout and exit: 0 on success, 1 on failure.
    #[arg(long)]
    pub once: bool,

    /// Poll a built-in simulated Testsigma API on loopback; no key needed.
    #[arg(long)]
    pub demo: bool,
}

/// Log verbosity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Logfmt,
    Json,
}

/// Where the API key comes from. `Debug` never shows the key itself.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// From `TESTSIGMA_API_KEY`, read once at start-up.
    Env(SecretString),
    /// From a file, re-read before every poll.
    File(PathBuf),
}

/// What the exporter runs with, resolved from a [`Cli`].
#[derive(Debug, Clone)]
pub struct Settings {
    pub key: KeySource,
    pub base_url: Url,
    /// `--api-ca-file`, read when the client is built.
    pub api_ca_file: Option<PathBuf>,
    /// As typed; resolved when the server binds it.
    pub listen_address: String,
    pub telemetry_path: String,
    pub poll_interval: Duration,
    pub page_size: u32,
    pub request_timeout: Duration,
    pub max_retries: u32,
    /// Requests per second; `None` means no limit.
    pub max_request_rate: Option<f64>,
    pub max_statuses: usize,
    pub poll_timeout: Duration,
    /// `--users-by-email-domain`.
    pub users_by_email_domain: bool,
    pub max_email_domains: usize,
    /// `--web.config.file`, loaded and checked by [`crate::run`] (and [`crate::once`]);
    /// `None`: plain HTTP.
    pub web_config_file: Option<PathBuf>,
    pub once: bool,
    pub demo: bool,
    /// Base of the exponential backoff between retries. Not a flag: always
    /// [`crate::api::BACKOFF_BASE`] but in tests, which shorten it.
    pub retry_backoff: Duration,
}

/// A configuration mistake, naming the flag and variable at fault.
#[derive(Debug, thiserror::Error)]
#[error("{flag} (env {env}): {problem}")]
pub struct ConfigError {
    flag: String,
    env: String,
    problem: String,
}

impl ConfigError {
    /// A mistake in the argument whose field in [`Cli`] is `id`; its flag and variable are
    /// looked up in the command, where they are written once.
    fn new(id: &str, problem: impl Into<String>) -> Self {
        let command = Cli::command();
        let arg = command
            .get_arguments()
            .find(|a| a.get_id() == id)
            .expect("ConfigError names a field of Cli");
        Self {
            flag: format!("--{}", arg.get_long().unwrap_or(id)),
            env: arg
                .get_env()
                .map_or_else(String::new, |v| v.to_string_lossy().into_owned()),
            problem: problem.into(),
        }
    }

    /// A web configuration file that cannot be used.
    pub fn web_config(problem: impl std::fmt::Display) -> Self {
        Self::new("web_config_file", problem.to_string())
    }

    /// An `--api-ca-file` that cannot be used.
    pub fn api_ca_file(problem: impl std::fmt::Display) -> Self {
        Self::new("api_ca_file", problem.to_string())
    }

    /// A listen address that cannot be used.
    pub fn listen(problem: impl Into<String>) -> Self {
        Self::new("listen_address", problem)
    }
}

impl Cli {
    /// Resolves what the user typed. `api_key_env` is the value of `TESTSIGMA_API_KEY`,
    /// passed in so tests need not touch the process environment.
    pub fn into_settings(self, api_key_env: Option<String>) -> Result<Settings, ConfigError> {
        let env_key = api_key_env
            .map(|key| key.trim().to_owned())
            .filter(|key| !key.is_empty());
        let key =
            match (self.api_key_file, env_key) {
                // As Prometheus refuses password with password_file: neither may silently win.
                (Some(_), Some(_)) => {
                    return Err(ConfigError::new(
                        "api_key_file",
                        "TESTSIGMA_API_KEY is set as well; give the key one way only (unset \
                     TESTSIGMA_API_KEY, or drop --api-key-file)",
                    ))
                }
                (Some(path), None) => KeySource::File(path),
                (None, Some(key)) => KeySource::Env(SecretString::from(key)),
                (None, None) if self.demo => KeySource::Env(SecretString::from(String::new())),
                (None, None) => return Err(ConfigError::new(
                    "api_key_file",
                    "no API key: set TESTSIGMA_API_KEY or pass --api-key-file PATH (or try --demo)",
                )),
            };
        let base_url = base_url(&self.base_url).map_err(|e| ConfigError::new("base_url", e))?;
        Ok(Settings {
            key,
            base_url,
            api_ca_file: self.api_ca_file,
            listen_address: self.listen_address,
            telemetry_path: self.telemetry_path,
            poll_interval: self.poll_interval,
            page_size: self.page_size,
            request_timeout: self.request_timeout,
            max_retries: self.max_retries,
            max_request_rate: Some(self.max_request_rate).filter(|r| *r > 0.0),
            max_statuses: self.max_statuses,
            poll_timeout: self.poll_timeout,
            users_by_email_domain: self.users_by_email_domain,
            max_email_domains: self.max_email_domains,
            web_config_file: self.web_config_file.filter(|p| !p.as_os_str().is_empty()),
            once: self.once,
            demo: self.demo,
            retry_backoff: crate::api::BACKOFF_BASE,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli(args: &[&str]) -> Result<Cli, String> {
        let mut argv = vec!["testsigma-exporter"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv).map_err(|e| usage_error(&e))
    }

    fn settings(args: &[&str]) -> Result<Settings, String> {
        cli(args)?
            .into_settings(Some("k".into()))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_match_the_contract() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.base_url.as_str(), DEFAULT_BASE_URL);
        assert_eq!(s.listen_address, ":9874");
        assert_eq!(s.telemetry_path, "/metrics");
        assert_eq!(s.poll_interval, Duration::from_secs(60));
        assert_eq!(s.page_size, 100);
        assert_eq!(s.request_timeout, Duration::from_secs(30));
        assert_eq!(s.max_retries, 3);
        assert_eq!(s.max_request_rate, Some(5.0));
        assert_eq!(s.max_statuses, 20);
        assert_eq!(s.poll_timeout, Duration::from_secs(15 * 60));
        assert!(!s.users_by_email_domain);
        assert_eq!(s.max_email_domains, 20);
        assert!(s.web_config_file.is_none());
        assert!(s.api_ca_file.is_none());
    }

    #[test]
    fn bad_values_name_their_flag_and_variable() {
        for (args, flag, env, problem) in [
            (
                &["--poll-interval", "abc"][..],
                "--poll-interval",
                "TESTSIGMA_POLL_INTERVAL",
                "not a duration",
            ),
            (
                &["--page-size", "0"],
                "--page-size",
                "TESTSIGMA_PAGE_SIZE",
                "whole number from 1 to 1000",
            ),
            (
                &["--page-size", "1001"],
                "--page-size",
                "TESTSIGMA_PAGE_SIZE",
                "whole number from 1 to 1000",
            ),
            (
                &["--page-size", "many"],
                "--page-size",
                "TESTSIGMA_PAGE_SIZE",
                "whole number from 1 to 1000",
            ),
            (
                &["--max-retries", "101"],
                "--max-retries",
                "TESTSIGMA_MAX_RETRIES",
                "whole number from 0 to 100",
            ),
            (
                &["--max-request-rate", "-1"],
                "--max-request-rate",
                "TESTSIGMA_MAX_REQUEST_RATE",
                "0 for no limit",
            ),
            (
                &["--max-request-rate", "inf"],
                "--max-request-rate",
                "TESTSIGMA_MAX_REQUEST_RATE",
                "0 for no limit",
            ),
            (
                &["--max-statuses", "2"],
                "--max-statuses",
                "TESTSIGMA_MAX_STATUSES",
                "whole number from 3 to 10000",
            ),
            (
                &["--request-timeout", "0s"],
                "--request-timeout",
                "TESTSIGMA_REQUEST_TIMEOUT",
                "greater than 0",
            ),
            (
                &["--web.telemetry-path", "metrics"],
                "--web.telemetry-path",
                "TESTSIGMA_EXPORTER_TELEMETRY_PATH",
                "start with '/'",
            ),
            (
                &["--web.telemetry-path", "/healthz"],
                "--web.telemetry-path",
                "TESTSIGMA_EXPORTER_TELEMETRY_PATH",
                "health endpoints",
            ),
            (
                &["--web.telemetry-path", "/:m"],
                "--web.telemetry-path",
                "TESTSIGMA_EXPORTER_TELEMETRY_PATH",
                "plain path",
            ),
            (
                &["--web.telemetry-path", "/x/*rest"],
                "--web.telemetry-path",
                "TESTSIGMA_EXPORTER_TELEMETRY_PATH",
                "plain path",
            ),
            (
                &["--web.telemetry-path", "/{m}"],
                "--web.telemetry-path",
                "TESTSIGMA_EXPORTER_TELEMETRY_PATH",
                "plain path",
            ),
            (
                &["--poll-interval", "18446744073709551615s"],
                "--poll-interval",
                "TESTSIGMA_POLL_INTERVAL",
                "more than 24h",
            ),
            (
                &["--request-timeout", "25h"],
                "--request-timeout",
                "TESTSIGMA_REQUEST_TIMEOUT",
                "more than 24h",
            ),
        ] {
            let msg = settings(args).expect_err("must be rejected");
            let value = args[1];
            assert!(
                msg.starts_with(&format!("invalid value '{value}' for '{flag} ")),
                "{msg}"
            );
            assert!(msg.contains(&format!("' (env {env}): ")), "{msg}");
            assert!(msg.contains(problem), "{args:?}: {problem:?} not in {msg}");
            assert!(
                msg.ends_with("; see --help") && !msg.contains('\n'),
                "{msg}"
            );
        }
    }

    #[test]
    fn bad_base_urls_are_refused_without_being_shown() {
        // A mistaken URL may carry the key: no error repeats the value.
        for (url, problem) in [
            ("https://user:s3cret@x/api", "must not carry credentials"),
            (
                "https://x/api?api_key=s3cret",
                "must have no query or fragment",
            ),
            (
                "ftp://s3cret@x/api",
                "must be an http:// or https:// URL with a host",
            ),
            ("s3cret x", "not a URL"),
        ] {
            let msg = settings(&["--base-url", url]).unwrap_err();
            assert!(
                msg.starts_with(&format!("--base-url (env TESTSIGMA_BASE_URL): {problem}")),
                "{msg}"
            );
            assert!(!msg.contains("s3cret"), "{msg}");
        }
    }

    #[test]
    fn missing_key_names_both_sources() {
        let msg = cli(&[])
            .unwrap()
            .into_settings(None)
            .unwrap_err()
            .to_string();
        assert_eq!(
            msg,
            "--api-key-file (env TESTSIGMA_API_KEY_FILE): no API key: set TESTSIGMA_API_KEY \
             or pass --api-key-file PATH (or try --demo)"
        );
        assert!(cli(&[]).unwrap().into_settings(Some(" ".into())).is_err());
        assert!(cli(&["--demo"]).unwrap().into_settings(None).is_ok());
    }

    #[test]
    fn errors_outside_clap_name_the_flag_and_variable_from_the_command() {
        assert_eq!(
            ConfigError::web_config("w.yml: cannot read").to_string(),
            "--web.config.file (env TESTSIGMA_EXPORTER_WEB_CONFIG_FILE): w.yml: cannot read"
        );
        assert_eq!(
            ConfigError::api_ca_file("ca.pem: holds no PEM certificate").to_string(),
            "--api-ca-file (env TESTSIGMA_API_CA_FILE): ca.pem: holds no PEM certificate"
        );
        assert_eq!(
            ConfigError::listen("in use").to_string(),
            "--web.listen-address (env TESTSIGMA_EXPORTER_LISTEN_ADDRESS): in use"
        );
    }

    #[test]
    fn one_key_source_at_a_time_and_debug_hides_the_key() {
        let s = cli(&["--api-key-file", "/k"])
            .unwrap()
            .into_settings(Some(" ".into()))
            .unwrap();
        assert!(matches!(s.key, KeySource::File(ref p) if p.as_os_str() == "/k"));
        let msg = cli(&["--api-key-file", "/k"])
            .unwrap()
            .into_settings(Some("env".into()))
            .unwrap_err()
            .to_string();
        assert!(
            msg.starts_with(
                "--api-key-file (env TESTSIGMA_API_KEY_FILE): TESTSIGMA_API_KEY is set as well"
            ),
            "{msg}"
        );
        let s = settings(&[]).unwrap();
        let shown = format!("{s:?}");
        assert!(!shown.contains("\"k\""), "{shown}");
    }

    #[test]
    fn values_are_parsed_by_clap() {
        let s = settings(&[
            "--page-size",
            " 50\n",
            "--max-request-rate",
            "0",
            "--poll-interval",
            " 5m ",
            "--base-url",
            " http://127.0.0.1:1/api/v1 ",
            "--max-statuses",
            "3",
        ])
        .unwrap();
        assert_eq!(s.page_size, 50, "spaces around a number are allowed");
        assert_eq!(s.max_request_rate, None, "0 means unlimited");
        assert_eq!(s.poll_interval, Duration::from_secs(300));
        assert_eq!(s.base_url.as_str(), "http://127.0.0.1:1/api/v1");
        assert_eq!(s.max_statuses, 3);
        let s = settings(&["--max-request-rate", "2.5"]).unwrap();
        assert_eq!(s.max_request_rate, Some(2.5));
    }

    #[test]
    fn usage_errors_are_one_line_naming_the_variable() {
        let err = Cli::try_parse_from(["x", "--log.level", "loud"]).unwrap_err();
        assert_eq!(
            usage_error(&err),
            "invalid value 'loud' for '--log.level <LVL>' (env TESTSIGMA_EXPORTER_LOG_LEVEL); \
             possible values: error, warn, info, debug, trace; see --help"
        );
        let err = Cli::try_parse_from(["x", "--api-key", "k"]).unwrap_err();
        let line = usage_error(&err);
        assert!(!line.contains('\n'), "{line}");
        assert!(
            line.starts_with("unexpected argument '--api-key' found"),
            "{line}"
        );
        let err = Cli::try_parse_from(["x", "--page-size"]).unwrap_err();
        let line = usage_error(&err);
        assert!(line.contains("'--page-size <N>'"), "{line}");
    }
}
