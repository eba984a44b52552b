//! Logical data types of values moving through tsmigrate.
//!
//! Every connector decodes into these types and encodes from them, so a conversion between
//! two stores is always a conversion between two of these types, checked in one place
//! ([`crate::convert`]).

use std::fmt;

/// Resolution of a timestamp column. Timestamps are kept as `i64` counts of this unit since
/// the Unix epoch (UTC), so seconds, milliseconds (ThingsBoard), microseconds (PostgreSQL)
/// and nanoseconds (IoTDB) are all held exactly; converting between units is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TimeUnit {
    /// Whole seconds.
    Seconds,
    /// Milliseconds.
    Millis,
    /// Microseconds (PostgreSQL's resolution).
    Micros,
    /// Nanoseconds.
    Nanos,
}

impl TimeUnit {
    /// How many ticks of this unit make one second.
    pub fn per_second(self) -> i64 {
        match self {
            TimeUnit::Seconds => 1,
            TimeUnit::Millis => 1_000,
            TimeUnit::Micros => 1_000_000,
            TimeUnit::Nanos => 1_000_000_000,
        }
    }

    /// The unit a plan names by its short name (`s`, `ms`, `us`, `ns`); `what` names the
    /// plan option in the error.
    pub fn from_short_name(name: &str, what: &str) -> crate::error::Result<TimeUnit> {
        [
            TimeUnit::Seconds,
            TimeUnit::Millis,
            TimeUnit::Micros,
            TimeUnit::Nanos,
        ]
        .into_iter()
        .find(|u| u.short_name() == name)
        .ok_or_else(|| {
            crate::error::Error::Plan(format!(
                "{what} = {name:?}: use \"s\", \"ms\", \"us\" or \"ns\""
            ))
        })
    }

    /// Short name used in messages and reports (`s`, `ms`, `us`, `ns`).
    pub fn short_name(self) -> &'static str {
        match self {
            TimeUnit::Seconds => "s",
            TimeUnit::Millis => "ms",
            TimeUnit::Micros => "us",
            TimeUnit::Nanos => "ns",
        }
    }
}

/// A logical column type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DataType {
    /// true / false.
    Bool,
    /// 16-bit signed integer (stored widened to i64, range-checked on conversion).
    Int16,
    /// 32-bit signed integer (stored widened to i64, range-checked on conversion).
    Int32,
    /// 64-bit signed integer.
    Int64,
    /// IEEE single precision (stored widened to f64, exactness-checked on conversion).
    Float32,
    /// IEEE double precision.
    Float64,
    /// Arbitrary-precision decimal, held as its canonical decimal text.
    Numeric,
    /// UTF-8 text.
    Text,
    /// JSON document, held as its text.
    Json,
    /// An instant (UTC) counted in the given unit since the Unix epoch.
    Timestamp(TimeUnit),
    /// 128-bit UUID.
    Uuid,
    /// Raw bytes.
    Bytes,
}

impl DataType {
    /// Parses a SQL type name as written in plans and PostgreSQL catalogs
    /// (`float8`, `double precision`, `timestamptz`, `varchar(255)`, `jsonb`, …).
    /// Returns `None` for a type tsmigrate does not move.
    pub fn parse_sql(name: &str) -> Option<DataType> {
        let lower = name.trim().to_ascii_lowercase();
        // Drop a length / precision modifier: varchar(255), numeric(10,2), timestamptz(3).
        let base = match lower.find('(') {
            Some(p) => {
                let after = lower[p..]
                    .find(')')
                    .map(|q| &lower[p + q + 1..])
                    .unwrap_or("");
                format!("{}{}", lower[..p].trim_end(), after)
            }
            None => lower,
        };
        let base = base.split_whitespace().collect::<Vec<_>>().join(" ");
        Some(match base.as_str() {
            "bool" | "boolean" => DataType::Bool,
            "int2" | "smallint" => DataType::Int16,
            "int" | "int4" | "integer" | "serial" => DataType::Int32,
            "int8" | "bigint" | "bigserial" => DataType::Int64,
            "float4" | "real" => DataType::Float32,
            "float8" | "double precision" | "float" | "double" => DataType::Float64,
            "numeric" | "decimal" => DataType::Numeric,
            "text" | "varchar" | "character varying" | "char" | "character" | "bpchar" | "name"
            | "string" => DataType::Text,
            "json" | "jsonb" => DataType::Json,
            "timestamptz"
            | "timestamp with time zone"
            | "timestamp"
            | "timestamp without time zone" => DataType::Timestamp(TimeUnit::Micros),
            "uuid" => DataType::Uuid,
            "bytea" | "blob" | "bytes" => DataType::Bytes,
            _ => return None,
        })
    }

    /// The PostgreSQL type used when a table is created for this logical type.
    pub fn pg_name(self) -> &'static str {
        match self {
            DataType::Bool => "boolean",
            DataType::Int16 => "smallint",
            DataType::Int32 => "integer",
            DataType::Int64 => "bigint",
            DataType::Float32 => "real",
            DataType::Float64 => "double precision",
            DataType::Numeric => "numeric",
            DataType::Text => "text",
            DataType::Json => "jsonb",
            DataType::Timestamp(_) => "timestamptz",
            DataType::Uuid => "uuid",
            DataType::Bytes => "bytea",
        }
    }

    /// True for the integer types.
    pub fn is_integer(self) -> bool {
        matches!(self, DataType::Int16 | DataType::Int32 | DataType::Int64)
    }

    /// True for the floating-point types.
    pub fn is_float(self) -> bool {
        matches!(self, DataType::Float32 | DataType::Float64)
    }

    /// True for types stored as strings of bytes in a [`crate::Column`].
    pub fn is_stringlike(self) -> bool {
        matches!(
            self,
            DataType::Text | DataType::Json | DataType::Numeric | DataType::Bytes
        )
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataType::Bool => f.write_str("bool"),
            DataType::Int16 => f.write_str("int2"),
            DataType::Int32 => f.write_str("int4"),
            DataType::Int64 => f.write_str("int8"),
            DataType::Float32 => f.write_str("float4"),
            DataType::Float64 => f.write_str("float8"),
            DataType::Numeric => f.write_str("numeric"),
            DataType::Text => f.write_str("text"),
            DataType::Json => f.write_str("json"),
            DataType::Timestamp(u) => write!(f, "timestamp[{}]", u.short_name()),
            DataType::Uuid => f.write_str("uuid"),
            DataType::Bytes => f.write_str("bytes"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_sql_names() {
        assert_eq!(
            DataType::parse_sql("double precision"),
            Some(DataType::Float64)
        );
        assert_eq!(DataType::parse_sql("VARCHAR(255)"), Some(DataType::Text));
        assert_eq!(
            DataType::parse_sql("numeric(10, 2)"),
            Some(DataType::Numeric)
        );
        assert_eq!(
            DataType::parse_sql("timestamp(3) with time zone"),
            Some(DataType::Timestamp(TimeUnit::Micros))
        );
        assert_eq!(DataType::parse_sql("jsonb"), Some(DataType::Json));
        assert_eq!(DataType::parse_sql("int4"), Some(DataType::Int32));
        assert_eq!(DataType::parse_sql("point"), None);
    }
}
