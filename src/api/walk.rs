//! The rules of walking the pages of one poll, without I/O: where the next page is, and when
//! a walk must stop because it would otherwise never end, would send the key elsewhere, or
//! would build a URL of megabytes.

use std::collections::HashSet;
use std::hash::{BuildHasher, RandomState};

use secrecy::SecretString;
use url::Url;

use super::{excerpt, PollError};

/// Pages in a row that bring no new user yet link onwards before the walk is abandoned.
pub const MAX_IDLE_PAGES: u32 = 3;
/// Pages at most when the API does not say how many users there are.
pub const MAX_PAGES_UNKNOWN_TOTAL: u64 = 100_000;
/// The longest next page link or cursor followed, in bytes: real cursors are a few dozen
/// bytes, and a longer one would make a URL (and every log line naming it) as long.
pub const MAX_NEXT_BYTES: usize = 8 * 1024;

/// State of one walk through the pages.
#[derive(Debug)]
pub struct Walk<'a> {
    users_url: &'a Url,
    page_size: u32,
    /// Blanked out of the excerpts of links in errors, before they are cut.
    key: &'a SecretString,
    /// Hashes of the URLs requested so far: 8 bytes a page, whatever the cursor's length.
    visited: HashSet<u64>,
    hasher: RandomState,
    idle: u32,
    pages: u64,
    max_pages: u64,
}

impl<'a> Walk<'a> {
    /// `users_url` is `{base}/users`.
    pub fn new(users_url: &'a Url, page_size: u32, key: &'a SecretString) -> Self {
        Self {
            users_url,
            page_size,
            key,
            visited: HashSet::new(),
            hasher: RandomState::new(),
            idle: 0,
            pages: 0,
            max_pages: MAX_PAGES_UNKNOWN_TOTAL,
        }
    }

    /// The first page's URL.
    pub fn first(&mut self) -> Url {
        let url = self.with_query(None);
        self.visited.insert(self.hasher.hash_one(url.as_str()));
        url
    }

    /// Pages fetched so far.
    pub fn pages(&self) -> u64 {
        self.pages
    }

    /// After a page with `users` users of which `new` were not seen before, the URL of the next
    /// page, or `None` when the walk is complete.
    pub fn next(
        &mut self,
        users: usize,
        new: usize,
        total_count: Option<u64>,
        next: Option<&str>,
    ) -> Result<Option<Url>, PollError> {
        self.pages += 1;
        if self.pages == 1 {
            if let Some(total) = total_count {
                // Each page holds about as many users as the first; twice that many pages,
                // plus slack for users added during the walk, is more than any honest API needs.
                let per_page = users.max(1) as u64;
                self.max_pages = total
                    .div_ceil(per_page)
                    .saturating_mul(2)
                    .saturating_add(10);
            }
        }
        let Some(next) = next.map(str::trim).filter(|n| !n.is_empty()) else {
            return Ok(None);
        };
        if next.len() > MAX_NEXT_BYTES {
            return Err(PollError::Pagination(format!(
                "the next page link is {} bytes long, more than the {} KiB a link may be; \
                 it starts with {}",
                next.len(),
                MAX_NEXT_BYTES / 1024,
                self.shown(next)
            )));
        }
        self.idle = if new == 0 { self.idle + 1 } else { 0 };
        if self.idle > MAX_IDLE_PAGES {
            return Err(PollError::Pagination(format!(
                "{} pages in a row brought no new users but still link to a next page",
                self.idle
            )));
        }
        if self.pages >= self.max_pages {
            return Err(PollError::Pagination(format!(
                "{} pages fetched, more than the reported user count can fill; the API keeps \
                 linking to more pages",
                self.pages
            )));
        }
        let url = self.resolve(next)?;
        if !self.visited.insert(self.hasher.hash_one(url.as_str())) {
            return Err(PollError::Pagination(format!(
                "the API links back to a page already fetched in this poll ({})",
                self.shown(next)
            )));
        }
        Ok(Some(url))
    }

    /// An absolute URL or a path must stay on the API's origin (checked after parsing, as the
    /// URL parser reads `/\\host` or `/<tab>/host` as another host); anything else is a cursor.
    fn resolve(&self, next: &str) -> Result<Url, PollError> {
        let lower = next.get(..8).unwrap_or(next).to_ascii_lowercase();
        let url = if lower.starts_with("http://") || lower.starts_with("https://") {
            Url::parse(next).map_err(|e| {
                PollError::Pagination(format!(
                    "next page link {} is not a valid URL ({e})",
                    self.shown(next)
                ))
            })?
        } else if next.starts_with('/') && !next.starts_with("//") {
            self.users_url.join(next).map_err(|e| {
                PollError::Pagination(format!(
                    "next page path {} is not valid ({e})",
                    self.shown(next)
                ))
            })?
        } else {
            return Ok(self.with_query(Some(next)));
        };
        if url.origin() != self.users_url.origin() {
            return Err(PollError::Pagination(format!(
                "next page link points to another origin ({}); not followed, so the API key \
                 stays with {}",
                url.origin().ascii_serialization(),
                self.users_url.origin().ascii_serialization()
            )));
        }
        Ok(url)
    }

    /// A link for a message: its start, the key blanked out.
    fn shown(&self, next: &str) -> String {
        excerpt(next.as_bytes(), self.key)
    }

    fn with_query(&self, cursor: Option<&str>) -> Url {
        let mut url = self.users_url.clone();
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("page_size", &self.page_size.to_string());
            if let Some(cursor) = cursor {
                query.append_pair("cursor", cursor);
            }
        }
        url
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn users_url() -> Url {
        Url::parse("https://api.example.com:8443/api/v1/users").unwrap()
    }

    fn key() -> SecretString {
        SecretString::from("Tk-AbCd12")
    }

    fn reason(r: Result<Option<Url>, PollError>) -> String {
        match r {
            Err(e @ PollError::Pagination(_)) => e.to_string(),
            other => panic!("expected a pagination error, got {other:?}"),
        }
    }

    #[test]
    fn first_page_and_the_end_of_the_walk() {
        let (base, key) = (users_url(), key());
        let mut walk = Walk::new(&base, 50, &key);
        assert_eq!(
            walk.first().as_str(),
            "https://api.example.com:8443/api/v1/users?page_size=50"
        );
        assert_eq!(walk.next(2, 2, Some(2), None).unwrap(), None);
        assert_eq!(walk.next(2, 2, Some(2), Some("  ")).unwrap(), None);
        assert_eq!(walk.pages(), 2);
    }

    #[test]
    fn cursor_absolute_and_relative_links() {
        let (base, key) = (users_url(), key());
        let mut walk = Walk::new(&base, 2, &key);
        walk.first();
        let cursor = walk.next(2, 2, None, Some("W3si+/=")).unwrap().unwrap();
        assert_eq!(cursor.query(), Some("page_size=2&cursor=W3si%2B%2F%3D"));
        let abs = walk
            .next(
                2,
                2,
                None,
                Some("https://api.example.com:8443/api/v1/users?page_size=2&page=3"),
            )
            .unwrap()
            .unwrap();
        assert_eq!(
            abs.as_str(),
            "https://api.example.com:8443/api/v1/users?page_size=2&page=3"
        );
        let rel = walk
            .next(2, 2, None, Some("/api/v1/users?page=4"))
            .unwrap()
            .unwrap();
        assert_eq!(
            rel.as_str(),
            "https://api.example.com:8443/api/v1/users?page=4"
        );
    }

    #[test]
    fn foreign_origins_are_refused() {
        let (base, key) = (users_url(), key());
        for next in [
            "https://evil.example.com/api/v1/users?page=2",
            "http://api.example.com:8443/api/v1/users?page=2",
            "https://api.example.com/api/v1/users?page=2",
            "HTTPS://evil.example.com/x",
            "/\\evil.example.com/x",
            "/\t/evil.example.com/x",
            "//evil.example.com/x",
        ] {
            let mut walk = Walk::new(&base, 2, &key);
            walk.first();
            let result = walk.next(2, 2, None, Some(next));
            if next.starts_with("//") {
                // Not a URL nor a path: only ever sent back to the API as a cursor.
                assert_eq!(result.unwrap().unwrap().host_str(), Some("api.example.com"));
            } else {
                assert!(reason(result).contains("another origin"), "{next}");
            }
        }
    }

    #[test]
    fn a_repeated_link_ends_the_walk() {
        let (base, key) = (users_url(), key());
        let mut walk = Walk::new(&base, 2, &key);
        walk.first();
        walk.next(2, 2, None, Some("a")).unwrap();
        walk.next(2, 2, None, Some("b")).unwrap();
        assert!(reason(walk.next(2, 2, None, Some("a"))).contains("already fetched"));
        // A link back to the first page is a loop too.
        let mut walk = Walk::new(&base, 2, &key);
        walk.first();
        let err = walk.next(
            2,
            2,
            None,
            Some("https://api.example.com:8443/api/v1/users?page_size=2"),
        );
        assert!(reason(err).contains("already fetched"));
    }

    #[test]
    fn more_than_three_idle_pages_end_the_walk() {
        let (base, key) = (users_url(), key());
        let mut walk = Walk::new(&base, 2, &key);
        walk.first();
        for cursor in ["a", "b", "c"] {
            walk.next(0, 0, None, Some(cursor)).unwrap();
        }
        // A page with a new user resets the streak.
        walk.next(2, 1, None, Some("d")).unwrap();
        for cursor in ["e", "f", "g"] {
            walk.next(2, 0, None, Some(cursor)).unwrap();
        }
        assert!(reason(walk.next(0, 0, None, Some("h"))).contains("4 pages in a row"));
    }

    #[test]
    fn pages_are_bounded_by_the_reported_total() {
        let (base, key) = (users_url(), key());
        let mut walk = Walk::new(&base, 10, &key);
        walk.first();
        // 100 users at 10 a page: 10 pages needed, 30 allowed.
        let mut result = Ok(None);
        for i in 0..40 {
            result = walk.next(10, 10, Some(100), Some(&format!("c{i}")));
            if result.is_err() {
                break;
            }
        }
        assert!(reason(result).contains("30 pages fetched"));
    }
    #[test]
    fn a_next_link_longer_than_8_kib_ends_the_walk_with_a_short_message() {
        let (base, key) = (users_url(), key());
        let mut walk = Walk::new(&base, 2, &key);
        walk.first();
        let longest = "c".repeat(MAX_NEXT_BYTES);
        assert!(walk.next(2, 2, None, Some(&longest)).unwrap().is_some());
        // Megabytes, the key near the start: refused before any URL is built from it.
        let long = format!("xy{}{}", key.expose_secret(), "c".repeat(4 << 20));
        let message = reason(walk.next(2, 2, None, Some(&long)));
        assert!(
            message.contains("4194315 bytes long, more than the 8 KiB"),
            "{message}"
        );
        assert!(
            message.contains("starts with \"xy[REDACTED]ccc"),
            "{message}"
        );
        assert!(message.len() < 300, "{message}");
    }

    #[test]
    fn a_key_in_a_foreign_host_is_blanked_out_lower_cased() {
        let (base, key) = (users_url(), key());
        let mut walk = Walk::new(&base, 2, &key);
        walk.first();
        let next = format!("https://{}.evil.example.com/x", key.expose_secret());
        let error = walk.next(2, 2, None, Some(&next)).unwrap_err();
        // The origin in the message is lower-cased; the client blanks the key out of it.
        assert!(error.to_string().contains("tk-abcd12.evil"), "{error}");
        let error = error.map_text(|t| super::super::redact::redact(&t, &key).into_owned());
        let message = error.to_string();
        assert!(
            message.contains("https://[REDACTED].evil.example.com"),
            "{message}"
        );
        assert!(!message.to_lowercase().contains("abcd12"), "{message}");
    }
}
