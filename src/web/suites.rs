//! Go's names for TLS cipher suites and curves, as a web configuration gives them
//! (`cipher_suites`, `curve_preferences`), and what rustls makes of them. Pure.
//!
//! Go, and so the toolkit, takes only the suites of its `tls.CipherSuites()`: an unknown or
//! insecure name is refused. Of those, rustls lacks the four CBC ones: a list keeps the
//! suites the provider has (the list only ever narrows what is offered) and those it lacks
//! are named in a warning; a list left with nothing usable is refused. Likewise for curves,
//! where ring lacks P-521. As in Go, `cipher_suites` applies to TLS 1.2 only: the TLS 1.3
//! suites are always on, and naming them is allowed and changes nothing.

use rustls::crypto::{CryptoProvider, SupportedKxGroup};
use rustls::SupportedCipherSuite;

/// Go's `tls.CipherSuites()`: name and IANA number.
const CIPHER_SUITES: [(&str, u16); 13] = [
    ("TLS_AES_128_GCM_SHA256", 0x1301),
    ("TLS_AES_256_GCM_SHA384", 0x1302),
    ("TLS_CHACHA20_POLY1305_SHA256", 0x1303),
    ("TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", 0xc009),
    ("TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA", 0xc00a),
    ("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", 0xc013),
    ("TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA", 0xc014),
    ("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", 0xc02b),
    ("TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", 0xc02c),
    ("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", 0xc02f),
    ("TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", 0xc030),
    ("TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", 0xcca8),
    ("TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", 0xcca9),
];

/// The suites HTTP/2 requires when TLS 1.2 is on and the suites are chosen (RFC 7540 9.2.2,
/// as Go's `http2.ConfigureServer` checks).
pub const HTTP2_REQUIRED: [&str; 2] = [
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
];

/// The toolkit's curve names and their IANA group numbers.
const CURVES: [(&str, u16); 4] = [
    ("CurveP256", 23),
    ("CurveP384", 24),
    ("CurveP521", 25),
    ("X25519", 29),
];

/// A cipher suite named as Go names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cipher {
    pub name: &'static str,
    id: u16,
}

/// A curve named as the toolkit names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Curve {
    pub name: &'static str,
    id: u16,
}

impl Cipher {
    pub fn named(name: &str) -> Option<Self> {
        CIPHER_SUITES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|&(name, id)| Self { name, id })
    }

    /// A TLS 1.3 suite: not configurable, in Go as here.
    pub fn is_tls13(&self) -> bool {
        self.id >> 8 == 0x13
    }
}

impl Curve {
    pub fn named(name: &str) -> Option<Self> {
        CURVES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|&(name, id)| Self { name, id })
    }
}

/// What a provider does with the configured suites and curves.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Narrowed {
    /// Names the provider cannot do, left out.
    pub left_out: Vec<&'static str>,
}

/// Narrows `provider` to the TLS 1.2 suites of `ciphers` (in their order, for
/// `prefer_server_cipher_suites`) and the groups of `curves` (in theirs), with P-521 from
/// [`super::p521`] when the provider lacks it; empty lists leave the provider's defaults
/// (P-521 is not among ring's, so not among ours). Errs, naming the values, when nothing
/// usable is left: no TLS 1.2 suite while TLS 1.2 is the only version on (`tls12_only`), or
/// no group at all.
pub fn narrow(
    provider: &mut CryptoProvider,
    ciphers: &[Cipher],
    curves: &[Curve],
    tls12_only: bool,
) -> Result<Narrowed, String> {
    let mut narrowed = Narrowed::default();
    let tls12: Vec<&Cipher> = ciphers.iter().filter(|c| !c.is_tls13()).collect();
    // A list naming TLS 1.3 suites only leaves no TLS 1.2 suite, as in Go.
    if !ciphers.is_empty() {
        let mut suites: Vec<SupportedCipherSuite> = provider
            .cipher_suites
            .iter()
            .filter(|s| s.version() == &rustls::version::TLS13)
            .copied()
            .collect();
        for cipher in tls12 {
            match find_suite(provider, cipher.id) {
                Some(suite) => suites.push(suite),
                None => narrowed.left_out.push(cipher.name),
            }
        }
        if tls12_only
            && suites
                .iter()
                .all(|s| s.version() == &rustls::version::TLS13)
        {
            return Err(format!(
                "tls_server_config.cipher_suites: none of {} can be used with max_version TLS12 (TLS 1.3 suites are not for TLS 1.2; rustls has no CBC suites); add one of its TLS 1.2 suites, e.g. TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
                names(ciphers.iter().map(|c| c.name))
            ));
        }
        provider.cipher_suites = suites;
    }
    if !curves.is_empty() {
        let mut groups: Vec<&'static dyn SupportedKxGroup> = Vec::new();
        for curve in curves {
            match provider
                .kx_groups
                .iter()
                .chain([&super::p521::SECP521R1])
                .find(|g| u16::from(g.name()) == curve.id)
            {
                Some(group) => groups.push(*group),
                None => narrowed.left_out.push(curve.name),
            }
        }
        if groups.is_empty() {
            return Err(format!(
                "tls_server_config.curve_preferences: none of {} can be used by the exporter's TLS library; add X25519, CurveP256, CurveP384 or CurveP521",
                names(curves.iter().map(|c| c.name))
            ));
        }
        provider.kx_groups = groups;
    }
    Ok(narrowed)
}

/// Go's `http2.ConfigureServer` refuses TLS 1.2 suites chosen without one that HTTP/2
/// requires; so does the toolkit at start-up, and so do we.
pub fn http2_check(ciphers: &[Cipher], tls12: bool) -> Result<(), String> {
    if tls12 && !ciphers.is_empty() && !ciphers.iter().any(|c| HTTP2_REQUIRED.contains(&c.name)) {
        return Err(format!(
            "tls_server_config.cipher_suites lacks {}, which HTTP/2 requires; add one, or set \
             http_server_config.http2: false",
            HTTP2_REQUIRED.join(" or ")
        ));
    }
    Ok(())
}

fn find_suite(provider: &CryptoProvider, id: u16) -> Option<SupportedCipherSuite> {
    provider
        .cipher_suites
        .iter()
        .find(|s| u16::from(s.suite()) == id)
        .copied()
}

fn names<'a>(names: impl Iterator<Item = &'a str>) -> String {
    names.collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring() -> CryptoProvider {
        rustls::crypto::ring::default_provider()
    }

    fn ciphers(names: &[&str]) -> Vec<Cipher> {
        names.iter().map(|n| Cipher::named(n).expect(n)).collect()
    }

    fn curves(names: &[&str]) -> Vec<Curve> {
        names.iter().map(|n| Curve::named(n).expect(n)).collect()
    }

    #[test]
    fn go_names_only() {
        assert!(Cipher::named("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA2048").is_none());
        // Insecure in Go, so not taken by the toolkit either.
        assert!(Cipher::named("TLS_RSA_WITH_AES_128_CBC_SHA").is_none());
        assert!(Curve::named("CurveP257").is_none());
        assert!(Cipher::named("TLS_AES_128_GCM_SHA256").unwrap().is_tls13());
    }

    #[test]
    fn suites_in_the_configured_order_tls13_untouched() {
        let mut provider = ring();
        let list = ciphers(&[
            "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
            "TLS_AES_128_GCM_SHA256",
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        ]);
        assert_eq!(
            narrow(&mut provider, &list, &[], false),
            Ok(Narrowed::default())
        );
        let ids: Vec<u16> = provider
            .cipher_suites
            .iter()
            .map(|s| s.suite().into())
            .collect();
        assert_eq!(ids, [0x1302, 0x1301, 0x1303, 0xc030, 0xc02f]);
    }

    #[test]
    fn what_rustls_lacks_is_left_out_by_name_or_refused_when_nothing_is_left() {
        let mut provider = ring();
        let list = ciphers(&[
            "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        ]);
        let narrowed = narrow(&mut provider, &list, &[], true).unwrap();
        assert_eq!(narrowed.left_out, ["TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA"]);

        let cbc = ciphers(&["TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA"]);
        let e = narrow(&mut ring(), &cbc, &[], true).unwrap_err();
        assert!(
            e.contains("none of TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA can be used"),
            "{e}"
        );
        // With TLS 1.3 on, TLS 1.2 clients simply find no suite, as with Go.
        assert!(narrow(&mut ring(), &cbc, &[], false).is_ok());
    }

    #[test]
    fn curves_in_the_configured_order_p521_added_only_when_named() {
        let mut provider = ring();
        let list = curves(&["CurveP521", "X25519"]);
        assert_eq!(
            narrow(&mut provider, &[], &list, false),
            Ok(Narrowed::default())
        );
        let ids: Vec<u16> = provider.kx_groups.iter().map(|g| g.name().into()).collect();
        assert_eq!(ids, [25, 29]);
        let mut provider = ring();
        assert_eq!(
            narrow(&mut provider, &[], &curves(&["CurveP521"]), true),
            Ok(Narrowed::default())
        );
        assert_eq!(provider.kx_groups.len(), 1);
        let mut provider = ring();
        narrow(&mut provider, &[], &[], false).unwrap();
        assert!(provider.kx_groups.iter().all(|g| u16::from(g.name()) != 25));
    }

    #[test]
    fn a_list_of_tls13_suites_only_leaves_no_tls12_suite() {
        let tls13 = ciphers(&["TLS_AES_128_GCM_SHA256"]);
        let mut provider = ring();
        assert_eq!(
            narrow(&mut provider, &tls13, &[], false),
            Ok(Narrowed::default())
        );
        assert!(
            provider
                .cipher_suites
                .iter()
                .all(|s| s.version() == &rustls::version::TLS13),
            "{:?}",
            provider.cipher_suites
        );
        let e = narrow(&mut ring(), &tls13, &[], true).unwrap_err();
        assert!(e.contains("none of TLS_AES_128_GCM_SHA256"), "{e}");
    }
}
