//! A partition's rows on their way: unpivoted, gathered for a pivot, mapped and converted,
//! aggregated, written; every rejected row accounted for.

use tsmigrate_core::convert::value_to_string;
use tsmigrate_core::{Batch, PartitionWriter, RowErrors};

use super::attempt::{Attempt, Rejected, Reshape};
use crate::aggregate::Buckets;
use crate::counters::StreamCounters;
use crate::error::EngineError;
use crate::target_rows::to_target_types;

impl Attempt<'_> {
    /// Writes the aggregate rows of a partition (after its last batch). An aggregate row
    /// the target cannot hold fails the partition: it stands for many source rows.
    pub(super) async fn write_aggregates(
        &mut self,
        buckets: Buckets,
        writer: &mut dyn PartitionWriter,
    ) -> Result<(), EngineError> {
        let s = self.s;
        let rows = buckets.finish()?;
        let mut errors = RowErrors::new();
        let out = to_target_types(
            &rows,
            (&s.target_schema, &s.target.limits),
            &s.spec.name,
            &mut errors,
            &mut self.lossy,
        )?;
        let mut failed = rejected_of(&errors);
        if failed.is_empty() {
            failed = self.write_rows(out, None, writer).await?;
        }
        match failed.into_iter().next() {
            None => Ok(()),
            Some((row, column, reason)) => {
                let group: Vec<String> = rows.row(row).into_iter().map(value_to_string).collect();
                Err(tsmigrate_core::Error::Plan(format!(
                    "stream `{}`, partition {}: the aggregate row ({}) cannot be stored{}: {reason}; \
                     change the target column's type",
                    s.spec.name,
                    self.part.id,
                    group.join(", "),
                    column.map(|c| format!(" in column `{c}`")).unwrap_or_default(),
                ))
                .into())
            }
        }
    }

    /// Writes converted rows; returns the rows the sink rejected, as rows of the batch read
    /// (`origin` maps written rows to read rows).
    pub(super) async fn write_rows(
        &mut self,
        out: Batch,
        origin: Option<Vec<usize>>,
        writer: &mut dyn PartitionWriter,
    ) -> Result<Vec<Rejected>, EngineError> {
        let tally = &mut self.tally;
        let outcome = writer.write(&out).await?;
        tally.bytes += outcome.bytes;
        tally.written += (out.len() - outcome.rejected.len().min(out.len())) as u64;
        if outcome.rejected.is_empty() {
            tally.digest.add_batch(&out, None);
        } else {
            let mut sent = vec![true; out.len()];
            for e in &outcome.rejected {
                if let Some(k) = sent.get_mut(e.row) {
                    *k = false;
                }
            }
            tally.digest.add_batch(&out, Some(&sent));
        }
        Ok(outcome
            .rejected
            .into_iter()
            .map(|e| {
                let row = origin
                    .as_ref()
                    .and_then(|o| o.get(e.row).copied())
                    .unwrap_or(e.row);
                (row, e.column, e.reason)
            })
            .collect())
    }

    /// Moves one batch read (or made by a pivot): unpivoted, mapped and converted and
    /// written — or, for an aggregate, mapped and added to its groups.
    pub(super) async fn batch(
        &mut self,
        batch: &Batch,
        writer: &mut dyn PartitionWriter,
    ) -> Result<(), EngineError> {
        let s = self.s;
        let mut errors = RowErrors::new();
        // An unpivoted stream's rows are the narrow rows from here on (rejects list them).
        let narrow;
        let batch = match &self.reshape {
            Reshape::Unpivot(u) => {
                let u = *u;
                // Rows the source could not read are rejected whole, as read.
                let kept = self.reject_unreadable(batch)?;
                let (b, skipped) = u.apply(&kept, &mut errors)?;
                self.tally.unmatched += skipped;
                narrow = b;
                &narrow
            }
            _ => batch,
        };
        let n = batch.len();
        self.tally.read += n as u64;
        StreamCounters::add(&s.counters.rows_read, n as u64);
        if let Some(t) = self.tally.tracker.as_mut() {
            t.add(batch);
        }
        let rejected = if let Some(buckets) = self.buckets.as_mut() {
            // An aggregate stream's rows are written when the partition ends.
            batch.reject_source_errors(&mut errors);
            let mapped = s.mapping.apply(batch, &mut errors, &mut self.lossy)?;
            buckets.add(&mapped, &mut errors);
            rejected_of(&errors)
        } else {
            let sink = self.worker.sink.clone();
            let out = s
                .to_target(sink.as_ref(), batch, &mut errors, &mut self.lossy)
                .await?;
            // Drop rejected rows; remember where the kept rows came from.
            let (out, origin): (Batch, Option<Vec<usize>>) = if errors.is_empty() {
                (out, None)
            } else {
                let keep = errors.keep_mask(n);
                let origin = (0..n).filter(|i| keep[*i]).collect();
                (out.filter(&keep), Some(origin))
            };
            let mut rejected = rejected_of(&errors);
            rejected.extend(self.write_rows(out, origin, writer).await?);
            rejected
        };
        self.account(batch, rejected)
    }

    /// Gathers a narrow batch of a pivoted stream into the partition's wide rows. A narrow
    /// row the pivot rejects counts as one row read and rejected (into the rejects file as
    /// read); the others are counted as the wide rows they make.
    pub(super) fn gather(&mut self, batch: &Batch) -> Result<(), EngineError> {
        let batch = &self.reject_unreadable(batch)?;
        let mut errors = RowErrors::new();
        if let Reshape::Pivot(groups) = &mut self.reshape {
            self.tally.unmatched += groups.add(batch, &mut errors)?;
        }
        if errors.is_empty() {
            return Ok(());
        }
        let mut bad = vec![false; batch.len()];
        for e in errors.errors() {
            if let Some(b) = bad.get_mut(e.row) {
                *b = true;
            }
        }
        // Row numbers within the batch of rejected rows.
        let mut at = Vec::with_capacity(bad.len());
        let mut n = 0;
        for b in &bad {
            at.push(n);
            n += usize::from(*b);
        }
        let rejected_rows = batch.filter(&bad);
        self.tally.read += n as u64;
        StreamCounters::add(&self.s.counters.rows_read, n as u64);
        let rejected = errors
            .errors()
            .iter()
            .map(|e| (at[e.row], e.column.clone(), e.reason.clone()))
            .collect();
        self.account(&rejected_rows, rejected)
    }

    /// Rejects (as read, counted as read) the rows of `batch` its source could not read (a
    /// reason in [`tsmigrate_core::batch::SOURCE_ERROR`]), before a reshaping that would lose
    /// the reason; returns the other rows.
    pub(super) fn reject_unreadable(&mut self, batch: &Batch) -> Result<Batch, EngineError> {
        let mut errors = RowErrors::new();
        batch.reject_source_errors(&mut errors);
        if errors.is_empty() {
            return Ok(batch.clone());
        }
        let keep = errors.keep_mask(batch.len());
        let bad: Vec<bool> = keep.iter().map(|k| !k).collect();
        let rejected_rows = batch.filter(&bad);
        let reasons: Vec<Rejected> = errors
            .errors()
            .iter()
            .enumerate()
            .map(|(i, e)| (i, e.column.clone(), e.reason.clone()))
            .collect();
        self.tally.read += rejected_rows.len() as u64;
        StreamCounters::add(&self.s.counters.rows_read, rejected_rows.len() as u64);
        self.account(&rejected_rows, reasons)?;
        Ok(batch.filter(&keep))
    }
}

/// The rows `errors` lists, as rejected rows.
fn rejected_of(errors: &RowErrors) -> Vec<Rejected> {
    errors
        .errors()
        .iter()
        .map(|e| (e.row, e.column.clone(), e.reason.clone()))
        .collect()
}
