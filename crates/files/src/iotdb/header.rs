//! The header line of an IoTDB export: the layout, and each value column's series and type.
//!
//! IoTDB writes the header as an ordinary record (so a comma in a backquoted node is `\,`):
//! `Time` first, then `Device` when aligned by device, then the series — full paths aligned by
//! time, measurements aligned by device. With `-datatype true` (0.13–1.3.2) or `-dt true`
//! (1.3.3+; ignored by the 2.0.x tree export) each series carries its type, built as
//! `String.format("%s(%s)", name, type)` (v1.3.4 `ExportData.java` L606-616).

use super::Fields;

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
    /// STRING (1.3.2+).
    String,
    /// BLOB (1.3.2+), exported as `0x` and hex.
    Blob,
    /// TIMESTAMP (1.3.2+), exported as the raw epoch count.
    Timestamp,
    /// DATE (1.3.2+), exported as `20240528` or `2024-05-28`.
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

/// Why a series path cannot be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// An odd number of backquotes.
    #[error("series path {0:?}: a back-quote is not closed")]
    Unclosed(String),
    /// `a..b`, a trailing dot, an empty path.
    #[error("series path {0:?} has an empty node")]
    EmptyNode(String),
    /// Fewer than `root.<database>.<device>.<measurement>`'s nodes, or not under `root`.
    #[error("header column {0:?} is not a series path (root.<database>.<device>.<measurement>)")]
    NotSeries(String),
}

/// Why a header line is not one of an IoTDB export.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// The first column is not `Time`.
    #[error("the first column is {0:?}, not Time: not an IoTDB CSV export header")]
    NoTime(String),
    /// Only `Time` (and `Device`).
    #[error("the header names no series after Time")]
    NoSeries,
    /// `name(TYPE)` with a type IoTDB does not have (an expression such as `count(…)` too).
    #[error(
        "header column {column:?}: ({name}) is not an IoTDB type (BOOLEAN, INT32, INT64, FLOAT, \
         DOUBLE, TEXT, STRING, BLOB, TIMESTAMP, DATE)"
    )]
    UnknownType {
        /// The header cell.
        column: String,
        /// What is in the parentheses.
        name: String,
    },
    /// A series path that cannot be read.
    #[error(transparent)]
    Path(#[from] PathError),
    /// An empty column name.
    #[error("the header has an empty column name")]
    EmptyName,
}

impl Header {
    /// Reads a header line, or says why it is not one of an IoTDB export.
    pub fn parse(cells: &Fields) -> Result<Header, HeaderError> {
        let first = cells.get(0).unwrap_or("").trim();
        if !first.eq_ignore_ascii_case("time") {
            return Err(HeaderError::NoTime(first.to_string()));
        }
        let by_device = cells
            .get(1)
            .is_some_and(|n| n.trim().eq_ignore_ascii_case("device"));
        let (layout, skip) = if by_device {
            (Layout::AlignedByDevice, 2)
        } else {
            (Layout::AlignedByTime, 1)
        };
        let series = cells
            .iter()
            .skip(skip)
            .map(|name| series_column(name.trim(), layout))
            .collect::<Result<Vec<_>, _>>()?;
        if series.is_empty() {
            return Err(HeaderError::NoSeries);
        }
        Ok(Header { layout, series })
    }

    /// Fields a line of this header has.
    pub fn width(&self) -> usize {
        self.series.len() + self.value_start()
    }

    /// The index of the first value field: after `Time`, and `Device`.
    pub fn value_start(&self) -> usize {
        match self.layout {
            Layout::AlignedByTime => 1,
            Layout::AlignedByDevice => 2,
        }
    }
}

fn series_column(name: &str, layout: Layout) -> Result<SeriesColumn, HeaderError> {
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
        return Err(HeaderError::EmptyName);
    }
    Ok(col)
}

/// `root.sg.d1.s1(INT32)` → (`root.sg.d1.s1`, INT32). A `(…)` that is not a type is refused.
fn split_type(name: &str) -> Result<(&str, Option<IotType>), HeaderError> {
    let Some(inner) = name.strip_suffix(')') else {
        return Ok((name, None));
    };
    let Some(open) = inner.rfind('(') else {
        return Ok((name, None));
    };
    let ty = &inner[open + 1..];
    match IotType::parse(ty) {
        Some(t) => Ok((inner[..open].trim_end(), Some(t))),
        None => Err(HeaderError::UnknownType {
            column: name.to_string(),
            name: ty.to_string(),
        }),
    }
}

/// The nodes of a series path, split at dots outside back-quotes, with the quotes removed
/// (a doubled back-quote inside quotes is one).
pub fn path_nodes(path: &str) -> Result<Vec<String>, PathError> {
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
        return Err(PathError::Unclosed(path.to_string()));
    }
    nodes.push(cur);
    if nodes.iter().any(String::is_empty) {
        return Err(PathError::EmptyNode(path.to_string()));
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
pub fn split_path(path: &str) -> Result<(String, String), PathError> {
    let mut nodes = path_nodes(path)?;
    let is_root = nodes
        .first()
        .is_some_and(|n| n.eq_ignore_ascii_case("root"));
    let measurement = match nodes.pop() {
        Some(m) if nodes.len() >= 2 && is_root => m,
        _ => return Err(PathError::NotSeries(path.to_string())),
    };
    Ok((nodes.join("."), measurement))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(names: &[&str]) -> Result<Header, HeaderError> {
        Header::parse(&Fields::from_cells(names))
    }

    /// Typed headers as `String.format("%s(%s)", …)` builds them (v1.3.4 `ExportData.java`
    /// L606-616), untyped ones (the real default, v0.13.4 L180-185), ALIGN BY DEVICE
    /// (`Time,Device,…`), and a backquoted node whose comma the reader has unescaped.
    #[test]
    fn headers_of_both_layouts_with_and_without_types() {
        let h = header(&[
            "Time",
            "root.db.plant1.pump3.pressure(DOUBLE)",
            "root.db.`plant.2`.valve.open",
            "root.sg.`a,b`.s2(STRING)",
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(h.layout, Layout::AlignedByTime);
        let cols: Vec<(&str, &str, Option<IotType>)> = h
            .series
            .iter()
            .map(|c| (c.device.as_str(), c.measurement.as_str(), c.dtype))
            .collect();
        assert_eq!(
            cols,
            [
                ("root.db.plant1.pump3", "pressure", Some(IotType::Double)),
                ("root.db.plant.2.valve", "open", None),
                ("root.sg.a,b", "s2", Some(IotType::String)),
            ]
        );
        assert_eq!(h.width(), 4);
        let d = header(&["Time", "Device", "s1(INT32)", "status", "`a.b`"])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(d.layout, Layout::AlignedByDevice);
        assert_eq!(d.series[0].measurement, "s1");
        assert_eq!(d.series[0].dtype, Some(IotType::Int32));
        assert_eq!(d.series[2].measurement, "a.b");
        assert_eq!((d.width(), d.value_start()), (5, 2));
    }

    #[test]
    fn what_is_not_an_export_header_says_why() {
        assert_eq!(
            header(&["Timestamp", "root.a.b.c"]),
            Err(HeaderError::NoTime("Timestamp".into()))
        );
        assert_eq!(header(&["Time"]), Err(HeaderError::NoSeries));
        assert_eq!(header(&["Time", "Device"]), Err(HeaderError::NoSeries));
        assert!(matches!(
            header(&["Time", "root.a.b.c(INT128)"]),
            Err(HeaderError::UnknownType { name, .. }) if name == "INT128"
        ));
        assert!(matches!(
            header(&["Time", "count(root.sg.d1.s1)"]),
            Err(HeaderError::UnknownType { .. })
        ));
        assert_eq!(
            header(&["Time", "pressure"]),
            Err(HeaderError::Path(PathError::NotSeries("pressure".into())))
        );
        assert_eq!(
            header(&["Time", "root.a.`b.c"]),
            Err(HeaderError::Path(PathError::Unclosed("root.a.`b.c".into())))
        );
        assert_eq!(
            header(&["Time", "root.a..c"]),
            Err(HeaderError::Path(PathError::EmptyNode("root.a..c".into())))
        );
    }
}
