//! Rejects files: one `<stream>.rejects.csv` per stream, holding for each rejected row the
//! partition, the row's key, the column, the reason and the whole source row as JSON.
//!
//! Rejected rows are durable with their partition: a partition attempt writes its rejects to
//! a part file of its own (`<stream>.rejects.d/<partition>.csv`), synced to disk and moved
//! into place *before* the partition commits. A killed run therefore loses none (the parts of
//! its committed partitions are on disk), and a partition written again replaces its part
//! instead of listing its rows twice. The stream's `<stream>.rejects.csv` is put together
//! from the parts of the partitions the ledger holds as done, at the end of every run and
//! sync round.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use tsmigrate_core::convert::{value_text, value_to_string};
use tsmigrate_core::{Batch, Error, Result, ValueRef};

/// One stream's rejects: the part files of its partitions and the file they make.
pub struct RejectsFile {
    path: PathBuf,
    parts: PathBuf,
    /// The key columns, found by name in each batch (a pivot rejects narrow rows and wide
    /// rows, which hold the key columns at different positions).
    key_names: Vec<String>,
}

/// The rejected rows of one partition attempt, written to a temporary part file; nothing is
/// created until a row is rejected.
pub struct PartitionRejects<'a> {
    file: &'a RejectsFile,
    partition: String,
    writer: Option<csv::Writer<BufWriter<File>>>,
    rows: u64,
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::Io {
        path: path.display().to_string(),
        source: e,
    }
}

/// A file name for a partition id (which may hold `/`): its readable characters and a hash
/// of the whole id, so two ids never share a file.
fn part_name(partition: &str) -> String {
    let readable: String = partition
        .chars()
        .map(|c| match c {
            '/' => '~',
            c if c.is_ascii_alphanumeric() || "._-".contains(c) => c,
            _ => '_',
        })
        .take(80)
        .collect();
    let hash = xxhash_rust::xxh3::xxh3_64(partition.as_bytes());
    format!("{readable}-{hash:016x}.csv")
}

/// Syncs a directory, so a rename in it survives a crash.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

impl RejectsFile {
    /// The rejects of `stream`, in `dir`, listing the `key_names` columns of each row.
    pub fn new(dir: &Path, stream: &str, key_names: Vec<String>) -> RejectsFile {
        RejectsFile {
            path: dir.join(format!("{stream}.rejects.csv")),
            parts: dir.join(format!("{stream}.rejects.d")),
            key_names,
        }
    }

    /// The stream's rejects file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The rejects of one attempt at `partition`.
    pub fn partition(&self, partition: &str) -> PartitionRejects<'_> {
        PartitionRejects {
            file: self,
            partition: partition.to_string(),
            writer: None,
            rows: 0,
        }
    }

    /// The row's key values (NULL for a key column the batch does not have).
    fn key_values<'a>(&'a self, batch: &'a Batch, row: usize) -> impl Iterator<Item = String> + 'a {
        self.key_names.iter().map(move |n| {
            let v = batch
                .column(n)
                .map(|c| c.get(row))
                .unwrap_or(ValueRef::Null);
            value_to_string(v)
        })
    }

    /// The row's key as `name=value` pairs.
    pub fn key_text(&self, batch: &Batch, row: usize) -> String {
        self.key_names
            .iter()
            .zip(self.key_values(batch, row))
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn header(&self) -> Vec<String> {
        let mut header = vec!["partition".to_string()];
        header.extend(self.key_names.iter().cloned());
        header.extend(["column".into(), "reason".into(), "source_row".into()]);
        header
    }

    /// Writes `<stream>.rejects.csv` from the parts of the `done` partitions (in that order),
    /// and deletes the parts of partitions that are not done (attempts that never committed).
    /// Returns the file's path when it holds a row.
    pub fn assemble(&self, done: &[String]) -> Result<Option<PathBuf>> {
        let Ok(entries) = std::fs::read_dir(&self.parts) else {
            return Ok(None);
        };
        let keep: std::collections::HashSet<String> = done.iter().map(|p| part_name(p)).collect();
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !keep.contains(&name) {
                // A part of an attempt that did not commit, or a temporary one.
                let _ = std::fs::remove_file(e.path());
            }
        }
        let tmp = self.path.with_extension("csv.tmp");
        let io = io_err(&tmp);
        let mut out = csv::Writer::from_writer(BufWriter::new(File::create(&tmp).map_err(&io)?));
        out.write_record(self.header())
            .map_err(|e| io(std::io::Error::other(e.to_string())))?;
        let mut out = out
            .into_inner()
            .map_err(|e| io(std::io::Error::other(e.to_string())))?;
        let mut rows = 0u64;
        for p in done {
            let part = self.parts.join(part_name(p));
            let Ok(text) = std::fs::read(&part) else {
                continue;
            };
            rows += text.iter().filter(|b| **b == b'\n').count() as u64;
            out.write_all(&text).map_err(&io)?;
        }
        out.flush().map_err(&io)?;
        drop(out);
        if rows == 0 {
            let _ = std::fs::remove_file(&tmp);
            let _ = std::fs::remove_file(&self.path);
            return Ok(None);
        }
        std::fs::rename(&tmp, &self.path).map_err(io_err(&self.path))?;
        Ok(Some(self.path.clone()))
    }
}

impl PartitionRejects<'_> {
    fn tmp_path(&self) -> PathBuf {
        self.file
            .parts
            .join(format!("{}.tmp", part_name(&self.partition)))
    }

    /// Rows recorded so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Appends one rejected row of `batch` (the source batch).
    pub fn record(
        &mut self,
        batch: &Batch,
        row: usize,
        column: Option<&str>,
        reason: &str,
    ) -> Result<()> {
        let tmp = self.tmp_path();
        let io = io_err(&tmp);
        let csv_err = |e: csv::Error| io(std::io::Error::other(e.to_string()));
        if self.writer.is_none() {
            std::fs::create_dir_all(&self.file.parts).map_err(io_err(&self.file.parts))?;
            let f = File::create(&tmp).map_err(&io)?;
            self.writer = Some(csv::Writer::from_writer(BufWriter::new(f)));
        }
        let Some(w) = self.writer.as_mut() else {
            return Ok(());
        };
        let mut rec = vec![self.partition.clone()];
        rec.extend(self.file.key_values(batch, row));
        rec.push(column.unwrap_or("").to_string());
        rec.push(reason.to_string());
        rec.push(row_json(batch, row));
        w.write_record(&rec).map_err(csv_err)?;
        self.rows += 1;
        Ok(())
    }

    /// Makes the attempt's rejects durable — synced and moved into place, replacing what an
    /// earlier attempt at the partition left — before the partition commits.
    pub fn seal(&mut self) -> Result<()> {
        let Some(w) = self.writer.take() else {
            // No reject this time: no earlier attempt's part may stay either.
            let _ = std::fs::remove_file(self.file.parts.join(part_name(&self.partition)));
            return Ok(());
        };
        let tmp = self.tmp_path();
        let io = io_err(&tmp);
        let f = w
            .into_inner()
            .map_err(|e| io(std::io::Error::other(e.to_string())))?
            .into_inner()
            .map_err(|e| io(e.into_error()))?;
        f.sync_all().map_err(&io)?;
        let part = self.file.parts.join(part_name(&self.partition));
        std::fs::rename(&tmp, &part).map_err(io_err(&part))?;
        sync_dir(&self.file.parts).map_err(io_err(&self.file.parts))?;
        Ok(())
    }
}

impl Drop for PartitionRejects<'_> {
    fn drop(&mut self) {
        if self.writer.take().is_some() {
            // An attempt that did not commit: its rows were rolled back, and so are its rejects.
            let _ = std::fs::remove_file(self.tmp_path());
        }
    }
}

/// A row as a JSON object (NaN and infinities as strings, timestamps as RFC 3339).
pub fn row_json(batch: &Batch, row: usize) -> String {
    let mut obj = serde_json::Map::new();
    for (f, c) in batch.schema.fields.iter().zip(&batch.columns) {
        let v = c.get(row);
        let j = match v {
            ValueRef::Null => serde_json::Value::Null,
            ValueRef::Bool(b) => serde_json::Value::Bool(b),
            ValueRef::Int(x) => serde_json::Value::from(x),
            // Numbers as their exact text (a float4 as the float4, not its widened double).
            ValueRef::Float(x) if x.is_finite() => {
                let text = value_text(v, c.dtype());
                text.parse::<serde_json::Number>()
                    .map(serde_json::Value::Number)
                    .unwrap_or(serde_json::Value::from(x))
            }
            other => serde_json::Value::String(value_to_string(other)),
        };
        obj.insert(f.name.clone(), j);
    }
    serde_json::Value::Object(obj).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use tsmigrate_core::{Column, DataType, Field, Schema};

    fn batch() -> Batch {
        let mut id = Column::with_capacity(DataType::Int64, 2);
        id.push_i64(1);
        id.push_i64(2);
        let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64)]));
        Batch::new(schema, vec![Arc::new(id)]).unwrap_or_else(|| panic!("batch"))
    }

    fn lines(p: &Path) -> Vec<String> {
        std::fs::read_to_string(p)
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect()
    }

    #[test]
    fn parts_of_done_partitions_make_the_file_and_a_redone_partition_replaces_its_own() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let f = RejectsFile::new(dir.path(), "s", vec!["id".into()]);
        let b = batch();
        // Partition a/1: rejected row 1, committed.
        let mut a = f.partition("a/1");
        a.record(&b, 0, None, "bad")
            .unwrap_or_else(|e| panic!("{e}"));
        a.seal().unwrap_or_else(|e| panic!("{e}"));
        // Partition b: an attempt that failed (dropped unsealed): nothing of it stays.
        let mut failed = f.partition("b");
        failed
            .record(&b, 1, None, "lost")
            .unwrap_or_else(|e| panic!("{e}"));
        drop(failed);
        // Partition a/1 again (redone after a rollback): its new part replaces the old.
        let mut again = f.partition("a/1");
        again
            .record(&b, 1, Some("id"), "worse")
            .unwrap_or_else(|e| panic!("{e}"));
        again.seal().unwrap_or_else(|e| panic!("{e}"));
        // A sealed part of a partition that never committed (killed before COMMIT).
        let mut orphan = f.partition("c");
        orphan
            .record(&b, 0, None, "orphan")
            .unwrap_or_else(|e| panic!("{e}"));
        orphan.seal().unwrap_or_else(|e| panic!("{e}"));
        let path = f
            .assemble(&["a/1".into(), "b".into()])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(path.as_deref(), Some(f.path()));
        assert_eq!(
            lines(f.path()),
            [
                "partition,id,column,reason,source_row",
                r#"a/1,2,id,worse,"{""id"":2}""#
            ]
        );
        assert!(
            !f.parts.join(part_name("c")).exists(),
            "the part of a partition that is not done is deleted"
        );
        assert_ne!(part_name("a/1"), part_name("a~1"));
    }
}
