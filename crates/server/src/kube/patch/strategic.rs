//! Strategic merge patch, for the core kinds: maps merge as in a merge patch, and the lists
//! Kubernetes' Go types mark `patchStrategy:"merge"` merge too, by their `patchMergeKey`
//! (containers by name, ports by number) or, for lists of strings, as a union. Other lists are
//! replaced. Two directives are implemented, the two kubectl apply sends for merged lists:
//! `$patch: delete` on an element removes it, and `$setElementOrder/<list>` beside a list gives
//! the order of the merged list. Any other `$` key (`$retainKeys`,
//! `$deleteFromPrimitiveList/…`, `$patch: replace`) is refused with 400 rather than stored or
//! half-applied.

use std::collections::HashSet;

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
) -> Result<Vec<Value>, ApiError> {
    let mut merged = match original {
        Value::Array(merged) => merged,
        _ => Vec::new(),
    };
    match rule {
        Rule::Union => {
            for item in items {
                if !item.is_string() {
                    return Err(elements_error(rule, path));
                }
                if !merged.contains(item) {
                    merged.push(item.clone());
                }
            }
        }
        Rule::ByKey(key) => {
            for item in items {
                let Some(id) = item.get(key) else {
                    return Err(elements_error(rule, path));
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
    Ok(merged)
}

/// The key prefix of the directive that orders the merged list named after the prefix.
const SET_ELEMENT_ORDER: &str = "$setElementOrder/";

/// Merges into `target` the lists that a `$setElementOrder/<list>` directive of `patch` (at
/// `path`) orders, and orders them as upstream's strategic merge patch does: the elements the
/// directive names come in its order, and the stored elements it does not name keep their
/// stored order, each placed before the first named element it preceded in the stored list.
/// Returns the lists it merged, which the caller must not merge again.
pub fn merge_ordered_lists(
    target: &mut Map<String, Value>,
    patch: &Map<String, Value>,
    lists: &Lists,
    path: &mut Vec<String>,
) -> Result<HashSet<String>, ApiError> {
    let mut merged_lists = HashSet::new();
    for (directive, named) in patch {
        let Some(field) = directive.strip_prefix(SET_ELEMENT_ORDER) else {
            continue;
        };
        path.push(field.to_owned());
        let rule = lists.rule(path).ok_or_else(|| {
            at(
                path,
                &format!("is not a merged list, so {directive} cannot order it"),
            )
        })?;
        let Value::Array(named) = named else {
            return Err(at(path, &format!("needs a list as its {directive}")));
        };
        let stored = target.remove(field);
        let original = match &stored {
            Some(Value::Array(original)) => original.clone(),
            _ => Vec::new(),
        };
        let merged = match (patch.get(field), stored) {
            (Some(Value::Array(items)), stored) => {
                check_order(items, named, rule, path)?;
                merge_list(stored.unwrap_or(Value::Null), items, rule, lists, path)?
            }
            (Some(_), _) => return Err(at(path, "must be a list")),
            (None, Some(Value::Array(stored))) => stored,
            // Nothing to order: a list in neither, or a stored value that is no list.
            (None, stored) => {
                if let Some(stored) = stored {
                    target.insert(field.to_owned(), stored);
                }
                path.pop();
                continue;
            }
        };
        let ordered = order(merged, named, &original, rule, path)?;
        target.insert(field.to_owned(), Value::Array(ordered));
        path.pop();
        merged_lists.insert(field.to_owned());
    }
    Ok(merged_lists)
}

/// Whether a key of a patch object is a `$setElementOrder/<list>` directive.
pub fn is_order_directive(key: &str) -> bool {
    key.starts_with(SET_ELEMENT_ORDER)
}

/// What identifies an element of a list merged by `rule`: its merge key, or the string itself.
fn identity(element: &Value, rule: Rule) -> Option<&Value> {
    match rule {
        Rule::ByKey(key) => element.get(key),
        Rule::Union => element.as_str().map(|_| element),
    }
}

/// Where the element identified as `id` is in `list`.
fn position(list: &[Value], id: &Value, rule: Rule) -> Option<usize> {
    list.iter()
        .position(|element| identity(element, rule) == Some(id))
}

/// Checks that the patch's elements (other than deletions) are named by the order directive,
/// in its order, as upstream does before it merges.
fn check_order(
    items: &[Value],
    named: &[Value],
    rule: Rule,
    path: &[String],
) -> Result<(), ApiError> {
    let mut next = 0;
    for item in items.iter().filter(|item| item.get("$patch").is_none()) {
        let id = identity(item, rule).ok_or_else(|| elements_error(rule, path))?;
        match position(&named[next..], id, rule) {
            Some(found) => next += found + 1,
            None => {
                return Err(at(
                    path,
                    &format!(
                        "has an element {id} that the order directive does not name, or \
                         names in another order"
                    ),
                ))
            }
        }
    }
    Ok(())
}

/// Orders `merged` by the directive's `named` elements and the `original` stored list (see
/// [`merge_ordered_lists`]).
fn order(
    merged: Vec<Value>,
    named: &[Value],
    original: &[Value],
    rule: Rule,
    path: &[String],
) -> Result<Vec<Value>, ApiError> {
    let mut ids = Vec::with_capacity(named.len());
    for element in named {
        ids.push(identity(element, rule).ok_or_else(|| elements_error(rule, path))?);
    }
    let stored_at =
        |element: &Value| identity(element, rule).and_then(|id| position(original, id, rule));
    let (mut in_order, mut stored_only): (Vec<Value>, Vec<Value>) = merged
        .into_iter()
        .partition(|element| identity(element, rule).is_some_and(|id| ids.contains(&id)));
    let named_at = |element: &Value| {
        identity(element, rule).and_then(|id| ids.iter().position(|named| *named == id))
    };
    in_order.sort_by_key(|element| named_at(element));
    stored_only.sort_by_key(|element| stored_at(element).unwrap_or(usize::MAX));
    // Upstream's mergeSortedSlice: a stored-only element goes first while the stored list had
    // it before the next named element; a named element the stored list lacks goes first.
    let mut ordered = Vec::with_capacity(in_order.len() + stored_only.len());
    let mut in_order = in_order.into_iter().peekable();
    let mut stored_only = stored_only.into_iter().peekable();
    while let (Some(left), Some(right)) = (stored_only.peek(), in_order.peek()) {
        let left_first = matches!((stored_at(left), stored_at(right)), (Some(l), Some(r)) if l < r);
        let next = if left_first {
            stored_only.next()
        } else {
            in_order.next()
        };
        ordered.extend(next);
    }
    ordered.extend(stored_only);
    ordered.extend(in_order);
    Ok(ordered)
}

fn elements_error(rule: Rule, path: &[String]) -> ApiError {
    match rule {
        Rule::ByKey(key) => at(path, &format!("elements are objects with a {key:?}")),
        Rule::Union => at(path, "holds strings only"),
    }
}

/// Refuses the `$` keys of a patch object that merges into an object: the directives not
/// implemented.
pub fn refuse_directives(patch: &Map<String, Value>, path: &[String]) -> Result<(), ApiError> {
    match patch
        .keys()
        .find(|key| key.starts_with('$') && !is_order_directive(key))
    {
        Some(directive) => Err(unsupported(directive, path)),
        None => Ok(()),
    }
}

/// Refuses `$` keys anywhere inside a value that replaces what was there: nothing merges there
/// for a directive to act on.
pub fn refuse_directives_within(value: &Value, path: &[String]) -> Result<(), ApiError> {
    match value {
        Value::Object(fields) => {
            if let Some(directive) = fields.keys().find(|key| key.starts_with('$')) {
                return Err(unsupported(directive, path));
            }
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

    /// Asserts that `patch` of the pod `original` is refused with 400, its message naming `named`.
    fn assert_refused(original: &Value, patch: Value, named: &str) {
        let error = patched("Pod", original.clone(), patch).expect_err("refused");
        let status = error.status();
        assert_eq!(status["code"], 400);
        let message = status["message"].as_str().unwrap_or_default();
        assert!(message.contains(named), "{message}");
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
            assert_refused(&original, patch, named);
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

    #[test]
    fn set_element_order_orders_what_kubectl_apply_adds_and_removes() {
        let original = pod(json!([
            {"name": "a", "ports": [{"containerPort": 80}]},
            {"name": "gone"},
        ]));
        // What kubectl apply sends when a container and a port are added and one is removed.
        let patch = json!({"spec": {
            "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
            "containers": [
                {
                    "name": "a",
                    "$setElementOrder/ports": [{"containerPort": 80}, {"containerPort": 443}],
                    "ports": [{"containerPort": 443}],
                },
                {"name": "b", "image": "b:1"},
                {"$patch": "delete", "name": "gone"},
            ],
        }});
        assert_eq!(
            patched("Pod", original, patch).ok(),
            Some(pod(json!([
                {"name": "a", "ports": [{"containerPort": 80}, {"containerPort": 443}]},
                {"name": "b", "image": "b:1"},
            ])))
        );
    }

    #[test]
    fn set_element_order_leads_and_unnamed_stored_elements_keep_their_place() {
        // `s` was added by another writer, between `a` and `b`: it stays before `b`, the
        // named element it preceded, while `a` and `b` swap as the directive says.
        let original = pod(json!([{"name": "a"}, {"name": "s"}, {"name": "b"}]));
        let patch = json!({"spec": {
            "$setElementOrder/containers": [{"name": "b"}, {"name": "a"}, {"name": "n"}],
            "containers": [{"name": "n"}],
        }});
        assert_eq!(
            patched("Pod", original.clone(), patch).ok(),
            Some(pod(
                json!([{"name": "s"}, {"name": "b"}, {"name": "a"}, {"name": "n"}])
            ))
        );
        // A directive alone reorders the stored list.
        let patch =
            json!({"spec": {"$setElementOrder/containers": [{"name": "b"}, {"name": "a"}]}});
        assert_eq!(
            patched("Pod", original, patch).ok(),
            Some(pod(json!([{"name": "s"}, {"name": "b"}, {"name": "a"}])))
        );
        // Lists of strings are ordered by value.
        let original = json!({"metadata": {"finalizers": ["x", "y"]}});
        let patch = json!({"metadata": {
            "$setElementOrder/finalizers": ["y", "z", "x"],
            "finalizers": ["z"],
        }});
        assert_eq!(
            patched("Pod", original, patch).ok(),
            Some(json!({"metadata": {"finalizers": ["y", "z", "x"]}}))
        );
    }

    #[test]
    fn set_element_order_that_does_not_fit_its_list_is_refused() {
        let original = pod(json!([{"name": "a"}, {"name": "b"}]));
        for (patch, named) in [
            (
                json!({"spec": {"$setElementOrder/tolerations": [{"key": "x"}]}}),
                "spec.tolerations is not a merged list",
            ),
            (
                json!({"spec": {
                    "$setElementOrder/containers": [{"name": "a"}],
                    "containers": [{"name": "b"}],
                }}),
                "spec.containers has an element \"b\" that the order directive",
            ),
            (
                json!({"spec": {
                    "$setElementOrder/containers": [{"name": "b"}, {"name": "a"}],
                    "containers": [{"name": "a"}, {"name": "b"}],
                }}),
                "or names in another order",
            ),
            (
                json!({"spec": {"$setElementOrder/containers": [{"image": "x"}]}}),
                "objects with a \"name\"",
            ),
            (
                json!({"spec": {"$setElementOrder/containers": {"name": "a"}}}),
                "needs a list",
            ),
        ] {
            assert_refused(&original, patch, named);
        }
    }
}
