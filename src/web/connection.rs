//! A connection's life once its protocol is known: a close signal the request handlers can
//! give, the server's shutdown, and for HTTP/2 the deadlines that HTTP/1.1 gets from hyper
//! and from the socket.
//!
//! - [`CloseConnection`] rides in every request's extensions. The auth guard gives it for a
//!   refused client (a wrong password, a busy password check, a probe while users are set):
//!   the connection then shuts down gracefully (HTTP/2: a GOAWAY) once the answer is out, so
//!   that such clients cannot keep connection slots. On HTTP/1.1 the guard's
//!   `Connection: close` does the same; hyper drops that header on HTTP/2.
//! - HTTP/2 multiplexes streams over one socket, so its read and write deadlines (see
//!   [`super::handshake::with_deadlines`]) do not see a stalled stream: a client can keep
//!   reading nothing while PINGs keep the socket alive, or answer no WINDOW_UPDATE so the
//!   server stops writing. A watchdog per HTTP/2 connection closes it when no request has
//!   come within the header timeout of its start, when it has been idle (nothing in flight)
//!   for the idle timeout, and at once when one answer has been in flight that long (a
//!   client that does not read it).
//! - A graceful close gets [`CLOSE_GRACE`] to finish (the idle timeout at the server's
//!   shutdown), then the connection is dropped: an HTTP/2 server's GOAWAY waits for the
//!   client to answer a PING, and a hostile client that never does would otherwise keep its
//!   connection slot after its 401.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::Router;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::http::{Request, Response};
use hyper_util::server::graceful::GracefulConnection;
use hyper_util::service::TowerToHyperService;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;
use tracing::debug;

/// How long a connection closed gracefully (refused, idle, no request in time) may take to
/// finish: the answer of a refusal is a few bytes.
pub const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Asks for the connection a request came on to be closed after its answer.
#[derive(Clone)]
pub struct CloseConnection(Arc<Shared>);

impl CloseConnection {
    pub fn request(&self) {
        self.0.close.notify_one();
    }
}

/// What a connection's requests and its driver share.
struct Shared {
    close: Notify,
    state: Mutex<State>,
}

struct State {
    /// Requests received so far.
    requests: u64,
    /// Start of each request still in flight (until its answer's body is dropped), by number.
    in_flight: BTreeMap<u64, Instant>,
    /// Since when nothing has been in flight.
    idle_since: Instant,
}

/// The deadlines of the HTTP/2 watchdog.
#[derive(Debug, Clone, Copy)]
pub struct Deadlines {
    /// For the first request, from the start of the connection.
    pub first_request: Duration,
    /// For a connection with nothing in flight, and for one answer in flight.
    pub idle: Duration,
}

/// One connection's shared state: make the service with [`Connection::service`], then
/// drive the hyper connection with [`Connection::drive`].
pub struct Connection(Arc<Shared>);

impl Connection {
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        Self(Arc::new(Shared {
            close: Notify::new(),
            state: Mutex::new(State {
                requests: 0,
                in_flight: BTreeMap::new(),
                idle_since: Instant::now(),
            }),
        }))
    }

    /// `app` as a hyper service that hands each request the [`CloseConnection`] and tracks
    /// it until its answer has been sent (or given up).
    pub fn service(
        &self,
        app: Router,
    ) -> impl hyper::service::Service<
        Request<Incoming>,
        Response = Response<Tracked>,
        Error = Infallible,
        Future = impl std::future::Future<Output = Result<Response<Tracked>, Infallible>> + Send,
    > + Clone {
        let inner = TowerToHyperService::new(app);
        let shared = self.0.clone();
        hyper::service::service_fn(move |mut request: Request<Incoming>| {
            let done = InFlight::start(&shared);
            request
                .extensions_mut()
                .insert(CloseConnection(shared.clone()));
            let answer = hyper::service::Service::call(&inner, request);
            async move {
                let response = answer.await?;
                Ok(response.map(|body| Tracked { body, _done: done }))
            }
        })
    }

    /// Serves `connection` until it ends, `stop` turns true (then it closes gracefully), a
    /// handler asks for it to close, or (with `deadlines`, for HTTP/2) the watchdog finds a
    /// deadline passed.
    pub async fn drive<C>(
        self,
        connection: C,
        mut stop: watch::Receiver<bool>,
        idle: Duration,
        deadlines: Option<Deadlines>,
    ) -> Result<(), C::Error>
    where
        C: GracefulConnection,
    {
        let started = Instant::now();
        tokio::pin!(connection);
        // Set once a graceful close has begun: when to give up on it.
        let mut closing: Option<Instant> = None;
        loop {
            let check = match (closing, deadlines) {
                (Some(until), _) => Some(until),
                (None, Some(deadlines)) => Some(self.next_check(started, deadlines)),
                (None, None) => None,
            };
            let wake = async {
                match check {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            // How long the graceful close may take, if one begins now.
            let grace = tokio::select! {
                ended = connection.as_mut() => return ended,
                () = self.0.close.notified(), if closing.is_none() => Some(CLOSE_GRACE),
                // At the server's shutdown, answers in flight may be long ones.
                _ = stop.wait_for(|stop| *stop), if closing.is_none() => Some(idle),
                () = wake => {
                    let now = Instant::now();
                    if closing.is_some() {
                        debug!("connection dropped: it did not close in time");
                        return Ok(());
                    }
                    match deadlines.map(|d| self.verdict(started, d, now)) {
                        Some(Verdict::Drop) => {
                            debug!("HTTP/2 connection dropped: an answer in flight for too long");
                            return Ok(());
                        }
                        Some(Verdict::Close) => Some(CLOSE_GRACE),
                        _ => None,
                    }
                }
            };
            if let Some(grace) = grace {
                connection.as_mut().graceful_shutdown();
                closing = Some(Instant::now() + grace.min(idle));
            }
        }
    }

    /// When the watchdog should look next.
    fn next_check(&self, started: Instant, deadlines: Deadlines) -> Instant {
        let state = self.0.lock();
        match state.in_flight.values().min() {
            Some(oldest) => *oldest + deadlines.idle,
            None if state.requests == 0 => started + deadlines.first_request,
            None => state.idle_since + deadlines.idle,
        }
    }

    fn verdict(&self, started: Instant, deadlines: Deadlines, now: Instant) -> Verdict {
        let state = self.0.lock();
        match state.in_flight.values().min() {
            Some(oldest) if now.duration_since(*oldest) >= deadlines.idle => Verdict::Drop,
            Some(_) => Verdict::Keep,
            None if state.requests == 0 => {
                if now.duration_since(started) >= deadlines.first_request {
                    Verdict::Close
                } else {
                    Verdict::Keep
                }
            }
            None if now.duration_since(state.idle_since) >= deadlines.idle => Verdict::Close,
            None => Verdict::Keep,
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Keep,
    /// Close gracefully: nothing is in flight.
    Close,
    /// Drop at once: the client does not take its answer.
    Drop,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A request in flight, until dropped.
struct InFlight {
    shared: Arc<Shared>,
    number: u64,
}

impl InFlight {
    fn start(shared: &Arc<Shared>) -> Self {
        let mut state = shared.lock();
        let number = state.requests;
        state.requests += 1;
        state.in_flight.insert(number, Instant::now());
        Self {
            shared: shared.clone(),
            number,
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.in_flight.remove(&self.number);
        if state.in_flight.is_empty() {
            state.idle_since = Instant::now();
        }
    }
}

/// An answer's body that keeps its request in flight until hyper is done with it.
pub struct Tracked {
    body: Body,
    _done: InFlight,
}

impl hyper::body::Body for Tracked {
    type Data = <Body as hyper::body::Body>::Data;
    type Error = <Body as hyper::body::Body>::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEADLINES: Deadlines = Deadlines {
        first_request: Duration::from_secs(10),
        idle: Duration::from_secs(30),
    };

    #[tokio::test(start_paused = true)]
    async fn the_watchdog_verdicts() {
        let connection = Connection::new();
        let started = Instant::now();
        let at = |secs: u64| started + Duration::from_secs(secs);
        let verdict = |secs| connection.verdict(started, DEADLINES, at(secs));
        // No request yet: the first must come within 10 s.
        assert_eq!(connection.next_check(started, DEADLINES), at(10));
        assert_eq!(verdict(9), Verdict::Keep);
        assert_eq!(verdict(10), Verdict::Close);

        tokio::time::advance(Duration::from_secs(5)).await;
        let first = InFlight::start(&connection.0);
        assert_eq!(connection.next_check(started, DEADLINES), at(35));
        assert_eq!(verdict(34), Verdict::Keep);
        assert_eq!(verdict(35), Verdict::Drop);

        // A second request; the first answer done: the second one counts.
        tokio::time::advance(Duration::from_secs(10)).await;
        let second = InFlight::start(&connection.0);
        drop(first);
        assert_eq!(connection.next_check(started, DEADLINES), at(45));
        assert_eq!(verdict(44), Verdict::Keep);
        assert_eq!(verdict(45), Verdict::Drop);

        // Nothing in flight: idle from the last answer on.
        tokio::time::advance(Duration::from_secs(1)).await;
        drop(second);
        assert_eq!(connection.next_check(started, DEADLINES), at(46));
        assert_eq!(verdict(45), Verdict::Keep);
        assert_eq!(verdict(46), Verdict::Close);
    }
}
