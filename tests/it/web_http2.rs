//! What the exporter-toolkit's web config adds beyond TLS and basic auth, seen from a client:
//! HTTP/2 over TLS (on unless `http2: false`) with the same limits as HTTP/1.1, `rate_limit`
//! answering 429 while the probes are spared, and failed TLS handshakes logged as warnings
//! with their reason.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde_json::json;

use crate::helpers::*;

const TLS: &str = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n";

/// A server certificate from `ca` in `dir` and `web.yml` with `yaml`; returns its path.
fn web_config(ca: &TestCa, dir: &Path, yaml: &str) -> String {
    ca.server("exporter")
        .install(&dir.join("server.crt"), &dir.join("server.key"));
    let path = dir.join("web.yml");
    write_atomically(&path, yaml.as_bytes());
    path.display().to_string()
}

async fn exporter(path: &str) -> (wiremock::MockServer, TestApp) {
    let mock = mock_api(json_ok(page(&[("u1", "active")], json!(null), Some(1)))).await;
    let app = spawn_app(settings(&base_url(&mock), &["--web.config.file", path])).await;
    (mock, app)
}

/// Connects over TLS offering h2 and HTTP/1.1; returns the protocol ALPN settled on and,
/// over h2, the status of `GET /metrics`.
async fn h2_get(addr: SocketAddr, ca: &TestCa) -> (Option<Vec<u8>>, Option<u16>) {
    let tls = tls_connect(addr, ca.rustls_client())
        .await
        .expect("TLS handshake");
    let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
    if alpn.as_deref() != Some(b"h2") {
        return (alpn, None);
    }
    let mut h2 = h2_connect(addr, ca.rustls_client(), &h2_client())
        .await
        .expect("HTTP/2");
    let response = tokio::time::timeout(ANSWER_TIMEOUT, h2.get("/metrics", None))
        .await
        .expect("an answer in time")
        .expect("HTTP/2 answer");
    assert_eq!(response.version(), axum::http::Version::HTTP_2);
    (alpn, Some(response.status().as_u16()))
}

#[tokio::test]
async fn http2_is_served_over_tls_unless_turned_off() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let ca = TestCa::new("test CA");
    let path = web_config(&ca, dir.path(), TLS);
    let (_mock, app) = exporter(&path).await;
    assert_eq!(
        h2_get(app.addr, &ca).await,
        (Some(b"h2".to_vec()), Some(200))
    );
    app.stop().await.expect("clean stop");

    let path = web_config(
        &ca,
        dir.path(),
        &format!("{TLS}http_server_config:\n  http2: false\n"),
    );
    let (_mock, app) = exporter(&path).await;
    assert_eq!(
        h2_get(app.addr, &ca).await,
        (Some(b"http/1.1".to_vec()), None)
    );
    app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn rate_limit_answers_429_and_spares_the_probes() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("web.yml");
    write_atomically(&path, b"rate_limit:\n  interval: 1h\n  burst: 2\n");
    let (_mock, app) = exporter(path.to_str().expect("UTF-8 path")).await;
    assert_eq!(app.get("/metrics").await.0, 200);
    assert_eq!(app.get("/metrics").await.0, 200);
    let (status, body) = app.get("/metrics").await;
    assert_eq!((status, body.as_str()), (429, "Too Many Requests\n"));
    assert_eq!(app.get("/").await.0, 429);
    for _ in 0..5 {
        assert_eq!(app.get("/healthz").await.0, 200);
    }
    app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn a_failed_handshake_is_a_warning_with_its_reason() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let ca = TestCa::new("test CA");
    let path = web_config(&ca, dir.path(), TLS);
    let bin = spawn_exporter(&["--demo", "--web.config.file", &path], &[]).await;
    // A client that trusts another CA refuses the server's certificate with an alert.
    let stranger = TestCa::new("other CA").client_trusting(None);
    let url = format!("https://{}/metrics", bin.addr);
    assert!(stranger.get(&url).send().await.is_err());
    let line = bin.wait_log("TLS handshake failed", BIN_TIMEOUT).await;
    assert!(line.contains("level=warn"), "{line}");
    assert!(
        line.contains("UnknownCA") && line.contains("peer=127.0.0.1"),
        "{line}"
    );
}

const USER: &str = "prometheus";

/// TLS and one user, `prometheus` with password `s3cret`.
fn tls_and_user(ca: &TestCa, dir: &Path) -> String {
    let yaml = format!(
        "{TLS}basic_auth_users:\n  {USER}: '{}'\n",
        bcrypt_hash("s3cret")
    );
    web_config(ca, dir, &yaml)
}

fn basic(password: &str) -> String {
    use base64::Engine;
    let pair = format!("{USER}:{password}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

/// Waits this long for the server to close a connection (the production limits are 10 s
/// for a first request and 30 s idle; the tests that wait for those shorten them).
const CLOSE_WAIT: Duration = Duration::from_secs(5);

#[tokio::test]
async fn a_refused_http2_client_loses_its_connection_after_the_answer() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let ca = TestCa::new("test CA");
    let path = tls_and_user(&ca, dir.path());
    let (_mock, app) = exporter(&path).await;
    let client = h2_client();
    let connect = || h2_connect(app.addr, ca.rustls_client(), &client);

    // A wrong password: the 401 arrives, then a GOAWAY closes the connection.
    let mut h2 = connect().await.expect("HTTP/2");
    let answer = h2
        .get("/metrics", Some(&basic("guess")))
        .await
        .expect("answer");
    assert_eq!(answer.status(), 401);
    drop(answer);
    assert!(h2.closes_within(CLOSE_WAIT).await, "still open after a 401");

    // No credentials at all, and a probe (open to anyone) while users are set: likewise.
    let mut h2 = connect().await.expect("HTTP/2");
    assert_eq!(
        h2.get("/metrics", None).await.expect("answer").status(),
        401
    );
    assert!(h2.closes_within(CLOSE_WAIT).await, "still open after a 401");
    let mut h2 = connect().await.expect("HTTP/2");
    assert_eq!(
        h2.get("/healthz", None).await.expect("answer").status(),
        200
    );
    assert!(
        h2.closes_within(CLOSE_WAIT).await,
        "still open after a probe"
    );

    // The right password keeps the connection for the next scrapes.
    let mut h2 = connect().await.expect("HTTP/2");
    for _ in 0..3 {
        let answer = h2.get("/metrics", Some(&basic("s3cret"))).await;
        assert_eq!(answer.expect("answer").status(), 200);
    }
    assert!(!h2.closes_within(Duration::from_millis(500)).await);
    app.stop().await.expect("clean stop");
}

/// One HTTP/2 frame: length, type, flags, stream, payload.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = u32::try_from(payload.len()).expect("small").to_be_bytes()[1..].to_vec();
    out.extend([kind, flags]);
    out.extend(stream.to_be_bytes());
    out.extend(payload);
    out
}

/// A hand-made HTTP/2 client that sends one GET of /metrics with a wrong password and then
/// answers no PING (so the server's graceful GOAWAY never completes). Returns whether a
/// GOAWAY came, and whether the server closed the connection within `limit`.
async fn refused_without_pong(addr: SocketAddr, ca: &TestCa, limit: Duration) -> (bool, bool) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tls = tls_connect(addr, ca.rustls_client())
        .await
        .expect("TLS handshake");
    let auth = basic("guess");
    // HPACK: :method GET, :scheme https (static table), then literals with indexed names:
    // :authority (1), :path (4), authorization (23, past the 4-bit prefix: 15 + 8).
    let mut block = vec![0x82, 0x87];
    for (index, value) in [(1u8, "localhost"), (4, "/metrics")] {
        block.extend([index, u8::try_from(value.len()).expect("short")]);
        block.extend(value.as_bytes());
    }
    block.extend([0x0f, 0x08, u8::try_from(auth.len()).expect("short")]);
    block.extend(auth.as_bytes());
    let mut hello = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    hello.extend(frame(4, 0, 0, &[]));
    hello.extend(frame(1, 0x5, 1, &block));
    tls.write_all(&hello).await.expect("request");
    let mut goaway = false;
    let closed = tokio::time::timeout(limit, async {
        loop {
            let mut head = [0u8; 9];
            if tls.read_exact(&mut head).await.is_err() {
                return;
            }
            let length =
                usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
            let mut payload = vec![0u8; length];
            if tls.read_exact(&mut payload).await.is_err() {
                return;
            }
            match head[3] {
                // SETTINGS are acknowledged; PINGs are not.
                4 if head[4] & 1 == 0 => {
                    let _ = tls.write_all(&frame(4, 1, 0, &[])).await;
                }
                7 => goaway = true,
                _ => {}
            }
        }
    })
    .await
    .is_ok();
    (goaway, closed)
}

#[tokio::test]
async fn a_refused_http2_client_that_answers_no_ping_loses_its_connection_too() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let ca = TestCa::new("test CA");
    let path = tls_and_user(&ca, dir.path());
    let (_mock, app) = exporter(&path).await;
    let (goaway, closed) = refused_without_pong(app.addr, &ca, CLOSE_WAIT).await;
    assert!(goaway, "no GOAWAY");
    assert!(closed, "still open after a 401 and an unanswered PING");
    app.stop().await.expect("clean stop");
}

fn short_timeouts() -> Limits {
    Limits {
        header_read_timeout: Duration::from_millis(500),
        idle_timeout: Duration::from_secs(1),
        ..Limits::default()
    }
}

/// A client that PINGs more often than the idle timeout, so that its socket never looks idle.
fn pinging_client() -> hyper::client::conn::http2::Builder<hyper_util::rt::TokioExecutor> {
    let mut client = h2_client();
    client
        .timer(hyper_util::rt::TokioTimer::new())
        .keep_alive_interval(Duration::from_millis(200))
        .keep_alive_while_idle(true);
    client
}

#[tokio::test]
async fn an_http2_connection_must_send_a_request_in_time_and_not_idle() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let ca = TestCa::new("test CA");
    let path = web_config(&ca, dir.path(), TLS);
    let (addr, _stop) = spawn_protected_server(short_timeouts(), Path::new(&path)).await;
    // PINGs and no request: closed after the header timeout.
    let h2 = h2_connect(addr, ca.rustls_client(), &pinging_client())
        .await
        .expect("HTTP/2");
    assert!(h2.closes_within(CLOSE_WAIT).await, "open with no request");
    // One request, then PINGs only: closed after the idle timeout.
    let mut h2 = h2_connect(addr, ca.rustls_client(), &pinging_client())
        .await
        .expect("HTTP/2");
    let answer = h2.get("/healthz", None).await.expect("answer");
    assert_eq!(answer.status(), 200);
    drop(answer);
    assert!(h2.closes_within(CLOSE_WAIT).await, "open while idle");
}

#[tokio::test]
async fn an_http2_client_that_never_reads_its_answer_loses_its_connection() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let ca = TestCa::new("test CA");
    let path = web_config(&ca, dir.path(), TLS);
    let (addr, _stop) = spawn_protected_server(short_timeouts(), Path::new(&path)).await;
    // A window far smaller than the exposition, never widened: the body is not read.
    let mut client = pinging_client();
    client.initial_stream_window_size(64);
    let mut h2 = h2_connect(addr, ca.rustls_client(), &client)
        .await
        .expect("HTTP/2");
    let answer = h2.get("/metrics", None).await.expect("answer");
    assert_eq!(answer.status(), 200);
    assert!(
        h2.closes_within(CLOSE_WAIT).await,
        "open with an answer not read"
    );
    drop(answer);
}

/// More attackers than connection slots (512), over HTTP/2.
const ATTACKERS: usize = 520;

// Two worker threads, so that the scraper is not queued behind the attackers' tasks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verified_credentials_scrape_during_an_http2_password_flood() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let ca = TestCa::new("test CA");
    let path = tls_and_user(&ca, dir.path());
    let bin = spawn_exporter(&["--demo", "--web.config.file", &path], &[]).await;
    let scraper = ca
        .client_builder(None)
        .timeout(Duration::from_secs(10))
        .build()
        .expect("HTTPS client");
    let url = format!("https://localhost:{}/metrics", bin.addr.port());
    let scrape = || async {
        let sent = scraper.get(&url).basic_auth(USER, Some("s3cret")).send();
        sent.await.map(|response| response.status().as_u16())
    };
    // Verified once, so the credentials are in the cache.
    assert_eq!(scrape().await.expect("first scrape"), 200);

    let flood = h2_password_flood(
        bin.addr,
        ca.rustls_client(),
        USER,
        ATTACKERS,
        Duration::from_millis(500),
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    for i in 0..5 {
        match scrape().await {
            Ok(200) => {}
            other => panic!("scrape {i} during the HTTP/2 flood: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let statuses = flood.stop().await;
    eprintln!("the HTTP/2 flood saw {statuses:?}");
    let refused: u64 = [401, 429].iter().filter_map(|s| statuses.get(s)).sum();
    assert!(
        refused >= ATTACKERS as u64,
        "too small a flood: {statuses:?}"
    );
    assert!(!statuses.contains_key(&200), "a guess got in: {statuses:?}");
}
