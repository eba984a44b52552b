//! Our PostgreSQL binary COPY codec: decodes `COPY … TO STDOUT (FORMAT binary)` straight into
//! columns and encodes columns straight into `COPY … FROM STDIN (FORMAT binary)`.
//!
//! The row-at-a-time wrappers of tokio-postgres build a `Row` per tuple; here a tuple is a
//! handful of length-prefixed fields appended to typed vectors, with no per-row allocation.
//! Format: header `PGCOPY\n\377\r\n\0`, i32 flags, i32 extension length; per tuple i16 field
//! count, per field i32 length (−1 = NULL) and bytes; trailer i16 −1. Big-endian.

use std::sync::Arc;

use tsmigrate_core::{
    Batch, Column, ColumnData, DataType, RowError, Schema, StrBuf, TimeUnit, MAX_BATCH_BYTES,
};

/// The 11-byte signature opening every binary COPY stream.
pub const SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";

/// Microseconds between 1970-01-01 and PostgreSQL's epoch 2000-01-01.
const PG_EPOCH_OFFSET_US: i64 = 946_684_800_000_000;
/// Lowest timestamp PostgreSQL stores (4714-11-24 BC), µs since 2000.
const PG_MIN_TS_US: i64 = -211_813_488_000_000_000;
/// One past the highest timestamp PostgreSQL stores (294277-01-01), µs since 2000.
const PG_END_TS_US: i64 = 9_223_371_331_200_000_000;

/// PostgreSQL wire types the codec reads and writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PgType {
    /// boolean
    Bool,
    /// smallint
    Int2,
    /// integer
    Int4,
    /// bigint
    Int8,
    /// real
    Float4,
    /// double precision
    Float8,
    /// numeric
    Numeric,
    /// text, varchar, char, name
    Text,
    /// json (text on the wire)
    Json,
    /// jsonb (version byte 1 + text)
    Jsonb,
    /// timestamp with time zone
    Timestamptz,
    /// timestamp without time zone (taken as UTC)
    Timestamp,
    /// uuid
    Uuid,
    /// bytea
    Bytea,
}

impl PgType {
    /// The wire type of a catalog type name (`pg_type.typname`), if the codec handles it.
    pub fn from_typname(name: &str) -> Option<PgType> {
        Some(match name {
            "bool" => PgType::Bool,
            "int2" => PgType::Int2,
            "int4" => PgType::Int4,
            "int8" => PgType::Int8,
            "float4" => PgType::Float4,
            "float8" => PgType::Float8,
            "numeric" => PgType::Numeric,
            "text" | "varchar" | "bpchar" | "name" => PgType::Text,
            "json" => PgType::Json,
            "jsonb" => PgType::Jsonb,
            "timestamptz" => PgType::Timestamptz,
            "timestamp" => PgType::Timestamp,
            "uuid" => PgType::Uuid,
            "bytea" => PgType::Bytea,
            _ => return None,
        })
    }

    /// The wire type a table created for logical type `dt` gets (see [`DataType::pg_name`]).
    pub fn for_dtype(dt: DataType) -> PgType {
        match dt {
            DataType::Bool => PgType::Bool,
            DataType::Int16 => PgType::Int2,
            DataType::Int32 => PgType::Int4,
            DataType::Int64 => PgType::Int8,
            DataType::Float32 => PgType::Float4,
            DataType::Float64 => PgType::Float8,
            DataType::Numeric => PgType::Numeric,
            DataType::Text => PgType::Text,
            DataType::Json => PgType::Jsonb,
            DataType::Timestamp(_) => PgType::Timestamptz,
            DataType::Uuid => PgType::Uuid,
            DataType::Bytes => PgType::Bytea,
        }
    }

    /// The logical type values of this wire type are held in.
    pub fn dtype(self) -> DataType {
        match self {
            PgType::Bool => DataType::Bool,
            PgType::Int2 => DataType::Int16,
            PgType::Int4 => DataType::Int32,
            PgType::Int8 => DataType::Int64,
            PgType::Float4 => DataType::Float32,
            PgType::Float8 => DataType::Float64,
            PgType::Numeric => DataType::Numeric,
            PgType::Text => DataType::Text,
            PgType::Json | PgType::Jsonb => DataType::Json,
            PgType::Timestamptz | PgType::Timestamp => DataType::Timestamp(TimeUnit::Micros),
            PgType::Uuid => DataType::Uuid,
            PgType::Bytea => DataType::Bytes,
        }
    }
}

// ------------------------------------------------------------------------------------------
// Decoding
// ------------------------------------------------------------------------------------------

/// Incremental decoder of a binary COPY stream into batches.
pub struct CopyDecoder {
    schema: Arc<Schema>,
    types: Vec<PgType>,
    batch_rows: usize,
    columns: Vec<Column>,
    rows: usize,
    /// Bytes of the tuples in `columns` (cut at [`MAX_BATCH_BYTES`]).
    bytes: usize,
    pending: Vec<u8>,
    header_done: bool,
    finished: bool,
    /// Bytes of the stream consumed so far (for error messages).
    offset: u64,
    scratch: String,
}

impl CopyDecoder {
    /// A decoder for tuples of `types`, producing batches of `batch_rows` rows with `schema`
    /// (whose field types must be the types' [`PgType::dtype`]).
    pub fn new(schema: Arc<Schema>, types: Vec<PgType>, batch_rows: usize) -> CopyDecoder {
        let batch_rows = batch_rows.max(1);
        let columns = fresh_columns(&types, batch_rows);
        CopyDecoder {
            schema,
            types,
            batch_rows,
            columns,
            rows: 0,
            bytes: 0,
            pending: Vec::new(),
            header_done: false,
            finished: false,
            offset: 0,
            scratch: String::new(),
        }
    }

    /// Decodes one chunk of the stream, appending every completed batch to `out`.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<Batch>) -> Result<(), String> {
        if self.pending.is_empty() {
            let used = self.parse(chunk, out)?;
            self.pending.extend_from_slice(&chunk[used..]);
        } else {
            let mut buf = std::mem::take(&mut self.pending);
            buf.extend_from_slice(chunk);
            let used = self.parse(&buf, out)?;
            buf.drain(..used);
            self.pending = buf;
        }
        Ok(())
    }

    /// Ends the stream: returns the last, partial batch. Fails when the stream stopped in the
    /// middle of a tuple or without its trailer.
    pub fn finish(mut self) -> Result<Option<Batch>, String> {
        if !self.finished {
            return Err(format!(
                "COPY stream ended at byte {} without its end marker ({} bytes of an unfinished tuple)",
                self.offset,
                self.pending.len()
            ));
        }
        if !self.pending.is_empty() {
            return Err(format!(
                "{} unexpected bytes after the COPY end marker",
                self.pending.len()
            ));
        }
        self.take_batch().map(|b| (!b.is_empty()).then_some(b))
    }

    /// Rows decoded into the current, not yet emitted batch.
    pub fn buffered_rows(&self) -> usize {
        self.rows
    }

    fn take_batch(&mut self) -> Result<Batch, String> {
        let cols = std::mem::replace(
            &mut self.columns,
            fresh_columns(&self.types, self.batch_rows),
        );
        self.rows = 0;
        self.bytes = 0;
        Batch::new(
            self.schema.clone(),
            cols.into_iter().map(Arc::new).collect(),
        )
        .ok_or_else(|| "internal error: decoded columns do not match the schema".to_string())
    }

    /// Parses as many whole items as `buf` holds; returns the bytes consumed.
    fn parse(&mut self, buf: &[u8], out: &mut Vec<Batch>) -> Result<usize, String> {
        let mut pos = 0;
        if !self.header_done {
            if buf.len() < 19 {
                return Ok(0);
            }
            if &buf[..11] != SIGNATURE {
                return Err("not a binary COPY stream (bad signature)".into());
            }
            let ext = be_i32(&buf[15..19]);
            if ext < 0 {
                return Err("bad COPY header extension length".into());
            }
            let need = 19 + ext as usize;
            if buf.len() < need {
                return Ok(0);
            }
            pos = need;
            self.header_done = true;
            self.offset += need as u64;
        }
        let nfields = self.types.len();
        while pos + 2 <= buf.len() {
            if self.finished {
                return Err(format!(
                    "data after the COPY end marker at byte {}",
                    self.offset
                ));
            }
            let count = be_i16(&buf[pos..pos + 2]);
            if count == -1 {
                self.finished = true;
                pos += 2;
                self.offset += 2;
                continue;
            }
            if count as usize != nfields {
                return Err(format!(
                    "tuple at byte {} has {count} fields, expected {nfields}",
                    self.offset
                ));
            }
            // First pass: is the whole tuple here?
            let mut p = pos + 2;
            let mut complete = true;
            for _ in 0..nfields {
                if p + 4 > buf.len() {
                    complete = false;
                    break;
                }
                let len = be_i32(&buf[p..p + 4]);
                p += 4;
                if len > 0 {
                    p += len as usize;
                }
                if p > buf.len() {
                    complete = false;
                    break;
                }
            }
            if !complete {
                break;
            }
            // Second pass: decode into the columns.
            let mut p = pos + 2;
            for f in 0..nfields {
                let len = be_i32(&buf[p..p + 4]);
                p += 4;
                if len < 0 {
                    self.columns[f].push_null();
                    continue;
                }
                let data = &buf[p..p + len as usize];
                p += len as usize;
                if let Err(e) =
                    decode_field(self.types[f], data, &mut self.columns[f], &mut self.scratch)
                {
                    return Err(format!(
                        "column `{}` of the tuple at byte {}: {e}",
                        self.schema
                            .fields
                            .get(f)
                            .map(|x| x.name.as_str())
                            .unwrap_or("?"),
                        self.offset
                    ));
                }
            }
            self.offset += (p - pos) as u64;
            self.bytes += p - pos;
            pos = p;
            self.rows += 1;
            if self.rows >= self.batch_rows || self.bytes >= MAX_BATCH_BYTES {
                out.push(self.take_batch()?);
            }
        }
        Ok(pos)
    }
}

fn fresh_columns(types: &[PgType], rows: usize) -> Vec<Column> {
    types
        .iter()
        .map(|t| Column::with_capacity(t.dtype(), rows))
        .collect()
}

#[inline]
fn be_i16(b: &[u8]) -> i16 {
    i16::from_be_bytes([b[0], b[1]])
}

#[inline]
fn be_i32(b: &[u8]) -> i32 {
    i32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn fixed<const N: usize>(data: &[u8], what: &str) -> Result<[u8; N], String> {
    data.try_into()
        .map_err(|_| format!("{what} value has {} bytes, expected {N}", data.len()))
}

fn decode_field(
    t: PgType,
    data: &[u8],
    col: &mut Column,
    scratch: &mut String,
) -> Result<(), String> {
    match t {
        PgType::Bool => col.push_bool(fixed::<1>(data, "boolean")?[0] != 0),
        PgType::Int2 => col.push_i64(i16::from_be_bytes(fixed(data, "smallint")?) as i64),
        PgType::Int4 => col.push_i64(i32::from_be_bytes(fixed(data, "integer")?) as i64),
        PgType::Int8 => col.push_i64(i64::from_be_bytes(fixed(data, "bigint")?)),
        PgType::Float4 => col.push_f64(f32::from_be_bytes(fixed(data, "real")?) as f64),
        PgType::Float8 => col.push_f64(f64::from_be_bytes(fixed(data, "double precision")?)),
        PgType::Text | PgType::Json => {
            let s = std::str::from_utf8(data).map_err(|e| format!("text is not UTF-8: {e}"))?;
            col.push_str(s);
        }
        PgType::Jsonb => {
            let (version, body) = data.split_first().ok_or("empty jsonb value")?;
            if *version != 1 {
                return Err(format!("unknown jsonb version {version}"));
            }
            let s = std::str::from_utf8(body).map_err(|e| format!("jsonb is not UTF-8: {e}"))?;
            col.push_str(s);
        }
        PgType::Timestamptz | PgType::Timestamp => {
            let us = i64::from_be_bytes(fixed(data, "timestamp")?);
            if us == i64::MAX || us == i64::MIN {
                return Err(
                    "timestamp 'infinity' cannot be migrated; filter it out or map it to a value"
                        .into(),
                );
            }
            let unix = us
                .checked_add(PG_EPOCH_OFFSET_US)
                .ok_or("timestamp out of range")?;
            col.push_i64(unix);
        }
        PgType::Uuid => col.push_uuid(fixed(data, "uuid")?),
        PgType::Bytea => col.push_bytes(data),
        PgType::Numeric => {
            scratch.clear();
            numeric_to_text(data, scratch)?;
            col.push_str(scratch);
        }
    }
    Ok(())
}

/// Decodes PostgreSQL's binary numeric into decimal text.
pub fn numeric_to_text(data: &[u8], out: &mut String) -> Result<(), String> {
    if data.len() < 8 {
        return Err("numeric value too short".into());
    }
    let ndigits = be_i16(&data[0..2]) as i32;
    let weight = be_i16(&data[2..4]) as i32;
    let sign = u16::from_be_bytes([data[4], data[5]]);
    let dscale = u16::from_be_bytes([data[6], data[7]]) as i32;
    match sign {
        0xC000 => {
            out.push_str("NaN");
            return Ok(());
        }
        0xD000 => {
            out.push_str("Infinity");
            return Ok(());
        }
        0xF000 => {
            out.push_str("-Infinity");
            return Ok(());
        }
        0x0000 | 0x4000 => {}
        _ => return Err(format!("bad numeric sign {sign:#x}")),
    }
    if ndigits < 0 || data.len() != 8 + 2 * ndigits as usize {
        return Err("numeric length does not match its digit count".into());
    }
    let digit = |j: i32| -> i32 {
        if j >= 0 && j < ndigits {
            be_i16(&data[8 + 2 * j as usize..10 + 2 * j as usize]) as i32
        } else {
            0
        }
    };
    if sign == 0x4000 && ndigits > 0 {
        out.push('-');
    }
    if weight < 0 {
        out.push('0');
    } else {
        for p in (0..=weight).rev() {
            let d = digit(weight - p);
            if p == weight {
                out.push_str(&d.to_string());
            } else {
                out.push_str(&format!("{d:04}"));
            }
        }
    }
    if dscale > 0 {
        out.push('.');
        let mut written = 0;
        let mut p = 1;
        while written < dscale {
            let s = format!("{:04}", digit(weight + p));
            for ch in s.chars() {
                if written < dscale {
                    out.push(ch);
                    written += 1;
                }
            }
            p += 1;
        }
    }
    Ok(())
}

/// Encodes decimal text (`-12.5`, `1.5e-05`) as PostgreSQL's binary numeric.
pub fn text_to_numeric(s: &str, out: &mut Vec<u8>) -> Result<(), String> {
    let t = s.trim();
    // NaN and (PostgreSQL 14 and later) ±Infinity: no digits, a special sign word.
    let special = match t.to_ascii_lowercase().as_str() {
        "nan" => Some(0xC000u16),
        "infinity" | "+infinity" => Some(0xD000),
        "-infinity" => Some(0xF000),
        _ => None,
    };
    if let Some(sign) = special {
        out.extend_from_slice(&0i16.to_be_bytes());
        out.extend_from_slice(&0i16.to_be_bytes());
        out.extend_from_slice(&sign.to_be_bytes());
        out.extend_from_slice(&0u16.to_be_bytes());
        return Ok(());
    }
    let (neg, body) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let (mantissa, exp) = match body.find(['e', 'E']) {
        Some(p) => (
            &body[..p],
            body[p + 1..]
                .parse::<i64>()
                .map_err(|_| format!("{s:?} is not a number"))?,
        ),
        None => (body, 0),
    };
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int_part.is_empty() && frac_part.is_empty()
        || !int_part
            .bytes()
            .chain(frac_part.bytes())
            .all(|b| b.is_ascii_digit())
    {
        return Err(format!("{s:?} is not a number"));
    }
    if exp.abs() > 100_000 {
        return Err(format!("{s:?} is out of the numeric range"));
    }
    let mut digits: Vec<u8> = int_part
        .bytes()
        .chain(frac_part.bytes())
        .map(|b| b - b'0')
        .collect();
    let mut dp = int_part.len() as i64 + exp; // decimal point position within `digits`
    let dscale = (frac_part.len() as i64 - exp).max(0);
    let lead = digits.iter().take_while(|d| **d == 0).count();
    digits.drain(..lead);
    dp -= lead as i64;
    while digits.last() == Some(&0) {
        digits.pop();
    }
    if dscale > 0x3FFF {
        return Err(format!("{s:?} has too many fractional digits for numeric"));
    }
    if digits.is_empty() {
        out.extend_from_slice(&0i16.to_be_bytes());
        out.extend_from_slice(&0i16.to_be_bytes());
        out.extend_from_slice(&0u16.to_be_bytes());
        out.extend_from_slice(&(dscale as u16).to_be_bytes());
        return Ok(());
    }
    let e0 = dp - 1; // decimal exponent of the first digit
    let weight = e0.div_euclid(4);
    let pad_left = (4 * weight + 3 - e0) as usize;
    let mut padded = vec![0u8; pad_left];
    padded.extend_from_slice(&digits);
    while !padded.len().is_multiple_of(4) {
        padded.push(0);
    }
    let groups: Vec<i16> = padded
        .chunks(4)
        .map(|c| c.iter().fold(0i16, |acc, d| acc * 10 + *d as i16))
        .collect();
    let weight = i16::try_from(weight).map_err(|_| format!("{s:?} is out of the numeric range"))?;
    let ndigits = i16::try_from(groups.len()).map_err(|_| format!("{s:?} has too many digits"))?;
    out.extend_from_slice(&ndigits.to_be_bytes());
    out.extend_from_slice(&weight.to_be_bytes());
    out.extend_from_slice(&(if neg { 0x4000u16 } else { 0 }).to_be_bytes());
    out.extend_from_slice(&(dscale as u16).to_be_bytes());
    for g in groups {
        out.extend_from_slice(&g.to_be_bytes());
    }
    Ok(())
}

// ------------------------------------------------------------------------------------------
// Encoding
// ------------------------------------------------------------------------------------------

/// Writes the binary COPY header.
pub fn write_header(buf: &mut Vec<u8>) {
    buf.extend_from_slice(SIGNATURE);
    buf.extend_from_slice(&0i32.to_be_bytes());
    buf.extend_from_slice(&0i32.to_be_bytes());
}

/// Writes the binary COPY trailer.
pub fn write_trailer(buf: &mut Vec<u8>) {
    buf.extend_from_slice(&(-1i16).to_be_bytes());
}

/// Encodes every row of `batch` as binary COPY tuples for columns of `types`.
///
/// The batch's columns must already hold each type's [`PgType::dtype`] (the engine converts
/// them). Rows PostgreSQL would refuse (a NUL byte in text, a timestamp outside PostgreSQL's
/// range) are left out and returned as errors; the other rows are appended to `buf`.
pub fn encode_batch(batch: &Batch, types: &[PgType], buf: &mut Vec<u8>) -> Vec<RowError> {
    let mut errors = Vec::new();
    let encoders: Option<Vec<FieldEncoder>> = batch
        .columns
        .iter()
        .zip(types)
        .map(|(c, t)| FieldEncoder::new(c, *t))
        .collect();
    let encoders = match encoders {
        Some(e) if e.len() == types.len() && batch.columns.len() == types.len() => e,
        _ => {
            errors.push(RowError {
                row: 0,
                column: None,
                reason: format!(
                    "internal error: columns ({}) do not match the target's types ({types:?})",
                    batch.schema.names()
                ),
            });
            return errors;
        }
    };
    let ncols = (types.len() as i16).to_be_bytes();
    let mut scratch = Vec::new();
    for row in 0..batch.len() {
        let start = buf.len();
        buf.extend_from_slice(&ncols);
        for (c, enc) in encoders.iter().enumerate() {
            if let Err(reason) = enc.encode(row, buf, &mut scratch) {
                buf.truncate(start);
                errors.push(RowError {
                    row,
                    column: batch.schema.fields.get(c).map(|f| f.name.clone()),
                    reason,
                });
                break;
            }
        }
    }
    errors
}

/// One column's values resolved to a typed slice once per batch, so encoding a value is a
/// single match and an append.
struct FieldEncoder<'a> {
    valid: Option<&'a [bool]>,
    kind: FieldKind<'a>,
}

enum FieldKind<'a> {
    Bool(&'a [bool]),
    Int8(&'a [i64]),
    Int4(&'a [i64]),
    Int2(&'a [i64]),
    Float8(&'a [f64]),
    Float4(&'a [f64]),
    Timestamp(&'a [i64]),
    Uuid(&'a [[u8; 16]]),
    Text(&'a StrBuf),
    Jsonb(&'a StrBuf),
    Bytea(&'a StrBuf),
    Numeric(&'a StrBuf),
}

impl<'a> FieldEncoder<'a> {
    fn new(col: &'a Column, t: PgType) -> Option<FieldEncoder<'a>> {
        let kind = match (col.data(), t) {
            (ColumnData::Bool(v), PgType::Bool) => FieldKind::Bool(v),
            (ColumnData::Int(v), PgType::Int8) => FieldKind::Int8(v),
            (ColumnData::Int(v), PgType::Int4) => FieldKind::Int4(v),
            (ColumnData::Int(v), PgType::Int2) => FieldKind::Int2(v),
            (ColumnData::Float(v), PgType::Float8) => FieldKind::Float8(v),
            (ColumnData::Float(v), PgType::Float4) => FieldKind::Float4(v),
            (ColumnData::Int(v), PgType::Timestamptz | PgType::Timestamp) => {
                FieldKind::Timestamp(v)
            }
            (ColumnData::Uuid(v), PgType::Uuid) => FieldKind::Uuid(v),
            (ColumnData::Str(v), PgType::Text | PgType::Json) => FieldKind::Text(v),
            (ColumnData::Str(v), PgType::Jsonb) => FieldKind::Jsonb(v),
            (ColumnData::Str(v), PgType::Bytea) => FieldKind::Bytea(v),
            (ColumnData::Str(v), PgType::Numeric) => FieldKind::Numeric(v),
            _ => return None,
        };
        Some(FieldEncoder {
            valid: col.validity(),
            kind,
        })
    }

    #[inline]
    fn encode(&self, row: usize, buf: &mut Vec<u8>, scratch: &mut Vec<u8>) -> Result<(), String> {
        if let Some(v) = self.valid {
            if !v.get(row).copied().unwrap_or(false) {
                buf.extend_from_slice(&(-1i32).to_be_bytes());
                return Ok(());
            }
        }
        let missing = || "internal error: row out of range".to_string();
        match &self.kind {
            FieldKind::Bool(v) => put_field(buf, &[*v.get(row).ok_or_else(missing)? as u8]),
            FieldKind::Int8(v) => put_field(buf, &v.get(row).ok_or_else(missing)?.to_be_bytes()),
            FieldKind::Int4(v) => {
                let x = *v.get(row).ok_or_else(missing)?;
                let x = i32::try_from(x).map_err(|_| format!("{x} is out of range for integer"))?;
                put_field(buf, &x.to_be_bytes())
            }
            FieldKind::Int2(v) => {
                let x = *v.get(row).ok_or_else(missing)?;
                let x =
                    i16::try_from(x).map_err(|_| format!("{x} is out of range for smallint"))?;
                put_field(buf, &x.to_be_bytes())
            }
            FieldKind::Float8(v) => put_field(buf, &v.get(row).ok_or_else(missing)?.to_be_bytes()),
            FieldKind::Float4(v) => put_field(
                buf,
                &(*v.get(row).ok_or_else(missing)? as f32).to_be_bytes(),
            ),
            FieldKind::Timestamp(v) => {
                let us = *v.get(row).ok_or_else(missing)?;
                let pg = us
                    .checked_sub(PG_EPOCH_OFFSET_US)
                    .filter(|x| (PG_MIN_TS_US..PG_END_TS_US).contains(x))
                    .ok_or_else(|| {
                        format!("timestamp {us} us since 1970 is outside PostgreSQL's range (4714 BC to 294276 AD)")
                    })?;
                put_field(buf, &pg.to_be_bytes())
            }
            FieldKind::Uuid(v) => put_field(buf, v.get(row).ok_or_else(missing)?),
            FieldKind::Text(v) => {
                let s = v.get(row);
                if s.contains(&0) {
                    return Err(
                        "text contains a NUL (\\0) byte, which PostgreSQL cannot store".into(),
                    );
                }
                put_field(buf, s)
            }
            FieldKind::Jsonb(v) => {
                let s = v.get(row);
                if s.contains(&0) {
                    return Err(
                        "JSON contains a NUL (\\0) byte, which PostgreSQL cannot store".into(),
                    );
                }
                buf.extend_from_slice(&(s.len() as i32 + 1).to_be_bytes());
                buf.push(1);
                buf.extend_from_slice(s);
            }
            FieldKind::Bytea(v) => put_field(buf, v.get(row)),
            FieldKind::Numeric(v) => {
                let s = std::str::from_utf8(v.get(row))
                    .map_err(|_| "numeric text is not UTF-8".to_string())?;
                scratch.clear();
                text_to_numeric(s, scratch)?;
                put_field(buf, scratch)
            }
        }
        Ok(())
    }
}

#[inline]
fn put_field(buf: &mut Vec<u8>, bytes: &[u8]) {
    buf.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
    buf.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;
    use tsmigrate_core::{Field, ValueRef};

    fn roundtrip_numeric(s: &str) -> String {
        let mut b = Vec::new();
        assert!(text_to_numeric(s, &mut b).is_ok(), "{s}");
        let mut out = String::new();
        assert!(numeric_to_text(&b, &mut out).is_ok());
        out
    }

    #[test]
    fn numeric_roundtrips() {
        assert_eq!(roundtrip_numeric("0"), "0");
        assert_eq!(roundtrip_numeric("12345.678"), "12345.678");
        assert_eq!(roundtrip_numeric("-0.00012"), "-0.00012");
        assert_eq!(roundtrip_numeric("1.50"), "1.50");
        assert_eq!(roundtrip_numeric("1.5e-05"), "0.000015");
        assert_eq!(roundtrip_numeric("1e+20"), "100000000000000000000");
        assert_eq!(
            roundtrip_numeric("9223372036854775807"),
            "9223372036854775807"
        );
        assert_eq!(roundtrip_numeric("0.000"), "0.000");
        assert_eq!(roundtrip_numeric("nan"), "NaN");
        assert_eq!(roundtrip_numeric("Infinity"), "Infinity");
        assert_eq!(roundtrip_numeric("-Infinity"), "-Infinity");
    }

    #[test]
    fn encode_then_decode_in_small_chunks() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int64),
            Field::new("b", DataType::Text),
            Field::new("t", DataType::Timestamp(TimeUnit::Micros)),
        ]));
        let mut a = Column::with_capacity(DataType::Int64, 3);
        let mut b = Column::with_capacity(DataType::Text, 3);
        let mut t = Column::with_capacity(DataType::Timestamp(TimeUnit::Micros), 3);
        for (i, s) in ["x\ty", "naïve \u{1F600}", "bad\0nul"].iter().enumerate() {
            a.push_i64(i64::MAX - i as i64);
            b.push_str(s);
            t.push_i64(-1 - i as i64);
        }
        a.push_null();
        b.push_null();
        t.push_null();
        let batch = Batch::new(schema.clone(), vec![Arc::new(a), Arc::new(b), Arc::new(t)]);
        let batch = match batch {
            Some(b) => b,
            None => panic!("batch"),
        };
        let types = [PgType::Int8, PgType::Text, PgType::Timestamptz];
        let mut buf = Vec::new();
        write_header(&mut buf);
        let errs = encode_batch(&batch, &types, &mut buf);
        write_trailer(&mut buf);
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].row, 2);
        let mut dec = CopyDecoder::new(schema, types.to_vec(), 2);
        let mut out = Vec::new();
        for chunk in buf.chunks(3) {
            assert!(dec.feed(chunk, &mut out).is_ok());
        }
        let last = dec.finish().ok().flatten();
        assert_eq!(out.len(), 1);
        assert_eq!(
            out[0].row(0),
            vec![
                ValueRef::Int(i64::MAX),
                ValueRef::Str("x\ty"),
                ValueRef::Timestamp(-1, TimeUnit::Micros)
            ]
        );
        assert_eq!(out[0].row(1)[1], ValueRef::Str("naïve \u{1F600}"));
        let last = match last {
            Some(l) => l,
            None => panic!("last batch"),
        };
        assert_eq!(
            last.row(0),
            vec![ValueRef::Null, ValueRef::Null, ValueRef::Null]
        );
    }

    #[test]
    fn batches_of_large_values_are_cut_by_bytes() {
        let schema = Arc::new(Schema::new(vec![Field::new("doc", DataType::Text)]));
        let value = "x".repeat(1 << 20);
        let mut buf = Vec::new();
        write_header(&mut buf);
        for _ in 0..40 {
            buf.extend_from_slice(&1i16.to_be_bytes());
            buf.extend_from_slice(&(value.len() as i32).to_be_bytes());
            buf.extend_from_slice(value.as_bytes());
        }
        write_trailer(&mut buf);
        let mut dec = CopyDecoder::new(schema, vec![PgType::Text], 16_384);
        let mut out = Vec::new();
        for chunk in buf.chunks(65_536) {
            dec.feed(chunk, &mut out).unwrap_or_else(|e| panic!("{e}"));
        }
        out.extend(dec.finish().unwrap_or_else(|e| panic!("{e}")));
        let sizes: Vec<usize> = out.iter().map(Batch::len).collect();
        // Each 1 MiB value comes with 6 bytes of framing: the 16th crosses 16 MiB.
        assert_eq!(sizes, [16, 16, 8]);
        assert!(out
            .iter()
            .all(|b| b.byte_size() <= MAX_BATCH_BYTES + (2 << 20)));
    }

    #[test]
    fn truncated_stream_is_an_error() {
        let schema = Arc::new(Schema::new(vec![Field::new("a", DataType::Int64)]));
        let mut buf = Vec::new();
        write_header(&mut buf);
        buf.extend_from_slice(&1i16.to_be_bytes());
        buf.extend_from_slice(&8i32.to_be_bytes());
        buf.extend_from_slice(&[0, 0, 0]);
        let mut dec = CopyDecoder::new(schema, vec![PgType::Int8], 10);
        let mut out = Vec::new();
        assert!(dec.feed(&buf, &mut out).is_ok());
        let e = dec.finish().err().unwrap_or_default();
        assert!(e.contains("without its end marker"), "{e}");
    }
}
