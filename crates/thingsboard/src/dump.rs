//! ThingsBoard read from a pg_dump backup instead of a database (`dump = "backup.dump"`):
//! the key dictionary, devices and assets are read whole from the dump, and `ts_kv`'s data is
//! read section by section — one partition per `ts_kv` partition table in the dump, so the
//! months of a partitioned `ts_kv` are decompressed and decoded in parallel.
//!
//! Filters the database path puts in SQL (entities, keys, time range, sync floors) are
//! applied to the decoded rows here.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;
use tsmigrate_core::{Batch, BatchTx, DataType, Error, Partition, Result};
use tsmigrate_pgdump::source::{missing_data, source_error};
use tsmigrate_pgdump::{read_section, read_table, Dump, Projection, QualifiedName};

use crate::catalog::{parse_bound, Catalog, Layout};

/// What one telemetry partition of a backup reads (recorded in the ledger).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct DumpTelemetrySpec {
    /// The `ts_kv` partition tables whose data this partition reads (`public.ts_kv_2025_08`).
    pub tables: Vec<String>,
    /// Entity ids to keep (empty: all).
    pub entities: Vec<String>,
    /// Lowest `ts` to read per entity (a sync round; entities not listed are new: all rows).
    pub floors: BTreeMap<String, i64>,
    /// Inclusive lower bound of `ts`.
    pub ts_from: Option<i64>,
    /// Exclusive upper bound of `ts`.
    pub ts_to: Option<i64>,
}

/// The columns of `ts_kv` as the telemetry stream reads them.
pub static TELEMETRY_COLUMNS: [(&str, DataType); 8] = [
    ("entity_id", DataType::Uuid),
    ("key", DataType::Int32),
    ("ts", DataType::Int64),
    ("bool_v", DataType::Bool),
    ("str_v", DataType::Text),
    ("long_v", DataType::Int64),
    ("dbl_v", DataType::Float64),
    ("json_v", DataType::Json),
];

/// The columns of `device` and `asset` as the entity streams read them.
pub static ENTITY_COLUMNS: [(&str, DataType); 8] = [
    ("id", DataType::Uuid),
    ("name", DataType::Text),
    ("type", DataType::Text),
    ("label", DataType::Text),
    ("additional_info", DataType::Text),
    ("tenant_id", DataType::Uuid),
    ("customer_id", DataType::Uuid),
    ("created_time", DataType::Int64),
];

/// A ThingsBoard backup file.
pub struct TbDump {
    path: PathBuf,
    dump: OnceCell<Arc<Dump>>,
}

/// Rows of a telemetry partition to keep, decided per row after decoding.
struct RowFilter {
    entities: Option<BTreeSet<[u8; 16]>>,
    keys: Option<BTreeSet<i64>>,
    from: Option<i64>,
    to: Option<i64>,
    floors: HashMap<[u8; 16], i64>,
}

impl RowFilter {
    fn is_noop(&self) -> bool {
        self.entities.is_none()
            && self.keys.is_none()
            && self.from.is_none()
            && self.to.is_none()
            && self.floors.is_empty()
    }

    /// Keeps the rows of a `TELEMETRY_COLUMNS` batch that pass.
    fn apply(&self, batch: Batch) -> Batch {
        if self.is_noop() {
            return batch;
        }
        let (Some(ent), Some(key), Some(ts)) = (
            batch.columns[0].uuids(),
            batch.columns[1].ints(),
            batch.columns[2].ints(),
        ) else {
            return batch;
        };
        let keep: Vec<bool> = (0..batch.len())
            .map(|i| {
                let e = &ent[i];
                self.entities.as_ref().is_none_or(|s| s.contains(e))
                    && self.keys.as_ref().is_none_or(|k| k.contains(&key[i]))
                    && self.from.is_none_or(|f| ts[i] >= f)
                    && self.to.is_none_or(|t| ts[i] < t)
                    && self.floors.get(e).is_none_or(|f| ts[i] >= *f)
            })
            .collect();
        batch.filter(&keep)
    }
}

fn parse_uuid(s: &str) -> Option<[u8; 16]> {
    tsmigrate_pgdump::copy_text::parse_uuid(s.as_bytes())
}

fn uuid_text(u: &[u8; 16]) -> String {
    let h: String = u.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

impl TbDump {
    /// A dump at `path` (opened on first use).
    pub fn new(path: PathBuf) -> TbDump {
        TbDump {
            path,
            dump: OnceCell::new(),
        }
    }

    /// A one-line description.
    pub fn describe(&self) -> String {
        format!("backup {}", self.path.display())
    }

    async fn dump(&self) -> Result<Arc<Dump>> {
        self.dump
            .get_or_try_init(|| async {
                let path = self.path.clone();
                tokio::task::spawn_blocking(move || Dump::open(&path))
                    .await
                    .map_err(|e| {
                        Error::Unsupported(format!("internal error: opening the dump failed: {e}"))
                    })?
                    .map(Arc::new)
                    .map_err(|e| source_error("opening the ThingsBoard backup", e))
            })
            .await
            .cloned()
    }

    fn table(dump: &Dump, name: &str) -> Result<QualifiedName> {
        dump.find_table(name)
            .map(|t| t.name.clone())
            .map_err(|m| Error::NotFound(format!("source: the ThingsBoard backup: {m}")))
    }

    /// Reads every row of a small table with the given columns, off the async threads.
    async fn read_small(
        &self,
        name: &str,
        columns: &'static [(&'static str, DataType)],
    ) -> Result<Vec<Batch>> {
        let dump = self.dump().await?;
        let table = Self::table(&dump, name)?;
        let ctx = format!("reading {} from the backup", table.display());
        let projection = Projection::named(&dump, &table, columns)
            .map_err(|m| Error::NotFound(format!("source: {ctx}: {m}")))?;
        tokio::task::spawn_blocking(move || read_table(&dump, &table, &projection))
            .await
            .map_err(|e| Error::Unsupported(format!("internal error: {ctx} failed: {e}")))?
            .map_err(|e| source_error(&ctx, e))
    }

    /// The catalog facts, from the dump: dictionary, keys, `ts_kv`'s layout and sections.
    pub async fn catalog(&self) -> Result<Catalog> {
        let dump = self.dump().await?;
        let Ok(ts_kv) = dump.find_table("ts_kv") else {
            return Err(Error::NotFound(format!(
                "source: the backup {} has no table ts_kv: is it a dump of a ThingsBoard database in PostgreSQL mode?",
                self.path.display()
            )));
        };
        let dictionary = if dump.find_table("key_dictionary").is_ok() {
            "key_dictionary"
        } else if dump.find_table("ts_kv_dictionary").is_ok() {
            "ts_kv_dictionary"
        } else {
            return Err(Error::NotFound(
                "source: the backup has neither key_dictionary (ThingsBoard >= 3.7) nor ts_kv_dictionary (<= 3.6)"
                    .into(),
            ));
        };
        static DICT: [(&str, DataType); 2] = [("key_id", DataType::Int32), ("key", DataType::Text)];
        let mut keys = BTreeMap::new();
        for b in self.read_small(dictionary, &DICT).await? {
            let (Some(ids), Some(names)) = (b.columns[0].ints(), b.columns[1].strs()) else {
                continue;
            };
            for (i, id) in ids.iter().enumerate() {
                if b.columns[0].is_valid(i) {
                    let name = String::from_utf8_lossy(names.get(i)).into_owned();
                    keys.insert(*id as i32, name);
                }
            }
        }
        if let Some(t) = dump.truncated() {
            if let Some(missing) = dump.tables_without_data(&ts_kv.name).first() {
                return Err(missing_data("telemetry", missing, t));
            }
        }
        let layout = if ts_kv.partitioned {
            Layout::Partitioned
        } else {
            Layout::Plain
        };
        let tables = dump
            .sections_of(&ts_kv.name)
            .iter()
            .map(|s| {
                let (from, to) = dump
                    .attach_statement(&s.table)
                    .map(parse_bound)
                    .unwrap_or((None, None));
                (s.table.display(), from, to, 0.0)
            })
            .collect();
        let server_version = dump
            .header()
            .and_then(|h| h.server_version.clone())
            .unwrap_or_else(|| "unknown (plain dump)".into());
        Ok(Catalog {
            dictionary,
            keys,
            layout,
            tables,
            server_version: format!("{server_version}, read from the backup"),
        })
    }

    /// (id, name) of every device.
    pub async fn devices(&self) -> Result<Vec<(String, String)>> {
        let mut out = Vec::new();
        for b in self.read_small("device", &ENTITY_COLUMNS[..2]).await? {
            let (Some(ids), Some(names)) = (b.columns[0].uuids(), b.columns[1].strs()) else {
                continue;
            };
            for (i, id) in ids.iter().enumerate() {
                out.push((
                    uuid_text(id),
                    String::from_utf8_lossy(names.get(i)).into_owned(),
                ));
            }
        }
        Ok(out)
    }

    /// Ids of every asset.
    pub async fn asset_ids(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for b in self.read_small("asset", &ENTITY_COLUMNS[..1]).await? {
            if let Some(ids) = b.columns[0].uuids() {
                out.extend(ids.iter().map(uuid_text));
            }
        }
        Ok(out)
    }

    /// One partition per data section of `ts_kv` (its partition tables), unless time
    /// buckets of `align_ms` would straddle two of them: then one partition reads them all.
    pub fn plan(
        &self,
        cat: &Catalog,
        entities: Option<&BTreeSet<String>>,
        since: Option<i64>,
        until: Option<i64>,
        align_ms: Option<i64>,
        floors: BTreeMap<String, i64>,
    ) -> Vec<Partition> {
        let entities: Vec<String> = entities
            .map(|e| e.iter().cloned().collect())
            .unwrap_or_default();
        let spec = |tables: Vec<String>| DumpTelemetrySpec {
            tables,
            entities: entities.clone(),
            floors: floors.clone(),
            ts_from: since,
            ts_to: until,
        };
        // Skip sections whose declared range lies outside since/until.
        let tables: Vec<&(String, Option<i64>, Option<i64>, f64)> = cat
            .tables
            .iter()
            .filter(|(_, from, to, _)| {
                !(until.is_some_and(|u| from.is_some_and(|f| f >= u))
                    || since.is_some_and(|s| to.is_some_and(|t| t <= s)))
            })
            .collect();
        let aligned = align_ms.is_none_or(|a| {
            a <= 1
                || tables.iter().all(|(_, from, to, _)| {
                    from.is_none_or(|f| f.rem_euclid(a) == 0)
                        && to.is_none_or(|t| t.rem_euclid(a) == 0)
                })
        });
        let to_partition = |id: String, tables: Vec<String>| Partition {
            id,
            estimated_rows: None,
            spec: serde_json::to_value(spec(tables)).unwrap_or_default(),
        };
        if !aligned && tables.len() > 1 {
            let all: Vec<String> = tables.iter().map(|t| t.0.clone()).collect();
            return vec![to_partition("all".into(), all)];
        }
        tables
            .iter()
            .map(|(name, ..)| to_partition(name.clone(), vec![name.clone()]))
            .collect()
    }

    /// Reads a telemetry partition planned by [`TbDump::plan`], sending batches of
    /// `TELEMETRY_COLUMNS` (keys still ids) through `resolve` to `out`.
    pub async fn read_telemetry(
        &self,
        context: String,
        spec: &serde_json::Value,
        key_ids: &[i32],
        batch_rows: usize,
        resolve: impl Fn(Batch) -> Result<Batch> + Send + 'static,
        out: BatchTx,
    ) -> Result<()> {
        let dump = self.dump().await?;
        let ts_kv = Self::table(&dump, "ts_kv")?;
        let projection = Projection::named(&dump, &ts_kv, &TELEMETRY_COLUMNS)
            .map_err(|m| Error::NotFound(format!("source: {context}: {m}")))?;
        let bad =
            |what: String| Error::Plan(format!("{context}: bad partition description: {what}"));
        let spec: DumpTelemetrySpec =
            serde_json::from_value(spec.clone()).map_err(|e| bad(e.to_string()))?;
        let uuid = |e: &String| parse_uuid(e).ok_or_else(|| bad(format!("entity id {e:?}")));
        let filter = RowFilter {
            entities: if spec.entities.is_empty() {
                None
            } else {
                Some(spec.entities.iter().map(uuid).collect::<Result<_>>()?)
            },
            keys: (!key_ids.is_empty()).then(|| key_ids.iter().map(|k| i64::from(*k)).collect()),
            from: spec.ts_from,
            to: spec.ts_to,
            floors: spec
                .floors
                .iter()
                .map(|(e, f)| Ok((uuid(e)?, *f)))
                .collect::<Result<_>>()?,
        };
        let sections: Vec<_> = dump
            .sections_of(&ts_kv)
            .into_iter()
            .filter(|s| spec.tables.contains(&s.table.display()))
            .cloned()
            .collect();
        if sections.len() != spec.tables.len() {
            return Err(Error::NotFound(format!(
                "{context}: the backup has no data for {} any more (was the file replaced since the run was planned?)",
                spec.tables.join(", ")
            )));
        }
        let work = dump.clone();
        tokio::task::spawn_blocking(move || -> Result<()> {
            for section in &sections {
                let mut failed: Option<Error> = None;
                read_section(&work, section, &projection, batch_rows, |batch| {
                    let batch = filter.apply(batch);
                    if batch.is_empty() {
                        return true;
                    }
                    match resolve(batch) {
                        Ok(b) => {
                            if out.blocking_send(b).is_err() {
                                failed = Some(Error::Cancelled);
                            }
                        }
                        Err(e) => failed = Some(e),
                    }
                    failed.is_none()
                })
                .map_err(|e| source_error(&context, e))?;
                if let Some(e) = failed {
                    return Err(e);
                }
            }
            Ok(())
        })
        .await
        .map_err(|e| {
            Error::Unsupported(format!("internal error: reading the backup failed: {e}"))
        })?
    }

    /// Reads `device` or `asset` (only the ids in `only`, when given) and sends it to `out`.
    pub async fn read_entities(
        &self,
        table: &str,
        only: Option<BTreeSet<String>>,
        out: BatchTx,
    ) -> Result<()> {
        let only: Option<BTreeSet<[u8; 16]>> =
            only.map(|ids| ids.iter().filter_map(|e| parse_uuid(e)).collect());
        for b in self.read_small(table, &ENTITY_COLUMNS).await? {
            let b = match (&only, b.columns[0].uuids()) {
                (Some(keep), Some(ids)) => {
                    let mask: Vec<bool> = ids.iter().map(|i| keep.contains(i)).collect();
                    b.filter(&mask)
                }
                _ => b,
            };
            if !b.is_empty() && out.send(b).await.is_err() {
                return Err(Error::Cancelled);
            }
        }
        Ok(())
    }

    /// Numbers of devices and assets, for `check`.
    pub async fn counts(&self) -> Result<(usize, usize)> {
        Ok((self.devices().await?.len(), self.asset_ids().await?.len()))
    }
}
