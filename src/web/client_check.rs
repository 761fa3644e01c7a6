//! The check of client certificates: rustls' verification against the client CA, and on
//! top, as the toolkit does, two things rustls does not do.
//!
//! - A client certificate that is byte for byte one of the configured client CAs is
//!   accepted (Go accepts a self-signed client certificate that is itself the client CA;
//!   rustls refuses a CA certificate as an end entity). Only its validity period is checked
//!   then; the handshake still proves that the client holds its key. Anything else keeps
//!   rustls' full verification.
//! - `client_allowed_sans`: the verified certificate must carry one of the allowed SANs.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, Error, SignatureScheme};
use rustls_pki_types::{CertificateDer, UnixTime};

#[derive(Debug)]
pub struct ClientCheck {
    pub inner: Arc<dyn ClientCertVerifier>,
    /// The configured client CAs (none with the system's roots).
    pub pinned: Vec<CertificateDer<'static>>,
    pub allowed_sans: Option<Vec<String>>,
}

impl ClientCertVerifier for ClientCheck {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        if self
            .pinned
            .iter()
            .any(|ca| ca.as_ref() == end_entity.as_ref())
        {
            within_validity(end_entity, now)?;
        } else {
            self.inner
                .verify_client_cert(end_entity, intermediates, now)?;
        }
        if let Some(allowed) = &self.allowed_sans {
            let names = super::x509::subject_alt_names(end_entity)
                .ok_or(Error::InvalidCertificate(CertificateError::BadEncoding))?;
            if !names.iter().any(|name| allowed.contains(name)) {
                // The log line then names an allowed SAN and those the certificate has.
                let expected = allowed
                    .iter()
                    .find_map(|name| rustls_pki_types::ServerName::try_from(name.clone()).ok());
                return Err(Error::InvalidCertificate(match expected {
                    Some(expected) => CertificateError::NotValidForNameContext {
                        expected,
                        presented: names,
                    },
                    None => CertificateError::NotValidForName,
                }));
            }
        }
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

fn within_validity(cert: &CertificateDer<'_>, now: UnixTime) -> Result<(), Error> {
    let (not_before, not_after) = super::x509::validity(cert)
        .ok_or(Error::InvalidCertificate(CertificateError::BadEncoding))?;
    let now = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
    if now < not_before {
        return Err(Error::InvalidCertificate(CertificateError::NotValidYet));
    }
    if now > not_after {
        return Err(Error::InvalidCertificate(CertificateError::Expired));
    }
    Ok(())
}
