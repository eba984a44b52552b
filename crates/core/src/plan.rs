//! The plan file (TOML): a source, a target, run options and one or more streams.
//!
//! Connector-specific endpoint options stay in [`Endpoint::options`] and are parsed by the
//! connector that owns them, so a new connector never changes this module. Every option is
//! documented in `docs/plan.md`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::convert::{parse_timestamp, Lossy};
use crate::error::{Error, Result};
use crate::secret::{expand_env, ConnString};
use crate::types::TimeUnit;

/// A parsed, validated plan.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Where rows come from.
    pub source: Endpoint,
    /// Where rows go.
    pub target: Endpoint,
    /// Run-wide options.
    pub run: RunOptions,
    /// The streams, in plan order.
    pub streams: Vec<StreamSpec>,
    /// Where progress is recorded (`[ledger]`).
    pub ledger: LedgerOptions,
    /// Incremental sync options (`[sync]`).
    pub sync: SyncOptions,
    /// The target is production: `run` and `sync` ask for a typed `YES` before writing,
    /// unless `--yes`.
    pub production: bool,
}

/// The ledger's identity and place (`[ledger]`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedgerOptions {
    /// Name the plan's progress is recorded under (default: the plan file's name without
    /// `.toml`). Two plan files with the same id share progress; renaming a plan file without
    /// setting `id` starts a fresh ledger.
    #[serde(default)]
    pub id: Option<String>,
    /// Schema holding the ledger tables in a PostgreSQL target (default `tsmigrate`).
    #[serde(default)]
    pub schema: Option<String>,
}

/// Incremental sync options (`[sync]`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncOptions {
    /// How far before each series' watermark a sync re-reads, so rows that arrive late
    /// are not missed (default `5m`).
    #[serde(default = "default_overlap")]
    pub overlap: String,
    /// Interval between rounds of `sync --follow` (default `15m`).
    #[serde(default = "default_every")]
    pub every: String,
}

fn default_overlap() -> String {
    "5m".into()
}

fn default_every() -> String {
    "15m".into()
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions {
            overlap: default_overlap(),
            every: default_every(),
        }
    }
}

/// How a stream's rows enter a target table that may already hold rows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WriteMode {
    /// Plain bulk load (COPY). The fastest; refused when the table already holds rows the
    /// ledger does not account for, so it can never duplicate them.
    #[default]
    Append,
    /// Insert only rows whose key is not in the table yet (others are counted as skipped).
    Skip,
    /// Insert new rows, overwrite the non-key columns of rows whose key exists.
    Upsert,
}

impl WriteMode {
    /// The name used in plans.
    pub fn name(self) -> &'static str {
        match self {
            WriteMode::Append => "append",
            WriteMode::Skip => "skip",
            WriteMode::Upsert => "upsert",
        }
    }
}

/// Parses a duration such as `500ms`, `30s`, `5m`, `2h`, `1d` (a bare number is seconds).
pub fn parse_duration(text: &str, what: &str) -> Result<Duration> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 = num.parse().map_err(|_| {
        Error::Plan(format!(
            "{what} = {text:?} is not a duration; write for example \"30s\", \"5m\", \"2h\""
        ))
    })?;
    let scale = match unit.trim() {
        "ms" => 0.001,
        "" | "s" | "sec" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        "d" => 86400.0,
        other => {
            return Err(Error::Plan(format!(
                "{what} = {text:?}: unknown unit {other:?}; use ms, s, m, h or d"
            )))
        }
    };
    let secs = value * scale;
    if !secs.is_finite() || !(0.0..=1e9).contains(&secs) {
        return Err(Error::Plan(format!("{what} = {text:?} is out of range")));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// One end of the migration.
#[derive(Clone, Debug)]
pub struct Endpoint {
    /// Connector kind (`thingsboard`, `postgres`, …).
    pub kind: String,
    /// Connection string with `${ENV}` expanded; printed only redacted.
    pub url: Option<ConnString>,
    /// The remaining keys, for the connector to read (with `${ENV}` expanded in strings).
    pub options: toml::Table,
}

/// Run-wide options (`[run]`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunOptions {
    /// Partitions processed at once (default: number of CPU cores).
    #[serde(default)]
    pub jobs: Option<usize>,
    /// Rows per batch (default 16384).
    #[serde(default = "default_batch_rows")]
    pub batch_rows: usize,
    /// Target rows per partition (default 2,000,000).
    #[serde(default = "default_partition_rows")]
    pub partition_rows: u64,
    /// Rejected rows tolerated before the run stops (default 0).
    #[serde(default)]
    pub max_rejects: u64,
    /// Directory of `<stream>.rejects.csv` files (default: the current directory).
    #[serde(default)]
    pub rejects_dir: Option<PathBuf>,
    /// Attempts after the first when a partition fails with a transient error (a dropped
    /// connection, a server restart, a serialization failure); default 5.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// Delay before the first retry; doubles with each attempt (default `1s`).
    #[serde(default = "default_retry_delay")]
    pub retry_delay: String,
    /// Longest delay between retries (default `60s`).
    #[serde(default = "default_retry_max_delay")]
    pub retry_max_delay: String,
    /// How long a COPY in either direction may go without progress (no data read, a send or
    /// finish not done) before its attempt fails with a transient error and is retried
    /// (default `5m`; `0`: wait for ever).
    #[serde(default = "default_stall_timeout")]
    pub stall_timeout: String,
}

fn default_stall_timeout() -> String {
    "5m".into()
}

/// Largest `batch_rows`: a batch is held in memory whole (and bounded in bytes too, see
/// [`crate::ReadOptions`]); more rows per batch gain nothing measurable.
pub const MAX_BATCH_ROWS: usize = 1 << 20;
/// Largest `partition_rows` (a partition is one transaction in the target).
pub const MAX_PARTITION_ROWS: u64 = 1 << 40;
/// Most partitions processed at once (each holds a connection per end).
pub const MAX_JOBS: usize = 1024;
/// Most retries.
pub const MAX_RETRIES: u32 = 10_000;

/// Checks jobs, rows per batch and rows per partition against their ranges (`prefix` names
/// where they came from: `run.` for the plan, `--` for the command line).
pub fn check_run_sizes(
    jobs: Option<usize>,
    batch_rows: usize,
    partition_rows: u64,
    prefix: &str,
) -> Result<()> {
    let bad = |name: &str, value: String, max: String| {
        let name = if prefix == "--" {
            name.replace('_', "-")
        } else {
            name.to_string()
        };
        Err(Error::Plan(format!(
            "{prefix}{name} = {value} is out of range: it must be 1 to {max}"
        )))
    };
    if let Some(j) = jobs.filter(|j| !(1..=MAX_JOBS).contains(j)) {
        return bad("jobs", j.to_string(), MAX_JOBS.to_string());
    }
    if !(1..=MAX_BATCH_ROWS).contains(&batch_rows) {
        return bad(
            "batch_rows",
            batch_rows.to_string(),
            MAX_BATCH_ROWS.to_string(),
        );
    }
    if !(1..=MAX_PARTITION_ROWS).contains(&partition_rows) {
        return bad(
            "partition_rows",
            partition_rows.to_string(),
            MAX_PARTITION_ROWS.to_string(),
        );
    }
    Ok(())
}

fn default_retries() -> u32 {
    5
}

fn default_retry_delay() -> String {
    "1s".into()
}

fn default_retry_max_delay() -> String {
    "60s".into()
}

fn default_batch_rows() -> usize {
    16_384
}

fn default_partition_rows() -> u64 {
    2_000_000
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            jobs: None,
            batch_rows: default_batch_rows(),
            partition_rows: default_partition_rows(),
            max_rejects: 0,
            rejects_dir: None,
            retries: default_retries(),
            retry_delay: default_retry_delay(),
            retry_max_delay: default_retry_max_delay(),
            stall_timeout: default_stall_timeout(),
        }
    }
}

/// One logical flow: a source stream mapped onto a target table.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StreamSpec {
    /// Name of the stream in this plan (also names its rejects file).
    pub name: String,
    /// Source stream to read (default: `name`).
    #[serde(default)]
    pub from: Option<String>,
    /// Target table, optionally schema-qualified (default: `name`).
    #[serde(default)]
    pub table: Option<String>,
    /// Create the target table from `columns` when it does not exist.
    #[serde(default)]
    pub create: bool,
    /// Target columns and the expression producing each; empty = copy every source column.
    #[serde(default)]
    pub columns: Vec<ColumnSpec>,
    /// Which source rows to read.
    #[serde(default)]
    pub filter: StreamFilter,
    /// Renames of series keys (`"146" = "tank_level_pct"`), applied before mapping.
    #[serde(default)]
    pub rename_keys: BTreeMap<String, String>,
    /// At most this many rows per device (entity); `--limit` overrides it.
    #[serde(default)]
    pub limit: Option<u64>,
    /// Lossy conversions this stream allows (performed and counted instead of rejected).
    #[serde(default)]
    pub allow_lossy: Vec<String>,
    /// How rows enter a table that may already hold rows: `append` (default), `skip`, `upsert`.
    #[serde(default)]
    pub write: WriteMode,
    /// Target columns identifying a row, for `skip`, `upsert` and `sync` (default: inferred
    /// from the source's key when the mapping copies each key column into one target column).
    #[serde(default)]
    pub key: Vec<String>,
    /// Turns each wide source row into one narrow row per non-NULL measurement column,
    /// before the mapping (`[streams.unpivot]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unpivot: Option<UnpivotSpec>,
    /// Turns narrow source rows (one per series, time and measurement) into one wide row per
    /// group of `by` values, one column per measurement, before the mapping (`[streams.pivot]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pivot: Option<PivotSpec>,
    /// Makes this stream bucketed aggregates of another stream's mapped rows
    /// (`[streams.aggregate]`); the stream then reads and maps exactly as that stream does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggregate: Option<AggregateSpec>,
    /// Target columns whose value is looked up in a table of the target
    /// (`[streams.lookup.<column>]`): the column's mapped value (a device name, say) is
    /// matched against the lookup table's `match` column, and its `value` column (the id) is
    /// written instead.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub lookup: BTreeMap<String, LookupSpec>,
}

/// A lookup table of the target that turns a mapped value into another
/// (`[streams.lookup.device_id] table = "devices", match = "name", value = "id"`).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LookupSpec {
    /// The lookup table (possibly schema-qualified).
    pub table: String,
    /// Its column compared with the mapped value (as text).
    #[serde(rename = "match")]
    pub match_column: String,
    /// Its column whose value is written into the stream's column.
    pub value: String,
    /// Insert a row for a value the table does not have (its `value` column then comes from
    /// the column's default: a serial or identity id). Default false: such rows are rejected.
    #[serde(default)]
    pub create: bool,
}

/// Bucketed aggregates of another stream (`[streams.aggregate]`): that stream's rows, as its
/// mapping produces them, grouped by `by` and by `every`-wide buckets of `time`, each group
/// one row: the `by` columns, the bucket's start in the `time` column, then one column per
/// function (named after it).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AggregateSpec {
    /// The stream of this plan whose mapped rows are aggregated.
    pub of: String,
    /// Bucket width (`"5m"`, `"1h"`, `"30s"`); buckets start at multiples of it since the epoch.
    pub every: String,
    /// The mapped column holding each row's time (a timestamp, or an integer epoch count).
    pub time: String,
    /// Units of an integer `time` column: `s`, `ms`, `us` or `ns` (ignored for timestamps).
    #[serde(default)]
    pub time_unit: Option<String>,
    /// Mapped columns a group is identified by (besides its bucket).
    #[serde(default)]
    pub by: Vec<String>,
    /// The mapped numeric column aggregated.
    pub value: String,
    /// Aggregates to compute, each one target column of that name: `min`, `max`, `avg`,
    /// `sum`, `first`, `last`, `count` (default: min, max, avg, last, count).
    #[serde(default = "default_aggregate_functions")]
    pub functions: Vec<String>,
}

/// Per-table options of a table source, SQLite or PostgreSQL (`[source.tables.<table>]`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceTableOptions {
    /// Columns whose values together name a series (a system, a device, a point).
    #[serde(default)]
    pub series: Vec<String>,
    /// The time column: an integer count since the Unix epoch in `time_unit` (or, where the
    /// store has them, a timestamp column).
    #[serde(default)]
    pub time: Option<String>,
    /// Unit of an integer time column: `s` (default), `ms`, `us` or `ns`.
    #[serde(default)]
    pub time_unit: Option<String>,
}

impl SourceTableOptions {
    /// The `[source.tables]` table of a source endpoint (absent: none), each table's options
    /// checked: a valid `time_unit`, and `time` wherever `series` is set.
    pub fn parse_all(value: Option<&toml::Value>) -> Result<BTreeMap<String, SourceTableOptions>> {
        let tables: BTreeMap<String, SourceTableOptions> = match value {
            None => BTreeMap::new(),
            Some(v) => v.clone().try_into().map_err(|e: toml::de::Error| {
                Error::Plan(format!("[source.tables]: {}", e.message()))
            })?,
        };
        for (name, t) in &tables {
            t.unit(name)?;
            if !t.series.is_empty() && t.time.is_none() {
                return Err(Error::Plan(format!(
                    "source.tables.{name}: `series` needs `time` (the table's time column)"
                )));
            }
        }
        Ok(tables)
    }

    /// The unit of an integer time column of `table`.
    pub fn unit(&self, table: &str) -> Result<TimeUnit> {
        TimeUnit::from_short_name(
            self.time_unit.as_deref().unwrap_or("s"),
            &format!("source.tables.{table}.time_unit"),
        )
    }
}

fn default_aggregate_functions() -> Vec<String> {
    ["min", "max", "avg", "last", "count"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

impl AggregateSpec {
    /// Names of the functions an aggregate may compute.
    pub const FUNCTIONS: [&'static str; 7] = ["min", "max", "avg", "sum", "first", "last", "count"];

    /// Bucket width in seconds (fractions allowed down to a millisecond).
    pub fn every_duration(&self) -> Result<Duration> {
        let d = parse_duration(&self.every, "aggregate.every")?;
        if d.is_zero() {
            return Err(Error::Plan("aggregate.every must be longer than 0s".into()));
        }
        Ok(d)
    }

    /// The unit of an integer time column (`s` when not given).
    pub fn integer_time_unit(&self) -> Result<TimeUnit> {
        TimeUnit::from_short_name(
            self.time_unit.as_deref().unwrap_or("s"),
            "aggregate.time_unit",
        )
    }
}

/// Wide → narrow reshaping of a stream (`[streams.unpivot]`): each source row becomes one
/// row per measurement column holding a value. The narrow rows have the kept source columns,
/// then `measurement` (the source column's name), `point` and `unit` when points are
/// declared, and `value`; the stream's `columns` map those like any source columns.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UnpivotSpec {
    /// Source columns to turn into rows (default: every column not in `keep`).
    #[serde(default)]
    pub measurements: Vec<String>,
    /// Source columns carried into every narrow row (default: every column not in
    /// `measurements`). At least one of the two lists must be given.
    #[serde(default)]
    pub keep: Vec<String>,
    /// Per measurement column: its point id, unit, scale and offset (`[streams.unpivot.point.solar_w]`).
    #[serde(default)]
    pub point: BTreeMap<String, PointSpec>,
    /// Points read from a table of the source, per series (`point_info`).
    #[serde(default)]
    pub points_table: Option<PointsTable>,
    /// Conversions per unit (`kWh = { scale = 1000, to = "Wh" }`), applied to every value whose
    /// point has that unit (a point's own `scale`/`offset` take precedence).
    #[serde(default)]
    pub units: BTreeMap<String, UnitSpec>,
    /// A non-NULL value whose column has no point in `points_table` for its series:
    /// `reject` (default; the row goes to the rejects file) or `skip` (counted, not written).
    #[serde(default)]
    pub unmatched: Unmatched,
}

/// Narrow → wide reshaping of a stream (`[streams.pivot]`): the source rows sharing the
/// values of `by` (a series and a time) become one row with those columns, then one column
/// per entry of `columns`, holding the `value` of the source row whose `name` names it (NULL
/// when none does). The stream's `columns` map the wide rows like any source rows.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PivotSpec {
    /// Source columns identifying one wide row: the series and the time.
    pub by: Vec<String>,
    /// Source column naming each row's measurement: the wide column's name itself, or a
    /// point id looked up in `point` or `points_table`.
    pub name: String,
    /// Source column holding the value.
    pub value: String,
    /// The wide columns, in order (default: the keys of `point`, or every column named in
    /// `points_table`).
    #[serde(default)]
    pub columns: Vec<String>,
    /// Point id per wide column, when `name` holds point ids (`point = { solar_w = 101 }`).
    #[serde(default)]
    pub point: BTreeMap<String, i64>,
    /// Point ids per series from a table of the source; its `column` holds the wide
    /// column's name.
    #[serde(default)]
    pub points_table: Option<PointsTable>,
    /// A source row whose `name` names none of the columns: `reject` (default; the row goes
    /// to the rejects file) or `skip` (counted, not written).
    #[serde(default)]
    pub unmatched: Unmatched,
}

/// What to do with a value that has no point.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Unmatched {
    /// Reject the narrow row (rejects file, `max_rejects`).
    #[default]
    Reject,
    /// Leave it out, counted in the run's summary.
    Skip,
}

/// One measurement column's point (`[streams.unpivot.point.<column>]`).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PointSpec {
    /// Point id written for the column's values.
    #[serde(default)]
    pub id: Option<i64>,
    /// Unit of the column's values (selects a conversion from `units`).
    #[serde(default)]
    pub unit: Option<String>,
    /// Multiplies each value.
    #[serde(default)]
    pub scale: Option<f64>,
    /// Added after scaling.
    #[serde(default)]
    pub offset: Option<f64>,
    /// Unit after conversion (default: `unit`).
    #[serde(default)]
    pub to: Option<String>,
}

/// A table of the source naming each series' points (`point_info(system_id, point_id,
/// column_name, unit)`).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PointsTable {
    /// The source table (or stream).
    pub table: String,
    /// Columns matching the wide rows' columns of the same names (the series, such as
    /// `system_id`); empty: the same points for every row.
    #[serde(default)]
    pub by: Vec<String>,
    /// Column holding the measurement column's name.
    pub column: String,
    /// Column holding the point id.
    pub id: String,
    /// Column holding the unit, if any.
    #[serde(default)]
    pub unit: Option<String>,
}

/// A linear conversion of one unit (`value × scale + offset`).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UnitSpec {
    /// Multiplier (default 1).
    #[serde(default)]
    pub scale: Option<f64>,
    /// Added after scaling (default 0).
    #[serde(default)]
    pub offset: Option<f64>,
    /// Unit name after conversion (default: unchanged).
    #[serde(default)]
    pub to: Option<String>,
}

/// One target column of a stream.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnSpec {
    /// Target column name.
    pub name: String,
    /// SQL type, used to create the table (`create = true`) and to convert the value.
    #[serde(default, rename = "type")]
    pub sql_type: Option<String>,
    /// SQL expression over source columns (default: the source column of the same name).
    #[serde(default)]
    pub expr: Option<String>,
}

/// Source-side filters of a stream.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StreamFilter {
    /// Inclusive lower time bound (RFC 3339).
    #[serde(default)]
    pub since: Option<String>,
    /// Exclusive upper time bound (RFC 3339).
    #[serde(default)]
    pub until: Option<String>,
    /// Device (entity) names or ids to read; empty = all.
    #[serde(default)]
    pub devices: Vec<String>,
    /// Series keys to read (source names, before renaming); empty = all.
    #[serde(default)]
    pub keys: Vec<String>,
    /// Kinds of entity whose series to read (ThingsBoard: `DEVICE`, `ASSET`); empty = all.
    #[serde(default)]
    pub entity_types: Vec<String>,
}

impl StreamFilter {
    /// `since` as microseconds since the epoch.
    pub fn since_us(&self) -> Result<Option<i64>> {
        parse_time_us(self.since.as_deref(), "filter.since")
    }

    /// `until` as microseconds since the epoch.
    pub fn until_us(&self) -> Result<Option<i64>> {
        parse_time_us(self.until.as_deref(), "filter.until")
    }
}

/// Parses an RFC 3339 time bound into microseconds since the epoch; `what` names it in
/// errors (`filter.since`, `--until`).
pub fn parse_time_us(s: Option<&str>, what: &str) -> Result<Option<i64>> {
    match s {
        None => Ok(None),
        Some(s) => match parse_timestamp(s) {
            Some((secs, nanos)) => secs
                .checked_mul(1_000_000)
                .and_then(|us| us.checked_add(nanos as i64 / 1000))
                .map(Some)
                .ok_or_else(|| Error::Plan(format!("{what} = {s:?} is out of range"))),
            None => Err(Error::Plan(format!(
                "{what} = {s:?} is not a timestamp; write RFC 3339 such as \"2025-08-01T00:00:00Z\""
            ))),
        },
    }
}

impl StreamSpec {
    /// The source stream this plan stream reads.
    pub fn source_stream(&self) -> &str {
        self.from.as_deref().unwrap_or(&self.name)
    }

    /// The target table this plan stream writes.
    pub fn target_table(&self) -> &str {
        self.table.as_deref().unwrap_or(&self.name)
    }

    /// A digest of everything in the stream that decides which rows are written and how
    /// (source stream, table, columns, filters, renames, limit, lossy allowances, write mode,
    /// key). The ledger keeps it to refuse resuming a stream whose definition changed.
    pub fn fingerprint(&self) -> String {
        let text = serde_json::to_string(self).unwrap_or_default();
        format!("{:016x}", xxhash_rust::xxh3::xxh3_64(text.as_bytes()))
    }

    /// The lossy conversions allowed, parsed.
    pub fn lossy_kinds(&self) -> Result<Vec<Lossy>> {
        self.allow_lossy
            .iter()
            .map(|n| {
                Lossy::parse(n).ok_or_else(|| {
                    let names: Vec<_> = Lossy::ALL.iter().map(|l| l.name()).collect();
                    Error::Plan(format!(
                        "stream `{}`: allow_lossy has unknown kind {n:?}; known kinds: {}",
                        self.name,
                        names.join(", ")
                    ))
                })
            })
            .collect()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlan {
    source: toml::Table,
    target: toml::Table,
    #[serde(default)]
    run: RunOptions,
    #[serde(default)]
    streams: Vec<StreamSpec>,
    #[serde(default)]
    ledger: LedgerOptions,
    #[serde(default)]
    sync: SyncOptions,
    #[serde(default)]
    production: bool,
}

impl Plan {
    /// Reads and validates a plan file.
    pub fn load(path: &Path) -> Result<Plan> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Io {
            path: path.display().to_string(),
            source: e,
        })?;
        Plan::parse(&text).map_err(|e| match e {
            Error::Plan(m) => Error::Plan(format!("{}: {m}", path.display())),
            other => other,
        })
    }

    /// Parses and validates plan text.
    pub fn parse(text: &str) -> Result<Plan> {
        let raw: RawPlan =
            toml::from_str(text).map_err(|e| Error::Plan(e.to_string().trim_end().to_string()))?;
        let plan = Plan {
            source: endpoint(raw.source, "source")?,
            target: endpoint(raw.target, "target")?,
            run: raw.run,
            streams: resolve_aggregates(raw.streams)?,
            ledger: raw.ledger,
            sync: raw.sync,
            production: raw.production,
        };
        plan.validate()?;
        Ok(plan)
    }

    fn validate(&self) -> Result<()> {
        if self.streams.is_empty() {
            return Err(Error::Plan(
                "the plan has no [[streams]]; add at least one".into(),
            ));
        }
        check_run_sizes(
            self.run.jobs,
            self.run.batch_rows,
            self.run.partition_rows,
            "run.",
        )?;
        if self.run.retries > MAX_RETRIES {
            return Err(Error::Plan(format!(
                "run.retries = {} is more than {MAX_RETRIES}; with retry_max_delay the wait is already unbounded in practice",
                self.run.retries
            )));
        }
        parse_duration(&self.run.retry_delay, "run.retry_delay")?;
        parse_duration(&self.run.retry_max_delay, "run.retry_max_delay")?;
        parse_duration(&self.sync.overlap, "sync.overlap")?;
        if parse_duration(&self.sync.every, "sync.every")?.is_zero() {
            return Err(Error::Plan("sync.every must be longer than 0s".into()));
        }
        if let Some(id) = &self.ledger.id {
            if id.is_empty() || id.len() > 200 {
                return Err(Error::Plan("ledger.id must be 1 to 200 characters".into()));
            }
        }
        let mut names = BTreeSet::new();
        for s in &self.streams {
            if s.name.is_empty()
                || !s
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
            {
                return Err(Error::Plan(format!(
                    "stream name {:?} must be letters, digits, `_`, `-` or `.` (it names files)",
                    s.name
                )));
            }
            if !names.insert(&s.name) {
                return Err(Error::Plan(format!("stream `{}` is defined twice", s.name)));
            }
            let mut cols = BTreeSet::new();
            for c in &s.columns {
                if !cols.insert(c.name.to_ascii_lowercase()) {
                    return Err(Error::Plan(format!(
                        "stream `{}`: column `{}` is listed twice",
                        s.name, c.name
                    )));
                }
            }
            if s.unpivot.is_some() && s.pivot.is_some() {
                return Err(Error::Plan(format!(
                    "stream `{}` has both [streams.unpivot] and [streams.pivot]; a stream reshapes one way — use two streams",
                    s.name
                )));
            }
            s.lossy_kinds()?;
            let (since, until) = (s.filter.since_us()?, s.filter.until_us()?);
            if let (Some(a), Some(b)) = (since, until) {
                if a >= b {
                    return Err(Error::Plan(format!(
                        "stream `{}`: filter.since must be before filter.until",
                        s.name
                    )));
                }
            }
            let mut keys = BTreeSet::new();
            for k in &s.key {
                if !keys.insert(k) {
                    return Err(Error::Plan(format!(
                        "stream `{}`: key lists `{k}` twice",
                        s.name
                    )));
                }
                if s.aggregate.is_none()
                    && !s.columns.is_empty()
                    && !s.columns.iter().any(|c| c.name == *k)
                {
                    return Err(Error::Plan(format!(
                        "stream `{}`: key names `{k}`, which is not one of the stream's columns",
                        s.name
                    )));
                }
            }
            if s.limit == Some(0) {
                return Err(Error::Plan(format!(
                    "stream `{}`: limit must be at least 1",
                    s.name
                )));
            }
        }
        Ok(())
    }

    /// The stream called `name`.
    pub fn stream(&self, name: &str) -> Option<&StreamSpec> {
        self.streams.iter().find(|s| s.name == name)
    }
}

/// Gives each aggregate stream the reading and mapping of the stream it aggregates (`of`):
/// source stream, filter, key renames, limit, lossy allowances, unpivot, pivot and columns. An
/// aggregate stream sets none of those itself; its own are its table, create, write, key.
fn resolve_aggregates(mut streams: Vec<StreamSpec>) -> Result<Vec<StreamSpec>> {
    let originals = streams.clone();
    for s in streams.iter_mut() {
        let Some(agg) = s.aggregate.clone() else {
            continue;
        };
        let of = originals
            .iter()
            .find(|o| o.name == agg.of)
            .ok_or_else(|| {
                let names: Vec<_> = originals.iter().map(|o| o.name.as_str()).collect();
                Error::Plan(format!(
                    "stream `{}`: aggregate.of = {:?} is not a stream of this plan; its streams are: {}",
                    s.name,
                    agg.of,
                    names.join(", ")
                ))
            })?;
        if of.aggregate.is_some() {
            return Err(Error::Plan(format!(
                "stream `{}`: aggregate.of names `{}`, which is itself an aggregate; aggregate the raw stream",
                s.name, of.name
            )));
        }
        let own_reading = s.from.is_some()
            || !s.columns.is_empty()
            || s.unpivot.is_some()
            || s.pivot.is_some()
            || !s.rename_keys.is_empty()
            || s.limit.is_some()
            || !s.allow_lossy.is_empty()
            || serde_json::to_value(&s.filter).ok()
                != serde_json::to_value(StreamFilter::default()).ok();
        if own_reading {
            return Err(Error::Plan(format!(
                "stream `{}`: an aggregate stream reads and maps exactly as the stream it aggregates (`{}`); \
                 remove from, columns, filter, unpivot, pivot, rename_keys, limit and allow_lossy from it \
                 (its own settings are table, create, write, key and aggregate)",
                s.name, of.name
            )));
        }
        let mut functions = BTreeSet::new();
        for f in &agg.functions {
            if !AggregateSpec::FUNCTIONS.contains(&f.as_str()) {
                return Err(Error::Plan(format!(
                    "stream `{}`: aggregate.functions has unknown function {f:?}; known: {}",
                    s.name,
                    AggregateSpec::FUNCTIONS.join(", ")
                )));
            }
            if !functions.insert(f) {
                return Err(Error::Plan(format!(
                    "stream `{}`: aggregate.functions lists {f:?} twice",
                    s.name
                )));
            }
        }
        if agg.functions.is_empty() {
            return Err(Error::Plan(format!(
                "stream `{}`: aggregate.functions is empty; name at least one of {}",
                s.name,
                AggregateSpec::FUNCTIONS.join(", ")
            )));
        }
        let in_stream = |e: Error| match e {
            Error::Plan(m) => Error::Plan(format!("stream `{}`: {m}", s.name)),
            other => other,
        };
        agg.every_duration().map_err(in_stream)?;
        agg.integer_time_unit().map_err(in_stream)?;
        s.from = Some(of.source_stream().to_string());
        s.columns = of.columns.clone();
        s.filter = of.filter.clone();
        s.rename_keys = of.rename_keys.clone();
        s.limit = of.limit;
        s.allow_lossy = of.allow_lossy.clone();
        s.unpivot = of.unpivot.clone();
        s.pivot = of.pivot.clone();
    }
    Ok(streams)
}

fn endpoint(mut table: toml::Table, which: &str) -> Result<Endpoint> {
    let kind = match table.remove("kind") {
        Some(toml::Value::String(k)) => k,
        Some(_) => return Err(Error::Plan(format!("{which}.kind must be a string"))),
        None => {
            return Err(Error::Plan(format!(
                "[{which}] needs `kind` (for example kind = \"postgres\")"
            )))
        }
    };
    let url = match table.remove("url") {
        Some(toml::Value::String(u)) => {
            Some(ConnString::new(expand_env(&u, &format!("{which}.url"))?))
        }
        Some(_) => return Err(Error::Plan(format!("{which}.url must be a string"))),
        None => None,
    };
    let mut options = toml::Table::new();
    for (k, v) in table {
        let v = match v {
            toml::Value::String(s) => toml::Value::String(expand_env(&s, &format!("{which}.{k}"))?),
            other => other,
        };
        options.insert(k, v);
    }
    Ok(Endpoint { kind, url, options })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAN: &str = r#"
[source]
kind = "thingsboard"
url = "postgres://tb:${TSM_TEST_PW:-pw}@localhost/tb"

[target]
kind = "postgres"
url = "postgres://localhost/iiot"

[run]
jobs = 2

[[streams]]
name = "telemetry"
create = true
filter = { since = "2025-08-01T00:00:00Z", keys = ["146"] }
rename_keys = { "146" = "tank_level_pct" }
columns = [
  { name = "device_id", type = "uuid", expr = "entity_id" },
  { name = "value", type = "double precision" },
]
"#;

    #[test]
    fn parses_a_plan() {
        let p = Plan::parse(PLAN).map_err(|e| e.to_string());
        let p = match p {
            Ok(p) => p,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(p.source.kind, "thingsboard");
        assert!(p
            .source
            .url
            .as_ref()
            .is_some_and(|u| u.expose().contains(":pw@")));
        assert!(!format!("{p:?}").contains(":pw@"));
        let s = &p.streams[0];
        assert_eq!(s.target_table(), "telemetry");
        assert_eq!(
            s.filter.since_us().ok().flatten(),
            Some(1_754_006_400_000_000)
        );
        assert_eq!(
            s.rename_keys.get("146").map(String::as_str),
            Some("tank_level_pct")
        );
        assert_eq!(p.run.jobs, Some(2));
    }

    #[test]
    fn sizes_out_of_range_are_refused_before_anything_allocates() {
        for (line, want) in [
            (
                "batch_rows = 4611686018427387904",
                "run.batch_rows = 4611686018427387904 is out of range: it must be 1 to 1048576",
            ),
            ("batch_rows = 0", "run.batch_rows = 0 is out of range"),
            (
                "partition_rows = 0",
                "run.partition_rows = 0 is out of range",
            ),
            (
                "partition_rows = 9223372036854775807",
                "must be 1 to 1099511627776",
            ),
            (
                "retries = 4000000000",
                "run.retries = 4000000000 is more than 10000",
            ),
        ] {
            let e = Plan::parse(&PLAN.replace("jobs = 2", &format!("jobs = 2\n{line}")))
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(e.contains(want), "{line}: {e}");
        }
        let e = Plan::parse(&PLAN.replace("jobs = 2", "jobs = 100000"))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("run.jobs = 100000 is out of range"), "{e}");
        let e = check_run_sizes(Some(0), 10, 10, "--")
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some("plan: --jobs = 0 is out of range: it must be 1 to 1024")
        );
        assert!(check_run_sizes(None, MAX_BATCH_ROWS, MAX_PARTITION_ROWS, "--").is_ok());
    }

    #[test]
    fn rejects_bad_plans_with_clear_messages() {
        let bad = PLAN.replace("jobs = 2", "jobs = 2\nbogus = 1");
        let e = Plan::parse(&bad)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("bogus"), "{e}");
        let bad = PLAN.replace("2025-08-01T00:00:00Z", "August");
        let e = Plan::parse(&bad)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("RFC 3339"), "{e}");
        let bad = PLAN.replace("kind = \"postgres\"", "");
        let e = Plan::parse(&bad)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("[target] needs `kind`"), "{e}");
    }

    #[test]
    fn ledger_sync_retry_and_write_options() {
        let text = PLAN.replace("jobs = 2", "jobs = 2\nretries = 3\nretry_delay = \"250ms\"")
            + "write = \"skip\"\nkey = [\"device_id\"]\n[ledger]\nid = \"tb\"\n[sync]\noverlap = \"2m\"\nevery = \"1h\"\n";
        let p = match Plan::parse(&text) {
            Ok(p) => p,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(p.run.retries, 3);
        assert_eq!(p.streams[0].write, WriteMode::Skip);
        assert_eq!(p.streams[0].key, vec!["device_id".to_string()]);
        assert_eq!(p.ledger.id.as_deref(), Some("tb"));
        assert_eq!(
            parse_duration(&p.sync.overlap, "x").ok(),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_duration(&p.run.retry_delay, "x").ok(),
            Some(Duration::from_millis(250))
        );
        assert_eq!(
            parse_duration("1d", "x").ok(),
            Some(Duration::from_secs(86_400))
        );
        // The fingerprint follows the stream's definition, not run options.
        let q = match Plan::parse(&text.replace("jobs = 2", "jobs = 1")) {
            Ok(p) => p,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(p.streams[0].fingerprint(), q.streams[0].fingerprint());
        let r = match Plan::parse(&text.replace("\"skip\"", "\"upsert\"")) {
            Ok(p) => p,
            Err(e) => panic!("{e}"),
        };
        assert_ne!(p.streams[0].fingerprint(), r.streams[0].fingerprint());
        for (bad, want) in [
            ("write = \"skip\"", "write = \"merge\""),
            ("overlap = \"2m\"", "overlap = \"2 weeks\""),
            ("key = [\"device_id\"]", "key = [\"nope\"]"),
            ("every = \"1h\"", "every = \"0s\""),
        ] {
            assert!(Plan::parse(&text.replace(bad, want)).is_err(), "{want}");
        }
    }
}
