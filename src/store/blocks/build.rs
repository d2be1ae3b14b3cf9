//! The builder thread: rebuilds the ranges of blocks that readers asked for.

use std::collections::HashSet;
use std::ops::Bound;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sled::IVec;

use super::{Work, BLOCK_BYTES, MAX_COPY_LEN};
use crate::encoding::{self, BlockEntry, BlockLayout, Latest, Location};
use crate::error::SledResultExt;
use crate::store::Shared;
use crate::{Error, Result, Revision};

/// After this much work the builder pauses for as long, using at most half a core.
const PACE_SLICE: Duration = Duration::from_millis(2);

/// How long the builder waits after a failure before it takes the next request.
pub(super) const RETRY_PAUSE: Duration = Duration::from_secs(1);

/// The builder thread; dropping it stops the thread and joins it.
pub(crate) struct Builder {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// One request taken from [`Work`].
enum Job {
    BelowLowest,
    Stale { low: Vec<u8>, revision: Revision },
}

impl Builder {
    pub(crate) fn start(shared: &Arc<Shared>) -> Builder {
        let thread = {
            let shared = Arc::clone(shared);
            std::thread::Builder::new()
                .name("revkv-blocks".into())
                .spawn(move || run(&shared))
                .expect("spawning the block builder thread")
        };
        Builder {
            shared: Arc::clone(shared),
            thread: Some(thread),
        }
    }
}

impl Drop for Builder {
    fn drop(&mut self) {
        let requests = &self.shared.blocks;
        requests.work.lock().stopped = true;
        requests.arrived.notify_all();
        requests.idle.notify_all();
        if let Some(thread) = self.thread.take() {
            // The thread never holds a Builder, so this never joins the current thread.
            let _ = thread.join();
        }
    }
}

fn run(shared: &Shared) {
    let requests = &shared.blocks;
    let stopped = || requests.work.lock().stopped;
    loop {
        let job = {
            let mut work = requests.work.lock();
            loop {
                if work.stopped {
                    return;
                }
                if let Some(job) = take(&mut work) {
                    work.building = true;
                    break job;
                }
                requests.idle.notify_all();
                requests.arrived.wait(&mut work);
            }
        };
        let outcome = perform(shared, job, &stopped);
        let mut work = requests.work.lock();
        work.building = false;
        match outcome {
            Ok(()) => work.failure = None,
            Err(error) => {
                work.failure = Some(error.to_string());
                requests.idle.notify_all();
                // Requests go on arriving meanwhile; only a stop ends the pause early.
                let resume = Instant::now() + RETRY_PAUSE;
                while !work.stopped && Instant::now() < resume {
                    requests.arrived.wait_until(&mut work, resume);
                }
            }
        }
    }
}

fn take(work: &mut Work) -> Option<Job> {
    if std::mem::take(&mut work.below_lowest) {
        return Some(Job::BelowLowest);
    }
    let (low, revision) = work.stale.pop_first()?;
    Some(Job::Stale { low, revision })
}

fn perform(shared: &Shared, job: Job, stopped: &dyn Fn() -> bool) -> Result<()> {
    let data = &shared.data;
    match job {
        Job::BelowLowest => {
            let lowest = block_after(data, None)?;
            if lowest.as_deref() == Some(&[][..]) {
                return Ok(());
            }
            rebuild(shared, &[], lowest.as_deref(), stopped)
        }
        Job::Stale { low, revision } => {
            let Some(bytes) = data.get(encoding::block_key(&low)).storage()? else {
                return Ok(()); // Replaced since the reader saw it.
            };
            let mut layout = BlockLayout::default();
            let decoded = encoding::decode_block(&low, &bytes, &mut layout);
            if decoded.is_ok() && layout.built_at >= revision {
                return Ok(()); // Built again since; what the reader missed changed later.
            }
            let mut high = block_after(data, Some(&low))?;
            // A block left small by deletes takes in its successor, if that is small too.
            if let Some(next) = high.as_deref() {
                let next_len = data
                    .get(encoding::block_key(next))
                    .storage()?
                    .map_or(0, |v| v.len());
                if bytes.len() + next_len < BLOCK_BYTES / 2 {
                    high = block_after(data, Some(next))?;
                }
            }
            rebuild(shared, &low, high.as_deref(), stopped)
        }
    }
}

/// The low key of the first block after the one at `after` (the lowest block, when `None`).
fn block_after(data: &sled::Tree, after: Option<&[u8]>) -> Result<Option<Vec<u8>>> {
    let start = match after {
        None => Bound::Included(encoding::block_prefix().to_vec()),
        Some(low) => Bound::Excluded(encoding::block_key(low)),
    };
    let found = data
        .range::<Vec<u8>, _>((start, Bound::Unbounded))
        .next()
        .transpose()
        .storage()?;
    Ok(found
        .filter(|(key, _)| key[0] == encoding::block_prefix()[0])
        .map(|(key, _)| key[1..].to_vec()))
}

/// Builds the blocks of the user keys from `low` up to `high` (excluded; the end of the key
/// space when `None`) from their latest pointers, top down, then removes the blocks of that
/// range that the new ones replaced.
fn rebuild(
    shared: &Shared,
    low: &[u8],
    high: Option<&[u8]>,
    stopped: &dyn Fn() -> bool,
) -> Result<()> {
    if shared.poisoned.load(std::sync::atomic::Ordering::Acquire) {
        return Err(Error::Poisoned);
    }
    let data = &shared.data;
    // Only published revisions: one a reader never saw could still be rolled back, and its
    // location given to another record (`DESIGN.md` §3.2).
    let built_at = shared.index.visible().revision;
    let old_blocks = data
        .range(bounds(encoding::block_key, low, high))
        .map(|item| item.map(|(key, _)| key))
        .collect::<std::result::Result<Vec<IVec>, _>>()
        .storage()?;
    let mut pending = Pending::default();
    let mut written = HashSet::new();
    let mut upper = high.map(<[u8]>::to_vec);
    let mut paced = Instant::now();
    for item in data.range(bounds(Latest::sled_key, low, high)).rev() {
        // Checked per pointer, not per block: a range may hold long runs of tombstones.
        if paced.elapsed() >= PACE_SLICE {
            if stopped() {
                return Ok(());
            }
            std::thread::sleep(paced.elapsed());
            paced = Instant::now();
        }
        let (sled_key, bytes) = item.storage()?;
        let Ok((latest, Some(copy))) = Latest::decode_with_record(&sled_key[1..], &bytes) else {
            continue; // A tombstone, or a damaged pointer: its key is read by location.
        };
        if latest.location.revision > built_at {
            continue;
        }
        if pending.bytes >= BLOCK_BYTES {
            let block_low = pending.write(data, built_at, upper.as_deref())?;
            written.insert(block_low.clone());
            upper = Some(block_low);
        }
        let copy_at = bytes.len() - copy.len() + 4;
        pending.push(sled_key, bytes, latest.location, copy_at);
    }
    pending.low = Some(low.to_vec());
    written.insert(pending.write(data, built_at, upper.as_deref())?);
    for old in old_blocks {
        if !written.contains(&old[1..]) {
            data.remove(old).storage()?;
        }
    }
    Ok(())
}

/// The sled-key range of one kind of entry (named by `sled_key`) for user keys from `low` up
/// to `high`, excluded.
fn bounds(
    sled_key: fn(&[u8]) -> Vec<u8>,
    low: &[u8],
    high: Option<&[u8]>,
) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
    let end = match high {
        Some(high) => Bound::Excluded(sled_key(high)),
        None => Bound::Excluded(vec![sled_key(&[])[0] + 1]),
    };
    (Bound::Included(sled_key(low)), end)
}

/// The entries of the next block down, collected in descending key order: latest pointers as
/// sled holds them, with where the payload of each one's record copy starts.
#[derive(Default)]
struct Pending {
    pointers: Vec<(IVec, IVec, Location, usize)>,
    bytes: usize,
    /// The block's low key when it is the last of its range; otherwise its lowest key.
    low: Option<Vec<u8>>,
}

impl Pending {
    fn push(&mut self, sled_key: IVec, bytes: IVec, location: Location, copy_at: usize) {
        self.bytes += sled_key.len() + kept(&bytes[copy_at..]).map_or(0, <[u8]>::len) + 18;
        self.pointers.push((sled_key, bytes, location, copy_at));
    }

    /// Writes the block, up to `high`, and returns its low key.
    fn write(
        &mut self,
        data: &sled::Tree,
        built_at: Revision,
        high: Option<&[u8]>,
    ) -> Result<Vec<u8>> {
        let low = match self.low.take() {
            Some(low) => low,
            None => self
                .pointers
                .last()
                .map(|(key, ..)| key[1..].to_vec())
                .unwrap_or_default(),
        };
        let entries: Vec<BlockEntry<'_>> = (self.pointers.iter().rev())
            .map(|(sled_key, bytes, location, copy_at)| {
                let copy = &bytes[*copy_at..];
                BlockEntry {
                    key: &sled_key[1..],
                    location: *location,
                    copy: kept(copy),
                }
            })
            .collect();
        let block = encoding::encode_block(built_at, high, &entries);
        data.insert(encoding::block_key(&low), block).storage()?;
        self.pointers.clear();
        self.bytes = 0;
        Ok(low)
    }
}

/// The record copy a block keeps: `None` when it is too long to keep.
fn kept(copy: &[u8]) -> Option<&[u8]> {
    (copy.len() <= MAX_COPY_LEN).then_some(copy)
}
