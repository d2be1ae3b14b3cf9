//! JSON patch (RFC 6902) over JSON pointers (RFC 6901): a list of operations applied in
//! order to a copy of the object, all or none.
//!
//! A document that is not a list of well-formed operations is 400; an operation that cannot
//! apply (a missing path, a failed `test`) is 422, as on the apiserver.

use serde_json::Value;

use crate::kube::status::ApiError;

/// One operation, its pointers parsed into reference tokens.
#[derive(Debug, PartialEq)]
pub enum Operation {
    Add {
        path: Vec<String>,
        value: Value,
    },
    Remove {
        path: Vec<String>,
    },
    Replace {
        path: Vec<String>,
        value: Value,
    },
    Move {
        from: Vec<String>,
        path: Vec<String>,
    },
    Copy {
        from: Vec<String>,
        path: Vec<String>,
    },
    Test {
        path: Vec<String>,
        value: Value,
    },
}

/// Parses a JSON patch document.
pub fn parse(document: Value) -> Result<Vec<Operation>, ApiError> {
    let Value::Array(operations) = document else {
        return Err(ApiError::bad_request("a JSON patch must be a JSON array"));
    };
    operations
        .into_iter()
        .enumerate()
        .map(|(index, operation)| {
            parse_operation(operation).map_err(|reason| {
                ApiError::bad_request(format!("JSON patch operation {index}: {reason}"))
            })
        })
        .collect()
}

fn parse_operation(operation: Value) -> Result<Operation, String> {
    let Value::Object(mut fields) = operation else {
        return Err("an operation must be a JSON object".into());
    };
    let pointer = |member: &str| match fields.get(member) {
        Some(Value::String(pointer)) => parse_pointer(pointer),
        _ => Err(format!("{member:?} must be a JSON pointer string")),
    };
    let path = pointer("path")?;
    let op = match fields.get("op") {
        Some(Value::String(op)) => op.clone(),
        _ => return Err("\"op\" must be a string".into()),
    };
    let mut value = || {
        fields
            .remove("value")
            .ok_or_else(|| format!("{op} needs a \"value\""))
    };
    Ok(match op.as_str() {
        "add" => Operation::Add {
            path,
            value: value()?,
        },
        "remove" => Operation::Remove { path },
        "replace" => Operation::Replace {
            path,
            value: value()?,
        },
        "test" => Operation::Test {
            path,
            value: value()?,
        },
        "move" | "copy" => {
            let from = match fields.get("from") {
                Some(Value::String(from)) => parse_pointer(from)?,
                _ => return Err("\"from\" must be a JSON pointer string".into()),
            };
            if op == "move" {
                Operation::Move { from, path }
            } else {
                Operation::Copy { from, path }
            }
        }
        other => return Err(format!("{other:?} is not an operation")),
    })
}

/// RFC 6901: `""` is the whole document, otherwise `/`-separated tokens in which `~1` stands
/// for `/` and `~0` for `~`.
fn parse_pointer(pointer: &str) -> Result<Vec<String>, String> {
    if pointer.is_empty() {
        return Ok(Vec::new());
    }
    let Some(tokens) = pointer.strip_prefix('/') else {
        return Err(format!("the pointer {pointer:?} does not start with '/'"));
    };
    tokens
        .split('/')
        .map(|token| {
            let mut unescaped = String::with_capacity(token.len());
            let mut chars = token.chars();
            while let Some(c) = chars.next() {
                match (c, c == '~') {
                    (_, false) => unescaped.push(c),
                    (_, true) => match chars.next() {
                        Some('0') => unescaped.push('~'),
                        Some('1') => unescaped.push('/'),
                        _ => return Err(format!("the pointer {pointer:?} has a bad '~' escape")),
                    },
                }
            }
            Ok(unescaped)
        })
        .collect()
}

/// Applies `operations` to `document`; no intermediate document grows past `limit` bytes of
/// JSON (a `copy` can double a document, and a few dozen would exhaust memory).
pub fn apply(
    mut document: Value,
    operations: &[Operation],
    limit: usize,
) -> Result<Value, ApiError> {
    let mut size = json_size(&document);
    for (index, operation) in operations.iter().enumerate() {
        apply_one(&mut document, operation, &mut size, limit).map_err(|reason| {
            ApiError::invalid(format!(
                "JSON patch operation {index} cannot apply: {reason}"
            ))
        })?;
    }
    if json_size(&document) > limit {
        return Err(ApiError::invalid(too_large(limit)));
    }
    Ok(document)
}

/// Applies one operation; `size` bounds what copies add.
fn apply_one(
    document: &mut Value,
    operation: &Operation,
    size: &mut usize,
    limit: usize,
) -> Result<(), String> {
    match operation {
        Operation::Add { path, value } => add(document, path, value.clone()),
        Operation::Remove { path } => remove(document, path).map(drop),
        Operation::Replace { path, value } => {
            *find_mut(document, path)? = value.clone();
            Ok(())
        }
        Operation::Move { from, path } => {
            if path.len() > from.len() && path.starts_with(from) {
                return Err(format!("cannot move {} into itself", shown(from)));
            }
            let value = remove(document, from)?;
            add(document, path, value)
        }
        Operation::Copy { from, path } => {
            let value = find(document, from)?.clone();
            *size = size.saturating_add(json_size(&value));
            if *size > limit {
                return Err(too_large(limit));
            }
            add(document, path, value)
        }
        Operation::Test { path, value } => {
            let found = find(document, path)?;
            if equal(found, value) {
                Ok(())
            } else {
                Err(format!("{} is {found}, not {value}", shown(path)))
            }
        }
    }
}

fn too_large(limit: usize) -> String {
    format!("it makes an object larger than the {limit} bytes a body may hold")
}

fn json_size(value: &Value) -> usize {
    serde_json::to_vec(value).map_or(usize::MAX, |bytes| bytes.len())
}

fn shown(path: &[String]) -> String {
    path.iter().map(|token| format!("/{token}")).collect()
}

/// An array index token: digits without a leading zero.
fn index(token: &str, len: usize) -> Result<usize, String> {
    let valid = !token.is_empty()
        && token.bytes().all(|b| b.is_ascii_digit())
        && (token == "0" || !token.starts_with('0'));
    token
        .parse()
        .ok()
        .filter(|index| valid && *index < len)
        .ok_or_else(|| format!("{token:?} is not an index of an array of {len}"))
}

fn find<'a>(document: &'a Value, path: &[String]) -> Result<&'a Value, String> {
    path.iter().try_fold(document, |value, token| {
        match value {
            Value::Object(fields) => fields.get(token),
            Value::Array(items) => items.get(index(token, items.len())?),
            _ => None,
        }
        .ok_or_else(|| format!("{} does not exist", shown(path)))
    })
}

fn find_mut<'a>(document: &'a mut Value, path: &[String]) -> Result<&'a mut Value, String> {
    path.iter().try_fold(document, |value, token| {
        match value {
            Value::Object(fields) => fields.get_mut(token),
            Value::Array(items) => {
                let index = index(token, items.len())?;
                items.get_mut(index)
            }
            _ => None,
        }
        .ok_or_else(|| format!("{} does not exist", shown(path)))
    })
}

/// The container of `path`'s last token, and that token; `None` for the whole document.
fn parent<'a, 'p>(
    document: &'a mut Value,
    path: &'p [String],
) -> Result<Option<(&'a mut Value, &'p str)>, String> {
    match path.split_last() {
        None => Ok(None),
        Some((last, above)) => Ok(Some((find_mut(document, above)?, last))),
    }
}

fn add(document: &mut Value, path: &[String], value: Value) -> Result<(), String> {
    let Some((container, last)) = parent(document, path)? else {
        *document = value;
        return Ok(());
    };
    match container {
        Value::Object(fields) => {
            fields.insert(last.to_owned(), value);
            Ok(())
        }
        Value::Array(items) if last == "-" => {
            items.push(value);
            Ok(())
        }
        Value::Array(items) => {
            // Adding may name the index one past the end.
            let index = index(last, items.len() + 1)?;
            items.insert(index, value);
            Ok(())
        }
        _ => Err(format!(
            "the parent of {} is not an object or array",
            shown(path)
        )),
    }
}

fn remove(document: &mut Value, path: &[String]) -> Result<Value, String> {
    let Some((container, last)) = parent(document, path)? else {
        return Err("the whole document cannot be removed".into());
    };
    match container {
        Value::Object(fields) => fields.remove(last),
        Value::Array(items) => {
            let index = index(last, items.len())?;
            Some(items.remove(index))
        }
        _ => None,
    }
    .ok_or_else(|| format!("{} does not exist", shown(path)))
}

/// RFC 6902's equality: numbers by value (`1` equals `1.0`), objects regardless of order.
fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(a), Value::Number(b)) => {
            a == b || ((a.is_f64() || b.is_f64()) && a.as_f64() == b.as_f64())
        }
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(a, b)| equal(a, b))
        }
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len()
                && a.iter()
                    .all(|(key, value)| b.get(key).is_some_and(|other| equal(value, other)))
        }
        (a, b) => a == b,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn patched(document: Value, patch: Value) -> Result<Value, ApiError> {
        apply(document, &parse(patch)?, 1 << 20)
    }

    fn status(result: Result<Value, ApiError>) -> (u64, String) {
        let status = result.expect_err("refused").status();
        let message = status["message"].as_str().unwrap_or_default().to_owned();
        (status["code"].as_u64().unwrap_or_default(), message)
    }

    /// RFC 6902 appendix A's examples that succeed: document, patch, result.
    #[test]
    fn the_rfc_examples_hold() {
        let rows = [
            (
                json!({"foo": "bar"}),
                json!([{"op": "add", "path": "/baz", "value": "qux"}]),
                json!({"baz": "qux", "foo": "bar"}),
            ),
            (
                json!({"foo": ["bar", "baz"]}),
                json!([{"op": "add", "path": "/foo/1", "value": "qux"}]),
                json!({"foo": ["bar", "qux", "baz"]}),
            ),
            (
                json!({"baz": "qux", "foo": "bar"}),
                json!([{"op": "remove", "path": "/baz"}]),
                json!({"foo": "bar"}),
            ),
            (
                json!({"foo": ["bar", "qux", "baz"]}),
                json!([{"op": "remove", "path": "/foo/1"}]),
                json!({"foo": ["bar", "baz"]}),
            ),
            (
                json!({"baz": "qux", "foo": "bar"}),
                json!([{"op": "replace", "path": "/baz", "value": "boo"}]),
                json!({"baz": "boo", "foo": "bar"}),
            ),
            (
                json!({"foo": {"bar": "baz", "waldo": "fred"}, "qux": {"corge": "grault"}}),
                json!([{"op": "move", "from": "/foo/waldo", "path": "/qux/thud"}]),
                json!({"foo": {"bar": "baz"}, "qux": {"corge": "grault", "thud": "fred"}}),
            ),
            (
                json!({"foo": ["all", "grass", "cows", "eat"]}),
                json!([{"op": "move", "from": "/foo/1", "path": "/foo/3"}]),
                json!({"foo": ["all", "cows", "eat", "grass"]}),
            ),
            (
                json!({"baz": "qux", "foo": ["a", 2, "c"]}),
                json!([
                    {"op": "test", "path": "/baz", "value": "qux"},
                    {"op": "test", "path": "/foo/1", "value": 2},
                ]),
                json!({"baz": "qux", "foo": ["a", 2, "c"]}),
            ),
            (
                json!({"foo": "bar"}),
                json!([{"op": "add", "path": "/child", "value": {"grandchild": {}}}]),
                json!({"foo": "bar", "child": {"grandchild": {}}}),
            ),
            (
                json!({"foo": "bar"}),
                json!([{"op": "add", "path": "/baz", "value": "qux", "xyz": 123}]),
                json!({"foo": "bar", "baz": "qux"}),
            ),
            (
                json!({"foo": ["bar"]}),
                json!([{"op": "add", "path": "/foo/-", "value": ["abc", "def"]}]),
                json!({"foo": ["bar", ["abc", "def"]]}),
            ),
            (
                json!({"/": 9, "~1": 10}),
                json!([{"op": "test", "path": "/~01", "value": 10}, {"op": "test", "path": "/~1", "value": 9.0}]),
                json!({"/": 9, "~1": 10}),
            ),
            (
                json!({"a": {"b": 1}}),
                json!([{"op": "copy", "from": "/a", "path": "/c"}]),
                json!({"a": {"b": 1}, "c": {"b": 1}}),
            ),
            (
                json!({"a": 1}),
                json!([{"op": "replace", "path": "", "value": [1]}]),
                json!([1]),
            ),
        ];
        for (document, patch, result) in rows {
            assert_eq!(
                patched(document.clone(), patch.clone()).ok(),
                Some(result),
                "{document} + {patch}"
            );
        }
    }

    #[test]
    fn operations_that_cannot_apply_are_422_and_malformed_ones_400() {
        for (document, patch, code, named) in [
            (
                json!({"baz": "qux"}),
                json!([{"op": "test", "path": "/baz", "value": "bar"}]),
                422,
                "not \"bar\"",
            ),
            (
                json!({"foo": "bar"}),
                json!([{"op": "add", "path": "/baz/bat", "value": "qux"}]),
                422,
                "/baz does not exist",
            ),
            (
                json!({"foo": ["a"]}),
                json!([{"op": "add", "path": "/foo/2", "value": 1}]),
                422,
                "not an index",
            ),
            (
                json!({"foo": ["a"]}),
                json!([{"op": "remove", "path": "/foo/01"}]),
                422,
                "not an index",
            ),
            (
                json!({"a": {"b": {}}}),
                json!([{"op": "move", "from": "/a", "path": "/a/b/c"}]),
                422,
                "into itself",
            ),
            (
                json!({}),
                json!([{"op": "remove", "path": ""}]),
                422,
                "whole document",
            ),
            (json!({}), json!({"op": "add"}), 400, "must be a JSON array"),
            (
                json!({}),
                json!([{"op": "add", "path": "/a"}]),
                400,
                "needs a \"value\"",
            ),
            (
                json!({}),
                json!([{"op": "launch", "path": "/a"}]),
                400,
                "not an operation",
            ),
            (
                json!({}),
                json!([{"op": "add", "path": "a", "value": 1}]),
                400,
                "does not start with '/'",
            ),
            (
                json!({}),
                json!([{"op": "add", "path": "/~2", "value": 1}]),
                400,
                "bad '~' escape",
            ),
        ] {
            let (found, message) = status(patched(document, patch.clone()));
            assert_eq!(found, code, "{patch}: {message}");
            assert!(message.contains(named), "{patch}: {message}");
        }
    }

    #[test]
    fn a_failing_operation_leaves_nothing_half_applied() {
        let document = json!({"a": 1});
        let patch = json!([
            {"op": "add", "path": "/b", "value": 2},
            {"op": "test", "path": "/a", "value": 2},
        ]);
        assert!(patched(document, patch).is_err());
    }

    #[test]
    fn copies_that_would_grow_past_the_limit_stop() {
        let doubling: Vec<Value> = (0..64)
            .map(|_| json!({"op": "copy", "from": "", "path": "/x"}))
            .collect();
        let operations = parse(Value::Array(doubling)).expect("parses");
        let (code, message) = status(apply(json!({"x": "0123456789"}), &operations, 4096));
        assert_eq!(code, 422);
        assert!(message.contains("larger than the 4096 bytes"), "{message}");
    }
}
