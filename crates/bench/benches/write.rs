//! Durable writes on a fresh store on disk (every write is synced before it returns):
//!
//! - `write/put`: one put at a time (puts/s);
//! - `write/txn_1000`: transactions of 1000 puts (keys/s);
//! - `write/concurrent_puts_8`: 8 threads putting one key at a time, sharing fsyncs through
//!   group commit (puts/s).
//!
//! `cargo bench -p revkv-bench --bench write`.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use revkv::{Op, Txn};

use common::{key, value, LIMIT};

#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BATCH: u64 = 1000;
const WRITERS: u64 = 8;

fn write(c: &mut Criterion) {
    let db = common::store(common::options(LIMIT));
    let mut group = c.benchmark_group("write");

    group.throughput(Throughput::Elements(1));
    let mut next = 0;
    group.bench_function("put", |b| {
        b.iter(|| {
            next += 1;
            db.put(key("put/", next), value(next, 0)).expect("put")
        });
    });

    group.throughput(Throughput::Elements(BATCH));
    let mut next = 0;
    group.bench_function(format!("txn_{BATCH}"), |b| {
        b.iter(|| {
            let puts = (next..next + BATCH).map(|i| Op::put(key("txn/", i), value(i, 0)));
            next += BATCH;
            db.txn(Txn::new().then(puts)).expect("txn")
        });
    });

    group.throughput(Throughput::Elements(1));
    let next = AtomicU64::new(0);
    group.bench_function(format!("concurrent_puts_{WRITERS}"), |b| {
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
                        db.put(key("concurrent/", i), value(i, 0)).expect("put");
                    });
                }
            });
            // Each writer's last claim overshoots `end` by one; the next batch starts after
            // those claims, so no key is written twice.
            started.elapsed()
        });
    });
    group.finish();
}

criterion_group!(benches, write);
criterion_main!(benches);
