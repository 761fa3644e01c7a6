//! Value parsers for the command line: each error says what is wrong and what would do;
//! clap adds the flag and the value, and [`usage_error`] the variable.

use std::time::Duration;

use clap::CommandFactory;
use url::Url;

use super::{Cli, DEFAULT_BASE_URL};

/// The API root. The error never shows the value (see `Cli::base_url`).
pub(super) fn base_url(raw: &str) -> Result<Url, String> {
    let url = Url::parse(raw.trim())
        .map_err(|e| format!("not a URL ({e}); expected e.g. {DEFAULT_BASE_URL}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err("must be an http:// or https:// URL with a host".to_owned());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must have no query or fragment".to_owned());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(
            "must not carry credentials; the key comes from TESTSIGMA_API_KEY or --api-key-file"
                .to_owned(),
        );
    }
    Ok(url)
}

pub(super) fn telemetry_path(raw: &str) -> Result<String, String> {
    if !raw.starts_with('/') || raw.len() < 2 {
        return Err("must start with '/' and not be '/' alone".to_owned());
    }
    if matches!(raw, "/healthz" | "/readyz") {
        return Err("is taken by the health endpoints".to_owned());
    }
    // The router would read braces as a path parameter and panics on ':' or '*' segments.
    if raw.contains(['{', '}']) || raw.split('/').any(|seg| seg.starts_with([':', '*'])) {
        return Err(
            "must be a plain path: no braces, no segment starting with ':' or '*'".to_owned(),
        );
    }
    Ok(raw.to_owned())
}

/// Longest poll interval or request timeout: longer ones are surely typos, and timers must
/// not overflow.
const MAX_DURATION: Duration = Duration::from_secs(24 * 60 * 60);

pub(super) fn duration(raw: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(raw.trim())
        .map_err(|e| format!("not a duration ({e}); use e.g. 30s or 5m"))?;
    if d.is_zero() {
        return Err("must be greater than 0".to_owned());
    }
    if d > MAX_DURATION {
        return Err("is more than 24h".to_owned());
    }
    Ok(d)
}

/// A whole number from `MIN` to `MAX`, spaces around it allowed (as a variable may have).
pub(super) fn whole<T: TryFrom<u64>, const MIN: u64, const MAX: u64>(
    raw: &str,
) -> Result<T, String> {
    raw.trim()
        .parse::<u64>()
        .ok()
        .filter(|n| (MIN..=MAX).contains(n))
        .and_then(|n| T::try_from(n).ok())
        .ok_or_else(|| format!("must be a whole number from {MIN} to {MAX}"))
}

pub(super) fn request_rate(raw: &str) -> Result<f64, String> {
    match raw.trim().parse::<f64>() {
        Ok(r) if r.is_finite() && r >= 0.0 => Ok(r),
        _ => Err("must be a number of requests per second, 0 for no limit".to_owned()),
    }
}

/// A command-line error from clap as one line (exit code 2 promises one), naming the
/// environment variable next to the flag when it has one, since the bad value may come
/// from it.
pub fn usage_error(e: &clap::Error) -> String {
    use clap::error::{ContextKind, ContextValue};
    let text = e.to_string();
    let mut parts: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| {
            !l.is_empty() && !l.starts_with("Usage:") && !l.starts_with("For more information")
        })
        .map(|l| {
            let l = l.strip_prefix("error: ").unwrap_or(l);
            l.strip_prefix('[')
                .and_then(|l| l.strip_suffix(']'))
                .unwrap_or(l)
                .to_owned()
        })
        .collect();
    if let (Some(ContextValue::String(arg)), Some(first)) =
        (e.get(ContextKind::InvalidArg), parts.first_mut())
    {
        let long = arg.split_whitespace().next().unwrap_or(arg);
        let env = Cli::command()
            .get_arguments()
            .find(|a| a.get_long().is_some_and(|l| long == format!("--{l}")))
            .and_then(|a| a.get_env().map(|v| v.to_string_lossy().into_owned()));
        if let Some(env) = env {
            let quoted = format!("'{arg}'");
            *first = match first.find(&quoted) {
                Some(at) => {
                    let end = at + quoted.len();
                    format!("{} (env {env}){}", &first[..end], &first[end..])
                }
                None => format!("{first} (env {env})"),
            };
        }
    }
    parts.push("see --help".to_owned());
    parts.join("; ")
}
