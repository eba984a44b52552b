//! A sink that keeps committed rows in memory, per table, as text; records partitions in a
//! [`MemLedger`] inside its commit (as a transactional target does); and fails on command.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tsmigrate_core::convert::value_to_string;
use tsmigrate_core::{
    Batch, CommitInfo, End, Error, Field, FinishReport, Ledger, LedgerOptions, Partition,
    PartitionCommit, PartitionWriter, PreparedTarget, Result, RowError, Sink, TargetRequest,
    WriteOutcome,
};

use super::ledger::{MemLedger, MemRecorded};

/// A failure the sink produces on command.
#[derive(Clone, Debug, PartialEq)]
pub enum Fault {
    /// Writing a batch of this partition fails with a transient error, the next `times`
    /// attempts.
    WriteFails {
        /// Partition id.
        partition: String,
        /// Attempts that fail.
        times: u32,
    },
    /// This partition's commit lands, and then its answer is lost (a transient error), the
    /// next `times` commits.
    CommitAnswerLost {
        /// Partition id.
        partition: String,
        /// Commits whose answer is lost.
        times: u32,
    },
    /// A row whose `value` column holds this value is refused by the store: the partition's
    /// transaction fails with [`Error::RowRefused`], unless the writer isolates refused rows.
    RefuseValue(f64),
}

#[derive(Default)]
struct Shared {
    tables: BTreeMap<String, Vec<Vec<String>>>,
    faults: Vec<Fault>,
    /// Commits whose answer was lost after they landed.
    lost_answers: u32,
}

/// Rows in memory.
#[derive(Clone, Default)]
pub struct MemSink {
    shared: Arc<Mutex<Shared>>,
    ledger: Arc<MemLedger>,
}

impl MemSink {
    /// An empty sink failing as `faults` say.
    pub fn new(faults: Vec<Fault>) -> MemSink {
        let sink = MemSink::default();
        if let Ok(mut s) = sink.shared.lock() {
            s.faults = faults;
        }
        sink
    }

    /// The committed rows of `table`, values as text, in commit order.
    pub fn rows(&self, table: &str) -> Vec<Vec<String>> {
        self.shared
            .lock()
            .map(|s| s.tables.get(table).cloned().unwrap_or_default())
            .unwrap_or_default()
    }

    /// The ledger.
    pub fn mem_ledger(&self) -> Arc<MemLedger> {
        self.ledger.clone()
    }

    /// Commits whose answer was lost after they landed.
    pub fn lost_answers(&self) -> u32 {
        self.shared.lock().map(|s| s.lost_answers).unwrap_or(0)
    }

    /// Uses up one `times` of the first matching fault; true when there was one.
    fn strike(&self, matches: impl Fn(&Fault) -> bool) -> bool {
        let Ok(mut s) = self.shared.lock() else {
            return false;
        };
        for f in s.faults.iter_mut() {
            if !matches(f) {
                continue;
            }
            if let Fault::WriteFails { times, .. } | Fault::CommitAnswerLost { times, .. } = f {
                if *times > 0 {
                    *times -= 1;
                    return true;
                }
            }
        }
        false
    }

    fn refused(&self) -> Option<f64> {
        let s = self.shared.lock().ok()?;
        s.faults.iter().find_map(|f| match f {
            Fault::RefuseValue(v) => Some(*v),
            _ => None,
        })
    }

    fn writer(
        &self,
        target: &PreparedTarget,
        partition: &Partition,
        isolating: bool,
    ) -> Box<dyn PartitionWriter> {
        Box::new(MemWriter {
            sink: self.clone(),
            table: target.table.clone(),
            partition: partition.id.clone(),
            rows: Vec::new(),
            isolating,
        })
    }
}

fn transient(what: &str) -> Error {
    Error::Store {
        end: End::Target,
        context: what.into(),
        message: "connection lost (injected)".into(),
        transient: true,
    }
}

#[async_trait]
impl Sink for MemSink {
    fn describe(&self) -> String {
        "memory".into()
    }

    async fn check(&self) -> Result<Vec<String>> {
        Ok(vec!["memory".into()])
    }

    async fn prepare(&self, request: &TargetRequest, dry_run: bool) -> Result<PreparedTarget> {
        let exists = self
            .shared
            .lock()
            .map(|s| s.tables.contains_key(&request.table))
            .unwrap_or(false);
        if !exists && !dry_run {
            if let Ok(mut s) = self.shared.lock() {
                s.tables.insert(request.table.clone(), Vec::new());
            }
        }
        Ok(PreparedTarget {
            stream: request.stream.clone(),
            table: request.table.clone(),
            columns: request
                .columns
                .iter()
                .map(|c| Field::new(c.name.clone(), c.dtype))
                .collect(),
            created: (!exists).then(|| format!("memory table {}", request.table)),
            notes: Vec::new(),
            write: request.write,
            key: request.key.clone(),
            limits: Vec::new(),
        })
    }

    async fn begin(
        &self,
        target: &PreparedTarget,
        partition: &Partition,
    ) -> Result<Box<dyn PartitionWriter>> {
        Ok(self.writer(target, partition, false))
    }

    async fn begin_isolating(
        &self,
        target: &PreparedTarget,
        partition: &Partition,
    ) -> Result<Box<dyn PartitionWriter>> {
        Ok(self.writer(target, partition, true))
    }

    async fn finish(&self, _target: &PreparedTarget) -> Result<FinishReport> {
        Ok(FinishReport::default())
    }

    fn ledger(&self, _plan_id: &str, _opts: &LedgerOptions) -> Result<Option<Arc<dyn Ledger>>> {
        Ok(Some(self.ledger.clone()))
    }
}

/// One partition's rows until it commits.
struct MemWriter {
    sink: MemSink,
    table: String,
    partition: String,
    rows: Vec<Vec<String>>,
    isolating: bool,
}

#[async_trait]
impl PartitionWriter for MemWriter {
    async fn write(&mut self, batch: &Batch) -> Result<WriteOutcome> {
        let part = self.partition.clone();
        if self
            .sink
            .strike(|f| matches!(f, Fault::WriteFails { partition, .. } if *partition == part))
        {
            return Err(transient(&format!("partition {part}: writing")));
        }
        let refused = self.sink.refused().map(|v| v.to_string());
        let value = batch.schema.index_of("value");
        let mut outcome = WriteOutcome::default();
        for r in 0..batch.len() {
            let row: Vec<String> = batch.row(r).into_iter().map(value_to_string).collect();
            if value.is_some_and(|c| Some(&row[c]) == refused.as_ref()) {
                if !self.isolating {
                    return Err(Error::RowRefused {
                        end: End::Target,
                        context: format!("partition {part}"),
                        message: "value refused (injected check constraint)".into(),
                    });
                }
                outcome.rejected.push(RowError {
                    row: r,
                    column: Some("value".into()),
                    reason: "value refused (injected check constraint)".into(),
                });
                continue;
            }
            outcome.bytes += row.iter().map(|v| v.len() as u64).sum::<u64>();
            self.rows.push(row);
        }
        Ok(outcome)
    }

    async fn commit(self: Box<Self>, ledger: Option<&PartitionCommit>) -> Result<CommitInfo> {
        let n = self.rows.len() as u64;
        let recorded = match ledger {
            Some(c) => match self.sink.ledger.record(c, n)? {
                MemRecorded::Fresh => true,
                // The retry of a commit that landed: it rolls back; the rows are in.
                MemRecorded::DoneByThisRun(rows) => {
                    return Ok(CommitInfo {
                        written: rows,
                        skipped: 0,
                        recorded: true,
                    })
                }
                MemRecorded::DoneByOther => {
                    return Err(Error::Plan(format!(
                        "partition {}: another run committed it already",
                        self.partition
                    )))
                }
            },
            None => false,
        };
        if let Ok(mut s) = self.sink.shared.lock() {
            s.tables
                .entry(self.table.clone())
                .or_default()
                .extend(self.rows);
        }
        let part = self.partition.clone();
        if self.sink.strike(
            |f| matches!(f, Fault::CommitAnswerLost { partition, .. } if *partition == part),
        ) {
            if let Ok(mut s) = self.sink.shared.lock() {
                s.lost_answers += 1;
            }
            return Err(transient(&format!("partition {part}: COMMIT")));
        }
        Ok(CommitInfo {
            written: n,
            skipped: 0,
            recorded,
        })
    }

    async fn abort(self: Box<Self>) -> Result<()> {
        Ok(())
    }
}
