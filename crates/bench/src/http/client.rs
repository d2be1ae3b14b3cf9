//! A Kubernetes client of `revkv serve`: one keep-alive HTTP client (ureq, as the etcd peer's),
//! chunked lists of every namespace's ConfigMaps, and single objects.

use std::net::SocketAddr;
use std::time::Duration;

use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::Value;

use super::objects::namespace_and_name;
use crate::engine::{Chunk, Error, Lister};

pub(super) const NAME: &str = "revkv serve";

/// The collection every chunk lists: ConfigMaps across namespaces, as a cluster-wide list.
const COLLECTION: &str = "/api/v1/configmaps";

/// The largest page the server returns (its store's page size limit): seeking pages this far
/// at a time.
const SEEK_STEP: u64 = 10_000;

/// The largest response read: a page of 10,000 objects of a few KiB.
const MAX_RESPONSE_BYTES: u64 = 1 << 30;

pub(super) struct KubeClient {
    agent: ureq::Agent,
    base: String,
}

#[derive(Deserialize)]
struct List {
    metadata: ListMeta,
    /// Counted, not decoded: the figure is the server's, and etcd's client decodes no more.
    items: Vec<IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListMeta {
    #[serde(rename = "continue")]
    continue_token: Option<String>,
    remaining_item_count: Option<u64>,
}

impl KubeClient {
    /// A client of the server at `address` that keeps a connection for each of `connections`
    /// concurrent callers.
    pub(super) fn new(address: SocketAddr, connections: usize) -> KubeClient {
        let agent = ureq::Agent::config_builder()
            .max_idle_connections(connections + 8)
            .max_idle_connections_per_host(connections + 8)
            .timeout_connect(Some(Duration::from_secs(5)))
            // A refused request is an error of the benchmark, with the server's Status in it.
            .http_status_as_error(false)
            .build()
            .into();
        KubeClient {
            agent,
            base: format!("http://{address}"),
        }
    }

    fn object_path(index: u64) -> String {
        let (namespace, name) = namespace_and_name(index);
        format!("/api/v1/namespaces/{namespace}/configmaps/{name}")
    }

    /// Reads a response whose status must be `expected`.
    fn read(
        &self,
        what: &str,
        expected: u16,
        response: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Vec<u8>, Error> {
        let failed = |error: ureq::Error| Error::failed(NAME, format!("{what}: {error}"));
        let mut response = response.map_err(failed)?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_RESPONSE_BYTES)
            .read_to_vec()
            .map_err(failed)?;
        if status != expected {
            return Err(Error::failed(
                NAME,
                format!(
                    "{what}: status {status}, not {expected}: {}",
                    String::from_utf8_lossy(&body)
                ),
            ));
        }
        Ok(body)
    }

    fn json(&self, what: &str, body: &[u8]) -> Result<Value, Error> {
        serde_json::from_slice(body)
            .map_err(|error| Error::failed(NAME, format!("{what}: not JSON: {error}")))
    }

    /// POSTs object `index`; returns what the server answers.
    pub(super) fn create(&self, index: u64, body: &[u8]) -> Result<Value, Error> {
        let (namespace, _) = namespace_and_name(index);
        let url = format!("{}/api/v1/namespaces/{namespace}/configmaps", self.base);
        let response = self
            .agent
            .post(url)
            .header("content-type", "application/json")
            .send(body);
        let body = self.read("a create", 201, response)?;
        self.json("a create", &body)
    }

    pub(super) fn get(&self, index: u64) -> Result<Value, Error> {
        let url = format!("{}{}", self.base, Self::object_path(index));
        let body = self.read("a get", 200, self.agent.get(url).call())?;
        self.json("a get", &body)
    }

    /// PUTs object `index` without a resourceVersion: the replace wins.
    pub(super) fn replace(&self, index: u64, body: &[u8]) -> Result<(), Error> {
        let url = format!("{}{}", self.base, Self::object_path(index));
        let response = self
            .agent
            .put(url)
            .header("content-type", "application/json")
            .send(body);
        self.read("a replace", 200, response).map(drop)
    }

    pub(super) fn delete(&self, index: u64) -> Result<(), Error> {
        let url = format!("{}{}", self.base, Self::object_path(index));
        self.read("a delete", 200, self.agent.delete(url).call())
            .map(drop)
    }
}

/// The cursor is the continue token; empty for a new list.
impl Lister for KubeClient {
    type Cursor = String;

    fn name(&self) -> &'static str {
        NAME
    }

    fn first(&self) -> String {
        String::new()
    }

    /// Pages from the start to `position`, in the largest pages the server returns. A page
    /// may hold fewer items than asked for, with a token, when its objects reach the server's
    /// bound on a page's bytes (16 MiB: 4,000 objects of 4 KiB), as Kubernetes allows.
    fn seek(&self, position: u64, _after: Option<&str>) -> Result<String, Error> {
        let mut token = self.first();
        let mut listed = 0;
        while listed < position {
            let step = (position - listed).min(SEEK_STEP);
            let chunk = self.chunk(&token, step as usize)?;
            listed += chunk.items as u64;
            match chunk.next {
                Some(next) if chunk.items > 0 && chunk.items as u64 <= step => token = next,
                _ => {
                    return Err(Error::Wrong {
                        engine: NAME,
                        message: format!(
                            "a page of {step} at {listed} held {} items and {} token",
                            chunk.items,
                            if chunk.next.is_some() { "a" } else { "no" }
                        ),
                    })
                }
            }
        }
        Ok(token)
    }

    fn chunk(&self, cursor: &String, limit: usize) -> Result<Chunk<String>, Error> {
        let request = self
            .agent
            .get(format!("{}{COLLECTION}", self.base))
            .query("limit", limit.to_string())
            .query("continue", cursor);
        let body = self.read("a list", 200, request.call())?;
        let list: List = serde_json::from_slice(&body)
            .map_err(|error| Error::failed(NAME, format!("a list: unexpected answer: {error}")))?;
        Ok(Chunk {
            items: list.items.len(),
            matched: 0,
            // The last chunk, with no token, says nothing: nothing remains.
            remaining: list.metadata.remaining_item_count.unwrap_or(0),
            next: list
                .metadata
                .continue_token
                .filter(|token| !token.is_empty()),
        })
    }
}
