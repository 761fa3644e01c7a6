//! Why a poll failed, and the `reason` label each cause is counted under.

use std::path::PathBuf;

/// The `reason` label of `testsigma_poll_errors_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    Auth,
    RateLimited,
    Timeout,
    Connect,
    Http,
    Decode,
    Pagination,
    TooLarge,
}

impl Reason {
    /// Every reason, so each counter can be shown at 0 from the start.
    pub const ALL: [Reason; 8] = [
        Reason::Auth,
        Reason::RateLimited,
        Reason::Timeout,
        Reason::Connect,
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
    #[error("cannot reach the API: {detail}; check --base-url, DNS and the network")]
    Connect { detail: String },
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
    /// The error with every occurrence of `key` in its texts blanked out: what the API sends
    /// back (error bodies, links) ends up in them, and an API may echo the key.
    pub fn redacted(self, key: &secrecy::SecretString) -> Self {
        use secrecy::ExposeSecret;
        let key = key.expose_secret();
        if key.is_empty() {
            return self;
        }
        let clean = |text: String| {
            if text.contains(key) {
                text.replace(key, super::REDACTED)
            } else {
                text
            }
        };
        match self {
            PollError::Timeout { detail } => PollError::Timeout {
                detail: clean(detail),
            },
            PollError::Connect { detail } => PollError::Connect {
                detail: clean(detail),
            },
            PollError::Http { status, url, hint } => PollError::Http {
                status,
                url: clean(url),
                hint: clean(hint),
            },
            PollError::Decode(text) => PollError::Decode(clean(text)),
            PollError::Pagination(text) => PollError::Pagination(clean(text)),
            other @ (PollError::Auth { .. }
            | PollError::KeyFile { .. }
            | PollError::InvalidKey { .. }
            | PollError::RateLimited { .. }
            | PollError::TooLarge { .. }) => other,
        }
    }

    pub fn reason(&self) -> Reason {
        match self {
            PollError::Auth { .. } | PollError::KeyFile { .. } | PollError::InvalidKey { .. } => {
                Reason::Auth
            }
            PollError::RateLimited { .. } => Reason::RateLimited,
            PollError::Timeout { .. } => Reason::Timeout,
            PollError::Connect { .. } => Reason::Connect,
            PollError::Http { .. } => Reason::Http,
            PollError::Decode(_) => Reason::Decode,
            PollError::Pagination(_) => Reason::Pagination,
            PollError::TooLarge { .. } => Reason::TooLarge,
        }
    }
}
