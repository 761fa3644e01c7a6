//! The Testsigma API client: one type that owns the HTTP client, its timeouts, pacing and
//! retries, and walks every page of `GET {base}/users` into a [`Tally`]. It reports each
//! request to an [`Observer`] and knows nothing of how that is shown; counting rules live in
//! [`crate::census`].

mod body;
mod error;
mod pacing;
pub mod page;
mod redact;
pub(crate) mod tls;
mod walk;

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, ACCEPT, RETRY_AFTER};
use reqwest::{redirect, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use tokio::time::Instant;
use tracing::{debug, warn};
use url::Url;

use crate::census::{Rules, Tally};
use body::{read_body, BodyError};
pub use error::{PollError, Reason};
pub use pacing::BACKOFF_BASE;
use pacing::{backoff, retry_after, Pacer, Quota};
use redact::{redact, redact_cut, redacted_head};
pub use tls::CaFileError;
use walk::Walk;

/// Largest response body read; a larger one fails the poll (`too_large`).
pub const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;
/// Of an error response, only this much is read, to find "rate limit" or show an excerpt.
const MAX_ERROR_BODY_BYTES: usize = 64 * 1024;

/// How the client talks to the API.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub base_url: Url,
    pub page_size: u32,
    pub request_timeout: Duration,
    pub max_retries: u32,
    /// Requests per second; `None` for no limit.
    pub max_request_rate: Option<f64>,
    /// Base of the exponential backoff between retries ([`BACKOFF_BASE`]).
    pub backoff_base: Duration,
    /// PEM certificates to trust besides the system's store (`--api-ca-file`).
    pub ca_file: Option<PathBuf>,
    /// How users are counted.
    pub rules: Rules,
}

/// Why the client cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// `--api-ca-file` cannot be used: a configuration mistake.
    #[error(transparent)]
    CaFile(#[from] CaFileError),
    #[error(transparent)]
    Http(#[from] reqwest::Error),
}

/// What the client tells as it talks to the API, for whoever counts it.
pub trait Observer: Send + Sync {
    /// One request was sent: its answer's HTTP status, or `None` when none came back.
    fn request(&self, status: Option<u16>);
    /// The API said how many requests its rate-limit window has left (`x-tms-api-remaining`).
    fn quota_remaining(&self, remaining: f64);
    /// The requests/second the client allows itself now: `--max-request-rate`, or less
    /// while other clients of the key draw on its budget.
    fn pace(&self, _per_second: f64) {}
}

/// Numbers about one successful walk, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalkStats {
    pub pages: u64,
}

/// The Testsigma client. Cheap to share by reference; one per process.
#[derive(Debug)]
pub struct Client {
    http: reqwest::Client,
    users_url: Url,
    page_size: u32,
    max_retries: u32,
    backoff_base: Duration,
    pacer: Pacer,
    rules: Rules,
}

/// The outcome of one HTTP attempt that did not produce a page.
enum Failure {
    /// Give up at once.
    Fatal(PollError),
    /// Worth another try, after at least `wait` (on top of the backoff if `jitter`).
    Retry {
        error: PollError,
        wait: Duration,
        jitter: bool,
    },
}

impl Client {
    /// Builds the client; reads the system's certificate store and `ca_file` here, once.
    pub fn new(config: &ClientConfig) -> Result<Self, ClientError> {
        let tls = tls::client_config(config.ca_file.as_deref())?;
        let origin = config.base_url.origin();
        // Redirects are followed only within the API's origin, so the key never travels on,
        // and 5 at most.
        let policy = redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() > 5 || attempt.url().origin() != origin {
                attempt.stop()
            } else {
                attempt.follow()
            }
        });
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, "application/json".parse().expect("static header"));
        // Proxies come from HTTPS_PROXY, HTTP_PROXY and NO_PROXY (reqwest's default, as curl
        // reads them): an https API is reached through a CONNECT tunnel, so a proxy never
        // sees the key.
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .default_headers(headers)
            .user_agent(concat!("testsigma-exporter/", env!("CARGO_PKG_VERSION")))
            .timeout(config.request_timeout)
            .connect_timeout(config.request_timeout.min(Duration::from_secs(10)))
            .redirect(policy)
            .build()?;
        let mut users_url = config.base_url.clone();
        users_url
            .path_segments_mut()
            .expect("base URL is http(s) with a host")
            .pop_if_empty()
            .push("users");
        Ok(Self {
            http,
            users_url,
            page_size: config.page_size,
            max_retries: config.max_retries,
            backoff_base: config.backoff_base,
            pacer: Pacer::new(config.max_request_rate),
            rules: config.rules,
        })
    }

    /// Walks every page and counts the users into a tally, reporting each request to
    /// `observer`. Nothing is published here: the caller gets every page's users or an
    /// error, with the key blanked out of it. Dropping the future cancels the walk, waits
    /// included. `expected` is how many users the caller expects (the last poll's count):
    /// the tally is sized once for it or the reported `total_count`, the larger, so that it
    /// need not grow (growing holds two tables at once).
    pub async fn walk(
        &self,
        key: &SecretString,
        observer: &dyn Observer,
        expected: usize,
    ) -> Result<(Tally, WalkStats), PollError> {
        if let Some(rate) = self.pacer.rate() {
            observer.pace(rate);
        }
        self.walk_pages(key, observer, expected)
            .await
            .map_err(|e| e.map_text(|text| redact(&text, key).into_owned()))
    }

    async fn walk_pages(
        &self,
        key: &SecretString,
        observer: &dyn Observer,
        expected: usize,
    ) -> Result<(Tally, WalkStats), PollError> {
        let mut walk = Walk::new(&self.users_url, self.page_size, key);
        let mut tally = Tally::new(self.rules, SystemTime::now());
        let mut body = Vec::new();
        let mut url = walk.first();
        loop {
            self.fetch(&url, key, &mut body, observer).await?;
            let page = page::decode_with(&body, self.rules.email_domains)
                .map_err(|e| decode_error(&e, &body, key))?;
            let mut new = 0;
            for user in &page.users {
                new += usize::from(tally.add(&user.fields(), key));
            }
            if walk.pages() == 0 {
                let total = page.total_count.inspect(|&t| tally.set_reported(t));
                let total = total.map_or(0, |t| usize::try_from(t).unwrap_or(usize::MAX));
                tally.reserve(total.max(expected));
            }
            debug!(url = %redact(url.as_str(), key), users = page.users.len(), new, "page");
            match walk.next(
                page.users.len(),
                new,
                page.total_count,
                page.next.as_deref(),
            )? {
                Some(next) => url = next,
                None => break,
            }
        }
        let stats = WalkStats {
            pages: walk.pages(),
        };
        Ok((tally, stats))
    }

    /// GETs one page into `body`, with pacing and retries.
    async fn fetch(
        &self,
        url: &Url,
        key: &SecretString,
        body: &mut Vec<u8>,
        observer: &dyn Observer,
    ) -> Result<(), PollError> {
        let mut attempt = 0;
        loop {
            let started = self.pacer.wait().await;
            let sent = self.attempt(url, key, body, observer, started).await;
            let (error, wait, jitter) = match sent {
                Ok(()) => return Ok(()),
                Err(Failure::Fatal(error)) => return Err(error),
                Err(Failure::Retry {
                    error,
                    wait,
                    jitter,
                }) => (error, wait, jitter),
            };
            if attempt >= self.max_retries {
                return Err(error);
            }
            let delay = if jitter {
                wait.max(backoff(self.backoff_base, attempt, rand::random::<f64>()))
            } else {
                wait
            };
            attempt += 1;
            warn!(
                error = %redact(&error.to_string(), key),
                retry = attempt,
                of = self.max_retries,
                in_ms = delay.as_millis() as u64,
                "request failed, retrying"
            );
            tokio::time::sleep(delay).await;
        }
    }

    async fn attempt(
        &self,
        url: &Url,
        key: &SecretString,
        body: &mut Vec<u8>,
        observer: &dyn Observer,
        started: Instant,
    ) -> Result<(), Failure> {
        let sent = self
            .http
            .get(url.clone())
            .bearer_auth(key.expose_secret())
            .send()
            .await;
        let mut response = match sent {
            Ok(response) => response,
            Err(e) => {
                observer.request(None);
                return Err(transport_failure(&e));
            }
        };
        let status = response.status();
        observer.request(Some(status.as_u16()));
        let quota = Quota::from_headers(response.headers());
        if let Some(quota) = quota {
            observer.quota_remaining(quota.remaining);
        }
        if status.is_success() {
            self.adapt(started, quota, false, observer);
            return read_body(&mut response, body, MAX_BODY_BYTES)
                .await
                .map_err(|e| match e {
                    BodyError::TooLarge => Failure::Fatal(PollError::TooLarge {
                        limit: MAX_BODY_BYTES,
                    }),
                    BodyError::Transport(e) => transport_failure(&e),
                });
        }
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| retry_after(v, SystemTime::now()));
        let mut error_body = Vec::new();
        // The error body helps the log and tells a rate limit apart; it is optional.
        let _ = read_body(&mut response, &mut error_body, MAX_ERROR_BODY_BYTES).await;
        let refused = status == StatusCode::TOO_MANY_REQUESTS
            || (status.is_server_error() && mentions_rate_limit(&error_body));
        self.adapt(started, quota, refused, observer);
        let code = status.as_u16();
        let http_error = |hint: &str| PollError::Http {
            status: code,
            url: url.to_string(),
            hint: format!("{hint}{}", api_message(&error_body, key)),
        };
        Err(match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                Failure::Fatal(PollError::Auth { status: code })
            }
            StatusCode::NOT_FOUND => Failure::Fatal(http_error(
                "; is --base-url right? It should end in /api/v1",
            )),
            StatusCode::TOO_MANY_REQUESTS => Failure::Retry {
                error: PollError::RateLimited { status: code },
                wait: retry_after.unwrap_or(Duration::from_secs(1)),
                jitter: retry_after.is_none(),
            },
            s if s.is_server_error() && mentions_rate_limit(&error_body) => Failure::Retry {
                error: PollError::RateLimited { status: code },
                wait: retry_after
                    .unwrap_or(Duration::ZERO)
                    .max(Duration::from_secs(1)),
                jitter: true,
            },
            s if s.is_server_error() => Failure::Retry {
                error: http_error(""),
                wait: Duration::ZERO,
                jitter: true,
            },
            s if s.is_redirection() => Failure::Fatal(http_error(
                "; redirects are followed only within the API's origin (so the key stays with it), 5 at most",
            )),
            _ => Failure::Fatal(http_error("")),
        })
    }

    /// Paces the next requests after an answer to the request sent at `started` (see
    /// [`pacing`]) and tells the new pace.
    fn adapt(&self, started: Instant, quota: Option<Quota>, refused: bool, obs: &dyn Observer) {
        if self.pacer.observe(started, quota, refused) {
            debug!(
                remaining = quota.map(|q| q.remaining),
                refused,
                pace = self.pacer.rate(),
                "the key's budget runs low while other clients use it: pace lowered"
            );
        }
        if let Some(rate) = self.pacer.rate() {
            obs.pace(rate);
        }
    }
}

/// The error for a body that is not a page, with an excerpt of it.
fn decode_error(e: &serde_json::Error, body: &[u8], key: &SecretString) -> PollError {
    // serde quotes the offending value whole, which may be megabytes (or the key): only its
    // start is written, blanked out before it is cut.
    let detail = redacted_head(e, 200, key);
    PollError::Decode(format!(
        "response is not a Testsigma users page ({detail}); body starts with {}",
        excerpt(body, key)
    ))
}

/// The start of a body for a log line, blanked out before it is cut, so that no part of a
/// key at the cut survives.
fn excerpt(body: &[u8], key: &SecretString) -> String {
    // An excerpt shows so many characters of up to 4 bytes, and tells whether more came:
    // past that and the key's length thrice (each byte as `%XX`), nothing more can show.
    let shown = (page::EXCERPT_CHARS + 1) * 4;
    let head = &body[..body.len().min(shown + 3 * key.expose_secret().len())];
    let cut = head.len() < body.len();
    page::excerpt(&redact_cut(&String::from_utf8_lossy(head), key, cut))
}

fn transport_failure(e: &reqwest::Error) -> Failure {
    // reqwest errors name the URL (never the headers); the key is not in them.
    let detail = error_chain(e);
    // A refused certificate stays refused: no retry, and a word on how to trust it.
    if let Some(refused) = tls::refused_certificate(e) {
        return Failure::Fatal(PollError::Tls {
            detail,
            hint: tls::hint(refused),
        });
    }
    let error = if e.is_timeout() {
        PollError::Timeout { detail }
    } else {
        PollError::Connect { detail }
    };
    Failure::Retry {
        error,
        wait: Duration::ZERO,
        jitter: true,
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

fn mentions_rate_limit(body: &[u8]) -> bool {
    String::from_utf8_lossy(body)
        .to_ascii_lowercase()
        .contains("rate limit")
}

/// The API's own words about an error, if the body has them.
fn api_message(body: &[u8], key: &SecretString) -> String {
    #[derive(serde::Deserialize)]
    struct ErrorBody {
        message: Option<String>,
    }
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(ErrorBody {
            message: Some(message),
        }) if !message.is_empty() => {
            format!(" (API says: {:?})", redacted_head(&message, 200, key))
        }
        _ if body.is_empty() => String::new(),
        _ => format!(" (body starts with {})", excerpt(body, key)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Quiet;

    impl Observer for Quiet {
        fn request(&self, _: Option<u16>) {}
        fn quota_remaining(&self, _: f64) {}
    }

    /// Room in the tally of a walk of one page of 3 users reporting `total`, expecting
    /// `expected` users.
    async fn room_after_walk(total: Option<u64>, expected: usize) -> usize {
        use wiremock::matchers::path;
        let mock = wiremock::MockServer::start().await;
        let mut page = serde_json::json!({"data": [{"id": "a"}, {"id": "b"}, {"id": "c"}],
                                          "page_info": {"next": ""}});
        if let Some(total) = total {
            page["page_info"]["total_count"] = total.into();
        }
        wiremock::Mock::given(path("/api/v1/users"))
            .respond_with(wiremock::ResponseTemplate::new(200).set_body_json(page))
            .mount(&mock)
            .await;
        let client = Client::new(&ClientConfig {
            base_url: Url::parse(&format!("{}/api/v1", mock.uri())).unwrap(),
            page_size: 100,
            request_timeout: Duration::from_secs(5),
            max_retries: 0,
            max_request_rate: None,
            backoff_base: BACKOFF_BASE,
            ca_file: None,
            rules: Rules::default(),
        })
        .unwrap();
        let key = SecretString::from("key");
        let (tally, _) = client.walk(&key, &Quiet, expected).await.unwrap();
        tally.room()
    }

    #[tokio::test]
    async fn the_tally_is_sized_once_for_the_larger_of_total_count_and_the_last_poll() {
        // No total_count, or one too low: sized for the users the last poll saw.
        for total in [None, Some(3)] {
            let room = room_after_walk(total, 50_000).await;
            assert!((50_000..52_500).contains(&room), "{total:?}: {room}");
        }
        // A total_count above the last poll's count: sized for it.
        let room = room_after_walk(Some(80_000), 50_000).await;
        assert!((80_000..84_000).contains(&room), "{room}");
        // The first poll, without total_count: no guess.
        assert!(room_after_walk(None, 0).await < 100);
    }

    #[test]
    fn an_excerpt_shows_no_part_of_the_key() {
        // The key straddles the 120-character cut of the excerpt.
        let key = SecretString::from("secret-key-abcdefghij");
        let body = format!("<html>{}secret-key-abcdefghij</html>", "x".repeat(105));
        let shown = excerpt(body.as_bytes(), &key);
        assert!(!shown.contains("secret-key"), "{shown}");
        assert!(shown.contains("[REDACTED"), "{shown}");
        // Through an error body's message too, however long the body.
        let body = r#"{"message": "bad key secret-key-abcdefghij"}"#;
        let said = api_message(body.as_bytes(), &key);
        assert_eq!(said, " (API says: \"bad key [REDACTED]\")");
        let long = format!("{}secret-key-abcdefghij", "y".repeat(10_000));
        assert!(!api_message(long.as_bytes(), &key).contains("secret"));
        // A long message is cut, the key blanked out before the cut.
        let long = format!(
            r#"{{"message": "{}secret-key-abcdefghij{}"}}"#,
            "m".repeat(190),
            "z".repeat(9000)
        );
        let said = api_message(long.as_bytes(), &key);
        assert!(said.ends_with(r#"mmm[REDACTED]")"#), "{said}");
        // Where serde's error quotes the key, it is blanked out too.
        let body = br#"{"data": "secret-key-abcdefghij"}"#;
        let error = page::decode(body).unwrap_err();
        assert!(error.to_string().contains("secret-key"), "{error}");
        let err = decode_error(&error, body, &key).to_string();
        assert!(!err.contains("secret-key"), "{err}");
        assert!(
            err.starts_with("response is not a Testsigma users page (invalid type"),
            "{err}"
        );
    }
}
