//! Running one piece of work on several threads at once, as concurrent clients do.

use std::thread;

use super::engine::Error;

/// Runs `work(0)`, ..., `work(threads - 1)` on as many scoped threads at once (one at least);
/// returns their outputs in that order, or the first error. A panic in one is resumed here.
pub(super) fn on_threads<T: Send>(
    threads: usize,
    work: impl Fn(usize) -> Result<T, Error> + Sync,
) -> Result<Vec<T>, Error> {
    thread::scope(|scope| {
        let work = &work;
        let handles: Vec<_> = (0..threads.max(1))
            .map(|number| scope.spawn(move || work(number)))
            .collect();
        handles
            .into_iter()
            .map(|handle| {
                handle
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}
