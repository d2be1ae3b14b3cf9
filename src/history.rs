//! Reading the past: views and gets at revisions older than the newest.
//!
//! A list pins the view of the revision it started at. While that view is cached in the
//! [`Index`](crate::index::Index) a chunk costs O(log n + limit). When it is not (evicted, or
//! the process restarted since the token was issued), the view is rebuilt by taking the nearest
//! newer view at hand and undoing, newest first, every record written after the wanted
//! revision: a put that created its key removes the key, any other put or delete restores the
//! key's previous location. That costs O(w · log n) for w changes in between, reading w records
//! sequentially from the log, once; the rebuilt view is pinned for the chunks that follow.

use crate::chain::{self, Successor};
use crate::encoding::{self, Change, Location, Record};
use crate::error::SledResultExt;
use crate::index::{Key, View};
use crate::store::Shared;
use crate::{Db, Entry, Error, Result, Revision};

impl Db {
    /// The key's entry as it was at `revision`, or `None` if it did not exist then.
    ///
    /// # Errors
    ///
    /// [`Error::FutureRevision`] above the current revision, [`Error::Expired`] below the
    /// compacted one, and [`Error::Corrupted`] or [`Error::Storage`] when history cannot be read.
    ///
    /// # Examples
    ///
    /// ```
    /// use revkv::Db;
    /// # let db = Db::temporary()?;
    /// let first = db.put("k", "v1")?;
    /// db.put("k", "v2")?;
    /// assert_eq!(db.get_at("k", first)?.unwrap().value, b"v1");
    /// # Ok::<(), revkv::Error>(())
    /// ```
    pub fn get_at(&self, key: impl AsRef<[u8]>, revision: Revision) -> Result<Option<Entry>> {
        let shared = &self.shared;
        let key = key.as_ref();
        shared.check_readable(revision)?;
        if let Some(view) = shared.index.pinned(revision) {
            return shared.get_in_view(&view, key);
        }
        let found = shared.walk_back(key, revision);
        // A compaction that started during the walk may have removed what it looked for.
        shared.check_not_compacted(revision)?;
        found
    }
}

impl Shared {
    /// Fails unless `revision` can be read: not lost, not in the future, not compacted.
    pub(crate) fn check_readable(&self, revision: Revision) -> Result<()> {
        self.identity.read().check_not_lost(revision)?;
        let current = self.index.visible().revision;
        if revision > current {
            return Err(Error::FutureRevision {
                requested: revision,
                current,
            });
        }
        self.check_not_compacted(revision)
    }

    /// Fails unless a token issued by store `store` in its run `run` at `revision` names a
    /// state this store still has. Below the compacted revision the read fails with
    /// [`Error::Expired`] anyway, and the runs there may be forgotten.
    pub(crate) fn check_token_origin(
        &self,
        store: u64,
        run: u64,
        revision: Revision,
    ) -> Result<()> {
        let identity = self.identity.read();
        let foreign = Error::InvalidContinueToken {
            reason: crate::TokenRejection::ForeignStore,
        };
        if store != identity.store {
            return Err(foreign);
        }
        if revision < self.compacted() {
            return Ok(());
        }
        match identity.run_holds(run, revision) {
            Some(true) => Ok(()),
            Some(false) => Err(Error::LostRevision {
                requested: revision,
            }),
            None => Err(foreign),
        }
    }

    /// The view of the live keys at `revision`, from the cache or rebuilt from the log. It is
    /// not pinned: a list pins the view only when it has more chunks to read from it.
    pub(crate) fn view_at(&self, revision: Revision) -> Result<View> {
        self.check_readable(revision)?;
        if let Some(view) = self.index.pinned(revision) {
            return Ok(view);
        }
        let view = self.rebuilds.view_at(revision, || self.rebuild(revision));
        self.check_not_compacted(revision)?;
        view
    }

    fn rebuild(&self, revision: Revision) -> Result<View> {
        let mut view = self.index.nearest_above(revision);
        let newer = encoding::record_key_floor(revision.next())
            ..encoding::record_key_floor(view.revision.next());
        for item in self.data.range(newer).rev() {
            let (sled_key, bytes) = item.storage()?;
            let location = Location::from_record_key(&sled_key)?;
            let record = Record::decode(location, &bytes)?;
            undo(&mut view, location, record)?;
            view.changes -= 1;
        }
        view.revision = revision;
        Ok(view)
    }

    /// Follows the key's chain of changes back from its newest one to the one in force at
    /// `revision`.
    fn walk_back(&self, key: &[u8], revision: Revision) -> Result<Option<Entry>> {
        let Some(latest) = self.latest(key)? else {
            return Ok(None);
        };
        let mut next = Some(latest.location);
        // The change after `next` in the key's history, once the walk has left the pointer's.
        let mut newer: Option<(Location, Record)> = None;
        while let Some(location) = next {
            let Some(record) = self.record(location)? else {
                let successor = Successor::in_walk(latest.live, newer.as_ref());
                // The key did not exist while a change that compaction removed was in force.
                if chain::compacted_away(location, successor, self.compacted()) {
                    return Ok(None);
                }
                return Err(Error::corrupted(
                    location.to_string(),
                    "a record in a key's history is missing",
                ));
            };
            if record.key != key {
                return Err(Error::corrupted(
                    location.to_string(),
                    "a key's history points at another key",
                ));
            }
            if location.revision <= revision {
                return match record.change {
                    Change::Put(_) => self.entry_of(location, record).map(Some),
                    Change::Delete => Ok(None),
                };
            }
            next = chain::previous(location, &record)
                .map_err(|reason| Error::corrupted(location.to_string(), reason))?;
            newer = Some((location, record));
        }
        Ok(None)
    }
}

/// Reverts one record on `view`, which must reflect every record after it.
fn undo(view: &mut View, location: Location, record: Record) -> Result<()> {
    let broken = |reason: String| Error::corrupted(location.to_string(), reason);
    let current = view.tree.get(&record.key).copied();
    let consistent = match record.change {
        Change::Put(_) => current == Some(location),
        Change::Delete => current.is_none(),
    };
    if !consistent {
        return Err(broken(
            "the log disagrees with the index about this change".into(),
        ));
    }
    match chain::superseded(location, &record).map_err(broken)? {
        Some(prev) => {
            view.tree.insert(Key::from(record.key), prev);
        }
        None => {
            view.tree.remove(&record.key);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::chain;
    use crate::encoding::Location;
    use crate::error::SledResultExt;
    use crate::{Db, Revision};

    #[test]
    fn a_history_that_does_not_go_back_in_time_is_corruption_not_a_hang() -> crate::Result<()> {
        let (db, _) = chain::store_with_a_change_that_precedes_itself()?;
        let error = db.get_at("a", Revision::new(1)).unwrap_err();
        assert_eq!(error.reason(), "Corrupted", "{error}");
        assert!(!db.verify()?.findings.is_empty());
        Ok(())
    }

    #[test]
    fn a_lost_record_that_compaction_keeps_is_corruption_not_a_missing_key() -> crate::Result<()> {
        let db = Db::temporary()?;
        let superseded_later = db.put("a", "1")?;
        let compacted = db.put("b", "1")?;
        db.compact(compacted)?;
        db.put("a", "2")?;
        for lost in [superseded_later, compacted] {
            db.shared
                .data
                .remove(
                    Location {
                        revision: lost,
                        sub: 0,
                    }
                    .record_key(),
                )
                .storage()?;
        }
        // a's lost record is reached through a's newer change, b's through its pointer.
        for key in ["a", "b"] {
            let error = db.get_at(key, compacted).unwrap_err();
            assert_eq!(error.reason(), "Corrupted", "{key}: {error}");
        }
        assert!(!db.verify()?.findings.is_empty());
        Ok(())
    }
}
