//! SQLite with kine's schema: every write appends a row whose id is its revision, a list at a
//! revision groups all rows of the range up to it by name, and a chunk that has more after it
//! runs a second, full count from its start key. kine's Go code is not run here; its schema and
//! queries are rewritten after their description, and SQLite runs in kine's journal mode (WAL),
//! with every commit synced.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use tempfile::TempDir;

use super::prefix_end;
use crate::engine::{Chunk, Engine, Error, Lister};
use crate::workload::{Item, Write, MATCH_MARKER, PREFIX};

const NAME: &str = "sqlite-kine";

/// The row that keeps the compacted revision in its `prev_revision`.
const COMPACT_KEY: &str = "compact_rev_key";

/// Revisions compacted per transaction, as kine's default `compact-batch-size`.
const COMPACT_BATCH: i64 = 1000;

const SCHEMA: &str = "
    CREATE TABLE kine (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT,
        created INTEGER,
        deleted INTEGER,
        create_revision INTEGER,
        prev_revision INTEGER,
        lease INTEGER,
        value BLOB,
        old_value BLOB
    );
    CREATE INDEX kine_name_index ON kine (name);
    CREATE INDEX kine_name_id_index ON kine (name, id);
    CREATE INDEX kine_id_deleted_index ON kine (id, deleted);
    CREATE INDEX kine_prev_revision_index ON kine (prev_revision);
    CREATE UNIQUE INDEX kine_name_prev_revision_uindex ON kine (name, prev_revision);
    CREATE INDEX kine_list_query_index ON kine (id, name, prev_revision)
        WHERE name != 'compact_rev_key' AND prev_revision != 0;
    INSERT INTO kine (name, created, deleted, create_revision, prev_revision, lease, value, old_value)
        VALUES ('compact_rev_key', 0, 0, 0, 0, 0, x'', x'');
";

/// The newest row of each name in `[?1, ?2)` at revision `?3`, without the deleted ones.
const LATEST_AT: &str = "
    FROM kine AS kv
    JOIN (
        SELECT MAX(mkv.id) AS id
        FROM kine AS mkv
        WHERE mkv.name >= ?1 AND mkv.name < ?2 AND mkv.id <= ?3
        GROUP BY mkv.name
    ) AS maxkv ON maxkv.id = kv.id
    WHERE kv.deleted = 0";

pub(super) struct Kine {
    /// Removed with the database when the engine is dropped.
    _dir: TempDir,
    path: PathBuf,
    /// Idle connections: each writer thread takes its own, as kine's connection pool gives.
    pool: Mutex<Vec<Connection>>,
}

/// A continue key and the list's revision; revision 0 reads the newest.
#[derive(Clone)]
pub(super) struct Cursor {
    key: String,
    revision: i64,
}

fn failed(error: rusqlite::Error) -> Error {
    Error::failed(NAME, error)
}

impl Kine {
    /// A new database with kine's schema in a temporary directory.
    pub(super) fn create() -> Result<Kine, Error> {
        let dir = tempfile::tempdir().map_err(|error| {
            Error::failed(
                NAME,
                format!("cannot create a temporary directory: {error}"),
            )
        })?;
        let kine = Kine {
            path: dir.path().join("state.db"),
            _dir: dir,
            pool: Mutex::new(Vec::new()),
        };
        kine.with(|connection| connection.execute_batch(SCHEMA))?;
        Ok(kine)
    }

    fn open(&self) -> rusqlite::Result<Connection> {
        let connection = Connection::open(&self.path)?;
        connection.pragma_update(None, "journal_mode", "WAL")?;
        // Durable commits, as revkv's and etcd's (rusqlite's bundled SQLite defaults to NORMAL
        // in WAL mode, which may lose the last commits in a power failure).
        connection.pragma_update(None, "synchronous", "FULL")?;
        connection.busy_timeout(Duration::from_secs(30))?;
        Ok(connection)
    }

    /// Runs `work` on an idle connection, or a new one when every one is busy.
    fn with<T>(
        &self,
        work: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> Result<T, Error> {
        let idle = self.pool.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let mut connection = match idle {
            Some(connection) => connection,
            None => self.open().map_err(failed)?,
        };
        let outcome = work(&mut connection).map_err(failed);
        self.pool
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(connection);
        outcome
    }

    /// Appends one row per write in one transaction, as kine appends a create, an update or a
    /// delete: the new row points at the name's previous row and carries its value. A delete
    /// of a missing key appends nothing.
    fn append<'a>(
        &self,
        writes: impl IntoIterator<Item = (&'a str, Option<&'a Item>)>,
    ) -> Result<(), Error> {
        self.with(|connection| {
            let txn = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            {
                let mut latest = txn.prepare_cached(
                    "SELECT id, create_revision, deleted, value FROM kine
                     WHERE name = ?1 ORDER BY id DESC LIMIT 1",
                )?;
                let mut insert = txn.prepare_cached(
                    "INSERT INTO kine
                     (name, created, deleted, create_revision, prev_revision, lease, value, old_value)
                     VALUES (?1, ?2, ?3, ?4, ?5, 0, ?6, ?7)",
                )?;
                for (key, item) in writes {
                    let previous = latest
                        .query_row([key], |row| {
                            Ok((
                                row.get::<_, i64>(0)?,
                                row.get::<_, i64>(1)?,
                                row.get::<_, i64>(2)?,
                                row.get::<_, Vec<u8>>(3)?,
                            ))
                        })
                        .optional()?;
                    let Some(item) = item else {
                        // kine's delete: a row marked deleted, with the value it deletes.
                        if let Some((id, create_revision, 0, value)) = previous {
                            let create_revision = if create_revision == 0 { id } else { create_revision };
                            insert.execute(params![key, 0, 1, create_revision, id, value, value])?;
                        }
                        continue;
                    };
                    let (created, create_revision, prev_revision, old_value) = match previous {
                        Some((id, create_revision, 0, value)) => {
                            let create_revision = if create_revision == 0 { id } else { create_revision };
                            (0, create_revision, id, value)
                        }
                        Some((id, ..)) => (1, 0, id, Vec::new()),
                        None => (1, 0, 0, Vec::new()),
                    };
                    insert.execute(params![
                        item.key,
                        created,
                        0,
                        create_revision,
                        prev_revision,
                        item.value,
                        old_value
                    ])?;
                }
            }
            txn.commit()
        })
    }

    fn current_revision(&self) -> Result<i64, Error> {
        self.with(|connection| {
            connection.query_row("SELECT MAX(id) FROM kine", [], |row| row.get(0))
        })
    }
}

impl Lister for Kine {
    type Cursor = Cursor;

    fn name(&self) -> &'static str {
        NAME
    }

    fn first(&self) -> Cursor {
        Cursor {
            key: PREFIX.to_string(),
            revision: 0,
        }
    }

    fn seek(&self, _position: u64, after: Option<&str>) -> Result<Cursor, Error> {
        let revision = self.current_revision()?;
        let key = match after {
            None => PREFIX.to_string(),
            Some(after) => format!("{after}\0"),
        };
        Ok(Cursor { key, revision })
    }

    /// kine's list: the rows with the current and the compacted revision beside each, `limit + 1`
    /// of them to learn whether more follow, and then, if so, the count from the start key.
    fn chunk(&self, cursor: &Cursor, limit: usize) -> Result<Chunk<Cursor>, Error> {
        let end = prefix_end(PREFIX);
        let (rows, revision, compacted, count) = self.with(|connection| {
            let revision = match cursor.revision {
                0 => connection.query_row("SELECT MAX(id) FROM kine", [], |row| row.get(0))?,
                pinned => pinned,
            };
            let mut list = connection.prepare_cached(&format!(
                "SELECT (SELECT MAX(rkv.id) FROM kine AS rkv),
                        (SELECT MAX(crkv.prev_revision) FROM kine AS crkv
                         WHERE crkv.name = '{COMPACT_KEY}'),
                        kv.id, kv.name, kv.created, kv.deleted, kv.create_revision,
                        kv.prev_revision, kv.lease, kv.value, kv.old_value
                 {LATEST_AT}
                 ORDER BY kv.name ASC LIMIT ?4"
            ))?;
            let mut compacted = 0i64;
            let rows = list
                .query_map(
                    params![cursor.key, end, revision, limit as i64 + 1],
                    |row| {
                        compacted = row.get(1)?;
                        Ok((row.get::<_, String>(3)?, row.get::<_, Vec<u8>>(9)?))
                    },
                )?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let count = if rows.len() > limit {
                let mut count =
                    connection.prepare_cached(&format!("SELECT COUNT(kv.id) {LATEST_AT}"))?;
                Some(count.query_row(params![cursor.key, end, revision], |row| {
                    row.get::<_, i64>(0)
                })?)
            } else {
                None
            };
            Ok((rows, revision, compacted, count))
        })?;
        if revision < compacted {
            return Err(Error::failed(NAME, "required revision has been compacted"));
        }
        let items = rows.len().min(limit);
        let matched = rows[..items]
            .iter()
            .filter(|(_, value)| value.starts_with(MATCH_MARKER))
            .count();
        let next = (rows.len() > limit).then(|| Cursor {
            key: format!("{}\0", rows[items - 1].0),
            revision,
        });
        Ok(Chunk {
            items,
            matched,
            // The count covers the range from the start key, this chunk included.
            remaining: count.map_or(0, |count| {
                u64::try_from(count)
                    .unwrap_or(0)
                    .saturating_sub(items as u64)
            }),
            next,
        })
    }
}

impl Engine for Kine {
    fn version(&self) -> Option<String> {
        Some(format!("SQLite {} with kine's schema", rusqlite::version()))
    }

    fn write(&self, writes: &[Write]) -> Result<(), Error> {
        self.append(writes.iter().map(|write| match write {
            Write::Put(item) => (item.key.as_str(), Some(item)),
            Write::Delete(key) => (key.as_str(), None),
        }))
    }

    fn put(&self, item: &Item) -> Result<(), Error> {
        self.append([(item.key.as_str(), Some(item))])
    }

    /// kine's compaction, in batches of [`COMPACT_BATCH`] revisions, each one transaction that
    /// deletes every row that a newer row up to the batch's end supersedes, every tombstone up to
    /// it, and records the new compacted revision.
    fn compact(&self) -> Result<(), Error> {
        let target = self.current_revision()?;
        let mut compacted: i64 = self.with(|connection| {
            connection.query_row(
                "SELECT prev_revision FROM kine WHERE name = ?1",
                [COMPACT_KEY],
                |row| row.get(0),
            )
        })?;
        while compacted < target {
            let to = target.min(compacted + COMPACT_BATCH);
            self.with(|connection| {
                let txn = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
                txn.prepare_cached(&format!(
                    "DELETE FROM kine WHERE
                         id IN (SELECT prev_revision FROM kine
                                WHERE name != '{COMPACT_KEY}' AND prev_revision != 0 AND id <= ?1)
                      OR id IN (SELECT id FROM kine WHERE deleted != 0 AND id <= ?1)"
                ))?
                .execute([to])?;
                txn.prepare_cached("UPDATE kine SET prev_revision = ?1 WHERE name = ?2")?
                    .execute(params![to, COMPACT_KEY])?;
                txn.commit()
            })?;
            compacted = to;
        }
        Ok(())
    }
}
