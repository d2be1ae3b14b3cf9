//! Generated data: deterministic keys and values, and writing many of them quickly; and the
//! [`Collection`] that `revkv bench` and the criterion benches load:
//! its keys, the order they are written in, their churn and their values.

use indicatif::{ProgressBar, ProgressStyle};
use revkv::{Db, ListOptions, Op, Revision, Txn};

/// Puts per transaction: large enough to amortise a commit, well under `revkv::MAX_TXN_OPS`.
const BATCH: u64 = 1000;

/// A splitmix64 generator: deterministic, so that a run can be reproduced and its data rebuilt.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let z = (self.0 ^ (self.0 >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        let z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..bound`; the modulo bias is irrelevant at the bounds used here.
    pub fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound
    }
}

/// The generated key number `index`: zero-padded, so that key order is index order.
pub fn key(prefix: &str, index: u64) -> String {
    format!("{prefix}{index:08}")
}

/// `size` lower-case letters determined by `seed`: printable, and different for every seed.
pub fn value(seed: u64, size: usize) -> Vec<u8> {
    let mut rng = Rng(seed);
    std::iter::repeat_with(|| rng.next_u64().to_le_bytes())
        .flatten()
        .take(size)
        .map(|byte| b'a' + byte % 26)
        .collect()
}

/// Brings a store just written to the state of one that clients list: lists all of it once,
/// and waits for the key-order blocks that the list asked for.
pub fn settle(db: &Db) -> revkv::Result<()> {
    // Without a limit, each chunk is as long as the store allows.
    let mut options = ListOptions::all();
    while let Some(token) = db.list(&options)?.continue_token {
        options = ListOptions::all().continue_token(token);
    }
    db.settle_blocks()
}

/// Puts keys `0..count` under `prefix`, the value of key `i` being `value(i, value_size)`, in
/// transactions of [`BATCH`] puts, with a progress bar on stderr (drawn only on a terminal).
/// Returns the revision of the last batch; the caller decides when it must be durable.
pub fn load(db: &Db, prefix: &str, count: u64, value_size: usize) -> revkv::Result<Revision> {
    let style =
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} keys ({per_sec}, {eta} left)")
            .expect("the template is valid")
            .progress_chars("=> ");
    let progress = ProgressBar::new(count)
        .with_style(style)
        .with_message(format!("loading {prefix:?}"));
    let mut revision = db.current_revision();
    let mut start = 0;
    while start < count {
        let end = count.min(start + BATCH);
        let puts = (start..end).map(|index| Op::put(key(prefix, index), value(index, value_size)));
        revision = db.txn(Txn::new().then(puts))?.revision;
        progress.inc(end - start);
        start = end;
    }
    progress.finish();
    Ok(revision)
}

/// The prefix of the generated collection: ConfigMaps of every namespace, as a cluster-wide list
/// reads them.
pub const COLLECTION_PREFIX: &str = "/registry/configmaps/";
/// Namespaces of the generated collection: key `i` is in namespace `i % NAMESPACES`.
pub const NAMESPACES: u64 = 100;
/// The version of a churned key's second value; the first write is version 0.
pub const CHURN_VERSION: u64 = 1;
/// Of a churned collection, about this many keys in a thousand are deleted...
const DELETED_PER_MILLE: u64 = 10;
/// ...and about this many overwritten, once each (never the same keys).
const OVERWRITTEN_PER_MILLE: u64 = 100;
/// Seeds every pseudo-random choice, so that every run and every engine gets the same data.
const SEED: u64 = 0x7265_766b_765f_7764;

/// In what order a generated collection is written, and whether churn follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Shape {
    /// The keys in order of their number, so that consecutive writes land in 100 namespaces in
    /// turn, as objects of a cluster arrive; then churn: about 10% overwritten, 1% deleted.
    Interleaved,
    /// The same keys in a pseudo-random order; then the same churn.
    Random,
    /// The same keys in key order, without churn: the best case, records in key order on disk.
    Sequential,
}

impl Shape {
    /// The name the command line and `REVKV_BENCH_WORKLOAD` know it by.
    pub fn name(self) -> &'static str {
        match self {
            Shape::Interleaved => "interleaved",
            Shape::Random => "random",
            Shape::Sequential => "sequential",
        }
    }

    fn churns(self) -> bool {
        self != Shape::Sequential
    }

    /// How a collection of this shape is written, for reports: in what order, and its churn.
    pub fn describe(self) -> String {
        let order = match self {
            Shape::Interleaved => "in order of i, 100 namespaces in turn",
            Shape::Random => "in a pseudo-random order",
            Shape::Sequential => "in key order",
        };
        let churn = match self.churns() {
            true => format!(
                "; then about {}% overwritten and {}% deleted, in a pseudo-random order",
                OVERWRITTEN_PER_MILLE / 10,
                DELETED_PER_MILLE / 10
            ),
            false => ", no churn".into(),
        };
        format!("{order}{churn}")
    }
}

/// One write of a generated collection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// Key `index` takes its value at `version`.
    Put {
        index: u64,
        version: u64,
    },
    Delete {
        index: u64,
    },
}

/// What churn does to one key.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fate {
    Kept,
    Overwritten,
    Deleted,
}

/// A generated collection of Kubernetes-like keys, `COLLECTION_PREFIX` then
/// `ns-%03d/cm-%07d`: key number `i` is object `i / NAMESPACES` of namespace `i % NAMESPACES`.
/// A collection of `n` keys holds keys `0..n` minus the deleted ones, so a larger collection
/// grows a smaller one ([`Collection::growth`]), and every engine gets the same changes in the
/// same order.
#[derive(Clone, Copy, Debug)]
pub struct Collection {
    pub shape: Shape,
    pub value_size: usize,
}

impl Collection {
    /// Every shape of `shapes` with every value size of `value_sizes`, shape by shape: the
    /// collections of a run of the benches.
    pub fn each(shapes: &[Shape], value_sizes: &[usize]) -> Vec<Collection> {
        (shapes.iter())
            .flat_map(|&shape| {
                (value_sizes.iter()).map(move |&value_size| Collection { shape, value_size })
            })
            .collect()
    }

    /// Key number `index`.
    pub fn key(index: u64) -> String {
        format!(
            "{COLLECTION_PREFIX}ns-{:03}/cm-{:07}",
            index % NAMESPACES,
            index / NAMESPACES
        )
    }

    /// The value of key `index` at `version`; version 0 is what `revkv load` writes for the same
    /// number.
    pub fn value(&self, index: u64, version: u64) -> Vec<u8> {
        value(index ^ (version << 40), self.value_size)
    }

    /// Whether key `index` is one of every `stride` objects of its namespace, evenly spread in
    /// key order; the namespaces start at staggered objects, so that about one key in `stride`
    /// is selected at any size.
    pub fn selected(index: u64, stride: u64) -> bool {
        (index / NAMESPACES + index % NAMESPACES).is_multiple_of(stride.max(1))
    }

    fn fate(&self, index: u64) -> Fate {
        if !self.shape.churns() {
            return Fate::Kept;
        }
        match Rng(SEED ^ index).below(1000) {
            draw if draw < DELETED_PER_MILLE => Fate::Deleted,
            draw if draw < DELETED_PER_MILLE + OVERWRITTEN_PER_MILLE => Fate::Overwritten,
            _ => Fate::Kept,
        }
    }

    /// Whether key `index` of a loaded collection is there, not deleted by the churn.
    pub fn is_live(&self, index: u64) -> bool {
        self.fate(index) != Fate::Deleted
    }

    /// Keys `from..to` in the order the shape writes them.
    pub fn load_order(&self, from: u64, to: u64) -> Vec<u64> {
        match self.shape {
            Shape::Interleaved => (from..to).collect(),
            Shape::Random => shuffled((from..to).collect(), SEED ^ from ^ (to << 32)),
            Shape::Sequential => in_key_order(to).filter(|&index| index >= from).collect(),
        }
    }

    /// The churn of keys `from..to`, once loaded: an overwrite or a delete for about 11% of
    /// them, in a pseudo-random order; nothing for [`Shape::Sequential`].
    pub fn churn(&self, from: u64, to: u64) -> Vec<Change> {
        let changes = (from..to)
            .filter_map(|index| match self.fate(index) {
                Fate::Kept => None,
                Fate::Overwritten => Some(Change::Put {
                    index,
                    version: CHURN_VERSION,
                }),
                Fate::Deleted => Some(Change::Delete { index }),
            })
            .collect();
        shuffled(changes, !SEED ^ from ^ (to << 32))
    }

    /// What grows a collection of `from` keys to one of `to`: the puts of the new keys in the
    /// shape's order, then their churn. The churn may only start once the puts are all done.
    pub fn growth(&self, from: u64, to: u64) -> [Vec<Change>; 2] {
        let puts = self
            .load_order(from, to)
            .into_iter()
            .map(|index| Change::Put { index, version: 0 })
            .collect();
        [puts, self.churn(from, to)]
    }

    /// A new value for each live key of a collection of `keys`, at `version`, in the shape's
    /// order.
    pub fn rewrite(&self, keys: u64, version: u64) -> Vec<Change> {
        self.load_order(0, keys)
            .into_iter()
            .filter(|&index| self.is_live(index))
            .map(|index| Change::Put { index, version })
            .collect()
    }

    /// The live keys of a loaded collection of `keys`, in key order: what a full list returns.
    pub fn live_in_key_order(&self, keys: u64) -> Vec<u64> {
        in_key_order(keys)
            .filter(|&index| self.is_live(index))
            .collect()
    }

    /// One line on how the collection is written, for reports.
    pub fn describe(&self) -> String {
        format!(
            "keys {COLLECTION_PREFIX}ns-%03d/cm-%07d (ns = i % {NAMESPACES}, cm = i / {NAMESPACES}) \
             written {}; {} B values",
            self.shape.describe(),
            self.value_size
        )
    }
}

/// Key numbers `0..keys` in key order: namespace by namespace.
fn in_key_order(keys: u64) -> impl Iterator<Item = u64> {
    (0..NAMESPACES.min(keys))
        .flat_map(move |namespace| (namespace..keys).step_by(NAMESPACES as usize))
}

/// `items` in a pseudo-random order determined by `seed` (Fisher-Yates).
fn shuffled<T>(mut items: Vec<T>, seed: u64) -> Vec<T> {
    let mut rng = Rng(seed);
    for last in (1..items.len()).rev() {
        let other = rng.below(last as u64 + 1) as usize;
        items.swap(last, other);
    }
    items
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collection(shape: Shape) -> Collection {
        Collection {
            shape,
            value_size: 16,
        }
    }

    #[test]
    fn keys_sort_by_namespace_then_object() {
        assert_eq!(
            Collection::key(1234),
            "/registry/configmaps/ns-034/cm-0000012"
        );
        let ordered: Vec<String> = in_key_order(1050).map(Collection::key).collect();
        assert_eq!(ordered.len(), 1050);
        assert!(ordered.windows(2).all(|pair| pair[0] < pair[1]));
    }

    #[test]
    fn every_shape_writes_every_key_once() {
        for shape in [Shape::Interleaved, Shape::Random, Shape::Sequential] {
            let collection = collection(shape);
            let mut order = collection.load_order(0, 3000);
            order.extend(collection.load_order(3000, 10_000));
            order.sort_unstable();
            assert_eq!(order, (0..10_000).collect::<Vec<_>>(), "{shape:?}");
        }
    }

    #[test]
    fn churn_touches_each_key_at_most_once_and_sequential_none() {
        let interleaved = collection(Shape::Interleaved);
        let churn = interleaved.churn(0, 100_000);
        let deleted = churn
            .iter()
            .filter(|change| matches!(change, Change::Delete { .. }))
            .count();
        let overwritten = churn.len() - deleted;
        assert!((800..1200).contains(&deleted), "{deleted} deleted");
        assert!(
            (9000..11_000).contains(&overwritten),
            "{overwritten} overwritten"
        );
        let mut touched: Vec<u64> = churn
            .iter()
            .map(|change| match *change {
                Change::Put { index, .. } | Change::Delete { index } => index,
            })
            .collect();
        touched.sort_unstable();
        touched.dedup();
        assert_eq!(touched.len(), churn.len());
        assert_eq!(
            interleaved.live_in_key_order(100_000).len(),
            100_000 - deleted
        );
        assert!(collection(Shape::Sequential).churn(0, 100_000).is_empty());
        // Random churns the same keys as interleaved.
        let mut random = collection(Shape::Random).churn(0, 100_000);
        let mut interleaved = churn;
        let by_key = |change: &Change| match *change {
            Change::Put { index, .. } | Change::Delete { index } => index,
        };
        random.sort_unstable_by_key(by_key);
        interleaved.sort_unstable_by_key(by_key);
        assert_eq!(random, interleaved);
    }

    #[test]
    fn consecutive_interleaved_writes_land_in_different_namespaces() {
        let order = collection(Shape::Interleaved).load_order(0, 1000);
        let namespaces: std::collections::BTreeSet<u64> = order[..100]
            .iter()
            .map(|index| index % NAMESPACES)
            .collect();
        assert_eq!(namespaces.len(), 100);
    }

    #[test]
    fn one_object_in_a_stride_of_each_namespace_is_selected() {
        for (keys, expected) in [(10_000, 100), (100_000, 1000), (2000, 20)] {
            let selected = in_key_order(keys)
                .filter(|&index| Collection::selected(index, 100))
                .count();
            assert_eq!(selected, expected, "{keys} keys");
        }
        // In key order, one in 100 within each namespace, and no wider gap across one's end.
        let positions: Vec<usize> = in_key_order(100_000)
            .enumerate()
            .filter(|&(_, index)| Collection::selected(index, 100))
            .map(|(position, _)| position)
            .collect();
        assert!(positions.windows(2).all(|pair| pair[1] - pair[0] < 200));
    }
}
