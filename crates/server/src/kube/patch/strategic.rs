//! Strategic merge patch, for the core kinds: maps merge as in a merge patch, and the lists
//! Kubernetes' Go types mark `patchStrategy:"merge"` merge too, by their `patchMergeKey`
//! (containers by name, ports by number) or, for lists of strings, as a union. Other lists are
//! replaced. The one directive implemented is `$patch: delete` on an element of a merged list,
//! which kubectl apply sends to remove one; any other `$` key (`$setElementOrder/…`,
//! `$retainKeys`, `$deleteFromPrimitiveList/…`, `$patch: replace`) is refused with 400 rather
//! than stored or half-applied.

use serde_json::{Map, Value};

use super::merge::merge;
use crate::kube::kinds::Kind;
use crate::kube::status::ApiError;

/// How one list merges.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// Elements are objects, matched by this field.
    ByKey(&'static str),
    /// Elements are strings: the patch's are added to those not already present.
    Union,
}

/// The merged lists of one kind, by their path of field names from the object's root (an
/// element of a list adds no step).
pub struct Lists {
    kind: &'static str,
    rules: &'static [(&'static str, Rule)],
}

/// What every kind's ObjectMeta merges.
const METADATA: &[(&str, Rule)] = &[
    ("metadata.ownerReferences", Rule::ByKey("uid")),
    ("metadata.finalizers", Rule::Union),
];

static CORE: [Lists; 6] = [
    Lists {
        kind: "Namespace",
        rules: &[("status.conditions", Rule::ByKey("type"))],
    },
    Lists {
        kind: "ConfigMap",
        rules: &[],
    },
    Lists {
        kind: "Secret",
        rules: &[],
    },
    Lists {
        kind: "Service",
        rules: &[
            ("spec.ports", Rule::ByKey("port")),
            ("status.conditions", Rule::ByKey("type")),
        ],
    },
    Lists {
        kind: "Pod",
        rules: &[
            ("spec.volumes", Rule::ByKey("name")),
            ("spec.containers", Rule::ByKey("name")),
            ("spec.containers.ports", Rule::ByKey("containerPort")),
            ("spec.containers.env", Rule::ByKey("name")),
            ("spec.containers.volumeMounts", Rule::ByKey("mountPath")),
            ("spec.containers.volumeDevices", Rule::ByKey("devicePath")),
            ("spec.initContainers", Rule::ByKey("name")),
            ("spec.initContainers.ports", Rule::ByKey("containerPort")),
            ("spec.initContainers.env", Rule::ByKey("name")),
            ("spec.initContainers.volumeMounts", Rule::ByKey("mountPath")),
            (
                "spec.initContainers.volumeDevices",
                Rule::ByKey("devicePath"),
            ),
            ("spec.ephemeralContainers", Rule::ByKey("name")),
            ("spec.imagePullSecrets", Rule::ByKey("name")),
            ("spec.hostAliases", Rule::ByKey("ip")),
            ("spec.schedulingGates", Rule::ByKey("name")),
            ("spec.resourceClaims", Rule::ByKey("name")),
            ("status.conditions", Rule::ByKey("type")),
            ("status.podIPs", Rule::ByKey("ip")),
            ("status.hostIPs", Rule::ByKey("ip")),
        ],
    },
    Lists {
        kind: "Event",
        rules: &[],
    },
];

/// The list rules of `kind`: only the core kinds have them.
pub fn lists(kind: &Kind) -> Option<&'static Lists> {
    if !kind.group.is_empty() {
        return None;
    }
    CORE.iter().find(|lists| lists.kind == kind.kind)
}

impl Lists {
    /// How the list at `path` merges, when it does.
    pub fn rule(&self, path: &[String]) -> Option<Rule> {
        let dotted = path.join(".");
        METADATA
            .iter()
            .chain(self.rules)
            .find(|(list, _)| *list == dotted)
            .map(|(_, rule)| *rule)
    }
}

/// Applies a strategic merge patch to `object`.
pub fn apply(object: Value, patch: &Value, lists: &Lists) -> Result<Value, ApiError> {
    if !patch.is_object() {
        return Err(ApiError::bad_request(
            "a strategic merge patch must be a JSON object",
        ));
    }
    merge(object, patch, Some(lists), &mut Vec::new())
}

/// Merges the patch's `items` into the list `original` at `path` by `rule`.
pub fn merge_list(
    original: Value,
    items: &[Value],
    rule: Rule,
    lists: &Lists,
    path: &mut Vec<String>,
) -> Result<Value, ApiError> {
    let mut merged = match original {
        Value::Array(merged) => merged,
        _ => Vec::new(),
    };
    match rule {
        Rule::Union => {
            for item in items {
                if !item.is_string() {
                    return Err(at(path, "holds strings only"));
                }
                if !merged.contains(item) {
                    merged.push(item.clone());
                }
            }
        }
        Rule::ByKey(key) => {
            for item in items {
                let Some(id) = item.get(key) else {
                    return Err(at(path, &format!("elements are objects with a {key:?}")));
                };
                let position = merged
                    .iter()
                    .position(|element| element.get(key) == Some(id));
                match item.get("$patch") {
                    None => match position {
                        Some(position) => {
                            let element = std::mem::take(&mut merged[position]);
                            merged[position] = merge(element, item, Some(lists), path)?;
                        }
                        None => merged.push(merge(Value::Null, item, Some(lists), path)?),
                    },
                    Some(Value::String(directive)) if directive == "delete" => {
                        merged.retain(|element| element.get(key) != Some(id));
                    }
                    Some(other) => {
                        return Err(unsupported(&format!("$patch: {other}"), path));
                    }
                }
            }
        }
    }
    Ok(Value::Array(merged))
}

/// Refuses the `$` keys of a patch object: the directives not implemented.
pub fn refuse_directives(patch: &Map<String, Value>, path: &[String]) -> Result<(), ApiError> {
    match patch.keys().find(|key| key.starts_with('$')) {
        Some(directive) => Err(unsupported(directive, path)),
        None => Ok(()),
    }
}

/// Refuses `$` keys anywhere inside a value that replaces what was there.
pub fn refuse_directives_within(value: &Value, path: &[String]) -> Result<(), ApiError> {
    match value {
        Value::Object(fields) => {
            refuse_directives(fields, path)?;
            fields
                .values()
                .try_for_each(|value| refuse_directives_within(value, path))
        }
        Value::Array(items) => items
            .iter()
            .try_for_each(|item| refuse_directives_within(item, path)),
        _ => Ok(()),
    }
}

fn unsupported(directive: &str, path: &[String]) -> ApiError {
    ApiError::bad_request(format!(
        "the strategic merge patch directive {directive} (at {}) is not supported by this \
         server; send a merge patch or a JSON patch",
        shown(path)
    ))
}

fn at(path: &[String], rule: &str) -> ApiError {
    ApiError::bad_request(format!(
        "the strategic merge patch's list {} {rule}",
        shown(path)
    ))
}

fn shown(path: &[String]) -> String {
    if path.is_empty() {
        "the object".to_owned()
    } else {
        path.join(".")
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::kube::kinds::Kinds;

    fn patched(kind: &str, object: Value, patch: Value) -> Result<Value, ApiError> {
        let kinds = Kinds::new(&[]);
        let plural = format!("{}s", kind.to_ascii_lowercase());
        let kind = kinds.find("", "v1", &plural).expect("a core kind");
        apply(object, &patch, lists(kind).expect("core lists"))
    }

    fn pod(containers: Value) -> Value {
        json!({"metadata": {"name": "p"}, "spec": {"containers": containers}})
    }

    #[test]
    fn containers_merge_by_name_and_their_ports_by_number() {
        let original = pod(json!([
            {"name": "a", "image": "a:1", "ports": [{"containerPort": 80, "name": "http"}]},
            {"name": "b", "image": "b:1"},
        ]));
        let patch = json!({"spec": {"containers": [
            {"name": "a", "image": "a:2", "ports": [{"containerPort": 443}]},
            {"name": "c", "image": "c:1"},
        ]}});
        assert_eq!(
            patched("Pod", original, patch).ok(),
            Some(pod(json!([
                {"name": "a", "image": "a:2", "ports": [
                    {"containerPort": 80, "name": "http"},
                    {"containerPort": 443},
                ]},
                {"name": "b", "image": "b:1"},
                {"name": "c", "image": "c:1"},
            ])))
        );
    }

    #[test]
    fn a_deleted_element_goes_and_unkeyed_lists_are_replaced() {
        let original = json!({"spec": {
            "containers": [{"name": "a"}, {"name": "b"}],
            "tolerations": [{"key": "x"}],
        }});
        let patch = json!({"spec": {
            "containers": [{"$patch": "delete", "name": "a"}],
            "tolerations": [{"key": "y"}],
        }});
        assert_eq!(
            patched("Pod", original, patch).ok(),
            Some(json!({"spec": {"containers": [{"name": "b"}], "tolerations": [{"key": "y"}]}}))
        );
    }

    #[test]
    fn labels_merge_finalizers_unite_and_service_ports_merge_by_port() {
        let original = json!({
            "metadata": {"labels": {"a": "1", "b": "2"}, "finalizers": ["x"]},
            "spec": {"ports": [{"port": 80, "targetPort": 8080}]},
        });
        let patch = json!({
            "metadata": {"labels": {"a": null, "c": "3"}, "finalizers": ["y", "x"]},
            "spec": {"ports": [{"port": 80, "targetPort": 9090}, {"port": 443}]},
        });
        assert_eq!(
            patched("Service", original, patch).ok(),
            Some(json!({
                "metadata": {"labels": {"b": "2", "c": "3"}, "finalizers": ["x", "y"]},
                "spec": {"ports": [{"port": 80, "targetPort": 9090}, {"port": 443}]},
            }))
        );
    }

    #[test]
    fn directives_not_implemented_are_refused_with_their_place() {
        let original = pod(json!([{"name": "a"}]));
        for (patch, named) in [
            (
                json!({"spec": {"$setElementOrder/containers": [{"name": "a"}]}}),
                "$setElementOrder/containers (at spec)",
            ),
            (
                json!({"metadata": {"$patch": "replace"}}),
                "$patch (at metadata)",
            ),
            (
                json!({"spec": {"containers": [{"name": "a", "$patch": "replace"}]}}),
                "$patch: \"replace\" (at spec.containers)",
            ),
            (
                json!({"spec": {"tolerations": [{"$retainKeys": ["key"]}]}}),
                "$retainKeys (at spec.tolerations)",
            ),
        ] {
            let error = patched("Pod", original.clone(), patch).expect_err("refused");
            let status = error.status();
            assert_eq!(status["code"], 400);
            let message = status["message"].as_str().unwrap_or_default();
            assert!(message.contains(named), "{message}");
        }
        let error = patched(
            "Pod",
            original,
            json!({"spec": {"containers": [{"image": "x"}]}}),
        )
        .expect_err("no merge key");
        assert!(error.status()["message"]
            .as_str()
            .is_some_and(|m| m.contains("objects with a \"name\"")));
    }
}
