//! The write path: one transaction, one revision, one atomic sled batch.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

use super::{Db, Durability, Shared};
use crate::encoding::{self, Change, Latest, Location, Record, StoredValue};
use crate::index::{Key, View};
use crate::selector;
use crate::txn::{Op, OpResult, Put, Txn, TxnResponse};
use crate::{Error, Result, Revision};

impl Db {
    /// Sets `key` to `value`; returns the revision of the write.
    ///
    /// # Errors
    ///
    /// [`Error::EmptyKey`], [`Error::KeyTooLarge`], [`Error::ValueTooLarge`] for bad input;
    /// [`Error::Storage`] or [`Error::Poisoned`] when the write cannot be made durable.
    pub fn put(&self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Result<Revision> {
        self.put_with(Put::new(key, value))
    }

    /// Writes a [`Put`] carrying labels and fields; returns the revision of the write.
    ///
    /// # Errors
    ///
    /// As [`Db::put`].
    pub fn put_with(&self, put: Put) -> Result<Revision> {
        Ok(self.txn(Txn::new().then([Op::Put(put)]))?.revision)
    }

    /// Deletes `key`. Returns the revision of the delete and whether the key existed; deleting
    /// a missing key changes nothing and returns the current revision.
    ///
    /// # Errors
    ///
    /// As [`Db::put`].
    pub fn delete(&self, key: impl Into<Vec<u8>>) -> Result<(Revision, bool)> {
        let response = self.txn(Txn::new().then([Op::delete(key)]))?;
        let deleted = matches!(
            response.results.first(),
            Some(OpResult::Delete { deleted: true })
        );
        Ok((response.revision, deleted))
    }

    /// Runs an atomic transaction: evaluates its conditions against the newest state, then
    /// applies one branch as a single new revision.
    ///
    /// Under [`Durability::Immediate`] it returns once the revision is on disk; readers see the
    /// revision from that moment on.
    ///
    /// # Errors
    ///
    /// [`Error::DuplicateKey`] when a branch names a key twice, [`Error::TooManyOperations`],
    /// and the errors of [`Db::put`]. Both branches are validated, whichever runs.
    pub fn txn(&self, txn: Txn) -> Result<TxnResponse> {
        validate_branch(&txn.then)?;
        validate_branch(&txn.otherwise)?;
        let shared = &self.shared;
        let mut writer = shared.writer.lock();
        if shared.poisoned.load(Ordering::Acquire) {
            return Err(Error::Poisoned);
        }
        let succeeded = shared.conditions_hold(&writer.applied, &txn)?;
        let ops = if succeeded { txn.then } else { txn.otherwise };
        let revision = writer.applied.revision.next();
        let mut next = View {
            revision,
            tree: writer.applied.tree.clone(),
        };
        let mut batch = sled::Batch::default();
        let mut results = Vec::with_capacity(ops.len());
        let mut sub = 0u32;
        for op in ops {
            let location = Location { revision, sub };
            let changed = match op {
                Op::Put(put) => {
                    shared.stage_put(&mut next, &mut batch, location, put)?;
                    results.push(OpResult::Put);
                    true
                }
                Op::Delete(key) => {
                    let deleted = shared.stage_delete(&mut next, &mut batch, location, key);
                    results.push(OpResult::Delete { deleted });
                    deleted
                }
            };
            if changed {
                sub += 1;
            }
        }
        if sub == 0 {
            return Ok(TxnResponse {
                succeeded,
                revision: writer.applied.revision,
                results,
            });
        }
        let committed_at = now_millis().max(writer.last_commit_millis);
        batch.insert(
            &encoding::commit_time_key(revision),
            encoding::encode_commit_time(committed_at),
        );
        if let Err(cause) = shared.data.apply_batch(batch) {
            shared.poisoned.store(true, Ordering::Release);
            return Err(cause.into());
        }
        writer.applied = next.clone();
        writer.last_commit_millis = committed_at;
        shared.index.stage(next);
        shared.applied.store(revision.get(), Ordering::Release);
        drop(writer);
        match shared.options.durability {
            Durability::Immediate => shared.wait_durable(revision)?,
            Durability::Buffered => shared.index.publish_through(revision),
        }
        Ok(TxnResponse {
            succeeded,
            revision,
            results,
        })
    }
}

impl Shared {
    fn conditions_hold(&self, applied: &View, txn: &Txn) -> Result<bool> {
        for compare in &txn.compares {
            let current = self.get_in_view(applied, &compare.key)?;
            if !compare.holds(current.as_ref()) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn stage_put(
        &self,
        next: &mut View,
        batch: &mut sled::Batch,
        location: Location,
        put: Put,
    ) -> Result<()> {
        let (prev, create_revision, version) = match next.tree.get(&put.key) {
            Some(&current) => {
                let entry = self.live_entry(current, next.revision)?;
                (Some(current), entry.create_revision, entry.version + 1)
            }
            // The chain must reach the tombstone too, so historical reads can cross it.
            None => (
                self.latest(&put.key)?.map(|latest| latest.location),
                location.revision,
                1,
            ),
        };
        let record = Record {
            key: put.key,
            prev,
            change: Change::Put(StoredValue {
                value: put.value,
                create_revision,
                version,
                labels: put.labels,
                fields: put.fields,
            }),
        };
        batch.insert(&location.record_key(), record.encode());
        batch.insert(
            Latest::sled_key(&record.key),
            Latest {
                location,
                live: true,
            }
            .encode(),
        );
        next.tree.insert(Key::from(record.key), location);
        Ok(())
    }

    /// Returns whether a live key was deleted.
    fn stage_delete(
        &self,
        next: &mut View,
        batch: &mut sled::Batch,
        location: Location,
        key: Vec<u8>,
    ) -> bool {
        let Some(current) = next.tree.remove(&key) else {
            return false;
        };
        batch.insert(
            Latest::sled_key(&key),
            Latest {
                location,
                live: false,
            }
            .encode(),
        );
        let record = Record {
            key,
            prev: Some(current),
            change: Change::Delete,
        };
        batch.insert(&location.record_key(), record.encode());
        true
    }

    /// The key's newest change, live or tombstone, as the latest-version pointer records it.
    pub(crate) fn latest(&self, key: &[u8]) -> Result<Option<Latest>> {
        match self.data.get(Latest::sled_key(key))? {
            Some(bytes) => Latest::decode(key, &bytes).map(Some),
            None => Ok(None),
        }
    }
}

fn validate_branch(ops: &[Op]) -> Result<()> {
    if ops.len() > crate::MAX_TXN_OPS {
        return Err(Error::TooManyOperations { count: ops.len() });
    }
    let mut seen = HashSet::with_capacity(ops.len());
    for op in ops {
        let key = op.key();
        if key.is_empty() {
            return Err(Error::EmptyKey);
        }
        if key.len() > crate::MAX_KEY_LEN {
            return Err(Error::KeyTooLarge { len: key.len() });
        }
        if let Op::Put(put) = op {
            if put.value.len() > crate::MAX_VALUE_LEN {
                return Err(Error::ValueTooLarge {
                    len: put.value.len(),
                });
            }
            selector::validate_labels(&put.labels)?;
            selector::validate_fields(&put.fields)?;
        }
        if !seen.insert(key) {
            return Err(Error::DuplicateKey { key: key.to_vec() });
        }
    }
    Ok(())
}

pub(crate) fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
        })
}
