//! Putting both sides' rows into the same canonical form before they are hashed.
//!
//! Rows of both sides are already in the target's types (the source side through the plan's
//! mapping and conversions, exactly as `run` writes them). What remains is what a store
//! normalises on its own: JSON. `jsonb` reorders keys, drops whitespace and duplicate keys and
//! prints `1e2` as `100`; so both sides' JSON is parsed and printed again with sorted keys,
//! no whitespace and numbers in one exact decimal spelling ([`canonical_numeric`]: numbers
//! are never read through f64, so a changed 38th digit is a difference). Floats need nothing here: the digest compares them by
//! bit pattern (every NaN alike), and timestamps by their ticks in the target's unit.

use std::sync::Arc;

use serde_json::Value;
use tsmigrate_core::convert::{convert, ConvertCtx};
use tsmigrate_core::{Batch, Column, ColumnData, DataType, LossyCounts, RowErrors, Schema};

/// Re-prints a JSON document canonically; `None` when it is not valid JSON.
pub fn canonical_json(text: &str) -> Option<String> {
    let v: Value = serde_json::from_str(text).ok()?;
    let mut out = String::with_capacity(text.len());
    write_value(&v, &mut out);
    Some(out)
}

fn write_value(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        // serde_json keeps a number's text (`arbitrary_precision`): compared as a decimal.
        Value::Number(n) => out.push_str(&canonical_numeric(n.as_str())),
        Value::String(s) => out.push_str(&Value::String(s.clone()).to_string()),
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(x, out);
            }
            out.push(']');
        }
        Value::Object(m) => {
            // serde_json's map keeps keys sorted (the `preserve_order` feature is off).
            out.push('{');
            for (i, (k, x)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_value(x, out);
            }
            out.push('}');
        }
    }
}

/// Canonicalises the JSON columns of batches, remembering the last value of each column so
/// a constant JSON column (a common mapping) is parsed once, not once per row.
#[derive(Default)]
pub struct Canonicalizer {
    memo: Vec<Option<(Vec<u8>, Option<String>)>>,
}

impl Canonicalizer {
    /// The batch with every JSON column canonical. Rows whose JSON does not parse get `true`
    /// in the returned mask (their text is kept as it was).
    pub fn apply(&mut self, batch: Batch) -> (Batch, Option<Vec<bool>>) {
        let has_json = batch
            .schema
            .fields
            .iter()
            .any(|f| matches!(f.dtype, DataType::Json | DataType::Numeric));
        if !has_json {
            return (batch, None);
        }
        if self.memo.len() < batch.columns.len() {
            self.memo.resize(batch.columns.len(), None);
        }
        let mut invalid: Option<Vec<bool>> = None;
        let mut columns = Vec::with_capacity(batch.columns.len());
        for (ci, (field, col)) in batch.schema.fields.iter().zip(&batch.columns).enumerate() {
            let ColumnData::Str(texts) = col.data() else {
                columns.push(col.clone());
                continue;
            };
            if field.dtype == DataType::Numeric {
                columns.push(Arc::new(canonical_numerics(col, texts)));
                continue;
            }
            if field.dtype != DataType::Json {
                columns.push(col.clone());
                continue;
            }
            let mut out = Column::with_capacity(DataType::Json, batch.len());
            for r in 0..batch.len() {
                if !col.is_valid(r) {
                    out.push_null();
                    continue;
                }
                let raw = texts.get(r);
                let memo = &mut self.memo[ci];
                let hit = memo.as_ref().is_some_and(|(k, _)| k.as_slice() == raw);
                if !hit {
                    let canon = std::str::from_utf8(raw).ok().and_then(canonical_json);
                    *memo = Some((raw.to_vec(), canon));
                }
                match memo.as_ref().and_then(|(_, c)| c.as_deref()) {
                    Some(c) => out.push_str(c),
                    None => {
                        out.push_bytes(raw);
                        invalid.get_or_insert_with(|| vec![false; batch.len()])[r] = true;
                    }
                }
            }
            columns.push(Arc::new(out));
        }
        let out = Batch::new(batch.schema.clone(), columns).unwrap_or(batch);
        (out, invalid)
    }
}

/// The batch with the trailing spaces of `char(n)` columns removed: the store pads a shorter
/// value with spaces it does not count (`'ab'` reads back as `'ab '`), so both sides compare
/// without them.
pub fn trim_blank_padded(batch: Batch, limits: &[tsmigrate_core::ColumnLimits]) -> Batch {
    if !limits.iter().any(|l| l.blank_padded) {
        return batch;
    }
    let schema = batch.schema.clone();
    let columns = batch
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            if !limits.get(i).is_some_and(|l| l.blank_padded) {
                return c.clone();
            }
            let mut out = Column::with_capacity(c.dtype(), c.len());
            for r in 0..c.len() {
                match c.get(r) {
                    tsmigrate_core::ValueRef::Str(s) => out.push_str(s.trim_end_matches(' ')),
                    v => out.push_value(v),
                }
            }
            Arc::new(out)
        })
        .collect();
    Batch::new(schema, columns).unwrap_or(batch)
}

/// A numeric column with every value in [`canonical_numeric`] form.
fn canonical_numerics(col: &Column, texts: &tsmigrate_core::StrBuf) -> Column {
    let mut out = Column::with_capacity(DataType::Numeric, col.len());
    for r in 0..col.len() {
        if !col.is_valid(r) {
            out.push_null();
            continue;
        }
        match std::str::from_utf8(texts.get(r)) {
            Ok(t) => out.push_str(&canonical_numeric(t)),
            Err(_) => out.push_bytes(texts.get(r)),
        }
    }
    out
}

/// A decimal's text in one spelling per value (`007.50` → `7.5`, `1.5E3` → `1500`, `-0.0` →
/// `0`): stores keep a numeric's scale (PostgreSQL) or drop it (DynamoDB), and verify compares
/// values. NaN and infinities are kept as they are.
pub fn canonical_numeric(text: &str) -> String {
    match tsmigrate_core::decimal::Decimal::parse(text) {
        // Far exponents stay short: `0.<digits>E<magnitude>` is one spelling too.
        Some(d) if d.magnitude.abs() > 1000 => {
            let sign = if d.negative { "-" } else { "" };
            format!("{sign}0.{}E{}", d.digits, d.magnitude)
        }
        Some(d) => d.to_plain(),
        None => text.to_string(),
    }
}

/// Converts the columns of a batch read from the target whose type differs from the
/// prepared target's (`schema`); values that do not convert become NULL.
pub fn align_types(batch: Batch, schema: &Arc<Schema>) -> Batch {
    if batch
        .columns
        .iter()
        .zip(&schema.fields)
        .all(|(c, f)| c.dtype() == f.dtype)
    {
        return Batch::new(schema.clone(), batch.columns.clone()).unwrap_or(batch);
    }
    let mut errors = RowErrors::new();
    let mut lossy = LossyCounts::default();
    let columns = batch
        .columns
        .iter()
        .zip(&schema.fields)
        .map(|(c, f)| {
            if c.dtype() == f.dtype {
                c.clone()
            } else {
                let mut ctx = ConvertCtx {
                    errors: &mut errors,
                    lossy: &mut lossy,
                    column: Some(&f.name),
                };
                Arc::new(convert(c, f.dtype, &mut ctx))
            }
        })
        .collect();
    Batch::new(schema.clone(), columns).unwrap_or(batch)
}

/// The time window verify compares, in the time column's units: `[lo, hi)` without the rows
/// in `gap` (`[from, to)`: those newer than the last run or sync, up to when verify started —
/// they may have arrived after it; rows stamped later were future-dated when read, and a run
/// copies them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Window {
    /// Oldest time compared.
    pub lo: Option<i64>,
    /// Times compared are before this.
    pub hi: Option<i64>,
    /// Times left out.
    pub gap: Option<(i64, i64)>,
}

impl Window {
    /// True when rows of every time are compared.
    pub fn is_all(&self) -> bool {
        self.lo.is_none() && self.hi.is_none() && self.gap.is_none()
    }

    /// True when a row of time `t` is compared.
    pub fn keeps(&self, t: i64) -> bool {
        self.lo.is_none_or(|l| t >= l)
            && self.hi.is_none_or(|h| t < h)
            && self.gap.is_none_or(|(from, to)| t < from || t >= to)
    }
}

/// The rows of `batch` whose time (column `col`) lies in the window; all rows when it has no
/// bound. A NULL time is outside every bounded window.
pub fn window(batch: Batch, col: usize, w: &Window) -> Batch {
    if w.is_all() {
        return batch;
    }
    let Some(c) = batch.columns.get(col) else {
        return batch;
    };
    let Some(v) = c.ints() else { return batch };
    let keep: Vec<bool> = (0..batch.len())
        .map(|r| c.is_valid(r) && w.keeps(v[r]))
        .collect();
    if keep.iter().all(|k| *k) {
        batch
    } else {
        batch.filter(&keep)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tsmigrate_core::Field;

    #[test]
    fn json_is_printed_one_way_whatever_the_store_did() {
        let a = canonical_json(r#"{ "b": [1, 2.50, 1e2], "a": {"y": null, "x": "t\u0009"} }"#);
        // jsonb's own output of the same document.
        let b = canonical_json(r#"{"a": {"x": "t\t", "y": null}, "b": [1, 2.50, 100]}"#);
        assert_eq!(
            a.as_deref(),
            Some(r#"{"a":{"x":"t\t","y":null},"b":[1,2.5,100]}"#)
        );
        assert_eq!(a, b);
        // Duplicate keys: the last wins, as in jsonb.
        assert_eq!(
            canonical_json(r#"{"k":1,"k":2}"#).as_deref(),
            Some(r#"{"k":2}"#)
        );
        assert_eq!(canonical_json("{not json"), None);
        assert_ne!(canonical_json("[1.5]"), canonical_json("[1.25]"));
    }

    #[test]
    fn invalid_json_rows_are_flagged_and_constants_parsed_once() {
        let schema = Arc::new(Schema::new(vec![Field::new("j", DataType::Json)]));
        let mut col = Column::with_capacity(DataType::Json, 4);
        col.push_str(r#"{"b":1, "a":2}"#);
        col.push_str(r#"{"b":1, "a":2}"#);
        col.push_str("nope");
        col.push_null();
        let batch = Batch::new(schema, vec![Arc::new(col)]).expect("batch");
        let (out, invalid) = Canonicalizer::default().apply(batch);
        assert_eq!(invalid, Some(vec![false, false, true, false]));
        let c = &out.columns[0];
        assert_eq!(
            c.strs().map(|s| s.get(0).to_vec()),
            Some(br#"{"a":2,"b":1}"#.to_vec())
        );
        assert_eq!(
            c.strs().map(|s| s.get(1).to_vec()),
            Some(br#"{"a":2,"b":1}"#.to_vec())
        );
        assert!(!c.is_valid(3));
    }

    #[test]
    fn numerics_compare_by_value() {
        for (a, b) in [
            ("007.50", "7.5"),
            ("-0.000", "0"),
            ("+12", "12"),
            ("0.0100", "0.01"),
            ("-.5", "-0.5"),
            ("1e5", "100000"),
            ("1.5e999999999", "0.15E1000000000"),
            ("15E999999998", "0.15E1000000000"),
            ("NaN", "NaN"),
            (
                "12345678901234567890123456789012345678.000",
                "12345678901234567890123456789012345678",
            ),
        ] {
            assert_eq!(canonical_numeric(a), b, "{a}");
        }
    }

    #[test]
    fn window_keeps_the_half_open_range() {
        let schema = Arc::new(Schema::new(vec![Field::new("t", DataType::Int64)]));
        let mut col = Column::with_capacity(DataType::Int64, 4);
        for x in [1, 5, 10] {
            col.push_i64(x);
        }
        col.push_null();
        let batch = Batch::new(schema, vec![Arc::new(col)]).expect("batch");
        let w = |lo, hi, gap| Window { lo, hi, gap };
        let out = window(batch.clone(), 0, &w(Some(5), Some(10), None));
        assert_eq!(out.columns[0].ints(), Some(&[5][..]));
        assert_eq!(window(batch.clone(), 0, &Window::default()).len(), 4);
        // The gap leaves out [5, 10): 1 and 10 stay, the NULL does not.
        let out = window(batch.clone(), 0, &w(None, None, Some((5, 10))));
        assert_eq!(out.columns[0].ints(), Some(&[1, 10][..]));
        let out = window(batch, 0, &w(Some(2), None, Some((5, 10))));
        assert_eq!(out.columns[0].ints(), Some(&[10][..]));
    }
}
