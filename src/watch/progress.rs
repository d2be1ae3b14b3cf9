//! When a watcher with nothing to deliver says how current it is.

use std::time::{Duration, Instant};

/// A watcher's progress notifications: on request, and after `interval` without any
/// notification (a watcher that just received changes needs none, as in etcd).
#[derive(Debug)]
pub(super) struct Progress {
    interval: Option<Duration>,
    last: Instant,
    requested: bool,
}

impl Progress {
    pub(super) fn new(interval: Option<Duration>) -> Self {
        Progress {
            interval,
            last: Instant::now(),
            requested: false,
        }
    }

    pub(super) fn request(&mut self) {
        self.requested = true;
    }

    /// Whether an idle watcher owes a progress notification now. Reads the clock only for a
    /// watch with an interval: an idle poll of any other watch stays a few loads.
    pub(super) fn due(&self) -> bool {
        self.requested
            || self
                .deadline()
                .is_some_and(|deadline| Instant::now() >= deadline)
    }

    /// When the next interval notification falls due, if any is asked for.
    pub(super) fn deadline(&self) -> Option<Instant> {
        self.interval.map(|interval| self.last + interval)
    }

    /// Records that changes were delivered: the interval, if any, starts again.
    pub(super) fn changes_sent(&mut self) {
        if self.interval.is_some() {
            self.last = Instant::now();
        }
    }

    /// Records that a progress notification was delivered, which answers any request.
    pub(super) fn progress_sent(&mut self, now: Instant) {
        self.last = now;
        self.requested = false;
    }
}
