//! The polling loop: load the key, walk the pages, publish all or nothing, on an interval
//! measured start to start; polls never overlap and shutdown cancels the one in flight.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use secrecy::{ExposeSecret, SecretString};
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;
use tracing::{error, info, warn};

use crate::api::{Client, ClientConfig, ClientError, PollError};
use crate::census::{Census, Rules};
use crate::config::{KeySource, Settings};
use crate::files::read_regular;
use crate::membership::{Change, Changes, Membership, LOGGED_CHANGES};
use crate::metrics::Metrics;

/// Polls the API and publishes into [`Metrics`].
#[derive(Debug)]
pub struct Poller {
    client: Client,
    key: KeySource,
    key_file: KeyFileReader,
    metrics: Metrics,
    interval: Duration,
    timeout: Duration,
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
                poll_timeout: settings.poll_timeout,
            },
        };
        Ok(Self {
            client: Client::new(&config)?,
            key: settings.key.clone(),
            key_file: KeyFileReader::default(),
            metrics,
            interval: settings.poll_interval,
            timeout: settings.poll_timeout,
            max_statuses: settings.max_statuses,
            membership: Mutex::default(),
        })
    }

    /// One poll: on success the census is published in one step, on failure only the
    /// failure is recorded and the last good counts stay.
    pub async fn poll(&self) -> Result<Census, PollError> {
        let started = Instant::now();
        let expected = self.membership().remembered();
        let walk = async {
            let key = load_key(&self.key, &self.key_file, key_file_timeout(self.timeout)).await?;
            self.client.walk(&key, &self.metrics, expected).await
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
                // The created_at windows end here, when the poll finished.
                let finished = SystemTime::now();
                let (census, roster) = tally.finish(finished);
                let changes =
                    self.membership()
                        .update(roster, &census.by_status, self.max_statuses);
                self.metrics.publish(&census, &changes, took, finished);
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

    fn membership(&self) -> std::sync::MutexGuard<'_, Membership> {
        self.membership.lock().unwrap_or_else(|e| e.into_inner())
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

/// The key for this poll; a key file is read afresh each time so a rotated Secret applies,
/// by `reader` within `deadline`.
async fn load_key(
    source: &KeySource,
    reader: &KeyFileReader,
    deadline: Duration,
) -> Result<SecretString, PollError> {
    let key = match source {
        KeySource::Env(key) => key.clone(),
        KeySource::File(path) => {
            let key_error = |source| PollError::KeyFile {
                path: path.clone(),
                source,
            };
            let text = reader.read(path, deadline).await.map_err(key_error)?;
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

/// The deadline for reading the key file within a poll given `poll_timeout`: at most
/// [`KEY_FILE_TIMEOUT`], and half the poll's, so that a short `--poll-timeout` still
/// reports a hung key file as `auth` rather than `timeout`.
fn key_file_timeout(poll_timeout: Duration) -> Duration {
    KEY_FILE_TIMEOUT.min(poll_timeout / 2)
}

/// Reads the key file on a blocking thread, one read at a time. A read that outlives its
/// deadline (a stalled network mount) cannot be stopped: its thread is left to finish, and
/// until it has, no new read starts and each poll fails at once as `auth`. Otherwise every
/// poll would leave one more thread behind, up to tokio's 512 blocking threads, and starve
/// everything else that needs one (bcrypt checks of basic auth among them).
#[derive(Debug, Default)]
struct KeyFileReader {
    /// A read is running (set before its thread starts, cleared when it ends, however).
    busy: Arc<AtomicBool>,
}

/// Clears the reader's flag when the read ends, panics included.
struct EndOfRead(Arc<AtomicBool>);

impl Drop for EndOfRead {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl KeyFileReader {
    /// Reads a key file: a regular file only (a FIFO or a device is refused before a byte
    /// is read), of at most 64 KiB, UTF-8, within `deadline`.
    async fn read(&self, path: &Path, deadline: Duration) -> std::io::Result<String> {
        use std::io::{Error, ErrorKind};
        let owned = path.to_owned();
        let bytes = self
            .read_with(move || read_regular(&owned, KEY_FILE_LIMIT), deadline)
            .await
            .map_err(|e| match e.kind() {
                ErrorKind::FileTooLarge => Error::new(
                    ErrorKind::FileTooLarge,
                    "larger than 64 KiB, so not a key file",
                ),
                _ => e,
            })?;
        String::from_utf8(bytes)
            .map_err(|_| Error::new(ErrorKind::InvalidData, "not UTF-8 text, so not a key file"))
    }

    /// Runs `read` on a blocking thread given `deadline`, unless an earlier read still runs.
    async fn read_with<F>(&self, read: F, deadline: Duration) -> std::io::Result<Vec<u8>>
    where
        F: FnOnce() -> std::io::Result<Vec<u8>> + Send + 'static,
    {
        use std::io::{Error, ErrorKind};
        if self.busy.swap(true, Ordering::AcqRel) {
            return Err(Error::new(
                ErrorKind::WouldBlock,
                "an earlier read of it has not finished yet (a stalled mount?); no new read \
                 starts until it has",
            ));
        }
        let end = EndOfRead(self.busy.clone());
        let reading = tokio::task::spawn_blocking(move || {
            let _end = end;
            read()
        });
        match tokio::time::timeout(deadline, reading).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(Error::other("the thread reading it failed")),
            Err(_) => Err(Error::new(
                ErrorKind::TimedOut,
                format!(
                    "reading it took longer than {} (a stalled mount?)",
                    humantime::format_duration(deadline)
                ),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::ErrorKind;
    use std::sync::atomic::AtomicUsize;
    use std::sync::mpsc;

    /// A read that counts itself in `reads`, then returns `bytes` once `release` says so
    /// (a stalled mount until then).
    fn stalled(
        reads: &Arc<AtomicUsize>,
        release: mpsc::Receiver<()>,
        bytes: &'static [u8],
    ) -> impl FnOnce() -> std::io::Result<Vec<u8>> + Send + 'static {
        let reads = reads.clone();
        move || {
            reads.fetch_add(1, Ordering::SeqCst);
            let _ = release.recv();
            Ok(bytes.to_vec())
        }
    }

    #[tokio::test]
    async fn a_hung_key_file_read_is_the_only_one_until_it_ends() {
        let reader = KeyFileReader::default();
        let reads = Arc::new(AtomicUsize::new(0));
        let deadline = Duration::from_millis(50);
        let (release, hang) = mpsc::channel();
        let e = reader
            .read_with(stalled(&reads, hang, b"late"), deadline)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TimedOut, "{e}");
        // While it hangs, each poll fails at once, starting no other read (and thread).
        for _ in 0..5 {
            let (_release, hang) = mpsc::channel();
            let e = reader
                .read_with(stalled(&reads, hang, b"key"), deadline)
                .await
                .unwrap_err();
            assert_eq!(e.kind(), ErrorKind::WouldBlock, "{e}");
            assert!(e.to_string().contains("has not finished yet"), "{e}");
        }
        assert_eq!(reads.load(Ordering::SeqCst), 1);
        // Once it ends, the next poll reads again.
        release.send(()).unwrap();
        let until = Instant::now() + Duration::from_secs(10);
        while reader.busy.load(Ordering::Acquire) {
            assert!(Instant::now() < until, "the stalled read never ended");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let (release, hang) = mpsc::channel();
        release.send(()).unwrap();
        let bytes = reader
            .read_with(stalled(&reads, hang, b"key"), deadline)
            .await;
        assert_eq!(bytes.unwrap(), b"key");
        assert_eq!(reads.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_hung_key_file_fails_as_auth_within_a_short_poll_timeout() {
        let poll_timeout = Duration::from_millis(200);
        assert_eq!(key_file_timeout(poll_timeout), Duration::from_millis(100));
        assert_eq!(key_file_timeout(Duration::from_secs(900)), KEY_FILE_TIMEOUT);
        let reader = KeyFileReader::default();
        let (_release, hang) = mpsc::channel();
        let reads = Arc::new(AtomicUsize::new(0));
        let read = reader.read_with(stalled(&reads, hang, b""), key_file_timeout(poll_timeout));
        // The key file's deadline comes first: the poll fails as `auth`, not `timeout`.
        let e = tokio::time::timeout(poll_timeout, read)
            .await
            .expect("the key file's deadline is within the poll's")
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TimedOut, "{e}");
    }

    #[tokio::test]
    async fn a_key_file_that_is_too_large_or_not_text_says_which() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        let reader = KeyFileReader::default();
        let deadline = Duration::from_secs(5);
        for (bytes, says) in [
            (vec![b'k'; 64 * 1024 + 1], "larger than 64 KiB"),
            (vec![0xff, 0xfe], "not UTF-8"),
        ] {
            std::fs::write(&path, bytes).unwrap();
            let e = reader.read(&path, deadline).await.unwrap_err();
            assert!(e.to_string().contains(says), "{e}");
        }
    }
}
