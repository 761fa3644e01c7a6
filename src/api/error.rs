//! Why a poll failed, and the `reason` label each cause is counted under.

use std::path::PathBuf;

/// The `reason` label of `testsigma_poll_errors_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    Auth,
    RateLimited,
    Timeout,
    Connect,
    Tls,
    Http,
    Decode,
    Pagination,
    TooLarge,
}

impl Reason {
    /// Every reason, so each counter can be shown at 0 from the start.
    pub const ALL: [Reason; 9] = [
        Reason::Auth,
        Reason::RateLimited,
        Reason::Timeout,
        Reason::Connect,
        Reason::Tls,
        Reason::Http,
        Reason::Decode,
        Reason::Pagination,
        Reason::TooLarge,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Auth => "auth",
            Reason::RateLimited => "rate_limited",
            Reason::Timeout => "timeout",
            Reason::Connect => "connect",
            Reason::Tls => "tls",
            Reason::Http => "http",
            Reason::Decode => "decode",
            Reason::Pagination => "pagination",
            Reason::TooLarge => "too_large",
        }
    }
}

/// A failed poll. Messages say what to do; none ever holds the API key.
#[derive(Debug, thiserror::Error)]
pub enum PollError {
    #[error(
        "the API rejected the key (HTTP {status}): set a valid key in TESTSIGMA_API_KEY or in \
         the file given by --api-key-file"
    )]
    Auth { status: u16 },
    #[error(
        "the API key from {from} holds a line break or another character an HTTP header cannot \
         carry; store the key alone, on one line"
    )]
    InvalidKey { from: String },
    #[error(
        "cannot read the API key file {}: {source}; check that the Secret is mounted and \
         readable, or set TESTSIGMA_API_KEY", path.display()
    )]
    KeyFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "rate limited by the API (HTTP {status}); if this persists, lower \
         --max-request-rate or raise --poll-interval"
    )]
    RateLimited { status: u16 },
    #[error(
        "request to the API timed out: {detail}; raise --request-timeout or check the network"
    )]
    Timeout { detail: String },
    #[error(
        "the poll took longer than --poll-timeout ({}) and was stopped; the API answers \
         slowly or rate-limits hard: raise --poll-timeout, or --page-size to need fewer \
         requests", humantime::format_duration(*limit)
    )]
    PollTimeout { limit: std::time::Duration },
    #[error(
        "cannot reach the API: {detail}; check --base-url, DNS, the network and, where one is \
         needed, the proxy (HTTPS_PROXY, NO_PROXY)"
    )]
    Connect { detail: String },
    #[error(
        "the API's TLS certificate was refused: {detail}; {hint}; to trust a private or \
         TLS-inspection CA, pass its PEM file with --api-ca-file (env TESTSIGMA_API_CA_FILE) or \
         add it to the system's store (update-ca-certificates, or SSL_CERT_FILE / SSL_CERT_DIR)"
    )]
    Tls { detail: String, hint: &'static str },
    #[error("HTTP {status} from {url}{hint}")]
    Http {
        status: u16,
        url: String,
        hint: String,
    },
    #[error("{0}")]
    Decode(String),
    #[error("pagination stopped: {0}")]
    Pagination(String),
    #[error("response body is larger than {limit} bytes; not read further")]
    TooLarge { limit: usize },
}

impl PollError {
    /// The error with `f` applied to each of its texts that can hold what the API sent
    /// (error bodies, links, excerpts), e.g. to blank out a key the API echoed.
    pub fn map_text(self, f: impl Fn(String) -> String) -> Self {
        match self {
            PollError::Timeout { detail } => PollError::Timeout { detail: f(detail) },
            PollError::Connect { detail } => PollError::Connect { detail: f(detail) },
            PollError::Tls { detail, hint } => PollError::Tls {
                detail: f(detail),
                hint,
            },
            PollError::Http { status, url, hint } => PollError::Http {
                status,
                url: f(url),
                hint: f(hint),
            },
            PollError::Decode(text) => PollError::Decode(f(text)),
            PollError::Pagination(text) => PollError::Pagination(f(text)),
            other @ (PollError::Auth { .. }
            | PollError::KeyFile { .. }
            | PollError::InvalidKey { .. }
            | PollError::RateLimited { .. }
            | PollError::PollTimeout { .. }
            | PollError::TooLarge { .. }) => other,
        }
    }

    pub fn reason(&self) -> Reason {
        match self {
            PollError::Auth { .. } | PollError::KeyFile { .. } | PollError::InvalidKey { .. } => {
                Reason::Auth
            }
            PollError::RateLimited { .. } => Reason::RateLimited,
            PollError::Timeout { .. } | PollError::PollTimeout { .. } => Reason::Timeout,
            PollError::Connect { .. } => Reason::Connect,
            PollError::Tls { .. } => Reason::Tls,
            PollError::Http { .. } => Reason::Http,
            PollError::Decode(_) => Reason::Decode,
            PollError::Pagination(_) => Reason::Pagination,
            PollError::TooLarge { .. } => Reason::TooLarge,
        }
    }
}
