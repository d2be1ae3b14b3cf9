//! `revkv bench`: chunk latency and the other figures that matter to a list API, measured on a
//! temporary revkv store and, with the `peers` feature, on etcd and on SQLite with kine's
//! schema: the same workload in the same run, printed side by side, written as JSON and drawn
//! as SVG.
//!
//! - `workload`: every figure, written once against [`engine::Engine`], on the collection that
//!   [`load`] generates (the same one the criterion benches load);
//! - `embedded` (revkv) and `peers`: the engines;
//! - `stats`: sampling and percentiles; `report`: the table, the JSON and the plots; `svg`: the
//!   plotting; `parallel`: concurrent clients' threads;
//! - `watch`: the rows of the watch bench (`benches/watch.rs`), with etcd's watch behind
//!   `peers`;
//! - `http` (`revkv bench http`): chunks and whole lists over HTTP from `revkv serve`, beside
//!   etcd's gateway and kine.

mod embedded;
mod engine;
mod http;
pub mod load;
mod parallel;
#[cfg(feature = "peers")]
mod peers;
pub mod percentile;
mod report;
mod stats;
mod svg;
pub mod watch;
mod workload;

use std::path::PathBuf;
use std::time::Duration;

use clap::error::ErrorKind;
use clap::{Args, Subcommand, ValueEnum};

pub use engine::Error;
use load::{Collection, Shape};
#[cfg(feature = "peers")]
pub use peers::etcd_watch;
use report::{Machine, Report, Run};
use stats::Budget;
use workload::Workload;

#[derive(Args)]
#[command(after_long_help = WORKLOADS_HELP, args_conflicts_with_subcommands = true)]
pub struct BenchArgs {
    #[command(subcommand)]
    mode: Option<Mode>,
    #[command(flatten)]
    shapes: ShapeArgs,
    /// Collection sizes to measure chunks at, in keys written (the churn then deletes about
    /// 1%). The largest also gets the depth sweep, the filtered chunk, the full paged lists,
    /// the chunks beside a writer and the compaction.
    #[arg(
        long,
        value_name = "N,...",
        value_delimiter = ',',
        default_value = "10000,100000,1000000"
    )]
    keys: Vec<u64>,
    /// The lengths of the values, in bytes, one run of every figure each: Kubernetes objects
    /// are a few hundred bytes to a few KiB.
    #[arg(
        long = "value-size",
        value_name = "BYTES,...",
        value_delimiter = ',',
        default_value = "256,4096"
    )]
    value_sizes: Vec<usize>,
    /// The limit of the measured chunks.
    #[arg(long, value_name = "N", default_value_t = 500)]
    limit: usize,
    /// Page sizes of the full paged lists, one list each: the chunk size clients page with,
    /// and a large page.
    #[arg(
        long,
        value_name = "N,...",
        value_delimiter = ',',
        default_value = "500,10000"
    )]
    list_limit: Vec<usize>,
    /// The fraction of items the filtered chunk's selector matches.
    #[arg(long, value_name = "FRACTION", default_value_t = 0.01)]
    selectivity: f64,
    /// Concurrent durable writers.
    #[arg(long, value_name = "N", default_value_t = 8)]
    writers: usize,
    /// Changes per transaction, for loading, churning and the batched writes.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    batch: usize,
    /// Live keys rewritten before the compaction, each leaving one record of garbage (the
    /// churn's garbage is compacted away first, untimed) [default: all of the largest size].
    #[arg(long, value_name = "N")]
    overwrite: Option<u64>,
    /// Cursor depths sampled, evenly spaced from the first chunk to the last.
    #[arg(long, value_name = "N", default_value_t = 11)]
    depths: usize,
    #[command(flatten)]
    sampling: SamplingArgs,
    #[command(flatten)]
    peer: PeerArgs,
    /// Peers skip the collection sizes above this one: loading and counting are slow there.
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    peer_max_keys: u64,
    /// sled's page cache for revkv, in MiB [default: the store's default, 1 GiB].
    #[arg(long, value_name = "MIB")]
    cache_mib: Option<u64>,
    /// Where to write report.json and, for each workload and value size, chunk-vs-keys-*.svg and
    /// chunk-vs-depth-*.svg.
    #[arg(long, value_name = "DIR", default_value = "revkv-bench")]
    out: PathBuf,
    /// Internal: opens the store in DIR and prints the resident memory the open added. The
    /// benchmark runs itself with it, so that memory is weighed in a fresh process.
    #[arg(long, value_name = "DIR", hide = true)]
    weigh_open: Option<PathBuf>,
    /// Internal: what `--weigh-open` opens.
    #[arg(long, value_name = "PART", hide = true, default_value = "store")]
    weigh_part: embedded::Part,
}

/// Benchmarks other than the engine's.
#[derive(Subcommand)]
enum Mode {
    /// Chunks of every namespace's ConfigMaps over HTTP from `revkv serve` (in-process, on
    /// loopback, durable), at the first, middle and last position, and whole lists from many
    /// clients at once; beside etcd's JSON gateway and kine on SQLite with `--peer`. Writes
    /// http-report.json.
    Http(http::HttpArgs),
}

/// What `revkv bench --help` tells about the workloads.
const WORKLOADS_HELP: &str = "\
Workloads:
  The collection is ConfigMaps of 100 namespaces: key i is
  /registry/configmaps/ns-%03d/cm-%07d with ns = i % 100 and cm = i / 100, and the chunks
  list the prefix /registry/configmaps/, across namespaces, as a cluster-wide list does.
  interleaved  keys written in order of i, so that consecutive writes land in 100 places of
               the key space, as a cluster's objects arrive; then churn: about 10% of the keys
               (chosen pseudo-randomly, the same every run) overwritten and 1% deleted, in a
               pseudo-random order
  random       the same keys written in a pseudo-random order, then the same churn
  sequential   the same keys written in key order, no churn: the best case, records in key
               order on disk, as the benchmarks' key-order loads of bench/%08d keys had it
  A larger size grows the smaller one: its new keys in the workload's order, then their churn.
  Chunk checks count the live keys: a chunk must hold --limit items and report exactly the
  items after it; a full list must return every live key. etcd and SQLite get the same
  changes in the same order, in transactions of --batch changes.";

/// How long each figure samples, in `revkv bench` and `revkv bench http` alike.
#[derive(Args)]
struct SamplingArgs {
    /// Samples per figure, at most; each kind of chunk of the contended figures (quiet, beside a
    /// writer, beside a spinner) takes ten times as many, in up to twice the seconds, since
    /// those figures compare p99s.
    #[arg(long, value_name = "N", default_value_t = 2000)]
    samples: usize,
    /// Seconds per figure, at most (every figure takes at least 5 samples, and every client of
    /// a whole-list figure one whole list).
    #[arg(long, value_name = "S", default_value_t = 3.0)]
    seconds: f64,
}

impl SamplingArgs {
    /// The budget, or a usage error for a time no duration holds.
    fn budget(&self) -> Budget {
        let Ok(time) = Duration::try_from_secs_f64(self.seconds) else {
            usage("--seconds must be a number of seconds a duration can hold");
        };
        Budget {
            samples: self.samples,
            time,
        }
    }
}

/// How the collections are written, in `revkv bench` and `revkv bench http` alike.
#[derive(Args)]
struct ShapeArgs {
    /// How the collection is written; every figure is measured once per workload, each on a
    /// new store (and on each peer).
    #[arg(
        long = "workload",
        value_name = "SHAPE,...",
        value_delimiter = ',',
        default_value = "interleaved,random"
    )]
    workloads: Vec<Shape>,
}

impl ShapeArgs {
    /// The shapes asked for, each once.
    fn shapes(&self) -> Vec<Shape> {
        first_occurrences(&self.workloads)
    }
}

/// The peers measured beside revkv, by `revkv bench` and `revkv bench http` alike.
#[derive(Args)]
struct PeerArgs {
    /// Measures the same on a peer too; may be repeated. Needs the `peers` feature.
    #[arg(long = "peer", value_name = "PEER")]
    peers: Vec<Peer>,
    /// The etcd server for `--peer etcd`; `scripts/etcd.sh start` starts one.
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:2379")]
    etcd_endpoint: String,
}

impl PeerArgs {
    /// Exits with a usage error when peers are asked for from a build without them.
    fn check(&self) {
        #[cfg(not(feature = "peers"))]
        if !self.peers.is_empty() {
            usage("--peer needs a revkv built with the `peers` feature (cargo build --release -p revkv-cli --features peers)");
        }
    }
}

/// What revkv is compared with.
#[derive(Clone, Copy, ValueEnum)]
enum Peer {
    /// etcd v3, over its JSON gateway.
    Etcd,
    /// SQLite with kine's schema and queries, in a temporary file.
    SqliteKine,
}

impl BenchArgs {
    /// The workload, or a usage error for arguments no run can use.
    fn workload(&self) -> Workload {
        let mut sizes = self.keys.clone();
        sizes.sort_unstable();
        sizes.dedup();
        let smallest = sizes.first().copied().unwrap_or(0);
        if smallest < 2 * self.limit as u64 {
            usage(&format!(
                "every size in --keys must be at least twice --limit ({} keys)",
                2 * self.limit
            ));
        }
        if self.limit == 0 || self.list_limit.contains(&0) || self.batch == 0 {
            usage("--limit, --list-limit and --batch must be positive");
        }
        if !(self.selectivity > 0.0 && self.selectivity <= 1.0) {
            usage("--selectivity must be above 0 and at most 1");
        }
        if self.batch > revkv::MAX_TXN_OPS {
            usage(&format!("--batch is at most {}", revkv::MAX_TXN_OPS));
        }
        let cache_bytes = self.cache_mib.map(|mib| {
            mib.checked_mul(1 << 20)
                .unwrap_or_else(|| usage("--cache-mib is too large"))
        });
        let largest = sizes.last().copied().unwrap_or(0);
        if self
            .value_sizes
            .iter()
            .any(|&bytes| bytes > revkv::MAX_VALUE_LEN)
        {
            usage(&format!(
                "every size in --value-size is at most {} bytes",
                revkv::MAX_VALUE_LEN
            ));
        }
        let shapes = self.shapes.shapes();
        let value_sizes = first_occurrences(&self.value_sizes);
        // The churn, and so what is live, does not depend on the values' length.
        let collection = |shape| Collection {
            shape,
            value_size: 0,
        };
        let fewest_live = shapes
            .iter()
            .map(|&shape| collection(shape).live_in_key_order(smallest).len())
            .min()
            .unwrap_or(0);
        if fewest_live < 2 * self.limit {
            usage(&format!(
                "the smallest size in --keys leaves {fewest_live} live keys after the churn, \
                 fewer than twice --limit"
            ));
        }
        Workload {
            shapes,
            overwrite: self.overwrite.unwrap_or(largest),
            sizes,
            value_sizes,
            limit: self.limit,
            list_limits: self.list_limit.clone(),
            selectivity: self.selectivity,
            writers: self.writers.max(1),
            batch: self.batch,
            depths: self.depths,
            cache_bytes,
            budget: self.sampling.budget(),
        }
    }
}

/// `items` without repeats, each where it first occurs: a repeated shape or value size would
/// measure the same run twice and write its plots over the first one's.
fn first_occurrences<T: Copy + PartialEq>(items: &[T]) -> Vec<T> {
    let mut kept = Vec::with_capacity(items.len());
    for &item in items {
        if !kept.contains(&item) {
            kept.push(item);
        }
    }
    kept
}

/// Exits with clap's usage error, as for any other bad argument.
fn usage(message: &str) -> ! {
    clap::Error::raw(ErrorKind::ValueValidation, format!("{message}\n")).exit()
}

/// Runs the workload on revkv, then on each peer, and reports.
pub fn run(args: BenchArgs) -> Result<(), Error> {
    if let Some(Mode::Http(http)) = args.mode {
        return http::run(http);
    }
    if let Some(dir) = &args.weigh_open {
        return embedded::weigh_open(dir, args.weigh_part);
    }
    let workload = args.workload();
    args.peer.check();
    let machine = Machine::detect();
    let mut runs = Vec::new();
    for collection in workload.collections() {
        let mut engines = Vec::new();
        {
            // Dropped before the peers run, so that its memory and files are gone.
            let mut store = embedded::Revkv::create(&workload)?;
            engines.push(workload::run(&mut store, &workload, collection, u64::MAX)?);
        }
        #[cfg(feature = "peers")]
        for &peer in &args.peer.peers {
            engines.push(peers::run(peer, &args, &workload, collection)?);
        }
        runs.push(Run {
            workload: collection.shape,
            value_size: collection.value_size,
            description: collection.describe(),
            engines,
        });
    }
    let report = Report {
        machine,
        workload,
        runs,
    };
    print!("{}", report::table(&report));
    let written = report::write_files(&report, &args.out)
        .map_err(|cause| Error::failed("revkv bench", format!("writing the report: {cause}")))?;
    for path in written {
        println!("wrote {}", path.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_runs_are_measured_once_in_the_order_first_asked() {
        assert_eq!(first_occurrences(&[4096, 256, 4096, 256]), [4096, 256]);
        assert_eq!(
            first_occurrences(&[Shape::Random, Shape::Interleaved, Shape::Random]),
            [Shape::Random, Shape::Interleaved]
        );
    }
}
