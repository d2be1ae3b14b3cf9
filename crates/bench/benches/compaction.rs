//! Compaction, after every live key of the collection was rewritten once (the churn's own
//! garbage is compacted away first, untimed):
//!
//! - `compaction/<workload>/compact`: the compaction itself (records removed per second);
//! - `compaction/<workload>/chunk_idle` and `.../chunk_while_compacting`: the first chunk of
//!   500 of the collection, with no compaction running and while one runs. Only chunks that
//!   start while a compaction runs are timed; the rewrites that make the next garbage are not.
//!
//! `cargo bench -p revkv-bench --bench compaction`; `REVKV_BENCH_KEYS` sets the collection's size (100,000),
//! `REVKV_BENCH_WORKLOAD` and `REVKV_BENCH_VALUE_SIZE` how it is written (see `benches/common`).
//! `revkv bench` reports the same figures with percentiles.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BenchmarkGroup, BenchmarkId, Criterion, Throughput,
};
use revkv::{Db, ListOptions};
use revkv_bench::load::Collection;

use common::{size_from_env, LIMIT, PREFIX};

#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Rewrites every live key once more, then compacts at the newest revision; returns how long
/// the compaction took.
fn rewrite_and_compact(
    db: &Db,
    collection: Collection,
    keys: u64,
    live: u64,
    round: &mut u64,
) -> Duration {
    *round += 1;
    common::rewrite_collection(db, collection, keys, *round);
    let started = Instant::now();
    let report = db.compact(db.current_revision()).expect("compact");
    let elapsed = started.elapsed();
    assert_eq!(
        report.removed_records, live,
        "one superseded record per live key"
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
    let mut group = c.benchmark_group("compaction");
    group.sample_size(10);
    for collection in common::collections() {
        compaction_of(&mut group, collection, keys);
    }
    group.finish();
}

fn compaction_of(group: &mut BenchmarkGroup<'_, WallTime>, collection: Collection, keys: u64) {
    let db = common::loaded_store(common::options(LIMIT), collection, keys);
    db.compact(db.current_revision())
        .expect("compact the churn");
    let live = common::live(collection, keys);
    let workload = common::name(collection);
    let mut round = 0;

    group.throughput(Throughput::Elements(live));
    group.bench_function(BenchmarkId::new(format!("{workload}/compact"), keys), |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| rewrite_and_compact(&db, collection, keys, live, &mut round))
                .sum()
        });
    });

    group.throughput(Throughput::Elements(1));
    let id = BenchmarkId::new(format!("{workload}/chunk_idle"), keys);
    group.bench_function(id, |b| {
        b.iter(|| first_chunk(&db));
    });
    let id = BenchmarkId::new(format!("{workload}/chunk_while_compacting"), keys);
    group.bench_function(id, |b| {
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            let mut done = 0;
            while done < iters {
                round += 1;
                common::rewrite_collection(&db, collection, keys, round);
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
}

criterion_group!(benches, compaction);
criterion_main!(benches);
