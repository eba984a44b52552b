//! What a plan asks of a TimescaleDB hypertable (`[target.hypertables.<table>]`) and the SQL
//! that does it. Pure: nothing here talks to a server, so every statement is unit-tested;
//! [`crate::timescale`] runs them.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use tsmigrate_core::{parse_duration, DataType, Error, Result, TimeUnit};

use crate::connect::{quote_ident, quote_literal, quote_table_checked};

/// Rows a chunk should hold at most when the plan leaves the chunk interval to tsmigrate:
/// about 1 GiB of a narrow telemetry table with its indexes, which TimescaleDB's advice
/// (a chunk and its indexes within a quarter of the server's memory) fits on a 4 GiB server.
pub const TARGET_CHUNK_ROWS: f64 = 10_000_000.0;

/// Chunk intervals tsmigrate chooses from, shortest first (seconds).
const INTERVAL_LADDER: [i64; 9] = [
    3600,
    3 * 3600,
    6 * 3600,
    12 * 3600,
    86400,
    2 * 86400,
    7 * 86400,
    14 * 86400,
    30 * 86400,
];

/// TimescaleDB's own default chunk interval, used when nothing is known of the row rate.
const DEFAULT_INTERVAL_SECS: i64 = 7 * 86400;

/// One `[target.hypertables.<table>]` section.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HypertableSpec {
    /// The time column the hypertable is partitioned by (a timestamptz/timestamp/date, or an
    /// integer epoch count with `time_unit`).
    pub time: String,
    /// Units of an integer time column: `s`, `ms`, `us` or `ns` (ThingsBoard's `ts`: `ms`).
    #[serde(default)]
    pub time_unit: Option<String>,
    /// Time span of one chunk (`"1h"`, `"1d"`); default: derived from the row rate.
    #[serde(default)]
    pub chunk_interval: Option<String>,
    /// A column to hash-partition by as well (space partitioning).
    #[serde(default)]
    pub space: Option<String>,
    /// Hash partitions of `space` (default 4).
    #[serde(default)]
    pub space_partitions: Option<u16>,
    /// Turn an existing plain table that holds rows into a hypertable in place
    /// (TimescaleDB's `migrate_data`, which locks the table while it moves the rows).
    #[serde(default)]
    pub convert: bool,
    /// Columns compressed data is grouped by (`segment_by = ["metric_def_id"]`).
    #[serde(default)]
    pub segment_by: Vec<String>,
    /// Ordering within compressed segments (`order_by = ["ts DESC"]`).
    #[serde(default)]
    pub order_by: Vec<String>,
    /// Compression policy: compress chunks older than this (`"7d"`).
    #[serde(default)]
    pub compress_after: Option<String>,
    /// Retention policy: drop chunks older than this (`"90d"`).
    #[serde(default)]
    pub retention: Option<String>,
    /// Compress the loaded chunks when the load ends (overrides `[target] compress`).
    #[serde(default)]
    pub compress: Option<bool>,
}

/// How the time column counts time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeKind {
    /// timestamptz, timestamp or date: intervals are SQL `INTERVAL`s.
    Timestamp,
    /// An integer count of `unit` since the epoch, of SQL type `sql_type`.
    Integer {
        /// `smallint`, `integer` or `bigint`.
        sql_type: &'static str,
        /// What one step of the column is.
        unit: TimeUnit,
    },
}

impl TimeKind {
    /// The kind of a time column of catalog type `typname` (`timestamptz`, `int8`, …), or an
    /// error saying why it cannot partition a hypertable. `ctx` names the table.
    pub fn of_typname(ctx: &str, spec: &HypertableSpec, typname: &str) -> Result<TimeKind> {
        let sql_type = match typname {
            "timestamptz" | "timestamp" | "date" => {
                if spec.time_unit.is_some() {
                    return Err(Error::Plan(format!(
                        "{ctx}: time column `{}` is a {typname}; time_unit is only for integer time columns — remove it",
                        spec.time
                    )));
                }
                return Ok(TimeKind::Timestamp);
            }
            "int2" => "smallint",
            "int4" => "integer",
            "int8" => "bigint",
            other => {
                return Err(Error::Plan(format!(
                    "{ctx}: time column `{}` is of type {other}; a hypertable is partitioned by a timestamptz, timestamp, date or integer column",
                    spec.time
                )))
            }
        };
        let unit = spec.time_unit.as_deref().ok_or_else(|| {
            Error::Plan(format!(
                "{ctx}: time column `{}` is an integer ({sql_type}); say what it counts with time_unit = \"ms\" (or \"s\", \"us\", \"ns\") \
                 so chunk intervals and policies can be turned into its units",
                spec.time
            ))
        })?;
        let unit = TimeUnit::from_short_name(unit, &format!("{ctx}: time_unit"))?;
        Ok(TimeKind::Integer { sql_type, unit })
    }

    /// The kind of a time column a stream will create, from the type its values have.
    pub fn of_dtype(ctx: &str, spec: &HypertableSpec, dtype: DataType) -> Result<TimeKind> {
        let typname = match dtype {
            DataType::Timestamp(_) => "timestamptz",
            DataType::Int16 => "int2",
            DataType::Int32 => "int4",
            DataType::Int64 => "int8",
            other => other.pg_name(),
        };
        TimeKind::of_typname(ctx, spec, typname)
    }

    /// `d` as a value of the time column's interval type: `INTERVAL '1 hour'`
    /// or `3600000::bigint`. Errors when it does not fit an integer column.
    pub fn interval_sql(self, d: Duration, what: &str) -> Result<String> {
        match self {
            TimeKind::Timestamp => Ok(format!("INTERVAL '{}'", interval_text(d))),
            TimeKind::Integer { sql_type, unit } => {
                let ticks = self.ticks(d);
                let max = match sql_type {
                    "smallint" => i128::from(i16::MAX),
                    "integer" => i128::from(i32::MAX),
                    _ => i128::from(i64::MAX),
                };
                if ticks < 1 || ticks > max {
                    return Err(Error::Plan(format!(
                        "{what} is {ticks} {} in the time column's units, which a {sql_type} cannot hold as an interval",
                        unit.short_name()
                    )));
                }
                Ok(format!("{ticks}::{sql_type}"))
            }
        }
    }

    /// `d` in the column's units (integer kinds; microseconds for timestamps).
    fn ticks(self, d: Duration) -> i128 {
        let per_second = match self {
            TimeKind::Timestamp => 1_000_000,
            TimeKind::Integer { unit, .. } => unit.per_second(),
        };
        d.as_nanos() as i128 * i128::from(per_second) / 1_000_000_000
    }
}

/// `d` as PostgreSQL interval text in its largest whole unit (`7 days`, `1 hour`, `90
/// seconds`, `1500000 microseconds`), as it then reads in TimescaleDB's catalogs.
fn interval_text(d: Duration) -> String {
    let s = d.as_secs();
    let unit = |n: u64, name: &str| format!("{n} {name}{}", if n == 1 { "" } else { "s" });
    if d.subsec_nanos() != 0 || s == 0 {
        unit(d.as_micros() as u64, "microsecond")
    } else if s.is_multiple_of(86400) {
        unit(s / 86400, "day")
    } else if s.is_multiple_of(3600) {
        unit(s / 3600, "hour")
    } else if s.is_multiple_of(60) {
        unit(s / 60, "minute")
    } else {
        unit(s, "second")
    }
}

/// The chunk interval of a hypertable and why it was chosen.
#[derive(Clone, Debug, PartialEq)]
pub struct ChunkInterval {
    /// The interval.
    pub duration: Duration,
    /// Where it came from, for notes (`"from the plan"`, `"derived: …"`).
    pub reason: String,
}

/// The chunk interval of `spec`: the plan's, else derived from the row rate (`rows` over the
/// time `extent` in µs): the longest interval of the ladder (1h … 30d) whose chunks hold at
/// most [`TARGET_CHUNK_ROWS`] rows (1 hour when even that holds more), else TimescaleDB's own
/// default of 7 days when the rate is unknown.
pub fn chunk_interval(
    ctx: &str,
    spec: &HypertableSpec,
    rows: Option<u64>,
    extent: Option<(i64, i64)>,
) -> Result<ChunkInterval> {
    if let Some(text) = &spec.chunk_interval {
        let d = parse_duration(text, &format!("{ctx}: chunk_interval"))?;
        if d < Duration::from_secs(1) {
            return Err(Error::Plan(format!(
                "{ctx}: chunk_interval = {text:?} is shorter than a second; chunks that small make every query plan thousands of them"
            )));
        }
        return Ok(ChunkInterval {
            duration: d,
            reason: "from the plan".into(),
        });
    }
    let rate = match (rows, extent) {
        (Some(rows), Some((lo, hi))) if rows > 0 && hi >= lo => {
            // At least an hour of span, so a burst of rows in one instant is not a huge rate.
            let secs = ((hi - lo) as f64 / 1e6).max(3600.0);
            Some(rows as f64 / secs)
        }
        _ => None,
    };
    let Some(rate) = rate else {
        return Ok(ChunkInterval {
            duration: Duration::from_secs(DEFAULT_INTERVAL_SECS as u64),
            reason: "TimescaleDB's default; the source could not tell its row rate (set chunk_interval to choose)".into(),
        });
    };
    let secs = INTERVAL_LADDER
        .iter()
        .rev()
        .copied()
        .find(|s| rate * *s as f64 <= TARGET_CHUNK_ROWS)
        .unwrap_or(INTERVAL_LADDER[0]);
    Ok(ChunkInterval {
        duration: Duration::from_secs(secs as u64),
        reason: format!(
            "derived from about {:.0} rows per day, for at most {} million rows per chunk",
            rate * 86400.0,
            TARGET_CHUNK_ROWS / 1e6
        ),
    })
}

/// A human form of a duration for notes (`1 hour`, `7 days`, `90 s`).
pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    let plural = |n: u64, unit: &str| format!("{n} {unit}{}", if n == 1 { "" } else { "s" });
    if d.subsec_nanos() != 0 || s == 0 {
        format!("{} ms", d.as_millis())
    } else if s.is_multiple_of(86400) {
        plural(s / 86400, "day")
    } else if s.is_multiple_of(3600) {
        plural(s / 3600, "hour")
    } else if s.is_multiple_of(60) {
        plural(s / 60, "minute")
    } else {
        format!("{s} s")
    }
}

/// The target-wide TimescaleDB options and each hypertable's.
#[derive(Clone, Debug, Default)]
pub struct TimescaleOptions {
    /// `[target] compress`: compress loaded chunks when the load ends (`--compress` sets it).
    pub compress: bool,
    /// `[target.hypertables.<table>]`, keyed by the quoted table name.
    pub hypertables: BTreeMap<String, HypertableSpec>,
}

impl TimescaleOptions {
    /// Reads `compress` and `hypertables` from the `[target]` options.
    pub fn parse(options: &toml::Table) -> Result<TimescaleOptions> {
        let compress = match options.get("compress") {
            None => false,
            Some(toml::Value::Boolean(b)) => *b,
            Some(_) => {
                return Err(Error::Plan(
                    "[target] compress must be true or false".into(),
                ))
            }
        };
        let raw: BTreeMap<String, HypertableSpec> = match options.get("hypertables") {
            None => BTreeMap::new(),
            Some(v) => v.clone().try_into().map_err(|e: toml::de::Error| {
                Error::Plan(format!("[target.hypertables]: {}", e.message()))
            })?,
        };
        let mut hypertables = BTreeMap::new();
        for (name, spec) in raw {
            let ctx = format!("target.hypertables.{name}");
            spec.check(&ctx)?;
            let quoted = quote_table_checked(&name, &format!("[target.hypertables.{name:?}]"))?;
            if hypertables.insert(quoted, spec).is_some() {
                return Err(Error::Plan(format!(
                    "[target.hypertables] names table {name:?} twice"
                )));
            }
        }
        Ok(TimescaleOptions {
            compress,
            hypertables,
        })
    }

    /// The hypertable spec of target table `quoted` (as [`crate::quote_table`] writes it).
    pub fn spec(&self, quoted: &str) -> Option<&HypertableSpec> {
        self.hypertables.get(quoted)
    }
}

impl HypertableSpec {
    /// Checks what can be checked without the table: durations parse, lists are sane.
    fn check(&self, ctx: &str) -> Result<()> {
        if self.time.is_empty() {
            return Err(Error::Plan(format!(
                "{ctx}: `time` (the time column) is empty"
            )));
        }
        if let Some(u) = &self.time_unit {
            TimeUnit::from_short_name(u, &format!("{ctx}.time_unit"))?;
        }
        for (key, v) in [
            ("chunk_interval", &self.chunk_interval),
            ("compress_after", &self.compress_after),
            ("retention", &self.retention),
        ] {
            if let Some(text) = v {
                if parse_duration(text, &format!("{ctx}.{key}"))?.is_zero() {
                    return Err(Error::Plan(format!("{ctx}.{key} must be longer than 0s")));
                }
            }
        }
        if self.space_partitions.is_some() && self.space.is_none() {
            return Err(Error::Plan(format!(
                "{ctx}: space_partitions needs `space` (the column to hash-partition by)"
            )));
        }
        if self.space_partitions == Some(0) {
            return Err(Error::Plan(format!(
                "{ctx}.space_partitions must be at least 1"
            )));
        }
        for o in &self.order_by {
            order_by_item(ctx, o)?;
        }
        Ok(())
    }

    /// True when the plan asks for compression settings or a compression policy.
    pub fn wants_compression(&self) -> bool {
        !self.segment_by.is_empty() || !self.order_by.is_empty() || self.compress_after.is_some()
    }

    /// `ALTER TABLE … SET (timescaledb.compress, …segmentby, …orderby)`.
    pub fn compression_sql(&self, table: &str) -> Result<String> {
        let mut settings = vec!["timescaledb.compress".to_string()];
        if !self.segment_by.is_empty() {
            let cols: Vec<String> = self.segment_by.iter().map(|c| quote_ident(c)).collect();
            settings.push(format!(
                "timescaledb.compress_segmentby = {}",
                quote_literal(&cols.join(", "))
            ));
        }
        if !self.order_by.is_empty() {
            let items: Vec<String> = self
                .order_by
                .iter()
                .map(|o| order_by_item("order_by", o))
                .collect::<Result<_>>()?;
            settings.push(format!(
                "timescaledb.compress_orderby = {}",
                quote_literal(&items.join(", "))
            ));
        }
        Ok(format!("ALTER TABLE {table} SET ({})", settings.join(", ")))
    }
}

/// One `order_by` item, `column [ASC|DESC] [NULLS FIRST|LAST]`, with the column quoted.
fn order_by_item(ctx: &str, text: &str) -> Result<String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let Some((col, rest)) = words.split_first() else {
        return Err(Error::Plan(format!("{ctx}: an order_by item is empty")));
    };
    let rest: Vec<String> = rest.iter().map(|w| w.to_ascii_uppercase()).collect();
    let ok = matches!(
        rest.iter().map(String::as_str).collect::<Vec<_>>()[..],
        [] | ["ASC" | "DESC"]
            | ["NULLS", "FIRST" | "LAST"]
            | ["ASC" | "DESC", "NULLS", "FIRST" | "LAST"]
    );
    if !ok {
        return Err(Error::Plan(format!(
            "{ctx}: order_by item {text:?} must be a column, optionally followed by ASC or DESC and NULLS FIRST or NULLS LAST"
        )));
    }
    let mut out = quote_ident(col);
    for w in rest {
        out.push(' ');
        out.push_str(&w);
    }
    Ok(out)
}

/// `SELECT create_hypertable(…)` with the `by_range` dimension builder of TimescaleDB 2.13+.
pub fn create_sql(table: &str, spec: &HypertableSpec, interval_sql: &str) -> String {
    format!(
        "SELECT create_hypertable({}, by_range({}, {interval_sql}), migrate_data => {}, if_not_exists => true)",
        quote_literal(table),
        quote_literal(&spec.time),
        spec.convert
    )
}

/// `SELECT add_dimension(…, by_hash(…))` for space partitioning, when asked.
pub fn space_sql(table: &str, spec: &HypertableSpec) -> Option<String> {
    spec.space.as_ref().map(|col| {
        format!(
            "SELECT add_dimension({}, by_hash({}, {}), if_not_exists => true)",
            quote_literal(table),
            quote_literal(col),
            spec.space_partitions.unwrap_or(4)
        )
    })
}

/// The function an integer hypertable's policies take "now" from, and the statement that
/// creates it in `schema`: `now()` in the column's units and type.
pub fn integer_now_sql(schema: &str, kind: TimeKind) -> Option<(String, String)> {
    let TimeKind::Integer { sql_type, unit } = kind else {
        return None;
    };
    let name = format!(
        "{}.{}",
        quote_ident(schema),
        quote_ident(&format!("tsmigrate_now_{}_{}", unit.short_name(), sql_type))
    );
    let sql = format!(
        "CREATE OR REPLACE FUNCTION {name}() RETURNS {sql_type} LANGUAGE sql STABLE AS \
         $$ SELECT (extract(epoch FROM now()) * {})::{sql_type} $$",
        unit.per_second()
    );
    Some((name, sql))
}

/// `add_compression_policy` / `add_retention_policy` with `if_not_exists`.
pub fn policy_sql(table: &str, policy: Policy, after_sql: &str) -> String {
    match policy {
        Policy::Compression => format!(
            "SELECT add_compression_policy({}, compress_after => {after_sql}, if_not_exists => true)",
            quote_literal(table)
        ),
        Policy::Retention => format!(
            "SELECT add_retention_policy({}, drop_after => {after_sql}, if_not_exists => true)",
            quote_literal(table)
        ),
    }
}

/// The two kinds of policy tsmigrate sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// Compress chunks older than an age.
    Compression,
    /// Drop chunks older than an age.
    Retention,
}

impl Policy {
    /// The job procedure TimescaleDB runs for it.
    pub fn proc_name(self) -> &'static str {
        match self {
            Policy::Compression => "policy_compression",
            Policy::Retention => "policy_retention",
        }
    }

    /// The job config key holding the age.
    pub fn config_key(self) -> &'static str {
        match self {
            Policy::Compression => "compress_after",
            Policy::Retention => "drop_after",
        }
    }

    /// The `remove_…_policy` statement.
    pub fn remove_sql(self, table: &str) -> String {
        match self {
            Policy::Compression => format!(
                "SELECT remove_compression_policy({}, if_exists => true)",
                quote_literal(table)
            ),
            Policy::Retention => format!(
                "SELECT remove_retention_policy({}, if_exists => true)",
                quote_literal(table)
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(text: &str) -> HypertableSpec {
        let opts = TimescaleOptions::parse(&text.parse::<toml::Table>().unwrap_or_default());
        match opts {
            Ok(o) => o.hypertables.into_values().next().unwrap_or_default(),
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn plans_parse_and_bad_options_are_refused() {
        let s = spec(
            "[hypertables.metric_hist]\ntime = \"ts\"\nchunk_interval = \"1h\"\nsegment_by = [\"metric_def_id\"]\norder_by = [\"ts DESC\"]\ncompress_after = \"7d\"\nretention = \"90d\"",
        );
        assert_eq!(s.time, "ts");
        assert!(s.wants_compression());
        for bad in [
            "[hypertables.t]\ntime = \"ts\"\nchunk_interval = \"soon\"",
            "[hypertables.t]\ntime = \"ts\"\nretention = \"0s\"",
            "[hypertables.t]\ntime = \"ts\"\nspace_partitions = 3",
            "[hypertables.t]\ntime = \"ts\"\norder_by = [\"ts sideways\"]",
            "[hypertables.t]\ntime = \"ts\"\ntime_unit = \"fortnights\"",
            "[hypertables.t]\ntime = \"ts\"\nsegmentby = [\"x\"]",
            "[hypertables.t]\nchunk_interval = \"1h\"",
            "compress = \"yes\"",
        ] {
            let parsed = TimescaleOptions::parse(&bad.parse::<toml::Table>().unwrap_or_default());
            assert!(parsed.is_err(), "accepted: {bad}");
        }
        let two = TimescaleOptions::parse(
            &"[hypertables.t]\ntime = \"a\"\n[hypertables.\"public.t\"]\ntime = \"b\"\n[hypertables.u]\ntime = \"c\""
                .parse::<toml::Table>()
                .unwrap_or_default(),
        );
        assert!(two.is_ok(), "t and public.t are different names");
    }

    #[test]
    fn statements_quote_names_and_carry_the_settings() {
        let s = spec(
            "[hypertables.'\"Odd\".metric_hist']\ntime = \"Ts\"\nsegment_by = [\"metric_def_id\", \"Site\"]\norder_by = [\"Ts desc\", \"x nulls first\"]\nspace = \"metric_def_id\"\nconvert = true",
        );
        let t = crate::quote_table("\"Odd\".metric_hist");
        assert_eq!(
            create_sql(&t, &s, "INTERVAL '1 hour'"),
            "SELECT create_hypertable('\"Odd\".\"metric_hist\"', by_range('Ts', INTERVAL '1 hour'), migrate_data => true, if_not_exists => true)"
        );
        assert_eq!(
            s.compression_sql(&t).ok().as_deref(),
            Some("ALTER TABLE \"Odd\".\"metric_hist\" SET (timescaledb.compress, timescaledb.compress_segmentby = '\"metric_def_id\", \"Site\"', timescaledb.compress_orderby = '\"Ts\" DESC, \"x\" NULLS FIRST')")
        );
        assert_eq!(
            space_sql(&t, &s).as_deref(),
            Some("SELECT add_dimension('\"Odd\".\"metric_hist\"', by_hash('metric_def_id', 4), if_not_exists => true)")
        );
        assert_eq!(
            policy_sql(&t, Policy::Retention, "INTERVAL '1 day'"),
            "SELECT add_retention_policy('\"Odd\".\"metric_hist\"', drop_after => INTERVAL '1 day', if_not_exists => true)"
        );
    }

    #[test]
    fn integer_time_needs_a_unit_and_gets_integer_intervals() {
        let mut s = spec("[hypertables.ts_kv]\ntime = \"ts\"");
        let err = TimeKind::of_typname("ts_kv", &s, "int8");
        assert!(matches!(err, Err(Error::Plan(m)) if m.contains("time_unit")));
        s.time_unit = Some("ms".into());
        let kind = TimeKind::of_typname("ts_kv", &s, "int8").unwrap_or(TimeKind::Timestamp);
        assert_eq!(
            kind.interval_sql(Duration::from_secs(86400), "x")
                .ok()
                .as_deref(),
            Some("86400000::bigint")
        );
        let (name, sql) = integer_now_sql("public", kind).unwrap_or_default();
        assert_eq!(name, "\"public\".\"tsmigrate_now_ms_bigint\"");
        assert!(sql.contains("RETURNS bigint") && sql.contains("* 1000)::bigint"));
        let small = TimeKind::of_typname("t", &s, "int2").unwrap_or(TimeKind::Timestamp);
        assert!(small.interval_sql(Duration::from_secs(86400), "x").is_err());
        assert!(TimeKind::of_typname("t", &s, "text").is_err());
        assert!(
            TimeKind::of_typname("t", &s, "timestamptz").is_err(),
            "time_unit on a timestamp"
        );
        s.time_unit = None;
        assert_eq!(
            TimeKind::of_typname("t", &s, "timestamptz")
                .ok()
                .and_then(|k| k.interval_sql(Duration::from_secs(3600), "x").ok())
                .as_deref(),
            Some("INTERVAL '1 hour'")
        );
        let at = |d| TimeKind::Timestamp.interval_sql(d, "x").unwrap_or_default();
        assert_eq!(at(Duration::from_secs(7 * 86400)), "INTERVAL '7 days'");
        assert_eq!(at(Duration::from_secs(90)), "INTERVAL '90 seconds'");
        assert_eq!(at(Duration::from_secs(120)), "INTERVAL '2 minutes'");
        assert_eq!(
            at(Duration::from_millis(1500)),
            "INTERVAL '1500000 microseconds'"
        );
        assert!(integer_now_sql("public", TimeKind::Timestamp).is_none());
    }

    #[test]
    fn default_chunk_interval_follows_the_row_rate() {
        let s = spec("[hypertables.t]\ntime = \"ts\"");
        let day = 86_400_000_000i64;
        let pick = |rows: Option<u64>, extent: Option<(i64, i64)>| {
            chunk_interval("t", &s, rows, extent)
                .map(|c| c.duration.as_secs())
                .unwrap_or(0)
        };
        // Unknown rate: TimescaleDB's 7 days.
        assert_eq!(pick(None, None), 7 * 86400);
        assert_eq!(pick(Some(1000), None), 7 * 86400);
        // 1M rows a day → 10 days of rows allowed → 7 days.
        assert_eq!(pick(Some(30_000_000), Some((0, 30 * day))), 7 * 86400);
        // 100M rows a day → 0.1 day allowed → 1 hour (the ladder's 3h would hold 12.5M).
        assert_eq!(pick(Some(3_000_000_000), Some((0, 30 * day))), 3600);
        // 20M a day → half a day.
        assert_eq!(pick(Some(600_000_000), Some((0, 30 * day))), 12 * 3600);
        // A trickle → 30 days.
        assert_eq!(pick(Some(1000), Some((0, 365 * day))), 30 * 86400);
        let plan = spec("[hypertables.t]\ntime = \"ts\"\nchunk_interval = \"1h\"");
        assert_eq!(
            chunk_interval("t", &plan, Some(1), Some((0, 1)))
                .map(|c| c.duration)
                .ok(),
            Some(Duration::from_secs(3600))
        );
        assert_eq!(human(Duration::from_secs(3600)), "1 hour");
        assert_eq!(human(Duration::from_secs(7 * 86400)), "7 days");
        assert_eq!(human(Duration::from_millis(1500)), "1500 ms");
    }
}
