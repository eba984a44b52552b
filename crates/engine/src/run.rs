//! Running a plan: prepare every stream (compile mappings, check and create targets, plan
//! partitions), then move partitions through `read → map → convert → write` with `jobs`
//! workers, committing each partition atomically.

use crate::retry::RetryPolicy;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use thiserror::Error;
use tokio::sync::mpsc;
use tsmigrate_core::convert::{convert, value_to_string, ConvertCtx};
use tsmigrate_core::digest::Digest;
use tsmigrate_core::mapping::Mapping;
use tsmigrate_core::{
    Batch, ColumnLimits, FinishReport, Ledger, LedgerStream, Lossy, LossyCounts, Partition,
    PartitionCommit, PartitionState, PartitionWriter, Plan, PreparedTarget, ReadOptions, RowErrors,
    Schema, Sink, Source, StreamInfo, StreamSpec, SyncFloors, TargetColumn, TargetRequest,
    WriteMode,
};

use crate::aggregate::{Aggregate, Buckets};
use crate::cancel::Cancel;
use crate::counters::StreamCounters;
use crate::lookup::Lookups;
use crate::pivot::{Groups, Pivot};
use crate::rejects::{PartitionRejects, RejectsFile};
use crate::report::{RunReport, StreamReport};
use crate::series_rows::SeriesCounts;
use crate::unpivot::Unpivot;
use crate::watermark::SeriesTracker;

/// Prefix of the ids of partitions planned by a sync round (`sync-<run id>/…`).
pub const SYNC_PREFIX: &str = "sync-";

/// Batches buffered between a partition's reader and its writer: memory stays bounded at
/// `jobs × (CHANNEL_BATCHES + 2) × batch size` whatever the data size.
const CHANNEL_BATCHES: usize = 4;

/// Errors that stop a run.
#[derive(Debug, Error)]
pub enum EngineError {
    /// A plan, mapping, connection or store error.
    #[error(transparent)]
    Core(#[from] tsmigrate_core::Error),
    /// More rows were rejected than `--max-rejects` allows.
    #[error("{0}")]
    TooManyRejects(Box<RejectStop>),
    /// Ctrl-C.
    #[error("interrupted: partitions in flight were rolled back; committed partitions stay in the target")]
    Interrupted,
}

/// The rejected row that made the run stop.
#[derive(Debug, Error)]
#[error(
    "stream `{stream}`, partition {partition}: row ({key}) rejected{column}: {reason}\n\
     {total} row(s) rejected, more than --max-rejects {max}: the run stopped and the partitions in flight were rolled back. \
     Rejected rows are listed in {file}. Fix the mapping (or allow the loss in the plan), or raise --max-rejects to go on past bad rows."
)]
pub struct RejectStop {
    /// Stream.
    pub stream: String,
    /// Partition.
    pub partition: String,
    /// The row's key.
    pub key: String,
    /// `, column `x`` or empty.
    pub column: String,
    /// Why.
    pub reason: String,
    /// Rejected so far.
    pub total: u64,
    /// The limit.
    pub max: u64,
    /// Rejects file.
    pub file: String,
}

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
}

/// A sync round: what is new since the last run or sync.
#[derive(Clone, Debug)]
pub struct SyncRound {
    /// How far before each series' watermark to re-read.
    pub overlap: Duration,
    /// Upper time bound of this round (µs since the epoch; normally "now").
    pub horizon_us: i64,
}

/// A stream ready to run: its mapping compiled, its target prepared, its partitions planned.
pub struct PreparedStream {
    /// The plan stream (with `--limit` applied).
    pub spec: StreamSpec,
    /// What the source said about it.
    pub info: StreamInfo,
    /// The compiled mapping.
    pub mapping: Mapping,
    /// The stream's lookup columns, their tables read from the target.
    pub lookups: Option<Arc<Lookups>>,
    /// The wide → narrow reshaping applied before the mapping, if the stream has one.
    pub unpivot: Option<Unpivot>,
    /// The narrow → wide reshaping applied (per partition) before the mapping, if any.
    pub pivot: Option<Pivot>,
    /// The bucketed aggregation applied after the mapping, for an aggregate stream.
    pub aggregate: Option<Aggregate>,
    /// The prepared target (its `write` is the mode this run uses).
    pub target: PreparedTarget,
    /// Partitions the ledger already had as done (skipped by this run).
    pub partitions_skipped: u64,
    /// Partitions a previous run started or failed, redone by this run.
    pub partitions_redone: u64,
    /// Rows of the skipped partitions.
    pub rows_before: u64,
    /// The target's column types.
    pub target_schema: Arc<Schema>,
    /// Partitions to process.
    pub partitions: Vec<Partition>,
    /// Live counters.
    pub counters: Arc<StreamCounters>,
    /// The column rows are counted by for the summary (the first series column), if any.
    pub series_column: Option<String>,
    /// Rows per series of the committed partitions.
    pub series_rows: Mutex<SeriesCounts>,
    rejects: RejectsFile,
    /// The stream's rejects file once put together (when it holds a row).
    rejects_file: Mutex<Option<PathBuf>>,
    /// Partitions this run committed, in order.
    committed: Mutex<Vec<String>>,
    lossy_kinds: Vec<Lossy>,
    lossy_total: Mutex<LossyCounts>,
    preview: Mutex<Vec<Vec<String>>>,
    sample_rejects: Mutex<Vec<String>>,
    /// What the sink's `finish` did (compression sizes, notes).
    finished: Mutex<FinishReport>,
}

impl PreparedStream {
    /// Maps a source batch and converts it to the target's types ([`map_to_target`]), after
    /// asking `sink` for the lookup values the stream has not seen yet.
    pub async fn to_target(
        &self,
        sink: &dyn Sink,
        batch: &Batch,
        errors: &mut RowErrors,
        lossy: &mut LossyCounts,
    ) -> Result<Batch, EngineError> {
        let Some(lookups) = &self.lookups else {
            return map_to_target(
                &self.mapping,
                None,
                (&self.target_schema, &self.target.limits),
                &self.spec.name,
                batch,
                errors,
                lossy,
            );
        };
        batch.reject_source_errors(errors);
        let mapped = self.mapping.apply(batch, errors, lossy)?;
        lookups.resolve(&mapped, errors, sink).await?;
        let mapped = lookups.apply(&mapped, errors)?;
        to_target_types(
            &mapped,
            (&self.target_schema, &self.target.limits),
            &self.spec.name,
            errors,
            lossy,
        )
    }

    /// The allowed lossy conversions of the stream, as a fresh counter set.
    pub fn lossy_counts(&self) -> LossyCounts {
        LossyCounts::allowing(&self.lossy_kinds)
    }
}

/// The target's column types and what each column can hold beyond its type.
pub type TargetTypes<'a> = (&'a Arc<Schema>, &'a [ColumnLimits]);

/// Maps a source batch and converts every column to the type the target holds it in, within
/// the column's limits (`target`): the rows as the target will store them. Rows that cannot
/// be mapped or converted stay in the batch (with placeholder values) and are listed in
/// `errors`. `run` writes what this returns and `verify` compares it, so both see the same
/// rows.
pub fn map_to_target(
    mapping: &Mapping,
    lookups: Option<&Lookups>,
    target: TargetTypes<'_>,
    stream: &str,
    batch: &Batch,
    errors: &mut RowErrors,
    lossy: &mut LossyCounts,
) -> Result<Batch, EngineError> {
    batch.reject_source_errors(errors);
    let mapped = mapping.apply(batch, errors, lossy)?;
    let mapped = match lookups {
        Some(l) => l.apply(&mapped, errors)?,
        None => mapped,
    };
    to_target_types(&mapped, target, stream, errors, lossy)
}

/// The stream as its mapping is compiled: a lookup column's `type` is the type of the value
/// looked up (the id), not of what the mapping computes (the name), so it is left out there.
pub fn lookup_mapping_spec(spec: &StreamSpec) -> StreamSpec {
    let mut out = spec.clone();
    for c in &mut out.columns {
        if spec.lookup.contains_key(&c.name) {
            c.sql_type = None;
        }
    }
    out
}

/// Converts every column of `mapped` (mapped rows, or an aggregate's rows) to the type the
/// target holds it in, within the column's limits; rows that cannot be converted, or do not
/// fit, are listed in `errors`.
pub fn to_target_types(
    mapped: &Batch,
    (target_schema, limits): TargetTypes<'_>,
    stream: &str,
    errors: &mut RowErrors,
    lossy: &mut LossyCounts,
) -> Result<Batch, EngineError> {
    let mut cols = Vec::with_capacity(target_schema.fields.len());
    for (i, (field, col)) in target_schema.fields.iter().zip(&mapped.columns).enumerate() {
        let mut ctx = ConvertCtx {
            errors: &mut *errors,
            lossy: &mut *lossy,
            column: Some(&field.name),
        };
        let col = if col.dtype() == field.dtype {
            col.clone()
        } else {
            Arc::new(convert(col, field.dtype, &mut ctx))
        };
        match limits.get(i).filter(|l| !l.is_none()) {
            Some(l) => cols.push(Arc::new(tsmigrate_core::limits::apply(&col, l, &mut ctx))),
            None => cols.push(col),
        }
    }
    Batch::new(target_schema.clone(), cols).ok_or_else(|| {
        tsmigrate_core::Error::Plan(format!(
            "internal error: stream `{stream}`: mapped columns do not match the target's"
        ))
        .into()
    })
}

/// What a stream asks of its target table: the columns it writes (`rows`: the mapping's, or
/// an aggregate's) with the plan's declared types, the write mode and key.
pub fn target_request(
    spec: &StreamSpec,
    rows: &Schema,
    write: WriteMode,
    key: Vec<String>,
    require_empty: bool,
) -> TargetRequest {
    let declared = |name: &str| {
        if spec.aggregate.is_some() {
            // An aggregate's columns take the types of the values they hold.
            return None;
        }
        spec.columns
            .iter()
            .find(|c| c.name == name)
            .and_then(|c| c.sql_type.clone())
    };
    TargetRequest {
        stream: spec.name.clone(),
        table: spec.target_table().to_string(),
        table_given: spec.table.is_some(),
        scope: Vec::new(),
        create: spec.create,
        columns: rows
            .fields
            .iter()
            .map(|f| TargetColumn {
                name: f.name.clone(),
                declared: declared(&f.name),
                dtype: f.dtype,
            })
            .collect(),
        write,
        key,
        require_empty,
        estimated_rows: None,
        time_extent: None,
    }
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

/// The target columns a stream's source key is copied into, when the mapping copies each
/// source key column unchanged (or as `from_epoch_*(col)` / `col::type`) into one column.
pub fn infer_key(source_key: &[String], mapping: &Mapping) -> Option<Vec<String>> {
    if source_key.is_empty() {
        return None;
    }
    if mapping.is_identity() {
        return Some(source_key.to_vec());
    }
    let exprs = mapping.expression_sources();
    let copies = |sql: &str, col: &str| {
        let n: String = sql
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect::<String>()
            .to_ascii_lowercase();
        let c = col.to_ascii_lowercase();
        n == c
            || n == format!("\"{c}\"")
            || n.strip_prefix(&format!("{c}::")).is_some_and(|t| {
                !t.is_empty()
                    && t.chars()
                        .all(|ch| ch.is_ascii_alphanumeric() || "_()".contains(ch))
            })
            || [
                "from_epoch_s",
                "from_epoch_ms",
                "from_epoch_us",
                "from_epoch_ns",
            ]
            .iter()
            .any(|f| n == format!("{f}({c})"))
    };
    source_key
        .iter()
        .map(|k| {
            exprs
                .iter()
                .find(|(_, sql)| copies(sql, k))
                .map(|(name, _)| name.to_string())
        })
        .collect()
}

/// Microseconds since the epoch, now.
pub fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// What the ledger says about a stream before this run starts.
struct Resume {
    state: Option<LedgerStream>,
}

impl Resume {
    fn done(&self) -> impl Iterator<Item = &tsmigrate_core::LedgerPartition> {
        self.state
            .iter()
            .flat_map(|s| s.partitions.iter())
            .filter(|p| p.state == PartitionState::Done)
    }
}

/// Prepares every selected stream. Nothing is written until every mapping compiled and every
/// target checked; then missing tables are created (unless `dry_run`), and each stream's
/// partitions are taken from the ledger (resuming) or planned and recorded in it.
pub async fn prepare(
    plan: &Plan,
    source: &dyn Source,
    sink: &dyn Sink,
    opts: &EngineOptions,
) -> Result<Vec<Arc<PreparedStream>>, EngineError> {
    let mut staged = Vec::new();
    for spec in selected(plan, &opts.only_streams)? {
        let mut spec = spec.clone();
        if opts.limit.is_some() {
            spec.limit = opts.limit;
        }
        let info = source.stream_info(&spec).await?;
        let (info, unpivot, pivot) = reshape(&spec, info, source, &opts.read).await?;
        let mapping = Mapping::compile(&lookup_mapping_spec(&spec), &info.schema)?;
        let aggregate = Aggregate::compile(&spec, mapping.output_schema())?;
        if let Some(a) = &aggregate {
            a.check_partitioning(&info, &mapping)?;
        }
        let lookups = Lookups::load(&spec, sink).await?;
        if aggregate.is_some() && opts.sync.is_some() {
            return Err(tsmigrate_core::Error::Plan(format!(
                "stream `{}` is an aggregate, and sync cannot recompute buckets that new rows fall into yet; \
                 sync the other streams with --stream, and recompute the aggregates with `tsmigrate run --restart --stream {}` \
                 after rolling back or emptying its table",
                spec.name, spec.name
            ))
            .into());
        }
        let resume = Resume {
            state: match &opts.ledger {
                Some(l) => l.stream(&spec.name).await?,
                None => None,
            },
        };
        let fingerprint = spec.fingerprint();
        if let Some(st) = &resume.state {
            if st.fingerprint != fingerprint && !opts.restart {
                let done = resume.done().count();
                return Err(tsmigrate_core::Error::Plan(format!(
                    "stream `{}`: the plan's definition of this stream changed since the ledger planned it on {} ({done} of {} partitions done). \
                     Resuming would mix rows written under two definitions. Restore the plan, or run `tsmigrate run --restart` to plan it again from scratch \
                     (rows already written stay in {}: roll them back first with `tsmigrate rollback`, or empty the table)",
                    spec.name, st.planned_at, st.partitions.len(), st.table
                ))
                .into());
            }
        }
        if opts.sync.is_some() {
            let pending: Vec<&str> = resume
                .state
                .iter()
                .flat_map(|s| s.partitions.iter())
                .filter(|p| {
                    p.state != PartitionState::Done && !p.partition.id.starts_with(SYNC_PREFIX)
                })
                .map(|p| p.partition.id.as_str())
                .collect();
            if resume.state.is_none() || !pending.is_empty() {
                return Err(tsmigrate_core::Error::Plan(format!(
                    "stream `{}`: sync copies what is new since a complete run, and {}; finish it with `tsmigrate run` first",
                    spec.name,
                    if resume.state.is_none() {
                        "the stream was never run".to_string()
                    } else {
                        format!("{} partition(s) of its run are not done yet", pending.len())
                    }
                ))
                .into());
            }
        }
        let key = match (&aggregate, spec.key.is_empty()) {
            (_, false) => spec.key.clone(),
            (Some(a), true) => a.key(),
            (None, true) => infer_key(&info.key_columns, &mapping).unwrap_or_default(),
        };
        let rows = match (&aggregate, &lookups) {
            (Some(a), _) => a.output_schema().clone(),
            (None, Some(l)) => Arc::new(l.target_schema(mapping.output_schema())),
            (None, None) => mapping.output_schema().clone(),
        };
        // A sync re-reads an overlap window: rows already copied must be skipped, not appended.
        let write = match (spec.write, &opts.sync) {
            (WriteMode::Append, Some(_)) => sync_write(&spec),
            (w, _) => w,
        };
        if write != WriteMode::Append && key.is_empty() {
            return Err(tsmigrate_core::Error::Plan(format!(
                "stream `{}`: {} needs the stream's key (the target columns identifying a row), and it cannot be inferred from the mapping; \
                 set key = [\"…\"] in the stream",
                spec.name,
                if opts.sync.is_some() && spec.write == WriteMode::Append {
                    "sync re-reads an overlap window and skips rows already copied, which".to_string()
                } else {
                    format!("write = \"{}\"", write.name())
                }
            ))
            .into());
        }
        let nothing_written_yet = opts.restart || resume.done().next().is_none();
        let mut request = target_request(
            &spec,
            &rows,
            write,
            key,
            write == WriteMode::Append && nothing_written_yet,
        );
        request.estimated_rows = info.estimated_rows;
        if aggregate.is_none() && lookups.is_none() {
            request.scope = mapping.constant_columns();
        }
        if sink.wants_time_extent(&request) {
            request.time_extent = source.time_extent(&spec).await?;
        }
        // Check every target before creating any.
        let checked = sink.prepare(&request, true).await?;
        check_declared_types(&spec, &request, &checked)?;
        if let (Some(_), Some(p)) = (&checked.created, resume.done().next()) {
            if !opts.restart && !opts.dry_run {
                return Err(tsmigrate_core::Error::Plan(format!(
                    "stream `{}`: the ledger records committed partitions (such as {}, by run {}) in {}, but that table does not exist any more. \
                     To migrate the stream again from scratch, run with --restart",
                    spec.name,
                    p.partition.id,
                    p.run_id.unwrap_or(0),
                    checked.table
                ))
                .into());
            }
        }
        staged.push((
            spec,
            info,
            (mapping, lookups),
            (unpivot, pivot, aggregate),
            request,
            resume,
            fingerprint,
        ));
    }
    let mut out = Vec::new();
    for (
        spec,
        info,
        (mapping, lookups),
        (unpivot, pivot, aggregate),
        request,
        resume,
        fingerprint,
    ) in staged
    {
        let target = sink.prepare(&request, opts.dry_run).await?;
        if let (Some(l), false, WriteMode::Append) = (&opts.ledger, opts.dry_run, spec.write) {
            l.claim_table(&target.table, &spec.name).await?;
        }
        let target_schema = Arc::new(Schema::new(target.columns.clone()));
        let (partitions, skipped, redone, rows_before) =
            plan_partitions(&spec, &info, &target, &resume, &fingerprint, source, opts).await?;
        let counters = Arc::new(StreamCounters::default());
        StreamCounters::add(&counters.partitions_total, partitions.len() as u64);
        let est: u64 = partitions.iter().filter_map(|p| p.estimated_rows).sum();
        StreamCounters::add(&counters.estimated_rows, est);
        let rejects = RejectsFile::new(&opts.rejects_dir, &spec.name, info.key_columns.clone());
        let lossy_kinds = spec.lossy_kinds()?;
        // An aggregate reads the rows its raw stream counts already.
        let series_column = info
            .series
            .as_ref()
            .filter(|_| spec.aggregate.is_none())
            .and_then(|si| si.columns.first())
            .filter(|c| info.schema.index_of(c).is_some())
            .cloned();
        out.push(Arc::new(PreparedStream {
            lossy_total: Mutex::new(LossyCounts::allowing(&lossy_kinds)),
            lossy_kinds,
            spec,
            info,
            mapping,
            lookups,
            unpivot,
            pivot,
            aggregate,
            target,
            partitions_skipped: skipped,
            partitions_redone: redone,
            rows_before,
            target_schema,
            partitions,
            counters,
            series_column,
            series_rows: Mutex::new(SeriesCounts::default()),
            rejects,
            preview: Mutex::new(Vec::new()),
            sample_rejects: Mutex::new(Vec::new()),
            rejects_file: Mutex::new(None),
            committed: Mutex::new(Vec::new()),
            finished: Mutex::new(FinishReport::default()),
        }));
    }
    Ok(out)
}

/// Refuses a column whose `type` in the plan differs from the existing table's column in a way
/// a value cannot always cross exactly (the plan says `text`, the table holds `integer`):
/// `check` fails where `run` would reject rows, instead of passing.
fn check_declared_types(
    spec: &StreamSpec,
    request: &TargetRequest,
    target: &PreparedTarget,
) -> Result<(), EngineError> {
    use tsmigrate_core::DataType as T;
    if target.created.is_some() {
        return Ok(());
    }
    for (c, f) in request.columns.iter().zip(&target.columns) {
        let Some(declared) = c
            .declared
            .as_deref()
            .and_then(tsmigrate_core::DataType::parse_sql)
        else {
            continue;
        };
        let exact = declared == f.dtype
            || matches!(
                (declared, f.dtype),
                (T::Int16, T::Int32 | T::Int64 | T::Numeric | T::Text)
                    | (T::Int32, T::Int64 | T::Numeric | T::Text)
                    | (T::Int64, T::Numeric | T::Text)
                    | (T::Float32, T::Float64 | T::Text)
                    | (
                        T::Float64 | T::Numeric | T::Bool | T::Uuid | T::Json,
                        T::Text
                    )
            );
        if !exact {
            return Err(tsmigrate_core::Error::Plan(format!(
                "stream `{}`, column `{}`: the plan declares type = {:?} ({declared}), but the column of {} is {};                  values would be converted again to the table's type and rows that do not fit rejected.                  Declare the table's type (or leave `type` out: the table decides)",
                spec.name,
                c.name,
                c.declared.as_deref().unwrap_or_default(),
                target.table,
                f.dtype
            ))
            .into());
        }
    }
    Ok(())
}

/// The partitions this run processes: for a run, the ledger's unfinished partitions when it
/// has the stream (resume), else a fresh plan (recorded in the ledger, with the time horizon
/// fixed to now when the plan gives no `until`); for a sync round, unfinished partitions of
/// earlier rounds plus a fresh plan from the per-series watermarks.
/// Returns (partitions, skipped as done, redone, rows of the skipped ones).
async fn plan_partitions(
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

/// The stream's source as its reshaping shows it: the narrow rows of an unpivot, the wide
/// rows of a pivot, else as the source describes it.
pub async fn reshape(
    spec: &StreamSpec,
    info: StreamInfo,
    source: &dyn Source,
    read: &ReadOptions,
) -> Result<(StreamInfo, Option<Unpivot>, Option<Pivot>), EngineError> {
    let unpivot = Unpivot::load(spec, &info, source, read).await?;
    let pivot = Pivot::load(spec, &info, source, read).await?;
    let info = match (&unpivot, &pivot) {
        (Some(u), _) => u.narrow_info(&info),
        (None, Some(p)) => p.wide_info(&info),
        (None, None) => info,
    };
    Ok((info, unpivot, pivot))
}

/// How a sync round writes a stream planned as `append`: rows of its overlap window were
/// copied already and are skipped — except for a pivot, whose wide rows in the window are
/// made again from all their values (a value that arrived late completes the row), so they
/// replace the rows written before.
fn sync_write(spec: &StreamSpec) -> WriteMode {
    if spec.pivot.is_some() {
        WriteMode::Upsert
    } else {
        WriteMode::Skip
    }
}

/// Runs every partition of the prepared streams with `opts.jobs` workers.
pub async fn execute(
    streams: &[Arc<PreparedStream>],
    source: Arc<dyn Source>,
    sink: Arc<dyn Sink>,
    opts: &EngineOptions,
    cancel: Cancel,
) -> Result<(), EngineError> {
    let mut queue = VecDeque::new();
    for (si, s) in streams.iter().enumerate() {
        if s.partitions.is_empty() {
            s.counters.mark_started();
            s.counters.mark_finished();
        }
        for p in &s.partitions {
            queue.push_back((si, p.clone()));
        }
    }
    let queue = Arc::new(Mutex::new(queue));
    let rejected_total = Arc::new(AtomicU64::new(0));
    let mut handles = Vec::new();
    for _ in 0..opts.jobs.max(1) {
        let w = Worker {
            queue: queue.clone(),
            streams: streams.to_vec(),
            source: source.clone(),
            sink: sink.clone(),
            opts: opts.clone(),
            cancel: cancel.clone(),
            rejected_total: rejected_total.clone(),
        };
        handles.push(tokio::spawn(w.run()));
    }
    let mut first_error: Option<EngineError> = None;
    for h in handles {
        let r = match h.await {
            Ok(r) => r,
            Err(e) => Err(EngineError::Core(tsmigrate_core::Error::Store {
                end: tsmigrate_core::End::Target,
                context: "worker".into(),
                message: format!("internal error: a worker stopped unexpectedly: {e}"),
                transient: false,
            })),
        };
        if let Err(e) = r {
            // Keep the root cause, not the "interrupted" of workers stopped because of it.
            match (&first_error, &e) {
                (None, _) | (Some(EngineError::Interrupted), _) => first_error = Some(e),
                _ => {}
            }
        }
    }
    // The stream's rejects file, from the parts of its committed partitions (a killed or
    // failed run's too: their parts were made durable before each commit).
    if !opts.dry_run {
        for s in streams {
            if let Err(e) = assemble_rejects(s, opts).await {
                first_error.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    if cancel.is_cancelled() {
        return Err(EngineError::Interrupted);
    }
    if !opts.dry_run {
        for s in streams {
            let done = sink.finish(&s.target).await?;
            if let Ok(mut f) = s.finished.lock() {
                *f = done;
            }
        }
    }
    Ok(())
}

/// Writes a stream's rejects file from the parts of the partitions the ledger holds as done
/// (without a ledger, those this run committed).
async fn assemble_rejects(s: &PreparedStream, opts: &EngineOptions) -> Result<(), EngineError> {
    let done: Vec<String> = match &opts.ledger {
        Some(l) => l
            .stream(&s.spec.name)
            .await?
            .map(|st| {
                st.partitions
                    .into_iter()
                    .filter(|p| p.state == PartitionState::Done)
                    .map(|p| p.partition.id)
                    .collect()
            })
            .unwrap_or_default(),
        None => s.committed.lock().map(|c| c.clone()).unwrap_or_default(),
    };
    let file = s.rejects.assemble(&done)?;
    if let Ok(mut f) = s.rejects_file.lock() {
        *f = file;
    }
    Ok(())
}

struct Worker {
    queue: Arc<Mutex<VecDeque<(usize, Partition)>>>,
    streams: Vec<Arc<PreparedStream>>,
    source: Arc<dyn Source>,
    sink: Arc<dyn Sink>,
    opts: EngineOptions,
    cancel: Cancel,
    rejected_total: Arc<AtomicU64>,
}

/// Per-partition tallies, added to the stream's counters when the partition commits.
struct Tally<'a> {
    /// The attempt's rejected rows, made durable just before the partition commits.
    rejects: PartitionRejects<'a>,
    read: u64,
    written: u64,
    skipped: u64,
    rejected: u64,
    bytes: u64,
    /// Values an unpivot left out (no point).
    unmatched: u64,
    /// Digest of the rows sent to the target.
    digest: Digest,
    /// Newest time per series of the rows read.
    tracker: Option<SeriesTracker>,
    /// Rows per series, for the summary.
    series: SeriesCounts,
}

impl Worker {
    async fn run(self) -> Result<(), EngineError> {
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
                eprintln!(
                    "stream `{}`, partition {}: {e}; writing the partition again, isolating the rows the target refuses",
                    s.spec.name, part.id
                );
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
                    eprintln!(
                        "stream `{}`, partition {}: the connection was lost at commit, and the ledger shows the partition committed; it is not written again",
                        s.spec.name, part.id
                    );
                    StreamCounters::add(&s.counters.rows_read, rows.0);
                    StreamCounters::add(&s.counters.rows_rejected, rows.1);
                    return Ok(());
                }
            }
            if transient && attempt < self.opts.retry.retries && !self.cancel.is_cancelled() {
                attempt += 1;
                StreamCounters::add(&s.counters.retries, 1);
                let delay = self.opts.retry.delay(attempt);
                eprintln!(
                    "stream `{}`, partition {}: attempt {attempt} failed ({e}); everything it wrote was rolled back; retrying in {:.1}s ({} of {} retries)",
                    s.spec.name,
                    part.id,
                    delay.as_secs_f64(),
                    attempt,
                    self.opts.retry.retries
                );
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

    /// Moves one partition. On failure nothing of it stays counted, and `attempt_rows` gets
    /// the rows it had read and rejected.
    async fn partition(
        &self,
        s: &Arc<PreparedStream>,
        part: &Partition,
        attempt_rows: &mut (u64, u64),
        isolating: bool,
    ) -> Result<(), EngineError> {
        let (tx, mut rx) = mpsc::channel::<Batch>(CHANNEL_BATCHES);
        let reader = {
            let (src, spec, p, ro) = (
                self.source.clone(),
                s.spec.clone(),
                part.clone(),
                read_options(&s.spec, &self.opts.read)?,
            );
            tokio::spawn(async move { src.read(&spec, &p, &ro, tx).await })
        };
        // A partition planned by a sync round re-reads an overlap window, whoever redoes it.
        let sync_target;
        let target = if part.id.starts_with(SYNC_PREFIX) && s.target.write == WriteMode::Append {
            sync_target = PreparedTarget {
                write: sync_write(&s.spec),
                ..s.target.clone()
            };
            &sync_target
        } else {
            &s.target
        };
        let mut writer = if self.opts.dry_run {
            None
        } else {
            let begun = if isolating {
                self.sink.begin_isolating(target, part).await
            } else {
                self.sink.begin(target, part).await
            };
            match begun {
                Ok(w) => Some(w),
                Err(e) => {
                    reader.abort();
                    return Err(e.into());
                }
            }
        };
        let mut tally = Tally {
            rejects: s.rejects.partition(&part.id),
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
        };
        let mut lossy = LossyCounts::allowing(&s.lossy_kinds);
        let mut buckets = s.aggregate.as_ref().map(Aggregate::buckets);
        let mut groups = s.pivot.as_ref().map(Pivot::groups);
        let moved: Result<(), EngineError> = async {
            loop {
                let batch = tokio::select! {
                    b = rx.recv() => b,
                    _ = self.cancel.cancelled() => return Err(EngineError::Interrupted),
                };
                let Some(batch) = batch else { break };
                match groups.as_mut() {
                    Some(g) => self.gather(s, part, &batch, g, &mut tally)?,
                    None => {
                        self.batch(
                            s,
                            part,
                            &batch,
                            writer.as_mut(),
                            &mut tally,
                            &mut lossy,
                            buckets.as_mut(),
                        )
                        .await?
                    }
                }
            }
            Ok(())
        }
        .await;
        drop(rx);
        let read = match reader.await {
            Ok(r) => r.map_err(EngineError::from),
            Err(e) => Err(EngineError::Core(tsmigrate_core::Error::Store {
                end: tsmigrate_core::End::Source,
                context: format!("stream `{}`, partition {}", s.spec.name, part.id),
                message: format!("internal error: the reader stopped unexpectedly: {e}"),
                transient: false,
            })),
        };
        // The writer's error is the cause when both failed (the reader then only saw the channel close).
        let mut outcome = moved.and(read);
        if let (Ok(()), Some(g)) = (&outcome, groups) {
            // A pivot's wide rows are made when all of the partition has been read.
            outcome = async {
                for wide in g.finish(self.opts.read.batch_rows)? {
                    if self.cancel.is_cancelled() {
                        return Err(EngineError::Interrupted);
                    }
                    self.batch(
                        s,
                        part,
                        &wide,
                        writer.as_mut(),
                        &mut tally,
                        &mut lossy,
                        buckets.as_mut(),
                    )
                    .await?;
                }
                Ok(())
            }
            .await;
        }
        if let (Ok(()), Some(b)) = (&outcome, buckets) {
            outcome = self
                .write_aggregates(s, part, b, writer.as_mut(), &mut tally, &mut lossy)
                .await;
        }
        let committed = match (outcome, writer) {
            (Ok(()), Some(mut w)) => match self.seal_rejects(s, part, w.as_mut(), &mut tally).await
            {
                Ok(()) => {
                    let commit = self.commit_record(s, part, target, &mut tally);
                    let ledger_commit = commit.as_ref().filter(|_| self.ledger().is_some());
                    match w.commit(ledger_commit).await {
                        Ok(info) => {
                            tally.written = info.written;
                            tally.skipped = info.skipped;
                            match (self.ledger(), ledger_commit) {
                                (Some(l), Some(c)) if !info.recorded => l
                                    .record_done(c, info.written)
                                    .await
                                    .map_err(EngineError::from),
                                _ => Ok(()),
                            }
                        }
                        Err(e) => Err(EngineError::from(e)),
                    }
                }
                Err(e) => {
                    let _ = w.abort().await;
                    Err(e)
                }
            },
            (Ok(()), None) => Ok(()),
            (Err(e), Some(w)) => {
                let _ = w.abort().await;
                Err(e)
            }
            (Err(e), None) => Err(e),
        };
        if let Err(e) = committed {
            // Take back what this attempt counted: a retry reads the partition again.
            StreamCounters::sub(&s.counters.rows_read, tally.read);
            StreamCounters::sub(&s.counters.rows_rejected, tally.rejected);
            self.rejected_total.fetch_sub(
                tally
                    .rejected
                    .min(self.rejected_total.load(Ordering::Relaxed)),
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
            l.absorb(&lossy);
        }
        if let Ok(mut c) = s.committed.lock() {
            c.push(part.id.clone());
        }
        Ok(())
    }

    /// Before a partition commits: takes the rows the target refused after writing them, and
    /// makes the attempt's rejects durable.
    async fn seal_rejects(
        &self,
        s: &PreparedStream,
        part: &Partition,
        w: &mut dyn PartitionWriter,
        tally: &mut Tally<'_>,
    ) -> Result<(), EngineError> {
        for late in w.take_rejects().await? {
            self.account(
                s,
                part,
                &late.row,
                vec![(0, late.column, late.reason)],
                tally,
            )?;
        }
        tally.rejects.seal()?;
        Ok(())
    }

    /// What the ledger records with the partition's commit (`None` without a run id).
    fn commit_record(
        &self,
        s: &PreparedStream,
        part: &Partition,
        target: &PreparedTarget,
        tally: &mut Tally<'_>,
    ) -> Option<PartitionCommit> {
        let marks = tally
            .tracker
            .take()
            .map(SeriesTracker::finish)
            .unwrap_or_default();
        self.opts.run_id.map(|run_id| PartitionCommit {
            stream: s.spec.name.clone(),
            partition_id: part.id.clone(),
            run_id,
            write: target.write,
            digest: tally.digest.to_text(),
            watermarks: marks.series,
            newest: marks
                .newest
                .zip(s.info.series.as_ref())
                .and_then(|(t, si)| si.ticks_to_us(t)),
            rejected: tally.rejected,
        })
    }

    /// Writes the aggregate rows of a partition (after its last batch). An aggregate row
    /// the target cannot hold fails the partition: it stands for many source rows.
    async fn write_aggregates(
        &self,
        s: &PreparedStream,
        part: &Partition,
        buckets: Buckets,
        writer: Option<&mut Box<dyn PartitionWriter>>,
        tally: &mut Tally<'_>,
        lossy: &mut LossyCounts,
    ) -> Result<(), EngineError> {
        let rows = buckets.finish()?;
        let mut errors = RowErrors::new();
        let out = to_target_types(
            &rows,
            (&s.target_schema, &s.target.limits),
            &s.spec.name,
            &mut errors,
            lossy,
        )?;
        let mut failed: Vec<(usize, Option<String>, String)> = errors
            .errors()
            .iter()
            .map(|e| (e.row, e.column.clone(), e.reason.clone()))
            .collect();
        if failed.is_empty() {
            failed = self.write_rows(s, out, None, writer, tally).await?;
        }
        match failed.into_iter().next() {
            None => Ok(()),
            Some((row, column, reason)) => {
                let group: Vec<String> = rows.row(row).into_iter().map(value_to_string).collect();
                Err(tsmigrate_core::Error::Plan(format!(
                    "stream `{}`, partition {}: the aggregate row ({}) cannot be stored{}: {reason}; \
                     change the target column's type",
                    s.spec.name,
                    part.id,
                    group.join(", "),
                    column.map(|c| format!(" in column `{c}`")).unwrap_or_default(),
                ))
                .into())
            }
        }
    }

    /// Writes converted rows (or previews them in a dry run); returns the rows the sink
    /// rejected, as rows of the batch read (`origin` maps written rows to read rows).
    async fn write_rows(
        &self,
        s: &PreparedStream,
        out: Batch,
        origin: Option<Vec<usize>>,
        writer: Option<&mut Box<dyn PartitionWriter>>,
        tally: &mut Tally<'_>,
    ) -> Result<Vec<(usize, Option<String>, String)>, EngineError> {
        let mut rejected = Vec::new();
        match writer {
            Some(w) => {
                let outcome = w.write(&out).await?;
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
                for e in outcome.rejected {
                    let row = origin
                        .as_ref()
                        .and_then(|o| o.get(e.row).copied())
                        .unwrap_or(e.row);
                    rejected.push((row, e.column, e.reason));
                }
            }
            None => {
                tally.written += out.len() as u64;
                if let Ok(mut p) = s.preview.lock() {
                    for r in 0..out.len() {
                        if p.len() >= self.opts.preview_rows {
                            break;
                        }
                        p.push(out.row(r).into_iter().map(value_to_string).collect());
                    }
                }
            }
        }
        Ok(rejected)
    }

    #[allow(clippy::too_many_arguments)]
    async fn batch(
        &self,
        s: &PreparedStream,
        part: &Partition,
        batch: &Batch,
        writer: Option<&mut Box<dyn PartitionWriter>>,
        tally: &mut Tally<'_>,
        lossy: &mut LossyCounts,
        buckets: Option<&mut Buckets>,
    ) -> Result<(), EngineError> {
        let mut errors = RowErrors::new();
        // An unpivoted stream's rows are the narrow rows from here on (rejects list them).
        let narrow;
        let kept;
        let batch = match &s.unpivot {
            Some(u) => {
                // Rows the source could not read are rejected whole, as read.
                kept = self.reject_unreadable(s, part, batch, tally)?;
                let (b, skipped) = u.apply(&kept, &mut errors)?;
                tally.unmatched += skipped;
                narrow = b;
                &narrow
            }
            None => batch,
        };
        let n = batch.len();
        tally.read += n as u64;
        StreamCounters::add(&s.counters.rows_read, n as u64);
        if let Some(t) = tally.tracker.as_mut() {
            t.add(batch);
        }
        let mut rejected: Vec<(usize, Option<String>, String)>;
        if let Some(buckets) = buckets {
            // An aggregate stream's rows are written when the partition ends.
            batch.reject_source_errors(&mut errors);
            let mapped = s.mapping.apply(batch, &mut errors, lossy)?;
            buckets.add(&mapped, &mut errors);
            rejected = errors
                .errors()
                .iter()
                .map(|e| (e.row, e.column.clone(), e.reason.clone()))
                .collect();
        } else {
            let out = s
                .to_target(self.sink.as_ref(), batch, &mut errors, lossy)
                .await?;
            // Drop rejected rows; remember where the kept rows came from.
            let (out, origin): (Batch, Option<Vec<usize>>) = if errors.is_empty() {
                (out, None)
            } else {
                let keep = errors.keep_mask(n);
                let origin = (0..n).filter(|i| keep[*i]).collect();
                (out.filter(&keep), Some(origin))
            };
            rejected = errors
                .errors()
                .iter()
                .map(|e| (e.row, e.column.clone(), e.reason.clone()))
                .collect();
            rejected.extend(self.write_rows(s, out, origin, writer, tally).await?);
        }
        self.account(s, part, batch, rejected, tally)
    }

    /// Gathers a narrow batch of a pivoted stream into the partition's wide rows. A narrow
    /// row the pivot rejects counts as one row read and rejected (into the rejects file as
    /// read); the others are counted as the wide rows they make.
    fn gather(
        &self,
        s: &PreparedStream,
        part: &Partition,
        batch: &Batch,
        groups: &mut Groups<'_>,
        tally: &mut Tally<'_>,
    ) -> Result<(), EngineError> {
        let batch = &self.reject_unreadable(s, part, batch, tally)?;
        let mut errors = RowErrors::new();
        tally.unmatched += groups.add(batch, &mut errors)?;
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
        tally.read += n as u64;
        StreamCounters::add(&s.counters.rows_read, n as u64);
        let rejected = errors
            .errors()
            .iter()
            .map(|e| (at[e.row], e.column.clone(), e.reason.clone()))
            .collect();
        self.account(s, part, &rejected_rows, rejected, tally)
    }

    /// Rejects (as read, counted as read) the rows of `batch` its source could not read (a
    /// reason in [`tsmigrate_core::batch::SOURCE_ERROR`]), before a reshaping that would lose
    /// the reason; returns the other rows.
    fn reject_unreadable(
        &self,
        s: &PreparedStream,
        part: &Partition,
        batch: &Batch,
        tally: &mut Tally<'_>,
    ) -> Result<Batch, EngineError> {
        let mut errors = RowErrors::new();
        batch.reject_source_errors(&mut errors);
        if errors.is_empty() {
            return Ok(batch.clone());
        }
        let keep = errors.keep_mask(batch.len());
        let bad: Vec<bool> = keep.iter().map(|k| !k).collect();
        let rejected_rows = batch.filter(&bad);
        let reasons: Vec<(usize, Option<String>, String)> = errors
            .errors()
            .iter()
            .enumerate()
            .map(|(i, e)| (i, e.column.clone(), e.reason.clone()))
            .collect();
        tally.read += rejected_rows.len() as u64;
        StreamCounters::add(&s.counters.rows_read, rejected_rows.len() as u64);
        self.account(s, part, &rejected_rows, reasons, tally)?;
        Ok(batch.filter(&keep))
    }

    /// Counts the rows of `batch` per series, and records its `rejected` rows (rejects file,
    /// `max_rejects`).
    fn account(
        &self,
        s: &PreparedStream,
        part: &Partition,
        batch: &Batch,
        rejected: Vec<(usize, Option<String>, String)>,
        tally: &mut Tally<'_>,
    ) -> Result<(), EngineError> {
        if let Some(col) = s
            .series_column
            .as_ref()
            .and_then(|c| batch.schema.index_of(c))
        {
            let rows: Vec<usize> = rejected.iter().map(|r| r.0).collect();
            tally.series.add(batch, col, &rows);
        }
        for (row, column, reason) in rejected {
            tally.rejected += 1;
            StreamCounters::add(&s.counters.rows_rejected, 1);
            let total = self.rejected_total.fetch_add(1, Ordering::Relaxed) + 1;
            let key = s.rejects.key_text(batch, row);
            if self.opts.dry_run {
                if let Ok(mut sr) = s.sample_rejects.lock() {
                    if sr.len() < 10 {
                        let col = column
                            .as_deref()
                            .map(|c| format!(" column `{c}`:"))
                            .unwrap_or_default();
                        sr.push(format!("({key}){col} {reason}"));
                    }
                }
                continue;
            }
            tally
                .rejects
                .record(batch, row, column.as_deref(), &reason)?;
            if total > self.opts.max_rejects {
                return Err(EngineError::TooManyRejects(Box::new(RejectStop {
                    stream: s.spec.name.clone(),
                    partition: part.id.clone(),
                    key,
                    column: column
                        .map(|c| format!(", column `{c}`"))
                        .unwrap_or_default(),
                    reason,
                    total,
                    max: self.opts.max_rejects,
                    file: s.rejects.path().display().to_string(),
                })));
            }
        }
        Ok(())
    }
}

/// Builds the report of the prepared streams from their counters.
pub fn report(streams: &[Arc<PreparedStream>], dry_run: bool) -> Vec<StreamReport> {
    streams
        .iter()
        .map(|s| {
            let c = &s.counters;
            let seconds = c.elapsed().as_secs_f64();
            let rows_read = StreamCounters::get(&c.rows_read);
            let lossy = s.lossy_total.lock().map(|l| l.clone()).unwrap_or_default();
            let mut notes = s.info.notes.clone();
            notes.extend(s.target.notes.iter().cloned());
            let finished = s.finished.lock().map(|f| f.clone()).unwrap_or_default();
            notes.extend(finished.notes);
            let unmatched = StreamCounters::get(&c.values_unmatched);
            if unmatched > 0 {
                notes.push(format!(
                    "{unmatched} value(s) matched no point or column and were left out (unmatched = \"skip\")"
                ));
            }
            StreamReport {
                name: s.spec.name.clone(),
                source_stream: s.spec.source_stream().to_string(),
                table: s.target.table.clone(),
                partitions: s.partitions.len() as u64,
                partitions_done: StreamCounters::get(&c.partitions_done),
                partitions_skipped: s.partitions_skipped,
                partitions_redone: s.partitions_redone,
                retries: StreamCounters::get(&c.retries),
                rows_skipped: StreamCounters::get(&c.rows_skipped),
                values_unmatched: StreamCounters::get(&c.values_unmatched),
                rows_before: s.rows_before,
                write: s.target.write.name().to_string(),
                rows_read,
                rows_written: StreamCounters::get(&c.rows_written),
                rows_rejected: StreamCounters::get(&c.rows_rejected),
                rows_rolled_back: StreamCounters::get(&c.rows_rolled_back),
                bytes_written: StreamCounters::get(&c.bytes_written),
                seconds,
                rows_per_second: if seconds > 0.0 {
                    rows_read as f64 / seconds
                } else {
                    0.0
                },
                lossy_conversions: Lossy::ALL
                    .iter()
                    .filter(|k| lossy.count(**k) > 0)
                    .map(|k| (k.name().to_string(), lossy.count(*k)))
                    .collect(),
                rejects_file: s
                    .rejects_file
                    .lock()
                    .ok()
                    .and_then(|f| f.as_ref().map(|p| p.display().to_string()))
                    .filter(|_| !dry_run),
                created_table: s.target.created.clone(),
                notes,
                columns: s.target.columns.iter().map(|f| f.name.clone()).collect(),
                series_column: s.series_column.clone(),
                rows_by_series: s
                    .series_rows
                    .lock()
                    .map(|r| r.rows.clone())
                    .unwrap_or_default(),
                preview: s.preview.lock().map(|p| p.clone()).unwrap_or_default(),
                sample_rejects: s
                    .sample_rejects
                    .lock()
                    .map(|p| p.clone())
                    .unwrap_or_default(),
                compression: finished.compression,
            }
        })
        .collect()
}

/// Assembles the run report.
pub fn run_report(
    plan: &str,
    opts: &EngineOptions,
    streams: Vec<StreamReport>,
    seconds: f64,
    started_at: String,
) -> RunReport {
    RunReport {
        version: env!("CARGO_PKG_VERSION").to_string(),
        plan: plan.to_string(),
        dry_run: opts.dry_run,
        run_id: opts.run_id,
        command: if opts.sync.is_some() { "sync" } else { "run" }.to_string(),
        status: "ok".into(),
        error: None,
        started_at,
        seconds,
        streams,
        setup: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tsmigrate_core::{DataType, Field, Plan};

    #[test]
    fn key_is_inferred_from_plain_copies() {
        let plan = Plan::parse(
            r#"
[source]
kind = "thingsboard"
[target]
kind = "postgres"
[[streams]]
name = "telemetry"
columns = [
  { name = "device_id", type = "uuid", expr = "entity_id" },
  { name = "timestamp", type = "timestamptz", expr = "from_epoch_ms( ts )" },
  { name = "metric", expr = "KEY" },
  { name = "value", type = "float8", expr = "dbl_v" },
]
"#,
        );
        let plan = match plan {
            Ok(p) => p,
            Err(e) => panic!("{e}"),
        };
        let schema = Schema::new(vec![
            Field::new("entity_id", DataType::Uuid),
            Field::new("key", DataType::Text),
            Field::new("ts", DataType::Int64),
            Field::new("dbl_v", DataType::Float64),
        ]);
        let m = match Mapping::compile(&plan.streams[0], &schema) {
            Ok(m) => m,
            Err(e) => panic!("{e}"),
        };
        let key: Vec<String> = ["entity_id", "key", "ts"].map(String::from).to_vec();
        assert_eq!(
            infer_key(&key, &m),
            Some(vec![
                "device_id".into(),
                "metric".into(),
                "timestamp".into()
            ])
        );
        // Any bare copy counts; a column no target copies gives no key.
        assert_eq!(
            infer_key(&["dbl_v".to_string()], &m),
            Some(vec!["value".into()])
        );
        assert_eq!(infer_key(&["nope".to_string()], &m), None);
        assert!(copies_test("ts::varchar(32)", "ts"));
        assert!(!copies_test("ts::float8 / 1000", "ts"));
        assert!(!copies_test("entity_id::text || 'x'", "entity_id"));
    }

    /// Whether `infer_key` takes `sql` as a copy of `col` (the expression must compile).
    fn copies_test(sql: &str, col: &str) -> bool {
        let plan = format!(
            "[source]\nkind = \"x\"\n[target]\nkind = \"y\"\n[[streams]]\nname = \"s\"\ncolumns = [{{ name = \"out\", expr = \"{}\" }}]\n",
            sql.replace('"', "\\\"")
        );
        let plan = match Plan::parse(&plan) {
            Ok(p) => p,
            Err(e) => panic!("{sql}: {e}"),
        };
        let schema = Schema::new(vec![
            Field::new("entity_id", DataType::Uuid),
            Field::new("ts", DataType::Int64),
        ]);
        match Mapping::compile(&plan.streams[0], &schema) {
            Ok(m) => infer_key(&[col.to_string()], &m).is_some(),
            Err(e) => panic!("{sql} does not compile: {e}"),
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_maximum() {
        let p = RetryPolicy {
            retries: 10,
            first_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(3),
        };
        let d: Vec<u128> = (1..=5).map(|a| p.delay(a).as_millis()).collect();
        assert_eq!(d, vec![500, 1000, 2000, 3000, 3000]);
        assert_eq!(p.delay(200), Duration::from_secs(3));
    }
}
