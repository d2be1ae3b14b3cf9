//! The in-memory index: which keys are live at a revision, and where their records are.
//!
//! A [`View`] is an immutable, copy-on-write [`Tree`] of the live keys at one revision, mapping
//! each key to the [`Location`] of its current record. Cloning a view is O(1); a write copies
//! only the tree path it touches, so the views of older revisions keep sharing every untouched
//! node with the newest one. Subtree counts in the tree answer "how many keys lie in this range"
//! in O(log n), which is what makes a chunk's exact remaining count cheap.
//!
//! The [`Index`] holds:
//! - the **visible** view: the newest revision readers may see (with durable writes, the newest
//!   revision known to be on disk);
//! - the **pending** views: revisions already applied to sled but not yet flushed, published in
//!   order once the flush that covers them returns;
//! - a bounded cache of **pinned** views: the revisions lists were started at, so that every
//!   chunk of a list reads the same snapshot. A view missing from the cache (evicted, or lost
//!   in a restart) is rebuilt by the store from the revision log; see `history`.

pub(crate) mod rebuilds;
pub(crate) mod tree;

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::encoding::Location;
use crate::Revision;

pub(crate) use tree::{Key, Tree};

/// The live keys at one revision.
#[derive(Clone)]
pub(crate) struct View {
    pub revision: Revision,
    pub tree: Tree<Location>,
    /// How many key changes lead up to this view, counted from an arbitrary origin (the view
    /// the store opened with): the difference between two views' counts is how many changes
    /// separate them, which bounds how many nodes they do not share.
    pub changes: i64,
}

impl View {
    /// At least the memory this view holds that `newest` does not share: each change between
    /// them copied at most one path, and no view holds more than a whole tree.
    fn bytes_apart_from(&self, newest: &View) -> usize {
        let apart = newest.changes.abs_diff(self.changes);
        let changes = usize::try_from(apart).unwrap_or(usize::MAX);
        changes
            .saturating_mul(self.tree.change_bytes_bound())
            .min(self.tree.bytes_bound())
    }
}

pub(crate) struct Index {
    /// Every hold is a few pointer moves: views are cloned, never copied, and views that are
    /// let go are dropped after the lock is released. The lock is std's, not parking_lot's:
    /// parking_lot's read-write lock makes readers queue behind a writer that is waiting, and
    /// its mutex hands itself to a waiter that has waited long enough, so a chunk could wait
    /// for a writer thread that has been woken but not yet run, which on a busy machine is
    /// milliseconds. std's mutex is never handed over: whoever runs first takes it.
    state: Mutex<State>,
    /// Bumped on every pin and pin lookup: over the count, the least recently used pin goes.
    clock: AtomicU64,
}

struct State {
    visible: View,
    /// Applied but not yet durable, in ascending revision order.
    pending: VecDeque<View>,
    pinned: BTreeMap<Revision, Pinned>,
    limits: PinLimits,
}

/// What the cache of pinned views may hold.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PinLimits {
    pub count: usize,
    /// Bytes of the nodes the pinned views do not share with the newest view, as
    /// [`View::bytes_apart_from`] bounds them.
    pub bytes: usize,
}

struct Pinned {
    view: View,
    last_used: AtomicU64,
}

impl State {
    fn newest(&self) -> &View {
        self.pending.back().unwrap_or(&self.visible)
    }

    /// The bytes each pinned view is charged, by revision.
    fn charges(&self) -> impl Iterator<Item = (Revision, usize, u64)> + '_ {
        let newest = self.newest();
        self.pinned.iter().map(|(revision, pinned)| {
            let bytes = pinned.view.bytes_apart_from(newest);
            (*revision, bytes, pinned.last_used.load(Ordering::Relaxed))
        })
    }

    /// Evicts pins until the cache is within its limits, and returns them, for the caller to
    /// drop once it has released the lock.
    ///
    /// Over the count, the least recently used go, whatever they hold: a list keeps its
    /// snapshot while fewer lists than the count start between two of its chunks, however old
    /// it is, and the pins that go are those of lists abandoned or read most slowly. Over the
    /// bytes, the costliest go first, and among equally costly ones the least recently used:
    /// views pinned at or near the newest revision cost almost nothing, so the lists of ordinary
    /// clients keep their snapshots while lists started at old revisions, which hold the most,
    /// give way.
    ///
    /// Every write calls this while any view is pinned, so within the limits it only adds up
    /// the charges.
    #[must_use]
    fn enforce_limits(&mut self) -> Vec<Pinned> {
        let mut evicted = Vec::new();
        while self.pinned.len() > self.limits.count {
            let least_recent = self
                .pinned
                .iter()
                .min_by_key(|(_, pinned)| pinned.last_used.load(Ordering::Relaxed))
                .map(|(revision, _)| *revision);
            evicted.extend(least_recent.and_then(|revision| self.pinned.remove(&revision)));
        }
        let mut total: usize = self.charges().map(|(_, bytes, _)| bytes).sum();
        if total <= self.limits.bytes {
            return evicted;
        }
        let mut charges: Vec<_> = self.charges().collect();
        charges.sort_by_key(|&(_, bytes, last_used)| (std::cmp::Reverse(bytes), last_used));
        for (revision, bytes, _) in charges {
            if total <= self.limits.bytes {
                break;
            }
            evicted.extend(self.pinned.remove(&revision));
            total -= bytes;
        }
        evicted
    }
}

impl Index {
    pub(crate) fn new(visible: View, limits: PinLimits) -> Self {
        Index {
            state: Mutex::new(State {
                visible,
                pending: VecDeque::new(),
                pinned: BTreeMap::new(),
                limits: PinLimits {
                    count: limits.count.max(1),
                    ..limits
                },
            }),
            clock: AtomicU64::new(0),
        }
    }

    /// A panic while the lock was held leaves a state as valid as any other: the only change
    /// that takes more than one step is eviction, and a half-done one leaves fewer pins.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The newest view readers may see.
    pub(crate) fn visible(&self) -> View {
        self.lock().visible.clone()
    }

    /// Queues a view applied to sled; it becomes visible at [`Index::publish_through`].
    pub(crate) fn stage(&self, view: View) {
        let mut state = self.lock();
        debug_assert!(state.newest().revision < view.revision);
        state.pending.push_back(view);
        // Every change the pinned views did not see makes them hold more.
        let evicted = if state.pinned.is_empty() {
            Vec::new()
        } else {
            state.enforce_limits()
        };
        drop(state);
        drop(evicted);
    }

    /// Makes every staged view up to `revision` visible.
    pub(crate) fn publish_through(&self, revision: Revision) {
        let mut state = self.lock();
        let published = state
            .pending
            .iter()
            .take_while(|view| view.revision <= revision)
            .count();
        let mut retired: Vec<View> = state.pending.drain(..published).collect();
        if let Some(newest) = retired.pop() {
            retired.push(std::mem::replace(&mut state.visible, newest));
        }
        drop(state);
        drop(retired);
    }

    /// The view pinned at `revision`, if the visible view or the cache has it.
    pub(crate) fn pinned(&self, revision: Revision) -> Option<View> {
        let state = self.lock();
        if state.visible.revision == revision {
            return Some(state.visible.clone());
        }
        state.pinned.get(&revision).map(|pinned| {
            let now = self.clock.fetch_add(1, Ordering::Relaxed) + 1;
            pinned.last_used.store(now, Ordering::Relaxed);
            pinned.view.clone()
        })
    }

    /// The oldest view newer than `revision` that is at hand: the starting point for rebuilding
    /// the view at `revision` by undoing the writes in between.
    pub(crate) fn nearest_above(&self, revision: Revision) -> View {
        let state = self.lock();
        state
            .pinned
            .range(revision.next()..)
            .next()
            .map_or_else(|| state.visible.clone(), |(_, pinned)| pinned.view.clone())
    }

    /// Keeps `view` so later chunks of a list started at its revision find it, unless that
    /// would take the cache over its limits (see [`State::enforce_limits`]).
    pub(crate) fn pin(&self, view: View) {
        let mut state = self.lock();
        // Later chunks of a list find their view pinned already; [`Index::pinned`] has
        // recorded the use.
        if state.pinned.contains_key(&view.revision) {
            return;
        }
        let now = self.clock.fetch_add(1, Ordering::Relaxed) + 1;
        state.pinned.insert(
            view.revision,
            Pinned {
                view,
                last_used: AtomicU64::new(now),
            },
        );
        let evicted = state.enforce_limits();
        drop(state);
        drop(evicted);
    }

    /// Drops pinned views below `compacted`: no read may use them any more.
    pub(crate) fn release_below(&self, compacted: Revision) {
        let mut state = self.lock();
        let kept = state.pinned.split_off(&compacted);
        let released = std::mem::replace(&mut state.pinned, kept);
        drop(state);
        drop(released);
    }

    /// How many views the cache holds, and the bytes they are charged.
    pub(crate) fn pinned_usage(&self) -> (usize, usize) {
        let state = self.lock();
        let bytes = state.charges().map(|(_, bytes, _)| bytes).sum();
        (state.pinned.len(), bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(revision: u64, keys: &[&str]) -> View {
        let location = Location {
            revision: Revision::new(revision),
            sub: 0,
        };
        View {
            revision: Revision::new(revision),
            tree: Tree::from_sorted(keys.iter().map(|k| (Key::from(k.as_bytes()), location))),
            changes: revision as i64,
        }
    }

    fn counted(count: usize) -> PinLimits {
        PinLimits {
            count,
            bytes: usize::MAX,
        }
    }

    #[test]
    fn staged_views_become_visible_only_when_published() {
        let index = Index::new(view(1, &["a"]), counted(4));
        index.stage(view(2, &["a", "b"]));
        index.stage(view(3, &["a", "b", "c"]));
        assert_eq!(index.visible().revision.get(), 1);
        index.publish_through(Revision::new(2));
        assert_eq!(index.visible().revision.get(), 2);
        assert_eq!(index.visible().tree.len(), 2);
        index.publish_through(Revision::new(9));
        assert_eq!(index.visible().revision.get(), 3);
    }

    #[test]
    fn least_recently_used_pin_is_evicted_first() {
        let index = Index::new(view(10, &[]), counted(2));
        index.pin(view(5, &["x"]));
        index.pin(view(6, &["y"]));
        assert!(index.pinned(Revision::new(5)).is_some());
        index.pin(view(7, &["z"]));
        assert!(index.pinned(Revision::new(6)).is_none());
        assert!(index.pinned(Revision::new(5)).is_some());
        assert!(index.pinned(Revision::new(7)).is_some());
    }

    /// A view of `keys` keys at `revision`, `changes` changes after the origin.
    fn sized(revision: u64, keys: u64, changes: i64) -> View {
        let location = Location {
            revision: Revision::new(revision),
            sub: 0,
        };
        let keys = (0..keys).map(|i| (Key::from(i.to_be_bytes().as_slice()), location));
        View {
            revision: Revision::new(revision),
            tree: Tree::from_sorted(keys),
            changes,
        }
    }

    #[test]
    fn over_its_byte_budget_the_cache_evicts_the_costliest_views_first() {
        let newest = sized(100, 10_000, 1_000);
        let whole = newest.tree.bytes_bound();
        let index = Index::new(
            newest,
            PinLimits {
                count: 64,
                bytes: whole + whole / 2,
            },
        );
        index.pin(sized(99, 10_000, 999));
        index.pin(sized(98, 10_000, 998));
        index.pin(sized(10, 10_000, 10));
        assert_eq!(index.pinned_usage().0, 3, "within the budget");
        index.pin(sized(20, 10_000, 20));
        assert!(
            index.pinned(Revision::new(10)).is_none() || index.pinned(Revision::new(20)).is_none()
        );
        assert!(index.pinned(Revision::new(99)).is_some());
        assert!(index.pinned(Revision::new(98)).is_some());
        assert!(index.pinned_usage().1 <= whole + whole / 2);

        // Writes make every pinned view hold more: the two recent views now hold a third of a
        // tree each, and the old one, which holds a whole tree, gives way.
        let per_change = sized(1, 10_000, 0).tree.change_bytes_bound();
        let apart = i64::try_from(whole / (3 * per_change)).expect("a small count");
        index.stage(sized(101, 10_000, 999 + apart));
        let (count, bytes) = index.pinned_usage();
        assert_eq!(count, 2, "{bytes} bytes in {count} views");
        assert!(bytes <= whole + whole / 2);
        assert!(index.pinned(Revision::new(99)).is_some());
        assert!(index.pinned(Revision::new(98)).is_some());
    }

    #[test]
    fn over_its_count_the_cache_keeps_an_old_view_that_is_in_use() {
        let index = Index::new(sized(1_000, 1_000, 1_000), counted(4));
        index.pin(sized(10, 1_000, 10));
        for revision in 1_001..1_100 {
            index.stage(sized(revision, 1_000, revision as i64));
            index.publish_through(Revision::new(revision));
            index.pin(sized(revision, 1_000, revision as i64));
            assert!(
                index.pinned(Revision::new(10)).is_some(),
                "the old list's next chunk finds its view after {revision}"
            );
            assert!(index.pinned_usage().0 <= 4);
        }
        assert!(index.pinned(Revision::new(1_050)).is_none(), "unused");
    }

    #[test]
    fn a_view_over_the_whole_budget_is_not_kept() {
        let newest = sized(100, 10_000, 1_000);
        let budget = 2 * newest.tree.change_bytes_bound();
        let index = Index::new(
            newest,
            PinLimits {
                count: 64,
                bytes: budget,
            },
        );
        index.pin(sized(99, 10_000, 999));
        assert!(
            index.pinned(Revision::new(99)).is_some(),
            "one change apart fits"
        );
        index.pin(sized(1, 10_000, 0));
        assert!(index.pinned(Revision::new(1)).is_none());
        assert!(index.pinned_usage().1 <= budget);
    }

    #[test]
    fn nearest_above_prefers_the_closest_newer_pin() {
        let index = Index::new(view(10, &[]), counted(8));
        index.pin(view(4, &[]));
        index.pin(view(7, &[]));
        assert_eq!(index.nearest_above(Revision::new(5)).revision.get(), 7);
        assert_eq!(index.nearest_above(Revision::new(7)).revision.get(), 10);
        assert_eq!(index.nearest_above(Revision::new(3)).revision.get(), 4);
        index.release_below(Revision::new(5));
        assert_eq!(index.nearest_above(Revision::new(3)).revision.get(), 7);
        assert_eq!(index.pinned_usage().0, 1);
    }
}
