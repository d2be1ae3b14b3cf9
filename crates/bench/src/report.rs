//! The results: one [`EngineReport`] per engine, printed side by side with revkv's speedup, and
//! written as JSON and SVG plots.

use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::stats::{Latency, Throughput};
use super::svg::{Axis, Plot, Scale, Series};
use super::workload::Workload;
use crate::load::Shape;

/// Everything one run measured.
#[derive(Serialize)]
pub(super) struct Report {
    pub(super) machine: Machine,
    pub(super) workload: Workload,
    /// One per shape and value size of the collection, in the order of
    /// `Workload::collections`.
    pub(super) runs: Vec<Run>,
}

/// Every engine's figures with the collection of one shape and value size.
#[derive(Serialize)]
pub(super) struct Run {
    pub(super) workload: Shape,
    pub(super) value_size: usize,
    /// How the collection was written.
    pub(super) description: String,
    /// revkv first; the speedups compare every other engine with it.
    pub(super) engines: Vec<EngineReport>,
}

impl Run {
    /// What names the run's plots: its shape and value size, as in `interleaved-256b`.
    fn file_name(&self) -> String {
        format!("{}-{}b", self.workload.name(), self.value_size)
    }
}

/// Where the figures were measured.
#[derive(Serialize)]
pub(super) struct Machine {
    pub(super) cpu: String,
    pub(super) cpus: usize,
    pub(super) memory_gib: f64,
    pub(super) kernel: String,
}

impl Machine {
    /// Reads what Linux tells about the machine; what it cannot read stays "unknown".
    pub(super) fn detect() -> Machine {
        let read = |path: &str| fs::read_to_string(path).unwrap_or_default();
        let field = |text: &str, name: &str| {
            text.lines()
                .find(|line| line.starts_with(name))
                .and_then(|line| line.split(':').nth(1))
                .map(|value| value.trim().to_string())
        };
        let memory_kib: f64 = field(&read("/proc/meminfo"), "MemTotal")
            .and_then(|value| value.trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0.0);
        let kernel = read("/proc/sys/kernel/osrelease").trim().to_string();
        Machine {
            cpu: field(&read("/proc/cpuinfo"), "model name").unwrap_or_else(|| "unknown".into()),
            cpus: std::thread::available_parallelism().map_or(0, usize::from),
            memory_gib: (memory_kib / (1024.0 * 1024.0) * 10.0).round() / 10.0,
            kernel: if kernel.is_empty() {
                "unknown".into()
            } else {
                kernel
            },
        }
    }
}

/// Every figure of one engine.
#[derive(Serialize)]
pub(super) struct EngineReport {
    pub(super) engine: &'static str,
    /// The peer's version, as it reports it.
    pub(super) version: Option<String>,
    pub(super) sizes: Vec<SizeFigures>,
    /// The collection size of the depth sweep: the largest one.
    pub(super) depth_keys: u64,
    /// Its live keys, which the depths are positions in.
    pub(super) depth_live: u64,
    pub(super) depth: Vec<DepthPoint>,
    pub(super) filtered: FilteredChunk,
    pub(super) paged_lists: Vec<PagedList>,
    /// Chunks of the largest collection, quiet and beside a durable writer.
    pub(super) contended: Vec<Contended>,
    pub(super) writes: Writes,
    pub(super) compaction: Compaction,
}

/// Chunk latency at one collection size.
#[derive(Serialize)]
pub(super) struct SizeFigures {
    /// Keys written.
    pub(super) keys: u64,
    /// Keys left after the churn's deletes: the items of a full list.
    pub(super) live: u64,
    /// A chunk of `limit` items with its remaining count.
    pub(super) chunk: Positions,
    /// The count alone of the items from each position on, where the engine asks for one
    /// (etcd's `count_only` range request).
    pub(super) count_only: Option<Positions>,
    pub(super) open: Option<Open>,
    /// Seconds to list the collection once and build the key-order blocks that list asked
    /// for; `None` for engines that keep none.
    pub(super) settle_seconds: Option<f64>,
}

/// One latency at each of the three positions of a list: its first chunk, the one in the
/// middle, and its last full one.
#[derive(Clone, Copy, Serialize)]
pub(super) struct Positions {
    pub(super) first: Latency,
    pub(super) middle: Latency,
    pub(super) last: Latency,
}

/// The names of the positions, in the order of [`Positions::each`].
const POSITIONS: [&str; 3] = ["first", "middle", "last"];

impl Positions {
    pub(super) fn each(&self) -> [(&'static str, Latency); 3] {
        let [first, middle, last] = POSITIONS;
        [
            (first, self.first),
            (middle, self.middle),
            (last, self.last),
        ]
    }
}

/// Reopening an embedded store.
#[derive(Clone, Copy, Serialize)]
pub(super) struct Open {
    pub(super) seconds: f64,
    /// Resident memory the opened store added, per key (sled's page cache kept small); `None`
    /// where the process's resident size cannot be read.
    pub(super) resident_bytes_per_key: Option<f64>,
    /// The part of it that is not sled's, less the key's own bytes: the index.
    pub(super) index_bytes_per_key: Option<f64>,
}

#[derive(Serialize)]
pub(super) struct DepthPoint {
    /// Items listed before the chunk.
    pub(super) depth: u64,
    pub(super) latency: Latency,
}

#[derive(Serialize)]
pub(super) struct FilteredChunk {
    pub(super) keys: u64,
    pub(super) selectivity: f64,
    /// Items the client received and filtered to fill the chunk; `None` when the store filtered
    /// them.
    pub(super) examined: Option<usize>,
    pub(super) latency: Latency,
}

#[derive(Serialize)]
pub(super) struct PagedList {
    pub(super) keys: u64,
    pub(super) limit: usize,
    /// Items per second; the latency is per chunk.
    pub(super) throughput: Throughput,
}

/// One chunk timed quiet, then while another thread makes durable single puts, one after
/// another, outside the listed collection, and, as a control, while a thread only spins: what
/// sharing the cores costs any reader, whatever the engine.
#[derive(Serialize)]
pub(super) struct Contended {
    pub(super) keys: u64,
    /// "first" or "middle".
    pub(super) position: &'static str,
    /// Items listed before the chunk.
    pub(super) depth: u64,
    pub(super) quiet: Latency,
    pub(super) beside_writer: Latency,
    pub(super) beside_spinner: Latency,
    /// What the writer made meanwhile.
    pub(super) puts: Throughput,
}

#[derive(Serialize)]
pub(super) struct Writes {
    /// Puts per second, one durable put at a time.
    pub(super) single: Throughput,
    pub(super) batch: usize,
    /// Keys per second in durable transactions of `batch` puts; the latency is per transaction.
    pub(super) batched: Throughput,
    pub(super) writers: usize,
    /// Puts per second from `writers` threads each putting durably one key at a time.
    pub(super) concurrent: Throughput,
}

#[derive(Serialize)]
pub(super) struct Compaction {
    /// Records made garbage by rewrites, then compacted away.
    pub(super) records: u64,
    pub(super) seconds: f64,
    pub(super) records_per_second: f64,
    /// First chunks just before the compaction.
    pub(super) idle: Latency,
    /// First chunks while it ran.
    pub(super) during: Latency,
}

/// One printed figure of one engine.
enum Value {
    Latency(Latency),
    Rate {
        per_second: f64,
        unit: &'static str,
        latency: Option<Latency>,
    },
    Seconds(f64),
    BytesPerKey(f64),
    /// A ratio within one engine's figures, which no other engine's is compared with.
    Factor(f64),
}

impl Value {
    /// How many times faster `base` is than `self`, for figures where that means something.
    fn speedup_over(&self, base: &Value) -> Option<f64> {
        match (base, self) {
            (Value::Latency(base), Value::Latency(other)) => Some(other.p50_ms / base.p50_ms),
            (
                Value::Rate {
                    per_second: base, ..
                },
                Value::Rate {
                    per_second: other, ..
                },
            ) => Some(base / other),
            (Value::Seconds(base), Value::Seconds(other)) => Some(other / base),
            _ => None,
        }
    }

    fn latency(&self) -> Option<&Latency> {
        match self {
            Value::Latency(latency) => Some(latency),
            Value::Rate { latency, .. } => latency.as_ref(),
            _ => None,
        }
    }

    fn headline(&self) -> String {
        match self {
            Value::Latency(_) => String::new(),
            Value::Rate {
                per_second, unit, ..
            } => format!("{} {unit}/s", count(*per_second)),
            Value::Seconds(seconds) => format!("{seconds:.2} s"),
            Value::BytesPerKey(bytes) => format!("{bytes:.0} B/key"),
            Value::Factor(factor) => format!("{factor:.2}×"),
        }
    }
}

/// The figures of one engine in print order, each with its name.
fn figures(engine: &EngineReport, workload: &Workload) -> Vec<(String, Value)> {
    let limit = workload.limit;
    let mut rows = Vec::new();
    for size in &engine.sizes {
        let keys = count(size.keys as f64);
        for (position, latency) in size.chunk.each() {
            rows.push((
                format!("chunk of {limit}, {keys} keys, {position}"),
                Value::Latency(latency),
            ));
        }
        for (position, latency) in size.count_only.iter().flat_map(Positions::each) {
            rows.push((
                format!("count only, {keys} keys, {position}"),
                Value::Latency(latency),
            ));
        }
        if let Some(seconds) = size.settle_seconds {
            rows.push((
                format!("first list and its key-order blocks, {keys} keys"),
                Value::Seconds(seconds),
            ));
        }
        if let Some(open) = size.open {
            rows.push((format!("open, {keys} keys"), Value::Seconds(open.seconds)));
            if let Some(bytes) = open.resident_bytes_per_key {
                rows.push((
                    format!("store memory after open, {keys} keys"),
                    Value::BytesPerKey(bytes),
                ));
            }
            if let Some(bytes) = open.index_bytes_per_key {
                rows.push((
                    format!("index memory beyond keys, {keys} keys"),
                    Value::BytesPerKey(bytes),
                ));
            }
        }
    }
    let filtered = &engine.filtered;
    rows.push((
        format!(
            "filtered chunk of {limit} at {}%, {} keys",
            filtered.selectivity * 100.0,
            count(filtered.keys as f64)
        ),
        Value::Latency(filtered.latency),
    ));
    for list in &engine.paged_lists {
        rows.push((
            format!(
                "paged list, {} keys, limit {}",
                count(list.keys as f64),
                list.limit
            ),
            rate(&list.throughput, "items"),
        ));
    }
    for contended in &engine.contended {
        let name = format!(
            "chunk of {limit}, {} keys, {}",
            count(contended.keys as f64),
            contended.position
        );
        rows.push((format!("{name}, quiet"), Value::Latency(contended.quiet)));
        rows.push((
            format!("{name}, beside a writer"),
            Value::Latency(contended.beside_writer),
        ));
        rows.push((
            format!("{name}, p99 beside ÷ quiet"),
            Value::Factor(contended.beside_writer.p99_ms / contended.quiet.p99_ms),
        ));
        rows.push((
            format!("{name}, p99 beside a spinning thread ÷ quiet"),
            Value::Factor(contended.beside_spinner.p99_ms / contended.quiet.p99_ms),
        ));
        rows.push((
            format!("{name}, writer's puts"),
            rate(&contended.puts, "puts"),
        ));
    }
    let writes = &engine.writes;
    rows.push(("single durable puts".into(), rate(&writes.single, "puts")));
    rows.push((
        format!("durable txns of {} puts", writes.batch),
        rate(&writes.batched, "keys"),
    ));
    rows.push((
        format!("{} concurrent durable writers", writes.writers),
        rate(&writes.concurrent, "puts"),
    ));
    let compaction = &engine.compaction;
    // Every compaction row names its size, so that engines compacting different amounts (a
    // peer capped by --peer-max-keys) are never compared.
    let records = count(compaction.records as f64);
    rows.push((
        format!("compaction of {records} records"),
        Value::Rate {
            per_second: compaction.records_per_second,
            unit: "records",
            latency: None,
        },
    ));
    rows.push((
        format!("first chunk before compacting {records}"),
        Value::Latency(compaction.idle),
    ));
    rows.push((
        format!("first chunk while compacting {records}"),
        Value::Latency(compaction.during),
    ));
    rows.push((
        format!("p99 while ÷ p99 before compacting {records}"),
        Value::Factor(compaction.during.p99_ms / compaction.idle.p99_ms),
    ));
    rows
}

fn rate(throughput: &Throughput, unit: &'static str) -> Value {
    Value::Rate {
        per_second: throughput.per_second,
        unit,
        latency: Some(throughput.latency),
    }
}

/// The width of the figure column.
pub(super) const FIGURE_WIDTH: usize = 52;

/// The figures as a table per workload: one line per figure and engine, with latency
/// percentiles and, for every engine after the first, how many times faster the first one is.
pub(super) fn table(report: &Report) -> String {
    let workload = &report.workload;
    let machine = &report.machine;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} ({} CPUs, {} GiB), Linux {}",
        machine.cpu, machine.cpus, machine.memory_gib, machine.kernel
    );
    let mut versions: Vec<(&str, &str)> = Vec::new();
    for engine in report.runs.iter().flat_map(|run| &run.engines) {
        if let Some(version) = engine.version.as_deref() {
            if !versions.contains(&(engine.engine, version)) {
                versions.push((engine.engine, version));
            }
        }
    }
    for (engine, version) in versions {
        let _ = writeln!(out, "{engine}: {version}");
    }
    let _ = writeln!(
        out,
        "{}% selected; \"revkv ×\": how many times faster revkv is (p50 or rate)",
        workload.selectivity * 100.0
    );
    let mut missing = false;
    for run in &report.runs {
        let _ = writeln!(
            out,
            "\nworkload {}, {} B values: {}\n",
            run.workload.name(),
            run.value_size,
            run.description
        );
        missing |= run_table(&mut out, run, workload);
    }
    if missing {
        let _ = writeln!(
            out,
            "\nA figure missing for an engine was not measured on it (a size above --peer-max-keys, \
             no way to reopen a server from here, or no count-only request)."
        );
    }
    out
}

/// The rows of one run; returns whether an engine lacks a figure the first one has.
fn run_table(out: &mut String, run: &Run, workload: &Workload) -> bool {
    let _ = writeln!(
        out,
        "{:<FIGURE_WIDTH$} {:<12} {:>16} {:>10} {:>10} {:>10} {:>10} {:>9}",
        "figure", "engine", "value", "p50", "p90", "p99", "max", "revkv ×"
    );
    let per_engine: Vec<Vec<(String, Value)>> = run
        .engines
        .iter()
        .map(|engine| figures(engine, workload))
        .collect();
    let Some((base, others)) = per_engine.split_first() else {
        return false;
    };
    // Figures only a peer has (etcd's count alone) follow the one they are measured beside.
    let mut names: Vec<&str> = base.iter().map(|(name, _)| name.as_str()).collect();
    for figures in others {
        for (index, (name, _)) in figures.iter().enumerate() {
            if names.contains(&name.as_str()) {
                continue;
            }
            let after = index
                .checked_sub(1)
                .and_then(|before| names.iter().position(|&n| n == figures[before].0));
            names.insert(after.map_or(names.len(), |after| after + 1), name);
        }
    }
    let base_values = |name: &str| base.iter().find(|(other, _)| other == name);
    let mut missing = false;
    for name in names {
        let mut label = name;
        for (engine, figures) in run.engines.iter().zip(&per_engine) {
            let Some((_, value)) = figures.iter().find(|(other, _)| other == name) else {
                missing = true;
                continue;
            };
            let speedup = match base_values(name) {
                Some((_, base_value)) if !std::ptr::eq(figures, base) => value
                    .speedup_over(base_value)
                    .map(|speedup| format!("{speedup:.1}"))
                    .unwrap_or_default(),
                _ => String::new(),
            };
            let [p50, p90, p99, max] = match value.latency() {
                Some(l) => [l.p50_ms, l.p90_ms, l.p99_ms, l.max_ms].map(millis),
                None => Default::default(),
            };
            let _ = writeln!(
                out,
                "{label:<FIGURE_WIDTH$} {:<12} {:>16} {p50:>10} {p90:>10} {p99:>10} {max:>10} {speedup:>9}",
                engine.engine,
                value.headline()
            );
            label = "";
        }
    }
    missing
}

/// A latency in milliseconds with three significant digits (whole ones from 1000 on).
pub(super) fn millis(ms: f64) -> String {
    match ms {
        ms if ms < 1.0 => format!("{ms:.3} ms"),
        ms if ms < 10.0 => format!("{ms:.2} ms"),
        ms if ms < 100.0 => format!("{ms:.1} ms"),
        ms => format!("{ms:.0} ms"),
    }
}

/// A count with a k or M suffix: 1000000 is "1M", 1830 is "1.83k".
pub(super) fn count(value: f64) -> String {
    let (scaled, suffix) = match value.abs() {
        v if v >= 1e6 => (value / 1e6, "M"),
        v if v >= 1e3 => (value / 1e3, "k"),
        _ => (value, ""),
    };
    // Three significant digits, without trailing zeros.
    let decimals = match scaled.abs() {
        v if v >= 100.0 => 0,
        v if v >= 10.0 => 1,
        _ => 2,
    };
    let text = format!("{scaled:.decimals$}");
    let text = match text.contains('.') {
        true => text.trim_end_matches('0').trim_end_matches('.'),
        false => &text,
    };
    format!("{text}{suffix}")
}

/// An axis tick in milliseconds: as many decimals as a power of ten below one needs.
fn tick_millis(ms: f64) -> String {
    if ms >= 1.0 {
        return format!("{ms:.0}");
    }
    let decimals = (-ms.log10()).ceil() as usize;
    format!("{ms:.decimals$}")
}

const COLORS: [&str; 4] = ["#1f6fb4", "#d62728", "#2ca02c", "#9467bd"];

/// Writes `report.json` and two plots per workload into `dir`; returns the files written.
pub(super) fn write_files(report: &Report, dir: &Path) -> io::Result<Vec<PathBuf>> {
    fs::create_dir_all(dir)?;
    let json = serde_json::to_string_pretty(report).map_err(io::Error::other)?;
    let mut files = vec![("report.json".to_string(), json + "\n")];
    for run in &report.runs {
        let name = run.file_name();
        files.push((
            format!("chunk-vs-keys-{name}.svg"),
            chunk_against_keys(report, run).render(),
        ));
        files.push((
            format!("chunk-vs-depth-{name}.svg"),
            chunk_against_depth(report, run).render(),
        ));
    }
    files
        .into_iter()
        .map(|(name, text)| {
            let path = dir.join(name);
            fs::write(&path, text).map(|()| path)
        })
        .collect()
}

/// p50 chunk latency against collection size: one line per engine and position.
fn chunk_against_keys(report: &Report, run: &Run) -> Plot {
    let mut series = Vec::new();
    for (engine, color) in run.engines.iter().zip(COLORS.into_iter().cycle()) {
        let dashes = [None, Some("7 4"), Some("2 3")];
        for (index, (position, dash)) in POSITIONS.into_iter().zip(dashes).enumerate() {
            let points = engine
                .sizes
                .iter()
                .map(|size| (size.keys as f64, size.chunk.each()[index].1.p50_ms))
                .collect();
            series.push(Series {
                name: format!("{} {position}", engine.engine),
                color,
                dash,
                points,
            });
        }
    }
    Plot {
        title: format!(
            "One chunk of {} with its exact remaining count (p50), {} workload, {} B values",
            report.workload.limit,
            run.workload.name(),
            run.value_size
        ),
        x: Axis {
            label: "keys written to the collection".into(),
            scale: Scale::Log,
            format: count,
        },
        y: Axis {
            label: "latency (ms)".into(),
            scale: Scale::Log,
            format: tick_millis,
        },
        series,
    }
}

/// p50 chunk latency against the number of items before the chunk, at each engine's largest
/// collection.
fn chunk_against_depth(report: &Report, run: &Run) -> Plot {
    let series = run
        .engines
        .iter()
        .zip(COLORS.into_iter().cycle())
        .map(|(engine, color)| Series {
            name: format!(
                "{}, {} keys",
                engine.engine,
                count(engine.depth_keys as f64)
            ),
            color,
            dash: None,
            points: engine
                .depth
                .iter()
                .map(|point| (point.depth as f64, point.latency.p50_ms))
                .collect(),
        })
        .collect();
    Plot {
        title: format!(
            "One chunk of {} against cursor depth (p50), {} workload, {} B values",
            report.workload.limit,
            run.workload.name(),
            run.value_size
        ),
        x: Axis {
            label: "items before the chunk".into(),
            scale: Scale::Linear,
            format: count,
        },
        y: Axis {
            label: "latency (ms)".into(),
            scale: Scale::Log,
            format: tick_millis,
        },
        series,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_short() {
        assert_eq!(count(1_000_000.0), "1M");
        assert_eq!(count(1830.0), "1.83k");
        assert_eq!(count(250_000.0), "250k");
        assert_eq!(count(12.0), "12");
        assert_eq!(count(717.49), "717");
        assert_eq!(count(133_420.0), "133k");
        assert_eq!(count(100.0), "100");
        assert_eq!(millis(0.3514), "0.351 ms");
        assert_eq!(millis(1161.4), "1161 ms");
        assert_eq!(tick_millis(0.1), "0.1");
        assert_eq!(tick_millis(0.01), "0.01");
        assert_eq!(tick_millis(1000.0), "1000");
    }
}
