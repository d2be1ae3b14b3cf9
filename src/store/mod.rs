//! The store: the sled database, the write path, durability and restore.

mod blocks;
mod durable;
mod live;
mod recovery;
mod write;

pub(crate) use write::now_millis;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, RwLock};

use crate::compaction::{CompactionError, CompactionState, Compactor, Retention};
use crate::encoding::{self, Latest, Location, Meta, Record, Value};
use crate::error::SledResultExt;
use crate::identity::Identity;
use crate::index::rebuilds::Rebuilds;
use crate::index::{Index, Key, PinLimits, Tree, View};
use crate::watch::Hub;
use crate::{Entry, Error, Result, Revision};
use sled::IVec;

/// When a write is acknowledged relative to reaching the disk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Durability {
    /// A write returns after it is on stable storage, and readers see it only from then on: it
    /// survives a process crash, an OS crash and a power cut. Concurrent writers share one flush
    /// (group commit).
    #[default]
    Immediate,
    /// A write returns once applied, and readers see it at once; sled writes its log in the
    /// background every 500 ms, synchronously, so a crash or power cut loses at most the
    /// writes of about the last half second (always a suffix of revisions: no gaps). The
    /// revisions lost are never given to other writes: reads at them fail with
    /// [`Error::LostRevision`]. [`Db::flush`] makes everything written so far durable.
    Buffered,
}

/// How much memory list snapshots may hold by default ([`Options::pinned_bytes`]): what
/// clients paging at old revisions can make the store keep, at most.
pub const DEFAULT_PINNED_BYTES: usize = 256 * 1024 * 1024;

/// How to open a store; see [`Db::options`].
#[derive(Clone, Debug)]
pub struct Options {
    durability: Durability,
    pinned_snapshots: usize,
    pinned_bytes: usize,
    pub(crate) max_page_size: usize,
    cache_bytes: u64,
    pub(crate) retention: Retention,
    pub(crate) compaction_interval: Option<std::time::Duration>,
    pub(crate) paced_compaction: bool,
    pub(crate) resume_compaction: bool,
    key_order_blocks: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            durability: Durability::Immediate,
            pinned_snapshots: 64,
            pinned_bytes: DEFAULT_PINNED_BYTES,
            max_page_size: 10_000,
            cache_bytes: 1024 * 1024 * 1024,
            retention: Retention::default(),
            compaction_interval: None,
            paced_compaction: true,
            resume_compaction: true,
            key_order_blocks: true,
        }
    }
}

impl Options {
    /// Sets when writes are acknowledged; [`Durability::Immediate`] by default.
    #[must_use]
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// How many list snapshots stay in memory (64 by default); over it, the least recently
    /// used is evicted. A list whose snapshot was evicted still continues correctly: its next
    /// chunk rebuilds the snapshot from the revision log.
    #[must_use]
    pub fn pinned_snapshots(mut self, count: usize) -> Self {
        self.pinned_snapshots = count.max(1);
        self
    }

    /// How much memory list snapshots may hold beyond the newest view
    /// ([`DEFAULT_PINNED_BYTES`], 256 MiB, by default). A
    /// snapshot holds the index nodes that changed since it was taken, so one taken at an old
    /// revision holds more; each is charged an upper bound of that. Over the budget, the
    /// costliest snapshots are evicted first, so the lists of clients reading near the newest
    /// revision keep theirs. A snapshot over the whole budget is not kept: each chunk of its
    /// list rebuilds it.
    #[must_use]
    pub fn pinned_bytes(mut self, bytes: usize) -> Self {
        self.pinned_bytes = bytes;
        self
    }

    /// The largest `limit` a list may ask for (10,000 by default, as Swift's).
    #[must_use]
    pub fn max_page_size(mut self, size: usize) -> Self {
        self.max_page_size = size.max(1);
        self
    }

    /// The most memory sled's page cache may use, in bytes: 1 GiB by default, as in sled. A
    /// cache smaller than the records a list walks makes sled read and decode pages again;
    /// paging through 1M keys of 256-byte values ran about 2.5× slower with 256 MiB.
    #[must_use]
    pub fn cache_bytes(mut self, bytes: u64) -> Self {
        self.cache_bytes = bytes;
        self
    }

    /// How much history the background compactor keeps; [`Retention::Time`] of 5 minutes by
    /// default. With [`Retention::Manual`] no background thread runs.
    #[must_use]
    pub fn retention(mut self, retention: Retention) -> Self {
        self.retention = retention;
        self
    }

    /// How often the background compactor checks the retention window; by default a tenth of
    /// a time window (10 ms to 30 s), or every second for a revision window.
    #[must_use]
    pub fn compaction_interval(mut self, interval: std::time::Duration) -> Self {
        self.compaction_interval = Some(interval);
        self
    }

    /// Whether compaction pauses after each batch for as long as the batch took (on by default),
    /// so that it uses at most half of a core and reads and writes running meanwhile keep close
    /// to their idle latency. Turn it off when nothing else uses the store, to compact about
    /// twice as fast.
    #[must_use]
    pub fn paced_compaction(mut self, paced: bool) -> Self {
        self.paced_compaction = paced;
        self
    }

    /// Whether a compaction that a crash or a close left unfinished resumes in the background
    /// once the store is open (on by default); it is otherwise finished by the next compaction,
    /// including the background compactor's. Off, with [`Retention::Manual`], the store
    /// removes nothing on its own: for inspecting a store as it is, as `revkv verify` does.
    #[must_use]
    pub fn resume_compaction(mut self, resume: bool) -> Self {
        self.resume_compaction = resume;
        self
    }

    /// Whether lists read live keys from key-order blocks (on by default): copies of the newest
    /// records of a few dozen neighbouring keys in one sled value each, which a background
    /// thread builds for the ranges lists read and keeps up to date as they change. A list
    /// through blocks reads about one sled entry per block instead of one per key; the cost is
    /// a second copy of the live records on disk and the builder's writes. Off, lists read
    /// each key's latest pointer, and no block is written or read.
    #[must_use]
    pub fn key_order_blocks(mut self, enabled: bool) -> Self {
        self.key_order_blocks = enabled;
        self
    }

    /// Opens (or creates) the store in directory `path`.
    ///
    /// # Errors
    ///
    /// [`Error::Storage`] when sled cannot open the directory (another process may hold it),
    /// [`Error::UnsupportedFormat`] for a store of another format, and [`Error::Corrupted`] when
    /// the stored index cannot be read back. A compaction that a crash or a close interrupted
    /// is not waited for: it resumes in the background (see [`Options::resume_compaction`]),
    /// and [`Db::stat`] shows how far it got.
    pub fn open(self, path: impl AsRef<Path>) -> Result<Db> {
        let path = path.as_ref();
        check_segment_size(path)?;
        let config = sled::Config::new()
            .path(path)
            .segment_size(SEGMENT_SIZE)
            .cache_capacity(self.cache_bytes);
        let sled = open_waiting_for_lock(&config)?;
        durable::make_durable(path).map_err(|cause| Error::Storage(cause.into()))?;
        Db::restore(sled, self)
    }

    /// Opens a store in a temporary directory that is removed when the last handle is dropped.
    ///
    /// # Errors
    ///
    /// [`Error::Storage`] when the temporary directory cannot be created.
    pub fn temporary(self) -> Result<Db> {
        let config = sled::Config::new()
            .temporary(true)
            .segment_size(SEGMENT_SIZE)
            .cache_capacity(self.cache_bytes);
        Db::restore(config.open().storage()?, self)
    }
}

/// A handle to an open store. Cloning is cheap; clones share the store, and every method may
/// be called from many threads at once.
///
/// # Examples
///
/// ```
/// use revkv::Db;
/// # let dir = tempfile::tempdir().unwrap();
/// let db = Db::open(dir.path().join("store"))?;
/// let revision = db.put("greeting", "hello")?;
/// let entry = db.get("greeting")?.expect("just written");
/// assert_eq!(entry.value, b"hello");
/// assert_eq!(entry.mod_revision, revision);
/// # Ok::<(), revkv::Error>(())
/// ```
#[derive(Clone)]
pub struct Db {
    pub(crate) shared: Arc<Shared>,
    /// Dropped with the last handle, which stops and joins the background compactor.
    _compactor: Arc<Option<Compactor>>,
    /// As the compactor: the thread that builds key-order blocks.
    _block_builder: Arc<Option<blocks::Builder>>,
}

pub(crate) struct Shared {
    pub(crate) sled: sled::Db,
    pub(crate) data: sled::Tree,
    pub(crate) index: Index,
    /// Routes published revisions to watchers; see `watch`.
    pub(crate) hub: Hub,
    /// Rebuilds of views the cache does not hold; see `index::rebuilds`.
    pub(crate) rebuilds: Rebuilds,
    /// What lists asked the block builder to build; see `blocks`.
    pub(crate) blocks: blocks::Requests,
    /// The keys whose latest pointers did not decode when the store opened, each with its newest
    /// change as the records tell it (none: no record is left, so the key does not exist); see
    /// `recovery`.
    damaged_pointers: HashMap<Vec<u8>, Option<Latest>>,
    pub(crate) options: Options,
    /// The store's id and runs; compaction forgets old runs.
    pub(crate) identity: RwLock<Identity>,
    /// The first revision this run writes: above every revision an earlier run may have shown.
    first_revision: Revision,
    /// Transactions waiting to be committed by a leader; see `write`.
    commits: Mutex<write::CommitQueue>,
    /// Wakes a gathering leader when a transaction queues.
    arrivals: Condvar,
    /// Held by the commit leader.
    writer: Mutex<Writer>,
    /// The newest revision applied to sled (durable or not).
    applied: AtomicU64,
    flush: Mutex<FlushState>,
    flush_done: Condvar,
    pub(crate) compacted: AtomicU64,
    /// How far compaction's sweep got, and what it met.
    pub(crate) compaction: CompactionState,
    /// Serialises compactions (the background one and explicit calls).
    pub(crate) compaction_lock: Mutex<()>,
    pub(crate) poisoned: AtomicBool,
}

/// What only the writer holding the lock may touch.
struct Writer {
    /// The newest applied view, which may not be durable yet.
    applied: View,
    /// Commit times never go backwards, even when the clock does, so that time-based retention
    /// can search them.
    last_commit_millis: u64,
    tombstones: write::Tombstones,
    /// Under `Buffered` durability, the highest revision that may be published before another
    /// durable reservation; see `identity`.
    reserved: Revision,
}

struct FlushState {
    durable: Revision,
    flushing: bool,
}

impl Db {
    /// Opens (or creates) a store in directory `path` with default [`Options`].
    ///
    /// # Errors
    ///
    /// As [`Options::open`].
    pub fn open(path: impl AsRef<Path>) -> Result<Db> {
        Options::default().open(path)
    }

    /// Opens a temporary store with default [`Options`]; see [`Options::temporary`].
    ///
    /// # Errors
    ///
    /// As [`Options::temporary`].
    pub fn temporary() -> Result<Db> {
        Options::default().temporary()
    }

    /// Options for opening a store.
    ///
    /// ```
    /// use revkv::{Db, Durability};
    /// let db = Db::options().durability(Durability::Buffered).pinned_snapshots(16).temporary()?;
    /// # Ok::<(), revkv::Error>(())
    /// ```
    #[must_use]
    pub fn options() -> Options {
        Options::default()
    }

    /// Rebuilds the index from the latest-version pointers: O(keys), not O(history).
    fn restore(sled: sled::Db, options: Options) -> Result<Db> {
        let data = sled.open_tree(encoding::TREE_NAME).storage()?;
        check_format(&data)?;
        let compacted = read_meta(&data, Meta::CompactedRevision)?;
        let swept = Revision::new(read_meta(&data, Meta::FinishedCompaction)?);
        let (head, last_commit_millis) =
            match data.scan_prefix(encoding::commit_time_prefix()).next_back() {
                Some(item) => {
                    let (key, bytes) = item.storage()?;
                    let revision = encoding::revision_of_commit_time_key(&key)?;
                    (revision, encoding::decode_commit_time(revision, &bytes)?)
                }
                None => (Revision::new(compacted), 0),
            };
        let mut live = Vec::new();
        let mut tombstones = write::Tombstones::default();
        let mut damaged = Vec::new();
        let mut unfinished = Vec::new();
        for item in data.scan_prefix(Latest::prefix()) {
            let (sled_key, bytes) = item.storage()?;
            let user_key = Latest::user_key(&sled_key);
            match Latest::decode(user_key, &bytes) {
                Ok(latest) if latest.location.revision > head => {
                    unfinished.push(user_key.to_vec());
                }
                Ok(latest) if latest.live => live.push((Key::from(user_key), latest.location)),
                Ok(latest) => tombstones.track(user_key.to_vec(), latest),
                Err(_) => damaged.push(user_key.to_vec()),
            }
        }
        let mut tree = Tree::from_sorted(live);
        let restored = recovery::roll_back_after(&data, head, unfinished)?;
        let damaged_pointers = recovery::find_latest(&data, damaged)?;
        let restored = restored.iter().map(|(key, latest)| (key, latest));
        for (key, latest) in restored.chain(&damaged_pointers) {
            match latest {
                Some(latest) if latest.live => {
                    tree.insert(Key::from(key.as_slice()), latest.location);
                }
                Some(latest) => tombstones.track(key.clone(), *latest),
                None => {}
            }
        }
        let identity = Identity::begin_run(&data, head)?;
        // The run is on disk before anything of it is published.
        sled.flush().storage()?;
        let first_revision = identity.current().first;
        let view = View {
            revision: head,
            tree,
            changes: 0,
        };
        let index = Index::new(
            view.clone(),
            PinLimits {
                count: options.pinned_snapshots,
                bytes: options.pinned_bytes,
            },
        );
        let shared = Arc::new(Shared {
            sled,
            data,
            index,
            hub: Hub::new(head),
            rebuilds: Rebuilds::default(),
            blocks: blocks::Requests::new(options.key_order_blocks),
            damaged_pointers,
            options,
            identity: RwLock::new(identity),
            first_revision,
            commits: Mutex::default(),
            arrivals: Condvar::new(),
            writer: Mutex::new(Writer {
                applied: view,
                last_commit_millis,
                tombstones,
                reserved: Revision::ZERO,
            }),
            applied: AtomicU64::new(head.get()),
            flush: Mutex::new(FlushState {
                durable: head,
                flushing: false,
            }),
            flush_done: Condvar::new(),
            compacted: AtomicU64::new(compacted),
            compaction: CompactionState::new(swept),
            compaction_lock: Mutex::new(()),
            poisoned: AtomicBool::new(false),
        });
        let compactor = Compactor::start(&shared);
        let block_builder =
            (shared.options.key_order_blocks).then(|| blocks::Builder::start(&shared));
        Ok(Db {
            shared,
            _compactor: Arc::new(compactor),
            _block_builder: Arc::new(block_builder),
        })
    }

    /// The newest revision readers see.
    #[must_use]
    pub fn current_revision(&self) -> Revision {
        self.shared.index.visible().revision
    }

    /// The compacted revision: reads below it fail with [`Error::Expired`].
    #[must_use]
    pub fn compacted_revision(&self) -> Revision {
        Revision::new(self.shared.compacted.load(Ordering::Acquire))
    }

    /// Makes every write acknowledged so far durable; useful with [`Durability::Buffered`].
    ///
    /// # Errors
    ///
    /// [`Error::Storage`] when the flush fails; the store is then poisoned.
    pub fn flush(&self) -> Result<()> {
        self.shared
            .wait_durable(Revision::new(self.shared.applied.load(Ordering::Acquire)))
    }

    /// Waits until the key-order blocks that lists have asked for so far are built (see
    /// [`Options::key_order_blocks`]). Lists never need to wait: until a block is built, they
    /// read its keys' latest pointers. This is for measuring lists in their steady state, and
    /// for tests.
    ///
    /// ```
    /// use revkv::{Db, ListOptions};
    /// let db = Db::temporary()?;
    /// for i in 0..1000 {
    ///     db.put(format!("key/{i:04}"), "value")?;
    /// }
    /// db.list(&ListOptions::prefix("key/").limit(10))?; // asks for the blocks
    /// db.settle_blocks()?;
    /// assert_eq!(db.list(&ListOptions::prefix("key/").limit(10))?.items.len(), 10);
    /// # Ok::<(), revkv::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Storage`] when the builder's last attempt failed; it tries again at the next
    /// request.
    pub fn settle_blocks(&self) -> Result<()> {
        match self.shared.blocks.settle() {
            None => Ok(()),
            Some(failure) => Err(Error::Storage(crate::error::StorageError::other(failure))),
        }
    }

    /// The key's current entry, or `None` when it does not exist.
    ///
    /// # Errors
    ///
    /// [`Error::Corrupted`] or [`Error::Storage`] when its record cannot be read.
    pub fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Entry>> {
        let view = self.shared.index.visible();
        self.shared.get_in_view(&view, key.as_ref())
    }
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("revision", &self.current_revision())
            .field("compacted", &self.compacted_revision())
            .finish_non_exhaustive()
    }
}

/// Figures about a store, from [`Db::stat`].
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Stat {
    /// The newest revision readers see.
    pub revision: Revision,
    /// Reads below this revision fail with [`Error::Expired`].
    pub compacted_revision: Revision,
    /// Compaction removed the garbage below the compacted revision up to this revision. It is
    /// below `compacted_revision` while a compaction's sweep is unfinished; one that a crash
    /// or a close interrupted resumes in the background after open.
    pub swept_revision: Revision,
    /// Keys live at `revision`.
    pub live_keys: u64,
    /// Records (puts and tombstones, current and historical) kept on disk.
    pub stored_records: u64,
    /// Bytes sled uses on disk.
    pub disk_bytes: u64,
    /// List snapshots held in memory.
    pub pinned_snapshots: u64,
    /// The memory those snapshots are charged: an upper bound of the index nodes they hold
    /// that the newest view does not (see [`Options::pinned_bytes`]).
    pub pinned_bytes: u64,
    /// Records that compaction could not decode since the store opened, and left in place;
    /// [`Db::verify`] names them.
    pub compaction_skipped_records: u64,
    /// Latest pointers that did not decode when the store opened. Their keys were found again
    /// from the revision log and read correctly; [`Db::verify`] names the pointers, and a write
    /// of such a key replaces its pointer.
    pub damaged_pointers: u64,
    /// The last compaction error since the store opened, a record it could not decode or a
    /// failure of the background compactor, with when it happened; it stays after later
    /// compactions succeed.
    pub last_compaction_error: Option<CompactionError>,
}

impl Db {
    /// Counts what the store holds. Counting stored records reads every record key, so this
    /// costs O(history): an operator's tool, not a hot path.
    ///
    /// # Errors
    ///
    /// [`Error::Storage`] when sled cannot be read.
    pub fn stat(&self) -> Result<Stat> {
        let view = self.shared.index.visible();
        let mut stored_records = 0u64;
        for item in self.shared.data.scan_prefix(encoding::record_prefix()) {
            item.storage()?;
            stored_records += 1;
        }
        let pinned = self.shared.index.pinned_usage();
        let (compaction_skipped_records, last_compaction_error) = self.shared.compaction.findings();
        Ok(Stat {
            revision: view.revision,
            compacted_revision: self.compacted_revision(),
            swept_revision: self.shared.compaction.swept(),
            live_keys: view.tree.len() as u64,
            stored_records,
            disk_bytes: self.shared.sled.size_on_disk().storage()?,
            pinned_snapshots: pinned.0 as u64,
            pinned_bytes: pinned.1 as u64,
            damaged_pointers: self.shared.damaged_pointers.len() as u64,
            compaction_skipped_records,
            last_compaction_error,
        })
    }
}

impl Drop for Shared {
    /// A clean close of a `Buffered` store loses nothing, so it gives back what its run
    /// reserved: the next run then starts right after the head instead of above the
    /// reservation (see `identity`). Everything is flushed first; should either step fail, the
    /// reservation stands, which costs only unused revision numbers.
    fn drop(&mut self) {
        if self.options.durability != Durability::Buffered || self.poisoned.load(Ordering::Acquire)
        {
            return;
        }
        let head = self.applied.load(Ordering::Acquire);
        let _ = self.sled.flush().and_then(|_| {
            self.data
                .insert(Meta::ReservedRevision.sled_key(), Meta::encode(head))?;
            self.sled.flush()
        });
    }
}

impl Shared {
    /// Blocks until `revision` is on disk and visible, sharing flushes between writers: the
    /// first waiter flushes for everyone applied so far, later ones wait for its result.
    pub(crate) fn wait_durable(&self, revision: Revision) -> Result<()> {
        let mut state = self.flush.lock();
        loop {
            if state.durable >= revision {
                return Ok(());
            }
            if self.poisoned.load(Ordering::Acquire) {
                return Err(Error::Poisoned);
            }
            if state.flushing {
                self.flush_done.wait(&mut state);
                continue;
            }
            state.flushing = true;
            let target = Revision::new(self.applied.load(Ordering::Acquire));
            drop(state);
            let outcome = self.sled.flush();
            state = self.flush.lock();
            state.flushing = false;
            match outcome {
                Ok(_) => {
                    state.durable = state.durable.max(target);
                    self.publish(target);
                    self.flush_done.notify_all();
                }
                Err(cause) => {
                    self.poisoned.store(true, Ordering::Release);
                    self.flush_done.notify_all();
                    return Err(Error::from_sled(cause));
                }
            }
        }
    }

    /// Makes every applied revision up to `revision` visible: to readers first, then to
    /// watchers, so a watcher that receives a revision can list at it.
    pub(crate) fn publish(&self, revision: Revision) {
        self.index.publish_through(revision);
        self.hub.publish(revision);
    }

    /// The record at `location`, or `None` when nothing is stored there.
    pub(crate) fn record(&self, location: Location) -> Result<Option<Record>> {
        match self.data.get(location.record_key()).storage()? {
            Some(bytes) => Record::decode(location, &bytes).map(Some),
            None => Ok(None),
        }
    }

    /// The entry the put record at `location` stands for.
    pub(crate) fn entry_of(&self, location: Location, record: Record) -> Result<Entry> {
        Entry::from_put(location, record, |value| self.value_of(location, value))
    }

    /// The bytes of the value of the record at `location`, read from its parts when it is
    /// stored in parts.
    pub(crate) fn value_of(&self, location: Location, value: Value) -> Result<Vec<u8>> {
        let parts = || {
            self.data
                .scan_prefix(encoding::parts_prefix(location))
                .map(|part| {
                    let (key, bytes) = part.storage()?;
                    Ok((key.to_vec(), bytes.to_vec()))
                })
        };
        value.into_bytes(location, parts)
    }

    /// Removes the record at `location` and the parts of its value.
    pub(crate) fn remove_record(&self, location: Location) -> Result<()> {
        self.data.remove(location.record_key()).storage()?;
        for part in self.data.scan_prefix(encoding::parts_prefix(location)) {
            self.data.remove(part.storage()?.0).storage()?;
        }
        Ok(())
    }

    /// For a key whose latest pointer did not decode when the store opened, its newest change as
    /// the records told (`Some(None)`: the key does not exist).
    pub(crate) fn damaged_pointer(&self, key: &[u8]) -> Option<Option<Latest>> {
        self.damaged_pointers.get(key).copied()
    }

    /// The key's newest change, live or tombstone, as the latest-version pointer records it,
    /// or, for a pointer found damaged at open and not rewritten since, as the records told.
    pub(crate) fn latest(&self, key: &[u8]) -> Result<Option<Latest>> {
        let Some(bytes) = self.data.get(Latest::sled_key(key)).storage()? else {
            return Ok(None);
        };
        match Latest::decode(key, &bytes) {
            Ok(latest) => Ok(Some(latest)),
            Err(error) => self.damaged_pointer(key).ok_or(error),
        }
    }

    /// Tells writers that compaction removed the latest-version pointers of these tombstones.
    pub(crate) fn forget_tombstones(&self, removed: &[(Vec<u8>, Location)]) {
        let mut writer = self.writer.lock();
        for (key, location) in removed {
            writer.tombstones.forget(key, *location);
        }
    }

    /// The entry of a live key at `location`; a missing record is corruption unless compaction
    /// removed it under a reader of `revision`, which is then told so.
    pub(crate) fn live_entry(&self, location: Location, revision: Revision) -> Result<Entry> {
        let bytes = self.record_bytes(location, revision)?;
        self.entry_of(location, Record::decode(location, &bytes)?)
    }

    /// The stored bytes of the record of a live key at `location`, as [`Shared::live_entry`]
    /// needs them.
    pub(crate) fn record_bytes(&self, location: Location, revision: Revision) -> Result<IVec> {
        match self.data.get(location.record_key()).storage()? {
            Some(bytes) => Ok(bytes),
            None => {
                self.check_not_compacted(revision)?;
                Err(Error::corrupted(
                    location.to_string(),
                    "the record of a live key is missing",
                ))
            }
        }
    }

    pub(crate) fn get_in_view(&self, view: &View, key: &[u8]) -> Result<Option<Entry>> {
        let Some(&location) = view.tree.get(key) else {
            return Ok(None);
        };
        let entry = self.live_entry(location, view.revision)?;
        holding_key(entry, key, location).map(Some)
    }

    /// Writes and flushes a metadata entry: each one marks a durable step.
    pub(crate) fn write_meta(&self, meta: Meta, revision: Revision) -> Result<()> {
        self.data
            .insert(meta.sled_key(), Meta::encode(revision.get()))
            .storage()?;
        self.sled.flush().storage()?;
        Ok(())
    }

    pub(crate) fn compacted(&self) -> Revision {
        Revision::new(self.compacted.load(Ordering::Acquire))
    }

    /// Fails with [`Error::Expired`] when `revision` is below the compacted revision.
    pub(crate) fn check_not_compacted(&self, revision: Revision) -> Result<()> {
        let compacted = self.compacted();
        if revision < compacted {
            return Err(Error::Expired {
                requested: revision,
                compacted,
                continue_token: None,
            });
        }
        Ok(())
    }
}

/// Opens sled, waiting up to [`LOCK_WAIT`] for its directory lock.
///
/// sled writes log segments on background threads that keep its lock file open for a moment
/// after the last handle is dropped, so reopening a store right after closing it in the same
/// process can find the lock still held. A lock that is held longer belongs to another process
/// (or another open handle) and is reported as the storage error it is.
fn open_waiting_for_lock(config: &sled::Config) -> Result<sled::Db> {
    let started = Instant::now();
    loop {
        match config.open() {
            Err(sled::Error::Io(cause))
                if cause.to_string().contains("could not acquire lock")
                    && started.elapsed() < LOCK_WAIT =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            outcome => return outcome.storage(),
        }
    }
}

/// How long [`open_waiting_for_lock`] waits for sled's directory lock.
const LOCK_WAIT: Duration = Duration::from_secs(2);

/// sled's log segment size. sled writes any page larger than a quarter of a segment to a file
/// of its own, which it never fsyncs; with 8 MiB segments that takes a page over 2 MiB, which
/// the limits on keys, values and labels keep every page far below (see `encoding`).
pub(crate) const SEGMENT_SIZE: usize = 8 * 1024 * 1024;

/// Refuses a store whose sled segments are not [`SEGMENT_SIZE`]: it was made by a revkv
/// of another format, and sled would refuse it with a message about its own buffers.
fn check_segment_size(dir: &Path) -> Result<()> {
    let Ok(conf) = std::fs::read(dir.join("conf")) else {
        return Ok(());
    };
    let segment_size = String::from_utf8_lossy(&conf).lines().find_map(|line| {
        line.strip_prefix("segment_size: ")?
            .trim()
            .parse::<usize>()
            .ok()
    });
    match segment_size {
        Some(size) if size != SEGMENT_SIZE => Err(Error::UnsupportedFormat {
            found: 1,
            supported: encoding::FORMAT_VERSION,
        }),
        _ => Ok(()),
    }
}

fn check_format(data: &sled::Tree) -> Result<()> {
    let key = Meta::FormatVersion.sled_key();
    match data.get(&key).storage()? {
        Some(bytes) => {
            let found = Meta::FormatVersion.decode(&bytes)?;
            if found != u64::from(encoding::FORMAT_VERSION) {
                return Err(Error::UnsupportedFormat {
                    found: u32::try_from(found).unwrap_or(u32::MAX),
                    supported: encoding::FORMAT_VERSION,
                });
            }
        }
        None => {
            if data.iter().next().is_some() {
                return Err(Error::corrupted(
                    "metadata format_version",
                    "missing in a non-empty store",
                ));
            }
            data.insert(key, Meta::encode(u64::from(encoding::FORMAT_VERSION)))
                .storage()?;
        }
    }
    Ok(())
}

fn read_meta(data: &sled::Tree, meta: Meta) -> Result<u64> {
    match data.get(meta.sled_key()).storage()? {
        Some(bytes) => meta.decode(&bytes),
        None => Ok(0),
    }
}

/// Checks that the record the index points `key` at holds that key.
pub(crate) fn holding_key(entry: Entry, key: &[u8], location: Location) -> Result<Entry> {
    check_holds_key(&entry.key, key, location)?;
    Ok(entry)
}

/// Checks that the record at `location`, holding `held`, is the record of `key`.
pub(crate) fn check_holds_key(held: &[u8], key: &[u8], location: Location) -> Result<()> {
    if held == key {
        Ok(())
    } else {
        Err(Error::corrupted(
            location.to_string(),
            "the record holds another key than the index",
        ))
    }
}
