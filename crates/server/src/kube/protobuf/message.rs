//! Messages described as tables of fields, and the one decoder that turns a described
//! message's bytes into the JSON object Kubernetes' own JSON encoding gives for it.
//!
//! Go's protobuf encoding of Kubernetes types writes every non-pointer field, empty or not,
//! while its JSON encoding leaves out empty `omitempty` fields: so an empty scalar is dropped
//! unless its field is [`Presence::Kept`] (a pointer, or a field without `omitempty`), and an
//! embedded message, which Go's JSON never omits, is kept whenever it is on the wire.

use base64::Engine as _;
use serde_json::{Map, Value};

use super::wire::{Reader, WireValue};
use super::DecodeError;
use crate::time::Instant;

/// A message type: its name (for errors) and its fields.
pub struct Message {
    pub name: &'static str,
    pub fields: &'static [Field],
}

/// One field of a message.
pub struct Field {
    pub number: u32,
    /// The field's JSON name.
    pub name: &'static str,
    pub shape: Shape,
    pub presence: Presence,
}

/// What a field holds, and how it is spelled in JSON.
#[derive(Clone, Copy)]
pub enum Shape {
    String,
    /// Bytes, as base64 in JSON.
    Bytes,
    Int32,
    Int64,
    Bool,
    Message(&'static Message),
    /// `metav1.Time`: RFC 3339 in seconds, `null` when zero.
    Time,
    /// `metav1.MicroTime`: RFC 3339 in microseconds, `null` when zero.
    MicroTime,
    /// `intstr.IntOrString`: a number or a string.
    IntOrString,
    /// `resource.Quantity`: its string.
    Quantity,
    /// `metav1.FieldsV1`: raw JSON bytes, embedded as JSON.
    FieldsJson,
}

impl Shape {
    /// Whether Go holds the field as a plain value, which `omitempty` can leave out, rather
    /// than as a struct (an IntOrString of 0 or a zero Time is still written).
    fn is_scalar(self) -> bool {
        matches!(
            self,
            Shape::String | Shape::Bytes | Shape::Int32 | Shape::Int64 | Shape::Bool
        )
    }
}

/// How often a field appears, and when its JSON keeps an empty value.
#[derive(Clone, Copy)]
pub enum Presence {
    /// A value field with `omitempty`: an empty scalar is left out.
    OmitEmpty,
    /// A pointer, or a field without `omitempty`: kept even when empty.
    Kept,
    /// A repeated field: a JSON array, left out when empty.
    Repeated,
    /// `map<string, shape>`, sent as repeated key (1) and value (2) entries: a JSON object.
    Map,
}

/// `Field` constructors, so that message tables read as one line per field.
pub const fn field(number: u32, name: &'static str, shape: Shape) -> Field {
    Field {
        number,
        name,
        shape,
        presence: Presence::OmitEmpty,
    }
}

pub const fn kept(number: u32, name: &'static str, shape: Shape) -> Field {
    Field {
        presence: Presence::Kept,
        ..field(number, name, shape)
    }
}

pub const fn repeated(number: u32, name: &'static str, shape: Shape) -> Field {
    Field {
        presence: Presence::Repeated,
        ..field(number, name, shape)
    }
}

pub const fn map(number: u32, name: &'static str, value: Shape) -> Field {
    Field {
        presence: Presence::Map,
        ..field(number, name, value)
    }
}

/// Decodes a message of type `message` into a JSON object.
pub fn decode(message: &Message, bytes: &[u8]) -> Result<Map<String, Value>, DecodeError> {
    let mut object = Map::new();
    let mut reader = Reader::new(bytes);
    let mut seen = Vec::new();
    while let Some((number, wire)) = reader.next_field().map_err(DecodeError::malformed)? {
        let Some(field) = message.fields.iter().find(|field| field.number == number) else {
            return Err(DecodeError::unknown_field(message.name, number));
        };
        let within = |error: DecodeError| error.within(field.name);
        match field.presence {
            Presence::Repeated => {
                let value = decode_value(field.shape, wire).map_err(within)?;
                let items = object
                    .entry(field.name)
                    .or_insert_with(|| Value::Array(Vec::new()));
                if let Value::Array(items) = items {
                    items.push(value);
                }
            }
            Presence::Map => {
                let (key, value) = decode_entry(field.shape, wire).map_err(within)?;
                let entries = object
                    .entry(field.name)
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(entries) = entries {
                    entries.insert(key, value);
                }
            }
            Presence::OmitEmpty | Presence::Kept => {
                // Protobuf merges a repeated singular field into the first; Kubernetes never
                // sends one, so refusing it is clearer than guessing at a merge.
                if seen.contains(&number) {
                    return Err(within(DecodeError::invalid(
                        "the field appears more than once",
                    )));
                }
                seen.push(number);
                let value = decode_value(field.shape, wire).map_err(within)?;
                let omitted = matches!(field.presence, Presence::OmitEmpty)
                    && field.shape.is_scalar()
                    && is_empty_scalar(&value);
                if !omitted {
                    object.insert(field.name.into(), value);
                }
            }
        }
    }
    Ok(object)
}

/// What Go's `omitempty` leaves out of a scalar: `""`, `0` and `false`.
fn is_empty_scalar(value: &Value) -> bool {
    match value {
        Value::String(text) => text.is_empty(),
        Value::Number(number) => number.as_i64() == Some(0),
        Value::Bool(flag) => !flag,
        _ => false,
    }
}

/// One map entry: key 1 (a string) and value 2, either of which may be left out as empty.
fn decode_entry(shape: Shape, wire: WireValue<'_>) -> Result<(String, Value), DecodeError> {
    let bytes = length_delimited(wire)?;
    let mut key = None;
    let mut value = None;
    let mut reader = Reader::new(bytes);
    while let Some((number, wire)) = reader.next_field().map_err(DecodeError::malformed)? {
        match number {
            1 => key = Some(text(length_delimited(wire)?)?.to_owned()),
            2 => value = Some(decode_value(shape, wire)?),
            number => {
                return Err(DecodeError::invalid(format!(
                    "a map entry has field number {number}; only 1 (key) and 2 (value) exist"
                )))
            }
        }
    }
    let key = key.unwrap_or_default();
    let value = match value {
        Some(value) => value,
        None => decode_value(shape, empty_value(shape))?,
    };
    Ok((key, value))
}

/// The wire value an entry's missing value stands for.
fn empty_value(shape: Shape) -> WireValue<'static> {
    match shape {
        Shape::Int32 | Shape::Int64 | Shape::Bool => WireValue::Varint(0),
        _ => WireValue::Bytes(&[]),
    }
}

fn decode_value(shape: Shape, wire: WireValue<'_>) -> Result<Value, DecodeError> {
    Ok(match shape {
        Shape::String => Value::String(text(length_delimited(wire)?)?.to_owned()),
        Shape::Bytes => {
            Value::String(base64::engine::general_purpose::STANDARD.encode(length_delimited(wire)?))
        }
        Shape::Int32 => Value::from(int32(varint(wire)?)?),
        Shape::Int64 => Value::from(varint(wire)? as i64),
        Shape::Bool => Value::Bool(varint(wire)? != 0),
        Shape::Message(message) => Value::Object(decode(message, length_delimited(wire)?)?),
        Shape::Time => timestamp(length_delimited(wire)?, Instant::rfc3339)?,
        Shape::MicroTime => timestamp(length_delimited(wire)?, Instant::rfc3339_micros)?,
        Shape::IntOrString => int_or_string(length_delimited(wire)?)?,
        Shape::Quantity => quantity(length_delimited(wire)?)?,
        Shape::FieldsJson => fields_json(length_delimited(wire)?)?,
    })
}

fn length_delimited(wire: WireValue<'_>) -> Result<&[u8], DecodeError> {
    match wire {
        WireValue::Bytes(bytes) => Ok(bytes),
        other => Err(wrong_wire_type("length-delimited", other)),
    }
}

fn varint(wire: WireValue<'_>) -> Result<u64, DecodeError> {
    match wire {
        WireValue::Varint(value) => Ok(value),
        other => Err(wrong_wire_type("varint", other)),
    }
}

fn wrong_wire_type(expected: &str, found: WireValue<'_>) -> DecodeError {
    DecodeError::invalid(format!(
        "a {} value where a {expected} one belongs",
        found.wire_type()
    ))
}

pub(super) fn text(bytes: &[u8]) -> Result<&str, DecodeError> {
    std::str::from_utf8(bytes).map_err(|_| DecodeError::invalid("a string is not UTF-8"))
}

/// A protobuf `int32`: negative values are sign-extended to 64 bits on the wire.
fn int32(value: u64) -> Result<i32, DecodeError> {
    i32::try_from(value as i64)
        .map_err(|_| DecodeError::invalid(format!("{value} does not fit an int32")))
}

/// The scalar fields of a small fixed message, by number; any other field is refused.
fn scalar_fields<'a, const N: usize>(
    message: &'static str,
    bytes: &'a [u8],
) -> Result<[Option<WireValue<'a>>; N], DecodeError> {
    let mut found = [None; N];
    let mut reader = Reader::new(bytes);
    while let Some((number, wire)) = reader.next_field().map_err(DecodeError::malformed)? {
        let slot = usize::try_from(number)
            .ok()
            .and_then(|number| number.checked_sub(1))
            .and_then(|index| found.get_mut(index))
            .ok_or_else(|| DecodeError::unknown_field(message, number))?;
        *slot = Some(wire);
    }
    Ok(found)
}

/// `{seconds: 1, nanos: 2}`, formatted, or `null` for the zero time.
fn timestamp(bytes: &[u8], format: fn(Instant) -> String) -> Result<Value, DecodeError> {
    let [seconds, nanos] = scalar_fields("Time", bytes)?;
    let seconds = seconds.map(varint).transpose()?.unwrap_or(0) as i64;
    let nanos = nanos
        .map(varint)
        .transpose()?
        .map(int32)
        .transpose()?
        .unwrap_or(0);
    if seconds == 0 && nanos == 0 {
        return Ok(Value::Null);
    }
    let micros = u64::try_from(seconds)
        .ok()
        .zip(
            u64::try_from(nanos)
                .ok()
                .filter(|nanos| *nanos < 1_000_000_000),
        )
        .and_then(|(seconds, nanos)| seconds.checked_mul(1_000_000)?.checked_add(nanos / 1000))
        .ok_or_else(|| {
            DecodeError::invalid(format!(
                "the time {seconds}s {nanos}ns is before 1970 or out of range"
            ))
        })?;
    Ok(Value::String(format(Instant(micros))))
}

/// `{type: 1, intVal: 2, strVal: 3}`: type 0 is the number, type 1 the string.
fn int_or_string(bytes: &[u8]) -> Result<Value, DecodeError> {
    let [kind, int_value, string_value] = scalar_fields("IntOrString", bytes)?;
    match kind.map(varint).transpose()?.unwrap_or(0) {
        0 => Ok(Value::from(
            int_value
                .map(varint)
                .transpose()?
                .map(int32)
                .transpose()?
                .unwrap_or(0),
        )),
        1 => Ok(Value::String(
            string_value
                .map(length_delimited)
                .transpose()?
                .map(text)
                .transpose()?
                .unwrap_or_default()
                .to_owned(),
        )),
        other => Err(DecodeError::invalid(format!(
            "IntOrString type {other} is neither 0 (int) nor 1 (string)"
        ))),
    }
}

/// `{string: 1}`; Go writes the zero quantity as `"0"`.
fn quantity(bytes: &[u8]) -> Result<Value, DecodeError> {
    let [string] = scalar_fields("Quantity", bytes)?;
    let string = string
        .map(length_delimited)
        .transpose()?
        .map(text)
        .transpose()?;
    Ok(Value::String(
        string.filter(|s| !s.is_empty()).unwrap_or("0").to_owned(),
    ))
}

/// `{Raw: 1}`: JSON bytes, as the JSON they hold.
fn fields_json(bytes: &[u8]) -> Result<Value, DecodeError> {
    let [raw] = scalar_fields("FieldsV1", bytes)?;
    let raw = raw.map(length_delimited).transpose()?.unwrap_or_default();
    if raw.is_empty() {
        return Ok(Value::Object(Map::new()));
    }
    serde_json::from_slice(raw)
        .map_err(|error| DecodeError::invalid(format!("fieldsV1 is not JSON: {error}")))
}
