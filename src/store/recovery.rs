//! What a store puts right when it opens: a commit group a crash cut short, and latest
//! pointers that do not decode.
//!
//! A commit group writes its records, then its latest pointers, then its commit times, and a
//! store opens at the revision of its newest commit time (see `write::Staged::write`). What a
//! crash left of the revisions after it is rolled back: each pointer past that revision is set
//! back to its key's change at or before it, found by following the records' `prev` back, and
//! then the records and value parts past it are removed, so that a crash during the roll-back
//! leaves what the next open finishes. Where a record past it is missing or damaged, which no
//! crash alone leaves, the key's newest change is looked up in the log once those are gone.
//!
//! The index is built from the latest pointers, so a damaged one would otherwise keep the store
//! from opening. Every change of a key is also a record in the revision log, and the newest
//! record of a key says where its newest change is and whether it is live, which is all a
//! pointer holds beside its record copy. A damaged pointer stays on disk as it is, for
//! `verify` to report, until a write of its key replaces it.

use std::collections::{HashMap, HashSet};

use crate::chain;
use crate::encoding::{self, Change, Latest, Location, Record};
use crate::error::SledResultExt;
use crate::{Result, Revision};

/// Rolls back the revisions after `head` (see the module's documentation). `unfinished` are
/// the keys whose pointers point past `head`; returns the pointer each was set back to (none
/// for a key the rolled-back revisions created).
pub(super) fn roll_back_after(
    data: &sled::Tree,
    head: Revision,
    unfinished: Vec<Vec<u8>>,
) -> Result<Vec<(Vec<u8>, Option<Latest>)>> {
    let mut restored = Vec::with_capacity(unfinished.len());
    let mut lost = Vec::new();
    for key in unfinished {
        match pointer_at(data, head, &key)? {
            Some(pointer) => restored.push(set_pointer(data, key, pointer)?),
            None => lost.push(key),
        }
    }
    let after = Location {
        revision: head.next(),
        sub: 0,
    };
    remove_from(data, &after.record_key())?;
    remove_from(data, &encoding::parts_prefix(after))?;
    // A key whose changes past the head could not be followed back (a record missing or
    // damaged) gets its newest change in the log, now that none lies past the head.
    for (key, latest) in find_latest(data, lost)? {
        let pointer = match latest {
            Some(latest) if latest.live => {
                match data.get(latest.location.record_key()).storage()? {
                    Some(record) => Restored::Live(latest.location, record),
                    None => Restored::Absent,
                }
            }
            Some(latest) => Restored::Tombstone(latest.location),
            None => Restored::Absent,
        };
        restored.push(set_pointer(data, key, pointer)?);
    }
    Ok(restored)
}

/// Writes `pointer` as `key`'s latest pointer; returns what the index learns of it.
fn set_pointer(
    data: &sled::Tree,
    key: Vec<u8>,
    pointer: Restored,
) -> Result<(Vec<u8>, Option<Latest>)> {
    let sled_key = Latest::sled_key(&key);
    let latest = match pointer {
        Restored::Live(location, record) => {
            data.insert(sled_key, Latest::encode_live(location, &record))
                .storage()?;
            Some(Latest {
                location,
                live: true,
            })
        }
        Restored::Tombstone(location) => {
            let latest = Latest {
                location,
                live: false,
            };
            data.insert(sled_key, latest.encode()).storage()?;
            Some(latest)
        }
        Restored::Absent => {
            data.remove(sled_key).storage()?;
            None
        }
    };
    Ok((key, latest))
}

/// A key's latest pointer as of a revision.
enum Restored {
    /// Live at the location, whose record bytes the pointer copies.
    Live(Location, sled::IVec),
    Tombstone(Location),
    /// The key did not exist: it had no change, or only a tombstone that compaction removed.
    Absent,
}

/// The pointer of `key` as of `head`, from its pointer past `head` and the `prev` of the
/// records it leads to; `None` when a record past `head` is missing or damaged.
fn pointer_at(data: &sled::Tree, head: Revision, key: &[u8]) -> Result<Option<Restored>> {
    let Some(bytes) = data.get(Latest::sled_key(key)).storage()? else {
        return Ok(None);
    };
    let mut location = Latest::decode(key, &bytes)?.location;
    loop {
        let bytes = data.get(location.record_key()).storage()?;
        if location.revision <= head {
            return Ok(Some(match bytes {
                // A damaged record keeps its key live at it, so that reads and `verify` report
                // the damage rather than an older change.
                Some(bytes) => match Record::<&[u8]>::decode_borrowed(location, &bytes) {
                    Ok(record) if matches!(record.change, Change::Delete) => {
                        Restored::Tombstone(location)
                    }
                    _ => Restored::Live(location, bytes),
                },
                // Only a tombstone is removed while it is a key's newest change.
                None => Restored::Absent,
            }));
        }
        // A record that is missing, damaged, of another key, or whose previous change is not
        // older (which would walk forever) ends the walk: the key is looked up in the log.
        let Some(record) = bytes.and_then(|bytes| Record::decode(location, &bytes).ok()) else {
            return Ok(None);
        };
        if record.key != key {
            return Ok(None);
        }
        match chain::previous(location, &record) {
            Ok(Some(prev)) => location = prev,
            Ok(None) => return Ok(Some(Restored::Absent)),
            Err(_) => return Ok(None),
        }
    }
}

/// Removes every entry from `first` to the end of its one-byte prefix.
fn remove_from(data: &sled::Tree, first: &[u8]) -> Result<()> {
    let prefix = first[0];
    for item in data.range(first..) {
        let (sled_key, _) = item.storage()?;
        if sled_key[0] != prefix {
            break;
        }
        data.remove(sled_key).storage()?;
    }
    Ok(())
}

/// The newest change of each of `keys`, from one scan of the revision log, newest first (no
/// scan when there are none). A key with no record left (every change compacted away: it was
/// deleted) gets none: it does not exist. Records that do not decode are passed over; `verify`
/// reports them.
pub(super) fn find_latest(
    data: &sled::Tree,
    keys: Vec<Vec<u8>>,
) -> Result<HashMap<Vec<u8>, Option<Latest>>> {
    let mut found: HashMap<Vec<u8>, Option<Latest>> =
        keys.into_iter().map(|key| (key, None)).collect();
    let mut wanted: HashSet<Vec<u8>> = found.keys().cloned().collect();
    for item in data.scan_prefix(encoding::record_prefix()).rev() {
        if wanted.is_empty() {
            break;
        }
        let (sled_key, bytes) = item.storage()?;
        let location = Location::from_record_key(&sled_key)?;
        let Ok(record) = Record::<&[u8]>::decode_borrowed(location, &bytes) else {
            continue;
        };
        if wanted.remove(record.key) {
            let live = matches!(record.change, Change::Put(_));
            found.insert(record.key.to_vec(), Some(Latest { location, live }));
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::roll_back_after;
    use crate::chain;
    use crate::encoding::{Latest, Location};
    use crate::Revision;

    #[test]
    fn a_rolled_back_record_whose_previous_change_is_itself_ends_the_walk() -> crate::Result<()> {
        let (db, location) = chain::store_with_a_change_that_precedes_itself()?;
        let data = &db.shared.data;
        let first = Revision::new(location.revision.get() - 1);
        let restored = roll_back_after(data, first, vec![b"a".to_vec()])?;
        let expected = Latest {
            location: Location {
                revision: first,
                sub: 0,
            },
            live: true,
        };
        assert_eq!(restored, [(b"a".to_vec(), Some(expected))]);
        assert_eq!(
            db.shared.record(location)?,
            None,
            "the record past the head is gone"
        );
        Ok(())
    }
}
