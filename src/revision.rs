//! Revisions: the global, monotonically increasing version of the whole store.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The version of the whole store after one committed write.
///
/// Revision 0 is the empty store; the first committed write is revision 1, and every committed
/// write (a put, a delete, or a whole transaction) takes exactly the next one.
///
/// # Examples
///
/// ```
/// use revkv::Revision;
/// let first = Revision::ZERO.next();
/// assert_eq!(first.get(), 1);
/// assert!(first > Revision::ZERO);
/// ```
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Revision(u64);

impl Revision {
    /// The revision of an empty store.
    pub const ZERO: Revision = Revision(0);

    /// Wraps a raw revision number.
    #[must_use]
    pub const fn new(raw: u64) -> Self {
        Revision(raw)
    }

    /// The raw revision number.
    #[must_use]
    pub const fn get(self) -> u64 {
        self.0
    }

    /// The revision after this one.
    ///
    /// # Panics
    ///
    /// Panics when the counter would overflow `u64`, which at a million writes a second takes
    /// more than half a million years: reaching it means a broken invariant, not a busy store.
    #[must_use]
    pub fn next(self) -> Self {
        Revision(
            self.0
                .checked_add(1)
                .expect("revision counter overflowed u64"),
        )
    }

    /// Big-endian bytes, so that byte order in sled equals numeric order.
    pub(crate) fn to_key_bytes(self) -> [u8; 8] {
        self.0.to_be_bytes()
    }

    pub(crate) fn from_key_bytes(bytes: [u8; 8]) -> Self {
        Revision(u64::from_be_bytes(bytes))
    }
}

impl fmt::Display for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl From<u64> for Revision {
    fn from(raw: u64) -> Self {
        Revision(raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_bytes_sort_like_numbers() {
        let samples = [0u64, 1, 255, 256, 65_535, 1 << 32, u64::MAX - 1, u64::MAX];
        for pair in samples.windows(2) {
            let (a, b) = (Revision(pair[0]), Revision(pair[1]));
            assert!(a.to_key_bytes() < b.to_key_bytes(), "{a} vs {b}");
            assert_eq!(Revision::from_key_bytes(a.to_key_bytes()), a);
        }
    }

    #[test]
    #[should_panic(expected = "revision counter overflowed")]
    fn next_panics_on_overflow() {
        let _ = Revision(u64::MAX).next();
    }
}
