//! `revkv history`: the changes since a revision, replayed by a watch until it is current.

use revkv::{Db, Notification, WatchOptions};

use super::{output, Failure};

pub(super) fn print(db: &Db, options: WatchOptions, json: bool) -> Result<(), Failure> {
    let mut watch = db.watch(options)?;
    // This process is the store's only writer, so the watch is current once nothing is ready.
    while let Some(notification) = watch.try_next()? {
        if let Notification::Changes { events, .. } = notification {
            for event in &events {
                output::print_event(event, json)?;
            }
        }
    }
    Ok(())
}
