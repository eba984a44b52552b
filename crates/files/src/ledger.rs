//! The ledger of a file target: the SQLite connector's ledger, in `_tsmigrate_ledger.sqlite`
//! in the target directory, which is created when the ledger is opened (not before: `check`
//! changes nothing). Rollback is refused: the rows of a file target are its files.

use std::path::PathBuf;

use async_trait::async_trait;
use tsmigrate_core::{
    End, Error, Ledger, LedgerStream, Partition, PartitionCommit, Result, RollbackOutcome,
    RunRecord, VerificationRecord,
};
use tsmigrate_sqlite::{Db, SqliteLedger};

use crate::error::file_error;

/// The ledger file in a file target's directory.
pub const LEDGER_FILE: &str = "_tsmigrate_ledger.sqlite";

/// A plan's ledger in a file target's directory.
pub struct FileLedger {
    root: PathBuf,
    inner: SqliteLedger,
}

impl FileLedger {
    /// The ledger of `plan_id` in directory `root`.
    pub fn new(root: PathBuf, plan_id: &str) -> FileLedger {
        let db = Db::new(root.join(LEDGER_FILE), End::Target);
        FileLedger {
            inner: SqliteLedger::new(db, plan_id),
            root,
        }
    }
}

#[async_trait]
impl Ledger for FileLedger {
    fn describe(&self) -> String {
        self.inner.describe()
    }

    async fn open(&self) -> Result<()> {
        std::fs::create_dir_all(&self.root).map_err(|e| file_error(&self.root, e))?;
        self.inner.open().await
    }

    async fn begin_run(&self, command: &str) -> Result<i64> {
        self.inner.begin_run(command).await
    }

    async fn end_run(&self, run_id: i64, state: &str, error: Option<&str>) -> Result<()> {
        self.inner.end_run(run_id, state, error).await
    }

    async fn stream(&self, stream: &str) -> Result<Option<LedgerStream>> {
        if !self.root.join(LEDGER_FILE).exists() {
            return Ok(None);
        }
        self.inner.stream(stream).await
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
        self.inner
            .plan_stream(stream, table, fingerprint, horizon_us, partitions, replace)
            .await
    }

    async fn add_sync_partitions(
        &self,
        stream: &str,
        horizon_us: i64,
        partitions: &[Partition],
    ) -> Result<()> {
        self.inner
            .add_sync_partitions(stream, horizon_us, partitions)
            .await
    }

    async fn mark_synced(&self, stream: &str) -> Result<()> {
        self.inner.mark_synced(stream).await
    }

    async fn mark_running(&self, stream: &str, partition: &str, run_id: i64) -> Result<()> {
        self.inner.mark_running(stream, partition, run_id).await
    }

    async fn mark_failed(
        &self,
        stream: &str,
        partition: &str,
        run_id: i64,
        error: &str,
    ) -> Result<()> {
        self.inner
            .mark_failed(stream, partition, run_id, error)
            .await
    }

    async fn record_done(&self, commit: &PartitionCommit, rows: u64) -> Result<()> {
        self.inner.record_done(commit, rows).await
    }

    async fn watermarks(&self, stream: &str) -> Result<Vec<(String, i64)>> {
        self.inner.watermarks(stream).await
    }

    async fn runs(&self) -> Result<Vec<RunRecord>> {
        if !self.root.join(LEDGER_FILE).exists() {
            return Ok(Vec::new());
        }
        self.inner.runs().await
    }

    async fn rollback_run(&self, run_id: i64, _rollback_id: i64) -> Result<RollbackOutcome> {
        Err(Error::Unsupported(format!(
            "run {run_id} wrote files into {}; a file target is rolled back by deleting them \
             (the stream's directory), then `tsmigrate run --restart` writes it again",
            self.root.display()
        )))
    }

    async fn record_verification(&self, record: &VerificationRecord) -> Result<()> {
        std::fs::create_dir_all(&self.root).map_err(|e| file_error(&self.root, e))?;
        self.inner.record_verification(record).await
    }

    async fn verifications(&self) -> Result<Vec<VerificationRecord>> {
        if !self.root.join(LEDGER_FILE).exists() {
            return Ok(Vec::new());
        }
        self.inner.verifications().await
    }
}
