//! etcd v3 through its JSON gateway, asked what the Kubernetes apiserver asks it for a list: a
//! range from the continue key to the end of the prefix, with a limit, pinned at the revision of
//! the first response, and etcd's `count` of the keys from the start key on. The count alone
//! (`count_only`, which the apiserver asks for its object counts) is measured too.

use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

mod watch;

pub use watch::etcd_watch;

use super::prefix_end;
use crate::engine::{Chunk, Engine, Error, Lister};
use crate::workload::{Item, Write, MATCH_MARKER, PREFIX, WRITES_PREFIX};

const NAME: &str = "etcd";

/// The largest response read: a chunk of 10,000 items of 256-byte values is about 5 MB of JSON.
const MAX_RESPONSE_BYTES: u64 = 1 << 30;

/// How often a request is sent while the gateway answers 503, and the pause between.
const UNAVAILABLE_ATTEMPTS: u32 = 5;
const UNAVAILABLE_PAUSE: Duration = Duration::from_millis(200);

pub(super) struct Etcd {
    agent: ureq::Agent,
    endpoint: String,
    version: String,
}

/// A continue key and the list's revision; revision 0 reads the newest.
#[derive(Clone)]
pub(super) struct Cursor {
    key: Vec<u8>,
    revision: i64,
}

#[derive(Deserialize)]
struct Version {
    etcdserver: String,
}

#[derive(Deserialize)]
struct Header {
    #[serde(deserialize_with = "int64")]
    revision: i64,
}

#[derive(Deserialize)]
struct RangeResponse {
    header: Header,
    #[serde(default)]
    kvs: Vec<KeyValue>,
    #[serde(default)]
    more: bool,
    #[serde(default, deserialize_with = "int64")]
    count: i64,
}

#[derive(Deserialize)]
struct KeyValue {
    key: String,
    #[serde(default)]
    value: String,
}

/// The gateway writes int64 fields as JSON strings (and leaves out zeros).
fn int64<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Int64 {
        Text(String),
        Number(i64),
    }
    match Int64::deserialize(deserializer)? {
        Int64::Number(number) => Ok(number),
        Int64::Text(text) => text.parse().map_err(serde::de::Error::custom),
    }
}

fn decode(field: &str) -> Result<Vec<u8>, Error> {
    STANDARD
        .decode(field)
        .map_err(|error| Error::failed(NAME, format!("undecodable base64 from etcd: {error}")))
}

fn put_request(item: &Item) -> Value {
    json!({"key": STANDARD.encode(&item.key), "value": STANDARD.encode(&item.value)})
}

impl Etcd {
    /// Connects to the server at `endpoint` and checks that the workload's prefixes are empty
    /// there: the figures check counts, and this tool deletes nothing it did not write.
    pub(super) fn connect(endpoint: &str, writers: usize) -> Result<Etcd, Error> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            // Enough pooled connections that the concurrent writers never reconnect.
            .max_idle_connections(writers + 8)
            .max_idle_connections_per_host(writers + 8)
            .timeout_connect(Some(Duration::from_secs(5)))
            .build()
            .into();
        let mut etcd = Etcd {
            agent,
            endpoint: endpoint.trim_end_matches('/').to_string(),
            version: String::new(),
        };
        let version: Version =
            etcd.read(etcd.agent.get(format!("{}/version", etcd.endpoint)).call())?;
        etcd.version = format!("etcd {}", version.etcdserver);
        for prefix in [PREFIX, WRITES_PREFIX] {
            let range: RangeResponse = etcd.post(
                "/v3/kv/range",
                &json!({
                    "key": STANDARD.encode(prefix),
                    "range_end": STANDARD.encode(prefix_end(prefix)),
                    "count_only": true,
                }),
            )?;
            if range.count > 0 {
                return Err(Error::failed(
                    NAME,
                    format!(
                        "{} already holds {} keys under {prefix:?}; start an empty one \
                         (scripts/etcd.sh stop; scripts/etcd.sh start)",
                        etcd.endpoint, range.count
                    ),
                ));
            }
        }
        Ok(etcd)
    }

    fn read<T: DeserializeOwned>(
        &self,
        response: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<T, Error> {
        let failed =
            |error: ureq::Error| Error::failed(NAME, format!("{}: {error}", self.endpoint));
        let bytes = response
            .map_err(failed)?
            .body_mut()
            .with_config()
            .limit(MAX_RESPONSE_BYTES)
            .read_to_vec()
            .map_err(failed)?;
        serde_json::from_slice(&bytes)
            .map_err(|error| Error::failed(NAME, format!("unexpected answer: {error}")))
    }

    /// Posts `body`, again after a 503: the gateway answers so when its own connection to etcd
    /// is briefly unavailable, as on a busy machine. Every request here may be repeated without
    /// changing its outcome (puts of the same values, deletes, reads).
    fn post<T: DeserializeOwned>(&self, path: &str, body: &Value) -> Result<T, Error> {
        let url = format!("{}{path}", self.endpoint);
        let mut attempts = 1;
        loop {
            match self.agent.post(&url).send_json(body) {
                Err(ureq::Error::StatusCode(503)) if attempts < UNAVAILABLE_ATTEMPTS => {
                    attempts += 1;
                    std::thread::sleep(UNAVAILABLE_PAUSE);
                }
                response => return self.read(response),
            }
        }
    }

    /// Deletes everything under the workload's prefixes, compacts it away and defragments the
    /// backend, so that etcd is as empty for the next workload or run as it was for this one:
    /// without the defragmentation its file keeps the pages of a million deleted keys, and the
    /// next run's chunks read a larger, emptier file.
    pub(super) fn clear(&self) -> Result<(), Error> {
        for prefix in [PREFIX, WRITES_PREFIX] {
            let _: Value = self.post(
                "/v3/kv/deleterange",
                &json!({
                    "key": STANDARD.encode(prefix),
                    "range_end": STANDARD.encode(prefix_end(prefix)),
                }),
            )?;
        }
        self.compact()?;
        let _: Value = self.post("/v3/maintenance/defragment", &json!({}))?;
        Ok(())
    }

    fn current_revision(&self) -> Result<i64, Error> {
        let range: RangeResponse = self.post(
            "/v3/kv/range",
            &json!({"key": STANDARD.encode(PREFIX), "limit": 1, "keys_only": true}),
        )?;
        Ok(range.header.revision)
    }
}

impl Lister for Etcd {
    type Cursor = Cursor;

    fn name(&self) -> &'static str {
        NAME
    }

    fn first(&self) -> Cursor {
        Cursor {
            key: PREFIX.as_bytes().to_vec(),
            revision: 0,
        }
    }

    fn seek(&self, _position: u64, after: Option<&str>) -> Result<Cursor, Error> {
        let revision = self.current_revision()?;
        let Some(after) = after else {
            return Ok(Cursor {
                revision,
                ..self.first()
            });
        };
        let mut key = after.as_bytes().to_vec();
        key.push(0);
        Ok(Cursor { key, revision })
    }

    fn chunk(&self, cursor: &Cursor, limit: usize) -> Result<Chunk<Cursor>, Error> {
        let range: RangeResponse = self.post(
            "/v3/kv/range",
            &json!({
                "key": STANDARD.encode(&cursor.key),
                "range_end": STANDARD.encode(prefix_end(PREFIX)),
                "limit": limit,
                "revision": cursor.revision,
            }),
        )?;
        let mut matched = 0;
        for kv in &range.kvs {
            if decode(&kv.value)?.starts_with(MATCH_MARKER) {
                matched += 1;
            }
        }
        let items = range.kvs.len();
        let next = match range.kvs.last() {
            Some(last) if range.more => {
                let mut key = decode(&last.key)?;
                key.push(0);
                // The first response's revision pins the rest of the list, as the apiserver
                // does; etcd reports its current revision, which is the one read at revision 0.
                let revision = match cursor.revision {
                    0 => range.header.revision,
                    pinned => pinned,
                };
                Some(Cursor { key, revision })
            }
            _ => None,
        };
        Ok(Chunk {
            items,
            matched,
            // etcd's count covers the range from the start key, this chunk included.
            remaining: u64::try_from(range.count)
                .unwrap_or(0)
                .saturating_sub(items as u64),
            next,
        })
    }
}

impl Engine for Etcd {
    fn version(&self) -> Option<String> {
        Some(self.version.clone())
    }

    fn transport(&self) -> &'static str {
        "its JSON gateway over HTTP on loopback"
    }

    /// etcd applies one request at a time through raft, but several streams keep it busy
    /// while each waits for its round trip and fsync.
    fn load_streams(&self) -> usize {
        8
    }

    fn write(&self, writes: &[Write]) -> Result<(), Error> {
        let requests: Vec<Value> = writes
            .iter()
            .map(|write| match write {
                Write::Put(item) => json!({"request_put": put_request(item)}),
                Write::Delete(key) => {
                    json!({"request_delete_range": {"key": STANDARD.encode(key)}})
                }
            })
            .collect();
        let _: Value = self.post("/v3/kv/txn", &json!({"success": requests}))?;
        Ok(())
    }

    fn put(&self, item: &Item) -> Result<(), Error> {
        let _: Value = self.post("/v3/kv/put", &put_request(item))?;
        Ok(())
    }

    fn count(&self, cursor: &Cursor) -> Result<Option<u64>, Error> {
        let range: RangeResponse = self.post(
            "/v3/kv/range",
            &json!({
                "key": STANDARD.encode(&cursor.key),
                "range_end": STANDARD.encode(prefix_end(PREFIX)),
                "count_only": true,
                "revision": cursor.revision,
            }),
        )?;
        Ok(Some(u64::try_from(range.count).unwrap_or(0)))
    }

    fn compact(&self) -> Result<(), Error> {
        let revision = self.current_revision()?;
        // `physical` makes etcd answer only once the compacted records are gone from its
        // backend, so the call lasts as long as the compaction.
        let _: Value = self.post(
            "/v3/kv/compaction",
            &json!({"revision": revision, "physical": true}),
        )?;
        Ok(())
    }
}
