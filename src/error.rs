//! The one error type of the crate.

use std::fmt;

use crate::selector::{LabelError, SelectorError};
use crate::Revision;

/// `Result` with [`enum@Error`] as its default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in revkv.
///
/// Callers branch on it: a list client restarts on [`Error::Expired`], an HTTP layer maps bad
/// requests to 400 and storage failures to 500. Messages are lower-case and carry the revisions
/// involved; an underlying cause is available from [`std::error::Error::source`].
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A write named the empty key.
    EmptyKey,
    /// A key is longer than [`crate::MAX_KEY_LEN`].
    KeyTooLarge {
        /// Length of the offending key in bytes.
        len: usize,
    },
    /// A value is longer than [`crate::MAX_VALUE_LEN`].
    ValueTooLarge {
        /// Length of the offending value in bytes.
        len: usize,
    },
    /// A put's labels and fields together are longer than [`crate::MAX_METADATA_LEN`].
    MetadataTooLarge {
        /// Bytes of the put's label and field keys and values together.
        len: usize,
    },
    /// A put carries more than [`crate::MAX_LABELS`] labels and fields together.
    TooManyLabels {
        /// Number of the put's labels and fields together.
        count: usize,
    },
    /// A transaction branch's keys, values, labels and fields add up to more than
    /// [`crate::MAX_TXN_BYTES`].
    TxnTooLarge {
        /// Bytes of the branch that would run, or of the larger branch.
        bytes: usize,
    },
    /// A transaction branch has more than [`crate::MAX_TXN_OPS`] operations.
    TooManyOperations {
        /// Number of operations in the branch that would run.
        count: usize,
    },
    /// A transaction branch touches the same key twice.
    DuplicateKey {
        /// The key named twice.
        key: Vec<u8>,
    },
    /// A read asked for a revision the store has not reached yet.
    FutureRevision {
        /// The revision asked for.
        requested: Revision,
        /// The newest revision readers can see.
        current: Revision,
    },
    /// A read asked for a revision whose history has been compacted away.
    ///
    /// For a continued list, `continue_token` resumes the same list from the same position at
    /// the newest revision. The pages read with it come from a different snapshot than the
    /// pages already read: the combined result mixes two snapshots.
    Expired {
        /// The revision asked for.
        requested: Revision,
        /// The store's compacted revision: reads below it fail.
        compacted: Revision,
        /// A token that continues the list inconsistently at the newest revision.
        continue_token: Option<String>,
    },
    /// A continue token could not be used for this request.
    InvalidContinueToken {
        /// Why it was refused.
        reason: TokenRejection,
    },
    /// A label or field selector does not parse.
    InvalidSelector(SelectorError),
    /// A write carries a label or field that breaks the naming rules.
    InvalidLabel(LabelError),
    /// A list request is malformed (bad limit, conflicting options, inverted range).
    InvalidRequest {
        /// What is wrong with it.
        reason: String,
    },
    /// Bytes read from disk failed their checksum or could not be decoded.
    Corrupted {
        /// Where the bad bytes are: a revision, a key or a metadata entry.
        location: String,
        /// What is wrong with them.
        reason: String,
    },
    /// The store was written by an incompatible version of revkv.
    UnsupportedFormat {
        /// The format version found on disk.
        found: u32,
        /// The format version this build reads and writes.
        supported: u32,
    },
    /// The storage layer failed: an I/O error, or damage it detected itself.
    Storage(StorageError),
    /// The revision was lost: the store was reopened without it after a crash under
    /// [`Durability::Buffered`](crate::Durability::Buffered), or restored from a copy taken
    /// before it. Its number is never reused, so it can never name another state.
    LostRevision {
        /// The revision asked for.
        requested: Revision,
    },
    /// An earlier write failed in the storage layer; the store refuses writes until reopened.
    Poisoned,
}

/// Why a continue token was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenRejection {
    /// It is not unpadded URL-safe base64.
    NotBase64,
    /// It decodes to fewer or more bytes than any valid token.
    BadLength,
    /// Its checksum does not match: it was truncated, mistyped or otherwise damaged.
    ChecksumMismatch,
    /// It was made by a newer or unknown token format.
    UnknownVersion,
    /// It names revision 0, which no list is read at.
    ZeroRevision,
    /// It was issued for a different request (another range, order or filter).
    ForeignRequest,
    /// Its position lies outside the request's range.
    OutsideRange,
    /// The request also names a revision, and it differs from the token's.
    RevisionMismatch,
    /// It was issued by another store, or by a run of this store that a restored copy never
    /// had.
    ForeignStore,
    /// Its authentication tag does not match: it was made or altered without the store's
    /// secret (a token damaged by accident fails its checksum instead).
    Forged,
}

impl Error {
    /// The variant's name, stable across releases: the `reason` field of the CLI's JSON errors.
    #[must_use]
    pub fn reason(&self) -> &'static str {
        match self {
            Error::EmptyKey => "EmptyKey",
            Error::KeyTooLarge { .. } => "KeyTooLarge",
            Error::ValueTooLarge { .. } => "ValueTooLarge",
            Error::MetadataTooLarge { .. } => "MetadataTooLarge",
            Error::TooManyLabels { .. } => "TooManyLabels",
            Error::TxnTooLarge { .. } => "TxnTooLarge",
            Error::TooManyOperations { .. } => "TooManyOperations",
            Error::DuplicateKey { .. } => "DuplicateKey",
            Error::FutureRevision { .. } => "FutureRevision",
            Error::Expired { .. } => "Expired",
            Error::InvalidContinueToken { .. } => "InvalidContinueToken",
            Error::InvalidSelector(_) => "InvalidSelector",
            Error::InvalidLabel(_) => "InvalidLabel",
            Error::InvalidRequest { .. } => "InvalidRequest",
            Error::Corrupted { .. } => "Corrupted",
            Error::UnsupportedFormat { .. } => "UnsupportedFormat",
            Error::Storage(_) => "Storage",
            Error::LostRevision { .. } => "LostRevision",
            Error::Poisoned => "Poisoned",
        }
    }

    /// True for [`Error::Expired`]: the revision asked for has been compacted.
    #[must_use]
    pub fn is_expired(&self) -> bool {
        matches!(self, Error::Expired { .. })
    }

    pub(crate) fn corrupted(location: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Corrupted {
            location: location.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn invalid_request(reason: impl Into<String>) -> Self {
        Error::InvalidRequest {
            reason: reason.into(),
        }
    }
}

impl fmt::Display for TokenRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TokenRejection::NotBase64 => "it is not url-safe base64",
            TokenRejection::BadLength => "it has the wrong length",
            TokenRejection::ChecksumMismatch => {
                "its checksum does not match (truncated or altered)"
            }
            TokenRejection::UnknownVersion => "it was made by an unknown token format",
            TokenRejection::ZeroRevision => "it names revision 0",
            TokenRejection::ForeignRequest => "it belongs to a different list request",
            TokenRejection::OutsideRange => "its position lies outside the requested range",
            TokenRejection::RevisionMismatch => {
                "the request names a different revision than the token"
            }
            TokenRejection::ForeignStore => "it was issued by another store",
            TokenRejection::Forged => "it was not issued by this store for this request",
        })
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::EmptyKey => f.write_str("the empty key cannot be written"),
            Error::KeyTooLarge { len } => {
                write!(
                    f,
                    "key of {len} bytes exceeds the limit of {} bytes",
                    crate::MAX_KEY_LEN
                )
            }
            Error::ValueTooLarge { len } => {
                write!(
                    f,
                    "value of {len} bytes exceeds the limit of {} bytes",
                    crate::MAX_VALUE_LEN
                )
            }
            Error::MetadataTooLarge { len } => {
                write!(
                    f,
                    "labels and fields of {len} bytes exceed the limit of {} bytes",
                    crate::MAX_METADATA_LEN
                )
            }
            Error::TooManyLabels { count } => write!(
                f,
                "{count} labels and fields exceed the limit of {}",
                crate::MAX_LABELS
            ),
            Error::TxnTooLarge { bytes } => write!(
                f,
                "transaction branch of {bytes} bytes exceeds the limit of {} bytes",
                crate::MAX_TXN_BYTES
            ),
            Error::TooManyOperations { count } => write!(
                f,
                "transaction branch has {count} operations, more than the limit of {}",
                crate::MAX_TXN_OPS
            ),
            Error::DuplicateKey { key } => {
                write!(
                    f,
                    "transaction touches key {} more than once",
                    crate::display_key(key)
                )
            }
            Error::FutureRevision { requested, current } => {
                write!(
                    f,
                    "revision {requested} is in the future (current revision is {current})"
                )
            }
            Error::Expired {
                requested,
                compacted,
                continue_token,
            } => {
                write!(
                    f,
                    "revision {requested} has been compacted (compacted revision is {compacted})"
                )?;
                if continue_token.is_some() {
                    f.write_str(
                        "; start a new list, or continue inconsistently at the newest revision \
                         with the continue token this error carries",
                    )?;
                }
                Ok(())
            }
            Error::InvalidContinueToken { reason } => write!(f, "invalid continue token: {reason}"),
            Error::InvalidSelector(cause) => cause.fmt(f),
            Error::InvalidLabel(cause) => cause.fmt(f),
            Error::InvalidRequest { reason } => write!(f, "invalid request: {reason}"),
            Error::Corrupted { location, reason } => {
                write!(f, "corrupted data at {location}: {reason}")
            }
            Error::UnsupportedFormat { found, supported } => write!(
                f,
                "store has format version {found}, but this build reads format version {supported}"
            ),
            Error::Storage(cause) => write!(f, "storage layer failed: {cause}"),
            Error::LostRevision { requested } => write!(
                f,
                "revision {requested} was lost: the store reopened without it, after a crash \
                 under buffered durability or from an older copy"
            ),
            Error::Poisoned => f.write_str(
                "an earlier write failed in the storage layer; reopen the store to write again",
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Storage(cause) => Some(cause),
            _ => None,
        }
    }
}

impl From<SelectorError> for Error {
    fn from(cause: SelectorError) -> Self {
        Error::InvalidSelector(cause)
    }
}

impl From<LabelError> for Error {
    fn from(cause: LabelError) -> Self {
        Error::InvalidLabel(cause)
    }
}

/// Why the storage layer under revkv failed. Its message says what happened; an I/O error's
/// kind is available, so callers can tell a full disk or a permission problem from the rest.
#[derive(Clone, Debug)]
pub struct StorageError {
    message: String,
    io_kind: Option<std::io::ErrorKind>,
}

impl StorageError {
    /// The kind of the underlying I/O error, when the failure was one.
    #[must_use]
    pub fn io_error_kind(&self) -> Option<std::io::ErrorKind> {
        self.io_kind
    }
}

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for StorageError {}

impl From<std::io::Error> for StorageError {
    fn from(cause: std::io::Error) -> Self {
        StorageError {
            message: cause.to_string(),
            io_kind: Some(cause.kind()),
        }
    }
}

// sled's failures become revkv's own types here, through crate-private helpers rather than
// `From` impls: a public impl would put sled's types into revkv's API.
impl StorageError {
    /// A failure that only its message describes, such as one a background thread kept.
    pub(crate) fn other(message: String) -> Self {
        StorageError {
            message,
            io_kind: None,
        }
    }

    pub(crate) fn from_sled(cause: sled::Error) -> Self {
        match cause {
            sled::Error::Io(io) => StorageError::from(io),
            other => StorageError {
                message: other.to_string(),
                io_kind: None,
            },
        }
    }
}

impl Error {
    pub(crate) fn from_sled(cause: sled::Error) -> Self {
        Error::Storage(StorageError::from_sled(cause))
    }
}

/// `sled::Result` turned into revkv's [`Result`], for `?` on sled calls.
pub(crate) trait SledResultExt<T> {
    fn storage(self) -> Result<T>;
}

impl<T> SledResultExt<T> for sled::Result<T> {
    fn storage(self) -> Result<T> {
        self.map_err(Error::from_sled)
    }
}
