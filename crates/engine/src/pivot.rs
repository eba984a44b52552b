//! Narrow → wide reshaping (`[streams.pivot]`): the source rows of one series and time (the
//! same `by` values) become one wide row, each row's value in the column its `name` names.
//!
//! A wide row needs every narrow row of its group, so a partition's rows are gathered
//! ([`Groups`]) and the wide rows made when the partition has been read; partitions are cut at
//! whole seconds of the source's series time (like aggregates), so no group is ever split
//! between two partitions. From there the wide rows are what the rest of the pipeline sees as
//! "the source": the mapping is compiled against their schema, `verify` pivots the source the
//! same way, and resume, rollback and the ledger treat the stream like any other.
//!
//! A narrow row is rejected (rejects file, with the narrow row) when its name matches no wide
//! column (`unmatched = "reject"`, else it is skipped and counted) or when its group already
//! has a value for that column (the first read is kept).

use std::collections::HashMap;
use std::sync::Arc;

use tsmigrate_core::convert::{value_to_string, RowErrors};
use tsmigrate_core::{
    Batch, Column, DataType, Error, Field, ReadOptions, Result, Schema, SeriesInfo, Source,
    StreamInfo, StreamSpec, Unmatched, ValueRef,
};

use crate::aggregate::encode_key;
use crate::points_table::read_points_table;

/// How a narrow row's `name` value finds its wide column.
#[derive(Debug)]
enum Lookup {
    /// The value is the column's name (matched ignoring ASCII case).
    Names(HashMap<String, usize>),
    /// The value is a point id from the plan (its text).
    Points(HashMap<String, usize>),
    /// The value is a point id of the row's series in the points table: the positions of the
    /// table's `by` columns in the narrow rows, and (series text U+001F id text) → column.
    Table(Vec<usize>, HashMap<String, usize>),
}

/// A compiled pivot of one stream.
#[derive(Debug)]
pub struct Pivot {
    stream: String,
    /// Positions of the `by` columns in the narrow rows.
    by: Vec<usize>,
    name: usize,
    value: usize,
    lookup: Lookup,
    unmatched: Unmatched,
    /// The wide rows: the `by` columns, then one column per wide column.
    output: Arc<Schema>,
    columns: Vec<String>,
}

fn plan_err(stream: &str, message: String) -> Error {
    Error::Plan(format!("stream `{stream}`, pivot: {message}"))
}

impl Pivot {
    /// Compiles the stream's pivot against the narrow source schema, reading the points table
    /// when the plan names one. `None` when the stream has no `pivot`.
    pub async fn load(
        spec: &StreamSpec,
        info: &StreamInfo,
        source: &dyn Source,
        read: &ReadOptions,
    ) -> Result<Option<Pivot>> {
        let Some(p) = &spec.pivot else {
            return Ok(None);
        };
        let stream = spec.name.as_str();
        let schema = &info.schema;
        let find = |name: &str, role: &str| {
            schema.index_of(name).ok_or_else(|| {
                plan_err(
                    stream,
                    format!(
                        "{role} `{name}` is not a column of the source; its columns are: {}",
                        schema.names()
                    ),
                )
            })
        };
        if p.by.is_empty() {
            return Err(plan_err(
                stream,
                "`by` is empty; list the source columns naming one wide row (its series and time)"
                    .into(),
            ));
        }
        let by: Vec<usize> = p.by.iter().map(|b| find(b, "by")).collect::<Result<_>>()?;
        let name = find(&p.name, "name")?;
        let value = find(&p.value, "value")?;
        if by.contains(&name) || by.contains(&value) || name == value {
            return Err(plan_err(
                stream,
                "`name`, `value` and the `by` columns must be different columns".into(),
            ));
        }
        // Partitions keep a series' rows together and cut its time only at whole seconds:
        // a group is whole when it includes both.
        if let Some(s) = &info.series {
            let has = |c: &str| p.by.iter().any(|b| b.eq_ignore_ascii_case(c));
            let missing: Vec<&str> = s
                .columns
                .first()
                .into_iter()
                .chain(std::iter::once(&s.time_column))
                .map(String::as_str)
                .filter(|c| !has(c))
                .collect();
            if !missing.is_empty() {
                return Err(plan_err(
                    stream,
                    format!(
                        "`by` must include {}: the source's partitions are cut by series `{}` and time `{}`, \
                         and a wide row can only be made from rows of one partition",
                        missing.join(" and "),
                        s.columns.first().map(String::as_str).unwrap_or(""),
                        s.time_column
                    ),
                ));
            }
        }
        if !p.point.is_empty() && p.points_table.is_some() {
            return Err(plan_err(
                stream,
                "give the point ids either in `point` or in `points_table`, not both".into(),
            ));
        }
        let mut columns: Vec<String> = p.columns.clone();
        let lookup = if let Some(t) = &p.points_table {
            if t.unit.is_some() {
                return Err(plan_err(
                    stream,
                    "points_table.unit is not used by a pivot (it does not convert units); convert a column in the stream's `columns` instead".into(),
                ));
            }
            let series_at: Vec<usize> =
                t.by.iter()
                    .map(|b| find(b, "points_table.by"))
                    .collect::<Result<_>>()?;
            let mut rows = Vec::new();
            read_points_table(stream, t, source, read, |row| {
                rows.push(row);
                Ok(())
            })
            .await?;
            if columns.is_empty() {
                for r in &rows {
                    if !columns.iter().any(|c| c.eq_ignore_ascii_case(&r.column)) {
                        columns.push(r.column.clone());
                    }
                }
            }
            let mut map = HashMap::new();
            for r in rows {
                let (Some(id), Some(c)) = (
                    &r.id,
                    columns
                        .iter()
                        .position(|c| c.eq_ignore_ascii_case(&r.column)),
                ) else {
                    continue;
                };
                let key = format!("{}\u{1f}{}", r.series.join("\u{1f}"), id.text());
                if let Some(old) = map.insert(key, c).filter(|old| *old != c) {
                    return Err(plan_err(
                        stream,
                        format!(
                            "points table {} gives point {} of series ({}) to two columns, `{}` and `{}`",
                            t.table,
                            id.text(),
                            r.series.join(", "),
                            columns[old],
                            columns[c]
                        ),
                    ));
                }
            }
            Lookup::Table(series_at, map)
        } else if !p.point.is_empty() {
            if columns.is_empty() {
                columns = p.point.keys().cloned().collect();
            }
            let mut map = HashMap::new();
            for (col, id) in &p.point {
                let c = columns
                    .iter()
                    .position(|x| x.eq_ignore_ascii_case(col))
                    .ok_or_else(|| {
                        plan_err(
                            stream,
                            format!("point.{col} names a column that is not in `columns`"),
                        )
                    })?;
                if map.insert(id.to_string(), c).is_some() {
                    return Err(plan_err(stream, format!("point id {id} is given twice")));
                }
            }
            Lookup::Points(map)
        } else {
            Lookup::Names(HashMap::new())
        };
        if columns.is_empty() {
            return Err(plan_err(
                stream,
                "list the wide columns (columns = [\"solar_w\", …]), or give their point ids in `point` or `points_table`".into(),
            ));
        }
        let lookup = match lookup {
            Lookup::Names(_) => Lookup::Names(
                columns
                    .iter()
                    .enumerate()
                    .map(|(i, c)| (c.to_ascii_lowercase(), i))
                    .collect(),
            ),
            other => other,
        };
        let dtype = schema.fields[value].dtype;
        let mut fields: Vec<Field> = by.iter().map(|&i| schema.fields[i].clone()).collect();
        fields.extend(columns.iter().map(|c| Field::new(c.clone(), dtype)));
        for (n, f) in fields.iter().enumerate() {
            if fields[..n]
                .iter()
                .any(|g| g.name.eq_ignore_ascii_case(&f.name))
            {
                return Err(plan_err(
                    stream,
                    format!(
                        "column `{}` is listed twice (in `by` or `columns`, ignoring case)",
                        f.name
                    ),
                ));
            }
        }
        Ok(Some(Pivot {
            stream: stream.to_string(),
            by,
            name,
            value,
            lookup,
            unmatched: p.unmatched,
            output: Arc::new(Schema::new(fields)),
            columns,
        }))
    }

    /// What the source says about the stream, seen through the pivot: the wide schema, the
    /// `by` columns as the key, and the series (its columns among `by`).
    pub fn wide_info(&self, info: &StreamInfo) -> StreamInfo {
        let kept = |c: &String| {
            self.output.fields[..self.by.len()]
                .iter()
                .any(|f| &f.name == c)
        };
        let series = info.series.as_ref().and_then(|s| {
            kept(&s.time_column).then(|| SeriesInfo {
                columns: s.columns.iter().filter(|c| kept(c)).cloned().collect(),
                time_column: s.time_column.clone(),
                ticks_per_second: s.ticks_per_second,
            })
        });
        let mut notes = info.notes.clone();
        notes.push(format!(
            "pivot: rows grouped by {} into {} column(s)",
            self.output.fields[..self.by.len()]
                .iter()
                .map(|f| f.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            self.columns.len()
        ));
        StreamInfo {
            schema: self.output.clone(),
            key_columns: self.output.fields[..self.by.len()]
                .iter()
                .map(|f| f.name.clone())
                .collect(),
            estimated_rows: info
                .estimated_rows
                .map(|n| n / self.columns.len().max(1) as u64),
            notes,
            series,
        }
    }

    /// Empty groups for one partition.
    pub fn groups(&self) -> Groups<'_> {
        Groups {
            pivot: self,
            index: HashMap::new(),
            keys: self.output.fields[..self.by.len()]
                .iter()
                .map(|f| Column::with_capacity(f.dtype, 0))
                .collect(),
            values: Vec::new(),
            cells: Vec::new(),
            scratch: Vec::new(),
        }
    }

    /// The wide column a narrow row's name selects, if any.
    fn column_of(&self, batch: &Batch, row: usize, text: &mut String) -> Option<usize> {
        let v = batch.columns[self.name].get(row);
        if v == ValueRef::Null {
            return None;
        }
        match &self.lookup {
            Lookup::Names(m) => m.get(&value_to_string(v).to_ascii_lowercase()).copied(),
            Lookup::Points(m) => m.get(&value_to_string(v)).copied(),
            Lookup::Table(series, m) => {
                text.clear();
                for &i in series {
                    text.push_str(&value_to_string(batch.columns[i].get(row)));
                    text.push('\u{1f}');
                }
                text.push_str(&value_to_string(v));
                m.get(text.as_str()).copied()
            }
        }
    }
}

/// A cell not yet given a value.
const UNSET: u64 = u64::MAX;

/// The wide rows of one partition, filled batch by batch.
pub struct Groups<'a> {
    pivot: &'a Pivot,
    index: HashMap<Vec<u8>, usize>,
    /// One column per `by` column, a value per group.
    keys: Vec<Column>,
    /// The value columns of the batches added (cells point into them).
    values: Vec<Arc<Column>>,
    /// Per group, per wide column: batch number << 32 | row, or [`UNSET`].
    cells: Vec<u64>,
    scratch: Vec<u8>,
}

impl Groups<'_> {
    /// Number of wide rows so far.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// True before the first wide row.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Adds the rows of a narrow batch. Rows that match no column (with `unmatched =
    /// "reject"`) or repeat a cell are listed in `errors`; returns the number of rows skipped
    /// because they match no column (`unmatched = "skip"`).
    pub fn add(&mut self, batch: &Batch, errors: &mut RowErrors) -> Result<u64> {
        let p = self.pivot;
        let ncols = p.columns.len();
        let b = self.values.len() as u64;
        if b >= u32::MAX as u64 || batch.len() >= u32::MAX as usize {
            return Err(plan_err(
                &p.stream,
                "a partition has too many batches to pivot; lower run.partition_rows".into(),
            ));
        }
        self.values.push(batch.columns[p.value].clone());
        let (name_col, value_col) = (
            &batch.schema.fields[p.name].name,
            &batch.schema.fields[p.value].name,
        );
        let mut text = String::new();
        let mut skipped = 0;
        for row in 0..batch.len() {
            let Some(c) = p.column_of(batch, row, &mut text) else {
                match p.unmatched {
                    Unmatched::Skip => skipped += 1,
                    Unmatched::Reject => errors.reject(
                        row,
                        Some(name_col),
                        format!(
                            "{} names none of the wide columns ({}){}",
                            value_to_string(batch.columns[p.name].get(row)),
                            p.columns.join(", "),
                            match p.lookup {
                                Lookup::Table(..) => " for this series in the points table",
                                _ => "",
                            }
                        ),
                    ),
                }
                continue;
            };
            self.scratch.clear();
            for &k in &p.by {
                encode_key(batch.columns[k].get(row), &mut self.scratch);
            }
            let g = match self.index.get(&self.scratch) {
                Some(g) => *g,
                None => {
                    let g = self.index.len();
                    for (k, &i) in self.keys.iter_mut().zip(&p.by) {
                        k.push_value(batch.columns[i].get(row));
                    }
                    self.cells.extend(std::iter::repeat_n(UNSET, ncols));
                    self.index.insert(self.scratch.clone(), g);
                    g
                }
            };
            let cell = &mut self.cells[g * ncols + c];
            if *cell != UNSET {
                errors.reject(
                    row,
                    Some(value_col),
                    format!(
                        "a second value for column `{}` of the same row ({}); the first one read is kept",
                        p.columns[c],
                        p.by.iter()
                            .map(|&k| value_to_string(batch.columns[k].get(row)))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                );
                continue;
            }
            *cell = (b << 32) | row as u64;
        }
        Ok(skipped)
    }

    /// The wide rows, in the order their groups were first seen, in batches of at most
    /// `batch_rows` rows.
    pub fn finish(self, batch_rows: usize) -> Result<Vec<Batch>> {
        let p = self.pivot;
        let (n, ncols) = (self.index.len(), p.columns.len());
        let step = batch_rows.max(1);
        let mut out = Vec::with_capacity(n.div_ceil(step));
        for start in (0..n).step_by(step) {
            let end = (start + step).min(n);
            let mut cols: Vec<Arc<Column>> = self
                .keys
                .iter()
                .map(|k| {
                    let mut c = Column::with_capacity(k.dtype(), end - start);
                    for g in start..end {
                        c.push_value(k.get(g));
                    }
                    Arc::new(c)
                })
                .collect();
            for c in 0..ncols {
                let dtype: DataType = p.output.fields[p.by.len() + c].dtype;
                let mut col = Column::with_capacity(dtype, end - start);
                for g in start..end {
                    match self.cells[g * ncols + c] {
                        UNSET => col.push_null(),
                        at => col.push_value(
                            self.values[(at >> 32) as usize].get((at & 0xffff_ffff) as usize),
                        ),
                    }
                }
                cols.push(Arc::new(col));
            }
            out.push(Batch::new(p.output.clone(), cols).ok_or_else(|| {
                Error::Internal(format!(
                    "stream `{}`: pivoted columns disagree with their schema",
                    p.stream
                ))
            })?);
        }
        Ok(out)
    }
}
