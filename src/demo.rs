//! `--demo`: a simulated Testsigma API on loopback, so the exporter can be seen working
//! without an account. It speaks like the live API (cursor tokens, upper-case statuses,
//! millisecond timestamps, rate-limit headers, 500 past 10 requests a second) and the
//! exporter polls it through the very same client.
//!
//! The account drifts as time passes, deterministically from the time since start, so that
//! every panel of the dashboard has something to show within a few minutes: users join (as
//! `INVITED`, then `ACTIVE`) and leave, a few change status for a while, `created_at` spreads
//! over two years with a few in the last day, and emails fall into a few domains.

use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::watch;
use url::Url;

/// The key the simulated API accepts.
pub const DEMO_KEY: &str = "demo-key";
/// Users at start.
const BASE_USERS: u64 = 300;
/// The state of the simulated account changes every this often.
const EPOCH: Duration = Duration::from_secs(15);
/// Users `0..CORE_USERS` never leave, so that some accounts stay old however long it runs.
const CORE_USERS: u64 = 100;
/// Joins: the first in the second epoch, then one every 90 s until 40 joined (the first hour),
/// then one an hour.
const JOINS: Schedule = Schedule {
    first: 1,
    fast_every: 6,
    fast_count: 40,
    slow_every: 240,
};
/// Leaves: the first in the third epoch, then one every 3 minutes until 20 left, then one an
/// hour. 20 in an hour stays under the 10% of the account that `TestsigmaManyUsersLeft`
/// alerts on.
const LEAVES: Schedule = Schedule {
    first: 2,
    fast_every: 12,
    fast_count: 20,
    slow_every: 240,
};
/// A new user stays `INVITED` for this many epochs (2 minutes), then turns `ACTIVE`.
const INVITED_EPOCHS: u64 = 8;
/// Requests per second the simulated API allows before it answers 500, like the live one.
const RATE_LIMIT: u32 = 10;

const DAY_MS: u64 = 86_400_000;
/// Email domains: three companies and a free mail provider; `None` is a user without email.
const DOMAINS: [(u64, Option<&str>); 5] = [
    (50, Some("acme.example")),
    (75, Some("globex.example")),
    (87, Some("initech.example")),
    (98, Some("gmail.com")),
    (100, None),
];

#[derive(Clone)]
struct Sim {
    started: Instant,
    /// Wall-clock start in Unix milliseconds: `created_at` values are relative to it.
    start_ms: u64,
    window: Arc<Mutex<(u64, u32)>>,
}

/// Starts the simulated API on `127.0.0.1:0`; returns its base URL (`.../api/v1`).
pub async fn start(shutdown: watch::Receiver<bool>) -> std::io::Result<Url> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    let start_ms = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    let sim = Sim {
        started: Instant::now(),
        start_ms: u64::try_from(start_ms).unwrap_or(u64::MAX),
        window: Arc::new(Mutex::new((0, 0))),
    };
    let app = Router::new()
        .route("/api/v1/users", get(users))
        .with_state(sim);
    tokio::spawn(crate::server::serve(listener, app, None, shutdown));
    Ok(Url::parse(&format!("http://{addr}/api/v1")).expect("valid URL"))
}

#[derive(Deserialize)]
struct Params {
    page_size: Option<usize>,
    cursor: Option<String>,
}

async fn users(State(sim): State<Sim>, headers: HeaderMap, Query(p): Query<Params>) -> Response {
    let (remaining, reset) = sim.take_request();
    let mut response = sim.page(&headers, &p, remaining);
    let h = response.headers_mut();
    h.insert("x-tms-api-limit", HeaderValue::from(RATE_LIMIT));
    h.insert(
        "x-tms-api-remaining",
        HeaderValue::from(remaining.unwrap_or(0)),
    );
    h.insert("x-tms-api-reset", HeaderValue::from(reset));
    response
}

impl Sim {
    /// Counts a request in the current one-second window: the requests left, or `None`
    /// when over the limit; and the Unix second the window resets.
    fn take_request(&self) -> (Option<u32>, u64) {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let mut window = self.window.lock().unwrap_or_else(|e| e.into_inner());
        if window.0 != now {
            *window = (now, 0);
        }
        window.1 += 1;
        (RATE_LIMIT.checked_sub(window.1), now + 1)
    }

    fn page(&self, headers: &HeaderMap, p: &Params, remaining: Option<u32>) -> Response {
        let authorised = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v == format!("Bearer {DEMO_KEY}"));
        if !authorised {
            let body = json!({"message": "Unauthorized - API token is missing or invalid"});
            return (StatusCode::UNAUTHORIZED, Json(body)).into_response();
        }
        if remaining.is_none() {
            let body = json!({"message": "rate limit exceeded"});
            return (StatusCode::INTERNAL_SERVER_ERROR, Json(body)).into_response();
        }
        let page_size = p.page_size.unwrap_or(20).clamp(1, 1000);
        let offset = match p.cursor.as_deref().map(decode_cursor) {
            None => 0,
            Some(Some(offset)) => offset,
            Some(None) => {
                let body = json!({"message": "Invalid cursor",
                    "errors": {"code": 400, "message": "Invalid cursor", "details": "cursor is not valid"}});
                return (StatusCode::BAD_REQUEST, Json(body)).into_response();
            }
        };
        let epoch = self.started.elapsed().as_secs() / EPOCH.as_secs();
        // Offsets into the current membership: a leave between two pages of one walk shifts
        // them, as on the live API, and the exporter then misses a user once.
        let (core, rest) = members(epoch);
        let total = core.end + rest.end.saturating_sub(rest.start);
        let end = (offset + page_size as u64).min(total);
        let data: Vec<Value> = (offset..end)
            .filter_map(|pos| user_at(pos, epoch))
            .map(|i| user(i, epoch, self.start_ms))
            .collect();
        let next = if end < total {
            encode_cursor(end)
        } else {
            String::new()
        };
        Json(json!({
            "message": "",
            "data": data,
            "page_info": {"page_size": page_size, "total_count": total, "next": next, "prev": ""}
        }))
        .into_response()
    }
}

/// When joins or leaves happen, in epochs: a fast start so that the dashboard shows them
/// within minutes, then a slow, steady turnover.
struct Schedule {
    first: u64,
    fast_every: u64,
    fast_count: u64,
    slow_every: u64,
}

impl Schedule {
    /// How many happened up to and including `epoch`.
    fn count(&self, epoch: u64) -> u64 {
        let Some(e) = epoch.checked_sub(self.first) else {
            return 0;
        };
        let fast_span = self.fast_count * self.fast_every;
        if e < fast_span {
            e / self.fast_every + 1
        } else {
            self.fast_count + (e - fast_span) / self.slow_every + 1
        }
    }

    /// The epoch of the `k`-th (from 0): the inverse of `count`.
    fn epoch_of(&self, k: u64) -> u64 {
        self.first
            + if k < self.fast_count {
                k * self.fast_every
            } else {
                self.fast_count * self.fast_every + (k - self.fast_count) * self.slow_every
            }
    }
}

/// Who is a member in `epoch`: the core users `0..CORE_USERS`, then a window of the others.
/// Users `0..BASE_USERS` are there from the start, joiner `j` is user `BASE_USERS + j`, and
/// the users past the core leave in the order of their numbers.
fn members(epoch: u64) -> (Range<u64>, Range<u64>) {
    let rest = CORE_USERS + LEAVES.count(epoch)..BASE_USERS + JOINS.count(epoch);
    (0..CORE_USERS, rest)
}

/// The user at position `pos` of the listing in `epoch`, if there is one.
fn user_at(pos: u64, epoch: u64) -> Option<u64> {
    let (core, rest) = members(epoch);
    if pos < core.end {
        return Some(pos);
    }
    let i = rest.start + (pos - core.end);
    (i < rest.end).then_some(i)
}

/// User `i` as the API shows it in `epoch`, for a simulation started at `start_ms`.
fn user(i: u64, epoch: u64, start_ms: u64) -> Value {
    let base = mix(i);
    let joined = i.checked_sub(BASE_USERS).map(|j| JOINS.epoch_of(j));
    // In each epoch (15 s) about one user in 100 shows another status than usual.
    let drifted = mix(i ^ (epoch << 32)).is_multiple_of(100);
    let status = match joined {
        Some(at) if epoch < at + INVITED_EPOCHS && !drifted => "INVITED",
        Some(_) if !drifted => "ACTIVE",
        _ => status_for(if drifted { mix(base) } else { base }),
    };
    let created = match joined {
        // Joiners were created when they joined (plus a few milliseconds).
        Some(at) => start_ms + at * EPOCH.as_millis() as u64 + base % 1000,
        None => start_ms.saturating_sub(age_ms(base)),
    };
    let email = pick_domain(mix(base ^ 0xe4a1)).map(|d| format!("user{i}@{d}"));
    json!({
        "id": format!("{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            base >> 32, (base >> 16) & 0xffff, base & 0xfff, i & 0xfff, i),
        "email": email,
        "first_name": "Demo",
        "last_name": format!("User {i}"),
        "identity_user_uuid": format!("{:032x}", mix(base)),
        "status": status,
        "created_at": created,
        "updated_at": created,
    })
}

fn status_for(roll: u64) -> &'static str {
    match roll % 100 {
        0..=64 => "ACTIVE",
        65..=79 => "INACTIVE",
        80..=91 => "INVITED",
        _ => "PENDING",
    }
}

/// How long before the start a user there from the start was created: about 1% in the last
/// day, 3% in the week before, 8% in the rest of the month, the others up to two years back.
fn age_ms(base: u64) -> u64 {
    let (from_days, to_days) = match mix(base ^ 0xa9e) % 100 {
        0 => (0, 1),
        1..=3 => (1, 7),
        4..=11 => (7, 30),
        _ => (30, 730),
    };
    from_days * DAY_MS + mix(base ^ 0x5eed) % ((to_days - from_days) * DAY_MS)
}

fn pick_domain(roll: u64) -> Option<&'static str> {
    let roll = roll % 100;
    DOMAINS
        .iter()
        .find(|(below, _)| roll < *below)
        .and_then(|(_, d)| *d)
}

fn mix(mut x: u64) -> u64 {
    // splitmix64: a fixed, well-spread hash for made-up data.
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Opaque-looking cursor tokens, like the live API's.
fn encode_cursor(offset: u64) -> String {
    format!("dXNlcnM{:x}", offset ^ 0x5a5a_5a5a)
}

fn decode_cursor(token: &str) -> Option<u64> {
    let hex = token.strip_prefix("dXNlcnM")?;
    u64::from_str_radix(hex, 16).ok().map(|v| v ^ 0x5a5a_5a5a)
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap, HashSet};

    use super::*;

    /// 2026-01-01T00:00:00Z in milliseconds.
    const START_MS: u64 = 1_767_225_600_000;

    /// The whole listing of an epoch, walked page by page as the exporter does.
    fn listing(epoch: u64) -> Vec<Value> {
        (0..)
            .map_while(|pos| user_at(pos, epoch))
            .map(|i| user(i, epoch, START_MS))
            .collect()
    }

    /// id -> status of an epoch's listing.
    fn statuses(epoch: u64) -> HashMap<String, String> {
        listing(epoch)
            .iter()
            .map(|u| {
                (
                    u["id"].as_str().unwrap().to_owned(),
                    u["status"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }

    /// (joined, left, status changes) from `a` to `b`.
    fn changes(a: u64, b: u64) -> (usize, usize, usize) {
        let (a, b) = (statuses(a), statuses(b));
        let joined = b.keys().filter(|id| !a.contains_key(*id)).count();
        let left = a.keys().filter(|id| !b.contains_key(*id)).count();
        let changed = b
            .iter()
            .filter(|(id, s)| a.get(*id).is_some_and(|old| old != *s))
            .count();
        (joined, left, changed)
    }

    #[test]
    fn cursors_round_trip() {
        for offset in [0, 1, 100, 299] {
            assert_eq!(decode_cursor(&encode_cursor(offset)), Some(offset));
        }
        assert_eq!(decode_cursor("garbage"), None);
    }

    #[test]
    fn users_are_stable_and_ids_unique() {
        assert_eq!(user(5, 0, START_MS), user(5, 0, START_MS));
        let ids: HashSet<String> = (0..1000)
            .map(|i| user(i, 3, START_MS)["id"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(ids.len(), 1000);
        assert!(ids.iter().all(|id| uuid::Uuid::try_parse(id).is_ok()));
    }

    #[test]
    fn a_user_joins_one_leaves_and_some_change_status_in_the_first_epochs() {
        assert_eq!(listing(0).len(), 300);
        // Epoch 1: one joins, as INVITED, created just now; some statuses drift.
        let (joined, left, changed) = changes(0, 1);
        assert_eq!((joined, left), (1, 0));
        assert!(changed > 0, "no status change from epoch 0 to 1");
        let newcomer = user(BASE_USERS, 1, START_MS);
        assert_eq!(newcomer["status"], "INVITED");
        assert_eq!(
            newcomer["created_at"].as_u64().unwrap() / 1000,
            (START_MS + 15_000) / 1000
        );
        // Epoch 2: the first user past the core leaves; everybody else keeps their id.
        let (joined, left, _) = changes(1, 2);
        assert_eq!((joined, left), (0, 1));
        let gone = user(CORE_USERS, 1, START_MS)["id"].clone();
        assert!(listing(2).iter().all(|u| u["id"] != gone));
        assert!(listing(2)
            .iter()
            .any(|u| u["id"] == user(0, 2, START_MS)["id"]));
        // Two minutes after joining, the newcomer accepted the invitation.
        assert_eq!(
            user(BASE_USERS, 1 + INVITED_EPOCHS, START_MS)["status"],
            "ACTIVE"
        );
    }

    #[test]
    fn turnover_is_fast_in_the_first_hour_then_slow_and_the_account_stays_bounded() {
        let hour = 3600 / EPOCH.as_secs();
        let (joined, left, _) = changes(0, hour);
        assert_eq!((joined, left), (40, 20));
        assert_eq!(listing(hour).len(), 320);
        // Never more than 10% of the account leaves within an hour (TestsigmaManyUsersLeft).
        for start in (0..30 * 24 * hour).step_by(37) {
            let left = LEAVES.count(start + hour) - LEAVES.count(start);
            assert!(
                left * 10 < 300,
                "{left} left in the hour from epoch {start}"
            );
        }
        // A month on: one join and one leave an hour, the core is still there.
        let month = 30 * 24 * hour;
        assert_eq!(changes(month, month + hour).0, 1);
        assert_eq!(changes(month, month + hour).1, 1);
        let size = listing(month).len();
        assert!((300..=350).contains(&size), "{size} users after a month");
        assert!(
            user_at(0, month) == Some(0) && user_at(CORE_USERS - 1, month) == Some(CORE_USERS - 1)
        );
        for k in 0..100 {
            assert_eq!(JOINS.count(JOINS.epoch_of(k)), k + 1);
            assert_eq!(JOINS.count(JOINS.epoch_of(k) - 1), k);
        }
    }

    #[test]
    fn created_at_is_in_milliseconds_and_spread_over_months_with_a_few_in_the_last_day() {
        let ages: Vec<u64> = listing(0)
            .iter()
            .map(|u| u["created_at"].as_u64().unwrap())
            .inspect(|&c| assert!(c > 100_000_000_000 && c <= START_MS))
            .map(|c| (START_MS - c) / DAY_MS)
            .collect();
        let within = |days| ages.iter().filter(|&&a| a < days).count();
        assert!(
            (1..=10).contains(&within(1)),
            "{} in the last day",
            within(1)
        );
        assert!(within(7) > within(1) && within(30) > within(7));
        assert!(within(30) < 60, "{} in the last 30 days", within(30));
        assert!(ages.iter().any(|&a| a > 365), "nobody older than a year");
    }

    #[test]
    fn emails_fall_into_a_few_domains_and_a_few_users_have_none() {
        let mut domains: BTreeMap<String, usize> = BTreeMap::new();
        for u in listing(0) {
            let d = match u["email"].as_str() {
                Some(e) => e.rsplit_once('@').unwrap().1.to_owned(),
                None => "(none)".to_owned(),
            };
            *domains.entry(d).or_default() += 1;
        }
        let names: Vec<&str> = domains.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "(none)",
                "acme.example",
                "globex.example",
                "gmail.com",
                "initech.example"
            ]
        );
        assert!(domains["acme.example"] > domains["gmail.com"]);
        assert!(domains["(none)"] < 15);
    }
}
