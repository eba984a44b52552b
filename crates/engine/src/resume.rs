//! Which partitions a run or sync round processes: the ledger's unfinished ones when it
//! resumes, a fresh plan recorded in the ledger, or a sync round's plan from the per-series
//! watermarks (superseding what earlier rounds left unfinished).

use std::sync::Arc;

use tsmigrate_core::{
    LedgerStream, Partition, PartitionState, PreparedTarget, Source, StreamInfo, StreamSpec,
    SyncFloors,
};

use crate::error::EngineError;
use crate::options::{now_us, read_options, EngineOptions, SYNC_PREFIX};

/// What the ledger says about a stream before this run starts.
pub(crate) struct Resume {
    pub(crate) state: Option<LedgerStream>,
}

impl Resume {
    pub(crate) fn done(&self) -> impl Iterator<Item = &tsmigrate_core::LedgerPartition> {
        self.state
            .iter()
            .flat_map(|s| s.partitions.iter())
            .filter(|p| p.state == PartitionState::Done)
    }
}

/// The partitions this run processes: for a run, the ledger's unfinished partitions when it
/// has the stream (resume), else a fresh plan (recorded in the ledger, with the time horizon
/// fixed to now when the plan gives no `until`); for a sync round, unfinished partitions of
/// earlier rounds plus a fresh plan from the per-series watermarks.
/// Returns (partitions, skipped as done, redone, rows of the skipped ones).
pub(crate) async fn plan_partitions(
    spec: &StreamSpec,
    info: &StreamInfo,
    target: &PreparedTarget,
    resume: &Resume,
    fingerprint: &str,
    source: &dyn Source,
    opts: &EngineOptions,
) -> Result<(Vec<Partition>, u64, u64, u64), EngineError> {
    let ledger = opts.ledger.as_ref().filter(|_| !opts.dry_run);
    let leftovers = |st: &LedgerStream| -> (Vec<Partition>, u64, u64, u64) {
        let mut todo = Vec::new();
        let (mut skipped, mut redone, mut rows) = (0, 0, 0);
        for p in &st.partitions {
            match p.state {
                PartitionState::Done => {
                    skipped += 1;
                    rows += p.rows;
                }
                PartitionState::Pending if p.attempts == 0 => todo.push(p.partition.clone()),
                _ => {
                    redone += 1;
                    todo.push(p.partition.clone());
                }
            }
        }
        (todo, skipped, redone, rows)
    };
    let read_spec = spec.clone();
    let mut read = read_options(spec, &opts.read)?;
    match (&opts.sync, &resume.state) {
        (None, Some(st)) if !opts.restart => Ok(leftovers(st)),
        (None, _) => {
            // The horizon records when the stream was planned (or, for a backup, when it was
            // taken): rows that arrive later are left to `sync`. It is not a read bound: rows
            // stamped in the future (a device with a wrong clock) are copied too.
            let now = source.snapshot_time().await?.unwrap_or_else(now_us);
            let horizon = match spec.filter.until_us()? {
                Some(u) => Some(u.min(now)),
                None => info.series.as_ref().map(|_| now),
            };
            let parts = source.partitions(&read_spec, &read).await?;
            if let Some(l) = ledger {
                l.plan_stream(
                    &spec.name,
                    &target.table,
                    fingerprint,
                    horizon,
                    &parts,
                    resume.state.is_some(),
                )
                .await?;
            }
            Ok((parts, 0, 0, 0))
        }
        (Some(round), st) => {
            // Unfinished partitions of earlier rounds are superseded: this round reads every
            // series from its watermark (which they did not move), so it covers what they would
            // have read. Redoing them beside it would write the same rows twice in parallel.
            let superseded: Vec<String> = st
                .iter()
                .flat_map(|s| s.partitions.iter())
                .filter(|p| {
                    p.state != PartitionState::Done && p.partition.id.starts_with(SYNC_PREFIX)
                })
                .map(|p| p.partition.id.clone())
                .collect();
            if let (Some(l), false) = (ledger, superseded.is_empty()) {
                l.retire_partitions(&spec.name, &superseded).await?;
            }
            let mut todo = Vec::new();
            let redone = superseded.len() as u64;
            let now = source.snapshot_time().await?.unwrap_or(round.horizon_us);
            let horizon = match spec.filter.until_us()? {
                Some(u) => u.min(now),
                None => now,
            };
            if let (Some(series), Some(l)) = (&info.series, &opts.ledger) {
                let overlap = i64::try_from(
                    round.overlap.as_micros() * series.ticks_per_second as u128 / 1_000_000,
                )
                .unwrap_or(i64::MAX);
                let floors = l
                    .watermarks(&spec.name)
                    .await?
                    .into_iter()
                    .map(|(s, t)| (s, t.saturating_sub(overlap)))
                    .collect();
                read.sync = Some(Arc::new(SyncFloors { series: floors }));
            }
            let run = opts.run_id.unwrap_or(0);
            let fresh: Vec<Partition> = source
                .partitions(&read_spec, &read)
                .await?
                .into_iter()
                .map(|mut p| {
                    p.id = format!("{SYNC_PREFIX}{run}/{}", p.id);
                    p
                })
                .collect();
            if let Some(l) = ledger {
                l.add_sync_partitions(&spec.name, horizon, &fresh).await?;
            }
            todo.extend(fresh);
            Ok((todo, 0, redone, 0))
        }
    }
}
