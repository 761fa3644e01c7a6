//! The start of a connection: read and write deadlines on the socket, the TLS handshake
//! within a deadline (a plain HTTP request to the TLS port gets a 400 that says so), and the
//! warnings about failed handshakes, rate-limited.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_io_timeout::TimeoutStream;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, warn};

/// At most one warning about failed TLS handshakes this often; the others are counted.
pub const HANDSHAKE_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// A connection whose reads and writes fail once they make no progress for `idle`.
pub type Guarded = Pin<Box<TimeoutStream<TcpStream>>>;

pub fn with_deadlines(stream: TcpStream, idle: Duration) -> Guarded {
    let mut stream = TimeoutStream::new(stream);
    stream.set_read_timeout(Some(idle));
    stream.set_write_timeout(Some(idle));
    Box::pin(stream)
}

/// A TLS handshake within `timeout`, over a stream with the `idle` deadlines. A client that
/// speaks plain HTTP to the TLS port gets a 400 that says so, as Go's servers answer,
/// instead of a bare reset.
pub async fn handshake(
    acceptor: &TlsAcceptor,
    mut stream: TcpStream,
    timeout: Duration,
    idle: Duration,
) -> io::Result<tokio_rustls::server::TlsStream<Guarded>> {
    let timed_out = || io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out");
    let mut first = [0u8; 1];
    let peeked = tokio::time::timeout(timeout, stream.peek(&mut first))
        .await
        .map_err(|_| timed_out())??;
    // A TLS record starts with 0x16 (handshake); an HTTP request with a method name.
    if peeked == 1 && first[0].is_ascii_uppercase() {
        let _ = stream.write_all(PLAIN_HTTP_TO_TLS).await;
        let _ = stream.shutdown().await;
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "plain HTTP sent to the TLS listener",
        ));
    }
    tokio::time::timeout(timeout, acceptor.accept(with_deadlines(stream, idle)))
        .await
        .map_err(|_| timed_out())?
}

/// Failed TLS handshakes, for the operator: why a scraper is refused (a certificate it does
/// not trust, no common cipher suite, plain HTTP...) is a warning, at most one every
/// [`HANDSHAKE_LOG_INTERVAL`] with the number of others since. Connections that close or
/// stall before a word of TLS (port scans, TCP health checks) stay at debug level.
#[derive(Default)]
pub struct HandshakeLog {
    /// When the last warning was logged, and the failures not logged since.
    state: std::sync::Mutex<(Option<Instant>, u64)>,
}

impl HandshakeLog {
    pub fn failed(&self, peer: SocketAddr, error: &io::Error, now: Instant) {
        // rustls' errors (and the plain-HTTP one) are InvalidData; EOF, resets and time-outs
        // are not the client's TLS settings.
        if error.kind() != io::ErrorKind::InvalidData {
            debug!(%peer, error = %error, "TLS handshake failed");
            return;
        }
        match self.due(now) {
            Some(suppressed) => warn!(
                %peer,
                error = %error,
                suppressed,
                "TLS handshake failed; suppressed counts the failures not logged since the last such line"
            ),
            None => debug!(%peer, error = %error, "TLS handshake failed"),
        }
    }

    /// Whether a warning is due now; if so, how many failures were not logged before it.
    fn due(&self, now: Instant) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (last, suppressed) = *state;
        if last.is_some_and(|last| now.saturating_duration_since(last) < HANDSHAKE_LOG_INTERVAL) {
            *state = (last, suppressed + 1);
            return None;
        }
        *state = (Some(now), 0);
        Some(suppressed)
    }
}

const PLAIN_HTTP_TO_TLS: &[u8] =
    b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n\
Connection: close\r\nContent-Length: 48\r\n\r\nClient sent an HTTP request to an HTTPS server.\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_warning_per_interval_counting_the_others() {
        let log = HandshakeLog::default();
        let start = Instant::now();
        let at = |secs: u64| start + Duration::from_secs(secs);
        assert_eq!(log.due(at(0)), Some(0));
        assert_eq!(log.due(at(1)), None);
        assert_eq!(log.due(at(9)), None);
        // Due again an interval after the last warning, with the two held back.
        assert_eq!(log.due(at(10)), Some(2));
        assert_eq!(log.due(at(15)), None);
        assert_eq!(log.due(at(100)), Some(1));
        assert_eq!(log.due(at(110)), Some(0));
        // A clock that goes backwards counts as within the interval.
        assert_eq!(log.due(at(105)), None);
        assert_eq!(log.due(at(120)), Some(1));
    }
}
