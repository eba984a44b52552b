//! Discovering a ThingsBoard database: which key dictionary it has, how `ts_kv` is laid out
//! (declarative partitions, TimescaleDB hypertable or plain table), and its keys.

use std::collections::BTreeMap;

use tokio_postgres::Client;

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
    let keys = client
        .query(&format!("SELECT key_id, key::text FROM {dictionary}"), &[])
        .await?
        .iter()
        .map(|r| (r.get::<_, i32>(0), r.get::<_, String>(1)))
        .collect();
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
    Ok(Catalog {
        dictionary,
        keys,
        layout,
        tables,
        server_version,
    })
}

/// Entity ids present in `table`, found with a loose index scan over the primary key
/// `(entity_id, key, ts)`: one index probe per entity instead of a full scan.
pub async fn entities_in(
    client: &Client,
    table: &str,
) -> Result<Vec<String>, tokio_postgres::Error> {
    let q = format!(
        "WITH RECURSIVE e(id) AS ( \
           (SELECT entity_id FROM {table} ORDER BY entity_id LIMIT 1) \
           UNION ALL \
           SELECT (SELECT t.entity_id FROM {table} t WHERE t.entity_id > e.id ORDER BY t.entity_id LIMIT 1) \
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
