//! Request pacing and retry timing: pure arithmetic plus one small shared clock.

use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

/// Spaces request starts at most `rate` per second apart, and holds off after the API says
/// its quota is spent. Shared by every request of the client, across polls.
#[derive(Debug)]
pub struct Pacer {
    gap: Option<Duration>,
    next: Mutex<Option<Instant>>,
}

impl Pacer {
    /// `rate` in requests per second; `None` for no limit.
    pub fn new(rate: Option<f64>) -> Self {
        // A rate so small that the gap does not fit a Duration waits an hour, not a panic.
        let gap = |r: f64| Duration::try_from_secs_f64(1.0 / r).map_or(MAX_GAP, |g| g.min(MAX_GAP));
        Self {
            gap: rate.filter(|r| *r > 0.0).map(gap),
            next: Mutex::new(None),
        }
    }

    /// Waits until the next request may start, and books its slot. Returns at once when the
    /// slot is now: a timer, even one already due, would wait for the next tick of tokio's
    /// millisecond clock, about 1 ms a request when there is no limit.
    pub async fn wait(&self) {
        let at = {
            let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            let at = next.map_or(now, |n| n.max(now));
            *next = self.gap.map(|gap| at + gap).or(*next);
            (at > now).then_some(at)
        };
        if let Some(at) = at {
            tokio::time::sleep_until(at).await;
        }
    }

    /// No request starts before `pause` has passed.
    pub fn hold_off(&self, pause: Duration) {
        let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
        let until = Instant::now() + pause;
        *next = Some(next.map_or(until, |n| n.max(until)));
    }
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

    #[tokio::test]
    async fn a_slot_that_is_due_does_not_wait_for_the_timer() {
        use std::future::Future;
        use std::task::{Context, Poll, Waker};
        let mut cx = Context::from_waker(Waker::noop());
        for pacer in [Pacer::new(None), Pacer::new(Some(1.0))] {
            let wait = std::pin::pin!(pacer.wait());
            assert_eq!(wait.poll(&mut cx), Poll::Ready(()));
        }
    }
}
