//! Preparing a run or sync round: every selected stream compiled and its target checked —
//! all before any table is created —, then created, and its partitions taken from the ledger
//! or planned.

use std::sync::Arc;

use tsmigrate_core::{
    Error, PartitionState, Plan, PreparedTarget, Sink, Source, StreamSpec, TargetRequest, WriteMode,
};

use crate::compile::CompiledStream;
use crate::error::EngineError;
use crate::options::{selected, sync_write, EngineOptions, SYNC_PREFIX};
use crate::resume::{plan_partitions, Resume};
use crate::stream::PreparedStream;

/// A stream compiled and its target checked, not yet created.
struct Checked {
    stream: CompiledStream,
    request: TargetRequest,
    resume: Resume,
    fingerprint: String,
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
    let mut checked = Vec::new();
    for spec in selected(plan, &opts.only_streams)? {
        checked.push(check(spec, source, sink, opts).await?);
    }
    let mut out = Vec::new();
    for c in checked {
        out.push(Arc::new(create(c, source, sink, opts).await?));
    }
    Ok(out)
}

/// Compiles a stream, reads what the ledger holds of it, and checks its target.
async fn check(
    spec: &StreamSpec,
    source: &dyn Source,
    sink: &dyn Sink,
    opts: &EngineOptions,
) -> Result<Checked, EngineError> {
    let mut spec = spec.clone();
    if opts.limit.is_some() {
        spec.limit = opts.limit;
    }
    let stream = CompiledStream::compile(spec, source, sink, &opts.read).await?;
    let spec = &stream.spec;
    if stream.aggregate.is_some() && opts.sync.is_some() {
        return Err(Error::Plan(format!(
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
    check_resumable(spec, &resume, &fingerprint, opts)?;
    // A sync re-reads an overlap window: rows already copied must be skipped, not appended.
    let write = match (spec.write, &opts.sync) {
        (WriteMode::Append, Some(_)) => sync_write(spec),
        (w, _) => w,
    };
    check_key(spec, write, &stream.key, opts)?;
    let nothing_written_yet = opts.restart || resume.done().next().is_none();
    let mut request = stream.request(write, write == WriteMode::Append && nothing_written_yet);
    if sink.wants_time_extent(&request) {
        request.time_extent = source.time_extent(spec).await?;
    }
    let target = sink.prepare(&request, true).await?;
    check_declared_types(spec, &request, &target)?;
    if let (Some(_), Some(p)) = (&target.created, resume.done().next()) {
        if !opts.restart && !opts.dry_run {
            return Err(Error::Plan(format!(
                "stream `{}`: the ledger records committed partitions (such as {}, by run {}) in {}, but that table does not exist any more. \
                 To migrate the stream again from scratch, run with --restart",
                spec.name,
                p.partition.id,
                p.run_id.unwrap_or(0),
                target.table
            ))
            .into());
        }
    }
    Ok(Checked {
        stream,
        request,
        resume,
        fingerprint,
    })
}

/// Refuses to resume a stream whose definition changed, and to sync one whose run is not
/// complete.
fn check_resumable(
    spec: &StreamSpec,
    resume: &Resume,
    fingerprint: &str,
    opts: &EngineOptions,
) -> Result<(), EngineError> {
    if let Some(st) = &resume.state {
        if st.fingerprint != fingerprint && !opts.restart {
            let done = resume.done().count();
            return Err(Error::Plan(format!(
                "stream `{}`: the plan's definition of this stream changed since the ledger planned it on {} ({done} of {} partitions done). \
                 Resuming would mix rows written under two definitions. Restore the plan, or run `tsmigrate run --restart` to plan it again from scratch \
                 (rows already written stay in {}: roll them back first with `tsmigrate rollback`, or empty the table)",
                spec.name, st.planned_at, st.partitions.len(), st.table
            ))
            .into());
        }
    }
    if opts.sync.is_none() {
        return Ok(());
    }
    let pending = resume
        .state
        .iter()
        .flat_map(|s| s.partitions.iter())
        .filter(|p| p.state != PartitionState::Done && !p.partition.id.starts_with(SYNC_PREFIX))
        .count();
    if resume.state.is_none() || pending > 0 {
        return Err(Error::Plan(format!(
            "stream `{}`: sync copies what is new since a complete run, and {}; finish it with `tsmigrate run` first",
            spec.name,
            if resume.state.is_none() {
                "the stream was never run".to_string()
            } else {
                format!("{pending} partition(s) of its run are not done yet")
            }
        ))
        .into());
    }
    Ok(())
}

/// Refuses a write mode that needs a key when the stream has none.
fn check_key(
    spec: &StreamSpec,
    write: WriteMode,
    key: &[String],
    opts: &EngineOptions,
) -> Result<(), EngineError> {
    if write == WriteMode::Append || !key.is_empty() {
        return Ok(());
    }
    Err(Error::Plan(format!(
        "stream `{}`: {} needs the stream's key (the target columns identifying a row), and it cannot be inferred from the mapping; \
         set key = [\"…\"] in the stream",
        spec.name,
        if opts.sync.is_some() && spec.write == WriteMode::Append {
            "sync re-reads an overlap window and skips rows already copied, which".to_string()
        } else {
            format!("write = \"{}\"", write.name())
        }
    ))
    .into())
}

/// Creates a checked stream's target (unless a dry run), claims it for an `append` stream,
/// and plans its partitions.
async fn create(
    c: Checked,
    source: &dyn Source,
    sink: &dyn Sink,
    opts: &EngineOptions,
) -> Result<PreparedStream, EngineError> {
    let Checked {
        stream,
        request,
        resume,
        fingerprint,
    } = c;
    let spec = &stream.spec;
    let target = sink.prepare(&request, opts.dry_run).await?;
    if let (Some(l), false, WriteMode::Append) = (&opts.ledger, opts.dry_run, spec.write) {
        l.claim_table(&target.table, &spec.name).await?;
    }
    let (partitions, skipped, redone, rows_before) = plan_partitions(
        spec,
        &stream.info,
        &target,
        &resume,
        &fingerprint,
        source,
        opts,
    )
    .await?;
    let mut prepared = PreparedStream::new(stream, target, partitions, &opts.rejects_dir)?;
    prepared.partitions_skipped = skipped;
    prepared.partitions_redone = redone;
    prepared.rows_before = rows_before;
    Ok(prepared)
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
