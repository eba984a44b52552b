//! What a target column can hold beyond its type — `varchar(n)`, `numeric(p, s)`,
//! `timestamp(p)`, `jsonb`, no signed zero — as conversion rules applied before a row is
//! written.
//!
//! A store that meets a value its column cannot hold either refuses it (a `varchar(3)` given
//! four letters: the whole partition fails) or changes it silently (`numeric(10,2)` rounds
//! 1.234 to 1.23, `timestamptz(0)` rounds `…00.999999` to `…01`, `varchar(3)` cuts trailing
//! spaces, DynamoDB writes -0.0 as 0). Both break the promise that a value is written exactly
//! or rejected with a reason. So the sink describes its columns' limits ([`ColumnLimits`]) and
//! the engine applies them here, to the rows `run` writes and to the source rows `verify`
//! compares — one rule for both: a value that does not fit is rejected, or, where the plan
//! allows the named loss, made to fit the way the store would and counted.

use crate::column::{Column, ValueRef};
use crate::convert::{ConvertCtx, Lossy};
use crate::decimal::Decimal;
use crate::types::DataType;

/// Limits of one target column (the default: none).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ColumnLimits {
    /// Longest text, in characters (`varchar(n)`, `char(n)`).
    pub max_chars: Option<usize>,
    /// `char(n)`: the store pads shorter text with spaces, which compare as absent.
    pub blank_padded: bool,
    /// `numeric(precision, scale)`.
    pub numeric: Option<(u32, u32)>,
    /// Fractional digits of a second a timestamp keeps (`timestamp(p)`, p < 6).
    pub time_precision: Option<u32>,
    /// The store has no negative zero: -0.0 is written (and read back) as 0.
    pub no_negative_zero: bool,
    /// `jsonb`: no `\u0000` in strings, numbers within PostgreSQL's numeric range.
    pub jsonb: bool,
}

impl ColumnLimits {
    /// True when the column has no limit beyond its type.
    pub fn is_none(&self) -> bool {
        *self == ColumnLimits::default()
    }
}

/// PostgreSQL's numeric holds up to 131,072 digits before the decimal point and 16,383 after.
const NUMERIC_MAX_MAGNITUDE: i64 = 131_072;
const NUMERIC_MAX_SCALE: i64 = 16_383;

/// `col` (already in the column's type) with `limits` applied: values that do not fit are
/// rejected in `ctx` (their slot NULL), or changed as the plan allows.
pub fn apply(col: &Column, limits: &ColumnLimits, ctx: &mut ConvertCtx<'_>) -> Column {
    if limits.is_none() {
        return col.clone();
    }
    let dtype = col.dtype();
    let mut out = Column::with_capacity(dtype, col.len());
    let mut text = String::new();
    for row in 0..col.len() {
        let v = col.get(row);
        match fit(v, dtype, limits, row, ctx, &mut text) {
            Fit::Same => out.push_value(v),
            Fit::Float(x) => out.push_f64(x),
            Fit::Int(x) => out.push_i64(x),
            Fit::Text => out.push_str(&text),
            Fit::Rejected => out.push_null(),
        }
    }
    out
}

enum Fit {
    Same,
    Float(f64),
    Int(i64),
    /// The changed value is in the scratch text.
    Text,
    Rejected,
}

fn fit(
    v: ValueRef<'_>,
    dtype: DataType,
    limits: &ColumnLimits,
    row: usize,
    ctx: &mut ConvertCtx<'_>,
    text: &mut String,
) -> Fit {
    match v {
        ValueRef::Float(x) if limits.no_negative_zero && x == 0.0 && x.is_sign_negative() => {
            Fit::Float(0.0)
        }
        ValueRef::Str(s) if dtype == DataType::Numeric => match limits.numeric {
            Some((p, sc)) => fit_numeric(s, p, sc, row, ctx, text),
            None => Fit::Same,
        },
        ValueRef::Str(s) if dtype == DataType::Json && limits.jsonb => fit_jsonb(s, row, ctx),
        ValueRef::Str(s) => match limits.max_chars {
            Some(n) => fit_chars(s, n, limits.blank_padded, row, ctx, text),
            None => Fit::Same,
        },
        ValueRef::Timestamp(t, unit) => match limits.time_precision {
            Some(p) if unit == crate::types::TimeUnit::Micros && p < 6 => fit_time(t, p, row, ctx),
            _ => Fit::Same,
        },
        _ => Fit::Same,
    }
}

fn fit_chars(
    s: &str,
    n: usize,
    padded: bool,
    row: usize,
    ctx: &mut ConvertCtx<'_>,
    text: &mut String,
) -> Fit {
    let len = s.chars().count();
    if len <= n {
        return Fit::Same;
    }
    let kind = if padded { "char" } else { "varchar" };
    // PostgreSQL cuts excess trailing spaces without a word, and refuses other excess.
    let why = || {
        format!(
            "{} is {len} characters, more than the column's {kind}({n}) holds",
            preview(s)
        )
    };
    if ctx.lossy(row, Lossy::TextTruncation, why) {
        text.clear();
        text.extend(s.chars().take(n));
        Fit::Text
    } else {
        Fit::Rejected
    }
}

fn fit_numeric(
    s: &str,
    precision: u32,
    scale: u32,
    row: usize,
    ctx: &mut ConvertCtx<'_>,
    text: &mut String,
) -> Fit {
    let Some(d) = Decimal::parse(s) else {
        if s.eq_ignore_ascii_case("nan") {
            return Fit::Same;
        }
        ctx.reject(
            row,
            format!("{s} cannot be stored in a numeric({precision},{scale}) column"),
        );
        return Fit::Rejected;
    };
    let frac = d.digits.len() as i64 - d.magnitude;
    let (d, changed) = if frac > i64::from(scale) {
        let why = || {
            format!(
                "{s} has more than the {scale} decimal place(s) of the column's numeric({precision},{scale})"
            )
        };
        if !ctx.lossy(row, Lossy::NumericRounding, why) {
            return Fit::Rejected;
        }
        (round_half_away(&d, scale), true)
    } else {
        (d, false)
    };
    let int_digits = d.magnitude.max(0);
    if !d.digits.is_empty() && int_digits > i64::from(precision) - i64::from(scale) {
        ctx.reject(
            row,
            format!(
                "{s} does not fit the column's numeric({precision},{scale}): at most {} digit(s) before the decimal point",
                i64::from(precision) - i64::from(scale)
            ),
        );
        return Fit::Rejected;
    }
    if changed {
        text.clear();
        text.push_str(&d.to_plain());
        Fit::Text
    } else {
        Fit::Same
    }
}

/// `d` rounded to `scale` decimal places, half away from zero (PostgreSQL's numeric rounding).
fn round_half_away(d: &Decimal, scale: u32) -> Decimal {
    // Digits kept: those before the decimal point plus `scale` after it.
    let keep = d.magnitude + i64::from(scale);
    if keep < 0 {
        return Decimal::parse("0").unwrap_or_else(|| d.clone());
    }
    let keep = keep as usize;
    let digits = d.digits.as_bytes();
    let up = digits.get(keep).is_some_and(|c| *c >= b'5');
    let mut kept: Vec<u8> = digits.iter().take(keep).copied().collect();
    let mut magnitude = d.magnitude;
    if up {
        let mut i = kept.len();
        loop {
            if i == 0 {
                kept.insert(0, b'1');
                magnitude += 1;
                break;
            }
            i -= 1;
            if kept[i] == b'9' {
                kept[i] = b'0';
            } else {
                kept[i] += 1;
                break;
            }
        }
    }
    let text = String::from_utf8(kept).unwrap_or_default();
    let trimmed = text.trim_end_matches('0');
    Decimal {
        negative: d.negative && !trimmed.is_empty(),
        digits: trimmed.to_string(),
        magnitude: if trimmed.is_empty() { 0 } else { magnitude },
    }
}

fn fit_time(t: i64, precision: u32, row: usize, ctx: &mut ConvertCtx<'_>) -> Fit {
    let step = 10i64.pow(6 - precision);
    // PostgreSQL rounds half away from zero on its own epoch, 2000-01-01.
    const PG_EPOCH_US: i64 = 946_684_800_000_000;
    let rel = t - PG_EPOCH_US;
    if rel % step == 0 {
        return Fit::Same;
    }
    let why = || {
        format!(
            "{} has more than the {precision} fractional digit(s) of a second the column keeps",
            crate::convert::value_to_string(ValueRef::Timestamp(t, crate::types::TimeUnit::Micros))
        )
    };
    if !ctx.lossy(row, Lossy::TimestampTruncation, why) {
        return Fit::Rejected;
    }
    let half = step / 2;
    let rounded = if rel >= 0 {
        (rel + half) / step * step
    } else {
        -((-rel + half) / step * step)
    };
    Fit::Int(rounded + PG_EPOCH_US)
}

fn fit_jsonb(s: &str, row: usize, ctx: &mut ConvertCtx<'_>) -> Fit {
    if s.contains("\\u0000") {
        ctx.reject(
            row,
            "the JSON holds \\u0000, which PostgreSQL's jsonb cannot store".to_string(),
        );
        return Fit::Rejected;
    }
    let Ok(v) = serde_json::from_str::<serde_json::Value>(s) else {
        return Fit::Same;
    };
    match out_of_numeric_range(&v) {
        Some(n) => {
            ctx.reject(
                row,
                format!(
                    "the JSON number {} is beyond the range of PostgreSQL's jsonb (numeric)",
                    preview(&n)
                ),
            );
            Fit::Rejected
        }
        None => Fit::Same,
    }
}

/// The first number of `v` that PostgreSQL's numeric cannot hold.
fn out_of_numeric_range(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::Number(n) => {
            let d = Decimal::parse(n.as_str())?;
            let scale = d.digits.len() as i64 - d.magnitude;
            (d.magnitude > NUMERIC_MAX_MAGNITUDE || scale > NUMERIC_MAX_SCALE)
                .then(|| n.as_str().to_string())
        }
        serde_json::Value::Array(a) => a.iter().find_map(out_of_numeric_range),
        serde_json::Value::Object(m) => m.values().find_map(out_of_numeric_range),
        _ => None,
    }
}

/// A value for a message: at most 40 characters, quoted.
fn preview(s: &str) -> String {
    if s.chars().count() > 40 {
        format!("{:?}…", s.chars().take(40).collect::<String>())
    } else {
        format!("{s:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convert::{LossyCounts, RowErrors};
    use crate::types::TimeUnit;

    fn run(col: &Column, limits: &ColumnLimits, allow: &[Lossy]) -> (Vec<String>, Vec<usize>) {
        let mut errors = RowErrors::new();
        let mut lossy = LossyCounts::allowing(allow);
        let mut ctx = ConvertCtx {
            errors: &mut errors,
            lossy: &mut lossy,
            column: Some("c"),
        };
        let out = apply(col, limits, &mut ctx);
        let values = (0..out.len())
            .map(|i| crate::convert::value_to_string(out.get(i)))
            .collect();
        (values, errors.errors().iter().map(|e| e.row).collect())
    }

    fn texts(dtype: DataType, values: &[&str]) -> Column {
        let mut c = Column::with_capacity(dtype, values.len());
        for v in values {
            c.push_str(v);
        }
        c
    }

    #[test]
    fn numeric_scale_rounds_only_when_allowed_and_overflow_is_rejected() {
        let col = texts(
            DataType::Numeric,
            &[
                "1.23",
                "1.234",
                "2.5",
                "-2.5",
                "123456789.99",
                "99999999.995",
                "NaN",
                "Infinity",
            ],
        );
        let limits = ColumnLimits {
            numeric: Some((10, 2)),
            ..Default::default()
        };
        let (_, rejected) = run(&col, &limits, &[]);
        assert_eq!(rejected, vec![1, 4, 5, 7]);
        let limits0 = ColumnLimits {
            numeric: Some((10, 0)),
            ..Default::default()
        };
        let (values, rejected) = run(&col, &limits0, &[Lossy::NumericRounding]);
        // As PostgreSQL: 2.5 → 3, -2.5 → -3; 123456789.99 → 123456790 (fits 10 digits).
        assert_eq!(
            &values[..6],
            &["1", "1", "3", "-3", "123456790", "100000000"]
        );
        assert_eq!(rejected, vec![7]);
    }

    #[test]
    fn varchar_and_char_lengths_reject_or_cut() {
        let col = texts(DataType::Text, &["abc", "abcd", "ab  ", "héé"]);
        let limits = ColumnLimits {
            max_chars: Some(3),
            ..Default::default()
        };
        let (_, rejected) = run(&col, &limits, &[]);
        // Trailing spaces PostgreSQL would cut without a word count as excess too.
        assert_eq!(rejected, vec![1, 2]);
        let (values, _) = run(&col, &limits, &[Lossy::TextTruncation]);
        assert_eq!(values, ["abc", "abc", "ab ", "héé"]);
    }

    #[test]
    fn timestamp_precision_rounds_as_postgresql_when_allowed() {
        let mut col = Column::with_capacity(DataType::Timestamp(TimeUnit::Micros), 3);
        // 2000-01-01 00:00:00.5, 1999-12-31 23:59:59.5, 2000-01-01 00:00:01
        for t in [
            946_684_800_500_000i64,
            946_684_799_500_000,
            946_684_801_000_000,
        ] {
            col.push_i64(t);
        }
        let limits = ColumnLimits {
            time_precision: Some(0),
            ..Default::default()
        };
        let (_, rejected) = run(&col, &limits, &[]);
        assert_eq!(rejected, vec![0, 1]);
        let (values, _) = run(&col, &limits, &[Lossy::TimestampTruncation]);
        // What `timestamptz(0)` makes of them (PostgreSQL 15).
        assert_eq!(
            values,
            [
                "2000-01-01T00:00:01Z",
                "1999-12-31T23:59:59Z",
                "2000-01-01T00:00:01Z"
            ]
        );
    }

    #[test]
    fn jsonb_refuses_nul_and_numbers_beyond_numeric() {
        let col = texts(
            DataType::Json,
            &[
                r#"{"a":"x\u0000y"}"#,
                r#"{"a":1e131071}"#,
                r#"{"a":[1e131072]}"#,
                r#"{"a":1e-16384}"#,
                "[1,2]",
            ],
        );
        let limits = ColumnLimits {
            jsonb: true,
            ..Default::default()
        };
        let (_, rejected) = run(&col, &limits, &[]);
        assert_eq!(rejected, vec![0, 2, 3]);
    }

    #[test]
    fn negative_zero_becomes_zero_where_the_store_has_none() {
        let mut col = Column::with_capacity(DataType::Float64, 2);
        col.push_f64(-0.0);
        col.push_f64(-1.5);
        let limits = ColumnLimits {
            no_negative_zero: true,
            ..Default::default()
        };
        let mut errors = RowErrors::new();
        let mut lossy = LossyCounts::default();
        let mut ctx = ConvertCtx {
            errors: &mut errors,
            lossy: &mut lossy,
            column: None,
        };
        let out = apply(&col, &limits, &mut ctx);
        assert!(matches!(out.get(0), ValueRef::Float(x) if x == 0.0 && x.is_sign_positive()));
        assert_eq!(out.get(1), ValueRef::Float(-1.5));
        assert!(errors.is_empty());
    }
}
