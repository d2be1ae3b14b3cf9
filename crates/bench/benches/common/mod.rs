//! What the benches share: temporary stores loaded with the collections `revkv bench`
//! generates (`revkv_bench::load`: the same keys, order, churn and values), and sizes and the
//! workloads taken from the environment. Each bench measures every collection of:
//!
//! - `REVKV_BENCH_WORKLOAD`: shapes, comma-separated, `interleaved,random` by default (both
//!   churned), or `sequential`, the best case, as `revkv bench --workload` (see its `--help`);
//! - `REVKV_BENCH_VALUE_SIZE`: value lengths in bytes, comma-separated, `256,4096` by default.

// Each bench binary uses only part of this module.
#![allow(dead_code)]

use std::ops::Deref;

use clap::ValueEnum;
use revkv::{Db, Op, Options, Put, Retention, Txn};
use tempfile::TempDir;

use revkv_bench::load::{self, Change, Collection, Shape};
use revkv_bench::percentile;

/// The listed collection: ConfigMaps of every namespace.
pub const PREFIX: &str = load::COLLECTION_PREFIX;
/// The page size of the measured chunks.
pub const LIMIT: usize = 500;
/// Changes per loading transaction, as `revkv bench --batch` by default.
const BATCH: usize = 1000;
/// The label selected keys carry, when a load asks for one.
pub const LABEL: (&str, &str) = ("bench", "match");

/// A size from environment variable `name`, or `default`.
pub fn size_from_env(name: &str, default: u64) -> u64 {
    std::env::var(name).map_or(default, |value| {
        value
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name} is a number, not {value:?}"))
    })
}

/// The comma-separated list in environment variable `name`, each item read by `parse`, or
/// `default`.
fn list_from_env<T>(name: &str, default: &str, parse: impl Fn(&str) -> Option<T>) -> Vec<T> {
    let list = std::env::var(name).unwrap_or_else(|_| default.to_string());
    list.split(',')
        .map(|item| {
            parse(item.trim())
                .unwrap_or_else(|| panic!("{name} holds {item:?}; see benches/common"))
        })
        .collect()
}

/// The value lengths of `REVKV_BENCH_VALUE_SIZE`.
pub fn value_sizes() -> Vec<usize> {
    list_from_env("REVKV_BENCH_VALUE_SIZE", "256,4096", |size| {
        size.parse().ok()
    })
}

/// The measured collections: every shape of `REVKV_BENCH_WORKLOAD` with every value size.
pub fn collections() -> Vec<Collection> {
    let shapes = list_from_env("REVKV_BENCH_WORKLOAD", "interleaved,random", |name| {
        Shape::from_str(name, true).ok()
    });
    Collection::each(&shapes, &value_sizes())
}

/// The collection's name, for benchmark ids: figures of different workloads must not be
/// compared as one.
pub fn name(collection: Collection) -> String {
    format!("{}-{}b", collection.shape.name(), collection.value_size)
}

/// Options for a benchmark store: no background compaction to disturb the figures, and room
/// for chunks of `max_page_size`.
pub fn options(max_page_size: usize) -> Options {
    Db::options()
        .retention(Retention::Manual)
        .max_page_size(max_page_size)
}

/// The nearest-rank percentile of `sorted`, as `revkv bench` computes it.
pub fn nearest_rank(sorted: &[std::time::Duration], fraction: f64) -> std::time::Duration {
    percentile::nearest_rank(sorted, fraction)
}

/// Generated key `index` under `prefix`, outside the collection.
pub fn key(prefix: &str, index: u64) -> String {
    load::key(prefix, index)
}

/// Generated value of `value_size` bytes for key `index`.
pub fn value(index: u64, value_size: usize) -> Vec<u8> {
    load::value(index, value_size)
}

/// Makes `changes` in order, in durable transactions of [`BATCH`], labelling every key the
/// generator selects with `stride` when a stride is given.
fn apply(db: &Db, collection: Collection, changes: &[Change], stride: Option<u64>) {
    for batch in changes.chunks(BATCH) {
        let ops = batch.iter().map(|&change| match change {
            Change::Put { index, version } => {
                let put = Put::new(Collection::key(index), collection.value(index, version));
                match stride {
                    Some(stride) if Collection::selected(index, stride) => {
                        Op::Put(put.label(LABEL.0, LABEL.1))
                    }
                    _ => Op::Put(put),
                }
            }
            Change::Delete { index } => Op::delete(Collection::key(index)),
        });
        db.txn(Txn::new().then(ops)).expect("load");
    }
}

/// Writes the collection of `keys` keys in the workload's order, then churns it (overwrites
/// and deletes, but not for `sequential`), labelling one object in `stride` of each namespace
/// `bench=match` when a stride is given; makes everything durable. Then lists it once and
/// waits for the key-order blocks that the list asked for, as in a collection clients list.
pub fn load_collection(db: &Db, collection: Collection, keys: u64, stride: Option<u64>) {
    for changes in collection.growth(0, keys) {
        apply(db, collection, &changes, stride);
    }
    db.flush().expect("flush");
    load::settle(db).expect("the collection lists and its blocks build");
}

/// Gives every live key of the collection of `keys` a new value, in the workload's order: one
/// superseded record each. `round` counts the rewrites from 1, so that every value differs
/// from the churn's and the earlier rounds'.
pub fn rewrite_collection(db: &Db, collection: Collection, keys: u64, round: u64) {
    assert!(round > 0, "rewrites count from 1");
    let changes = collection.rewrite(keys, load::CHURN_VERSION + round);
    apply(db, collection, &changes, None);
    db.flush().expect("flush");
}

/// The live keys of the loaded collection of `keys`, in key order: what a full list returns.
pub fn live_keys(collection: Collection, keys: u64) -> Vec<String> {
    collection
        .live_in_key_order(keys)
        .into_iter()
        .map(Collection::key)
        .collect()
}

/// How many live keys the collection of `keys` has.
pub fn live(collection: Collection, keys: u64) -> u64 {
    collection.live_in_key_order(keys).len() as u64
}

/// How many live keys of the collection of `keys` a selector for `stride` matches.
pub fn selected(collection: Collection, keys: u64, stride: u64) -> u64 {
    collection
        .live_in_key_order(keys)
        .into_iter()
        .filter(|&index| Collection::selected(index, stride))
        .count() as u64
}

/// A store in a temporary directory on disk, removed when dropped. Not `Options::temporary`:
/// sled keeps temporary stores in `/dev/shm`, where a durable write never waits for a disk.
pub struct Store {
    db: Db,
    _dir: TempDir,
}

impl Deref for Store {
    type Target = Db;

    fn deref(&self) -> &Db {
        &self.db
    }
}

/// An empty store opened with `options`.
pub fn store(options: Options) -> Store {
    let dir = tempfile::tempdir().expect("temporary directory");
    Store {
        db: options.open(dir.path()).expect("open"),
        _dir: dir,
    }
}

/// A store opened with `options`, holding the collection of `keys`.
pub fn loaded_store(options: Options, collection: Collection, keys: u64) -> Store {
    let store = store(options);
    load_collection(&store, collection, keys, None);
    store
}
