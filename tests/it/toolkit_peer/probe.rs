//! The toolkit's clients, replayed: a plain HTTP/1.1 request, or one over a rustls client
//! set as the case's Go `tls.Config` is. What rustls cannot offer (TLS 1.1, CBC suites) is
//! sent as a hand-made ClientHello, and the server's alert read back.

use std::net::SocketAddr;
use std::sync::Arc;

use base64::Engine;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{testdata, Client, TlsClient};
use crate::helpers::ANSWER_TIMEOUT;

pub enum Answer {
    /// Status, and the TLS 1.2 cipher suite negotiated.
    Status(u16, Option<u16>),
    /// The 400 for plain HTTP sent to the TLS listener.
    PlainToTls,
}

/// One `GET /metrics`; an error is the client's (a failed handshake, a closed connection).
pub async fn request(
    addr: SocketAddr,
    client: &Client,
    user: Option<(&str, &str)>,
) -> Result<Answer, String> {
    tokio::time::timeout(ANSWER_TIMEOUT, exchange(addr, client, user))
        .await
        .unwrap_or_else(|_| Err("no answer in time".into()))
}

async fn exchange(
    addr: SocketAddr,
    client: &Client,
    user: Option<(&str, &str)>,
) -> Result<Answer, String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let spec = match client {
        Client::Plain => {
            let head = http_get(tcp, user).await?;
            if head.starts_with("HTTP/1.1 400") && head.contains("HTTP request to an HTTPS server")
            {
                return Ok(Answer::PlainToTls);
            }
            return Ok(Answer::Status(status(&head)?, None));
        }
        Client::Tls(spec) => spec,
    };
    if spec.max_tls11 || spec.ciphers.iter().any(|c| rustls_suite(*c).is_none()) {
        return Err(raw_hello(tcp, spec).await);
    }
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config(spec)?));
    let name = ServerName::try_from("localhost").expect("server name");
    let tls = connector
        .connect(name, tcp)
        .await
        .map_err(|e| format!("handshake: {}", chain(&e)))?;
    let suite = tls
        .get_ref()
        .1
        .negotiated_cipher_suite()
        .map(|s| u16::from(s.suite()));
    let head = http_get(tls, user).await?;
    Ok(Answer::Status(status(&head)?, suite))
}

/// Sends the request, reads the answer to its end; returns it as text.
async fn http_get<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    user: Option<(&str, &str)>,
) -> Result<String, String> {
    let auth = user.map_or(String::new(), |(u, p)| {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
        format!("Authorization: Basic {token}\r\n")
    });
    let request =
        format!("GET /metrics HTTP/1.1\r\nHost: localhost\r\n{auth}Connection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("write: {}", chain(&e)))?;
    let mut answer = Vec::new();
    let read = stream.read_to_end(&mut answer).await;
    if answer.is_empty() {
        return Err(format!(
            "read: {}",
            read.err().map_or("no answer".into(), |e| chain(&e))
        ));
    }
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

fn status(head: &str) -> Result<u16, String> {
    head.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("not an HTTP answer: {head:.80}"))
}

/// An error with its sources, for matching on the rustls error inside.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(e) = source {
        text.push_str(&format!(": {e}"));
        source = e.source();
    }
    text
}

fn rustls_suite(id: u16) -> Option<rustls::SupportedCipherSuite> {
    rustls::crypto::ring::ALL_CIPHER_SUITES
        .iter()
        .copied()
        .find(|s| u16::from(s.suite()) == id)
}

/// Go's client: trusts the toolkit's CA chain; TLS 1.3 suites always on, `CipherSuites`
/// limiting TLS 1.2; `CurvePreferences` limiting the groups; the certificate if any.
fn client_config(spec: &TlsClient) -> Result<rustls::ClientConfig, String> {
    let mut provider = rustls::crypto::ring::default_provider();
    if !spec.ciphers.is_empty() {
        // Offered in the case's order, as Go's client orders AES-128 before AES-256.
        provider
            .cipher_suites
            .retain(|s| s.version() == &rustls::version::TLS13);
        provider
            .cipher_suites
            .extend(spec.ciphers.iter().filter_map(|id| rustls_suite(*id)));
    }
    if !spec.curves.is_empty() {
        // P-521, which ring lacks, from the exporter's own group, as Go's client offers it.
        provider.kx_groups.push(super::p521::SECP521R1);
        provider
            .kx_groups
            .retain(|g| spec.curves.contains(&u16::from(g.name())));
        if provider.kx_groups.is_empty() {
            return Err(format!(
                "the test client cannot offer groups {:?}",
                spec.curves
            ));
        }
    }
    let mut roots = rustls::RootCertStore::empty();
    for cert in
        CertificateDer::pem_file_iter(testdata().join("tls-ca-chain.pem")).expect("CA chain")
    {
        roots.add(cert.expect("CA PEM")).expect("CA");
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots);
    Ok(match spec.identity {
        None => builder.with_no_client_auth(),
        Some(name) => {
            let dir = testdata();
            let certs = CertificateDer::pem_file_iter(dir.join(format!("{name}.pem")))
                .expect("client certificate")
                .collect::<Result<Vec<_>, _>>()
                .expect("client certificate PEM");
            let key =
                PrivateKeyDer::from_pem_file(dir.join(format!("{name}.key"))).expect("client key");
            builder
                .with_client_auth_cert(certs, key)
                .expect("client identity")
        }
    })
}

/// A ClientHello rustls cannot send (TLS 1.1 at most, or TLS 1.2 with only the case's
/// suites); returns the server's answer: an alert, by rustls' name for it.
async fn raw_hello(mut tcp: TcpStream, spec: &TlsClient) -> String {
    let (version, suites): (u16, Vec<u16>) = if spec.max_tls11 {
        (0x0302, vec![0xc013, 0xc014, 0x002f, 0x0035])
    } else {
        (0x0303, spec.ciphers.to_vec())
    };
    let mut extensions = Vec::new();
    let mut ext = |kind: u16, body: &[u8]| {
        extensions.extend(kind.to_be_bytes());
        extensions.extend((body.len() as u16).to_be_bytes());
        extensions.extend(body);
    };
    ext(
        0x0000,
        &[
            0, 12, 0, 0, 9, b'l', b'o', b'c', b'a', b'l', b'h', b'o', b's', b't',
        ],
    );
    ext(0x000a, &[0, 6, 0, 29, 0, 23, 0, 24]);
    ext(0x000b, &[1, 0]);
    ext(0x000d, &[0, 6, 0x04, 0x01, 0x08, 0x04, 0x04, 0x03]);
    let mut hello = version.to_be_bytes().to_vec();
    hello.extend([7u8; 32]);
    hello.push(0);
    hello.extend((suites.len() as u16 * 2).to_be_bytes());
    suites.iter().for_each(|s| hello.extend(s.to_be_bytes()));
    hello.extend([1, 0]);
    hello.extend((extensions.len() as u16).to_be_bytes());
    hello.extend(extensions);
    let mut handshake = vec![1, 0];
    handshake.extend((hello.len() as u16).to_be_bytes());
    handshake.extend(hello);
    let mut record = vec![0x16, 0x03, 0x01];
    record.extend((handshake.len() as u16).to_be_bytes());
    record.extend(handshake);
    if let Err(e) = tcp.write_all(&record).await {
        return format!("write: {e}");
    }
    let mut answer = [0u8; 7];
    match tcp.read_exact(&mut answer).await {
        Ok(_) if answer[0] == 0x15 => format!("received fatal alert: {}", alert(answer[6])),
        Ok(_) => format!("no alert but {answer:?}: handshake went on"),
        Err(e) => format!("read: {e}"),
    }
}

fn alert(code: u8) -> String {
    match code {
        40 => "HandshakeFailure".into(),
        70 => "ProtocolVersion".into(),
        71 => "InsufficientSecurity".into(),
        other => format!("alert {other}"),
    }
}
