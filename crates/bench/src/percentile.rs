//! The one percentile definition of every latency figure the binary and the benches print.

use std::time::Duration;

/// The nearest-rank percentile of `sorted`: the smallest sample with at least `fraction` of
/// the samples at or below it.
///
/// # Panics
///
/// When `sorted` is empty: a figure always has a sample.
pub fn nearest_rank(sorted: &[Duration], fraction: f64) -> Duration {
    assert!(!sorted.is_empty(), "a percentile of no samples");
    let rank = (sorted.len() as f64 * fraction).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}
