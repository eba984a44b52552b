//! The ledger: what a plan has written, partition by partition, so a run can resume after a
//! crash, a sync can start where the last run stopped, and a run can be rolled back.
//!
//! A transactional target (PostgreSQL) keeps its ledger in its own database, and the
//! partition writer records a partition as done *inside the partition's transaction*
//! ([`PartitionWriter::commit`](crate::PartitionWriter::commit) with a [`PartitionCommit`]):
//! the rows and their ledger entry become visible together or not at all, which is what
//! makes a resumed run write every row exactly once.

use async_trait::async_trait;
use serde::Serialize;

use crate::connector::Partition;
use crate::error::{Error, Result};

/// State of one partition in the ledger.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PartitionState {
    /// Planned, not written yet.
    Pending,
    /// A run started it; if that run is gone, the partition's transaction was rolled back.
    Running,
    /// Committed, with its rows.
    Done,
    /// The last attempt failed with the recorded error; nothing of it was committed.
    Failed,
}

impl PartitionState {
    /// The name stored in the ledger.
    pub fn name(self) -> &'static str {
        match self {
            PartitionState::Pending => "pending",
            PartitionState::Running => "running",
            PartitionState::Done => "done",
            PartitionState::Failed => "failed",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<PartitionState> {
        Some(match s {
            "pending" => PartitionState::Pending,
            "running" => PartitionState::Running,
            "done" => PartitionState::Done,
            "failed" => PartitionState::Failed,
            _ => return None,
        })
    }
}

/// One partition as the ledger knows it.
#[derive(Clone, Debug)]
pub struct LedgerPartition {
    /// The partition (id, estimate and the source's description of what to read).
    pub partition: Partition,
    /// Current state.
    pub state: PartitionState,
    /// The run that last started or committed it.
    pub run_id: Option<i64>,
    /// Rows committed.
    pub rows: u64,
    /// Rows rejected by the committed attempt.
    pub rejected: u64,
    /// Digest of the committed rows ([`crate::digest::Digest::to_text`]).
    pub digest: Option<String>,
    /// Attempts made (a retry or a resumed run adds one).
    pub attempts: u32,
    /// The error of the last failed attempt.
    pub error: Option<String>,
    /// When the state last changed (RFC 3339).
    pub updated_at: Option<String>,
}

/// One stream as the ledger knows it.
#[derive(Clone, Debug)]
pub struct LedgerStream {
    /// Plan stream name.
    pub stream: String,
    /// Target table.
    pub table: String,
    /// [`crate::StreamSpec::fingerprint`] of the stream when it was planned.
    pub fingerprint: String,
    /// Upper time bound (µs since the epoch) the stream's partitions read up to; rows newer
    /// than it are left to `sync`.
    pub horizon_us: Option<i64>,
    /// When the partitions were planned (RFC 3339).
    pub planned_at: String,
    /// Time of the last successful sync round (RFC 3339).
    pub last_sync_at: Option<String>,
    /// Newest time of any row committed, in µs since the epoch — rows stamped in the future
    /// included (unlike the watermarks, which stop at the time of the read).
    pub newest: Option<i64>,
    /// The partitions.
    pub partitions: Vec<LedgerPartition>,
}

/// A run, sync or rollback recorded in the ledger.
#[derive(Clone, Debug, Serialize)]
pub struct RunRecord {
    /// Run id (what `rollback --run` takes).
    pub id: i64,
    /// `run`, `sync` or `rollback`.
    pub command: String,
    /// `running`, `done`, `failed`, `interrupted` or `rolled back`.
    pub state: String,
    /// Start time (RFC 3339).
    pub started_at: String,
    /// End time (RFC 3339).
    pub finished_at: Option<String>,
    /// Rows committed by the run (from its committed partitions).
    pub rows: u64,
    /// Partitions committed by the run.
    pub partitions: u64,
    /// Write modes the run used (`append`, `skip`, `upsert`).
    pub write_modes: Vec<String>,
    /// Why it failed.
    pub error: Option<String>,
}

/// What a committed partition records, written in the partition's own transaction.
#[derive(Clone, Debug)]
pub struct PartitionCommit {
    /// Plan stream.
    pub stream: String,
    /// Partition id.
    pub partition_id: String,
    /// The run committing it.
    pub run_id: i64,
    /// Write mode used.
    pub write: crate::WriteMode,
    /// Digest of the rows sent ([`crate::digest::Digest::to_text`]).
    pub digest: String,
    /// Watermark per series in the partition: (series as a JSON array of its key values,
    /// newest time not after the time of the read, in the source's units).
    pub watermarks: Vec<(String, i64)>,
    /// Newest time of any row of the partition, future-stamped ones included, in µs since
    /// the epoch.
    pub newest: Option<i64>,
    /// Rows of the partition rejected (listed in the stream's rejects file).
    pub rejected: u64,
}

/// The outcome of `verify` for one stream, kept in the ledger so `status` can show when the
/// stream was last verified and with what result.
#[derive(Clone, Debug, Default, Serialize)]
pub struct VerificationRecord {
    /// Plan stream.
    pub stream: String,
    /// When verify finished (RFC 3339; set by the ledger, ignored when recording).
    pub verified_at: Option<String>,
    /// True when both sides held the same rows.
    pub equal: bool,
    /// Rows compared on the source side (after mapping; rows the mapping rejects excluded).
    pub source_rows: u64,
    /// Rows compared on the target side.
    pub target_rows: u64,
    /// Source rows missing from the target.
    pub missing: u64,
    /// Target rows not in the source.
    pub extra: u64,
    /// Rows whose key is on both sides with different values.
    pub different: u64,
    /// The time window compared, in words (`rows before 2026-11-22T10:00:00Z`, `all rows`).
    pub window: String,
    /// How long verify took, in seconds.
    pub seconds: f64,
}

/// What a rollback did.
#[derive(Clone, Debug, Serialize)]
pub struct RollbackOutcome {
    /// Rows deleted per target table.
    pub deleted: Vec<(String, u64)>,
    /// Rows the ledger says the run wrote.
    pub expected: u64,
    /// Partitions returned to `pending`.
    pub partitions: u64,
}

/// The error of a process whose plan another process took over.
pub fn taken_over(plan_id: &str) -> Error {
    Error::Plan(format!(
        "plan {plan_id:?}: another process took this plan over (a run, sync or rollback that started after this \
         process lost its hold on the target: a dropped connection, a server restart); this process commits nothing \
         more and stops, its partitions in flight rolled back — see `tsmigrate runs`"
    ))
}

/// The error of a plan appending into a table another plan appends into.
pub fn claimed_by_other(
    table: &str,
    stream: &str,
    owner: &str,
    owner_stream: &str,
    since: &str,
) -> Error {
    Error::Plan(format!(
        "stream `{stream}`: table {table} is appended into by plan {owner:?} (stream `{owner_stream}`, since {since} UTC); \
         two plans appending into one table would each add the other's rows again. Write it from one plan, \
         or use write = \"skip\" or \"upsert\" with a key, or roll plan {owner:?} back first"
    ))
}

/// Where a plan's progress is kept.
#[async_trait]
pub trait Ledger: Send + Sync {
    /// Where the ledger lives, for messages.
    fn describe(&self) -> String;

    /// Creates the ledger's tables when missing and takes the plan's lock, so two processes
    /// never write the same plan at once; the lock is held until the process exits.
    async fn open(&self) -> Result<()>;

    /// True when the ledger's tables exist (a plan that ran before), found without creating
    /// anything (not even a SQLite file): `check` reads the ledger only then.
    async fn exists(&self) -> Result<bool>;

    /// Records that this plan appends into `table` (for `stream`), so two plans never append
    /// into one table (two plans started side by side would both find it empty and both
    /// append; a later sync or redo of one would skip or count the other's rows). A claim of
    /// another plan stands while that plan has rows in the table that were not rolled back,
    /// or while a process holds that plan; then it passes to this plan. Error
    /// [`claimed_by_other`] otherwise.
    async fn claim_table(&self, table: &str, stream: &str) -> Result<()>;

    /// Starts recording a `run`, `sync` or `rollback`; returns its run id.
    async fn begin_run(&self, command: &str) -> Result<i64>;

    /// Records how a run ended (`done`, `failed`, `interrupted`).
    async fn end_run(&self, run_id: i64, state: &str, error: Option<&str>) -> Result<()>;

    /// The stream's ledger, or `None` when it was never planned.
    async fn stream(&self, stream: &str) -> Result<Option<LedgerStream>>;

    /// Records (or, with `replace`, re-records from scratch) the stream's planned partitions.
    async fn plan_stream(
        &self,
        stream: &str,
        table: &str,
        fingerprint: &str,
        horizon_us: Option<i64>,
        partitions: &[Partition],
        replace: bool,
    ) -> Result<()>;

    /// Adds partitions of a sync round and moves the stream's horizon to `horizon_us`.
    async fn add_sync_partitions(
        &self,
        stream: &str,
        horizon_us: i64,
        partitions: &[Partition],
    ) -> Result<()>;

    /// Records that the stream's sync round ending at its horizon completed.
    async fn mark_synced(&self, stream: &str) -> Result<()>;

    /// Deletes the partitions `ids` of the stream unless they are done: unfinished partitions
    /// of earlier sync rounds that a new round's partitions cover, so the two are never
    /// written side by side.
    async fn retire_partitions(&self, stream: &str, ids: &[String]) -> Result<()>;

    /// Marks a partition as being written by `run_id`.
    async fn mark_running(&self, stream: &str, partition: &str, run_id: i64) -> Result<()>;

    /// Marks a partition as failed with `error`.
    async fn mark_failed(
        &self,
        stream: &str,
        partition: &str,
        run_id: i64,
        error: &str,
    ) -> Result<()>;

    /// Records a committed partition, for sinks whose writers cannot do it in their own
    /// transaction.
    async fn record_done(&self, commit: &PartitionCommit, rows: u64) -> Result<()>;

    /// Newest time per series of the stream, over every committed partition.
    async fn watermarks(&self, stream: &str) -> Result<Vec<(String, i64)>>;

    /// Every run of the plan, oldest first.
    async fn runs(&self) -> Result<Vec<RunRecord>>;

    /// Deletes exactly the rows `run_id` wrote and returns its partitions to `pending`.
    async fn rollback_run(&self, run_id: i64, rollback_id: i64) -> Result<RollbackOutcome>;

    /// Records a verification result. Needs no lock ([`Ledger::open`]): verify only reads
    /// the stores, and may run while a run or sync holds the plan.
    async fn record_verification(&self, record: &VerificationRecord) -> Result<()>;

    /// The latest verification of each stream (none when the plan was never verified).
    async fn verifications(&self) -> Result<Vec<VerificationRecord>>;
}
