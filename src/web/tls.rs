//! A rustls [`ServerConfig`] from validated [`TlsSettings`]: reads the PEM files, checks that
//! key and certificate belong together, and sets the versions and client verification.
//! rustls with the `ring` provider: no OpenSSL anywhere.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::danger::ClientCertVerifier;
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, SupportedProtocolVersion};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tracing::warn;

use super::client_check::ClientCheck;
use super::config::{ClientAuth, Invalid, Pem, TlsSettings, TlsVersion};

/// Builds the server side of TLS, offering HTTP/2 by ALPN if `http2`. The error is one line
/// naming the key or file at fault.
pub fn server_config(tls: &TlsSettings, http2: bool) -> Result<Arc<ServerConfig>, Invalid> {
    let mut provider = rustls::crypto::ring::default_provider();
    let tls12_only = tls.max_version == TlsVersion::Tls12;
    let narrowed =
        super::suites::narrow(&mut provider, &tls.cipher_suites, &tls.curves, tls12_only)?;
    if !narrowed.left_out.is_empty() {
        warn!(
            left_out = %narrowed.left_out.join(","),
            "tls_server_config: cipher suites the exporter's TLS library (rustls) does not have are left out; clients that need them cannot connect"
        );
    }
    let provider = Arc::new(provider);
    let versions: Vec<&'static SupportedProtocolVersion> = [
        (TlsVersion::Tls12, &rustls::version::TLS12),
        (TlsVersion::Tls13, &rustls::version::TLS13),
    ]
    .into_iter()
    .filter(|(v, _)| (tls.min_version..=tls.max_version).contains(v))
    .map(|(_, version)| version)
    .collect();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| format!("tls_server_config: {e}"))?;
    let builder = match &tls.client_auth {
        ClientAuth::None => builder.with_no_client_auth(),
        ClientAuth::VerifyIfGiven(ca) | ClientAuth::RequireAndVerify(ca) => {
            let optional = matches!(tls.client_auth, ClientAuth::VerifyIfGiven(_));
            builder.with_client_cert_verifier(client_check(tls, ca.as_ref(), &provider, optional)?)
        }
    };
    let certs = certificates(&tls.cert, "cert")?;
    let key = private_key(&tls.key)?;
    let mut config = builder.with_single_cert(certs, key).map_err(|e| {
        format!(
            "tls_server_config: {} and {} do not make a usable certificate: {e}",
            describe(&tls.cert, "cert"),
            describe(&tls.key, "key")
        )
    })?;
    config.ignore_client_order = tls.prefer_server_cipher_suites;
    config.alpn_protocols = if http2 {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    Ok(Arc::new(config))
}

/// The client certificate check: against `ca`, or the system's roots without one (as Go
/// does), with the toolkit's extras (see [`ClientCheck`]).
fn client_check(
    tls: &TlsSettings,
    ca: Option<&Pem>,
    provider: &Arc<CryptoProvider>,
    optional: bool,
) -> Result<Arc<dyn ClientCertVerifier>, Invalid> {
    let (roots, pinned) = match ca {
        Some(ca) => {
            let certs = certificates(ca, "client_ca").map_err(|e| format!("client CA {e}"))?;
            let mut roots = RootCertStore::empty();
            for cert in &certs {
                roots
                    .add(cert.clone())
                    .map_err(|e| format!("client CA {}: {e}", describe(ca, "client_ca")))?;
            }
            (roots, certs)
        }
        None => {
            warn!("tls_server_config: client_auth_type without client_ca_file or client_ca: client certificates are verified against the system's CA store, so any public CA vouches for clients; set client_ca_file to your own CA");
            (crate::api::tls::system_roots(), Vec::new())
        }
    };
    let builder = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
    let builder = if optional {
        builder.allow_unauthenticated()
    } else {
        builder
    };
    let inner = builder
        .build()
        .map_err(|e| format!("tls_server_config: client CA: {e}"))?;
    Ok(Arc::new(ClientCheck {
        inner,
        pinned,
        allowed_sans: tls.client_allowed_sans.clone(),
    }))
}

fn certificates(pem: &Pem, key: &str) -> Result<Vec<CertificateDer<'static>>, Invalid> {
    let bytes = read(pem, key)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: {e}", describe(pem, key)))?;
    if certs.is_empty() {
        return Err(format!("{}: no PEM certificate found", describe(pem, key)).into());
    }
    Ok(certs)
}

fn private_key(pem: &Pem) -> Result<PrivateKeyDer<'static>, Invalid> {
    let bytes = read(pem, "key")?;
    // The error says nothing of the key's content.
    PrivateKeyDer::from_pem_slice(&bytes)
        .map_err(|_| format!("{}: no PEM private key found", describe(pem, "key")).into())
}

fn read(pem: &Pem, key: &str) -> Result<Vec<u8>, Invalid> {
    match pem {
        Pem::Inline(text) => Ok(text.as_bytes().to_vec()),
        Pem::File(path) => crate::files::read_regular(path, super::MAX_FILE_BYTES)
            .map_err(|e| format!("{}: cannot read: {e}", describe(pem, key)).into()),
    }
}

/// `cert_file /etc/x.crt` or `inline cert`, for error messages.
fn describe(pem: &Pem, key: &str) -> String {
    match pem {
        Pem::File(path) => format!("{key}_file {}", path.display()),
        Pem::Inline(_) => format!("inline {key}"),
    }
}
