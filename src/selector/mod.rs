//! Kubernetes label and field selectors, used to filter list results, and the validation of
//! labels and fields.
//!
//! Labels and fields are both `BTreeMap<String, String>`. [`validate_labels`] and
//! [`validate_fields`] check maps before they are stored; [`LabelSelector`] and
//! [`FieldSelector`] are parsed from the strings clients send and test maps with `matches`.
//!
//! # Label selectors
//!
//! ```text
//! selector    := "" | requirement ("," requirement)*
//! requirement := key ("=" | "==" | "!=") [value]     equality; an omitted value is ""
//!              | key ("in" | "notin") "(" set ")"     set membership
//!              | key (">" | "<") integer              integer comparison
//!              | key                                  the key exists
//!              | "!" key                              the key does not exist
//! set         := [value] ("," [value])*               an omitted element is ""
//! ```
//!
//! Whitespace (space, tab, CR, LF) may surround every token; it is required only between a
//! key and `in` or `notin`, which are keywords only where an operator is expected: `in=notin`
//! is the key `in` equal to `notin`. Keys and values must be valid label keys and values (see
//! [`validate_labels`]), and so must the integer of `>` and `<`, which leaves decimal digits
//! within 64 bits.
//!
//! `=`, `in` and a bare key need the key to be present; `!=`, `notin` and `!key` match when it
//! is absent. `>` and `<` need the key present with a value that reads as a 64-bit integer (an
//! optional sign, then decimal digits) and compare numerically: `replicas>2` matches `03` and
//! not `2`, `two` or a map without `replicas`. A map must meet every requirement, and an empty
//! selector matches everything.
//!
//! # Field selectors
//!
//! ```text
//! selector := term ("," term)*
//! term     := "" | field ("=" | "==" | "!=") value
//! ```
//!
//! Terms are separated by each `,` that no backslash escapes, and empty terms are skipped, so
//! `a=b,` and `,` are valid. A term is split at its first operator: the field name is
//! everything before it, as written, spaces and backslashes included, and the value everything
//! after it. Inside the value `\\`, `\,` and `\=` stand for `\`, `,` and `=`; any other
//! backslash escape, and an unescaped `=`, are errors. So is a term without an operator, even
//! one of spaces alone. A term with neither a field nor a value, `=` or `!=`, is dropped.
//!
//! A missing field reads as the empty value: `f=` matches a map without `f`, and `f!=` does
//! not; `f!=x` does. A map must meet every requirement, and an empty selector matches
//! everything.
//!
//! # Kubernetes parity
//!
//! Parsing and matching follow apimachinery, quirks included: `labels.Parse` and the label
//! requirements' `Matches` for label selectors, `fields.ParseSelector` and its terms' `Matches`
//! for field selectors. Among the quirks:
//!
//! - `k in ()` is the set of the empty value, and an element left out of a set is `""`.
//! - A NUL byte in a label selector ends the selector where a token would start, and
//!   otherwise just ends the token before it: apimachinery's lexer reads NUL as the end of
//!   its input, so `a=1 \0,b` is `a=1`.
//! - Field names are not validated and keep their whitespace: `a b=c` selects the field
//!   `a b`, and `=x` the field `""`.
//!
//! Only the presentation differs, and on purpose. A [`SelectorError`] names the first problem
//! in the input and its byte offset instead of repeating apimachinery's messages. `Display`
//! prints a canonical form, with requirements sorted and deduplicated and `==` printed as `=`,
//! so that selectors that mean the same print the same, which the continue token's fingerprint
//! of a request relies on; apimachinery's `String` keeps duplicates, a label selector's `==`
//! and the input order of requirements on one key. And a selector here is a Rust `str`, so
//! input that is not UTF-8, which a Go string may hold, cannot arise.
//!
//! ```
//! use std::collections::BTreeMap;
//! use revkv::selector::{FieldSelector, LabelSelector};
//!
//! let labels = BTreeMap::from([("app".to_owned(), "web".to_owned())]);
//! let fields = BTreeMap::from([("metadata.name".to_owned(), "web-1".to_owned())]);
//! let by_label: LabelSelector = "app in (web, api), !canary".parse()?;
//! let by_field: FieldSelector = "metadata.name=web-1".parse()?;
//! assert!(by_label.matches(&labels) && by_field.matches(&fields));
//!
//! let unscheduled: FieldSelector = "spec.nodeName=".parse()?;
//! assert!(unscheduled.matches(&fields), "a missing field reads as empty");
//! # Ok::<(), revkv::selector::SelectorError>(())
//! ```

use std::fmt;

mod error;
mod field;
mod label;
mod validate;

pub use error::{LabelError, SelectorError};
pub use field::FieldSelector;
pub use label::LabelSelector;
pub use validate::{validate_fields, validate_labels};

/// Displays the items of a selector or of a value set, separated by commas.
#[derive(Clone, Copy)]
struct CommaSeparated<I>(I);

impl<I> fmt::Display for CommaSeparated<I>
where
    I: IntoIterator + Copy,
    I::Item: fmt::Display,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, item) in self.0.into_iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{item}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    /// A selector input, the entries of a map, and whether the selector matches the map.
    pub(super) type MatchCase<'a> = (&'a str, &'a [(&'a str, &'a str)], bool);

    pub(super) fn map(entries: &[(&str, &str)]) -> BTreeMap<String, String> {
        entries
            .iter()
            .map(|&(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    pub(super) fn label(s: &str) -> LabelSelector {
        s.parse()
            .unwrap_or_else(|e| panic!("{s:?} should parse: {e}"))
    }

    pub(super) fn field(s: &str) -> FieldSelector {
        s.parse()
            .unwrap_or_else(|e| panic!("{s:?} should parse: {e}"))
    }

    fn assert_error_position_is_sound(input: &str, error: &SelectorError) {
        assert_eq!(error.input(), input);
        assert!(error.position() <= input.len());
        assert!(input.is_char_boundary(error.position()));
        assert!(!error.to_string().is_empty());
    }

    proptest! {
        #[test]
        fn arbitrary_strings_never_panic_either_parser(
            input in prop_oneof![
                any::<String>(),
                r"[ab01 =!(),<>\\é\t\x00]{0,16}|(in|notin|[a1=!()<>, \\\x00]){0,10}",
            ],
        ) {
            match input.parse::<LabelSelector>() {
                Ok(selector) => prop_assert_eq!(label(&selector.to_string()), selector),
                Err(error) => assert_error_position_is_sound(&input, &error),
            }
            match input.parse::<FieldSelector>() {
                Ok(selector) => prop_assert_eq!(field(&selector.to_string()), selector),
                Err(error) => assert_error_position_is_sound(&input, &error),
            }
        }
    }
}
