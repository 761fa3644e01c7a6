//! A tiny HTTP/1.1 server for what wiremock cannot do: connection resets, bodies that
//! trickle or never end, and hand-written responses.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinHandle;

/// What a [`RawServer`] saw of one request.
#[derive(Debug, Clone)]
pub struct RawRequest {
    /// The request target, e.g. `/api/v1/users?page_size=100`.
    pub target: String,
}

/// How a [`RawServer`] answers a request.
pub enum RawReply {
    /// Writes these bytes, then closes.
    Bytes(Vec<u8>),
    /// Closes at once with a TCP reset.
    Reset,
    /// Writes `head`, then `chunk` every `every` until `total` bytes of it are written or the
    /// client leaves, then closes.
    Stream {
        head: Vec<u8>,
        chunk: Vec<u8>,
        every: Duration,
        total: usize,
    },
    /// Says nothing until the client leaves.
    Hang,
}

type RawHandler = dyn Fn(usize, &RawRequest) -> RawReply + Send + Sync;

/// A tiny HTTP/1.1 server on loopback for what wiremock cannot do: resets, bodies that
/// trickle or never end. One request per connection; `handler` gets the request's index.
pub struct RawServer {
    pub addr: std::net::SocketAddr,
    requests: Arc<Mutex<Vec<RawRequest>>>,
    streamed: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl RawServer {
    pub async fn start(
        handler: impl Fn(usize, &RawRequest) -> RawReply + Send + Sync + 'static,
    ) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local address");
        let handler: Arc<RawHandler> = Arc::new(handler);
        let requests = Arc::new(Mutex::new(Vec::new()));
        let streamed = Arc::new(AtomicU64::new(0));
        let task = {
            let requests = requests.clone();
            let streamed = streamed.clone();
            tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    tokio::spawn(raw_connection(
                        stream,
                        handler.clone(),
                        requests.clone(),
                        streamed.clone(),
                    ));
                }
            })
        };
        Self {
            addr,
            requests,
            streamed,
            task,
        }
    }

    /// `http://{addr}/api/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/api/v1", self.addr)
    }

    pub fn requests(&self) -> Vec<RawRequest> {
        self.requests.lock().unwrap().clone()
    }

    /// Bytes of `Stream` chunks written so far, over all connections.
    pub fn streamed(&self) -> u64 {
        self.streamed.load(Ordering::Relaxed)
    }
}

impl Drop for RawServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn raw_connection(
    mut stream: tokio::net::TcpStream,
    handler: Arc<RawHandler>,
    requests: Arc<Mutex<Vec<RawRequest>>>,
    streamed: Arc<AtomicU64>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
        if head.len() > 1 << 20 {
            return;
        }
    }
    let head = String::from_utf8_lossy(&head);
    let target = head.split(' ').nth(1).unwrap_or("").to_owned();
    let request = RawRequest { target };
    let n = {
        let mut all = requests.lock().unwrap();
        all.push(request.clone());
        all.len() - 1
    };
    match handler(n, &request) {
        RawReply::Bytes(bytes) => {
            let _ = stream.write_all(&bytes).await;
            let _ = stream.shutdown().await;
        }
        RawReply::Reset => {
            let _ = stream.set_zero_linger();
            drop(stream);
        }
        RawReply::Stream {
            head,
            chunk,
            every,
            total,
        } => {
            if stream.write_all(&head).await.is_err() {
                return;
            }
            let mut sent = 0;
            while sent < total {
                if stream.write_all(&chunk).await.is_err() {
                    return;
                }
                sent += chunk.len();
                streamed.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                if !every.is_zero() {
                    tokio::time::sleep(every).await;
                }
            }
            let _ = stream.shutdown().await;
        }
        RawReply::Hang => {
            // Until the client closes its side.
            while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
        }
    }
}

/// A complete HTTP/1.1 response that closes the connection.
pub fn http_response(status: u16, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status} X\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

/// One chunk of a `transfer-encoding: chunked` body.
pub fn chunk(data: &[u8]) -> Vec<u8> {
    let mut out = format!("{:x}\r\n", data.len()).into_bytes();
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
    out
}
