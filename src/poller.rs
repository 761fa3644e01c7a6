//! The polling loop: load the key, walk the pages, publish all or nothing, on an interval
//! measured start to start; polls never overlap and shutdown cancels the one in flight.

use std::sync::Mutex;
use std::time::{Instant, SystemTime};

use secrecy::{ExposeSecret, SecretString};
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;
use tracing::{error, info, warn};

use crate::api::{Client, ClientConfig, ClientError, PollError};
use crate::census::{Census, Rules};
use crate::config::{KeySource, Settings};
use crate::membership::{Change, Changes, Membership, LOGGED_CHANGES};
use crate::metrics::Metrics;

/// Polls the API and publishes into [`Metrics`].
#[derive(Debug)]
pub struct Poller {
    client: Client,
    key: KeySource,
    metrics: Metrics,
    interval: std::time::Duration,
    max_statuses: usize,
    /// Who the last successful polls saw; only a successful poll changes it.
    membership: Mutex<Membership>,
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
            rules: Rules {
                max_statuses: settings.max_statuses,
                email_domains: settings.users_by_email_domain,
                max_email_domains: settings.max_email_domains,
            },
        };
        Ok(Self {
            client: Client::new(&config)?,
            key: settings.key.clone(),
            metrics,
            interval: settings.poll_interval,
            max_statuses: settings.max_statuses,
            membership: Mutex::default(),
        })
    }

    /// One poll: on success the census is published in one step, on failure only the
    /// failure is recorded and the last good counts stay.
    pub async fn poll(&self) -> Result<Census, PollError> {
        let started = Instant::now();
        let result = match load_key(&self.key).await {
            Ok(key) => self.client.walk(&key, &self.metrics).await,
            Err(e) => Err(e),
        };
        let took = started.elapsed();
        match result {
            Ok((tally, stats)) => {
                let (census, roster) = tally.finish();
                let changes = self
                    .membership
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .update(roster, &census.by_status, self.max_statuses);
                self.metrics
                    .publish(&census, &changes, took, SystemTime::now());
                log_changes(&changes);
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

/// Each membership change at `info` (ids and statuses only), at most [`LOGGED_CHANGES`]
/// of them and then one line for the rest: an audit trail of who came, went or changed.
fn log_changes(changes: &Changes) {
    for change in &changes.logged {
        match change {
            Change::Joined { id, status } => info!(id = %id, status, "user joined"),
            Change::Left { id, status } => info!(id = %id, status, "user left"),
            Change::StatusChanged { id, from, to } => {
                info!(id = %id, from, to, "user status changed");
            }
        }
    }
    let count = changes.count();
    if count > LOGGED_CHANGES as u64 {
        info!(
            joined = changes.joined,
            left = changes.left,
            status_changes = count - changes.joined - changes.left,
            not_logged = count - LOGGED_CHANGES as u64,
            "more membership changes in this poll than logged one by one"
        );
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
            let text = read_small_file(path).await.map_err(key_error)?;
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

/// Reads a key file of at most 64 KiB: a wrong path such as a device must not read forever.
async fn read_small_file(path: &std::path::Path) -> std::io::Result<String> {
    use tokio::io::AsyncReadExt;
    const LIMIT: u64 = 64 * 1024;
    let mut text = String::new();
    tokio::fs::File::open(path)
        .await?
        .take(LIMIT + 1)
        .read_to_string(&mut text)
        .await?;
    if text.len() as u64 > LIMIT {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "larger than 64 KiB, so not a key file",
        ));
    }
    Ok(text)
}
