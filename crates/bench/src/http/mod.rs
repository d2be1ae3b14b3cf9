//! `revkv bench http`: chunks and whole lists over HTTP from `revkv serve`, its real router
//! running in-process on loopback over a durable store, beside etcd's JSON gateway (the range
//! requests the apiserver sends for a chunk) and kine's queries on SQLite, all holding the same
//! ConfigMaps.
//!
//! - `objects`: the ConfigMaps, as a client sends them and as each store keeps them;
//! - `server`: the in-process server, loaded through its create path and churned over HTTP;
//! - `client`: the Kubernetes client of the chunks;
//! - `report`: the figures, printed side by side and written as JSON.

mod client;
mod objects;
mod report;
mod server;

use std::path::PathBuf;

use clap::Args;

use super::engine::{Error, Lister};
use super::report::{Machine, Positions};
use super::workload::{chunk_latency, whole_lists, Listing};
use super::{first_occurrences, usage, PeerArgs, SamplingArgs, ShapeArgs};
use client::KubeClient;
use objects::Objects;
use report::{EngineFigures, HttpReport, HttpRun, Settings, SizeFigures};
use server::Served;

#[derive(Args)]
pub struct HttpArgs {
    /// Collection sizes, in objects created (the churn then deletes about 1%); a larger size
    /// grows the smaller one.
    #[arg(
        long,
        value_name = "N,...",
        value_delimiter = ',',
        default_value = "10000,1000000"
    )]
    objects: Vec<u64>,
    #[command(flatten)]
    shapes: ShapeArgs,
    /// About how many bytes of JSON each stored object holds, one run of every figure each.
    #[arg(
        long = "object-size",
        value_name = "BYTES,...",
        value_delimiter = ',',
        default_value = "500,4096"
    )]
    object_sizes: Vec<usize>,
    /// The limit of the measured chunks and of the whole lists' pages.
    #[arg(long, value_name = "N", default_value_t = 500)]
    limit: usize,
    /// Concurrent clients of the list throughput, each paging whole lists.
    #[arg(long, value_name = "N", default_value_t = 64)]
    clients: usize,
    #[command(flatten)]
    peer: PeerArgs,
    /// Peers skip the sizes above this one.
    #[arg(long, value_name = "N", default_value_t = 1_000_000)]
    peer_max_objects: u64,
    /// Whole lists are measured up to this size only: every client lists every object at
    /// least once, 64M items at 1M objects and 64 clients.
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    list_max_objects: u64,
    /// Peers' whole lists are measured up to this size only: each of their chunks counts the
    /// rest of the list, so one whole list costs them O(n²).
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    peer_list_max_objects: u64,
    #[command(flatten)]
    sampling: SamplingArgs,
    /// Where to write http-report.json.
    #[arg(long, value_name = "DIR", default_value = "revkv-bench")]
    out: PathBuf,
}

/// Changes per transaction while loading and churning a peer, and objects per transaction of
/// the creates that load revkv serve.
const BATCH: usize = 1000;

impl HttpArgs {
    /// The settings of each run with its objects, or a usage error for arguments no run can
    /// use.
    fn runs(&self) -> Result<Vec<(Settings, Objects)>, Error> {
        let mut sizes = self.objects.clone();
        sizes.sort_unstable();
        sizes.dedup();
        let mut runs = Vec::new();
        for shape in self.shapes.shapes() {
            for &object_size in &first_occurrences(&self.object_sizes) {
                let objects = Objects::new(shape, object_size)?;
                let fewest_live = sizes.first().map_or(0, |&smallest| {
                    objects.collection.live_in_key_order(smallest).len()
                });
                if self.limit == 0 || fewest_live < 2 * self.limit {
                    usage("the smallest size in --objects must leave at least two chunks of --limit (a positive one) after the churn");
                }
                let settings = Settings {
                    workload: shape,
                    sizes: sizes.clone(),
                    object_size,
                    payload_size: objects.collection.value_size,
                    limit: self.limit,
                    clients: self.clients.max(1),
                    peer_max_objects: self.peer_max_objects,
                    list_max_objects: self.list_max_objects,
                    peer_list_max_objects: self.peer_list_max_objects.min(self.list_max_objects),
                    budget: self.sampling.budget(),
                };
                runs.push((settings, objects));
            }
        }
        Ok(runs)
    }
}

/// Measures revkv serve, then each peer, for each run, and reports.
pub(super) fn run(args: HttpArgs) -> Result<(), Error> {
    args.peer.check();
    let machine = Machine::detect();
    let mut report = HttpReport {
        machine,
        runs: Vec::new(),
    };
    // A run that fails ends the bench, but what was measured before it is still reported.
    let mut failure = None;
    for (settings, objects) in args.runs()? {
        let (engines, failed) = measure_run(&args, &settings, &objects);
        report.runs.push(HttpRun { settings, engines });
        if failed.is_some() {
            failure = failed;
            break;
        }
    }
    print!("{}", report.table());
    let path = report.write(&args.out).map_err(|cause| {
        Error::failed("revkv bench http", format!("writing the report: {cause}"))
    })?;
    println!("wrote {}", path.display());
    failure.map_or(Ok(()), Err)
}

/// The figures of one run on revkv serve and each peer, and the failure that ended it early,
/// if one did.
fn measure_run(
    args: &HttpArgs,
    settings: &Settings,
    objects: &Objects,
) -> (Vec<EngineFigures>, Option<Error>) {
    #[cfg_attr(not(feature = "peers"), allow(unused_mut))]
    let mut engines = match measure_served(settings, objects) {
        Ok(figures) => vec![figures],
        Err(error) => return (Vec::new(), Some(error)),
    };
    #[cfg(feature = "peers")]
    for &peer in &args.peer.peers {
        let job = PeerFigures { settings, objects };
        match super::peers::run_on(peer, &args.peer.etcd_endpoint, settings.clients, job) {
            Ok(figures) => engines.push(figures),
            Err(error) => return (engines, Some(error)),
        }
    }
    #[cfg(not(feature = "peers"))]
    let _ = args;
    (engines, None)
}

/// The figures of one size on any engine: chunks at the first, middle and last position, and,
/// when `lists`, whole lists from the settings' clients at once.
fn size_figures<L: Lister>(
    lister: &L,
    settings: &Settings,
    objects: &Objects,
    size: u64,
    lists: bool,
) -> Result<SizeFigures, Error> {
    let live = objects.collection.live_in_key_order(size);
    let listing = Listing {
        limit: settings.limit,
        budget: settings.budget,
        live: &live,
    };
    let count = listing.live();
    let limit = settings.limit as u64;
    let [first, middle, last] =
        [0, count / 2, count - limit].map(|position| chunk_latency(lister, &listing, position));
    let lists = match lists {
        true => Some(whole_lists(
            lister,
            &listing,
            settings.limit,
            settings.clients,
        )?),
        false => None,
    };
    Ok(SizeFigures {
        objects: size,
        live: count,
        chunk: Positions {
            first: first?,
            middle: middle?,
            last: last?,
        },
        lists,
    })
}

fn measure_served(settings: &Settings, objects: &Objects) -> Result<EngineFigures, Error> {
    let served = Served::start(settings.clients)?;
    let client = KubeClient::new(served.address, settings.clients);
    let mut loaded = 0;
    let mut sizes = Vec::new();
    for &size in &settings.sizes {
        served.grow(&client, objects, loaded, size)?;
        loaded = size;
        let lists = size <= settings.list_max_objects;
        sizes.push(size_figures(&client, settings, objects, size, lists)?);
    }
    Ok(EngineFigures {
        engine: client::NAME,
        version: None,
        transport: "HTTP on loopback, server in-process",
        sizes,
    })
}

/// The same collection and figures on a peer, up to its size limits.
#[cfg(feature = "peers")]
struct PeerFigures<'a> {
    settings: &'a Settings,
    objects: &'a Objects,
}

#[cfg(feature = "peers")]
impl super::peers::Job for PeerFigures<'_> {
    type Output = EngineFigures;

    fn run<E: super::engine::Engine>(self, engine: &mut E) -> Result<EngineFigures, Error> {
        let settings = self.settings;
        let mut loaded = 0;
        let mut sizes = Vec::new();
        for &size in settings
            .sizes
            .iter()
            .filter(|&&size| size <= settings.peer_max_objects)
        {
            for (changes, verb) in self
                .objects
                .collection
                .growth(loaded, size)
                .iter()
                .zip(["loading", "churning"])
            {
                super::workload::apply(&*engine, BATCH, changes, verb, |change| {
                    self.objects.peer_write(change)
                })?;
            }
            loaded = size;
            let lists = size <= settings.peer_list_max_objects;
            sizes.push(size_figures(&*engine, settings, self.objects, size, lists)?);
        }
        Ok(EngineFigures {
            engine: engine.name(),
            version: engine.version(),
            transport: engine.transport(),
            sizes,
        })
    }
}
