//! What a watcher receives, and how a revision's stored changes become its events.

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
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// What happened to the key, for this watcher.
    pub kind: EventKind,
    /// The revision of the change.
    pub revision: Revision,
    /// The key changed.
    pub key: Vec<u8>,
    /// The entry a put wrote; `None` for a delete.
    pub entry: Option<Entry>,
    /// The key's entry before the change, when the watch asked for
    /// [`prev_entry`](crate::WatchOptions::prev_entry) and the key existed; `None` otherwise.
    pub prev: Option<Entry>,
}

/// Whether a key now holds an entry the watcher sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// The key was written, or a put made its entry start matching the watch's selectors.
    Put,
    /// The key was deleted, or a put made its entry stop matching the watch's selectors.
    Delete,
}

/// One change as stored: the raw material of an [`Event`], shared by the watchers it is routed
/// to until each one turns it into its own events.
#[derive(Debug)]
pub(crate) struct LoggedChange {
    pub key: Vec<u8>,
    pub location: Location,
    /// The sealed record, as the log stores it.
    pub record: IVec,
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
    let location = change.location;
    let record = Record::decode(location, &change.record)?;
    let prev = if options.prev_entry || options.filters() {
        previous(shared, record.prev)?
    } else {
        None
    };
    let entry = match record.change {
        Stored::Put(_) => Some(shared.entry_of(location, record)?),
        Stored::Delete => None,
    };
    let seen = |entry: &Option<Entry>| {
        entry.as_ref().is_some_and(|entry| {
            options.labels.matches(&entry.labels) && options.fields.matches(&entry.fields)
        })
    };
    // Kubernetes' rule: what counts is whether the watcher saw the key before and after.
    let kind = match (seen(&prev), seen(&entry)) {
        (_, true) => EventKind::Put,
        (true, false) => EventKind::Delete,
        (false, false) if options.filters() => return Ok(None),
        (false, false) => EventKind::Delete,
    };
    Ok(Some(Event {
        kind,
        revision: location.revision,
        key: change.key.clone(),
        entry: entry.filter(|_| kind == EventKind::Put),
        prev: prev.filter(|_| options.prev_entry),
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
