//! Continue tokens: the opaque, URL-safe cursor between the chunks of one list.
//!
//! Layout before base64 (unpadded, URL-safe alphabet):
//!
//! ```text
//! +---------+-------+----------+-----+----------+---------+------------+-----------------+-----+-------+
//! | version | flags | store id | run | revision | request | started at | position        | tag | crc32 |
//! | 1 byte  | 1     | 8        | 8   | 8        | 4       | 0 or 8     | 1..=MAX_KEY_LEN | 16  | 4     |
//! +---------+-------+----------+-----+----------+---------+------------+-----------------+-----+-------+
//! ```
//!
//! Integers are big-endian. The store id and run say which store, and which open of it, issued
//! the token (see `identity`): a token of another store is refused, and one whose revision a
//! crash or a restore lost fails with `LostRevision`. The revision is the one the list reads;
//! the revision it started at is there only when they differ, because an `Expired` moved the
//! list on to the newest revision (flag bit 0). The position is the last key, or common prefix,
//! that the previous chunk examined.
//!
//! Every store has a [`TokenSecret`], two 128-bit SipHash-2-4 keys, and binds each token to the
//! request it was issued for through the request's canonical encoding (everything that defines
//! the list but its page size, scan budget and revision; see `ListOptions::canonical`):
//!
//! - `request` is the first 4 bytes of SipHash-2-4-128, under the first key, of the canonical
//!   request. It only tells a token presented with another request (`ForeignRequest`) from a
//!   forged one; it protects nothing, the tag does.
//! - `tag` is SipHash-2-4-128, under the second key, of the canonical request followed by every
//!   byte of the token before the tag. A token is accepted only with the request it was issued
//!   for and only as it was issued: making one, altering one, or moving one to another request
//!   takes the secret.
//! - The crc32 covers everything before it, so that truncation and typos are told apart from
//!   forgeries (`ChecksumMismatch`, not `Forged`).
//!
//! A token pins nothing; it stays usable while its revision is not compacted.

use std::fmt;
use std::hash::Hasher as _;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use siphasher::sip128::{Hasher128 as _, SipHasher24};

use crate::{Revision, TokenRejection, MAX_KEY_LEN};

const TOKEN_VERSION: u8 = 3;
/// The list reads another revision than it started at: the header says which one it started at.
const FLAG_MOVED: u8 = 1;
const HINT_LEN: usize = 4;
const HEADER_LEN: usize = 1 + 1 + 8 + 8 + 8 + HINT_LEN;
const TAG_LEN: usize = 16;
const CRC_LEN: usize = 4;
const STARTED_AT_LEN: usize = 8;
const MAX_DECODED_LEN: usize = HEADER_LEN + STARTED_AT_LEN + MAX_KEY_LEN + TAG_LEN + CRC_LEN;

/// A store's secret for authenticating its continue tokens: 32 random bytes, made with the store
/// and kept in its metadata. The first half keys the request hint, the second the tag, so that
/// the hint a token shows says nothing about how tags are made.
#[derive(Clone)]
pub(crate) struct TokenSecret([u8; TokenSecret::LEN]);

impl TokenSecret {
    pub(crate) const LEN: usize = 32;

    pub(crate) fn from_bytes(bytes: [u8; TokenSecret::LEN]) -> Self {
        TokenSecret(bytes)
    }

    pub(crate) fn as_bytes(&self) -> &[u8; TokenSecret::LEN] {
        &self.0
    }

    fn hint_key(&self) -> &[u8; 16] {
        self.0.first_chunk().expect("the secret holds two keys")
    }

    fn tag_key(&self) -> &[u8; 16] {
        self.0.last_chunk().expect("the secret holds two keys")
    }
}

/// Never prints the secret.
impl fmt::Debug for TokenSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenSecret(..)")
    }
}

/// What a continue token says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ContinueToken {
    /// The id of the store that issued it.
    pub store: u64,
    /// The run of the store that issued it.
    pub run: u64,
    /// The revision the next chunk reads at.
    pub revision: Revision,
    /// The revision the list started at: `revision`, unless an `Expired` moved the list on to
    /// a newer one. A request with the token may name either.
    pub started_at: Revision,
    /// The last key, or common prefix, the previous chunk examined; the next chunk starts
    /// strictly past it.
    pub position: Vec<u8>,
}

/// Issues and opens the continue tokens of one list request for one store.
pub(crate) struct Issuer<'a> {
    secret: &'a TokenSecret,
    /// The request's canonical encoding, which every token of the request is bound to. No
    /// encoding is a prefix of another, so the tag's input, this followed by the token's bytes,
    /// is never the same for two different requests and tokens.
    request: &'a [u8],
}

impl<'a> Issuer<'a> {
    pub(crate) fn new(secret: &'a TokenSecret, request: &'a [u8]) -> Self {
        Issuer { secret, request }
    }

    pub(crate) fn issue(&self, token: &ContinueToken) -> String {
        let moved = token.started_at != token.revision;
        let mut bytes = Vec::with_capacity(MAX_DECODED_LEN);
        bytes.push(TOKEN_VERSION);
        bytes.push(if moved { FLAG_MOVED } else { 0 });
        bytes.extend_from_slice(&token.store.to_be_bytes());
        bytes.extend_from_slice(&token.run.to_be_bytes());
        bytes.extend_from_slice(&token.revision.to_key_bytes());
        bytes.extend_from_slice(&self.hint());
        if moved {
            bytes.extend_from_slice(&token.started_at.to_key_bytes());
        }
        bytes.extend_from_slice(&token.position);
        self.seal(bytes)
    }

    /// Appends the tag and the checksum to the bytes of a token, and encodes it.
    pub(crate) fn seal(&self, mut bytes: Vec<u8>) -> String {
        let tag = self.tag(&bytes);
        bytes.extend_from_slice(&tag);
        let crc = crc32fast::hash(&bytes);
        bytes.extend_from_slice(&crc.to_be_bytes());
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// What `sealed` says, once its tag shows that this store issued it for this request.
    pub(crate) fn open(&self, sealed: Sealed) -> Result<ContinueToken, TokenRejection> {
        if sealed.hint != self.hint() {
            return Err(TokenRejection::ForeignRequest);
        }
        if !same_tag(&sealed.tag, &self.tag(&sealed.body)) {
            return Err(TokenRejection::Forged);
        }
        Ok(sealed.claims)
    }

    fn hint(&self) -> [u8; HINT_LEN] {
        let digest = mac(self.secret.hint_key(), &[self.request]);
        *digest
            .first_chunk()
            .expect("a digest is longer than a hint")
    }

    fn tag(&self, body: &[u8]) -> [u8; TAG_LEN] {
        mac(self.secret.tag_key(), &[self.request, body])
    }
}

/// SipHash-2-4-128 of the concatenated `parts` under `key`.
fn mac(key: &[u8; 16], parts: &[&[u8]]) -> [u8; 16] {
    let mut hasher = SipHasher24::new_with_key(key);
    for part in parts {
        hasher.write(part);
    }
    hasher.finish128().as_bytes()
}

/// Compares tags in time independent of where they differ, so that response times do not guide
/// a forger byte by byte.
fn same_tag(a: &[u8; TAG_LEN], b: &[u8; TAG_LEN]) -> bool {
    a.iter().zip(b).fold(0, |differ, (x, y)| differ | (x ^ y)) == 0
}

/// A token whose layout and checksum are sound but whose tag is not checked yet. What it claims
/// may name why it is refused (another store, a lost revision), and nothing more, until
/// [`Issuer::open`] has checked the tag.
pub(crate) struct Sealed {
    claims: ContinueToken,
    hint: [u8; HINT_LEN],
    /// The token's bytes before its tag.
    body: Vec<u8>,
    tag: [u8; TAG_LEN],
}

impl Sealed {
    pub(crate) fn decode(token: &str) -> Result<Sealed, TokenRejection> {
        // Checked before decoding so a huge string costs nothing to refuse.
        if token.len() > MAX_DECODED_LEN.div_ceil(3) * 4 {
            return Err(TokenRejection::BadLength);
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|_| TokenRejection::NotBase64)?;
        let (checked, crc) = bytes
            .split_last_chunk::<CRC_LEN>()
            .ok_or(TokenRejection::BadLength)?;
        if crc32fast::hash(checked) != u32::from_be_bytes(*crc) {
            return Err(TokenRejection::ChecksumMismatch);
        }
        // The version comes before any length that depends on it, so that a token of any other
        // format is refused as such.
        if checked.first() != Some(&TOKEN_VERSION) {
            return Err(TokenRejection::UnknownVersion);
        }
        let (body, tag) = checked
            .split_last_chunk::<TAG_LEN>()
            .ok_or(TokenRejection::BadLength)?;
        let mut rest = body;
        let [_version, flags] = take(&mut rest)?;
        let (store, run, revision, hint) = (
            take(&mut rest)?,
            take(&mut rest)?,
            take(&mut rest)?,
            take(&mut rest)?,
        );
        if flags & !FLAG_MOVED != 0 {
            return Err(TokenRejection::UnknownVersion);
        }
        let revision = Revision::from_key_bytes(revision);
        let started_at = if flags & FLAG_MOVED != 0 {
            Revision::from_key_bytes(take(&mut rest)?)
        } else {
            revision
        };
        if rest.is_empty() || rest.len() > MAX_KEY_LEN {
            return Err(TokenRejection::BadLength);
        }
        if revision == Revision::ZERO {
            return Err(TokenRejection::ZeroRevision);
        }
        Ok(Sealed {
            claims: ContinueToken {
                store: u64::from_be_bytes(store),
                run: u64::from_be_bytes(run),
                revision,
                started_at,
                position: rest.to_vec(),
            },
            hint,
            body: body.to_vec(),
            tag: *tag,
        })
    }

    /// What the token says, not yet authenticated.
    pub(crate) fn claims(&self) -> &ContinueToken {
        &self.claims
    }
}

/// The first `N` bytes of `bytes`, which then starts after them.
fn take<const N: usize>(bytes: &mut &[u8]) -> Result<[u8; N], TokenRejection> {
    let (head, rest) = bytes
        .split_first_chunk::<N>()
        .ok_or(TokenRejection::BadLength)?;
    *bytes = rest;
    Ok(*head)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const SECRET: TokenSecret = TokenSecret([7; TokenSecret::LEN]);
    const REQUEST: &[u8] = b"a canonical request";

    fn issuer() -> Issuer<'static> {
        Issuer::new(&SECRET, REQUEST)
    }

    fn sample() -> ContinueToken {
        ContinueToken {
            store: 0x0123_4567_89ab_cdef,
            run: 0xfeed,
            revision: Revision::new(42),
            started_at: Revision::new(42),
            position: b"pods/default/web-1".to_vec(),
        }
    }

    fn accept(issuer: &Issuer<'_>, token: &str) -> Result<ContinueToken, TokenRejection> {
        issuer.open(Sealed::decode(token)?)
    }

    /// The token's bytes before its tag and checksum.
    fn body(token: &ContinueToken) -> Vec<u8> {
        let mut bytes = URL_SAFE_NO_PAD.decode(issuer().issue(token)).unwrap();
        bytes.truncate(bytes.len() - TAG_LEN - CRC_LEN);
        bytes
    }

    /// `bytes` with a valid checksum but no valid tag: what a forger without the secret makes.
    fn with_checksum(mut bytes: Vec<u8>) -> String {
        bytes.extend_from_slice(&crc32fast::hash(&bytes).to_be_bytes());
        URL_SAFE_NO_PAD.encode(bytes)
    }

    #[test]
    fn token_is_url_safe_and_short() {
        let token = issuer().issue(&sample());
        assert!(token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_eq!(token.len(), 91, "{token}");
    }

    #[test]
    fn every_truncation_is_rejected() {
        let token = issuer().issue(&sample());
        for len in 0..token.len() {
            assert!(accept(&issuer(), &token[..len]).is_err(), "length {len}");
        }
    }

    #[test]
    fn every_single_character_change_is_rejected() {
        let token = issuer().issue(&sample());
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
                if let Ok(decoded) = accept(&issuer(), &changed) {
                    assert_eq!(decoded, sample(), "position {i} char {}", c as char);
                }
            }
        }
    }

    #[test]
    fn a_token_opens_only_with_its_secret_and_its_request() {
        let token = issuer().issue(&sample());
        assert_eq!(accept(&issuer(), &token), Ok(sample()));
        let other_request = Issuer::new(&SECRET, b"another request");
        assert_eq!(
            accept(&other_request, &token),
            Err(TokenRejection::ForeignRequest)
        );
        let other_secret = TokenSecret([8; TokenSecret::LEN]);
        assert_eq!(
            accept(&Issuer::new(&other_secret, REQUEST), &token),
            Err(TokenRejection::ForeignRequest)
        );
    }

    #[test]
    fn requests_that_share_a_hint_still_cannot_share_a_token() {
        // The hint has 32 bits: a birthday search finds two requests that share one within a
        // second, as it did for the crc32 fingerprint of version 2. The tag still tells them
        // apart.
        let mut seen = std::collections::HashMap::new();
        let (first, second) = (0u32..)
            .find_map(|i| {
                let request = format!("request {i}").into_bytes();
                let hint = Issuer::new(&SECRET, &request).hint();
                seen.insert(hint, request.clone())
                    .map(|earlier| (earlier, request))
            })
            .expect("a shared hint");
        let token = Issuer::new(&SECRET, &first).issue(&sample());
        assert_eq!(
            accept(&Issuer::new(&SECRET, &second), &token),
            Err(TokenRejection::Forged)
        );
    }

    #[test]
    fn a_changed_field_with_a_valid_checksum_is_forged() {
        let body = body(&sample());
        let tag_of = |token: &str| Sealed::decode(token).unwrap().tag;
        let genuine = tag_of(&issuer().issue(&sample()));
        // Each field in turn, with the genuine tag: what a forger who edits a token can try.
        for at in 2..body.len() {
            let mut forged = body.clone();
            forged[at] ^= 1;
            forged.extend_from_slice(&genuine);
            let forged = with_checksum(forged);
            let expected = if (26..30).contains(&at) {
                TokenRejection::ForeignRequest
            } else {
                TokenRejection::Forged
            };
            assert_eq!(accept(&issuer(), &forged), Err(expected), "byte {at}");
        }
    }

    #[test]
    fn rejections_name_their_reason() {
        let moved = body(&ContinueToken {
            started_at: Revision::new(7),
            ..sample()
        });
        let body = body(&sample());
        let edited = |at: usize, value: u8| {
            let mut bytes = body.clone();
            bytes[at] = value;
            bytes.extend_from_slice(&[0; TAG_LEN]);
            with_checksum(bytes)
        };
        let version_2 = {
            // The layout of version 2: a crc32 fingerprint and no tag.
            let mut bytes = body.clone();
            bytes[0] = 2;
            with_checksum(bytes)
        };
        let cases = [
            ("not base64!".to_string(), TokenRejection::NotBase64),
            ("A".repeat(10_000), TokenRejection::BadLength),
            (URL_SAFE_NO_PAD.encode([1u8; 3]), TokenRejection::BadLength),
            (
                URL_SAFE_NO_PAD.encode([1u8; 60]),
                TokenRejection::ChecksumMismatch,
            ),
            (version_2, TokenRejection::UnknownVersion),
            (edited(0, 4), TokenRejection::UnknownVersion),
            (edited(1, 0x80), TokenRejection::UnknownVersion),
            (
                with_checksum(body[..HEADER_LEN].to_vec()),
                TokenRejection::BadLength,
            ),
            (
                {
                    // Moved on from revision 7, but the revision it started at is cut short.
                    let mut bytes = moved;
                    bytes.truncate(HEADER_LEN + 4);
                    bytes.extend_from_slice(&[0; TAG_LEN]);
                    with_checksum(bytes)
                },
                TokenRejection::BadLength,
            ),
            (
                {
                    let mut bytes = body[..HEADER_LEN].to_vec();
                    bytes.extend_from_slice(&[0; TAG_LEN]);
                    with_checksum(bytes)
                },
                TokenRejection::BadLength,
            ),
            (
                {
                    let mut bytes = body.clone();
                    bytes[18..26].fill(0);
                    bytes.extend_from_slice(&[0; TAG_LEN]);
                    with_checksum(bytes)
                },
                TokenRejection::ZeroRevision,
            ),
            (
                {
                    let mut bytes = URL_SAFE_NO_PAD.decode(issuer().issue(&sample())).unwrap();
                    *bytes.last_mut().unwrap() ^= 1;
                    URL_SAFE_NO_PAD.encode(bytes)
                },
                TokenRejection::ChecksumMismatch,
            ),
        ];
        for (token, expected) in cases {
            assert_eq!(accept(&issuer(), &token), Err(expected), "{token}");
        }
    }

    #[test]
    fn the_secret_is_never_printed() {
        assert_eq!(format!("{SECRET:?}"), "TokenSecret(..)");
    }

    proptest! {
        #[test]
        fn tokens_round_trip(store: u64, run: u64, revision in 1u64.., started_at: u64,
                             position in proptest::collection::vec(any::<u8>(), 1..64)) {
            let token = ContinueToken {
                store,
                run,
                revision: Revision::new(revision),
                started_at: Revision::new(started_at),
                position,
            };
            prop_assert_eq!(accept(&issuer(), &issuer().issue(&token)), Ok(token));
        }

        #[test]
        fn arbitrary_strings_never_panic(input in ".{0,200}") {
            let _ = accept(&issuer(), &input);
        }
    }
}
