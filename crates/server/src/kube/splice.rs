//! Stored objects written out with their `resourceVersion`, without decoding them.
//!
//! An object is stored as serde_json's compact encoding of it without `resourceVersion` (see
//! `put` in `object.rs`), so its keys are in serde_json's map order, which is sorted. Copying
//! its fields as they are stored, and writing `"resourceVersion":"N"` into `metadata` where
//! that order puts it, gives the bytes that decoding the object, setting the field and
//! encoding it again would, while only scanning it: each field's value is a borrowed
//! [`RawValue`].

use std::borrow::Cow;
use std::fmt;
use std::io::Write as _;

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use revkv::{Entry, Revision};
use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::status::ApiError;

const RESOURCE_VERSION: &str = "resourceVersion";

/// A JSON response body written by hand, sent as `application/json`.
pub struct JsonBody(pub Vec<u8>);

impl IntoResponse for JsonBody {
    fn into_response(self) -> Response {
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            self.0,
        )
            .into_response()
    }
}

/// The object `entry` holds, with `resourceVersion` set to `revision`, as JSON.
pub fn object(entry: &Entry, revision: Revision) -> Result<Vec<u8>, ApiError> {
    let mut out = Vec::with_capacity(entry.value.len() + 32);
    write(&mut out, entry, revision)?;
    Ok(out)
}

/// Appends the object `entry` holds, with `resourceVersion` set to `revision`, to `out`. An
/// object without a `metadata` object is written as it is stored.
pub fn write(out: &mut Vec<u8>, entry: &Entry, revision: Revision) -> Result<(), ApiError> {
    write_stored(out, &entry.value, revision)
        .map_err(|error| ApiError::internal(format!("a stored object does not decode: {error}")))
}

/// Appends `value` encoded as JSON to `out`.
pub fn encode<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) -> Result<(), ApiError> {
    serde_json::to_writer(out, value)
        .map_err(|error| ApiError::internal(format!("cannot encode the response: {error}")))
}

fn write_stored(out: &mut Vec<u8>, stored: &[u8], revision: Revision) -> serde_json::Result<()> {
    let Ok(Fields(fields)) = serde_json::from_slice::<Fields>(stored) else {
        // Not an object (or not JSON, which this reports).
        let whole: &RawValue = serde_json::from_slice(stored)?;
        out.extend_from_slice(whole.get().as_bytes());
        return Ok(());
    };
    out.push(b'{');
    for (index, (key, value)) in fields.iter().enumerate() {
        field(out, index == 0, key)?;
        let metadata = if key == "metadata" {
            serde_json::from_str::<Fields>(value.get()).ok()
        } else {
            None
        };
        match metadata {
            Some(Fields(metadata)) => write_metadata(out, &metadata, revision)?,
            None => out.extend_from_slice(value.get().as_bytes()),
        }
    }
    out.push(b'}');
    Ok(())
}

/// Writes `metadata`'s fields with `resourceVersion` before the first key that sorts after
/// it, in place of one the stored object has.
fn write_metadata(
    out: &mut Vec<u8>,
    metadata: &[(Cow<'_, str>, &RawValue)],
    revision: Revision,
) -> serde_json::Result<()> {
    out.push(b'{');
    let mut first = true;
    let mut pending = true;
    let resource_version = |out: &mut Vec<u8>, first: &mut bool| {
        field(out, *first, RESOURCE_VERSION)?;
        *first = false;
        // A revision is a number: its digits need no escaping.
        write!(out, "\"{revision}\"").map_err(serde_json::Error::io)
    };
    for (key, value) in metadata {
        if key == RESOURCE_VERSION {
            continue;
        }
        if pending && key.as_ref() > RESOURCE_VERSION {
            resource_version(out, &mut first)?;
            pending = false;
        }
        field(out, first, key)?;
        first = false;
        out.extend_from_slice(value.get().as_bytes());
    }
    if pending {
        resource_version(out, &mut first)?;
    }
    out.push(b'}');
    Ok(())
}

/// Writes a field's key and the `:` before its value, after a `,` unless it is the first.
fn field(out: &mut Vec<u8>, first: bool, key: &str) -> serde_json::Result<()> {
    if !first {
        out.push(b',');
    }
    serde_json::to_writer(&mut *out, key)?;
    out.push(b':');
    Ok(())
}

/// A JSON object's fields in their order, each value as its text.
struct Fields<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de> Deserialize<'de> for Fields<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FieldsVisitor;

        impl<'de> Visitor<'de> for FieldsVisitor {
            type Value = Fields<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields<'de>, A::Error> {
                let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some((Key(key), value)) = map.next_entry::<Key, &RawValue>()? {
                    fields.push((key, value));
                }
                Ok(Fields(fields))
            }
        }

        deserializer.deserialize_map(FieldsVisitor)
    }
}

/// A key, borrowed from the input unless it holds escapes.
#[derive(Deserialize)]
#[serde(transparent)]
struct Key<'a>(#[serde(borrow)] Cow<'a, str>);

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use serde_json::{json, Value};

    pub fn entry(value: Vec<u8>) -> Entry {
        Entry {
            key: b"kube/core/configmaps/default/a".to_vec(),
            value,
            create_revision: Revision::new(3),
            mod_revision: Revision::new(7),
            version: 1,
            labels: Default::default(),
            fields: Default::default(),
        }
    }

    /// What the server wrote before splicing: the object decoded, its resourceVersion set,
    /// and encoded again.
    pub fn reencoded(stored: &[u8], revision: Revision) -> Vec<u8> {
        let mut object: Value = serde_json::from_slice(stored).expect("stored JSON");
        if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
            metadata.insert(RESOURCE_VERSION.into(), revision.to_string().into());
        }
        serde_json::to_vec(&object).expect("encodes")
    }

    #[test]
    fn spliced_objects_are_the_bytes_of_decoding_and_encoding_them() {
        let objects = [
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}}),
            json!({
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {
                    "name": "b",
                    "namespace": "default",
                    "uid": "8d3c1f0e-5b2a-4c1d-9e8f-0a1b2c3d4e5f",
                    "creationTimestamp": "2026-01-01T00:00:00Z",
                    "labels": {"app": "web", "tier": "front"},
                    "annotations": {"note": "a \"quoted\"\n\ttab \\ back", "ünï": "çødé ☃ 𝄞"},
                    "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:data": {}}}],
                    "finalizers": ["x/y"],
                },
                "data": {"k": "v\u{0001}\u{007f}", "empty": "", "n": 1.5, "i": -3, "b": true,
                         "z": null},
            }),
            json!({"kind": "Namespace", "metadata": {"name": "c", "resourceVersion": "99"}}),
            json!({"metadata": {"zzz": 1, "aaa": 2}}),
            json!({"metadata": {"resourceVersion": "1"}}),
            json!({"metadata": {}}),
            json!({"metadata": {"rf": 1, "resourceVersion": 0, "resourceVersiona": 2, "s": 3}}),
            json!({"kind": "NoMetadata", "spec": {"metadata": {"name": "inner"}}}),
            json!({"metadata": "a string"}),
            json!({"metadata": null, "x": [1, 2]}),
            json!({"metadata": ["a"]}),
            json!({"we\"ird\\key": {"metadata": 1}, "metadata": {"k\u{00e9}y\n": "v"}}),
            json!({}),
            json!([{"metadata": {}}]),
            json!("text"),
        ];
        for object in objects {
            let stored = serde_json::to_vec(&object).expect("encodes");
            for revision in [Revision::new(1), Revision::new(18_446_744_073_709_551_615)] {
                let spliced = object_bytes(&stored, revision);
                assert_eq!(
                    String::from_utf8(spliced).expect("UTF-8"),
                    String::from_utf8(reencoded(&stored, revision)).expect("UTF-8"),
                    "{object}"
                );
            }
        }
    }

    fn object_bytes(stored: &[u8], revision: Revision) -> Vec<u8> {
        object(&entry(stored.to_vec()), revision).expect("splices")
    }

    #[test]
    fn a_stored_value_that_is_not_json_is_an_error() {
        for stored in [&b"{\"metadata\":{"[..], b"{\"a\":1}x", b"", b"\xff"] {
            assert!(object(&entry(stored.to_vec()), Revision::new(1)).is_err());
        }
    }
}
