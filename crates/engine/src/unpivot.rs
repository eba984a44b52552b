//! Wide → narrow reshaping (`[streams.unpivot]`): each source row becomes one row per
//! non-NULL measurement column, with the column's point id, unit and converted value.
//!
//! The narrow rows are what the rest of the pipeline sees as "the source": the mapping is
//! compiled against their schema, rejects list them, and `verify` compares them — so a
//! reshaped stream is run, resumed and verified exactly like any other.
//!
//! # Values and units
//!
//! A value is converted as `value × scale + offset`, with the point's own `scale`/`offset`
//! when given, else its unit's entry in `units`. Integer columns with integer factors stay
//! integers and are computed exactly (an overflow rejects the row). Otherwise the value is a
//! float8 and the result is the float nearest to the exact `value × scale + offset` (one
//! rounding: a fused multiply-add), so `× 1000` of a kWh reading is exactly what
//! PostgreSQL's `value * 1000` gives. NaN and infinities pass through; a finite value whose
//! result overflows to infinity rejects the row.

use std::collections::HashMap;
use std::sync::Arc;

use tsmigrate_core::convert::{value_to_string, RowErrors};
use tsmigrate_core::{
    Batch, Column, DataType, Error, Field, ReadOptions, Result, Schema, SeriesInfo, Source,
    StreamInfo, StreamSpec, Unmatched, UnpivotSpec, ValueRef,
};

use crate::points_table::{read_points_table, PointId};

/// One measurement's point: id, unit after conversion, and the conversion.
#[derive(Clone, Debug, PartialEq)]
struct Point {
    id: Option<PointId>,
    unit: Option<String>,
    scale: f64,
    offset: f64,
}

/// Points of a points table: series (its `by` values as text, joined by U+001F) → measurement
/// column (lower-case) → point.
type PointsBySeries = HashMap<String, HashMap<String, Point>>;

/// A compiled unpivot of one stream.
#[derive(Debug)]
pub struct Unpivot {
    stream: String,
    /// Positions (in the wide schema) of the kept columns.
    keep: Vec<usize>,
    /// Positions, names and lower-case names (the lookup key) of the measurement columns.
    measurements: Vec<(usize, String, String)>,
    /// Positions of the points table's `by` columns in the wide schema.
    by: Vec<usize>,
    /// Points from the plan, per measurement column (lower-case).
    plan_points: HashMap<String, Point>,
    /// Points from the points table: series text → column lower-case → point.
    table_points: Option<PointsBySeries>,
    unmatched: Unmatched,
    value_type: DataType,
    point_type: Option<DataType>,
    has_unit: bool,
    output: Arc<Schema>,
}

fn plan_err(stream: &str, message: String) -> Error {
    Error::Plan(format!("stream `{stream}`, unpivot: {message}"))
}

impl Unpivot {
    /// Compiles the stream's unpivot against the wide schema, reading the points table from
    /// the source when the plan names one. `None` when the stream has no `unpivot`.
    pub async fn load(
        spec: &StreamSpec,
        info: &StreamInfo,
        source: &dyn Source,
        read: &ReadOptions,
    ) -> Result<Option<Unpivot>> {
        let Some(u) = &spec.unpivot else {
            return Ok(None);
        };
        let stream = spec.name.as_str();
        let schema = &info.schema;
        let find = |name: &str| {
            schema.index_of(name).ok_or_else(|| {
                plan_err(
                    stream,
                    format!(
                        "`{name}` is not a column of the source; its columns are: {}",
                        schema.names()
                    ),
                )
            })
        };
        if u.measurements.is_empty() && u.keep.is_empty() {
            return Err(plan_err(
                stream,
                "list the columns to turn into rows (measurements = […]) or the ones to keep (keep = […])".into(),
            ));
        }
        // The source's reserved column of unreadable rows is neither measured nor kept: those
        // rows are rejected before the unpivot.
        let reserved = |i: &usize| schema.fields[*i].name == tsmigrate_core::batch::SOURCE_ERROR;
        let measured: Vec<usize> = if u.measurements.is_empty() {
            let kept: Vec<usize> = u.keep.iter().map(|k| find(k)).collect::<Result<_>>()?;
            (0..schema.fields.len())
                .filter(|i| !kept.contains(i) && !reserved(i))
                .collect()
        } else {
            u.measurements
                .iter()
                .map(|m| find(m))
                .collect::<Result<_>>()?
        };
        let keep: Vec<usize> = if u.keep.is_empty() {
            (0..schema.fields.len())
                .filter(|i| !measured.contains(i) && !reserved(i))
                .collect()
        } else {
            u.keep.iter().map(|k| find(k)).collect::<Result<_>>()?
        };
        if let Some(i) = keep.iter().find(|i| measured.contains(i)) {
            return Err(plan_err(
                stream,
                format!("`{}` is both kept and measured", schema.fields[*i].name),
            ));
        }
        let mut any_float = false;
        for &i in &measured {
            let f = &schema.fields[i];
            if f.dtype.is_float() || f.dtype == DataType::Numeric {
                any_float = true;
            } else if !f.dtype.is_integer() && f.dtype != DataType::Bool {
                return Err(plan_err(
                    stream,
                    format!("measurement column `{}` is {}; only numbers can be unpivoted into one value column", f.name, f.dtype),
                ));
            }
        }
        for name in u.point.keys() {
            if !measured
                .iter()
                .any(|&i| schema.fields[i].name.eq_ignore_ascii_case(name))
            {
                return Err(plan_err(
                    stream,
                    format!("[streams.unpivot.point.{name}] names a column that is not measured"),
                ));
            }
        }
        let mut plan_points = HashMap::new();
        for (name, p) in &u.point {
            let base = unit_point(u, p.unit.as_deref());
            let point = Point {
                id: p.id.map(PointId::Int),
                unit: p.to.clone().or(base.unit),
                scale: p.scale.unwrap_or(base.scale),
                offset: p.offset.unwrap_or(base.offset),
            };
            plan_points.insert(name.to_ascii_lowercase(), point);
        }
        let factors = plan_points.values().map(|p| (p.scale, p.offset)).chain(
            u.units
                .values()
                .map(|s| (s.scale.unwrap_or(1.0), s.offset.unwrap_or(0.0))),
        );
        for (scale, offset) in factors.clone() {
            if !scale.is_finite() || !offset.is_finite() {
                return Err(plan_err(
                    stream,
                    "scale and offset must be finite numbers".into(),
                ));
            }
            if scale.fract() != 0.0
                || offset.fract() != 0.0
                || scale.abs() > 9.0e15
                || offset.abs() > 9.0e15
            {
                any_float = true;
            }
        }
        let (by, table_points, point_type) = match &u.points_table {
            None => (
                Vec::new(),
                None,
                plan_points
                    .values()
                    .any(|p| p.id.is_some())
                    .then_some(DataType::Int64),
            ),
            Some(t) => {
                let by: Vec<usize> = t.by.iter().map(|b| find(b)).collect::<Result<_>>()?;
                let (map, dtype) = read_points(u, spec, source, read).await?;
                (by, Some(map), Some(dtype))
            }
        };
        let has_unit = u.points_table.as_ref().is_some_and(|t| t.unit.is_some())
            || u.point.values().any(|p| p.unit.is_some() || p.to.is_some());
        let value_type = if any_float {
            DataType::Float64
        } else {
            DataType::Int64
        };
        let mut fields: Vec<Field> = keep.iter().map(|&i| schema.fields[i].clone()).collect();
        fields.push(Field::new("measurement", DataType::Text));
        if let Some(t) = point_type {
            fields.push(Field::new("point", t));
        }
        if has_unit {
            fields.push(Field::new("unit", DataType::Text));
        }
        fields.push(Field::new("value", value_type));
        for (n, f) in fields.iter().enumerate() {
            if fields[..n]
                .iter()
                .any(|g| g.name.eq_ignore_ascii_case(&f.name))
            {
                return Err(plan_err(
                    stream,
                    format!("the kept column `{}` clashes with a column unpivot adds (measurement, point, unit, value); leave it out of keep", f.name),
                ));
            }
        }
        Ok(Some(Unpivot {
            stream: stream.to_string(),
            keep,
            measurements: measured
                .iter()
                .map(|&i| {
                    let name = schema.fields[i].name.clone();
                    (i, name.to_ascii_lowercase(), name)
                })
                .collect(),
            by,
            plan_points,
            table_points,
            unmatched: u.unmatched,
            value_type,
            point_type,
            has_unit,
            output: Arc::new(Schema::new(fields)),
        }))
    }

    /// What the source says about the stream, seen through the unpivot: the narrow schema,
    /// the kept key columns plus `measurement`, and the series (plus `measurement`).
    pub fn narrow_info(&self, info: &StreamInfo) -> StreamInfo {
        let kept = |c: &String| self.output.fields.iter().any(|f| &f.name == c);
        let mut key_columns: Vec<String> = info
            .key_columns
            .iter()
            .filter(|c| kept(c))
            .cloned()
            .collect();
        key_columns.push("measurement".into());
        let series = info.series.as_ref().and_then(|s| {
            kept(&s.time_column).then(|| {
                let mut columns: Vec<String> =
                    s.columns.iter().filter(|c| kept(c)).cloned().collect();
                columns.push("measurement".into());
                SeriesInfo {
                    columns,
                    time_column: s.time_column.clone(),
                    ticks_per_second: s.ticks_per_second,
                }
            })
        });
        let mut notes = info.notes.clone();
        notes.push(format!(
            "unpivot: {} measurement column(s) become rows",
            self.measurements.len()
        ));
        StreamInfo {
            schema: self.output.clone(),
            key_columns,
            estimated_rows: info
                .estimated_rows
                .map(|n| n.saturating_mul(self.measurements.len() as u64)),
            notes,
            series,
        }
    }

    /// Turns a batch of wide rows into narrow rows. Rows that cannot be converted, or whose
    /// column has no point (with `unmatched = "reject"`), are in the result and listed in
    /// `errors`; returns the batch and the count of values skipped (`unmatched = "skip"`).
    pub fn apply(&self, batch: &Batch, errors: &mut RowErrors) -> Result<(Batch, u64)> {
        let n = batch.len();
        let cap = n * self.measurements.len();
        let mut keep_cols: Vec<Column> = self
            .keep
            .iter()
            .map(|&i| Column::with_capacity(batch.schema.fields[i].dtype, cap))
            .collect();
        let mut measurement = Column::with_capacity(DataType::Text, cap);
        let mut point = self.point_type.map(|t| Column::with_capacity(t, cap));
        let mut unit = self
            .has_unit
            .then(|| Column::with_capacity(DataType::Text, cap));
        let mut value = Column::with_capacity(self.value_type, cap);
        let mut skipped = 0u64;
        let mut series = String::new();
        let mut out_row = 0usize;
        for row in 0..n {
            // The row's points: its series' in the points table, or the plan's.
            let points = match &self.table_points {
                Some(map) => {
                    series.clear();
                    for (j, &b) in self.by.iter().enumerate() {
                        if j > 0 {
                            series.push('\u{1f}');
                        }
                        series.push_str(&value_to_string(batch.columns[b].get(row)));
                    }
                    map.get(&series)
                }
                None => Some(&self.plan_points),
            };
            for (pos, lower, name) in &self.measurements {
                let v = batch.columns[*pos].get(row);
                if v == ValueRef::Null {
                    continue;
                }
                let found = points.and_then(|p| p.get(lower));
                if found.is_none()
                    && self.table_points.is_some()
                    && self.unmatched == Unmatched::Skip
                {
                    skipped += 1;
                    continue;
                }
                for (c, &i) in keep_cols.iter_mut().zip(&self.keep) {
                    c.push_value(batch.columns[i].get(row));
                }
                measurement.push_str(name);
                let default = Point {
                    id: None,
                    unit: None,
                    scale: 1.0,
                    offset: 0.0,
                };
                let p = found.unwrap_or(&default);
                if let Some(c) = point.as_mut() {
                    match &p.id {
                        Some(PointId::Int(i)) => c.push_i64(*i),
                        Some(PointId::Text(s)) => c.push_str(s),
                        None => c.push_null(),
                    }
                }
                if let Some(c) = unit.as_mut() {
                    match &p.unit {
                        Some(u) => c.push_str(u),
                        None => c.push_null(),
                    }
                }
                if found.is_none() && self.table_points.is_some() {
                    errors.reject(
                        out_row,
                        Some("point"),
                        format!(
                            "column `{name}` has no point for this series in the points table (set unmatched = \"skip\" to leave such values out)"
                        ),
                    );
                }
                match convert(v, p, self.value_type) {
                    Ok(Some(x)) => push_number(&mut value, x),
                    Ok(None) => value.push_null(),
                    Err(reason) => {
                        // The rejected row shows the value as read, not the failed result.
                        match (v, self.value_type) {
                            (ValueRef::Float(x), DataType::Float64) => value.push_f64(x),
                            (ValueRef::Int(x), DataType::Int64) => value.push_i64(x),
                            _ => value.push_null(),
                        }
                        errors.reject(out_row, Some("value"), format!("column `{name}`: {reason}"));
                    }
                }
                out_row += 1;
            }
        }
        let mut columns: Vec<Arc<Column>> = keep_cols.into_iter().map(Arc::new).collect();
        columns.push(Arc::new(measurement));
        columns.extend(point.map(Arc::new));
        columns.extend(unit.map(Arc::new));
        columns.push(Arc::new(value));
        let out = Batch::new(self.output.clone(), columns).ok_or_else(|| {
            Error::Internal(format!(
                "stream `{}`: unpivoted columns disagree with their schema",
                self.stream
            ))
        })?;
        Ok((out, skipped))
    }
}

/// The base conversion of a unit from `units` (identity when the unit has none).
fn unit_point(u: &UnpivotSpec, unit: Option<&str>) -> Point {
    let spec = unit.and_then(|n| u.units.get(n));
    Point {
        id: None,
        unit: spec
            .and_then(|s| s.to.clone())
            .or_else(|| unit.map(str::to_string)),
        scale: spec.and_then(|s| s.scale).unwrap_or(1.0),
        offset: spec.and_then(|s| s.offset).unwrap_or(0.0),
    }
}

enum Number {
    Int(i64),
    Float(f64),
}

fn push_number(c: &mut Column, x: Number) {
    match x {
        Number::Int(i) => c.push_i64(i),
        Number::Float(f) => c.push_f64(f),
    }
}

/// `v × scale + offset` in the value column's type (see the module docs).
fn convert(
    v: ValueRef<'_>,
    p: &Point,
    to: DataType,
) -> std::result::Result<Option<Number>, String> {
    let identity = p.scale == 1.0 && p.offset == 0.0;
    if to == DataType::Int64 {
        let i = match v {
            ValueRef::Int(i) => i,
            ValueRef::Bool(b) => i64::from(b),
            ValueRef::Null => return Ok(None),
            other => return Err(format!("{} is not an integer", value_to_string(other))),
        };
        if identity {
            return Ok(Some(Number::Int(i)));
        }
        return i
            .checked_mul(p.scale as i64)
            .and_then(|x| x.checked_add(p.offset as i64))
            .map(|x| Some(Number::Int(x)))
            .ok_or_else(|| format!("{i} × {} + {} overflows int8", p.scale, p.offset));
    }
    let f = match v {
        ValueRef::Float(f) => f,
        ValueRef::Int(i) => {
            let f = i as f64;
            if f as i128 != i as i128 {
                return Err(format!(
                    "integer {i} cannot be held exactly by a float8 value"
                ));
            }
            f
        }
        ValueRef::Bool(b) => f64::from(u8::from(b)),
        ValueRef::Str(s) => s
            .trim()
            .parse::<f64>()
            .map_err(|_| format!("numeric {s} is not a number"))?,
        ValueRef::Null => return Ok(None),
        other => return Err(format!("{} is not a number", value_to_string(other))),
    };
    if identity {
        return Ok(Some(Number::Float(f)));
    }
    let x = if p.offset == 0.0 {
        f * p.scale
    } else {
        f.mul_add(p.scale, p.offset)
    };
    if x.is_infinite() && f.is_finite() {
        return Err(format!("{f} × {} + {} overflows float8", p.scale, p.offset));
    }
    Ok(Some(Number::Float(x)))
}

/// Reads the points table through the source: (series text, column lower-case) → point,
/// and the point id's type.
async fn read_points(
    u: &UnpivotSpec,
    spec: &StreamSpec,
    source: &dyn Source,
    read: &ReadOptions,
) -> Result<(PointsBySeries, DataType)> {
    let Some(t) = &u.points_table else {
        return Ok((HashMap::new(), DataType::Int64));
    };
    let stream = spec.name.as_str();
    let mut map: PointsBySeries = HashMap::new();
    let id_type = read_points_table(stream, t, source, read, |row| {
        let base = unit_point(u, row.unit.as_deref());
        let point = Point { id: row.id, ..base };
        let column = row.column.to_ascii_lowercase();
        let of_series = map.entry(row.series.join("\u{1f}")).or_default();
        match of_series.get(&column) {
            Some(old) if *old != point => Err(plan_err(
                stream,
                format!(
                    "points table {} names two points for column `{column}` of series ({}); each column of a series must have one point",
                    t.table,
                    row.series.join(", ")
                ),
            )),
            Some(_) => Ok(()),
            None => {
                of_series.insert(column, point);
                Ok(())
            }
        }
    })
    .await?;
    Ok((map, id_type))
}
