//! Whom the client trusts for the API's certificate, and telling a refused certificate apart
//! from other connection failures.
//!
//! Trusted: the system's store (as OpenSSL finds it, or `SSL_CERT_FILE` and `SSL_CERT_DIR`
//! when set), Mozilla's roots built in where the system has none (a `scratch` image), and
//! the certificates of `--api-ca-file` (a corporate TLS-inspection CA). All of it is read
//! once, when the client is built.

use std::error::Error as StdError;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::{CertificateError, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use tracing::{debug, warn};

/// Largest `--api-ca-file` read: a bundle of every public CA is about 220 KiB.
const MAX_CA_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// An `--api-ca-file` that cannot be used: what is wrong with which file.
#[derive(Debug, thiserror::Error)]
#[error("{}: {problem}", path.display())]
pub struct CaFileError {
    path: PathBuf,
    problem: String,
}

/// The TLS set-up of the API client: the roots described above; no client certificate.
pub(super) fn client_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, CaFileError> {
    let extra = ca_file.map(read_ca_file).transpose()?;
    let mut roots = system_roots();
    if let Some((path, certs)) = extra {
        let count = certs.len();
        for (n, cert) in certs.into_iter().enumerate() {
            roots.add(cert).map_err(|e| CaFileError {
                path: path.to_owned(),
                problem: format!("certificate {} of {count} cannot be trusted: {e}", n + 1),
            })?;
        }
        debug!(file = %path.display(), certificates = count, "trusting --api-ca-file");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring offers TLS 1.2 and 1.3")
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// The system's CA certificates, or Mozilla's where it has none.
pub(crate) fn system_roots() -> RootCertStore {
    let found = rustls_native_certs::load_native_certs();
    for error in &found.errors {
        warn!(%error, "cannot read part of the system's certificate store (check SSL_CERT_FILE and SSL_CERT_DIR)");
    }
    let mut roots = RootCertStore::empty();
    // A system bundle may hold a certificate rustls cannot use: that one is skipped.
    let (added, skipped) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        debug!(
            certificates = roots.len(),
            "no system certificate store; trusting Mozilla's roots built in"
        );
    } else {
        debug!(
            certificates = added,
            skipped, "trusting the system's certificate store"
        );
    }
    roots
}

/// The certificates of a PEM file: a regular file of at most [`MAX_CA_FILE_BYTES`] with at
/// least one certificate.
fn read_ca_file(path: &Path) -> Result<(&Path, Vec<CertificateDer<'static>>), CaFileError> {
    let fail = |problem: String| CaFileError {
        path: path.to_owned(),
        problem,
    };
    // Only a regular file (through symlinks, as Kubernetes mounts them), opened without
    // blocking: a FIFO or a device would hold start-up forever.
    let bytes = crate::files::read_regular(path, MAX_CA_FILE_BYTES)
        .map_err(|e| fail(format!("cannot read it: {e}")))?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail(format!("is not valid PEM: {e}")))?;
    if certs.is_empty() {
        return Err(fail(
            "holds no PEM certificate (-----BEGIN CERTIFICATE-----)".to_owned(),
        ));
    }
    Ok((path, certs))
}

/// Why the API's certificate was refused, if that is what made `error` (a failed request)
/// fail: rustls' verdict, found anywhere along the chain of sources.
pub(super) fn refused_certificate<'e>(
    error: &'e (dyn StdError + 'static),
) -> Option<&'e CertificateError> {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(rustls::Error::InvalidCertificate(refused)) = e.downcast_ref() {
            return Some(refused);
        }
        // An `io::Error` hides the error it wraps from `source()`: look inside.
        next = match e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn StdError + 'static)),
            None => e.source(),
        };
    }
    None
}

/// What to look at for a refused certificate, besides trusting another CA.
pub(super) fn hint(refused: &CertificateError) -> &'static str {
    use CertificateError as C;
    match refused {
        C::Expired | C::ExpiredContext { .. } | C::NotValidYet | C::NotValidYetContext { .. } => {
            "check this host's clock; if a proxy inspects TLS, its certificate needs renewing"
        }
        C::NotValidForName | C::NotValidForNameContext { .. } => {
            "check the host name in --base-url; a TLS-inspecting proxy must issue its \
             certificates for that name"
        }
        C::UnknownIssuer => "it is not signed by a CA this host trusts",
        _ => "the certificate or its chain is not acceptable",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wrapped(refused: CertificateError) -> Box<dyn StdError + Send + Sync> {
        // As hyper and reqwest wrap it: rustls' error inside an io::Error, inside another.
        let io = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::from(refused),
        );
        Box::new(std::io::Error::other(io))
    }

    #[test]
    fn a_refused_certificate_is_found_inside_io_errors() {
        for (refused, says) in [
            (CertificateError::UnknownIssuer, "not signed by a CA"),
            (CertificateError::Expired, "clock"),
            (CertificateError::NotValidForName, "--base-url"),
            (CertificateError::BadSignature, "not acceptable"),
        ] {
            let error = wrapped(refused.clone());
            let found = refused_certificate(error.as_ref()).expect("found");
            assert_eq!(found, &refused);
            assert!(hint(found).contains(says), "{refused:?}: {}", hint(found));
        }
    }

    #[test]
    fn other_failures_are_not_certificate_errors() {
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert!(refused_certificate(&refused).is_none());
        let handshake = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::AlertReceived(rustls::AlertDescription::HandshakeFailure),
        );
        assert!(refused_certificate(&handshake).is_none());
    }

    #[test]
    fn a_ca_file_must_hold_a_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let err = client_config(Some(&missing)).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("{}: cannot read it: ", missing.display())),
            "{err}"
        );
        let key_only = dir.path().join("key.pem");
        std::fs::write(
            &key_only,
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        let err = client_config(Some(&key_only)).unwrap_err().to_string();
        assert!(
            err.ends_with(": holds no PEM certificate (-----BEGIN CERTIFICATE-----)"),
            "{err}"
        );
        let garbled = dir.path().join("garbled.pem");
        std::fs::write(
            &garbled,
            "-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let err = client_config(Some(&garbled)).unwrap_err().to_string();
        assert!(err.contains("is not valid PEM"), "{err}");
        let not_x509 = dir.path().join("not-x509.pem");
        std::fs::write(
            &not_x509,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let err = client_config(Some(&not_x509)).unwrap_err().to_string();
        assert!(
            err.contains(": certificate 1 of 1 cannot be trusted: "),
            "{err}"
        );
        let err = client_config(Some(dir.path())).unwrap_err().to_string();
        assert!(
            err.contains(": cannot read it: not a regular file"),
            "{err}"
        );
        assert!(client_config(None).is_ok());
    }
}
