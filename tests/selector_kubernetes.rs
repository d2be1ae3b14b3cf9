//! Kubernetes' own selector tests, ported table by table from apimachinery's
//! `pkg/labels/selector_test.go` and `pkg/fields/selector_test.go`: every row keeps its input
//! and its expected outcome, checked through revkv's public API. Upstream tests a lexer, a
//! term splitter and requirement constructors directly; revkv exposes only parsing, matching
//! and printing, so those rows are checked through what parsing makes of the same input.
//! Where revkv prints a selector, the canonical form it prints is checked too.
//!
//! Not ported, for want of an equivalent: the labels tests of `Set` conversions
//! (`TestSetMatches`, `TestNilMapIsValid`, `TestSetIsEmpty`, `TestValidatedSelectorFromSet`,
//! `TestSetSelectorString`), of building selectors in code (`TestAdd`, `TestRequirementEqual`,
//! `TestSafeSort`), of `RequiresExactMatch` and of `Nothing()` (`TestMatchesNothing`), and the
//! fields tests of `Set` conversions, `RequiresExactMatch` and transforms other than the
//! identity (`TestSetMatches`, `TestNilMapIsValid`, `TestSetIsEmpty`,
//! `TestRequiresExactMatch`, most of `TestTransform`).

use std::collections::BTreeMap;
use std::fmt::{Debug, Display};
use std::str::FromStr;

use revkv::selector::{FieldSelector, LabelSelector};

fn map(entries: &[(&str, &str)]) -> BTreeMap<String, String> {
    entries
        .iter()
        .map(|&(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn parse<S: FromStr<Err: Display>>(input: &str) -> S {
    input
        .parse()
        .unwrap_or_else(|error| panic!("{input:?} should parse: {error}"))
}

fn label(input: &str) -> LabelSelector {
    parse(input)
}

fn field(input: &str) -> FieldSelector {
    parse(input)
}

fn assert_rejected<S: FromStr>(inputs: &[&str]) {
    for input in inputs {
        assert!(input.parse::<S>().is_err(), "{input:?}");
    }
}

/// `TestDeterministicParse`, alike for labels and fields.
fn assert_deterministic<S: FromStr<Err: Display> + Display + PartialEq + Debug>() {
    let (one, other): (S, S) = (parse("x=a,a=x"), parse("a=x,x=a"));
    assert_eq!(one.to_string(), other.to_string());
    assert_eq!(one, other);
}

/// What a label selector must parse to: its canonical printed form, or an error at a byte
/// offset whose reason contains the given text.
type LabelOutcome = Result<&'static str, (usize, &'static str)>;

fn assert_label_outcomes(rows: &[(&str, LabelOutcome)]) {
    for &(input, expected) in rows {
        match (input.parse::<LabelSelector>(), expected) {
            (Ok(selector), Ok(printed)) => assert_eq!(selector.to_string(), printed, "{input:?}"),
            (Err(error), Err((position, reason))) => {
                assert_eq!(error.position(), position, "{input:?}: {error}");
                assert!(error.reason().contains(reason), "{input:?}: {error}");
            }
            (got, expected) => panic!("{input:?}: got {got:?}, expected {expected:?}"),
        }
    }
}

/// A selector, the map it is tested against, and whether it must match.
type MatchRow<'a> = (&'a str, &'a [(&'a str, &'a str)], bool);

fn assert_matches<S: FromStr<Err: Display>>(
    rows: &[MatchRow],
    matches: impl Fn(&S, &BTreeMap<String, String>) -> bool,
) {
    for &(input, entries, expected) in rows {
        let matched = matches(&parse(input), &map(entries));
        assert_eq!(matched, expected, "{input:?} on {entries:?}");
    }
}

/// Labels `TestSelectorParse`: good selectors print back as written without their spaces.
#[test]
fn labels_selector_parse() {
    let good = [
        "x=a,y=b,z=c",
        "",
        "x!=a,y=b",
        "x=",
        "x= ",
        "x=,z= ",
        "x= ,z= ",
        "!x",
        "x>1",
        "x>1,z<5",
    ];
    for input in good {
        assert_eq!(
            label(input).to_string(),
            input.replace(' ', ""),
            "{input:?}"
        );
    }
    assert_rejected::<LabelSelector>(&["x=a||y=b", "x==a==b", "!x=a", "x<a"]);
}

/// Labels and fields `TestDeterministicParse`.
#[test]
fn deterministic_parse() {
    assert_deterministic::<LabelSelector>();
    assert_deterministic::<FieldSelector>();
}

/// Labels and fields `TestEverything`, with the default selector as `Everything()`.
#[test]
fn everything() {
    let labels = LabelSelector::default();
    assert!(labels.matches(&map(&[("x", "y")])) && labels.is_empty());
    let fields = FieldSelector::default();
    assert!(fields.matches(&map(&[("x", "y")])) && fields.is_empty());
}

/// Labels `TestSelectorMatches`.
#[test]
fn labels_selector_matches() {
    let labelset: &[(&str, &str)] = &[("foo", "bar"), ("baz", "blah")];
    assert_matches(
        &[
            ("", &[("x", "y")], true),
            ("x=y", &[("x", "y")], true),
            ("x=y,z=w", &[("x", "y"), ("z", "w")], true),
            ("x!=y,z!=w", &[("x", "z"), ("z", "a")], true),
            ("notin=in", &[("notin", "in")], true),
            ("x", &[("x", "z")], true),
            ("!x", &[("y", "z")], true),
            ("x>1", &[("x", "2")], true),
            ("x<1", &[("x", "0")], true),
            ("x=z", &[], false),
            ("x=y", &[("x", "z")], false),
            ("x=y,z=w", &[("x", "w"), ("z", "w")], false),
            ("x!=y,z!=w", &[("x", "z"), ("z", "w")], false),
            ("x", &[("y", "z")], false),
            ("!x", &[("x", "z")], false),
            ("x>1", &[("x", "0")], false),
            ("x<1", &[("x", "2")], false),
            ("foo=bar", labelset, true),
            ("baz=blah", labelset, true),
            ("foo=bar,baz=blah", labelset, true),
            ("foo=blah", labelset, false),
            ("baz=bar", labelset, false),
            ("foo=bar,foobar=bar,baz=blah", labelset, false),
        ],
        LabelSelector::matches,
    );
}

/// Labels `TestLexer`. The lexer is internal, so each token is parsed as a whole selector:
/// `in` and `notin` are keys there, a symbol is an error where a key was expected (after `!`
/// for `!`, which shows `!=` is one token), and `~` and `||` are words, so invalid keys.
#[test]
fn labels_lexer() {
    let no_key = "expected a label key";
    assert_label_outcomes(&[
        ("", Ok("")),
        (",", Err((0, no_key))),
        ("notin", Ok("notin")),
        ("in", Ok("in")),
        ("=", Err((0, no_key))),
        ("==", Err((0, no_key))),
        (">", Err((0, no_key))),
        ("<", Err((0, no_key))),
        ("!", Err((1, no_key))),
        ("!=", Err((0, no_key))),
        ("(", Err((0, no_key))),
        (")", Err((0, no_key))),
        ("~", Err((0, r#"label key "~""#))),
        ("||", Err((0, r#"label key "||""#))),
    ]);
}

/// Labels `TestLexerSequence`, whose inputs `TestParserLookahead` repeats: the token
/// sequences, checked as what parsing them gives.
#[test]
fn labels_lexer_sequence() {
    let no_key = "expected a label key";
    assert_label_outcomes(&[
        ("key in ( value )", Ok("key in (value)")),
        ("key notin ( value )", Ok("key notin (value)")),
        ("key in ( value1, value2 )", Ok("key in (value1,value2)")),
        ("key", Ok("key")),
        ("!key", Ok("!key")),
        ("()", Err((0, no_key))),
        ("x in (),y", Ok("x in (),y")),
        ("== != (), = notin", Err((0, no_key))),
        ("key>2", Ok("key>2")),
        ("key<1", Ok("key<1")),
    ]);
}

/// Labels `TestParseOperator`: each token where an operator is expected, after the key `x`
/// and followed by what the operator takes.
#[test]
fn labels_parse_operator() {
    let unknown = "unknown operator";
    assert_label_outcomes(&[
        ("x in (1)", Ok("x in (1)")),
        ("x = 1", Ok("x=1")),
        ("x == 1", Ok("x=1")),
        ("x > 1", Ok("x>1")),
        ("x < 1", Ok("x<1")),
        ("x notin (1)", Ok("x notin (1)")),
        ("x != 1", Ok("x!=1")),
        ("x ! 1", Err((2, unknown))),
        ("x exists 1", Err((2, unknown))),
        ("x ( 1", Err((2, unknown))),
    ]);
}

/// Labels `TestRequirementConstructor`, written as the selector that asks for each
/// requirement. Not expressible, since parsing never builds them: an `in` or `notin` set with
/// no values (`x1`, `x2`: `x in ()` holds the empty value), `=` with two values (`x5`) and
/// `exists` with a value (`x8`).
#[test]
fn labels_requirement_constructor() {
    // A key and a value of 254 characters, both too long.
    let too_long_key = "a".repeat(254);
    let too_long_value = format!("x16={}", "a".repeat(254));
    let rows: [(&str, bool); 16] = [
        ("x3 in (foo)", true),
        ("x4 notin (foo)", true),
        ("x6", true),
        ("!x7", true),
        ("x9 in (bar)", true),
        ("x10 in (bar)", true),
        // Older releases name the same two rows by their keys.
        ("1foo in (bar)", true),
        ("1234 in (bar)", true),
        ("x11>1", true),
        ("x12<6", true),
        // `x13` has no value; a selector that leaves it out gives the empty value.
        ("x13>", false),
        ("x14>bar", false),
        ("x15<bar", false),
        (too_long_key.as_str(), false),
        (too_long_value.as_str(), false),
        // `x18`: an operator Kubernetes does not know.
        ("x18 unsupportedOp (a)", false),
    ];
    for (input, valid) in rows {
        assert_eq!(input.parse::<LabelSelector>().is_ok(), valid, "{input:?}");
    }
    // `x17` wants the value "a b"; a space ends a value, so the selector fails on `b` instead.
    assert!("x17=a b".parse::<LabelSelector>().is_err());
}

/// Labels `TestToString`, with each selector parsed from its upstream string. Not expressible:
/// the row with an empty, invalid requirement. Where revkv's canonical form differs from
/// upstream's `String`, the row says so.
#[test]
fn labels_to_string() {
    let rows = [
        (
            "x in (abc,def),y notin (jkl),z",
            "x in (abc,def),y notin (jkl),z",
        ),
        ("x notin (abc,def),y!=jkl,!z", "x notin (abc,def),y!=jkl,!z"),
        (
            "x notin (abc),y in (jkl,mno),z notin ()",
            "x notin (abc),y in (jkl,mno),z notin ()",
        ),
        // Upstream keeps `==` and the input order on one key: "x=abc,y==jkl,z!=a,z".
        ("x=abc,y==jkl,z!=a,z", "x=abc,y=jkl,z,z!=a"),
        ("x>2,y<8,z", "x>2,y<8,z"),
    ];
    for (input, printed) in rows {
        assert_eq!(label(input).to_string(), printed, "{input:?}");
    }
}

/// Labels `TestRequirementSelectorMatching`, with each selector parsed from the requirements
/// upstream builds. Not expressible: the row with an empty, invalid requirement.
#[test]
fn labels_requirement_selector_matching() {
    assert_matches(
        &[
            (
                "x in (foo),y notin (alpha)",
                &[("x", "foo"), ("y", "baz")],
                true,
            ),
            (
                "x in (foo),y in (alpha)",
                &[("x", "foo"), ("y", "baz")],
                false,
            ),
            ("x notin (),y", &[("y", "")], true),
            ("!x,y", &[("y", "")], true),
            ("x notin (),!y", &[("y", "")], false),
            ("x in ()", &[("y", "baz")], false),
            ("z>1", &[("z", "2")], true),
            ("z>1", &[("z", "v2")], false),
        ],
        LabelSelector::matches,
    );
}

/// Labels `TestSetSelectorParser`: whether each selector is valid, and for the valid ones the
/// requirements upstream expects, in revkv's canonical printed form.
#[test]
fn labels_set_selector_parser() {
    let rows = [
        ("", Some("")),
        ("\rx", Some("x")),
        (
            "this-is-a-dns.domain.com/key-with-dash",
            Some("this-is-a-dns.domain.com/key-with-dash"),
        ),
        (
            "this-is-another-dns.domain.com/key-with-dash in (so,what)",
            Some("this-is-another-dns.domain.com/key-with-dash in (so,what)"),
        ),
        (
            "0.1.2.domain/99 notin (10.10.100.1, tick.tack.clock)",
            Some("0.1.2.domain/99 notin (10.10.100.1,tick.tack.clock)"),
        ),
        ("foo  in\t (abc)", Some("foo in (abc)")),
        ("x notin\n (abc)", Some("x notin (abc)")),
        ("x  notin\t\t\t(abc,def)", Some("x notin (abc,def)")),
        ("x in (abc,def)", Some("x in (abc,def)")),
        ("x in (abc,)", Some("x in (,abc)")),
        ("x in (abc,abc)", Some("x in (abc)")),
        ("x in ()", Some("x in ()")),
        ("x in (a,,)", Some("x in (,a)")),
        ("x in (a,,,)", Some("x in (,a)")),
        ("x in (a,,,,,,)", Some("x in (,a)")),
        ("x in (a,,a,,a,,a,,)", Some("x in (,a)")),
        (
            "x notin (abc,,def),bar,z in (),w",
            Some("bar,w,x notin (,abc,def),z in ()"),
        ),
        ("x,y in (a)", Some("x,y in (a)")),
        ("x=a", Some("x=a")),
        ("x>1", Some("x>1")),
        ("x<7", Some("x<7")),
        ("x=a,y!=b", Some("x=a,y!=b")),
        ("x=a,y!=b,z in (h,i,j)", Some("x=a,y!=b,z in (h,i,j)")),
        ("x=a||y=b", None),
        ("x,,y", None),
        (",x,y", None),
        ("x nott in (y)", None),
        ("x notin ( )", Some("x notin ()")),
        ("x notin (, a)", Some("x notin (,a)")),
        ("a in (xyz),", None),
        ("a in (xyz)b notin ()", None),
        ("a ", Some("a")),
        ("a in (x,y,notin, z,in)", Some("a in (in,notin,x,y,z)")),
        ("a in (xyz abc)", None),
        ("a notin(", None),
        ("a (", None),
        ("(", None),
    ];
    for (input, printed) in rows {
        let parsed = input.parse::<LabelSelector>().map(|s| s.to_string());
        assert_eq!(parsed.ok().as_deref(), printed, "{input:?}");
    }
}

/// What a field selector must parse to: its canonical printed form, or an error at a byte
/// offset.
type FieldOutcome = Result<&'static str, usize>;

fn assert_field_outcomes(rows: &[(&str, FieldOutcome)]) {
    for &(input, expected) in rows {
        let parsed = input.parse::<FieldSelector>();
        let got = parsed.as_ref().map(ToString::to_string);
        let got = got.as_deref().map_err(|error| error.position());
        assert_eq!(got, expected, "{input:?}: {parsed:?}");
    }
}

/// Fields `TestSplitTerms`. Splitting is internal, so each selector is parsed: how it splits
/// shows in the requirements printed (sorted), or in the error of its one term.
#[test]
fn fields_split_terms() {
    assert_field_outcomes(&[
        (r"a", Err(0)),
        (r"a=avalue", Ok(r"a=avalue")),
        (r"a=avalue,b=bvalue", Ok(r"a=avalue,b=bvalue")),
        (
            r"a=avalue,b==bvalue,c!=cvalue",
            Ok(r"a=avalue,b=bvalue,c!=cvalue"),
        ),
        (r"", Ok(r"")),
        (r"a=a,", Ok(r"a=a")),
        (r",a=a", Ok(r"a=a")),
        (r"k=\,,k2=v2", Ok(r"k2=v2,k=\,")),
        (r"k=\\,k2=v2", Ok(r"k2=v2,k=\\")),
        (r"k=\\\,,k2=v2", Ok(r"k2=v2,k=\\\,")),
        // One term each, which then fails to unescape.
        (r"k=\a\b\", Err(2)),
        (r"k=\", Err(2)),
        ("함=수,목=록", Ok("목=록,함=수")),
    ]);
}

/// Fields `TestSplitTerm`: the field, operator and unescaped value each term splits into, or
/// `None` for a term without an operator. The empty term is skipped before it is split, so
/// it gives the empty selector here. The last escaped term splits, then fails to unescape.
#[test]
fn fields_split_term() {
    let rows = [
        (r"a=value", Some(("a", "=", "value"))),
        (r"b==value", Some(("b", "=", "value"))),
        (r"c!=value", Some(("c", "!=", "value"))),
        (r"a", None),
        (r"k=\,", Some(("k", "=", ","))),
        (r"k=\=", Some(("k", "=", "="))),
        ("함=수", Some(("함", "=", "수"))),
    ];
    for (term, split) in rows {
        let parsed = term.parse::<FieldSelector>();
        let Some((name, op, value)) = split else {
            assert!(parsed.is_err(), "{term:?}");
            continue;
        };
        let selector = parsed.unwrap_or_else(|error| panic!("{term:?}: {error}"));
        let equal = op == "=";
        assert_eq!(selector.matches(&map(&[(name, value)])), equal, "{term:?}");
        let other = format!("{value}~");
        assert_eq!(
            selector.matches(&map(&[(name, &other)])),
            !equal,
            "{term:?}"
        );
    }
    assert!(field("").is_empty());
    assert_field_outcomes(&[(r"k=\\\a\b\=\,\", Err(4))]);
}

/// Fields `TestEscapeValue`, which also unescapes: each value, written escaped in a selector,
/// selects the unescaped value and prints escaped as it was; the invalid escapes are errors.
#[test]
fn fields_escape_value() {
    let rows = [
        ("", ""),
        ("a", "a"),
        ("=", r"\="),
        (",", r"\,"),
        (r"\", r"\\"),
        (r"\=\,\", r"\\\=\\\,\\"),
    ];
    for (unescaped, escaped) in rows {
        let input = format!("f={escaped}");
        let selector = field(&input);
        assert!(selector.matches(&map(&[("f", unescaped)])), "{input:?}");
        assert_eq!(selector.to_string(), input);
    }
    for invalid in [r"\", r"\\\", r"\a"] {
        let input = format!("f={invalid}");
        let error = input.parse::<FieldSelector>().unwrap_err();
        assert!(error.reason().contains("invalid escape"), "{error}");
    }
}

/// Fields `TestSelectorParse`: good selectors print back exactly as written.
#[test]
fn fields_selector_parse() {
    let good = ["x=a,y=b,z=c", "", "x!=a,y=b", r"x=a||y\=b", r"x=a\=\=b"];
    for input in good {
        assert_eq!(field(input).to_string(), input, "{input:?}");
    }
    let bad = [
        "x=a||y=b",
        "x==a==b",
        "x=a,b",
        "x in (a)",
        "x in (a,b,c)",
        "x",
    ];
    assert_rejected::<FieldSelector>(&bad);
}

/// Fields `TestSelectorMatches`.
#[test]
fn fields_selector_matches() {
    let fieldset: &[(&str, &str)] = &[("foo", "bar"), ("baz", "blah"), ("complex", r"=value\,\")];
    assert_matches(
        &[
            ("", &[("x", "y")], true),
            ("x=y", &[("x", "y")], true),
            ("x=y,z=w", &[("x", "y"), ("z", "w")], true),
            ("x!=y,z!=w", &[("x", "z"), ("z", "a")], true),
            ("notin=in", &[("notin", "in")], true),
            ("x=y", &[("x", "z")], false),
            ("x=y,z=w", &[("x", "w"), ("z", "w")], false),
            ("x!=y,z!=w", &[("x", "z"), ("z", "w")], false),
            ("foo=bar", fieldset, true),
            ("baz=blah", fieldset, true),
            ("foo=bar,baz=blah", fieldset, true),
            (r"foo=bar,baz=blah,complex=\=value\\\,\\", fieldset, true),
            ("foo=blah", fieldset, false),
            ("baz=bar", fieldset, false),
            ("foo=bar,foobar=bar,baz=blah", fieldset, false),
        ],
        FieldSelector::matches,
    );
}

/// Fields `TestOneTermEqualSelector`, with the selector `x=y` for `OneTermEqualSelector("x",
/// "y")`.
#[test]
fn fields_one_term_equal_selector() {
    assert_matches(
        &[("x=y", &[("x", "y")], true), ("x=y", &[("x", "z")], false)],
        FieldSelector::matches,
    );
}

/// Fields `TestTransform`, the rows whose transform is the identity; the others rewrite
/// fields with a function, which revkv has no equivalent for.
#[test]
fn fields_transform_identity() {
    assert_field_outcomes(&[("", Ok("")), ("a=b,c=d", Ok("a=b,c=d"))]);
    assert!(field("").is_empty());
    assert!(!field("a=b,c=d").is_empty());
}
