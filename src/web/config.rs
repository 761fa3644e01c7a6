//! The web configuration file, in the format of the Prometheus exporter-toolkit
//! (`--web.config.file` of node_exporter and friends): parsed and validated here, with no I/O
//! beyond what the caller hands in, so every rule is unit-tested on plain strings.
//!
//! What the format has and this exporter does not do is refused by name rather than skipped,
//! so that a file never promises a protection the exporter does not give.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use axum::http::{HeaderName, HeaderValue};
use serde::Deserialize;

pub use super::rate::RateLimit;
pub use super::suites::{Cipher, Curve};

/// Why a web configuration cannot be used: one line naming the key or file at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(String);

impl From<String> for Invalid {
    fn from(problem: String) -> Self {
        Self(problem)
    }
}

impl From<&str> for Invalid {
    fn from(problem: &str) -> Self {
        Self(problem.to_owned())
    }
}

/// A validated web configuration.
#[derive(Clone, Default)]
pub struct WebFile {
    /// `None`: plain HTTP.
    pub tls: Option<TlsSettings>,
    /// User name to bcrypt hash; empty means no basic auth.
    pub users: BTreeMap<String, String>,
    /// Extra response headers, already checked against the toolkit's allow-list.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// `http_server_config.http2`: offer HTTP/2 (ALPN `h2`) over TLS; on by default.
    pub http2: bool,
    /// `rate_limit`; `None`: no limit.
    pub rate_limit: Option<RateLimit>,
}

impl WebFile {
    /// The files this configuration reads (certificates, key, client CA), for change detection.
    pub fn files(&self) -> Vec<PathBuf> {
        let Some(tls) = &self.tls else {
            return Vec::new();
        };
        let mut pems = vec![&tls.cert, &tls.key];
        match &tls.client_auth {
            ClientAuth::None => {}
            ClientAuth::VerifyIfGiven(ca) | ClientAuth::RequireAndVerify(ca) => pems.extend(ca),
        }
        pems.into_iter()
            .filter_map(|pem| match pem {
                Pem::File(path) => Some(path.clone()),
                Pem::Inline(_) => None,
            })
            .collect()
    }
}

impl fmt::Debug for WebFile {
    // Names only: the hashes and an inline key stay out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebFile")
            .field("tls", &self.tls)
            .field("users", &self.users.keys().collect::<Vec<_>>())
            .field("headers", &self.headers)
            .field("http2", &self.http2)
            .field("rate_limit", &self.rate_limit)
            .finish()
    }
}

/// The listener's TLS settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    pub cert: Pem,
    pub key: Pem,
    pub client_auth: ClientAuth,
    pub min_version: TlsVersion,
    pub max_version: TlsVersion,
    /// Choose the cipher suite by the server's order rather than the client's.
    pub prefer_server_cipher_suites: bool,
    /// TLS 1.2 suites allowed, in the server's order; empty: rustls' defaults.
    pub cipher_suites: Vec<Cipher>,
    /// Key exchange groups allowed, in order; empty: rustls' defaults.
    pub curves: Vec<Curve>,
    /// `client_allowed_sans`: a client certificate must carry one of these SANs (DNS name,
    /// e-mail address, IP address or URI, compared as text, as the toolkit does).
    pub client_allowed_sans: Option<Vec<String>>,
}

/// PEM text, from a file (re-read when it changes) or inline in the web configuration.
#[derive(Clone, PartialEq, Eq)]
pub enum Pem {
    File(PathBuf),
    Inline(String),
}

impl fmt::Debug for Pem {
    // An inline private key must never reach a log line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pem::File(path) => f.debug_tuple("File").field(path).finish(),
            Pem::Inline(_) => f.write_str("Inline(..)"),
        }
    }
}

/// Whether and how clients must show a certificate, and the CA it must chain to: the one
/// configured, or (`None`, as Go does without `client_ca_file`) the system's roots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientAuth {
    /// `NoClientCert`.
    None,
    /// `VerifyClientCertIfGiven`: a certificate is optional, but one that is sent must chain
    /// to the CA.
    VerifyIfGiven(Option<Pem>),
    /// `RequireAndVerifyClientCert`: mutual TLS.
    RequireAndVerify(Option<Pem>),
}

/// A TLS protocol version rustls speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    Tls12,
    Tls13,
}

/// Response headers the toolkit lets a web configuration set, with the values it allows
/// (`None`: any value). Kept the same so one file means the same thing everywhere.
const ALLOWED_HEADERS: [(&str, Option<&[&str]>); 5] = [
    ("Strict-Transport-Security", None),
    ("X-Content-Type-Options", Some(&["nosniff"])),
    ("X-Frame-Options", Some(&["deny", "sameorigin"])),
    ("X-XSS-Protection", None),
    ("Content-Security-Policy", None),
];

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawFile {
    tls_server_config: Option<RawTls>,
    http_server_config: Option<RawHttp>,
    basic_auth_users: Option<BTreeMap<String, String>>,
    rate_limit: Option<RawRateLimit>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawRateLimit {
    /// A Go duration (`1s`, `500ms`) or a number of nanoseconds (`0`).
    interval: Option<serde_norway::Value>,
    burst: Option<i64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert: Option<String>,
    key: Option<String>,
    client_ca: Option<String>,
    cert_file: Option<String>,
    key_file: Option<String>,
    client_ca_file: Option<String>,
    client_auth_type: Option<String>,
    min_version: Option<String>,
    max_version: Option<String>,
    prefer_server_cipher_suites: Option<bool>,
    cipher_suites: Option<Vec<String>>,
    curve_preferences: Option<Vec<String>>,
    client_allowed_sans: Option<Vec<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    http2: Option<bool>,
    headers: Option<BTreeMap<String, String>>,
}

/// Parses and validates the text of a web configuration. Relative file names are taken
/// relative to `dir`, the directory of the configuration file, as the toolkit does.
/// The error is one line, naming the key at fault.
pub fn parse(text: &str, dir: &Path) -> Result<WebFile, Invalid> {
    let raw: RawFile = if is_blank(text) {
        RawFile::default()
    } else {
        serde_norway::from_str::<Option<RawFile>>(text)
            .map_err(|e| one_line(&e.to_string()))?
            .unwrap_or_default()
    };
    let rate_limit = match raw.rate_limit {
        Some(limit) => rate_limit(limit)?,
        None => None,
    };
    let tls = match raw.tls_server_config {
        Some(tls) => parse_tls(tls, dir)?,
        None => None,
    };
    let http = raw.http_server_config.unwrap_or_default();
    let http2 = http.http2.unwrap_or(true);
    let headers = parse_http(http)?;
    if let Some(tls) = tls.as_ref().filter(|_| http2) {
        let tls12 = tls.min_version < TlsVersion::Tls13;
        super::suites::http2_check(&tls.cipher_suites, tls12)?;
    }
    let users = raw.basic_auth_users.unwrap_or_default();
    for (user, hash) in &users {
        if user.contains(':') {
            return Err(format!(
                "basic_auth_users: user name {user:?} contains ':', which basic auth cannot carry"
            )
            .into());
        }
        let Ok(parts) = bcrypt::HashParts::from_str(hash) else {
            return Err(format!(
                "basic_auth_users: the password of {user:?} is not a bcrypt hash \
                 (make one with `htpasswd -nBC 10 \"\" | tr -d ':\\n'`)"
            )
            .into());
        };
        // As Go's bcrypt.Cost, which the toolkit checks at start-up.
        if !(4..=31).contains(&parts.get_cost()) {
            return Err(format!(
                "basic_auth_users: the password hash of {user:?} has bcrypt cost {}, outside 4..31",
                parts.get_cost()
            )
            .into());
        }
    }
    Ok(WebFile {
        tls,
        users,
        headers,
        http2,
        rate_limit,
    })
}

fn rate_limit(raw: RawRateLimit) -> Result<Option<RateLimit>, Invalid> {
    super::rate::settings(raw.interval, raw.burst).map_err(Invalid::from)
}

fn parse_tls(raw: RawTls, dir: &Path) -> Result<Option<TlsSettings>, Invalid> {
    let cipher_suites = named_list("cipher_suites", raw.cipher_suites, "cipher", Cipher::named)?;
    let curves = named_list(
        "curve_preferences",
        raw.curve_preferences,
        "curve",
        Curve::named,
    )?;
    let cert = pem_source("cert", raw.cert, "cert_file", raw.cert_file, dir)?;
    let key = pem_source("key", raw.key, "key_file", raw.key_file, dir)?;
    let client_ca = pem_source(
        "client_ca",
        raw.client_ca,
        "client_ca_file",
        raw.client_ca_file,
        dir,
    )?;
    let client_auth_type = non_empty(raw.client_auth_type);
    let any_set = cert.is_some()
        || key.is_some()
        || client_ca.is_some()
        || client_auth_type.is_some()
        || non_empty(raw.min_version.clone()).is_some()
        || non_empty(raw.max_version.clone()).is_some()
        || raw.prefer_server_cipher_suites.is_some()
        || !cipher_suites.is_empty()
        || !curves.is_empty()
        || raw.client_allowed_sans.is_some();
    if !any_set {
        return Ok(None);
    }
    let cert = cert.ok_or("tls_server_config: missing one of cert or cert_file")?;
    let key = key.ok_or("tls_server_config: missing one of key or key_file")?;
    let client_auth = match (client_auth_type.as_deref(), client_ca) {
        (None | Some("NoClientCert"), None) => ClientAuth::None,
        (None | Some("NoClientCert"), Some(_)) => {
            return Err(
                "tls_server_config: a client CA is set but client_auth_type is \
                        NoClientCert; set client_auth_type: RequireAndVerifyClientCert"
                    .into(),
            )
        }
        (Some("VerifyClientCertIfGiven"), ca) => ClientAuth::VerifyIfGiven(ca),
        (Some("RequireAndVerifyClientCert"), ca) => ClientAuth::RequireAndVerify(ca),
        (Some(kind @ ("RequestClientCert" | "RequireAnyClientCert" | "RequireClientCert")), _) => {
            return Err(format!(
                "tls_server_config.client_auth_type {kind} is not supported by \
                 testsigma-exporter: it accepts client certificates nobody verified; use \
                 RequireAndVerifyClientCert with client_ca_file"
            )
            .into())
        }
        (Some(other), _) => {
            return Err(format!(
                "tls_server_config.client_auth_type {other:?} is not one of NoClientCert, \
                 VerifyClientCertIfGiven, RequireAndVerifyClientCert"
            )
            .into())
        }
    };
    if raw.client_allowed_sans.as_ref().is_some_and(Vec::is_empty) {
        return Err(
            "tls_server_config.client_allowed_sans is empty, which would refuse every \
                    client certificate; list the allowed SANs or remove the key"
                .into(),
        );
    }
    if raw.client_allowed_sans.is_some() && client_auth == ClientAuth::None {
        return Err(
            "tls_server_config: client_allowed_sans needs client_auth_type \
                    RequireAndVerifyClientCert (or VerifyClientCertIfGiven)"
                .into(),
        );
    }
    let min_version = tls_version("min_version", raw.min_version)?.unwrap_or(TlsVersion::Tls12);
    let max_version = tls_version("max_version", raw.max_version)?.unwrap_or(TlsVersion::Tls13);
    if min_version > max_version {
        return Err("tls_server_config: min_version is above max_version".into());
    }
    Ok(Some(TlsSettings {
        cert,
        key,
        client_auth,
        min_version,
        max_version,
        prefer_server_cipher_suites: raw.prefer_server_cipher_suites.unwrap_or(true),
        cipher_suites,
        curves,
        client_allowed_sans: raw.client_allowed_sans,
    }))
}

/// `cipher_suites` or `curve_preferences`: Go's names, an unknown one refused by name.
fn named_list<T>(
    key: &str,
    names: Option<Vec<String>>,
    what: &str,
    named: fn(&str) -> Option<T>,
) -> Result<Vec<T>, Invalid> {
    names
        .unwrap_or_default()
        .iter()
        .map(|name| {
            named(name)
                .ok_or_else(|| format!("tls_server_config.{key}: unknown {what} {name}").into())
        })
        .collect()
}

/// One of an inline PEM value and a file, as the toolkit allows, but not both.
fn pem_source(
    inline_key: &str,
    inline: Option<String>,
    file_key: &str,
    file: Option<String>,
    dir: &Path,
) -> Result<Option<Pem>, Invalid> {
    match (non_empty(inline), non_empty(file)) {
        (Some(_), Some(_)) => {
            Err(format!("tls_server_config: set {inline_key} or {file_key}, not both").into())
        }
        (Some(pem), None) => Ok(Some(Pem::Inline(pem))),
        (None, Some(file)) => Ok(Some(Pem::File(dir.join(file)))),
        (None, None) => Ok(None),
    }
}

fn tls_version(key: &str, raw: Option<String>) -> Result<Option<TlsVersion>, Invalid> {
    match non_empty(raw).as_deref() {
        None => Ok(None),
        Some("TLS12") => Ok(Some(TlsVersion::Tls12)),
        Some("TLS13") => Ok(Some(TlsVersion::Tls13)),
        // Refused rather than raised to 1.2 in silence: a file that asks for 1.0 expects old
        // clients to get in, and they would not.
        Some(old @ ("TLS10" | "TLS11")) => Err(format!(
            "tls_server_config.{key} {old} is not supported by testsigma-exporter: \
             rustls speaks only TLS12 and TLS13"
        )
        .into()),
        Some(other) => {
            Err(format!("tls_server_config.{key} {other:?} is not one of TLS12, TLS13").into())
        }
    }
}

fn parse_http(raw: RawHttp) -> Result<Vec<(HeaderName, HeaderValue)>, Invalid> {
    let mut headers = Vec::new();
    for (name, value) in raw.headers.unwrap_or_default() {
        let Some((_, allowed)) = ALLOWED_HEADERS.iter().find(|(n, _)| *n == name) else {
            return Err(format!(
                "http_server_config.headers: {name:?} can not be configured; allowed are {}",
                ALLOWED_HEADERS.map(|(n, _)| n).join(", ")
            )
            .into());
        };
        // Blank means unset, as in the toolkit.
        if value.is_empty() {
            continue;
        }
        if let Some(allowed) = allowed {
            if !allowed.contains(&value.as_str()) {
                return Err(format!(
                    "http_server_config.headers: {name} must be one of {}, not {value:?}",
                    allowed.join(", ")
                )
                .into());
            }
        }
        let value = HeaderValue::from_str(&value)
            .map_err(|_| format!("http_server_config.headers: {name} has an invalid value"))?;
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|e| e.to_string())?;
        headers.push((name, value));
    }
    Ok(headers)
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.is_empty())
}

/// Only comments and whitespace: the toolkit reads that as "no TLS, no auth".
pub fn is_blank(text: &str) -> bool {
    text.lines().all(|l| {
        let l = l.trim();
        l.is_empty() || l.starts_with('#')
    })
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash() -> String {
        bcrypt::hash("secret", 4).expect("bcrypt hash")
    }

    fn ok(text: &str) -> WebFile {
        parse(text, Path::new("/etc/exporter")).expect("valid web config")
    }

    fn err(text: &str) -> String {
        match parse(text, Path::new("/etc/exporter")) {
            Ok(cfg) => panic!("accepted: {cfg:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn empty_file_means_plain_http_without_auth() {
        for text in ["", "# nothing\n\n", "---\n", "tls_server_config:\n"] {
            let cfg = ok(text);
            assert!(cfg.tls.is_none() && cfg.users.is_empty() && cfg.headers.is_empty());
        }
    }

    #[test]
    fn full_tls_config_with_relative_and_absolute_files() {
        let cfg = ok("
tls_server_config:
  cert_file: tls/server.crt
  key_file: /keys/server.key
  client_auth_type: RequireAndVerifyClientCert
  client_ca_file: ca.crt
  min_version: TLS13
  max_version: TLS13
  prefer_server_cipher_suites: false
");
        let tls = cfg.tls.expect("tls");
        assert_eq!(
            tls,
            TlsSettings {
                cert: Pem::File("/etc/exporter/tls/server.crt".into()),
                key: Pem::File("/keys/server.key".into()),
                client_auth: ClientAuth::RequireAndVerify(Some(Pem::File(
                    "/etc/exporter/ca.crt".into()
                ))),
                min_version: TlsVersion::Tls13,
                max_version: TlsVersion::Tls13,
                prefer_server_cipher_suites: false,
                cipher_suites: Vec::new(),
                curves: Vec::new(),
                client_allowed_sans: None,
            }
        );
    }

    #[test]
    fn tls_defaults_follow_the_toolkit() {
        let tls = ok("tls_server_config: {cert_file: a, key_file: b}")
            .tls
            .unwrap();
        assert_eq!(tls.client_auth, ClientAuth::None);
        assert_eq!(
            (tls.min_version, tls.max_version),
            (TlsVersion::Tls12, TlsVersion::Tls13)
        );
        assert!(tls.prefer_server_cipher_suites);
        let both = ok("tls_server_config: {cert_file: a, key_file: b, client_ca_file: c, client_auth_type: VerifyClientCertIfGiven}");
        assert_eq!(
            both.files(),
            [
                PathBuf::from("/etc/exporter/a"),
                "/etc/exporter/b".into(),
                "/etc/exporter/c".into()
            ]
        );
    }

    #[test]
    fn inline_pem_is_accepted_and_hidden_from_debug() {
        let cfg = ok("tls_server_config:\n  cert: |\n    -----BEGIN CERTIFICATE-----\n  key: |\n    SECRETKEYTEXT\n");
        let tls = cfg.tls.as_ref().unwrap();
        assert!(matches!(tls.key, Pem::Inline(ref k) if k.contains("SECRETKEYTEXT")));
        assert!(cfg.files().is_empty());
        assert!(!format!("{cfg:?}").contains("SECRETKEYTEXT"));
    }

    #[test]
    fn users_and_headers() {
        let hash = hash();
        let cfg = ok(&format!(
            "basic_auth_users:\n  prometheus: '{hash}'\nhttp_server_config:\n  http2: false\n  headers:\n    X-Frame-Options: deny\n    Strict-Transport-Security: max-age=31536000\n    X-XSS-Protection: ''\n"
        ));
        assert_eq!(
            cfg.users.get("prometheus").map(String::as_str),
            Some(hash.as_str())
        );
        assert!(!format!("{cfg:?}").contains(&hash));
        let headers: Vec<_> = cfg
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.to_str().unwrap()))
            .collect();
        assert_eq!(
            headers,
            [
                ("strict-transport-security", "max-age=31536000"),
                ("x-frame-options", "deny")
            ]
        );
    }

    #[test]
    fn mistakes_are_named() {
        for (text, expected) in [
            ("tls_server_config: {cert_file: a}", "missing one of key or key_file"),
            ("tls_server_config: {key_file: a}", "missing one of cert or cert_file"),
            ("tls_server_config: {cert: x, cert_file: a, key_file: b}", "set cert or cert_file, not both"),
            ("tls_server_config: {cert_file: a, key_file: b, client_ca_file: c}", "client CA is set but client_auth_type is NoClientCert"),
            ("tls_server_config: {cert_file: a, key_file: b, client_allowed_sans: [x]}", "client_allowed_sans needs client_auth_type"),
            ("tls_server_config: {cert_file: a, key_file: b, client_auth_type: VerifyClientCertIfGiven, client_allowed_sans: []}", "client_allowed_sans is empty, which would refuse every client certificate"),
            ("tls_server_config: {cipher_suites: [TLS_AES_128_GCM_SHA256]}", "missing one of cert or cert_file"),
            ("tls_server_config: {cert_file: a, key_file: b, cipher_suites: [TLS_RSA_WITH_AES_128_CBC_SHA]}", "cipher_suites: unknown cipher TLS_RSA_WITH_AES_128_CBC_SHA"),
            ("tls_server_config: {cert_file: a, key_file: b, curve_preferences: [P256]}", "curve_preferences: unknown curve P256"),
            ("tls_server_config: {cert_file: a, key_file: b, cipher_suites: [TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384]}", "lacks TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 or TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, which HTTP/2 requires"),
            ("basic_auth_users: {a: '$2y$03$1DpfPeqF9HzHJt.EWswy1exHluGfbhnn3yXhR7Xes6m3WJqFg0Wby'}", "bcrypt cost 3, outside 4..31"),
            ("basic_auth_users: {a: '$2y$32$1DpfPeqF9HzHJt.EWswy1exHluGfbhnn3yXhR7Xes6m3WJqFg0Wby'}", "bcrypt cost 32, outside 4..31"),
            ("rate_limit: {interval: soon}", "rate_limit.interval is not a duration"),
            ("tls_server_config: {cert_file: a, key_file: b, client_auth_type: Sometimes}", "\"Sometimes\" is not one of"),
            ("tls_server_config: {cert_file: a, key_file: b, min_version: TLS13, max_version: TLS12}", "min_version is above max_version"),
            ("tls_server_config: {cert_file: a, key_file: b, min_version: SSL3}", "min_version \"SSL3\""),
            ("tls_server_config: {cert_file: a, key_file: b, certfile: c}", "unknown field `certfile`"),
            ("basic_auth_users: {alice: plaintext}", "password of \"alice\" is not a bcrypt hash"),
            (&format!("basic_auth_users: {{'a:b': '{}'}}", hash()), "contains ':'"),
            ("http_server_config: {headers: {X-Powered-By: me}}", "\"X-Powered-By\" can not be configured"),
            ("http_server_config: {headers: {X-Frame-Options: allow}}", "X-Frame-Options must be one of deny, sameorigin"),
            ("http_server_config: {headers: {X-Content-Type-Options: sniff}}", "must be one of nosniff"),
            ("tls_server_config: [a, b]", "tls_server_config"),
            ("unknown_section: 1", "unknown field `unknown_section`"),
            ("basic_auth_users: {a: b", "while parsing a flow mapping at line 1"),
        ] {
            let e = err(text);
            assert!(e.contains(expected), "{text:?}: {e}");
            assert!(!e.contains('\n'), "{e}");
        }
    }

    #[test]
    fn what_rustls_cannot_do_is_refused_by_name() {
        for (text, key) in [
            ("tls_server_config: {cert_file: a, key_file: b, client_auth_type: RequireAnyClientCert}", "RequireAnyClientCert"),
            ("tls_server_config: {cert_file: a, key_file: b, client_auth_type: RequestClientCert}", "RequestClientCert"),
            ("tls_server_config: {cert_file: a, key_file: b, min_version: TLS10}", "tls_server_config.min_version TLS10"),
            ("tls_server_config: {cert_file: a, key_file: b, max_version: TLS11}", "tls_server_config.max_version TLS11"),
        ] {
            let e = err(text);
            assert!(
                e.contains(key) && e.contains("not supported by testsigma-exporter"),
                "{text:?}: {e}"
            );
        }
    }

    #[test]
    fn the_toolkit_keys_are_taken() {
        let cfg = ok("
tls_server_config:
  cert_file: a
  key_file: b
  client_auth_type: VerifyClientCertIfGiven
  cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, TLS_AES_128_GCM_SHA256]
  curve_preferences: [CurveP384, X25519]
  client_allowed_sans: [prometheus.example.net]
rate_limit: {interval: 500ms, burst: 10}
http_server_config: {http2: false}
");
        let tls = cfg.tls.as_ref().expect("tls");
        // No client CA: the system's roots, as Go.
        assert_eq!(tls.client_auth, ClientAuth::VerifyIfGiven(None));
        assert_eq!(
            tls.cipher_suites.iter().map(|c| c.name).collect::<Vec<_>>(),
            [
                "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
                "TLS_AES_128_GCM_SHA256"
            ]
        );
        assert_eq!(
            tls.curves.iter().map(|c| c.name).collect::<Vec<_>>(),
            ["CurveP384", "X25519"]
        );
        assert_eq!(
            tls.client_allowed_sans.as_deref(),
            Some(&["prometheus.example.net".to_owned()][..])
        );
        assert_eq!(
            cfg.rate_limit,
            Some(RateLimit {
                interval: std::time::Duration::from_millis(500),
                burst: 10
            })
        );
        assert!(!cfg.http2);
        assert!(ok("tls_server_config: {cert_file: a, key_file: b}").http2);
        // No interval, no limiter, as the toolkit; HTTP/2 suites matter only with TLS 1.2.
        assert_eq!(ok("rate_limit: {interval: 0, burst: 0}").rate_limit, None);
        ok("tls_server_config: {cert_file: a, key_file: b, min_version: TLS13, cipher_suites: [TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384]}");
    }
}
