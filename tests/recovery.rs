//! Reopening a store gives back every revision, every key's metadata and every open list.

use revkv::{Db, Error, ListOptions, Revision};

use crate::common::{page_through, raw_key, with_raw_tree};

fn record_key(revision: u64) -> Vec<u8> {
    let mut key = vec![b'r'];
    key.extend_from_slice(&revision.to_be_bytes());
    key.extend_from_slice(&0u32.to_be_bytes());
    key
}

/// Rewrites a stored sled value behind revkv's back, as a disk fault would.
fn damage(path: &std::path::Path, sled_key: &[u8], change: impl FnOnce(&mut Vec<u8>)) {
    let sled = crate::common::raw_sled(path);
    let tree = sled.open_tree("revkv").unwrap();
    let mut bytes = tree.get(sled_key).unwrap().expect("entry exists").to_vec();
    change(&mut bytes);
    tree.insert(sled_key, bytes).unwrap();
    sled.flush().unwrap();
}

#[test]
fn reopening_keeps_revisions_metadata_and_history() -> revkv::Result<()> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    {
        let db = Db::open(&path)?;
        db.put("a", "1")?;
        db.put("a", "2")?;
        db.put("b", "1")?;
        db.delete("b")?;
    }
    {
        let db = Db::open(&path)?;
        assert_eq!(db.current_revision().get(), 4);
        let a = db.get("a")?.expect("a survives");
        assert_eq!(
            (
                a.value.as_slice(),
                a.create_revision.get(),
                a.mod_revision.get(),
                a.version
            ),
            (&b"2"[..], 1, 2, 2)
        );
        assert_eq!(db.get("b")?, None);
        assert_eq!(
            db.get_at("b", Revision::new(3))?
                .expect("b lived at 3")
                .value,
            b"1"
        );
        assert_eq!(
            db.get_at("a", Revision::new(1))?.expect("a at 1").value,
            b"1"
        );
        // The next write chains to the history found on disk.
        assert_eq!(db.put("b", "again")?.get(), 5);
        assert_eq!(db.get_at("b", Revision::new(4))?, None);
    }
    Ok(())
}

/// The entries of the closed store at `path` whose sled keys start with `prefix` and hold a
/// revision past `head` right after it.
fn entries_past(path: &std::path::Path, prefix: u8, head: u64) -> usize {
    with_raw_tree(path, |tree| {
        tree.scan_prefix([prefix])
            .keys()
            .filter(|key| {
                let key = key.as_ref().expect("sled reads");
                u64::from_be_bytes(key[1..9].try_into().expect("a revision")) > head
            })
            .count()
    })
}

#[test]
fn revisions_a_crash_left_without_commit_times_are_rolled_back() -> revkv::Result<()> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let large = vec![7u8; 40 * 1024];
    {
        let db = Db::open(&path)?;
        db.put("a", "1")?;
        db.put("b", "1")?;
        db.put("a", "2")?;
        // Revisions 4 to 7: what the crash cuts short.
        db.delete("b")?;
        db.put("c", large.clone())?;
        db.put("a", "3")?;
        db.put("b", "2")?;
    }
    assert!(
        entries_past(&path, b'p', 3) > 0,
        "c's value is stored in parts"
    );
    // A group writes records, then latest pointers, then commit times: a crash after the
    // pointers, or after some of them, leaves this.
    with_raw_tree(&path, |tree| {
        for revision in 4..=7 {
            tree.remove(raw_key::commit_time(revision)).unwrap();
        }
        tree.remove(raw_key::latest("c")).unwrap();
    });
    for _ in 0..2 {
        let db = Db::open(&path)?;
        assert_eq!(db.current_revision().get(), 3);
        let a = db.get("a")?.expect("a is live");
        assert_eq!(
            (a.value.as_slice(), a.mod_revision.get(), a.version),
            (&b"2"[..], 3, 2)
        );
        let b = db.get("b")?.expect("b's delete was rolled back");
        assert_eq!((b.value.as_slice(), b.mod_revision.get()), (&b"1"[..], 2));
        assert_eq!(db.get("c")?, None);
        let keys: Vec<Vec<u8>> = page_through(&db, ListOptions::prefix("").limit(1), |_| ())
            .0
            .into_iter()
            .map(|entry| entry.key)
            .collect();
        assert_eq!(keys, [b"a".to_vec(), b"b".to_vec()]);
        let report = db.verify()?;
        assert!(report.is_clean(), "{:?}", report.findings);
    }
    assert_eq!(
        entries_past(&path, b'r', 3),
        0,
        "the records past 3 are gone"
    );
    assert_eq!(
        entries_past(&path, b'p', 3),
        0,
        "the value parts past 3 are gone"
    );
    let db = Db::open(&path)?;
    let revision = db.put("a", "4")?;
    let a = db.get("a")?.expect("a is live");
    assert_eq!((a.version, a.create_revision.get()), (3, 1));
    assert_eq!(
        db.get_at("a", Revision::new(3))?.expect("a at 3").value,
        b"2"
    );
    assert!(revision.get() > 3);
    Ok(())
}

#[test]
fn a_rolled_back_pointer_whose_record_is_gone_is_found_again_from_the_log() -> revkv::Result<()> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    {
        let db = Db::open(&path)?;
        db.put("a", "1")?;
        db.put("a", "2")?;
        db.put("a", "3")?;
    }
    // Revision 3 lost its commit time and, beyond what a crash leaves, its record: its
    // pointer cannot be followed back, so the open sets it to a's newest change in the log.
    with_raw_tree(&path, |tree| {
        tree.remove(raw_key::commit_time(3)).unwrap();
        tree.remove(raw_key::record(3, 0)).unwrap();
    });
    let db = Db::open(&path)?;
    assert_eq!(db.current_revision().get(), 2);
    let a = db.get("a")?.expect("a is live");
    assert_eq!(
        (a.value.as_slice(), a.mod_revision.get(), a.version),
        (&b"2"[..], 2, 2)
    );
    let report = db.verify()?;
    assert!(report.is_clean(), "{:?}", report.findings);
    let revision = db.put("a", "4")?;
    let a = db.get("a")?.expect("a is live");
    assert_eq!((a.mod_revision, a.version), (revision, 3));
    Ok(())
}

#[test]
fn a_list_started_before_a_restart_continues_after_it() -> revkv::Result<()> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let (first, expected) = {
        let db = Db::open(&path)?;
        for i in 0..50 {
            db.put(format!("k/{i:03}"), format!("{i}"))?;
        }
        let first = db.list(&ListOptions::prefix("k/").limit(10))?;
        let (expected, _) = page_through(&db, ListOptions::prefix("k/").limit(50), |_| {});
        for i in 0..50 {
            db.put(format!("k/{i:03}"), "after the list started")?;
        }
        db.delete("k/030")?;
        (first, expected)
    };
    let db = Db::open(&path)?;
    let mut items = first.items;
    let mut token = first.continue_token;
    while let Some(t) = token {
        let page = db.list(&ListOptions::prefix("k/").limit(10).continue_token(t))?;
        assert_eq!(page.revision, first.revision);
        items.extend(page.items);
        token = page.continue_token;
    }
    assert_eq!(items, expected);
    Ok(())
}

#[test]
fn a_damaged_record_is_a_corrupted_error_naming_its_revision() -> revkv::Result<()> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    {
        let db = Db::open(&path)?;
        db.put("a", "first")?;
        db.put("b", "second")?;
    }
    damage(&path, &record_key(1), |bytes| {
        let last = bytes.len() - 1;
        bytes[last] ^= 0x40;
    });
    let db = Db::open(&path)?;
    let err = db.get("a").unwrap_err();
    assert!(matches!(err, Error::Corrupted { .. }), "{err}");
    assert!(err.to_string().contains("revision 1"), "{err}");
    assert_eq!(db.get("b")?.expect("undamaged").value, b"second");
    // A list reads the copy in the latest pointer of a key unchanged since its revision.
    assert_eq!(db.list(&ListOptions::all())?.items.len(), 2);
    assert!(db.verify()?.finding_count() > 0);
    Ok(())
}

#[test]
fn a_damaged_record_copy_in_a_latest_pointer_is_read_from_the_record() -> revkv::Result<()> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    {
        let db = Db::open(&path)?;
        db.put("a", "first")?;
        db.put("b", "second")?;
    }
    damage(&path, b"ka", |bytes| {
        let last = bytes.len() - 1;
        bytes[last] ^= 0x40;
    });
    let db = Db::open(&path)?;
    assert_eq!(db.stat()?.damaged_pointers, 1);
    assert_eq!(db.get("a")?.expect("found again").value, b"first");
    let values: Vec<_> = (db.list(&ListOptions::all())?.items.into_iter())
        .map(|entry| entry.value)
        .collect();
    assert_eq!(values, [b"first".to_vec(), b"second".to_vec()]);
    let report = db.verify()?;
    assert_eq!(report.finding_count(), 1, "{report}");
    assert!(report.to_string().contains("key \"a\""), "{report}");
    Ok(())
}

#[test]
fn a_truncated_latest_pointer_loses_neither_the_key_nor_the_open() -> revkv::Result<()> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    {
        let db = Db::open(&path)?;
        db.put("a", "1")?;
        db.put("gone", "1")?;
        db.delete("gone")?;
    }
    damage(&path, b"ka", |bytes| bytes.truncate(5));
    damage(&path, b"kgone", |bytes| bytes.truncate(5));
    let db = Db::open(&path)?;
    assert_eq!(db.stat()?.damaged_pointers, 2);
    assert_eq!(db.get("a")?.expect("found again").value, b"1");
    assert_eq!(db.get("gone")?, None, "a deleted key stays deleted");
    assert_eq!(db.list(&ListOptions::all())?.items.len(), 1);
    Ok(())
}

#[test]
fn a_store_of_another_format_is_refused() -> revkv::Result<()> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    Db::open(&path)?.put("a", "1")?;
    {
        let sled = crate::common::raw_sled(&path);
        let tree = sled.open_tree("revkv").unwrap();
        let payload = 99u64.to_be_bytes();
        let mut sealed = crc32fast::hash(&payload).to_be_bytes().to_vec();
        sealed.extend_from_slice(&payload);
        tree.insert(b"mformat_version", sealed).unwrap();
        sled.flush().unwrap();
    }
    let err = Db::open(&path).unwrap_err();
    assert!(
        matches!(
            err,
            Error::UnsupportedFormat {
                found: 99,
                supported: 2
            }
        ),
        "{err}"
    );
    Ok(())
}
