//! A stream ready to run: compiled, its target prepared, its partitions planned, with the
//! live counters and collected results its partitions add to.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tsmigrate_core::mapping::Mapping;
use tsmigrate_core::{
    Batch, FinishReport, Lossy, LossyCounts, Partition, PreparedTarget, RowErrors, Schema, Sink,
    StreamInfo, StreamSpec,
};

use crate::aggregate::Aggregate;
use crate::compile::CompiledStream;
use crate::counters::StreamCounters;
use crate::error::EngineError;
use crate::lookup::Lookups;
use crate::pivot::Pivot;
use crate::rejects::RejectsFile;
use crate::series_rows::SeriesCounts;
use crate::target_rows::{map_to_target, to_target_types};
use crate::unpivot::Unpivot;

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
    pub(crate) rejects: RejectsFile,
    /// The stream's rejects file once put together (when it holds a row).
    pub(crate) rejects_file: Mutex<Option<PathBuf>>,
    /// Partitions this run committed, in order.
    pub(crate) committed: Mutex<Vec<String>>,
    pub(crate) lossy_kinds: Vec<Lossy>,
    pub(crate) lossy_total: Mutex<LossyCounts>,
    pub(crate) preview: Mutex<Vec<Vec<String>>>,
    pub(crate) sample_rejects: Mutex<Vec<String>>,
    /// What the sink's `finish` did (compression sizes, notes).
    pub(crate) finished: Mutex<FinishReport>,
}

impl PreparedStream {
    /// A stream ready to run `partitions` into `target`, its counters at zero, its rejects
    /// going to `rejects_dir`.
    pub fn new(
        stream: CompiledStream,
        target: PreparedTarget,
        partitions: Vec<Partition>,
        rejects_dir: &Path,
    ) -> Result<PreparedStream, EngineError> {
        let CompiledStream {
            spec,
            info,
            mapping,
            lookups,
            unpivot,
            pivot,
            aggregate,
            ..
        } = stream;
        let counters = Arc::new(StreamCounters::default());
        StreamCounters::add(&counters.partitions_total, partitions.len() as u64);
        let est: u64 = partitions.iter().filter_map(|p| p.estimated_rows).sum();
        StreamCounters::add(&counters.estimated_rows, est);
        let rejects = RejectsFile::new(rejects_dir, &spec.name, info.key_columns.clone());
        let lossy_kinds = spec.lossy_kinds()?;
        // An aggregate reads the rows its raw stream counts already.
        let series_column = info
            .series
            .as_ref()
            .filter(|_| spec.aggregate.is_none())
            .and_then(|si| si.columns.first())
            .filter(|c| info.schema.index_of(c).is_some())
            .cloned();
        Ok(PreparedStream {
            lossy_total: Mutex::new(LossyCounts::allowing(&lossy_kinds)),
            lossy_kinds,
            target_schema: Arc::new(Schema::new(target.columns.clone())),
            spec,
            info,
            mapping,
            lookups,
            unpivot,
            pivot,
            aggregate,
            target,
            partitions_skipped: 0,
            partitions_redone: 0,
            rows_before: 0,
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
        })
    }

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
