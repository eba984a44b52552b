//! Reading rows of a query into batches, shared by the source and the table reader.

use std::sync::Arc;

use rusqlite::types::Value;
use rusqlite::Connection;
use serde_json::json;
use tsmigrate_core::batch::SOURCE_ERROR;
use tsmigrate_core::{
    Batch, BatchTx, Column, DataType, End, Error, Field, Partition, Result, Schema, MAX_BATCH_BYTES,
};

use crate::db::{quote_ident, Db};
use crate::values::{dtype_from_decl, push_value};

/// A column of a table as `PRAGMA table_info` reports it.
#[derive(Clone, Debug)]
pub struct TableColumn {
    /// Column name.
    pub name: String,
    /// Declared type (may be empty).
    pub decl: String,
    /// Position in the primary key (0: not part of it).
    pub pk: i64,
    /// Declared `NOT NULL`.
    pub not_null: bool,
    /// Has a default value.
    pub has_default: bool,
}

/// The columns of `table`, or `None` when there is no such table.
pub fn table_columns(conn: &Connection, table: &str) -> rusqlite::Result<Option<Vec<TableColumn>>> {
    let (schema, name) = match table.split_once('.') {
        Some((s, t)) if !s.is_empty() && !t.is_empty() => (quote_ident(s), t),
        _ => ("main".to_string(), table),
    };
    let mut stmt = conn.prepare(&format!(
        "PRAGMA {schema}.table_info({})",
        quote_ident(name)
    ))?;
    let cols = stmt
        .query_map([], |r| {
            Ok(TableColumn {
                name: r.get(1)?,
                decl: r.get::<_, Option<String>>(2)?.unwrap_or_default(),
                not_null: r.get::<_, i64>(3)? != 0,
                has_default: r.get::<_, Option<String>>(4)?.is_some(),
                pk: r.get(5)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok((!cols.is_empty()).then_some(cols))
}

/// The schema of a table's columns (declared types mapped by [`dtype_from_decl`]).
pub fn schema_of(columns: &[TableColumn]) -> Schema {
    Schema::new(
        columns
            .iter()
            .map(|c| Field::new(c.name.clone(), dtype_from_decl(&c.decl)))
            .collect(),
    )
}

/// True when the table (`table_sql`, quoted) has rowids (it is not `WITHOUT ROWID`), so it
/// can be split by rowid.
pub fn has_rowid(conn: &Connection, table_sql: &str) -> bool {
    conn.prepare(&format!("SELECT rowid FROM {table_sql} LIMIT 0"))
        .is_ok()
}

/// Splits a table (`table_sql`, quoted) into rowid ranges of about `partition_rows` rows; the
/// first and last ranges are open-ended, so rows added after planning are read too. A
/// `WITHOUT ROWID` table is one partition, `all`.
pub fn rowid_partitions(
    conn: &Connection,
    table_sql: &str,
    partition_rows: u64,
) -> rusqlite::Result<Vec<Partition>> {
    if !has_rowid(conn, table_sql) {
        return Ok(vec![Partition {
            id: "all".into(),
            estimated_rows: None,
            spec: json!({}),
        }]);
    }
    let (lo, hi): (Option<i64>, Option<i64>) = conn.query_row(
        &format!("SELECT min(rowid), max(rowid) FROM {table_sql}"),
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let (lo, hi) = lo.zip(hi).unwrap_or((1, 1));
    let span = (hi as i128 - lo as i128 + 1) as u64;
    Ok(rowid_ranges(lo, hi, span.div_ceil(partition_rows.max(1)))
        .into_iter()
        .map(|(a, b)| Partition {
            id: format!("rowid-{a}"),
            estimated_rows: b.map(|b| (b - a) as u64),
            spec: json!({ "rowid": [(a != lo).then_some(a), b] }),
        })
        .collect())
}

/// Adds the `WHERE` terms of a partition planned by [`rowid_partitions`].
pub fn push_rowid_terms(
    spec: &serde_json::Value,
    terms: &mut Vec<String>,
    params: &mut Vec<Value>,
) {
    let Some(range) = spec.get("rowid").and_then(|v| v.as_array()) else {
        return;
    };
    if let Some(a) = range.first().and_then(|v| v.as_i64()) {
        terms.push("rowid >= ?".into());
        params.push(Value::Integer(a));
    }
    if let Some(b) = range.get(1).and_then(|v| v.as_i64()) {
        terms.push("rowid < ?".into());
        params.push(Value::Integer(b));
    }
}

/// ` WHERE a AND b …`, or nothing without terms.
pub fn where_clause(terms: &[String]) -> String {
    if terms.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", terms.join(" AND "))
    }
}

/// A query and its parameters, reading `fields` (in order), optionally followed by the rowid
/// (named in decode errors).
pub struct RowQuery {
    /// The statement; its result columns are `fields`, then the rowid when `with_rowid`.
    pub sql: String,
    /// Bound parameters.
    pub params: Vec<Value>,
    /// Columns read, with the type each is delivered in.
    pub fields: Vec<Field>,
    /// The last result column is the row's rowid.
    pub with_rowid: bool,
    /// A stored value that does not fit its column's type makes its row a rejected row (the
    /// reason in a [`SOURCE_ERROR`] column after `fields`, the value NULL) instead of an error
    /// (a source's rows; a target read back for `verify` keeps the error).
    pub source_errors: bool,
}

/// Runs `query` and sends its rows to `out` in batches of `batch_rows`; `context` names the
/// stream, table and partition in errors. Returns the rows sent, or `Err(Cancelled)` when
/// `out` was closed. Must run on a blocking thread.
pub fn send_rows(
    db: &Db,
    conn: &Connection,
    query: &RowQuery,
    batch_rows: usize,
    out: &BatchTx,
    context: &str,
) -> Result<u64> {
    let mut fields = query.fields.clone();
    if query.source_errors {
        fields.push(Field::new(SOURCE_ERROR, DataType::Text));
    }
    let schema = Arc::new(Schema::new(fields));
    let mut stmt = conn
        .prepare(&query.sql)
        .map_err(|e| db.error(context.to_string(), &e))?;
    let mut rows = stmt
        .query(rusqlite::params_from_iter(query.params.iter()))
        .map_err(|e| db.error(context.to_string(), &e))?;
    let batch_rows = batch_rows.max(1);
    let new_columns = || -> Vec<Column> {
        schema
            .fields
            .iter()
            .map(|f| Column::with_capacity(f.dtype, batch_rows))
            .collect()
    };
    let mut columns = new_columns();
    let mut in_batch = 0usize;
    // Value bytes of the batch: rows of large values cut it at MAX_BATCH_BYTES.
    let mut batch_bytes = 0usize;
    let mut total = 0u64;
    let n = query.fields.len();
    while let Some(row) = rows.next().map_err(|e| db.error(context.to_string(), &e))? {
        let mut bad: Vec<String> = Vec::new();
        for (i, col) in columns.iter_mut().take(n).enumerate() {
            let v = row
                .get_ref(i)
                .map_err(|e| db.error(context.to_string(), &e))?;
            batch_bytes += match v {
                rusqlite::types::ValueRef::Text(b) | rusqlite::types::ValueRef::Blob(b) => b.len(),
                _ => 8,
            };
            if let Err(message) = push_value(col, v) {
                let at = if query.with_rowid {
                    match row.get_ref(n) {
                        Ok(rusqlite::types::ValueRef::Integer(id)) => format!("rowid {id}"),
                        _ => format!("row {}", total + 1),
                    }
                } else {
                    format!("row {}", total + 1)
                };
                let at = format!("{context}, {at}, column `{}`", query.fields[i].name);
                if !query.source_errors {
                    return Err(Error::Decode {
                        end: db.end(),
                        context: at,
                        message: format!(
                            "{message}; fix the value, or read the column as text by declaring it so in the source"
                        ),
                    });
                }
                col.push_null();
                bad.push(format!(
                    "{at}: {message} (declare the column as text in the source to keep it)"
                ));
            }
        }
        if let Some(err) = columns.get_mut(n).filter(|_| query.source_errors) {
            if bad.is_empty() {
                err.push_null();
            } else {
                err.push_str(&bad.join("; "));
            }
        }
        in_batch += 1;
        total += 1;
        if in_batch == batch_rows || batch_bytes >= MAX_BATCH_BYTES {
            send(&schema, std::mem::replace(&mut columns, new_columns()), out)?;
            in_batch = 0;
            batch_bytes = 0;
        }
    }
    if in_batch > 0 {
        send(&schema, columns, out)?;
    }
    Ok(total)
}

fn send(schema: &Arc<Schema>, columns: Vec<Column>, out: &BatchTx) -> Result<()> {
    let batch = Batch::new(schema.clone(), columns.into_iter().map(Arc::new).collect())
        .ok_or_else(|| Error::Decode {
            end: End::Source,
            context: "building a batch".into(),
            message: "internal error: columns disagree with the schema".into(),
        })?;
    out.blocking_send(batch).map_err(|_| Error::Cancelled)
}

/// The comma-separated quoted names of `fields`.
pub fn column_list(fields: &[Field]) -> String {
    fields
        .iter()
        .map(|f| quote_ident(&f.name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Splits the rowids `lo..=hi` into about `parts` ranges `[a, b)`; the last is open-ended
/// (`None`), so rows added after planning are read too.
pub fn rowid_ranges(lo: i64, hi: i64, parts: u64) -> Vec<(i64, Option<i64>)> {
    let span = (hi as i128 - lo as i128 + 1).max(1);
    let parts = (parts.max(1) as i128).min(span);
    let step = (span + parts - 1) / parts;
    let mut out = Vec::new();
    let mut a = lo as i128;
    for i in 0..parts {
        let b = a + step;
        if i == parts - 1 || b > hi as i128 {
            out.push((a as i64, None));
            break;
        }
        out.push((a as i64, Some(b as i64)));
        a = b;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rowid_ranges_cover_everything_once() {
        assert_eq!(rowid_ranges(1, 10, 1), vec![(1, None)]);
        assert_eq!(
            rowid_ranges(1, 10, 3),
            vec![(1, Some(5)), (5, Some(9)), (9, None)]
        );
        assert_eq!(rowid_ranges(5, 5, 4), vec![(5, None)]);
        let r = rowid_ranges(i64::MIN, i64::MAX, 2);
        assert_eq!(r.len(), 2);
        assert_eq!(r[1].1, None);
    }
}
