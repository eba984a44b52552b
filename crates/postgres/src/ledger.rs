//! The ledger kept in a PostgreSQL target, in its own schema (`tsmigrate` by default).
//!
//! Tables (all keyed by the plan id, so several plans can share one target):
//!
//! - `runs`: one row per `run`, `sync` or `rollback`, with its state and error;
//! - `streams`: per plan stream, the target table, the stream's fingerprint and the time
//!   horizon its partitions read up to;
//! - `partitions`: every planned partition with the source's description of what to read,
//!   its state (`pending`, `running`, `done`, `failed`), rows, digest and last error;
//! - `writes`: one row per committed partition transaction with the transaction id, which
//!   is how `rollback` finds exactly the rows a run inserted (their `xmin`);
//! - `watermarks`: the newest time per series of each committed partition, for `sync`;
//! - `verifications`: the outcome of each `verify` of a stream (the 50 newest per stream), for
//!   `status`. Added after format version 1 without changing it: it is created when missing,
//!   and a ledger without it simply has no verifications.
//!
//! - `plans`: per plan, the epoch of the process holding it: each `open` bumps it, and each
//!   partition commit checks it in its own transaction (the fence: a process that lost the
//!   plan — its lock's connection died, another run or a rollback took over — can commit
//!   nothing more);
//! - `claims`: which plan appends into which table, so two plans never append into one.
//!
//! A partition's `done` state, its `writes` row and its watermarks are written by the
//! partition's own transaction (see [`record_commit`]), so they are committed exactly when
//! its rows are.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Mutex;
use tokio_postgres::{Client, GenericClient};
use tsmigrate_core::{
    claimed_by_other, taken_over, ConnString, End, Error, Ledger, LedgerPartition, LedgerStream,
    Partition, PartitionCommit, PartitionState, Result, RollbackOutcome, RunRecord,
    VerificationRecord,
};

use crate::connect::{connect, quote_ident, store_error};

/// Ledger tables format version, stored in `meta`. Version 1 ledgers are upgraded in place
/// (the changes only add: [`UPGRADE_FROM_1`]).
const LEDGER_VERSION: &str = "2";

/// Verifications kept per plan stream (older ones are deleted when a new one is recorded).
const VERIFICATIONS_KEPT: i64 = 50;

/// `timestamptz` as RFC 3339 UTC text.
fn ts_text(col: &str) -> String {
    format!("to_char({col} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')")
}

/// Where the ledger lives and whose it is; shared with the sink's partition writers.
#[derive(Clone, Debug)]
pub struct LedgerPlace {
    /// Quoted schema name.
    pub schema: String,
    /// Plan id.
    pub plan_id: String,
    /// The epoch this process took the plan at (`plans.epoch`; 0 before `open`, -1 once it
    /// knows another process took the plan over), checked by every partition commit.
    pub token: Arc<AtomicI64>,
}

/// What recording a partition's commit found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recorded {
    /// Recorded: commit.
    Fresh,
    /// This run committed the partition already (its COMMIT was lost on the way back):
    /// roll this attempt back; the partition holds these rows.
    DoneByThisRun(u64),
    /// Another run committed it: roll back, write nothing twice.
    DoneByOther,
    /// Another process took the plan: roll back and stop.
    TakenOver,
}

/// The ledger of one plan in a PostgreSQL database.
pub struct PgLedger {
    url: ConnString,
    place: LedgerPlace,
    /// The connection holding the plan's advisory lock (kept open for the process's life,
    /// watched by a heartbeat that takes the lock again if the connection dies).
    lock: Arc<Mutex<Option<Client>>>,
}

impl PgLedger {
    /// A ledger for `plan_id` in `schema` of the database at `url`.
    pub fn new(url: ConnString, schema: &str, plan_id: &str) -> PgLedger {
        PgLedger {
            url,
            place: LedgerPlace {
                schema: quote_ident(schema),
                plan_id: plan_id.to_string(),
                token: Arc::new(AtomicI64::new(0)),
            },
            lock: Arc::new(Mutex::new(None)),
        }
    }

    /// Lets go of the plan (its lock) before the process ends — for library users holding a
    /// ledger in a long-lived process; the binary's processes simply exit.
    pub async fn close(&self) {
        if let Some(client) = self.lock.lock().await.take() {
            let _ = client
                .execute(
                    "SELECT pg_advisory_unlock(hashtextextended('tsmigrate plan ' || $1, 0))",
                    &[&self.place.plan_id],
                )
                .await;
        }
    }

    /// The ledger's place, for partition writers.
    pub fn place(&self) -> &LedgerPlace {
        &self.place
    }

    async fn client(&self) -> Result<Client> {
        connect(&self.url, End::Target).await
    }

    fn err(&self, context: &str, e: &tokio_postgres::Error) -> Error {
        store_error(End::Target, format!("ledger: {context}"), e, &self.url)
    }

    /// Fails with [`taken_over`] when another process took the plan (see [`holds_plan`]).
    async fn fence(&self, client: &impl GenericClient) -> Result<()> {
        match holds_plan(client, &self.place).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(taken_over(&self.place.plan_id)),
            Err(e) => Err(self.err("checking that this process still holds the plan", &e)),
        }
    }

    fn t(&self, table: &str) -> String {
        format!("{}.{table}", self.place.schema)
    }

    async fn create_tables(&self, client: &Client) -> Result<()> {
        let s = &self.place.schema;
        let ddl = format!(
            "BEGIN;
             SELECT pg_advisory_xact_lock(hashtextextended('tsmigrate ledger tables', 0));
             CREATE SCHEMA IF NOT EXISTS {s};
             CREATE TABLE IF NOT EXISTS {s}.meta (key text PRIMARY KEY, value text NOT NULL);
             INSERT INTO {s}.meta VALUES ('version', '{LEDGER_VERSION}') ON CONFLICT DO NOTHING;
             CREATE TABLE IF NOT EXISTS {s}.runs (
               run_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
               plan_id text NOT NULL,
               command text NOT NULL,
               state text NOT NULL,
               started_at timestamptz NOT NULL DEFAULT now(),
               finished_at timestamptz,
               error text,
               version text NOT NULL);
             CREATE TABLE IF NOT EXISTS {s}.streams (
               plan_id text NOT NULL,
               stream text NOT NULL,
               target_table text NOT NULL,
               fingerprint text NOT NULL,
               horizon_us bigint,
               planned_at timestamptz NOT NULL DEFAULT now(),
               last_sync_at timestamptz,
               newest_ts bigint,
               PRIMARY KEY (plan_id, stream));
             CREATE TABLE IF NOT EXISTS {s}.partitions (
               plan_id text NOT NULL,
               stream text NOT NULL,
               partition_id text NOT NULL,
               seq bigint NOT NULL,
               spec jsonb NOT NULL,
               estimated_rows bigint,
               state text NOT NULL,
               run_id bigint,
               rows bigint NOT NULL DEFAULT 0,
               digest text,
               attempts int NOT NULL DEFAULT 0,
               rejected bigint NOT NULL DEFAULT 0,
               error text,
               updated_at timestamptz NOT NULL DEFAULT now(),
               PRIMARY KEY (plan_id, stream, partition_id));
             CREATE TABLE IF NOT EXISTS {s}.writes (
               plan_id text NOT NULL,
               stream text NOT NULL,
               partition_id text NOT NULL,
               run_id bigint NOT NULL,
               target_table text NOT NULL,
               write_mode text NOT NULL,
               xid bigint NOT NULL,
               rows bigint NOT NULL,
               digest text,
               committed_at timestamptz NOT NULL DEFAULT now(),
               rolled_back_by bigint);
             CREATE INDEX IF NOT EXISTS writes_by_run ON {s}.writes (plan_id, run_id);
             CREATE TABLE IF NOT EXISTS {s}.watermarks (
               plan_id text NOT NULL,
               stream text NOT NULL,
               series text NOT NULL,
               ts bigint NOT NULL,
               run_id bigint NOT NULL);
             CREATE INDEX IF NOT EXISTS watermarks_by_stream ON {s}.watermarks (plan_id, stream, series);
             CREATE TABLE IF NOT EXISTS {s}.verifications (
               plan_id text NOT NULL,
               stream text NOT NULL,
               verified_at timestamptz NOT NULL DEFAULT now(),
               equal boolean NOT NULL,
               source_rows bigint NOT NULL,
               target_rows bigint NOT NULL,
               missing bigint NOT NULL,
               extra bigint NOT NULL,
               different bigint NOT NULL,
               time_window text NOT NULL,
               seconds float8 NOT NULL);
             CREATE INDEX IF NOT EXISTS verifications_by_stream ON {s}.verifications (plan_id, stream, verified_at);
             CREATE TABLE IF NOT EXISTS {s}.plans (
               plan_id text PRIMARY KEY,
               epoch bigint NOT NULL DEFAULT 0,
               holder text,
               taken_at timestamptz);
             CREATE TABLE IF NOT EXISTS {s}.claims (
               target_table text PRIMARY KEY,
               plan_id text NOT NULL,
               stream text NOT NULL,
               claimed_at timestamptz NOT NULL DEFAULT now());
             COMMIT;"
        );
        client
            .batch_execute(&ddl)
            .await
            .map_err(|e| self.err("creating the ledger tables", &e))?;
        let row = client
            .query_one(
                &format!("SELECT value FROM {s}.meta WHERE key = 'version'"),
                &[],
            )
            .await
            .map_err(|e| self.err("reading the ledger version", &e))?;
        let mut v: String = row.get(0);
        if v == "1" {
            client
                .batch_execute(&UPGRADE_FROM_1.replace("{s}", s))
                .await
                .map_err(|e| self.err("upgrading the ledger tables to format 2", &e))?;
            v = LEDGER_VERSION.to_string();
        }
        if v != LEDGER_VERSION {
            return Err(Error::Unsupported(format!(
                "the ledger in schema {s} has format version {v}; this tsmigrate reads version {LEDGER_VERSION} — use the tsmigrate version that wrote it"
            )));
        }
        Ok(())
    }

    /// True when the ledger's `verifications` table exists (false also when the schema does
    /// not: a ledger written before verifications were recorded, or none at all).
    async fn has_verifications(&self, client: &Client) -> Result<bool> {
        let row = client
            .query_one(
                "SELECT to_regclass($1) IS NOT NULL",
                &[&self.t("verifications")],
            )
            .await
            .map_err(|e| self.err("looking for the verifications table", &e))?;
        Ok(row.get(0))
    }
}

/// What format 2 adds to a format 1 ledger (`{s}`: the schema): the newest time of a stream's
/// rows (future-stamped ones included), the rows each partition rejected, the plans' epochs
/// and the tables' claims.
const UPGRADE_FROM_1: &str = "BEGIN;
     SELECT pg_advisory_xact_lock(hashtextextended('tsmigrate ledger tables', 0));
     ALTER TABLE {s}.streams ADD COLUMN IF NOT EXISTS newest_ts bigint;
     ALTER TABLE {s}.partitions ADD COLUMN IF NOT EXISTS rejected bigint NOT NULL DEFAULT 0;
     CREATE TABLE IF NOT EXISTS {s}.plans (plan_id text PRIMARY KEY, epoch bigint NOT NULL DEFAULT 0,
       holder text, taken_at timestamptz);
     CREATE TABLE IF NOT EXISTS {s}.claims (target_table text PRIMARY KEY, plan_id text NOT NULL,
       stream text NOT NULL, claimed_at timestamptz NOT NULL DEFAULT now());
     UPDATE {s}.meta SET value = '2' WHERE key = 'version' AND value = '1';
     COMMIT;";

/// Takes the plan's advisory lock on `client` (false: another session holds it).
async fn try_lock(
    client: &Client,
    plan_id: &str,
) -> std::result::Result<bool, tokio_postgres::Error> {
    Ok(client
        .query_one(
            "SELECT pg_try_advisory_lock(hashtextextended('tsmigrate plan ' || $1, 0))",
            &[&plan_id],
        )
        .await?
        .get(0))
}

/// Who holds a plan: host and process, for `plans.holder`.
fn holder() -> String {
    let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    format!("{} pid {}", host.trim(), std::process::id())
}

/// Every few seconds, checks that the connection holding the plan's lock is alive; when it
/// died (`idle_session_timeout`, a server restart), takes the lock again on a new connection
/// — if no other process took the plan meanwhile (its epoch is still ours). Otherwise marks
/// the plan lost (`token` -1), which every later partition commit refuses.
async fn heartbeat(url: ConnString, place: LedgerPlace, lock: Arc<Mutex<Option<Client>>>) {
    const EVERY: Duration = Duration::from_secs(5);
    loop {
        tokio::time::sleep(EVERY).await;
        let mut guard = lock.lock().await;
        let alive = match guard.as_ref() {
            Some(c) => c.simple_query("SELECT 1").await.is_ok(),
            None => return,
        };
        if alive {
            continue;
        }
        *guard = None;
        let Ok(client) = connect(&url, End::Target).await else {
            // The server is away: try again at the next beat (commits fail meanwhile too).
            *guard = None;
            drop(guard);
            continue;
        };
        let ours = try_lock(&client, &place.plan_id).await.unwrap_or(false)
            && client
                .query_opt(
                    &format!(
                        "SELECT epoch FROM {}.plans WHERE plan_id = $1",
                        place.schema
                    ),
                    &[&place.plan_id],
                )
                .await
                .ok()
                .flatten()
                .map(|r| r.get::<_, i64>(0))
                == Some(place.token.load(Ordering::SeqCst));
        if ours {
            *guard = Some(client);
        } else {
            place.token.store(-1, Ordering::SeqCst);
            return;
        }
    }
}

/// The fence: true while this process still holds the plan (its epoch is the plan's).
/// `FOR SHARE` lets partitions commit side by side, and makes a takeover (`UPDATE plans` in
/// [`Ledger::open`]) wait for the transactions that checked it — each commits before the
/// takeover, or sees it and commits nothing.
async fn holds_plan(
    client: &impl GenericClient,
    place: &LedgerPlace,
) -> std::result::Result<bool, tokio_postgres::Error> {
    let epoch: Option<i64> = client
        .query_opt(
            &format!(
                "SELECT epoch FROM {}.plans WHERE plan_id = $1 FOR SHARE",
                place.schema
            ),
            &[&place.plan_id],
        )
        .await?
        .map(|r| r.get(0));
    Ok(epoch == Some(place.token.load(Ordering::SeqCst)))
}

/// A count for a `bigint` column.
fn count_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Records a committed partition inside the partition's transaction: marks it done (failing
/// if another run already committed it), notes the transaction id for rollback, and stores
/// the partition's watermarks — first checking the fence (the plan's epoch is still this
/// process's). Anything but [`Recorded::Fresh`] means the caller rolls its transaction back:
/// the rows are in already, or must not be written by this process.
pub async fn record_commit(
    client: &impl GenericClient,
    place: &LedgerPlace,
    commit: &PartitionCommit,
    table: &str,
    rows: u64,
) -> std::result::Result<Recorded, tokio_postgres::Error> {
    let s = &place.schema;
    if !holds_plan(client, place).await? {
        return Ok(Recorded::TakenOver);
    }
    let rows = i64::try_from(rows).unwrap_or(i64::MAX);
    let updated = client
        .execute(
            &format!(
                "UPDATE {s}.partitions SET state = 'done', run_id = $4, rows = $5, digest = $6, \
                 rejected = $7, error = NULL, updated_at = now() \
                 WHERE plan_id = $1 AND stream = $2 AND partition_id = $3 AND state <> 'done'"
            ),
            &[
                &place.plan_id,
                &commit.stream,
                &commit.partition_id,
                &commit.run_id,
                &rows,
                &commit.digest,
                &count_i64(commit.rejected),
            ],
        )
        .await?;
    if updated != 1 {
        // Done already: by this run when its COMMIT landed but the answer was lost.
        let row = client
            .query_opt(
                &format!(
                    "SELECT run_id, rows FROM {s}.partitions \
                     WHERE plan_id = $1 AND stream = $2 AND partition_id = $3 AND state = 'done'"
                ),
                &[&place.plan_id, &commit.stream, &commit.partition_id],
            )
            .await?;
        return Ok(match row {
            Some(r) if r.get::<_, Option<i64>>(0) == Some(commit.run_id) => {
                Recorded::DoneByThisRun(r.get::<_, i64>(1).max(0) as u64)
            }
            _ => Recorded::DoneByOther,
        });
    }
    client
        .execute(
            &format!(
                "INSERT INTO {s}.writes (plan_id, stream, partition_id, run_id, target_table, write_mode, xid, rows, digest) \
                 VALUES ($1, $2, $3, $4, $5, $6, txid_current(), $7, $8)"
            ),
            &[
                &place.plan_id,
                &commit.stream,
                &commit.partition_id,
                &commit.run_id,
                &table,
                &commit.write.name(),
                &rows,
                &commit.digest,
            ],
        )
        .await?;
    if let Some(newest) = commit.newest {
        client
            .execute(
                &format!(
                    "UPDATE {s}.streams SET newest_ts = GREATEST(newest_ts, $3) \
                     WHERE plan_id = $1 AND stream = $2"
                ),
                &[&place.plan_id, &commit.stream, &newest],
            )
            .await?;
    }
    if !commit.watermarks.is_empty() {
        let (series, ts): (Vec<&str>, Vec<i64>) = commit
            .watermarks
            .iter()
            .map(|(s, t)| (s.as_str(), *t))
            .unzip();
        client
            .execute(
                &format!(
                    "INSERT INTO {s}.watermarks (plan_id, stream, series, ts, run_id) \
                     SELECT $1, $2, u.s, u.t, $3 FROM unnest($4::text[], $5::int8[]) AS u(s, t)"
                ),
                &[&place.plan_id, &commit.stream, &commit.run_id, &series, &ts],
            )
            .await?;
    }
    Ok(Recorded::Fresh)
}

#[async_trait]
impl Ledger for PgLedger {
    fn describe(&self) -> String {
        format!(
            "schema {} of the target ({}), plan id {:?}",
            self.place.schema,
            self.url.redacted(),
            self.place.plan_id
        )
    }

    async fn open(&self) -> Result<()> {
        let mut lock = self.lock.lock().await;
        if lock.is_some() {
            return Ok(());
        }
        let client = self.client().await?;
        self.create_tables(&client).await?;
        if !try_lock(&client, &self.place.plan_id)
            .await
            .map_err(|e| self.err("locking the plan", &e))?
        {
            return Err(Error::Plan(format!(
                "another tsmigrate process is running plan {:?} on this target (a run, sync or rollback); \
                 wait for it to finish or stop it — its session shows in pg_stat_activity with application_name = 'tsmigrate'",
                self.place.plan_id
            )));
        }
        // Take the plan: a new epoch, which fences off any process that held it before (whose
        // lock vanished with its connection while it still ran).
        let epoch: i64 = client
            .query_one(
                &format!(
                    "INSERT INTO {p} AS p (plan_id, epoch, holder, taken_at) VALUES ($1, 1, $2, now()) \
                     ON CONFLICT (plan_id) DO UPDATE SET epoch = p.epoch + 1, holder = $2, taken_at = now() \
                     RETURNING epoch",
                    p = self.t("plans")
                ),
                &[&self.place.plan_id, &holder()],
            )
            .await
            .map_err(|e| self.err("taking the plan", &e))?
            .get(0);
        self.place.token.store(epoch, Ordering::SeqCst);
        // With the lock held no other process works on this plan: runs still marked running
        // belong to processes that died (kill -9, crash, reboot).
        client
            .execute(
                &format!(
                    "UPDATE {} SET state = 'interrupted', error = 'the process ended without recording its end (killed, crashed or the machine restarted)' \
                     WHERE plan_id = $1 AND state = 'running'",
                    self.t("runs")
                ),
                &[&self.place.plan_id],
            )
            .await
            .map_err(|e| self.err("closing the runs of dead processes", &e))?;
        *lock = Some(client);
        tokio::spawn(heartbeat(
            self.url.clone(),
            self.place.clone(),
            self.lock.clone(),
        ));
        Ok(())
    }

    async fn claim_table(&self, table: &str, stream: &str) -> Result<()> {
        let client = self.client().await?;
        let ctx = |e: tokio_postgres::Error| self.err(&format!("claiming table {table}"), &e);
        let (c, w) = (self.t("claims"), self.t("writes"));
        let inserted = client
            .execute(
                &format!(
                    "INSERT INTO {c} (target_table, plan_id, stream) VALUES ($1, $2, $3) \
                     ON CONFLICT (target_table) DO NOTHING"
                ),
                &[&table, &self.place.plan_id, &stream],
            )
            .await
            .map_err(ctx)?;
        if inserted == 1 {
            return Ok(());
        }
        let Some(row) = client
            .query_opt(
                &format!(
                    "SELECT c.plan_id, c.stream, to_char(c.claimed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'), \
                            EXISTS (SELECT 1 FROM {w} x WHERE x.plan_id = c.plan_id AND x.target_table = $1 \
                                    AND x.rolled_back_by IS NULL) \
                     FROM {c} c WHERE c.target_table = $1"
                ),
                &[&table],
            )
            .await
            .map_err(ctx)?
        else {
            return Ok(());
        };
        let (owner, owner_stream, since, has_rows): (String, String, String, bool) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        if owner == self.place.plan_id {
            return Ok(());
        }
        // The claim of another plan stands while that plan has rows in the table, or while a
        // process holds that plan (it may be about to write its first rows).
        let live = !has_rows && !try_lock(&client, &owner).await.map_err(ctx)?;
        if has_rows || live {
            return Err(claimed_by_other(
                table,
                stream,
                &owner,
                &owner_stream,
                &since,
            ));
        }
        client
            .execute(
                "SELECT pg_advisory_unlock(hashtextextended('tsmigrate plan ' || $1, 0))",
                &[&owner],
            )
            .await
            .map_err(ctx)?;
        client
            .execute(
                &format!(
                    "UPDATE {c} SET plan_id = $2, stream = $3, claimed_at = now() WHERE target_table = $1 AND plan_id = $4"
                ),
                &[&table, &self.place.plan_id, &stream, &owner],
            )
            .await
            .map_err(ctx)?;
        Ok(())
    }

    async fn exists(&self) -> Result<bool> {
        let client = self.client().await?;
        let row = client
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[&self.t("runs")])
            .await
            .map_err(|e| self.err("looking for the ledger", &e))?;
        Ok(row.get(0))
    }

    async fn begin_run(&self, command: &str) -> Result<i64> {
        let client = self.client().await?;
        let row = client
            .query_one(
                &format!(
                    "INSERT INTO {} (plan_id, command, state, version) VALUES ($1, $2, 'running', $3) RETURNING run_id",
                    self.t("runs")
                ),
                &[&self.place.plan_id, &command, &env!("CARGO_PKG_VERSION")],
            )
            .await
            .map_err(|e| self.err("recording the run", &e))?;
        Ok(row.get(0))
    }

    async fn end_run(&self, run_id: i64, state: &str, error: Option<&str>) -> Result<()> {
        let client = self.client().await?;
        client
            .execute(
                &format!(
                    "UPDATE {} SET state = $2, error = $3, finished_at = now() WHERE run_id = $1",
                    self.t("runs")
                ),
                &[&run_id, &state, &error],
            )
            .await
            .map_err(|e| self.err("recording the end of the run", &e))?;
        if state == "done" {
            // Keep the watermarks table small under `sync --follow`: a series' row that a
            // newer run superseded is dropped once its run is not among the 10 latest (those
            // stay so a rollback of a recent run falls back to the watermarks before it).
            client
                .execute(
                    &format!(
                        "DELETE FROM {w} a USING {w} b \
                         WHERE a.plan_id = $1 AND b.plan_id = $1 AND a.stream = b.stream AND a.series = b.series \
                           AND b.run_id > a.run_id AND b.ts >= a.ts \
                           AND a.run_id < (SELECT COALESCE(min(run_id), 0) FROM \
                                (SELECT run_id FROM {r} WHERE plan_id = $1 ORDER BY run_id DESC LIMIT 10) latest)",
                        w = self.t("watermarks"),
                        r = self.t("runs")
                    ),
                    &[&self.place.plan_id],
                )
                .await
                .map_err(|e| self.err("compacting the watermarks", &e))?;
        }
        Ok(())
    }

    async fn stream(&self, stream: &str) -> Result<Option<LedgerStream>> {
        let client = self.client().await?;
        let Some(row) = client
            .query_opt(
                &format!(
                    "SELECT target_table, fingerprint, horizon_us, {}, {}, newest_ts FROM {} WHERE plan_id = $1 AND stream = $2",
                    ts_text("planned_at"),
                    ts_text("last_sync_at"),
                    self.t("streams")
                ),
                &[&self.place.plan_id, &stream],
            )
            .await
            .map_err(|e| self.err("reading the stream", &e))?
        else {
            return Ok(None);
        };
        let rows = client
            .query(
                &format!(
                    "SELECT partition_id, spec, estimated_rows, state, run_id, rows, digest, attempts, error, {}, rejected \
                     FROM {} WHERE plan_id = $1 AND stream = $2 ORDER BY seq",
                    ts_text("updated_at"),
                    self.t("partitions")
                ),
                &[&self.place.plan_id, &stream],
            )
            .await
            .map_err(|e| self.err("reading the partitions", &e))?;
        let mut partitions = Vec::with_capacity(rows.len());
        for r in rows {
            let id: String = r.get(0);
            let state: String = r.get(3);
            let estimated: Option<i64> = r.get(2);
            partitions.push(LedgerPartition {
                partition: Partition {
                    id,
                    estimated_rows: estimated.map(|e| e.max(0) as u64),
                    spec: r.get(1),
                },
                state: PartitionState::parse(&state).ok_or_else(|| {
                    Error::Unsupported(format!(
                        "ledger: partition state {state:?} is unknown to this tsmigrate"
                    ))
                })?,
                run_id: r.get(4),
                rows: r.get::<_, i64>(5).max(0) as u64,
                rejected: r.get::<_, i64>(10).max(0) as u64,
                digest: r.get(6),
                attempts: r.get::<_, i32>(7).max(0) as u32,
                error: r.get(8),
                updated_at: r.get(9),
            });
        }
        Ok(Some(LedgerStream {
            stream: stream.to_string(),
            table: row.get(0),
            fingerprint: row.get(1),
            horizon_us: row.get(2),
            planned_at: row.get(3),
            last_sync_at: row.get(4),
            newest: row.get(5),
            partitions,
        }))
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
        let mut client = self.client().await?;
        let tx = client
            .transaction()
            .await
            .map_err(|e| self.err("planning the stream", &e))?;
        let ctx = |e: tokio_postgres::Error| self.err(&format!("planning stream `{stream}`"), &e);
        self.fence(&tx).await?;
        if replace {
            for t in ["partitions", "watermarks", "streams"] {
                tx.execute(
                    &format!(
                        "DELETE FROM {} WHERE plan_id = $1 AND stream = $2",
                        self.t(t)
                    ),
                    &[&self.place.plan_id, &stream],
                )
                .await
                .map_err(ctx)?;
            }
        }
        tx.execute(
            &format!(
                "INSERT INTO {} (plan_id, stream, target_table, fingerprint, horizon_us) VALUES ($1, $2, $3, $4, $5)",
                self.t("streams")
            ),
            &[&self.place.plan_id, &stream, &table, &fingerprint, &horizon_us],
        )
        .await
        .map_err(ctx)?;
        insert_partitions(&tx, &self.place, stream, partitions, 0)
            .await
            .map_err(ctx)?;
        tx.commit().await.map_err(ctx)?;
        Ok(())
    }

    async fn add_sync_partitions(
        &self,
        stream: &str,
        horizon_us: i64,
        partitions: &[Partition],
    ) -> Result<()> {
        let mut client = self.client().await?;
        let ctx = |e: tokio_postgres::Error| {
            self.err(
                &format!("recording the sync round of stream `{stream}`"),
                &e,
            )
        };
        let tx = client.transaction().await.map_err(ctx)?;
        self.fence(&tx).await?;
        let row = tx
            .query_one(
                &format!(
                    "SELECT COALESCE(max(seq), 0) FROM {} WHERE plan_id = $1 AND stream = $2",
                    self.t("partitions")
                ),
                &[&self.place.plan_id, &stream],
            )
            .await
            .map_err(ctx)?;
        let seq: i64 = row.get(0);
        insert_partitions(&tx, &self.place, stream, partitions, seq + 1)
            .await
            .map_err(ctx)?;
        tx.execute(
            &format!(
                "UPDATE {} SET horizon_us = $3 WHERE plan_id = $1 AND stream = $2",
                self.t("streams")
            ),
            &[&self.place.plan_id, &stream, &horizon_us],
        )
        .await
        .map_err(ctx)?;
        tx.commit().await.map_err(ctx)?;
        Ok(())
    }

    async fn mark_synced(&self, stream: &str) -> Result<()> {
        let client = self.client().await?;
        client
            .execute(
                &format!(
                    "UPDATE {} SET last_sync_at = now() WHERE plan_id = $1 AND stream = $2",
                    self.t("streams")
                ),
                &[&self.place.plan_id, &stream],
            )
            .await
            .map_err(|e| self.err("recording the sync", &e))?;
        Ok(())
    }

    async fn retire_partitions(&self, stream: &str, ids: &[String]) -> Result<()> {
        let mut client = self.client().await?;
        let ctx = |e: tokio_postgres::Error| {
            self.err(
                &format!("stream `{stream}`: retiring superseded partitions"),
                &e,
            )
        };
        let tx = client.transaction().await.map_err(ctx)?;
        self.fence(&tx).await?;
        tx.execute(
            &format!(
                "DELETE FROM {} WHERE plan_id = $1 AND stream = $2 AND partition_id = ANY($3) AND state <> 'done'",
                self.t("partitions")
            ),
            &[&self.place.plan_id, &stream, &ids],
        )
        .await
        .map_err(ctx)?;
        tx.commit().await.map_err(ctx)
    }

    async fn mark_running(&self, stream: &str, partition: &str, run_id: i64) -> Result<()> {
        let mut client = self.client().await?;
        let ctx = |e: tokio_postgres::Error| {
            self.err(&format!("stream `{stream}`, partition {partition}"), &e)
        };
        let tx = client.transaction().await.map_err(ctx)?;
        self.fence(&tx).await?;
        tx.execute(
            &format!(
                "UPDATE {} SET state = 'running', run_id = $4, attempts = attempts + 1, updated_at = now() \
                 WHERE plan_id = $1 AND stream = $2 AND partition_id = $3 AND state <> 'done'",
                self.t("partitions")
            ),
            &[&self.place.plan_id, &stream, &partition, &run_id],
        )
        .await
        .map_err(ctx)?;
        tx.commit().await.map_err(ctx)
    }

    async fn mark_failed(
        &self,
        stream: &str,
        partition: &str,
        run_id: i64,
        error: &str,
    ) -> Result<()> {
        let client = self.client().await?;
        client
            .execute(
                &format!(
                    "UPDATE {} SET state = 'failed', run_id = $4, error = $5, updated_at = now() \
                     WHERE plan_id = $1 AND stream = $2 AND partition_id = $3 AND state <> 'done' \
                       AND EXISTS (SELECT 1 FROM {} p WHERE p.plan_id = $1 AND p.epoch = $6)",
                    self.t("partitions"),
                    self.t("plans")
                ),
                &[
                    &self.place.plan_id,
                    &stream,
                    &partition,
                    &run_id,
                    &error,
                    &self.place.token.load(Ordering::SeqCst),
                ],
            )
            .await
            .map_err(|e| self.err(&format!("stream `{stream}`, partition {partition}"), &e))?;
        Ok(())
    }

    async fn record_done(&self, commit: &PartitionCommit, rows: u64) -> Result<()> {
        let mut client = self.client().await?;
        let ctx = |e: tokio_postgres::Error| {
            self.err(
                &format!(
                    "stream `{}`, partition {}",
                    commit.stream, commit.partition_id
                ),
                &e,
            )
        };
        let tx = client.transaction().await.map_err(ctx)?;
        let table = self
            .stream(&commit.stream)
            .await?
            .map(|s| s.table)
            .unwrap_or_default();
        match record_commit(&tx, &self.place, commit, &table, rows)
            .await
            .map_err(ctx)?
        {
            Recorded::Fresh => {}
            Recorded::DoneByThisRun(_) => return Ok(()),
            Recorded::DoneByOther => {
                return Err(Error::Plan(format!(
                    "stream `{}`, partition {}: another run committed it already",
                    commit.stream, commit.partition_id
                )))
            }
            Recorded::TakenOver => return Err(taken_over(&self.place.plan_id)),
        }
        tx.commit().await.map_err(ctx)?;
        Ok(())
    }

    async fn watermarks(&self, stream: &str) -> Result<Vec<(String, i64)>> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT series, max(ts) FROM {} WHERE plan_id = $1 AND stream = $2 GROUP BY series",
                    self.t("watermarks")
                ),
                &[&self.place.plan_id, &stream],
            )
            .await
            .map_err(|e| self.err("reading the watermarks", &e))?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    async fn runs(&self) -> Result<Vec<RunRecord>> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT r.run_id, r.command, r.state, {}, {}, r.error, \
                            COALESCE(sum(w.rows), 0)::int8, count(w.xid), \
                            COALESCE(array_agg(DISTINCT w.write_mode) FILTER (WHERE w.write_mode IS NOT NULL), '{{}}') \
                     FROM {} r LEFT JOIN {} w ON w.plan_id = r.plan_id AND w.run_id = r.run_id \
                     WHERE r.plan_id = $1 GROUP BY r.run_id ORDER BY r.run_id",
                    ts_text("r.started_at"),
                    ts_text("r.finished_at"),
                    self.t("runs"),
                    self.t("writes")
                ),
                &[&self.place.plan_id],
            )
            .await
            .map_err(|e| self.err("listing the runs", &e))?;
        Ok(rows
            .iter()
            .map(|r| RunRecord {
                id: r.get(0),
                command: r.get(1),
                state: r.get(2),
                started_at: r.get(3),
                finished_at: r.get(4),
                error: r.get(5),
                rows: r.get::<_, i64>(6).max(0) as u64,
                partitions: r.get::<_, i64>(7).max(0) as u64,
                write_modes: r.get(8),
            })
            .collect())
    }

    /// Deletes the rows run `run_id` inserted (by their `xmin`); refuses, before deleting
    /// anything, when one of its tables is a hypertable with compressed chunks (whose rows
    /// compression rewrote).
    async fn rollback_run(&self, run_id: i64, rollback_id: i64) -> Result<RollbackOutcome> {
        let mut client = self.client().await?;
        let ctx = |e: tokio_postgres::Error| self.err(&format!("rolling back run {run_id}"), &e);
        let tx = client.transaction().await.map_err(ctx)?;
        self.fence(&tx).await?;
        let rows = tx
            .query(
                &format!(
                    "SELECT target_table, array_agg(xid), sum(rows)::int8, txid_current() - min(xid) \
                     FROM {} WHERE plan_id = $1 AND run_id = $2 AND rolled_back_by IS NULL GROUP BY target_table",
                    self.t("writes")
                ),
                &[&self.place.plan_id, &run_id],
            )
            .await
            .map_err(ctx)?;
        for r in &rows {
            let table: String = r.get(0);
            if compressed_chunks(&tx, &table).await.map_err(ctx)? > 0 {
                return Err(Error::Plan(format!(
                    "run {run_id} wrote into {table}, a TimescaleDB hypertable with compressed chunks: compression rewrote their rows, so the rows the run wrote can no longer be told apart by transaction id (decompressing does not bring that back). Nothing was deleted. Delete the run's rows by their time range instead (tsmigrate runs shows when it ran), then run with --restart"
                )));
            }
        }
        let mut outcome = RollbackOutcome {
            deleted: Vec::new(),
            expected: 0,
            partitions: 0,
        };
        for r in &rows {
            let table: String = r.get(0);
            let xids: Vec<i64> = r.get(1);
            let expected: i64 = r.get(2);
            let age: i64 = r.get(3);
            // xmin is the low 32 bits of the 64-bit transaction id; it names the run's
            // transactions unambiguously until 2^32 more transactions have run.
            if age >= 1 << 31 {
                return Err(Error::Unsupported(format!(
                    "run {run_id} is {age} transactions old; its rows can no longer be told apart by transaction id, so tsmigrate will not delete them"
                )));
            }
            let low: Vec<i64> = xids.iter().map(|x| x & 0xffff_ffff).collect();
            let deleted = tx
                .execute(
                    &format!("DELETE FROM {table} WHERE xmin::text::int8 = ANY($1)"),
                    &[&low],
                )
                .await
                .map_err(ctx)?;
            outcome.expected += expected.max(0) as u64;
            outcome.deleted.push((table, deleted));
        }
        outcome.partitions = tx
            .execute(
                &format!(
                    "UPDATE {p} SET state = 'pending', run_id = NULL, rows = 0, digest = NULL, error = NULL, updated_at = now() \
                     WHERE plan_id = $1 AND run_id = $2 AND state = 'done' AND (stream, partition_id) IN \
                       (SELECT stream, partition_id FROM {w} WHERE plan_id = $1 AND run_id = $2 AND rolled_back_by IS NULL)",
                    p = self.t("partitions"),
                    w = self.t("writes")
                ),
                &[&self.place.plan_id, &run_id],
            )
            .await
            .map_err(ctx)?;
        tx.execute(
            &format!(
                "UPDATE {} SET rolled_back_by = $3 WHERE plan_id = $1 AND run_id = $2 AND rolled_back_by IS NULL",
                self.t("writes")
            ),
            &[&self.place.plan_id, &run_id, &rollback_id],
        )
        .await
        .map_err(ctx)?;
        tx.execute(
            &format!(
                "DELETE FROM {} WHERE plan_id = $1 AND run_id = $2",
                self.t("watermarks")
            ),
            &[&self.place.plan_id, &run_id],
        )
        .await
        .map_err(ctx)?;
        tx.execute(
            &format!(
                "UPDATE {} SET state = 'rolled back' WHERE plan_id = $1 AND run_id = $2",
                self.t("runs")
            ),
            &[&self.place.plan_id, &run_id],
        )
        .await
        .map_err(ctx)?;
        tx.commit().await.map_err(ctx)?;
        Ok(outcome)
    }

    async fn record_verification(&self, record: &VerificationRecord) -> Result<()> {
        let mut client = self.client().await?;
        // Verify takes no plan lock and may come first (or after a ledger written before this
        // table existed): create what is missing. Skipped when the table is there, so a verify
        // running beside a run does not wait on the run's ledger tables.
        if !self.has_verifications(&client).await? {
            self.create_tables(&client).await?;
        }
        let ctx = |e: tokio_postgres::Error| {
            self.err(
                &format!("recording the verification of stream `{}`", record.stream),
                &e,
            )
        };
        let tx = client.transaction().await.map_err(ctx)?;
        let v = self.t("verifications");
        tx.execute(
            &format!(
                "INSERT INTO {v} (plan_id, stream, equal, source_rows, target_rows, missing, extra, different, time_window, seconds)                  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
            ),
            &[
                &self.place.plan_id,
                &record.stream,
                &record.equal,
                &count_i64(record.source_rows),
                &count_i64(record.target_rows),
                &count_i64(record.missing),
                &count_i64(record.extra),
                &count_i64(record.different),
                &record.window,
                &record.seconds,
            ],
        )
        .await
        .map_err(ctx)?;
        tx.execute(
            &format!(
                "DELETE FROM {v} WHERE plan_id = $1 AND stream = $2 AND verified_at <                    (SELECT verified_at FROM {v} WHERE plan_id = $1 AND stream = $2                     ORDER BY verified_at DESC OFFSET $3 LIMIT 1)"
            ),
            &[
                &self.place.plan_id,
                &record.stream,
                &(VERIFICATIONS_KEPT - 1),
            ],
        )
        .await
        .map_err(ctx)?;
        tx.commit().await.map_err(ctx)?;
        Ok(())
    }

    async fn verifications(&self) -> Result<Vec<VerificationRecord>> {
        let client = self.client().await?;
        if !self.has_verifications(&client).await? {
            return Ok(Vec::new());
        }
        let rows = client
            .query(
                &format!(
                    "SELECT DISTINCT ON (stream) stream, {}, equal, source_rows, target_rows, missing, extra, different,                             time_window, seconds                      FROM {} WHERE plan_id = $1 ORDER BY stream, verified_at DESC",
                    ts_text("verified_at"),
                    self.t("verifications")
                ),
                &[&self.place.plan_id],
            )
            .await
            .map_err(|e| self.err("reading the verifications", &e))?;
        let count = |n: i64| n.max(0) as u64;
        Ok(rows
            .iter()
            .map(|r| VerificationRecord {
                stream: r.get(0),
                verified_at: r.get(1),
                equal: r.get(2),
                source_rows: count(r.get(3)),
                target_rows: count(r.get(4)),
                missing: count(r.get(5)),
                extra: count(r.get(6)),
                different: count(r.get(7)),
                window: r.get(8),
                seconds: r.get(9),
            })
            .collect())
    }
}

async fn insert_partitions(
    client: &impl GenericClient,
    place: &LedgerPlace,
    stream: &str,
    partitions: &[Partition],
    first_seq: i64,
) -> std::result::Result<(), tokio_postgres::Error> {
    // In chunks, so a plan of many thousand partitions stays a handful of statements.
    for (ci, chunk) in partitions.chunks(5000).enumerate() {
        let ids: Vec<&str> = chunk.iter().map(|p| p.id.as_str()).collect();
        let specs: Vec<String> = chunk.iter().map(|p| p.spec.to_string()).collect();
        let est: Vec<Option<i64>> = chunk
            .iter()
            .map(|p| p.estimated_rows.map(|e| e.min(i64::MAX as u64) as i64))
            .collect();
        let seq0 = first_seq + (ci * 5000) as i64;
        client
            .execute(
                &format!(
                    "INSERT INTO {}.partitions (plan_id, stream, partition_id, seq, spec, estimated_rows, state) \
                     SELECT $1, $2, u.id, $3 + u.n - 1, u.spec::jsonb, u.est, 'pending' \
                     FROM unnest($4::text[], $5::text[], $6::int8[]) WITH ORDINALITY AS u(id, spec, est, n)",
                    place.schema
                ),
                &[&place.plan_id, &stream, &seq0, &ids, &specs, &est],
            )
            .await?;
    }
    Ok(())
}

/// Compressed chunks of `table` when it is a TimescaleDB hypertable (0 otherwise, also without
/// TimescaleDB).
async fn compressed_chunks(
    tx: &tokio_postgres::Transaction<'_>,
    table: &str,
) -> std::result::Result<i64, tokio_postgres::Error> {
    let has_ext = crate::timescale::installed(tx).await?;
    if !has_ext {
        return Ok(0);
    }
    Ok(tx
        .query_one(
            "SELECT count(*) FROM timescaledb_information.chunks c \
             WHERE c.is_compressed AND to_regclass(format('%I.%I', c.hypertable_schema, c.hypertable_name)) = to_regclass($1)",
            &[&table],
        )
        .await?
        .get(0))
}
