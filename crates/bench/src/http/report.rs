//! The figures of `revkv bench http`: per engine and size, printed side by side with how many
//! times faster revkv serve is, with the two targets, and written as JSON.

use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::load::Shape;
use crate::report::{count, millis, Machine, Positions, FIGURE_WIDTH};
use crate::stats::{Budget, Latency, Throughput};

/// What a run measured with.
#[derive(Serialize)]
pub(super) struct Settings {
    /// How the objects were created.
    pub(super) workload: Shape,
    /// Objects created, ascending.
    pub(super) sizes: Vec<u64>,
    /// About how many bytes of JSON each stored object holds...
    pub(super) object_size: usize,
    /// ...of which its `data.payload` fills this many.
    pub(super) payload_size: usize,
    pub(super) limit: usize,
    pub(super) clients: usize,
    pub(super) peer_max_objects: u64,
    pub(super) list_max_objects: u64,
    pub(super) peer_list_max_objects: u64,
    pub(super) budget: Budget,
}

#[derive(Serialize)]
pub(super) struct HttpReport {
    pub(super) machine: Machine,
    /// One per workload and object size.
    pub(super) runs: Vec<HttpRun>,
}

/// The figures of one collection on every engine.
#[derive(Serialize)]
pub(super) struct HttpRun {
    pub(super) settings: Settings,
    /// revkv serve first; the speedups compare every other engine with it.
    pub(super) engines: Vec<EngineFigures>,
}

#[derive(Serialize)]
pub(super) struct EngineFigures {
    pub(super) engine: &'static str,
    pub(super) version: Option<String>,
    /// How the client reaches it.
    pub(super) transport: &'static str,
    pub(super) sizes: Vec<SizeFigures>,
}

#[derive(Serialize)]
pub(super) struct SizeFigures {
    /// Objects created.
    pub(super) objects: u64,
    /// Objects left after the churn's deletes: the items of a whole list.
    pub(super) live: u64,
    /// A chunk of `limit` items with its remaining count.
    pub(super) chunk: Positions,
    /// Whole lists from `clients` at once: items per second, and the latency of each chunk.
    pub(super) lists: Option<Throughput>,
}

/// The target of the p50 of a chunk at the largest size over the same at the smallest.
const MAX_GROWTH: f64 = 1.5;
/// The target of etcd's first chunk p50 over revkv serve's.
const MIN_SPEEDUP_OVER_ETCD: f64 = 50.0;

/// An engine's figures at `objects`, which a peer may not have measured.
fn size_of(engine: &EngineFigures, objects: u64) -> Option<&SizeFigures> {
    engine.sizes.iter().find(|size| size.objects == objects)
}

impl HttpReport {
    pub(super) fn table(&self) -> String {
        let machine = &self.machine;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{} ({} CPUs, {} GiB), Linux {}",
            machine.cpu, machine.cpus, machine.memory_gib, machine.kernel
        );
        for run in &self.runs {
            run.table(&mut out);
        }
        out
    }

    /// Writes `http-report.json` into `dir`; returns its path.
    pub(super) fn write(&self, dir: &Path) -> io::Result<PathBuf> {
        fs::create_dir_all(dir)?;
        let json = serde_json::to_string_pretty(self).map_err(io::Error::other)?;
        let path = dir.join("http-report.json");
        fs::write(&path, json + "\n")?;
        Ok(path)
    }
}

impl HttpRun {
    fn table(&self, out: &mut String) {
        let settings = &self.settings;
        let _ = writeln!(out);
        for engine in &self.engines {
            let version = engine.version.as_deref().unwrap_or("this build");
            let _ = writeln!(out, "{}: {version}, {}", engine.engine, engine.transport);
        }
        let _ = writeln!(
            out,
            "workload {}, {} B objects: ConfigMaps of about {} B in 100 namespaces, created {}; \
             chunks list every namespace's; \"revkv ×\": how many times faster revkv serve is \
             (p50 or rate)\n",
            settings.workload.name(),
            settings.object_size,
            settings.object_size,
            settings.workload.describe(),
        );
        let _ = writeln!(
            out,
            "{:<FIGURE_WIDTH$} {:<12} {:>16} {:>10} {:>10} {:>10} {:>10} {:>9}",
            "figure", "engine", "value", "p50", "p90", "p99", "max", "revkv ×"
        );
        let Some((base, _)) = self.engines.split_first() else {
            return;
        };
        for size in &base.sizes {
            let objects = count(size.objects as f64);
            for (position, _) in size.chunk.each() {
                let name = format!("chunk of {}, {objects} objects, {position}", settings.limit);
                self.rows(out, &name, |engine| {
                    let latency = size_of(engine, size.objects)?
                        .chunk
                        .each()
                        .into_iter()
                        .find(|(p, _)| *p == position)?
                        .1;
                    Some((String::new(), latency, latency.p50_ms))
                });
            }
            let name = format!("{} clients paging, {objects} objects", settings.clients);
            self.rows(out, &name, |engine| {
                let lists = size_of(engine, size.objects)?.lists?;
                // A rate: inverted, so that the speedup reads as for latencies.
                Some((
                    format!("{} items/s", count(lists.per_second)),
                    lists.latency,
                    1.0 / lists.per_second,
                ))
            });
        }
        self.targets(out);
    }

    /// One line per engine that has the figure `value` picks.
    fn rows(
        &self,
        out: &mut String,
        name: &str,
        value: impl Fn(&EngineFigures) -> Option<(String, Latency, f64)>,
    ) {
        let base = self
            .engines
            .first()
            .and_then(&value)
            .map(|(_, _, cost)| cost);
        let mut label = name;
        for engine in &self.engines {
            let Some((headline, latency, cost)) = value(engine) else {
                continue;
            };
            let speedup = match base {
                Some(base) if !std::ptr::eq(engine, &self.engines[0]) => {
                    format!("{:.1}", cost / base)
                }
                _ => String::new(),
            };
            let [p50, p90, p99, max] = [
                latency.p50_ms,
                latency.p90_ms,
                latency.p99_ms,
                latency.max_ms,
            ]
            .map(millis);
            let _ = writeln!(
                out,
                "{label:<FIGURE_WIDTH$} {:<12} {headline:>16} {p50:>10} {p90:>10} {p99:>10} {max:>10} {speedup:>9}",
                engine.engine
            );
            label = "";
        }
    }

    /// The targets, as measured: revkv serve's chunk growth from the smallest size to
    /// the largest, and its speedup over etcd's first chunk at etcd's largest size.
    fn targets(&self, out: &mut String) {
        let Some(base) = self.engines.first() else {
            return;
        };
        if let (Some(smallest), Some(largest)) = (base.sizes.first(), base.sizes.last()) {
            let growth: Vec<String> = smallest
                .chunk
                .each()
                .iter()
                .zip(largest.chunk.each())
                .map(|((_, small), (_, large))| format!("{:.2}×", large.p50_ms / small.p50_ms))
                .collect();
            let _ = writeln!(
                out,
                "\n{} chunk p50 at {} ÷ at {} objects, first / middle / last: {} (target: at most {MAX_GROWTH}×)",
                base.engine,
                count(largest.objects as f64),
                count(smallest.objects as f64),
                growth.join(" / ")
            );
        }
        for etcd in self.engines.iter().filter(|engine| engine.engine == "etcd") {
            let Some(theirs) = etcd.sizes.last() else {
                continue;
            };
            let Some(ours) = size_of(base, theirs.objects) else {
                continue;
            };
            let _ = writeln!(
                out,
                "etcd's first chunk p50 ÷ {}'s at {} objects: {:.0}× (target: at least {MIN_SPEEDUP_OVER_ETCD}×)",
                base.engine,
                count(theirs.objects as f64),
                theirs.chunk.first.p50_ms / ours.chunk.first.p50_ms
            );
        }
    }
}
