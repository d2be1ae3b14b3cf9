//! Concurrent transactions commit in groups, each still its own revision: a transaction must
//! see the changes of the transactions staged before it in the same group.

use std::collections::BTreeMap;
use std::sync::{Arc, Barrier};
use std::thread;

use revkv::{Cmp, Compare, Db, Op, Revision, Txn};

const THREADS: usize = 4;

/// A durable store on disk: its flushes take long enough for transactions to queue up behind
/// them and commit as groups.
fn durable_store() -> (tempfile::TempDir, Db) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let db = Db::open(dir.path()).expect("open");
    (dir, db)
}

/// Runs `work(thread number)` on every thread at once and collects what each returns.
fn on_threads<T: Send + 'static>(
    db: &Db,
    work: impl Fn(&Db, usize) -> T + Send + Sync + 'static,
) -> Vec<T> {
    let work = Arc::new(work);
    let start = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|number| {
            let (db, work, start) = (db.clone(), Arc::clone(&work), Arc::clone(&start));
            thread::spawn(move || {
                start.wait();
                work(&db, number)
            })
        })
        .collect();
    handles
        .into_iter()
        .map(|handle| handle.join().expect("worker"))
        .collect()
}

#[test]
fn compare_and_swap_increments_lose_no_update() -> revkv::Result<()> {
    const INCREMENTS: u64 = 60;
    let (_dir, db) = durable_store();
    db.put("counter", "0")?;
    let conflicts: Vec<u64> = on_threads(&db, |db, _| {
        let mut conflicts = 0;
        let mut done = 0;
        while done < INCREMENTS {
            let seen = db.get("counter").expect("get").expect("counter exists");
            let count: u64 = String::from_utf8_lossy(&seen.value)
                .parse()
                .expect("number");
            let swap = Txn::new()
                .when([Compare::mod_revision(
                    "counter",
                    Cmp::Equal,
                    seen.mod_revision,
                )])
                .then([Op::put("counter", (count + 1).to_string())]);
            if db.txn(swap).expect("txn").succeeded {
                done += 1;
            } else {
                conflicts += 1;
            }
        }
        conflicts
    });
    let counter = db.get("counter")?.expect("counter exists");
    let total = INCREMENTS * THREADS as u64;
    assert_eq!(counter.value, total.to_string().into_bytes());
    assert_eq!(counter.version, total + 1);
    assert_eq!(counter.create_revision, Revision::new(1));
    assert_eq!(counter.mod_revision, db.current_revision());
    assert!(
        conflicts.iter().sum::<u64>() > 0 || db.current_revision().get() == total + 1,
        "failed swaps take no revision"
    );
    Ok(())
}

/// One committed change: the key and its value, `None` for a delete.
type Change = (String, Option<String>);

#[test]
fn deletes_and_recreates_of_shared_keys_keep_every_revision_readable() -> revkv::Result<()> {
    const KEYS: usize = 3;
    const OPS: usize = 80;
    let (_dir, db) = durable_store();
    let committed: Vec<Vec<(Revision, Change)>> = on_threads(&db, |db, number| {
        let mut committed = Vec::new();
        for step in 0..OPS {
            let key = format!("shared/{}", (number + step) % KEYS);
            if step % 4 == 3 {
                let (revision, deleted) = db.delete(key.clone()).expect("delete");
                if deleted {
                    committed.push((revision, (key, None)));
                }
            } else {
                let value = format!("{number}-{step}");
                let revision = db.put(key.clone(), value.clone()).expect("put");
                committed.push((revision, (key, Some(value))));
            }
        }
        committed
    });
    let history: BTreeMap<Revision, Change> = committed.into_iter().flatten().collect();
    let head = db.current_revision();
    assert_eq!(
        history.keys().copied().collect::<Vec<_>>(),
        (1..=head.get()).map(Revision::new).collect::<Vec<_>>(),
        "every change took its own revision, with no gaps"
    );

    // Replay the changes in revision order; every key at every revision must read back as the
    // replay says, with the create revision and version a single writer would have produced.
    let mut model: BTreeMap<String, (String, Revision, u64)> = BTreeMap::new();
    for (&revision, (key, value)) in &history {
        match value {
            Some(value) => {
                let (create, version) = match model.get(key) {
                    Some((_, create, version)) => (*create, version + 1),
                    None => (revision, 1),
                };
                model.insert(key.clone(), (value.clone(), create, version));
            }
            None => {
                model.remove(key);
            }
        }
        for number in 0..KEYS {
            let key = format!("shared/{number}");
            let read = db.get_at(&key, revision)?;
            match (model.get(&key), read) {
                (None, None) => {}
                (Some((value, create, version)), Some(entry)) => {
                    assert_eq!(entry.value, value.as_bytes(), "{key} at {revision}");
                    assert_eq!(entry.create_revision, *create, "{key} at {revision}");
                    assert_eq!(entry.version, *version, "{key} at {revision}");
                }
                (expected, read) => panic!("{key} at {revision}: {expected:?} != {read:?}"),
            }
        }
    }
    assert!(db.verify()?.findings.is_empty());
    Ok(())
}
