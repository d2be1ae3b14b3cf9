//! Watches against lists: a client that lists at a revision and then applies the watch's events
//! holds exactly the list at every revision it reaches, through concurrent writers,
//! transactions, deletes and re-creates, compactions and reopens; and slow watchers, expired
//! watchers, progress notifications, selectors, lost revisions and cancellation.
//!
//! `REVKV_WATCH_SEEDS` sets how many seeds the list-then-watch test runs (2 by default).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::TestRng;
use revkv::{
    Db, Durability, Entry, Error, EventKind, ListOptions, ListPager, Notification, Op, Put,
    Retention, Revision, Txn, Watch, WatchOptions,
};

use crate::common::{copy_dir, rng};

const KEYS: u32 = 16;
const PREFIX: &str = "w/";

fn key(k: u32) -> String {
    format!("{PREFIX}{k:02}")
}

fn open(path: &Path) -> revkv::Result<Db> {
    Db::options()
        .durability(Durability::Buffered)
        .retention(Retention::Manual)
        .open(path)
}

/// A client's view of the watched keys: what it listed, then every event applied.
#[derive(Default)]
struct Client {
    selector: Option<&'static str>,
    state: BTreeMap<Vec<u8>, Entry>,
    /// The revision `state` is at.
    revision: Revision,
    checked: usize,
    relists: usize,
}

impl Client {
    fn list_options(&self) -> revkv::Result<ListOptions> {
        let options = ListOptions::prefix(PREFIX);
        Ok(match self.selector {
            Some(selector) => options.label_selector(selector.parse()?),
            None => options,
        })
    }

    fn watch_options(&self) -> revkv::Result<WatchOptions> {
        let options = WatchOptions::prefix(PREFIX).start(self.revision.next());
        Ok(match self.selector {
            Some(selector) => options.label_selector(selector.parse()?),
            None => options,
        })
    }

    /// Lists through a pager with small pages, so that the list spans chunks.
    fn relist(&mut self, db: &Db) -> revkv::Result<()> {
        let list = ListPager::new(db.clone())
            .page_size(3)
            .list(&self.list_options()?)?;
        self.state = list
            .items
            .into_iter()
            .map(|entry| (entry.key.clone(), entry))
            .collect();
        self.revision = list.revision;
        self.relists += 1;
        Ok(())
    }

    /// Watches from the revision after its state, relisting whenever that is expired, and
    /// applies events until `done` says its revision is far enough; checks its state against
    /// a list at every revision it reaches that is not compacted yet.
    fn follow(&mut self, db: &Db, done: impl Fn(Revision) -> bool) -> revkv::Result<()> {
        'relist: loop {
            let mut watch = match db.watch(self.watch_options()?) {
                Ok(watch) => watch,
                Err(error) if error.is_expired() => {
                    self.relist(db)?;
                    continue;
                }
                Err(error) => return Err(error),
            };
            while !done(self.revision) {
                watch.request_progress();
                let notification = match watch.next_timeout(Duration::from_secs(10)) {
                    Ok(Some(notification)) => notification,
                    Ok(None) => panic!("the watch stalled at {}", self.revision),
                    Err(error) if error.is_expired() => {
                        self.relist(db)?;
                        continue 'relist;
                    }
                    Err(error) => return Err(error),
                };
                match notification {
                    Notification::Changes { revision, events } => {
                        assert!(revision > self.revision, "revisions go forward");
                        for event in events {
                            assert_eq!(event.revision, revision);
                            match event.kind {
                                EventKind::Put => {
                                    let entry = event.entry.expect("a put carries its entry");
                                    assert_eq!(entry.mod_revision, revision);
                                    self.state
                                        .insert(event.key.to_vec(), Arc::unwrap_or_clone(entry));
                                }
                                EventKind::Delete => {
                                    let removed = self.state.remove(&*event.key);
                                    assert!(removed.is_some(), "a delete of a key never seen");
                                }
                            }
                        }
                        self.revision = revision;
                        self.check(db)?;
                    }
                    Notification::Progress { revision } => {
                        assert!(revision >= self.revision, "progress never goes back");
                        if revision > self.revision {
                            self.revision = revision;
                            self.check(db)?;
                        }
                    }
                    other => panic!("unexpected {other:?}"),
                }
            }
            return Ok(());
        }
    }

    fn check(&mut self, db: &Db) -> revkv::Result<()> {
        let options = self.list_options()?.revision(self.revision);
        match ListPager::new(db.clone()).list(&options) {
            Ok(list) => {
                let listed: Vec<&Entry> = list.items.iter().collect();
                let held: Vec<&Entry> = self.state.values().collect();
                assert_eq!(
                    held, listed,
                    "state at {} ({:?})",
                    self.revision, self.selector
                );
                self.checked += 1;
            }
            Err(error) if error.is_expired() => {}
            Err(error) => return Err(error),
        }
        Ok(())
    }
}

/// One random put (with a color label) or delete of key `k`.
fn random_op(rng: &mut TestRng, k: u32) -> Op {
    if rng.random_range(0..4) == 0 {
        Op::delete(key(k))
    } else {
        let color = ["red", "blue"][rng.random_range(0..2)];
        let value = rng.random_range(0..1000).to_string();
        Op::Put(Put::new(key(k), value).label("color", color))
    }
}

/// One random write: a put or delete, or a transaction of a few of them.
fn random_write(db: &Db, rng: &mut TestRng) -> revkv::Result<()> {
    let first = rng.random_range(0..KEYS);
    let len = if rng.random_range(0..4) == 0 {
        rng.random_range(2..=4)
    } else {
        1
    };
    let ops: Vec<Op> = (0..len)
        .map(|step| random_op(rng, (first + step * 5) % KEYS))
        .collect();
    db.txn(Txn::new().then(ops))?;
    Ok(())
}

#[test]
fn a_client_that_lists_then_watches_holds_the_list_at_every_revision() -> revkv::Result<()> {
    let seeds: u64 = std::env::var("REVKV_WATCH_SEEDS")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(2);
    for seed in 0..seeds {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("store");
        let mut clients = [None, Some("color=red"), Some("color!=red")].map(|selector| Client {
            selector,
            ..Client::default()
        });
        for phase in 0..3u64 {
            let db = open(&path)?;
            if phase == 0 {
                for client in &mut clients {
                    client.relist(&db)?;
                }
            }
            // 0 while the writers run, then the head they left.
            let head = AtomicU64::new(0);
            thread::scope(|scope| -> revkv::Result<()> {
                let followers: Vec<_> = clients
                    .iter_mut()
                    .map(|client| {
                        let (db, head) = (&db, &head);
                        scope.spawn(move || {
                            client.follow(db, |revision| {
                                let head = head.load(Ordering::Acquire);
                                head != 0 && revision.get() >= head
                            })
                        })
                    })
                    .collect();
                let writers: Vec<_> = (0..2)
                    .map(|writer| {
                        let db = &db;
                        scope.spawn(move || -> revkv::Result<()> {
                            let mut rng = rng(seed * 100 + phase * 10 + writer);
                            for step in 0..150 {
                                random_write(db, &mut rng)?;
                                if writer == 0 && step % 50 == 49 {
                                    // Behind some clients now and then: they list again.
                                    let behind = db.current_revision().get().saturating_sub(8);
                                    db.compact(Revision::new(behind))?;
                                }
                            }
                            Ok(())
                        })
                    })
                    .collect();
                for writer in writers {
                    writer.join().expect("the writer does not panic")?;
                }
                head.store(db.current_revision().get(), Ordering::Release);
                for follower in followers {
                    follower.join().expect("the client does not panic")?;
                }
                Ok(())
            })?;
            db.flush()?;
        }
        for client in &clients {
            assert!(client.checked > 0, "{:?} checked nothing", client.selector);
        }
    }
    Ok(())
}

/// The changes of the next notification, which must come within a few seconds.
fn changes(watch: &mut Watch) -> (Revision, Vec<revkv::Event>) {
    match watch.next_timeout(Duration::from_secs(5)) {
        Ok(Some(Notification::Changes { revision, events })) => (revision, events),
        other => panic!("expected changes, got {other:?}"),
    }
}

/// What the events of one notification say, compactly: `+key=value` or `-key`.
fn summary(events: &[revkv::Event]) -> Vec<String> {
    events
        .iter()
        .map(|event| {
            let key = String::from_utf8_lossy(&event.key);
            match (&event.kind, &event.entry) {
                (EventKind::Put, Some(entry)) => {
                    format!("+{key}={}", String::from_utf8_lossy(&entry.value))
                }
                _ => format!("-{key}"),
            }
        })
        .collect()
}

#[test]
fn a_transaction_arrives_as_one_batch_with_previous_entries() -> revkv::Result<()> {
    let db = Db::temporary()?;
    let first = db.put("a/1", "old")?;
    let mut watch = db.watch(
        WatchOptions::prefix("a/")
            .start(first.next())
            .prev_entry(true),
    )?;
    let revision = db
        .txn(Txn::new().then([
            Op::put("a/1", "new"),
            Op::put("a/2", "x"),
            Op::put("b/1", "y"),
        ]))?
        .revision;
    db.delete("a/1")?;
    let (at, events) = changes(&mut watch);
    assert_eq!(at, revision);
    assert_eq!(
        summary(&events),
        ["+a/1=new", "+a/2=x"],
        "b/1 is outside the prefix"
    );
    assert_eq!(
        events[0].prev.as_ref().map(|prev| &prev.value[..]),
        Some(&b"old"[..])
    );
    assert_eq!(events[1].prev, None, "a/2 did not exist");
    let (_, events) = changes(&mut watch);
    assert_eq!(summary(&events), ["-a/1"]);
    assert_eq!(
        events[0].prev.as_ref().map(|prev| &prev.value[..]),
        Some(&b"new"[..])
    );
    Ok(())
}

#[test]
fn selectors_turn_puts_that_leave_or_enter_them_into_deletes_and_puts() -> revkv::Result<()> {
    let db = Db::temporary()?;
    let mut watch = db.watch(WatchOptions::all().label_selector("app=web".parse()?))?;
    let web = |value: &str| Put::new("pod", value.to_owned()).label("app", "web");
    db.put_with(Put::new("pod", "v0").label("app", "db"))?;
    db.put_with(web("v1"))?;
    db.put_with(web("v2"))?;
    db.put_with(Put::new("pod", "v3").label("app", "db"))?;
    db.delete("pod")?;
    db.put_with(web("v4"))?;
    db.delete("pod")?;
    let mut seen = Vec::new();
    while let Some(Notification::Changes { events, .. }) = watch.try_next()? {
        seen.extend(summary(&events));
    }
    assert_eq!(seen, ["+pod=v1", "+pod=v2", "-pod", "+pod=v4", "-pod"]);
    Ok(())
}

#[test]
fn a_slow_watcher_catches_up_exactly_and_rejoins_live_delivery() -> revkv::Result<()> {
    let db = Db::options().durability(Durability::Buffered).temporary()?;
    let mut watch = db.watch(WatchOptions::prefix("k/").buffer(4))?;
    let mut written = Vec::new();
    for i in 0..300 {
        let revision = db.put(format!("k/{}", i % 7), i.to_string())?;
        db.put("other", "noise")?;
        written.push((revision, format!("+k/{}={i}", i % 7)));
    }
    let mut received = Vec::new();
    while received.len() < written.len() {
        let (revision, events) = changes(&mut watch);
        received.extend(summary(&events).into_iter().map(|event| (revision, event)));
    }
    assert_eq!(received, written);
    let live = db.put("k/live", "after")?;
    assert_eq!(changes(&mut watch).0, live, "delivered live again");
    assert_eq!(watch.try_next()?, None);
    Ok(())
}

#[test]
fn a_watcher_behind_a_compaction_is_expired_and_so_is_a_start_at_it() -> revkv::Result<()> {
    let db = Db::temporary()?;
    let listed = db.put("k", "1")?;
    let mut watch = db.watch(WatchOptions::all().start(listed.next()))?;
    db.put("k", "2")?;
    let head = db.put("k", "3")?;
    db.compact(head)?;
    let error = watch.try_next().unwrap_err();
    assert!(
        matches!(error, Error::Expired { compacted, .. } if compacted == head),
        "{error}"
    );
    assert_eq!(watch.try_next()?, None, "the watch is over");
    let refused = db.watch(WatchOptions::all().start(head)).unwrap_err();
    assert!(
        matches!(refused, Error::Expired { requested, compacted, .. } if requested == head && compacted == head),
        "the changes at the compacted revision are gone: {refused}"
    );
    db.watch(WatchOptions::all().start(head.next()))?;
    Ok(())
}

#[test]
fn a_watch_from_the_past_replays_history_and_one_from_the_future_waits() -> revkv::Result<()> {
    let db = Db::temporary()?;
    let first = db.put("k", "1")?;
    db.put("k", "2")?;
    let mut past = db.watch(WatchOptions::all().start(first))?;
    let mut future = db.watch(WatchOptions::all().start(Revision::new(first.get() + 3)))?;
    assert_eq!(summary(&changes(&mut past).1), ["+k=1"]);
    assert_eq!(summary(&changes(&mut past).1), ["+k=2"]);
    assert_eq!(future.try_next()?, None);
    db.put("k", "3")?;
    assert_eq!(future.try_next()?, None, "revision 3 is before its start");
    let awaited = db.put("k", "4")?;
    assert_eq!(changes(&mut future).0, awaited);
    Ok(())
}

#[test]
fn progress_comes_on_request_and_at_an_interval() -> revkv::Result<()> {
    let db = Db::temporary()?;
    let mut watch =
        db.watch(WatchOptions::prefix("quiet/").progress_interval(Duration::from_millis(50)))?;
    assert_eq!(watch.try_next()?, None, "nothing is due yet");
    let head = db.put("loud", "v")?;
    watch.request_progress();
    assert_eq!(
        watch.try_next()?,
        Some(Notification::Progress { revision: head })
    );
    assert_eq!(watch.try_next()?, None, "a request is answered once");
    let next = db.put("loud", "w")?;
    assert_eq!(
        watch.next_timeout(Duration::from_secs(5))?,
        Some(Notification::Progress { revision: next }),
        "the interval passed without notifications"
    );
    Ok(())
}

#[test]
fn a_waker_is_called_when_a_revision_reaches_the_watcher() -> revkv::Result<()> {
    let db = Db::temporary()?;
    let watch = db.watch(WatchOptions::prefix("a/"))?;
    let woken = std::sync::Arc::new(AtomicU64::new(0));
    let counter = std::sync::Arc::clone(&woken);
    watch.set_waker(move || {
        counter.fetch_add(1, Ordering::Relaxed);
    });
    db.put("b/1", "elsewhere")?;
    db.put("a/1", "here")?;
    // The hub's router calls it, soon after the put returns; the put elsewhere, routed
    // before, must not have.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while woken.load(Ordering::Relaxed) == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(woken.load(Ordering::Relaxed), 1);
    Ok(())
}

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").map_or(0, Iterator::count)
}

#[test]
fn ten_thousand_watches_opened_and_dropped_leave_no_thread_or_registration() -> revkv::Result<()> {
    let db = Db::temporary()?;
    db.put("k/0", "v")?;
    let before = threads();
    let mut watches = Vec::new();
    for i in 0..10_000 {
        let options = match i % 3 {
            0 => WatchOptions::prefix(format!("k/{i}")),
            1 => WatchOptions::range(format!("k/{i}"), format!("k/{i}~")),
            _ => WatchOptions::all().start(Revision::new(1)),
        };
        watches.push(db.watch(options)?);
    }
    assert_eq!(db.watchers(), 10_000);
    db.put("k/1", "v")?;
    drop(watches);
    assert_eq!(db.watchers(), 0);
    // Other tests run threads of their own meanwhile: only a surplus of thousands would show.
    assert!(
        threads() < before + 100,
        "{} threads, {before} before",
        threads()
    );
    Ok(())
}

#[test]
fn a_watch_on_top_of_a_lost_revision_is_refused() -> revkv::Result<()> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (original, copy) = (dir.path().join("original"), dir.path().join("copy"));
    let db = Db::options()
        .durability(Durability::Buffered)
        .open(&original)?;
    let durable = db.put("k", "1")?;
    db.flush()?;
    // A copy taken now, while the store runs, is what a crash would leave: the revisions
    // published after it are lost to it, and so is the rest of the run's reservation.
    copy_dir(&original, &copy);
    let seen = db.put("k", "2")?;
    drop(db);
    let restored = Db::options().durability(Durability::Buffered).open(&copy)?;
    let refused = restored
        .watch(WatchOptions::all().start(seen.next()))
        .unwrap_err();
    assert!(
        matches!(refused, Error::LostRevision { requested } if requested == seen),
        "{refused}"
    );
    let mut resumed = restored.watch(WatchOptions::all().start(durable.next()))?;
    let after = restored.put("k", "3")?;
    assert!(after > seen, "a lost revision is never reused");
    let (revision, events) = changes(&mut resumed);
    assert_eq!(
        (revision, summary(&events)),
        (after, vec!["+k=3".to_owned()])
    );
    Ok(())
}
