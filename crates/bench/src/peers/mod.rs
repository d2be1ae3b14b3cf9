//! What revkv is compared with, behind the `peers` feature: etcd, the store Kubernetes lists
//! from, and SQLite with kine's schema, what k3s lists from instead of etcd.

mod etcd;
mod kine;

pub use etcd::etcd_watch;

use super::engine::Error;
use super::report::EngineReport;
use super::workload::{self, Workload};
use super::{BenchArgs, Peer};
use crate::load::Shape;

/// Runs the workload with the collection of `shape` on `peer`, up to `--peer-max-keys`.
pub(super) fn run(
    peer: Peer,
    args: &BenchArgs,
    workload: &Workload,
    shape: Shape,
) -> Result<EngineReport, Error> {
    match peer {
        Peer::Etcd => {
            let mut etcd = etcd::Etcd::connect(&args.etcd_endpoint, workload.writers)?;
            let report = workload::run(&mut etcd, workload, shape, args.peer_max_keys);
            // Emptied even after a failure, so that the next workload, or the next run, finds
            // the prefixes empty.
            let cleared = etcd.clear();
            let report = report?;
            cleared?;
            Ok(report)
        }
        Peer::SqliteKine => workload::run(
            &mut kine::Kine::create()?,
            workload,
            shape,
            args.peer_max_keys,
        ),
    }
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
