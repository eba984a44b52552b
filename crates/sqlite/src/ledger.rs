//! The ledger kept in a SQLite target, in the same file as the migrated rows, in tables named
//! `tsmigrate_*`.
//!
//! Tables (all keyed by the plan id, so several plans can share one file):
//!
//! - `tsmigrate_meta`: the ledger's format version;
//! - `tsmigrate_runs`: one row per `run`, `sync` or `rollback`, with its state and error;
//! - `tsmigrate_streams`: per plan stream, the target table, the stream's fingerprint and the
//!   time horizon its partitions read up to;
//! - `tsmigrate_partitions`: every planned partition with the source's description of what to
//!   read (JSON text), its state (`pending`, `running`, `done`, `failed`), rows, digest and
//!   last error;
//! - `tsmigrate_writes`: one row per committed partition transaction with the rowid ranges it
//!   inserted, which is how `rollback` finds exactly the rows a run inserted;
//! - `tsmigrate_watermarks`: the newest time per series of each committed partition, for
//!   `sync`;
//! - `tsmigrate_verifications`: the outcome of each `verify` of a stream (the 50 newest per
//!   stream), for `status`;
//! - `tsmigrate_claims`: which plan appends into which table, so two plans never append into
//!   one ([`Ledger::claim_table`]).
//!
//! The plan's lock is an OS lock on a file beside the database, which lives exactly as long
//! as the process holding it: unlike PostgreSQL's advisory lock it cannot be lost by a live
//! process, so this ledger needs no epoch fence.
//!
//! A partition's `done` state, its `writes` row and its watermarks are written by the
//! partition's own transaction (see [`record_commit`]), so they are committed exactly when
//! its rows are. Times are RFC 3339 UTC text.

use std::collections::BTreeMap;
use std::fs::File;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use tsmigrate_core::{
    Error, Ledger, LedgerPartition, LedgerStream, Partition, PartitionCommit, PartitionState,
    Result, RollbackOutcome, RunRecord, VerificationRecord,
};

use crate::db::{self, Db};

/// Ledger tables format version, stored in `tsmigrate_meta`.
const LEDGER_VERSION: &str = "2";

/// Verifications kept per plan stream (older ones are deleted when a new one is recorded).
const VERIFICATIONS_KEPT: i64 = 50;

/// The ledger's tables, which [`create_tables`] creates when any is missing.
const TABLES: [&str; 8] = [
    "tsmigrate_meta",
    "tsmigrate_runs",
    "tsmigrate_streams",
    "tsmigrate_partitions",
    "tsmigrate_writes",
    "tsmigrate_watermarks",
    "tsmigrate_verifications",
    "tsmigrate_claims",
];

/// Why a run still marked running when the plan's lock is taken is closed as interrupted.
const DEAD_RUN: &str =
    "the process ended without recording its end (killed, crashed or the machine restarted)";

/// The ledger of one plan in a SQLite file.
pub struct SqliteLedger {
    db: Db,
    plan_id: String,
    /// The file holding the plan's lock (kept open for the process's life). Shared with the
    /// blocking task of [`Ledger::open`], which holds the mutex while it takes the lock.
    lock: Arc<Mutex<Option<File>>>,
}

impl SqliteLedger {
    /// A ledger for `plan_id` in the file of `db`.
    pub fn new(db: Db, plan_id: &str) -> SqliteLedger {
        SqliteLedger {
            db,
            plan_id: plan_id.to_string(),
            lock: Arc::new(Mutex::new(None)),
        }
    }

    /// The plan id, for partition writers.
    pub fn plan_id(&self) -> &str {
        &self.plan_id
    }

    /// Runs `work` on a fresh read-write connection, off the async runtime's threads.
    async fn with_conn<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Db, &str, &mut Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let db = self.db.clone();
        let plan_id = self.plan_id.clone();
        db::blocking(move || {
            let mut conn = db.open_write()?;
            work(&db, &plan_id, &mut conn)
        })
        .await
    }
}

/// A count for an integer column.
fn count_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A count read back from an integer column.
fn count_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// The ledger's DDL (every statement idempotent).
fn ddl() -> String {
    let now = "(strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))";
    format!(
        "CREATE TABLE IF NOT EXISTS tsmigrate_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
         INSERT OR IGNORE INTO tsmigrate_meta (key, value) VALUES ('version', '{LEDGER_VERSION}');
         CREATE TABLE IF NOT EXISTS tsmigrate_runs (
           run_id INTEGER PRIMARY KEY AUTOINCREMENT,
           plan_id TEXT NOT NULL,
           command TEXT NOT NULL,
           state TEXT NOT NULL,
           started_at TEXT NOT NULL DEFAULT {now},
           finished_at TEXT,
           error TEXT,
           version TEXT NOT NULL);
         CREATE INDEX IF NOT EXISTS tsmigrate_runs_by_plan ON tsmigrate_runs (plan_id, state);
         CREATE TABLE IF NOT EXISTS tsmigrate_streams (
           plan_id TEXT NOT NULL,
           stream TEXT NOT NULL,
           target_table TEXT NOT NULL,
           fingerprint TEXT NOT NULL,
           horizon_us INTEGER,
           planned_at TEXT NOT NULL DEFAULT {now},
           last_sync_at TEXT,
           newest_ts INTEGER,
           PRIMARY KEY (plan_id, stream));
         CREATE TABLE IF NOT EXISTS tsmigrate_partitions (
           plan_id TEXT NOT NULL,
           stream TEXT NOT NULL,
           partition_id TEXT NOT NULL,
           seq INTEGER NOT NULL,
           spec TEXT NOT NULL,
           estimated_rows INTEGER,
           state TEXT NOT NULL,
           run_id INTEGER,
           rows INTEGER NOT NULL DEFAULT 0,
           digest TEXT,
           attempts INTEGER NOT NULL DEFAULT 0,
           rejected INTEGER NOT NULL DEFAULT 0,
           error TEXT,
           updated_at TEXT NOT NULL DEFAULT {now},
           PRIMARY KEY (plan_id, stream, partition_id));
         CREATE INDEX IF NOT EXISTS tsmigrate_partitions_by_seq
           ON tsmigrate_partitions (plan_id, stream, seq);
         CREATE TABLE IF NOT EXISTS tsmigrate_writes (
           plan_id TEXT NOT NULL,
           stream TEXT NOT NULL,
           partition_id TEXT NOT NULL,
           run_id INTEGER NOT NULL,
           target_table TEXT NOT NULL,
           write_mode TEXT NOT NULL,
           rows INTEGER NOT NULL,
           digest TEXT,
           rowids TEXT NOT NULL,
           committed_at TEXT NOT NULL DEFAULT {now},
           rolled_back_by INTEGER);
         CREATE INDEX IF NOT EXISTS tsmigrate_writes_by_run ON tsmigrate_writes (plan_id, run_id);
         CREATE TABLE IF NOT EXISTS tsmigrate_watermarks (
           plan_id TEXT NOT NULL,
           stream TEXT NOT NULL,
           series TEXT NOT NULL,
           ts INTEGER NOT NULL,
           run_id INTEGER NOT NULL);
         CREATE INDEX IF NOT EXISTS tsmigrate_watermarks_by_stream
           ON tsmigrate_watermarks (plan_id, stream, series);
         CREATE TABLE IF NOT EXISTS tsmigrate_verifications (
           id INTEGER PRIMARY KEY,
           plan_id TEXT NOT NULL,
           stream TEXT NOT NULL,
           verified_at TEXT NOT NULL DEFAULT {now},
           equal INTEGER NOT NULL,
           source_rows INTEGER NOT NULL,
           target_rows INTEGER NOT NULL,
           missing INTEGER NOT NULL,
           extra INTEGER NOT NULL,
           different INTEGER NOT NULL,
           time_window TEXT NOT NULL,
           seconds REAL NOT NULL);
         CREATE INDEX IF NOT EXISTS tsmigrate_verifications_by_stream
           ON tsmigrate_verifications (plan_id, stream, id);
         CREATE TABLE IF NOT EXISTS tsmigrate_claims (
           target_table TEXT PRIMARY KEY,
           plan_id TEXT NOT NULL,
           stream TEXT NOT NULL,
           claimed_at TEXT NOT NULL DEFAULT {now});"
    )
}

/// Creates the ledger tables when missing (idempotent). Called by [`Ledger::open`] and by
/// the sink before the first partition.
///
/// Does nothing (and takes no write lock) when every table exists. Otherwise creates them in
/// one `BEGIN IMMEDIATE` transaction, or inside the caller's transaction when one is open.
pub fn create_tables(conn: &Connection) -> rusqlite::Result<()> {
    let present: i64 = conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        TABLES,
        |r| r.get(0),
    )?;
    if usize::try_from(present).is_ok_and(|n| n == TABLES.len()) {
        return Ok(());
    }
    let own = conn.is_autocommit();
    if own {
        conn.execute_batch("BEGIN IMMEDIATE")?;
    }
    let done = conn.execute_batch(&ddl()).and_then(|()| {
        if own {
            conn.execute_batch("COMMIT")
        } else {
            Ok(())
        }
    });
    if done.is_err() && own && !conn.is_autocommit() {
        // The error is the one to report; a failed rollback leaves nothing more to undo.
        let _ = conn.execute_batch("ROLLBACK");
    }
    done
}

/// Upgrades a format 1 ledger in place (format 2 only adds: the newest time of a stream's
/// rows), then fails when the ledger in the file has a format version this tsmigrate does not
/// read.
fn check_version(db: &Db, conn: &Connection) -> Result<()> {
    let read = || -> rusqlite::Result<String> {
        conn.query_row(
            "SELECT value FROM tsmigrate_meta WHERE key = 'version'",
            [],
            |r| r.get(0),
        )
    };
    let mut v = read().map_err(|e| db.error("ledger: reading the ledger version", &e))?;
    if v == "1" {
        upgrade_from_1(conn).map_err(|e| db.error("ledger: upgrading to format 2", &e))?;
        v = read().map_err(|e| db.error("ledger: reading the ledger version", &e))?;
    }
    if v != LEDGER_VERSION {
        return Err(Error::Unsupported(format!(
            "the ledger in {} has format version {v}; this tsmigrate reads version {LEDGER_VERSION} — use the tsmigrate version that wrote it",
            db.describe()
        )));
    }
    Ok(())
}

/// Format 1 → 2: `tsmigrate_streams.newest_ts`, `tsmigrate_partitions.rejected`.
fn upgrade_from_1(conn: &Connection) -> rusqlite::Result<()> {
    let own = conn.is_autocommit();
    if own {
        conn.execute_batch("BEGIN IMMEDIATE")?;
    }
    let has = |table: &str, column: &str| -> rusqlite::Result<bool> {
        conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM pragma_table_info(?1) WHERE name = ?2)",
            [table, column],
            |r| r.get(0),
        )
    };
    let add = |table: &str, column: &str, ddl: &str| -> rusqlite::Result<()> {
        if has(table, column)? {
            Ok(())
        } else {
            conn.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {ddl}"))
        }
    };
    let done = add("tsmigrate_streams", "newest_ts", "INTEGER")
        .and_then(|()| {
            add(
                "tsmigrate_partitions",
                "rejected",
                "INTEGER NOT NULL DEFAULT 0",
            )
        })
        .and_then(|()| {
            conn.execute_batch(
                "UPDATE tsmigrate_meta SET value = '2' WHERE key = 'version' AND value = '1'",
            )
        })
        .and_then(|()| {
            if own {
                conn.execute_batch("COMMIT")
            } else {
                Ok(())
            }
        });
    if done.is_err() && own && !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    done
}

/// True when the file has the ledger table `name`.
fn has_table(conn: &Connection, name: &str) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1)",
        [name],
        |r| r.get(0),
    )
}

/// Rowid ranges as stored in `tsmigrate_writes.rowids`: a JSON array of `[first, last]`
/// inclusive pairs.
fn rowids_json(rowids: &[(i64, i64)]) -> String {
    let pairs: Vec<String> = rowids.iter().map(|(a, b)| format!("[{a},{b}]")).collect();
    format!("[{}]", pairs.join(","))
}

/// Records a committed partition inside the partition's own transaction, just before its
/// `COMMIT`: marks it done, inserts a `tsmigrate_writes` row with the target table (stored as
/// passed: an already quoted table name) and the rowid ranges the transaction inserted (for
/// rollback), and stores the partition's watermarks.
///
/// Returns `Ok(false)`, writing nothing, when the partition is already done (another run
/// committed it): the caller then rolls its transaction back instead of writing the rows
/// twice.
pub fn record_commit(
    conn: &Connection,
    plan_id: &str,
    commit: &PartitionCommit,
    table: &str,
    rows: u64,
    rowids: &[(i64, i64)],
) -> rusqlite::Result<bool> {
    let rows = count_i64(rows);
    let updated = conn
        .prepare_cached(
            "UPDATE tsmigrate_partitions SET state = 'done', run_id = ?4, rows = ?5, digest = ?6, \
             rejected = ?7, error = NULL, updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') \
             WHERE plan_id = ?1 AND stream = ?2 AND partition_id = ?3 AND state <> 'done'",
        )?
        .execute(params![
            plan_id,
            commit.stream,
            commit.partition_id,
            commit.run_id,
            rows,
            commit.digest,
            count_i64(commit.rejected)
        ])?;
    if updated != 1 {
        return Ok(false);
    }
    conn.prepare_cached(
        "INSERT INTO tsmigrate_writes \
         (plan_id, stream, partition_id, run_id, target_table, write_mode, rows, digest, rowids) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        plan_id,
        commit.stream,
        commit.partition_id,
        commit.run_id,
        table,
        commit.write.name(),
        rows,
        commit.digest,
        rowids_json(rowids)
    ])?;
    if let Some(newest) = commit.newest {
        conn.prepare_cached(
            "UPDATE tsmigrate_streams SET newest_ts = max(coalesce(newest_ts, ?3), ?3) \
             WHERE plan_id = ?1 AND stream = ?2",
        )?
        .execute(params![plan_id, commit.stream, newest])?;
    }
    if !commit.watermarks.is_empty() {
        let mut insert = conn.prepare_cached(
            "INSERT INTO tsmigrate_watermarks (plan_id, stream, series, ts, run_id) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for (series, ts) in &commit.watermarks {
            insert.execute(params![plan_id, commit.stream, series, ts, commit.run_id])?;
        }
    }
    Ok(true)
}

/// Inserts `partitions` as pending, numbered from `first_seq`.
fn insert_partitions(
    conn: &Connection,
    plan_id: &str,
    stream: &str,
    partitions: &[Partition],
    first_seq: i64,
) -> rusqlite::Result<()> {
    let mut insert = conn.prepare_cached(
        "INSERT INTO tsmigrate_partitions \
         (plan_id, stream, partition_id, seq, spec, estimated_rows, state) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending')",
    )?;
    let mut seq = first_seq;
    for p in partitions {
        insert.execute(params![
            plan_id,
            stream,
            p.id,
            seq,
            p.spec.to_string(),
            p.estimated_rows.map(count_i64)
        ])?;
        seq = seq.saturating_add(1);
    }
    Ok(())
}

/// A partition row as stored, before its spec and state are parsed.
struct PartitionRow {
    id: String,
    spec: String,
    estimated_rows: Option<i64>,
    state: String,
    run_id: Option<i64>,
    rows: i64,
    rejected: i64,
    digest: Option<String>,
    attempts: i64,
    error: Option<String>,
    updated_at: String,
}

impl PartitionRow {
    fn parse(self, db: &Db, stream: &str) -> Result<LedgerPartition> {
        let spec = serde_json::from_str(&self.spec).map_err(|e| Error::Decode {
            end: db.end(),
            context: format!(
                "{}: ledger: stream `{stream}`, partition {}",
                db.path().display(),
                self.id
            ),
            message: format!("the partition's spec is not JSON: {e}"),
        })?;
        let state = PartitionState::parse(&self.state).ok_or_else(|| {
            Error::Unsupported(format!(
                "ledger: partition state {:?} is unknown to this tsmigrate",
                self.state
            ))
        })?;
        Ok(LedgerPartition {
            partition: Partition {
                id: self.id,
                estimated_rows: self.estimated_rows.map(count_u64),
                spec,
            },
            state,
            run_id: self.run_id,
            rows: count_u64(self.rows),
            rejected: count_u64(self.rejected),
            digest: self.digest,
            attempts: u32::try_from(self.attempts.max(0)).unwrap_or(u32::MAX),
            error: self.error,
            updated_at: Some(self.updated_at),
        })
    }
}

#[async_trait]
impl Ledger for SqliteLedger {
    fn describe(&self) -> String {
        format!(
            "tables tsmigrate_* in {}, plan id {:?}",
            self.db.describe(),
            self.plan_id
        )
    }

    async fn open(&self) -> Result<()> {
        let lock = Arc::clone(&self.lock);
        self.with_conn(move |db, plan_id, conn| {
            // Held for the whole open, so concurrent opens of this ledger take the lock once.
            let mut held = lock.lock().unwrap_or_else(PoisonError::into_inner);
            if held.is_some() {
                return Ok(());
            }
            create_tables(conn).map_err(|e| db.error("ledger: creating the ledger tables", &e))?;
            check_version(db, conn)?;
            let Some(file) = db.try_lock()? else {
                return Err(Error::Plan(format!(
                    "another tsmigrate process is writing plan {plan_id:?} into this file ({}) (a run, sync or rollback); \
                     wait for it to finish or stop it",
                    db.path().display()
                )));
            };
            // With the lock held no other process writes into this file: runs still marked
            // running belong to processes that died (kill -9, crash, reboot).
            conn.execute(
                "UPDATE tsmigrate_runs SET state = 'interrupted', error = ?2 \
                 WHERE plan_id = ?1 AND state = 'running'",
                params![plan_id, DEAD_RUN],
            )
            .map_err(|e| db.error("ledger: closing the runs of dead processes", &e))?;
            *held = Some(file);
            Ok(())
        })
        .await
    }

    async fn exists(&self) -> Result<bool> {
        let db = self.db.clone();
        db::blocking(move || {
            if !db.path().exists() {
                return Ok(false);
            }
            let conn = db.open_read()?;
            has_table(&conn, "tsmigrate_runs").map_err(|e| db.error("ledger: looking for it", &e))
        })
        .await
    }

    async fn claim_table(&self, table: &str, stream: &str) -> Result<()> {
        let (table, stream) = (table.to_string(), stream.to_string());
        self.with_conn(move |db, plan_id, conn| {
            let ctx = |e: rusqlite::Error| db.error(format!("ledger: claiming table {table}"), &e);
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(ctx)?;
            let owner: Option<(String, String, String, bool)> = tx
                .query_row(
                    "SELECT c.plan_id, c.stream, c.claimed_at, EXISTS (SELECT 1 FROM tsmigrate_writes x \
                       WHERE x.plan_id = c.plan_id AND x.target_table = c.target_table AND x.rolled_back_by IS NULL) \
                     FROM tsmigrate_claims c WHERE c.target_table = ?1",
                    params![table],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )
                .optional()
                .map_err(ctx)?;
            match owner {
                Some((owner, ..)) if owner == plan_id => return Ok(()),
                Some((owner, owner_stream, since, true)) => {
                    return Err(tsmigrate_core::claimed_by_other(
                        &table,
                        &stream,
                        &owner,
                        &owner_stream,
                        &since,
                    ))
                }
                _ => {}
            }
            tx.execute(
                "INSERT INTO tsmigrate_claims (target_table, plan_id, stream) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (target_table) DO UPDATE SET plan_id = excluded.plan_id, stream = excluded.stream, \
                 claimed_at = excluded.claimed_at",
                params![table, plan_id, stream],
            )
            .map_err(ctx)?;
            tx.commit().map_err(ctx)
        })
        .await
    }

    async fn begin_run(&self, command: &str) -> Result<i64> {
        let command = command.to_string();
        self.with_conn(move |db, plan_id, conn| {
            conn.query_row(
                "INSERT INTO tsmigrate_runs (plan_id, command, state, version) \
                 VALUES (?1, ?2, 'running', ?3) RETURNING run_id",
                params![plan_id, command, env!("CARGO_PKG_VERSION")],
                |r| r.get(0),
            )
            .map_err(|e| db.error("ledger: recording the run", &e))
        })
        .await
    }

    async fn end_run(&self, run_id: i64, state: &str, error: Option<&str>) -> Result<()> {
        let state = state.to_string();
        let error = error.map(str::to_string);
        self.with_conn(move |db, plan_id, conn| {
            conn.execute(
                "UPDATE tsmigrate_runs SET state = ?2, error = ?3, \
                 finished_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE run_id = ?1",
                params![run_id, state, error],
            )
            .map_err(|e| db.error("ledger: recording the end of the run", &e))?;
            if state == "done" {
                // Keep the watermarks table small under `sync --follow`: a series' row that a
                // newer run superseded is dropped once its run is not among the 10 latest
                // (those stay so a rollback of a recent run falls back to the watermarks
                // before it).
                conn.execute(
                    "DELETE FROM tsmigrate_watermarks AS a \
                     WHERE a.plan_id = ?1 \
                       AND a.run_id < (SELECT COALESCE(min(run_id), 0) FROM \
                            (SELECT run_id FROM tsmigrate_runs WHERE plan_id = ?1 ORDER BY run_id DESC LIMIT 10)) \
                       AND EXISTS (SELECT 1 FROM tsmigrate_watermarks b \
                            WHERE b.plan_id = ?1 AND b.stream = a.stream AND b.series = a.series \
                              AND b.run_id > a.run_id AND b.ts >= a.ts)",
                    [plan_id],
                )
                .map_err(|e| db.error("ledger: compacting the watermarks", &e))?;
            }
            Ok(())
        })
        .await
    }

    async fn stream(&self, stream: &str) -> Result<Option<LedgerStream>> {
        let stream = stream.to_string();
        self.with_conn(move |db, plan_id, conn| {
            let head = conn
                .query_row(
                    "SELECT target_table, fingerprint, horizon_us, planned_at, last_sync_at, newest_ts \
                     FROM tsmigrate_streams WHERE plan_id = ?1 AND stream = ?2",
                    params![plan_id, stream],
                    |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, Option<i64>>(2)?,
                            r.get::<_, String>(3)?,
                            (r.get::<_, Option<String>>(4)?, r.get::<_, Option<i64>>(5)?),
                        ))
                    },
                )
                .optional()
                .map_err(|e| db.error("ledger: reading the stream", &e))?;
            let Some((table, fingerprint, horizon_us, planned_at, (last_sync_at, newest))) = head
            else {
                return Ok(None);
            };
            let rows = conn
                .prepare(
                    "SELECT partition_id, spec, estimated_rows, state, run_id, rows, digest, \
                            attempts, error, updated_at, rejected \
                     FROM tsmigrate_partitions WHERE plan_id = ?1 AND stream = ?2 ORDER BY seq",
                )
                .and_then(|mut stmt| {
                    stmt.query_map(params![plan_id, stream], |r| {
                        Ok(PartitionRow {
                            id: r.get(0)?,
                            spec: r.get(1)?,
                            estimated_rows: r.get(2)?,
                            state: r.get(3)?,
                            run_id: r.get(4)?,
                            rows: r.get(5)?,
                            digest: r.get(6)?,
                            attempts: r.get(7)?,
                            error: r.get(8)?,
                            updated_at: r.get(9)?,
                            rejected: r.get(10)?,
                        })
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()
                })
                .map_err(|e| db.error("ledger: reading the partitions", &e))?;
            let partitions = rows
                .into_iter()
                .map(|r| r.parse(db, &stream))
                .collect::<Result<Vec<_>>>()?;
            Ok(Some(LedgerStream {
                stream,
                table,
                fingerprint,
                horizon_us,
                planned_at,
                last_sync_at,
                newest,
                partitions,
            }))
        })
        .await
    }

    async fn plan_stream(
        &self,
        stream: &str,
        table: &str,
        fingerprint: &str,
        horizon_us: Option<i64>,
        partitions: &[Partition],
        replace: bool,
    ) -> Result<()> {
        let stream = stream.to_string();
        let table = table.to_string();
        let fingerprint = fingerprint.to_string();
        let partitions = partitions.to_vec();
        self.with_conn(move |db, plan_id, conn| {
            let mut work = || -> rusqlite::Result<()> {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                if replace {
                    for t in [
                        "tsmigrate_partitions",
                        "tsmigrate_watermarks",
                        "tsmigrate_streams",
                    ] {
                        tx.execute(
                            &format!("DELETE FROM {t} WHERE plan_id = ?1 AND stream = ?2"),
                            params![plan_id, stream],
                        )?;
                    }
                }
                tx.execute(
                    "INSERT INTO tsmigrate_streams (plan_id, stream, target_table, fingerprint, horizon_us) \
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![plan_id, stream, table, fingerprint, horizon_us],
                )?;
                insert_partitions(&tx, plan_id, &stream, &partitions, 0)?;
                tx.commit()
            };
            work().map_err(|e| db.error(format!("ledger: planning stream `{stream}`"), &e))
        })
        .await
    }

    async fn add_sync_partitions(
        &self,
        stream: &str,
        horizon_us: i64,
        partitions: &[Partition],
    ) -> Result<()> {
        let stream = stream.to_string();
        let partitions = partitions.to_vec();
        self.with_conn(move |db, plan_id, conn| {
            let mut work = || -> rusqlite::Result<()> {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let seq: i64 = tx.query_row(
                    "SELECT COALESCE(max(seq), 0) FROM tsmigrate_partitions \
                     WHERE plan_id = ?1 AND stream = ?2",
                    params![plan_id, stream],
                    |r| r.get(0),
                )?;
                insert_partitions(&tx, plan_id, &stream, &partitions, seq.saturating_add(1))?;
                tx.execute(
                    "UPDATE tsmigrate_streams SET horizon_us = ?3 WHERE plan_id = ?1 AND stream = ?2",
                    params![plan_id, stream, horizon_us],
                )?;
                tx.commit()
            };
            work().map_err(|e| {
                db.error(
                    format!("ledger: recording the sync round of stream `{stream}`"),
                    &e,
                )
            })
        })
        .await
    }

    async fn mark_synced(&self, stream: &str) -> Result<()> {
        let stream = stream.to_string();
        self.with_conn(move |db, plan_id, conn| {
            conn.execute(
                "UPDATE tsmigrate_streams SET last_sync_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') \
                 WHERE plan_id = ?1 AND stream = ?2",
                params![plan_id, stream],
            )
            .map_err(|e| db.error("ledger: recording the sync", &e))?;
            Ok(())
        })
        .await
    }

    async fn retire_partitions(&self, stream: &str, ids: &[String]) -> Result<()> {
        let stream = stream.to_string();
        let ids = ids.to_vec();
        self.with_conn(move |db, plan_id, conn| {
            let mut delete = conn
                .prepare(
                    "DELETE FROM tsmigrate_partitions \
                     WHERE plan_id = ?1 AND stream = ?2 AND partition_id = ?3 AND state <> 'done'",
                )
                .map_err(|e| db.error("ledger: retiring superseded partitions", &e))?;
            for id in &ids {
                delete
                    .execute(params![plan_id, stream, id])
                    .map_err(|e| db.error("ledger: retiring superseded partitions", &e))?;
            }
            Ok(())
        })
        .await
    }

    async fn mark_running(&self, stream: &str, partition: &str, run_id: i64) -> Result<()> {
        let stream = stream.to_string();
        let partition = partition.to_string();
        self.with_conn(move |db, plan_id, conn| {
            conn.execute(
                "UPDATE tsmigrate_partitions SET state = 'running', run_id = ?4, attempts = attempts + 1, \
                 updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') \
                 WHERE plan_id = ?1 AND stream = ?2 AND partition_id = ?3 AND state <> 'done'",
                params![plan_id, stream, partition, run_id],
            )
            .map_err(|e| db.error(format!("ledger: stream `{stream}`, partition {partition}"), &e))?;
            Ok(())
        })
        .await
    }

    async fn mark_failed(
        &self,
        stream: &str,
        partition: &str,
        run_id: i64,
        error: &str,
    ) -> Result<()> {
        let stream = stream.to_string();
        let partition = partition.to_string();
        let error = error.to_string();
        self.with_conn(move |db, plan_id, conn| {
            conn.execute(
                "UPDATE tsmigrate_partitions SET state = 'failed', run_id = ?4, error = ?5, \
                 updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') \
                 WHERE plan_id = ?1 AND stream = ?2 AND partition_id = ?3 AND state <> 'done'",
                params![plan_id, stream, partition, run_id, error],
            )
            .map_err(|e| {
                db.error(
                    format!("ledger: stream `{stream}`, partition {partition}"),
                    &e,
                )
            })?;
            Ok(())
        })
        .await
    }

    async fn record_done(&self, commit: &PartitionCommit, rows: u64) -> Result<()> {
        let commit = commit.clone();
        self.with_conn(move |db, plan_id, conn| {
            let mut work = || -> rusqlite::Result<()> {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let table: String = tx
                    .query_row(
                        "SELECT target_table FROM tsmigrate_streams WHERE plan_id = ?1 AND stream = ?2",
                        params![plan_id, commit.stream],
                        |r| r.get(0),
                    )
                    .optional()?
                    .unwrap_or_default();
                record_commit(&tx, plan_id, &commit, &table, rows, &[])?;
                tx.commit()
            };
            work().map_err(|e| {
                db.error(
                    format!(
                        "ledger: stream `{}`, partition {}",
                        commit.stream, commit.partition_id
                    ),
                    &e,
                )
            })
        })
        .await
    }

    async fn watermarks(&self, stream: &str) -> Result<Vec<(String, i64)>> {
        let stream = stream.to_string();
        self.with_conn(move |db, plan_id, conn| {
            conn.prepare(
                "SELECT series, max(ts) FROM tsmigrate_watermarks \
                 WHERE plan_id = ?1 AND stream = ?2 GROUP BY series",
            )
            .and_then(|mut stmt| {
                stmt.query_map(params![plan_id, stream], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(|e| db.error("ledger: reading the watermarks", &e))
        })
        .await
    }

    async fn runs(&self) -> Result<Vec<RunRecord>> {
        self.with_conn(move |db, plan_id, conn| {
            conn.prepare(
                "SELECT r.run_id, r.command, r.state, r.started_at, r.finished_at, r.error, \
                        COALESCE(sum(w.rows), 0), count(w.run_id), group_concat(DISTINCT w.write_mode) \
                 FROM tsmigrate_runs r \
                 LEFT JOIN tsmigrate_writes w ON w.plan_id = r.plan_id AND w.run_id = r.run_id \
                 WHERE r.plan_id = ?1 GROUP BY r.run_id ORDER BY r.run_id",
            )
            .and_then(|mut stmt| {
                stmt.query_map([plan_id], |r| {
                    let modes: Option<String> = r.get(8)?;
                    let mut write_modes: Vec<String> = modes
                        .as_deref()
                        .unwrap_or_default()
                        .split(',')
                        .filter(|m| !m.is_empty())
                        .map(str::to_string)
                        .collect();
                    write_modes.sort();
                    write_modes.dedup();
                    Ok(RunRecord {
                        id: r.get(0)?,
                        command: r.get(1)?,
                        state: r.get(2)?,
                        started_at: r.get(3)?,
                        finished_at: r.get(4)?,
                        error: r.get(5)?,
                        rows: count_u64(r.get(6)?),
                        partitions: count_u64(r.get(7)?),
                        write_modes,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(|e| db.error("ledger: listing the runs", &e))
        })
        .await
    }

    async fn rollback_run(&self, run_id: i64, rollback_id: i64) -> Result<RollbackOutcome> {
        self.with_conn(move |db, plan_id, conn| {
            let context = format!("ledger: rolling back run {run_id}");
            let ctx = |e: rusqlite::Error| db.error(context.as_str(), &e);
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(ctx)?;
            let writes = tx
                .prepare(
                    "SELECT target_table, rowids, rows FROM tsmigrate_writes \
                     WHERE plan_id = ?1 AND run_id = ?2 AND rolled_back_by IS NULL ORDER BY rowid",
                )
                .and_then(|mut stmt| {
                    stmt.query_map(params![plan_id, run_id], |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, i64>(2)?,
                        ))
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()
                })
                .map_err(ctx)?;
            let mut deleted: BTreeMap<String, u64> = BTreeMap::new();
            let mut expected = 0u64;
            for (table, rowids, rows) in writes {
                let ranges: Vec<(i64, i64)> =
                    serde_json::from_str(&rowids).map_err(|e| Error::Decode {
                        end: db.end(),
                        context: format!("{}: {context}", db.path().display()),
                        message: format!(
                            "the rowid ranges recorded for table {table} are not a JSON array of [first, last] pairs: {e}"
                        ),
                    })?;
                let mut delete = tx
                    .prepare_cached(&format!("DELETE FROM {table} WHERE rowid BETWEEN ?1 AND ?2"))
                    .map_err(ctx)?;
                let mut n = 0u64;
                for (first, last) in ranges {
                    let gone = delete.execute(params![first, last]).map_err(ctx)?;
                    n = n.saturating_add(u64::try_from(gone).unwrap_or(u64::MAX));
                }
                let total = deleted.entry(table).or_default();
                *total = total.saturating_add(n);
                expected = expected.saturating_add(count_u64(rows));
            }
            let partitions = tx
                .execute(
                    "UPDATE tsmigrate_partitions SET state = 'pending', run_id = NULL, rows = 0, digest = NULL, \
                     error = NULL, updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') \
                     WHERE plan_id = ?1 AND run_id = ?2 AND state = 'done' AND (stream, partition_id) IN \
                       (SELECT stream, partition_id FROM tsmigrate_writes \
                        WHERE plan_id = ?1 AND run_id = ?2 AND rolled_back_by IS NULL)",
                    params![plan_id, run_id],
                )
                .map_err(ctx)?;
            tx.execute(
                "UPDATE tsmigrate_writes SET rolled_back_by = ?3 \
                 WHERE plan_id = ?1 AND run_id = ?2 AND rolled_back_by IS NULL",
                params![plan_id, run_id, rollback_id],
            )
            .map_err(ctx)?;
            tx.execute(
                "DELETE FROM tsmigrate_watermarks WHERE plan_id = ?1 AND run_id = ?2",
                params![plan_id, run_id],
            )
            .map_err(ctx)?;
            tx.execute(
                "UPDATE tsmigrate_runs SET state = 'rolled back' WHERE plan_id = ?1 AND run_id = ?2",
                params![plan_id, run_id],
            )
            .map_err(ctx)?;
            tx.commit().map_err(ctx)?;
            Ok(RollbackOutcome {
                deleted: deleted.into_iter().collect(),
                expected,
                partitions: u64::try_from(partitions).unwrap_or(u64::MAX),
            })
        })
        .await
    }

    async fn record_verification(&self, record: &VerificationRecord) -> Result<()> {
        let record = record.clone();
        self.with_conn(move |db, plan_id, conn| {
            // Verify takes no plan lock and may come first: create what is missing. Skipped
            // when the table is there, so a verify running beside a run does not wait for the
            // write lock just to find the tables exist.
            let present = has_table(conn, "tsmigrate_verifications")
                .map_err(|e| db.error("ledger: looking for the verifications table", &e))?;
            if !present {
                create_tables(conn)
                    .map_err(|e| db.error("ledger: creating the ledger tables", &e))?;
                check_version(db, conn)?;
            }
            let mut work = || -> rusqlite::Result<()> {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                tx.execute(
                    "INSERT INTO tsmigrate_verifications \
                     (plan_id, stream, equal, source_rows, target_rows, missing, extra, different, time_window, seconds) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                    params![
                        plan_id,
                        record.stream,
                        record.equal,
                        count_i64(record.source_rows),
                        count_i64(record.target_rows),
                        count_i64(record.missing),
                        count_i64(record.extra),
                        count_i64(record.different),
                        record.window,
                        record.seconds
                    ],
                )?;
                tx.execute(
                    "DELETE FROM tsmigrate_verifications WHERE plan_id = ?1 AND stream = ?2 AND id NOT IN \
                       (SELECT id FROM tsmigrate_verifications WHERE plan_id = ?1 AND stream = ?2 \
                        ORDER BY id DESC LIMIT ?3)",
                    params![plan_id, record.stream, VERIFICATIONS_KEPT],
                )?;
                tx.commit()
            };
            work().map_err(|e| {
                db.error(
                    format!(
                        "ledger: recording the verification of stream `{}`",
                        record.stream
                    ),
                    &e,
                )
            })
        })
        .await
    }

    async fn verifications(&self) -> Result<Vec<VerificationRecord>> {
        self.with_conn(move |db, plan_id, conn| {
            let present = has_table(conn, "tsmigrate_verifications")
                .map_err(|e| db.error("ledger: looking for the verifications table", &e))?;
            if !present {
                return Ok(Vec::new());
            }
            conn.prepare(
                "SELECT stream, verified_at, equal, source_rows, target_rows, missing, extra, different, \
                        time_window, seconds \
                 FROM tsmigrate_verifications WHERE plan_id = ?1 AND id IN \
                   (SELECT max(id) FROM tsmigrate_verifications WHERE plan_id = ?1 GROUP BY stream) \
                 ORDER BY stream",
            )
            .and_then(|mut stmt| {
                stmt.query_map([plan_id], |r| {
                    Ok(VerificationRecord {
                        stream: r.get(0)?,
                        verified_at: r.get(1)?,
                        equal: r.get(2)?,
                        source_rows: count_u64(r.get(3)?),
                        target_rows: count_u64(r.get(4)?),
                        missing: count_u64(r.get(5)?),
                        extra: count_u64(r.get(6)?),
                        different: count_u64(r.get(7)?),
                        window: r.get(8)?,
                        seconds: r.get(9)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(|e| db.error("ledger: reading the verifications", &e))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tsmigrate_core::{End, WriteMode};

    fn ledger(dir: &tempfile::TempDir, plan: &str) -> SqliteLedger {
        SqliteLedger::new(Db::new(dir.path().join("t.db"), End::Target), plan)
    }

    fn part(id: &str, n: u64) -> Partition {
        Partition {
            id: id.to_string(),
            estimated_rows: Some(n),
            spec: serde_json::json!({"from": n, "to": n + 10, "series": ["a", 1]}),
        }
    }

    fn commit(stream: &str, id: &str, run_id: i64, watermarks: &[(&str, i64)]) -> PartitionCommit {
        PartitionCommit {
            stream: stream.to_string(),
            partition_id: id.to_string(),
            run_id,
            write: WriteMode::Append,
            digest: format!("digest-{id}"),
            watermarks: watermarks
                .iter()
                .map(|(s, t)| (s.to_string(), *t))
                .collect(),
            newest: watermarks.iter().map(|(_, t)| *t).max(),
            rejected: 0,
        }
    }

    /// Commits `c` the way the sink does: in a transaction of its own, on its own connection.
    fn commit_partition(
        l: &SqliteLedger,
        c: &PartitionCommit,
        rows: u64,
        rowids: &[(i64, i64)],
    ) -> bool {
        let mut conn = l.db.open_write().unwrap();
        let tx = conn.transaction().unwrap();
        let done = record_commit(&tx, l.plan_id(), c, "\"readings\"", rows, rowids).unwrap();
        if done {
            tx.commit().unwrap();
        } else {
            tx.rollback().unwrap();
        }
        done
    }

    #[tokio::test]
    async fn open_twice_and_the_file_lock() {
        let dir = tempfile::tempdir().unwrap();
        let l = ledger(&dir, "p");
        l.open().await.unwrap();
        l.open().await.unwrap();
        assert!(l.describe().contains("tsmigrate_*"));
        assert!(l.describe().contains("plan id \"p\""));
        // flock belongs to the open file description: a second one cannot take it.
        assert!(l.db.try_lock().unwrap().is_none());
        let other = ledger(&dir, "q");
        let err = other.open().await.unwrap_err();
        assert!(matches!(err, Error::Plan(_)), "{err}");
        assert!(
            err.to_string().contains("another tsmigrate process"),
            "{err}"
        );
        drop(l);
        assert!(other.db.try_lock().unwrap().is_some());
    }

    #[tokio::test]
    async fn a_table_has_one_appending_plan_while_its_rows_are_there() {
        let dir = tempfile::tempdir().unwrap();
        let a = ledger(&dir, "a");
        a.open().await.unwrap();
        a.claim_table("\"readings\"", "s").await.unwrap();
        a.claim_table("\"readings\"", "s").await.unwrap();
        let run = a.begin_run("run").await.unwrap();
        a.plan_stream("s", "\"readings\"", "fp", None, &[part("p1", 3)], false)
            .await
            .unwrap();
        assert!(commit_partition(
            &a,
            &commit("s", "p1", run, &[]),
            3,
            &[(1, 3)]
        ));
        drop(a);
        let b = ledger(&dir, "b");
        b.open().await.unwrap();
        let err = b.claim_table("\"readings\"", "t").await.unwrap_err();
        assert!(
            err.to_string()
                .contains("table \"readings\" is appended into by plan \"a\" (stream `s`"),
            "{err}"
        );
        // Another table is free.
        b.claim_table("\"other\"", "t").await.unwrap();
        // Once plan a's rows are rolled back, the table passes to b.
        b.db.open_write()
            .unwrap()
            .execute(
                "UPDATE tsmigrate_writes SET rolled_back_by = 99 WHERE plan_id = 'a'",
                [],
            )
            .unwrap();
        b.claim_table("\"readings\"", "t").await.unwrap();
    }

    #[tokio::test]
    async fn open_marks_dead_runs_interrupted() {
        let dir = tempfile::tempdir().unwrap();
        let first = ledger(&dir, "p");
        first.open().await.unwrap();
        let run = first.begin_run("run").await.unwrap();
        let other_plan = ledger(&dir, "q").begin_run("run").await.unwrap();
        drop(first);
        let second = ledger(&dir, "p");
        second.open().await.unwrap();
        let runs = second.runs().await.unwrap();
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].id, run);
        assert_eq!(runs[0].state, "interrupted");
        assert_eq!(runs[0].error.as_deref(), Some(DEAD_RUN));
        let q = ledger(&dir, "q").runs().await.unwrap();
        assert_eq!((q[0].id, q[0].state.as_str()), (other_plan, "running"));
    }

    #[tokio::test]
    async fn plan_stream_round_trip_and_replace() {
        let dir = tempfile::tempdir().unwrap();
        let l = ledger(&dir, "p");
        l.open().await.unwrap();
        assert!(l.stream("s").await.unwrap().is_none());
        let parts = [part("b", 5), part("a", 7)];
        l.plan_stream("s", "\"readings\"", "fp1", Some(1_000), &parts, false)
            .await
            .unwrap();
        let s = l.stream("s").await.unwrap().unwrap();
        assert_eq!(s.stream, "s");
        assert_eq!(s.table, "\"readings\"");
        assert_eq!(s.fingerprint, "fp1");
        assert_eq!(s.horizon_us, Some(1_000));
        assert!(s.planned_at.ends_with('Z') && s.planned_at.contains('T'));
        assert!(s.last_sync_at.is_none());
        let ids: Vec<&str> = s
            .partitions
            .iter()
            .map(|p| p.partition.id.as_str())
            .collect();
        assert_eq!(ids, ["b", "a"]);
        assert_eq!(s.partitions[0].partition.spec, parts[0].spec);
        assert_eq!(s.partitions[1].partition.estimated_rows, Some(7));
        assert_eq!(s.partitions[0].state, PartitionState::Pending);
        assert_eq!(s.partitions[0].attempts, 0);
        assert!(s.partitions[0].updated_at.is_some());

        // Planning again without replace is refused; with replace it starts over.
        assert!(l
            .plan_stream("s", "\"readings\"", "fp1", None, &parts, false)
            .await
            .is_err());
        l.plan_stream("s", "\"other\"", "fp2", None, &[part("c", 1)], true)
            .await
            .unwrap();
        let s = l.stream("s").await.unwrap().unwrap();
        assert_eq!(
            (s.table.as_str(), s.fingerprint.as_str()),
            ("\"other\"", "fp2")
        );
        assert_eq!(s.horizon_us, None);
        assert_eq!(s.partitions.len(), 1);

        // A sync round appends partitions after the last one and moves the horizon.
        l.add_sync_partitions("s", 2_000, &[part("d", 1), part("e", 1)])
            .await
            .unwrap();
        l.mark_synced("s").await.unwrap();
        let s = l.stream("s").await.unwrap().unwrap();
        let ids: Vec<&str> = s
            .partitions
            .iter()
            .map(|p| p.partition.id.as_str())
            .collect();
        assert_eq!(ids, ["c", "d", "e"]);
        assert_eq!(s.horizon_us, Some(2_000));
        assert!(s.last_sync_at.is_some());
    }

    #[tokio::test]
    async fn partition_states_and_commits() {
        let dir = tempfile::tempdir().unwrap();
        let l = ledger(&dir, "p");
        l.open().await.unwrap();
        l.plan_stream(
            "s",
            "\"readings\"",
            "fp",
            None,
            &[part("a", 1), part("b", 1)],
            false,
        )
        .await
        .unwrap();
        let run = l.begin_run("run").await.unwrap();
        l.mark_running("s", "a", run).await.unwrap();
        l.mark_failed("s", "a", run, "boom").await.unwrap();
        l.mark_running("s", "a", run).await.unwrap();
        let s = l.stream("s").await.unwrap().unwrap();
        let a = &s.partitions[0];
        assert_eq!(
            (a.state, a.attempts, a.run_id),
            (PartitionState::Running, 2, Some(run))
        );
        assert_eq!(a.error.as_deref(), Some("boom"));

        let c = commit("s", "a", run, &[("[\"x\"]", 10), ("[\"y\"]", 20)]);
        assert!(commit_partition(&l, &c, 3, &[(1, 3)]));
        // Already done: the second commit writes nothing and says so.
        assert!(!commit_partition(&l, &c, 3, &[(4, 6)]));
        let s = l.stream("s").await.unwrap().unwrap();
        let a = &s.partitions[0];
        assert_eq!(a.state, PartitionState::Done);
        assert_eq!(
            (a.rows, a.digest.as_deref(), a.error.as_deref()),
            (3, Some("digest-a"), None)
        );
        // A done partition stays done.
        l.mark_running("s", "a", run).await.unwrap();
        l.mark_failed("s", "a", run, "late").await.unwrap();
        assert_eq!(
            l.stream("s").await.unwrap().unwrap().partitions[0].state,
            PartitionState::Done
        );

        let c = commit("s", "b", run, &[("[\"x\"]", 15), ("[\"y\"]", 5)]);
        l.record_done(&c, 4).await.unwrap();
        let mut w = l.watermarks("s").await.unwrap();
        w.sort();
        assert_eq!(
            w,
            [("[\"x\"]".to_string(), 15), ("[\"y\"]".to_string(), 20)]
        );
        assert!(l.watermarks("other").await.unwrap().is_empty());

        l.end_run(run, "done", None).await.unwrap();
        let runs = l.runs().await.unwrap();
        assert_eq!(runs.len(), 1);
        let r = &runs[0];
        assert_eq!(
            (r.id, r.command.as_str(), r.state.as_str()),
            (run, "run", "done")
        );
        assert_eq!((r.rows, r.partitions), (7, 2));
        assert_eq!(r.write_modes, ["append"]);
        assert!(r.finished_at.is_some());
    }

    #[tokio::test]
    async fn runs_list_write_modes() {
        let dir = tempfile::tempdir().unwrap();
        let l = ledger(&dir, "p");
        l.open().await.unwrap();
        let parts: Vec<Partition> = (0..3).map(|i| part(&i.to_string(), 1)).collect();
        l.plan_stream("s", "\"readings\"", "fp", None, &parts, false)
            .await
            .unwrap();
        let empty = l.begin_run("run").await.unwrap();
        l.end_run(empty, "failed", Some("no")).await.unwrap();
        let run = l.begin_run("sync").await.unwrap();
        for (i, mode) in [WriteMode::Upsert, WriteMode::Skip, WriteMode::Upsert]
            .into_iter()
            .enumerate()
        {
            let mut c = commit("s", &i.to_string(), run, &[]);
            c.write = mode;
            assert!(commit_partition(&l, &c, 10, &[]));
        }
        let runs = l.runs().await.unwrap();
        assert_eq!(runs.len(), 2);
        assert_eq!(
            (runs[0].id, runs[0].rows, runs[0].partitions),
            (empty, 0, 0)
        );
        assert!(runs[0].write_modes.is_empty());
        assert_eq!(runs[0].error.as_deref(), Some("no"));
        assert_eq!((runs[1].id, runs[1].rows, runs[1].partitions), (run, 30, 3));
        assert_eq!(runs[1].write_modes, ["skip", "upsert"]);
        assert_eq!(runs[1].state, "running");
    }

    #[tokio::test]
    async fn rollback_deletes_exactly_the_recorded_rows() {
        let dir = tempfile::tempdir().unwrap();
        let l = ledger(&dir, "p");
        l.open().await.unwrap();
        let conn = l.db.open_write().unwrap();
        conn.execute_batch(
            "CREATE TABLE readings (v INTEGER);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20)
             INSERT INTO readings (rowid, v) SELECT i, i FROM n;",
        )
        .unwrap();
        l.plan_stream(
            "s",
            "\"readings\"",
            "fp",
            None,
            &[part("a", 1), part("b", 1), part("c", 1)],
            false,
        )
        .await
        .unwrap();
        let before = l.begin_run("run").await.unwrap();
        assert!(commit_partition(
            &l,
            &commit("s", "c", before, &[("k", 1)]),
            2,
            &[(19, 20)]
        ));
        l.end_run(before, "done", None).await.unwrap();
        let run = l.begin_run("run").await.unwrap();
        assert!(commit_partition(
            &l,
            &commit("s", "a", run, &[("k", 5)]),
            5,
            &[(2, 4), (7, 8)]
        ));
        assert!(commit_partition(
            &l,
            &commit("s", "b", run, &[("k", 9)]),
            3,
            &[(11, 13)]
        ));
        l.end_run(run, "done", None).await.unwrap();
        assert_eq!(l.watermarks("s").await.unwrap(), [("k".to_string(), 9)]);

        let rb = l.begin_run("rollback").await.unwrap();
        let outcome = l.rollback_run(run, rb).await.unwrap();
        assert_eq!(outcome.deleted, [("\"readings\"".to_string(), 8)]);
        assert_eq!((outcome.expected, outcome.partitions), (8, 2));
        l.end_run(rb, "done", None).await.unwrap();

        let mut stmt = conn
            .prepare("SELECT rowid FROM readings ORDER BY rowid")
            .unwrap();
        let left: Vec<i64> = stmt
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(left, [1, 5, 6, 9, 10, 14, 15, 16, 17, 18, 19, 20]);

        let s = l.stream("s").await.unwrap().unwrap();
        let states: Vec<_> = s
            .partitions
            .iter()
            .map(|p| (p.state, p.rows, p.run_id))
            .collect();
        assert_eq!(
            states,
            [
                (PartitionState::Pending, 0, None),
                (PartitionState::Pending, 0, None),
                (PartitionState::Done, 2, Some(before)),
            ]
        );
        assert_eq!(l.watermarks("s").await.unwrap(), [("k".to_string(), 1)]);
        let runs = l.runs().await.unwrap();
        assert_eq!(runs[1].state, "rolled back");

        // Rolling back again finds nothing left to delete.
        let again = l.rollback_run(run, rb).await.unwrap();
        assert!(again.deleted.is_empty());
        assert_eq!((again.expected, again.partitions), (0, 0));
    }

    #[tokio::test]
    async fn verifications_keep_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let l = ledger(&dir, "p");
        assert!(l.verifications().await.unwrap().is_empty());
        for i in 0..60u64 {
            for stream in ["s", "t"] {
                l.record_verification(&VerificationRecord {
                    stream: stream.to_string(),
                    verified_at: None,
                    equal: i % 2 == 1,
                    source_rows: i,
                    target_rows: i + 1,
                    missing: 1,
                    extra: 2,
                    different: 3,
                    window: "all rows".to_string(),
                    seconds: 0.5,
                })
                .await
                .unwrap();
            }
        }
        let v = l.verifications().await.unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!((v[0].stream.as_str(), v[1].stream.as_str()), ("s", "t"));
        assert_eq!(
            (v[0].source_rows, v[0].target_rows, v[0].equal),
            (59, 60, true)
        );
        assert_eq!((v[0].missing, v[0].extra, v[0].different), (1, 2, 3));
        assert_eq!((v[0].window.as_str(), v[0].seconds), ("all rows", 0.5));
        assert!(v[0].verified_at.is_some());
        let conn = l.db.open_write().unwrap();
        let kept: i64 = conn
            .query_row(
                "SELECT count(*) FROM tsmigrate_verifications WHERE stream = 's'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(kept, VERIFICATIONS_KEPT);
        let oldest: i64 = conn
            .query_row(
                "SELECT min(source_rows) FROM tsmigrate_verifications WHERE stream = 's'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(oldest, 10);
        assert!(ledger(&dir, "q").verifications().await.unwrap().is_empty());
    }

    #[test]
    fn create_tables_is_idempotent_inside_a_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = Db::new(dir.path().join("t.db"), End::Target)
            .open_write()
            .unwrap();
        let tx = conn.transaction().unwrap();
        create_tables(&tx).unwrap();
        create_tables(&tx).unwrap();
        tx.commit().unwrap();
        create_tables(&conn).unwrap();
        let n: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name LIKE 'tsmigrate_%'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 8);
        assert_eq!(rowids_json(&[(1, 3), (7, 7)]), "[[1,3],[7,7]]");
        assert_eq!(rowids_json(&[]), "[]");
    }
}
