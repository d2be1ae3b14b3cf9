//! Field selectors: parsing, matching and the canonical printed form.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use super::error::{Culprit, LabelError, Reason, SelectorError};
use super::validate::{check_field_name, check_field_value};
use super::{canonical, is_whitespace};

/// A parsed field selector: equality requirements on a field map that must all hold.
///
/// See the [module documentation](crate::selector) for the syntax. Like [`LabelSelector`](super::LabelSelector), requirements
/// are kept sorted and deduplicated, so equality ignores their order and repetition.
/// [`Display`](fmt::Display) prints them in that order with `=` for `==` and values escaped,
/// and the output parses back to an equal selector. The default selector is empty and matches
/// everything.
///
/// ```
/// use std::collections::BTreeMap;
/// use revkv::selector::FieldSelector;
///
/// let selector: FieldSelector = r"status.phase!=Failed, metadata.name==a\,b".parse()?;
/// assert_eq!(selector.to_string(), r"metadata.name=a\,b,status.phase!=Failed");
/// let fields = BTreeMap::from([("metadata.name".to_owned(), "a,b".to_owned())]);
/// assert!(selector.matches(&fields));
/// # Ok::<(), revkv::selector::SelectorError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector {
    requirements: Vec<FieldRequirement>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct FieldRequirement {
    field: String,
    op: FieldOp,
    value: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
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
    /// assert!(selector.matches(&BTreeMap::new()), "'!=' matches an absent field");
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
    /// assert!("".parse::<FieldSelector>()?.is_empty());
    /// assert!(!"a=b".parse::<FieldSelector>()?.is_empty());
    /// # Ok::<(), revkv::selector::SelectorError>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }
}

impl FieldRequirement {
    fn matches(&self, fields: &BTreeMap<String, String>) -> bool {
        let equal = fields.get(&self.field) == Some(&self.value);
        match self.op {
            FieldOp::Equals => equal,
            FieldOp::NotEquals => !equal,
        }
    }
}

impl FromStr for FieldSelector {
    type Err = SelectorError;

    fn from_str(input: &str) -> Result<Self, SelectorError> {
        FieldParser { input, position: 0 }.selector()
    }
}

impl fmt::Display for FieldSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, requirement) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            let op = match requirement.op {
                FieldOp::Equals => "=",
                FieldOp::NotEquals => "!=",
            };
            write!(f, "{}{op}", requirement.field)?;
            for c in requirement.value.chars() {
                if matches!(c, '\\' | ',' | '=') {
                    f.write_str("\\")?;
                }
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

/// Scanner for one field selector. Field values are free text with escapes rather than
/// tokens, so this reads characters directly instead of using the label selector's tokenizer.
struct FieldParser<'a> {
    input: &'a str,
    position: usize,
}

impl<'a> FieldParser<'a> {
    fn rest(&self) -> &'a str {
        &self.input[self.position..]
    }

    fn skip_whitespace(&mut self) {
        self.position += self
            .rest()
            .bytes()
            .take_while(|&b| is_whitespace(b))
            .count();
    }

    fn error(&self, position: usize, reason: Reason) -> SelectorError {
        SelectorError::new(self.input, position, reason)
    }

    fn selector(mut self) -> Result<FieldSelector, SelectorError> {
        let mut requirements = Vec::new();
        if !self.input.bytes().all(is_whitespace) {
            loop {
                requirements.push(self.requirement()?);
                // A requirement stops at the end of the input or at the ',' that ends its value.
                let comma = self.position;
                if comma == self.input.len() {
                    break;
                }
                self.position += 1;
                if self.rest().bytes().all(is_whitespace) {
                    return Err(self.error(comma, Reason::TrailingComma));
                }
            }
        }
        Ok(FieldSelector {
            requirements: canonical(requirements),
        })
    }

    fn requirement(&mut self) -> Result<FieldRequirement, SelectorError> {
        self.skip_whitespace();
        let field = self.field_name()?;
        self.skip_whitespace();
        let op = self.operator()?;
        let value = self.value(&field)?;
        Ok(FieldRequirement { field, op, value })
    }

    /// Reads a field name. It stops at the characters that can start an operator, and at `\`
    /// and `,` so a name never swallows what Kubernetes would treat as an escape or separator.
    fn field_name(&mut self) -> Result<String, SelectorError> {
        let rest = self.rest();
        let len = rest
            .bytes()
            .position(|b| is_whitespace(b) || b"=!,\\".contains(&b))
            .unwrap_or(rest.len());
        let name = &rest[..len];
        if name.is_empty() {
            return Err(self.error(self.position, Reason::ExpectedFieldName));
        }
        check_field_name(name).map_err(|problem| {
            let error = LabelError::new(name, Culprit::FieldName, problem);
            self.error(self.position, Reason::Invalid(error))
        })?;
        self.position += len;
        Ok(name.to_owned())
    }

    fn operator(&mut self) -> Result<FieldOp, SelectorError> {
        let rest = self.rest();
        // `==` before `=`, so `a==b` does not read as `a` = `=b`.
        let (op, len) = if rest.starts_with("!=") {
            (FieldOp::NotEquals, 2)
        } else if rest.starts_with("==") {
            (FieldOp::Equals, 2)
        } else if rest.starts_with('=') {
            (FieldOp::Equals, 1)
        } else {
            return Err(self.error(self.position, Reason::UnknownFieldOperator));
        };
        self.position += len;
        Ok(op)
    }

    /// Reads and unescapes a value up to the next unescaped `,` or the end of the input.
    fn value(&mut self, field: &str) -> Result<String, SelectorError> {
        let start = self.position;
        let rest = self.rest();
        let mut value = String::new();
        let mut len = rest.len();
        let mut chars = rest.char_indices();
        while let Some((offset, c)) = chars.next() {
            match c {
                ',' => {
                    len = offset;
                    break;
                }
                '=' => return Err(self.error(start + offset, Reason::UnescapedEquals)),
                '\\' => match chars.next() {
                    Some((_, escaped @ ('\\' | ',' | '='))) => value.push(escaped),
                    _ => return Err(self.error(start + offset, Reason::InvalidEscape)),
                },
                c => value.push(c),
            }
        }
        check_field_value(&value).map_err(|problem| {
            let error = LabelError::new(field, Culprit::FieldValue(value.clone()), problem);
            self.error(start, Reason::Invalid(error))
        })?;
        self.position += len;
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::selector::error::Problem;
    use crate::selector::tests::{field, map, MatchCase};

    #[test]
    fn every_field_selector_construct_parses_and_matches() {
        #[rustfmt::skip]
        let cases: &[MatchCase] = &[
            ("", &[], true),
            (" \t", &[("a", "1")], true),
            ("a=1", &[("a", "1")], true),
            ("a=1", &[("a", "2")], false),
            ("a=1", &[], false),
            ("a==1", &[("a", "1")], true),
            ("a!=1", &[("a", "1")], false),
            ("a!=1", &[("a", "2")], true),
            ("a!=1", &[], true),
            ("a=", &[("a", "")], true),
            ("a=", &[], false),
            ("a!=", &[], true),
            ("a!=", &[("a", "")], false),
            ("a=1,b!=2", &[("a", "1"), ("b", "3")], true),
            ("a=1,b!=2", &[("a", "1"), ("b", "2")], false),
            (" a\t=1, b ==2", &[("a", "1"), ("b", "2")], true),
            ("a= spaced value ", &[("a", " spaced value ")], true),
            ("a=1 ", &[("a", "1")], false),
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
            ("b=2, a==1", "a=1,b=2"),
            (r"a=x\,y\=z\\", r"a=x\,y\=z\\"),
            ("a!=", "a!="),
            ("a=1,a=1", "a=1"),
            ("a= x", "a= x"),
            ("a!=1,a=1", "a=1,a!=1"),
        ];
        for (input, canonical) in cases {
            let selector = field(input);
            assert_eq!(selector.to_string(), canonical, "{input:?}");
            assert_eq!(field(canonical), selector, "{input:?}");
        }
        assert!(field("").is_empty());
        assert!(!field("a=").is_empty());
        assert_eq!(field(""), FieldSelector::default());
    }

    #[test]
    fn every_field_selector_error_has_a_reason_and_position() {
        let long_name = "n".repeat(317);
        let long_name_selector = format!("{long_name}=1");
        let long_value = "v".repeat(4097);
        let long_value_selector = format!("a=1,b={long_value}");
        let field_error =
            |name: &str, culprit, problem| Reason::Invalid(LabelError::new(name, culprit, problem));
        let cases = [
            ("a", 1, Reason::UnknownFieldOperator),
            ("a b=c", 2, Reason::UnknownFieldOperator),
            ("a!b=c", 1, Reason::UnknownFieldOperator),
            (r"a\,b=c", 1, Reason::UnknownFieldOperator),
            ("a<1", 3, Reason::UnknownFieldOperator),
            ("=c", 0, Reason::ExpectedFieldName),
            ("!=c", 0, Reason::ExpectedFieldName),
            (",a=b", 0, Reason::ExpectedFieldName),
            ("a=b,,c=d", 4, Reason::ExpectedFieldName),
            ("a=b, ,c=d", 5, Reason::ExpectedFieldName),
            ("a=b,", 3, Reason::TrailingComma),
            ("a=b, ", 3, Reason::TrailingComma),
            (r"a=b\x", 3, Reason::InvalidEscape),
            (r"a=b\", 3, Reason::InvalidEscape),
            (r"a=\é", 2, Reason::InvalidEscape),
            (r"a=\ ", 2, Reason::InvalidEscape),
            ("a=b=c", 3, Reason::UnescapedEquals),
            ("a===b", 3, Reason::UnescapedEquals),
            ("a!==b", 3, Reason::UnescapedEquals),
            ("a= =", 3, Reason::UnescapedEquals),
            (
                "a\u{1}=b",
                0,
                field_error("a\u{1}", Culprit::FieldName, Problem::FieldNameControl),
            ),
            (
                &long_name_selector,
                0,
                field_error(&long_name, Culprit::FieldName, Problem::FieldNameTooLong),
            ),
            (
                &long_value_selector,
                6,
                field_error(
                    "b",
                    Culprit::FieldValue(long_value.clone()),
                    Problem::FieldValueTooLong,
                ),
            ),
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

    fn render_fields(requirements: &[(String, &str, String)], pad: &str) -> String {
        let parts: Vec<String> = requirements
            .iter()
            .map(|(name, op, value)| format!("{pad}{name}{pad}{op}{}", escape(value)))
            .collect();
        parts.join(",")
    }

    fn field_op() -> impl Strategy<Value = &'static str> {
        prop_oneof![Just("="), Just("=="), Just("!=")]
    }

    fn naive_field_matches(
        requirements: &[(String, &str, String)],
        fields: &BTreeMap<String, String>,
    ) -> bool {
        requirements.iter().all(|(name, op, value)| {
            let equal = fields.iter().any(|(n, v)| n == name && v == value);
            if *op == "!=" {
                !equal
            } else {
                equal
            }
        })
    }

    proptest! {
        #[test]
        fn generated_field_selectors_round_trip_through_display(
            requirements in proptest::collection::vec(
                ("[a-zA-Z][a-zA-Z0-9._-]{0,8}", field_op(), any::<String>()),
                0..5,
            ),
            pad in "[ \t\r\n]{0,2}",
        ) {
            let selector = field(&render_fields(&requirements, &pad));
            let shown = selector.to_string();
            prop_assert_eq!(field(&shown), selector.clone());
            prop_assert_eq!(field(&shown).to_string(), shown);
            prop_assert_eq!(selector.is_empty(), requirements.is_empty());
        }

        #[test]
        fn field_matching_agrees_with_a_naive_evaluation(
            requirements in proptest::collection::vec(
                ("[ab]", field_op(), r"|x|x,y|=|\\"),
                0..4,
            ),
            fields in proptest::collection::btree_map("[ab]", r"|x|x,y|=|\\", 0..3),
        ) {
            let selector = field(&render_fields(&requirements, ""));
            prop_assert_eq!(
                selector.matches(&fields),
                naive_field_matches(&requirements, &fields)
            );
        }
    }
}
