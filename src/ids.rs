//! User ids at a fixed size, and a compact table of them with a small status index each.
//!
//! A UUID (what the API sends) is held as its 16 bytes; any other id as a 128-bit SipHash-1-3
//! of its text under a key drawn at random once per process, so that ids of any length cost
//! the same and nobody who does not know the key can make two ids collide. The key is the
//! same for every poll of the process: membership compares ids across polls.

use std::hash::{BuildHasher, Hasher};
use std::sync::OnceLock;

use siphasher::sip128::{Hasher128, SipHasher13};

/// A user's id as held: 128 bits, and whether they are a hash of the text rather than a UUID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UserId {
    pub value: u128,
    pub hashed: bool,
}

impl UserId {
    /// The id of a user as the API sent it: a UUID in any spelling the uuid crate reads, or
    /// the keyed hash of anything else.
    pub fn of(id: &str) -> Self {
        match uuid::Uuid::try_parse(id) {
            Ok(uuid) => Self {
                value: uuid.as_u128(),
                hashed: false,
            },
            Err(_) => {
                let (k0, k1) = *HASH_KEY.get_or_init(rand::random);
                let mut hasher = SipHasher13::new_with_keys(k0, k1);
                hasher.write(id.as_bytes());
                Self {
                    value: hasher.finish128().as_u128(),
                    hashed: true,
                }
            }
        }
    }
}

/// UUIDs as written by the API (lower case, hyphenated); other ids as `hash:` and the 32 hex
/// digits of their keyed hash, as their text is not kept.
impl std::fmt::Display for UserId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.hashed {
            write!(f, "hash:{:032x}", self.value)
        } else {
            uuid::Uuid::from_u128(self.value).hyphenated().fmt(f)
        }
    }
}

static HASH_KEY: OnceLock<(u64, u64)> = OnceLock::new();

/// Bit of a slot's tag saying its id is a hash; the other 15 bits are the status index.
const HASHED: u16 = 1 << 15;
/// The largest status index a table holds.
pub const MAX_STATUS_INDEX: u16 = HASHED - 1;

/// A set of [`UserId`]s, each with a status index (at most [`MAX_STATUS_INDEX`]), in one flat
/// table of 16-byte slots and a parallel one of 2-byte tags: linear probing, of any size, not
/// only powers of two; sized for a known count it is 9/10 full at that count and grows (by
/// half) only past 15/16. At a million ids that is 20 MB, where a `HashSet<u128>` alone takes
/// 34 MiB (2^21 buckets of 17 bytes): membership holds two of them during a poll. Slot value
/// 0 means empty; the id 0 (the nil UUID) is kept apart.
#[derive(Debug, Default)]
pub struct IdTable {
    slots: Vec<u128>,
    tags: Vec<u16>,
    len: usize,
    zero: Option<u16>,
    hasher: foldhash::fast::RandomState,
}

impl IdTable {
    /// Ids held.
    pub fn len(&self) -> usize {
        self.len + usize::from(self.zero.is_some())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Makes room for `more` ids beyond those held, at most 9/10 full: 4% more (users added
    /// while a poll runs) still fit without growing.
    pub fn reserve(&mut self, more: usize) {
        let need = self.len.saturating_add(more);
        let want = need.saturating_add(need / 9) + 1;
        if want > self.slots.len() {
            self.resize(want);
        }
    }

    /// Adds `id` with `status`; false (and the first status kept) when it was there.
    pub fn insert(&mut self, id: UserId, status: u16) -> bool {
        let tag = tag(id, status);
        if id.value == 0 {
            return self.zero.replace(self.zero.unwrap_or(tag)).is_none();
        }
        if (self.len + 1) * 16 > self.slots.len() * 15 {
            self.resize((self.slots.len() + self.slots.len() / 2).max(64));
        }
        let mut i = self.home(id.value);
        loop {
            match self.slots[i] {
                0 => {
                    self.slots[i] = id.value;
                    self.tags[i] = tag;
                    self.len += 1;
                    return true;
                }
                slot if slot == id.value => return false,
                _ => i = self.after(i),
            }
        }
    }

    /// Where `id` is held, as a position below [`IdTable::positions`].
    pub fn position(&self, id: u128) -> Option<usize> {
        if id == 0 {
            return self.zero.map(|_| self.slots.len());
        }
        if self.slots.is_empty() {
            return None;
        }
        let mut i = self.home(id);
        loop {
            match self.slots[i] {
                0 => return None,
                slot if slot == id => return Some(i),
                _ => i = self.after(i),
            }
        }
    }

    /// Ids it holds before it grows: sized ahead by [`IdTable::reserve`], or grown.
    pub fn room(&self) -> usize {
        self.slots.len() * 15 / 16
    }

    /// One more than the largest position.
    pub fn positions(&self) -> usize {
        self.slots.len() + 1
    }

    /// The id at a position and its status index, if one is held there.
    pub fn at(&self, position: usize) -> Option<(UserId, u16)> {
        let (value, tag) = if position == self.slots.len() {
            (0, self.zero?)
        } else {
            match self.slots[position] {
                0 => return None,
                value => (value, self.tags[position]),
            }
        };
        Some(untag(value, tag))
    }

    /// Every id held with its status index, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (UserId, u16)> + '_ {
        (0..self.positions()).filter_map(|p| self.at(p))
    }

    /// The slot where probing for `id` starts.
    fn home(&self, id: u128) -> usize {
        let hash = self.hasher.hash_one(id);
        ((u128::from(hash) * self.slots.len() as u128) >> 64) as usize
    }

    fn after(&self, i: usize) -> usize {
        if i + 1 == self.slots.len() {
            0
        } else {
            i + 1
        }
    }

    fn resize(&mut self, slots: usize) {
        let old = std::mem::replace(&mut self.slots, vec![0; slots]);
        let old_tags = std::mem::replace(&mut self.tags, vec![0; slots]);
        for (id, tag) in old.into_iter().zip(old_tags).filter(|&(id, _)| id != 0) {
            let mut i = self.home(id);
            while self.slots[i] != 0 {
                i = self.after(i);
            }
            self.slots[i] = id;
            self.tags[i] = tag;
        }
    }
}

fn tag(id: UserId, status: u16) -> u16 {
    // Callers keep status indices far below this (a tally tracks a bounded number of
    // statuses); past it the index would lose its top bit to the hashed flag, so it is held
    // as the largest index instead: wrong but in range, and caught by tests in debug builds.
    debug_assert!(
        status <= MAX_STATUS_INDEX,
        "status index {status} out of range"
    );
    status.min(MAX_STATUS_INDEX) | if id.hashed { HASHED } else { 0 }
}

fn untag(value: u128, tag: u16) -> (UserId, u16) {
    let id = UserId {
        value,
        hashed: tag & HASHED != 0,
    };
    (id, tag & MAX_STATUS_INDEX)
}

/// Some ids of an [`IdTable`], sorted, each with a status index: 18 bytes an id (16 of value,
/// 2 of tag as in the table), where a `Vec<(UserId, u16)>` takes 48.
#[derive(Debug, Default)]
pub struct IdList {
    values: Vec<u128>,
    tags: Vec<u16>,
}

impl IdList {
    /// The ids of `values` that `table` holds, sorted, each with `status` of its status
    /// index in the table.
    pub fn new(mut values: Vec<u128>, table: &IdTable, mut status: impl FnMut(u16) -> u16) -> Self {
        values.sort_unstable();
        values.retain(|&v| table.position(v).is_some());
        values.shrink_to_fit();
        let mut tags = Vec::with_capacity(values.len());
        tags.extend(
            values
                .iter()
                .filter_map(|&v| table.at(table.position(v)?))
                .map(|(id, s)| tag(id, status(s))),
        );
        Self { values, tags }
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Where `value` is in the list.
    pub fn find(&self, value: u128) -> Option<usize> {
        self.values.binary_search(&value).ok()
    }

    /// The id at `index` (below [`IdList::len`]) and its status index.
    pub fn at(&self, index: usize) -> Option<(UserId, u16)> {
        Some(untag(*self.values.get(index)?, *self.tags.get(index)?))
    }

    /// Every id in order of value, with its status index.
    pub fn iter(&self) -> impl Iterator<Item = (UserId, u16)> + '_ {
        self.values
            .iter()
            .zip(&self.tags)
            .map(|(&v, &t)| untag(v, t))
    }

    /// Bytes held, allocated capacity included.
    pub fn bytes(&self) -> usize {
        self.values.capacity() * std::mem::size_of::<u128>()
            + self.tags.capacity() * std::mem::size_of::<u16>()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn uuid(value: u128) -> UserId {
        UserId {
            value,
            hashed: false,
        }
    }

    #[test]
    fn uuids_are_their_bits_and_other_ids_a_keyed_hash() {
        let a = "0b1e2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
        assert_eq!(UserId::of(a), uuid(0x0b1e2c3d_4e5f_4a6b_8c7d_9e0f1a2b3c4d));
        assert_eq!(UserId::of(&a.to_uppercase()), UserId::of(a));
        assert_eq!(UserId::of(a).to_string(), a);
        let long = "x".repeat(1 << 20);
        let id = UserId::of(&long);
        assert!(id.hashed);
        assert_eq!(UserId::of(&long), id, "the same key for the whole process");
        assert_ne!(UserId::of(&format!("{long}y")), id);
        assert_ne!(UserId::of("42").value, UserId::of("43").value);
        assert!(UserId::of("42").to_string().starts_with("hash:"));
        assert_eq!(UserId::of("42").to_string().len(), 5 + 32);
        // Not the unkeyed SipHash-1-3 of the text: the key is drawn at random.
        let mut unkeyed = SipHasher13::new();
        unkeyed.write(b"42");
        assert_ne!(UserId::of("42").value, unkeyed.finish128().as_u128());
    }

    #[test]
    fn table_holds_each_id_once_with_its_first_status_across_growth() {
        let mut set = IdTable::default();
        assert!(set.insert(uuid(0), 3), "the nil id is an id");
        assert!(!set.insert(uuid(0), 4));
        for id in 1..=10_000u128 {
            assert!(set.insert(uuid(id << 64 | 7), (id % 5) as u16));
        }
        for id in (1..=10_000u128).rev() {
            assert!(!set.insert(uuid(id << 64 | 7), 9), "{id}");
        }
        assert_eq!(set.len(), 10_001);
        assert!(set.slots.len() * 15 >= set.len * 16, "at most 15/16 full");
        let p = set.position(5 << 64 | 7).unwrap();
        assert_eq!(set.at(p), Some((uuid(5 << 64 | 7), 0)));
        assert_eq!(set.at(set.position(0).unwrap()), Some((uuid(0), 3)));
        assert_eq!(set.position(1), None);
        assert_eq!(set.iter().count(), 10_001);
    }

    #[test]
    fn hashed_flag_and_status_share_the_tag() {
        let mut set = IdTable::default();
        let hashed = UserId::of("user-1");
        set.insert(hashed, MAX_STATUS_INDEX);
        set.insert(uuid(9), 0);
        let got: HashMap<_, _> = set.iter().collect();
        assert_eq!(got[&hashed], MAX_STATUS_INDEX);
        assert_eq!(got[&uuid(9)], 0);
        assert!(IdTable::default().position(3).is_none());
    }

    #[test]
    fn table_reserved_for_a_count_does_not_grow() {
        let mut set = IdTable::default();
        set.reserve(1000);
        let slots = set.slots.len();
        assert_eq!(slots, 1000 + 111 + 1);
        for id in 1..=1040u128 {
            let id = id.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835);
            assert!(set.insert(uuid(id), 1));
        }
        assert_eq!((set.len(), set.slots.len()), (1040, slots));
    }

    #[test]
    fn a_list_of_some_ids_of_a_table_is_sorted_and_keeps_the_tags() {
        let mut set = IdTable::default();
        let hashed = UserId::of("user-1");
        for (id, status) in [(uuid(30), 1), (hashed, 2), (uuid(0), 3), (uuid(10), 4)] {
            set.insert(id, status);
        }
        let list = IdList::new(vec![30, hashed.value, 0, 99], &set, |s| s * 10);
        let mut want = vec![(uuid(0), 30), (uuid(30), 10), (hashed, 20)];
        want.sort_by_key(|(id, _)| id.value);
        assert_eq!(
            list.iter().collect::<Vec<_>>(),
            want,
            "99 is not in the table"
        );
        assert_eq!(list.find(30).and_then(|i| list.at(i)), Some((uuid(30), 10)));
        assert_eq!((list.find(10), list.len(), list.bytes()), (None, 3, 3 * 18));
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "out of range")]
    fn a_status_index_past_the_tag_is_caught_in_debug_builds() {
        IdTable::default().insert(uuid(1), MAX_STATUS_INDEX + 1);
    }

    proptest::proptest! {
        #[test]
        fn table_agrees_with_a_hash_map(ids in proptest::collection::vec((0u128..64, 0u16..9), 0..300),
                                        reserve in 0usize..100) {
            let mut set = IdTable::default();
            set.reserve(reserve);
            let mut model = HashMap::new();
            for (id, status) in ids {
                // Spread the small values over all 128 bits, keeping 0 as 0.
                let id = uuid(id.wrapping_mul(0x0123_4567_89ab_cdef_fedc_ba98_7654_3211));
                proptest::prop_assert_eq!(set.insert(id, status), !model.contains_key(&id));
                model.entry(id).or_insert(status);
            }
            proptest::prop_assert_eq!(set.len(), model.len());
            let held: HashMap<_, _> = set.iter().collect();
            proptest::prop_assert_eq!(held, model);
        }
    }
}
