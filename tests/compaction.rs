//! Compaction ends old revisions with Expired, keeps everything at or above, and resumes.

use std::time::{Duration, Instant};

use revkv::{Db, Error, ListOptions, Retention, Revision};

use crate::common::{
    leave_compaction_unfinished, page_through, unswept_backlog, wait_for_sweep, write_backlog,
    Model, BACKLOG_KEYS,
};

fn manual_store() -> Db {
    Db::options()
        .retention(Retention::Manual)
        .temporary()
        .unwrap()
}

/// Every sled key in the store's tree, to compare on-disk states.
/// The sled keys of a closed store, but for its runs (`b'e'`), which record how often it was
/// opened.
fn sled_keys(path: &std::path::Path) -> Vec<Vec<u8>> {
    let sled = crate::common::raw_sled(path);
    let tree = sled.open_tree("revkv").unwrap();
    tree.iter()
        .keys()
        .map(|k| k.unwrap().to_vec())
        .filter(|key| key[0] != b'e')
        .collect()
}

/// Puts, updates, deletes and re-creates; returns the model of every revision.
fn churn(db: &Db) -> Model {
    let mut model = Model::new();
    let mut write = |key: String, value: Option<String>| {
        let changed = model.apply(&[(
            key.clone().into_bytes(),
            value.clone().map(String::into_bytes),
        )]);
        match value {
            Some(value) => {
                db.put(key, value).unwrap();
            }
            None => {
                assert_eq!(db.delete(key).unwrap().1, changed);
            }
        }
    };
    for round in 0..4 {
        for i in 0..20 {
            write(format!("k/{i:02}"), Some(format!("r{round}")));
        }
        for i in (round..20).step_by(3) {
            write(format!("k/{i:02}"), None);
        }
    }
    model
}

#[test]
fn reads_at_the_compacted_revision_succeed_and_below_it_expire() {
    let db = manual_store();
    let model = churn(&db);
    let compacted = Revision::new(50);
    let report = db.compact(compacted).unwrap();
    assert_eq!(
        (report.revision, report.previous, report.already_compacted),
        (compacted, Revision::ZERO, false)
    );
    assert!(report.removed_records > 0);
    for revision in 50..=model.revision().get() {
        let revision = Revision::new(revision);
        let (items, _) = page_through(
            &db,
            ListOptions::prefix("k/").limit(3).revision(revision),
            |_| {},
        );
        assert_eq!(
            items,
            model.at(revision).values().cloned().collect::<Vec<_>>(),
            "at {revision}"
        );
        for i in 0..20 {
            let key = format!("k/{i:02}");
            assert_eq!(
                db.get_at(&key, revision).unwrap().as_ref(),
                model.at(revision).get(key.as_bytes())
            );
        }
    }
    let below = Revision::new(49);
    let err = db.get_at("k/00", below).unwrap_err();
    assert!(
        matches!(err, Error::Expired { requested, compacted: c, continue_token: None } if requested == below && c == compacted),
        "{err}"
    );
    assert!(db
        .list(&ListOptions::all().revision(below))
        .unwrap_err()
        .is_expired());
}

#[test]
fn compacting_again_at_or_below_is_a_no_op_and_above_current_is_an_error() {
    let db = manual_store();
    churn(&db);
    db.compact(Revision::new(40)).unwrap();
    let again = db.compact(Revision::new(30)).unwrap();
    assert!(again.already_compacted);
    assert_eq!(
        (again.revision, again.removed_records),
        (Revision::new(40), 0)
    );
    let future = db.current_revision().next();
    assert_eq!(db.compact(future).unwrap_err().reason(), "FutureRevision");
}

#[test]
fn a_list_continued_after_compaction_expires_and_offers_an_inconsistent_token() {
    let db = manual_store();
    for i in 0..10 {
        db.put(format!("k/{i}"), "old").unwrap();
    }
    let options = ListOptions::prefix("k/").limit(4);
    let first = db.list(&options).unwrap();
    assert_eq!(first.items.len(), 4);
    db.put("k/9", "new").unwrap();
    db.put("k/0", "new").unwrap();
    db.compact(db.current_revision()).unwrap();
    let token = first.continue_token.unwrap();
    let err = db.list(&options.clone().continue_token(token)).unwrap_err();
    let Error::Expired {
        requested,
        compacted,
        continue_token: Some(inconsistent),
    } = err
    else {
        panic!("expected Expired with a token, got {err:?}");
    };
    assert_eq!(
        (requested, compacted),
        (first.revision, db.current_revision())
    );
    let rest = db
        .list(&options.clone().continue_token(inconsistent).limit(100))
        .unwrap();
    assert_eq!(
        rest.revision,
        db.current_revision(),
        "the rest is read at the newest revision"
    );
    let keys: Vec<_> = rest
        .items
        .iter()
        .map(|e| String::from_utf8_lossy(&e.key).into_owned())
        .collect();
    assert_eq!(keys, ["k/4", "k/5", "k/6", "k/7", "k/8", "k/9"]);
    assert_eq!(rest.items.last().unwrap().value, b"new");
}

#[test]
fn deleted_keys_vanish_from_index_and_disk() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    {
        let db = Db::options()
            .retention(Retention::Manual)
            .open(&path)
            .unwrap();
        db.put("gone", "1").unwrap();
        db.put("gone", "2").unwrap();
        db.delete("gone").unwrap();
        db.put("kept", "1").unwrap();
        db.put("kept", "2").unwrap();
        db.compact(db.current_revision()).unwrap();
        let stat = db.stat().unwrap();
        assert_eq!((stat.live_keys, stat.stored_records), (1, 1));
    }
    let keys = sled_keys(&path);
    assert!(
        !keys.iter().any(|k| k == b"kgone"),
        "the latest pointer of a deleted key is gone"
    );
    let records = keys.iter().filter(|k| k[0] == b'r').count();
    assert_eq!(records, 1, "only kept's newest record survives");
}

#[test]
fn the_second_compaction_only_removes_garbage_made_since_the_first() {
    let db = manual_store();
    for i in 0..100 {
        db.put(format!("k/{i:03}"), "v1").unwrap();
    }
    for i in 0..100 {
        db.put(format!("k/{i:03}"), "v2").unwrap();
    }
    assert_eq!(
        db.compact(db.current_revision()).unwrap().removed_records,
        100
    );
    for i in 0..10 {
        db.put(format!("k/{i:03}"), "v3").unwrap();
    }
    assert_eq!(
        db.compact(db.current_revision()).unwrap().removed_records,
        10
    );
    assert_eq!(db.stat().unwrap().stored_records, 100);
}

#[test]
fn an_interrupted_compaction_is_finished_in_the_background_after_open() {
    let dir = tempfile::tempdir().unwrap();
    let (clean, interrupted) = (dir.path().join("clean"), dir.path().join("interrupted"));
    for path in [&clean, &interrupted] {
        let db = Db::options()
            .retention(Retention::Manual)
            .open(path)
            .unwrap();
        churn(&db);
        db.compact(Revision::new(20)).unwrap();
        // Batches run in revision order, so a crash part-way through compacting at 60 leaves
        // the garbage of (20, 40] deleted, which is what compacting at 40 deletes.
        db.compact(Revision::new(if path == &clean { 60 } else { 40 }))
            .unwrap();
    }
    // The crash came after step 1 of compacting at 60 and before step 3.
    leave_compaction_unfinished(&interrupted, 60, 20);
    {
        let db = Db::options()
            .retention(Retention::Manual)
            .open(&interrupted)
            .unwrap();
        assert_eq!(db.compacted_revision(), Revision::new(60));
        assert_eq!(wait_for_sweep(&db).swept_revision, Revision::new(60));
    }
    assert_eq!(sled_keys(&interrupted), sled_keys(&clean));
}

#[test]
fn revision_retention_compacts_only_outside_its_window() {
    let db = Db::options()
        .retention(Retention::Revisions(5))
        .compaction_interval(Duration::from_millis(5))
        .temporary()
        .unwrap();
    for i in 0..30 {
        db.put(format!("k/{i}"), "v").unwrap();
        assert!(db.compacted_revision().get() + 5 <= db.current_revision().get().max(5));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while db.compacted_revision() != Revision::new(25) {
        assert!(
            Instant::now() < deadline,
            "background compaction did not reach 25"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(db.get_at("k/0", Revision::new(25)).unwrap().is_some());
    assert!(db
        .get_at("k/0", Revision::new(24))
        .unwrap_err()
        .is_expired());
}

#[test]
fn time_retention_keeps_every_revision_committed_within_the_window() {
    let window = Duration::from_millis(400);
    let db = Db::options()
        .retention(Retention::Time(window))
        .compaction_interval(Duration::from_millis(10))
        .temporary()
        .unwrap();
    let old = db.put("k", "old").unwrap();
    std::thread::sleep(window + Duration::from_millis(100));
    let fresh = db.put("k", "fresh").unwrap();
    let written = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(10);
    while db.compacted_revision() < old {
        assert!(
            Instant::now() < deadline,
            "background compaction did not run"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    if written.elapsed() < window {
        assert!(
            db.compacted_revision() < fresh,
            "a revision inside the window was compacted"
        );
    }
    assert_eq!(
        db.get_at("k", db.compacted_revision())
            .unwrap()
            .unwrap()
            .value,
        b"old"
    );
}

#[test]
fn dropping_the_last_handle_stops_the_compactor_so_the_store_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    for _ in 0..3 {
        let db = Db::options()
            .retention(Retention::Revisions(1))
            .compaction_interval(Duration::from_millis(1))
            .open(&path)
            .unwrap();
        let clone = db.clone();
        db.put("k", "v").unwrap();
        drop(db);
        clone.put("k", "w").unwrap();
    }
}

#[test]
fn retention_parses_durations_revisions_and_manual() {
    assert_eq!(
        "90s".parse::<Retention>().unwrap(),
        Retention::Time(Duration::from_secs(90))
    );
    assert_eq!(
        "2h".parse::<Retention>().unwrap(),
        Retention::Time(Duration::from_secs(7200))
    );
    assert_eq!(
        "250ms".parse::<Retention>().unwrap(),
        Retention::Time(Duration::from_millis(250))
    );
    for bad in ["", "5", "m", "5x", "-5m", "99999999999999999999h", "5 m"] {
        assert_eq!(
            bad.parse::<Retention>().unwrap_err().reason(),
            "InvalidRequest",
            "{bad:?}"
        );
    }
}

#[test]
fn open_returns_before_an_unfinished_sweep_which_finishes_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let compacted = unswept_backlog(&path);
    let db = Db::options()
        .retention(Retention::Manual)
        .open(&path)
        .unwrap();
    let stat = db.stat().unwrap();
    assert!(
        stat.swept_revision < compacted && stat.stored_records > BACKLOG_KEYS as u64,
        "open waited for the sweep: {stat:?}"
    );
    // The store serves meanwhile, and what the compaction made unreachable stays so.
    let below = Revision::new(compacted.get() - 1);
    assert!(db.get_at("k/0000", below).unwrap_err().is_expired());
    let (items, _) = page_through(
        &db,
        ListOptions::prefix("k/").limit(300).revision(compacted),
        |_| {},
    );
    assert_eq!(items.len(), BACKLOG_KEYS);
    assert!(items
        .iter()
        .all(|entry| entry.value == b"20" && entry.version == 20));
    db.put("k/0000", "21").unwrap();

    let swept = wait_for_sweep(&db);
    assert_eq!(swept.swept_revision, compacted);
    assert_eq!(swept.stored_records, BACKLOG_KEYS as u64 + 1);
    assert_eq!(
        (
            swept.compaction_skipped_records,
            swept.last_compaction_error
        ),
        (0, None)
    );
    assert!(db.verify().unwrap().is_clean());
}

#[test]
fn a_sweep_cut_short_by_a_close_keeps_its_progress_and_the_next_open_finishes_it() {
    let dir = tempfile::tempdir().unwrap();
    let (clean, closed) = (dir.path().join("clean"), dir.path().join("closed"));
    let compacted = unswept_backlog(&closed);
    write_backlog(&clean);
    Db::options()
        .retention(Retention::Manual)
        .open(&clean)
        .unwrap()
        .compact(compacted)
        .unwrap();
    {
        let db = Db::options()
            .retention(Retention::Manual)
            .open(&closed)
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while db.stat().unwrap().swept_revision == Revision::ZERO {
            assert!(Instant::now() < deadline, "the sweep never started");
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let inspect = || {
        Db::options()
            .retention(Retention::Manual)
            .resume_compaction(false)
            .open(&closed)
            .unwrap()
    };
    let swept = {
        let db = inspect();
        let stat = db.stat().unwrap();
        assert!(
            Revision::ZERO < stat.swept_revision && stat.swept_revision < compacted,
            "the close did not keep a part-way sweep: {stat:?}"
        );
        let report = db.verify().unwrap();
        assert!(report.is_clean(), "{report}");
        assert_eq!(report.swept_revision, stat.swept_revision);
        stat.swept_revision
    };
    assert_eq!(
        inspect().stat().unwrap().swept_revision,
        swept,
        "an open without resuming swept nothing"
    );
    let db = Db::options()
        .retention(Retention::Manual)
        .open(&closed)
        .unwrap();
    assert_eq!(wait_for_sweep(&db).stored_records, BACKLOG_KEYS as u64);
    drop(db);
    assert_eq!(sled_keys(&closed), sled_keys(&clean));
}
