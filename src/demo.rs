//! `--demo`: a simulated Testsigma API on loopback, so the exporter can be seen working
//! without an account. It speaks like the live API (cursor tokens, upper-case statuses,
//! millisecond timestamps, rate-limit headers, 500 past 10 requests a second) and the
//! exporter polls it through the very same client.

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
/// Users at start; a few join as time passes.
const BASE_USERS: u64 = 300;
/// The state of the simulated account changes every this often.
const EPOCH: Duration = Duration::from_secs(15);
/// Requests per second the simulated API allows before it answers 500, like the live one.
const RATE_LIMIT: u32 = 10;

#[derive(Clone)]
struct Sim {
    started: Instant,
    window: Arc<Mutex<(u64, u32)>>,
}

/// Starts the simulated API on `127.0.0.1:0`; returns its base URL (`.../api/v1`).
pub async fn start(shutdown: watch::Receiver<bool>) -> std::io::Result<Url> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    let sim = Sim {
        started: Instant::now(),
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
        let total = BASE_USERS + epoch.min(100) / 2;
        let end = (offset + page_size as u64).min(total);
        let data: Vec<Value> = (offset..end).map(|i| user(i, epoch)).collect();
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

/// A stable, made-up user; its status drifts now and then.
fn user(i: u64, epoch: u64) -> Value {
    let base = mix(i);
    // In each epoch about one user in 40 is in a different status than usual.
    let drifted = mix(i ^ (epoch << 32)).is_multiple_of(40);
    let roll = if drifted { mix(base) % 100 } else { base % 100 };
    let status = match roll {
        0..=64 => "ACTIVE",
        65..=79 => "INACTIVE",
        80..=91 => "INVITED",
        _ => "PENDING",
    };
    let created = 1_700_000_000_000 + (base % 10_000_000_000);
    json!({
        "id": format!("{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            base >> 32, (base >> 16) & 0xffff, base & 0xfff, i & 0xfff, i),
        "email": format!("user{i}@demo.example"),
        "first_name": "Demo",
        "last_name": format!("User {i}"),
        "identity_user_uuid": format!("{:032x}", mix(base)),
        "status": status,
        "created_at": created,
        "updated_at": created,
    })
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
    use super::*;

    #[test]
    fn cursors_round_trip() {
        for offset in [0, 1, 100, 299] {
            assert_eq!(decode_cursor(&encode_cursor(offset)), Some(offset));
        }
        assert_eq!(decode_cursor("garbage"), None);
    }

    #[test]
    fn users_are_stable_and_ids_unique() {
        assert_eq!(user(5, 0), user(5, 0));
        let ids: std::collections::HashSet<String> = (0..1000)
            .map(|i| user(i, 3)["id"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(ids.len(), 1000);
        assert!(ids.iter().all(|id| uuid::Uuid::try_parse(id).is_ok()));
    }
}
