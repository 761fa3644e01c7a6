//! The exporter in this process: settings as the binary builds them, the whole exporter on a
//! loopback port, a single `--once` poll, and the server or the poller alone. The only
//! place the tests call into the library crate (besides `fuzz_decode`'s page decoder).

use std::net::SocketAddr;
use std::sync::Once;
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::Value;
use testsigma_exporter::metrics::Metrics;
use testsigma_exporter::poller::Poller;
use testsigma_exporter::{server, Cli, Settings};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use wiremock::MockServer;

pub use testsigma_exporter::server::Limits;

use super::{base_url, json_ok, mock_api, polls, value, wait_for, KEY};

/// Logs to the test output when `TEST_LOG` is set.
fn init_test_log() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            let _ = tracing_subscriber::fmt()
                .with_max_level(tracing::Level::DEBUG)
                .with_test_writer()
                .try_init();
        }
    });
}

/// Settings as the binary would build them from `args`, with the API key in the environment
/// variable (unless `args` has `--api-key-file`) and fast defaults for tests (no pacing,
/// short timeouts, tiny backoff budget). A flag in `args` replaces its test default. The backoff between retries is 10 ms at base.
pub fn settings(base_url: &str, args: &[&str]) -> Settings {
    let mut argv = vec!["testsigma-exporter".to_owned()];
    for (flag, default) in [
        ("--base-url", base_url),
        ("--max-request-rate", "0"),
        ("--request-timeout", "2s"),
        ("--max-retries", "0"),
    ] {
        if !args.contains(&flag) {
            argv.extend([flag.to_owned(), default.to_owned()]);
        }
    }
    argv.extend(args.iter().map(|a| a.to_string()));
    // The key comes from the variable unless the test gives a key file.
    let env_key = (!args.contains(&"--api-key-file")).then(|| KEY.to_owned());
    let mut settings = Cli::try_parse_from(argv)
        .expect("test arguments parse")
        .into_settings(env_key)
        .expect("test settings are valid");
    settings.retry_backoff = Duration::from_millis(10);
    settings
}

/// The exporter running in this process on a loopback port, or (see [`TestApp::at`]) the
/// binary's server.
pub struct TestApp {
    pub addr: SocketAddr,
    pub http: reqwest::Client,
    /// `http`, or `https` after [`TestApp::use_https`].
    scheme: &'static str,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

/// A listener on `127.0.0.1:0` and its address.
async fn loopback() -> (tokio::net::TcpListener, SocketAddr) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local address");
    (listener, addr)
}

/// Starts the exporter with `settings` on `127.0.0.1:0`.
pub async fn spawn_app(settings: Settings) -> TestApp {
    init_test_log();
    let (listener, addr) = loopback().await;
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(testsigma_exporter::run(settings, listener, async move {
        let _ = stopped.await;
    }));
    TestApp {
        addr,
        http: scraper(),
        scheme: "http",
        stop: Some(stop),
        task: Some(task),
    }
}

/// The exporter against a mock API that answers every users request with `body` and
/// flags `args`, once its first poll has succeeded: `/readyz` answers 200 and the
/// exposition (at `--web.telemetry-path` if given) says `testsigma_up 1`.
pub async fn polled_app(body: Value, args: &[&str]) -> (MockServer, TestApp) {
    let mock = mock_api(json_ok(body)).await;
    let app = spawn_app(settings(&base_url(&mock), args)).await;
    wait_for(
        Duration::from_secs(10),
        "the first successful poll",
        || async { app.get("/readyz").await.0 == 200 },
    )
    .await;
    let path = args
        .iter()
        .position(|a| *a == "--web.telemetry-path")
        .map_or("/metrics", |i| args[i + 1]);
    let (status, text) = app.get(path).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(value(&text, "testsigma_up"), Some(1.0), "{text}");
    (mock, app)
}

/// How long a test waits for one answer of the exporter, or for it to stop, before failing.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// An HTTP client for the exporter, with a deadline on every request.
pub fn scraper() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(ANSWER_TIMEOUT)
        .build()
        .expect("HTTP client")
}

impl TestApp {
    /// A handle on an exporter someone else runs (e.g. the binary) listening on `addr`.
    pub fn at(addr: SocketAddr) -> Self {
        TestApp {
            addr,
            http: scraper(),
            scheme: "http",
            stop: None,
            task: None,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}://{}{path}", self.scheme, self.addr)
    }

    /// From now on, talks HTTPS with `client` (see [`super::TestCa::client_trusting`]).
    pub fn use_https(&mut self, client: reqwest::Client) {
        self.scheme = "https";
        self.http = client;
    }

    /// GETs `path`; returns the status and body.
    pub async fn get(&self, path: &str) -> (u16, String) {
        let response = self.http.get(self.url(path)).send().await.expect("request");
        let status = response.status().as_u16();
        (status, response.text().await.expect("body"))
    }

    /// The `/metrics` text.
    pub async fn scrape(&self) -> String {
        let (status, body) = self.get("/metrics").await;
        assert_eq!(status, 200, "scrape failed: {body}");
        body
    }

    /// Scrapes until `done` holds for the text, or panics after `timeout`.
    pub async fn scrape_until(&self, timeout: Duration, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let text = self.scrape().await;
            if done(&text) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "condition not met within {timeout:?}; last scrape:\n{text}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits for `testsigma_polls_total` (success + failure) to reach `n`.
    pub async fn wait_polls(&self, n: f64) -> String {
        self.scrape_until(Duration::from_secs(20), |t| polls(t) >= n)
            .await
    }

    /// Stops the exporter and waits for it, returning what `run` returned.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let task = self.task.take().expect("running");
        tokio::time::timeout(ANSWER_TIMEOUT, task)
            .await
            .expect("the exporter stops in time")
            .expect("run task")
    }
}

/// One poll in this process, as `--once` does it: whether it succeeded, and the exposition.
pub async fn poll_once(settings: Settings) -> (bool, String) {
    init_test_log();
    let (ok, text) = testsigma_exporter::once(settings)
        .await
        .expect("the poller starts");
    (ok, String::from_utf8(text).expect("exposition is UTF-8"))
}

/// The exporter's router and serve loop alone (no poller, empty metrics) on loopback with
/// `limits`; dropping the sender stops it.
pub async fn spawn_server(limits: Limits) -> (SocketAddr, watch::Sender<bool>) {
    let (listener, addr) = loopback().await;
    let (stop, stopped) = watch::channel(false);
    let app = server::router(Metrics::new(), "/metrics");
    tokio::spawn(server::serve_with(listener, app, None, stopped, limits));
    (addr, stop)
}

/// [`spawn_server`] behind the web configuration at `path` (TLS, basic auth), loaded once.
pub async fn spawn_protected_server(
    limits: Limits,
    path: &std::path::Path,
) -> (SocketAddr, watch::Sender<bool>) {
    init_test_log();
    let (listener, addr) = loopback().await;
    let (stop, stopped) = watch::channel(false);
    let app = server::router(Metrics::new(), "/metrics");
    let path = path.to_owned();
    tokio::spawn(async move {
        server::serve_protected_with(listener, app, &path, stopped, limits)
            .await
            .expect("the web configuration loads");
    });
    (addr, stop)
}

/// What one failed poll through the library's poller (no server, no logs) shows of itself.
pub struct FailedPoll {
    /// The poller's `Debug`.
    pub poller: String,
    /// The error's `Display`: the message the log line carries.
    pub message: String,
    /// The error's `Debug`.
    pub debug: String,
}

/// Builds a poller from `settings` and runs one poll, which must fail.
pub async fn failed_poll(settings: &Settings) -> FailedPoll {
    init_test_log();
    let poller = Poller::new(settings, Metrics::new()).expect("poller");
    let error = poller.poll().await.expect_err("the poll fails");
    FailedPoll {
        poller: format!("{poller:?}"),
        message: error.to_string(),
        debug: format!("{error:?}"),
    }
}

/// A poller and its metrics in this process, polled by hand: the test decides when each
/// poll runs, and so what the API answers to each.
pub struct HandPoller {
    poller: Poller,
    metrics: Metrics,
}

impl HandPoller {
    pub fn new(settings: &Settings) -> Self {
        init_test_log();
        let metrics = Metrics::new();
        let poller = Poller::new(settings, metrics.clone()).expect("poller");
        Self { poller, metrics }
    }

    /// Runs one poll; returns whether it succeeded, and the exposition after it.
    pub async fn poll(&self) -> (bool, String) {
        let ok = self.poller.poll().await.is_ok();
        let text = String::from_utf8(self.metrics.encode(false)).expect("exposition is UTF-8");
        (ok, text)
    }
}
