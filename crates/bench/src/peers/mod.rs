//! What revkv is compared with, behind the `peers` feature: etcd, the store Kubernetes lists
//! from, and SQLite with kine's schema, what k3s lists from instead of etcd.

mod etcd;
mod kine;

pub use etcd::etcd_watch;

use super::engine::{Engine, Error};
use super::report::EngineReport;
use super::workload::{self, Workload};
use super::{BenchArgs, Peer};
use crate::load::Collection;

/// What runs on a peer, whichever engine it is.
pub(super) trait Job {
    type Output;

    fn run<E: Engine>(self, engine: &mut E) -> Result<Self::Output, Error>;
}

/// Runs `job` on a new, empty `peer`: etcd at `etcd_endpoint` with a connection for each of
/// `clients`, emptied again afterwards, or a new SQLite database.
pub(super) fn run_on<J: Job>(
    peer: Peer,
    etcd_endpoint: &str,
    clients: usize,
    job: J,
) -> Result<J::Output, Error> {
    match peer {
        Peer::Etcd => {
            let mut etcd = etcd::Etcd::connect(etcd_endpoint, clients)?;
            let output = job.run(&mut etcd);
            // Emptied even after a failure, so that the next workload, or the next run, finds
            // the prefixes empty.
            let cleared = etcd.clear();
            let output = output?;
            cleared?;
            Ok(output)
        }
        Peer::SqliteKine => job.run(&mut kine::Kine::create()?),
    }
}

/// Every figure of the workload on a peer.
struct Figures<'a> {
    workload: &'a Workload,
    collection: Collection,
    max_keys: u64,
}

impl Job for Figures<'_> {
    type Output = EngineReport;

    fn run<E: Engine>(self, engine: &mut E) -> Result<EngineReport, Error> {
        workload::run(engine, self.workload, self.collection, self.max_keys)
    }
}

/// Runs the workload with `collection` on `peer`, up to `--peer-max-keys`.
pub(super) fn run(
    peer: Peer,
    args: &BenchArgs,
    workload: &Workload,
    collection: Collection,
) -> Result<EngineReport, Error> {
    let figures = Figures {
        workload,
        collection,
        max_keys: args.peer_max_keys,
    };
    run_on(peer, &args.peer.etcd_endpoint, workload.writers, figures)
}

/// The end of the key range of `prefix`: the prefix with its last byte incremented. The
/// workload's prefixes are ASCII and end below `0x7f`.
fn prefix_end(prefix: &str) -> String {
    let mut end = prefix.as_bytes().to_vec();
    if let Some(last) = end.last_mut() {
        *last += 1;
    }
    String::from_utf8(end).expect("an ASCII prefix stays ASCII")
}
