//! Directories of Parquet or CSV files read as tables: `[source] kind = "parquet"` / `"csv"`
//! ([`FileSource`]), and the file target read back for `verify` ([`FileTableReader`]).
//!
//! ```toml
//! [source]
//! kind = "parquet"            # or "csv"
//! path = "archive/"           # the directory holding one directory (or file glob) per table
//! types = { ts = "timestamptz", value = "float8" }   # csv: column types (default text)
//!
//! [[streams]]
//! name = "metric_hist"
//! from = "metric_hist"        # archive/metric_hist/ (its *.parquet), or a file or glob
//! ```
//!
//! Partitions: consecutive row groups of a Parquet file up to `partition_rows`; one per CSV
//! file. Files are read in natural order of their names. Every Parquet file of a table must
//! have the first file's columns (a file that lacks one is an error naming both).
//!
//! A CSV record with a different number of fields than the header, or a value that does not
//! read as its declared type, becomes a rejected row with the file, line and reason.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use parquet::file::reader::FileReader;
use tsmigrate_core::batch::SOURCE_ERROR;
use tsmigrate_core::connector::check_table_filters;
use tsmigrate_core::convert::{convert, value_to_string, ConvertCtx};
use tsmigrate_core::{
    Batch, BatchTx, Column, DataType, End, Endpoint, Error, Field, LossyCounts, Partition,
    ReadOptions, Result, RowErrors, Schema, Source, StreamInfo, StreamSpec, TableReader, TableScan,
    ValueRef, MAX_BATCH_BYTES,
};

use crate::csv_format::{push_cell, text_to_bytes, CsvFile};
use crate::listing::list_files;
use crate::parquet_format::{self, batch_of, convert_column, file_columns, ColumnCursor};
use crate::sink::table_dir;

/// Which format a table's files are in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    /// Apache Parquet.
    Parquet,
    /// CSV with a header row.
    Csv,
}

impl FileKind {
    fn extension(self) -> &'static str {
        match self {
            FileKind::Parquet => "parquet",
            FileKind::Csv => "csv",
        }
    }
}

/// The files of a table and how to cut them into partitions.
#[derive(Clone)]
struct Files {
    kind: FileKind,
    end: End,
    /// CSV column types declared in the plan (others are text).
    types: BTreeMap<String, DataType>,
}

impl Files {
    /// The partitions of `files`.
    fn partitions(&self, files: &[PathBuf], partition_rows: u64) -> Result<Vec<Partition>> {
        let mut out = Vec::new();
        for file in files {
            let name = file_name(file);
            match self.kind {
                FileKind::Csv => out.push(Partition {
                    id: name,
                    estimated_rows: None,
                    spec: serde_json::json!({ "file": file.display().to_string() }),
                }),
                FileKind::Parquet => {
                    let reader = parquet_format::open(file, self.end)?;
                    let groups: Vec<u64> = reader
                        .metadata()
                        .row_groups()
                        .iter()
                        .map(|g| u64::try_from(g.num_rows()).unwrap_or(0))
                        .collect();
                    let mut start = 0;
                    while start < groups.len() || (start == 0 && groups.is_empty()) {
                        let mut end = start;
                        let mut rows = 0u64;
                        while end < groups.len()
                            && (end == start || rows + groups[end] <= partition_rows)
                        {
                            rows += groups[end];
                            end += 1;
                        }
                        let id = if start == 0 && end == groups.len() {
                            name.clone()
                        } else {
                            format!("{name}#{start}-{end}")
                        };
                        out.push(Partition {
                            id,
                            estimated_rows: Some(rows),
                            spec: serde_json::json!({
                                "file": file.display().to_string(),
                                "row_groups": [start, end],
                            }),
                        });
                        if groups.is_empty() {
                            break;
                        }
                        start = end;
                    }
                }
            }
        }
        Ok(out)
    }

    /// The columns of a table's first file.
    fn schema(&self, first: &Path) -> Result<Vec<Field>> {
        match self.kind {
            FileKind::Parquet => {
                let reader = parquet_format::open(first, self.end)?;
                Ok(
                    file_columns(&reader, &first.display().to_string(), self.end)?
                        .into_iter()
                        .map(|c| c.field)
                        .collect(),
                )
            }
            FileKind::Csv => {
                let file = CsvFile::open(first)?;
                Ok(file
                    .header
                    .iter()
                    .map(|n| {
                        Field::new(
                            n.clone(),
                            self.types.get(n).copied().unwrap_or(DataType::Text),
                        )
                    })
                    .collect())
            }
        }
    }

    /// Reads a partition's rows (columns `wanted`, in their types), calling `emit` with
    /// batches of at most `batch_rows` rows. With `reject`, CSV rows that cannot be read carry
    /// their reason in a last [`SOURCE_ERROR`] column; without, they are an error.
    fn read(
        &self,
        spec: &serde_json::Value,
        wanted: &[Field],
        batch_rows: usize,
        reject: bool,
        emit: &mut dyn FnMut(Batch) -> Result<()>,
    ) -> Result<()> {
        let bad = || Error::Internal(format!("bad file partition {spec}"));
        let file = PathBuf::from(spec.get("file").and_then(|f| f.as_str()).ok_or_else(bad)?);
        match self.kind {
            FileKind::Parquet => {
                let groups = spec
                    .get("row_groups")
                    .and_then(|g| g.as_array())
                    .and_then(|g| Some((g.first()?.as_u64()?, g.get(1)?.as_u64()?)))
                    .ok_or_else(bad)?;
                read_parquet(&file, groups, wanted, batch_rows, self.end, emit)
            }
            FileKind::Csv => read_csv(&file, wanted, batch_rows, self.end, reject, emit),
        }
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// Reads row groups `[first, last)` of a Parquet file.
fn read_parquet(
    path: &Path,
    (first, last): (u64, u64),
    wanted: &[Field],
    batch_rows: usize,
    end: End,
    emit: &mut dyn FnMut(Batch) -> Result<()>,
) -> Result<()> {
    let name = path.display().to_string();
    let reader = parquet_format::open(path, end)?;
    let columns = file_columns(&reader, &name, end)?;
    let picked = wanted
        .iter()
        .map(|w| {
            columns
                .iter()
                .find(|c| c.field.name == w.name)
                .or_else(|| {
                    columns
                        .iter()
                        .find(|c| c.field.name.eq_ignore_ascii_case(&w.name))
                })
                .cloned()
                .ok_or_else(|| {
                    let names: Vec<&str> = columns.iter().map(|c| c.field.name.as_str()).collect();
                    Error::Decode {
                        end,
                        context: name.clone(),
                        message: format!(
                            "the file has no column `{}`; its columns are: {}",
                            w.name,
                            names.join(", ")
                        ),
                    }
                })
        })
        .collect::<Result<Vec<_>>>()?;
    let schema_descr = reader.metadata().file_metadata().schema_descr_ptr();
    let mut row = 0u64;
    for g in 0..usize::try_from(first).unwrap_or(usize::MAX) {
        if let Some(meta) = reader.metadata().row_groups().get(g) {
            row += u64::try_from(meta.num_rows()).unwrap_or(0);
        }
    }
    for g in first..last {
        let g = usize::try_from(g).unwrap_or(usize::MAX);
        let ctx = format!("{name}, row group {g}");
        let group = reader
            .get_row_group(g)
            .map_err(|e| crate::error::parquet_error(end, &ctx, &e))?;
        let mut remaining = u64::try_from(group.metadata().num_rows()).unwrap_or(0);
        let mut cursors = picked
            .iter()
            .map(|c| {
                let r = group
                    .get_column_reader(c.index)
                    .map_err(|e| crate::error::parquet_error(end, &ctx, &e))?;
                Ok(ColumnCursor::new(
                    r,
                    c.clone(),
                    schema_descr.column(c.index).max_def_level(),
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        while remaining > 0 {
            let n = usize::try_from(remaining.min(batch_rows as u64)).unwrap_or(batch_rows);
            let mut cols = Vec::with_capacity(cursors.len());
            for (cursor, w) in cursors.iter_mut().zip(wanted) {
                let col = cursor.next(n).map_err(|m| Error::Decode {
                    end,
                    context: format!("{ctx}, column `{}`", w.name),
                    message: m,
                })?;
                if col.len() != n {
                    return Err(Error::Decode {
                        end,
                        context: format!("{ctx}, column `{}`", w.name),
                        message: format!(
                            "{} values where the row group has {n} more rows",
                            col.len()
                        ),
                    });
                }
                cols.push(convert_column(
                    &col,
                    w.dtype,
                    &w.name,
                    row,
                    &format!("{ctx}, column `{}`", w.name),
                    end,
                )?);
            }
            emit(batch_of(wanted, cols)?)?;
            remaining -= n as u64;
            row += n as u64;
        }
    }
    Ok(())
}

/// Reads a CSV file.
fn read_csv(
    path: &Path,
    wanted: &[Field],
    batch_rows: usize,
    end: End,
    reject: bool,
    emit: &mut dyn FnMut(Batch) -> Result<()>,
) -> Result<()> {
    let name = path.display().to_string();
    let mut file = CsvFile::open(path)?;
    let width = file.header.len();
    let index = wanted
        .iter()
        .map(|w| {
            file.header
                .iter()
                .position(|h| *h == w.name)
                .or_else(|| {
                    file.header
                        .iter()
                        .position(|h| h.eq_ignore_ascii_case(&w.name))
                })
                .ok_or_else(|| Error::Decode {
                    end,
                    context: name.clone(),
                    message: format!(
                        "the header has no column `{}`; its columns are: {}",
                        w.name,
                        file.header.join(", ")
                    ),
                })
        })
        .collect::<Result<Vec<usize>>>()?;
    let mut fields = wanted.to_vec();
    if reject {
        fields.push(Field::new(SOURCE_ERROR, DataType::Text));
    }
    let mut pending = Pending::new(wanted.len(), batch_rows);
    loop {
        let record = file.next_record().map_err(|m| Error::Decode {
            end,
            context: name.clone(),
            message: m,
        })?;
        let Some(record) = record else { break };
        if record.cells.len() != width {
            let reason = format!(
                "{name}, line {}: {} field(s), the header has {width}",
                record.line,
                record.cells.len()
            );
            if !reject {
                return Err(Error::Decode {
                    end,
                    context: name.clone(),
                    message: reason,
                });
            }
            pending.push_rejected(record.line, reason);
        } else {
            for (col, i) in pending.texts.iter_mut().zip(&index) {
                push_cell(col, record.cells.get(*i));
            }
            pending.lines.push(record.line);
            pending.errors.push_null();
        }
        if pending.lines.len() >= batch_rows
            || pending.texts.iter().map(Column::byte_size).sum::<usize>() >= MAX_BATCH_BYTES
        {
            emit(pending.take(&fields, wanted, &name, end, reject)?)?;
        }
    }
    if !pending.lines.is_empty() {
        emit(pending.take(&fields, wanted, &name, end, reject)?)?;
    }
    Ok(())
}

/// CSV rows read but not yet sent: text columns, their lines, and reasons for rejected rows.
struct Pending {
    texts: Vec<Column>,
    lines: Vec<u64>,
    errors: Column,
    capacity: usize,
}

impl Pending {
    fn new(columns: usize, capacity: usize) -> Pending {
        Pending {
            texts: (0..columns)
                .map(|_| Column::with_capacity(DataType::Text, capacity))
                .collect(),
            lines: Vec::with_capacity(capacity),
            errors: Column::with_capacity(DataType::Text, capacity),
            capacity,
        }
    }

    fn push_rejected(&mut self, line: u64, reason: String) {
        for col in &mut self.texts {
            col.push_null();
        }
        self.lines.push(line);
        self.errors.push_str(&reason);
    }

    /// The pending rows as a batch of `fields`, values converted to their types.
    fn take(
        &mut self,
        fields: &[Field],
        wanted: &[Field],
        name: &str,
        end: End,
        reject: bool,
    ) -> Result<Batch> {
        let texts = std::mem::replace(self, Pending::new(wanted.len(), self.capacity));
        let mut reasons: Vec<Option<String>> = (0..texts.lines.len())
            .map(|r| match texts.errors.get(r) {
                ValueRef::Str(s) => Some(s.to_string()),
                _ => None,
            })
            .collect();
        let mut cols = Vec::with_capacity(fields.len());
        for (text, w) in texts.texts.iter().zip(wanted) {
            let (col, failed) = text_to(text, w.dtype, &w.name);
            for (row, why) in failed {
                let line = texts.lines.get(row).copied().unwrap_or(0);
                let reason = format!("{name}, line {line}, column `{}`: {why}", w.name);
                if !reject {
                    return Err(Error::Decode {
                        end,
                        context: name.to_string(),
                        message: reason,
                    });
                }
                if let Some(slot) = reasons.get_mut(row) {
                    slot.get_or_insert(reason);
                }
            }
            cols.push(col);
        }
        if reject {
            let mut errors = Column::with_capacity(DataType::Text, reasons.len());
            for r in &reasons {
                match r {
                    Some(s) => errors.push_str(s),
                    None => errors.push_null(),
                }
            }
            cols.push(errors);
        }
        batch_of(fields, cols)
    }
}

/// A CSV text column in type `to`, with the rows that did not convert and why.
fn text_to(text: &Column, to: DataType, name: &str) -> (Column, Vec<(usize, String)>) {
    match to {
        DataType::Text => (text.clone(), Vec::new()),
        DataType::Bytes => match text_to_bytes(text) {
            Ok(c) => (c, Vec::new()),
            Err((row, why)) => (Column::nulls(DataType::Bytes, text.len()), vec![(row, why)]),
        },
        _ => {
            let mut errors = RowErrors::new();
            let mut lossy = LossyCounts::default();
            let col = convert(
                text,
                to,
                &mut ConvertCtx {
                    errors: &mut errors,
                    lossy: &mut lossy,
                    column: Some(name),
                },
            );
            let failed = errors
                .errors()
                .iter()
                .map(|e| (e.row, e.reason.clone()))
                .collect();
            (col, failed)
        }
    }
}

/// Runs a blocking read on a blocking thread, sending its batches to `out`.
async fn read_blocking(
    files: Files,
    spec: serde_json::Value,
    wanted: Vec<Field>,
    batch_rows: usize,
    reject: bool,
    out: BatchTx,
) -> Result<()> {
    let end = files.end;
    tokio::task::spawn_blocking(move || {
        files.read(&spec, &wanted, batch_rows.max(1), reject, &mut |b| {
            out.blocking_send(b).map_err(|_| Error::Cancelled)
        })
    })
    .await
    .map_err(|e| Error::Store {
        end,
        context: "reading files".into(),
        message: format!("the reader stopped: {e}"),
        transient: false,
    })?
}

/// Reads the tables a file target wrote, for `verify`.
pub struct FileTableReader {
    root: PathBuf,
    files: Files,
}

impl FileTableReader {
    /// A reader of the table directories under `root`.
    pub fn new(root: PathBuf, kind: FileKind, end: End) -> FileTableReader {
        FileTableReader {
            root,
            files: Files {
                kind,
                end,
                types: BTreeMap::new(),
            },
        }
    }

    fn table_files(&self, table: &str) -> Result<Vec<PathBuf>> {
        let dir = table_dir(&self.root, table, &format!("table {table}"))?;
        if !dir.is_dir() {
            return Err(Error::NotFound(format!(
                "{}: the directory of table {table} does not exist",
                dir.display()
            )));
        }
        match list_files(&dir, &[self.files.kind.extension()], "file") {
            Ok(f) => Ok(f),
            Err(Error::Plan(_)) => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }
}

#[async_trait]
impl TableReader for FileTableReader {
    fn describe(&self) -> String {
        format!(
            "{} files in {}",
            self.files.kind.extension(),
            self.root.display()
        )
    }

    async fn partitions(&self, scan: &TableScan, partition_rows: u64) -> Result<Vec<Partition>> {
        let files = self.table_files(&scan.table)?;
        self.files.partitions(&files, partition_rows.max(1))
    }

    async fn read(
        &self,
        scan: &TableScan,
        partition: &Partition,
        batch_rows: usize,
        out: BatchTx,
    ) -> Result<()> {
        let range = scan.range.clone();
        let wanted = scan.columns.clone();
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Batch>(2);
        let reading = read_blocking(
            self.files.clone(),
            partition.spec.clone(),
            wanted.clone(),
            batch_rows,
            false,
            tx,
        );
        let forwarding = async {
            while let Some(b) = rx.recv().await {
                let b = match &range {
                    Some(r) => {
                        let i = b.schema.index_of(&r.column).ok_or_else(|| {
                            Error::Internal(format!("range column {} not scanned", r.column))
                        })?;
                        let col = &b.columns[i];
                        let keep: Vec<bool> = (0..b.len())
                            .map(|row| match col.get(row) {
                                ValueRef::Int(v) | ValueRef::Timestamp(v, _) => r.contains(v),
                                _ => false,
                            })
                            .collect();
                        b.filter(&keep)
                    }
                    None => b,
                };
                out.send(b).await.map_err(|_| Error::Cancelled)?;
            }
            Ok::<(), Error>(())
        };
        let (r, f) = tokio::join!(reading, forwarding);
        r.and(f)
    }

    async fn lookup(&self, scan: &TableScan, keys: &Batch) -> Result<Batch> {
        let key_of = |b: &Batch, row: usize, names: &[String]| -> Option<String> {
            let mut parts = Vec::with_capacity(names.len());
            for n in names {
                let v = b.column(n)?.get(row);
                if v == ValueRef::Null {
                    return None;
                }
                parts.push(value_to_string(v));
            }
            Some(parts.join("\u{1f}"))
        };
        let names: Vec<String> = keys.schema.fields.iter().map(|f| f.name.clone()).collect();
        let wanted: HashSet<String> = (0..keys.len())
            .filter_map(|r| key_of(keys, r, &names))
            .collect();
        let schema = Arc::new(Schema::new(scan.columns.clone()));
        let mut found: Vec<Column> = scan
            .columns
            .iter()
            .map(|f| Column::with_capacity(f.dtype, 0))
            .collect();
        for partition in self.partitions(scan, u64::MAX).await? {
            let (tx, mut rx) = tokio::sync::mpsc::channel::<Batch>(2);
            let reading = self.read(scan, &partition, 16_384, tx);
            let collecting = async {
                while let Some(b) = rx.recv().await {
                    for row in 0..b.len() {
                        if key_of(&b, row, &names).is_some_and(|k| wanted.contains(&k)) {
                            for (c, col) in found.iter_mut().zip(&b.columns) {
                                c.push_value(col.get(row));
                            }
                        }
                    }
                }
            };
            let (r, ()) = tokio::join!(reading, collecting);
            r?;
        }
        Batch::new(schema, found.into_iter().map(Arc::new).collect())
            .ok_or_else(|| Error::Internal("looked-up rows do not fit their schema".into()))
    }
}

/// `[source] kind = "parquet"` or `"csv"`: each stream reads a directory, file or glob.
pub struct FileSource {
    root: PathBuf,
    files: Files,
}

impl FileSource {
    /// The source of a `[source] kind = "parquet"` or `"csv"` endpoint.
    pub fn open(endpoint: &Endpoint) -> Result<FileSource> {
        let kind = match endpoint.kind.as_str() {
            "parquet" => FileKind::Parquet,
            "csv" => FileKind::Csv,
            other => return Err(Error::Internal(format!("{other:?} is not a file source"))),
        };
        let name = kind.extension();
        let allowed: &[&str] = match kind {
            FileKind::Parquet => &["path"],
            FileKind::Csv => &["path", "types"],
        };
        if endpoint.url.is_some() {
            return Err(Error::Plan(format!(
                "[source] kind = \"{name}\" reads files: give path = \"…\" instead of url"
            )));
        }
        if let Some(k) = endpoint
            .options
            .keys()
            .find(|k| !allowed.contains(&k.as_str()))
        {
            return Err(Error::Plan(format!(
                "[source] kind = \"{name}\" has no option `{k}`; its options are {}",
                allowed.join(", ")
            )));
        }
        let root = match endpoint.options.get("path") {
            Some(toml::Value::String(p)) if !p.is_empty() => PathBuf::from(p),
            _ => {
                return Err(Error::Plan(format!(
                    "[source] kind = \"{name}\" needs path = \"…\": the directory holding the tables' files"
                )))
            }
        };
        let mut types = BTreeMap::new();
        if let Some(t) = endpoint.options.get("types") {
            let table = t.as_table().ok_or_else(|| {
                Error::Plan(
                    "[source] types must be a table: types = { column = \"type\", … }".into(),
                )
            })?;
            for (col, ty) in table {
                let dtype = ty
                    .as_str()
                    .and_then(parquet_format::parse_type_name)
                    .ok_or_else(|| {
                        Error::Plan(format!(
                            "[source] types.{col} = {ty:?}: not a type tsmigrate knows (use e.g. \"bigint\", \"float8\", \"timestamptz\", \"jsonb\", \"boolean\")"
                        ))
                    })?;
                types.insert(col.clone(), dtype);
            }
        }
        Ok(FileSource {
            root,
            files: Files {
                kind,
                end: End::Source,
                types,
            },
        })
    }

    /// The files a stream reads: `from` (or the stream's name) under `path`.
    fn stream_files(&self, stream: &StreamSpec) -> Result<Vec<PathBuf>> {
        let from = stream.from.as_deref().unwrap_or(&stream.name);
        let ext = self.files.kind.extension();
        let path = if self.root.is_file() {
            self.root.clone()
        } else {
            // `from = "points"` also finds the single file points.csv.
            let bare = self.root.join(from);
            let with_ext = self.root.join(format!("{from}.{ext}"));
            if !bare.exists() && !from.contains(['*', '?']) && with_ext.is_file() {
                with_ext
            } else {
                bare
            }
        };
        let what = format!("{ext} file");
        list_files(&path, &[ext], &what).map_err(|e| match e {
            Error::Plan(m) => Error::NotFound(format!("stream `{}`: {m}", stream.name)),
            other => other,
        })
    }

    /// The stream's files and columns (those of its first file, CSV columns typed by
    /// `types`, each of which must name a column).
    fn stream_fields(&self, stream: &StreamSpec) -> Result<(Vec<PathBuf>, Vec<Field>)> {
        self.check_stream(stream)?;
        let files = self.stream_files(stream)?;
        let first = files
            .first()
            .ok_or_else(|| Error::NotFound(format!("stream `{}`: no files", stream.name)))?;
        let fields = self.files.schema(first)?;
        if self.files.kind == FileKind::Csv {
            if let Some(t) = self
                .files
                .types
                .keys()
                .find(|t| !fields.iter().any(|f| f.name == **t))
            {
                return Err(Error::Plan(format!(
                    "[source] types.{t}: {} has no column `{t}`; its columns are: {}",
                    first.display(),
                    fields
                        .iter()
                        .map(|f| f.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        }
        Ok((files, fields))
    }

    fn check_stream(&self, stream: &StreamSpec) -> Result<()> {
        let kind = self.files.kind.extension();
        check_table_filters(
            stream,
            &format!("stream `{}`", stream.name),
            kind,
            stream.from.as_deref().unwrap_or(&stream.name),
            true,
            "",
        )?;
        if stream.filter.since.is_some() || stream.filter.until.is_some() {
            return Err(Error::Unsupported(format!(
                "stream `{}`: a {kind} source reads whole files; filter.since/until are not applied to it",
                stream.name
            )));
        }
        Ok(())
    }
}

#[async_trait]
impl Source for FileSource {
    fn describe(&self) -> String {
        format!(
            "{} files in {}",
            self.files.kind.extension(),
            self.root.display()
        )
    }

    async fn check(&self) -> Result<Vec<String>> {
        if !self.root.exists() {
            return Err(Error::Connect {
                end: End::Source,
                what: self.describe(),
                message: "no such file or directory".into(),
                transient: false,
            });
        }
        Ok(vec![self.describe()])
    }

    async fn stream_info(&self, stream: &StreamSpec) -> Result<StreamInfo> {
        let (files, mut fields) = self.stream_fields(stream)?;
        let mut estimated = None;
        if self.files.kind == FileKind::Parquet {
            let mut rows = 0u64;
            for f in &files {
                let r = parquet_format::open(f, End::Source)?;
                rows += u64::try_from(r.metadata().file_metadata().num_rows()).unwrap_or(0);
            }
            estimated = Some(rows);
        } else {
            fields.push(Field::new(SOURCE_ERROR, DataType::Text));
        }
        Ok(StreamInfo {
            schema: Arc::new(Schema::new(fields)),
            key_columns: Vec::new(),
            estimated_rows: estimated,
            notes: vec![format!(
                "{} {} file(s), first {}",
                files.len(),
                self.files.kind.extension(),
                files
                    .first()
                    .map(|f| f.display().to_string())
                    .unwrap_or_default()
            )],
            series: None,
        })
    }

    async fn partitions(&self, stream: &StreamSpec, opts: &ReadOptions) -> Result<Vec<Partition>> {
        self.check_stream(stream)?;
        let files = self.stream_files(stream)?;
        self.files.partitions(&files, opts.partition_rows.max(1))
    }

    async fn read(
        &self,
        stream: &StreamSpec,
        partition: &Partition,
        opts: &ReadOptions,
        out: BatchTx,
    ) -> Result<()> {
        // The first file's columns (not stream_info, which opens every file to count rows).
        let (_, wanted) = self.stream_fields(stream)?;
        let reject = self.files.kind == FileKind::Csv;
        read_blocking(
            self.files.clone(),
            partition.spec.clone(),
            wanted,
            opts.batch_rows,
            reject,
            out,
        )
        .await
    }
}
