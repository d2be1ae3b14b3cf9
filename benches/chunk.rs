//! One list chunk (limit 500, 256-byte values, exact remaining count included) at the first,
//! middle and last position of collections of 10k, 100k and 1M keys.
//!
//! `cargo bench --bench chunk` (add `--no-default-features` for the system allocator); set `REVKV_BENCH_SIZES=10000,100000,1000000` to choose sizes.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use revkv::{Db, Durability, ListOptions, Op, Retention, Txn};

#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const LIMIT: usize = 500;
const VALUE_SIZE: usize = 256;

fn sizes() -> Vec<usize> {
    std::env::var("REVKV_BENCH_SIZES")
        .ok()
        .map(|sizes| {
            sizes
                .split(',')
                .map(|s| s.trim().parse().expect("sizes are numbers"))
                .collect()
        })
        .unwrap_or_else(|| vec![10_000, 100_000, 1_000_000])
}

fn loaded_store(keys: usize) -> Db {
    let db = Db::options()
        .durability(Durability::Buffered)
        .retention(Retention::Manual)
        .max_page_size(keys.max(LIMIT))
        .cache_bytes(1 << 30)
        .temporary()
        .expect("temporary store");
    let value = vec![b'v'; VALUE_SIZE];
    for start in (0..keys).step_by(1000) {
        let ops = (start..(start + 1000).min(keys))
            .map(|i| Op::put(format!("bench/{i:08}"), value.clone()));
        db.txn(Txn::new().then(ops)).expect("load");
    }
    db.flush().expect("flush");
    db
}

/// The options of the chunk that starts `position` items into the list.
fn chunk_at(db: &Db, position: usize) -> ListOptions {
    let base = ListOptions::prefix("bench/").limit(LIMIT);
    if position == 0 {
        return base;
    }
    let skipped = db
        .list(&ListOptions::prefix("bench/").limit(position))
        .expect("skip");
    base.continue_token(skipped.continue_token.expect("more items follow"))
}

fn chunk(c: &mut Criterion) {
    let mut group = c.benchmark_group("chunk");
    group.measurement_time(Duration::from_secs(5));
    for keys in sizes() {
        let db = loaded_store(keys);
        for (name, position) in [("first", 0), ("middle", keys / 2), ("last", keys - LIMIT)] {
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
