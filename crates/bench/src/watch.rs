//! What the watch bench (`benches/watch.rs`) reports for each engine, so that revkv's rows and
//! etcd's print alike: commit-to-delivery latency, events delivered per second, and puts per
//! second against a run with no watcher.

use std::time::Duration;

use crate::percentile::nearest_rank;

/// One run: writers putting while watchers drain.
pub struct WatchFigures {
    pub puts_per_sec: f64,
    /// From a put's return to its delivery to one watcher, one per event delivered or a sample of them, sorted; 0
    /// when delivery beat the put's own return.
    pub latencies: Vec<Duration>,
    pub events_per_sec: f64,
}

/// The header of the rows [`WatchFigures::row`] prints.
pub const WATCH_HEADER: &str =
    "engine layout       watchers  p50 ms  p99 ms  events/s  puts/s  none puts/s  vs none";

impl WatchFigures {
    /// The row of a run of `engine` with `watchers` on `layout`, beside `baseline` puts/s with
    /// none.
    #[must_use]
    pub fn row(&self, engine: &str, layout: &str, watchers: usize, baseline: f64) -> String {
        let p = |fraction| {
            if self.latencies.is_empty() {
                f64::NAN
            } else {
                nearest_rank(&self.latencies, fraction).as_secs_f64() * 1e3
            }
        };
        format!(
            "{engine:<6} {layout:<12} {watchers:>8}  {:>6.3}  {:>6.3}  {:>8.0}  {:>6.0}  {baseline:>11.0}  {:>6.0}%",
            p(0.5),
            p(0.99),
            self.events_per_sec,
            self.puts_per_sec,
            100.0 * self.puts_per_sec / baseline
        )
    }
}
