//! What a watcher receives, and how a revision's stored changes become its events.

use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;
use sled::IVec;

use super::WatchOptions;
use crate::encoding::{Change as Stored, Location, Record};
use crate::store::Shared;
use crate::{Entry, Error, Result, Revision};

/// What [`Watch`](crate::Watch) delivers: the changes of one revision, or how current the
/// watcher is.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Notification {
    /// Every change of one revision (one put, one delete or one transaction) in the watched
    /// range that the watch's selectors let through, in the order the transaction made them.
    /// A revision that changed nothing the watcher sees is not delivered.
    Changes {
        /// The revision of the changes.
        revision: Revision,
        /// The changes, never empty.
        events: Vec<Event>,
    },
    /// Every change up to `revision` has been delivered (etcd's progress notify, Kubernetes'
    /// bookmark).
    Progress {
        /// The revision the watcher is current through.
        revision: Revision,
    },
}

/// One change of one key, as the watcher sees it.
///
/// The key and entries are shared: every watcher a change reaches holds the same ones, so
/// delivering a change to a thousand watchers decodes it once and copies no key or value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// What happened to the key, for this watcher.
    pub kind: EventKind,
    /// The revision of the change.
    pub revision: Revision,
    /// The key changed.
    pub key: Arc<[u8]>,
    /// The entry a put wrote; `None` for a delete.
    pub entry: Option<Arc<Entry>>,
    /// The key's entry before the change, when the watch asked for
    /// [`prev_entry`](crate::WatchOptions::prev_entry) and the key existed; `None` otherwise.
    pub prev: Option<Arc<Entry>>,
}

/// Whether a key now holds an entry the watcher sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// The key was written, or a put made its entry start matching the watch's selectors.
    Put,
    /// The key was deleted, or a put made its entry stop matching the watch's selectors.
    Delete,
}

/// One change as stored, shared by the watchers it is routed to. The first watcher that reads
/// it decodes it (and, when one asks, reads its previous entry) for all of them: what each
/// watcher does on its own is only its selector decision.
#[derive(Debug)]
pub(crate) struct LoggedChange {
    key: Arc<[u8]>,
    location: Location,
    /// The sealed record, as the log stores it.
    record: IVec,
    decoded: TryOnce<Decoded>,
    prev: TryOnce<Option<Arc<Entry>>>,
}

/// A record's meaning for watchers.
#[derive(Debug)]
struct Decoded {
    /// The entry a put wrote; `None` for a delete.
    entry: Option<Arc<Entry>>,
    /// The key's change before this one.
    prev: Option<Location>,
}

impl LoggedChange {
    pub(crate) fn new(key: &[u8], location: Location, record: IVec) -> Self {
        LoggedChange {
            key: key.into(),
            location,
            record,
            decoded: TryOnce::default(),
            prev: TryOnce::default(),
        }
    }

    pub(super) fn key(&self) -> &[u8] {
        &self.key
    }

    fn decoded(&self, shared: &Shared) -> Result<&Decoded> {
        self.decoded.get_or_try_init(|| {
            let record = Record::decode(self.location, &self.record)?;
            let prev = record.prev;
            let entry = match record.change {
                Stored::Put(_) => Some(Arc::new(shared.entry_of(self.location, record)?)),
                Stored::Delete => None,
            };
            Ok(Decoded { entry, prev })
        })
    }

    fn prev(&self, shared: &Shared, decoded: &Decoded) -> Result<&Option<Arc<Entry>>> {
        self.prev
            .get_or_try_init(|| Ok(previous(shared, decoded.prev)?.map(Arc::new)))
    }
}

/// A value computed once, by the first thread that needs it, while the others wait for it. A
/// failure is not kept: the next caller tries again.
#[derive(Debug)]
struct TryOnce<T> {
    value: OnceLock<T>,
    computing: Mutex<()>,
}

impl<T> Default for TryOnce<T> {
    fn default() -> Self {
        TryOnce {
            value: OnceLock::new(),
            computing: Mutex::new(()),
        }
    }
}

impl<T> TryOnce<T> {
    fn get_or_try_init(&self, init: impl FnOnce() -> Result<T>) -> Result<&T> {
        if let Some(value) = self.value.get() {
            return Ok(value);
        }
        let _computing = self.computing.lock();
        if let Some(value) = self.value.get() {
            return Ok(value);
        }
        let value = init()?;
        Ok(self.value.get_or_init(|| value))
    }
}

/// The events `changes`, all of one revision, make for a watch with `options`.
pub(super) fn events<'a>(
    shared: &Shared,
    options: &WatchOptions,
    changes: impl IntoIterator<Item = &'a LoggedChange>,
) -> Result<Vec<Event>> {
    let mut events = Vec::new();
    for change in changes {
        if let Some(event) = event(shared, options, change)? {
            events.push(event);
        }
    }
    Ok(events)
}

fn event(shared: &Shared, options: &WatchOptions, change: &LoggedChange) -> Result<Option<Event>> {
    let decoded = change.decoded(shared)?;
    let prev = if options.prev_entry || options.filters() {
        change.prev(shared, decoded)?.as_ref()
    } else {
        None
    };
    let entry = decoded.entry.as_ref();
    let seen = |entry: Option<&Arc<Entry>>| {
        entry.is_some_and(|entry| {
            options.labels.matches(&entry.labels) && options.fields.matches(&entry.fields)
        })
    };
    // Kubernetes' rule: what counts is whether the watcher saw the key before and after.
    let kind = match (seen(prev), seen(entry)) {
        (_, true) => EventKind::Put,
        (true, false) => EventKind::Delete,
        (false, false) if options.filters() => return Ok(None),
        (false, false) => EventKind::Delete,
    };
    Ok(Some(Event {
        kind,
        revision: change.location.revision,
        key: Arc::clone(&change.key),
        entry: entry.filter(|_| kind == EventKind::Put).cloned(),
        prev: prev.filter(|_| options.prev_entry).cloned(),
    }))
}

/// The entry a change replaced: the put at `prev`, if any, or `None` when the key did not
/// exist (it never had, or `prev` is a tombstone, which compaction may have removed).
fn previous(shared: &Shared, prev: Option<Location>) -> Result<Option<Entry>> {
    let Some(location) = prev else {
        return Ok(None);
    };
    match shared.record(location)? {
        Some(record) => match record.change {
            Stored::Put(_) => shared.entry_of(location, record).map(Some),
            Stored::Delete => Ok(None),
        },
        // Compaction removes the newest change at or below the compacted revision only when
        // it is a tombstone; a watcher behind the compacted revision has been told so already.
        None if location.revision <= shared.compacted() => Ok(None),
        None => Err(Error::corrupted(
            location.to_string(),
            "the previous change of a watched key is missing",
        )),
    }
}
