//! Lookup columns (`[streams.lookup.<column>]`): a mapped value (a device's name) replaced by
//! the value a table of the target holds for it (the device's id), as the seed's
//! `telemetry_data.device_id` is resolved through `devices(name → id)`.
//!
//! The lookup table is read whole when the stream is prepared and kept in memory (lookup
//! tables are dimensions: devices, keys, sites). A value not there is asked of the target
//! again, once per batch for all such values together, and inserted first when the lookup
//! says `create = true`; otherwise the row is rejected with the value and the table named.
//! `verify` maps the source's rows through the same table (never creating), so it compares
//! ids with ids.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, RwLock};

use tsmigrate_core::convert::write_text;
use tsmigrate_core::{
    Batch, Column, DataType, Error, Field, LookupSpec, RowErrors, Schema, Sink, StreamSpec,
    ValueRef,
};

/// What one lookup table holds so far: match text → row of `values`.
struct Known {
    index: HashMap<String, usize>,
    values: Column,
}

/// The lookup of one target column.
struct ColumnLookup {
    column: String,
    spec: LookupSpec,
    dtype: DataType,
    known: RwLock<Known>,
}

/// The lookups of a stream.
pub struct Lookups {
    stream: String,
    columns: Vec<ColumnLookup>,
}

impl Lookups {
    /// The stream's lookups, each table read whole from the target (`None` when the stream
    /// has none). Refused when a lookup names no column of the stream.
    pub async fn load(spec: &StreamSpec, sink: &dyn Sink) -> Result<Option<Arc<Lookups>>, Error> {
        if spec.lookup.is_empty() {
            return Ok(None);
        }
        if spec.aggregate.is_some() {
            return Err(Error::Plan(format!(
                "stream `{}`: an aggregate stream cannot have lookups; look the values up in the stream it aggregates",
                spec.name
            )));
        }
        let mut columns = Vec::new();
        for (column, l) in &spec.lookup {
            if !spec.columns.is_empty() && !spec.columns.iter().any(|c| c.name == *column) {
                return Err(Error::Plan(format!(
                    "stream `{}`: [streams.lookup.{column}] names no column of the stream; its columns are: {}",
                    spec.name,
                    spec.columns
                        .iter()
                        .map(|c| c.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            let rows = sink.lookup(l, None, false).await?;
            let dtype = rows
                .schema
                .fields
                .get(1)
                .map(|f| f.dtype)
                .ok_or_else(|| Error::Internal("a lookup without a value column".into()))?;
            let mut known = Known {
                index: HashMap::new(),
                values: Column::with_capacity(dtype, rows.len()),
            };
            add_rows(&mut known, &rows, &spec.name, column, l)?;
            columns.push(ColumnLookup {
                column: column.clone(),
                spec: l.clone(),
                dtype,
                known: RwLock::new(known),
            });
        }
        Ok(Some(Arc::new(Lookups {
            stream: spec.name.clone(),
            columns,
        })))
    }

    /// The mapping's columns with each lookup column's type replaced by the type of the value
    /// written into it.
    pub fn target_schema(&self, mapped: &Schema) -> Schema {
        Schema::new(
            mapped
                .fields
                .iter()
                .map(|f| match self.columns.iter().find(|c| c.column == f.name) {
                    Some(c) => Field::new(f.name.clone(), c.dtype),
                    None => f.clone(),
                })
                .collect(),
        )
    }

    /// Asks the target for the values of `mapped` that are not known yet (inserting them when
    /// a lookup creates), so that [`Lookups::apply`] finds them. Rows already rejected are
    /// left out: a line that could not be read must not add a device.
    pub async fn resolve(
        &self,
        mapped: &Batch,
        rejected: &RowErrors,
        sink: &dyn Sink,
    ) -> Result<(), Error> {
        for c in &self.columns {
            let Some(col) = mapped.column(&c.column) else {
                continue;
            };
            let missing: Vec<String> = {
                let known = c.known.read().map_err(|_| poisoned())?;
                let mut set = BTreeSet::new();
                let mut text = String::new();
                for row in 0..col.len() {
                    let v = col.get(row);
                    if v == ValueRef::Null || rejected.is_rejected(row) {
                        continue;
                    }
                    text.clear();
                    write_text(v, &mut text);
                    if !known.index.contains_key(&text) {
                        set.insert(text.clone());
                    }
                }
                set.into_iter().collect()
            };
            if missing.is_empty() {
                continue;
            }
            let rows = sink.lookup(&c.spec, Some(&missing), c.spec.create).await?;
            let mut known = c.known.write().map_err(|_| poisoned())?;
            add_rows(&mut known, &rows, &self.stream, &c.column, &c.spec)?;
        }
        Ok(())
    }

    /// `mapped` with each lookup column's values replaced by the looked-up ones; a row whose
    /// value the table does not hold is rejected (its column left NULL).
    pub fn apply(&self, mapped: &Batch, errors: &mut RowErrors) -> Result<Batch, Error> {
        let mut columns = mapped.columns.clone();
        for c in &self.columns {
            let Some(i) = mapped.schema.index_of(&c.column) else {
                continue;
            };
            let col = &mapped.columns[i];
            let known = c.known.read().map_err(|_| poisoned())?;
            let mut out = Column::with_capacity(c.dtype, col.len());
            let mut text = String::new();
            for row in 0..col.len() {
                let v = col.get(row);
                if v == ValueRef::Null || errors.is_rejected(row) {
                    out.push_null();
                    continue;
                }
                text.clear();
                write_text(v, &mut text);
                match known.index.get(&text) {
                    Some(at) => out.push_value(known.values.get(*at)),
                    None => {
                        out.push_null();
                        errors.reject(
                            row,
                            Some(&c.column),
                            format!(
                                "{text:?} is not in {}.{}{}",
                                c.spec.table,
                                c.spec.match_column,
                                if c.spec.create {
                                    ""
                                } else {
                                    " (add it, or set create = true in the stream's lookup to insert missing ones)"
                                }
                            ),
                        );
                    }
                }
            }
            columns[i] = Arc::new(out);
        }
        Batch::new(Arc::new(self.target_schema(&mapped.schema)), columns).ok_or_else(|| {
            Error::Internal(format!(
                "stream `{}`: looked-up columns do not fit the schema",
                self.stream
            ))
        })
    }
}

fn poisoned() -> Error {
    Error::Internal("a lookup cache was poisoned by a panic".into())
}

/// Adds a lookup's rows (match text, value) to what is known; a match that appears twice
/// with different values is an error (the lookup would be ambiguous).
fn add_rows(
    known: &mut Known,
    rows: &Batch,
    stream: &str,
    column: &str,
    spec: &LookupSpec,
) -> Result<(), Error> {
    let (Some(names), Some(values)) = (rows.columns.first(), rows.columns.get(1)) else {
        return Err(Error::Internal("a lookup returned no columns".into()));
    };
    let mut text = String::new();
    for row in 0..rows.len() {
        let ValueRef::Str(name) = names.get(row) else {
            continue;
        };
        let value = values.get(row);
        if let Some(at) = known.index.get(name) {
            if known.values.get(*at) != value {
                text.clear();
                write_text(value, &mut text);
                return Err(Error::Plan(format!(
                    "stream `{stream}`, lookup of `{column}`: {} has more than one row with {} = {name:?} \
                     (one of them with {} = {text}); a lookup needs one value per match — make {} unique",
                    spec.table, spec.match_column, spec.value, spec.match_column
                )));
            }
            continue;
        }
        known.index.insert(name.to_string(), known.values.len());
        known.values.push_value(value);
    }
    Ok(())
}
