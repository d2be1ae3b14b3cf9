//! One list chunk (limit 500, exact remaining count included) at the first, middle and last
//! position of collections of 10k, 100k and 1M keys written, on a store on disk. The chunks
//! list `/registry/configmaps/` across its 100 namespaces; the collections are written as
//! `REVKV_BENCH_WORKLOAD` and `REVKV_BENCH_VALUE_SIZE` say (interleaved and random order, with
//! churn, values of 256 B and 4 KiB, by default; see `benches/common`).
//!
//! `cargo bench -p revkv-bench --bench chunk` (add `--no-default-features` for the system allocator);
//! `REVKV_BENCH_SIZES=10000,100000,1000000` chooses the sizes.

mod common;

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use revkv::{Db, ListOptions};

use common::{LIMIT, PREFIX};

#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn sizes() -> Vec<u64> {
    std::env::var("REVKV_BENCH_SIZES")
        .ok()
        .map(|sizes| {
            sizes
                .split(',')
                .map(|size| {
                    let size = size.trim().parse().expect("sizes are numbers");
                    assert!(
                        size >= LIMIT as u64,
                        "sizes are at least one chunk, {LIMIT}"
                    );
                    size
                })
                .collect()
        })
        .unwrap_or_else(|| vec![10_000, 100_000, 1_000_000])
}

/// The options of the chunk that starts `position` items into the list, continuing from a
/// token as a client does.
fn chunk_at(db: &Db, position: usize) -> ListOptions {
    let base = ListOptions::prefix(PREFIX).limit(LIMIT);
    if position == 0 {
        return base;
    }
    let skipped = db
        .list(&ListOptions::prefix(PREFIX).limit(position))
        .expect("skip");
    base.continue_token(skipped.continue_token.expect("more items follow"))
}

fn chunk(c: &mut Criterion) {
    let mut group = c.benchmark_group("chunk");
    group.measurement_time(Duration::from_secs(5));
    for collection in common::collections() {
        let workload = common::name(collection);
        for keys in sizes() {
            let live = common::live(collection, keys);
            let live = usize::try_from(live).expect("a collection fits in memory");
            assert!(live >= 2 * LIMIT, "{keys} keys leave fewer than two chunks");
            let db = common::loaded_store(common::options(live.max(LIMIT)), collection, keys);
            for (name, position) in [("first", 0), ("middle", live / 2), ("last", live - LIMIT)] {
                let options = chunk_at(&db, position);
                let remaining = Some((live - position - LIMIT) as u64);
                let id = BenchmarkId::new(format!("{workload}/{name}"), keys);
                group.bench_with_input(id, &options, |b, options| {
                    b.iter(|| {
                        let page = db.list(options).expect("chunk");
                        assert_eq!(page.items.len(), LIMIT);
                        assert_eq!(page.remaining, remaining);
                    });
                });
            }
        }
    }
    group.finish();
}

criterion_group!(benches, chunk);
criterion_main!(benches);
