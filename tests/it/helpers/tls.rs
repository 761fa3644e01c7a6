//! TLS for `--web.config.file` and `--api-ca-file` tests: a throw-away certificate authority,
//! certificates it issues, HTTPS clients that trust it, and files replaced the way Kubernetes
//! does.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::task::JoinHandle;

/// A throw-away certificate authority for TLS tests.
pub struct TestCa {
    cert: rcgen::Certificate,
    key: rcgen::KeyPair,
}

/// A certificate and its key, issued by a [`TestCa`].
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
    pub der: Vec<u8>,
}

impl TestCa {
    pub fn new(name: &str) -> Self {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).expect("CA certificate");
        Self { cert, key }
    }

    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    /// A server certificate for `localhost` and `127.0.0.1`.
    pub fn server(&self, common_name: &str) -> Issued {
        self.issue(
            common_name,
            vec!["localhost".into(), "127.0.0.1".into()],
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        )
    }

    /// A server certificate for `names` only (e.g. another host than the one asked for).
    pub fn server_for(&self, common_name: &str, names: &[&str]) -> Issued {
        self.issue(
            common_name,
            names.iter().map(|n| n.to_string()).collect(),
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        )
    }

    /// A client certificate for mutual TLS.
    pub fn client(&self, common_name: &str) -> Issued {
        self.issue(
            common_name,
            Vec::new(),
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        )
    }

    /// A client certificate with the SANs `names`.
    pub fn client_for(&self, common_name: &str, names: &[&str]) -> Issued {
        self.issue(
            common_name,
            names.iter().map(|n| n.to_string()).collect(),
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        )
    }

    /// This CA's own certificate and key as a client identity: a self-signed client
    /// certificate pinned by naming it as the client CA, as the toolkit's tests do.
    pub fn identity(&self) -> Issued {
        Issued {
            cert_pem: self.cert.pem(),
            key_pem: self.key.serialize_pem(),
            der: self.cert.der().to_vec(),
        }
    }

    fn issue(
        &self,
        common_name: &str,
        names: Vec<String>,
        usage: rcgen::ExtendedKeyUsagePurpose,
    ) -> Issued {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(names).expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, common_name);
        params.extended_key_usages = vec![usage];
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .expect("issue certificate");
        Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().to_vec(),
        }
    }

    /// An HTTPS client that trusts only this CA, sends `identity` if given, opens a new
    /// connection for every request (so each sees the certificate in force) and records the
    /// server's certificate (see [`peer_certificate`]).
    pub fn client_trusting(&self, identity: Option<&Issued>) -> reqwest::Client {
        self.client_builder(identity).build().expect("HTTPS client")
    }

    /// A rustls client configuration that trusts only this CA and offers h2, then HTTP/1.1,
    /// by ALPN.
    pub fn rustls_client(&self) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(self.pem().as_bytes()).expect("CA PEM"))
            .expect("CA");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Arc::new(config)
    }

    /// [`TestCa::client_trusting`]'s builder, for tests that change more.
    pub fn client_builder(&self, identity: Option<&Issued>) -> reqwest::ClientBuilder {
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(
                reqwest::Certificate::from_pem(self.pem().as_bytes()).expect("CA PEM"),
            )
            .pool_max_idle_per_host(0)
            .tls_info(true)
            .timeout(Duration::from_secs(5));
        if let Some(issued) = identity {
            let pem = format!("{}{}", issued.cert_pem, issued.key_pem);
            builder =
                builder.identity(reqwest::Identity::from_pem(pem.as_bytes()).expect("identity"));
        }
        builder
    }
}

impl Issued {
    /// Writes the certificate and key to `cert` and `key` by rename, as a Kubernetes Secret
    /// volume or cert-manager replaces them.
    pub fn install(&self, cert: &Path, key: &Path) {
        write_atomically(cert, self.cert_pem.as_bytes());
        write_atomically(key, self.key_pem.as_bytes());
    }
}

/// Replaces `path` with `contents` by writing a sibling and renaming it over.
pub fn write_atomically(path: &Path, contents: &[u8]) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, contents).expect("write temporary file");
    std::fs::rename(&tmp, path).expect("rename over");
}

/// The DER of the certificate the server showed, from a client made by
/// [`TestCa::client_trusting`].
pub fn peer_certificate(response: &reqwest::Response) -> Vec<u8> {
    response
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|info| info.peer_certificate())
        .expect("TLS info with the peer certificate")
        .to_vec()
}

/// A bcrypt hash of `password`, at the lowest cost to keep tests fast.
pub fn bcrypt_hash(password: &str) -> String {
    bcrypt::hash(password, 4).expect("bcrypt hash")
}

/// A TLS connection to `addr` (as `localhost`) with `config`.
pub async fn tls_connect(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = ServerName::try_from("localhost").expect("name");
    tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
}

/// An HTTP/2 client connection: its request sender, and the task that drives it, which
/// ends when the connection has closed.
pub struct H2 {
    pub sender: http2::SendRequest<axum::body::Body>,
    pub driver: JoinHandle<()>,
}

/// HTTP/2 over TLS to `addr` with `config` (which must offer h2) and `client`'s settings;
/// fails if the server does not choose h2.
pub async fn h2_connect(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    client: &http2::Builder<TokioExecutor>,
) -> Result<H2, String> {
    let tls = tls_connect(addr, config)
        .await
        .map_err(|e| format!("TLS: {e}"))?;
    let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
    if alpn.as_deref() != Some(b"h2") {
        return Err(format!("ALPN chose {alpn:?}, not h2"));
    }
    let (sender, connection) = client
        .handshake(TokioIo::new(tls))
        .await
        .map_err(|e| format!("HTTP/2 handshake: {e}"))?;
    let driver = tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(H2 { sender, driver })
}

/// An HTTP/2 client's default settings.
pub fn h2_client() -> http2::Builder<TokioExecutor> {
    http2::Builder::new(TokioExecutor::new())
}

impl H2 {
    /// Sends a GET of `path` with `authorization` if given; the answer's head.
    pub async fn get(
        &mut self,
        path: &str,
        authorization: Option<&str>,
    ) -> Result<axum::http::Response<hyper::body::Incoming>, hyper::Error> {
        let mut request = axum::http::Request::get(format!("https://localhost{path}"));
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        let request = request.body(axum::body::Body::empty()).expect("request");
        self.sender.send_request(request).await
    }

    /// Whether the connection closes within `limit`.
    pub async fn closes_within(self, limit: Duration) -> bool {
        let H2 { sender, driver } = self;
        // Keep the sender: dropping it would let the client close the connection itself.
        let closed = tokio::time::timeout(limit, driver).await.is_ok();
        drop(sender);
        closed
    }
}
