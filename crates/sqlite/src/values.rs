//! SQLite values ↔ tsmigrate columns.
//!
//! SQLite stores every value in one of five classes (NULL, INTEGER, REAL, TEXT, BLOB) whatever
//! the column's declared type, so reading is a checked conversion from the stored class to
//! the column's logical type (its declared type, see [`dtype_from_decl`]), and writing picks
//! a class per logical type:
//!
//! | logical type        | stored as | declared (created tables) |
//! |---------------------|-----------|---------------------------|
//! | bool                | INTEGER 0/1 | `BOOLEAN`               |
//! | int2 / int4 / int8  | INTEGER   | `SMALLINT` / `INTEGER` / `BIGINT` |
//! | float4 / float8     | REAL; NaN as TEXT `'NaN'` (SQLite would store NaN as NULL) | `REAL` / `DOUBLE` |
//! | numeric             | TEXT (exact digits; NUMERIC affinity would round to 15 digits) | `NUMERIC TEXT` |
//! | text                | TEXT      | `TEXT`                    |
//! | json                | TEXT      | `JSON TEXT`               |
//! | timestamp           | TEXT, RFC 3339 UTC with the unit's digits (`2025-01-01T00:00:00.000000Z`, sorts as time) | `TIMESTAMP TEXT` |
//! | uuid                | TEXT, hyphenated lowercase | `UUID TEXT` |
//! | bytes               | BLOB      | `BLOB`                    |

use std::fmt::Write as _;

use rusqlite::types::{ToSqlOutput, Value, ValueRef as SqlValue};
use tsmigrate_core::convert::{parse_timestamp, write_float};
use tsmigrate_core::{Column, DataType, TimeUnit, ValueRef};

/// The logical type of a column declared as `decl` in SQLite. Our own declarations
/// (`JSON TEXT`, `TIMESTAMP TEXT`, …) and PostgreSQL-style names map to their types;
/// anything else follows SQLite's affinity rules. Integers are always `int8`: SQLite does not
/// enforce a declared width, so an `INT` column may hold any 64-bit value.
pub fn dtype_from_decl(decl: &str) -> DataType {
    let upper = decl.trim().to_ascii_uppercase();
    match upper.as_str() {
        "NUMERIC TEXT" => return DataType::Numeric,
        "JSON TEXT" | "JSON" | "JSONB" => return DataType::Json,
        "UUID TEXT" | "UUID" => return DataType::Uuid,
        "TIMESTAMP TEXT" | "DATETIME" | "DATE" => return DataType::Timestamp(TimeUnit::Micros),
        _ => {}
    }
    if let Some(t) = DataType::parse_sql(decl) {
        return match t {
            DataType::Int16 | DataType::Int32 => DataType::Int64,
            // SQLite's REAL (and FLOAT) are 8-byte doubles, whatever PostgreSQL calls REAL.
            DataType::Float32 => DataType::Float64,
            other => other,
        };
    }
    // SQLite's affinity rules, in their order.
    if upper.contains("INT") {
        DataType::Int64
    } else if upper.contains("CHAR") || upper.contains("CLOB") || upper.contains("TEXT") {
        DataType::Text
    } else if upper.contains("BLOB") {
        DataType::Bytes
    } else if upper.contains("REAL") || upper.contains("FLOA") || upper.contains("DOUB") {
        DataType::Float64
    } else if upper.is_empty() {
        // No declared type: values keep whatever class they were stored with; text is the
        // one type every class converts to without loss.
        DataType::Text
    } else {
        DataType::Numeric
    }
}

/// The declared type used when creating a column of `dtype` (see the module table).
pub fn decl_for(dtype: DataType) -> &'static str {
    match dtype {
        DataType::Bool => "BOOLEAN",
        DataType::Int16 => "SMALLINT",
        DataType::Int32 => "INTEGER",
        DataType::Int64 => "BIGINT",
        DataType::Float32 => "REAL",
        DataType::Float64 => "DOUBLE",
        DataType::Numeric => "NUMERIC TEXT",
        DataType::Text => "TEXT",
        DataType::Json => "JSON TEXT",
        DataType::Timestamp(_) => "TIMESTAMP TEXT",
        DataType::Uuid => "UUID TEXT",
        DataType::Bytes => "BLOB",
    }
}

/// Appends the stored value `v` to `col`, converted to the column's type. Returns a message
/// when the value cannot be held by the type without loss (text in a number column, a
/// fraction in an integer column, an integer above 2^53 in a float column, …).
pub fn push_value(col: &mut Column, v: SqlValue<'_>) -> Result<(), String> {
    let dtype = col.dtype();
    match v {
        SqlValue::Null => col.push_null(),
        SqlValue::Integer(i) => match dtype {
            DataType::Bool => col.push_bool(i != 0),
            DataType::Int16 | DataType::Int32 | DataType::Int64 => col.push_i64(i),
            DataType::Float32 | DataType::Float64 => {
                let f = i as f64;
                if f as i128 != i as i128 {
                    return Err(format!(
                        "integer {i} in a {dtype} column cannot be held exactly by a float"
                    ));
                }
                col.push_f64(f)
            }
            DataType::Timestamp(unit) => {
                // An integer in a timestamp column counts seconds since the epoch (SQLite's
                // `unixepoch()` convention).
                let ticks = i
                    .checked_mul(unit.per_second())
                    .ok_or_else(|| format!("epoch seconds {i} are out of range"))?;
                col.push_i64(ticks)
            }
            DataType::Numeric | DataType::Text | DataType::Json => col.push_str(&i.to_string()),
            DataType::Uuid | DataType::Bytes => {
                return Err(format!("integer {i} in a {dtype} column"));
            }
        },
        SqlValue::Real(f) => match dtype {
            DataType::Float32 | DataType::Float64 => col.push_f64(f),
            DataType::Int16 | DataType::Int32 | DataType::Int64 | DataType::Bool => {
                if f.fract() != 0.0
                    || !(-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&f)
                {
                    return Err(format!(
                        "real {f} in an integer column is not a whole number"
                    ));
                }
                if dtype == DataType::Bool {
                    col.push_bool(f != 0.0)
                } else {
                    col.push_i64(f as i64)
                }
            }
            DataType::Numeric | DataType::Text | DataType::Json => {
                let mut s = String::new();
                write_float(f, &mut s);
                col.push_str(&s)
            }
            DataType::Timestamp(_) | DataType::Uuid | DataType::Bytes => {
                return Err(format!("real {f} in a {dtype} column"));
            }
        },
        SqlValue::Text(bytes) => {
            let s = std::str::from_utf8(bytes)
                .map_err(|_| "text that is not valid UTF-8".to_string())?;
            push_text(col, s)?
        }
        SqlValue::Blob(b) => match dtype {
            DataType::Bytes => col.push_bytes(b),
            DataType::Uuid if b.len() == 16 => {
                let mut u = [0u8; 16];
                u.copy_from_slice(b);
                col.push_uuid(u)
            }
            _ => match std::str::from_utf8(b) {
                Ok(s) => push_text(col, s)?,
                Err(_) => return Err(format!("a {}-byte blob in a {dtype} column", b.len())),
            },
        },
    }
    Ok(())
}

fn push_text(col: &mut Column, s: &str) -> Result<(), String> {
    let dtype = col.dtype();
    let bad = || format!("text {} in a {dtype} column", short(s));
    match dtype {
        DataType::Text | DataType::Numeric | DataType::Json => col.push_str(s),
        DataType::Bytes => col.push_bytes(s.as_bytes()),
        DataType::Float32 | DataType::Float64 => {
            let f = match s.trim() {
                "NaN" | "nan" => f64::NAN,
                "Infinity" | "inf" | "Inf" => f64::INFINITY,
                "-Infinity" | "-inf" | "-Inf" => f64::NEG_INFINITY,
                t => t.parse::<f64>().map_err(|_| bad())?,
            };
            col.push_f64(f)
        }
        DataType::Int16 | DataType::Int32 | DataType::Int64 => {
            col.push_i64(s.trim().parse::<i64>().map_err(|_| bad())?)
        }
        DataType::Bool => match s.trim().to_ascii_lowercase().as_str() {
            "1" | "t" | "true" => col.push_bool(true),
            "0" | "f" | "false" => col.push_bool(false),
            _ => return Err(bad()),
        },
        DataType::Uuid => {
            let u = uuid_bytes(s).ok_or_else(bad)?;
            col.push_uuid(u)
        }
        DataType::Timestamp(unit) => {
            let (secs, nanos) = parse_timestamp(s).ok_or_else(bad)?;
            let per = unit.per_second();
            let sub = i64::from(nanos) / (1_000_000_000 / per);
            if i64::from(nanos) % (1_000_000_000 / per) != 0 {
                return Err(format!(
                    "timestamp {} is finer than the column's unit ({})",
                    short(s),
                    unit.short_name()
                ));
            }
            let ticks = secs
                .checked_mul(per)
                .and_then(|t| t.checked_add(sub))
                .ok_or_else(bad)?;
            col.push_i64(ticks)
        }
    }
    Ok(())
}

fn short(s: &str) -> String {
    let cut: String = s.chars().take(60).collect();
    if cut.len() < s.len() {
        format!("{cut:?}…")
    } else {
        format!("{cut:?}")
    }
}

fn uuid_bytes(s: &str) -> Option<[u8; 16]> {
    let hex: String = s.trim().chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// The SQLite value written for `v` (see the module table).
pub fn to_sql(v: ValueRef<'_>) -> ToSqlOutput<'_> {
    match v {
        ValueRef::Null => ToSqlOutput::Owned(Value::Null),
        ValueRef::Bool(b) => ToSqlOutput::Owned(Value::Integer(i64::from(b))),
        ValueRef::Int(i) => ToSqlOutput::Owned(Value::Integer(i)),
        ValueRef::Float(f) if f.is_nan() => ToSqlOutput::Borrowed(SqlValue::Text(b"NaN")),
        ValueRef::Float(f) => ToSqlOutput::Owned(Value::Real(f)),
        ValueRef::Str(s) => ToSqlOutput::Borrowed(SqlValue::Text(s.as_bytes())),
        ValueRef::Bytes(b) => ToSqlOutput::Borrowed(SqlValue::Blob(b)),
        ValueRef::Uuid(u) => {
            let mut s = String::with_capacity(36);
            for (i, b) in u.iter().enumerate() {
                if matches!(i, 4 | 6 | 8 | 10) {
                    s.push('-');
                }
                let _ = write!(s, "{b:02x}");
            }
            ToSqlOutput::Owned(Value::Text(s))
        }
        ValueRef::Timestamp(x, unit) => ToSqlOutput::Owned(Value::Text(timestamp_text(x, unit))),
    }
}

/// A timestamp as fixed-width RFC 3339 UTC text with the unit's digits, so text order is
/// time order (`2025-01-01T00:00:00.000000Z` for microseconds); beyond chrono's range, the
/// tick count with its unit.
pub fn timestamp_text(x: i64, unit: TimeUnit) -> String {
    let per = unit.per_second();
    let (secs, frac) = (x.div_euclid(per), x.rem_euclid(per));
    match chrono::DateTime::from_timestamp(secs, 0) {
        Some(dt) => {
            let mut s = dt.format("%Y-%m-%dT%H:%M:%S").to_string();
            let digits = match unit {
                TimeUnit::Seconds => 0,
                TimeUnit::Millis => 3,
                TimeUnit::Micros => 6,
                TimeUnit::Nanos => 9,
            };
            if digits > 0 {
                let _ = write!(s, ".{frac:0digits$}");
            }
            s.push('Z');
            s
        }
        None => format!("{x}{}", unit.short_name()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(dtype: DataType, v: SqlValue<'_>) -> Result<ValueRef<'static>, String> {
        let mut c = Column::with_capacity(dtype, 1);
        push_value(&mut c, v)?;
        Ok(match c.get(0) {
            ValueRef::Int(i) => ValueRef::Int(i),
            ValueRef::Float(f) => ValueRef::Float(f),
            ValueRef::Timestamp(x, u) => ValueRef::Timestamp(x, u),
            ValueRef::Bool(b) => ValueRef::Bool(b),
            ValueRef::Null => ValueRef::Null,
            _ => ValueRef::Str("other"),
        })
    }

    #[test]
    fn declared_types_follow_affinity() {
        assert_eq!(dtype_from_decl("INT"), DataType::Int64);
        assert_eq!(dtype_from_decl("unsigned big int"), DataType::Int64);
        assert_eq!(dtype_from_decl("VARCHAR(20)"), DataType::Text);
        assert_eq!(dtype_from_decl("DOUBLE"), DataType::Float64);
        assert_eq!(dtype_from_decl("FLOAT"), DataType::Float64);
        assert_eq!(dtype_from_decl(""), DataType::Text);
        assert_eq!(dtype_from_decl("DECIMAL(10,5)"), DataType::Numeric);
        for t in [
            DataType::Bool,
            DataType::Int64,
            DataType::Float64,
            DataType::Numeric,
            DataType::Text,
            DataType::Json,
            DataType::Timestamp(TimeUnit::Micros),
            DataType::Uuid,
            DataType::Bytes,
        ] {
            assert_eq!(dtype_from_decl(decl_for(t)), t, "{t}");
        }
        // A SQLite REAL holds a double: reading it as float4 would round (or reject) values.
        for decl in ["REAL", "real", "FLOAT", "DOUBLE PRECISION", "FLOAT8"] {
            assert_eq!(dtype_from_decl(decl), DataType::Float64, "{decl}");
        }
    }

    #[test]
    fn reads_convert_exactly_or_refuse() {
        assert_eq!(
            read(DataType::Float64, SqlValue::Text(b"NaN")).map(|v| format!("{v:?}")),
            Ok("Float(NaN)".to_string())
        );
        assert!(read(DataType::Float64, SqlValue::Integer((1 << 53) + 1)).is_err());
        assert_eq!(
            read(DataType::Float64, SqlValue::Integer(1 << 53)),
            Ok(ValueRef::Float(9007199254740992.0))
        );
        assert!(read(DataType::Int64, SqlValue::Real(1.5)).is_err());
        assert!(read(DataType::Int64, SqlValue::Text(b"12x")).is_err());
        assert_eq!(
            read(DataType::Int64, SqlValue::Real(-3.0)),
            Ok(ValueRef::Int(-3))
        );
        let t = DataType::Timestamp(TimeUnit::Micros);
        assert_eq!(
            read(t, SqlValue::Text(b"2025-01-01T00:00:00.000001Z")),
            Ok(ValueRef::Timestamp(1_735_689_600_000_001, TimeUnit::Micros))
        );
        assert!(read(t, SqlValue::Text(b"2025-01-01T00:00:00.0000001Z")).is_err());
        assert_eq!(
            read(t, SqlValue::Integer(1)),
            Ok(ValueRef::Timestamp(1_000_000, TimeUnit::Micros))
        );
    }

    #[test]
    fn timestamp_text_is_fixed_width_and_round_trips() {
        let t = DataType::Timestamp(TimeUnit::Micros);
        for x in [0i64, 1, -1, 1_735_689_600_123_456, -62_135_596_800_000_000] {
            let s = timestamp_text(x, TimeUnit::Micros);
            assert_eq!(s.len(), 27, "{s}");
            assert_eq!(
                read(t, SqlValue::Text(s.as_bytes())),
                Ok(ValueRef::Timestamp(x, TimeUnit::Micros)),
                "{s}"
            );
        }
        assert!(timestamp_text(0, TimeUnit::Micros) < timestamp_text(1, TimeUnit::Micros));
        assert_eq!(timestamp_text(5, TimeUnit::Seconds), "1970-01-01T00:00:05Z");
    }
}
