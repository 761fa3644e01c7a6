//! Blanking the API key out of everything the client lets out (errors, log lines, excerpts
//! of bodies), as sent and percent-encoded: an API may echo the key back in an error body or
//! a link, and a cursor carries it into a query string encoded.

use std::borrow::Cow;

use secrecy::{ExposeSecret, SecretString};

/// What stands in for the key where the API echoed it.
pub const REDACTED: &str = "[REDACTED]";

/// `text` with the API key blanked out, as sent and percent-encoded (`%2B` or `%2b` for
/// `+`, whichever characters were encoded): a query string carries a key that the API
/// echoed as a cursor encoded. Applied to everything the client lets out (errors, log lines,
/// excerpts of bodies): an API may echo the key back in an error body or a link.
pub fn redact<'t>(text: &'t str, key: &SecretString) -> Cow<'t, str> {
    let key_text = key.expose_secret();
    let key = key_text.as_bytes();
    if key.is_empty() || (!text.contains('%') && !text.contains(key_text)) {
        return Cow::Borrowed(text);
    }
    // The text with every `%XX` decoded, and where in `text` each decoded byte began.
    let raw = text.as_bytes();
    let mut decoded = Vec::with_capacity(raw.len());
    let mut starts = Vec::with_capacity(raw.len() + 1);
    let mut i = 0;
    while i < raw.len() {
        starts.push(i);
        match raw.get(i + 1..i + 3).filter(|_| raw[i] == b'%') {
            Some(&[high, low]) if high.is_ascii_hexdigit() && low.is_ascii_hexdigit() => {
                decoded.push(hex(high) << 4 | hex(low));
                i += 3;
            }
            _ => {
                decoded.push(raw[i]);
                i += 1;
            }
        }
    }
    starts.push(raw.len());
    let mut out = Vec::new();
    let (mut copied, mut at) = (0, 0);
    while let Some(found) = find(&decoded[at..], key) {
        let (from, to) = (starts[at + found], starts[at + found + key.len()]);
        out.extend_from_slice(&raw[copied..from]);
        out.extend_from_slice(REDACTED.as_bytes());
        copied = to;
        at += found + key.len();
    }
    if out.is_empty() {
        return Cow::Borrowed(text);
    }
    out.extend_from_slice(&raw[copied..]);
    // Cuts fall between characters (the key is whole characters); lossy all the same.
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

/// The value of a hex digit, either case (0 for anything else).
fn hex(digit: u8) -> u8 {
    match digit {
        b'0'..=b'9' => digit - b'0',
        b'a'..=b'f' => digit - b'a' + 10,
        b'A'..=b'F' => digit - b'A' + 10,
        _ => 0,
    }
}

/// Where `needle` first occurs in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::PollError;

    #[test]
    fn the_key_is_blanked_out_of_texts_and_errors() {
        let key = SecretString::from("k3y");
        assert_eq!(
            redact("key k3y, k3yk3y and k3", &key),
            "key [REDACTED], [REDACTED][REDACTED] and k3"
        );
        assert!(matches!(redact("k3", &key), Cow::Borrowed("k3")));
        assert_eq!(redact("k3y", &SecretString::from("")), "k3y");
        let err = PollError::Http {
            status: 404,
            url: "http://h/?c=k3y".into(),
            hint: " (API says: \"bad k3y\")".into(),
        }
        .map_text(|t| redact(&t, &key).into_owned());
        assert_eq!(
            err.to_string(),
            "HTTP 404 from http://h/?c=[REDACTED] (API says: \"bad [REDACTED]\")"
        );
    }

    #[test]
    fn the_key_is_blanked_out_percent_encoded_in_either_case() {
        let key = SecretString::from("a+b/c=d");
        for (text, want) in [
            ("?cursor=a%2Bb%2Fc%3Dd&x=1", "?cursor=[REDACTED]&x=1"),
            ("c=a%2bb%2fc%3dd", "c=[REDACTED]"),
            ("a+b%2Fc=d and a+b/c=d", "[REDACTED] and [REDACTED]"),
            ("%61%2B%62/c=d!", "[REDACTED]!"),
            ("a%2Bb%2Fc%3D", "a%2Bb%2Fc%3D"),
            ("100% a+b/c=d %zz %+2 %", "100% [REDACTED] %zz %+2 %"),
            ("é%C3a+b/c=dé", "é%C3[REDACTED]é"),
        ] {
            assert_eq!(redact(text, &key), want, "{text}");
        }
        assert!(matches!(redact("50%2B", &key), Cow::Borrowed(_)));
        let key = SecretString::from("clé");
        assert_eq!(redact("x=cl%C3%A9;clé", &key), "x=[REDACTED];[REDACTED]");
    }
}
