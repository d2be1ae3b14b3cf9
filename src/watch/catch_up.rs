//! Reading the revision log for a watcher that is behind: it started in the past, left its
//! buffer full, or missed revisions staged while no watcher existed.
//!
//! The log holds every record in revision order (`'r'` keys), so the changes of the revisions
//! in `from..=through` are one sequential sled range scan. The scan holds one revision's
//! matching records at a time, whatever the distance to catch up: memory stays bounded, and
//! the watcher's buffer is not involved. It costs O(records in between), not O(records in the
//! range): the log is not in key order.

use super::event::{self, Event, LoggedChange};
use super::WatchOptions;
use crate::encoding::{record_key_floor, Location, Record};
use crate::error::SledResultExt;
use crate::store::Shared;
use crate::{Result, Revision};

/// The first revision in `from..=through` with events for a watch with `options`, and its
/// events; `None` when no revision there has any.
pub(super) fn first_events(
    shared: &Shared,
    options: &WatchOptions,
    from: Revision,
    through: Revision,
) -> Result<Option<(Revision, Vec<Event>)>> {
    if from > through {
        return Ok(None);
    }
    let mut revision = from;
    let mut changes = Vec::new();
    let log = shared
        .data
        .range(record_key_floor(from)..record_key_floor(through.next()));
    for item in log {
        let (sled_key, bytes) = item.storage()?;
        let location = Location::from_record_key(&sled_key)?;
        if location.revision != revision {
            if let Some(found) = events_of(shared, options, revision, &mut changes)? {
                return Ok(Some(found));
            }
            revision = location.revision;
        }
        let watched = Record::decode_borrowed(location, &bytes)?.key;
        if options.holds(watched) {
            changes.push(LoggedChange::new(watched, location, bytes.clone()));
        }
    }
    events_of(shared, options, revision, &mut changes)
}

/// The events of `changes`, all of `revision`, which it empties; `None` when there are none.
fn events_of(
    shared: &Shared,
    options: &WatchOptions,
    revision: Revision,
    changes: &mut Vec<LoggedChange>,
) -> Result<Option<(Revision, Vec<Event>)>> {
    if changes.is_empty() {
        return Ok(None);
    }
    let events = event::events(shared, options, changes.iter())?;
    changes.clear();
    Ok((!events.is_empty()).then_some((revision, events)))
}
