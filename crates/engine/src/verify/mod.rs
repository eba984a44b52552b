//! `verify`: proves a target holds the same rows as the source, or shows exactly which rows
//! differ.
//!
//! Both sides are read once, in parallel partitions — the source through its connector and
//! the plan's mapping (exactly the rows `run` writes, in the target's types), the target
//! through its sink's [`TableReader`] — and brought into one canonical form
//! ([`canonical`]). Rows are grouped into buckets (series group × time slice, [`layout`]);
//! per bucket each side keeps a row count and an order-independent digest (the sum of row
//! hashes of [`tsmigrate_core::digest`]). Buckets that differ are read again, split into
//! finer buckets, until they are small enough to compare row by row ([`rows`]), which names
//! the exact missing, extra and different rows. `--sample N` also looks N random source rows
//! up in the target by key and compares them value by value.
//!
//! Any source connector and any sink with a reader work: verify knows nothing of a store.

pub mod canonical;
pub mod layout;
pub mod report;
pub mod rows;
pub mod scan;

use std::collections::{BTreeSet, BinaryHeap};
use std::sync::Arc;
use std::time::Instant;

use tsmigrate_core::convert::value_to_string;
use tsmigrate_core::{
    Batch, Column, DataType, Error, Field, Ledger, Plan, ReadOptions, ScanRange, Schema, Sink,
    Source, StreamSpec, TableReader, TableScan, TimeUnit, ValueRef, VerificationRecord,
};
use xxhash_rust::xxh3::xxh3_64_with_seed;

use crate::cancel::Cancel;
use crate::compile::CompiledStream;
use crate::error::EngineError;
use crate::events::{silent, Event, Events};
use crate::keys::infer_key;
use crate::options::{now_us, read_options as run_read_options, selected};

use self::canonical::{Canonicalizer, Window};
use self::layout::{is_time_type, us_to_ticks_ceil, Coordinates, Layout};
pub use self::report::{RowDiff, SampleReport, StreamVerify, VerifyReport};
use self::rows::{compare, Columns, Differences, RowStore};
use self::scan::{run_pass, Acc, IdMap, PartSet, Side, StreamCtx, Visitor};

/// How to verify.
#[derive(Clone)]
pub struct VerifyOptions {
    /// Partitions read at once (over both sides).
    pub jobs: usize,
    /// Rows per batch.
    pub batch_rows: usize,
    /// Rows per partition, on both sides.
    pub partition_rows: u64,
    /// Only these streams (empty: all).
    pub only_streams: Vec<String>,
    /// Compare only rows at or after this time (µs since the epoch).
    pub since_us: Option<i64>,
    /// Compare only rows before this time (µs since the epoch).
    pub until_us: Option<i64>,
    /// Without `until_us`: stop at the time the last run or sync covered (the ledger's
    /// horizon), so rows that arrived in the source since are not reported as missing.
    pub use_horizon: bool,
    /// Level-0 bucket width, in seconds.
    pub bucket_seconds: f64,
    /// Differing rows listed per stream (totals are always exact).
    pub max_diffs: usize,
    /// Source rows to spot-check by key lookup (0: none).
    pub sample: usize,
    /// Seed of the sample draw.
    pub seed: u64,
    /// A bucket with at most this many rows per side is compared row by row.
    pub leaf_rows: u64,
    /// Rows (both sides) held at once for row-by-row comparison.
    pub row_budget: u64,
    /// The plan's ledger: its horizons bound the window, and results are recorded in it.
    pub ledger: Option<Arc<dyn Ledger>>,
    /// Where the engine's events go.
    pub events: Arc<dyn Events>,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            jobs: 2,
            batch_rows: 16_384,
            partition_rows: 2_000_000,
            only_streams: Vec::new(),
            since_us: None,
            until_us: None,
            use_horizon: true,
            bucket_seconds: 86_400.0,
            max_diffs: 100,
            sample: 0,
            seed: 0,
            leaf_rows: 20_000,
            row_budget: 1_000_000,
            ledger: None,
            events: silent(),
        }
    }
}

/// Verifies every selected stream of `plan`; `on_stream` is called with each stream's result
/// as soon as it is known. Each result is recorded in the ledger (a failure to record is
/// warned about, not fatal).
pub async fn verify_plan(
    plan: &Plan,
    source: Arc<dyn Source>,
    sink: Arc<dyn Sink>,
    opts: &VerifyOptions,
    cancel: &Cancel,
    mut on_stream: impl FnMut(&StreamVerify),
) -> Result<Vec<StreamVerify>, EngineError> {
    let reader = sink.reader().ok_or_else(|| {
        Error::Unsupported(format!(
            "verify needs to read the target back, and {} cannot be read by this build",
            sink.describe()
        ))
    })?;
    let mut out = Vec::new();
    for spec in selected(plan, &opts.only_streams)? {
        let started = Instant::now();
        let (ctx, mut report) =
            prepare(spec, source.as_ref(), sink.as_ref(), &reader, opts).await?;
        verify_stream(&ctx, &source, &reader, opts, cancel, &mut report).await?;
        report.seconds = started.elapsed().as_secs_f64();
        report.rows_per_second =
            (report.source_rows + report.target_rows) as f64 / report.seconds.max(1e-9);
        if let Some(l) = &opts.ledger {
            let record = VerificationRecord {
                stream: report.name.clone(),
                verified_at: None,
                equal: report.equal,
                source_rows: report.source_rows,
                target_rows: report.target_rows,
                missing: report.missing,
                extra: report.extra,
                different: report.different,
                window: report.window.clone(),
                seconds: report.seconds,
            };
            if let Err(e) = l.record_verification(&record).await {
                let warning = format!(
                    "stream `{}`: could not record the result in the ledger: {e}",
                    report.name
                );
                opts.events.event(Event::Warning(warning)).await;
            }
        }
        on_stream(&report);
        out.push(report);
    }
    Ok(out)
}

/// Formats µs since the epoch as RFC 3339 (as reports print timestamps).
fn rfc3339(us: i64) -> String {
    value_to_string(ValueRef::Timestamp(us, TimeUnit::Micros))
}

/// How verify reads the source.
fn read_options(opts: &VerifyOptions) -> ReadOptions {
    ReadOptions {
        align_seconds: None,
        batch_rows: opts.batch_rows,
        partition_rows: opts.partition_rows,
        sync: None,
    }
}

/// Compiles a stream's mapping, checks its target and plans both sides' partitions.
async fn prepare(
    spec: &StreamSpec,
    source: &dyn Source,
    sink: &dyn Sink,
    reader: &Arc<dyn TableReader>,
    opts: &VerifyOptions,
) -> Result<(Arc<StreamCtx>, StreamVerify), EngineError> {
    let mut notes = Vec::new();
    let stream = CompiledStream::compile(spec.clone(), source, sink, &read_options(opts)).await?;
    let request = stream.request(stream.spec.write, false);
    let CompiledStream {
        mut spec,
        info,
        mapping,
        lookups,
        unpivot,
        pivot,
        aggregate,
        key,
        ..
    } = stream;
    let target = sink.prepare(&request, true).await?;
    // Rows are matched by the key the target identifies them by: the stream's (which SQL and
    // file sinks hand back as it is), or a table's own key (DynamoDB's partition and sort key,
    // which is also what its reader can look items up by).
    let key = if target.key.is_empty() {
        key
    } else {
        target.key.clone()
    };
    if target.created.is_some() {
        return Err(Error::NotFound(format!(
            "stream `{}`: the target table {} does not exist, so there is nothing to verify; run the migration first",
            spec.name, target.table
        ))
        .into());
    }
    let target_schema = Arc::new(Schema::new(target.columns.clone()));
    // The time column: a timestamp in the key, or the source's series time copied as is.
    let time = key
        .iter()
        .filter_map(|k| target_schema.fields.iter().find(|f| f.name == *k))
        .find_map(|f| match f.dtype {
            DataType::Timestamp(u) => Some((f.name.clone(), u.per_second())),
            _ => None,
        })
        .or_else(|| {
            let series = info.series.as_ref()?;
            let col = infer_key(std::slice::from_ref(&series.time_column), &mapping)?
                .into_iter()
                .next()?;
            let f = target_schema.fields.iter().find(|f| f.name == col)?;
            (key.contains(&col) && is_time_type(f.dtype)).then_some((col, series.ticks_per_second))
        });
    if key.is_empty() {
        notes.push(
            "the stream has no key (set key = [...] in the plan to name one): rows are matched on all their columns, so a changed row shows as one missing and one extra"
                .to_string(),
        );
    }
    let layout = Layout::new(
        &target_schema,
        &key,
        time.as_ref().map(|(c, p)| (c.as_str(), *p)),
        opts.bucket_seconds,
    );
    // The window compared, in µs: the plan's filter and --since/--until; without --until,
    // rows newer than the last run or sync (its horizon) up to now are left out — they may
    // have arrived after it — but not rows stamped later than now: future-dated when read,
    // the run copied them.
    let horizon = match &opts.ledger {
        Some(l) if opts.use_horizon && opts.until_us.is_none() => {
            l.stream(&spec.name).await?.and_then(|s| s.horizon_us)
        }
        _ => None,
    };
    let lo = max_opt(spec.filter.since_us()?, opts.since_us);
    let hi = min_opt(spec.filter.until_us()?, opts.until_us);
    let now = source.snapshot_time().await?.unwrap_or_else(now_us);
    let gap = horizon
        .filter(|h| hi.is_none_or(|hi| *h < hi) && *h < now)
        .map(|h| (h, hi.map_or(now, |hi| hi.min(now))));
    let mut window_text = String::new();
    let (window, range) = match (&time, lo.is_some() || hi.is_some() || gap.is_some()) {
        (Some((col, per)), true) => {
            let ticks = |us: i64| us_to_ticks_ceil(us, *per);
            let w = Window {
                lo: lo.map(ticks),
                hi: hi.map(ticks),
                gap: gap.map(|(from, to)| (ticks(from), ticks(to))),
            };
            window_text = window_words(col, lo, hi, gap);
            // Read less from the source too: its own filter holds the same rows (and the
            // window is applied again to both sides' rows in the target's terms).
            spec.filter.since = lo.map(rfc3339);
            spec.filter.until = hi.map(rfc3339);
            (
                w,
                Some(ScanRange {
                    column: col.clone(),
                    lo: w.lo,
                    hi: w.hi,
                }),
            )
        }
        (None, true) if opts.since_us.is_some() || opts.until_us.is_some() => {
            return Err(Error::Plan(format!(
                "stream `{}`: --since/--until need a time column in the stream's key, and it has none",
                spec.name
            ))
            .into());
        }
        _ => (Window::default(), None),
    };
    if window_text.is_empty() {
        window_text = "all rows".to_string();
    }
    let scan = TableScan {
        stream: spec.name.clone(),
        table: target.table.clone(),
        columns: target.columns.clone(),
        range,
        scope: request.scope.clone(),
    };
    let read = run_read_options(&spec, &read_options(opts))?;
    let source_parts = source.partitions(&spec, &read).await?;
    let target_parts = reader.partitions(&scan, opts.partition_rows).await?;
    let report = StreamVerify {
        name: spec.name.clone(),
        table: target.table.clone(),
        window: window_text,
        columns: target_schema
            .fields
            .iter()
            .map(|f| f.name.clone())
            .collect(),
        key: layout
            .key
            .iter()
            .filter_map(|i| target_schema.fields.get(*i).map(|f| f.name.clone()))
            .collect(),
        source_partitions: source_parts.len() as u64,
        target_partitions: target_parts.len() as u64,
        notes,
        ..StreamVerify::default()
    };
    let lossy = spec.lossy_kinds()?;
    Ok((
        Arc::new(StreamCtx {
            spec,
            mapping,
            lookups,
            unpivot,
            pivot,
            aggregate,
            target_schema,
            limits: target.limits.clone(),
            lossy,
            scan,
            layout,
            window,
            source_parts,
            target_parts,
            read,
        }),
        report,
    ))
}

/// The window compared, in words (µs bounds; `gap`: the rows left out, newer than the last
/// run or sync).
fn window_words(col: &str, lo: Option<i64>, hi: Option<i64>, gap: Option<(i64, i64)>) -> String {
    let mut text = match (lo, hi) {
        (Some(l), Some(h)) => format!(
            "rows with {col} from {} to before {}",
            rfc3339(l),
            rfc3339(h)
        ),
        (Some(l), None) => format!("rows with {col} from {}", rfc3339(l)),
        (None, Some(h)) => format!("rows with {col} before {}", rfc3339(h)),
        (None, None) => format!("rows with {col}"),
    };
    if let Some((from, to)) = gap {
        text.push_str(&format!(
            " but not from {} to before {} (newer than the last run or sync, they may have arrived after it; \
             rows stamped later, future-dated, are compared; --no-horizon compares every row)",
            rfc3339(from),
            rfc3339(to)
        ));
    }
    text
}

fn max_opt(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, y) => x.or(y),
    }
}

fn min_opt(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, y) => x.or(y),
    }
}

/// A bucket whose sides differ, still to be narrowed down or compared row by row.
#[derive(Clone, Copy, Debug)]
struct Pending {
    level: u32,
    id: u64,
    acc: Acc,
}

/// What the first pass collects: per-bucket accumulators, row counts and the sample.
struct Full {
    layout: Layout,
    buckets: IdMap<Acc>,
    rows: [u64; 2],
    sample: Sampler,
}

impl Visitor for Full {
    fn visit(&mut self, side: Side, part: u32, batch: &Batch, c: &Coordinates) {
        let s = side as usize;
        self.rows[s] += batch.len() as u64;
        // Consecutive rows mostly share a bucket: add runs, not rows, to the map.
        let mut run: Option<(u64, u64, u64)> = None;
        let flush = |id: u64, n: u64, sum: u64, map: &mut IdMap<Acc>| {
            let a = map.entry(id).or_default();
            a.rows[s] += n;
            a.sum[s] = a.sum[s].wrapping_add(sum);
            a.parts[s].add(part);
        };
        for r in 0..batch.len() {
            let id = self.layout.bucket(0, c.series[r], c.time[r]);
            match &mut run {
                Some((cur, n, sum)) if *cur == id => {
                    *n += 1;
                    *sum = sum.wrapping_add(c.rows[r]);
                }
                _ => {
                    if let Some((cur, n, sum)) = run.take() {
                        flush(cur, n, sum, &mut self.buckets);
                    }
                    run = Some((id, 1, c.rows[r]));
                }
            }
        }
        if let Some((cur, n, sum)) = run {
            flush(cur, n, sum, &mut self.buckets);
        }
        if side == Side::Source {
            self.sample.offer(batch, &c.rows);
        }
    }
}

/// Draws the source rows of `--sample`: the rows with the smallest seeded hash (a uniform
/// draw that does not depend on the order rows are read in).
struct Sampler {
    k: usize,
    seed: u64,
    heap: BinaryHeap<Scored>,
}

struct Scored {
    score: u64,
    row: Batch,
}

impl PartialEq for Scored {
    fn eq(&self, o: &Self) -> bool {
        self.score == o.score
    }
}
impl Eq for Scored {}
impl PartialOrd for Scored {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Scored {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.score.cmp(&o.score)
    }
}

impl Sampler {
    fn new(k: usize, seed: u64) -> Sampler {
        Sampler {
            k,
            seed,
            heap: BinaryHeap::new(),
        }
    }

    fn offer(&mut self, batch: &Batch, rows: &[u64]) {
        if self.k == 0 {
            return;
        }
        for (r, h) in rows.iter().enumerate() {
            let score = xxh3_64_with_seed(&h.to_le_bytes(), self.seed);
            if self.heap.len() >= self.k && self.heap.peek().is_some_and(|t| t.score <= score) {
                continue;
            }
            let mut keep = vec![false; batch.len()];
            keep[r] = true;
            self.heap.push(Scored {
                score,
                row: batch.filter(&keep),
            });
            if self.heap.len() > self.k {
                self.heap.pop();
            }
        }
    }

    fn absorb(&mut self, other: Sampler) {
        for s in other.heap {
            self.heap.push(s);
            if self.heap.len() > self.k {
                self.heap.pop();
            }
        }
    }
}

/// What a narrowing pass collects: finer digests of the buckets being split, and the rows
/// of the buckets being compared row by row.
struct Refine {
    layout: Layout,
    roles: Arc<IdMap<Role>>,
    levels: Arc<Vec<u32>>,
    subs: IdMap<(u32, Acc)>,
    stores: [RowStore; 2],
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Split,
    Compare,
}

impl Visitor for Refine {
    fn visit(&mut self, side: Side, part: u32, batch: &Batch, c: &Coordinates) {
        let s = side as usize;
        let mut keep = vec![false; batch.len()];
        let mut any = false;
        for (r, kept) in keep.iter_mut().enumerate() {
            for &lv in self.levels.iter() {
                let id = self.layout.bucket(lv, c.series[r], c.time[r]);
                match self.roles.get(&id) {
                    Some(Role::Split) => {
                        let sub = self.layout.bucket(lv + 1, c.series[r], c.time[r]);
                        let (_, a) = self.subs.entry(sub).or_insert((lv + 1, Acc::default()));
                        a.rows[s] += 1;
                        a.sum[s] = a.sum[s].wrapping_add(c.rows[r]);
                        a.parts[s].add(part);
                        break;
                    }
                    Some(Role::Compare) => {
                        *kept = true;
                        any = true;
                        break;
                    }
                    None => {}
                }
            }
        }
        if any {
            self.stores[s].add(batch, &keep, &c.key, &c.rows);
        }
    }
}

async fn verify_stream(
    ctx: &Arc<StreamCtx>,
    source: &Arc<dyn Source>,
    reader: &Arc<dyn TableReader>,
    opts: &VerifyOptions,
    cancel: &Cancel,
    report: &mut StreamVerify,
) -> Result<(), EngineError> {
    // Pass 1: every partition of both sides, bucket digests.
    let mut tasks: Vec<(Side, u32)> = Vec::new();
    // Interleave the sides so both are read at once.
    let (ns, nt) = (ctx.source_parts.len(), ctx.target_parts.len());
    for i in 0..ns.max(nt) {
        if i < ns {
            tasks.push((Side::Source, i as u32));
        }
        if i < nt {
            tasks.push((Side::Target, i as u32));
        }
    }
    let worked = run_pass(ctx, source, reader, tasks, opts.jobs, false, cancel, || {
        Full {
            layout: ctx.layout.clone(),
            buckets: IdMap::default(),
            rows: [0, 0],
            sample: Sampler::new(opts.sample, opts.seed),
        }
    })
    .await?;
    let mut buckets: IdMap<Acc> = IdMap::default();
    let mut sampler = Sampler::new(opts.sample, opts.seed);
    for w in worked {
        report.source_rejected += w.rejected;
        report.source_rows += w.visitor.rows[0];
        report.target_rows += w.visitor.rows[1];
        if buckets.is_empty() {
            buckets = w.visitor.buckets;
        } else {
            for (id, a) in w.visitor.buckets {
                buckets.entry(id).or_default().absorb(&a);
            }
        }
        sampler.absorb(w.visitor.sample);
    }
    report.passes = 1;
    report.buckets = buckets.len() as u64;
    let mut pending: Vec<Pending> = buckets
        .iter()
        .filter(|(_, a)| a.differs())
        .map(|(id, acc)| Pending {
            level: 0,
            id: *id,
            acc: *acc,
        })
        .collect();
    drop(buckets);
    report.buckets_differing = pending.len() as u64;
    if report.source_rejected > 0 {
        report.notes.push(format!(
            "{} source row(s) are rejected by the plan's mapping (as `run` rejects them) and were not compared",
            report.source_rejected
        ));
    }

    // Narrow the differing buckets down, then compare their rows.
    let names = report.columns.clone();
    let cols = Columns {
        names: &names,
        key: &ctx.layout.key,
    };
    let mut diffs = Differences::default();
    while !pending.is_empty() {
        if cancel.is_cancelled() {
            return Err(EngineError::Interrupted);
        }
        pending.sort_by_key(|p| (p.level, p.id));
        let mut roles: IdMap<Role> = IdMap::default();
        let mut levels = BTreeSet::new();
        let mut parts = [PartSet::default(), PartSet::default()];
        let mut deferred = Vec::new();
        let mut budget = 0u64;
        let mut comparing = false;
        for p in pending.drain(..) {
            let big = p.acc.rows[0].max(p.acc.rows[1]) > opts.leaf_rows;
            let role = if big && ctx.layout.splittable(p.level) {
                Role::Split
            } else {
                let rows = p.acc.rows[0] + p.acc.rows[1];
                if comparing && budget + rows > opts.row_budget {
                    deferred.push(p);
                    continue;
                }
                comparing = true;
                budget += rows;
                Role::Compare
            };
            roles.insert(p.id, role);
            levels.insert(p.level);
            parts[0].union(p.acc.parts[0]);
            parts[1].union(p.acc.parts[1]);
        }
        let mut tasks: Vec<(Side, u32)> = parts[0]
            .list(ctx.source_parts.len())
            .into_iter()
            .map(|p| (Side::Source, p))
            .collect();
        tasks.extend(
            parts[1]
                .list(ctx.target_parts.len())
                .into_iter()
                .map(|p| (Side::Target, p)),
        );
        let roles = Arc::new(roles);
        let levels = Arc::new(levels.into_iter().collect::<Vec<_>>());
        let worked = run_pass(ctx, source, reader, tasks, opts.jobs, true, cancel, || {
            Refine {
                layout: ctx.layout.clone(),
                roles: roles.clone(),
                levels: levels.clone(),
                subs: IdMap::default(),
                stores: [RowStore::default(), RowStore::default()],
            }
        })
        .await?;
        report.passes += 1;
        let mut subs: IdMap<(u32, Acc)> = IdMap::default();
        let (mut src, mut tgt) = (RowStore::default(), RowStore::default());
        for w in worked {
            for (id, (lv, a)) in w.visitor.subs {
                subs.entry(id).or_insert((lv, Acc::default())).1.absorb(&a);
            }
            let [s, t] = w.visitor.stores;
            src.absorb(s);
            tgt.absorb(t);
        }
        if !src.is_empty() || !tgt.is_empty() {
            compare(&src, &tgt, &cols, opts.max_diffs, &mut diffs);
        }
        pending = subs
            .into_iter()
            .filter(|(_, (_, a))| a.differs())
            .map(|(id, (level, acc))| Pending { level, id, acc })
            .collect();
        pending.extend(deferred);
    }
    diffs
        .listed
        .sort_by(|a, b| a.key.cmp(&b.key).then(a.kind.cmp(&b.kind)));
    report.missing = diffs.missing;
    report.extra = diffs.extra;
    report.different = diffs.different;
    report.diffs = diffs.listed;
    report.diffs_truncated = diffs.truncated;

    if opts.sample > 0 {
        report.sample = Some(spot_check(ctx, reader, sampler, opts, &cols).await?);
    }
    report.equal = report.differences() == 0
        && report
            .sample
            .as_ref()
            .is_none_or(|s| s.missing == 0 && s.different == 0);
    Ok(())
}

/// Looks the sampled source rows up in the target by key and compares them value by value.
async fn spot_check(
    ctx: &Arc<StreamCtx>,
    reader: &Arc<dyn TableReader>,
    sampler: Sampler,
    opts: &VerifyOptions,
    cols: &Columns<'_>,
) -> Result<SampleReport, EngineError> {
    let mut report = SampleReport {
        requested: opts.sample as u64,
        seed: opts.seed,
        ..SampleReport::default()
    };
    let rows: Vec<Batch> = sampler
        .heap
        .into_sorted_vec()
        .into_iter()
        .map(|s| s.row)
        .collect();
    if rows.is_empty() {
        return Ok(report);
    }
    let key_fields: Vec<Field> = ctx
        .layout
        .key
        .iter()
        .filter_map(|i| ctx.target_schema.fields.get(*i).cloned())
        .collect();
    let mut key_cols: Vec<Column> = key_fields
        .iter()
        .map(|f| Column::with_capacity(f.dtype, rows.len()))
        .collect();
    for b in &rows {
        for (c, i) in key_cols.iter_mut().zip(&ctx.layout.key) {
            if let Some(col) = b.columns.get(*i) {
                c.push_value(col.get(0));
            }
        }
    }
    let keys = Batch::new(
        Arc::new(Schema::new(key_fields)),
        key_cols.into_iter().map(Arc::new).collect(),
    )
    .ok_or_else(|| Error::Internal("sample keys do not fit their schema".into()))?;
    let found = reader.lookup(&ctx.scan, &keys).await?;
    let found = canonical::align_types(found, &ctx.target_schema);
    let (found, _) = Canonicalizer::default().apply(found);
    let fc = ctx.layout.coordinates(&found, true);
    let mut by_key: IdMap<Vec<usize>> = IdMap::default();
    for (r, k) in fc.key.iter().enumerate() {
        by_key.entry(*k).or_default().push(r);
    }
    for b in &rows {
        let c = ctx.layout.coordinates(b, true);
        let (k, h) = (c.key[0], c.rows[0]);
        report.checked += 1;
        let matches = by_key.get(&k).cloned().unwrap_or_default();
        if matches.iter().any(|r| fc.rows[*r] == h) {
            report.equal += 1;
            continue;
        }
        let sv: Vec<String> = b.row(0).into_iter().map(value_to_string).collect();
        let tv: Option<Vec<String>> = matches
            .first()
            .map(|r| found.row(*r).into_iter().map(value_to_string).collect());
        let kind = if tv.is_some() {
            report.different += 1;
            "different"
        } else {
            report.missing += 1;
            "missing"
        };
        if report.diffs.len() < opts.max_diffs {
            report.diffs.push(RowDiff {
                kind: kind.to_string(),
                key: cols.key_of(&sv),
                columns: tv
                    .as_deref()
                    .map(|t| cols.differing(&sv, t))
                    .unwrap_or_default(),
                source: Some(cols.named(&sv)),
                target: tv.as_deref().map(|t| cols.named(t)),
                duplicate_key: false,
            });
        }
    }
    Ok(report)
}
