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
//! requirement := key ("=" | "==" | "!=") [value]     equality (an omitted value is "")
//!              | key ("in" | "notin") "(" value ("," value)* ")"
//!              | key                                 the key exists
//!              | "!" key                             the key does not exist
//! ```
//!
//! Whitespace (space, tab, CR, LF) may surround every token; it is required only between a
//! key and `in`/`notin`. Keys and values must themselves be valid label keys and values (see
//! [`validate_labels`]). `=`, `in` and a bare key need the key to be present; `!=`, `notin` and
//! `!key` match when it is absent. A map must meet every requirement, and an empty selector
//! matches everything.
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
//! # Where this differs from Kubernetes
//!
//! - `k in ()` is an error, and so is an empty element such as `k in (,a)` or `k in (a,)`,
//!   which Kubernetes reads as the empty value; select the empty value with `k=` instead.
//! - `in` and `notin` are keywords only where an operator is expected, so `in=notin` is a valid
//!   selector; Kubernetes rejects them as keys and values.
//! - The numeric comparisons `k>1` and `k<1` are not supported.
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

use std::collections::{BTreeMap, BTreeSet};
use std::error::Error;
use std::fmt;
use std::str::FromStr;

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

fn check_label_key(key: &str) -> Result<(), Problem> {
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

fn check_label_value(value: &str) -> Result<(), Problem> {
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

/// An invalid label key or value, or an invalid field name or value.
///
/// Returned by [`validate_labels`] and [`validate_fields`], and carried inside the
/// [`SelectorError`] of a selector whose keys or values are invalid.
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
enum Culprit {
    LabelKey,
    LabelValue(String),
    FieldName,
    FieldValue(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Problem {
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
    fn new(key: &str, culprit: Culprit, problem: Problem) -> Self {
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
enum Reason {
    ExpectedKey,
    UnknownOperator,
    ComparisonUnsupported,
    ExpectedValue,
    ExpectedOpenParen,
    EmptySet,
    EmptySetValue,
    ExpectedCommaOrClose,
    ExpectedCommaOrEnd,
    TrailingComma,
    ExpectedFieldName,
    UnknownFieldOperator,
    InvalidEscape,
    UnescapedEquals,
    Invalid(LabelError),
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let message = match self {
            Reason::ExpectedKey => "expected a label key",
            Reason::UnknownOperator => {
                "unknown operator; expected '=', '==', '!=', 'in' or 'notin'"
            }
            Reason::ComparisonUnsupported => "'<' and '>' comparisons are not supported",
            Reason::ExpectedValue => "expected a value",
            Reason::ExpectedOpenParen => "expected '(' and a set of values",
            Reason::EmptySet => "a value set must not be empty",
            Reason::EmptySetValue => "expected a value; a set cannot hold the empty value",
            Reason::ExpectedCommaOrClose => "expected ',' or ')'",
            Reason::ExpectedCommaOrEnd => "expected ',' or the end of the selector",
            Reason::TrailingComma => "trailing ','",
            Reason::ExpectedFieldName => "expected a field name",
            Reason::UnknownFieldOperator => {
                "missing or unknown operator; expected '=', '==' or '!='"
            }
            Reason::InvalidEscape => r"invalid escape; only '\\', '\,' and '\=' are allowed",
            Reason::UnescapedEquals => r"unescaped '=' in a value; write it as '\='",
            Reason::Invalid(error) => return fmt::Display::fmt(error, f),
        };
        f.write_str(message)
    }
}

impl SelectorError {
    fn new(input: &str, position: usize, reason: Reason) -> Self {
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
    /// boundary, and equal to the input's length when it ended too early.
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

/// A parsed label selector: requirements on a label map that must all hold.
///
/// See the [module documentation](self) for the syntax. Requirements are kept sorted by key,
/// then operator, then values, with exact duplicates removed, so equality ignores their order
/// and repetition; it is otherwise structural (`a=1` and `a in (1)` select the same maps but
/// are not equal). [`Display`](fmt::Display) prints that canonical order, with `=` for `==`,
/// sets sorted and deduplicated, and one space around `in` and `notin`; the output parses back
/// to an equal selector. The default selector is empty and matches everything.
///
/// ```
/// use std::collections::BTreeMap;
/// use revkv::selector::LabelSelector;
///
/// let selector: LabelSelector = "tier in (web,api,web), !canary".parse()?;
/// assert_eq!(selector.to_string(), "!canary,tier in (api,web)");
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
        match &self.op {
            Op::Exists => value.is_some(),
            Op::DoesNotExist => value.is_none(),
            Op::Equals(wanted) => value == Some(wanted),
            Op::NotEquals(unwanted) => value != Some(unwanted),
            Op::In(set) => value.is_some_and(|v| set.contains(v)),
            Op::NotIn(set) => !value.is_some_and(|v| set.contains(v)),
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
        for (i, requirement) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{requirement}")?;
        }
        Ok(())
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
            Op::In(set) => write!(f, "{key} in ({})", Joined(set)),
            Op::NotIn(set) => write!(f, "{key} notin ({})", Joined(set)),
        }
    }
}

/// Displays a value set's elements separated by commas.
struct Joined<'a>(&'a BTreeSet<String>);

impl fmt::Display for Joined<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, value) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(value)?;
        }
        Ok(())
    }
}

/// Sorts and deduplicates requirements, the canonical form equality and display rely on.
fn canonical<T: Ord>(mut requirements: Vec<T>) -> Vec<T> {
    requirements.sort();
    requirements.dedup();
    requirements
}

/// Kubernetes' selector whitespace; anything else, Unicode spaces included, is part of a word.
fn is_whitespace(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token<'a> {
    /// A run of anything but whitespace and the symbols below: a key, a value, `in`, `notin`.
    Word(&'a str),
    Equals,
    DoubleEquals,
    NotEquals,
    Bang,
    Open,
    Close,
    Comma,
    /// `<` or `>`, lexed as symbols so `k>1` reports an operator error rather than a bad key.
    Comparison,
    End,
}

#[derive(Debug, Clone, Copy)]
struct Lexeme<'a> {
    token: Token<'a>,
    position: usize,
}

/// Splits a label selector into tokens, ending with [`Token::End`] at the input's length.
///
/// Every token boundary is next to an ASCII byte or at an end of the input, so slicing there
/// never splits a multi-byte character.
fn tokenize(input: &str) -> Vec<Lexeme<'_>> {
    let bytes = input.as_bytes();
    let mut lexemes = Vec::new();
    let mut position = 0;
    while let Some(&byte) = bytes.get(position) {
        let followed_by_equals = bytes.get(position + 1) == Some(&b'=');
        let (token, len) = match byte {
            b if is_whitespace(b) => {
                position += 1;
                continue;
            }
            b'=' if followed_by_equals => (Token::DoubleEquals, 2),
            b'=' => (Token::Equals, 1),
            b'!' if followed_by_equals => (Token::NotEquals, 2),
            b'!' => (Token::Bang, 1),
            b'(' => (Token::Open, 1),
            b')' => (Token::Close, 1),
            b',' => (Token::Comma, 1),
            b'<' | b'>' => (Token::Comparison, 1),
            _ => {
                let rest = &bytes[position..];
                let len = rest
                    .iter()
                    .position(|&b| is_whitespace(b) || b"=!(),<>".contains(&b))
                    .unwrap_or(rest.len());
                (Token::Word(&input[position..position + len]), len)
            }
        };
        lexemes.push(Lexeme { token, position });
        position += len;
    }
    lexemes.push(Lexeme {
        token: Token::End,
        position: input.len(),
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
        Ok(LabelSelector {
            requirements: canonical(requirements),
        })
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

    /// Parses what follows a key; nothing at all (a `,` or the end) means "exists".
    fn operation(&mut self, key: &str) -> Result<Op, SelectorError> {
        let lexeme = self.peek();
        let op = match lexeme.token {
            Token::Comma | Token::End => return Ok(Op::Exists),
            Token::Equals | Token::DoubleEquals => {
                self.advance();
                Op::Equals(self.exact_value(key)?)
            }
            Token::NotEquals => {
                self.advance();
                Op::NotEquals(self.exact_value(key)?)
            }
            Token::Word("in") => {
                self.advance();
                Op::In(self.value_set(key)?)
            }
            Token::Word("notin") => {
                self.advance();
                Op::NotIn(self.value_set(key)?)
            }
            Token::Comparison => {
                return Err(self.error(lexeme.position, Reason::ComparisonUnsupported))
            }
            _ => return Err(self.error(lexeme.position, Reason::UnknownOperator)),
        };
        Ok(op)
    }

    /// The value after `=`, `==` or `!=`; as in Kubernetes, a missing one is the empty value.
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

    fn value_set(&mut self, key: &str) -> Result<BTreeSet<String>, SelectorError> {
        let open = self.advance();
        if open.token != Token::Open {
            return Err(self.error(open.position, Reason::ExpectedOpenParen));
        }
        let mut values = BTreeSet::new();
        loop {
            let lexeme = self.advance();
            let Token::Word(value) = lexeme.token else {
                let reason = match lexeme.token {
                    Token::Close if values.is_empty() => Reason::EmptySet,
                    Token::Comma | Token::Close => Reason::EmptySetValue,
                    _ => Reason::ExpectedValue,
                };
                return Err(self.error(lexeme.position, reason));
            };
            values.insert(self.checked_value(key, value, lexeme.position)?);
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

/// A parsed field selector: equality requirements on a field map that must all hold.
///
/// See the [module documentation](self) for the syntax. Like [`LabelSelector`], requirements
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
/// tokens, so this reads characters directly instead of using [`tokenize`].
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
    use super::*;
    use proptest::prelude::*;

    /// A selector input, the entries of a map, and whether the selector matches the map.
    type MatchCase<'a> = (&'a str, &'a [(&'a str, &'a str)], bool);

    fn map(entries: &[(&str, &str)]) -> BTreeMap<String, String> {
        entries
            .iter()
            .map(|&(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    fn label(s: &str) -> LabelSelector {
        s.parse()
            .unwrap_or_else(|e| panic!("{s:?} should parse: {e}"))
    }

    fn field(s: &str) -> FieldSelector {
        s.parse()
            .unwrap_or_else(|e| panic!("{s:?} should parse: {e}"))
    }

    fn label_key_error(key: &str, problem: Problem) -> Reason {
        Reason::Invalid(LabelError::new(key, Culprit::LabelKey, problem))
    }

    fn label_value_error(key: &str, value: &str, problem: Problem) -> Reason {
        let culprit = Culprit::LabelValue(value.to_owned());
        Reason::Invalid(LabelError::new(key, culprit, problem))
    }

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
            ("a in ()", 6, Reason::EmptySet),
            ("a in (,b)", 6, Reason::EmptySetValue),
            ("a in (b,)", 8, Reason::EmptySetValue),
            ("a in (b,,c)", 8, Reason::EmptySetValue),
            ("a ~ b", 2, Reason::UnknownOperator),
            ("a b", 2, Reason::UnknownOperator),
            ("a(b)", 1, Reason::UnknownOperator),
            ("a ! b", 2, Reason::UnknownOperator),
            ("a>1", 1, Reason::ComparisonUnsupported),
            ("a < 1", 2, Reason::ComparisonUnsupported),
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
        ];
        for (input, position, reason) in cases {
            let error = input.parse::<LabelSelector>().unwrap_err();
            let expected = SelectorError::new(input, position, reason);
            assert_eq!(error, expected, "{input:?}: {error}");
        }
    }

    #[test]
    fn selector_errors_read_as_lowercase_sentences() {
        let cases = [
            (
                "a in (b",
                r#"invalid selector "a in (b": expected ',' or ')' at byte 7"#,
            ),
            (
                "a b=c",
                r#"invalid selector "a b=c": unknown operator; expected '=', '==', '!=', 'in' or 'notin' at byte 2"#,
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

    /// A label requirement as a test generates it: sets unsorted and possibly repeated, and
    /// `==` or `=` chosen at random, so parsing has something to normalize.
    #[derive(Debug, Clone)]
    enum Model {
        Exists(String),
        DoesNotExist(String),
        Equals(String, String, bool),
        NotEquals(String, String),
        In(String, Vec<String>),
        NotIn(String, Vec<String>),
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
            }
        }

        /// The meaning of the requirement, written as a scan over the map instead of a lookup.
        fn naive_matches(&self, labels: &BTreeMap<String, String>) -> bool {
            let has = |k: &str, v: &str| labels.iter().any(|(lk, lv)| lk == k && lv == v);
            let present = |k: &str| labels.keys().any(|lk| lk == k);
            match self {
                Model::Exists(k) => present(k),
                Model::DoesNotExist(k) => !present(k),
                Model::Equals(k, v, _) => has(k, v),
                Model::NotEquals(k, v) => !has(k, v),
                Model::In(k, vs) => vs.iter().any(|v| has(k, v)),
                Model::NotIn(k, vs) => !vs.iter().any(|v| has(k, v)),
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
            (key, set).prop_map(|(k, vs)| Model::NotIn(k, vs)),
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

    fn few_keys() -> impl Strategy<Value = String> + Clone {
        prop_oneof![Just("a"), Just("b"), Just("in")].prop_map(str::to_owned)
    }

    fn few_values() -> impl Strategy<Value = String> + Clone {
        prop_oneof![Just("x"), Just("y"), Just("in")].prop_map(str::to_owned)
    }

    fn render_labels(models: &[Model], pad: &str) -> String {
        let parts: Vec<String> = models.iter().map(|m| m.render(pad)).collect();
        parts.join(",")
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

    fn assert_error_position_is_sound(input: &str, error: &SelectorError) {
        assert_eq!(error.input(), input);
        assert!(error.position() <= input.len());
        assert!(input.is_char_boundary(error.position()));
        assert!(!error.to_string().is_empty());
    }

    proptest! {
        #[test]
        fn arbitrary_strings_never_panic_either_parser(
            input in prop_oneof![any::<String>(), r"[ab =!(),<>\\é\t]{0,16}|(in|notin|[a=!(), \\]){0,10}"],
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

        #[test]
        fn generated_label_selectors_round_trip_through_display(
            models in proptest::collection::vec(
                model(any_label_key(), any_label_value(), any_nonempty_label_value()),
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
                model(few_keys(), prop_oneof![Just(String::new()), few_values()], few_values()),
                0..4,
            ),
            labels in proptest::collection::btree_map(
                few_keys(),
                prop_oneof![Just(String::new()), few_values()],
                0..4,
            ),
        ) {
            let selector = label(&render_labels(&models, " "));
            let expected = models.iter().all(|m| m.naive_matches(&labels));
            prop_assert_eq!(selector.matches(&labels), expected);
        }

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
