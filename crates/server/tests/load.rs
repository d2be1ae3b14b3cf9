//! Many clients paging at once: concurrent kubectl-style lists over one collection while a
//! writer changes it, every list checked to be the snapshot of its revision, and the process's
//! resident memory (server and clients together) reported before and after. 50 clients by
//! default, to keep the test command quick on a debug build; `REVKV_LOAD_CLIENTS=1000 cargo
//! test --release -p revkv-server --test load -- --nocapture` is the full load.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use common::{versions, Server};
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

fn create(server: &Server, name: &str) {
    let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}});
    let response = server.request(
        "POST",
        "/api/v1/namespaces/load/configmaps",
        &[("content-type", "application/json")],
        body.to_string().as_bytes(),
    );
    assert_eq!(response.status, 201);
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
    let clients: usize = std::env::var("REVKV_LOAD_CLIENTS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(50);
    let server = Server::start(Config {
        limits: Limits {
            max_connections: clients + 64,
            ..Limits::default()
        },
        ..Config::default()
    });
    for i in 0..OBJECTS {
        create(&server, &format!("cm-{i:05}"));
    }
    let before = resident_kib();
    let stop = AtomicBool::new(false);
    let started = Instant::now();
    let (lists, writes) = std::thread::scope(|scope| {
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
                    .stack_size(256 * 1024)
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
    eprintln!(
        "{clients} clients: {pages} pages in {took:.2?} ({:.0} pages/s), {writes} writes meanwhile, \
         {} distinct snapshots; resident memory {before} KiB before, {after} KiB after",
        pages as f64 / took.as_secs_f64(),
        snapshots.len()
    );
}
