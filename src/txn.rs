//! Atomic multi-key transactions: compare conditions, then one branch of puts and deletes.

use std::collections::BTreeMap;

use crate::Revision;

/// An atomic transaction, in the shape of etcd's `Txn`: if every [`Compare`] holds, the
/// `then` operations run, otherwise the `otherwise` operations do. Either way the whole
/// transaction commits as one revision (or none, when the branch that runs changes nothing).
///
/// # Examples
///
/// ```
/// use revkv::{Compare, Db, Op, Txn};
/// # let db = Db::temporary()?;
/// // Create the key only if it does not exist yet.
/// let txn = Txn::new()
///     .when([Compare::absent("lock")])
///     .then([Op::put("lock", "owner-1")]);
/// assert!(db.txn(txn)?.succeeded);
/// let again = Txn::new().when([Compare::absent("lock")]).then([Op::put("lock", "owner-2")]);
/// assert!(!db.txn(again)?.succeeded);
/// # Ok::<(), revkv::Error>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Txn {
    pub(crate) compares: Vec<Compare>,
    pub(crate) then: Vec<Op>,
    pub(crate) otherwise: Vec<Op>,
}

impl Txn {
    /// An empty transaction: no conditions, no operations.
    #[must_use]
    pub fn new() -> Self {
        Txn::default()
    }

    /// Adds conditions; all of them must hold for the `then` branch to run.
    #[must_use]
    pub fn when(mut self, compares: impl IntoIterator<Item = Compare>) -> Self {
        self.compares.extend(compares);
        self
    }

    /// Adds operations to the branch that runs when every condition holds.
    #[must_use]
    pub fn then(mut self, ops: impl IntoIterator<Item = Op>) -> Self {
        self.then.extend(ops);
        self
    }

    /// Adds operations to the branch that runs when a condition fails.
    #[must_use]
    pub fn otherwise(mut self, ops: impl IntoIterator<Item = Op>) -> Self {
        self.otherwise.extend(ops);
        self
    }
}

/// How a [`Compare`] relates the key's current attribute to the given one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cmp {
    /// The attribute equals the operand.
    Equal,
    /// The attribute differs from the operand.
    NotEqual,
    /// The attribute is smaller than the operand.
    Less,
    /// The attribute is greater than the operand.
    Greater,
}

impl Cmp {
    fn holds<T: Ord + ?Sized>(self, actual: &T, operand: &T) -> bool {
        match self {
            Cmp::Equal => actual == operand,
            Cmp::NotEqual => actual != operand,
            Cmp::Less => actual < operand,
            Cmp::Greater => actual > operand,
        }
    }
}

/// A condition on one key's current state.
///
/// As in etcd, a missing key has mod revision, create revision and version 0, and any
/// comparison of a missing key's value fails.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Compare {
    pub(crate) key: Vec<u8>,
    pub(crate) target: CompareTarget,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum CompareTarget {
    ModRevision(Cmp, Revision),
    CreateRevision(Cmp, Revision),
    Version(Cmp, u64),
    Value(Cmp, Vec<u8>),
    Absent,
}

impl Compare {
    /// Compares the revision of the key's last change.
    pub fn mod_revision(key: impl Into<Vec<u8>>, cmp: Cmp, revision: Revision) -> Self {
        Compare {
            key: key.into(),
            target: CompareTarget::ModRevision(cmp, revision),
        }
    }

    /// Compares the revision that created the key's current incarnation.
    pub fn create_revision(key: impl Into<Vec<u8>>, cmp: Cmp, revision: Revision) -> Self {
        Compare {
            key: key.into(),
            target: CompareTarget::CreateRevision(cmp, revision),
        }
    }

    /// Compares the number of puts since the key was (re)created.
    pub fn version(key: impl Into<Vec<u8>>, cmp: Cmp, version: u64) -> Self {
        Compare {
            key: key.into(),
            target: CompareTarget::Version(cmp, version),
        }
    }

    /// Compares the key's value, byte-wise; fails when the key is missing.
    pub fn value(key: impl Into<Vec<u8>>, cmp: Cmp, value: impl Into<Vec<u8>>) -> Self {
        Compare {
            key: key.into(),
            target: CompareTarget::Value(cmp, value.into()),
        }
    }

    /// Holds when the key does not exist.
    pub fn absent(key: impl Into<Vec<u8>>) -> Self {
        Compare {
            key: key.into(),
            target: CompareTarget::Absent,
        }
    }

    /// Whether the condition holds for a key whose current state is `current`.
    pub(crate) fn holds(&self, current: Option<&crate::Entry>) -> bool {
        let meta = |f: fn(&crate::Entry) -> u64| current.map_or(0, f);
        match &self.target {
            CompareTarget::ModRevision(cmp, rev) => {
                cmp.holds(&meta(|e| e.mod_revision.get()), &rev.get())
            }
            CompareTarget::CreateRevision(cmp, rev) => {
                cmp.holds(&meta(|e| e.create_revision.get()), &rev.get())
            }
            CompareTarget::Version(cmp, version) => cmp.holds(&meta(|e| e.version), version),
            CompareTarget::Value(cmp, value) => {
                current.is_some_and(|e| cmp.holds(e.value.as_slice(), value.as_slice()))
            }
            CompareTarget::Absent => current.is_none(),
        }
    }
}

/// One write inside a transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Sets a key's value (and its labels and fields).
    Put(Put),
    /// Deletes a key; deleting a missing key changes nothing.
    Delete(Vec<u8>),
}

impl Op {
    /// A put of `value` at `key`, without labels or fields.
    pub fn put(key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Self {
        Op::Put(Put::new(key, value))
    }

    /// A delete of `key`.
    pub fn delete(key: impl Into<Vec<u8>>) -> Self {
        Op::Delete(key.into())
    }

    pub(crate) fn key(&self) -> &[u8] {
        match self {
            Op::Put(put) => &put.key,
            Op::Delete(key) => key,
        }
    }
}

/// A put with optional labels and fields, for [`Op::Put`] and [`crate::Db::put_with`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Put {
    pub(crate) key: Vec<u8>,
    pub(crate) value: Vec<u8>,
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) fields: BTreeMap<String, String>,
}

impl Put {
    /// A put of `value` at `key`.
    pub fn new(key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Self {
        Put {
            key: key.into(),
            value: value.into(),
            labels: BTreeMap::new(),
            fields: BTreeMap::new(),
        }
    }

    /// Attaches a label, which label selectors match against.
    #[must_use]
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    /// Attaches a field, which field selectors match against.
    #[must_use]
    pub fn field(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.fields.insert(key.into(), value.into());
        self
    }
}

/// What a committed (or refused) transaction did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxnResponse {
    /// Whether every condition held, so the `then` branch ran.
    pub succeeded: bool,
    /// The revision the transaction committed as; the current revision when it changed nothing.
    pub revision: Revision,
    /// One result per operation of the branch that ran, in order.
    pub results: Vec<OpResult>,
}

/// The outcome of one operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpResult {
    /// The put was written.
    Put,
    /// The delete ran; `deleted` is false when the key did not exist.
    Delete {
        /// Whether a live key was deleted.
        deleted: bool,
    },
}
