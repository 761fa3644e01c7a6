//! Decoding one page of `GET /users`, straight from the body bytes.
//!
//! Only `data[].id`, `data[].status`, `page_info.next` and `page_info.total_count` are read;
//! strings borrow from the body where they can and everything else is skipped unparsed.
//! Tolerated shapes: `data` as an array or as `{"users": [...]}`, `page_info` absent, `next`
//! empty, null or absent, ids as strings or numbers.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

/// One decoded page, its users collected (see [`decode_each`] for the streaming form).
#[derive(Debug, PartialEq, Eq)]
pub struct Page<'a> {
    pub users: Vec<User<'a>>,
    /// The next page: a URL, a path or an opaque cursor; `None` when the walk is over.
    pub next: Option<Cow<'a, str>>,
    pub total_count: Option<u64>,
}

/// What a page says besides its users.
#[derive(Debug, PartialEq, Eq)]
pub struct PageInfo<'a> {
    /// Users on the page.
    pub users: usize,
    /// The next page: a URL, a path or an opaque cursor; `None` when the walk is over.
    pub next: Option<Cow<'a, str>>,
    pub total_count: Option<u64>,
}

/// The fields of a user that are counted.
#[derive(Debug, PartialEq, Eq, Deserialize)]
pub struct User<'a> {
    #[serde(default, borrow)]
    pub id: Option<Text<'a>>,
    #[serde(default, borrow)]
    pub status: Option<Text<'a>>,
}

/// A string borrowed from the body when it has no escapes; numbers are taken as their text.
#[derive(Debug, PartialEq, Eq)]
pub struct Text<'a>(pub Cow<'a, str>);

impl Text<'_> {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Why a body is not a page.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DecodeError(String);

/// Decodes a page, collecting its users. The error says what was wrong, never more than a
/// short excerpt of the body.
pub fn decode(body: &[u8]) -> Result<Page<'_>, DecodeError> {
    let mut users = Vec::new();
    let info = decode_each(body, |user| users.push(user))?;
    Ok(Page {
        users,
        next: info.next,
        total_count: info.total_count,
    })
}

/// Decodes a page, handing each user to `each` as it is read, so no list of a page's users
/// is ever built. On an error some users may already have been handed over.
pub fn decode_each<'a>(
    body: &'a [u8],
    each: impl FnMut(User<'a>),
) -> Result<PageInfo<'a>, DecodeError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let raw = RawPage { each }
        .deserialize(&mut de)
        .and_then(|raw| de.end().map(|()| raw))
        .map_err(|e| {
            DecodeError(format!(
                "response is not a Testsigma users page ({e}); body starts with {}",
                excerpt(body)
            ))
        })?;
    let Some(users) = raw.users else {
        return Err(DecodeError(format!(
            "response has no \"data\" list of users; body starts with {}",
            excerpt(body)
        )));
    };
    let next = raw.next.map(|t| t.0).filter(|next| !next.trim().is_empty());
    Ok(PageInfo {
        users,
        next,
        total_count: raw.total_count,
    })
}

/// At most 120 characters of a body, on one line, for log messages.
pub fn excerpt(body: &[u8]) -> String {
    const MAX: usize = 120;
    let text = String::from_utf8_lossy(&body[..body.len().min(MAX * 4)]);
    let mut out: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX)
        .collect();
    if text.chars().count() > MAX || body.len() > MAX * 4 {
        out.push('…');
    }
    format!("{out:?}")
}

/// The top level of a page: `data` goes user by user to `each`; `page_info` is read;
/// anything else is skipped unparsed.
struct RawPage<F> {
    each: F,
}

/// What [`RawPage`] found.
struct Found<'a> {
    users: Option<usize>,
    next: Option<Text<'a>>,
    total_count: Option<u64>,
}

impl<'de, F: FnMut(User<'de>)> DeserializeSeed<'de> for RawPage<F> {
    type Value = Found<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, F: FnMut(User<'de>)> Visitor<'de> for RawPage<F> {
    type Value = Found<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object with \"data\" and \"page_info\"")
    }
    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = Found {
            users: None,
            next: None,
            total_count: None,
        };
        let mut info_seen = false;
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            match key.as_ref() {
                "data" if found.users.is_some() => return Err(de::Error::duplicate_field("data")),
                "data" => {
                    let users = map.next_value_seed(Users(&mut self.each))?;
                    found.users = Some(users);
                }
                "page_info" if info_seen => return Err(de::Error::duplicate_field("page_info")),
                "page_info" => {
                    info_seen = true;
                    if let Some(info) = map.next_value::<Option<RawPageInfo<'de>>>()? {
                        found.next = info.next;
                        found.total_count = info.total_count;
                    }
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(found)
    }
}

#[derive(Default, Deserialize)]
struct RawPageInfo<'a> {
    #[serde(default, borrow)]
    next: Option<Text<'a>>,
    #[serde(default, deserialize_with = "lenient_count")]
    total_count: Option<u64>,
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

/// `data`: a bare array of users, or an object holding it under `users`; each user goes to
/// the function as it is read, and the value is how many there were.
struct Users<'f, F>(&'f mut F);

impl<'de, F: FnMut(User<'de>)> DeserializeSeed<'de> for Users<'_, F> {
    type Value = usize;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, F: FnMut(User<'de>)> Visitor<'de> for Users<'_, F> {
    type Value = usize;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of users or an object with a \"users\" array")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut n = 0;
        while let Some(user) = seq.next_element()? {
            (self.0)(user);
            n += 1;
        }
        Ok(n)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            if key == "users" && found.is_none() {
                found = Some(map.next_value_seed(Users(&mut *self.0))?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        found.ok_or_else(|| de::Error::missing_field("users"))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Text<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or a number")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_string())))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_string())))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
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
                let s = |t: &Option<Text<'_>>| t.as_ref().map_or("-", |t| t.as_str()).to_owned();
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
        assert!(matches!(page.users[0].id, Some(Text(Cow::Borrowed(_)))));
    }

    #[test]
    fn cursor_page_with_upper_case_and_extra_fields() {
        let body = fixture("users-cursor-page.json");
        let page = decode(&body).unwrap();
        assert_eq!(page.users.len(), 2);
        assert_eq!(page.users[1].status.as_ref().unwrap().as_str(), "INVITED");
        assert!(page
            .next
            .as_deref()
            .unwrap()
            .starts_with("W3siZmllbGQiOiAidXNlcnMu"));
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
    }

    #[test]
    fn odd_but_valid_fields() {
        let body = br#"{"data":[{"id":7,"status":null},{"id":"a\"b"},{"status":"x"}],
                        "page_info":{"next":"  "}}"#;
        let page = decode(body).unwrap();
        assert_eq!(
            summary(&page),
            [
                ("7".into(), "-".into()),
                ("a\"b".into(), "-".into()),
                ("-".into(), "x".into())
            ]
        );
        assert_eq!(page.next, None);
    }

    #[test]
    fn error_bodies_are_decode_errors_with_an_excerpt() {
        for body in [
            fixture("error-401.json"),
            fixture("error-rate-limit-500.json"),
            b"<html><body>502 Bad Gateway</body></html>".to_vec(),
            b"{\"data\": {\"projects\": []}}".to_vec(),
            b"{\"data\": [1, 2]}".to_vec(),
            b"".to_vec(),
        ] {
            let err = decode(&body).unwrap_err().to_string();
            assert!(err.contains("body starts with"), "{err}");
        }
        let err = decode(&[b'x'; 10_000]).unwrap_err().to_string();
        assert!(err.len() < 400, "excerpt is bounded: {err}");
    }
}
