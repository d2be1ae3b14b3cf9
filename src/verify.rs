//! [`Db::verify`]: reads everything a store holds and checks it against the invariants of
//! `DESIGN.md` (section 8), so that an operator can tell whether a store can be trusted.
//!
//! The check is one pass over each kind of sled entry in key order:
//!
//! 1. metadata: format version, and finished ≤ compacted ≤ current revision;
//! 2. latest pointers, merged with the in-memory index: every pointer leads to a change of its
//!    key of its kind, and the keys live at the checked revision according to the pointers are
//!    exactly the index's, at the same locations;
//! 3. records: every record decodes; every revision in (compacted, current] has its changes,
//!    numbered from 0; every change follows from its previous one (older, same key, consistent
//!    version) and is reachable from a pointer;
//! 4. commit times: present for every revision in (compacted, current], never decreasing;
//! 5. key-order blocks: each decodes, and each copy it holds is of a published record and
//!    equal to that record while it is stored.
//!
//! Writers may go on while it runs: the check reads the visible view of its start, and leaves
//! alone whatever is written above that revision. Compactions wait, because they delete the
//! records being checked.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::ops::Bound;

use serde::Serialize;

use crate::chain::{self, Successor};
use crate::encoding::{self, Change, Latest, Location, Meta, Record, StoredValue, Value};
use crate::error::SledResultExt;
use crate::index::View;
use crate::store::Shared;
use crate::{display_key, Db, Error, Result, Revision};

/// A report lists at most this many findings; a store damaged everywhere would otherwise produce
/// one per entry.
const MAX_FINDINGS: usize = 1000;

/// What [`Db::verify`] examined and found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// The revision checked: the newest visible one when the check began. Writes committed
    /// while it ran are above it and are not examined.
    pub revision: Revision,
    /// The compacted revision: history below it is gone by design.
    pub compacted_revision: Revision,
    /// The revision up to which compaction removed its garbage: below `compacted_revision`
    /// while a compaction's sweep is unfinished, whose garbage is then no finding.
    pub swept_revision: Revision,
    /// Keys live at `revision` in the in-memory index.
    pub live_keys: u64,
    /// Latest pointers read (one per key not compacted away, live or deleted).
    pub latest_pointers: u64,
    /// Records (puts and tombstones) read.
    pub records: u64,
    /// Commit times read.
    pub commit_times: u64,
    /// Key-order blocks read.
    pub key_order_blocks: u64,
    /// What is wrong, in the order found; empty for a healthy store.
    pub findings: Vec<Finding>,
    /// Findings beyond the first thousand, counted but not listed.
    pub omitted_findings: u64,
}

impl VerifyReport {
    /// True when nothing is wrong.
    #[must_use]
    pub fn is_clean(&self) -> bool {
        self.findings.is_empty()
    }

    /// Every finding, listed or omitted.
    #[must_use]
    pub fn finding_count(&self) -> u64 {
        self.findings.len() as u64 + self.omitted_findings
    }
}

/// One thing [`Db::verify`] found wrong.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Which invariant it breaks.
    pub check: Check,
    /// Where: a revision and change, a key's latest pointer, a commit time, a metadata entry.
    pub location: String,
    /// What is wrong there.
    pub problem: String,
}

/// The invariant a [`Finding`] breaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Check {
    /// Stored bytes fail their checksum or do not decode: reads of them fail with
    /// [`Error::Corrupted`].
    Decoding,
    /// The metadata: the format version, and finished ≤ compacted ≤ current revision.
    Metadata,
    /// Revisions are contiguous: every revision in (compacted, current] has a commit time and
    /// its changes, numbered from 0.
    Revisions,
    /// Commit times never decrease, so that time-based retention can search them.
    CommitTimes,
    /// Every latest pointer leads to a change of its key, a put when it says live and a delete
    /// otherwise, and to the key's newest change.
    LatestPointers,
    /// Every change follows from its previous one (older, same key, consistent version and
    /// create revision), which is stored unless compaction may have removed it; and every
    /// change is reachable from a latest pointer.
    History,
    /// The in-memory index equals the index rebuilt from the latest pointers.
    Index,
    /// A finished compaction left behind nothing it removes: superseded changes, tombstones,
    /// pointers of deleted keys, old commit times.
    Compaction,
    /// A key-order block decodes, and holds copies only of published records, equal to them.
    KeyOrderBlocks,
    /// A sled entry of no kind revkv writes.
    UnknownEntry,
}

impl Check {
    /// A stable snake_case name, as in the JSON report.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Check::Decoding => "decoding",
            Check::Metadata => "metadata",
            Check::Revisions => "revisions",
            Check::CommitTimes => "commit_times",
            Check::LatestPointers => "latest_pointers",
            Check::History => "history",
            Check::Index => "index",
            Check::Compaction => "compaction",
            Check::KeyOrderBlocks => "key_order_blocks",
            Check::UnknownEntry => "unknown_entry",
        }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}: {}",
            self.check.name(),
            self.location,
            self.problem
        )
    }
}

impl fmt::Display for VerifyReport {
    /// A summary line, then one line per finding.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "revision {} (compacted {}",
            self.revision, self.compacted_revision
        )?;
        if self.swept_revision < self.compacted_revision {
            write!(f, ", swept up to {}", self.swept_revision)?;
        }
        write!(
            f,
            "): {} live keys, {} latest pointers, {} records, {} commit times, {} key-order \
             blocks: ",
            self.live_keys,
            self.latest_pointers,
            self.records,
            self.commit_times,
            self.key_order_blocks
        )?;
        match self.finding_count() {
            0 => return f.write_str("clean"),
            1 => f.write_str("1 finding")?,
            count => write!(f, "{count} findings")?,
        }
        for finding in &self.findings {
            write!(f, "\n  {finding}")?;
        }
        if self.omitted_findings > 0 {
            write!(f, "\n  ... and {} more", self.omitted_findings)?;
        }
        Ok(())
    }
}

impl Db {
    /// Checks everything the store holds: that every stored value decodes and matches its
    /// checksum, that revisions are contiguous above the compacted revision with non-decreasing
    /// commit times, that every key's chain of changes is consistent, that the latest pointers
    /// agree with the records and the in-memory index with the pointers, that the key-order
    /// blocks hold only true copies, and that the metadata is consistent. Damage is reported as
    /// findings, not as an error.
    ///
    /// It reads every stored entry once, and the previous change of every record: O(history)
    /// time, plus memory for a location (16 bytes) per stored record. An operator's tool, as
    /// `revkv verify`; writers may go on meanwhile (their new revisions are not examined), and
    /// compactions wait until it returns. It waits for a running compaction, such as the sweep
    /// an open resumed (see [`crate::Options::resume_compaction`]).
    ///
    /// # Errors
    ///
    /// [`Error::Storage`] when sled cannot be read.
    ///
    /// # Examples
    ///
    /// ```
    /// # let db = revkv::Db::temporary()?;
    /// db.put("a", "1")?;
    /// db.delete("a")?;
    /// let report = db.verify()?;
    /// assert!(report.is_clean(), "{report}");
    /// assert_eq!((report.records, report.latest_pointers), (2, 1));
    /// # Ok::<(), revkv::Error>(())
    /// ```
    pub fn verify(&self) -> Result<VerifyReport> {
        let shared = &*self.shared;
        let _compactions_wait = shared.compaction_lock.lock();
        let view = shared.index.visible();
        let compacted = shared.compacted();
        let mut verifier = Verifier {
            shared,
            revision: view.revision,
            compacted,
            finished: Revision::ZERO,
            report: VerifyReport {
                revision: view.revision,
                compacted_revision: compacted,
                swept_revision: Revision::ZERO,
                live_keys: view.tree.len() as u64,
                latest_pointers: 0,
                records: 0,
                commit_times: 0,
                key_order_blocks: 0,
                findings: Vec::new(),
                omitted_findings: 0,
            },
        };
        verifier.metadata()?;
        let heads = verifier.latest_pointers(&view)?;
        verifier.records(&heads)?;
        verifier.commit_times()?;
        verifier.value_parts()?;
        verifier.key_order_blocks()?;
        verifier.unknown_entries()?;
        Ok(verifier.report)
    }
}

struct Verifier<'a> {
    shared: &'a Shared,
    /// The revision checked.
    revision: Revision,
    compacted: Revision,
    finished: Revision,
    report: VerifyReport,
}

impl Verifier<'_> {
    fn found(&mut self, check: Check, location: impl Into<String>, problem: impl Into<String>) {
        if self.report.findings.len() == MAX_FINDINGS {
            self.report.omitted_findings += 1;
            return;
        }
        self.report.findings.push(Finding {
            check,
            location: location.into(),
            problem: problem.into(),
        });
    }

    /// Whether revisions `first..=last` were all lost by a crash or restore, so that no changes
    /// or commit times are stored for them by design.
    fn lost(&self, first: u64, last: u64) -> bool {
        self.shared
            .identity
            .read()
            .all_lost(Revision::new(first), Revision::new(last))
    }

    /// Turns a decoder's [`Error::Corrupted`] into a finding; any other error ends the check.
    fn undecodable(&mut self, error: Error) -> Result<()> {
        match error {
            Error::Corrupted { location, reason } => {
                self.found(Check::Decoding, location, reason);
                Ok(())
            }
            other => Err(other),
        }
    }

    /// What is stored at `location`; the record scan reports an undecodable record.
    fn stored(&self, location: Location) -> Result<Stored> {
        match self.shared.record(location) {
            Ok(Some(record)) => Ok(Stored::Record(record)),
            Ok(None) => Ok(Stored::Missing),
            Err(Error::Corrupted { .. }) => Ok(Stored::Undecodable),
            Err(other) => Err(other),
        }
    }

    fn unpointed(&mut self, key: &[u8], location: Location) {
        self.found(
            Check::Index,
            format!("key {}", display_key(key)),
            format!("live at {location} in the index, but it has no latest pointer"),
        );
    }

    fn metadata(&mut self) -> Result<()> {
        let shared = self.shared;
        let data = &shared.data;
        match data.get(Meta::FormatVersion.sled_key()).storage()? {
            None => self.found(Check::Metadata, "metadata format_version", "missing"),
            Some(bytes) => match Meta::FormatVersion.decode(&bytes) {
                Ok(version) if version == u64::from(encoding::FORMAT_VERSION) => {}
                Ok(version) => self.found(
                    Check::Metadata,
                    "metadata format_version",
                    format!(
                        "format version {version}, expected {}",
                        encoding::FORMAT_VERSION
                    ),
                ),
                Err(error) => self.undecodable(error)?,
            },
        }
        let mut read = |meta: Meta| -> Result<Option<u64>> {
            match data.get(meta.sled_key()).storage()? {
                None => Ok(Some(0)),
                Some(bytes) => match meta.decode(&bytes) {
                    Ok(value) => Ok(Some(value)),
                    Err(error) => self.undecodable(error).map(|()| None),
                },
            }
        };
        let compacted = read(Meta::CompactedRevision)?;
        // An unreadable finished revision is taken as 0, the reading that reports least.
        let finished = read(Meta::FinishedCompaction)?.unwrap_or(0);
        self.finished = Revision::new(finished);
        self.report.swept_revision = self.finished;
        if let Some(compacted) = compacted.filter(|&c| c != self.compacted.get()) {
            self.found(
                Check::Metadata,
                "metadata compacted_revision",
                format!(
                    "{compacted} on disk, but {} in memory",
                    self.compacted.get()
                ),
            );
        }
        if self.finished > self.compacted {
            self.found(
                Check::Metadata,
                "metadata finished_compaction",
                format!(
                    "{} is above the compacted revision {}",
                    self.finished, self.compacted
                ),
            );
        }
        if self.compacted > self.revision {
            self.found(
                Check::Metadata,
                "metadata compacted_revision",
                format!(
                    "{} is above the current revision {}",
                    self.compacted, self.revision
                ),
            );
        }
        let known = [
            Meta::FormatVersion,
            Meta::CompactedRevision,
            Meta::FinishedCompaction,
            Meta::StoreId,
            Meta::ReservedRevision,
            Meta::TokenSecret,
        ]
        .map(Meta::sled_key);
        for item in data.scan_prefix(meta_prefix()) {
            let (sled_key, _) = item.storage()?;
            if !known.iter().any(|name| *name == *sled_key) {
                self.found(
                    Check::UnknownEntry,
                    format!("sled key \"{}\"", sled_key.escape_ascii()),
                    "metadata of no known name",
                );
            }
        }
        Ok(())
    }

    /// Checks every latest pointer, and the index of the checked revision against the one the
    /// pointers give (walked side by side, both in key order). Returns the pointers' locations.
    fn latest_pointers(&mut self, view: &View) -> Result<HashSet<Location>> {
        let mut heads = HashSet::new();
        let mut index = view
            .tree
            .range(Bound::Unbounded, Bound::Unbounded)
            .peekable();
        for item in self.shared.data.scan_prefix(Latest::prefix()) {
            let (sled_key, bytes) = item.storage()?;
            self.report.latest_pointers += 1;
            let key = Latest::user_key(&sled_key);
            while let Some((unpointed, &location)) = index.next_if(|(k, _)| ***k < *key) {
                self.unpointed(unpointed, location);
            }
            let indexed = index.next_if(|(k, _)| ***k == *key).map(|(_, l)| *l);
            let latest = match Latest::decode_with_record(key, &bytes) {
                Ok((latest, copy)) => {
                    if let Some(copy) = copy {
                        self.record_copy(key, latest.location, copy)?;
                    }
                    latest
                }
                Err(error) => {
                    self.undecodable(error)?;
                    // The store found the key's newest change from the log when it opened: the
                    // records it leads to are reachable, and the one finding is the pointer.
                    if let Some(Some(recovered)) = self.shared.damaged_pointer(key) {
                        heads.insert(recovered.location);
                    }
                    continue;
                }
            };
            heads.insert(latest.location);
            let Some(on_disk) = self.live_at_checked_revision(key, latest)? else {
                continue;
            };
            if on_disk != indexed {
                let describe = |location: Option<Location>| {
                    location.map_or_else(|| "not live".to_string(), |l| format!("live at {l}"))
                };
                self.found(
                    Check::Index,
                    format!("key {}", display_key(key)),
                    format!(
                        "{} at revision {} in the index, but {} on disk",
                        describe(indexed),
                        self.revision,
                        describe(on_disk)
                    ),
                );
            }
        }
        for (unpointed, &location) in index {
            self.unpointed(unpointed, location);
        }
        Ok(heads)
    }

    /// The copy of a live key's newest record in its latest pointer must be that record.
    fn record_copy(&mut self, key: &[u8], location: Location, copy: &[u8]) -> Result<()> {
        let stored = self.shared.data.get(location.record_key()).storage()?;
        // A damaged record is reported by the record scan; its copy is then no news.
        let record_decodes = stored
            .as_deref()
            .is_some_and(|stored| Record::decode(location, stored).is_ok());
        if record_decodes && stored.as_deref() != Some(copy) {
            self.found(
                Check::LatestPointers,
                format!("latest pointer of key {}", display_key(key)),
                format!("its copy of the record at {location} differs from the record"),
            );
        }
        Ok(())
    }

    /// Where the key is live at the checked revision according to disk, following its changes
    /// down from its latest pointer (a writer may have moved the pointer above that revision),
    /// and checking the change the pointer leads to. `None` when the history cannot be
    /// followed; that is reported here or by the record scan.
    fn live_at_checked_revision(
        &mut self,
        key: &[u8],
        latest: Latest,
    ) -> Result<Option<Option<Location>>> {
        let pointer = || format!("latest pointer of key {}", display_key(key));
        let mut at = latest.location;
        // The change after `at` in the key's history, once the walk has left the pointer's.
        let mut newer: Option<(Location, Record)> = None;
        loop {
            let record = match self.stored(at)? {
                Stored::Record(record) => record,
                Stored::Undecodable => return Ok(None),
                Stored::Missing => {
                    let successor = Successor::in_walk(latest.live, newer.as_ref());
                    return Ok(self.missing_change(key, at, successor));
                }
            };
            let is_put = matches!(record.change, Change::Put(_));
            if newer.is_none() {
                if record.key != key {
                    self.found(
                        Check::LatestPointers,
                        pointer(),
                        format!(
                            "leads to {at}, a change of key {}",
                            display_key(&record.key)
                        ),
                    );
                    return Ok(None);
                }
                if latest.live != is_put {
                    let (claims, is) = if latest.live {
                        ("live", "a delete")
                    } else {
                        ("deleted", "a put")
                    };
                    self.found(
                        Check::LatestPointers,
                        pointer(),
                        format!("says the key is {claims}, but leads to {is} at {at}"),
                    );
                }
            } else if record.key != key {
                // The record scan reports a change that follows one of another key.
                return Ok(None);
            }
            if at.revision <= self.revision {
                return Ok(Some(is_put.then_some(at)));
            }
            match chain::previous(at, &record) {
                Ok(Some(prev)) => {
                    newer = Some((at, record));
                    at = prev;
                }
                Ok(None) => return Ok(Some(None)),
                // The record scan reports the broken chain; following it could loop forever.
                Err(_) => return Ok(None),
            }
        }
    }

    /// What the missing change at `at` in the key's history, which `successor` leads to, means
    /// for the key at the checked revision.
    fn missing_change(
        &mut self,
        key: &[u8],
        at: Location,
        successor: Successor<'_>,
    ) -> Option<Option<Location>> {
        let pointer = || format!("latest pointer of key {}", display_key(key));
        if chain::compacted_away(at, successor, self.compacted) {
            // A pointer that outlived its tombstone reads as deleted, as it should, but a
            // finished compaction removes it first.
            if matches!(successor, Successor::Pointer { .. }) && self.finished == self.compacted {
                self.found(
                    Check::Compaction,
                    pointer(),
                    format!("outlived its tombstone at {at}"),
                );
            }
            return Some(None);
        }
        match successor {
            Successor::Pointer { .. } => self.found(
                Check::LatestPointers,
                pointer(),
                format!("leads to {at}, where nothing is stored"),
            ),
            Successor::Change { .. } => self.found(
                Check::History,
                at.to_string(),
                format!(
                    "missing, but a later change of key {} follows it",
                    display_key(key)
                ),
            ),
        }
        None
    }

    fn records(&mut self, heads: &HashSet<Location>) -> Result<()> {
        // Each change's successor: the change whose `prev` it is.
        let mut successors: HashMap<Location, Location> = HashMap::new();
        let mut checked = Vec::new();
        // The records that do not decode, and why.
        let mut damaged = Vec::new();
        let mut numbering = Numbering::default();
        for item in self.shared.data.scan_prefix(encoding::record_prefix()) {
            let (sled_key, bytes) = item.storage()?;
            self.report.records += 1;
            let location = match Location::from_record_key(&sled_key) {
                Ok(location) => location,
                Err(error) => {
                    self.undecodable(error)?;
                    continue;
                }
            };
            let record = Record::decode(location, &bytes);
            if location.revision <= self.revision {
                checked.push(location);
                let key = record.as_ref().ok().map(|record| record.key.as_slice());
                numbering.next(self, location, key);
            }
            let record = match record {
                Ok(record) => record,
                Err(Error::Corrupted { reason, .. }) => {
                    damaged.push((location, reason));
                    continue;
                }
                Err(other) => return Err(other),
            };
            if let Some(prev) = record.prev {
                if let Some(other) = successors.insert(prev, location) {
                    self.found(
                        Check::History,
                        prev.to_string(),
                        format!("both {other} and {location} follow it"),
                    );
                }
            }
            if location.revision <= self.revision {
                self.change(location, &record)?;
            }
        }
        numbering.finish(self);
        // A record that does not decode hides which change it follows: that change would look
        // unreachable, when the one finding is the damaged record.
        let undecodable = !damaged.is_empty();
        self.damaged_records(damaged, heads, &successors)?;
        for location in checked.into_iter().filter(|_| !undecodable) {
            // An unfinished compaction leaves garbage in (finished, compacted] for its sweep.
            let may_be_garbage =
                self.finished < location.revision && location.revision <= self.compacted;
            if !heads.contains(&location) && !successors.contains_key(&location) && !may_be_garbage
            {
                self.found(
                    Check::History,
                    location.to_string(),
                    "no latest pointer or later change leads to it",
                );
            }
        }
        for head in heads {
            if let Some(&next) = successors
                .get(head)
                .filter(|next| next.revision <= self.revision)
            {
                self.found(
                    Check::LatestPointers,
                    head.to_string(),
                    format!("a latest pointer leads here, but {next} follows it"),
                );
            }
        }
        Ok(())
    }

    /// Reports each record that does not decode, with the key it is a change of when a later
    /// change of the key or its latest pointer says so: the record itself cannot.
    fn damaged_records(
        &mut self,
        damaged: Vec<(Location, String)>,
        heads: &HashSet<Location>,
        successors: &HashMap<Location, Location>,
    ) -> Result<()> {
        let mut whose = HashMap::new();
        for &(location, _) in &damaged {
            if let Some(&next) = successors.get(&location) {
                if let Stored::Record(record) = self.stored(next)? {
                    let key = display_key(&record.key);
                    whose.insert(
                        location,
                        format!("a change of key {key}, followed by {next}"),
                    );
                }
            }
        }
        let unnamed_heads: HashSet<Location> = damaged
            .iter()
            .map(|&(location, _)| location)
            .filter(|location| heads.contains(location) && !whose.contains_key(location))
            .collect();
        if !unnamed_heads.is_empty() {
            for item in self.shared.data.scan_prefix(Latest::prefix()) {
                let (sled_key, bytes) = item.storage()?;
                let key = Latest::user_key(&sled_key);
                // A pointer that does not decode is reported by the pointer scan.
                let Ok(latest) = Latest::decode(key, &bytes) else {
                    continue;
                };
                if unnamed_heads.contains(&latest.location) {
                    let key = display_key(key);
                    whose.insert(latest.location, format!("the newest change of key {key}"));
                }
            }
        }
        for (location, reason) in damaged {
            let problem = match whose.get(&location) {
                Some(whose) => format!("{reason}; {whose}"),
                None => reason,
            };
            self.found(Check::Decoding, location.to_string(), problem);
        }
        Ok(())
    }

    /// Checks one change against itself and its previous change.
    fn change(&mut self, location: Location, record: &Record) -> Result<()> {
        let at = location.to_string();
        match &record.change {
            Change::Put(value) => {
                if let Value::Parts { .. } = value.value {
                    if let Err(error) = self.shared.value_of(location, value.value.clone()) {
                        self.undecodable(error)?;
                    }
                }
                if let Err(problem) = chain::check_put(location, value) {
                    self.found(Check::History, at.clone(), problem);
                }
            }
            Change::Delete if location.revision <= self.finished => self.found(
                Check::Compaction,
                at.clone(),
                format!(
                    "a tombstone at or below the finished compaction {}",
                    self.finished
                ),
            ),
            Change::Delete => {}
        }
        let prev = match chain::previous(location, record) {
            Ok(Some(prev)) => prev,
            Ok(None) => return Ok(()),
            Err(problem) => {
                self.found(Check::History, at, problem);
                return Ok(());
            }
        };
        let before = match self.stored(prev)? {
            Stored::Record(before) => before,
            Stored::Undecodable => return Ok(()),
            Stored::Missing => {
                let successor = Successor::Change {
                    at: location,
                    change: &record.change,
                };
                if !chain::compacted_away(prev, successor, self.compacted) {
                    self.found(
                        Check::History,
                        at,
                        format!("its previous change {prev} is missing"),
                    );
                }
                return Ok(());
            }
        };
        match chain::check_link(location, record, prev, &before) {
            Err(problem) => self.found(Check::History, at, problem),
            Ok(()) if chain::supersedes(&record.change) && location.revision <= self.finished => {
                self.found(
                    Check::Compaction,
                    prev.to_string(),
                    format!(
                        "superseded by {location}, at or below the finished compaction {}",
                        self.finished
                    ),
                );
            }
            Ok(()) => {}
        }
        Ok(())
    }

    fn commit_times(&mut self) -> Result<()> {
        // The compacted revision keeps its commit time: it is the head after a restart when
        // nothing newer was written.
        let mut expected = self.compacted.get().max(1);
        let mut previous: Option<(Revision, u64)> = None;
        for item in self.shared.data.scan_prefix(encoding::commit_time_prefix()) {
            let (sled_key, bytes) = item.storage()?;
            self.report.commit_times += 1;
            let revision = match encoding::revision_of_commit_time_key(&sled_key) {
                Ok(revision) => revision,
                Err(error) => {
                    self.undecodable(error)?;
                    continue;
                }
            };
            if revision > self.revision {
                continue;
            }
            if revision < self.finished {
                self.found(
                    Check::Compaction,
                    format!("commit time of revision {revision}"),
                    format!("below the finished compaction {}", self.finished),
                );
            }
            if revision.get() < expected {
                continue;
            }
            if revision.get() > expected {
                self.missing_commit_times(expected, revision.get() - 1);
            }
            expected = revision.get() + 1;
            let millis = match encoding::decode_commit_time(revision, &bytes) {
                Ok(millis) => millis,
                Err(error) => {
                    self.undecodable(error)?;
                    continue;
                }
            };
            if let Some((earlier, earlier_millis)) = previous.filter(|&(_, ms)| ms > millis) {
                self.found(
                    Check::CommitTimes,
                    format!("commit time of revision {revision}"),
                    format!("{millis} ms, before the {earlier_millis} ms of revision {earlier}"),
                );
            }
            previous = Some((revision, millis));
        }
        if expected <= self.revision.get() {
            self.missing_commit_times(expected, self.revision.get());
        }
        Ok(())
    }

    fn missing_commit_times(&mut self, first: u64, last: u64) {
        if self.lost(first, last) {
            return;
        }
        self.found(
            Check::Revisions,
            revision_span(first, last),
            "no commit time stored",
        );
    }

    /// Every part of a large value belongs to a record that stores its value in parts; the
    /// values themselves are checked with their records.
    fn value_parts(&mut self) -> Result<()> {
        let mut last_owner = None;
        for item in self.shared.data.scan_prefix(encoding::part_prefix()) {
            let (sled_key, _) = item.storage()?;
            let owner = match encoding::location_of_part_key(&sled_key) {
                Ok(owner) => owner,
                Err(error) => {
                    self.undecodable(error)?;
                    continue;
                }
            };
            if last_owner == Some(owner) {
                continue;
            }
            last_owner = Some(owner);
            let stores_parts = matches!(
                self.shared.record(owner),
                Ok(Some(Record {
                    change: Change::Put(StoredValue {
                        value: Value::Parts { .. },
                        ..
                    }),
                    ..
                }))
            );
            if !stores_parts {
                self.found(
                    Check::Decoding,
                    owner.to_string(),
                    "value parts of a record that has none",
                );
            }
        }
        Ok(())
    }

    /// Blocks are a cache: a stale copy is no finding, a wrong one is. Blocks built after the
    /// checked revision are left alone, as everything else above it is.
    fn key_order_blocks(&mut self) -> Result<()> {
        let mut layout = encoding::BlockLayout::default();
        for item in self.shared.data.scan_prefix(encoding::block_prefix()) {
            let (sled_key, bytes) = item.storage()?;
            self.report.key_order_blocks += 1;
            let low = &sled_key[1..];
            if let Err(error) = encoding::decode_block(low, &bytes, &mut layout) {
                self.undecodable(error)?;
                continue;
            }
            if layout.built_at > self.revision {
                continue;
            }
            let at = format!("key-order block at key {}", display_key(low));
            for entry in &layout.entries {
                let key = &bytes[entry.key.clone()];
                if entry.location.revision > layout.built_at {
                    let problem = format!(
                        "key {} copied at {}, above the block's revision {}",
                        display_key(key),
                        entry.location,
                        layout.built_at
                    );
                    self.found(Check::KeyOrderBlocks, at.clone(), problem);
                    continue;
                }
                let Some(copy) = entry.copy.clone() else {
                    continue;
                };
                // A missing record was compacted away; a damaged one the record scan reports.
                let Some(stored) = self
                    .shared
                    .data
                    .get(entry.location.record_key())
                    .storage()?
                else {
                    continue;
                };
                let Ok(record) = Record::decode(entry.location, &stored) else {
                    continue;
                };
                // A record that decodes has its 4-byte checksum first.
                if record.key != key || stored[4..] != bytes[copy] {
                    let problem = format!(
                        "its copy of key {} differs from the record at {}",
                        display_key(key),
                        entry.location
                    );
                    self.found(Check::KeyOrderBlocks, at.clone(), problem);
                }
            }
        }
        Ok(())
    }

    /// Entries whose first byte is of no kind revkv writes: the ranges between the kinds.
    fn unknown_entries(&mut self) -> Result<()> {
        let mut kinds = [
            encoding::block_prefix(),
            Latest::prefix(),
            meta_prefix(),
            encoding::part_prefix(),
            encoding::record_prefix(),
            encoding::run_prefix(),
            encoding::commit_time_prefix(),
        ];
        kinds.sort_unstable();
        let mut gaps = Vec::new();
        let mut from = Bound::Unbounded;
        for [kind] in kinds {
            gaps.push((from, Bound::Excluded(vec![kind])));
            from = Bound::Included(vec![kind + 1]);
        }
        gaps.push((from, Bound::Unbounded));
        for gap in gaps {
            for item in self.shared.data.range::<Vec<u8>, _>(gap) {
                let (sled_key, _) = item.storage()?;
                self.found(
                    Check::UnknownEntry,
                    format!("sled key \"{}\"", sled_key.escape_ascii()),
                    "an entry of no kind revkv writes",
                );
            }
        }
        Ok(())
    }
}

/// Follows the record scan through the revisions above the compacted one: each must have
/// changes numbered 0, 1, ... and touch a key at most once.
#[derive(Default)]
struct Numbering {
    last: Option<Location>,
    keys: HashSet<Vec<u8>>,
}

impl Numbering {
    fn next(&mut self, verifier: &mut Verifier<'_>, location: Location, key: Option<&[u8]>) {
        if location.revision <= verifier.compacted {
            return;
        }
        let expected_sub = match self.last {
            Some(last) if last.revision == location.revision => last.sub + 1,
            last => {
                let after = last.map_or(verifier.compacted, |last| last.revision);
                if after.next() < location.revision
                    && !verifier.lost(after.get() + 1, location.revision.get() - 1)
                {
                    verifier.found(
                        Check::Revisions,
                        revision_span(after.get() + 1, location.revision.get() - 1),
                        "no changes stored",
                    );
                }
                self.keys.clear();
                0
            }
        };
        if location.sub != expected_sub {
            verifier.found(
                Check::Revisions,
                location.to_string(),
                format!(
                    "changes {expected_sub}..{} of revision {} are missing",
                    location.sub, location.revision
                ),
            );
        }
        if let Some(key) = key {
            if !self.keys.insert(key.to_vec()) {
                verifier.found(
                    Check::History,
                    location.to_string(),
                    format!(
                        "key {} changes twice in revision {}",
                        display_key(key),
                        location.revision
                    ),
                );
            }
        }
        self.last = Some(location);
    }

    fn finish(self, verifier: &mut Verifier<'_>) {
        let after = self.last.map_or(verifier.compacted, |last| last.revision);
        if after < verifier.revision {
            verifier.found(
                Check::Revisions,
                revision_span(after.get() + 1, verifier.revision.get()),
                "no changes stored",
            );
        }
    }
}

/// The first byte of every metadata key.
fn meta_prefix() -> [u8; 1] {
    [Meta::FormatVersion.sled_key()[0]]
}

/// What a location holds, for the checks that follow a change to its previous one.
enum Stored {
    Record(Record),
    Missing,
    /// Reported where the record scan reaches it.
    Undecodable,
}

fn revision_span(first: u64, last: u64) -> String {
    if first == last {
        format!("revision {first}")
    } else {
        format!("revisions {first}..={last}")
    }
}
