//! What a run is asked to do: jobs, dry run, rejects, sizes, the ledger and the run id, a
//! sync round, the retry policy — and the small rules derived from a stream's plan (how its
//! source is read, how a sync round writes it, which streams are selected).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tsmigrate_core::{Ledger, Plan, ReadOptions, StreamSpec, WriteMode};

use crate::error::EngineError;
use crate::events::Events;
use crate::retry::RetryPolicy;

/// Prefix of the ids of partitions planned by a sync round (`sync-<run id>/…`).
pub const SYNC_PREFIX: &str = "sync-";

/// How to run.
#[derive(Clone)]
pub struct EngineOptions {
    /// Partitions processed at once.
    pub jobs: usize,
    /// Read and map everything, write nothing.
    pub dry_run: bool,
    /// Rejected rows tolerated before stopping.
    pub max_rejects: u64,
    /// Directory of rejects files.
    pub rejects_dir: PathBuf,
    /// Batch and partition sizes.
    pub read: ReadOptions,
    /// Per-device row limit overriding the plan's.
    pub limit: Option<u64>,
    /// Run only these plan streams (empty = all).
    pub only_streams: Vec<String>,
    /// Rows kept for the dry-run preview.
    pub preview_rows: usize,
    /// The plan's ledger (`None`: the target keeps none; nothing is resumable).
    pub ledger: Option<Arc<dyn Ledger>>,
    /// This run's id in the ledger.
    pub run_id: Option<i64>,
    /// Forget the ledger's partitions of the selected streams and plan them again.
    pub restart: bool,
    /// Set for a sync round.
    pub sync: Option<SyncRound>,
    /// Retries of partitions that fail with a transient error.
    pub retry: RetryPolicy,
    /// Where the engine's events go.
    pub events: Arc<dyn Events>,
}

/// A sync round: what is new since the last run or sync.
#[derive(Clone, Debug)]
pub struct SyncRound {
    /// How far before each series' watermark to re-read.
    pub overlap: Duration,
    /// Upper time bound of this round (µs since the epoch; normally "now").
    pub horizon_us: i64,
}

pub(crate) fn selected<'a>(
    plan: &'a Plan,
    only_streams: &[String],
) -> Result<Vec<&'a StreamSpec>, EngineError> {
    for name in only_streams {
        if plan.stream(name).is_none() {
            let names: Vec<_> = plan.streams.iter().map(|s| s.name.as_str()).collect();
            return Err(tsmigrate_core::Error::Plan(format!(
                "--stream {name}: the plan has no such stream; its streams are: {}",
                names.join(", ")
            ))
            .into());
        }
    }
    Ok(plan
        .streams
        .iter()
        .filter(|s| only_streams.is_empty() || only_streams.contains(&s.name))
        .collect())
}

/// Microseconds since the epoch, now.
pub fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// How a stream's source is read: `base`, with partitions cut at multiples of the bucket
/// width for an aggregate stream (so no bucket is split between two partitions), and at
/// whole seconds for a pivot (so no wide row is).
pub fn read_options(spec: &StreamSpec, base: &ReadOptions) -> Result<ReadOptions, EngineError> {
    let mut read = base.clone();
    if spec.pivot.is_some() {
        read.align_seconds = Some(1);
    }
    if let Some(a) = &spec.aggregate {
        let ms = a.every_duration()?.as_millis().max(1);
        // The least multiple of the width that is whole seconds.
        let gcd = |mut x: u128, mut y: u128| {
            while y != 0 {
                (x, y) = (y, x % y);
            }
            x
        };
        let secs = ms / gcd(ms, 1000);
        read.align_seconds = Some(i64::try_from(secs).unwrap_or(i64::MAX));
    }
    Ok(read)
}

/// How a sync round writes a stream planned as `append`: rows of its overlap window were
/// copied already and are skipped — except for a pivot, whose wide rows in the window are
/// made again from all their values (a value that arrived late completes the row), so they
/// replace the rows written before.
pub(crate) fn sync_write(spec: &StreamSpec) -> WriteMode {
    if spec.pivot.is_some() {
        WriteMode::Upsert
    } else {
        WriteMode::Skip
    }
}

/// Now, as RFC 3339 text in UTC to the millisecond (as reports print times).
pub fn now_rfc3339() -> String {
    let ms = now_us() / 1000;
    tsmigrate_core::convert::value_to_string(tsmigrate_core::ValueRef::Timestamp(
        ms,
        tsmigrate_core::TimeUnit::Millis,
    ))
}
