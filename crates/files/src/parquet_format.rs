//! Parquet files: our logical types as Parquet columns, and back.
//!
//! Written with the `parquet` crate's column API (no Arrow layer: it costs a minute of build
//! time on two cores and would copy every batch once more). Every column is a flat OPTIONAL
//! column with the logical type readers expect:
//!
//! | tsmigrate          | Parquet physical         | logical type                      |
//! |--------------------|--------------------------|-----------------------------------|
//! | bool               | BOOLEAN                  |                                   |
//! | int2 / int4        | INT32                    | INTEGER(16 / 32, signed)          |
//! | int8               | INT64                    | INTEGER(64, signed)               |
//! | float4 / float8    | FLOAT / DOUBLE           |                                   |
//! | numeric            | BYTE_ARRAY               | STRING (exact decimal text)       |
//! | text               | BYTE_ARRAY               | STRING                            |
//! | json               | BYTE_ARRAY               | JSON                              |
//! | timestamp[s]       | INT64                    | TIMESTAMP(MILLIS, UTC), × 1000    |
//! | timestamp[ms/us/ns]| INT64                    | TIMESTAMP(unit, UTC)              |
//! | uuid               | FIXED_LEN_BYTE_ARRAY(16) | UUID                              |
//! | bytes              | BYTE_ARRAY               |                                   |
//!
//! `numeric` is text because tsmigrate's numeric has no fixed precision and scale, and a
//! Parquet DECIMAL needs both; the file's key-value metadata `tsmigrate.types` records each
//! column's tsmigrate type, so tsmigrate reads the column back as numeric (other readers see a
//! string). Reading files written by others: DECIMAL columns (INT32, INT64, fixed or variable
//! bytes up to 16) become numeric text, DATE a timestamp at midnight, INT96 (legacy Spark and
//! Impala timestamps) nanoseconds, unsigned 64-bit integers numeric text; nested columns
//! (lists, maps, structs) are refused by name.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use parquet::basic::{
    Compression, LogicalType, Repetition, TimeUnit as PqUnit, Type as Physical, ZstdLevel,
};
use parquet::column::reader::ColumnReader;
use parquet::data_type::{
    BoolType, ByteArray, ByteArrayType, DoubleType, FixedLenByteArray, FixedLenByteArrayType,
    FloatType, Int32Type, Int64Type,
};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::{ColumnDescriptor, Type};
use tsmigrate_core::convert::{convert, ConvertCtx};
use tsmigrate_core::{
    Batch, Column, ColumnData, DataType, End, Field, LossyCounts, Result, RowErrors, Schema,
    TimeUnit,
};

use crate::error::{file_error, parquet_error};

/// Key of the file metadata that records each column's tsmigrate type.
const TYPES_KEY: &str = "tsmigrate.types";

/// How a Parquet file is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    /// No compression.
    None,
    /// Snappy: fast, moderate ratio; every reader has it.
    Snappy,
    /// Zstandard at level 3 (the default): a better ratio at about Snappy's speed.
    Zstd,
}

impl Codec {
    /// The codec a plan names (`none`, `snappy`, `zstd`).
    pub fn parse(name: &str) -> Result<Codec> {
        match name.to_ascii_lowercase().as_str() {
            "none" | "uncompressed" => Ok(Codec::None),
            "snappy" => Ok(Codec::Snappy),
            "zstd" => Ok(Codec::Zstd),
            _ => Err(tsmigrate_core::Error::Plan(format!(
                "[target] compression = {name:?}: use \"zstd\" (default), \"snappy\" or \"none\""
            ))),
        }
    }

    fn parquet(self) -> Compression {
        match self {
            Codec::None => Compression::UNCOMPRESSED,
            Codec::Snappy => Compression::SNAPPY,
            Codec::Zstd => Compression::ZSTD(ZstdLevel::default()),
        }
    }
}

/// The Parquet column of a field.
fn column_type(field: &Field) -> Result<Type> {
    let (physical, logical, length) = match field.dtype {
        DataType::Bool => (Physical::BOOLEAN, None, None),
        DataType::Int16 => (Physical::INT32, Some(LogicalType::integer(16, true)), None),
        DataType::Int32 => (Physical::INT32, Some(LogicalType::integer(32, true)), None),
        DataType::Int64 => (Physical::INT64, Some(LogicalType::integer(64, true)), None),
        DataType::Float32 => (Physical::FLOAT, None, None),
        DataType::Float64 => (Physical::DOUBLE, None, None),
        DataType::Numeric | DataType::Text => {
            (Physical::BYTE_ARRAY, Some(LogicalType::String), None)
        }
        DataType::Json => (Physical::BYTE_ARRAY, Some(LogicalType::Json), None),
        DataType::Bytes => (Physical::BYTE_ARRAY, None, None),
        DataType::Timestamp(unit) => {
            let unit = match unit {
                TimeUnit::Seconds | TimeUnit::Millis => PqUnit::MILLIS,
                TimeUnit::Micros => PqUnit::MICROS,
                TimeUnit::Nanos => PqUnit::NANOS,
            };
            (
                Physical::INT64,
                Some(LogicalType::timestamp(true, unit)),
                None,
            )
        }
        DataType::Uuid => (
            Physical::FIXED_LEN_BYTE_ARRAY,
            Some(LogicalType::Uuid),
            Some(16),
        ),
    };
    let mut builder = Type::primitive_type_builder(&field.name, physical)
        .with_repetition(Repetition::OPTIONAL)
        .with_logical_type(logical);
    if let Some(len) = length {
        builder = builder.with_length(len);
    }
    builder
        .build()
        .map_err(|e| parquet_error(End::Target, &format!("column `{}`", field.name), &e))
}

/// Writes batches into one Parquet file, a row group each time `row_group_rows` rows are
/// buffered (and one for the rest at [`ParquetWriter::finish`]).
pub struct ParquetWriter {
    writer: SerializedFileWriter<File>,
    fields: Vec<Field>,
    buffered: Vec<Batch>,
    buffered_rows: usize,
    row_group_rows: usize,
    path: String,
}

impl ParquetWriter {
    /// Creates `path` (truncating it) for rows of `fields`.
    pub fn create(
        path: &Path,
        fields: &[Field],
        codec: Codec,
        row_group_rows: usize,
    ) -> Result<ParquetWriter> {
        let name = path.display().to_string();
        let columns = fields
            .iter()
            .map(|f| column_type(f).map(Arc::new))
            .collect::<Result<Vec<_>>>()?;
        let schema = Type::group_type_builder("schema")
            .with_fields(columns)
            .build()
            .map_err(|e| parquet_error(End::Target, &name, &e))?;
        let types: Vec<[String; 2]> = fields
            .iter()
            .map(|f| [f.name.clone(), f.dtype.to_string()])
            .collect();
        let props = WriterProperties::builder()
            .set_compression(codec.parquet())
            .set_created_by(format!("tsmigrate {}", env!("CARGO_PKG_VERSION")))
            .set_max_row_group_row_count(Some(row_group_rows.max(1)))
            .set_key_value_metadata(Some(vec![KeyValue::new(
                TYPES_KEY.to_string(),
                serde_json::to_string(&types).unwrap_or_default(),
            )]))
            .build();
        let file = File::create(path).map_err(|e| file_error(path, e))?;
        let writer = SerializedFileWriter::new(file, Arc::new(schema), Arc::new(props))
            .map_err(|e| parquet_error(End::Target, &name, &e))?;
        Ok(ParquetWriter {
            writer,
            fields: fields.to_vec(),
            buffered: Vec::new(),
            buffered_rows: 0,
            row_group_rows: row_group_rows.max(1),
            path: name,
        })
    }

    /// Adds a batch whose columns are the writer's fields.
    pub fn write(&mut self, batch: &Batch) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        self.buffered_rows += batch.len();
        self.buffered.push(batch.clone());
        if self.buffered_rows >= self.row_group_rows {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes the buffered batches as one row group.
    fn flush(&mut self) -> Result<()> {
        if self.buffered.is_empty() {
            return Ok(());
        }
        let path = self.path.clone();
        let mut group = self
            .writer
            .next_row_group()
            .map_err(|e| parquet_error(End::Target, &path, &e))?;
        for (i, field) in self.fields.iter().enumerate() {
            let ctx = format!("{path}, column `{}`", field.name);
            let mut col = group
                .next_column()
                .map_err(|e| parquet_error(End::Target, &ctx, &e))?
                .ok_or_else(|| {
                    parquet_error(
                        End::Target,
                        &ctx,
                        &"the file schema has fewer columns than the stream",
                    )
                })?;
            for batch in &self.buffered {
                let Some(column) = batch.columns.get(i) else {
                    return Err(parquet_error(
                        End::Target,
                        &ctx,
                        &"the batch has fewer columns than the file",
                    ));
                };
                write_column(&mut col, field.dtype, column)
                    .map_err(|e| parquet_error(End::Target, &ctx, &e))?;
            }
            col.close()
                .map_err(|e| parquet_error(End::Target, &ctx, &e))?;
        }
        group
            .close()
            .map_err(|e| parquet_error(End::Target, &path, &e))?;
        self.buffered.clear();
        self.buffered_rows = 0;
        Ok(())
    }

    /// Writes what is buffered and the file's footer; returns the file's size in bytes.
    pub fn finish(mut self) -> Result<u64> {
        self.flush()?;
        let path = self.path.clone();
        let file = self
            .writer
            .into_inner()
            .map_err(|e| parquet_error(End::Target, &path, &e))?;
        file.sync_all()
            .map_err(|e| file_error(Path::new(&path), e))?;
        file.metadata()
            .map(|m| m.len())
            .map_err(|e| file_error(Path::new(&path), e))
    }
}

/// Definition levels of a column (1 = value present, 0 = NULL).
fn def_levels(column: &Column) -> Vec<i16> {
    (0..column.len())
        .map(|i| i16::from(column.is_valid(i)))
        .collect()
}

/// The present values of a column, with `f` applied to each.
fn present<T, U: Copy>(column: &Column, values: &[U], f: impl Fn(U) -> T) -> Vec<T> {
    values
        .iter()
        .enumerate()
        .filter(|(i, _)| column.is_valid(*i))
        .map(|(_, v)| f(*v))
        .collect()
}

fn write_column(
    writer: &mut parquet::file::writer::SerializedColumnWriter<'_>,
    dtype: DataType,
    column: &Column,
) -> std::result::Result<(), String> {
    let levels = def_levels(column);
    let levels = Some(levels.as_slice());
    let err = |e: parquet::errors::ParquetError| e.to_string();
    match (dtype, column.data()) {
        (DataType::Bool, ColumnData::Bool(v)) => {
            let values = present(column, v, |b| b);
            writer
                .typed::<BoolType>()
                .write_batch(&values, levels, None)
                .map_err(err)?;
        }
        (DataType::Int16 | DataType::Int32, ColumnData::Int(v)) => {
            let values = v
                .iter()
                .enumerate()
                .filter(|(i, _)| column.is_valid(*i))
                .map(|(_, x)| i32::try_from(*x).map_err(|_| format!("{x} does not fit {dtype}")))
                .collect::<std::result::Result<Vec<i32>, String>>()?;
            writer
                .typed::<Int32Type>()
                .write_batch(&values, levels, None)
                .map_err(err)?;
        }
        (DataType::Timestamp(TimeUnit::Seconds), ColumnData::Int(v)) => {
            let values = v
                .iter()
                .enumerate()
                .filter(|(i, _)| column.is_valid(*i))
                .map(|(_, x)| {
                    x.checked_mul(1000)
                        .ok_or_else(|| format!("timestamp {x} s is out of range in milliseconds"))
                })
                .collect::<std::result::Result<Vec<i64>, String>>()?;
            writer
                .typed::<Int64Type>()
                .write_batch(&values, levels, None)
                .map_err(err)?;
        }
        (DataType::Int64 | DataType::Timestamp(_), ColumnData::Int(v)) => {
            let values = present(column, v, |x| x);
            writer
                .typed::<Int64Type>()
                .write_batch(&values, levels, None)
                .map_err(err)?;
        }
        (DataType::Float32, ColumnData::Float(v)) => {
            let values = present(column, v, |x| x as f32);
            writer
                .typed::<FloatType>()
                .write_batch(&values, levels, None)
                .map_err(err)?;
        }
        (DataType::Float64, ColumnData::Float(v)) => {
            let values = present(column, v, |x| x);
            writer
                .typed::<DoubleType>()
                .write_batch(&values, levels, None)
                .map_err(err)?;
        }
        (_, ColumnData::Str(buf)) => {
            let values: Vec<ByteArray> = (0..column.len())
                .filter(|i| column.is_valid(*i))
                .map(|i| ByteArray::from(Bytes::copy_from_slice(buf.get(i))))
                .collect();
            writer
                .typed::<ByteArrayType>()
                .write_batch(&values, levels, None)
                .map_err(err)?;
        }
        (DataType::Uuid, ColumnData::Uuid(v)) => {
            let values: Vec<FixedLenByteArray> = present(column, v, |u| {
                FixedLenByteArray::from(ByteArray::from(u.to_vec()))
            });
            writer
                .typed::<FixedLenByteArrayType>()
                .write_batch(&values, levels, None)
                .map_err(err)?;
        }
        (dtype, _) => return Err(format!("a {dtype} column holds values of another type")),
    }
    Ok(())
}

/// How the values of one Parquet column become a tsmigrate column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Decode {
    /// The physical values as they are, into a column of this type.
    Plain(DataType),
    /// INT64 TIMESTAMP(MILLIS) written for a tsmigrate `timestamp[s]` column.
    MillisToSeconds,
    /// INT32 DATE: days since the epoch, as a timestamp in seconds.
    Date,
    /// A DECIMAL with this scale, as numeric text.
    Decimal(i32),
    /// UINT64, as numeric text.
    Unsigned64,
    /// INT96 legacy timestamps, as nanoseconds.
    Int96,
}

/// A column of a Parquet file as tsmigrate reads it.
#[derive(Clone, Debug)]
pub struct FileColumn {
    /// Position among the file's leaf columns.
    pub index: usize,
    /// The field it is read as.
    pub field: Field,
    decode: Decode,
}

/// The columns of a Parquet file: their tsmigrate types (from the `tsmigrate.types` metadata
/// when the file has it, else from the Parquet types). `name` names the file in errors.
pub fn file_columns(
    reader: &SerializedFileReader<File>,
    name: &str,
    end: End,
) -> Result<Vec<FileColumn>> {
    let meta = reader.metadata().file_metadata();
    let declared: Vec<[String; 2]> = meta
        .key_value_metadata()
        .and_then(|kv| kv.iter().find(|k| k.key == TYPES_KEY))
        .and_then(|k| k.value.as_deref())
        .and_then(|v| serde_json::from_str(v).ok())
        .unwrap_or_default();
    let schema = meta.schema_descr();
    let mut out = Vec::with_capacity(schema.num_columns());
    for (index, descr) in schema.columns().iter().enumerate() {
        let path = descr.path().string();
        if descr.max_rep_level() > 0 || descr.path().parts().len() > 1 {
            return Err(parquet_error(
                end,
                name,
                &format!("column `{path}` is nested (a list, map or struct field); tsmigrate reads flat columns only"),
            ));
        }
        let own = declared
            .iter()
            .find(|[n, _]| n == descr.name())
            .and_then(|[_, t]| parse_type_name(t));
        let decode = decode_of(descr, own)
            .map_err(|m| parquet_error(end, name, &format!("column `{path}`: {m}")))?;
        let dtype = match decode {
            Decode::Plain(t) => t,
            Decode::MillisToSeconds | Decode::Date => DataType::Timestamp(TimeUnit::Seconds),
            Decode::Decimal(_) | Decode::Unsigned64 => DataType::Numeric,
            Decode::Int96 => DataType::Timestamp(TimeUnit::Nanos),
        };
        out.push(FileColumn {
            index,
            field: Field::new(descr.name(), dtype),
            decode,
        });
    }
    Ok(out)
}

/// A type as [`DataType`]'s `Display` writes it (`int8`, `timestamp[ms]`, …).
pub fn parse_type_name(name: &str) -> Option<DataType> {
    let unit = |u: &str| match u {
        "s" => Some(TimeUnit::Seconds),
        "ms" => Some(TimeUnit::Millis),
        "us" => Some(TimeUnit::Micros),
        "ns" => Some(TimeUnit::Nanos),
        _ => None,
    };
    if let Some(u) = name
        .strip_prefix("timestamp[")
        .and_then(|r| r.strip_suffix(']'))
    {
        return unit(u).map(DataType::Timestamp);
    }
    match name {
        "bytes" => Some(DataType::Bytes),
        other => DataType::parse_sql(other),
    }
}

fn decode_of(
    descr: &ColumnDescriptor,
    own: Option<DataType>,
) -> std::result::Result<Decode, String> {
    let logical = descr.logical_type_ref();
    let physical = descr.physical_type();
    let unsupported = || {
        Err(format!(
            "Parquet type {physical:?} ({}) is not supported",
            logical
                .map(|l| format!("{l:?}"))
                .unwrap_or_else(|| "no logical type".into())
        ))
    };
    Ok(match physical {
        Physical::BOOLEAN => Decode::Plain(DataType::Bool),
        Physical::INT32 => match logical {
            Some(LogicalType::Decimal(d)) => Decode::Decimal(d.scale),
            Some(LogicalType::Date) => Decode::Date,
            Some(LogicalType::Integer(i)) if !i.is_signed && i.bit_width == 32 => {
                Decode::Plain(DataType::Int64)
            }
            Some(LogicalType::Integer(i)) if i.bit_width <= 16 => Decode::Plain(DataType::Int16),
            None | Some(LogicalType::Integer(_)) => match own {
                Some(DataType::Int16) => Decode::Plain(DataType::Int16),
                _ => Decode::Plain(DataType::Int32),
            },
            _ => return unsupported(),
        },
        Physical::INT64 => match logical {
            Some(LogicalType::Decimal(d)) => Decode::Decimal(d.scale),
            Some(LogicalType::Integer(i)) if !i.is_signed => Decode::Unsigned64,
            Some(LogicalType::Timestamp(t)) => match t.unit {
                PqUnit::MILLIS if own == Some(DataType::Timestamp(TimeUnit::Seconds)) => {
                    Decode::MillisToSeconds
                }
                PqUnit::MILLIS => Decode::Plain(DataType::Timestamp(TimeUnit::Millis)),
                PqUnit::MICROS => Decode::Plain(DataType::Timestamp(TimeUnit::Micros)),
                PqUnit::NANOS => Decode::Plain(DataType::Timestamp(TimeUnit::Nanos)),
            },
            None | Some(LogicalType::Integer(_)) => Decode::Plain(DataType::Int64),
            _ => return unsupported(),
        },
        Physical::INT96 => Decode::Int96,
        Physical::FLOAT => Decode::Plain(DataType::Float32),
        Physical::DOUBLE => Decode::Plain(DataType::Float64),
        Physical::BYTE_ARRAY => match logical {
            Some(LogicalType::Json) => Decode::Plain(DataType::Json),
            Some(LogicalType::Decimal(d)) => Decode::Decimal(d.scale),
            Some(LogicalType::String | LogicalType::Enum) => match own {
                Some(DataType::Numeric) => Decode::Plain(DataType::Numeric),
                _ => Decode::Plain(DataType::Text),
            },
            None if descr.converted_type() == parquet::basic::ConvertedType::UTF8 => {
                Decode::Plain(DataType::Text)
            }
            None | Some(LogicalType::Bson) => Decode::Plain(DataType::Bytes),
            _ => return unsupported(),
        },
        Physical::FIXED_LEN_BYTE_ARRAY => match logical {
            Some(LogicalType::Uuid) if descr.type_length() == 16 => Decode::Plain(DataType::Uuid),
            Some(LogicalType::Decimal(d)) => Decode::Decimal(d.scale),
            None => Decode::Plain(DataType::Bytes),
            _ => return unsupported(),
        },
    })
}

/// Decimal text of `unscaled × 10^-scale`.
fn decimal_text(unscaled: i128, scale: i32) -> String {
    let digits = unscaled.unsigned_abs().to_string();
    let sign = if unscaled < 0 { "-" } else { "" };
    if scale <= 0 {
        let zeros = "0".repeat(usize::try_from(-scale).unwrap_or(0));
        return if unscaled == 0 {
            "0".into()
        } else {
            format!("{sign}{digits}{zeros}")
        };
    }
    let scale = usize::try_from(scale).unwrap_or(0);
    let padded = format!("{digits:0>width$}", width = scale + 1);
    let (int, frac) = padded.split_at(padded.len() - scale);
    format!("{sign}{int}.{frac}")
}

/// A big-endian two's-complement integer of at most 16 bytes.
fn be_i128(bytes: &[u8]) -> Option<i128> {
    if bytes.is_empty() || bytes.len() > 16 {
        return None;
    }
    let fill = if bytes[0] & 0x80 != 0 { 0xff } else { 0 };
    let mut buf = [fill; 16];
    buf[16 - bytes.len()..].copy_from_slice(bytes);
    Some(i128::from_be_bytes(buf))
}

/// Decimal texts of DECIMALs stored as big-endian bytes (variable or fixed length).
fn byte_decimals<'a>(
    values: impl Iterator<Item = &'a [u8]>,
    scale: i32,
) -> std::result::Result<Vec<String>, String> {
    values
        .map(|b| {
            be_i128(b)
                .map(|x| decimal_text(x, scale))
                .ok_or_else(|| "a DECIMAL wider than 16 bytes".to_string())
        })
        .collect()
}

/// Reads one column of a row group, `max` records at a time, into tsmigrate columns.
pub struct ColumnCursor {
    reader: ColumnReader,
    column: FileColumn,
    levels: Vec<i16>,
    max_def: i16,
}

impl ColumnCursor {
    /// A cursor over `reader`, the row group's reader of `column`.
    pub fn new(reader: ColumnReader, column: FileColumn, max_def: i16) -> ColumnCursor {
        ColumnCursor {
            reader,
            column,
            levels: Vec::new(),
            max_def,
        }
    }

    /// The next up to `max` values (fewer only at the end of the row group).
    pub fn next(&mut self, max: usize) -> std::result::Result<Column, String> {
        let dtype = self.column.field.dtype;
        let decode = self.column.decode;
        self.levels.clear();
        let err = |e: parquet::errors::ParquetError| e.to_string();
        let mut out = Column::with_capacity(dtype, max);
        macro_rules! read {
            ($r:expr) => {{
                let mut values = Vec::with_capacity(max);
                $r.read_records(max, Some(&mut self.levels), None, &mut values)
                    .map_err(err)?;
                values
            }};
        }
        match &mut self.reader {
            ColumnReader::BoolColumnReader(r) => {
                let values = read!(r);
                self.fill(&mut out, &values, |c, v| c.push_bool(*v))?;
            }
            ColumnReader::Int32ColumnReader(r) => {
                let values = read!(r);
                match decode {
                    Decode::Date => {
                        self.fill(&mut out, &values, |c, d| c.push_i64(i64::from(*d) * 86_400))?
                    }
                    Decode::Decimal(scale) => self.fill(&mut out, &values, |c, x| {
                        c.push_str(&decimal_text(i128::from(*x), scale))
                    })?,
                    Decode::Plain(DataType::Int64) => {
                        self.fill(&mut out, &values, |c, x| c.push_i64(i64::from(*x as u32)))?
                    }
                    _ => self.fill(&mut out, &values, |c, x| c.push_i64(i64::from(*x)))?,
                }
            }
            ColumnReader::Int64ColumnReader(r) => {
                let values = read!(r);
                match decode {
                    Decode::MillisToSeconds => {
                        self.fill(&mut out, &values, |c, x| c.push_i64(x.div_euclid(1000)))?
                    }
                    Decode::Decimal(scale) => self.fill(&mut out, &values, |c, x| {
                        c.push_str(&decimal_text(i128::from(*x), scale))
                    })?,
                    Decode::Unsigned64 => self.fill(&mut out, &values, |c, x| {
                        c.push_str(&(*x as u64).to_string())
                    })?,
                    _ => self.fill(&mut out, &values, |c, x| c.push_i64(*x))?,
                }
            }
            ColumnReader::Int96ColumnReader(r) => {
                let values = read!(r);
                self.fill(&mut out, &values, |c, x| c.push_i64(x.to_nanos()))?;
            }
            ColumnReader::FloatColumnReader(r) => {
                let values = read!(r);
                self.fill(&mut out, &values, |c, x| c.push_f64(f64::from(*x)))?;
            }
            ColumnReader::DoubleColumnReader(r) => {
                let values = read!(r);
                self.fill(&mut out, &values, |c, x| c.push_f64(*x))?;
            }
            ColumnReader::ByteArrayColumnReader(r) => {
                let values = read!(r);
                match (decode, dtype) {
                    (Decode::Decimal(scale), _) => {
                        let texts = byte_decimals(values.iter().map(|b| b.data()), scale)?;
                        self.fill(&mut out, &texts, |c, t| c.push_str(t))?;
                    }
                    (_, DataType::Bytes) => {
                        self.fill(&mut out, &values, |c, b| c.push_bytes(b.data()))?
                    }
                    _ => {
                        let texts = values
                            .iter()
                            .map(|b| {
                                std::str::from_utf8(b.data())
                                    .map_err(|e| format!("a string value is not UTF-8: {e}"))
                            })
                            .collect::<std::result::Result<Vec<&str>, String>>()?;
                        self.fill(&mut out, &texts, |c, t| c.push_str(t))?;
                    }
                }
            }
            ColumnReader::FixedLenByteArrayColumnReader(r) => {
                let values = read!(r);
                match decode {
                    Decode::Decimal(scale) => {
                        let texts = byte_decimals(values.iter().map(|b| b.data()), scale)?;
                        self.fill(&mut out, &texts, |c, t| c.push_str(t))?;
                    }
                    Decode::Plain(DataType::Uuid) => {
                        self.fill(&mut out, &values, |c, b| {
                            let mut u = [0u8; 16];
                            if b.data().len() == 16 {
                                u.copy_from_slice(b.data());
                            }
                            c.push_uuid(u)
                        })?;
                    }
                    _ => self.fill(&mut out, &values, |c, b| c.push_bytes(b.data()))?,
                }
            }
        }
        Ok(out)
    }

    /// Pushes `values` (the present ones) into `out`, with NULLs where the levels say so.
    fn fill<T>(
        &self,
        out: &mut Column,
        values: &[T],
        push: impl Fn(&mut Column, &T),
    ) -> std::result::Result<(), String> {
        if self.max_def == 0 {
            for v in values {
                push(out, v);
            }
            return Ok(());
        }
        let mut it = values.iter();
        for level in &self.levels {
            if *level == self.max_def {
                let v = it
                    .next()
                    .ok_or_else(|| "fewer values than definition levels".to_string())?;
                push(out, v);
            } else {
                out.push_null();
            }
        }
        Ok(())
    }
}

/// Opens a Parquet file for reading.
pub fn open(path: &Path, end: End) -> Result<SerializedFileReader<File>> {
    let file = File::open(path).map_err(|e| file_error(path, e))?;
    SerializedFileReader::new(file).map_err(|e| parquet_error(end, &path.display().to_string(), &e))
}

/// Converts a column read from a file to the type a caller wants; a value that does not
/// convert is an error naming the row (`first_row` is the column's first row in the file).
pub fn convert_column(
    column: &Column,
    to: DataType,
    name: &str,
    first_row: u64,
    ctx: &str,
    end: End,
) -> Result<Column> {
    if column.dtype() == to {
        return Ok(column.clone());
    }
    let mut errors = RowErrors::new();
    let mut lossy = LossyCounts::default();
    let out = convert(
        column,
        to,
        &mut ConvertCtx {
            errors: &mut errors,
            lossy: &mut lossy,
            column: Some(name),
        },
    );
    if let Some(e) = errors.errors().first() {
        return Err(parquet_error(
            end,
            ctx,
            &format!("row {}: {}", first_row + e.row as u64, e.reason),
        ));
    }
    Ok(out)
}

/// A batch of `columns` named and typed as `fields`.
pub fn batch_of(fields: &[Field], columns: Vec<Column>) -> Result<Batch> {
    let schema = Arc::new(Schema::new(fields.to_vec()));
    Batch::new(schema, columns.into_iter().map(Arc::new).collect())
        .ok_or_else(|| tsmigrate_core::Error::Internal("columns of a read batch disagree".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_text_places_the_point() {
        assert_eq!(decimal_text(12345, 2), "123.45");
        assert_eq!(decimal_text(-5, 3), "-0.005");
        assert_eq!(decimal_text(0, 2), "0.00");
        assert_eq!(decimal_text(7, -2), "700");
        assert_eq!(decimal_text(i128::from(i64::MIN), 0), i64::MIN.to_string());
    }

    #[test]
    fn big_endian_decimals() {
        assert_eq!(be_i128(&[0xff, 0x85]), Some(-123));
        assert_eq!(be_i128(&[0x00, 0x7b]), Some(123));
        assert_eq!(be_i128(&[]), None);
        assert_eq!(be_i128(&[0; 17]), None);
    }

    #[test]
    fn type_names_round_trip() {
        for t in [
            DataType::Bool,
            DataType::Int16,
            DataType::Int32,
            DataType::Int64,
            DataType::Float32,
            DataType::Float64,
            DataType::Numeric,
            DataType::Text,
            DataType::Json,
            DataType::Uuid,
            DataType::Bytes,
            DataType::Timestamp(TimeUnit::Seconds),
            DataType::Timestamp(TimeUnit::Millis),
            DataType::Timestamp(TimeUnit::Micros),
            DataType::Timestamp(TimeUnit::Nanos),
        ] {
            assert_eq!(parse_type_name(&t.to_string()), Some(t), "{t}");
        }
    }
}
