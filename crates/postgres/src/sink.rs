//! The PostgreSQL sink: checks or creates the target table, then writes each partition in
//! its own transaction through binary COPY encoded by [`crate::codec`].
//!
//! Write modes:
//! - `append`: `COPY` straight into the table;
//! - `skip`: `COPY` into a temporary staging table, then `INSERT … SELECT … ON CONFLICT (key)
//!   DO NOTHING` (with a unique index on the key) or `… WHERE NOT EXISTS (…)` (without one);
//! - `upsert`: staging, then `INSERT … ON CONFLICT (key) DO UPDATE` (needs a unique index).
//!
//! When the plan keeps a ledger, the partition's ledger entry is written by the same
//! transaction just before `COMMIT` ([`crate::ledger::record_commit`]).

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::SinkExt;
use tokio_postgres::{Client, CopyInSink};
use tsmigrate_core::connector::{existing_column, refuse_append};
use tsmigrate_core::{
    Batch, CommitInfo, ConnString, DataType, End, Endpoint, Error, Field, FinishReport, Ledger,
    LedgerOptions, LookupSpec, Partition, PartitionCommit, PartitionWriter, PreparedTarget, Result,
    SetupPhase, Sink, TableReader, TargetRequest, WriteMode, WriteOutcome,
};

use crate::catalog::{server_summary, table_columns, table_oid};
use crate::codec::{encode_batch, write_header, write_trailer, PgType};
use crate::connect::{
    connect, endpoint_url, quote_ident, quote_literal, quote_table, quote_table_checked,
    store_error,
};
use crate::hypertable::TimescaleOptions;
use crate::isolate::{write_error, Finish, IsolatingWriter};
use crate::ledger::{LedgerPlace, PgLedger};
use crate::reader::PgTableReader;
use crate::setup::{self, SetupFiles};
use crate::timescale::{self, Hypertable};

/// Name of the per-partition staging table of `skip` and `upsert` writes.
const STAGE: &str = "tsmigrate_stage";

/// Writes streams into PostgreSQL tables (and, for `kind = "timescaledb"`, hypertables).
pub struct PgSink {
    url: ConnString,
    /// What `prepare` learnt about each stream's table.
    targets: Mutex<HashMap<String, TargetState>>,
    /// The plan's ledger, once [`Sink::ledger`] was asked for.
    ledger: OnceLock<LedgerPlace>,
    /// `[target] before` / `after` SQL files.
    setup: SetupFiles,
    /// TimescaleDB options (`Some` for `kind = "timescaledb"`).
    timescale: Option<TimescaleOptions>,
    /// Free bytes at the server's data directory, when `check` could read them.
    free_bytes: Mutex<Option<u64>>,
}

/// A prepared stream's table facts.
#[derive(Clone)]
struct TargetState {
    /// Wire types of the written columns.
    types: Vec<PgType>,
    /// True when a unique index covers exactly the key columns.
    unique_key: bool,
    /// The hypertable the table is, for `finish` (TimescaleDB targets).
    hypertable: Option<Hypertable>,
    /// tsmigrate created the table without its key, to add it after the load (`finish`).
    key_after_load: bool,
}

/// The comment on a table tsmigrate created, marking it as one whose key `finish` adds.
const CREATED_COMMENT: &str = "tsmigrate: created for stream";

impl PgSink {
    /// A sink for the `[target]` endpoint (`kind = "postgres"` or `"timescaledb"`, `url = …`,
    /// setup files, and for TimescaleDB `compress` and `[target.hypertables.*]`).
    pub fn open(endpoint: &Endpoint) -> Result<PgSink> {
        let timescale = endpoint.kind == "timescaledb";
        let allowed: &[&str] = if timescale {
            &["before", "after", "compress", "hypertables"]
        } else {
            &["before", "after"]
        };
        let url = endpoint_url(endpoint, End::Target, allowed)?;
        Ok(PgSink {
            url,
            targets: Mutex::new(HashMap::new()),
            ledger: OnceLock::new(),
            setup: SetupFiles::parse(&endpoint.options)?,
            timescale: if timescale {
                Some(TimescaleOptions::parse(&endpoint.options)?)
            } else {
                None
            },
            free_bytes: Mutex::new(None),
        })
    }

    async fn client(&self) -> Result<Client> {
        connect(&self.url, End::Target).await
    }

    fn err(&self, context: &str, e: &tokio_postgres::Error) -> Error {
        store_error(End::Target, context, e, &self.url)
    }
}

impl PgSink {
    /// A pre-flight note comparing the stream's estimated size with the free space `check`
    /// found (rows × a rough width of the columns, plus a third for indexes).
    fn size_note(&self, request: &TargetRequest) -> Option<String> {
        let rows = request.estimated_rows?;
        let width: u64 = 24
            + request
                .columns
                .iter()
                .map(|c| match c.dtype {
                    DataType::Bool => 1,
                    DataType::Int16 => 2,
                    DataType::Int32 | DataType::Float32 => 4,
                    DataType::Uuid => 16,
                    DataType::Text | DataType::Json | DataType::Numeric | DataType::Bytes => 24,
                    _ => 8,
                })
                .sum::<u64>();
        let estimate = rows.saturating_mul(width) / 3 * 4;
        let free = self.free_bytes.lock().ok().and_then(|f| *f);
        Some(match free {
            Some(f) if estimate > f => format!(
                "WARNING: about {} before compression (~{rows} rows), more than the {} free at the server's data directory",
                tsmigrate_core::human::bytes(estimate),
                tsmigrate_core::human::bytes(f)
            ),
            Some(f) => format!(
                "about {} before compression (~{rows} rows); {} free at the server's data directory",
                tsmigrate_core::human::bytes(estimate),
                tsmigrate_core::human::bytes(f)
            ),
            None => format!(
                "about {} before compression (~{rows} rows)",
                tsmigrate_core::human::bytes(estimate)
            ),
        })
    }
}

impl PgSink {
    /// Opens a partition's transaction (and, for `skip`/`upsert`, its staging table): what
    /// finishes it, the `COPY` statement that loads it, and the columns' wire types.
    async fn open_partition(
        &self,
        target: &PreparedTarget,
        partition: &Partition,
    ) -> Result<(Finish, String, Vec<PgType>)> {
        let state = self
            .targets
            .lock()
            .ok()
            .and_then(|m| m.get(&target.stream).cloned())
            .ok_or_else(|| {
                Error::Internal(format!("stream `{}` was not prepared", target.stream))
            })?;
        let context = format!(
            "stream `{}`, partition {}, table {}",
            target.stream, partition.id, target.table
        );
        if target.write != WriteMode::Append && target.key.is_empty() {
            return Err(Error::Plan(format!(
                "{context}: write = \"{}\" needs the stream's `key` (the target columns identifying a row)",
                target.write.name()
            )));
        }
        let client = self.client().await?;
        let cols: Vec<String> = target
            .columns
            .iter()
            .map(|f| quote_ident(&f.name))
            .collect();
        let cols = cols.join(", ");
        let mut setup = String::from("BEGIN;");
        let copy_into = if target.write == WriteMode::Append {
            target.table.clone()
        } else {
            setup.push_str(&format!(
                "CREATE TEMP TABLE {STAGE} ON COMMIT DROP AS SELECT {cols} FROM {} WITH NO DATA;",
                target.table
            ));
            STAGE.to_string()
        };
        client
            .batch_execute(&setup)
            .await
            .map_err(|e| self.err(&context, &e))?;
        let copy = format!("COPY {copy_into} ({cols}) FROM STDIN (FORMAT binary)");
        let merge = merge_statement(target, &cols, state.unique_key);
        let finish = Finish {
            client,
            url: self.url.clone(),
            context,
            merge_lock: merge_lock(target, state.unique_key),
            merge,
            table: target.table.clone(),
            ledger: self.ledger.get().cloned(),
        };
        Ok((finish, copy, state.types))
    }

    /// Adds the primary key of a table tsmigrate created once its rows are loaded; when the
    /// rows do not allow one (a key twice, or NULL in a key column), a plain index on the key
    /// instead, with a note saying why. Returns the notes.
    async fn add_key(&self, client: &Client, target: &PreparedTarget) -> Result<Vec<String>> {
        let table = &target.table;
        let key: Vec<String> = target.key.iter().map(|k| quote_ident(k)).collect();
        let key = key.join(", ");
        let ctx = format!("stream `{}`, table {table}", target.stream);
        let t0 = std::time::Instant::now();
        match client
            .batch_execute(&format!("ALTER TABLE {table} ADD PRIMARY KEY ({key})"))
            .await
        {
            Ok(()) => Ok(vec![format!(
                "primary key ({key}) added after the load in {:.1}s",
                t0.elapsed().as_secs_f64()
            )]),
            Err(e)
                if e.code().is_some_and(|c| {
                    c.code().starts_with("23") || c.code() == "0A000" || c.code() == "42P16"
                }) =>
            {
                let why = e
                    .as_db_error()
                    .map(|d| d.message().to_string())
                    .unwrap_or_else(|| e.to_string());
                let bare = crate::connect::split_table(table).pop().unwrap_or_default();
                let name: String = format!("{bare}_tsmigrate_key").chars().take(63).collect();
                // The comment no longer marks the table, so later runs do not try again.
                client
                    .batch_execute(&format!(
                        "CREATE INDEX IF NOT EXISTS {} ON {table} ({key}); COMMENT ON TABLE {table} IS {}",
                        quote_ident(&name),
                        quote_literal(&format!("tsmigrate: key ({key}) indexed, not unique: {why}"))
                    ))
                    .await
                    .map_err(|e| self.err(&format!("{ctx}: indexing the key"), &e))?;
                Ok(vec![format!(
                    "WARNING: the key ({key}) cannot be the table's primary key ({why}); a plain index on it was built instead, \
                     so a later `sync` of this stream checks for existing rows without a unique index"
                )])
            }
            Err(e) => Err(self.err(&format!("{ctx}: adding the key after the load"), &e)),
        }
    }
}

/// Column sets of the table's unique, non-partial, plain-column indexes.
async fn unique_indexes(
    client: &Client,
    oid: u32,
) -> std::result::Result<Vec<Vec<String>>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT array_agg(a.attname::text) FROM pg_index i \
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
             WHERE i.indrelid = $1 AND i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL \
             GROUP BY i.indexrelid",
            &[&oid],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// True for a type name safe to put into `CREATE TABLE` verbatim.
fn plain_type_name(t: &str) -> bool {
    !t.is_empty()
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b" _(),[]".contains(&b))
}

#[async_trait]
impl Sink for PgSink {
    fn describe(&self) -> String {
        let kind = if self.timescale.is_some() {
            "timescaledb"
        } else {
            "postgres"
        };
        format!("{kind} {}", self.url.redacted())
    }

    async fn check(&self) -> Result<Vec<String>> {
        let client = self.client().await?;
        let summary = server_summary(&client)
            .await
            .map_err(|e| self.err("checking the server", &e))?;
        let mut lines = vec![summary];
        if self.timescale.is_some() {
            let (facts, free) = timescale::check(&client, &self.url).await?;
            lines.extend(facts);
            if let Ok(mut f) = self.free_bytes.lock() {
                *f = free;
            }
        }
        Ok(lines)
    }

    async fn setup(&self, phase: SetupPhase, dry_run: bool) -> Result<Vec<String>> {
        if self.setup.of(phase).is_empty() {
            return Ok(Vec::new());
        }
        let mut client = self.client().await?;
        if self.timescale.is_some() && phase == SetupPhase::Before {
            // Pre-flight before any write: a server that cannot give the TimescaleDB target
            // its extension refuses here, not after the `before` files were applied.
            timescale::ensure_extension(&client, &self.url, true).await?;
        }
        let (schema, plan_id) = match self.ledger.get() {
            Some(p) => (p.schema.clone(), p.plan_id.clone()),
            None => (quote_ident("tsmigrate"), String::new()),
        };
        setup::apply(
            &mut client,
            &self.url,
            &self.setup,
            phase,
            &schema,
            &plan_id,
            dry_run,
        )
        .await
    }

    fn wants_time_extent(&self, request: &TargetRequest) -> bool {
        self.timescale
            .as_ref()
            .and_then(|t| t.spec(&quote_table(&request.table)))
            .is_some_and(|s| s.chunk_interval.is_none() || s.retention.is_some())
    }

    async fn prepare(&self, request: &TargetRequest, dry_run: bool) -> Result<PreparedTarget> {
        let table = quote_table_checked(&request.table, &format!("stream `{}`", request.stream))?;
        let client = self.client().await?;
        let ctx = format!("stream `{}`, table {table}", request.stream);
        let mut notes = Vec::new();
        let mut created = None;
        let mut installed = false;
        if self.timescale.is_some() {
            let (note, now) = timescale::ensure_extension(&client, &self.url, dry_run).await?;
            notes.extend(note);
            installed = now;
        }
        let mut oid = table_oid(&client, &table)
            .await
            .map_err(|e| self.err(&ctx, &e))?;
        if oid.is_none() {
            if !request.create {
                return Err(Error::NotFound(format!(
                    "{ctx}: the target table does not exist; create it, or set create = true in the stream to let tsmigrate create it"
                )));
            }
            let mut cols = Vec::new();
            for c in &request.columns {
                let ty = match &c.declared {
                    Some(t) if plain_type_name(t) => t.clone(),
                    Some(t) => {
                        return Err(Error::Plan(format!(
                            "{ctx}: column `{}` has type {t:?}, which is not a plain SQL type name",
                            c.name
                        )))
                    }
                    None => c.dtype.pg_name().to_string(),
                };
                cols.push(format!("{} {ty}", quote_ident(&c.name)));
            }
            let key: Vec<String> = request.key.iter().map(|k| quote_ident(k)).collect();
            if request.write != WriteMode::Append && !request.key.is_empty() {
                // skip and upsert need a unique key; a new table gets it as its primary key.
                cols.push(format!("PRIMARY KEY ({})", key.join(", ")));
            }
            let ddl = format!("CREATE TABLE {table} ({})", cols.join(", "));
            // An appended table gets its key when the load is done: building an index once
            // is faster than keeping it up to date row by row.
            let comment = format!(
                "COMMENT ON TABLE {table} IS {}",
                quote_literal(&format!(
                    "{CREATED_COMMENT} {}; its key ({}) is added after the load",
                    request.stream,
                    request.key.join(", ")
                ))
            );
            if dry_run {
                notes.push("the table does not exist yet; it would be created".to_string());
            } else {
                client
                    .batch_execute(&format!("BEGIN; {ddl}; {comment}; COMMIT"))
                    .await
                    .map_err(|e| self.err(&format!("{ctx}: creating the table"), &e))?;
                oid = table_oid(&client, &table)
                    .await
                    .map_err(|e| self.err(&ctx, &e))?;
            }
            created = Some(ddl);
        }
        let mut fields = Vec::new();
        let mut types = Vec::new();
        let mut limits = Vec::new();
        let mut unique_key = created.is_some() && request.write != WriteMode::Append;
        let mut key_after_load = false;
        match oid {
            None => {
                // Dry run of a table to be created: the declared or inferred types.
                for c in &request.columns {
                    let dt = c
                        .declared
                        .as_deref()
                        .and_then(DataType::parse_sql)
                        .unwrap_or(c.dtype);
                    let pt = PgType::for_dtype(dt);
                    types.push(pt);
                    fields.push(Field::new(c.name.clone(), pt.dtype()));
                }
            }
            Some(oid) => {
                let existing = table_columns(&client, oid)
                    .await
                    .map_err(|e| self.err(&ctx, &e))?;
                for c in &request.columns {
                    let col = existing_column(&existing, |t| t.name.as_str(), &c.name, &ctx)?;
                    let pt = PgType::from_typname(&col.typname).ok_or_else(|| {
                        Error::Unsupported(format!(
                            "{ctx}: column `{}` has type {}, which tsmigrate cannot write yet",
                            col.name, col.formatted
                        ))
                    })?;
                    types.push(pt);
                    limits.push(col.limits());
                    fields.push(Field::new(col.name.clone(), pt.dtype()));
                }
                for t in &existing {
                    let mapped = fields.iter().any(|f| f.name == t.name);
                    if !mapped && t.not_null && !t.has_default {
                        return Err(Error::Plan(format!(
                            "{ctx}: column `{}` is NOT NULL without a default, and the stream does not map it",
                            t.name
                        )));
                    }
                }
                let row = client
                    .query_one(
                        "SELECT (SELECT count(*) FROM pg_index WHERE indrelid = $1), \
                                (SELECT reltuples::float8 FROM pg_class WHERE oid = $1)",
                        &[&oid],
                    )
                    .await
                    .map_err(|e| self.err(&ctx, &e))?;
                let (indexes, tuples): (i64, f64) = (row.get(0), row.get(1));
                if tuples > 0.0 {
                    notes.push(format!(
                        "the table already holds about {} rows",
                        tuples as u64
                    ));
                }
                if !request.key.is_empty() {
                    let mut want: Vec<String> = Vec::new();
                    for k in &request.key {
                        let col = existing
                            .iter()
                            .find(|t| t.name == *k)
                            .or_else(|| existing.iter().find(|t| t.name.eq_ignore_ascii_case(k)))
                            .ok_or_else(|| {
                                Error::Plan(format!(
                                    "{ctx}: key column `{k}` is not a column of the table"
                                ))
                            })?;
                        want.push(col.name.clone());
                    }
                    want.sort();
                    unique_key = unique_indexes(&client, oid)
                        .await
                        .map_err(|e| self.err(&ctx, &e))?
                        .into_iter()
                        .any(|mut cols| {
                            cols.sort();
                            cols == want
                        });
                    key_after_load = !unique_key
                        && client
                            .query_one(
                                "SELECT coalesce(obj_description($1, 'pg_class'), '') LIKE $2 || '%'",
                                &[&oid, &CREATED_COMMENT],
                            )
                            .await
                            .map_err(|e| self.err(&ctx, &e))?
                            .get::<_, bool>(0);
                }
                if request.require_empty {
                    let row = client
                        .query_one(&format!("SELECT EXISTS (SELECT 1 FROM {table})"), &[])
                        .await
                        .map_err(|e| self.err(&ctx, &e))?;
                    if row.get::<_, bool>(0) {
                        // Refused in a dry run and `check` too: they must not pass what `run` refuses.
                        return Err(Error::Plan(refuse_append(&ctx)));
                    }
                }
                if indexes > 0 {
                    notes.push(format!(
                        "the table has {indexes} index(es); loading is several times faster without them (create them after the load)"
                    ));
                }
            }
        }
        if request.write == WriteMode::Upsert && !unique_key && oid.is_some() {
            return Err(Error::Plan(format!(
                "{ctx}: write = \"upsert\" needs a unique index or primary key on exactly the key columns ({}); \
                 create one (CREATE UNIQUE INDEX ON {table} ({})), or use write = \"skip\"",
                request.key.join(", "),
                request.key.iter().map(|k| quote_ident(k)).collect::<Vec<_>>().join(", ")
            )));
        }
        if request.write == WriteMode::Skip && !unique_key && oid.is_some() {
            notes.push(format!(
                "write = \"skip\" without a unique index on the key ({}): each partition checks for existing rows with NOT EXISTS, which is slow without an index on those columns",
                request.key.join(", ")
            ));
        }
        let mut hypertable = None;
        if let Some(spec) = self.timescale.as_ref().and_then(|t| t.spec(&table)) {
            let compress = self.timescale.as_ref().is_some_and(|t| t.compress);
            let (ht_notes, ht) = timescale::prepare(
                &client, &self.url, &ctx, &table, oid, spec, request, compress, installed, dry_run,
            )
            .await?;
            notes.extend(ht_notes);
            hypertable = ht;
            if dry_run {
                notes.extend(self.size_note(request));
            }
        }
        if let Ok(mut map) = self.targets.lock() {
            map.insert(
                request.stream.clone(),
                TargetState {
                    types,
                    unique_key,
                    hypertable,
                    key_after_load: key_after_load
                        || (created.is_some() && !unique_key && !request.key.is_empty()),
                },
            );
        }
        Ok(PreparedTarget {
            stream: request.stream.clone(),
            table,
            columns: fields,
            created,
            notes,
            write: request.write,
            key: request.key.clone(),
            limits,
        })
    }

    async fn begin(
        &self,
        target: &PreparedTarget,
        partition: &Partition,
    ) -> Result<Box<dyn PartitionWriter>> {
        let (finish, copy, types) = self.open_partition(target, partition).await?;
        let sink = finish
            .client
            .copy_in::<_, Bytes>(copy.as_str())
            .await
            .map_err(|e| self.err(&finish.context, &e))?;
        Ok(Box::new(PgPartitionWriter {
            sink: Box::pin(sink),
            types,
            header_written: false,
            finish,
        }))
    }

    async fn begin_isolating(
        &self,
        target: &PreparedTarget,
        partition: &Partition,
    ) -> Result<Box<dyn PartitionWriter>> {
        let (finish, copy, types) = self.open_partition(target, partition).await?;
        Ok(Box::new(IsolatingWriter {
            finish,
            copy,
            types,
            copied: 0,
        }))
    }

    /// Adds the key of a table tsmigrate created (now that it is loaded), then compresses
    /// the loaded chunks of a hypertable whose plan asks for it.
    async fn finish(&self, target: &PreparedTarget) -> Result<FinishReport> {
        let state = self
            .targets
            .lock()
            .ok()
            .and_then(|m| m.get(&target.stream).cloned());
        let mut report = FinishReport::default();
        if state.as_ref().is_some_and(|s| s.key_after_load) {
            let client = self.client().await?;
            report.notes.extend(self.add_key(&client, target).await?);
            if let Ok(mut m) = self.targets.lock() {
                if let Some(s) = m.get_mut(&target.stream) {
                    s.key_after_load = false;
                }
            }
        }
        match state.and_then(|s| s.hypertable) {
            Some(ht) if ht.compress => {
                let client = self.client().await?;
                let mut c = timescale::compress(&client, &self.url, &ht).await?;
                c.notes.splice(0..0, report.notes);
                Ok(c)
            }
            _ => Ok(report),
        }
    }

    fn ledger(&self, plan_id: &str, opts: &LedgerOptions) -> Result<Option<Arc<dyn Ledger>>> {
        let schema = opts.schema.as_deref().unwrap_or("tsmigrate");
        let ledger = PgLedger::new(self.url.clone(), schema, plan_id);
        let place = ledger.place().clone();
        if let Some(existing) = self.ledger.get() {
            if existing.plan_id != place.plan_id || existing.schema != place.schema {
                return Err(Error::Internal(
                    "the target was asked for two different ledgers".into(),
                ));
            }
        }
        let _ = self.ledger.set(place);
        Ok(Some(Arc::new(ledger)))
    }

    /// A [`PgTableReader`] on the same database, so `verify` can read the written tables back.
    fn reader(&self) -> Option<Arc<dyn TableReader>> {
        Some(Arc::new(PgTableReader::new(self.url.clone())))
    }

    async fn lookup(
        &self,
        spec: &LookupSpec,
        names: Option<&[String]>,
        create: bool,
    ) -> Result<Batch> {
        let mut client = self.client().await?;
        crate::lookup::lookup(&mut client, spec, names, create, &|ctx, e| self.err(ctx, e)).await
    }
}

/// The statement moving staged rows into the table for `skip` and `upsert` (`None` for
/// `append`). Duplicate keys within one partition keep the last row staged.
/// The lock `skip` without a unique key takes before its merge: its `NOT EXISTS` sees only
/// rows committed before it began, so two partitions merging the same key side by side
/// (`--jobs`, overlapping sync windows) would both insert it. `SHARE ROW EXCLUSIVE` conflicts
/// with itself and lets readers be: the merges of one table take turns, and each sees the
/// rows of the one before.
fn merge_lock(target: &PreparedTarget, unique_key: bool) -> Option<String> {
    (target.write == WriteMode::Skip && !unique_key)
        .then(|| format!("LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE", target.table))
}

fn merge_statement(target: &PreparedTarget, cols: &str, unique_key: bool) -> Option<String> {
    let key: Vec<String> = target.key.iter().map(|k| quote_ident(k)).collect();
    let key = key.join(", ");
    let distinct =
        format!("SELECT DISTINCT ON ({key}) {cols} FROM {STAGE} s ORDER BY {key}, s.ctid DESC");
    let table = &target.table;
    match target.write {
        WriteMode::Append => None,
        WriteMode::Skip if unique_key => Some(format!(
            "INSERT INTO {table} ({cols}) {distinct} ON CONFLICT ({key}) DO NOTHING"
        )),
        WriteMode::Skip => {
            let cond: Vec<String> = target
                .key
                .iter()
                .map(|k| format!("t.{q} = d.{q}", q = quote_ident(k)))
                .collect();
            Some(format!(
                "INSERT INTO {table} ({cols}) SELECT {cols} FROM ({distinct}) d \
                 WHERE NOT EXISTS (SELECT 1 FROM {table} t WHERE {})",
                cond.join(" AND ")
            ))
        }
        WriteMode::Upsert => {
            let set: Vec<String> = target
                .columns
                .iter()
                .filter(|f| !target.key.iter().any(|k| k == &f.name))
                .map(|f| format!("{q} = EXCLUDED.{q}", q = quote_ident(&f.name)))
                .collect();
            let action = if set.is_empty() {
                "DO NOTHING".to_string()
            } else {
                format!("DO UPDATE SET {}", set.join(", "))
            };
            Some(format!(
                "INSERT INTO {table} ({cols}) {distinct} ON CONFLICT ({key}) {action}"
            ))
        }
    }
}

/// One partition's transaction: `BEGIN; COPY … FROM STDIN (FORMAT binary); [merge;] [ledger;]
/// COMMIT`.
struct PgPartitionWriter {
    sink: Pin<Box<CopyInSink<Bytes>>>,
    types: Vec<PgType>,
    header_written: bool,
    finish: Finish,
}

#[async_trait]
impl PartitionWriter for PgPartitionWriter {
    async fn write(&mut self, batch: &Batch) -> Result<WriteOutcome> {
        let mut buf =
            Vec::with_capacity(batch.byte_size() + batch.len() * 4 * self.types.len() + 32);
        if !self.header_written {
            write_header(&mut buf);
            self.header_written = true;
        }
        let rejected = encode_batch(batch, &self.types, &mut buf);
        let bytes = buf.len() as u64;
        let ctx = &self.finish.context;
        crate::stall::within(
            self.sink.send(Bytes::from(buf)),
            End::Target,
            ctx,
            "sending COPY data",
        )
        .await?
        .map_err(|e| write_error(&self.finish.context, &e, &self.finish.url))?;
        Ok(WriteOutcome { bytes, rejected })
    }

    async fn commit(mut self: Box<Self>, ledger: Option<&PartitionCommit>) -> Result<CommitInfo> {
        let mut buf = Vec::with_capacity(32);
        if !self.header_written {
            write_header(&mut buf);
        }
        write_trailer(&mut buf);
        let fail =
            |e: &tokio_postgres::Error| write_error(&self.finish.context, e, &self.finish.url);
        let ctx = &self.finish.context;
        crate::stall::within(
            self.sink.send(Bytes::from(buf)),
            End::Target,
            ctx,
            "sending COPY data",
        )
        .await?
        .map_err(|e| fail(&e))?;
        let copied = crate::stall::within(
            self.sink.as_mut().finish(),
            End::Target,
            ctx,
            "finishing COPY",
        )
        .await?
        .map_err(|e| fail(&e))?;
        let this = *self;
        this.finish.commit(copied, ledger).await
    }

    async fn abort(self: Box<Self>) -> Result<()> {
        // Dropping the connection mid-COPY makes the server roll the transaction back.
        drop(self);
        Ok(())
    }
}
