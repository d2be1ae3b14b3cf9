//! Many clients at once, while a writer changes what they read, and the process's resident
//! memory (server and clients together) reported before and after:
//! - concurrent kubectl-style paged lists over one collection, every list checked to be the
//!   snapshot of its revision; 50 clients by default, `REVKV_LOAD_CLIENTS=1000` for the full
//!   load;
//! - concurrent watches of namespaces and of every namespace, every one checked to stream
//!   exactly the writer's changes in its range, in revision order, with memory bounded per
//!   watcher; 50 watchers by default, `REVKV_LOAD_WATCHERS=1000` for the full load.
//!
//! The defaults keep the test command quick on a debug build; the full load is
//! `REVKV_LOAD_CLIENTS=1000 REVKV_LOAD_WATCHERS=1000 cargo test --release -p revkv-server
//! --test load -- --nocapture`.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{versions, Server, Watch};
use revkv_server::{Config, Limits};
use serde_json::{json, Value};

const OBJECTS: usize = 2000;
const LIMIT: usize = 250;

fn resident_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches(" kB").parse().ok())
        .unwrap_or(0)
}

/// Held by each test while it runs: both weigh the one process's memory.
static ALONE: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Takes the process for the calling test alone, and starts a server that `clients` may
/// connect to at once.
fn start_alone(clients: usize) -> (std::sync::MutexGuard<'static, ()>, Server) {
    let alone = ALONE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let server = Server::start(Config {
        limits: Limits {
            max_connections: clients + 64,
            ..Limits::default()
        },
        ..Config::default()
    });
    (alone, server)
}

/// A count from the environment variable `name`, or `default`.
fn count_from_env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// Sends an object's JSON; returns the resourceVersion the server answers with.
fn send(server: &Server, method: &str, path: &str, expected: u16, body: &Value) -> String {
    let response = server.request(
        method,
        path,
        &[("content-type", "application/json")],
        body.to_string().as_bytes(),
    );
    assert_eq!(
        response.status,
        expected,
        "{method} {path}: {}",
        String::from_utf8_lossy(&response.body)
    );
    let answer = response.json();
    answer["metadata"]["resourceVersion"]
        .as_str()
        .expect("a resourceVersion")
        .to_owned()
}

/// Creates a ConfigMap; returns its resourceVersion.
fn create_in(server: &Server, namespace: &str, name: &str) -> String {
    let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}});
    let path = format!("/api/v1/namespaces/{namespace}/configmaps");
    send(server, "POST", &path, 201, &body)
}

fn create(server: &Server, name: &str) {
    create_in(server, "load", name);
}

/// One paged list: the names and resourceVersions of its items, and its revision.
fn page_through(server: &Server) -> (BTreeMap<String, String>, String) {
    let mut items = BTreeMap::new();
    let mut token = String::new();
    let mut revision = None;
    loop {
        let path = format!("/api/v1/namespaces/load/configmaps?limit={LIMIT}&continue={token}");
        let response = server.request("GET", &path, &[], b"");
        assert_eq!(
            response.status,
            200,
            "{}",
            String::from_utf8_lossy(&response.body)
        );
        let page: Value = response.json();
        let rv = page["metadata"]["resourceVersion"]
            .as_str()
            .expect("rv")
            .to_owned();
        assert_eq!(
            revision.get_or_insert_with(|| rv.clone()),
            &rv,
            "one revision per list"
        );
        items.extend(versions(&page));
        match page["metadata"]["continue"].as_str() {
            Some(next) => token = next.to_owned(),
            None => return (items, rv),
        }
    }
}

#[test]
fn concurrent_paging_clients_each_get_an_exact_snapshot() {
    let clients = count_from_env("REVKV_LOAD_CLIENTS", 50);
    let (_alone, server) = start_alone(clients);
    for i in 0..OBJECTS {
        create(&server, &format!("cm-{i:05}"));
    }
    let before = resident_kib();
    let stop = AtomicBool::new(false);
    let started = Instant::now();
    let ((lists, writes), peak) = peak_while(|| {
        std::thread::scope(|scope| {
            let writer = scope.spawn(|| {
                let mut written = 0;
                while !stop.load(Ordering::Relaxed) {
                    create(&server, &format!("new-{written:06}"));
                    written += 1;
                }
                written
            });
            let listers: Vec<_> = (0..clients)
                .map(|_| {
                    std::thread::Builder::new()
                        .stack_size(CLIENT_STACK)
                        .spawn_scoped(scope, || page_through(&server))
                        .expect("thread")
                })
                .collect();
            let lists: Vec<_> = listers
                .into_iter()
                .map(|lister| lister.join().expect("lister"))
                .collect();
            stop.store(true, Ordering::Relaxed);
            (lists, writer.join().expect("writer"))
        })
    });
    let took = started.elapsed();
    let after = resident_kib();

    // Each list must be the collection exactly at its revision.
    let mut snapshots: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for (items, revision) in &lists {
        let expected = snapshots.entry(revision.clone()).or_insert_with(|| {
            let path = format!(
                "/api/v1/namespaces/load/configmaps?resourceVersion={revision}&resourceVersionMatch=Exact"
            );
            versions(&server.request("GET", &path, &[], b"").json())
        });
        assert_eq!(
            items, expected,
            "the list at revision {revision} is not its snapshot"
        );
    }
    let pages = lists
        .iter()
        .map(|(items, _)| items.len().div_ceil(LIMIT))
        .sum::<usize>();
    // The store pins at most its snapshot budget; each client adds its thread, the pages in
    // flight on its connection, and the list it holds until the end.
    let held: u64 = lists.iter().map(|(items, _)| items.len() as u64).sum();
    let budget = (revkv::DEFAULT_PINNED_BYTES / 1024) as u64
        + clients as u64 * PAGING_CLIENT_KIB
        + held * HELD_ITEM_BYTES / 1024;
    eprintln!(
        "{clients} clients: {pages} pages in {took:.2?} ({:.0} pages/s), {writes} writes meanwhile, \
         {} distinct snapshots; resident memory {before} KiB before, {peak} KiB at the peak, \
         {after} KiB after (budget: {budget} KiB above the start)",
        pages as f64 / took.as_secs_f64(),
        snapshots.len()
    );
    assert!(
        peak.saturating_sub(before) <= budget,
        "the peak is {} KiB above the start, over the budget of {budget} KiB",
        peak - before
    );
}

/// What a paging client may add to resident memory besides the items it holds: its thread's
/// stack, and two pages of objects of at most 1 KiB in flight (the server's and its own).
const PAGING_CLIENT_KIB: u64 = CLIENT_STACK as u64 / 1024 + 2 * LIMIT as u64;
/// An item a client holds until the end: a name and a resourceVersion in a map.
const HELD_ITEM_BYTES: u64 = 256;

/// Namespaces the watched writer writes to. Watcher `i` watches namespace `i % (N + 1)`, or
/// every namespace when that is `N`.
const WATCHED_NAMESPACES: usize = 4;
/// Changes the writer makes while the watchers watch: each object is created, replaced and
/// deleted in turn.
const WATCHED_CHANGES: usize = 300;
/// The name of the object the writer creates last in each namespace, which ends each watch.
const LAST: &str = "last";
/// The stack of each client thread: what each can make resident at most.
const CLIENT_STACK: usize = 256 * 1024;
/// The lines and notifications the server buffers for a watcher before it waits for it
/// (the server's `LINES` and `WATCH_CHANNEL`), each at most this large here.
const BUFFERED_EVENTS: u64 = 64 + 64;
const EVENT_KIB: u64 = 1;
/// What the store may keep resident per change made: its records, index entries and cache.
const CHANGE_KIB: u64 = 16;
/// What a watcher may add to resident memory: its client thread's stack, and the events the
/// server buffers for it.
const WATCHER_KIB: u64 = CLIENT_STACK as u64 / 1024 + BUFFERED_EVENTS * EVENT_KIB;

/// One event as a watcher checks it: type, `namespace/name`, resourceVersion.
type Event = (String, String, String);

/// The resident memory at its peak while `work` runs, sampled every few milliseconds.
fn peak_while<T>(work: impl FnOnce() -> T) -> (T, u64) {
    let done = AtomicBool::new(false);
    let peak = AtomicU64::new(resident_kib());
    let output = std::thread::scope(|scope| {
        scope.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(resident_kib(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        let output = work();
        done.store(true, Ordering::Relaxed);
        output
    });
    (output, peak.load(Ordering::Relaxed).max(resident_kib()))
}

/// The namespace watcher `index` watches; `None` for every namespace.
fn watched(index: usize) -> Option<String> {
    let namespace = index % (WATCHED_NAMESPACES + 1);
    (namespace < WATCHED_NAMESPACES).then(|| format!("watched-{namespace}"))
}

/// Reads a watch until it has seen the last object of every namespace it watches; returns its
/// events but bookmarks, which carry no change.
fn watch_until_last(server: &Server, namespace: Option<&str>, from: &str) -> Vec<Event> {
    let collection = match namespace {
        Some(namespace) => format!("/api/v1/namespaces/{namespace}/configmaps"),
        None => "/api/v1/configmaps".to_owned(),
    };
    let path = format!("{collection}?watch=1&resourceVersion={from}&allowWatchBookmarks=true");
    let mut watch = Watch::open(server.addr, &path);
    let namespaces = if namespace.is_some() {
        1
    } else {
        WATCHED_NAMESPACES
    };
    let mut events = Vec::new();
    let mut lasts = 0;
    while lasts < namespaces {
        let event = watch
            .next_event()
            .expect("the watch streams until the last object");
        let kind = event["type"].as_str().expect("a type").to_owned();
        assert_ne!(kind, "ERROR", "{event}");
        if kind == "BOOKMARK" {
            continue;
        }
        let meta = &event["object"]["metadata"];
        let name = meta["name"].as_str().expect("a name");
        lasts += usize::from(name == LAST);
        events.push((
            kind,
            format!(
                "{}/{name}",
                meta["namespace"].as_str().expect("a namespace")
            ),
            meta["resourceVersion"].as_str().expect("an rv").to_owned(),
        ));
    }
    events
}

/// Makes the watched changes, one after another; returns them in revision order.
fn write_watched_changes(server: &Server) -> Vec<Event> {
    let mut log = Vec::new();
    for change in 0..WATCHED_CHANGES {
        let namespace = format!("watched-{}", change % WATCHED_NAMESPACES);
        let step = change / WATCHED_NAMESPACES;
        let name = format!("object-{}", step / 3);
        let path = format!("/api/v1/namespaces/{namespace}/configmaps/{name}");
        let (kind, rv) = match step % 3 {
            0 => ("ADDED", create_in(server, &namespace, &name)),
            1 => {
                let body = json!({"metadata": {"name": name}, "data": {"step": step.to_string()}});
                ("MODIFIED", send(server, "PUT", &path, 200, &body))
            }
            _ => ("DELETED", send(server, "DELETE", &path, 200, &json!({}))),
        };
        log.push((kind.to_owned(), format!("{namespace}/{name}"), rv));
    }
    for index in 0..WATCHED_NAMESPACES {
        let namespace = format!("watched-{index}");
        let rv = create_in(server, &namespace, LAST);
        log.push(("ADDED".to_owned(), format!("{namespace}/{LAST}"), rv));
    }
    log
}

#[test]
fn concurrent_watchers_each_get_exactly_their_changes_in_order() {
    let watchers = count_from_env("REVKV_LOAD_WATCHERS", 50);
    let (_alone, server) = start_alone(watchers);
    for index in 0..WATCHED_NAMESPACES {
        create_in(&server, &format!("watched-{index}"), "first");
    }
    let listed = server.request("GET", "/api/v1/configmaps", &[], b"").json();
    let from = listed["metadata"]["resourceVersion"]
        .as_str()
        .expect("rv")
        .to_owned();
    let before = resident_kib();
    let started = Instant::now();
    let ((log, streams), peak) = peak_while(|| {
        std::thread::scope(|scope| {
            let streams: Vec<_> = (0..watchers)
                .map(|index| {
                    let (server, from) = (&server, &from);
                    std::thread::Builder::new()
                        .stack_size(CLIENT_STACK)
                        .spawn_scoped(scope, move || {
                            watch_until_last(server, watched(index).as_deref(), from)
                        })
                        .expect("thread")
                })
                .collect();
            let log = write_watched_changes(&server);
            let streams: Vec<_> = streams
                .into_iter()
                .map(|stream| stream.join().expect("watcher"))
                .collect();
            (log, streams)
        })
    });
    let took = started.elapsed();
    // The streams have ended on the client's side; the server notices, and lets go of them.
    std::thread::sleep(Duration::from_millis(500));
    let after = resident_kib();

    for (index, events) in streams.iter().enumerate() {
        let expected: Vec<&Event> = match watched(index) {
            Some(namespace) => log
                .iter()
                .filter(|(_, name, _)| name.starts_with(&format!("{namespace}/")))
                .collect(),
            None => log.iter().collect(),
        };
        assert_eq!(
            events.iter().collect::<Vec<_>>(),
            expected,
            "watcher {index} of {:?}",
            watched(index)
        );
    }
    // Applied to the list the watches started from, every namespace's events make the list at
    // the end.
    let mut state = versions(&listed);
    for (kind, name, rv) in &log {
        match kind.as_str() {
            "DELETED" => state.remove(name),
            _ => state.insert(name.clone(), rv.clone()),
        };
    }
    let listed_at_end = server.request("GET", "/api/v1/configmaps", &[], b"").json();
    assert_eq!(state, versions(&listed_at_end));

    let events: usize = streams.iter().map(Vec::len).sum();
    let budget = watchers as u64 * WATCHER_KIB + log.len() as u64 * CHANGE_KIB;
    eprintln!(
        "{watchers} watchers: {events} events of {} changes in {took:.2?}; resident memory \
         {before} KiB before, {peak} KiB at the peak, {after} KiB after (budget: {budget} KiB \
         above the start, {WATCHER_KIB} KiB a watcher and {CHANGE_KIB} KiB a change)",
        log.len()
    );
    assert!(
        peak.saturating_sub(before) <= budget,
        "the peak is {} KiB above the start, over the budget of {budget} KiB",
        peak - before
    );
}
