//! Chunked lists: one page of a key range at a pinned revision, with an exact remaining count.

use std::ops::Bound;

use serde::Serialize;

use crate::index::View;
use crate::token::ContinueToken;
use crate::{Db, Entry, Error, Result, Revision, TokenRejection};

/// What to list: a key range, a page size, and where to continue.
///
/// # Examples
///
/// ```
/// use revkv::{Db, ListOptions};
/// # let db = Db::temporary()?;
/// for name in ["a", "b", "c"] {
///     db.put(format!("pods/{name}"), "spec")?;
/// }
/// let first = db.list(&ListOptions::prefix("pods/").limit(2))?;
/// assert_eq!(first.items.len(), 2);
/// assert_eq!(first.remaining, Some(1));
///
/// db.put("pods/d", "written after the list started")?;
/// let token = first.continue_token.expect("one item remains");
/// let second = db.list(&ListOptions::prefix("pods/").limit(2).continue_token(token))?;
/// assert_eq!(second.items.len(), 1, "the list reads the snapshot of its first chunk");
/// assert_eq!(second.revision, first.revision);
/// assert_eq!(second.continue_token, None);
/// # Ok::<(), revkv::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListOptions {
    lower: Bound<Vec<u8>>,
    upper: Bound<Vec<u8>>,
    limit: Option<usize>,
    continue_token: Option<String>,
    revision: Option<Revision>,
    reverse: bool,
}

/// One chunk of a list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ListPage {
    /// The entries of this chunk, in key order (descending for a reverse list).
    pub items: Vec<Entry>,
    /// The revision every chunk of this list is read at: the revision of its first chunk.
    pub revision: Revision,
    /// Pass it to [`ListOptions::continue_token`] for the next chunk; `None` on the last one.
    pub continue_token: Option<String>,
    /// The exact number of entries in the range after this chunk, at [`ListPage::revision`].
    pub remaining: Option<u64>,
}

impl ListOptions {
    /// Every key in the store.
    #[must_use]
    pub fn all() -> Self {
        ListOptions {
            lower: Bound::Unbounded,
            upper: Bound::Unbounded,
            limit: None,
            continue_token: None,
            revision: None,
            reverse: false,
        }
    }

    /// The keys that start with `prefix`.
    pub fn prefix(prefix: impl Into<Vec<u8>>) -> Self {
        let prefix = prefix.into();
        let upper = prefix_end(&prefix).map_or(Bound::Unbounded, Bound::Excluded);
        ListOptions {
            lower: Bound::Included(prefix),
            upper,
            ..ListOptions::all()
        }
    }

    /// The keys from `start` (included) to `end` (excluded).
    pub fn range(start: impl Into<Vec<u8>>, end: impl Into<Vec<u8>>) -> Self {
        ListOptions {
            lower: Bound::Included(start.into()),
            upper: Bound::Excluded(end.into()),
            ..ListOptions::all()
        }
    }

    /// The keys from `start` (included) to the end of the key space.
    pub fn from(start: impl Into<Vec<u8>>) -> Self {
        ListOptions {
            lower: Bound::Included(start.into()),
            ..ListOptions::all()
        }
    }

    /// At most `limit` entries per chunk; the default and the maximum are the store's
    /// [`max_page_size`](crate::Options::max_page_size).
    #[must_use]
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = Some(limit);
        self
    }

    /// Continues a list from the token of its previous chunk.
    #[must_use]
    pub fn continue_token(mut self, token: impl Into<String>) -> Self {
        self.continue_token = Some(token.into());
        self
    }

    /// Reads at this revision instead of the newest. With a continue token it must equal the
    /// token's revision.
    #[must_use]
    pub fn revision(mut self, revision: Revision) -> Self {
        self.revision = Some(revision);
        self
    }

    /// Lists in descending key order.
    #[must_use]
    pub fn reverse(mut self, reverse: bool) -> Self {
        self.reverse = reverse;
        self
    }

    /// Identifies the request a continue token belongs to: everything but the page size, the
    /// token itself and the revision.
    fn fingerprint(&self) -> u32 {
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(b"revkv list v1");
        for bound in [&self.lower, &self.upper] {
            let (tag, key): (u8, &[u8]) = match bound {
                Bound::Unbounded => (0, &[]),
                Bound::Included(key) => (1, key),
                Bound::Excluded(key) => (2, key),
            };
            hasher.update(&[tag]);
            hasher.update(&(key.len() as u64).to_be_bytes());
            hasher.update(key);
        }
        hasher.update(&[u8::from(self.reverse)]);
        hasher.finalize()
    }

    fn contains(&self, key: &[u8]) -> bool {
        let above_lower = match &self.lower {
            Bound::Unbounded => true,
            Bound::Included(lower) => key >= lower.as_slice(),
            Bound::Excluded(lower) => key > lower.as_slice(),
        };
        let below_upper = match &self.upper {
            Bound::Unbounded => true,
            Bound::Included(upper) => key <= upper.as_slice(),
            Bound::Excluded(upper) => key < upper.as_slice(),
        };
        above_lower && below_upper
    }
}

impl Db {
    /// Reads one chunk of a list.
    ///
    /// The first chunk (no continue token) reads at the requested revision, or the newest one,
    /// and pins it; every later chunk reads at that same revision, whatever was written since,
    /// so the concatenated chunks are exactly the range's contents at that revision. A chunk
    /// costs O(log n + limit), including its exact remaining count.
    ///
    /// # Errors
    ///
    /// - [`Error::InvalidContinueToken`] for a garbled token or one from another request;
    /// - [`Error::InvalidRequest`] for a zero or too large limit, or a revision that contradicts
    ///   the token;
    /// - [`Error::FutureRevision`] for a revision the store has not reached;
    /// - [`Error::Expired`] once the list's revision has been compacted; for a continued list it
    ///   carries a token that finishes the list at the newest revision (mixing two snapshots);
    /// - [`Error::Corrupted`] or [`Error::Storage`] when records cannot be read.
    pub fn list(&self, options: &ListOptions) -> Result<ListPage> {
        let max = self.shared.options.max_page_size;
        let limit = options.limit.unwrap_or(max);
        if limit == 0 || limit > max {
            return Err(Error::invalid_request(format!(
                "limit {limit} is outside 1..={max}"
            )));
        }
        let fingerprint = options.fingerprint();
        let (revision, resume_after) = match &options.continue_token {
            Some(token) => {
                let token = decode_for(options, fingerprint, token)?;
                (token.revision, Some(token.last_key))
            }
            None => (
                options.revision.unwrap_or_else(|| self.current_revision()),
                None,
            ),
        };
        let view = self
            .shared
            .view_at(revision)
            .map_err(|err| match (err, &resume_after) {
                (
                    Error::Expired {
                        requested,
                        compacted,
                        ..
                    },
                    Some(last_key),
                ) => Error::Expired {
                    requested,
                    compacted,
                    continue_token: Some(
                        ContinueToken {
                            revision: self.current_revision(),
                            reverse: options.reverse,
                            fingerprint,
                            last_key: last_key.clone(),
                        }
                        .encode(),
                    ),
                },
                (err, _) => err,
            })?;
        let page = self.read_chunk(&view, options, resume_after.as_deref(), limit)?;
        if page.continue_token.is_some() && resume_after.is_none() {
            self.shared.index.pin(view);
        }
        Ok(page)
    }

    fn read_chunk(
        &self,
        view: &View,
        options: &ListOptions,
        resume_after: Option<&[u8]>,
        limit: usize,
    ) -> Result<ListPage> {
        let mut lower = options.lower.as_ref().map(Vec::as_slice);
        let mut upper = options.upper.as_ref().map(Vec::as_slice);
        if let Some(last) = resume_after {
            if options.reverse {
                upper = Bound::Excluded(last);
            } else {
                lower = Bound::Excluded(last);
            }
        }
        let chunk: Vec<_> = if options.reverse {
            view.tree
                .range_rev(lower, upper)
                .take(limit)
                .map(|(k, l)| (k.clone(), *l))
                .collect()
        } else {
            view.tree
                .range(lower, upper)
                .take(limit)
                .map(|(k, l)| (k.clone(), *l))
                .collect()
        };
        let locations: Vec<_> = chunk.iter().map(|(_, location)| *location).collect();
        let items = self.shared.live_entries(&locations, view.revision)?;
        for ((key, location), entry) in chunk.iter().zip(&items) {
            if entry.key.as_slice() != &**key {
                return Err(Error::corrupted(
                    location.to_string(),
                    "the record holds another key than the index",
                ));
            }
        }
        let remaining = match chunk.last() {
            Some((last, _)) if options.reverse => view.tree.count(lower, Bound::Excluded(last)),
            Some((last, _)) => view.tree.count(Bound::Excluded(last), upper),
            None => 0,
        };
        let continue_token = chunk.last().filter(|_| remaining > 0).map(|(last, _)| {
            ContinueToken {
                revision: view.revision,
                reverse: options.reverse,
                fingerprint: options.fingerprint(),
                last_key: last.to_vec(),
            }
            .encode()
        });
        Ok(ListPage {
            items,
            revision: view.revision,
            continue_token,
            remaining: Some(remaining as u64),
        })
    }
}

/// Decodes `token` and checks that it belongs to this request.
fn decode_for(options: &ListOptions, fingerprint: u32, token: &str) -> Result<ContinueToken> {
    let reject = |reason| Error::InvalidContinueToken { reason };
    let token = ContinueToken::decode(token).map_err(reject)?;
    if token.fingerprint != fingerprint || token.reverse != options.reverse {
        return Err(reject(TokenRejection::ForeignRequest));
    }
    if !options.contains(&token.last_key) {
        return Err(reject(TokenRejection::OutsideRange));
    }
    if options
        .revision
        .is_some_and(|revision| revision != token.revision)
    {
        return Err(reject(TokenRejection::RevisionMismatch));
    }
    Ok(token)
}

/// The smallest key greater than every key that starts with `prefix`; `None` when no such key
/// exists (the prefix is empty or all `0xff`).
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_skips_trailing_ff() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(&[b'a', 0xff, 0xff]), Some(b"b".to_vec()));
        assert_eq!(prefix_end(&[0xff]), None);
        assert_eq!(prefix_end(b""), None);
    }

    #[test]
    fn fingerprint_separates_requests_but_not_pages() {
        let base = ListOptions::prefix("pods/");
        assert_eq!(
            base.fingerprint(),
            base.clone()
                .limit(7)
                .revision(Revision::new(3))
                .fingerprint()
        );
        assert_ne!(
            base.fingerprint(),
            ListOptions::prefix("pods").fingerprint()
        );
        assert_ne!(base.fingerprint(), base.clone().reverse(true).fingerprint());
        assert_ne!(
            ListOptions::range("a", "b").fingerprint(),
            ListOptions::range("a", "c").fingerprint()
        );
    }
}
