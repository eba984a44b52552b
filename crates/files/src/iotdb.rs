//! Apache IoTDB CSV exports, as IoTDB's `export-data -ft csv` (and the older `export-csv`)
//! write them: the header, records, times and values.
//!
//! Two layouts:
//! - aligned by time: `Time,root.sg.d1.s1,root.sg.d1.s2(INT32),…` — one column per series path;
//! - aligned by device: `Time,Device,s1,s2(INT32),…` — the device path in column 2.
//!
//! A header cell may carry the series' type in parentheses (never `Time`/`Device`). An empty
//! field is a null. Time is ISO-8601 with an offset (`1970-01-01T08:00:00.001+08:00`), or an
//! integer count (ms by default; µs or ns when the server was set so); a row with time 0 may
//! have an empty Time cell. TEXT values are wrapped in double quotes (unless they start with
//! `root.`) and may hold backslash escapes `\,` `\"` `\\`; a quoted value may span lines.
//!
//! Pure: [`Tokenizer`] turns bytes into records with their line numbers, [`Header`] reads the
//! first record, [`parse_time`] and [`parse_value`] read cells. The source
//! ([`crate::source`]) puts them together.

use std::io::BufRead;

use tsmigrate_core::TimeUnit;

/// One field of a record: its text (quotes removed, escapes resolved) and whether it was
/// quoted (a quoted field is TEXT, and a quoted empty field is an empty string, not a null).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cell {
    /// The value's text.
    pub text: String,
    /// True when the field was wrapped in double quotes.
    pub quoted: bool,
}

/// A record and the line it starts on (1-based).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Line number of the record's first line.
    pub line: u64,
    /// The fields.
    pub cells: Vec<Cell>,
}

/// Splits an export file into records: fields separated by commas, double-quoted fields
/// (which may hold commas and newlines), backslash escapes inside and outside quotes.
pub struct Tokenizer<R> {
    input: R,
    line: u64,
    buf: String,
    /// IoTDB's dialect: backslash escapes, blank lines between records skipped. Off for
    /// RFC 4180 CSV ([`Tokenizer::rfc4180`]), where a backslash is a character and a blank
    /// line is a record of one empty field.
    iotdb: bool,
}

impl<R: BufRead> Tokenizer<R> {
    /// A tokenizer over `input`, starting at line 1.
    pub fn new(input: R) -> Self {
        Tokenizer {
            input,
            line: 0,
            buf: String::new(),
            iotdb: true,
        }
    }

    /// A tokenizer of plain RFC 4180 CSV (fields quoted with `"`, `""` inside quotes is a
    /// quote, no backslash escapes), starting at line 1. Cells still say whether they were
    /// quoted, so a quoted empty field (an empty string) differs from an empty one (NULL).
    pub fn rfc4180(input: R) -> Self {
        Tokenizer {
            iotdb: false,
            ..Tokenizer::new(input)
        }
    }

    /// The next record, `Ok(None)` at the end. An `Err` is an I/O or encoding error, or a
    /// quoted field still open at the end of the file (with the line it started on).
    pub fn next_record(&mut self) -> Result<Option<Record>, String> {
        let mut cells = Vec::new();
        let mut cur = String::new();
        let mut quoted = false;
        let mut in_quotes = false;
        let mut start = 0;
        let mut any = false;
        loop {
            self.buf.clear();
            let n = self
                .input
                .read_line(&mut self.buf)
                .map_err(|e| format!("line {}: {e}", self.line + 1))?;
            if n == 0 {
                if in_quotes {
                    return Err(format!(
                        "line {start}: a quoted value is not closed before the end of the file"
                    ));
                }
                if any {
                    cells.push(Cell { text: cur, quoted });
                    return Ok(Some(Record { line: start, cells }));
                }
                return Ok(None);
            }
            self.line += 1;
            if !any {
                start = self.line;
                // Skip blank lines between records.
                if self.iotdb && self.buf.trim_end_matches(['\r', '\n']).is_empty() {
                    continue;
                }
            }
            any = true;
            let mut chars = self.buf.chars().peekable();
            while let Some(c) = chars.next() {
                match c {
                    '\\' if self.iotdb => match chars.peek() {
                        Some(&n) if n == ',' || n == '"' || n == '\\' => {
                            cur.push(n);
                            chars.next();
                        }
                        _ => cur.push('\\'),
                    },
                    '"' if in_quotes => {
                        if chars.peek() == Some(&'"') {
                            cur.push('"');
                            chars.next();
                        } else {
                            in_quotes = false;
                        }
                    }
                    '"' if cur.is_empty() && !quoted => {
                        in_quotes = true;
                        quoted = true;
                    }
                    ',' if !in_quotes => {
                        cells.push(Cell {
                            text: std::mem::take(&mut cur),
                            quoted,
                        });
                        quoted = false;
                    }
                    '\r' if !in_quotes && chars.peek() == Some(&'\n') => {}
                    '\n' if !in_quotes => {
                        cells.push(Cell {
                            text: std::mem::take(&mut cur),
                            quoted,
                        });
                        return Ok(Some(Record { line: start, cells }));
                    }
                    c => cur.push(c),
                }
            }
            if !in_quotes {
                // The last line of the file without a newline.
                cells.push(Cell {
                    text: std::mem::take(&mut cur),
                    quoted,
                });
                return Ok(Some(Record { line: start, cells }));
            }
        }
    }
}

/// IoTDB's data types, as export headers name them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IotType {
    /// BOOLEAN.
    Boolean,
    /// INT32.
    Int32,
    /// INT64.
    Int64,
    /// FLOAT (32-bit).
    Float,
    /// DOUBLE.
    Double,
    /// TEXT.
    Text,
    /// STRING (newer versions).
    String,
    /// BLOB (newer versions), exported as `0x…` hex.
    Blob,
    /// TIMESTAMP (newer versions).
    Timestamp,
    /// DATE (newer versions).
    Date,
}

impl IotType {
    /// The type a header's `(TYPE)` names.
    pub fn parse(name: &str) -> Option<IotType> {
        Some(match name.trim().to_ascii_uppercase().as_str() {
            "BOOLEAN" => IotType::Boolean,
            "INT32" => IotType::Int32,
            "INT64" => IotType::Int64,
            "FLOAT" => IotType::Float,
            "DOUBLE" => IotType::Double,
            "TEXT" => IotType::Text,
            "STRING" => IotType::String,
            "BLOB" => IotType::Blob,
            "TIMESTAMP" => IotType::Timestamp,
            "DATE" => IotType::Date,
            _ => return None,
        })
    }

    /// The name IoTDB gives it.
    pub fn name(self) -> &'static str {
        match self {
            IotType::Boolean => "BOOLEAN",
            IotType::Int32 => "INT32",
            IotType::Int64 => "INT64",
            IotType::Float => "FLOAT",
            IotType::Double => "DOUBLE",
            IotType::Text => "TEXT",
            IotType::String => "STRING",
            IotType::Blob => "BLOB",
            IotType::Timestamp => "TIMESTAMP",
            IotType::Date => "DATE",
        }
    }
}

/// The layout of an export file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// `Time,root.sg.d1.s1,…`.
    AlignedByTime,
    /// `Time,Device,s1,…`.
    AlignedByDevice,
}

/// A value column of the header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeriesColumn {
    /// The device path (aligned by time; empty when aligned by device: the row says).
    pub device: String,
    /// The measurement.
    pub measurement: String,
    /// The type the header gives, if any.
    pub dtype: Option<IotType>,
}

/// A parsed header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// Which layout.
    pub layout: Layout,
    /// The value columns, in file order (after `Time`, and `Device`).
    pub series: Vec<SeriesColumn>,
}

impl Header {
    /// Reads a header record, or says why it is not one of an IoTDB export.
    pub fn parse(cells: &[Cell]) -> Result<Header, String> {
        // (A byte-order mark, as Windows tools write one, is not part of the first name.)
        let names: Vec<&str> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let t = c.text.trim();
                if i == 0 {
                    t.trim_start_matches('\u{feff}')
                } else {
                    t
                }
            })
            .collect();
        if !names
            .first()
            .is_some_and(|n| n.eq_ignore_ascii_case("time"))
        {
            return Err(format!(
                "the first column is {:?}, not Time: not an IoTDB CSV export header",
                names.first().copied().unwrap_or("")
            ));
        }
        let by_device = names
            .get(1)
            .is_some_and(|n| n.eq_ignore_ascii_case("device"));
        let layout = if by_device {
            Layout::AlignedByDevice
        } else {
            Layout::AlignedByTime
        };
        let skip = if by_device { 2 } else { 1 };
        let mut series = Vec::new();
        for name in names.iter().skip(skip) {
            let (path, dtype) = split_type(name)?;
            let col = match layout {
                Layout::AlignedByTime => {
                    let (device, measurement) = split_path(path)?;
                    SeriesColumn {
                        device,
                        measurement,
                        dtype,
                    }
                }
                Layout::AlignedByDevice => SeriesColumn {
                    device: String::new(),
                    measurement: unquote_node(path),
                    dtype,
                },
            };
            if col.measurement.is_empty() {
                return Err("the header has an empty column name".into());
            }
            series.push(col);
        }
        if series.is_empty() {
            return Err("the header names no series after Time".into());
        }
        Ok(Header { layout, series })
    }

    /// Fields a record of this header has.
    pub fn width(&self) -> usize {
        self.series.len()
            + match self.layout {
                Layout::AlignedByTime => 1,
                Layout::AlignedByDevice => 2,
            }
    }
}

/// `root.sg.d1.s1(INT32)` → (`root.sg.d1.s1`, INT32). A `(…)` that is not a type is refused.
fn split_type(name: &str) -> Result<(&str, Option<IotType>), String> {
    if let (Some(open), true) = (name.rfind('('), name.ends_with(')')) {
        let ty = &name[open + 1..name.len() - 1];
        return match IotType::parse(ty) {
            Some(t) => Ok((name[..open].trim_end(), Some(t))),
            None => Err(format!(
                "header column {name:?}: ({ty}) is not an IoTDB type (BOOLEAN, INT32, INT64, FLOAT, DOUBLE, TEXT, STRING, BLOB, TIMESTAMP, DATE)"
            )),
        };
    }
    Ok((name, None))
}

/// The nodes of a series path, split at dots outside back-quotes, with the quotes removed.
pub fn path_nodes(path: &str) -> Result<Vec<String>, String> {
    let mut nodes = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = path.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '`' if quoted && chars.peek() == Some(&'`') => {
                cur.push('`');
                chars.next();
            }
            '`' => quoted = !quoted,
            '.' if !quoted => nodes.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    if quoted {
        return Err(format!("series path {path:?}: a back-quote is not closed"));
    }
    nodes.push(cur);
    if nodes.iter().any(String::is_empty) {
        return Err(format!("series path {path:?} has an empty node"));
    }
    Ok(nodes)
}

fn unquote_node(name: &str) -> String {
    path_nodes(name)
        .map(|n| n.join("."))
        .unwrap_or_else(|_| name.to_string())
}

/// `root.db.plant1.pump3.pressure` → (`root.db.plant1.pump3`, `pressure`): the device is the
/// path without its last node (back-quotes removed, nodes joined by dots).
pub fn split_path(path: &str) -> Result<(String, String), String> {
    let mut nodes = path_nodes(path)?;
    if nodes.len() < 3 || !nodes[0].eq_ignore_ascii_case("root") {
        return Err(format!(
            "header column {path:?} is not a series path (root.<database>.<device>.<measurement>)"
        ));
    }
    let measurement = nodes.pop().unwrap_or_default();
    Ok((nodes.join("."), measurement))
}

/// Reads a Time cell as a count of `unit` since the epoch: an integer (in `unit`), or an
/// ISO-8601 time with an offset (which must be a whole number of `unit`s). An empty cell is
/// time 0 (IoTDB may leave it empty for that row).
pub fn parse_time(text: &str, unit: TimeUnit) -> Result<i64, String> {
    let t = text.trim();
    if t.is_empty() {
        return Ok(0);
    }
    if t.bytes().all(|b| b.is_ascii_digit())
        || (t.starts_with('-') && t.len() > 1 && t[1..].bytes().all(|b| b.is_ascii_digit()))
    {
        return t
            .parse::<i64>()
            .map_err(|_| format!("time {t:?} does not fit a 64-bit integer"));
    }
    let dt = chrono::DateTime::parse_from_rfc3339(t)
        .or_else(|_| chrono::DateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.f%:z"))
        .map_err(|_| {
            format!("time {t:?} is neither an integer nor an ISO-8601 time with an offset (such as 2024-01-01T08:00:00.001+08:00)")
        })?;
    let secs = i128::from(dt.timestamp());
    let nanos = i128::from(dt.timestamp_subsec_nanos());
    let per_second = i128::from(unit.per_second());
    let step = 1_000_000_000 / per_second;
    if nanos % step != 0 {
        return Err(format!(
            "time {t:?} is finer than the declared time unit ({})",
            unit.short_name()
        ));
    }
    let ticks = secs * per_second + nanos / step;
    i64::try_from(ticks).map_err(|_| format!("time {t:?} is out of range"))
}

/// The unit an integer time most likely counts, from its number of digits (for times after
/// 2001): 13 digits ms, 16 µs, 19 ns, 10 s. `None` when it says nothing (small or odd).
pub fn guess_unit(ticks: i64) -> Option<TimeUnit> {
    match ticks.unsigned_abs().checked_ilog10().map(|d| d + 1) {
        Some(10) => Some(TimeUnit::Seconds),
        Some(13) => Some(TimeUnit::Millis),
        Some(16) => Some(TimeUnit::Micros),
        Some(19) => Some(TimeUnit::Nanos),
        _ => None,
    }
}

/// A value read from a cell.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// BOOLEAN.
    Bool(bool),
    /// INT32, INT64 (and TIMESTAMP as its integer).
    Int(i64),
    /// FLOAT, DOUBLE.
    Double(f64),
    /// TEXT, STRING, DATE, BLOB (its `0x…` text).
    Text(String),
}

/// Reads a non-empty cell as `dtype` (or, without a type in the header, as what it looks
/// like: a quoted cell is TEXT, `true`/`false` BOOLEAN, an integer INT64, a number DOUBLE,
/// anything else TEXT). Returns the value and the type it was read as.
pub fn parse_value(cell: &Cell, dtype: Option<IotType>) -> Result<(Value, IotType), String> {
    let t = cell.text.as_str();
    let Some(dtype) = dtype else {
        if cell.quoted {
            return Ok((Value::Text(cell.text.clone()), IotType::Text));
        }
        let trimmed = t.trim();
        if trimmed.eq_ignore_ascii_case("true") || trimmed.eq_ignore_ascii_case("false") {
            return parse_value(cell, Some(IotType::Boolean));
        }
        if let Ok(i) = trimmed.parse::<i64>() {
            return Ok((Value::Int(i), IotType::Int64));
        }
        if let Some(d) = parse_double(trimmed) {
            return Ok((Value::Double(d), IotType::Double));
        }
        return Ok((Value::Text(cell.text.clone()), IotType::Text));
    };
    let trimmed = t.trim();
    let bad = |what: &str| format!("{t:?} is not {what} ({})", dtype.name());
    let v = match dtype {
        IotType::Boolean => match trimmed.to_ascii_lowercase().as_str() {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => return Err(bad("true or false")),
        },
        IotType::Int32 => {
            let i: i64 = trimmed.parse().map_err(|_| bad("an integer"))?;
            if i32::try_from(i).is_err() {
                return Err(bad("a 32-bit integer"));
            }
            Value::Int(i)
        }
        IotType::Int64 | IotType::Timestamp => {
            Value::Int(trimmed.parse().map_err(|_| bad("a 64-bit integer"))?)
        }
        IotType::Float | IotType::Double => {
            Value::Double(parse_double(trimmed).ok_or_else(|| bad("a number"))?)
        }
        IotType::Text | IotType::String | IotType::Blob | IotType::Date => {
            Value::Text(cell.text.clone())
        }
    };
    Ok((v, dtype))
}

/// A number as IoTDB writes one: decimal or exponent notation, `NaN`, `Infinity`, `-Infinity`.
fn parse_double(t: &str) -> Option<f64> {
    match t {
        "NaN" => Some(f64::NAN),
        "Infinity" | "+Infinity" => Some(f64::INFINITY),
        "-Infinity" => Some(f64::NEG_INFINITY),
        _ if t
            .bytes()
            .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b))
            && t.bytes().any(|b| b.is_ascii_digit()) =>
        {
            t.parse().ok()
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(text: &str) -> Vec<Record> {
        let mut t = Tokenizer::new(text.as_bytes());
        let mut out = Vec::new();
        while let Ok(Some(r)) = t.next_record() {
            out.push(r);
        }
        out
    }

    fn texts(r: &Record) -> Vec<&str> {
        r.cells.iter().map(|c| c.text.as_str()).collect()
    }

    #[test]
    fn records_split_at_commas_outside_quotes_with_escapes_and_line_numbers() {
        let rs = records(
            "Time,root.sg.d1.s1,root.sg.d1.s2\r\n\
             1,\"a, \\\"quoted\\\" text\",2\n\
             \n\
             2,\"two\nlines\",\n\
             3,back\\,slash \\\\ end,\"\"\n\
             4,,root.sg.d1",
        );
        assert_eq!(rs.len(), 5);
        assert_eq!(texts(&rs[0]), ["Time", "root.sg.d1.s1", "root.sg.d1.s2"]);
        assert_eq!(texts(&rs[1]), ["1", "a, \"quoted\" text", "2"]);
        assert!(rs[1].cells[1].quoted && !rs[1].cells[2].quoted);
        assert_eq!(rs[2].line, 4);
        assert_eq!(texts(&rs[2]), ["2", "two\nlines", ""]);
        assert_eq!(rs[3].line, 6);
        assert_eq!(texts(&rs[3]), ["3", "back,slash \\ end", ""]);
        assert!(
            rs[3].cells[2].quoted,
            "a quoted empty value is an empty string"
        );
        assert!(!rs[4].cells[1].quoted);
        assert_eq!(texts(&rs[4]), ["4", "", "root.sg.d1"]);
        let mut open = Tokenizer::new("1,\"never closed\n2,3\n".as_bytes());
        assert!(matches!(open.next_record(), Err(m) if m.contains("line 1")));
    }

    #[test]
    fn headers_of_both_layouts_with_and_without_types() {
        let cells = |names: &[&str]| -> Vec<Cell> {
            names
                .iter()
                .map(|n| Cell {
                    text: n.to_string(),
                    quoted: false,
                })
                .collect()
        };
        let h = Header::parse(&cells(&[
            "Time",
            "root.db.plant1.pump3.pressure(DOUBLE)",
            "root.db.`plant.2`.valve.open",
        ]))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(h.layout, Layout::AlignedByTime);
        assert_eq!(h.series[0].device, "root.db.plant1.pump3");
        assert_eq!(h.series[0].measurement, "pressure");
        assert_eq!(h.series[0].dtype, Some(IotType::Double));
        assert_eq!(h.series[1].device, "root.db.plant.2.valve");
        assert_eq!(h.series[1].dtype, None);
        assert_eq!(h.width(), 3);
        let d = Header::parse(&cells(&["Time", "Device", "s1(INT32)", "status"]))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(d.layout, Layout::AlignedByDevice);
        assert_eq!(d.series[0].measurement, "s1");
        assert_eq!(d.width(), 4);
        let bom = Header::parse(&cells(&["\u{feff}Time", "root.sg.d1.s1"]));
        assert!(bom.is_ok(), "a byte-order mark before Time: {bom:?}");
        for bad in [
            &["Timestamp", "root.a.b.c"][..],
            &["Time"][..],
            &["Time", "root.a.b.c(INT128)"][..],
            &["Time", "pressure"][..],
            &["Time", "root.a.`b.c"][..],
        ] {
            assert!(Header::parse(&cells(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn times_in_every_form_and_unit() {
        assert_eq!(
            parse_time("1700000000123", TimeUnit::Millis),
            Ok(1_700_000_000_123)
        );
        assert_eq!(parse_time("-5", TimeUnit::Millis), Ok(-5));
        assert_eq!(parse_time("", TimeUnit::Millis), Ok(0));
        assert_eq!(
            parse_time("1970-01-01T08:00:00.001+08:00", TimeUnit::Millis),
            Ok(1)
        );
        assert_eq!(
            parse_time("2024-03-01T12:00:00.000123456Z", TimeUnit::Nanos),
            Ok(1_709_294_400_000_123_456)
        );
        assert!(parse_time("2024-03-01T12:00:00.000123Z", TimeUnit::Millis).is_err());
        assert!(parse_time("yesterday", TimeUnit::Millis).is_err());
        assert!(parse_time("99999999999999999999", TimeUnit::Millis).is_err());
        assert_eq!(guess_unit(1_700_000_000_123), Some(TimeUnit::Millis));
        assert_eq!(guess_unit(1_700_000_000_123_456), Some(TimeUnit::Micros));
        assert_eq!(guess_unit(1_700_000_000_123_456_789), Some(TimeUnit::Nanos));
        assert_eq!(guess_unit(1_700_000_000), Some(TimeUnit::Seconds));
        assert_eq!(guess_unit(42), None);
    }

    #[test]
    fn values_by_declared_type_and_by_look() {
        let cell = |t: &str, quoted: bool| Cell {
            text: t.into(),
            quoted,
        };
        let read = |t: &str, ty: Option<IotType>| parse_value(&cell(t, false), ty);
        assert_eq!(
            read("true", Some(IotType::Boolean)),
            Ok((Value::Bool(true), IotType::Boolean))
        );
        assert!(read("yes", Some(IotType::Boolean)).is_err());
        assert!(read("3000000000", Some(IotType::Int32)).is_err());
        assert_eq!(
            read("9007199254740993", Some(IotType::Int64)),
            Ok((Value::Int(9_007_199_254_740_993), IotType::Int64))
        );
        assert!(read("1.5", Some(IotType::Int64)).is_err());
        assert!(
            matches!(read("NaN", Some(IotType::Double)), Ok((Value::Double(d), _)) if d.is_nan())
        );
        assert_eq!(
            read("-Infinity", Some(IotType::Float)),
            Ok((Value::Double(f64::NEG_INFINITY), IotType::Float))
        );
        assert!(read("abc", Some(IotType::Double)).is_err());
        assert_eq!(read("12", None), Ok((Value::Int(12), IotType::Int64)));
        assert_eq!(
            read("1.25e3", None),
            Ok((Value::Double(1250.0), IotType::Double))
        );
        assert_eq!(
            read("FALSE", None),
            Ok((Value::Bool(false), IotType::Boolean))
        );
        assert_eq!(
            read("root.sg.d1", None),
            Ok((Value::Text("root.sg.d1".into()), IotType::Text))
        );
        assert_eq!(
            parse_value(&cell("12", true), None),
            Ok((Value::Text("12".into()), IotType::Text)),
            "a quoted number is TEXT"
        );
    }
}
