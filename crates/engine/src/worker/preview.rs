//! The writer of a dry run: it writes nothing, and keeps the first rows for the report's
//! preview — so a dry run takes the same path through the worker as a run.

use std::sync::Arc;

use async_trait::async_trait;
use tsmigrate_core::convert::value_to_string;
use tsmigrate_core::{Batch, CommitInfo, PartitionCommit, PartitionWriter, Result, WriteOutcome};

use crate::stream::PreparedStream;

/// Counts the rows a dry run would write and keeps up to `keep` of them (across the stream)
/// in the stream's preview.
pub(super) struct PreviewWriter {
    s: Arc<PreparedStream>,
    keep: usize,
    rows: u64,
}

impl PreviewWriter {
    pub(super) fn new(s: Arc<PreparedStream>, keep: usize) -> PreviewWriter {
        PreviewWriter { s, keep, rows: 0 }
    }
}

#[async_trait]
impl PartitionWriter for PreviewWriter {
    async fn write(&mut self, batch: &Batch) -> Result<WriteOutcome> {
        self.rows += batch.len() as u64;
        if let Ok(mut p) = self.s.preview.lock() {
            for r in 0..batch.len() {
                if p.len() >= self.keep {
                    break;
                }
                p.push(batch.row(r).into_iter().map(value_to_string).collect());
            }
        }
        Ok(WriteOutcome::default())
    }

    async fn commit(self: Box<Self>, _ledger: Option<&PartitionCommit>) -> Result<CommitInfo> {
        Ok(CommitInfo {
            written: self.rows,
            skipped: 0,
            recorded: false,
        })
    }

    async fn abort(self: Box<Self>) -> Result<()> {
        Ok(())
    }
}
