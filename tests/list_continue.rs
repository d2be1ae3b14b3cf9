//! Chunked lists read one snapshot, whatever is written between their chunks.

use std::thread;
use std::time::Instant;

use revkv::{Db, Entry, Error, ListOptions, Op, Retention, Revision, TokenRejection, Txn};

use crate::common::{manual_store, page_through, temp_store, Model};

fn keys(entries: &[Entry]) -> Vec<String> {
    entries
        .iter()
        .map(|e| String::from_utf8_lossy(&e.key).into_owned())
        .collect()
}

fn load(db: &revkv::Db, model: &mut Model, count: usize) {
    for i in 0..count {
        let key = format!("k/{i:04}").into_bytes();
        db.put(key.clone(), format!("v{i}")).unwrap();
        model.apply(&[(key, Some(format!("v{i}").into_bytes()))]);
    }
}

#[test]
fn writes_before_and_after_the_cursor_do_not_show_up() {
    let db = temp_store(8);
    let mut model = Model::new();
    load(&db, &mut model, 100);
    let mut step = 0;
    let (items, revision) = page_through(&db, ListOptions::prefix("k/").limit(7), |page| {
        // Around the cursor: delete behind it, insert behind it, update and delete ahead of it.
        let behind = page * 7;
        let ahead = (page * 7 + 20).min(99);
        step += 1;
        db.delete(format!("k/{behind:04}")).unwrap();
        db.put(format!("k/{behind:04}a"), "new").unwrap();
        db.put(format!("k/{ahead:04}"), format!("changed {step}"))
            .unwrap();
        db.delete(format!("k/{:04}", (ahead + 1).min(99))).unwrap();
        db.put(format!("k/{ahead:04}z"), "new").unwrap();
    });
    assert_eq!(revision.get(), 100);
    let expected: Vec<Entry> = model.at(revision).values().cloned().collect();
    assert_eq!(items, expected);
}

#[test]
fn a_key_recreated_between_chunks_appears_once_with_its_old_metadata() {
    let db = temp_store(8);
    let mut model = Model::new();
    load(&db, &mut model, 30);
    let (items, revision) = page_through(&db, ListOptions::prefix("k/").limit(10), |page| {
        if page == 0 {
            for key in ["k/0005", "k/0025"] {
                db.delete(key).unwrap();
                db.put(key, "reborn").unwrap();
            }
        }
    });
    assert_eq!(
        items,
        model.at(revision).values().cloned().collect::<Vec<_>>()
    );
    assert_eq!(items.iter().filter(|e| e.key == b"k/0025").count(), 1);
    let after = db.get("k/0025").unwrap().unwrap();
    assert_eq!((after.version, after.value.as_slice()), (1, &b"reborn"[..]));
}

#[test]
fn reverse_lists_descend_and_count_what_remains() {
    let db = temp_store(8);
    let mut model = Model::new();
    load(&db, &mut model, 50);
    let (items, revision) = page_through(
        &db,
        ListOptions::prefix("k/").limit(6).reverse(true),
        |page| {
            db.put(format!("k/{:04}x", 49 - page), "new").unwrap();
        },
    );
    let mut expected: Vec<Entry> = model.at(revision).values().cloned().collect();
    expected.reverse();
    assert_eq!(items, expected);
}

#[test]
fn a_list_at_an_old_revision_sees_that_revision() {
    let db = temp_store(8);
    let mut model = Model::new();
    load(&db, &mut model, 40);
    for i in (0..40).step_by(3) {
        let key = format!("k/{i:04}").into_bytes();
        db.delete(key.clone()).unwrap();
        model.apply(&[(key, None)]);
    }
    for revision in [1u64, 17, 40, 45, model.revision().get()] {
        let revision = Revision::new(revision);
        let (items, read_at) = page_through(
            &db,
            ListOptions::prefix("k/").limit(4).revision(revision),
            |_| {},
        );
        assert_eq!(read_at, revision);
        assert_eq!(
            items,
            model.at(revision).values().cloned().collect::<Vec<_>>(),
            "at {revision}"
        );
    }
}

#[test]
fn an_evicted_snapshot_is_rebuilt_and_the_list_stays_consistent() {
    let db = temp_store(1);
    let mut model = Model::new();
    load(&db, &mut model, 60);
    let first = db.list(&ListOptions::prefix("k/").limit(10)).unwrap();
    let list_revision = first.revision;
    let mut token = first.continue_token.clone();
    let mut items = first.items;
    while let Some(t) = token {
        // Another list pins another revision, evicting ours from the one-entry cache.
        let key = format!("k/{:04}", items.len());
        db.put(key.clone(), "changed").unwrap();
        model.apply(&[(key.into_bytes(), Some(b"changed".to_vec()))]);
        db.list(&ListOptions::prefix("k/").limit(1)).unwrap();
        let page = db
            .list(&ListOptions::prefix("k/").limit(10).continue_token(t))
            .unwrap();
        assert_eq!(page.revision, list_revision);
        items.extend(page.items);
        assert_eq!(page.remaining.unwrap() as usize, 60 - items.len());
        token = page.continue_token;
    }
    assert_eq!(
        items,
        model
            .at(list_revision)
            .values()
            .cloned()
            .collect::<Vec<_>>()
    );
}

#[test]
fn the_token_an_expired_list_carries_continues_the_request_that_names_its_revision() {
    let db = manual_store();
    let mut model = Model::new();
    load(&db, &mut model, 20);
    let started = db.current_revision();
    let options = ListOptions::prefix("k/").limit(5).revision(started);
    let first = db.list(&options).unwrap();
    db.put("k/0007", "after the first chunk").unwrap();
    db.compact(db.current_revision()).unwrap();
    let newest = db.current_revision();
    let expired = db.list(
        &options
            .clone()
            .continue_token(first.continue_token.unwrap()),
    );
    let Err(Error::Expired {
        continue_token: Some(token),
        ..
    }) = expired
    else {
        panic!("the continued list did not expire with a token: {expired:?}");
    };
    // The list's next chunks read the newest revision; the revision the request names is the
    // one the list started at, or the one the token now reads at.
    for named in [started, newest] {
        let mut next = options
            .clone()
            .revision(named)
            .continue_token(token.clone());
        let mut items = Vec::new();
        loop {
            let page = db.list(&next).unwrap();
            assert_eq!(page.revision, newest);
            items.extend(page.items);
            match page.continue_token {
                Some(token) => next = next.continue_token(token),
                None => break,
            }
        }
        let expected: Vec<Entry> = db
            .list(&ListOptions::prefix("k/").start_after("k/0004"))
            .unwrap()
            .items;
        assert_eq!(items, expected, "naming {named}");
    }
    let other = options.revision(Revision::new(1)).continue_token(token);
    assert!(matches!(
        db.list(&other),
        Err(Error::InvalidContinueToken {
            reason: TokenRejection::RevisionMismatch
        })
    ));
}

#[test]
fn a_continued_chunk_that_races_a_compaction_expires_with_a_token() {
    const KEYS: usize = 300;
    let db = Db::options()
        .retention(Retention::Manual)
        .paced_compaction(false)
        .temporary()
        .unwrap();
    let write_all = |value: &str| {
        let puts = (0..KEYS).map(|i| Op::put(format!("k/{i:04}"), value));
        db.txn(Txn::new().then(puts)).unwrap();
    };
    write_all("first");
    // About one round in four races; a few races are enough, a few hundred rounds too many.
    let (mut raced, started) = (0, Instant::now());
    for round in 0..200 {
        if raced == 3 {
            break;
        }
        let options = ListOptions::prefix("k/").limit(1);
        let first = db.list(&options).unwrap();
        let next = options
            .limit(KEYS)
            .continue_token(first.continue_token.unwrap());
        // Every key changed since the list's revision: the chunk reads the records that the
        // compaction removes.
        write_all(&format!("round {round}"));
        let outcome = thread::scope(|scope| {
            let compaction = scope.spawn(|| db.compact(db.current_revision()).unwrap());
            let outcome = db.list(&next);
            compaction.join().unwrap();
            outcome
        });
        match outcome {
            Ok(page) => assert_eq!(page.items.len(), KEYS - 1),
            Err(Error::Expired { continue_token, .. }) => {
                assert!(continue_token.is_some(), "round {round}: no token");
                raced += 1;
            }
            Err(error) => panic!("round {round}: {error}"),
        }
    }
    assert!(raced > 0, "no round raced in {:?}", started.elapsed());
}

#[test]
fn ranges_are_half_open_and_empty_ranges_are_empty() {
    let db = temp_store(4);
    for key in ["a", "b", "c", "d"] {
        db.put(key, "v").unwrap();
    }
    let list = |options: ListOptions| keys(&db.list(&options).unwrap().items);
    assert_eq!(list(ListOptions::range("b", "d")), ["b", "c"]);
    assert_eq!(list(ListOptions::from("c")), ["c", "d"]);
    assert_eq!(list(ListOptions::all().limit(2)), ["a", "b"]);
    assert!(list(ListOptions::range("b", "b")).is_empty());
    assert!(list(ListOptions::prefix("zz")).is_empty());
    let page = db.list(&ListOptions::prefix("a")).unwrap();
    assert_eq!((page.remaining, page.continue_token), (Some(0), None));
}

#[test]
fn inverted_ranges_and_markers_are_invalid_requests() {
    let db = temp_store(4);
    for key in ["k/a", "k/c", "k/x"] {
        db.put(key, "v").unwrap();
    }
    let inverted = [
        ListOptions::range("k/x", "k/c"),
        ListOptions::prefix("k/")
            .start_after("k/x")
            .end_before("k/c"),
        // In reverse, as in Swift, the list starts below `start_after` and ends above
        // `end_before`.
        ListOptions::prefix("k/")
            .start_after("k/c")
            .end_before("k/x")
            .reverse(true),
    ];
    for options in inverted {
        let err = db.list(&options).unwrap_err();
        assert_eq!(err.reason(), "InvalidRequest", "{options:?}: {err}");
    }
    // Empty, but not inverted: equal bounds, and markers that narrow the range to nothing.
    let empty = [
        ListOptions::range("k/c", "k/c"),
        ListOptions::prefix("k/")
            .start_after("k/c")
            .end_before("k/c"),
        ListOptions::prefix("k/").start_after("z"),
        ListOptions::prefix("k/").end_before("z").reverse(true),
        ListOptions::range("k/a", "k/c").start_after("k/x"),
    ];
    for options in empty {
        let page = db.list(&options).unwrap();
        assert!(page.items.is_empty(), "{options:?}");
    }
}

#[test]
fn limits_outside_the_page_size_are_rejected() {
    let db = revkv::Db::options().max_page_size(100).temporary().unwrap();
    for limit in [0, 101] {
        let err = db.list(&ListOptions::all().limit(limit)).unwrap_err();
        assert_eq!(err.reason(), "InvalidRequest", "{err}");
    }
    assert!(db.list(&ListOptions::all().limit(100)).is_ok());
}

#[test]
fn keys_with_arbitrary_bytes_page_correctly() {
    let db = temp_store(4);
    let mut expected = Vec::new();
    for i in 0u8..=255 {
        let key = vec![0xff, i, 0x00, i];
        db.put(key.clone(), vec![i]).unwrap();
        expected.push(key);
    }
    let (items, _) = page_through(&db, ListOptions::prefix([0xff]).limit(9), |_| {});
    assert_eq!(
        items.into_iter().map(|e| e.key).collect::<Vec<_>>(),
        expected
    );
}
