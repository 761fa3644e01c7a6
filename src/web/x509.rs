//! What the client check needs from a certificate beyond what rustls verifies: its subject
//! alternative names (for `client_allowed_sans`), and its validity period and extended key
//! usage (for a pinned self-signed client certificate, which rustls does not verify). A minimal DER
//! reader, pure; anything it cannot read is `None`, and the caller refuses the certificate.

use std::net::{Ipv4Addr, Ipv6Addr};

/// The SAN values as Go lists them for the toolkit's check: DNS names, e-mail addresses,
/// IP addresses, URIs, each as text. Empty if the certificate has no SAN extension.
pub fn subject_alt_names(der: &[u8]) -> Option<Vec<String>> {
    let mut names = Vec::new();
    let Some(san) = extension(der, &[0x55, 0x1d, 0x11])? else {
        return Some(names);
    };
    let (mut general_names, _) = expect(san, 0x30)?;
    while !general_names.is_empty() {
        let (tag, value, rest) = tlv(general_names)?;
        general_names = rest;
        match tag {
            // rfc822Name, dNSName, uniformResourceIdentifier: IA5String.
            0x81 | 0x82 | 0x86 => names.push(String::from_utf8(value.to_vec()).ok()?),
            0x87 => names.push(match value.len() {
                4 => Ipv4Addr::from(<[u8; 4]>::try_from(value).ok()?).to_string(),
                16 => Ipv6Addr::from(<[u8; 16]>::try_from(value).ok()?).to_string(),
                _ => return None,
            }),
            _ => {}
        }
    }
    Some(names)
}

/// Whether the extended key usage allows client authentication, as Go's verifier checks
/// it: no such extension, or one listing clientAuth or anyExtendedKeyUsage.
pub fn allows_client_auth(der: &[u8]) -> Option<bool> {
    const CLIENT_AUTH: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02];
    const ANY: &[u8] = &[0x55, 0x1d, 0x25, 0x00];
    let Some(usages) = extension(der, &[0x55, 0x1d, 0x25])? else {
        return Some(true);
    };
    let (mut oids, _) = expect(usages, 0x30)?;
    let mut allowed = false;
    while !oids.is_empty() {
        let (oid, rest) = expect(oids, 0x06)?;
        oids = rest;
        allowed |= oid == CLIENT_AUTH || oid == ANY;
    }
    Some(allowed)
}

/// `notBefore` and `notAfter`, in seconds since the Unix epoch.
pub fn validity(der: &[u8]) -> Option<(i64, i64)> {
    let mut fields = tbs(der)?;
    if fields.first() == Some(&0xa0) {
        fields = tlv(fields)?.2;
    }
    // serialNumber, signature, issuer.
    for _ in 0..3 {
        fields = tlv(fields)?.2;
    }
    let (validity, _) = expect(fields, 0x30)?;
    let (tag, not_before, rest) = tlv(validity)?;
    let not_before = time(tag, not_before)?;
    let (tag, not_after, _) = tlv(rest)?;
    Some((not_before, time(tag, not_after)?))
}

/// The contents of the tbsCertificate.
fn tbs(der: &[u8]) -> Option<&[u8]> {
    let (certificate, _) = expect(der, 0x30)?;
    Some(expect(certificate, 0x30)?.0)
}

/// The value of the extension `oid`, `Some(None)` if the certificate has none.
fn extension<'a>(der: &'a [u8], oid: &[u8]) -> Option<Option<&'a [u8]>> {
    let mut fields = tbs(der)?;
    while !fields.is_empty() {
        let (tag, value, rest) = tlv(fields)?;
        fields = rest;
        if tag != 0xa3 {
            continue;
        }
        let (mut extensions, _) = expect(value, 0x30)?;
        while !extensions.is_empty() {
            let (extension, rest) = expect(extensions, 0x30)?;
            extensions = rest;
            let (id, mut rest) = expect(extension, 0x06)?;
            if id != oid {
                continue;
            }
            if rest.first() == Some(&0x01) {
                rest = tlv(rest)?.2;
            }
            return Some(Some(expect(rest, 0x04)?.0));
        }
    }
    Some(None)
}

/// The first element, which must have `tag`: its value and what follows.
fn expect(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (found, value, rest) = tlv(input)?;
    (found == tag).then_some((value, rest))
}

/// Tag, value and the rest, of one DER element.
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, input) = input.split_first()?;
    let (&first, mut input) = input.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let octets = usize::from(first & 0x7f);
        if octets == 0 || octets > 4 || input.len() < octets {
            return None;
        }
        let (bytes, rest) = input.split_at(octets);
        input = rest;
        bytes.iter().fold(0usize, |n, b| (n << 8) | usize::from(*b))
    };
    (input.len() >= len).then(|| (tag, &input[..len], &input[len..]))
}

/// UTCTime (`YYMMDDHHMMSSZ`) or GeneralizedTime (`YYYYMMDDHHMMSSZ`) in Unix seconds.
fn time(tag: u8, value: &[u8]) -> Option<i64> {
    let text = value.strip_suffix(b"Z")?;
    // Digits only before any slicing: a multi-byte character would split.
    if !text.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let text = std::str::from_utf8(text).ok()?;
    let (year, rest) = match (tag, text.len()) {
        (0x17, 12) => {
            let yy: i64 = text[..2].parse().ok()?;
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, &text[2..])
        }
        (0x18, 14) => (text[..4].parse().ok()?, &text[4..]),
        _ => return None,
    };
    let field = |i: usize| rest[i..i + 2].parse::<i64>().ok();
    let (month, day) = (field(0)?, field(2)?);
    let (hour, minute, second) = (field(4)?, field(6)?, field(8)?);
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hour * 3600 + minute * 60 + second)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn certificate(names: Vec<rcgen::SanType>) -> Vec<u8> {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::default();
        params.subject_alt_names = names;
        params.not_before = rcgen::date_time_ymd(2021, 3, 4);
        params.not_after = rcgen::date_time_ymd(2072, 6, 25);
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn names_as_go_lists_them() {
        use rcgen::SanType;
        let der = certificate(vec![
            SanType::DnsName("test3".try_into().unwrap()),
            SanType::Rfc822Name("ops@example.com".try_into().unwrap()),
            SanType::IpAddress("127.0.0.1".parse().unwrap()),
            SanType::IpAddress("::1".parse().unwrap()),
            SanType::URI("spiffe://cluster/prometheus".try_into().unwrap()),
        ]);
        assert_eq!(
            subject_alt_names(&der).unwrap(),
            [
                "test3",
                "ops@example.com",
                "127.0.0.1",
                "::1",
                "spiffe://cluster/prometheus"
            ]
        );
        assert_eq!(
            subject_alt_names(&certificate(vec![])).unwrap(),
            Vec::<String>::new()
        );
        assert_eq!(subject_alt_names(&der[..der.len() / 2]), None);
        assert_eq!(subject_alt_names(b"junk"), None);
    }

    #[test]
    fn validity_in_unix_seconds() {
        let der = certificate(vec![]);
        // 2021-03-04 and 2072-06-25 at midnight UTC.
        assert_eq!(validity(&der), Some((1_614_816_000, 3_234_038_400)));
        assert_eq!(time(0x17, b"991231235959Z"), Some(946_684_799));
        assert_eq!(time(0x17, b"9912312359Z"), None);
    }

    #[test]
    fn hostile_times_are_refused_without_a_panic() {
        // Multi-byte characters across the slicing points of both forms, signs, spaces.
        for (tag, text) in [
            (0x17, "1\u{e9}123123595Z"),
            (0x17, "\u{e9}9123123595Z"),
            (0x18, "199\u{e9}1231235959Z"),
            (0x18, "1\u{20ac}91231235959Z"),
            (0x17, "+91231235959Z"),
            (0x18, " 9991231235959Z"),
            (0x17, "99123123595\u{e9}"),
        ] {
            assert_eq!(time(tag, text.as_bytes()), None, "{text:?}");
        }
    }

    fn with_usages(usages: Vec<rcgen::ExtendedKeyUsagePurpose>) -> Vec<u8> {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::default();
        params.extended_key_usages = usages;
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn client_auth_usage_as_go_checks_it() {
        use rcgen::ExtendedKeyUsagePurpose as Eku;
        for (usages, allowed) in [
            (vec![], true),
            (vec![Eku::ClientAuth], true),
            (vec![Eku::ServerAuth, Eku::ClientAuth], true),
            (vec![Eku::Any], true),
            (vec![Eku::ServerAuth], false),
            (vec![Eku::CodeSigning, Eku::EmailProtection], false),
            (vec![Eku::Other(vec![1, 3, 6, 1, 4, 1, 99999, 1])], false),
        ] {
            let der = with_usages(usages.clone());
            assert_eq!(allows_client_auth(&der), Some(allowed), "{usages:?}");
        }
        assert_eq!(allows_client_auth(b"junk"), None);
    }
}
