//! Bucketed aggregates computed during a migration (`[streams.aggregate]`).
//!
//! An aggregate stream reads and maps exactly as the stream it aggregates; [`Aggregate`] then
//! groups the mapped rows of one partition by the `by` columns and by `every`-wide buckets of
//! the time column, and [`Buckets::finish`] turns the groups into rows: the `by` values, the
//! bucket's start (in the time column's own type and unit), then one column per function.
//! Partitions are cut at multiples of the bucket width ([`tsmigrate_core::ReadOptions::align_seconds`]),
//! so a bucket is always computed from all of its rows, in one partition, in one transaction.
//!
//! Semantics, chosen to match SQL and to be exact:
//! - NULL values are ignored by every function; `count` counts non-NULL values. A group whose
//!   values are all NULL still gives a row (count 0, the others NULL).
//! - `min`/`max` order NaN above every number, as PostgreSQL does: `max` is NaN when any
//!   value is, `min` only when all are.
//! - `sum` of floats is the exact sum of the values, rounded once to a double (Shewchuk's
//!   algorithm, as Python's `math.fsum`); `avg` is that sum divided by `count` (one more
//!   rounding). Any NaN, or +∞ with −∞, gives NaN; ±∞ gives ±∞; a running sum that leaves the
//!   double range gives ±∞. `sum` of integers is exact (an error when it leaves i64), `avg` of
//!   integers is the exact sum rounded to a double, divided by `count`.
//! - `first`/`last` are the values at the earliest/latest time of the bucket; of rows with
//!   the same time, the first/last read wins.
//! - A row whose time is NULL, or whose bucket start cannot be represented, is rejected.

use std::collections::HashMap;
use std::sync::Arc;

use tsmigrate_core::mapping::Mapping;
use tsmigrate_core::{
    Batch, Column, DataType, Error, Field, Result, RowErrors, Schema, StreamInfo, StreamSpec,
    ValueRef,
};

use crate::keys::infer_key;

/// One function of an aggregate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Func {
    Min,
    Max,
    Avg,
    Sum,
    First,
    Last,
    Count,
}

impl Func {
    fn parse(name: &str) -> Option<Func> {
        Some(match name {
            "min" => Func::Min,
            "max" => Func::Max,
            "avg" => Func::Avg,
            "sum" => Func::Sum,
            "first" => Func::First,
            "last" => Func::Last,
            "count" => Func::Count,
            _ => return None,
        })
    }
}

/// A compiled `[streams.aggregate]`: which mapped columns group, time and value the rows.
#[derive(Clone, Debug)]
pub struct Aggregate {
    by: Vec<usize>,
    time: usize,
    value: usize,
    float: bool,
    /// Bucket width in ticks of the time column.
    width: i64,
    funcs: Vec<Func>,
    output: Arc<Schema>,
    stream: String,
}

impl Aggregate {
    /// Compiles the stream's aggregate against the schema its mapping produces; `None` for a
    /// stream without one.
    pub fn compile(spec: &StreamSpec, mapped: &Schema) -> Result<Option<Aggregate>> {
        let Some(a) = &spec.aggregate else {
            return Ok(None);
        };
        let stream = spec.name.clone();
        let col = |name: &str, role: &str| {
            mapped.index_of(name).ok_or_else(|| {
                Error::Plan(format!(
                    "stream `{stream}`: aggregate.{role} names `{name}`, which the mapping of stream `{}` does not produce; its columns are: {}",
                    a.of,
                    mapped.names()
                ))
            })
        };
        let time = col(&a.time, "time")?;
        let value = col(&a.value, "value")?;
        let by =
            a.by.iter()
                .map(|b| col(b, "by"))
                .collect::<Result<Vec<_>>>()?;
        let tdt = mapped.fields[time].dtype;
        let per_second = match tdt {
            DataType::Timestamp(u) => u.per_second(),
            DataType::Int16 | DataType::Int32 | DataType::Int64 => {
                a.integer_time_unit()?.per_second()
            }
            other => {
                return Err(Error::Plan(format!(
                    "stream `{stream}`: aggregate.time `{}` is {other}; it must be a timestamp or an integer epoch count",
                    a.time
                )))
            }
        };
        let every = a.every_duration()?;
        let width = every.as_nanos() * per_second as u128;
        if !width.is_multiple_of(1_000_000_000) || width == 0 {
            return Err(Error::Plan(format!(
                "stream `{stream}`: aggregate.every = {:?} is not a whole number of the time column's ticks (1/{per_second} s)",
                a.every
            )));
        }
        let width = i64::try_from(width / 1_000_000_000).map_err(|_| {
            Error::Plan(format!(
                "stream `{stream}`: aggregate.every = {:?} is too long",
                a.every
            ))
        })?;
        let vdt = mapped.fields[value].dtype;
        let float = match vdt {
            DataType::Float32 | DataType::Float64 => true,
            DataType::Int16 | DataType::Int32 | DataType::Int64 => false,
            other => {
                return Err(Error::Plan(format!(
                    "stream `{stream}`: aggregate.value `{}` is {other}; it must be a number column (integer or float); cast it in the mapping",
                    a.value
                )))
            }
        };
        let funcs: Vec<Func> = a.functions.iter().filter_map(|f| Func::parse(f)).collect();
        let mut fields: Vec<Field> = by.iter().map(|i| mapped.fields[*i].clone()).collect();
        fields.push(mapped.fields[time].clone());
        for (f, name) in funcs.iter().zip(&a.functions) {
            let dtype = match f {
                Func::Min | Func::Max | Func::First | Func::Last => vdt,
                Func::Avg => DataType::Float64,
                Func::Sum if float => DataType::Float64,
                Func::Sum | Func::Count => DataType::Int64,
            };
            if fields.iter().any(|x| x.name == *name) {
                return Err(Error::Plan(format!(
                    "stream `{stream}`: the aggregate's column `{name}` has the name of a `by` or time column; rename that column in the mapping"
                )));
            }
            fields.push(Field::new(name.clone(), dtype));
        }
        Ok(Some(Aggregate {
            by,
            time,
            value,
            float,
            width,
            funcs,
            output: Arc::new(Schema::new(fields)),
            stream,
        }))
    }

    /// Checks that the source's partitions keep every group whole: they hold a series'
    /// rows together (cutting its time only at bucket boundaries), so `by` must include the
    /// source's first series column, as the mapping copies it.
    pub fn check_partitioning(&self, info: &StreamInfo, mapping: &Mapping) -> Result<()> {
        let Some(series) = info.series.as_ref().and_then(|s| s.columns.first()) else {
            return Ok(());
        };
        let copied = infer_key(std::slice::from_ref(series), mapping)
            .and_then(|k| k.into_iter().next())
            .filter(|c| {
                self.output.fields[..self.by.len()]
                    .iter()
                    .any(|f| &f.name == c)
            });
        match copied {
            Some(_) => Ok(()),
            None => Err(Error::Plan(format!(
                "stream `{}`: aggregate.by must include the target column copying the source's series column `{series}`: \
                 the source's partitions are cut by series, and a bucket can only be computed from the rows of one partition",
                self.stream
            ))),
        }
    }

    /// Columns of the aggregate rows: `by`, the bucket start, then one per function.
    pub fn output_schema(&self) -> &Arc<Schema> {
        &self.output
    }

    /// The default key of the aggregate rows: the `by` columns and the bucket.
    pub fn key(&self) -> Vec<String> {
        self.output.fields[..=self.by.len()]
            .iter()
            .map(|f| f.name.clone())
            .collect()
    }

    /// Empty groups for one partition.
    pub fn buckets(&self) -> Buckets {
        Buckets {
            agg: self.clone(),
            index: HashMap::new(),
            keys: self
                .output
                .fields
                .iter()
                .take(self.by.len() + 1)
                .map(|f| Column::with_capacity(f.dtype, 0))
                .collect(),
            accs: Vec::new(),
            scratch: Vec::new(),
        }
    }
}

/// The groups of one partition, filled batch by batch.
pub struct Buckets {
    agg: Aggregate,
    index: HashMap<Vec<u8>, usize>,
    /// One column per `by` column and the bucket, a value per group.
    keys: Vec<Column>,
    accs: Vec<Acc>,
    scratch: Vec<u8>,
}

impl Buckets {
    /// Number of groups so far.
    pub fn len(&self) -> usize {
        self.accs.len()
    }

    /// True before the first group.
    pub fn is_empty(&self) -> bool {
        self.accs.is_empty()
    }

    /// Adds the rows of a mapped batch that `errors` does not reject; rows that cannot be
    /// bucketed are added to `errors`.
    pub fn add(&mut self, batch: &Batch, errors: &mut RowErrors) {
        let a = &self.agg;
        let (tcol, vcol) = (&batch.columns[a.time], &batch.columns[a.value]);
        let tname = &batch.schema.fields[a.time].name;
        let tunit = match tcol.dtype() {
            DataType::Timestamp(u) => Some(u),
            _ => None,
        };
        for row in 0..batch.len() {
            if errors.is_rejected(row) {
                continue;
            }
            let t = match tcol.get(row) {
                ValueRef::Int(t) | ValueRef::Timestamp(t, _) => t,
                _ => {
                    errors.reject(
                        row,
                        Some(tname),
                        "the time is NULL, so the row has no bucket".into(),
                    );
                    continue;
                }
            };
            let Some(bucket) = t.div_euclid(a.width).checked_mul(a.width) else {
                errors.reject(
                    row,
                    Some(tname),
                    format!("the time {t} has no bucket start within the column's range"),
                );
                continue;
            };
            self.scratch.clear();
            for &c in &a.by {
                encode_key(batch.columns[c].get(row), &mut self.scratch);
            }
            self.scratch.extend_from_slice(&bucket.to_le_bytes());
            let g = match self.index.get(&self.scratch) {
                Some(g) => *g,
                None => {
                    let g = self.accs.len();
                    for (k, &c) in self.keys.iter_mut().zip(&a.by) {
                        k.push_value(batch.columns[c].get(row));
                    }
                    if let Some(k) = self.keys.last_mut() {
                        match tunit {
                            Some(u) => k.push_value(ValueRef::Timestamp(bucket, u)),
                            None => k.push_i64(bucket),
                        }
                    }
                    self.accs.push(Acc::default());
                    self.index.insert(self.scratch.clone(), g);
                    g
                }
            };
            let v = match vcol.get(row) {
                ValueRef::Float(x) => Some(Num::F(x)),
                ValueRef::Int(x) => Some(Num::I(x)),
                _ => None,
            };
            if let (Some(acc), Some(v)) = (self.accs.get_mut(g), v) {
                acc.add(t, v);
            }
        }
    }

    /// The aggregate rows, one per group, in the order the groups were first seen.
    pub fn finish(self) -> Result<Batch> {
        let a = self.agg;
        let n = self.accs.len();
        let mut cols: Vec<Arc<Column>> = self.keys.into_iter().map(Arc::new).collect();
        for (i, f) in a.funcs.iter().enumerate() {
            let dtype = a.output.fields[a.by.len() + 1 + i].dtype;
            let mut c = Column::with_capacity(dtype, n);
            for (g, acc) in self.accs.iter().enumerate() {
                let v = acc.result(*f, a.float).map_err(|m| {
                    Error::Plan(format!(
                        "stream `{}`: aggregate group {} of the partition: {m}",
                        a.stream,
                        g + 1
                    ))
                })?;
                match v {
                    None => c.push_null(),
                    Some(Num::F(x)) => c.push_f64(x),
                    Some(Num::I(x)) => c.push_i64(x),
                }
            }
            cols.push(Arc::new(c));
        }
        Batch::new(a.output.clone(), cols).ok_or_else(|| {
            Error::Internal(format!(
                "stream `{}`: aggregate columns do not match their schema",
                a.stream
            ))
        })
    }
}

/// Appends an unambiguous encoding of `v` to `out` (group keys of aggregates and pivots).
pub(crate) fn encode_key(v: ValueRef<'_>, out: &mut Vec<u8>) {
    match v {
        ValueRef::Null => out.push(0),
        ValueRef::Bool(b) => out.extend_from_slice(&[1, b as u8]),
        ValueRef::Int(x) | ValueRef::Timestamp(x, _) => {
            out.push(2);
            out.extend_from_slice(&x.to_le_bytes());
        }
        ValueRef::Float(x) => {
            out.push(3);
            // -0.0 and 0.0 group together, as in SQL; every NaN is one group.
            let x = if x == 0.0 { 0.0 } else { x };
            let bits = if x.is_nan() {
                f64::NAN.to_bits()
            } else {
                x.to_bits()
            };
            out.extend_from_slice(&bits.to_le_bytes());
        }
        ValueRef::Str(s) => {
            out.push(4);
            out.extend_from_slice(&(s.len() as u64).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
        }
        ValueRef::Bytes(b) => {
            out.push(5);
            out.extend_from_slice(&(b.len() as u64).to_le_bytes());
            out.extend_from_slice(b);
        }
        ValueRef::Uuid(u) => {
            out.push(6);
            out.extend_from_slice(u);
        }
    }
}

/// A value of the aggregated column.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Num {
    F(f64),
    I(i64),
}

impl Num {
    /// `self > other` with NaN above every number (PostgreSQL's order).
    fn above(self, other: Num) -> bool {
        match (self, other) {
            (Num::I(a), Num::I(b)) => a > b,
            (Num::F(a), Num::F(b)) => match (a.is_nan(), b.is_nan()) {
                (true, false) => true,
                (_, true) => false,
                _ => a > b,
            },
            // One column has one type; mixed values do not occur.
            _ => false,
        }
    }
}

/// The running state of one group.
#[derive(Default)]
struct Acc {
    count: i64,
    min: Option<Num>,
    max: Option<Num>,
    first: Option<(i64, Num)>,
    last: Option<(i64, Num)>,
    fsum: ExactSum,
    isum: i128,
}

impl Acc {
    fn add(&mut self, t: i64, v: Num) {
        self.count += 1;
        if self.min.is_none_or(|m| m.above(v)) {
            self.min = Some(v);
        }
        if self.max.is_none_or(|m| v.above(m)) {
            self.max = Some(v);
        }
        if self.first.is_none_or(|(ft, _)| t < ft) {
            self.first = Some((t, v));
        }
        if self.last.is_none_or(|(lt, _)| t >= lt) {
            self.last = Some((t, v));
        }
        match v {
            Num::F(x) => self.fsum.add(x),
            Num::I(x) => self.isum += x as i128,
        }
    }

    fn result(&self, f: Func, float: bool) -> std::result::Result<Option<Num>, String> {
        if f == Func::Count {
            return Ok(Some(Num::I(self.count)));
        }
        if self.count == 0 {
            return Ok(None);
        }
        Ok(Some(match f {
            Func::Min => self.min.unwrap_or(Num::I(0)),
            Func::Max => self.max.unwrap_or(Num::I(0)),
            Func::First => self.first.map(|x| x.1).unwrap_or(Num::I(0)),
            Func::Last => self.last.map(|x| x.1).unwrap_or(Num::I(0)),
            Func::Sum if float => Num::F(self.fsum.value()),
            Func::Sum => Num::I(i64::try_from(self.isum).map_err(|_| {
                format!(
                    "the sum {} does not fit in a bigint; aggregate a float column instead",
                    self.isum
                )
            })?),
            Func::Avg if float => Num::F(self.fsum.value() / self.count as f64),
            Func::Avg => Num::F(self.isum as f64 / self.count as f64),
            Func::Count => Num::I(self.count),
        }))
    }
}

/// The exact sum of doubles, rounded once at the end (Shewchuk's algorithm, as CPython's
/// `math.fsum`): the running sum is kept as non-overlapping partials.
#[derive(Default)]
pub struct ExactSum {
    partials: Vec<f64>,
    /// Sum of the non-finite inputs and overflows (NaN, ±∞), which decide the result.
    special: f64,
}

impl ExactSum {
    /// Adds one value.
    pub fn add(&mut self, x: f64) {
        if !x.is_finite() {
            self.special += x;
            return;
        }
        let mut x = x;
        let mut i = 0;
        for j in 0..self.partials.len() {
            let mut y = self.partials[j];
            if x.abs() < y.abs() {
                std::mem::swap(&mut x, &mut y);
            }
            let hi = x + y;
            let lo = y - (hi - x);
            if lo != 0.0 {
                self.partials[i] = lo;
                i += 1;
            }
            x = hi;
        }
        self.partials.truncate(i);
        if x.is_finite() {
            self.partials.push(x);
        } else {
            // The running sum left the double range: it counts as that infinity.
            self.special += x;
        }
    }

    /// The sum, correctly rounded (round half to even).
    pub fn value(&self) -> f64 {
        if self.special != 0.0 || self.special.is_nan() {
            return self.special;
        }
        let p = &self.partials;
        let mut n = p.len();
        if n == 0 {
            return 0.0;
        }
        n -= 1;
        let mut hi = p[n];
        let mut lo = 0.0;
        while n > 0 {
            let x = hi;
            n -= 1;
            let y = p[n];
            hi = x + y;
            let yr = hi - x;
            lo = y - yr;
            if lo != 0.0 {
                break;
            }
        }
        // Round half to even across the rest of the partials.
        if n > 0 && ((lo < 0.0 && p[n - 1] < 0.0) || (lo > 0.0 && p[n - 1] > 0.0)) {
            let y = lo * 2.0;
            let x = hi + y;
            let yr = x - hi;
            if y == yr {
                hi = x;
            }
        }
        hi
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tsmigrate_core::Plan;

    fn sum(xs: &[f64]) -> f64 {
        let mut s = ExactSum::default();
        for x in xs {
            s.add(*x);
        }
        s.value()
    }

    #[test]
    fn sums_are_exact_and_rounded_once() {
        assert_eq!(sum(&[0.1; 10]), 1.0);
        assert_eq!(sum(&[1e100, 1.0, -1e100]), 1.0);
        assert_eq!(sum(&[1.0, 1e-16, 1e-16]), 1.0000000000000002);
        assert_eq!(sum(&[]), 0.0);
        assert!(sum(&[f64::INFINITY, f64::NEG_INFINITY]).is_nan());
        assert!(sum(&[1.0, f64::NAN]).is_nan());
        assert_eq!(sum(&[f64::INFINITY, 1.0]), f64::INFINITY);
        assert_eq!(sum(&[f64::MAX, f64::MAX]), f64::INFINITY);
        assert_eq!(sum(&[5e-324, 5e-324]), 1e-323);
        // Naive summation gives 0.9999999999999999 here.
        let naive: f64 = [0.1; 10].iter().sum();
        assert_ne!(naive, 1.0);
    }

    fn plan(functions: &str) -> StreamSpec {
        let text = format!(
            r#"
[source]
kind = "sqlite"
path = "a.db"
[target]
kind = "sqlite"
path = "b.db"
[[streams]]
name = "points"
columns = [{{ name = "s", type = "bigint" }}, {{ name = "t", type = "bigint" }}, {{ name = "v", type = "double precision" }}]
[[streams]]
name = "points_5m"
aggregate = {{ of = "points", every = "5m", time = "t", time_unit = "ms", by = ["s"], value = "v", functions = {functions} }}
"#
        );
        let p = Plan::parse(&text).expect("plan parses");
        p.stream("points_5m").expect("stream").clone()
    }

    fn batch(rows: &[(Option<i64>, Option<i64>, Option<f64>)]) -> Batch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("s", DataType::Int64),
            Field::new("t", DataType::Int64),
            Field::new("v", DataType::Float64),
        ]));
        let mut cols = vec![
            Column::with_capacity(DataType::Int64, rows.len()),
            Column::with_capacity(DataType::Int64, rows.len()),
            Column::with_capacity(DataType::Float64, rows.len()),
        ];
        for (s, t, v) in rows {
            match s {
                Some(s) => cols[0].push_i64(*s),
                None => cols[0].push_null(),
            }
            match t {
                Some(t) => cols[1].push_i64(*t),
                None => cols[1].push_null(),
            }
            match v {
                Some(v) => cols[2].push_f64(*v),
                None => cols[2].push_null(),
            }
        }
        Batch::new(schema, cols.into_iter().map(Arc::new).collect()).expect("batch")
    }

    #[test]
    fn groups_by_series_and_bucket() {
        let spec = plan(r#"["min", "max", "avg", "sum", "first", "last", "count"]"#);
        let mapped = batch(&[]).schema.clone();
        let agg = Aggregate::compile(&spec, &mapped).unwrap().unwrap();
        assert_eq!(agg.key(), vec!["s".to_string(), "t".to_string()]);
        let mut b = agg.buckets();
        let mut errors = RowErrors::new();
        let m = 300_000;
        b.add(
            &batch(&[
                (Some(1), Some(m + 5), Some(2.0)),
                (Some(1), Some(m), Some(1.0)),
                (Some(1), Some(2 * m - 1), Some(f64::NAN)),
                (Some(1), Some(2 * m), Some(7.0)),
                (None, Some(-1), Some(3.0)),
                (Some(2), None, Some(1.0)),
                (Some(2), Some(10), None),
            ]),
            &mut errors,
        );
        assert_eq!(errors.len(), 1, "the NULL time is rejected");
        assert!(errors.is_rejected(5));
        let out = b.finish().unwrap();
        let rows: Vec<Vec<String>> = (0..out.len())
            .map(|r| out.row(r).iter().map(|v| format!("{v:?}")).collect())
            .collect();
        assert_eq!(rows.len(), 4);
        // s=1, bucket m: 2.0, 1.0, NaN → min 1, max NaN, avg NaN, first 1.0 (earliest), last NaN.
        assert_eq!(
            rows[0],
            [
                "Int(1)",
                "Int(300000)",
                "Float(1.0)",
                "Float(NaN)",
                "Float(NaN)",
                "Float(NaN)",
                "Float(1.0)",
                "Float(NaN)",
                "Int(3)"
            ]
        );
        assert_eq!(
            rows[1],
            [
                "Int(1)",
                "Int(600000)",
                "Float(7.0)",
                "Float(7.0)",
                "Float(7.0)",
                "Float(7.0)",
                "Float(7.0)",
                "Float(7.0)",
                "Int(1)"
            ]
        );
        // A NULL series is a group; time -1 floors to the bucket before the epoch.
        assert_eq!(
            rows[2],
            [
                "Null",
                "Int(-300000)",
                "Float(3.0)",
                "Float(3.0)",
                "Float(3.0)",
                "Float(3.0)",
                "Float(3.0)",
                "Float(3.0)",
                "Int(1)"
            ]
        );
        // Only NULL values: count 0, the rest NULL.
        assert_eq!(
            rows[3],
            ["Int(2)", "Int(0)", "Null", "Null", "Null", "Null", "Null", "Null", "Int(0)"]
        );
    }

    #[test]
    fn bad_aggregates_are_refused_with_the_reason() {
        let spec = plan(r#"["min"]"#);
        let mut fields = batch(&[]).schema.fields.clone();
        fields[2] = Field::new("v", DataType::Text);
        let err = Aggregate::compile(&spec, &Schema::new(fields)).unwrap_err();
        assert!(err.to_string().contains("must be a number column"), "{err}");
        let text = r#"
[source]
kind = "sqlite"
path = "a.db"
[target]
kind = "sqlite"
path = "b.db"
[[streams]]
name = "a"
[[streams]]
name = "b"
from = "x"
aggregate = { of = "a", every = "5m", time = "t", value = "v" }
"#;
        let err = Plan::parse(text).unwrap_err().to_string();
        assert!(err.contains("reads and maps exactly as"), "{err}");
        let err = Plan::parse(
            &text
                .replace("from = \"x\"\n", "")
                .replace("of = \"a\"", "of = \"c\""),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("is not a stream of this plan"), "{err}");
        let err = Plan::parse(
            &text
                .replace("from = \"x\"\n", "")
                .replace("value = \"v\"", "value = \"v\", functions = [\"median\"]"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("unknown function"), "{err}");
    }
}
