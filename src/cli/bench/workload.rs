//! The workload: the generated data, and the figures measured on any [`Engine`] with it.
//!
//! Every figure checks what it measures: a chunk must hold `limit` items and report exactly the
//! items after it, a full list must return every key. A store that answered wrongly would
//! otherwise look fast.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::engine::{Engine, Error};
use super::report::{
    Compaction, DepthPoint, EngineReport, FilteredChunk, PagedList, SizeFigures, Writes,
};
use super::stats::{self, Budget, Latency, Throughput};
use crate::cli::load;

/// The prefix of the listed collection.
pub(super) const PREFIX: &str = "bench/";
/// Where the write figures write, outside the listed collection.
pub(super) const WRITES_PREFIX: &str = "writes/";
/// The label that selected items carry in revkv, which a selector `bench=match` matches.
pub(super) const LABEL: (&str, &str) = ("bench", "match");
/// What selected items' values start with: peers keep no labels, so, as in a Kubernetes object,
/// the client finds them in the value. Generated values are lower-case letters, so no other
/// value starts with it.
pub(super) const MATCH_MARKER: &[u8] = b"match:";

/// What to measure, on every engine alike.
#[derive(Clone, Debug, Serialize)]
pub(super) struct Workload {
    /// Collection sizes, ascending; the largest one also gets the depth sweep, the filtered
    /// chunk, the full lists and the compaction.
    pub(super) sizes: Vec<u64>,
    pub(super) value_size: usize,
    /// The limit of the measured chunks.
    pub(super) limit: usize,
    /// The page sizes of the full paged lists.
    pub(super) list_limits: Vec<usize>,
    /// The fraction of items the filtered chunk's selector matches.
    pub(super) selectivity: f64,
    /// Concurrent durable writers.
    pub(super) writers: usize,
    /// Puts per transaction, for loading and for the batched writes.
    pub(super) batch: usize,
    /// Keys rewritten before the compaction, making as many records garbage.
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

impl Workload {
    /// Every `stride`-th item of the collection is selected.
    fn stride(&self) -> u64 {
        (1.0 / self.selectivity).round().max(1.0) as u64
    }

    /// Item `index` under `prefix`; `version` changes the value, for rewrites.
    pub(super) fn item(&self, prefix: &str, index: u64, version: u64) -> Item {
        let selected = prefix == PREFIX && index.is_multiple_of(self.stride());
        let mut value = load::value(index ^ (version << 40), self.value_size);
        if selected {
            let marked = MATCH_MARKER.len().min(value.len());
            value[..marked].copy_from_slice(&MATCH_MARKER[..marked]);
        }
        Item {
            key: load::key(prefix, index),
            value,
            selected,
        }
    }

    /// How many items of a collection of `keys` the selector matches.
    fn matches_in(&self, keys: u64) -> u64 {
        keys.div_ceil(self.stride())
    }
}

/// Measures every figure on `engine`, at the workload's sizes up to `max_keys`.
pub(super) fn run<E: Engine>(
    engine: &mut E,
    workload: &Workload,
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
    let mut size_figures = Vec::new();
    let mut loaded = 0;
    for &keys in &sizes {
        rewrite(engine, workload, loaded..keys, 0)?;
        loaded = keys;
        let open = engine.reopen(keys)?;
        let limit = workload.limit as u64;
        size_figures.push(SizeFigures {
            keys,
            first: chunk_latency(engine, workload, keys, 0)?,
            middle: chunk_latency(engine, workload, keys, keys / 2)?,
            last: chunk_latency(engine, workload, keys, keys - limit)?,
            open,
        });
    }
    let deepest = largest - workload.limit as u64;
    let steps = workload.depths.max(2) as u64 - 1;
    let depth = (0..=steps)
        .map(|step| {
            let depth = deepest * step / steps;
            let latency = chunk_latency(engine, workload, largest, depth)?;
            Ok(DepthPoint { depth, latency })
        })
        .collect::<Result<_, Error>>()?;
    let filtered = filtered_chunk(engine, workload, largest)?;
    let paged_lists = workload
        .list_limits
        .iter()
        .map(|&limit| paged_list(engine, workload, largest, limit))
        .collect::<Result<_, Error>>()?;
    Ok(EngineReport {
        engine: engine.name(),
        version: engine.version(),
        sizes: size_figures,
        depth_keys: largest,
        depth,
        filtered,
        paged_lists,
        writes: writes(engine, workload)?,
        compaction: compaction(engine, workload, largest)?,
    })
}

/// Writes items `range` of the collection at `version`, in transactions of the workload's
/// batch size, from the engine's preferred number of concurrent writers.
fn rewrite<E: Engine>(
    engine: &E,
    workload: &Workload,
    range: std::ops::Range<u64>,
    version: u64,
) -> Result<(), Error> {
    let verb = if version == 0 { "loading" } else { "rewriting" };
    let progress = stats::bar(
        range.end - range.start,
        format!("{}: {verb}", engine.name()),
    );
    let next = AtomicU64::new(range.start);
    let batch = workload.batch as u64;
    let stream = || -> Result<(), Error> {
        loop {
            let start = next.fetch_add(batch, Ordering::Relaxed);
            if start >= range.end {
                return Ok(());
            }
            let end = range.end.min(start + batch);
            let items: Vec<Item> = (start..end)
                .map(|index| workload.item(PREFIX, index, version))
                .collect();
            engine.write(&items)?;
            progress.inc(end - start);
        }
    };
    let streams = engine.load_streams().max(1);
    thread::scope(|scope| {
        let handles: Vec<_> = (0..streams).map(|_| scope.spawn(stream)).collect();
        handles.into_iter().try_for_each(|handle| {
            handle
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    })?;
    progress.finish_and_clear();
    Ok(())
}

/// Fails unless a chunk at `position` of a collection of `keys` is full and counts exactly the
/// items after it.
fn check_chunk(
    engine: &'static str,
    workload: &Workload,
    keys: u64,
    position: u64,
    items: usize,
    remaining: u64,
) -> Result<(), Error> {
    let expected_items = workload.limit.min((keys - position) as usize);
    let expected_remaining = keys - position - expected_items as u64;
    if items == expected_items && remaining == expected_remaining {
        return Ok(());
    }
    Err(Error::Wrong {
        engine,
        message: format!(
            "the chunk at {position} of {keys} keys held {items} items with {remaining} \
             remaining, not {expected_items} with {expected_remaining}"
        ),
    })
}

/// The latency of the chunk `position` items into a collection of `keys`. The first chunk
/// starts a new list every time, as a client's first request does; a later one continues the
/// same list, pinned at the revision it started at.
fn chunk_latency<E: Engine>(
    engine: &E,
    workload: &Workload,
    keys: u64,
    position: u64,
) -> Result<Latency, Error> {
    let cursor = match position {
        0 => None,
        _ => Some(engine.seek(position)?),
    };
    let progress = stats::spinner(format!(
        "{}: chunk at {position} of {keys} keys",
        engine.name()
    ));
    let (durations, _) = stats::sample(workload.budget, &progress, || {
        let cursor = cursor.clone().unwrap_or_else(|| engine.first());
        let chunk = engine.chunk(&cursor, workload.limit)?;
        check_chunk(
            engine.name(),
            workload,
            keys,
            position,
            chunk.items,
            chunk.remaining,
        )?;
        Ok(1)
    })?;
    progress.finish_and_clear();
    Ok(Latency::of(durations))
}

/// The first chunk of `limit` items matching the selector, in a collection of `keys`.
fn filtered_chunk<E: Engine>(
    engine: &E,
    workload: &Workload,
    keys: u64,
) -> Result<FilteredChunk, Error> {
    let expected = workload.matches_in(keys).min(workload.limit as u64) as usize;
    let progress = stats::spinner(format!("{}: filtered chunk of {keys} keys", engine.name()));
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
        keys,
        selectivity: workload.selectivity,
        examined,
        latency: Latency::of(durations),
    })
}

/// Lists all `keys` in chunks of `limit`, over and over until the time budget is spent (at
/// least once), checking every count on the way.
fn paged_list<E: Engine>(
    engine: &E,
    workload: &Workload,
    keys: u64,
    limit: usize,
) -> Result<PagedList, Error> {
    let paged = Workload {
        limit,
        ..workload.clone()
    };
    let mut durations = Vec::new();
    let mut listed_total = 0;
    let started = Instant::now();
    loop {
        let progress = stats::bar(
            keys,
            format!("{}: paged list, limit {limit}", engine.name()),
        );
        let mut cursor = engine.first();
        let mut listed = 0;
        loop {
            let began = Instant::now();
            let chunk = engine.chunk(&cursor, limit)?;
            durations.push(began.elapsed());
            check_chunk(
                engine.name(),
                &paged,
                keys,
                listed,
                chunk.items,
                chunk.remaining,
            )?;
            listed += chunk.items as u64;
            progress.inc(chunk.items as u64);
            match chunk.next {
                Some(next) => cursor = next,
                None => break,
            }
        }
        progress.finish_and_clear();
        if listed != keys {
            return Err(Error::Wrong {
                engine: engine.name(),
                message: format!("a full list returned {listed} of {keys} keys"),
            });
        }
        listed_total += listed;
        if started.elapsed() >= workload.budget.time {
            break;
        }
    }
    Ok(PagedList {
        keys,
        limit,
        throughput: Throughput::of(listed_total, started.elapsed(), durations),
    })
}

/// Single durable puts, batched transactions, and concurrent durable writers, each on fresh
/// keys outside the listed collection.
fn writes<E: Engine>(engine: &E, workload: &Workload) -> Result<Writes, Error> {
    let name = engine.name();
    let single_prefix = format!("{WRITES_PREFIX}single/");
    let mut next = 0;
    let progress = stats::spinner(format!("{name}: single durable puts"));
    let (durations, count) = stats::sample(workload.budget, &progress, || {
        next += 1;
        engine.put(&workload.item(&single_prefix, next, 0))?;
        Ok(1)
    })?;
    progress.finish_and_clear();
    let single = throughput_of_sequential(count, durations);

    let batch_prefix = format!("{WRITES_PREFIX}batch/");
    let batch = workload.batch as u64;
    let mut next = 0;
    let progress = stats::spinner(format!("{name}: transactions of {batch} puts"));
    let (durations, count) = stats::sample(workload.budget, &progress, || {
        let items: Vec<Item> = (next..next + batch)
            .map(|index| workload.item(&batch_prefix, index, 0))
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
        concurrent: concurrent_puts(engine, workload)?,
    })
}

/// The rate of operations run one after another: items over the time spent in them, which
/// leaves out the untimed warm-up.
fn throughput_of_sequential(count: u64, durations: Vec<Duration>) -> Throughput {
    let busy = durations.iter().sum();
    Throughput::of(count, busy, durations)
}

/// The workload's writers each put durably, one key at a time, for the time budget.
fn concurrent_puts<E: Engine>(engine: &E, workload: &Workload) -> Result<Throughput, Error> {
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
            let item = workload.item(&prefix, index, 0);
            let began = Instant::now();
            engine.put(&item)?;
            durations.push(began.elapsed());
            progress.inc(1);
        }
        Ok(durations)
    };
    let per_writer = thread::scope(|scope| {
        let handles: Vec<_> = (0..workload.writers.max(1))
            .map(|number| scope.spawn(move || writer(number)))
            .collect();
        handles
            .into_iter()
            .map(|handle| {
                handle
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect::<Result<Vec<_>, Error>>()
    })?;
    let elapsed = started.elapsed();
    progress.finish_and_clear();
    let durations: Vec<Duration> = per_writer.into_iter().flatten().collect();
    Ok(Throughput::of(durations.len() as u64, elapsed, durations))
}

/// Rewrites `overwrite` keys, making as many records garbage, then compacts them all while
/// timing first chunks, and compares those with first chunks timed just before.
fn compaction<E: Engine>(engine: &E, workload: &Workload, keys: u64) -> Result<Compaction, Error> {
    let overwrite = workload.overwrite.min(keys);
    rewrite(engine, workload, 0..overwrite, 1)?;
    let idle = chunk_latency(engine, workload, keys, 0)?;
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
                let chunk = engine.chunk(&engine.first(), workload.limit)?;
                durations.push(began.elapsed());
                progress.inc(1);
                check_chunk(
                    engine.name(),
                    workload,
                    keys,
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
            sizes: vec![1000],
            value_size: 16,
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

    #[test]
    fn one_item_in_a_stride_is_selected_and_marked() {
        let workload = workload(0.01);
        let selected: Vec<u64> = (0..1000)
            .filter(|&index| workload.item(PREFIX, index, 0).selected)
            .collect();
        assert_eq!(selected.len() as u64, workload.matches_in(1000));
        assert_eq!(selected[..3], [0, 100, 200]);
        let item = workload.item(PREFIX, 100, 0);
        assert!(item.value.starts_with(MATCH_MARKER));
        assert_eq!(item.value.len(), 16);
        let plain = workload.item(PREFIX, 101, 0);
        assert!(!plain.value.starts_with(MATCH_MARKER));
        assert!(!workload.item("writes/", 100, 0).selected);
    }

    #[test]
    fn a_rewrite_changes_the_value_but_not_the_key() {
        let workload = workload(0.5);
        let (old, new) = (workload.item(PREFIX, 7, 0), workload.item(PREFIX, 7, 1));
        assert_eq!(old.key, new.key);
        assert_ne!(old.value, new.value);
        assert_eq!(
            old.value,
            load::value(7, 16),
            "version 0 is what `revkv load` writes"
        );
    }
}
