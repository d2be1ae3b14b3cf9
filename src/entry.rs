//! What a read returns for one key.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::encoding::{Change, Location, Record, StoredValue, Value};
use crate::{Error, Result, Revision};

/// One key's state at the revision a read was made at.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// The key.
    pub key: Vec<u8>,
    /// The value.
    pub value: Vec<u8>,
    /// The revision that created this incarnation of the key (a delete ends an incarnation).
    pub create_revision: Revision,
    /// The revision of the key's last change.
    pub mod_revision: Revision,
    /// 1 when the key was created, plus one per later put; a delete resets it.
    pub version: u64,
    /// Labels attached by the last put, matched by label selectors.
    pub labels: BTreeMap<String, String>,
    /// Fields attached by the last put, matched by field selectors.
    pub fields: BTreeMap<String, String>,
}

impl Entry {
    /// Turns the put record stored at `location` into an entry, its value read with `value` (see
    /// [`Value`]); a tombstone there is corruption, because callers only follow locations of
    /// live keys.
    pub(crate) fn from_put<B: Into<Vec<u8>>>(
        location: Location,
        record: Record<B>,
        value: impl FnOnce(Value<B>) -> Result<Vec<u8>>,
    ) -> Result<Self> {
        match record.change {
            Change::Put(stored) => Entry::from_stored(record.key.into(), location, stored, value),
            Change::Delete => Err(Error::corrupted(
                location.to_string(),
                "the index points a live key at a tombstone",
            )),
        }
    }

    /// The entry of `key` after the put stored at `location`, its value read with `value`.
    pub(crate) fn from_stored<B>(
        key: Vec<u8>,
        location: Location,
        stored: StoredValue<B>,
        value: impl FnOnce(Value<B>) -> Result<Vec<u8>>,
    ) -> Result<Self> {
        Ok(Entry {
            key,
            value: value(stored.value)?,
            create_revision: stored.create_revision,
            mod_revision: location.revision,
            version: stored.version,
            labels: stored.labels,
            fields: stored.fields,
        })
    }
}
