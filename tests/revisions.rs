//! Revisions and per-key metadata of puts, deletes and transactions.

use revkv::{Cmp, Compare, Error, Op, OpResult, Revision, Txn};

use crate::common::temp_store;

#[test]
fn first_write_is_revision_one_and_each_write_takes_the_next() -> revkv::Result<()> {
    let db = temp_store(4);
    assert_eq!(db.current_revision(), Revision::ZERO);
    assert_eq!(db.put("a", "1")?.get(), 1);
    assert_eq!(db.put("b", "1")?.get(), 2);
    assert_eq!(db.delete("a")?, (Revision::new(3), true));
    let response =
        db.txn(Txn::new().then([Op::put("c", "1"), Op::put("d", "1"), Op::delete("b")]))?;
    assert_eq!(response.revision.get(), 4);
    assert_eq!(db.current_revision().get(), 4);
    Ok(())
}

#[test]
fn keys_carry_create_revision_mod_revision_and_version() -> revkv::Result<()> {
    let db = temp_store(4);
    let created = db.put("k", "v1")?;
    let updated = db.put("k", "v2")?;
    let entry = db.get("k")?.expect("live");
    assert_eq!(
        (entry.create_revision, entry.mod_revision, entry.version),
        (created, updated, 2)
    );
    db.delete("k")?;
    assert_eq!(db.get("k")?, None);
    let recreated = db.put("k", "v3")?;
    let entry = db.get("k")?.expect("live again");
    assert_eq!(
        (entry.create_revision, entry.mod_revision, entry.version),
        (recreated, recreated, 1)
    );
    Ok(())
}

#[test]
fn deleting_a_missing_key_takes_no_revision() -> revkv::Result<()> {
    let db = temp_store(4);
    db.put("a", "1")?;
    assert_eq!(db.delete("nope")?, (Revision::new(1), false));
    assert_eq!(db.current_revision().get(), 1);
    Ok(())
}

#[test]
fn historical_gets_see_each_revision_across_deletes_and_recreates() -> revkv::Result<()> {
    let db = temp_store(4);
    let r1 = db.put("k", "v1")?;
    let r2 = db.put("k", "v2")?;
    let (r3, _) = db.delete("k")?;
    let r4 = db.put("k", "v4")?;
    let (r5, _) = db.delete("k")?;
    let value = |r| db.get_at("k", r).map(|e| e.map(|e| e.value));
    assert_eq!(value(r1)?, Some(b"v1".to_vec()));
    assert_eq!(value(r2)?, Some(b"v2".to_vec()));
    assert_eq!(value(r3)?, None);
    assert_eq!(value(r4)?, Some(b"v4".to_vec()));
    assert_eq!(value(r5)?, None);
    assert_eq!(db.get_at("k", Revision::ZERO)?, None);
    assert_eq!(db.get_at("k", r4)?.expect("live at r4").create_revision, r4);
    Ok(())
}

#[test]
fn reads_above_the_current_revision_are_future_revision_errors() -> revkv::Result<()> {
    let db = temp_store(4);
    db.put("a", "1")?;
    let err = db.get_at("a", Revision::new(2)).unwrap_err();
    assert!(
        matches!(err, Error::FutureRevision { requested, current }
        if requested.get() == 2 && current.get() == 1),
        "{err}"
    );
    let err = db
        .list(&revkv::ListOptions::all().revision(Revision::new(9)))
        .unwrap_err();
    assert_eq!(err.reason(), "FutureRevision");
    Ok(())
}

#[test]
fn transaction_compares_choose_the_branch() -> revkv::Result<()> {
    let db = temp_store(4);
    let r1 = db.put("k", "v1")?;
    db.put("k", "v2")?;
    let cases = [
        (Compare::mod_revision("k", Cmp::Greater, r1), true),
        (Compare::mod_revision("k", Cmp::Equal, r1), false),
        (Compare::create_revision("k", Cmp::Equal, r1), true),
        (Compare::version("k", Cmp::Equal, 2), true),
        (Compare::version("k", Cmp::Less, 2), false),
        (Compare::value("k", Cmp::Equal, "v2"), true),
        (Compare::value("k", Cmp::NotEqual, "v2"), false),
        (Compare::value("missing", Cmp::NotEqual, "x"), false),
        (Compare::version("missing", Cmp::Equal, 0), true),
        (Compare::absent("missing"), true),
        (Compare::absent("k"), false),
    ];
    for (compare, expected) in cases {
        let before = db.current_revision();
        let response = db.txn(
            Txn::new()
                .when([compare.clone()])
                .then([Op::put("then", "x")])
                .otherwise([Op::put("else", "x")]),
        )?;
        assert_eq!(response.succeeded, expected, "{compare:?}");
        assert_eq!(response.revision, before.next(), "{compare:?}");
        assert_eq!(response.results, vec![OpResult::Put]);
    }
    Ok(())
}

#[test]
fn a_transaction_commits_atomically_as_one_revision() -> revkv::Result<()> {
    let db = temp_store(4);
    db.put("a", "1")?;
    let response =
        db.txn(Txn::new().then([Op::put("b", "2"), Op::delete("a"), Op::delete("zz")]))?;
    assert_eq!(
        response.results,
        vec![
            OpResult::Put,
            OpResult::Delete { deleted: true },
            OpResult::Delete { deleted: false }
        ]
    );
    let b = db.get("b")?.expect("written");
    assert_eq!(b.mod_revision, response.revision);
    assert_eq!(db.get_at("a", response.revision)?, None);
    assert!(db.get_at("a", Revision::new(1))?.is_some());
    Ok(())
}

#[test]
fn bad_writes_are_typed_errors_and_change_nothing() -> revkv::Result<()> {
    let db = temp_store(4);
    db.put("a", "1")?;
    let cases: Vec<(Txn, &str)> = vec![
        (Txn::new().then([Op::put("", "x")]), "EmptyKey"),
        (
            Txn::new().then([Op::put(vec![b'k'; revkv::MAX_KEY_LEN + 1], "x")]),
            "KeyTooLarge",
        ),
        (
            Txn::new().then([Op::put("k", vec![0; revkv::MAX_VALUE_LEN + 1])]),
            "ValueTooLarge",
        ),
        (
            Txn::new().then([Op::put("k", "1"), Op::delete("k")]),
            "DuplicateKey",
        ),
        (
            Txn::new()
                .then([Op::put("ok", "1")])
                .otherwise([Op::put("", "x")]),
            "EmptyKey",
        ),
        (
            Txn::new().then(vec![Op::put("k", "1"); revkv::MAX_TXN_OPS + 1]),
            "TooManyOperations",
        ),
    ];
    for (txn, reason) in cases {
        let err = db.txn(txn).unwrap_err();
        assert_eq!(err.reason(), reason, "{err}");
    }
    assert_eq!(db.current_revision().get(), 1);
    Ok(())
}

#[test]
fn concurrent_writers_get_distinct_contiguous_revisions() -> revkv::Result<()> {
    let db = revkv::Db::temporary()?;
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let db = db.clone();
            std::thread::spawn(move || {
                (0..50)
                    .map(|i| db.put(format!("t{t}/{i}"), "v").expect("put").get())
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut revisions: Vec<u64> = handles
        .into_iter()
        .flat_map(|h| h.join().expect("writer"))
        .collect();
    revisions.sort_unstable();
    assert_eq!(revisions, (1..=200).collect::<Vec<_>>());
    assert_eq!(db.current_revision().get(), 200);
    Ok(())
}
