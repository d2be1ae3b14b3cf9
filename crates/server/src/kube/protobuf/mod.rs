//! Request bodies in Kubernetes' protobuf encoding (`application/vnd.kubernetes.protobuf`),
//! as kubectl's typed commands send them, decoded into the JSON object the same command
//! would have sent as JSON.
//!
//! The body is the magic `k8s\0` and a `runtime.Unknown`: `typeMeta` (1: apiVersion 1,
//! kind 2), `raw` (2: the object's message), `contentEncoding` (3) and `contentType` (4).

mod kinds;
mod message;
mod wire;

use std::fmt;

use serde_json::Value;

use super::status::ApiError;
use message::text;
use wire::{Reader, WireError, WireValue};

const MAGIC: &[u8] = b"k8s\0";

/// Why a protobuf body was not decoded.
#[derive(Clone, Debug, PartialEq)]
pub struct DecodeError {
    problem: Problem,
    /// The JSON names of the fields the problem is inside, innermost first.
    path: Vec<&'static str>,
}

#[derive(Clone, Debug, PartialEq)]
enum Problem {
    /// The bytes are not protobuf (400).
    Malformed(WireError),
    /// The bytes are protobuf, but not a valid value of the field (400).
    Invalid(String),
    /// A field this server has no description of (415): dropping it would lose data.
    UnknownField { message: &'static str, number: u32 },
    /// An object this server does not decode, or an envelope it cannot open (415).
    Unsupported(String),
}

impl DecodeError {
    fn new(problem: Problem) -> Self {
        DecodeError {
            problem,
            path: Vec::new(),
        }
    }

    fn malformed(error: WireError) -> Self {
        DecodeError::new(Problem::Malformed(error))
    }

    fn invalid(reason: impl Into<String>) -> Self {
        DecodeError::new(Problem::Invalid(reason.into()))
    }

    fn unknown_field(message: &'static str, number: u32) -> Self {
        DecodeError::new(Problem::UnknownField { message, number })
    }

    fn unsupported(reason: impl Into<String>) -> Self {
        DecodeError::new(Problem::Unsupported(reason.into()))
    }

    /// The same error, inside the field `name`.
    fn within(mut self, name: &'static str) -> Self {
        self.path.push(name);
        self
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.problem {
            Problem::Malformed(error) => write!(f, "the protobuf body is malformed: {error}")?,
            Problem::Invalid(reason) => write!(f, "the protobuf body is invalid: {reason}")?,
            Problem::UnknownField { message, number } => write!(
                f,
                "field number {number} of {message} is not understood by this server; send \
                 the object as application/json"
            )?,
            Problem::Unsupported(reason) => f.write_str(reason)?,
        }
        if !self.path.is_empty() {
            let path: Vec<&str> = self.path.iter().rev().copied().collect();
            write!(f, " (at {})", path.join("."))?;
        }
        Ok(())
    }
}

impl From<DecodeError> for ApiError {
    fn from(error: DecodeError) -> Self {
        match error.problem {
            Problem::Malformed(_) | Problem::Invalid(_) => ApiError::bad_request(error.to_string()),
            Problem::UnknownField { .. } | Problem::Unsupported(_) => {
                ApiError::undecodable(error.to_string())
            }
        }
    }
}

/// The JSON object a protobuf body holds, with its `apiVersion` and `kind`.
pub fn decode_object(body: &[u8]) -> Result<Value, DecodeError> {
    let envelope = body.strip_prefix(MAGIC).ok_or_else(|| {
        DecodeError::unsupported("a Kubernetes protobuf body starts with the bytes \"k8s\\0\"")
    })?;
    let unknown = Unknown::read(envelope)?;
    if !unknown.content_encoding.is_empty() {
        return Err(DecodeError::unsupported(format!(
            "the protobuf content encoding {:?} is not supported",
            unknown.content_encoding
        )));
    }
    if !matches!(
        unknown.content_type,
        "" | "application/vnd.kubernetes.protobuf"
    ) {
        return Err(DecodeError::unsupported(format!(
            "the protobuf envelope holds {:?}, not a protobuf object",
            unknown.content_type
        )));
    }
    let message = (unknown.api_version == "v1")
        .then(|| kinds::core_v1(unknown.kind))
        .flatten()
        .ok_or_else(|| {
            DecodeError::unsupported(format!(
                "this server decodes protobuf for the v1 kinds {} only, not {}/{}; send the \
                 object as application/json",
                kinds::decoded_kinds().join(", "),
                unknown.api_version,
                unknown.kind
            ))
        })?;
    let mut object = serde_json::Map::new();
    object.insert("kind".into(), unknown.kind.into());
    object.insert("apiVersion".into(), unknown.api_version.into());
    object.extend(message::decode(message, unknown.raw)?);
    Ok(Value::Object(object))
}

/// The fields of a `runtime.Unknown`, borrowed from the body.
#[derive(Default)]
struct Unknown<'a> {
    api_version: &'a str,
    kind: &'a str,
    raw: &'a [u8],
    content_encoding: &'a str,
    content_type: &'a str,
}

impl<'a> Unknown<'a> {
    fn read(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        let mut unknown = Unknown::default();
        for_each_bytes_field(bytes, "Unknown", |number, value| {
            match number {
                1 => for_each_bytes_field(value, "TypeMeta", |number, value| {
                    match number {
                        1 => unknown.api_version = text(value)?,
                        2 => unknown.kind = text(value)?,
                        _ => return Err(DecodeError::unknown_field("TypeMeta", number)),
                    }
                    Ok(())
                })
                .map_err(|error| error.within("typeMeta"))?,
                2 => unknown.raw = value,
                3 => unknown.content_encoding = text(value)?,
                4 => unknown.content_type = text(value)?,
                _ => return Err(DecodeError::unknown_field("Unknown", number)),
            }
            Ok(())
        })?;
        Ok(unknown)
    }
}

/// Runs `visit` on every field of a message whose fields are all length-delimited.
fn for_each_bytes_field<'a>(
    bytes: &'a [u8],
    message: &'static str,
    mut visit: impl FnMut(u32, &'a [u8]) -> Result<(), DecodeError>,
) -> Result<(), DecodeError> {
    let mut reader = Reader::new(bytes);
    while let Some((number, value)) = reader.next_field().map_err(DecodeError::malformed)? {
        let WireValue::Bytes(value) = value else {
            return Err(DecodeError::invalid(format!(
                "field {number} of {message} is a {} value, not a length-delimited one",
                value.wire_type()
            )));
        };
        visit(number, value)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// A length-delimited field.
    fn bytes(number: u32, value: &[u8]) -> Vec<u8> {
        let mut out = varint(u64::from(number) << 3 | 2);
        out.extend(varint(value.len() as u64));
        out.extend_from_slice(value);
        out
    }

    fn number(number: u32, value: u64) -> Vec<u8> {
        let mut out = varint(u64::from(number) << 3);
        out.extend(varint(value));
        out
    }

    fn varint(mut value: u64) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let byte = (value & 0x7f) as u8;
            value >>= 7;
            if value == 0 {
                out.push(byte);
                return out;
            }
            out.push(byte | 0x80);
        }
    }

    fn entry(key: &str, value: &[u8]) -> Vec<u8> {
        [bytes(1, key.as_bytes()), bytes(2, value)].concat()
    }

    /// A body as kubectl sends it: magic, type meta, the object's message, and empty
    /// content encoding and type.
    fn body(kind: &str, raw: &[u8]) -> Vec<u8> {
        let type_meta = [bytes(1, b"v1"), bytes(2, kind.as_bytes())].concat();
        [
            MAGIC.to_vec(),
            bytes(1, &type_meta),
            bytes(2, raw),
            bytes(3, b""),
            bytes(4, b""),
        ]
        .concat()
    }

    /// ObjectMeta as Go writes it: every value field, empty or not.
    fn object_meta(name: &str, extra: &[u8]) -> Vec<u8> {
        [
            bytes(1, name.as_bytes()),
            bytes(2, b""),
            bytes(3, b"default"),
            bytes(4, b""),
            bytes(5, b""),
            bytes(6, b""),
            number(7, 0),
            bytes(8, b""),
            extra.to_vec(),
        ]
        .concat()
    }

    /// The `Status` reason the error is answered with.
    fn reason(error: &DecodeError) -> String {
        let status = ApiError::from(error.clone()).status();
        status["reason"].as_str().unwrap_or_default().to_owned()
    }

    #[test]
    fn a_config_map_decodes_to_the_json_kubectl_would_send() {
        let labels = [
            bytes(11, &entry("app", b"web")),
            bytes(11, &entry("tier", b"")),
        ]
        .concat();
        let raw = [
            bytes(1, &object_meta("x", &labels)),
            bytes(2, &entry("a", b"b")),
            bytes(3, &entry("bin", &[0, 0xff])),
            number(4, 0),
        ]
        .concat();
        assert_eq!(
            decode_object(&body("ConfigMap", &raw)),
            Ok(json!({
                "kind": "ConfigMap",
                "apiVersion": "v1",
                "metadata": {
                    "name": "x",
                    "namespace": "default",
                    "creationTimestamp": null,
                    "labels": {"app": "web", "tier": ""},
                },
                "data": {"a": "b"},
                "binaryData": {"bin": "AP8="},
                // A pointer field: present, so kept although false.
                "immutable": false,
            }))
        );
    }

    #[test]
    fn a_service_port_keeps_its_port_and_spells_target_ports_as_sent() {
        let number_target = [number(1, 0), number(2, 8080), bytes(3, b"")].concat();
        let zero_target = [number(1, 0), number(2, 0), bytes(3, b"")].concat();
        let named_target = [number(1, 1), number(2, 0), bytes(3, b"http")].concat();
        let port = |name: &str, target: &[u8]| {
            [
                bytes(1, name.as_bytes()),
                bytes(2, b"TCP"),
                number(3, 80),
                bytes(4, target),
                number(5, 0),
            ]
            .concat()
        };
        let spec = [
            bytes(1, &port("a", &number_target)),
            bytes(1, &port("b", &named_target)),
            bytes(1, &port("c", &zero_target)),
            bytes(4, b"ClusterIP"),
            number(12, 0),
        ]
        .concat();
        let raw = [bytes(1, &object_meta("svc", &[])), bytes(2, &spec)].concat();
        let object = decode_object(&body("Service", &raw)).expect("decodes");
        assert_eq!(
            object["spec"],
            json!({
                "ports": [
                    {"name": "a", "protocol": "TCP", "port": 80, "targetPort": 8080},
                    {"name": "b", "protocol": "TCP", "port": 80, "targetPort": "http"},
                    // Go's JSON never omits a struct, however `omitempty`.
                    {"name": "c", "protocol": "TCP", "port": 80, "targetPort": 0},
                ],
                "type": "ClusterIP",
            })
        );
    }

    #[test]
    fn times_and_quantities_are_spelled_as_in_json() {
        let created = [number(1, 1_389_804_109), number(2, 390_270_000)].concat();
        let meta = [bytes(1, b"p"), bytes(8, &created)].concat();
        let resources = bytes(2, &entry("cpu", &bytes(1, b"250m")));
        let container = [bytes(1, b"c"), bytes(8, &resources)].concat();
        let raw = [bytes(1, &meta), bytes(2, &bytes(2, &container))].concat();
        let object = decode_object(&body("Pod", &raw)).expect("decodes");
        assert_eq!(
            object["metadata"]["creationTimestamp"],
            "2014-01-15T16:41:49Z"
        );
        assert_eq!(
            object["spec"]["containers"],
            json!([{"name": "c", "resources": {"requests": {"cpu": "250m"}}}])
        );
        let before_1970 = bytes(1, &bytes(8, &number(1, u64::MAX)));
        let error = decode_object(&body("Pod", &before_1970)).expect_err("refused");
        assert_eq!(reason(&error), "BadRequest", "{error}");
        assert!(error.to_string().contains("before 1970"), "{error}");
    }

    #[test]
    fn an_unknown_field_is_refused_by_number_and_place_not_dropped() {
        let raw = bytes(1, &object_meta("x", &bytes(99, b"?")));
        let error = decode_object(&body("ConfigMap", &raw)).expect_err("refused");
        assert_eq!(reason(&error), "UnsupportedMediaType");
        assert_eq!(
            error.to_string(),
            "field number 99 of ObjectMeta is not understood by this server; send the object \
             as application/json (at metadata)"
        );
        // Volumes are a Pod field this server does not describe.
        let raw = bytes(2, &bytes(1, b""));
        let error = decode_object(&body("Pod", &raw)).expect_err("refused");
        assert!(
            error.to_string().contains("field number 1 of PodSpec"),
            "{error}"
        );
    }

    #[test]
    fn kinds_and_envelopes_this_server_does_not_decode_are_refused() {
        for refused in [
            body("Deployment", b""),
            b"{\"kind\": \"ConfigMap\"}".to_vec(),
            [MAGIC.to_vec(), bytes(3, b"gzip")].concat(),
            [MAGIC.to_vec(), bytes(4, b"application/json")].concat(),
            [MAGIC.to_vec(), bytes(7, b"")].concat(),
        ] {
            let error = decode_object(&refused).expect_err("refused");
            assert_eq!(reason(&error), "UnsupportedMediaType", "{error}");
        }
    }

    #[test]
    fn truncated_and_forged_bytes_are_malformed_at_every_length() {
        let labels = bytes(11, &entry("app", b"web"));
        let raw = [
            bytes(1, &object_meta("x", &labels)),
            bytes(2, &entry("a", b"b")),
        ]
        .concat();
        let type_meta = [bytes(1, b"v1"), bytes(2, b"ConfigMap")].concat();
        let whole = [MAGIC.to_vec(), bytes(1, &type_meta), bytes(2, &raw)].concat();
        let raw_starts = MAGIC.len() + bytes(1, &type_meta).len();
        assert!(decode_object(&whole).is_ok());
        for cut in raw_starts + 1..whole.len() {
            let error = decode_object(&whole[..cut]).expect_err("truncated");
            assert_eq!(reason(&error), "BadRequest", "cut at {cut}: {error}");
        }
        // A nested length of 2^62 inside the object's metadata.
        let mut forged_meta = varint(1 << 3 | 2);
        forged_meta.extend(varint(1 << 62));
        forged_meta.extend_from_slice(b"x");
        let error = decode_object(&body("ConfigMap", &bytes(1, &forged_meta))).expect_err("forged");
        assert_eq!(reason(&error), "BadRequest");
        assert!(error.to_string().contains("runs past"), "{error}");
    }

    /// Every byte of a valid body, replaced by a few values that turn lengths, tags and
    /// continuation bits into others: each decode is an object or a typed error, never a
    /// panic, and a changed length is never trusted.
    #[test]
    fn corrupted_bodies_decode_or_fail_cleanly() {
        let container = [bytes(1, b"c"), bytes(2, b"nginx"), bytes(6, &number(3, 80))].concat();
        let raw = [
            bytes(1, &object_meta("p", &bytes(11, &entry("run", b"p")))),
            bytes(2, &[bytes(2, &container), bytes(3, b"Always")].concat()),
            bytes(3, &bytes(1, b"")),
        ]
        .concat();
        let valid = body("Pod", &raw);
        assert!(decode_object(&valid).is_ok());
        for position in 0..valid.len() {
            for replacement in [0x00, 0x01, 0x7f, 0x80, 0xff] {
                let mut corrupted = valid.clone();
                corrupted[position] = replacement;
                if let Err(error) = decode_object(&corrupted) {
                    let reason = reason(&error);
                    assert!(
                        reason == "BadRequest" || reason == "UnsupportedMediaType",
                        "{reason}: {error}"
                    );
                }
            }
        }
    }

    #[test]
    fn wrong_wire_types_duplicates_and_odd_map_entries_are_malformed() {
        for (raw, expected) in [
            (
                number(1, 5),
                "a varint value where a length-delimited one belongs",
            ),
            (
                [bytes(1, &bytes(1, b"a")), bytes(1, &bytes(1, b"b"))].concat(),
                "appears more than once",
            ),
            (
                bytes(2, &[entry("a", b"b"), bytes(3, b"c")].concat()),
                "only 1 (key) and 2 (value) exist",
            ),
            (bytes(2, &entry("a", &[0xff])), "not UTF-8"),
        ] {
            let error = decode_object(&body("ConfigMap", &raw)).expect_err("refused");
            assert_eq!(reason(&error), "BadRequest", "{error}");
            assert!(error.to_string().contains(expected), "{error}");
        }
        let envelope = [MAGIC.to_vec(), number(1, 5)].concat();
        let error = decode_object(&envelope).expect_err("refused");
        assert_eq!(reason(&error), "BadRequest", "{error}");
        assert!(
            error
                .to_string()
                .contains("field 1 of Unknown is a varint value"),
            "{error}"
        );
    }
}
