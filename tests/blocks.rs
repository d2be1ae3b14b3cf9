//! Key-order blocks are a cache: whatever state they are in (absent, fresh, stale after churn,
//! damaged), every list reads exactly what a store without them reads.

use proptest::prelude::*;
use proptest::test_runner::TestRng;
use revkv::selector::LabelSelector;
use revkv::{Check, Db, Entry, ListOptions, Op, Put, Retention, Revision, Txn};

use crate::common::{raw_sled, rng, with_raw_tree, DAMAGES};

const KEYS: usize = 3000;

/// Two stores that are given the same writes: one that reads through blocks, one that never
/// writes or reads any.
struct Twins {
    with: Db,
    without: Db,
}

impl Twins {
    fn new() -> Twins {
        let open = |blocks| {
            Db::options()
                .retention(Retention::Manual)
                .key_order_blocks(blocks)
                .temporary()
                .expect("temporary store opens")
        };
        Twins {
            with: open(true),
            without: open(false),
        }
    }

    fn txn(&self, ops: Vec<Op>) {
        let revisions = [&self.with, &self.without]
            .map(|db| db.txn(Txn::new().then(ops.clone())).expect("txn").revision);
        assert_eq!(revisions[0], revisions[1]);
    }

    /// Lists the whole store through blocks, so the builder learns what to build, and waits
    /// for it.
    fn settle(&self) {
        whole(&self.with, ListOptions::all().limit(1000));
        self.with.settle_blocks().expect("blocks build");
    }

    /// Every list shape reads the same from both stores.
    fn assert_same(&self, revision: Option<Revision>) {
        let selector: LabelSelector = "tier=a".parse().expect("a valid selector");
        let shapes = [
            ListOptions::all(),
            ListOptions::all().reverse(true),
            ListOptions::prefix("k/"),
            ListOptions::prefix("k/").reverse(true),
            ListOptions::range("k/00500", "k/01500"),
            ListOptions::prefix("k/").label_selector(selector),
        ];
        for shape in shapes {
            for limit in [1, 7, 100, 5000] {
                let mut options = shape.clone().limit(limit);
                if let Some(revision) = revision {
                    options = options.revision(revision);
                }
                let (with, without) = (
                    whole(&self.with, options.clone()),
                    whole(&self.without, options.clone()),
                );
                assert_eq!(with.len(), without.len(), "{options:?}");
                assert!(with == without, "{options:?}: the lists differ");
            }
        }
    }
}

fn whole(db: &Db, options: ListOptions) -> Vec<Entry> {
    let mut items = Vec::new();
    let mut next = options.clone();
    loop {
        let page = db.list(&next).expect("chunk reads");
        items.extend(page.items);
        match page.continue_token {
            Some(token) => next = options.clone().continue_token(token),
            None => return items,
        }
    }
}

/// A put of `key` with a value of a length drawn to cover copies kept, copies left out of
/// their block for their size, and values stored in parts.
fn put(random: &mut TestRng, key: String) -> Op {
    // The field makes a record over the longest copy a block keeps.
    let (len, annotated) = match random.random_range(0..100) {
        0..=89 => (random.random_range(0..600), false),
        90..=95 => (random.random_range(4_000..9_000), false),
        96..=97 => (random.random_range(15_000..16_000), true),
        _ => (random.random_range(17_000..40_000), false),
    };
    let value: Vec<u8> = (0..len).map(|_| random.random::<u8>()).collect();
    let tier = if random.random_bool(0.5) { "a" } else { "b" };
    let put = Put::new(key, value).label("tier", tier);
    Op::Put(match annotated {
        true => put.field("annotation", "x".repeat(3_000)),
        false => put,
    })
}

#[test]
fn lists_read_the_same_through_fresh_stale_and_rebuilt_blocks() {
    let twins = Twins::new();
    let mut random = rng(7);
    let mut order: Vec<usize> = (0..KEYS).collect();
    for i in (1..order.len()).rev() {
        order.swap(i, random.random_range(0..=i));
    }
    for batch in order.chunks(250) {
        let ops = batch.iter().map(|i| put(&mut random, format!("k/{i:05}")));
        twins.txn(ops.collect());
    }
    twins.assert_same(None); // Through pointers, while blocks are being built.
    twins.settle();
    twins.assert_same(None);

    // A list begun on fresh blocks, continued after they went stale.
    let begun = ListOptions::prefix("k/").limit(100);
    let first = [&twins.with, &twins.without].map(|db| db.list(&begun).expect("first chunk"));
    let before_churn = first[0].revision;

    // Churn: updates, deletes, and keys created between the blocks' keys, below the lowest
    // and above the highest.
    for round in 0..6 {
        // Each key once per transaction: true for a put, false for a delete.
        let mut changes = std::collections::BTreeMap::new();
        for _ in 0..150 {
            let i = random.random_range(0..KEYS);
            changes.insert(format!("k/{i:05}"), random.random_bool(0.7));
        }
        for _ in 0..20 {
            let i = random.random_range(0..KEYS);
            changes.insert(format!("k/{i:05}+{round}"), true);
        }
        changes.insert(format!("a/{round}"), true);
        changes.insert(format!("z/{round}"), true);
        let ops = changes.into_iter().map(|(key, is_put)| {
            if is_put {
                put(&mut random, key)
            } else {
                Op::delete(key)
            }
        });
        twins.txn(ops.collect());
    }
    twins.assert_same(None);
    twins.assert_same(Some(before_churn));
    let [with, without] =
        [(&twins.with, &first[0]), (&twins.without, &first[1])].map(|(db, page)| {
            let token = page.continue_token.clone().expect("more than one chunk");
            whole(db, begun.clone().continue_token(token))
        });
    assert_eq!(first[1].revision, before_churn);
    assert!(with == without, "the lists begun before the churn differ");

    twins.settle(); // Rebuilds the stale blocks.
    twins.assert_same(None);
    twins.assert_same(Some(before_churn));
    let report = twins.with.verify().expect("verify runs");
    assert!(report.is_clean(), "{report}");
    assert!(report.key_order_blocks > 1, "{report}");
}

#[test]
fn a_damaged_block_costs_reads_nothing_and_is_reported_and_rebuilt() {
    for (damage, apply) in DAMAGES {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("store");
        let expected = {
            let db = Db::options()
                .retention(Retention::Manual)
                .open(&path)
                .expect("opens");
            let mut random = rng(11);
            let ops = (0..1000).map(|i| put(&mut random, format!("k/{i:04}")));
            db.txn(Txn::new().then(ops.collect::<Vec<_>>()))
                .expect("txn");
            whole(&db, ListOptions::all());
            db.settle_blocks().expect("blocks build");
            whole(&db, ListOptions::all())
        };
        let damaged_low = with_raw_tree(&path, |tree| {
            let blocks: Vec<_> = tree
                .scan_prefix(b"b")
                .map(|item| item.expect("reads"))
                .collect();
            assert!(blocks.len() > 2, "{damage}: {} blocks", blocks.len());
            let (key, bytes) = &blocks[blocks.len() / 2];
            let mut bytes = bytes.to_vec();
            apply(&mut bytes);
            tree.insert(key, bytes).expect("writes");
            String::from_utf8(key[1..].to_vec()).expect("keys are text")
        });
        let db = Db::options()
            .retention(Retention::Manual)
            .open(&path)
            .expect("reopens");
        let report = db.verify().expect("verify runs");
        let [finding] = &report.findings[..] else {
            panic!("{damage}: {report}");
        };
        assert_eq!(finding.check, Check::Decoding, "{damage}: {report}");
        assert_eq!(
            finding.location,
            format!("key-order block at key \"{damaged_low}\""),
            "{damage}"
        );
        assert!(whole(&db, ListOptions::all()) == expected, "{damage}");
        assert!(
            whole(&db, ListOptions::all().reverse(true))
                .into_iter()
                .rev()
                .eq(expected.clone()),
            "{damage}"
        );
        db.settle_blocks()
            .expect("the lists asked for the block again");
        let report = db.verify().expect("verify runs");
        assert!(report.is_clean(), "{damage}: {report}");
        assert!(whole(&db, ListOptions::all()) == expected, "{damage}");
    }
}

#[test]
fn a_store_without_blocks_writes_none() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("store");
    {
        let db = Db::options()
            .key_order_blocks(false)
            .open(&path)
            .expect("opens");
        let ops = (0..500).map(|i| Op::put(format!("k/{i:03}"), "value"));
        db.txn(Txn::new().then(ops.collect::<Vec<_>>()))
            .expect("txn");
        assert_eq!(whole(&db, ListOptions::all().limit(10)).len(), 500);
        db.settle_blocks().expect("nothing to wait for");
    }
    let sled = raw_sled(&path);
    let tree = sled.open_tree("revkv").expect("revkv's tree opens");
    assert_eq!(tree.scan_prefix(b"b").count(), 0);
}
