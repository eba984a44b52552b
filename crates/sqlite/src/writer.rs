//! The writer thread: SQLite allows one writer per file, so every partition of a sink is
//! written by one thread that owns the write connection. A partition holds the writer from
//! `begin` to `commit` (one `BEGIN IMMEDIATE … COMMIT` transaction), while other partitions
//! read and map their next batches; batches are sent ahead without waiting, and an insert
//! error is reported by the partition's next call. A row SQLite refuses (a constraint, a
//! value of the wrong type for a STRICT table, one too big) is set aside as rejected — its
//! statement fails, not the transaction — and handed over before the partition commits
//! ([`Turn::take_rejects`]).

use std::sync::Arc;

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot, Mutex, OwnedMutexGuard};
use tsmigrate_core::{Batch, CommitInfo, Error, LateReject, PartitionCommit, Result, WriteMode};

use crate::db::{quote_ident, Db};
use crate::ledger::{create_tables, record_commit};
use crate::values::to_sql;

/// Batches queued ahead of the writer per partition.
const QUEUE: usize = 4;

/// What one partition's transaction does.
#[derive(Clone, Debug)]
pub struct InsertPlan {
    /// The statement inserting one row (`?1 … ?n` are the batch's columns in order).
    pub sql: String,
    /// How rows enter the table.
    pub write: WriteMode,
    /// The target table (quoted), recorded in the ledger for rollback.
    pub table: String,
    /// The plan whose ledger records the partition (`None`: no ledger).
    pub ledger_plan: Option<String>,
    /// Stream, partition and table, for messages.
    pub context: String,
}

enum Cmd {
    Begin(InsertPlan, oneshot::Sender<Result<()>>),
    Write(Batch),
    Commit(Option<PartitionCommit>, oneshot::Sender<Result<CommitInfo>>),
    Abort(oneshot::Sender<Result<()>>),
    TakeRejects(oneshot::Sender<Result<Vec<LateReject>>>),
}

/// A handle on the writer thread of one SQLite file.
pub struct Writer {
    tx: mpsc::Sender<Cmd>,
    /// Held by the partition writing (one at a time).
    turn: Arc<Mutex<()>>,
}

impl Writer {
    /// Starts the writer thread on a new write connection to `db`.
    pub fn start(db: &Db) -> Result<Writer> {
        let conn = db.open_write()?;
        let (tx, rx) = mpsc::channel(QUEUE);
        let db = db.clone();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || run(db, conn, rx))
            .map_err(|e| Error::Io {
                path: "sqlite writer thread".into(),
                source: e,
            })?;
        Ok(Writer {
            tx,
            turn: Arc::new(Mutex::new(())),
        })
    }

    /// Waits for the writer, then opens the partition's transaction.
    pub async fn begin(&self, plan: InsertPlan) -> Result<Turn> {
        let guard = self.turn.clone().lock_owned().await;
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Cmd::Begin(plan, reply))
            .await
            .map_err(|_| gone())?;
        answer.await.map_err(|_| gone())??;
        Ok(Turn {
            tx: self.tx.clone(),
            _guard: guard,
        })
    }
}

/// One partition's hold on the writer; dropping it without commit or abort rolls back.
pub struct Turn {
    tx: mpsc::Sender<Cmd>,
    _guard: OwnedMutexGuard<()>,
}

impl Turn {
    /// Queues a batch (columns in the insert statement's order).
    pub async fn write(&self, batch: Batch) -> Result<()> {
        self.tx.send(Cmd::Write(batch)).await.map_err(|_| gone())
    }

    /// Commits (recording the partition in the ledger in the same transaction).
    pub async fn commit(self, ledger: Option<PartitionCommit>) -> Result<CommitInfo> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Cmd::Commit(ledger, reply))
            .await
            .map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }

    /// The rows refused so far (after every queued batch was inserted).
    pub async fn take_rejects(&self) -> Result<Vec<LateReject>> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Cmd::TakeRejects(reply))
            .await
            .map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }

    /// Rolls back.
    pub async fn abort(self) -> Result<()> {
        let (reply, answer) = oneshot::channel();
        self.tx.send(Cmd::Abort(reply)).await.map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

fn gone() -> Error {
    Error::Internal("the SQLite writer thread stopped".into())
}

/// The open transaction of the partition being written.
struct Open {
    plan: InsertPlan,
    written: u64,
    skipped: u64,
    rowids: Vec<(i64, i64)>,
    /// Rows an `upsert` already stored in this partition: a later row with the same key
    /// overwrites it and counts as skipped (a duplicate of the partition), not written.
    upserted: std::collections::HashSet<i64>,
    /// Rows SQLite refused, not yet handed over.
    rejected: Vec<LateReject>,
    failed: Option<Error>,
}

impl Open {
    fn note_rowid(&mut self, id: i64) {
        match self.rowids.last_mut() {
            Some((_, last)) if last.checked_add(1) == Some(id) => *last = id,
            _ => self.rowids.push((id, id)),
        }
    }
}

fn run(db: Db, conn: Connection, mut rx: mpsc::Receiver<Cmd>) {
    let mut open: Option<Open> = None;
    let mut ledger_ready = false;
    while let Some(cmd) = rx.blocking_recv() {
        match cmd {
            Cmd::Begin(plan, reply) => {
                if open.is_some() {
                    let _ = conn.execute_batch("ROLLBACK");
                }
                let r = conn.execute_batch("BEGIN IMMEDIATE").map_err(|e| {
                    db.error(format!("{}: starting the transaction", plan.context), &e)
                });
                open = r.is_ok().then(|| Open {
                    plan,
                    written: 0,
                    skipped: 0,
                    rowids: Vec::new(),
                    upserted: Default::default(),
                    rejected: Vec::new(),
                    failed: None,
                });
                let _ = reply.send(r);
            }
            Cmd::Write(batch) => {
                if let Some(o) = open.as_mut() {
                    if o.failed.is_none() {
                        if let Err(e) = insert(&db, &conn, o, &batch) {
                            o.failed = Some(e);
                        }
                    }
                }
            }
            Cmd::Commit(ledger, reply) => {
                let Some(mut o) = open.take() else {
                    let _ = reply.send(Err(Error::Internal("commit without a transaction".into())));
                    continue;
                };
                let r = commit(&db, &conn, &mut o, ledger.as_ref(), &mut ledger_ready);
                if r.is_err() {
                    let _ = conn.execute_batch("ROLLBACK");
                }
                let _ = reply.send(r);
            }
            Cmd::TakeRejects(reply) => {
                let r = match open.as_mut() {
                    Some(o) => match o.failed.take() {
                        Some(e) => Err(e),
                        None => Ok(std::mem::take(&mut o.rejected)),
                    },
                    None => Ok(Vec::new()),
                };
                let _ = reply.send(r);
            }
            Cmd::Abort(reply) => {
                let r = if open.take().is_some() {
                    conn.execute_batch("ROLLBACK")
                        .map_err(|e| db.error("rolling back", &e))
                } else {
                    Ok(())
                };
                let _ = reply.send(r);
            }
        }
    }
    if open.is_some() {
        let _ = conn.execute_batch("ROLLBACK");
    }
}

fn commit(
    db: &Db,
    conn: &Connection,
    o: &mut Open,
    ledger: Option<&PartitionCommit>,
    ledger_ready: &mut bool,
) -> Result<CommitInfo> {
    if let Some(e) = o.failed.take() {
        return Err(e);
    }
    let ctx = o.plan.context.clone();
    let mut recorded = false;
    if let (Some(commit), Some(plan_id)) = (ledger, &o.plan.ledger_plan) {
        if !*ledger_ready {
            create_tables(conn)
                .map_err(|e| db.error(format!("{ctx}: creating the ledger tables"), &e))?;
            *ledger_ready = true;
        }
        let fresh = record_commit(conn, plan_id, commit, &o.plan.table, o.written, &o.rowids)
            .map_err(|e| db.error(format!("{ctx}: recording the partition in the ledger"), &e))?;
        if !fresh {
            return Err(Error::Store {
                end: db.end(),
                context: ctx,
                message: "the ledger says another run already committed this partition; this attempt was rolled back so its rows are not written twice".into(),
                transient: false,
            });
        }
        recorded = true;
    }
    conn.execute_batch("COMMIT")
        .map_err(|e| db.error(format!("{ctx}: committing"), &e))?;
    Ok(CommitInfo {
        written: o.written,
        skipped: o.skipped,
        recorded,
    })
}

/// True for an error of one row's statement that leaves the transaction usable: a constraint
/// (NOT NULL, CHECK, UNIQUE, FOREIGN KEY), a value of the wrong type (STRICT), one too big.
fn is_refusal(e: &rusqlite::Error) -> bool {
    matches!(
        e,
        rusqlite::Error::SqliteFailure(f, _)
            if matches!(
                f.code,
                rusqlite::ErrorCode::ConstraintViolation
                    | rusqlite::ErrorCode::TypeMismatch
                    | rusqlite::ErrorCode::TooBig
            )
    )
}

fn insert(db: &Db, conn: &Connection, o: &mut Open, batch: &Batch) -> Result<()> {
    let mut stmt = conn
        .prepare_cached(&o.plan.sql)
        .map_err(|e| db.error(format!("{}: preparing the insert", o.plan.context), &e))?;
    for row in 0..batch.len() {
        match insert_row(o, &mut stmt, conn, batch, row) {
            Ok(()) => {}
            Err(e) if is_refusal(&e) => {
                let mut mask = vec![false; batch.len()];
                mask[row] = true;
                o.rejected.push(LateReject {
                    row: batch.filter(&mask),
                    column: None,
                    reason: format!("the target refused the row: {e}"),
                });
            }
            Err(e) => return Err(row_error(db, o, batch, row, &e)),
        }
    }
    Ok(())
}

/// Inserts (or upserts) one row of `batch`.
fn insert_row(
    o: &mut Open,
    stmt: &mut rusqlite::CachedStatement<'_>,
    conn: &Connection,
    batch: &Batch,
    row: usize,
) -> rusqlite::Result<()> {
    let upsert = o.plan.write == WriteMode::Upsert;
    {
        for (i, col) in batch.columns.iter().enumerate() {
            stmt.raw_bind_parameter(i + 1, to_sql(col.get(row)))?;
        }
        if upsert {
            // RETURNING gives the rowid of an inserted or updated row (rollback deletes both,
            // as it does in PostgreSQL).
            let mut rows = stmt.raw_query();
            let id = rows.next()?.map(|r| r.get::<_, i64>(0)).transpose()?;
            drop(rows);
            match id {
                Some(id) if !o.upserted.insert(id) => o.skipped += 1,
                Some(id) => {
                    o.written += 1;
                    o.note_rowid(id);
                }
                None => o.skipped += 1,
            }
            return Ok(());
        }
        let changed = stmt.raw_execute()?;
        if changed == 1 {
            o.written += 1;
            o.note_rowid(conn.last_insert_rowid());
        } else {
            o.skipped += 1;
        }
    }
    Ok(())
}

fn row_error(db: &Db, o: &Open, batch: &Batch, row: usize, e: &rusqlite::Error) -> Error {
    let values: Vec<String> = batch
        .schema
        .fields
        .iter()
        .zip(batch.row(row))
        .map(|(f, v)| format!("{}={}", f.name, tsmigrate_core::convert::value_to_string(v)))
        .collect();
    db.error(
        format!(
            "{}: inserting row ({}); nothing of the partition was committed",
            o.plan.context,
            values.join(", ")
        ),
        e,
    )
}

/// The insert statement of `columns` into `table` for a write mode. `key` must be covered by
/// a unique index for `upsert`; `skip` uses `ON CONFLICT` with one (`unique_key`) and a
/// `NOT EXISTS` probe without.
pub fn insert_sql(
    table: &str,
    columns: &[String],
    key: &[String],
    write: WriteMode,
    unique_key: bool,
) -> String {
    let cols: Vec<String> = columns.iter().map(|c| quote_ident(c)).collect();
    let marks: Vec<String> = (1..=columns.len()).map(|i| format!("?{i}")).collect();
    let (cols, marks) = (cols.join(", "), marks.join(", "));
    let qkey: Vec<String> = key.iter().map(|k| quote_ident(k)).collect();
    match write {
        WriteMode::Append => format!("INSERT INTO {table} ({cols}) VALUES ({marks})"),
        WriteMode::Skip if unique_key => format!(
            "INSERT INTO {table} ({cols}) VALUES ({marks}) ON CONFLICT ({}) DO NOTHING",
            qkey.join(", ")
        ),
        WriteMode::Skip => {
            let cond: Vec<String> = key
                .iter()
                .map(|k| {
                    let pos = columns.iter().position(|c| c == k).unwrap_or(0) + 1;
                    format!("t.{} = ?{pos}", quote_ident(k))
                })
                .collect();
            format!(
                "INSERT INTO {table} ({cols}) SELECT {marks} WHERE NOT EXISTS (SELECT 1 FROM {table} t WHERE {})",
                cond.join(" AND ")
            )
        }
        WriteMode::Upsert => {
            let set: Vec<String> = columns
                .iter()
                .filter(|c| !key.contains(c))
                .map(|c| format!("{q} = excluded.{q}", q = quote_ident(c)))
                .collect();
            // A row whose values are all key columns has nothing to update: it is kept as is.
            let action = if set.is_empty() {
                "DO NOTHING".to_string()
            } else {
                format!("DO UPDATE SET {}", set.join(", "))
            };
            format!(
                "INSERT INTO {table} ({cols}) VALUES ({marks}) ON CONFLICT ({}) {action} RETURNING rowid",
                qkey.join(", ")
            )
        }
    }
}
