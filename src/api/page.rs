//! Decoding one page of `GET /users`, straight from the body bytes.
//!
//! Only `data[].id`, `data[].status`, `data[].email`, `data[].created_at`, `page_info.next`
//! and `page_info.total_count` are read; strings borrow from the body where they can and
//! everything else is skipped unparsed. Tolerated shapes: `data` as an array or as
//! `{"users": [...]}`, `page_info` absent or null, `next` empty, null or absent; ids,
//! statuses and `next` as strings or integers. `email` and `created_at` never fail a page:
//! an email that is not a string, or a `created_at` that is neither a number, a numeric
//! string nor an RFC 3339 date, is taken as not sent.

use std::borrow::Cow;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer};

/// One decoded page.
#[derive(Debug, PartialEq)]
pub struct Page<'a> {
    pub users: Vec<User<'a>>,
    /// The next page: a URL, a path or an opaque cursor; `None` when the walk is over.
    pub next: Option<Cow<'a, str>>,
    pub total_count: Option<u64>,
}

/// The fields of a user that are counted: borrowed from the body when they have no escapes,
/// integers taken as their text.
#[derive(Debug, PartialEq, Deserialize)]
pub struct User<'a> {
    #[serde(default, borrow, deserialize_with = "text")]
    pub id: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "text")]
    pub status: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "lenient_text")]
    pub email: Option<Cow<'a, str>>,
    /// As sent: seconds or milliseconds since the epoch (an RFC 3339 date is converted to
    /// seconds); the unit is told apart when counting.
    #[serde(default, deserialize_with = "timestamp")]
    pub created_at: Option<f64>,
}

impl User<'_> {
    /// The fields as the tally counts them.
    pub fn fields(&self) -> crate::census::User<'_> {
        crate::census::User {
            id: self.id.as_deref(),
            status: self.status.as_deref(),
            email: self.email.as_deref(),
            created_at: self.created_at,
        }
    }
}

/// Decodes a page. `data` is read as a bare array first, the documented shape, in one pass
/// over the body; if that fails, as `{"users": [...]}`. When neither fits, the error is the
/// one of the attempt that got further into the body: the shape the body was meant to have.
pub fn decode(body: &[u8]) -> Result<Page<'_>, serde_json::Error> {
    decode_as::<User>(body)
}

/// [`decode`], with each user's `email` left out (`None`) unless `emails`, for polls that do
/// not count email domains: a borrowed string is checked to be UTF-8, which for the emails
/// costs about a tenth of a poll's CPU, and skipping them checks nothing.
pub fn decode_with(body: &[u8], emails: bool) -> Result<Page<'_>, serde_json::Error> {
    if emails {
        decode_as::<User>(body)
    } else {
        decode_as::<NoEmail>(body)
    }
}

fn decode_as<'a, U>(body: &'a [u8]) -> Result<Page<'a>, serde_json::Error>
where
    U: Deserialize<'a> + Into<User<'a>>,
{
    // Derived structs would also take a JSON array, field by field; a page is an object.
    if body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        return Err(serde::de::Error::custom(
            "invalid type: sequence, expected a page object",
        ));
    }
    let bare = match serde_json::from_slice::<RawPage<Vec<U>>>(body) {
        Ok(raw) => return Ok(page(raw.data, raw.page_info)),
        Err(e) => e,
    };
    match serde_json::from_slice::<RawPage<Wrapped<U>>>(body) {
        Ok(raw) => Ok(page(raw.data.users, raw.page_info)),
        Err(e) if (e.line(), e.column()) > (bare.line(), bare.column()) => Err(e),
        Err(_) => Err(bare),
    }
}

/// A user as [`decode_with`] reads it without the email.
#[derive(Deserialize)]
struct NoEmail<'a> {
    #[serde(default, borrow, deserialize_with = "text")]
    id: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "text")]
    status: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "timestamp")]
    created_at: Option<f64>,
}

impl<'a> From<NoEmail<'a>> for User<'a> {
    fn from(u: NoEmail<'a>) -> Self {
        User {
            id: u.id,
            status: u.status,
            email: None,
            created_at: u.created_at,
        }
    }
}

/// Characters an [`excerpt`] shows at most.
pub const EXCERPT_CHARS: usize = 120;

/// At most [`EXCERPT_CHARS`] characters of a text, on one line, quoted, for log messages.
pub fn excerpt(text: &str) -> String {
    let mut chars = text.chars();
    let mut out: String = chars
        .by_ref()
        .take(EXCERPT_CHARS)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if chars.next().is_some() {
        out.push('…');
    }
    format!("{out:?}")
}

/// The top level of a page, `data` being `Vec<User>` or [`Wrapped`]; other keys are skipped.
#[derive(Deserialize)]
#[serde(bound(deserialize = "D: Deserialize<'de>"))]
struct RawPage<'a, D> {
    data: D,
    #[serde(default, borrow)]
    page_info: Option<PageInfo<'a>>,
}

#[derive(Deserialize)]
#[serde(bound(deserialize = "U: Deserialize<'de>"))]
struct Wrapped<U> {
    users: Vec<U>,
}

#[derive(Default, Deserialize)]
struct PageInfo<'a> {
    #[serde(default, borrow, deserialize_with = "text")]
    next: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "lenient_count")]
    total_count: Option<u64>,
}

fn page<'a, U: Into<User<'a>>>(users: Vec<U>, info: Option<PageInfo<'a>>) -> Page<'a> {
    let info = info.unwrap_or_default();
    Page {
        users: users.into_iter().map(Into::into).collect(),
        next: info.next.filter(|next| !next.trim().is_empty()),
        total_count: info.total_count,
    }
}

/// An optional string or integer, as its text: strings without escapes borrowed from the
/// body. A visitor rather than an untagged enum, which would buffer every value first: this
/// runs twice for each user of a poll.
fn text<'de: 'a, 'a, D: Deserializer<'de>>(d: D) -> Result<Option<Cow<'a, str>>, D::Error> {
    struct Text;
    impl<'de> Visitor<'de> for Text {
        type Value = Option<Cow<'de, str>>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a string or an integer")
        }
        fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
            Ok(Some(Cow::Borrowed(v)))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(Cow::Owned(v.to_owned())))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(Cow::Owned(v.to_string())))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(Cow::Owned(v.to_string())))
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
    }
    d.deserialize_any(Text)
}

/// Skips whatever a sequence or map holds, for the lenient visitors.
fn drain_seq<'de, A: de::SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
    while seq.next_element::<de::IgnoredAny>()?.is_some() {}
    Ok(())
}

fn drain_map<'de, A: de::MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
    while map
        .next_entry::<de::IgnoredAny, de::IgnoredAny>()?
        .is_some()
    {}
    Ok(())
}

/// A string, borrowed when it can be; any other value as none.
fn lenient_text<'de: 'a, 'a, D: Deserializer<'de>>(d: D) -> Result<Option<Cow<'a, str>>, D::Error> {
    struct Lenient;
    impl<'de> Visitor<'de> for Lenient {
        type Value = Option<Cow<'de, str>>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("any value")
        }
        fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
            Ok(Some(Cow::Borrowed(v)))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(Cow::Owned(v.to_owned())))
        }
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
            drain_seq(seq).map(|()| None)
        }
        fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            drain_map(map).map(|()| None)
        }
    }
    d.deserialize_any(Lenient)
}

/// A timestamp as a number: a JSON number, a numeric string, or an RFC 3339 date as Unix
/// seconds; anything else as none.
fn timestamp<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    struct Timestamp;
    impl<'de> Visitor<'de> for Timestamp {
        type Value = Option<f64>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("any value")
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(v as f64))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(v as f64))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            Ok(Some(v))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            let v = v.trim();
            // A date is at least "2024-01-01T00:00:00Z"; anything longer than any date is
            // not parsed at all.
            if v.len() > 64 {
                return Ok(None);
            }
            Ok(v.parse::<f64>().ok().or_else(|| {
                let at = humantime::parse_rfc3339_weak(v).ok()?;
                let since = at.duration_since(std::time::SystemTime::UNIX_EPOCH).ok()?;
                Some(since.as_secs_f64())
            }))
        }
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
            drain_seq(seq).map(|()| None)
        }
        fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            drain_map(map).map(|()| None)
        }
    }
    d.deserialize_any(Timestamp)
}

/// `total_count` is only a hint (reported as is, and a bound on pages): take it as a whole
/// number, a float that is one, or a numeric string; anything else counts as not sent rather
/// than failing a page whose users are fine.
fn lenient_count<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::Number(n) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && (0.0..1e15).contains(f))
                .map(|f| f as u64)
        }),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn summary(page: &Page<'_>) -> Vec<(String, String)> {
        page.users
            .iter()
            .map(|u| {
                let s = |t: &Option<Cow<'_, str>>| t.as_deref().unwrap_or("-").to_owned();
                (s(&u.id), s(&u.status))
            })
            .collect()
    }

    #[test]
    fn total_count_is_read_leniently() {
        for (raw, expected) in [
            ("5", Some(5)),
            ("5.0", Some(5)),
            ("\"5\"", Some(5)),
            ("null", None),
            ("-1", None),
            ("2.5", None),
            ("\"many\"", None),
            ("{\"n\": 5}", None),
            ("[5]", None),
        ] {
            let body = format!(r#"{{"data": [], "page_info": {{"total_count": {raw}}}}}"#);
            let page = decode(body.as_bytes()).unwrap_or_else(|e| panic!("{raw}: {e}"));
            assert_eq!(page.total_count, expected, "{raw}");
        }
    }

    #[test]
    fn documented_page() {
        let body = fixture("users-documented.json");
        let page = decode(&body).unwrap();
        assert_eq!(
            summary(&page),
            [
                (
                    "5f9a82b6-4e79-4162-9da6-7a3c2e5f4183".into(),
                    "active".into()
                ),
                (
                    "6a0b93c7-5f80-4273-8eb7-8b4d3f6a5294".into(),
                    "inactive".into()
                )
            ]
        );
        assert_eq!(page.next, None);
        assert_eq!(page.total_count, Some(2));
        // Plain strings are borrowed from the body, not copied.
        assert!(matches!(page.users[0].id, Some(Cow::Borrowed(_))));
        assert!(matches!(page.users[0].status, Some(Cow::Borrowed(_))));
    }

    #[test]
    fn cursor_page_with_upper_case_and_extra_fields() {
        let body = fixture("users-cursor-page.json");
        let page = decode(&body).unwrap();
        assert_eq!(page.users.len(), 2);
        assert_eq!(page.users[1].status.as_deref(), Some("INVITED"));
        assert!(page
            .next
            .as_deref()
            .unwrap()
            .starts_with("W3siZmllbGQiOiAidXNlcnMu"));
        assert!(matches!(page.next, Some(Cow::Borrowed(_))));
        assert_eq!(page.total_count, Some(5));
    }

    #[test]
    fn bare_array_without_page_info() {
        let body = fixture("users-bare-array.json");
        let page = decode(&body).unwrap();
        assert_eq!(page.users.len(), 2);
        assert_eq!((page.next, page.total_count), (None, None));
    }

    #[test]
    fn wrapped_data_with_null_next() {
        let body = fixture("users-wrapped.json");
        let page = decode(&body).unwrap();
        assert_eq!(summary(&page)[1].1, "inactive");
        assert_eq!(page.next, None);
        assert!(matches!(page.users[0].id, Some(Cow::Borrowed(_))));
    }

    #[test]
    fn odd_but_valid_fields() {
        let body = br#"{"data":[{"id":7,"status":null},{"id":"a\"b"},{"status":"x"},{"id":-3}],
                        "page_info":{"next":"  "}, "extra": {"data": 1}}"#;
        let page = decode(body).unwrap();
        assert_eq!(
            summary(&page),
            [
                ("7".into(), "-".into()),
                ("a\"b".into(), "-".into()),
                ("-".into(), "x".into()),
                ("-3".into(), "-".into())
            ]
        );
        assert_eq!(page.next, None);
        for body in [
            r#"{"data": [], "page_info": null}"#,
            r#"{"data": [], "page_info": {}}"#,
            r#"{"page_info": {"next": null}, "data": {"users": [], "total": 1}}"#,
        ] {
            let page = decode(body.as_bytes()).unwrap_or_else(|e| panic!("{body}: {e}"));
            assert_eq!((page.users.len(), page.next), (0, None), "{body}");
        }
        let page = decode(br#"{"data": [], "page_info": {"next": 3}}"#).unwrap();
        assert_eq!(page.next.as_deref(), Some("3"));
    }

    #[test]
    fn email_and_created_at_as_the_fixtures_send_them() {
        let body = fixture("users-cursor-page.json");
        let page = decode(&body).unwrap();
        let u = &page.users[0];
        assert_eq!(u.email.as_deref(), Some("ana@example.com"));
        assert!(matches!(u.email, Some(Cow::Borrowed(_))));
        assert_eq!(u.created_at, Some(1_747_650_000_000.0));
        // Without emails, the same page but for them.
        let lean = decode_with(&body, false).unwrap();
        assert_eq!(lean.users.len(), 2);
        assert_eq!(lean.users[0].email, None);
        assert_eq!(lean.users[0].created_at, u.created_at);
        assert_eq!(
            (&lean.users[1].id, &lean.users[1].status),
            (&page.users[1].id, &page.users[1].status)
        );
        assert_eq!(
            (lean.next, lean.total_count),
            (page.next.clone(), page.total_count)
        );
        let wrapped = fixture("users-wrapped.json");
        assert_eq!(decode_with(&wrapped, false).unwrap().users.len(), 2);
        let body = fixture("users-documented.json");
        let page = decode(&body).unwrap();
        assert_eq!(page.users[1].created_at, Some(1_710_761_600.0));
        assert_eq!(
            page.users[1].fields(),
            crate::census::User {
                id: Some("6a0b93c7-5f80-4273-8eb7-8b4d3f6a5294"),
                status: Some("inactive"),
                email: Some("john.smith@example.com"),
                created_at: Some(1_710_761_600.0),
            }
        );
    }

    #[test]
    fn odd_emails_and_dates_are_not_sent_rather_than_a_failed_page() {
        for (raw, email, created) in [
            (r#""email": null, "created_at": null"#, None, None),
            (
                r#""email": 5, "created_at": "1710675200""#,
                None,
                Some(1_710_675_200.0),
            ),
            (
                r#""email": ["a@b.c"], "created_at": 1.5e12"#,
                None,
                Some(1.5e12),
            ),
            (r#""email": {"a": [1]}, "created_at": -3"#, None, Some(-3.0)),
            (
                r#""email": true, "created_at": "2024-03-17T12:00:00Z""#,
                None,
                Some(1_710_676_800.0),
            ),
            (
                r#""email": "x@y.z", "created_at": "yesterday""#,
                Some("x@y.z"),
                None,
            ),
            (
                r#""email": "a\u0040b.c", "created_at": {"t": 1}"#,
                Some("a@b.c"),
                None,
            ),
            (r#""created_at": [1, [2]], "created_at2": true"#, None, None),
            (r#""created_at": false"#, None, None),
        ] {
            let body = format!(r#"{{"data": [{{"id": "1", {raw}}}]}}"#);
            let page = decode(body.as_bytes()).unwrap_or_else(|e| panic!("{raw}: {e}"));
            let u = &page.users[0];
            assert_eq!(
                (u.email.as_deref(), u.created_at),
                (email, created),
                "{raw}"
            );
        }
    }

    #[test]
    fn what_is_not_a_page() {
        for (body, error) in [
            (fixture("error-401.json"), "missing field `data`"),
            (fixture("error-rate-limit-500.json"), "missing field `data`"),
            (b"<html><body>502</body></html>".to_vec(), "expected value"),
            // An array is no page, even one whose items would fill a page's fields.
            (b" [[]]".to_vec(), "expected a page object"),
            (
                b"[[{\"id\": \"a\"}], {\"next\": \"x\"}]".to_vec(),
                "expected a page object",
            ),
            (
                b"{\"data\": {\"projects\": []}}".to_vec(),
                "missing field `users`",
            ),
            (b"{\"data\": [1, 2]}".to_vec(), "expected struct User"),
            // The wrapped shape's own error, not that `data` is not an array.
            (
                b"{\"data\": {\"users\": [{\"id\": true}]}}".to_vec(),
                "expected a string or an integer",
            ),
            (b"{\"data\": 5}".to_vec(), "expected a sequence"),
            (b"{\"data\": [{\"id\": 1.5}]}".to_vec(), "expected a string"),
            (
                b"{\"data\": [], \"data\": []}".to_vec(),
                "duplicate field `data`",
            ),
            (
                b"{\"data\": [], \"page_info\": {}, \"page_info\": {}}".to_vec(),
                "duplicate field `page_info`",
            ),
            (b"{\"data\": []} x".to_vec(), "trailing characters"),
            (
                b"{\"data\": [], \"page_info\": 5}".to_vec(),
                "expected struct PageInfo",
            ),
            (b"".to_vec(), "EOF"),
        ] {
            let err = decode(&body).unwrap_err().to_string();
            assert!(err.contains(error), "{err}");
        }
    }

    #[test]
    fn excerpts_are_short_and_on_one_line() {
        assert_eq!(excerpt("a\nb\"c"), r#""a b\"c""#);
        assert_eq!(excerpt(&"é".repeat(120)), format!("{:?}", "é".repeat(120)));
        assert_eq!(
            excerpt(&"é".repeat(121)),
            format!("{:?}", "é".repeat(120) + "…")
        );
        assert!(excerpt(&"x".repeat(10_000)).len() < 130);
    }
}
