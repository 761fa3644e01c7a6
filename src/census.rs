//! Pure counting: users in, a [`Census`] out. No I/O.
//!
//! A poll feeds every page's users to one [`Tally`]; [`Tally::finish`] turns it into the
//! numbers that are published. Users are de-duplicated by `id` (offset pages shift while users
//! are added), statuses are normalised, and the number of distinct labels is capped.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::BuildHasher;

/// Label for users whose status is missing, null or empty.
pub const UNKNOWN: &str = "unknown";
/// Label that collects the statuses past the `--max-statuses` cap.
pub const OTHER: &str = "other";
/// Labels always present after a successful poll, 0 if nobody has them.
pub const ALWAYS_SHOWN: [&str; 2] = ["active", "inactive"];

/// What one successful poll counted.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Census {
    /// Distinct users.
    pub total: u64,
    /// Users per normalised status; the values add up to `total`.
    pub by_status: BTreeMap<String, u64>,
    /// `page_info.total_count` of the first page, when the API sent it.
    pub reported: Option<u64>,
}

/// A user's identity for de-duplication: UUIDs (what the API sends) in 16 bytes, anything
/// else as its text.
#[derive(Debug, Default)]
struct Seen {
    uuids: IdSet,
    others: HashSet<Box<str>, foldhash::fast::RandomState>,
}

impl Seen {
    /// True when `id` was not seen before.
    fn insert(&mut self, id: &str) -> bool {
        match uuid::Uuid::try_parse(id) {
            Ok(uuid) => self.uuids.insert(uuid.as_u128()),
            Err(_) if self.others.contains(id) => false,
            Err(_) => self.others.insert(id.into()),
        }
    }
}

/// A set of 128-bit ids in one flat table of 16-byte slots, linear probing, at most 7/8 full
/// (4/5 when sized for a known count) and of any size, not only powers of two. At a million
/// ids that is about 20 MiB, where a `HashSet<u128>` takes 34 MiB (2^21 buckets of 17 bytes).
/// Slot value 0 means empty; the id 0 (the nil UUID) is kept apart.
#[derive(Debug, Default)]
struct IdSet {
    slots: Vec<u128>,
    len: usize,
    has_zero: bool,
    hasher: foldhash::fast::RandomState,
}

impl IdSet {
    fn len(&self) -> usize {
        self.len + usize::from(self.has_zero)
    }

    /// Makes room for `more` ids beyond those held, with the table at most 4/5 full.
    fn reserve(&mut self, more: usize) {
        let want = (self.len + more).saturating_mul(5) / 4 + 1;
        if want > self.slots.len() {
            self.resize(want);
        }
    }

    /// True when `id` was not in the set.
    fn insert(&mut self, id: u128) -> bool {
        if id == 0 {
            return !std::mem::replace(&mut self.has_zero, true);
        }
        if (self.len + 1) * 8 > self.slots.len() * 7 {
            self.resize((self.slots.len() * 2).max(64));
        }
        let mut i = self.home(id);
        loop {
            match self.slots[i] {
                0 => {
                    self.slots[i] = id;
                    self.len += 1;
                    return true;
                }
                slot if slot == id => return false,
                _ => i = if i + 1 == self.slots.len() { 0 } else { i + 1 },
            }
        }
    }

    /// The slot where probing for `id` starts.
    fn home(&self, id: u128) -> usize {
        let hash = self.hasher.hash_one(id);
        ((u128::from(hash) * self.slots.len() as u128) >> 64) as usize
    }

    fn resize(&mut self, slots: usize) {
        let old = std::mem::replace(&mut self.slots, vec![0; slots]);
        for id in old.into_iter().filter(|&id| id != 0) {
            let mut i = self.home(id);
            while self.slots[i] != 0 {
                i = if i + 1 == self.slots.len() { 0 } else { i + 1 };
            }
            self.slots[i] = id;
        }
    }
}

/// Running count of one poll.
#[derive(Debug, Default)]
pub struct Tally {
    seen: Seen,
    anonymous: u64,
    by_status: HashMap<String, u64, foldhash::fast::RandomState>,
    reported: Option<u64>,
}

impl Tally {
    /// Reserves room for `users` more users (a hint, e.g. the reported total).
    pub fn reserve(&mut self, users: usize) {
        // Bounded so that an inflated total_count cannot claim much memory up front: ids
        // spread over the whole table, so a table far too large still gets touched page by page.
        let users = users.min(1_000_000);
        self.seen
            .uuids
            .reserve(users.saturating_sub(self.seen.uuids.len()));
    }

    /// Records the `total_count` the API reported; only the first report is kept.
    pub fn set_reported(&mut self, total: u64) {
        self.reported.get_or_insert(total);
    }

    /// Counts one user; returns false when the id was already counted in this poll.
    /// A user without an id cannot be de-duplicated and is counted as it comes.
    pub fn add(&mut self, id: Option<&str>, status: Option<&str>) -> bool {
        match id {
            Some(id) if !self.seen.insert(id) => return false,
            Some(_) => {}
            None => self.anonymous += 1,
        }
        let status = normalise(status.unwrap_or(""));
        match self.by_status.get_mut(status.as_ref()) {
            Some(n) => *n += 1,
            None => {
                self.by_status.insert(status.into_owned(), 1);
            }
        }
        true
    }

    /// Distinct users counted so far.
    fn users(&self) -> u64 {
        (self.seen.uuids.len() + self.seen.others.len()) as u64 + self.anonymous
    }

    /// The census, with at most `max_statuses` distinct labels (at least 3: active, inactive
    /// and other). The statuses with the most users keep their label, ties broken by name;
    /// `active` and `inactive` always keep theirs; the rest are summed into `other`.
    pub fn finish(self, max_statuses: usize) -> Census {
        let total = self.users();
        let max_statuses = max_statuses.max(ALWAYS_SHOWN.len() + 1);
        let mut counts = self.by_status;
        for status in ALWAYS_SHOWN {
            counts.entry(status.to_owned()).or_insert(0);
        }
        let by_status = if counts.len() <= max_statuses {
            counts.into_iter().collect()
        } else {
            let mut ranked: Vec<(String, u64)> = counts.into_iter().collect();
            // Always-shown first, then by count descending, then by name.
            ranked.sort_by(|(a, an), (b, bn)| {
                let pinned = |s: &str| !ALWAYS_SHOWN.contains(&s);
                (pinned(a), std::cmp::Reverse(*an), a).cmp(&(pinned(b), std::cmp::Reverse(*bn), b))
            });
            let mut by_status = BTreeMap::new();
            let mut other = 0;
            for (i, (status, n)) in ranked.into_iter().enumerate() {
                if i < max_statuses - 1 && status != OTHER {
                    by_status.insert(status, n);
                } else {
                    other += n;
                }
            }
            *by_status.entry(OTHER.to_owned()).or_insert(0) += other;
            by_status
        };
        Census {
            total,
            by_status,
            reported: self.reported,
        }
    }
}

/// Trims and lower-cases a status; empty becomes [`UNKNOWN`]. Borrows when already normal.
pub fn normalise(status: &str) -> std::borrow::Cow<'_, str> {
    let trimmed = status.trim();
    if trimmed.is_empty() {
        UNKNOWN.into()
    } else if trimmed.chars().any(char::is_uppercase) {
        trimmed.to_lowercase().into()
    } else {
        trimmed.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn census(users: &[(Option<&str>, Option<&str>)], max: usize) -> Census {
        let mut tally = Tally::default();
        for (id, status) in users {
            tally.add(*id, *status);
        }
        tally.finish(max)
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
        assert!(tally.add(Some(a), Some("active")));
        // The same UUID in another spelling is the same user.
        assert!(!tally.add(Some(&a.to_uppercase()), Some("inactive")));
        assert!(tally.add(Some("42"), Some("inactive")));
        assert!(!tally.add(Some("42"), Some("active")));
        assert!(tally.add(None, Some("active")));
        assert!(tally.add(None, Some("active")));
        let c = tally.finish(20);
        assert_eq!(c.total, 4);
        assert_eq!(statuses(&c), [("active", 3), ("inactive", 1)]);
    }

    #[test]
    fn empty_poll_still_shows_active_and_inactive() {
        let c = census(&[], 20);
        assert_eq!(c.total, 0);
        assert_eq!(statuses(&c), [("active", 0), ("inactive", 0)]);
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
        assert_eq!(c.by_status.len(), 5);
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
        assert_eq!(tally.finish(20).reported, Some(7));
    }

    #[test]
    fn id_set_holds_each_id_once_across_growth() {
        let mut set = IdSet::default();
        assert!(set.insert(0), "the nil id is an id");
        assert!(!set.insert(0));
        // Sequential ids (as UUIDv7 would be, nearly) and their repeats, through many resizes.
        for id in 1..=10_000u128 {
            assert!(set.insert(id << 64 | 7));
        }
        for id in (1..=10_000u128).rev() {
            assert!(!set.insert(id << 64 | 7), "{id}");
        }
        assert_eq!(set.len(), 10_001);
        assert!(set.slots.len() * 7 >= set.len * 8, "at most 7/8 full");
    }

    #[test]
    fn id_set_reserved_for_a_count_does_not_grow() {
        let mut set = IdSet::default();
        set.reserve(1000);
        let slots = set.slots.len();
        assert_eq!(slots, 1251);
        for id in 1..=1000u128 {
            assert!(set.insert(id.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835)));
        }
        assert_eq!((set.len(), set.slots.len()), (1000, slots));
    }

    proptest::proptest! {
        #[test]
        fn id_set_agrees_with_a_hash_set(ids in proptest::collection::vec(0u128..64, 0..300),
                                         reserve in 0usize..100) {
            let mut set = IdSet::default();
            set.reserve(reserve);
            let mut model = HashSet::new();
            for id in ids {
                // Spread the small values over all 128 bits, keeping 0 as 0.
                let id = id.wrapping_mul(0x0123_4567_89ab_cdef_fedc_ba98_7654_3211);
                proptest::prop_assert_eq!(set.insert(id), model.insert(id));
            }
            proptest::prop_assert_eq!(set.len(), model.len());
        }
    }

    #[test]
    fn normalise_borrows_when_it_can() {
        assert!(matches!(
            normalise("active"),
            std::borrow::Cow::Borrowed("active")
        ));
        assert_eq!(normalise(" PENDING "), "pending");
        assert_eq!(normalise(""), UNKNOWN);
    }
}
