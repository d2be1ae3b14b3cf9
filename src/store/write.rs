//! The write path: one transaction, one revision; concurrent transactions share one atomic
//! write and one flush (group commit).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::thread::{self, ThreadId};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use std::sync::Arc;

use parking_lot::{Condvar, MutexGuard};
use sled::IVec;

use super::{Db, Durability, Shared};
use crate::chain::Incarnation;
use crate::encoding::{self, Change, Latest, Location, Meta, Record, StoredValue, Value};
use crate::entry::Entry;
use crate::identity;
use crate::index::{Key, View};
use crate::selector;
use crate::txn::{Op, OpResult, Put, Txn, TxnResponse};
use crate::watch::LoggedChange;
use crate::{Error, Result, Revision, StorageError};

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
    /// As [`Db::put`], and for its labels and fields [`Error::InvalidLabel`],
    /// [`Error::MetadataTooLarge`] and [`Error::TooManyLabels`].
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
    /// Concurrent transactions commit in groups: one caller writes every transaction queued
    /// while the previous group was being written, each as its own revision, with one atomic
    /// write and one flush. Under [`Durability::Immediate`] it returns once the revision is on
    /// disk; readers see the revision from that moment on.
    ///
    /// # Errors
    ///
    /// [`Error::DuplicateKey`] when a branch names a key twice, [`Error::TooManyOperations`],
    /// [`Error::TxnTooLarge`], and the errors of [`Db::put_with`]. Both branches are
    /// validated, whichever runs.
    pub fn txn(&self, txn: Txn) -> Result<TxnResponse> {
        let bytes = validate_branch(&txn.then)?.max(validate_branch(&txn.otherwise)?);
        self.shared.commit(txn, bytes)
    }
}

/// How long a leader waits for the writers of the previous group to queue again. They are
/// usually on their way back, and each one that joins this group saves a flush of its own.
const GATHER_WINDOW: Duration = Duration::from_micros(200);

/// The most bytes of transactions (as [`validate_branch`] counts them) one commit group
/// writes at once; the rest wait for the next group. A group holds at least one
/// transaction, and none is larger than this.
const MAX_GROUP_BYTES: usize = 4 * crate::MAX_TXN_BYTES;

/// How many of the queued transactions, of these sizes, oldest first, the next group takes.
fn group_len(sizes: impl IntoIterator<Item = usize>) -> usize {
    let mut total = 0;
    let within = sizes
        .into_iter()
        .take_while(|bytes| {
            total += bytes;
            total <= MAX_GROUP_BYTES
        })
        .count();
    within.max(1)
}

/// Transactions waiting for a commit leader, and the outcomes of committed ones.
#[derive(Default)]
pub(super) struct CommitQueue {
    waiting: Vec<Waiting>,
    finished: HashMap<u64, Result<TxnResponse>>,
    next_ticket: u64,
    leading: bool,
    gathering: bool,
    /// The threads whose transactions made up the previous group.
    last_group: Vec<ThreadId>,
}

struct Waiting {
    ticket: u64,
    thread: ThreadId,
    txn: Txn,
    /// The transaction's size, as [`validate_branch`] counts it.
    bytes: usize,
    /// Signalled, under the queue's lock, when the outcome is in or the caller is to lead.
    wake: Arc<Condvar>,
}

/// The leader's duty to hand every transaction of its group an outcome and step down, even
/// when it unwinds: otherwise its followers would wait forever.
struct Leadership<'a> {
    shared: &'a Shared,
    members: Vec<(u64, Arc<Condvar>)>,
    outcomes: Option<Vec<Result<TxnResponse>>>,
}

impl Drop for Leadership<'_> {
    fn drop(&mut self) {
        let outcomes = self.outcomes.take();
        if outcomes.is_none() {
            self.shared.poisoned.store(true, Ordering::Release);
        }
        let mut queue = self.shared.commits.lock();
        queue.leading = false;
        let mut outcomes = outcomes.into_iter().flatten();
        for (ticket, wake) in std::mem::take(&mut self.members) {
            let outcome = outcomes.next().unwrap_or(Err(Error::Poisoned));
            queue.finished.insert(ticket, outcome);
            wake.notify_one();
        }
        if let Some(next_leader) = queue.waiting.first() {
            next_leader.wake.notify_one();
        }
    }
}

/// The state a commit group builds on: each transaction stages onto the previous one's.
struct Group {
    view: View,
    last_commit_millis: u64,
    staged: Staged,
    tombstones: Tombstones,
    /// Each revision's changes, for the watchers; `None` when no watcher exists.
    watched: Option<Vec<(Revision, Vec<LoggedChange>)>>,
}

/// What the group will write, in the order recovery relies on (see [`Staged::write`]), and the
/// records later transactions of the group may read, which sled has not seen yet.
#[derive(Default)]
struct Staged {
    /// Records and value parts, by sled key.
    log: Vec<(Vec<u8>, IVec)>,
    /// The latest pointer of each key the group changes, by sled key: the newest change wins.
    pointers: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Each revision's commit time, by sled key, oldest first.
    commit_times: Vec<(Vec<u8>, Vec<u8>)>,
    records: HashMap<Location, IVec>,
    /// The sealed parts of the values of `records` stored in parts.
    parts: HashMap<Location, Vec<Vec<u8>>>,
}

/// One transaction's writes, held apart until the whole transaction staged without error.
#[derive(Default)]
struct Changes {
    records: Vec<Staging>,
    /// The sealed parts of the large values among `records`.
    parts: Vec<(Location, Vec<Vec<u8>>)>,
}

/// One change of one key: its record, which also becomes the key's latest pointer.
struct Staging {
    key: Vec<u8>,
    location: Location,
    record: IVec,
    live: bool,
}

impl Staged {
    /// Takes in a transaction's changes; `read_later` keeps its records readable for the rest
    /// of the group.
    fn absorb(
        &mut self,
        changes: Changes,
        tombstones: &mut Tombstones,
        commit_time: (Revision, u64),
        read_later: bool,
    ) {
        for staging in changes.records {
            let Staging {
                key,
                location,
                record,
                live,
            } = staging;
            let latest = Latest { location, live };
            let pointer = if live {
                Latest::encode_live(location, &record)
            } else {
                latest.encode()
            };
            self.pointers.insert(Latest::sled_key(&key), pointer);
            tombstones.track(key, latest);
            self.log
                .push((location.record_key().to_vec(), record.clone()));
            if read_later {
                self.records.insert(location, record);
            }
        }
        for (location, parts) in changes.parts {
            for (index, part) in (0..).zip(&parts) {
                let part_key = encoding::part_key(location, index).to_vec();
                self.log.push((part_key, IVec::from(part.as_slice())));
            }
            if read_later {
                self.parts.insert(location, parts);
            }
        }
        let (revision, millis) = commit_time;
        self.commit_times.push((
            encoding::commit_time_key(revision).to_vec(),
            encoding::encode_commit_time(millis),
        ));
    }

    /// Writes the group with plain inserts, in an order that makes it atomic without a sled
    /// batch (which takes a process-wide lock that every sled read waits for): records and
    /// parts, then latest pointers, then the `reserved` revision, then commit times. sled
    /// recovers a prefix of its writes, and a store opens at the revision of its newest commit
    /// time, so a crash part way leaves revisions that are whole, and what it left of the
    /// others, which `recovery` rolls back from the records when the store opens again.
    fn write(self, data: &sled::Tree, reserved: Option<Revision>) -> sled::Result<()> {
        for (sled_key, bytes) in self.log {
            data.insert(sled_key, bytes)?;
        }
        for (sled_key, pointer) in self.pointers {
            data.insert(sled_key, pointer)?;
        }
        if let Some(reserved) = reserved {
            data.insert(
                Meta::ReservedRevision.sled_key(),
                Meta::encode(reserved.get()),
            )?;
        }
        for (sled_key, millis) in self.commit_times {
            data.insert(sled_key, millis)?;
        }
        Ok(())
    }

    /// The entry of live `key` at `location`, which may have been staged by this group.
    fn entry(
        &self,
        shared: &Shared,
        key: &[u8],
        location: Location,
        revision: Revision,
    ) -> Result<Entry> {
        let entry = match self.records.get(&location) {
            Some(bytes) => {
                let parts = || {
                    let parts = self.parts.get(&location).into_iter().flatten();
                    (0..).zip(parts).map(move |(index, part)| {
                        Ok((encoding::part_key(location, index).to_vec(), part.clone()))
                    })
                };
                Entry::from_put(location, Record::decode(location, bytes)?, |value| {
                    value.into_bytes(location, parts)
                })?
            }
            None => shared.live_entry(location, revision)?,
        };
        super::holding_key(entry, key, location)
    }
}

/// The tombstones of deleted keys whose latest-version pointer is still on disk, so a write
/// that re-creates a key chains to its tombstone without reading sled: that read is the cost
/// of every write of a key the index does not hold. Compaction forgets what it removes.
#[derive(Default)]
pub(super) struct Tombstones(HashMap<Vec<u8>, Location>);

impl Tombstones {
    pub(super) fn track(&mut self, key: Vec<u8>, latest: Latest) {
        if latest.live {
            self.0.remove(&key);
        } else {
            self.0.insert(key, latest.location);
        }
    }

    /// Forgets `key`'s tombstone if it is still the one at `location`.
    pub(crate) fn forget(&mut self, key: &[u8], location: Location) {
        if self.0.get(key) == Some(&location) {
            self.0.remove(key);
        }
    }

    fn get(&self, key: &[u8]) -> Option<Location> {
        self.0.get(key).copied()
    }
}

impl Shared {
    /// Queues `txn`, of `bytes`, and waits for its outcome. A caller that finds no leader at
    /// work becomes the leader and commits the oldest queued transactions, as many as one group
    /// holds, until its own transaction has been committed.
    fn commit(&self, txn: Txn, bytes: usize) -> Result<TxnResponse> {
        let mut queue = self.commits.lock();
        let ticket = queue.next_ticket;
        queue.next_ticket += 1;
        let wake = Arc::new(Condvar::new());
        queue.waiting.push(Waiting {
            ticket,
            thread: thread::current().id(),
            txn,
            bytes,
            wake: Arc::clone(&wake),
        });
        if queue.gathering {
            self.arrivals.notify_one();
        }
        loop {
            if let Some(outcome) = queue.finished.remove(&ticket) {
                return outcome;
            }
            if queue.leading {
                wake.wait(&mut queue);
                continue;
            }
            queue.leading = true;
            self.gather(&mut queue);
            let len = group_len(queue.waiting.iter().map(|waiting| waiting.bytes));
            let group: Vec<Waiting> = queue.waiting.drain(..len).collect();
            queue.last_group = group.iter().map(|waiting| waiting.thread).collect();
            drop(queue);
            let (members, txns) = group
                .into_iter()
                .map(|waiting| ((waiting.ticket, waiting.wake), waiting.txn))
                .unzip();
            let mut leadership = Leadership {
                shared: self,
                members,
                outcomes: None,
            };
            leadership.outcomes = Some(self.commit_group(txns));
            drop(leadership);
            queue = self.commits.lock();
        }
    }

    /// Waits, for a moment at most, until every thread of the previous group has queued again.
    fn gather(&self, queue: &mut MutexGuard<'_, CommitQueue>) {
        let mut expected: HashSet<ThreadId> = queue.last_group.iter().copied().collect();
        expected.extend(queue.waiting.iter().map(|waiting| waiting.thread));
        let deadline = Instant::now() + GATHER_WINDOW;
        queue.gathering = true;
        while queue.waiting.len() < expected.len() {
            if self.arrivals.wait_until(queue, deadline).timed_out() {
                break;
            }
        }
        queue.gathering = false;
    }

    /// Stages each transaction as its own revision, writes them all at once, and
    /// waits for durability once.
    fn commit_group(&self, txns: Vec<Txn>) -> Vec<Result<TxnResponse>> {
        let mut writer = self.writer.lock();
        if self.poisoned.load(Ordering::Acquire) {
            return txns.iter().map(|_| Err(Error::Poisoned)).collect();
        }
        let mut group = Group {
            view: writer.applied.clone(),
            last_commit_millis: writer.last_commit_millis,
            staged: Staged::default(),
            tombstones: std::mem::take(&mut writer.tombstones),
            watched: self.hub.watching().then(Vec::new),
        };
        let count = txns.len();
        let mut outcomes: Vec<Result<TxnResponse>> = txns
            .into_iter()
            .enumerate()
            .map(|(position, txn)| self.stage_txn(&mut group, txn, position + 1 < count))
            .collect();
        let head = group.view.revision;
        writer.tombstones = group.tombstones;
        if head == writer.applied.revision {
            return outcomes;
        }
        // A buffered group publishes before it is durable, so the revisions it shows must be
        // durably reserved first: a crash must never let a later run reuse them.
        let reservation = (self.options.durability == Durability::Buffered
            && head > writer.reserved)
            .then(|| Revision::new(head.get() + identity::RESERVATION_BLOCK));
        if let Err(cause) = group.staged.write(&self.data, reservation) {
            self.poisoned.store(true, Ordering::Release);
            let cause = StorageError::from_sled(cause);
            return outcomes
                .iter()
                .map(|_| Err(Error::Storage(cause.clone())))
                .collect();
        }
        if let Some(watched) = group.watched {
            self.hub.stage(writer.applied.revision, watched);
        }
        writer.applied = group.view.clone();
        writer.last_commit_millis = group.last_commit_millis;
        writer.reserved = reservation.unwrap_or(writer.reserved);
        self.index.stage(group.view);
        self.applied.store(head.get(), Ordering::Release);
        drop(writer);
        let published = match self.options.durability {
            Durability::Immediate => self.wait_durable(head),
            Durability::Buffered if reservation.is_some() => self.wait_durable(head),
            Durability::Buffered => {
                self.publish(head);
                Ok(())
            }
        };
        if let Err(cause) = published {
            for outcome in &mut outcomes {
                *outcome = Err(match &cause {
                    Error::Storage(storage) => Error::Storage(storage.clone()),
                    _ => Error::Poisoned,
                });
            }
        }
        outcomes
    }

    /// Stages one transaction onto the group; on error the group is left as it was.
    fn stage_txn(&self, group: &mut Group, txn: Txn, read_later: bool) -> Result<TxnResponse> {
        let succeeded = self.conditions_hold(group, &txn)?;
        let ops = if succeeded { txn.then } else { txn.otherwise };
        let revision = group.view.revision.next().max(self.first_revision);
        let mut next = View {
            revision,
            tree: group.view.tree.clone(),
            changes: group.view.changes,
        };
        let mut changes = Changes::default();
        let mut results = Vec::with_capacity(ops.len());
        let mut sub = 0u32;
        for op in ops {
            let location = Location { revision, sub };
            let changed = match op {
                Op::Put(put) => {
                    self.stage_put(group, &mut next, &mut changes, location, put)?;
                    results.push(OpResult::Put);
                    true
                }
                Op::Delete(key) => {
                    let deleted = stage_delete(&mut next, &mut changes, location, key);
                    results.push(OpResult::Delete { deleted });
                    deleted
                }
            };
            if changed {
                sub += 1;
            }
        }
        next.changes += i64::from(sub);
        if sub == 0 {
            return Ok(TxnResponse {
                succeeded,
                revision: group.view.revision,
                results,
            });
        }
        if let Some(watched) = &mut group.watched {
            let watched_changes = changes.records.iter().map(|staging| {
                LoggedChange::new(&staging.key, staging.location, staging.record.clone())
            });
            watched.push((revision, watched_changes.collect()));
        }
        let committed_at = now_millis().max(group.last_commit_millis);
        group.staged.absorb(
            changes,
            &mut group.tombstones,
            (revision, committed_at),
            read_later,
        );
        group.view = next;
        group.last_commit_millis = committed_at;
        Ok(TxnResponse {
            succeeded,
            revision,
            results,
        })
    }

    fn conditions_hold(&self, group: &Group, txn: &Txn) -> Result<bool> {
        for compare in &txn.compares {
            let current = match group.view.tree.get(&compare.key) {
                Some(&location) => Some(group.staged.entry(
                    self,
                    &compare.key,
                    location,
                    group.view.revision,
                )?),
                None => None,
            };
            if !compare.holds(current.as_ref()) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn stage_put(
        &self,
        group: &Group,
        next: &mut View,
        changes: &mut Changes,
        location: Location,
        put: Put,
    ) -> Result<()> {
        let (prev, live) = match next.tree.get(&put.key) {
            Some(&current) => {
                let entry = group.staged.entry(self, &put.key, current, next.revision)?;
                let live = Incarnation {
                    create_revision: entry.create_revision,
                    version: entry.version,
                };
                (Some(current), Some(live))
            }
            // The chain must reach the tombstone too, so historical reads can cross it.
            None => (group.tombstones.get(&put.key), None),
        };
        let Incarnation {
            create_revision,
            version,
        } = Incarnation::next_put(live, location.revision);
        let (value, parts) = Value::store(put.value);
        if !parts.is_empty() {
            changes.parts.push((location, parts));
        }
        let record = Record {
            key: put.key,
            prev,
            change: Change::Put(StoredValue {
                value,
                create_revision,
                version,
                labels: put.labels,
                fields: put.fields,
            }),
        };
        changes.records.push(Staging {
            key: record.key.clone(),
            location,
            record: record.encode().into(),
            live: true,
        });
        next.tree.insert(Key::from(record.key), location);
        Ok(())
    }
}

/// Returns whether a live key was deleted.
fn stage_delete(next: &mut View, changes: &mut Changes, location: Location, key: Vec<u8>) -> bool {
    let Some(current) = next.tree.remove(&key) else {
        return false;
    };
    let record = Record {
        key,
        prev: Some(current),
        change: Change::Delete,
    };
    changes.records.push(Staging {
        record: record.encode().into(),
        key: record.key,
        location,
        live: false,
    });
    true
}

/// Checks a branch against the write limits; returns its bytes (see [`crate::MAX_TXN_BYTES`]).
fn validate_branch(ops: &[Op]) -> Result<usize> {
    if ops.len() > crate::MAX_TXN_OPS {
        return Err(Error::TooManyOperations { count: ops.len() });
    }
    let mut seen = HashSet::with_capacity(ops.len());
    let mut bytes = 0;
    for op in ops {
        let key = op.key();
        if key.is_empty() {
            return Err(Error::EmptyKey);
        }
        if key.len() > crate::MAX_KEY_LEN {
            return Err(Error::KeyTooLarge { len: key.len() });
        }
        bytes += key.len();
        if let Op::Put(put) = op {
            if put.value.len() > crate::MAX_VALUE_LEN {
                return Err(Error::ValueTooLarge {
                    len: put.value.len(),
                });
            }
            let count = put.labels.len() + put.fields.len();
            if count > crate::MAX_LABELS {
                return Err(Error::TooManyLabels { count });
            }
            selector::validate_labels(&put.labels)?;
            selector::validate_fields(&put.fields)?;
            let metadata_len: usize = put
                .labels
                .iter()
                .chain(&put.fields)
                .map(|(key, value)| key.len() + value.len())
                .sum();
            if metadata_len > crate::MAX_METADATA_LEN {
                return Err(Error::MetadataTooLarge { len: metadata_len });
            }
            bytes += put.value.len() + metadata_len;
        }
        if bytes > crate::MAX_TXN_BYTES {
            return Err(Error::TxnTooLarge { bytes });
        }
        if !seen.insert(key) {
            return Err(Error::DuplicateKey { key: key.to_vec() });
        }
    }
    Ok(bytes)
}

pub(crate) fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
        })
}

#[cfg(test)]
mod tests {
    use super::{group_len, MAX_GROUP_BYTES};
    use crate::{Db, Revision};

    #[test]
    fn a_group_takes_the_oldest_transactions_that_fit_its_bytes_and_at_least_one() {
        assert_eq!(group_len([10, 20, 30]), 3);
        assert_eq!(group_len([MAX_GROUP_BYTES / 2; 5]), 2);
        assert_eq!(group_len([MAX_GROUP_BYTES / 2, MAX_GROUP_BYTES, 1]), 1);
        assert_eq!(group_len([MAX_GROUP_BYTES + 1, 1]), 1);
        assert_eq!(group_len([1, MAX_GROUP_BYTES, 1]), 1);
    }

    fn tombstone_count(db: &Db) -> usize {
        db.shared.writer.lock().tombstones.0.len()
    }

    #[test]
    fn tombstones_are_tracked_until_recreated_or_compacted() -> crate::Result<()> {
        let db = Db::temporary()?;
        db.put("a", "1")?;
        db.put("b", "1")?;
        db.delete("a")?;
        let (deleted_b, _) = db.delete("b")?;
        assert_eq!(tombstone_count(&db), 2);
        db.put("a", "2")?;
        assert_eq!(
            tombstone_count(&db),
            1,
            "re-creating a key forgets its tombstone"
        );
        db.compact(deleted_b)?;
        assert_eq!(tombstone_count(&db), 0, "compaction removed b's tombstone");
        db.put("b", "2")?;
        let b = db.get("b")?.expect("b is live");
        assert_eq!((b.version, b.create_revision), (1, Revision::new(6)));
        Ok(())
    }
}
