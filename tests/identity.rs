//! A revision names one state forever: a crash under buffered durability never lets a later
//! write reuse a revision that readers saw, and tokens of another store, or of a run a
//! restored copy never had, are refused.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use revkv::{Db, Durability, Error, ListOptions, Retention, Revision, TokenRejection};

use crate::common::{copy_dir, raw_key, with_raw_tree};

const CHILD: &str = "REVKV_BUFFERED_CHILD";
const TEST: &str = "identity::a_buffered_crash_never_reuses_a_revision_readers_saw";
const TAG: &str = "revkv-buffered";

fn open(path: &Path, durability: Durability) -> revkv::Result<Db> {
    Db::options()
        .durability(durability)
        .retention(Retention::Manual)
        .open(path)
}

/// The child: writes buffered, and reports every revision it published with a token of a list
/// at it, until killed. sled flushes buffered writes every 500 ms, so a kill loses the rest.
fn write_buffered_until_killed(path: &Path) -> revkv::Result<()> {
    let db = open(path, Durability::Buffered)?;
    for n in 0u64.. {
        let revision = db.put(format!("k/{:02}", n % 50), n.to_string())?;
        let page = db.list(&ListOptions::prefix("k/").limit(1))?;
        let token = page.continue_token.unwrap_or_else(|| "-".into());
        println!(
            "{TAG} {revision} {} {token}",
            page.items[0].key.escape_ascii()
        );
        if n % 64 == 0 {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    unreachable!("the child writes until killed")
}

/// Runs the child until it has published for `millis` and kills it; returns the revisions it
/// published, each with the token of a list at that revision. The time counts from its first
/// report, so a slow start (a busy machine) cannot leave it killed before it wrote anything.
fn run_and_kill(path: &Path, millis: u64) -> Vec<(Revision, String)> {
    let mut child = Command::new(std::env::current_exe().expect("the test binary's path"))
        .args(["--exact", TEST, "--nocapture", "--test-threads=1"])
        .env(CHILD, path)
        .stdout(Stdio::piped())
        .spawn()
        .expect("the test binary runs again as the child");
    let stdout = child.stdout.take().expect("stdout is piped");
    let (first_report, started) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut published = Vec::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let Some((_, report)) = line.split_once(TAG) else {
                continue;
            };
            let mut words = report.split_whitespace();
            let (Some(revision), Some(_key), Some(token)) =
                (words.next(), words.next(), words.next())
            else {
                continue;
            };
            let Ok(revision) = revision.parse() else {
                continue;
            };
            if published.is_empty() {
                // The receiver may be gone already, when the child failed to start.
                let _ = first_report.send(());
            }
            published.push((Revision::new(revision), token.to_string()));
        }
        published
    });
    if started.recv_timeout(Duration::from_secs(120)).is_ok() {
        std::thread::sleep(Duration::from_millis(millis));
    }
    child.kill().expect("SIGKILL is delivered");
    child.wait().expect("the child is reaped");
    reader.join().expect("the reader ends at EOF")
}

#[test]
fn a_buffered_crash_never_reuses_a_revision_readers_saw() -> revkv::Result<()> {
    if let Some(path) = std::env::var_os(CHILD) {
        return write_buffered_until_killed(Path::new(&path));
    }
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("store");
    let mut lost_somewhere = false;
    for cycle in 0..4 {
        let published = run_and_kill(&path, 300 + cycle * 150);
        let newest_seen = published.last().expect("the child published").0;
        let db = open(&path, Durability::Immediate)?;
        let head = db.current_revision();
        for (revision, token) in &published {
            let read = db.get_at("k/00", *revision);
            let listed = (token != "-")
                .then(|| db.list(&ListOptions::prefix("k/").limit(1).continue_token(token)));
            if *revision <= head {
                read?;
                if let Some(listed) = listed {
                    listed?;
                }
            } else {
                lost_somewhere = true;
                assert!(
                    matches!(read, Err(Error::LostRevision { requested }) if requested == *revision),
                    "cycle {cycle}: a read at lost revision {revision}: {read:?}"
                );
                if let Some(listed) = listed {
                    assert!(
                        matches!(listed, Err(Error::LostRevision { .. })),
                        "cycle {cycle}: a token at lost revision {revision}: {listed:?}"
                    );
                }
            }
        }
        let next = db.put("after", "crash")?;
        assert!(
            next > newest_seen,
            "cycle {cycle}: revision {next} reused one the crashed run published (up to {newest_seen})"
        );
        let report = db.verify()?;
        assert!(report.is_clean(), "cycle {cycle}: {report}");
    }
    assert!(
        lost_somewhere,
        "no kill lost a published revision: the test proved nothing"
    );
    Ok(())
}

#[test]
fn a_buffered_store_closed_cleanly_goes_on_at_the_next_revision() -> revkv::Result<()> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("store");
    let head = {
        let db = open(&path, Durability::Buffered)?;
        db.put("a", "1")?;
        db.put("b", "2")?
    };
    let db = open(&path, Durability::Buffered)?;
    assert_eq!(db.current_revision(), head);
    assert_eq!(
        db.put("c", "3")?,
        head.next(),
        "nothing was lost, so nothing is skipped"
    );
    assert_eq!(db.get_at("a", head)?.expect("a survived").value, b"1");
    Ok(())
}

#[test]
fn a_token_of_another_store_is_refused() -> revkv::Result<()> {
    let (one, other) = (Db::temporary()?, Db::temporary()?);
    for db in [&one, &other] {
        for i in 0..3 {
            db.put(format!("k/{i}"), "v")?;
        }
    }
    let options = ListOptions::prefix("k/").limit(1);
    let token = one.list(&options)?.continue_token.expect("more to read");
    let refused = other.list(&options.continue_token(token)).unwrap_err();
    assert!(
        matches!(
            refused,
            Error::InvalidContinueToken {
                reason: TokenRejection::ForeignStore
            }
        ),
        "{refused}"
    );
    Ok(())
}

#[test]
fn a_store_made_before_token_secrets_gets_one_at_its_next_open() -> revkv::Result<()> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("store");
    {
        let db = open(&path, Durability::Immediate)?;
        for i in 0..3 {
            db.put(format!("k/{i}"), "v")?;
        }
    }
    let secret = raw_key::meta("token_secret");
    with_raw_tree(&path, |tree| tree.remove(&secret).expect("sled writes"))
        .expect("the store was made with a secret");
    let options = ListOptions::prefix("k/").limit(1);
    let token = {
        let db = open(&path, Durability::Immediate)?;
        assert!(db.verify()?.is_clean());
        db.list(&options)?.continue_token.expect("more to read")
    };
    assert!(with_raw_tree(&path, |tree| tree
        .contains_key(&secret)
        .expect("sled reads")));
    let db = open(&path, Durability::Immediate)?;
    let next = db.list(&options.continue_token(token))?;
    assert_eq!(
        next.items[0].key, b"k/1",
        "the secret outlived the open that made it"
    );
    Ok(())
}

#[test]
fn a_restored_copy_refuses_tokens_issued_after_the_copy_was_taken() -> revkv::Result<()> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (original, copy) = (dir.path().join("original"), dir.path().join("copy"));
    let options = ListOptions::prefix("k/").limit(1);
    let before_copy = {
        let db = open(&original, Durability::Immediate)?;
        for i in 0..5 {
            db.put(format!("k/{i}"), "v1")?;
        }
        db.list(&options)?.continue_token.expect("more to read")
    };
    // sled's threads may hold the store's files for a moment after the last handle drops.
    std::thread::sleep(Duration::from_millis(100));
    copy_dir(&original, &copy);
    let after_copy = {
        let db = open(&original, Durability::Immediate)?;
        for i in 0..5 {
            db.put(format!("k/{i}"), "v2")?;
        }
        db.list(&options)?.continue_token.expect("more to read")
    };
    let restored = open(&copy, Durability::Immediate)?;
    restored.list(&options.clone().continue_token(&before_copy))?;
    for i in 0..5 {
        restored.put(format!("k/{i}"), "v3")?;
    }
    let refused = restored
        .list(&options.continue_token(after_copy))
        .unwrap_err();
    assert!(
        matches!(
            refused,
            Error::InvalidContinueToken {
                reason: TokenRejection::ForeignStore
            }
        ),
        "a token of a run the copy never had: {refused}"
    );
    Ok(())
}
