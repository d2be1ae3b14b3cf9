//! Shared helpers: temporary stores, a plain reference model of a revisioned store, and raw
//! access to a closed store's sled tree.

use std::collections::BTreeMap;
use std::path::Path;

use proptest::test_runner::{RngAlgorithm, TestRng};
use revkv::{Db, Entry, Error, ListOptions, Op, Retention, Revision, Txn};

/// A temporary store that keeps up to `pins` list snapshots in memory.
pub fn temp_store(pins: usize) -> Db {
    Db::options()
        .pinned_snapshots(pins)
        .temporary()
        .expect("temporary store opens")
}

/// A temporary store that compacts only when told to.
pub fn manual_store() -> Db {
    Db::options()
        .retention(Retention::Manual)
        .temporary()
        .expect("temporary store opens")
}

/// A random number generator that `seed` determines.
pub fn rng(seed: u64) -> TestRng {
    let mut bytes = [0; 32];
    bytes[..8].copy_from_slice(&seed.to_be_bytes());
    TestRng::from_seed(RngAlgorithm::ChaCha, &bytes)
}

/// Pages through `options` chunk by chunk, calling `between` after every chunk (to write while
/// the list is in progress), and checks every chunk's `remaining` against what follows it.
/// Returns the keys read and the revision of the list.
pub fn page_through(
    db: &Db,
    options: ListOptions,
    mut between: impl FnMut(usize),
) -> (Vec<Entry>, Revision) {
    let mut pages = Vec::new();
    let mut next = options.clone();
    loop {
        let page = db.list(&next).expect("chunk reads");
        between(pages.len());
        let done = page.continue_token.is_none();
        if let Some(token) = &page.continue_token {
            next = options.clone().continue_token(token.clone());
        }
        pages.push(page);
        if done {
            break;
        }
    }
    let revision = pages[0].revision;
    let mut items = Vec::new();
    let total: usize = pages.iter().map(|p| p.items.len()).sum();
    for page in pages {
        assert_eq!(
            page.revision, revision,
            "every chunk reads the first chunk's revision"
        );
        items.extend(page.items);
        let remaining = page.remaining.expect("unfiltered lists count what remains");
        assert_eq!(
            remaining as usize,
            total - items.len(),
            "remaining after {} items",
            items.len()
        );
    }
    (items, revision)
}

/// The reference: every revision's full contents, computed the obvious way.
#[derive(Default)]
pub struct Model {
    /// Contents after each revision; index 0 is the empty store.
    states: Vec<BTreeMap<Vec<u8>, Entry>>,
    /// Reads below it are refused, as the store's are after a compaction.
    compacted: Revision,
}

/// What a put writes: a value, and the labels and fields that selectors match.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Value {
    pub value: Vec<u8>,
    pub labels: BTreeMap<String, String>,
    pub fields: BTreeMap<String, String>,
}

/// Why a read is refused, in the model and in the store alike.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    Future {
        requested: Revision,
        current: Revision,
    },
    Expired {
        requested: Revision,
        compacted: Revision,
    },
}

impl Refusal {
    /// The refusal a store error stands for, or `None` when the error is not one.
    pub fn of(error: &Error) -> Option<Refusal> {
        match *error {
            Error::FutureRevision { requested, current } => {
                Some(Refusal::Future { requested, current })
            }
            Error::Expired {
                requested,
                compacted,
                ..
            } => Some(Refusal::Expired {
                requested,
                compacted,
            }),
            _ => None,
        }
    }
}

impl Model {
    pub fn new() -> Self {
        Model {
            states: vec![BTreeMap::new()],
            compacted: Revision::ZERO,
        }
    }

    pub fn revision(&self) -> Revision {
        Revision::new(self.states.len() as u64 - 1)
    }

    pub fn at(&self, revision: Revision) -> &BTreeMap<Vec<u8>, Entry> {
        &self.states[revision.get() as usize]
    }

    pub fn compacted(&self) -> Revision {
        self.compacted
    }

    /// The contents at `revision` as a read sees them: refused above the newest revision and
    /// below the compacted one.
    pub fn read(&self, revision: Revision) -> Result<&BTreeMap<Vec<u8>, Entry>, Refusal> {
        if revision > self.revision() {
            return Err(Refusal::Future {
                requested: revision,
                current: self.revision(),
            });
        }
        if revision < self.compacted {
            return Err(Refusal::Expired {
                requested: revision,
                compacted: self.compacted,
            });
        }
        Ok(self.at(revision))
    }

    /// Compacts at `revision`, as `Db::compact` does: returns false when already compacted there.
    pub fn compact(&mut self, revision: Revision) -> bool {
        assert!(revision <= self.revision(), "compacting the future");
        let moved = revision > self.compacted;
        self.compacted = self.compacted.max(revision);
        moved
    }

    /// Applies one revision's changes: `Some(value)` puts, `None` deletes. Returns false (and
    /// adds no revision) when nothing changes, as the store does.
    pub fn apply(&mut self, changes: &[(Vec<u8>, Option<Vec<u8>>)]) -> bool {
        let changes: Vec<_> = changes
            .iter()
            .map(|(key, value)| {
                let value = value.clone().map(|value| Value {
                    value,
                    ..Value::default()
                });
                (key.clone(), value)
            })
            .collect();
        self.apply_values(&changes)
    }

    /// As [`Model::apply`], with labels and fields.
    pub fn apply_values(&mut self, changes: &[(Vec<u8>, Option<Value>)]) -> bool {
        let mut next = self.at(self.revision()).clone();
        let revision = Revision::new(self.states.len() as u64);
        let mut changed = false;
        for (key, value) in changes {
            match value {
                Some(value) => {
                    let (create_revision, version) = match next.get(key) {
                        Some(old) => (old.create_revision, old.version + 1),
                        None => (revision, 1),
                    };
                    next.insert(
                        key.clone(),
                        Entry {
                            key: key.clone(),
                            value: value.value.clone(),
                            create_revision,
                            mod_revision: revision,
                            version,
                            labels: value.labels.clone(),
                            fields: value.fields.clone(),
                        },
                    );
                    changed = true;
                }
                None => changed |= next.remove(key).is_some(),
            }
        }
        if changed {
            self.states.push(next);
        }
        changed
    }
}

/// Writes a short history with every kind of stored entry, and returns its model:
///
/// ```text
/// revision  1    2    3    4    5         6    7          8
/// change    a=1  a=2  a=3  b=1  delete b  c=1  d=1, e=1   f=1
///                ^ compacted at 2: a=1 and the commit time of 1 are gone
/// ```
pub fn write_sample_history(db: &Db) -> revkv::Result<Model> {
    let mut model = Model::new();
    let write = |model: &mut Model, changes: &[(&str, Option<&str>)]| -> revkv::Result<()> {
        let ops = changes.iter().map(|&(key, value)| match value {
            Some(value) => Op::put(key, value),
            None => Op::delete(key),
        });
        let revision = db.txn(Txn::new().then(ops))?.revision;
        let changes: Vec<_> = changes
            .iter()
            .map(|&(key, value)| (key.into(), value.map(Vec::from)))
            .collect();
        assert!(model.apply(&changes));
        assert_eq!(revision, model.revision());
        Ok(())
    };
    for change in [
        &[("a", Some("1"))][..],
        &[("a", Some("2"))],
        &[("a", Some("3"))],
        &[("b", Some("1"))],
        &[("b", None)],
        &[("c", Some("1"))],
        &[("d", Some("1")), ("e", Some("1"))],
    ] {
        write(&mut model, change)?;
    }
    db.compact(Revision::new(2))?;
    model.compact(Revision::new(2));
    write(&mut model, &[("f", Some("1"))])?;
    Ok(model)
}

/// The closed revkv store at `path` opened as plain sled, as a disk fault, a bug or an
/// inspection would reach it behind revkv's back.
pub fn raw_sled(path: &Path) -> sled::Db {
    // sled refuses to open a database with another segment size than it was created with, and
    // its threads hold the directory's lock for a moment after the store is dropped.
    let config = sled::Config::new()
        .path(path)
        .segment_size(revkv::SLED_SEGMENT_SIZE);
    let started = std::time::Instant::now();
    loop {
        match config.open() {
            Err(sled::Error::Io(cause))
                if cause.to_string().contains("could not acquire lock")
                    && started.elapsed() < std::time::Duration::from_secs(2) =>
            {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            opened => return opened.expect("the closed store opens as plain sled"),
        }
    }
}

/// Runs `access` on the sled tree of the closed store at `path` (see [`raw_sled`]), and
/// flushes what it changed.
pub fn with_raw_tree<T>(path: &Path, access: impl FnOnce(&sled::Tree) -> T) -> T {
    let sled = raw_sled(path);
    let tree = sled.open_tree("revkv").expect("revkv's tree opens");
    let result = access(&tree);
    sled.flush().expect("sled flushes");
    result
}

/// `payload` as revkv stores every value: behind its crc32, big-endian.
pub fn seal(payload: &[u8]) -> Vec<u8> {
    let mut sealed = crc32fast::hash(payload).to_be_bytes().to_vec();
    sealed.extend_from_slice(payload);
    sealed
}

/// The sled keys of revkv's entries, as `DESIGN.md` lays them out.
pub mod raw_key {
    pub fn record(revision: u64, sub: u32) -> Vec<u8> {
        let mut key = vec![b'r'];
        key.extend_from_slice(&revision.to_be_bytes());
        key.extend_from_slice(&sub.to_be_bytes());
        key
    }

    pub fn latest(user_key: &str) -> Vec<u8> {
        [b"k", user_key.as_bytes()].concat()
    }

    pub fn commit_time(revision: u64) -> Vec<u8> {
        let mut key = vec![b't'];
        key.extend_from_slice(&revision.to_be_bytes());
        key
    }

    pub fn meta(name: &str) -> Vec<u8> {
        [b"m", name.as_bytes()].concat()
    }
}

/// The value of a latest pointer as revkv writes it: the location of the key's newest change,
/// whether the key is live, and for a live key a copy of the record stored at that location.
pub fn latest_pointer(tree: &sled::Tree, revision: u64, sub: u32, live: bool) -> Vec<u8> {
    let mut payload = revision.to_be_bytes().to_vec();
    payload.extend_from_slice(&sub.to_be_bytes());
    payload.push(u8::from(live));
    let mut pointer = seal(&payload);
    if live {
        let record = tree
            .get(raw_key::record(revision, sub))
            .expect("sled reads")
            .expect("a record to copy");
        pointer.extend_from_slice(&record);
    }
    pointer
}

/// A metadata or commit-time value.
pub fn sealed_u64(value: u64) -> Vec<u8> {
    seal(&value.to_be_bytes())
}

/// Leaves the closed store at `path` as a crash between the first and the last step of a
/// compaction at `compacted` does: compacted there, with its garbage swept only up to `swept`.
pub fn leave_compaction_unfinished(path: &Path, compacted: u64, swept: u64) {
    with_raw_tree(path, |tree| {
        for (name, revision) in [
            ("compacted_revision", compacted),
            ("finished_compaction", swept),
        ] {
            tree.insert(raw_key::meta(name), sealed_u64(revision))
                .expect("sled writes");
        }
    });
}

/// Waits until compaction has swept everything up to the compacted revision, as the
/// background compactor does after an open, and returns the store's figures then.
pub fn wait_for_sweep(db: &Db) -> revkv::Stat {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let stat = db.stat().expect("stat reads");
        if stat.swept_revision == stat.compacted_revision {
            // `stat` counts the records before it reads the swept revision, so that count may
            // hold records the sweep's last removes took after the count passed them.
            return db.stat().expect("stat reads");
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the sweep never finished: {stat:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Flips a bit in the payload of the entry at `sled_key` of the closed store at `path`.
pub fn flip_a_bit(path: &Path, sled_key: &[u8]) {
    with_raw_tree(path, |tree| {
        let mut bytes = tree
            .get(sled_key)
            .expect("sled reads")
            .expect("the entry exists")
            .to_vec();
        bytes[4] ^= 0x10;
        tree.insert(sled_key, bytes).expect("sled writes");
    });
}

/// Keys of [`write_backlog`], each written once per revision.
pub const BACKLOG_KEYS: usize = 1000;
/// Revisions of [`write_backlog`].
pub const BACKLOG_REVISIONS: u64 = 20;

/// A closed store at `path` holding [`BACKLOG_REVISIONS`] versions of each of
/// [`BACKLOG_KEYS`] keys `k/0000`, `k/0001`, ..., the value of each version its revision;
/// returns its newest revision.
pub fn write_backlog(path: &Path) -> Revision {
    let db = Db::options()
        .retention(revkv::Retention::Manual)
        .open(path)
        .expect("the store opens");
    for round in 1..=BACKLOG_REVISIONS {
        let puts = (0..BACKLOG_KEYS).map(|i| Op::put(format!("k/{i:04}"), round.to_string()));
        db.txn(Txn::new().then(puts))
            .expect("the backlog is written");
    }
    db.current_revision()
}

/// As [`write_backlog`], with a compaction at the newest revision interrupted before it swept
/// anything: every version but the newest is garbage still on disk, 19,000 records.
pub fn unswept_backlog(path: &Path) -> Revision {
    let head = write_backlog(path);
    leave_compaction_unfinished(path, head.get(), 0);
    head
}
/// Copies a store's directory, as a backup or a crash would leave it.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create the copy");
    for entry in std::fs::read_dir(from).expect("list the store") {
        let entry = entry.expect("an entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("a type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy a file");
        }
    }
}

/// A way to damage a stored value, named.
pub type Damage = (&'static str, fn(&mut Vec<u8>));

/// Damage every decoder of stored values must notice.
pub const DAMAGES: [Damage; 7] = [
    ("a flipped bit in the checksum", |bytes| bytes[0] ^= 1),
    ("a flipped bit in the payload", |bytes| bytes[4] ^= 0x10),
    ("a flipped last bit", |bytes| {
        *bytes.last_mut().expect("values are not empty") ^= 0x80;
    }),
    ("truncation to nothing", Vec::clear),
    ("truncation inside the checksum", |bytes| bytes.truncate(3)),
    ("the last byte cut", |bytes| {
        bytes.pop();
    }),
    ("a trailing byte", |bytes| bytes.push(0)),
];
