//! `[source] kind = "iotdb"`: the CSV files IoTDB's export tools write, read as one narrow
//! stream of points (`from = "points"`): one row per non-empty value.
//!
//! ```toml
//! [source]
//! kind = "iotdb"
//! path = "exports/"            # a directory (its *.csv files), one file, or a glob (exports/dump0_*.csv)
//! time_unit = "ms"             # what integer times count: s, ms, us, ns (default: detected, and said)
//! strip_prefix = "root.db."    # taken off the front of every device path
//! devices = { "root.db.plant1.pump3" = "pump-3" }   # device names after stripping, renamed
//! ```
//!
//! Columns of the stream: `device`, `measurement`, `time` (a timestamp in `time_unit`),
//! `data_type` (the IoTDB type: from the header, or what the value looks like), `bool_value`,
//! `int_value`, `double_value`, `text_value` (the one matching the type holds the value),
//! `file` and `line` (where the value was read). A line that cannot be read (a wrong number of
//! fields, a bad time, a value that is not of its column's type) becomes a rejected row with
//! the file, line and reason — never silently dropped.
//!
//! Files are read in natural order of their names (`dump0_2.csv` before `dump0_10.csv`), one
//! partition each.
//!
//! The stream's `filter` selects points: `since`/`until` by time, `devices` by device name
//! (after `strip_prefix` and `devices`), `keys` by measurement.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use tsmigrate_core::batch::SOURCE_ERROR;
use tsmigrate_core::connector::bound_ticks;
use tsmigrate_core::{
    Batch, BatchTx, Column, DataType, Endpoint, Error, Field, Partition, ReadOptions, Result,
    Schema, Source, StreamInfo, StreamSpec, TimeUnit,
};

use crate::iotdb::{
    guess_unit, parse_time, parse_value, path_nodes, Header, Layout, Record, Tokenizer, Value,
};
use crate::listing::list_files;

/// The one stream of an IoTDB export.
pub const POINTS: &str = "points";

/// Reads IoTDB CSV exports.
pub struct IotdbSource {
    path: PathBuf,
    time_unit: Option<TimeUnit>,
    strip_prefix: Option<String>,
    devices: BTreeMap<String, String>,
}

/// Options of the `[source]` table, besides `kind`.
const OPTIONS: [&str; 4] = ["path", "time_unit", "strip_prefix", "devices"];

impl IotdbSource {
    /// The source of a `[source] kind = "iotdb"` endpoint.
    pub fn open(endpoint: &Endpoint) -> Result<IotdbSource> {
        if endpoint.url.is_some() {
            return Err(Error::Plan(
                "[source] kind = \"iotdb\" reads export files: give path = \"…\" instead of url"
                    .into(),
            ));
        }
        let mut path = None;
        let mut time_unit = None;
        let mut strip_prefix = None;
        let mut devices = BTreeMap::new();
        for (k, v) in &endpoint.options {
            match (k.as_str(), v) {
                ("path", toml::Value::String(p)) if !p.is_empty() => path = Some(PathBuf::from(p)),
                ("time_unit", toml::Value::String(u)) => {
                    time_unit = Some(TimeUnit::from_short_name(u, "[source] time_unit")?)
                }
                ("strip_prefix", toml::Value::String(p)) => strip_prefix = Some(p.clone()),
                ("devices", toml::Value::Table(t)) => {
                    for (from, to) in t {
                        let to = to.as_str().ok_or_else(|| {
                            Error::Plan(format!("[source] devices.{from:?} must be a string"))
                        })?;
                        devices.insert(from.clone(), to.to_string());
                    }
                }
                (k, _) if OPTIONS.contains(&k) => {
                    return Err(Error::Plan(format!(
                    "[source] kind = \"iotdb\": option `{k}` has the wrong type (see docs/plan.md)"
                )))
                }
                (k, _) => {
                    return Err(Error::Plan(format!(
                        "[source] kind = \"iotdb\" has no option `{k}`; its options are: {}",
                        OPTIONS.join(", ")
                    )))
                }
            }
        }
        let path = path.ok_or_else(|| {
            Error::Plan(
                "[source] kind = \"iotdb\" needs path = \"…\": a directory of export files, one file, or a glob".into(),
            )
        })?;
        Ok(IotdbSource {
            path,
            time_unit,
            strip_prefix,
            devices,
        })
    }

    /// The export files, in natural order of their names.
    fn files(&self) -> Result<Vec<PathBuf>> {
        list_files(&self.path, &["csv"], "export file")
    }

    /// The unit of the times: the plan's, else detected from the first file's first record.
    fn unit(&self, files: &[PathBuf]) -> Result<(TimeUnit, Option<String>)> {
        if let Some(u) = self.time_unit {
            return Ok((u, None));
        }
        let Some(first) = files.first() else {
            return Ok((TimeUnit::Millis, None));
        };
        let mut tok = Tokenizer::new(BufReader::new(File::open(first).map_err(|e| {
            Error::Io {
                path: first.display().to_string(),
                source: e,
            }
        })?));
        let _header = tok.next_record().map_err(|m| file_error(first, &m))?;
        let Some(rec) = tok.next_record().map_err(|m| file_error(first, &m))? else {
            return Ok((TimeUnit::Millis, None));
        };
        let t = rec.cells.first().map(|c| c.text.trim()).unwrap_or("");
        if let Ok(ticks) = t.parse::<i64>() {
            return match guess_unit(ticks) {
                Some(u) => Ok((
                    u,
                    Some(format!(
                        "integer times read as {} since the epoch, detected from {t} in {} (set time_unit to confirm)",
                        u.short_name(),
                        first.display()
                    )),
                )),
                None => Err(Error::Plan(format!(
                    "{}: the first time is {t}, which does not tell its unit; set [source] time_unit = \"ms\" (or \"s\", \"us\", \"ns\")",
                    first.display()
                ))),
            };
        }
        let digits = t
            .split_once('.')
            .map(|(_, f)| f.bytes().take_while(u8::is_ascii_digit).count())
            .unwrap_or(0);
        let u = match digits {
            0..=3 => TimeUnit::Millis,
            4..=6 => TimeUnit::Micros,
            _ => TimeUnit::Nanos,
        };
        Ok((
            u,
            Some(format!(
                "ISO-8601 times kept to the {} (the first one, {t}, has {digits} fractional digits; set time_unit to confirm)",
                u.short_name()
            )),
        ))
    }

    /// The device name of a device path: `strip_prefix` taken off, then renamed by `devices`.
    fn device(&self, path: &str) -> String {
        let stripped = match &self.strip_prefix {
            Some(p) => path.strip_prefix(p.as_str()).unwrap_or(path),
            None => path,
        };
        self.devices
            .get(stripped)
            .cloned()
            .unwrap_or_else(|| stripped.to_string())
    }

    fn check_stream(stream: &StreamSpec) -> Result<()> {
        if stream.source_stream() != POINTS {
            return Err(Error::Plan(format!(
                "stream `{}`: an IoTDB export is read as one stream, `points` (set from = \"points\")",
                stream.name
            )));
        }
        let f = &stream.filter;
        if !f.entity_types.is_empty() || stream.limit.is_some() {
            return Err(Error::Unsupported(format!(
                "stream `{}`: an IoTDB export source filters by since, until, devices and keys (measurements); \
                 not by entity_types, and it has no limit",
                stream.name
            )));
        }
        // Parsed here so a bad time is a plan error before anything is read.
        f.since_us()?;
        f.until_us()?;
        Ok(())
    }
}

fn file_error(path: &Path, message: &str) -> Error {
    Error::Store {
        end: tsmigrate_core::End::Source,
        context: path.display().to_string(),
        message: message.to_string(),
        transient: false,
    }
}

/// The stream's columns for times in `unit`.
fn schema(unit: TimeUnit) -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("device", DataType::Text),
        Field::new("measurement", DataType::Text),
        Field::new("time", DataType::Timestamp(unit)),
        Field::new("data_type", DataType::Text),
        Field::new("bool_value", DataType::Bool),
        Field::new("int_value", DataType::Int64),
        Field::new("double_value", DataType::Float64),
        Field::new("text_value", DataType::Text),
        Field::new("file", DataType::Text),
        Field::new("line", DataType::Int64),
        Field::new(SOURCE_ERROR, DataType::Text),
    ]))
}

/// One row of the stream (see [`Rows::push`]); unset fields are NULL.
#[derive(Default)]
struct Row<'a> {
    device: &'a str,
    measurement: Option<&'a str>,
    time: Option<i64>,
    dtype: Option<&'a str>,
    value: Option<&'a Value>,
    /// The text that could not be read, kept in `text_value` of a rejected row.
    raw: Option<&'a str>,
    line: u64,
    error: Option<String>,
}

/// Builds the point rows of one file.
struct Rows {
    schema: Arc<Schema>,
    cols: Vec<Column>,
    file: String,
}

impl Rows {
    fn new(schema: Arc<Schema>, file: String, capacity: usize) -> Rows {
        let cols = schema
            .fields
            .iter()
            .map(|f| Column::with_capacity(f.dtype, capacity))
            .collect();
        Rows { schema, cols, file }
    }

    fn len(&self) -> usize {
        self.cols.first().map(Column::len).unwrap_or(0)
    }

    /// Appends a row: a point (`value` of `dtype`), or with `error` a rejected one.
    fn push(&mut self, row: Row<'_>) {
        let Row {
            device,
            measurement,
            time,
            dtype,
            value,
            raw,
            line,
            error,
        } = row;
        let c = &mut self.cols;
        c[0].push_str(device);
        opt_str(&mut c[1], measurement);
        match time {
            Some(t) => c[2].push_i64(t),
            None => c[2].push_null(),
        }
        opt_str(&mut c[3], dtype);
        let (b, i, d, t) = match value {
            Some(Value::Bool(b)) => (Some(*b), None, None, None),
            Some(Value::Int(x)) => (None, Some(*x), None, None),
            Some(Value::Double(x)) => (None, None, Some(*x), None),
            Some(Value::Text(s)) => (None, None, None, Some(s.as_str())),
            None => (None, None, None, raw),
        };
        match b {
            Some(b) => c[4].push_bool(b),
            None => c[4].push_null(),
        }
        match i {
            Some(x) => c[5].push_i64(x),
            None => c[5].push_null(),
        }
        match d {
            Some(x) => c[6].push_f64(x),
            None => c[6].push_null(),
        }
        opt_str(&mut c[7], t);
        c[8].push_str(&self.file);
        c[9].push_i64(line as i64);
        opt_str(&mut c[10], error.as_deref());
    }

    /// Appends a rejected row for a line that could not be read at all.
    fn reject_line(&mut self, raw: Option<&str>, line: u64, reason: String) {
        self.push(Row {
            raw,
            line,
            error: Some(reason),
            ..Row::default()
        });
    }

    /// Sends the rows gathered so far as one batch (none when there are none), leaving room
    /// for `capacity` more.
    async fn send(&mut self, out: &BatchTx, capacity: usize) -> Result<()> {
        if self.len() == 0 {
            return Ok(());
        }
        if let Some(b) = self.take(capacity) {
            out.send(b).await.map_err(|_| Error::Cancelled)?;
        }
        Ok(())
    }

    fn take(&mut self, capacity: usize) -> Option<Batch> {
        let cols = std::mem::replace(
            &mut self.cols,
            self.schema
                .fields
                .iter()
                .map(|f| Column::with_capacity(f.dtype, capacity))
                .collect(),
        );
        Batch::new(
            self.schema.clone(),
            cols.into_iter().map(Arc::new).collect(),
        )
    }
}

fn opt_str(col: &mut Column, v: Option<&str>) {
    match v {
        Some(s) => col.push_str(s),
        None => col.push_null(),
    }
}

impl IotdbSource {
    /// Reads one file into `out`, in batches of `batch_rows` rows.
    async fn read_file(
        &self,
        path: &Path,
        unit: TimeUnit,
        filter: &PointFilter,
        batch_rows: usize,
        out: &BatchTx,
    ) -> Result<()> {
        let name = path.display().to_string();
        let file = File::open(path).map_err(|e| Error::Io {
            path: name.clone(),
            source: e,
        })?;
        let mut tok = Tokenizer::new(BufReader::with_capacity(1 << 20, file));
        let header = match tok.next_record().map_err(|m| file_error(path, &m))? {
            None => return Ok(()),
            Some(r) => Header::parse(&r.cells)
                .map_err(|m| file_error(path, &format!("line {}: {m}", r.line)))?,
        };
        let schema = schema(unit);
        let mut rows = Rows::new(schema, name.clone(), batch_rows);
        loop {
            let rec = match tok.next_record() {
                Ok(Some(r)) => r,
                Ok(None) => break,
                Err(m) => {
                    // An unclosed quote runs to the end: reject it and stop reading this file.
                    rows.reject_line(None, tok_line(&m), format!("{name}: {m}"));
                    break;
                }
            };
            self.record(&header, &rec, unit, filter, &name, &mut rows);
            if rows.len() >= batch_rows {
                rows.send(out, batch_rows).await?;
            }
        }
        rows.send(out, 0).await?;
        Ok(())
    }

    /// The points of one record (or one rejected row for a record that cannot be read).
    fn record(
        &self,
        header: &Header,
        rec: &Record,
        unit: TimeUnit,
        filter: &PointFilter,
        name: &str,
        rows: &mut Rows,
    ) {
        let raw = || {
            rec.cells
                .iter()
                .map(|c| c.text.as_str())
                .collect::<Vec<_>>()
                .join(",")
        };
        let fail = |rows: &mut Rows, why: String| {
            rows.reject_line(
                Some(&raw()),
                rec.line,
                format!("{name}, line {}: {why}", rec.line),
            );
        };
        if rec.cells.len() != header.width() {
            return fail(
                rows,
                format!(
                    "{} fields where the header has {}",
                    rec.cells.len(),
                    header.width()
                ),
            );
        }
        let time = match parse_time(&rec.cells[0].text, unit) {
            Ok(t) => t,
            Err(m) => return fail(rows, m),
        };
        if !filter.time(time) {
            return;
        }
        let (device_path, values) = match header.layout {
            Layout::AlignedByTime => (None, &rec.cells[1..]),
            Layout::AlignedByDevice => {
                let d = rec.cells[1].text.trim();
                if d.is_empty() {
                    return fail(rows, "the Device field is empty".into());
                }
                match path_nodes(d) {
                    Ok(nodes) => (Some(nodes.join(".")), &rec.cells[2..]),
                    Err(m) => return fail(rows, m),
                }
            }
        };
        for (col, cell) in header.series.iter().zip(values) {
            if cell.text.is_empty() && !cell.quoted {
                continue;
            }
            let device = self.device(device_path.as_deref().unwrap_or(&col.device));
            if !filter.point(&device, &col.measurement) {
                continue;
            }
            match parse_value(cell, col.dtype) {
                Ok((v, t)) => rows.push(Row {
                    device: &device,
                    measurement: Some(&col.measurement),
                    time: Some(time),
                    dtype: Some(t.name()),
                    value: Some(&v),
                    line: rec.line,
                    ..Row::default()
                }),
                Err(m) => rows.push(Row {
                    device: &device,
                    measurement: Some(&col.measurement),
                    time: Some(time),
                    dtype: col.dtype.map(|t| t.name()),
                    raw: Some(&cell.text),
                    line: rec.line,
                    error: Some(format!(
                        "{name}, line {}, {}: {m}",
                        rec.line, col.measurement
                    )),
                    ..Row::default()
                }),
            }
        }
    }
}

/// Which points a stream reads: `filter.since`/`until` (in the time unit's ticks),
/// `filter.devices` (names after `strip_prefix` and `devices`) and `filter.keys`
/// (measurements). Empty lists select everything.
#[derive(Debug, Default)]
struct PointFilter {
    lo: Option<i64>,
    hi: Option<i64>,
    devices: HashSet<String>,
    measurements: HashSet<String>,
}

impl PointFilter {
    fn of(stream: &StreamSpec, unit: TimeUnit) -> Result<PointFilter> {
        let f = &stream.filter;
        let ticks = |us: i64| {
            let t = bound_ticks(us, unit.per_second());
            i64::try_from(t).unwrap_or(if t < 0 { i64::MIN } else { i64::MAX })
        };
        Ok(PointFilter {
            lo: f.since_us()?.map(ticks),
            hi: f.until_us()?.map(ticks),
            devices: f.devices.iter().cloned().collect(),
            measurements: f.keys.iter().cloned().collect(),
        })
    }

    /// True when a record at `time` may hold points the stream reads.
    fn time(&self, time: i64) -> bool {
        self.lo.is_none_or(|lo| time >= lo) && self.hi.is_none_or(|hi| time < hi)
    }

    /// True when the stream reads the point of `device`'s `measurement`.
    fn point(&self, device: &str, measurement: &str) -> bool {
        (self.devices.is_empty() || self.devices.contains(device))
            && (self.measurements.is_empty() || self.measurements.contains(measurement))
    }
}

/// The line number an unclosed-quote message names (0 when it names none).
fn tok_line(message: &str) -> u64 {
    message
        .strip_prefix("line ")
        .and_then(|r| r.split(':').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[async_trait]
impl Source for IotdbSource {
    fn describe(&self) -> String {
        format!("iotdb export {}", self.path.display())
    }

    async fn check(&self) -> Result<Vec<String>> {
        let files = self.files()?;
        let total: u64 = files
            .iter()
            .filter_map(|f| std::fs::metadata(f).ok())
            .map(|m| m.len())
            .sum();
        Ok(vec![format!(
            "{} export file(s), {} bytes: {}{}",
            files.len(),
            total,
            files
                .iter()
                .take(3)
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            if files.len() > 3 { ", …" } else { "" }
        )])
    }

    async fn stream_info(&self, stream: &StreamSpec) -> Result<StreamInfo> {
        IotdbSource::check_stream(stream)?;
        let files = self.files()?;
        let (unit, note) = self.unit(&files)?;
        let mut notes = vec![format!(
            "{} export file(s), one partition each",
            files.len()
        )];
        notes.extend(note);
        Ok(StreamInfo {
            schema: schema(unit),
            key_columns: vec!["device".into(), "measurement".into(), "time".into()],
            estimated_rows: None,
            notes,
            series: None,
        })
    }

    async fn partitions(&self, stream: &StreamSpec, _opts: &ReadOptions) -> Result<Vec<Partition>> {
        IotdbSource::check_stream(stream)?;
        let files = self.files()?;
        let (unit, _) = self.unit(&files)?;
        Ok(files
            .iter()
            .map(|f| Partition {
                id: f
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                estimated_rows: None,
                spec: serde_json::json!({ "file": f.display().to_string(), "time_unit": unit.short_name() }),
            })
            .collect())
    }

    async fn read(
        &self,
        stream: &StreamSpec,
        partition: &Partition,
        opts: &ReadOptions,
        out: BatchTx,
    ) -> Result<()> {
        IotdbSource::check_stream(stream)?;
        let bad = || {
            Error::Plan(format!(
                "stream `{}`, partition {}: {} is not an export file this tsmigrate planned; plan again (tsmigrate run --restart)",
                stream.name, partition.id, partition.spec
            ))
        };
        let file = partition
            .spec
            .get("file")
            .and_then(|f| f.as_str())
            .ok_or_else(bad)?;
        let unit = partition
            .spec
            .get("time_unit")
            .and_then(|u| u.as_str())
            .ok_or_else(bad)?;
        let unit = TimeUnit::from_short_name(unit, "time_unit")?;
        let filter = PointFilter::of(stream, unit)?;
        self.read_file(Path::new(file), unit, &filter, opts.batch_rows.max(1), &out)
            .await
    }
}
