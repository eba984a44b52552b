//! The PostgreSQL source: any table or view of a PostgreSQL database, read as a stream.
//!
//! ```toml
//! [source]
//! kind = "postgres"                      # or "postgresql"
//! url = "postgres://user@host/telemetry"
//!
//! [source.tables.point_readings]         # optional, per table (as the stream's `from` names it)
//! series = ["system_id", "point_id"]     # columns naming a series
//! time = "measurement_time"              # its time column: integer epoch count or timestamp
//! time_unit = "s"                        # integer time columns: s (default), ms, us or ns
//! ```
//!
//! A stream's `from` (or its name) names the table, optionally schema-qualified. Tables are
//! read through [`PgTableReader`]: partitions are heap block ranges (`ctid`), each read by
//! binary `COPY` and decoded by [`crate::codec`], so a column has the type the codec gives its
//! PostgreSQL type. Views, partitioned and foreign tables are read as one partition, and so is
//! every table when the engine asks for partitions aligned in time (aggregates): block ranges
//! cannot keep a time bucket whole.
//!
//! With `time`, `filter.since`/`until` apply to the time column. With `series` and `time`,
//! the stream has series (watermarks) and `sync` reads the rows whose time is at least the
//! lowest floor over all series; the rows re-read are skipped by the sync's write mode. The
//! floor is planned into each partition's spec (`"floor"`), so a redone sync partition reads
//! exactly what it was planned to read.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use tokio_postgres::Client;
use tsmigrate_core::connector::{check_table_filters, lowest_floor};
use tsmigrate_core::{
    BatchTx, End, Endpoint, Error, Field, Partition, ReadOptions, Result, ScanRange, Schema,
    SeriesInfo, Source, StreamInfo, StreamSpec, TableReader, TableScan, TimeUnit,
};

use crate::catalog::{find_column, primary_key, server_summary, table_columns, TableColumn};
use crate::chunks::hypertable_chunks;
use crate::connect::{endpoint_url, quote_ident, quote_table_checked};
use crate::reader::{readable_type, whole_table, PgTableReader};

/// Per-table options of the source (`[source.tables.<table>]`).
pub type TableOptions = tsmigrate_core::SourceTableOptions;

/// Reads streams from the tables and views of a PostgreSQL database.
pub struct PgSource {
    reader: PgTableReader,
    tables: BTreeMap<String, TableOptions>,
}

impl PgSource {
    /// A source for the `[source]` endpoint (`kind = "postgres"`, `url = …`, optional
    /// `[source.tables.<table>]` options).
    pub fn open(endpoint: &Endpoint) -> Result<PgSource> {
        let url = endpoint_url(endpoint, End::Source, &["tables"])?;
        let tables = TableOptions::parse_all(endpoint.options.get("tables"))?;
        Ok(PgSource {
            reader: PgTableReader::for_source(url),
            tables,
        })
    }

    /// Looks the stream's table up and checks its columns, options and filters.
    async fn load(&self, client: &Client, stream: &StreamSpec) -> Result<Table> {
        let name = stream.source_stream();
        let quoted = quote_table_checked(name, &format!("stream `{}`: source table", stream.name))?;
        let ctx = format!("stream `{}`, table {quoted}", stream.name);
        let oid = self.reader.oid(client, &stream.name, &quoted).await?;
        let columns = table_columns(client, oid)
            .await
            .map_err(|e| self.reader.err(&ctx, &e))?;
        let fields = columns
            .iter()
            .map(|c| {
                Ok(Field::new(
                    c.name.clone(),
                    readable_type(End::Source, &ctx, c)?.dtype(),
                ))
            })
            .collect::<Result<Vec<Field>>>()?;
        let opts = self.tables.get(name).cloned().unwrap_or_default();
        let column = |c: &str| {
            find_column(&columns, c).ok_or_else(|| {
                let names: Vec<&str> = columns.iter().map(|t| t.name.as_str()).collect();
                Error::Plan(format!(
                    "source.tables.{name}: `{c}` is not a column of {quoted}; its columns are: {}",
                    names.join(", ")
                ))
            })
        };
        let series = opts
            .series
            .iter()
            .map(|c| column(c).map(|t| t.name.clone()))
            .collect::<Result<Vec<String>>>()?;
        let time = match &opts.time {
            None => None,
            Some(c) => Some(time_column(name, column(c)?, &opts)?),
        };
        check_table_filters(
            stream,
            &ctx,
            "PostgreSQL",
            name,
            time.is_some(),
            " (read a view that selects the rows instead)",
        )?;
        Ok(Table {
            name: name.to_string(),
            quoted,
            oid,
            fields,
            series,
            time,
        })
    }
}

/// A stream's table, resolved against the catalog.
struct Table {
    /// The table as the stream's `from` names it (the key of its options).
    name: String,
    /// The table, quoted for SQL.
    quoted: String,
    oid: u32,
    /// Every column, in table order, in the types the codec reads them as.
    fields: Vec<Field>,
    /// Series columns (catalog names).
    series: Vec<String>,
    time: Option<TimeColumn>,
}

/// The time column of a table.
struct TimeColumn {
    /// Catalog name.
    name: String,
    /// Ticks per second of the values read: the integer column's unit, or µs for timestamps.
    per_second: i64,
    /// True for an integer column (counting `per_second` ticks), false for a timestamp.
    integer: bool,
}

/// Checks the declared time column `col` of `table` and returns its ticks per second.
fn time_column(table: &str, col: &TableColumn, opts: &TableOptions) -> Result<TimeColumn> {
    let per_second = match col.typname.as_str() {
        "int2" | "int4" | "int8" => opts.unit(table)?.per_second(),
        "timestamptz" | "timestamp" => {
            if opts.time_unit.is_some() {
                return Err(Error::Plan(format!(
                    "source.tables.{table}: `time_unit` applies to an integer time column, and `{}` is {}; remove it",
                    col.name, col.formatted
                )));
            }
            TimeUnit::Micros.per_second()
        }
        _ => {
            return Err(Error::Plan(format!(
                "source.tables.{table}: the time column `{}` is {}; it must be an integer count since the epoch \
                 (with time_unit) or a timestamptz/timestamp column",
                col.name, col.formatted
            )))
        }
    };
    Ok(TimeColumn {
        name: col.name.clone(),
        per_second,
        integer: matches!(col.typname.as_str(), "int2" | "int4" | "int8"),
    })
}

/// Key of a sync partition's floor in its spec.
const FLOOR: &str = "floor";

impl Table {
    /// The rows to read as a range of the time column: `filter.since`/`until`, and for a sync
    /// round `floor`, the lowest floor over all series (`None`: every row).
    fn range(&self, stream: &StreamSpec, floor: Option<i64>) -> Result<Option<ScanRange>> {
        let Some(time) = &self.time else {
            if floor.is_some() {
                return Err(self.sync_needs_time(stream));
            }
            return Ok(None);
        };
        ScanRange::of_stream(stream, &time.name, time.per_second, floor)
    }

    /// Why a sync round cannot read this table: it declares no time column.
    fn sync_needs_time(&self, stream: &StreamSpec) -> Error {
        Error::Plan(format!(
            "stream `{}`: sync reads the rows added since the last round, which needs the table's time column; \
             set [source.tables.{}] time = \"…\" (and series = [\"…\"])",
            stream.name, self.name
        ))
    }

    /// The scan reading every column of the table within `range`.
    fn scan(&self, stream: &StreamSpec, range: Option<ScanRange>) -> TableScan {
        TableScan {
            stream: stream.name.clone(),
            table: self.quoted.clone(),
            columns: self.fields.clone(),
            range,
            scope: Vec::new(),
        }
    }
}

#[async_trait]
impl Source for PgSource {
    fn describe(&self) -> String {
        self.reader.describe()
    }

    async fn check(&self) -> Result<Vec<String>> {
        let client = self.reader.client().await?;
        let summary = server_summary(&client)
            .await
            .map_err(|e| self.reader.err("checking the server", &e))?;
        Ok(vec![summary])
    }

    async fn stream_info(&self, stream: &StreamSpec) -> Result<StreamInfo> {
        let client = self.reader.client().await?;
        let t = self.load(&client, stream).await?;
        let ctx = format!("stream `{}`, table {}", stream.name, t.quoted);
        let pk = primary_key(&client, t.oid)
            .await
            .map_err(|e| self.reader.err(&ctx, &e))?;
        let key_columns = if pk.is_empty() {
            t.series
                .iter()
                .cloned()
                .chain(t.time.as_ref().map(|c| c.name.clone()))
                .collect()
        } else {
            pk
        };
        let row = client
            .query_one(
                "SELECT relkind::text, reltuples::float8 FROM pg_class WHERE oid = $1",
                &[&t.oid],
            )
            .await
            .map_err(|e| self.reader.err(&ctx, &e))?;
        let (relkind, reltuples): (String, f64) = (row.get(0), row.get(1));
        let mut estimated_rows = (reltuples >= 0.0 && relkind != "v").then_some(reltuples as u64);
        let chunks = hypertable_chunks(&client, t.oid)
            .await
            .map_err(|e| self.reader.err(&ctx, &e))?;
        if let Some((_, chunks)) = &chunks {
            // The parent of a hypertable holds no rows; its chunks do.
            estimated_rows = chunks.iter().map(|c| c.rows).sum();
        }
        let mut notes = vec![format!(
            "{} {} with {} columns{}",
            match relkind.as_str() {
                _ if chunks.is_some() => "hypertable",
                "v" => "view",
                "m" => "materialized view",
                "p" => "partitioned table",
                "f" => "foreign table",
                _ => "table",
            },
            t.quoted,
            t.fields.len(),
            estimated_rows
                .map(|n| format!(", about {n} rows"))
                .unwrap_or_default()
        )];
        notes.push(if let Some((column, chunks)) = &chunks {
            format!(
                "partitions: time slices of the hypertable's {} chunk range(s) on `{column}`",
                chunks.len()
            )
        } else if matches!(relkind.as_str(), "r" | "m") {
            "partitions: heap block ranges".to_string()
        } else {
            "partitions: one (no heap block ranges to split)".to_string()
        });
        let series = match (&t.time, t.series.is_empty()) {
            (Some(time), false) => {
                notes.push(format!(
                    "series: {}, time: {}",
                    t.series.join(", "),
                    time.name
                ));
                Some(SeriesInfo {
                    columns: t.series.clone(),
                    time_column: time.name.clone(),
                    ticks_per_second: time.per_second,
                })
            }
            _ => None,
        };
        Ok(StreamInfo {
            schema: Arc::new(Schema::new(t.fields)),
            key_columns,
            estimated_rows,
            notes,
            series,
        })
    }

    /// Heap block ranges of about `opts.partition_rows` rows (see
    /// [`PgTableReader`]'s partitions), or one partition when `opts.align_seconds` asks for
    /// partitions that keep time buckets whole. A sync round's floor goes into each spec.
    async fn partitions(&self, stream: &StreamSpec, opts: &ReadOptions) -> Result<Vec<Partition>> {
        let client = self.reader.client().await?;
        let t = self.load(&client, stream).await?;
        if opts.sync.is_some() && t.time.is_none() {
            return Err(t.sync_needs_time(stream));
        }
        let floor = opts.sync.as_deref().and_then(lowest_floor);
        let range = t.range(stream, floor)?;
        drop(client);
        let mut parts = self
            .reader
            .partitions(&t.scan(stream, range), opts.partition_rows)
            .await?;
        if opts.align_seconds.is_some() && parts.len() > 1 {
            let rows = parts.iter().filter_map(|p| p.estimated_rows).sum();
            parts = vec![whole_table(Some(rows))];
        }
        if let Some(f) = floor {
            for p in &mut parts {
                if let Some(spec) = p.spec.as_object_mut() {
                    spec.insert(FLOOR.to_string(), f.into());
                }
            }
        }
        Ok(parts)
    }

    /// `min` and `max` of the declared time column, in µs (`None` without one, or when the
    /// table is empty). Cheap on a hypertable or with an index on the column; a full scan
    /// otherwise — the engine asks only when a target derives its chunk interval from it.
    async fn time_extent(&self, stream: &StreamSpec) -> Result<Option<(i64, i64)>> {
        let client = self.reader.client().await?;
        let t = self.load(&client, stream).await?;
        let Some(time) = &t.time else {
            return Ok(None);
        };
        let col = format!("t.{}", quote_ident(&time.name));
        let sql = if time.integer {
            format!(
                "SELECT min({col})::float8 * {f}, max({col})::float8 * {f} FROM {} t",
                t.quoted,
                f = 1e6 / time.per_second as f64
            )
        } else {
            format!(
                "SELECT (extract(epoch FROM min({col})) * 1000000)::float8, (extract(epoch FROM max({col})) * 1000000)::float8 FROM {} t",
                t.quoted
            )
        };
        let row = client.query_one(sql.as_str(), &[]).await.map_err(|e| {
            self.reader.err(
                &format!("stream `{}`: reading the time extent", stream.name),
                &e,
            )
        })?;
        let (lo, hi): (Option<f64>, Option<f64>) = (row.get(0), row.get(1));
        Ok(lo.zip(hi).map(|(a, b)| (a as i64, b as i64)))
    }

    async fn read(
        &self,
        stream: &StreamSpec,
        partition: &Partition,
        opts: &ReadOptions,
        out: BatchTx,
    ) -> Result<()> {
        let client = self.reader.client().await?;
        let t = self.load(&client, stream).await?;
        let planned = match partition.spec.get(FLOOR) {
            None => None,
            Some(v) => Some(v.as_i64().ok_or_else(|| {
                Error::Plan(format!(
                    "stream `{}`, partition {}: the partition's floor {v} is not an integer; plan the stream again (tsmigrate run --restart)",
                    stream.name, partition.id
                ))
            })?),
        };
        let floor = planned.max(opts.sync.as_deref().and_then(lowest_floor));
        let range = t.range(stream, floor)?;
        self.reader
            .read_with(
                &client,
                &t.scan(stream, range),
                partition,
                opts.batch_rows,
                &out,
            )
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_units_are_checked() {
        let t = |u: &str| TableOptions {
            time_unit: Some(u.to_string()),
            ..TableOptions::default()
        };
        assert_eq!(t("ms").unit("x").ok(), Some(TimeUnit::Millis));
        assert_eq!(
            TableOptions::default().unit("x").ok(),
            Some(TimeUnit::Seconds)
        );
        assert!(t("minutes").unit("x").is_err());
    }
}
