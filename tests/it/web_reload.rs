//! Reloading `--web.config.file` as an attacker or a half-finished rewrite would have it: a
//! version that would weaken protection is refused, and a file that cannot be read without
//! blocking (a FIFO) delays no request and no shutdown. Driven through the binary, whose
//! log says what it refused.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::helpers::*;

const USER: &str = "prometheus";
/// Long enough for the files to have been looked at three times (every second).
const THREE_CHECKS: Duration = Duration::from_millis(3500);
/// How long a log line about a change may take.
const LOGGED: Duration = Duration::from_secs(10);

/// Rewrites `path` in place, as `: > file` or a non-atomic editor does.
fn rewrite_in_place(path: &Path, contents: &[u8]) {
    std::fs::write(path, contents).expect("rewrite the web configuration");
}

/// The binary in `--demo` mode with the web configuration at `path`.
async fn exporter(path: &Path) -> BinApp {
    let path = path.to_str().expect("UTF-8 path");
    spawn_exporter(&["--demo", "--web.config.file", path], &[]).await
}

/// The status of GET `url` by `client`, with `password` for [`USER`] if given; 0 when the
/// request fails (a refused handshake).
async fn status(client: &reqwest::Client, url: &str, password: Option<&str>) -> u16 {
    let mut request = client.get(url);
    if let Some(password) = password {
        request = request.basic_auth(USER, Some(password));
    }
    match request.send().await {
        Ok(response) => response.status().as_u16(),
        Err(_) => 0,
    }
}

#[tokio::test]
async fn an_emptied_or_truncated_file_keeps_basic_auth_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("web.yml");
    let full = format!("basic_auth_users:\n  {USER}: '{}'\n", bcrypt_hash("s3cret"));
    write_atomically(&path, full.as_bytes());
    let app = exporter(&path).await;
    let metrics = app.url("/metrics");
    assert_eq!(status(&app.http, &metrics, None).await, 401);
    assert_eq!(status(&app.http, &metrics, Some("s3cret")).await, 200);

    for (contents, logged) in [
        // The first step of a rewrite with `: > web.yml`.
        (&b""[..], "the file is empty"),
        // A rewrite cut short after the key.
        (
            b"basic_auth_users:\n",
            "basic_auth_users dropped or emptied",
        ),
    ] {
        rewrite_in_place(&path, contents);
        tokio::time::sleep(THREE_CHECKS).await;
        let shown = String::from_utf8_lossy(contents);
        assert_eq!(status(&app.http, &metrics, None).await, 401, "{shown:?}");
        assert_eq!(status(&app.http, &metrics, Some("wrong")).await, 401);
        assert_eq!(status(&app.http, &metrics, Some("s3cret")).await, 200);
        let line = app.wait_log(logged, LOGGED).await;
        assert!(line.contains("level=error"), "{line}");
        assert!(line.contains("the last good one stays in force"), "{line}");
    }
    // The whole file again, with another password: accepted.
    let other = format!("basic_auth_users:\n  {USER}: '{}'\n", bcrypt_hash("n3w"));
    rewrite_in_place(&path, other.as_bytes());
    wait_for(LOGGED, "the new password accepted", || async {
        status(&app.http, &metrics, Some("n3w")).await == 200
    })
    .await;
    assert_eq!(status(&app.http, &metrics, None).await, 401);
}

#[tokio::test]
async fn a_tls_file_cut_after_key_file_keeps_mutual_tls_and_passwords() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("test CA");
    ca.server("exporter").install(
        &dir.path().join("server.crt"),
        &dir.path().join("server.key"),
    );
    let clients = TestCa::new("client CA");
    std::fs::write(dir.path().join("clients.crt"), clients.pem()).unwrap();
    let path = dir.path().join("web.yml");
    let full = format!(
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  \
         client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: clients.crt\n  \
         min_version: TLS13\nbasic_auth_users:\n  {USER}: '{}'\n",
        bcrypt_hash("s3cret")
    );
    write_atomically(&path, full.as_bytes());
    let app = exporter(&path).await;
    let metrics = app.url("/metrics").replacen("http:", "https:", 1);
    let prometheus = ca.client_trusting(Some(&clients.client("prometheus")));
    let stranger = ca.client_trusting(None);
    assert_eq!(status(&prometheus, &metrics, Some("s3cret")).await, 200);
    assert_eq!(status(&stranger, &metrics, None).await, 0);

    let cut = full
        .find("  client_auth_type")
        .expect("the line after key_file");
    rewrite_in_place(&path, &full.as_bytes()[..cut]);
    tokio::time::sleep(THREE_CHECKS).await;
    assert_eq!(
        status(&stranger, &metrics, None).await,
        0,
        "a client without a certificate got through"
    );
    assert_eq!(status(&prometheus, &metrics, None).await, 401);
    assert_eq!(status(&prometheus, &metrics, Some("s3cret")).await, 200);
    let line = app
        .wait_log("refused, as it would weaken protection", LOGGED)
        .await;
    for change in [
        "client_auth_type lowered from RequireAndVerifyClientCert to NoClientCert",
        "min_version lowered from TLS13 to TLS12",
        "basic_auth_users dropped or emptied",
    ] {
        assert!(line.contains(change), "{change}: {line}");
    }
}

/// Replaces `path` with a FIFO that nobody writes to.
fn replace_with_fifo(path: &Path) {
    std::fs::remove_file(path).expect("remove the web configuration");
    let name = std::ffi::CString::new(path.to_str().expect("UTF-8 path")).unwrap();
    // SAFETY: mkfifo reads a NUL-terminated path and creates a FIFO there.
    let rc = unsafe { libc::mkfifo(name.as_ptr(), 0o600) };
    assert_eq!(rc, 0, "mkfifo {}", path.display());
}

#[tokio::test]
async fn a_fifo_in_place_of_the_file_delays_no_request_and_no_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let path: PathBuf = dir.path().join("web.yml");
    let full = format!("basic_auth_users:\n  {USER}: '{}'\n", bcrypt_hash("s3cret"));
    write_atomically(&path, full.as_bytes());
    let mut app = exporter(&path).await;
    let quick = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let (healthz, metrics) = (app.url("/healthz"), app.url("/metrics"));
    assert_eq!(status(&quick, &metrics, Some("s3cret")).await, 200);

    replace_with_fifo(&path);
    let until = Instant::now() + THREE_CHECKS;
    let mut slowest = Duration::ZERO;
    while Instant::now() < until {
        let started = Instant::now();
        assert_eq!(status(&quick, &healthz, None).await, 200, "/healthz");
        assert_eq!(
            status(&quick, &metrics, Some("s3cret")).await,
            200,
            "scrape"
        );
        slowest = slowest.max(started.elapsed());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("with a FIFO as the web configuration: slowest /healthz + scrape {slowest:?}");
    let line = app.wait_log("not a regular file", LOGGED).await;
    assert!(line.contains("level=error"), "{line}");

    // A regular file again, with another password: loaded.
    std::fs::remove_file(&path).unwrap();
    let other = format!("basic_auth_users:\n  {USER}: '{}'\n", bcrypt_hash("n3w"));
    write_atomically(&path, other.as_bytes());
    wait_for(LOGGED, "the new password accepted", || async {
        status(&quick, &metrics, Some("n3w")).await == 200
    })
    .await;

    replace_with_fifo(&path);
    tokio::time::sleep(THREE_CHECKS).await;
    app.signal(libc::SIGTERM);
    let (code, stderr) = app.wait_exit(Duration::from_secs(5)).await;
    assert_eq!(code, Some(0), "{}", stderr.join("\n"));
}
