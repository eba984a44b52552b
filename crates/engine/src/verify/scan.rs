//! Passes over the data: both sides' partitions read by `jobs` workers at once, each batch
//! brought into the target's canonical terms and handed to a visitor that accumulates what
//! the pass is for (bucket digests, finer digests of some buckets, or the rows themselves).

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;
use tsmigrate_core::mapping::Mapping;
use tsmigrate_core::{
    Batch, End, Error, Lossy, LossyCounts, Partition, ReadOptions, RowErrors, Schema, Source,
    StreamSpec, TableReader, TableScan,
};

use super::canonical::{align_types, window, Canonicalizer, Window};
use super::layout::{Coordinates, Layout};
use crate::aggregate::{Aggregate, Buckets};
use crate::cancel::Cancel;
use crate::error::EngineError;
use crate::lookup::Lookups;
use crate::pivot::Pivot;
use crate::target_rows::{map_to_target, to_target_types};
use crate::unpivot::Unpivot;

/// Batches buffered between a partition's reader and the worker comparing it.
const CHANNEL_BATCHES: usize = 4;

/// Which end a row was read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The plan's source, through its connector and the plan's mapping.
    Source = 0,
    /// The target table, through the sink's reader.
    Target = 1,
}

/// A hasher for keys that already are well-spread 64-bit hashes.
#[derive(Default)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) ^ u64::from(*b) ^ (self.0 >> 56);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// A map keyed by bucket ids.
pub type IdMap<V> = HashMap<u64, V, BuildHasherDefault<IdHasher>>;

/// Partitions (of one side) a bucket's rows were read from: up to two, or "all".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PartSet([u32; 2]);

const ALL: u32 = u32::MAX;

impl PartSet {
    /// Adds partition `p`.
    pub fn add(&mut self, p: u32) {
        let v = p.saturating_add(1).min(ALL - 1);
        let s = &mut self.0;
        if s[0] == ALL || s[0] == v || s[1] == v {
            return;
        }
        if s[0] == 0 {
            s[0] = v;
        } else if s[1] == 0 {
            s[1] = v;
        } else {
            *s = [ALL, ALL];
        }
    }

    /// Adds every partition of `other`.
    pub fn union(&mut self, other: PartSet) {
        if other.0[0] == ALL {
            self.0 = [ALL, ALL];
            return;
        }
        for v in other.0 {
            if v != 0 {
                self.add(v - 1);
            }
        }
    }

    /// The partitions, out of `total`.
    pub fn list(&self, total: usize) -> Vec<u32> {
        if self.0[0] == ALL {
            return (0..total as u32).collect();
        }
        self.0.iter().filter(|v| **v != 0).map(|v| v - 1).collect()
    }
}

/// Count, digest and source partitions of a bucket, per side.
#[derive(Clone, Copy, Debug, Default)]
pub struct Acc {
    /// Rows per side.
    pub rows: [u64; 2],
    /// Wrapping sum of row hashes per side.
    pub sum: [u64; 2],
    /// Partitions per side.
    pub parts: [PartSet; 2],
}

impl Acc {
    /// Adds `other`.
    pub fn absorb(&mut self, other: &Acc) {
        for s in 0..2 {
            self.rows[s] += other.rows[s];
            self.sum[s] = self.sum[s].wrapping_add(other.sum[s]);
            self.parts[s].union(other.parts[s]);
        }
    }

    /// True when the sides differ.
    pub fn differs(&self) -> bool {
        self.rows[0] != self.rows[1] || self.sum[0] != self.sum[1]
    }
}

/// Everything a pass needs to read one stream from both sides.
pub struct StreamCtx {
    /// The plan stream (its filter narrowed to the window compared).
    pub spec: StreamSpec,
    /// The compiled mapping.
    pub mapping: Mapping,
    /// The stream's lookup columns (their tables read from the target; never created here).
    pub lookups: Option<Arc<Lookups>>,
    /// The stream's unpivot, applied before the mapping.
    pub unpivot: Option<Unpivot>,
    /// The stream's pivot, applied per source partition before the mapping.
    pub pivot: Option<Pivot>,
    /// The stream's aggregate, applied after the mapping (source partitions are whole buckets).
    pub aggregate: Option<Aggregate>,
    /// The target's columns and types.
    pub target_schema: Arc<Schema>,
    /// What each target column can hold beyond its type (applied to the source side as `run`
    /// applies it).
    pub limits: Vec<tsmigrate_core::ColumnLimits>,
    /// Lossy conversions the plan allows.
    pub lossy: Vec<Lossy>,
    /// What the target reader reads.
    pub scan: TableScan,
    /// Buckets.
    pub layout: Layout,
    /// The rows compared, by time.
    pub window: Window,
    /// Source partitions.
    pub source_parts: Vec<Partition>,
    /// Target partitions.
    pub target_parts: Vec<Partition>,
    /// How the source reads.
    pub read: ReadOptions,
}

/// Accumulates what a pass is for, one worker's share.
pub trait Visitor: Send + 'static {
    /// A batch of `side`'s partition `part`, in canonical target terms.
    fn visit(&mut self, side: Side, part: u32, batch: &Batch, coords: &Coordinates);
}

/// Rows a worker dropped from the source side because the mapping rejects them.
pub struct Worked<V> {
    /// The visitor.
    pub visitor: V,
    /// Source rows rejected by the mapping.
    pub rejected: u64,
}

impl StreamCtx {
    /// A batch as read, in the target's canonical terms; rows the mapping rejects (source) are
    /// dropped and counted. For an aggregate stream, source rows go into `buckets` and this
    /// returns nothing; [`StreamCtx::aggregated`] gives their rows at the partition's end.
    fn canonical(
        &self,
        side: Side,
        batch: Batch,
        canon: &mut Canonicalizer,
        lossy: &mut LossyCounts,
        rejected: &mut u64,
        buckets: Option<&mut Buckets>,
    ) -> Result<Batch, EngineError> {
        let batch = match side {
            Side::Source => {
                let mut errors = RowErrors::new();
                let batch = match &self.unpivot {
                    Some(u) => u.apply(&batch, &mut errors)?.0,
                    None => batch,
                };
                if let Some(b) = buckets {
                    let mapped = self.mapping.apply(&batch, &mut errors, lossy)?;
                    b.add(&mapped, &mut errors);
                    *rejected += errors.len() as u64;
                    return Ok(Batch::empty_with_rows(0));
                }
                let out = map_to_target(
                    &self.mapping,
                    self.lookups.as_deref(),
                    (&self.target_schema, &self.limits),
                    &self.spec.name,
                    &batch,
                    &mut errors,
                    lossy,
                )?;
                if errors.is_empty() {
                    out
                } else {
                    let keep = errors.keep_mask(out.len());
                    *rejected += keep.iter().filter(|k| !**k).count() as u64;
                    out.filter(&keep)
                }
            }
            Side::Target => align_types(batch, &self.target_schema),
        };
        Ok(self.finish_canonical(side, batch, canon, rejected))
    }

    /// The aggregate rows of a source partition, in the target's canonical terms.
    fn aggregated(
        &self,
        buckets: Buckets,
        canon: &mut Canonicalizer,
        lossy: &mut LossyCounts,
        rejected: &mut u64,
    ) -> Result<Batch, EngineError> {
        let rows = buckets.finish()?;
        let mut errors = RowErrors::new();
        let out = to_target_types(
            &rows,
            (&self.target_schema, &self.limits),
            &self.spec.name,
            &mut errors,
            lossy,
        )?;
        let out = if errors.is_empty() {
            out
        } else {
            let keep = errors.keep_mask(out.len());
            *rejected += keep.iter().filter(|k| !**k).count() as u64;
            out.filter(&keep)
        };
        Ok(self.finish_canonical(Side::Source, out, canon, rejected))
    }

    /// Canonical values (JSON), and the compared window.
    fn finish_canonical(
        &self,
        side: Side,
        batch: Batch,
        canon: &mut Canonicalizer,
        rejected: &mut u64,
    ) -> Batch {
        let (batch, invalid) = canon.apply(batch);
        let batch = super::canonical::trim_blank_padded(batch, &self.limits);
        let batch = match (side, invalid) {
            (Side::Source, Some(bad)) => {
                *rejected += bad.iter().filter(|b| **b).count() as u64;
                let keep: Vec<bool> = bad.iter().map(|b| !b).collect();
                batch.filter(&keep)
            }
            _ => batch,
        };
        match self.layout.time {
            Some((col, _)) => window(batch, col, &self.window),
            None => batch,
        }
    }
}

/// Reads the `tasks` (side, partition index) with `jobs` workers, each with its own visitor
/// from `make`; returns the visitors.
#[allow(clippy::too_many_arguments)]
pub async fn run_pass<V: Visitor>(
    ctx: &Arc<StreamCtx>,
    source: &Arc<dyn Source>,
    reader: &Arc<dyn TableReader>,
    tasks: Vec<(Side, u32)>,
    jobs: usize,
    with_key: bool,
    cancel: &Cancel,
    make: impl Fn() -> V,
) -> Result<Vec<Worked<V>>, EngineError> {
    let queue = Arc::new(Mutex::new(tasks.into_iter().collect::<VecDeque<_>>()));
    let mut handles = Vec::new();
    for _ in 0..jobs.max(1) {
        let (ctx, source, reader, queue, cancel) = (
            ctx.clone(),
            source.clone(),
            reader.clone(),
            queue.clone(),
            cancel.clone(),
        );
        let mut visitor = make();
        handles.push(tokio::spawn(async move {
            let mut rejected = 0u64;
            loop {
                if cancel.is_cancelled() {
                    return Err(EngineError::Interrupted);
                }
                let next = queue.lock().ok().and_then(|mut q| q.pop_front());
                let Some((side, part)) = next else { break };
                read_one(
                    &ctx,
                    &source,
                    &reader,
                    side,
                    part,
                    with_key,
                    &cancel,
                    &mut visitor,
                    &mut rejected,
                )
                .await
                .inspect_err(|_| cancel.cancel())?;
            }
            Ok(Worked { visitor, rejected })
        }));
    }
    let mut out = Vec::new();
    let mut first_error = None;
    for h in handles {
        match h.await {
            Ok(Ok(w)) => out.push(w),
            Ok(Err(e)) => {
                if first_error.is_none() || matches!(first_error, Some(EngineError::Interrupted)) {
                    first_error = Some(e);
                }
            }
            Err(e) => {
                first_error.get_or_insert(EngineError::Core(Error::Store {
                    end: End::Target,
                    context: "verify worker".into(),
                    message: format!("internal error: a worker stopped unexpectedly: {e}"),
                    transient: false,
                }));
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

#[allow(clippy::too_many_arguments)]
async fn read_one<V: Visitor>(
    ctx: &Arc<StreamCtx>,
    source: &Arc<dyn Source>,
    reader: &Arc<dyn TableReader>,
    side: Side,
    part: u32,
    with_key: bool,
    cancel: &Cancel,
    visitor: &mut V,
    rejected: &mut u64,
) -> Result<(), EngineError> {
    let (tx, mut rx) = mpsc::channel::<Batch>(CHANNEL_BATCHES);
    let task = {
        let ctx = ctx.clone();
        match side {
            Side::Source => {
                let source = source.clone();
                tokio::spawn(async move {
                    let Some(p) = ctx.source_parts.get(part as usize) else {
                        return Ok(());
                    };
                    source.read(&ctx.spec, p, &ctx.read, tx).await
                })
            }
            Side::Target => {
                let reader = reader.clone();
                tokio::spawn(async move {
                    let Some(p) = ctx.target_parts.get(part as usize) else {
                        return Ok(());
                    };
                    reader.read(&ctx.scan, p, ctx.read.batch_rows, tx).await
                })
            }
        }
    };
    let mut canon = Canonicalizer::default();
    let mut lossy = LossyCounts::allowing(&ctx.lossy);
    let mut buckets = match side {
        Side::Source => ctx.aggregate.as_ref().map(Aggregate::buckets),
        Side::Target => None,
    };
    let mut groups = match side {
        Side::Source => ctx.pivot.as_ref().map(Pivot::groups),
        Side::Target => None,
    };
    let consumed: Result<(), EngineError> = async {
        let mut visit = |batch: Batch,
                         canon: &mut Canonicalizer,
                         lossy: &mut LossyCounts,
                         rejected: &mut u64,
                         buckets: Option<&mut Buckets>|
         -> Result<(), EngineError> {
            let batch = ctx.canonical(side, batch, canon, lossy, rejected, buckets)?;
            if !batch.is_empty() {
                let coords = ctx.layout.coordinates(&batch, with_key);
                visitor.visit(side, part, &batch, &coords);
            }
            Ok(())
        };
        loop {
            let batch = tokio::select! {
                b = rx.recv() => b,
                _ = cancel.cancelled() => return Err(EngineError::Interrupted),
            };
            let Some(batch) = batch else { break };
            match groups.as_mut() {
                Some(g) => {
                    // A narrow row the pivot rejects is not in the target.
                    let mut errors = RowErrors::new();
                    g.add(&batch, &mut errors)?;
                    *rejected += errors.len() as u64;
                }
                None => visit(batch, &mut canon, &mut lossy, rejected, buckets.as_mut())?,
            }
        }
        if let Some(g) = groups {
            for wide in g.finish(ctx.read.batch_rows)? {
                visit(wide, &mut canon, &mut lossy, rejected, buckets.as_mut())?;
            }
        }
        if let Some(b) = buckets {
            let batch = ctx.aggregated(b, &mut canon, &mut lossy, rejected)?;
            if !batch.is_empty() {
                let coords = ctx.layout.coordinates(&batch, with_key);
                visitor.visit(side, part, &batch, &coords);
            }
        }
        Ok(())
    }
    .await;
    drop(rx);
    let read = match task.await {
        Ok(r) => r.map_err(EngineError::from),
        Err(e) => Err(EngineError::Core(Error::Store {
            end: if side == Side::Source {
                End::Source
            } else {
                End::Target
            },
            context: format!("stream `{}`", ctx.spec.name),
            message: format!("internal error: the reader stopped unexpectedly: {e}"),
            transient: false,
        })),
    };
    consumed.and(read)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_sets_keep_two_then_all() {
        let mut p = PartSet::default();
        assert!(p.list(5).is_empty());
        p.add(3);
        p.add(3);
        p.add(0);
        assert_eq!(p.list(5), vec![3, 0]);
        p.add(4);
        assert_eq!(p.list(5), vec![0, 1, 2, 3, 4]);
        let mut q = PartSet::default();
        q.add(2);
        q.union(p);
        assert_eq!(q.list(3), vec![0, 1, 2]);
    }

    #[test]
    fn accumulators_add_up_and_compare() {
        let mut a = Acc {
            rows: [2, 2],
            sum: [5, 5],
            ..Acc::default()
        };
        assert!(!a.differs());
        let b = Acc {
            rows: [0, 1],
            sum: [0, 9],
            ..Acc::default()
        };
        a.absorb(&b);
        assert!(a.differs());
        assert_eq!(a.rows, [2, 3]);
    }
}
