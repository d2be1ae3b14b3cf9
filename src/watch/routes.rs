//! Which watchers a key belongs to, at a cost that does not grow with the number of watchers
//! whose ranges do not hold the key.
//!
//! Every key of a range `[lower, upper)` starts with the common prefix of `lower` and `upper`
//! (a prefix watch's range has its prefix as that common prefix; a range to the end of the
//! key space has the empty one). Watchers are bucketed by that prefix, and a key visits the
//! buckets of its own prefixes, of the lengths some bucket has: prefix watchers of one depth
//! cost a key one hash lookup, however many there are.
//!
//! Inside a bucket the key space is cut at every bound of every range into segments, each
//! holding the watchers whose range covers it all, so a key's watchers are those of the
//! segment it falls in: one ordered-map lookup. Adjacent segments always hold different
//! watchers (equal neighbours are merged), so a bucket holds at most two segments per watcher,
//! and nothing is left when no watcher is.
//!
//! ```text
//!  bucket "": watchers 1 = [b, d)   2 = [c, ∞)
//!  segments: "b"→{1}  "c"→{1,2}  "d"→{2}
//!  key "c7" → floor segment "c" → {1, 2}
//! ```
//!
//! Registering costs O(segments the range covers in its bucket): ranges sharing a bucket and
//! overlapping each other (many different ranges to the end of the key space) make it
//! quadratic in their number.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;

/// A watcher's number in the hub.
pub(super) type WatcherId = u64;

/// The watchers of every range, bucketed by the common prefix of the range's bounds.
#[derive(Debug, Default)]
pub(super) struct Routes {
    buckets: HashMap<Vec<u8>, Segments>,
    /// The lengths of the buckets' prefixes, with how many buckets have each.
    lengths: BTreeMap<usize, usize>,
}

impl Routes {
    /// Calls `visit` with each watcher whose range holds `key`, once.
    pub(super) fn lookup(&self, key: &[u8], mut visit: impl FnMut(WatcherId)) {
        for &len in self.lengths.keys() {
            let Some(prefix) = key.get(..len) else {
                break;
            };
            if let Some(segments) = self.buckets.get(prefix) {
                segments.lookup(key).iter().copied().for_each(&mut visit);
            }
        }
    }

    /// Routes the keys in `[lower, upper)` (`upper` `None`: to the end) to `id`.
    pub(super) fn insert(&mut self, id: WatcherId, lower: &[u8], upper: Option<&[u8]>) {
        let prefix = common_prefix(lower, upper);
        let segments = self.buckets.entry(prefix.to_vec()).or_insert_with(|| {
            *self.lengths.entry(prefix.len()).or_default() += 1;
            Segments::default()
        });
        segments.insert(id, lower, upper);
    }

    /// Stops routing `[lower, upper)` to `id`, which [`Routes::insert`] routed there.
    pub(super) fn remove(&mut self, id: WatcherId, lower: &[u8], upper: Option<&[u8]>) {
        let prefix = common_prefix(lower, upper);
        let Some(segments) = self.buckets.get_mut(prefix) else {
            return;
        };
        segments.remove(id, lower, upper);
        if segments.is_empty() {
            self.buckets.remove(prefix);
            if let Some(count) = self.lengths.get_mut(&prefix.len()) {
                *count -= 1;
                if *count == 0 {
                    self.lengths.remove(&prefix.len());
                }
            }
        }
    }

    /// Whether no key is routed anywhere.
    #[cfg(test)]
    pub(super) fn is_empty(&self) -> bool {
        self.buckets.is_empty() && self.lengths.is_empty()
    }
}

/// The longest prefix every key in `[lower, upper)` starts with.
fn common_prefix<'a>(lower: &'a [u8], upper: Option<&[u8]>) -> &'a [u8] {
    let Some(upper) = upper else {
        return &[];
    };
    let len = lower.iter().zip(upper).take_while(|(a, b)| a == b).count();
    &lower[..len]
}

/// The segments of one bucket and the watchers covering each.
#[derive(Debug, Default)]
struct Segments {
    /// Segment start → the watchers covering `[start, next start)`, sorted.
    segments: BTreeMap<Vec<u8>, Vec<WatcherId>>,
}

impl Segments {
    /// The watchers whose range holds `key`.
    fn lookup(&self, key: &[u8]) -> &[WatcherId] {
        self.segments
            .range::<[u8], _>((Bound::Unbounded, Bound::Included(key)))
            .next_back()
            .map_or(&[], |(_, watchers)| watchers.as_slice())
    }

    fn insert(&mut self, id: WatcherId, lower: &[u8], upper: Option<&[u8]>) {
        self.split_at(lower);
        if let Some(upper) = upper {
            self.split_at(upper);
        }
        for (_, watchers) in self.covered(lower, upper) {
            if let Err(at) = watchers.binary_search(&id) {
                watchers.insert(at, id);
            }
        }
    }

    fn remove(&mut self, id: WatcherId, lower: &[u8], upper: Option<&[u8]>) {
        for (_, watchers) in self.covered(lower, upper) {
            if let Ok(at) = watchers.binary_search(&id) {
                watchers.remove(at);
            }
        }
        // Only the range's own bounds can have become redundant: every bound inside it
        // separates segments that still differ in some other watcher.
        self.merge_at(lower);
        if let Some(upper) = upper {
            self.merge_at(upper);
        }
    }

    fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }

    fn covered<'a>(
        &'a mut self,
        lower: &[u8],
        upper: Option<&[u8]>,
    ) -> impl Iterator<Item = (&'a Vec<u8>, &'a mut Vec<WatcherId>)> {
        let upper = upper.map_or(Bound::Unbounded, Bound::Excluded);
        self.segments
            .range_mut::<[u8], _>((Bound::Included(lower), upper))
    }

    /// Makes `at` the start of a segment, holding what the segment it falls in holds.
    fn split_at(&mut self, at: &[u8]) {
        if self.segments.contains_key(at) {
            return;
        }
        let enclosing = self.lookup(at).to_vec();
        self.segments.insert(at.to_vec(), enclosing);
    }

    /// Removes the segment start `at` when the segment holds what its predecessor holds.
    fn merge_at(&mut self, at: &[u8]) {
        let Some(watchers) = self.segments.get(at) else {
            return;
        };
        let before = self
            .segments
            .range::<[u8], _>((Bound::Unbounded, Bound::Excluded(at)))
            .next_back()
            .map_or(&[][..], |(_, watchers)| watchers.as_slice());
        if before == watchers.as_slice() {
            self.segments.remove(at);
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn lookup(routes: &Routes, key: &[u8]) -> Vec<WatcherId> {
        let mut found = Vec::new();
        routes.lookup(key, |id| found.push(id));
        found.sort_unstable();
        found
    }

    #[test]
    fn a_key_reaches_the_watchers_whose_ranges_hold_it() {
        let mut routes = Routes::default();
        routes.insert(1, b"b", Some(b"d"));
        routes.insert(2, b"c", None);
        routes.insert(3, b"", Some(b"b"));
        assert_eq!(lookup(&routes, b"a"), [3]);
        assert_eq!(lookup(&routes, b"b"), [1]);
        assert_eq!(lookup(&routes, b"c7"), [1, 2]);
        assert_eq!(lookup(&routes, b"d"), [2]);
        assert_eq!(lookup(&routes, b"zz"), [2]);
        routes.remove(2, b"c", None);
        assert_eq!(lookup(&routes, b"c7"), [1]);
        assert_eq!(lookup(&routes, b"zz"), [] as [WatcherId; 0]);
        routes.remove(1, b"b", Some(b"d"));
        routes.remove(3, b"", Some(b"b"));
        assert!(routes.is_empty());
    }

    fn range() -> impl Strategy<Value = (Vec<u8>, Option<Vec<u8>>)> {
        (0u8..6, proptest::option::of(1u8..7)).prop_map(|(low, span)| {
            let lower = if low == 0 { Vec::new() } else { vec![low] };
            (lower, span.map(|span| vec![low + span]))
        })
    }

    proptest! {
        #[test]
        fn lookups_match_a_scan_of_every_range_and_removal_leaves_nothing(
            ranges in proptest::collection::vec(range(), 1..12),
            removed in proptest::collection::vec(any::<bool>(), 12),
        ) {
            let mut routes = Routes::default();
            for (id, (lower, upper)) in (0..).zip(&ranges) {
                routes.insert(id, lower, upper.as_deref());
            }
            let check = |routes: &Routes, live: &dyn Fn(WatcherId) -> bool| {
                for key in 0u8..14 {
                    let key = [key];
                    let expected: Vec<WatcherId> = (0..)
                        .zip(&ranges)
                        .filter(|&(id, (lower, upper))| {
                            live(id)
                                && key.as_slice() >= lower.as_slice()
                                && upper.as_ref().is_none_or(|upper| key.as_slice() < upper.as_slice())
                        })
                        .map(|(id, _)| id)
                        .collect();
                    assert_eq!(lookup(routes, &key), expected, "key {key:?}");
                }
            };
            check(&routes, &|_| true);
            for (id, (lower, upper)) in (0..).zip(&ranges) {
                if removed[id as usize] {
                    routes.remove(id, lower, upper.as_deref());
                }
            }
            check(&routes, &|id| !removed[id as usize]);
            for (id, (lower, upper)) in (0..).zip(&ranges) {
                if !removed[id as usize] {
                    routes.remove(id, lower, upper.as_deref());
                }
            }
            prop_assert!(routes.is_empty());
        }
    }
}
