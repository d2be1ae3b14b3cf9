//! Label and field selector parsing: any text parses or is refused with a position inside it,
//! and a parsed selector prints as text that parses back to an equal selector, printed the same.

#![no_main]

use std::fmt::{Debug, Display};
use std::str::FromStr;

use libfuzzer_sys::fuzz_target;
use revkv::selector::{FieldSelector, LabelSelector, SelectorError};

fn check<S>(input: &str)
where
    S: FromStr<Err = SelectorError> + Display + Debug + PartialEq,
{
    match input.parse::<S>() {
        Ok(selector) => {
            let printed = selector.to_string();
            let again: S = printed
                .parse()
                .unwrap_or_else(|error| panic!("{printed:?} does not parse back: {error}"));
            assert_eq!(again, selector, "{input:?} printed as {printed:?}");
            assert_eq!(again.to_string(), printed);
        }
        Err(error) => {
            assert!(error.position() <= input.len(), "{error}");
            assert_eq!(error.input(), input);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(input) = std::str::from_utf8(data) {
        check::<LabelSelector>(input);
        check::<FieldSelector>(input);
    }
});
