//! Rebuilding views of old revisions, one at a time, each revision once.
//!
//! A view missing from the cache is rebuilt by undoing every record since its revision: CPU and
//! memory in proportion to how old it is. Any client can ask for an old revision (an exact
//! `resourceVersion`, or a token kept for a while), so rebuilds run one at a time, leaving the
//! other cores to ordinary reads, and callers asking for a revision already being rebuilt wait
//! for that rebuild and share its view instead of paying for another.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::{Condvar, Mutex};

use super::View;
use crate::{Result, Revision};

#[derive(Default)]
pub(crate) struct Rebuilds {
    /// Rebuilds asked for and not finished, by revision.
    in_flight: Mutex<HashMap<Revision, Arc<InFlight>>>,
    /// Held by the one rebuild that runs.
    running: Mutex<()>,
}

/// One revision's rebuild, as the callers waiting for it see it.
#[derive(Default)]
struct InFlight {
    /// `None` while it runs; then the view, or `None` when it failed.
    outcome: Mutex<Option<Option<View>>>,
    finished: Condvar,
}

impl Rebuilds {
    /// The view at `revision`, from `rebuild`, or from the rebuild of the same revision another
    /// caller has under way. A caller whose shared rebuild failed runs `rebuild` itself, so it
    /// gets the error (or, if the cause has passed, the view) first-hand.
    pub(crate) fn view_at(
        &self,
        revision: Revision,
        rebuild: impl FnOnce() -> Result<View>,
    ) -> Result<View> {
        let (flight, leads) = {
            let mut in_flight = self.in_flight.lock();
            match in_flight.get(&revision) {
                Some(flight) => (Arc::clone(flight), false),
                None => {
                    let flight = Arc::new(InFlight::default());
                    in_flight.insert(revision, Arc::clone(&flight));
                    (flight, true)
                }
            }
        };
        if !leads {
            let mut outcome = flight.outcome.lock();
            while outcome.is_none() {
                flight.finished.wait(&mut outcome);
            }
            if let Some(Some(view)) = &*outcome {
                return Ok(view.clone());
            }
            drop(outcome);
            let _running = self.running.lock();
            return rebuild();
        }
        // Whatever happens, even a panic, the waiters learn the outcome and the entry goes.
        let mut finish = Finish {
            rebuilds: self,
            revision,
            flight: &flight,
            view: None,
        };
        let result = {
            let _running = self.running.lock();
            rebuild()
        };
        finish.view = result.as_ref().ok().cloned();
        drop(finish);
        result
    }

    /// How many rebuilds are asked for and not finished.
    #[cfg(test)]
    fn in_flight(&self) -> usize {
        self.in_flight.lock().len()
    }
}

struct Finish<'a> {
    rebuilds: &'a Rebuilds,
    revision: Revision,
    flight: &'a InFlight,
    view: Option<View>,
}

impl Drop for Finish<'_> {
    fn drop(&mut self) {
        self.rebuilds.in_flight.lock().remove(&self.revision);
        *self.flight.outcome.lock() = Some(self.view.take());
        self.flight.finished.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Barrier;
    use std::time::Duration;

    use super::*;
    use crate::index::Tree;
    use crate::Error;

    fn view(revision: u64) -> View {
        View {
            revision: Revision::new(revision),
            tree: Tree::from_sorted([]),
            changes: 0,
        }
    }

    #[test]
    fn callers_of_one_revision_share_one_rebuild_and_rebuilds_never_overlap() {
        let rebuilds = Rebuilds::default();
        let (runs, running, overlapped) = (
            AtomicUsize::new(0),
            AtomicUsize::new(0),
            AtomicUsize::new(0),
        );
        let callers = 8;
        let start = Barrier::new(callers * 2);
        std::thread::scope(|scope| {
            for caller in 0..callers * 2 {
                let (rebuilds, runs, running, overlapped, start) =
                    (&rebuilds, &runs, &running, &overlapped, &start);
                scope.spawn(move || {
                    let revision = 1 + (caller % 2) as u64;
                    start.wait();
                    let got = rebuilds
                        .view_at(Revision::new(revision), || {
                            runs.fetch_add(1, Ordering::SeqCst);
                            if running.fetch_add(1, Ordering::SeqCst) > 0 {
                                overlapped.fetch_add(1, Ordering::SeqCst);
                            }
                            std::thread::sleep(Duration::from_millis(50));
                            running.fetch_sub(1, Ordering::SeqCst);
                            Ok(view(revision))
                        })
                        .expect("the rebuild succeeds");
                    assert_eq!(got.revision.get(), revision);
                });
            }
        });
        assert_eq!(overlapped.load(Ordering::SeqCst), 0, "rebuilds overlapped");
        // Callers that arrive after a rebuild finished start another: at most a few per
        // revision, never one per caller.
        let runs = runs.load(Ordering::SeqCst);
        assert!(
            (2..callers).contains(&runs),
            "{runs} rebuilds for 2 revisions"
        );
        assert_eq!(rebuilds.in_flight(), 0);
    }

    #[test]
    fn a_failed_rebuild_is_retried_by_each_waiter_and_leaves_nothing_behind() {
        let rebuilds = Rebuilds::default();
        let failed = rebuilds.view_at(Revision::new(3), || Err(Error::corrupted("here", "why")));
        assert!(matches!(failed, Err(Error::Corrupted { .. })));
        assert_eq!(rebuilds.in_flight(), 0);
        let retried = rebuilds.view_at(Revision::new(3), || Ok(view(3)));
        assert_eq!(retried.expect("a new rebuild").revision.get(), 3);
    }
}
