//! The errors of validation and of selector parsing.

use std::error::Error;
use std::fmt;

/// An invalid label key or value, or an invalid field name or value.
///
/// Returned by [`validate_labels`](super::validate_labels) and
/// [`validate_fields`](super::validate_fields), and carried inside the
/// [`SelectorError`] of a label selector whose keys or values are invalid.
///
/// ```
/// use std::collections::BTreeMap;
/// use revkv::selector::validate_labels;
///
/// let labels = BTreeMap::from([("tier".to_owned(), "-web".to_owned())]);
/// let error = validate_labels(&labels).unwrap_err();
/// assert_eq!((error.key(), error.value()), ("tier", Some("-web")));
/// assert_eq!(error.reason(), "must start and end with an alphanumeric");
/// assert_eq!(
///     error.to_string(),
///     r#"label value "-web" for key "tier": must start and end with an alphanumeric"#
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelError {
    key: String,
    culprit: Culprit,
    problem: Problem,
}

/// Which part of an entry was rejected. The rejected value is kept because the caller of a
/// selector parser has no map to look it up in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Culprit {
    LabelKey,
    LabelValue(String),
    FieldName,
    FieldValue(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Problem {
    KeySlashes,
    PrefixEmpty,
    PrefixChars,
    PrefixTooLong,
    PrefixSegment,
    NameEmpty,
    NameChars,
    NameTooLong,
    NameEdge,
    ValueChars,
    ValueTooLong,
    ValueEdge,
    FieldNameEmpty,
    FieldNameTooLong,
    FieldNameControl,
    FieldValueTooLong,
}

impl Problem {
    fn message(self) -> &'static str {
        match self {
            Problem::KeySlashes => "must contain at most one '/'",
            Problem::PrefixEmpty => "prefix part must not be empty",
            Problem::PrefixChars => {
                "prefix part must consist of lowercase alphanumerics, '-' or '.'"
            }
            Problem::PrefixTooLong => "prefix part must be at most 253 characters",
            Problem::PrefixSegment => {
                "prefix part must start and end each '.'-separated segment with an alphanumeric"
            }
            Problem::NameEmpty => "name part must not be empty",
            Problem::NameChars => "name part must consist of alphanumerics, '-', '_' or '.'",
            Problem::NameTooLong => "name part must be at most 63 characters",
            Problem::NameEdge => "name part must start and end with an alphanumeric",
            Problem::ValueChars => "must consist of alphanumerics, '-', '_' or '.'",
            Problem::ValueTooLong => "must be at most 63 characters",
            Problem::ValueEdge => "must start and end with an alphanumeric",
            Problem::FieldNameEmpty => "must not be empty",
            Problem::FieldNameTooLong => "must be at most 316 bytes",
            Problem::FieldNameControl => "must not contain control characters",
            Problem::FieldValueTooLong => "must be at most 4096 bytes",
        }
    }
}

impl LabelError {
    pub(super) fn new(key: &str, culprit: Culprit, problem: Problem) -> Self {
        LabelError {
            key: key.to_owned(),
            culprit,
            problem,
        }
    }

    /// The label key or field name of the rejected entry, whether it was the key or the value
    /// that was invalid.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The rejected value, or `None` when the key or field name itself was invalid.
    pub fn value(&self) -> Option<&str> {
        match &self.culprit {
            Culprit::LabelValue(value) | Culprit::FieldValue(value) => Some(value),
            Culprit::LabelKey | Culprit::FieldName => None,
        }
    }

    /// Why the key or value was rejected, e.g. `name part must not be empty`.
    pub fn reason(&self) -> &'static str {
        self.problem.message()
    }
}

impl fmt::Display for LabelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (key, reason) = (&self.key, self.reason());
        match &self.culprit {
            Culprit::LabelKey => write!(f, "label key {key:?}: {reason}"),
            Culprit::LabelValue(value) => {
                write!(f, "label value {value:?} for key {key:?}: {reason}")
            }
            Culprit::FieldName => write!(f, "field name {key:?}: {reason}"),
            // Field values may be kilobytes long, so the value is left out.
            Culprit::FieldValue(_) => write!(f, "value of field {key:?}: {reason}"),
        }
    }
}

impl Error for LabelError {}

/// A selector string that could not be parsed, with the byte offset where parsing failed.
///
/// ```
/// use revkv::selector::LabelSelector;
///
/// let error = "a in (b".parse::<LabelSelector>().unwrap_err();
/// assert_eq!((error.input(), error.position()), ("a in (b", 7));
/// assert_eq!(error.reason(), "expected ',' or ')'");
/// assert_eq!(error.to_string(), r#"invalid selector "a in (b": expected ',' or ')' at byte 7"#);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectorError {
    input: String,
    position: usize,
    reason: Reason,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Reason {
    ExpectedKey,
    UnknownOperator,
    ExpectedValue,
    NotAnInteger,
    ExpectedOpenParen,
    ExpectedCommaOrClose,
    ExpectedCommaOrEnd,
    TrailingComma,
    MissingFieldOperator,
    InvalidEscape,
    UnescapedEquals,
    Invalid(LabelError),
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let message = match self {
            Reason::ExpectedKey => "expected a label key",
            Reason::UnknownOperator => {
                "unknown operator; expected '=', '==', '!=', 'in', 'notin', '>' or '<'"
            }
            Reason::ExpectedValue => "expected a value",
            Reason::NotAnInteger => "'>' and '<' compare with a 64-bit integer",
            Reason::ExpectedOpenParen => "expected '(' and a set of values",
            Reason::ExpectedCommaOrClose => "expected ',' or ')'",
            Reason::ExpectedCommaOrEnd => "expected ',' or the end of the selector",
            Reason::TrailingComma => "trailing ','",
            Reason::MissingFieldOperator => "expected a term with '=', '==' or '!='",
            Reason::InvalidEscape => r"invalid escape; only '\\', '\,' and '\=' are allowed",
            Reason::UnescapedEquals => r"unescaped '=' in a value; write it as '\='",
            Reason::Invalid(error) => return fmt::Display::fmt(error, f),
        };
        f.write_str(message)
    }
}

impl SelectorError {
    pub(super) fn new(input: &str, position: usize, reason: Reason) -> Self {
        SelectorError {
            input: input.to_owned(),
            position,
            reason,
        }
    }

    /// The selector string that failed to parse.
    pub fn input(&self) -> &str {
        &self.input
    }

    /// The byte offset in [`input`](Self::input) where parsing failed; always on a character
    /// boundary. When the selector ended too early it is the input's length, or for a label
    /// selector the NUL byte that ended it.
    pub fn position(&self) -> usize {
        self.position
    }

    /// What was wrong at [`position`](Self::position), without the input or the position.
    pub fn reason(&self) -> String {
        self.reason.to_string()
    }
}

impl fmt::Display for SelectorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid selector {:?}: {} at byte {}",
            self.input, self.reason, self.position
        )
    }
}

impl Error for SelectorError {}

#[cfg(test)]
mod tests {
    use crate::selector::{FieldSelector, LabelSelector};

    #[test]
    fn selector_errors_read_as_lowercase_sentences() {
        let cases = [
            (
                "a in (b",
                r#"invalid selector "a in (b": expected ',' or ')' at byte 7"#,
            ),
            (
                "a b=c",
                r#"invalid selector "a b=c": unknown operator; expected '=', '==', '!=', 'in', 'notin', '>' or '<' at byte 2"#,
            ),
            (
                "a%b=c",
                r#"invalid selector "a%b=c": label key "a%b": name part must consist of alphanumerics, '-', '_' or '.' at byte 0"#,
            ),
        ];
        for (input, expected) in cases {
            let error = input.parse::<LabelSelector>().unwrap_err();
            assert_eq!(error.to_string(), expected);
        }
        let error = r"a=b\x".parse::<FieldSelector>().unwrap_err();
        assert_eq!(
            error.to_string(),
            r#"invalid selector "a=b\\x": invalid escape; only '\\', '\,' and '\=' are allowed at byte 3"#
        );
        assert_eq!(
            error.reason(),
            r"invalid escape; only '\\', '\,' and '\=' are allowed"
        );
        assert_eq!((error.input(), error.position()), (r"a=b\x", 3));
    }
}
