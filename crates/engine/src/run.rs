//! Running a plan: prepare every stream (compile mappings, check and create targets, plan
//! partitions), then move partitions through `read → map → convert → write` with `jobs`
//! workers, committing each partition atomically.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use thiserror::Error;
use tokio::sync::mpsc;
use tsmigrate_core::convert::{convert, value_to_string, ConvertCtx};
use tsmigrate_core::mapping::Mapping;
use tsmigrate_core::{
    Batch, Lossy, LossyCounts, Partition, PartitionWriter, Plan, PreparedTarget, ReadOptions,
    RowErrors, Schema, Sink, Source, StreamInfo, StreamSpec, TargetColumn, TargetRequest,
};

use crate::cancel::Cancel;
use crate::counters::StreamCounters;
use crate::rejects::RejectsFile;
use crate::report::{RunReport, StreamReport};

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
#[derive(Clone, Debug)]
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
}

/// A stream ready to run: its mapping compiled, its target prepared, its partitions planned.
pub struct PreparedStream {
    /// The plan stream (with `--limit` applied).
    pub spec: StreamSpec,
    /// What the source said about it.
    pub info: StreamInfo,
    /// The compiled mapping.
    pub mapping: Mapping,
    /// The prepared target.
    pub target: PreparedTarget,
    /// The target's column types.
    pub target_schema: Arc<Schema>,
    /// Partitions to process.
    pub partitions: Vec<Partition>,
    /// Live counters.
    pub counters: Arc<StreamCounters>,
    rejects: RejectsFile,
    lossy_kinds: Vec<Lossy>,
    lossy_total: Mutex<LossyCounts>,
    preview: Mutex<Vec<Vec<String>>>,
    sample_rejects: Mutex<Vec<String>>,
}

fn selected<'a>(plan: &'a Plan, opts: &EngineOptions) -> Result<Vec<&'a StreamSpec>, EngineError> {
    for name in &opts.only_streams {
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
        .filter(|s| opts.only_streams.is_empty() || opts.only_streams.contains(&s.name))
        .collect())
}

/// Prepares every selected stream. Nothing is written until every mapping compiled and every
/// target checked; then missing tables are created (unless `dry_run`).
pub async fn prepare(
    plan: &Plan,
    source: &dyn Source,
    sink: &dyn Sink,
    opts: &EngineOptions,
) -> Result<Vec<Arc<PreparedStream>>, EngineError> {
    let mut staged = Vec::new();
    for spec in selected(plan, opts)? {
        let mut spec = spec.clone();
        if opts.limit.is_some() {
            spec.limit = opts.limit;
        }
        let info = source.stream_info(&spec).await?;
        let mapping = Mapping::compile(&spec, &info.schema)?;
        let request = TargetRequest {
            stream: spec.name.clone(),
            table: spec.target_table().to_string(),
            create: spec.create,
            columns: mapping
                .output_schema()
                .fields
                .iter()
                .map(|f| TargetColumn {
                    name: f.name.clone(),
                    declared: spec
                        .columns
                        .iter()
                        .find(|c| c.name == f.name)
                        .and_then(|c| c.sql_type.clone()),
                    dtype: f.dtype,
                })
                .collect(),
        };
        // Check every target before creating any.
        sink.prepare(&request, true).await?;
        staged.push((spec, info, mapping, request));
    }
    let mut out = Vec::new();
    for (spec, info, mapping, request) in staged {
        let target = sink.prepare(&request, opts.dry_run).await?;
        let target_schema = Arc::new(Schema::new(target.columns.clone()));
        let partitions = source.partitions(&spec, &opts.read).await?;
        let counters = Arc::new(StreamCounters::default());
        StreamCounters::add(&counters.partitions_total, partitions.len() as u64);
        let est: u64 = partitions.iter().filter_map(|p| p.estimated_rows).sum();
        StreamCounters::add(&counters.estimated_rows, est);
        let key_idx: Vec<usize> = info
            .key_columns
            .iter()
            .filter_map(|k| info.schema.index_of(k))
            .collect();
        let rejects = RejectsFile::new(
            &opts.rejects_dir,
            &spec.name,
            key_idx,
            info.key_columns.clone(),
        );
        let lossy_kinds = spec.lossy_kinds()?;
        out.push(Arc::new(PreparedStream {
            lossy_total: Mutex::new(LossyCounts::allowing(&lossy_kinds)),
            lossy_kinds,
            spec,
            info,
            mapping,
            target,
            target_schema,
            partitions,
            counters,
            rejects,
            preview: Mutex::new(Vec::new()),
            sample_rejects: Mutex::new(Vec::new()),
        }));
    }
    Ok(out)
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
    for s in streams {
        if let Err(e) = s.rejects.finish() {
            first_error.get_or_insert(e.into());
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
            sink.finish(&s.target).await?;
        }
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
#[derive(Default)]
struct Tally {
    read: u64,
    written: u64,
    rejected: u64,
    bytes: u64,
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
            if let Err(e) = self.partition(&s, &part).await {
                self.cancel.cancel();
                return Err(e);
            }
            StreamCounters::add(&s.counters.partitions_done, 1);
            if StreamCounters::get(&s.counters.partitions_done) == s.partitions.len() as u64 {
                s.counters.mark_finished();
            }
        }
    }

    async fn partition(
        &self,
        s: &Arc<PreparedStream>,
        part: &Partition,
    ) -> Result<(), EngineError> {
        let (tx, mut rx) = mpsc::channel::<Batch>(CHANNEL_BATCHES);
        let reader = {
            let (src, spec, p, ro) = (
                self.source.clone(),
                s.spec.clone(),
                part.clone(),
                self.opts.read.clone(),
            );
            tokio::spawn(async move { src.read(&spec, &p, &ro, tx).await })
        };
        let mut writer = if self.opts.dry_run {
            None
        } else {
            match self.sink.begin(&s.target, part).await {
                Ok(w) => Some(w),
                Err(e) => {
                    reader.abort();
                    return Err(e.into());
                }
            }
        };
        let mut tally = Tally::default();
        let mut lossy = LossyCounts::allowing(&s.lossy_kinds);
        let moved: Result<(), EngineError> = async {
            loop {
                let batch = tokio::select! {
                    b = rx.recv() => b,
                    _ = self.cancel.cancelled() => return Err(EngineError::Interrupted),
                };
                let Some(batch) = batch else { break };
                self.batch(s, part, &batch, writer.as_mut(), &mut tally, &mut lossy)
                    .await?;
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
        let outcome = moved.and(read);
        let committed = match (outcome, writer) {
            (Ok(()), Some(w)) => w.commit().await.map_err(EngineError::from),
            (Ok(()), None) => Ok(()),
            (Err(e), Some(w)) => {
                let _ = w.abort().await;
                Err(e)
            }
            (Err(e), None) => Err(e),
        };
        if let Err(e) = committed {
            StreamCounters::add(
                &s.counters.rows_rolled_back,
                tally.read.saturating_sub(tally.rejected),
            );
            return Err(e);
        }
        StreamCounters::add(&s.counters.rows_written, tally.written);
        StreamCounters::add(&s.counters.bytes_written, tally.bytes);
        if let Ok(mut l) = s.lossy_total.lock() {
            l.absorb(&lossy);
        }
        Ok(())
    }

    async fn batch(
        &self,
        s: &PreparedStream,
        part: &Partition,
        batch: &Batch,
        writer: Option<&mut Box<dyn PartitionWriter>>,
        tally: &mut Tally,
        lossy: &mut LossyCounts,
    ) -> Result<(), EngineError> {
        let n = batch.len();
        tally.read += n as u64;
        StreamCounters::add(&s.counters.rows_read, n as u64);
        let mut errors = RowErrors::new();
        let mapped = s.mapping.apply(batch, &mut errors, lossy)?;
        let mut cols = Vec::with_capacity(s.target_schema.fields.len());
        for (field, col) in s.target_schema.fields.iter().zip(&mapped.columns) {
            if col.dtype() == field.dtype {
                cols.push(col.clone());
            } else {
                let mut ctx = ConvertCtx {
                    errors: &mut errors,
                    lossy,
                    column: Some(&field.name),
                };
                cols.push(Arc::new(convert(col, field.dtype, &mut ctx)));
            }
        }
        let out = Batch::new(s.target_schema.clone(), cols).ok_or_else(|| {
            tsmigrate_core::Error::Plan(format!(
                "internal error: stream `{}`: mapped columns do not match the target's",
                s.spec.name
            ))
        })?;
        // Drop rejected rows; remember where the kept rows came from.
        let (out, origin): (Batch, Option<Vec<usize>>) = if errors.is_empty() {
            (out, None)
        } else {
            let keep = errors.keep_mask(n);
            let origin = (0..n).filter(|i| keep[*i]).collect();
            (out.filter(&keep), Some(origin))
        };
        let mut rejected: Vec<(usize, Option<String>, String)> = errors
            .errors()
            .iter()
            .map(|e| (e.row, e.column.clone(), e.reason.clone()))
            .collect();
        match writer {
            Some(w) => {
                let outcome = w.write(&out).await?;
                tally.bytes += outcome.bytes;
                tally.written += (out.len() - outcome.rejected.len().min(out.len())) as u64;
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
            s.rejects
                .record(&part.id, batch, row, column.as_deref(), &reason)?;
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
            StreamReport {
                name: s.spec.name.clone(),
                source_stream: s.spec.source_stream().to_string(),
                table: s.target.table.clone(),
                partitions: s.partitions.len() as u64,
                partitions_done: StreamCounters::get(&c.partitions_done),
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
                rejects_file: if dry_run || StreamCounters::get(&c.rows_rejected) == 0 {
                    None
                } else {
                    Some(s.rejects.path().display().to_string())
                },
                created_table: s.target.created.clone(),
                notes,
                columns: s.target.columns.iter().map(|f| f.name.clone()).collect(),
                preview: s.preview.lock().map(|p| p.clone()).unwrap_or_default(),
                sample_rejects: s
                    .sample_rejects
                    .lock()
                    .map(|p| p.clone())
                    .unwrap_or_default(),
            }
        })
        .collect()
}

/// Assembles the run report.
pub fn run_report(
    plan: &str,
    dry_run: bool,
    streams: Vec<StreamReport>,
    seconds: f64,
    started_at: String,
) -> RunReport {
    RunReport {
        version: env!("CARGO_PKG_VERSION").to_string(),
        plan: plan.to_string(),
        dry_run,
        status: "ok".into(),
        error: None,
        started_at,
        seconds,
        streams,
    }
}
