//! The in-memory index of revkv: a persistent (copy-on-write) B+tree with subtree counts.
//!
//! Snapshots are why this is not `std::collections::BTreeMap`: a reader clones the tree in O(1)
//! and keeps reading its clone while the writer moves on. Every node sits behind an `Arc` and
//! writers reach nodes through `Arc::make_mut`, so a node is copied only while some snapshot
//! still shares it, and only along the root-to-leaf path that the write touches.
//!
//! Internal nodes cache the entry count of each child. That turns counting a key range into two
//! root-to-leaf descents instead of a walk over the entries, and it lets the range iterators know
//! up front how many entries they will yield, so they never compare keys while iterating.

use std::iter::FusedIterator;
use std::mem;
use std::ops::Bound;
use std::sync::Arc;

/// A key as stored in the tree; cloning it is a reference-count increment.
pub(crate) type Key = Arc<[u8]>;

/// Capacity of every node: entries per leaf, children per internal node.
///
/// Reads barely care: a lookup makes about log2(n) key comparisons whatever the fanout, and
/// each comparison chases a key pointer. Writes after a snapshot do care: each level copies one
/// node, which clones `FANOUT` `Arc`s, each an atomic increment on a separate allocation. Such
/// a copy costs about `FANOUT * log_FANOUT(n)` increments per write, less for 32 than for 64.
/// Memory barely cares: a leaf entry is 16 bytes of key pointer plus the value either way, and
/// at 32 the node headers and internal levels add about 3 bytes per key (measured with a
/// 12-byte value: 31 node bytes per entry bulk-built, 37 after random inserts, which leave
/// leaves about 70% full).
const FANOUT: usize = 32;

const fn max_of(a: usize, b: usize) -> usize {
    if a > b {
        a
    } else {
        b
    }
}

/// Node vectors grow in steps of this many slots instead of doubling: doubling would leave up
/// to half of a leaf unused, and node memory is the per-key cost that the engine budgets.
const GROWTH_STEP: usize = 8;

/// An ordered map from byte-string keys to `V`.
///
/// Clone is O(1): the clone shares every node, and later writes to either copy
/// copy only the root-to-leaf path they touch (Arc::make_mut), so the other copy never changes.
///
/// `B` is the node capacity. The engine uses the default; tests also use tiny capacities so that
/// a few dozen keys already build deep trees that exercise every rebalancing case.
#[derive(Clone)]
pub(crate) struct Tree<V, const B: usize = FANOUT> {
    /// `None` exactly when the tree is empty, so an empty tree allocates nothing.
    root: Option<Arc<Node<V>>>,
    /// The entry count, kept here so that `len` and unbounded ranges need no descent.
    len: usize,
}

/// A tree node; one type for both kinds so that a child pointer can hold either.
#[derive(Clone)]
enum Node<V> {
    /// A bottom node, holding entries.
    Leaf(Leaf<V>),
    /// An internal node, holding children.
    Branch(Branch<V>),
}

/// The entries of a bottom node, keys and values in parallel vectors.
///
/// Two vectors instead of one of pairs: a pair with a 12-byte value pads to 32 bytes, the two
/// vectors store 28, and binary search touches only the keys.
#[derive(Clone)]
struct Leaf<V> {
    /// Strictly ascending.
    keys: Vec<Key>,
    /// `vals[i]` belongs to `keys[i]`.
    vals: Vec<V>,
}

/// The children of an internal node and the keys that route between them.
///
/// `children.len() == seps.len() + 1` always, which is what makes indexing `children` with a
/// routed position safe.
#[derive(Clone)]
struct Branch<V> {
    /// `seps[i]` is the smallest key of `children[i + 1]`, as an `Arc` clone of that very key:
    /// separators are kept exact (refreshed when that key is removed), so they never keep the
    /// bytes of a removed key alive.
    seps: Vec<Key>,
    /// Subtrees in key order.
    children: Vec<Child<V>>,
}

/// A child pointer with the entry count of its subtree.
///
/// The count lives in the parent rather than in the child so that counting and rank descents
/// read one contiguous array per level instead of dereferencing every child.
#[derive(Clone)]
struct Child<V> {
    /// The subtree, shared with snapshots until a write needs to change it.
    node: Arc<Node<V>>,
    /// Number of entries in the subtree.
    count: usize,
}

/// What a recursive insert reports to the parent.
enum Insert<V> {
    /// The key was present; here is its previous value. Counts do not change.
    Replaced(V),
    /// A new entry was added; the child may have split.
    Added(Option<Split<V>>),
}

/// The right half of a node that overflowed, to be placed right after it in the parent.
struct Split<V> {
    /// Smallest key of `right`.
    sep: Key,
    /// The new node and its entry count.
    right: Child<V>,
}

/// Cursor over the entries of one tree: the path from the root to the current entry.
struct Cursor<'a, V> {
    /// For each internal level, top down: the children there and which one the path follows.
    path: Vec<(&'a [Child<V>], usize)>,
    /// The leaf that holds the current entry.
    leaf: &'a Leaf<V>,
    /// Position of the current entry in `leaf`.
    idx: usize,
}

/// The state shared by both range iterators.
struct Walk<'a, V> {
    /// Positioned on the next entry to yield; `None` when the range is empty.
    cursor: Option<Cursor<'a, V>>,
    /// Entries still to yield, known from the subtree counts, so no key is compared to a bound.
    remaining: usize,
}

/// Ascending iterator over the entries of a key range, from [`Tree::range`].
pub(crate) struct Range<'a, V>(Walk<'a, V>);

/// Descending iterator over the entries of a key range, from [`Tree::range_rev`].
pub(crate) struct RangeRev<'a, V>(Walk<'a, V>);

/// Reserves room for `extra` more items, growing in `GROWTH_STEP` steps but never past `cap`.
///
/// A node briefly holds one item more than its capacity before it splits; with the default
/// doubling, that one item would grow a 32-slot vector to 64 slots.
fn reserve_capped<T>(v: &mut Vec<T>, extra: usize, cap: usize) {
    let needed = v.len() + extra;
    if needed > v.capacity() {
        let target = needed.next_multiple_of(GROWTH_STEP).min(cap).max(needed);
        v.reserve_exact(target - v.len());
    }
}

/// Moves items from the end of `prev` to the front of `last` until `last` holds half of both.
///
/// Bulk building fills nodes to capacity, so only the last node of a level can end up below the
/// minimum fill; sharing with its full neighbour lifts both to at least half.
fn even_out<T>(prev: &mut Vec<T>, last: &mut Vec<T>) {
    let take = ((prev.len() + last.len()) / 2).saturating_sub(last.len());
    let start = prev.len() - take;
    last.splice(0..0, prev.drain(start..));
}

impl<V> Node<V> {
    /// The size that the fill rules constrain: entries of a leaf, children of a branch.
    fn width(&self) -> usize {
        match self {
            Node::Leaf(leaf) => leaf.keys.len(),
            Node::Branch(branch) => branch.children.len(),
        }
    }

    /// The smallest key of the subtree, which is what the parent's separator must name.
    fn first_key(&self) -> &Key {
        let mut node = self;
        loop {
            match node {
                Node::Leaf(leaf) => {
                    return leaf
                        .keys
                        .first()
                        .expect("only an empty tree has an empty leaf, and it has no root")
                }
                Node::Branch(branch) => {
                    node = &branch
                        .children
                        .first()
                        .expect("a branch has at least two children")
                        .node
                }
            }
        }
    }
}

impl<V> Leaf<V> {
    /// Position of `key`, or where it would be inserted.
    fn search(&self, key: &[u8]) -> Result<usize, usize> {
        self.keys.binary_search_by(|k| (**k).cmp(key))
    }
}

impl<V> Branch<V> {
    /// The child whose key range holds `key`, and whether `key` is exactly that child's
    /// separator (its smallest key), which a removal must then refresh.
    fn route(&self, key: &[u8]) -> (usize, bool) {
        match self.seps.binary_search_by(|s| (**s).cmp(key)) {
            Ok(i) => (i + 1, true),
            Err(i) => (i, false),
        }
    }
}

/// An empty tree, without allocating.
impl<V, const B: usize> Default for Tree<V, B> {
    fn default() -> Self {
        Tree { root: None, len: 0 }
    }
}

/// The constructors that pick the engine's node capacity, kept apart from the generic methods so
/// that `Tree::new()` needs no type annotation to infer the capacity.
impl<V: Clone> Tree<V> {
    /// An empty tree. Allocates nothing. The engine starts from `from_sorted`, even when empty.
    #[cfg(test)]
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// O(n) bulk build from strictly ascending keys (panics naming the invariant if they are not ascending:
    /// callers feed it from an ordered source, so disorder is a bug, not bad input).
    ///
    /// Every node is filled to capacity except that the last node of each level shares with its
    /// neighbour when it would fall below half. That is the least memory, and the fastest build,
    /// for an index that is loaded once and then mostly appended to; a later insert into a full
    /// leaf just splits it.
    pub(crate) fn from_sorted<I: IntoIterator<Item = (Key, V)>>(items: I) -> Self {
        Self::build(items)
    }
}

impl<V: Clone, const B: usize> Tree<V, B> {
    /// Minimum width of a non-root node. The assertion rejects capacities whose halves would
    /// break this after a split (odd or tiny `B`) when the program is compiled.
    const MIN: usize = {
        assert!(
            B >= 4 && B.is_multiple_of(2),
            "node capacity must be even and at least 4"
        );
        B / 2
    };

    /// The most memory one node takes: its `Arc` allocation, and vectors of the most slots a
    /// node ever reserves.
    const NODE_BYTES: usize = 2 * size_of::<usize>()
        + size_of::<Node<V>>()
        + (B + GROWTH_STEP) * (size_of::<Key>() + max_of(size_of::<V>(), size_of::<Child<V>>()));

    /// Number of levels, leaves included.
    pub(crate) fn height(&self) -> usize {
        let mut height = 0;
        let mut node = self.root.as_deref();
        while let Some(n) = node {
            height += 1;
            node = match n {
                Node::Leaf(_) => None,
                Node::Branch(branch) => Some(&*branch.children[0].node),
            };
        }
        height
    }

    /// At least the node memory one insert or removal allocates when every node is shared
    /// with a snapshot: the copied path, plus the nodes a split adds on the way up.
    pub(crate) fn change_bytes_bound(&self) -> usize {
        (2 * self.height() + 1) * Self::NODE_BYTES
    }

    /// At least the node memory of the whole tree, the keys' own bytes not included (they are
    /// shared with every other view): every node but the root is at least half full.
    pub(crate) fn bytes_bound(&self) -> usize {
        (2 * (self.len / Self::MIN + 1) + self.height()) * Self::NODE_BYTES
    }

    /// The body of [`Tree::from_sorted`], for any node capacity.
    fn build<I: IntoIterator<Item = (Key, V)>>(items: I) -> Self {
        // Streams straight into leaves, so the input is never held twice.
        let mut leaves: Vec<Leaf<V>> = Vec::new();
        let mut len = 0;
        for (key, value) in items {
            if let Some(prev) = leaves.last().and_then(|leaf| leaf.keys.last()) {
                assert!(
                    **prev < *key,
                    "Tree::from_sorted needs strictly ascending keys, but {key:?} came after {prev:?}"
                );
            }
            if leaves.last().is_none_or(|leaf| leaf.keys.len() == B) {
                leaves.push(Leaf {
                    keys: Vec::with_capacity(B),
                    vals: Vec::with_capacity(B),
                });
            }
            let leaf = leaves
                .last_mut()
                .expect("a leaf with room was just ensured");
            leaf.keys.push(key);
            leaf.vals.push(value);
            len += 1;
        }
        if let [.., prev, last] = leaves.as_mut_slice() {
            if last.keys.len() < Self::MIN {
                even_out(&mut prev.keys, &mut last.keys);
                even_out(&mut prev.vals, &mut last.vals);
            }
        }

        // Each level is (smallest key, child) pairs; the keys become the parents' separators.
        let mut level: Vec<(Key, Child<V>)> = leaves
            .into_iter()
            .map(|leaf| {
                let first = leaf
                    .keys
                    .first()
                    .expect("bulk-built leaves are never empty")
                    .clone();
                let count = leaf.keys.len();
                let node = Arc::new(Node::Leaf(leaf));
                (first, Child { node, count })
            })
            .collect();
        while level.len() > 1 {
            let mut groups: Vec<Vec<(Key, Child<V>)>> = Vec::new();
            for item in level {
                if groups.last().is_none_or(|group| group.len() == B) {
                    groups.push(Vec::with_capacity(B));
                }
                groups
                    .last_mut()
                    .expect("a group with room was just ensured")
                    .push(item);
            }
            if let [.., prev, last] = groups.as_mut_slice() {
                if last.len() < Self::MIN {
                    even_out(prev, last);
                }
            }
            level = groups.into_iter().map(Self::branch_of).collect();
        }
        Tree {
            root: level.pop().map(|(_, child)| child.node),
            len,
        }
    }

    /// Turns one bulk-build group into a branch, returning its smallest key alongside.
    fn branch_of(group: Vec<(Key, Child<V>)>) -> (Key, Child<V>) {
        let count = group.iter().map(|(_, child)| child.count).sum();
        let mut seps = Vec::with_capacity(group.len().saturating_sub(1));
        let mut children = Vec::with_capacity(group.len());
        let mut first = None;
        for (key, child) in group {
            match first {
                None => first = Some(key),
                Some(_) => seps.push(key),
            }
            children.push(child);
        }
        let node = Arc::new(Node::Branch(Branch { seps, children }));
        (
            first.expect("bulk-build groups are never empty"),
            Child { node, count },
        )
    }

    /// Number of entries.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether the tree has no entries.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The value stored under `key`.
    pub(crate) fn get(&self, key: &[u8]) -> Option<&V> {
        let mut node = self.root.as_deref()?;
        loop {
            match node {
                Node::Branch(branch) => node = &branch.children[branch.route(key).0].node,
                Node::Leaf(leaf) => return leaf.search(key).ok().map(|i| &leaf.vals[i]),
            }
        }
    }

    /// Returns the previous value. O(log n); copies only shared nodes on the path.
    pub(crate) fn insert(&mut self, key: Key, value: V) -> Option<V> {
        let Some(root) = self.root.as_mut() else {
            let leaf = Leaf {
                keys: vec![key],
                vals: vec![value],
            };
            self.root = Some(Arc::new(Node::Leaf(leaf)));
            self.len = 1;
            return None;
        };
        match Self::insert_into(root, key, value) {
            Insert::Replaced(old) => Some(old),
            Insert::Added(split) => {
                self.len += 1;
                if let Some(split) = split {
                    // The old root becomes the left child; the clone is released by the
                    // assignment, so the left child stays unshared and writable in place.
                    let left = Child {
                        node: Arc::clone(root),
                        count: self.len - split.right.count,
                    };
                    let branch = Branch {
                        seps: vec![split.sep],
                        children: vec![left, split.right],
                    };
                    *root = Arc::new(Node::Branch(branch));
                }
                None
            }
        }
    }

    /// Inserts below `node`, copying it first if a snapshot shares it.
    fn insert_into(node: &mut Arc<Node<V>>, key: Key, value: V) -> Insert<V> {
        match Arc::make_mut(node) {
            Node::Leaf(leaf) => match leaf.search(&key) {
                // The stored key is kept: separators may be clones of it.
                Ok(i) => Insert::Replaced(mem::replace(&mut leaf.vals[i], value)),
                Err(i) => {
                    reserve_capped(&mut leaf.keys, 1, B + 1);
                    reserve_capped(&mut leaf.vals, 1, B + 1);
                    leaf.keys.insert(i, key);
                    leaf.vals.insert(i, value);
                    Insert::Added((leaf.keys.len() > B).then(|| Self::split_leaf(leaf)))
                }
            },
            Node::Branch(branch) => {
                let (i, _) = branch.route(&key);
                match Self::insert_into(&mut branch.children[i].node, key, value) {
                    Insert::Replaced(old) => Insert::Replaced(old),
                    Insert::Added(split) => {
                        branch.children[i].count += 1;
                        Insert::Added(split.and_then(|split| Self::absorb(branch, i, split)))
                    }
                }
            }
        }
    }

    /// Splits a leaf holding `B + 1` entries into halves of `B / 2` and `B / 2 + 1`.
    fn split_leaf(leaf: &mut Leaf<V>) -> Split<V> {
        let mid = leaf.keys.len() / 2;
        let right = Leaf {
            keys: leaf.keys.split_off(mid),
            vals: leaf.vals.split_off(mid),
        };
        // Under ascending inserts the left half is never written again: give back its slack.
        leaf.keys.shrink_to_fit();
        leaf.vals.shrink_to_fit();
        let sep = right.keys[0].clone();
        let count = right.keys.len();
        let node = Arc::new(Node::Leaf(right));
        Split {
            sep,
            right: Child { node, count },
        }
    }

    /// Places the right half of split child `i` after it, splitting `branch` in turn if it
    /// overflows.
    fn absorb(branch: &mut Branch<V>, i: usize, split: Split<V>) -> Option<Split<V>> {
        branch.children[i].count -= split.right.count;
        reserve_capped(&mut branch.seps, 1, B);
        reserve_capped(&mut branch.children, 1, B + 1);
        branch.seps.insert(i, split.sep);
        branch.children.insert(i + 1, split.right);
        if branch.children.len() <= B {
            return None;
        }
        let mid = branch.children.len() / 2;
        let children = branch.children.split_off(mid);
        let seps = branch.seps.split_off(mid);
        // seps[mid - 1] is the smallest key of children[mid], now the right node's smallest key.
        let sep = branch
            .seps
            .pop()
            .expect("an overflowing branch has more than two separators");
        branch.seps.shrink_to_fit();
        branch.children.shrink_to_fit();
        let count = children.iter().map(|child| child.count).sum();
        let node = Arc::new(Node::Branch(Branch { seps, children }));
        Some(Split {
            sep,
            right: Child { node, count },
        })
    }

    /// Returns the removed value. Rebalances (borrow from / merge with a sibling) so that every
    /// non-root node keeps at least half of its capacity; the root collapses when it has one child.
    pub(crate) fn remove(&mut self, key: &[u8]) -> Option<V> {
        // Looking first keeps a miss from copying a shared path that it would not change.
        self.get(key)?;
        let root = self
            .root
            .as_mut()
            .expect("the key was found, so there is a root");
        let old = Self::remove_from(root, key);
        self.len -= 1;
        if self.len == 0 {
            self.root = None;
        } else if let Node::Branch(branch) = Arc::make_mut(root) {
            // `remove_from` already made the root unshared, so `make_mut` copies nothing here.
            if branch.children.len() == 1 {
                let only = branch
                    .children
                    .pop()
                    .expect("the length was just checked")
                    .node;
                *root = only;
            }
        }
        Some(old)
    }

    /// Removes `key`, which must be present, below `node`, copying it first if a snapshot shares
    /// it, and returns its value. The caller fixes `node` if it ends up below the minimum width.
    fn remove_from(node: &mut Arc<Node<V>>, key: &[u8]) -> V {
        match Arc::make_mut(node) {
            Node::Leaf(leaf) => {
                let i = leaf
                    .search(key)
                    .expect("remove looks the key up before descending");
                leaf.keys.remove(i);
                leaf.vals.remove(i)
            }
            Node::Branch(branch) => {
                let (i, is_separator) = branch.route(key);
                let old = Self::remove_from(&mut branch.children[i].node, key);
                branch.children[i].count -= 1;
                if is_separator {
                    // The child lost its smallest key but kept at least one other: a non-root
                    // node had at least `MIN >= 2` entries below it.
                    branch.seps[i - 1] = branch.children[i].node.first_key().clone();
                }
                if branch.children[i].node.width() < Self::MIN {
                    Self::rebalance(branch, i);
                }
                old
            }
        }
    }

    /// Lifts child `i` back to the minimum width: borrows one item from a sibling that can spare
    /// it, otherwise merges it with a sibling (two minimal nodes fit in one).
    fn rebalance(branch: &mut Branch<V>, i: usize) {
        let spare = |j: usize| {
            branch
                .children
                .get(j)
                .is_some_and(|child| child.node.width() > Self::MIN)
        };
        let left_spares = i > 0 && spare(i - 1);
        let right_spares = spare(i + 1);
        if left_spares {
            Self::borrow_from_left(branch, i);
        } else if right_spares {
            Self::borrow_from_right(branch, i);
        } else if i > 0 {
            Self::merge(branch, i - 1);
        } else {
            Self::merge(branch, i);
        }
    }

    /// Moves the last item of child `i - 1` to the front of child `i`.
    fn borrow_from_left(branch: &mut Branch<V>, i: usize) {
        let (before, after) = branch.children.split_at_mut(i);
        let left = before
            .last_mut()
            .expect("borrowing from the left needs a left sibling");
        let this = after.first_mut().expect("the child to fix exists");
        let moved = match (Arc::make_mut(&mut left.node), Arc::make_mut(&mut this.node)) {
            (Node::Leaf(l), Node::Leaf(t)) => {
                let key = l.keys.pop().expect("a sibling that spares has entries");
                let val = l.vals.pop().expect("keys and values have equal lengths");
                reserve_capped(&mut t.keys, 1, B + 1);
                reserve_capped(&mut t.vals, 1, B + 1);
                t.keys.insert(0, key.clone());
                t.vals.insert(0, val);
                branch.seps[i - 1] = key;
                1
            }
            (Node::Branch(l), Node::Branch(t)) => {
                let child = l
                    .children
                    .pop()
                    .expect("a sibling that spares has children");
                // The moved child's smallest key now separates the two siblings, and the old
                // separator (the smallest key of `t`) now separates inside `t`.
                let sep = l.seps.pop().expect("a sibling that spares has separators");
                let old = mem::replace(&mut branch.seps[i - 1], sep);
                let count = child.count;
                reserve_capped(&mut t.seps, 1, B);
                reserve_capped(&mut t.children, 1, B + 1);
                t.seps.insert(0, old);
                t.children.insert(0, child);
                count
            }
            _ => unreachable!("all leaves are at the same depth, so siblings are of one kind"),
        };
        left.count -= moved;
        this.count += moved;
    }

    /// Moves the first item of child `i + 1` to the end of child `i`.
    fn borrow_from_right(branch: &mut Branch<V>, i: usize) {
        let (upto, after) = branch.children.split_at_mut(i + 1);
        let this = upto.last_mut().expect("the child to fix exists");
        let right = after
            .first_mut()
            .expect("borrowing from the right needs a right sibling");
        let moved = match (
            Arc::make_mut(&mut this.node),
            Arc::make_mut(&mut right.node),
        ) {
            (Node::Leaf(t), Node::Leaf(r)) => {
                let key = r.keys.remove(0);
                let val = r.vals.remove(0);
                reserve_capped(&mut t.keys, 1, B + 1);
                reserve_capped(&mut t.vals, 1, B + 1);
                t.keys.push(key);
                t.vals.push(val);
                let first = r.keys.first().expect("a sibling that spares keeps entries");
                branch.seps[i] = first.clone();
                1
            }
            (Node::Branch(t), Node::Branch(r)) => {
                let child = r.children.remove(0);
                // Mirror of `borrow_from_left`: separators rotate through the parent.
                let sep = r.seps.remove(0);
                let old = mem::replace(&mut branch.seps[i], sep);
                let count = child.count;
                reserve_capped(&mut t.seps, 1, B);
                reserve_capped(&mut t.children, 1, B + 1);
                t.seps.push(old);
                t.children.push(child);
                count
            }
            _ => unreachable!("all leaves are at the same depth, so siblings are of one kind"),
        };
        this.count += moved;
        right.count -= moved;
    }

    /// Merges child `j + 1` into child `j`.
    fn merge(branch: &mut Branch<V>, j: usize) {
        let right = branch.children.remove(j + 1);
        let sep = branch.seps.remove(j);
        let left = &mut branch.children[j];
        left.count += right.count;
        // An unshared right node is moved from; a shared one is copied, as a snapshot keeps it.
        match (
            Arc::make_mut(&mut left.node),
            Arc::unwrap_or_clone(right.node),
        ) {
            (Node::Leaf(l), Node::Leaf(r)) => {
                reserve_capped(&mut l.keys, r.keys.len(), B + 1);
                reserve_capped(&mut l.vals, r.vals.len(), B + 1);
                l.keys.extend(r.keys);
                l.vals.extend(r.vals);
            }
            (Node::Branch(l), Node::Branch(r)) => {
                // `sep` is the smallest key of `r`, so it separates the two halves.
                reserve_capped(&mut l.seps, r.seps.len() + 1, B);
                reserve_capped(&mut l.children, r.children.len(), B + 1);
                l.seps.push(sep);
                l.seps.extend(r.seps);
                l.children.extend(r.children);
            }
            _ => unreachable!("all leaves are at the same depth, so siblings are of one kind"),
        }
    }

    /// Number of keys below `key`, or at most `key` when `inclusive`; one descent that adds the
    /// counts of the children left of the path.
    fn rank(&self, key: &[u8], inclusive: bool) -> usize {
        let Some(mut node) = self.root.as_deref() else {
            return 0;
        };
        let mut before = 0;
        loop {
            match node {
                Node::Branch(branch) => {
                    let (i, _) = branch.route(key);
                    before += branch.children[..i].iter().map(|c| c.count).sum::<usize>();
                    node = &branch.children[i].node;
                }
                Node::Leaf(leaf) => {
                    let below = if inclusive {
                        leaf.keys.partition_point(|k| **k <= *key)
                    } else {
                        leaf.keys.partition_point(|k| **k < *key)
                    };
                    return before + below;
                }
            }
        }
    }

    /// The ranks `[start, end)` of the entries within the bounds, with `end >= start` even for an
    /// inverted range, so that callers can subtract.
    fn span(&self, lower: Bound<&[u8]>, upper: Bound<&[u8]>) -> (usize, usize) {
        let start = match lower {
            Bound::Included(key) => self.rank(key, false),
            Bound::Excluded(key) => self.rank(key, true),
            Bound::Unbounded => 0,
        };
        let end = match upper {
            Bound::Included(key) => self.rank(key, true),
            Bound::Excluded(key) => self.rank(key, false),
            Bound::Unbounded => self.len,
        };
        (start, end.max(start))
    }

    /// Number of keys inside the range, in O(log n) using cached subtree counts (never by walking entries).
    pub(crate) fn count(&self, lower: Bound<&[u8]>, upper: Bound<&[u8]>) -> usize {
        let (start, end) = self.span(lower, upper);
        end - start
    }

    /// Ascending iterator over the keys in the range. Creating it is O(log n); each `next` is amortised O(1).
    pub(crate) fn range(&self, lower: Bound<&[u8]>, upper: Bound<&[u8]>) -> Range<'_, V> {
        Range(self.walk(lower, upper, true))
    }

    /// Descending iterator over the keys in the range (largest first). Same costs.
    pub(crate) fn range_rev(&self, lower: Bound<&[u8]>, upper: Bound<&[u8]>) -> RangeRev<'_, V> {
        RangeRev(self.walk(lower, upper, false))
    }

    /// Positions a walk on the first entry of the range in the given direction.
    fn walk(&self, lower: Bound<&[u8]>, upper: Bound<&[u8]>, forward: bool) -> Walk<'_, V> {
        let (start, end) = self.span(lower, upper);
        let cursor = self
            .root
            .as_deref()
            .filter(|_| start < end)
            .map(|root| Cursor::seek(root, if forward { start } else { end - 1 }));
        Walk {
            cursor,
            remaining: end - start,
        }
    }
}

impl<'a, V> Cursor<'a, V> {
    /// A cursor on the entry of rank `rank`, found by subtree counts.
    fn seek(root: &'a Node<V>, mut rank: usize) -> Self {
        let mut path = Vec::new();
        let mut node = root;
        loop {
            match node {
                Node::Branch(branch) => {
                    // A linear scan of at most `B` counts: prefix sums would have to be
                    // rewritten on every insert and remove below this node.
                    let mut i = 0;
                    while i + 1 < branch.children.len() && rank >= branch.children[i].count {
                        rank -= branch.children[i].count;
                        i += 1;
                    }
                    path.push((branch.children.as_slice(), i));
                    node = &branch.children[i].node;
                }
                Node::Leaf(leaf) => {
                    return Cursor {
                        path,
                        leaf,
                        idx: rank,
                    }
                }
            }
        }
    }

    /// The entry under the cursor; `None` only if the counts lied, which callers treat as the end.
    fn current(&self) -> Option<(&'a Key, &'a V)> {
        let leaf: &'a Leaf<V> = self.leaf;
        Some((leaf.keys.get(self.idx)?, leaf.vals.get(self.idx)?))
    }

    /// Moves to the next entry in the direction. Amortised O(1): a climb of `h` levels happens
    /// once per `B^h` entries or so.
    fn step(&mut self, forward: bool) {
        if forward && self.idx + 1 < self.leaf.keys.len() {
            self.idx += 1;
            return;
        }
        if !forward && self.idx > 0 {
            self.idx -= 1;
            return;
        }
        // This leaf is done: climb to the nearest level with a sibling subtree on that side.
        while let Some(top) = self.path.last_mut() {
            let children: &'a [Child<V>] = top.0;
            let next = match (forward, top.1) {
                (true, i) => i + 1,
                (false, 0) => children.len(),
                (false, i) => i - 1,
            };
            if let Some(child) = children.get(next) {
                top.1 = next;
                self.descend(&child.node, forward);
                return;
            }
            self.path.pop();
        }
    }

    /// Descends from `node` to its first entry (forward) or last entry (backward).
    fn descend(&mut self, mut node: &'a Node<V>, forward: bool) {
        loop {
            match node {
                Node::Branch(branch) => {
                    let i = if forward {
                        0
                    } else {
                        branch.children.len() - 1
                    };
                    self.path.push((branch.children.as_slice(), i));
                    node = &branch.children[i].node;
                }
                Node::Leaf(leaf) => {
                    self.leaf = leaf;
                    self.idx = if forward {
                        0
                    } else {
                        leaf.keys.len().saturating_sub(1)
                    };
                    return;
                }
            }
        }
    }
}

impl<'a, V> Walk<'a, V> {
    /// Yields the current entry and steps; never steps past the last entry of the range, so
    /// finishing a range costs no climb.
    fn next(&mut self, forward: bool) -> Option<(&'a Key, &'a V)> {
        if self.remaining == 0 {
            return None;
        }
        let cursor = self.cursor.as_mut()?;
        let Some(item) = cursor.current() else {
            self.remaining = 0;
            return None;
        };
        self.remaining -= 1;
        if self.remaining > 0 {
            cursor.step(forward);
        }
        Some(item)
    }
}

/// Ascending; exact length known from the subtree counts.
impl<'a, V> Iterator for Range<'a, V> {
    type Item = (&'a Key, &'a V);

    fn next(&mut self) -> Option<Self::Item> {
        self.0.next(true)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.0.remaining, Some(self.0.remaining))
    }
}

/// `len` is exact: the subtree counts give it when the range is created.
impl<V> ExactSizeIterator for Range<'_, V> {}

/// Once `remaining` reaches zero it stays there.
impl<V> FusedIterator for Range<'_, V> {}

/// Descending; exact length known from the subtree counts.
impl<'a, V> Iterator for RangeRev<'a, V> {
    type Item = (&'a Key, &'a V);

    fn next(&mut self) -> Option<Self::Item> {
        self.0.next(false)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.0.remaining, Some(self.0.remaining))
    }
}

/// `len` is exact: the subtree counts give it when the range is created.
impl<V> ExactSizeIterator for RangeRev<'_, V> {}

/// Once `remaining` reaches zero it stays there.
impl<V> FusedIterator for RangeRev<'_, V> {}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::{BTreeMap, HashSet};

    /// The reference the tree is checked against.
    type Model = BTreeMap<Vec<u8>, u32>;

    /// Test-only inspection of the structure.
    impl<V: Clone, const B: usize> Tree<V, B> {
        /// Panics unless every structural invariant holds: equal leaf depth, strictly ascending
        /// keys, separators that route correctly and are `Arc` clones of their subtree's smallest
        /// key, exact cached counts, minimum fill, a branch root with at least two children, and
        /// no node reserving room beyond its one overflow slot.
        fn check(&self) {
            let Some(root) = self.root.as_deref() else {
                assert_eq!(self.len, 0, "only an empty tree has no root");
                return;
            };
            let mut prev = None;
            let mut leaf_depth = None;
            let total = Self::check_node(root, 0, true, (None, None), &mut prev, &mut leaf_depth);
            assert_eq!(
                total, self.len,
                "the cached length is the number of entries"
            );
            assert!(total > 0, "an empty tree has no root");
        }

        /// Checks the subtree at `node` whose keys must lie in `[lo, hi)`; returns its entry count.
        fn check_node<'a>(
            node: &'a Node<V>,
            depth: usize,
            is_root: bool,
            (lo, hi): (Option<&'a Key>, Option<&'a Key>),
            prev: &mut Option<&'a Key>,
            leaf_depth: &mut Option<usize>,
        ) -> usize {
            let width = node.width();
            assert!(width <= B, "a node holds at most B items");
            if !is_root {
                assert!(width >= Self::MIN, "a non-root node is at least half full");
            }
            match node {
                Node::Leaf(leaf) => {
                    assert_eq!(leaf.keys.len(), leaf.vals.len());
                    assert!(leaf.keys.capacity() <= B + 1 && leaf.vals.capacity() <= B + 1);
                    assert_eq!(
                        *leaf_depth.get_or_insert(depth),
                        depth,
                        "leaves share a depth"
                    );
                    for key in &leaf.keys {
                        if let Some(prev) = *prev {
                            assert!(**prev < **key, "keys ascend strictly across the tree");
                        }
                        if let Some(lo) = lo {
                            assert!(**lo <= **key, "a key is not below its separator");
                        }
                        if let Some(hi) = hi {
                            assert!(**key < **hi, "a key is below the next separator");
                        }
                        *prev = Some(key);
                    }
                    leaf.keys.len()
                }
                Node::Branch(branch) => {
                    assert_eq!(branch.children.len(), branch.seps.len() + 1);
                    assert!(branch.seps.capacity() <= B && branch.children.capacity() <= B + 1);
                    if is_root {
                        assert!(width >= 2, "a branch root has at least two children");
                    }
                    let mut total = 0;
                    for (j, child) in branch.children.iter().enumerate() {
                        let child_lo = if j == 0 {
                            lo
                        } else {
                            Some(&branch.seps[j - 1])
                        };
                        let child_hi = branch.seps.get(j).or(hi);
                        let bounds = (child_lo, child_hi);
                        let n = Self::check_node(
                            &child.node,
                            depth + 1,
                            false,
                            bounds,
                            prev,
                            leaf_depth,
                        );
                        assert_eq!(
                            n, child.count,
                            "the cached count is the subtree's entry count"
                        );
                        if j > 0 {
                            assert!(
                                Arc::ptr_eq(child.node.first_key(), &branch.seps[j - 1]),
                                "a separator is the very Arc of its subtree's smallest key"
                            );
                        }
                        total += n;
                    }
                    total
                }
            }
        }

        /// Addresses of all nodes, to see which ones two trees share.
        fn node_addresses(&self) -> HashSet<*const Node<V>> {
            let mut seen = HashSet::new();
            let mut stack: Vec<&Arc<Node<V>>> = self.root.iter().collect();
            while let Some(node) = stack.pop() {
                seen.insert(Arc::as_ptr(node));
                if let Node::Branch(branch) = &**node {
                    stack.extend(branch.children.iter().map(|child| &child.node));
                }
            }
            seen
        }

        /// Heap bytes of the nodes (allocation headers excluded), without the key allocations.
        fn node_bytes(&self) -> usize {
            use std::mem::size_of;
            let mut bytes = 0;
            let mut stack: Vec<&Node<V>> = self.root.as_deref().into_iter().collect();
            while let Some(node) = stack.pop() {
                // The `Arc` allocation: strong and weak counts, then the node.
                bytes += 2 * size_of::<usize>() + size_of::<Node<V>>();
                match node {
                    Node::Leaf(leaf) => {
                        bytes += leaf.keys.capacity() * size_of::<Key>();
                        bytes += leaf.vals.capacity() * size_of::<V>();
                    }
                    Node::Branch(branch) => {
                        bytes += branch.seps.capacity() * size_of::<Key>();
                        bytes += branch.children.capacity() * size_of::<Child<V>>();
                        stack.extend(branch.children.iter().map(|child| &*child.node));
                    }
                }
            }
            bytes
        }
    }

    /// Deterministic, dependency-free randomness (splitmix64) for the large tests.
    struct Rng(u64);

    impl Rng {
        /// Next 64 random bits.
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }

        /// A number in `0..n`.
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }

        /// Fisher-Yates shuffle.
        fn shuffle<T>(&mut self, items: &mut [T]) {
            for i in (1..items.len()).rev() {
                items.swap(i, self.below(i + 1));
            }
        }
    }

    /// A key whose byte order is the numeric order of `i`.
    fn key_of(i: u64) -> Key {
        Key::from(&i.to_be_bytes()[..])
    }

    /// A key from bytes.
    fn key(bytes: &[u8]) -> Key {
        Key::from(bytes)
    }

    /// Borrows an owned bound the way the tree takes it.
    fn slice_bound(bound: &Bound<Vec<u8>>) -> Bound<&[u8]> {
        bound.as_ref().map(Vec::as_slice)
    }

    /// Whether `key` lies within the bounds (which `BTreeMap::range` cannot answer: it panics
    /// on inverted ranges).
    fn within(key: &[u8], lower: &Bound<Vec<u8>>, upper: &Bound<Vec<u8>>) -> bool {
        let above = match lower {
            Bound::Included(l) => key >= l.as_slice(),
            Bound::Excluded(l) => key > l.as_slice(),
            Bound::Unbounded => true,
        };
        let below = match upper {
            Bound::Included(u) => key <= u.as_slice(),
            Bound::Excluded(u) => key < u.as_slice(),
            Bound::Unbounded => true,
        };
        above && below
    }

    /// Asserts that `count`, `range` and `range_rev` agree with the model on one pair of bounds,
    /// including exact lengths and fusing.
    fn assert_range<const B: usize>(
        tree: &Tree<u32, B>,
        model: &Model,
        lower: &Bound<Vec<u8>>,
        upper: &Bound<Vec<u8>>,
    ) {
        let mut expected: Vec<(&[u8], u32)> = model
            .iter()
            .filter(|(k, _)| within(k, lower, upper))
            .map(|(k, v)| (k.as_slice(), *v))
            .collect();
        let (lo, hi) = (slice_bound(lower), slice_bound(upper));
        assert_eq!(
            tree.count(lo, hi),
            expected.len(),
            "count of {lower:?}..{upper:?}"
        );

        let mut forward = tree.range(lo, hi);
        assert_eq!(forward.len(), expected.len());
        let got: Vec<(&[u8], u32)> = forward.by_ref().map(|(k, v)| (&**k, *v)).collect();
        assert_eq!(got, expected, "range {lower:?}..{upper:?}");
        assert!(forward.next().is_none(), "range is fused");

        let mut backward = tree.range_rev(lo, hi);
        assert_eq!(backward.len(), expected.len());
        let got: Vec<(&[u8], u32)> = backward.by_ref().map(|(k, v)| (&**k, *v)).collect();
        expected.reverse();
        assert_eq!(got, expected, "range_rev {lower:?}..{upper:?}");
        assert!(backward.next().is_none(), "range_rev is fused");
    }

    /// Asserts that the tree holds exactly the model's entries and is structurally valid.
    fn assert_same<const B: usize>(tree: &Tree<u32, B>, model: &Model) {
        tree.check();
        assert_eq!(tree.len(), model.len());
        assert_eq!(tree.is_empty(), model.is_empty());
        for (k, v) in model {
            assert_eq!(tree.get(k), Some(v));
        }
        assert_range(tree, model, &Bound::Unbounded, &Bound::Unbounded);
    }

    /// One proptest operation.
    #[derive(Debug, Clone)]
    enum Op {
        /// Insert or overwrite.
        Insert(Vec<u8>, u32),
        /// Remove a key that is often absent.
        Remove(Vec<u8>),
        /// Remove the present key at this position (modulo the length), so removes often hit.
        RemoveNth(usize),
        /// Keep a clone, to be compared with the model as of now at the end.
        Snapshot,
        /// Replace everything with a bulk-built tree of these entries.
        Bulk(Model),
        /// Bulk-build the current contents, so later writes hit packed nodes.
        Rebuild,
    }

    /// An operation, a probe key for `get`, and bounds for `count` and the iterators.
    type Step = (Op, Vec<u8>, (Bound<Vec<u8>>, Bound<Vec<u8>>));

    /// Keys of up to three bytes from `symbols`: few enough distinct keys for frequent
    /// collisions, with prefixes and 0x00/0xff bytes to exercise byte-string order.
    fn key_strategy(symbols: &'static [u8]) -> impl Strategy<Value = Vec<u8>> + Clone {
        prop::collection::vec(prop::sample::select(symbols), 0..4)
    }

    /// Unbounded, included or excluded bounds over the same keys.
    fn bound_strategy(symbols: &'static [u8]) -> impl Strategy<Value = Bound<Vec<u8>>> {
        prop_oneof![
            Just(Bound::Unbounded),
            key_strategy(symbols).prop_map(Bound::Included),
            key_strategy(symbols).prop_map(Bound::Excluded),
        ]
    }

    /// Sequences of operations, insert-heavy so that trees grow several levels deep.
    fn steps_strategy(symbols: &'static [u8], bulk_max: usize) -> impl Strategy<Value = Vec<Step>> {
        let key = key_strategy(symbols);
        let op = prop_oneof![
            8 => (key.clone(), any::<u32>()).prop_map(|(k, v)| Op::Insert(k, v)),
            3 => key.clone().prop_map(Op::Remove),
            4 => any::<usize>().prop_map(Op::RemoveNth),
            1 => Just(Op::Snapshot),
            1 => prop::collection::btree_map(key.clone(), any::<u32>(), 0..bulk_max).prop_map(Op::Bulk),
            1 => Just(Op::Rebuild),
        ];
        let bounds = (bound_strategy(symbols), bound_strategy(symbols));
        prop::collection::vec((op, key, bounds), 1..200)
    }

    /// Applies the steps to a tree and to the model, comparing them after every step, and
    /// compares every snapshot with the model as of when it was taken at the end.
    fn run_steps<const B: usize>(steps: Vec<Step>, symbols: &[u8]) {
        let mut tree = Tree::<u32, B>::default();
        let mut model = Model::new();
        let mut snapshots = Vec::new();
        let mut drawn = Vec::new();
        for (op, probe, (lower, upper)) in steps {
            match op {
                Op::Insert(k, v) => assert_eq!(tree.insert(key(&k), v), model.insert(k, v)),
                Op::Remove(k) => assert_eq!(tree.remove(&k), model.remove(&k)),
                Op::RemoveNth(n) => {
                    if let Some(k) = model.keys().nth(n % model.len().max(1)).cloned() {
                        assert_eq!(tree.remove(&k), model.remove(&k));
                    }
                }
                Op::Snapshot => snapshots.push((tree.clone(), model.clone())),
                Op::Bulk(entries) => {
                    tree = Tree::build(entries.iter().map(|(k, v)| (key(k), *v)));
                    model = entries;
                }
                Op::Rebuild => tree = Tree::build(model.iter().map(|(k, v)| (key(k), *v))),
            }
            assert_same(&tree, &model);
            assert_eq!(tree.get(&probe), model.get(&probe));
            assert_range(&tree, &model, &lower, &upper);
            drawn.push((lower, upper));
        }
        // Every pair drawn during the run, and every pair over keys of at most one symbol.
        let mut bounds = vec![
            Bound::Unbounded,
            Bound::Included(vec![]),
            Bound::Excluded(vec![]),
        ];
        for &symbol in symbols {
            bounds.push(Bound::Included(vec![symbol]));
            bounds.push(Bound::Excluded(vec![symbol]));
        }
        let mut pairs: Vec<_> = bounds
            .iter()
            .flat_map(|lower| {
                bounds
                    .iter()
                    .map(move |upper| (lower.clone(), upper.clone()))
            })
            .collect();
        pairs.extend(drawn);
        for (snapshot, expected) in &snapshots {
            assert_same(snapshot, expected);
            for (lower, upper) in &pairs {
                assert_range(snapshot, expected, lower, upper);
            }
        }
    }

    /// Symbols for the small-capacity runs: 85 distinct keys.
    const FEW_SYMBOLS: &[u8] = &[0x00, 0x01, 0x7f, 0xff];

    /// Symbols for the real-capacity runs: enough keys to need a few leaves.
    const MORE_SYMBOLS: &[u8] = &[0x00, 0x01, 0x02, 0x30, 0x31, 0x7f, 0x80, 0xfe, 0xff];

    proptest! {
        /// Capacity 4 turns the small key set into trees four or five levels deep, so every
        /// borrow and merge case, at every level, comes up.
        #[test]
        fn random_operations_on_a_capacity_4_tree_match_a_btreemap(
            steps in steps_strategy(FEW_SYMBOLS, 80)
        ) {
            run_steps::<4>(steps, FEW_SYMBOLS);
        }

        /// The shipped capacity, on trees of one or two levels.
        #[test]
        fn random_operations_on_a_full_capacity_tree_match_a_btreemap(
            steps in steps_strategy(MORE_SYMBOLS, 400)
        ) {
            run_steps::<FANOUT>(steps, MORE_SYMBOLS);
        }
    }

    /// Checks a tree holding exactly the keys `key_of(i)` for `i` in `present`, with value `i`,
    /// by O(log n) point and count queries.
    fn assert_holds(tree: &Tree<u64>, present: &BTreeMap<u64, ()>, rng: &mut Rng) {
        assert_eq!(tree.len(), present.len());
        for _ in 0..200 {
            let i = rng.next() % 200_000;
            let expected = present.contains_key(&i).then_some(&i);
            assert_eq!(tree.get(&key_of(i)), expected);
            let j = rng.next() % 200_000;
            let (a, b) = (key_of(i), key_of(j));
            let expected = if i < j {
                present.range(i..j).count()
            } else {
                0
            };
            assert_eq!(
                tree.count(Bound::Included(&a), Bound::Excluded(&b)),
                expected
            );
        }
    }

    /// Removes every key in random order from a tree holding `0..n`, checking as it goes.
    fn remove_all_randomly(tree: &mut Tree<u64>, n: u64, rng: &mut Rng) {
        let mut order: Vec<u64> = (0..n).collect();
        rng.shuffle(&mut order);
        let mut present: BTreeMap<u64, ()> = (0..n).map(|i| (i, ())).collect();
        for (step, &i) in order.iter().enumerate() {
            assert_eq!(tree.remove(&key_of(i)), Some(i));
            assert_eq!(tree.remove(&key_of(i)), None);
            present.remove(&i);
            if step % 5_000 == 0 {
                tree.check();
                assert_holds(tree, &present, rng);
            }
        }
        tree.check();
        assert!(tree.is_empty());
        assert!(tree.root.is_none(), "removing the last key frees the root");
    }

    /// Bulk building packs 100k keys into a valid tree that answers queries and iterates in order.
    #[test]
    fn bulk_building_100k_keys_gives_a_valid_tree_that_answers_every_query() {
        let n = 100_000u64;
        let mut tree = Tree::from_sorted((0..n).map(|i| (key_of(i), i)));
        tree.check();
        let mut rng = Rng(1);
        assert_holds(&tree, &(0..n).map(|i| (i, ())).collect(), &mut rng);
        assert!(tree
            .range(Bound::Unbounded, Bound::Unbounded)
            .map(|(_, v)| *v)
            .eq(0..n));
        assert!(tree
            .range_rev(Bound::Unbounded, Bound::Unbounded)
            .map(|(_, v)| *v)
            .eq((0..n).rev()));
        remove_all_randomly(&mut tree, n, &mut rng);
    }

    /// Random inserts split leaves everywhere; random removes then borrow and merge everywhere.
    #[test]
    fn inserting_100k_keys_in_random_order_then_removing_them_in_random_order_keeps_every_invariant(
    ) {
        let n = 100_000u64;
        let mut rng = Rng(2);
        let mut order: Vec<u64> = (0..n).collect();
        rng.shuffle(&mut order);
        let mut tree = Tree::new();
        let mut present = BTreeMap::new();
        for (step, &i) in order.iter().enumerate() {
            assert_eq!(tree.insert(key_of(i), i), None);
            present.insert(i, ());
            if step % 5_000 == 0 {
                tree.check();
                assert_holds(&tree, &present, &mut rng);
            }
        }
        tree.check();
        assert_eq!(
            tree.insert(key_of(7), 7),
            Some(7),
            "re-inserting returns the old value"
        );
        remove_all_randomly(&mut tree, n, &mut rng);
    }

    /// Ascending inserts always split the rightmost leaf, leaving half-full leaves behind.
    #[test]
    fn inserting_100k_keys_in_ascending_order_then_removing_them_in_random_order_keeps_every_invariant(
    ) {
        let n = 100_000u64;
        let mut tree = Tree::new();
        for i in 0..n {
            assert_eq!(tree.insert(key_of(i), i), None);
        }
        tree.check();
        let mut rng = Rng(3);
        assert_holds(&tree, &(0..n).map(|i| (i, ())).collect(), &mut rng);
        remove_all_randomly(&mut tree, n, &mut rng);
    }

    /// Bulk building must leave even the last node of every level at least half full, which is
    /// hardest right after a level boundary.
    #[test]
    fn bulk_building_any_number_of_keys_fills_every_node_at_least_half() {
        for n in 0..300u64 {
            let tree = Tree::<u64, 4>::build((0..n).map(|i| (key_of(i), i)));
            tree.check();
            assert_eq!(tree.len(), n as usize);
        }
        let f = FANOUT as u64;
        for n in [
            1,
            f - 1,
            f,
            f + 1,
            f * f / 2 + 1,
            f * f - 1,
            f * f,
            f * f + 1,
            f * f + f / 2 - 1,
            f * f * f + 1,
        ] {
            let tree = Tree::from_sorted((0..n).map(|i| (key_of(i), i)));
            tree.check();
            assert_eq!(tree.len(), n as usize);
        }
    }

    /// Disorder in the bulk-build input is a caller bug and must not yield a corrupt tree.
    #[test]
    #[should_panic(expected = "strictly ascending")]
    fn bulk_building_from_descending_keys_panics() {
        Tree::from_sorted([(key(b"b"), 1), (key(b"a"), 2)]);
    }

    /// Duplicates break "strictly" ascending just as disorder does.
    #[test]
    #[should_panic(expected = "strictly ascending")]
    fn bulk_building_from_duplicate_keys_panics() {
        Tree::from_sorted([(key(b"a"), 1), (key(b"a"), 2)]);
    }

    /// Bounds and the number of keys expected between them.
    type CountCase<'a> = (Bound<&'a [u8]>, Bound<&'a [u8]>, usize);

    /// The edges of counting: empty trees, one key, bounds equal to keys, bounds outside.
    #[test]
    fn count_is_right_on_empty_trees_single_keys_and_bounds_at_or_outside_the_keys() {
        use Bound::{Excluded as Ex, Included as In, Unbounded as Un};
        let empty = Tree::<u32>::new();
        let some: [Bound<&[u8]>; 3] = [Un, In(b"a"), Ex(b"a")];
        for lower in some {
            for upper in some {
                assert_eq!(empty.count(lower, upper), 0);
                assert_eq!(empty.range(lower, upper).next(), None);
                assert_eq!(empty.range_rev(lower, upper).next(), None);
            }
        }

        let mut one = Tree::new();
        one.insert(key(b"m"), 1u32);
        let m: &[u8] = b"m";
        let cases: [CountCase; 12] = [
            (Un, Un, 1),
            (In(m), In(m), 1),
            (In(m), Ex(m), 0),
            (Ex(m), In(m), 0),
            (Ex(m), Ex(m), 0),
            (Ex(m), Un, 0),
            (Un, Ex(m), 0),
            (In(b"a"), In(b"z"), 1),
            (In(b"n"), Un, 0),
            (Un, In(b"l"), 0),
            (In(b"z"), In(b"a"), 0),
            (In(b""), Ex(b"m\0"), 1),
        ];
        for (lower, upper, expected) in cases {
            assert_eq!(one.count(lower, upper), expected, "{lower:?}..{upper:?}");
            assert_eq!(one.range(lower, upper).count(), expected);
            assert_eq!(one.range_rev(lower, upper).count(), expected);
        }

        let three = Tree::from_sorted([(key(b"b"), 1u32), (key(b"d"), 2), (key(b"f"), 3)]);
        let cases: [CountCase; 10] = [
            (Un, Un, 3),
            (In(b"d"), In(b"d"), 1),
            (Ex(b"b"), Ex(b"f"), 1),
            (In(b"b"), In(b"f"), 3),
            (In(b"a"), Ex(b"b"), 0),
            (Ex(b"f"), Un, 0),
            (In(b"g"), In(b"z"), 0),
            (Un, Ex(b"b"), 0),
            (In(b"f"), In(b"b"), 0),
            (In(b"c"), In(b"e"), 1),
        ];
        for (lower, upper, expected) in cases {
            assert_eq!(three.count(lower, upper), expected, "{lower:?}..{upper:?}");
            assert_eq!(three.range(lower, upper).count(), expected);
        }
    }

    /// Writes after a snapshot copy the path (and at most one new or borrowed-from sibling per
    /// level), never the rest of the tree, and leave the snapshot as it was.
    #[test]
    fn a_write_to_a_shared_tree_copies_only_nodes_near_its_path() {
        let mut tree = Tree::from_sorted((0..50_000u64).map(|i| (key_of(2 * i), i)));
        let mut rng = Rng(4);
        for round in 0..300u64 {
            let snapshot = tree.clone();
            let shared = snapshot.node_addresses();
            let i = rng.next() % 100_000;
            if round % 2 == 0 {
                tree.insert(key_of(i), i);
            } else {
                tree.remove(&key_of(i));
            }
            let fresh = tree.node_addresses().difference(&shared).count();
            assert!(fresh <= 2 * tree.height() + 1, "{fresh} fresh nodes");
            assert_eq!(
                snapshot.node_addresses(),
                shared,
                "the snapshot is untouched"
            );
        }
        tree.check();
    }

    /// The bounds a snapshot's memory is charged by hold: changes made after a clone allocate
    /// no more than `change_bytes_bound` each, and a tree takes no more than `bytes_bound`.
    #[test]
    fn memory_bounds_hold_for_diverging_snapshots() {
        fn node_bytes_not_in<V: Clone, const B: usize>(
            tree: &Tree<V, B>,
            shared: &HashSet<*const Node<V>>,
        ) -> usize {
            tree.node_addresses().difference(shared).count() * Tree::<V, B>::NODE_BYTES
        }
        let mut rng = Rng(9);
        let mut tree = Tree::from_sorted((0..20_000u64).map(|i| (key_of(2 * i), i)));
        assert!(tree.node_bytes() <= tree.bytes_bound());
        let snapshot = tree.clone();
        let shared = snapshot.node_addresses();
        for changes in 1..=2_000usize {
            let i = rng.next() % 40_000;
            if changes % 3 == 0 {
                tree.remove(&key_of(i));
            } else {
                tree.insert(key_of(i), i);
            }
            if changes % 100 == 0 {
                let fresh = node_bytes_not_in(&tree, &shared);
                assert!(
                    fresh <= changes * tree.change_bytes_bound(),
                    "{fresh} after {changes}"
                );
                assert!(tree.node_bytes() <= tree.bytes_bound());
            }
        }
        let mut random = Tree::new();
        for _ in 0..20_000 {
            let i = rng.next();
            random.insert(key_of(i), i);
        }
        assert!(random.node_bytes() <= random.bytes_bound());
    }

    /// A miss has nothing to change, so it must not copy a shared path.
    #[test]
    fn removing_a_missing_key_from_a_shared_tree_copies_nothing() {
        let mut tree = Tree::from_sorted((0..10_000u64).map(|i| (key_of(2 * i), i)));
        let snapshot = tree.clone();
        assert_eq!(tree.remove(&key_of(3)), None);
        assert_eq!(tree.node_addresses(), snapshot.node_addresses());
    }

    /// Without snapshots, writes happen in place: no node is replaced by a copy.
    #[test]
    fn a_write_to_an_unshared_tree_copies_nothing() {
        let mut tree = Tree::new();
        let mut rng = Rng(5);
        for _ in 0..3_000 {
            let i = rng.next() % 6_000;
            let before = tree.node_addresses();
            tree.insert(key_of(i), i);
            let after = tree.node_addresses();
            assert!(
                after.is_superset(&before),
                "inserting only adds split-off nodes"
            );
            assert!(after.len() - before.len() <= tree.height());
        }
        for _ in 0..3_000 {
            let i = rng.next() % 6_000;
            let before = tree.node_addresses();
            tree.remove(&key_of(i));
            assert!(
                tree.node_addresses().is_subset(&before),
                "removing only drops merged nodes"
            );
        }
    }

    /// Snapshots taken at several points each keep their own contents while the tree moves on.
    #[test]
    fn snapshots_keep_their_contents_while_the_tree_changes() {
        let mut tree = Tree::<u32, 4>::default();
        let mut model = Model::new();
        let mut snapshots = Vec::new();
        let mut rng = Rng(6);
        for step in 0..3_000u32 {
            let k = vec![(rng.next() % 40) as u8, (rng.next() % 4) as u8];
            if rng.next().is_multiple_of(3) {
                assert_eq!(tree.remove(&k), model.remove(&k));
            } else {
                assert_eq!(tree.insert(key(&k), step), model.insert(k, step));
            }
            if step % 100 == 0 {
                snapshots.push((tree.clone(), model.clone()));
            }
        }
        for (snapshot, expected) in &snapshots {
            assert_same(snapshot, expected);
        }
    }

    /// The cursor climbs and descends across leaves and levels in both directions.
    #[test]
    fn iterators_cross_leaf_and_level_boundaries_in_both_directions() {
        let tree = Tree::<u64, 4>::build((0..1_000u64).map(|i| (key_of(i), i)));
        for (a, b) in [(0, 1_000), (3, 997), (255, 257), (17, 18), (500, 500)] {
            let (lo, hi) = (key_of(a), key_of(b));
            let forward = tree.range(Bound::Included(&lo), Bound::Excluded(&hi));
            assert!(forward.map(|(_, v)| *v).eq(a..b));
            let backward = tree.range_rev(Bound::Included(&lo), Bound::Excluded(&hi));
            assert!(backward.map(|(_, v)| *v).eq((a..b).rev()));
        }
    }

    /// The memory budget is under 100 bytes per key beyond the key bytes; the nodes must take
    /// well under half of that, since each key's own allocation adds about 32 more.
    #[test]
    fn node_memory_per_entry_stays_well_within_the_budget() {
        let n = 100_000u64;
        let value = [0u32; 3];
        let bulk = Tree::from_sorted((0..n).map(|i| (key_of(i), value)));
        let mut ascending = Tree::new();
        let mut random = Tree::new();
        let mut order: Vec<u64> = (0..n).collect();
        Rng(7).shuffle(&mut order);
        for i in 0..n {
            ascending.insert(key_of(i), value);
            random.insert(key_of(order[i as usize]), value);
        }
        for (name, tree) in [
            ("bulk", &bulk),
            ("ascending", &ascending),
            ("random", &random),
        ] {
            let per_entry = tree.node_bytes() as f64 / tree.len() as f64;
            println!("{name}: {per_entry:.1} node bytes per entry");
            assert!(
                per_entry < 45.0,
                "{name}: {per_entry:.1} node bytes per entry"
            );
        }
    }

    /// Resident memory of a one-million-key index, allocator overhead included. It reads the
    /// whole process's memory, so `scripts/test.sh` runs it on its own, after the other tests.
    #[test]
    #[ignore = "measures process memory, so it must run alone"]
    fn resident_memory_per_entry_beyond_the_key_bytes() {
        fn resident_bytes() -> usize {
            let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
            let pages: usize = statm
                .split_whitespace()
                .nth(1)
                .and_then(|p| p.parse().ok())
                .unwrap_or(0);
            pages * 4096
        }
        let n = 1_000_000u64;
        let before = resident_bytes();
        let mut tree = Tree::new();
        let mut rng = Rng(8);
        for _ in 0..n {
            let bytes = [rng.next().to_be_bytes(), rng.next().to_be_bytes()].concat();
            tree.insert(Key::from(bytes), [0u32; 3]);
        }
        let after = resident_bytes();
        let per_entry = after.saturating_sub(before) as f64 / tree.len() as f64 - 16.0;
        println!("{per_entry:.1} resident bytes per entry beyond 16 key bytes");
        assert!(
            per_entry < 100.0,
            "{per_entry:.1} resident bytes per entry beyond 16 key bytes"
        );
    }
}
