//! Kill -9 at random moments, while writing and while compacting: every acknowledged write
//! survives, revisions stay contiguous, and the store verifies clean.
//!
//! The writer is this test binary itself, run again with `REVKV_CRASH_CHILD` naming the store's
//! directory and `--exact` naming this test: it writes with `Durability::Immediate` and prints
//! each revision once the write returned. Half the cycles also compact, and are killed just
//! after a compaction starts. `REVKV_CRASH_CYCLES` sets the number of kills (24 by default).
//! A second test kills a child whose threads write concurrently, so that transactions commit
//! in groups.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use proptest::prelude::RngExt;
use revkv::{Db, Durability, ListOptions, Op, Retention, Revision, Txn};

use crate::common::{rng, unswept_backlog, wait_for_sweep, with_raw_tree, Model, BACKLOG_KEYS};

const CHILD: &str = "REVKV_CRASH_CHILD";
/// The child compacts too when this is set.
const CHILD_COMPACTS: &str = "REVKV_CRASH_CHILD_COMPACTS";
/// The tests' names in the integration binary, for `--exact`.
const TEST: &str = "crash::acknowledged_writes_survive_kill_9";
const CONCURRENT_TEST: &str = "crash::acknowledged_concurrent_writes_survive_kill_9";
const SWEEP_TEST: &str = "crash::a_sweep_killed_part_way_resumes_at_the_next_open";
/// Threads of the concurrent child.
const WRITERS: usize = 4;
/// What marks the child's protocol on stdout, among libtest's own output (which may precede it
/// on the same line).
const TAG: &str = "revkv-crash";

/// The changes of revision `revision`, the same in the writer and the checker: a put of the
/// revision's number, sometimes a second one, and every third revision a delete.
fn changes_of(revision: u64) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
    let key = |n: u64| format!("c/{:02}", n % 20).into_bytes();
    let value = Some(revision.to_string().into_bytes());
    let mut changes = vec![(key(revision * 7), value.clone())];
    if revision.is_multiple_of(5) {
        changes.push((key(revision * 7 + 1), value));
    }
    if revision.is_multiple_of(3) && key(revision * 11) != changes[0].0 {
        changes.push((key(revision * 11), None));
    }
    changes.sort();
    changes.dedup_by(|a, b| a.0 == b.0);
    changes
}

fn open(path: &Path) -> revkv::Result<Db> {
    Db::options()
        .durability(Durability::Immediate)
        .retention(Retention::Manual)
        .open(path)
}

/// The child: writes `changes_of` each next revision until killed, reporting each one after
/// it is durable; with `compacts`, compacts a few revisions back every so often.
fn write_until_killed(path: &Path, compacts: bool) -> revkv::Result<()> {
    let db = open(path)?;
    let mut rng = rng(db.current_revision().get());
    println!("{TAG} ready {}", db.current_revision());
    let mut until_compaction = rng.random_range(10..40);
    loop {
        let revision = db.current_revision().next();
        let ops = changes_of(revision.get())
            .into_iter()
            .map(|(key, value)| match value {
                Some(value) => Op::put(key, value),
                None => Op::delete(key),
            });
        let response = db.txn(Txn::new().then(ops))?;
        assert_eq!(
            response.revision, revision,
            "one writer, one revision per write"
        );
        println!("{TAG} ack {revision}");
        until_compaction -= 1;
        if compacts && until_compaction == 0 {
            until_compaction = rng.random_range(10..40);
            let target = Revision::new(revision.get().saturating_sub(rng.random_range(0..5)));
            println!("{TAG} compact {target}");
            db.compact(target)?;
            println!("{TAG} compacted {target}");
        }
    }
}

/// What the child reported before it died.
#[derive(Default)]
struct Reported {
    ready: Option<u64>,
    acknowledged: Option<u64>,
    compacting: Option<u64>,
    compacted: Option<u64>,
}

impl Reported {
    /// Takes in one line of the child's output; returns what it reported, if anything.
    fn take(&mut self, line: &str) -> Option<&'static str> {
        let (_, event) = line.split_once(TAG)?;
        let mut words = event.split_whitespace();
        let (Some(what), Some(number)) = (words.next(), words.next()) else {
            panic!("a malformed line from the child: {line}");
        };
        let number = Some(number.parse().expect("revisions are numbers"));
        let (what, field) = match what {
            "ready" => ("ready", &mut self.ready),
            "ack" => ("ack", &mut self.acknowledged),
            "compact" => ("compact", &mut self.compacting),
            "compacted" => ("compacted", &mut self.compacted),
            _ => panic!("an unknown line from the child: {line}"),
        };
        // Concurrent writers may report out of order; what counts is the newest.
        *field = (*field).max(number);
        Some(what)
    }
}

/// Runs the child of `test` until the kill, which comes `kill_after` milliseconds after it is
/// ready, or, for a compacting child, `kill_after` microseconds after its `compactions`-th
/// compaction starts.
fn run_and_kill(path: &Path, compactions: Option<u32>, test: &str, kill_after: u64) -> Reported {
    let mut child = Command::new(std::env::current_exe().expect("the test binary's path"))
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(CHILD, path)
        .env(CHILD_COMPACTS, if compactions.is_some() { "1" } else { "" })
        .stdout(Stdio::piped())
        .spawn()
        .expect("the test binary runs again as the child");
    let stdout = child.stdout.take().expect("stdout is piped");
    let (lines, received) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if lines.send(line.expect("the child writes text")).is_err() {
                break;
            }
        }
    });
    let mut reported = Reported::default();
    let mut wait_for = |event| loop {
        let line = received
            .recv_timeout(Duration::from_secs(30))
            .expect("the child reports within 30 s, and lives until killed");
        if reported.take(&line) == Some(event) {
            break;
        }
    };
    wait_for("ready");
    match compactions {
        None => std::thread::sleep(Duration::from_millis(kill_after)),
        Some(count) => {
            for _ in 0..count {
                wait_for("compact");
            }
            std::thread::sleep(Duration::from_micros(kill_after));
        }
    }
    child.kill().expect("SIGKILL is delivered");
    let status = child.wait().expect("the child is reaped");
    assert!(!status.success(), "the child ran until killed: {status}");
    reader.join().expect("the reader thread ends at EOF");
    for line in received.try_iter() {
        reported.take(&line);
    }
    reported
}

/// Reads the compacted and finished revisions off the closed store: a kill between the two
/// leaves the first above the second.
fn compaction_marks(path: &Path) -> (u64, u64) {
    with_raw_tree(path, |tree| {
        let read = |name: &str| {
            tree.get(format!("m{name}"))
                .expect("sled reads")
                .map_or(0, |bytes| {
                    u64::from_be_bytes(bytes[4..12].try_into().expect("8 bytes"))
                })
        };
        (read("compacted_revision"), read("finished_compaction"))
    })
}

#[test]
fn acknowledged_writes_survive_kill_9() -> revkv::Result<()> {
    if let Some(path) = std::env::var_os(CHILD) {
        let compacts = std::env::var_os(CHILD_COMPACTS).is_some_and(|v| !v.is_empty());
        return write_until_killed(Path::new(&path), compacts);
    }
    let cycles: u32 = std::env::var("REVKV_CRASH_CYCLES").ok().map_or(24, |text| {
        text.parse().expect("REVKV_CRASH_CYCLES is a number")
    });
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("store");
    let mut rng = rng(0);
    let mut model = Model::new();
    let mut interrupted_compactions = 0;
    for cycle in 0..cycles {
        let compactions = (cycle % 2 == 1).then(|| rng.random_range(1..4));
        let kill_after = match compactions {
            Some(_) => rng.random_range(0..8000),
            None => rng.random_range(5..150),
        };
        let reported = run_and_kill(&path, compactions, TEST, kill_after);
        let (compacted, finished) = compaction_marks(&path);
        if finished < compacted {
            interrupted_compactions += 1;
        }

        let db = open(&path)?;
        let head = db.current_revision().get();
        let acknowledged = reported
            .acknowledged
            .or(reported.ready)
            .expect("the child was ready");
        assert!(
            head == acknowledged || head == acknowledged + 1,
            "cycle {cycle}: revision {head} after acknowledging {acknowledged}"
        );
        while model.revision().get() < head {
            let next = model.revision().get() + 1;
            assert!(model.apply(&changes_of(next)));
        }
        let compacted = db.compacted_revision();
        let at_least = reported.compacted.unwrap_or(0).max(model.compacted().get());
        let at_most = reported.compacting.unwrap_or(0).max(at_least);
        assert!(
            (at_least..=at_most).contains(&compacted.get()),
            "cycle {cycle}: compacted at {compacted}, expected {at_least}..={at_most}"
        );
        model.compact(compacted);

        let mut revisions = vec![compacted.get(), head];
        revisions.extend((0..3).map(|_| rng.random_range(compacted.get()..=head)));
        for revision in revisions.into_iter().map(Revision::new) {
            let page = db.list(&ListOptions::all().revision(revision))?;
            let expected: Vec<_> = model.at(revision).values().cloned().collect();
            assert_eq!(
                page.items, expected,
                "cycle {cycle}: contents at {revision}"
            );
        }
        if compacted > Revision::ZERO {
            let below = Revision::new(compacted.get() - 1);
            assert!(db.get_at("c/00", below).unwrap_err().is_expired());
        }
        let report = db.verify()?;
        assert!(report.is_clean(), "cycle {cycle}: {report}");
    }
    eprintln!(
        "{cycles} kills at revision {}, {interrupted_compactions} of them during a compaction",
        model.revision()
    );
    Ok(())
}

/// The concurrent child: each thread puts its own keys `w<thread>/<n>`, n = 0, 1, 2, …, one
/// durable put at a time, reporting each revision once the put returned.
fn write_concurrently_until_killed(path: &Path) -> revkv::Result<()> {
    let db = open(path)?;
    println!("{TAG} ready {}", db.current_revision());
    std::thread::scope(|scope| {
        for thread in 0..WRITERS {
            let db = &db;
            scope.spawn(move || {
                let prefix = format!("w{thread}/");
                let written = db
                    .list(&ListOptions::prefix(prefix.as_str()))
                    .expect("the child lists its keys")
                    .items
                    .len();
                for n in written.. {
                    let revision = db
                        .put(format!("{prefix}{n:06}"), n.to_string())
                        .expect("the child writes");
                    println!("{TAG} ack {revision}");
                }
            });
        }
    });
    Ok(())
}

#[test]
fn acknowledged_concurrent_writes_survive_kill_9() -> revkv::Result<()> {
    if let Some(path) = std::env::var_os(CHILD) {
        return write_concurrently_until_killed(Path::new(&path));
    }
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("store");
    let mut rng = rng(1);
    let mut head = 0;
    for cycle in 0..8 {
        let reported = run_and_kill(&path, None, CONCURRENT_TEST, rng.random_range(5..150));
        let db = open(&path)?;
        head = db.current_revision().get();
        let acknowledged = reported
            .acknowledged
            .or(reported.ready)
            .expect("the child was ready");
        assert!(
            head >= acknowledged,
            "cycle {cycle}: revision {head} after acknowledging {acknowledged}"
        );
        let mut items = Vec::new();
        let mut options = ListOptions::all();
        loop {
            let page = db.list(&options)?;
            items.extend(page.items);
            match page.continue_token {
                Some(token) => options = options.continue_token(token),
                None => break,
            }
        }
        // Every key is written once, so the revisions of the keys are exactly 1..=head.
        let mut revisions: Vec<u64> = items.iter().map(|entry| entry.mod_revision.get()).collect();
        revisions.sort_unstable();
        assert_eq!(
            revisions,
            (1..=head).collect::<Vec<_>>(),
            "cycle {cycle}: one key per revision, no gaps"
        );
        // A thread writes its next key only after the previous one was acknowledged, so each
        // thread's keys are an unbroken run from 0.
        for thread in 0..WRITERS {
            let prefix = format!("w{thread}/");
            let values: Vec<Vec<u8>> = items
                .iter()
                .filter(|entry| entry.key.starts_with(prefix.as_bytes()))
                .map(|entry| entry.value.clone())
                .collect();
            let expected: Vec<Vec<u8>> = (0..values.len())
                .map(|n| n.to_string().into_bytes())
                .collect();
            assert_eq!(values, expected, "cycle {cycle}: thread {thread}'s keys");
        }
        let report = db.verify()?;
        assert!(report.is_clean(), "cycle {cycle}: {report}");
    }
    eprintln!("8 kills of {WRITERS} concurrent writers, at revision {head}");
    Ok(())
}

/// The sweeping child: opens a store whose compaction is unfinished, reports ready once the
/// resumed sweep made progress, and waits to be killed.
fn sweep_until_killed(path: &Path) -> revkv::Result<()> {
    let db = open(path)?;
    let started = db.stat()?.swept_revision;
    while db.stat()?.swept_revision == started {
        std::thread::sleep(Duration::from_millis(1));
    }
    println!("{TAG} ready {}", db.current_revision());
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[test]
fn a_sweep_killed_part_way_resumes_at_the_next_open() -> revkv::Result<()> {
    if let Some(path) = std::env::var_os(CHILD) {
        return sweep_until_killed(Path::new(&path));
    }
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("store");
    let head = unswept_backlog(&path);
    run_and_kill(&path, None, SWEEP_TEST, 0);
    let (compacted, swept) = compaction_marks(&path);
    assert!(
        compacted == head.get() && swept < compacted,
        "compacted at {compacted}, swept up to {swept}"
    );
    let inspected = Db::options()
        .retention(Retention::Manual)
        .resume_compaction(false)
        .open(&path)?;
    let report = inspected.verify()?;
    assert!(report.is_clean(), "{report}");
    let page = inspected.list(&ListOptions::prefix("k/").limit(BACKLOG_KEYS))?;
    assert!(page.items.iter().all(|entry| entry.mod_revision == head));
    drop(inspected);
    let db = open(&path)?;
    assert_eq!(wait_for_sweep(&db).stored_records, BACKLOG_KEYS as u64);
    let report = db.verify()?;
    assert!(report.is_clean(), "{report}");
    Ok(())
}
