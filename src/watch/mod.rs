//! Watches: the changes of a key range from any revision on, in revision order.
//!
//! - `options`: what a watch asks for ([`WatchOptions`]);
//! - `event`: what it receives ([`Notification`], [`Event`]) and how stored changes become
//!   events, selectors included;
//! - `routes`: which watchers a key belongs to, in O(log n) whatever their number;
//! - `hub`: hands published revisions to watchers, through bounded inboxes;
//! - `catch_up`: reads the revision log for a watcher that is behind;
//! - `progress`: progress notifications.

mod catch_up;
mod event;
mod hub;
mod options;
mod progress;
mod routes;

use std::sync::Arc;
use std::time::{Duration, Instant};

pub(crate) use event::LoggedChange;
pub use event::{Event, EventKind, Notification};
pub(crate) use hub::Hub;
pub use options::{WatchOptions, DEFAULT_WATCH_BUFFER};

use hub::{Delivery, Inbox};
use progress::Progress;
use routes::WatcherId;

use crate::store::Shared;
use crate::{Db, Error, Result, Revision};

impl Db {
    /// Opens a watch: the changes of a key range from a start revision on, in revision order,
    /// each revision's changes together (see [`WatchOptions`]).
    ///
    /// A watch started at revision `s` delivers exactly the changes that turn the state at
    /// `s − 1` into each later state, so a client that listed at `r` and watches from
    /// `r.next()` holds the contents of every revision it reaches. That needs the state at
    /// `s − 1`: a start at or below the compacted revision is refused, as a list at the
    /// revision before it would be. Writers never wait for watchers; a watcher that falls
    /// behind reads the revision log, with bounded memory. A watch does not survive the
    /// process: after a restart, watch again from the last revision seen plus one.
    ///
    /// # Errors
    ///
    /// - [`Error::Expired`] when `start` is at or below the compacted revision: list again;
    /// - [`Error::LostRevision`] when the revision before `start` was lost in a crash under
    ///   [`Durability::Buffered`](crate::Durability::Buffered): the client's state never
    ///   reached the disk, so no change on top of it can make it a state of the store;
    /// - [`Error::InvalidRequest`] for an empty range.
    ///
    /// # Examples
    ///
    /// List, then watch from the next revision:
    ///
    /// ```
    /// use revkv::{Db, EventKind, ListOptions, Notification, WatchOptions};
    /// # let db = Db::temporary()?;
    /// db.put("jobs/1", "queued")?;
    /// let page = db.list(&ListOptions::prefix("jobs/"))?;
    /// let mut watch = db.watch(WatchOptions::prefix("jobs/").start(page.revision.next()))?;
    /// db.delete("jobs/1")?;
    /// match watch.next().expect("the watch goes on")? {
    ///     Notification::Changes { events, .. } => assert_eq!(events[0].kind, EventKind::Delete),
    ///     progress => panic!("unexpected {progress:?}"),
    /// }
    /// # Ok::<(), revkv::Error>(())
    /// ```
    pub fn watch(&self, options: WatchOptions) -> Result<Watch> {
        if options
            .upper
            .as_ref()
            .is_some_and(|upper| *upper <= options.lower)
        {
            return Err(Error::invalid_request("the watched range is empty"));
        }
        if let Some(before) = options.start.get().checked_sub(1) {
            let before = Revision::new(before);
            self.shared.identity.read().check_not_lost(before)?;
            expired_unless_after_compaction(&self.shared, options.start)?;
        }
        let (id, inbox, start) = self.shared.hub.register(
            &options.lower,
            options.upper.as_deref(),
            options.start,
            options.buffer,
        );
        Ok(Watch {
            shared: Arc::clone(&self.shared),
            progress: Progress::new(options.progress_interval),
            options,
            id,
            inbox,
            start,
            next: start,
            ended: false,
        })
    }

    /// How many watches are open on the store.
    #[must_use]
    pub fn watchers(&self) -> usize {
        self.shared.hub.len()
    }
}

/// An open watch, from [`Db::watch`]: a stream of [`Notification`]s in revision order.
///
/// Read it blocking, as an [`Iterator`] (which ends after an error), with a timeout
/// ([`Watch::next_timeout`]), or without waiting ([`Watch::try_next`]); an async server can
/// register a [waker](Watch::set_waker) instead of holding a thread per watch. Dropping it
/// cancels the watch and frees everything it held. It keeps the store open meanwhile.
///
/// After an error (the watcher fell behind a compaction, or history could not be read) the
/// watch is over: later calls return nothing.
pub struct Watch {
    shared: Arc<Shared>,
    options: WatchOptions,
    id: WatcherId,
    inbox: Arc<Inbox>,
    start: Revision,
    /// The oldest revision not delivered yet.
    next: Revision,
    progress: Progress,
    ended: bool,
}

/// What a watch does next.
enum Work {
    Deliver(Delivery),
    /// Read the log from this revision on.
    CatchUp(Revision),
    /// Nothing to deliver; the watcher is current through this revision.
    Idle(Revision),
    /// Nothing handed over yet, but readers see revisions the hub has not routed: route them
    /// (or wait while the router does) rather than report nothing.
    Route,
}

impl Watch {
    /// The watch's first revision: the one asked for, or, for a watch from now, the first one
    /// published after it opened.
    #[must_use]
    pub fn start_revision(&self) -> Revision {
        self.start
    }

    /// The next notification if one is ready, without waiting for writers; `Ok(None)` when
    /// the watcher is current. A watcher that is behind reads the revision log here, up to
    /// its next revision with changes (or to the newest one).
    ///
    /// # Errors
    ///
    /// [`Error::Expired`] once the watcher's next revision has been compacted (list again),
    /// and [`Error::Corrupted`] or [`Error::Storage`] when history cannot be read.
    ///
    /// # Examples
    ///
    /// ```
    /// use revkv::{Db, Notification, WatchOptions};
    /// # let db = Db::temporary()?;
    /// let mut watch = db.watch(WatchOptions::all())?;
    /// assert_eq!(watch.try_next()?, None);
    /// let revision = db.put("k", "v")?;
    /// assert!(matches!(watch.try_next()?, Some(Notification::Changes { revision: r, .. }) if r == revision));
    /// # Ok::<(), revkv::Error>(())
    /// ```
    pub fn try_next(&mut self) -> Result<Option<Notification>> {
        if self.ended {
            return Ok(None);
        }
        let outcome = self.step();
        self.ended = outcome.is_err();
        outcome
    }

    /// Waits up to `timeout` for the next notification; `Ok(None)` when none came.
    ///
    /// # Errors
    ///
    /// As [`Watch::try_next`].
    pub fn next_timeout(&mut self, timeout: Duration) -> Result<Option<Notification>> {
        self.wait_for(Some(Instant::now() + timeout))
    }

    /// Asks for a [`Notification::Progress`] as soon as the watcher has delivered everything
    /// published so far.
    ///
    /// ```
    /// use revkv::{Db, Notification, WatchOptions};
    /// # let db = Db::temporary()?;
    /// let head = db.put("elsewhere", "v")?;
    /// let mut watch = db.watch(WatchOptions::prefix("quiet/"))?;
    /// watch.request_progress();
    /// assert_eq!(watch.try_next()?, Some(Notification::Progress { revision: head }));
    /// # Ok::<(), revkv::Error>(())
    /// ```
    pub fn request_progress(&mut self) {
        self.progress.request();
    }

    /// Calls `waker` whenever the watch may have a new notification, so an async driver can
    /// poll [`Watch::try_next`] then. It runs on the thread routing a revision to watchers
    /// (the store's watch router, mostly), and must be quick and must not block (waking a
    /// task is). Interval progress notifications are not announced: they come from the calls
    /// that find them due.
    pub fn set_waker(&self, waker: impl Fn() + Send + Sync + 'static) {
        self.inbox.set_waker(Arc::new(waker));
    }

    /// Waits until `deadline` (forever when `None`) for the next notification.
    fn wait_for(&mut self, deadline: Option<Instant>) -> Result<Option<Notification>> {
        loop {
            if let Some(notification) = self.try_next()? {
                return Ok(Some(notification));
            }
            if self.ended || deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                return Ok(None);
            }
            let wake_at = [deadline, self.progress.deadline()]
                .into_iter()
                .flatten()
                .min();
            self.inbox.wait(wake_at);
        }
    }

    fn step(&mut self) -> Result<Option<Notification>> {
        loop {
            let work = {
                let mut inbox = self.inbox.lock();
                match (inbox.pop(), inbox.behind) {
                    (Some(delivery), _) => Work::Deliver(delivery),
                    (None, Some(from)) => Work::CatchUp(from),
                    // Read under the inbox's lock: every revision up to it was handed over.
                    (None, None) if !self.shared.hub.routing_behind() => {
                        Work::Idle(self.shared.hub.published())
                    }
                    (None, None) => Work::Route,
                }
            };
            match work {
                Work::Deliver(delivery) => {
                    let events = delivery.events(&self.shared, &self.options)?;
                    if let Some(notification) = self.deliver(delivery.batch.revision, events)? {
                        return Ok(Some(notification));
                    }
                }
                Work::CatchUp(from) => {
                    let from = from.max(self.next);
                    let through = self.shared.hub.published();
                    match catch_up::first_events(&self.shared, &self.options, from, through)? {
                        Some((revision, events)) => {
                            self.inbox.lock().behind = Some(revision.next());
                            return self.deliver(revision, events);
                        }
                        None => {
                            // What the scan found missing may have been compacted under it.
                            expired_unless_after_compaction(&self.shared, from)?;
                            self.next = self.next.max(through.next());
                            if !self.shared.hub.rejoin(&self.inbox, through) {
                                self.inbox.lock().behind = Some(through.next());
                            }
                        }
                    }
                }
                Work::Route => self.shared.hub.route_visible(),
                Work::Idle(published) => {
                    if !self.progress.due() {
                        return Ok(None);
                    }
                    self.progress.progress_sent(Instant::now());
                    // Readers see a revision a moment before watchers get it, so a client
                    // may list at a revision and watch from the next before the hub is there;
                    // it is current through the revision before its start all the same.
                    let visible = self.shared.index.visible().revision;
                    let before_start = Revision::new(self.next.get() - 1).min(visible);
                    return Ok(Some(Notification::Progress {
                        revision: published.max(before_start),
                    }));
                }
            }
        }
    }

    /// Delivers the events of `revision`, unless selectors left none.
    fn deliver(&mut self, revision: Revision, events: Vec<Event>) -> Result<Option<Notification>> {
        // Previous entries and large values were read from the store: a compaction past the
        // revision may have removed them meanwhile.
        expired_unless_after_compaction(&self.shared, revision)?;
        self.next = revision.next();
        if events.is_empty() {
            return Ok(None);
        }
        self.progress.changes_sent();
        Ok(Some(Notification::Changes { revision, events }))
    }
}

/// Fails with [`Error::Expired`] unless the changes of `revision` can be read in full: the
/// state before it, at `revision − 1`, must not be compacted.
fn expired_unless_after_compaction(shared: &Shared, revision: Revision) -> Result<()> {
    let compacted = shared.compacted();
    if revision <= compacted {
        return Err(Error::Expired {
            requested: revision,
            compacted,
            continue_token: None,
        });
    }
    Ok(())
}

impl Iterator for Watch {
    type Item = Result<Notification>;

    /// Waits for the next notification; `None` only after the watch ended with an error.
    fn next(&mut self) -> Option<Self::Item> {
        self.wait_for(None).transpose()
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.shared.hub.unregister(self.id);
    }
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch")
            .field("options", &self.options)
            .field("next", &self.next)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::{Event, Notification, Watch, WatchOptions};
    use crate::{Db, Revision};

    #[test]
    fn the_watchers_of_a_change_share_its_key_and_entries() -> crate::Result<()> {
        let db = Db::temporary()?;
        db.put("k/a", "1")?;
        let mut watches = [
            db.watch(WatchOptions::prefix("k/").prev_entry(true))?,
            db.watch(WatchOptions::all().prev_entry(true))?,
        ];
        db.put("k/a", "2")?;
        let event = |watch: &mut Watch| -> crate::Result<Event> {
            match watch.try_next()? {
                Some(Notification::Changes { mut events, .. }) if events.len() == 1 => {
                    Ok(events.remove(0))
                }
                other => panic!("one change expected, not {other:?}"),
            }
        };
        let [first, second] = &mut watches;
        let (first, second) = (event(first)?, event(second)?);
        assert!(Arc::ptr_eq(&first.key, &second.key));
        let shared = |a: &Option<Arc<crate::Entry>>, b: &Option<Arc<crate::Entry>>| matches!((a, b), (Some(a), Some(b)) if Arc::ptr_eq(a, b));
        assert!(shared(&first.entry, &second.entry));
        assert!(shared(&first.prev, &second.prev));
        Ok(())
    }

    #[test]
    fn dropped_watches_leave_no_registration_and_no_route() -> crate::Result<()> {
        let db = Db::temporary()?;
        let watches = (0..1000)
            .map(|i| match i % 3 {
                0 => db.watch(WatchOptions::prefix(format!("k/{i}/"))),
                1 => db.watch(WatchOptions::range(format!("k/{i}"), "z")),
                _ => db.watch(WatchOptions::from(format!("k/{i}")).start(Revision::new(5))),
            })
            .collect::<crate::Result<Vec<_>>>()?;
        db.put("k/1/a", "v")?;
        drop(watches);
        assert!(db.shared.hub.is_empty());
        Ok(())
    }
}
