//! Account age: the windows of `testsigma_users_created_within`, which end when the poll
//! finished, and the newest `created_at`.
//!
//! Users are counted against windows that end at the poll's start `S`, which is known as they
//! come; [`Ages::finish`] then moves the end to the finish `F`. A user counted at the start and
//! not at the finish was created in `(S - W, F - W]`, so for each window the users created in
//! its margin `(S - W, S - W + M]`, `M` the poll deadline plus [`SLACK_SECONDS`], are also
//! kept as counts per whole second; finishing subtracts those up to `F - S`. A user not near
//! an edge costs two comparisons per window and no allocation.
//!
//! Bound: at most `M` seconds (entries of a `BTreeMap<u32, u32>`, about 20 bytes each) per
//! window, however many users fall in a margin: 960 entries for the default 15-minute deadline,
//! 86 460 (about 1.7 MB) at the 24-hour maximum. Realistically a margin holds the few users
//! created in `M` seconds a day, a week or a month ago.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

/// The windows of `testsigma_users_created_within`: label and length in seconds.
pub const WINDOWS: [(&str, f64); 3] = [
    ("1d", 86_400.0),
    ("7d", 7.0 * 86_400.0),
    ("30d", 30.0 * 86_400.0),
];
/// A `created_at` above this is in milliseconds (10^11 s is in the year 5138).
const MILLIS_ABOVE: f64 = 1e11;
/// Unix seconds of 10000-01-01: a later `created_at` is not a date.
const LATEST_DATE: f64 = 253_402_300_800.0;
/// Added to the poll deadline for the margins: the wall clock may run apart from the
/// monotonic one that enforces the deadline, and the finish is read just after the walk.
pub const SLACK_SECONDS: u32 = 60;
/// How far past the poll's deadline a `created_at` may lie and still be a date: the API's
/// clock may run ahead of ours, but not by more. A later one (a bad date, a clock years
/// off) is left out, so it neither counts in every window nor makes "time since the newest
/// account" negative for good.
const AHEAD_SECONDS: f64 = 3600.0;

/// `created_at` counts of one poll.
#[derive(Debug)]
pub struct Ages {
    /// When the poll started: the end of the windows while users are added.
    start: SystemTime,
    /// Per window, Unix seconds of `start - window`: a user created later is within it.
    since: [f64; 3],
    /// Unix seconds past which a `created_at` is not usable ([`AHEAD_SECONDS`]).
    latest: f64,
    /// Length of the margins in whole seconds: the deadline plus [`SLACK_SECONDS`].
    margin: u32,
    /// Users created after `since`, per window.
    within: [u64; 3],
    /// Per window, the users created in `(since, since + margin]` by whole second after
    /// `since`, rounded up (1 to `margin`).
    near_edge: [BTreeMap<u32, u32>; 3],
    newest: Option<f64>,
}

impl Ages {
    /// Empty counts for a poll that starts at `start` and lasts at most `deadline`.
    pub fn new(start: SystemTime, deadline: Duration) -> Self {
        let now = start
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        let deadline = deadline.as_secs() + u64::from(deadline.subsec_nanos() > 0);
        let margin = u32::try_from(deadline)
            .unwrap_or(u32::MAX)
            .saturating_add(SLACK_SECONDS);
        Self {
            start,
            since: WINDOWS.map(|(_, window)| now - window),
            latest: now + f64::from(margin) + AHEAD_SECONDS,
            margin,
            within: [0; 3],
            near_edge: Default::default(),
            newest: None,
        }
    }

    /// Counts a usable `created_at`, in Unix seconds ([`created_seconds`]). One after the
    /// start (the API's clock ahead, or a user added during the poll) is within every window;
    /// one more than [`AHEAD_SECONDS`] past the deadline is left out.
    pub fn add(&mut self, created: f64) {
        if created > self.latest {
            return;
        }
        for ((n, near), since) in self
            .within
            .iter_mut()
            .zip(&mut self.near_edge)
            .zip(self.since)
        {
            if created > since {
                *n += 1;
                let after = created - since;
                if after <= f64::from(self.margin) {
                    // In (0, margin]: at least 1 once rounded up, and at most margin.
                    let second = (after.ceil() as u32).clamp(1, self.margin);
                    let count = near.entry(second).or_insert(0);
                    *count = count.saturating_add(1);
                }
            }
        }
        if self.newest.is_none_or(|newest| created > newest) {
            self.newest = Some(created);
        }
    }

    /// The users created within each window before `finished`, and the newest `created_at`.
    /// The windows end at the start plus the whole seconds the poll took: `finished` before
    /// the start (the clock stepped back) counts as the start, and a poll longer than the
    /// margin (the clock stepped forward) as the margin.
    pub fn finish(self, finished: SystemTime) -> ([u64; 3], Option<f64>) {
        let took = finished
            .duration_since(self.start)
            .map_or(0, |took| took.as_secs())
            .min(u64::from(self.margin));
        let took = u32::try_from(took).unwrap_or(self.margin);
        let mut within = self.within;
        for (n, near) in within.iter_mut().zip(&self.near_edge) {
            // Created at most `took` seconds after `since`: not after `finished - window`.
            let out: u64 = near.range(..=took).map(|(_, &k)| u64::from(k)).sum();
            *n = n.saturating_sub(out);
        }
        (within, self.newest)
    }

    /// Seconds held near the window edges, over all windows.
    #[cfg(test)]
    pub fn held(&self) -> usize {
        self.near_edge.iter().map(BTreeMap::len).sum()
    }
}

/// `created_at` in Unix seconds: above 10^11 it is milliseconds; zero, negative, not finite
/// or past the year 9999 is not a usable date.
pub fn created_seconds(raw: f64) -> Option<f64> {
    let seconds = if raw > MILLIS_ABOVE {
        raw / 1000.0
    } else {
        raw
    };
    (raw.is_finite() && raw > 0.0 && seconds < LATEST_DATE).then_some(seconds)
}
