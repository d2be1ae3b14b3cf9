//! The hub: hands each published revision's changes to the watchers whose ranges hold them.
//!
//! Writers stage each commit group's changes here while they apply it. Publishing a group
//! (making it visible to readers) only records how far routing may go and wakes the hub's
//! **router**, a thread that runs while any watcher is registered: a writer's cost is the same
//! with one watcher as with thousands. Routing looks each changed key up in the [`Routes`], and
//! each watcher it reaches gets the revision's changes in its [`Inbox`], a bounded queue. A
//! watcher that finds its inbox empty while published revisions wait to be routed routes them
//! itself rather than wait for the router, so a change is ready for its watchers as soon as the
//! write that made it returns.
//!
//! A full inbox is never waited for: its watcher is marked **behind** from that revision and is
//! handed nothing more; it reads the revision log from there itself and rejoins when it has
//! read up to the newest routed revision (see `catch_up`). A revision the hub was not given
//! (staged while no watcher existed) is a gap every live watcher must read from the log too,
//! which the same path handles.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;
use std::{ops::Deref, thread};

use parking_lot::{Condvar, Mutex};

use super::event::{self, Event, LoggedChange};
use super::routes::{Routes, WatcherId};
use super::WatchOptions;
use crate::store::Shared;
use crate::{Result, Revision};

/// Called when a watcher may have something new to read.
pub(super) type Waker = Arc<dyn Fn() + Send + Sync>;

/// The changes of one revision, shared by every watcher they are routed to.
#[derive(Debug)]
pub(super) struct Batch {
    pub revision: Revision,
    pub changes: Vec<LoggedChange>,
}

/// The revisions of one commit group, staged when it is applied and routed when it is
/// published.
struct Group {
    /// The newest revision before the group: the hub has a gap if it did not route up to it.
    after: Revision,
    head: Revision,
    batches: Vec<Arc<Batch>>,
}

/// A revision's changes as one watcher receives them: a handle on the shared batch, and which
/// of its changes are the watcher's.
pub(super) struct Delivery {
    pub batch: Arc<Batch>,
    selection: Selection,
}

/// Which changes of a batch a watcher receives.
enum Selection {
    /// All of them: a revision of one change, or a transaction within the watched range.
    All,
    /// Those at these positions, in order.
    Positions(Vec<u32>),
}

impl Delivery {
    /// How many changes the watcher receives.
    fn len(&self) -> usize {
        match &self.selection {
            Selection::All => self.batch.changes.len(),
            Selection::Positions(positions) => positions.len(),
        }
    }

    /// The events the watcher's changes make for a watch with `options`.
    pub(super) fn events(&self, shared: &Shared, options: &WatchOptions) -> Result<Vec<Event>> {
        let changes = &self.batch.changes;
        match &self.selection {
            Selection::All => event::events(shared, options, changes),
            Selection::Positions(positions) => event::events(
                shared,
                options,
                positions
                    .iter()
                    .filter_map(|&position| changes.get(position as usize)),
            ),
        }
    }
}

/// The hub of a store. Dropping it stops its router.
pub(crate) struct Hub {
    core: Arc<Core>,
}

/// What the hub's router thread shares with the store.
pub(crate) struct Core {
    state: Mutex<State>,
    /// The newest revision routed: every watcher has been handed, or marked behind before,
    /// every change up to it.
    published: AtomicU64,
    /// The newest revision readers see: routing may go up to it.
    visible: AtomicU64,
    /// How many watchers are registered; writers stage nothing while there are none.
    watchers: AtomicUsize,
    router: Mutex<Router>,
    /// Wakes the router: a revision to route, no watcher left, or the store closing.
    router_wake: Condvar,
}

#[derive(Default)]
struct Router {
    running: bool,
    closing: bool,
}

struct State {
    routes: Routes,
    watchers: HashMap<WatcherId, Registration>,
    next_id: WatcherId,
    /// Applied but not yet published, oldest first.
    pending: VecDeque<Group>,
}

struct Registration {
    inbox: Arc<Inbox>,
    lower: Vec<u8>,
    upper: Option<Vec<u8>>,
    /// The watch's first revision; earlier ones are not delivered.
    from: Revision,
}

/// One watcher's queue, shared by the hub (which fills it) and the watch (which drains it).
pub(super) struct Inbox {
    state: Mutex<InboxState>,
    ready: Condvar,
}

pub(super) struct InboxState {
    pub queue: VecDeque<Delivery>,
    /// Events in `queue`.
    queued: usize,
    /// Most events `queue` holds, unless it holds one revision only.
    capacity: usize,
    /// `Some(r)`: the watcher must read the log from `r` on, after `queue`; the hub hands it
    /// nothing meanwhile.
    pub behind: Option<Revision>,
    waker: Option<Waker>,
}

impl Inbox {
    /// Locks the inbox; what it holds is consistent with [`Hub::published`] read under it.
    pub(super) fn lock(&self) -> parking_lot::MutexGuard<'_, InboxState> {
        self.state.lock()
    }

    pub(super) fn set_waker(&self, waker: Waker) {
        self.state.lock().waker = Some(waker);
    }

    /// Waits until the hub hands the watcher something, or until `deadline`.
    pub(super) fn wait(&self, deadline: Option<Instant>) {
        let mut state = self.state.lock();
        if !state.queue.is_empty() || state.behind.is_some() {
            return;
        }
        match deadline {
            Some(deadline) => {
                self.ready.wait_until(&mut state, deadline);
            }
            None => self.ready.wait(&mut state),
        }
    }

    /// Queues `delivery`, or marks the watcher behind from its revision when the queue is
    /// full; does nothing for a watcher already behind.
    fn offer(&self, delivery: Delivery) {
        let mut state = self.state.lock();
        if state.behind.is_some() {
            return;
        }
        let events = delivery.len();
        if !state.queue.is_empty() && state.queued + events > state.capacity {
            state.behind = Some(delivery.batch.revision);
        } else {
            state.queued += events;
            state.queue.push_back(delivery);
        }
        self.wake(state);
    }

    /// Marks the watcher behind from `from`, unless it is behind from earlier already.
    fn fall_behind(&self, from: Revision) {
        let mut state = self.state.lock();
        let from = state.behind.map_or(from, |behind| behind.min(from));
        state.behind = Some(from);
        self.wake(state);
    }

    /// Wakes the watcher's waiting thread and its waker, the latter outside the lock.
    fn wake(&self, state: parking_lot::MutexGuard<'_, InboxState>) {
        let waker = state.waker.clone();
        drop(state);
        self.ready.notify_all();
        if let Some(waker) = waker {
            waker();
        }
    }
}

impl InboxState {
    /// Takes the oldest queued delivery.
    pub(super) fn pop(&mut self) -> Option<Delivery> {
        let delivery = self.queue.pop_front()?;
        self.queued -= delivery.len();
        Some(delivery)
    }
}

impl Hub {
    pub(crate) fn new(head: Revision) -> Self {
        Hub {
            core: Arc::new(Core {
                state: Mutex::new(State {
                    routes: Routes::default(),
                    watchers: HashMap::new(),
                    next_id: 0,
                    pending: VecDeque::new(),
                }),
                published: AtomicU64::new(head.get()),
                visible: AtomicU64::new(head.get()),
                watchers: AtomicUsize::new(0),
                router: Mutex::new(Router::default()),
                router_wake: Condvar::new(),
            }),
        }
    }

    /// Registers a watcher of `[lower, upper)` from revision `start` (0: the next one to be
    /// published). Returns its id, its inbox and its first revision.
    pub(super) fn register(
        &self,
        lower: &[u8],
        upper: Option<&[u8]>,
        start: Revision,
        capacity: usize,
    ) -> (WatcherId, Arc<Inbox>, Revision) {
        let mut state = self.state.lock();
        // A watch from now starts after everything readers see.
        self.route_visible_locked(&mut state);
        let published = self.published();
        let from = if start == Revision::ZERO {
            published.next()
        } else {
            start
        };
        let inbox = Arc::new(Inbox {
            state: Mutex::new(InboxState {
                queue: VecDeque::new(),
                queued: 0,
                capacity,
                behind: (from <= published).then_some(from),
                waker: None,
            }),
            ready: Condvar::new(),
        });
        let id = state.next_id;
        state.next_id += 1;
        state.routes.insert(id, lower, upper);
        state.watchers.insert(
            id,
            Registration {
                inbox: Arc::clone(&inbox),
                lower: lower.to_vec(),
                upper: upper.map(<[u8]>::to_vec),
                from,
            },
        );
        self.watchers.store(state.watchers.len(), Ordering::Release);
        drop(state);
        self.core.start_router();
        (id, inbox, from)
    }
}

impl Deref for Hub {
    type Target = Core;

    fn deref(&self) -> &Core {
        &self.core
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.core.router.lock().closing = true;
        self.core.router_wake.notify_one();
    }
}

impl Core {
    /// Whether any watcher is registered, so that a commit group should be staged.
    pub(crate) fn watching(&self) -> bool {
        self.watchers.load(Ordering::Acquire) > 0
    }

    /// How many watchers are registered.
    pub(super) fn len(&self) -> usize {
        self.watchers.load(Ordering::Acquire)
    }

    /// The newest revision routed to watchers.
    pub(super) fn published(&self) -> Revision {
        Revision::new(self.published.load(Ordering::Acquire))
    }

    /// Stages a commit group applied after revision `after`: `changes` holds, for each of its
    /// revisions in order, the revision and its changes. Called in commit order.
    pub(crate) fn stage(&self, after: Revision, revisions: Vec<(Revision, Vec<LoggedChange>)>) {
        let Some(&(head, _)) = revisions.last() else {
            return;
        };
        let batches = revisions
            .into_iter()
            .map(|(revision, changes)| Arc::new(Batch { revision, changes }))
            .collect();
        self.state.lock().pending.push_back(Group {
            after,
            head,
            batches,
        });
    }

    /// Lets routing go up to `target`, which readers now see. The router routes it, or the
    /// caller when no router runs (no watcher is registered, so there is little to do).
    pub(crate) fn publish(&self, target: Revision) {
        self.visible.fetch_max(target.get(), Ordering::AcqRel);
        let router = self.router.lock();
        if router.running {
            drop(router);
            self.router_wake.notify_one();
        } else {
            drop(router);
            self.route_visible();
        }
    }

    /// Whether published revisions wait to be routed.
    pub(super) fn routing_behind(&self) -> bool {
        self.published.load(Ordering::Acquire) < self.visible.load(Ordering::Acquire)
    }

    /// Routes every staged revision up to the newest one readers see.
    pub(super) fn route_visible(&self) {
        self.route_visible_locked(&mut self.state.lock());
    }

    fn route_visible_locked(&self, state: &mut State) {
        let target = Revision::new(self.visible.load(Ordering::Acquire));
        let mut routed = self.published();
        if target <= routed {
            return;
        }
        while state
            .pending
            .front()
            .is_some_and(|group| group.head <= target)
        {
            let group = state.pending.pop_front().expect("front was just checked");
            if group.after > routed {
                state.gap(routed.next());
            }
            for batch in group.batches {
                state.route(&batch);
            }
            routed = group.head;
        }
        if target > routed {
            state.gap(routed.next());
        }
        self.published.store(target.get(), Ordering::Release);
    }

    /// Starts the router unless it runs.
    fn start_router(self: &Arc<Self>) {
        let mut router = self.router.lock();
        if router.running || router.closing {
            return;
        }
        router.running = true;
        drop(router);
        let core = Arc::clone(self);
        let started = thread::Builder::new()
            .name("revkv-watch-router".into())
            .spawn(move || core.route_while_watched());
        if started.is_err() {
            // Without a thread, publishing routes, as it does with no watcher.
            self.router.lock().running = false;
        }
    }

    /// The router's loop: routes what is published until no watcher is left or the store
    /// closes.
    fn route_while_watched(&self) {
        loop {
            self.route_visible();
            let mut router = self.router.lock();
            // Checked under the router's lock, which `publish` takes after raising `visible`:
            // a revision published after this check wakes the wait below.
            if self.routing_behind() {
                continue;
            }
            if router.closing || self.watchers.load(Ordering::Acquire) == 0 {
                router.running = false;
                return;
            }
            self.router_wake.wait(&mut router);
        }
    }

    pub(super) fn unregister(&self, id: WatcherId) {
        let mut state = self.state.lock();
        if let Some(registration) = state.watchers.remove(&id) {
            let upper = registration.upper.as_deref();
            state.routes.remove(id, &registration.lower, upper);
        }
        self.watchers.store(state.watchers.len(), Ordering::Release);
        if state.watchers.is_empty() {
            drop(state);
            // Holding the router's lock orders this wake after its check of the count.
            let _router = self.router.lock();
            self.router_wake.notify_one();
        }
    }

    /// Hands live delivery back to a watcher that has read the log through `through`, if
    /// nothing newer has been published meanwhile; otherwise it reads on.
    pub(super) fn rejoin(&self, inbox: &Inbox, through: Revision) -> bool {
        let _routing = self.state.lock();
        if self.published() > through {
            return false;
        }
        inbox.lock().behind = None;
        true
    }

    /// Whether the hub holds no registration and routes no key: what dropping every watch
    /// leaves behind.
    #[cfg(test)]
    pub(super) fn is_empty(&self) -> bool {
        let state = self.state.lock();
        state.watchers.is_empty() && state.routes.is_empty()
    }
}

impl State {
    /// Hands `batch` to the watchers of its keys. A watcher costs one shared handle in its
    /// inbox; only a transaction part of whose changes it watches costs it a list of positions.
    fn route(&self, batch: &Arc<Batch>) {
        if let [change] = batch.changes.as_slice() {
            self.routes
                .lookup(change.key(), |id| self.offer(id, batch, Selection::All));
            return;
        }
        let mut hits = Vec::new();
        for (position, change) in (0..).zip(&batch.changes) {
            self.routes
                .lookup(change.key(), |id| hits.push((id, position)));
        }
        // Sorted by watcher, then position: each watcher's changes in transaction order.
        hits.sort_unstable();
        for run in hits.chunk_by(|(a, _), (b, _)| a == b) {
            let selection = if run.len() == batch.changes.len() {
                Selection::All
            } else {
                Selection::Positions(run.iter().map(|&(_, position)| position).collect())
            };
            if let Some(&(id, _)) = run.first() {
                self.offer(id, batch, selection);
            }
        }
    }

    fn offer(&self, id: WatcherId, batch: &Arc<Batch>, selection: Selection) {
        let Some(registration) = self.watchers.get(&id) else {
            return;
        };
        if batch.revision >= registration.from {
            registration.inbox.offer(Delivery {
                batch: Arc::clone(batch),
                selection,
            });
        }
    }

    /// Marks every watcher behind from `from`: the hub was not given the changes there. This
    /// costs O(watchers), but happens only for groups staged while no watcher existed.
    fn gap(&self, from: Revision) {
        for registration in self.watchers.values() {
            registration.inbox.fall_behind(from.max(registration.from));
        }
    }
}
