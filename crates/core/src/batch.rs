//! Batches: a schema plus one column per field, a few thousand to ~64k rows, and at most
//! [`MAX_BATCH_BYTES`] of values.

use std::sync::Arc;

/// The most value bytes a reader puts in one batch, whatever `batch_rows` says: rows of large
/// values (1 MB JSON documents, blobs) cut batches short, so memory stays bounded in bytes
/// (about `jobs × (channel depth + 2) ×` this) and not only in rows. Ordinary telemetry rows
/// (~100 bytes) never reach it: 16,384 of them are under 2 MB.
pub const MAX_BATCH_BYTES: usize = 16 << 20;

use crate::column::{Column, ValueRef};
use crate::types::DataType;

/// A named, typed column of a schema.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    /// Column name.
    pub name: String,
    /// Logical type.
    pub dtype: DataType,
}

impl Field {
    /// A field named `name` of type `dtype`.
    pub fn new(name: impl Into<String>, dtype: DataType) -> Field {
        Field {
            name: name.into(),
            dtype,
        }
    }
}

/// The ordered fields of a stream or batch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Schema {
    /// Fields in column order.
    pub fields: Vec<Field>,
}

impl Schema {
    /// A schema of `fields`.
    pub fn new(fields: Vec<Field>) -> Schema {
        Schema { fields }
    }

    /// Position of the field called `name` (exact match first, then case-insensitive).
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.fields.iter().position(|f| f.name == name).or_else(|| {
            self.fields
                .iter()
                .position(|f| f.name.eq_ignore_ascii_case(name))
        })
    }

    /// Field names joined by ", " (for messages).
    pub fn names(&self) -> String {
        self.fields
            .iter()
            .map(|f| f.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A set of rows in columnar form.
#[derive(Clone, Debug)]
pub struct Batch {
    /// The batch's schema.
    pub schema: Arc<Schema>,
    /// One column per schema field, all of `len` rows.
    pub columns: Vec<Arc<Column>>,
    len: usize,
}

/// The column a source adds to its rows to say one could not be read (a malformed line of a
/// file): its text is the reason, NULL for good rows. The engine rejects such rows into the
/// rejects file with that reason, before mapping; an identity mapping leaves the column out.
pub const SOURCE_ERROR: &str = "_source_error";

impl Batch {
    /// Rejects the rows whose [`SOURCE_ERROR`] column holds a reason (none without the column).
    pub fn reject_source_errors(&self, errors: &mut crate::convert::RowErrors) {
        let Some(i) = self.schema.index_of(SOURCE_ERROR) else {
            return;
        };
        let Some(col) = self.columns.get(i) else {
            return;
        };
        for row in 0..self.len() {
            if let ValueRef::Str(reason) = col.get(row) {
                errors.reject(row, None, reason.to_string());
            }
        }
    }

    /// Builds a batch; returns `None` when a column's length or type disagrees with the schema.
    pub fn new(schema: Arc<Schema>, columns: Vec<Arc<Column>>) -> Option<Batch> {
        let len = columns.first().map(|c| c.len()).unwrap_or(0);
        let fits = columns.len() == schema.fields.len()
            && columns
                .iter()
                .zip(&schema.fields)
                .all(|(c, f)| c.len() == len && c.dtype() == f.dtype);
        fits.then_some(Batch {
            schema,
            columns,
            len,
        })
    }

    /// Builds a batch of `len` rows with no columns (a mapping made only of constants uses it).
    pub fn empty_with_rows(len: usize) -> Batch {
        Batch {
            schema: Arc::new(Schema::default()),
            columns: Vec::new(),
            len,
        }
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the batch holds no row.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The column called `name`.
    pub fn column(&self, name: &str) -> Option<&Arc<Column>> {
        self.schema.index_of(name).and_then(|i| self.columns.get(i))
    }

    /// The rows where `keep[i]` is true, as a new batch.
    pub fn filter(&self, keep: &[bool]) -> Batch {
        let columns: Vec<Arc<Column>> = self
            .columns
            .iter()
            .map(|c| Arc::new(c.filter(keep)))
            .collect();
        let len = keep.iter().take(self.len).filter(|k| **k).count();
        Batch {
            schema: self.schema.clone(),
            columns,
            len,
        }
    }

    /// Row `i` as values (off the hot path: previews, rejects, tests).
    pub fn row(&self, i: usize) -> Vec<ValueRef<'_>> {
        self.columns.iter().map(|c| c.get(i)).collect()
    }

    /// Approximate in-memory size in bytes.
    pub fn byte_size(&self) -> usize {
        self.columns.iter().map(|c| c.byte_size()).sum()
    }
}
