//! Counters and histograms behind `/metrics`, in Prometheus' text exposition format.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

use crate::backend::Revisions;

/// Upper bounds of the latency histogram, in seconds.
const LATENCY_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];
/// Upper bounds of the chunk-size histogram, in items.
const CHUNK_BUCKETS: [f64; 8] = [0.0, 1.0, 10.0, 100.0, 500.0, 1000.0, 5000.0, 10_000.0];

#[derive(Default)]
struct Histogram {
    /// One count per bucket of its bounds, not cumulative; rendering accumulates.
    buckets: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, bounds: &[f64], value: f64) {
        if self.buckets.is_empty() {
            self.buckets = vec![0; bounds.len()];
        }
        if let Some(slot) = bounds.iter().position(|bound| value <= *bound) {
            self.buckets[slot] += 1;
        }
        self.sum += value;
        self.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str, bounds: &[f64]) {
        let mut cumulative = 0;
        for (bound, count) in bounds.iter().zip(&self.buckets) {
            cumulative += count;
            let _ = writeln!(out, "{name}_bucket{{{labels}le=\"{bound}\"}} {cumulative}");
        }
        let _ = writeln!(out, "{name}_bucket{{{labels}le=\"+Inf\"}} {}", self.count);
        let trimmed = labels.trim_end_matches(',');
        let _ = writeln!(out, "{name}_sum{{{trimmed}}} {}", self.sum);
        let _ = writeln!(out, "{name}_count{{{trimmed}}} {}", self.count);
    }
}

#[derive(Default)]
struct Figures {
    /// Requests by API, method and status code.
    requests: BTreeMap<(&'static str, String, u16), u64>,
    latency: BTreeMap<&'static str, Histogram>,
    chunks: BTreeMap<&'static str, Histogram>,
}

/// The server's figures; cheap to update from every request.
#[derive(Default)]
pub struct Metrics {
    figures: Mutex<Figures>,
    watchers: AtomicU64,
}

/// Counts one open watch for as long as it lives.
pub struct Watching<'a>(&'a AtomicU64);

impl Drop for Watching<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Metrics {
    pub fn record_request(&self, api: &'static str, method: &str, code: u16, took: Duration) {
        let mut figures = self.figures.lock();
        *figures
            .requests
            .entry((api, method.to_owned(), code))
            .or_default() += 1;
        figures
            .latency
            .entry(api)
            .or_default()
            .observe(&LATENCY_BUCKETS, took.as_secs_f64());
    }

    /// Records the number of items (and common prefixes) one list chunk returned.
    pub fn record_chunk(&self, api: &'static str, items: usize) {
        #[allow(
            clippy::cast_precision_loss,
            reason = "a chunk holds at most 10,000 items"
        )]
        let items = items as f64;
        self.figures
            .lock()
            .chunks
            .entry(api)
            .or_default()
            .observe(&CHUNK_BUCKETS, items);
    }

    pub fn watching(&self) -> Watching<'_> {
        self.watchers.fetch_add(1, Ordering::Relaxed);
        Watching(&self.watchers)
    }

    pub fn render(&self, revisions: Revisions) -> String {
        let figures = self.figures.lock();
        let mut out = String::new();
        out.push_str("# HELP revkv_http_requests_total HTTP requests by API, method and code.\n");
        out.push_str("# TYPE revkv_http_requests_total counter\n");
        for ((api, method, code), count) in &figures.requests {
            let _ = writeln!(
                out,
                "revkv_http_requests_total{{api=\"{api}\",method=\"{method}\",code=\"{code}\"}} {count}"
            );
        }
        out.push_str("# HELP revkv_http_request_duration_seconds Time to answer a request.\n");
        out.push_str("# TYPE revkv_http_request_duration_seconds histogram\n");
        for (api, histogram) in &figures.latency {
            histogram.render(
                &mut out,
                "revkv_http_request_duration_seconds",
                &format!("api=\"{api}\","),
                &LATENCY_BUCKETS,
            );
        }
        out.push_str("# HELP revkv_list_chunk_items Items and common prefixes per list chunk.\n");
        out.push_str("# TYPE revkv_list_chunk_items histogram\n");
        for (api, histogram) in &figures.chunks {
            histogram.render(
                &mut out,
                "revkv_list_chunk_items",
                &format!("api=\"{api}\","),
                &CHUNK_BUCKETS,
            );
        }
        out.push_str("# HELP revkv_watchers Open watch streams.\n");
        out.push_str("# TYPE revkv_watchers gauge\n");
        let _ = writeln!(
            out,
            "revkv_watchers {}",
            self.watchers.load(Ordering::Relaxed)
        );
        out.push_str("# HELP revkv_revision The newest revision readers see.\n");
        out.push_str("# TYPE revkv_revision gauge\n");
        let _ = writeln!(out, "revkv_revision {}", revisions.current);
        out.push_str("# HELP revkv_compacted_revision Reads below this revision fail.\n");
        out.push_str("# TYPE revkv_compacted_revision gauge\n");
        let _ = writeln!(out, "revkv_compacted_revision {}", revisions.compacted);
        out
    }
}
