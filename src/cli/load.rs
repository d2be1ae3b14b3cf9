//! Generated data: deterministic keys and values, and writing many of them quickly.

use indicatif::{ProgressBar, ProgressStyle};
use revkv::{Db, Op, Revision, Txn};

/// Puts per transaction: large enough to amortise a commit, well under `revkv::MAX_TXN_OPS`.
const BATCH: u64 = 1000;

/// A splitmix64 generator: deterministic, so that a run can be reproduced and its data rebuilt.
pub(super) struct Rng(pub(super) u64);

impl Rng {
    pub(super) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let z = (self.0 ^ (self.0 >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        let z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..bound`; the modulo bias is irrelevant at the bounds used here.
    pub(super) fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound
    }
}

/// The generated key number `index`: zero-padded, so that key order is index order.
pub(super) fn key(prefix: &str, index: u64) -> String {
    format!("{prefix}{index:08}")
}

/// `size` lower-case letters determined by `seed`: printable, and different for every seed.
pub(super) fn value(seed: u64, size: usize) -> Vec<u8> {
    let mut rng = Rng(seed);
    std::iter::repeat_with(|| rng.next_u64().to_le_bytes())
        .flatten()
        .take(size)
        .map(|byte| b'a' + byte % 26)
        .collect()
}

/// Puts keys `0..count` under `prefix`, the value of key `i` being `value(i, value_size)`, in
/// transactions of [`BATCH`] puts, with a progress bar on stderr (drawn only on a terminal).
/// Returns the revision of the last batch; the caller decides when it must be durable.
pub(super) fn load(
    db: &Db,
    prefix: &str,
    count: u64,
    value_size: usize,
) -> revkv::Result<Revision> {
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
