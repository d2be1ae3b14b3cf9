//! Reading one chunk: walking the pinned view from the resume position, filtering, rolling up.

use std::ops::{Bound, ControlFlow};

use super::options::{prefix_end, tighter_lower, tighter_upper, ListOptions};
use crate::encoding::Location;
use crate::index::{Key, View};
use crate::store::Shared;
use crate::{Entry, Result};

/// What a chunk read, and where the next one starts.
pub(super) struct Chunk {
    pub items: Vec<Entry>,
    pub prefixes: Vec<Vec<u8>>,
    /// The last position examined, when more of the range may follow it.
    pub resume_after: Option<Vec<u8>>,
    pub remaining: Option<u64>,
}

/// A filtered chunk reads records in batches of at least this many keys, so that a selective
/// filter does not pay one batch per match.
const MIN_FILTER_BATCH: usize = 256;

/// The part of the request's range a chunk has not examined yet.
struct Unexamined {
    lower: Bound<Vec<u8>>,
    upper: Bound<Vec<u8>>,
}

impl Unexamined {
    fn new(options: &ListOptions) -> Self {
        let (lower, upper) = options.bounds();
        Unexamined {
            lower: lower.map(<[u8]>::to_vec),
            upper: upper.map(<[u8]>::to_vec),
        }
    }

    fn bounds(&self) -> (Bound<&[u8]>, Bound<&[u8]>) {
        (
            self.lower.as_ref().map(Vec::as_slice),
            self.upper.as_ref().map(Vec::as_slice),
        )
    }

    /// Moves past `position`, a key or a rolled-up prefix; returns false when nothing of the
    /// range can lie beyond it.
    fn advance_past(&mut self, options: &ListOptions, position: &[u8]) -> bool {
        let is_prefix = options.rollup(position) == Some(position);
        if options.reverse {
            // Every key under a prefix sorts at or after it, so one bound skips them all.
            let upper = tighter_upper(self.bounds().1, Some(Bound::Excluded(position)));
            self.upper = upper.map(<[u8]>::to_vec);
            return true;
        }
        let past = if is_prefix {
            match prefix_end(position) {
                Some(end) => Bound::Included(end),
                None => return false,
            }
        } else {
            Bound::Excluded(position.to_vec())
        };
        let lower = tighter_lower(self.bounds().0, Some(past.as_ref().map(Vec::as_slice)));
        self.lower = lower.map(<[u8]>::to_vec);
        true
    }

    fn count(&self, view: &View) -> usize {
        let (lower, upper) = self.bounds();
        view.tree.count(lower, upper)
    }
}

/// Reads the chunk of `options` that starts after `resume_after` in `view`.
pub(super) fn read(
    shared: &Shared,
    view: &View,
    options: &ListOptions,
    resume_after: Option<&[u8]>,
    limit: usize,
) -> Result<Chunk> {
    let mut chunk = Chunk {
        items: Vec::new(),
        prefixes: Vec::new(),
        resume_after: None,
        remaining: None,
    };
    let mut unexamined = Unexamined::new(options);
    if let Some(position) = resume_after {
        if !unexamined.advance_past(options, position) {
            chunk.remaining = Some(0).filter(|_| counts_items(options));
            return Ok(chunk);
        }
    }
    let budget = options.budget(limit);
    if !options.filters() {
        chunk.items.reserve(limit.min(view.tree.len()));
    }
    let (mut examined, mut found, mut page_bytes) = (0, 0, 0);
    let mut last: Option<Vec<u8>> = None;
    let mut exhausted = false;
    'chunk: while found < limit && examined < budget && page_bytes < options.max_page_bytes {
        let wanted = if options.filters() {
            (limit - found).max(MIN_FILTER_BATCH).min(budget - examined)
        } else {
            (limit - found).min(budget - examined)
        };
        let (lower, upper) = unexamined.bounds();
        let run = if options.reverse {
            run_through_first_rollup(view.tree.range_rev(lower, upper), options, wanted)
        } else {
            run_through_first_rollup(view.tree.range(lower, upper), options, wanted)
        };
        let Some((last_of_run, _)) = run.last() else {
            exhausted = true;
            break;
        };
        let plain = if options.rollup(last_of_run).is_some() {
            run.len() - 1
        } else {
            run.len()
        };
        let mut visited = 0;
        let mut full = false;
        shared.visit_live(&run[..plain], view.revision, options.reverse, |candidate| {
            visited += 1;
            if options.labels.matches(candidate.labels())
                && options.fields.matches(candidate.fields())
            {
                page_bytes += candidate.weight();
                chunk.items.push(candidate.into_entry(shared)?);
                found += 1;
            }
            full = found == limit || page_bytes >= options.max_page_bytes;
            Ok(if full {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            })
        })?;
        examined += visited;
        if let Some((key, _)) = run[..visited].last() {
            last = Some(key.to_vec());
        }
        if full {
            break 'chunk;
        }
        if let Some((key, _)) = run[..plain].last() {
            unexamined.advance_past(options, key);
        }
        if let Some((key, _)) = run.get(plain) {
            let prefix = options
                .rollup(key)
                .expect("the run was split at a rolled-up key")
                .to_vec();
            examined += 1;
            if !options.is_lower_marker(&prefix) {
                page_bytes += prefix.len();
                chunk.prefixes.push(prefix.clone());
                found += 1;
            }
            exhausted = !unexamined.advance_past(options, &prefix);
            last = Some(prefix);
            if exhausted {
                break;
            }
        }
    }
    let mut after_last = Unexamined::new(options);
    let left = match &last {
        Some(position) if !exhausted && after_last.advance_past(options, position) => {
            after_last.count(view)
        }
        _ => 0,
    };
    chunk.remaining = Some(left as u64).filter(|_| counts_items(options));
    chunk.resume_after = last.filter(|_| left > 0);
    Ok(chunk)
}

/// Up to `wanted` keys of `keys`, ending early after the first one a delimiter rolls up: the
/// keys after it are skipped by moving past its prefix, so collecting them would be wasted.
fn run_through_first_rollup<'a>(
    keys: impl Iterator<Item = (&'a Key, &'a Location)>,
    options: &ListOptions,
    wanted: usize,
) -> Vec<(Key, Location)> {
    let mut run = Vec::new();
    for (key, location) in keys.take(wanted) {
        run.push((key.clone(), *location));
        if options.rollup(key).is_some() {
            break;
        }
    }
    run
}

/// Whether a count of keys is a count of items: no selector drops keys and no delimiter folds
/// them together.
fn counts_items(options: &ListOptions) -> bool {
    !options.filters() && options.delimiter.is_none()
}
