//! Damaged bytes on disk are found, never believed: every kind of stored entry, with flipped
//! bits, truncations and trailing bytes. Either the store refuses to open with
//! `Error::Corrupted` (damaged metadata: the format, the compacted revision, the newest commit
//! time), or every read that touches the damage fails with `Error::Corrupted` naming it, every
//! other read returns the right data, and `Db::verify` reports exactly the damaged entry. A
//! damaged latest pointer is found again from the revision log: every read succeeds, `stat`
//! counts it and `verify` names it. A damaged record
//! never keeps the store from opening, not even inside an unfinished compaction: compaction
//! leaves it in place and reports it in `Db::stat`.
//!
//! A list at an older revision may fail for any key when its snapshot is rebuilt through the
//! damaged record, because the rebuild reads the log of every key since that revision.

use std::path::Path;
use std::time::{Duration, Instant};

use revkv::{Check, Db, Error, ListOptions, Retention, Revision};

use crate::common::{
    flip_a_bit, leave_compaction_unfinished, raw_key, wait_for_sweep, with_raw_tree,
    write_sample_history, Model, DAMAGES,
};

const KEYS: [&str; 6] = ["a", "b", "c", "d", "e", "f"];

/// Time retention of zero reads every commit time when asked for its boundary; the
/// background compactor that it starts waits an hour, longer than any test.
fn open(path: &Path) -> revkv::Result<Db> {
    Db::options()
        .retention(Retention::Time(Duration::ZERO))
        .compaction_interval(Duration::from_secs(3600))
        .open(path)
}

/// What damage to an entry must do.
#[derive(Clone, Copy, Debug)]
enum Effect {
    /// Opening the store fails.
    OpenFails,
    /// Reads of this key fail (some of them), and nothing else does but lists at older
    /// revisions.
    ReadsOf(&'static str),
    /// Only the retention boundary, which searches the commit times, fails.
    RetentionFails,
    /// Nothing fails: the damaged entry is found again from the revision log.
    Recovered,
}

/// One stored entry: its sled key, the location errors and findings name, and what damage does.
struct Target {
    name: &'static str,
    sled_key: Vec<u8>,
    location: &'static str,
    effect: Effect,
}

fn targets() -> Vec<Target> {
    let target = |name, sled_key, location, effect| Target {
        name,
        sled_key,
        location,
        effect,
    };
    vec![
        target(
            "the current record of a live key",
            raw_key::record(3, 0),
            "revision 3 (change 0)",
            Effect::ReadsOf("a"),
        ),
        target(
            "an older record kept by compaction",
            raw_key::record(2, 0),
            "revision 2 (change 0)",
            Effect::ReadsOf("a"),
        ),
        target(
            "a tombstone",
            raw_key::record(5, 0),
            "revision 5 (change 0)",
            Effect::ReadsOf("b"),
        ),
        target(
            "the second change of a transaction",
            raw_key::record(7, 1),
            "revision 7 (change 1)",
            Effect::ReadsOf("e"),
        ),
        target(
            "the latest pointer of a live key",
            raw_key::latest("a"),
            "latest pointer of key \"a\"",
            Effect::Recovered,
        ),
        target(
            "the latest pointer of a deleted key",
            raw_key::latest("b"),
            "latest pointer of key \"b\"",
            Effect::Recovered,
        ),
        target(
            "a commit time",
            raw_key::commit_time(4),
            "commit time of revision 4",
            Effect::RetentionFails,
        ),
        target(
            "the newest commit time",
            raw_key::commit_time(8),
            "commit time of revision 8",
            Effect::OpenFails,
        ),
        target(
            "the format version",
            raw_key::meta("format_version"),
            "metadata format_version",
            Effect::OpenFails,
        ),
        target(
            "the compacted revision",
            raw_key::meta("compacted_revision"),
            "metadata compacted_revision",
            Effect::OpenFails,
        ),
        target(
            "the finished compaction",
            raw_key::meta("finished_compaction"),
            "metadata finished_compaction",
            Effect::OpenFails,
        ),
        target(
            "the token secret",
            raw_key::meta("token_secret"),
            "metadata token_secret",
            Effect::OpenFails,
        ),
    ]
}

/// Whether `error` is corruption reported at `location`.
fn corrupted_at(error: &Error, location: &str) -> bool {
    matches!(error, Error::Corrupted { location: at, .. } if at == location)
}

/// Every read of the damaged store: gets and whole lists at every revision, and the retention
/// boundary. Returns whether any of them failed.
fn read_everything(db: &Db, model: &Model, target: &Target) -> revkv::Result<bool> {
    let case = target.name;
    let involved = |key: &str| matches!(target.effect, Effect::ReadsOf(damaged) if damaged == key);
    let mut failed = false;
    let mut check = |outcome: revkv::Result<bool>, may_fail: bool, what: String| match outcome {
        Ok(equal) => assert!(equal, "{case}: {what} returned wrong data"),
        Err(error) => {
            assert!(
                may_fail && corrupted_at(&error, target.location),
                "{case}: {what} failed: {error}"
            );
            failed = true;
        }
    };
    let newest = model.revision();
    for revision in model.compacted().get()..=newest.get() {
        let revision = Revision::new(revision);
        let expected = model.at(revision);
        for key in KEYS {
            let got = db.get_at(key, revision);
            let equal = got.map(|entry| entry.as_ref() == expected.get(key.as_bytes()));
            check(equal, involved(key), format!("get of {key} at {revision}"));
        }
        for prefix in [""].into_iter().chain(KEYS) {
            let items = list_whole(db, ListOptions::prefix(prefix).revision(revision));
            let want = expected
                .values()
                .filter(|e| e.key.starts_with(prefix.as_bytes()));
            let equal = items.map(|items| items.iter().eq(want));
            let may_fail = revision < newest || prefix.is_empty() || involved(prefix);
            check(equal, may_fail, format!("list of {prefix:?} at {revision}"));
        }
    }
    let boundary = db.retention_boundary();
    let equal = boundary.map(|boundary| boundary == Some(newest));
    let may_fail = matches!(target.effect, Effect::RetentionFails);
    check(equal, may_fail, "the retention boundary".into());
    Ok(failed)
}

/// A whole list, read two entries a chunk.
fn list_whole(db: &Db, options: ListOptions) -> revkv::Result<Vec<revkv::Entry>> {
    let mut items = Vec::new();
    let mut next = options.clone().limit(2);
    loop {
        let page = db.list(&next)?;
        items.extend(page.items);
        match page.continue_token {
            Some(token) => next = options.clone().limit(2).continue_token(token),
            None => return Ok(items),
        }
    }
}

#[test]
fn every_damaged_entry_is_reported_as_corrupted_and_nothing_else_is() -> revkv::Result<()> {
    for target in targets() {
        for (damage, apply) in DAMAGES {
            let case = format!("{damage} in {}", target.name);
            let dir = tempfile::tempdir().expect("a temporary directory");
            let path = dir.path().join("store");
            let model = write_sample_history(&open(&path)?)?;
            with_raw_tree(&path, |tree| {
                let mut bytes = tree
                    .get(&target.sled_key)
                    .expect("sled reads")
                    .unwrap_or_else(|| panic!("{case}: the entry exists"))
                    .to_vec();
                apply(&mut bytes);
                tree.insert(&target.sled_key, bytes).expect("sled writes");
            });
            let db = match (open(&path), target.effect) {
                (Err(error), Effect::OpenFails) => {
                    assert!(corrupted_at(&error, target.location), "{case}: {error}");
                    continue;
                }
                (Ok(_), Effect::OpenFails) => panic!("{case}: the store opened"),
                (outcome, _) => outcome?,
            };
            let failed = read_everything(&db, &model, &target)?;
            if let Effect::Recovered = target.effect {
                assert!(!failed, "{case}: a read failed");
                assert_eq!(db.stat()?.damaged_pointers, 1, "{case}");
            } else {
                assert!(failed, "{case}: no read noticed");
            }
            let report = db.verify()?;
            assert!(!report.is_clean(), "{case}: verify found nothing");
            for finding in &report.findings {
                assert_eq!(
                    (finding.check, finding.location.as_str()),
                    (Check::Decoding, target.location),
                    "{case}: {report}"
                );
                if let Effect::ReadsOf(key) = target.effect {
                    assert_names_key(finding, key);
                }
            }
        }
    }
    Ok(())
}

/// Waits until the background compactor has compacted at `revision`, and swept.
fn wait_for_compaction(db: &Db, revision: Revision) -> revkv::Stat {
    let deadline = Instant::now() + Duration::from_secs(60);
    while db.compacted_revision() < revision {
        assert!(Instant::now() < deadline, "no compaction at {revision}");
        std::thread::sleep(Duration::from_millis(5));
    }
    wait_for_sweep(db)
}

/// Asserts that compaction met exactly one record it could not decode, at `location`.
fn assert_skipped(stat: &revkv::Stat, location: &str) {
    assert_eq!(stat.compaction_skipped_records, 1, "{stat:?}");
    let error = stat
        .last_compaction_error
        .as_ref()
        .expect("a recorded error");
    assert_eq!(error.reason, "Corrupted", "{error:?}");
    assert!(error.message.contains(location), "{error:?}");
}

/// Asserts that a finding about a damaged record names the key it is a change of, which a
/// later change or the key's latest pointer tells.
fn assert_names_key(finding: &revkv::Finding, key: &str) {
    assert!(
        finding.problem.contains(&format!("key {key:?}")),
        "{finding}"
    );
}

/// Asserts that `report` finds damage at `location`, a change of `key`, and nothing else.
fn assert_only_damage_at(report: &revkv::VerifyReport, location: &str, key: &str) {
    assert!(!report.is_clean(), "verify found nothing");
    for finding in &report.findings {
        assert_eq!(
            (finding.check, finding.location.as_str()),
            (Check::Decoding, location),
            "{report}"
        );
        assert_names_key(finding, key);
    }
}

#[test]
fn a_damaged_record_in_an_unfinished_compaction_is_reported_and_all_else_served(
) -> revkv::Result<()> {
    // The sample history's compaction at 6 was interrupted before it swept (2, 6]: there the
    // delete at 5 supersedes b=1 at 4, and is garbage itself, and c=1 at 6 stays.
    let cases = [
        ("superseded garbage", 4, "revision 4 (change 0)", "b", false),
        ("a tombstone", 5, "revision 5 (change 0)", "b", true),
        ("a live key's record", 6, "revision 6 (change 0)", "c", true),
    ];
    for (name, revision, location, key, stays) in cases {
        let target = Target {
            name,
            sled_key: raw_key::record(revision, 0),
            location,
            effect: Effect::ReadsOf(key),
        };
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("store");
        let mut model = write_sample_history(&open(&path)?)?;
        leave_compaction_unfinished(&path, 6, 2);
        model.compact(Revision::new(6));
        flip_a_bit(&path, &target.sled_key);
        let db = open(&path)?;
        read_everything(&db, &model, &target)?;
        let stat = wait_for_sweep(&db);
        assert_skipped(&stat, location);
        let report = db.verify()?;
        if stays {
            assert_only_damage_at(&report, location, key);
        } else {
            // What the sweep cannot decode it still removes when a later change supersedes it.
            assert!(report.is_clean(), "{name}: {report}");
        }
        drop(db);
        assert_eq!(open(&path)?.stat()?.swept_revision, Revision::new(6));
    }
    Ok(())
}

#[test]
fn background_compaction_skips_a_record_it_cannot_decode_and_finishes_the_rest() -> revkv::Result<()>
{
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("store");
    let keys: Vec<String> = (0..10).map(|key| format!("k/{key}")).collect();
    {
        let db = Db::options().retention(Retention::Manual).open(&path)?;
        for round in ["0", "1", "2"] {
            for key in &keys {
                db.put(key.as_str(), round)?;
            }
        }
    }
    // k/4 was written at revisions 5, 15 and 25.
    flip_a_bit(&path, &raw_key::record(25, 0));
    let db = Db::options()
        .retention(Retention::Revisions(0))
        .compaction_interval(Duration::from_millis(5))
        .open(&path)?;
    let stat = wait_for_compaction(&db, Revision::new(30));
    assert_skipped(&stat, "revision 25 (change 0)");
    // Every superseded version is gone but k/4's at 15, which only the damaged record names.
    assert_eq!(stat.stored_records, 11);
    for key in &keys {
        match db.get(key) {
            Ok(entry) => assert_eq!(entry.expect("live").value, b"2"),
            Err(error) => assert!(
                key == "k/4" && corrupted_at(&error, "revision 25 (change 0)"),
                "{key}: {error}"
            ),
        }
    }
    assert_only_damage_at(&db.verify()?, "revision 25 (change 0)", "k/4");
    Ok(())
}

#[test]
fn the_background_compactor_keeps_its_last_error_for_stat() -> revkv::Result<()> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("store");
    write_sample_history(&open(&path)?)?;
    flip_a_bit(&path, &raw_key::commit_time(4));
    let db = Db::options()
        .retention(Retention::Time(Duration::ZERO))
        .compaction_interval(Duration::from_millis(5))
        .open(&path)?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let error = loop {
        if let Some(error) = db.stat()?.last_compaction_error {
            break error;
        }
        assert!(Instant::now() < deadline, "no error recorded");
        std::thread::sleep(Duration::from_millis(5));
    };
    assert_eq!(error.reason, "Corrupted");
    assert!(
        error.message.contains("commit time of revision 4"),
        "{error:?}"
    );
    assert!(error.at_unix_ms > 0);
    Ok(())
}

#[test]
fn a_write_replaces_a_damaged_latest_pointer_and_compaction_goes_on() -> revkv::Result<()> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("store");
    let model = write_sample_history(&open(&path)?)?;
    flip_a_bit(&path, &raw_key::latest("a"));
    let db = open(&path)?;
    assert_eq!(db.stat()?.damaged_pointers, 1);
    let before = db.get("a")?;
    assert_eq!(
        before.as_ref(),
        model.at(model.revision()).get(b"a".as_slice())
    );
    let rewritten = db.put("a", "after the damage")?;
    let after = db.get("a")?.expect("a is live");
    let version = before.map_or(0, |entry| entry.version);
    assert_eq!(
        (after.mod_revision, after.version),
        (rewritten, version + 1)
    );
    db.compact(rewritten)?;
    wait_for_sweep(&db);
    let report = db.verify()?;
    assert!(report.is_clean(), "{report}");
    Ok(())
}
