//! A ledger in memory, with the PostgreSQL ledger's rules for what a commit may record: a
//! partition is done once; a second commit of it by the same run (a retry after a lost
//! commit answer) is recognised, by another run refused.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use tsmigrate_core::{
    Error, Ledger, LedgerPartition, LedgerStream, Partition, PartitionCommit, PartitionState,
    Result, RollbackOutcome, RunRecord, VerificationRecord,
};

/// What recording a commit found (as `tsmigrate_postgres::ledger::Recorded`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemRecorded {
    /// Recorded.
    Fresh,
    /// Done by this run already, with these rows.
    DoneByThisRun(u64),
    /// Done by another run.
    DoneByOther,
}

#[derive(Default)]
struct State {
    streams: BTreeMap<String, LedgerStream>,
    runs: Vec<RunRecord>,
    watermarks: BTreeMap<(String, String), i64>,
    verifications: Vec<VerificationRecord>,
}

/// The ledger of one plan, in memory.
#[derive(Default)]
pub struct MemLedger {
    state: Mutex<State>,
}

impl MemLedger {
    fn with<T>(&self, f: impl FnOnce(&mut State) -> Result<T>) -> Result<T> {
        let mut s = self
            .state
            .lock()
            .map_err(|_| Error::Plan("mem ledger: poisoned".into()))?;
        f(&mut s)
    }

    /// Records a partition's commit, as a transactional sink does inside its transaction.
    pub fn record(&self, commit: &PartitionCommit, rows: u64) -> Result<MemRecorded> {
        self.with(|s| {
            let st = s
                .streams
                .get_mut(&commit.stream)
                .ok_or_else(|| Error::Plan(format!("mem ledger: no stream {}", commit.stream)))?;
            let p = st
                .partitions
                .iter_mut()
                .find(|p| p.partition.id == commit.partition_id)
                .ok_or_else(|| {
                    Error::Plan(format!("mem ledger: no partition {}", commit.partition_id))
                })?;
            if p.state == PartitionState::Done {
                return Ok(if p.run_id == Some(commit.run_id) {
                    MemRecorded::DoneByThisRun(p.rows)
                } else {
                    MemRecorded::DoneByOther
                });
            }
            p.state = PartitionState::Done;
            p.run_id = Some(commit.run_id);
            p.rows = rows;
            p.rejected = commit.rejected;
            p.digest = Some(commit.digest.clone());
            p.error = None;
            for (series, ts) in &commit.watermarks {
                let w = s
                    .watermarks
                    .entry((commit.stream.clone(), series.clone()))
                    .or_insert(*ts);
                *w = (*w).max(*ts);
            }
            if let Some(r) = s.runs.iter_mut().find(|r| r.id == commit.run_id) {
                r.rows += rows;
                r.partitions += 1;
            }
            Ok(MemRecorded::Fresh)
        })
    }

    /// Changes a partition's state (`f`), if the stream and partition exist.
    fn partition(
        &self,
        stream: &str,
        id: &str,
        f: impl FnOnce(&mut LedgerPartition),
    ) -> Result<()> {
        self.with(|s| {
            if let Some(p) = s
                .streams
                .get_mut(stream)
                .and_then(|st| st.partitions.iter_mut().find(|p| p.partition.id == id))
            {
                f(p);
            }
            Ok(())
        })
    }
}

fn pending(p: &Partition) -> LedgerPartition {
    LedgerPartition {
        partition: p.clone(),
        state: PartitionState::Pending,
        run_id: None,
        rows: 0,
        rejected: 0,
        digest: None,
        attempts: 0,
        error: None,
        updated_at: None,
    }
}

#[async_trait]
impl Ledger for MemLedger {
    fn describe(&self) -> String {
        "memory".into()
    }

    async fn open(&self) -> Result<()> {
        self.with(|s| {
            for r in s.runs.iter_mut().filter(|r| r.state == "running") {
                r.state = "interrupted".into();
            }
            Ok(())
        })
    }

    async fn exists(&self) -> Result<bool> {
        Ok(true)
    }

    async fn claim_table(&self, _table: &str, _stream: &str) -> Result<()> {
        Ok(())
    }

    async fn begin_run(&self, command: &str) -> Result<i64> {
        self.with(|s| {
            let id = s.runs.len() as i64 + 1;
            s.runs.push(RunRecord {
                id,
                command: command.into(),
                state: "running".into(),
                started_at: String::new(),
                finished_at: None,
                rows: 0,
                partitions: 0,
                write_modes: Vec::new(),
                error: None,
            });
            Ok(id)
        })
    }

    async fn end_run(&self, run_id: i64, state: &str, error: Option<&str>) -> Result<()> {
        self.with(|s| {
            if let Some(r) = s.runs.iter_mut().find(|r| r.id == run_id) {
                r.state = state.into();
                r.error = error.map(String::from);
            }
            Ok(())
        })
    }

    async fn stream(&self, stream: &str) -> Result<Option<LedgerStream>> {
        self.with(|s| Ok(s.streams.get(stream).cloned()))
    }

    async fn plan_stream(
        &self,
        stream: &str,
        table: &str,
        fingerprint: &str,
        horizon_us: Option<i64>,
        partitions: &[Partition],
        _replace: bool,
    ) -> Result<()> {
        self.with(|s| {
            s.streams.insert(
                stream.into(),
                LedgerStream {
                    stream: stream.into(),
                    table: table.into(),
                    fingerprint: fingerprint.into(),
                    horizon_us,
                    planned_at: String::new(),
                    last_sync_at: None,
                    newest: None,
                    partitions: partitions.iter().map(pending).collect(),
                },
            );
            Ok(())
        })
    }

    async fn add_sync_partitions(
        &self,
        stream: &str,
        horizon_us: i64,
        partitions: &[Partition],
    ) -> Result<()> {
        self.with(|s| {
            if let Some(st) = s.streams.get_mut(stream) {
                st.horizon_us = Some(horizon_us);
                st.partitions.extend(partitions.iter().map(pending));
            }
            Ok(())
        })
    }

    async fn mark_synced(&self, _stream: &str) -> Result<()> {
        Ok(())
    }

    async fn retire_partitions(&self, stream: &str, ids: &[String]) -> Result<()> {
        self.with(|s| {
            if let Some(st) = s.streams.get_mut(stream) {
                st.partitions
                    .retain(|p| p.state == PartitionState::Done || !ids.contains(&p.partition.id));
            }
            Ok(())
        })
    }

    async fn mark_running(&self, stream: &str, partition: &str, run_id: i64) -> Result<()> {
        self.partition(stream, partition, |p| {
            if p.state != PartitionState::Done {
                p.state = PartitionState::Running;
                p.run_id = Some(run_id);
                p.attempts += 1;
            }
        })
    }

    async fn mark_failed(
        &self,
        stream: &str,
        partition: &str,
        run_id: i64,
        error: &str,
    ) -> Result<()> {
        self.partition(stream, partition, |p| {
            if p.state != PartitionState::Done {
                p.state = PartitionState::Failed;
                p.run_id = Some(run_id);
                p.error = Some(error.into());
            }
        })
    }

    async fn record_done(&self, commit: &PartitionCommit, rows: u64) -> Result<()> {
        match self.record(commit, rows)? {
            MemRecorded::DoneByOther => Err(Error::Plan(format!(
                "partition {}: another run committed it already",
                commit.partition_id
            ))),
            _ => Ok(()),
        }
    }

    async fn watermarks(&self, stream: &str) -> Result<Vec<(String, i64)>> {
        self.with(|s| {
            Ok(s.watermarks
                .iter()
                .filter(|((st, _), _)| st == stream)
                .map(|((_, series), ts)| (series.clone(), *ts))
                .collect())
        })
    }

    async fn runs(&self) -> Result<Vec<RunRecord>> {
        self.with(|s| Ok(s.runs.clone()))
    }

    async fn rollback_run(&self, _run_id: i64, _rollback_id: i64) -> Result<RollbackOutcome> {
        Err(Error::Unsupported(
            "the memory ledger does not roll back".into(),
        ))
    }

    async fn record_verification(&self, record: &VerificationRecord) -> Result<()> {
        self.with(|s| {
            s.verifications.push(record.clone());
            Ok(())
        })
    }

    async fn verifications(&self) -> Result<Vec<VerificationRecord>> {
        self.with(|s| Ok(s.verifications.clone()))
    }
}
