//! A flood of wrong passwords, as an attacker with no credentials can send: many keep-alive
//! connections (HTTP/1.1, or HTTP/2 over TLS), each sending a random guess after another,
//! on loopback.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinSet;

/// Attackers running until [`Flood::stop`]; each has a keep-alive connection of its own.
pub struct Flood {
    attackers: JoinSet<()>,
    /// Status codes seen (0: the request failed), and how often.
    statuses: Arc<Mutex<BTreeMap<u16, u64>>>,
}

/// Starts `connections` attackers that GET `url` as `user` with random passwords, each
/// waiting `pause` between two guesses.
pub fn password_flood(url: &str, user: &str, connections: usize, pause: Duration) -> Flood {
    raise_fd_limit(4 * connections as u64 + 1024);
    let statuses = Arc::new(Mutex::new(BTreeMap::new()));
    let mut attackers = JoinSet::new();
    for _ in 0..connections {
        let (url, user, statuses) = (url.to_owned(), user.to_owned(), statuses.clone());
        attackers.spawn(async move {
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .timeout(Duration::from_secs(60))
                .build()
                .expect("HTTP client");
            loop {
                let guess = format!("{:032x}", rand::random::<u128>());
                let status = match client.get(&url).basic_auth(&user, Some(guess)).send().await {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        let _ = response.bytes().await;
                        status
                    }
                    Err(_) => 0,
                };
                *statuses
                    .lock()
                    .expect("statuses")
                    .entry(status)
                    .or_default() += 1;
                tokio::time::sleep(pause).await;
            }
        });
    }
    Flood {
        attackers,
        statuses,
    }
}

/// [`password_flood`] over HTTP/2 with TLS: `connections` attackers on `addr`, each sending
/// guesses on one h2 connection for as long as the server keeps it, then connecting again.
pub fn h2_password_flood(
    addr: std::net::SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    user: &str,
    connections: usize,
    pause: Duration,
) -> Flood {
    use base64::Engine;
    raise_fd_limit(4 * connections as u64 + 1024);
    let statuses = Arc::new(Mutex::new(BTreeMap::new()));
    let mut attackers = JoinSet::new();
    for _ in 0..connections {
        let (tls, user, statuses) = (tls.clone(), user.to_owned(), statuses.clone());
        attackers.spawn(async move {
            let count = |status: u16| {
                *statuses
                    .lock()
                    .expect("statuses")
                    .entry(status)
                    .or_default() += 1;
            };
            loop {
                let Ok(mut h2) = super::h2_connect(addr, tls.clone(), &super::h2_client()).await
                else {
                    count(0);
                    tokio::time::sleep(pause).await;
                    continue;
                };
                loop {
                    let guess = format!("{user}:{:032x}", rand::random::<u128>());
                    let credentials = base64::engine::general_purpose::STANDARD.encode(guess);
                    let authorization = format!("Basic {credentials}");
                    let answer = h2.get("/metrics", Some(&authorization)).await;
                    tokio::time::sleep(pause).await;
                    match answer {
                        Ok(response) => count(response.status().as_u16()),
                        // Closed by the server: connect again.
                        Err(_) => break,
                    }
                }
            }
        });
    }
    Flood {
        attackers,
        statuses,
    }
}

impl Flood {
    /// Stops every attacker; returns the status codes they saw (0: the request failed).
    pub async fn stop(mut self) -> BTreeMap<u16, u64> {
        self.attackers.shutdown().await;
        self.statuses.lock().expect("statuses").clone()
    }
}

/// Raises this process's soft limit on open files to `wanted` (at most the hard limit), so
/// that the flood's sockets fit; children started afterwards inherit it.
fn raise_fd_limit(wanted: u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit read and write the struct passed by reference.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < wanted {
            limit.rlim_cur = wanted.min(limit.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}
