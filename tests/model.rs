//! The store against the reference model: random sequences of puts, deletes, transactions,
//! gets at revisions, chunked lists, compactions and restarts give exactly the model's results;
//! and concurrent writers and listers see exactly the contents of each list's revision.
//!
//! `REVKV_MODEL_CASES` sets how many sequences run (64 by default), `REVKV_STRESS_SECS` how long
//! the concurrent test runs (2 by default).

use std::collections::BTreeMap;
use std::ops::{Bound, RangeBounds};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use revkv::{
    Cmp, Compare, Db, Entry, Error, ListOptions, Op, OpResult, Put, Retention, Revision,
    TokenRejection, Txn,
};

use crate::common::{rng, Model, Refusal, Value};

/// Keys are `k/00` to `k/13`: few enough that writes collide and lists cross them all.
const KEYS: u8 = 14;
/// The largest limit a chunk asks for; `0` is asked for too, and refused.
const MAX_LIMIT: u8 = 4;

fn key(k: u8) -> Vec<u8> {
    format!("k/{k:02}").into_bytes()
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(default)
}

/// The revision a read asks for, relative to the newest one when the read is made.
#[derive(Clone, Copy, Debug)]
enum At {
    /// No explicit revision: the newest.
    Newest,
    /// This many revisions before the newest (at least 0).
    Back(u8),
    /// One past the newest: refused.
    Ahead,
}

impl At {
    fn revision(self, newest: Revision) -> Revision {
        match self {
            At::Newest => newest,
            At::Back(back) => Revision::new(newest.get().saturating_sub(u64::from(back))),
            At::Ahead => newest.next(),
        }
    }
}

/// A put's value and its labels and fields, from a few bits.
#[derive(Clone, Copy, Debug)]
struct Written {
    value: u8,
    tags: u8,
}

impl Written {
    fn value(self) -> Value {
        let labels: &[(&str, &str)] = match self.tags % 4 {
            0 => &[],
            1 => &[("app", "web")],
            2 => &[("app", "db")],
            _ => &[("app", "web"), ("tier", "front")],
        };
        let fields: &[(&str, &str)] = if self.tags & 4 == 0 {
            &[]
        } else {
            &[("status", "ready")]
        };
        let map = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|&(k, v)| (k.to_owned(), v.to_owned()))
                .collect()
        };
        Value {
            value: vec![self.value],
            labels: map(labels),
            fields: map(fields),
        }
    }

    fn put(self, key: u8) -> Put {
        let value = self.value();
        let put = Put::new(self::key(key), value.value);
        let put = value
            .labels
            .into_iter()
            .fold(put, |put, (k, v)| put.label(k, v));
        value
            .fields
            .into_iter()
            .fold(put, |put, (k, v)| put.field(k, v))
    }
}

/// One operation of a transaction branch: a put, or a delete when `put` is `None`.
#[derive(Clone, Copy, Debug)]
struct Write {
    key: u8,
    put: Option<Written>,
}

impl Write {
    fn op(self) -> Op {
        match self.put {
            Some(written) => Op::Put(written.put(self.key)),
            None => Op::delete(key(self.key)),
        }
    }
}

/// A transaction condition on one key; revision operands count back from the newest revision.
#[derive(Clone, Copy, Debug)]
enum Condition {
    ModRevision(u8, Cmp, u8),
    CreateRevision(u8, Cmp, u8),
    Version(u8, Cmp, u8),
    Value(u8, Cmp, u8),
    Absent(u8),
}

impl Condition {
    fn compare(self, newest: Revision) -> Compare {
        let back = |back| At::Back(back).revision(newest);
        match self {
            Condition::ModRevision(k, cmp, b) => Compare::mod_revision(key(k), cmp, back(b)),
            Condition::CreateRevision(k, cmp, b) => Compare::create_revision(key(k), cmp, back(b)),
            Condition::Version(k, cmp, version) => {
                Compare::version(key(k), cmp, u64::from(version))
            }
            Condition::Value(k, cmp, value) => Compare::value(key(k), cmp, [value]),
            Condition::Absent(k) => Compare::absent(key(k)),
        }
    }

    /// Whether it holds in `state`, by etcd's rules: a missing key has revisions and version
    /// 0, and no value to compare.
    fn holds(self, state: &BTreeMap<Vec<u8>, Entry>, newest: Revision) -> bool {
        fn compare<T: Ord + ?Sized>(cmp: Cmp, actual: &T, operand: &T) -> bool {
            match cmp {
                Cmp::Equal => actual == operand,
                Cmp::NotEqual => actual != operand,
                Cmp::Less => actual < operand,
                Cmp::Greater => actual > operand,
            }
        }
        let entry = |k| state.get(&key(k));
        let number = |k, of: fn(&Entry) -> u64| entry(k).map_or(0, of);
        let back = |back| At::Back(back).revision(newest).get();
        match self {
            Condition::ModRevision(k, cmp, b) => {
                compare(cmp, &number(k, |e| e.mod_revision.get()), &back(b))
            }
            Condition::CreateRevision(k, cmp, b) => {
                compare(cmp, &number(k, |e| e.create_revision.get()), &back(b))
            }
            Condition::Version(k, cmp, version) => {
                compare(cmp, &number(k, |e| e.version), &u64::from(version))
            }
            Condition::Value(k, cmp, value) => {
                entry(k).is_some_and(|e| compare(cmp, e.value.as_slice(), &[value][..]))
            }
            Condition::Absent(k) => entry(k).is_none(),
        }
    }
}

/// Which keys a list covers.
#[derive(Clone, Debug)]
enum Range {
    All,
    Prefix(&'static str),
    Between(u8, u8),
    From(u8),
}

/// What a list asks for, except its page size and position. New list options (selectors,
/// markers) belong here: in `options` for the store and in `contents` for the model.
#[derive(Clone, Debug)]
struct ListSpec {
    range: Range,
    reverse: bool,
}

impl ListSpec {
    fn options(&self) -> ListOptions {
        let options = match self.range {
            Range::All => ListOptions::all(),
            Range::Prefix(prefix) => ListOptions::prefix(prefix),
            Range::Between(start, end) => ListOptions::range(key(start), key(end)),
            Range::From(start) => ListOptions::from(key(start)),
        };
        options.reverse(self.reverse)
    }

    /// The whole list in `state`, in list order, from just past `after` (the last key read).
    fn contents(&self, state: &BTreeMap<Vec<u8>, Entry>, after: Option<&[u8]>) -> Vec<Entry> {
        let (lower, upper) = match &self.range {
            Range::All => (Bound::Unbounded, Bound::Unbounded),
            Range::Prefix(prefix) => {
                let mut end = prefix.as_bytes().to_vec();
                *end.last_mut().expect("prefixes are not empty") += 1;
                (
                    Bound::Included(prefix.as_bytes().to_vec()),
                    Bound::Excluded(end),
                )
            }
            Range::Between(start, end) => {
                (Bound::Included(key(*start)), Bound::Excluded(key(*end)))
            }
            Range::From(start) => (Bound::Included(key(*start)), Bound::Unbounded),
        };
        let in_range = |k: &Vec<u8>| (lower.as_ref(), upper.as_ref()).contains(k);
        let past = |k: &Vec<u8>| match after {
            None => true,
            Some(after) if self.reverse => k.as_slice() < after,
            Some(after) => k.as_slice() > after,
        };
        let mut entries: Vec<Entry> = state
            .iter()
            .filter(|(k, _)| in_range(k) && past(k))
            .map(|(_, entry)| entry.clone())
            .collect();
        if self.reverse {
            entries.reverse();
        }
        entries
    }
}

/// A request presented with a token it does not belong to.
#[derive(Clone, Copy, Debug)]
enum Mismatch {
    /// The other direction: another request.
    Reversed,
    /// An explicit revision other than the token's.
    Revision,
}

#[derive(Clone, Debug)]
enum Step {
    Put {
        key: u8,
        written: Written,
    },
    Delete {
        key: u8,
    },
    Txn {
        when: Vec<Condition>,
        then: Vec<Write>,
        otherwise: Vec<Write>,
    },
    Get {
        key: u8,
        at: At,
    },
    /// Starts a list and reads its first chunk.
    Start {
        list: ListSpec,
        at: At,
        limit: u8,
    },
    /// Reads the next chunk of open list `which` (modulo the open lists).
    Continue {
        which: u8,
        limit: u8,
    },
    /// Presents the token of open list `which` with a request it does not belong to.
    Misuse {
        which: u8,
        mismatch: Mismatch,
    },
    /// Compacts this many revisions below the newest.
    Compact {
        back: u8,
    },
    /// Drops the store and opens it again.
    Reopen,
}

fn written() -> impl Strategy<Value = Written> {
    (0u8..4, any::<u8>()).prop_map(|(value, tags)| Written { value, tags })
}

fn write() -> impl Strategy<Value = Write> {
    (0..KEYS, proptest::option::weighted(0.7, written())).prop_map(|(key, put)| Write { key, put })
}

fn cmp() -> impl Strategy<Value = Cmp> {
    prop_oneof![
        Just(Cmp::Equal),
        Just(Cmp::NotEqual),
        Just(Cmp::Less),
        Just(Cmp::Greater)
    ]
}

fn condition() -> impl Strategy<Value = Condition> {
    let k = 0..KEYS;
    prop_oneof![
        (k.clone(), cmp(), 0u8..4).prop_map(|(k, c, b)| Condition::ModRevision(k, c, b)),
        (k.clone(), cmp(), 0u8..8).prop_map(|(k, c, b)| Condition::CreateRevision(k, c, b)),
        (k.clone(), cmp(), 0u8..4).prop_map(|(k, c, v)| Condition::Version(k, c, v)),
        (k.clone(), cmp(), 0u8..4).prop_map(|(k, c, v)| Condition::Value(k, c, v)),
        k.prop_map(Condition::Absent),
    ]
}

fn at() -> impl Strategy<Value = At> {
    prop_oneof![
        3 => Just(At::Newest),
        6 => (0u8..12).prop_map(At::Back),
        1 => Just(At::Ahead),
    ]
}

fn list_spec() -> impl Strategy<Value = ListSpec> {
    let range = prop_oneof![
        Just(Range::All),
        prop::sample::select(vec!["k/", "k/0", "k/1"]).prop_map(Range::Prefix),
        (0..KEYS, 0..=KEYS).prop_map(|(a, b)| Range::Between(a.min(b), a.max(b))),
        (0..KEYS).prop_map(Range::From),
    ];
    (range, any::<bool>()).prop_map(|(range, reverse)| ListSpec { range, reverse })
}

fn step() -> impl Strategy<Value = Step> {
    // A branch names a key twice now and then, which the store refuses.
    let branch = || proptest::collection::vec(write(), 0..4);
    prop_oneof![
        6 => (0..KEYS, written()).prop_map(|(key, written)| Step::Put { key, written }),
        3 => (0..KEYS).prop_map(|key| Step::Delete { key }),
        3 => (proptest::collection::vec(condition(), 0..3), branch(), branch())
            .prop_map(|(when, then, otherwise)| Step::Txn { when, then, otherwise }),
        3 => (0..KEYS, at()).prop_map(|(key, at)| Step::Get { key, at }),
        4 => (list_spec(), at(), 0..=MAX_LIMIT).prop_map(|(list, at, limit)| Step::Start { list, at, limit }),
        4 => (any::<u8>(), 0..=MAX_LIMIT).prop_map(|(which, limit)| Step::Continue { which, limit }),
        1 => (any::<u8>(), prop_oneof![Just(Mismatch::Reversed), Just(Mismatch::Revision)])
            .prop_map(|(which, mismatch)| Step::Misuse { which, mismatch }),
        2 => (0u8..10).prop_map(|back| Step::Compact { back }),
        1 => Just(Step::Reopen),
    ]
}

/// A list the sequence has started: what it asks for, where it is, and how to continue it.
struct OpenList {
    spec: ListSpec,
    revision: Revision,
    token: String,
    /// The last key read: the next chunk starts past it.
    last: Vec<u8>,
}

/// The store under test, its model, and the lists in progress.
struct Harness {
    dir: tempfile::TempDir,
    pins: usize,
    /// `None` only while reopening.
    db: Option<Db>,
    model: Model,
    lists: Vec<OpenList>,
}

fn open(dir: &std::path::Path, pins: usize) -> Db {
    Db::options()
        .retention(Retention::Manual)
        .pinned_snapshots(pins)
        .open(dir.join("store"))
        .expect("the store opens")
}

/// The refusal a failed read must be, or a test failure naming the unexpected error.
fn refusal(error: &Error) -> Result<Refusal, TestCaseError> {
    Refusal::of(error).ok_or_else(|| TestCaseError::fail(format!("unexpected error: {error}")))
}

impl Harness {
    fn new(pins: usize) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let db = Some(open(dir.path(), pins));
        Harness {
            dir,
            pins,
            db,
            model: Model::new(),
            lists: Vec::new(),
        }
    }

    fn run(&mut self, step: Step) -> Result<(), TestCaseError> {
        match step {
            Step::Put { key: k, written } => {
                let revision = self.db().put_with(written.put(k))?;
                self.model.apply_values(&[(key(k), Some(written.value()))]);
                prop_assert_eq!(revision, self.model.revision());
            }
            Step::Delete { key: k } => {
                let (revision, deleted) = self.db().delete(key(k))?;
                prop_assert_eq!(deleted, self.model.apply_values(&[(key(k), None)]));
                prop_assert_eq!(revision, self.model.revision());
            }
            Step::Txn {
                when,
                then,
                otherwise,
            } => self.txn(&when, then, otherwise)?,
            Step::Get { key: k, at } => {
                let revision = at.revision(self.model.revision());
                let got = match at {
                    At::Newest => self.db().get(key(k)),
                    _ => self.db().get_at(key(k), revision),
                };
                let expected = self.model.read(revision).map(|state| state.get(&key(k)));
                match got {
                    Ok(entry) => prop_assert_eq!(Ok(entry.as_ref()), expected),
                    Err(error) => prop_assert_eq!(Some(refusal(&error)?), expected.err()),
                }
            }
            Step::Start { list, at, limit } => self.start(list, at, limit)?,
            Step::Continue { which, limit } => self.continue_list(which, limit)?,
            Step::Misuse { which, mismatch } => self.misuse(which, mismatch)?,
            Step::Compact { back } => {
                let target = At::Back(back).revision(self.model.revision());
                let previous = self.model.compacted();
                let report = self.db().compact(target)?;
                let moved = self.model.compact(target);
                prop_assert_eq!(
                    (report.revision, report.previous, report.already_compacted),
                    (self.model.compacted(), previous, !moved)
                );
            }
            Step::Reopen => {
                // The old handle goes first: it holds the directory's lock.
                drop(self.db.take());
                let db = self.db.insert(open(self.dir.path(), self.pins));
                prop_assert_eq!(db.current_revision(), self.model.revision());
                prop_assert_eq!(db.compacted_revision(), self.model.compacted());
                let report = db.verify()?;
                prop_assert!(report.is_clean(), "{}", report);
            }
        }
        Ok(())
    }

    fn db(&self) -> &Db {
        self.db.as_ref().expect("open between steps")
    }

    fn txn(
        &mut self,
        when: &[Condition],
        then: Vec<Write>,
        otherwise: Vec<Write>,
    ) -> Result<(), TestCaseError> {
        let newest = self.model.revision();
        let txn = Txn::new()
            .when(when.iter().map(|c| c.compare(newest)))
            .then(then.iter().map(|w| w.op()))
            .otherwise(otherwise.iter().map(|w| w.op()));
        let outcome = self.db().txn(txn);
        let named_twice = |branch: &[Write]| {
            (0..branch.len()).any(|i| branch[..i].iter().any(|w| w.key == branch[i].key))
        };
        if named_twice(&then) || named_twice(&otherwise) {
            prop_assert!(
                matches!(outcome, Err(Error::DuplicateKey { .. })),
                "{:?}",
                outcome
            );
            return Ok(());
        }
        let response = outcome?;
        let state = self.model.at(newest);
        let succeeded = when.iter().all(|c| c.holds(state, newest));
        let branch = if succeeded { then } else { otherwise };
        let results: Vec<OpResult> = branch
            .iter()
            .map(|w| match w.put {
                Some(_) => OpResult::Put,
                None => OpResult::Delete {
                    deleted: state.contains_key(&key(w.key)),
                },
            })
            .collect();
        let changes: Vec<_> = branch
            .iter()
            .map(|w| (key(w.key), w.put.map(Written::value)))
            .collect();
        self.model.apply_values(&changes);
        prop_assert_eq!(response.succeeded, succeeded);
        prop_assert_eq!(response.revision, self.model.revision());
        prop_assert_eq!(response.results, results);
        Ok(())
    }

    fn start(&mut self, spec: ListSpec, at: At, limit: u8) -> Result<(), TestCaseError> {
        let revision = at.revision(self.model.revision());
        let mut options = spec.options();
        if !matches!(at, At::Newest) {
            options = options.revision(revision);
        }
        let outcome = self.db().list(&options.limit(usize::from(limit)));
        if limit == 0 {
            prop_assert!(
                matches!(outcome, Err(Error::InvalidRequest { .. })),
                "{:?}",
                outcome
            );
            return Ok(());
        }
        let state = match self.model.read(revision) {
            Ok(state) => state,
            Err(expected) => {
                let error = outcome.expect_err("a refused revision fails");
                prop_assert_eq!(refusal(&error)?, expected);
                prop_assert!(
                    matches!(
                        error,
                        Error::FutureRevision { .. }
                            | Error::Expired {
                                continue_token: None,
                                ..
                            }
                    ),
                    "{:?}",
                    error
                );
                return Ok(());
            }
        };
        let expected = spec.contents(state, None);
        self.chunk(spec, revision, expected, limit, outcome?)
    }

    /// Checks a chunk against `expected`, the rest of the list, and keeps the list open if the
    /// chunk says more remains.
    fn chunk(
        &mut self,
        spec: ListSpec,
        revision: Revision,
        expected: Vec<Entry>,
        limit: u8,
        page: revkv::ListPage,
    ) -> Result<(), TestCaseError> {
        let taken = expected.len().min(usize::from(limit));
        prop_assert_eq!(page.revision, revision);
        prop_assert_eq!(&page.items[..], &expected[..taken]);
        prop_assert_eq!(page.remaining, Some((expected.len() - taken) as u64));
        prop_assert_eq!(page.continue_token.is_some(), taken < expected.len());
        if let Some(token) = page.continue_token {
            self.lists.push(OpenList {
                spec,
                revision,
                token,
                last: expected[taken - 1].key.clone(),
            });
        }
        Ok(())
    }

    fn continue_list(&mut self, which: u8, limit: u8) -> Result<(), TestCaseError> {
        if self.lists.is_empty() {
            return Ok(());
        }
        let mut list = self.lists.remove(usize::from(which) % self.lists.len());
        let options = list.spec.options().continue_token(list.token.clone());
        let outcome = self.db().list(&options.limit(usize::from(limit)));
        if limit == 0 {
            prop_assert!(
                matches!(outcome, Err(Error::InvalidRequest { .. })),
                "{:?}",
                outcome
            );
            self.lists.push(list);
            return Ok(());
        }
        match self.model.read(list.revision) {
            Ok(state) => {
                let expected = list.spec.contents(state, Some(&list.last));
                self.chunk(list.spec, list.revision, expected, limit, outcome?)
            }
            Err(expected) => {
                // Expired: the error carries a token to finish the list at the newest revision.
                let error = outcome.expect_err("a compacted list fails");
                prop_assert_eq!(refusal(&error)?, expected);
                let Error::Expired {
                    continue_token: Some(token),
                    ..
                } = error
                else {
                    return Err(TestCaseError::fail(format!("no token in {error:?}")));
                };
                list.revision = self.model.revision();
                list.token = token;
                self.lists.push(list);
                Ok(())
            }
        }
    }

    fn misuse(&mut self, which: u8, mismatch: Mismatch) -> Result<(), TestCaseError> {
        if self.lists.is_empty() {
            return Ok(());
        }
        let list = &self.lists[usize::from(which) % self.lists.len()];
        let (options, rejection) = match mismatch {
            Mismatch::Reversed => (
                list.spec.options().reverse(!list.spec.reverse),
                TokenRejection::ForeignRequest,
            ),
            Mismatch::Revision => (
                list.spec.options().revision(list.revision.next()),
                TokenRejection::RevisionMismatch,
            ),
        };
        let outcome = self.db().list(&options.continue_token(list.token.clone()));
        prop_assert!(
            matches!(outcome, Err(Error::InvalidContinueToken { reason }) if reason == rejection),
            "{:?}",
            outcome
        );
        Ok(())
    }

    /// Every key at every revision, whole lists at every readable revision, and a clean verify.
    fn check_history(&self) -> Result<(), TestCaseError> {
        for revision in 0..=self.model.revision().get() + 1 {
            let revision = Revision::new(revision);
            let expected = self.model.read(revision);
            for k in 0..KEYS {
                match self.db().get_at(key(k), revision) {
                    Ok(entry) => prop_assert_eq!(
                        Ok(entry.as_ref()),
                        expected.map(|state| state.get(&key(k)))
                    ),
                    Err(error) => prop_assert_eq!(Some(refusal(&error)?), expected.err()),
                }
            }
            if let Ok(state) = expected {
                let whole = ListOptions::all().revision(revision);
                let page = self.db().list(&whole)?;
                prop_assert_eq!(page.items, state.values().cloned().collect::<Vec<_>>());
            }
        }
        let report = self.db().verify()?;
        prop_assert!(report.is_clean(), "{}", report);
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: env_or("REVKV_MODEL_CASES", 64),
        ..ProptestConfig::default()
    })]

    #[test]
    fn every_result_matches_the_model(
        steps in proptest::collection::vec(step(), 1..120),
        pins in 1usize..4,
    ) {
        let mut harness = Harness::new(pins);
        for step in steps {
            harness.run(step)?;
        }
        harness.check_history()?;
    }
}

/// What a writer thread committed: each revision's changes, `None` for a delete.
type WriterLog = Vec<(Revision, Vec<(Vec<u8>, Option<Vec<u8>>)>)>;

/// Writes random transactions until `stop`, logging every revision it committed.
fn writer(db: &Db, seed: u64, stop: &AtomicBool) -> WriterLog {
    let mut rng = rng(seed);
    let mut log = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let mut changes: BTreeMap<Vec<u8>, Option<Vec<u8>>> = BTreeMap::new();
        for _ in 0..rng.random_range(1..4) {
            let key = format!("s/{:02}", rng.random_range(0..40)).into_bytes();
            let value = rng
                .random_bool(0.7)
                .then(|| format!("{seed}:{}", rng.random::<u16>()).into_bytes());
            changes.insert(key, value);
        }
        let ops = changes.iter().map(|(key, value)| match value {
            Some(value) => Op::put(key.clone(), value.clone()),
            None => Op::delete(key.clone()),
        });
        let response = db.txn(Txn::new().then(ops)).expect("a write commits");
        let changed = response
            .results
            .iter()
            .any(|result| *result != OpResult::Delete { deleted: false });
        if changed {
            log.push((response.revision, changes.into_iter().collect()));
        }
    }
    log
}

/// A list a lister thread pages through.
#[derive(Debug)]
struct StressList {
    prefix: &'static str,
    reverse: bool,
}

/// Pages through random lists until `stop`; returns each completed list with its revision and
/// items. A list whose revision is compacted meanwhile is dropped.
fn lister(db: &Db, seed: u64, stop: &AtomicBool) -> Vec<(Revision, StressList, Vec<Entry>)> {
    let mut rng = rng(seed);
    let mut lists = Vec::new();
    'lists: while !stop.load(Ordering::Relaxed) {
        let list = StressList {
            prefix: ["s/", "s/0", "s/1", "s/2"][rng.random_range(0..4)],
            reverse: rng.random_bool(0.5),
        };
        let options = ListOptions::prefix(list.prefix)
            .limit(rng.random_range(1..8))
            .reverse(list.reverse);
        let mut next = options.clone();
        let mut items = Vec::new();
        let mut revision = None;
        loop {
            let page = match db.list(&next) {
                Ok(page) => page,
                Err(error) if error.is_expired() => continue 'lists,
                Err(error) => panic!("a list failed: {error}"),
            };
            assert_eq!(*revision.get_or_insert(page.revision), page.revision);
            items.extend(page.items);
            match page.continue_token {
                Some(token) => next = options.clone().continue_token(token),
                None => break,
            }
        }
        lists.push((revision.expect("one chunk read"), list, items));
    }
    lists
}

#[test]
fn concurrent_writers_and_listers_see_exactly_their_revision() -> revkv::Result<()> {
    let run_for = Duration::from_secs(env_or("REVKV_STRESS_SECS", 2));
    // Two pins for many lists: most continuations rebuild their snapshot from the log while
    // writers append to it.
    let db = Db::options()
        .pinned_snapshots(2)
        .retention(Retention::Manual)
        .temporary()?;
    let stop = AtomicBool::new(false);
    let (logs, lists, verifications) = thread::scope(|scope| {
        let (db, stop) = (&db, &stop);
        let writers: Vec<_> = (0..3)
            .map(|seed| scope.spawn(move || writer(db, seed, stop)))
            .collect();
        let listers: Vec<_> = (10..13)
            .map(|seed| scope.spawn(move || lister(db, seed, stop)))
            .collect();
        let checker = scope.spawn(|| {
            let mut verifications = 0;
            while !stop.load(Ordering::Relaxed) {
                let report = db.verify().expect("verify reads the store");
                assert!(report.is_clean(), "{report}");
                verifications += 1;
                let newest = db.current_revision().get();
                db.compact(Revision::new(newest.saturating_sub(30)))
                    .expect("compaction runs");
                thread::sleep(Duration::from_millis(20));
            }
            verifications
        });
        let started = Instant::now();
        while started.elapsed() < run_for {
            thread::sleep(Duration::from_millis(10));
        }
        stop.store(true, Ordering::Relaxed);
        fn join<T>(handle: thread::ScopedJoinHandle<'_, T>) -> T {
            handle.join().expect("the thread does not panic")
        }
        (
            writers.into_iter().map(join).collect::<Vec<_>>(),
            listers.into_iter().flat_map(join).collect::<Vec<_>>(),
            join(checker),
        )
    });
    let mut log: WriterLog = logs.into_iter().flatten().collect();
    log.sort_by_key(|(revision, _)| *revision);
    let mut model = Model::new();
    for (revision, changes) in &log {
        assert!(
            model.apply(changes),
            "revision {revision} changed something"
        );
        assert_eq!(*revision, model.revision(), "revisions are contiguous");
    }
    assert_eq!(db.current_revision(), model.revision());
    assert!(!lists.is_empty() && verifications > 0);
    for (revision, list, items) in &lists {
        let mut expected: Vec<_> = model
            .at(*revision)
            .values()
            .filter(|entry| entry.key.starts_with(list.prefix.as_bytes()))
            .cloned()
            .collect();
        if list.reverse {
            expected.reverse();
        }
        assert_eq!(items, &expected, "{list:?} at revision {revision}");
    }
    let report = db.verify()?;
    assert!(report.is_clean(), "{report}");
    Ok(())
}
