//! `--web.config.file`: TLS, mutual TLS, basic auth and headers from an exporter-toolkit web
//! configuration; bad files refused at start-up; certificates reloaded when they change.
//! Reloads that would weaken protection and files that hang are in `web_reload`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use serde_json::json;
use wiremock::MockServer;

use crate::helpers::*;

/// A mock API with one active user, and a directory for the web configuration.
async fn api() -> (MockServer, tempfile::TempDir) {
    let mock = mock_api(json_ok(page(&[("u1", "active")], json!(null), Some(1)))).await;
    (mock, tempfile::tempdir().expect("temporary directory"))
}

/// Writes `web.yml` with `yaml` into `dir`; returns its path.
fn web_config(dir: &Path, yaml: &str) -> PathBuf {
    let path = dir.join("web.yml");
    write_atomically(&path, yaml.as_bytes());
    path
}

/// Starts the exporter against `mock` with the web configuration at `path`.
async fn spawn_with(mock: &MockServer, path: &Path) -> TestApp {
    let path = path.to_str().expect("UTF-8 path");
    spawn_app(settings(&base_url(mock), &["--web.config.file", path])).await
}

/// A server certificate from `ca`, installed as `server.crt` and `server.key` in `dir`.
fn install_server_cert(ca: &TestCa, dir: &Path, common_name: &str) -> Issued {
    let issued = ca.server(common_name);
    issued.install(&dir.join("server.crt"), &dir.join("server.key"));
    issued
}

/// How long a change of the files may take to apply (they are looked at every second).
const RELOADED: Duration = Duration::from_secs(10);
/// Long enough for the files to have been looked at three times.
const THREE_CHECKS: Duration = Duration::from_millis(3500);

const TLS_ONLY: &str = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n";

#[tokio::test]
async fn tls_serves_https_and_turns_plain_http_away() {
    let (mock, dir) = api().await;
    let ca = TestCa::new("test CA");
    let served = install_server_cert(&ca, dir.path(), "exporter");
    let mut app = spawn_with(&mock, &web_config(dir.path(), TLS_ONLY)).await;

    let plain = app.get("/metrics").await;
    assert_eq!(plain.0, 400, "{}", plain.1);
    assert!(
        plain.1.contains("HTTP request to an HTTPS server"),
        "{}",
        plain.1
    );

    app.use_https(ca.client_trusting(None));
    let response = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("HTTPS scrape");
    assert_eq!(response.status(), 200);
    assert_eq!(peer_certificate(&response), served.der);
    let text = app.wait_polls(1.0).await;
    assert_eq!(value(&text, "testsigma_users"), Some(1.0), "{text}");

    // A client that does not trust the test CA refuses the server.
    let stranger = TestCa::new("other CA").client_trusting(None);
    assert!(stranger.get(app.url("/metrics")).send().await.is_err());
    app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn tls_versions_are_enforced() {
    let (mock, dir) = api().await;
    let ca = TestCa::new("test CA");
    install_server_cert(&ca, dir.path(), "exporter");
    let yaml = format!("{TLS_ONLY}  min_version: TLS13\n");
    let mut app = spawn_with(&mock, &web_config(dir.path(), &yaml)).await;
    let tls12_only = ca
        .client_builder(None)
        .max_tls_version(reqwest::tls::Version::TLS_1_2)
        .build()
        .unwrap();
    app.use_https(tls12_only);
    assert!(app.http.get(app.url("/healthz")).send().await.is_err());
    app.use_https(ca.client_trusting(None));
    assert_eq!(app.get("/healthz").await.0, 200);
    app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn mutual_tls_needs_a_client_certificate_from_the_ca() {
    let (mock, dir) = api().await;
    let ca = TestCa::new("test CA");
    install_server_cert(&ca, dir.path(), "exporter");
    let clients = TestCa::new("client CA");
    std::fs::write(dir.path().join("clients.crt"), clients.pem()).unwrap();
    let yaml = format!(
        "{TLS_ONLY}  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: clients.crt\n"
    );
    let mut app = spawn_with(&mock, &web_config(dir.path(), &yaml)).await;

    app.use_https(ca.client_trusting(None));
    assert!(app.http.get(app.url("/healthz")).send().await.is_err());
    let forged = TestCa::new("forger").client("prometheus");
    app.use_https(ca.client_trusting(Some(&forged)));
    assert!(app.http.get(app.url("/healthz")).send().await.is_err());

    app.use_https(ca.client_trusting(Some(&clients.client("prometheus"))));
    assert_eq!(app.get("/healthz").await.0, 200);
    let text = app.wait_polls(1.0).await;
    assert_eq!(value(&text, "testsigma_up"), Some(1.0), "{text}");
    app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn client_certificate_is_optional_with_verify_if_given() {
    let (mock, dir) = api().await;
    let ca = TestCa::new("test CA");
    install_server_cert(&ca, dir.path(), "exporter");
    std::fs::write(dir.path().join("ca.crt"), ca.pem()).unwrap();
    let yaml = format!(
        "{TLS_ONLY}  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: ca.crt\n"
    );
    let mut app = spawn_with(&mock, &web_config(dir.path(), &yaml)).await;
    app.use_https(ca.client_trusting(None));
    assert_eq!(app.get("/healthz").await.0, 200);
    app.use_https(ca.client_trusting(Some(&ca.client("prometheus"))));
    assert_eq!(app.get("/healthz").await.0, 200);
    let forged = TestCa::new("forger").client("prometheus");
    app.use_https(ca.client_trusting(Some(&forged)));
    assert!(app.http.get(app.url("/healthz")).send().await.is_err());
    app.stop().await.expect("clean stop");
}

fn basic(user: &str, password: &str) -> String {
    let pair = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {pair}")
}

#[tokio::test]
async fn basic_auth_guards_everything_but_the_probes() {
    let (mock, dir) = api().await;
    let yaml = format!(
        "basic_auth_users:\n  prometheus: '{}'\nhttp_server_config:\n  headers:\n    X-Frame-Options: deny\n",
        bcrypt_hash("s3cret")
    );
    let app = spawn_with(&mock, &web_config(dir.path(), &yaml)).await;
    let get = |path: &str, auth: Option<String>| {
        let mut request = app.http.get(app.url(path));
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        async move { request.send().await.expect("request") }
    };

    for auth in [
        None,
        Some(basic("prometheus", "wrong")),
        Some(basic("nobody", "s3cret")),
        Some("Bearer s3cret".to_owned()),
    ] {
        for path in ["/metrics", "/", "/nowhere"] {
            let response = get(path, auth.clone()).await;
            assert_eq!(response.status(), 401, "{path} with {auth:?}");
            let challenge = response.headers()["www-authenticate"].to_str().unwrap();
            assert!(challenge.starts_with("Basic realm="), "{challenge}");
            assert_eq!(response.headers()["x-frame-options"], "deny");
        }
    }
    let right = Some(basic("prometheus", "s3cret"));
    let response = get("/metrics", right.clone()).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-frame-options"], "deny");
    assert!(response.text().await.unwrap().contains("testsigma_up"));
    assert_eq!(get("/nowhere", right.clone()).await.status(), 404);

    // kubelet probes carry no credentials; their connections are not kept, so clients without
    // credentials cannot hold connection slots through them.
    let health = get("/healthz", None).await;
    assert_eq!(health.status(), 200);
    assert_eq!(health.headers()["x-frame-options"], "deny");
    assert_eq!(health.headers()["connection"], "close");
    let scrape = get("/metrics", right.clone()).await;
    assert!(
        scrape.headers().get("connection").is_none(),
        "a scraper keeps its connection"
    );
    wait_for(
        Duration::from_secs(10),
        "/readyz 200 without credentials",
        || async { get("/readyz", None).await.status() == 200 },
    )
    .await;
    app.stop().await.expect("clean stop");
}

/// The exporter serving [`TLS_ONLY`] over HTTPS with a certificate "first" from a new CA.
struct TlsApp {
    _mock: MockServer,
    dir: tempfile::TempDir,
    ca: TestCa,
    /// The web configuration's path.
    path: PathBuf,
    app: TestApp,
    first: Issued,
}

/// A [`TlsApp`], checked to serve "first".
async fn tls_app() -> TlsApp {
    let (mock, dir) = api().await;
    let ca = TestCa::new("test CA");
    let first = install_server_cert(&ca, dir.path(), "first");
    let path = web_config(dir.path(), TLS_ONLY);
    let mut app = spawn_with(&mock, &path).await;
    app.use_https(ca.client_trusting(None));
    assert_eq!(served_certificate(&app).await, first.der);
    TlsApp {
        _mock: mock,
        dir,
        ca,
        path,
        app,
        first,
    }
}

/// The DER of the certificate `app` shows for `/healthz`, which must answer 200.
async fn served_certificate(app: &TestApp) -> Vec<u8> {
    let response = app
        .http
        .get(app.url("/healthz"))
        .send()
        .await
        .expect("HTTPS request");
    assert_eq!(response.status(), 200);
    peer_certificate(&response)
}

#[tokio::test]
async fn rotated_certificate_is_picked_up_and_a_broken_one_is_not() {
    // The mock is bound, not left to `..`, which would drop it here.
    let TlsApp {
        _mock,
        dir,
        ca,
        path,
        app,
        first: _,
    } = tls_app().await;
    let served = || served_certificate(&app);

    let second = install_server_cert(&ca, dir.path(), "second");
    wait_for(RELOADED, "the renewed certificate served", || async {
        served().await == second.der
    })
    .await;

    // A half-written certificate, then a broken configuration: the last good one stays
    // through a few checks of the files.
    write_atomically(
        &dir.path().join("server.crt"),
        b"-----BEGIN CERTIFICATE-----\nnope\n",
    );
    tokio::time::sleep(THREE_CHECKS).await;
    assert_eq!(served().await, second.der);
    write_atomically(&path, b"tls_server_config: [\n");
    tokio::time::sleep(THREE_CHECKS).await;
    assert_eq!(served().await, second.der);

    // Fixed again: the newest files are loaded.
    write_atomically(&path, TLS_ONLY.as_bytes());
    let third = install_server_cert(&ca, dir.path(), "third");
    wait_for(RELOADED, "the third certificate served", || async {
        served().await == third.der
    })
    .await;
    app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn a_configuration_naming_files_yet_to_come_loads_when_they_arrive() {
    let TlsApp {
        dir,
        ca,
        path,
        app,
        first,
        _mock,
    } = tls_app().await;
    let served = || served_certificate(&app);
    // A ConfigMap updated before its Secret: the new names do not exist yet.
    write_atomically(
        &path,
        b"tls_server_config:\n  cert_file: new.crt\n  key_file: new.key\n",
    );
    tokio::time::sleep(THREE_CHECKS).await;
    assert_eq!(
        served().await,
        first.der,
        "the last good one stays meanwhile"
    );
    let second = ca.server("second");
    second.install(&dir.path().join("new.crt"), &dir.path().join("new.key"));
    wait_for(
        RELOADED,
        "the certificate under its new name served",
        || async { served().await == second.der },
    )
    .await;
    app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn changed_users_apply_within_seconds() {
    let (mock, dir) = api().await;
    let user = |password: &str| {
        format!(
            "basic_auth_users:\n  prometheus: '{}'\n",
            bcrypt_hash(password)
        )
    };
    let path = web_config(dir.path(), &user("old"));
    let app = spawn_with(&mock, &path).await;
    let status = |password: &'static str| {
        let request = app
            .http
            .get(app.url("/metrics"))
            .header("authorization", basic("prometheus", password));
        async move { request.send().await.expect("request").status().as_u16() }
    };
    assert_eq!(status("old").await, 200);
    write_atomically(&path, user("new").as_bytes());
    wait_for(RELOADED, "the old password refused", || async {
        status("old").await == 401
    })
    .await;
    assert_eq!(status("new").await, 200);
    app.stop().await.expect("clean stop");
}

/// Runs the binary with `--web.config.file path`, which must exit at once; returns its exit
/// code and stderr.
async fn start_binary(path: &Path) -> (Option<i32>, String) {
    let path = path.to_str().expect("UTF-8 path");
    let run = run_exporter(
        &[
            "--demo",
            "--web.listen-address",
            "127.0.0.1:0",
            "--web.config.file",
            path,
        ],
        &[],
    )
    .await;
    (run.code, run.stderr)
}

#[tokio::test]
async fn bad_files_are_refused_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("test CA");
    install_server_cert(&ca, dir.path(), "exporter");
    let other = ca.server("other");
    std::fs::write(dir.path().join("other.key"), other.key_pem).unwrap();
    for (yaml, expected) in [
        ("tls_server_config: {cert_file: server.crt, key_file: [x\n", "tls_server_config"),
        // As Go's HTTP/2 set-up refuses it; and what rustls' ring provider cannot do at all.
        ("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  cipher_suites: [TLS_AES_128_GCM_SHA256]\n", "which HTTP/2 requires"),
        ("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  max_version: TLS12\n  cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA]\nhttp_server_config: {http2: false}\n", "none of TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA can be used"),
        ("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  min_version: TLS10\n", "min_version TLS10 is not supported"),
        ("web_server_config: {}\n", "unknown field `web_server_config`"),
        ("tls_server_config: {cert_file: missing.crt, key_file: server.key}\n", "missing.crt: cannot read"),
        ("tls_server_config: {cert_file: server.crt, key_file: other.key}\n", "do not make a usable certificate"),
        ("basic_auth_users: {prometheus: s3cret}\n", "not a bcrypt hash"),
    ] {
        let path = web_config(dir.path(), yaml);
        let (code, stderr) = start_binary(&path).await;
        assert_eq!(code, Some(2), "{yaml:?}: {stderr}");
        let line = stderr.trim_end();
        assert!(!line.contains('\n'), "one line expected: {stderr}");
        assert!(
            line.starts_with("testsigma-exporter: --web.config.file (env TESTSIGMA_EXPORTER_WEB_CONFIG_FILE): "),
            "{line}"
        );
        assert!(line.contains(expected), "{yaml:?}: {line}");
    }
    let (code, stderr) = start_binary(&dir.path().join("absent.yml")).await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("absent.yml: cannot read"), "{stderr}");
    // `--once` serves nothing, but a file that would not load is reported all the same.
    let absent = dir.path().join("absent.yml");
    let run = run_exporter(
        &[
            "--demo",
            "--once",
            "--web.config.file",
            absent.to_str().unwrap(),
        ],
        &[],
    )
    .await;
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(
        run.stdout.is_empty() && run.stderr.contains("absent.yml: cannot read"),
        "{run:?}"
    );
}
