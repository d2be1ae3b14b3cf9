//! Values, keys and labels at their limits: sled never writes a page to a blob file of its own
//! (which it would never fsync), large values come back whole through their parts, and
//! compaction removes the parts of what it removes.

use std::path::Path;

use revkv::{Db, Error, ListOptions, Put, Retention, Revision};

use crate::common::{page_through, with_raw_tree};

fn open(path: &Path) -> Db {
    Db::options()
        .retention(Retention::Manual)
        .open(path)
        .expect("the store opens")
}

/// A value of `len` bytes that differs with `seed` everywhere, so a misplaced part shows.
fn value(len: usize, seed: u64) -> Vec<u8> {
    (0..len as u64)
        .map(|i| (i.wrapping_mul(31) ^ seed.wrapping_mul(0x9e37_79b9)) as u8)
        .collect()
}

fn blob_files(path: &Path) -> usize {
    std::fs::read_dir(path.join("blobs")).map_or(0, |entries| entries.count())
}

fn value_parts(path: &Path) -> usize {
    with_raw_tree(path, |tree| tree.scan_prefix(b"p").count())
}

/// Labels and fields adding up to just under the limit.
fn largest_put(key: Vec<u8>, value: Vec<u8>) -> Put {
    let mut put = Put::new(key, value);
    let mut used = 0;
    for i in 0.. {
        let (name, text) = (format!("f{i:04}"), "x".repeat(250));
        if used + name.len() + text.len() > revkv::MAX_METADATA_LEN {
            break;
        }
        used += name.len() + text.len();
        put = put.field(name, text);
    }
    put.label("app", "web")
}

#[test]
fn values_keys_and_labels_at_their_limits_leave_no_blob_files() -> revkv::Result<()> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path();
    let sizes = [
        0,
        1,
        16 * 1024 - 1,
        16 * 1024,
        16 * 1024 + 1,
        200 * 1024,
        revkv::MAX_VALUE_LEN - 1,
        revkv::MAX_VALUE_LEN,
    ];
    let mut written = Vec::new();
    {
        let db = open(path);
        for round in 0..3u64 {
            for (i, &size) in sizes.iter().enumerate() {
                let mut key = format!("big/{i:02}/").into_bytes();
                key.resize(revkv::MAX_KEY_LEN, b'k');
                let value = value(size, round * 100 + i as u64);
                let revision = db.put_with(largest_put(key.clone(), value.clone()))?;
                written.push((key, value, revision));
            }
        }
        for (key, value, revision) in &written {
            let entry = db.get_at(key, *revision)?.expect("written");
            assert_eq!(entry.value, *value, "at {revision}");
        }
        let page = db.list(&ListOptions::prefix("big/").limit(3))?;
        let newest = &written[written.len() - sizes.len()..];
        for (item, (key, value, _)) in page.items.iter().zip(newest) {
            assert_eq!((&item.key, &item.value), (key, value));
        }
    }
    assert_eq!(blob_files(path), 0, "sled wrote a blob file");
    let db = open(path);
    for (key, value, revision) in &written {
        assert_eq!(db.get_at(key, *revision)?.expect("written").value, *value);
    }
    assert!(db.verify()?.is_clean(), "{:?}", db.verify()?.findings);
    assert_eq!(blob_files(path), 0, "sled wrote a blob file");
    Ok(())
}

#[test]
fn key_order_blocks_of_the_longest_copies_leave_no_blob_files() -> revkv::Result<()> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path();
    {
        let db = open(path);
        // Pairs of a copy just short of a block and one at the longest a block keeps, so
        // that every block is cut as late as it can be.
        for i in 0..400u64 {
            let len = if i % 2 == 0 { 15_000 } else { 16 * 1024 - 600 };
            let mut key = format!("wide/{i:04}/").into_bytes();
            key.resize(400, b'k');
            db.put(key, value(len, i))?;
        }
        for _ in 0..2 {
            // The first pass asks for the blocks; the second reads through them.
            let (items, _) = page_through(&db, ListOptions::prefix("wide/").limit(100), |_| {});
            assert_eq!(items.len(), 400);
            db.settle_blocks()?;
        }
    }
    let longest_block = with_raw_tree(path, |tree| {
        (tree
            .scan_prefix(b"b")
            .map(|item| item.expect("block reads").1.len()))
        .max()
    });
    // Two copies kept, each of almost half the block: the blocks hold copies this long.
    assert!(longest_block > Some(30_000), "{longest_block:?}");
    assert_eq!(blob_files(path), 0, "sled wrote a blob file");
    Ok(())
}

#[test]
fn compaction_removes_the_parts_of_the_values_it_removes() -> revkv::Result<()> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path();
    let large = 3 * 16 * 1024 + 10;
    let newest;
    {
        let db = open(path);
        db.put("a", value(large, 1))?;
        db.put("a", value(large, 2))?;
        db.put("b", value(large, 3))?;
        newest = db.delete("b")?.0;
    }
    assert_eq!(value_parts(path), 3 * 4, "three large values of four parts");
    {
        let db = open(path);
        db.compact(newest)?;
        assert_eq!(db.get("a")?.expect("a is live").value, value(large, 2));
        assert!(db.verify()?.is_clean(), "{:?}", db.verify()?.findings);
    }
    assert_eq!(value_parts(path), 4, "only a's newest value is left");
    Ok(())
}

#[test]
fn labels_and_fields_over_the_limit_are_refused() -> revkv::Result<()> {
    let db = Db::temporary()?;
    let put = largest_put(b"k".to_vec(), b"v".to_vec()).field("one-more", "x".repeat(300));
    let error = db.put_with(put).unwrap_err();
    assert!(
        matches!(error, Error::MetadataTooLarge { len } if len > revkv::MAX_METADATA_LEN),
        "{error}"
    );
    assert_eq!(db.current_revision(), Revision::ZERO, "nothing was written");
    Ok(())
}
