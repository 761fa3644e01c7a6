//! Blanking the API key out of everything the client lets out (errors, log lines, excerpts
//! of bodies), as sent, percent-encoded (even more than once) and in any ASCII case: an API
//! may echo the key back in an error body or a link, a cursor carries it into a query string
//! encoded, and a host name comes back lower-cased.
//!
//! The text is read once, without a decoded copy: at each position the key is matched
//! against the text as it is and as one to [`DECODE_ROUNDS`] rounds of percent-decoding read
//! it, so the work is proportional to the text (times the key's length at worst) and
//! nothing is allocated unless the key is found.

use std::borrow::Cow;
use std::fmt::{self, Write as _};

use secrecy::{ExposeSecret, SecretString};

/// What stands in for the key where the API echoed it.
pub const REDACTED: &str = "[REDACTED]";

/// Rounds of percent-encoding looked through: a cursor the API sent encoded is encoded again
/// in our query string (`%2B` becomes `%252B`), and some servers quote that once more.
pub const DECODE_ROUNDS: u32 = 3;

/// `text` with the API key blanked out wherever it shows: as sent, percent-encoded (`%2B` or
/// `%2b` for `+`, whichever characters were encoded, up to [`DECODE_ROUNDS`] times over,
/// `+` for a space as forms write it), in any ASCII case. Applied to everything the client
/// lets out (errors, log lines, excerpts of bodies).
pub fn redact<'t>(text: &'t str, key: &SecretString) -> Cow<'t, str> {
    blank(text, key.expose_secret().as_bytes(), false)
}

/// As [`redact`]; with `cut`, for a text cut short: a key running into its end is blanked
/// out too, so that no part of one the cut went through survives.
pub fn redact_cut<'t>(text: &'t str, key: &SecretString, cut: bool) -> Cow<'t, str> {
    blank(text, key.expose_secret().as_bytes(), cut)
}

/// The first `chars` characters of `shown` with the key blanked out, a key the cut goes
/// through included. No more of `shown` is written than can matter, however long it is
/// (serde quotes a megabyte value whole): the shown characters of up to 4 bytes each, and
/// past them three times the key's length (each byte as `%XX`).
pub fn redacted_head(shown: &dyn fmt::Display, chars: usize, key: &SecretString) -> String {
    let mut head = Capped {
        text: String::new(),
        room: chars * 4 + 3 * key.expose_secret().len(),
        cut: false,
    };
    // Past the room, writing stops with an error: that is the cut, not a failure.
    let _ = write!(head, "{shown}");
    let text = redact_cut(&head.text, key, head.cut);
    text.chars().take(chars).collect()
}

/// A `fmt::Write` that keeps at most `room` bytes (whole characters) and then refuses more.
struct Capped {
    text: String,
    room: usize,
    cut: bool,
}

impl fmt::Write for Capped {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let left = self.room - self.text.len();
        if s.len() <= left {
            self.text.push_str(s);
            return Ok(());
        }
        let mut end = left;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        self.text.push_str(&s[..end]);
        self.cut = true;
        Err(fmt::Error)
    }
}

fn blank<'t>(text: &'t str, key: &[u8], cut: bool) -> Cow<'t, str> {
    let Some(&first) = key.first() else {
        return Cow::Borrowed(text);
    };
    let raw = text.as_bytes();
    let rounds = if raw.contains(&b'%') {
        DECODE_ROUNDS
    } else {
        0
    };
    let mut out: Option<Vec<u8>> = None;
    let (mut copied, mut at) = (0, 0);
    while at < raw.len() {
        // Where the text has no `%`, every reading of it has the byte as it is.
        if raw[at] != b'%' && !same(first, raw[at]) {
            at += 1;
            continue;
        }
        match (0..=rounds).find_map(|r| key_at(raw, at, key, r, cut)) {
            Some(end) => {
                let out = out.get_or_insert_with(|| Vec::with_capacity(raw.len()));
                out.extend_from_slice(&raw[copied..at]);
                out.extend_from_slice(REDACTED.as_bytes());
                (copied, at) = (end, end);
            }
            None => at += 1,
        }
    }
    let Some(mut out) = out else {
        return Cow::Borrowed(text);
    };
    out.extend_from_slice(&raw[copied..]);
    // Cuts fall between characters (the key is whole characters); lossy all the same.
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

/// Where the key, read from `raw[at..]` with `rounds` rounds of percent-decoding, ends; with
/// `cut`, a text that ends part way through the key counts as the key.
fn key_at(raw: &[u8], at: usize, key: &[u8], rounds: u32, cut: bool) -> Option<usize> {
    let mut pos = at;
    for &want in key {
        match decoded(raw, pos, rounds) {
            Some((byte, next)) if same(want, byte) => pos = next,
            None if cut => return Some(raw.len()),
            // An escape the cut went through.
            Some(_) if cut && raw[pos] == b'%' && raw.len() - pos < 3usize.pow(rounds) => {
                return Some(raw.len())
            }
            _ => return None,
        }
    }
    Some(pos)
}

/// A byte of the key matches itself in either ASCII case, and a space matches `+`.
fn same(want: u8, byte: u8) -> bool {
    want.eq_ignore_ascii_case(&byte) || (want == b' ' && byte == b'+')
}

/// The byte at `pos` of `raw` decoded `rounds` times over, and where the next one starts:
/// a `%` and two hex digits (each possibly encoded themselves) of the text decoded one round
/// less are one byte; anything else is itself. At most 3^rounds steps, only where `%`s are.
fn decoded(raw: &[u8], pos: usize, rounds: u32) -> Option<(u8, usize)> {
    let Some(lower) = rounds.checked_sub(1) else {
        return raw.get(pos).map(|b| (*b, pos + 1));
    };
    let (byte, next) = decoded(raw, pos, lower)?;
    if byte == b'%' {
        let hex_at = |p| decoded(raw, p, lower).filter(|(h, _)| h.is_ascii_hexdigit());
        if let Some((high, mid)) = hex_at(next) {
            if let Some((low, end)) = hex_at(mid) {
                return Some((hex(high) << 4 | hex(low), end));
            }
        }
    }
    Some((byte, next))
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
    #[test]
    fn the_key_is_blanked_out_as_sent_even_when_it_looks_encoded() {
        // `%41` is `A`: the key as sent must not only be looked for decoded.
        let key = SecretString::from("ab%41c");
        for (text, want) in [
            ("x ab%41c y", "x [REDACTED] y"),
            ("cursor=ab%2541c", "cursor=[REDACTED]"),
            ("abAc", "abAc"),
        ] {
            assert_eq!(redact(text, &key), want, "{text}");
        }
    }

    #[test]
    fn the_key_is_blanked_out_in_any_ascii_case() {
        // A next link to `https://<key>.evil.com/` comes back with its host lower-cased.
        let key = SecretString::from("Tk-AbCd12");
        assert_eq!(
            redact("another origin (https://tk-abcd12.evil.com)", &key),
            "another origin (https://[REDACTED].evil.com)"
        );
        assert_eq!(
            redact("TK-ABCD12 and tk%2Dabcd12", &key),
            "[REDACTED] and [REDACTED]"
        );
    }

    #[test]
    fn the_key_is_blanked_out_encoded_more_than_once_or_as_a_form() {
        let key = SecretString::from("a+b/c=d");
        for (text, want) in [
            // A cursor the API sent encoded, encoded again in our query string.
            ("?cursor=a%252Bb%252Fc%253Dd&x", "?cursor=[REDACTED]&x"),
            // ... and once more, every character of it.
            ("a%25252Bb%2F%63%253dd!", "[REDACTED]!"),
            ("%2561%252B%2562/c=d", "[REDACTED]"),
        ] {
            assert_eq!(redact(text, &key), want, "{text}");
        }
        // Forms write a space as `+`.
        let key = SecretString::from("my key");
        assert_eq!(
            redact("q=my+key&r=my%20key&s=MY+KEY", &key),
            "q=[REDACTED]&r=[REDACTED]&s=[REDACTED]"
        );
        assert!(matches!(redact("my+ke", &key), Cow::Borrowed(_)));
    }

    #[test]
    fn a_text_cut_short_loses_a_key_it_cuts_through() {
        let key = SecretString::from("a+b/c=d");
        assert_eq!(redact("xx a+b/c", &key), "xx a+b/c");
        assert_eq!(redact_cut("xx a+b/c", &key, true), "xx [REDACTED]");
        assert_eq!(redact_cut("xx a%2Bb%2", &key, true), "xx [REDACTED]");
        assert_eq!(redact_cut("xx a%2Bb", &key, true), "xx [REDACTED]");
    }

    /// A text of `chunks` pieces of 1 KiB, counting how many were asked for.
    struct Long {
        chunks: usize,
        written: std::cell::Cell<usize>,
    }

    impl fmt::Display for Long {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("invalid type: string \"x a+b/c=")?;
            for _ in 0..self.chunks {
                self.written.set(self.written.get() + 1);
                f.write_str(&"d".repeat(1024))?;
            }
            f.write_str("\"")
        }
    }

    #[test]
    fn the_head_of_a_long_text_is_written_no_further_than_needed() {
        let key = SecretString::from("a+b/c=d");
        let long = Long {
            chunks: 100_000,
            written: Default::default(),
        };
        let head = redacted_head(&long, 20, &key);
        assert_eq!(head, "invalid type: string");
        assert_eq!(long.written.get(), 1, "100 MB written for 20 characters");
        // The key straddling the cut is blanked out whole.
        let head = redacted_head(&"invalid type: string \"x a+b/c=d\"", 26, &key);
        assert_eq!(head, "invalid type: string \"x [R");
        let head = redacted_head(&"say a+b/c=d", 6, &key);
        assert_eq!(head, "say [R");
        assert_eq!(redacted_head(&"short", 6, &key), "short");
    }
}
