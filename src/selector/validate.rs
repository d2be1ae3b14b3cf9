//! Label and field validation: the rules a map must meet before it is stored.

use std::collections::BTreeMap;

use super::error::{Culprit, LabelError, Problem};

const MAX_LABEL_PREFIX_LEN: usize = 253;
const MAX_LABEL_NAME_LEN: usize = 63;
const MAX_LABEL_VALUE_LEN: usize = 63;
const MAX_FIELD_NAME_LEN: usize = 316;
const MAX_FIELD_VALUE_LEN: usize = 4096;

/// Checks every key and value of `labels` against Kubernetes' rules, reporting the first
/// invalid entry in key order.
///
/// A key is an optional prefix and `/` followed by a name. The prefix is a DNS-1123 subdomain:
/// at most 253 characters of lowercase alphanumerics, `-` and `.`, each `.`-separated segment
/// starting and ending with an alphanumeric. The name is 1 to 63 characters of alphanumerics,
/// `-`, `_` and `.`, starting and ending with an alphanumeric. A value is empty or follows the
/// rules of a name.
///
/// # Errors
///
/// A [`LabelError`] naming the first invalid key or value and the rule it breaks.
///
/// ```
/// use std::collections::BTreeMap;
/// use revkv::selector::validate_labels;
///
/// let good = BTreeMap::from([("example.com/tier".to_owned(), "web".to_owned())]);
/// assert!(validate_labels(&good).is_ok());
///
/// let bad = BTreeMap::from([("a b".to_owned(), "web".to_owned())]);
/// let error = validate_labels(&bad).unwrap_err();
/// assert_eq!(error.key(), "a b");
/// assert_eq!(
///     error.to_string(),
///     r#"label key "a b": name part must consist of alphanumerics, '-', '_' or '.'"#
/// );
/// ```
pub fn validate_labels(labels: &BTreeMap<String, String>) -> Result<(), LabelError> {
    for (key, value) in labels {
        check_label_key(key).map_err(|problem| LabelError::new(key, Culprit::LabelKey, problem))?;
        check_label_value(value)
            .map_err(|problem| LabelError::new(key, Culprit::LabelValue(value.clone()), problem))?;
    }
    Ok(())
}

/// Checks every field name and value of `fields`, reporting the first invalid entry in name
/// order.
///
/// A name must be non-empty, at most 316 bytes and free of control characters; a value may
/// be any string of at most 4096 bytes.
///
/// # Errors
///
/// A [`LabelError`] naming the first invalid field name or value and the rule it breaks.
///
/// ```
/// use std::collections::BTreeMap;
/// use revkv::selector::validate_fields;
///
/// let good = BTreeMap::from([("status.phase".to_owned(), "Running".to_owned())]);
/// assert!(validate_fields(&good).is_ok());
///
/// let bad = BTreeMap::from([(String::new(), "Running".to_owned())]);
/// let error = validate_fields(&bad).unwrap_err();
/// assert_eq!(error.to_string(), r#"field name "": must not be empty"#);
/// ```
pub fn validate_fields(fields: &BTreeMap<String, String>) -> Result<(), LabelError> {
    for (name, value) in fields {
        check_field_name(name)
            .map_err(|problem| LabelError::new(name, Culprit::FieldName, problem))?;
        check_field_value(value).map_err(|problem| {
            LabelError::new(name, Culprit::FieldValue(value.clone()), problem)
        })?;
    }
    Ok(())
}

pub(super) fn check_label_key(key: &str) -> Result<(), Problem> {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if name.contains('/') {
        return Err(Problem::KeySlashes);
    }
    if let Some(prefix) = prefix {
        check_label_prefix(prefix)?;
    }
    check_label_name(name)
}

fn check_label_prefix(prefix: &str) -> Result<(), Problem> {
    let allowed = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.';
    if prefix.is_empty() {
        Err(Problem::PrefixEmpty)
    } else if !prefix.bytes().all(allowed) {
        Err(Problem::PrefixChars)
    } else if prefix.len() > MAX_LABEL_PREFIX_LEN {
        Err(Problem::PrefixTooLong)
    } else if !prefix.split('.').all(starts_and_ends_alphanumeric) {
        Err(Problem::PrefixSegment)
    } else {
        Ok(())
    }
}

fn check_label_name(name: &str) -> Result<(), Problem> {
    if name.is_empty() {
        Err(Problem::NameEmpty)
    } else if !name.bytes().all(is_label_byte) {
        Err(Problem::NameChars)
    } else if name.len() > MAX_LABEL_NAME_LEN {
        Err(Problem::NameTooLong)
    } else if !starts_and_ends_alphanumeric(name) {
        Err(Problem::NameEdge)
    } else {
        Ok(())
    }
}

pub(super) fn check_label_value(value: &str) -> Result<(), Problem> {
    if value.is_empty() {
        Ok(())
    } else if !value.bytes().all(is_label_byte) {
        Err(Problem::ValueChars)
    } else if value.len() > MAX_LABEL_VALUE_LEN {
        Err(Problem::ValueTooLong)
    } else if !starts_and_ends_alphanumeric(value) {
        Err(Problem::ValueEdge)
    } else {
        Ok(())
    }
}

fn check_field_name(name: &str) -> Result<(), Problem> {
    if name.is_empty() {
        Err(Problem::FieldNameEmpty)
    } else if name.len() > MAX_FIELD_NAME_LEN {
        Err(Problem::FieldNameTooLong)
    } else if name.chars().any(char::is_control) {
        Err(Problem::FieldNameControl)
    } else {
        Ok(())
    }
}

fn check_field_value(value: &str) -> Result<(), Problem> {
    if value.len() > MAX_FIELD_VALUE_LEN {
        Err(Problem::FieldValueTooLong)
    } else {
        Ok(())
    }
}

fn is_label_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')
}

// Empty strings fail too, which is what rejects `..` and leading or trailing dots in prefixes.
fn starts_and_ends_alphanumeric(s: &str) -> bool {
    match (s.bytes().next(), s.bytes().last()) {
        (Some(first), Some(last)) => first.is_ascii_alphanumeric() && last.is_ascii_alphanumeric(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::selector::tests::map;

    #[test]
    fn valid_labels_pass_validation() {
        let long_prefix = "a".repeat(253);
        let long_name = "b".repeat(63);
        let cases = [
            ("a", ""),
            ("A", "B"),
            ("a.b-c_d", "x.Y-z_9"),
            (long_name.as_str(), long_name.as_str()),
            ("example.com/a", "1"),
            ("a-b.c9/D", "v"),
            ("0.0/0", "0"),
        ];
        for (key, value) in cases {
            assert_eq!(
                validate_labels(&map(&[(key, value)])),
                Ok(()),
                "{key:?}={value:?}"
            );
        }
        let prefixed = format!("{long_prefix}/{long_name}");
        assert_eq!(validate_labels(&map(&[(&prefixed, "")])), Ok(()));
    }

    #[test]
    fn each_invalid_label_is_reported_with_its_problem() {
        let too_long_prefix = format!("{}/a", "a".repeat(254));
        let too_long_name = "a".repeat(64);
        let cases = [
            ("a/b/c", "", Problem::KeySlashes),
            ("/a", "", Problem::PrefixEmpty),
            ("Example.com/a", "", Problem::PrefixChars),
            ("ex_ample/a", "", Problem::PrefixChars),
            (too_long_prefix.as_str(), "", Problem::PrefixTooLong),
            ("a..b/c", "", Problem::PrefixSegment),
            (".a/c", "", Problem::PrefixSegment),
            ("a-/c", "", Problem::PrefixSegment),
            ("", "", Problem::NameEmpty),
            ("a/", "", Problem::NameEmpty),
            ("a b", "", Problem::NameChars),
            ("é", "", Problem::NameChars),
            (too_long_name.as_str(), "", Problem::NameTooLong),
            ("-a", "", Problem::NameEdge),
            ("a.", "", Problem::NameEdge),
        ];
        for (key, value, problem) in cases {
            let expected = LabelError::new(key, Culprit::LabelKey, problem);
            assert_eq!(
                validate_labels(&map(&[(key, value)])),
                Err(expected),
                "{key:?}"
            );
        }
        let too_long_value = "v".repeat(64);
        let cases = [
            ("a b", Problem::ValueChars),
            ("a/b", Problem::ValueChars),
            (too_long_value.as_str(), Problem::ValueTooLong),
            ("_a", Problem::ValueEdge),
            ("a-", Problem::ValueEdge),
        ];
        for (value, problem) in cases {
            let expected = LabelError::new("k", Culprit::LabelValue(value.to_owned()), problem);
            assert_eq!(
                validate_labels(&map(&[("k", value)])),
                Err(expected),
                "{value:?}"
            );
        }
    }

    #[test]
    fn validation_reports_the_first_invalid_entry_in_key_order() {
        let labels = map(&[("z z", "ok"), ("a", "b c"), ("m m", "ok")]);
        let error = validate_labels(&labels).unwrap_err();
        assert_eq!((error.key(), error.value()), ("a", Some("b c")));
    }

    #[test]
    fn field_validation_enforces_names_and_value_lengths() {
        let longest_name = "n".repeat(316);
        let longest_value = "v".repeat(4096);
        let valid = map(&[
            ("metadata.name", ""),
            ("with space=and,comma!", "\u{0} any\ncontrol"),
            (&longest_name, &longest_value),
        ]);
        assert_eq!(validate_fields(&valid), Ok(()));

        let too_long_name = "n".repeat(317);
        let cases = [
            ("", Problem::FieldNameEmpty),
            (too_long_name.as_str(), Problem::FieldNameTooLong),
            ("a\nb", Problem::FieldNameControl),
            ("a\u{7f}", Problem::FieldNameControl),
            ("a\u{85}", Problem::FieldNameControl),
        ];
        for (name, problem) in cases {
            let expected = LabelError::new(name, Culprit::FieldName, problem);
            assert_eq!(
                validate_fields(&map(&[(name, "")])),
                Err(expected),
                "{name:?}"
            );
        }
        let too_long_value = "v".repeat(4097);
        let error = validate_fields(&map(&[("f", &too_long_value)])).unwrap_err();
        assert_eq!(error.value(), Some(too_long_value.as_str()));
        assert_eq!(error.reason(), "must be at most 4096 bytes");
    }

    #[test]
    fn validation_errors_read_as_lowercase_sentences() {
        let cases = [
            (
                validate_labels(&map(&[("a b", "")])),
                r#"label key "a b": name part must consist of alphanumerics, '-', '_' or '.'"#,
            ),
            (
                validate_labels(&map(&[("k", "a\"b")])),
                r#"label value "a\"b" for key "k": must consist of alphanumerics, '-', '_' or '.'"#,
            ),
            (
                validate_fields(&map(&[("a\tb", "")])),
                r#"field name "a\tb": must not contain control characters"#,
            ),
            (
                validate_fields(&map(&[("f", &"v".repeat(5000))])),
                r#"value of field "f": must be at most 4096 bytes"#,
            ),
        ];
        for (result, expected) in cases {
            assert_eq!(result.unwrap_err().to_string(), expected);
        }
    }
}
