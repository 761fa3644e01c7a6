//! Reading the exposition: series values, poll and error counters, users by status.

/// The value of the series `name` (with its labels, e.g. `x{a="b"}`), if present.
pub fn value(text: &str, series: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// Finished polls, successful or not.
pub fn polls(text: &str) -> f64 {
    value(text, r#"testsigma_polls_total{result="success"}"#).unwrap_or(0.0)
        + value(text, r#"testsigma_polls_total{result="failure"}"#).unwrap_or(0.0)
}

/// `status -> count` for every `testsigma_users_by_status` series.
pub fn by_status(text: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("testsigma_users_by_status{status=\"")?;
            let (status, rest) = rest.split_once("\"} ")?;
            Some((status.to_owned(), rest.trim().parse().ok()?))
        })
        .collect()
}

/// `testsigma_poll_errors_total{reason="..."}`, 0 if absent.
pub fn errors(text: &str, reason: &str) -> f64 {
    value(
        text,
        &format!("testsigma_poll_errors_total{{reason=\"{reason}\"}}"),
    )
    .unwrap_or(0.0)
}

/// Every `reason` label of `testsigma_poll_errors_total`, as the contract names them (spelled
/// out here rather than taken from the crate, so a renamed reason fails the tests).
pub const REASONS: [&str; 9] = [
    "auth",
    "rate_limited",
    "timeout",
    "connect",
    "tls",
    "http",
    "decode",
    "pagination",
    "too_large",
];

/// The reasons whose error counter is above 0.
pub fn failed_reasons(text: &str) -> Vec<&'static str> {
    REASONS
        .into_iter()
        .filter(|r| errors(text, r) > 0.0)
        .collect()
}
