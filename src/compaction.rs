//! Compaction: forgetting history older than a revision, and the retention that drives it.
//!
//! `compact(c)` keeps, for every key, only its newest change at or below `c`, and drops the key
//! entirely when that change is a delete. It runs in three durable steps, like etcd's:
//!
//! 1. **Schedule.** Persist `c` as the compacted revision and flush. From this moment reads
//!    below `c` fail with [`Error::Expired`], and pinned snapshots below `c` are released.
//! 2. **Sweep**, in batches of [`BATCH_RECORDS`] records that interleave with reads and writes.
//!    Only the records written in `(previous compaction, c]` are scanned, so the work is
//!    proportional to the history created since the last compaction, not to all of it: each of
//!    them that updated or deleted a key makes the key's previous record garbage, and each
//!    delete is itself garbage (its latest-version pointer goes too, unless the key has been
//!    written again since), by the rules of `chain`. After each batch the revision swept through
//!    is recorded. A record that does not decode is counted, reported and left in place: what
//!    it superseded cannot be known, and whether it is garbage neither.
//! 3. **Finish.** Persist `c` as the finished compaction.
//!
//! A process that dies or closes between 1 and 3 leaves the swept revision below the compacted
//! one; the next open resumes the sweep from there in the background (every deletion is
//! idempotent), while the store serves, and then takes step 3.

use std::fmt::Write as _;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::chain;
use crate::encoding::{self, Change, Latest, Location, Meta, Record};
use crate::error::SledResultExt;
use crate::store::Shared;
use crate::{Db, Error, Result, Revision};

/// How many records one compaction batch scans before it yields to other work.
///
/// Small, so that a paced compaction gives the CPU back often: on a 2-core machine, batches of
/// 100 records with a pause as long as each batch kept p99 chunk and write latency within 2× of
/// idle while 1M superseded records were deleted, where batches of 1000 without pauses let p99
/// grow 4-10×.
pub const BATCH_RECORDS: usize = 100;

/// How much history the background compactor keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retention {
    /// Keep every revision committed within this long ago (5 minutes by default: the lifetime
    /// Kubernetes users get for a continue token).
    Time(Duration),
    /// Keep this many revisions below the current one.
    Revisions(u64),
    /// Compact only when [`Db::compact`] is called.
    Manual,
}

impl Default for Retention {
    fn default() -> Self {
        Retention::Time(Duration::from_secs(300))
    }
}

impl FromStr for Retention {
    type Err = Error;

    /// Parses `manual`, `<n>rev` (revisions), or a duration: `<n>ms`, `<n>s`, `<n>m`, `<n>h`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use revkv::Retention;
    /// assert_eq!("5m".parse::<Retention>()?, Retention::Time(Duration::from_secs(300)));
    /// assert_eq!("10000rev".parse::<Retention>()?, Retention::Revisions(10_000));
    /// assert_eq!("manual".parse::<Retention>()?, Retention::Manual);
    /// # Ok::<(), revkv::Error>(())
    /// ```
    fn from_str(text: &str) -> Result<Self> {
        let invalid = || {
            Error::invalid_request(format!(
                "retention {text:?} is not `manual`, `<n>rev` or a duration such as `90s`, `5m`, `1h`"
            ))
        };
        if text == "manual" {
            return Ok(Retention::Manual);
        }
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .ok_or_else(invalid)?;
        let (number, unit) = text.split_at(split);
        let number: u64 = number.parse().map_err(|_| invalid())?;
        let seconds = |factor: u64| {
            number
                .checked_mul(factor)
                .map(Duration::from_secs)
                .ok_or_else(invalid)
        };
        Ok(match unit {
            "rev" => Retention::Revisions(number),
            "ms" => Retention::Time(Duration::from_millis(number)),
            "s" => Retention::Time(seconds(1)?),
            "m" => Retention::Time(seconds(60)?),
            "h" => Retention::Time(seconds(3600)?),
            _ => return Err(invalid()),
        })
    }
}

/// What a call to [`Db::compact`] did.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct CompactionReport {
    /// The compacted revision after the call.
    pub revision: Revision,
    /// The compacted revision before the call.
    pub previous: Revision,
    /// True when the store was already compacted at or above the requested revision, so
    /// nothing was done.
    pub already_compacted: bool,
    /// Records (superseded versions and tombstones) deleted from disk.
    pub removed_records: u64,
    /// Records that did not decode and were left in place, with whatever they superseded;
    /// [`Db::verify`] names them.
    pub skipped_records: u64,
    /// How long it took.
    #[serde(rename = "elapsed_ms", serialize_with = "serialize_millis")]
    pub elapsed: Duration,
}

fn serialize_millis<S: serde::Serializer>(
    elapsed: &Duration,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(elapsed.as_secs_f64() * 1000.0)
}

impl Db {
    /// Compacts history at `revision`: reads at or above it behave as before, reads below it
    /// fail with [`Error::Expired`]. Blocks until the compaction is finished.
    ///
    /// # Errors
    ///
    /// [`Error::FutureRevision`] above the current revision; [`Error::Storage`] when sled fails
    /// (an interrupted compaction is finished by the next open).
    ///
    /// # Examples
    ///
    /// ```
    /// use revkv::{Db, Error};
    /// # let db = Db::temporary()?;
    /// let old = db.put("k", "v1")?;
    /// let new = db.put("k", "v2")?;
    /// db.compact(new)?;
    /// assert!(matches!(db.get_at("k", old), Err(Error::Expired { .. })));
    /// assert_eq!(db.get_at("k", new)?.unwrap().value, b"v2");
    /// # Ok::<(), revkv::Error>(())
    /// ```
    pub fn compact(&self, revision: Revision) -> Result<CompactionReport> {
        self.compact_with_progress(revision, |_| {})
    }

    /// As [`Db::compact`], calling `progress` with the revision reached after every batch.
    ///
    /// # Errors
    ///
    /// As [`Db::compact`].
    pub fn compact_with_progress(
        &self,
        revision: Revision,
        progress: impl FnMut(Revision),
    ) -> Result<CompactionReport> {
        self.shared.compact(revision, progress, &|| false)
    }

    /// The revision the retention policy would compact at now, if it is above the compacted
    /// revision; `None` when there is nothing to compact or retention is manual.
    ///
    /// # Errors
    ///
    /// [`Error::Storage`] or [`Error::Corrupted`] when commit times cannot be read.
    pub fn retention_boundary(&self) -> Result<Option<Revision>> {
        self.shared.retention_boundary()
    }
}

impl Shared {
    pub(crate) fn compact(
        &self,
        target: Revision,
        mut progress: impl FnMut(Revision),
        stop: &dyn Fn() -> bool,
    ) -> Result<CompactionReport> {
        let started = Instant::now();
        let _one_at_a_time = self.compaction_lock.lock();
        let current = self.index.visible().revision;
        if target > current {
            return Err(Error::FutureRevision {
                requested: target,
                current,
            });
        }
        let previous = self.compacted();
        let already_compacted = target <= previous;
        if !already_compacted {
            self.write_meta(Meta::CompactedRevision, target)?;
            self.compacted.store(target.get(), Ordering::Release);
            self.index.release_below(target);
        }
        // Even a no-op finishes what an earlier, failed or stopped compaction left undone.
        let sweep = self.sweep(&mut progress, stop, self.options.paced_compaction)?;
        Ok(CompactionReport {
            revision: previous.max(target),
            previous,
            already_compacted,
            removed_records: sweep.removed,
            skipped_records: sweep.skipped,
            elapsed: started.elapsed(),
        })
    }

    /// Steps 2 and 3: deletes the garbage between the swept and the compacted revision. Stops
    /// early, keeping what it did for the next compaction or open to go on from, when `stop`
    /// says so. `paced` pauses after each batch; see [`crate::Options::paced_compaction`].
    fn sweep(
        &self,
        progress: &mut dyn FnMut(Revision),
        stop: &dyn Fn() -> bool,
        paced: bool,
    ) -> Result<Sweep> {
        let target = self.compacted();
        let mut swept = self.compaction.swept();
        let mut sweep = Sweep::default();
        if swept >= target {
            return Ok(sweep);
        }
        let mut cursor = encoding::record_key_floor(swept.next()).to_vec();
        let end = encoding::record_key_floor(target.next());
        loop {
            if stop() {
                // A clean close keeps the progress of the last half second too.
                self.sled.flush().storage()?;
                return Ok(sweep);
            }
            let batch_started = Instant::now();
            let batch = self.read_batch(&cursor, &end)?;
            let Some(last_key) = batch.last_key else {
                break;
            };
            sweep.skipped += batch.skipped;
            sweep.removed += self.remove_garbage(batch.garbage, &batch.tombstones)?;
            if let Some(reached) = batch.reached {
                // The next batch may hold more changes of the last revision read.
                let through = Revision::new(reached.get() - 1);
                if through > swept {
                    self.mark_swept(swept, through)?;
                    swept = through;
                }
                progress(reached);
            }
            if paced {
                std::thread::sleep(batch_started.elapsed());
            }
            cursor = last_key.to_vec();
            cursor.push(0);
        }
        self.delete_commit_times(swept, target)?;
        for run in self.identity.write().forget_before(target) {
            self.data.remove(encoding::run_key(run.number)).storage()?;
        }
        self.write_meta(Meta::FinishedCompaction, target)?;
        self.compaction.swept.store(target.get(), Ordering::Release);
        progress(target);
        Ok(sweep)
    }

    /// Reads the next batch of records from `cursor` on, and what they make garbage. A record
    /// that does not decode tells neither whether it is garbage nor what it superseded: it is
    /// counted and left in place, with whatever it superseded, for verify to name.
    fn read_batch(&self, cursor: &[u8], end: &[u8]) -> Result<Batch> {
        let mut batch = Batch::default();
        for item in self.data.range(cursor..end).take(BATCH_RECORDS) {
            let (sled_key, bytes) = item.storage()?;
            let decoded = Location::from_record_key(&sled_key)
                .and_then(|location| Ok((location, Record::decode(location, &bytes)?)));
            match decoded {
                Ok((location, record)) => {
                    batch.garbage.extend(chain::garbage_of(location, &record));
                    if matches!(record.change, Change::Delete) {
                        batch.tombstones.push((record.key, location));
                    }
                    batch.reached = Some(location.revision);
                }
                Err(error) => {
                    self.compaction.skipped(&error);
                    batch.skipped += 1;
                }
            }
            batch.last_key = Some(sled_key);
        }
        Ok(batch)
    }

    /// Removes one batch's garbage; returns how many records it removed.
    fn remove_garbage(
        &self,
        garbage: Vec<Location>,
        tombstones: &[(Vec<u8>, Location)],
    ) -> Result<u64> {
        // A tombstone's latest pointer goes before its record: a crash in between then leaves
        // the record, which the next sweep finds and deletes, instead of a pointer to nothing
        // that no sweep would ever visit again.
        for (key, location) in tombstones {
            // Conditional, because a writer may have re-created the key meanwhile.
            let tombstone = Latest {
                location: *location,
                live: false,
            }
            .encode();
            let _ = self
                .data
                .compare_and_swap(Latest::sled_key(key), Some(tombstone), None::<Vec<u8>>)
                .storage()?;
        }
        self.forget_tombstones(tombstones);
        // One remove at a time rather than a sled batch: a batch takes a process-wide lock
        // that every read waits for. Removes are applied, and recovered after a crash, in
        // this order, so a crash still leaves a prefix of the work done.
        let mut removed = 0;
        for location in garbage {
            self.remove_record(location)?;
            removed += 1;
        }
        Ok(removed)
    }

    /// Records that the garbage up to revision `through` is gone, so that a sweep stopped by a
    /// close or a crash goes on from there. The mark needs no flush of its own: sled recovers
    /// writes in order, so it never outlives a remove made before it.
    fn mark_swept(&self, from: Revision, through: Revision) -> Result<()> {
        self.delete_commit_times(from, through)?;
        self.data
            .insert(
                Meta::FinishedCompaction.sled_key(),
                Meta::encode(through.get()),
            )
            .storage()?;
        self.compaction
            .swept
            .store(through.get(), Ordering::Release);
        Ok(())
    }

    /// Commit times below the compacted revision are no longer needed; the compacted
    /// revision's own stays, so the store's head revision survives a restart.
    fn delete_commit_times(&self, from: Revision, to: Revision) -> Result<()> {
        let range = encoding::commit_time_key(from)..encoding::commit_time_key(to);
        for item in self.data.range(range) {
            self.data.remove(item.storage()?.0).storage()?;
        }
        Ok(())
    }

    fn retention_boundary(&self) -> Result<Option<Revision>> {
        let current = self.index.visible().revision;
        let compacted = self.compacted();
        let boundary = match self.options.retention {
            Retention::Manual => return Ok(None),
            Retention::Revisions(keep) => Revision::new(current.get().saturating_sub(keep)),
            Retention::Time(keep) => {
                let keep = u64::try_from(keep.as_millis()).unwrap_or(u64::MAX);
                let cutoff = crate::store::now_millis().saturating_sub(keep);
                let mut boundary = compacted;
                for item in self.data.range(
                    encoding::commit_time_key(compacted)..encoding::commit_time_key(current.next()),
                ) {
                    let (key, bytes) = item.storage()?;
                    let revision = encoding::revision_of_commit_time_key(&key)?;
                    if encoding::decode_commit_time(revision, &bytes)? > cutoff {
                        break;
                    }
                    boundary = revision;
                }
                boundary
            }
        };
        Ok(Some(boundary).filter(|&boundary| boundary > compacted))
    }
}

/// What one sweep did.
#[derive(Default)]
struct Sweep {
    removed: u64,
    skipped: u64,
}

/// One batch of records read by a sweep.
#[derive(Default)]
struct Batch {
    garbage: Vec<Location>,
    /// The tombstones among the records, whose latest pointers go with them.
    tombstones: Vec<(Vec<u8>, Location)>,
    /// The sled key of the last record read, which the next batch starts after.
    last_key: Option<sled::IVec>,
    /// The revision of the last record read whose key decodes.
    reached: Option<Revision>,
    skipped: u64,
}

/// A compaction's failure, or a record it could not decode, as [`Db::stat`] reports the last
/// one.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct CompactionError {
    /// The error's [`Error::reason`]: `Corrupted` for a record that does not decode, `Storage`
    /// when sled failed.
    pub reason: &'static str,
    /// What happened, naming the revision, key or entry involved.
    pub message: String,
    /// When it happened, in milliseconds since the Unix epoch.
    pub at_unix_ms: u64,
}

/// What compaction has done and met since the store opened.
pub(crate) struct CompactionState {
    /// The revision up to which garbage is gone: the finished compaction, or how far the
    /// sweep of an unfinished one got.
    swept: AtomicU64,
    skipped_records: AtomicU64,
    last_error: Mutex<Option<CompactionError>>,
}

impl CompactionState {
    pub(crate) fn new(swept: Revision) -> Self {
        CompactionState {
            swept: AtomicU64::new(swept.get()),
            skipped_records: AtomicU64::new(0),
            last_error: Mutex::new(None),
        }
    }

    pub(crate) fn swept(&self) -> Revision {
        Revision::new(self.swept.load(Ordering::Acquire))
    }

    /// How many records compaction could not decode, and its last error.
    pub(crate) fn findings(&self) -> (u64, Option<CompactionError>) {
        (
            self.skipped_records.load(Ordering::Acquire),
            self.last_error.lock().clone(),
        )
    }

    fn skipped(&self, error: &Error) {
        self.skipped_records.fetch_add(1, Ordering::AcqRel);
        self.note(error, "left in place a record it cannot decode: ");
    }

    fn failed(&self, error: &Error) {
        self.note(error, "");
    }

    fn note(&self, error: &Error, context: &str) {
        // `Storage` says only that sled failed; its causes say why.
        let mut message = format!("{context}{error}");
        let mut cause = std::error::Error::source(error);
        while let Some(inner) = cause {
            let _ = write!(message, ": {inner}");
            cause = inner.source();
        }
        *self.last_error.lock() = Some(CompactionError {
            reason: error.reason(),
            message,
            at_unix_ms: crate::store::now_millis(),
        });
    }
}

/// The background compactor: finishes a compaction that an earlier run left unfinished, and
/// keeps the retention window, until the last [`Db`] handle drops.
pub(crate) struct Compactor {
    signal: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl Compactor {
    /// Starts the compactor's thread, unless it has nothing to do: no sweep to resume (or
    /// [`crate::Options::resume_compaction`] is off) and [`Retention::Manual`].
    pub(crate) fn start(shared: &Arc<Shared>) -> Option<Compactor> {
        let retention = match shared.options.retention {
            Retention::Manual => None,
            Retention::Revisions(_) => Some(Duration::from_secs(1)),
            Retention::Time(keep) => {
                Some((keep / 10).clamp(Duration::from_millis(10), Duration::from_secs(30)))
            }
        };
        let interval =
            retention.map(|interval| shared.options.compaction_interval.unwrap_or(interval));
        let resume =
            shared.options.resume_compaction && shared.compaction.swept() < shared.compacted();
        if interval.is_none() && !resume {
            return None;
        }
        let signal = Arc::new((Mutex::new(false), Condvar::new()));
        let thread = {
            let signal = Arc::clone(&signal);
            let shared = Arc::clone(shared);
            std::thread::Builder::new()
                .name("revkv-compactor".into())
                .spawn(move || run(&shared, &signal, resume, interval))
                .expect("spawning the compactor thread")
        };
        Some(Compactor {
            signal,
            thread: Some(thread),
        })
    }
}

/// The compactor's thread: resumes the unfinished sweep when `resume`, then compacts at the
/// retention boundary every `interval`, if any. Failures are kept for [`Db::stat`] and tried
/// again at the next tick; reads and writes report storage errors themselves.
fn run(shared: &Shared, signal: &(Mutex<bool>, Condvar), resume: bool, interval: Option<Duration>) {
    let (stopped, wake) = signal;
    let stop = || *stopped.lock();
    if resume {
        // Compacting at the compacted revision only finishes what is left of its sweep.
        if let Err(error) = shared.compact(shared.compacted(), |_| {}, &stop) {
            shared.compaction.failed(&error);
        }
    }
    let Some(interval) = interval else {
        return;
    };
    loop {
        {
            let mut stopped = stopped.lock();
            if !*stopped {
                wake.wait_for(&mut stopped, interval);
            }
            if *stopped {
                return;
            }
        }
        let compacted = shared
            .retention_boundary()
            .and_then(|boundary| match boundary {
                Some(boundary) => shared.compact(boundary, |_| {}, &stop).map(drop),
                None => Ok(()),
            });
        if let Err(error) = compacted {
            shared.compaction.failed(&error);
        }
    }
}

impl Drop for Compactor {
    fn drop(&mut self) {
        *self.signal.0.lock() = true;
        self.signal.1.notify_all();
        if let Some(thread) = self.thread.take() {
            // The thread never holds a Compactor, so this never joins the current thread.
            let _ = thread.join();
        }
    }
}
