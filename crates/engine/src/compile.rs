//! Compiling a stream: what its source gives (after unpivot or pivot), its mapping,
//! aggregate and lookups, its key, and what it asks of its target table — shared by `run`
//! (prepare) and `verify`, so both see the same rows.

use std::sync::Arc;

use tsmigrate_core::mapping::Mapping;
use tsmigrate_core::{
    ReadOptions, Schema, Sink, Source, StreamInfo, StreamSpec, TargetColumn, TargetRequest,
    WriteMode,
};

use crate::aggregate::Aggregate;
use crate::error::EngineError;
use crate::keys::infer_key;
use crate::lookup::Lookups;
use crate::pivot::Pivot;
use crate::unpivot::Unpivot;

/// A stream as the plan describes it, compiled against what its source gives.
pub struct CompiledStream {
    /// The plan stream.
    pub spec: StreamSpec,
    /// What the source gives (after an unpivot or pivot: the rows it makes).
    pub info: StreamInfo,
    /// The compiled mapping.
    pub mapping: Mapping,
    /// The stream's lookup columns, their tables read from the target.
    pub lookups: Option<Arc<Lookups>>,
    /// The wide → narrow reshaping applied before the mapping, if any.
    pub unpivot: Option<Unpivot>,
    /// The narrow → wide reshaping applied (per partition) before the mapping, if any.
    pub pivot: Option<Pivot>,
    /// The bucketed aggregation applied after the mapping, if any.
    pub aggregate: Option<Aggregate>,
    /// The target columns identifying a row: declared, an aggregate's, or inferred from the
    /// mapping (empty when none can be).
    pub key: Vec<String>,
    /// The columns the stream writes: the mapping's, an aggregate's, or with lookups the
    /// looked-up values'.
    pub rows: Arc<Schema>,
}

impl CompiledStream {
    /// Compiles `spec` against its source (`read`: how the reshaping steps sample it) and
    /// loads its lookup tables from `sink`.
    pub async fn compile(
        spec: StreamSpec,
        source: &dyn Source,
        sink: &dyn Sink,
        read: &ReadOptions,
    ) -> Result<CompiledStream, EngineError> {
        let info = source.stream_info(&spec).await?;
        let (info, unpivot, pivot) = reshape(&spec, info, source, read).await?;
        let mapping = Mapping::compile(&lookup_mapping_spec(&spec), &info.schema)?;
        let aggregate = Aggregate::compile(&spec, mapping.output_schema())?;
        if let Some(a) = &aggregate {
            a.check_partitioning(&info, &mapping)?;
        }
        let lookups = Lookups::load(&spec, sink).await?;
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
        Ok(CompiledStream {
            spec,
            info,
            mapping,
            lookups,
            unpivot,
            pivot,
            aggregate,
            key,
            rows,
        })
    }

    /// What the stream asks of its target table when written with `write`; `require_empty`:
    /// the table must hold no rows (an `append` that wrote nothing yet).
    pub fn request(&self, write: WriteMode, require_empty: bool) -> TargetRequest {
        let mut request = target_request(
            &self.spec,
            &self.rows,
            write,
            self.key.clone(),
            require_empty,
        );
        request.estimated_rows = self.info.estimated_rows;
        if self.aggregate.is_none() && self.lookups.is_none() {
            request.scope = self.mapping.constant_columns();
        }
        request
    }
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
