//! Reading a PostgreSQL table: [`PgTableReader`] splits a table into partitions by heap block
//! ranges, reads each through binary `COPY … TO STDOUT` decoded by [`crate::codec`], and looks
//! rows up by key for spot checks. `verify` reads a PostgreSQL target back with it, and the
//! PostgreSQL source ([`crate::PgSource`]) reads its tables through it.
//!
//! Partitions are ranges of heap blocks (`ctid`), which PostgreSQL 14 and later scan directly
//! (TID range scans): each partition reads only its own blocks, whatever indexes the table has.
//! The last partition is open-ended, so rows appended after the partitions were planned are
//! still read. Where block ranges do not apply — servers older than 14, partitioned tables
//! (whose rows live in their partitions' heaps), views and foreign tables — the table is
//! read as one partition.
//!
//! A TimescaleDB hypertable is cut by its chunks' time ranges instead ([`crate::chunks`]).
//!
//! Every row is read exactly once as long as rows are only added while partitions are read:
//! an `UPDATE` running at the same time can move a row to a block another partition has
//! already read (or has yet to read). Verification compares tables that are not being
//! rewritten, so this is not guarded against.

use std::sync::Arc;

use async_trait::async_trait;
use tokio_postgres::Client;
use tsmigrate_core::{
    Batch, BatchTx, Column, ConnString, DataType, End, Error, Field, Partition, Result, ScanRange,
    Schema, TableReader, TableScan, TimeUnit, ValueRef,
};

use crate::catalog::{find_column, table_columns, table_oid, TableColumn};
use crate::chunks::{hypertable_chunks, slice_partitions, Slice};
use crate::codec::PgType;
use crate::connect::{connect, quote_ident, quote_literal, quote_table_checked, store_error};
use crate::copy_out::copy_out_batches;

/// First server version with TID range scans (`ctid >= … AND ctid < …` reads only those
/// blocks).
const TID_RANGE_SCAN_VERSION: i32 = 140_000;
/// Key rows per lookup statement.
const LOOKUP_CHUNK: usize = 500;
/// Rows per batch decoded by a lookup (the batches are concatenated anyway).
const LOOKUP_BATCH_ROWS: usize = 4096;
/// Tables of at most this many blocks are counted exactly when the catalog has no row
/// estimate (1 MiB with 8 KiB blocks).
const COUNT_ALL_BLOCKS: u64 = 128;
/// Windows of blocks sampled to estimate the rows of a larger table without an estimate.
const SAMPLE_WINDOWS: u64 = 8;
/// Blocks per sampled window.
const SAMPLE_WINDOW_BLOCKS: u64 = 16;
/// Lowest instant PostgreSQL stores (4714-11-24 00:00 BC), µs since 1970.
const PG_MIN_UNIX_US: i64 = -210_866_803_200_000_000;
/// Largest magnitude of µs that `float8 * interval` multiplies exactly (2^53).
const EXACT_FLOAT_US: u64 = 1 << 53;

/// Reads tables of a PostgreSQL database (the [`TableReader`] of [`crate::PgSink`], so
/// `verify` can compare a target with its source; the table reading of [`crate::PgSource`]).
pub struct PgTableReader {
    url: ConnString,
    /// The end errors are reported for.
    end: End,
}

impl PgTableReader {
    /// A reader of the database at `url` (the sink's connection string).
    pub fn new(url: ConnString) -> PgTableReader {
        PgTableReader {
            url,
            end: End::Target,
        }
    }

    /// A reader of a source database: errors name the source end.
    pub(crate) fn for_source(url: ConnString) -> PgTableReader {
        PgTableReader {
            url,
            end: End::Source,
        }
    }

    pub(crate) async fn client(&self) -> Result<Client> {
        connect(&self.url, self.end).await
    }

    pub(crate) fn err(&self, context: &str, e: &tokio_postgres::Error) -> Error {
        store_error(self.end, context, e, &self.url)
    }

    /// The oid of the scan's table, or a `NotFound` error naming the stream and table.
    pub(crate) async fn oid(&self, client: &Client, stream: &str, table: &str) -> Result<u32> {
        let ctx = format!("stream `{stream}`, table {table}");
        table_oid(client, table)
            .await
            .map_err(|e| self.err(&ctx, &e))?
            .ok_or_else(|| {
                Error::NotFound(match self.end {
                    End::Target => format!(
                        "{ctx}: the target table does not exist; check the stream's table name, \
                         or run the migration before verifying it"
                    ),
                    End::Source => format!(
                        "{ctx}: the source has no such table or view; check the stream's `from` \
                         (schema-qualify it, `schema.table`, when it is not on the search_path)"
                    ),
                })
            })
    }

    /// Looks up the scan's table and columns: the select list, the wire types and the schema
    /// of the batches (scan names, wire types' dtypes), plus the catalog's columns.
    async fn resolve(
        &self,
        client: &Client,
        scan: &TableScan,
        table: &str,
    ) -> Result<(Resolved, Vec<TableColumn>)> {
        let oid = self.oid(client, &scan.stream, table).await?;
        let ctx = format!("stream `{}`, table {table}", scan.stream);
        let existing = table_columns(client, oid)
            .await
            .map_err(|e| self.err(&ctx, &e))?;
        let mut select = Vec::with_capacity(scan.columns.len());
        let mut types = Vec::with_capacity(scan.columns.len());
        let mut fields = Vec::with_capacity(scan.columns.len());
        for f in &scan.columns {
            let col =
                find_column(&existing, &f.name).ok_or_else(|| missing(&ctx, &f.name, &existing))?;
            let pt = readable_type(self.end, &ctx, col)?;
            select.push(format!("t.{}", quote_ident(&col.name)));
            types.push(pt);
            fields.push(Field::new(f.name.clone(), pt.dtype()));
        }
        Ok((
            Resolved {
                select: select.join(", "),
                types,
                schema: Arc::new(Schema::new(fields)),
            },
            existing,
        ))
    }

    /// Reads one partition of `scan` on `client` (see [`TableReader::read`]).
    pub(crate) async fn read_with(
        &self,
        client: &Client,
        scan: &TableScan,
        partition: &Partition,
        batch_rows: usize,
        out: &BatchTx,
    ) -> Result<()> {
        let table = quote_table_checked(&scan.table, &format!("stream `{}`: table", scan.stream))?;
        let ctx = format!(
            "stream `{}`, table {table}, partition {}",
            scan.stream, partition.id
        );
        let (resolved, existing) = self.resolve(client, scan, &table).await?;
        let mut conds = match Slice::parse(&partition.spec) {
            Some(slice) => {
                let col = find_column(&existing, &slice.column)
                    .ok_or_else(|| missing(&ctx, &slice.column, &existing))?;
                let range = ScanRange {
                    column: slice.column.clone(),
                    lo: slice.lo,
                    hi: slice.hi,
                };
                range_conditions(&ctx, &range, col, TimeUnit::Micros)?
            }
            None => self.block_conditions(&ctx, partition)?,
        };
        conds.extend(scan_range_conditions(&ctx, scan, &existing)?);
        let mut query = format!("SELECT {} FROM {table} t", resolved.select);
        if !conds.is_empty() {
            query.push_str(" WHERE ");
            query.push_str(&conds.join(" AND "));
        }
        copy_out_batches(
            client,
            &self.url,
            &query,
            resolved.schema,
            resolved.types,
            batch_rows,
            &ctx,
            Ok,
            out,
        )
        .await
        .map_err(|e| at_end(self.end, e))?;
        Ok(())
    }

    /// The `ctid` conditions of a block-range partition, or an error for a spec that is none.
    fn block_conditions(&self, ctx: &str, partition: &Partition) -> Result<Vec<String>> {
        let blocks = Blocks::parse(&partition.spec).ok_or_else(|| {
            let again = match self.end {
                End::Target => "plan the verification again",
                End::Source => "plan the stream again (tsmigrate run --restart)",
            };
            Error::Plan(format!(
                "{ctx}: the partition's description {} is not a block range or time slice this tsmigrate reads; {again}",
                partition.spec
            ))
        })?;
        Ok(blocks.conditions())
    }
}

/// The wire type tsmigrate reads column `col` as, or an `Unsupported` error naming it and
/// saying what to do (`end` decides the advice: leave a target column out of the stream,
/// cast a source column in a view).
pub(crate) fn readable_type(end: End, ctx: &str, col: &TableColumn) -> Result<PgType> {
    PgType::from_typname(&col.typname).ok_or_else(|| {
        let advice = match end {
            End::Target => "leave it out of the stream's columns".to_string(),
            End::Source => format!(
                "read a view that casts it to a supported type instead (CREATE VIEW … AS SELECT …, {}::text AS {} FROM …) — \
                 supported: bigint, integer, smallint, double precision, real, numeric, text/varchar, boolean, \
                 timestamptz, timestamp, jsonb/json, uuid, bytea",
                quote_ident(&col.name),
                quote_ident(&col.name)
            ),
        };
        Error::Unsupported(format!(
            "{ctx}: column `{}` has type {}, which tsmigrate cannot read; {advice}",
            col.name, col.formatted
        ))
    })
}

/// The partition reading a whole table or view (no block range).
pub(crate) fn whole_table(estimated_rows: Option<u64>) -> Partition {
    Partition {
        id: Blocks::All.id(),
        estimated_rows,
        spec: Blocks::All.spec(),
    }
}

/// A scan's columns resolved against the catalog.
struct Resolved {
    /// `t."a", t."b"`.
    select: String,
    /// Wire types, in scan order.
    types: Vec<PgType>,
    /// Schema of the batches delivered.
    schema: Arc<Schema>,
}

/// The error for a column the table does not have.
fn missing(ctx: &str, name: &str, existing: &[TableColumn]) -> Error {
    let names: Vec<&str> = existing.iter().map(|t| t.name.as_str()).collect();
    Error::Plan(format!(
        "{ctx}: the table has no column `{name}`; its columns are: {} — check the stream's column names",
        names.join(", ")
    ))
}

/// Re-labels an error of [`copy_out_batches`] (which reads sources) as `end`'s.
fn at_end(end: End, e: Error) -> Error {
    match e {
        Error::Store {
            context,
            message,
            transient,
            ..
        } => Error::Store {
            end,
            context,
            message,
            transient,
        },
        Error::Decode {
            context, message, ..
        } => Error::Decode {
            end,
            context,
            message,
        },
        other => other,
    }
}

/// An integer as an SQL literal (negative numbers in parentheses, so they never merge with a
/// preceding operator).
fn int_sql(x: impl Into<i128>) -> String {
    let x = x.into();
    if x < 0 {
        format!("({x})")
    } else {
        x.to_string()
    }
}

/// SQL for the instant `us` microseconds after the Unix epoch, as `timestamptz` (`base` =
/// `timestamptz`) or `timestamp` (`base` = `timestamp`). Exact for every `i64`: the
/// multiplication `float8 * interval` is exact up to 2^53 µs (about 285 years either side
/// of 1970); beyond, the value is split into whole 10^6 s and the remaining µs.
fn epoch_plus(base: &str, us: i64) -> String {
    if us.unsigned_abs() <= EXACT_FLOAT_US {
        format!(
            "{base} 'epoch' + {} * interval '1 microsecond'",
            int_sql(us)
        )
    } else {
        let q = us / 1_000_000_000_000;
        let r = us % 1_000_000_000_000;
        format!(
            "{base} 'epoch' + {} * interval '1000000 seconds' + {} * interval '1 microsecond'",
            int_sql(q),
            int_sql(r)
        )
    }
}

/// A bound given in ticks of `unit` as a µs bound selecting the same µs instants: for both
/// an inclusive lower and an exclusive upper bound, `t_us >= b` ⇔ `t_us · 1000 >= ticks`
/// with nanoseconds (hence the ceiling), and a plain multiplication for coarser units.
fn bound_micros(ticks: i64, unit: TimeUnit) -> i128 {
    match unit {
        TimeUnit::Nanos => {
            (ticks as i128).div_euclid(1000) + i128::from(ticks.rem_euclid(1000) != 0)
        }
        other => ticks as i128 * i128::from(1_000_000 / other.per_second()),
    }
}

/// The `WHERE` conditions of a time range on column `col` (of the table's type `col_type`),
/// with bounds in the ticks of `unit` for timestamp columns.
fn range_conditions(
    ctx: &str,
    range: &ScanRange,
    col: &TableColumn,
    unit: TimeUnit,
) -> Result<Vec<String>> {
    let q = format!("t.{}", quote_ident(&col.name));
    let mut conds = Vec::new();
    match col.typname.as_str() {
        "timestamptz" | "timestamp" => {
            let base = col.typname.as_str();
            if let Some(lo) = range.lo {
                let lo = bound_micros(lo, unit);
                if lo > i128::from(i64::MAX) {
                    conds.push("false".to_string());
                } else if lo >= i128::from(PG_MIN_UNIX_US) {
                    conds.push(format!("{q} >= {}", epoch_plus(base, lo as i64)));
                }
            }
            if let Some(hi) = range.hi {
                let hi = bound_micros(hi, unit);
                if hi < i128::from(PG_MIN_UNIX_US) {
                    conds.push("false".to_string());
                } else if hi <= i128::from(i64::MAX) {
                    conds.push(format!("{q} < {}", epoch_plus(base, hi as i64)));
                }
            }
        }
        "int2" | "int4" | "int8" => {
            if let Some(lo) = range.lo {
                conds.push(format!("{q} >= {}", int_sql(lo)));
            }
            if let Some(hi) = range.hi {
                conds.push(format!("{q} < {}", int_sql(hi)));
            }
        }
        _ => {
            return Err(Error::Unsupported(format!(
                "{ctx}: the time range is on column `{}` of type {}; only timestamp and integer columns can bound a verification window",
                col.name, col.formatted
            )))
        }
    }
    Ok(conds)
}

/// The scan's time range as `WHERE` conditions (none without a range).
fn scan_range_conditions(
    ctx: &str,
    scan: &TableScan,
    existing: &[TableColumn],
) -> Result<Vec<String>> {
    let Some(range) = &scan.range else {
        return Ok(Vec::new());
    };
    let col = find_column(existing, &range.column)
        .ok_or_else(|| missing(ctx, &range.column, existing))?;
    let unit = scan
        .columns
        .iter()
        .find(|f| f.name == range.column)
        .or_else(|| {
            scan.columns
                .iter()
                .find(|f| f.name.eq_ignore_ascii_case(&range.column))
        })
        .and_then(|f| match f.dtype {
            DataType::Timestamp(u) => Some(u),
            _ => None,
        })
        .unwrap_or(TimeUnit::Micros);
    range_conditions(ctx, range, col, unit)
}

/// What a partition's spec says to read: a block range, or the whole table.
#[derive(Debug, PartialEq)]
enum Blocks {
    /// Every row (no `ctid` condition).
    All,
    /// Blocks `from..to` (`to = None`: to the end of the table, however long it has grown).
    Range(u64, Option<u64>),
}

impl Blocks {
    fn spec(&self) -> serde_json::Value {
        match self {
            Blocks::All => serde_json::json!({ "blocks": null }),
            Blocks::Range(from, to) => serde_json::json!({ "blocks": [from, to] }),
        }
    }

    fn id(&self) -> String {
        match self {
            Blocks::All => "all".to_string(),
            Blocks::Range(from, Some(to)) => format!("blocks-{from:06}-{to:06}"),
            Blocks::Range(from, None) => format!("blocks-{from:06}-end"),
        }
    }

    fn parse(spec: &serde_json::Value) -> Option<Blocks> {
        match spec.get("blocks") {
            None | Some(serde_json::Value::Null) => Some(Blocks::All),
            Some(serde_json::Value::Array(a)) if a.len() == 2 => {
                let from = a[0].as_u64().filter(|b| *b <= u64::from(u32::MAX))?;
                let to = match &a[1] {
                    serde_json::Value::Null => None,
                    v => Some(
                        v.as_u64()
                            .filter(|b| *b <= u64::from(u32::MAX) && *b >= from)?,
                    ),
                };
                Some(Blocks::Range(from, to))
            }
            _ => None,
        }
    }

    /// The `ctid` conditions reading these blocks.
    fn conditions(&self) -> Vec<String> {
        let mut conds = Vec::new();
        if let Blocks::Range(from, to) = self {
            if *from > 0 {
                conds.push(format!("t.ctid >= '({from},0)'::tid"));
            }
            if let Some(to) = to {
                conds.push(format!("t.ctid < '({to},0)'::tid"));
            }
        }
        conds
    }
}

/// `count(*)` of the rows in blocks `from..to`, as a scalar subquery.
fn count_blocks(table: &str, from: u64, to: u64) -> String {
    format!(
        "(SELECT count(*) FROM {table} t WHERE t.ctid >= '({from},0)'::tid AND t.ctid < '({to},0)'::tid)"
    )
}

/// Splits `blocks` blocks holding about `rows` rows into partitions of about `partition_rows`
/// rows (at least one, at most one per block); the last is open-ended.
fn block_partitions(blocks: u64, rows: u64, partition_rows: u64) -> Vec<Partition> {
    let n = rows.div_ceil(partition_rows.max(1)).clamp(1, blocks.max(1));
    let bound = |i: u64| (u128::from(blocks) * u128::from(i) / u128::from(n)) as u64;
    (0..n)
        .map(|i| {
            let (from, to) = (bound(i), bound(i + 1));
            let blocks_range = if i + 1 == n {
                Blocks::Range(from, None)
            } else {
                Blocks::Range(from, Some(to))
            };
            let share = if blocks == 0 {
                rows
            } else {
                (u128::from(rows) * u128::from(to - from) / u128::from(blocks)) as u64
            };
            Partition {
                id: blocks_range.id(),
                estimated_rows: Some(share),
                spec: blocks_range.spec(),
            }
        })
        .collect()
}

/// Hex digits of `bytes`.
fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// A float as an exact SQL literal of `ty` (shortest round-trip text; NaN and infinities by
/// name).
fn float_sql(x: f64, ty: &str) -> String {
    let text = if x.is_nan() {
        "NaN".to_string()
    } else if x == f64::INFINITY {
        "Infinity".to_string()
    } else if x == f64::NEG_INFINITY {
        "-Infinity".to_string()
    } else {
        format!("{x:?}")
    };
    format!("'{text}'::pg_catalog.{ty}")
}

/// A key value as an SQL literal comparing equal to exactly the column values equal to it:
/// `Ok(None)` when no value of the column can equal it (an integer out of the column's
/// range, a nanosecond timestamp between two microseconds, text holding a NUL byte…).
/// Literals are cast to the column's base type without its modifier, which could round or
/// truncate the key (`varchar(5)`, `numeric(10,2)`, `timestamptz(3)`) and make it match rows
/// it does not equal.
fn key_literal(v: ValueRef<'_>, col: &TableColumn, pt: PgType) -> Option<Option<String>> {
    let ty = col.typname.as_str();
    let lit = match (v, pt) {
        (ValueRef::Null, _) => return Some(None),
        (ValueRef::Bool(b), PgType::Bool) => b.to_string(),
        (ValueRef::Int(x), PgType::Int2) => match i16::try_from(x) {
            Ok(x) => format!("{}::pg_catalog.int2", int_sql(x)),
            Err(_) => return Some(None),
        },
        (ValueRef::Int(x), PgType::Int4) => match i32::try_from(x) {
            Ok(x) => format!("{}::pg_catalog.int4", int_sql(x)),
            Err(_) => return Some(None),
        },
        (ValueRef::Int(x), PgType::Int8) => format!("{}::pg_catalog.int8", int_sql(x)),
        (ValueRef::Int(x), PgType::Numeric) => format!("{}::pg_catalog.numeric", int_sql(x)),
        (ValueRef::Int(x), PgType::Float8 | PgType::Float4) => {
            let f = x as f64;
            if f as i128 != i128::from(x) || (pt == PgType::Float4 && f64::from(f as f32) != f) {
                return Some(None);
            }
            float_sql(f, ty)
        }
        (ValueRef::Float(x), PgType::Float8) => float_sql(x, ty),
        (ValueRef::Float(x), PgType::Float4) => {
            // A value that is not exactly a float4 equals no float4.
            if !x.is_nan() && f64::from(x as f32) != x {
                return Some(None);
            }
            float_sql(x, ty)
        }
        (ValueRef::Float(x), PgType::Numeric) => {
            if !x.is_finite() {
                return Some(None);
            }
            format!("'{x:?}'::pg_catalog.numeric")
        }
        (ValueRef::Str(s), PgType::Text | PgType::Jsonb | PgType::Numeric | PgType::Uuid) => {
            if s.contains('\0') {
                return Some(None);
            }
            format!("{}::pg_catalog.{ty}", quote_literal(s))
        }
        (ValueRef::Uuid(u), PgType::Uuid) => {
            let h = hex(u);
            format!(
                "'{}-{}-{}-{}-{}'::pg_catalog.uuid",
                &h[0..8],
                &h[8..12],
                &h[12..16],
                &h[16..20],
                &h[20..32]
            )
        }
        (ValueRef::Bytes(b), PgType::Bytea) => format!("'\\x{}'::pg_catalog.bytea", hex(b)),
        (ValueRef::Timestamp(t, unit), PgType::Timestamptz | PgType::Timestamp) => {
            let us = match unit {
                TimeUnit::Nanos if t.rem_euclid(1000) != 0 => return Some(None),
                TimeUnit::Nanos => t.div_euclid(1000),
                other => match t.checked_mul(1_000_000 / other.per_second()) {
                    Some(us) => us,
                    None => return Some(None),
                },
            };
            if us < PG_MIN_UNIX_US {
                return Some(None);
            }
            format!("({})", epoch_plus(ty, us))
        }
        _ => return None,
    };
    Some(Some(lit))
}

#[async_trait]
impl TableReader for PgTableReader {
    fn describe(&self) -> String {
        format!("postgres {}", self.url.redacted())
    }

    /// Block-range partitions of about `partition_rows` rows. The row count is estimated from
    /// the catalog as the planner does (rows per page at the last `ANALYZE`/`VACUUM` × the
    /// table's current blocks); a table never analyzed is sampled instead: counted exactly
    /// when it has at most 128 blocks, otherwise counted in 8 windows of 16 blocks spread over
    /// it. Reads at most 1 MiB either way (with 8 KiB blocks).
    async fn partitions(&self, scan: &TableScan, partition_rows: u64) -> Result<Vec<Partition>> {
        let client = self.client().await?;
        let table = quote_table_checked(&scan.table, &format!("stream `{}`: table", scan.stream))?;
        let ctx = format!("stream `{}`, table {table}", scan.stream);
        let oid = self.oid(&client, &scan.stream, &table).await?;
        let row = client
            .query_one(
                "SELECT c.relkind::text, c.reltuples::float8, c.relpages::int8, \
                        CASE WHEN c.relkind IN ('r', 'm', 't') THEN pg_relation_size(c.oid) ELSE 0 END::int8, \
                        current_setting('block_size')::int8, current_setting('server_version_num')::int4 \
                 FROM pg_class c WHERE c.oid = $1",
                &[&oid],
            )
            .await
            .map_err(|e| self.err(&format!("{ctx}: planning partitions"), &e))?;
        let (relkind, reltuples, relpages, bytes, block_size, version): (
            String,
            f64,
            i64,
            i64,
            i64,
            i32,
        ) = (
            row.get(0),
            row.get(1),
            row.get(2),
            row.get(3),
            row.get(4),
            row.get(5),
        );
        if relkind == "r" {
            let chunks = hypertable_chunks(&client, oid)
                .await
                .map_err(|e| self.err(&format!("{ctx}: listing the hypertable's chunks"), &e))?;
            if let Some((column, chunks)) = chunks {
                return Ok(slice_partitions(&column, &chunks, partition_rows));
            }
        }
        let has_heap = matches!(relkind.as_str(), "r" | "m");
        if !has_heap || version < TID_RANGE_SCAN_VERSION {
            return Ok(vec![whole_table(
                (reltuples >= 0.0).then_some(reltuples as u64),
            )]);
        }
        let blocks = (bytes.max(0) as u64) / (block_size.max(1) as u64);
        let rows = if blocks == 0 {
            0
        } else if reltuples >= 0.0 && relpages > 0 {
            (reltuples / relpages as f64 * blocks as f64).round() as u64
        } else {
            // Never analyzed (reltuples = -1), or analyzed while empty: sample.
            let sql = if blocks <= COUNT_ALL_BLOCKS {
                format!("SELECT count(*)::int8 FROM {table}")
            } else {
                let span = blocks - SAMPLE_WINDOW_BLOCKS;
                let counts: Vec<String> = (0..SAMPLE_WINDOWS)
                    .map(|j| {
                        let from = span * j / (SAMPLE_WINDOWS - 1);
                        count_blocks(&table, from, from + SAMPLE_WINDOW_BLOCKS)
                    })
                    .collect();
                format!("SELECT ({})::int8", counts.join(" + "))
            };
            let row = client
                .query_one(sql.as_str(), &[])
                .await
                .map_err(|e| self.err(&format!("{ctx}: estimating the rows"), &e))?;
            let counted = row.get::<_, i64>(0).max(0) as u64;
            if blocks <= COUNT_ALL_BLOCKS {
                counted
            } else {
                let sampled = SAMPLE_WINDOWS * SAMPLE_WINDOW_BLOCKS;
                (u128::from(counted) * u128::from(blocks) / u128::from(sampled)) as u64
            }
        };
        Ok(block_partitions(blocks, rows, partition_rows))
    }

    async fn read(
        &self,
        scan: &TableScan,
        partition: &Partition,
        batch_rows: usize,
        out: BatchTx,
    ) -> Result<()> {
        let client = self.client().await?;
        self.read_with(&client, scan, partition, batch_rows, &out)
            .await
    }

    /// Rows whose key equals a row of `keys`, within the scan's time range when it has one
    /// (the scan names the rows being compared). Keys are sent as literals, at most 500 per
    /// statement: `… WHERE (k1, k2) IN (VALUES (…), …)`.
    async fn lookup(&self, scan: &TableScan, keys: &Batch) -> Result<Batch> {
        let table = quote_table_checked(&scan.table, &format!("stream `{}`: table", scan.stream))?;
        let ctx = format!("stream `{}`, table {table}, key lookup", scan.stream);
        let client = self.client().await?;
        let (resolved, existing) = self.resolve(&client, scan, &table).await?;
        let range = scan_range_conditions(&ctx, scan, &existing)?;

        // Key columns: the table's column and wire type of each.
        let mut key_cols = Vec::with_capacity(keys.schema.fields.len());
        for f in &keys.schema.fields {
            let col =
                find_column(&existing, &f.name).ok_or_else(|| missing(&ctx, &f.name, &existing))?;
            let pt = PgType::from_typname(&col.typname)
                .filter(|pt| *pt != PgType::Json)
                .ok_or_else(|| {
                    Error::Unsupported(format!(
                        "{ctx}: key column `{}` has type {}, which tsmigrate cannot compare; choose key columns of other types",
                        col.name, col.formatted
                    ))
                })?;
            key_cols.push((col, pt, f.dtype));
        }
        if key_cols.is_empty() && !keys.is_empty() {
            return Err(Error::Plan(format!(
                "{ctx}: the lookup keys have no columns; give the stream a key"
            )));
        }

        // One `(…, …)` per key row without NULLs that some row can equal.
        let mut tuples = Vec::with_capacity(keys.len());
        'rows: for i in 0..keys.len() {
            let mut lits = Vec::with_capacity(key_cols.len());
            for (c, (col, pt, dtype)) in key_cols.iter().enumerate() {
                let v = keys
                    .columns
                    .get(c)
                    .map(|c| c.get(i))
                    .unwrap_or(ValueRef::Null);
                match key_literal(v, col, *pt) {
                    Some(Some(lit)) => lits.push(lit),
                    Some(None) => continue 'rows,
                    None => {
                        return Err(Error::Unsupported(format!(
                            "{ctx}: key column `{}` is {} in the table, but the lookup keys hold {dtype} values; convert the keys to the table's type",
                            col.name, col.formatted
                        )))
                    }
                }
            }
            tuples.push(format!("({})", lits.join(", ")));
        }

        let mut columns: Vec<Column> = resolved
            .schema
            .fields
            .iter()
            .map(|f| Column::with_capacity(f.dtype, tuples.len()))
            .collect();
        if !tuples.is_empty() {
            // Text literals are written with standard_conforming_strings in mind.
            client
                .batch_execute("SET standard_conforming_strings = on")
                .await
                .map_err(|e| self.err(&ctx, &e))?;
        }
        let key_list: Vec<String> = key_cols
            .iter()
            .map(|(col, _, _)| format!("t.{}", quote_ident(&col.name)))
            .collect();
        let key_list = key_list.join(", ");
        for chunk in tuples.chunks(LOOKUP_CHUNK) {
            let mut query = format!(
                "SELECT {} FROM {table} t WHERE ({key_list}) IN (VALUES {})",
                resolved.select,
                chunk.join(", ")
            );
            for c in &range {
                query.push_str(" AND ");
                query.push_str(c);
            }
            let (tx, mut rx) = tokio::sync::mpsc::channel::<Batch>(4);
            let copy = {
                let (client, url, query, schema, types, ctx) = (
                    &client,
                    &self.url,
                    &query,
                    resolved.schema.clone(),
                    resolved.types.clone(),
                    &ctx,
                );
                async move {
                    let r = copy_out_batches(
                        client,
                        url,
                        query,
                        schema,
                        types,
                        LOOKUP_BATCH_ROWS,
                        ctx,
                        Ok,
                        &tx,
                    )
                    .await;
                    drop(tx);
                    r
                }
            };
            let gather = async {
                let mut got = Vec::new();
                while let Some(b) = rx.recv().await {
                    got.push(b);
                }
                got
            };
            let (copied, batches) = tokio::join!(copy, gather);
            copied.map_err(|e| at_end(self.end, e))?;
            for b in batches {
                for (dst, src) in columns.iter_mut().zip(&b.columns) {
                    for r in 0..b.len() {
                        dst.push_value(src.get(r));
                    }
                }
            }
        }
        Batch::new(
            resolved.schema.clone(),
            columns.into_iter().map(Arc::new).collect(),
        )
        .ok_or_else(|| Error::Decode {
            end: self.end,
            context: ctx,
            message: "internal error: looked-up columns do not match the scan's schema".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_partitions_cover_every_block_once_and_end_open() {
        let parts = block_partitions(1000, 45_000, 10_000);
        assert_eq!(parts.len(), 5);
        assert_eq!(parts[0].id, "blocks-000000-000200");
        assert_eq!(parts[4].id, "blocks-000800-end");
        assert_eq!(parts[4].spec, serde_json::json!({ "blocks": [800, null] }));
        let mut next = 0;
        for p in &parts {
            match Blocks::parse(&p.spec) {
                Some(Blocks::Range(from, to)) => {
                    assert_eq!(from, next);
                    next = to.unwrap_or(u64::MAX);
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(next, u64::MAX);
        // Never more partitions than blocks, never none.
        assert_eq!(block_partitions(3, 1_000_000, 10).len(), 3);
        let empty = block_partitions(0, 0, 10_000);
        assert_eq!(empty.len(), 1);
        assert_eq!(Blocks::parse(&empty[0].spec), Some(Blocks::Range(0, None)));
        assert!(Blocks::parse(&empty[0].spec)
            .map(|b| b.conditions().is_empty())
            .unwrap_or(false));
    }

    #[test]
    fn bad_specs_are_refused() {
        assert_eq!(
            Blocks::parse(&serde_json::json!({ "blocks": null })),
            Some(Blocks::All)
        );
        assert_eq!(Blocks::parse(&serde_json::json!({ "blocks": [5] })), None);
        assert_eq!(
            Blocks::parse(&serde_json::json!({ "blocks": [5, 2] })),
            None
        );
        assert_eq!(
            Blocks::parse(&serde_json::json!({ "blocks": [-1, null] })),
            None
        );
    }

    #[test]
    fn bounds_in_other_units_select_the_same_instants() {
        assert_eq!(bound_micros(1_500, TimeUnit::Nanos), 2);
        assert_eq!(bound_micros(2_000, TimeUnit::Nanos), 2);
        assert_eq!(bound_micros(-1_500, TimeUnit::Nanos), -1);
        assert_eq!(bound_micros(7, TimeUnit::Millis), 7_000);
        assert_eq!(
            bound_micros(i64::MAX, TimeUnit::Seconds),
            i128::from(i64::MAX) * 1_000_000
        );
    }

    #[test]
    fn instants_are_exact_literals() {
        assert_eq!(
            epoch_plus("timestamptz", -5),
            "timestamptz 'epoch' + (-5) * interval '1 microsecond'"
        );
        assert_eq!(
            epoch_plus("timestamp", 9_000_000_000_000_000_123),
            "timestamp 'epoch' + 9000000 * interval '1000000 seconds' + 123 * interval '1 microsecond'"
        );
        assert_eq!(float_sql(f64::NAN, "float8"), "'NaN'::pg_catalog.float8");
        assert_eq!(float_sql(0.1, "float8"), "'0.1'::pg_catalog.float8");
        assert_eq!(float_sql(-0.0, "float8"), "'-0.0'::pg_catalog.float8");
    }
}
