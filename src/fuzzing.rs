//! Test hooks for the fuzz targets in `fuzz/`, compiled only with the `fuzzing` cargo feature:
//! the internal decoders of stored records and continue tokens, so that a fuzzer can feed them
//! arbitrary input. They are not a supported API and may change with any release.

use crate::encoding::{Location, Record};
use crate::token::ContinueToken;
use crate::{Result, Revision, TokenRejection};

/// Decodes `stored` as the sled value of a record (checksum, tag and payload) the way every
/// read does, and returns the record encoded again.
///
/// # Errors
///
/// [`crate::Error::Corrupted`] for anything but a well-formed record.
///
/// ```
/// let err = revkv::fuzzing::decode_record(b"not a record").unwrap_err();
/// assert_eq!(err.reason(), "Corrupted");
/// ```
pub fn decode_record(stored: &[u8]) -> Result<Vec<u8>> {
    let location = Location {
        revision: Revision::new(1),
        sub: 0,
    };
    Record::decode(location, stored).map(|record| record.encode())
}

/// Decodes a continue token the way [`crate::Db::list`] does before matching it to the
/// request, and returns the token encoded again.
///
/// # Errors
///
/// The [`TokenRejection`] a list would report.
///
/// ```
/// use revkv::TokenRejection;
/// assert_eq!(revkv::fuzzing::decode_token("!"), Err(TokenRejection::NotBase64));
/// ```
pub fn decode_token(token: &str) -> Result<String, TokenRejection> {
    ContinueToken::decode(token).map(|token| token.encode())
}
