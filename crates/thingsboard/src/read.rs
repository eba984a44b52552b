//! Planning and reading the ThingsBoard streams, from a live database or a backup.
//!
//! A live read streams `COPY … TO STDOUT (FORMAT binary)` through [`TbSource::copy_enriched`]:
//! raw rows as ThingsBoard stores them, turned into the stream's rows by an
//! [`crate::enrich::Enricher`] that looks up, between batches, any key or entity the source's
//! snapshot lacks. A backup's snapshot is complete, so its rows are enriched as they are
//! decoded.

use std::collections::BTreeSet;
use std::sync::Arc;

use tokio::sync::mpsc;
use tsmigrate_core::{
    Batch, BatchTx, DataType, Error, Field, Partition, ReadOptions, Result, Schema, StreamSpec,
};
use tsmigrate_postgres::{copy_out_batches, quote_ident, quote_literal, PgType};

use crate::catalog::{entities_in, series_in, Attributes, Catalog};
use crate::enrich::Enricher;
use crate::keys::KeyNames;
use crate::partitioning::{plan_limited, plan_sync, plan_telemetry, PhysicalTable, TelemetrySpec};
use crate::source::{parse_uuid, Backend, TbSource};
use crate::streams::{attributes_schema, latest_schema, telemetry_schema, RecordStream, RAW_KEY};
use crate::telemetry::{floors_by_series, query, series_floors, SQL_COLUMNS, WIRE};

/// How a raw batch becomes the stream's.
type Shape = dyn Fn(&Enricher, Batch) -> Result<Batch> + Send + Sync;

/// A raw read: the query, its columns and wire types, which columns hold the entity id and
/// the key id (for look-ups), and how a batch is shaped.
struct RawRead<'a> {
    query: String,
    schema: Arc<Schema>,
    wire: Vec<PgType>,
    entity: usize,
    key: Option<usize>,
    shape: &'a Shape,
}

/// The SQL cast and wire type that read a column as `dtype`.
fn wire_of(dtype: DataType) -> (&'static str, PgType) {
    match dtype {
        DataType::Uuid => ("uuid", PgType::Uuid),
        DataType::Int64 => ("int8", PgType::Int8),
        DataType::Int32 => ("int4", PgType::Int4),
        DataType::Bool => ("bool", PgType::Bool),
        DataType::Float64 => ("float8", PgType::Float8),
        DataType::Json => ("json", PgType::Json),
        _ => ("text", PgType::Text),
    }
}

/// `SELECT` list and wire types reading `columns` of `table` (NULL for a column the table
/// lacks), and the schema.
fn select_list(
    cat: &Catalog,
    table: &str,
    columns: &[(&str, DataType)],
) -> (String, Vec<PgType>, Arc<Schema>) {
    let mut sql = Vec::new();
    let mut wire = Vec::new();
    for (name, dtype) in columns {
        let (cast, w) = wire_of(*dtype);
        wire.push(w);
        if cat.has_column(table, name) {
            sql.push(format!("{}::{cast}", quote_ident(name)));
        } else {
            sql.push(format!("NULL::{cast}"));
        }
    }
    let schema = Schema::new(columns.iter().map(|(n, t)| Field::new(*n, *t)).collect());
    (sql.join(", "), wire, Arc::new(schema))
}

impl TbSource {
    /// Partitions of the telemetry stream: the physical tables × time windows × entity groups
    /// of a run, per-device windows of a `limit`, or a sync round's series from their floors.
    pub(crate) async fn telemetry_partitions(
        &self,
        stream: &StreamSpec,
        opts: &ReadOptions,
    ) -> Result<Vec<Partition>> {
        let cat = match opts.sync {
            Some(_) => self.refresh().await?,
            None => self.catalog().await?,
        };
        let (since, until) = since_until_ms(stream)?;
        if let Backend::Dump(d) = &self.backend {
            if stream.limit.is_some() {
                return Err(Error::Plan(format!(
                    "stream `{}`: `limit` (and --limit) cannot be applied to a backup (dump = …): a first-N per device needs the whole dump read and sorted; filter by devices, keys or time instead",
                    stream.name
                )));
            }
            let wanted = self
                .allowed_entities(&cat, stream, &BTreeSet::new())
                .await?
                .filter(|_| !stream.filter.devices.is_empty());
            let series = match &opts.sync {
                Some(f) => dump_floors(&cat, stream, &floors_by_series(f)),
                None => Vec::new(),
            };
            return Ok(d.plan(
                &cat,
                wanted.as_ref(),
                since,
                until,
                opts.align_seconds.map(|s| s.saturating_mul(1000)),
                series,
            ));
        }
        let client = self.client().await?;
        if let Some(floors) = &opts.sync {
            let mut found = BTreeSet::new();
            for (name, ..) in &cat.tables {
                found.extend(
                    series_in(&client, name)
                        .await
                        .map_err(|e| self.err(&format!("listing the series of {name}"), &e))?,
                );
            }
            let entities: BTreeSet<String> = found.iter().map(|(e, _)| e.clone()).collect();
            if let Some(allowed) = self.allowed_entities(&cat, stream, &entities).await? {
                found.retain(|(e, _)| allowed.contains(e));
            }
            if let Some(ids) = Self::key_ids(&cat, stream) {
                found.retain(|(_, k)| ids.contains(k));
            }
            let keys = KeyNames::new(&cat.keys, &stream.rename_keys);
            let series = series_floors(&found, &keys, &floors_by_series(floors), since);
            return Ok(plan_sync(&series, until));
        }
        let mut tables = Vec::new();
        let mut all_entities = BTreeSet::new();
        for (name, from, to, est) in &cat.tables {
            let entities = entities_in(&client, name)
                .await
                .map_err(|e| self.err(&format!("listing entities of {name}"), &e))?;
            all_entities.extend(entities.iter().cloned());
            tables.push(PhysicalTable {
                name: name.clone(),
                from: *from,
                to: *to,
                est_rows: *est,
                unfiltered: true,
                entities,
            });
        }
        if let Some(allowed) = self.allowed_entities(&cat, stream, &all_entities).await? {
            for t in &mut tables {
                let all = t.entities.len();
                t.entities.retain(|e| allowed.contains(e));
                // Scale the estimate to the entities kept.
                t.est_rows *= t.entities.len() as f64 / all.max(1) as f64;
                t.unfiltered = t.entities.len() == all;
            }
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

    /// Reads one telemetry partition.
    pub(crate) async fn read_telemetry(
        &self,
        stream: &StreamSpec,
        partition: &Partition,
        opts: &ReadOptions,
        out: BatchTx,
    ) -> Result<()> {
        let context = format!("stream `{}`, partition {}", stream.name, partition.id);
        let cat = self.catalog().await?;
        let key_ids = Self::key_ids(&cat, stream);
        let schema = Arc::new(telemetry_schema());
        let shape = move |e: &Enricher, b: Batch| e.key_values(b, &schema);
        if let Backend::Dump(d) = &self.backend {
            let enricher = self.enricher(&cat, stream)?;
            return d
                .read_telemetry(
                    context,
                    &partition.spec,
                    key_ids.as_deref(),
                    opts.batch_rows,
                    move |batch| shape(&enricher, batch),
                    out,
                )
                .await;
        }
        let spec: TelemetrySpec = serde_json::from_value(partition.spec.clone())
            .map_err(|e| Error::Plan(format!("{context}: bad partition description: {e}")))?;
        if !spec.floors.is_empty() && spec.floors.len() != spec.entities.len() {
            return Err(Error::Plan(format!(
                "{context}: bad partition description: {} floors for {} entities",
                spec.floors.len(),
                spec.entities.len()
            )));
        }
        let raw = RawRead {
            query: query(&spec, key_ids.as_deref()),
            schema: Arc::new(raw_key_values_schema(SQL_COLUMNS.split(", ").count())),
            wire: WIRE.to_vec(),
            entity: 0,
            key: Some(1),
            shape: &shape,
        };
        self.copy_enriched(stream, raw, &context, opts, &out).await
    }

    /// Reads `ts_kv_latest`.
    pub(crate) async fn read_latest(
        &self,
        stream: &StreamSpec,
        opts: &ReadOptions,
        out: BatchTx,
    ) -> Result<()> {
        let cat = self.catalog().await?;
        let context = format!("stream `{}`, table ts_kv_latest", stream.name);
        let mut cols: Vec<(&str, DataType)> = latest_schema()
            .fields
            .iter()
            .map(|f| (leak_name(&f.name), f.dtype))
            .collect();
        cols.pop(); // entity_type is made, not read
        cols[1].1 = RAW_KEY;
        let filter = self.kv_filter(&cat, stream, Some(1)).await?;
        let schema = Arc::new(latest_schema());
        let shape = move |e: &Enricher, b: Batch| e.key_values(filter.apply(b), &schema);
        let order = "ORDER BY entity_id, key";
        self.read_whole_table(
            stream,
            &cat,
            ("ts_kv_latest", "", order),
            &cols,
            (0, Some(1)),
            &shape,
            &context,
            opts,
            &out,
        )
        .await
    }

    /// Reads `attribute_kv`, in either generation's layout.
    pub(crate) async fn read_attributes(
        &self,
        stream: &StreamSpec,
        opts: &ReadOptions,
        out: BatchTx,
    ) -> Result<()> {
        let cat = self.catalog().await?;
        let context = format!("stream `{}`, table attribute_kv", stream.name);
        let schema = Arc::new(attributes_schema());
        let values = ["bool_v", "str_v", "long_v", "dbl_v", "json_v"];
        let value_types = [
            DataType::Bool,
            DataType::Text,
            DataType::Int64,
            DataType::Float64,
            DataType::Json,
        ];
        let mut cols: Vec<(&str, DataType)> = match cat.attributes {
            Attributes::Text => vec![
                ("entity_id", DataType::Uuid),
                ("entity_type", DataType::Text),
                ("attribute_type", DataType::Text),
                ("attribute_key", DataType::Text),
            ],
            _ => vec![
                ("entity_id", DataType::Uuid),
                ("attribute_type", DataType::Int32),
                ("attribute_key", RAW_KEY),
            ],
        };
        cols.extend(values.iter().copied().zip(value_types));
        cols.extend([
            ("last_update_ts", DataType::Int64),
            ("version", DataType::Int64),
        ]);
        let text = cat.attributes == Attributes::Text;
        let key_at = if text { 3 } else { 2 };
        let filter = self
            .kv_filter(&cat, stream, (!text).then_some(key_at))
            .await?;
        let names = stream.rename_keys.clone();
        let wanted_keys = stream.filter.keys.clone();
        let shape = move |e: &Enricher, b: Batch| -> Result<Batch> {
            let b = filter.apply(b);
            if !text {
                return e.keyed_attributes(b, &schema);
            }
            // ≤ 3.6: scope and key are text already; rename and filter by name here.
            let b = keep_key_names(b, key_at, &wanted_keys);
            let b = rename_text_keys(b, key_at, &names)?;
            let b = Batch::new(schema.clone(), b.columns)
                .ok_or_else(|| Error::Internal("attribute rows do not match the stream".into()))?;
            Ok(e.keep_types(b, 1))
        };
        let key = (!text).then_some(key_at);
        let order = "ORDER BY entity_id, attribute_type, attribute_key";
        self.read_whole_table(
            stream,
            &cat,
            ("attribute_kv", "", order),
            &cols,
            (0, key),
            &shape,
            &context,
            opts,
            &out,
        )
        .await
    }

    /// Reads a record stream's table (devices: only `filter.devices`, when given).
    pub(crate) async fn read_records(
        &self,
        stream: &StreamSpec,
        r: &'static RecordStream,
        opts: &ReadOptions,
        out: BatchTx,
    ) -> Result<()> {
        let cat = self.catalog().await?;
        let context = format!("stream `{}`, table {}", stream.name, r.table);
        let only = match r.name {
            "devices" => {
                self.allowed_entities(&cat, stream, &BTreeSet::new())
                    .await?
            }
            _ => None,
        };
        let only: Option<BTreeSet<[u8; 16]>> =
            only.map(|ids| ids.iter().filter_map(|e| parse_uuid(e)).collect());
        let key = r.key;
        let order: Vec<String> = r.key.iter().map(|k| quote_ident(k)).collect();
        let order = format!("ORDER BY {}", order.join(", "));
        // The devices a filter names, in SQL too (so a limit counts only them).
        let filter = match &only {
            Some(ids) => {
                let list: Vec<String> = ids
                    .iter()
                    .map(|b| quote_literal(&uuid::Uuid::from_bytes(*b).to_string()))
                    .collect();
                format!(
                    " WHERE id IN ({})",
                    if list.is_empty() {
                        "NULL".into()
                    } else {
                        list.join(", ")
                    }
                )
            }
            None => String::new(),
        };
        let shape = move |e: &Enricher, b: Batch| -> Result<Batch> {
            let b = match (&only, b.columns.first().and_then(|c| c.uuids())) {
                (Some(keep), Some(ids)) => {
                    let mask: Vec<bool> = ids.iter().map(|i| keep.contains(i)).collect();
                    b.filter(&mask)
                }
                _ => b,
            };
            e.null_uuids(b, key)
        };
        self.read_whole_table(
            stream,
            &cat,
            (r.table, &filter, &order),
            r.columns,
            (0, None),
            &shape,
            &context,
            opts,
            &out,
        )
        .await
    }

    /// Reads every row of `table` as `columns` (NULL for columns it lacks) and shapes them;
    /// with the stream's `limit`, its first rows (by `order` in a database, as stored in a
    /// backup).
    #[allow(clippy::too_many_arguments)]
    async fn read_whole_table(
        &self,
        stream: &StreamSpec,
        cat: &Catalog,
        (table, filter, order): (&str, &str, &str),
        columns: &[(&'static str, DataType)],
        (entity, key): (usize, Option<usize>),
        shape: &Shape,
        context: &str,
        opts: &ReadOptions,
        out: &BatchTx,
    ) -> Result<()> {
        if let Backend::Dump(d) = &self.backend {
            let enricher = self.enricher(cat, stream)?;
            let mut left = stream.limit.unwrap_or(u64::MAX);
            for b in d.read_whole(table, columns).await? {
                let mut b = shape(&enricher, b)?;
                if (b.len() as u64) > left {
                    let keep: Vec<bool> = (0..b.len()).map(|i| (i as u64) < left).collect();
                    b = b.filter(&keep);
                }
                left -= b.len() as u64;
                if !b.is_empty() && out.send(b).await.is_err() {
                    return Err(Error::Cancelled);
                }
                if left == 0 {
                    break;
                }
            }
            return Ok(());
        }
        let (list, wire, schema) = select_list(cat, table, columns);
        let limit = stream
            .limit
            .map(|n| format!(" {order} LIMIT {n}"))
            .unwrap_or_default();
        let raw = RawRead {
            query: format!("SELECT {list} FROM {}{filter}{limit}", quote_ident(table)),
            schema,
            wire,
            entity,
            key,
            shape,
        };
        self.copy_enriched(stream, raw, context, opts, out).await
    }

    /// Streams a live query's raw batches through the enricher into `out`, looking up keys and
    /// entities the snapshot lacks between batches.
    async fn copy_enriched(
        &self,
        stream: &StreamSpec,
        raw: RawRead<'_>,
        context: &str,
        opts: &ReadOptions,
        out: &BatchTx,
    ) -> Result<()> {
        let client = self.client().await?;
        let url = self.url()?.clone();
        let (tx, mut rx) = mpsc::channel::<Batch>(2);
        let produce = async {
            let r = copy_out_batches(
                &client,
                &url,
                &raw.query,
                raw.schema.clone(),
                raw.wire.clone(),
                opts.batch_rows,
                context,
                Ok,
                &tx,
            )
            .await;
            drop(tx);
            r.map(|_| ())
        };
        let consume = async {
            let mut cat = self.catalog().await?;
            let mut enricher = self.enricher(&cat, stream)?;
            while let Some(b) = rx.recv().await {
                let missing = enricher.missing(&b, raw.entity, raw.key);
                if missing.keys {
                    cat = self.reload_keys().await?;
                    enricher = self.enricher(&cat, stream)?;
                }
                self.classify(&cat, &missing.entities).await?;
                let b = (raw.shape)(&enricher, b)?;
                if !b.is_empty() && out.send(b).await.is_err() {
                    return Err(Error::Cancelled);
                }
            }
            Ok(())
        };
        let (produced, consumed) = tokio::join!(produce, consume);
        // The consumer's error is the cause when both failed (the producer then only saw its
        // channel close).
        consumed.and(produced)
    }

    /// Rows of `latest`/`attributes` to keep: `filter.devices` by entity id, `filter.keys` by
    /// key id (column `key_at`, when keys are ids).
    async fn kv_filter(
        &self,
        cat: &Catalog,
        stream: &StreamSpec,
        key_at: Option<usize>,
    ) -> Result<RowKeep> {
        let entities = if stream.filter.devices.is_empty() {
            None
        } else {
            self.allowed_entities(cat, stream, &BTreeSet::new())
                .await?
                .map(|ids| ids.iter().filter_map(|e| parse_uuid(e)).collect())
        };
        let keys = key_at.and_then(|at| Self::key_ids(cat, stream).map(|ids| (at, ids)));
        Ok(RowKeep { entities, keys })
    }
}

/// Which rows of a raw `latest`/`attributes` batch to keep.
struct RowKeep {
    entities: Option<BTreeSet<[u8; 16]>>,
    keys: Option<(usize, Vec<i32>)>,
}

impl RowKeep {
    fn apply(&self, b: Batch) -> Batch {
        if self.entities.is_none() && self.keys.is_none() {
            return b;
        }
        let ids = b.columns.first().and_then(|c| c.uuids());
        let keys = self
            .keys
            .as_ref()
            .and_then(|(at, wanted)| b.columns.get(*at)?.ints().map(|k| (k, wanted)));
        let keep: Vec<bool> = (0..b.len())
            .map(|i| {
                let e_ok = match (&self.entities, ids) {
                    (Some(allowed), Some(ids)) => allowed.contains(&ids[i]),
                    _ => true,
                };
                let k_ok = match keys {
                    Some((k, wanted)) => i32::try_from(k[i]).is_ok_and(|k| wanted.contains(&k)),
                    None => true,
                };
                e_ok && k_ok
            })
            .collect();
        b.filter(&keep)
    }
}

/// The raw `ts_kv` columns: entity id, key id, ts and the five values.
fn raw_key_values_schema(n: usize) -> Schema {
    let mut s = telemetry_schema();
    s.fields.truncate(n);
    s.fields[1].dtype = RAW_KEY;
    s
}

/// A `'static` column name of the stream schemas (they are built from static names).
fn leak_name(name: &str) -> &'static str {
    const NAMES: [&str; 10] = [
        "entity_id",
        "key",
        "ts",
        "bool_v",
        "str_v",
        "long_v",
        "dbl_v",
        "json_v",
        "version",
        "entity_type",
    ];
    NAMES.iter().find(|n| **n == name).copied().unwrap_or("")
}

/// Rows whose text key (column `at`) is one of `wanted` (all rows when `wanted` is empty).
fn keep_key_names(b: Batch, at: usize, wanted: &[String]) -> Batch {
    if wanted.is_empty() {
        return b;
    }
    let Some(keys) = b.columns.get(at).and_then(|c| c.strs()) else {
        return b;
    };
    let keep: Vec<bool> = (0..b.len())
        .map(|i| wanted.iter().any(|w| w.as_bytes() == keys.get(i)))
        .collect();
    b.filter(&keep)
}

/// The text key column `at` with the stream's renames applied.
fn rename_text_keys(
    b: Batch,
    at: usize,
    renames: &std::collections::BTreeMap<String, String>,
) -> Result<Batch> {
    if renames.is_empty() {
        return Ok(b);
    }
    let Some(col) = b.columns.get(at).cloned() else {
        return Ok(b);
    };
    let mut out = tsmigrate_core::Column::with_capacity(DataType::Text, b.len());
    for i in 0..b.len() {
        match col.get(i) {
            tsmigrate_core::ValueRef::Str(s) => out.push_str(renames.get(s).map_or(s, |r| r)),
            _ => out.push_null(),
        }
    }
    let mut columns = b.columns;
    columns[at] = Arc::new(out);
    Batch::new(b.schema, columns).ok_or_else(|| Error::Internal("renaming attribute keys".into()))
}

/// `since`/`until` in epoch ms (µs bounds rounded up to whole ms: `ts >= since` keeps rows at
/// or after `since`).
fn since_until_ms(stream: &StreamSpec) -> Result<(Option<i64>, Option<i64>)> {
    let up = |us: i64| us.div_euclid(1000) + i64::from(us.rem_euclid(1000) != 0);
    Ok((
        stream.filter.since_us()?.map(up),
        stream.filter.until_us()?.map(up),
    ))
}

/// A backup sync round's floors: (entity id, key id, floor) for every series copied before;
/// the others are read from `since`.
fn dump_floors(
    cat: &Catalog,
    stream: &StreamSpec,
    floors: &std::collections::HashMap<(String, String), i64>,
) -> Vec<(String, i32, i64)> {
    let keys = KeyNames::new(&cat.keys, &stream.rename_keys);
    let mut out = Vec::new();
    for ((entity, name), floor) in floors {
        let mut ids = keys.ids_named(name);
        if ids.is_empty() {
            ids.extend(name.parse::<i32>().ok());
        }
        out.extend(ids.into_iter().map(|k| (entity.clone(), k, *floor)));
    }
    out.sort();
    out
}
