//! Which store, and which run of it, a revision belongs to.
//!
//! A revision number alone does not name one state forever. A store that crashes under
//! [`Durability::Buffered`](crate::Durability::Buffered) loses the suffix of revisions sled had
//! not yet made durable, though readers may have seen them; a store restored from a copy loses
//! everything written after the copy; and two stores share every number. So:
//!
//! - every store gets a random **store id** when it is created, and tokens carry it;
//! - every open starts a **run** with a random id, recorded durably before the store answers:
//!   `base` is the durable head at open, and `first` the first revision the run may write;
//! - under `Buffered` durability the writer durably **reserves** revisions in blocks before
//!   publishing them, so a run never publishes a revision above its reservation. The next run
//!   starts above the reservation: the revisions in `(base, first)` were possibly seen and
//!   lost, are never reused, and any read at one fails with [`Error::LostRevision`];
//! - a token names its run: it stays valid for revisions the run's successor inherited (at most
//!   the successor's `base`), and a token of a run the store never had (another store, or
//!   the original of a restored copy after the copy was taken) is refused;
//! - every store has a random **token secret**, which authenticates the tokens it issues (see
//!   `token`). It is kept next to the store id; a store made before tokens were authenticated
//!   gets one at its next open.

use crate::encoding::{self, Meta};
use crate::error::SledResultExt;
use crate::token::TokenSecret;
use crate::{Error, Result, Revision};

/// How many revisions a `Buffered` writer reserves at a time: one extra sync per block.
pub(crate) const RESERVATION_BLOCK: u64 = 10_000;

/// One open of a store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Run {
    /// Its place among the store's runs: 1 for the first open, then one more per open.
    pub number: u64,
    pub id: u64,
    /// The durable head revision when the run began: revisions up to it are inherited.
    pub base: Revision,
    /// The first revision the run writes; those in `(base, first)` were lost.
    pub first: Revision,
}

/// The store's id, its token secret and its runs.
#[derive(Debug)]
pub(crate) struct Identity {
    pub store: u64,
    pub secret: TokenSecret,
    /// Every recorded run, oldest first; the last is the current one.
    runs: Vec<Run>,
}

impl Identity {
    /// Reads the store's identity, creating its store id and token secret where they are
    /// missing, and records a new run starting above the durable `head` and every reserved
    /// revision. The caller flushes before publishing anything, and so before any token is
    /// issued with the secret.
    pub(crate) fn begin_run(data: &sled::Tree, head: Revision) -> Result<Identity> {
        let store = match data.get(Meta::StoreId.sled_key()).storage()? {
            Some(bytes) => Meta::StoreId.decode(&bytes)?,
            None => {
                let id = u64::from_be_bytes(random()?);
                data.insert(Meta::StoreId.sled_key(), Meta::encode(id))
                    .storage()?;
                id
            }
        };
        let secret = match data.get(Meta::TokenSecret.sled_key()).storage()? {
            Some(bytes) => TokenSecret::from_bytes(Meta::TokenSecret.decode_bytes(&bytes)?),
            None => {
                let secret = TokenSecret::from_bytes(random()?);
                data.insert(
                    Meta::TokenSecret.sled_key(),
                    Meta::encode_bytes(secret.as_bytes()),
                )
                .storage()?;
                secret
            }
        };
        let mut runs = Vec::new();
        for item in data.scan_prefix(encoding::run_prefix()) {
            let (key, bytes) = item.storage()?;
            runs.push(encoding::decode_run(&key, &bytes)?);
        }
        let reserved = match data.get(Meta::ReservedRevision.sled_key()).storage()? {
            Some(bytes) => Revision::new(Meta::ReservedRevision.decode(&bytes)?),
            None => Revision::ZERO,
        };
        let run = Run {
            number: runs.last().map_or(1, |last: &Run| last.number + 1),
            id: u64::from_be_bytes(random()?),
            base: head,
            first: head.max(reserved).next(),
        };
        data.insert(encoding::run_key(run.number), encoding::encode_run(run))
            .storage()?;
        runs.push(run);
        Ok(Identity {
            store,
            secret,
            runs,
        })
    }

    pub(crate) fn current(&self) -> Run {
        *self.runs.last().expect("an open store has a current run")
    }

    /// Fails with [`Error::LostRevision`] for a revision that a crash or a restore lost.
    pub(crate) fn check_not_lost(&self, revision: Revision) -> Result<()> {
        if self
            .runs
            .iter()
            .any(|run| run.base < revision && revision < run.first)
        {
            return Err(Error::LostRevision {
                requested: revision,
            });
        }
        Ok(())
    }

    /// Whether every revision in `first..=last` was lost.
    pub(crate) fn all_lost(&self, first: Revision, last: Revision) -> bool {
        let mut next = first;
        for run in &self.runs {
            if run.base < next && next < run.first {
                next = run.first;
            }
        }
        next > last
    }

    /// Whether a token of run `run_id` at `revision` names a state this store still has: the
    /// run is one of this store's, and `revision` did not come after what the next run
    /// inherited from it. `None` when the run is not known (another store's, or one this
    /// store never had); `Some(false)` when its revision was lost.
    pub(crate) fn run_holds(&self, run_id: u64, revision: Revision) -> Option<bool> {
        let position = self.runs.iter().position(|run| run.id == run_id)?;
        Some(
            self.runs
                .get(position + 1)
                .is_none_or(|successor| revision <= successor.base),
        )
    }

    /// Forgets runs whose every revision lies below `compacted`: reads there fail anyway. The
    /// caller removes them from disk with [`encoding::run_key`].
    pub(crate) fn forget_before(&mut self, compacted: Revision) -> Vec<Run> {
        let keep_from = (1..self.runs.len())
            .find(|&i| self.runs[i].base >= compacted)
            .unwrap_or(self.runs.len())
            .saturating_sub(1);
        self.runs.drain(..keep_from).collect()
    }
}

/// Random bytes from the operating system, for ids and the token secret.
fn random<const N: usize>() -> Result<[u8; N]> {
    let mut bytes = [0; N];
    getrandom::fill(&mut bytes).map_err(|cause| {
        Error::Storage(
            std::io::Error::other(format!("no randomness for the store: {cause}")).into(),
        )
    })?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(runs: &[(u64, u64, u64)]) -> Identity {
        Identity {
            store: 7,
            secret: TokenSecret::from_bytes([7; TokenSecret::LEN]),
            runs: runs
                .iter()
                .map(|&(id, base, first)| Run {
                    number: id,
                    id,
                    base: Revision::new(base),
                    first: Revision::new(first),
                })
                .collect(),
        }
    }

    #[test]
    fn revisions_between_a_runs_base_and_first_are_lost() {
        let identity = identity(&[(1, 0, 1), (2, 100, 10_001), (3, 10_500, 10_501)]);
        for lost in [101, 5_000, 10_000] {
            assert!(
                identity.check_not_lost(Revision::new(lost)).is_err(),
                "{lost}"
            );
        }
        for kept in [1, 100, 10_001, 10_500, 10_501, 20_000] {
            assert!(
                identity.check_not_lost(Revision::new(kept)).is_ok(),
                "{kept}"
            );
        }
    }

    #[test]
    fn spans_are_all_lost_only_inside_lost_ranges() {
        // The second run wrote nothing: the third inherited its base and its reservation.
        let identity = identity(&[(1, 0, 1), (2, 100, 200), (3, 100, 300)]);
        let span = |a, b| identity.all_lost(Revision::new(a), Revision::new(b));
        assert!(span(101, 299));
        assert!(span(150, 160));
        assert!(!span(100, 150));
        assert!(!span(101, 300));
    }

    #[test]
    fn a_token_of_an_earlier_run_holds_up_to_what_its_successor_inherited() {
        let identity = identity(&[(1, 0, 1), (2, 100, 10_001), (3, 10_500, 10_501)]);
        assert_eq!(identity.run_holds(1, Revision::new(100)), Some(true));
        assert_eq!(identity.run_holds(1, Revision::new(101)), Some(false));
        assert_eq!(identity.run_holds(2, Revision::new(10_500)), Some(true));
        assert_eq!(identity.run_holds(2, Revision::new(10_501)), Some(false));
        assert_eq!(identity.run_holds(3, Revision::new(99_999)), Some(true));
        assert_eq!(identity.run_holds(4, Revision::new(1)), None);
    }

    #[test]
    fn runs_below_the_compacted_revision_are_forgotten_but_the_current_one_stays() {
        let mut runs = identity(&[(1, 0, 1), (2, 100, 101), (3, 200, 201), (4, 300, 301)]);
        let forgotten = runs.forget_before(Revision::new(250));
        assert_eq!(forgotten.iter().map(|r| r.id).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(runs.run_holds(3, Revision::new(300)), Some(true));
        let forgotten = runs.forget_before(Revision::new(10_000));
        assert_eq!(forgotten.iter().map(|r| r.id).collect::<Vec<_>>(), [3]);
        assert_eq!(runs.current().id, 4);
    }
}
