//! TLS and basic auth from a web configuration file (`--web.config.file`), in the format of
//! the Prometheus exporter-toolkit, so the file made for node_exporter works here too.
//!
//! - [`config`] parses and validates the YAML (pure).
//! - [`tls`] turns it into a rustls server configuration.
//! - [`auth`] checks basic-auth credentials against bcrypt hashes, with a cache.
//! - [`reload`] watches the files off the serving path and refuses a version that would
//!   weaken protection.
//!
//! [`WebConfig`] holds what is in force behind an atomic swap: a connection or request reads
//! it without a lock or a file system call. [`WebConfig::watch`] reloads it when the file
//! or the certificate, key and CA files it names change, so certificates renewed by
//! cert-manager take effect without a restart. A new version that does not load, or would
//! weaken protection, is logged as an error and the last good one stays in force.

pub mod auth;
mod client_check;
pub mod config;
pub mod connection;
pub mod handshake;
mod p521;
pub mod rate;
pub mod reload;
mod suites;
pub mod tls;
mod x509;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use axum::extract::{Request, State};
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use tokio_rustls::TlsAcceptor;

use auth::Verdict;
use reload::{Protection, Stamp};

/// Paths served without credentials, so kubelet probes need none.
pub const OPEN_PATHS: [&str; 2] = ["/healthz", "/readyz"];

/// Why a web configuration cannot be loaded; the message starts with the file's path.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {problem}", path.display())]
    Invalid {
        path: PathBuf,
        problem: config::Invalid,
    },
    #[error("{}: turning TLS on needs a restart", path.display())]
    TlsTurnedOn { path: PathBuf },
    #[error("{}: the file is empty (a rewrite in progress?); a reload to no TLS and no users is refused", path.display())]
    Empty { path: PathBuf },
    #[error("{}: refused, as it would weaken protection: {changes}; restart the exporter to apply it", path.display())]
    Weakened { path: PathBuf, changes: String },
}

/// The largest web configuration or PEM file read (regular files only, see
/// [`crate::files`]); a certificate bundle is far smaller.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// The web configuration in force, reloaded by [`WebConfig::watch`] when its files change.
pub struct WebConfig {
    path: PathBuf,
    active: ArcSwap<Active>,
    auth: auth::Authenticator,
}

/// One loaded version of the configuration.
pub struct Active {
    /// `None`: plain HTTP.
    pub tls: Option<TlsAcceptor>,
    pub users: BTreeMap<String, String>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// `rate_limit`, kept across reloads that do not change it.
    pub limiter: Option<Arc<rate::Limiter>>,
    files: Vec<PathBuf>,
    protection: Protection,
    /// What the files looked like when this version was loaded.
    stamps: Vec<Stamp>,
}

impl fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebConfig")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl WebConfig {
    /// Reads and checks the file and everything it names.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let mut active = build(path, None)?;
        active.stamps = reload::stamps(path, &active.files);
        Ok(Self {
            path: path.to_owned(),
            active: ArcSwap::from_pointee(active),
            auth: auth::Authenticator::new(),
        })
    }

    /// Reloads the configuration when its files change, until `stopped` turns true.
    pub fn watch(self: &Arc<Self>, stopped: tokio::sync::watch::Receiver<bool>) {
        tokio::spawn(reload::watch(self.clone(), stopped));
    }

    /// The file's path, for log lines.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The configuration in force: no lock, no file system call.
    pub fn current(&self) -> Arc<Active> {
        self.active.load_full()
    }

    /// Whether the listener speaks TLS (fixed at start-up).
    pub fn tls_enabled(&self) -> bool {
        self.current().tls.is_some()
    }

    /// Whether basic auth is on in the configuration now in force.
    pub fn auth_enabled(&self) -> bool {
        !self.current().users.is_empty()
    }
}

/// Reads and checks the file at `path` and everything it names. On a reload (`previous`
/// given) an empty file, turning TLS on and anything weaker than `previous` are refused.
/// Blocking, but never for long: only regular files are read.
fn build(path: &Path, previous: Option<&Active>) -> Result<Active, Error> {
    let invalid = |problem| Error::Invalid {
        path: path.to_owned(),
        problem,
    };
    let read_error = |source| Error::Read {
        path: path.to_owned(),
        source,
    };
    let bytes = crate::files::read_regular(path, MAX_FILE_BYTES).map_err(read_error)?;
    let text = String::from_utf8(bytes).map_err(|e| {
        read_error(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            e.utf8_error(),
        ))
    })?;
    if previous.is_some() && config::is_blank(&text) {
        return Err(Error::Empty {
            path: path.to_owned(),
        });
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    let file = config::parse(&text, dir).map_err(invalid)?;
    let protection = Protection::of(&file);
    if let Some(previous) = previous {
        if previous.tls.is_none() && file.tls.is_some() {
            return Err(Error::TlsTurnedOn {
                path: path.to_owned(),
            });
        }
        let changes = previous.protection.weakened_by(&protection);
        if !changes.is_empty() {
            return Err(Error::Weakened {
                path: path.to_owned(),
                changes: changes.join(", "),
            });
        }
    }
    let tls = match &file.tls {
        Some(settings) => Some(TlsAcceptor::from(
            tls::server_config(settings, file.http2).map_err(invalid)?,
        )),
        None => None,
    };
    let limiter = file.rate_limit.map(|limit| {
        previous
            .and_then(|p| p.limiter.clone())
            .filter(|kept| kept.limit() == limit)
            .unwrap_or_else(|| Arc::new(rate::Limiter::new(limit, std::time::Instant::now())))
    });
    Ok(Active {
        tls,
        limiter,
        files: file.files(),
        users: file.users,
        headers: file.headers,
        protection,
        stamps: Vec::new(),
    })
}

/// Puts basic auth (when the configuration has users) in front of every route of `app`
/// except [`OPEN_PATHS`], and adds the configured response headers to every answer.
pub fn protect(app: Router, web: Arc<WebConfig>) -> Router {
    app.layer(axum::middleware::from_fn_with_state(web, guard))
}

async fn guard(State(web): State<Arc<WebConfig>>, request: Request, next: Next) -> Response {
    let active = web.current();
    let probe = OPEN_PATHS.contains(&request.uri().path());
    // The toolkit's rate_limit, before anything else; the probes are spared, so that a
    // kubelet never restarts an exporter because scrapers used up the tokens.
    if let Some(limiter) = active.limiter.as_ref().filter(|_| !probe) {
        if !limiter.allow(std::time::Instant::now()) {
            let mut response =
                (StatusCode::TOO_MANY_REQUESTS, "Too Many Requests\n").into_response();
            for (name, value) in &active.headers {
                response.headers_mut().insert(name.clone(), value.clone());
            }
            return response;
        }
    }
    // The connection's close signal: HTTP/2 has no `Connection: close` (see [`connection`]).
    let close = request
        .extensions()
        .get::<connection::CloseConnection>()
        .cloned();
    let verdict = if active.users.is_empty() || probe {
        Verdict::Granted
    } else {
        web.auth
            .check(&active.users, request.headers().get(header::AUTHORIZATION))
            .await
    };
    // A refused client's connection is closed after the answer: a flood of guesses cannot
    // keep connection slots for itself with keep-alive. Likewise for the probes, open to
    // anyone when the rest needs a password: clients with no credentials cannot hold
    // connection slots by asking for /healthz now and then. Probes (the kubelet's) open a
    // connection for each check anyway.
    let refused = verdict != Verdict::Granted || (probe && !active.users.is_empty());
    if let Some(close) = close.filter(|_| refused) {
        close.request();
    }
    let mut response = match verdict {
        Verdict::Granted => next.run(request).await,
        Verdict::Denied => (
            StatusCode::UNAUTHORIZED,
            [
                (
                    header::WWW_AUTHENTICATE,
                    r#"Basic realm="testsigma-exporter", charset="UTF-8""#,
                ),
                (header::CONNECTION, "close"),
            ],
            "Unauthorized\n",
        )
            .into_response(),
        Verdict::Busy => (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, "1"), (header::CONNECTION, "close")],
            "Too many password checks at once; retry in a second\n",
        )
            .into_response(),
    };
    if refused {
        response.headers_mut().insert(
            header::CONNECTION,
            header::HeaderValue::from_static("close"),
        );
    }
    for (name, value) in &active.headers {
        response.headers_mut().insert(name.clone(), value.clone());
    }
    response
}
