//! What a list asks for: its range, its filters, its page size, and where it continues.

use std::ops::Bound;

use crate::selector::{FieldSelector, LabelSelector};
use crate::{display_key, Error, Result, Revision};

/// How many keys a filtered chunk examines at most, by default, before it returns short.
pub const DEFAULT_SCAN_BUDGET: usize = 10_000;

/// How many bytes of entries a page holds, by default, before it ends early with a continue
/// token: 16 MiB, so that a page of the largest size still fits in memory when its values are
/// the largest a store accepts.
pub const DEFAULT_MAX_PAGE_BYTES: usize = 16 * 1024 * 1024;

/// What to list: a key range, optional filters, a page size, and where to continue.
///
/// Ranges come from [`prefix`](ListOptions::prefix), [`range`](ListOptions::range),
/// [`from`](ListOptions::from) or [`all`](ListOptions::all), and narrow further with Swift's
/// markers: [`start_after`](ListOptions::start_after) and
/// [`end_before`](ListOptions::end_before), both exclusive. In a
/// [`reverse`](ListOptions::reverse) list, as in Swift, `start_after` is the upper bound (the list
/// starts below it) and `end_before` the lower one. Markers in the wrong order for the
/// direction are refused with [`Error::InvalidRequest`]; a marker outside the range only narrows
/// it, maybe to nothing.
///
/// # Examples
///
/// ```
/// use revkv::{Db, ListOptions};
/// # let db = Db::temporary()?;
/// for name in ["a", "b", "c"] {
///     db.put(format!("pods/{name}"), "spec")?;
/// }
/// let first = db.list(&ListOptions::prefix("pods/").limit(2))?;
/// assert_eq!(first.items.len(), 2);
/// assert_eq!(first.remaining, Some(1));
///
/// db.put("pods/d", "written after the list started")?;
/// let token = first.continue_token.expect("one item remains");
/// let second = db.list(&ListOptions::prefix("pods/").limit(2).continue_token(token))?;
/// assert_eq!(second.items.len(), 1, "the list reads the snapshot of its first chunk");
/// assert_eq!(second.revision, first.revision);
/// assert_eq!(second.continue_token, None);
/// # Ok::<(), revkv::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListOptions {
    lower: Bound<Vec<u8>>,
    upper: Bound<Vec<u8>>,
    /// What a delimiter rolls up after: the list's prefix, or nothing for other ranges.
    pub(super) prefix: Vec<u8>,
    start_after: Option<Vec<u8>>,
    end_before: Option<Vec<u8>>,
    pub(super) delimiter: Option<Vec<u8>>,
    pub(super) labels: LabelSelector,
    pub(super) fields: FieldSelector,
    pub(super) limit: Option<usize>,
    scan_budget: usize,
    pub(super) max_page_bytes: usize,
    pub(super) continue_token: Option<String>,
    pub(super) revision: Option<Revision>,
    pub(crate) reverse: bool,
}

impl ListOptions {
    /// Every key in the store.
    #[must_use]
    pub fn all() -> Self {
        ListOptions {
            lower: Bound::Unbounded,
            upper: Bound::Unbounded,
            prefix: Vec::new(),
            start_after: None,
            end_before: None,
            delimiter: None,
            labels: LabelSelector::default(),
            fields: FieldSelector::default(),
            limit: None,
            scan_budget: DEFAULT_SCAN_BUDGET,
            max_page_bytes: DEFAULT_MAX_PAGE_BYTES,
            continue_token: None,
            revision: None,
            reverse: false,
        }
    }

    /// The keys that start with `prefix`.
    pub fn prefix(prefix: impl Into<Vec<u8>>) -> Self {
        let prefix = prefix.into();
        let upper = prefix_end(&prefix).map_or(Bound::Unbounded, Bound::Excluded);
        ListOptions {
            lower: Bound::Included(prefix.clone()),
            upper,
            prefix,
            ..ListOptions::all()
        }
    }

    /// The keys from `start` (included) to `end` (excluded). A list refuses a `start` after
    /// `end` with [`Error::InvalidRequest`]; `start == end` is an empty range.
    pub fn range(start: impl Into<Vec<u8>>, end: impl Into<Vec<u8>>) -> Self {
        ListOptions {
            lower: Bound::Included(start.into()),
            upper: Bound::Excluded(end.into()),
            ..ListOptions::all()
        }
    }

    /// The keys from `start` (included) to the end of the key space.
    pub fn from(start: impl Into<Vec<u8>>) -> Self {
        ListOptions {
            lower: Bound::Included(start.into()),
            ..ListOptions::all()
        }
    }

    /// Only keys after `marker` (Swift's `marker`); in a reverse list, only keys before it.
    #[must_use]
    pub fn start_after(mut self, marker: impl Into<Vec<u8>>) -> Self {
        self.start_after = Some(marker.into());
        self
    }

    /// Only keys before `marker` (Swift's `end_marker`); in a reverse list, only keys after it.
    #[must_use]
    pub fn end_before(mut self, marker: impl Into<Vec<u8>>) -> Self {
        self.end_before = Some(marker.into());
        self
    }

    /// Rolls up keys that contain `delimiter` after the list's prefix into one common-prefix
    /// entry each (up to and including the delimiter), returned in
    /// [`ListPage::prefixes`](crate::ListPage::prefixes). Skipping the keys under a prefix is
    /// one seek, not a scan. An empty delimiter is ignored.
    #[must_use]
    pub fn delimiter(mut self, delimiter: impl Into<Vec<u8>>) -> Self {
        self.delimiter = Some(delimiter.into()).filter(|d| !d.is_empty());
        self
    }

    /// Only entries whose labels match `selector`.
    #[must_use]
    pub fn label_selector(mut self, selector: LabelSelector) -> Self {
        self.labels = selector;
        self
    }

    /// Only entries whose fields match `selector`.
    #[must_use]
    pub fn field_selector(mut self, selector: FieldSelector) -> Self {
        self.fields = selector;
        self
    }

    /// At most `limit` entries (and common prefixes) per chunk; the default and the maximum are
    /// the store's [`max_page_size`](crate::Options::max_page_size).
    #[must_use]
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = Some(limit);
        self
    }

    /// How many keys a filtered chunk may examine before it returns, possibly short or empty,
    /// with a continue token ([`DEFAULT_SCAN_BUDGET`] by default; never less than the limit).
    #[must_use]
    pub fn scan_budget(mut self, keys: usize) -> Self {
        self.scan_budget = keys.max(1);
        self
    }

    /// Ends a page, with a continue token, after the entry that brings the bytes of its entries
    /// (keys, values, labels and fields) to `bytes` ([`DEFAULT_MAX_PAGE_BYTES`] by default). A
    /// page always holds at least one entry when one remains, so a list always progresses; it
    /// holds at most `bytes` plus one entry.
    #[must_use]
    pub fn max_page_bytes(mut self, bytes: usize) -> Self {
        self.max_page_bytes = bytes.max(1);
        self
    }

    /// Continues a list from the token of its previous chunk.
    #[must_use]
    pub fn continue_token(mut self, token: impl Into<String>) -> Self {
        self.continue_token = Some(token.into());
        self
    }

    /// Reads at this revision instead of the newest. With a continue token it must be the
    /// revision the token reads at, or the one its list started at: they differ once an
    /// [`Error::Expired`] moved the list on to the newest revision, so the same request goes
    /// on with the token that error carries.
    #[must_use]
    pub fn revision(mut self, revision: Revision) -> Self {
        self.revision = Some(revision);
        self
    }

    /// Lists in descending key order.
    #[must_use]
    pub fn reverse(mut self, reverse: bool) -> Self {
        self.reverse = reverse;
        self
    }

    /// Whether items are dropped by selectors, so that counts of keys are not counts of items.
    pub(super) fn filters(&self) -> bool {
        !self.labels.is_empty() || !self.fields.is_empty()
    }

    pub(super) fn budget(&self, limit: usize) -> usize {
        self.scan_budget.max(limit)
    }

    /// The markers in key order, `(lower, upper)`, whatever the direction.
    fn markers(&self) -> (Option<&[u8]>, Option<&[u8]>) {
        let (low, high) = if self.reverse {
            (&self.end_before, &self.start_after)
        } else {
            (&self.start_after, &self.end_before)
        };
        (low.as_deref(), high.as_deref())
    }

    /// The range after applying the markers: `(lower, upper)` in key order, whatever the
    /// direction.
    pub(super) fn bounds(&self) -> (Bound<&[u8]>, Bound<&[u8]>) {
        let (low_marker, high_marker) = self.markers();
        let lower = tighter_lower(as_slice(&self.lower), low_marker.map(Bound::Excluded));
        let upper = tighter_upper(as_slice(&self.upper), high_marker.map(Bound::Excluded));
        (lower, upper)
    }

    /// Fails for a range that starts after it ends, or for markers in the wrong order for the
    /// direction: mistakes that an empty list would hide. A marker outside the range is no
    /// mistake: it narrows the range, maybe to nothing.
    pub(super) fn check_order(&self) -> Result<()> {
        if let (
            Bound::Included(start) | Bound::Excluded(start),
            Bound::Included(end) | Bound::Excluded(end),
        ) = (&self.lower, &self.upper)
        {
            if start > end {
                return Err(Error::invalid_request(format!(
                    "the range starts at {} after its end {}",
                    display_key(start),
                    display_key(end)
                )));
            }
        }
        if let (Some(start_after), Some(end_before)) = (&self.start_after, &self.end_before) {
            // In reverse, as in Swift, the list starts below `start_after` and ends above
            // `end_before`.
            let inverted = if self.reverse {
                end_before > start_after
            } else {
                start_after > end_before
            };
            if inverted {
                return Err(Error::invalid_request(format!(
                    "start_after {} and end_before {} are inverted{}",
                    display_key(start_after),
                    display_key(end_before),
                    if self.reverse {
                        " for a reverse list"
                    } else {
                        ""
                    }
                )));
            }
        }
        Ok(())
    }

    /// The common prefix `key` rolls up into, when the list has a delimiter and `key` holds it
    /// after the list's prefix.
    pub(super) fn rollup<'k>(&self, key: &'k [u8]) -> Option<&'k [u8]> {
        let delimiter = self.delimiter.as_deref()?;
        let rest = key.strip_prefix(self.prefix.as_slice())?;
        let at = rest
            .windows(delimiter.len())
            .position(|window| window == delimiter)?;
        Some(&key[..self.prefix.len() + at + delimiter.len()])
    }

    /// Whether `prefix` is the lower marker in key order: `start_after`, or `end_before` in a
    /// reverse list. Swift leaves such a prefix out: forward, so that a client that pages by
    /// passing the last name as the next marker (python-swiftclient) sees each prefix once; in
    /// reverse, because Swift swaps the markers first. A prefix equal to the upper marker never
    /// comes up, since every key under it lies above it.
    pub(super) fn is_lower_marker(&self, prefix: &[u8]) -> bool {
        self.markers().0 == Some(prefix)
    }

    /// The request's identity, which its continue tokens are bound to: everything that defines
    /// the list but the page size, the page's byte budget, the scan budget, the revision and the
    /// token itself. Every field is tagged or length-prefixed, so that no two requests share an
    /// encoding and no encoding is a prefix of another.
    pub(crate) fn canonical(&self) -> Vec<u8> {
        let mut encoding = Vec::new();
        for bound in [&self.lower, &self.upper] {
            match bound {
                Bound::Unbounded => encoding.push(0),
                Bound::Included(key) => {
                    encoding.push(1);
                    put_bytes(&mut encoding, key);
                }
                Bound::Excluded(key) => {
                    encoding.push(2);
                    put_bytes(&mut encoding, key);
                }
            }
        }
        put_bytes(&mut encoding, &self.prefix);
        for marker in [&self.start_after, &self.end_before, &self.delimiter] {
            match marker {
                None => encoding.push(0),
                Some(marker) => {
                    encoding.push(1);
                    put_bytes(&mut encoding, marker);
                }
            }
        }
        put_bytes(&mut encoding, self.labels.to_string().as_bytes());
        put_bytes(&mut encoding, self.fields.to_string().as_bytes());
        encoding.push(u8::from(self.reverse));
        encoding
    }

    /// Whether a continue token may name `position`: a key inside the range, or a common prefix
    /// this list rolls up that some key of the range lies under. A prefix outside the range
    /// would move a forward list back to the start of its range, and repeat its items.
    pub(super) fn may_resume_at(&self, position: &[u8]) -> bool {
        let (lower, upper) = self.bounds();
        let end = prefix_end(position);
        // A common prefix stands for every key under it: from itself to the end of the prefix.
        let last = if self.rollup(position) == Some(position) {
            end.as_deref().map_or(Bound::Unbounded, Bound::Excluded)
        } else {
            Bound::Included(position)
        };
        holds_keys(
            tighter_lower(lower, Some(Bound::Included(position))),
            tighter_upper(upper, Some(last)),
        )
    }
}

/// Whether any key lies between `lower` and `upper`.
fn holds_keys(lower: Bound<&[u8]>, upper: Bound<&[u8]>) -> bool {
    match (lower, upper) {
        (_, Bound::Unbounded) | (Bound::Unbounded, Bound::Included(_)) => true,
        (Bound::Unbounded, Bound::Excluded(upper)) => !upper.is_empty(),
        (Bound::Included(lower), Bound::Included(upper)) => lower <= upper,
        (Bound::Included(lower), Bound::Excluded(upper))
        | (Bound::Excluded(lower), Bound::Included(upper)) => lower < upper,
        // The least key after `lower` is `lower` followed by a zero byte.
        (Bound::Excluded(lower), Bound::Excluded(upper)) => {
            lower < upper && upper != [lower, &[0]].concat()
        }
    }
}

/// Appends `bytes` with their length in front.
fn put_bytes(encoding: &mut Vec<u8>, bytes: &[u8]) {
    encoding.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
    encoding.extend_from_slice(bytes);
}

fn as_slice(bound: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    bound.as_ref().map(Vec::as_slice)
}

/// The larger of two lower bounds (an exclusive bound is larger than an inclusive one at the
/// same key).
pub(super) fn tighter_lower<'a>(
    bound: Bound<&'a [u8]>,
    other: Option<Bound<&'a [u8]>>,
) -> Bound<&'a [u8]> {
    tighter(bound, other, std::cmp::Ordering::Greater)
}

/// The smaller of two upper bounds (an exclusive bound is smaller than an inclusive one at the
/// same key).
pub(super) fn tighter_upper<'a>(
    bound: Bound<&'a [u8]>,
    other: Option<Bound<&'a [u8]>>,
) -> Bound<&'a [u8]> {
    tighter(bound, other, std::cmp::Ordering::Less)
}

/// The narrower of two bounds on the same side: at different keys the one whose key compares
/// as `narrower` to the other's; at the same key the exclusive one.
fn tighter<'a>(
    bound: Bound<&'a [u8]>,
    other: Option<Bound<&'a [u8]>>,
    narrower: std::cmp::Ordering,
) -> Bound<&'a [u8]> {
    let Some(other) = other else { return bound };
    match (bound, other) {
        (Bound::Unbounded, b) | (b, Bound::Unbounded) => b,
        (Bound::Included(a) | Bound::Excluded(a), Bound::Included(b) | Bound::Excluded(b))
            if a != b =>
        {
            if a.cmp(b) == narrower {
                bound
            } else {
                other
            }
        }
        (Bound::Excluded(a), _) | (_, Bound::Excluded(a)) => Bound::Excluded(a),
        (Bound::Included(a), Bound::Included(_)) => Bound::Included(a),
    }
}

/// The smallest key greater than every key that starts with `prefix`; `None` when no such key
/// exists (the prefix is empty or all `0xff`).
pub(crate) fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_skips_trailing_ff() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(&[b'a', 0xff, 0xff]), Some(b"b".to_vec()));
        assert_eq!(prefix_end(&[0xff]), None);
        assert_eq!(prefix_end(b""), None);
    }

    #[test]
    fn the_canonical_encoding_separates_requests_but_not_pages() {
        let base = ListOptions::prefix("pods/");
        let same = base
            .clone()
            .limit(7)
            .scan_budget(3)
            .max_page_bytes(64)
            .revision(Revision::new(3))
            .continue_token("a token");
        assert_eq!(base.canonical(), same.canonical());
        let others = [
            ListOptions::prefix("pods"),
            base.clone().reverse(true),
            base.clone().start_after("pods/a"),
            base.clone().end_before("pods/a"),
            base.clone().delimiter("/"),
            base.clone().label_selector("app=web".parse().unwrap()),
            base.clone().field_selector("status=ok".parse().unwrap()),
            ListOptions::range("pods/", "pods0"),
            ListOptions::from("pods/"),
        ];
        for other in others {
            assert_ne!(base.canonical(), other.canonical(), "{other:?}");
        }
        // Lengths keep the fields apart where their bytes would run together.
        assert_ne!(
            ListOptions::all()
                .start_after("ab")
                .end_before("c")
                .canonical(),
            ListOptions::all()
                .start_after("a")
                .end_before("bc")
                .canonical()
        );
    }

    #[test]
    fn markers_swap_roles_in_reverse() {
        let forward = ListOptions::prefix("k/")
            .start_after("k/b")
            .end_before("k/y");
        assert_eq!(
            forward.bounds(),
            (Bound::Excluded(&b"k/b"[..]), Bound::Excluded(&b"k/y"[..]))
        );
        let reverse = ListOptions::prefix("k/")
            .start_after("k/y")
            .end_before("k/b")
            .reverse(true);
        assert_eq!(
            reverse.bounds(),
            (Bound::Excluded(&b"k/b"[..]), Bound::Excluded(&b"k/y"[..]))
        );
        // A marker outside the prefix does not widen it.
        let outside = ListOptions::prefix("k/").start_after("a").end_before("z");
        assert_eq!(
            outside.bounds(),
            (Bound::Included(&b"k/"[..]), Bound::Excluded(&b"k0"[..]))
        );
    }

    #[test]
    fn bounds_at_the_same_key_prefer_the_exclusive_one() {
        let lower = tighter_lower(Bound::Included(b"k"), Some(Bound::Excluded(b"k")));
        assert_eq!(lower, Bound::Excluded(&b"k"[..]));
        let upper = tighter_upper(Bound::Excluded(b"k"), Some(Bound::Included(b"k")));
        assert_eq!(upper, Bound::Excluded(&b"k"[..]));
    }

    #[test]
    fn a_range_holds_keys_unless_its_bounds_leave_no_room() {
        assert!(holds_keys(Bound::Included(b"a"), Bound::Included(b"a")));
        assert!(!holds_keys(Bound::Included(b"a"), Bound::Excluded(b"a")));
        assert!(!holds_keys(Bound::Included(b"b"), Bound::Included(b"a")));
        assert!(!holds_keys(Bound::Excluded(b"a"), Bound::Excluded(b"a\0")));
        assert!(holds_keys(Bound::Excluded(b"a"), Bound::Excluded(b"a\0\0")));
        assert!(holds_keys(Bound::Excluded(b"a"), Bound::Unbounded));
        assert!(!holds_keys(Bound::Unbounded, Bound::Excluded(b"")));
    }

    #[test]
    fn keys_roll_up_at_the_first_delimiter_after_the_prefix() {
        let options = ListOptions::prefix("photos/").delimiter("/");
        assert_eq!(
            options.rollup(b"photos/2024/jan/a.jpg"),
            Some(&b"photos/2024/"[..])
        );
        assert_eq!(options.rollup(b"photos/a.jpg"), None);
        assert_eq!(options.rollup(b"other/x/y"), None);
        let multi = ListOptions::all().delimiter("::");
        assert_eq!(multi.rollup(b"a::b::c"), Some(&b"a::"[..]));
        assert_eq!(ListOptions::all().delimiter("").rollup(b"a/b"), None);
    }
}
