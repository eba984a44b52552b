//! Reads target tables back for `verify`: rowid-range partitions, an optional time range,
//! and lookups by key.

use std::sync::Arc;

use async_trait::async_trait;
use rusqlite::types::Value;
use tsmigrate_core::{
    Batch, BatchTx, Column, DataType, Error, Partition, Result, Schema, TableReader, TableScan,
};

use crate::db::{blocking, quote_ident, Db};
use crate::read::{
    column_list, push_rowid_terms, rowid_partitions, send_rows, where_clause, RowQuery,
};
use crate::values::{timestamp_text, to_sql};

/// Keys per lookup statement.
const LOOKUP_CHUNK: usize = 400;

/// Reads the tables of a SQLite file.
pub struct SqliteTableReader {
    db: Db,
}

impl SqliteTableReader {
    /// A reader of `db`.
    pub fn new(db: Db) -> SqliteTableReader {
        SqliteTableReader { db }
    }
}

/// `WHERE` terms and parameters of the scan's time range. Timestamp columns hold fixed-width
/// RFC 3339 text (see [`crate::values`]), which compares as time.
fn range_terms(scan: &TableScan) -> (Vec<String>, Vec<Value>) {
    let mut terms = Vec::new();
    let mut params = Vec::new();
    if let Some(r) = &scan.range {
        let dtype = scan
            .columns
            .iter()
            .find(|f| f.name == r.column)
            .map(|f| f.dtype);
        let bound = |x: i64| match dtype {
            Some(DataType::Timestamp(u)) => Value::Text(timestamp_text(x, u)),
            _ => Value::Integer(x),
        };
        let c = quote_ident(&r.column);
        if let Some(lo) = r.lo {
            terms.push(format!("{c} >= ?"));
            params.push(bound(lo));
        }
        if let Some(hi) = r.hi {
            terms.push(format!("{c} < ?"));
            params.push(bound(hi));
        }
    }
    (terms, params)
}

#[async_trait]
impl TableReader for SqliteTableReader {
    fn describe(&self) -> String {
        self.db.describe()
    }

    async fn partitions(&self, scan: &TableScan, partition_rows: u64) -> Result<Vec<Partition>> {
        let (db, table) = (self.db.clone(), scan.table.clone());
        blocking(move || {
            let conn = db.open_read()?;
            rowid_partitions(&conn, &table, partition_rows)
                .map_err(|e| db.error(format!("planning the read of {table}"), &e))
        })
        .await
    }

    async fn read(
        &self,
        scan: &TableScan,
        partition: &Partition,
        batch_rows: usize,
        out: BatchTx,
    ) -> Result<()> {
        let (db, scan, partition) = (self.db.clone(), scan.clone(), partition.clone());
        blocking(move || {
            let conn = db.open_read()?;
            let (mut terms, mut params) = range_terms(&scan);
            push_rowid_terms(&partition.spec, &mut terms, &mut params);
            let where_ = where_clause(&terms);
            let query = RowQuery {
                sql: format!(
                    "SELECT {} FROM {}{where_}",
                    column_list(&scan.columns),
                    scan.table
                ),
                params,
                fields: scan.columns.clone(),
                with_rowid: false,
                source_errors: false,
            };
            let context = format!(
                "verify of stream `{}`: reading {} (partition {})",
                scan.stream, scan.table, partition.id
            );
            send_rows(&db, &conn, &query, batch_rows, &out, &context).map(|_| ())
        })
        .await
    }

    async fn lookup(&self, scan: &TableScan, keys: &Batch) -> Result<Batch> {
        let (db, scan, keys) = (self.db.clone(), scan.clone(), keys.clone());
        blocking(move || {
            let conn = db.open_read()?;
            let schema = Arc::new(Schema::new(scan.columns.clone()));
            let (range, range_params) = range_terms(&scan);
            let key_cols = column_list(&keys.schema.fields);
            let (tx, mut rx) = tokio::sync::mpsc::channel(1 << 16);
            let mut found: Vec<Batch> = Vec::new();
            let context = format!(
                "verify of stream `{}`: looking up keys in {}",
                scan.stream, scan.table
            );
            let rows: Vec<usize> = (0..keys.len())
                .filter(|&i| keys.columns.iter().all(|c| c.is_valid(i)))
                .collect();
            for chunk in rows.chunks(LOOKUP_CHUNK) {
                let one = format!("({})", vec!["?"; keys.columns.len()].join(", "));
                let values = vec![one; chunk.len()].join(", ");
                let mut terms = vec![format!("({key_cols}) IN (VALUES {values})")];
                terms.extend(range.iter().cloned());
                let mut params: Vec<Value> = Vec::with_capacity(chunk.len() * keys.columns.len());
                for &i in chunk {
                    for c in &keys.columns {
                        params.push(owned(to_sql(c.get(i))));
                    }
                }
                params.extend(range_params.iter().cloned());
                let query = RowQuery {
                    sql: format!(
                        "SELECT {} FROM {} WHERE {}",
                        column_list(&scan.columns),
                        scan.table,
                        terms.join(" AND ")
                    ),
                    params,
                    fields: scan.columns.clone(),
                    with_rowid: false,
                    source_errors: false,
                };
                send_rows(&db, &conn, &query, 4096, &tx, &context)?;
                while let Ok(b) = rx.try_recv() {
                    found.push(b);
                }
            }
            concat(&schema, &found).ok_or_else(|| Error::Decode {
                end: db.end(),
                context,
                message: "internal error: looked-up rows disagree with the scan's columns".into(),
            })
        })
        .await
    }
}

fn owned(v: rusqlite::types::ToSqlOutput<'_>) -> Value {
    use rusqlite::types::ToSqlOutput;
    match v {
        ToSqlOutput::Owned(v) => v,
        ToSqlOutput::Borrowed(b) => b.into(),
        _ => Value::Null,
    }
}

/// The rows of `batches` as one batch of `schema`.
fn concat(schema: &Arc<Schema>, batches: &[Batch]) -> Option<Batch> {
    let rows: usize = batches.iter().map(|b| b.len()).sum();
    let mut cols: Vec<Column> = schema
        .fields
        .iter()
        .map(|f| Column::with_capacity(f.dtype, rows))
        .collect();
    for b in batches {
        for (out, c) in cols.iter_mut().zip(&b.columns) {
            for i in 0..b.len() {
                out.push_value(c.get(i));
            }
        }
    }
    Batch::new(schema.clone(), cols.into_iter().map(Arc::new).collect())
}
