//! What the workload needs from a store: writes, chunked lists with a count, compaction.
//!
//! revkv and its peers implement it each in its own terms (a continue token, or a start key and
//! a revision as Kubernetes sends to etcd), so that every figure runs the same code on each.

use std::fmt;

use super::report::Open;
use super::workload::{Item, Write};

/// What a chunk figure needs from a store: chunks of a list with their count.
pub(super) trait Lister: Sync {
    /// Where a chunk starts: what a client keeps between chunks of one list.
    type Cursor: Clone;

    /// The name the report shows.
    fn name(&self) -> &'static str;

    /// The start of a new list, at the newest revision.
    fn first(&self) -> Self::Cursor;

    /// A cursor `position` items (more than none) into a list pinned at the newest revision, as
    /// the previous chunk would have left it; `after` is the key of the item just before it,
    /// which the generated data knows.
    fn seek(&self, position: u64, after: Option<&str>) -> Result<Self::Cursor, Error>;

    /// Reads one chunk of at most `limit` items with the number of items after it.
    fn chunk(&self, cursor: &Self::Cursor, limit: usize) -> Result<Chunk<Self::Cursor>, Error>;
}

/// One store under test, for every figure of the workload.
pub(super) trait Engine: Lister {
    /// The version a peer reports; `None` for revkv, which is this build.
    fn version(&self) -> Option<String> {
        None
    }

    /// How a client reaches it, for reports.
    #[cfg(feature = "peers")]
    fn transport(&self) -> &'static str {
        "in-process, no HTTP hop"
    }

    /// How many writers load and churn the collection at once: as many as the store gains from.
    fn load_streams(&self) -> usize {
        1
    }

    /// Makes `writes` as one atomic transaction, durably. No key is in it twice.
    fn write(&self, writes: &[Write]) -> Result<(), Error>;

    /// Writes one item durably, as a client's single update does.
    fn put(&self, item: &Item) -> Result<(), Error>;

    /// The number of items from `cursor` to the end of the list, asked for alone, where the
    /// engine has such a request (etcd's `count_only`); `None` where it has not.
    fn count(&self, cursor: &Self::Cursor) -> Result<Option<u64>, Error> {
        let _ = cursor;
        Ok(None)
    }

    /// A chunk of `limit` items that match the workload's selector. Without server-side
    /// filtering a client does what the Kubernetes apiserver does on etcd: read chunks, keep the
    /// matching items, and double the request's limit (up to [`MAX_FILTER_LIMIT`]) until the
    /// chunk is full or the list ends.
    fn filtered_chunk(&self, cursor: &Self::Cursor, limit: usize) -> Result<Filtered, Error> {
        let mut cursor = cursor.clone();
        let mut request = limit;
        let mut filtered = Filtered::default();
        loop {
            let chunk = self.chunk(&cursor, request)?;
            *filtered.examined.get_or_insert(0) += chunk.items;
            filtered.matched += chunk.matched;
            match chunk.next {
                Some(next) if filtered.matched < limit => cursor = next,
                _ => return Ok(filtered),
            }
            request = (request * 2).min(MAX_FILTER_LIMIT);
        }
    }

    /// Brings a collection just written to the state one that clients list is in: revkv lists
    /// it once and waits for the key-order blocks that the list asked for, and says how many
    /// seconds that took. Peers keep nothing of the kind: `None`.
    fn settle(&self) -> Result<Option<f64>, Error> {
        Ok(None)
    }

    /// Compacts away all history below the newest revision; returns when it is done.
    fn compact(&self) -> Result<(), Error>;

    /// Closes and reopens the store once the collection holds `keys` live keys, measuring how
    /// long opening takes and what the index costs in memory. A server in another process cannot be measured from
    /// here: `None`.
    fn reopen(&mut self, keys: u64) -> Result<Option<Open>, Error> {
        let _ = keys;
        Ok(None)
    }
}

/// The largest limit the apiserver asks etcd for while it fills a filtered chunk.
pub(super) const MAX_FILTER_LIMIT: usize = 10_000;

/// One chunk as the workload sees it: how much came back, not the items themselves.
pub(super) struct Chunk<C> {
    pub(super) items: usize,
    /// Items that match the workload's selector.
    pub(super) matched: usize,
    /// Items in the list after this chunk, at the list's revision.
    pub(super) remaining: u64,
    /// Where the next chunk starts; `None` on the last one.
    pub(super) next: Option<C>,
}

/// What a filtered chunk read.
#[derive(Default)]
pub(super) struct Filtered {
    /// Items the client received and filtered; `None` when the store filtered them.
    pub(super) examined: Option<usize>,
    pub(super) matched: usize,
}

/// Why a benchmark could not go on.
#[derive(Debug)]
pub enum Error {
    /// revkv refused a request or could not carry it out.
    Store(revkv::Error),
    /// An engine failed outside revkv's own errors: a peer, a temporary directory.
    Failed {
        engine: &'static str,
        message: String,
    },
    /// An engine returned other results than the workload's data implies: its figures would
    /// measure something else.
    Wrong {
        engine: &'static str,
        message: String,
    },
}

impl Error {
    pub(super) fn failed(engine: &'static str, message: impl fmt::Display) -> Self {
        Error::Failed {
            engine,
            message: message.to_string(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Store(error) => write!(f, "{error}"),
            Error::Failed { engine, message } => write!(f, "{engine}: {message}"),
            Error::Wrong { engine, message } => write!(f, "{engine} answered wrongly: {message}"),
        }
    }
}

impl From<revkv::Error> for Error {
    fn from(error: revkv::Error) -> Self {
        Error::Store(error)
    }
}
