//! What the benches share: temporary stores loaded with the keys and values `revkv load`
//! generates, and sizes taken from the environment.

// Each bench binary uses only part of this module, and none uses all of the CLI's.
#![allow(dead_code)]

use std::ops::Deref;

use revkv::{Db, Op, Options, Put, Retention, Txn};
use tempfile::TempDir;

#[path = "../../src/cli/load.rs"]
mod load;
#[path = "../../src/cli/percentile.rs"]
mod percentile;

/// The listed collection.
pub const PREFIX: &str = "bench/";
pub const VALUE_SIZE: usize = 256;
/// The page size of the measured chunks.
pub const LIMIT: usize = 500;
/// Puts per loading transaction.
const BATCH: u64 = 1000;

/// A size from environment variable `name`, or `default`.
pub fn size_from_env(name: &str, default: u64) -> u64 {
    std::env::var(name).map_or(default, |value| {
        value
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name} is a number of keys, not {value:?}"))
    })
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

/// Generated key `index` under `prefix`.
pub fn key(prefix: &str, index: u64) -> String {
    load::key(prefix, index)
}

/// Generated value of key `index`, at `version` (0 for the first write).
pub fn value(index: u64, version: u64) -> Vec<u8> {
    load::value(index ^ (version << 40), VALUE_SIZE)
}

/// Writes keys `0..keys` at `version`, labelling every `stride`-th one `bench=match` when a
/// stride is given, in durable transactions of 1000 puts; makes everything durable.
pub fn write_collection(db: &Db, keys: u64, version: u64, stride: Option<u64>) {
    for start in (0..keys).step_by(BATCH as usize) {
        let puts = (start..keys.min(start + BATCH)).map(|index| {
            let put = Put::new(key(PREFIX, index), value(index, version));
            match stride {
                Some(stride) if index.is_multiple_of(stride) => {
                    Op::Put(put.label("bench", "match"))
                }
                _ => Op::Put(put),
            }
        });
        db.txn(Txn::new().then(puts)).expect("load");
    }
    db.flush().expect("flush");
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

/// A store opened with `options`, holding keys `0..keys`.
pub fn loaded_store(options: Options, keys: u64) -> Store {
    let store = store(options);
    write_collection(&store, keys, 0, None);
    store
}
