//! The command line: its arguments, one library call per command, and the ways a command fails.

mod compact;
mod demo;
mod history;
mod output;
mod serve;
mod verify;

use std::fmt;
use std::io;
use std::path::PathBuf;

use clap::builder::TypedValueParser;
use clap::{Args, Parser, Subcommand};
use revkv::{Db, Durability, ListOptions, Options, Put, Retention, Revision, WatchOptions};

pub use output::error_line;

/// An embedded, snapshot-consistent MVCC storage engine for paginated list APIs.
#[derive(Parser)]
#[command(name = "revkv", version, about)]
pub struct Cli {
    /// The store's directory; created when missing.
    #[arg(
        long,
        value_name = "DIR",
        default_value = "./revkv-data",
        global = true
    )]
    data: PathBuf,
    /// How much history commands that open the store keep: a duration (`90s`, `5m`, `1h`),
    /// a number of revisions (`10000rev`), or `manual`.
    #[arg(long, value_name = "WINDOW", default_value = "5m", global = true)]
    retention: Retention,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Sets KEY to VALUE; prints the revision of the write.
    Put {
        key: String,
        value: String,
        /// Attaches a label, matched by `list --selector`; repeatable.
        #[arg(long = "label", value_name = "KEY=VALUE", value_parser = key_value)]
        labels: Vec<(String, String)>,
        /// Attaches a field, matched by `list --field-selector`; repeatable.
        #[arg(long = "field", value_name = "KEY=VALUE", value_parser = key_value)]
        fields: Vec<(String, String)>,
    },
    /// Deletes KEY; prints the revision and whether the key existed.
    Delete { key: String },
    /// Prints the entry of KEY as JSON; exits with status 1 when it does not exist.
    Get {
        key: String,
        /// Reads the entry as it was at this revision.
        #[arg(long, value_name = "N", value_parser = revision_parser())]
        revision: Option<Revision>,
    },
    /// Prints one chunk of a key range, with the token that continues it.
    List(ListArgs),
    /// Prints every change since revision R (inclusive), in revision order, one per line: the
    /// log a watch from R replays. Fails with Expired at or below the compacted revision.
    History(HistoryArgs),
    /// Writes COUNT generated keys, PREFIX followed by an 8-digit index, in batches.
    Load {
        #[arg(long)]
        count: u64,
        #[arg(long, default_value = "key/")]
        prefix: String,
        /// The length of each generated value, in bytes.
        #[arg(long, value_name = "BYTES", default_value_t = 256)]
        value_size: usize,
    },
    /// Compacts history at revision N (default: the retention window's boundary): reads below
    /// it fail with Expired afterwards.
    Compact {
        #[arg(long, value_name = "N", value_parser = revision_parser())]
        revision: Option<Revision>,
    },
    /// Prints the store's revisions, key and record counts, and size on disk.
    Stat {
        /// Prints the figures as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Pages through 100,000 keys of a temporary store while a writer changes them, and checks
    /// that the pages form the snapshot of the first one.
    Demo,
    /// Measures chunk latency, full lists, writes, compaction, open time and index memory on a
    /// temporary store (and on peers, with the `peers` feature), loaded with Kubernetes-like
    /// collections written interleaved or in random order with churn (`--workload`); writes
    /// JSON and SVG plots.
    Bench(Box<revkv_bench::BenchArgs>),
    /// Serves the store over HTTP: a Kubernetes-style API (`/api`, `/apis`), a Swift-style API
    /// (`/auth/v1.0`, `/v1`) and `/metrics`, until SIGTERM or SIGINT.
    Serve(serve::ServeArgs),
    /// Checks every stored entry against the store's invariants (reads all history); exits
    /// with status 1 when anything is wrong.
    Verify {
        /// Prints the report as one JSON object.
        #[arg(long)]
        json: bool,
    },
}

/// The keys a command reads: a prefix, a range, or all of them.
#[derive(Args)]
struct KeyRange {
    /// The keys that start with P.
    #[arg(long, value_name = "P", conflicts_with_all = ["from", "to"])]
    prefix: Option<String>,
    /// From this key (included); to the end of the key space unless --to is given.
    #[arg(long, value_name = "KEY")]
    from: Option<String>,
    /// Up to this key (excluded).
    #[arg(long, value_name = "KEY")]
    to: Option<String>,
}

/// The constructors of a request over a [`KeyRange`]: `ListOptions`' or `WatchOptions`'.
struct RangeConstructors<T> {
    prefix: fn(String) -> T,
    range: fn(String, String) -> T,
    from: fn(String) -> T,
    all: fn() -> T,
}

impl KeyRange {
    fn build<T>(self, make: RangeConstructors<T>) -> T {
        match (self.prefix, self.from, self.to) {
            (Some(prefix), _, _) => (make.prefix)(prefix),
            (None, from, Some(to)) => (make.range)(from.unwrap_or_default(), to),
            (None, Some(from), None) => (make.from)(from),
            (None, None, None) => (make.all)(),
        }
    }
}

#[derive(Args)]
struct ListArgs {
    #[command(flatten)]
    keys: KeyRange,
    /// The most entries in this chunk.
    #[arg(long, value_name = "N", default_value_t = 100)]
    limit: usize,
    /// Continues a list from the token printed with its previous chunk.
    #[arg(long = "continue", value_name = "TOKEN")]
    continue_token: Option<String>,
    /// Reads the list at this revision instead of the newest.
    #[arg(long, value_name = "N", value_parser = revision_parser())]
    revision: Option<Revision>,
    /// Lists in descending key order; --marker is then the upper bound and --end-marker the lower.
    #[arg(long)]
    reverse: bool,
    /// Only entries whose labels match, e.g. `app=web,tier in (gold,silver),!canary`.
    #[arg(long, value_name = "SELECTOR")]
    selector: Option<String>,
    /// Only entries whose fields match, e.g. `status=ready,node!=n1`.
    #[arg(long, value_name = "SELECTOR")]
    field_selector: Option<String>,
    /// Only keys after KEY (Swift's marker).
    #[arg(long, value_name = "KEY")]
    marker: Option<String>,
    /// Only keys before KEY (Swift's end_marker).
    #[arg(long, value_name = "KEY")]
    end_marker: Option<String>,
    /// Rolls keys up into common prefixes at the first D after the prefix.
    #[arg(long, value_name = "D")]
    delimiter: Option<String>,
    /// Prints the chunk as one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct HistoryArgs {
    #[command(flatten)]
    keys: KeyRange,
    /// The first revision whose changes are printed.
    #[arg(long, value_name = "R", value_parser = clap::value_parser!(u64).range(1..).map(Revision::new))]
    since: Revision,
    /// Only changes to entries whose labels match; a put that leaves the selector prints as a
    /// delete, one that enters it as a put.
    #[arg(long, value_name = "SELECTOR")]
    selector: Option<String>,
    /// Also prints each key's previous entry.
    #[arg(long)]
    prev: bool,
    /// Prints JSON lines instead of text.
    #[arg(long)]
    json: bool,
}

impl HistoryArgs {
    fn into_options(self) -> revkv::Result<WatchOptions> {
        let options = self
            .keys
            .build(RangeConstructors {
                prefix: WatchOptions::prefix,
                range: WatchOptions::range,
                from: WatchOptions::from,
                all: WatchOptions::all,
            })
            .start(self.since)
            .prev_entry(self.prev);
        Ok(match self.selector {
            Some(selector) => options.label_selector(selector.parse()?),
            None => options,
        })
    }
}

/// Splits `KEY=VALUE` at its first `=`.
fn key_value(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .ok_or_else(|| format!("{text:?} is not KEY=VALUE"))
}

fn revision_parser() -> impl TypedValueParser<Value = Revision> {
    clap::value_parser!(u64).map(Revision::new)
}

impl Cli {
    /// Whether the command asked for JSON output, which its error line then follows too.
    pub fn wants_json(&self) -> bool {
        match &self.command {
            Command::List(args) => args.json,
            Command::History(args) => args.json,
            Command::Stat { json } => *json,
            Command::Verify { json } => *json,
            _ => false,
        }
    }
}

impl ListArgs {
    fn into_options(self) -> revkv::Result<ListOptions> {
        let mut options = self
            .keys
            .build(RangeConstructors {
                prefix: ListOptions::prefix,
                range: ListOptions::range,
                from: ListOptions::from,
                all: ListOptions::all,
            })
            .limit(self.limit)
            .reverse(self.reverse);
        if let Some(token) = self.continue_token {
            options = options.continue_token(token);
        }
        if let Some(revision) = self.revision {
            options = options.revision(revision);
        }
        if let Some(selector) = self.selector {
            options = options.label_selector(selector.parse()?);
        }
        if let Some(selector) = self.field_selector {
            options = options.field_selector(selector.parse()?);
        }
        if let Some(marker) = self.marker {
            options = options.start_after(marker);
        }
        if let Some(marker) = self.end_marker {
            options = options.end_before(marker);
        }
        if let Some(delimiter) = self.delimiter {
            options = options.delimiter(delimiter);
        }
        Ok(options)
    }
}

/// Runs one command and prints its result on stdout.
pub fn run(args: Cli) -> Result<(), Failure> {
    let data = args.data;
    let store = Db::options().retention(args.retention);
    let open = |options: Options| options.open(&data);
    match args.command {
        Command::Put {
            key,
            value,
            labels,
            fields,
        } => {
            let put = labels
                .into_iter()
                .fold(Put::new(key, value), |put, (k, v)| put.label(k, v));
            let put = fields.into_iter().fold(put, |put, (k, v)| put.field(k, v));
            let revision = open(store)?.put_with(put)?;
            output::print_json(&output::Put { revision })
        }
        Command::Delete { key } => {
            let (revision, deleted) = open(store)?.delete(key)?;
            output::print_json(&output::Deleted { revision, deleted })
        }
        Command::Get { key, revision } => {
            let db = open(store)?;
            let revision = revision.unwrap_or_else(|| db.current_revision());
            match db.get_at(&key, revision)? {
                Some(entry) => output::print_entry(&entry),
                None => Err(Failure::NotFound { key, revision }),
            }
        }
        Command::List(list) => {
            let (json, reverse) = (list.json, list.reverse);
            let options = list.into_options()?;
            let page = open(store)?.list(&options)?;
            output::print_page(&page, json, reverse)
        }
        Command::History(history) => {
            let json = history.json;
            let options = history.into_options()?;
            // Nothing else writes to the store while this process holds it, nor compacts it.
            history::print(&open(store.retention(Retention::Manual))?, options, json)
        }
        Command::Load {
            count,
            prefix,
            value_size,
        } => {
            // Batches need no fsync each: one flush at the end makes the whole load durable.
            let db = open(store.durability(Durability::Buffered))?;
            let revision = revkv_bench::load::load(&db, &prefix, count, value_size)?;
            db.flush()?;
            output::print_json(&output::Loaded {
                revision,
                loaded: count,
            })
        }
        Command::Compact { revision } => {
            // The store is this process's alone (sled locks it), so no one needs the pauses.
            let db = open(store.paced_compaction(false))?;
            let Some(target) = revision.or(db.retention_boundary()?) else {
                let compacted = db.compacted_revision();
                return output::print_json(&output::NothingToCompact { compacted });
            };
            let report = compact::compact(&db, target)?;
            output::print_json(&report)
        }
        Command::Stat { json } => output::print_stat(&open(store)?.stat()?, json),
        Command::Demo => demo::run(),
        Command::Bench(args) => Ok(revkv_bench::run(*args)?),
        Command::Serve(args) => serve::run(&open(store)?, args),
        // A check must not change what it checks: no compaction meanwhile, not even the
        // resumed sweep of an unfinished one.
        Command::Verify { json } => verify::run(
            &open(store.retention(Retention::Manual).resume_compaction(false))?,
            json,
        ),
    }
}

/// Why a command failed.
pub enum Failure {
    /// The store refused the request or could not carry it out.
    Store(revkv::Error),
    /// `get` found no entry: an expected outcome for the library, a failed lookup for a shell.
    NotFound { key: String, revision: Revision },
    /// The demo's pages differ from the snapshot they must equal.
    SnapshotMismatch(String),
    /// The result could not be written to stdout, for instance into a closed pipe.
    Output(io::Error),
    /// `verify` found the store damaged or inconsistent.
    Unverified { findings: u64 },
    /// `bench` could not measure an engine, or an engine answered wrongly.
    Bench(String),
    /// `serve` could not start (a bad configuration, an address in use) or stop cleanly.
    Serve(String),
}

impl Failure {
    /// A stable name for scripts: the library's [`revkv::Error::reason`] for store errors.
    fn reason(&self) -> &'static str {
        match self {
            Failure::Store(error) => error.reason(),
            Failure::NotFound { .. } => "NotFound",
            Failure::SnapshotMismatch(_) => "SnapshotMismatch",
            Failure::Output(_) => "Output",
            Failure::Unverified { .. } => "Unverified",
            Failure::Bench(_) => "Bench",
            Failure::Serve(_) => "Serve",
        }
    }

    /// The token an expired list can be continued with, inconsistently, at the newest revision.
    fn continue_token(&self) -> Option<&str> {
        match self {
            Failure::Store(revkv::Error::Expired { continue_token, .. }) => {
                continue_token.as_deref()
            }
            _ => None,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Store(error) => {
                write!(f, "{error}")?;
                // `Storage` says only that sled failed; its cause (a held lock, a full disk) is
                // what the user can act on.
                let mut cause = std::error::Error::source(error);
                while let Some(inner) = cause {
                    write!(f, ": {inner}")?;
                    cause = inner.source();
                }
                Ok(())
            }
            Failure::NotFound { key, revision } => {
                write!(f, "key {key:?} not found at revision {revision}")
            }
            Failure::SnapshotMismatch(difference) => {
                write!(f, "the pages differ from the snapshot: {difference}")
            }
            Failure::Output(error) => write!(f, "cannot write the output: {error}"),
            Failure::Unverified { findings: 1 } => f.write_str("verify found 1 problem"),
            Failure::Unverified { findings } => write!(f, "verify found {findings} problems"),
            Failure::Bench(message) => write!(f, "bench failed: {message}"),
            Failure::Serve(message) => write!(f, "serve failed: {message}"),
        }
    }
}

impl From<revkv::Error> for Failure {
    fn from(error: revkv::Error) -> Self {
        Failure::Store(error)
    }
}

impl From<io::Error> for Failure {
    fn from(error: io::Error) -> Self {
        Failure::Output(error)
    }
}

impl From<revkv_bench::Error> for Failure {
    fn from(error: revkv_bench::Error) -> Self {
        match error {
            revkv_bench::Error::Store(error) => Failure::Store(error),
            other => Failure::Bench(other.to_string()),
        }
    }
}
