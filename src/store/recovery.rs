//! Latest pointers that do not decode, found again from the records when a store opens.
//!
//! The index is built from the latest pointers, so a damaged one would otherwise keep the store
//! from opening. Every change of a key is also a record in the revision log, and the newest
//! record of a key says where its newest change is and whether it is live, which is all a
//! pointer holds beside its record copy. A damaged pointer stays on disk as it is, for
//! `verify` to report, until a write of its key replaces it.

use std::collections::{HashMap, HashSet};

use crate::encoding::{self, Change, Latest, Location, Record};
use crate::error::SledResultExt;
use crate::Result;

/// The newest change of each of `keys`, from one scan of the revision log, newest first (no
/// scan when there are none). A key with no record left (every change compacted away: it was
/// deleted) gets none: it does not exist. Records that do not decode are passed over; `verify`
/// reports them.
pub(super) fn find_latest(
    data: &sled::Tree,
    keys: Vec<Vec<u8>>,
) -> Result<HashMap<Vec<u8>, Option<Latest>>> {
    let mut found: HashMap<Vec<u8>, Option<Latest>> =
        keys.into_iter().map(|key| (key, None)).collect();
    let mut wanted: HashSet<Vec<u8>> = found.keys().cloned().collect();
    for item in data.scan_prefix(encoding::record_prefix()).rev() {
        if wanted.is_empty() {
            break;
        }
        let (sled_key, bytes) = item.storage()?;
        let location = Location::from_record_key(&sled_key)?;
        let Ok(record) = Record::<&[u8]>::decode_borrowed(location, &bytes) else {
            continue;
        };
        if wanted.remove(record.key) {
            let live = matches!(record.change, Change::Put(_));
            found.insert(record.key.to_vec(), Some(Latest { location, live }));
        }
    }
    Ok(found)
}
