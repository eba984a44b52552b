//! `[target] kind = "parquet"` and `kind = "csv"`: a directory per stream, one file per
//! partition.
//!
//! ```toml
//! [target]
//! kind = "parquet"          # or "csv"
//! path = "archive/"         # created when missing; each stream writes archive/<table>/
//! compression = "zstd"      # parquet: zstd (default), snappy or none
//! row_group_rows = 1048576  # parquet: rows per row group (default 1,048,576, as pyarrow)
//! ```
//!
//! A partition is written to a hidden temporary file (`.part-<id>.parquet.tmp`), synced, and
//! renamed to `part-<id>.parquet` when it commits, so a reader of the directory sees whole
//! partitions only, and a partition written again (a resumed run) replaces its file instead
//! of adding to it. The plan's ledger is a SQLite file in the target directory
//! (`_tsmigrate_ledger.sqlite`; readers skip names starting with `_` and `.`).
//!
//! Rows enter by `append` only: there is no key to skip or update by in a file, so `skip`,
//! `upsert` and `sync` (whose rounds skip rows already written) are refused. Rolling back a
//! run is deleting the directory.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use tsmigrate_core::{
    Batch, CommitInfo, End, Endpoint, Error, Field, FinishReport, Ledger, LedgerOptions, Partition,
    PartitionCommit, PartitionWriter, PreparedTarget, Result, Sink, TableReader, TargetRequest,
    WriteMode, WriteOutcome,
};

use crate::csv_format::{encode_batch, encode_header};
use crate::error::file_error;
use crate::ledger::file_ledger;
use crate::parquet_format::{Codec, ParquetWriter};
use crate::table::FileTableReader;

/// Rows per Parquet row group unless the plan says otherwise (pyarrow's default).
pub const DEFAULT_ROW_GROUP_ROWS: usize = 1 << 20;

/// The file format of a file target or source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Apache Parquet.
    Parquet {
        /// Page compression.
        codec: Codec,
        /// Rows per row group.
        row_group_rows: usize,
    },
    /// RFC 4180 CSV with a header row.
    Csv,
}

impl Format {
    /// The files' extension (`parquet`, `csv`).
    pub fn extension(self) -> &'static str {
        match self {
            Format::Parquet { .. } => "parquet",
            Format::Csv => "csv",
        }
    }

    /// The plan's kind (`parquet`, `csv`).
    pub fn kind(self) -> &'static str {
        self.extension()
    }
}

/// Writes streams as directories of Parquet or CSV files.
pub struct FileSink {
    root: PathBuf,
    format: Format,
}

impl FileSink {
    /// The sink of a `[target] kind = "parquet"` or `"csv"` endpoint.
    pub fn open(endpoint: &Endpoint) -> Result<FileSink> {
        let kind = endpoint.kind.as_str();
        let allowed: &[&str] = match kind {
            "parquet" => &["path", "compression", "row_group_rows"],
            "csv" => &["path"],
            other => return Err(Error::Internal(format!("{other:?} is not a file target"))),
        };
        if endpoint.url.is_some() {
            return Err(Error::Plan(format!(
                "[target] kind = \"{kind}\" writes files: give path = \"…\" (a directory) instead of url"
            )));
        }
        if let Some(k) = endpoint
            .options
            .keys()
            .find(|k| !allowed.contains(&k.as_str()))
        {
            return Err(Error::Plan(format!(
                "[target] kind = \"{kind}\" has no option `{k}`; its options are {}",
                allowed.join(", ")
            )));
        }
        let root = match endpoint.options.get("path") {
            Some(toml::Value::String(p)) if !p.is_empty() => PathBuf::from(p),
            _ => {
                return Err(Error::Plan(format!(
                    "[target] kind = \"{kind}\" needs path = \"…\": the directory the streams' files go to"
                )))
            }
        };
        let format = if kind == "parquet" {
            let codec =
                match endpoint.options.get("compression") {
                    None => Codec::Zstd,
                    Some(toml::Value::String(s)) => Codec::parse(s)?,
                    Some(_) => return Err(Error::Plan(
                        "[target] compression must be a string: \"zstd\", \"snappy\" or \"none\""
                            .into(),
                    )),
                };
            let row_group_rows = match endpoint.options.get("row_group_rows") {
                None => DEFAULT_ROW_GROUP_ROWS,
                Some(toml::Value::Integer(n)) if *n >= 1 => {
                    usize::try_from(*n).unwrap_or(usize::MAX)
                }
                Some(_) => {
                    return Err(Error::Plan(
                        "[target] row_group_rows must be a positive integer".into(),
                    ))
                }
            };
            Format::Parquet {
                codec,
                row_group_rows,
            }
        } else {
            Format::Csv
        };
        Ok(FileSink { root, format })
    }

    /// The directory a stream's table is written to.
    fn table_dir(&self, table: &str, ctx: &str) -> Result<PathBuf> {
        table_dir(&self.root, table, ctx)
    }
}

/// The directory of `table` under `root`; refused when the name is not one plain file name.
pub fn table_dir(root: &Path, table: &str, ctx: &str) -> Result<PathBuf> {
    let plain = !table.is_empty()
        && table != "."
        && table != ".."
        && !table.starts_with(['.', '_'])
        && !table.contains(['/', '\\', '\0']);
    if !plain {
        return Err(Error::Plan(format!(
            "{ctx}: table {table:?} names the stream's directory in the file target and must be a plain file name \
             (no slashes, not starting with `.` or `_`); set the stream's `table`"
        )));
    }
    Ok(root.join(table))
}

/// A partition id as a file name: characters other than letters, digits, `.`, `-`, `_` and
/// `=` become `_`, and a hash of the id keeps changed names apart.
pub fn file_stem(partition_id: &str) -> String {
    let clean: String = partition_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '=') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if clean == partition_id && !clean.starts_with('.') {
        return format!("part-{clean}");
    }
    // FNV-1a: stable across builds and platforms, which the name must be.
    let hash = partition_id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("part-{clean}-{:08x}", hash as u32)
}

/// The data files of a table directory (not hidden ones, not the ledger).
fn data_files(dir: &Path, format: Format) -> Result<Vec<PathBuf>> {
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    crate::listing::list_files(dir, &[format.extension()], "file").or_else(|e| match e {
        Error::Plan(_) => Ok(Vec::new()),
        other => Err(other),
    })
}

#[async_trait]
impl Sink for FileSink {
    fn describe(&self) -> String {
        format!("{} files in {}", self.format.kind(), self.root.display())
    }

    async fn check(&self) -> Result<Vec<String>> {
        if self.root.is_dir() {
            let probe = self.root.join(".tsmigrate-check");
            std::fs::write(&probe, b"").map_err(|e| Error::Connect {
                end: End::Target,
                what: self.describe(),
                message: format!("the directory cannot be written: {e}"),
                transient: false,
            })?;
            let _ = std::fs::remove_file(&probe);
            Ok(vec![format!(
                "{} (the directory exists and can be written)",
                self.describe()
            )])
        } else if self.root.exists() {
            Err(Error::Connect {
                end: End::Target,
                what: self.describe(),
                message: "the path exists and is not a directory".into(),
                transient: false,
            })
        } else {
            Ok(vec![format!(
                "{} (the directory does not exist yet: `run` creates it)",
                self.describe()
            )])
        }
    }

    async fn prepare(&self, request: &TargetRequest, dry_run: bool) -> Result<PreparedTarget> {
        let ctx = format!("stream `{}`, table {}", request.stream, request.table);
        if request.write != WriteMode::Append {
            return Err(Error::Plan(format!(
                "{ctx}: write = \"{}\" needs a store that finds rows by key; a {} target only appends \
                 (a partition written again replaces its own file). Use write = \"append\"",
                request.write.name(),
                self.format.kind()
            )));
        }
        let dir = self.table_dir(&request.table, &ctx)?;
        let fields: Vec<Field> = request
            .columns
            .iter()
            .map(|c| Field::new(c.name.clone(), c.dtype))
            .collect();
        let mut notes = Vec::new();
        let existing = data_files(&dir, self.format)?;
        if !existing.is_empty() {
            if request.require_empty {
                let msg = format!(
                    "{ctx}: the directory {} already holds files that this plan's ledger did not write; \
                     this run's files would be mixed with them. Move or delete them, or choose another [target] path",
                    dir.display()
                );
                // Refused in a dry run and `check` too: they must not pass what `run` refuses.
                return Err(Error::Plan(msg));
            } else {
                notes.push(format!(
                    "{} holds {} file(s) already; partitions written again replace their own files",
                    dir.display(),
                    existing.len()
                ));
            }
        }
        let what = match self.format {
            Format::Parquet {
                codec,
                row_group_rows,
            } => {
                format!("Parquet, {codec:?} compression, row groups of up to {row_group_rows} rows")
            }
            Format::Csv => "CSV with a header row".into(),
        };
        let columns: Vec<String> = fields
            .iter()
            .map(|f| format!("{} {}", f.name, f.dtype))
            .collect();
        let created = (!dir.is_dir()).then(|| {
            format!(
                "directory {} ({what}; columns {})",
                dir.display(),
                columns.join(", ")
            )
        });
        if created.is_none() {
            notes.push(format!(
                "files: {}/part-*.{} ({what})",
                dir.display(),
                self.format.extension()
            ));
        }
        if !dry_run {
            std::fs::create_dir_all(&dir).map_err(|e| file_error(&dir, e))?;
            remove_stale_temporaries(&dir)?;
        }
        Ok(PreparedTarget {
            stream: request.stream.clone(),
            table: request.table.clone(),
            columns: fields,
            created,
            notes,
            write: WriteMode::Append,
            key: request.key.clone(),
            limits: Vec::new(),
        })
    }

    async fn begin(
        &self,
        target: &PreparedTarget,
        partition: &Partition,
    ) -> Result<Box<dyn PartitionWriter>> {
        let ctx = format!("stream `{}`, partition {}", target.stream, partition.id);
        if target.write != WriteMode::Append {
            return Err(Error::Unsupported(format!(
                "{ctx}: a {} target cannot skip rows already written, which a sync round needs; \
                 run a new full `run` into an empty directory instead",
                self.format.kind()
            )));
        }
        let dir = self.table_dir(&target.table, &ctx)?;
        let stem = file_stem(&partition.id);
        let ext = self.format.extension();
        let final_path = dir.join(format!("{stem}.{ext}"));
        let temp = dir.join(format!(".{stem}.{ext}.tmp"));
        let (format, fields, temp2) = (self.format, target.columns.clone(), temp.clone());
        let file = tokio::task::spawn_blocking(move || OpenFile::create(format, &temp2, &fields))
            .await
            .map_err(|e| join_error(&ctx, &e))??;
        Ok(Box::new(FilePartitionWriter {
            file: Some(file),
            temp,
            final_path,
            rows: 0,
            context: ctx,
        }))
    }

    async fn finish(&self, _target: &PreparedTarget) -> Result<FinishReport> {
        Ok(FinishReport::default())
    }

    fn ledger(&self, plan_id: &str, _opts: &LedgerOptions) -> Result<Option<Arc<dyn Ledger>>> {
        Ok(Some(Arc::new(file_ledger(&self.root, plan_id))))
    }

    fn reader(&self) -> Option<Arc<dyn TableReader>> {
        let format = match self.format {
            Format::Parquet { .. } => crate::table::FileKind::Parquet,
            Format::Csv => crate::table::FileKind::Csv,
        };
        Some(Arc::new(FileTableReader::new(
            self.root.clone(),
            format,
            End::Target,
        )))
    }
}

/// Deletes the temporary files of partitions a crashed run left behind.
fn remove_stale_temporaries(dir: &Path) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| file_error(dir, e))?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(".part-") && name.ends_with(".tmp") {
            let path = entry.path();
            std::fs::remove_file(&path).map_err(|e| file_error(&path, e))?;
        }
    }
    Ok(())
}

fn join_error(ctx: &str, e: &tokio::task::JoinError) -> Error {
    Error::Store {
        end: End::Target,
        context: ctx.to_string(),
        message: format!("the file writer stopped: {e}"),
        transient: false,
    }
}

/// A partition's file being written.
enum OpenFile {
    Parquet(ParquetWriter),
    Csv {
        file: std::io::BufWriter<std::fs::File>,
        path: PathBuf,
        buf: Vec<u8>,
    },
}

impl OpenFile {
    fn create(format: Format, path: &Path, fields: &[Field]) -> Result<OpenFile> {
        match format {
            Format::Parquet {
                codec,
                row_group_rows,
            } => Ok(OpenFile::Parquet(ParquetWriter::create(
                path,
                fields,
                codec,
                row_group_rows,
            )?)),
            Format::Csv => {
                let file = std::fs::File::create(path).map_err(|e| file_error(path, e))?;
                let mut buf = Vec::new();
                encode_header(fields.iter().map(|f| f.name.as_str()), &mut buf);
                Ok(OpenFile::Csv {
                    file: std::io::BufWriter::with_capacity(1 << 20, file),
                    path: path.to_path_buf(),
                    buf,
                })
            }
        }
    }

    fn write(&mut self, batch: &Batch) -> Result<()> {
        match self {
            OpenFile::Parquet(w) => w.write(batch),
            OpenFile::Csv { file, path, buf } => {
                use std::io::Write;
                encode_batch(batch, buf);
                file.write_all(buf).map_err(|e| file_error(path, e))?;
                buf.clear();
                Ok(())
            }
        }
    }

    fn finish(self) -> Result<()> {
        match self {
            OpenFile::Parquet(w) => w.finish().map(|_| ()),
            OpenFile::Csv {
                mut file,
                path,
                buf,
            } => {
                use std::io::Write;
                file.write_all(&buf).map_err(|e| file_error(&path, e))?;
                let file = file
                    .into_inner()
                    .map_err(|e| file_error(&path, e.into_error()))?;
                file.sync_all().map_err(|e| file_error(&path, e))
            }
        }
    }
}

/// Writes one partition's file; [`PartitionWriter::commit`] renames it into place.
struct FilePartitionWriter {
    file: Option<OpenFile>,
    temp: PathBuf,
    final_path: PathBuf,
    rows: u64,
    context: String,
}

#[async_trait]
impl PartitionWriter for FilePartitionWriter {
    async fn write(&mut self, batch: &Batch) -> Result<WriteOutcome> {
        let mut file = self.file.take().ok_or_else(|| Error::Store {
            end: End::Target,
            context: self.context.clone(),
            message: "internal error: the file was already closed".into(),
            transient: false,
        })?;
        let b = batch.clone();
        let (file, res) = tokio::task::spawn_blocking(move || {
            let r = file.write(&b);
            (file, r)
        })
        .await
        .map_err(|e| join_error(&self.context, &e))?;
        self.file = Some(file);
        res?;
        self.rows += batch.len() as u64;
        Ok(WriteOutcome {
            bytes: batch.byte_size() as u64,
            rejected: Vec::new(),
        })
    }

    async fn commit(mut self: Box<Self>, _ledger: Option<&PartitionCommit>) -> Result<CommitInfo> {
        let file = self.file.take();
        let (temp, final_path) = (self.temp.clone(), self.final_path.clone());
        tokio::task::spawn_blocking(move || -> Result<()> {
            if let Some(f) = file {
                f.finish()?;
            }
            std::fs::rename(&temp, &final_path).map_err(|e| file_error(&final_path, e))?;
            // The rename is durable once the directory is synced.
            if let Some(dir) = final_path.parent() {
                if let Ok(d) = std::fs::File::open(dir) {
                    let _ = d.sync_all();
                }
            }
            Ok(())
        })
        .await
        .map_err(|e| join_error(&self.context, &e))??;
        Ok(CommitInfo {
            written: self.rows,
            skipped: 0,
            recorded: false,
        })
    }

    async fn abort(mut self: Box<Self>) -> Result<()> {
        drop(self.file.take());
        match std::fs::remove_file(&self.temp) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(file_error(&self.temp, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_ids_become_stable_file_names() {
        assert_eq!(file_stem("0007"), "part-0007");
        assert_eq!(file_stem("blocks=0-1000"), "part-blocks=0-1000");
        let a = file_stem("ts_kv/g1");
        let b = file_stem("ts_kv_g1");
        assert!(a.starts_with("part-ts_kv_g1-"), "{a}");
        assert_ne!(a, b);
        assert_eq!(a, file_stem("ts_kv/g1"));
        assert!(file_stem("../x").starts_with("part-.._x-"));
    }

    #[test]
    fn table_names_are_plain_file_names() {
        let root = Path::new("/tmp/x");
        assert_eq!(
            table_dir(root, "metric_hist", "s").unwrap(),
            root.join("metric_hist")
        );
        for bad in ["", "..", "a/b", "_ledger", ".hidden"] {
            assert!(table_dir(root, bad, "s").is_err(), "{bad}");
        }
    }
}
