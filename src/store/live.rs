//! Reading the live keys of a run of a view: the records of a chunk.
//!
//! A run is read through the key-order blocks that cover it (`blocks`), once any are built.
//! Until then: every live key's latest pointer carries a copy of its newest record, so the keys
//! that did not change since the view are read with one sled range scan over the pointers, in
//! key order, whatever order they were written in (or over the records themselves, when they lie
//! next to each other in the log); only keys changed since are read from their records by
//! location. Each record is decoded borrowing sled's buffer and offered as a [`Candidate`]: a
//! chunk tests its labels and fields and weighs it before it copies the value out.

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use sled::IVec;

use super::blocks::BlockScan;
use super::Shared;
use crate::encoding::{Change, Latest, Location, Record, StoredValue, Value};
use crate::error::SledResultExt;
use crate::index::Key;
use crate::{Entry, Error, Result, Revision};

/// A live key's record at a view, decoded but not yet copied into an [`Entry`].
pub(crate) struct Candidate<'a> {
    key: &'a [u8],
    location: Location,
    stored: StoredValue<&'a [u8]>,
}

impl<'a> Candidate<'a> {
    /// The put `record` stored at `location`, which the index says holds `key`.
    fn new(key: &'a [u8], location: Location, record: Record<&'a [u8]>) -> Result<Self> {
        super::check_holds_key(record.key, key, location)?;
        match record.change {
            Change::Put(stored) => Ok(Candidate {
                key,
                location,
                stored,
            }),
            Change::Delete => Err(Error::corrupted(
                location.to_string(),
                "the index points a live key at a tombstone",
            )),
        }
    }

    pub(crate) fn labels(&self) -> &BTreeMap<String, String> {
        &self.stored.labels
    }

    pub(crate) fn fields(&self) -> &BTreeMap<String, String> {
        &self.stored.fields
    }

    /// The bytes the entry will hold: key, value, labels and fields.
    pub(crate) fn weight(&self) -> usize {
        let metadata: usize = (self.stored.labels.iter())
            .chain(&self.stored.fields)
            .map(|(name, value)| name.len() + value.len())
            .sum();
        self.key.len() + self.stored.value.len() + metadata
    }

    /// The entry, its value copied out of sled's buffer or read from its parts.
    pub(crate) fn into_entry(self, shared: &Shared) -> Result<Entry> {
        let location = self.location;
        Entry::from_stored(
            self.key.to_vec(),
            location,
            self.stored,
            |value| match value {
                Value::Inline(bytes) => Ok(bytes.to_vec()),
                Value::Parts { len, crc32 } => {
                    shared.value_of(location, Value::Parts { len, crc32 })
                }
            },
        )
    }
}

impl Shared {
    /// Offers each live key of `run` to `visit` as a [`Candidate`], in the run's order, until
    /// `visit` breaks. `run` is a run of a view at `revision` in key order (descending when
    /// `reverse`).
    pub(crate) fn visit_live(
        &self,
        run: &[(Key, Location)],
        revision: Revision,
        reverse: bool,
        mut visit: impl FnMut(Candidate<'_>) -> Result<ControlFlow<()>>,
    ) -> Result<()> {
        let (Some((first, _)), Some((last, _))) = (run.first(), run.last()) else {
            return Ok(());
        };
        if self.options.key_order_blocks {
            let scan = BlockScan::new(&self.data, &self.blocks, first, last, revision, reverse)?;
            if let Some(mut blocks) = scan {
                let visited = self.visit_through_blocks(&mut blocks, run, revision, visit);
                blocks.report(&self.blocks);
                return visited;
            }
        }
        let Some(source) = Source::for_run(run, reverse) else {
            return Ok(());
        };
        let mut scan = source.scan(&self.data, reverse)?;
        for (key, location) in run {
            let (key, location) = (&**key, *location);
            let found = match source {
                Source::Pointers { .. } => scan.find(&self.data, key)?,
                Source::Records { .. } => scan.find(&self.data, &location.record_key()[1..])?,
            };
            let mut damaged = None;
            let read = match (source, found) {
                // A damaged pointer (see `recovery`) has no copy to offer: the record is read
                // by location, as for a key changed since the view.
                (Source::Pointers { .. }, Some(bytes)) => copy_in_pointer(key, location, bytes)?,
                (Source::Records { .. }, Some(bytes)) => {
                    match Record::decode_borrowed(location, bytes) {
                        Ok(record) => Some(record),
                        Err(error) => {
                            damaged = Some(error);
                            None
                        }
                    }
                }
                (_, None) => None,
            };
            let (fetched_record, fetched_pointer);
            let record = match (read, damaged) {
                (Some(record), _) => record,
                // The log's copy is damaged, and the key's pointer may hold an intact one.
                (None, Some(damaged)) => {
                    fetched_pointer = self.data.get(Latest::sled_key(key)).storage()?;
                    let copy = (fetched_pointer.as_deref())
                        .and_then(|bytes| copy_in_pointer(key, location, bytes).ok().flatten());
                    copy.ok_or(damaged)?
                }
                (None, None) => {
                    fetched_record = self.record_bytes(location, revision)?;
                    Record::decode_borrowed(location, &fetched_record)?
                }
            };
            if visit(Candidate::new(key, location, record)?)?.is_break() {
                break;
            }
        }
        Ok(())
    }
}

impl Shared {
    /// As [`Shared::visit_live`], reading each key's record from the key-order blocks when
    /// they hold it at the location the view does, and by location otherwise.
    fn visit_through_blocks(
        &self,
        blocks: &mut BlockScan,
        run: &[(Key, Location)],
        revision: Revision,
        mut visit: impl FnMut(Candidate<'_>) -> Result<ControlFlow<()>>,
    ) -> Result<()> {
        for (key, location) in run {
            let (key, location) = (&**key, *location);
            let fetched;
            let copy = (blocks.find(key, location)?)
                .and_then(|payload| Record::decode_payload_borrowed(location, payload).ok());
            let record = match copy {
                Some(record) => record,
                None => {
                    fetched = self.record_bytes(location, revision)?;
                    Record::decode_borrowed(location, &fetched)?
                }
            };
            if visit(Candidate::new(key, location, record)?)?.is_break() {
                break;
            }
        }
        Ok(())
    }
}

/// The record copy that the latest pointer `bytes` of `key` holds, if it is the record at
/// `location` and the pointer is intact.
fn copy_in_pointer<'b>(
    key: &[u8],
    location: Location,
    bytes: &'b [u8],
) -> Result<Option<Record<&'b [u8]>>> {
    match Latest::decode_with_record(key, bytes) {
        Ok((latest, Some(copy))) if latest.location == location => {
            Record::decode_checked_copy(location, copy).map(Some)
        }
        _ => Ok(None),
    }
}

/// Where a run's records are read from, in one ordered sled scan merged with the run.
#[derive(Clone, Copy)]
enum Source<'r> {
    /// The latest pointers of the run's keys, in key order: each carries a copy of its key's
    /// newest record. Right whatever order the keys were written in.
    Pointers { low: &'r [u8], high: &'r [u8] },
    /// The records themselves, in revision order: when the run's records lie next to each
    /// other in the log, as after a load in key order, their keys are shorter to scan than
    /// the pointers' user keys, and no pointer header is read.
    Records { low: Location, high: Location },
}

/// A run reads the records themselves when at least this share of its neighbours are stored
/// next to each other (as a fraction: 3 in 4).
const ADJACENT_SHARE: (usize, usize) = (3, 4);

/// How many records a scan of the log steps over to reach the next wanted one before it seeks
/// instead.
const MAX_SKIPPED_RECORDS: usize = 4;

impl<'r> Source<'r> {
    fn for_run(run: &'r [(Key, Location)], reverse: bool) -> Option<Self> {
        let ((first_key, first), (last_key, last)) = (run.first()?, run.last()?);
        // Each neighbouring pair of the run, as (earlier, later) in the log if the run is in
        // log order.
        let pairs = run.windows(2).map(|pair| {
            if reverse {
                (pair[1].1, pair[0].1)
            } else {
                (pair[0].1, pair[1].1)
            }
        });
        let ordered = pairs.clone().all(|(earlier, later)| earlier < later);
        let adjacent = pairs
            .filter(|&(earlier, later)| follows(earlier, later))
            .count();
        let (share, of) = ADJACENT_SHARE;
        if run.len() > 1 && ordered && adjacent * of >= (run.len() - 1) * share {
            let (low, high) = if reverse {
                (*last, *first)
            } else {
                (*first, *last)
            };
            return Some(Source::Records { low, high });
        }
        let (low, high) = if reverse {
            (&**last_key, &**first_key)
        } else {
            (&**first_key, &**last_key)
        };
        Some(Source::Pointers { low, high })
    }

    fn scan(self, data: &sled::Tree, reverse: bool) -> Result<Scan> {
        match self {
            Source::Pointers { low, high } => Scan::new(
                data,
                Latest::sled_key(low),
                Latest::sled_key(high),
                reverse,
                usize::MAX,
            ),
            Source::Records { low, high } => Scan::new(
                data,
                low.record_key().to_vec(),
                high.record_key().to_vec(),
                reverse,
                MAX_SKIPPED_RECORDS,
            ),
        }
    }
}

/// Whether `b` is stored right after `a` in the log: the next change of the same revision,
/// or the first of the next one.
fn follows(a: Location, b: Location) -> bool {
    (b.revision == a.revision && b.sub == a.sub + 1)
        || (b.revision == a.revision.next() && b.sub == 0)
}

/// An ordered scan of one sled prefix between two sled keys, merged with wanted keys that come
/// in the scan's order. Keys are compared without their one-byte prefix.
struct Scan {
    range: sled::Iter,
    current: Option<(IVec, IVec)>,
    reverse: bool,
    /// The far end of the range, for a seek that starts a new scan.
    end: Vec<u8>,
    prefix: u8,
    max_skipped: usize,
}

impl Scan {
    fn new(
        data: &sled::Tree,
        low: Vec<u8>,
        high: Vec<u8>,
        reverse: bool,
        max_skipped: usize,
    ) -> Result<Self> {
        let prefix = low[0];
        let end = if reverse { low.clone() } else { high.clone() };
        let mut scan = Scan {
            range: data.range(low..=high),
            current: None,
            reverse,
            end,
            prefix,
            max_skipped,
        };
        scan.current = scan.step()?;
        Ok(scan)
    }

    fn step(&mut self) -> Result<Option<(IVec, IVec)>> {
        let next = if self.reverse {
            self.range.next_back()
        } else {
            self.range.next()
        };
        next.transpose().storage()
    }

    /// Whether the scan's position still lies before `wanted`, in the scan's direction.
    fn before(&self, at: &[u8], wanted: &[u8]) -> bool {
        if self.reverse {
            &at[1..] > wanted
        } else {
            &at[1..] < wanted
        }
    }

    /// The value stored under `wanted` (without its prefix byte), when the scan holds it;
    /// wanted keys must come in the scan's order.
    fn find(&mut self, data: &sled::Tree, wanted: &[u8]) -> Result<Option<&IVec>> {
        let mut skipped = 0;
        while let Some((at, _)) = &self.current {
            if !self.before(at, wanted) {
                break;
            }
            if skipped == self.max_skipped {
                self.seek(data, wanted)?;
                break;
            }
            self.current = self.step()?;
            skipped += 1;
        }
        Ok(match &self.current {
            Some((at, value)) if &at[1..] == wanted => Some(value),
            _ => None,
        })
    }

    /// Starts the scan again at `wanted`, rather than stepping over many entries to it.
    fn seek(&mut self, data: &sled::Tree, wanted: &[u8]) -> Result<()> {
        let mut from = vec![self.prefix];
        from.extend_from_slice(wanted);
        self.range = if self.reverse {
            data.range(self.end.clone()..=from)
        } else {
            data.range(from..=self.end.clone())
        };
        self.current = self.step()?;
        Ok(())
    }
}
