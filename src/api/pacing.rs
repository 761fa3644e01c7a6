//! Request pacing and retry timing: arithmetic plus one small shared clock.
//!
//! The key's budget (about 10 requests a second) is shared with every other client of the
//! key, and clients do not talk to each other: the API's `x-tms-api-limit` and
//! `x-tms-api-remaining` headers are the shared signal. The pacer adapts its rate to them,
//! additive increase and multiplicative decrease (AIMD, as TCP shares a link):
//!
//! - other clients are drawing on the window (its use is at least [`OTHERS_MIN`] more than
//!   our own requests that the server could still count in it) and what remains is low
//!   ([`LOW_SHARE`] of the limit or less): the rate is cut to [`CUT`] of itself, at most once
//!   a [`WINDOW`]; with almost nothing left ([`HOLD_BELOW`]), the next request also waits
//!   most of a window for it to free up;
//! - a request refused for the rate limit: the rate is halved (its retry waits at least a
//!   second); nothing left at all: nothing is sent for a window (as before sharing);
//! - plenty remains: the rate grows by [`INCREASE`] requests/second for every second since
//!   the last answer (so a pace cut in one poll has recovered by the next), up to
//!   `--max-request-rate` (and never above the key's limit per window).
//!
//! Alone, the window's use is our own and the rate stays at `--max-request-rate`. Several
//! clients settle on a share each, below the key's limit. Whatever the headers say, a cut
//! never takes the rate below [`FLOOR`] (a request every 5 s at most), a limit under one
//! request a window is ignored, and a wait that is cancelled gives its slot back: a hostile
//! or broken header cannot stall polling.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

/// The key's rate-limit window, as the live API has it: `x-tms-api-limit` requests a second.
pub const WINDOW: Duration = Duration::from_secs(1);
/// What remains in the window is low at this share of the limit (at least 1 request).
pub const LOW_SHARE: f64 = 0.3;
/// At this many requests left or fewer, while others draw on the key, the next request
/// waits [`HOLD`] for the window to free up.
pub const HOLD_BELOW: f64 = 2.0;
const HOLD: Duration = Duration::from_millis(750);
/// The rate is multiplied by this when the remaining budget runs low, and by
/// [`REFUSED_CUT`] when a request is refused.
pub const CUT: f64 = 0.6;
const REFUSED_CUT: f64 = 0.5;
/// Requests/second the rate grows by, a second, while the budget is plentiful.
pub const INCREASE: f64 = 0.5;
/// The lowest rate a cut goes to, in requests/second: the longest gap adaptation makes is
/// 5 s (a lower `--max-request-rate` is the operator's choice and kept).
pub const FLOOR: f64 = 0.2;
/// The window's use beyond our own requests that means other clients draw on the key: one
/// more than our own count can be timing (a request the server still counts, or counts late).
pub const OTHERS_MIN: f64 = 2.0;
/// The `x-tms-api-limit` values believed: below one request a window the header is wrong
/// (and would stall polling), above a million it says nothing a pace could use.
const LIMIT_MIN: f64 = 1.0;
const LIMIT_MAX: f64 = 1e6;
/// Own request starts remembered: more than any window's limit needs.
const SENT_CAP: usize = 1024;

/// What one answer said of the key's budget.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quota {
    /// `x-tms-api-limit`: requests a window, when sent.
    pub limit: Option<f64>,
    /// `x-tms-api-remaining`: requests left in the current window.
    pub remaining: f64,
}

impl Quota {
    /// `x-tms-api-remaining` and `x-tms-api-limit`, when the answer has them.
    pub fn from_headers(headers: &reqwest::header::HeaderMap) -> Option<Self> {
        let number = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<f64>().ok())
                .filter(|n| n.is_finite() && *n >= 0.0)
        };
        Some(Self {
            remaining: number("x-tms-api-remaining")?,
            limit: number("x-tms-api-limit"),
        })
    }
}

/// Spaces request starts at the adaptive rate, never above `--max-request-rate`, and holds
/// off after the API says its quota is spent. Shared by every request of the client, across
/// polls.
#[derive(Debug)]
pub struct Pacer {
    /// `--max-request-rate`; infinite for no limit.
    ceiling: f64,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// Requests/second allowed now; infinite while unpaced.
    rate: f64,
    last_start: Option<Instant>,
    hold_until: Option<Instant>,
    /// Own request starts of the last two [`WINDOW`]s.
    sent: VecDeque<Instant>,
    last_cut: Option<Instant>,
    last_heard: Option<Instant>,
}

impl Pacer {
    /// `rate` in requests per second; `None` for no limit.
    pub fn new(rate: Option<f64>) -> Self {
        let ceiling = rate.filter(|r| *r > 0.0).unwrap_or(f64::INFINITY);
        Self {
            ceiling,
            state: Mutex::new(State {
                rate: ceiling,
                last_start: None,
                hold_until: None,
                sent: VecDeque::new(),
                last_cut: None,
                last_heard: None,
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Requests/second allowed now; `None` while unpaced.
    pub fn rate(&self) -> Option<f64> {
        Some(self.state().rate).filter(|r| r.is_finite())
    }

    /// Waits until the next request may start, books its slot and returns it. Returns at
    /// once when the slot is now: a timer, even one already due, would wait for the next
    /// tick of tokio's millisecond clock, about 1 ms a request when there is no limit.
    /// Cancelled before its slot (a poll past `--poll-timeout`, shutdown), the wait gives the
    /// slot back, so the next request is not pushed further out by one that never went.
    pub async fn wait(&self) -> Instant {
        let booking = {
            let mut s = self.state();
            let now = Instant::now();
            let mut at = now;
            if let (Some(last), Some(gap)) = (s.last_start, gap(s.rate)) {
                at = at.max(last + gap);
            }
            if let Some(hold) = s.hold_until {
                at = at.max(hold);
            }
            let before = s.last_start.replace(at);
            if s.sent.len() >= SENT_CAP {
                s.sent.pop_front();
            }
            s.sent.push_back(at);
            if at <= now {
                return at;
            }
            Booking {
                pacer: self,
                at,
                before,
            }
        };
        let at = booking.at;
        tokio::time::sleep_until(at).await;
        booking.keep();
        at
    }

    /// No request starts before `pause` has passed.
    #[cfg(test)]
    pub fn hold_off(&self, pause: Duration) {
        self.state().hold(Instant::now() + pause);
    }

    /// Adapts the rate to an answer to the request that started at `started` (as
    /// [`Pacer::wait`] returned): what it said of the key's budget, and whether the request
    /// was refused for the rate limit. Returns whether the rate was cut.
    pub fn observe(&self, started: Instant, quota: Option<Quota>, refused: bool) -> bool {
        let now = Instant::now();
        let mut s = self.state();
        while s
            .sent
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= 2 * WINDOW)
        {
            s.sent.pop_front();
        }
        // Our requests the server may have counted in the window it answered from: it
        // answered after `started`, so any of ours from a window before it on (counting from
        // now would drop early ones the server still counts, and see others where none are).
        let own = s
            .sent
            .iter()
            .filter(|t| started.saturating_duration_since(**t) < WINDOW)
            .count() as f64;
        let since = s.last_heard.map(|t| now.saturating_duration_since(t));
        s.last_heard = Some(now);
        let may_cut = s
            .last_cut
            .is_none_or(|t| now.saturating_duration_since(t) >= WINDOW);
        let limit = quota
            .and_then(|q| q.limit)
            .filter(|l| (LIMIT_MIN..=LIMIT_MAX).contains(l));
        // Never above the key's own limit either.
        let ceiling = limit.map_or(self.ceiling, |l| self.ceiling.min(l / WINDOW.as_secs_f64()));
        let remaining = quota.map(|q| q.remaining);
        if remaining.is_some_and(|r| r <= 0.0) {
            s.hold(now + WINDOW);
        }
        // Unpaced and no limit known: nothing to adapt (a refused request waits for its
        // retry, as before).
        if ceiling.is_infinite() {
            return false;
        }
        let cut = if refused {
            Some(REFUSED_CUT)
        } else {
            match (limit, remaining) {
                (Some(limit), Some(remaining)) => {
                    let others = (limit - remaining) - own;
                    let low = (limit * LOW_SHARE).max(1.0);
                    if remaining <= low && others >= OTHERS_MIN {
                        if remaining <= HOLD_BELOW {
                            s.hold(now + HOLD);
                        }
                        Some(CUT)
                    } else {
                        None
                    }
                }
                _ => None,
            }
        };
        let low = match (limit, remaining) {
            (Some(limit), Some(remaining)) => remaining <= (limit * LOW_SHARE).max(1.0),
            _ => false,
        };
        let mut rate = s.rate.min(ceiling);
        let mut was_cut = false;
        if let Some(factor) = cut {
            if may_cut {
                // Unpaced until now: cut from the rate actually used.
                let from = if rate.is_finite() {
                    rate
                } else {
                    own.max(1.0) / WINDOW.as_secs_f64()
                };
                rate = (from * factor).max(FLOOR.min(ceiling));
                s.last_cut = Some(now);
                was_cut = true;
            }
        } else if !low && rate.is_finite() {
            // In proportion to the time since the last answer, idle time included: the key's
            // window has long forgotten a cut made a poll ago.
            let grow = since.unwrap_or(Duration::ZERO).as_secs_f64();
            rate = (rate + INCREASE * grow).min(ceiling);
        }
        s.rate = rate;
        was_cut
    }
}

/// A slot booked by [`Pacer::wait`] that has not come yet: dropped (the wait cancelled),
/// it is given back.
struct Booking<'p> {
    pacer: &'p Pacer,
    at: Instant,
    /// The last start before this one.
    before: Option<Instant>,
}

impl Booking<'_> {
    /// The slot came: the request goes out.
    fn keep(self) {
        std::mem::forget(self);
    }
}

impl Drop for Booking<'_> {
    fn drop(&mut self) {
        let mut s = self.pacer.state();
        // A later booking was made from this one: it keeps its place.
        if s.last_start == Some(self.at) {
            s.last_start = self.before;
        }
        if let Some(i) = s.sent.iter().rposition(|t| *t == self.at) {
            s.sent.remove(i);
        }
    }
}

impl State {
    fn hold(&mut self, until: Instant) {
        self.hold_until = Some(self.hold_until.map_or(until, |h| h.max(until)));
    }
}

/// The time between two request starts at `rate`; `None` for no limit. A rate so small
/// that the gap does not fit a Duration waits an hour, not a panic.
fn gap(rate: f64) -> Option<Duration> {
    if !rate.is_finite() || rate <= 0.0 {
        return rate.is_finite().then_some(MAX_GAP);
    }
    Some(Duration::try_from_secs_f64(1.0 / rate).map_or(MAX_GAP, |g| g.min(MAX_GAP)))
}

/// The longest gap between two requests, however low the rate.
const MAX_GAP: Duration = Duration::from_secs(3600);

/// Base and cap of the exponential backoff between retries.
pub const BACKOFF_BASE: Duration = Duration::from_millis(500);
pub const BACKOFF_CAP: Duration = Duration::from_secs(30);
/// The longest `Retry-After` honoured.
pub const RETRY_AFTER_CAP: Duration = Duration::from_secs(60);

/// Exponential backoff with full jitter: uniform in `[0, min(cap, base * 2^attempt)]`.
/// `base` is [`BACKOFF_BASE`] but in tests; `unit` is a random number in `[0, 1)`.
pub fn backoff(base: Duration, attempt: u32, unit: f64) -> Duration {
    let ceiling = base
        .saturating_mul(2u32.saturating_pow(attempt.min(16)))
        .min(BACKOFF_CAP);
    ceiling.mul_f64(unit.clamp(0.0, 1.0))
}

/// Reads `Retry-After` as seconds or an HTTP date, capped at [`RETRY_AFTER_CAP`].
pub fn retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    let wait = match value.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => httpdate::parse_http_date(value)
            .ok()?
            .duration_since(now)
            .unwrap_or(Duration::ZERO),
    };
    Some(wait.min(RETRY_AFTER_CAP))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let b = BACKOFF_BASE;
        assert_eq!(backoff(b, 0, 0.999_999).as_millis(), 499);
        assert_eq!(backoff(b, 2, 0.5), Duration::from_secs(1));
        assert_eq!(backoff(b, 30, 1.0), BACKOFF_CAP);
        assert_eq!(backoff(b, 3, 0.0), Duration::ZERO);
    }

    #[test]
    fn retry_after_both_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        assert_eq!(retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(retry_after("3600", now), Some(RETRY_AFTER_CAP));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(12));
        assert_eq!(retry_after(&later, now), Some(Duration::from_secs(12)));
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(12));
        assert_eq!(retry_after(&earlier, now), Some(Duration::ZERO));
        assert_eq!(retry_after("soon", now), None);
    }

    #[tokio::test(start_paused = true)]
    async fn pacer_spaces_requests() {
        let pacer = Pacer::new(Some(4.0));
        let start = Instant::now();
        for _ in 0..5 {
            pacer.wait().await;
        }
        assert_eq!(start.elapsed(), Duration::from_secs(1));
        pacer.hold_off(Duration::from_secs(3));
        pacer.wait().await;
        assert_eq!(start.elapsed(), Duration::from_secs(4));
    }

    #[tokio::test(start_paused = true)]
    async fn absurdly_low_rates_wait_an_hour_instead_of_panicking() {
        for rate in [1e-300, f64::MIN_POSITIVE, 1e-9] {
            let pacer = Pacer::new(Some(rate));
            let start = Instant::now();
            pacer.wait().await;
            pacer.wait().await;
            assert_eq!(start.elapsed(), MAX_GAP, "rate {rate}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn unlimited_pacer_only_honours_hold_off() {
        let pacer = Pacer::new(None);
        let start = Instant::now();
        for _ in 0..100 {
            pacer.wait().await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO);
        pacer.hold_off(Duration::from_secs(1));
        pacer.wait().await;
        pacer.wait().await;
        assert_eq!(start.elapsed(), Duration::from_secs(1));
    }

    fn quota(limit: f64, remaining: f64) -> Option<Quota> {
        Some(Quota {
            limit: Some(limit),
            remaining,
        })
    }

    /// One client alone against a server that counts every arrival in the last window and
    /// says what is left: `requests` requests one after the other, each arriving `latency`
    /// after it starts and answered `latency` after that. Returns how many answers cut the
    /// pace.
    async fn alone(pacer: &Pacer, limit: f64, latency: Duration, requests: usize) -> usize {
        let mut arrivals: VecDeque<Instant> = VecDeque::new();
        let mut cuts = 0;
        for _ in 0..requests {
            let started = pacer.wait().await;
            tokio::time::advance(latency).await;
            let now = Instant::now();
            while arrivals.front().is_some_and(|t| now - *t >= WINDOW) {
                arrivals.pop_front();
            }
            arrivals.push_back(now);
            let remaining = (limit - arrivals.len() as f64).max(0.0);
            tokio::time::advance(latency).await;
            cuts += usize::from(pacer.observe(started, quota(limit, remaining), false));
        }
        cuts
    }

    #[tokio::test(start_paused = true)]
    async fn alone_the_pace_stays_at_the_maximum_whatever_the_latency() {
        // Up to the key's own limit, and unpaced (adopting it): the answers come later than
        // the server counted, which must not look like another client on the key.
        for max in [Some(5.0), Some(7.0), Some(10.0), None] {
            for ms in [0, 10, 45, 60, 75, 120, 300] {
                let pacer = Pacer::new(max);
                let cuts = alone(&pacer, 10.0, Duration::from_millis(ms), 100).await;
                assert_eq!(cuts, 0, "--max-request-rate {max:?}, latency {ms} ms");
                assert_eq!(pacer.rate(), Some(max.unwrap_or(10.0)), "{max:?} {ms} ms");
            }
        }
        // Even when what remains is low, if the use is our own: nothing to share.
        let pacer = Pacer::new(Some(5.0));
        let started = pacer.wait().await;
        pacer.state().sent.extend([Instant::now(); 8]);
        assert!(!pacer.observe(started, quota(10.0, 1.0), false));
        assert_eq!(pacer.rate(), Some(5.0));
    }

    #[tokio::test(start_paused = true)]
    async fn hostile_quota_headers_cannot_stall_polling() {
        let limits = [
            "0.001", "1e-300", "0", "-5", "NaN", "inf", "1e308", "1e20", "huge", "",
        ];
        for limit in limits {
            for remaining in ["0", "1", "5", "1e308"] {
                for (max, refused) in [(Some(5.0), false), (Some(5.0), true), (None, false)] {
                    let mut headers = reqwest::header::HeaderMap::new();
                    headers.insert("x-tms-api-limit", limit.parse().unwrap());
                    headers.insert("x-tms-api-remaining", remaining.parse().unwrap());
                    let quota = Quota::from_headers(&headers);
                    let pacer = Pacer::new(max);
                    let mut last = Instant::now();
                    for _ in 0..50 {
                        let started = pacer.wait().await;
                        let gap = started - last;
                        // At worst the floor's gap, or a spent window's hold.
                        assert!(
                            gap <= Duration::from_secs_f64(1.0 / FLOOR),
                            "limit {limit:?}, remaining {remaining}, {max:?}: waited {gap:?}"
                        );
                        last = started;
                        pacer.observe(started, quota, refused);
                    }
                    let rate = pacer.rate().unwrap_or(f64::INFINITY);
                    assert!((FLOOR..=1e6).contains(&rate) || max.is_none(), "{rate}");
                    assert!(rate >= FLOOR, "limit {limit:?}: rate {rate}");
                }
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_wait_gives_its_slot_back() {
        let pacer = Pacer::new(Some(1.0));
        let start = Instant::now();
        pacer.wait().await;
        // The next slot is a second out; the wait is cancelled half way, as a poll past
        // --poll-timeout is.
        let cancelled = tokio::time::timeout(Duration::from_millis(500), pacer.wait()).await;
        assert!(cancelled.is_err());
        // The next request takes that slot, not one after it; the one that never went is
        // not counted as ours.
        let started = pacer.wait().await;
        assert_eq!(started - start, Duration::from_secs(1));
        assert_eq!(start.elapsed(), Duration::from_secs(1));
        assert_eq!(pacer.state().sent.len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_pace_cut_in_one_poll_has_recovered_by_the_next() {
        let pacer = Pacer::new(Some(5.0));
        let started = pacer.wait().await;
        // Others draw on the key: cut.
        assert!(pacer.observe(started, quota(10.0, 2.0), false));
        assert_eq!(pacer.rate(), Some(5.0 * CUT));
        // A minute later (the next poll), the first answer with plenty left restores it.
        tokio::time::advance(Duration::from_secs(60)).await;
        let started = pacer.wait().await;
        pacer.observe(started, quota(10.0, 9.0), false);
        assert_eq!(pacer.rate(), Some(5.0));
    }

    #[tokio::test(start_paused = true)]
    async fn others_drawing_on_the_key_cut_the_pace_once_a_window_and_it_recovers() {
        let pacer = Pacer::new(Some(5.0));
        let start = Instant::now();
        pacer.wait().await;
        // One request of ours, 2 left of 10: others used 7.
        assert!(pacer.observe(Instant::now(), quota(10.0, 2.0), false));
        assert_eq!(pacer.rate(), Some(5.0 * CUT));
        // Almost nothing left: the next request waits for the window to free up.
        pacer.wait().await;
        assert_eq!(start.elapsed(), HOLD);
        // Within the same window, no second cut.
        assert!(!pacer.observe(Instant::now(), quota(10.0, 1.0), false));
        assert_eq!(pacer.rate(), Some(5.0 * CUT));
        // Plenty left: the pace grows by INCREASE a second, up to the maximum.
        let mut rates = Vec::new();
        for _ in 0..30 {
            tokio::time::advance(Duration::from_secs(1)).await;
            pacer.observe(Instant::now(), quota(10.0, 8.0), false);
            rates.push(pacer.rate().unwrap());
        }
        assert!(
            (rates[0] - (5.0 * CUT + INCREASE)).abs() < 1e-9,
            "{rates:?}"
        );
        assert!(rates.windows(2).all(|w| w[1] >= w[0]), "{rates:?}");
        assert_eq!(rates.last(), Some(&5.0));
    }

    #[tokio::test(start_paused = true)]
    async fn unpaced_with_no_limit_known_refusals_change_nothing() {
        let pacer = Pacer::new(None);
        pacer.wait().await;
        assert!(!pacer.observe(Instant::now(), None, true));
        assert!(!pacer.observe(
            Instant::now(),
            Some(Quota {
                limit: None,
                remaining: 3.0
            }),
            true
        ));
        assert_eq!(pacer.rate(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_refused_request_halves_the_pace() {
        let pacer = Pacer::new(Some(4.0));
        let start = Instant::now();
        pacer.wait().await;
        assert!(pacer.observe(Instant::now(), quota(10.0, 0.0), true));
        assert_eq!(pacer.rate(), Some(2.0));
        // Nothing left: the next request waits for the window.
        pacer.wait().await;
        assert_eq!(start.elapsed(), WINDOW);
        // Refused without any quota header: halved all the same, once a window.
        tokio::time::advance(WINDOW).await;
        assert!(pacer.observe(Instant::now(), None, true));
        assert!(!pacer.observe(Instant::now(), None, true));
        assert_eq!(pacer.rate(), Some(1.0));
        // Cuts stop at the floor.
        for _ in 0..20 {
            tokio::time::advance(WINDOW).await;
            pacer.observe(Instant::now(), None, true);
        }
        assert_eq!(pacer.rate(), Some(FLOOR));
    }

    #[tokio::test(start_paused = true)]
    async fn unpaced_the_keys_limit_is_the_ceiling_once_known() {
        let pacer = Pacer::new(None);
        assert_eq!(pacer.rate(), None);
        pacer.wait().await;
        pacer.observe(Instant::now(), None, false);
        assert_eq!(pacer.rate(), None);
        pacer.observe(
            Instant::now(),
            Some(Quota {
                limit: None,
                remaining: 9.0,
            }),
            false,
        );
        assert_eq!(pacer.rate(), None);
        pacer.observe(Instant::now(), quota(10.0, 9.0), false);
        assert_eq!(pacer.rate(), Some(10.0));
        // A --max-request-rate above the key's limit is held to the limit too.
        let pacer = Pacer::new(Some(50.0));
        pacer.observe(Instant::now(), quota(10.0, 9.0), false);
        assert_eq!(pacer.rate(), Some(10.0));
    }

    #[tokio::test(start_paused = true)]
    async fn a_spent_quota_holds_a_window_even_alone() {
        let pacer = Pacer::new(Some(100.0));
        let start = Instant::now();
        pacer.wait().await;
        pacer.observe(
            Instant::now(),
            Some(Quota {
                limit: None,
                remaining: 0.0,
            }),
            false,
        );
        pacer.wait().await;
        assert_eq!(start.elapsed(), WINDOW);
    }

    #[tokio::test]
    async fn a_slot_that_is_due_does_not_wait_for_the_timer() {
        use std::future::Future;
        use std::task::{Context, Poll, Waker};
        let mut cx = Context::from_waker(Waker::noop());
        for pacer in [Pacer::new(None), Pacer::new(Some(1.0))] {
            let wait = std::pin::pin!(pacer.wait());
            assert!(matches!(wait.poll(&mut cx), Poll::Ready(_)));
        }
    }
}
