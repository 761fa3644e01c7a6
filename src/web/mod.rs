//! TLS and basic auth from a web configuration file (`--web.config.file`), in the format of
//! the Prometheus exporter-toolkit, so the file made for node_exporter works here too.
//!
//! - [`config`] parses and validates the YAML (pure).
//! - [`tls`] turns it into a rustls server configuration.
//! - [`auth`] checks basic-auth credentials against bcrypt hashes, with a cache.
//!
//! [`WebConfig`] holds what is in force. Before each connection and each request it looks at
//! the file and the certificate, key and CA files it names (a few `stat` calls); when any has
//! changed it loads them again, so certificates renewed by cert-manager take effect without a
//! restart. A new version that does not load is logged and the last good one stays in force.

pub mod auth;
pub mod config;
pub mod tls;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use axum::extract::{Request, State};
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use tokio_rustls::TlsAcceptor;
use tracing::{error, info};

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
    #[error("{}: turning TLS on or off needs a restart", path.display())]
    TlsToggled { path: PathBuf },
}

/// The web configuration in force, reloaded when its files change.
pub struct WebConfig {
    path: PathBuf,
    state: Mutex<Loaded>,
    auth: auth::Authenticator,
}

/// One loaded version of the configuration.
pub struct Active {
    /// `None`: plain HTTP.
    pub tls: Option<TlsAcceptor>,
    pub users: BTreeMap<String, String>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    files: Vec<PathBuf>,
}

struct Loaded {
    active: Arc<Active>,
    /// What the files looked like when `active` was loaded.
    stamps: Vec<Stamp>,
    /// What they looked like at the last failed reload, so the error is logged once.
    failed: Option<Vec<Stamp>>,
}

/// Enough of a file's metadata to see that it was rewritten or replaced (a Kubernetes
/// Secret volume swaps a symlink, which gives a new inode); `None` if it cannot be read.
type Stamp = Option<(Option<SystemTime>, u64, u64)>;

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
        let active = build(path)?;
        let stamps = stamps(path, &active.files);
        Ok(Self {
            path: path.to_owned(),
            state: Mutex::new(Loaded {
                active: Arc::new(active),
                stamps,
                failed: None,
            }),
            auth: auth::Authenticator::new(),
        })
    }

    /// The file's path, for log lines.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The configuration in force, reloaded first if any of its files changed.
    pub fn current(&self) -> Arc<Active> {
        let Ok(mut state) = self.state.lock() else {
            // A panic while reloading; what was in force stays so.
            return self
                .state
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .active
                .clone();
        };
        let now = stamps(&self.path, &state.active.files);
        if now == state.stamps || state.failed.as_ref() == Some(&now) {
            return state.active.clone();
        }
        let reloaded = build(&self.path).and_then(|active| {
            if active.tls.is_some() != state.active.tls.is_some() {
                Err(Error::TlsToggled {
                    path: self.path.clone(),
                })
            } else {
                Ok(active)
            }
        });
        match reloaded {
            Ok(active) => {
                // Stamps taken before reading, so a change made meanwhile is seen next time;
                // only a changed list of files needs a fresh look.
                state.stamps = if active.files == state.active.files {
                    now
                } else {
                    stamps(&self.path, &active.files)
                };
                state.active = Arc::new(active);
                state.failed = None;
                info!(file = %self.path.display(), "web configuration reloaded");
            }
            Err(e) => {
                error!(error = %e, "cannot reload the web configuration; the last good one stays in force");
                state.failed = Some(now);
            }
        }
        state.active.clone()
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

fn build(path: &Path) -> Result<Active, Error> {
    let invalid = |problem| Error::Invalid {
        path: path.to_owned(),
        problem,
    };
    let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let file = config::parse(&text, dir).map_err(invalid)?;
    let tls = match &file.tls {
        Some(settings) => Some(TlsAcceptor::from(
            tls::server_config(settings).map_err(invalid)?,
        )),
        None => None,
    };
    Ok(Active {
        tls,
        files: file.files(),
        users: file.users,
        headers: file.headers,
    })
}

fn stamps(path: &Path, files: &[PathBuf]) -> Vec<Stamp> {
    std::iter::once(path)
        .chain(files.iter().map(PathBuf::as_path))
        .map(stamp)
        .collect()
}

fn stamp(path: &Path) -> Stamp {
    let meta = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&meta);
    #[cfg(not(unix))]
    let inode = 0;
    Some((meta.modified().ok(), meta.len(), inode))
}

/// Puts basic auth (when the configuration has users) in front of every route of `app`
/// except [`OPEN_PATHS`], and adds the configured response headers to every answer.
pub fn protect(app: Router, web: Arc<WebConfig>) -> Router {
    app.layer(axum::middleware::from_fn_with_state(web, guard))
}

async fn guard(State(web): State<Arc<WebConfig>>, request: Request, next: Next) -> Response {
    let active = web.current();
    let open = active.users.is_empty() || OPEN_PATHS.contains(&request.uri().path());
    let mut response = if open
        || web
            .auth
            .check(&active.users, request.headers().get(header::AUTHORIZATION))
            .await
    {
        next.run(request).await
    } else {
        (
            StatusCode::UNAUTHORIZED,
            [(
                header::WWW_AUTHENTICATE,
                r#"Basic realm="testsigma-exporter", charset="UTF-8""#,
            )],
            "Unauthorized\n",
        )
            .into_response()
    };
    for (name, value) in &active.headers {
        response.headers_mut().insert(name.clone(), value.clone());
    }
    response
}
