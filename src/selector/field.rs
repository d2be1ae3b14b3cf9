//! Field selectors: parsing, matching and the canonical printed form.

use std::collections::BTreeMap;
use std::fmt::{self, Write};
use std::str::FromStr;

use super::error::{Reason, SelectorError};
use super::CommaSeparated;

/// A parsed field selector: requirements on a field map that must all hold, each that a field
/// equals, or does not equal, a value.
///
/// See the [module documentation](crate::selector) for the syntax. Requirements are kept
/// sorted by their printed form, with exact duplicates removed, so equality ignores their order
/// and repetition. [`Display`](fmt::Display) prints them in that order, with `=` for `==` and
/// values escaped, and the output parses back to an equal selector. The default selector is
/// empty and matches everything.
///
/// ```
/// use std::collections::BTreeMap;
/// use revkv::selector::FieldSelector;
///
/// let selector: FieldSelector = r"status.phase!=Failed,metadata.name==a\,b".parse()?;
/// assert_eq!(selector.to_string(), r"metadata.name=a\,b,status.phase!=Failed");
/// let fields = BTreeMap::from([("metadata.name".to_owned(), "a,b".to_owned())]);
/// assert!(selector.matches(&fields));
/// # Ok::<(), revkv::selector::SelectorError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector {
    requirements: Vec<FieldRequirement>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct FieldRequirement {
    field: String,
    op: FieldOp,
    value: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FieldOp {
    Equals,
    NotEquals,
}

impl FieldSelector {
    /// Whether `fields` satisfies every requirement.
    ///
    /// ```
    /// use std::collections::BTreeMap;
    /// use revkv::selector::FieldSelector;
    ///
    /// let selector: FieldSelector = "spec.nodeName!=node-1".parse()?;
    /// assert!(selector.matches(&BTreeMap::new()), "an absent field is empty, not node-1");
    /// let on_node = BTreeMap::from([("spec.nodeName".to_owned(), "node-1".to_owned())]);
    /// assert!(!selector.matches(&on_node));
    /// # Ok::<(), revkv::selector::SelectorError>(())
    /// ```
    pub fn matches(&self, fields: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| r.matches(fields))
    }

    /// Whether the selector has no requirements, and so matches every field map.
    ///
    /// ```
    /// use revkv::selector::FieldSelector;
    ///
    /// assert!(",".parse::<FieldSelector>()?.is_empty());
    /// assert!(!"a=b".parse::<FieldSelector>()?.is_empty());
    /// # Ok::<(), revkv::selector::SelectorError>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }
}

impl FieldRequirement {
    fn matches(&self, fields: &BTreeMap<String, String>) -> bool {
        // As in Kubernetes, a missing field reads as the empty value.
        let actual = fields.get(&self.field).map_or("", String::as_str);
        (actual == self.value) == (self.op == FieldOp::Equals)
    }
}

impl FromStr for FieldSelector {
    type Err = SelectorError;

    fn from_str(input: &str) -> Result<Self, SelectorError> {
        let mut requirements = Vec::new();
        for (start, term) in split_terms(input) {
            // Kubernetes skips empty terms; a term of whitespace is not empty.
            if term.is_empty() {
                continue;
            }
            let requirement = parse_term(input, start, term)?;
            // Kubernetes drops a term with neither a field nor a value, `=` or `!=`, when it
            // passes the parsed selector through its (here: identity) transform.
            if !(requirement.field.is_empty() && requirement.value.is_empty()) {
                requirements.push(requirement);
            }
        }
        // Kubernetes sorts the text of the terms. Sorting the printed form gives the same
        // order but for terms written with `==`, and equal selectors print alike.
        requirements.sort_by_cached_key(FieldRequirement::to_string);
        requirements.dedup();
        Ok(FieldSelector { requirements })
    }
}

/// Splits a selector at each `,` no backslash escapes, giving each term with its byte offset.
/// For splitting, a backslash escapes whatever follows it; the escapes stay in the terms, and
/// only unescaping a value tells valid ones from invalid ones.
fn split_terms(input: &str) -> Vec<(usize, &str)> {
    let mut terms = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in input.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            ',' => {
                terms.push((start, &input[start..i]));
                start = i + 1;
            }
            _ => {}
        }
    }
    terms.push((start, &input[start..]));
    terms
}

/// Parses one non-empty term, found at byte `start` of `input`. The field name is everything
/// before the first operator, taken as written: names have no escapes, so a name holds no `=`.
fn parse_term(input: &str, start: usize, term: &str) -> Result<FieldRequirement, SelectorError> {
    let bytes = term.as_bytes();
    let Some(at) = (0..bytes.len()).find(|&i| bytes[i] == b'=' || bytes[i..].starts_with(b"!="))
    else {
        return Err(SelectorError::new(
            input,
            start,
            Reason::MissingFieldOperator,
        ));
    };
    // `==` is tried before `=`, so `a==b` is `a` equal to `b`, not to `=b`.
    let (op, len) = match (bytes[at], bytes.get(at + 1)) {
        (b'!', _) => (FieldOp::NotEquals, 2),
        (_, Some(b'=')) => (FieldOp::Equals, 2),
        _ => (FieldOp::Equals, 1),
    };
    let value_start = at + len;
    Ok(FieldRequirement {
        field: term[..at].to_owned(),
        op,
        value: unescape(input, start + value_start, &term[value_start..])?,
    })
}

/// Unescapes a value found at byte `start` of `input`: `\\`, `\,` and `\=` stand for `\`, `,`
/// and `=`; any other escape, a backslash at the end and an unescaped `=` are errors.
fn unescape(input: &str, start: usize, escaped: &str) -> Result<String, SelectorError> {
    let error = |offset, reason| SelectorError::new(input, start + offset, reason);
    let mut value = String::with_capacity(escaped.len());
    let mut chars = escaped.char_indices();
    while let Some((offset, c)) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some((_, special @ ('\\' | ',' | '='))) => value.push(special),
                _ => return Err(error(offset, Reason::InvalidEscape)),
            },
            '=' => return Err(error(offset, Reason::UnescapedEquals)),
            c => value.push(c),
        }
    }
    Ok(value)
}

impl fmt::Display for FieldSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        CommaSeparated(&self.requirements).fmt(f)
    }
}

impl fmt::Display for FieldRequirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.op {
            FieldOp::Equals => "=",
            FieldOp::NotEquals => "!=",
        };
        write!(f, "{}{op}", self.field)?;
        for c in self.value.chars() {
            if matches!(c, '\\' | ',' | '=') {
                f.write_char('\\')?;
            }
            f.write_char(c)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::selector::tests::{field, map, MatchCase};

    #[test]
    fn every_field_selector_construct_parses_and_matches() {
        let long_name = format!("{}=1", "n".repeat(317));
        let long_value = format!("a={}", "v".repeat(4097));
        #[rustfmt::skip]
        let cases: &[MatchCase] = &[
            ("", &[], true),
            ("a=1", &[("a", "1")], true),
            ("a=1", &[("a", "2")], false),
            ("a=1", &[], false),
            ("a==1", &[("a", "1")], true),
            ("a!=1", &[("a", "1")], false),
            ("a!=1", &[("a", "2")], true),
            ("a!=1", &[], true),
            ("a=", &[("a", "")], true),
            ("a=", &[("a", "1")], false),
            ("a=", &[], true),
            ("a!=", &[], false),
            ("a!=", &[("a", "")], false),
            ("a!=", &[("a", "1")], true),
            ("a=1,b!=2", &[("a", "1"), ("b", "3")], true),
            ("a=1,b!=2", &[("a", "1"), ("b", "2")], false),
            ("a=1,", &[("a", "1")], true),
            (",a=1,,b=2,", &[("a", "1"), ("b", "2")], true),
            (",,", &[], true),
            ("=", &[("a", "1")], true),
            ("!=", &[("a", "1")], true),
            ("==", &[], true),
            ("=x", &[], false),
            ("!=x", &[], true),
            (" a\t=1, b ==2", &[(" a\t", "1"), (" b ", "2")], true),
            (" a\t=1, b ==2", &[("a", "1"), ("b", "2")], false),
            ("a= spaced value ", &[("a", " spaced value ")], true),
            ("a=1 ", &[("a", "1")], false),
            ("a!b=c", &[("a!b", "c")], true),
            ("a!!=c", &[("a!", "c")], false),
            ("a!!=c", &[("a!", "d")], true),
            ("a<1=2", &[("a<1", "2")], true),
            (r"a\,b=c", &[(r"a\,b", "c")], true),
            (r"a\=b", &[(r"a\", "b")], true),
            ("a\u{1}=b\u{0}", &[("a\u{1}", "b\u{0}")], true),
            (&long_name, &[(&long_name[..317], "1")], true),
            (&long_value, &[("a", &long_value[2..])], true),
            (r"metadata.name=web\,1", &[("metadata.name", "web,1")], true),
            (r"a=x\=y\\z", &[("a", r"x=y\z")], true),
            (r"a=\\", &[("a", r"\")], true),
            ("a=!x", &[("a", "!x")], true),
            ("a=é✓", &[("a", "é✓")], true),
            ("in=notin", &[("in", "notin")], true),
            ("a=(b)", &[("a", "(b)")], true),
        ];
        for &(input, fields, expected) in cases {
            assert_eq!(
                field(input).matches(&map(fields)),
                expected,
                "{input:?} on {fields:?}"
            );
        }
    }

    #[test]
    fn field_selectors_display_in_canonical_escaped_form() {
        let cases = [
            ("", ""),
            (",", ""),
            ("b=2,a==1", "a=1,b=2"),
            ("b=2, a==1", " a=1,b=2"),
            (r"a=x\,y\=z\\", r"a=x\,y\=z\\"),
            ("a!=", "a!="),
            ("a=1,a=1", "a=1"),
            ("a==1,a=1", "a=1"),
            ("a= x", "a= x"),
            ("a=1,a!=1", "a!=1,a=1"),
            ("a=1,a.b=1", "a.b=1,a=1"),
            ("=,!=,a=1,==", "a=1"),
            (r"a\,b=c", r"a\,b=c"),
            (r"a\=b", r"a\=b"),
            ("a!!=b", "a!!=b"),
        ];
        for (input, canonical) in cases {
            let selector = field(input);
            assert_eq!(selector.to_string(), canonical, "{input:?}");
            assert_eq!(field(canonical), selector, "{input:?}");
        }
        assert!(field("").is_empty());
        assert!(field("=").is_empty());
        assert!(!field("a=").is_empty());
        assert_eq!(field(""), FieldSelector::default());
    }

    #[test]
    fn every_field_selector_error_has_a_reason_and_position() {
        let cases = [
            ("a", 0, Reason::MissingFieldOperator),
            (" ", 0, Reason::MissingFieldOperator),
            ("a=b,c", 4, Reason::MissingFieldOperator),
            ("a=b, ", 4, Reason::MissingFieldOperator),
            ("a=b, ,c=d", 4, Reason::MissingFieldOperator),
            ("a<1", 0, Reason::MissingFieldOperator),
            ("x in (a,b)", 0, Reason::MissingFieldOperator),
            (r"a=b\x", 3, Reason::InvalidEscape),
            (r"a=b\", 3, Reason::InvalidEscape),
            (r"a=\é", 2, Reason::InvalidEscape),
            (r"a=\ ", 2, Reason::InvalidEscape),
            (r"a=1,b=\\\", 8, Reason::InvalidEscape),
            ("a=b=c", 3, Reason::UnescapedEquals),
            ("a===b", 3, Reason::UnescapedEquals),
            ("a!==b", 3, Reason::UnescapedEquals),
            ("a=!=b", 3, Reason::UnescapedEquals),
            ("a= =", 3, Reason::UnescapedEquals),
            (r"a=b\,c=d", 6, Reason::UnescapedEquals),
            (r"\=x=y", 3, Reason::UnescapedEquals),
        ];
        for (input, position, reason) in cases {
            let error = input.parse::<FieldSelector>().unwrap_err();
            let expected = SelectorError::new(input, position, reason);
            assert_eq!(error, expected, "{input:?}: {error}");
        }
    }

    /// Escapes a field value independently of `FieldSelector`'s `Display`.
    fn escape(value: &str) -> String {
        value
            .replace('\\', r"\\")
            .replace(',', r"\,")
            .replace('=', r"\=")
    }

    /// A requirement as a test generates it: a field name, an operator and an unescaped value.
    type Term = (String, &'static str, String);

    fn render_fields(terms: &[Term]) -> String {
        let parts: Vec<String> = terms
            .iter()
            .map(|(name, op, value)| format!("{name}{op}{}", escape(value)))
            .collect();
        parts.join(",")
    }

    fn field_op() -> impl Strategy<Value = &'static str> {
        prop_oneof![Just("="), Just("=="), Just("!=")]
    }

    /// A term whose field name a selector can hold: no `=`, a backslash only before another
    /// character, so a `,` only escaped, and no `!` at the end unless the operator is `!=`,
    /// since the name ends at the first operator.
    fn any_term() -> impl Strategy<Value = Term> {
        (
            r"([a-z .!\té]|\\[a-z,!\\]){0,6}",
            field_op(),
            any::<String>(),
        )
            .prop_filter(
                "the name must end where the operator starts",
                |(name, op, _)| *op == "!=" || !name.ends_with('!'),
            )
    }

    /// The meaning of the terms, written without a lookup: a missing field is empty, and a
    /// term with neither a field nor a value is dropped.
    fn naive_field_matches(terms: &[Term], fields: &BTreeMap<String, String>) -> bool {
        terms.iter().all(|(name, op, value)| {
            let actual = fields
                .iter()
                .find(|(n, _)| *n == name)
                .map_or("", |(_, v)| v.as_str());
            let dropped = name.is_empty() && value.is_empty();
            dropped || (actual == value) == (*op != "!=")
        })
    }

    proptest! {
        #[test]
        fn generated_field_selectors_round_trip_through_display(
            terms in proptest::collection::vec(any_term(), 0..5),
        ) {
            let selector = field(&render_fields(&terms));
            let shown = selector.to_string();
            prop_assert_eq!(field(&shown), selector.clone());
            prop_assert_eq!(field(&shown).to_string(), shown);
            let all_dropped = terms.iter().all(|(name, _, value)| name.is_empty() && value.is_empty());
            prop_assert_eq!(selector.is_empty(), all_dropped);
        }

        #[test]
        fn field_matching_agrees_with_a_naive_evaluation(
            terms in proptest::collection::vec(("|[ab]", field_op(), r"|x|x,y|=|\\"), 0..4),
            fields in proptest::collection::btree_map("|[ab]", r"|x|x,y|=|\\", 0..3),
        ) {
            let selector = field(&render_fields(&terms));
            prop_assert_eq!(selector.matches(&fields), naive_field_matches(&terms, &fields));
        }
    }
}
