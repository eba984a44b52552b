//! Checked conversions between logical types.
//!
//! One function, [`convert`], serves both explicit casts in mappings (`long_v::float8`) and
//! the implicit conversion of a mapped column into the target column's type. A conversion
//! either keeps the value exactly, or — when it would lose information — rejects the row with
//! a reason, unless the plan allows that kind of loss ([`Lossy`]), in which case it is done and
//! counted. Nothing is silent.

use std::fmt::Write as _;

use crate::column::{Column, ColumnData, ValueRef};
use crate::types::{DataType, TimeUnit};

/// Kinds of information-losing conversions a plan may allow (`allow_lossy = [...]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Lossy {
    /// An integer that a float cannot hold exactly (an i64 above 2^53 into float8),
    /// or a decimal with more digits than a float holds.
    IntToFloat,
    /// A float8 value that float4 cannot hold exactly.
    FloatNarrowing,
    /// A timestamp finer than the target's resolution (ns into a µs column, µs into a
    /// `timestamp(0)` column).
    TimestampTruncation,
    /// Text longer than a `varchar(n)` / `char(n)` column holds, cut to its length.
    TextTruncation,
    /// A decimal with more fractional digits than a `numeric(p, s)` column keeps, rounded to
    /// its scale (half away from zero, as PostgreSQL rounds).
    NumericRounding,
}

/// Number of [`Lossy`] kinds.
const LOSSY_KINDS: usize = 5;

impl Lossy {
    /// Every kind, in report order.
    pub const ALL: [Lossy; LOSSY_KINDS] = [
        Lossy::IntToFloat,
        Lossy::FloatNarrowing,
        Lossy::TimestampTruncation,
        Lossy::TextTruncation,
        Lossy::NumericRounding,
    ];

    /// The name used in plans and reports.
    pub fn name(self) -> &'static str {
        match self {
            Lossy::IntToFloat => "int_to_float",
            Lossy::FloatNarrowing => "float_narrowing",
            Lossy::TimestampTruncation => "timestamp_truncation",
            Lossy::TextTruncation => "text_truncation",
            Lossy::NumericRounding => "numeric_rounding",
        }
    }

    /// Parses a plan name.
    pub fn parse(name: &str) -> Option<Lossy> {
        Lossy::ALL.into_iter().find(|l| l.name() == name)
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// One rejected row of a batch.
#[derive(Clone, Debug, PartialEq)]
pub struct RowError {
    /// Row index in the batch.
    pub row: usize,
    /// The target column whose value could not be produced, when known.
    pub column: Option<String>,
    /// Why.
    pub reason: String,
}

/// The rejected rows of one batch; only the first error of a row is kept.
#[derive(Clone, Debug, Default)]
pub struct RowErrors {
    rejected: Vec<bool>,
    errors: Vec<RowError>,
}

impl RowErrors {
    /// No rejected row yet.
    pub fn new() -> RowErrors {
        RowErrors::default()
    }

    /// Rejects `row` with `reason` (ignored if the row is already rejected).
    pub fn reject(&mut self, row: usize, column: Option<&str>, reason: String) {
        if self.rejected.len() <= row {
            self.rejected.resize(row + 1, false);
        }
        if !self.rejected[row] {
            self.rejected[row] = true;
            self.errors.push(RowError {
                row,
                column: column.map(str::to_string),
                reason,
            });
        }
    }

    /// True when `row` was rejected.
    pub fn is_rejected(&self, row: usize) -> bool {
        self.rejected.get(row).copied().unwrap_or(false)
    }

    /// Number of rejected rows.
    pub fn len(&self) -> usize {
        self.errors.len()
    }

    /// True when no row was rejected.
    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// The errors, in the order they were found.
    pub fn errors(&self) -> &[RowError] {
        &self.errors
    }

    /// A keep-mask of `rows` entries: true for rows that were not rejected.
    pub fn keep_mask(&self, rows: usize) -> Vec<bool> {
        (0..rows).map(|r| !self.is_rejected(r)).collect()
    }
}

/// Which lossy conversions are allowed, and how many were made.
#[derive(Clone, Debug, Default)]
pub struct LossyCounts {
    allowed: [bool; LOSSY_KINDS],
    counts: [u64; LOSSY_KINDS],
}

impl LossyCounts {
    /// Allows the given kinds of loss.
    pub fn allowing(kinds: &[Lossy]) -> LossyCounts {
        let mut c = LossyCounts::default();
        for k in kinds {
            c.allowed[k.index()] = true;
        }
        c
    }

    /// True when `kind` may be performed.
    pub fn allows(&self, kind: Lossy) -> bool {
        self.allowed[kind.index()]
    }

    /// Number of conversions of `kind` performed.
    pub fn count(&self, kind: Lossy) -> u64 {
        self.counts[kind.index()]
    }

    /// Adds another set of counts into this one.
    pub fn absorb(&mut self, other: &LossyCounts) {
        for i in 0..LOSSY_KINDS {
            self.counts[i] += other.counts[i];
        }
    }
}

/// Context of a conversion: where errors go and which losses are allowed.
pub struct ConvertCtx<'a> {
    /// Rows that could not be converted.
    pub errors: &'a mut RowErrors,
    /// Allowed losses and their counts.
    pub lossy: &'a mut LossyCounts,
    /// The column being produced, for error messages.
    pub column: Option<&'a str>,
}

impl ConvertCtx<'_> {
    /// Rejects `row` with `reason`.
    pub fn reject(&mut self, row: usize, reason: String) {
        self.errors.reject(row, self.column, reason);
    }

    /// Either performs a lossy conversion (counted) or rejects the row. Returns true to proceed.
    pub fn lossy(&mut self, row: usize, kind: Lossy, reason: impl FnOnce() -> String) -> bool {
        if self.lossy.allows(kind) {
            self.lossy.counts[kind.index()] += 1;
            true
        } else {
            let r = format!(
                "{} (allow it with allow_lossy = [\"{}\"])",
                reason(),
                kind.name()
            );
            self.reject(row, r);
            false
        }
    }
}

/// Converts `col` to `to`. Rows whose value cannot be converted become NULL in the result
/// and are recorded in `ctx.errors`. Converting to the same type returns a copy.
pub fn convert(col: &Column, to: DataType, ctx: &mut ConvertCtx<'_>) -> Column {
    let from = col.dtype();
    if from == to {
        return col.clone();
    }
    // Integer widening and re-labelling with the same layout needs no per-value work.
    if from.is_integer() && to == DataType::Int64 {
        if let Some(c) = col.clone().relabel(to) {
            return c;
        }
    }
    if from == DataType::Float32 && to == DataType::Float64 {
        if let Some(c) = col.clone().relabel(to) {
            return c;
        }
    }
    if matches!((from, to), (DataType::Json, DataType::Text)) {
        if let Some(c) = col.clone().relabel(to) {
            return c;
        }
    }
    if let Some(c) = convert_fast(col, to, ctx) {
        return c;
    }
    let n = col.len();
    let mut out = Column::with_capacity(to, n);
    let mut text = String::new();
    for i in 0..n {
        let v = col.get(i);
        if v == ValueRef::Null {
            out.push_null();
            continue;
        }
        match convert_value(v, from, to, i, ctx, &mut text) {
            Some(Converted::Int(x)) => out.push_i64(x),
            Some(Converted::Float(x)) => out.push_f64(x),
            Some(Converted::Bool(b)) => out.push_bool(b),
            Some(Converted::Text) => out.push_str(&text),
            Some(Converted::Bytes(b)) => out.push_bytes(&b),
            Some(Converted::Uuid(u)) => out.push_uuid(u),
            None => out.push_null(),
        }
    }
    out
}

/// Vectorised conversions for the hot numeric cases (every telemetry row converts its
/// timestamp): a tight loop over the value vector instead of one `ValueRef` per value.
/// Returns `None` when no fast path applies. Rules are the same as the general path's.
fn convert_fast(col: &Column, to: DataType, ctx: &mut ConvertCtx<'_>) -> Option<Column> {
    let from = col.dtype();
    let ints = col.ints()?;
    let mut validity: Option<Vec<bool>> = col.validity().map(<[bool]>::to_vec);
    let valid = |i: usize, v: &Option<Vec<bool>>| {
        v.as_ref()
            .is_none_or(|v| v.get(i).copied().unwrap_or(false))
    };
    let fail = |i: usize, validity: &mut Option<Vec<bool>>| {
        let v = validity.get_or_insert_with(|| vec![true; ints.len()]);
        if let Some(slot) = v.get_mut(i) {
            *slot = false;
        }
    };
    match (from, to) {
        (DataType::Timestamp(fu), DataType::Timestamp(tu)) => {
            let mut out = Vec::with_capacity(ints.len());
            for (i, x) in ints.iter().enumerate() {
                if !valid(i, &validity) {
                    out.push(0);
                    continue;
                }
                match rescale_ts(*x, fu, tu, i, ctx) {
                    Some(y) => out.push(y),
                    None => {
                        out.push(0);
                        fail(i, &mut validity);
                    }
                }
            }
            Column::from_parts(to, ColumnData::Int(out), validity)
        }
        (f, DataType::Float64) if f.is_integer() => {
            let mut out = Vec::with_capacity(ints.len());
            for (i, x) in ints.iter().enumerate() {
                let y = *x as f64;
                if valid(i, &validity)
                    && (y as i128) != (*x as i128)
                    && !ctx.lossy(i, Lossy::IntToFloat, || {
                        format!("{x} cannot be represented exactly in float8")
                    })
                {
                    fail(i, &mut validity);
                    out.push(0.0);
                    continue;
                }
                out.push(y);
            }
            Column::from_parts(to, ColumnData::Float(out), validity)
        }
        _ => None,
    }
}

enum Converted {
    Int(i64),
    Float(f64),
    Bool(bool),
    /// The result is in the scratch `text` buffer.
    Text,
    Bytes(Vec<u8>),
    Uuid([u8; 16]),
}

const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;

fn int_range(t: DataType) -> (i64, i64) {
    match t {
        DataType::Int16 => (i16::MIN as i64, i16::MAX as i64),
        DataType::Int32 => (i32::MIN as i64, i32::MAX as i64),
        _ => (i64::MIN, i64::MAX),
    }
}

fn convert_value(
    v: ValueRef<'_>,
    from: DataType,
    to: DataType,
    row: usize,
    ctx: &mut ConvertCtx<'_>,
    text: &mut String,
) -> Option<Converted> {
    use DataType as T;
    text.clear();
    let fail = |ctx: &mut ConvertCtx<'_>, why: String| {
        ctx.reject(row, why);
        None
    };
    match (v, to) {
        // ---- to text-like targets -------------------------------------------------------
        (_, T::Text) => {
            write_value(v, from, text);
            Some(Converted::Text)
        }
        (ValueRef::Str(s), T::Json) => match validate_json(s) {
            Ok(()) => {
                text.push_str(s);
                Some(Converted::Text)
            }
            Err(e) => fail(ctx, format!("{} is not valid JSON: {e}", quote(s))),
        },
        (ValueRef::Bool(_) | ValueRef::Int(_), T::Json) => {
            write_text(v, text);
            Some(Converted::Text)
        }
        (ValueRef::Float(x), T::Json) if x.is_finite() => {
            write_value(v, from, text);
            Some(Converted::Text)
        }
        (_, T::Json) => fail(ctx, format!("{} cannot be converted to JSON", describe(v, from))),
        (ValueRef::Int(x), T::Numeric) => {
            let _ = write!(text, "{x}");
            Some(Converted::Text)
        }
        (ValueRef::Float(x), T::Numeric) => {
            if x.is_finite() {
                write_value(v, from, text);
                Some(Converted::Text)
            } else {
                fail(ctx, format!("{} cannot be stored in a numeric column", float_name(x)))
            }
        }
        (ValueRef::Str(s), T::Numeric) => match (parse_decimal(s), numeric_special(s)) {
            (Some(d), _) | (None, Some(d)) => {
                text.push_str(d);
                Some(Converted::Text)
            }
            (None, None) => fail(ctx, format!("{} is not a decimal number", quote(s))),
        },
        (ValueRef::Str(s), T::Bytes) => Some(Converted::Bytes(s.as_bytes().to_vec())),
        (_, T::Numeric | T::Bytes) => fail(ctx, format!("{} cannot be converted to {to}", describe(v, from))),

        // ---- to integers ----------------------------------------------------------------
        (ValueRef::Int(x), T::Int16 | T::Int32 | T::Int64) => {
            let (lo, hi) = int_range(to);
            if x < lo || x > hi {
                fail(ctx, format!("{x} is out of range for {to}"))
            } else {
                Some(Converted::Int(x))
            }
        }
        (ValueRef::Bool(b), T::Int16 | T::Int32 | T::Int64) => Some(Converted::Int(b as i64)),
        (ValueRef::Float(x), T::Int16 | T::Int32 | T::Int64) => {
            let (lo, hi) = int_range(to);
            if x.fract() == 0.0 && (-TWO_POW_63..TWO_POW_63).contains(&x) && (lo..=hi).contains(&(x as i64)) {
                Some(Converted::Int(x as i64))
            } else {
                fail(ctx, format!("{} is not an integer in the range of {to}", float_name(x)))
            }
        }
        (ValueRef::Str(s), T::Int16 | T::Int32 | T::Int64) => {
            let parsed = if from == T::Numeric {
                parse_decimal_integer(s)
            } else {
                s.trim().parse::<i64>().ok()
            };
            let (lo, hi) = int_range(to);
            match parsed {
                Some(x) if x >= lo && x <= hi => Some(Converted::Int(x)),
                Some(x) => fail(ctx, format!("{x} is out of range for {to}")),
                None => fail(ctx, format!("{} is not an integer", quote(s))),
            }
        }

        // ---- to floats --------------------------------------------------------------------
        (ValueRef::Int(x), T::Float64 | T::Float32) => {
            let f = if to == T::Float32 { (x as f32) as f64 } else { x as f64 };
            let exact = (f as i128) == (x as i128);
            if exact || ctx.lossy(row, Lossy::IntToFloat, || format!("{x} cannot be represented exactly in {to}")) {
                Some(Converted::Float(f))
            } else {
                None
            }
        }
        (ValueRef::Bool(b), T::Float64 | T::Float32) => Some(Converted::Float(if b { 1.0 } else { 0.0 })),
        (ValueRef::Float(x), T::Float32) => {
            let f = (x as f32) as f64;
            if x.is_finite() && f.is_infinite() {
                fail(ctx, format!("{} is out of range for float4", float_name(x)))
            } else if f == x || x.is_nan() || ctx.lossy(row, Lossy::FloatNarrowing, || format!("{} cannot be represented exactly in float4", float_name(x))) {
                Some(Converted::Float(f))
            } else {
                None
            }
        }
        (ValueRef::Float(x), T::Float64) => Some(Converted::Float(x)),
        (ValueRef::Str(s), T::Float64 | T::Float32) => match parse_float(s) {
            Some(x) if from == T::Numeric && !decimal_fits_float(s, x) => {
                if ctx.lossy(row, Lossy::IntToFloat, || format!("{} has more digits than {to} holds", quote(s))) {
                    Some(Converted::Float(x))
                } else {
                    None
                }
            }
            Some(x) if to == T::Float32 && x.is_finite() && ((x as f32) as f64).is_infinite() => {
                fail(ctx, format!("{} is out of range for float4", quote(s)))
            }
            Some(x) if to == T::Float32 => Some(Converted::Float((x as f32) as f64)),
            Some(x) => Some(Converted::Float(x)),
            None => fail(ctx, format!("{} is not a number", quote(s))),
        },

        // ---- to bool ----------------------------------------------------------------------
        (ValueRef::Int(x), T::Bool) => Some(Converted::Bool(x != 0)),
        (ValueRef::Str(s), T::Bool) => match parse_bool(s) {
            Some(b) => Some(Converted::Bool(b)),
            None => fail(ctx, format!("{} is not a boolean", quote(s))),
        },

        // ---- to uuid ----------------------------------------------------------------------
        (ValueRef::Str(s), T::Uuid) => match uuid::Uuid::parse_str(s.trim()) {
            Ok(u) => Some(Converted::Uuid(*u.as_bytes())),
            Err(_) => fail(ctx, format!("{} is not a UUID", quote(s))),
        },
        (ValueRef::Bytes(b), T::Uuid) if b.len() == 16 => {
            let mut u = [0u8; 16];
            u.copy_from_slice(b);
            Some(Converted::Uuid(u))
        }

        // ---- to timestamps ----------------------------------------------------------------
        (ValueRef::Timestamp(x, unit), T::Timestamp(target)) => {
            rescale_ts(x, unit, target, row, ctx).map(Converted::Int)
        }
        (ValueRef::Str(s), T::Timestamp(target)) => match parse_timestamp(s) {
            Some((secs, nanos)) => {
                let ns = (secs as i128) * 1_000_000_000 + nanos as i128;
                let per = 1_000_000_000 / target.per_second() as i128;
                let q = ns.div_euclid(per);
                if ns.rem_euclid(per) != 0
                    && !ctx.lossy(row, Lossy::TimestampTruncation, || {
                        format!("{} is finer than {} resolution", quote(s), target.short_name())
                    })
                {
                    return None;
                }
                match i64::try_from(q) {
                    Ok(x) => Some(Converted::Int(x)),
                    Err(_) => fail(ctx, format!("{} is out of the timestamp range", quote(s))),
                }
            }
            None => fail(ctx, format!("{} is not a timestamp (expected RFC 3339, e.g. 2025-08-01T00:00:00Z)", quote(s))),
        },
        (ValueRef::Int(_) | ValueRef::Float(_), T::Timestamp(_)) => fail(
            ctx,
            format!(
                "{} is a number, not a timestamp: say its unit with from_epoch_s/ms/us/ns(...) in the mapping",
                describe(v, from)
            ),
        ),
        (_, _) => fail(ctx, format!("{} cannot be converted to {to}", describe(v, from))),
    }
}

/// Rescales a timestamp between units, checking overflow and (for coarser targets) loss.
pub fn rescale_ts(
    x: i64,
    from: TimeUnit,
    to: TimeUnit,
    row: usize,
    ctx: &mut ConvertCtx<'_>,
) -> Option<i64> {
    let (fp, tp) = (from.per_second(), to.per_second());
    if tp >= fp {
        match x.checked_mul(tp / fp) {
            Some(y) => Some(y),
            None => {
                ctx.reject(
                    row,
                    format!(
                        "timestamp {x} {} overflows when converted to {}",
                        from.short_name(),
                        to.short_name()
                    ),
                );
                None
            }
        }
    } else {
        let div = fp / tp;
        if x.rem_euclid(div) != 0
            && !ctx.lossy(row, Lossy::TimestampTruncation, || {
                format!(
                    "timestamp {x} {} is finer than {} resolution",
                    from.short_name(),
                    to.short_name()
                )
            })
        {
            return None;
        }
        Some(x.div_euclid(div))
    }
}

/// Writes a value's canonical text form: PostgreSQL-style for floats (`NaN`, `Infinity`,
/// shortest round-trip digits), RFC 3339 UTC for timestamps, hyphenated lowercase UUIDs.
pub fn write_text(v: ValueRef<'_>, out: &mut String) {
    match v {
        ValueRef::Null => {}
        ValueRef::Bool(b) => out.push_str(if b { "true" } else { "false" }),
        ValueRef::Int(x) => {
            let _ = write!(out, "{x}");
        }
        ValueRef::Float(x) => write_float(x, out),
        ValueRef::Str(s) => out.push_str(s),
        ValueRef::Bytes(b) => {
            out.push_str("\\x");
            for byte in b {
                let _ = write!(out, "{byte:02x}");
            }
        }
        ValueRef::Uuid(u) => {
            let _ = write!(out, "{}", uuid::Uuid::from_bytes(*u).hyphenated());
        }
        ValueRef::Timestamp(x, unit) => write_timestamp(x, unit, out),
    }
}

/// Writes the text of a value of a column of type `dtype`: as [`write_text`], except that a
/// `real` (float4) value is written in the shortest form that reads back as the same float4
/// (`0.1`, as PostgreSQL prints it), not as the double it widens to (`0.10000000149011612`).
pub fn write_value(v: ValueRef<'_>, dtype: DataType, out: &mut String) {
    match (v, dtype) {
        (ValueRef::Float(x), DataType::Float32) => write_float32(x as f32, out),
        _ => write_text(v, out),
    }
}

/// A value of a column of type `dtype` as display text (NULL shown as `NULL`).
pub fn value_text(v: ValueRef<'_>, dtype: DataType) -> String {
    if v == ValueRef::Null {
        return "NULL".to_string();
    }
    let mut s = String::new();
    write_value(v, dtype, &mut s);
    s
}

/// Shortest round-trip text of a float4, formatted as PostgreSQL prints `real`: positional
/// for decimal exponents from -4 to 5, else `d.ddde±XX`.
pub fn write_float32(x: f32, out: &mut String) {
    if x.is_nan() {
        out.push_str("NaN");
    } else if x.is_infinite() {
        out.push_str(if x > 0.0 { "Infinity" } else { "-Infinity" });
    } else {
        let e = format!("{x:e}");
        let (mant, exp) = e.split_once('e').unwrap_or((e.as_str(), "0"));
        let exp: i32 = exp.parse().unwrap_or(0);
        if (-4..6).contains(&exp) {
            let _ = write!(out, "{x}");
        } else {
            let _ = write!(
                out,
                "{mant}e{}{:02}",
                if exp < 0 { '-' } else { '+' },
                exp.abs()
            );
        }
    }
}

/// A value as display text (NULL shown as `NULL`).
pub fn value_to_string(v: ValueRef<'_>) -> String {
    if v == ValueRef::Null {
        return "NULL".to_string();
    }
    let mut s = String::new();
    write_text(v, &mut s);
    s
}

fn float_name(x: f64) -> String {
    let mut s = String::new();
    write_float(x, &mut s);
    s
}

/// Shortest round-trip text of a float, formatted as PostgreSQL prints float8.
pub fn write_float(x: f64, out: &mut String) {
    if x.is_nan() {
        out.push_str("NaN");
    } else if x.is_infinite() {
        out.push_str(if x > 0.0 { "Infinity" } else { "-Infinity" });
    } else {
        let e = format!("{x:e}");
        let (mant, exp) = e.split_once('e').unwrap_or((e.as_str(), "0"));
        let exp: i32 = exp.parse().unwrap_or(0);
        if (-4..15).contains(&exp) {
            let _ = write!(out, "{x}");
        } else {
            let _ = write!(
                out,
                "{mant}e{}{:02}",
                if exp < 0 { '-' } else { '+' },
                exp.abs()
            );
        }
    }
}

/// A timestamp as fixed-width RFC 3339 UTC text: every fractional digit of its unit, trailing
/// zeros kept (`2025-01-01T00:00:08.490000Z` for µs), so texts of one column sort as their
/// times do (for years 0 to 9999).
pub fn write_timestamp_fixed(x: i64, unit: TimeUnit, out: &mut String) {
    let start = out.len();
    write_timestamp(x, unit, out);
    let digits = match unit {
        TimeUnit::Seconds => 0,
        TimeUnit::Millis => 3,
        TimeUnit::Micros => 6,
        TimeUnit::Nanos => 9,
    };
    if digits == 0 || !out.ends_with('Z') {
        return;
    }
    // Put back the trailing zeros `write_timestamp` trims (and the whole fraction of a
    // value on a second).
    out.pop();
    let written = &out[start..];
    let frac = written.rfind('.').map_or(0, |dot| written.len() - dot - 1);
    if frac == 0 {
        out.push('.');
    }
    out.extend(std::iter::repeat_n('0', digits - frac));
    out.push('Z');
}

fn write_timestamp(x: i64, unit: TimeUnit, out: &mut String) {
    let per = unit.per_second();
    let secs = x.div_euclid(per);
    let frac = x.rem_euclid(per);
    match chrono::DateTime::from_timestamp(secs, 0) {
        Some(dt) => {
            // Years 0..=9999 by hand (chrono's `format` re-reads its pattern per call, which
            // dominated writing CSV); others as chrono writes them (a sign, more digits).
            let date = dt.date_naive();
            let year = chrono::Datelike::year(&date);
            if (0..=9999).contains(&year) {
                let day_secs = secs.rem_euclid(86_400);
                let fields = [
                    (u64::try_from(year).unwrap_or(0), 4),
                    (u64::from(chrono::Datelike::month(&date)), 2),
                    (u64::from(chrono::Datelike::day(&date)), 2),
                    (u64::try_from(day_secs / 3600).unwrap_or(0), 2),
                    (u64::try_from(day_secs / 60 % 60).unwrap_or(0), 2),
                    (u64::try_from(day_secs % 60).unwrap_or(0), 2),
                ];
                for (i, (v, width)) in fields.into_iter().enumerate() {
                    if i > 0 {
                        out.push(['-', '-', 'T', ':', ':'][i - 1]);
                    }
                    push_padded(out, v, width);
                }
            } else {
                let _ = write!(out, "{}", dt.format("%Y-%m-%dT%H:%M:%S"));
            }
            if frac != 0 {
                let digits = match unit {
                    TimeUnit::Seconds => 0,
                    TimeUnit::Millis => 3,
                    TimeUnit::Micros => 6,
                    TimeUnit::Nanos => 9,
                };
                out.push('.');
                push_padded(out, u64::try_from(frac).unwrap_or(0), digits);
                let kept = out.trim_end_matches('0').len();
                out.truncate(kept);
            }
            out.push('Z');
        }
        None => {
            let _ = write!(out, "{x}{}", unit.short_name());
        }
    }
}

/// Appends `v` in decimal, zero-padded to `width` digits (no allocation).
fn push_padded(out: &mut String, v: u64, width: usize) {
    let mut buf = [b'0'; 20];
    let (mut n, mut i) = (v, buf.len());
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for _ in buf.len() - i..width {
        out.push('0');
    }
    out.push_str(std::str::from_utf8(&buf[i..]).unwrap_or(""));
}

fn describe(v: ValueRef<'_>, from: DataType) -> String {
    let mut s = String::new();
    write_text(v, &mut s);
    if s.len() > 80 {
        let mut cut = 80;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    format!("{from} value {}", quote(&s))
}

fn quote(s: &str) -> String {
    let mut short: String = s.chars().take(80).collect();
    if short.len() < s.len() {
        short.push('…');
    }
    format!("{short:?}")
}

/// Checks that `s` is a JSON document PostgreSQL's jsonb accepts.
pub fn validate_json(s: &str) -> Result<(), String> {
    serde_json::from_str::<serde::de::IgnoredAny>(s).map_err(|e| e.to_string())?;
    if s.contains("\\u0000") {
        return Err("\\u0000 is not allowed in JSON text stored by PostgreSQL".into());
    }
    Ok(())
}

fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "t" | "true" | "y" | "yes" | "on" | "1" => Some(true),
        "f" | "false" | "n" | "no" | "off" | "0" => Some(false),
        _ => None,
    }
}

fn parse_float(s: &str) -> Option<f64> {
    let t = s.trim();
    match t.to_ascii_lowercase().as_str() {
        "nan" => Some(f64::NAN),
        "infinity" | "inf" | "+infinity" | "+inf" => Some(f64::INFINITY),
        "-infinity" | "-inf" => Some(f64::NEG_INFINITY),
        _ => {
            // Rust accepts forms SQL does not ("1.", ".5" are fine in both); reject words.
            if t.bytes()
                .any(|b| b.is_ascii_alphabetic() && b != b'e' && b != b'E')
            {
                None
            } else {
                t.parse::<f64>().ok()
            }
        }
    }
}

/// Validates decimal text (`-12.50`, `1e-5`) and returns it trimmed; NaN and infinities are not
/// decimals.
fn parse_decimal(s: &str) -> Option<&str> {
    let t = s.trim();
    let b = t.as_bytes();
    let mut i = 0;
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        i += 1;
    }
    let digits_start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let mut ndigits = i - digits_start;
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let f = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        ndigits += i - f;
    }
    if ndigits == 0 {
        return None;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        let e = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == e {
            return None;
        }
    }
    (i == b.len()).then_some(t)
}

/// The special values a numeric column holds besides decimals (PostgreSQL's numeric has NaN
/// and, since version 14, ±Infinity), in their canonical spelling.
fn numeric_special(s: &str) -> Option<&'static str> {
    match s.trim().to_ascii_lowercase().as_str() {
        "nan" => Some("NaN"),
        "infinity" | "+infinity" => Some("Infinity"),
        "-infinity" => Some("-Infinity"),
        _ => None,
    }
}

fn parse_decimal_integer(s: &str) -> Option<i64> {
    let t = parse_decimal(s)?;
    if t.contains(['e', 'E']) {
        let f = t.parse::<f64>().ok()?;
        return (f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0).then_some(f as i64);
    }
    match t.split_once('.') {
        Some((int, frac)) if frac.bytes().all(|b| b == b'0') => int.parse().ok(),
        Some(_) => None,
        None => t.parse().ok(),
    }
}

/// True when decimal text `s` survives the trip through `x` (its float value): at most
/// 15 significant digits always do.
fn decimal_fits_float(s: &str, x: f64) -> bool {
    let sig: usize = s
        .split(['e', 'E'])
        .next()
        .unwrap_or("")
        .trim_start_matches(['+', '-'])
        .trim_start_matches(['0', '.'])
        .bytes()
        .filter(|b| b.is_ascii_digit())
        .count();
    sig <= 15 || {
        let mut back = String::new();
        write_float(x, &mut back);
        back.parse::<f64>().ok() == Some(x)
            && parse_float(s) == Some(x)
            && sig <= 17
            && trimmed_equal(s, &back)
    }
}

fn trimmed_equal(a: &str, b: &str) -> bool {
    let norm = |s: &str| {
        let s = s.trim().trim_start_matches('+');
        let s = if s.contains('.') && !s.contains(['e', 'E']) {
            s.trim_end_matches('0').trim_end_matches('.')
        } else {
            s
        };
        s.to_string()
    };
    norm(a) == norm(b)
}

/// Parses an RFC 3339 / ISO 8601 timestamp (`2025-08-01T00:00:00Z`, `2025-08-01 00:00:00+02`,
/// a date alone means midnight UTC) into seconds and nanoseconds since the epoch.
pub fn parse_timestamp(s: &str) -> Option<(i64, u32)> {
    let t = s.trim();
    if let Ok(dt) = chrono::DateTime::parse_from_rfc3339(t) {
        return Some((dt.timestamp(), dt.timestamp_subsec_nanos()));
    }
    for fmt in ["%Y-%m-%d %H:%M:%S%.f%#z", "%Y-%m-%dT%H:%M:%S%.f%#z"] {
        if let Ok(dt) = chrono::DateTime::parse_from_str(t, fmt) {
            return Some((dt.timestamp(), dt.timestamp_subsec_nanos()));
        }
    }
    for fmt in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
        if let Ok(dt) = chrono::NaiveDateTime::parse_from_str(t, fmt) {
            let u = dt.and_utc();
            return Some((u.timestamp(), u.timestamp_subsec_nanos()));
        }
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        let u = d.and_hms_opt(0, 0, 0)?.and_utc();
        return Some((u.timestamp(), 0));
    }
    None
}

#[cfg(test)]
mod fixed_time_tests {
    use super::*;

    #[test]
    fn fixed_width_times_sort_as_times() {
        let text = |t: i64, u: TimeUnit| {
            let mut s = String::new();
            write_timestamp_fixed(t, u, &mut s);
            s
        };
        // …08.49382Z and …08.493828Z: the trimmed forms sort the wrong way round.
        let a = text(1_700_000_008_493_820, TimeUnit::Micros);
        let b = text(1_700_000_008_493_828, TimeUnit::Micros);
        assert_eq!(a, "2023-11-14T22:13:28.493820Z");
        assert!(a < b);
        assert_eq!(
            text(1_700_000_008_000_000, TimeUnit::Micros),
            "2023-11-14T22:13:28.000000Z"
        );
        assert_eq!(
            text(1_700_000_008_100, TimeUnit::Millis),
            "2023-11-14T22:13:28.100Z"
        );
        assert_eq!(
            text(1_700_000_008, TimeUnit::Seconds),
            "2023-11-14T22:13:28Z"
        );
        assert_eq!(text(-1, TimeUnit::Nanos), "1969-12-31T23:59:59.999999999Z");
    }
}

#[cfg(test)]
mod float32_text_tests {
    use super::*;

    /// The text PostgreSQL 15 prints for these `real` values (`SELECT x::real::text`).
    #[test]
    fn float4_text_is_what_postgresql_prints() {
        for (input, pg) in [
            ("0.1", "0.1"),
            ("3.3", "3.3"),
            ("1234567", "1.234567e+06"),
            ("123456789", "1.2345679e+08"),
            ("999999", "999999"),
            ("1e6", "1e+06"),
            ("0.0001", "0.0001"),
            ("0.00001", "1e-05"),
            ("1.5e-5", "1.5e-05"),
            ("3.4028235e38", "3.4028235e+38"),
            ("1e-45", "1e-45"),
            ("-0", "-0"),
            ("16777217", "1.6777216e+07"),
        ] {
            let x: f32 = input.parse().unwrap_or(f32::NAN);
            let mut s = String::new();
            write_value(ValueRef::Float(f64::from(x)), DataType::Float32, &mut s);
            assert_eq!(s, pg, "{input}");
        }
        let mut s = String::new();
        write_value(
            ValueRef::Float(f64::from(0.1f32)),
            DataType::Float64,
            &mut s,
        );
        assert_eq!(s, "0.10000000149011612", "a float8 keeps its digits");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(col: &Column, to: DataType, allow: &[Lossy]) -> (Column, RowErrors, LossyCounts) {
        let mut errors = RowErrors::new();
        let mut lossy = LossyCounts::allowing(allow);
        let out = {
            let mut ctx = ConvertCtx {
                errors: &mut errors,
                lossy: &mut lossy,
                column: Some("c"),
            };
            convert(col, to, &mut ctx)
        };
        (out, errors, lossy)
    }

    fn ints(v: &[i64]) -> Column {
        let mut c = Column::with_capacity(DataType::Int64, v.len());
        v.iter().for_each(|x| c.push_i64(*x));
        c
    }

    #[test]
    fn int_to_float_rejects_only_inexact_values() {
        let big = (1i64 << 53) + 1;
        let (out, errs, _) = run(
            &ints(&[1, 1 << 53, big, i64::MAX, 1 << 60]),
            DataType::Float64,
            &[],
        );
        assert_eq!(out.get(0), ValueRef::Float(1.0));
        assert_eq!(out.get(1), ValueRef::Float(9007199254740992.0));
        assert_eq!(errs.len(), 2);
        assert!(errs.is_rejected(2) && errs.is_rejected(3));
        assert!(errs.errors()[0].reason.contains("9007199254740993"));
        assert_eq!(out.get(4), ValueRef::Float((1i64 << 60) as f64));
        let (_, errs, counts) = run(&ints(&[big]), DataType::Float64, &[Lossy::IntToFloat]);
        assert!(errs.is_empty());
        assert_eq!(counts.count(Lossy::IntToFloat), 1);
    }

    #[test]
    fn text_to_number_and_nan_to_numeric() {
        let mut c = Column::with_capacity(DataType::Text, 4);
        for s in ["1.5", "abc", "NaN", "-Infinity"] {
            c.push_str(s);
        }
        let (out, errs, _) = run(&c, DataType::Float64, &[]);
        assert_eq!(out.get(0), ValueRef::Float(1.5));
        assert!(errs.is_rejected(1));
        assert!(matches!(out.get(2), ValueRef::Float(x) if x.is_nan()));
        assert_eq!(out.get(3), ValueRef::Float(f64::NEG_INFINITY));
        let mut f = Column::with_capacity(DataType::Float64, 2);
        f.push_f64(f64::NAN);
        f.push_f64(2.25);
        let (out, errs, _) = run(&f, DataType::Numeric, &[]);
        assert!(errs.is_rejected(0));
        assert_eq!(out.get(1), ValueRef::Str("2.25"));
        // Numeric text read back from a file keeps numeric's own NaN and infinities.
        let (out, errs, _) = run(&c, DataType::Numeric, &[]);
        assert_eq!(out.get(0), ValueRef::Str("1.5"));
        assert!(errs.is_rejected(1));
        assert_eq!(out.get(2), ValueRef::Str("NaN"));
        assert_eq!(out.get(3), ValueRef::Str("-Infinity"));
    }

    #[test]
    fn timestamps_rescale_exactly_or_reject() {
        let c = ints(&[1_700_000_000_123, -1])
            .relabel(DataType::Timestamp(TimeUnit::Millis))
            .unwrap_or_else(|| ints(&[]));
        let (out, errs, _) = run(&c, DataType::Timestamp(TimeUnit::Micros), &[]);
        assert!(errs.is_empty());
        assert_eq!(
            out.get(0),
            ValueRef::Timestamp(1_700_000_000_123_000, TimeUnit::Micros)
        );
        assert_eq!(out.get(1), ValueRef::Timestamp(-1000, TimeUnit::Micros));
        let ns = ints(&[1_500, i64::MAX])
            .relabel(DataType::Timestamp(TimeUnit::Nanos))
            .unwrap_or_else(|| ints(&[]));
        let (_, errs, _) = run(&ns, DataType::Timestamp(TimeUnit::Micros), &[]);
        assert!(errs.is_rejected(0) && errs.is_rejected(1));
        let big = ints(&[i64::MAX / 10])
            .relabel(DataType::Timestamp(TimeUnit::Millis))
            .unwrap_or_else(|| ints(&[]));
        let (_, errs, _) = run(&big, DataType::Timestamp(TimeUnit::Nanos), &[]);
        assert!(errs.is_rejected(0));
    }

    #[test]
    fn json_validation() {
        let mut c = Column::with_capacity(DataType::Text, 3);
        c.push_str(r#"{"a":[1,2]}"#);
        c.push_str("{not json");
        c.push_str(r#""\u0000""#);
        let (_, errs, _) = run(&c, DataType::Json, &[]);
        assert!(!errs.is_rejected(0));
        assert!(errs.is_rejected(1) && errs.is_rejected(2));
    }

    #[test]
    fn float_text_matches_postgres() {
        let f = |x: f64| float_name(x);
        assert_eq!(f(1.0), "1");
        assert_eq!(f(0.1), "0.1");
        assert_eq!(f(1e20), "1e+20");
        assert_eq!(f(1.5e-5), "1.5e-05");
        assert_eq!(f(f64::INFINITY), "Infinity");
        assert_eq!(f(123456789012345.0), "123456789012345");
    }

    #[test]
    fn timestamp_text_matches_chrono() {
        // The hand-written digits equal chrono's RFC 3339 text, across units and eras.
        for unit in [
            TimeUnit::Seconds,
            TimeUnit::Millis,
            TimeUnit::Micros,
            TimeUnit::Nanos,
        ] {
            let per = unit.per_second();
            for secs in [
                0i64,
                -1,
                59,
                86_399,
                86_400,
                951_782_400,
                1_700_000_000,
                -62_135_596_800,
                253_402_300_799,
                -62_167_219_200,
                253_402_300_800,
                -210_863_520_000,
            ] {
                for frac in [0i64, 1, per / 2, per - 1, per / 1000 * 7] {
                    let Some(x) = secs.checked_mul(per).and_then(|v| v.checked_add(frac)) else {
                        continue;
                    };
                    let mut got = String::new();
                    write_timestamp(x, unit, &mut got);
                    let (whole, frac) = (x.div_euclid(per), x.rem_euclid(per));
                    let dt = chrono::DateTime::from_timestamp(whole, 0).unwrap();
                    let mut want = dt.format("%Y-%m-%dT%H:%M:%S").to_string();
                    if frac != 0 {
                        let digits = [0, 3, 6, 9][[1, 1_000, 1_000_000, 1_000_000_000]
                            .iter()
                            .position(|p| *p == per)
                            .unwrap()];
                        let f = format!("{frac:0digits$}");
                        want.push('.');
                        want.push_str(f.trim_end_matches('0'));
                    }
                    want.push('Z');
                    assert_eq!(got, want, "{x} {unit:?}");
                }
            }
        }
    }

    #[test]
    fn timestamp_text() {
        let mut s = String::new();
        write_timestamp(1_700_000_000_120, TimeUnit::Millis, &mut s);
        assert_eq!(s, "2023-11-14T22:13:20.12Z");
        assert_eq!(
            parse_timestamp("2023-11-14T22:13:20.12Z"),
            Some((1_700_000_000, 120_000_000))
        );
        assert_eq!(parse_timestamp("2025-08-01"), Some((1_754_006_400, 0)));
    }
}
