//! Durable writes on a fresh store on disk (every write is synced before it returns):
//!
//! - `write/put/<size>b`: one put at a time (puts/s);
//! - `write/txn_1000/<size>b`: transactions of 1000 puts (keys/s);
//! - `write/concurrent_puts_8/<size>b`: 8 threads putting one key at a time, sharing fsyncs through
//!   group commit (puts/s).
//!
//! once per value size of `REVKV_BENCH_VALUE_SIZE` (256 B and 4 KiB by default; see
//! `benches/common`), each on a store of its own.
//!
//! `cargo bench -p revkv-bench --bench write`.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BenchmarkGroup, BenchmarkId, Criterion, Throughput,
};
use revkv::{Op, Txn};

use common::{key, value, LIMIT};

#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BATCH: u64 = 1000;
const WRITERS: u64 = 8;

fn write(c: &mut Criterion) {
    let mut group = c.benchmark_group("write");
    for value_size in common::value_sizes() {
        writes_of(&mut group, value_size);
    }
    group.finish();
}

fn writes_of(group: &mut BenchmarkGroup<'_, WallTime>, value_size: usize) {
    let db = common::store(common::options(LIMIT));
    let values = format!("{value_size}b");

    group.throughput(Throughput::Elements(1));
    let mut next = 0;
    group.bench_function(BenchmarkId::new("put", &values), |b| {
        b.iter(|| {
            next += 1;
            db.put(key("put/", next), value(next, value_size))
                .expect("put")
        });
    });

    group.throughput(Throughput::Elements(BATCH));
    let mut next = 0;
    let id = BenchmarkId::new(format!("txn_{BATCH}"), &values);
    group.bench_function(id, |b| {
        b.iter(|| {
            let puts = (next..next + BATCH).map(|i| Op::put(key("txn/", i), value(i, value_size)));
            next += BATCH;
            db.txn(Txn::new().then(puts)).expect("txn")
        });
    });

    group.throughput(Throughput::Elements(1));
    let next = AtomicU64::new(0);
    let id = BenchmarkId::new(format!("concurrent_puts_{WRITERS}"), &values);
    group.bench_function(id, |b| {
        b.iter_custom(|iters| {
            let end = next.load(Ordering::Relaxed) + iters;
            let started = Instant::now();
            std::thread::scope(|scope| {
                for _ in 0..WRITERS {
                    scope.spawn(|| loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= end {
                            break;
                        }
                        db.put(key("concurrent/", i), value(i, value_size))
                            .expect("put");
                    });
                }
            });
            // Each writer's last claim overshoots `end` by one; the next batch starts after
            // those claims, so no key is written twice.
            started.elapsed()
        });
    });
}

criterion_group!(benches, write);
criterion_main!(benches);
