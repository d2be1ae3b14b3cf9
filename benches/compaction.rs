//! Compaction, after every key of the collection was rewritten once:
//!
//! - `compaction/compact`: the compaction itself (records removed per second);
//! - `compaction/chunk_idle` and `compaction/chunk_while_compacting`: the first chunk of 500 of
//!   the collection, with no compaction running and while one runs. Only chunks that start
//!   while a compaction runs are timed; the rewrites that make the next garbage are not.
//!
//! `cargo bench --bench compaction`; `REVKV_BENCH_KEYS` sets the collection's size (100,000).
//! `revkv bench` reports the same figures with percentiles.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use revkv::{Db, ListOptions};

use common::{size_from_env, LIMIT, PREFIX};

#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Rewrites every key once more, then compacts at the newest revision; returns how long the
/// compaction took.
fn rewrite_and_compact(db: &Db, keys: u64, version: &mut u64) -> Duration {
    *version += 1;
    common::write_collection(db, keys, *version, None);
    let started = Instant::now();
    let report = db.compact(db.current_revision()).expect("compact");
    let elapsed = started.elapsed();
    assert_eq!(
        report.removed_records, keys,
        "one superseded record per key"
    );
    elapsed
}

fn first_chunk(db: &Db) {
    let page = db
        .list(&ListOptions::prefix(PREFIX).limit(LIMIT))
        .expect("chunk");
    assert_eq!(page.items.len(), LIMIT);
}

fn compaction(c: &mut Criterion) {
    let keys = size_from_env("REVKV_BENCH_KEYS", 100_000);
    let db = common::loaded_store(common::options(LIMIT), keys);
    let mut version = 0;
    let mut group = c.benchmark_group("compaction");
    group.sample_size(10);

    group.throughput(Throughput::Elements(keys));
    group.bench_function(BenchmarkId::new("compact", keys), |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| rewrite_and_compact(&db, keys, &mut version))
                .sum()
        });
    });

    group.throughput(Throughput::Elements(1));
    group.bench_function(BenchmarkId::new("chunk_idle", keys), |b| {
        b.iter(|| first_chunk(&db));
    });
    group.bench_function(BenchmarkId::new("chunk_while_compacting", keys), |b| {
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            let mut done = 0;
            while done < iters {
                version += 1;
                common::write_collection(&db, keys, version, None);
                let compacting = AtomicBool::new(true);
                std::thread::scope(|scope| {
                    scope.spawn(|| {
                        db.compact(db.current_revision()).expect("compact");
                        compacting.store(false, Ordering::Release);
                    });
                    while done < iters && compacting.load(Ordering::Acquire) {
                        let started = Instant::now();
                        first_chunk(&db);
                        timed += started.elapsed();
                        done += 1;
                    }
                });
            }
            timed
        });
    });
    group.finish();
}

criterion_group!(benches, compaction);
criterion_main!(benches);
