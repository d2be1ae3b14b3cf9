//! What a watch asks for: its key range, its start, its filters and its notifications.

use std::time::Duration;

use crate::list::prefix_end;
use crate::selector::{FieldSelector, LabelSelector};
use crate::Revision;

/// How many events a watcher's buffer holds by default before the watcher falls back to
/// reading the revision log (see [`WatchOptions::buffer`]).
pub const DEFAULT_WATCH_BUFFER: usize = 1024;

/// What to watch: a key range, from which revision, with which filters and notifications.
///
/// # Examples
///
/// ```
/// use revkv::{Db, Notification, WatchOptions};
/// # let db = Db::temporary()?;
/// let listed_at = db.put("pods/a", "pending")?;
/// let mut watch = db.watch(WatchOptions::prefix("pods/").start(listed_at.next()).prev_entry(true))?;
/// db.put("pods/a", "running")?;
/// let Some(Notification::Changes { events, .. }) = watch.try_next()? else {
///     panic!("the put is published once it returns");
/// };
/// assert_eq!(events[0].prev.as_ref().map(|prev| prev.value.as_slice()), Some(&b"pending"[..]));
/// # Ok::<(), revkv::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchOptions {
    pub(super) lower: Vec<u8>,
    /// Exclusive; `None` is the end of the key space.
    pub(super) upper: Option<Vec<u8>>,
    pub(super) start: Revision,
    pub(super) prev_entry: bool,
    pub(super) labels: LabelSelector,
    pub(super) fields: FieldSelector,
    pub(super) progress_interval: Option<Duration>,
    pub(super) buffer: usize,
}

impl WatchOptions {
    /// Every key in the store.
    #[must_use]
    pub fn all() -> Self {
        WatchOptions {
            lower: Vec::new(),
            upper: None,
            start: Revision::ZERO,
            prev_entry: false,
            labels: LabelSelector::default(),
            fields: FieldSelector::default(),
            progress_interval: None,
            buffer: DEFAULT_WATCH_BUFFER,
        }
    }

    /// The keys that start with `prefix`.
    pub fn prefix(prefix: impl Into<Vec<u8>>) -> Self {
        let lower = prefix.into();
        WatchOptions {
            upper: prefix_end(&lower),
            lower,
            ..WatchOptions::all()
        }
    }

    /// The keys from `start` (included) to `end` (excluded); an empty range is refused by
    /// [`Db::watch`](crate::Db::watch).
    pub fn range(start: impl Into<Vec<u8>>, end: impl Into<Vec<u8>>) -> Self {
        WatchOptions {
            lower: start.into(),
            upper: Some(end.into()),
            ..WatchOptions::all()
        }
    }

    /// The keys from `start` (included) to the end of the key space.
    pub fn from(start: impl Into<Vec<u8>>) -> Self {
        WatchOptions {
            lower: start.into(),
            ..WatchOptions::all()
        }
    }

    /// The first revision whose changes are delivered, inclusive as in etcd: a client that
    /// listed at revision `r` watches from `r.next()`. [`Revision::ZERO`] (the default) means
    /// the first revision after the newest one published now.
    #[must_use]
    pub fn start(mut self, revision: Revision) -> Self {
        self.start = revision;
        self
    }

    /// Also delivers each changed key's previous entry, in [`Event::prev`](crate::Event::prev).
    #[must_use]
    pub fn prev_entry(mut self, prev_entry: bool) -> Self {
        self.prev_entry = prev_entry;
        self
    }

    /// Only changes to entries whose labels match, with Kubernetes' semantics: a put whose
    /// entry stops matching is delivered as a delete, one whose entry starts matching as a put.
    #[must_use]
    pub fn label_selector(mut self, selector: LabelSelector) -> Self {
        self.labels = selector;
        self
    }

    /// Only changes to entries whose fields match, with the semantics of
    /// [`WatchOptions::label_selector`].
    #[must_use]
    pub fn field_selector(mut self, selector: FieldSelector) -> Self {
        self.fields = selector;
        self
    }

    /// Delivers a [`Notification::Progress`](crate::Notification::Progress) when `interval`
    /// passed without a notification, so an idle watcher learns how current it is.
    #[must_use]
    pub fn progress_interval(mut self, interval: Duration) -> Self {
        self.progress_interval = Some(interval);
        self
    }

    /// How many events wait for the watcher in memory ([`DEFAULT_WATCH_BUFFER`] by default; at
    /// least one revision's whatever its size). A watcher that leaves more unread stops
    /// receiving them: it reads the revision log from its position instead, and rejoins live
    /// delivery once it has caught up, without gaps or duplicates. Writers never wait for it.
    #[must_use]
    pub fn buffer(mut self, events: usize) -> Self {
        self.buffer = events.max(1);
        self
    }

    /// Whether `key` lies in the watched range.
    pub(super) fn holds(&self, key: &[u8]) -> bool {
        key >= self.lower.as_slice() && self.upper.as_ref().is_none_or(|upper| key < upper)
    }

    /// Whether the watch filters by labels or fields, so that it needs every previous entry.
    pub(super) fn filters(&self) -> bool {
        !self.labels.is_empty() || !self.fields.is_empty()
    }
}
