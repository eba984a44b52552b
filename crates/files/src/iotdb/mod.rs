//! Apache IoTDB CSV exports, read as the export tools of released IoTDB versions write them
//! (`export-csv` in 0.13–1.3.0, `export-data -ft csv` from 1.3.2 on; see
//! docs/plan.md#iotdb-exports for what is read and what is rejected).
//!
//! What the exporter writes, the same in every release: Apache Commons CSV with escape `\` and
//! `QuoteMode.NONE` prints every record on one physical line ending in CRLF, with `,` written
//! as `\,`, `\` as `\\`, CR as `\r` and LF as `\n`, and nothing else escaped — a `"` is an
//! ordinary character. Before printing, IoTDB wraps each TEXT (and STRING) value in one `"`
//! on each side, without escaping the quotes inside, unless it starts with `root.`. Numbers
//! are Java's `Float.toString`/`Double.toString` (`1.0E10`, `NaN`, `-Infinity`, `-0.0`), a
//! NULL is an empty field, times are ISO-8601 with an offset or raw epoch counts.
//!
//! Two layouts:
//! - aligned by time: `Time,root.sg.d1.s1,root.sg.d1.s2(INT32),…` — one column per series path;
//! - aligned by device: `Time,Device,s1,s2(INT32),…` — the device path in column 2.
//!
//! Pure: [`ExportReader`] splits a file into lines of fields ([`Fields`]) with their line
//! numbers, [`Header`] reads the first line, [`parse_time`] and [`read_value`] read cells.
//! The source ([`crate::source`]) puts them together and turns every error into a rejected
//! row naming the file and line.

mod header;
mod lines;
mod time;
mod value;

pub use header::{
    path_nodes, split_path, Header, HeaderError, IotType, Layout, PathError, SeriesColumn,
};
pub use lines::{split_line, ExportReader, Fields, Line, LineError};
pub use time::{guess_unit, parse_iso_time, parse_time, IsoTime, TimeError};
pub use value::{read_value, Value, ValueError};
