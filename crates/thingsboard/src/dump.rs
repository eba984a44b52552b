//! ThingsBoard read from a pg_dump backup instead of a database (`dump = "backup.dump"`):
//! the key dictionary, the entity tables and the other small tables are read whole from the
//! dump, and `ts_kv`'s data is read section by section — one partition per `ts_kv` partition
//! table in the dump, so the months of a partitioned `ts_kv` are decompressed and decoded in
//! parallel.
//!
//! Filters the database path puts in SQL (entities, keys, time range, sync floors) are
//! applied to the decoded rows here. A column a table of this dump's generation lacks (v4's
//! `version` in a v3.6 backup) is read as NULL.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;
use tsmigrate_core::{Batch, BatchTx, Column, DataType, Error, Field, Partition, Result, Schema};
use tsmigrate_pgdump::source::{missing_data, source_error};
use tsmigrate_pgdump::{read_section, read_table, Dump, Projection, QualifiedName};

use crate::catalog::{attributes_layout, parse_bound, whole_tables, Catalog, Layout};
use crate::entity_types::{EntityTypes, ENTITY_TYPES};

/// What one telemetry partition of a backup reads (recorded in the ledger).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct DumpTelemetrySpec {
    /// The `ts_kv` partition tables whose data this partition reads (`public.ts_kv_2025_08`).
    pub tables: Vec<String>,
    /// Entity ids to keep (empty: all).
    pub entities: Vec<String>,
    /// Lowest `ts` to read per entity (sync rounds planned before per-series floors; still
    /// read for ledgers that hold them).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub floors: BTreeMap<String, i64>,
    /// Lowest `ts` to read per series (entity id, key id) of a sync round; series not listed
    /// are new and read from `ts_from`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub series: Vec<(String, i32, i64)>,
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
    series: HashMap<([u8; 16], i64), i64>,
}

impl RowFilter {
    fn is_noop(&self) -> bool {
        self.entities.is_none()
            && self.keys.is_none()
            && self.from.is_none()
            && self.to.is_none()
            && self.floors.is_empty()
            && self.series.is_empty()
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
                    && self.series.get(&(*e, key[i])).is_none_or(|f| ts[i] >= *f)
            })
            .collect();
        batch.filter(&keep)
    }
}

fn parse_uuid(s: &str) -> Option<[u8; 16]> {
    tsmigrate_pgdump::copy_text::parse_uuid(s.as_bytes())
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
                    .map_err(|e| Error::Internal(format!("opening the dump failed: {e}")))?
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
            .map_err(|e| Error::Internal(format!("{ctx} failed: {e}")))?
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
        let mut columns = BTreeMap::new();
        for t in whole_tables() {
            if let Ok(def) = dump.find_table(t) {
                let cols = dump.columns_of(&def.name).into_iter().map(|(n, _)| n);
                columns.insert(t.to_string(), cols.collect());
            }
        }
        let entity_tables = ENTITY_TYPES
            .iter()
            .enumerate()
            .filter(|(_, (_, t))| {
                dump.find_table(t)
                    .is_ok_and(|def| id_is_uuid(&dump, &def.name))
            })
            .filter_map(|(i, _)| u8::try_from(i).ok())
            .collect();
        Ok(Catalog {
            dictionary,
            keys,
            layout,
            tables,
            server_version: format!("{server_version}, read from the backup"),
            attributes: attributes_layout(&columns),
            entity_tables,
            columns,
            as_of_us: dump
                .header()
                .and_then(|h| h.created_at())
                .and_then(|s| s.checked_mul(1_000_000)),
        })
    }

    /// Records the type of every entity the backup holds (the `id` of each entity table).
    pub async fn load_entity_types(&self, cat: &Catalog, types: &EntityTypes) -> Result<()> {
        static ID: [(&str, DataType); 1] = [("id", DataType::Uuid)];
        for &index in &cat.entity_tables {
            let Some((_, table)) = ENTITY_TYPES.get(usize::from(index)) else {
                continue;
            };
            for b in self.read_small(table, &ID).await? {
                if let Some(ids) = b.columns[0].uuids() {
                    types.insert(ids.iter().copied(), index);
                }
            }
        }
        Ok(())
    }

    /// Every row of `table` as `columns` (in that order); a column the backup's table lacks
    /// is NULL.
    pub async fn read_whole(
        &self,
        table: &str,
        columns: &[(&'static str, DataType)],
    ) -> Result<Vec<Batch>> {
        let dump = self.dump().await?;
        let name = Self::table(&dump, table)?;
        let declared: Vec<String> = dump.columns_of(&name).into_iter().map(|(n, _)| n).collect();
        let present: Vec<(&str, DataType)> = columns
            .iter()
            .filter(|(c, _)| declared.iter().any(|d| d == c))
            .copied()
            .collect();
        let ctx = format!("reading {} from the backup", name.display());
        let projection = Projection::named(&dump, &name, &present)
            .map_err(|m| Error::NotFound(format!("source: {ctx}: {m}")))?;
        let batches = tokio::task::spawn_blocking(move || read_table(&dump, &name, &projection))
            .await
            .map_err(|e| Error::Internal(format!("{ctx} failed: {e}")))?
            .map_err(|e| source_error(&ctx, e))?;
        let schema = Arc::new(Schema::new(
            columns.iter().map(|(n, t)| Field::new(*n, *t)).collect(),
        ));
        batches
            .into_iter()
            .map(|b| with_nulls(b, &schema))
            .collect()
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
        series: Vec<(String, i32, i64)>,
    ) -> Vec<Partition> {
        let entities: Vec<String> = entities
            .map(|e| e.iter().cloned().collect())
            .unwrap_or_default();
        let spec = |tables: Vec<String>| DumpTelemetrySpec {
            tables,
            entities: entities.clone(),
            floors: BTreeMap::new(),
            series: series.clone(),
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
        key_ids: Option<&[i32]>,
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
            keys: key_ids.map(|ids| ids.iter().map(|k| i64::from(*k)).collect()),
            from: spec.ts_from,
            to: spec.ts_to,
            floors: spec
                .floors
                .iter()
                .map(|(e, f)| Ok((uuid(e)?, *f)))
                .collect::<Result<_>>()?,
            series: spec
                .series
                .iter()
                .map(|(e, k, f)| Ok(((uuid(e)?, i64::from(*k)), *f)))
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
        .map_err(|e| Error::Internal(format!("reading the backup failed: {e}")))?
    }

    /// Rows in `table`, for `check`.
    pub async fn count(&self, table: &str) -> Result<usize> {
        static ID: [(&str, DataType); 1] = [("id", DataType::Uuid)];
        Ok(self
            .read_small(table, &ID)
            .await?
            .iter()
            .map(Batch::len)
            .sum())
    }
}

/// True when `table`'s `id` column is a uuid (entity tables are looked up by it).
fn id_is_uuid(dump: &Dump, table: &QualifiedName) -> bool {
    dump.columns_of(table)
        .iter()
        .any(|(n, t)| n == "id" && t.trim().eq_ignore_ascii_case("uuid"))
}

/// `batch` (some of `schema`'s columns, by name) with the others as NULL, in `schema`'s order.
fn with_nulls(batch: Batch, schema: &Arc<Schema>) -> Result<Batch> {
    let n = batch.len();
    let columns = schema
        .fields
        .iter()
        .map(|f| match batch.schema.index_of(&f.name) {
            Some(i) => batch.columns[i].clone(),
            None => {
                let mut c = Column::with_capacity(f.dtype, n);
                for _ in 0..n {
                    c.push_null();
                }
                Arc::new(c)
            }
        })
        .collect();
    Batch::new(schema.clone(), columns)
        .ok_or_else(|| Error::Internal("a backup table read into the wrong columns".into()))
}
