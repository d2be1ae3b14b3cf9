//! The workload: the generated data, and the figures measured on any [`Engine`] with it.
//!
//! The data is a [`Collection`] of Kubernetes-like keys, loaded in the order of its [`Shape`]
//! and churned, generated once for every engine alike. Every figure checks what it measures
//! against the live keys the generator says are there: a chunk must hold `limit` items and
//! report exactly the items after it, a full list must return every live key. A store that
//! answered wrongly would otherwise look fast.

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::engine::{Engine, Error, Lister};
use super::parallel::on_threads;
use super::report::{
    Compaction, Contended, DepthPoint, EngineReport, FilteredChunk, PagedList, Positions,
    SizeFigures, Writes,
};
use super::stats::{self, Budget, Latency, Throughput};
use crate::load::{self, Change, Collection, Shape};

/// The prefix of the listed collection.
pub(super) const PREFIX: &str = load::COLLECTION_PREFIX;
/// Where the write figures write, outside the listed collection.
pub(super) const WRITES_PREFIX: &str = "writes/";
/// The label that selected items carry in revkv, which a selector `bench=match` matches.
pub(super) const LABEL: (&str, &str) = ("bench", "match");
/// What selected items' values start with: peers keep no labels, so, as in a Kubernetes object,
/// the client finds them in the value. Generated values are lower-case letters, so no other
/// value starts with it.
pub(super) const MATCH_MARKER: &[u8] = b"match:";
/// The version of the values the compaction figure rewrites, after the churn's.
const REWRITE_VERSION: u64 = load::CHURN_VERSION + 1;

/// What to measure, on every engine alike.
#[derive(Clone, Debug, Serialize)]
pub(super) struct Workload {
    /// The shapes of the collection, one run of every figure each.
    pub(super) shapes: Vec<Shape>,
    /// Collection sizes (keys written, before the churn deletes some), ascending; the largest
    /// one also gets the depth sweep, the filtered chunk, the full lists, the chunks beside a
    /// writer and the compaction.
    pub(super) sizes: Vec<u64>,
    /// The length of the values, one run of every figure each.
    pub(super) value_sizes: Vec<usize>,
    /// The limit of the measured chunks.
    pub(super) limit: usize,
    /// The page sizes of the full paged lists.
    pub(super) list_limits: Vec<usize>,
    /// The fraction of items the filtered chunk's selector matches.
    pub(super) selectivity: f64,
    /// Concurrent durable writers.
    pub(super) writers: usize,
    /// Changes per transaction, for loading and for the batched writes.
    pub(super) batch: usize,
    /// Live keys rewritten before the compaction, making as many records garbage.
    pub(super) overwrite: u64,
    /// Cursor depths sampled at the largest size.
    pub(super) depths: usize,
    /// sled's page cache for revkv; `None` for the store's default.
    pub(super) cache_bytes: Option<u64>,
    pub(super) budget: Budget,
}

/// One generated key and value.
pub(super) struct Item {
    pub(super) key: String,
    pub(super) value: Vec<u8>,
    /// Whether the filtered chunk's selector matches it.
    pub(super) selected: bool,
}

/// One change of a transaction.
pub(super) enum Write {
    Put(Item),
    Delete(String),
}

impl Workload {
    /// One object in `stride` of each namespace is selected.
    fn stride(&self) -> u64 {
        (1.0 / self.selectivity).round().max(1.0) as u64
    }

    /// The collections of the runs: every shape with every value size, shape by shape.
    pub(super) fn collections(&self) -> Vec<Collection> {
        Collection::each(&self.shapes, &self.value_sizes)
    }
}

/// The collection of one run on one engine, and what of it is loaded.
struct Data<'a> {
    workload: &'a Workload,
    collection: Collection,
    /// Keys written so far: the collection's size.
    keys: u64,
    /// The live ones, in key order.
    live: Vec<u64>,
}

impl Data<'_> {
    /// Item `index` under `prefix`, outside the listed collection, with a value as long as the
    /// collection's; never selected.
    fn outside(&self, prefix: &str, index: u64) -> Item {
        Item {
            key: load::key(prefix, index),
            value: load::value(index, self.collection.value_size),
            selected: false,
        }
    }

    /// Item `index` of the collection at `version`.
    fn item(&self, index: u64, version: u64) -> Item {
        let selected = Collection::selected(index, self.workload.stride());
        let mut value = self.collection.value(index, version);
        if selected {
            let marked = MATCH_MARKER.len().min(value.len());
            value[..marked].copy_from_slice(&MATCH_MARKER[..marked]);
        }
        Item {
            key: Collection::key(index),
            value,
            selected,
        }
    }

    fn write(&self, change: Change) -> Write {
        match change {
            Change::Put { index, version } => Write::Put(self.item(index, version)),
            Change::Delete { index } => Write::Delete(Collection::key(index)),
        }
    }

    /// What a chunk figure checks its chunks against.
    fn listing(&self) -> Listing<'_> {
        Listing {
            limit: self.workload.limit,
            budget: self.workload.budget,
            live: &self.live,
        }
    }

    /// How many items of the list the selector matches.
    fn matches(&self) -> u64 {
        let stride = self.workload.stride();
        self.live
            .iter()
            .filter(|&&index| Collection::selected(index, stride))
            .count() as u64
    }
}

/// A list whose chunks a figure measures: the live keys it holds, in key order, and how
/// each figure samples it.
pub(super) struct Listing<'a> {
    /// The limit of the measured chunks.
    pub(super) limit: usize,
    pub(super) budget: Budget,
    pub(super) live: &'a [u64],
}

impl Listing<'_> {
    /// Items in a full list.
    pub(super) fn live(&self) -> u64 {
        self.live.len() as u64
    }

    /// The key of the item just before `position` in the list, which a cursor continues after.
    pub(super) fn key_before(&self, position: u64) -> Option<String> {
        let before = usize::try_from(position.checked_sub(1)?).ok()?;
        self.live.get(before).map(|&index| Collection::key(index))
    }

    /// Fails unless a chunk at `position` of the list, asked for `limit` items, is full and
    /// counts exactly the items after it.
    pub(super) fn check_chunk(
        &self,
        engine: &'static str,
        limit: usize,
        position: u64,
        items: usize,
        remaining: u64,
    ) -> Result<(), Error> {
        let live = self.live();
        let after = live.saturating_sub(position);
        let expected_items = limit.min(usize::try_from(after).unwrap_or(usize::MAX));
        let expected_remaining = after - expected_items as u64;
        if items == expected_items && remaining == expected_remaining {
            return Ok(());
        }
        Err(Error::Wrong {
            engine,
            message: format!(
                "the chunk at {position} of {live} live keys held {items} items with \
                 {remaining} remaining, not {expected_items} with {expected_remaining}"
            ),
        })
    }
}

/// Measures every figure on `engine` with `collection`, at the workload's sizes up to
/// `max_keys`.
pub(super) fn run<E: Engine>(
    engine: &mut E,
    workload: &Workload,
    collection: Collection,
    max_keys: u64,
) -> Result<EngineReport, Error> {
    let sizes: Vec<u64> = workload
        .sizes
        .iter()
        .copied()
        .filter(|&keys| keys <= max_keys)
        .collect();
    let Some(&largest) = sizes.last() else {
        return Err(Error::failed(
            engine.name(),
            format!("no collection size is within its limit of {max_keys} keys"),
        ));
    };
    let mut data = Data {
        workload,
        collection,
        keys: 0,
        live: Vec::new(),
    };
    let limit = workload.limit as u64;
    let mut size_figures = Vec::new();
    for &keys in &sizes {
        grow(engine, &mut data, keys)?;
        let live = data.listing().live();
        if live < 2 * limit {
            return Err(Error::failed(
                engine.name(),
                format!("{keys} keys left {live} live ones, fewer than two chunks"),
            ));
        }
        let open = engine.reopen(live)?;
        let settle_seconds = engine.settle()?;
        let positions = [0, live / 2, live - limit];
        let mut chunks = Vec::new();
        let mut counts = Vec::new();
        for position in positions {
            chunks.push(chunk_latency(engine, &data.listing(), position)?);
            counts.push(count_latency(engine, &data, position)?);
        }
        let count_only = match counts[..] {
            [Some(first), Some(middle), Some(last)] => Some(Positions {
                first,
                middle,
                last,
            }),
            _ => None,
        };
        let [first, middle, last] = chunks[..] else {
            unreachable!("three positions")
        };
        size_figures.push(SizeFigures {
            keys,
            live,
            chunk: Positions {
                first,
                middle,
                last,
            },
            count_only,
            open,
            settle_seconds,
        });
    }
    let live = data.listing().live();
    let deepest = live - limit;
    let steps = workload.depths.max(2) as u64 - 1;
    let depth = (0..=steps)
        .map(|step| {
            let depth = deepest * step / steps;
            let latency = chunk_latency(engine, &data.listing(), depth)?;
            Ok(DepthPoint { depth, latency })
        })
        .collect::<Result<_, Error>>()?;
    let filtered = filtered_chunk(engine, &data)?;
    let paged_lists = workload
        .list_limits
        .iter()
        .map(|&limit| paged_list(engine, &data, limit))
        .collect::<Result<_, Error>>()?;
    let contended = [("first", 0), ("middle", live / 2)]
        .into_iter()
        .map(|(name, position)| contended_chunk(engine, &data, name, position))
        .collect::<Result<_, Error>>()?;
    Ok(EngineReport {
        engine: engine.name(),
        version: engine.version(),
        sizes: size_figures,
        depth_keys: largest,
        depth_live: live,
        depth,
        filtered,
        paged_lists,
        contended,
        writes: writes(engine, &data)?,
        compaction: compaction(engine, &data)?,
    })
}

/// Grows the loaded collection to `keys`: its new keys in the shape's order, then their churn.
fn grow<E: Engine>(engine: &E, data: &mut Data, keys: u64) -> Result<(), Error> {
    let [puts, churn] = data.collection.growth(data.keys, keys);
    apply(engine, data.workload.batch, &puts, "loading", |change| {
        data.write(change)
    })?;
    apply(engine, data.workload.batch, &churn, "churning", |change| {
        data.write(change)
    })?;
    data.keys = keys;
    data.live = data.collection.live_in_key_order(keys);
    Ok(())
}

/// Makes `changes` in their order, as `write` makes each, in transactions of `batch` changes, from the
/// engine's preferred number of concurrent writers: each takes the next batch of the sequence,
/// so batches commit in order but for the few in flight at once.
pub(super) fn apply<E: Engine>(
    engine: &E,
    batch: usize,
    changes: &[Change],
    verb: &str,
    write: impl Fn(Change) -> Write + Sync,
) -> Result<(), Error> {
    if changes.is_empty() {
        return Ok(());
    }
    let progress = stats::bar(changes.len() as u64, format!("{}: {verb}", engine.name()));
    let next = AtomicUsize::new(0);
    let stream = || -> Result<(), Error> {
        loop {
            let start = next.fetch_add(batch, Ordering::Relaxed);
            let Some(taken) = changes.get(start..changes.len().min(start + batch)) else {
                return Ok(());
            };
            let writes: Vec<Write> = taken.iter().map(|&change| write(change)).collect();
            engine.write(&writes)?;
            progress.inc(taken.len() as u64);
        }
    };
    on_threads(engine.load_streams(), |_| stream())?;
    progress.finish_and_clear();
    Ok(())
}

/// A cursor `position` items into the list; `None` for a new list.
fn cursor_at<L: Lister>(
    lister: &L,
    listing: &Listing,
    position: u64,
) -> Result<Option<L::Cursor>, Error> {
    match position {
        0 => Ok(None),
        _ => lister
            .seek(position, listing.key_before(position).as_deref())
            .map(Some),
    }
}

/// The latency of the chunk `position` items into the list. The first chunk starts a new list
/// every time, as a client's first request does; a later one continues the same list, pinned
/// at the revision it started at.
pub(super) fn chunk_latency<L: Lister>(
    lister: &L,
    listing: &Listing,
    position: u64,
) -> Result<Latency, Error> {
    let cursor = cursor_at(lister, listing, position)?;
    let durations = chunk_durations(lister, listing, position, &cursor, listing.budget)?;
    Ok(Latency::of(durations))
}

/// Times the chunk at `cursor`, `position` items into the list, for `budget`.
fn chunk_durations<L: Lister>(
    lister: &L,
    listing: &Listing,
    position: u64,
    cursor: &Option<L::Cursor>,
    budget: Budget,
) -> Result<Vec<Duration>, Error> {
    let limit = listing.limit;
    let progress = stats::spinner(format!(
        "{}: chunk at {position} of {} keys",
        lister.name(),
        listing.live()
    ));
    let (durations, _) = stats::sample(budget, &progress, || {
        let cursor = cursor.clone().unwrap_or_else(|| lister.first());
        let chunk = lister.chunk(&cursor, limit)?;
        listing.check_chunk(lister.name(), limit, position, chunk.items, chunk.remaining)?;
        Ok(1)
    })?;
    progress.finish_and_clear();
    Ok(durations)
}

/// The latency of the count alone of the items from `position` on, where the engine asks for
/// one (etcd's `count_only`); `None` where it has no such request.
fn count_latency<E: Engine>(
    engine: &E,
    data: &Data,
    position: u64,
) -> Result<Option<Latency>, Error> {
    // Asked at the start first: seeking costs more than learning there is no such request.
    if engine.count(&engine.first())?.is_none() {
        return Ok(None);
    }
    let cursor = cursor_at(engine, &data.listing(), position)?.unwrap_or_else(|| engine.first());
    let expected = data.listing().live() - position;
    let progress = stats::spinner(format!(
        "{}: count only at {position} of {} keys",
        engine.name(),
        data.listing().live()
    ));
    let (durations, _) = stats::sample(data.workload.budget, &progress, || {
        match engine.count(&cursor)? {
            Some(count) if count == expected => Ok(1),
            count => Err(Error::Wrong {
                engine: engine.name(),
                message: format!(
                    "counted {count:?} items from {position} of {} live keys, not {expected}",
                    data.listing().live()
                ),
            }),
        }
    })?;
    progress.finish_and_clear();
    Ok(Some(Latency::of(durations)))
}

/// The first chunk of `limit` items matching the selector.
fn filtered_chunk<E: Engine>(engine: &E, data: &Data) -> Result<FilteredChunk, Error> {
    let workload = data.workload;
    let expected = data.matches().min(workload.limit as u64) as usize;
    let progress = stats::spinner(format!(
        "{}: filtered chunk of {} keys",
        engine.name(),
        data.listing().live()
    ));
    let mut examined = None;
    let (durations, _) = stats::sample(workload.budget, &progress, || {
        let filtered = engine.filtered_chunk(&engine.first(), workload.limit)?;
        if filtered.matched < expected {
            return Err(Error::Wrong {
                engine: engine.name(),
                message: format!(
                    "a filtered chunk matched {} items, not {expected}",
                    filtered.matched
                ),
            });
        }
        examined = filtered.examined;
        Ok(1)
    })?;
    progress.finish_and_clear();
    Ok(FilteredChunk {
        keys: data.keys,
        selectivity: workload.selectivity,
        examined,
        latency: Latency::of(durations),
    })
}

/// Lists every live key in chunks of `limit`, over and over until the time budget is spent (at
/// least once).
fn paged_list<E: Engine>(engine: &E, data: &Data, limit: usize) -> Result<PagedList, Error> {
    Ok(PagedList {
        keys: data.keys,
        limit,
        throughput: whole_lists(engine, &data.listing(), limit, 1)?,
    })
}

/// `clients` threads at once each list every live key in chunks of `limit`, over and over
/// until the time budget is spent (at least once), checking every count on the way: the items
/// of them all per second, and the latency of each chunk.
pub(super) fn whole_lists<L: Lister>(
    lister: &L,
    listing: &Listing,
    limit: usize,
    clients: usize,
) -> Result<Throughput, Error> {
    let live = listing.live();
    let name = lister.name();
    let progress = stats::bar(0, format!("{name}: {clients} × paged lists, limit {limit}"));
    let started = Instant::now();
    let client = || -> Result<(u64, Vec<Duration>), Error> {
        let mut durations = Vec::new();
        let mut items = 0;
        loop {
            progress.inc_length(live);
            let mut cursor = lister.first();
            let mut listed = 0;
            loop {
                let began = Instant::now();
                let chunk = lister.chunk(&cursor, limit)?;
                durations.push(began.elapsed());
                listing.check_chunk(name, limit, listed, chunk.items, chunk.remaining)?;
                listed += chunk.items as u64;
                progress.inc(chunk.items as u64);
                match chunk.next {
                    Some(next) => cursor = next,
                    None => break,
                }
            }
            if listed != live {
                return Err(Error::Wrong {
                    engine: name,
                    message: format!("a full list returned {listed} of {live} live keys"),
                });
            }
            items += listed;
            if started.elapsed() >= listing.budget.time {
                return Ok((items, durations));
            }
        }
    };
    let per_client = on_threads(clients, |_| client())?;
    let elapsed = started.elapsed();
    progress.finish_and_clear();
    let (items, durations): (Vec<u64>, Vec<Vec<Duration>>) = per_client.into_iter().unzip();
    Ok(Throughput::of(
        items.iter().sum(),
        elapsed,
        durations.into_iter().flatten().collect(),
    ))
}

/// In how many rounds the chunks of [`contended_chunk`] are timed.
const CONTENDED_ROUNDS: u32 = 20;

/// How many times the samples of the other figures each kind of [`contended_chunk`] takes, in
/// up to [`CONTENDED_TIME_SCALE`] times their time. Its figures are ratios of two p99s: with
/// 2,000 chunks of 0.25 ms each, the slowest 1% of one kind is 5 ms of it, so a single pause of
/// the machine that long can decide the ratio alone.
const CONTENDED_SAMPLE_SCALE: usize = 10;

/// See [`CONTENDED_SAMPLE_SCALE`].
const CONTENDED_TIME_SCALE: u32 = 2;

/// What runs beside the chunks [`contended_chunk`] times.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Beside {
    Nothing,
    Writer,
    Spinner,
    /// The helpers end.
    Done,
}

impl Beside {
    fn load(phase: &AtomicU8) -> Beside {
        match phase.load(Ordering::Acquire) {
            0 => Beside::Nothing,
            1 => Beside::Writer,
            2 => Beside::Spinner,
            _ => Beside::Done,
        }
    }
}

/// The chunk at `position` quiet, while another thread makes durable single puts outside the
/// listed collection as fast as it can, and beside a thread that only computes. The three
/// alternate in [`CONTENDED_ROUNDS`] rounds, so that the machine's own drift (its neighbours,
/// its clock, its page cache) falls on all three alike.
fn contended_chunk<E: Engine>(
    engine: &E,
    data: &Data,
    name: &'static str,
    position: u64,
) -> Result<Contended, Error> {
    let listing = data.listing();
    let cursor = cursor_at(engine, &listing, position)?;
    let round = Budget {
        samples: (listing.budget.samples * CONTENDED_SAMPLE_SCALE)
            .div_ceil(CONTENDED_ROUNDS as usize),
        time: listing.budget.time * CONTENDED_TIME_SCALE / CONTENDED_ROUNDS,
    };
    let prefix = format!("{WRITES_PREFIX}beside-{name}/");
    let phase = AtomicU8::new(Beside::Nothing as u8);
    let [puts_begun, puts_ended] = [(); 2].map(|()| AtomicUsize::new(0));
    let [mut quiet, mut beside_writer, mut beside_spinner] = [(); 3].map(|()| Vec::new());
    let mut writing = Duration::ZERO;
    let (timed, puts) = thread::scope(|scope| {
        let (phase, puts_begun, puts_ended) = (&phase, &puts_begun, &puts_ended);
        let writer = scope.spawn(|| -> Result<Vec<Duration>, Error> {
            let mut durations = Vec::new();
            for index in 0.. {
                match Beside::load(phase) {
                    Beside::Writer => {
                        let item = data.outside(&prefix, index);
                        puts_begun.fetch_add(1, Ordering::Release);
                        let began = Instant::now();
                        engine.put(&item)?;
                        durations.push(began.elapsed());
                        puts_ended.fetch_add(1, Ordering::Release);
                    }
                    Beside::Done => break,
                    Beside::Nothing | Beside::Spinner => thread::park(),
                }
            }
            Ok(durations)
        });
        let spinner = scope.spawn(|| {
            let mut state = 1u64;
            loop {
                match Beside::load(phase) {
                    Beside::Spinner => {
                        state =
                            std::hint::black_box(state.wrapping_mul(6_364_136_223_846_793_005) + 1);
                    }
                    Beside::Done => break,
                    Beside::Nothing | Beside::Writer => thread::park(),
                }
            }
        });
        let beside = |what: Beside| -> Result<Vec<Duration>, Error> {
            let begun = puts_begun.load(Ordering::Acquire);
            phase.store(what as u8, Ordering::Release);
            writer.thread().unpark();
            spinner.thread().unpark();
            // Timed only once the writer is writing, so that every round has it beside, and,
            // in the other rounds, once its last put is done.
            let settled = || match what {
                Beside::Writer => puts_begun.load(Ordering::Acquire) != begun,
                _ => puts_ended.load(Ordering::Acquire) == puts_begun.load(Ordering::Acquire),
            };
            while !settled() && !writer.is_finished() {
                thread::yield_now();
            }
            chunk_durations(engine, &listing, position, &cursor, round)
        };
        let timed = (0..CONTENDED_ROUNDS).try_for_each(|_| -> Result<(), Error> {
            quiet.extend(beside(Beside::Nothing)?);
            let began = Instant::now();
            beside_writer.extend(beside(Beside::Writer)?);
            writing += began.elapsed();
            beside_spinner.extend(beside(Beside::Spinner)?);
            Ok(())
        });
        phase.store(Beside::Done as u8, Ordering::Release);
        writer.thread().unpark();
        spinner.thread().unpark();
        let puts = writer
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (timed, puts)
    });
    timed?;
    let puts = puts?;
    Ok(Contended {
        keys: data.keys,
        position: name,
        depth: position,
        quiet: Latency::of(quiet),
        beside_writer: Latency::of(beside_writer),
        beside_spinner: Latency::of(beside_spinner),
        puts: Throughput::of(puts.len() as u64, writing, puts),
    })
}

/// Single durable puts, batched transactions, and concurrent durable writers, each on fresh
/// keys outside the listed collection.
fn writes<E: Engine>(engine: &E, data: &Data) -> Result<Writes, Error> {
    let workload = data.workload;
    let name = engine.name();
    let single_prefix = format!("{WRITES_PREFIX}single/");
    let mut next = 0;
    let progress = stats::spinner(format!("{name}: single durable puts"));
    let (durations, count) = stats::sample(workload.budget, &progress, || {
        next += 1;
        engine.put(&data.outside(&single_prefix, next))?;
        Ok(1)
    })?;
    progress.finish_and_clear();
    let single = throughput_of_sequential(count, durations);

    let batch_prefix = format!("{WRITES_PREFIX}batch/");
    let batch = workload.batch as u64;
    let mut next = 0;
    let progress = stats::spinner(format!("{name}: transactions of {batch} puts"));
    let (durations, count) = stats::sample(workload.budget, &progress, || {
        let items: Vec<Write> = (next..next + batch)
            .map(|index| Write::Put(data.outside(&batch_prefix, index)))
            .collect();
        next += batch;
        engine.write(&items)?;
        Ok(batch)
    })?;
    progress.finish_and_clear();
    let batched = throughput_of_sequential(count, durations);

    Ok(Writes {
        single,
        batch: workload.batch,
        batched,
        writers: workload.writers,
        concurrent: concurrent_puts(engine, data)?,
    })
}

/// The rate of operations run one after another: items over the time spent in them, which
/// leaves out the untimed warm-up.
fn throughput_of_sequential(count: u64, durations: Vec<Duration>) -> Throughput {
    let busy = durations.iter().sum();
    Throughput::of(count, busy, durations)
}

/// The workload's writers each put durably, one key at a time, for the time budget.
fn concurrent_puts<E: Engine>(engine: &E, data: &Data) -> Result<Throughput, Error> {
    let workload = data.workload;
    let progress = stats::spinner(format!(
        "{}: {} concurrent durable writers",
        engine.name(),
        workload.writers
    ));
    let started = Instant::now();
    let writer = |number: usize| -> Result<Vec<Duration>, Error> {
        let prefix = format!("{WRITES_PREFIX}writer-{number}/");
        let mut durations = Vec::new();
        for index in 0.. {
            if started.elapsed() >= workload.budget.time && !durations.is_empty() {
                break;
            }
            let item = data.outside(&prefix, index);
            let began = Instant::now();
            engine.put(&item)?;
            durations.push(began.elapsed());
            progress.inc(1);
        }
        Ok(durations)
    };
    let per_writer = on_threads(workload.writers, writer)?;
    let elapsed = started.elapsed();
    progress.finish_and_clear();
    let durations: Vec<Duration> = per_writer.into_iter().flatten().collect();
    Ok(Throughput::of(durations.len() as u64, elapsed, durations))
}

/// Compacts away the churn's garbage (untimed), rewrites `overwrite` live keys in the shape's
/// order, making as many records garbage, then compacts them all while timing first chunks, and
/// compares those with first chunks timed just before.
fn compaction<E: Engine>(engine: &E, data: &Data) -> Result<Compaction, Error> {
    let limit = data.workload.limit;
    engine.compact()?;
    let mut rewrite = data.collection.rewrite(data.keys, REWRITE_VERSION);
    rewrite.truncate(usize::try_from(data.workload.overwrite).unwrap_or(usize::MAX));
    let overwrite = rewrite.len() as u64;
    apply(
        engine,
        data.workload.batch,
        &rewrite,
        "rewriting",
        |change| data.write(change),
    )?;
    let idle = chunk_latency(engine, &data.listing(), 0)?;
    let progress = stats::spinner(format!(
        "{}: first chunks while compacting {overwrite} records",
        engine.name()
    ));
    let done = AtomicBool::new(false);
    let (compacted, during) = thread::scope(|scope| {
        let compactor = scope.spawn(|| {
            let started = Instant::now();
            let outcome = engine.compact();
            done.store(true, Ordering::Release);
            outcome.map(|()| started.elapsed())
        });
        let mut durations = Vec::new();
        let mut sampled = || -> Result<(), Error> {
            // At least one sample, even when the compaction is over before the first chunk.
            loop {
                let began = Instant::now();
                let chunk = engine.chunk(&engine.first(), limit)?;
                durations.push(began.elapsed());
                progress.inc(1);
                data.listing().check_chunk(
                    engine.name(),
                    limit,
                    0,
                    chunk.items,
                    chunk.remaining,
                )?;
                if done.load(Ordering::Acquire) {
                    return Ok(());
                }
            }
        };
        let sampling = sampled();
        let compacted = compactor
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (compacted, sampling.map(|()| durations))
    });
    progress.finish_and_clear();
    let elapsed = compacted?;
    let during = Latency::of(during?);
    Ok(Compaction {
        records: overwrite,
        seconds: elapsed.as_secs_f64(),
        records_per_second: overwrite as f64 / elapsed.as_secs_f64(),
        idle,
        during,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workload(selectivity: f64) -> Workload {
        Workload {
            shapes: vec![Shape::Interleaved],
            sizes: vec![10_000],
            value_sizes: vec![16],
            limit: 10,
            list_limits: vec![100],
            selectivity,
            writers: 2,
            batch: 100,
            overwrite: 100,
            depths: 3,
            cache_bytes: None,
            budget: Budget {
                samples: 5,
                time: Duration::ZERO,
            },
        }
    }

    fn data(workload: &Workload, shape: Shape, keys: u64) -> Data<'_> {
        let collection = Collection {
            shape,
            value_size: workload.value_sizes[0],
        };
        Data {
            workload,
            collection,
            keys,
            live: collection.live_in_key_order(keys),
        }
    }

    #[test]
    fn selected_items_are_marked_and_counted_among_the_live_ones() {
        let workload = workload(0.01);
        let data = data(&workload, Shape::Interleaved, 10_000);
        let selected: Vec<u64> = (0..10_000)
            .filter(|&index| data.item(index, 0).selected)
            .collect();
        assert_eq!(selected.len(), 100, "one object of each namespace");
        let live_selected = selected
            .iter()
            .filter(|&&index| data.collection.is_live(index))
            .count() as u64;
        assert_eq!(data.matches(), live_selected);
        let item = data.item(selected[1], 0);
        assert!(item.value.starts_with(MATCH_MARKER));
        assert_eq!(item.value.len(), 16);
        assert!(!data.item(100, 0).value.starts_with(MATCH_MARKER));
        let outside = data.outside(WRITES_PREFIX, 0);
        assert!(!outside.selected);
        assert_eq!(outside.value.len(), 16);
    }

    #[test]
    fn every_shape_runs_with_every_value_size_shape_by_shape() {
        let workload = Workload {
            shapes: vec![Shape::Random, Shape::Interleaved],
            value_sizes: vec![256, 4096],
            ..workload(0.01)
        };
        let runs: Vec<(Shape, usize)> = workload
            .collections()
            .into_iter()
            .map(|collection| (collection.shape, collection.value_size))
            .collect();
        assert_eq!(
            runs,
            [
                (Shape::Random, 256),
                (Shape::Random, 4096),
                (Shape::Interleaved, 256),
                (Shape::Interleaved, 4096)
            ]
        );
    }

    #[test]
    fn a_rewrite_changes_the_value_but_not_the_key() {
        let workload = workload(0.5);
        let data = data(&workload, Shape::Random, 1000);
        let (old, new) = (data.item(7, 0), data.item(7, REWRITE_VERSION));
        assert_eq!(old.key, new.key);
        assert_ne!(old.value, new.value);
    }

    #[test]
    fn a_contended_chunk_is_timed_in_every_round_of_each_kind_beside_a_writing_writer() {
        let workload = workload(0.01);
        let engine = crate::embedded::Revkv::create(&workload).expect("a store");
        let mut data = data(&workload, Shape::Interleaved, 0);
        grow(&engine, &mut data, 2_000).expect("loaded");
        let contended =
            contended_chunk(&engine, &data, "middle", data.listing().live() / 2).expect("measured");
        let rounds = CONTENDED_ROUNDS as usize;
        for latency in [
            contended.quiet,
            contended.beside_writer,
            contended.beside_spinner,
        ] {
            // The budget has no time, so each round takes the fewest samples a figure may.
            assert_eq!(latency.samples, rounds * stats::MIN_SAMPLES);
        }
        assert!(
            contended.puts.count >= rounds as u64,
            "a put in every round"
        );
        assert_eq!(contended.puts.latency.samples as u64, contended.puts.count);
    }

    #[test]
    fn chunks_are_checked_against_the_live_keys() {
        let workload = workload(0.01);
        let data = data(&workload, Shape::Interleaved, 10_000);
        let live = data.listing().live();
        assert!(live < 10_000, "the churn deletes some keys");
        assert!(data
            .listing()
            .check_chunk("test", 10, 0, 10, live - 10)
            .is_ok());
        assert!(data
            .listing()
            .check_chunk("test", 10, 0, 10, 10_000 - 10)
            .is_err());
        assert!(data
            .listing()
            .check_chunk("test", 10, live - 4, 4, 0)
            .is_ok());
        assert_eq!(data.listing().key_before(0), None);
        let keys: Vec<String> = (1..=live)
            .map(|position| data.listing().key_before(position).expect("a live key"))
            .collect();
        assert!(keys.windows(2).all(|pair| pair[0] < pair[1]));
        assert_eq!(data.listing().key_before(live + 1), None);
    }
}
