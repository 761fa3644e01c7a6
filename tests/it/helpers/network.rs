//! A corporate network on loopback: the API behind HTTPS with a private CA (a TLS front for a
//! wiremock stand-in) and an HTTP CONNECT proxy that records its tunnels.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use super::Issued;

/// How long a proxy or TLS front waits for a client's request head or handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// HTTPS on 127.0.0.1 with a certificate of a test CA, in front of a plain-HTTP stand-in
/// for the API: each connection's TLS is ended here and its bytes passed on.
pub struct TlsFront {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl TlsFront {
    /// Serves `issued` and forwards to `backend` (e.g. a wiremock server's address).
    pub async fn start(issued: &Issued, backend: SocketAddr) -> Self {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer};
        let key = PrivateKeyDer::from_pem_slice(issued.key_pem.as_bytes()).expect("key PEM");
        let cert = CertificateDer::from(issued.der.clone());
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .expect("server certificate");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local address");
        let connections = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn({
            let connections = connections.clone();
            async move {
                while let Ok((stream, _)) = listener.accept().await {
                    connections.fetch_add(1, Ordering::SeqCst);
                    let acceptor = acceptor.clone();
                    tokio::spawn(async move {
                        let accepted =
                            tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await;
                        // A client that refuses the certificate ends the handshake: nothing
                        // more to do.
                        let Ok(Ok(mut tls)) = accepted else { return };
                        if let Ok(mut plain) = TcpStream::connect(backend).await {
                            let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                        }
                    });
                }
            }
        });
        Self {
            addr,
            connections,
            task,
        }
    }

    /// `https://{host}:{port}/api/v1`, e.g. with `localhost` or `127.0.0.1` as `host`.
    pub fn base_url(&self, host: &str) -> String {
        format!("https://{host}:{}/api/v1", self.addr.port())
    }

    /// TCP connections accepted so far, TLS handshakes that failed included.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What a [`ConnectProxy`] saw of one client.
#[derive(Debug, Clone, Default)]
pub struct Tunnel {
    /// The request head as received, e.g. `CONNECT localhost:443 HTTP/1.1\r\n...`.
    pub head: String,
    /// Every byte the client sent through the tunnel once it was open.
    pub sent: Vec<u8>,
}

/// An HTTP proxy on 127.0.0.1 that opens CONNECT tunnels to loopback (`localhost` or
/// `127.0.0.1`) and records each client; anything else gets 403 or 405.
pub struct ConnectProxy {
    addr: SocketAddr,
    tunnels: Arc<Mutex<Vec<Tunnel>>>,
    task: JoinHandle<()>,
}

impl ConnectProxy {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local address");
        let tunnels = Arc::new(Mutex::new(Vec::new()));
        let task = tokio::spawn({
            let tunnels = tunnels.clone();
            async move {
                while let Ok((stream, _)) = listener.accept().await {
                    tokio::spawn(proxy_connection(stream, tunnels.clone()));
                }
            }
        });
        Self {
            addr,
            tunnels,
            task,
        }
    }

    /// `http://127.0.0.1:{port}`, for `HTTPS_PROXY`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every client so far, tunnelled or refused.
    pub fn tunnels(&self) -> Vec<Tunnel> {
        self.tunnels.lock().expect("tunnels").clone()
    }
}

impl Drop for ConnectProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn proxy_connection(mut client: TcpStream, tunnels: Arc<Mutex<Vec<Tunnel>>>) {
    let Ok(Some(head)) = tokio::time::timeout(HANDSHAKE_TIMEOUT, read_head(&mut client)).await
    else {
        return;
    };
    let index = {
        let mut tunnels = tunnels.lock().expect("tunnels");
        tunnels.push(Tunnel {
            head: head.clone(),
            sent: Vec::new(),
        });
        tunnels.len() - 1
    };
    let mut words = head.split_whitespace();
    let (Some("CONNECT"), Some(target)) = (words.next(), words.next()) else {
        let _ = client
            .write_all(b"HTTP/1.1 405 Method Not Allowed\r\ncontent-length: 0\r\n\r\n")
            .await;
        return;
    };
    // Loopback only, whatever the client asks for.
    let port = match target.rsplit_once(':') {
        Some(("localhost" | "127.0.0.1", port)) => port.parse::<u16>().ok(),
        _ => None,
    };
    let upstream = match port {
        Some(port) => TcpStream::connect(("127.0.0.1", port)).await.ok(),
        None => None,
    };
    let Some(upstream) = upstream else {
        let _ = client
            .write_all(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n")
            .await;
        return;
    };
    if client
        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .await
        .is_err()
    {
        return;
    }
    let (mut client_read, mut client_write) = client.into_split();
    let (mut upstream_read, mut upstream_write) = upstream.into_split();
    let up = async {
        let mut buf = vec![0; 16 * 1024];
        while let Ok(n @ 1..) = client_read.read(&mut buf).await {
            tunnels.lock().expect("tunnels")[index]
                .sent
                .extend_from_slice(&buf[..n]);
            if upstream_write.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = upstream_write.shutdown().await;
    };
    let down = async {
        let _ = tokio::io::copy(&mut upstream_read, &mut client_write).await;
        let _ = client_write.shutdown().await;
    };
    tokio::join!(up, down);
}

/// The request head up to the blank line (at most 16 KiB), or `None` if the client left.
async fn read_head(stream: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    // Byte by byte, so nothing of the tunnel that follows is read here.
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 16 * 1024 || stream.read(&mut byte).await.ok()? == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    String::from_utf8(head).ok()
}
