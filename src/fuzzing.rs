//! Test hooks for the fuzz targets in `fuzz/`, compiled only with the `fuzzing` cargo feature:
//! the internal decoders of stored records and continue tokens, so that a fuzzer can feed them
//! arbitrary input. They are not a supported API and may change with any release.

use crate::encoding::{Location, Record};
use crate::token::{Issuer, Sealed};
use crate::{Db, ListOptions, Result, Revision, TokenRejection};

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

/// Decodes a continue token the way [`crate::Db::list`] does before it checks the token's tag.
///
/// # Errors
///
/// The [`TokenRejection`] a list would report for the token's layout or checksum.
///
/// ```
/// use revkv::TokenRejection;
/// assert_eq!(revkv::fuzzing::decode_token("!"), Err(TokenRejection::NotBase64));
/// ```
pub fn decode_token(token: &str) -> Result<(), TokenRejection> {
    Sealed::decode(token).map(drop)
}

/// Makes a token from `body`, the bytes before its tag, with the tag and checksum that `db`
/// gives the tokens of `options`: a forgery that only the store's secret allows, so that a fuzzer
/// reaches the checks that follow the tag.
///
/// ```
/// use revkv::{Db, Error, ListOptions, TokenRejection};
/// let db = Db::temporary()?;
/// let options = ListOptions::prefix("k/");
/// let forged = revkv::fuzzing::seal_token(&db, &options, b"not a token's layout");
/// assert!(matches!(
///     db.list(&options.continue_token(forged)),
///     Err(Error::InvalidContinueToken { reason: TokenRejection::UnknownVersion })
/// ));
/// # Ok::<(), revkv::Error>(())
/// ```
pub fn seal_token(db: &Db, options: &ListOptions, body: &[u8]) -> String {
    let secret = db.shared.identity.read().secret.clone();
    Issuer::new(&secret, &options.canonical()).seal(body.to_vec())
}
