//! The ConfigMaps of `revkv bench http`: object *i* of the generated [`Collection`], as a client
//! POSTs it, as `revkv serve` stores it, and as the apiserver stores it in etcd.

use revkv_server::{Condition, Config, Creator, Write as ServerWrite};
use serde_json::{json, Value};

use crate::engine::Error;
use crate::load::{Collection, Shape, COLLECTION_PREFIX};

/// The kind: core ConfigMaps.
const KIND: (&str, &str, &str) = ("", "v1", "configmaps");

pub(super) struct Objects {
    /// Its values are the objects' `data.payload`.
    pub(super) collection: Collection,
    creator: Creator,
}

/// The namespace and name of object `index`: those of its generated key.
pub(super) fn namespace_and_name(index: u64) -> (String, String) {
    let key = Collection::key(index);
    let path = key
        .strip_prefix(COLLECTION_PREFIX)
        .expect("a generated key is under the collection prefix");
    let (namespace, name) = path
        .split_once('/')
        .expect("a generated key names a namespace");
    (namespace.to_owned(), name.to_owned())
}

impl Objects {
    /// ConfigMaps written as `shape` says, whose stored JSON is about `object_size` bytes: the
    /// payload fills what the metadata the server adds leaves.
    pub(super) fn new(shape: Shape, object_size: usize) -> Result<Objects, Error> {
        let mut objects = Objects {
            collection: Collection {
                shape,
                value_size: 0,
            },
            creator: Creator::new(&Config::default()),
        };
        let bare = objects.stored_json(0, 0)?.len();
        objects.collection.value_size = object_size.saturating_sub(bare);
        Ok(objects)
    }

    /// The JSON a client sends to create object `index`, or to replace it at `version`.
    pub(super) fn body(&self, index: u64, version: u64) -> Vec<u8> {
        self.object(index, version).to_string().into_bytes()
    }

    /// What [`Objects::body`] holds, decoded.
    fn object(&self, index: u64, version: u64) -> Value {
        let (namespace, name) = namespace_and_name(index);
        let payload = String::from_utf8(self.collection.value(index, version))
            .expect("generated values are letters");
        json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": {"app": "revkv-bench"},
            },
            "data": {"payload": payload},
        })
    }

    /// What a POST of object `index` at `version` commits on `revkv serve`.
    pub(super) fn creation(
        &self,
        index: u64,
        version: u64,
    ) -> Result<(Condition, ServerWrite), Error> {
        let (namespace, _) = namespace_and_name(index);
        self.creator
            .create(KIND, Some(&namespace), self.object(index, version))
            .map_err(|error| Error::failed("revkv serve", format!("a generated object: {error}")))
    }

    /// The JSON that a POST of object `index` at `version` stores.
    fn stored_json(&self, index: u64, version: u64) -> Result<Vec<u8>, Error> {
        match self.creation(index, version)?.1 {
            ServerWrite::Put { value, .. } => Ok(value),
            ServerWrite::Delete(_) => unreachable!("a creation puts"),
        }
    }

    /// A change as the apiserver writes it to etcd: the object's JSON, as the server completes
    /// it, at `/registry/configmaps/<namespace>/<name>`.
    #[cfg(feature = "peers")]
    pub(super) fn peer_write(&self, change: crate::load::Change) -> crate::workload::Write {
        use crate::load::Change;
        use crate::workload::{Item, Write};
        match change {
            Change::Put { index, version } => Write::Put(Item {
                key: Collection::key(index),
                value: self
                    .stored_json(index, version)
                    .expect("a generated object is valid"),
                selected: false,
            }),
            Change::Delete { index } => Write::Delete(Collection::key(index)),
        }
    }
}
