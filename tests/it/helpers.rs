//! Shared test helpers: start the exporter against a mock API, scrape it, read values.
//! Set `TEST_LOG=1` to see the exporter's logs.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::{json, Value};
use testsigma_exporter::{Cli, Settings};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// The key the mock API expects.
pub const KEY: &str = "test-key-0123456789";

/// Path of a fixture under `tests/fixtures/`.
pub fn fixture_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// A fixture's JSON.
pub fn fixture(name: &str) -> Value {
    let text = std::fs::read_to_string(fixture_path(name)).expect("fixture exists");
    serde_json::from_str(&text).expect("fixture is JSON")
}

/// Logs to the test output when `TEST_LOG` is set.
pub fn init_test_log() {
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
/// variable and fast defaults for tests (no pacing, short timeouts, tiny backoff budget).
/// A flag in `args` replaces its test default. The backoff between retries is 10 ms at base.
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
    let mut settings = Cli::try_parse_from(argv)
        .expect("test arguments parse")
        .into_settings(Some(KEY.to_owned()))
        .expect("test settings are valid");
    settings.retry_backoff = Duration::from_millis(10);
    settings
}

/// The mock API's base URL (`{mock}/api/v1`).
pub fn base_url(mock: &MockServer) -> String {
    format!("{}/api/v1", mock.uri())
}

/// A users page body in the documented shape.
pub fn page(users: &[(&str, &str)], next: Value, total: Option<u64>) -> Value {
    let data: Vec<Value> = users
        .iter()
        .map(|(id, status)| json!({"id": id, "email": format!("{id}@example.com"), "status": status}))
        .collect();
    let mut body = json!({"message": "", "data": data, "page_info": {"next": next}});
    if let Some(total) = total {
        body["page_info"]["total_count"] = json!(total);
    }
    body
}

/// `GET /api/v1/users`, to be refined with more matchers.
pub fn users_get() -> wiremock::MockBuilder {
    Mock::given(method("GET")).and(path("/api/v1/users"))
}

/// A 200 answer with `body` as JSON.
pub fn json_ok(body: Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(body)
}

/// Mounts a 200 JSON answer for `GET /api/v1/users` (any query) on `mock`.
pub async fn mount_users(mock: &MockServer, body: Value) {
    Mock::given(method("GET"))
        .and(path("/api/v1/users"))
        .respond_with(ResponseTemplate::new(200).set_body_json(body))
        .mount(mock)
        .await;
}

/// The exporter running in this process on a loopback port.
pub struct TestApp {
    pub addr: std::net::SocketAddr,
    pub http: reqwest::Client,
    /// `http`, or `https` after [`TestApp::use_https`].
    scheme: &'static str,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl TestApp {
    /// A handle on an exporter someone else runs (e.g. the binary) listening on `addr`.
    pub fn at(addr: std::net::SocketAddr) -> Self {
        TestApp {
            addr,
            http: reqwest::Client::new(),
            scheme: "http",
            stop: None,
            task: None,
        }
    }
}

/// Starts the exporter with `settings` on `127.0.0.1:0`.
pub async fn spawn_app(settings: Settings) -> TestApp {
    init_test_log();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local address");
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(testsigma_exporter::run(settings, listener, async move {
        let _ = stopped.await;
    }));
    TestApp {
        addr,
        http: reqwest::Client::new(),
        scheme: "http",
        stop: Some(stop),
        task: Some(task),
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}://{}{path}", self.scheme, self.addr)
    }

    /// From now on, talks HTTPS with `client` (see [`TestCa::client`]).
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
        self.task.take().expect("running").await.expect("run task")
    }
}

/// The value of the series `name` (with its labels, e.g. `x{a="b"}`), if present.
pub fn value(text: &str, series: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// Finished polls, successful or not.
pub fn polls(text: &str) -> f64 {
    value(text, r#"testsigma_polls_total{result="success"}"#).unwrap_or(0.0)
        + value(text, r#"testsigma_polls_total{result="failure"}"#).unwrap_or(0.0)
}

/// `status -> count` for every `testsigma_users_by_status` series.
pub fn by_status(text: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("testsigma_users_by_status{status=\"")?;
            let (status, rest) = rest.split_once("\"} ")?;
            Some((status.to_owned(), rest.trim().parse().ok()?))
        })
        .collect()
}

/// Path of the compiled exporter binary.
pub fn exporter_bin() -> &'static str {
    env!("CARGO_BIN_EXE_testsigma-exporter")
}

/// A throw-away certificate authority for TLS tests.
pub struct TestCa {
    cert: rcgen::Certificate,
    key: rcgen::KeyPair,
}

/// A certificate and its key, issued by a [`TestCa`].
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
    pub der: Vec<u8>,
}

impl TestCa {
    pub fn new(name: &str) -> Self {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).expect("CA certificate");
        Self { cert, key }
    }

    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    /// A server certificate for `localhost` and `127.0.0.1`.
    pub fn server(&self, common_name: &str) -> Issued {
        self.issue(
            common_name,
            vec!["localhost".into(), "127.0.0.1".into()],
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        )
    }

    /// A client certificate for mutual TLS.
    pub fn client(&self, common_name: &str) -> Issued {
        self.issue(
            common_name,
            Vec::new(),
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        )
    }

    fn issue(
        &self,
        common_name: &str,
        names: Vec<String>,
        usage: rcgen::ExtendedKeyUsagePurpose,
    ) -> Issued {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(names).expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, common_name);
        params.extended_key_usages = vec![usage];
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .expect("issue certificate");
        Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().to_vec(),
        }
    }

    /// An HTTPS client that trusts only this CA, sends `identity` if given, opens a new
    /// connection for every request (so each sees the certificate in force) and records the
    /// server's certificate (see [`peer_certificate`]).
    pub fn client_trusting(&self, identity: Option<&Issued>) -> reqwest::Client {
        self.client_builder(identity).build().expect("HTTPS client")
    }

    /// [`TestCa::client_trusting`]'s builder, for tests that change more.
    pub fn client_builder(&self, identity: Option<&Issued>) -> reqwest::ClientBuilder {
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(
                reqwest::Certificate::from_pem(self.pem().as_bytes()).expect("CA PEM"),
            )
            .pool_max_idle_per_host(0)
            .tls_info(true)
            .timeout(Duration::from_secs(5));
        if let Some(issued) = identity {
            let pem = format!("{}{}", issued.cert_pem, issued.key_pem);
            builder =
                builder.identity(reqwest::Identity::from_pem(pem.as_bytes()).expect("identity"));
        }
        builder
    }
}

impl Issued {
    /// Writes the certificate and key to `cert` and `key` by rename, as a Kubernetes Secret
    /// volume or cert-manager replaces them.
    pub fn install(&self, cert: &Path, key: &Path) {
        write_atomically(cert, self.cert_pem.as_bytes());
        write_atomically(key, self.key_pem.as_bytes());
    }
}

/// Replaces `path` with `contents` by writing a sibling and renaming it over.
pub fn write_atomically(path: &Path, contents: &[u8]) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, contents).expect("write temporary file");
    std::fs::rename(&tmp, path).expect("rename over");
}

/// The DER of the certificate the server showed, from a client made by
/// [`TestCa::client_trusting`].
pub fn peer_certificate(response: &reqwest::Response) -> Vec<u8> {
    response
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|info| info.peer_certificate())
        .expect("TLS info with the peer certificate")
        .to_vec()
}

/// A bcrypt hash of `password`, at the lowest cost to keep tests fast.
pub fn bcrypt_hash(password: &str) -> String {
    bcrypt::hash(password, 4).expect("bcrypt hash")
}

/// How long a test waits at most for the binary to start, answer or exit.
pub const BIN_TIMEOUT: Duration = Duration::from_secs(20);

/// A command for the exporter binary with `args` and `env`, and none of the caller's
/// `TESTSIGMA_*` variables (so e.g. a developer's own key cannot leak into a test).
pub fn exporter_command(args: &[&str], env: &[(&str, &str)]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(exporter_bin());
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("TESTSIGMA_") {
            cmd.env_remove(name);
        }
    }
    cmd.args(args)
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// What a finished run of the binary left behind.
#[derive(Debug)]
pub struct Finished {
    /// The exit code; `None` if a signal ended it.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    pub fn stderr_lines(&self) -> Vec<&str> {
        self.stderr.lines().collect()
    }

    /// Everything the run printed, stdout then stderr.
    pub fn output(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// Runs the binary to completion (e.g. `--once`, `--help`, a bad flag), within [`BIN_TIMEOUT`].
pub async fn run_exporter(args: &[&str], env: &[(&str, &str)]) -> Finished {
    let child = exporter_command(args, env)
        .spawn()
        .expect("start the binary");
    let out = tokio::time::timeout(BIN_TIMEOUT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("the binary did not exit within {BIN_TIMEOUT:?}: {args:?}"))
        .expect("wait for the binary");
    Finished {
        code: out.status.code(),
        stdout: String::from_utf8(out.stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8(out.stderr).expect("stderr is UTF-8"),
    }
}

/// `testsigma-exporter --once ARGS` with the key in `TESTSIGMA_API_KEY`, run to completion.
pub async fn run_once(args: &[&str]) -> Finished {
    let argv: Vec<&str> = std::iter::once("--once")
        .chain(args.iter().copied())
        .collect();
    run_exporter(&argv, &[("TESTSIGMA_API_KEY", KEY)]).await
}

/// The exporter binary running as a server. Scrape it through `Deref` to [`TestApp`]; it is
/// killed when dropped.
pub struct BinApp {
    app: TestApp,
    child: tokio::process::Child,
    stderr: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    reader: Option<JoinHandle<()>>,
}

impl std::ops::Deref for BinApp {
    type Target = TestApp;
    fn deref(&self) -> &TestApp {
        &self.app
    }
}

/// Starts the binary with `args` (plus `--web.listen-address 127.0.0.1:0`) and `env`, and
/// waits for it to log the address it listens on.
pub async fn spawn_exporter(args: &[&str], env: &[(&str, &str)]) -> BinApp {
    let mut argv = vec!["--web.listen-address", "127.0.0.1:0"];
    argv.extend_from_slice(args);
    let mut child = exporter_command(&argv, env)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start the binary");
    let stderr = child.stderr.take().expect("stderr is piped");
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let (found, address) = oneshot::channel();
    let reader = tokio::spawn({
        let lines = lines.clone();
        async move {
            use tokio::io::AsyncBufReadExt;
            let mut found = Some(found);
            let mut stderr = tokio::io::BufReader::new(stderr).lines();
            while let Ok(Some(line)) = stderr.next_line().await {
                if let Some(addr) = listen_address(&line) {
                    if let Some(found) = found.take() {
                        let _ = found.send(addr);
                    }
                }
                if std::env::var_os("TEST_LOG").is_some() {
                    eprintln!("exporter: {line}");
                }
                lines.lock().expect("stderr lines").push(line);
            }
        }
    });
    let addr = match tokio::time::timeout(BIN_TIMEOUT, address).await {
        Ok(Ok(addr)) => addr,
        _ => {
            let _ = child.start_kill();
            panic!(
                "the binary did not log its listen address; stderr:\n{}",
                lines.lock().expect("stderr lines").join("\n")
            );
        }
    };
    BinApp {
        app: TestApp::at(addr),
        child,
        stderr: lines,
        reader: Some(reader),
    }
}

/// The address in the "testsigma-exporter listening" log line, in logfmt or JSON.
fn listen_address(line: &str) -> Option<std::net::SocketAddr> {
    if !line.contains("testsigma-exporter listening") {
        return None;
    }
    if line.starts_with('{') {
        let v: Value = serde_json::from_str(line).ok()?;
        return v["address"].as_str()?.parse().ok();
    }
    line.split_whitespace()
        .find_map(|field| field.strip_prefix("address="))?
        .parse()
        .ok()
}

impl BinApp {
    pub fn pid(&self) -> i32 {
        self.child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .expect("the binary is running")
    }

    /// Sends `signal` (e.g. `libc::SIGTERM`) to the binary.
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) takes plain integers; the pid is our own live child.
        let rc = unsafe { libc::kill(self.pid(), signal) };
        assert_eq!(rc, 0, "kill({}, {signal}) failed", self.pid());
    }

    /// Waits for the binary to exit, at most `timeout`; returns its exit code (`None` if a
    /// signal ended it) and all it wrote to stderr.
    pub async fn wait_exit(&mut self, timeout: Duration) -> (Option<i32>, Vec<String>) {
        let status = match tokio::time::timeout(timeout, self.child.wait()).await {
            Ok(status) => status.expect("wait for the binary"),
            Err(_) => {
                let _ = self.child.start_kill();
                panic!(
                    "the binary did not exit within {timeout:?}; stderr:\n{}",
                    self.stderr_lines().join("\n")
                );
            }
        };
        if let Some(reader) = self.reader.take() {
            let _ = tokio::time::timeout(BIN_TIMEOUT, reader).await;
        }
        (status.code(), self.stderr_lines())
    }

    /// The stderr lines so far.
    pub fn stderr_lines(&self) -> Vec<String> {
        self.stderr.lock().expect("stderr lines").clone()
    }
}

/// The requests `mock` received carrying `Authorization: Bearer <key>`.
pub async fn requests_with_key(mock: &MockServer, key: &str) -> usize {
    let expected = format!("Bearer {key}");
    mock.received_requests()
        .await
        .expect("request recording is on")
        .iter()
        .filter(|r| {
            r.headers
                .get("authorization")
                .is_some_and(|v| v.as_bytes() == expected.as_bytes())
        })
        .count()
}

/// Waits until `done` holds, checking every 20 ms, or panics after `timeout`.
pub async fn wait_for<F, Fut>(timeout: Duration, what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !done().await {
        assert!(Instant::now() < deadline, "{what}: not within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `testsigma_poll_errors_total{reason="..."}`, 0 if absent.
pub fn errors(text: &str, reason: &str) -> f64 {
    value(
        text,
        &format!("testsigma_poll_errors_total{{reason=\"{reason}\"}}"),
    )
    .unwrap_or(0.0)
}

/// Every `reason` label of `testsigma_poll_errors_total`, as the contract names them (spelled
/// out here rather than taken from the crate, so a renamed reason fails the tests).
pub const REASONS: [&str; 8] = [
    "auth",
    "rate_limited",
    "timeout",
    "connect",
    "http",
    "decode",
    "pagination",
    "too_large",
];

/// The reasons whose error counter is above 0.
pub fn failed_reasons(text: &str) -> Vec<&'static str> {
    REASONS
        .into_iter()
        .filter(|r| errors(text, r) > 0.0)
        .collect()
}

/// One poll in this process, as `--once` does it: whether it succeeded, and the exposition.
pub async fn poll_once(settings: Settings) -> (bool, String) {
    init_test_log();
    let (ok, text) = testsigma_exporter::once(settings)
        .await
        .expect("the poller starts");
    (ok, String::from_utf8(text).expect("exposition is UTF-8"))
}

/// A page of the synthetic account served by [`PagedApi`] and the raw servers: `pages` pages
/// of `per_page` users, linked by the cursors `p1`, `p2`, ...; every third user inactive.
pub fn synthetic_page(page: usize, pages: usize, per_page: usize) -> Value {
    let users: Vec<(String, &str)> = (0..per_page)
        .map(|i| {
            let n = page * per_page + i;
            (
                format!("user-{n}"),
                if n % 3 == 2 { "inactive" } else { "ACTIVE" },
            )
        })
        .collect();
    let users: Vec<(&str, &str)> = users.iter().map(|(id, s)| (id.as_str(), *s)).collect();
    let next = if page + 1 < pages {
        json!(format!("p{}", page + 1))
    } else {
        json!("")
    };
    self::page(&users, next, Some((pages * per_page) as u64))
}

/// The page number a request for the synthetic account asks for (`cursor=pN`; none is 0).
pub fn page_number(query: Option<&str>) -> usize {
    query
        .unwrap_or("")
        .split('&')
        .find_map(|kv| kv.strip_prefix("cursor=p"))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// When each request reached a mock, in order.
#[derive(Clone, Default)]
pub struct Arrivals(Arc<Mutex<Vec<Instant>>>);

impl Arrivals {
    fn push(&self) -> usize {
        let mut times = self.0.lock().unwrap();
        times.push(Instant::now());
        times.len() - 1
    }

    pub fn times(&self) -> Vec<Instant> {
        self.0.lock().unwrap().clone()
    }

    pub fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    /// Time between each request and the one before it.
    pub fn gaps(&self) -> Vec<Duration> {
        self.times().windows(2).map(|w| w[1] - w[0]).collect()
    }
}

/// A wiremock responder that answers the n-th request (from 0) with `answer(n, request)` and
/// records when each came.
pub struct Scripted<F> {
    answer: F,
    arrivals: Arrivals,
}

impl<F> Respond for Scripted<F>
where
    F: Fn(usize, &Request) -> ResponseTemplate + Send + Sync + 'static,
{
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let n = self.arrivals.push();
        (self.answer)(n, request)
    }
}

/// Mounts a [`Scripted`] responder for `GET /api/v1/users`; returns its arrival log.
pub async fn mount_script<F>(mock: &MockServer, answer: F) -> Arrivals
where
    F: Fn(usize, &Request) -> ResponseTemplate + Send + Sync + 'static,
{
    let arrivals = Arrivals::default();
    Mock::given(method("GET"))
        .and(path("/api/v1/users"))
        .respond_with(Scripted {
            answer,
            arrivals: arrivals.clone(),
        })
        .mount(mock)
        .await;
    arrivals
}

/// The live API's answer past its rate limit: HTTP 500, not 429.
pub fn rate_limit_500() -> ResponseTemplate {
    ResponseTemplate::new(500)
        .set_body_json(fixture("error-rate-limit-500.json"))
        .insert_header("x-tms-api-limit", "10")
        .insert_header("x-tms-api-remaining", "0")
        .insert_header("x-tms-api-reset", "1")
}

/// The synthetic account behind a rate limit like the live API's: at most `limit` requests
/// in any second, beyond which it answers [`rate_limit_500`]. Sends the `x-tms-api-*` headers.
pub struct PagedApi {
    pub pages: usize,
    pub per_page: usize,
    pub limit: usize,
    /// Whether answers carry `x-tms-api-limit`, `-remaining` and `-reset`.
    pub quota_headers: bool,
    /// Arrival times, and whether the limit was tripped, of every request.
    log: Arc<Mutex<Vec<(Instant, bool)>>>,
}

impl PagedApi {
    pub fn new(pages: usize, per_page: usize, limit: usize) -> Self {
        Self {
            pages,
            per_page,
            limit,
            quota_headers: true,
            log: Arc::default(),
        }
    }

    /// Answers without the `x-tms-api-*` headers.
    pub fn without_quota_headers(mut self) -> Self {
        self.quota_headers = false;
        self
    }

    /// Mounts it on `GET /api/v1/users`; returns its request log.
    pub async fn mount(self, mock: &MockServer) -> Arc<Mutex<Vec<(Instant, bool)>>> {
        let log = self.log.clone();
        Mock::given(method("GET"))
            .and(path("/api/v1/users"))
            .respond_with(self)
            .mount(mock)
            .await;
        log
    }
}

impl Respond for PagedApi {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let now = Instant::now();
        let mut log = self.log.lock().unwrap();
        let recent = log
            .iter()
            .filter(|(at, _)| now.duration_since(*at) < Duration::from_secs(1))
            .count();
        let tripped = recent >= self.limit;
        log.push((now, tripped));
        if tripped {
            return rate_limit_500();
        }
        let page = page_number(request.url.query());
        let answer = ResponseTemplate::new(200).set_body_json(synthetic_page(
            page,
            self.pages,
            self.per_page,
        ));
        if !self.quota_headers {
            return answer;
        }
        answer
            .insert_header("x-tms-api-limit", self.limit.to_string().as_str())
            .insert_header(
                "x-tms-api-remaining",
                (self.limit - recent - 1).to_string().as_str(),
            )
            .insert_header("x-tms-api-reset", "1")
    }
}

/// What a [`RawServer`] saw of one request.
#[derive(Debug, Clone)]
pub struct RawRequest {
    /// The request target, e.g. `/api/v1/users?page_size=100`.
    pub target: String,
    /// The whole request head.
    pub head: String,
}

/// How a [`RawServer`] answers a request.
pub enum RawReply {
    /// Writes these bytes, then closes.
    Bytes(Vec<u8>),
    /// Closes at once with a TCP reset.
    Reset,
    /// Writes `head`, then `chunk` every `every` until `total` bytes of it are written or the
    /// client leaves, then closes.
    Stream {
        head: Vec<u8>,
        chunk: Vec<u8>,
        every: Duration,
        total: usize,
    },
    /// Says nothing until the client leaves.
    Hang,
}

type RawHandler = dyn Fn(usize, &RawRequest) -> RawReply + Send + Sync;

/// A tiny HTTP/1.1 server on loopback for what wiremock cannot do: resets, bodies that
/// trickle or never end. One request per connection; `handler` gets the request's index.
pub struct RawServer {
    pub addr: std::net::SocketAddr,
    requests: Arc<Mutex<Vec<RawRequest>>>,
    streamed: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl RawServer {
    pub async fn start(
        handler: impl Fn(usize, &RawRequest) -> RawReply + Send + Sync + 'static,
    ) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local address");
        let handler: Arc<RawHandler> = Arc::new(handler);
        let requests = Arc::new(Mutex::new(Vec::new()));
        let streamed = Arc::new(AtomicU64::new(0));
        let task = {
            let requests = requests.clone();
            let streamed = streamed.clone();
            tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    tokio::spawn(raw_connection(
                        stream,
                        handler.clone(),
                        requests.clone(),
                        streamed.clone(),
                    ));
                }
            })
        };
        Self {
            addr,
            requests,
            streamed,
            task,
        }
    }

    /// `http://{addr}/api/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/api/v1", self.addr)
    }

    pub fn requests(&self) -> Vec<RawRequest> {
        self.requests.lock().unwrap().clone()
    }

    /// Bytes of `Stream` chunks written so far, over all connections.
    pub fn streamed(&self) -> u64 {
        self.streamed.load(Ordering::Relaxed)
    }
}

impl Drop for RawServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn raw_connection(
    mut stream: tokio::net::TcpStream,
    handler: Arc<RawHandler>,
    requests: Arc<Mutex<Vec<RawRequest>>>,
    streamed: Arc<AtomicU64>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
        if head.len() > 1 << 20 {
            return;
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let target = head.split(' ').nth(1).unwrap_or("").to_owned();
    let request = RawRequest { target, head };
    let n = {
        let mut all = requests.lock().unwrap();
        all.push(request.clone());
        all.len() - 1
    };
    match handler(n, &request) {
        RawReply::Bytes(bytes) => {
            let _ = stream.write_all(&bytes).await;
            let _ = stream.shutdown().await;
        }
        RawReply::Reset => {
            let _ = stream.set_zero_linger();
            drop(stream);
        }
        RawReply::Stream {
            head,
            chunk,
            every,
            total,
        } => {
            if stream.write_all(&head).await.is_err() {
                return;
            }
            let mut sent = 0;
            while sent < total {
                if stream.write_all(&chunk).await.is_err() {
                    return;
                }
                sent += chunk.len();
                streamed.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                if !every.is_zero() {
                    tokio::time::sleep(every).await;
                }
            }
            let _ = stream.shutdown().await;
        }
        RawReply::Hang => {
            // Until the client closes its side.
            while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
        }
    }
}

/// A complete HTTP/1.1 response that closes the connection.
pub fn http_response(status: u16, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status} X\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

/// One chunk of a `transfer-encoding: chunked` body.
pub fn chunk(data: &[u8]) -> Vec<u8> {
    let mut out = format!("{:x}\r\n", data.len()).into_bytes();
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
    out
}
