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

pub(crate) mod tree;

use std::collections::{BTreeMap, VecDeque};

use parking_lot::RwLock;

use crate::encoding::Location;
use crate::Revision;

pub(crate) use tree::{Key, Tree};

/// The live keys at one revision.
#[derive(Clone)]
pub(crate) struct View {
    pub revision: Revision,
    pub tree: Tree<Location>,
}

pub(crate) struct Index {
    state: RwLock<State>,
}

struct State {
    visible: View,
    /// Applied but not yet durable, in ascending revision order.
    pending: VecDeque<View>,
    pinned: BTreeMap<Revision, Pinned>,
    pin_capacity: usize,
    /// Bumped on every pin lookup; the least recently used pin is evicted first.
    clock: u64,
}

struct Pinned {
    view: View,
    last_used: u64,
}

impl Index {
    pub(crate) fn new(visible: View, pin_capacity: usize) -> Self {
        Index {
            state: RwLock::new(State {
                visible,
                pending: VecDeque::new(),
                pinned: BTreeMap::new(),
                pin_capacity: pin_capacity.max(1),
                clock: 0,
            }),
        }
    }

    /// The newest view readers may see.
    pub(crate) fn visible(&self) -> View {
        self.state.read().visible.clone()
    }

    /// Queues a view applied to sled; it becomes visible at [`Index::publish_through`].
    pub(crate) fn stage(&self, view: View) {
        let mut state = self.state.write();
        debug_assert!(
            state
                .pending
                .back()
                .map_or(state.visible.revision, |v| v.revision)
                < view.revision
        );
        state.pending.push_back(view);
    }

    /// Makes every staged view up to `revision` visible.
    pub(crate) fn publish_through(&self, revision: Revision) {
        let mut state = self.state.write();
        while state
            .pending
            .front()
            .is_some_and(|view| view.revision <= revision)
        {
            state.visible = state.pending.pop_front().expect("front was just checked");
        }
    }

    /// The view pinned at `revision`, if the visible view or the cache has it.
    pub(crate) fn pinned(&self, revision: Revision) -> Option<View> {
        let mut state = self.state.write();
        if state.visible.revision == revision {
            return Some(state.visible.clone());
        }
        state.clock += 1;
        let now = state.clock;
        state.pinned.get_mut(&revision).map(|pinned| {
            pinned.last_used = now;
            pinned.view.clone()
        })
    }

    /// The oldest view newer than `revision` that is at hand: the starting point for rebuilding
    /// the view at `revision` by undoing the writes in between.
    pub(crate) fn nearest_above(&self, revision: Revision) -> View {
        let state = self.state.read();
        state
            .pinned
            .range(revision.next()..)
            .next()
            .map_or_else(|| state.visible.clone(), |(_, pinned)| pinned.view.clone())
    }

    /// Keeps `view` so later chunks of a list started at its revision find it.
    pub(crate) fn pin(&self, view: View) {
        let mut state = self.state.write();
        state.clock += 1;
        let now = state.clock;
        state.pinned.insert(
            view.revision,
            Pinned {
                view,
                last_used: now,
            },
        );
        while state.pinned.len() > state.pin_capacity {
            let oldest = state
                .pinned
                .iter()
                .min_by_key(|(_, pinned)| pinned.last_used)
                .map(|(revision, _)| *revision)
                .expect("the cache is over capacity, so it is not empty");
            state.pinned.remove(&oldest);
        }
    }

    /// Drops pinned views below `compacted`: no read may use them any more.
    pub(crate) fn release_below(&self, compacted: Revision) {
        self.state
            .write()
            .pinned
            .retain(|revision, _| *revision >= compacted);
    }

    /// How many views the cache holds.
    pub(crate) fn pinned_count(&self) -> usize {
        self.state.read().pinned.len()
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
        }
    }

    #[test]
    fn staged_views_become_visible_only_when_published() {
        let index = Index::new(view(1, &["a"]), 4);
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
        let index = Index::new(view(10, &[]), 2);
        index.pin(view(5, &["x"]));
        index.pin(view(6, &["y"]));
        assert!(index.pinned(Revision::new(5)).is_some());
        index.pin(view(7, &["z"]));
        assert!(index.pinned(Revision::new(6)).is_none());
        assert!(index.pinned(Revision::new(5)).is_some());
        assert!(index.pinned(Revision::new(7)).is_some());
    }

    #[test]
    fn nearest_above_prefers_the_closest_newer_pin() {
        let index = Index::new(view(10, &[]), 8);
        index.pin(view(4, &[]));
        index.pin(view(7, &[]));
        assert_eq!(index.nearest_above(Revision::new(5)).revision.get(), 7);
        assert_eq!(index.nearest_above(Revision::new(7)).revision.get(), 10);
        assert_eq!(index.nearest_above(Revision::new(3)).revision.get(), 4);
        index.release_below(Revision::new(5));
        assert_eq!(index.nearest_above(Revision::new(3)).revision.get(), 7);
        assert_eq!(index.pinned_count(), 1);
    }
}
