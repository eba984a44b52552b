//! One attempt at one partition: the reader on its own task, batches through the reshaping
//! and the mapping into the writer, then the commit with the partition's ledger record.
//! What the attempt holds is an [`Attempt`]; its rows' path is in [`super::rows`], where its
//! rejects go in [`super::account`].

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tsmigrate_core::{Batch, LossyCounts, Partition, PartitionWriter, PreparedTarget, WriteMode};

use super::attempt::{Attempt, Reshape};
use super::preview::PreviewWriter;
use super::tally::Tally;
use super::{Worker, CHANNEL_BATCHES};
use crate::aggregate::Aggregate;
use crate::counters::StreamCounters;
use crate::error::EngineError;
use crate::options::{read_options, sync_write, SYNC_PREFIX};
use crate::pivot::Pivot;
use crate::stream::PreparedStream;

impl Worker {
    /// Moves one partition. On failure nothing of it stays counted, and `attempt_rows` gets
    /// the rows it had read and rejected.
    pub(super) async fn partition(
        &self,
        s: &Arc<PreparedStream>,
        part: &Partition,
        attempt_rows: &mut (u64, u64),
        isolating: bool,
    ) -> Result<(), EngineError> {
        let (reader, rx) = self.start_reader(s, part)?;
        let target = partition_target(s, part);
        let mut writer = match self.begin_writer(s, &target, part, isolating).await {
            Ok(w) => w,
            Err(e) => {
                reader.abort();
                return Err(e);
            }
        };
        let mut attempt = Attempt {
            worker: self,
            s,
            part,
            target,
            tally: Tally::new(s, part, self.opts.dry_run),
            lossy: LossyCounts::allowing(&s.lossy_kinds),
            reshape: match (&s.unpivot, &s.pivot) {
                (Some(u), _) => Reshape::Unpivot(u),
                (None, Some(p)) => Reshape::Pivot(Pivot::groups(p)),
                (None, None) => Reshape::None,
            },
            buckets: s.aggregate.as_ref().map(Aggregate::buckets),
        };
        let moved = attempt.take_all(rx, writer.as_mut()).await;
        let read = match reader.await {
            Ok(r) => r.map_err(EngineError::from),
            Err(e) => Err(EngineError::Core(tsmigrate_core::Error::Store {
                end: tsmigrate_core::End::Source,
                context: format!("stream `{}`, partition {}", s.spec.name, part.id),
                message: format!("internal error: the reader stopped unexpectedly: {e}"),
                transient: false,
            })),
        };
        // The writer's error is the cause when both failed (the reader then only saw the
        // channel close).
        let outcome = match moved.and(read) {
            Ok(()) => attempt.finish_input(writer.as_mut()).await,
            Err(e) => Err(e),
        };
        attempt.end(outcome, writer, attempt_rows).await
    }

    /// Starts reading the partition on a task of its own, into a bounded channel.
    fn start_reader(
        &self,
        s: &PreparedStream,
        part: &Partition,
    ) -> Result<
        (
            JoinHandle<tsmigrate_core::Result<()>>,
            mpsc::Receiver<Batch>,
        ),
        EngineError,
    > {
        let (tx, rx) = mpsc::channel::<Batch>(CHANNEL_BATCHES);
        let (src, spec, p, ro) = (
            self.source.clone(),
            s.spec.clone(),
            part.clone(),
            read_options(&s.spec, &self.opts.read)?,
        );
        let reader = tokio::spawn(async move { src.read(&spec, &p, &ro, tx).await });
        Ok((reader, rx))
    }

    /// The partition's writer: the sink's (isolating the rows it refuses when asked), or in
    /// a dry run the preview, which writes nothing.
    async fn begin_writer(
        &self,
        s: &Arc<PreparedStream>,
        target: &PreparedTarget,
        part: &Partition,
        isolating: bool,
    ) -> Result<Box<dyn PartitionWriter>, EngineError> {
        if self.opts.dry_run {
            return Ok(Box::new(PreviewWriter::new(
                s.clone(),
                self.opts.preview_rows,
            )));
        }
        let begun = if isolating {
            self.sink.begin_isolating(target, part).await
        } else {
            self.sink.begin(target, part).await
        };
        Ok(begun?)
    }
}

/// The target as `part` writes it: a partition planned by a sync round re-reads an overlap
/// window, so whoever redoes it writes an `append` stream the way a sync round does.
fn partition_target(s: &PreparedStream, part: &Partition) -> PreparedTarget {
    if part.id.starts_with(SYNC_PREFIX) && s.target.write == WriteMode::Append {
        PreparedTarget {
            write: sync_write(&s.spec),
            ..s.target.clone()
        }
    } else {
        s.target.clone()
    }
}

impl Attempt<'_> {
    /// Takes every batch the reader sends (stops at Ctrl-C).
    async fn take_all(
        &mut self,
        mut rx: mpsc::Receiver<Batch>,
        writer: &mut dyn PartitionWriter,
    ) -> Result<(), EngineError> {
        let cancel = self.worker.cancel.clone();
        loop {
            let batch = tokio::select! {
                b = rx.recv() => b,
                _ = cancel.cancelled() => return Err(EngineError::Interrupted),
            };
            let Some(batch) = batch else { return Ok(()) };
            match &mut self.reshape {
                Reshape::Pivot(_) => self.gather(&batch)?,
                _ => self.batch(&batch, writer).await?,
            }
        }
    }

    /// After the last batch: a pivot's wide rows, then an aggregate's rows.
    async fn finish_input(&mut self, writer: &mut dyn PartitionWriter) -> Result<(), EngineError> {
        if let Reshape::Pivot(groups) = std::mem::replace(&mut self.reshape, Reshape::None) {
            for wide in groups.finish(self.worker.opts.read.batch_rows)? {
                if self.worker.cancel.is_cancelled() {
                    return Err(EngineError::Interrupted);
                }
                self.batch(&wide, writer).await?;
            }
        }
        if let Some(b) = self.buckets.take() {
            self.write_aggregates(b, writer).await?;
        }
        Ok(())
    }

    /// Commits the partition when `outcome` is fine, else discards it; then adds the
    /// attempt's figures to the stream's counters, or takes them back when it failed.
    async fn end(
        mut self,
        outcome: Result<(), EngineError>,
        writer: Box<dyn PartitionWriter>,
        attempt_rows: &mut (u64, u64),
    ) -> Result<(), EngineError> {
        let committed = match outcome {
            Ok(()) => self.commit(writer).await,
            Err(e) => {
                let _ = writer.abort().await;
                Err(e)
            }
        };
        let (s, tally) = (self.s, &mut self.tally);
        if let Err(e) = committed {
            // Take back what this attempt counted: a retry reads the partition again.
            let total = &self.worker.rejected_total;
            StreamCounters::sub(&s.counters.rows_read, tally.read);
            StreamCounters::sub(&s.counters.rows_rejected, tally.rejected);
            total.fetch_sub(
                tally.rejected.min(total.load(Ordering::Relaxed)),
                Ordering::Relaxed,
            );
            *attempt_rows = (tally.read, tally.rejected);
            return Err(e);
        }
        StreamCounters::add(&s.counters.rows_written, tally.written);
        StreamCounters::add(&s.counters.rows_skipped, tally.skipped);
        StreamCounters::add(&s.counters.values_unmatched, tally.unmatched);
        StreamCounters::add(&s.counters.bytes_written, tally.bytes);
        if let Ok(mut r) = s.series_rows.lock() {
            r.absorb(std::mem::take(&mut tally.series));
        }
        if let Ok(mut l) = s.lossy_total.lock() {
            l.absorb(&self.lossy);
        }
        if let Ok(mut c) = s.committed.lock() {
            c.push(self.part.id.clone());
        }
        Ok(())
    }

    /// Seals the rejects, commits the writer with the partition's ledger record, and records
    /// the partition in the ledger afterwards when the sink could not do it in its own
    /// transaction.
    async fn commit(&mut self, mut writer: Box<dyn PartitionWriter>) -> Result<(), EngineError> {
        if let Err(e) = self.seal_rejects(writer.as_mut()).await {
            let _ = writer.abort().await;
            return Err(e);
        }
        let record = self.commit_record();
        let ledger = self.worker.ledger();
        let ledger_commit = record.as_ref().filter(|_| ledger.is_some());
        let info = writer.commit(ledger_commit).await?;
        self.tally.written = info.written;
        self.tally.skipped = info.skipped;
        match (ledger, ledger_commit) {
            (Some(l), Some(c)) if !info.recorded => Ok(l.record_done(c, info.written).await?),
            _ => Ok(()),
        }
    }
}
