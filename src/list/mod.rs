//! Chunked lists: one page of a key range at a pinned revision, with an exact remaining count.

mod chunk;
mod options;

use serde::Serialize;

pub(crate) use options::prefix_end;
pub use options::{ListOptions, DEFAULT_MAX_PAGE_BYTES, DEFAULT_SCAN_BUDGET};

use crate::token::{ContinueToken, Issuer, Sealed};
use crate::{Db, Entry, Error, Result, Revision, TokenRejection};

/// One chunk of a list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ListPage {
    /// The entries of this chunk, in key order (descending for a reverse list).
    pub items: Vec<Entry>,
    /// The common prefixes a [delimiter](ListOptions::delimiter) rolled up in this chunk, in
    /// the same order. In Swift's listing, each one sits among the items in key order. Every
    /// prefix is returned once across the chunks of a list.
    pub prefixes: Vec<Vec<u8>>,
    /// The revision every chunk of this list is read at: the revision of its first chunk.
    pub revision: Revision,
    /// Pass it to [`ListOptions::continue_token`] for the next chunk; `None` on the last one.
    /// A filtered chunk may be short, or empty, and still carry a token.
    pub continue_token: Option<String>,
    /// The exact number of entries in the range after this chunk, at [`ListPage::revision`].
    /// `None` when selectors or a delimiter make it unknown without reading what remains.
    pub remaining: Option<u64>,
}

impl Db {
    /// Reads one chunk of a list.
    ///
    /// The first chunk (no continue token) reads at the requested revision, or the newest one,
    /// and pins it; every later chunk reads at that same revision, whatever was written since,
    /// so the concatenated chunks are exactly the range's contents at that revision. An
    /// unfiltered chunk costs O(log n + limit), including its exact remaining count. A filtered
    /// chunk reads keys until it has `limit` matches or has examined its
    /// [scan budget](ListOptions::scan_budget); a delimiter skips each rolled-up prefix with one
    /// seek.
    ///
    /// # Errors
    ///
    /// - [`Error::InvalidContinueToken`] for a garbled or forged token, one of another store or
    ///   request, or one that contradicts the request (its range or revision);
    /// - [`Error::InvalidRequest`] for a zero or too large limit, a range that starts after its
    ///   end, or markers in the wrong order for the direction;
    /// - [`Error::FutureRevision`] for a revision the store has not reached;
    /// - [`Error::Expired`] once the list's revision has been compacted; for a continued list it
    ///   carries a token that finishes the list at the newest revision (mixing two snapshots);
    /// - [`Error::Corrupted`] or [`Error::Storage`] when records cannot be read.
    ///
    /// # Examples
    ///
    /// Swift-style listing with a delimiter and a label selector:
    ///
    /// ```
    /// use revkv::{Db, ListOptions, Put};
    /// # let db = Db::temporary()?;
    /// db.put_with(Put::new("photos/a.jpg", "..").label("kind", "jpeg"))?;
    /// db.put_with(Put::new("photos/b.png", "..").label("kind", "png"))?;
    /// db.put_with(Put::new("photos/2024/c.jpg", "..").label("kind", "jpeg"))?;
    /// let page = db.list(&ListOptions::prefix("photos/").delimiter("/"))?;
    /// assert_eq!(page.prefixes, [b"photos/2024/".to_vec()]);
    /// assert_eq!(page.items.len(), 2);
    ///
    /// let jpegs = ListOptions::prefix("photos/").label_selector("kind=jpeg".parse()?);
    /// assert_eq!(db.list(&jpegs)?.items.len(), 2);
    /// # Ok::<(), revkv::Error>(())
    /// ```
    pub fn list(&self, options: &ListOptions) -> Result<ListPage> {
        let max = self.shared.options.max_page_size;
        let limit = options.limit.unwrap_or(max);
        if limit == 0 || limit > max {
            return Err(Error::invalid_request(format!(
                "limit {limit} is outside 1..={max}"
            )));
        }
        options.check_order()?;
        let request = options.canonical();
        let (store, run, secret) = {
            let identity = self.shared.identity.read();
            (
                identity.store,
                identity.current().id,
                identity.secret.clone(),
            )
        };
        let issuer = Issuer::new(&secret, &request);
        let resumed = match &options.continue_token {
            Some(token) => Some(self.accept(options, &issuer, token)?),
            None => None,
        };
        let token = |revision, position| {
            issuer.issue(&ContinueToken {
                store,
                run,
                revision,
                started_at: resumed.as_ref().map_or(revision, |token| token.started_at),
                position,
            })
        };
        let revision = match &resumed {
            Some(token) => Some(token.revision),
            None => options.revision,
        };
        let resume_after = resumed.as_ref().map(|token| token.position.as_slice());
        // A new list takes the visible view itself: asking for it by its revision could find
        // a newer one published in between, and rebuild the older one.
        let view = match revision {
            Some(revision) => self.shared.view_at(revision),
            None => Ok(self.shared.index.visible()),
        };
        // The revision may be compacted while the chunk reads it, not only before.
        let read = view.and_then(|view| {
            let chunk = chunk::read(&self.shared, &view, options, resume_after, limit)?;
            Ok((view, chunk))
        });
        let (view, chunk) = read.map_err(|err| match (err, &resumed) {
            (
                Error::Expired {
                    requested,
                    compacted,
                    ..
                },
                Some(resumed),
            ) => Error::Expired {
                requested,
                compacted,
                continue_token: Some(token(self.current_revision(), resumed.position.clone())),
            },
            (err, _) => err,
        })?;
        let continue_token = chunk
            .resume_after
            .map(|position| token(view.revision, position));
        // Pinned whenever chunks remain, not only after the first: a view the cache evicted,
        // and a later chunk rebuilt, is kept again for the chunks after it.
        if continue_token.is_some() {
            self.shared.index.pin(view.clone());
        }
        Ok(ListPage {
            items: chunk.items,
            prefixes: chunk.prefixes,
            revision: view.revision,
            continue_token,
            remaining: chunk.remaining,
        })
    }
}

impl Db {
    /// Decodes `token` and checks that this store issued it for this request, and that it does
    /// not contradict the request.
    fn accept(
        &self,
        options: &ListOptions,
        issuer: &Issuer<'_>,
        token: &str,
    ) -> Result<ContinueToken> {
        let reject = |reason| Error::InvalidContinueToken { reason };
        let sealed = Sealed::decode(token).map_err(reject)?;
        // Before the tag, so that another store's token, or one whose revision was lost, is
        // refused for what it is. What the token claims only names the refusal: nothing it
        // says is acted on before the tag shows that this store issued it.
        let claims = sealed.claims();
        self.shared
            .check_token_origin(claims.store, claims.run, claims.revision)?;
        let token = issuer.open(sealed).map_err(reject)?;
        if !options.may_resume_at(&token.position) {
            return Err(reject(TokenRejection::OutsideRange));
        }
        if options
            .revision
            .is_some_and(|revision| revision != token.revision && revision != token.started_at)
        {
            return Err(reject(TokenRejection::RevisionMismatch));
        }
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A token of `options` at the newest revision that names `position`, made with the store's
    /// secret, as only the store can.
    fn forged(db: &Db, options: &ListOptions, position: &str) -> String {
        let identity = db.shared.identity.read();
        let request = options.canonical();
        Issuer::new(&identity.secret, &request).issue(&ContinueToken {
            store: identity.store,
            run: identity.current().id,
            revision: db.current_revision(),
            started_at: db.current_revision(),
            position: position.into(),
        })
    }

    #[test]
    fn a_common_prefix_position_must_lie_in_the_range_like_any_other() -> Result<()> {
        let db = Db::temporary()?;
        for key in ["a/1", "a/2", "m/1", "m/2", "n", "x/1"] {
            db.put(key, "v")?;
        }
        let forward = ListOptions::all().delimiter("/").start_after("m/1");
        let reverse = ListOptions::all()
            .delimiter("/")
            .end_before("m/1")
            .reverse(true);
        for options in [forward, reverse] {
            // `a/` rolls up to itself, but no key of the range lies under it: a forward list
            // resumed there would start over and repeat its items.
            for outside in ["a/", "b/"] {
                let resumed = options
                    .clone()
                    .continue_token(forged(&db, &options, outside));
                assert!(
                    matches!(
                        db.list(&resumed),
                        Err(Error::InvalidContinueToken {
                            reason: TokenRejection::OutsideRange
                        })
                    ),
                    "{outside} in {options:?}"
                );
            }
            // `m/` lies below the marker, but `m/2` rolls up into it.
            for inside in ["m/", "n", "x/"] {
                let resumed = options
                    .clone()
                    .continue_token(forged(&db, &options, inside));
                assert!(db.list(&resumed).is_ok(), "{inside} in {options:?}");
            }
        }
        Ok(())
    }
}
