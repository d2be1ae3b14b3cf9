//! revkv itself: an embedded store in a temporary directory, reopened after every load to time
//! the open and weigh the index.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clap::ValueEnum;
use revkv::selector::LabelSelector;
use revkv::{Db, ListOptions, Op, Options, Put, Retention, Txn};
use tempfile::TempDir;

use super::engine::{Chunk, Engine, Error, Filtered, Lister, MAX_FILTER_LIMIT};
use super::report::Open;
use super::workload::{Item, Workload, Write, LABEL, PREFIX};
use crate::load::{self, Collection};

/// Seeking a cursor pages through the list in chunks of this size, so that seeking deep into a
/// large collection never holds more than one such chunk.
const SEEK_STEP: usize = 10_000;

/// sled's page cache while the index is weighed: small, so that the resident memory the open
/// adds is the index's, not cached pages'.
const WEIGHING_CACHE_BYTES: u64 = 1 << 20;

/// How long to wait before reading the resident size after opening.
const SETTLE: Duration = Duration::from_millis(300);

pub(super) struct Revkv {
    dir: TempDir,
    /// `None` only while [`Engine::reopen`] runs.
    db: Option<Db>,
    options: Options,
}

impl Revkv {
    /// A new, empty store: durable writes, no background compaction (the workload compacts when
    /// it measures compaction), and a page size limit that the longest request fits.
    pub(super) fn create(workload: &Workload) -> Result<Revkv, Error> {
        let dir = tempfile::tempdir().map_err(|error| {
            Error::failed(
                "revkv",
                format!("cannot create a temporary directory: {error}"),
            )
        })?;
        let largest_request = workload
            .list_limits
            .iter()
            .copied()
            .chain([workload.limit, MAX_FILTER_LIMIT, SEEK_STEP])
            .max()
            .unwrap_or(SEEK_STEP);
        let mut options = Db::options()
            .retention(Retention::Manual)
            .max_page_size(largest_request);
        if let Some(bytes) = workload.cache_bytes {
            options = options.cache_bytes(bytes);
        }
        let db = options.clone().open(dir.path())?;
        Ok(Revkv {
            dir,
            db: Some(db),
            options,
        })
    }

    fn db(&self) -> &Db {
        self.db
            .as_ref()
            .expect("the store is open outside `reopen`")
    }

    /// Resident memory per live key after opening: the whole store's, and the index's (the
    /// store's less sled's own, less the key bytes). Each is weighed in a new process (`revkv bench
    /// --weigh-open`), where no memory of earlier stores lingers in the allocator to be reused.
    fn weigh(&self, keys: u64) -> Result<(Option<f64>, Option<f64>), Error> {
        let store = self.weigh_in_new_process(Part::Store)?;
        let sled = self.weigh_in_new_process(Part::Sled)?;
        let per_key = |bytes: i64| bytes as f64 / keys as f64;
        // Generated keys all have the same length.
        let key_bytes = Collection::key(0).len() as f64;
        let index = store
            .zip(sled)
            .map(|(store, sled)| per_key(store - sled) - key_bytes);
        Ok((store.map(per_key), index))
    }

    fn weigh_in_new_process(&self, part: Part) -> Result<Option<i64>, Error> {
        let failed = |message: String| {
            Error::failed(
                "revkv",
                format!("cannot weigh the store in a new process: {message}"),
            )
        };
        let output = Command::new(std::env::current_exe().map_err(|e| failed(e.to_string()))?)
            .args(["bench", "--weigh-open"])
            .arg(self.dir.path())
            .arg("--weigh-part")
            .arg(
                part.to_possible_value()
                    .expect("no variant is skipped")
                    .get_name(),
            )
            .stderr(Stdio::inherit())
            .output()
            .map_err(|e| failed(e.to_string()))?;
        if !output.status.success() {
            return Err(failed(output.status.to_string()));
        }
        Ok(String::from_utf8_lossy(&output.stdout).trim().parse().ok())
    }
}

/// What `revkv bench --weigh-open` opens.
#[derive(Clone, Copy, ValueEnum)]
pub(super) enum Part {
    /// The revkv store: sled and the index.
    Store,
    /// Only sled, as the store opens it: its database and the store's one tree.
    Sled,
}

/// Opens `part` of the store in `dir` and prints the resident memory that opening added, in
/// bytes, or nothing where the resident size cannot be read. sled's page cache is kept small
/// meanwhile, so that the figure is the index's and sled's bookkeeping, not cached pages.
pub(super) fn weigh_open(dir: &Path, part: Part) -> Result<(), Error> {
    let Some(before) = resident_bytes() else {
        return Ok(());
    };
    match part {
        Part::Store => {
            let _db = Db::options()
                .retention(Retention::Manual)
                .cache_bytes(WEIGHING_CACHE_BYTES)
                .open(dir)?;
            print_growth(before);
        }
        Part::Sled => {
            let failed = |cause: sled::Error| Error::failed("sled", cause);
            let sled = sled::Config::new()
                .path(dir)
                .segment_size(revkv::SLED_SEGMENT_SIZE)
                .cache_capacity(WEIGHING_CACHE_BYTES)
                .open()
                .map_err(failed)?;
            // The store's one tree (DESIGN.md, on-disk layout).
            let _tree = sled.open_tree("revkv").map_err(failed)?;
            print_growth(before);
        }
    }
    Ok(())
}

/// Prints how much the resident size grew since it was `before`.
fn print_growth(before: u64) {
    // mimalloc hands the pages of freed buffers (the sorted keys the index is built from) back
    // to the kernel after a short delay.
    std::thread::sleep(SETTLE);
    if let Some(after) = resident_bytes() {
        println!("{}", after as i64 - before as i64);
    }
}

/// The process's resident set size, from `/proc/self/status`; `None` where there is none.
fn resident_bytes() -> Option<u64> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

fn put(item: &Item) -> Put {
    let put = Put::new(item.key.as_bytes(), item.value.as_slice());
    if item.selected {
        put.label(LABEL.0, LABEL.1)
    } else {
        put
    }
}

impl Lister for Revkv {
    type Cursor = ListOptions;

    fn name(&self) -> &'static str {
        "revkv"
    }

    /// Pages hold `limit` items whatever their bytes, as the chunk checks expect; the store's
    /// `max_page_size` still bounds them in items.
    fn first(&self) -> ListOptions {
        ListOptions::prefix(PREFIX).max_page_bytes(usize::MAX)
    }

    /// Pages through the list to `position`, so that the cursor is a continue token, as a
    /// client holds.
    fn seek(&self, position: u64, _after: Option<&str>) -> Result<ListOptions, Error> {
        let mut cursor = self.first();
        let mut left = position;
        while left > 0 {
            let step = SEEK_STEP.min(usize::try_from(left).unwrap_or(usize::MAX));
            let page = self.db().list(&cursor.clone().limit(step))?;
            left -= page.items.len() as u64;
            let Some(token) = page.continue_token else {
                return Err(Error::Wrong {
                    engine: self.name(),
                    message: format!("the list ended before position {position}"),
                });
            };
            cursor = self.first().continue_token(token);
        }
        Ok(cursor)
    }

    fn chunk(&self, cursor: &ListOptions, limit: usize) -> Result<Chunk<ListOptions>, Error> {
        let page = self.db().list(&cursor.clone().limit(limit))?;
        let matched = page
            .items
            .iter()
            .filter(|entry| {
                entry
                    .labels
                    .get(LABEL.0)
                    .is_some_and(|value| value == LABEL.1)
            })
            .count();
        let remaining = page.remaining.ok_or_else(|| Error::Wrong {
            engine: self.name(),
            message: "a chunk without a remaining count".into(),
        })?;
        Ok(Chunk {
            items: page.items.len(),
            matched,
            remaining,
            next: page
                .continue_token
                .map(|token| self.first().continue_token(token)),
        })
    }
}

impl Engine for Revkv {
    fn write(&self, writes: &[Write]) -> Result<(), Error> {
        let ops = writes.iter().map(|write| match write {
            Write::Put(item) => Op::Put(put(item)),
            Write::Delete(key) => Op::delete(key.as_bytes()),
        });
        self.db().txn(Txn::new().then(ops))?;
        Ok(())
    }

    fn put(&self, item: &Item) -> Result<(), Error> {
        self.db().put_with(put(item))?;
        Ok(())
    }

    /// revkv filters in the store: each chunk examines up to its scan budget (10,000 keys by
    /// default) and may come back short, so the client continues until it has `limit` matches.
    fn filtered_chunk(&self, cursor: &ListOptions, limit: usize) -> Result<Filtered, Error> {
        let selector: LabelSelector = format!("{}={}", LABEL.0, LABEL.1)
            .parse()
            .expect("the workload's label is a valid selector");
        let mut options = cursor.clone().label_selector(selector.clone());
        let mut matched = 0;
        while matched < limit {
            let page = self.db().list(&options.clone().limit(limit - matched))?;
            matched += page.items.len();
            match page.continue_token {
                Some(token) => {
                    options = self
                        .first()
                        .label_selector(selector.clone())
                        .continue_token(token);
                }
                None => break,
            }
        }
        Ok(Filtered {
            examined: None,
            matched,
        })
    }

    fn settle(&self) -> Result<Option<f64>, Error> {
        let started = Instant::now();
        load::settle(self.db())?;
        Ok(Some(started.elapsed().as_secs_f64()))
    }

    fn compact(&self) -> Result<(), Error> {
        let db = self.db();
        db.compact(db.current_revision())?;
        Ok(())
    }

    fn reopen(&mut self, keys: u64) -> Result<Option<Open>, Error> {
        self.db = None;
        let (resident_bytes_per_key, index_bytes_per_key) = self.weigh(keys)?;
        let started = Instant::now();
        self.db = Some(self.options.clone().open(self.dir.path())?);
        Ok(Some(Open {
            seconds: started.elapsed().as_secs_f64(),
            resident_bytes_per_key,
            index_bytes_per_key,
        }))
    }
}
