//! Key-order blocks: the newest records of runs of neighbouring live keys, copied into one sled
//! value each, so that a chunk reads one sled entry per few dozen keys instead of one per key.
//!
//! Blocks are a cache of the latest pointers, never the truth: every copy carries the location
//! of its record, and a reader uses it only for a key its view holds at that very location (a
//! location, once published, names one record forever: `DESIGN.md` §3.2). Anything else (a key
//! changed or created since the block was built, a copy left out for its size, a damaged
//! block) is read by location instead. So blocks need no atomicity with anything, are written
//! with plain inserts in the background, and a crash anywhere in a rebuild leaves blocks that
//! are merely stale.
//!
//! **Tiling.** Each block covers the user keys from its low key (its sled key) up to its high
//! key, excluded; the first block's low key is empty and the last one has no high key. A
//! rebuild of a range writes its new blocks from the top down and then removes the old ones the
//! new ones replace, so at every moment the block with the greatest low key at or below a key
//! covers it, once any block at or below it exists.
//!
//! **Who builds.** Readers: a chunk that finds no block below its first key asks for the key
//! space below the lowest block to be built; one that misses too many copies of a block asks
//! for that block's range to be built again. The builder thread does that work in the order
//! asked, pacing itself like compaction, so stores that are only written pay nothing.

mod build;
mod scan;

pub(crate) use build::Builder;
pub(crate) use scan::BlockScan;

use std::collections::BTreeMap;

use parking_lot::{Condvar, Mutex};

use crate::Revision;

/// A block is cut once its entries hold this many bytes.
const BLOCK_BYTES: usize = 16 * 1024;

/// A record copy longer than this is left out of its block (the key stays, read by location).
/// It covers every record whose value is stored inline (up to
/// [`crate::encoding::INLINE_VALUE_MAX`]) with a key and metadata of up to 1 KiB together, so
/// that values of a few KiB are read from blocks too. A block is cut before its entries pass
/// [`BLOCK_BYTES`], so with its last entry (a key of at most 4 KiB and this copy) and a high key
/// of at most 4 KiB it stays under 42 KiB, and a sled leaf of blocks (at most about 20 entries)
/// under 1 MiB, far below the blob threshold (`encoding`).
const MAX_COPY_LEN: usize = crate::encoding::INLINE_VALUE_MAX + 1024;

/// A block is built again when a reader misses more than one in this many of its entries.
const STALE_SHARE: usize = 8;

/// The work readers asked for, and the builder's progress through it.
pub(crate) struct Requests {
    work: Mutex<Work>,
    /// Wakes the builder when work arrives or it is told to stop.
    arrived: Condvar,
    /// Wakes [`crate::Db::settle_blocks`] callers when the builder runs out of work.
    idle: Condvar,
}

#[derive(Default)]
struct Work {
    /// Build the key space below the lowest block (all of it, when there is none).
    below_lowest: bool,
    /// Build again the blocks at these low keys, each stale for a reader at the revision given.
    stale: BTreeMap<Vec<u8>, Revision>,
    building: bool,
    stopped: bool,
    /// The builder's last failure, kept for `settle_blocks`; cleared by its next success.
    failure: Option<String>,
}

impl Work {
    fn is_empty(&self) -> bool {
        !self.below_lowest && self.stale.is_empty()
    }
}

impl Requests {
    /// The requests of a store whose builder runs when `enabled`; otherwise every wait for the
    /// builder returns at once.
    pub(crate) fn new(enabled: bool) -> Self {
        Requests {
            work: Mutex::new(Work {
                stopped: !enabled,
                ..Work::default()
            }),
            arrived: Condvar::new(),
            idle: Condvar::new(),
        }
    }

    /// Asks for the key space below the lowest block to be built.
    pub(crate) fn build_below_lowest(&self) {
        let mut work = self.work.lock();
        if !work.below_lowest {
            work.below_lowest = true;
            self.arrived.notify_one();
        }
    }

    /// Asks for the block at `low` to be built again, for a reader at `revision`.
    pub(crate) fn rebuild(&self, low: &[u8], revision: Revision) {
        let mut work = self.work.lock();
        let newest = work.stale.entry(low.to_vec()).or_insert(revision);
        *newest = (*newest).max(revision);
        self.arrived.notify_one();
    }

    /// Waits until the builder has nothing left to do, and returns its last failure, if any.
    pub(crate) fn settle(&self) -> Option<String> {
        let mut work = self.work.lock();
        while !work.stopped && (work.building || !work.is_empty()) {
            self.idle.wait(&mut work);
        }
        work.failure.clone()
    }
}

#[cfg(test)]
mod tests {
    use std::ops::Bound;

    use crate::encoding::{self, BlockLayout};
    use crate::{Db, ListOptions, Op, Txn};

    /// The blocks tile the key space from the empty key to its end, and hold every live key
    /// at its current location.
    fn assert_tiled_and_fresh(db: &Db) {
        let data = &db.shared.data;
        let mut layout = BlockLayout::default();
        let mut next_low = Some(Vec::new());
        let mut held = std::collections::HashMap::new();
        for item in data.scan_prefix(encoding::block_prefix()) {
            let (sled_key, bytes) = item.unwrap();
            let low = &sled_key[1..];
            assert_eq!(
                Some(low),
                next_low.as_deref(),
                "blocks leave a gap or overlap"
            );
            encoding::decode_block(low, &bytes, &mut layout).unwrap();
            let longest = super::BLOCK_BYTES + super::MAX_COPY_LEN + 2 * crate::MAX_KEY_LEN + 64;
            assert!(bytes.len() < longest, "a block of {} bytes", bytes.len());
            next_low = layout.high.clone().map(|high| bytes[high].to_vec());
            for entry in &layout.entries {
                held.insert(bytes[entry.key.clone()].to_vec(), entry.location);
            }
        }
        assert_eq!(next_low, None, "the last block ends the key space");
        let view = db.shared.index.visible();
        for (key, location) in view.tree.range(Bound::Unbounded, Bound::Unbounded) {
            assert_eq!(held.get(&**key), Some(location), "key {key:?}");
        }
    }

    fn list_all(db: &Db) {
        let mut options = ListOptions::all().limit(700);
        while let Some(token) = db.list(&options).unwrap().continue_token {
            options = ListOptions::all().limit(700).continue_token(token);
        }
    }

    #[test]
    fn a_builder_that_fails_says_so_and_stops_when_the_store_closes() {
        let db = Db::temporary().unwrap();
        let ops = (0..100)
            .rev()
            .map(|i| Op::put(format!("k/{i:03}"), "value"));
        db.txn(Txn::new().then(ops.collect::<Vec<_>>())).unwrap();
        // A poisoned store takes no more writes, blocks included.
        db.shared
            .poisoned
            .store(true, std::sync::atomic::Ordering::Release);
        list_all(&db);
        let error = db.settle_blocks().unwrap_err();
        assert!(
            error.to_string().contains("an earlier write failed"),
            "{error}"
        );
        assert_eq!(
            db.shared.data.scan_prefix(encoding::block_prefix()).count(),
            0
        );
        assert_eq!(db.list(&ListOptions::all()).unwrap().items.len(), 100);
        // Dropped during the builder's pause after the failure: the drop must not wait it out.
        let started = std::time::Instant::now();
        drop(db);
        assert!(started.elapsed() < super::build::RETRY_PAUSE);
    }

    #[test]
    fn lists_get_blocks_built_and_rebuilt_once_stale() {
        let db = Db::temporary().unwrap();
        let key = |i: u64| format!("k/{:05}", i * 7919 % 6000);
        for batch in 0..12 {
            let ops = (batch * 500..(batch + 1) * 500).map(|i| Op::put(key(i), vec![b'v'; 300]));
            db.txn(Txn::new().then(ops.collect::<Vec<_>>())).unwrap();
        }
        list_all(&db);
        db.settle_blocks().unwrap();
        assert_tiled_and_fresh(&db);

        // Every other key changed, a third deleted, and new keys below, between and above.
        let mut ops: Vec<Op> = (0..6000)
            .step_by(2)
            .map(|i| Op::put(key(i), "new"))
            .collect();
        ops.extend((1..6000).step_by(6).map(|i| Op::delete(key(i))));
        ops.extend(["a", "k/00001+", "z"].map(|key| Op::put(key, "created")));
        db.txn(Txn::new().then(ops)).unwrap();
        list_all(&db);
        db.settle_blocks().unwrap();
        assert_tiled_and_fresh(&db);
    }
}
