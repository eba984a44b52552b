//! Where an attempt's rejected rows go — the rejects file (made durable before the
//! commit), `--max-rejects`, a dry run's sample — and the ledger record committed with its
//! rows.

use std::sync::atomic::Ordering;

use tsmigrate_core::{Batch, PartitionCommit, PartitionWriter};

use super::attempt::{Attempt, Rejected};
use crate::counters::StreamCounters;
use crate::error::{EngineError, RejectStop};
use crate::stream::PreparedStream;
use crate::watermark::SeriesTracker;

impl Attempt<'_> {
    /// Before a partition commits: takes the rows the target refused after writing them, and
    /// makes the attempt's rejects durable.
    pub(super) async fn seal_rejects(
        &mut self,
        writer: &mut dyn PartitionWriter,
    ) -> Result<(), EngineError> {
        for late in writer.take_rejects().await? {
            self.account(&late.row, vec![(0, late.column, late.reason)])?;
        }
        if let Some(r) = self.tally.rejects.as_mut() {
            r.seal()?;
        }
        Ok(())
    }

    /// What the ledger records with the partition's commit (`None` without a run id).
    pub(super) fn commit_record(&mut self) -> Option<PartitionCommit> {
        let (s, tally) = (self.s, &mut self.tally);
        let marks = tally
            .tracker
            .take()
            .map(SeriesTracker::finish)
            .unwrap_or_default();
        self.worker.opts.run_id.map(|run_id| PartitionCommit {
            stream: s.spec.name.clone(),
            partition_id: self.part.id.clone(),
            run_id,
            write: self.target.write,
            digest: tally.digest.to_text(),
            watermarks: marks.series,
            newest: marks
                .newest
                .zip(s.info.series.as_ref())
                .and_then(|(t, si)| si.ticks_to_us(t)),
            rejected: tally.rejected,
        })
    }

    /// Counts the rows of `batch` per series, and records its `rejected` rows (rejects file,
    /// `max_rejects`; in a dry run, a sample for the report).
    pub(super) fn account(
        &mut self,
        batch: &Batch,
        rejected: Vec<Rejected>,
    ) -> Result<(), EngineError> {
        let s = self.s;
        if let Some(col) = s
            .series_column
            .as_ref()
            .and_then(|c| batch.schema.index_of(c))
        {
            let rows: Vec<usize> = rejected.iter().map(|r| r.0).collect();
            self.tally.series.add(batch, col, &rows);
        }
        for (row, column, reason) in rejected {
            self.tally.rejected += 1;
            StreamCounters::add(&s.counters.rows_rejected, 1);
            let total = self.worker.rejected_total.fetch_add(1, Ordering::Relaxed) + 1;
            let key = s.rejects.key_text(batch, row);
            let Some(rejects) = self.tally.rejects.as_mut() else {
                sample_reject(s, &key, column.as_deref(), &reason);
                continue;
            };
            rejects.record(batch, row, column.as_deref(), &reason)?;
            let max = self.worker.opts.max_rejects;
            if total > max {
                return Err(EngineError::TooManyRejects(Box::new(RejectStop {
                    stream: s.spec.name.clone(),
                    partition: self.part.id.clone(),
                    key,
                    column: column
                        .map(|c| format!(", column `{c}`"))
                        .unwrap_or_default(),
                    reason,
                    total,
                    max,
                    file: s.rejects.path().display().to_string(),
                })));
            }
        }
        Ok(())
    }
}

/// Keeps a dry run's rejected row for the report (the first ten).
fn sample_reject(s: &PreparedStream, key: &str, column: Option<&str>, reason: &str) {
    if let Ok(mut sr) = s.sample_rejects.lock() {
        if sr.len() < 10 {
            let col = column
                .map(|c| format!(" column `{c}`:"))
                .unwrap_or_default();
            sr.push(format!("({key}){col} {reason}"));
        }
    }
}
