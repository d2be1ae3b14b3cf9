//! Swift-style options and selectors, checked against a naive model: filter a sorted map, roll
//! it up, and compare with the concatenated chunks of a list that others write to meanwhile.

use std::collections::BTreeMap;

use proptest::prelude::*;
use revkv::{Db, ListOptions, Put, Retention};

/// One stored key: its labels and fields decide what the selectors keep.
#[derive(Clone, Debug)]
struct Object {
    color: Option<&'static str>,
    size: &'static str,
}

fn object() -> impl Strategy<Value = Object> {
    (
        prop::option::of(prop::sample::select(vec!["red", "blue"])),
        prop::sample::select(vec!["s", "m"]),
    )
        .prop_map(|(color, size)| Object { color, size })
}

/// Keys like `r/a`, `r/a/b`, `r/b/a/c`: segments that roll up at `/`.
fn key() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(vec!["a", "b", "c"]), 1..4)
        .prop_map(|parts| format!("r/{}", parts.join("/")))
}

/// A key, or a common prefix.
fn marker() -> impl Strategy<Value = String> {
    prop_oneof![key(), key().prop_map(|k| format!("{k}/"))]
}

#[derive(Clone, Debug)]
struct Request {
    prefix: &'static str,
    start_after: Option<String>,
    end_before: Option<String>,
    delimiter: bool,
    reverse: bool,
    labels: &'static str,
    fields: &'static str,
    limit: usize,
    budget: usize,
}

fn request() -> impl Strategy<Value = Request> {
    (
        prop::sample::select(vec!["", "r/", "r/a", "r/a/", "r/b/"]),
        prop::option::of(marker()),
        prop::option::of(marker()),
        any::<bool>(),
        any::<bool>(),
        prop::sample::select(vec![
            "",
            "color=red",
            "color!=red",
            "!color",
            "color in (red,blue)",
            "color",
        ]),
        prop::sample::select(vec!["", "size=s", "size!=s"]),
        1usize..5,
        1usize..8,
    )
        .prop_map(
            |(
                prefix,
                start_after,
                end_before,
                delimiter,
                reverse,
                labels,
                fields,
                limit,
                budget,
            )| Request {
                prefix,
                start_after,
                end_before,
                delimiter,
                reverse,
                labels,
                fields,
                limit,
                budget,
            },
        )
}

impl Request {
    fn options(&self) -> ListOptions {
        let mut options = ListOptions::prefix(self.prefix)
            .reverse(self.reverse)
            .limit(self.limit)
            .scan_budget(self.budget)
            .label_selector(self.labels.parse().unwrap())
            .field_selector(self.fields.parse().unwrap());
        if let Some(marker) = &self.start_after {
            options = options.start_after(marker.as_str());
        }
        if let Some(marker) = &self.end_before {
            options = options.end_before(marker.as_str());
        }
        if self.delimiter {
            options = options.delimiter("/");
        }
        options
    }

    /// The markers in key order: in reverse, as in Swift, `start_after` is the upper one.
    fn markers(&self) -> (&Option<String>, &Option<String>) {
        if self.reverse {
            (&self.end_before, &self.start_after)
        } else {
            (&self.start_after, &self.end_before)
        }
    }

    /// Whether the markers leave no room in any range: the request is refused.
    fn inverted(&self) -> bool {
        matches!(self.markers(), (Some(low), Some(high)) if low > high)
    }

    /// The items and the common prefixes the whole list must return, computed naively.
    fn expected(&self, state: &BTreeMap<String, Object>) -> (Vec<String>, Vec<String>) {
        let mut keys: Vec<&String> = state
            .keys()
            .filter(|k| k.starts_with(self.prefix))
            .collect();
        let (low, high) = self.markers();
        keys.retain(|k| {
            low.as_ref().is_none_or(|m| k.as_str() > m.as_str())
                && high.as_ref().is_none_or(|m| k.as_str() < m.as_str())
        });
        if self.reverse {
            keys.reverse();
        }
        let labels: revkv::selector::LabelSelector = self.labels.parse().unwrap();
        let fields: revkv::selector::FieldSelector = self.fields.parse().unwrap();
        let (mut items, mut prefixes) = (Vec::new(), Vec::<String>::new());
        for key in keys {
            let rest = &key[self.prefix.len()..];
            match rest.find('/').filter(|_| self.delimiter) {
                Some(at) => {
                    let prefix = key[..self.prefix.len() + at + 1].to_string();
                    // Swift leaves out a prefix equal to the marker the list moves away
                    // from: `marker`, or `end_marker` in reverse.
                    if prefixes.last() != Some(&prefix) && low.as_ref() != Some(&prefix) {
                        prefixes.push(prefix);
                    }
                }
                None => {
                    let object = &state[key];
                    if labels.matches(&object.labels()) && fields.matches(&object.fields()) {
                        items.push(key.clone());
                    }
                }
            }
        }
        (items, prefixes)
    }
}

impl Object {
    fn labels(&self) -> BTreeMap<String, String> {
        self.color
            .map(|c| ("color".to_string(), c.to_string()))
            .into_iter()
            .collect()
    }

    fn fields(&self) -> BTreeMap<String, String> {
        BTreeMap::from([("size".to_string(), self.size.to_string())])
    }

    fn put(&self, key: &str) -> Put {
        let mut put = Put::new(key, "v").field("size", self.size);
        if let Some(color) = self.color {
            put = put.label("color", color);
        }
        put
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn chunks_concatenate_to_the_naive_answer_at_the_list_revision(
        initial in prop::collection::btree_map(key(), object(), 0..40),
        request in request(),
        writes in prop::collection::vec((key(), prop::option::of(object())), 0..30),
    ) {
        let db = Db::options().retention(Retention::Manual).temporary().unwrap();
        for (key, object) in &initial {
            db.put_with(object.put(key)).unwrap();
        }
        let options = request.options();
        if request.inverted() {
            prop_assert_eq!(db.list(&options).unwrap_err().reason(), "InvalidRequest");
            return Ok(());
        }
        let (expected_items, expected_prefixes) = request.expected(&initial);
        let (mut items, mut prefixes) = (Vec::new(), Vec::new());
        let mut next = options.clone();
        let mut writes = writes.into_iter();
        for chunks in 0.. {
            prop_assert!(chunks <= 200, "the list does not end");
            let page = db.list(&next).unwrap();
            prop_assert!(page.items.len() + page.prefixes.len() <= request.limit);
            items.extend(page.items.iter().map(|e| String::from_utf8(e.key.clone()).unwrap()));
            prefixes.extend(page.prefixes.iter().map(|p| String::from_utf8(p.clone()).unwrap()));
            if let Some(remaining) = page.remaining {
                prop_assert_eq!(remaining as usize, expected_items.len() - items.len());
            }
            if let Some((key, change)) = writes.next() {
                match change {
                    Some(object) => db.put_with(object.put(&key)).map(|_| ()).unwrap(),
                    None => db.delete(key).map(|_| ()).unwrap(),
                }
            }
            match page.continue_token {
                Some(token) => next = options.clone().continue_token(token),
                None => break,
            }
        }
        prop_assert_eq!(items, expected_items);
        prop_assert_eq!(prefixes, expected_prefixes);
    }
}

/// A store holding `keys`, each with the value `v`.
fn store_of(keys: &[&str]) -> Db {
    let db = Db::options()
        .retention(Retention::Manual)
        .temporary()
        .unwrap();
    for key in keys {
        db.put(*key, "v").unwrap();
    }
    db
}

#[test]
fn paging_by_markers_returns_each_common_prefix_once() {
    let db = store_of(&["r/a/1", "r/a/2", "r/b", "r/c/1", "r/d"]);
    // As python-swiftclient does: the next request starts after the last name returned.
    let mut marker: Option<String> = None;
    let mut names = Vec::new();
    loop {
        let mut options = ListOptions::prefix("r/").delimiter("/").limit(1);
        if let Some(marker) = &marker {
            options = options.start_after(marker.as_str());
        }
        let page = db.list(&options).unwrap();
        let name = page
            .items
            .first()
            .map(|e| e.key.clone())
            .or_else(|| page.prefixes.first().cloned());
        let Some(name) = name else { break };
        let name = String::from_utf8(name).unwrap();
        names.push(name.clone());
        marker = Some(name);
    }
    assert_eq!(names, ["r/a/", "r/b", "r/c/", "r/d"]);
}

#[test]
fn a_selective_filter_returns_short_pages_that_still_continue() {
    let db = Db::options()
        .retention(Retention::Manual)
        .temporary()
        .unwrap();
    for i in 0..100 {
        let put = Put::new(format!("k/{i:03}"), "v")
            .label("tier", if i % 50 == 49 { "gold" } else { "basic" });
        db.put_with(put).unwrap();
    }
    let options = ListOptions::prefix("k/")
        .label_selector("tier=gold".parse().unwrap())
        .limit(10)
        .scan_budget(30);
    let first = db.list(&options).unwrap();
    assert!(first.items.is_empty(), "30 keys examined, none gold");
    assert_eq!(first.remaining, None);
    let token = first.continue_token.expect("the list is not over");
    let second = db.list(&options.clone().continue_token(token)).unwrap();
    assert_eq!(second.items.len(), 1);
    assert_eq!(second.items[0].key, b"k/049");
}

#[test]
fn invalid_labels_and_selectors_are_typed_errors() {
    let db = Db::temporary().unwrap();
    let err = db
        .put_with(Put::new("k", "v").label("bad key!", "x"))
        .unwrap_err();
    assert_eq!(err.reason(), "InvalidLabel", "{err}");
    let err = db
        .put_with(Put::new("k", "v").label("app", "-starts-badly"))
        .unwrap_err();
    assert_eq!(err.reason(), "InvalidLabel", "{err}");
    let parse = || -> revkv::Result<ListOptions> {
        Ok(ListOptions::all().label_selector("app in (web".parse()?))
    };
    let err = parse().unwrap_err();
    assert_eq!(err.reason(), "InvalidSelector");
    assert!(err.to_string().contains("at byte"), "{err}");
}

#[test]
fn reverse_lists_with_a_delimiter_and_markers() {
    let db = store_of(&["r/a/1", "r/b", "r/c/1", "r/c/2", "r/d", "r/e/1"]);
    let options = ListOptions::prefix("r/")
        .delimiter("/")
        .reverse(true)
        .start_after("r/e")
        .end_before("r/a/1");
    let page = db.list(&options).unwrap();
    let items: Vec<_> = page.items.iter().map(|e| e.key.as_slice()).collect();
    assert_eq!(items, [&b"r/d"[..], b"r/b"]);
    assert_eq!(page.prefixes, [b"r/c/".to_vec()]);
}

#[test]
fn a_common_prefix_equal_to_the_lower_marker_is_not_returned_in_either_direction() {
    let db = store_of(&["r/a/1", "r/a/2", "r/b", "r/c/1"]);
    let names = |options: ListOptions| {
        let page = db.list(&options.delimiter("/")).unwrap();
        let items = page.items.into_iter().map(|e| e.key);
        let names: Vec<Vec<u8>> = items.chain(page.prefixes).collect();
        names
    };
    let forward = names(ListOptions::prefix("r/").start_after("r/a/"));
    assert_eq!(forward, [b"r/b".to_vec(), b"r/c/".to_vec()]);
    // Swift's end_marker is the lower bound of a reverse list; `r/a/2` lies above it, but its
    // prefix is the marker itself.
    let reverse = names(ListOptions::prefix("r/").end_before("r/a/").reverse(true));
    assert_eq!(reverse, [b"r/b".to_vec(), b"r/c/".to_vec()]);
}
