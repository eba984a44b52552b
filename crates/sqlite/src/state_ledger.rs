//! The ledger of a target without transactions of its own (files, DynamoDB): the SQLite
//! ledger in a local state file, created when the ledger is opened (not before: `check`
//! changes nothing). Rollback is refused with the target's own advice: such a target's rows
//! cannot be told apart by the run that wrote them.

use std::path::PathBuf;

use crate::{Db, SqliteLedger};
use async_trait::async_trait;
use tsmigrate_core::{
    End, Error, Ledger, LedgerStream, Partition, PartitionCommit, Result, RollbackOutcome,
    RunRecord, VerificationRecord,
};

/// A plan's ledger in a local SQLite state file.
pub struct StateLedger {
    path: PathBuf,
    rollback_advice: String,
    inner: SqliteLedger,
}

impl StateLedger {
    /// The ledger of `plan_id` in the SQLite file `path`; `rollback_advice` tells what to do
    /// instead of `rollback` (followed by the run id in the refusal).
    pub fn new(path: PathBuf, plan_id: &str, rollback_advice: String) -> StateLedger {
        let db = Db::new(path.clone(), End::Target);
        StateLedger {
            inner: SqliteLedger::new(db, plan_id),
            path,
            rollback_advice,
        }
    }

    /// Creates the directory the state file goes into.
    fn create_dir(&self) -> Result<()> {
        match self.path.parent().filter(|p| !p.as_os_str().is_empty()) {
            Some(dir) => std::fs::create_dir_all(dir).map_err(|e| Error::Io {
                path: dir.display().to_string(),
                source: e,
            }),
            None => Ok(()),
        }
    }

    fn exists(&self) -> bool {
        self.path.exists()
    }
}

#[async_trait]
impl Ledger for StateLedger {
    fn describe(&self) -> String {
        self.inner.describe()
    }

    async fn open(&self) -> Result<()> {
        self.create_dir()?;
        self.inner.open().await
    }

    async fn exists(&self) -> Result<bool> {
        self.inner.exists().await
    }

    async fn claim_table(&self, table: &str, stream: &str) -> Result<()> {
        self.inner.claim_table(table, stream).await
    }

    async fn begin_run(&self, command: &str) -> Result<i64> {
        self.inner.begin_run(command).await
    }

    async fn end_run(&self, run_id: i64, state: &str, error: Option<&str>) -> Result<()> {
        self.inner.end_run(run_id, state, error).await
    }

    async fn stream(&self, stream: &str) -> Result<Option<LedgerStream>> {
        if !self.exists() {
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

    async fn retire_partitions(&self, stream: &str, ids: &[String]) -> Result<()> {
        self.inner.retire_partitions(stream, ids).await
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
        if !self.exists() {
            return Ok(Vec::new());
        }
        self.inner.runs().await
    }

    async fn rollback_run(&self, run_id: i64, _rollback_id: i64) -> Result<RollbackOutcome> {
        Err(Error::Unsupported(format!(
            "run {run_id}: {}",
            self.rollback_advice
        )))
    }

    async fn record_verification(&self, record: &VerificationRecord) -> Result<()> {
        self.create_dir()?;
        self.inner.record_verification(record).await
    }

    async fn verifications(&self) -> Result<Vec<VerificationRecord>> {
        if !self.exists() {
            return Ok(Vec::new());
        }
        self.inner.verifications().await
    }
}
