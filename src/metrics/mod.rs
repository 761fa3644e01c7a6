//! Every collector the exporter serves, in one type. A poll's results go in through
//! [`Metrics::publish`] or [`Metrics::fail`] in one step; [`Metrics::encode`] renders them,
//! and [`Metrics::exposition`] keeps the rendering that scrapes are served from.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use flate2::write::GzEncoder;

use prometheus::{Encoder, Gauge, GaugeVec, IntCounterVec, Opts, Registry, TextEncoder};

use crate::api::{Observer, Reason};
use crate::census::Census;
use crate::membership::Changes;

mod members;

use members::Members;

/// For the label-less vectors below.
const NO_LABELS: &[&str] = &[];
const FROM_POLL: &str = "from a background poll of the Testsigma API";

/// How long a rendered exposition is served before it is rendered again, unless a poll's
/// results change first. Only what moves on its own goes stale this long: the `process_*`
/// metrics, and the request counters and quota gauge while a poll runs. Scrapers come every
/// few seconds at most, and a burst of them costs one rendering a second.
pub const EXPOSITION_MAX_AGE: Duration = Duration::from_secs(1);

/// The exporter's metrics. Clones share the same collectors.
#[derive(Clone, Debug)]
pub struct Metrics {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    registry: Registry,
    process: Registry,
    /// Held for writing while a poll's results are swapped in, for reading while encoding,
    /// so a scrape never sees half of a poll.
    swap: RwLock<()>,
    /// Bumped with every published or failed poll, so a cached exposition knows it is old.
    generation: AtomicU64,
    cache: Mutex<Option<Exposition>>,
    max_age: Duration,
    ready: AtomicBool,
    users: GaugeVec,
    by_status: GaugeVec,
    reported: GaugeVec,
    up: Gauge,
    last_success: GaugeVec,
    duration: Gauge,
    polls: IntCounterVec,
    errors: IntCounterVec,
    requests: IntCounterVec,
    remaining: GaugeVec,
    pace: GaugeVec,
    members: Members,
}

impl Metrics {
    /// Every collector, registered; the `testsigma_users*` series appear with the first
    /// successful poll.
    #[allow(clippy::new_without_default)] // each one is a registry of its own, not a neutral value
    pub fn new() -> Self {
        let registry = Registry::new();
        let reg = |c: Box<dyn prometheus::core::Collector>| {
            registry.register(c).expect("metric names are unique");
        };
        // Series without labels that must not exist before their first value are vectors
        // with no label names: they appear on the first `with_label_values(NO_LABELS)`.
        let users = GaugeVec::new(
            Opts::new(
                "testsigma_users",
                format!("Distinct users counted, {FROM_POLL}."),
            ),
            &[],
        )
        .expect("valid metric");
        let by_status = GaugeVec::new(
            Opts::new(
                "testsigma_users_by_status",
                format!("Users per normalised status (lower case; unknown if missing; other past --max-statuses), {FROM_POLL}."),
            ),
            &["status"],
        )
        .expect("valid metric");
        let reported = GaugeVec::new(
            Opts::new(
                "testsigma_users_reported",
                format!("Total user count the API reported in page_info.total_count, {FROM_POLL}."),
            ),
            &[],
        )
        .expect("valid metric");
        let up = Gauge::new(
            "testsigma_up",
            "1 if the last background poll of the Testsigma API succeeded, else 0.",
        )
        .expect("valid metric");
        let last_success = GaugeVec::new(
            Opts::new(
                "testsigma_last_successful_poll_timestamp_seconds",
                "Unix time the last successful background poll of the Testsigma API finished.",
            ),
            &[],
        )
        .expect("valid metric");
        let duration = Gauge::new(
            "testsigma_poll_duration_seconds",
            "Duration of the last background poll of the Testsigma API, in seconds.",
        )
        .expect("valid metric");
        let polls = IntCounterVec::new(
            Opts::new(
                "testsigma_polls_total",
                "Background polls of the Testsigma API finished, by result.",
            ),
            &["result"],
        )
        .expect("valid metric");
        let errors = IntCounterVec::new(
            Opts::new(
                "testsigma_poll_errors_total",
                "Failed background polls of the Testsigma API, by reason.",
            ),
            &["reason"],
        )
        .expect("valid metric");
        let requests = IntCounterVec::new(
            Opts::new(
                "testsigma_api_requests_total",
                "HTTP requests sent to the Testsigma API by the background poll, by status code (error if none came back).",
            ),
            &["code"],
        )
        .expect("valid metric");
        let remaining = GaugeVec::new(
            Opts::new(
                "testsigma_api_rate_limit_remaining",
                format!("Requests left in the API's rate-limit window (x-tms-api-remaining), {FROM_POLL}."),
            ),
            &[],
        )
        .expect("valid metric");
        let pace = GaugeVec::new(
            Opts::new(
                "testsigma_api_request_rate_limit",
                format!("Requests/second the exporter allows itself to the API now: --max-request-rate, or less while other clients of the key use its budget; {FROM_POLL}."),
            ),
            &[],
        )
        .expect("valid metric");
        let build_info = GaugeVec::new(
            Opts::new(
                "testsigma_exporter_build_info",
                "Version and revision testsigma-exporter was built from; always 1.",
            ),
            &["version", "revision"],
        )
        .expect("valid metric");
        build_info
            .with_label_values(&[
                env!("CARGO_PKG_VERSION"),
                env!("TESTSIGMA_EXPORTER_REVISION"),
            ])
            .set(1.0);
        for result in ["success", "failure"] {
            polls.with_label_values(&[result]);
        }
        for reason in Reason::ALL {
            errors.with_label_values(&[reason.as_str()]);
        }
        reg(Box::new(users.clone()));
        reg(Box::new(by_status.clone()));
        reg(Box::new(reported.clone()));
        reg(Box::new(up.clone()));
        reg(Box::new(last_success.clone()));
        reg(Box::new(duration.clone()));
        reg(Box::new(polls.clone()));
        reg(Box::new(errors.clone()));
        reg(Box::new(requests.clone()));
        reg(Box::new(remaining.clone()));
        reg(Box::new(pace.clone()));
        reg(Box::new(build_info));
        let members = Members::new(reg);

        let process = Registry::new();
        #[cfg(target_os = "linux")]
        process
            .register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ))
            .expect("process collector registers once");

        Self {
            inner: Arc::new(Inner {
                registry,
                process,
                swap: RwLock::new(()),
                generation: AtomicU64::new(0),
                cache: Mutex::new(None),
                max_age: EXPOSITION_MAX_AGE,
                ready: AtomicBool::new(false),
                users,
                by_status,
                reported,
                up,
                last_success,
                duration,
                polls,
                errors,
                requests,
                remaining,
                pace,
                members,
            }),
        }
    }

    /// Swaps in a successful poll's census and membership changes, all series at once.
    pub fn publish(
        &self,
        census: &Census,
        changes: &Changes,
        took: Duration,
        finished: SystemTime,
    ) {
        let m = &*self.inner;
        let _swap = m.swap.write().unwrap_or_else(|e| e.into_inner());
        m.users
            .with_label_values(NO_LABELS)
            .set(census.total as f64);
        m.by_status.reset();
        for (status, n) in &census.by_status {
            m.by_status.with_label_values(&[status]).set(*n as f64);
        }
        match census.reported {
            Some(n) => m.reported.with_label_values(NO_LABELS).set(n as f64),
            None => m.reported.reset(),
        }
        m.members.publish(census, changes);
        let unix = finished
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        m.last_success
            .with_label_values(NO_LABELS)
            .set(unix.as_secs_f64());
        m.duration.set(took.as_secs_f64());
        m.up.set(1.0);
        m.polls.with_label_values(&["success"]).inc();
        m.ready.store(true, Ordering::Release);
        m.generation.fetch_add(1, Ordering::Release);
    }

    /// Records a failed poll; the last good user counts stay as they are.
    pub fn fail(&self, reason: Reason, took: Duration) {
        let m = &*self.inner;
        let _swap = m.swap.write().unwrap_or_else(|e| e.into_inner());
        m.duration.set(took.as_secs_f64());
        m.up.set(0.0);
        m.polls.with_label_values(&["failure"]).inc();
        m.errors.with_label_values(&[reason.as_str()]).inc();
        m.generation.fetch_add(1, Ordering::Release);
    }

    /// True once a poll has succeeded.
    pub fn is_ready(&self) -> bool {
        self.inner.ready.load(Ordering::Acquire)
    }

    /// The text exposition (format 0.0.4); with the `process_*` metrics when `process`.
    pub fn encode(&self, process: bool) -> Vec<u8> {
        let mut families = {
            let _swap = self.inner.swap.read().unwrap_or_else(|e| e.into_inner());
            self.inner.registry.gather()
        };
        if process {
            families.extend(self.inner.process.gather());
        }
        let mut out = Vec::with_capacity(4096);
        TextEncoder::new()
            .encode(&families, &mut out)
            .expect("encoding to a Vec cannot fail");
        out
    }

    /// The exposition to serve, with the `process_*` metrics: rendered afresh when a poll has
    /// finished since the last rendering or that one is [`EXPOSITION_MAX_AGE`] old, else the
    /// same bytes again. Concurrent scrapes of a stale one wait for a single rendering.
    pub fn exposition(&self) -> Exposition {
        let generation = self.inner.generation.load(Ordering::Acquire);
        let mut cache = self.inner.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(cached) = cache.as_ref() {
            let r = &*cached.inner;
            if r.generation == generation && r.rendered.elapsed() < self.inner.max_age {
                return cached.clone();
            }
        }
        let fresh = Exposition {
            inner: Arc::new(Rendered {
                text: Bytes::from(self.encode(true)),
                gzip: OnceLock::new(),
                generation,
                rendered: Instant::now(),
            }),
        };
        *cache = Some(fresh.clone());
        fresh
    }
}

/// The client's requests, as `testsigma_api_requests_total{code}` and the quota gauge.
impl Observer for Metrics {
    fn request(&self, status: Option<u16>) {
        let code = status.map_or_else(|| "error".to_owned(), |s| s.to_string());
        self.inner.requests.with_label_values(&[&code]).inc();
    }

    fn quota_remaining(&self, remaining: f64) {
        self.inner
            .remaining
            .with_label_values(NO_LABELS)
            .set(remaining);
    }

    fn pace(&self, per_second: f64) {
        self.inner.pace.with_label_values(NO_LABELS).set(per_second);
    }
}

/// One rendering of the exposition, cheap to clone; its gzip form is made once, when first
/// asked for.
#[derive(Clone, Debug)]
pub struct Exposition {
    inner: Arc<Rendered>,
}

#[derive(Debug)]
struct Rendered {
    text: Bytes,
    gzip: OnceLock<Bytes>,
    generation: u64,
    rendered: Instant,
}

impl Exposition {
    /// The text format.
    pub fn text(&self) -> Bytes {
        self.inner.text.clone()
    }

    /// The text format, gzipped.
    pub fn gzip(&self) -> Bytes {
        self.inner
            .gzip
            .get_or_init(|| {
                let text = &self.inner.text;
                let mut gz = GzEncoder::new(
                    Vec::with_capacity(text.len() / 4),
                    flate2::Compression::default(),
                );
                gz.write_all(text).expect("writing to a Vec cannot fail");
                Bytes::from(gz.finish().expect("writing to a Vec cannot fail"))
            })
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(m: &Metrics) -> String {
        String::from_utf8(m.encode(false)).unwrap()
    }

    fn census(total: u64, statuses: &[(&str, u64)], reported: Option<u64>) -> Census {
        Census {
            total,
            by_status: statuses.iter().map(|(s, n)| (s.to_string(), *n)).collect(),
            reported,
            ..Census::default()
        }
    }

    #[test]
    fn before_the_first_poll_no_user_series_and_down() {
        let m = Metrics::new();
        let t = text(&m);
        assert!(!t.contains("\ntestsigma_users"), "{t}");
        assert!(t.contains("\ntestsigma_up 0\n"), "{t}");
        assert!(
            !t.contains("testsigma_last_successful_poll_timestamp_seconds "),
            "{t}"
        );
        for reason in Reason::ALL {
            let line = format!(
                "testsigma_poll_errors_total{{reason=\"{}\"}} 0\n",
                reason.as_str()
            );
            assert!(t.contains(&line), "{line} missing in {t}");
        }
        assert!(t.contains("testsigma_polls_total{result=\"failure\"} 0\n"));
        assert!(t.contains("testsigma_polls_total{result=\"success\"} 0\n"));
        assert!(t.contains("testsigma_exporter_build_info{revision="));
        assert!(!m.is_ready());
    }

    #[test]
    fn publish_then_fail_keeps_the_last_good_counts() {
        let m = Metrics::new();
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        m.publish(
            &census(3, &[("active", 2), ("gone", 1), ("inactive", 0)], Some(3)),
            &Changes::default(),
            Duration::from_millis(1500),
            at,
        );
        m.publish(
            &census(2, &[("active", 2), ("inactive", 0)], None),
            &Changes::default(),
            Duration::from_millis(250),
            at,
        );
        m.fail(Reason::Timeout, Duration::from_secs(2));
        let t = text(&m);
        assert!(t.contains("\ntestsigma_users 2\n"), "{t}");
        assert!(t.contains("testsigma_users_by_status{status=\"active\"} 2\n"));
        assert!(!t.contains("\"gone\""), "a vanished status is dropped: {t}");
        assert!(!t.contains("testsigma_users_reported "), "{t}");
        assert!(t.contains("\ntestsigma_up 0\n"));
        assert!(t.contains("testsigma_poll_duration_seconds 2\n"));
        assert!(t.contains("testsigma_last_successful_poll_timestamp_seconds 1700000000\n"));
        assert!(t.contains("testsigma_polls_total{result=\"success\"} 2\n"));
        assert!(t.contains("testsigma_poll_errors_total{reason=\"timeout\"} 1\n"));
        assert!(m.is_ready());
    }

    #[test]
    fn membership_series_appear_with_the_baseline_and_follow_each_poll() {
        let m = Metrics::new();
        let t = text(&m);
        assert!(!t.contains("\ntestsigma_users_joined_total"), "{t}");
        assert!(!t.contains("\ntestsigma_users_created_within{"), "{t}");
        let mut c = census(2, &[("active", 2)], None);
        c.created_within = [1, 2, 2];
        c.newest_created = Some(1_700_000_000.5);
        let at = SystemTime::now();
        m.publish(&c, &Changes::default(), Duration::ZERO, at);
        let t = text(&m);
        for line in [
            "\ntestsigma_users_joined_total 0\n",
            "\ntestsigma_users_left_total 0\n",
            "testsigma_users_created_within{window=\"1d\"} 1\n",
            "testsigma_users_created_within{window=\"7d\"} 2\n",
            "testsigma_users_created_within{window=\"30d\"} 2\n",
            "\ntestsigma_users_newest_created_timestamp_seconds 1700000000.5\n",
        ] {
            assert!(t.contains(line), "{line} missing in {t}");
        }
        assert!(!t.contains("testsigma_users_status_changes_total{"), "{t}");
        assert!(!t.contains("testsigma_users_by_email_domain{"), "{t}");
        let mut changes = Changes {
            joined: 2,
            left: 1,
            ..Changes::default()
        };
        changes
            .status_changes
            .insert(("active".into(), "inactive".into()), 3);
        c.newest_created = None;
        c.by_email_domain = Some([("example.com".to_owned(), 2)].into());
        m.publish(&c, &changes, Duration::ZERO, at);
        m.publish(&c, &changes, Duration::ZERO, at);
        let t = text(&m);
        for line in [
            "\ntestsigma_users_joined_total 4\n",
            "\ntestsigma_users_left_total 2\n",
            "testsigma_users_status_changes_total{from=\"active\",to=\"inactive\"} 6\n",
            "testsigma_users_by_email_domain{domain=\"example.com\"} 2\n",
        ] {
            assert!(t.contains(line), "{line} missing in {t}");
        }
        assert!(!t.contains("newest_created_timestamp_seconds "), "{t}");
    }

    #[test]
    fn process_metrics_only_when_asked() {
        let m = Metrics::new();
        let with = String::from_utf8(m.encode(true)).unwrap();
        assert_eq!(
            with.contains("process_resident_memory_bytes"),
            cfg!(target_os = "linux")
        );
        assert!(!text(&m).contains("process_"));
    }

    fn with_max_age(max_age: Duration) -> Metrics {
        let mut m = Metrics::new();
        Arc::get_mut(&mut m.inner).unwrap().max_age = max_age;
        m
    }

    #[test]
    fn exposition_is_reused_until_a_poll_changes_it() {
        let m = with_max_age(Duration::from_secs(3600));
        let first = m.exposition();
        // Request counters move during a poll; they may be up to a second stale.
        m.request(Some(200));
        let again = m.exposition();
        assert!(Arc::ptr_eq(&first.inner, &again.inner));
        assert_eq!(first.text(), again.text());
        // A finished poll is served at once, counters included.
        m.fail(Reason::Http, Duration::from_secs(1));
        let t = String::from_utf8(m.exposition().text().to_vec()).unwrap();
        assert!(
            t.contains("testsigma_poll_errors_total{reason=\"http\"} 1\n"),
            "{t}"
        );
        assert!(
            t.contains("testsigma_api_requests_total{code=\"200\"} 1\n"),
            "{t}"
        );
        assert_eq!(
            t.contains("process_resident_memory_bytes"),
            cfg!(target_os = "linux")
        );
        m.publish(
            &census(1, &[("active", 1)], None),
            &Changes::default(),
            Duration::ZERO,
            SystemTime::now(),
        );
        let t = String::from_utf8(m.exposition().text().to_vec()).unwrap();
        assert!(t.contains("\ntestsigma_users 1\n"), "{t}");
    }

    #[test]
    fn exposition_older_than_max_age_is_rendered_again() {
        let m = with_max_age(Duration::ZERO);
        let first = m.exposition();
        m.request(Some(200));
        let t = String::from_utf8(m.exposition().text().to_vec()).unwrap();
        assert!(
            t.contains("testsigma_api_requests_total{code=\"200\"} 1\n"),
            "{t}"
        );
        assert!(!String::from_utf8_lossy(&first.text()).contains("api_requests_total{"));
    }

    #[test]
    fn gzip_form_decompresses_to_the_text() {
        use std::io::Read;
        let e = Metrics::new().exposition();
        let gz = e.gzip();
        assert!(gz.len() < e.text().len());
        let mut text = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut text)
            .unwrap();
        assert_eq!(text, e.text());
        assert_eq!(e.gzip(), gz, "made once");
    }
}
