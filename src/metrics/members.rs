//! The series of "Membership changes" (joins, leaves, status changes), account age and
//! email domains, swapped in by [`super::Metrics::publish`] with the counts.

use prometheus::{GaugeVec, IntCounterVec, Opts};

use super::{FROM_POLL, NO_LABELS};
use crate::census::{Census, WINDOWS};
use crate::membership::Changes;

/// The series of "Membership changes", account age and email domains.
#[derive(Debug)]
pub(super) struct Members {
    joined: IntCounterVec,
    left: IntCounterVec,
    status_changes: IntCounterVec,
    created_within: GaugeVec,
    newest_created: GaugeVec,
    by_email_domain: GaugeVec,
}

impl Members {
    pub(super) fn new(reg: impl Fn(Box<dyn prometheus::core::Collector>)) -> Self {
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            reg(Box::new(c.clone()));
            c
        };
        let gauge = |name: &str, help: String, labels: &[&str]| {
            let g = GaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
            reg(Box::new(g.clone()));
            g
        };
        Self {
            joined: counter(
                "testsigma_users_joined_total",
                "Users seen for the first time since the baseline, by the background poll of the Testsigma API.",
                &[],
            ),
            left: counter(
                "testsigma_users_left_total",
                "Users gone, confirmed by two successful background polls of the Testsigma API in a row without them.",
                &[],
            ),
            status_changes: counter(
                "testsigma_users_status_changes_total",
                "Status changes of known users seen by the background poll of the Testsigma API, by normalised status before and after (capped like status).",
                &["from", "to"],
            ),
            created_within: gauge(
                "testsigma_users_created_within",
                format!("Users whose created_at lies within the window before the poll finished, {FROM_POLL}."),
                &["window"],
            ),
            newest_created: gauge(
                "testsigma_users_newest_created_timestamp_seconds",
                format!("The latest created_at of any user, in Unix seconds, {FROM_POLL}."),
                &[],
            ),
            by_email_domain: gauge(
                "testsigma_users_by_email_domain",
                format!("Users per lower-cased email domain (unknown if none or invalid; other past --max-email-domains), {FROM_POLL}."),
                &["domain"],
            ),
        }
    }

    /// Swaps in a poll's membership changes, account ages and domains (under the swap lock).
    pub(super) fn publish(&self, census: &Census, changes: &Changes) {
        // Counters appear, at 0, with the baseline.
        self.joined
            .with_label_values(NO_LABELS)
            .inc_by(changes.joined);
        self.left.with_label_values(NO_LABELS).inc_by(changes.left);
        for ((from, to), n) in &changes.status_changes {
            self.status_changes
                .with_label_values(&[from, to])
                .inc_by(*n);
        }
        for ((window, _), n) in WINDOWS.iter().zip(census.created_within) {
            self.created_within
                .with_label_values(&[window])
                .set(n as f64);
        }
        match census.newest_created {
            Some(t) => self.newest_created.with_label_values(NO_LABELS).set(t),
            None => self.newest_created.reset(),
        }
        self.by_email_domain.reset();
        for (domain, n) in census.by_email_domain.iter().flatten() {
            self.by_email_domain
                .with_label_values(&[domain])
                .set(*n as f64);
        }
    }
}
