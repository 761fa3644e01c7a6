//! Pure counting: users in, a [`Census`] and a [`Roster`] out. No I/O.
//!
//! A poll feeds every page's users to one [`Tally`]; [`Tally::finish`] turns it into the
//! numbers that are published and the list of who was seen, for [`crate::membership`].
//! Users are de-duplicated by `id` (offset pages shift while users are added), statuses and
//! email domains are normalised, and whatever the API sends stays bounded: ids are held at
//! 16 bytes ([`crate::ids`]), a label value over [`MAX_LABEL_BYTES`] or containing the API key
//! counts as `other`, and only so many distinct values are told apart during a poll
//! ([`Rules::tracked`]) before the label cap of [`Tally::finish`].

use std::borrow::Cow;
mod age;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime};

use secrecy::{ExposeSecret, SecretString};

use self::age::Ages;
pub use self::age::{created_seconds, WINDOWS};
use crate::ids::{IdTable, UserId};

/// Label for users whose status (or email domain) is missing, null, empty or not valid.
pub const UNKNOWN: &str = "unknown";
/// Label that collects the values past the cap, too long, or containing the key.
pub const OTHER: &str = "other";
/// Labels always present after a successful poll, 0 if nobody has them.
pub const ALWAYS_SHOWN: [&str; 2] = ["active", "inactive"];
/// A status or domain longer than this, after normalisation, counts as [`OTHER`].
pub const MAX_LABEL_BYTES: usize = 64;

/// How users are counted: the label caps and the poll deadline, from the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    /// `--max-statuses`.
    pub max_statuses: usize,
    /// `--users-by-email-domain`.
    pub email_domains: bool,
    /// `--max-email-domains`.
    pub max_email_domains: usize,
    /// `--poll-timeout`: how much later than its start a poll can finish, which bounds what
    /// is kept to end the `created_at` windows at the finish ([`Tally::finish`]).
    pub poll_timeout: Duration,
}

impl Default for Rules {
    fn default() -> Self {
        Self {
            max_statuses: 20,
            email_domains: false,
            max_email_domains: 20,
            poll_timeout: Duration::from_secs(15 * 60),
        }
    }
}

impl Rules {
    /// Distinct values of a label told apart during a poll, for a cap of `max`: four times
    /// the cap, at least 1024 and at most 16 000 (so that a status index fits the 15 bits
    /// of [`crate::ids::IdTable`] with room for the remembered ones). Past it, new values
    /// count as `other` at once: the cap then keeps the largest of those seen, and memory
    /// stays at most about 16 000 values of 64 bytes whatever the API sends.
    pub fn tracked(max: usize) -> usize {
        max.saturating_mul(4).clamp(1024, 16_000)
    }
}

/// The fields of one user that are counted, as the API sent them.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct User<'a> {
    pub id: Option<&'a str>,
    pub status: Option<&'a str>,
    pub email: Option<&'a str>,
    /// `created_at` as a number: seconds or milliseconds since the Unix epoch.
    pub created_at: Option<f64>,
}

/// What one successful poll counted.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Census {
    /// Distinct users.
    pub total: u64,
    /// Users per normalised status; the values add up to `total`.
    pub by_status: BTreeMap<String, u64>,
    /// `page_info.total_count` of the first page, when the API sent it.
    pub reported: Option<u64>,
    /// Users created within each of [`WINDOWS`] before the poll finished, in that order.
    pub created_within: [u64; 3],
    /// The latest usable `created_at`, in Unix seconds.
    pub newest_created: Option<f64>,
    /// Users per email domain, when counted (`--users-by-email-domain`).
    pub by_email_domain: Option<BTreeMap<String, u64>>,
}

/// Who one poll saw: each id with the index of its normalised status in `statuses`.
#[derive(Debug, Default)]
pub struct Roster {
    pub ids: IdTable,
    pub statuses: Vec<Box<str>>,
}

impl Roster {
    /// The normalised status of an index.
    pub fn status(&self, index: u16) -> &str {
        self.statuses.get(usize::from(index)).map_or(OTHER, |s| s)
    }
}

/// Distinct values of one label with their counts, bounded.
#[derive(Debug)]
struct Labels {
    index: HashMap<Box<str>, u16, foldhash::fast::RandomState>,
    names: Vec<Box<str>>,
    counts: Vec<u64>,
    limit: usize,
}

impl Labels {
    fn new(limit: usize) -> Self {
        Self {
            index: HashMap::default(),
            names: Vec::new(),
            counts: Vec::new(),
            limit,
        }
    }

    /// The index of a normalised value, added if new: as [`OTHER`] when it is too long,
    /// past the limit, or contains the key.
    fn of(&mut self, value: &str, key: &SecretString) -> u16 {
        if let Some(&i) = self.index.get(value) {
            return i;
        }
        // The cheap checks first: the key is looked for only in a value that would be added.
        let value = if value.len() > MAX_LABEL_BYTES
            || self.names.len() >= self.limit
            || contains_key(value, key)
        {
            OTHER
        } else {
            value
        };
        if let Some(&i) = self.index.get(value) {
            return i;
        }
        let i = u16::try_from(self.names.len()).unwrap_or(u16::MAX);
        self.index.insert(value.into(), i);
        self.names.push(value.into());
        self.counts.push(0);
        i
    }

    fn count(&mut self, index: u16) {
        if let Some(n) = self.counts.get_mut(usize::from(index)) {
            *n += 1;
        }
    }

    /// The counts of the values some user has, by name.
    fn counted(&self) -> impl Iterator<Item = (&str, u64)> {
        self.names
            .iter()
            .zip(&self.counts)
            .filter(|(_, &n)| n > 0)
            .map(|(name, &n)| (&**name, n))
    }
}

/// Whether a (lower-case) value contains the key, in any case. The key is ASCII (it goes in
/// a header), so comparing bytes without regard to ASCII case is enough, and no copy of the
/// key is made.
fn contains_key(value: &str, key: &SecretString) -> bool {
    let key = key.expose_secret().as_bytes();
    !key.is_empty()
        && value
            .as_bytes()
            .windows(key.len())
            .any(|w| w.eq_ignore_ascii_case(key))
}

/// Running count of one poll.
#[derive(Debug)]
pub struct Tally {
    rules: Rules,
    /// `created_at` counts, against windows that end when the poll started until
    /// [`Tally::finish`] moves their end to when it finished.
    ages: Ages,
    ids: IdTable,
    anonymous: u64,
    statuses: Labels,
    domains: Option<Labels>,
    reported: Option<u64>,
}

impl Default for Tally {
    fn default() -> Self {
        Self::new(Rules::default(), SystemTime::now())
    }
}

impl Tally {
    /// An empty tally for a poll that starts `now` and finishes within `rules.poll_timeout`.
    pub fn new(rules: Rules, now: SystemTime) -> Self {
        Self {
            rules,
            ages: Ages::new(now, rules.poll_timeout),
            ids: IdTable::default(),
            anonymous: 0,
            statuses: Labels::new(Rules::tracked(rules.max_statuses)),
            domains: rules
                .email_domains
                .then(|| Labels::new(Rules::tracked(rules.max_email_domains))),
            reported: None,
        }
    }

    /// Reserves room for `users` more users (a hint, e.g. the reported total).
    pub fn reserve(&mut self, users: usize) {
        // Bounded so that an inflated total_count cannot claim much memory up front: ids
        // spread over the whole table, so a table far too large still gets touched page by page.
        let users = users.min(1_000_000);
        self.ids.reserve(users.saturating_sub(self.ids.len()));
    }

    /// Users with an id the tally holds before its table of ids grows.
    pub fn room(&self) -> usize {
        self.ids.room()
    }

    /// Records the `total_count` the API reported; only the first report is kept.
    pub fn set_reported(&mut self, total: u64) {
        self.reported.get_or_insert(total);
    }

    /// Counts one user; returns false when the id was already counted in this poll (the
    /// first sighting counts). A user without an id cannot be de-duplicated and is counted
    /// as it comes. `key` is the API key, so that no label value carries it.
    pub fn add(&mut self, user: &User<'_>, key: &SecretString) -> bool {
        let status = self.statuses.of(&status_value(user.status), key);
        match user.id {
            Some(id) if !self.ids.insert(UserId::of(id), status) => return false,
            Some(_) => {}
            None => self.anonymous += 1,
        }
        self.statuses.count(status);
        if let Some(domains) = &mut self.domains {
            let domain = domains.of(&email_domain(user.email), key);
            domains.count(domain);
        }
        if let Some(created) = user.created_at.and_then(created_seconds) {
            self.ages.add(created);
        }
        true
    }

    /// The census, with at most `max_statuses` distinct status labels (at least 3: active,
    /// inactive and other; the statuses with the most users keep their label, ties broken by
    /// name; `active` and `inactive` always keep theirs; the rest are summed into `other`)
    /// and as many domains; and the roster of who was seen. The `created_at` windows end at
    /// `finished`, when the poll finished, taken in whole seconds after its start, not before
    /// the start and not past it by more than the poll deadline and a minute.
    pub fn finish(self, finished: SystemTime) -> (Census, Roster) {
        let total = self.ids.len() as u64 + self.anonymous;
        let mut statuses: Vec<(String, u64)> = self
            .statuses
            .counted()
            .map(|(s, n)| (s.to_owned(), n))
            .collect();
        for status in ALWAYS_SHOWN {
            if !statuses.iter().any(|(s, _)| s == status) {
                statuses.push((status.to_owned(), 0));
            }
        }
        let by_email_domain = self.domains.as_ref().map(|domains| {
            let counts = domains.counted().map(|(d, n)| (d.to_owned(), n)).collect();
            cap(counts, self.rules.max_email_domains, &[])
        });
        let (created_within, newest_created) = self.ages.finish(finished);
        let census = Census {
            total,
            by_status: cap(statuses, self.rules.max_statuses, &ALWAYS_SHOWN),
            reported: self.reported,
            created_within,
            newest_created,
            by_email_domain,
        };
        let roster = Roster {
            ids: self.ids,
            statuses: self.statuses.names,
        };
        (census, roster)
    }
}

/// At most `max` labels (at least one more than `pinned`): those in `pinned` first, then by
/// count descending, then by name; the rest summed into [`OTHER`].
fn cap(counts: Vec<(String, u64)>, max: usize, pinned: &[&str]) -> BTreeMap<String, u64> {
    let max = max.max(pinned.len() + 1);
    if counts.len() <= max {
        return counts.into_iter().collect();
    }
    let mut ranked = counts;
    ranked.sort_by(|(a, an), (b, bn)| {
        let free = |s: &str| !pinned.contains(&s);
        (free(a), std::cmp::Reverse(*an), a).cmp(&(free(b), std::cmp::Reverse(*bn), b))
    });
    let mut kept = BTreeMap::new();
    let mut other = 0;
    for (label, n) in ranked {
        if kept.len() < max - 1 && label != OTHER {
            kept.insert(label, n);
        } else {
            other += n;
        }
    }
    *kept.entry(OTHER.to_owned()).or_insert(0) += other;
    kept
}

/// Trims and lower-cases a status; empty becomes [`UNKNOWN`]. Borrows when already normal.
pub fn normalise(status: &str) -> Cow<'_, str> {
    let trimmed = status.trim();
    if trimmed.is_empty() {
        UNKNOWN.into()
    } else if trimmed.chars().any(char::is_uppercase) {
        trimmed.to_lowercase().into()
    } else {
        trimmed.into()
    }
}

/// A status as counted: normalised, and [`OTHER`] at once when so long that it cannot get
/// under [`MAX_LABEL_BYTES`] (lower-casing shrinks a character at most from 4 bytes to 1),
/// so that a megabyte is not copied to find that out.
fn status_value(status: Option<&str>) -> Cow<'_, str> {
    match status {
        Some(s) if s.len() > 4 * MAX_LABEL_BYTES && s.trim().len() > 4 * MAX_LABEL_BYTES => {
            OTHER.into()
        }
        Some(s) => normalise(s),
        None => UNKNOWN.into(),
    }
}

/// The lower-cased part of an email after its last `@`: [`UNKNOWN`] when there is none or
/// it is not a domain name (letters, digits, `-` and inner dots).
pub fn email_domain(email: Option<&str>) -> Cow<'_, str> {
    let Some((_, domain)) = email.and_then(|e| e.trim().rsplit_once('@')) else {
        return UNKNOWN.into();
    };
    if domain.len() > 4 * MAX_LABEL_BYTES {
        return OTHER.into();
    }
    let valid = !domain.is_empty()
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && domain
            .chars()
            .all(|c| c.is_alphanumeric() || c == '.' || c == '-');
    if !valid {
        UNKNOWN.into()
    } else if domain.chars().any(char::is_uppercase) {
        domain.to_lowercase().into()
    } else {
        domain.into()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const KEY: &str = "Sk-Test-Key-42";

    fn key() -> SecretString {
        SecretString::from(KEY)
    }

    fn rules(max_statuses: usize) -> Rules {
        Rules {
            max_statuses,
            ..Rules::default()
        }
    }

    fn user<'a>(id: Option<&'a str>, status: Option<&'a str>) -> User<'a> {
        User {
            id,
            status,
            ..User::default()
        }
    }

    fn census(users: &[(Option<&str>, Option<&str>)], max: usize) -> Census {
        let mut tally = Tally::new(rules(max), SystemTime::now());
        for (id, status) in users {
            tally.add(&user(*id, *status), &key());
        }
        tally.finish(SystemTime::now()).0
    }

    fn statuses(c: &Census) -> Vec<(&str, u64)> {
        c.by_status.iter().map(|(s, n)| (s.as_str(), *n)).collect()
    }

    #[test]
    fn normalises_case_space_and_missing() {
        let c = census(
            &[
                (Some("1"), Some("ACTIVE")),
                (Some("2"), Some("  Active ")),
                (Some("3"), None),
                (Some("4"), Some("")),
                (Some("5"), Some("   ")),
                (Some("6"), Some("Invited")),
            ],
            20,
        );
        assert_eq!(c.total, 6);
        assert_eq!(
            statuses(&c),
            [
                ("active", 2),
                ("inactive", 0),
                ("invited", 1),
                ("unknown", 3)
            ]
        );
    }

    #[test]
    fn de_duplicates_by_id_first_status_wins() {
        let a = "0b1e2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
        let mut tally = Tally::default();
        assert!(tally.add(&user(Some(a), Some("active")), &key()));
        // The same UUID in another spelling is the same user.
        assert!(!tally.add(&user(Some(&a.to_uppercase()), Some("gone")), &key()));
        assert!(tally.add(&user(Some("42"), Some("inactive")), &key()));
        assert!(!tally.add(&user(Some("42"), Some("active")), &key()));
        assert!(tally.add(&user(None, Some("active")), &key()));
        assert!(tally.add(&user(None, Some("active")), &key()));
        let (c, roster) = tally.finish(SystemTime::now());
        assert_eq!(c.total, 4);
        // A status only a repeated user had is no label.
        assert_eq!(statuses(&c), [("active", 3), ("inactive", 1)]);
        assert_eq!(
            roster.ids.len(),
            2,
            "users without an id are not in the roster"
        );
        let of = |id: &str| {
            let p = roster.ids.position(UserId::of(id).value).unwrap();
            roster.status(roster.ids.at(p).unwrap().1).to_owned()
        };
        assert_eq!((of(a).as_str(), of("42").as_str()), ("active", "inactive"));
    }

    #[test]
    fn empty_poll_still_shows_active_and_inactive() {
        let c = census(&[], 20);
        assert_eq!(c.total, 0);
        assert_eq!(statuses(&c), [("active", 0), ("inactive", 0)]);
        assert_eq!((c.created_within, c.newest_created), ([0; 3], None));
        assert_eq!(
            c.by_email_domain, None,
            "domains are counted only when asked"
        );
    }

    #[test]
    fn cap_keeps_the_largest_and_sums_the_rest_into_other() {
        let mut ids = vec![];
        for (status, n) in [("a", 5), ("b", 4), ("c", 3), ("d", 2), ("e", 1)] {
            ids.extend((0..n).map(|i| (format!("{status}{i}"), status)));
        }
        let mut users: Vec<_> = ids
            .iter()
            .map(|(id, s)| (Some(id.as_str()), Some(*s)))
            .collect();
        users.push((Some("active-user"), Some("active")));
        let c = census(&users, 5);
        assert_eq!(c.total, 16);
        assert_eq!(
            statuses(&c),
            [
                ("a", 5),
                ("active", 1),
                ("b", 4),
                ("inactive", 0),
                ("other", 6)
            ]
        );
        assert_eq!(c.by_status.values().sum::<u64>(), c.total);
    }

    #[test]
    fn cap_ties_break_by_name_and_a_literal_other_merges() {
        let c = census(
            &[
                (Some("1"), Some("zeta")),
                (Some("2"), Some("alpha")),
                (Some("3"), Some("other")),
                (Some("4"), Some("beta")),
            ],
            4,
        );
        assert_eq!(
            statuses(&c),
            [("active", 0), ("alpha", 1), ("inactive", 0), ("other", 3)]
        );
    }

    #[test]
    fn no_cap_needed_keeps_every_label() {
        let c = census(&[(Some("1"), Some("x")), (Some("2"), Some("y"))], 4);
        assert_eq!(
            statuses(&c),
            [("active", 0), ("inactive", 0), ("x", 1), ("y", 1)]
        );
    }

    #[test]
    fn first_reported_total_is_kept() {
        let mut tally = Tally::default();
        tally.reserve(10);
        tally.set_reported(7);
        tally.set_reported(9);
        assert_eq!(tally.finish(SystemTime::now()).0.reported, Some(7));
    }

    #[test]
    fn long_statuses_and_statuses_with_the_key_are_other() {
        let long = "x".repeat(1 << 20);
        let just = "y".repeat(MAX_LABEL_BYTES);
        let c = census(
            &[
                (Some("1"), Some(&long)),
                (Some("2"), Some(&format!("  {}  ", "z".repeat(65)))),
                (Some("3"), Some(&just)),
                (Some("4"), Some(&KEY.to_uppercase())),
                (Some("5"), Some(&format!("revoked:{}!", KEY.to_lowercase()))),
                (Some("6"), Some(KEY)),
                // Lower-casing makes the Kelvin sign a "k": still the key.
                (Some("7"), Some("s\u{212a}-test-key-42")),
            ],
            20,
        );
        assert_eq!(
            statuses(&c),
            [
                ("active", 0),
                ("inactive", 0),
                ("other", 6),
                (just.as_str(), 1)
            ]
        );
        let t = format!("{c:?}").to_lowercase();
        assert!(!t.contains(&KEY.to_lowercase()), "{t}");
    }

    #[test]
    fn an_empty_key_matches_no_status() {
        let mut tally = Tally::default();
        let empty = SecretString::from("");
        tally.add(&user(Some("1"), Some("active")), &empty);
        assert_eq!(
            statuses(&tally.finish(SystemTime::now()).0),
            [("active", 1), ("inactive", 0)]
        );
    }

    #[test]
    fn distinct_statuses_held_during_a_poll_are_bounded() {
        let mut tally = Tally::new(rules(20), SystemTime::now());
        for i in 0..10_000 {
            let (id, status) = (i.to_string(), format!("status-{i}"));
            tally.add(&user(Some(&id), Some(&status)), &key());
        }
        assert_eq!(tally.statuses.names.len(), Rules::tracked(20) + 1);
        let (c, roster) = tally.finish(SystemTime::now());
        assert_eq!(c.total, 10_000);
        assert_eq!(c.by_status.len(), 20);
        assert_eq!(c.by_status[OTHER], 10_000 - 17);
        assert_eq!(roster.statuses.len(), 1025);
        assert_eq!(Rules::tracked(3), 1024);
        assert_eq!(Rules::tracked(1000), 4000);
        assert_eq!(Rules::tracked(10_000), 16_000);
    }

    #[test]
    fn email_domains_normalised_capped_and_bounded() {
        let mut tally = Tally::new(
            Rules {
                email_domains: true,
                max_email_domains: 3,
                ..Rules::default()
            },
            SystemTime::now(),
        );
        let long = format!("a@{}.com", "d".repeat(61));
        let emails = [
            Some("ana@Example.COM"),
            Some(" raj@example.com "),
            Some("x@y@corp.example"),
            Some("li@corp.example"),
            Some("sam@small.example"),
            None,
            Some("no-at-sign"),
            Some("bad@exa mple.com"),
            Some("dot@.example.com"),
            Some("empty@"),
            Some(&long),
            Some("leak@sk-test-key-42.example"),
        ];
        for (i, email) in emails.iter().enumerate() {
            let id = i.to_string();
            let u = User {
                id: Some(&id),
                email: *email,
                ..User::default()
            };
            tally.add(&u, &key());
        }
        let by_domain = tally.finish(SystemTime::now()).0.by_email_domain.unwrap();
        let got: Vec<_> = by_domain.iter().map(|(d, n)| (d.as_str(), *n)).collect();
        // unknown (5) and corp.example (2, before example.com by name) keep their label;
        // other: example.com, small.example, the long one and the one with the key.
        assert_eq!(got, [("corp.example", 2), ("other", 5), ("unknown", 5)]);
        assert_eq!(
            email_domain(Some("a@xn--bcher-kva.example")),
            "xn--bcher-kva.example"
        );
        assert_eq!(email_domain(Some(&format!("a@{}", "d".repeat(300)))), OTHER);
    }

    #[test]
    fn created_at_in_seconds_or_milliseconds_within_windows() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_750_000_000);
        let mut tally = Tally::new(Rules::default(), now);
        let day = 86_400.0;
        let base = 1_750_000_000.0;
        let created = [
            Some(base - 3600.0),                // 1 hour ago, seconds
            Some((base - 2.0 * day) * 1000.0),  // 2 days ago, milliseconds
            Some((base - 10.0 * day) * 1000.0), // 10 days ago, milliseconds
            Some(base - 40.0 * day),            // 40 days ago
            Some(base + 60.0),                  // a minute ahead: a clock apart
            Some(base + 2.0 * day),             // days ahead: not a usable date
            None,
            Some(0.0),
            Some(-5.0),
            Some(f64::NAN),
            Some(1e20),
        ];
        for (i, created_at) in created.into_iter().enumerate() {
            let id = i.to_string();
            let u = User {
                id: Some(&id),
                created_at,
                ..User::default()
            };
            tally.add(&u, &key());
        }
        let c = tally.finish(now).0;
        assert_eq!(c.created_within, [2, 3, 4]);
        assert_eq!(c.newest_created, Some(base + 60.0));
        assert_eq!(created_seconds(1_747_650_000_000.0), Some(1_747_650_000.0));
        assert_eq!(created_seconds(1_710_675_200.0), Some(1_710_675_200.0));
    }

    /// The windows counted for users created at `created` (Unix seconds), in a poll that
    /// starts at `start` and finishes at `finished`, with `rules`.
    fn windows_at(start: f64, finished: f64, created: &[f64], rules: Rules) -> [u64; 3] {
        let at = |t: f64| SystemTime::UNIX_EPOCH + Duration::from_secs_f64(t);
        let mut tally = Tally::new(rules, at(start));
        for (i, &created_at) in created.iter().enumerate() {
            let id = i.to_string();
            let u = User {
                id: Some(&id),
                created_at: Some(created_at),
                ..User::default()
            };
            tally.add(&u, &key());
        }
        tally.finish(at(finished)).0.created_within
    }

    #[test]
    fn created_within_windows_end_when_the_poll_finished() {
        const S: f64 = 1_750_000_000.0;
        const DAY: f64 = 86_400.0;
        let f = S + 600.0; // a poll of 10 minutes
        let one = |created: f64| windows_at(S, f, &[created], Rules::default());
        // 1 day and 5 minutes before the finish: within a day of the start, not of the finish.
        assert_eq!(one(S - DAY + 300.0), [0, 1, 1]);
        // Out of the day from either end.
        assert_eq!(one(S - DAY - 1.0), [0, 1, 1]);
        // Created during the poll, or in milliseconds, just after the finish's edge: in.
        assert_eq!(one(S + 60.0), [1, 1, 1]);
        assert_eq!(one((f - DAY + 0.5) * 1000.0), [1, 1, 1]);
        // The edges of the 7 and 30 days move too; the edge itself is out, as before.
        assert_eq!(one(S - 7.0 * DAY + 599.0), [0, 0, 1]);
        assert_eq!(one(f - 30.0 * DAY), [0, 0, 0]);
        assert_eq!(one(f - 30.0 * DAY + 1.0), [0, 0, 1]);
        // The finish counts in whole seconds after the start.
        let just = |finished: f64| windows_at(S, finished, &[S - DAY + 600.5], Rules::default());
        assert_eq!((just(S + 600.9), just(S + 601.0)), ([1, 1, 1], [0, 1, 1]));
    }

    #[test]
    fn created_within_clamps_a_finish_before_the_start_or_past_the_deadline() {
        const S: f64 = 1_750_000_000.0;
        const DAY: f64 = 86_400.0;
        let users = [S - DAY + 30.0, S - DAY + 900.0, S - DAY + 1200.0, S + 5.0];
        let rules = Rules::default();
        // The clock stepped back: the windows end at the start.
        assert_eq!(windows_at(S, S - 3600.0, &users, rules), [4, 4, 4]);
        // A finish past the deadline and a minute counts as the deadline and a minute.
        assert_eq!(windows_at(S, S + 960.0, &users, rules), [2, 4, 4]);
        assert_eq!(windows_at(S, S + 5.0 * DAY, &users, rules), [2, 4, 4]);
        // A longer deadline keeps more.
        let long = Rules {
            poll_timeout: Duration::from_secs(3600),
            ..rules
        };
        assert_eq!(windows_at(S, S + 1800.0, &users, long), [1, 4, 4]);
    }

    #[test]
    fn created_within_holds_at_most_the_margin_in_seconds() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_750_000_000);
        let mut tally = Tally::new(Rules::default(), start);
        let edge = 1_750_000_000.0 - 86_400.0;
        // Far from every edge: nothing held.
        for i in 0..1000 {
            let id = format!("far-{i}");
            let u = User {
                id: Some(&id),
                created_at: Some(edge + 5000.0 + f64::from(i)),
                ..User::default()
            };
            tally.add(&u, &key());
        }
        assert_eq!(tally.ages.held(), 0);
        // 50 000 users created within the 1d margin: one entry per second at most.
        for i in 0..50_000 {
            let id = i.to_string();
            let u = User {
                id: Some(&id),
                created_at: Some(edge + f64::from(i) * 0.02 + 0.001),
                ..User::default()
            };
            tally.add(&u, &key());
        }
        assert_eq!(tally.ages.held(), 900 + 60);
        let c = tally.finish(start + Duration::from_secs(600)).0;
        assert_eq!(c.created_within, [51_000 - 30_000, 51_000, 51_000]);
    }

    #[test]
    fn normalise_borrows_when_it_can() {
        assert!(matches!(normalise("active"), Cow::Borrowed("active")));
        assert_eq!(normalise(" PENDING "), "pending");
        assert_eq!(normalise(""), UNKNOWN);
        assert_eq!(status_value(Some(&"A".repeat(257))), OTHER);
        assert_eq!(status_value(None), UNKNOWN);
    }
}
