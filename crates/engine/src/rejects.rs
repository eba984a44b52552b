//! Rejects files: one `<stream>.rejects.csv` per stream, created on the first rejected row,
//! holding the partition, the row's key, the column, the reason and the whole source row as JSON.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use tsmigrate_core::convert::value_to_string;
use tsmigrate_core::{Batch, Error, Result, ValueRef};

/// Writes one stream's rejected rows.
pub struct RejectsFile {
    path: PathBuf,
    /// The key columns, found by name in each batch (a pivot rejects narrow rows and wide
    /// rows, which hold the key columns at different positions).
    key_names: Vec<String>,
    /// Add to an existing file (a resumed run or a sync) instead of replacing it.
    append: bool,
    writer: Mutex<Option<csv::Writer<BufWriter<File>>>>,
}

impl RejectsFile {
    /// A rejects file for `stream` in `dir`, listing the `key_names` columns of each row;
    /// nothing is created until a row is rejected. With `append` (a resumed run, a sync), rows
    /// are added to an existing file, so the rejects of the partitions committed earlier stay
    /// listed.
    pub fn new(dir: &Path, stream: &str, key_names: Vec<String>, append: bool) -> RejectsFile {
        RejectsFile {
            path: dir.join(format!("{stream}.rejects.csv")),
            key_names,
            append,
            writer: Mutex::new(None),
        }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
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

    /// Appends one rejected row of `batch` (the source batch).
    pub fn record(
        &self,
        partition: &str,
        batch: &Batch,
        row: usize,
        column: Option<&str>,
        reason: &str,
    ) -> Result<()> {
        let io = |e: std::io::Error| Error::Io {
            path: self.path.display().to_string(),
            source: e,
        };
        let csv_err = |e: csv::Error| io(std::io::Error::other(e.to_string()));
        let mut guard = self
            .writer
            .lock()
            .map_err(|_| io(std::io::Error::other("rejects writer poisoned")))?;
        if guard.is_none() {
            let existing = self.append
                && std::fs::metadata(&self.path).is_ok_and(|m| m.is_file() && m.len() > 0);
            let f = if existing {
                std::fs::OpenOptions::new()
                    .append(true)
                    .open(&self.path)
                    .map_err(io)?
            } else {
                File::create(&self.path).map_err(io)?
            };
            let mut w = csv::Writer::from_writer(BufWriter::new(f));
            if !existing {
                let mut header = vec!["partition".to_string()];
                header.extend(self.key_names.iter().cloned());
                header.extend([
                    "column".to_string(),
                    "reason".to_string(),
                    "source_row".to_string(),
                ]);
                w.write_record(&header).map_err(csv_err)?;
            }
            *guard = Some(w);
        }
        let Some(w) = guard.as_mut() else {
            return Ok(());
        };
        let mut rec = vec![partition.to_string()];
        rec.extend(self.key_values(batch, row));
        rec.push(column.unwrap_or("").to_string());
        rec.push(reason.to_string());
        rec.push(row_json(batch, row));
        w.write_record(&rec).map_err(csv_err)?;
        Ok(())
    }

    /// Flushes the file, if it was created. Returns its path when it exists.
    pub fn finish(&self) -> Result<Option<PathBuf>> {
        let mut guard = match self.writer.lock() {
            Ok(g) => g,
            Err(_) => return Ok(None),
        };
        match guard.as_mut() {
            Some(w) => {
                w.flush().map_err(|e| Error::Io {
                    path: self.path.display().to_string(),
                    source: e,
                })?;
                Ok(Some(self.path.clone()))
            }
            None => Ok(None),
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
            ValueRef::Float(x) if x.is_finite() => serde_json::Value::from(x),
            other => serde_json::Value::String(value_to_string(other)),
        };
        obj.insert(f.name.clone(), j);
    }
    serde_json::Value::Object(obj).to_string()
}
