//! The rules of a key's record chain: what each change of a key says about the change before
//! it. The writer follows them, historical reads and snapshot rebuilds rely on them, compaction
//! finds garbage with them and verify checks them, all through this module.
//!
//! Every record names the key's previous change, put or tombstone, in `prev`:
//!
//! - A put either goes on with the key's *incarnation*, when the key is live (same create
//!   revision, version + 1), or starts a new one (version 1, created at its own revision). A
//!   put that starts one names the tombstone before it, if any, so that historical reads can
//!   cross the delete.
//! - A delete ends the incarnation: its previous change is the live put it removed.
//! - An update or a delete *supersedes* its previous change. A put that starts an
//!   incarnation supersedes nothing: the tombstone it follows is garbage on its own.
//! - Compaction at `c` removes what the changes at or below `c` superseded, and every tombstone
//!   at or below `c`. A change above `c` can therefore miss only a tombstone before it, and a
//!   latest pointer only a tombstone it leads to.
//! - A change's previous change is older: a chain that does not go back in time would make a
//!   walk along it loop forever.

use crate::display_key;
use crate::encoding::{Change, Location, Record, StoredValue};
use crate::Revision;

/// Where a key's incarnation stands after a put: the revision that created it and the put's
/// version within it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Incarnation {
    pub create_revision: Revision,
    pub version: u64,
}

impl Incarnation {
    /// The incarnation of a put at `revision` when the key's live version before it is `live`
    /// (`None` when the key does not exist: never written, or deleted).
    pub(crate) fn next_put(live: Option<Incarnation>, revision: Revision) -> Incarnation {
        match live {
            Some(live) => Incarnation {
                create_revision: live.create_revision,
                version: live.version + 1,
            },
            None => Incarnation {
                create_revision: revision,
                version: 1,
            },
        }
    }

    fn of(stored: &StoredValue) -> Incarnation {
        Incarnation {
            create_revision: stored.create_revision,
            version: stored.version,
        }
    }
}

/// Whether `change` supersedes a live version of its key, which its `prev` then names: every
/// update and every delete, but no put that starts an incarnation.
pub(crate) fn supersedes(change: &Change) -> bool {
    match change {
        Change::Put(stored) => stored.version > 1,
        Change::Delete => true,
    }
}

/// The key's previous change as `record`, stored at `location`, names it.
///
/// # Errors
///
/// Why the chain is broken there: the previous change is not older, or the change supersedes
/// a live version and names none.
pub(crate) fn previous(location: Location, record: &Record) -> Result<Option<Location>, String> {
    match record.prev {
        Some(prev) if prev >= location => Err(format!("its previous change {prev} is not older")),
        None if supersedes(&record.change) => {
            Err("an update or delete without a previous change".into())
        }
        prev => Ok(prev),
    }
}

/// The live version that `record`, stored at `location`, superseded: `None` for a put that
/// started an incarnation, whose key did not exist before it.
///
/// # Errors
///
/// As [`previous`].
pub(crate) fn superseded(location: Location, record: &Record) -> Result<Option<Location>, String> {
    Ok(previous(location, record)?.filter(|_| supersedes(&record.change)))
}

/// Checks a put's version and create revision against each other: version 1 exactly when
/// the put created its key, at its own revision.
///
/// # Errors
///
/// What contradicts.
pub(crate) fn check_put(location: Location, stored: &StoredValue) -> Result<(), String> {
    if stored.version == 0 {
        return Err("a put of version 0".into());
    }
    if (stored.version == 1) != (stored.create_revision == location.revision) {
        return Err(format!(
            "version {} with create revision {}",
            stored.version, stored.create_revision
        ));
    }
    Ok(())
}

/// Checks that `record`, stored at `location`, follows from `before`, the change stored at
/// `prev` that it names as its previous one: a change of the same key, a put going on with a
/// live incarnation or starting one after a tombstone, a delete ending a live incarnation.
///
/// # Errors
///
/// How it does not follow.
pub(crate) fn check_link(
    location: Location,
    record: &Record,
    prev: Location,
    before: &Record,
) -> Result<(), String> {
    if before.key != record.key {
        return Err(format!(
            "its previous change {prev} is of key {}, not {}",
            display_key(&before.key),
            display_key(&record.key)
        ));
    }
    let live_before = match &before.change {
        Change::Put(stored) => Some(Incarnation::of(stored)),
        Change::Delete => None,
    };
    let follows = match &record.change {
        Change::Put(stored) => {
            Incarnation::of(stored) == Incarnation::next_put(live_before, location.revision)
        }
        Change::Delete => live_before.is_some(),
    };
    if follows {
        Ok(())
    } else {
        Err(format!("does not follow from its previous change {prev}"))
    }
}

/// The changes that are garbage once a compaction reaches `record`, stored at `location`: the
/// live version it superseded, and itself if it is a tombstone. A chain broken at `record`
/// proves nothing about what it names, so nothing but a tombstone itself is garbage then.
pub(crate) fn garbage_of(location: Location, record: &Record) -> impl Iterator<Item = Location> {
    let superseded = superseded(location, record).ok().flatten();
    let itself = Some(location).filter(|_| matches!(record.change, Change::Delete));
    superseded.into_iter().chain(itself)
}

/// What leads to a change of a key.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Successor<'a> {
    /// The key's latest pointer, which says whether the key is live.
    Pointer { live: bool },
    /// The key's next change, stored at `at`, which names the change as its previous one.
    Change { at: Location, change: &'a Change },
}

impl<'a> Successor<'a> {
    /// What leads to the change a walk down a key's history from its latest pointer reached:
    /// the pointer, which says `live`, at the walk's first step, and after that `newer`, the
    /// change the walk came from and where it is stored.
    pub(crate) fn in_walk(live: bool, newer: Option<&'a (Location, Record)>) -> Successor<'a> {
        match newer {
            None => Successor::Pointer { live },
            Some((at, record)) => Successor::Change {
                at: *at,
                change: &record.change,
            },
        }
    }
}

/// Whether a compaction at `compacted` may have removed the change at `missing` that
/// `successor` leads to. When it may, the key did not exist at any readable revision that
/// the missing change was in force at.
pub(crate) fn compacted_away(
    missing: Location,
    successor: Successor<'_>,
    compacted: Revision,
) -> bool {
    missing.revision <= compacted
        && match successor {
            Successor::Pointer { live } => !live,
            Successor::Change { at, change } => at.revision <= compacted || !supersedes(change),
        }
}

/// For tests: a store where key `a` changed twice and its second change names itself as its
/// previous one, breaking the rule that a previous change is older; and that change's location.
#[cfg(test)]
pub(crate) fn store_with_a_change_that_precedes_itself() -> crate::Result<(crate::Db, Location)> {
    use crate::error::SledResultExt;

    let db = crate::Db::temporary()?;
    db.put("a", "1")?;
    let location = Location {
        revision: db.put("a", "2")?,
        sub: 0,
    };
    let mut record = db.shared.record(location)?.expect("a's second record");
    record.prev = Some(location);
    db.shared
        .data
        .insert(location.record_key(), Record::encode(&record))
        .storage()?;
    Ok((db, location))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::encoding::Value;

    fn at(revision: u64) -> Location {
        Location {
            revision: Revision::new(revision),
            sub: 0,
        }
    }

    fn put(prev: Option<u64>, create_revision: u64, version: u64) -> Record {
        Record {
            key: b"k".to_vec(),
            prev: prev.map(at),
            change: Change::Put(StoredValue {
                value: Value::Inline(Vec::new()),
                create_revision: Revision::new(create_revision),
                version,
                labels: BTreeMap::new(),
                fields: BTreeMap::new(),
            }),
        }
    }

    fn delete(prev: Option<u64>) -> Record {
        Record {
            key: b"k".to_vec(),
            prev: prev.map(at),
            change: Change::Delete,
        }
    }

    #[test]
    fn a_put_goes_on_with_a_live_incarnation_and_starts_one_otherwise() {
        let live = Incarnation {
            create_revision: Revision::new(3),
            version: 4,
        };
        assert_eq!(
            Incarnation::next_put(Some(live), Revision::new(9)),
            Incarnation {
                create_revision: Revision::new(3),
                version: 5
            }
        );
        assert_eq!(
            Incarnation::next_put(None, Revision::new(9)),
            Incarnation {
                create_revision: Revision::new(9),
                version: 1
            }
        );
    }

    #[test]
    fn links_follow_the_incarnation_and_tombstones_end_it() {
        let cases = [
            (put(Some(2), 2, 2), put(None, 2, 1), true),
            (put(Some(2), 2, 3), put(None, 2, 1), false),
            (put(Some(2), 1, 2), put(None, 2, 1), false),
            (put(Some(2), 4, 1), delete(Some(1)), true),
            (put(Some(2), 4, 2), delete(Some(1)), false),
            (delete(Some(2)), put(None, 2, 1), true),
            (delete(Some(2)), delete(Some(1)), false),
        ];
        for (record, before, follows) in cases {
            let outcome = check_link(at(4), &record, at(2), &before);
            assert_eq!(outcome.is_ok(), follows, "{record:?} after {before:?}");
        }
        let mut other = put(None, 2, 1);
        other.key = b"other".to_vec();
        assert!(check_link(at(4), &put(Some(2), 2, 2), at(2), &other).is_err());
    }

    #[test]
    fn garbage_is_what_updates_and_deletes_superseded_and_tombstones_themselves() {
        let garbage = |record: &Record| garbage_of(at(5), record).collect::<Vec<_>>();
        assert_eq!(garbage(&put(Some(4), 1, 2)), [at(4)]);
        assert_eq!(
            garbage(&put(Some(4), 5, 1)),
            [],
            "a tombstone goes on its own"
        );
        assert_eq!(garbage(&delete(Some(4))), [at(4), at(5)]);
        assert_eq!(
            garbage(&put(Some(7), 1, 2)),
            [],
            "a broken chain proves nothing"
        );
        assert_eq!(garbage(&delete(None)), [at(5)]);
    }

    #[test]
    fn only_tombstones_may_be_missing_above_the_compacted_revision() {
        let compacted = Revision::new(5);
        let update = put(Some(4), 1, 2).change;
        let create = put(Some(4), 8, 1).change;
        let by = |revision, change| Successor::Change {
            at: at(revision),
            change,
        };
        assert!(compacted_away(at(4), by(5, &update), compacted));
        assert!(!compacted_away(at(4), by(8, &update), compacted));
        assert!(compacted_away(at(4), by(8, &create), compacted));
        assert!(!compacted_away(at(6), by(8, &create), compacted));
        assert!(compacted_away(
            at(4),
            Successor::Pointer { live: false },
            compacted
        ));
        assert!(!compacted_away(
            at(4),
            Successor::Pointer { live: true },
            compacted
        ));
    }

    #[test]
    fn a_previous_change_must_be_older_and_present_when_superseded() {
        assert_eq!(previous(at(5), &put(Some(4), 1, 2)), Ok(Some(at(4))));
        assert_eq!(previous(at(5), &put(None, 5, 1)), Ok(None));
        assert!(previous(at(5), &put(Some(5), 1, 2)).is_err());
        assert!(previous(at(5), &delete(None)).is_err());
        assert_eq!(superseded(at(5), &put(Some(4), 5, 1)), Ok(None));
    }
}
