//! Live per-stream counters, shared between the workers and whoever shows progress.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Counters of one stream, updated by workers as they go.
#[derive(Debug, Default)]
pub struct StreamCounters {
    /// Estimated rows to read (0 = unknown).
    pub estimated_rows: AtomicU64,
    /// Rows read from the source so far (including partitions still in flight).
    pub rows_read: AtomicU64,
    /// Rows committed to the target.
    pub rows_written: AtomicU64,
    /// Rows rejected (written to the rejects file).
    pub rows_rejected: AtomicU64,
    /// Rows of partitions that were rolled back (failed or interrupted).
    pub rows_rolled_back: AtomicU64,
    /// Rows not stored because their key was already in the target (`skip`).
    pub rows_skipped: AtomicU64,
    /// Values of an unpivoted stream left out because their column has no point
    /// (`unmatched = "skip"`).
    pub values_unmatched: AtomicU64,
    /// Partition attempts retried after a transient error.
    pub retries: AtomicU64,
    /// Bytes sent to the target (committed partitions).
    pub bytes_written: AtomicU64,
    /// Partitions committed.
    pub partitions_done: AtomicU64,
    /// Partitions planned.
    pub partitions_total: AtomicU64,
    times: Mutex<(Option<Instant>, Option<Instant>)>,
}

impl StreamCounters {
    /// Reads a counter.
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }

    /// Adds to a counter.
    pub fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    /// Subtracts from a counter (saturating at zero).
    pub fn sub(c: &AtomicU64, n: u64) {
        let _ = c.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
            Some(v.saturating_sub(n))
        });
    }

    /// Marks the stream as started (first call wins).
    pub fn mark_started(&self) {
        if let Ok(mut t) = self.times.lock() {
            t.0.get_or_insert_with(Instant::now);
        }
    }

    /// Marks the stream as finished.
    pub fn mark_finished(&self) {
        if let Ok(mut t) = self.times.lock() {
            t.1 = Some(Instant::now());
        }
    }

    /// Time spent so far (or in all, once finished).
    pub fn elapsed(&self) -> Duration {
        match self.times.lock() {
            Ok(t) => match (t.0, t.1) {
                (Some(a), Some(b)) => b.duration_since(a),
                (Some(a), None) => a.elapsed(),
                _ => Duration::ZERO,
            },
            Err(_) => Duration::ZERO,
        }
    }

    /// True once the stream finished.
    pub fn is_finished(&self) -> bool {
        self.times.lock().map(|t| t.1.is_some()).unwrap_or(false)
    }
}
