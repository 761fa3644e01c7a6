//! Membership across polls: who joined, who left, whose status changed. Pure: the roster of
//! each successful poll in, [`Changes`] out; the poller logs and publishes them.
//!
//! The rules (DESIGN.md, "Membership changes"): the first successful poll is the baseline and
//! counts nothing; after it an id never seen before has joined; a remembered id missing from
//! one poll is kept (offset pages shift while users come and go, so one walk can miss a
//! user), and missing from a second poll in a row it has left and is forgotten; a remembered
//! id with another normalised status has changed status. A failed poll never gets here, so
//! it changes nothing. Users without an id are not in a roster.
//!
//! Memory: the state is the last poll's [`Roster`] as it came (16 bytes of id and 2 of status
//! a user) and the users it missed (18 bytes each, in an [`IdList`]); comparing holds the new
//! roster next to it for a moment, and then the old one is dropped.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use crate::census::{Roster, OTHER};
use crate::ids::{IdList, UserId};

/// Changes logged one by one in a poll; past them, one summary line.
pub const LOGGED_CHANGES: usize = 50;

/// Most distinct `(from, to)` status pairs counted apart over the exporter's life, whatever
/// `--max-statuses` is: with the default 20 statuses, 400.
pub const MAX_STATUS_PAIRS: usize = 400;

/// Distinct `(from, to)` pairs counted apart over the exporter's life: every pair of `max`
/// statuses, at most [`MAX_STATUS_PAIRS`]. `other` to `other` comes on top: a change between
/// two statuses that are both `other`, and any new pair past the bound.
pub fn max_status_pairs(max_statuses: usize) -> usize {
    max_statuses
        .saturating_mul(max_statuses)
        .min(MAX_STATUS_PAIRS)
}

/// One change, for the log: ids and normalised statuses, never anything else of the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Joined {
        id: UserId,
        status: String,
    },
    Left {
        id: UserId,
        status: String,
    },
    StatusChanged {
        id: UserId,
        from: String,
        to: String,
    },
}

/// What a successful poll changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// The first successful poll: nothing was compared.
    pub baseline: bool,
    pub joined: u64,
    pub left: u64,
    /// Status changes by `(from, to)` label, capped (see [`Membership::update`]).
    pub status_changes: BTreeMap<(String, String), u64>,
    /// The first [`LOGGED_CHANGES`] changes.
    pub logged: Vec<Change>,
}

impl Changes {
    /// Every change counted, logged or not.
    pub fn count(&self) -> u64 {
        self.joined + self.left + self.status_changes.values().sum::<u64>()
    }

    fn log(&mut self, change: impl FnOnce() -> Change) {
        if self.logged.len() < LOGGED_CHANGES {
            self.logged.push(change());
        }
    }
}

/// What is remembered between polls.
#[derive(Debug, Default)]
pub struct Membership {
    state: Option<State>,
    /// `(from, to)` label pairs counted so far, other than `other` to `other`: at most
    /// [`max_status_pairs`].
    pairs: HashSet<(String, String)>,
}

#[derive(Debug)]
struct State {
    /// Everyone the last successful poll saw.
    roster: Roster,
    /// Users the last poll missed but the one before saw, with their status as an index
    /// into `roster.statuses`.
    missed: IdList,
    /// The status labels the last poll published.
    labels: BTreeSet<String>,
}

impl Membership {
    /// True once a baseline is remembered.
    pub fn has_baseline(&self) -> bool {
        self.state.is_some()
    }

    /// Users remembered: those the last successful poll saw and those it missed (0 before
    /// the baseline). What the next poll's id table is sized for, so that it need not grow
    /// while the remembered one is held; missed users are counted in as most come back.
    pub fn remembered(&self) -> usize {
        self.state
            .as_ref()
            .map_or(0, |s| s.roster.ids.len() + s.missed.len())
    }

    /// Compares a successful poll's roster with what is remembered, remembers it, and says
    /// what changed. `labels` are the status labels the poll publishes: a status change is
    /// labelled with statuses that are a label now or were at the last poll, any other as
    /// `other`; and at most [`max_status_pairs`] distinct `(from, to)` pairs besides `other`
    /// to `other` are counted over the exporter's life, later new ones as `other` to `other`,
    /// so the series stay bounded.
    pub fn update(
        &mut self,
        mut roster: Roster,
        labels: &BTreeMap<String, u64>,
        max_statuses: usize,
    ) -> Changes {
        let labels: BTreeSet<String> = labels.keys().cloned().collect();
        let Some(old) = self.state.take() else {
            self.state = Some(State {
                roster,
                missed: IdList::default(),
                labels,
            });
            return Changes {
                baseline: true,
                ..Changes::default()
            };
        };
        let mut changes = Changes::default();
        let label = |s: &str| {
            if labels.contains(s) || old.labels.contains(s) {
                s.to_owned()
            } else {
                OTHER.to_owned()
            }
        };
        // Each old status index as the new one of the same status, so that users whose
        // status stays (nearly all) are told apart by comparing two numbers.
        let new_index: HashMap<&str, u16> = roster.statuses.iter().map(|s| &**s).zip(0..).collect();
        let same: Vec<u16> = old
            .roster
            .statuses
            .iter()
            .map(|s| new_index.get(&**s).copied().unwrap_or(u16::MAX))
            .collect();
        drop(new_index);
        let mut present = vec![0u64; old.roster.ids.positions().div_ceil(64)];
        let mut seen = 0;
        let mut back = vec![false; old.missed.len()];
        for (id, status) in roster.ids.iter() {
            let before = match old.roster.ids.position(id.value) {
                Some(p) => {
                    present[p / 64] |= 1 << (p % 64);
                    seen += 1;
                    old.roster.ids.at(p).map(|(_, s)| s)
                }
                None => old.missed.find(id.value).and_then(|i| {
                    back[i] = true;
                    old.missed.at(i).map(|(_, s)| s)
                }),
            };
            if before.is_some_and(|s| same.get(usize::from(s)) == Some(&status)) {
                continue;
            }
            let to = roster.status(status);
            match before.map(|s| old.roster.status(s)) {
                None => {
                    changes.joined += 1;
                    changes.log(|| Change::Joined {
                        id,
                        status: to.to_owned(),
                    });
                }
                Some(from) if from != to => {
                    let mut pair = (label(from), label(to));
                    let others = pair.0 == OTHER && pair.1 == OTHER;
                    if !others && !self.pairs.contains(&pair) {
                        if self.pairs.len() < max_status_pairs(max_statuses) {
                            self.pairs.insert(pair.clone());
                        } else {
                            pair = (OTHER.to_owned(), OTHER.to_owned());
                        }
                    }
                    *changes.status_changes.entry(pair).or_insert(0) += 1;
                    changes.log(|| Change::StatusChanged {
                        id,
                        from: from.to_owned(),
                        to: to.to_owned(),
                    });
                }
                Some(_) => {}
            }
        }
        for ((id, status), _) in old.missed.iter().zip(&back).filter(|(_, &b)| !b) {
            changes.left += 1;
            changes.log(|| Change::Left {
                id,
                status: old.roster.status(status).to_owned(),
            });
        }
        drop(back);
        // Missed for the first time: remembered with their status, in the new roster's table
        // of statuses, for one more poll.
        let mut gone = Vec::with_capacity(old.roster.ids.len() - seen);
        for p in (0..old.roster.ids.positions()).filter(|p| present[p / 64] & (1 << (p % 64)) == 0)
        {
            gone.extend(old.roster.ids.at(p).map(|(id, _)| id.value));
        }
        drop(present);
        let mut index: HashMap<Box<str>, u16> = HashMap::new();
        let missed = IdList::new(gone, &old.roster.ids, |status| {
            if index.is_empty() {
                index = roster.statuses.iter().cloned().zip(0..).collect();
            }
            let name = old.roster.status(status);
            *index.entry(name.into()).or_insert_with(|| {
                roster.statuses.push(name.into());
                u16::try_from(roster.statuses.len() - 1).unwrap_or(u16::MAX)
            })
        });
        drop(old);
        self.state = Some(State {
            roster,
            missed,
            labels,
        });
        changes
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use secrecy::SecretString;

    use super::*;
    use crate::census::{Tally, User};

    /// A poll's census labels and roster from `(id, status)` pairs.
    fn poll(users: &[(&str, &str)]) -> (BTreeMap<String, u64>, Roster) {
        let mut tally = Tally::default();
        for (id, status) in users {
            let user = User {
                id: Some(id),
                status: Some(status),
                ..User::default()
            };
            tally.add(&user, &SecretString::from("key"));
        }
        let (census, roster) = tally.finish(SystemTime::now());
        (census.by_status, roster)
    }

    fn update(m: &mut Membership, users: &[(&str, &str)]) -> Changes {
        let (labels, roster) = poll(users);
        m.update(roster, &labels, 20)
    }

    fn summary(c: &Changes) -> (u64, u64, Vec<(&str, &str, u64)>) {
        let changes = c
            .status_changes
            .iter()
            .map(|((f, t), n)| (f.as_str(), t.as_str(), *n))
            .collect();
        (c.joined, c.left, changes)
    }

    #[test]
    fn the_first_poll_is_the_baseline() {
        let mut m = Membership::default();
        assert!(!m.has_baseline());
        let c = update(&mut m, &[("a", "active"), ("b", "invited")]);
        assert!(c.baseline);
        assert_eq!((summary(&c), c.count()), ((0, 0, vec![]), 0));
        assert!(m.has_baseline());
        let c = update(&mut m, &[("a", "active"), ("b", "invited")]);
        assert!(!c.baseline);
        assert_eq!(c, Changes::default());
    }

    #[test]
    fn joins_status_changes_and_leaves_after_two_misses() {
        let mut m = Membership::default();
        update(
            &mut m,
            &[("a", "active"), ("b", "active"), ("c", "invited")],
        );
        // d joins, b goes inactive (upper case is the same status for a), c is missed once.
        let c = update(
            &mut m,
            &[("a", "ACTIVE"), ("b", "inactive"), ("d", "invited")],
        );
        assert_eq!(summary(&c), (1, 0, vec![("active", "inactive", 1)]));
        let mut logged = c.logged.clone();
        logged.sort_by_key(|c| format!("{c:?}"));
        assert_eq!(
            logged,
            [
                Change::Joined {
                    id: UserId::of("d"),
                    status: "invited".into()
                },
                Change::StatusChanged {
                    id: UserId::of("b"),
                    from: "active".into(),
                    to: "inactive".into()
                },
            ]
        );
        // c missed a second time: left.
        let c = update(
            &mut m,
            &[("a", "active"), ("b", "inactive"), ("d", "invited")],
        );
        assert_eq!(summary(&c), (0, 1, vec![]));
        assert_eq!(
            c.logged,
            [Change::Left {
                id: UserId::of("c"),
                status: "invited".into()
            }]
        );
        // Forgotten: back later, it joins again.
        let c = update(&mut m, &[("a", "active"), ("c", "invited")]);
        assert_eq!(summary(&c), (1, 0, vec![]));
    }

    #[test]
    fn a_user_one_walk_missed_is_neither_left_nor_joined() {
        let mut m = Membership::default();
        update(&mut m, &[("a", "active"), ("b", "active"), ("c", "active")]);
        assert_eq!(
            update(&mut m, &[("a", "active"), ("c", "active")]).count(),
            0
        );
        assert_eq!(
            update(&mut m, &[("a", "active"), ("b", "active"), ("c", "active")]).count(),
            0
        );
        // Back after one miss with another status: a change from the remembered status.
        update(&mut m, &[("a", "active"), ("c", "active")]);
        let c = update(
            &mut m,
            &[("a", "active"), ("b", "inactive"), ("c", "active")],
        );
        assert_eq!(summary(&c), (0, 0, vec![("active", "inactive", 1)]));
        // Missed every other poll for ever: never counted.
        for _ in 0..3 {
            assert_eq!(
                update(&mut m, &[("a", "active"), ("c", "active")]).count(),
                0
            );
            assert_eq!(
                update(
                    &mut m,
                    &[("a", "active"), ("b", "inactive"), ("c", "active")]
                )
                .count(),
                0
            );
        }
    }

    #[test]
    fn status_labels_are_capped_like_status() {
        let mut m = Membership::default();
        let (labels, roster) = poll(&[("a", "x1"), ("b", "x2"), ("c", "x3"), ("d", "x4")]);
        let cap = |l: &BTreeMap<String, u64>| -> BTreeMap<String, u64> {
            // The labels a census capped at 3 would publish.
            l.iter()
                .filter(|(s, _)| ["active", "inactive", "other"].contains(&s.as_str()))
                .map(|(s, n)| (s.clone(), *n))
                .collect()
        };
        m.update(roster, &cap(&labels), 3);
        let (labels, roster) =
            poll(&[("a", "x2"), ("b", "active"), ("c", "inactive"), ("d", "x4")]);
        let c = m.update(roster, &cap(&labels), 3);
        assert_eq!(
            summary(&c),
            (
                0,
                0,
                vec![
                    ("other", "active", 1),
                    ("other", "inactive", 1),
                    ("other", "other", 1)
                ]
            )
        );
        // A pair of statuses that are both other takes no slot of the bound.
        assert_eq!(m.pairs.len(), 2);
    }

    #[test]
    fn distinct_pairs_are_bounded_by_the_square_of_max_statuses() {
        assert_eq!(max_status_pairs(3), 9);
        assert_eq!(max_status_pairs(20), 400);
        assert_eq!(max_status_pairs(1000), MAX_STATUS_PAIRS);
        // Users cycle through 3 statuses, all labels: 6 distinct pairs, all counted apart;
        // with max_statuses 2, 4 of them, later new ones as other to other.
        let cycle = ["s0", "s1", "s2"];
        for (max, apart) in [(3, 6), (2, 4)] {
            let mut m = Membership::default();
            let mut seen = BTreeMap::new();
            for round in 0..4 {
                let users: Vec<(String, &str)> = (0..3)
                    .map(|u| (format!("u{u}"), cycle[(u * (round % 2 + 1) + round) % 3]))
                    .collect();
                let users: Vec<(&str, &str)> =
                    users.iter().map(|(i, s)| (i.as_str(), *s)).collect();
                let (_, roster) = poll(&users);
                let all = cycle.iter().map(|s| (s.to_string(), 1)).collect();
                for (pair, n) in m.update(roster, &all, max).status_changes {
                    *seen.entry(pair).or_insert(0) += n;
                }
            }
            let other = ("other".to_owned(), "other".to_owned());
            let named = seen.keys().filter(|p| **p != other).count();
            assert_eq!(named, apart, "{max}: {seen:?}");
            assert!(m.pairs.len() <= max_status_pairs(max));
        }
    }

    #[test]
    fn a_new_pair_after_twenty_others_still_counts_apart() {
        // 20 statuses; every user changes to the next one, 20 distinct pairs; then invited
        // to active, a pair never seen, is still counted as itself.
        let statuses: Vec<String> = (0..20).map(|i| format!("s{i}")).collect();
        let labels: BTreeMap<String, u64> = statuses
            .iter()
            .cloned()
            .chain(["invited".into(), "active".into()])
            .map(|s| (s, 1))
            .collect();
        let mut m = Membership::default();
        let round = |shift: usize| -> Vec<(String, String)> {
            (0..20)
                .map(|u| (format!("u{u}"), statuses[(u + shift) % 20].clone()))
                .chain([("x".to_owned(), "invited".to_owned())])
                .collect()
        };
        for shift in 0..2 {
            let users = round(shift);
            let users: Vec<(&str, &str)> = users
                .iter()
                .map(|(i, s)| (i.as_str(), s.as_str()))
                .collect();
            m.update(poll(&users).1, &labels, 20);
        }
        assert_eq!(m.pairs.len(), 20);
        let mut users = round(1);
        users[20].1 = "active".into();
        let users: Vec<(&str, &str)> = users
            .iter()
            .map(|(i, s)| (i.as_str(), s.as_str()))
            .collect();
        let c = m.update(poll(&users).1, &labels, 20);
        assert_eq!(summary(&c), (0, 0, vec![("invited", "active", 1)]));
    }

    #[test]
    fn missed_users_cost_eighteen_bytes_each() {
        let mut m = Membership::default();
        let ids: Vec<String> = (0..1000).map(|i| format!("u{i}")).collect();
        let all: Vec<(&str, &str)> = ids.iter().map(|i| (i.as_str(), "active")).collect();
        update(&mut m, &all);
        assert_eq!(m.remembered(), 1000);
        // A tenth of them missed by the next poll.
        let c = update(&mut m, &all[100..]);
        assert_eq!(c.count(), 0);
        let missed = &m.state.as_ref().expect("remembered").missed;
        assert_eq!(missed.len(), 100);
        assert_eq!(missed.bytes(), 100 * 18);
        assert_eq!(m.remembered(), 1000, "the missed users are expected back");
        // Back with their status, or left: the status and hashed flag survive the packing.
        let c = update(&mut m, &all[50..]);
        assert_eq!((c.joined, c.left, c.count()), (0, 50, 50));
        assert!(c
            .logged
            .iter()
            .all(|l| matches!(l, Change::Left { id, status }
            if id.hashed && status == "active")));
    }

    #[test]
    fn past_fifty_changes_only_the_first_are_logged() {
        let mut m = Membership::default();
        update(&mut m, &[("a", "active")]);
        let ids: Vec<String> = (0..120).map(|i| format!("u{i}")).collect();
        let users: Vec<(&str, &str)> = ids.iter().map(|i| (i.as_str(), "active")).collect();
        let c = update(&mut m, &users);
        assert_eq!((c.joined, c.left, c.count()), (120, 0, 120));
        assert_eq!(c.logged.len(), LOGGED_CHANGES);
        // a leaves (missed twice), everyone else is missed once, then leaves too.
        assert_eq!(update(&mut m, &[("b", "active")]).left, 1);
        let c = update(&mut m, &[("b", "active")]);
        assert_eq!((c.left, c.logged.len()), (120, LOGGED_CHANGES));
    }

    #[test]
    fn missed_users_keep_their_status_through_a_new_status_table() {
        let mut m = Membership::default();
        update(&mut m, &[("a", "gone-soon"), ("b", "active")]);
        // a is missed while no user has its status any more.
        update(&mut m, &[("b", "active")]);
        let c = update(&mut m, &[("a", "gone-soon"), ("b", "active")]);
        assert_eq!(c.count(), 0, "{c:?}");
    }
}
