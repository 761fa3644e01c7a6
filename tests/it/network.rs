//! Behind a corporate network, as the real binary: the API's certificate signed by a private
//! CA (trusted through `--api-ca-file`, `SSL_CERT_FILE` or `SSL_CERT_DIR`, refused as `tls`
//! at once without them), an HTTPS proxy reached through CONNECT, `NO_PROXY`, and a CA file
//! that cannot be used.

use std::path::PathBuf;

use wiremock::MockServer;

use crate::helpers::*;

/// The private CA, its certificate in a file, and the API behind HTTPS with a certificate
/// it issued for `localhost` and `127.0.0.1`.
struct PrivateApi {
    mock: MockServer,
    front: TlsFront,
    _dir: tempfile::TempDir,
    ca_file: PathBuf,
}

impl PrivateApi {
    async fn start() -> Self {
        Self::with_certificate(|ca| ca.server("api")).await
    }

    async fn with_certificate(issue: impl FnOnce(&TestCa) -> Issued) -> Self {
        let ca = TestCa::new("Corporate Inspection CA");
        let mock = mock_api(json_ok(fixture("users-documented.json"))).await;
        let front = TlsFront::start(&issue(&ca), *mock.address()).await;
        let dir = tempfile::tempdir().expect("temporary directory");
        let ca_file = dir.path().join("corporate-ca.pem");
        std::fs::write(&ca_file, ca.pem()).expect("write the CA file");
        Self {
            mock,
            front,
            _dir: dir,
            ca_file,
        }
    }

    fn ca_file(&self) -> &str {
        self.ca_file.to_str().expect("UTF-8 path")
    }
}

/// `--once` against `base_url` with the key and `env`, and `args` after it.
async fn once(base_url: &str, args: &[&str], env: &[(&str, &str)]) -> Finished {
    let mut argv = vec!["--once", "--base-url", base_url, "--max-request-rate", "0"];
    argv.extend_from_slice(args);
    let mut env = env.to_vec();
    env.push(("TESTSIGMA_API_KEY", KEY));
    run_exporter(&argv, &env).await
}

fn assert_counted(run: &Finished) {
    assert_eq!(run.code, Some(0), "{}", run.output());
    assert_eq!(
        value(&run.stdout, "testsigma_up"),
        Some(1.0),
        "{}",
        run.output()
    );
    assert_eq!(value(&run.stdout, "testsigma_users"), Some(2.0));
}

#[tokio::test]
async fn a_private_ca_is_trusted_through_api_ca_file_or_its_variable() {
    let api = PrivateApi::start().await;
    let base = api.front.base_url("localhost");
    assert_counted(&once(&base, &["--api-ca-file", api.ca_file()], &[]).await);
    assert_counted(&once(&base, &[], &[("TESTSIGMA_API_CA_FILE", api.ca_file())]).await);
    assert_eq!(requests_with_key(&api.mock, KEY).await, 2);
}

#[tokio::test]
async fn the_system_store_is_read_from_ssl_cert_file_and_ssl_cert_dir() {
    let api = PrivateApi::start().await;
    let base = api.front.base_url("127.0.0.1");
    assert_counted(&once(&base, &[], &[("SSL_CERT_FILE", api.ca_file())]).await);
    let dir = api.ca_file.parent().expect("the CA file's directory");
    let dir = dir.to_str().expect("UTF-8 path");
    assert_counted(&once(&base, &[], &[("SSL_CERT_DIR", dir)]).await);
    assert_eq!(requests_with_key(&api.mock, KEY).await, 2);
}

#[tokio::test]
async fn an_untrusted_certificate_fails_as_tls_after_one_request() {
    let api = PrivateApi::start().await;
    let base = api.front.base_url("127.0.0.1");
    let run = once(&base, &["--max-retries", "3"], &[]).await;
    assert_eq!(run.code, Some(1), "{}", run.output());
    assert_eq!(failed_reasons(&run.stdout), ["tls"], "{}", run.stdout);
    assert_eq!(errors(&run.stdout, "tls"), 1.0);
    let sent = value(&run.stdout, r#"testsigma_api_requests_total{code="error"}"#);
    assert_eq!(sent, Some(1.0), "{}", run.stdout);
    assert_eq!(api.front.connections(), 1, "one connection, no retry");
    assert_eq!(request_count(&api.mock).await, 0);
    // The log line names the problem and both ways to trust the CA.
    let failed = run
        .stderr_lines()
        .into_iter()
        .find(|l| l.contains("poll failed"))
        .unwrap_or_else(|| panic!("no failure logged:\n{}", run.stderr));
    for needed in [
        "reason=tls",
        "UnknownIssuer",
        "not signed by a CA this host trusts",
        "--api-ca-file",
        "TESTSIGMA_API_CA_FILE",
        "update-ca-certificates",
        "SSL_CERT_FILE",
    ] {
        assert!(failed.contains(needed), "{needed:?} missing from: {failed}");
    }
    assert!(!run.stderr.contains("retrying"), "{}", run.stderr);
    assert!(!run.output().contains(KEY));
}

#[tokio::test]
async fn a_certificate_for_another_name_fails_as_tls() {
    let api = PrivateApi::with_certificate(|ca| ca.server_for("api", &["other.example"])).await;
    let base = api.front.base_url("localhost");
    let run = once(&base, &["--api-ca-file", api.ca_file()], &[]).await;
    assert_eq!(run.code, Some(1), "{}", run.output());
    assert_eq!(failed_reasons(&run.stdout), ["tls"], "{}", run.stdout);
    assert_eq!(api.front.connections(), 1);
    assert!(
        run.stderr
            .contains(r#"certificate not valid for name \"localhost\""#),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("check the host name in --base-url"));
}

#[tokio::test]
async fn https_proxy_carries_the_api_through_a_connect_tunnel_it_cannot_read() {
    let api = PrivateApi::start().await;
    let proxy = ConnectProxy::start().await;
    // A host name, not an address: the proxy, not the exporter, connects to it.
    let base = api.front.base_url("localhost");
    let run = once(
        &base,
        &["--api-ca-file", api.ca_file()],
        &[("HTTPS_PROXY", &proxy.url())],
    )
    .await;
    assert_counted(&run);
    let tunnels = proxy.tunnels();
    assert_eq!(tunnels.len(), 1, "{tunnels:?}");
    assert_eq!(api.front.connections(), 1, "the API was reached through it");
    let tunnel = &tunnels[0];
    let port = base.split(':').nth(2).and_then(|p| p.split('/').next());
    let target = format!("CONNECT localhost:{} HTTP/1.1\r\n", port.expect("port"));
    assert!(tunnel.head.starts_with(&target), "{:?}", tunnel.head);
    // The proxy saw a TLS handshake and ciphertext: not the key, nor the request.
    assert!(!tunnel.head.contains(KEY), "{:?}", tunnel.head);
    assert_eq!(
        tunnel.sent.first(),
        Some(&0x16),
        "a TLS handshake record first"
    );
    let sent = String::from_utf8_lossy(&tunnel.sent);
    assert!(!sent.contains(KEY) && !sent.contains("/api/v1/users"));
    assert_eq!(requests_with_key(&api.mock, KEY).await, 1);
}

#[tokio::test]
async fn no_proxy_bypasses_the_proxy_for_the_hosts_it_names() {
    let api = PrivateApi::start().await;
    let proxy = ConnectProxy::start().await;
    let base = api.front.base_url("localhost");
    let proxy_url = proxy.url();
    // NO_PROXY naming another host: still through the proxy; naming this one: direct.
    for (no_proxy, tunnels) in [("example.com", 1), ("example.com, localhost", 1)] {
        let env = [("HTTPS_PROXY", proxy_url.as_str()), ("NO_PROXY", no_proxy)];
        assert_counted(&once(&base, &["--api-ca-file", api.ca_file()], &env).await);
        assert_eq!(proxy.tunnels().len(), tunnels, "NO_PROXY={no_proxy}");
    }
    assert_eq!(api.front.connections(), 2);
}

#[tokio::test]
async fn a_proxy_that_refuses_the_tunnel_fails_as_connect_naming_the_proxy() {
    let proxy = ConnectProxy::start().await;
    // The test proxy opens tunnels to loopback only: this one it refuses with 403.
    let run = once(
        "https://api.example:443/api/v1",
        &["--max-retries", "0"],
        &[("HTTPS_PROXY", &proxy.url())],
    )
    .await;
    assert_eq!(run.code, Some(1), "{}", run.output());
    assert_eq!(failed_reasons(&run.stdout), ["connect"], "{}", run.stdout);
    let tunnels = proxy.tunnels();
    assert_eq!(tunnels.len(), 1, "{tunnels:?}");
    assert!(tunnels[0].head.starts_with("CONNECT api.example:443 "));
    assert!(
        run.stderr.contains("the proxy (HTTPS_PROXY, NO_PROXY)"),
        "{}",
        run.stderr
    );
}

#[tokio::test]
async fn a_ca_file_that_cannot_be_used_stops_start_up_with_exit_2() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let missing = dir.path().join("missing.pem");
    let no_certificate = dir.path().join("key-only.pem");
    std::fs::write(
        &no_certificate,
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .expect("write the file");
    let (missing, no_certificate) = (missing.to_str().unwrap(), no_certificate.to_str().unwrap());
    for (args, env, file, problem) in [
        (
            vec!["--once", "--api-ca-file", missing],
            vec![],
            missing,
            "cannot read it",
        ),
        (
            vec!["--once"],
            vec![("TESTSIGMA_API_CA_FILE", no_certificate)],
            no_certificate,
            "holds no PEM certificate",
        ),
        // Serving, not only --once.
        (
            vec![
                "--web.listen-address",
                "127.0.0.1:0",
                "--api-ca-file",
                missing,
            ],
            vec![],
            missing,
            "cannot read it",
        ),
    ] {
        let mut env = env;
        env.push(("TESTSIGMA_API_KEY", KEY));
        let run = run_exporter(&args, &env).await;
        assert_eq!(run.code, Some(2), "{args:?}: {}", run.output());
        let lines = run.stderr_lines();
        let line = lines.last().expect("an error line");
        assert!(
            line.starts_with(&format!(
                "testsigma-exporter: --api-ca-file (env TESTSIGMA_API_CA_FILE): {file}: {problem}"
            )),
            "{line}"
        );
    }
}
