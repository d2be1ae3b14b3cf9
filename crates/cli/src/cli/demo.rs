//! `revkv demo`: lists 100,000 keys in chunks while another thread keeps writing to them, then
//! checks the chunks against a model built without the store's help: the generated initial
//! load plus the writer's own log of what it wrote at which revision. Then a client lists and
//! watches from the next revision while the writer goes on, and must converge on the model of
//! the writer's last revision.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use revkv::{
    Db, Durability, EventKind, ListOptions, ListPager, Notification, Revision, WatchOptions,
};

use super::Failure;
use revkv_bench::load::{self, Rng};
use revkv_bench::percentile::nearest_rank;

const PREFIX: &str = "demo/";
const KEYS: u64 = 100_000;
const VALUE_SIZE: usize = 256;
const LIMIT: usize = 500;

/// One acknowledged write of the writer thread.
struct Change {
    revision: Revision,
    key: Vec<u8>,
    /// `None` for a delete.
    value: Option<Vec<u8>>,
    kind: Kind,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Update,
    Delete,
    Recreate,
    Insert,
}

/// One chunk as the list saw it.
struct Chunk {
    latency: Duration,
    last_key: Vec<u8>,
    remaining: Option<u64>,
    /// The store's revision right after the chunk returned: tells which writes committed while
    /// the cursor stood where.
    revision_after: Revision,
}

/// A whole chunked list.
struct Listing {
    revision: Revision,
    items: Vec<(Vec<u8>, Vec<u8>)>,
    chunks: Vec<Chunk>,
    elapsed: Duration,
}

pub(super) fn run() -> Result<(), Failure> {
    let db = Db::options().durability(Durability::Buffered).temporary()?;
    let started = Instant::now();
    load::load(&db, PREFIX, KEYS, VALUE_SIZE)?;
    let load_time = started.elapsed();
    let (listing, changes) = list_while_writing(&db)?;
    let verdict = Verdict::of(&listing, &changes);
    report(load_time, &listing, &changes, &verdict)?;
    if let Some(difference) = verdict.difference {
        return Err(Failure::SnapshotMismatch(difference));
    }
    let (follower, more) = follow_while_writing(&db)?;
    let all: Vec<Change> = changes.into_iter().chain(more).collect();
    let head = all
        .last()
        .map_or(follower.revision, |change| change.revision);
    let expected = expected_at(head, &all);
    let converged = follower.revision == head && follower.state == expected;
    writeln!(
        io::stdout().lock(),
        "\nlist-then-watch: listed {} items at revision {}, then applied {} events of {} \
         revisions while the writer went on; state at revision {} equals the writer's model: {}",
        follower.listed,
        follower.listed_at,
        follower.events,
        follower.revisions,
        follower.revision,
        if converged { "yes" } else { "NO" },
    )?;
    if converged {
        Ok(())
    } else {
        Err(Failure::SnapshotMismatch(format!(
            "the watching client stopped at revision {} with {} keys; the writer's model has {} at {head}",
            follower.revision,
            follower.state.len(),
            expected.len()
        )))
    }
}

/// A client that listed, then applied a watch's events.
struct Follower {
    listed: usize,
    listed_at: Revision,
    events: usize,
    revisions: usize,
    revision: Revision,
    state: BTreeMap<Vec<u8>, Vec<u8>>,
}

/// Lists the prefix through a pager and watches it from the next revision while another
/// thread writes for a second, until the writer has stopped and the watch has reached its last
/// revision. Returns the client and the writer's log.
fn follow_while_writing(db: &Db) -> revkv::Result<(Follower, Vec<Change>)> {
    let (stop, finished) = (AtomicBool::new(false), AtomicBool::new(false));
    thread::scope(|scope| {
        let writer = scope.spawn(|| write_until(db, &stop));
        let follower = scope.spawn(|| Follower::list_then_watch(db, &finished));
        thread::sleep(Duration::from_secs(1));
        stop.store(true, Ordering::Relaxed);
        let changes = writer.join();
        // Set even when the writer failed, or the follower would wait forever.
        finished.store(true, Ordering::Release);
        let follower = follower.join();
        let follower = follower.unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        let changes = changes.unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        Ok((follower?, changes?))
    })
}

impl Follower {
    /// Lists, then applies the watch's events until `finished` is set and the watch has
    /// reached the store's head.
    fn list_then_watch(db: &Db, finished: &AtomicBool) -> revkv::Result<Follower> {
        let list = ListPager::new(db.clone())
            .page_size(LIMIT)
            .list(&ListOptions::prefix(PREFIX))?;
        let mut follower = Follower {
            listed: list.items.len(),
            listed_at: list.revision,
            events: 0,
            revisions: 0,
            revision: list.revision,
            state: list
                .items
                .into_iter()
                .map(|entry| (entry.key, entry.value))
                .collect(),
        };
        let mut watch = db.watch(WatchOptions::prefix(PREFIX).start(list.revision.next()))?;
        while !(finished.load(Ordering::Acquire) && follower.revision >= db.current_revision()) {
            watch.request_progress();
            match watch.next_timeout(Duration::from_millis(100))? {
                Some(Notification::Changes { revision, events }) => {
                    follower.revisions += 1;
                    follower.events += events.len();
                    for event in events {
                        match (event.kind, event.entry) {
                            (EventKind::Put, Some(entry)) => {
                                follower
                                    .state
                                    .insert(event.key.to_vec(), entry.value.clone());
                            }
                            _ => {
                                follower.state.remove(&*event.key);
                            }
                        }
                    }
                    follower.revision = revision;
                }
                Some(Notification::Progress { revision }) => follower.revision = revision,
                _ => {}
            }
        }
        Ok(follower)
    }
}

/// Lists the prefix on this thread while another one writes to it.
fn list_while_writing(db: &Db) -> revkv::Result<(Listing, Vec<Change>)> {
    let stop = AtomicBool::new(false);
    let (listing, changes) = thread::scope(|scope| {
        let writer = scope.spawn(|| write_until(db, &stop));
        let listing = list_all(db);
        // Stop the writer whether or not the list failed, or the scope would wait forever.
        stop.store(true, Ordering::Relaxed);
        let changes = writer
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (listing, changes)
    });
    Ok((listing?, changes?))
}

/// How the listing compares with the model of the snapshot it claims to be.
struct Verdict {
    /// The first difference between the listed items and the model, or a wrong remaining count.
    difference: Option<String>,
    /// How many chunks reported exactly the number of model keys after them.
    exact_chunks: usize,
}

impl Verdict {
    fn of(listing: &Listing, changes: &[Change]) -> Self {
        let expected = expected_at(listing.revision, changes);
        let exact_chunks = exact_remaining(&listing.chunks, &expected);
        let wrong_chunks = listing.chunks.len() - exact_chunks;
        let difference = first_difference(&listing.items, &expected).or_else(|| {
            (wrong_chunks > 0)
                .then(|| format!("{wrong_chunks} chunks report a wrong remaining count"))
        });
        Verdict {
            difference,
            exact_chunks,
        }
    }
}

fn report(
    load_time: Duration,
    listing: &Listing,
    changes: &[Change],
    verdict: &Verdict,
) -> io::Result<()> {
    let chunks = &listing.chunks;
    let last_chunk = chunks.last().expect("a list has at least one chunk");
    let during: Vec<&Change> = changes
        .iter()
        .filter(|change| {
            change.revision > listing.revision && change.revision <= last_chunk.revision_after
        })
        .collect();
    let behind = during
        .iter()
        .filter(|change| behind_cursor(change, chunks))
        .count();
    let kinds = |kind| during.iter().filter(|change| change.kind == kind).count();
    let remaining_at = |number: usize| {
        let remaining = chunks[number - 1]
            .remaining
            .map_or("unknown".to_owned(), |count| count.to_string());
        format!("chunk {number}: {remaining}")
    };
    let mut latencies: Vec<Duration> = chunks.iter().map(|chunk| chunk.latency).collect();
    latencies.sort_unstable();

    let mut out = io::stdout().lock();
    writeln!(
        out,
        "loaded {KEYS} keys under {PREFIX:?} ({VALUE_SIZE}-byte values) in {}",
        short(load_time)
    )?;
    writeln!(
        out,
        "listed {} items in {} chunks of up to {LIMIT} in {}, all at revision {}",
        listing.items.len(),
        chunks.len(),
        short(listing.elapsed),
        listing.revision,
    )?;
    writeln!(
        out,
        "meanwhile a writer committed {} writes ({} updates, {} deletes, {} re-creates, {} new keys): \
         {behind} behind the list's cursor, {} ahead of it",
        during.len(),
        kinds(Kind::Update),
        kinds(Kind::Delete),
        kinds(Kind::Recreate),
        kinds(Kind::Insert),
        during.len() - behind,
    )?;
    writeln!(
        out,
        "pages equal the snapshot at revision {} rebuilt from the writer's log: {}",
        listing.revision,
        if verdict.difference.is_none() {
            "yes"
        } else {
            "NO"
        },
    )?;
    writeln!(
        out,
        "remaining exact on {} of {} chunks; {}, {}, {}",
        verdict.exact_chunks,
        chunks.len(),
        remaining_at(1),
        remaining_at(chunks.len().div_ceil(2)),
        remaining_at(chunks.len()),
    )?;
    writeln!(
        out,
        "chunk latency: p50 {} · p90 {} · p99 {} · max {}",
        short(nearest_rank(&latencies, 0.50)),
        short(nearest_rank(&latencies, 0.90)),
        short(nearest_rank(&latencies, 0.99)),
        short(nearest_rank(&latencies, 1.0)),
    )?;
    if verdict.difference.is_none() {
        writeln!(
            out,
            "\nEvery chunk read the snapshot pinned by the first one, revision {}: none of the {}\n\
             writes committed while the list ran shows in it, whether behind the cursor or ahead\n\
             of it, and no key was skipped or listed twice. Each chunk's `remaining` is the exact\n\
             number of keys left in that snapshot, read from the index's subtree counts rather\n\
             than by scanning ahead.",
            listing.revision,
            during.len(),
        )?;
    }
    Ok(())
}

/// Writes until `stop` is set: updates, deletes and re-creates of loaded keys, and new keys
/// inserted between them, scattered over the whole prefix so that they land on both sides of
/// the list's cursor. Returns every write with the revision it committed as, in order.
fn write_until(db: &Db, stop: &AtomicBool) -> revkv::Result<Vec<Change>> {
    let mut rng = Rng(7);
    let mut live = vec![true; KEYS as usize];
    let mut deleted = Vec::new();
    let mut changes = Vec::new();
    // Seeds above every loaded key's, so that no write restores a value a stale read could show.
    let mut seed = KEYS;
    while !stop.load(Ordering::Relaxed) {
        let index = rng.below(KEYS);
        let (kind, key) = match rng.below(4) {
            0 if live[index as usize] => (Kind::Update, load::key(PREFIX, index)),
            1 if live[index as usize] => {
                live[index as usize] = false;
                deleted.push(index);
                (Kind::Delete, load::key(PREFIX, index))
            }
            2 => match deleted.pop() {
                Some(index) => {
                    live[index as usize] = true;
                    (Kind::Recreate, load::key(PREFIX, index))
                }
                None => continue,
            },
            3 => (Kind::Insert, format!("{}+{seed}", load::key(PREFIX, index))),
            _ => continue,
        };
        seed += 1;
        let (revision, value) = if kind == Kind::Delete {
            (db.delete(key.as_str())?.0, None)
        } else {
            let value = load::value(seed, VALUE_SIZE);
            (db.put(key.as_str(), value.clone())?, Some(value))
        };
        changes.push(Change {
            revision,
            key: key.into_bytes(),
            value,
            kind,
        });
    }
    Ok(changes)
}

/// Lists the prefix chunk by chunk, timing each chunk.
fn list_all(db: &Db) -> revkv::Result<Listing> {
    let request = ListOptions::prefix(PREFIX).limit(LIMIT);
    let mut options = request.clone();
    let mut revision = None;
    let mut items = Vec::new();
    let mut chunks = Vec::new();
    let started = Instant::now();
    loop {
        let chunk_started = Instant::now();
        let page = db.list(&options)?;
        let latency = chunk_started.elapsed();
        revision.get_or_insert(page.revision);
        chunks.push(Chunk {
            latency,
            last_key: page
                .items
                .last()
                .map(|entry| entry.key.clone())
                .unwrap_or_default(),
            remaining: page.remaining,
            revision_after: db.current_revision(),
        });
        items.extend(page.items.into_iter().map(|entry| (entry.key, entry.value)));
        match page.continue_token {
            Some(token) => options = request.clone().continue_token(token),
            None => break,
        }
    }
    let revision = revision.expect("the loop lists at least one chunk");
    Ok(Listing {
        revision,
        items,
        chunks,
        elapsed: started.elapsed(),
    })
}

/// The prefix's contents at `revision` by the model: the initial load, then the writer's
/// changes up to `revision`.
fn expected_at(revision: Revision, changes: &[Change]) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut state: BTreeMap<_, _> = (0..KEYS)
        .map(|index| {
            (
                load::key(PREFIX, index).into_bytes(),
                load::value(index, VALUE_SIZE),
            )
        })
        .collect();
    for change in changes.iter().filter(|change| change.revision <= revision) {
        match &change.value {
            Some(value) => state.insert(change.key.clone(), value.clone()),
            None => state.remove(&change.key),
        };
    }
    state
}

/// Where the listed items first differ from the model, if they do.
fn first_difference(
    listed: &[(Vec<u8>, Vec<u8>)],
    expected: &BTreeMap<Vec<u8>, Vec<u8>>,
) -> Option<String> {
    let show = |key: &[u8]| String::from_utf8_lossy(key).into_owned();
    let position = listed
        .iter()
        .map(|(key, value)| (key, value))
        .zip(expected)
        .position(|(got, want)| got != want);
    match position {
        Some(index) => {
            let (got, want) = (
                &listed[index].0,
                expected.keys().nth(index).expect("zip reached it"),
            );
            Some(if got == want {
                format!(
                    "item {} ({}) has another value than in the snapshot",
                    index + 1,
                    show(got)
                )
            } else {
                format!(
                    "item {} is {} where the snapshot has {}",
                    index + 1,
                    show(got),
                    show(want)
                )
            })
        }
        None if listed.len() != expected.len() => Some(format!(
            "{} items listed, {} in the snapshot",
            listed.len(),
            expected.len()
        )),
        None => None,
    }
}

/// How many chunks report as remaining exactly the number of model keys after their last key.
fn exact_remaining(chunks: &[Chunk], expected: &BTreeMap<Vec<u8>, Vec<u8>>) -> usize {
    let keys: Vec<&Vec<u8>> = expected.keys().collect();
    chunks
        .iter()
        .filter(|chunk| {
            let after = keys.len() - keys.partition_point(|key| **key <= chunk.last_key);
            chunk.remaining == Some(after as u64)
        })
        .count()
}

/// Whether `change` hit a key the list had already passed when the change committed: one at or
/// before the last key of the chunks finished by then.
fn behind_cursor(change: &Change, chunks: &[Chunk]) -> bool {
    let finished = chunks.partition_point(|chunk| chunk.revision_after < change.revision);
    finished > 0 && change.key <= chunks[finished - 1].last_key
}

/// A duration in the unit that keeps it short.
fn short(duration: Duration) -> String {
    let seconds = duration.as_secs_f64();
    if duration < Duration::from_millis(1) {
        format!("{} µs", duration.as_micros())
    } else if duration < Duration::from_secs(1) {
        format!("{:.1} ms", seconds * 1e3)
    } else {
        format!("{seconds:.2} s")
    }
}
