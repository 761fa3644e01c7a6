//! Stand-ins for the Testsigma API on wiremock: the fixtures, page bodies, mock servers that
//! answer one way or by script, and an account behind the live API's rate limit.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// The key the mock API expects.
pub const KEY: &str = "test-key-0123456789";

/// Path of a fixture under `tests/fixtures/`.
fn fixture_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// A fixture's JSON.
pub fn fixture(name: &str) -> Value {
    let text = std::fs::read_to_string(fixture_path(name)).expect("fixture exists");
    serde_json::from_str(&text).expect("fixture is JSON")
}

/// The mock API's base URL (`{mock}/api/v1`).
pub fn base_url(mock: &MockServer) -> String {
    format!("{}/api/v1", mock.uri())
}

/// A users page body in the documented shape.
pub fn page(users: &[(&str, &str)], next: Value, total: Option<u64>) -> Value {
    let data: Vec<Value> = users
        .iter()
        .map(|(id, status)| json!({"id": id, "email": format!("{id}@example.com"), "status": status}))
        .collect();
    let mut body = json!({"message": "", "data": data, "page_info": {"next": next}});
    if let Some(total) = total {
        body["page_info"]["total_count"] = json!(total);
    }
    body
}

/// `GET /api/v1/users`, to be refined with more matchers.
pub fn users_get() -> wiremock::MockBuilder {
    Mock::given(method("GET")).and(path("/api/v1/users"))
}

/// A 200 answer with `body` as JSON.
pub fn json_ok(body: Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(body)
}

/// A mock API that answers every `GET /api/v1/users` (any query, any key) with `answer`.
pub async fn mock_api(answer: ResponseTemplate) -> MockServer {
    let mock = MockServer::start().await;
    users_get().respond_with(answer).mount(&mock).await;
    mock
}

/// The requests `mock` received, whatever they asked for.
pub async fn request_count(mock: &MockServer) -> usize {
    mock.received_requests()
        .await
        .expect("request recording is on")
        .len()
}

/// The requests `mock` received carrying `Authorization: Bearer <key>`.
pub async fn requests_with_key(mock: &MockServer, key: &str) -> usize {
    let expected = format!("Bearer {key}");
    mock.received_requests()
        .await
        .expect("request recording is on")
        .iter()
        .filter(|r| {
            r.headers
                .get("authorization")
                .is_some_and(|v| v.as_bytes() == expected.as_bytes())
        })
        .count()
}

/// A page of the synthetic account served by [`PagedApi`] and by scripts: `pages` pages of
/// `per_page` users, linked by the cursors `p1`, `p2`, ...; every third user inactive.
pub fn synthetic_page(page: usize, pages: usize, per_page: usize) -> Value {
    let users: Vec<(String, &str)> = (0..per_page)
        .map(|i| {
            let n = page * per_page + i;
            (
                format!("user-{n}"),
                if n % 3 == 2 { "inactive" } else { "ACTIVE" },
            )
        })
        .collect();
    let users: Vec<(&str, &str)> = users.iter().map(|(id, s)| (id.as_str(), *s)).collect();
    let next = if page + 1 < pages {
        json!(format!("p{}", page + 1))
    } else {
        json!("")
    };
    self::page(&users, next, Some((pages * per_page) as u64))
}

/// The page number a request for the synthetic account asks for (`cursor=pN`; none is 0).
fn page_number(query: Option<&str>) -> usize {
    query
        .unwrap_or("")
        .split('&')
        .find_map(|kv| kv.strip_prefix("cursor=p"))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// When each request reached a mock, in order.
#[derive(Clone, Default)]
pub struct Arrivals(Arc<Mutex<Vec<Instant>>>);

impl Arrivals {
    fn push(&self) -> usize {
        let mut times = self.0.lock().unwrap();
        times.push(Instant::now());
        times.len() - 1
    }

    pub fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    /// Time between each request and the one before it.
    pub fn gaps(&self) -> Vec<Duration> {
        let times = self.0.lock().unwrap();
        times.windows(2).map(|w| w[1] - w[0]).collect()
    }
}

/// A wiremock responder that answers the n-th request (from 0) with `answer(n, request)` and
/// records when each came.
struct Scripted<F> {
    answer: F,
    arrivals: Arrivals,
}

impl<F> Respond for Scripted<F>
where
    F: Fn(usize, &Request) -> ResponseTemplate + Send + Sync + 'static,
{
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let n = self.arrivals.push();
        (self.answer)(n, request)
    }
}

/// Mounts a [`Scripted`] responder for `GET /api/v1/users`; returns its arrival log.
pub async fn mount_script<F>(mock: &MockServer, answer: F) -> Arrivals
where
    F: Fn(usize, &Request) -> ResponseTemplate + Send + Sync + 'static,
{
    let arrivals = Arrivals::default();
    users_get()
        .respond_with(Scripted {
            answer,
            arrivals: arrivals.clone(),
        })
        .mount(mock)
        .await;
    arrivals
}

/// An account whose answer a test changes between polls: every `GET /api/v1/users` gets
/// the answer set last (at first, one empty page).
#[derive(Clone)]
pub struct Account(Arc<Mutex<ResponseTemplate>>);

impl Account {
    pub async fn mount(mock: &MockServer) -> Self {
        let account = Account(Arc::new(Mutex::new(json_ok(json!({"data": []})))));
        let answer = account.0.clone();
        mount_script(mock, move |_, _| answer.lock().unwrap().clone()).await;
        account
    }

    /// From now on, one page with these users (JSON objects).
    pub fn set_users(&self, users: Vec<Value>) {
        self.answer(json_ok(json!({"data": users, "page_info": {"next": ""}})));
    }

    /// From now on, this answer.
    pub fn answer(&self, answer: ResponseTemplate) {
        *self.0.lock().unwrap() = answer;
    }
}

/// The live API's answer past its rate limit: HTTP 500, not 429.
pub fn rate_limit_500() -> ResponseTemplate {
    ResponseTemplate::new(500)
        .set_body_json(fixture("error-rate-limit-500.json"))
        .insert_header("x-tms-api-limit", "10")
        .insert_header("x-tms-api-remaining", "0")
        .insert_header("x-tms-api-reset", "1")
}

/// Arrival times, and whether the limit was tripped, of every request to a [`PagedApi`].
pub type PagedLog = Arc<Mutex<Vec<(Instant, bool)>>>;

/// The synthetic account behind a rate limit like the live API's: at most `limit` requests
/// in any second, beyond which it answers [`rate_limit_500`]. Sends the `x-tms-api-*` headers.
pub struct PagedApi {
    pages: usize,
    per_page: usize,
    limit: usize,
    /// Whether answers carry `x-tms-api-limit`, `-remaining` and `-reset`.
    quota_headers: bool,
    log: PagedLog,
}

impl PagedApi {
    pub fn new(pages: usize, per_page: usize, limit: usize) -> Self {
        Self {
            pages,
            per_page,
            limit,
            quota_headers: true,
            log: Arc::default(),
        }
    }

    /// Answers without the `x-tms-api-*` headers.
    pub fn without_quota_headers(mut self) -> Self {
        self.quota_headers = false;
        self
    }

    /// Mounts it on `GET /api/v1/users`; returns its request log.
    pub async fn mount(self, mock: &MockServer) -> PagedLog {
        let log = self.log.clone();
        users_get().respond_with(self).mount(mock).await;
        log
    }
}

impl Respond for PagedApi {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let now = Instant::now();
        let mut log = self.log.lock().unwrap();
        let recent = log
            .iter()
            .filter(|(at, _)| now.duration_since(*at) < Duration::from_secs(1))
            .count();
        let tripped = recent >= self.limit;
        log.push((now, tripped));
        if tripped {
            return rate_limit_500();
        }
        let page = page_number(request.url.query());
        let answer = json_ok(synthetic_page(page, self.pages, self.per_page));
        if !self.quota_headers {
            return answer;
        }
        answer
            .insert_header("x-tms-api-limit", self.limit.to_string().as_str())
            .insert_header(
                "x-tms-api-remaining",
                (self.limit - recent - 1).to_string().as_str(),
            )
            .insert_header("x-tms-api-reset", "1")
    }
}
