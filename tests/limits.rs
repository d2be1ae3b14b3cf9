//! What one request may cost: the bytes of a page, the bytes of a write, and the values a
//! filtered chunk reads.

use revkv::{Db, Error, ListOptions, Put, Retention};

use crate::common::with_raw_tree;

fn open(path: &std::path::Path) -> Db {
    Db::options()
        .retention(Retention::Manual)
        .open(path)
        .expect("the store opens")
}

/// Every key of `options`' list, page by page, with each page's entry bytes.
fn pages(db: &Db, options: &ListOptions) -> Vec<(Vec<Vec<u8>>, usize)> {
    let mut pages = Vec::new();
    let mut next = options.clone();
    loop {
        let page = db.list(&next).expect("a page");
        let bytes = page.items.iter().map(|e| e.key.len() + e.value.len()).sum();
        pages.push((page.items.into_iter().map(|e| e.key).collect(), bytes));
        match page.continue_token {
            Some(token) => next = options.clone().continue_token(token),
            None => return pages,
        }
    }
}

#[test]
fn a_page_ends_once_its_bytes_reach_the_budget_and_the_list_loses_nothing() -> revkv::Result<()> {
    let db = Db::temporary()?;
    let value_len = |i: usize| 1000 + 3000 * (i % 7);
    for i in 0..200 {
        db.put(format!("big/{i:03}"), vec![b'v'; value_len(i)])?;
    }
    let budget = 20_000;
    let options = ListOptions::prefix("big/")
        .limit(100)
        .max_page_bytes(budget);
    let pages = pages(&db, &options);
    let keys: Vec<Vec<u8>> = pages.iter().flat_map(|(keys, _)| keys.clone()).collect();
    let expected: Vec<Vec<u8>> = (0..200)
        .map(|i| format!("big/{i:03}").into_bytes())
        .collect();
    assert_eq!(keys, expected, "every key once, in order");
    assert!(
        pages.len() > 2,
        "{} pages: the budget ended pages early",
        pages.len()
    );
    for (keys, bytes) in &pages {
        assert!(!keys.is_empty(), "every page progresses");
        let last = keys.last().expect("a page holds an entry");
        let largest = last.len() + value_len(199).max(value_len(6));
        assert!(
            *bytes < budget + largest,
            "a page of {bytes} bytes goes past the budget by more than its last entry"
        );
    }
    Ok(())
}

#[test]
fn a_page_holds_one_entry_even_when_that_entry_alone_is_over_the_budget() -> revkv::Result<()> {
    let db = Db::temporary()?;
    for i in 0..3 {
        db.put(format!("k/{i}"), vec![0u8; 5000])?;
    }
    let options = ListOptions::prefix("k/").max_page_bytes(1);
    let pages = pages(&db, &options);
    assert_eq!(pages.len(), 3);
    assert!(pages.iter().all(|(keys, _)| keys.len() == 1));
    let first = db.list(&options)?;
    assert_eq!(first.remaining, Some(2), "the count stays exact");
    Ok(())
}

#[test]
fn a_filtered_chunk_never_reads_the_values_of_entries_it_drops() -> revkv::Result<()> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let large = 100 * 1024;
    {
        let db = open(dir.path());
        for i in 0..20 {
            let kind = if i % 5 == 0 { "keep" } else { "drop" };
            db.put_with(Put::new(format!("obj/{i:02}"), vec![i as u8; large]).label("kind", kind))?;
        }
    }
    // The parts of every dropped entry's value go missing: reading any of them is corruption.
    with_raw_tree(dir.path(), |tree| {
        let parts: Vec<_> = tree
            .scan_prefix(b"p")
            .keys()
            .map(|k| k.expect("a key"))
            .collect();
        assert!(!parts.is_empty());
        for key in parts {
            let revision = u64::from_be_bytes(key[1..9].try_into().expect("a revision"));
            // Revision r holds object r - 1; objects 0, 5, 10 and 15 are kept.
            if (revision - 1) % 5 != 0 {
                tree.remove(key).expect("sled removes");
            }
        }
    });
    let db = open(dir.path());
    let kept = ListOptions::prefix("obj/").label_selector("kind=keep".parse().expect("a selector"));
    let page = db.list(&kept)?;
    let keys: Vec<_> = page.items.iter().map(|e| e.key.clone()).collect();
    assert_eq!(
        keys,
        [b"obj/00", b"obj/05", b"obj/10", b"obj/15"].map(|k| k.to_vec())
    );
    assert!(page.items.iter().all(|e| e.value.len() == large));
    let unfiltered = db.list(&ListOptions::prefix("obj/")).unwrap_err();
    assert!(
        matches!(unfiltered, Error::Corrupted { .. }),
        "{unfiltered}"
    );
    Ok(())
}

#[test]
fn writes_over_a_limit_are_refused_before_anything_is_written() -> revkv::Result<()> {
    let db = Db::temporary()?;
    let mut many = Put::new("many", "v");
    for i in 0..=revkv::MAX_LABELS {
        many = many.label(format!("l{i}"), "");
    }
    let refused = db.put_with(many).unwrap_err();
    assert!(matches!(refused, Error::TooManyLabels { count } if count == revkv::MAX_LABELS + 1));

    let value = vec![0u8; revkv::MAX_VALUE_LEN];
    let ops_over = revkv::MAX_TXN_BYTES / revkv::MAX_VALUE_LEN + 1;
    let over = revkv::Txn::new()
        .then((0..ops_over).map(|i| revkv::Op::Put(Put::new(format!("t/{i}"), value.clone()))));
    let refused = db.txn(over).unwrap_err();
    assert!(matches!(refused, Error::TxnTooLarge { .. }), "{refused}");
    // The branch that does not run counts too: a request is refused whichever way it goes.
    let hidden = revkv::Txn::new()
        .when([revkv::Compare::absent("nothing")])
        .then([revkv::Op::delete("nothing")])
        .otherwise(
            (0..ops_over).map(|i| revkv::Op::Put(Put::new(format!("t/{i}"), value.clone()))),
        );
    assert!(matches!(db.txn(hidden), Err(Error::TxnTooLarge { .. })));
    assert_eq!(db.current_revision(), revkv::Revision::ZERO);
    assert!(db.list(&ListOptions::all())?.items.is_empty());
    Ok(())
}

#[test]
fn the_largest_put_the_limits_allow_reads_back() -> revkv::Result<()> {
    let db = Db::temporary()?;
    let key = vec![b'k'; revkv::MAX_KEY_LEN];
    let mut put = Put::new(key.clone(), vec![7u8; revkv::MAX_VALUE_LEN]);
    let per_label = revkv::MAX_METADATA_LEN / revkv::MAX_LABELS;
    for i in 0..revkv::MAX_LABELS {
        let name = format!("f{i:04}");
        put = put.field(name.clone(), "x".repeat(per_label - name.len()));
    }
    db.put_with(put)?;
    let entry = db.get(&key)?.expect("the put reads back");
    assert_eq!(entry.fields.len(), revkv::MAX_LABELS);
    assert_eq!(entry.value.len(), revkv::MAX_VALUE_LEN);
    assert_eq!(db.verify()?.findings, []);
    Ok(())
}

#[test]
fn concurrent_transactions_larger_than_a_group_all_commit() -> revkv::Result<()> {
    let db = Db::temporary()?;
    let writers = 12;
    let per_txn = revkv::MAX_TXN_BYTES / revkv::MAX_VALUE_LEN;
    std::thread::scope(|scope| {
        for writer in 0..writers {
            let db = &db;
            scope.spawn(move || {
                let ops = (0..per_txn).map(|i| {
                    let key = format!("w{writer:02}/{i}");
                    revkv::Op::Put(Put::new(key, vec![writer as u8; revkv::MAX_VALUE_LEN - 64]))
                });
                db.txn(revkv::Txn::new().then(ops))
                    .expect("the transaction commits");
            });
        }
    });
    assert_eq!(db.current_revision().get(), writers as u64);
    let listed = db.list(&ListOptions::all().max_page_bytes(usize::MAX))?;
    assert_eq!(listed.items.len(), writers * per_txn);
    assert!(listed.items.iter().all(|e| e
        .value
        .iter()
        .all(|&b| format!("w{b:02}/").as_bytes() == &e.key[..4])));
    Ok(())
}

#[test]
fn only_lists_with_chunks_left_pin_their_snapshot() -> revkv::Result<()> {
    let db = Db::temporary()?;
    for i in 0..10 {
        db.put(format!("k/{i}"), "v")?;
    }
    let old = db.current_revision();
    for i in 0..10 {
        db.put(format!("k/{i}"), "newer")?;
    }
    let whole = db.list(&ListOptions::prefix("k/").revision(old))?;
    assert_eq!(whole.items.len(), 10);
    assert!(whole.items.iter().all(|e| e.value == b"v"));
    assert_eq!(
        db.stat()?.pinned_snapshots,
        0,
        "a list read in one chunk pins nothing"
    );

    let first = db.list(&ListOptions::prefix("k/").revision(old).limit(4))?;
    let stat = db.stat()?;
    assert_eq!(stat.pinned_snapshots, 1);
    assert!(stat.pinned_bytes > 0, "a view ten changes old holds memory");
    let token = first.continue_token.expect("chunks left");
    let second = db.list(&ListOptions::prefix("k/").limit(4).continue_token(token))?;
    assert_eq!(second.revision, old);
    Ok(())
}

#[test]
fn snapshots_stay_within_their_memory_budget() -> revkv::Result<()> {
    let budget = 64 * 1024;
    let db = Db::options().pinned_bytes(budget).temporary()?;
    for i in 0..2_000 {
        db.put(format!("k/{i:05}"), "v")?;
    }
    let mut tokens = Vec::new();
    for back in (1..=40u64).map(|step| step * 40) {
        let revision = revkv::Revision::new(db.current_revision().get() - back);
        let page = db.list(&ListOptions::prefix("k/").revision(revision).limit(10))?;
        tokens.push((revision, page.continue_token.expect("chunks left")));
        assert!(db.stat()?.pinned_bytes <= budget as u64);
    }
    // Every list continues at its own revision, whether its view was kept or is rebuilt.
    for (revision, token) in tokens {
        let page = db.list(&ListOptions::prefix("k/").limit(10).continue_token(token))?;
        assert_eq!(page.revision, revision);
        let expected = (revision.get() as usize).min(2_000);
        assert_eq!(page.remaining, Some((expected - 20) as u64));
        assert!(db.stat()?.pinned_bytes <= budget as u64);
    }
    Ok(())
}
