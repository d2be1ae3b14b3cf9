//! Operation sequences against a plain model: puts, deletes, gets at revisions, chunked lists
//! continued across writes, compactions and restarts give exactly the model's results, and the
//! store verifies clean at the end. A compact cousin of `tests/model.rs` for libFuzzer.
//!
//! Input: three bytes per operation, `[op, a, b]`; at most 64 operations.

#![no_main]

use std::collections::BTreeMap;
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use revkv::{Db, Durability, Entry, Error, ListOptions, Retention, Revision};

const KEYS: u8 = 8;

fn key(k: u8) -> Vec<u8> {
    format!("k/{}", k % KEYS).into_bytes()
}

/// Every revision's contents, and the compacted revision.
struct Model {
    states: Vec<BTreeMap<Vec<u8>, Entry>>,
    compacted: Revision,
}

impl Model {
    fn newest(&self) -> Revision {
        Revision::new(self.states.len() as u64 - 1)
    }

    fn back(&self, back: u8) -> Revision {
        Revision::new(self.newest().get().saturating_sub(u64::from(back % 8)))
    }

    /// The contents at `revision`, or `None` when it is compacted.
    fn at(&self, revision: Revision) -> Option<&BTreeMap<Vec<u8>, Entry>> {
        (revision >= self.compacted).then(|| &self.states[revision.get() as usize])
    }

    /// Applies a put (`Some`) or a delete; returns whether it took a revision.
    fn write(&mut self, key: Vec<u8>, value: Option<Vec<u8>>) -> bool {
        let mut next = self.states.last().expect("revision 0 exists").clone();
        let revision = self.newest().next();
        match value {
            Some(value) => {
                let (create_revision, version) = next
                    .get(&key)
                    .map_or((revision, 1), |old| (old.create_revision, old.version + 1));
                let entry = Entry {
                    key: key.clone(),
                    value,
                    create_revision,
                    mod_revision: revision,
                    version,
                    labels: BTreeMap::new(),
                    fields: BTreeMap::new(),
                };
                next.insert(key, entry);
            }
            None if next.remove(&key).is_none() => return false,
            None => {}
        }
        self.states.push(next);
        true
    }
}

/// A list in progress: where it is, and the token to go on.
struct OpenList {
    revision: Revision,
    reverse: bool,
    last: Vec<u8>,
    token: String,
}

fn open(path: &Path) -> Db {
    Db::options()
        .retention(Retention::Manual)
        .durability(Durability::Buffered)
        .pinned_snapshots(2)
        .open(path)
        .expect("the store opens")
}

/// Checks one chunk against the rest of the list in the model; keeps the list if it goes on.
fn check_chunk(
    lists: &mut Vec<OpenList>,
    state: &BTreeMap<Vec<u8>, Entry>,
    revision: Revision,
    reverse: bool,
    after: Option<&[u8]>,
    limit: usize,
    outcome: revkv::Result<revkv::ListPage>,
) {
    let mut rest: Vec<&Entry> = state
        .values()
        .filter(|entry| match after {
            None => true,
            Some(last) if reverse => entry.key.as_slice() < last,
            Some(last) => entry.key.as_slice() > last,
        })
        .collect();
    if reverse {
        rest.reverse();
    }
    let page = outcome.expect("a readable list chunk");
    let taken = rest.len().min(limit);
    assert_eq!(page.revision, revision);
    assert!(page.items.iter().eq(rest[..taken].iter().copied()));
    assert_eq!(page.remaining, Some((rest.len() - taken) as u64));
    if let Some(token) = page.continue_token {
        assert!(taken < rest.len());
        lists.push(OpenList {
            revision,
            reverse,
            last: rest[taken - 1].key.clone(),
            token,
        });
    } else {
        assert_eq!(taken, rest.len());
    }
}

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("store");
    let mut db = open(&path);
    let mut model = Model {
        states: vec![BTreeMap::new()],
        compacted: Revision::ZERO,
    };
    let mut lists: Vec<OpenList> = Vec::new();
    for op in data.chunks_exact(3).take(64) {
        let [op, a, b] = [op[0], op[1], op[2]];
        match op % 8 {
            0 | 1 => {
                let revision = db.put(key(a), [b]).expect("a put");
                assert!(model.write(key(a), Some(vec![b])));
                assert_eq!(revision, model.newest());
            }
            2 => {
                let (revision, deleted) = db.delete(key(a)).expect("a delete");
                assert_eq!(deleted, model.write(key(a), None));
                assert_eq!(revision, model.newest());
            }
            3 => {
                let revision = model.back(b);
                match (db.get_at(key(a), revision), model.at(revision)) {
                    (Ok(entry), Some(state)) => assert_eq!(entry.as_ref(), state.get(&key(a))),
                    (Err(error), None) => assert!(error.is_expired(), "{error}"),
                    (outcome, _) => panic!("get at {revision}: {outcome:?}"),
                }
            }
            4 => {
                let (revision, reverse, limit) =
                    (model.back(b), a & 1 == 1, usize::from(a >> 1) % 4 + 1);
                let options = ListOptions::all()
                    .reverse(reverse)
                    .limit(limit)
                    .revision(revision);
                let outcome = db.list(&options);
                match model.at(revision) {
                    Some(state) => {
                        check_chunk(&mut lists, state, revision, reverse, None, limit, outcome)
                    }
                    None => assert!(outcome.is_err_and(|error| error.is_expired())),
                }
            }
            5 if !lists.is_empty() => {
                let list = lists.remove(usize::from(a) % lists.len());
                let limit = usize::from(b) % 4 + 1;
                let options = ListOptions::all().reverse(list.reverse).limit(limit);
                let outcome = db.list(&options.continue_token(list.token.clone()));
                match model.at(list.revision) {
                    Some(state) => check_chunk(
                        &mut lists,
                        state,
                        list.revision,
                        list.reverse,
                        Some(&list.last),
                        limit,
                        outcome,
                    ),
                    None => match outcome {
                        Err(Error::Expired {
                            continue_token: Some(token),
                            ..
                        }) => lists.push(OpenList {
                            revision: model.newest(),
                            token,
                            ..list
                        }),
                        other => panic!("continuing a compacted list: {other:?}"),
                    },
                }
            }
            6 => {
                let target = model.back(a);
                let report = db.compact(target).expect("a compaction");
                model.compacted = model.compacted.max(target);
                assert_eq!(report.revision, model.compacted);
            }
            7 => {
                db.flush().expect("a flush");
                drop(db);
                db = open(&path);
                assert_eq!(db.current_revision(), model.newest());
                assert_eq!(db.compacted_revision(), model.compacted);
            }
            _ => {}
        }
    }
    let report = db.verify().expect("verify reads the store");
    assert!(report.is_clean(), "{report}");
});
