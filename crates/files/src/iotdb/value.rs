//! A value cell of an IoTDB export, read as its series' type.
//!
//! What the exporter prints per type (tsfile `Field.getStringValue`, v0.13.4 L150-170; the
//! export loops of v1.3.0 `ExportCsv.java` L382-403, v1.3.4 `ExportData.java` L662-696, v2.0.5
//! `ExportDataTree.java` L265-308):
//! - BOOLEAN `true`/`false`; INT32/INT64 `String.valueOf`; FLOAT `Float.toString` and DOUBLE
//!   `Double.toString` (`1.0E10`, `4.9E-324`, `-0.0`, `NaN`, `-Infinity`);
//! - TEXT and STRING wrapped in one `"` each side, inner quotes as they are (`"a"b"`), except a
//!   value starting with `root.`, written bare;
//! - DATE `20240528` (1.3.2/1.3.3, 2.0.x tree) or `2024-05-28` (1.3.4, master); BLOB `0x` and
//!   lowercase hex; TIMESTAMP the raw epoch count (ISO on master);
//! - NULL an empty cell.
//!
//! A FLOAT is read as the 32-bit float it spells (the value IoTDB held, exactly), carried in a
//! double. Without a type in the header a value is read by its look, and a bare cell that is
//! none of the spellings above is refused rather than taken as text.

use chrono::NaiveDate;
use tsmigrate_core::TimeUnit;

use super::{parse_time, IotType, TimeError};

/// A value read from a cell.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// BOOLEAN.
    Bool(bool),
    /// INT32, INT64, and TIMESTAMP as its count of the time unit.
    Int(i64),
    /// DOUBLE, and FLOAT widened exactly.
    Double(f64),
    /// TEXT, STRING; DATE as `YYYY-MM-DD`; BLOB as `0x` and lowercase hex.
    Text(String),
}

/// Why a cell is not a value of its series' type.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    /// Not of the type's spelling.
    #[error("{text:?} is not {what} ({ty})")]
    NotA {
        /// The cell.
        text: String,
        /// What it should have been.
        what: &'static str,
        /// The type's name.
        ty: &'static str,
    },
    /// A number beyond the type.
    #[error("{text:?} is out of range for {ty}")]
    OutOfRange {
        /// The cell.
        text: String,
        /// The type's name.
        ty: &'static str,
    },
    /// A cell that is one `"`.
    #[error(
        "a lone double quote, which IoTDB's exporter does not write: it wraps a {ty} value in \
         one quote before and one after (the value \" is written \"\"\")"
    )]
    LoneQuote {
        /// The type's name.
        ty: &'static str,
    },
    /// TEXT or STRING not in `"…"` and not starting with `root.`.
    #[error(
        "{text:?} is not wrapped in double quotes, as IoTDB's exporter writes every {ty} value \
         that does not start with root."
    )]
    NotWrapped {
        /// The cell.
        text: String,
        /// The type's name.
        ty: &'static str,
    },
    /// A TIMESTAMP value that is not a time.
    #[error("TIMESTAMP value: {0}")]
    Time(#[from] TimeError),
    /// Untyped, and none of the exporter's spellings.
    #[error(
        "{0:?} is not a value IoTDB's exporter writes (TEXT is wrapped in double quotes; numbers, \
         true/false, dates and 0x… blobs are bare); export with the types in the header \
         (-dt true) to have it read as its type says"
    )]
    Unrecognised(String),
}

/// Reads a cell of a series of type `dtype` (or, untyped, by its look). `Ok(None)` for an
/// empty cell: a NULL, no value. Returns the value and the type it was read as.
pub fn read_value(
    text: &str,
    dtype: Option<IotType>,
    unit: TimeUnit,
) -> Result<Option<(Value, IotType)>, ValueError> {
    if text.is_empty() {
        return Ok(None);
    }
    match dtype {
        Some(t) => typed(text, t, unit).map(|v| Some((v, t))),
        None => by_look(text).map(Some),
    }
}

fn typed(text: &str, dtype: IotType, unit: TimeUnit) -> Result<Value, ValueError> {
    let ty = dtype.name();
    let not_a = |what: &'static str| ValueError::NotA {
        text: text.to_string(),
        what,
        ty,
    };
    Ok(match dtype {
        IotType::Boolean => Value::Bool(boolean(text).ok_or_else(|| not_a("true or false"))?),
        IotType::Int32 => {
            let i: i64 = integer(text).ok_or_else(|| not_a("an integer"))?;
            i32::try_from(i).map_err(|_| ValueError::OutOfRange {
                text: text.to_string(),
                ty,
            })?;
            Value::Int(i)
        }
        IotType::Int64 => Value::Int(integer(text).ok_or_else(|| not_a("a 64-bit integer"))?),
        IotType::Float => Value::Double(float(text, ty)?),
        IotType::Double => Value::Double(double(text, ty)?),
        IotType::Text | IotType::String => Value::Text(unwrap_text(text, ty)?.to_string()),
        IotType::Date => {
            Value::Text(date(text).ok_or_else(|| not_a("a date (20240528 or 2024-05-28)"))?)
        }
        IotType::Blob => {
            Value::Text(blob(text).ok_or_else(|| not_a("0x and pairs of hex digits"))?)
        }
        IotType::Timestamp => Value::Int(parse_time(text, unit)?),
    })
}

/// An untyped cell by its look: `"…"` or `root.…` TEXT, `true`/`false` BOOLEAN, an integer
/// INT64, a Java number DOUBLE, `YYYY-MM-DD` DATE, `0x…` BLOB; anything else is refused.
fn by_look(text: &str) -> Result<(Value, IotType), ValueError> {
    let text_of = |t: IotType| unwrap_text(text, t.name()).map(|s| (Value::Text(s.into()), t));
    if text.starts_with('"') || text.starts_with("root.") {
        return text_of(IotType::Text);
    }
    if let Some(b) = boolean(text) {
        return Ok((Value::Bool(b), IotType::Boolean));
    }
    let digits = text.strip_prefix('-').unwrap_or(text);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return integer(text)
            .map(|i| (Value::Int(i), IotType::Int64))
            .ok_or_else(|| ValueError::OutOfRange {
                text: text.to_string(),
                ty: IotType::Int64.name(),
            });
    }
    if java_number(text) {
        return double(text, "DOUBLE").map(|d| (Value::Double(d), IotType::Double));
    }
    if text.len() == 10 {
        if let Some(d) = date(text) {
            return Ok((Value::Text(d), IotType::Date));
        }
    }
    if let Some(b) = blob(text) {
        return Ok((Value::Text(b), IotType::Blob));
    }
    Err(ValueError::Unrecognised(text.to_string()))
}

/// A TEXT/STRING cell without the one `"` the exporter put on each side (inner quotes are
/// the value's own), or a bare `root.…` value as it is.
fn unwrap_text<'a>(text: &'a str, ty: &'static str) -> Result<&'a str, ValueError> {
    if let Some(inner) = text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
        return Ok(inner);
    }
    if text == "\"" {
        return Err(ValueError::LoneQuote { ty });
    }
    if text.starts_with("root.") {
        return Ok(text);
    }
    Err(ValueError::NotWrapped {
        text: text.to_string(),
        ty,
    })
}

/// `true`/`false`, in any case (IoTDB 1.x's importer reads them so).
fn boolean(text: &str) -> Option<bool> {
    if text.eq_ignore_ascii_case("true") {
        Some(true)
    } else if text.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// An integer as `Long.parseLong` reads one (an optional sign and ASCII digits).
fn integer(text: &str) -> Option<i64> {
    text.parse().ok()
}

/// Java's spelling of a number: `[+-]?(d+[.d*]|.d+)([eE][+-]?d+)?`, `NaN`, `[+-]?Infinity`.
fn java_number(text: &str) -> bool {
    let t = text.strip_prefix(['+', '-']).unwrap_or(text);
    if text == "NaN" || t == "Infinity" {
        return true;
    }
    let (mantissa, exponent) = match t.find(['e', 'E']) {
        Some(at) => (&t[..at], Some(&t[at + 1..])),
        None => (t, None),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = all_digits(int) && all_digits(frac) && !(int.is_empty() && frac.is_empty());
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        !e.is_empty() && all_digits(e)
    });
    mantissa_ok && exponent_ok
}

/// A DOUBLE as `Double.parseDouble` reads Java's spelling; a finite spelling beyond the
/// range is refused.
fn double(text: &str, ty: &'static str) -> Result<f64, ValueError> {
    let x = java_number(text)
        .then(|| java_special(text).or_else(|| text.parse::<f64>().ok()))
        .flatten()
        .ok_or_else(|| ValueError::NotA {
            text: text.to_string(),
            what: "a number",
            ty,
        })?;
    finite_if_spelled_so(text, x, ty)
}

/// A FLOAT as `Float.parseFloat` reads it: the nearest 32-bit float, widened exactly.
fn float(text: &str, ty: &'static str) -> Result<f64, ValueError> {
    let x = java_number(text)
        .then(|| java_special(text).or_else(|| text.parse::<f32>().ok().map(f64::from)))
        .flatten()
        .ok_or_else(|| ValueError::NotA {
            text: text.to_string(),
            what: "a number",
            ty,
        })?;
    finite_if_spelled_so(text, x, ty)
}

fn java_special(text: &str) -> Option<f64> {
    match text {
        "NaN" => Some(f64::NAN),
        "Infinity" | "+Infinity" => Some(f64::INFINITY),
        "-Infinity" => Some(f64::NEG_INFINITY),
        _ => None,
    }
}

fn finite_if_spelled_so(text: &str, x: f64, ty: &'static str) -> Result<f64, ValueError> {
    if x.is_infinite() && !text.ends_with("Infinity") {
        return Err(ValueError::OutOfRange {
            text: text.to_string(),
            ty,
        });
    }
    Ok(x)
}

/// A DATE: the int `yyyyMMdd` (`Field.getStringValue`, 1.3.2/1.3.3/2.0.x) or `yyyy-MM-dd`
/// (`LocalDate.toString`, 1.3.4/master), as `YYYY-MM-DD`.
fn date(text: &str) -> Option<String> {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let (y, m, d) = if digits(text) {
        let v: u32 = text.parse().ok()?;
        (v / 10_000, (v / 100) % 100, v % 100)
    } else {
        let mut parts = text.splitn(3, '-');
        let (y, m, d) = (parts.next()?, parts.next()?, parts.next()?);
        if y.len() != 4 || m.len() != 2 || d.len() != 2 || ![y, m, d].iter().all(|p| digits(p)) {
            return None;
        }
        (y.parse().ok()?, m.parse().ok()?, d.parse().ok()?)
    };
    let date = NaiveDate::from_ymd_opt(i32::try_from(y).ok()?, m, d)?;
    Some(date.format("%Y-%m-%d").to_string())
}

/// A BLOB: `0x` and pairs of hex digits (`BytesUtils.parseBlobByteArrayToString`), as `0x`
/// and lowercase hex.
fn blob(text: &str) -> Option<String> {
    let hex = text.strip_prefix("0x")?;
    let ok = hex.len().is_multiple_of(2) && hex.bytes().all(|b| b.is_ascii_hexdigit());
    ok.then(|| format!("0x{}", hex.to_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: TimeUnit = TimeUnit::Millis;

    fn read(text: &str, t: Option<IotType>) -> Result<Option<(Value, IotType)>, ValueError> {
        read_value(text, t, MS)
    }

    fn text(s: &str, t: IotType) -> Result<Option<(Value, IotType)>, ValueError> {
        Ok(Some((Value::Text(s.into()), t)))
    }

    /// TEXT as every release's export loop writes it (v0.13.4 `ExportCsv.java` L359-380, v1.3.4
    /// `ExportData.java` L675-677): one `"` added each side, inner quotes untouched, `root.…`
    /// bare; the strip-one-quote rule of IoTDB's importer (v1.3.0 `ImportCsv.java` L967-970).
    #[test]
    fn text_loses_exactly_one_quote_each_side() {
        use IotType::{String as Str, Text};
        let t = Some(Text);
        assert_eq!(read("\"plain\"", t), text("plain", Text));
        assert_eq!(read("\"a\"b\"", t), text("a\"b", Text));
        assert_eq!(read("\"end\"\"", t), text("end\"", Text));
        assert_eq!(read("\"\"\"", t), text("\"", Text));
        assert_eq!(read("\"\"", t), text("", Text));
        assert_eq!(read("\"\"hi\"\"", Some(Str)), text("\"hi\"", Str));
        assert_eq!(read("root.sg.d1", t), text("root.sg.d1", Text));
        assert_eq!(read("root.x\"", t), text("root.x\"", Text));
        assert_eq!(read("", t), Ok(None), "an empty cell is a NULL");
        assert_eq!(read("\"", t), Err(ValueError::LoneQuote { ty: "TEXT" }));
        for bare in ["plain", "\"open", "close\"", "12", "Root.x"] {
            assert_eq!(
                read(bare, Some(Str)),
                Err(ValueError::NotWrapped {
                    text: bare.into(),
                    ty: "STRING"
                }),
                "{bare}"
            );
        }
    }

    /// Java's `Float.toString`/`Double.toString` spellings (tsfile `Field.getStringValue`,
    /// fact sheet §4); a FLOAT is the 32-bit float `Float.parseFloat` gives.
    #[test]
    fn numbers_in_javas_spelling() {
        let d = |s: &str| match read(s, Some(IotType::Double)) {
            Ok(Some((Value::Double(x), IotType::Double))) => x,
            other => panic!("{s}: {other:?}"),
        };
        assert_eq!(d("1.0E300"), 1e300);
        assert_eq!(d("4.9E-324"), 5e-324);
        assert_eq!(d("0.30000000000000004"), 0.1 + 0.2);
        assert_eq!(d("1.0E-5"), 1e-5);
        assert_eq!(d("100.0"), 100.0);
        assert!(d("-0.0") == 0.0 && d("-0.0").is_sign_negative());
        assert!(d("NaN").is_nan());
        assert_eq!(d("-Infinity"), f64::NEG_INFINITY);
        assert_eq!(d("Infinity"), f64::INFINITY);
        let f = |s: &str| match read(s, Some(IotType::Float)) {
            Ok(Some((Value::Double(x), IotType::Float))) => x,
            other => panic!("{s}: {other:?}"),
        };
        assert_eq!(f("1.1"), f64::from(1.1f32));
        assert_eq!(f("1.2345678E7"), f64::from(1.234_567_8e7f32));
        assert_eq!(f("1.4E-45"), f64::from(f32::from_bits(1)));
        assert_eq!(f("3.4028235E38"), f64::from(f32::MAX));
        assert!(f("NaN").is_nan());
        for bad in [
            "abc",
            "1,5",
            "0x10",
            "1e",
            "e5",
            ".",
            "nan",
            "inf",
            "Infinity1",
            " 1.5",
            "1.5f",
        ] {
            assert!(
                matches!(
                    read(bad, Some(IotType::Double)),
                    Err(ValueError::NotA { .. })
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            read("1.0E39", Some(IotType::Float)),
            Err(ValueError::OutOfRange { .. })
        ));
        assert!(matches!(
            read("1e309", Some(IotType::Double)),
            Err(ValueError::OutOfRange { .. })
        ));
    }

    #[test]
    fn booleans_integers_dates_blobs_timestamps() {
        use IotType::*;
        assert_eq!(
            read("true", Some(Boolean)),
            Ok(Some((Value::Bool(true), Boolean)))
        );
        assert_eq!(
            read("FALSE", Some(Boolean)),
            Ok(Some((Value::Bool(false), Boolean)))
        );
        assert!(read("yes", Some(Boolean)).is_err());
        assert_eq!(
            read("-2147483648", Some(Int32)),
            Ok(Some((Value::Int(-2_147_483_648), Int32)))
        );
        assert!(matches!(
            read("3000000000", Some(Int32)),
            Err(ValueError::OutOfRange { .. })
        ));
        assert_eq!(
            read("9007199254740993", Some(Int64)),
            Ok(Some((Value::Int(9_007_199_254_740_993), Int64)))
        );
        assert!(read("1.5", Some(Int64)).is_err());
        assert!(read("9223372036854775808", Some(Int64)).is_err());
        // DATE: the int of 1.3.2/1.3.3/2.0.x tree (tsfile Field L174-175) and 1.3.4's
        // LocalDate.toString (v1.3.4 ExportData.java L690).
        assert_eq!(read("20240528", Some(Date)), text("2024-05-28", Date));
        assert_eq!(read("2024-05-28", Some(Date)), text("2024-05-28", Date));
        assert_eq!(read("10101", Some(Date)), text("0001-01-01", Date));
        for bad in [
            "20240230",
            "2024-5-28",
            "2024-02-30",
            "24-05-28x",
            "-20240528",
        ] {
            assert!(read(bad, Some(Date)).is_err(), "{bad}");
        }
        // BLOB: BytesUtils.parseBlobByteArrayToString (v1.3.4 ExportData.java L683).
        assert_eq!(read("0x0aff", Some(Blob)), text("0x0aff", Blob));
        assert_eq!(read("0x0AFF", Some(Blob)), text("0x0aff", Blob));
        assert_eq!(read("0x", Some(Blob)), text("0x", Blob));
        for bad in ["0x0", "0xzz", "X'0a'", "\"0x0a\""] {
            assert!(read(bad, Some(Blob)).is_err(), "{bad}");
        }
        // TIMESTAMP: the raw epoch count (1.3.2-2.0.5 tree), or ISO (master).
        assert_eq!(
            read("1700000000123", Some(Timestamp)),
            Ok(Some((Value::Int(1_700_000_000_123), Timestamp)))
        );
        assert_eq!(
            read("2023-11-14T22:13:20.123Z", Some(Timestamp)),
            Ok(Some((Value::Int(1_700_000_000_123), Timestamp)))
        );
        assert!(matches!(
            read("soon", Some(Timestamp)),
            Err(ValueError::Time(_))
        ));
    }

    /// Untyped headers are the real default (`-datatype`/`-dt` reads as false when not given,
    /// v0.13.4 `ExportCsv.java` L180-185; the 2.0.x tree export ignores it).
    #[test]
    fn untyped_cells_by_their_look() {
        use IotType::*;
        assert_eq!(read("\"12\"", None), text("12", Text));
        assert_eq!(read("root.sg.d1", None), text("root.sg.d1", Text));
        assert_eq!(read("false", None), Ok(Some((Value::Bool(false), Boolean))));
        assert_eq!(read("-12", None), Ok(Some((Value::Int(-12), Int64))));
        assert_eq!(
            read("1.0E10", None),
            Ok(Some((Value::Double(1e10), Double)))
        );
        assert_eq!(read("2024-05-28", None), text("2024-05-28", Date));
        assert_eq!(read("0x0aff", None), text("0x0aff", Blob));
        assert!(matches!(read("NaN", None), Ok(Some((Value::Double(x), Double))) if x.is_nan()));
        assert_eq!(read("\"", None), Err(ValueError::LoneQuote { ty: "TEXT" }));
        assert!(matches!(
            read("99999999999999999999", None),
            Err(ValueError::OutOfRange { .. })
        ));
        for bad in ["plain", "1,5", "yes", "2024-02-30", "1.0E"] {
            assert_eq!(
                read(bad, None),
                Err(ValueError::Unrecognised(bad.into())),
                "{bad}"
            );
        }
    }
}
