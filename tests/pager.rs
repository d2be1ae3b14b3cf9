//! Pagers: snapshot consistency under writers, the relist on Expired, early stops, bounded
//! prefetch, exact pages over filtered sources, and tokens that outlive the process.

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use revkv::{
    Db, Durability, Entry, Error, Items, ListOptions, ListPage, ListPager, Listed, Pages,
    Retention, Revision,
};

/// A store of `keys` keys `k/00`, `k/01`, ... that compacts only when told to.
fn store(keys: usize) -> Db {
    let db = Db::options()
        .durability(Durability::Buffered)
        .retention(Retention::Manual)
        .temporary()
        .unwrap();
    for i in 0..keys {
        db.put(format!("k/{i:02}"), format!("v{i}")).unwrap();
    }
    db
}

fn keys() -> ListOptions {
    ListOptions::prefix("k/")
}

/// The list's contents at `revision`, read in one chunk.
fn snapshot(db: &Db, revision: Revision) -> Vec<Entry> {
    let page = db.list(&keys().revision(revision)).unwrap();
    assert_eq!(page.continue_token, None, "the snapshot fits in one chunk");
    page.items
}

fn names(entries: &[Entry]) -> Vec<String> {
    entries
        .iter()
        .map(|entry| String::from_utf8_lossy(&entry.key).into_owned())
        .collect()
}

/// Hides the keys whose number is a multiple of 3, and all of `k/10` to `k/22`, as a filtered
/// list would: chunks come back short or empty, with their continue token.
fn filtered(db: &Db, options: &ListOptions) -> revkv::Result<ListPage> {
    let mut page = db.list(options)?;
    page.items.retain(|entry| !hidden(&entry.key));
    page.remaining = None;
    Ok(page)
}

fn hidden(key: &[u8]) -> bool {
    let number: usize = std::str::from_utf8(&key[2..]).unwrap().parse().unwrap();
    number.is_multiple_of(3) || (10..=22).contains(&number)
}

fn every_page<S: revkv::ListSource>(pages: &mut Pages<S>) -> Vec<Vec<Listed>> {
    std::iter::from_fn(|| pages.next_page().unwrap()).collect()
}

/// The entries of a list without a delimiter, which holds only items.
fn entries(listed: Vec<Listed>) -> Vec<Entry> {
    listed
        .into_iter()
        .map(|listed| listed.into_item().expect("no delimiter, no prefixes"))
        .collect()
}

/// Polls `done` until it holds, failing the test after a generous deadline.
fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn every_pager_reads_exactly_the_snapshot_of_its_first_chunk_while_writers_run() {
    let db = store(60);
    let revisions = Mutex::new(Vec::new());
    let writes = AtomicUsize::new(0);
    // Changes the list between every two chunks, on top of the background writer.
    let source = |options: &ListOptions| -> revkv::Result<ListPage> {
        let page = db.list(options)?;
        revisions.lock().unwrap().push(page.revision);
        let n = writes.fetch_add(1, Ordering::Relaxed);
        db.delete(format!("k/{:02}", (n * 7) % 60))?;
        db.put(format!("k/{:02}", 60 + n % 40), "new")?;
        Ok(page)
    };
    let stop = AtomicBool::new(false);
    thread::scope(|scope| {
        scope.spawn(|| {
            for n in 0.. {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                db.put(format!("k/{:02}", n % 99), format!("w{n}")).unwrap();
                thread::yield_now();
            }
        });
        let check = |name: &str, items: Vec<Entry>| {
            let revisions = std::mem::take(&mut *revisions.lock().unwrap());
            assert!(revisions.len() > 3, "{name} read several chunks");
            assert!(
                revisions.iter().all(|r| *r == revisions[0]),
                "{name}: {revisions:?}"
            );
            assert_eq!(names(&items), names(&snapshot(&db, revisions[0])), "{name}");
            assert_eq!(items, snapshot(&db, revisions[0]), "{name}");
        };
        let pager = ListPager::new(source).page_size(7).page_buffer_size(2);
        check("list", pager.list(&keys()).unwrap().items);
        for buffer in [0, 2] {
            let mut items = Vec::new();
            let pager = ListPager::new(source).page_size(7).page_buffer_size(buffer);
            pager
                .each(&keys(), |entry| {
                    items.push(entry);
                    Ok::<(), Error>(())
                })
                .unwrap();
            check(&format!("each with a buffer of {buffer}"), entries(items));
        }
        let items = Items::new(source, keys()).page_size(7);
        check(
            "items",
            entries(items.collect::<revkv::Result<_>>().unwrap()),
        );
        let mut pages = Pages::new(source, keys());
        pages.set_page_size(7);
        let pages = every_page(&mut pages);
        assert!(pages.iter().rev().skip(1).all(|page| page.len() == 7));
        check("pages", entries(pages.concat()));
        stop.store(true, Ordering::Relaxed);
    });
}

#[test]
fn a_list_that_fits_in_one_chunk_is_not_paginated() {
    let db = store(3);
    let list = ListPager::new(db.clone())
        .page_size(3)
        .list(&keys())
        .unwrap();
    assert!(!list.paginated && !list.relisted);
    assert_eq!(list.revision, db.current_revision());
    assert_eq!(list.items, snapshot(&db, list.revision));
}

#[test]
fn list_relists_at_the_newest_revision_when_a_later_chunk_expires() {
    let db = store(20);
    let first_revision = db.current_revision();
    let compacted = AtomicBool::new(false);
    let source = |options: &ListOptions| -> revkv::Result<ListPage> {
        let page = db.list(options)?;
        if !compacted.swap(true, Ordering::Relaxed) {
            db.put("k/50", "after the first chunk")?;
            db.delete("k/00")?;
            db.compact(db.current_revision())?;
        }
        Ok(page)
    };
    let list = ListPager::new(source).page_size(6).list(&keys()).unwrap();
    assert!(list.relisted && list.paginated);
    assert!(list.revision > first_revision);
    assert_eq!(list.revision, db.current_revision());
    assert_eq!(list.items, snapshot(&db, list.revision));
    assert_eq!(list.items.len(), 20);
    assert_eq!(list.items.last().unwrap().key, b"k/50");
}

#[test]
fn an_expired_relist_is_returned_instead_of_retried() {
    let db = store(20);
    let requests = AtomicUsize::new(0);
    // Every chunk outlives its revision.
    let source = |options: &ListOptions| -> revkv::Result<ListPage> {
        requests.fetch_add(1, Ordering::Relaxed);
        let page = db.list(options)?;
        db.put("k/50", "again")?;
        db.compact(db.current_revision())?;
        Ok(page)
    };
    let outcome = ListPager::new(source).page_size(6).list(&keys());
    assert!(matches!(outcome, Err(Error::Expired { .. })), "{outcome:?}");
    assert_eq!(
        requests.load(Ordering::Relaxed),
        4,
        "two chunks per attempt, two attempts"
    );
}

#[test]
fn an_expired_first_chunk_is_returned_without_relisting() {
    let db = store(5);
    let old = db.current_revision();
    db.put("k/00", "newer").unwrap();
    db.compact(db.current_revision()).unwrap();
    let requests = AtomicUsize::new(0);
    let source = |options: &ListOptions| {
        requests.fetch_add(1, Ordering::Relaxed);
        db.list(options)
    };
    let outcome = ListPager::new(source).list(&keys().revision(old));
    assert!(matches!(outcome, Err(Error::Expired { .. })), "{outcome:?}");
    assert_eq!(requests.load(Ordering::Relaxed), 1);
}

#[test]
fn without_the_fallback_list_and_each_return_expired() {
    let db = store(20);
    let compact_now = AtomicBool::new(false);
    let source = |options: &ListOptions| -> revkv::Result<ListPage> {
        let page = db.list(options)?;
        if compact_now.swap(false, Ordering::Relaxed) {
            db.put("k/50", "after the first chunk")?;
            db.compact(db.current_revision())?;
        }
        Ok(page)
    };

    compact_now.store(true, Ordering::Relaxed);
    let strict = ListPager::new(source)
        .page_size(6)
        .full_list_if_expired(false);
    let outcome = strict.list(&keys());
    assert!(matches!(outcome, Err(Error::Expired { .. })), "{outcome:?}");

    // `each` never relists, whatever the setting: the first chunk was visited once, and the
    // error carries the token that would finish the list inconsistently.
    compact_now.store(true, Ordering::Relaxed);
    let mut visited = Vec::new();
    let outcome = ListPager::new(source).page_size(6).each(&keys(), |listed| {
        visited.push(listed);
        Ok::<(), Error>(())
    });
    let Err(Error::Expired { continue_token, .. }) = outcome else {
        panic!("each did not expire: {outcome:?}")
    };
    assert!(continue_token.is_some());
    assert_eq!(
        names(&entries(visited)),
        names(&snapshot(&db, db.current_revision())[..6])
    );
}

#[derive(Debug)]
enum Stop {
    Enough,
    Store(Error),
}

impl From<Error> for Stop {
    fn from(error: Error) -> Self {
        Stop::Store(error)
    }
}

#[test]
fn each_stops_at_the_first_callback_error_and_so_does_its_prefetching_thread() {
    let db = store(40);
    let fetched = AtomicUsize::new(0);
    let source = |options: &ListOptions| {
        fetched.fetch_add(1, Ordering::SeqCst);
        db.list(options)
    };
    let buffer = 3;
    let pager = ListPager::new(source).page_size(1).page_buffer_size(buffer);
    let mut visited = 0;
    let outcome = pager.each(&keys(), |_| {
        visited += 1;
        if visited == 5 {
            return Err(Stop::Enough);
        }
        Ok(())
    });
    assert!(matches!(outcome, Err(Stop::Enough)), "{outcome:?}");
    assert_eq!(visited, 5);
    // Joined on return: the count is final.
    let fetched = fetched.load(Ordering::SeqCst);
    assert!(fetched <= 5 + buffer + 1, "fetched {fetched} chunks");
}

#[test]
fn each_converts_the_sources_errors_into_the_callbacks_error_type() {
    let source = |_: &ListOptions| -> revkv::Result<ListPage> {
        Err(Error::InvalidRequest {
            reason: "the network is down".into(),
        })
    };
    let outcome = ListPager::new(source).each(&keys(), |_| Err(Stop::Enough));
    assert!(
        matches!(outcome, Err(Stop::Store(Error::InvalidRequest { .. }))),
        "{outcome:?}"
    );
}

#[test]
fn prefetching_stays_within_the_page_buffer_while_the_callback_is_blocked() {
    let db = store(30);
    let fetched = AtomicUsize::new(0);
    let fetching_threads = Mutex::new(Vec::new());
    let source = |options: &ListOptions| {
        fetching_threads
            .lock()
            .unwrap()
            .push(thread::current().id());
        let page = db.list(options);
        fetched.fetch_add(1, Ordering::SeqCst);
        page
    };
    let buffer = 4;
    let pager = ListPager::new(source).page_size(1).page_buffer_size(buffer);
    let mut visited = 0;
    let mut most_ahead = 0;
    pager
        .each(&keys(), |_| {
            visited += 1;
            if visited == 1 {
                // The queue is full, and one more chunk waits to be queued.
                wait_until("the buffer is full", || {
                    fetched.load(Ordering::SeqCst) == 1 + buffer + 1
                });
                // Room for a producer that ignored the bound to overshoot: this can only hide
                // a bug, never fail a correct pager.
                thread::sleep(Duration::from_millis(50));
            }
            most_ahead = most_ahead.max(fetched.load(Ordering::SeqCst) - visited);
            Ok::<(), Error>(())
        })
        .unwrap();
    assert_eq!(visited, 30);
    assert_eq!(most_ahead, buffer + 1);
    let threads = fetching_threads.into_inner().unwrap();
    assert!(threads.iter().all(|id| *id != thread::current().id()));
}

#[test]
fn without_a_page_buffer_each_fetches_on_the_callers_thread_one_chunk_at_a_time() {
    let db = store(10);
    let caller = thread::current().id();
    let fetched = AtomicUsize::new(0);
    let source = |options: &ListOptions| {
        assert_eq!(thread::current().id(), caller);
        fetched.fetch_add(1, Ordering::SeqCst);
        db.list(options)
    };
    let mut visited = 0;
    ListPager::new(source)
        .page_size(1)
        .page_buffer_size(0)
        .each(&keys(), |_| {
            visited += 1;
            assert_eq!(fetched.load(Ordering::SeqCst), visited);
            Ok::<(), Error>(())
        })
        .unwrap();
    assert_eq!(visited, 10);
}

#[test]
fn a_source_that_panics_in_the_prefetching_thread_panics_each() {
    let db = store(10);
    let fetched = AtomicUsize::new(0);
    let source = |options: &ListOptions| {
        if fetched.fetch_add(1, Ordering::SeqCst) == 2 {
            panic!("the source broke");
        }
        db.list(options)
    };
    let mut visited = 0;
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
        ListPager::new(source).page_size(3).each(&keys(), |_| {
            visited += 1;
            Ok::<(), Error>(())
        })
    }));
    let panic = outcome.expect_err("a truncated list must not pass for a whole one");
    assert_eq!(panic.downcast_ref::<&str>(), Some(&"the source broke"));
    assert_eq!(visited, 6);
}

#[test]
fn items_end_after_an_error_without_skipping_or_repeating() {
    let db = store(10);
    let requests = AtomicUsize::new(0);
    let source = |options: &ListOptions| {
        if requests.fetch_add(1, Ordering::SeqCst) == 1 {
            return Err(Error::InvalidRequest {
                reason: "the network is down".into(),
            });
        }
        db.list(options)
    };
    let mut items = Items::new(source, keys()).page_size(4);
    let first = entries(items.by_ref().take(4).map(Result::unwrap).collect());
    assert_eq!(first, snapshot(&db, db.current_revision())[..4]);
    assert!(matches!(
        items.next(),
        Some(Err(Error::InvalidRequest { .. }))
    ));
    assert!(items.next().is_none());
    assert!(items.next().is_none(), "a failed iteration stays ended");
    assert_eq!(items.size_hint(), (0, Some(0)));
    assert_eq!(requests.load(Ordering::SeqCst), 2);
}

#[test]
fn remaining_counts_what_follows_the_items_and_pages_returned() {
    let db = store(10);
    let mut items = Items::new(db.clone(), keys()).page_size(4);
    assert_eq!((items.remaining(), items.size_hint()), (None, (0, None)));
    for returned in 1..=10 {
        items.next().unwrap().unwrap();
        let left = 10 - returned;
        assert_eq!(items.remaining(), Some(left as u64));
        assert_eq!(items.size_hint().1, Some(left));
    }
    assert!(items.next().is_none());

    let mut pages = Pages::new(db, keys());
    pages.set_page_size(3);
    let mut left = Vec::new();
    while pages.next_page().unwrap().is_some() {
        left.push(pages.remaining().unwrap());
    }
    assert_eq!(left, [7, 4, 1, 0]);
}

#[test]
fn pages_are_exactly_the_page_size_across_short_and_empty_chunks() {
    let db = store(40);
    let chunks = Mutex::new(Vec::new());
    let source = |options: &ListOptions| {
        let page = filtered(&db, options)?;
        chunks
            .lock()
            .unwrap()
            .push((page.items.len(), page.continue_token.is_some()));
        Ok(page)
    };
    let mut pages = Pages::new(source, keys());
    pages.set_page_size(4);
    let mut sizes = Vec::new();
    let mut items = Vec::new();
    for _ in 0..3 {
        let page = pages.next_page().unwrap().unwrap();
        sizes.push(page.len());
        items.extend(page);
    }
    pages.set_page_size(3);
    for page in every_page(&mut pages) {
        sizes.push(page.len());
        items.extend(page);
    }
    assert_eq!(sizes, [4, 4, 4, 3, 2]);
    assert_eq!(pages.next_page_token(), None);
    assert_eq!(pages.next_page().unwrap(), None);
    assert_eq!(pages.remaining(), None, "a filtered source does not count");
    let expected: Vec<Entry> = snapshot(&db, db.current_revision())
        .into_iter()
        .filter(|entry| !hidden(&entry.key))
        .collect();
    assert_eq!(entries(items), expected);
    let chunks = chunks.into_inner().unwrap();
    assert!(
        chunks.contains(&(0, true)),
        "an empty chunk went on: {chunks:?}"
    );
}

#[test]
fn a_page_token_resumes_right_after_the_last_returned_item() {
    let db = store(40);
    let source = |options: &ListOptions| filtered(&db, options);
    let mut whole = Pages::new(source, keys());
    whole.set_page_size(3);
    let expected = every_page(&mut whole);

    let mut resumed = Vec::new();
    let mut token = None;
    loop {
        let mut pages = Pages::new(source, keys());
        pages.set_page_size(3);
        if let Some(token) = token {
            pages.set_page_token(token);
        }
        let Some(page) = pages.next_page().unwrap() else {
            break;
        };
        resumed.push(page);
        token = pages.next_page_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    assert_eq!(resumed, expected);
}

#[test]
fn a_failed_page_is_requested_again_without_skipping_or_repeating() {
    let db = store(40);
    let requests = AtomicUsize::new(0);
    let source = |options: &ListOptions| {
        // The fourth request falls in the middle of the second page.
        if requests.fetch_add(1, Ordering::SeqCst) == 3 {
            return Err(Error::InvalidRequest {
                reason: "the network is down".into(),
            });
        }
        filtered(&db, options)
    };
    let mut pages = Pages::new(source, keys());
    pages.set_page_size(4);
    let mut items = pages.next_page().unwrap().unwrap();
    let token = pages.next_page_token().map(str::to_owned);
    assert!(pages.next_page().is_err());
    assert_eq!(pages.next_page_token().map(str::to_owned), token);
    for page in every_page(&mut pages) {
        items.extend(page);
    }
    let mut whole = Pages::new(|options: &ListOptions| filtered(&db, options), keys());
    assert_eq!(items, every_page(&mut whole).concat());
}

#[test]
fn pages_resume_by_token_after_the_store_is_reopened() -> revkv::Result<()> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let (first, token, revision) = {
        let db = Db::open(&path)?;
        for i in 0..23 {
            db.put(format!("k/{i:02}"), "before")?;
        }
        let mut pages = Pages::new(db.clone(), keys());
        pages.set_page_size(5);
        let first = [pages.next_page()?.unwrap(), pages.next_page()?.unwrap()].concat();
        let token = pages.next_page_token().unwrap().to_owned();
        (first, token, db.current_revision())
    };
    {
        let db = Db::open(&path)?;
        db.delete("k/20")?;
        db.put("k/09", "after")?;
        db.put("k/99", "after")?;
    }
    let db = Db::open(&path)?;
    let mut pages = Pages::new(db.clone(), keys());
    pages.set_page_size(5);
    pages.set_page_token(token);
    let rest = every_page(&mut pages);
    assert_eq!(rest.iter().map(Vec::len).collect::<Vec<_>>(), [5, 5, 3]);
    assert_eq!(
        entries([first, rest.concat()].concat()),
        snapshot(&db, revision)
    );
    Ok(())
}

#[test]
fn a_source_that_never_moves_on_ends_the_list_with_an_error_instead_of_looping() {
    let stuck = |_: &ListOptions| {
        Ok(ListPage {
            items: Vec::new(),
            prefixes: Vec::new(),
            revision: Revision::new(1),
            continue_token: Some("stuck".into()),
            remaining: Some(1),
        })
    };
    let mut items = Items::new(stuck, ListOptions::all());
    let error = items
        .next()
        .expect("an outcome")
        .expect_err("no progress is an error");
    assert_eq!(error.reason(), "InvalidRequest", "{error}");
    assert!(items.next().is_none());
    let mut pages = Pages::new(stuck, ListOptions::all());
    assert!(pages.next_page().is_err());
}

/// A name of a delimiter listing: a key, or a common prefix (`true`).
type Name = (bool, String);

fn name(listed: &Listed) -> Name {
    let key = String::from_utf8(listed.key().to_vec()).unwrap();
    (matches!(listed, Listed::Prefix(_)), key)
}

/// Files and folders under `f/`, with names that sort between a folder and its keys (`f/a.txt`
/// before `f/a/`, `f/b` before `f/b/`), and their listing by `/`, computed naively: every key
/// rolled up at its first `/` after `f/`, each prefix once, in key order.
fn folders() -> (Db, Vec<Name>) {
    let mut keys = std::collections::BTreeSet::new();
    for folder in ["a", "b", "d", "d/deep"] {
        for i in 0..3 {
            keys.insert(format!("f/{folder}/{i}"));
        }
    }
    for file in ["a.txt", "b", "c", "c0", "e"] {
        keys.insert(format!("f/{file}"));
    }
    let db = store(0);
    let mut names: Vec<Name> = Vec::new();
    for key in &keys {
        db.put(key.as_str(), "v").unwrap();
        let name = match key[2..].find('/') {
            Some(at) => (true, key[..2 + at + 1].to_string()),
            None => (false, key.clone()),
        };
        if names.last() != Some(&name) {
            names.push(name);
        }
    }
    (db, names)
}

#[test]
fn every_pager_carries_common_prefixes_in_list_order_across_small_pages() {
    let (db, forward) = folders();
    for reverse in [false, true] {
        let mut expected = forward.clone();
        if reverse {
            expected.reverse();
        }
        let options = ListOptions::prefix("f/").delimiter("/").reverse(reverse);
        for size in 1..=3 {
            let case = format!("reverse {reverse}, page size {size}");
            let list = ListPager::new(db.clone())
                .page_size(size)
                .list(&options)
                .unwrap();
            let split = |prefixes: bool| -> Vec<String> {
                let names = expected.iter().filter(|(prefix, _)| *prefix == prefixes);
                names.map(|(_, name)| name.clone()).collect()
            };
            assert_eq!(names(&list.items), split(false), "list, {case}");
            let prefixes: Vec<String> = list
                .prefixes
                .iter()
                .map(|prefix| String::from_utf8_lossy(prefix).into_owned())
                .collect();
            assert_eq!(prefixes, split(true), "list, {case}");
            for buffer in [0, 2] {
                let mut visited = Vec::new();
                ListPager::new(db.clone())
                    .page_size(size)
                    .page_buffer_size(buffer)
                    .each(&options, |listed| {
                        visited.push(name(&listed));
                        Ok::<(), Error>(())
                    })
                    .unwrap();
                assert_eq!(visited, expected, "each with a buffer of {buffer}, {case}");
            }
            let items: Vec<Name> = Items::new(db.clone(), options.clone())
                .page_size(size)
                .map(|listed| name(&listed.unwrap()))
                .collect();
            assert_eq!(items, expected, "items, {case}");
            let mut pages = Pages::new(db.clone(), options.clone());
            pages.set_page_size(size);
            let pages = every_page(&mut pages);
            assert!(pages.iter().rev().skip(1).all(|page| page.len() == size));
            let paged: Vec<Name> = pages.concat().iter().map(name).collect();
            assert_eq!(paged, expected, "pages, {case}");
        }
    }
}
