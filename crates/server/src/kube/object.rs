//! Single objects: what the server fills in on create, and get, create, replace (whole, or
//! as a patch makes it) and delete, each one backend read and one conditional commit, which a
//! dry run only checks.

use std::collections::BTreeMap;

use revkv::{Entry, Revision};
use serde_json::{Map, Value};

use super::dry_run::Mode;
use super::kinds::Kind;
use super::splice;
use super::status::ApiError;
use super::Kube;
use crate::backend::{Backend, Condition, Write};
use crate::time::Instant;

/// How often an update or a delete re-reads an object that changed between its read and its
/// commit, before it reports a conflict.
const RETRIES: usize = 8;

/// Where one object lives: its kind, namespace and name.
pub struct Target<'a> {
    pub kind: &'a Kind,
    pub namespace: Option<&'a str>,
    pub name: &'a str,
}

impl Target<'_> {
    fn key(&self) -> Vec<u8> {
        self.kind.key(self.namespace, self.name)
    }

    fn not_found(&self) -> ApiError {
        ApiError::not_found(&self.kind.plural, self.name)
    }
}

/// The object a stored entry holds, with its `resourceVersion` (the entry's mod revision), for
/// what works on it as a value: an update, a Table.
pub fn stored_object(entry: &Entry) -> Result<Value, ApiError> {
    let mut object: Value = serde_json::from_slice(&entry.value)
        .map_err(|error| ApiError::internal(format!("a stored object does not decode: {error}")))?;
    if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        let revision = entry.mod_revision.to_string();
        metadata.insert("resourceVersion".into(), revision.into());
    }
    Ok(object)
}

/// Names as the apiserver accepts them for most kinds: a DNS subdomain (a DNS label for
/// namespaces), which also keeps `/` out of keys.
pub fn check_name(name: &str, max: usize) -> Result<(), ApiError> {
    let valid = !name.is_empty()
        && name.len() <= max
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if valid {
        Ok(())
    } else {
        Err(ApiError::invalid(format!(
            "metadata.name: Invalid value: {name:?}: must consist of lower case alphanumeric \
             characters, '-' or '.', start and end with an alphanumeric character, and hold at \
             most {max} characters"
        )))
    }
}

/// The stored entry of an object; [`splice::object`] writes it out.
pub async fn get<B: Backend>(kube: &Kube<B>, target: &Target<'_>) -> Result<Entry, ApiError> {
    kube.backend
        .get(target.key(), None)
        .await?
        .ok_or_else(|| target.not_found())
}

/// Checks a request body against the URL and the kind, and returns it as a JSON object.
fn parse_body(
    body: Value,
    kind: &Kind,
    namespace: Option<&str>,
) -> Result<Map<String, Value>, ApiError> {
    let Value::Object(mut object) = body else {
        return Err(ApiError::bad_request("the body must be a JSON object"));
    };
    for (field, expected) in [
        ("apiVersion", kind.api_version()),
        ("kind", kind.kind.clone()),
    ] {
        match object.get(field) {
            None => {
                object.insert(field.into(), expected.into());
            }
            Some(Value::String(found)) if *found == expected => {}
            Some(found) => {
                return Err(ApiError::bad_request(format!(
                    "{field} {found} does not match the URL's {expected:?}"
                )))
            }
        }
    }
    let metadata = object
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    let Value::Object(metadata) = metadata else {
        return Err(ApiError::bad_request("metadata must be a JSON object"));
    };
    match (metadata.get("namespace"), namespace) {
        (None, Some(namespace)) => {
            metadata.insert("namespace".into(), namespace.into());
        }
        (Some(Value::String(found)), Some(namespace)) if found == namespace => {}
        (None, None) => {}
        (Some(_), _) => {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on \
                 the request",
            ))
        }
    }
    Ok(object)
}

fn metadata(object: &mut Map<String, Value>) -> &mut Map<String, Value> {
    match object.get_mut("metadata") {
        Some(Value::Object(metadata)) => metadata,
        _ => unreachable!("parse_body makes metadata an object"),
    }
}

/// The labels of `metadata.labels`, which must map strings to strings.
fn labels(object: &Map<String, Value>) -> Result<BTreeMap<String, String>, ApiError> {
    let Some(labels) = object.get("metadata").and_then(|m| m.get("labels")) else {
        return Ok(BTreeMap::new());
    };
    let Value::Object(labels) = labels else {
        return Err(ApiError::bad_request(
            "metadata.labels must be a JSON object",
        ));
    };
    labels
        .iter()
        .map(|(key, value)| match value {
            Value::String(value) => Ok((key.clone(), value.clone())),
            _ => Err(ApiError::bad_request(format!(
                "metadata.labels.{key} must be a string"
            ))),
        })
        .collect()
}

/// The write that stores `object` at `key`, without its resourceVersion (which is the
/// revision the write gets), indexed by its labels and fields.
fn put(kind: &Kind, key: Vec<u8>, mut object: Map<String, Value>) -> Result<Write, ApiError> {
    metadata(&mut object).remove("resourceVersion");
    let labels = labels(&object)?;
    let object = Value::Object(object);
    let fields = kind.fields(&object);
    let value = serde_json::to_vec(&object)
        .map_err(|error| ApiError::internal(format!("cannot encode the object: {error}")))?;
    Ok(Write::Put {
        key,
        value,
        labels,
        fields,
    })
}

fn random_suffix(len: usize) -> Result<String, ApiError> {
    // The apiserver's alphabet for generated names: no vowels, no confusable characters.
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut bytes = vec![0u8; len];
    getrandom::fill(&mut bytes)
        .map_err(|error| ApiError::internal(format!("no randomness: {error}")))?;
    Ok(bytes
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
        .collect())
}

fn uid() -> Result<String, ApiError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)
        .map_err(|error| ApiError::internal(format!("no randomness: {error}")))?;
    // A version-4 UUID, as the apiserver's.
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex = crate::hex(&bytes);
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    ))
}

/// What a request's conditional write came to.
enum Outcome {
    Committed(Revision),
    /// A dry run whose condition holds: the write would have been committed.
    WouldCommit,
    /// The condition does not hold (and nothing was written).
    Failed,
}

/// Commits `write` if `condition` holds; a dry run checks the condition against the current
/// state instead, so it fails (and is retried) exactly where the commit would.
async fn commit<B: Backend>(
    kube: &Kube<B>,
    mode: Mode,
    condition: Condition,
    write: Write,
) -> Result<Outcome, ApiError> {
    if mode == Mode::Store {
        let committed = kube.backend.commit(vec![condition], vec![write]).await?;
        return Ok(committed.map_or(Outcome::Failed, Outcome::Committed));
    }
    let (key, expected) = match condition {
        Condition::Absent(key) => (key, None),
        Condition::ModRevision(key, revision) => (key, Some(revision)),
    };
    let current = kube.backend.get(key, None).await?;
    Ok(if current.map(|entry| entry.mod_revision) == expected {
        Outcome::WouldCommit
    } else {
        Outcome::Failed
    })
}

/// What a create stores: the object as the server completes it, at its key.
pub struct Creation {
    pub key: Vec<u8>,
    pub name: String,
    /// Without its resourceVersion, which is the revision the write gets.
    pub object: Map<String, Value>,
    pub write: Write,
}

/// Completes an object to create, filling in its name (from `generateName`), `uid` and
/// `creationTimestamp`, and makes the write that stores it; the caller commits it on the
/// condition that the key is absent.
pub fn creation(kind: &Kind, namespace: Option<&str>, body: Value) -> Result<Creation, ApiError> {
    let mut object = parse_body(body, kind, namespace)?;
    let meta = metadata(&mut object);
    if meta.get("resourceVersion").is_some_and(|rv| rv != "") {
        return Err(ApiError::bad_request(
            "resourceVersion should not be set on objects to be created",
        ));
    }
    let name = match (meta.get("name"), meta.get("generateName")) {
        (Some(Value::String(name)), _) if !name.is_empty() => name.clone(),
        (_, Some(Value::String(base))) if !base.is_empty() => {
            format!("{base}{}", random_suffix(5)?)
        }
        _ => {
            return Err(ApiError::invalid(
                "metadata.name: Required value: name or generateName is required",
            ))
        }
    };
    check_name(&name, if kind.namespaced { 253 } else { 63 })?;
    meta.insert("name".into(), name.clone().into());
    meta.insert("uid".into(), uid()?.into());
    meta.insert("creationTimestamp".into(), Instant::now().rfc3339().into());
    let key = kind.key(namespace, &name);
    let write = put(kind, key.clone(), object.clone())?;
    Ok(Creation {
        key,
        name,
        object,
        write,
    })
}

/// Creates an object ([`creation`]); 409 `AlreadyExists` when the name is taken. A dry run's
/// object has no `resourceVersion`, as the apiserver's: no revision was assigned.
pub async fn create<B: Backend>(
    kube: &Kube<B>,
    kind: &Kind,
    namespace: Option<&str>,
    body: Value,
    mode: Mode,
) -> Result<Value, ApiError> {
    let Creation {
        key,
        name,
        mut object,
        write,
    } = creation(kind, namespace, body)?;
    match commit(kube, mode, Condition::Absent(key), write).await? {
        Outcome::Committed(revision) => {
            metadata(&mut object).insert("resourceVersion".into(), revision.to_string().into());
        }
        Outcome::WouldCommit => {}
        Outcome::Failed => return Err(ApiError::already_exists(&kind.plural, &name)),
    }
    Ok(Value::Object(object))
}

/// Replaces an object with `body`. Its `metadata.resourceVersion`, when set, is a precondition
/// on the stored object's mod revision: a mismatch is 409 `Conflict`. Without one the replace
/// wins over concurrent writes.
pub async fn replace<B: Backend>(
    kube: &Kube<B>,
    target: &Target<'_>,
    body: Value,
    mode: Mode,
) -> Result<Value, ApiError> {
    update(kube, target, mode, |_| Ok(body.clone())).await
}

/// Replaces an object with what `change` makes of the stored one (which carries its
/// `resourceVersion`), committed on the stored object's mod revision and made again from the
/// new one when another write lands in between. A `resourceVersion` the new object carries
/// must be the stored one's (409 `Conflict` otherwise): so a replace body's, or a patch's, is
/// a precondition, while a patch that leaves it alone is retried. `uid` and
/// `creationTimestamp` stay those of the stored object. A dry run's object keeps the stored
/// one's `resourceVersion`, as the apiserver's.
pub async fn update<B: Backend>(
    kube: &Kube<B>,
    target: &Target<'_>,
    mode: Mode,
    change: impl Fn(Value) -> Result<Value, ApiError>,
) -> Result<Value, ApiError> {
    let key = target.key();
    for _ in 0..RETRIES {
        let Some(stored) = kube.backend.get(key.clone(), None).await? else {
            return Err(target.not_found());
        };
        let previous = stored_object(&stored)?;
        let mut object = parse_body(change(previous.clone())?, target.kind, target.namespace)?;
        let meta = metadata(&mut object);
        match meta.get("name") {
            Some(Value::String(name)) if name == target.name => {}
            None => {
                meta.insert("name".into(), target.name.into());
            }
            Some(_) => {
                return Err(ApiError::bad_request(
                    "the name of the object does not match the name on the URL",
                ))
            }
        }
        if precondition(meta)?.is_some_and(|rv| rv != stored.mod_revision) {
            return Err(ApiError::conflict(&target.kind.plural, target.name));
        }
        for preserved in ["uid", "creationTimestamp"] {
            match previous["metadata"].get(preserved) {
                Some(value) => meta.insert(preserved.into(), value.clone()),
                None => meta.remove(preserved),
            };
        }
        let write = put(target.kind, key.clone(), object.clone())?;
        let condition = Condition::ModRevision(key.clone(), stored.mod_revision);
        let revision = match commit(kube, mode, condition, write).await? {
            Outcome::Committed(revision) => revision,
            Outcome::WouldCommit => stored.mod_revision,
            Outcome::Failed => continue,
        };
        metadata(&mut object).insert("resourceVersion".into(), revision.to_string().into());
        return Ok(Value::Object(object));
    }
    Err(ApiError::conflict(&target.kind.plural, target.name))
}

/// The revision `metadata.resourceVersion` names, if any.
fn precondition(meta: &Map<String, Value>) -> Result<Option<Revision>, ApiError> {
    match meta.get("resourceVersion") {
        None => Ok(None),
        Some(Value::String(rv)) if rv.is_empty() => Ok(None),
        Some(Value::String(rv)) => rv.parse().map(|rv| Some(Revision::new(rv))).map_err(|_| {
            ApiError::invalid(format!("metadata.resourceVersion: Invalid value: {rv:?}"))
        }),
        Some(other) => Err(ApiError::invalid(format!(
            "metadata.resourceVersion: Invalid value: {other}"
        ))),
    }
}

/// Deletes an object and returns its last state as JSON, at the revision of the delete (at its
/// own for a dry run).
pub async fn delete<B: Backend>(
    kube: &Kube<B>,
    target: &Target<'_>,
    mode: Mode,
) -> Result<Vec<u8>, ApiError> {
    let key = target.key();
    for _ in 0..RETRIES {
        let Some(stored) = kube.backend.get(key.clone(), None).await? else {
            return Err(target.not_found());
        };
        let condition = Condition::ModRevision(key.clone(), stored.mod_revision);
        let delete = Write::Delete(key.clone());
        match commit(kube, mode, condition, delete).await? {
            Outcome::Committed(revision) => return splice::object(&stored, revision),
            Outcome::WouldCommit => return splice::object(&stored, stored.mod_revision),
            Outcome::Failed => {}
        }
    }
    Err(ApiError::conflict(&target.kind.plural, target.name))
}
