//! Decoding PostgreSQL's COPY text format into typed columns.
//!
//! Rows end with a newline, fields are separated by tabs, `\N` is NULL (matched before any
//! unescaping), and a backslash introduces `\b \f \n \r \t \v \\`, one to three octal
//! digits, `x` with one or two hex digits, or stands before any other character for that
//! character. A line `\.` ends the data. Each field is then parsed as its column's type in
//! the form PostgreSQL prints it (`DateStyle = ISO`, which pg_dump always sets).
//!
//! This is the hot path of reading a dump: lines and fields are found with `memchr`, a field
//! is unescaped (into a reused buffer) only when it holds a backslash, and values go straight
//! into the [`Column`] builders.

use std::sync::Arc;

use memchr::memchr;
use tsmigrate_core::{Batch, Column, DataType, Schema, MAX_BATCH_BYTES};

/// Microseconds between 0000-03-01-based day counts and the Unix epoch are computed by
/// [`days_from_civil`]; this is one day in µs.
const DAY_US: i64 = 86_400_000_000;

/// How a column's text is turned into a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldKind {
    /// `t` / `f`.
    Bool,
    /// A decimal integer that must fit in this many bits.
    Int(u8),
    /// `real`: parsed as f32 (then widened), as the binary protocol gives it.
    Float32,
    /// `double precision`.
    Float64,
    /// Decimal text kept as is (`numeric`).
    Numeric,
    /// UTF-8 text (also `json`, `jsonb` and every type read as its text).
    Text,
    /// `uuid`.
    Uuid,
    /// `bytea` in hex (`\x…`) or escape format.
    Bytes,
    /// `timestamp with time zone` (printed with its offset).
    Timestamptz,
    /// `timestamp without time zone`, taken as UTC.
    Timestamp,
}

impl FieldKind {
    /// The kind that decodes a SQL type as pg_dump declares it, with the logical type it
    /// produces. Types tsmigrate has no logical type for are read as their text.
    pub fn for_sql_type(sql: &str) -> (FieldKind, DataType) {
        let lower = sql.trim().to_ascii_lowercase();
        if lower.ends_with("[]") {
            return (FieldKind::Text, DataType::Text);
        }
        match DataType::parse_sql(&lower) {
            Some(DataType::Bool) => (FieldKind::Bool, DataType::Bool),
            Some(DataType::Int16) => (FieldKind::Int(16), DataType::Int16),
            Some(DataType::Int32) => (FieldKind::Int(32), DataType::Int32),
            Some(DataType::Int64) => (FieldKind::Int(64), DataType::Int64),
            Some(DataType::Float32) => (FieldKind::Float32, DataType::Float32),
            Some(DataType::Float64) => (FieldKind::Float64, DataType::Float64),
            Some(DataType::Numeric) => (FieldKind::Numeric, DataType::Numeric),
            Some(DataType::Json) => (FieldKind::Text, DataType::Json),
            Some(DataType::Uuid) => (FieldKind::Uuid, DataType::Uuid),
            Some(DataType::Bytes) => (FieldKind::Bytes, DataType::Bytes),
            Some(DataType::Timestamp(u)) => {
                let base: String = lower.split('(').next().unwrap_or("").trim().to_string();
                let with_tz = base == "timestamptz" || lower.contains("with time zone");
                let kind = if with_tz {
                    FieldKind::Timestamptz
                } else {
                    FieldKind::Timestamp
                };
                (kind, DataType::Timestamp(u))
            }
            Some(DataType::Text) | None => (FieldKind::Text, DataType::Text),
        }
    }
}

/// Decodes the COPY text of one table into batches of its schema.
pub struct CopyDecoder {
    schema: Arc<Schema>,
    /// For each field of a line, in COPY order: the schema column it fills, or `None`.
    targets: Vec<Option<usize>>,
    kinds: Vec<FieldKind>,
    columns: Vec<Column>,
    batch_rows: usize,
    rows_in_batch: usize,
    /// COPY text bytes of the rows in `columns` (a batch is cut at [`MAX_BATCH_BYTES`]).
    bytes_in_batch: usize,
    scratch: Vec<u8>,
    /// Rows decoded so far.
    rows: u64,
    /// Bytes of COPY text consumed so far.
    bytes: u64,
    finished: bool,
}

/// A row the decoder could not read: where it is and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowFault {
    /// 1-based row number within the table's data.
    pub row: u64,
    /// Byte offset of the row's start in the table's COPY text.
    pub byte: u64,
    /// What was wrong (names the column).
    pub message: String,
}

impl std::fmt::Display for RowFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "row {} (byte {} of the table's COPY data): {}",
            self.row, self.byte, self.message
        )
    }
}

impl CopyDecoder {
    /// A decoder filling `schema`; `targets[i]` is the schema column field `i` of each line
    /// goes to, `kinds[c]` how schema column `c` is parsed.
    pub fn new(
        schema: Arc<Schema>,
        targets: Vec<Option<usize>>,
        kinds: Vec<FieldKind>,
        batch_rows: usize,
    ) -> CopyDecoder {
        let batch_rows = batch_rows.max(1);
        let columns = schema
            .fields
            .iter()
            .map(|f| Column::with_capacity(f.dtype, batch_rows))
            .collect();
        CopyDecoder {
            schema,
            targets,
            kinds,
            columns,
            batch_rows,
            rows_in_batch: 0,
            bytes_in_batch: 0,
            scratch: Vec::new(),
            rows: 0,
            bytes: 0,
            finished: false,
        }
    }

    /// Rows decoded so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// True once the `\.` line was seen.
    pub fn finished(&self) -> bool {
        self.finished
    }

    /// True when a full batch is waiting in [`CopyDecoder::take_batch`].
    pub fn batch_full(&self) -> bool {
        self.rows_in_batch >= self.batch_rows || self.bytes_in_batch >= MAX_BATCH_BYTES
    }

    /// Decodes the complete lines at the start of `buf` until a batch is full or the data
    /// ends; returns the bytes consumed (a partial last line is left for the next call).
    pub fn decode(&mut self, buf: &[u8]) -> Result<usize, RowFault> {
        let mut at = 0;
        while at < buf.len() && !self.finished && !self.batch_full() {
            let Some(nl) = memchr(b'\n', &buf[at..]) else {
                break;
            };
            let line = &buf[at..at + nl];
            if line == b"\\." {
                self.finished = true;
            } else {
                self.decode_line(line)?;
            }
            at += nl + 1;
            self.bytes += nl as u64 + 1;
            self.bytes_in_batch += nl + 1;
        }
        Ok(at)
    }

    /// Decodes a last line that had no newline (the data ended without one).
    pub fn decode_last(&mut self, line: &[u8]) -> Result<(), RowFault> {
        if line.is_empty() || self.finished {
            return Ok(());
        }
        if line == b"\\." {
            self.finished = true;
            return Ok(());
        }
        self.decode_line(line)?;
        self.bytes += line.len() as u64;
        Ok(())
    }

    /// The rows decoded since the last call, as a batch (`None` when there are none).
    pub fn take_batch(&mut self) -> Option<Batch> {
        if self.rows_in_batch == 0 {
            return None;
        }
        let fresh: Vec<Column> = self
            .schema
            .fields
            .iter()
            .map(|f| Column::with_capacity(f.dtype, self.batch_rows))
            .collect();
        let full = std::mem::replace(&mut self.columns, fresh);
        self.rows_in_batch = 0;
        self.bytes_in_batch = 0;
        Batch::new(
            self.schema.clone(),
            full.into_iter().map(Arc::new).collect(),
        )
    }

    fn fault(&self, message: String) -> RowFault {
        RowFault {
            row: self.rows + 1,
            byte: self.bytes,
            message,
        }
    }

    fn decode_line(&mut self, line: &[u8]) -> Result<(), RowFault> {
        let mut rest = line;
        let mut field = 0usize;
        loop {
            let (value, more) = match memchr(b'\t', rest) {
                Some(t) => (&rest[..t], Some(&rest[t + 1..])),
                None => (rest, None),
            };
            match self.targets.get(field).copied() {
                Some(Some(col)) => {
                    if let Err(m) = self.push_field(col, value) {
                        self.truncate_row();
                        let name = &self.schema.fields[col].name;
                        return Err(self.fault(format!("column `{name}`: {m}")));
                    }
                }
                Some(None) => {}
                None => {
                    self.truncate_row();
                    return Err(self.fault(format!(
                        "{} fields where the COPY statement lists {}",
                        line.split(|b| *b == b'\t').count(),
                        self.targets.len()
                    )));
                }
            }
            field += 1;
            match more {
                Some(m) => rest = m,
                None => break,
            }
        }
        if field != self.targets.len() {
            self.truncate_row();
            return Err(self.fault(format!(
                "{field} fields where the COPY statement lists {}",
                self.targets.len()
            )));
        }
        self.rows += 1;
        self.rows_in_batch += 1;
        Ok(())
    }

    /// Drops the values a failed row already pushed, so every column keeps the same length.
    fn truncate_row(&mut self) {
        let n = self.rows_in_batch;
        for c in &mut self.columns {
            if c.len() > n {
                let mut kept = Column::with_capacity(c.dtype(), self.batch_rows);
                for i in 0..n {
                    kept.push_value(c.get(i));
                }
                *c = kept;
            }
        }
    }

    fn push_field(&mut self, col: usize, raw: &[u8]) -> Result<(), String> {
        let column = &mut self.columns[col];
        if raw == b"\\N" {
            column.push_null();
            return Ok(());
        }
        let value: &[u8] = if memchr(b'\\', raw).is_some() {
            unescape(raw, &mut self.scratch);
            &self.scratch
        } else {
            raw
        };
        push_value(column, self.kinds[col], value)
    }
}

/// Appends `raw` with its COPY escapes resolved to `out` (cleared first).
pub fn unescape(raw: &[u8], out: &mut Vec<u8>) {
    out.clear();
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        if b != b'\\' || i + 1 == raw.len() {
            out.push(b);
            i += 1;
            continue;
        }
        let c = raw[i + 1];
        i += 2;
        match c {
            b'b' => out.push(0x08),
            b'f' => out.push(0x0c),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(0x0b),
            b'0'..=b'7' => {
                let mut v = u32::from(c - b'0');
                let mut n = 1;
                while n < 3 && i < raw.len() && (b'0'..=b'7').contains(&raw[i]) {
                    v = v * 8 + u32::from(raw[i] - b'0');
                    i += 1;
                    n += 1;
                }
                out.push((v & 0xff) as u8);
            }
            b'x' if i < raw.len() && raw[i].is_ascii_hexdigit() => {
                let mut v = hex(raw[i]);
                i += 1;
                if i < raw.len() && raw[i].is_ascii_hexdigit() {
                    v = v * 16 + hex(raw[i]);
                    i += 1;
                }
                out.push(v);
            }
            other => out.push(other),
        }
    }
}

fn hex(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        b'A'..=b'F' => b - b'A' + 10,
        _ => 0,
    }
}

fn text(value: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(value).map_err(|e| {
        format!(
            "not UTF-8 at byte {} of the value (only UTF-8 dumps are read)",
            e.valid_up_to()
        )
    })
}

fn shown(value: &[u8]) -> String {
    let s = String::from_utf8_lossy(value);
    if s.chars().count() > 60 {
        format!("{:?}…", s.chars().take(60).collect::<String>())
    } else {
        format!("{s:?}")
    }
}

/// Parses one unescaped value of `kind` into `column`.
pub fn push_value(column: &mut Column, kind: FieldKind, value: &[u8]) -> Result<(), String> {
    match kind {
        FieldKind::Bool => match value {
            b"t" | b"true" => column.push_bool(true),
            b"f" | b"false" => column.push_bool(false),
            _ => return Err(format!("{} is not a boolean (t or f)", shown(value))),
        },
        FieldKind::Int(bits) => {
            let v = parse_int(value)
                .filter(|v| {
                    bits >= 64 || (*v >= -(1i64 << (bits - 1)) && *v < (1i64 << (bits - 1)))
                })
                .ok_or_else(|| format!("{} is not a {bits}-bit integer", shown(value)))?;
            column.push_i64(v);
        }
        FieldKind::Float32 => {
            let v = parse_float(value)
                .map(|f| f as f32)
                .ok_or_else(|| format!("{} is not a real", shown(value)))?;
            column.push_f64(f64::from(v));
        }
        FieldKind::Float64 => {
            let v =
                parse_float(value).ok_or_else(|| format!("{} is not a double", shown(value)))?;
            column.push_f64(v);
        }
        FieldKind::Numeric | FieldKind::Text => column.push_str(text(value)?),
        FieldKind::Uuid => {
            let u = parse_uuid(value).ok_or_else(|| format!("{} is not a uuid", shown(value)))?;
            column.push_uuid(u);
        }
        FieldKind::Bytes => {
            let mut out = Vec::with_capacity(value.len() / 2);
            parse_bytea(value, &mut out)
                .ok_or_else(|| format!("{} is not a bytea value", shown(value)))?;
            column.push_bytes(&out);
        }
        FieldKind::Timestamptz | FieldKind::Timestamp => {
            if value == b"infinity" || value == b"-infinity" {
                return Err(
                    "timestamp 'infinity' cannot be migrated; filter it out or map it to a value"
                        .into(),
                );
            }
            let us = parse_timestamp(value, kind == FieldKind::Timestamptz)
                .ok_or_else(|| format!("{} is not an ISO timestamp", shown(value)))?
                .map_err(|m| format!("{}: {m}", shown(value)))?;
            column.push_i64(us);
        }
    }
    Ok(())
}

/// A decimal integer with an optional sign, checked for overflow.
pub fn parse_int(s: &[u8]) -> Option<i64> {
    let (neg, digits) = match s.first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() {
        return None;
    }
    let mut v: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        let d = i64::from(d - b'0');
        v = v.checked_mul(10).and_then(|v| {
            if neg {
                v.checked_sub(d)
            } else {
                v.checked_add(d)
            }
        })?;
    }
    Some(v)
}

/// A float as PostgreSQL prints it (`NaN`, `Infinity`, `-Infinity`, decimal or exponent).
pub fn parse_float(s: &[u8]) -> Option<f64> {
    match s {
        b"NaN" => Some(f64::NAN),
        b"Infinity" => Some(f64::INFINITY),
        b"-Infinity" => Some(f64::NEG_INFINITY),
        _ => {
            // Rust also accepts "inf"/"nan" spellings PostgreSQL never prints; refuse them.
            if !s
                .iter()
                .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E'))
            {
                return None;
            }
            std::str::from_utf8(s).ok()?.parse().ok()
        }
    }
}

/// A UUID in its 8-4-4-4-12 form (hyphens optional, as PostgreSQL accepts them).
pub fn parse_uuid(s: &[u8]) -> Option<[u8; 16]> {
    let mut out = [0u8; 16];
    let mut n = 0;
    let mut hi: Option<u8> = None;
    for &b in s {
        if b == b'-' {
            continue;
        }
        if !b.is_ascii_hexdigit() {
            return None;
        }
        match hi.take() {
            None => hi = Some(hex(b)),
            Some(h) => {
                *out.get_mut(n)? = h * 16 + hex(b);
                n += 1;
            }
        }
    }
    (n == 16 && hi.is_none()).then_some(out)
}

/// A bytea value in hex (`\x0aff`) or escape format (`a\000b\\`), as text after COPY
/// unescaping.
pub fn parse_bytea(s: &[u8], out: &mut Vec<u8>) -> Option<()> {
    if let Some(hexits) = s.strip_prefix(b"\\x") {
        if hexits.len() % 2 != 0 {
            return None;
        }
        for pair in hexits.chunks(2) {
            if !pair[0].is_ascii_hexdigit() || !pair[1].is_ascii_hexdigit() {
                return None;
            }
            out.push(hex(pair[0]) * 16 + hex(pair[1]));
        }
        return Some(());
    }
    let mut i = 0;
    while i < s.len() {
        if s[i] != b'\\' {
            out.push(s[i]);
            i += 1;
        } else if s.get(i + 1) == Some(&b'\\') {
            out.push(b'\\');
            i += 2;
        } else {
            let oct = s.get(i + 1..i + 4)?;
            if !oct.iter().all(|b| (b'0'..=b'7').contains(b)) {
                return None;
            }
            let v = oct
                .iter()
                .fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0'));
            out.push(u8::try_from(v).ok()?);
            i += 4;
        }
    }
    Some(())
}

/// Days since 1970-01-01 of a proleptic Gregorian date (astronomical year numbering).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn digits(s: &[u8]) -> Option<i64> {
    if s.is_empty() || s.len() > 9 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s.iter().fold(0i64, |acc, b| acc * 10 + i64::from(b - b'0')))
}

/// An ISO timestamp (`YYYY-MM-DD HH:MM:SS[.ffffff][±HH[:MM[:SS]]][ BC]`) as µs since the Unix
/// epoch; the offset is required when `with_tz` and refused otherwise. `None` when the text
/// is not such a timestamp, `Some(Err)` when it is but does not fit.
pub fn parse_timestamp(s: &[u8], with_tz: bool) -> Option<Result<i64, &'static str>> {
    let (s, bc) = match s.strip_suffix(b" BC") {
        Some(rest) => (rest, true),
        None => (s, false),
    };
    let dash1 = memchr(b'-', s)?;
    let year = digits(&s[..dash1])?;
    let rest = &s[dash1 + 1..];
    if rest.len() < 14 || rest[2] != b'-' || rest[5] != b' ' || rest[8] != b':' || rest[11] != b':'
    {
        return None;
    }
    let month = digits(&rest[0..2])?;
    let day = digits(&rest[3..5])?;
    let hour = digits(&rest[6..8])?;
    let minute = digits(&rest[9..11])?;
    let second = digits(&rest[12..14])?;
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 24
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut rest = &rest[14..];
    let mut micros = 0i64;
    if let Some(frac) = rest.strip_prefix(b".") {
        let n = frac.iter().take_while(|b| b.is_ascii_digit()).count();
        if n == 0 || n > 6 {
            return None;
        }
        micros = digits(&frac[..n])? * 10i64.pow(6 - n as u32);
        rest = &frac[n..];
    }
    let mut offset_s = 0i64;
    if with_tz {
        let sign = match rest.first()? {
            b'+' => 1,
            b'-' => -1,
            _ => return None,
        };
        let parts: Vec<&[u8]> = rest[1..].split(|b| *b == b':').collect();
        if parts.is_empty() || parts.len() > 3 || parts.iter().any(|p| p.len() != 2) {
            return None;
        }
        let mut secs = 0;
        for (p, scale) in parts.iter().zip([3600, 60, 1]) {
            secs += digits(p)? * scale;
        }
        offset_s = sign * secs;
    } else if !rest.is_empty() {
        return None;
    }
    let year = if bc { 1 - year } else { year };
    let days = days_from_civil(year, month, day);
    let secs = hour * 3600 + minute * 60 + second - offset_s;
    Some(
        days.checked_mul(DAY_US)
            .and_then(|d| d.checked_add(secs * 1_000_000))
            .and_then(|d| d.checked_add(micros))
            .ok_or(OUT_OF_RANGE),
    )
}

/// The error of a timestamp beyond what a 64-bit count of µs since 1970 holds.
const OUT_OF_RANGE: &str =
    "timestamp out of range (beyond ±292,000 years from 1970 in µs); filter it out or map it";

#[cfg(test)]
mod tests {
    use super::*;
    use tsmigrate_core::{Field, ValueRef};

    #[test]
    fn unescapes_every_escape() {
        let mut out = Vec::new();
        unescape(br"a\tb\nc\\d\rE\bF\fG\vH\101\0\x41\x4g\q\", &mut out);
        assert_eq!(out, b"a\tb\nc\\d\rE\x08F\x0cG\x0bHA\0A\x04gq\\".to_vec());
        unescape(br"\1234", &mut out);
        assert_eq!(out, vec![0o123, b'4']);
    }

    #[test]
    fn timestamps_parse_with_offsets_fractions_and_eras() {
        let ts = |s: &[u8], tz: bool| parse_timestamp(s, tz).and_then(Result::ok);
        assert_eq!(ts(b"1970-01-01 00:00:00+00", true), Some(0));
        assert_eq!(
            ts(b"2024-01-01 12:00:00.123456+02", true),
            Some(1_704_103_200_123_456)
        );
        assert_eq!(
            ts(b"1970-01-01 00:00:00.5-05:30", true),
            Some(19_800_500_000)
        );
        assert_eq!(ts(b"1999-12-31 23:59:59", false), Some(946_684_799_000_000));
        // Year 1 BC is year 0: the day before 0001-01-01 (-62135596800 s).
        assert_eq!(
            ts(b"0001-01-01 00:00:00+00", true),
            Some(-62_135_596_800_000_000)
        );
        assert_eq!(
            ts(b"0001-12-31 00:00:00+00 BC", true),
            Some(-62_135_683_200_000_000)
        );
        assert_eq!(
            ts(b"4713-01-01 00:00:00+00 BC", true),
            Some(days_from_civil(-4712, 1, 1) * DAY_US)
        );
        assert_eq!(
            ts(b"200000-12-31 23:59:59.999999", false),
            Some(days_from_civil(200_000, 12, 31) * DAY_US + 86_399_999_999)
        );
        // PostgreSQL's last timestamp does not fit µs since 1970 in 64 bits.
        assert_eq!(
            parse_timestamp(b"294276-12-31 23:59:59.999999", false),
            Some(Err(OUT_OF_RANGE))
        );
        assert_eq!(ts(b"2024-01-01 00:00:00", true), None);
        assert_eq!(ts(b"2024-01-01 00:00:00+00", false), None);
        assert_eq!(ts(b"2024-13-01 00:00:00+00", true), None);
        assert_eq!(ts(b"2024-01-01T00:00:00+00", true), None);
    }

    #[test]
    fn floats_uuids_ints_and_bytea() {
        assert!(parse_float(b"NaN").is_some_and(f64::is_nan));
        assert_eq!(parse_float(b"-Infinity"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_float(b"1e+308"), Some(1e308));
        assert_eq!(parse_float(b"inf"), None);
        assert_eq!(parse_int(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_int(b"9223372036854775808"), None);
        assert_eq!(parse_int(b"-"), None);
        assert_eq!(
            parse_uuid(b"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11").map(|u| u[0]),
            Some(0xa0)
        );
        assert_eq!(parse_uuid(b"a0eebc99-9c0b"), None);
        let mut b = Vec::new();
        parse_bytea(br"\x00ff5c", &mut b).unwrap();
        assert_eq!(b, vec![0, 255, 0x5c]);
        b.clear();
        parse_bytea(br"a\000\\", &mut b).unwrap();
        assert_eq!(b, vec![b'a', 0, b'\\']);
        assert!(parse_bytea(br"\x0", &mut Vec::new()).is_none());
    }

    #[test]
    fn decodes_lines_into_typed_columns_and_stops_at_the_terminator() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64),
            Field::new("s", DataType::Text),
            Field::new("f", DataType::Float64),
        ]));
        let mut d = CopyDecoder::new(
            schema,
            vec![Some(0), Some(1), None, Some(2)],
            vec![FieldKind::Int(64), FieldKind::Text, FieldKind::Float64],
            10,
        );
        let data = b"1\ta\\tb\tx\t1.5\n2\t\\N\tx\t\\N\n3\t\\\\N\tx\tNaN\n\\.\n\n4\tz\tx\t1\n";
        let used = d.decode(data).unwrap();
        assert!(d.finished());
        assert!(used < data.len());
        let b = d.take_batch().unwrap();
        assert_eq!(b.len(), 3);
        assert_eq!(
            b.row(0),
            vec![
                ValueRef::Int(1),
                ValueRef::Str("a\tb"),
                ValueRef::Float(1.5)
            ]
        );
        assert_eq!(
            b.row(1),
            vec![ValueRef::Int(2), ValueRef::Null, ValueRef::Null]
        );
        assert_eq!(b.row(2)[1], ValueRef::Str("\\N"));
    }

    #[test]
    fn a_bad_row_names_its_row_byte_and_column_and_keeps_columns_aligned() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64),
            Field::new("v", DataType::Int32),
        ]));
        let mut d = CopyDecoder::new(
            schema,
            vec![Some(0), Some(1)],
            vec![FieldKind::Int(64), FieldKind::Int(32)],
            10,
        );
        let used = d.decode(b"1\t2\n").unwrap();
        assert_eq!(used, 4);
        let e = d.decode(b"2\t3000000000\n").unwrap_err();
        assert_eq!(e.row, 2);
        assert_eq!(e.byte, 4);
        assert!(e.message.contains("column `v`"), "{}", e.message);
        let e = d.decode(b"2\t3\t4\n").unwrap_err();
        assert!(e.message.contains("3 fields"), "{}", e.message);
        let e = d.decode(b"2\n").unwrap_err();
        assert!(e.message.contains("1 fields"), "{}", e.message);
        assert_eq!(d.take_batch().unwrap().len(), 1);
    }

    #[test]
    fn batches_of_large_values_are_cut_by_bytes() {
        let schema = Arc::new(Schema::new(vec![Field::new("doc", DataType::Text)]));
        let mut d = CopyDecoder::new(schema, vec![Some(0)], vec![FieldKind::Text], 16_384);
        let mut data = Vec::new();
        for _ in 0..40 {
            data.extend(std::iter::repeat_n(b'x', 1 << 20));
            data.push(b'\n');
        }
        data.extend_from_slice(b"\\.\n");
        let mut at = 0;
        let mut sizes = Vec::new();
        while !d.finished() {
            at += d.decode(&data[at..]).unwrap();
            sizes.extend(d.take_batch().map(|b| b.len()));
        }
        assert_eq!(sizes, [16, 16, 8]);
    }
}
