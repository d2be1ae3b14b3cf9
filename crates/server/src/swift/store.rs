//! Where Swift's accounts, containers and objects live in the key space, and the writes that
//! keep each container's counts exact: every object write updates its container's record in
//! the same commit, so the counts at a listing's revision are those of that listing.
//!
//! ```text
//! swift/<account>/c/<container>           container: created, object count, bytes used
//! swift/<account>/o/<container>/<object>  listing record: bytes, md5, content type, modified
//! swift/<account>/d/<container>/<object>  the object's bytes
//! ```

use revkv::{Entry, Revision};
use serde::{Deserialize, Serialize};

use super::error::SwiftError;
use crate::backend::{Backend, Condition, Write};
use crate::time::Instant;

/// How often a write retries when a concurrent write to the same container won the race.
const RETRIES: usize = 64;

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub struct ContainerRecord {
    /// Microseconds since the epoch.
    pub created: u64,
    pub objects: u64,
    pub bytes: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ObjectRecord {
    pub bytes: u64,
    pub hash: String,
    pub content_type: String,
    /// Microseconds since the epoch.
    pub modified: u64,
}

/// Names one account's keys.
pub struct Account<'a>(pub &'a str);

impl Account<'_> {
    pub fn containers(&self) -> Vec<u8> {
        format!("swift/{}/c/", self.0).into_bytes()
    }

    pub fn container(&self, container: &str) -> Vec<u8> {
        let mut key = self.containers();
        key.extend_from_slice(container.as_bytes());
        key
    }

    /// The prefix of a container's listing records; an object's name follows it.
    pub fn listing(&self, container: &str) -> Vec<u8> {
        format!("swift/{}/o/{container}/", self.0).into_bytes()
    }

    fn data(&self, container: &str, object: &str) -> Vec<u8> {
        format!("swift/{}/d/{container}/{object}", self.0).into_bytes()
    }
}

fn decode<T: for<'de> Deserialize<'de>>(entry: &Entry) -> Result<T, SwiftError> {
    decode_value(&entry.value)
}

/// A stored record; one that does not decode is the server's fault, not the client's.
pub fn decode_value<T: for<'de> Deserialize<'de>>(value: &[u8]) -> Result<T, SwiftError> {
    serde_json::from_slice(value).map_err(|error| {
        SwiftError::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            format!("a stored record does not decode: {error}"),
        )
    })
}

fn encode<T: Serialize>(key: Vec<u8>, record: &T) -> Write {
    Write::Put {
        key,
        // Plain structs of numbers and strings always serialize.
        value: serde_json::to_vec(record).unwrap_or_default(),
        labels: Default::default(),
        fields: Default::default(),
    }
}

fn conflict() -> SwiftError {
    SwiftError::new(
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        "the container is too busy; try again",
    )
}

pub struct SwiftStore<'a, B> {
    pub backend: &'a B,
    pub account: Account<'a>,
}

impl<B: Backend> SwiftStore<'_, B> {
    /// The container's record at `at` (or the newest revision), with its mod revision.
    pub async fn container(
        &self,
        container: &str,
        at: Option<Revision>,
    ) -> Result<Option<(ContainerRecord, Revision)>, SwiftError> {
        let key = self.account.container(container);
        match self.backend.get(key, at).await? {
            Some(entry) => Ok(Some((decode(&entry)?, entry.mod_revision))),
            None => Ok(None),
        }
    }

    /// Creates a container; `false` when it existed already.
    pub async fn create_container(&self, container: &str) -> Result<bool, SwiftError> {
        let key = self.account.container(container);
        let record = ContainerRecord {
            created: Instant::now().0,
            ..ContainerRecord::default()
        };
        let created = self
            .backend
            .commit(
                vec![Condition::Absent(key.clone())],
                vec![encode(key, &record)],
            )
            .await?;
        Ok(created.is_some())
    }

    /// Deletes an empty container: 404 when missing, 409 when it holds objects.
    pub async fn delete_container(&self, container: &str) -> Result<(), SwiftError> {
        let key = self.account.container(container);
        for _ in 0..RETRIES {
            let Some((record, revision)) = self.container(container, None).await? else {
                return Err(SwiftError::not_found());
            };
            if record.objects > 0 {
                return Err(SwiftError::new(
                    axum::http::StatusCode::CONFLICT,
                    "There was a conflict when trying to complete your request: the container \
                     is not empty",
                ));
            }
            let condition = Condition::ModRevision(key.clone(), revision);
            let delete = Write::Delete(key.clone());
            if self
                .backend
                .commit(vec![condition], vec![delete])
                .await?
                .is_some()
            {
                return Ok(());
            }
        }
        Err(conflict())
    }

    /// The object's record and bytes, read from one revision.
    pub async fn object(
        &self,
        container: &str,
        object: &str,
        with_data: bool,
    ) -> Result<Option<(ObjectRecord, Vec<u8>)>, SwiftError> {
        let mut listing = self.account.listing(container);
        listing.extend_from_slice(object.as_bytes());
        let at = Some(self.backend.revisions().current);
        let Some(entry) = self.backend.get(listing, at).await? else {
            return Ok(None);
        };
        let record: ObjectRecord = decode(&entry)?;
        if !with_data {
            return Ok(Some((record, Vec::new())));
        }
        let data = self.account.data(container, object);
        match self.backend.get(data, at).await? {
            Some(data) => Ok(Some((record, data.value))),
            None => Ok(None),
        }
    }

    /// Writes (`Some`) or deletes (`None`) an object and updates its container's counts in the
    /// same commit. Returns `false` when a delete finds no object; 404 without the container.
    pub async fn write_object(
        &self,
        container: &str,
        object: &str,
        content: Option<(ObjectRecord, Vec<u8>)>,
    ) -> Result<bool, SwiftError> {
        let container_key = self.account.container(container);
        let mut listing = self.account.listing(container);
        listing.extend_from_slice(object.as_bytes());
        let data = self.account.data(container, object);
        for _ in 0..RETRIES {
            let Some((mut counts, container_revision)) = self.container(container, None).await?
            else {
                return Err(SwiftError::not_found());
            };
            let previous = self.backend.get(listing.clone(), None).await?;
            let mut conditions = vec![Condition::ModRevision(
                container_key.clone(),
                container_revision,
            )];
            match &previous {
                Some(entry) => {
                    let old: ObjectRecord = decode(entry)?;
                    counts.objects = counts.objects.saturating_sub(1);
                    counts.bytes = counts.bytes.saturating_sub(old.bytes);
                    conditions.push(Condition::ModRevision(listing.clone(), entry.mod_revision));
                }
                None if content.is_none() => return Ok(false),
                None => conditions.push(Condition::Absent(listing.clone())),
            }
            let mut writes = match &content {
                Some((record, bytes)) => {
                    counts.objects += 1;
                    counts.bytes += record.bytes;
                    vec![
                        encode(listing.clone(), record),
                        Write::Put {
                            key: data.clone(),
                            value: bytes.clone(),
                            labels: Default::default(),
                            fields: Default::default(),
                        },
                    ]
                }
                None => vec![Write::Delete(listing.clone()), Write::Delete(data.clone())],
            };
            writes.push(encode(container_key.clone(), &counts));
            if self.backend.commit(conditions, writes).await?.is_some() {
                return Ok(true);
            }
        }
        Err(conflict())
    }
}
