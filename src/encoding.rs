//! Every byte layout revkv writes to sled.
//!
//! All entries live in one sled tree, [`TREE_NAME`], so that one `apply_batch` makes a whole
//! transaction (its records, its latest-version pointers and its commit time) atomic. The first
//! byte of a sled key names the entry's kind:
//!
//! | sled key                          | sled value (sealed: crc32 + payload)           |
//! |-----------------------------------|------------------------------------------------|
//! | `b'k'` user key                   | latest [`Location`] of the key + live/tombstone |
//! | `b'm'` name                       | metadata: format version, compacted revision    |
//! | `b'r'` revision (8 BE) sub (4 BE) | one [`Record`]: a put or a delete of one key    |
//! | `b't'` revision (8 BE)            | commit time of the revision, ms since the epoch |
//!
//! Integers in keys are big-endian so sled's byte order is numeric order. Every value starts
//! with the crc32 of the rest; a mismatch is [`Error::Corrupted`], never wrong data.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{Error, Result, Revision};

/// The name of the sled tree that holds everything.
pub(crate) const TREE_NAME: &[u8] = b"revkv";
/// The on-disk format this build reads and writes.
pub(crate) const FORMAT_VERSION: u32 = 1;

const LATEST_PREFIX: u8 = b'k';
const META_PREFIX: u8 = b'm';
const RECORD_PREFIX: u8 = b'r';
const COMMIT_TIME_PREFIX: u8 = b't';

/// The payload tag of a version-1 record; a new record layout gets a new tag.
const RECORD_TAG_V1: u8 = 1;
const LATEST_LIVE: u8 = 1;
const LATEST_TOMBSTONE: u8 = 0;

/// Decoding never allocates more than this, whatever a corrupt length prefix claims.
const DECODE_LIMIT: usize = 2 * crate::MAX_VALUE_LEN + 1024 * 1024;

/// Where one change of one key is stored: its revision and its position inside that revision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub(crate) struct Location {
    pub revision: Revision,
    pub sub: u32,
}

impl Location {
    pub(crate) fn record_key(self) -> [u8; 13] {
        let mut key = [0u8; 13];
        key[0] = RECORD_PREFIX;
        key[1..9].copy_from_slice(&self.revision.to_key_bytes());
        key[9..13].copy_from_slice(&self.sub.to_be_bytes());
        key
    }

    pub(crate) fn from_record_key(key: &[u8]) -> Result<Self> {
        match key {
            [RECORD_PREFIX, rev @ .., s0, s1, s2, s3] if rev.len() == 8 => {
                let rev: [u8; 8] = rev.try_into().expect("slice pattern has length 8");
                Ok(Location {
                    revision: Revision::from_key_bytes(rev),
                    sub: u32::from_be_bytes([*s0, *s1, *s2, *s3]),
                })
            }
            _ => Err(Error::corrupted(
                "a record key",
                format!("malformed key {key:02x?}"),
            )),
        }
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "revision {} (change {})", self.revision, self.sub)
    }
}

/// The first record key of a revision: records of revisions `>= revision` sort at or after it.
pub(crate) fn record_key_floor(revision: Revision) -> [u8; 13] {
    Location { revision, sub: 0 }.record_key()
}

/// The sled-key range of all records.
pub(crate) fn record_prefix() -> [u8; 1] {
    [RECORD_PREFIX]
}

/// One change of one key, as stored at its [`Location`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Record {
    #[serde(with = "serde_bytes")]
    pub key: Vec<u8>,
    /// The key's previous change (a put or a tombstone), if it had one; the chain that
    /// historical reads and compaction follow.
    pub prev: Option<Location>,
    pub change: Change,
}

/// What a record did to its key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Change {
    Put(StoredValue),
    Delete,
}

/// The contents of a key after a put.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StoredValue {
    #[serde(with = "serde_bytes")]
    pub value: Vec<u8>,
    pub create_revision: Revision,
    pub version: u64,
    pub labels: BTreeMap<String, String>,
    pub fields: BTreeMap<String, String>,
}

fn bincode_config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<DECODE_LIMIT>()
}

impl Record {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut payload = vec![RECORD_TAG_V1];
        bincode::serde::encode_into_std_write(self, &mut payload, bincode_config())
            .expect("encoding a record into a Vec cannot fail");
        seal(&payload)
    }

    /// Decodes the record stored at `location`; any damage is [`Error::Corrupted`] naming it.
    pub(crate) fn decode(location: Location, bytes: &[u8]) -> Result<Self> {
        let corrupted = |reason: String| Error::corrupted(location.to_string(), reason);
        let payload = unseal(bytes).map_err(corrupted)?;
        let Some((&tag, body)) = payload.split_first() else {
            return Err(corrupted("empty record payload".into()));
        };
        if tag != RECORD_TAG_V1 {
            return Err(corrupted(format!("unknown record tag {tag}")));
        }
        let (record, used): (Record, usize) =
            bincode::serde::decode_from_slice(body, bincode_config())
                .map_err(|e| corrupted(format!("undecodable record: {e}")))?;
        if used != body.len() {
            return Err(corrupted(format!(
                "{} trailing bytes after the record",
                body.len() - used
            )));
        }
        Ok(record)
    }
}

/// The newest change of a key, kept so a write can chain to it and a historical read can start
/// from it even when the key is currently deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Latest {
    pub location: Location,
    pub live: bool,
}

impl Latest {
    pub(crate) fn sled_key(user_key: &[u8]) -> Vec<u8> {
        let mut key = Vec::with_capacity(user_key.len() + 1);
        key.push(LATEST_PREFIX);
        key.extend_from_slice(user_key);
        key
    }

    pub(crate) fn prefix() -> [u8; 1] {
        [LATEST_PREFIX]
    }

    /// The user key of a latest-pointer sled key.
    pub(crate) fn user_key(sled_key: &[u8]) -> &[u8] {
        &sled_key[1..]
    }

    pub(crate) fn encode(self) -> Vec<u8> {
        let mut payload = [0u8; 13];
        payload[..8].copy_from_slice(&self.location.revision.to_key_bytes());
        payload[8..12].copy_from_slice(&self.location.sub.to_be_bytes());
        payload[12] = if self.live {
            LATEST_LIVE
        } else {
            LATEST_TOMBSTONE
        };
        seal(&payload)
    }

    pub(crate) fn decode(user_key: &[u8], bytes: &[u8]) -> Result<Self> {
        let corrupted = |reason: String| {
            Error::corrupted(
                format!("latest pointer of key {}", crate::display_key(user_key)),
                reason,
            )
        };
        let payload = unseal(bytes).map_err(corrupted)?;
        let [r0, r1, r2, r3, r4, r5, r6, r7, s0, s1, s2, s3, state] = *payload else {
            return Err(corrupted(format!(
                "payload of {} bytes, expected 13",
                payload.len()
            )));
        };
        let live = match state {
            LATEST_LIVE => true,
            LATEST_TOMBSTONE => false,
            other => return Err(corrupted(format!("unknown state byte {other}"))),
        };
        Ok(Latest {
            location: Location {
                revision: Revision::from_key_bytes([r0, r1, r2, r3, r4, r5, r6, r7]),
                sub: u32::from_be_bytes([s0, s1, s2, s3]),
            },
            live,
        })
    }
}

/// The sled key holding the commit time of `revision`.
pub(crate) fn commit_time_key(revision: Revision) -> [u8; 9] {
    let mut key = [0u8; 9];
    key[0] = COMMIT_TIME_PREFIX;
    key[1..].copy_from_slice(&revision.to_key_bytes());
    key
}

pub(crate) fn commit_time_prefix() -> [u8; 1] {
    [COMMIT_TIME_PREFIX]
}

pub(crate) fn revision_of_commit_time_key(key: &[u8]) -> Result<Revision> {
    match key {
        [COMMIT_TIME_PREFIX, rest @ ..] => {
            let bytes: [u8; 8] = rest.try_into().map_err(|_| {
                Error::corrupted("a commit time key", format!("malformed key {key:02x?}"))
            })?;
            Ok(Revision::from_key_bytes(bytes))
        }
        _ => Err(Error::corrupted(
            "a commit time key",
            format!("malformed key {key:02x?}"),
        )),
    }
}

/// Named metadata entries.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Meta {
    /// The format version the store was created with.
    FormatVersion,
    /// Reads below this revision fail; set before a compaction deletes anything.
    CompactedRevision,
    /// The compaction that finished last; below `CompactedRevision` while one is running.
    FinishedCompaction,
}

impl Meta {
    fn name(self) -> &'static str {
        match self {
            Meta::FormatVersion => "format_version",
            Meta::CompactedRevision => "compacted_revision",
            Meta::FinishedCompaction => "finished_compaction",
        }
    }

    pub(crate) fn sled_key(self) -> Vec<u8> {
        let mut key = vec![META_PREFIX];
        key.extend_from_slice(self.name().as_bytes());
        key
    }

    pub(crate) fn encode(value: u64) -> Vec<u8> {
        seal(&value.to_be_bytes())
    }

    pub(crate) fn decode(self, bytes: &[u8]) -> Result<u64> {
        let corrupted =
            |reason: String| Error::corrupted(format!("metadata {}", self.name()), reason);
        let payload = unseal(bytes).map_err(corrupted)?;
        let raw: [u8; 8] = payload
            .try_into()
            .map_err(|_| corrupted(format!("payload of {} bytes, expected 8", payload.len())))?;
        Ok(u64::from_be_bytes(raw))
    }
}

/// Commit times reuse the metadata codec: a sealed big-endian u64.
pub(crate) fn encode_commit_time(millis: u64) -> Vec<u8> {
    Meta::encode(millis)
}

pub(crate) fn decode_commit_time(revision: Revision, bytes: &[u8]) -> Result<u64> {
    let payload = unseal(bytes).map_err(|reason| {
        Error::corrupted(format!("commit time of revision {revision}"), reason)
    })?;
    let raw: [u8; 8] = payload.try_into().map_err(|_| {
        Error::corrupted(
            format!("commit time of revision {revision}"),
            format!("payload of {} bytes, expected 8", payload.len()),
        )
    })?;
    Ok(u64::from_be_bytes(raw))
}

/// Prepends the crc32 of `payload`.
fn seal(payload: &[u8]) -> Vec<u8> {
    let mut sealed = Vec::with_capacity(payload.len() + 4);
    sealed.extend_from_slice(&crc32fast::hash(payload).to_be_bytes());
    sealed.extend_from_slice(payload);
    sealed
}

/// Checks and strips the crc32 that [`seal`] prepended.
fn unseal(sealed: &[u8]) -> std::result::Result<&[u8], String> {
    let Some((crc, payload)) = sealed.split_first_chunk::<4>() else {
        return Err(format!("{} bytes, too short for a checksum", sealed.len()));
    };
    let expected = u32::from_be_bytes(*crc);
    let actual = crc32fast::hash(payload);
    if expected != actual {
        return Err(format!(
            "checksum mismatch: stored {expected:08x}, computed {actual:08x}"
        ));
    }
    Ok(payload)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn put_record() -> Record {
        Record {
            key: b"pods/a".to_vec(),
            prev: Some(Location {
                revision: Revision::new(3),
                sub: 1,
            }),
            change: Change::Put(StoredValue {
                value: b"hello".to_vec(),
                create_revision: Revision::new(3),
                version: 2,
                labels: BTreeMap::from([("app".into(), "web".into())]),
                fields: BTreeMap::new(),
            }),
        }
    }

    #[test]
    fn record_keys_sort_by_revision_then_change() {
        let locations = [
            (1, 0),
            (1, 1),
            (1, 256),
            (2, 0),
            (256, 0),
            (u64::MAX, u32::MAX),
        ]
        .map(|(r, s)| Location {
            revision: Revision::new(r),
            sub: s,
        });
        for pair in locations.windows(2) {
            assert!(pair[0].record_key() < pair[1].record_key());
        }
        for location in locations {
            assert_eq!(
                Location::from_record_key(&location.record_key()).unwrap(),
                location
            );
        }
    }

    #[test]
    fn prefixes_keep_kinds_apart() {
        let record = record_key_floor(Revision::ZERO);
        let latest = Latest::sled_key(&[0xff; 8]);
        let time = commit_time_key(Revision::new(u64::MAX));
        assert!(latest.as_slice() < Meta::CompactedRevision.sled_key().as_slice());
        assert!(Meta::CompactedRevision.sled_key().as_slice() < record.as_slice());
        assert!(record.as_slice() < time.as_slice());
    }

    #[test]
    fn record_round_trips() {
        let record = put_record();
        let location = Location {
            revision: Revision::new(5),
            sub: 0,
        };
        assert_eq!(Record::decode(location, &record.encode()).unwrap(), record);
    }

    #[test]
    fn every_flipped_bit_in_a_record_is_detected() {
        let bytes = put_record().encode();
        let location = Location {
            revision: Revision::new(5),
            sub: 0,
        };
        for bit in 0..bytes.len() * 8 {
            let mut damaged = bytes.clone();
            damaged[bit / 8] ^= 1 << (bit % 8);
            let err = Record::decode(location, &damaged).unwrap_err();
            assert!(matches!(err, Error::Corrupted { .. }), "bit {bit}: {err}");
            assert!(err.to_string().contains("revision 5"), "{err}");
        }
    }

    #[test]
    fn every_truncation_of_a_record_is_detected() {
        let bytes = put_record().encode();
        let location = Location {
            revision: Revision::new(5),
            sub: 0,
        };
        for len in 0..bytes.len() {
            assert!(
                Record::decode(location, &bytes[..len]).is_err(),
                "length {len}"
            );
        }
    }

    #[test]
    fn latest_pointer_round_trips_and_rejects_bad_state() {
        let latest = Latest {
            location: Location {
                revision: Revision::new(9),
                sub: 7,
            },
            live: false,
        };
        assert_eq!(Latest::decode(b"k", &latest.encode()).unwrap(), latest);
        let mut payload = latest.encode()[4..].to_vec();
        payload[12] = 9;
        assert!(Latest::decode(b"k", &seal(&payload)).is_err());
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_the_decoders(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let location = Location { revision: Revision::new(1), sub: 0 };
            let _ = Record::decode(location, &bytes);
            let _ = Record::decode(location, &seal(&bytes));
            let mut tagged = vec![RECORD_TAG_V1];
            tagged.extend_from_slice(&bytes);
            let _ = Record::decode(location, &seal(&tagged));
            let _ = Latest::decode(b"k", &bytes);
            let _ = Meta::CompactedRevision.decode(&bytes);
            let _ = Location::from_record_key(&bytes);
        }
    }
}
