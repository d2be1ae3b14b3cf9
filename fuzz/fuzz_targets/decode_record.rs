//! Stored record bytes: any input decodes to a record or is `Error::Corrupted`, never a panic or
//! an unbounded allocation, and a decoded record encodes to bytes that decode to themselves.
//!
//! The first byte picks what the rest is: a stored value as it is (checksum included), a
//! payload to seal with a valid checksum, or a record body to seal behind the version-1 tag.
//! Without the last two, nearly every mutation would stop at the checksum.

#![no_main]

use libfuzzer_sys::fuzz_target;
use revkv::fuzzing::decode_record;

fn seal(payload: &[u8]) -> Vec<u8> {
    let mut sealed = crc32fast::hash(payload).to_be_bytes().to_vec();
    sealed.extend_from_slice(payload);
    sealed
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let stored = match mode % 3 {
        0 => rest.to_vec(),
        1 => seal(rest),
        _ => seal(&[&[1], rest].concat()),
    };
    match decode_record(&stored) {
        Ok(encoded) => {
            let again = decode_record(&encoded).expect("an encoded record decodes");
            assert_eq!(again, encoded, "encoding a decoded record is a fixpoint");
        }
        Err(error) => assert_eq!(error.reason(), "Corrupted", "{error}"),
    }
});
