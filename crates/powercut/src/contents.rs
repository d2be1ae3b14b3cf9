//! A file's bytes as shared, copy-on-write pages.
//!
//! A file keeps two [`Contents`]: what a process reads now and what survives a power cut. Both
//! share every page that did not change since the last sync, so a sync copies page pointers
//! (only those of the pages written since), never a whole file of hundreds of megabytes.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

/// Bytes per page: big enough that a file of hundreds of megabytes has few pages, small enough
/// that the copy a write to a shared page makes stays cheap.
pub const PAGE_SIZE: usize = 64 * 1024;

/// The largest file the filesystem holds, in bytes; a larger one is `EFBIG`. It bounds the page
/// table a single write at a wild offset would allocate.
pub const MAX_FILE_SIZE: u64 = 64 << 30;

/// One page: `PAGE_SIZE` bytes, or `None` for a page of zeros that was never written.
type Page = Option<Arc<Vec<u8>>>;

/// The bytes of a file. Bytes past the length inside the last page are always zero, so growing
/// a file exposes zeros, as `ftruncate` must.
#[derive(Clone, Default)]
pub struct Contents {
    len: u64,
    /// Exactly `len.div_ceil(PAGE_SIZE)` pages.
    pages: Vec<Page>,
}

impl Contents {
    /// Contents holding `bytes`.
    pub fn from_bytes(bytes: &[u8]) -> Contents {
        let mut contents = Contents::default();
        contents.write(0, bytes);
        contents
    }

    /// The length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True when the file is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Up to `size` bytes from `offset`; fewer at the end of the file, none past it.
    pub fn read(&self, offset: u64, size: usize) -> Vec<u8> {
        let end = self.len.min(offset.saturating_add(size as u64));
        let mut bytes = Vec::with_capacity(end.saturating_sub(offset) as usize);
        let mut position = offset;
        while position < end {
            let (index, within) = page_of(position);
            let take = (PAGE_SIZE - within).min((end - position) as usize);
            match &self.pages[index] {
                Some(page) => bytes.extend_from_slice(&page[within..within + take]),
                None => bytes.resize(bytes.len() + take, 0),
            }
            position += take as u64;
        }
        bytes
    }

    /// Every byte.
    pub fn to_vec(&self) -> Vec<u8> {
        self.read(0, self.len as usize)
    }

    /// The written pages in order, each with its offset and the bytes of it that lie within the
    /// file; pages of zeros that were never written are left out, so a copy can keep the holes.
    pub fn written_pages(&self) -> impl Iterator<Item = (u64, &[u8])> {
        self.pages.iter().enumerate().filter_map(|(index, page)| {
            let page = page.as_ref()?;
            let offset = (index * PAGE_SIZE) as u64;
            let within = (self.len - offset).min(PAGE_SIZE as u64) as usize;
            Some((offset, &page[..within]))
        })
    }

    /// Writes `data` at `offset`, growing the file as needed (a gap reads as zeros). Returns the
    /// indices of the pages it changed.
    pub fn write(&mut self, offset: u64, data: &[u8]) -> Range<usize> {
        // An empty write changes nothing, not even the length, as `pwrite(2)` of 0 bytes.
        if data.is_empty() {
            return 0..0;
        }
        let end = offset + data.len() as u64;
        if end > self.len {
            self.len = end;
            self.pages.resize(page_count(end), None);
        }
        let mut written = 0;
        while written < data.len() {
            let (index, within) = page_of(offset + written as u64);
            let take = (PAGE_SIZE - within).min(data.len() - written);
            let page = self.pages[index].get_or_insert_with(|| Arc::new(vec![0; PAGE_SIZE]));
            Arc::make_mut(page)[within..within + take]
                .copy_from_slice(&data[written..written + take]);
            written += take;
        }
        page_of(offset).0..page_of(end - 1).0 + 1
    }

    /// Sets the length: shrinking drops the bytes past it, growing adds zeros. Returns the
    /// indices of the pages it changed (dropped, or cut short).
    pub fn set_len(&mut self, len: u64) -> Range<usize> {
        let old_pages = self.pages.len();
        if len >= self.len {
            self.len = len;
            self.pages.resize(page_count(len), None);
            return 0..0;
        }
        self.len = len;
        self.pages.truncate(page_count(len));
        let (last, within) = page_of(len);
        // Zero the tail of a last page cut short, so that growing the file again reads zeros.
        if within > 0 {
            if let Some(page) = &mut self.pages[last] {
                Arc::make_mut(page)[within..].fill(0);
            }
        }
        last..old_pages
    }

    /// The first `len` bytes (all of them when `len` is past the end), sharing pages with `self`.
    pub fn prefix(&self, len: u64) -> Contents {
        let mut prefix = self.clone();
        prefix.set_len(len.min(self.len));
        prefix
    }

    /// Makes `self` equal to `source`, copying only the pages listed in `changed` (the pages of
    /// `source` that may differ from `self`) and sharing them with `source`.
    pub fn update_from(&mut self, source: &Contents, changed: impl IntoIterator<Item = usize>) {
        self.pages.resize(source.pages.len(), None);
        for index in changed {
            if let Some(page) = source.pages.get(index) {
                self.pages[index] = page.clone();
            }
        }
        self.len = source.len;
    }
}

/// The length and the pages written, not the bytes: a file may be hundreds of megabytes.
impl fmt::Debug for Contents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Contents")
            .field("len", &self.len)
            .field("written_pages", &self.pages.iter().flatten().count())
            .finish()
    }
}

fn page_of(offset: u64) -> (usize, usize) {
    (
        (offset / PAGE_SIZE as u64) as usize,
        (offset % PAGE_SIZE as u64) as usize,
    )
}

fn page_count(len: u64) -> usize {
    len.div_ceil(PAGE_SIZE as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator, so that failures replay.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, bound: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % bound
        }
    }

    #[test]
    fn writes_truncations_and_reads_match_a_plain_vector() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut contents = Contents::default();
        let mut model: Vec<u8> = Vec::new();
        for step in 0..500 {
            let span = 4 * PAGE_SIZE as u64;
            if rng.below(5) == 0 {
                let len = rng.below(span);
                contents.set_len(len);
                model.resize(len as usize, 0);
            } else {
                let offset = rng.below(span);
                let data: Vec<u8> = (0..rng.below(PAGE_SIZE as u64 * 2))
                    .map(|_| rng.below(255) as u8 + 1)
                    .collect();
                contents.write(offset, &data);
                let end = offset as usize + data.len();
                if end > model.len() {
                    model.resize(end, 0);
                }
                model[offset as usize..end].copy_from_slice(&data);
            }
            assert_eq!(contents.len(), model.len() as u64, "step {step}");
            let offset = rng.below(span);
            let size = rng.below(span) as usize;
            let start = (offset as usize).min(model.len());
            let end = (offset as usize + size).min(model.len());
            assert_eq!(
                contents.read(offset, size),
                model[start..end],
                "step {step}"
            );
        }
        assert_eq!(contents.to_vec(), model);
    }

    #[test]
    fn an_empty_write_past_the_end_leaves_the_length() {
        let mut contents = Contents::from_bytes(b"abc");
        assert_eq!(contents.write(10, b""), 0..0);
        assert_eq!(contents.len(), 3);
    }

    #[test]
    fn a_copy_keeps_its_bytes_while_the_original_changes() {
        let mut contents = Contents::from_bytes(&[1; PAGE_SIZE + 10]);
        let copy = contents.clone();
        contents.write(5, &[2; 3]);
        contents.set_len(7);
        assert_eq!(copy.to_vec(), vec![1; PAGE_SIZE + 10]);
        assert_eq!(contents.to_vec(), [1, 1, 1, 1, 1, 2, 2]);
    }

    #[test]
    fn update_from_copies_the_changed_pages_and_the_length() {
        let mut current = Contents::from_bytes(&[1; 3 * PAGE_SIZE]);
        let mut durable = current.clone();
        let mut changed: Vec<usize> = current.write(PAGE_SIZE as u64, &[2; 10]).collect();
        changed.extend(current.set_len(PAGE_SIZE as u64 + 5));
        changed.extend(current.set_len(3 * PAGE_SIZE as u64));
        durable.update_from(&current, changed);
        assert_eq!(durable.to_vec(), current.to_vec());
    }

    #[test]
    fn written_pages_skip_holes_and_stop_at_the_length() {
        let mut contents = Contents::default();
        contents.write(2 * PAGE_SIZE as u64, b"abc");
        let pages: Vec<(u64, &[u8])> = contents.written_pages().collect();
        assert_eq!(pages, [(2 * PAGE_SIZE as u64, &b"abc"[..])]);
        assert_eq!(
            contents.prefix(PAGE_SIZE as u64).to_vec(),
            vec![0; PAGE_SIZE]
        );
    }
}
