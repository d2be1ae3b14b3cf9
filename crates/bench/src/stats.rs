//! Latency samples, their percentiles, and the sampling loop every figure uses.

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use super::engine::Error;
use crate::percentile::nearest_rank;

/// How long to sample one figure: until `samples` operations or `time`, whichever comes first.
#[derive(Clone, Copy, Debug, Serialize)]
pub(super) struct Budget {
    pub(super) samples: usize,
    #[serde(rename = "seconds", serialize_with = "serialize_seconds")]
    pub(super) time: Duration,
}

/// Even a slow operation is sampled this often, so that a percentile means something.
pub(super) const MIN_SAMPLES: usize = 5;

fn serialize_seconds<S: serde::Serializer>(
    time: &Duration,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(time.as_secs_f64())
}

/// The distribution of one operation's latency, in milliseconds.
#[derive(Clone, Copy, Debug, Serialize)]
pub(super) struct Latency {
    pub(super) samples: usize,
    pub(super) p50_ms: f64,
    pub(super) p90_ms: f64,
    pub(super) p99_ms: f64,
    pub(super) max_ms: f64,
    pub(super) mean_ms: f64,
}

impl Latency {
    /// # Panics
    ///
    /// When `durations` is empty: a figure always has a sample.
    pub(super) fn of(mut durations: Vec<Duration>) -> Latency {
        assert!(!durations.is_empty(), "a figure without samples");
        durations.sort_unstable();
        let ms = |duration: Duration| duration.as_secs_f64() * 1000.0;
        let rank = |p: f64| ms(nearest_rank(&durations, p));
        let total: Duration = durations.iter().sum();
        Latency {
            samples: durations.len(),
            p50_ms: rank(0.50),
            p90_ms: rank(0.90),
            p99_ms: rank(0.99),
            max_ms: ms(durations[durations.len() - 1]),
            mean_ms: ms(total) / durations.len() as f64,
        }
    }
}

/// A rate, with the latency of the operations that made it.
#[derive(Clone, Copy, Debug, Serialize)]
pub(super) struct Throughput {
    /// Items (keys, puts, records) handled.
    pub(super) count: u64,
    pub(super) seconds: f64,
    pub(super) per_second: f64,
    /// Per operation; one operation may handle many items (a batch, a chunk).
    pub(super) latency: Latency,
}

impl Throughput {
    pub(super) fn of(count: u64, elapsed: Duration, durations: Vec<Duration>) -> Throughput {
        let seconds = elapsed.as_secs_f64();
        Throughput {
            count,
            seconds,
            per_second: count as f64 / seconds,
            latency: Latency::of(durations),
        }
    }
}

/// Runs `op` once untimed, to warm caches and connections, then times it until the budget is
/// spent. `op` returns how many items it handled, which only the caller interprets.
pub(super) fn sample(
    budget: Budget,
    progress: &ProgressBar,
    mut op: impl FnMut() -> Result<u64, Error>,
) -> Result<(Vec<Duration>, u64), Error> {
    op()?;
    let started = Instant::now();
    let mut durations = Vec::new();
    let mut items = 0;
    while durations.len() < MIN_SAMPLES
        || (durations.len() < budget.samples && started.elapsed() < budget.time)
    {
        let began = Instant::now();
        items += op()?;
        durations.push(began.elapsed());
        progress.inc(1);
    }
    Ok((durations, items))
}

/// A spinner for one figure, counting its samples; drawn only on a terminal.
pub(super) fn spinner(message: String) -> ProgressBar {
    ProgressBar::new_spinner()
        .with_style(
            ProgressStyle::with_template("{spinner} {msg}: {pos} samples ({elapsed})")
                .expect("the template is valid"),
        )
        .with_message(message)
}

/// A bar over `len` items, for loads and full lists.
pub(super) fn bar(len: u64, message: String) -> ProgressBar {
    ProgressBar::new(len)
        .with_style(
            ProgressStyle::with_template(
                "{msg} [{bar:40}] {human_pos}/{human_len} ({per_sec}, {eta} left)",
            )
            .expect("the template is valid")
            .progress_chars("=> "),
        )
        .with_message(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_take_the_nearest_rank() {
        let latency = Latency::of((1..=100).rev().map(Duration::from_millis).collect());
        assert_eq!(latency.samples, 100);
        assert_eq!(latency.p50_ms, 50.0);
        assert_eq!(latency.p90_ms, 90.0);
        assert_eq!(latency.p99_ms, 99.0);
        assert_eq!(latency.max_ms, 100.0);
        assert_eq!(latency.mean_ms, 50.5);
        let one = Latency::of(vec![Duration::from_millis(7)]);
        assert_eq!((one.p50_ms, one.p99_ms, one.max_ms), (7.0, 7.0, 7.0));
    }
}
