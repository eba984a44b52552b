//! The source and sink traits every connector implements.
//!
//! A [`Source`] lists a stream's schema, splits it into partitions and reads one partition as a
//! stream of columnar batches. A [`Sink`] prepares the target (creating the table when asked),
//! writes one partition atomically through a [`PartitionWriter`] and finishes the target.
//! The engine knows nothing else about a store: no wire format crosses these traits.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use async_trait::async_trait;

use crate::batch::{Batch, Field, Schema};
use crate::convert::RowError;
use crate::error::{Error, Result};
use crate::ledger::{Ledger, PartitionCommit};
use crate::plan::{LedgerOptions, LookupSpec, StreamSpec, WriteMode};
use crate::types::DataType;

/// Sending half of the bounded channel a source reads batches into.
pub type BatchTx = tokio::sync::mpsc::Sender<Batch>;

/// How a source should cut and batch its data.
#[derive(Clone, Debug)]
pub struct ReadOptions {
    /// Rows per batch.
    pub batch_rows: usize,
    /// Target rows per partition.
    pub partition_rows: u64,
    /// When set, a source that splits a series' time range across partitions cuts it only at
    /// multiples of this many seconds, so time buckets up to this size (aggregates) never
    /// straddle two partitions. `None`: the source's own choice.
    pub align_seconds: Option<i64>,
    /// For a sync round: the lowest time to read per series (absent: a full run).
    pub sync: Option<Arc<SyncFloors>>,
}

/// Lower time bounds of a sync round, per series, in the source's time units. A series
/// that is not listed is new and read from the stream's `since` (or its beginning).
#[derive(Clone, Debug, Default)]
pub struct SyncFloors {
    /// Series (JSON array of its key values, as in the ledger) → lowest time to read.
    pub series: HashMap<String, i64>,
}

impl SyncFloors {
    /// The lowest floor per value of the series' first key column (ThingsBoard: per entity).
    pub fn by_first_value(&self) -> BTreeMap<String, i64> {
        let mut out: BTreeMap<String, i64> = BTreeMap::new();
        for (series, floor) in &self.series {
            let first = serde_json::from_str::<Vec<serde_json::Value>>(series)
                .ok()
                .and_then(|v| v.into_iter().next())
                .map(|v| match v {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                });
            if let Some(first) = first {
                let e = out.entry(first).or_insert(*floor);
                *e = (*e).min(*floor);
            }
        }
        out
    }
}

/// Which columns of a source stream identify a time series and hold its time, so the engine
/// can keep per-series watermarks for incremental sync.
#[derive(Clone, Debug)]
pub struct SeriesInfo {
    /// Columns whose values together name a series (ThingsBoard: `entity_id`, `key`).
    pub columns: Vec<String>,
    /// Integer time column (ThingsBoard: `ts`, epoch milliseconds).
    pub time_column: String,
    /// Units of the time column per second (1000 for milliseconds).
    pub ticks_per_second: i64,
}

impl SeriesInfo {
    /// A time of the time column in µs since the epoch (`None` on overflow), truncated
    /// towards the past for units finer than µs.
    pub fn ticks_to_us(&self, t: i64) -> Option<i64> {
        let per_s = self.ticks_per_second.max(1);
        if per_s >= 1_000_000 {
            Some(t.div_euclid(per_s / 1_000_000))
        } else {
            t.checked_mul(1_000_000 / per_s)
        }
    }
}

/// What a source knows about one of its streams.
#[derive(Clone, Debug)]
pub struct StreamInfo {
    /// Columns the stream produces (before mapping).
    pub schema: Arc<Schema>,
    /// Columns identifying a row (used in rejects files and reports).
    pub key_columns: Vec<String>,
    /// Estimated number of rows after filters, when the source can tell cheaply.
    pub estimated_rows: Option<u64>,
    /// Facts worth showing in `check` (tables found, dictionary variant, …).
    pub notes: Vec<String>,
    /// Series and time columns, for streams of time series (`None` for records).
    pub series: Option<SeriesInfo>,
}

/// A unit of work and of atomicity: read together, written in one transaction.
#[derive(Clone, Debug, PartialEq)]
pub struct Partition {
    /// Stable identifier within the stream (the same plan and data give the same ids).
    pub id: String,
    /// Estimated rows, when known.
    pub estimated_rows: Option<u64>,
    /// Connector-defined description of what to read, serialisable for the ledger.
    pub spec: serde_json::Value,
}

/// A store rows are read from.
#[async_trait]
pub trait Source: Send + Sync {
    /// A one-line description for messages (connection string redacted).
    fn describe(&self) -> String;

    /// Reaches the store and reports what was found (version, tables, variants).
    async fn check(&self) -> Result<Vec<String>>;

    /// Schema, key columns and row estimate of the stream a plan stream reads.
    async fn stream_info(&self, stream: &StreamSpec) -> Result<StreamInfo>;

    /// Splits the stream into partitions of about `opts.partition_rows` rows.
    async fn partitions(&self, stream: &StreamSpec, opts: &ReadOptions) -> Result<Vec<Partition>>;

    /// Reads one partition, sending batches of at most `opts.batch_rows` rows to `out`.
    /// Returns when the partition is exhausted, or `Err(Cancelled)` when `out` was closed.
    async fn read(
        &self,
        stream: &StreamSpec,
        partition: &Partition,
        opts: &ReadOptions,
        out: BatchTx,
    ) -> Result<()>;

    /// The earliest and latest time of the stream's rows, in microseconds since the epoch,
    /// when the source can tell (`None` otherwise). Asked only when the target wants it
    /// ([`Sink::wants_time_extent`]), since it may cost a scan.
    async fn time_extent(&self, _stream: &StreamSpec) -> Result<Option<(i64, i64)>> {
        Ok(None)
    }

    /// When the data was taken, in µs since the epoch, for a source that is a snapshot (a
    /// backup file's creation time); `None` for a live store, whose data is current. A run
    /// records it as the time its streams are complete up to.
    async fn snapshot_time(&self) -> Result<Option<i64>> {
        Ok(None)
    }
}

/// A target column as the plan and the mapping describe it.
#[derive(Clone, Debug)]
pub struct TargetColumn {
    /// Column name.
    pub name: String,
    /// SQL type written in the plan, if any.
    pub declared: Option<String>,
    /// Type of the values the mapping produces for it (the declared type when given).
    pub dtype: DataType,
}

/// What a stream asks of its target.
#[derive(Clone, Debug)]
pub struct TargetRequest {
    /// Plan stream name.
    pub stream: String,
    /// Target table (possibly schema-qualified).
    pub table: String,
    /// True when the plan names the table (the stream's `table`); false when `table` is the
    /// stream's name by default, which a target with a table of its own (DynamoDB's
    /// `[target] table`) may replace.
    pub table_given: bool,
    /// Target columns the mapping gives one constant value for every row (`entityType =
    /// 'BAY'`), with that value as text: where streams share a table, they pick the stream's
    /// rows out of it.
    pub scope: Vec<(String, String)>,
    /// Create the table when missing.
    pub create: bool,
    /// The columns to write, in order.
    pub columns: Vec<TargetColumn>,
    /// How rows enter the table.
    pub write: WriteMode,
    /// Target columns identifying a row (needed by `skip` and `upsert`).
    pub key: Vec<String>,
    /// Refuse a table that already holds rows (an `append` into a table the ledger has not
    /// written yet).
    pub require_empty: bool,
    /// The source's estimate of the rows the stream reads, when it has one.
    pub estimated_rows: Option<u64>,
    /// Earliest and latest time of the stream's rows (µs since the epoch), when the sink
    /// asked for it ([`Sink::wants_time_extent`]) and the source could tell.
    pub time_extent: Option<(i64, i64)>,
}

/// Why a sink refuses an `append` into a table that holds rows its plan's ledger did not
/// write (`ctx` names the stream and table), with the choices the user has.
pub fn refuse_append(ctx: &str) -> String {
    format!(
        "{ctx}: the table already holds rows that this plan's ledger did not write, and the stream's write mode is `append`, \
         which would add to them (duplicating any that are the same). Choose in the stream: write = \"skip\" \
         (insert only rows whose key is new; needs `key`), write = \"upsert\" (overwrite rows with the same key), \
         or empty the table first"
    )
}

/// The column of an existing table that a stream's target column `wanted` is written to:
/// the one of that exact name, else the one equal to it ignoring ASCII case (as SQL folds
/// unquoted names); an error naming the table's columns when there is none.
pub fn existing_column<'a, T>(
    existing: &'a [T],
    name: impl Fn(&T) -> &str,
    wanted: &str,
    ctx: &str,
) -> Result<&'a T> {
    existing
        .iter()
        .find(|t| name(t) == wanted)
        .or_else(|| {
            existing
                .iter()
                .find(|t| name(t).eq_ignore_ascii_case(wanted))
        })
        .ok_or_else(|| {
            let names: Vec<&str> = existing.iter().map(&name).collect();
            Error::Plan(format!(
                "{ctx}: the table has no column `{wanted}`; its columns are: {}",
                names.join(", ")
            ))
        })
}

/// A target made ready for writing.
#[derive(Clone, Debug)]
pub struct PreparedTarget {
    /// Plan stream name.
    pub stream: String,
    /// Target table as the sink will address it.
    pub table: String,
    /// Columns to write, in request order, with the type the sink accepts for each;
    /// the engine converts mapped values to these types before writing.
    pub columns: Vec<Field>,
    /// The statement that created the table (or, in a dry run, would create it).
    pub created: Option<String>,
    /// Facts for `check` and dry runs (existing rows, indexes, …).
    pub notes: Vec<String>,
    /// How rows enter the table (the engine may switch `append` to `skip` for a sync round).
    pub write: WriteMode,
    /// Target columns identifying a row.
    pub key: Vec<String>,
    /// What each column can hold beyond its type, in `columns` order (empty: no limits). The
    /// engine applies them to every row before writing it, and to the source side of `verify`.
    pub limits: Vec<crate::limits::ColumnLimits>,
}

/// What committing a partition did.
#[derive(Clone, Copy, Debug, Default)]
pub struct CommitInfo {
    /// Rows now stored (inserted, or inserted and updated for `upsert`).
    pub written: u64,
    /// Rows not stored because their key was already there (`skip`).
    pub skipped: u64,
    /// True when the ledger entry was recorded in the same transaction.
    pub recorded: bool,
}

/// Result of writing one batch.
#[derive(Clone, Debug, Default)]
pub struct WriteOutcome {
    /// Bytes sent to the store.
    pub bytes: u64,
    /// Rows the sink could not store (row indexes of the written batch); they were not written.
    pub rejected: Vec<RowError>,
}

/// A store rows are written to.
#[async_trait]
pub trait Sink: Send + Sync {
    /// A one-line description for messages (connection string redacted).
    fn describe(&self) -> String;

    /// Reaches the store and reports what was found.
    async fn check(&self) -> Result<Vec<String>>;

    /// Checks (and unless `dry_run`, creates) the target table; returns the accepted types.
    async fn prepare(&self, request: &TargetRequest, dry_run: bool) -> Result<PreparedTarget>;

    /// Starts writing one partition atomically.
    async fn begin(
        &self,
        target: &PreparedTarget,
        partition: &Partition,
    ) -> Result<Box<dyn PartitionWriter>>;

    /// Starts writing one partition atomically, isolating the rows the store refuses: a row
    /// that fails is rejected ([`WriteOutcome::rejected`]) and the others written. Asked after
    /// [`Sink::begin`]'s writer failed with [`Error::RowRefused`]; slower, so not the first
    /// try. The default is [`Sink::begin`] (a store that never refuses a whole partition for
    /// one row).
    async fn begin_isolating(
        &self,
        target: &PreparedTarget,
        partition: &Partition,
    ) -> Result<Box<dyn PartitionWriter>> {
        self.begin(target, partition).await
    }

    /// Work after every partition of a stream is written (indexes, statistics, compression);
    /// what it did goes into the run's report.
    async fn finish(&self, target: &PreparedTarget) -> Result<FinishReport>;

    /// Work on the target before any stream is prepared (`phase = Before`: setup SQL that
    /// may create the tables) or after every stream finished (`After`), returning what was
    /// done (or, when `dry_run`, what would be) for the report.
    async fn setup(&self, _phase: SetupPhase, _dry_run: bool) -> Result<Vec<String>> {
        Ok(Vec::new())
    }

    /// True when preparing the stream's target would use the source's time extent (a
    /// TimescaleDB hypertable whose chunk interval is derived from the row rate, or whose
    /// retention period is compared with the oldest row).
    fn wants_time_extent(&self, _request: &TargetRequest) -> bool {
        false
    }

    /// The ledger this target keeps for plan `plan_id` (in its own database when it is
    /// transactional), or `None` when the target keeps none.
    fn ledger(&self, _plan_id: &str, _opts: &LedgerOptions) -> Result<Option<Arc<dyn Ledger>>> {
        Ok(None)
    }

    /// A reader of the tables this sink writes, so `verify` can compare them with the source;
    /// `None` when the store cannot be read back.
    fn reader(&self) -> Option<Arc<dyn TableReader>> {
        None
    }

    /// Rows of a lookup table of the target ([`LookupSpec`]): two columns, the `match`
    /// column as text and the `value` column in its own type. `names: None` reads every row;
    /// `Some` only those rows whose match is one of `names`, after inserting the missing ones
    /// when `create` (their value from the column's default). Asked with `Some(&[])` to learn
    /// the value's type and whether the table is there.
    async fn lookup(
        &self,
        spec: &LookupSpec,
        _names: Option<&[String]>,
        _create: bool,
    ) -> Result<Batch> {
        Err(Error::Unsupported(format!(
            "this target ({}) cannot look values up in a table (lookup table {})",
            self.describe(),
            spec.table
        )))
    }
}

/// When [`Sink::setup`] runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetupPhase {
    /// Before any stream is prepared.
    Before,
    /// After every stream was written and finished.
    After,
}

impl SetupPhase {
    /// The name used in plans and ledgers (`before`, `after`).
    pub fn name(self) -> &'static str {
        match self {
            SetupPhase::Before => "before",
            SetupPhase::After => "after",
        }
    }
}

/// What [`Sink::finish`] did to a stream's target.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FinishReport {
    /// Facts for the summary.
    pub notes: Vec<String>,
    /// Sizes of a compressed table (TimescaleDB columnstore), when the target compresses.
    pub compression: Option<CompressionSizes>,
}

/// Size of a table's compressed part before and after compression.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct CompressionSizes {
    /// The table (hypertable) these sizes are of.
    pub table: String,
    /// Chunks compressed, of `chunks_total`.
    pub chunks_compressed: u64,
    /// Chunks of the table.
    pub chunks_total: u64,
    /// Bytes of the compressed chunks before compression (table, indexes, TOAST).
    pub bytes_before: u64,
    /// Bytes of the same chunks after compression.
    pub bytes_after: u64,
}

impl CompressionSizes {
    /// Share of the bytes compression saved (0.0 to 1.0; 0 when nothing was compressed).
    pub fn saved(&self) -> f64 {
        if self.bytes_before == 0 {
            0.0
        } else {
            1.0 - self.bytes_after as f64 / self.bytes_before as f64
        }
    }
}

/// Which rows of a target table to read back, and which columns.
#[derive(Clone, Debug)]
pub struct TableScan {
    /// Plan stream (for messages).
    pub stream: String,
    /// Target table, as the prepared target names it.
    pub table: String,
    /// Columns to read, in this order. The reader delivers each in the type the table holds
    /// it in (normally the prepared target's type, given here); the caller converts if not.
    pub columns: Vec<Field>,
    /// Only rows whose time column lies in the range (absent: every row).
    pub range: Option<ScanRange>,
    /// Only rows whose column holds this value (as text): the stream's constant columns
    /// ([`TargetRequest::scope`]). A reader of a table that belongs to one stream may ignore
    /// it; a reader of a table that several streams share (DynamoDB) must apply it.
    pub scope: Vec<(String, String)>,
}

/// A half-open range `[lo, hi)` of a time column, in the column's own units (ticks of a
/// timestamp column's [`crate::TimeUnit`], or the values of an integer column).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScanRange {
    /// The time column (one of the scan's columns).
    pub column: String,
    /// Inclusive lower bound.
    pub lo: Option<i64>,
    /// Exclusive upper bound.
    pub hi: Option<i64>,
}

impl ScanRange {
    /// The range of time column `column` (`per_second` ticks per second) a stream reads:
    /// `filter.since`/`until`, raised to `floor` for a sync round. `None` when every row is
    /// read; an empty range (`lo = i64::MAX`, `hi = i64::MIN`) when no value can match.
    pub fn of_stream(
        stream: &StreamSpec,
        column: &str,
        per_second: i64,
        floor: Option<i64>,
    ) -> Result<Option<ScanRange>> {
        let since = stream
            .filter
            .since_us()?
            .map(|us| bound_ticks(us, per_second));
        let lo = since.max(floor.map(i128::from));
        let hi = stream
            .filter
            .until_us()?
            .map(|us| bound_ticks(us, per_second));
        let (min, max) = (i128::from(i64::MIN), i128::from(i64::MAX));
        if lo.is_some_and(|l| l > max) || hi.is_some_and(|h| h <= min) {
            return Ok(Some(ScanRange {
                column: column.to_string(),
                lo: Some(i64::MAX),
                hi: Some(i64::MIN),
            }));
        }
        let lo = lo.filter(|l| *l > min).map(|l| l as i64);
        let hi = hi.filter(|h| *h <= max).map(|h| h as i64);
        Ok((lo.is_some() || hi.is_some()).then(|| ScanRange {
            column: column.to_string(),
            lo,
            hi,
        }))
    }

    /// True when `v` lies in the range.
    pub fn contains(&self, v: i64) -> bool {
        self.lo.is_none_or(|lo| v >= lo) && self.hi.is_none_or(|hi| v < hi)
    }
}

/// Refuses the filters a table source (PostgreSQL table, dump table) cannot apply:
/// `since`/`until` without a time column (`[source.tables.<table>] time`), and `devices`,
/// `keys`, `entity_types` and `limit`. `source` names the source kind in the message,
/// `advice` (possibly empty) follows it.
pub fn check_table_filters(
    stream: &StreamSpec,
    ctx: &str,
    source: &str,
    table: &str,
    has_time: bool,
    advice: &str,
) -> Result<()> {
    let f = &stream.filter;
    if !has_time && (f.since.is_some() || f.until.is_some()) {
        return Err(Error::Plan(format!(
            "{ctx}: filter.since/until need the table's time column; set [source.tables.{table}] time = \"…\""
        )));
    }
    if !f.devices.is_empty()
        || !f.keys.is_empty()
        || !f.entity_types.is_empty()
        || stream.limit.is_some()
    {
        return Err(Error::Unsupported(format!(
            "{ctx}: a {source} source supports filter.since and filter.until; not devices, keys, entity_types or limit{advice}"
        )));
    }
    Ok(())
}

/// `us` µs since the epoch in ticks of `per_second` per second, rounded up: for integer
/// ticks, `t >= us` ⇔ `t >= bound` and `t < us` ⇔ `t < bound`.
pub fn bound_ticks(us: i64, per_second: i64) -> i128 {
    let scaled = i128::from(us) * i128::from(per_second);
    scaled.div_euclid(1_000_000) + i128::from(scaled.rem_euclid(1_000_000) != 0)
}

/// The lowest floor over all series of a sync round (`None` when no series has one yet: the
/// round reads from `filter.since`).
pub fn lowest_floor(sync: &SyncFloors) -> Option<i64> {
    sync.series.values().min().copied()
}

/// Reads a target table back, in partitions that can be read in parallel. This is the one
/// thing a sink implements for `verify` to work with it: verification reads the source
/// through its [`Source`] and the target through this trait, and compares the rows itself.
#[async_trait]
pub trait TableReader: Send + Sync {
    /// A one-line description for messages (connection string redacted).
    fn describe(&self) -> String;

    /// Splits the scan into partitions of about `partition_rows` rows. Together they cover
    /// every row of the table (including rows added after they were planned, where the store
    /// allows), each row exactly once.
    async fn partitions(&self, scan: &TableScan, partition_rows: u64) -> Result<Vec<Partition>>;

    /// Reads one partition, sending batches of at most `batch_rows` rows (columns as in
    /// `scan.columns`) to `out`. Returns `Err(Cancelled)` when `out` was closed.
    async fn read(
        &self,
        scan: &TableScan,
        partition: &Partition,
        batch_rows: usize,
        out: BatchTx,
    ) -> Result<()>;

    /// The rows (all `scan.columns`, any order) whose key equals one of the rows of `keys`,
    /// a batch whose columns are key columns of the table (by name). A key with a NULL
    /// matches nothing. Used for spot checks, with a few hundred keys at a time.
    async fn lookup(&self, scan: &TableScan, keys: &Batch) -> Result<Batch>;
}

/// A row the target refused after [`PartitionWriter::write`] returned (a store that checks
/// rows as it stores them, off the caller's path): the row as written, and why.
#[derive(Clone, Debug)]
pub struct LateReject {
    /// The row (one row, the prepared target's columns).
    pub row: Batch,
    /// The column at fault, when the store says.
    pub column: Option<String>,
    /// The store's reason.
    pub reason: String,
}

/// Writes the batches of one partition; nothing is visible until [`PartitionWriter::commit`].
#[async_trait]
pub trait PartitionWriter: Send {
    /// Writes one batch whose columns match the prepared target's columns.
    async fn write(&mut self, batch: &Batch) -> Result<WriteOutcome>;

    /// The rows the store refused since the last call, after `write` returned (none for a
    /// store that refuses rows in `write`). Asked before `commit`, so the rejects are made
    /// durable before the partition is.
    async fn take_rejects(&mut self) -> Result<Vec<LateReject>> {
        Ok(Vec::new())
    }

    /// Makes everything written visible, atomically — together with the partition's ledger
    /// entry when `ledger` is given and the sink can record it in the same transaction.
    async fn commit(self: Box<Self>, ledger: Option<&PartitionCommit>) -> Result<CommitInfo>;

    /// Discards everything written.
    async fn abort(self: Box<Self>) -> Result<()>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_round_up_to_whole_ticks() {
        assert_eq!(bound_ticks(1_500_000, 1), 2);
        assert_eq!(bound_ticks(2_000_000, 1), 2);
        assert_eq!(bound_ticks(-1_500_000, 1), -1);
        assert_eq!(bound_ticks(1_234, 1_000), 2);
        assert_eq!(bound_ticks(7, 1_000_000), 7);
        assert_eq!(
            bound_ticks(i64::MAX, 1_000_000_000),
            i128::from(i64::MAX) * 1000
        );
    }
}
