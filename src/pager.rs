//! Client-side pagination over any list source: collect or visit a whole list the way
//! Kubernetes' client-go pager does, or iterate it item by item or page by page the way Google's
//! API client iterators do. Every pager carries the common prefixes a delimiter rolls up, where
//! the list returns them.

use std::fmt;
use std::iter::FusedIterator;
use std::panic;
use std::sync::mpsc;
use std::thread;

use crate::{Db, Entry, Error, ListOptions, ListPage, Result, Revision};

/// The page size of every pager that is not given one, as in client-go.
const DEFAULT_PAGE_SIZE: usize = 500;
/// How many chunks [`ListPager::each`] fetches ahead by default, as in client-go.
const DEFAULT_PAGE_BUFFER_SIZE: usize = 10;

/// Anything that answers one list request with one chunk: a [`Db`], or a closure taking
/// `&ListOptions`, for instance one that forwards the request to a remote store.
///
/// A source keeps the contract of [`Db::list`]: a chunk holds at most the request's limit of
/// items, and carries a continue token unless it is the last one. A source that filters may
/// return short or even empty chunks that still carry a token; every pager handles them.
///
/// A closure must name its argument type (`|options: &ListOptions|`), so that it accepts a
/// request of any lifetime.
///
/// # Examples
///
/// A source that hides finished jobs, as a filtered list would:
///
/// ```
/// use revkv::{Db, ListOptions, ListPage, ListSource};
/// # let db = Db::temporary()?;
/// for (name, state) in [("a", "done"), ("b", "queued"), ("c", "done"), ("d", "queued")] {
///     db.put(format!("jobs/{name}"), state)?;
/// }
/// let queued = |options: &ListOptions| -> revkv::Result<ListPage> {
///     let mut page = db.list(options)?;
///     page.items.retain(|job| job.value == b"queued");
///     page.remaining = None; // the store's count includes the hidden jobs
///     Ok(page)
/// };
/// let first = queued.list_page(&ListOptions::prefix("jobs/").limit(1))?;
/// assert!(first.items.is_empty(), "job a is hidden");
/// assert!(first.continue_token.is_some(), "an empty chunk does not end the list");
/// # Ok::<(), revkv::Error>(())
/// ```
pub trait ListSource {
    /// Reads one chunk of the list that `options` describes.
    ///
    /// # Errors
    ///
    /// Whatever the source fails with, as [`Db::list`] does for a store. Pagers pass errors on
    /// to their caller; [`ListPager::list`] also recovers from [`Error::Expired`].
    fn list_page(&self, options: &ListOptions) -> Result<ListPage>;
}

impl ListSource for Db {
    fn list_page(&self, options: &ListOptions) -> Result<ListPage> {
        self.list(options)
    }
}

impl<F> ListSource for F
where
    F: Fn(&ListOptions) -> Result<ListPage>,
{
    fn list_page(&self, options: &ListOptions) -> Result<ListPage> {
        self(options)
    }
}

/// One element of a list as [`ListPager::each`], [`Items`] and [`Pages`] return it: an item, or
/// a common prefix that a [delimiter](ListOptions::delimiter) rolled up. They come in the list's
/// order, by key (descending in a reverse list), each prefix where its keys would be, as in
/// Swift's listing. A list without a delimiter holds only items.
///
/// # Examples
///
/// ```
/// use revkv::{Db, Items, ListOptions, Listed};
/// # let db = Db::temporary()?;
/// for name in ["a.jpg", "2024/b.jpg", "2024/c.jpg", "d.jpg"] {
///     db.put(format!("photos/{name}"), "..")?;
/// }
/// let mut photos = Items::new(db, ListOptions::prefix("photos/").delimiter("/"));
/// assert_eq!(photos.next().transpose()?, Some(Listed::Prefix(b"photos/2024/".to_vec())));
/// let Some(Listed::Item(photo)) = photos.next().transpose()? else {
///     panic!("an item follows the prefix");
/// };
/// assert_eq!(photo.key, b"photos/a.jpg");
/// # Ok::<(), revkv::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Listed {
    /// An entry of the list.
    Item(Entry),
    /// A common prefix, up to and including the delimiter: every key under it rolled up into it.
    Prefix(Vec<u8>),
}

impl Listed {
    /// The item's key, or the prefix: what the list is ordered by.
    ///
    /// # Examples
    ///
    /// ```
    /// use revkv::{Db, Items, ListOptions};
    /// # let db = Db::temporary()?;
    /// db.put("a/1", "v")?;
    /// db.put("b", "v")?;
    /// let keys = Items::new(db, ListOptions::all().delimiter("/"))
    ///     .map(|listed| listed.map(|listed| listed.key().to_vec()))
    ///     .collect::<revkv::Result<Vec<_>>>()?;
    /// assert_eq!(keys, [b"a/".to_vec(), b"b".to_vec()]);
    /// # Ok::<(), revkv::Error>(())
    /// ```
    #[must_use]
    pub fn key(&self) -> &[u8] {
        match self {
            Listed::Item(entry) => &entry.key,
            Listed::Prefix(prefix) => prefix,
        }
    }

    /// The item, or `None` for a common prefix.
    ///
    /// # Examples
    ///
    /// ```
    /// use revkv::{Db, Items, ListOptions, Listed};
    /// # let db = Db::temporary()?;
    /// db.put("jobs/1", "done")?;
    /// let jobs = Items::new(db, ListOptions::prefix("jobs/"))
    ///     .filter_map(|listed| listed.map(Listed::into_item).transpose())
    ///     .collect::<revkv::Result<Vec<_>>>()?;
    /// assert_eq!(jobs[0].value, b"done");
    /// # Ok::<(), revkv::Error>(())
    /// ```
    #[must_use]
    pub fn into_item(self) -> Option<Entry> {
        match self {
            Listed::Item(entry) => Some(entry),
            Listed::Prefix(_) => None,
        }
    }
}

/// The items and common prefixes of `chunk` in the order of the list: by key, descending when
/// `reverse`. Both come in that order already; no item's key is a prefix, which it would have
/// rolled up into.
fn in_list_order(chunk: ListPage, reverse: bool) -> Vec<Listed> {
    let mut listed = Vec::with_capacity(chunk.items.len() + chunk.prefixes.len());
    let mut items = chunk.items.into_iter().map(Listed::Item).peekable();
    let mut prefixes = chunk.prefixes.into_iter().map(Listed::Prefix).peekable();
    loop {
        let item_first = match (items.peek(), prefixes.peek()) {
            (Some(item), Some(prefix)) => (item.key() < prefix.key()) != reverse,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => return listed,
        };
        listed.extend(if item_first {
            items.next()
        } else {
            prefixes.next()
        });
    }
}

/// Reads whole lists chunk by chunk, as Kubernetes' client-go pager does.
///
/// - [`list`](ListPager::list) collects every item and common prefix, and lists again from
///   scratch when the list's revision is compacted away before its last chunk;
/// - [`each`](ListPager::each) calls back for every item and common prefix while a background
///   thread fetches chunks ahead.
///
/// Every request asks for [`page_size`](ListPager::page_size) items (500 by default). To drive
/// an iteration from the caller's side, use [`Items`] or [`Pages`].
///
/// # Examples
///
/// ```
/// use revkv::{Db, ListOptions, ListPager};
/// # let db = Db::temporary()?;
/// for i in 0..5 {
///     db.put(format!("pods/{i}"), "spec")?;
/// }
/// let pager = ListPager::new(db.clone()).page_size(2);
/// let list = pager.list(&ListOptions::prefix("pods/"))?;
/// assert_eq!(list.items.len(), 5);
/// assert!(list.paginated, "read in three chunks of at most two items");
/// assert_eq!(list.revision, db.current_revision());
/// # Ok::<(), revkv::Error>(())
/// ```
pub struct ListPager<S> {
    source: S,
    page_size: usize,
    page_buffer_size: usize,
    full_list_if_expired: bool,
}

/// A whole list, collected by [`ListPager::list`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PagedList {
    /// Every item of the list, in the list's order.
    pub items: Vec<Entry>,
    /// Every common prefix a [delimiter](ListOptions::delimiter) rolled up, in the list's
    /// order. As in [`ListPage::prefixes`], each sits among the items in key order.
    pub prefixes: Vec<Vec<u8>>,
    /// The revision every item was read at.
    pub revision: Revision,
    /// True when the items came from more than one chunk.
    pub paginated: bool,
    /// True when the first attempt's revision was compacted before its last chunk, and these
    /// items come from a second list, started from scratch at the newest revision.
    pub relisted: bool,
}

impl<S: ListSource> ListPager<S> {
    /// A pager over `source`, with a page size of 500, a page buffer of 10 chunks, and the full
    /// relist on [`Error::Expired`] turned on: client-go's defaults.
    ///
    /// # Examples
    ///
    /// ```
    /// use revkv::{Db, ListOptions, ListPage, ListPager};
    /// # let db = Db::temporary()?;
    /// let remote = |options: &ListOptions| -> revkv::Result<ListPage> {
    ///     db.list(options) // an HTTP request in real life
    /// };
    /// let pager = ListPager::new(remote);
    /// assert!(pager.list(&ListOptions::all())?.items.is_empty());
    /// # Ok::<(), revkv::Error>(())
    /// ```
    pub fn new(source: S) -> Self {
        ListPager {
            source,
            page_size: DEFAULT_PAGE_SIZE,
            page_buffer_size: DEFAULT_PAGE_BUFFER_SIZE,
            full_list_if_expired: true,
        }
    }

    /// Asks for `size` items per chunk (at least 1; 500 by default). A [`Db`] refuses sizes
    /// above its [`max_page_size`](crate::Options::max_page_size).
    ///
    /// # Examples
    ///
    /// ```
    /// use revkv::{Db, ListOptions, ListPager};
    /// # let db = Db::temporary()?;
    /// # db.put("a", "1")?;
    /// # db.put("b", "2")?;
    /// let list = ListPager::new(db).page_size(1).list(&ListOptions::all())?;
    /// assert!(list.paginated);
    /// # Ok::<(), revkv::Error>(())
    /// ```
    #[must_use]
    pub fn page_size(mut self, size: usize) -> Self {
        self.page_size = size.max(1);
        self
    }

    /// How many chunks [`each`](ListPager::each) may fetch ahead of its callback (10 by
    /// default). With 0 it fetches every chunk on the caller's thread, when the callback is done
    /// with the previous one.
    ///
    /// # Examples
    ///
    /// ```
    /// use revkv::{Db, ListOptions, ListPager};
    /// # let db = Db::temporary()?;
    /// # db.put("a", "1")?;
    /// let mut count = 0;
    /// ListPager::new(db).page_buffer_size(0).each(&ListOptions::all(), |_| {
    ///     count += 1;
    ///     Ok::<(), revkv::Error>(())
    /// })?;
    /// assert_eq!(count, 1);
    /// # Ok::<(), revkv::Error>(())
    /// ```
    #[must_use]
    pub fn page_buffer_size(mut self, chunks: usize) -> Self {
        self.page_buffer_size = chunks;
        self
    }

    /// Whether [`list`](ListPager::list) starts over when its revision is compacted away
    /// midway (on by default).
    ///
    /// # Examples
    ///
    /// ```
    /// use revkv::{Db, ListPager};
    /// # let db = Db::temporary()?;
    /// let strict = ListPager::new(db).full_list_if_expired(false);
    /// # Ok::<(), revkv::Error>(())
    /// ```
    #[must_use]
    pub fn full_list_if_expired(mut self, relist: bool) -> Self {
        self.full_list_if_expired = relist;
        self
    }

    /// Reads every chunk of the list and collects the items and common prefixes: all of them
    /// read at the revision of the first chunk.
    ///
    /// When a chunk after the first fails with [`Error::Expired`] and the fallback is on
    /// ([`full_list_if_expired`](ListPager::full_list_if_expired)), the list starts over from
    /// scratch with the same `options`, and [`PagedList::relisted`] says so. The second list is
    /// paginated too, since a store caps every request at its maximum page size, but it is
    /// just as consistent: all its chunks read the snapshot of its own first chunk, the newest
    /// revision. The fallback is tried once: if the second list expires as well, its error is
    /// returned. It only helps lists of the newest revision: when `options` names a revision or
    /// a continue token, the second list asks for the same compacted revision and expires.
    ///
    /// # Errors
    ///
    /// The first error of the source, as described for [`Db::list`]; [`Error::Expired`] when
    /// the first chunk expires, when the fallback is off, or when the second list expires too.
    ///
    /// # Examples
    ///
    /// ```
    /// use revkv::{Db, ListOptions, ListPager};
    /// # let db = Db::temporary()?;
    /// db.put("nodes/a", "ready")?;
    /// let list = ListPager::new(db.clone()).list(&ListOptions::prefix("nodes/"))?;
    /// assert_eq!(list.items[0].key, b"nodes/a");
    /// assert!(!list.paginated && !list.relisted);
    /// # Ok::<(), revkv::Error>(())
    /// ```
    pub fn list(&self, options: &ListOptions) -> Result<PagedList> {
        self.collect(options, self.full_list_if_expired)
    }

    fn collect(&self, options: &ListOptions, relist_if_expired: bool) -> Result<PagedList> {
        let mut list = PagedList {
            items: Vec::new(),
            prefixes: Vec::new(),
            revision: Revision::ZERO,
            paginated: false,
            relisted: false,
        };
        let mut chunks_read = 0;
        for chunk in Chunks::new(&self.source, options, self.page_size) {
            match chunk {
                Ok(chunk) => {
                    list.revision = chunk.revision;
                    list.items.extend(chunk.items);
                    list.prefixes.extend(chunk.prefixes);
                    chunks_read += 1;
                }
                // An expired first chunk would expire again: only a later one means that the
                // list outlived its revision.
                Err(error) if error.is_expired() && relist_if_expired && chunks_read > 0 => {
                    let relisted = self.collect(options, false)?;
                    return Ok(PagedList {
                        relisted: true,
                        ..relisted
                    });
                }
                Err(error) => return Err(error),
            }
        }
        list.paginated = chunks_read > 1;
        Ok(list)
    }

    /// Calls `visit` with every item and common prefix of the list, in the list's order (see
    /// [`Listed`]), all read at the revision of the first chunk.
    ///
    /// A background thread fetches up to [`page_buffer_size`](ListPager::page_buffer_size)
    /// chunks ahead through a bounded channel, so at most that many chunks, plus the one being
    /// visited and the one being fetched, are in memory at once. With a buffer of 0 no thread
    /// is started, but `S` must be `Sync` all the same; a source that is not can be iterated
    /// with [`Items`] instead.
    ///
    /// The first error, from the source or from `visit`, stops the iteration and is returned:
    /// the thread stops after the chunk it is fetching, and has been joined when `each`
    /// returns. `visit` returns its own error type `E`, which must convert from [`Error`] so
    /// that it can carry the source's errors too (use `revkv::Error` itself when `visit` cannot
    /// fail otherwise).
    ///
    /// Unlike [`list`](ListPager::list), `each` does not start over on [`Error::Expired`]: the
    /// items visited so far cannot be taken back, and a second list would visit them again,
    /// from another snapshot. The error is returned; the continue token it carries finishes the
    /// list at the newest revision, for a caller who accepts mixing two snapshots.
    ///
    /// # Errors
    ///
    /// The first error of `visit`, or the first error of the source converted into `E`.
    ///
    /// # Panics
    ///
    /// With the panic of the source or of `visit`, once the thread has stopped; and when the
    /// operating system cannot start a thread.
    ///
    /// # Examples
    ///
    /// ```
    /// use revkv::{Db, ListOptions, ListPager, Listed};
    ///
    /// #[derive(Debug)]
    /// enum Stop {
    ///     Found(Vec<u8>),
    ///     Store(revkv::Error),
    /// }
    /// impl From<revkv::Error> for Stop {
    ///     fn from(error: revkv::Error) -> Self {
    ///         Stop::Store(error)
    ///     }
    /// }
    ///
    /// # let db = Db::temporary()?;
    /// for i in 0..10 {
    ///     db.put(format!("users/{i}"), if i == 3 { "admin" } else { "member" })?;
    /// }
    /// let pager = ListPager::new(db).page_size(2);
    /// let outcome = pager.each(&ListOptions::prefix("users/"), |user| match user {
    ///     Listed::Item(user) if user.value == b"admin" => Err(Stop::Found(user.key)),
    ///     _ => Ok(()),
    /// });
    /// assert!(matches!(outcome, Err(Stop::Found(key)) if key == b"users/3"));
    /// # Ok::<(), revkv::Error>(())
    /// ```
    pub fn each<E, F>(&self, options: &ListOptions, mut visit: F) -> Result<(), E>
    where
        S: Sync,
        E: From<Error>,
        F: FnMut(Listed) -> Result<(), E>,
    {
        let chunks = Chunks::new(&self.source, options, self.page_size);
        let reverse = options.reverse;
        if self.page_buffer_size == 0 {
            return visit_all(chunks, reverse, &mut visit);
        }
        thread::scope(|scope| {
            let (sender, receiver) = mpsc::sync_channel(self.page_buffer_size);
            let producer = thread::Builder::new()
                .name("revkv-pager".into())
                .spawn_scoped(scope, move || {
                    for chunk in chunks {
                        if sender.send(chunk).is_err() {
                            break; // the consumer stopped
                        }
                    }
                })
                .expect("spawning the pager's prefetching thread");
            let outcome = visit_all(receiver.iter(), reverse, &mut visit);
            // Closing the channel is what stops a producer that is still ahead.
            drop(receiver);
            // A producer that panicked closed the channel early: re-raise its panic rather
            // than pass a truncated list off as complete.
            if let Err(panic) = producer.join() {
                panic::resume_unwind(panic);
            }
            outcome
        })
    }
}

impl<S> fmt::Debug for ListPager<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ListPager")
            .field("page_size", &self.page_size)
            .field("page_buffer_size", &self.page_buffer_size)
            .field("full_list_if_expired", &self.full_list_if_expired)
            .finish_non_exhaustive()
    }
}

fn visit_all<E: From<Error>>(
    chunks: impl IntoIterator<Item = Result<ListPage>>,
    reverse: bool,
    visit: &mut impl FnMut(Listed) -> Result<(), E>,
) -> Result<(), E> {
    for chunk in chunks {
        for listed in in_list_order(chunk?, reverse) {
            visit(listed)?;
        }
    }
    Ok(())
}

/// An iterator over the items and common prefixes of a list (see [`Listed`]), fetched a chunk at
/// a time when the previous chunk is used up, all read at the revision of the first chunk.
///
/// The page size (500 by default) is only the limit asked for: a source may return shorter
/// chunks, and they are iterated all the same. [`size_hint`](Iterator::size_hint) and
/// [`remaining`](Items::remaining) use the count of remaining items of the newest chunk.
///
/// An error ends the iteration: it is returned once, and `next` returns `None` from then on,
/// as after the last item. So an iteration never skips or repeats an item, but it can end
/// early, and then only the error it returned says so. To retry a failed request, use
/// [`Pages`], whose errors leave it where it was.
///
/// # Examples
///
/// ```
/// use revkv::{Db, Items, ListOptions};
/// # let db = Db::temporary()?;
/// for i in 0..5 {
///     db.put(format!("pods/{i}"), "spec")?;
/// }
/// let mut pods = Items::new(db.clone(), ListOptions::prefix("pods/")).page_size(2);
/// let first = pods.next().expect("five pods")?;
/// assert_eq!(first.key(), b"pods/0");
/// assert_eq!(pods.remaining(), Some(4));
/// let rest = pods.collect::<revkv::Result<Vec<_>>>()?;
/// assert_eq!(rest.len(), 4);
/// # Ok::<(), revkv::Error>(())
/// ```
pub struct Items<S> {
    source: S,
    cursor: Cursor,
    page_size: usize,
    /// The unreturned items and prefixes of the newest chunk.
    buffer: std::vec::IntoIter<Listed>,
}

impl<S: ListSource> Items<S> {
    /// Iterates the items of the list that `options` describes, starting after its continue
    /// token if it has one.
    ///
    /// # Examples
    ///
    /// ```
    /// use revkv::{Db, Items, ListOptions};
    /// # let db = Db::temporary()?;
    /// db.put("a", "1")?;
    /// let keys = Items::new(db, ListOptions::all())
    ///     .map(|item| item.map(|item| item.key().to_vec()))
    ///     .collect::<revkv::Result<Vec<_>>>()?;
    /// assert_eq!(keys, [b"a".to_vec()]);
    /// # Ok::<(), revkv::Error>(())
    /// ```
    pub fn new(source: S, options: ListOptions) -> Self {
        Items {
            source,
            cursor: Cursor::new(options),
            page_size: DEFAULT_PAGE_SIZE,
            buffer: Vec::new().into_iter(),
        }
    }

    /// Asks for `size` items per chunk from the next fetch on (at least 1; 500 by default).
    ///
    /// # Examples
    ///
    /// ```
    /// use revkv::{Db, Items, ListOptions};
    /// # let db = Db::temporary()?;
    /// # db.put("a", "1")?;
    /// let items = Items::new(db, ListOptions::all()).page_size(100);
    /// assert_eq!(items.count(), 1);
    /// # Ok::<(), revkv::Error>(())
    /// ```
    #[must_use]
    pub fn page_size(mut self, size: usize) -> Self {
        self.page_size = size.max(1);
        self
    }

    /// How many items of the list follow those returned so far: the items left of the newest
    /// chunk plus the count it reported (exact for a [`Db`]). `None` before the first chunk, and
    /// when the source does not count.
    ///
    /// # Examples
    ///
    /// ```
    /// use revkv::{Db, Items, ListOptions};
    /// # let db = Db::temporary()?;
    /// # for i in 0..3 { db.put(format!("k{i}"), "v")?; }
    /// let mut items = Items::new(db, ListOptions::all()).page_size(2);
    /// assert_eq!(items.remaining(), None);
    /// items.next();
    /// assert_eq!(items.remaining(), Some(2));
    /// # Ok::<(), revkv::Error>(())
    /// ```
    #[must_use]
    pub fn remaining(&self) -> Option<u64> {
        let buffered = self.buffer.len() as u64;
        self.cursor
            .remaining
            .map(|after| after.saturating_add(buffered))
    }
}

impl<S: ListSource> Iterator for Items<S> {
    type Item = Result<Listed>;

    fn next(&mut self) -> Option<Result<Listed>> {
        loop {
            if let Some(listed) = self.buffer.next() {
                return Some(Ok(listed));
            }
            match self.cursor.read_listed(&self.source, self.page_size)? {
                Ok(listed) => self.buffer = listed.into_iter(),
                Err(error) => return Some(Err(error)),
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let buffered = self.buffer.len();
        if self.cursor.is_done() {
            return (buffered, Some(buffered));
        }
        let more = self
            .cursor
            .remaining
            .and_then(|after| usize::try_from(after).ok());
        (buffered, more.and_then(|more| more.checked_add(buffered)))
    }
}

impl<S: ListSource> FusedIterator for Items<S> {}

impl<S> fmt::Debug for Items<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Items")
            .field("cursor", &self.cursor)
            .field("page_size", &self.page_size)
            .field("buffered", &self.buffer.len())
            .finish_non_exhaustive()
    }
}

/// An iterator over the pages of a list, each of exactly the page size, that can stop and
/// resume from a token, also in another process.
///
/// [`next_page`](Pages::next_page) returns exactly [`set_page_size`](Pages::set_page_size)
/// items and common prefixes (500 by default, see [`Listed`]) unless fewer remain, asking the
/// source for more when it returns short or empty chunks, as a filtered source does. Every request asks for the items the page
/// still lacks, never more, so the continue token of the last chunk read is exactly the
/// position after the last page returned: that is what
/// [`next_page_token`](Pages::next_page_token) gives, and
/// [`set_page_token`](Pages::set_page_token) resumes from it. A store serves such a token
/// after it has been reopened, as long as its revision has not been compacted.
///
/// `next_page` either returns a whole page and moves past it, or returns an error and stays
/// where it was: the next call requests that page again from its first item. Pages are thus
/// never skipped or repeated, and a transient error can simply be retried.
///
/// # Examples
///
/// ```
/// use revkv::{Db, ListOptions, Pages};
/// # let db = Db::temporary()?;
/// for i in 0..5 {
///     db.put(format!("pods/{i}"), "spec")?;
/// }
/// let mut pages = Pages::new(db.clone(), ListOptions::prefix("pods/"));
/// pages.set_page_size(2);
/// assert_eq!(pages.next_page()?.map(|page| page.len()), Some(2));
/// let token = pages.next_page_token().expect("three pods remain").to_owned();
///
/// // Later, maybe in another process:
/// let mut resumed = Pages::new(db, ListOptions::prefix("pods/"));
/// resumed.set_page_size(2);
/// resumed.set_page_token(token);
/// let next = resumed.next_page()?.expect("three pods remain");
/// assert_eq!(next[0].key(), b"pods/2");
/// # Ok::<(), revkv::Error>(())
/// ```
pub struct Pages<S> {
    source: S,
    cursor: Cursor,
    page_size: usize,
}

impl<S: ListSource> Pages<S> {
    /// Pages through the list that `options` describes, from its start or from its continue
    /// token if it has one. Resume with [`set_page_token`](Pages::set_page_token) instead, so
    /// that [`next_page_token`](Pages::next_page_token) returns the token before the first
    /// page.
    ///
    /// # Examples
    ///
    /// ```
    /// use revkv::{Db, ListOptions, Pages};
    /// # let db = Db::temporary()?;
    /// let mut pages = Pages::new(db, ListOptions::prefix("empty/"));
    /// assert_eq!(pages.next_page()?, None);
    /// # Ok::<(), revkv::Error>(())
    /// ```
    pub fn new(source: S, options: ListOptions) -> Self {
        Pages {
            source,
            cursor: Cursor::new(options),
            page_size: DEFAULT_PAGE_SIZE,
        }
    }

    /// Sets the size of the pages that follow (at least 1; 500 by default). A [`Db`] refuses
    /// sizes above its [`max_page_size`](crate::Options::max_page_size).
    ///
    /// # Examples
    ///
    /// ```
    /// use revkv::{Db, ListOptions, Pages};
    /// # let db = Db::temporary()?;
    /// # for i in 0..3 { db.put(format!("k{i}"), "v")?; }
    /// let mut pages = Pages::new(db, ListOptions::all());
    /// pages.set_page_size(1);
    /// assert_eq!(pages.next_page()?.unwrap().len(), 1);
    /// pages.set_page_size(10);
    /// assert_eq!(pages.next_page()?.unwrap().len(), 2);
    /// # Ok::<(), revkv::Error>(())
    /// ```
    pub fn set_page_size(&mut self, size: usize) {
        self.page_size = size.max(1);
    }

    /// Continues after the pages that returned `token` as their
    /// [`next_page_token`](Pages::next_page_token). The request `options` must be the same.
    ///
    /// # Examples
    ///
    /// See [`Pages`].
    pub fn set_page_token(&mut self, token: impl Into<String>) {
        self.cursor.next = Next::After(token.into());
        self.cursor.remaining = None;
    }

    /// The token to resume from after the pages returned so far, for
    /// [`set_page_token`](Pages::set_page_token). `None` when no item follows them, and
    /// before the first page unless a token was set.
    ///
    /// # Examples
    ///
    /// ```
    /// use revkv::{Db, ListOptions, Pages};
    /// # let db = Db::temporary()?;
    /// # for i in 0..3 { db.put(format!("k{i}"), "v")?; }
    /// let mut pages = Pages::new(db, ListOptions::all());
    /// pages.set_page_size(2);
    /// pages.next_page()?;
    /// assert!(pages.next_page_token().is_some());
    /// pages.next_page()?;
    /// assert_eq!(pages.next_page_token(), None);
    /// # Ok::<(), revkv::Error>(())
    /// ```
    #[must_use]
    pub fn next_page_token(&self) -> Option<&str> {
        match &self.cursor.next {
            Next::After(token) => Some(token),
            Next::Start | Next::Done => None,
        }
    }

    /// How many items of the list follow the pages returned so far, as the newest chunk
    /// counted them (exact for a [`Db`]). `None` before the first page, and when the source
    /// does not count.
    ///
    /// # Examples
    ///
    /// ```
    /// use revkv::{Db, ListOptions, Pages};
    /// # let db = Db::temporary()?;
    /// # for i in 0..3 { db.put(format!("k{i}"), "v")?; }
    /// let mut pages = Pages::new(db, ListOptions::all());
    /// pages.set_page_size(2);
    /// pages.next_page()?;
    /// assert_eq!(pages.remaining(), Some(1));
    /// # Ok::<(), revkv::Error>(())
    /// ```
    #[must_use]
    pub fn remaining(&self) -> Option<u64> {
        self.cursor.remaining
    }

    /// The next page: exactly the page size of items and common prefixes unless fewer remain,
    /// in the list's order, and `Ok(None)` once none remain (never an empty page). A source that returns more items than asked makes
    /// the page longer instead of losing them.
    ///
    /// # Errors
    ///
    /// The source's error. The iterator stays where it was: the next call requests this page
    /// again.
    ///
    /// # Examples
    ///
    /// ```
    /// use revkv::{Db, ListOptions, Pages};
    /// # let db = Db::temporary()?;
    /// # for i in 0..3 { db.put(format!("k{i}"), "v")?; }
    /// let mut pages = Pages::new(db, ListOptions::all());
    /// pages.set_page_size(2);
    /// let mut sizes = Vec::new();
    /// while let Some(page) = pages.next_page()? {
    ///     sizes.push(page.len());
    /// }
    /// assert_eq!(sizes, [2, 1]);
    /// # Ok::<(), revkv::Error>(())
    /// ```
    pub fn next_page(&mut self) -> Result<Option<Vec<Listed>>> {
        // Reading with a copy lets an error leave the iterator where it was.
        let mut cursor = self.cursor.clone();
        let mut page = Vec::new();
        while page.len() < self.page_size {
            match cursor.read_listed(&self.source, self.page_size - page.len()) {
                Some(listed) => page.extend(listed?),
                None => break,
            }
        }
        self.cursor = cursor;
        Ok((!page.is_empty()).then_some(page))
    }
}

impl<S> fmt::Debug for Pages<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pages")
            .field("cursor", &self.cursor)
            .field("page_size", &self.page_size)
            .finish_non_exhaustive()
    }
}

/// A list request and the position after the chunks read so far.
#[derive(Clone, Debug)]
struct Cursor {
    options: ListOptions,
    next: Next,
    /// The source's count of the items after the newest chunk.
    remaining: Option<u64>,
}

#[derive(Clone, Debug)]
enum Next {
    /// The request as the caller gave it.
    Start,
    /// The request, continued with this token.
    After(String),
    /// The list ended, or failed.
    Done,
}

impl Cursor {
    fn new(options: ListOptions) -> Self {
        Cursor {
            options,
            next: Next::Start,
            remaining: None,
        }
    }

    fn is_done(&self) -> bool {
        matches!(self.next, Next::Done)
    }

    /// Reads the next chunk of at most `limit` items; `None` once the list has ended. An error
    /// ends the list too, so that no caller loops on a failing request by accident.
    fn read<S: ListSource + ?Sized>(
        &mut self,
        source: &S,
        limit: usize,
    ) -> Option<Result<ListPage>> {
        let request = self.options.clone().limit(limit);
        let request = match &self.next {
            Next::Start => request,
            Next::After(token) => request.continue_token(token.clone()),
            Next::Done => return None,
        };
        let sent = match &self.next {
            Next::After(token) => Some(token.clone()),
            Next::Start | Next::Done => None,
        };
        let chunk = source.list_page(&request).and_then(|chunk| {
            // A source that hands back the token it was given and nothing else would keep a
            // pager asking forever.
            let stuck = chunk.items.is_empty()
                && chunk.prefixes.is_empty()
                && chunk.continue_token.is_some()
                && chunk.continue_token == sent;
            if stuck {
                return Err(Error::invalid_request(
                    "the list source returned no items and the continue token it was given",
                ));
            }
            Ok(chunk)
        });
        match &chunk {
            Ok(chunk) => {
                self.next = chunk.continue_token.clone().map_or(Next::Done, Next::After);
                self.remaining = chunk.remaining;
            }
            Err(_) => self.next = Next::Done,
        }
        Some(chunk)
    }

    /// Reads the next chunk as [`read`](Cursor::read) does, its items and prefixes in the
    /// list's order.
    fn read_listed<S: ListSource + ?Sized>(
        &mut self,
        source: &S,
        limit: usize,
    ) -> Option<Result<Vec<Listed>>> {
        let reverse = self.options.reverse;
        let chunk = self.read(source, limit)?;
        Some(chunk.map(|chunk| in_list_order(chunk, reverse)))
    }
}

/// The chunks of one list, read in turn; it ends after an error.
struct Chunks<'a, S: ?Sized> {
    source: &'a S,
    cursor: Cursor,
    limit: usize,
}

impl<'a, S: ListSource + ?Sized> Chunks<'a, S> {
    fn new(source: &'a S, options: &ListOptions, limit: usize) -> Self {
        Chunks {
            source,
            cursor: Cursor::new(options.clone()),
            limit,
        }
    }
}

impl<S: ListSource + ?Sized> Iterator for Chunks<'_, S> {
    type Item = Result<ListPage>;

    fn next(&mut self) -> Option<Result<ListPage>> {
        self.cursor.read(self.source, self.limit)
    }
}
