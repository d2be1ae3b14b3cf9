//! Every byte layout revkv writes to sled.
//!
//! All entries live in one sled tree, [`TREE_NAME`]. A commit group's records, latest-version
//! pointers and commit times are atomic by the order they are written in (`DESIGN.md` §3.1). The
//! first byte of a sled key names the entry's kind:
//!
//! | sled key                          | sled value (sealed: crc32 + payload)           |
//! |-----------------------------------|------------------------------------------------|
//! | `b'b'` low user key               | a key-order block: copies of the newest records |
//! |                                   | of the live keys from its low key to the next's |
//! | `b'e'` run number (8 BE)          | one run (open) of the store: id, base, first    |
//! | `b'k'` user key                   | latest [`Location`] + live/tombstone; when live, |
//! |                                   | followed by a copy of the record stored there   |
//! | `b'm'` name                       | metadata: format version, compacted revision    |
//! | `b'p'` revision sub part (4 BE)   | one part of a large value of the record there   |
//! | `b'r'` revision (8 BE) sub (4 BE) | one [`Record`]: a put or a delete of one key    |
//! | `b't'` revision (8 BE)            | commit time of the revision, ms since the epoch |
//!
//! Integers in keys are big-endian so sled's byte order is numeric order. Every value starts
//! with the crc32 of the rest; a mismatch is [`Error::Corrupted`], never wrong data.
//!
//! **Every sled value stays small.** sled writes a page larger than a quarter of a log segment
//! to a file of its own that it never fsyncs, and a leaf page holds up to about 20 entries. A
//! value longer than [`INLINE_VALUE_MAX`] is therefore stored as parts of at most
//! [`VALUE_PART_LEN`] bytes, under `b'p'`, and its record holds only the value's length and
//! crc32. With keys up to 4 KiB and labels and fields up to [`crate::MAX_METADATA_LEN`], no
//! record exceeds [`MAX_RECORD_LEN`] (about 63 KiB), and no page comes near the 2 MiB that
//! 8 MiB segments allow.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::identity::Run;
use crate::{Error, Result, Revision};

/// The name of the sled tree that holds everything.
pub(crate) const TREE_NAME: &[u8] = b"revkv";
/// The on-disk format this build reads and writes.
pub(crate) const FORMAT_VERSION: u32 = 2;

/// The longest value a record holds itself; longer ones are stored in parts.
pub(crate) const INLINE_VALUE_MAX: usize = 16 * 1024;
/// The length of every part of a large value but its last.
pub(crate) const VALUE_PART_LEN: usize = 16 * 1024;

const BLOCK_PREFIX: u8 = b'b';
const RUN_PREFIX: u8 = b'e';
const LATEST_PREFIX: u8 = b'k';
const META_PREFIX: u8 = b'm';
const PART_PREFIX: u8 = b'p';
const RECORD_PREFIX: u8 = b'r';
const COMMIT_TIME_PREFIX: u8 = b't';

/// The payload tag of a version-1 record; a new record layout gets a new tag.
const RECORD_TAG_V1: u8 = 1;
/// The payload tag of a version-1 key-order block.
const BLOCK_TAG_V1: u8 = 1;
const LATEST_LIVE: u8 = 1;
const LATEST_TOMBSTONE: u8 = 0;

/// The longest record a write accepted by the limits can produce: a key and an inline value at
/// their limits and labels and fields at theirs, with room for every length prefix (at most 5
/// bytes each) and fixed-size field.
const MAX_RECORD_LEN: usize = crate::MAX_KEY_LEN
    + INLINE_VALUE_MAX
    + crate::MAX_METADATA_LEN
    + 2 * 5 * crate::MAX_LABELS
    + 256;

/// Decoding never allocates more than this, whatever a corrupt length prefix claims. bincode
/// counts the memory of each decoded map entry besides the bytes it reads, so the limit leaves
/// room for the most entries 32 KiB of metadata can hold (one-byte names, empty values), as
/// records written before [`crate::MAX_LABELS`] existed may.
const DECODE_LIMIT: usize = 4 * 1024 * 1024;

// Every record a write accepts decodes: a write can never leave a record behind that reads fail
// on.
const _: () = assert!(
    MAX_RECORD_LEN + crate::MAX_METADATA_LEN * std::mem::size_of::<(String, String)>()
        <= DECODE_LIMIT
);

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
///
/// `B` holds the key and an inline value: owned bytes (the default) where a record is built or
/// kept, or bytes borrowed from sled's buffer where a read only looks at it first (see
/// [`Record::decode_borrowed`]). Both decode the same encoding.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound(
    serialize = "B: serde_bytes::Serialize",
    deserialize = "B: serde_bytes::Deserialize<'de>"
))]
pub(crate) struct Record<B = Vec<u8>> {
    #[serde(with = "serde_bytes")]
    pub key: B,
    /// The key's previous change (a put or a tombstone), if it had one; the chain that
    /// historical reads and compaction follow.
    pub prev: Option<Location>,
    pub change: Change<B>,
}

/// What a record did to its key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound(
    serialize = "B: serde_bytes::Serialize",
    deserialize = "B: serde_bytes::Deserialize<'de>"
))]
pub(crate) enum Change<B = Vec<u8>> {
    Put(StoredValue<B>),
    Delete,
}

/// The contents of a key after a put.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound(
    serialize = "B: serde_bytes::Serialize",
    deserialize = "B: serde_bytes::Deserialize<'de>"
))]
pub(crate) struct StoredValue<B = Vec<u8>> {
    pub value: Value<B>,
    pub create_revision: Revision,
    pub version: u64,
    pub labels: BTreeMap<String, String>,
    pub fields: BTreeMap<String, String>,
}

/// A put's value, as its record holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound(
    serialize = "B: serde_bytes::Serialize",
    deserialize = "B: serde_bytes::Deserialize<'de>"
))]
pub(crate) enum Value<B = Vec<u8>> {
    Inline(#[serde(with = "serde_bytes")] B),
    /// Stored as `len.div_ceil(VALUE_PART_LEN)` parts beside the record; `crc32` is of the
    /// whole value, so parts that each pass their own checksum but do not belong together
    /// (swapped, or left over from another record) are caught.
    Parts {
        len: u32,
        crc32: u32,
    },
}

impl Value {
    /// How a value of these bytes is stored, and the sealed parts to store beside the record.
    pub(crate) fn store(bytes: Vec<u8>) -> (Value, Vec<Vec<u8>>) {
        if bytes.len() <= INLINE_VALUE_MAX {
            return (Value::Inline(bytes), Vec::new());
        }
        let value = Value::Parts {
            len: u32::try_from(bytes.len()).expect("values are at most MAX_VALUE_LEN long"),
            crc32: crc32fast::hash(&bytes),
        };
        (value, bytes.chunks(VALUE_PART_LEN).map(seal).collect())
    }
}

impl<B: AsRef<[u8]> + Into<Vec<u8>>> Value<B> {
    /// The value's length in bytes.
    pub(crate) fn len(&self) -> usize {
        match self {
            Value::Inline(bytes) => bytes.as_ref().len(),
            Value::Parts { len, .. } => *len as usize,
        }
    }

    /// How many parts are stored beside the record.
    pub(crate) fn part_count(&self) -> u32 {
        match self {
            Value::Inline(_) => 0,
            Value::Parts { len, .. } => len.div_ceil(VALUE_PART_LEN as u32),
        }
    }

    /// The value's bytes: its own when inline, else the parts stored beside the record at
    /// `location` (as sled keys and values, in key order), joined and checked. `parts` is
    /// called only for a value stored in parts: setting up a scan costs as much as reading a
    /// small value, and almost every value is inline.
    pub(crate) fn into_bytes<P>(
        self,
        location: Location,
        parts: impl FnOnce() -> P,
    ) -> Result<Vec<u8>>
    where
        P: IntoIterator<Item = Result<(Vec<u8>, Vec<u8>)>>,
    {
        let expected_parts = self.part_count();
        let (len, crc32) = match self {
            Value::Inline(bytes) => return Ok(bytes.into()),
            Value::Parts { len, crc32 } => (len, crc32),
        };
        let corrupted = |reason: String| Error::corrupted(location.to_string(), reason);
        // A length from a record that passed its checksum but was written by no revkv must not
        // size an allocation.
        if len as usize > crate::MAX_VALUE_LEN {
            return Err(corrupted(format!(
                "a value of {len} bytes, over the limit of {}",
                crate::MAX_VALUE_LEN
            )));
        }
        let mut value = Vec::with_capacity(len as usize);
        let mut count = 0;
        for part in parts() {
            let (key, sealed) = part?;
            if key != part_key(location, count) {
                return Err(corrupted(format!("value part {count} is missing")));
            }
            let bytes =
                unseal(&sealed).map_err(|e| corrupted(format!("value part {count}: {e}")))?;
            value.extend_from_slice(bytes);
            count += 1;
            if value.len() > len as usize {
                break;
            }
        }
        if count != expected_parts || value.len() != len as usize {
            return Err(corrupted(format!(
                "{count} value parts of {} bytes, expected {expected_parts} parts of {len} bytes",
                value.len(),
            )));
        }
        if crc32fast::hash(&value) != crc32 {
            return Err(corrupted(
                "the value's parts do not add up to its checksum".into(),
            ));
        }
        Ok(value)
    }
}

/// The sled key of part `index` of the value of the record at `location`.
pub(crate) fn part_key(location: Location, index: u32) -> [u8; 17] {
    let mut key = [0u8; 17];
    key[0] = PART_PREFIX;
    key[1..13].copy_from_slice(&location.record_key()[1..]);
    key[13..].copy_from_slice(&index.to_be_bytes());
    key
}

/// The sled-key range of all value parts.
pub(crate) fn part_prefix() -> [u8; 1] {
    [PART_PREFIX]
}

/// The location of the record whose value a part key belongs to.
pub(crate) fn location_of_part_key(key: &[u8]) -> Result<Location> {
    match key {
        [PART_PREFIX, location @ .., _, _, _, _] if location.len() == 12 => {
            let mut record_key = [RECORD_PREFIX; 13];
            record_key[1..].copy_from_slice(location);
            Location::from_record_key(&record_key)
        }
        _ => Err(Error::corrupted(
            "a value part key",
            format!("malformed key {key:02x?}"),
        )),
    }
}

/// The sled-key prefix of every part of the value of the record at `location`.
pub(crate) fn parts_prefix(location: Location) -> [u8; 13] {
    let mut key = location.record_key();
    key[0] = PART_PREFIX;
    key
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
        let payload =
            unseal(bytes).map_err(|reason| Error::corrupted(location.to_string(), reason))?;
        decode_payload(location, payload)
    }
}

impl<'a> Record<&'a [u8]> {
    /// As [`Record::decode`], borrowing the key and an inline value from `bytes`: a read that
    /// may drop the record (a filter that does not match it) then copies nothing.
    pub(crate) fn decode_borrowed(location: Location, bytes: &'a [u8]) -> Result<Self> {
        let payload =
            unseal(bytes).map_err(|reason| Error::corrupted(location.to_string(), reason))?;
        decode_payload(location, payload)
    }

    /// Decodes, borrowing, the payload of a record (what follows its checksum) that a checked
    /// container holds: a key-order block's copy.
    pub(crate) fn decode_payload_borrowed(location: Location, payload: &'a [u8]) -> Result<Self> {
        decode_payload(location, payload)
    }

    /// Decodes, borrowing as [`Record::decode_borrowed`] does, a record copy that
    /// [`Latest::decode_with_record`] returned, whose checksum it has checked already.
    pub(crate) fn decode_checked_copy(location: Location, copy: &'a [u8]) -> Result<Self> {
        decode_payload(location, &copy[4..])
    }
}

/// Decodes a record's payload (its tag and bincode body), owned or borrowing from `payload`.
fn decode_payload<'a, B>(location: Location, payload: &'a [u8]) -> Result<Record<B>>
where
    B: serde_bytes::Deserialize<'a>,
{
    let corrupted = |reason: String| Error::corrupted(location.to_string(), reason);
    let Some((&tag, body)) = payload.split_first() else {
        return Err(corrupted("empty record payload".into()));
    };
    if tag != RECORD_TAG_V1 {
        return Err(corrupted(format!("unknown record tag {tag}")));
    }
    let (record, used): (Record<B>, usize) =
        bincode::serde::borrow_decode_from_slice(body, bincode_config())
            .map_err(|e| corrupted(format!("undecodable record: {e}")))?;
    if used != body.len() {
        return Err(corrupted(format!(
            "{} trailing bytes after the record",
            body.len() - used
        )));
    }
    Ok(record)
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

    /// The pointer of a live key, followed by a copy of its newest record as stored under
    /// `b'r'`: a chunk of keys that did not change since its snapshot is then one sequential
    /// read of `b'k'`, in key order, whatever order the keys were written in.
    pub(crate) fn encode_live(location: Location, record: &[u8]) -> Vec<u8> {
        let latest = Latest {
            location,
            live: true,
        };
        let mut bytes = latest.encode();
        bytes.extend_from_slice(record);
        bytes
    }

    /// The sealed pointer alone: all a tombstone holds.
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

    /// Decodes a latest pointer; see [`Latest::decode_with_record`].
    pub(crate) fn decode(user_key: &[u8], bytes: &[u8]) -> Result<Self> {
        Latest::decode_with_record(user_key, bytes).map(|(latest, _)| latest)
    }

    /// Decodes a latest pointer and returns, for a live key, the stored bytes of its newest
    /// record (decode them with [`Record::decode`]).
    pub(crate) fn decode_with_record<'b>(
        user_key: &[u8],
        bytes: &'b [u8],
    ) -> Result<(Self, Option<&'b [u8]>)> {
        let corrupted = |reason: String| {
            Error::corrupted(
                format!("latest pointer of key {}", crate::display_key(user_key)),
                reason,
            )
        };
        let pointer_len = (4 + 13).min(bytes.len());
        let (pointer, record) = bytes.split_at(pointer_len);
        let payload = unseal(pointer).map_err(corrupted)?;
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
        let latest = Latest {
            location: Location {
                revision: Revision::from_key_bytes([r0, r1, r2, r3, r4, r5, r6, r7]),
                sub: u32::from_be_bytes([s0, s1, s2, s3]),
            },
            live,
        };
        match (live, record.is_empty()) {
            (true, false) => {
                // Checked here, so that open, which reads every pointer, refuses a damaged copy
                // as it refuses a damaged pointer: a crc32 costs little next to reading it.
                unseal(record).map_err(|reason| corrupted(format!("its record copy: {reason}")))?;
                Ok((latest, Some(record)))
            }
            (false, true) => Ok((latest, None)),
            (true, true) => Err(corrupted("a live key's pointer without its record".into())),
            (false, false) => Err(corrupted(format!(
                "{} bytes after a tombstone's pointer",
                record.len()
            ))),
        }
    }
}

/// The sled key of run number `number` (runs are numbered in the order of the opens).
pub(crate) fn run_key(number: u64) -> [u8; 9] {
    let mut key = [0u8; 9];
    key[0] = RUN_PREFIX;
    key[1..].copy_from_slice(&number.to_be_bytes());
    key
}

pub(crate) fn run_prefix() -> [u8; 1] {
    [RUN_PREFIX]
}

pub(crate) fn encode_run(run: Run) -> Vec<u8> {
    let mut payload = [0u8; 24];
    payload[..8].copy_from_slice(&run.id.to_be_bytes());
    payload[8..16].copy_from_slice(&run.base.to_key_bytes());
    payload[16..].copy_from_slice(&run.first.to_key_bytes());
    seal(&payload)
}

pub(crate) fn decode_run(key: &[u8], bytes: &[u8]) -> Result<Run> {
    let corrupted = |reason: String| Error::corrupted("a run of the store", reason);
    let number = match key {
        [RUN_PREFIX, number @ ..] => <[u8; 8]>::try_from(number).ok(),
        _ => None,
    }
    .ok_or_else(|| corrupted(format!("malformed key {key:02x?}")))?;
    let payload = unseal(bytes).map_err(corrupted)?;
    let field = |at: usize| -> [u8; 8] { payload[at..at + 8].try_into().expect("24 bytes") };
    if payload.len() != 24 {
        return Err(corrupted(format!(
            "payload of {} bytes, expected 24",
            payload.len()
        )));
    }
    let run = Run {
        number: u64::from_be_bytes(number),
        id: u64::from_be_bytes(field(0)),
        base: Revision::from_key_bytes(field(8)),
        first: Revision::from_key_bytes(field(16)),
    };
    if run.first <= run.base {
        return Err(corrupted(format!(
            "first revision {} not above base {}",
            run.first, run.base
        )));
    }
    Ok(run)
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
    /// The store's random id, made when it was created.
    StoreId,
    /// The highest revision a `Buffered` writer may have published; see `identity`.
    ReservedRevision,
    /// The store's secret key for continue tokens, 32 random bytes; see `token`.
    TokenSecret,
}

impl Meta {
    fn name(self) -> &'static str {
        match self {
            Meta::FormatVersion => "format_version",
            Meta::CompactedRevision => "compacted_revision",
            Meta::FinishedCompaction => "finished_compaction",
            Meta::StoreId => "store_id",
            Meta::ReservedRevision => "reserved_revision",
            Meta::TokenSecret => "token_secret",
        }
    }

    pub(crate) fn sled_key(self) -> Vec<u8> {
        let mut key = vec![META_PREFIX];
        key.extend_from_slice(self.name().as_bytes());
        key
    }

    pub(crate) fn encode(value: u64) -> Vec<u8> {
        Meta::encode_bytes(&value.to_be_bytes())
    }

    pub(crate) fn decode(self, bytes: &[u8]) -> Result<u64> {
        self.decode_bytes(bytes).map(u64::from_be_bytes)
    }

    /// For metadata that is not a number.
    pub(crate) fn encode_bytes(value: &[u8]) -> Vec<u8> {
        seal(value)
    }

    pub(crate) fn decode_bytes<const N: usize>(self, bytes: &[u8]) -> Result<[u8; N]> {
        let corrupted =
            |reason: String| Error::corrupted(format!("metadata {}", self.name()), reason);
        let payload = unseal(bytes).map_err(corrupted)?;
        payload
            .try_into()
            .map_err(|_| corrupted(format!("payload of {} bytes, expected {N}", payload.len())))
    }
}

/// The sled key of the key-order block whose range starts at user key `low`.
pub(crate) fn block_key(low: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(low.len() + 1);
    key.push(BLOCK_PREFIX);
    key.extend_from_slice(low);
    key
}

/// The sled-key range of all key-order blocks.
pub(crate) fn block_prefix() -> [u8; 1] {
    [BLOCK_PREFIX]
}

/// One live key of a key-order block: where its newest record was when the block was built,
/// and the payload of that record (what follows its checksum under `b'r'`), unless the block
/// left it out for its size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BlockEntry<'a> {
    pub key: &'a [u8],
    pub location: Location,
    pub copy: Option<&'a [u8]>,
}

/// A key-order block decoded in place: ranges of its sled value's bytes.
#[derive(Debug, Default)]
pub(crate) struct BlockLayout {
    /// Every copy is of a record at or below this published revision.
    pub built_at: Revision,
    /// The block covers user keys from its low key (in its sled key) up to this one,
    /// excluded; `None`: up to the end of the key space.
    pub high: Option<std::ops::Range<usize>>,
    pub entries: Vec<EntrySpan>,
}

/// Where one [`BlockEntry`] lies in its block's bytes.
#[derive(Clone, Debug)]
pub(crate) struct EntrySpan {
    pub key: std::ops::Range<usize>,
    pub location: Location,
    pub copy: Option<std::ops::Range<usize>>,
}

/// A key-order block: `tag | built_at u64 | 0, or 1 and the high key (u16 length) | count u32 |`
/// per entry `key (u16 length) | revision u64 | sub u32 | copy (u32 length, 0: none)`, sealed.
pub(crate) fn encode_block(
    built_at: Revision,
    high: Option<&[u8]>,
    entries: &[BlockEntry<'_>],
) -> Vec<u8> {
    let size: usize = entries
        .iter()
        .map(|entry| 18 + entry.key.len() + entry.copy.map_or(0, <[u8]>::len))
        .sum();
    let mut payload = Vec::with_capacity(16 + high.map_or(0, <[u8]>::len) + size);
    payload.push(BLOCK_TAG_V1);
    payload.extend_from_slice(&built_at.to_key_bytes());
    let short_len = |bytes: &[u8]| {
        u16::try_from(bytes.len())
            .expect("keys are at most MAX_KEY_LEN long")
            .to_be_bytes()
    };
    match high {
        Some(high) => {
            payload.push(1);
            payload.extend_from_slice(&short_len(high));
            payload.extend_from_slice(high);
        }
        None => payload.push(0),
    }
    let count = u32::try_from(entries.len()).expect("a block holds few entries");
    payload.extend_from_slice(&count.to_be_bytes());
    for entry in entries {
        payload.extend_from_slice(&short_len(entry.key));
        payload.extend_from_slice(entry.key);
        payload.extend_from_slice(&entry.location.revision.to_key_bytes());
        payload.extend_from_slice(&entry.location.sub.to_be_bytes());
        let copy = entry.copy.unwrap_or_default();
        let copy_len = u32::try_from(copy.len()).expect("records are at most MAX_RECORD_LEN");
        payload.extend_from_slice(&copy_len.to_be_bytes());
        payload.extend_from_slice(copy);
    }
    seal(&payload)
}

/// Decodes the key-order block whose range starts at `low` into `layout` (its entry list is
/// reused), checking its checksum, that its entries are in strictly ascending key order and lie
/// in its range, and that every length fits.
pub(crate) fn decode_block(low: &[u8], bytes: &[u8], layout: &mut BlockLayout) -> Result<()> {
    let corrupted = |reason: String| {
        Error::corrupted(
            format!("key-order block at key {}", crate::display_key(low)),
            reason,
        )
    };
    unseal(bytes).map_err(corrupted)?;
    let mut reader = SpanReader { bytes, at: 4 };
    let truncated = || corrupted("truncated".into());
    let [tag] = reader.array().ok_or_else(truncated)?;
    if tag != BLOCK_TAG_V1 {
        return Err(corrupted(format!("unknown block tag {tag}")));
    }
    layout.built_at = Revision::from_key_bytes(reader.array().ok_or_else(truncated)?);
    layout.high = match reader.array::<1>().ok_or_else(truncated)? {
        [0] => None,
        [1] => Some(reader.short_span().ok_or_else(truncated)?),
        [other] => return Err(corrupted(format!("unknown high-key flag {other}"))),
    };
    let count = u32::from_be_bytes(reader.array().ok_or_else(truncated)?);
    layout.entries.clear();
    let mut previous: Option<std::ops::Range<usize>> = None;
    for _ in 0..count {
        let key = reader.short_span().ok_or_else(truncated)?;
        let location = Location {
            revision: Revision::from_key_bytes(reader.array().ok_or_else(truncated)?),
            sub: u32::from_be_bytes(reader.array().ok_or_else(truncated)?),
        };
        let copy_len = u32::from_be_bytes(reader.array().ok_or_else(truncated)?);
        let copy = reader.take(copy_len as usize).ok_or_else(truncated)?;
        let in_order = previous.is_none_or(|previous| bytes[previous] < bytes[key.clone()]);
        let key_bytes = &bytes[key.clone()];
        let in_range = low <= key_bytes
            && (layout.high.as_ref()).is_none_or(|high| key_bytes < &bytes[high.clone()]);
        if !in_order || !in_range {
            return Err(corrupted(format!(
                "entry {} (key {}) out of order or out of the block's range",
                layout.entries.len(),
                crate::display_key(key_bytes)
            )));
        }
        previous = Some(key.clone());
        layout.entries.push(EntrySpan {
            key,
            location,
            copy: (copy_len > 0).then_some(copy),
        });
    }
    if reader.at != bytes.len() {
        return Err(corrupted(format!(
            "{} trailing bytes",
            bytes.len() - reader.at
        )));
    }
    Ok(())
}

/// Reads fields of a block as ranges of its bytes, `None` past their end.
struct SpanReader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl SpanReader<'_> {
    fn take(&mut self, len: usize) -> Option<std::ops::Range<usize>> {
        let end = self
            .at
            .checked_add(len)
            .filter(|&end| end <= self.bytes.len())?;
        let span = self.at..end;
        self.at = end;
        Some(span)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        let span = self.take(N)?;
        self.bytes[span].try_into().ok()
    }

    /// A field after its u16 length.
    fn short_span(&mut self) -> Option<std::ops::Range<usize>> {
        let len = u16::from_be_bytes(self.array()?);
        self.take(usize::from(len))
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
                value: Value::Inline(b"hello".to_vec()),
                create_revision: Revision::new(3),
                version: 2,
                labels: BTreeMap::from([("app".into(), "web".into())]),
                fields: BTreeMap::new(),
            }),
        }
    }

    #[test]
    fn the_largest_record_the_write_limits_allow_fits_its_bound_and_decodes() {
        let per_label = crate::MAX_METADATA_LEN / crate::MAX_LABELS;
        let labels: BTreeMap<String, String> = (0..crate::MAX_LABELS)
            .map(|i| (format!("l{i:04}"), "x".repeat(per_label - 5)))
            .collect();
        let location = Location {
            revision: Revision::new(u64::MAX),
            sub: u32::MAX,
        };
        let record = Record {
            key: vec![0xff; crate::MAX_KEY_LEN],
            prev: Some(location),
            change: Change::Put(StoredValue {
                value: Value::Inline(vec![0xff; INLINE_VALUE_MAX]),
                create_revision: Revision::new(u64::MAX),
                version: u64::MAX,
                labels,
                fields: BTreeMap::new(),
            }),
        };
        let encoded = record.encode();
        assert!(encoded.len() <= MAX_RECORD_LEN, "{} bytes", encoded.len());
        assert_eq!(Record::decode(location, &encoded).unwrap(), record);
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
        let part = part_key(
            Location {
                revision: Revision::new(u64::MAX),
                sub: u32::MAX,
            },
            u32::MAX,
        );
        assert!(latest.as_slice() < Meta::CompactedRevision.sled_key().as_slice());
        assert!(Meta::CompactedRevision.sled_key().as_slice() < part.as_slice());
        assert!(part.as_slice() < record.as_slice());
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

    /// Sled keys and values of a value's parts.
    type Parts = Vec<(Vec<u8>, Vec<u8>)>;

    fn stored_parts(location: Location, bytes: &[u8]) -> (Value, Parts) {
        let (value, parts) = Value::store(bytes.to_vec());
        let keyed = parts
            .into_iter()
            .enumerate()
            .map(|(i, part)| (part_key(location, i as u32).to_vec(), part))
            .collect();
        (value, keyed)
    }

    #[test]
    fn large_values_round_trip_through_parts_and_small_ones_stay_inline() {
        let location = Location {
            revision: Revision::new(7),
            sub: 2,
        };
        let small = vec![7u8; INLINE_VALUE_MAX];
        assert_eq!(Value::store(small.clone()), (Value::Inline(small), vec![]));
        let large: Vec<u8> = (0..3 * VALUE_PART_LEN + 5).map(|i| i as u8).collect();
        let (value, parts) = stored_parts(location, &large);
        assert_eq!(value.part_count(), 4);
        assert!(parts
            .iter()
            .all(|(_, part)| part.len() <= VALUE_PART_LEN + 4));
        assert_eq!(
            value
                .clone()
                .into_bytes(location, || parts.into_iter().map(Ok))
                .unwrap(),
            large
        );
    }

    #[test]
    fn missing_swapped_or_damaged_parts_are_corruption() {
        let location = Location {
            revision: Revision::new(7),
            sub: 2,
        };
        let large: Vec<u8> = (0..3 * VALUE_PART_LEN).map(|i| (i / 7) as u8).collect();
        let (value, parts) = stored_parts(location, &large);
        let mut missing = parts.clone();
        missing.remove(1);
        let mut swapped = parts.clone();
        let (first, second) = (swapped[0].1.clone(), swapped[1].1.clone());
        swapped[0].1 = second;
        swapped[1].1 = first;
        let mut damaged = parts.clone();
        damaged[2].1[10] ^= 1;
        let mut extra = parts.clone();
        extra.push((part_key(location, 3).to_vec(), seal(b"more")));
        for (name, case) in [
            ("missing", missing),
            ("swapped", swapped),
            ("damaged", damaged),
            ("extra", extra),
            ("none", vec![]),
        ] {
            let err = value
                .clone()
                .into_bytes(location, || case.into_iter().map(Ok))
                .unwrap_err();
            assert!(matches!(err, Error::Corrupted { .. }), "{name}: {err}");
        }
    }

    #[test]
    fn a_live_pointer_carries_its_record_and_a_tombstone_nothing() {
        let location = Location {
            revision: Revision::new(9),
            sub: 7,
        };
        let record = put_record().encode();
        let live = Latest::encode_live(location, &record);
        let (latest, copy) = Latest::decode_with_record(b"k", &live).unwrap();
        assert_eq!(
            latest,
            Latest {
                location,
                live: true
            }
        );
        assert_eq!(
            Record::decode(location, copy.unwrap()).unwrap(),
            put_record()
        );
        assert!(
            Latest::decode(b"k", &live[..17]).is_err(),
            "live without its record"
        );
        let mut tombstone = Latest {
            location,
            live: false,
        }
        .encode();
        assert_eq!(
            Latest::decode_with_record(b"k", &tombstone).unwrap().1,
            None
        );
        tombstone.push(0);
        assert!(
            Latest::decode(b"k", &tombstone).is_err(),
            "a tombstone with trailing bytes"
        );
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

    /// A block entry as owned bytes: key, location and copy.
    type OwnedEntry = (Vec<u8>, Location, Option<Vec<u8>>);

    fn sample_block() -> (Vec<u8>, Vec<OwnedEntry>) {
        let location = |revision, sub| Location {
            revision: Revision::new(revision),
            sub,
        };
        let entries = vec![
            (
                b"k/1".to_vec(),
                location(3, 0),
                Some(b"payload one".to_vec()),
            ),
            (b"k/2".to_vec(), location(9, 4), None),
            (b"k/3".to_vec(), location(1, 0), Some(vec![7; 300])),
        ];
        let borrowed: Vec<BlockEntry<'_>> = (entries.iter())
            .map(|(key, location, copy)| BlockEntry {
                key,
                location: *location,
                copy: copy.as_deref(),
            })
            .collect();
        let block = encode_block(Revision::new(9), Some(b"k/5"), &borrowed);
        (block, entries)
    }

    #[test]
    fn blocks_decode_to_what_was_encoded() {
        let (block, entries) = sample_block();
        let mut layout = BlockLayout::default();
        decode_block(b"k/", &block, &mut layout).unwrap();
        assert_eq!(layout.built_at, Revision::new(9));
        assert_eq!(&block[layout.high.clone().unwrap()], b"k/5");
        let decoded: Vec<_> = (layout.entries.iter())
            .map(|span| {
                let copy = span.copy.clone().map(|copy| block[copy].to_vec());
                (block[span.key.clone()].to_vec(), span.location, copy)
            })
            .collect();
        assert_eq!(decoded, entries);
        let empty = encode_block(Revision::new(2), None, &[]);
        decode_block(b"", &empty, &mut layout).unwrap();
        assert!(layout.entries.is_empty() && layout.high.is_none());
    }

    #[test]
    fn a_block_whose_keys_leave_its_range_or_its_order_is_corrupted() {
        let (block, _) = sample_block();
        let mut layout = BlockLayout::default();
        // Its keys start below k/2, and k/3 is not below k/25.
        for low in [&b"k/2"[..], b"k/3", b"z"] {
            let error = decode_block(low, &block, &mut layout).unwrap_err();
            assert!(
                error.to_string().contains("out of order or out of"),
                "{error}"
            );
        }
        let narrow = encode_block(
            Revision::new(1),
            Some(b"k/25"),
            &[BlockEntry {
                key: b"k/3",
                location: Location {
                    revision: Revision::new(1),
                    sub: 0,
                },
                copy: None,
            }],
        );
        assert!(decode_block(b"k/", &narrow, &mut layout).is_err());
        let repeated = BlockEntry {
            key: b"k/1",
            location: Location {
                revision: Revision::new(1),
                sub: 0,
            },
            copy: None,
        };
        let twice = encode_block(Revision::new(1), None, &[repeated, repeated]);
        assert!(decode_block(b"", &twice, &mut layout).is_err());
    }

    #[test]
    fn every_truncation_and_bit_flip_of_a_block_is_corrupted() {
        let (block, _) = sample_block();
        let mut layout = BlockLayout::default();
        for len in 0..block.len() {
            let error = decode_block(b"k/", &block[..len], &mut layout).unwrap_err();
            assert!(matches!(error, Error::Corrupted { .. }), "{error}");
        }
        for bit in 0..block.len() * 8 {
            let mut flipped = block.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            assert!(
                decode_block(b"k/", &flipped, &mut layout).is_err(),
                "bit {bit}"
            );
        }
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
            let mut layout = BlockLayout::default();
            let _ = decode_block(b"", &bytes, &mut layout);
            let mut block = vec![BLOCK_TAG_V1];
            block.extend_from_slice(&bytes);
            let _ = decode_block(b"", &seal(&block), &mut layout);
            let _ = Meta::CompactedRevision.decode(&bytes);
            let _ = Location::from_record_key(&bytes);
        }
    }
}
