//! The TimescaleDB side of the PostgreSQL sink (`[target] kind = "timescaledb"`): the
//! extension check, turning target tables into hypertables, compression settings and
//! policies (each idempotent: a re-run finds them in place and leaves them), compressing the
//! loaded chunks, and the pre-flight facts of `tsmigrate check`. The statements come from
//! [`crate::hypertable`].

use std::time::{Duration, Instant, SystemTime};

use tokio_postgres::Client;
use tsmigrate_core::{
    parse_duration, CompressionSizes, ConnString, End, Error, FinishReport, Result, TargetRequest,
};

use crate::catalog::{find_column, table_columns};
use crate::connect::{quote_literal, store_error};
use crate::conninfo::{resolve, ProcessEnv};
use crate::hypertable::{
    chunk_interval, create_sql, human, integer_now_sql, policy_sql, space_sql, HypertableSpec,
    Policy, TimeKind,
};
use tsmigrate_core::human::bytes;

/// First TimescaleDB version whose `create_hypertable(…, by_range(…))` tsmigrate uses.
const MIN_VERSION: (u32, u32) = (2, 13);

/// Whether the database has the extension.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Extension {
    /// Installed in the database, at this version.
    Installed(String),
    /// Not installed, but the server has it (this default version) and preloads it.
    Available(String),
    /// The server has it, but it is not in `shared_preload_libraries`.
    NotPreloaded(String),
    /// The server does not have it.
    Missing,
}

/// True when the timescaledb extension is installed in the connected database.
pub async fn installed<C: tokio_postgres::GenericClient>(
    client: &C,
) -> std::result::Result<bool, tokio_postgres::Error> {
    Ok(client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb')",
            &[],
        )
        .await?
        .get(0))
}

/// Looks up the extension in the database and on the server.
pub async fn extension(client: &Client) -> std::result::Result<Extension, tokio_postgres::Error> {
    let row = client
        .query_one(
            "SELECT (SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'), \
                    (SELECT default_version FROM pg_available_extensions WHERE name = 'timescaledb'), \
                    current_setting('shared_preload_libraries') LIKE '%timescaledb%'",
            &[],
        )
        .await?;
    let (installed, available, preloaded): (Option<String>, Option<String>, bool) =
        (row.get(0), row.get(1), row.get(2));
    Ok(match (installed, available) {
        (Some(v), _) => Extension::Installed(v),
        (None, Some(v)) if preloaded => Extension::Available(v),
        (None, Some(v)) => Extension::NotPreloaded(v),
        (None, None) => Extension::Missing,
    })
}

impl Extension {
    /// The version installed or available (empty when the server has none).
    pub fn version(&self) -> &str {
        match self {
            Extension::Installed(v) | Extension::Available(v) | Extension::NotPreloaded(v) => v,
            Extension::Missing => "",
        }
    }
}

/// Why a database without the extension cannot be a TimescaleDB target, and what to do.
pub fn missing_message(state: &Extension) -> Option<String> {
    match state {
        Extension::Installed(v) | Extension::Available(v) if !version_ok(v) => Some(format!(
            "TimescaleDB {v} is older than {}.{}, the first version whose create_hypertable(… by_range …) tsmigrate uses; \
             upgrade the extension (ALTER EXTENSION timescaledb UPDATE)",
            MIN_VERSION.0, MIN_VERSION.1
        )),
        Extension::Installed(_) | Extension::Available(_) => None,
        Extension::NotPreloaded(v) => Some(format!(
            "the server has TimescaleDB {v} but does not load it: add timescaledb to shared_preload_libraries in postgresql.conf \
             (shared_preload_libraries = 'timescaledb') and restart the server"
        )),
        Extension::Missing => Some(
            "the timescaledb extension is not installed on this server (pg_available_extensions has no timescaledb). \
             Install TimescaleDB (packages from packagecloud.io/timescale, or Timescale's Docker images), add it to \
             shared_preload_libraries and restart — or use kind = \"postgres\" to write plain tables"
                .to_string(),
        ),
    }
}

/// True for a version string of at least [`MIN_VERSION`].
pub fn version_ok(v: &str) -> bool {
    let mut parts = v
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u32>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(major), Some(minor)) => (major, minor) >= MIN_VERSION,
        _ => false,
    }
}

/// A hypertable the sink prepared, for `finish`.
#[derive(Clone, Debug)]
pub struct Hypertable {
    /// The table, quoted.
    pub table: String,
    /// What the plan asks of it.
    pub spec: HypertableSpec,
    /// How its time column counts.
    pub kind: TimeKind,
    /// Compress the loaded chunks in `finish`.
    pub compress: bool,
}

/// Runs `sql`, turning a failure into an error naming `what` in `ctx`.
async fn exec(client: &Client, url: &ConnString, ctx: &str, what: &str, sql: &str) -> Result<()> {
    client
        .batch_execute(sql)
        .await
        .map_err(|e| store_error(End::Target, format!("{ctx}: {what}"), &e, url))
}

/// Makes table `table` (quoted; `oid` when it exists) the hypertable `spec` describes, with its
/// compression settings and policies; in a dry run only checks and says what it would do.
/// Returns notes for the report and, unless `dry_run` on a table still to be created, the
/// hypertable for `finish`.
#[allow(clippy::too_many_arguments)]
pub async fn prepare(
    client: &Client,
    url: &ConnString,
    ctx: &str,
    table: &str,
    oid: Option<u32>,
    spec: &HypertableSpec,
    request: &TargetRequest,
    compress_default: bool,
    installed: bool,
    dry_run: bool,
) -> Result<(Vec<String>, Option<Hypertable>)> {
    let err = |what: &str, e: &tokio_postgres::Error| {
        store_error(End::Target, format!("{ctx}: {what}"), e, url)
    };
    let mut notes = Vec::new();
    let kind = match oid {
        Some(oid) => {
            let cols = table_columns(client, oid)
                .await
                .map_err(|e| err("reading the columns", &e))?;
            let col = find_column(&cols, &spec.time).ok_or_else(|| no_time_column(ctx, spec))?;
            TimeKind::of_typname(ctx, spec, &col.typname)?
        }
        None => {
            let col = request
                .columns
                .iter()
                .find(|c| c.name.eq_ignore_ascii_case(&spec.time))
                .ok_or_else(|| no_time_column(ctx, spec))?;
            let dtype = col
                .declared
                .as_deref()
                .and_then(tsmigrate_core::DataType::parse_sql)
                .unwrap_or(col.dtype);
            TimeKind::of_dtype(ctx, spec, dtype)?
        }
    };
    let interval = chunk_interval(ctx, spec, request.estimated_rows, request.time_extent)?;
    let interval_sql = kind.interval_sql(interval.duration, &format!("{ctx}: chunk_interval"))?;
    let ages = Ages::of(ctx, spec, kind)?;
    let compress = spec.compress.unwrap_or(compress_default);
    if let (Some((age, _)), Some((oldest, _))) = (&ages.retention, request.time_extent) {
        let now_us = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_micros() as i64)
            .unwrap_or(0);
        if oldest < now_us.saturating_sub(age.as_micros() as i64) {
            notes.push(format!(
                "WARNING: the source holds rows older than the retention period ({}): the retention policy drops their chunks soon after the load (and `verify` will then miss them); lengthen `retention` or filter them out with filter.since",
                human(*age)
            ));
        }
    }
    let ht = Hypertable {
        table: table.to_string(),
        spec: spec.clone(),
        kind,
        compress,
    };
    let Some(oid) = oid else {
        notes.push(format!(
            "would be created as a hypertable on `{}` with chunks of {} ({})",
            spec.time,
            human(interval.duration),
            interval.reason
        ));
        notes.extend(ages.describe(spec, "would"));
        return Ok((notes, None));
    };
    let row = client
        .query_one(
            "SELECT n.nspname::text, c.relname::text, pg_has_role(c.relowner, 'USAGE') \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $1",
            &[&oid],
        )
        .await
        .map_err(|e| err("reading the table", &e))?;
    let (schema, name, owner): (String, String, bool) = (row.get(0), row.get(1), row.get(2));
    // Without the extension (a dry run before `run` creates it) no table is a hypertable.
    let current = if !installed {
        None
    } else {
        client
        .query_opt(
            "SELECT d.column_name::text, extract(epoch FROM d.time_interval)::float8, d.integer_interval, \
                    d.integer_now_func::text, h.compression_enabled \
             FROM timescaledb_information.hypertables h \
             JOIN timescaledb_information.dimensions d \
               ON d.hypertable_schema = h.hypertable_schema AND d.hypertable_name = h.hypertable_name \
              AND d.dimension_number = 1 \
             WHERE h.hypertable_schema = $1 AND h.hypertable_name = $2",
            &[&schema, &name],
        )
        .await
        .map_err(|e| err("looking the table up in timescaledb_information.hypertables", &e))?
    };
    let mut compression_enabled = false;
    let mut has_now_func = false;
    match current {
        None => {
            if !owner {
                return Err(Error::Plan(format!(
                    "{ctx}: the target role does not own the table, and only its owner may turn it into a hypertable; \
                     connect as the owner, or run SELECT create_hypertable(…) as the owner first"
                )));
            }
            let holds_rows: bool = client
                .query_one(&format!("SELECT EXISTS (SELECT 1 FROM {table})"), &[])
                .await
                .map_err(|e| err("checking for rows", &e))?
                .get(0);
            if holds_rows && !spec.convert {
                return Err(Error::Plan(format!(
                    "{ctx}: the table is a plain table that already holds rows; set convert = true in [target.hypertables] \
                     to turn it into a hypertable in place (TimescaleDB moves its rows into chunks and locks the table meanwhile), \
                     or empty it first"
                )));
            }
            let what = if holds_rows {
                "would be converted in place into a hypertable"
            } else {
                "would become a hypertable"
            };
            if dry_run {
                notes.push(format!(
                    "{what} on `{}` with chunks of {} ({})",
                    spec.time,
                    human(interval.duration),
                    interval.reason
                ));
                notes.extend(ages.describe(spec, "would"));
                return Ok((notes, Some(ht)));
            }
            let t0 = Instant::now();
            exec(
                client,
                url,
                ctx,
                "creating the hypertable",
                &create_sql(table, spec, &interval_sql),
            )
            .await?;
            if let Some(sql) = space_sql(table, spec) {
                exec(client, url, ctx, "adding the space dimension", &sql).await?;
            }
            notes.push(format!(
                "{} on `{}` with chunks of {} ({}){}",
                if holds_rows {
                    "converted in place into a hypertable"
                } else {
                    "became a hypertable"
                },
                spec.time,
                human(interval.duration),
                interval.reason,
                if holds_rows {
                    format!(", in {:.1} s", t0.elapsed().as_secs_f64())
                } else {
                    String::new()
                }
            ));
        }
        Some(row) => {
            let (column, secs, ticks, now_func, enabled): (
                String,
                Option<f64>,
                Option<i64>,
                Option<String>,
                bool,
            ) = (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4));
            compression_enabled = enabled;
            has_now_func = now_func.is_some();
            if !column.eq_ignore_ascii_case(&spec.time) {
                return Err(Error::Plan(format!(
                    "{ctx}: the table is already a hypertable on `{column}`, but the plan says time = {:?}; \
                     a hypertable's time column cannot change — fix the plan",
                    spec.time
                )));
            }
            let have = match (secs, ticks) {
                (Some(s), _) => Some(Duration::from_secs_f64(s.max(0.0))),
                (None, Some(t)) => match kind {
                    TimeKind::Integer { unit, .. } => Some(Duration::from_secs_f64(
                        t.max(0) as f64 / unit.per_second() as f64,
                    )),
                    TimeKind::Timestamp => None,
                },
                _ => None,
            };
            let same =
                have.is_some_and(|h| h.abs_diff(interval.duration) < Duration::from_millis(1));
            if same || spec.chunk_interval.is_none() {
                notes.push(format!(
                    "already a hypertable on `{column}`{}",
                    have.map(|h| format!(" with chunks of {}", human(h)))
                        .unwrap_or_default()
                ));
            } else if dry_run {
                notes.push(format!(
                    "already a hypertable on `{column}`; its chunk interval would change to {} for new chunks",
                    human(interval.duration)
                ));
            } else {
                exec(
                    client,
                    url,
                    ctx,
                    "setting the chunk interval",
                    &format!(
                        "SELECT set_chunk_time_interval({}, {interval_sql})",
                        quote_literal(table)
                    ),
                )
                .await?;
                notes.push(format!(
                    "already a hypertable on `{column}`; chunk interval set to {} (chunks created from now on)",
                    human(interval.duration)
                ));
            }
        }
    }
    // An existing hypertable: what is in place is said in a dry run too; what is missing
    // is done (or, in a dry run, said to be done).
    if let (false, false, Some((func, sql))) =
        (dry_run, has_now_func, integer_now_sql(&schema, kind))
    {
        // Policies on an integer time column need "now" in the column's units.
        exec(client, url, ctx, "creating the integer now function", &sql).await?;
        exec(
            client,
            url,
            ctx,
            "setting the integer now function",
            &format!(
                "SELECT set_integer_now_func({}, {}, replace_if_exists => true)",
                quote_literal(table),
                quote_literal(&func)
            ),
        )
        .await?;
    }
    if spec.wants_compression() || compress {
        if compression_enabled {
            notes.extend(compare_compression(client, table, spec).await);
        } else if dry_run {
            notes.push(compression_note("would enable compression", spec));
        } else {
            exec(
                client,
                url,
                ctx,
                "enabling compression",
                &spec.compression_sql(table)?,
            )
            .await?;
            notes.push(compression_note("compression enabled", spec));
        }
    }
    for (policy, age) in [
        (Policy::Compression, &ages.compress_after),
        (Policy::Retention, &ages.retention),
    ] {
        if let Some((d, sql)) = age {
            notes.push(
                ensure_policy(
                    client, url, ctx, table, &schema, &name, kind, policy, *d, sql, dry_run,
                )
                .await?,
            );
        }
    }
    Ok((notes, Some(ht)))
}

fn no_time_column(ctx: &str, spec: &HypertableSpec) -> Error {
    Error::Plan(format!(
        "{ctx}: [target.hypertables] time = {:?} is not a column of the table; name the column holding each row's time",
        spec.time
    ))
}

fn compression_note(head: &str, spec: &HypertableSpec) -> String {
    let mut n = head.to_string();
    if !spec.segment_by.is_empty() {
        n.push_str(&format!(", segment by {}", spec.segment_by.join(", ")));
    }
    if !spec.order_by.is_empty() {
        n.push_str(&format!(", order by {}", spec.order_by.join(", ")));
    }
    n
}

/// Compression already enabled: a note, saying so when the server's settings differ from the
/// plan's (tsmigrate does not change them: TimescaleDB refuses while chunks are compressed).
async fn compare_compression(client: &Client, table: &str, spec: &HypertableSpec) -> Vec<String> {
    let row = client
        .query_opt(
            "SELECT coalesce(segmentby, ''), coalesce(orderby, '') \
             FROM timescaledb_information.hypertable_compression_settings WHERE hypertable = $1::text::regclass",
            &[&table],
        )
        .await;
    let Ok(Some(row)) = row else {
        return vec![compression_note("compression already enabled", spec)];
    };
    let (segment, order): (String, String) = (row.get(0), row.get(1));
    let norm = |s: &str| -> Vec<String> {
        s.split(',')
            .map(|p| p.replace('"', "").trim().to_ascii_lowercase())
            .filter(|p| !p.is_empty())
            .collect()
    };
    let first_words = |v: Vec<String>| -> Vec<String> {
        v.into_iter()
            .map(|p| p.split_whitespace().take(2).collect::<Vec<_>>().join(" "))
            .map(|p| p.trim_end_matches(" asc").to_string())
            .collect()
    };
    let want_seg = norm(&spec.segment_by.join(","));
    let want_order = first_words(norm(&spec.order_by.join(",")));
    let seg_differs = !spec.segment_by.is_empty() && norm(&segment) != want_seg;
    let order_differs = !spec.order_by.is_empty() && first_words(norm(&order)) != want_order;
    if seg_differs || order_differs {
        vec![format!(
            "compression already enabled with segment by [{segment}], order by [{order}], which differs from the plan; \
             tsmigrate leaves it (change it with ALTER TABLE {table} SET (timescaledb.compress_segmentby = …) while no chunk is compressed)"
        )]
    } else {
        vec![compression_note("compression already enabled", spec)]
    }
}

/// The policy ages of a spec, as durations and as values of the time column's type.
struct Ages {
    compress_after: Option<(Duration, String)>,
    retention: Option<(Duration, String)>,
}

impl Ages {
    fn of(ctx: &str, spec: &HypertableSpec, kind: TimeKind) -> Result<Ages> {
        let age = |text: &Option<String>, key: &str| -> Result<Option<(Duration, String)>> {
            text.as_deref()
                .map(|t| {
                    let what = format!("{ctx}: {key}");
                    let d = parse_duration(t, &what)?;
                    Ok((d, kind.interval_sql(d, &what)?))
                })
                .transpose()
        };
        Ok(Ages {
            compress_after: age(&spec.compress_after, "compress_after")?,
            retention: age(&spec.retention, "retention")?,
        })
    }

    fn describe(&self, spec: &HypertableSpec, verb: &str) -> Vec<String> {
        let mut out = Vec::new();
        if spec.wants_compression() {
            out.push(compression_note(
                &format!("{verb} enable compression"),
                spec,
            ));
        }
        if let Some((d, _)) = &self.compress_after {
            out.push(format!(
                "{verb} add a compression policy: chunks older than {}",
                human(*d)
            ));
        }
        if let Some((d, _)) = &self.retention {
            out.push(format!(
                "{verb} add a retention policy: chunks older than {} are dropped",
                human(*d)
            ));
        }
        out
    }
}

/// Adds `policy` unless the same one exists; replaces one with a different age (in a dry run
/// only says so). Returns a note.
#[allow(clippy::too_many_arguments)]
async fn ensure_policy(
    client: &Client,
    url: &ConnString,
    ctx: &str,
    table: &str,
    schema: &str,
    name: &str,
    kind: TimeKind,
    policy: Policy,
    age: Duration,
    age_sql: &str,
    dry_run: bool,
) -> Result<String> {
    let cast = match kind {
        TimeKind::Timestamp => "interval",
        TimeKind::Integer { sql_type, .. } => sql_type,
    };
    let sql = format!(
        "SELECT (j.config->>'{key}')::{cast} = {age_sql} FROM timescaledb_information.jobs j \
         WHERE j.proc_name = $1 AND j.hypertable_schema = $2 AND j.hypertable_name = $3",
        key = policy.config_key()
    );
    let existing: Vec<Option<bool>> = client
        .query(&sql, &[&policy.proc_name(), &schema, &name])
        .await
        .map_err(|e| store_error(End::Target, format!("{ctx}: reading its policies"), &e, url))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let what = match policy {
        Policy::Compression => "compression policy",
        Policy::Retention => "retention policy",
    };
    if existing.len() == 1 && existing[0] == Some(true) {
        return Ok(format!(
            "{what}: chunks older than {} (already in place)",
            human(age)
        ));
    }
    let replaced = !existing.is_empty();
    if dry_run {
        return Ok(format!(
            "would {} a {what}: chunks older than {}",
            if replaced {
                "replace (different age)"
            } else {
                "add"
            },
            human(age)
        ));
    }
    if replaced {
        exec(
            client,
            url,
            ctx,
            &format!("removing the old {what}"),
            &policy.remove_sql(table),
        )
        .await?;
    }
    exec(
        client,
        url,
        ctx,
        &format!("adding the {what}"),
        &policy_sql(table, policy, age_sql),
    )
    .await?;
    Ok(format!(
        "{what}: chunks older than {}{}",
        human(age),
        if replaced {
            " (replaced the policy with a different age)"
        } else {
            " (added)"
        }
    ))
}

/// Compresses the hypertable's chunks that its compression policy would (those older than
/// `compress_after`, or all when it has none), one transaction per chunk; reports the sizes.
pub async fn compress(client: &Client, url: &ConnString, ht: &Hypertable) -> Result<FinishReport> {
    let ctx = format!("compressing {}", ht.table);
    let err = |what: &str, e: &tokio_postgres::Error| {
        store_error(End::Target, format!("{ctx}: {what}"), e, url)
    };
    let older_than = match &ht.spec.compress_after {
        None => None,
        Some(t) => {
            let d = parse_duration(t, "compress_after")?;
            Some(match ht.kind {
                TimeKind::Timestamp => ht.kind.interval_sql(d, "compress_after")?,
                TimeKind::Integer { sql_type, unit } => {
                    let now = SystemTime::now()
                        .duration_since(SystemTime::UNIX_EPOCH)
                        .unwrap_or_default();
                    let per = i128::from(unit.per_second());
                    let cut = (now.as_nanos() as i128 - d.as_nanos() as i128) * per / 1_000_000_000;
                    format!("{cut}::{sql_type}")
                }
            })
        }
    };
    let list = match &older_than {
        None => format!(
            "SELECT c::text FROM show_chunks({}) c ORDER BY 1",
            quote_literal(&ht.table)
        ),
        Some(o) => format!(
            "SELECT c::text FROM show_chunks({}, older_than => {o}) c ORDER BY 1",
            quote_literal(&ht.table)
        ),
    };
    let t0 = Instant::now();
    let chunks: Vec<String> = client
        .query(&list, &[])
        .await
        .map_err(|e| err("listing its chunks", &e))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let (mut gone, mut meanwhile) = (0, 0);
    for c in &chunks {
        // `to_regclass`: a chunk the retention policy dropped meanwhile is skipped.
        let done = client
            .query_one(
                "SELECT compress_chunk(r, if_not_compressed => true) IS NOT NULL \
                 FROM (SELECT to_regclass($1) AS r) c WHERE r IS NOT NULL \
                 UNION ALL SELECT false LIMIT 1",
                &[c],
            )
            .await;
        match done {
            Ok(row) if row.get::<_, bool>(0) => {}
            Ok(_) => gone += 1,
            // Compressed (42710) or dropped (42P01) by someone else — the compression policy's
            // job starts as soon as the policy exists — between the listing and this call, or
            // while this call waited for that session's lock: `if_not_compressed` checked
            // before the wait.
            Err(e) if e.code().is_some_and(|c| c.code() == "42710") => meanwhile += 1,
            Err(e) if e.code().is_some_and(|c| c.code() == "42P01") => gone += 1,
            Err(e) => return Err(err(&format!("chunk {c}"), &e)),
        }
    }
    let row = client
        .query_one(
            &format!(
                "SELECT coalesce(total_chunks, 0)::int8, coalesce(number_compressed_chunks, 0)::int8, \
                        coalesce(before_compression_total_bytes, 0)::int8, coalesce(after_compression_total_bytes, 0)::int8 \
                 FROM hypertable_compression_stats({})",
                quote_literal(&ht.table)
            ),
            &[],
        )
        .await
        .map_err(|e| err("reading hypertable_compression_stats", &e))?;
    let get = |i: usize| row.get::<_, i64>(i).max(0) as u64;
    let sizes = CompressionSizes {
        table: ht.table.clone(),
        chunks_total: get(0),
        chunks_compressed: get(1),
        bytes_before: get(2),
        bytes_after: get(3),
    };
    let meanwhile_note = (meanwhile > 0).then(|| {
        format!("{meanwhile} chunk(s) were compressed meanwhile by another session (the compression policy's job)")
    });
    Ok(FinishReport {
        notes: std::iter::once(format!(
            "compressed {} chunk(s){}{} in {:.1} s",
            chunks.len() - gone - meanwhile,
            if gone > 0 {
                format!(" ({gone} dropped by the retention policy meanwhile)")
            } else {
                String::new()
            },
            match &ht.spec.compress_after {
                Some(a) => format!(" older than {a}"),
                None => String::new(),
            },
            t0.elapsed().as_secs_f64()
        ))
        .chain(meanwhile_note)
        .collect(),
        compression: Some(sizes),
    })
}

/// Pre-flight facts of a TimescaleDB target for `tsmigrate check`: the extension and its
/// version, whether the role may create tables, and the free space at the server's data
/// directory when the server runs on this machine. `Err` when the target cannot serve.
pub async fn check(client: &Client, url: &ConnString) -> Result<(Vec<String>, Option<u64>)> {
    let err = |what: &str, e: &tokio_postgres::Error| {
        store_error(End::Target, format!("checking TimescaleDB: {what}"), e, url)
    };
    let state = extension(client)
        .await
        .map_err(|e| err("the extension", &e))?;
    let mut lines = vec![match (&state, missing_message(&state)) {
        (_, Some(m)) => return Err(Error::Plan(m)),
        (Extension::Installed(v), None) => format!("timescaledb {v} installed"),
        (_, None) => format!(
            "timescaledb {} available and preloaded, not yet installed in this database; `tsmigrate run` will CREATE EXTENSION timescaledb",
            state.version()
        ),
    }];
    let row = client
        .query_one(
            "SELECT current_user::text, coalesce(current_schema()::text, ''), \
                    coalesce(has_schema_privilege(current_schema(), 'CREATE'), false), \
                    current_setting('data_directory', true), pg_database_size(current_database())::int8",
            &[],
        )
        .await
        .map_err(|e| err("the role's privileges", &e))?;
    let (role, schema, can_create, data_dir, db_size): (String, String, bool, Option<String>, i64) =
        (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4));
    if can_create {
        lines.push(format!(
            "role {role} may create tables (and so hypertables) in schema {schema}"
        ));
    } else {
        lines.push(format!(
            "role {role} may NOT create tables in schema {schema}: tables must exist and be owned by {role} to become hypertables"
        ));
    }
    let free = match (data_dir, server_is_local(url)) {
        (Some(dir), true) => free_bytes(&dir),
        _ => None,
    };
    lines.push(format!(
        "database size now {}; free space at the data directory: {}",
        bytes(db_size.max(0) as u64),
        match free {
            Some(f) => bytes(f),
            None => "unknown (the server is not on this machine, or its data directory is not readable here)".into(),
        }
    ));
    Ok((lines, free))
}

/// Creates the extension when the server has it but the database does not (unless
/// `dry_run`); errors saying what to do when the server lacks it. Returns a note when it
/// created it, and whether the extension is now installed.
pub async fn ensure_extension(
    client: &Client,
    url: &ConnString,
    dry_run: bool,
) -> Result<(Option<String>, bool)> {
    let state = extension(client)
        .await
        .map_err(|e| store_error(End::Target, "checking the timescaledb extension", &e, url))?;
    if let Some(m) = missing_message(&state) {
        return Err(Error::Plan(m));
    }
    if let (Extension::Available(v), false) = (&state, dry_run) {
        exec(
            client,
            url,
            "creating the timescaledb extension",
            "CREATE EXTENSION",
            "CREATE EXTENSION IF NOT EXISTS timescaledb",
        )
        .await?;
        return Ok((
            Some(format!(
                "created the timescaledb {v} extension in the database"
            )),
            true,
        ));
    }
    Ok((None, matches!(state, Extension::Installed(_))))
}

/// True when the connection goes to this machine (a Unix socket or a loopback address).
fn server_is_local(url: &ConnString) -> bool {
    let Ok(r) = resolve(url.expose(), &ProcessEnv) else {
        return false;
    };
    match r.targets.first().map(|t| &t.host) {
        #[cfg(unix)]
        Some(tokio_postgres::config::Host::Unix(_)) => true,
        Some(tokio_postgres::config::Host::Tcp(h)) => {
            matches!(h.as_str(), "localhost" | "127.0.0.1" | "::1")
        }
        _ => false,
    }
}

/// Free bytes of the file system holding `dir`, if it can be read here.
#[cfg(unix)]
fn free_bytes(dir: &str) -> Option<u64> {
    let path = std::ffi::CString::new(dir).ok()?;
    // SAFETY: statvfs is plain old data, for which all-zero bytes are a valid value.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is a valid NUL-terminated string and `st` a writable statvfs.
    let rc = unsafe { libc::statvfs(path.as_ptr(), &mut st) };
    (rc == 0).then(|| (st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

#[cfg(not(unix))]
fn free_bytes(_dir: &str) -> Option<u64> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_and_missing_extensions_are_explained() {
        assert!(version_ok("2.26.4"));
        assert!(version_ok("2.13.0"));
        assert!(!version_ok("2.12.2"));
        assert!(!version_ok("1.7.5"));
        assert!(version_ok("3.0.0-dev"));
        assert!(!version_ok("garbage"));
        assert!(missing_message(&Extension::Installed("2.26.4".into())).is_none());
        assert!(missing_message(&Extension::Available("2.26.4".into())).is_none());
        let old = missing_message(&Extension::Installed("2.11.0".into())).unwrap_or_default();
        assert!(old.contains("ALTER EXTENSION timescaledb UPDATE"), "{old}");
        let pre = missing_message(&Extension::NotPreloaded("2.26.4".into())).unwrap_or_default();
        assert!(pre.contains("shared_preload_libraries"), "{pre}");
        let none = missing_message(&Extension::Missing).unwrap_or_default();
        assert!(none.contains("not installed on this server"), "{none}");
    }
}
