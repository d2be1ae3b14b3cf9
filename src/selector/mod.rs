//! Kubernetes-style label selectors, field selectors and label validation, used to filter
//! list results.
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
//! selector    := "" | requirement ("," requirement)*
//! requirement := name ("=" | "==" | "!=") value
//! ```
//!
//! A value runs from its operator to the next unescaped `,`, spaces included; inside it `\\`,
//! `\,` and `\=` stand for `\`, `,` and `=`, any other backslash escape is an error and so is
//! an unescaped `=`. Whitespace around a field name is ignored. `!=` matches when the field is
//! absent.
//!
//! # Kubernetes parity
//!
//! Label selectors parse and match as apimachinery's `labels.Parse` does, quirks included:
//! `k in ()` is the set of the empty value, and a NUL byte ends the selector where a token
//! would start (and otherwise just ends the token before it), because apimachinery's lexer
//! reads NUL as the end of its input: `a=1 \0,b` is `a=1`.
//!
//! Where field selectors still differ from Kubernetes:
//!
//! - Field selectors reject empty terms (`a=b,`, `a=b,,c=d`), which Kubernetes skips, and field
//!   names that are empty or contain whitespace, `!`, `\` or control characters. Kubernetes
//!   keeps whitespace around a name as part of it; here it is ignored.
//! - An absent field equals nothing, not even `""`: `f=` needs `f` present and empty, and `f!=`
//!   matches a map without `f`. Kubernetes reads a missing field as `""`.
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

/// Sorts and deduplicates requirements, the canonical form equality and display rely on.
fn canonical<T: Ord>(mut requirements: Vec<T>) -> Vec<T> {
    requirements.sort();
    requirements.dedup();
    requirements
}

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

/// Kubernetes' selector whitespace; anything else, Unicode spaces included, is part of a word.
fn is_whitespace(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
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
