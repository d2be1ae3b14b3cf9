//! Continue tokens through the public API: with any token, any request either fails with a
//! typed error or returns exactly the next chunk of that request, past the position the token
//! names, at the token's revision.
//!
//! Input: byte 0 picks the request (bits 0-1 its range, bit 2 reverse, bit 3 an explicit
//! revision) and bit 4 whether the rest is a token as text or the fields of a token to forge
//! with the store's secret (`revkv::fuzzing::seal_token`): version, flags, revision (2 bytes),
//! a request hint mode byte (odd: 4 hint bytes follow; even: the request's own hint) and the
//! position; the store id and run of a forged token are the store's own. Byte 1 is the limit,
//! byte 2 the explicit revision. Forging with the secret gets past the tag, which no mutation
//! of a valid token does: it reaches the checks a list makes of an authentic token (range,
//! revision, origin). Text tokens name another store (each run's store has a new random id), so
//! they test the decoder and the refusals before the tag.

#![no_main]

use std::sync::OnceLock;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use revkv::{Db, Durability, Entry, Error, ListOptions, Retention, Revision};

/// Revisions below this one are compacted in the store.
const COMPACTED: u64 = 20;

/// A store with 60 revisions of puts and deletes over 30 keys, compacted at 20: made once.
fn store() -> &'static Db {
    static STORE: OnceLock<Db> = OnceLock::new();
    STORE.get_or_init(|| {
        let db = Db::options()
            .retention(Retention::Manual)
            .durability(Durability::Buffered)
            .temporary()
            .expect("a temporary store");
        let mut i = 0u32;
        while db.current_revision().get() < 60 {
            let key = format!("k/{:02}", i * 7 % 30);
            if i % 4 == 3 {
                db.delete(key).expect("a delete");
            } else {
                db.put(key, i.to_string()).expect("a put");
            }
            i += 1;
        }
        db.compact(Revision::new(COMPACTED)).expect("a compaction");
        db
    })
}

fn request(selector: u8) -> ListOptions {
    let range = match selector % 4 {
        0 => ListOptions::all(),
        1 => ListOptions::prefix("k/1"),
        2 => ListOptions::range("k/05", "k/20"),
        _ => ListOptions::from("k/2"),
    };
    range.reverse(selector & 4 != 0)
}

/// The store id and run (16 bytes) and the request hint of request `selector % 8`, read off the
/// token of its first chunk.
fn issued(selector: u8) -> ([u8; 16], [u8; 4]) {
    static ISSUED: OnceLock<Vec<([u8; 16], [u8; 4])>> = OnceLock::new();
    ISSUED.get_or_init(|| {
        (0..8)
            .map(|selector| {
                let page = store().list(&request(selector).limit(1)).expect("a chunk");
                let token = page.continue_token.expect("every range holds two keys");
                let bytes = URL_SAFE_NO_PAD.decode(token).expect("tokens are base64");
                let identity = bytes[2..18].try_into().expect("16 bytes");
                (identity, bytes[26..30].try_into().expect("4 bytes"))
            })
            .collect()
    })[usize::from(selector % 8)]
}

/// A token with a valid tag and checksum from fuzzer-chosen fields.
fn forge(selector: u8, fields: &[u8]) -> Option<String> {
    let [version, flags, r0, r1, mode, rest @ ..] = fields else {
        return None;
    };
    let (hint, position) = match rest {
        [h0, h1, h2, h3, position @ ..] if mode % 2 == 1 => ([*h0, *h1, *h2, *h3], position),
        position => (issued(selector).1, position),
    };
    let mut body = vec![*version, *flags];
    body.extend_from_slice(&issued(selector).0);
    body.extend_from_slice(&u64::from(u16::from_be_bytes([*r0, *r1])).to_be_bytes());
    body.extend_from_slice(&hint);
    body.extend_from_slice(position);
    Some(revkv::fuzzing::seal_token(store(), &request(selector), &body))
}

/// What an accepted token says: its revision and its position.
fn position(token: &str) -> (Revision, Vec<u8>) {
    let bytes = URL_SAFE_NO_PAD
        .decode(token)
        .expect("an accepted token is base64");
    let revision = u64::from_be_bytes(bytes[18..26].try_into().expect("8 bytes"));
    // A moved list's token holds the revision it started at before the position; the tag (16
    // bytes) and the checksum (4) follow the position.
    let position = if bytes[1] & 1 == 0 { 30 } else { 38 };
    (
        Revision::new(revision),
        bytes[position..bytes.len() - 20].to_vec(),
    )
}

/// The rest of the list `options` at `revision` past `last_key`, read in one chunk.
fn rest_of(
    options: &ListOptions,
    revision: Revision,
    last_key: &[u8],
    reverse: bool,
) -> Vec<Entry> {
    let whole = store()
        .list(&options.clone().revision(revision))
        .expect("a readable revision lists");
    whole
        .items
        .into_iter()
        .filter(|entry| {
            if reverse {
                entry.key.as_slice() < last_key
            } else {
                entry.key.as_slice() > last_key
            }
        })
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let [selector, limit, revision, rest @ ..] = data else {
        return;
    };
    let token = if selector & 16 == 0 {
        match std::str::from_utf8(rest) {
            Ok(token) => token.to_owned(),
            Err(_) => return,
        }
    } else {
        match forge(*selector, rest) {
            Some(token) => token,
            None => return,
        }
    };
    let reverse = selector & 4 != 0;
    let base = request(*selector);
    let mut options = base
        .clone()
        .limit(usize::from(*limit))
        .continue_token(token.clone());
    if selector & 8 != 0 {
        options = options.revision(Revision::new(u64::from(*revision)));
    }
    match store().list(&options) {
        Ok(page) => {
            let (at, last_key) = position(&token);
            assert_eq!(page.revision, at);
            let expected = rest_of(&base, at, &last_key, reverse);
            let taken = expected.len().min(usize::from(*limit));
            assert_eq!(
                page.items,
                expected[..taken],
                "the chunk after {last_key:?} at {at}"
            );
            assert_eq!(page.remaining, Some((expected.len() - taken) as u64));
            assert_eq!(page.continue_token.is_some(), taken < expected.len());
        }
        Err(Error::Expired {
            requested,
            compacted,
            continue_token,
        }) => {
            assert!(requested < compacted && compacted == Revision::new(COMPACTED));
            // The carried token finishes the list at the newest revision.
            let token = continue_token.expect("a continued list that expired can go on");
            if selector & 8 == 0 {
                let next = base
                    .clone()
                    .limit(usize::from(*limit))
                    .continue_token(token);
                store()
                    .list(&next)
                    .expect("the carried token continues the list");
            }
        }
        Err(
            Error::InvalidContinueToken { .. }
            | Error::InvalidRequest { .. }
            | Error::FutureRevision { .. },
        ) => {}
        Err(error) => panic!("an unexpected error: {error:?}"),
    }
});
