//! `revkv serve` in-process: the real router on a tokio runtime of its own, on a loopback port,
//! over a durable store in a temporary directory; loaded through the create path in batches,
//! and churned over HTTP.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};

use revkv::{Db, Retention};
use revkv_server::{Backend, Config, Limits};
use serde_json::Value;
use tempfile::TempDir;
use tokio::runtime::Runtime;
use tokio::sync::oneshot;

use super::client::{KubeClient, NAME};
use super::objects::Objects;
use super::BATCH;
use crate::engine::Error;
use crate::load::Change;
use crate::parallel::on_threads;
use crate::stats;

/// Concurrent clients of the churn's PUTs and DELETEs.
const CHURN_CLIENTS: usize = 8;
/// What the server fills in on create, different in every create of the same body.
const GENERATED_METADATA: [&str; 3] = ["uid", "creationTimestamp", "resourceVersion"];

fn failed(message: impl std::fmt::Display) -> Error {
    Error::failed(NAME, message)
}

pub(super) struct Served {
    runtime: Runtime,
    db: Db,
    pub(super) address: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    serving: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    /// Removed with the store when the server is dropped.
    _dir: TempDir,
}

impl Served {
    /// Starts a server that admits `clients` concurrent clients, without an access log.
    pub(super) fn start(clients: usize) -> Result<Served, Error> {
        let dir = tempfile::tempdir()
            .map_err(|error| failed(format!("cannot create a temporary directory: {error}")))?;
        // Durable writes, as `revkv serve`'s; no compaction while the figures are taken.
        let db = Db::options()
            .retention(Retention::Manual)
            .open(dir.path())?;
        let runtime = Runtime::new().map_err(|error| failed(format!("no runtime: {error}")))?;
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .map_err(|error| failed(format!("cannot listen on loopback: {error}")))?;
        let address = listener.local_addr().map_err(failed)?;
        let config = Config {
            quiet: true,
            limits: Limits {
                max_connections: clients + 64,
                max_concurrent_requests: clients + 64,
                ..Limits::default()
            },
            ..Config::default()
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let served = db.clone();
        let serving = runtime.spawn(async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            revkv_server::serve(listener, served, &config, shutdown).await
        });
        Ok(Served {
            runtime,
            db,
            address,
            stop: Some(stop),
            serving: Some(serving),
            _dir: dir,
        })
    }

    /// Creates objects `indexes` at version 0, as POSTs of them would, in transactions of
    /// [`BATCH`] objects, each on the condition that its names are free.
    fn create(&self, objects: &Objects, indexes: &[u64]) -> Result<(), Error> {
        let progress = stats::bar(indexes.len() as u64, format!("{NAME}: loading"));
        for batch in indexes.chunks(BATCH) {
            let (conditions, writes) = batch
                .iter()
                .map(|&index| objects.creation(index, 0))
                .collect::<Result<(Vec<_>, Vec<_>), Error>>()?;
            let committed = self
                .runtime
                .block_on(self.db.commit(conditions, writes))
                .map_err(failed)?;
            if committed.is_none() {
                return Err(failed("an object to create already exists"));
            }
            progress.inc(batch.len() as u64);
        }
        progress.finish_and_clear();
        Ok(())
    }

    /// Grows the collection of `from` objects to `to`: creates the new ones, then PUTs and
    /// DELETEs their churn over HTTP, and settles the store (`load::settle`), as one that
    /// clients list. The first growth checks that a loaded object is stored
    /// as its POST stores it.
    pub(super) fn grow(
        &self,
        client: &KubeClient,
        objects: &Objects,
        from: u64,
        to: u64,
    ) -> Result<(), Error> {
        let [puts, churn] = objects.collection.growth(from, to);
        let indexes: Vec<u64> = puts
            .iter()
            .map(|change| match *change {
                Change::Put { index, .. } | Change::Delete { index } => index,
            })
            .collect();
        match indexes.first() {
            Some(&probe) if from == 0 => {
                let posted = self.stored(client, objects, probe, |index| {
                    client.create(index, &objects.body(index, 0)).map(drop)
                })?;
                client.delete(probe)?;
                let loaded =
                    self.stored(client, objects, probe, |_| self.create(objects, &indexes))?;
                if posted != loaded {
                    return Err(Error::Wrong {
                        engine: NAME,
                        message: format!(
                            "a loaded object is stored unlike a posted one: {loaded:?}, not {posted:?}"
                        ),
                    });
                }
            }
            _ => self.create(objects, &indexes)?,
        }
        self.churn(client, objects, &churn)?;
        Ok(crate::load::settle(&self.db)?)
    }

    /// Object `index` as a GET returns it and as the store keeps it (labels and fields), once
    /// `write` wrote it; without what differs between two creates of one body.
    fn stored(
        &self,
        client: &KubeClient,
        objects: &Objects,
        index: u64,
        write: impl FnOnce(u64) -> Result<(), Error>,
    ) -> Result<(Value, String), Error> {
        write(index)?;
        let mut object = client.get(index)?;
        if let Some(metadata) = object["metadata"].as_object_mut() {
            for generated in GENERATED_METADATA {
                metadata.remove(generated);
            }
        }
        let key = match objects.creation(index, 0)?.0 {
            revkv_server::Condition::Absent(key) => key,
            revkv_server::Condition::ModRevision(..) => unreachable!("a creation needs no object"),
        };
        let entry = self
            .db
            .get(key)?
            .ok_or_else(|| failed("a created object is not stored"))?;
        Ok((object, format!("{:?} {:?}", entry.labels, entry.fields)))
    }

    /// Makes the churn's changes over HTTP, from a few clients at once: each key changes once.
    fn churn(&self, client: &KubeClient, objects: &Objects, churn: &[Change]) -> Result<(), Error> {
        let progress = stats::bar(churn.len() as u64, format!("{NAME}: churning"));
        let next = AtomicUsize::new(0);
        let churner = || -> Result<(), Error> {
            while let Some(&change) = churn.get(next.fetch_add(1, Ordering::Relaxed)) {
                match change {
                    Change::Put { index, version } => {
                        client.replace(index, &objects.body(index, version))?
                    }
                    Change::Delete { index } => client.delete(index)?,
                }
                progress.inc(1);
            }
            Ok(())
        };
        on_threads(CHURN_CLIENTS, |_| churner())?;
        progress.finish_and_clear();
        Ok(())
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(serving) = self.serving.take() {
            if let Ok(Err(error)) = self.runtime.block_on(serving) {
                eprintln!("{NAME} did not stop cleanly: {error}");
            }
        }
    }
}
