//! Reloading the web configuration off the serving path. A background task looks at the
//! file and the files it names every [`CHECK_INTERVAL`] (a few `stat` calls, on a blocking
//! thread, given [`CHECK_TIMEOUT`]); when one changed it loads them again and swaps the new
//! version in, unless it fails to load or would weaken protection. Requests only ever read
//! the version in force, so a file that hangs (a stalled network mount) delays nothing but
//! the next reload.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{error, info};

use super::config::{ClientAuth, TlsVersion, WebFile};
use super::{Active, Error, WebConfig};

/// How often the files are looked at.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// How long one look (and a reload) may take before it is reported as hung.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// Enough of a file's metadata to see that it was rewritten or replaced (a Kubernetes
/// Secret volume swaps a symlink, which gives a new inode); `None` if it cannot be read.
pub type Stamp = Option<(Option<SystemTime>, u64, u64)>;

pub fn stamps(path: &Path, files: &[std::path::PathBuf]) -> Vec<Stamp> {
    std::iter::once(path)
        .chain(files.iter().map(std::path::PathBuf::as_path))
        .map(stamp)
        .collect()
}

fn stamp(path: &Path) -> Stamp {
    let meta = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&meta);
    #[cfg(not(unix))]
    let inode = 0;
    Some((meta.modified().ok(), meta.len(), inode))
}

/// What a configuration protects the endpoint with, in the terms a reload may not lower.
/// The choice of cipher suites and curves is not among them (all that rustls has are safe),
/// nor are `rate_limit` and `http2`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Protection {
    /// `None`: plain HTTP; else the client-certificate check and the lowest TLS version.
    tls: Option<(ClientCheck, TlsVersion)>,
    /// Client certificates checked against the system's CA store rather than a client CA.
    system_roots: bool,
    /// `client_allowed_sans`, if set.
    sans: Option<std::collections::BTreeSet<String>>,
    /// Whether basic auth is on.
    users: bool,
}

/// `client_auth_type`, weakest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum ClientCheck {
    NoClientCert,
    VerifyClientCertIfGiven,
    RequireAndVerifyClientCert,
}

impl Protection {
    pub fn of(file: &WebFile) -> Self {
        let tls = file.tls.as_ref().map(|tls| {
            let check = match tls.client_auth {
                ClientAuth::None => ClientCheck::NoClientCert,
                ClientAuth::VerifyIfGiven(_) => ClientCheck::VerifyClientCertIfGiven,
                ClientAuth::RequireAndVerify(_) => ClientCheck::RequireAndVerifyClientCert,
            };
            (check, tls.min_version)
        });
        let tls_settings = file.tls.as_ref();
        Self {
            tls,
            system_roots: tls_settings.is_some_and(|t| {
                matches!(
                    t.client_auth,
                    ClientAuth::VerifyIfGiven(None) | ClientAuth::RequireAndVerify(None)
                )
            }),
            sans: tls_settings
                .and_then(|t| t.client_allowed_sans.as_ref())
                .map(|sans| sans.iter().cloned().collect()),
            users: !file.users.is_empty(),
        }
    }

    /// How `new` would be weaker than `self`, in words; empty if it would not.
    pub fn weakened_by(&self, new: &Self) -> Vec<String> {
        let mut changes = Vec::new();
        match (self.tls, new.tls) {
            (Some(_), None) => changes.push("TLS turned off".to_owned()),
            (Some((old_check, old_min)), Some((new_check, new_min))) => {
                if new_check < old_check {
                    changes.push(format!(
                        "client_auth_type lowered from {old_check:?} to {new_check:?}"
                    ));
                }
                if new_min < old_min {
                    changes.push(format!(
                        "min_version lowered from {} to {}",
                        version(old_min),
                        version(new_min)
                    ));
                }
                // Only a client CA that was in force can be dropped: from NoClientCert,
                // any check is a strengthening.
                let had_ca = old_check > ClientCheck::NoClientCert && !self.system_roots;
                if had_ca && new.system_roots {
                    changes.push(
                        "client CA dropped: client certificates would be checked against the system's CA store"
                            .to_owned(),
                    );
                }
                match (&self.sans, &new.sans) {
                    (Some(_), None) => changes.push("client_allowed_sans dropped".to_owned()),
                    (Some(old), Some(new)) if !new.is_subset(old) => changes.push(format!(
                        "client_allowed_sans widened by {}",
                        new.difference(old).cloned().collect::<Vec<_>>().join(", ")
                    )),
                    _ => {}
                }
            }
            (None, _) => {}
        }
        if self.users && !new.users {
            changes.push("basic_auth_users dropped or emptied".to_owned());
        }
        changes
    }
}

fn version(v: TlsVersion) -> &'static str {
    match v {
        TlsVersion::Tls12 => "TLS12",
        TlsVersion::Tls13 => "TLS13",
    }
}

/// What one look at the files found.
enum Check {
    Unchanged,
    Reloaded(Active),
    /// A new version that is refused, and the stamps it was seen with.
    Refused(Error, Vec<Stamp>),
}

/// Looks at the files; loads them again if they changed since `active` was loaded (and since
/// the version `refused` was refused). Blocking.
fn check(path: &Path, active: &Active, refused: Option<&[Stamp]>) -> Check {
    let now = stamps(path, &active.files);
    if now == active.stamps || refused == Some(now.as_slice()) {
        return Check::Unchanged;
    }
    match super::build(path, Some(active)) {
        Ok(mut new) => {
            // Stamps taken before reading, so a change made meanwhile is seen next time;
            // only a changed list of files needs a fresh look.
            new.stamps = if new.files == active.files {
                now
            } else {
                stamps(path, &new.files)
            };
            Check::Reloaded(new)
        }
        Err(e) => Check::Refused(e, now),
    }
}

/// Checks `web`'s files every [`CHECK_INTERVAL`] until `stopped` turns true.
pub async fn watch(web: Arc<WebConfig>, mut stopped: watch::Receiver<bool>) {
    let mut ticks = tokio::time::interval(CHECK_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut refused: Option<Vec<Stamp>> = None;
    // The last refusal logged, so a version that keeps failing is logged once.
    let mut last_refusal: Option<String> = None;
    // A look that has not finished in time: no other starts until it has.
    let mut hung: Option<JoinHandle<Check>> = None;
    loop {
        tokio::select! {
            _ = stopped.wait_for(|stop| *stop) => return,
            _ = ticks.tick() => {}
        }
        if let Some(job) = &hung {
            if !job.is_finished() {
                continue;
            }
            hung = None;
            info!(file = %web.path.display(), "the hung read of the web configuration has finished");
        }
        let (path, active, seen) = (web.path.clone(), web.current(), refused.clone());
        let mut job = tokio::task::spawn_blocking(move || check(&path, &active, seen.as_deref()));
        let outcome = tokio::select! {
            _ = stopped.wait_for(|stop| *stop) => return,
            outcome = tokio::time::timeout(CHECK_TIMEOUT, &mut job) => outcome,
        };
        match outcome {
            Err(_) => {
                error!(
                    file = %web.path.display(),
                    timeout = %humantime::format_duration(CHECK_TIMEOUT),
                    "reading the web configuration or a file it names hangs (a stalled network mount?); the last good one stays in force"
                );
                hung = Some(job);
            }
            Ok(Err(e)) => error!(error = %e, "checking the web configuration failed"),
            Ok(Ok(Check::Unchanged)) => {}
            Ok(Ok(Check::Reloaded(new))) => {
                web.active.store(Arc::new(new));
                (refused, last_refusal) = (None, None);
                info!(file = %web.path.display(), "web configuration reloaded");
            }
            Ok(Ok(Check::Refused(e, seen))) => {
                let text = e.to_string();
                if last_refusal.as_deref() != Some(text.as_str()) {
                    error!(error = %text, "cannot reload the web configuration; the last good one stays in force");
                }
                // A version that does not load may name a file yet to come (a Secret updated
                // after its ConfigMap), which the stamps of the version in force do not
                // cover: look again at the next check. One that loads but is refused waits
                // for its files to change.
                refused = match e {
                    Error::Read { .. } | Error::Invalid { .. } => None,
                    Error::TlsTurnedOn { .. } | Error::Empty { .. } | Error::Weakened { .. } => {
                        Some(seen)
                    }
                };
                last_refusal = Some(text);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::web::config::parse;

    fn protection(yaml: &str) -> Protection {
        Protection::of(&parse(yaml, Path::new("/etc")).expect("valid web config"))
    }

    #[test]
    fn weakening_changes_are_named_and_others_pass() {
        let hash = bcrypt::hash("x", 4).unwrap();
        let tls = "tls_server_config: {cert_file: a, key_file: b";
        let mtls =
            format!("{tls}, client_auth_type: RequireAndVerifyClientCert, client_ca_file: c");
        let full = format!("{mtls}, min_version: TLS13}}\nbasic_auth_users: {{p: '{hash}'}}\n");
        let full = protection(&full);
        for (yaml, expected) in [
            (String::new(), vec!["TLS turned off", "basic_auth_users dropped or emptied"]),
            (
                format!("{tls}}}\n"),
                vec![
                    "client_auth_type lowered from RequireAndVerifyClientCert to NoClientCert",
                    "min_version lowered from TLS13 to TLS12",
                    "basic_auth_users dropped or emptied",
                ],
            ),
            (
                format!("{tls}, client_auth_type: VerifyClientCertIfGiven, client_ca_file: c, min_version: TLS13}}\nbasic_auth_users: {{q: '{hash}'}}\n"),
                vec!["client_auth_type lowered from RequireAndVerifyClientCert to VerifyClientCertIfGiven"],
            ),
            (format!("{mtls}, min_version: TLS13}}\nbasic_auth_users:\n"), vec!["basic_auth_users dropped or emptied"]),
            // Other users, another CA, max_version: no weaker.
            (format!("{mtls}, min_version: TLS13, max_version: TLS13}}\nbasic_auth_users: {{q: '{hash}'}}\n"), vec![]),
        ] {
            assert_eq!(full.weakened_by(&protection(&yaml)), expected, "{yaml}");
        }
        // client_allowed_sans dropped or widened, the client CA swapped for the system's
        // store: weaker. Narrowed SANs, other suites and curves, a rate limit: not.
        let sans = format!("{mtls}, client_allowed_sans: [a, b]}}\n");
        let sans = protection(&sans);
        for (yaml, expected) in [
            (format!("{mtls}}}\n"), vec!["client_allowed_sans dropped"]),
            (format!("{mtls}, client_allowed_sans: [a, c, d]}}\n"), vec!["client_allowed_sans widened by c, d"]),
            (
                format!("{tls}, client_auth_type: RequireAndVerifyClientCert, client_allowed_sans: [a]}}\n"),
                vec!["client CA dropped: client certificates would be checked against the system's CA store"],
            ),
            (format!("{mtls}, client_allowed_sans: [b], cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256], curve_preferences: [X25519]}}\nrate_limit: {{interval: 1s, burst: 1}}\n"), vec![]),
        ] {
            assert_eq!(sans.weakened_by(&protection(&yaml)), expected, "{yaml}");
        }
        // Stronger is always fine; from nothing, anything is.
        assert!(protection("").weakened_by(&full).is_empty());
        assert!(protection(&format!("{tls}}}\n"))
            .weakened_by(&protection(&format!("{mtls}}}\n")))
            .is_empty());
        // From no client check to one against the system's CA store: stronger too.
        let system = format!("{tls}, client_auth_type: RequireAndVerifyClientCert}}\n");
        assert_eq!(
            protection(&format!("{tls}}}\n")).weakened_by(&protection(&system)),
            Vec::<String>::new()
        );
        assert!(protection(&system)
            .weakened_by(&protection(&system))
            .is_empty());
    }
}
