//! What the exporter-toolkit's web config adds beyond TLS and basic auth, seen from a client:
//! HTTP/2 over TLS (on unless `http2: false`), `rate_limit` answering 429 while the probes are
//! spared, and failed TLS handshakes logged as warnings with their reason.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
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
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.pem().as_bytes()).expect("CA PEM"))
        .expect("CA");
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").expect("name"), tcp)
        .await
        .expect("TLS handshake");
    let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
    if alpn.as_deref() != Some(b"h2") {
        return (alpn, None);
    }
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .expect("HTTP/2 handshake");
    tokio::spawn(connection);
    let request = axum::http::Request::get("https://localhost/metrics")
        .body(axum::body::Body::empty())
        .expect("request");
    let response = tokio::time::timeout(ANSWER_TIMEOUT, sender.send_request(request))
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
