//! A minimal OpenAPI v3: only what kubectl reads to decide that the server validates fields
//! itself, so that `kubectl create -f` and `replace -f` send `fieldValidation` instead of
//! downloading schemas (the server's kinds are schemaless, so there is nothing to validate
//! beyond what every write checks).

use serde_json::{json, Map, Value};

use super::kinds::{Kind, Kinds};

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// `/openapi/v3`: one entry per group version, as the apiserver's root document.
pub fn root(kinds: &Kinds) -> Value {
    let mut paths = Map::new();
    let mut group_versions: Vec<(&str, &str)> = vec![("", "v1")];
    for (group, versions) in kinds.groups() {
        group_versions.extend(versions.into_iter().map(|version| (group, version)));
    }
    for (group, version) in group_versions {
        let path = gv_path(group, version);
        paths.insert(
            path.clone(),
            json!({ "serverRelativeURL": format!("/openapi/v3/{path}") }),
        );
    }
    json!({ "paths": paths })
}

fn object_path(kind: &Kind) -> String {
    let base = format!("/{}", gv_path(&kind.group, &kind.version));
    if kind.namespaced {
        format!("{base}/namespaces/{{namespace}}/{}/{{name}}", kind.plural)
    } else {
        format!("{base}/{}/{{name}}", kind.plural)
    }
}

/// The document of one group version (`api/v1`, `apis/G/V`): per kind, the object path with a
/// PATCH operation that names its kind and takes `fieldValidation`, which is what kubectl's
/// query-parameter check looks for.
pub fn group_version(kinds: &Kinds, path: &str) -> Option<Value> {
    let (group, version) = match path.split('/').collect::<Vec<_>>().as_slice() {
        ["api", version] => ("", *version),
        ["apis", group, version] => (*group, *version),
        _ => return None,
    };
    let mut paths = Map::new();
    for kind in kinds.in_group_version(group, version) {
        paths.insert(
            object_path(kind),
            json!({
                "patch": {
                    "x-kubernetes-group-version-kind": {
                        "group": kind.group,
                        "version": kind.version,
                        "kind": kind.kind,
                    },
                    "parameters": [{
                        "name": "fieldValidation",
                        "in": "query",
                        "schema": { "type": "string" },
                    }],
                    "responses": {},
                },
            }),
        );
    }
    (!paths.is_empty()).then(|| {
        json!({
            "openapi": "3.0.0",
            "info": { "title": "revkv", "version": version },
            "paths": paths,
        })
    })
}
