//! Client certificates seen from a client: a pinned self-signed certificate presented with
//! another key, outside its validity or without a client-auth usage; `client_allowed_sans`
//! on the CA-signed path, and with `VerifyClientCertIfGiven` a client that sends none.

use std::sync::Arc;

use rustls::client::ResolvesClientCert;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

use crate::helpers::*;

/// The exporter behind TLS with the client check `client` (YAML lines under
/// `tls_server_config`) and the client CA file `clients.crt` holding `client_ca`.
async fn exporter(ca: &TestCa, client_ca: &str, client: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (cert, key) = (dir.path().join("server.crt"), dir.path().join("server.key"));
    ca.server("exporter").install(&cert, &key);
    write_atomically(&dir.path().join("clients.crt"), client_ca.as_bytes());
    let yaml = format!(
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_ca_file: clients.crt\n{client}"
    );
    let path = dir.path().join("web.yml");
    write_atomically(&path, yaml.as_bytes());
    let (addr, stop) = spawn_protected_server(Limits::default(), &path).await;
    // The server runs until the test ends.
    std::mem::forget(stop);
    (dir, format!("https://127.0.0.1:{}/healthz", addr.port()))
}

/// Whether `client` gets a 200 from `url`.
async fn served(client: reqwest::Client, url: &str) -> bool {
    match client.get(url).send().await {
        Ok(response) => response.status() == 200,
        Err(_) => false,
    }
}

/// A client certificate resolver that presents a given chain and key, matching or not.
#[derive(Debug)]
struct Present(Arc<CertifiedKey>);

impl ResolvesClientCert for Present {
    fn resolve(&self, _: &[&[u8]], _: &[rustls::SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// A client trusting `ca` that presents `cert` and signs with `key`.
fn presenting(ca: &TestCa, cert: &str, key: &str) -> reqwest::Client {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).expect("key PEM");
    let signer = provider
        .key_provider
        .load_private_key(key)
        .expect("signing key");
    let chain = vec![CertificateDer::from_pem_slice(cert.as_bytes()).expect("certificate PEM")];
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.pem().as_bytes()).expect("CA PEM"))
        .expect("CA");
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_client_cert_resolver(Arc::new(Present(Arc::new(CertifiedKey::new(
            chain, signer,
        )))));
    reqwest::Client::builder()
        .use_preconfigured_tls(config)
        .pool_max_idle_per_host(0)
        .timeout(std::time::Duration::from_secs(5))
        .build()
        .expect("HTTPS client")
}

#[tokio::test]
async fn a_pinned_certificate_proves_its_key() {
    let ca = TestCa::new("server CA");
    let pinned = TestCa::new("prometheus").identity();
    let check = "  client_auth_type: RequireAndVerifyClientCert\n";
    let (_dir, url) = exporter(&ca, &pinned.cert_pem, check).await;
    assert!(served(presenting(&ca, &pinned.cert_pem, &pinned.key_pem), &url).await);
    // The pinned certificate, but a signature made with another key.
    let other = rcgen::KeyPair::generate().expect("key").serialize_pem();
    assert!(!served(presenting(&ca, &pinned.cert_pem, &other), &url).await);
}

#[tokio::test]
async fn allowed_sans_refuse_other_names_and_a_missing_certificate() {
    let ca = TestCa::new("server CA");
    let clients = TestCa::new("client CA");
    let check = "  client_auth_type: VerifyClientCertIfGiven\n  client_allowed_sans: [prometheus.example.net]\n";
    let (_dir, url) = exporter(&ca, &clients.pem(), check).await;
    let allowed = clients.client_for("prometheus", &["prometheus.example.net"]);
    assert!(served(ca.client_trusting(Some(&allowed)), &url).await);
    let other = clients.client_for("grafana", &["grafana.example.net"]);
    assert!(!served(ca.client_trusting(Some(&other)), &url).await);
    // No certificate: nothing to check the SANs of, so refused (as the toolkit does).
    assert!(!served(ca.client_trusting(None), &url).await);
}

#[tokio::test]
async fn a_pinned_certificate_for_servers_only_is_refused() {
    let ca = TestCa::new("server CA");
    let server_only = TestCa::new("server CA 2").server("exporter");
    let check = "  client_auth_type: RequireAndVerifyClientCert\n";
    let (_dir, url) = exporter(&ca, &server_only.cert_pem, check).await;
    let client = presenting(&ca, &server_only.cert_pem, &server_only.key_pem);
    assert!(!served(client, &url).await);
}
