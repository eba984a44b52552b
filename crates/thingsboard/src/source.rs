//! The ThingsBoard source: options, the catalog it keeps (and refreshes for each sync round),
//! and the [`Source`] implementation dispatching to the streams ([`crate::streams`]).
//!
//! What the source knows of the database — its dictionary, its entity tables, which entity
//! each id is — is a snapshot that a live ThingsBoard keeps changing: a sync round reloads
//! it, and a read that meets a key or an entity the snapshot lacks looks it up again, so a
//! device provisioned after the migration started is read like any other.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::Mutex;
use tokio_postgres::Client;
use tsmigrate_core::{
    BatchTx, ConnString, End, Endpoint, Error, Partition, ReadOptions, Result, SeriesInfo, Source,
    StreamInfo, StreamSpec,
};
use tsmigrate_postgres::{connect, store_error};

use crate::catalog::{discover, read_keys, Attributes, Catalog, CatalogError, Layout};
use crate::dump::TbDump;
use crate::enrich::Enricher;
use crate::entity_types::{all_type_names, type_index, EntityTypes, ENTITY_TYPES};
use crate::keys::{key_filter, missing_renames, KeyNames};
use crate::streams::{
    attributes_schema, latest_schema, record, record_schema, telemetry_schema, STREAMS,
};

/// Reads a ThingsBoard PostgreSQL database, or a pg_dump backup of one.
pub struct TbSource {
    pub(crate) backend: Backend,
    catalog: Mutex<Option<Arc<Catalog>>>,
    pub(crate) types: Arc<EntityTypes>,
    null_uuid_as_null: bool,
}

/// Where the ThingsBoard data is.
pub(crate) enum Backend {
    /// A live database.
    Db(ConnString),
    /// A pg_dump backup file (`dump = "…"`).
    Dump(TbDump),
}

impl TbSource {
    /// A source for the `[source]` endpoint (`kind = "thingsboard"`, `url = …` for a live
    /// database or `dump = "backup.dump"` for a pg_dump backup of one; `null_uuid_as_null`).
    pub fn open(endpoint: &Endpoint) -> Result<TbSource> {
        let mut dump = None;
        let mut null_uuid_as_null = false;
        for (k, v) in &endpoint.options {
            match (k.as_str(), v) {
                ("dump", toml::Value::String(p)) if !p.is_empty() => dump = Some(p.clone()),
                ("dump", _) => {
                    return Err(Error::Plan(
                        "source.dump must name the backup file (pg_dump -Fc file, -Fd directory or .sql[.gz])".into(),
                    ))
                }
                ("null_uuid_as_null", toml::Value::Boolean(b)) => null_uuid_as_null = *b,
                ("null_uuid_as_null", _) => {
                    return Err(Error::Plan(
                        "source.null_uuid_as_null must be true or false".into(),
                    ))
                }
                (other, _) => {
                    return Err(Error::Plan(format!(
                        "[source]: unknown option `{other}` for kind = \"thingsboard\" (its options are url, dump and null_uuid_as_null)"
                    )))
                }
            }
        }
        let backend = match (endpoint.url.clone(), dump) {
            (Some(url), None) => {
                tsmigrate_postgres::connect::check_url(&url, "source")?;
                Backend::Db(url)
            }
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
            catalog: Mutex::new(None),
            types: Arc::new(EntityTypes::default()),
            null_uuid_as_null,
        })
    }

    /// The database's connection string; an internal error for a backup source.
    pub(crate) fn url(&self) -> Result<&ConnString> {
        match &self.backend {
            Backend::Db(url) => Ok(url),
            Backend::Dump(_) => Err(Error::Internal(
                "a database query on a ThingsBoard backup source".into(),
            )),
        }
    }

    pub(crate) async fn client(&self) -> Result<Client> {
        connect(self.url()?, End::Source).await
    }

    pub(crate) fn err(&self, context: &str, e: &tokio_postgres::Error) -> Error {
        match &self.backend {
            Backend::Db(url) => store_error(End::Source, context, e, url),
            Backend::Dump(_) => Error::Internal(format!("{context}: {e}")),
        }
    }

    /// The catalog, read on first use.
    pub(crate) async fn catalog(&self) -> Result<Arc<Catalog>> {
        let mut slot = self.catalog.lock().await;
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let c = Arc::new(self.load_catalog().await?);
        *slot = Some(c.clone());
        Ok(c)
    }

    /// The catalog read again (a sync round of a live database: new partitions, keys and
    /// entities); a backup's stays as it is.
    pub(crate) async fn refresh(&self) -> Result<Arc<Catalog>> {
        if matches!(self.backend, Backend::Dump(_)) {
            return self.catalog().await;
        }
        let c = Arc::new(self.load_catalog().await?);
        self.types.forget_deleted();
        *self.catalog.lock().await = Some(c.clone());
        Ok(c)
    }

    async fn load_catalog(&self) -> Result<Catalog> {
        match &self.backend {
            Backend::Dump(d) => {
                let cat = d.catalog().await?;
                d.load_entity_types(&cat, &self.types).await?;
                Ok(cat)
            }
            Backend::Db(_) => {
                let client = self.client().await?;
                discover(&client).await.map_err(|e| match e {
                    CatalogError::Db(e) => self.err("reading the ThingsBoard catalog", &e),
                    CatalogError::NotThingsBoard(m) => Error::NotFound(format!("source: {m}")),
                })
            }
        }
    }

    /// The catalog with the dictionary read again: a read met a key id it did not know.
    pub(crate) async fn reload_keys(&self) -> Result<Arc<Catalog>> {
        let cat = self.catalog().await?;
        if matches!(self.backend, Backend::Dump(_)) {
            return Ok(cat);
        }
        let client = self.client().await?;
        let keys = read_keys(&client, cat.dictionary)
            .await
            .map_err(|e| self.err("reading the key dictionary", &e))?;
        let fresh = Arc::new(Catalog {
            keys,
            ..(*cat).clone()
        });
        *self.catalog.lock().await = Some(fresh.clone());
        Ok(fresh)
    }

    /// Learns the type of entity ids not seen yet (a live database; a backup's are all known
    /// from the start): one query over every entity table.
    pub(crate) async fn classify(&self, cat: &Catalog, ids: &[[u8; 16]]) -> Result<()> {
        if ids.is_empty() || matches!(self.backend, Backend::Dump(_)) {
            return Ok(());
        }
        let client = self.client().await?;
        let parts: Vec<String> = cat
            .entity_tables
            .iter()
            .filter_map(|i| ENTITY_TYPES.get(usize::from(*i)).map(|(_, t)| (*i, *t)))
            .map(|(i, t)| format!("SELECT id, {i}::int2 FROM {t} WHERE id = ANY($1)"))
            .collect();
        for chunk in ids.chunks(10_000) {
            let list: Vec<uuid::Uuid> = chunk.iter().map(|b| uuid::Uuid::from_bytes(*b)).collect();
            let rows = client
                .query(&parts.join(" UNION ALL "), &[&list])
                .await
                .map_err(|e| self.err("looking up entity types", &e))?;
            let mut found = std::collections::HashSet::new();
            for r in rows {
                let id: uuid::Uuid = r.get(0);
                let t: i16 = r.get(1);
                if let Ok(t) = u8::try_from(t) {
                    self.types.insert([*id.as_bytes()], t);
                    found.insert(*id.as_bytes());
                }
            }
            let missing = chunk.iter().filter(|i| !found.contains(*i)).copied();
            self.types
                .insert(missing, crate::entity_types::DELETED_INDEX);
        }
        Ok(())
    }

    /// The enricher of `stream` on the catalog's current snapshot.
    pub(crate) fn enricher(&self, cat: &Catalog, stream: &StreamSpec) -> Result<Enricher> {
        Ok(Enricher {
            keys: KeyNames::new(&cat.keys, &stream.rename_keys),
            types: self.types.clone(),
            null_uuid_as_null: self.null_uuid_as_null,
            entity_types: entity_type_filter(stream)?,
        })
    }

    /// Key ids the stream's `filter.keys` selects (`None`: every key).
    pub(crate) fn key_ids(cat: &Catalog, stream: &StreamSpec) -> Option<Vec<i32>> {
        key_filter(&cat.keys, &stream.filter.keys)
    }

    /// Notes about keys the plan names that the dictionary lacks (yet).
    fn key_notes(cat: &Catalog, stream: &StreamSpec) -> Vec<String> {
        let mut notes = Vec::new();
        let missing = missing_renames(&cat.keys, &stream.rename_keys);
        if !missing.is_empty() {
            notes.push(format!(
                "rename_keys names {} key(s) not in {} yet ({}): renamed when ThingsBoard adds them",
                missing.len(),
                cat.dictionary,
                missing.join(", ")
            ));
        }
        let absent: Vec<&String> = stream
            .filter
            .keys
            .iter()
            .filter(|k| !cat.keys.values().any(|n| n == *k))
            .collect();
        if !absent.is_empty() {
            notes.push(format!(
                "filter.keys names {} key(s) not in {} yet: {}",
                absent.len(),
                cat.dictionary,
                absent
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        notes
    }

    /// Entity ids of `candidates` allowed by `filter.devices` (device names or ids) and
    /// `filter.entity_types`; `None` = no restriction.
    pub(crate) async fn allowed_entities(
        &self,
        cat: &Catalog,
        stream: &StreamSpec,
        candidates: &BTreeSet<String>,
    ) -> Result<Option<BTreeSet<String>>> {
        let f = &stream.filter;
        if f.devices.is_empty() && f.entity_types.is_empty() {
            return Ok(None);
        }
        let mut allowed = candidates.clone();
        if !f.devices.is_empty() {
            allowed = self.device_ids(stream).await?;
        }
        if let Some(types) = entity_type_filter(stream)? {
            let bytes: Vec<[u8; 16]> = allowed.iter().filter_map(|e| parse_uuid(e)).collect();
            let unknown = self.types.unknown(bytes.iter());
            self.classify(cat, &unknown).await?;
            allowed.retain(|e| {
                parse_uuid(e)
                    .map(|b| {
                        self.types
                            .get(&b)
                            .unwrap_or(crate::entity_types::DELETED_INDEX)
                    })
                    .is_some_and(|t| types.contains(&t))
            });
        }
        Ok(Some(allowed))
    }

    /// Ids of the devices `filter.devices` names (by name or id); an error for a name that is
    /// neither.
    async fn device_ids(&self, stream: &StreamSpec) -> Result<BTreeSet<String>> {
        let devices = self.devices().await?;
        let mut ids = BTreeSet::new();
        for want in &stream.filter.devices {
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
            ids.extend(hits.into_iter().map(|(id, _)| id.to_ascii_lowercase()));
        }
        Ok(ids)
    }

    /// (id, name) of every device.
    async fn devices(&self) -> Result<Vec<(String, String)>> {
        if let Backend::Dump(d) = &self.backend {
            static COLS: [(&str, tsmigrate_core::DataType); 2] = [
                ("id", tsmigrate_core::DataType::Uuid),
                ("name", tsmigrate_core::DataType::Text),
            ];
            let mut out = Vec::new();
            for b in d.read_whole("device", &COLS).await? {
                for r in 0..b.len() {
                    let id = crate::telemetry::uuid_text(b.columns[0].get(r));
                    let name = match b.columns[1].get(r) {
                        tsmigrate_core::ValueRef::Str(s) => s.to_string(),
                        _ => String::new(),
                    };
                    out.extend(id.map(|i| (i, name)));
                }
            }
            return Ok(out);
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

    fn unknown_stream(stream: &StreamSpec) -> Error {
        Error::Plan(format!(
            "stream `{}` reads source stream `{}`, which the ThingsBoard source does not have; it has: {} (set `from = \"…\"`)",
            stream.name,
            stream.source_stream(),
            STREAMS.join(", ")
        ))
    }

    async fn count(&self, table: &str) -> Result<u64> {
        match &self.backend {
            Backend::Dump(d) => Ok(d.count(table).await? as u64),
            Backend::Db(_) => Ok(self
                .client()
                .await?
                .query_one(&format!("SELECT count(*) FROM {table}"), &[])
                .await
                .map_err(|e| self.err(&format!("counting {table}"), &e))?
                .get::<_, i64>(0) as u64),
        }
    }
}

/// The type indexes `filter.entity_types` selects (`None`: every type); an error naming the
/// known types for a name ThingsBoard does not have.
pub(crate) fn entity_type_filter(stream: &StreamSpec) -> Result<Option<BTreeSet<u8>>> {
    if stream.filter.entity_types.is_empty() {
        return Ok(None);
    }
    let mut out = BTreeSet::new();
    for t in &stream.filter.entity_types {
        match type_index(t) {
            Some(i) => {
                out.insert(i);
            }
            None => {
                return Err(Error::Plan(format!(
                    "stream `{}`: filter.entity_types has {t:?}, which is not a ThingsBoard entity type; use any of: {}",
                    stream.name,
                    all_type_names()
                )))
            }
        }
    }
    Ok(Some(out))
}

pub(crate) fn parse_uuid(s: &str) -> Option<[u8; 16]> {
    uuid::Uuid::parse_str(s).ok().map(|u| *u.as_bytes())
}

pub(crate) fn known<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let v: Vec<&str> = names.map(String::as_str).collect();
    if v.len() > 30 {
        format!("{} … ({} in all)", v[..30].join(", "), v.len())
    } else {
        v.join(", ")
    }
}

/// Refuses the filters a stream cannot apply, with what it can.
fn check_filters(stream: &StreamSpec) -> Result<()> {
    let f = &stream.filter;
    let name = stream.source_stream();
    let refuse = |what: &str, can: &str| {
        Err(Error::Plan(format!(
            "stream `{}`: the ThingsBoard stream `{name}` cannot apply {what}; it takes {can}",
            stream.name
        )))
    };
    match name {
        "telemetry" => Ok(()),
        "latest" | "attributes" => {
            if f.since.is_some() || f.until.is_some() {
                return refuse(
                    "filter.since/until (it holds one value per key)",
                    "filter.devices, filter.keys, filter.entity_types and limit (its first rows)",
                );
            }
            Ok(())
        }
        _ => {
            let devices_ok = name == "devices" || f.devices.is_empty();
            if f.since.is_some()
                || f.until.is_some()
                || !f.keys.is_empty()
                || !f.entity_types.is_empty()
                || !devices_ok
            {
                let can = if name == "devices" {
                    "filter.devices and limit (its first rows)"
                } else {
                    "limit (its first rows) and no filter"
                };
                return refuse("filters other than filter.devices on devices", can);
            }
            Ok(())
        }
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
        let generation = match (cat.dictionary, cat.attributes) {
            ("ts_kv_dictionary", _) | (_, Attributes::Text) => {
                "ThingsBoard ≤ 3.6 (ts_kv_dictionary, attributes keyed by text)"
            }
            _ => "ThingsBoard ≥ 3.7 (key_dictionary shared by telemetry and attributes)",
        };
        let mut counts = Vec::new();
        for (what, table) in [
            ("devices", "device"),
            ("assets", "asset"),
            ("customers", "customer"),
        ] {
            if cat.entity_tables.iter().any(|i| {
                ENTITY_TYPES
                    .get(usize::from(*i))
                    .is_some_and(|(_, t)| *t == table)
            }) {
                counts.push(format!("{} {what}", self.count(table).await?));
            }
        }
        let rows = match self.backend {
            Backend::Db(_) => format!(
                "about {} telemetry rows, ",
                cat.tables.iter().map(|t| t.3).sum::<f64>() as u64
            ),
            Backend::Dump(_) => "telemetry rows are counted as they are read; ".into(),
        };
        Ok(vec![
            format!("PostgreSQL {}", cat.server_version),
            generation.to_string(),
            format!(
                "key dictionary: {} ({} keys)",
                cat.dictionary,
                cat.keys.len()
            ),
            layout,
            format!("{rows}{}", counts.join(", ")),
        ])
    }

    async fn stream_info(&self, stream: &StreamSpec) -> Result<StreamInfo> {
        check_filters(stream)?;
        entity_type_filter(stream)?;
        let cat = self.catalog().await?;
        let name = stream.source_stream();
        let mut notes = Vec::new();
        let (schema, key, series, estimate) = match name {
            "telemetry" => {
                notes.push(format!("keys resolved through {}", cat.dictionary));
                notes.extend(Self::key_notes(&cat, stream));
                let est = match self.backend {
                    Backend::Db(_) => Some(cat.tables.iter().map(|t| t.3).sum::<f64>() as u64),
                    Backend::Dump(_) => None,
                };
                (
                    Arc::new(telemetry_schema()),
                    vec!["entity_id", "key", "ts"],
                    Some(SeriesInfo {
                        columns: vec!["entity_id".into(), "key".into()],
                        time_column: "ts".into(),
                        ticks_per_second: 1000,
                    }),
                    est,
                )
            }
            "latest" => {
                notes.extend(Self::key_notes(&cat, stream));
                (
                    Arc::new(latest_schema()),
                    vec!["entity_id", "key"],
                    None,
                    None,
                )
            }
            "attributes" => {
                if cat.attributes == Attributes::Missing {
                    return Err(Error::NotFound(format!(
                        "stream `{}`: the ThingsBoard database has no attribute_kv table",
                        stream.name
                    )));
                }
                (
                    Arc::new(attributes_schema()),
                    vec!["entity_id", "scope", "key"],
                    None,
                    None,
                )
            }
            other => {
                let r = record(other).ok_or_else(|| Self::unknown_stream(stream))?;
                if !cat.has_table(r.table) {
                    return Err(Error::NotFound(format!(
                        "stream `{}`: the ThingsBoard database has no table {}",
                        stream.name, r.table
                    )));
                }
                (record_schema(r), r.key.to_vec(), None, None)
            }
        };
        Ok(StreamInfo {
            schema,
            key_columns: key.into_iter().map(String::from).collect(),
            estimated_rows: estimate,
            notes,
            series,
        })
    }

    async fn partitions(&self, stream: &StreamSpec, opts: &ReadOptions) -> Result<Vec<Partition>> {
        match stream.source_stream() {
            "telemetry" => self.telemetry_partitions(stream, opts).await,
            name if name == "latest" || name == "attributes" || record(name).is_some() => {
                Ok(vec![Partition {
                    id: name.to_string(),
                    estimated_rows: None,
                    spec: serde_json::json!({ "stream": name }),
                }])
            }
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
            "latest" => self.read_latest(stream, opts, out).await,
            "attributes" => self.read_attributes(stream, opts, out).await,
            name => match record(name) {
                Some(r) => self.read_records(stream, r, opts, out).await,
                None => Err(Self::unknown_stream(stream)),
            },
        }
    }

    async fn snapshot_time(&self) -> Result<Option<i64>> {
        Ok(self.catalog().await?.as_of_us)
    }
}
