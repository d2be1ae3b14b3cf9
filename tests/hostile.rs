//! Hostile clients beside honest ones: memory stays within the snapshot budget, honest lists
//! stay exact, and every hostile request gets a typed error or a correct answer.
//!
//! Hostile threads start lists at old revisions and abandon them (each leaves a snapshot to
//! pin), continue some of them later, read whole collections at old revisions, present forged,
//! truncated, garbage and foreign continue tokens, write past every limit, and ask for the
//! largest pages there are. Beside them honest writers change their own keys and honest listers
//! page through those keys at the current revision; every honest list is checked against a model
//! of the store at its revision. A monitor samples the snapshot cache's charge and the process's
//! resident memory throughout.
//!
//! The test measures its whole process, so it is a test binary of its own with one test. It
//! prints the honest listers' chunk latency with and without the hostile threads; run it alone
//! to see the figures:
//!
//! ```text
//! cargo test --release --test hostile -- --nocapture
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use proptest::prelude::RngExt as _;
use proptest::test_runner::{RngAlgorithm, TestRng};
use revkv::{
    Db, Durability, Entry, Error, ListOptions, ListPage, Op, Put, Retention, Revision,
    TokenRejection, Txn, DEFAULT_MAX_PAGE_BYTES,
};

/// Keys of the collection hostile clients read at old revisions.
const BULK_KEYS: usize = 30_000;
const BULK: &str = "bulk/";
/// The bulk keys `bulk/00000` to `bulk/09999`: at most one page of the largest size.
const BULK_TENTH: &str = "bulk/0";
/// The length of every value but the large ones.
const VALUE_LEN: usize = 64;
/// Revisions of churn over the bulk keys before any client starts: the history that lists at
/// old revisions reach back into.
const CHURN_REVISIONS: usize = 20_000;
const CHURN_KEYS_PER_REVISION: usize = 3;
const CHURN_WRITERS: usize = 8;
/// Values large enough that each is stored in parts, and that a page of all of them is
/// megabytes.
const LARGE: &str = "large/";
const LARGE_KEYS: usize = 16;
const LARGE_VALUE_LEN: usize = 128 * 1024;
/// The byte budget of the small pages hostile clients ask for of the large values: two each.
const SMALL_PAGE_BYTES: usize = 200 * 1024;
/// Keys the honest writers change (each its own) and the honest listers page through.
const HONEST: &str = "honest/";
const HONEST_WRITERS: usize = 2;
const HONEST_KEYS_PER_WRITER: usize = 400;
/// The most keys an honest write changes.
const HONEST_WRITE_KEYS: usize = 4;
const HONEST_LISTERS: usize = 2;
const HONEST_LIMIT: usize = 40;
const HONEST_WRITE_PAUSE: Duration = Duration::from_millis(1);
/// Keys the oversized writes name; none may ever exist.
const HOSTILE: &str = "hostile/";

/// What the snapshot cache may be charged. A view at an old revision is charged about a whole
/// tree of the bulk keys (~5 MiB), so hostile lists overflow it at once.
const PINNED_BUDGET: usize = 8 << 20;
/// Threads that each keep starting lists at old revisions, abandoning them and continuing some
/// later: the issue's 64 hostile old-revision lists at once.
const OLD_REVISION_LISTERS: u8 = 64;
const MAX_PAGE_SIZE: usize = 10_000;
/// More than the whole store (~70 MB on disk): sled's cache is full of it before any client
/// starts, so that the scans of old records that rebuilds make add nothing to it.
const SLED_CACHE_BYTES: u64 = 256 << 20;
/// The pause between the requests of the hostile clients that test refusals and page bounds:
/// they are here to be answered correctly, not to flood the two cores that the clients pinning
/// snapshots need.
const REFUSAL_PAUSE: Duration = Duration::from_millis(2);
/// How long each run of clients lasts: honest clients alone, then with hostile ones. Long
/// enough in a release build for pins that were not bounded to show in resident memory (see
/// [`resident_growth_bound`]); shorter in a debug build, where every request costs several
/// times as much.
const RUN: Duration = Duration::from_secs(if cfg!(debug_assertions) { 4 } else { 8 });

/// How much the process's resident memory may grow while hostile clients run, in which honest
/// writers made `honest_writes` writes. The snapshot cache's charge is an upper bound of the
/// index nodes its views hold apart from the newest one (DESIGN.md §4), so the budget covers the
/// pins; the other terms are what else the clients may hold at one time. Pins that were not
/// bounded would hold, for every view hostile lists pinned, the nodes that the changes up to the
/// next pinned view copied, up to a whole tree (~1 MiB): with the budget lifted, the hundred or
/// more views pinned in a release build's run take the growth well over this bound.
fn resident_growth_bound(honest_writes: u64) -> usize {
    PINNED_BUDGET
        // The one rebuild that runs: at most a whole tree of the bulk keys (31–37 bytes of nodes
        // a key) and a new key allocation for every key it puts back.
        + BULK_KEYS * 128
        // In each of the two threads that read pages of the largest size, a page of 10,000 bulk
        // entries (~256 bytes each with their allocations, more than every large value
        // together) and the records the chunk read for it.
        + 2 * 2 * MAX_PAGE_SIZE * 256
        // An oversized transaction, built in full before it is refused.
        + revkv::MAX_TXN_BYTES
        + revkv::MAX_VALUE_LEN
        // What sled and the model keep of the honest writes: a record, a latest pointer and a
        // model entry for every key written, within ~256 bytes.
        + honest_writes as usize * HONEST_WRITE_KEYS * 256
        // Thread stacks, latency samples, and what the allocator keeps of what the clients freed.
        + (16 << 20)
}

/// Which write a value comes from: values are made from it, so every value read back names
/// the write that made it.
type Stamp = u64;

/// The value a put with `stamp` writes to `key`.
fn value(key: &[u8], stamp: Stamp) -> Vec<u8> {
    let len = if key.starts_with(LARGE.as_bytes()) {
        LARGE_VALUE_LEN
    } else {
        VALUE_LEN
    };
    stamp.to_be_bytes().into_iter().cycle().take(len).collect()
}

fn bulk_key(i: usize) -> Vec<u8> {
    format!("{BULK}{i:05}").into_bytes()
}

/// A put of `key` (`Some(stamp)`) or a delete (`None`).
type Write = (Vec<u8>, Option<Stamp>);

/// Hands out the stamps of one writer: unique across writers.
struct Stamps {
    writer: u64,
    last: u64,
}

impl Stamps {
    fn of(writer: usize) -> Self {
        Stamps {
            writer: writer as u64,
            last: 0,
        }
    }

    fn put(&mut self, key: Vec<u8>) -> Write {
        self.last += 1;
        (key, Some(self.writer << 40 | self.last))
    }
}

/// Commits `writes` as one transaction; every one changes something, so it takes a revision.
fn commit(db: &Db, writes: &[Write]) -> Revision {
    let ops = writes.iter().map(|(key, stamp)| match stamp {
        Some(stamp) => Op::put(key.clone(), value(key, *stamp)),
        None => Op::delete(key.clone()),
    });
    let response = db.txn(Txn::new().then(ops)).expect("a write commits");
    assert!(response.succeeded, "a transaction without conditions");
    response.revision
}

/// Every change of every key, as writers committed them: the reference a list is checked
/// against.
#[derive(Default)]
struct History {
    keys: BTreeMap<Vec<u8>, Vec<Change>>,
}

/// A change of a key at a revision: a put's stamp, or `None` for a delete.
type Change = (Revision, Option<Stamp>);

impl History {
    fn record(&mut self, revision: Revision, writes: &[Write]) {
        for (key, stamp) in writes {
            let changes = self.keys.entry(key.clone()).or_default();
            let at = changes.partition_point(|(changed, _)| *changed < revision);
            changes.insert(at, (revision, *stamp));
        }
    }

    /// The keys under `prefix` live at `revision`, in key order, strictly after `after`, each
    /// with its changes up to `revision`.
    fn live<'a>(
        &'a self,
        prefix: &'a str,
        revision: Revision,
        after: Option<&[u8]>,
    ) -> impl Iterator<Item = (&'a [u8], &'a [Change])> + 'a {
        let lower = match after {
            Some(after) if after >= prefix.as_bytes() => Bound::Excluded(after.to_vec()),
            _ => Bound::Included(prefix.as_bytes().to_vec()),
        };
        self.keys
            .range((lower, Bound::Unbounded))
            .take_while(|(key, _)| key.starts_with(prefix.as_bytes()))
            .map(move |(key, changes)| {
                let known = changes.partition_point(|(changed, _)| *changed <= revision);
                (key.as_slice(), &changes[..known])
            })
            .filter(|(_, known)| matches!(known.last(), Some((_, Some(_)))))
    }

    /// The entry of a live key, from its changes.
    fn entry(key: &[u8], known: &[Change]) -> Entry {
        let &(mod_revision, Some(stamp)) = known.last().expect("a live key has changes") else {
            panic!("a live key's last change is a put");
        };
        // The key's incarnation began after its last delete.
        let born = known
            .iter()
            .rposition(|(_, stamp)| stamp.is_none())
            .map_or(0, |deleted| deleted + 1);
        Entry {
            key: key.to_vec(),
            value: value(key, stamp),
            create_revision: known[born].0,
            mod_revision,
            version: (known.len() - born) as u64,
            labels: BTreeMap::new(),
            fields: BTreeMap::new(),
        }
    }
}

/// The honest writers' history, and the revision through which it is complete: they commit
/// concurrently, so revisions arrive out of order.
struct Recorded {
    state: Mutex<RecordedState>,
    arrived: Condvar,
}

struct RecordedState {
    history: History,
    /// Every revision up to this one is recorded.
    through: Revision,
    /// Revisions recorded above `through`.
    ahead: BTreeSet<Revision>,
}

impl Recorded {
    fn after(revision: Revision) -> Self {
        Recorded {
            state: Mutex::new(RecordedState {
                history: History::default(),
                through: revision,
                ahead: BTreeSet::new(),
            }),
            arrived: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, RecordedState> {
        self.state
            .lock()
            .expect("no thread panicked holding the model")
    }

    fn record(&self, revision: Revision, writes: &[Write]) {
        let mut state = self.lock();
        state.history.record(revision, writes);
        state.ahead.insert(revision);
        while let Some(next) = state.ahead.first().copied() {
            if next != state.through.next() {
                break;
            }
            state.ahead.remove(&next);
            state.through = next;
        }
        self.arrived.notify_all();
    }

    /// The history once it holds every revision up to `revision`. Only honest writers write, so
    /// a revision none of them records was taken by a write the store should have refused.
    fn through(&self, revision: Revision) -> MutexGuard<'_, RecordedState> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut state = self.lock();
        while state.through < revision {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "revision {} was never recorded by an honest writer: a refused write took it",
                state.through.next()
            );
            state = self
                .arrived
                .wait_timeout(state, left)
                .expect("no thread panicked holding the model")
                .0;
        }
        state
    }
}

/// A random number generator that `seed` determines: runs differ only by scheduling.
fn rng(seed: u8) -> TestRng {
    TestRng::from_seed(RngAlgorithm::ChaCha, &[seed; 32])
}

/// What a list asks for, as far as its pages are concerned.
#[derive(Clone, Copy, Debug)]
struct Request {
    prefix: &'static str,
    limit: usize,
    max_page_bytes: usize,
}

impl Request {
    fn new(prefix: &'static str, limit: usize) -> Self {
        Request {
            prefix,
            limit,
            max_page_bytes: DEFAULT_MAX_PAGE_BYTES,
        }
    }

    fn options(&self) -> ListOptions {
        ListOptions::prefix(self.prefix)
            .limit(self.limit)
            .max_page_bytes(self.max_page_bytes)
    }
}

fn weight(entry: &Entry) -> usize {
    entry.key.len() + entry.value.len()
}

/// Checks the chunks of one list, in order, against the model at the list's revision.
struct ListCheck<'m> {
    model: &'m History,
    request: Request,
    revision: Revision,
    /// Where the next chunk continues: past the last key read.
    after: Option<Vec<u8>>,
    /// Entries the list has still to return.
    left: u64,
}

impl<'m> ListCheck<'m> {
    fn new(
        model: &'m History,
        request: Request,
        revision: Revision,
        after: Option<Vec<u8>>,
    ) -> Self {
        let left = model
            .live(request.prefix, revision, after.as_deref())
            .count() as u64;
        ListCheck {
            model,
            request,
            revision,
            after,
            left,
        }
    }

    /// Checks the next chunk: the entries that follow the last one read, exactly, as many as
    /// the limit and the byte budget allow, and an exact count of what remains.
    fn check(&mut self, page: &ListPage) {
        let context = format!(
            "{:?} at revision {} after {:?}",
            self.request,
            self.revision,
            self.after.as_deref().map(String::from_utf8_lossy)
        );
        assert_eq!(page.revision, self.revision, "{context}");
        // One expected entry at a time: a page may hold megabytes.
        let mut expected = self
            .model
            .live(self.request.prefix, self.revision, self.after.as_deref())
            .map(|(key, known)| History::entry(key, known));
        for (at, item) in page.items.iter().enumerate() {
            let wanted = expected.next();
            assert!(
                wanted.as_ref() == Some(item),
                "{context}: item {at} is {}, the model has {}",
                describe(Some(item)),
                describe(wanted.as_ref())
            );
        }
        let bytes: usize = page.items.iter().map(weight).sum();
        let full = page.items.len() as u64 == self.left.min(self.request.limit as u64);
        assert!(
            full || bytes >= self.request.max_page_bytes,
            "{context}: a page of {} items and {bytes} bytes ended early",
            page.items.len()
        );
        if let Some(last) = page.items.last() {
            assert!(
                bytes - weight(last) < self.request.max_page_bytes,
                "{context}: a page went on past its byte budget"
            );
            self.after = Some(last.key.clone());
        }
        self.left -= page.items.len() as u64;
        assert_eq!(page.remaining, Some(self.left), "{context}");
        assert_eq!(page.continue_token.is_some(), self.left > 0, "{context}");
    }

    /// Reads the first chunk of `request` at `revision` (the current one when `None`) and
    /// checks it against the setup's model, which holds every bulk and large key.
    fn start(
        fixture: &'m Fixture,
        request: Request,
        revision: Option<Revision>,
    ) -> (Self, Option<String>) {
        let options = match revision {
            Some(revision) => request.options().revision(revision),
            None => request.options(),
        };
        let page = fixture.db.list(&options).expect("a first chunk reads");
        let mut check = ListCheck::new(&fixture.setup, request, page.revision, None);
        check.check(&page);
        (check, page.continue_token)
    }

    /// Reads the chunk `token` continues and checks it.
    fn resume(&mut self, db: &Db, token: String) -> Option<String> {
        let page = db
            .list(&self.request.options().continue_token(token))
            .expect("a continued chunk reads");
        self.check(&page);
        page.continue_token
    }

    /// Reads and checks every chunk of `request` from a first chunk at `revision`; returns how
    /// many chunks there were.
    fn page_through(fixture: &'m Fixture, request: Request, revision: Option<Revision>) -> usize {
        let (mut check, mut token) = ListCheck::start(fixture, request, revision);
        let mut chunks = 1;
        while let Some(next) = token {
            token = check.resume(&fixture.db, next);
            chunks += 1;
        }
        chunks
    }
}

fn describe(entry: Option<&Entry>) -> String {
    entry.map_or_else(
        || "nothing".to_owned(),
        |entry| {
            format!(
                "{} (mod {}, create {}, version {}, {} value bytes)",
                String::from_utf8_lossy(&entry.key),
                entry.mod_revision,
                entry.create_revision,
                entry.version,
                entry.value.len()
            )
        },
    )
}

/// The process's resident memory, from `/proc/self/statm`.
fn resident_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm reads");
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|pages| pages.parse().ok())
        .expect("statm's second field counts resident pages");
    // The page size of the x86-64 Linux machines this runs on.
    pages * 4096
}

/// The store, the models, and what hostile clients abuse.
struct Fixture {
    db: Db,
    /// The bulk and large keys, which only the setup writes.
    setup: History,
    /// The churn's revisions: lists at old revisions go back as far as its first.
    churn: std::ops::Range<u64>,
    honest: Recorded,
    /// A genuine token of the bulk list from another store.
    foreign_token: String,
}

impl Fixture {
    fn new() -> Self {
        let db = Db::options()
            // The setup writes tens of thousands of revisions, and no write latency is
            // measured; reads see a write as soon as it returns either way.
            .durability(Durability::Buffered)
            .retention(Retention::Manual)
            .pinned_bytes(PINNED_BUDGET)
            // Only the byte budget bounds the cache, so that it is the byte budget under test.
            .pinned_snapshots(usize::MAX)
            .max_page_size(MAX_PAGE_SIZE)
            .cache_bytes(SLED_CACHE_BYTES)
            .temporary()
            .expect("a temporary store opens");
        let setup = Mutex::new(History::default());
        let record = |revision, writes: &[Write]| {
            setup
                .lock()
                .expect("no setup writer panicked")
                .record(revision, writes);
        };
        let mut stamps = Stamps::of(0);
        // sled keeps kilobytes of memory for every new key of a large batch (~6 KB each in
        // batches of 1,000, a tenth of that in batches of 100), so the load goes in small
        // transactions.
        let keys: Vec<_> = (0..BULK_KEYS).map(bulk_key).collect();
        for chunk in keys.chunks(100) {
            let writes: Vec<_> = chunk.iter().map(|key| stamps.put(key.clone())).collect();
            record(commit(&db, &writes), &writes);
        }
        let large: Vec<_> = (0..LARGE_KEYS)
            .map(|i| stamps.put(format!("{LARGE}{i:02}").into_bytes()))
            .collect();
        record(commit(&db, &large), &large);
        let first_old = db.current_revision().get();
        // Concurrent writers fill commit groups; a lone writer waits for company every time.
        thread::scope(|scope| {
            for writer in 1..=CHURN_WRITERS {
                let (db, record) = (&db, &record);
                scope.spawn(move || churn(db, writer, record));
            }
        });
        let head = db.current_revision();
        let foreign = Db::temporary().expect("another temporary store opens");
        for i in 0..10 {
            foreign.put(bulk_key(i), "v").expect("a foreign write");
        }
        let foreign_token = foreign
            .list(&Request::new(BULK, 3).options())
            .expect("a foreign list")
            .continue_token
            .expect("a foreign list with chunks left");
        Fixture {
            db,
            setup: setup.into_inner().expect("no setup writer panicked"),
            churn: first_old..head.get() + 1,
            honest: Recorded::after(head),
            foreign_token,
        }
    }

    /// A revision for a list at an old revision, log-uniformly between the newest revision and
    /// the churn's first: mostly recent ones, which every write since makes costlier to keep,
    /// and now and then one deep in the churn, which costs a long rebuild.
    fn old_revision(&self, rng: &mut TestRng) -> Revision {
        let newest = self.db.current_revision().get();
        let depth = (newest - self.churn.start) as f64;
        Revision::new(newest - depth.powf(rng.random::<f64>()) as u64)
    }

    /// A revision of the churn, uniformly: where views differ most from one another.
    fn churn_revision(&self, rng: &mut TestRng) -> Revision {
        Revision::new(rng.random_range(self.churn.clone()))
    }
}

/// Writes this writer's share of the churn: puts and now and then a delete of bulk keys (its
/// own, so it knows which are live), so that lists at old revisions see values changed since,
/// keys gone since and keys recreated since.
fn churn(db: &Db, writer: usize, record: &impl Fn(Revision, &[Write])) {
    let mut rng = rng(writer as u8);
    let mut stamps = Stamps::of(writer);
    let mut deleted = BTreeSet::new();
    for _ in 0..CHURN_REVISIONS / CHURN_WRITERS {
        let keys: BTreeSet<usize> = (0..CHURN_KEYS_PER_REVISION)
            .map(|_| rng.random_range(0..BULK_KEYS / CHURN_WRITERS) * CHURN_WRITERS + writer - 1)
            .collect();
        let writes: Vec<_> = keys
            .into_iter()
            .map(|i| {
                if deleted.remove(&i) || !rng.random_ratio(10, 100) {
                    stamps.put(bulk_key(i))
                } else {
                    deleted.insert(i);
                    (bulk_key(i), None)
                }
            })
            .collect();
        record(commit(db, &writes), &writes);
    }
}

/// How many requests of each kind hostile clients made.
#[derive(Debug, Default)]
struct Tally(BTreeMap<&'static str, u64>);

impl Tally {
    fn count(&mut self, kind: &'static str) {
        *self.0.entry(kind).or_default() += 1;
    }

    fn add(&mut self, other: Tally) {
        for (kind, count) in other.0 {
            *self.0.entry(kind).or_default() += count;
        }
    }
}

/// Runs `round` until `stop`, and at least once.
fn rounds(stop: &AtomicBool, mut round: impl FnMut()) {
    loop {
        round();
        if stop.load(Ordering::Relaxed) {
            return;
        }
    }
}

/// Starts lists at old revisions with small pages and abandons them, so that each leaves a
/// snapshot to pin; continues abandoned lists later, a chunk at a time. Most lists start just
/// below the previous one, as a client walking back through history would: while the previous
/// snapshot is cached, each costs little to rebuild, and holds the paths changed in between.
fn old_revision_lists(fixture: &Fixture, seed: u8, stop: &AtomicBool) -> Tally {
    let mut rng = rng(seed);
    let mut tally = Tally::default();
    let mut abandoned: Vec<(ListCheck<'_>, String)> = Vec::new();
    let mut previous = fixture.churn_revision(&mut rng);
    rounds(stop, || {
        let step = rng.random_range(100..600);
        previous = if previous.get() > fixture.churn.start + step && rng.random_ratio(90, 100) {
            Revision::new(previous.get() - step)
        } else {
            fixture.churn_revision(&mut rng)
        };
        let request = Request::new(BULK, rng.random_range(1..17));
        let (check, token) = ListCheck::start(fixture, request, Some(previous));
        tally.count("first chunk at an old revision");
        abandoned.push((
            check,
            token.expect("a small chunk of the bulk keys leaves chunks"),
        ));
        if rng.random_ratio(50, 100) || abandoned.len() > 16 {
            let (mut check, token) = abandoned.swap_remove(rng.random_range(0..abandoned.len()));
            if let Some(token) = check.resume(&fixture.db, token) {
                abandoned.push((check, token));
            }
            tally.count("continued chunk at an old revision");
        }
    });
    tally
}

/// Reads whole lists at old revisions in pages of the largest size: a tenth of the bulk keys,
/// which fits one page and pins nothing, and all of them, whose every chunk may find its
/// snapshot evicted and rebuild it.
fn whole_old_lists(fixture: &Fixture, stop: &AtomicBool) -> Tally {
    let mut rng = rng(3);
    let mut tally = Tally::default();
    rounds(stop, || {
        for (prefix, kind) in [
            (BULK_TENTH, "whole list in one chunk at an old revision"),
            (BULK, "whole list in largest pages at an old revision"),
        ] {
            let revision = fixture.old_revision(&mut rng);
            ListCheck::page_through(fixture, Request::new(prefix, MAX_PAGE_SIZE), Some(revision));
            tally.count(kind);
        }
    });
    tally
}

/// A continue token's fields (DESIGN.md §5): version, flags, store id, run, revision, request
/// hint, position, then the tag and a crc32 of everything before. A client without the store's
/// secret can change any field and mend the crc, but not the tag.
struct Forgery {
    /// The bytes the tag covers.
    body: Vec<u8>,
    tag: Vec<u8>,
}

impl Forgery {
    const VERSION: std::ops::Range<usize> = 0..1;
    const FLAGS: std::ops::Range<usize> = 1..2;
    const STORE: std::ops::Range<usize> = 2..10;
    const RUN: std::ops::Range<usize> = 10..18;
    const REVISION: std::ops::Range<usize> = 18..26;
    const HINT: std::ops::Range<usize> = 26..30;
    /// Where the position starts in a token of a list that no `Expired` moved on.
    const POSITION: usize = 30;
    const TAG_LEN: usize = 16;

    fn of(token: &str) -> Self {
        let mut body = URL_SAFE_NO_PAD
            .decode(token)
            .expect("a genuine token is base64");
        body.truncate(body.len() - 4);
        let tag = body.split_off(body.len() - Self::TAG_LEN);
        Forgery { body, tag }
    }

    fn revision(&self) -> Revision {
        let bytes = self.body[Self::REVISION].try_into().expect("eight bytes");
        Revision::new(u64::from_be_bytes(bytes))
    }

    fn position(&self) -> &[u8] {
        &self.body[Self::POSITION..]
    }

    fn with(mut self, field: std::ops::Range<usize>, bytes: &[u8]) -> Self {
        self.body.splice(field, bytes.iter().copied());
        self
    }

    /// Flips the low bit of the field's last byte.
    fn altered(self, field: std::ops::Range<usize>) -> Self {
        let mut bytes = self.body[field.clone()].to_vec();
        *bytes.last_mut().expect("fields are not empty") ^= 1;
        self.with(field, &bytes)
    }

    fn with_position(self, position: &[u8]) -> Self {
        let end = self.body.len();
        self.with(Self::POSITION..end, position)
    }

    /// The token with its tag as it was, and a crc that matches.
    fn seal(self) -> String {
        let mut bytes = [self.body, self.tag].concat();
        let crc = crc32fast::hash(&bytes);
        bytes.extend_from_slice(&crc.to_be_bytes());
        URL_SAFE_NO_PAD.encode(bytes)
    }
}

/// A bad continue token, or a good one presented with a request it does not belong to.
#[derive(Clone, Copy, Debug)]
enum Abuse {
    Truncated,
    Garbage,
    Huge,
    AlteredCharacter,
    OtherStoresToken,
    OtherStoreId,
    UnknownRun,
    ZeroRevision,
    UnknownVersion,
    UnknownFlags,
    PositionTooLong,
    NoPosition,
    OtherHint,
    OtherRequest,
    ContradictingRevision,
    ForgedRevision,
    ForgedPosition,
    ForgedPositionOutsideRange,
    ForgedMove,
    ForgedTag,
    /// The genuine token once more, with another page size: a correct chunk again.
    Replayed,
}

const ABUSES: [Abuse; 21] = [
    Abuse::Truncated,
    Abuse::Garbage,
    Abuse::Huge,
    Abuse::AlteredCharacter,
    Abuse::OtherStoresToken,
    Abuse::OtherStoreId,
    Abuse::UnknownRun,
    Abuse::ZeroRevision,
    Abuse::UnknownVersion,
    Abuse::UnknownFlags,
    Abuse::PositionTooLong,
    Abuse::NoPosition,
    Abuse::OtherHint,
    Abuse::OtherRequest,
    Abuse::ContradictingRevision,
    Abuse::ForgedRevision,
    Abuse::ForgedPosition,
    Abuse::ForgedPositionOutsideRange,
    Abuse::ForgedMove,
    Abuse::ForgedTag,
    Abuse::Replayed,
];

/// What the store must answer.
#[derive(Debug)]
enum Expected {
    /// `InvalidContinueToken` for one of these reasons.
    Rejected(&'static [TokenRejection]),
    /// A correct chunk of this request, from the genuine token's position at its revision.
    Chunk(Request),
}

/// Presents every kind of bad continue token, each made from a genuine one.
fn bad_tokens(fixture: &Fixture, stop: &AtomicBool) -> Tally {
    use TokenRejection::*;
    let mut rng = rng(4);
    let mut tally = Tally::default();
    let request = Request::new(BULK, 5);
    rounds(stop, || {
        let (_, token) = ListCheck::start(fixture, request, None);
        let token = token.expect("the bulk keys fill more than a chunk");
        let genuine = || Forgery::of(&token);
        let revision = genuine().revision();
        for abuse in ABUSES {
            let mut options = request.options();
            let (presented, expected) = match abuse {
                Abuse::Truncated => (
                    token[..rng.random_range(0..token.len())].to_owned(),
                    Expected::Rejected(&[BadLength, NotBase64, ChecksumMismatch]),
                ),
                Abuse::Garbage => {
                    let alphabet =
                        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=+/%";
                    let garbage = (0..rng.random_range(0..token.len() * 2))
                        .map(|_| char::from(alphabet[rng.random_range(0..alphabet.len())]))
                        .collect();
                    (
                        garbage,
                        Expected::Rejected(&[BadLength, NotBase64, ChecksumMismatch]),
                    )
                }
                Abuse::Huge => ("A".repeat(1 << 20), Expected::Rejected(&[BadLength])),
                Abuse::AlteredCharacter => {
                    // Not the last character, which may carry nothing but padding bits.
                    let mut altered = token.clone().into_bytes();
                    let at = rng.random_range(0..altered.len() - 1);
                    altered[at] = if altered[at] == b'A' { b'B' } else { b'A' };
                    (
                        String::from_utf8(altered).expect("base64 is ASCII"),
                        Expected::Rejected(&[ChecksumMismatch]),
                    )
                }
                Abuse::OtherStoresToken => (
                    fixture.foreign_token.clone(),
                    Expected::Rejected(&[ForeignStore]),
                ),
                Abuse::OtherStoreId => (
                    genuine().altered(Forgery::STORE).seal(),
                    Expected::Rejected(&[ForeignStore]),
                ),
                Abuse::UnknownRun => (
                    genuine().altered(Forgery::RUN).seal(),
                    Expected::Rejected(&[ForeignStore]),
                ),
                Abuse::ZeroRevision => (
                    genuine().with(Forgery::REVISION, &[0; 8]).seal(),
                    Expected::Rejected(&[ZeroRevision]),
                ),
                Abuse::UnknownVersion => (
                    genuine().altered(Forgery::VERSION).seal(),
                    Expected::Rejected(&[UnknownVersion]),
                ),
                Abuse::UnknownFlags => (
                    genuine().with(Forgery::FLAGS, &[0x80]).seal(),
                    Expected::Rejected(&[UnknownVersion]),
                ),
                Abuse::PositionTooLong => (
                    genuine()
                        .with_position(&[b'b'; revkv::MAX_KEY_LEN + 1])
                        .seal(),
                    Expected::Rejected(&[BadLength]),
                ),
                Abuse::NoPosition => (
                    genuine().with_position(b"").seal(),
                    Expected::Rejected(&[BadLength]),
                ),
                Abuse::OtherHint => (
                    genuine().altered(Forgery::HINT).seal(),
                    Expected::Rejected(&[ForeignRequest]),
                ),
                Abuse::OtherRequest => {
                    options = Request::new(BULK_TENTH, 5).options();
                    (token.clone(), Expected::Rejected(&[ForeignRequest]))
                }
                Abuse::ContradictingRevision => {
                    options = options.revision(Revision::new(revision.get() - 1));
                    (token.clone(), Expected::Rejected(&[RevisionMismatch]))
                }
                Abuse::ForgedRevision => {
                    // An older revision of the store, or one it has not reached.
                    let forged = if rng.random_ratio(50, 100) {
                        fixture.churn.start
                    } else {
                        revision.get() + 1_000_000_000
                    };
                    (
                        genuine()
                            .with(Forgery::REVISION, &forged.to_be_bytes())
                            .seal(),
                        Expected::Rejected(&[Forged]),
                    )
                }
                Abuse::ForgedPosition => {
                    // A key of the list, or a position between two of them.
                    let mut key = bulk_key(rng.random_range(0..BULK_KEYS));
                    if rng.random_ratio(50, 100) {
                        key.push(b'~');
                    }
                    (
                        genuine().with_position(&key).seal(),
                        Expected::Rejected(&[Forged]),
                    )
                }
                Abuse::ForgedPositionOutsideRange => (
                    genuine().with_position(b"zzz").seal(),
                    Expected::Rejected(&[Forged]),
                ),
                Abuse::ForgedMove => {
                    // The list claims to have moved on from the revision it started at.
                    let mut forged = genuine();
                    let started_at = (revision.get() - 1).to_be_bytes();
                    forged
                        .body
                        .splice(Forgery::POSITION..Forgery::POSITION, started_at);
                    (
                        forged.with(Forgery::FLAGS, &[1]).seal(),
                        Expected::Rejected(&[Forged]),
                    )
                }
                Abuse::ForgedTag => {
                    let mut forged = genuine();
                    forged.tag[rng.random_range(0..Forgery::TAG_LEN)] ^= 1;
                    (forged.seal(), Expected::Rejected(&[Forged]))
                }
                Abuse::Replayed => {
                    let other = Request::new(BULK, rng.random_range(1..MAX_PAGE_SIZE + 1));
                    options = other.options();
                    (token.clone(), Expected::Chunk(other))
                }
            };
            let outcome = fixture.db.list(&options.continue_token(presented));
            match (outcome, expected) {
                (Err(Error::InvalidContinueToken { reason }), Expected::Rejected(reasons))
                    if reasons.contains(&reason) => {}
                (Ok(page), Expected::Chunk(request)) => {
                    let after = genuine().position().to_vec();
                    ListCheck::new(&fixture.setup, request, revision, Some(after)).check(&page);
                }
                (outcome, expected) => panic!(
                    "{abuse:?}: expected {expected:?}, got {}",
                    summary(&outcome)
                ),
            }
            tally.count("bad continue token");
            thread::sleep(REFUSAL_PAUSE);
        }
    });
    tally
}

/// A list's outcome in a few words: the error, or how many items from which key.
fn summary(outcome: &revkv::Result<ListPage>) -> String {
    match outcome {
        Err(error) => format!("{error:?}"),
        Ok(page) => format!(
            "{} items from {}",
            page.items.len(),
            describe(page.items.first())
        ),
    }
}

/// A write over one of the limits.
#[derive(Clone, Copy, Debug)]
enum Oversized {
    Labels,
    Metadata,
    Value,
    Key,
    Transaction,
    /// Over the limit in the branch that would not run.
    HiddenTransaction,
    Operations,
}

const OVERSIZED: [Oversized; 7] = [
    Oversized::Labels,
    Oversized::Metadata,
    Oversized::Value,
    Oversized::Key,
    Oversized::Transaction,
    Oversized::HiddenTransaction,
    Oversized::Operations,
];

impl Oversized {
    /// The transaction, and a key it would have written.
    fn txn(self) -> (Txn, Vec<u8>) {
        let key = format!("{HOSTILE}{self:?}").into_bytes();
        let put = |put: Put| (Txn::new().then([Op::Put(put)]), key.clone());
        // Enough values of the largest size to go past a transaction's bytes.
        let too_many_bytes = || {
            (0..=revkv::MAX_TXN_BYTES / revkv::MAX_VALUE_LEN).map(|i| {
                let key = format!("{HOSTILE}{self:?}/{i}");
                Op::put(key, vec![0; revkv::MAX_VALUE_LEN])
            })
        };
        match self {
            Oversized::Labels => put((0..=revkv::MAX_LABELS)
                .fold(Put::new(key.clone(), "v"), |put, i| {
                    put.label(format!("l{i}"), "")
                })),
            Oversized::Metadata => {
                // Fields within their own limit of 4 KiB each, too many bytes together.
                let fields = revkv::MAX_METADATA_LEN / 4096 + 1;
                put((0..fields).fold(Put::new(key.clone(), "v"), |put, i| {
                    put.field(format!("f{i}"), "x".repeat(4096))
                }))
            }
            Oversized::Value => put(Put::new(key.clone(), vec![0; revkv::MAX_VALUE_LEN + 1])),
            Oversized::Key => {
                let mut long = key.clone();
                long.resize(revkv::MAX_KEY_LEN + 1, b'k');
                (Txn::new().then([Op::put(long.clone(), "v")]), long)
            }
            Oversized::Transaction => (Txn::new().then(too_many_bytes()), key.clone()),
            Oversized::HiddenTransaction => (
                Txn::new()
                    .when([revkv::Compare::absent(key.clone())])
                    .then([Op::put(key.clone(), "v")])
                    .otherwise(too_many_bytes()),
                key.clone(),
            ),
            Oversized::Operations => (
                Txn::new()
                    .then((0..=revkv::MAX_TXN_OPS).map(|i| Op::put(format!("{HOSTILE}{i}"), "v"))),
                key.clone(),
            ),
        }
    }
}

/// Writes over every limit: each must be refused with its own error, and write nothing.
fn oversized_writes(fixture: &Fixture, stop: &AtomicBool) -> Tally {
    let mut tally = Tally::default();
    rounds(stop, || {
        for oversized in OVERSIZED {
            let (txn, key) = oversized.txn();
            let outcome = fixture.db.txn(txn);
            match (oversized, outcome) {
                (Oversized::Labels, Err(Error::TooManyLabels { count })) => {
                    assert_eq!(count, revkv::MAX_LABELS + 1);
                }
                (Oversized::Metadata, Err(Error::MetadataTooLarge { len })) => {
                    assert!(len > revkv::MAX_METADATA_LEN);
                }
                (Oversized::Value, Err(Error::ValueTooLarge { len })) => {
                    assert_eq!(len, revkv::MAX_VALUE_LEN + 1);
                }
                (Oversized::Key, Err(Error::KeyTooLarge { len })) => {
                    assert_eq!(len, revkv::MAX_KEY_LEN + 1);
                }
                (
                    Oversized::Transaction | Oversized::HiddenTransaction,
                    Err(Error::TxnTooLarge { bytes }),
                ) => assert!(bytes > revkv::MAX_TXN_BYTES),
                (Oversized::Operations, Err(Error::TooManyOperations { count })) => {
                    assert_eq!(count, revkv::MAX_TXN_OPS + 1);
                }
                (oversized, outcome) => panic!("{oversized:?} was not refused: {outcome:?}"),
            }
            let written = fixture.db.get(&key).expect("a get reads");
            assert_eq!(written, None, "{oversized:?} was refused and written");
            tally.count("oversized write");
            thread::sleep(REFUSAL_PAUSE);
        }
    });
    tally
}

/// Asks for the largest pages: every large value in one page, the same values under a small
/// byte budget, the bulk keys in pages of the largest size with no byte budget, and pages over
/// the largest size.
fn huge_pages(fixture: &Fixture, stop: &AtomicBool) -> Tally {
    let mut tally = Tally::default();
    let unbounded = |prefix| Request {
        max_page_bytes: usize::MAX,
        ..Request::new(prefix, MAX_PAGE_SIZE)
    };
    rounds(stop, || {
        let chunks = ListCheck::page_through(fixture, unbounded(LARGE), None);
        assert_eq!(chunks, 1, "every large value in one page");
        let small = Request {
            max_page_bytes: SMALL_PAGE_BYTES,
            ..Request::new(LARGE, MAX_PAGE_SIZE)
        };
        tally.count("every large value in one page");
        ListCheck::page_through(fixture, small, None);
        tally.count("large values in small pages");
        ListCheck::page_through(fixture, unbounded(BULK), None);
        tally.count("bulk keys in largest pages without a byte budget");
        thread::sleep(REFUSAL_PAUSE);
        for limit in [0, MAX_PAGE_SIZE + 1] {
            let outcome = fixture.db.list(&Request::new(BULK, limit).options());
            assert!(
                matches!(outcome, Err(Error::InvalidRequest { .. })),
                "a limit of {limit}: {}",
                summary(&outcome)
            );
            tally.count("page over the largest size");
        }
    });
    tally
}

/// Changes this writer's own honest keys until `stop`: puts and deletes, alone or a few in a
/// transaction; returns how many writes it made.
fn honest_writer(fixture: &Fixture, writer: usize, stop: &AtomicBool) -> u64 {
    let mut rng = rng(100 + writer as u8);
    let mut stamps = Stamps::of(100 + writer);
    let key = |k: usize| format!("{HONEST}{writer}/{k:03}").into_bytes();
    let mut live = BTreeSet::new();
    let mut writes = 0;
    while !stop.load(Ordering::Relaxed) {
        let count = if rng.random_ratio(50, 100) {
            1
        } else {
            rng.random_range(2..HONEST_WRITE_KEYS + 1)
        };
        let keys: BTreeSet<usize> = (0..count)
            .map(|_| rng.random_range(0..HONEST_KEYS_PER_WRITER))
            .collect();
        let changes: Vec<Write> = keys
            .into_iter()
            .map(|k| {
                if live.contains(&k) && rng.random_ratio(25, 100) {
                    live.remove(&k);
                    (key(k), None)
                } else {
                    live.insert(k);
                    stamps.put(key(k))
                }
            })
            .collect();
        fixture
            .honest
            .record(commit(&fixture.db, &changes), &changes);
        writes += 1;
        // Steady clients, not a write benchmark: every write makes lists at old revisions
        // costlier, and the writers should not starve the listers of the two cores.
        thread::sleep(HONEST_WRITE_PAUSE);
    }
    writes
}

/// What an honest lister saw.
#[derive(Default)]
struct HonestLists {
    chunk_latencies: Vec<Duration>,
    lists: usize,
}

/// Pages through the honest keys from a first chunk at the current revision until `stop`,
/// timing every chunk, and checks every list against the model at its revision.
fn honest_lister(fixture: &Fixture, stop: &AtomicBool) -> HonestLists {
    let request = Request::new(HONEST, HONEST_LIMIT);
    let mut seen = HonestLists::default();
    while !stop.load(Ordering::Relaxed) {
        let mut pages = Vec::new();
        let mut options = request.options();
        loop {
            let started = Instant::now();
            let page = fixture.db.list(&options).expect("an honest chunk reads");
            seen.chunk_latencies.push(started.elapsed());
            let token = page.continue_token.clone();
            pages.push(page);
            match token {
                Some(token) => options = request.options().continue_token(token),
                None => break,
            }
        }
        let revision = pages[0].revision;
        let recorded = fixture.honest.through(revision);
        let mut check = ListCheck::new(&recorded.history, request, revision, None);
        for page in &pages {
            check.check(page);
        }
        seen.lists += 1;
    }
    seen
}

/// The largest of a monitor's samples.
#[derive(Default)]
struct Peak<T> {
    most: T,
    samples: usize,
}

/// Takes samples until `stop`, resting after each as long as `rest` says given how long the
/// sample took.
fn watch<T: Ord + Default>(
    stop: &AtomicBool,
    rest: impl Fn(Duration) -> Duration,
    mut sample: impl FnMut() -> T,
) -> Peak<T> {
    let mut peak = Peak::<T>::default();
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        peak.most = peak.most.max(sample());
        peak.samples += 1;
        thread::sleep(rest(started.elapsed()));
    }
    peak
}

/// What one run of clients did.
struct Run {
    /// The honest listers' chunk latencies, sorted.
    chunk_latencies: Vec<Duration>,
    honest_lists: usize,
    honest_writes: u64,
    /// The snapshot cache's charge.
    pinned_bytes: Peak<u64>,
    resident_bytes: Peak<usize>,
    hostile: Tally,
}

impl Run {
    /// The `q` quantile of the honest chunk latencies, in milliseconds.
    fn latency_ms(&self, q: f64) -> f64 {
        let at = ((self.chunk_latencies.len() - 1) as f64 * q).round() as usize;
        self.chunk_latencies[at].as_secs_f64() * 1e3
    }
}

/// Honest writers and listers, and the hostile threads when `hostile`, for [`RUN`].
fn run(fixture: &Fixture, hostile: bool) -> Run {
    fn join<T>(handle: thread::ScopedJoinHandle<'_, T>) -> T {
        handle
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }
    let stop = AtomicBool::new(false);
    let stop = &stop;
    thread::scope(|scope| {
        let writers: Vec<_> = (0..HONEST_WRITERS)
            .map(|writer| scope.spawn(move || honest_writer(fixture, writer, stop)))
            .collect();
        let listers: Vec<_> = (0..HONEST_LISTERS)
            .map(|_| scope.spawn(move || honest_lister(fixture, stop)))
            .collect();
        // A `stat` reads every record: its monitor rests as long as each took, to leave the
        // clients most of the machine.
        let pinned = scope.spawn(move || {
            watch(
                stop,
                |took| took,
                || fixture.db.stat().expect("stat reads").pinned_bytes,
            )
        });
        let resident =
            scope.spawn(move || watch(stop, |_| Duration::from_millis(1), resident_bytes));
        let hostiles = if hostile {
            let old_lists = (0..OLD_REVISION_LISTERS)
                .map(|lister| scope.spawn(move || old_revision_lists(fixture, 100 + lister, stop)));
            old_lists
                .chain([
                    scope.spawn(move || whole_old_lists(fixture, stop)),
                    scope.spawn(move || bad_tokens(fixture, stop)),
                    scope.spawn(move || oversized_writes(fixture, stop)),
                    scope.spawn(move || huge_pages(fixture, stop)),
                ])
                .collect()
        } else {
            Vec::new()
        };

        thread::sleep(RUN);
        stop.store(true, Ordering::Relaxed);
        let mut run = Run {
            chunk_latencies: Vec::new(),
            honest_lists: 0,
            honest_writes: writers.into_iter().map(join).sum(),
            pinned_bytes: join(pinned),
            resident_bytes: join(resident),
            hostile: Tally::default(),
        };
        for lister in listers {
            let seen = join(lister);
            run.chunk_latencies.extend(seen.chunk_latencies);
            run.honest_lists += seen.lists;
        }
        run.chunk_latencies.sort_unstable();
        for tally in hostiles.into_iter().map(join) {
            run.hostile.add(tally);
        }
        run
    })
}

const MIB: f64 = 1024.0 * 1024.0;

#[test]
fn hostile_clients_stay_within_the_memory_budget_and_honest_lists_stay_exact() {
    let started = Instant::now();
    let fixture = Fixture::new();
    let setup = started.elapsed();
    let idle = run(&fixture, false);
    let baseline = resident_bytes();
    let hostile = run(&fixture, true);
    let grown = hostile.resident_bytes.most.saturating_sub(baseline);
    let bound = resident_growth_bound(hostile.honest_writes);

    println!(
        "{BULK_KEYS} bulk keys, {CHURN_REVISIONS} revisions of churn written in {:.1} s, \
         a snapshot budget of {:.0} MiB",
        setup.as_secs_f64(),
        PINNED_BUDGET as f64 / MIB
    );
    for (name, run) in [("idle", &idle), ("hostile", &hostile)] {
        println!(
            "{name:>8}: honest chunks p50 {:.3} ms, p99 {:.3} ms ({} chunks, {} lists, {} writes); \
             pinned at most {:.1} MiB ({} samples), resident at most {:.0} MiB ({} samples)",
            run.latency_ms(0.5),
            run.latency_ms(0.99),
            run.chunk_latencies.len(),
            run.honest_lists,
            run.honest_writes,
            run.pinned_bytes.most as f64 / MIB,
            run.pinned_bytes.samples,
            run.resident_bytes.most as f64 / MIB,
            run.resident_bytes.samples,
        );
    }
    println!(
        "honest chunk p99, hostile / idle: {:.1}×",
        hostile.latency_ms(0.99) / idle.latency_ms(0.99)
    );
    println!(
        "resident memory grew {:.1} MiB under hostile clients (bound {:.0} MiB)",
        grown as f64 / MIB,
        bound as f64 / MIB
    );
    println!("hostile requests:");
    for (kind, count) in &hostile.hostile.0 {
        println!("{count:>8} {kind}");
    }

    assert!(
        grown <= bound,
        "resident memory grew {grown} bytes, over {bound}"
    );
    for run in [&idle, &hostile] {
        assert!(
            run.pinned_bytes.most <= PINNED_BUDGET as u64,
            "pins charged {} bytes, over the budget",
            run.pinned_bytes.most
        );
        assert!(run.honest_lists > 0, "honest lists ran");
    }

    // Nothing but the honest writers took a revision, and no refused write left a key.
    let recorded = fixture.honest.lock();
    assert_eq!(recorded.through, fixture.db.current_revision());
    assert!(
        recorded.ahead.is_empty(),
        "revisions recorded past the head"
    );
    let hostile_keys = fixture
        .db
        .list(&Request::new(HOSTILE, 1).options())
        .expect("a list reads");
    assert_eq!(hostile_keys.items, []);
    let report = fixture.db.verify().expect("verify reads the store");
    assert!(report.is_clean(), "{report}");
}
