//! Watch delivery: commit-to-delivery latency, events delivered per second, and write
//! throughput with watchers attached against none.
//!
//! `cargo bench -p revkv-bench --bench watch`. For 1, 100 and 1,000 watchers, on disjoint
//! prefixes (each watches its own `w/NNNN/`, and every write goes to one of them) and on one
//! overlapping prefix (every watcher watches every write), `REVKV_WATCH_WRITERS` threads (1 by
//! default) make durable puts for `REVKV_WATCH_SECS` seconds (3), while one thread per 100
//! watchers (at least one, at most one per core) drains them, woken by the watches' wakers. It prints p50/p99 of the time from a put's return to
//! its delivery (to every watcher; with more than 100 watchers, a sample of every
//! (watchers / 100)th event a drainer receives), the events delivered per second, and puts per second against the same run with
//! no watcher measured just before. A delivery that beats the put's own return counts as 0.
//!
//! With `--features peers` and `REVKV_WATCH_ETCD` set to an etcd endpoint
//! (`scripts/etcd.sh start`: `http://127.0.0.1:2379`), it adds etcd's rows for 1 and 100
//! watchers of one prefix while one writer puts, each also against a run with none.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use revkv::{Db, Durability, Notification, Retention, Watch, WatchOptions};
use revkv_bench::watch::{WatchFigures, WATCH_HEADER};

use common::size_from_env;

#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Watchers one draining thread serves, at most.
const PER_DRAINER: usize = 100;

/// How many threads drain `watchers`: one per 100 watchers, but no more than the machine has
/// cores, as an async runtime's worker threads would serve them all. More threads than cores
/// would only time-slice, and a watcher's delivery would wait for its thread's turn.
fn drainers(watchers: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    watchers.div_ceil(PER_DRAINER).clamp(1, cores)
}

#[derive(Clone, Copy)]
enum Layout {
    Disjoint,
    Overlapping,
}

fn prefix(layout: Layout, watcher: usize) -> String {
    match layout {
        Layout::Disjoint => format!("w/{watcher:04}/"),
        Layout::Overlapping => "w/".to_owned(),
    }
}

/// Runs writers for `duration` with `watchers` watchers attached.
fn run(db: &Db, watchers: usize, layout: Layout, writers: u64, duration: Duration) -> WatchFigures {
    // Each put's value is the time it returned, in ns since `epoch`, written after the put.
    let epoch = Instant::now();
    let returned: Vec<AtomicU64> = (0..1u64 << 20).map(|_| AtomicU64::new(0)).collect();
    let mut watches: Vec<Watch> = (0..watchers)
        .map(|watcher| {
            db.watch(WatchOptions::prefix(prefix(layout, watcher)))
                .expect("watch")
        })
        .collect();
    let done = AtomicBool::new(false);
    let puts = AtomicU64::new(0);
    let latencies = Mutex::new(Vec::new());
    let delivered = AtomicU64::new(0);
    let sample_every = (watchers / PER_DRAINER).max(1);
    let per_drainer = watchers.div_ceil(drainers(watchers)).max(1);
    let elapsed = std::thread::scope(|scope| {
        for group in watches.chunks_mut(per_drainer) {
            let (done, returned, latencies, delivered) = (&done, &returned, &latencies, &delivered);
            scope.spawn(move || {
                // Woken as an async server's tasks are: by the watches' wakers.
                for watch in group.iter() {
                    let drainer = std::thread::current();
                    watch.set_waker(move || drainer.unpark());
                }
                let mut seen = Vec::new();
                let mut events_seen = 0usize;
                let mut record = |notification: Option<Notification>| {
                    let Some(Notification::Changes { events, .. }) = notification else {
                        return false;
                    };
                    for event in events {
                        events_seen += 1;
                        delivered.fetch_add(1, Ordering::Relaxed);
                        // A sample of a few hundred thousand latencies is plenty; recording
                        // each of millions would cost the drainers more than delivery does.
                        if !events_seen.is_multiple_of(sample_every) {
                            continue;
                        }
                        let at = event.revision.get() as usize % returned.len();
                        // 0: delivered before the put even returned.
                        seen.push(match returned[at].load(Ordering::Acquire) {
                            0 => Duration::ZERO,
                            ns => epoch.elapsed().saturating_sub(Duration::from_nanos(ns)),
                        });
                    }
                    true
                };
                while !done.load(Ordering::Acquire) {
                    let mut idle = true;
                    for watch in group.iter_mut() {
                        while record(watch.try_next().expect("watch")) {
                            idle = false;
                        }
                    }
                    if idle {
                        std::thread::park_timeout(Duration::from_millis(10));
                    }
                }
                latencies.lock().expect("latencies").extend(seen);
            });
        }
        let started = Instant::now();
        let writer_threads: Vec<_> = (0..writers)
            .map(|writer| {
                let (puts, returned) = (&puts, &returned);
                scope.spawn(move || {
                    for i in 0u64.. {
                        if started.elapsed() >= duration {
                            break;
                        }
                        let watcher = (i * writers + writer) as usize % watchers.max(1);
                        let key = format!("{}{i:08}-{writer}", prefix(Layout::Disjoint, watcher));
                        let revision = db.put(key, "v").expect("put");
                        let at = revision.get() as usize % returned.len();
                        returned[at].store(epoch.elapsed().as_nanos() as u64, Ordering::Release);
                        puts.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        for writer in writer_threads {
            writer.join().expect("writer");
        }
        let elapsed = started.elapsed();
        // Let the drainers catch up before they stop.
        std::thread::sleep(Duration::from_millis(200));
        done.store(true, Ordering::Release);
        elapsed
    });
    let elapsed = elapsed.as_secs_f64();
    let mut latencies = latencies.into_inner().expect("latencies");
    latencies.sort_unstable();
    WatchFigures {
        puts_per_sec: puts.load(Ordering::Relaxed) as f64 / elapsed,
        latencies,
        events_per_sec: delivered.load(Ordering::Relaxed) as f64 / elapsed,
    }
}

fn main() {
    let writers = size_from_env("REVKV_WATCH_WRITERS", 1);
    let duration = Duration::from_secs(size_from_env("REVKV_WATCH_SECS", 3));
    let dir = tempfile::tempdir().expect("temporary directory");
    let db = Db::options()
        .durability(Durability::Immediate)
        .retention(Retention::Manual)
        .open(dir.path())
        .expect("open");
    println!(
        "{writers} durable writer(s), {} s per run",
        duration.as_secs()
    );
    println!("{WATCH_HEADER}");
    for layout in [Layout::Disjoint, Layout::Overlapping] {
        for watchers in [1, 100, 1000] {
            // Measured right before, so that both share the machine's state of the moment.
            let baseline = run(&db, 0, layout, writers, duration).puts_per_sec;
            let figures = run(&db, watchers, layout, writers, duration);
            let name = match layout {
                Layout::Disjoint => "disjoint",
                Layout::Overlapping => "overlapping",
            };
            println!("{}", figures.row("revkv", name, watchers, baseline));
        }
    }
    #[cfg(feature = "peers")]
    if let Ok(endpoint) = std::env::var("REVKV_WATCH_ETCD") {
        for watchers in [1, 100] {
            let etcd = |watchers| {
                revkv_bench::etcd_watch(&endpoint, watchers, duration).expect("etcd watch")
            };
            let baseline = etcd(0).puts_per_sec;
            println!(
                "{}",
                etcd(watchers).row("etcd", "overlapping", watchers, baseline)
            );
        }
    }
}
