//! The check of client certificates: rustls' verification against the client CA, and on
//! top, as the toolkit does, two things rustls does not do.
//!
//! - A client certificate that is byte for byte one of the configured client CAs is
//!   accepted (Go accepts a self-signed client certificate that is itself the client CA;
//!   rustls refuses a CA certificate as an end entity). Only its validity period and its
//!   extended key usage (client authentication allowed, as Go checks) are checked then; the
//!   handshake still proves that the client holds its key. Anything else keeps rustls' full
//!   verification.
//! - `client_allowed_sans`: the verified certificate must carry one of the allowed SANs, and
//!   a client must then present one, even with `VerifyClientCertIfGiven` (Go's toolkit
//!   refuses a client without a certificate then, too: its SAN check fails on none).

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
        // rustls checks nothing of a client that sends no certificate when it is optional.
        self.inner.client_auth_mandatory() || self.allowed_sans.is_some()
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
            if super::x509::allows_client_auth(end_entity) != Some(true) {
                return Err(Error::InvalidCertificate(CertificateError::InvalidPurpose));
            }
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rcgen::{ExtendedKeyUsagePurpose as Eku, KeyPair};
    use rustls::server::WebPkiClientVerifier;
    use rustls::RootCertStore;

    use super::*;

    /// 2030-01-01: within the validity of every certificate below.
    const NOW: u64 = 1_893_456_000;

    struct Ca {
        cert: rcgen::Certificate,
        key: KeyPair,
    }

    fn params(names: &[&str], usages: Vec<Eku>) -> rcgen::CertificateParams {
        let names = names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        let mut params = rcgen::CertificateParams::new(names).unwrap();
        params.not_before = rcgen::date_time_ymd(2021, 3, 4);
        params.not_after = rcgen::date_time_ymd(2072, 6, 25);
        params.extended_key_usages = usages;
        params
    }

    fn ca() -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = params(&[], vec![]);
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).unwrap();
        Ca { cert, key }
    }

    fn issued(ca: &Ca, names: &[&str]) -> CertificateDer<'static> {
        let key = KeyPair::generate().unwrap();
        let cert = params(names, vec![Eku::ClientAuth])
            .signed_by(&key, &ca.cert, &ca.key)
            .unwrap();
        cert.der().clone()
    }

    fn self_signed(names: &[&str], usages: Vec<Eku>) -> CertificateDer<'static> {
        let key = KeyPair::generate().unwrap();
        params(names, usages)
            .self_signed(&key)
            .unwrap()
            .der()
            .clone()
    }

    /// The check as `tls::server_config` builds it for a client CA file holding `cas`.
    fn check(
        cas: &[CertificateDer<'static>],
        sans: Option<&[&str]>,
        optional: bool,
    ) -> ClientCheck {
        let mut roots = RootCertStore::empty();
        for ca in cas {
            roots.add(ca.clone()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
        let builder = if optional {
            builder.allow_unauthenticated()
        } else {
            builder
        };
        ClientCheck {
            inner: builder.build().unwrap(),
            pinned: cas.to_vec(),
            allowed_sans: sans.map(|s| s.iter().map(|n| n.to_string()).collect()),
        }
    }

    fn verify(check: &ClientCheck, cert: &CertificateDer<'_>, at: u64) -> Result<(), Error> {
        let now = UnixTime::since_unix_epoch(Duration::from_secs(at));
        check.verify_client_cert(cert, &[], now).map(|_| ())
    }

    fn refusal(result: Result<(), Error>) -> CertificateError {
        match result {
            Err(Error::InvalidCertificate(e)) => e,
            other => panic!("not a certificate refusal: {other:?}"),
        }
    }

    #[test]
    fn a_pinned_certificate_is_taken_within_its_validity_only() {
        let pinned = self_signed(&["client"], vec![Eku::ClientAuth]);
        let check = check(std::slice::from_ref(&pinned), None, false);
        assert_eq!(verify(&check, &pinned, NOW), Ok(()));
        // 2021-03-03 and 2072-06-26.
        let before = refusal(verify(&check, &pinned, 1_614_729_600));
        assert_eq!(before, CertificateError::NotValidYet);
        let after = refusal(verify(&check, &pinned, 3_234_124_800));
        assert_eq!(after, CertificateError::Expired);
        // Another self-signed certificate is not pinned: rustls' verification refuses it.
        let stranger = self_signed(&["client"], vec![Eku::ClientAuth]);
        assert!(verify(&check, &stranger, NOW).is_err());
    }

    #[test]
    fn a_pinned_certificate_needs_a_client_auth_usage_as_in_go() {
        for (usages, taken) in [
            (vec![], true),
            (vec![Eku::Any], true),
            (vec![Eku::ClientAuth, Eku::ServerAuth], true),
            (vec![Eku::ServerAuth], false),
            (vec![Eku::CodeSigning], false),
        ] {
            let pinned = self_signed(&["client"], usages.clone());
            let result = verify(
                &check(std::slice::from_ref(&pinned), None, false),
                &pinned,
                NOW,
            );
            if taken {
                assert_eq!(result, Ok(()), "{usages:?}");
            } else {
                assert_eq!(
                    refusal(result),
                    CertificateError::InvalidPurpose,
                    "{usages:?}"
                );
            }
        }
    }

    #[test]
    fn allowed_sans_on_the_ca_signed_path_and_the_pinned_one() {
        let ca = ca();
        let cas = [ca.cert.der().clone()];
        let client = issued(&ca, &["prometheus.example.net"]);
        assert_eq!(verify(&check(&cas, None, false), &client, NOW), Ok(()));
        let allowed = check(
            &cas,
            Some(&["other.example.net", "prometheus.example.net"]),
            false,
        );
        assert_eq!(verify(&allowed, &client, NOW), Ok(()));
        let others = check(&cas, Some(&["other.example.net"]), false);
        match refusal(verify(&others, &client, NOW)) {
            CertificateError::NotValidForNameContext { presented, .. } => {
                assert_eq!(presented, ["prometheus.example.net"]);
            }
            e => panic!("{e:?}"),
        }
        // A certificate with no SAN at all.
        let bare = issued(&ca, &[]);
        assert!(verify(&others, &bare, NOW).is_err());
        // The pinned path checks the SANs too.
        let pinned = self_signed(&["test3"], vec![Eku::ClientAuth]);
        assert!(verify(
            &check(std::slice::from_ref(&pinned), Some(&["test4"]), false),
            &pinned,
            NOW
        )
        .is_err());
        assert_eq!(
            verify(
                &check(std::slice::from_ref(&pinned), Some(&["test3"]), false),
                &pinned,
                NOW
            ),
            Ok(())
        );
    }

    #[test]
    fn allowed_sans_make_a_client_certificate_mandatory() {
        let cas = [ca().cert.der().clone()];
        assert!(!check(&cas, None, true).client_auth_mandatory());
        assert!(check(&cas, Some(&["a"]), true).client_auth_mandatory());
        assert!(check(&cas, None, false).client_auth_mandatory());
    }
}
