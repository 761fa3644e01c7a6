//! Command line in two steps: [`Cli`] records what the user typed (clap derive, every flag
//! also from its environment variable), [`Cli::into_settings`] validates it into [`Settings`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use secrecy::SecretString;
use url::Url;

use crate::web::WebConfig;

/// Default API root of Testsigma Test Management.
pub const DEFAULT_BASE_URL: &str = "https://test-management.testsigma.com/api/v1";

const AFTER_HELP: &str = "\
The API key is read from the TESTSIGMA_API_KEY environment variable or, preferably, from the
file given by --api-key-file (re-read before every poll, so a rotated Kubernetes Secret works
without a restart). There is deliberately no --api-key flag: a key on the command line shows
in `ps`. With --demo no key is needed.";

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

    /// API root; users are listed at {base}/users.
    #[arg(long, env = "TESTSIGMA_BASE_URL", value_name = "URL", default_value = DEFAULT_BASE_URL)]
    pub base_url: String,

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
        default_value = "/metrics"
    )]
    pub telemetry_path: String,

    /// Time between the starts of two polls (30s, 5m, ...).
    #[arg(
        long,
        env = "TESTSIGMA_POLL_INTERVAL",
        value_name = "DUR",
        default_value = "60s"
    )]
    pub poll_interval: String,

    /// Users per page, sent as page_size (1..=1000).
    #[arg(
        long,
        env = "TESTSIGMA_PAGE_SIZE",
        value_name = "N",
        default_value = "100"
    )]
    pub page_size: String,

    /// Timeout of one HTTP request to the API, body included.
    #[arg(
        long,
        env = "TESTSIGMA_REQUEST_TIMEOUT",
        value_name = "DUR",
        default_value = "30s"
    )]
    pub request_timeout: String,

    /// Retries per request for 5xx, 429, timeouts and connection errors.
    #[arg(
        long,
        env = "TESTSIGMA_MAX_RETRIES",
        value_name = "N",
        default_value = "3"
    )]
    pub max_retries: String,

    /// Requests per second to the API at most; 0 means no limit.
    #[arg(
        long,
        env = "TESTSIGMA_MAX_REQUEST_RATE",
        value_name = "R",
        default_value = "5"
    )]
    pub max_request_rate: String,

    /// Distinct status label values at most (3 or more); the rest count as "other".
    #[arg(
        long,
        env = "TESTSIGMA_MAX_STATUSES",
        value_name = "N",
        default_value = "20"
    )]
    pub max_statuses: String,

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
        value_name = "PATH"
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

/// Validated settings the exporter runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    pub key: KeySource,
    pub base_url: Url,
    pub listen_address: String,
    pub telemetry_path: String,
    pub poll_interval: Duration,
    pub page_size: u32,
    pub request_timeout: Duration,
    pub max_retries: u32,
    /// Requests per second; `None` means no limit.
    pub max_request_rate: Option<f64>,
    pub max_statuses: usize,
    /// TLS and basic auth from `--web.config.file`, checked at start-up; `None`: plain HTTP.
    pub web_config: Option<Arc<WebConfig>>,
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
    flag: &'static str,
    env: &'static str,
    problem: String,
}

impl ConfigError {
    fn new(flag: &'static str, env: &'static str, problem: impl Into<String>) -> Self {
        Self {
            flag,
            env,
            problem: problem.into(),
        }
    }

    /// A web configuration file that cannot be used.
    pub fn web_config(problem: impl Into<String>) -> Self {
        Self::new(
            "--web.config.file",
            "TESTSIGMA_EXPORTER_WEB_CONFIG_FILE",
            problem,
        )
    }

    /// A listen address that cannot be used.
    pub fn listen(problem: impl Into<String>) -> Self {
        Self::new(
            "--web.listen-address",
            "TESTSIGMA_EXPORTER_LISTEN_ADDRESS",
            problem,
        )
    }
}

impl Cli {
    /// Validates what the user typed. `api_key_env` is the value of `TESTSIGMA_API_KEY`,
    /// passed in so tests need not touch the process environment.
    pub fn into_settings(self, api_key_env: Option<String>) -> Result<Settings, ConfigError> {
        let key =
            match (self.api_key_file, api_key_env) {
                (Some(path), _) => KeySource::File(path),
                (None, Some(key)) if !key.trim().is_empty() => {
                    KeySource::Env(SecretString::from(key.trim().to_owned()))
                }
                (None, _) if self.demo => KeySource::Env(SecretString::from(String::new())),
                (None, _) => return Err(ConfigError::new(
                    "--api-key-file",
                    "TESTSIGMA_API_KEY_FILE",
                    "no API key: set TESTSIGMA_API_KEY or pass --api-key-file PATH (or try --demo)",
                )),
            };
        let base_url = parse_base_url(&self.base_url)?;
        if !self.telemetry_path.starts_with('/') || self.telemetry_path.len() < 2 {
            return Err(ConfigError::new(
                "--web.telemetry-path",
                "TESTSIGMA_EXPORTER_TELEMETRY_PATH",
                format!(
                    "{:?} must start with '/' and not be '/' alone",
                    self.telemetry_path
                ),
            ));
        }
        if matches!(self.telemetry_path.as_str(), "/healthz" | "/readyz") {
            return Err(ConfigError::new(
                "--web.telemetry-path",
                "TESTSIGMA_EXPORTER_TELEMETRY_PATH",
                format!("{} is taken by the health endpoints", self.telemetry_path),
            ));
        }
        // The router would read braces as a path parameter and panics on ':' or '*' segments.
        if self.telemetry_path.contains(['{', '}'])
            || self
                .telemetry_path
                .split('/')
                .any(|seg| seg.starts_with([':', '*']))
        {
            return Err(ConfigError::new(
                "--web.telemetry-path",
                "TESTSIGMA_EXPORTER_TELEMETRY_PATH",
                format!(
                    "{:?} must be a plain path: no braces, no segment starting with ':' or '*'",
                    self.telemetry_path
                ),
            ));
        }
        Ok(Settings {
            key,
            base_url,
            listen_address: self.listen_address,
            telemetry_path: self.telemetry_path,
            poll_interval: parse_duration(
                &self.poll_interval,
                "--poll-interval",
                "TESTSIGMA_POLL_INTERVAL",
            )?,
            page_size: parse_number(
                &self.page_size,
                "--page-size",
                "TESTSIGMA_PAGE_SIZE",
                1,
                1000,
            )?,
            request_timeout: parse_duration(
                &self.request_timeout,
                "--request-timeout",
                "TESTSIGMA_REQUEST_TIMEOUT",
            )?,
            max_retries: parse_number(
                &self.max_retries,
                "--max-retries",
                "TESTSIGMA_MAX_RETRIES",
                0,
                100,
            )?,
            max_request_rate: parse_rate(&self.max_request_rate)?,
            max_statuses: parse_number(
                &self.max_statuses,
                "--max-statuses",
                "TESTSIGMA_MAX_STATUSES",
                3,
                10_000,
            )? as usize,
            web_config: match &self.web_config_file {
                Some(path) => Some(Arc::new(
                    WebConfig::load(path).map_err(ConfigError::web_config)?,
                )),
                None => None,
            },
            once: self.once,
            demo: self.demo,
            retry_backoff: crate::api::BACKOFF_BASE,
        })
    }
}

fn parse_base_url(raw: &str) -> Result<Url, ConfigError> {
    let err = |problem: String| ConfigError::new("--base-url", "TESTSIGMA_BASE_URL", problem);
    let url = Url::parse(raw.trim()).map_err(|e| {
        err(format!(
            "{raw:?} is not a URL ({e}); expected e.g. {DEFAULT_BASE_URL}"
        ))
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(err(format!(
            "{raw:?} must be an http:// or https:// URL with a host"
        )));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(err(format!("{raw:?} must have no query or fragment")));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(err(
            "must not carry credentials; the key comes from TESTSIGMA_API_KEY or --api-key-file"
                .to_owned(),
        ));
    }
    Ok(url)
}

/// Longest poll interval or request timeout: longer ones are surely typos, and timers must
/// not overflow.
const MAX_DURATION: Duration = Duration::from_secs(24 * 60 * 60);

fn parse_duration(
    raw: &str,
    flag: &'static str,
    env: &'static str,
) -> Result<Duration, ConfigError> {
    let d = humantime::parse_duration(raw.trim()).map_err(|e| {
        ConfigError::new(
            flag,
            env,
            format!("{raw:?} is not a duration ({e}); use e.g. 30s or 5m"),
        )
    })?;
    if d.is_zero() {
        return Err(ConfigError::new(flag, env, "must be greater than 0"));
    }
    if d > MAX_DURATION {
        return Err(ConfigError::new(
            flag,
            env,
            format!("{raw:?} is more than 24h"),
        ));
    }
    Ok(d)
}

fn parse_number(
    raw: &str,
    flag: &'static str,
    env: &'static str,
    min: u32,
    max: u32,
) -> Result<u32, ConfigError> {
    match raw.trim().parse::<u32>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(ConfigError::new(
            flag,
            env,
            format!("{raw:?} must be a whole number from {min} to {max}"),
        )),
    }
}

fn parse_rate(raw: &str) -> Result<Option<f64>, ConfigError> {
    match raw.trim().parse::<f64>() {
        Ok(0.0) => Ok(None),
        Ok(r) if r.is_finite() && r > 0.0 => Ok(Some(r)),
        _ => Err(ConfigError::new(
            "--max-request-rate",
            "TESTSIGMA_MAX_REQUEST_RATE",
            format!("{raw:?} must be a number of requests per second, 0 for no limit"),
        )),
    }
}

/// A command-line error from clap as one line (exit code 2 promises one), naming the
/// environment variable too when the argument has one, since the bad value may come from it.
pub fn usage_error(e: &clap::Error) -> String {
    use clap::error::{ContextKind, ContextValue};
    use clap::CommandFactory;
    let text = e.to_string();
    let mut parts: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| {
            !l.is_empty() && !l.starts_with("Usage:") && !l.starts_with("For more information")
        })
        .map(|l| {
            let l = l.strip_prefix("error: ").unwrap_or(l);
            l.strip_prefix('[')
                .and_then(|l| l.strip_suffix(']'))
                .unwrap_or(l)
                .to_owned()
        })
        .collect();
    if let (Some(ContextValue::String(arg)), Some(first)) =
        (e.get(ContextKind::InvalidArg), parts.first_mut())
    {
        let long = arg.split_whitespace().next().unwrap_or(arg);
        let env = Cli::command()
            .get_arguments()
            .find(|a| a.get_long().is_some_and(|l| long == format!("--{l}")))
            .and_then(|a| a.get_env().map(|v| v.to_string_lossy().into_owned()));
        if let Some(env) = env {
            first.push_str(&format!(" (env {env})"));
        }
    }
    parts.push("see --help".to_owned());
    parts.join("; ")
}

/// Resolves `host:port`, `:port` or `[::]:port` to the addresses to try, in order.
pub async fn listen_addrs(raw: &str) -> Result<Vec<SocketAddr>, ConfigError> {
    let err = ConfigError::listen;
    if let Some(port) = raw.strip_prefix(':') {
        let port: u16 = port
            .parse()
            .map_err(|_| err(format!("{raw:?}: {port:?} is not a port number")))?;
        // Like Go's ":port": every interface, IPv6 and IPv4, falling back to IPv4 alone.
        return Ok(vec![
            SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, port)),
            SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, port)),
        ]);
    }
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host(raw)
        .await
        .map_err(|e| {
            err(format!(
                "{raw:?} is not host:port, :port or [::]:port ({e})"
            ))
        })?
        .collect();
    if addrs.is_empty() {
        return Err(err(format!("{raw:?} resolves to no address")));
    }
    Ok(addrs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli(args: &[&str]) -> Cli {
        let mut argv = vec!["testsigma-exporter"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv).expect("arguments parse")
    }

    fn settings(args: &[&str]) -> Result<Settings, String> {
        cli(args)
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
        assert!(s.web_config.is_none());
    }

    #[test]
    fn bad_values_name_their_flag_and_variable() {
        for (args, flag, env) in [
            (
                &["--poll-interval", "abc"][..],
                "--poll-interval",
                "TESTSIGMA_POLL_INTERVAL",
            ),
            (
                &["--base-url", "not a url"],
                "--base-url",
                "TESTSIGMA_BASE_URL",
            ),
            (
                &["--base-url", "ftp://x/api"],
                "--base-url",
                "TESTSIGMA_BASE_URL",
            ),
            (&["--page-size", "0"], "--page-size", "TESTSIGMA_PAGE_SIZE"),
            (
                &["--page-size", "1001"],
                "--page-size",
                "TESTSIGMA_PAGE_SIZE",
            ),
            (
                &["--max-request-rate", "-1"],
                "--max-request-rate",
                "TESTSIGMA_MAX_REQUEST_RATE",
            ),
            (
                &["--max-statuses", "2"],
                "--max-statuses",
                "TESTSIGMA_MAX_STATUSES",
            ),
            (
                &["--request-timeout", "0s"],
                "--request-timeout",
                "TESTSIGMA_REQUEST_TIMEOUT",
            ),
            (
                &["--web.telemetry-path", "metrics"],
                "--web.telemetry-path",
                "TESTSIGMA_EXPORTER_TELEMETRY_PATH",
            ),
            (
                &["--web.telemetry-path", "/:m"],
                "--web.telemetry-path",
                "TESTSIGMA_EXPORTER_TELEMETRY_PATH",
            ),
            (
                &["--web.telemetry-path", "/x/*rest"],
                "--web.telemetry-path",
                "TESTSIGMA_EXPORTER_TELEMETRY_PATH",
            ),
            (
                &["--web.telemetry-path", "/{m}"],
                "--web.telemetry-path",
                "TESTSIGMA_EXPORTER_TELEMETRY_PATH",
            ),
            (
                &["--poll-interval", "18446744073709551615s"],
                "--poll-interval",
                "TESTSIGMA_POLL_INTERVAL",
            ),
            (
                &["--request-timeout", "25h"],
                "--request-timeout",
                "TESTSIGMA_REQUEST_TIMEOUT",
            ),
            (
                &["--web.config.file", "/nonexistent/web.yml"],
                "--web.config.file",
                "TESTSIGMA_EXPORTER_WEB_CONFIG_FILE",
            ),
        ] {
            let msg = settings(args).expect_err("must be rejected");
            assert!(msg.starts_with(&format!("{flag} (env {env}): ")), "{msg}");
        }
    }

    #[test]
    fn missing_key_names_both_sources() {
        let msg = cli(&[]).into_settings(None).unwrap_err().to_string();
        assert!(
            msg.contains("TESTSIGMA_API_KEY") && msg.contains("--api-key-file"),
            "{msg}"
        );
        assert!(cli(&["--demo"]).into_settings(None).is_ok());
    }

    #[test]
    fn key_file_wins_and_debug_hides_the_key() {
        let s = cli(&["--api-key-file", "/k"])
            .into_settings(Some("env".into()))
            .unwrap();
        assert!(matches!(s.key, KeySource::File(ref p) if p.as_os_str() == "/k"));
        let s = settings(&[]).unwrap();
        let shown = format!("{s:?}");
        assert!(!shown.contains("\"k\""), "{shown}");
    }

    #[test]
    fn zero_rate_means_unlimited() {
        assert_eq!(
            settings(&["--max-request-rate", "0"])
                .unwrap()
                .max_request_rate,
            None
        );
        assert_eq!(
            settings(&["--max-request-rate", "2.5"])
                .unwrap()
                .max_request_rate,
            Some(2.5)
        );
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

    #[tokio::test]
    async fn listen_addresses() {
        assert_eq!(
            listen_addrs(":9874").await.unwrap()[1].to_string(),
            "0.0.0.0:9874"
        );
        assert_eq!(
            listen_addrs("[::]:1").await.unwrap()[0].to_string(),
            "[::]:1"
        );
        assert_eq!(
            listen_addrs("127.0.0.1:0").await.unwrap()[0].to_string(),
            "127.0.0.1:0"
        );
        assert!(listen_addrs(":x").await.is_err());
        assert!(listen_addrs("nohostport").await.is_err());
    }
}
