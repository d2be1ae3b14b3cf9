//! Opening a store of N keys: sled's open, and the index rebuilt from the latest-version
//! entries (keys/s).
//!
//! `cargo bench -p revkv-bench --bench open`; `REVKV_BENCH_KEYS` sets the number of keys written (100,000 by
//! default; the README's figure uses 1,000,000), `REVKV_BENCH_WORKLOAD` and
//! `REVKV_BENCH_VALUE_SIZE` how they are written (see `benches/common`).

mod common;

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

use common::{size_from_env, LIMIT};

#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn open(c: &mut Criterion) {
    let keys = size_from_env("REVKV_BENCH_KEYS", 100_000);
    let mut group = c.benchmark_group("open");
    group.sample_size(10);
    for collection in common::collections() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("store");
        {
            let db = common::options(LIMIT).open(&path).expect("open");
            common::load_collection(&db, collection, keys, None);
        }
        group.throughput(Throughput::Elements(common::live(collection, keys)));
        let id = BenchmarkId::new(common::name(collection), keys);
        group.bench_function(id, |b| {
            b.iter_custom(|iters| {
                let mut timed = Duration::ZERO;
                for _ in 0..iters {
                    let started = Instant::now();
                    let db = common::options(LIMIT).open(&path).expect("open");
                    timed += started.elapsed();
                    // Closing is not part of opening; the next open waits for sled's lock
                    // meanwhile.
                    drop(db);
                }
                timed
            });
        });
    }
    group.finish();
}

criterion_group!(benches, open);
criterion_main!(benches);
