//! The protobuf wire format, read from a borrowed buffer: tags, varints, fixed-width numbers
//! and length-delimited bytes. Every length is checked against the bytes that remain, so a
//! forged length fails instead of allocating or reading past the end.

use std::fmt;

/// One field's value as it appears on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WireValue<'a> {
    Varint(u64),
    Fixed64(u64),
    /// Strings, bytes, embedded messages and map entries.
    Bytes(&'a [u8]),
    Fixed32(u32),
}

impl WireValue<'_> {
    pub fn wire_type(&self) -> &'static str {
        match self {
            WireValue::Varint(_) => "varint",
            WireValue::Fixed64(_) => "64-bit",
            WireValue::Bytes(_) => "length-delimited",
            WireValue::Fixed32(_) => "32-bit",
        }
    }
}

/// Why bytes are not protobuf.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WireError {
    /// The buffer ends inside a tag, a number or a length prefix.
    Truncated,
    /// A varint runs past ten bytes, or past 64 bits.
    VarintTooLong,
    /// A length prefix names more bytes than remain.
    LengthPastEnd { length: u64, remaining: usize },
    /// Wire type 3 or 4 (groups, which Kubernetes never writes), or 6 and 7 (undefined).
    UnsupportedWireType(u8),
    /// Field number 0, or one beyond protobuf's largest.
    InvalidFieldNumber(u64),
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Truncated => f.write_str("the bytes end inside a field"),
            WireError::VarintTooLong => f.write_str("a varint is longer than 64 bits"),
            WireError::LengthPastEnd { length, remaining } => write!(
                f,
                "a length prefix of {length} bytes runs past the {remaining} bytes that remain"
            ),
            WireError::UnsupportedWireType(wire_type) => {
                write!(f, "wire type {wire_type} is not supported")
            }
            WireError::InvalidFieldNumber(number) => write!(f, "field number {number} is invalid"),
        }
    }
}

/// Reads the fields of one message in order.
pub struct Reader<'a> {
    rest: &'a [u8],
}

/// Protobuf's largest field number, 2^29 - 1.
const MAX_FIELD_NUMBER: u64 = (1 << 29) - 1;

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader { rest: bytes }
    }

    /// The next field's number and value, or `None` at the end of the message.
    pub fn next_field(&mut self) -> Result<Option<(u32, WireValue<'a>)>, WireError> {
        if self.rest.is_empty() {
            return Ok(None);
        }
        let tag = self.varint()?;
        let number = tag >> 3;
        if number == 0 || number > MAX_FIELD_NUMBER {
            return Err(WireError::InvalidFieldNumber(number));
        }
        let value = match tag & 7 {
            0 => WireValue::Varint(self.varint()?),
            1 => WireValue::Fixed64(u64::from_le_bytes(self.take_array()?)),
            2 => {
                let length = self.varint()?;
                let remaining = self.rest.len();
                let length = usize::try_from(length)
                    .ok()
                    .filter(|length| *length <= remaining)
                    .ok_or(WireError::LengthPastEnd { length, remaining })?;
                let (bytes, rest) = self.rest.split_at(length);
                self.rest = rest;
                WireValue::Bytes(bytes)
            }
            5 => WireValue::Fixed32(u32::from_le_bytes(self.take_array()?)),
            other => return Err(WireError::UnsupportedWireType(other as u8)),
        };
        let number = u32::try_from(number).map_err(|_| WireError::InvalidFieldNumber(number))?;
        Ok(Some((number, value)))
    }

    fn varint(&mut self) -> Result<u64, WireError> {
        let mut value = 0u64;
        for (index, byte) in self.rest.iter().enumerate().take(10) {
            let bits = u64::from(byte & 0x7f);
            // The tenth byte holds bit 63 only.
            if index == 9 && bits > 1 {
                return Err(WireError::VarintTooLong);
            }
            value |= bits << (7 * index);
            if byte & 0x80 == 0 {
                self.rest = &self.rest[index + 1..];
                return Ok(value);
            }
        }
        if self.rest.len() >= 10 {
            Err(WireError::VarintTooLong)
        } else {
            Err(WireError::Truncated)
        }
    }

    fn take_array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let (bytes, rest) = self
            .rest
            .split_first_chunk::<N>()
            .ok_or(WireError::Truncated)?;
        self.rest = rest;
        Ok(*bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(bytes: &[u8]) -> Result<Vec<(u32, WireValue<'_>)>, WireError> {
        let mut reader = Reader::new(bytes);
        let mut fields = Vec::new();
        while let Some(field) = reader.next_field()? {
            fields.push(field);
        }
        Ok(fields)
    }

    #[test]
    fn every_wire_type_reads_back() {
        let bytes = [
            0x08, 0x96, 0x01, // 1: varint 150
            0x11, 1, 0, 0, 0, 0, 0, 0, 0x80, // 2: fixed64
            0x1a, 0x02, b'h', b'i', // 3: "hi"
            0x25, 1, 0, 0, 0, // 4: fixed32
        ];
        assert_eq!(
            fields(&bytes),
            Ok(vec![
                (1, WireValue::Varint(150)),
                (2, WireValue::Fixed64(0x8000_0000_0000_0001)),
                (3, WireValue::Bytes(b"hi")),
                (4, WireValue::Fixed32(1)),
            ])
        );
    }

    #[test]
    fn the_largest_varint_reads_and_a_longer_one_fails() {
        let mut max = vec![0x08];
        max.extend([0xff; 9]);
        max.push(0x01);
        assert_eq!(fields(&max), Ok(vec![(1, WireValue::Varint(u64::MAX))]));
        let mut overflow = vec![0x08];
        overflow.extend([0xff; 9]);
        overflow.push(0x02);
        assert_eq!(fields(&overflow), Err(WireError::VarintTooLong));
        let mut endless = vec![0x08];
        endless.extend([0x80; 11]);
        assert_eq!(fields(&endless), Err(WireError::VarintTooLong));
    }

    #[test]
    fn truncated_fields_fail() {
        assert_eq!(fields(&[0x08]), Err(WireError::Truncated));
        assert_eq!(fields(&[0x08, 0x80]), Err(WireError::Truncated));
        assert_eq!(fields(&[0x11, 1, 2, 3]), Err(WireError::Truncated));
        assert_eq!(fields(&[0x25, 1]), Err(WireError::Truncated));
        assert_eq!(fields(&[0x1a]), Err(WireError::Truncated));
    }

    #[test]
    fn a_forged_length_fails_without_reading_past_the_end() {
        assert_eq!(
            fields(&[0x1a, 0x03, b'a', b'b']),
            Err(WireError::LengthPastEnd {
                length: 3,
                remaining: 2
            })
        );
        // 2^64 - 1 bytes.
        let mut huge = vec![0x1a];
        huge.extend([0xff; 9]);
        huge.push(0x01);
        assert_eq!(
            fields(&huge),
            Err(WireError::LengthPastEnd {
                length: u64::MAX,
                remaining: 0
            })
        );
    }

    #[test]
    fn groups_and_field_zero_are_refused() {
        assert_eq!(fields(&[0x0b]), Err(WireError::UnsupportedWireType(3)));
        assert_eq!(fields(&[0x0f]), Err(WireError::UnsupportedWireType(7)));
        assert_eq!(fields(&[0x00, 0x00]), Err(WireError::InvalidFieldNumber(0)));
        let mut beyond = vec![0x80, 0x80, 0x80, 0x80, 0x10]; // field 2^29
        beyond.push(0);
        assert_eq!(fields(&beyond), Err(WireError::InvalidFieldNumber(1 << 29)));
    }
}
