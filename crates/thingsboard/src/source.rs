//! The ThingsBoard source: `telemetry` (ts_kv resolved through the key dictionary), `devices`
//! and `assets`, read from ThingsBoard's PostgreSQL database through binary COPY.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::OnceCell;
use tokio_postgres::Client;
use tsmigrate_core::{
    Batch, BatchTx, Column, ConnString, DataType, End, Endpoint, Error, Field, Partition,
    ReadOptions, Result, Schema, SeriesInfo, Source, StreamInfo, StreamSpec,
};
use tsmigrate_postgres::{connect, copy_out_batches, quote_literal, store_error, PgType};

use crate::catalog::{discover, entities_in, Catalog, CatalogError, Layout};
use crate::dump::TbDump;
use crate::partitioning::{plan_limited, plan_sync, plan_telemetry, PhysicalTable, TelemetrySpec};

/// Streams the ThingsBoard source offers.
pub const STREAMS: [&str; 3] = ["telemetry", "devices", "assets"];

/// Reads a ThingsBoard PostgreSQL database, or a pg_dump backup of one.
pub struct TbSource {
    backend: Backend,
    catalog: OnceCell<Catalog>,
}

/// Where the ThingsBoard data is.
enum Backend {
    /// A live database.
    Db(ConnString),
    /// A pg_dump backup file (`dump = "…"`).
    Dump(TbDump),
}

/// Columns of the telemetry stream as read from `ts_kv` (key still an id).
const TELEMETRY_SQL_COLUMNS: &str = "entity_id, key, ts, bool_v, str_v, long_v, dbl_v, json_v";
const TELEMETRY_WIRE: [PgType; 8] = [
    PgType::Uuid,
    PgType::Int4,
    PgType::Int8,
    PgType::Bool,
    PgType::Text,
    PgType::Int8,
    PgType::Float8,
    PgType::Json,
];
const ENTITY_SQL_COLUMNS: &str =
    "id, name, type, label, additional_info, tenant_id, customer_id, created_time";
const ENTITY_WIRE: [PgType; 8] = [
    PgType::Uuid,
    PgType::Text,
    PgType::Text,
    PgType::Text,
    PgType::Text,
    PgType::Uuid,
    PgType::Uuid,
    PgType::Int8,
];

fn wire_schema(names: &str, types: &[PgType]) -> Schema {
    Schema::new(
        names
            .split(", ")
            .zip(types)
            .map(|(n, t)| Field::new(n, t.dtype()))
            .collect(),
    )
}

/// The telemetry stream's schema after key resolution: `key` is the key's (renamed) name.
pub fn telemetry_schema() -> Schema {
    let mut s = wire_schema(TELEMETRY_SQL_COLUMNS, &TELEMETRY_WIRE);
    s.fields[1].dtype = DataType::Text;
    s
}

/// The devices / assets stream schema.
pub fn entity_schema() -> Schema {
    wire_schema(ENTITY_SQL_COLUMNS, &ENTITY_WIRE)
}

impl TbSource {
    /// A source for the `[source]` endpoint (`kind = "thingsboard"`, `url = …` for a live
    /// database or `dump = "backup.dump"` for a pg_dump backup of one).
    pub fn open(endpoint: &Endpoint) -> Result<TbSource> {
        let mut dump = None;
        for (k, v) in &endpoint.options {
            match (k.as_str(), v) {
                ("dump", toml::Value::String(p)) if !p.is_empty() => dump = Some(p.clone()),
                ("dump", _) => {
                    return Err(Error::Plan(
                        "source.dump must name the backup file (pg_dump -Fc file, -Fd directory or .sql[.gz])".into(),
                    ))
                }
                (other, _) => {
                    return Err(Error::Plan(format!(
                        "[source]: unknown option `{other}` for kind = \"thingsboard\" (its options are url and dump)"
                    )))
                }
            }
        }
        let backend = match (endpoint.url.clone(), dump) {
            (Some(url), None) => Backend::Db(url),
            (None, Some(path)) => Backend::Dump(TbDump::new(PathBuf::from(path))),
            (Some(_), Some(_)) => {
                return Err(Error::Plan(
                    "[source] kind = \"thingsboard\" takes url (a live database) or dump (a backup file), not both".into(),
                ))
            }
            (None, None) => {
                return Err(Error::Plan(
                    "[source] kind = \"thingsboard\" needs url = \"postgres://user@host/thingsboard\" or dump = \"backup.dump\""
                        .into(),
                ))
            }
        };
        Ok(TbSource {
            backend,
            catalog: OnceCell::new(),
        })
    }

    /// The database's connection string; an internal error for a backup source.
    fn url(&self) -> Result<&ConnString> {
        match &self.backend {
            Backend::Db(url) => Ok(url),
            Backend::Dump(_) => Err(Error::Unsupported(
                "internal error: a database query on a ThingsBoard backup source".into(),
            )),
        }
    }

    async fn client(&self) -> Result<Client> {
        connect(self.url()?, End::Source).await
    }

    fn err(&self, context: &str, e: &tokio_postgres::Error) -> Error {
        match &self.backend {
            Backend::Db(url) => store_error(End::Source, context, e, url),
            Backend::Dump(_) => Error::Unsupported(format!("internal error: {context}: {e}")),
        }
    }

    async fn catalog(&self) -> Result<&Catalog> {
        self.catalog
            .get_or_try_init(|| async {
                if let Backend::Dump(d) = &self.backend {
                    return d.catalog().await;
                }
                let client = self.client().await?;
                discover(&client).await.map_err(|e| match e {
                    CatalogError::Db(e) => self.err("reading the ThingsBoard catalog", &e),
                    CatalogError::NotThingsBoard(m) => Error::NotFound(format!("source: {m}")),
                })
            })
            .await
    }

    /// (id, name) of every device.
    async fn devices(&self) -> Result<Vec<(String, String)>> {
        if let Backend::Dump(d) = &self.backend {
            return d.devices().await;
        }
        Ok(self
            .client()
            .await?
            .query("SELECT id::text, name::text FROM device", &[])
            .await
            .map_err(|e| self.err("reading devices", &e))?
            .iter()
            .map(|r| (r.get(0), r.get::<_, Option<String>>(1).unwrap_or_default()))
            .collect())
    }

    /// Ids of every asset.
    async fn asset_ids(&self) -> Result<Vec<String>> {
        if let Backend::Dump(d) = &self.backend {
            return d.asset_ids().await;
        }
        Ok(self
            .client()
            .await?
            .query("SELECT id::text FROM asset", &[])
            .await
            .map_err(|e| self.err("reading assets", &e))?
            .iter()
            .map(|r| r.get::<_, String>(0))
            .collect())
    }

    /// Key ids to read for the stream's `filter.keys` (empty = all), checking every name exists.
    fn key_ids(&self, cat: &Catalog, stream: &StreamSpec) -> Result<Vec<i32>> {
        let mut ids = Vec::new();
        for k in &stream.filter.keys {
            match cat.keys.iter().find(|(_, n)| *n == k) {
                Some((id, _)) => ids.push(*id),
                None => {
                    return Err(Error::Plan(format!(
                        "stream `{}`: filter.keys names {k:?}, which is not in {}; known keys: {}",
                        stream.name,
                        cat.dictionary,
                        known(cat.keys.values())
                    )))
                }
            }
        }
        Ok(ids)
    }

    /// Key id → name after the stream's `rename_keys`, checking renamed keys exist.
    fn key_names(&self, cat: &Catalog, stream: &StreamSpec) -> Result<Vec<Option<Arc<str>>>> {
        for from in stream.rename_keys.keys() {
            if !cat.keys.values().any(|n| n == from) {
                return Err(Error::Plan(format!(
                    "stream `{}`: rename_keys renames {from:?}, which is not in {}; known keys: {}",
                    stream.name,
                    cat.dictionary,
                    known(cat.keys.values())
                )));
            }
        }
        let max = cat.keys.keys().copied().max().unwrap_or(0).max(0) as usize;
        let mut names = vec![None; max + 1];
        for (id, name) in &cat.keys {
            if let Some(slot) = usize::try_from(*id).ok().and_then(|i| names.get_mut(i)) {
                let n = stream.rename_keys.get(name).unwrap_or(name);
                *slot = Some(Arc::from(n.as_str()));
            }
        }
        Ok(names)
    }

    /// Entity ids allowed by `filter.devices` (names or ids) and `filter.entity_types`
    /// (`DEVICE`, `ASSET`); `None` = no restriction. Fails on any unknown entry.
    async fn entity_filter(&self, stream: &StreamSpec) -> Result<Option<BTreeSet<String>>> {
        let f = &stream.filter;
        if f.devices.is_empty() && f.entity_types.is_empty() {
            return Ok(None);
        }
        let devices = self.devices().await?;
        let mut allowed: Option<BTreeSet<String>> = None;
        if !f.devices.is_empty() {
            let mut ids = BTreeSet::new();
            for want in &f.devices {
                let hits: Vec<_> = devices
                    .iter()
                    .filter(|(id, name)| name == want || id.eq_ignore_ascii_case(want))
                    .collect();
                if hits.is_empty() {
                    return Err(Error::Plan(format!(
                        "stream `{}`: filter.devices names {want:?}, which is neither a device name nor a device id; known devices: {}",
                        stream.name,
                        known(devices.iter().map(|(_, n)| n))
                    )));
                }
                ids.extend(hits.into_iter().map(|(id, _)| id.clone()));
            }
            allowed = Some(ids);
        }
        if !f.entity_types.is_empty() {
            let mut ids = BTreeSet::new();
            for t in &f.entity_types {
                match t.to_ascii_uppercase().as_str() {
                    "DEVICE" => ids.extend(devices.iter().map(|(id, _)| id.clone())),
                    "ASSET" => ids.extend(self.asset_ids().await?),
                    other => {
                        return Err(Error::Plan(format!(
                            "stream `{}`: filter.entity_types has {other:?}; use \"DEVICE\" and/or \"ASSET\"",
                            stream.name
                        )))
                    }
                }
            }
            allowed = Some(match allowed {
                Some(a) => a.intersection(&ids).cloned().collect(),
                None => ids,
            });
        }
        Ok(allowed)
    }

    fn since_until_ms(stream: &StreamSpec) -> Result<(Option<i64>, Option<i64>)> {
        // ts >= since (ms) keeps rows at or after `since`; round µs bounds up to whole ms.
        let up = |us: i64| us.div_euclid(1000) + i64::from(us.rem_euclid(1000) != 0);
        Ok((
            stream.filter.since_us()?.map(up),
            stream.filter.until_us()?.map(up),
        ))
    }

    async fn telemetry_partitions(
        &self,
        stream: &StreamSpec,
        opts: &ReadOptions,
    ) -> Result<Vec<Partition>> {
        let cat = self.catalog().await?;
        self.key_ids(cat, stream)?;
        self.key_names(cat, stream)?;
        let wanted = self.entity_filter(stream).await?;
        let (since, until) = Self::since_until_ms(stream)?;
        if let Backend::Dump(d) = &self.backend {
            if stream.limit.is_some() {
                return Err(Error::Unsupported(format!(
                    "stream `{}`: `limit` is not supported when reading a backup (dump = …); filter by devices, keys or time instead",
                    stream.name
                )));
            }
            let floors = opts
                .sync
                .as_ref()
                .map(|f| f.by_first_value())
                .unwrap_or_default();
            return Ok(d.plan(
                cat,
                wanted.as_ref(),
                since,
                until,
                opts.align_seconds.map(|s| s.saturating_mul(1000)),
                floors,
            ));
        }
        let client = self.client().await?;
        let mut tables = Vec::new();
        for (name, from, to, est) in &cat.tables {
            let mut entities = entities_in(&client, name)
                .await
                .map_err(|e| self.err(&format!("listing entities of {name}"), &e))?;
            let all = entities.len();
            if let Some(w) = &wanted {
                entities.retain(|e| w.contains(e));
            }
            tables.push(PhysicalTable {
                name: name.clone(),
                from: *from,
                to: *to,
                // Scale the estimate to the entities kept.
                est_rows: *est * entities.len() as f64 / all.max(1) as f64,
                unfiltered: entities.len() == all,
                entities,
            });
        }
        if let Some(floors) = &opts.sync {
            let all: BTreeSet<String> = tables
                .iter()
                .flat_map(|t| t.entities.iter().cloned())
                .collect();
            let all: Vec<String> = all.into_iter().collect();
            return Ok(plan_sync(&all, &floors.by_first_value(), since, until));
        }
        if let Some(limit) = stream.limit {
            let all: BTreeSet<String> = tables
                .iter()
                .flat_map(|t| t.entities.iter().cloned())
                .collect();
            let all: Vec<String> = all.into_iter().collect();
            return Ok(plan_limited(&all, since, until, limit));
        }
        Ok(plan_telemetry(
            &tables,
            since,
            until,
            opts.partition_rows,
            opts.align_seconds.map(|s| s.saturating_mul(1000)),
        ))
    }

    async fn read_telemetry(
        &self,
        stream: &StreamSpec,
        partition: &Partition,
        opts: &ReadOptions,
        out: BatchTx,
    ) -> Result<()> {
        let context = format!("stream `{}`, partition {}", stream.name, partition.id);
        let cat = self.catalog().await?;
        let names = self.key_names(cat, stream)?;
        let key_ids = self.key_ids(cat, stream)?;
        if let Backend::Dump(d) = &self.backend {
            let out_schema = Arc::new(telemetry_schema());
            return d
                .read_telemetry(
                    context,
                    &partition.spec,
                    &key_ids,
                    opts.batch_rows,
                    move |batch| resolve_keys(batch, &names, &out_schema),
                    out,
                )
                .await;
        }
        let spec: TelemetrySpec = serde_json::from_value(partition.spec.clone())
            .map_err(|e| Error::Plan(format!("{context}: bad partition description: {e}")))?;
        let mut conds = Vec::new();
        let mut join = String::new();
        if !spec.floors.is_empty() {
            // A sync round: each entity from its own floor.
            if spec.floors.len() != spec.entities.len() {
                return Err(Error::Plan(format!(
                    "{context}: bad partition description: {} floors for {} entities",
                    spec.floors.len(),
                    spec.entities.len()
                )));
            }
            let values: Vec<String> = spec
                .entities
                .iter()
                .zip(&spec.floors)
                .map(|(e, f)| {
                    format!(
                        "({}::uuid, {}::int8)",
                        quote_literal(e),
                        f.unwrap_or(i64::MIN)
                    )
                })
                .collect();
            join = format!(
                " JOIN (VALUES {}) AS tsm_floor(entity, since) ON entity_id = tsm_floor.entity",
                values.join(", ")
            );
            conds.push("ts >= tsm_floor.since".to_string());
        } else if !spec.entities.is_empty() {
            let list: Vec<String> = spec.entities.iter().map(|e| quote_literal(e)).collect();
            conds.push(format!("entity_id IN ({})", list.join(", ")));
        }
        if let Some(f) = spec.ts_from {
            conds.push(format!("ts >= {f}"));
        }
        if let Some(t) = spec.ts_to {
            conds.push(format!("ts < {t}"));
        }
        if !key_ids.is_empty() {
            let list: Vec<String> = key_ids.iter().map(|k| k.to_string()).collect();
            conds.push(format!("key IN ({})", list.join(", ")));
        }
        let mut query = format!(
            "SELECT {TELEMETRY_SQL_COLUMNS} FROM {}{join}",
            quote_table_name(&spec.table)
        );
        if !conds.is_empty() {
            query.push_str(" WHERE ");
            query.push_str(&conds.join(" AND "));
        }
        if let Some(limit) = spec.limit {
            query.push_str(&format!(" ORDER BY ts, key LIMIT {limit}"));
        }
        let out_schema = Arc::new(telemetry_schema());
        let client = self.client().await?;
        copy_out_batches(
            &client,
            self.url()?,
            &query,
            Arc::new(wire_schema(TELEMETRY_SQL_COLUMNS, &TELEMETRY_WIRE)),
            TELEMETRY_WIRE.to_vec(),
            opts.batch_rows,
            &context,
            |batch| resolve_keys(batch, &names, &out_schema),
            &out,
        )
        .await?;
        Ok(())
    }

    async fn read_entities(
        &self,
        stream: &StreamSpec,
        table: &str,
        out: BatchTx,
        opts: &ReadOptions,
    ) -> Result<()> {
        if let Backend::Dump(d) = &self.backend {
            let only = if table == "device" && !stream.filter.devices.is_empty() {
                self.entity_filter(stream).await?
            } else {
                None
            };
            return d.read_entities(table, only, out).await;
        }
        let client = self.client().await?;
        let mut query = format!("SELECT {ENTITY_SQL_COLUMNS} FROM {table}");
        if table == "device" && !stream.filter.devices.is_empty() {
            if let Some(ids) = self.entity_filter(stream).await? {
                let list: Vec<String> = ids.iter().map(|e| quote_literal(e)).collect();
                query.push_str(&format!(" WHERE id IN ({})", list.join(", ")));
            }
        }
        query.push_str(" ORDER BY created_time, id");
        let context = format!("stream `{}`, table {table}", stream.name);
        copy_out_batches(
            &client,
            self.url()?,
            &query,
            Arc::new(entity_schema()),
            ENTITY_WIRE.to_vec(),
            opts.batch_rows,
            &context,
            Ok,
            &out,
        )
        .await?;
        Ok(())
    }

    fn unknown_stream(stream: &StreamSpec) -> Error {
        Error::Plan(format!(
            "stream `{}` reads source stream `{}`, which the ThingsBoard source does not have; it has: {} (set `from = \"…\"`)",
            stream.name,
            stream.source_stream(),
            STREAMS.join(", ")
        ))
    }
}

/// Table names come from the catalog (ts_kv partitions); quote them for SQL.
fn quote_table_name(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn known<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let v: Vec<&str> = names.map(String::as_str).collect();
    if v.len() > 30 {
        format!("{} … ({} in all)", v[..30].join(", "), v.len())
    } else {
        v.join(", ")
    }
}

/// Replaces the key id column by the key's (renamed) name. An id missing from the dictionary
/// keeps its number as its name.
fn resolve_keys(batch: Batch, names: &[Option<Arc<str>>], schema: &Arc<Schema>) -> Result<Batch> {
    let ids = batch
        .columns
        .get(1)
        .ok_or_else(|| internal("telemetry batch without a key column"))?;
    let mut keys = Column::with_capacity(DataType::Text, batch.len());
    let raw = ids
        .ints()
        .ok_or_else(|| internal("key column is not an integer column"))?;
    for (i, id) in raw.iter().enumerate() {
        if !ids.is_valid(i) {
            keys.push_null();
            continue;
        }
        match usize::try_from(*id)
            .ok()
            .and_then(|k| names.get(k))
            .and_then(Option::as_ref)
        {
            Some(n) => keys.push_str(n),
            None => keys.push_str(&id.to_string()),
        }
    }
    let mut columns = batch.columns;
    columns[1] = Arc::new(keys);
    Batch::new(schema.clone(), columns)
        .ok_or_else(|| internal("resolved telemetry batch does not match its schema"))
}

fn internal(m: &str) -> Error {
    Error::Decode {
        end: End::Source,
        context: "telemetry".into(),
        message: format!("internal error: {m}"),
    }
}

#[async_trait]
impl Source for TbSource {
    fn describe(&self) -> String {
        match &self.backend {
            Backend::Db(url) => format!("thingsboard {}", url.redacted()),
            Backend::Dump(d) => format!("thingsboard {}", d.describe()),
        }
    }

    async fn check(&self) -> Result<Vec<String>> {
        let cat = self.catalog().await?;
        let (devices, assets) = match &self.backend {
            Backend::Dump(d) => d.counts().await?,
            Backend::Db(_) => {
                let row = self
                    .client()
                    .await?
                    .query_one(
                        "SELECT (SELECT count(*) FROM device), (SELECT count(*) FROM asset)",
                        &[],
                    )
                    .await
                    .map_err(|e| self.err("counting devices and assets", &e))?;
                (row.get::<_, i64>(0) as usize, row.get::<_, i64>(1) as usize)
            }
        };
        let layout = match cat.layout {
            Layout::Partitioned => {
                let names: Vec<&str> = cat.tables.iter().map(|t| t.0.as_str()).collect();
                format!(
                    "ts_kv partitioned by ts into {} tables: {}",
                    names.len(),
                    names.join(", ")
                )
            }
            Layout::Hypertable => "ts_kv is a TimescaleDB hypertable".to_string(),
            Layout::Plain => "ts_kv is a plain table".to_string(),
        };
        let est: f64 = cat.tables.iter().map(|t| t.3).sum();
        Ok(vec![
            format!("PostgreSQL {}", cat.server_version),
            format!(
                "key dictionary: {} ({} keys)",
                cat.dictionary,
                cat.keys.len()
            ),
            layout,
            match &self.backend {
                Backend::Db(_) => format!(
                    "about {} telemetry rows, {devices} devices, {assets} assets",
                    est as u64
                ),
                Backend::Dump(_) => format!(
                    "{devices} devices, {assets} assets (telemetry rows are counted as they are read)"
                ),
            },
        ])
    }

    async fn stream_info(&self, stream: &StreamSpec) -> Result<StreamInfo> {
        let cat = self.catalog().await?;
        match stream.source_stream() {
            "telemetry" => {
                self.key_ids(cat, stream)?;
                self.key_names(cat, stream)?;
                Ok(StreamInfo {
                    schema: Arc::new(telemetry_schema()),
                    key_columns: vec!["entity_id".into(), "key".into(), "ts".into()],
                    estimated_rows: match self.backend {
                        Backend::Db(_) => Some(cat.tables.iter().map(|t| t.3).sum::<f64>() as u64),
                        Backend::Dump(_) => None,
                    },
                    notes: vec![format!("keys resolved through {}", cat.dictionary)],
                    series: Some(SeriesInfo {
                        columns: vec!["entity_id".into(), "key".into()],
                        time_column: "ts".into(),
                        ticks_per_second: 1000,
                    }),
                })
            }
            "devices" | "assets" => Ok(StreamInfo {
                schema: Arc::new(entity_schema()),
                key_columns: vec!["id".into()],
                estimated_rows: None,
                notes: Vec::new(),
                series: None,
            }),
            _ => Err(Self::unknown_stream(stream)),
        }
    }

    async fn partitions(&self, stream: &StreamSpec, opts: &ReadOptions) -> Result<Vec<Partition>> {
        match stream.source_stream() {
            "telemetry" => self.telemetry_partitions(stream, opts).await,
            s @ ("devices" | "assets") => Ok(vec![Partition {
                id: s.to_string(),
                estimated_rows: None,
                spec: serde_json::json!({ "table": if s == "devices" { "device" } else { "asset" } }),
            }]),
            _ => Err(Self::unknown_stream(stream)),
        }
    }

    async fn read(
        &self,
        stream: &StreamSpec,
        partition: &Partition,
        opts: &ReadOptions,
        out: BatchTx,
    ) -> Result<()> {
        match stream.source_stream() {
            "telemetry" => self.read_telemetry(stream, partition, opts, out).await,
            "devices" => self.read_entities(stream, "device", out, opts).await,
            "assets" => self.read_entities(stream, "asset", out, opts).await,
            _ => Err(Self::unknown_stream(stream)),
        }
    }
}
