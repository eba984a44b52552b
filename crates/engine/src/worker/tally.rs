//! What an attempt at a partition adds up while it moves — rows read, written, skipped,
//! rejected, its digest and watermarks, its rejects — added to the stream's counters when
//! the partition commits.

use tsmigrate_core::digest::Digest;
use tsmigrate_core::Partition;

use crate::options::now_us;
use crate::rejects::PartitionRejects;
use crate::series_rows::SeriesCounts;
use crate::stream::PreparedStream;
use crate::watermark::SeriesTracker;

/// Per-partition tallies, added to the stream's counters when the partition commits.
pub(super) struct Tally<'a> {
    /// The attempt's rejected rows, made durable just before the partition commits (none
    /// kept in a dry run, which writes nothing: a sample goes to the report instead).
    pub(super) rejects: Option<PartitionRejects<'a>>,
    pub(super) read: u64,
    pub(super) written: u64,
    pub(super) skipped: u64,
    pub(super) rejected: u64,
    pub(super) bytes: u64,
    /// Values an unpivot left out (no point).
    pub(super) unmatched: u64,
    /// Digest of the rows sent to the target.
    pub(super) digest: Digest,
    /// Newest time per series of the rows read.
    pub(super) tracker: Option<SeriesTracker>,
    /// Rows per series, for the summary.
    pub(super) series: SeriesCounts,
}

impl<'a> Tally<'a> {
    /// Nothing counted yet for an attempt at `part`.
    pub(super) fn new(s: &'a PreparedStream, part: &Partition, dry_run: bool) -> Tally<'a> {
        Tally {
            rejects: (!dry_run).then(|| s.rejects.partition(&part.id)),
            read: 0,
            written: 0,
            skipped: 0,
            rejected: 0,
            bytes: 0,
            unmatched: 0,
            digest: Digest::default(),
            // Watermarks stop at "now": a row stamped in the future must not hide the rows
            // that arrive before that time.
            tracker: s.info.series.as_ref().and_then(|si| {
                let cap = (now_us() / 1000).saturating_mul(si.ticks_per_second) / 1000;
                SeriesTracker::new(si, &s.info.schema, cap)
            }),
            series: SeriesCounts::default(),
        }
    }
}
