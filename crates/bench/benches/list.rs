//! Whole lists and filtered chunks, each read at a pinned revision:
//!
//! - `list/<workload>/paged`: every live key of the collection, page after page, each page with
//!   its exact remaining count (items/s);
//! - `list/<workload>/filtered`: the first chunk of 500 entries labelled `bench=match`, when 1%
//!   of the collection is (one object in 100 of each namespace).
//!
//! `cargo bench -p revkv-bench --bench list`; `REVKV_BENCH_KEYS` sets the collection's size in keys written
//! (100,000 by default; the README's figures use 1,000,000), `REVKV_BENCH_PAGE` the page size
//! of the paged list (10,000: the largest a store allows by default), and
//! `REVKV_BENCH_WORKLOAD` and `REVKV_BENCH_VALUE_SIZE` how the collections are written
//! (interleaved and random order, with churn, values of 256 B and 4 KiB, by default; see
//! `benches/common`).

mod common;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use revkv::selector::LabelSelector;
use revkv::{Db, ListOptions};

use common::{size_from_env, LIMIT, PREFIX};

#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// One object in this many of each namespace carries the label the filtered chunk selects.
const STRIDE: u64 = 100;

/// Lists the whole collection in pages of `page`; returns how many entries it read.
fn list_all(db: &Db, page: usize) -> u64 {
    let mut options = ListOptions::prefix(PREFIX).limit(page);
    let mut listed = 0;
    loop {
        let chunk = db.list(&options).expect("chunk");
        listed += chunk.items.len() as u64;
        match chunk.continue_token {
            Some(token) => {
                options = ListOptions::prefix(PREFIX)
                    .limit(page)
                    .continue_token(token)
            }
            None => return listed,
        }
    }
}

/// The first `LIMIT` entries labelled `bench=match`. The store filters; a chunk that reaches
/// its scan budget comes back short, and the client continues until it has `LIMIT` entries.
fn filtered_chunk(db: &Db, selector: &LabelSelector) -> usize {
    let mut options = ListOptions::prefix(PREFIX).label_selector(selector.clone());
    let mut matched = 0;
    while matched < LIMIT {
        let chunk = db
            .list(&options.clone().limit(LIMIT - matched))
            .expect("chunk");
        matched += chunk.items.len();
        match chunk.continue_token {
            Some(token) => {
                options = ListOptions::prefix(PREFIX)
                    .label_selector(selector.clone())
                    .continue_token(token);
            }
            None => break,
        }
    }
    matched
}

fn list(c: &mut Criterion) {
    let keys = size_from_env("REVKV_BENCH_KEYS", 100_000);
    let page = size_from_env("REVKV_BENCH_PAGE", 10_000) as usize;
    let mut group = c.benchmark_group("list");
    group.sample_size(10);
    for collection in common::collections() {
        let db = common::store(common::options(page.max(LIMIT)));
        common::load_collection(&db, collection, keys, Some(STRIDE));
        let live = common::live(collection, keys);
        let workload = common::name(collection);

        group.throughput(Throughput::Elements(live));
        let id = BenchmarkId::new(format!("{workload}/paged_{page}"), keys);
        group.bench_function(id, |b| {
            b.iter(|| assert_eq!(list_all(&db, page), live));
        });
        group.throughput(Throughput::Elements(LIMIT as u64));
        let expected = LIMIT.min(common::selected(collection, keys, STRIDE) as usize);
        let id = BenchmarkId::new(format!("{workload}/filtered_1pct"), keys);
        group.bench_function(id, |b| {
            let selector = "bench=match".parse().expect("a valid selector");
            b.iter(|| assert_eq!(filtered_chunk(&db, &selector), expected));
        });
    }
    group.finish();
}

criterion_group!(benches, list);
criterion_main!(benches);
