//! The `pgdump` source: any table of a pg_dump backup, read straight from the file.
//!
//! ```toml
//! [source]
//! kind = "pgdump"
//! path = "backup.dump"              # a -Fc file, a -Fd directory, or a .sql / .sql.gz file
//!
//! [source.tables.ts_kv]             # optional, per table (as the stream's `from` names it)
//! series = ["entity_id", "key"]     # columns naming a series
//! time = "ts"                       # its time column: integer epoch count or timestamp
//! time_unit = "ms"                  # integer time columns: s (default), ms, us or ns
//! ```
//!
//! A stream's `from` (or its name) names a table, optionally schema-qualified. Its columns
//! are those of the table's COPY data, typed as the dump's `CREATE TABLE` declares them;
//! types tsmigrate has no logical type for (arrays, `date`, `inet`, enums, …) are read as
//! their text. A partitioned (or inherited-from) table reads the rows of its partitions.
//! Each data section (a table's or a partition's rows) is one partition of the stream, so
//! sections are read in parallel; when the engine needs time-aligned partitions (aggregates,
//! pivots) and a table has several sections, they are read as one partition.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::json;
use tokio::sync::OnceCell;
use tsmigrate_core::connector::{check_table_filters, lowest_floor};
use tsmigrate_core::{
    Batch, BatchTx, DataType, End, Endpoint, Error, Field, Partition, ReadOptions, Result,
    ScanRange, Schema, SeriesInfo, Source, SourceTableOptions, StreamInfo, StreamSpec,
};

use crate::copy_text::FieldKind;
use crate::ddl::QualifiedName;
use crate::dump::{DataSection, Dump};
use crate::error::DumpError;
use crate::read::{read_section, Projection};

/// Reads streams from the tables of a pg_dump backup.
pub struct PgDumpSource {
    path: PathBuf,
    tables: BTreeMap<String, SourceTableOptions>,
    dump: OnceCell<Arc<Dump>>,
}

/// A stream's table resolved against the dump.
struct Resolved {
    table: QualifiedName,
    projection: Projection,
    /// Declared types of the columns read as text, for `check`.
    as_text: Vec<String>,
    series: Vec<String>,
    time: Option<(String, i64)>,
}

/// A dump error as a source error.
pub fn source_error(context: &str, e: DumpError) -> Error {
    match e {
        DumpError::Io { .. } => Error::Store {
            end: End::Source,
            context: context.to_string(),
            message: e.to_string(),
            transient: false,
        },
        DumpError::Unsupported { .. } => Error::Unsupported(format!("{context}: {e}")),
        DumpError::Format { .. } | DumpError::Data { .. } => Error::Decode {
            end: End::Source,
            context: context.to_string(),
            message: e.to_string(),
        },
    }
}

impl PgDumpSource {
    /// A source for the `[source]` endpoint (`kind = "pgdump"`, `path = …`).
    pub fn open(endpoint: &Endpoint) -> Result<PgDumpSource> {
        let mut path = None;
        let mut tables: BTreeMap<String, SourceTableOptions> = BTreeMap::new();
        for (k, v) in &endpoint.options {
            match (k.as_str(), v) {
                ("path", toml::Value::String(p)) if !p.is_empty() => path = Some(PathBuf::from(p)),
                ("path", _) => {
                    return Err(Error::Plan(
                        "source.path must be the dump's file or directory name".into(),
                    ))
                }
                ("tables", v) => tables = SourceTableOptions::parse_all(Some(v))?,
                (other, _) => {
                    return Err(Error::Plan(format!(
                        "[source] kind = \"pgdump\" has no option `{other}`; its options are path and tables"
                    )))
                }
            }
        }
        let path = path.ok_or_else(|| {
            Error::Plan(
                "[source] kind = \"pgdump\" needs path = \"backup.dump\" (a pg_dump -Fc file, -Fd directory or plain .sql[.gz] file)"
                    .into(),
            )
        })?;
        Ok(PgDumpSource {
            path,
            tables,
            dump: OnceCell::new(),
        })
    }

    /// The opened dump (read once: header, TOC or SQL text index).
    pub async fn dump(&self) -> Result<Arc<Dump>> {
        self.dump
            .get_or_try_init(|| async {
                let path = self.path.clone();
                let opened = tokio::task::spawn_blocking(move || Dump::open(&path))
                    .await
                    .map_err(|e| Error::Internal(format!("opening the dump failed: {e}")))?;
                opened
                    .map(Arc::new)
                    .map_err(|e| source_error("opening the dump", e))
            })
            .await
            .cloned()
    }

    fn resolve(&self, dump: &Dump, stream: &StreamSpec) -> Result<Resolved> {
        let from = stream.source_stream();
        let ctx = format!("stream `{}`", stream.name);
        let def = dump
            .find_table(from)
            .map_err(|m| Error::NotFound(format!("{ctx}: {m}")))?;
        let table = def.name.clone();
        let declared = dump.columns_of(&table);
        let sections = dump.sections_of(&table);
        // The columns of the data: those the first section's COPY lists (generated columns
        // are not dumped), in declaration order.
        let copied: Vec<&(String, String)> = match sections.first() {
            Some(s) => declared
                .iter()
                .filter(|(n, _)| s.columns.iter().any(|c| c == n))
                .collect(),
            None => declared.iter().collect(),
        };
        if copied.is_empty() {
            return Err(Error::NotFound(format!(
                "{ctx}: table {} has no columns the dump's COPY data holds",
                table.display()
            )));
        }
        let mut fields = Vec::new();
        let mut kinds = Vec::new();
        let mut as_text = Vec::new();
        for (name, sql) in copied {
            let (kind, dtype) = FieldKind::for_sql_type(sql);
            if dtype == DataType::Text && DataType::parse_sql(sql) != Some(DataType::Text) {
                as_text.push(format!("{name} ({sql})"));
            }
            fields.push(Field::new(name.clone(), dtype));
            kinds.push(kind);
        }
        let schema = Arc::new(Schema::new(fields));
        let opts = self.tables.get(from).cloned().unwrap_or_default();
        let column = |c: &str| -> Result<String> {
            schema
                .index_of(c)
                .map(|i| schema.fields[i].name.clone())
                .ok_or_else(|| {
                    Error::Plan(format!(
                        "source.tables.{from}: `{c}` is not a column of {}; its columns are: {}",
                        table.display(),
                        schema.names()
                    ))
                })
        };
        let series = opts
            .series
            .iter()
            .map(|c| column(c))
            .collect::<Result<Vec<_>>>()?;
        let time = match &opts.time {
            None => None,
            Some(c) => {
                let name = column(c)?;
                let dtype = schema.fields[schema.index_of(&name).unwrap_or(0)].dtype;
                let per_second = match dtype {
                    DataType::Timestamp(u) => u.per_second(),
                    d if d.is_integer() => opts.unit(from)?.per_second(),
                    other => {
                        return Err(Error::Plan(format!(
                            "source.tables.{from}.time: column `{name}` is {other}, not an integer epoch count or a timestamp"
                        )))
                    }
                };
                Some((name, per_second))
            }
        };
        check_table_filters(stream, &ctx, "pgdump", from, time.is_some(), "")?;
        Ok(Resolved {
            table,
            projection: Projection { schema, kinds },
            as_text,
            series,
            time,
        })
    }

    fn range(
        &self,
        r: &Resolved,
        stream: &StreamSpec,
        floor: Option<i64>,
    ) -> Result<Option<ScanRange>> {
        match &r.time {
            Some((name, per_second)) => ScanRange::of_stream(stream, name, *per_second, floor),
            None if floor.is_some() => Err(Error::Plan(format!(
                "stream `{}`: sync reads the rows added since the last round, which needs the table's time column; \
                 set [source.tables.{}] time = \"…\" (and series = [\"…\"])",
                stream.name,
                stream.source_stream()
            ))),
            None => Ok(None),
        }
    }
}

/// Why a table without data in a truncated dump is refused: its rows were probably in the
/// part of the file that is missing, and reading it as empty would lose them silently.
pub fn missing_data(stream: &str, table: &QualifiedName, truncated: &str) -> Error {
    Error::Decode {
        end: End::Source,
        context: format!("stream `{stream}`"),
        message: format!(
            "the dump has no data for table {}, and {truncated}: its rows were probably in the missing part (get a complete dump)",
            table.display()
        ),
    }
}

/// Keeps the rows of `batch` whose time column lies in `range` (NULL times are dropped).
fn keep_in_range(batch: Batch, range: &ScanRange) -> Batch {
    let Some(col) = batch.column(&range.column) else {
        return batch;
    };
    let Some(values) = col.ints() else {
        return batch;
    };
    let keep: Vec<bool> = values
        .iter()
        .enumerate()
        .map(|(i, v)| col.is_valid(i) && range.contains(*v))
        .collect();
    if keep.iter().all(|k| *k) {
        batch
    } else {
        batch.filter(&keep)
    }
}

#[async_trait]
impl Source for PgDumpSource {
    fn describe(&self) -> String {
        format!("pg_dump backup {}", self.path.display())
    }

    async fn check(&self) -> Result<Vec<String>> {
        let dump = self.dump().await?;
        let mut notes = vec![format!(
            "{} dump, compression {}",
            dump.format().name(),
            dump.compression().name()
        )];
        if let Some(h) = dump.header() {
            notes.push(format!(
                "archive version {}.{}, written by pg_dump {} from PostgreSQL {} (database {})",
                h.version.0,
                h.version.1,
                h.dump_version.as_deref().unwrap_or("?"),
                h.server_version.as_deref().unwrap_or("?"),
                h.database.as_deref().unwrap_or("?")
            ));
        }
        let with_data = dump.tables_with_data();
        notes.push(format!(
            "{} tables with data: {}",
            with_data.len(),
            with_data.join(", ")
        ));
        if let Some(t) = dump.truncated() {
            notes.push(format!("warning: {t}"));
        }
        Ok(notes)
    }

    async fn stream_info(&self, stream: &StreamSpec) -> Result<StreamInfo> {
        let dump = self.dump().await?;
        let r = self.resolve(&dump, stream)?;
        let sections = dump.sections_of(&r.table);
        let mut notes = vec![format!(
            "table {}: {} data section(s) in the dump",
            r.table.display(),
            sections.len()
        )];
        if !r.as_text.is_empty() {
            notes.push(format!("read as text: {}", r.as_text.join(", ")));
        }
        let key_columns = match dump.primary_key(&r.table) {
            Some(k) => k.to_vec(),
            None => r
                .series
                .iter()
                .chain(r.time.iter().map(|t| &t.0))
                .cloned()
                .collect(),
        };
        let series = match (&r.time, r.series.is_empty()) {
            (Some((time, per_second)), false) => Some(SeriesInfo {
                columns: r.series.clone(),
                time_column: time.clone(),
                ticks_per_second: *per_second,
            }),
            _ => None,
        };
        Ok(StreamInfo {
            schema: r.projection.schema.clone(),
            key_columns,
            estimated_rows: None,
            notes,
            series,
        })
    }

    async fn partitions(&self, stream: &StreamSpec, opts: &ReadOptions) -> Result<Vec<Partition>> {
        let dump = self.dump().await?;
        let r = self.resolve(&dump, stream)?;
        let floor = opts.sync.as_deref().and_then(lowest_floor);
        let range = self.range(&r, stream, floor)?;
        let names: Vec<String> = dump
            .sections_of(&r.table)
            .iter()
            .map(|s| s.table.display())
            .collect();
        if let Some(t) = dump.truncated() {
            if let Some(missing) = dump.tables_without_data(&r.table).first() {
                return Err(missing_data(&stream.name, missing, t));
            }
        }
        let spec = |tables: &[String]| json!({ "tables": tables, "range": range.as_ref().map(|r| json!([r.lo, r.hi])) });
        if opts.align_seconds.is_some() && names.len() > 1 {
            return Ok(vec![Partition {
                id: "all".into(),
                estimated_rows: None,
                spec: spec(&names),
            }]);
        }
        Ok(names
            .iter()
            .map(|n| Partition {
                id: n.clone(),
                estimated_rows: None,
                spec: spec(std::slice::from_ref(n)),
            })
            .collect())
    }

    async fn read(
        &self,
        stream: &StreamSpec,
        partition: &Partition,
        opts: &ReadOptions,
        out: BatchTx,
    ) -> Result<()> {
        let dump = self.dump().await?;
        let r = self.resolve(&dump, stream)?;
        let ctx = format!("stream `{}`, partition {}", stream.name, partition.id);
        let bad_spec = || Error::Plan(format!("{ctx}: bad partition description"));
        let tables: Vec<String> = partition
            .spec
            .get("tables")
            .and_then(|t| serde_json::from_value(t.clone()).ok())
            .ok_or_else(bad_spec)?;
        let range = match (&r.time, partition.spec.get("range")) {
            (Some((name, _)), Some(serde_json::Value::Array(b))) if b.len() == 2 => {
                Some(ScanRange {
                    column: name.clone(),
                    lo: b[0].as_i64(),
                    hi: b[1].as_i64(),
                })
            }
            _ => None,
        };
        let all = dump.sections_of(&r.table);
        let mut sections: Vec<DataSection> = Vec::new();
        for t in &tables {
            let found = all
                .iter()
                .find(|s| &s.table.display() == t)
                .ok_or_else(|| {
                    Error::NotFound(format!(
                        "{ctx}: the dump has no data for {t} any more (was the file replaced since the run was planned?)"
                    ))
                })?;
            sections.push((*found).clone());
        }
        let batch_rows = opts.batch_rows;
        let projection = r.projection.clone();
        let work_dump = dump.clone();
        let work_ctx = ctx.clone();
        let outcome = tokio::task::spawn_blocking(move || -> Result<()> {
            for section in &sections {
                let mut closed = false;
                read_section(&work_dump, section, &projection, batch_rows, |batch| {
                    let batch = match &range {
                        Some(range) => keep_in_range(batch, range),
                        None => batch,
                    };
                    if batch.is_empty() {
                        return true;
                    }
                    closed = out.blocking_send(batch).is_err();
                    !closed
                })
                .map_err(|e| source_error(&work_ctx, e))?;
                if closed {
                    return Err(Error::Cancelled);
                }
            }
            Ok(())
        })
        .await
        .map_err(|e| Error::Internal(format!("{ctx}: reading the dump failed: {e}")))?;
        outcome
    }
}
