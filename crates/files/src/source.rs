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
//! `file` and `line` (where the value was read). A line that cannot be read (not UTF-8, a
//! wrong number of fields — such as the time-0 rows several releases print without their Time
//! cell —, a bad time, a bad Device) becomes one rejected row with the file, line and reason; a
//! value that is not of its column's type (a number that does not parse, a TEXT cell not
//! wrapped in quotes) rejects that value alone, and the line's other values are kept. Nothing
//! is dropped or guessed silently.
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
    Schema, Source, StreamInfo, StreamSpec, TimeUnit, MAX_BATCH_BYTES,
};

use crate::iotdb::{
    guess_unit, parse_iso_time, parse_time, path_nodes, read_value, ExportReader, Fields, Header,
    Layout, Value,
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

    /// The unit of the times: the plan's, else detected from the first time of the files.
    fn unit(&self, files: &[PathBuf]) -> Result<(TimeUnit, Option<String>)> {
        if let Some(u) = self.time_unit {
            return Ok((u, None));
        }
        let Some((file, t)) = first_time(files)? else {
            return Ok((TimeUnit::Millis, None));
        };
        let first = file.display();
        if let Ok(ticks) = t.parse::<i64>() {
            return match guess_unit(ticks) {
                Some(u) => Ok((
                    u,
                    Some(format!(
                        "integer times read as {} since the epoch, detected from {t} in {first} (set time_unit to confirm)",
                        u.short_name()
                    )),
                )),
                None => Err(Error::Plan(format!(
                    "{first}: the first time is {t}, which does not tell its unit; set [source] time_unit = \"ms\" (or \"s\", \"us\", \"ns\")"
                ))),
            };
        }
        let digits = parse_iso_time(&t).map(|iso| iso.digits).unwrap_or(0);
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

/// The Time cell of the first line of `files` that has as many fields as its header (files
/// holding only their header are passed over), with its file.
fn first_time(files: &[PathBuf]) -> Result<Option<(PathBuf, String)>> {
    for path in files {
        let file = File::open(path).map_err(|e| io_error(path, e))?;
        let mut lines = ExportReader::new(BufReader::new(file));
        let Some(Ok(header)) = lines
            .next_line()
            .map_err(|e| io_error(path, e))?
            .map(|l| l.fields)
        else {
            continue;
        };
        let Ok(header) = Header::parse(&header) else {
            continue;
        };
        while let Some(line) = lines.next_line().map_err(|e| io_error(path, e))? {
            if let Ok(fields) = line.fields {
                if fields.len() == header.width() {
                    let time = fields.get(0).unwrap_or("").to_string();
                    return Ok(Some((path.clone(), time)));
                }
            }
        }
    }
    Ok(None)
}

fn io_error(path: &Path, e: std::io::Error) -> Error {
    Error::Io {
        path: path.display().to_string(),
        source: e,
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

    /// True when the rows should go out as a batch: `batch_rows` of them, or
    /// [`MAX_BATCH_BYTES`] of values.
    fn full(&self, batch_rows: usize) -> bool {
        self.len() >= batch_rows
            || self.cols.iter().map(Column::byte_size).sum::<usize>() >= MAX_BATCH_BYTES
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
        let file = File::open(path).map_err(|e| io_error(path, e))?;
        let mut lines = ExportReader::new(BufReader::with_capacity(1 << 20, file));
        let Some(first) = lines.next_line().map_err(|e| io_error(path, e))? else {
            return Ok(());
        };
        let header = first
            .fields
            .map_err(|e| e.to_string())
            .and_then(|f| Header::parse(&f).map_err(|e| e.to_string()))
            .map_err(|m| file_error(path, &format!("line {}, the header: {m}", first.number)))?;
        let file = FileContext {
            name: &name,
            header: &header,
            unit,
            filter,
        };
        let mut rows = Rows::new(schema(unit), name.clone(), batch_rows);
        while let Some(line) = lines.next_line().map_err(|e| io_error(path, e))? {
            {
                let at = LineAt {
                    number: line.number,
                    raw: &|| lines.raw(),
                };
                match &line.fields {
                    Ok(fields) => self.record(&file, &at, fields, &mut rows),
                    Err(e) => at.reject(&file, &mut rows, e.to_string()),
                }
            }
            if rows.full(batch_rows) {
                rows.send(out, batch_rows).await?;
            }
        }
        rows.send(out, 0).await?;
        Ok(())
    }

    /// The points of one line (or one rejected row for a line that cannot be read).
    fn record(&self, file: &FileContext<'_>, at: &LineAt<'_>, fields: &Fields, rows: &mut Rows) {
        let header = file.header;
        if let Some(why) = width_problem(fields.len(), header) {
            return at.reject(file, rows, why);
        }
        let time = match parse_time(fields.get(0).unwrap_or(""), file.unit) {
            Ok(t) => t,
            Err(e) => return at.reject(file, rows, e.to_string()),
        };
        if !file.filter.time(time) {
            return;
        }
        let device_path = match header.layout {
            Layout::AlignedByTime => None,
            Layout::AlignedByDevice => match device_cell(fields.get(1).unwrap_or("")) {
                Ok(d) => Some(d),
                Err(why) => return at.reject(file, rows, why),
            },
        };
        let values = fields.iter().skip(header.value_start());
        for (col, cell) in header.series.iter().zip(values) {
            if cell.is_empty() {
                continue; // NULL: no point
            }
            let device = self.device(device_path.as_deref().unwrap_or(&col.device));
            if !file.filter.point(&device, &col.measurement) {
                continue;
            }
            let point = Row {
                device: &device,
                measurement: Some(&col.measurement),
                time: Some(time),
                line: at.number,
                ..Row::default()
            };
            match read_value(cell, col.dtype, file.unit) {
                Ok(None) => {}
                Ok(Some((v, t))) => rows.push(Row {
                    dtype: Some(t.name()),
                    value: Some(&v),
                    ..point
                }),
                Err(e) => rows.push(Row {
                    dtype: col.dtype.map(|t| t.name()),
                    raw: Some(cell),
                    error: Some(format!(
                        "{}, line {}, {}: {e}",
                        file.name, at.number, col.measurement
                    )),
                    ..point
                }),
            }
        }
    }
}

/// What every line of one file is read with.
struct FileContext<'a> {
    name: &'a str,
    header: &'a Header,
    unit: TimeUnit,
    filter: &'a PointFilter,
}

/// Where a line is: its number, and its text for a rejected row (made only when needed).
struct LineAt<'a> {
    number: u64,
    raw: &'a dyn Fn() -> String,
}

impl LineAt<'_> {
    /// One rejected row for the whole line, with the file, the line and `why`.
    fn reject(&self, file: &FileContext<'_>, rows: &mut Rows, why: String) {
        rows.reject_line(
            Some(&(self.raw)()),
            self.number,
            format!("{}, line {}: {why}", file.name, self.number),
        );
    }
}

/// Why a line of `n` fields does not fit `header`, if it does not. One field short is what
/// IoTDB's export writes for time 0 (it leaves the Time cell out and every value moves one
/// column left: v0.13.4-v1.3.3 and the 2.0.x tree export through 2.0.5), so it says so
/// rather than guessing which cell is missing.
fn width_problem(n: usize, header: &Header) -> Option<String> {
    let want = header.width();
    if n == want {
        return None;
    }
    let mut why = format!("{n} fields where the header has {want}");
    if n + 1 == want {
        why.push_str(
            ": IoTDB's exporter leaves out the Time cell of a row at time 0 \
             (1970-01-01T00:00:00Z) before v1.3.4 and in 2.0.x tree exports (through 2.0.5 at \
             least), which moves every value one column left; not read, as which cell is \
             missing cannot be known for sure",
        );
    } else if n > want {
        why.push_str(
            ": a comma inside a value that is not written \\, as IoTDB's exporter writes one?",
        );
    }
    Some(why)
}

/// The device path of a Device cell (aligned by device): `root.…`, back-quotes removed.
fn device_cell(cell: &str) -> std::result::Result<String, String> {
    if cell.is_empty() {
        return Err("the Device field is empty".into());
    }
    if !cell.starts_with("root.") {
        return Err(format!(
            "the Device field {cell:?} is not a device path (root.…)"
        ));
    }
    path_nodes(cell)
        .map(|nodes| nodes.join("."))
        .map_err(|e| e.to_string())
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
