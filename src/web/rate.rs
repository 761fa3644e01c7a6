//! The toolkit's `rate_limit`: Go's `rate.NewLimiter(rate.Every(interval), burst)` in front of
//! the handler, answering 429 when no token is left. A bucket of `burst` tokens, full at the
//! start, refilled by one every `interval`; a request takes one or is refused. `burst: 0`
//! refuses every request, as Go's limiter does. Pure: the caller gives the time.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// `rate_limit` of a web configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub interval: Duration,
    pub burst: u32,
}

/// A token bucket shared by all connections.
#[derive(Debug)]
pub struct Limiter {
    limit: RateLimit,
    /// Tokens, and when they were counted.
    state: Mutex<(f64, Instant)>,
}

impl Limiter {
    pub fn new(limit: RateLimit, now: Instant) -> Self {
        Self {
            limit,
            state: Mutex::new((f64::from(limit.burst), now)),
        }
    }

    pub fn limit(&self) -> RateLimit {
        self.limit
    }

    /// Takes a token if there is one (Go's `Allow`).
    pub fn allow(&self, now: Instant) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (tokens, then) = *state;
        let refilled =
            now.saturating_duration_since(then).as_secs_f64() / self.limit.interval.as_secs_f64();
        let tokens = (tokens + refilled).min(f64::from(self.limit.burst));
        if tokens >= 1.0 {
            *state = (tokens - 1.0, now);
            true
        } else {
            *state = (tokens, now);
            false
        }
    }
}

/// `rate_limit` from its YAML: `interval` a Go duration (`1s`, `500ms`) or nanoseconds
/// (`0`); no interval means no limiter, as in the toolkit.
pub fn settings(
    interval: Option<serde_norway::Value>,
    burst: Option<i64>,
) -> Result<Option<RateLimit>, String> {
    use serde_norway::Value;
    let not_a_duration = || "rate_limit.interval is not a duration like 1s or 500ms".to_owned();
    let interval = match interval {
        None | Some(Value::Null) => Duration::ZERO,
        Some(Value::Number(n)) => n
            .as_u64()
            .map(Duration::from_nanos)
            .ok_or_else(not_a_duration)?,
        Some(Value::String(s)) => go_duration(&s).ok_or_else(not_a_duration)?,
        Some(_) => return Err(not_a_duration()),
    };
    let burst = burst.unwrap_or(0);
    let burst = u32::try_from(burst)
        .map_err(|_| format!("rate_limit.burst {burst} is not a count of requests"))?;
    Ok((!interval.is_zero()).then_some(RateLimit { interval, burst }))
}

/// A Go duration: `1s`, `1m30s`, `500ms`, `1.5h`, `0`.
fn go_duration(s: &str) -> Option<Duration> {
    if s == "0" {
        return Some(Duration::ZERO);
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let number_end = rest.find(|c: char| !c.is_ascii_digit() && c != '.')?;
        let value: f64 = rest[..number_end].parse().ok()?;
        rest = &rest[number_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += value * seconds;
        rest = &rest[unit_end..];
    }
    Duration::try_from_secs_f64(total).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        for (text, expected) in [
            ("1s", Some(Duration::from_secs(1))),
            ("500ms", Some(Duration::from_millis(500))),
            ("1m30s", Some(Duration::from_secs(90))),
            ("1.5h", Some(Duration::from_secs(5400))),
            ("0", Some(Duration::ZERO)),
            ("1", None),
            ("s", None),
            ("1 s", None),
            ("-1s", None),
        ] {
            assert_eq!(go_duration(text), expected, "{text}");
        }
    }

    #[test]
    fn settings_follow_the_toolkit() {
        use serde_norway::Value;
        assert_eq!(settings(Some(Value::from(0)), Some(0)), Ok(None));
        assert_eq!(settings(None, Some(5)), Ok(None));
        assert_eq!(
            settings(Some(Value::from("1s")), None),
            Ok(Some(RateLimit {
                interval: Duration::from_secs(1),
                burst: 0
            }))
        );
        assert!(settings(Some(Value::from("soon")), None)
            .unwrap_err()
            .contains("interval"));
        assert!(settings(Some(Value::from("1s")), Some(-1))
            .unwrap_err()
            .contains("burst -1"));
    }

    #[test]
    fn a_bucket_of_burst_tokens_refilled_one_per_interval() {
        let start = Instant::now();
        let limit = RateLimit {
            interval: Duration::from_secs(1),
            burst: 2,
        };
        let limiter = Limiter::new(limit, start);
        assert!(limiter.allow(start) && limiter.allow(start));
        assert!(!limiter.allow(start));
        assert!(!limiter.allow(start + Duration::from_millis(900)));
        assert!(limiter.allow(start + Duration::from_millis(1000)));
        // Saved up to the burst, no more.
        let later = start + Duration::from_secs(60);
        assert!(limiter.allow(later) && limiter.allow(later) && !limiter.allow(later));
        // Burst 0: nothing ever passes, as with Go's limiter.
        let none = Limiter::new(RateLimit { burst: 0, ..limit }, start);
        assert!(!none.allow(start + Duration::from_secs(10)));
    }
}
