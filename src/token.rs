//! Continue tokens: the opaque, URL-safe cursor between the chunks of one list.
//!
//! Layout before base64 (unpadded, URL-safe alphabet):
//!
//! ```text
//! +---------+-------+----------+-----+----------+-------------+-----------------+-------+
//! | version | flags | store id | run | revision | fingerprint | last key        | crc32 |
//! | 1 byte  | 1     | 8        | 8   | 8        | 4           | 1..=MAX_KEY_LEN | 4     |
//! +---------+-------+----------+-----+----------+-------------+-----------------+-------+
//! ```
//!
//! Integers are big-endian. The store id and run say which store, and which open of it, issued
//! the token (see `identity`): a token of another store is refused, and one whose revision a
//! crash or a restore lost fails with `LostRevision`.
//!
//! The crc32 covers everything before it, so truncation, typos and casual edits are caught.
//! It is not a signature: a deliberately forged token passes it, which is why the list code
//! also checks that the fingerprint matches the request and that the key lies inside the
//! request's range. A token pins nothing; it stays usable while its revision is not compacted.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use crate::{Revision, TokenRejection};

const TOKEN_VERSION: u8 = 2;
const FLAG_REVERSE: u8 = 1;
const HEADER_LEN: usize = 1 + 1 + 8 + 8 + 8 + 4;
const CRC_LEN: usize = 4;
const MAX_DECODED_LEN: usize = HEADER_LEN + crate::MAX_KEY_LEN + CRC_LEN;

/// The decoded contents of a continue token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ContinueToken {
    /// The id of the store that issued it.
    pub store: u64,
    /// The run of the store that issued it.
    pub run: u64,
    /// The revision every chunk of the list is read at.
    pub revision: Revision,
    /// Whether the list runs in descending key order.
    pub reverse: bool,
    /// Identifies the request the token was issued for (range, order, filters).
    pub fingerprint: u32,
    /// The last key the previous chunk examined; the next chunk starts strictly past it.
    pub last_key: Vec<u8>,
}

impl ContinueToken {
    pub(crate) fn encode(&self) -> String {
        let mut bytes = Vec::with_capacity(HEADER_LEN + self.last_key.len() + CRC_LEN);
        bytes.push(TOKEN_VERSION);
        bytes.push(if self.reverse { FLAG_REVERSE } else { 0 });
        bytes.extend_from_slice(&self.store.to_be_bytes());
        bytes.extend_from_slice(&self.run.to_be_bytes());
        bytes.extend_from_slice(&self.revision.to_key_bytes());
        bytes.extend_from_slice(&self.fingerprint.to_be_bytes());
        bytes.extend_from_slice(&self.last_key);
        let crc = crc32fast::hash(&bytes);
        bytes.extend_from_slice(&crc.to_be_bytes());
        URL_SAFE_NO_PAD.encode(bytes)
    }

    pub(crate) fn decode(token: &str) -> Result<Self, TokenRejection> {
        // Checked before decoding so a huge string costs nothing to refuse.
        if token.len() > MAX_DECODED_LEN.div_ceil(3) * 4 {
            return Err(TokenRejection::BadLength);
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|_| TokenRejection::NotBase64)?;
        if bytes.len() <= HEADER_LEN + CRC_LEN || bytes.len() > MAX_DECODED_LEN {
            return Err(TokenRejection::BadLength);
        }
        let (body, crc) = bytes.split_at(bytes.len() - CRC_LEN);
        let crc = u32::from_be_bytes(crc.try_into().expect("split leaves exactly CRC_LEN bytes"));
        if crc32fast::hash(body) != crc {
            return Err(TokenRejection::ChecksumMismatch);
        }
        let (header, last_key) = body.split_at(HEADER_LEN);
        let (&[version, flags], rest) = header.split_first_chunk::<2>().expect("a full header");
        if version != TOKEN_VERSION || flags & !FLAG_REVERSE != 0 {
            return Err(TokenRejection::UnknownVersion);
        }
        let (store, rest) = rest.split_first_chunk::<8>().expect("a full header");
        let (run, rest) = rest.split_first_chunk::<8>().expect("a full header");
        let (revision, fingerprint) = rest.split_first_chunk::<8>().expect("a full header");
        let fingerprint: [u8; 4] = fingerprint.try_into().expect("a full header");
        let revision = Revision::from_key_bytes(*revision);
        if revision == Revision::ZERO {
            return Err(TokenRejection::ZeroRevision);
        }
        Ok(ContinueToken {
            store: u64::from_be_bytes(*store),
            run: u64::from_be_bytes(*run),
            revision,
            reverse: flags & FLAG_REVERSE != 0,
            fingerprint: u32::from_be_bytes(fingerprint),
            last_key: last_key.to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn sample() -> ContinueToken {
        ContinueToken {
            store: 0x0123_4567_89ab_cdef,
            run: 0xfeed,
            revision: Revision::new(42),
            reverse: false,
            fingerprint: 0xdead_beef,
            last_key: b"pods/default/web-1".to_vec(),
        }
    }

    #[test]
    fn token_is_url_safe() {
        let token = ContinueToken {
            last_key: vec![0xff; 300],
            ..sample()
        }
        .encode();
        assert!(token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    }

    #[test]
    fn every_truncation_is_rejected() {
        let token = sample().encode();
        for len in 0..token.len() {
            assert!(
                ContinueToken::decode(&token[..len]).is_err(),
                "length {len}"
            );
        }
    }

    #[test]
    fn every_single_character_change_is_rejected() {
        let token = sample().encode();
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        for i in 0..token.len() {
            for &c in alphabet {
                let mut changed = token.clone().into_bytes();
                if changed[i] == c {
                    continue;
                }
                changed[i] = c;
                let changed = String::from_utf8(changed).unwrap();
                // The last character may carry only padding bits; such a change decodes to
                // the same bytes and is the same token.
                if let Ok(decoded) = ContinueToken::decode(&changed) {
                    assert_eq!(decoded, sample(), "position {i} char {}", c as char);
                }
            }
        }
    }

    #[test]
    fn rejections_name_their_reason() {
        let reencode = |mut bytes: Vec<u8>| {
            bytes.truncate(bytes.len() - CRC_LEN);
            let crc = crc32fast::hash(&bytes);
            bytes.extend_from_slice(&crc.to_be_bytes());
            URL_SAFE_NO_PAD.encode(bytes)
        };
        let raw = URL_SAFE_NO_PAD.decode(sample().encode()).unwrap();
        let cases = [
            ("not base64!".to_string(), TokenRejection::NotBase64),
            (URL_SAFE_NO_PAD.encode([1u8; 5]), TokenRejection::BadLength),
            ("A".repeat(10_000), TokenRejection::BadLength),
            (
                reencode({
                    let mut b = raw.clone();
                    b[0] = 3;
                    b
                }),
                TokenRejection::UnknownVersion,
            ),
            (
                reencode({
                    let mut b = raw.clone();
                    b[1] = 0x80;
                    b
                }),
                TokenRejection::UnknownVersion,
            ),
            (
                reencode({
                    let mut b = raw.clone();
                    b[18..26].fill(0);
                    b
                }),
                TokenRejection::ZeroRevision,
            ),
            (
                reencode(raw[..HEADER_LEN + CRC_LEN].to_vec()),
                TokenRejection::BadLength,
            ),
            (
                {
                    let mut b = raw.clone();
                    let last = b.len() - 1;
                    b[last] ^= 1;
                    URL_SAFE_NO_PAD.encode(b)
                },
                TokenRejection::ChecksumMismatch,
            ),
        ];
        for (token, expected) in cases {
            assert_eq!(ContinueToken::decode(&token), Err(expected), "{token}");
        }
    }

    proptest! {
        #[test]
        fn tokens_round_trip(store: u64, run: u64, revision in 1u64.., reverse: bool, fingerprint: u32,
                             last_key in proptest::collection::vec(any::<u8>(), 1..64)) {
            let token = ContinueToken { store, run, revision: Revision::new(revision), reverse, fingerprint, last_key };
            prop_assert_eq!(ContinueToken::decode(&token.encode()), Ok(token));
        }

        #[test]
        fn arbitrary_strings_never_panic(input in ".{0,200}") {
            let _ = ContinueToken::decode(&input);
        }
    }
}
