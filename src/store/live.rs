//! Reading the live keys of a run of a view: the records of a chunk.
//!
//! Every live key's latest pointer carries a copy of its newest record, so the keys that did
//! not change since the view are read with one sled range scan over the pointers, in key order,
//! whatever order they were written in; only keys changed since are read from their records by
//! location. Each record is decoded borrowing sled's buffer and offered as a [`Candidate`]: a
//! chunk tests its labels and fields and weighs it before it copies the value out.

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use sled::IVec;

use super::Shared;
use crate::encoding::{Change, Latest, Location, Record, StoredValue, Value};
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
        let (low, high) = if reverse {
            (last, first)
        } else {
            (first, last)
        };
        let mut pointers = self
            .data
            .range(Latest::sled_key(low)..=Latest::sled_key(high));
        let mut next_pointer = || {
            if reverse {
                pointers.next_back()
            } else {
                pointers.next()
            }
            .transpose()
        };
        let mut pointer: Option<(IVec, IVec)> = next_pointer()?;
        for (key, location) in run {
            let (key, location) = (&**key, *location);
            let before = |at: &IVec| {
                let at = Latest::user_key(at);
                if reverse {
                    at > key
                } else {
                    at < key
                }
            };
            while pointer.as_ref().is_some_and(|(at, _)| before(at)) {
                pointer = next_pointer()?;
            }
            let copy = match &pointer {
                // A damaged pointer (see `recovery`) has no copy to offer: the record is read
                // by location, as for a key changed since the view.
                Some((at, bytes)) if Latest::user_key(at) == key => {
                    match Latest::decode_with_record(key, bytes) {
                        Ok((latest, Some(copy))) if latest.location == location => Some(copy),
                        _ => None,
                    }
                }
                _ => None,
            };
            let fetched;
            let record = match copy {
                Some(copy) => Record::decode_checked_copy(location, copy)?,
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
