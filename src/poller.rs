//! The polling loop: load the key, walk the pages, publish all or nothing, on an interval
//! measured start to start; polls never overlap and shutdown cancels the one in flight.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use secrecy::{ExposeSecret, SecretString};
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;
use tracing::{error, info, warn};

use crate::api::{Client, ClientConfig, ClientError, PollError};
use crate::census::Census;
use crate::config::{KeySource, Settings};
use crate::files::read_regular;
use crate::metrics::Metrics;

/// Polls the API and publishes into [`Metrics`].
#[derive(Debug)]
pub struct Poller {
    client: Client,
    key: KeySource,
    metrics: Metrics,
    interval: Duration,
    timeout: Duration,
    max_statuses: usize,
}

impl Poller {
    /// Reads the system's certificate store and `--api-ca-file` (once, here).
    pub fn new(settings: &Settings, metrics: Metrics) -> Result<Self, ClientError> {
        let config = ClientConfig {
            base_url: settings.base_url.clone(),
            page_size: settings.page_size,
            request_timeout: settings.request_timeout,
            max_retries: settings.max_retries,
            max_request_rate: settings.max_request_rate,
            backoff_base: settings.retry_backoff,
            ca_file: settings.api_ca_file.clone(),
        };
        Ok(Self {
            client: Client::new(&config)?,
            key: settings.key.clone(),
            metrics,
            interval: settings.poll_interval,
            timeout: settings.poll_timeout,
            max_statuses: settings.max_statuses,
        })
    }

    /// One poll: on success the census is published in one step, on failure only the
    /// failure is recorded and the last good counts stay.
    pub async fn poll(&self) -> Result<Census, PollError> {
        let started = Instant::now();
        let walk = async {
            let key = load_key(&self.key).await?;
            self.client.walk(&key, &self.metrics).await
        };
        // The deadline covers everything: the key file, every page, retries and waits.
        let result = tokio::time::timeout(self.timeout, walk)
            .await
            .unwrap_or(Err(PollError::PollTimeout {
                limit: self.timeout,
            }));
        let took = started.elapsed();
        match result {
            Ok((tally, stats)) => {
                let census = tally.finish(self.max_statuses);
                self.metrics.publish(&census, took, SystemTime::now());
                info!(
                    users = census.total,
                    statuses = census.by_status.len(),
                    pages = stats.pages,
                    duration_ms = took.as_millis() as u64,
                    "poll succeeded"
                );
                Ok(census)
            }
            Err(e) => {
                self.metrics.fail(e.reason(), took);
                error!(
                    reason = e.reason().as_str(),
                    duration_ms = took.as_millis() as u64,
                    error = %e,
                    "poll failed; published user counts are left as they were"
                );
                Err(e)
            }
        }
    }

    /// Polls at start-up and then every interval until `shutdown` turns true.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut ticks = tokio::time::interval(self.interval);
        // A poll longer than the interval delays the next one instead of bunching them up.
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.wait_for(|stop| *stop) => break,
                _ = ticks.tick() => {}
            }
            let started = Instant::now();
            tokio::select! {
                _ = shutdown.wait_for(|stop| *stop) => {
                    info!("shutting down: poll in flight cancelled");
                    break;
                }
                _ = self.poll() => {}
            }
            let took = started.elapsed();
            if took > self.interval {
                // The next poll starts at once: say so, as the counts are older than expected.
                warn!(
                    duration_ms = took.as_millis() as u64,
                    poll_interval = %humantime::format_duration(self.interval),
                    "the poll took longer than --poll-interval, so polls run back to back; \
                     raise --poll-interval, or --page-size or --max-request-rate to poll faster"
                );
            }
        }
    }
}

/// The key for this poll; a key file is read afresh each time so a rotated Secret applies.
async fn load_key(source: &KeySource) -> Result<SecretString, PollError> {
    let key = match source {
        KeySource::Env(key) => key.clone(),
        KeySource::File(path) => {
            let key_error = |source| PollError::KeyFile {
                path: path.clone(),
                source,
            };
            let text = read_key_file(path).await.map_err(key_error)?;
            let key = text.trim();
            if key.is_empty() {
                return Err(key_error(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "the file is empty",
                )));
            }
            SecretString::from(key.to_owned())
        }
    };
    // A key with a line break or another control character inside cannot go in a header;
    // say so now rather than fail every request as if the network were down.
    if reqwest::header::HeaderValue::from_str(key.expose_secret()).is_err() {
        let from = match source {
            KeySource::Env(_) => "TESTSIGMA_API_KEY".to_owned(),
            KeySource::File(path) => path.display().to_string(),
        };
        return Err(PollError::InvalidKey { from });
    }
    Ok(key)
}

/// The largest key file read: a wrong path such as a log file must not be read whole.
const KEY_FILE_LIMIT: u64 = 64 * 1024;
/// How long reading the key file may take: a stalled network mount fails the poll instead
/// of hanging it.
const KEY_FILE_TIMEOUT: Duration = Duration::from_secs(5);

/// Reads a key file: a regular file only (a FIFO or a device is refused before a byte is
/// read), of at most 64 KiB, on a blocking thread given [`KEY_FILE_TIMEOUT`].
async fn read_key_file(path: &Path) -> std::io::Result<String> {
    use std::io::{Error, ErrorKind};
    let owned = path.to_owned();
    let read = tokio::task::spawn_blocking(move || read_regular(&owned, KEY_FILE_LIMIT));
    let bytes = match tokio::time::timeout(KEY_FILE_TIMEOUT, read).await {
        Ok(Ok(Ok(bytes))) => bytes,
        Ok(Ok(Err(e))) if e.kind() == ErrorKind::InvalidData => {
            return Err(Error::new(
                ErrorKind::InvalidData,
                "larger than 64 KiB, so not a key file",
            ))
        }
        Ok(Ok(Err(e))) => return Err(e),
        Ok(Err(_)) => return Err(Error::other("the thread reading it failed")),
        Err(_) => {
            return Err(Error::new(
                ErrorKind::TimedOut,
                format!(
                    "reading it took longer than {} s (a stalled mount?)",
                    KEY_FILE_TIMEOUT.as_secs()
                ),
            ))
        }
    };
    String::from_utf8(bytes)
        .map_err(|_| Error::new(ErrorKind::InvalidData, "not UTF-8 text, so not a key file"))
}
