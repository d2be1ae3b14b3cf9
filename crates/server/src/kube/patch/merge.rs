//! Merging a patch object into an object: JSON merge patch (RFC 7386) exactly, and the map
//! part of strategic merge patch, which differs only in its lists and its `$` directives.
//!
//! Objects merge key by key, `null` removes a key, and anything else replaces what was there:
//! arrays included, unless a strategic merge patch's [`Lists`] merges that list.

use std::collections::HashSet;

use serde_json::{Map, Value};

use super::strategic::{self, Lists};
use crate::kube::status::ApiError;

/// RFC 7386's MergePatch(target, patch).
pub fn merge_patch(target: Value, patch: &Value) -> Result<Value, ApiError> {
    merge(target, patch, None, &mut Vec::new())
}

/// Merges `patch` into `target`, at `path` (the field names from the object's root), with
/// strategic merge patch's list rules and directives when `lists` is given.
pub fn merge(
    target: Value,
    patch: &Value,
    lists: Option<&Lists>,
    path: &mut Vec<String>,
) -> Result<Value, ApiError> {
    let Value::Object(patch) = patch else {
        if lists.is_some() {
            strategic::refuse_directives_within(patch, path)?;
        }
        return Ok(patch.clone());
    };
    let mut target = match target {
        Value::Object(target) => target,
        _ => Map::new(),
    };
    // The lists a strategic merge patch orders are merged with their order directive, and
    // the directive itself is no field.
    let ordered = match lists {
        Some(lists) => {
            strategic::refuse_directives(patch, path)?;
            strategic::merge_ordered_lists(&mut target, patch, lists, path)?
        }
        None => HashSet::new(),
    };
    for (key, value) in patch {
        if ordered.contains(key) || (lists.is_some() && strategic::is_order_directive(key)) {
            continue;
        }
        if value.is_null() {
            target.remove(key);
            continue;
        }
        path.push(key.clone());
        let original = target.remove(key).unwrap_or(Value::Null);
        let rule = lists.and_then(|lists| Some((lists, lists.rule(path)?)));
        let merged = match (rule, value) {
            (Some((lists, rule)), Value::Array(items)) => {
                Value::Array(strategic::merge_list(original, items, rule, lists, path)?)
            }
            _ => merge(original, value, lists, path)?,
        };
        path.pop();
        target.insert(key.clone(), merged);
    }
    Ok(Value::Object(target))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// RFC 7386 appendix A, row by row: original, patch, result.
    #[test]
    fn the_rfc_examples_hold() {
        let rows = [
            (json!({"a": "b"}), json!({"a": "c"}), json!({"a": "c"})),
            (
                json!({"a": "b"}),
                json!({"b": "c"}),
                json!({"a": "b", "b": "c"}),
            ),
            (json!({"a": "b"}), json!({"a": null}), json!({})),
            (
                json!({"a": "b", "b": "c"}),
                json!({"a": null}),
                json!({"b": "c"}),
            ),
            (json!({"a": ["b"]}), json!({"a": "c"}), json!({"a": "c"})),
            (json!({"a": "c"}), json!({"a": ["b"]}), json!({"a": ["b"]})),
            (
                json!({"a": {"b": "c"}}),
                json!({"a": {"b": "d", "c": null}}),
                json!({"a": {"b": "d"}}),
            ),
            (
                json!({"a": [{"b": "c"}]}),
                json!({"a": [1]}),
                json!({"a": [1]}),
            ),
            (json!(["a", "b"]), json!(["c", "d"]), json!(["c", "d"])),
            (json!({"a": "b"}), json!(["c"]), json!(["c"])),
            (json!({"a": "foo"}), json!(null), json!(null)),
            (json!({"a": "foo"}), json!("bar"), json!("bar")),
            (
                json!({"e": null}),
                json!({"a": 1}),
                json!({"e": null, "a": 1}),
            ),
            (
                json!([1, 2]),
                json!({"a": "b", "c": null}),
                json!({"a": "b"}),
            ),
            (
                json!({}),
                json!({"a": {"bb": {"ccc": null}}}),
                json!({"a": {"bb": {}}}),
            ),
        ];
        for (original, patch, result) in rows {
            let merged = merge_patch(original.clone(), &patch).ok();
            assert_eq!(merged, Some(result), "{original} + {patch}");
        }
    }

    #[test]
    fn a_merge_patch_treats_dollar_keys_as_plain_keys() {
        let merged = merge_patch(json!({}), &json!({"$patch": "delete"})).ok();
        assert_eq!(merged, Some(json!({"$patch": "delete"})));
    }
}
