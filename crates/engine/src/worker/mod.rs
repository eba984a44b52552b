//! The workers of a run: each takes partitions off the shared queue and moves them through
//! `read → reshape → map → convert → write → commit`, retrying transient failures; a
//! partition that fails for good stops the run.
//!
//! An attempt at a partition ([`attempt`]) runs in [`partition`]; its rows' path is in
//! [`rows`], its figures in [`tally`], where its rejected rows go in [`account`]; a dry run
//! writes through [`preview`].

mod account;
mod attempt;
mod partition;
mod preview;
mod rows;
mod tally;

use std::collections::VecDeque;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use tsmigrate_core::{Ledger, Partition, PartitionState, Sink, Source};

use crate::cancel::Cancel;
use crate::counters::StreamCounters;
use crate::error::EngineError;
use crate::events::Event;
use crate::options::EngineOptions;
use crate::stream::PreparedStream;

/// Batches buffered between a partition's reader and its writer: memory stays bounded at
/// `jobs × (CHANNEL_BATCHES + 2) × batch size` whatever the data size.
const CHANNEL_BATCHES: usize = 4;

/// One of the run's `jobs` workers.
pub(crate) struct Worker {
    pub(crate) queue: Arc<Mutex<VecDeque<(usize, Partition)>>>,
    pub(crate) streams: Vec<Arc<PreparedStream>>,
    pub(crate) source: Arc<dyn Source>,
    pub(crate) sink: Arc<dyn Sink>,
    pub(crate) opts: EngineOptions,
    pub(crate) cancel: Cancel,
    pub(crate) rejected_total: Arc<AtomicU64>,
}

impl Worker {
    pub(crate) async fn run(self) -> Result<(), EngineError> {
        loop {
            if self.cancel.is_cancelled() {
                return Ok(());
            }
            let next = self.queue.lock().ok().and_then(|mut q| q.pop_front());
            let Some((si, part)) = next else {
                return Ok(());
            };
            let Some(s) = self.streams.get(si).cloned() else {
                return Ok(());
            };
            s.counters.mark_started();
            if let Err(e) = self.with_retries(&s, &part).await {
                self.cancel.cancel();
                return Err(e);
            }
            StreamCounters::add(&s.counters.partitions_done, 1);
            if StreamCounters::get(&s.counters.partitions_done) == s.partitions.len() as u64 {
                s.counters.mark_finished();
            }
        }
    }

    /// The ledger, unless this is a dry run.
    fn ledger(&self) -> Option<&Arc<dyn Ledger>> {
        self.opts.ledger.as_ref().filter(|_| !self.opts.dry_run)
    }

    /// When the ledger shows `part` committed by this run, the rows it committed.
    async fn committed_by_this_run(
        &self,
        s: &PreparedStream,
        part: &Partition,
    ) -> Option<(u64, u64)> {
        let l = self.ledger()?;
        let st = l.stream(&s.spec.name).await.ok()??;
        st.partitions
            .iter()
            .find(|p| {
                p.partition.id == part.id
                    && p.state == PartitionState::Done
                    && p.run_id.is_some()
                    && p.run_id == self.opts.run_id
            })
            .map(|p| {
                StreamCounters::add(&s.counters.rows_written, p.rows);
                (p.rows, 0)
            })
    }

    /// Runs a partition, retrying transient failures with backoff; records its state.
    async fn with_retries(
        &self,
        s: &Arc<PreparedStream>,
        part: &Partition,
    ) -> Result<(), EngineError> {
        let run_id = self.opts.run_id.unwrap_or(0);
        let mut attempt = 0u32;
        let mut isolating = false;
        loop {
            let mut rows = (0, 0);
            let result = match self.ledger() {
                Some(l) => match l.mark_running(&s.spec.name, &part.id, run_id).await {
                    Ok(()) => self.partition(s, part, &mut rows, isolating).await,
                    Err(e) => Err(e.into()),
                },
                None => self.partition(s, part, &mut rows, isolating).await,
            };
            let e = match result {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            if !isolating
                && matches!(
                    &e,
                    EngineError::Core(tsmigrate_core::Error::RowRefused { .. })
                )
            {
                // One row failed the partition's transaction: write it again isolating the
                // rows the target refuses, which are then rejected (not fatal to the run).
                let event = Event::Isolating {
                    stream: &s.spec.name,
                    partition: &part.id,
                    error: &e,
                };
                self.opts.events.event(event).await;
                isolating = true;
                continue;
            }
            let transient = matches!(&e, EngineError::Core(c) if c.is_transient());
            if transient {
                // A connection lost during COMMIT leaves it unknown whether the partition
                // committed: the ledger, committed with the rows, tells. When it cannot be
                // read now, the retry finds out: its ledger entry sees the partition done by
                // this run and rolls itself back (see `Recorded::DoneByThisRun`).
                if let Some(rows) = self.committed_by_this_run(s, part).await {
                    let event = Event::CommittedBeforeLoss {
                        stream: &s.spec.name,
                        partition: &part.id,
                    };
                    self.opts.events.event(event).await;
                    StreamCounters::add(&s.counters.rows_read, rows.0);
                    StreamCounters::add(&s.counters.rows_rejected, rows.1);
                    return Ok(());
                }
            }
            if transient && attempt < self.opts.retry.retries && !self.cancel.is_cancelled() {
                attempt += 1;
                StreamCounters::add(&s.counters.retries, 1);
                let delay = self.opts.retry.delay(attempt);
                let event = Event::RetryingPartition {
                    stream: &s.spec.name,
                    partition: &part.id,
                    error: &e,
                    delay,
                    attempt,
                    retries: self.opts.retry.retries,
                };
                self.opts.events.event(event).await;
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = self.cancel.cancelled() => return Err(EngineError::Interrupted),
                }
                continue;
            }
            // The last attempt's rows count as read and rolled back (or rejected).
            StreamCounters::add(&s.counters.rows_read, rows.0);
            StreamCounters::add(&s.counters.rows_rejected, rows.1);
            StreamCounters::add(&s.counters.rows_rolled_back, rows.0.saturating_sub(rows.1));
            if let (Some(l), false) = (self.ledger(), matches!(e, EngineError::Interrupted)) {
                let text = if transient {
                    format!("{e} (after {attempt} retries)")
                } else {
                    e.to_string()
                };
                // Best effort: the run is stopping with `e` anyway.
                let _ = l.mark_failed(&s.spec.name, &part.id, run_id, &text).await;
            }
            return Err(e);
        }
    }
}
