//! The HTTP side: an axum [`Router`] over the metrics, and a hardened serve loop for it.
//!
//! Handlers only read what the poller last published, so a scrape answers at once whatever
//! the poller is doing. The serve loop bounds what clients can cost: connections at once,
//! header size, and the time to send headers.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tower_http::compression::CompressionLayer;
use tracing::{debug, warn};

use crate::config::{listen_addrs, ConfigError};
use crate::metrics::Metrics;

/// Connections served at once; more wait in the kernel's accept queue.
pub const MAX_CONNECTIONS: usize = 512;
/// Request head (line and headers) at most; larger gets 431.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;
/// A client has this long to send a request head, then the connection is closed.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Open connections get this long to finish at shutdown.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

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
        .route(
            telemetry_path,
            get(serve_metrics).layer(
                CompressionLayer::new()
                    .gzip(true)
                    .no_br()
                    .no_deflate()
                    .no_zstd(),
            ),
        )
        .route(
            "/",
            get(|State(s): State<AppState>| async move { Html(s.landing.to_string()) }),
        )
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found\n") })
        .with_state(state)
}

async fn serve_metrics(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, TEXT_FORMAT)],
        state.metrics.encode(true),
    )
        .into_response()
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
    let mut last = None;
    for addr in listen_addrs(raw).await? {
        match TcpListener::bind(addr).await {
            Ok(listener) => return Ok(listener),
            Err(e) => last = Some((addr, e)),
        }
    }
    let (addr, e) = last.expect("listen_addrs returns at least one address");
    Err(ConfigError::listen(format!("cannot listen on {addr}: {e}")))
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
    /// Time open connections get to finish at shutdown.
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: MAX_CONNECTIONS,
            max_header_bytes: MAX_HEADER_BYTES,
            header_read_timeout: HEADER_READ_TIMEOUT,
            shutdown_grace: SHUTDOWN_GRACE,
        }
    }
}

/// Serves `app` on `listener` until `shutdown` turns true, then gives open connections
/// [`SHUTDOWN_GRACE`] to finish.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: watch::Receiver<bool>,
) -> io::Result<()> {
    serve_with(listener, app, shutdown, Limits::default()).await
}

/// [`serve`] with other [`Limits`].
pub async fn serve_with(
    listener: TcpListener,
    app: Router,
    mut shutdown: watch::Receiver<bool>,
    limits: Limits,
) -> io::Result<()> {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        // hyper panics below 8 KiB.
        .max_buf_size(limits.max_header_bytes.max(8192));
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
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
        let conn =
            http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()));
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                debug!(%peer, error = %e, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(limits.shutdown_grace) => debug!("connections still open at shutdown dropped"),
    }
    Ok(())
}

/// Waits for a free connection slot, then for a connection. Accept errors (out of file
/// descriptors, say) are logged and retried after a pause instead of ending the server.
async fn accept(
    listener: &TcpListener,
    slots: &Arc<Semaphore>,
) -> Option<(TcpStream, SocketAddr, OwnedSemaphorePermit)> {
    let slot = slots.clone().acquire_owned().await.ok()?;
    match listener.accept().await {
        Ok((stream, peer)) => Some((stream, peer, slot)),
        Err(e) => {
            warn!(error = %e, "accept failed; retrying in 100 ms");
            tokio::time::sleep(Duration::from_millis(100)).await;
            None
        }
    }
}
