//! A run's read through the key-order blocks that cover it.

use std::ops::Bound;

use sled::IVec;

use super::{Requests, STALE_SHARE};
use crate::encoding::{self, BlockLayout, Location};
use crate::error::SledResultExt;
use crate::{Result, Revision};

/// One ordered scan of the blocks covering a run of keys, merged with the run's keys.
pub(crate) struct BlockScan {
    range: sled::Iter,
    reverse: bool,
    /// The block being merged, as sled holds it (key and value), and its decoded layout.
    current: Option<(IVec, IVec)>,
    layout: BlockLayout,
    /// The next entry of the current block to compare, counted from the scan's start side.
    position: usize,
    /// Keys of the run in the current block, and those it held no usable copy for.
    wanted: usize,
    missed: usize,
    /// The revision of the reader's view, and what the scan found to rebuild.
    revision: Revision,
    stale: Vec<Vec<u8>>,
    below_lowest: bool,
}

/// Where a wanted key lies from the block a scan is at.
enum Place {
    Inside,
    /// In a block further in the scan's direction.
    Ahead,
    /// Behind the block, in a range no block covers.
    Passed,
    NoBlock,
}

impl BlockScan {
    /// A scan for a run from user key `first` to `last`, in the run's order (descending when
    /// `reverse`), read at `revision`; `None`, after asking for them to be built, when no block
    /// lies at or below the run's start.
    pub(crate) fn new(
        data: &sled::Tree,
        requests: &Requests,
        first: &[u8],
        last: &[u8],
        revision: Revision,
        reverse: bool,
    ) -> Result<Option<BlockScan>> {
        let start = encoding::block_key(first);
        let Some(floor) = data
            .range(encoding::block_prefix().to_vec()..=start)
            .next_back()
            .transpose()
            .storage()?
        else {
            requests.build_below_lowest();
            return Ok(None);
        };
        // The floor block is the scan's first; the range holds the ones after it.
        let after_floor = Bound::Excluded(floor.0.to_vec());
        let range = if reverse {
            data.range((
                Bound::Included(encoding::block_prefix().to_vec()),
                after_floor,
            ))
        } else {
            data.range((after_floor, Bound::Included(encoding::block_key(last))))
        };
        let mut scan = BlockScan {
            range,
            reverse,
            current: None,
            layout: BlockLayout::default(),
            position: 0,
            wanted: 0,
            missed: 0,
            revision,
            stale: Vec::new(),
            below_lowest: false,
        };
        if !scan.enter(Some(floor)) {
            scan.advance()?;
        }
        Ok(Some(scan))
    }

    /// The copy of `key`'s record at `location`, when the blocks hold that one; keys must come
    /// in the run's order.
    pub(crate) fn find(&mut self, key: &[u8], location: Location) -> Result<Option<&[u8]>> {
        loop {
            match self.place(key) {
                Place::Inside => break,
                Place::Ahead => {
                    self.finish_block();
                    self.advance()?;
                }
                Place::Passed => return Ok(None),
                Place::NoBlock => {
                    // Past the last block: only below the lowest one, in a reverse run.
                    self.below_lowest |= self.reverse;
                    return Ok(None);
                }
            }
        }
        self.wanted += 1;
        let (_, bytes) = self.current.as_ref().expect("placed inside a block");
        let entries = &self.layout.entries;
        let key_of = |index: usize| &bytes[entries[index].key.clone()];
        let found = if self.reverse {
            while self.position < entries.len() && key_of(entries.len() - 1 - self.position) > key {
                self.position += 1;
            }
            entries.len().checked_sub(self.position + 1)
        } else {
            while self.position < entries.len() && key_of(self.position) < key {
                self.position += 1;
            }
            Some(self.position).filter(|&index| index < entries.len())
        };
        let entry = found
            .map(|index| &entries[index])
            .filter(|entry| &bytes[entry.key.clone()] == key);
        Ok(match entry {
            Some(entry) if entry.location == location => {
                entry.copy.clone().map(|copy| &bytes[copy])
            }
            _ => {
                self.missed += 1;
                None
            }
        })
    }

    /// Where `key` lies from the current block, in the scan's direction.
    fn place(&self, key: &[u8]) -> Place {
        let Some((sled_key, bytes)) = &self.current else {
            return Place::NoBlock;
        };
        let above = (self.layout.high.clone()).is_some_and(|high| key >= &bytes[high]);
        let below = key < &sled_key[1..];
        match (above, below) {
            (false, false) => Place::Inside,
            (true, _) if !self.reverse => Place::Ahead,
            (_, true) if self.reverse => Place::Ahead,
            // A gap the scan already passed: a block that did not decode was skipped.
            _ => Place::Passed,
        }
    }

    /// Hands what the scan found stale or missing to the builder.
    pub(crate) fn report(mut self, requests: &Requests) {
        self.finish_block();
        for low in self.stale {
            requests.rebuild(&low, self.revision);
        }
        if self.below_lowest {
            requests.build_below_lowest();
        }
    }

    /// Moves to the next block that decodes, reporting those that do not.
    fn advance(&mut self) -> Result<()> {
        loop {
            let next = if self.reverse {
                self.range.next_back()
            } else {
                self.range.next()
            };
            if self.enter(next.transpose().storage()?) {
                return Ok(());
            }
        }
    }

    /// Makes `block` the current one; false, after reporting it, when it does not decode.
    fn enter(&mut self, block: Option<(IVec, IVec)>) -> bool {
        self.current = block;
        (self.position, self.wanted, self.missed) = (0, 0, 0);
        let Some((sled_key, bytes)) = &self.current else {
            return true;
        };
        let decoded = encoding::decode_block(&sled_key[1..], bytes, &mut self.layout).is_ok();
        if !decoded {
            self.stale.push(sled_key[1..].to_vec());
        }
        decoded
    }

    fn finish_block(&mut self) {
        if let Some((sled_key, _)) = &self.current {
            if self.missed * STALE_SHARE > self.wanted.max(STALE_SHARE) {
                self.stale.push(sled_key[1..].to_vec());
            }
        }
        (self.wanted, self.missed) = (0, 0);
    }
}
