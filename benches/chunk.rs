//! One list chunk (limit 500, 256-byte values, exact remaining count included) at the first,
//! middle and last position of collections of 10k, 100k and 1M keys, on a store on disk.
//!
//! `cargo bench --bench chunk` (add `--no-default-features` for the system allocator);
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

/// The options of the chunk that starts `position` items into the list.
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
    for keys in sizes() {
        let count = usize::try_from(keys).expect("a collection fits in memory");
        let db = common::loaded_store(common::options(count.max(LIMIT)), keys);
        for (name, position) in [("first", 0), ("middle", count / 2), ("last", count - LIMIT)] {
            let options = chunk_at(&db, position);
            group.bench_with_input(BenchmarkId::new(name, keys), &options, |b, options| {
                b.iter(|| {
                    let page = db.list(options).expect("chunk");
                    assert_eq!(page.items.len(), LIMIT);
                    page.remaining
                });
            });
        }
    }
    group.finish();
}

criterion_group!(benches, chunk);
criterion_main!(benches);
