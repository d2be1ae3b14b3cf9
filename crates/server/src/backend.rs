//! The storage the HTTP layer talks to: point reads, conditional writes and list chunks.
//!
//! The APIs never call the engine themselves. They speak this trait, which [`revkv::Db`]
//! implements here and which a remote store (an etcd cluster) can implement the same way:
//! every operation is a compare-and-write or a read at a revision, with etcd's vocabulary.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use revkv::selector::{FieldSelector, LabelSelector};
use revkv::{
    Cmp, Compare, Db, Entry, ListOptions, ListPage, Notification, Op, Put, Revision, Txn, Watch,
    WatchOptions,
};
use tokio::sync::{mpsc, Notify};

/// A storage backend for the HTTP APIs.
///
/// Every method may block on I/O; implementations do that off the async runtime.
pub trait Backend: Clone + Send + Sync + 'static {
    /// The key's entry at `at`, or at the newest revision.
    fn get(
        &self,
        key: Vec<u8>,
        at: Option<Revision>,
    ) -> impl Future<Output = Result<Option<Entry>, StoreError>> + Send;

    /// Applies `writes` as one revision if every condition holds; `Ok(None)` when one fails.
    fn commit(
        &self,
        conditions: Vec<Condition>,
        writes: Vec<Write>,
    ) -> impl Future<Output = Result<Option<Revision>, StoreError>> + Send;

    /// One chunk of a list, with the semantics of [`revkv::Db::list`]: every chunk of a list
    /// reads its first chunk's revision, and `remaining` is exact when it is known.
    fn list(
        &self,
        request: ListRequest,
    ) -> impl Future<Output = Result<ListPage, StoreError>> + Send;

    /// Opens a change feed of a prefix from a revision on, in revision order (etcd's Watch):
    /// notifications arrive on the returned channel until an error (the last item), or until
    /// the receiver is dropped, which cancels the watch.
    fn watch(
        &self,
        request: WatchRequest,
    ) -> impl Future<Output = Result<mpsc::Receiver<Result<Notification, StoreError>>, StoreError>> + Send;

    /// The newest and the compacted revision, without waiting on storage.
    fn revisions(&self) -> Revisions;

    /// The largest chunk [`Backend::list`] returns; larger limits are lowered to it.
    fn max_page_size(&self) -> usize;
}

/// A condition of [`Backend::commit`], on one key's current state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Condition {
    /// The key does not exist.
    Absent(Vec<u8>),
    /// The key exists and its last change was at this revision.
    ModRevision(Vec<u8>, Revision),
}

/// A write of [`Backend::commit`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Write {
    /// Sets a key, with the labels and fields its selectors match.
    Put {
        /// The key.
        key: Vec<u8>,
        /// The value.
        value: Vec<u8>,
        /// Matched by label selectors.
        labels: BTreeMap<String, String>,
        /// Matched by field selectors.
        fields: BTreeMap<String, String>,
    },
    /// Deletes a key.
    Delete(Vec<u8>),
}

/// What [`Backend::list`] reads: a prefix, narrowed by markers and selectors.
#[derive(Clone, Debug, Default)]
pub struct ListRequest {
    /// Only keys starting with it.
    pub prefix: Vec<u8>,
    /// Only keys after it (before it, in reverse).
    pub start_after: Option<Vec<u8>>,
    /// Only keys before it (after it, in reverse).
    pub end_before: Option<Vec<u8>>,
    /// Rolls keys up into common prefixes at the first delimiter after the prefix.
    pub delimiter: Option<Vec<u8>>,
    /// Descending key order.
    pub reverse: bool,
    /// Only entries whose labels match.
    pub labels: Option<LabelSelector>,
    /// Only entries whose fields match.
    pub fields: Option<FieldSelector>,
    /// At most this many entries and common prefixes; lowered to the backend's maximum.
    pub limit: usize,
    /// The revision to read at; `None` for the newest.
    pub revision: Option<Revision>,
    /// Continues a list from the token of its previous chunk.
    pub continue_token: Option<String>,
}

/// What [`Backend::watch`] follows.
#[derive(Clone, Debug, Default)]
pub struct WatchRequest {
    /// Only keys starting with it.
    pub prefix: Vec<u8>,
    /// Only entries whose labels match (a put that leaves the selector is a delete).
    pub labels: Option<LabelSelector>,
    /// Only entries whose fields match.
    pub fields: Option<FieldSelector>,
    /// The first revision delivered; `None` for the changes after the newest revision.
    pub start: Option<Revision>,
    /// How often an idle watch reports its progress.
    pub progress_interval: Option<Duration>,
}

/// The revisions a backend has reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Revisions {
    /// The newest revision readers see.
    pub current: Revision,
    /// Reads below it fail with [`StoreError::Expired`].
    pub compacted: Revision,
}

/// Why a backend refused or failed a request; each API maps it to its own status.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreError {
    /// The revision asked for has been compacted. A continued list carries a token that
    /// finishes it at the newest revision, mixing two snapshots.
    Expired {
        /// The revision asked for.
        requested: Revision,
        /// Reads below it fail.
        compacted: Revision,
        /// Continues the list inconsistently at the newest revision.
        continue_token: Option<String>,
    },
    /// The revision asked for has not been reached.
    FutureRevision {
        /// The revision asked for.
        requested: Revision,
        /// The newest revision.
        current: Revision,
    },
    /// A continue token that is garbled, forged, or belongs to another request.
    InvalidContinueToken(String),
    /// A write or list the backend refuses as malformed (a bad label, a bad range).
    InvalidRequest(String),
    /// A key, value or label set above the backend's limits.
    TooLarge(String),
    /// The backend failed; the request may succeed later.
    Unavailable(String),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Expired {
                requested,
                compacted,
                ..
            } => write!(
                f,
                "revision {requested} has been compacted (compacted revision is {compacted})"
            ),
            StoreError::FutureRevision { requested, current } => write!(
                f,
                "revision {requested} is in the future (current revision is {current})"
            ),
            StoreError::InvalidContinueToken(reason)
            | StoreError::InvalidRequest(reason)
            | StoreError::TooLarge(reason)
            | StoreError::Unavailable(reason) => f.write_str(reason),
        }
    }
}

impl std::error::Error for StoreError {}

impl From<revkv::Error> for StoreError {
    fn from(error: revkv::Error) -> Self {
        use revkv::Error as E;
        let message = error.to_string();
        match error {
            E::Expired {
                requested,
                compacted,
                continue_token,
            } => StoreError::Expired {
                requested,
                compacted,
                continue_token,
            },
            E::FutureRevision { requested, current } => {
                StoreError::FutureRevision { requested, current }
            }
            E::InvalidContinueToken { .. } => StoreError::InvalidContinueToken(message),
            E::KeyTooLarge { .. }
            | E::ValueTooLarge { .. }
            | E::MetadataTooLarge { .. }
            | E::TooManyLabels { .. }
            | E::TxnTooLarge { .. } => StoreError::TooLarge(message),
            E::EmptyKey
            | E::TooManyOperations { .. }
            | E::DuplicateKey { .. }
            | E::InvalidSelector(_)
            | E::InvalidLabel(_)
            | E::InvalidRequest { .. } => StoreError::InvalidRequest(message),
            _ => StoreError::Unavailable(message),
        }
    }
}

/// Applies an optional setting to engine options: requests leave most of them unset.
fn with<O, T>(options: O, value: Option<T>, set: impl FnOnce(O, T) -> O) -> O {
    match value {
        Some(value) => set(options, value),
        None => options,
    }
}

/// Runs a blocking engine call on tokio's blocking pool, so no runtime worker waits on sled.
async fn blocking<T: Send + 'static>(
    call: impl FnOnce() -> revkv::Result<T> + Send + 'static,
) -> Result<T, StoreError> {
    match tokio::task::spawn_blocking(call).await {
        Ok(result) => result.map_err(StoreError::from),
        Err(join) => Err(StoreError::Unavailable(format!(
            "the storage call did not finish: {join}"
        ))),
    }
}

impl Backend for Db {
    async fn get(&self, key: Vec<u8>, at: Option<Revision>) -> Result<Option<Entry>, StoreError> {
        let db = self.clone();
        blocking(move || match at {
            Some(revision) => db.get_at(key, revision),
            None => db.get(key),
        })
        .await
    }

    async fn commit(
        &self,
        conditions: Vec<Condition>,
        writes: Vec<Write>,
    ) -> Result<Option<Revision>, StoreError> {
        let compares = conditions.into_iter().map(|condition| match condition {
            Condition::Absent(key) => Compare::absent(key),
            Condition::ModRevision(key, revision) => {
                Compare::mod_revision(key, Cmp::Equal, revision)
            }
        });
        let ops = writes.into_iter().map(|write| match write {
            Write::Put {
                key,
                value,
                labels,
                fields,
            } => {
                let mut put = Put::new(key, value);
                for (name, label) in labels {
                    put = put.label(name, label);
                }
                for (name, field) in fields {
                    put = put.field(name, field);
                }
                Op::Put(put)
            }
            Write::Delete(key) => Op::Delete(key),
        });
        let txn = Txn::new().when(compares).then(ops);
        let db = self.clone();
        let response = blocking(move || db.txn(txn)).await?;
        Ok(response.succeeded.then_some(response.revision))
    }

    async fn list(&self, request: ListRequest) -> Result<ListPage, StoreError> {
        let options = ListOptions::prefix(request.prefix)
            .limit(request.limit.clamp(1, self.max_page_size()))
            .reverse(request.reverse);
        let options = with(options, request.start_after, ListOptions::start_after);
        let options = with(options, request.end_before, ListOptions::end_before);
        let options = with(options, request.delimiter, ListOptions::delimiter);
        let options = with(options, request.labels, ListOptions::label_selector);
        let options = with(options, request.fields, ListOptions::field_selector);
        let options = with(options, request.revision, ListOptions::revision);
        let options = with(options, request.continue_token, ListOptions::continue_token);
        let db = self.clone();
        blocking(move || db.list(&options)).await
    }

    async fn watch(
        &self,
        request: WatchRequest,
    ) -> Result<mpsc::Receiver<Result<Notification, StoreError>>, StoreError> {
        let options = WatchOptions::prefix(request.prefix).prev_entry(true);
        let options = with(options, request.labels, WatchOptions::label_selector);
        let options = with(options, request.fields, WatchOptions::field_selector);
        let options = with(options, request.start, WatchOptions::start);
        let options = with(
            options,
            request.progress_interval,
            WatchOptions::progress_interval,
        );
        let db = self.clone();
        let watch = blocking(move || db.watch(options)).await?;
        let (sender, receiver) = mpsc::channel(WATCH_CHANNEL);
        tokio::spawn(pump(watch, sender, request.progress_interval));
        Ok(receiver)
    }

    fn revisions(&self) -> Revisions {
        Revisions {
            current: self.current_revision(),
            compacted: self.compacted_revision(),
        }
    }

    fn max_page_size(&self) -> usize {
        // The engine's default; `Options::max_page_size` is not readable back from a `Db`.
        10_000
    }
}

/// Notifications a watch's channel holds before its reader must catch up; the engine's own
/// inbox and revision log hold the rest.
const WATCH_CHANNEL: usize = 64;

/// Moves notifications from an engine watch to its channel. Reading the watch may read the
/// revision log, so each batch is read on the blocking pool; between batches the task waits,
/// without a thread, for the engine's waker, the next progress tick, or the reader leaving.
async fn pump(
    mut watch: Watch,
    sender: mpsc::Sender<Result<Notification, StoreError>>,
    progress_interval: Option<Duration>,
) {
    let ready = Arc::new(Notify::new());
    let wake = ready.clone();
    watch.set_waker(move || wake.notify_one());
    let tick = progress_interval.unwrap_or(Duration::from_secs(3600));
    loop {
        let read = tokio::task::spawn_blocking(move || {
            let mut batch = Vec::new();
            while batch.len() < WATCH_CHANNEL {
                match watch.try_next() {
                    Ok(Some(notification)) => batch.push(Ok(notification)),
                    Ok(None) => break,
                    Err(error) => {
                        batch.push(Err(StoreError::from(error)));
                        break;
                    }
                }
            }
            (watch, batch)
        })
        .await;
        let Ok((returned, batch)) = read else {
            return;
        };
        watch = returned;
        let idle = batch.is_empty();
        for item in batch {
            let failed = item.is_err();
            if sender.send(item).await.is_err() || failed {
                return;
            }
        }
        if idle {
            tokio::select! {
                () = ready.notified() => {}
                () = tokio::time::sleep(tick) => {}
                () = sender.closed() => return,
            }
        }
    }
}
