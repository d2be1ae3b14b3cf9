//! revkv is an embedded, snapshot-consistent MVCC storage engine for paginated list APIs.
//!
//! It is what an API server links so that `GET ...?limit=500&continue=...` is consistent, fast,
//! and honest about what is left:
//!
//! - every write (a put, a delete, or an atomic multi-key [`Txn`] with compare conditions) gets
//!   one global, monotonically increasing [`Revision`]; every key carries its create revision,
//!   mod revision and version;
//! - a chunked [`list`](Db::list) reads every chunk from the snapshot pinned at the revision of
//!   its first chunk, whatever is written in between: nothing skipped, nothing repeated, nothing
//!   from the future;
//! - every chunk reports the exact number of remaining items, and costs O(log n + limit) with
//!   that count included, at any depth and any collection size;
//! - bad input (a forged, truncated or foreign continue token, a corrupt record on disk) is a
//!   typed [`Error`], never a panic or wrong data.
//!
//! Durable storage is [sled](https://docs.rs/sled/0.34.7); the index of live keys per revision
//! lives in memory and is rebuilt from sled when the store opens.
//!
//! # Example
//!
//! ```
//! use revkv::{Db, ListOptions};
//!
//! let db = Db::temporary()?;
//! for i in 0..5 {
//!     db.put(format!("jobs/{i}"), "queued")?;
//! }
//! let mut options = ListOptions::prefix("jobs/").limit(2);
//! let mut seen = Vec::new();
//! loop {
//!     let page = db.list(&options)?;
//!     db.delete("jobs/4")?; // invisible to this list: it reads its first chunk's snapshot
//!     seen.extend(page.items.into_iter().map(|entry| entry.key));
//!     match page.continue_token {
//!         Some(token) => options = options.continue_token(token),
//!         None => break,
//!     }
//! }
//! assert_eq!(seen.len(), 5);
//! # Ok::<(), revkv::Error>(())
//! ```
//!
//! # API themes
//!
//! - **Revisions.** Reads see the newest durable revision unless told otherwise; historical
//!   reads ([`Db::get_at`], [`ListOptions::revision`]) work back to the compacted revision.
//! - **Snapshots versus tokens.** A list's first chunk pins its revision in a bounded in-memory
//!   cache. A continue token pins nothing by itself: if its snapshot has been evicted, or the
//!   process restarted, the next chunk rebuilds it from the revision log, once.
//! - **Errors.** One [`enum@Error`] enum. Expected outcomes are not errors: a missing key is
//!   `Ok(None)`, a transaction whose conditions fail is `succeeded: false`.
//!
//! The design (on-disk layout, index, tokens, invariants) is described in `DESIGN.md`.

#![deny(unsafe_code)]
#![deny(missing_docs)]
#![warn(missing_debug_implementations)]

mod chain;
mod compaction;
mod encoding;
mod entry;
mod error;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod history;
mod identity;
mod index;
mod list;
mod pager;
mod revision;
pub mod selector;
mod store;
mod token;
mod txn;
mod verify;
mod watch;

pub use compaction::{CompactionError, CompactionReport, Retention, BATCH_RECORDS};
pub use entry::Entry;
pub use error::{Error, Result, StorageError, TokenRejection};
pub use list::{ListOptions, ListPage, DEFAULT_MAX_PAGE_BYTES, DEFAULT_SCAN_BUDGET};
pub use pager::{Items, ListPager, ListSource, Listed, PagedList, Pages};

pub use revision::Revision;
pub use store::{Db, Durability, Options, Stat, DEFAULT_PINNED_BYTES};
pub use txn::{Cmp, Compare, Op, OpResult, Put, Txn, TxnResponse};
pub use verify::{Check, Finding, VerifyReport};
pub use watch::{Event, EventKind, Notification, Watch, WatchOptions, DEFAULT_WATCH_BUFFER};

/// The longest key a write accepts, in bytes.
pub const MAX_KEY_LEN: usize = 4096;
/// The longest value a write accepts, in bytes.
pub const MAX_VALUE_LEN: usize = 1024 * 1024;
/// The most bytes a put's labels and fields may hold together, counting every key and value.
pub const MAX_METADATA_LEN: usize = 32 * 1024;
/// The log segment size of the sled database in a store's directory. sled opens a database only
/// with the size it was created with, so a tool that opens a store's directory with sled itself
/// (to inspect it, not while revkv has it open) needs this size.
pub const SLED_SEGMENT_SIZE: usize = store::SEGMENT_SIZE;
/// The most labels and fields one put may carry, counted together.
pub const MAX_LABELS: usize = 1024;
/// The most operations one transaction branch may hold.
pub const MAX_TXN_OPS: usize = 10_000;
/// The most bytes of keys, values, labels and fields one transaction branch may hold: one
/// request cannot make a commit group, and the batch it writes, arbitrarily large.
pub const MAX_TXN_BYTES: usize = 8 * 1024 * 1024;

/// Shows a key in messages: as text when it is UTF-8, otherwise as escaped bytes.
pub(crate) fn display_key(key: &[u8]) -> String {
    match std::str::from_utf8(key) {
        Ok(text) => format!("{text:?}"),
        Err(_) => format!("\"{}\"", key.escape_ascii()),
    }
}

/// Compiles and runs the examples in README.md, so they cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeExamples;
