//! Discovering a ThingsBoard database: which key dictionary it has, how `ts_kv` is laid out
//! (declarative partitions, TimescaleDB hypertable or plain table), its keys, which
//! generation of `attribute_kv` it has, which entity tables exist and their columns.

use std::collections::BTreeMap;

use tokio_postgres::Client;

use crate::entity_types::ENTITY_TYPES;
use crate::streams::RECORDS;

/// Facts about a ThingsBoard database, read once per run.
#[derive(Clone, Debug)]
pub struct Catalog {
    /// `key_dictionary` (ThingsBoard ≥ 3.7) or `ts_kv_dictionary` (up to 3.6).
    pub dictionary: &'static str,
    /// Key id → key name, as stored (before renaming).
    pub keys: BTreeMap<i32, String>,
    /// How `ts_kv` is stored.
    pub layout: Layout,
    /// Physical tables holding telemetry with their bounds and estimates (entities not yet filled).
    pub tables: Vec<(String, Option<i64>, Option<i64>, f64)>,
    /// PostgreSQL server version.
    pub server_version: String,
    /// How `attribute_kv` is keyed.
    pub attributes: Attributes,
    /// Entity tables the database has, as indexes into [`ENTITY_TYPES`].
    pub entity_tables: Vec<u8>,
    /// Columns of the tables the source reads whole (record streams, `ts_kv_latest`,
    /// `attribute_kv`): table → column names.
    pub columns: BTreeMap<String, Vec<String>>,
    /// When the data was taken, µs since the epoch: a backup's creation time (`None`: a live
    /// database, current).
    pub as_of_us: Option<i64>,
}

impl Catalog {
    /// True when `table` has `column`.
    pub fn has_column(&self, table: &str, column: &str) -> bool {
        self.columns
            .get(table)
            .is_some_and(|c| c.iter().any(|n| n == column))
    }

    /// True when the database has `table` (one the source reads whole).
    pub fn has_table(&self, table: &str) -> bool {
        self.columns.contains_key(table)
    }
}

/// How `attribute_kv` identifies an attribute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attributes {
    /// ThingsBoard ≤ 3.6: `entity_type`, `attribute_type` (`'SERVER_SCOPE'`) and
    /// `attribute_key` as text.
    Text,
    /// ThingsBoard ≥ 3.7: `attribute_type` as the scope's id, `attribute_key` as the key's id
    /// in `key_dictionary`.
    Keyed,
    /// No `attribute_kv` table.
    Missing,
}

/// The tables whose columns [`Catalog::columns`] lists.
pub fn whole_tables() -> Vec<&'static str> {
    let mut t: Vec<&str> = RECORDS.iter().map(|r| r.table).collect();
    t.extend(["ts_kv_latest", "attribute_kv"]);
    t
}

/// `attribute_kv`'s generation from its columns.
pub fn attributes_layout(columns: &BTreeMap<String, Vec<String>>) -> Attributes {
    match columns.get("attribute_kv") {
        None => Attributes::Missing,
        Some(c) if c.iter().any(|n| n == "entity_type") => Attributes::Text,
        Some(_) => Attributes::Keyed,
    }
}

/// Storage layout of `ts_kv`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// `PARTITION BY RANGE (ts)` with child tables (ThingsBoard's PostgreSQL mode).
    Partitioned,
    /// A TimescaleDB hypertable (ThingsBoard's TimescaleDB mode).
    Hypertable,
    /// A plain table.
    Plain,
}

/// Why discovery failed: a driver error or a database that is not ThingsBoard-shaped.
#[derive(Debug)]
pub enum CatalogError {
    /// The query failed.
    Db(tokio_postgres::Error),
    /// The database lacks something ThingsBoard always has.
    NotThingsBoard(String),
}

impl From<tokio_postgres::Error> for CatalogError {
    fn from(e: tokio_postgres::Error) -> Self {
        CatalogError::Db(e)
    }
}

/// Reads the catalog facts.
pub async fn discover(client: &Client) -> Result<Catalog, CatalogError> {
    let row = client
        .query_one(
            "SELECT to_regclass('ts_kv')::oid, to_regclass('key_dictionary') IS NOT NULL, \
                    to_regclass('ts_kv_dictionary') IS NOT NULL, \
                    (SELECT relkind::text FROM pg_class WHERE oid = to_regclass('ts_kv')), \
                    current_setting('server_version'), \
                    EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb')",
            &[],
        )
        .await?;
    let ts_kv: Option<u32> = row.get(0);
    let (new_dict, old_dict): (bool, bool) = (row.get(1), row.get(2));
    let relkind: Option<String> = row.get(3);
    let server_version: String = row.get(4);
    let timescale: bool = row.get(5);
    let Some(ts_kv) = ts_kv else {
        return Err(CatalogError::NotThingsBoard(
            "table ts_kv not found: is this a ThingsBoard database in PostgreSQL mode (check the database name and search_path)?".into(),
        ));
    };
    let dictionary = if new_dict {
        "key_dictionary"
    } else if old_dict {
        "ts_kv_dictionary"
    } else {
        return Err(CatalogError::NotThingsBoard(
            "neither key_dictionary (ThingsBoard >= 3.7) nor ts_kv_dictionary (<= 3.6) exists"
                .into(),
        ));
    };
    let keys = read_keys(client, dictionary).await?;
    let children = client
        .query(
            "SELECT c.relname::text, COALESCE(pg_get_expr(c.relpartbound, c.oid), ''), \
                    CASE WHEN c.reltuples >= 0 THEN c.reltuples::float8 \
                         ELSE pg_relation_size(c.oid)::float8 / 64 END \
             FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
             WHERE i.inhparent = $1 ORDER BY c.relname",
            &[&ts_kv],
        )
        .await?;
    let layout = if relkind.as_deref() == Some("p") {
        Layout::Partitioned
    } else if timescale && !children.is_empty() {
        Layout::Hypertable
    } else {
        Layout::Plain
    };
    let tables = match layout {
        Layout::Partitioned => children
            .iter()
            .map(|r| {
                let (from, to) = parse_bound(&r.get::<_, String>(1));
                (r.get::<_, String>(0), from, to, r.get::<_, f64>(2))
            })
            .collect(),
        Layout::Hypertable | Layout::Plain => {
            let own: f64 = client
                .query_one(
                    "SELECT CASE WHEN reltuples >= 0 THEN reltuples::float8 ELSE pg_relation_size(oid)::float8 / 64 END \
                     FROM pg_class WHERE oid = $1",
                    &[&ts_kv],
                )
                .await?
                .get(0);
            let kids: f64 = children.iter().map(|r| r.get::<_, f64>(2)).sum();
            vec![("ts_kv".to_string(), None, None, own + kids)]
        }
    };
    let columns = table_columns(client).await?;
    let entity_tables = present_entity_tables(client).await?;
    Ok(Catalog {
        dictionary,
        keys,
        layout,
        tables,
        server_version,
        attributes: attributes_layout(&columns),
        entity_tables,
        columns,
        as_of_us: None,
    })
}

/// Reads the dictionary alone (key id → name): keys are added while ThingsBoard runs.
pub async fn read_keys(
    client: &Client,
    dictionary: &str,
) -> Result<BTreeMap<i32, String>, tokio_postgres::Error> {
    Ok(client
        .query(&format!("SELECT key_id, key::text FROM {dictionary}"), &[])
        .await?
        .iter()
        .map(|r| (r.get::<_, i32>(0), r.get::<_, String>(1)))
        .collect())
}

/// Columns of the tables read whole, by table (tables that do not exist are left out).
async fn table_columns(
    client: &Client,
) -> Result<BTreeMap<String, Vec<String>>, tokio_postgres::Error> {
    let names: Vec<String> = whole_tables().iter().map(|t| t.to_string()).collect();
    let rows = client
        .query(
            "SELECT t.name, a.attname::text FROM unnest($1::text[]) AS t(name) \
             JOIN pg_attribute a ON a.attrelid = to_regclass(quote_ident(t.name)) \
             WHERE a.attnum > 0 AND NOT a.attisdropped ORDER BY t.name, a.attnum",
            &[&names],
        )
        .await?;
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in rows {
        out.entry(r.get(0)).or_default().push(r.get(1));
    }
    Ok(out)
}

/// The entity tables the database has, as indexes into [`ENTITY_TYPES`].
async fn present_entity_tables(client: &Client) -> Result<Vec<u8>, tokio_postgres::Error> {
    let names: Vec<String> = ENTITY_TYPES.iter().map(|(_, t)| t.to_string()).collect();
    let rows = client
        .query(
            "SELECT t.name FROM unnest($1::text[]) AS t(name) \
             WHERE to_regclass(quote_ident(t.name)) IS NOT NULL",
            &[&names],
        )
        .await?;
    let present: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    Ok(ENTITY_TYPES
        .iter()
        .enumerate()
        .filter(|(_, (_, t))| present.iter().any(|p| p == t))
        .filter_map(|(i, _)| u8::try_from(i).ok())
        .collect())
}

/// A table name from the catalog, quoted for SQL.
pub fn quote_table_name(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Entity ids present in `table`, found with a loose index scan over the primary key
/// `(entity_id, key, ts)`: one index probe per entity instead of a full scan.
pub async fn entities_in(
    client: &Client,
    table: &str,
) -> Result<Vec<String>, tokio_postgres::Error> {
    let t = quote_table_name(table);
    let q = format!(
        "WITH RECURSIVE e(id) AS ( \
           (SELECT entity_id FROM {t} ORDER BY entity_id LIMIT 1) \
           UNION ALL \
           SELECT (SELECT x.entity_id FROM {t} x WHERE x.entity_id > e.id ORDER BY x.entity_id LIMIT 1) \
           FROM e WHERE e.id IS NOT NULL) \
         SELECT id::text FROM e WHERE id IS NOT NULL"
    );
    Ok(client
        .query(&q, &[])
        .await?
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect())
}

/// The series — (entity id, key id) pairs — present in `table`, found with a loose index scan
/// over the primary key `(entity_id, key, ts)`: one index probe per series, whatever the
/// number of rows.
pub async fn series_in(
    client: &Client,
    table: &str,
) -> Result<Vec<(String, i32)>, tokio_postgres::Error> {
    let t = quote_table_name(table);
    let q = format!(
        "WITH RECURSIVE s(e, k) AS ( \
           (SELECT entity_id, key FROM {t} ORDER BY entity_id, key LIMIT 1) \
           UNION ALL \
           SELECT n.entity_id, n.key FROM s CROSS JOIN LATERAL \
             (SELECT x.entity_id, x.key FROM {t} x WHERE (x.entity_id, x.key) > (s.e, s.k) \
              ORDER BY x.entity_id, x.key LIMIT 1) AS n) \
         SELECT e::text, k FROM s"
    );
    Ok(client
        .query(&q, &[])
        .await?
        .iter()
        .map(|r| (r.get::<_, String>(0), r.get::<_, i32>(1)))
        .collect())
}

/// Parses `FOR VALUES FROM ('1754006400000') TO ('1756684800000')`; `DEFAULT`, `MINVALUE` and
/// `MAXVALUE` give unbounded ends.
pub fn parse_bound(expr: &str) -> (Option<i64>, Option<i64>) {
    let grab = |kw: &str| -> Option<i64> {
        let start = expr.find(kw)? + kw.len();
        let rest = &expr[start..];
        let end = rest.find(')')?;
        rest[..end].trim().trim_matches('\'').parse::<i64>().ok()
    };
    (grab("FROM ("), grab("TO ("))
}

#[cfg(test)]
mod tests {
    use super::parse_bound;

    #[test]
    fn parses_partition_bounds() {
        assert_eq!(
            parse_bound("FOR VALUES FROM ('1754006400000') TO ('1756684800000')"),
            (Some(1754006400000), Some(1756684800000))
        );
        assert_eq!(parse_bound("DEFAULT"), (None, None));
        assert_eq!(
            parse_bound("FOR VALUES FROM (MINVALUE) TO ('5')"),
            (None, Some(5))
        );
    }
}
