//! The SQLite source: any table of a SQLite / libSQL file, read in partitions.
//!
//! ```toml
//! [source]
//! kind = "sqlite"
//! path = "readings.db"
//!
//! [source.tables.readings]       # optional, per table
//! series = ["system_id"]         # columns naming a series
//! time = "inverter_time"         # its time column
//! time_unit = "s"                # s, ms, us or ns (an integer epoch column)
//! ```
//!
//! A stream's `from` names the table. Without `series`, the table is split into rowid ranges
//! (exact and cheap). With `series` and `time`, partitions hold whole series — consecutive
//! values of the first series column, or one series cut into time ranges aligned to whole
//! hours when it alone is bigger than a partition — so per-series work (summaries, 5-minute
//! aggregates) never straddles two partitions, `filter.since`/`until` apply to the time
//! column, `filter.devices` to the first series column, and `sync` reads each series from
//! its watermark.

use std::collections::BTreeMap;

use async_trait::async_trait;
use rusqlite::types::Value;
use rusqlite::Connection;
use serde_json::json;
use tsmigrate_core::{
    BatchTx, End, Endpoint, Error, Partition, ReadOptions, Result, SeriesInfo, Source, StreamInfo,
    StreamSpec, TimeUnit,
};

use tsmigrate_core::connector::bound_ticks;

use crate::db::{blocking, quote_ident, quote_table, Db};
use crate::read::{
    column_list, has_rowid, push_rowid_terms, rowid_partitions, schema_of, send_rows,
    table_columns, where_clause, RowQuery, TableColumn,
};

/// Per-table options of the source (`[source.tables.<table>]`).
pub type TableOptions = tsmigrate_core::SourceTableOptions;

/// Reads streams from the tables of a SQLite file.
pub struct SqliteSource {
    db: Db,
    tables: BTreeMap<String, TableOptions>,
}

impl SqliteSource {
    /// A source for the `[source]` endpoint (`kind = "sqlite"`, `path = …`).
    pub fn open(endpoint: &Endpoint) -> Result<SqliteSource> {
        let db = Db::from_endpoint(endpoint, End::Source)?;
        let mut tables: BTreeMap<String, TableOptions> = BTreeMap::new();
        for (k, v) in &endpoint.options {
            match k.as_str() {
                "path" => {}
                "tables" => tables = TableOptions::parse_all(Some(v))?,
                other => {
                    return Err(Error::Plan(format!(
                        "[source] kind = \"sqlite\" has no option `{other}`; its options are path and tables"
                    )))
                }
            }
        }
        Ok(SqliteSource { db, tables })
    }

    fn options(&self, stream: &StreamSpec) -> TableOptions {
        self.tables
            .get(stream.source_stream())
            .cloned()
            .unwrap_or_default()
    }
}

/// Everything a read needs about a stream, resolved once per call on the blocking thread.
struct Resolved {
    table: String,
    columns: Vec<TableColumn>,
    opts: TableOptions,
    unit: TimeUnit,
    rowid: bool,
}

impl Resolved {
    fn load(
        db: &Db,
        conn: &Connection,
        stream: &StreamSpec,
        opts: TableOptions,
    ) -> Result<Resolved> {
        let table = stream.source_stream().to_string();
        let ctx = format!("stream `{}`", stream.name);
        let columns = table_columns(conn, &table)
            .map_err(|e| db.error(format!("{ctx}: reading the columns of {table}"), &e))?
            .ok_or_else(|| {
                let names = table_names(conn).unwrap_or_default();
                Error::NotFound(format!(
                    "{ctx}: the source file {} has no table `{table}`; its tables are: {}",
                    db.path().display(),
                    names.join(", ")
                ))
            })?;
        for c in opts.series.iter().chain(opts.time.iter()) {
            if !columns.iter().any(|t| t.name.eq_ignore_ascii_case(c)) {
                return Err(Error::Plan(format!(
                    "source.tables.{table}: `{c}` is not a column of the table"
                )));
            }
        }
        let f = &stream.filter;
        if opts.time.is_none() && (f.since.is_some() || f.until.is_some()) {
            return Err(Error::Plan(format!(
                "{ctx}: filter.since/until need the table's time column; set [source.tables.{table}] time = \"…\""
            )));
        }
        if opts.series.is_empty() && !f.devices.is_empty() {
            return Err(Error::Plan(format!(
                "{ctx}: filter.devices needs the table's series columns; set [source.tables.{table}] series = [\"…\"]"
            )));
        }
        if !f.keys.is_empty() || !f.entity_types.is_empty() || stream.limit.is_some() {
            return Err(Error::Unsupported(format!(
                "{ctx}: a SQLite source supports filter.since, filter.until and filter.devices; not keys, entity_types or limit"
            )));
        }
        let unit = opts.unit(&table)?;
        let rowid = has_rowid(conn, &quote_table(&table));
        Ok(Resolved {
            table,
            columns,
            opts,
            unit,
            rowid,
        })
    }

    /// `WHERE` terms and parameters of the stream's filters.
    fn filters(&self, stream: &StreamSpec) -> Result<(Vec<String>, Vec<Value>)> {
        let mut terms = Vec::new();
        let mut params = Vec::new();
        if let Some(t) = &self.opts.time {
            let per = self.unit.per_second();
            // µs bounds → the column's units, rounding up (a row at 10.5 s is not ≥ 11 s).
            let to_unit = |us: i64| -> i64 {
                bound_ticks(us, per).clamp(i64::MIN as i128, i64::MAX as i128) as i64
            };
            if let Some(since) = stream.filter.since_us()? {
                terms.push(format!("{} >= ?", quote_ident(t)));
                params.push(Value::Integer(to_unit(since)));
            }
            if let Some(until) = stream.filter.until_us()? {
                terms.push(format!("{} < ?", quote_ident(t)));
                params.push(Value::Integer(to_unit(until)));
            }
        }
        if let Some(s) = self.opts.series.first() {
            if !stream.filter.devices.is_empty() {
                let marks = vec!["?"; stream.filter.devices.len()].join(", ");
                terms.push(format!("{} IN ({marks})", quote_ident(s)));
                params.extend(stream.filter.devices.iter().map(|d| Value::Text(d.clone())));
            }
        }
        Ok((terms, params))
    }
}

fn table_names(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare(
        "SELECT name FROM sqlite_schema WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite_%' AND name NOT LIKE 'tsmigrate_%' ORDER BY name",
    )?;
    let names = stmt
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<String>>>()?;
    Ok(names)
}

/// A JSON value of a series column, as stored in a partition's spec.
fn json_of(v: &Value) -> serde_json::Value {
    match v {
        Value::Integer(i) => json!(i),
        Value::Real(f) => json!(f),
        Value::Text(s) => json!(s),
        Value::Null | Value::Blob(_) => serde_json::Value::Null,
    }
}

/// The SQLite value of a series value stored in a partition's spec.
fn value_of(v: &serde_json::Value) -> Value {
    match v {
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Value::Integer(i),
            None => Value::Real(n.as_f64().unwrap_or(0.0)),
        },
        serde_json::Value::String(s) => Value::Text(s.clone()),
        _ => Value::Null,
    }
}

fn label(v: &Value) -> String {
    match v {
        Value::Integer(i) => i.to_string(),
        Value::Real(f) => f.to_string(),
        Value::Text(s) => s.clone(),
        Value::Null => "NULL".into(),
        Value::Blob(_) => "blob".into(),
    }
}

/// Time ranges of one series too big for a partition: `parts` pieces of `[lo, hi]`, cut at
/// multiples of `align` (in the column's units), first and last open-ended.
fn time_pieces(lo: i64, hi: i64, parts: u64, align: i64) -> Vec<(Option<i64>, Option<i64>)> {
    let align = align.max(1) as i128;
    let span = (hi as i128 - lo as i128 + 1).max(1);
    let step = ((span / parts.max(1) as i128) / align).max(1) * align;
    let mut cuts = Vec::new();
    let mut c = (lo as i128).div_euclid(align) * align + step;
    while c <= hi as i128 && cuts.len() < 100_000 {
        cuts.push(c as i64);
        c += step;
    }
    let mut out = Vec::with_capacity(cuts.len() + 1);
    let mut prev = None;
    for c in cuts {
        out.push((prev, Some(c)));
        prev = Some(c);
    }
    out.push((prev, None));
    out
}

fn plan_partitions(
    db: &Db,
    conn: &Connection,
    stream: &StreamSpec,
    r: &Resolved,
    opts: &ReadOptions,
) -> Result<Vec<Partition>> {
    let ctx = format!(
        "stream `{}`: planning partitions of {}",
        stream.name, r.table
    );
    let table = quote_table(&r.table);
    let (terms, params) = r.filters(stream)?;
    let (Some(series), Some(time)) = (r.opts.series.first(), &r.opts.time) else {
        // Rowid ranges split time buckets anywhere: a stream that needs them whole
        // (aggregates, pivots) reads the table as one partition.
        let rows = match opts.align_seconds {
            Some(_) => u64::MAX,
            None => opts.partition_rows,
        };
        return rowid_partitions(conn, &table, rows).map_err(|e| db.error(&ctx, &e));
    };
    let (s, t) = (quote_ident(series), quote_ident(time));
    let where_ = where_clause(&terms);
    let mut stmt = conn
        .prepare(&format!(
            "SELECT {s}, count(*), min({t}), max({t}) FROM {table}{where_} GROUP BY {s} ORDER BY {s}"
        ))
        .map_err(|e| db.error(&ctx, &e))?;
    let groups = stmt
        .query_map(rusqlite::params_from_iter(params.iter()), |row| {
            Ok((
                row.get::<_, Value>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, Option<i64>>(2)?,
                row.get::<_, Option<i64>>(3)?,
            ))
        })
        .map_err(|e| db.error(&ctx, &e))?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(|e| db.error(&ctx, &e))?;
    let limit = opts.partition_rows.max(1);
    // Cuts at whole hours (or the engine's alignment) so buckets of up to an hour stay whole.
    let align = opts
        .align_seconds
        .unwrap_or(3600)
        .saturating_mul(r.unit.per_second());
    let mut out = Vec::new();
    let mut run: Vec<(Value, u64)> = Vec::new();
    let flush = |run: &mut Vec<(Value, u64)>, out: &mut Vec<Partition>| {
        if let (Some((first, _)), Some((last, _))) = (run.first(), run.last()) {
            let rows: u64 = run.iter().map(|(_, n)| n).sum();
            let id = if run.len() == 1 {
                format!("{series}={}", label(first))
            } else {
                format!("{series}={}..{}", label(first), label(last))
            };
            out.push(Partition {
                id,
                estimated_rows: Some(rows),
                spec: json!({ "series": [json_of(first), json_of(last)] }),
            });
        }
        run.clear();
    };
    for (value, count, lo, hi) in groups {
        if matches!(value, Value::Null | Value::Blob(_)) {
            return Err(Error::Unsupported(format!(
                "{ctx}: series column `{series}` holds NULL or blob values, which cannot name a partition; \
                 fill them in, or remove `series` from [source.tables.{}]",
                r.table
            )));
        }
        let count = count.max(0) as u64;
        if count > limit {
            flush(&mut run, &mut out);
            let pieces = time_pieces(
                lo.unwrap_or(0),
                hi.unwrap_or(0),
                count.div_ceil(limit),
                align,
            );
            let n = pieces.len() as u64;
            for (a, b) in pieces {
                out.push(Partition {
                    id: format!(
                        "{series}={}/{time}>={}",
                        label(&value),
                        a.map_or("min".to_string(), |a| a.to_string())
                    ),
                    estimated_rows: Some(count / n.max(1)),
                    spec: json!({ "series": [json_of(&value), json_of(&value)], "time": [a, b] }),
                });
            }
            continue;
        }
        let held: u64 = run.iter().map(|(_, n)| n).sum();
        if held + count > limit {
            flush(&mut run, &mut out);
        }
        run.push((value, count));
    }
    flush(&mut run, &mut out);
    // A sync round reads each single-series partition from that series' floor. A partition
    // of several series is read whole (a series new since the last round has no floor); rows
    // already written are skipped by the sync's write mode.
    if let Some(sync) = &opts.sync {
        let floors = sync.by_first_value();
        for p in &mut out {
            let range = p.spec.get("series").and_then(|v| v.as_array());
            let (a, b) = (
                range.and_then(|r| r.first()).map(value_of),
                range.and_then(|r| r.get(1)).map(value_of),
            );
            let floor = match (a, b) {
                (Some(a), Some(b)) if a == b => floors.get(&label(&a)).copied(),
                _ => None,
            };
            if let (Some(f), Some(spec)) = (floor, p.spec.as_object_mut()) {
                spec.insert(FLOOR.to_string(), f.into());
            }
        }
    }
    Ok(out)
}

/// The partition spec's field holding a sync round's time floor.
const FLOOR: &str = "floor";

#[async_trait]
impl Source for SqliteSource {
    fn describe(&self) -> String {
        self.db.describe()
    }

    async fn check(&self) -> Result<Vec<String>> {
        let db = self.db.clone();
        blocking(move || {
            let conn = db.open_read()?;
            let version: String = conn
                .query_row("SELECT sqlite_version()", [], |r| r.get(0))
                .map_err(|e| db.error("reading the version", &e))?;
            let names = table_names(&conn).map_err(|e| db.error("listing tables", &e))?;
            Ok(vec![
                format!("{} (SQLite {version})", db.describe()),
                format!("tables: {}", names.join(", ")),
            ])
        })
        .await
    }

    async fn stream_info(&self, stream: &StreamSpec) -> Result<StreamInfo> {
        let (db, stream, opts) = (self.db.clone(), stream.clone(), self.options(stream));
        blocking(move || {
            let conn = db.open_read()?;
            let r = Resolved::load(&db, &conn, &stream, opts)?;
            // A stored value that does not fit its column makes its row a rejected row.
            let mut schema = schema_of(&r.columns);
            schema.fields.push(tsmigrate_core::Field::new(
                tsmigrate_core::batch::SOURCE_ERROR,
                tsmigrate_core::DataType::Text,
            ));
            let mut pk: Vec<&TableColumn> = r.columns.iter().filter(|c| c.pk > 0).collect();
            pk.sort_by_key(|c| c.pk);
            let key_columns: Vec<String> = if pk.is_empty() {
                r.opts
                    .series
                    .iter()
                    .chain(r.opts.time.iter())
                    .cloned()
                    .collect()
            } else {
                pk.iter().map(|c| c.name.clone()).collect()
            };
            let estimated_rows = if r.rowid {
                conn.query_row(
                    &format!(
                        "SELECT max(rowid) - min(rowid) + 1 FROM {}",
                        quote_table(&r.table)
                    ),
                    [],
                    |row| row.get::<_, Option<i64>>(0),
                )
                .ok()
                .flatten()
                .map(|n| n.max(0) as u64)
            } else {
                None
            };
            let mut notes = vec![format!(
                "table {} with {} columns",
                r.table,
                r.columns.len()
            )];
            if r.opts.series.is_empty() {
                notes.push("partitions: rowid ranges".into());
            } else {
                notes.push(format!(
                    "partitions: by series ({}) and time ({})",
                    r.opts.series.join(", "),
                    r.opts.time.as_deref().unwrap_or("")
                ));
            }
            let series = match (&r.opts.time, r.opts.series.is_empty()) {
                (Some(t), false) => Some(SeriesInfo {
                    columns: r.opts.series.clone(),
                    time_column: t.clone(),
                    ticks_per_second: r.unit.per_second(),
                }),
                _ => None,
            };
            Ok(StreamInfo {
                schema: std::sync::Arc::new(schema),
                key_columns,
                estimated_rows,
                notes,
                series,
            })
        })
        .await
    }

    async fn partitions(&self, stream: &StreamSpec, opts: &ReadOptions) -> Result<Vec<Partition>> {
        let (db, stream, topts, ropts) = (
            self.db.clone(),
            stream.clone(),
            self.options(stream),
            opts.clone(),
        );
        blocking(move || {
            let conn = db.open_read()?;
            let r = Resolved::load(&db, &conn, &stream, topts)?;
            plan_partitions(&db, &conn, &stream, &r, &ropts)
        })
        .await
    }

    async fn read(
        &self,
        stream: &StreamSpec,
        partition: &Partition,
        opts: &ReadOptions,
        out: BatchTx,
    ) -> Result<()> {
        let (db, stream, topts, ropts, partition) = (
            self.db.clone(),
            stream.clone(),
            self.options(stream),
            opts.clone(),
            partition.clone(),
        );
        blocking(move || {
            let conn = db.open_read()?;
            let r = Resolved::load(&db, &conn, &stream, topts)?;
            let context = format!(
                "stream `{}`, table {}, partition {}",
                stream.name, r.table, partition.id
            );
            let (mut terms, mut params) = r.filters(&stream)?;
            let spec = &partition.spec;
            push_rowid_terms(spec, &mut terms, &mut params);
            if let (Some(range), Some(s)) = (
                spec.get("series").and_then(|v| v.as_array()),
                r.opts.series.first(),
            ) {
                let (a, b) = (
                    range.first().map(value_of).unwrap_or(Value::Null),
                    range.get(1).map(value_of).unwrap_or(Value::Null),
                );
                if a == b {
                    terms.push(format!("{} = ?", quote_ident(s)));
                    params.push(a.clone());
                } else {
                    terms.push(format!("{q} >= ? AND {q} <= ?", q = quote_ident(s)));
                    params.push(a.clone());
                    params.push(b.clone());
                }
                if let Some(t) = &r.opts.time {
                    let qt = quote_ident(t);
                    if let Some(tr) = spec.get("time").and_then(|v| v.as_array()) {
                        if let Some(lo) = tr.first().and_then(|v| v.as_i64()) {
                            terms.push(format!("{qt} >= ?"));
                            params.push(Value::Integer(lo));
                        }
                        if let Some(hi) = tr.get(1).and_then(|v| v.as_i64()) {
                            terms.push(format!("{qt} < ?"));
                            params.push(Value::Integer(hi));
                        }
                    }
                    // A sync round reads a partition of one series from that series' floor,
                    // recorded in the partition when it was planned (so a partition redone
                    // later reads what it was planned to read).
                    if let Some(f) = spec.get(FLOOR).and_then(|v| v.as_i64()) {
                        terms.push(format!("{qt} >= ?"));
                        params.push(Value::Integer(f));
                    }
                }
            }
            let schema = schema_of(&r.columns);
            let where_ = where_clause(&terms);
            let query = RowQuery {
                sql: format!(
                    "SELECT {}{} FROM {}{where_}",
                    column_list(&schema.fields),
                    if r.rowid { ", rowid" } else { "" },
                    quote_table(&r.table)
                ),
                params,
                fields: schema.fields,
                with_rowid: r.rowid,
                source_errors: true,
            };
            send_rows(&db, &conn, &query, ropts.batch_rows, &out, &context).map(|_| ())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_pieces_are_aligned_and_cover_the_range() {
        let p = time_pieces(1000, 20_000, 4, 3600);
        assert_eq!(p.first().map(|x| x.0), Some(None));
        assert_eq!(p.last().map(|x| x.1), Some(None));
        for w in p.windows(2) {
            assert_eq!(w[0].1, w[1].0);
            assert_eq!(w[0].1.unwrap_or(1) % 3600, 0);
        }
        assert_eq!(time_pieces(5, 5, 3, 3600), vec![(None, None)]);
    }
}
