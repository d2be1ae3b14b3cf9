//! Every kind of bad continue token is a typed error, never an item from elsewhere.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use revkv::{Error, ListOptions, TokenRejection};

use crate::common::temp_store;

fn rejection(db: &revkv::Db, options: &ListOptions) -> TokenRejection {
    match db.list(options) {
        Err(Error::InvalidContinueToken { reason }) => reason,
        other => panic!("expected InvalidContinueToken, got {other:?}"),
    }
}

fn store_with_token() -> (revkv::Db, String) {
    let db = temp_store(4);
    for i in 0..10 {
        db.put(format!("a/{i}"), "v").unwrap();
        db.put(format!("b/{i}"), "v").unwrap();
    }
    let token = db
        .list(&ListOptions::prefix("a/").limit(3))
        .unwrap()
        .continue_token
        .unwrap();
    (db, token)
}

#[test]
fn garbage_truncated_and_tampered_tokens_are_rejected() {
    let (db, token) = store_with_token();
    let with = |t: &str| ListOptions::prefix("a/").limit(3).continue_token(t);
    assert_eq!(
        rejection(&db, &with("%%%not base64%%%")),
        TokenRejection::NotBase64
    );
    assert_eq!(rejection(&db, &with("")), TokenRejection::BadLength);
    for len in 1..token.len() {
        assert!(db.list(&with(&token[..len])).is_err(), "truncated to {len}");
    }
    let mut tampered = token.clone().into_bytes();
    tampered[5] = if tampered[5] == b'A' { b'B' } else { b'A' };
    assert_eq!(
        rejection(&db, &with(std::str::from_utf8(&tampered).unwrap())),
        TokenRejection::ChecksumMismatch
    );
}

/// `token` decoded, changed by `edit`, and given a valid checksum again: what someone without the
/// store's secret can make of a token.
fn edited(token: &str, edit: impl FnOnce(&mut Vec<u8>)) -> String {
    let mut bytes = URL_SAFE_NO_PAD.decode(token).unwrap();
    bytes.truncate(bytes.len() - 4);
    edit(&mut bytes);
    bytes.extend_from_slice(&crc32fast::hash(&bytes).to_be_bytes());
    URL_SAFE_NO_PAD.encode(bytes)
}

#[test]
fn a_token_edited_with_a_valid_checksum_is_forged() {
    let (db, token) = store_with_token();
    let with = |t: String| ListOptions::prefix("a/").limit(3).continue_token(t);
    // The position is the last key read, `a/2`, before the 16-byte tag: back to `a/0`.
    let earlier = edited(&token, |bytes| {
        let at = bytes.len() - 17;
        assert_eq!(bytes[at], b'2');
        bytes[at] = b'0';
    });
    assert_eq!(rejection(&db, &with(earlier)), TokenRejection::Forged);
    let older_revision = edited(&token, |bytes| bytes[25] -= 1);
    assert_eq!(
        rejection(&db, &with(older_revision)),
        TokenRejection::Forged
    );
    let retagged = edited(&token, |bytes| {
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
    });
    assert_eq!(rejection(&db, &with(retagged)), TokenRejection::Forged);
}

#[test]
fn a_token_of_the_previous_format_is_refused_as_an_unknown_version() {
    let (db, token) = store_with_token();
    // Version 2: the same header with a crc32 fingerprint, then the key, and no tag.
    let version_2 = edited(&token, |bytes| {
        bytes.truncate(bytes.len() - 16);
        bytes[0] = 2;
    });
    let options = ListOptions::prefix("a/").limit(3).continue_token(version_2);
    assert_eq!(rejection(&db, &options), TokenRejection::UnknownVersion);
}

#[test]
fn a_token_from_another_request_is_foreign() {
    let (db, token) = store_with_token();
    let foreign = [
        ListOptions::prefix("b/"),
        ListOptions::prefix("a"),
        ListOptions::all(),
        ListOptions::prefix("a/").reverse(true),
    ];
    for options in foreign {
        assert_eq!(
            rejection(&db, &options.limit(3).continue_token(token.clone())),
            TokenRejection::ForeignRequest
        );
    }
    // The page size is not part of the request's identity.
    assert!(db
        .list(&ListOptions::prefix("a/").limit(5).continue_token(token))
        .is_ok());
}

#[test]
fn a_token_with_a_contradicting_revision_is_rejected() {
    let (db, token) = store_with_token();
    let options = ListOptions::prefix("a/")
        .continue_token(token)
        .revision(revkv::Revision::new(1));
    assert_eq!(rejection(&db, &options), TokenRejection::RevisionMismatch);
}

#[test]
fn a_token_survives_a_round_trip_through_a_url() {
    let (db, token) = store_with_token();
    assert!(token
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    let page = db
        .list(&ListOptions::prefix("a/").limit(3).continue_token(token))
        .unwrap();
    assert_eq!(page.items[0].key, b"a/3");
}
