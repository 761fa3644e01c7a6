//! Basic auth against bcrypt hashes, with a cache so a scrape does not cost a hash each time.
//!
//! bcrypt is slow on purpose (tens of milliseconds at cost 10); Prometheus sends the same
//! credentials every scrape. The cache remembers the outcome under a salted SHA-256 of user,
//! hash and password: never the password itself, and a changed hash in the web configuration
//! simply stops matching. Lookups compare every entry in constant time, and hashing runs one
//! at a time off the async threads, so a flood of wrong guesses costs one core at most.
//!
//! Credentials in the cache are answered at once, never behind a bcrypt check. At most
//! [`MAX_WAITING`] requests wait for their turn to hash; one more is answered
//! [`Verdict::Busy`] at once instead of queueing, so a flood of guesses holds no connection
//! for long.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::http::HeaderValue;
use base64::Engine;
use ring::digest;
use subtle::ConstantTimeEq;

/// Verified credentials remembered; a flood of wrong ones cannot push these out.
const GOOD_ENTRIES: usize = 16;
/// Rejected credentials remembered, so a scraper with a stale password is cheap too.
const BAD_ENTRIES: usize = 64;
/// Requests that may wait for the bcrypt check in progress; more are told to come back.
pub const MAX_WAITING: usize = 4;

type Key = [u8; 32];

/// Checks `Authorization: Basic` headers against a user table.
pub struct Authenticator {
    salt: [u8; 32],
    cache: Mutex<Cache>,
    /// Held while a bcrypt check runs, to its end even if the request is dropped meanwhile:
    /// one at a time.
    hashing: Arc<tokio::sync::Semaphore>,
    /// Requests waiting for `hashing`.
    waiting: AtomicUsize,
}

/// The outcome of a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Granted,
    Denied,
    /// Not checked: [`MAX_WAITING`] others already wait for bcrypt.
    Busy,
}

impl From<bool> for Verdict {
    fn from(ok: bool) -> Self {
        if ok {
            Verdict::Granted
        } else {
            Verdict::Denied
        }
    }
}

/// One place in the queue for bcrypt, given back when dropped (a request may be dropped
/// while it waits).
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[derive(Default)]
struct Cache {
    good: VecDeque<Key>,
    bad: VecDeque<Key>,
}

impl Cache {
    /// Whether `key` was accepted or refused before; every entry is compared, in constant
    /// time, so the time taken says nothing of which entry matched.
    fn lookup(&self, key: &Key) -> Option<bool> {
        let mut good = subtle::Choice::from(0);
        for entry in &self.good {
            good |= entry.ct_eq(key);
        }
        let mut bad = subtle::Choice::from(0);
        for entry in &self.bad {
            bad |= entry.ct_eq(key);
        }
        match (bool::from(good), bool::from(bad)) {
            (true, _) => Some(true),
            (false, true) => Some(false),
            (false, false) => None,
        }
    }

    fn insert(&mut self, key: Key, ok: bool) {
        let (list, cap) = if ok {
            (&mut self.good, GOOD_ENTRIES)
        } else {
            (&mut self.bad, BAD_ENTRIES)
        };
        if list.len() >= cap {
            list.pop_front();
        }
        list.push_back(key);
    }
}

impl Authenticator {
    pub fn new() -> Self {
        Self {
            salt: rand::random(),
            cache: Mutex::new(Cache::default()),
            hashing: Arc::new(tokio::sync::Semaphore::new(1)),
            waiting: AtomicUsize::new(0),
        }
    }

    /// Whether `authorization` carries a user of `users` with the right password; `Busy`
    /// without an answer when too many checks wait already.
    pub async fn check(
        &self,
        users: &BTreeMap<String, String>,
        authorization: Option<&HeaderValue>,
    ) -> Verdict {
        let Some((user, password)) = authorization.and_then(parse_basic) else {
            return Verdict::Denied;
        };
        // An unknown user is checked against a real hash all the same, so that the answer
        // takes as long and user names cannot be probed by timing.
        let (hash, known) = match users.get(&user) {
            Some(hash) => (hash.clone(), true),
            None => match users.values().next() {
                Some(hash) => (hash.clone(), false),
                None => return Verdict::Denied,
            },
        };
        let key = self.key(&user, &hash, &password);
        if let Some(ok) = self.lookup(&key) {
            return (ok && known).into();
        }
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= MAX_WAITING {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return Verdict::Busy;
        }
        let waiting = Waiting(&self.waiting);
        let Ok(turn) = self.hashing.clone().acquire_owned().await else {
            return Verdict::Denied;
        };
        drop(waiting);
        // Another request may have checked the same credentials while this one waited.
        if let Some(ok) = self.lookup(&key) {
            return (ok && known).into();
        }
        let ok = tokio::task::spawn_blocking(move || {
            let ok = bcrypt::verify(password.as_bytes(), &hash).unwrap_or(false);
            drop(turn);
            ok
        })
        .await
        .unwrap_or(false)
            && known;
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(key, ok);
        }
        ok.into()
    }

    fn lookup(&self, key: &Key) -> Option<bool> {
        self.cache.lock().ok()?.lookup(key)
    }

    fn key(&self, user: &str, hash: &str, password: &str) -> Key {
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(&self.salt);
        // Lengths first, so no two different triples hash the same bytes.
        for part in [user, hash, password] {
            ctx.update(&(part.len() as u64).to_be_bytes());
            ctx.update(part.as_bytes());
        }
        let mut key = [0; 32];
        key.copy_from_slice(ctx.finish().as_ref());
        key
    }
}

/// User and password of an `Authorization: Basic` header.
fn parse_basic(value: &HeaderValue) -> Option<(String, String)> {
    let value = value.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user: &str, password: &str) -> HeaderValue {
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        HeaderValue::from_str(&format!("Basic {encoded}")).unwrap()
    }

    async fn granted(
        auth: &Authenticator,
        users: &BTreeMap<String, String>,
        authorization: Option<&HeaderValue>,
    ) -> bool {
        auth.check(users, authorization).await == Verdict::Granted
    }

    fn users() -> BTreeMap<String, String> {
        BTreeMap::from([
            ("alice".to_owned(), bcrypt::hash("wonderland", 4).unwrap()),
            ("bob".to_owned(), bcrypt::hash("builder", 4).unwrap()),
        ])
    }

    #[test]
    fn parses_basic_headers() {
        assert_eq!(
            parse_basic(&basic("u", "p:with:colons")),
            Some(("u".into(), "p:with:colons".into()))
        );
        assert_eq!(
            parse_basic(&HeaderValue::from_static("basic dTpw")),
            Some(("u".into(), "p".into()))
        );
        for bad in ["Bearer dTpw", "Basic", "Basic !!!", "Basic dXNlcg=="] {
            assert_eq!(parse_basic(&HeaderValue::from_static(bad)), None, "{bad}");
        }
    }

    #[tokio::test]
    async fn right_wrong_and_missing_credentials() {
        let auth = Authenticator::new();
        let users = users();
        assert!(granted(&auth, &users, Some(&basic("alice", "wonderland"))).await);
        assert!(granted(&auth, &users, Some(&basic("bob", "builder"))).await);
        assert!(!granted(&auth, &users, Some(&basic("alice", "builder"))).await);
        assert!(!granted(&auth, &users, Some(&basic("carol", "wonderland"))).await);
        assert!(!granted(&auth, &users, Some(&basic("alice", ""))).await);
        assert!(!granted(&auth, &users, None).await);
        assert!(!granted(&auth, &BTreeMap::new(), Some(&basic("alice", "x"))).await);
    }

    #[tokio::test]
    async fn outcomes_are_cached_and_a_new_hash_is_checked_afresh() {
        let auth = Authenticator::new();
        let mut users = users();
        assert!(granted(&auth, &users, Some(&basic("alice", "wonderland"))).await);
        assert!(!granted(&auth, &users, Some(&basic("alice", "nope"))).await);
        let key = auth.key("alice", &users["alice"], "wonderland");
        assert_eq!(auth.lookup(&key), Some(true));
        let bad = auth.key("alice", &users["alice"], "nope");
        assert_eq!(auth.lookup(&bad), Some(false));
        // A rotated password: the old one no longer gets in, the cache notwithstanding.
        users.insert("alice".into(), bcrypt::hash("looking-glass", 4).unwrap());
        assert!(!granted(&auth, &users, Some(&basic("alice", "wonderland"))).await);
        assert!(granted(&auth, &users, Some(&basic("alice", "looking-glass"))).await);
    }

    #[test]
    fn wrong_guesses_cannot_evict_good_entries() {
        let mut cache = Cache::default();
        cache.insert([1; 32], true);
        for i in 10..=200u8 {
            cache.insert([i; 32], false);
        }
        assert_eq!(cache.lookup(&[1; 32]), Some(true));
        assert_eq!(cache.bad.len(), BAD_ENTRIES);
        assert_eq!(cache.lookup(&[200; 32]), Some(false));
        assert_eq!(cache.lookup(&[137; 32]), Some(false));
        assert_eq!(cache.lookup(&[136; 32]), None);
    }

    #[tokio::test]
    async fn cached_credentials_pass_while_bcrypt_is_busy_and_the_queue_is_bounded() {
        let auth = Arc::new(Authenticator::new());
        let users = Arc::new(users());
        assert!(granted(&auth, &users, Some(&basic("alice", "wonderland"))).await);
        // A check in progress holds the turn; MAX_WAITING others wait behind it.
        let turn = auth.hashing.clone().try_acquire_owned().unwrap();
        let mut waiters = tokio::task::JoinSet::new();
        for i in 0..MAX_WAITING {
            let (auth, users) = (auth.clone(), users.clone());
            waiters.spawn(async move {
                auth.check(&users, Some(&basic("alice", &format!("guess{i}"))))
                    .await
            });
        }
        wait_until(|| auth.waiting.load(Ordering::Acquire) == MAX_WAITING).await;
        // One more is told to come back, at once; known good credentials still get in.
        let more = auth.check(&users, Some(&basic("bob", "guess"))).await;
        assert_eq!(more, Verdict::Busy);
        assert!(granted(&auth, &users, Some(&basic("alice", "wonderland"))).await);
        drop(turn);
        while let Some(verdict) = waiters.join_next().await {
            assert_eq!(verdict.unwrap(), Verdict::Denied);
        }
        assert_eq!(auth.waiting.load(Ordering::Acquire), 0);
        assert!(granted(&auth, &users, Some(&basic("bob", "builder"))).await);
    }

    /// Yields until `done` holds, for at most 10 s.
    async fn wait_until(done: impl Fn() -> bool) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !done() {
            assert!(std::time::Instant::now() < deadline, "not within 10 s");
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }
}
