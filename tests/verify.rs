//! `Db::verify`: a healthy store verifies clean, and each broken invariant
//! is reported where it is broken, including damage that no read notices. Each case edits the
//! closed store's sled tree the way a bug could (every value with a valid checksum); damaged
//! bytes themselves are `corruption.rs`'s subject.

use std::path::{Path, PathBuf};

use revkv::{Check, Db, Retention, Revision, VerifyReport};

use crate::common::{latest_pointer, raw_key, sealed_u64, with_raw_tree, write_sample_history};

fn open(path: &Path) -> revkv::Result<Db> {
    Db::options().retention(Retention::Manual).open(path)
}

/// A store holding the sample history, closed, in a directory that lives as long as the result.
fn sample_store() -> revkv::Result<(tempfile::TempDir, PathBuf)> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("store");
    write_sample_history(&open(&path)?)?;
    Ok((dir, path))
}

/// The report on the sample store after `edit` changed its sled tree.
fn verify_after(edit: impl FnOnce(&sled::Tree)) -> revkv::Result<VerifyReport> {
    let (_dir, path) = sample_store()?;
    with_raw_tree(&path, edit);
    open(&path)?.verify()
}

/// Asserts that `report` has a finding of `check` at `location`.
fn assert_found(report: &VerifyReport, check: Check, location: &str) {
    assert!(
        report
            .findings
            .iter()
            .any(|finding| finding.check == check && finding.location == location),
        "no {} finding at {location}: {report}",
        check.name()
    );
}

#[test]
fn a_store_with_history_deletes_and_compactions_verifies_clean() -> revkv::Result<()> {
    let (_dir, path) = sample_store()?;
    let db = open(&path)?;
    let report = db.verify()?;
    assert!(report.is_clean(), "{report}");
    assert_eq!(
        (
            report.revision,
            report.compacted_revision,
            report.live_keys,
            report.latest_pointers,
            report.records,
            report.commit_times
        ),
        (Revision::new(8), Revision::new(2), 5, 6, 8, 7),
        "live a, c, d, e, f; b's tombstone and its pointer; a=2 and a=3; commit times 2 to 8"
    );
    db.compact(Revision::new(8))?;
    db.put("b", "again")?;
    let report = db.verify()?;
    assert!(report.is_clean(), "{report}");
    assert_eq!((report.records, report.latest_pointers), (6, 6));
    Ok(())
}

#[test]
fn a_lost_record_of_a_live_key_is_found() -> revkv::Result<()> {
    let report = verify_after(|tree| {
        tree.remove(raw_key::record(3, 0)).expect("sled writes");
    })?;
    assert_found(
        &report,
        Check::LatestPointers,
        "latest pointer of key \"a\"",
    );
    assert_found(&report, Check::Revisions, "revision 3");
    Ok(())
}

#[test]
fn a_lost_latest_pointer_is_found_though_reads_only_miss_the_key() -> revkv::Result<()> {
    let (_dir, path) = sample_store()?;
    with_raw_tree(&path, |tree| {
        tree.remove(raw_key::latest("a")).expect("sled writes");
    });
    let db = open(&path)?;
    assert_eq!(db.get("a")?, None, "the key is gone without an error");
    assert_found(&db.verify()?, Check::History, "revision 3 (change 0)");
    Ok(())
}

#[test]
fn a_lost_commit_time_breaks_contiguity() -> revkv::Result<()> {
    let report = verify_after(|tree| {
        tree.remove(raw_key::commit_time(4)).expect("sled writes");
    })?;
    assert_found(&report, Check::Revisions, "revision 4");
    Ok(())
}

#[test]
fn a_commit_time_earlier_than_the_one_before_it_is_found() -> revkv::Result<()> {
    let report = verify_after(|tree| {
        tree.insert(raw_key::commit_time(5), sealed_u64(0))
            .expect("sled writes");
    })?;
    assert_found(&report, Check::CommitTimes, "commit time of revision 5");
    Ok(())
}

#[test]
fn a_latest_pointer_to_another_keys_record_is_found() -> revkv::Result<()> {
    let report = verify_after(|tree| {
        tree.insert(raw_key::latest("a"), latest_pointer(tree, 6, 0, true))
            .expect("sled writes");
    })?;
    assert_found(
        &report,
        Check::LatestPointers,
        "latest pointer of key \"a\"",
    );
    assert_found(&report, Check::History, "revision 3 (change 0)");
    Ok(())
}

#[test]
fn a_latest_pointer_that_calls_a_tombstone_live_is_found() -> revkv::Result<()> {
    let report = verify_after(|tree| {
        tree.insert(raw_key::latest("b"), latest_pointer(tree, 5, 0, true))
            .expect("sled writes");
    })?;
    assert_found(
        &report,
        Check::LatestPointers,
        "latest pointer of key \"b\"",
    );
    Ok(())
}

#[test]
fn a_record_stored_at_another_revision_is_found() -> revkv::Result<()> {
    let report = verify_after(|tree| {
        let c = tree
            .get(raw_key::record(6, 0))
            .expect("sled reads")
            .expect("c's record");
        tree.insert(raw_key::record(3, 0), c).expect("sled writes");
    })?;
    assert_found(
        &report,
        Check::LatestPointers,
        "latest pointer of key \"a\"",
    );
    assert_found(&report, Check::History, "revision 3 (change 0)");
    Ok(())
}

#[test]
fn a_finished_compaction_above_the_compacted_revision_is_found() -> revkv::Result<()> {
    let report = verify_after(|tree| {
        tree.insert(raw_key::meta("finished_compaction"), sealed_u64(5))
            .expect("sled writes");
    })?;
    assert_found(&report, Check::Metadata, "metadata finished_compaction");
    Ok(())
}

#[test]
fn entries_of_no_known_kind_are_found() -> revkv::Result<()> {
    let report = verify_after(|tree| {
        tree.insert("x-stray", "?").expect("sled writes");
        tree.insert(raw_key::meta("bogus"), sealed_u64(1))
            .expect("sled writes");
    })?;
    assert_found(&report, Check::UnknownEntry, "sled key \"x-stray\"");
    assert_found(&report, Check::UnknownEntry, "sled key \"mbogus\"");
    Ok(())
}

#[test]
fn a_tombstone_pointer_left_by_a_finished_compaction_is_found() -> revkv::Result<()> {
    let (_dir, path) = sample_store()?;
    open(&path)?.compact(Revision::new(5))?;
    with_raw_tree(&path, |tree| {
        assert!(tree
            .get(raw_key::latest("b"))
            .expect("sled reads")
            .is_none());
        tree.insert(raw_key::latest("b"), latest_pointer(tree, 5, 0, false))
            .expect("sled writes");
    });
    assert_found(
        &open(&path)?.verify()?,
        Check::Compaction,
        "latest pointer of key \"b\"",
    );
    Ok(())
}
