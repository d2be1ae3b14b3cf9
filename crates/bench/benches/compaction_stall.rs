//! Chunk and durable-put latency while a compaction runs, against the same store idle.
//!
//! `cargo bench -p revkv-bench --bench compaction_stall`. It loads the collection of `REVKV_STALL_KEYS` keys
//! (100,000 by default) as `REVKV_BENCH_WORKLOAD` and `REVKV_BENCH_VALUE_SIZE` say, once per
//! collection (see `benches/common`), then rewrites
//! its live keys until each was written `REVKV_STALL_VERSIONS` times (11), so compacting at the
//! head deletes about keys × (versions − 1) superseded records, and the churn's. Then, for 5 s idle (after 2 s of warm-up) and for
//! the whole compaction, one thread reads 500-item chunks at spread positions while another
//! makes durable puts; it prints p50/p99 of both, the ratios, and the compaction time.
//! `REVKV_STALL_UNPACED=1` compacts without pauses, for comparison.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use revkv::{Db, Durability, ListOptions, Retention};
use revkv_bench::load::Collection;

use common::{nearest_rank, size_from_env, LIMIT, PREFIX};

#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const IDLE: Duration = Duration::from_secs(5);
/// Untimed reads first, so that the idle figures are not those of a cold cache.
const WARM_UP: Duration = Duration::from_secs(2);

struct Latencies {
    chunks: Vec<Duration>,
    puts: Vec<Duration>,
}

/// Reads chunks of the collection whose live keys are `live` and writes puts until `done` is
/// set (or `duration` passes, when given).
fn measure(db: &Db, live: &[String], done: &AtomicBool, duration: Option<Duration>) -> Latencies {
    std::thread::scope(|scope| {
        let writer = scope.spawn(|| {
            let mut puts = Vec::new();
            for i in 0.. {
                if done.load(Ordering::Acquire) {
                    break;
                }
                let started = Instant::now();
                db.put(format!("writes/{i:08}"), "x").expect("durable put");
                puts.push(started.elapsed());
            }
            puts
        });
        let started = Instant::now();
        let mut chunks = Vec::new();
        for i in 0u64.. {
            if done.load(Ordering::Acquire) || duration.is_some_and(|d| started.elapsed() >= d) {
                break;
            }
            let position = (i * 7919) as usize % (live.len() - LIMIT);
            let options = ListOptions::prefix(PREFIX)
                .start_after(live[position].as_str())
                .limit(LIMIT);
            let chunk_started = Instant::now();
            let page = db.list(&options).expect("chunk");
            chunks.push(chunk_started.elapsed());
            assert_eq!(page.items.len(), LIMIT);
        }
        done.store(true, Ordering::Release);
        Latencies {
            chunks,
            puts: writer.join().expect("writer thread"),
        }
    })
}

fn report(label: &str, mut latencies: Latencies) -> [Duration; 2] {
    latencies.chunks.sort_unstable();
    latencies.puts.sort_unstable();
    let chunk_p50 = nearest_rank(&latencies.chunks, 0.5);
    let chunk_p99 = nearest_rank(&latencies.chunks, 0.99);
    let put_p50 = nearest_rank(&latencies.puts, 0.5);
    let put_p99 = nearest_rank(&latencies.puts, 0.99);
    println!(
        "{label:<12} chunk p50 {chunk_p50:>10.2?} p99 {chunk_p99:>10.2?} ({} chunks) | put p50 {put_p50:>10.2?} p99 {put_p99:>10.2?} ({} puts)",
        latencies.chunks.len(),
        latencies.puts.len()
    );
    [chunk_p99, put_p99]
}

fn main() {
    let keys = size_from_env("REVKV_STALL_KEYS", 100_000);
    assert!(
        keys > LIMIT as u64,
        "REVKV_STALL_KEYS is more than one chunk, {LIMIT}"
    );
    let versions = size_from_env("REVKV_STALL_VERSIONS", 11);
    let paced = std::env::var("REVKV_STALL_UNPACED").is_err();
    for collection in common::collections() {
        println!("{}", common::name(collection));
        stall(collection, keys, versions, paced);
    }
}

fn stall(collection: Collection, keys: u64, versions: u64, paced: bool) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("store");
    {
        let db = common::options(LIMIT)
            .durability(Durability::Buffered)
            .open(&path)
            .expect("open");
        common::load_collection(&db, collection, keys, None);
        for round in 1..versions {
            common::rewrite_collection(&db, collection, keys, round);
        }
    }
    let live = common::live_keys(collection, keys);
    assert!(
        live.len() > LIMIT,
        "REVKV_STALL_KEYS leaves more than one chunk, {LIMIT}"
    );
    let db = Db::options()
        .retention(Retention::Manual)
        .paced_compaction(paced)
        .open(&path)
        .expect("reopen");
    measure(&db, &live, &AtomicBool::new(false), Some(WARM_UP));
    let idle = report(
        "idle",
        measure(&db, &live, &AtomicBool::new(false), Some(IDLE)),
    );
    let done = AtomicBool::new(false);
    let target = db.current_revision();
    let (compacting, compaction) = std::thread::scope(|scope| {
        let compactor = scope.spawn(|| {
            let report = db.compact(target).expect("compaction");
            done.store(true, Ordering::Release);
            report
        });
        let latencies = measure(&db, &live, &done, None);
        (latencies, compactor.join().expect("compactor thread"))
    });
    let busy = report(if paced { "paced" } else { "unpaced" }, compacting);
    println!(
        "compaction removed {} records in {:.1?}; p99 ratio to idle: chunk {:.2}x, put {:.2}x",
        compaction.removed_records,
        compaction.elapsed,
        busy[0].as_secs_f64() / idle[0].as_secs_f64(),
        busy[1].as_secs_f64() / idle[1].as_secs_f64()
    );
}
