//! Label selectors: parsing, matching and the canonical printed form.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use super::error::{Culprit, LabelError, Reason, SelectorError};
use super::validate::{check_label_key, check_label_value};
use super::CommaSeparated;

/// A parsed label selector: requirements on a label map that must all hold.
///
/// See the [module documentation](crate::selector) for the syntax. Requirements are kept
/// sorted by key, then operator, then values, with exact duplicates removed, so equality
/// ignores their order and repetition; it is otherwise structural (`a=1` and `a in (1)` select
/// the same maps but are not equal). [`Display`](fmt::Display) prints that canonical order,
/// with `=` for `==`, sets sorted and deduplicated, one space around `in` and `notin`, and the
/// bound of `>` and `<` as a plain decimal; the output parses back to an equal selector. The
/// default selector is empty and matches everything.
///
/// ```
/// use std::collections::BTreeMap;
/// use revkv::selector::LabelSelector;
///
/// let selector: LabelSelector = "tier in (web,api,web), !canary, replicas>02".parse()?;
/// assert_eq!(selector.to_string(), "!canary,replicas>2,tier in (api,web)");
/// assert_eq!(selector.to_string().parse::<LabelSelector>()?, selector);
/// # Ok::<(), revkv::selector::SelectorError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Requirement {
    key: String,
    op: Op,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Op {
    Exists,
    DoesNotExist,
    Equals(String),
    NotEquals(String),
    In(BTreeSet<String>),
    NotIn(BTreeSet<String>),
    GreaterThan(i64),
    LessThan(i64),
}

impl LabelSelector {
    /// Whether `labels` satisfies every requirement.
    ///
    /// ```
    /// use std::collections::BTreeMap;
    /// use revkv::selector::LabelSelector;
    ///
    /// let selector: LabelSelector = "tier!=db".parse()?;
    /// assert!(selector.matches(&BTreeMap::new()), "'!=' matches an absent key");
    /// let db = BTreeMap::from([("tier".to_owned(), "db".to_owned())]);
    /// assert!(!selector.matches(&db));
    /// # Ok::<(), revkv::selector::SelectorError>(())
    /// ```
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }

    /// Whether the selector has no requirements, and so matches every label map.
    ///
    /// ```
    /// use revkv::selector::LabelSelector;
    ///
    /// assert!(" ".parse::<LabelSelector>()?.is_empty());
    /// assert!(!"tier".parse::<LabelSelector>()?.is_empty());
    /// # Ok::<(), revkv::selector::SelectorError>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }
}

impl Requirement {
    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let value = labels.get(&self.key);
        // An absent key or a value that is not an integer fails both comparisons. Rust reads
        // integers as Go's strconv.ParseInt(s, 10, 64) does: an optional sign, then digits.
        let number = || value.and_then(|v| v.parse::<i64>().ok());
        match &self.op {
            Op::Exists => value.is_some(),
            Op::DoesNotExist => value.is_none(),
            Op::Equals(wanted) => value == Some(wanted),
            Op::NotEquals(unwanted) => value != Some(unwanted),
            Op::In(set) => value.is_some_and(|v| set.contains(v)),
            Op::NotIn(set) => !value.is_some_and(|v| set.contains(v)),
            Op::GreaterThan(bound) => number().is_some_and(|n| n > *bound),
            Op::LessThan(bound) => number().is_some_and(|n| n < *bound),
        }
    }
}

impl FromStr for LabelSelector {
    type Err = SelectorError;

    fn from_str(input: &str) -> Result<Self, SelectorError> {
        LabelParser::new(input).selector()
    }
}

impl fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        CommaSeparated(&self.requirements).fmt(f)
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key = &self.key;
        match &self.op {
            Op::Exists => f.write_str(key),
            Op::DoesNotExist => write!(f, "!{key}"),
            Op::Equals(value) => write!(f, "{key}={value}"),
            Op::NotEquals(value) => write!(f, "{key}!={value}"),
            Op::In(set) => write!(f, "{key} in ({})", CommaSeparated(set)),
            Op::NotIn(set) => write!(f, "{key} notin ({})", CommaSeparated(set)),
            Op::GreaterThan(bound) => write!(f, "{key}>{bound}"),
            Op::LessThan(bound) => write!(f, "{key}<{bound}"),
        }
    }
}

/// Kubernetes' selector whitespace; anything else, Unicode spaces included, is part of a word.
fn is_whitespace(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token<'a> {
    /// A run of anything but whitespace, NUL and the symbols below: a key, a value, `in`,
    /// `notin`.
    Word(&'a str),
    Equals,
    DoubleEquals,
    NotEquals,
    Bang,
    Open,
    Close,
    Comma,
    GreaterThan,
    LessThan,
    End,
}

#[derive(Debug, Clone, Copy)]
struct Lexeme<'a> {
    token: Token<'a>,
    position: usize,
}

/// Splits a label selector into tokens, ending with [`Token::End`].
///
/// A NUL byte is treated as apimachinery's lexer treats it, which reads NUL as its own
/// end-of-input marker: right after a token it is consumed with that token, so it separates
/// the token from what follows; anywhere else, where a token would start, it ends the
/// selector and the rest of the input is ignored.
///
/// Every token boundary is next to an ASCII byte or at an end of the input, so slicing there
/// never splits a multi-byte character.
fn tokenize(input: &str) -> Vec<Lexeme<'_>> {
    let bytes = input.as_bytes();
    let mut lexemes = Vec::new();
    let mut position = 0;
    loop {
        while bytes.get(position).copied().is_some_and(is_whitespace) {
            position += 1;
        }
        let Some(&byte) = bytes.get(position).filter(|&&b| b != 0) else {
            break;
        };
        let followed_by_equals = bytes.get(position + 1) == Some(&b'=');
        let (token, len) = match byte {
            b'=' if followed_by_equals => (Token::DoubleEquals, 2),
            b'=' => (Token::Equals, 1),
            b'!' if followed_by_equals => (Token::NotEquals, 2),
            b'!' => (Token::Bang, 1),
            b'(' => (Token::Open, 1),
            b')' => (Token::Close, 1),
            b',' => (Token::Comma, 1),
            b'>' => (Token::GreaterThan, 1),
            b'<' => (Token::LessThan, 1),
            _ => {
                let rest = &bytes[position..];
                let len = rest
                    .iter()
                    .position(|&b| is_whitespace(b) || b"=!(),<>\0".contains(&b))
                    .unwrap_or(rest.len());
                (Token::Word(&input[position..position + len]), len)
            }
        };
        lexemes.push(Lexeme { token, position });
        position += len;
        if bytes.get(position) == Some(&0) {
            position += 1;
        }
    }
    lexemes.push(Lexeme {
        token: Token::End,
        position,
    });
    lexemes
}

/// Recursive-descent parser over the tokens of one label selector.
struct LabelParser<'a> {
    input: &'a str,
    lexemes: Vec<Lexeme<'a>>,
    next: usize,
}

impl<'a> LabelParser<'a> {
    fn new(input: &'a str) -> Self {
        LabelParser {
            input,
            lexemes: tokenize(input),
            next: 0,
        }
    }

    fn peek(&self) -> Lexeme<'a> {
        self.lexemes[self.next]
    }

    /// Consumes the next token; [`Token::End`] is never consumed, so `peek` stays in bounds.
    fn advance(&mut self) -> Lexeme<'a> {
        let lexeme = self.peek();
        if lexeme.token != Token::End {
            self.next += 1;
        }
        lexeme
    }

    fn error(&self, position: usize, reason: Reason) -> SelectorError {
        SelectorError::new(self.input, position, reason)
    }

    fn selector(mut self) -> Result<LabelSelector, SelectorError> {
        let mut requirements = Vec::new();
        if self.peek().token != Token::End {
            loop {
                requirements.push(self.requirement()?);
                let separator = self.advance();
                match separator.token {
                    Token::End => break,
                    Token::Comma if self.peek().token == Token::End => {
                        return Err(self.error(separator.position, Reason::TrailingComma));
                    }
                    Token::Comma => {}
                    _ => return Err(self.error(separator.position, Reason::ExpectedCommaOrEnd)),
                }
            }
        }
        // Sorted and deduplicated: the canonical form that equality and display rely on.
        requirements.sort();
        requirements.dedup();
        Ok(LabelSelector { requirements })
    }

    fn requirement(&mut self) -> Result<Requirement, SelectorError> {
        let negated = self.peek().token == Token::Bang;
        if negated {
            self.advance();
        }
        let key = self.key()?;
        let op = if negated {
            Op::DoesNotExist
        } else {
            self.operation(&key)?
        };
        Ok(Requirement { key, op })
    }

    fn key(&mut self) -> Result<String, SelectorError> {
        let lexeme = self.advance();
        let Token::Word(key) = lexeme.token else {
            return Err(self.error(lexeme.position, Reason::ExpectedKey));
        };
        check_label_key(key).map_err(|problem| {
            let error = LabelError::new(key, Culprit::LabelKey, problem);
            self.error(lexeme.position, Reason::Invalid(error))
        })?;
        Ok(key.to_owned())
    }

    /// Parses what follows a key; nothing at all (a `,` or the end) means "exists". Only here
    /// are `in` and `notin` keywords: as keys and values they are words like any other.
    fn operation(&mut self, key: &str) -> Result<Op, SelectorError> {
        let lexeme = self.peek();
        if matches!(lexeme.token, Token::Comma | Token::End) {
            return Ok(Op::Exists);
        }
        self.advance();
        let op = match lexeme.token {
            Token::Equals | Token::DoubleEquals => Op::Equals(self.exact_value(key)?),
            Token::NotEquals => Op::NotEquals(self.exact_value(key)?),
            Token::Word("in") => Op::In(self.value_set(key)?),
            Token::Word("notin") => Op::NotIn(self.value_set(key)?),
            Token::GreaterThan => Op::GreaterThan(self.integer_value(key)?),
            Token::LessThan => Op::LessThan(self.integer_value(key)?),
            _ => return Err(self.error(lexeme.position, Reason::UnknownOperator)),
        };
        Ok(op)
    }

    /// The value after `=`, `==`, `!=`, `>` or `<`; as in Kubernetes, a missing one is the
    /// empty value.
    fn exact_value(&mut self, key: &str) -> Result<String, SelectorError> {
        let lexeme = self.peek();
        match lexeme.token {
            Token::Comma | Token::End => Ok(String::new()),
            Token::Word(value) => {
                self.advance();
                self.checked_value(key, value, lexeme.position)
            }
            _ => Err(self.error(lexeme.position, Reason::ExpectedValue)),
        }
    }

    /// The bound of `>` or `<`: a valid label value that is also a 64-bit integer, which
    /// leaves digits only, since a label value cannot start with a sign.
    fn integer_value(&mut self, key: &str) -> Result<i64, SelectorError> {
        let position = self.peek().position;
        let value = self.exact_value(key)?;
        value
            .parse()
            .map_err(|_| self.error(position, Reason::NotAnInteger))
    }

    /// A parenthesized, comma-separated set. An element may be left out, and then stands for
    /// the empty value: `()` is the set of `""`, and `(a,)` and `(a,,)` are `{"", "a"}`.
    fn value_set(&mut self, key: &str) -> Result<BTreeSet<String>, SelectorError> {
        let open = self.advance();
        if open.token != Token::Open {
            return Err(self.error(open.position, Reason::ExpectedOpenParen));
        }
        let mut values = BTreeSet::new();
        loop {
            let lexeme = self.peek();
            let value = match lexeme.token {
                Token::Word(value) => {
                    self.advance();
                    self.checked_value(key, value, lexeme.position)?
                }
                Token::Comma | Token::Close => String::new(),
                _ => return Err(self.error(lexeme.position, Reason::ExpectedValue)),
            };
            values.insert(value);
            let separator = self.advance();
            match separator.token {
                Token::Close => return Ok(values),
                Token::Comma => {}
                _ => return Err(self.error(separator.position, Reason::ExpectedCommaOrClose)),
            }
        }
    }

    fn checked_value(
        &self,
        key: &str,
        value: &str,
        position: usize,
    ) -> Result<String, SelectorError> {
        check_label_value(value).map_err(|problem| {
            let error = LabelError::new(key, Culprit::LabelValue(value.to_owned()), problem);
            self.error(position, Reason::Invalid(error))
        })?;
        Ok(value.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::selector::error::Problem;
    use crate::selector::tests::{label, map, MatchCase};

    fn label_key_error(key: &str, problem: Problem) -> Reason {
        Reason::Invalid(LabelError::new(key, Culprit::LabelKey, problem))
    }

    fn label_value_error(key: &str, value: &str, problem: Problem) -> Reason {
        let culprit = Culprit::LabelValue(value.to_owned());
        Reason::Invalid(LabelError::new(key, culprit, problem))
    }

    #[test]
    fn every_label_selector_construct_parses_and_matches() {
        #[rustfmt::skip]
        let cases: &[MatchCase] = &[
            ("", &[], true),
            ("", &[("a", "1")], true),
            (" \t\r\n", &[("a", "1")], true),
            ("a=1", &[("a", "1")], true),
            ("a=1", &[("a", "2")], false),
            ("a=1", &[], false),
            ("a==1", &[("a", "1")], true),
            ("a==1", &[("a", "2")], false),
            ("a!=1", &[("a", "1")], false),
            ("a!=1", &[("a", "2")], true),
            ("a!=1", &[], true),
            ("a=", &[("a", "")], true),
            ("a=", &[("a", "1")], false),
            ("a=", &[], false),
            ("a!=", &[("a", "")], false),
            ("a!=", &[], true),
            ("a in (1,2)", &[("a", "2")], true),
            ("a in (1,2)", &[("a", "3")], false),
            ("a in (1,2)", &[], false),
            ("a notin (1,2)", &[("a", "2")], false),
            ("a notin (1,2)", &[("a", "3")], true),
            ("a notin (1,2)", &[], true),
            ("a", &[("a", "")], true),
            ("a", &[("b", "")], false),
            ("!a", &[], true),
            ("!a", &[("a", "")], false),
            ("a=1,b", &[("a", "1"), ("b", "x")], true),
            ("a=1,b", &[("a", "1")], false),
            ("a=1,a=2", &[("a", "1")], false),
            (" a = 1 , b in(x) ,! c ", &[("a", "1"), ("b", "x")], true),
            (" a = 1 , b in(x) ,! c ", &[("a", "1"), ("b", "x"), ("c", "")], false),
            ("a\tnotin\n(\r1\t)", &[("a", "2")], true),
            ("example.com/app=web", &[("example.com/app", "web")], true),
            ("A_b.c-D=X.y_z-9", &[("A_b.c-D", "X.y_z-9")], true),
            ("in=notin", &[("in", "notin")], true),
            ("in in (in)", &[("in", "in")], true),
            ("notin notin (in,notin)", &[("notin", "x")], true),
            ("!in", &[("notin", "")], true),
            ("a>1", &[("a", "2")], true),
            ("a>1", &[("a", "1")], false),
            ("a>1", &[], false),
            ("a>1", &[("a", "x")], false),
            ("a>1", &[("a", "+2")], true),
            ("a < 10", &[("a", "-20")], true),
            ("a<10", &[("a", "010")], false),
            ("a<10", &[("a", " 1")], false),
            ("a>9223372036854775806", &[("a", "9223372036854775807")], true),
            ("a<0", &[("a", "-9223372036854775808")], true),
            ("a<0", &[("a", "-9223372036854775809")], false),
            ("a in ()", &[("a", "")], true),
            ("a in ()", &[], false),
            ("a notin ()", &[("a", "")], false),
            ("a notin ()", &[], true),
            ("a in (,x)", &[("a", "")], true),
            ("a in (x,)", &[("a", "")], true),
            ("a in (x,,y)", &[("a", "")], true),
            ("a in (x,,)", &[("a", "x")], true),
            ("a in (x,y)", &[("a", "")], false),
            ("a,\0b", &[("a", ""), ("b", "")], true),
            ("a,\0b", &[("a", "")], false),
            ("a=\0b", &[("a", "b")], true),
            ("a=1 \0,b", &[("a", "1")], true),
            ("a\0\0,b", &[("a", "")], true),
            ("\0a", &[], true),
        ];
        for &(input, labels, expected) in cases {
            assert_eq!(
                label(input).matches(&map(labels)),
                expected,
                "{input:?} on {labels:?}"
            );
        }
    }

    #[test]
    fn label_selectors_display_in_canonical_form() {
        let cases = [
            ("", ""),
            ("  ", ""),
            ("b=2, a==1", "a=1,b=2"),
            ("a in (c,b,c)", "a in (b,c)"),
            ("a notin(x)", "a notin (x)"),
            ("! a", "!a"),
            ("a=1,a=1", "a=1"),
            ("a==", "a="),
            ("a!=1", "a!=1"),
            ("z=1, !y, x", "x,!y,z=1"),
            ("a in (1), a, !a, a=1", "a,!a,a=1,a in (1)"),
            ("a>007", "a>7"),
            ("a < 0", "a<0"),
            ("a<1,a>1", "a>1,a<1"),
            ("a in ()", "a in ()"),
            ("a notin ( , )", "a notin ()"),
            ("a in (b,,c,)", "a in (,b,c)"),
            ("a=1 \0 junk(", "a=1"),
        ];
        for (input, canonical) in cases {
            let selector = label(input);
            assert_eq!(selector.to_string(), canonical, "{input:?}");
            assert_eq!(label(canonical), selector, "{input:?}");
        }
        assert!(label(" ").is_empty());
        assert!(!label("a").is_empty());
        assert_eq!(label(""), LabelSelector::default());
        assert_eq!(label("a=1,b=2"), label("b=2,a=1,b=2"));
    }

    #[test]
    fn every_label_selector_error_has_a_reason_and_position() {
        let long_key = "k".repeat(64);
        let long_key_selector = format!("{long_key}=1");
        let long_value = "v".repeat(64);
        let long_value_selector = format!("a!={long_value}");
        let cases = [
            ("a in (b", 7, Reason::ExpectedCommaOrClose),
            ("a in (b c)", 8, Reason::ExpectedCommaOrClose),
            ("a in (b=c)", 7, Reason::ExpectedCommaOrClose),
            ("a in", 4, Reason::ExpectedOpenParen),
            ("a notin b", 8, Reason::ExpectedOpenParen),
            ("a in (", 6, Reason::ExpectedValue),
            ("a in (=", 6, Reason::ExpectedValue),
            ("a in (b,", 8, Reason::ExpectedValue),
            ("a in (b,=)", 8, Reason::ExpectedValue),
            ("a in (!b)", 6, Reason::ExpectedValue),
            ("a ~ b", 2, Reason::UnknownOperator),
            ("a b", 2, Reason::UnknownOperator),
            ("a(b)", 1, Reason::UnknownOperator),
            ("a ! b", 2, Reason::UnknownOperator),
            ("a in (b \0)", 8, Reason::ExpectedCommaOrClose),
            ("a>", 2, Reason::NotAnInteger),
            ("a<,b", 2, Reason::NotAnInteger),
            ("a > b", 4, Reason::NotAnInteger),
            ("a>1.5", 2, Reason::NotAnInteger),
            ("a>9223372036854775808", 2, Reason::NotAnInteger),
            ("a>=1", 2, Reason::ExpectedValue),
            ("a>>1", 2, Reason::ExpectedValue),
            ("a<=1", 2, Reason::ExpectedValue),
            ("a=1,\0", 3, Reason::TrailingComma),
            ("a,\0\0b", 1, Reason::TrailingComma),
            ("a\0b", 2, Reason::UnknownOperator),
            ("a=(b)", 2, Reason::ExpectedValue),
            ("a = = b", 4, Reason::ExpectedValue),
            ("a=b c", 4, Reason::ExpectedCommaOrEnd),
            ("!a=b", 2, Reason::ExpectedCommaOrEnd),
            ("a in (b) c", 9, Reason::ExpectedCommaOrEnd),
            ("a=b,", 3, Reason::TrailingComma),
            ("a=b , \t", 4, Reason::TrailingComma),
            (",a", 0, Reason::ExpectedKey),
            (",", 0, Reason::ExpectedKey),
            ("a,,b", 2, Reason::ExpectedKey),
            ("=b", 0, Reason::ExpectedKey),
            ("!", 1, Reason::ExpectedKey),
            ("! ,a", 2, Reason::ExpectedKey),
            ("!=a", 0, Reason::ExpectedKey),
            ("(a)", 0, Reason::ExpectedKey),
            ("a%b=c", 0, label_key_error("a%b", Problem::NameChars)),
            ("x, !-a", 4, label_key_error("-a", Problem::NameEdge)),
            (
                "Example.com/a",
                0,
                label_key_error("Example.com/a", Problem::PrefixChars),
            ),
            ("/a", 0, label_key_error("/a", Problem::PrefixEmpty)),
            ("a/b/c", 0, label_key_error("a/b/c", Problem::KeySlashes)),
            ("a/=b", 0, label_key_error("a/", Problem::NameEmpty)),
            (
                &long_key_selector,
                0,
                label_key_error(&long_key, Problem::NameTooLong),
            ),
            ("é=1", 0, label_key_error("é", Problem::NameChars)),
            (
                "a=b%c",
                2,
                label_value_error("a", "b%c", Problem::ValueChars),
            ),
            (
                "a in (x, -y)",
                9,
                label_value_error("a", "-y", Problem::ValueEdge),
            ),
            ("a=é", 2, label_value_error("a", "é", Problem::ValueChars)),
            (
                "a in (é",
                6,
                label_value_error("a", "é", Problem::ValueChars),
            ),
            (
                &long_value_selector,
                3,
                label_value_error("a", &long_value, Problem::ValueTooLong),
            ),
            ("a>-1", 2, label_value_error("a", "-1", Problem::ValueEdge)),
            ("a<+1", 2, label_value_error("a", "+1", Problem::ValueChars)),
        ];
        for (input, position, reason) in cases {
            let error = input.parse::<LabelSelector>().unwrap_err();
            let expected = SelectorError::new(input, position, reason);
            assert_eq!(error, expected, "{input:?}: {error}");
        }
    }

    /// A label requirement as a test generates it: sets unsorted, possibly repeated and with
    /// elements left out, `==` or `=` chosen at random, and bounds with leading zeros, so
    /// parsing has something to normalize.
    #[derive(Debug, Clone)]
    enum Model {
        Exists(String),
        DoesNotExist(String),
        Equals(String, String, bool),
        NotEquals(String, String),
        In(String, Vec<String>),
        NotIn(String, Vec<String>),
        GreaterThan(String, String),
        LessThan(String, String),
    }

    impl Model {
        /// Renders with `pad` wherever the grammar allows whitespace.
        fn render(&self, pad: &str) -> String {
            let set = |values: &[String]| values.join(&format!("{pad},{pad}"));
            match self {
                Model::Exists(k) => format!("{pad}{k}{pad}"),
                Model::DoesNotExist(k) => format!("{pad}!{pad}{k}{pad}"),
                Model::Equals(k, v, true) => format!("{pad}{k}{pad}=={pad}{v}{pad}"),
                Model::Equals(k, v, false) => format!("{pad}{k}{pad}={pad}{v}{pad}"),
                Model::NotEquals(k, v) => format!("{pad}{k}{pad}!={pad}{v}{pad}"),
                Model::In(k, vs) => format!("{pad}{k} {pad}in{pad}({pad}{}{pad}){pad}", set(vs)),
                Model::NotIn(k, vs) => {
                    format!("{pad}{k} {pad}notin{pad}({pad}{}{pad}){pad}", set(vs))
                }
                Model::GreaterThan(k, bound) => format!("{pad}{k}{pad}>{pad}{bound}{pad}"),
                Model::LessThan(k, bound) => format!("{pad}{k}{pad}<{pad}{bound}{pad}"),
            }
        }

        /// The meaning of the requirement, written as a scan over the map instead of a lookup.
        fn naive_matches(&self, labels: &BTreeMap<String, String>) -> bool {
            let has = |k: &str, v: &str| labels.iter().any(|(lk, lv)| lk == k && lv == v);
            let present = |k: &str| labels.keys().any(|lk| lk == k);
            let compare = |k: &str, bound: &str| -> Option<std::cmp::Ordering> {
                let value: i128 = labels.get(k)?.parse().ok()?;
                let bound: i128 = bound.parse().ok()?;
                // Values beyond 64 bits are not integers to Kubernetes.
                i64::try_from(value).ok()?;
                Some(value.cmp(&bound))
            };
            match self {
                Model::Exists(k) => present(k),
                Model::DoesNotExist(k) => !present(k),
                Model::Equals(k, v, _) => has(k, v),
                Model::NotEquals(k, v) => !has(k, v),
                Model::In(k, vs) => vs.iter().any(|v| has(k, v)),
                Model::NotIn(k, vs) => !vs.iter().any(|v| has(k, v)),
                Model::GreaterThan(k, bound) => compare(k, bound).is_some_and(|o| o.is_gt()),
                Model::LessThan(k, bound) => compare(k, bound).is_some_and(|o| o.is_lt()),
            }
        }
    }

    fn model(
        key: impl Strategy<Value = String> + Clone,
        value: impl Strategy<Value = String> + Clone,
        set_value: impl Strategy<Value = String> + Clone,
    ) -> impl Strategy<Value = Model> {
        let set = proptest::collection::vec(set_value, 1..4);
        prop_oneof![
            key.clone().prop_map(Model::Exists),
            key.clone().prop_map(Model::DoesNotExist),
            (key.clone(), value.clone(), any::<bool>())
                .prop_map(|(k, v, d)| Model::Equals(k, v, d)),
            (key.clone(), value).prop_map(|(k, v)| Model::NotEquals(k, v)),
            (key.clone(), set.clone()).prop_map(|(k, vs)| Model::In(k, vs)),
            (key.clone(), set).prop_map(|(k, vs)| Model::NotIn(k, vs)),
            (key.clone(), bound()).prop_map(|(k, b)| Model::GreaterThan(k, b)),
            (key, bound()).prop_map(|(k, b)| Model::LessThan(k, b)),
        ]
    }

    /// A bound of `>` or `<` as a client may write it, leading zeros included.
    fn bound() -> impl Strategy<Value = String> {
        prop_oneof![
            "0{0,2}[0-9]{1,3}",
            Just(i64::MAX.to_string()),
            Just("0".repeat(40)),
        ]
    }

    fn any_label_key() -> impl Strategy<Value = String> + Clone {
        let name = "[A-Za-z0-9]([A-Za-z0-9_.-]{0,6}[A-Za-z0-9])?";
        let prefix = r"[a-z0-9]([a-z0-9-]{0,4}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,4}[a-z0-9])?){0,2}";
        prop_oneof![
            name,
            (prefix, name).prop_map(|(p, n)| format!("{p}/{n}")),
            Just("in".to_owned()),
            Just("notin".to_owned()),
        ]
    }

    fn any_nonempty_label_value() -> impl Strategy<Value = String> + Clone {
        prop_oneof![
            "[A-Za-z0-9]([A-Za-z0-9_.-]{0,6}[A-Za-z0-9])?",
            Just("in".to_owned()),
            Just("notin".to_owned()),
        ]
    }

    fn any_label_value() -> impl Strategy<Value = String> + Clone {
        prop_oneof![Just(String::new()), any_nonempty_label_value()]
    }

    /// Values a selector may hold: valid label values, some of them integers.
    fn few_selector_values() -> impl Strategy<Value = String> + Clone {
        prop_oneof![Just(""), Just("x"), Just("in"), Just("7"), Just("0012")]
            .prop_map(str::to_owned)
    }

    /// Values to match against: words, the empty value and integers as stored labels hold
    /// them or as a map handed to `matches` may, signs and out-of-range numbers included.
    fn few_values() -> impl Strategy<Value = String> + Clone {
        prop_oneof![
            Just("x"),
            Just("in"),
            Just(""),
            Just("7"),
            Just("-7"),
            Just("+12"),
            Just("0012"),
            Just("99999999999999999999"),
        ]
        .prop_map(str::to_owned)
    }

    fn few_keys() -> impl Strategy<Value = String> + Clone {
        prop_oneof![Just("a"), Just("b"), Just("in")].prop_map(str::to_owned)
    }

    fn render_labels(models: &[Model], pad: &str) -> String {
        let parts: Vec<String> = models.iter().map(|m| m.render(pad)).collect();
        parts.join(",")
    }

    proptest! {
        #[test]
        fn generated_label_selectors_round_trip_through_display(
            models in proptest::collection::vec(
                model(any_label_key(), any_label_value(), any_label_value()),
                0..5,
            ),
            pad in "[ \t\r\n]{0,2}",
        ) {
            let selector = label(&render_labels(&models, &pad));
            let shown = selector.to_string();
            prop_assert_eq!(label(&shown), selector.clone());
            prop_assert_eq!(label(&shown).to_string(), shown);
            prop_assert_eq!(selector.is_empty(), models.is_empty());
        }

        #[test]
        fn label_matching_agrees_with_a_naive_evaluation(
            models in proptest::collection::vec(
                model(few_keys(), few_selector_values(), few_selector_values()),
                0..4,
            ),
            labels in proptest::collection::btree_map(few_keys(), few_values(), 0..4),
        ) {
            let selector = label(&render_labels(&models, " "));
            let expected = models.iter().all(|m| m.naive_matches(&labels));
            prop_assert_eq!(selector.matches(&labels), expected);
        }
    }
}
