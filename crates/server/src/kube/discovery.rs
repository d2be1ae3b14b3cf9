//! Discovery, in the legacy (non-aggregated) shapes: kubectl builds its resource mapping from
//! `/api`, `/apis` and one `APIResourceList` per group version.

use serde_json::{json, Value};

use super::kinds::{group_version, Kinds};

pub fn api_versions() -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}],
    })
}

pub fn api_groups(kinds: &Kinds) -> Value {
    let groups: Vec<Value> = kinds
        .groups()
        .into_iter()
        .map(|(group, versions)| {
            let versions: Vec<Value> = versions
                .iter()
                .map(|version| {
                    json!({"groupVersion": group_version(group, version), "version": version})
                })
                .collect();
            json!({
                "name": group,
                "preferredVersion": versions[0],
                "versions": versions,
            })
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// The resources of one group version; `None` when it serves none.
pub fn api_resources(kinds: &Kinds, group: &str, version: &str) -> Option<Value> {
    let resources: Vec<Value> = kinds
        .in_group_version(group, version)
        .map(|kind| {
            json!({
                "name": kind.plural,
                "singularName": kind.singular,
                "namespaced": kind.namespaced,
                "kind": kind.kind,
                "verbs": ["create", "delete", "get", "list", "update", "watch"],
                "shortNames": kind.short_names,
            })
        })
        .collect();
    (!resources.is_empty()).then(|| {
        json!({
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": group_version(group, version),
            "resources": resources,
        })
    })
}

/// `/version`, which the Python client's dynamic client reads at start-up.
pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": "32",
        "gitVersion": concat!("v1.32.0+revkv-", env!("CARGO_PKG_VERSION")),
        "platform": format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH),
    })
}
