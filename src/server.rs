//! The HTTP side: an axum [`Router`] over the metrics, and a hardened serve loop for it.
//!
//! Handlers only read what the poller last published, so a scrape answers at once whatever
//! the poller is doing. The serve loop bounds what clients can cost: connections at once,
//! header size, the time to send headers (and to finish a TLS handshake), and the time a
//! read or a write may stall (a client that never reads its answers).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tracing::{debug, warn};

use crate::config::ConfigError;
use crate::metrics::Metrics;
use crate::web::connection::{Connection, Deadlines};
use crate::web::handshake::{handshake, with_deadlines, HandshakeLog};
use crate::web::WebConfig;

/// Connections served at once; more wait in the kernel's accept queue.
pub const MAX_CONNECTIONS: usize = 512;
/// Request head (line and headers) at most; larger gets 431.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;
/// A client has this long to send a request head, then the connection is closed.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// A read or write of a connection that makes no progress for this long closes it.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Open connections get this long to finish at shutdown.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);
/// Requests at once on one HTTP/2 connection (Prometheus sends one at a time).
pub const H2_MAX_STREAMS: u32 = 4;
/// HTTP/2 flow-control windows (what a client may send before the server reads it: requests
/// are GETs) and the answer bytes buffered per stream for a client that reads slowly.
pub const H2_WINDOW: u32 = 64 * 1024;

const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Clone)]
struct AppState {
    metrics: Metrics,
    landing: Arc<str>,
}

/// The exporter's routes: `/`, the telemetry path, `/healthz`, `/readyz`; 404 and 405 otherwise.
pub fn router(metrics: Metrics, telemetry_path: &str) -> Router {
    let state = AppState {
        metrics,
        landing: landing_page(telemetry_path).into(),
    };
    Router::new()
        .route(telemetry_path, get(serve_metrics))
        .route(
            "/",
            get(|State(s): State<AppState>| async move { Html(s.landing.to_string()) }),
        )
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found\n") })
        .with_state(state)
}

/// Serves the cached exposition, gzipped when the client accepts gzip.
async fn serve_metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let exposition = state.metrics.exposition();
    let vary = (header::VARY, "accept-encoding");
    if accepts_gzip(&headers) {
        let encoding = (header::CONTENT_ENCODING, "gzip");
        let head = [(header::CONTENT_TYPE, TEXT_FORMAT), encoding, vary];
        (head, exposition.gzip()).into_response()
    } else {
        (
            [(header::CONTENT_TYPE, TEXT_FORMAT), vary],
            exposition.text(),
        )
            .into_response()
    }
}

/// Whether `Accept-Encoding` gives gzip (or `*` without naming gzip) a non-zero weight.
fn accepts_gzip(headers: &HeaderMap) -> bool {
    let mut gzip = None;
    let mut any = None;
    let values = headers.get_all(header::ACCEPT_ENCODING).iter();
    for item in values
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
    {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or("").trim();
        let weight = parts
            .find_map(|p| {
                let (k, v) = p.split_once('=')?;
                k.trim().eq_ignore_ascii_case("q").then(|| v.trim())
            })
            .map_or(1.0, |q| q.parse::<f32>().unwrap_or(0.0));
        if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
            gzip = Some(weight);
        } else if coding == "*" {
            any = Some(weight);
        }
    }
    gzip.or(any).is_some_and(|q| q > 0.0)
}

async fn readyz(State(state): State<AppState>) -> Response {
    if state.metrics.is_ready() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: no successful poll of the Testsigma API yet\n",
        )
            .into_response()
    }
}

fn landing_page(telemetry_path: &str) -> String {
    let path = telemetry_path
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('"', "&quot;");
    format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>testsigma-exporter</title></head>\n\
         <body><h1>testsigma-exporter</h1>\n<p>Version {version}. Prometheus exporter for the users \
         of a Testsigma Test Management account.</p>\n<ul><li><a href=\"{path}\">Metrics</a></li>\n\
         <li><a href=\"/healthz\">Health</a></li>\n<li><a href=\"/readyz\">Readiness</a></li></ul>\n\
         </body></html>\n",
        version = env!("CARGO_PKG_VERSION"),
    )
}

/// Binds the listen address (`host:port`, `:port`, `[::]:port`); failure names the flag.
pub async fn bind(raw: &str) -> Result<TcpListener, ConfigError> {
    let mut first_error = None;
    for addr in listen_addrs(raw).await? {
        match TcpListener::bind(addr).await {
            Ok(listener) => return Ok(listener),
            // An address in use or forbidden is the answer; another family would only hide it.
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::AddrInUse | io::ErrorKind::PermissionDenied
                ) =>
            {
                return Err(ConfigError::listen(format!(
                    "cannot listen on {raw} ({addr}): {e}"
                )));
            }
            Err(e) => {
                first_error.get_or_insert((addr, e));
            }
        }
    }
    let (addr, e) = first_error.expect("listen_addrs returns at least one address");
    Err(ConfigError::listen(format!(
        "cannot listen on {raw} ({addr}): {e}"
    )))
}

/// Resolves `host:port`, `:port` or `[::]:port` to the addresses to try, in order.
async fn listen_addrs(raw: &str) -> Result<Vec<SocketAddr>, ConfigError> {
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

/// What one client may cost the server. [`Limits::default`] holds the production values;
/// tests shorten the timeouts.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections served at once; more wait in the kernel's accept queue.
    pub max_connections: usize,
    /// Request head (line and headers) at most, in bytes (8 KiB or more); larger gets 431.
    pub max_header_bytes: usize,
    /// Time a client has to send a request head, then the connection is closed.
    pub header_read_timeout: Duration,
    /// Time a read or a write may make no progress (a client that sends requests but never
    /// reads the answers), then the connection is closed.
    pub idle_timeout: Duration,
    /// Time open connections get to finish at shutdown.
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: MAX_CONNECTIONS,
            max_header_bytes: MAX_HEADER_BYTES,
            header_read_timeout: HEADER_READ_TIMEOUT,
            idle_timeout: IDLE_TIMEOUT,
            shutdown_grace: SHUTDOWN_GRACE,
        }
    }
}

/// Serves `app` on `listener` until `shutdown` turns true, then gives open connections
/// [`SHUTDOWN_GRACE`] to finish. With a web configuration that has TLS, each connection
/// first completes a TLS handshake with the certificate in force at that moment.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    web: Option<Arc<WebConfig>>,
    shutdown: watch::Receiver<bool>,
) {
    serve_with(listener, app, web, shutdown, Limits::default()).await
}

/// [`serve`] with other [`Limits`].
pub async fn serve_with(
    listener: TcpListener,
    app: Router,
    web: Option<Arc<WebConfig>>,
    mut shutdown: watch::Receiver<bool>,
    limits: Limits,
) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_header_size(limits.max_header_bytes)
        // hyper panics below 8 KiB.
        .max_buf_size(limits.max_header_bytes.max(8192));
    let h2 = http2_builder(&limits);
    let handshake_log = Arc::new(HandshakeLog::default());
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let stopped = shutdown.clone();
    let stop = async move {
        let _ = shutdown.wait_for(|stop| *stop).await;
    };
    tokio::pin!(stop);
    loop {
        let accepted = tokio::select! {
            _ = &mut stop => break,
            accepted = accept(&listener, &slots) => accepted,
        };
        let Some((stream, peer, slot)) = accepted else {
            continue;
        };
        debug!(%peer, "connection");
        let _ = stream.set_nodelay(true);
        let (app, http, h2, web) = (app.clone(), http.clone(), h2.clone(), web.clone());
        let (handshake_log, stopped) = (handshake_log.clone(), stopped.clone());
        tokio::spawn(async move {
            let idle = limits.idle_timeout;
            let connection = Connection::new();
            let service = connection.service(app);
            let tls = web.and_then(|web| web.current().tls.clone());
            let served = match tls {
                None => {
                    let stream = TokioIo::new(with_deadlines(stream, idle));
                    let serving = http.serve_connection(stream, service);
                    connection.drive(serving, stopped, idle, None).await
                }
                Some(acceptor) => {
                    let timeout = limits.header_read_timeout;
                    match handshake(&acceptor, stream, timeout, idle).await {
                        Ok(stream) if stream.get_ref().1.alpn_protocol() == Some(b"h2") => {
                            let serving = h2.serve_connection(TokioIo::new(stream), service);
                            let deadlines = Deadlines {
                                first_request: timeout,
                                idle,
                            };
                            connection
                                .drive(serving, stopped, idle, Some(deadlines))
                                .await
                        }
                        Ok(stream) => {
                            let serving = http.serve_connection(TokioIo::new(stream), service);
                            connection.drive(serving, stopped, idle, None).await
                        }
                        Err(e) => {
                            handshake_log.failed(peer, &e, std::time::Instant::now());
                            Ok(())
                        }
                    }
                }
            };
            if let Err(e) = served {
                debug!(%peer, error = %e, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    // Every connection holds a slot until it has ended.
    let all = u32::try_from(limits.max_connections.max(1)).unwrap_or(u32::MAX);
    tokio::select! {
        _ = slots.acquire_many(all) => {}
        _ = tokio::time::sleep(limits.shutdown_grace) => debug!("connections still open at shutdown dropped"),
    }
}

/// [`serve_with`] behind the web configuration at `path` (TLS, basic auth, headers), loaded
/// once and not watched: the serve loop's [`Limits`] tested over TLS and HTTP/2.
pub async fn serve_protected_with(
    listener: TcpListener,
    app: Router,
    path: &std::path::Path,
    shutdown: watch::Receiver<bool>,
    limits: Limits,
) -> Result<(), ConfigError> {
    let web = Arc::new(WebConfig::load(path).map_err(ConfigError::web_config)?);
    let app = crate::web::protect(app, web.clone());
    serve_with(listener, app, Some(web), shutdown, limits).await;
    Ok(())
}

/// HTTP/2, when TLS negotiates it by ALPN (never in plain text, as Go's servers): the same
/// connection slots, handshake deadline and socket deadlines as HTTP/1.1, the same bound on
/// the request head, and the watchdog of [`Connection::drive`] for the rest. Few requests
/// at once per connection and small windows: a client cannot make the server hold much for
/// it.
fn http2_builder(limits: &Limits) -> hyper::server::conn::http2::Builder<TokioExecutor> {
    let mut h2 = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    h2.timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(H2_MAX_STREAMS)
        .initial_stream_window_size(H2_WINDOW)
        .initial_connection_window_size(H2_WINDOW)
        .max_send_buf_size(H2_WINDOW as usize);
    h2
}

/// Waits for a free connection slot, then for a connection. Accept errors (out of file
/// descriptors, say) are logged and retried after a pause instead of ending the server.
async fn accept(
    listener: &TcpListener,
    slots: &Arc<Semaphore>,
) -> Option<(TcpStream, SocketAddr, OwnedSemaphorePermit)> {
    let slot = slots
        .clone()
        .acquire_owned()
        .await
        .expect("the connection semaphore is never closed");
    match listener.accept().await {
        Ok((stream, peer)) => Some((stream, peer, slot)),
        Err(e) => {
            warn!(error = %e, "accept failed; retrying in 100 ms");
            tokio::time::sleep(Duration::from_millis(100)).await;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::time::SystemTime;

    use axum::body::{to_bytes, Body, Bytes};
    use axum::http::{HeaderValue, Method, Request};
    use tower::ServiceExt;

    use super::*;
    use crate::api::Reason;
    use crate::census::Census;

    type Reply = (StatusCode, HeaderMap, Bytes);

    async fn send(app: &Router, method: Method, path: &str, headers: &[(&str, &str)]) -> Reply {
        let mut request = Request::builder().method(method).uri(path);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Body::empty()).unwrap();
        let (parts, body) = app.clone().oneshot(request).await.unwrap().into_parts();
        (
            parts.status,
            parts.headers,
            to_bytes(body, usize::MAX).await.unwrap(),
        )
    }

    async fn get(app: &Router, path: &str, headers: &[(&str, &str)]) -> Reply {
        send(app, Method::GET, path, headers).await
    }

    fn text(body: &Bytes) -> &str {
        std::str::from_utf8(body).unwrap()
    }

    fn header(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
        headers.get(name).map(|v| v.to_str().unwrap())
    }

    fn gunzip(body: &[u8]) -> Bytes {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(body)
            .read_to_end(&mut out)
            .unwrap();
        out.into()
    }

    fn publish(metrics: &Metrics, total: u64) {
        let census = Census {
            total,
            by_status: [("active".to_string(), total)].into(),
            reported: Some(total),
            ..Census::default()
        };
        let changes = Default::default();
        metrics.publish(
            &census,
            &changes,
            Duration::from_millis(5),
            SystemTime::now(),
        );
    }

    #[tokio::test]
    async fn landing_page_links_to_the_telemetry_path_and_shows_the_version() {
        for (path, href) in [
            ("/metrics", "href=\"/metrics\""),
            ("/custom/metrics", "href=\"/custom/metrics\""),
            ("/m&x\"y<z", "href=\"/m&amp;x&quot;y&lt;z\""),
        ] {
            let (status, headers, body) = get(&router(Metrics::new(), path), "/", &[]).await;
            let page = text(&body);
            assert_eq!(status, StatusCode::OK, "{path}");
            assert!(header(&headers, header::CONTENT_TYPE)
                .unwrap()
                .starts_with("text/html"));
            assert!(page.contains(href), "{path}: {page}");
            assert!(page.contains(&format!("Version {}.", env!("CARGO_PKG_VERSION"))));
            assert!(!page.contains("/m&x"), "unescaped path in {page}");
        }
    }

    #[tokio::test]
    async fn metrics_before_and_after_a_publish() {
        let metrics = Metrics::new();
        let app = router(metrics.clone(), "/metrics");
        let (status, headers, body) = get(&app, "/metrics", &[]).await;
        let exposition = text(&body);
        assert_eq!(status, StatusCode::OK);
        assert_eq!(header(&headers, header::CONTENT_TYPE), Some(TEXT_FORMAT));
        assert!(exposition.starts_with("# HELP "), "{exposition}");
        assert!(exposition.contains("\ntestsigma_up 0\n"), "{exposition}");
        assert!(
            !exposition
                .lines()
                .any(|l| l.starts_with("testsigma_users ")),
            "{exposition}"
        );

        publish(&metrics, 42);
        let (status, _, body) = get(&app, "/metrics", &[]).await;
        let exposition = text(&body);
        assert_eq!(status, StatusCode::OK);
        assert!(
            exposition.contains("\ntestsigma_users 42\n"),
            "{exposition}"
        );
        assert!(exposition.contains("\ntestsigma_up 1\n"), "{exposition}");
    }

    #[tokio::test]
    async fn custom_telemetry_path_replaces_metrics() {
        let app = router(Metrics::new(), "/custom/metrics");
        let (status, headers, body) = get(&app, "/custom/metrics", &[]).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(header(&headers, header::CONTENT_TYPE), Some(TEXT_FORMAT));
        assert!(text(&body).starts_with("# HELP "));
        let (status, _, _) = get(&app, "/metrics", &[]).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn healthz_always_readyz_once_a_poll_has_succeeded() {
        let metrics = Metrics::new();
        let app = router(metrics.clone(), "/metrics");
        let check = |path: &'static str| {
            let app = app.clone();
            async move {
                let (status, _, body) = get(&app, path, &[]).await;
                (status, String::from_utf8(body.to_vec()).unwrap())
            }
        };
        assert_eq!(check("/healthz").await, (StatusCode::OK, "ok\n".into()));
        let (status, body) = check("/readyz").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");

        publish(&metrics, 1);
        assert_eq!(check("/readyz").await, (StatusCode::OK, "ready\n".into()));
        // Readiness means one poll has succeeded; a later failure does not undo it.
        metrics.fail(Reason::Timeout, Duration::from_secs(1));
        assert_eq!(check("/readyz").await, (StatusCode::OK, "ready\n".into()));
        assert_eq!(check("/healthz").await, (StatusCode::OK, "ok\n".into()));
    }

    #[tokio::test]
    async fn unknown_paths_404_and_other_methods_405() {
        let app = router(Metrics::new(), "/metrics");
        for path in ["/nope", "/metrics/", "/healthz/x", "/index.html"] {
            let (status, _, _) = get(&app, path, &[]).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        }
        for method in [Method::POST, Method::PUT, Method::DELETE] {
            for path in ["/metrics", "/healthz", "/readyz", "/"] {
                let (status, headers, _) = send(&app, method.clone(), path, &[]).await;
                assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
                let allow = header(&headers, header::ALLOW).unwrap_or_default();
                assert!(allow.contains("GET"), "{method} {path}: allow {allow:?}");
            }
        }
    }

    #[tokio::test]
    async fn metrics_gzipped_only_when_accepted() {
        let app = router(Metrics::new(), "/metrics");
        let (_, headers, _) = get(&app, "/metrics", &[("accept-encoding", "gzip;q=0")]).await;
        assert_eq!(header(&headers, header::CONTENT_ENCODING), None);
        for accept in ["gzip", "x-gzip", "br, gzip;q=0.8"] {
            // A rendering is reused for up to a second, so two scrapes in a row get the same
            // bytes unless they straddle a re-rendering; then try again.
            let mut tries = 0;
            let (plain, gzipped) = loop {
                let (_, plain_headers, plain) = get(&app, "/metrics", &[]).await;
                let (status, headers, gzipped) =
                    get(&app, "/metrics", &[("accept-encoding", accept)]).await;
                assert_eq!(status, StatusCode::OK);
                assert_eq!(header(&plain_headers, header::CONTENT_ENCODING), None);
                assert_eq!(
                    header(&plain_headers, header::VARY),
                    Some("accept-encoding")
                );
                assert_eq!(header(&headers, header::CONTENT_ENCODING), Some("gzip"));
                assert_eq!(header(&headers, header::VARY), Some("accept-encoding"));
                assert_eq!(header(&headers, header::CONTENT_TYPE), Some(TEXT_FORMAT));
                let gzipped = gunzip(&gzipped);
                tries += 1;
                if gzipped == plain || tries == 3 {
                    break (plain, gzipped);
                }
            };
            assert!(plain.starts_with(b"# HELP "));
            assert_eq!(text(&gzipped), text(&plain), "{accept}");
        }
    }

    #[test]
    fn accepts_gzip_weighs_codings_per_rfc_9110() {
        let cases: &[(&[&str], bool)] = &[
            (&[], false),
            (&[""], false),
            (&["gzip"], true),
            (&["GZIP"], true),
            (&[" gzip "], true),
            (&["x-gzip"], true),
            (&["deflate, gzip;q=0.5"], true),
            (&["gzip;q=0.001"], true),
            (&["gzip;q=1.000"], true),
            (&["gzip;q=0"], false),
            (&["gzip; q=0.000"], false),
            (&["gzip;Q=0"], false),
            (&["gzip;q=abc"], false),
            (&["*"], true),
            (&["*;q=0"], false),
            (&["identity"], false),
            (&["br, deflate"], false),
            // An explicit weight for gzip wins over `*`, either way round.
            (&["gzip;q=0, *"], false),
            (&["*, gzip;q=0"], false),
            (&["*;q=0, gzip"], true),
            // Separate header lines are one list.
            (&["deflate", "gzip"], true),
            (&["gzip;q=0", "*"], false),
            (&["*;q=0", "gzip"], true),
        ];
        for (values, want) in cases {
            let mut headers = HeaderMap::new();
            for v in *values {
                headers.append(header::ACCEPT_ENCODING, HeaderValue::from_static(v));
            }
            assert_eq!(accepts_gzip(&headers), *want, "Accept-Encoding: {values:?}");
        }
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
