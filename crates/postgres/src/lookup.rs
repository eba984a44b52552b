//! Lookup tables of a PostgreSQL target (`[streams.lookup.<column>]`): rows of `table`
//! matched by their `match` column (compared as text), with their `value` column, and the
//! insertion of missing matches when the lookup creates them.

use std::sync::Arc;

use tokio_postgres::Client;
use tsmigrate_core::convert::{convert, ConvertCtx};
use tsmigrate_core::{
    Batch, Column, DataType, End, Error, Field, LookupSpec, LossyCounts, Result, RowErrors, Schema,
};

use crate::connect::{quote_ident, quote_table_checked};

/// The type of `column` of `table` as `format_type` writes it; `None` when either is missing.
async fn column_type(
    client: &Client,
    table: &str,
    column: &str,
) -> std::result::Result<Option<String>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            "SELECT format_type(a.atttypid, a.atttypmod) FROM pg_catalog.pg_attribute a \
             WHERE a.attrelid = to_regclass($1) AND a.attname = $2 AND a.attnum > 0 AND NOT a.attisdropped",
            &[&table, &column],
        )
        .await?;
    Ok(row.and_then(|r| r.try_get::<_, String>(0).ok()))
}

/// The lookup rows (see [`tsmigrate_core::Sink::lookup`]); `err` turns a server error into
/// one naming what was being done.
pub async fn lookup(
    client: &mut Client,
    spec: &LookupSpec,
    names: Option<&[String]>,
    create: bool,
    err: &(dyn Fn(&str, &tokio_postgres::Error) -> Error + Sync),
) -> Result<Batch> {
    let table = quote_table_checked(&spec.table, "lookup table")?;
    let ctx = format!("lookup table {table}");
    let (m, v) = (quote_ident(&spec.match_column), quote_ident(&spec.value));
    let mut types = Vec::new();
    for col in [&spec.match_column, &spec.value] {
        let t = column_type(client, &table, col)
            .await
            .map_err(|e| err(&ctx, &e))?
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "{ctx}: the table or its column `{col}` does not exist in the target; create it (a `before` setup file can)"
                ))
            })?;
        types.push(t);
    }
    let dtype = DataType::parse_sql(&types[1]).ok_or_else(|| {
        Error::Unsupported(format!(
            "{ctx}: column `{}` is of type {}, which tsmigrate does not move",
            spec.value, types[1]
        ))
    })?;
    let wanted: Vec<String> = names.map(<[String]>::to_vec).unwrap_or_default();
    if create && !wanted.is_empty() {
        // One inserter at a time, so two partitions never add the same name twice.
        let tx = client.transaction().await.map_err(|e| err(&ctx, &e))?;
        tx.batch_execute(&format!("LOCK TABLE {table} IN SHARE ROW EXCLUSIVE MODE"))
            .await
            .map_err(|e| err(&format!("{ctx}: locking it to add missing rows"), &e))?;
        tx.execute(
            &format!(
                "INSERT INTO {table} ({m}) SELECT CAST(x AS {}) FROM unnest($1::text[]) AS x \
                 WHERE NOT EXISTS (SELECT 1 FROM {table} t WHERE t.{m}::text = x)",
                types[0]
            ),
            &[&wanted],
        )
        .await
        .map_err(|e| {
            err(
                &format!(
                    "{ctx}: adding missing {} (the other columns need defaults)",
                    spec.match_column
                ),
                &e,
            )
        })?;
        tx.commit().await.map_err(|e| err(&ctx, &e))?;
    }
    let rows = match names {
        None => {
            client
                .query(
                    &format!("SELECT {m}::text, {v}::text FROM {table} WHERE {m} IS NOT NULL"),
                    &[],
                )
                .await
        }
        Some(_) => {
            client
                .query(
                    &format!("SELECT {m}::text, {v}::text FROM {table} WHERE {m}::text = ANY($1)"),
                    &[&wanted],
                )
                .await
        }
    }
    .map_err(|e| err(&ctx, &e))?;
    let mut matches = Column::with_capacity(DataType::Text, rows.len());
    let mut values = Column::with_capacity(DataType::Text, rows.len());
    for row in &rows {
        let (a, b) = (
            row.try_get::<_, Option<String>>(0)
                .map_err(|e| err(&ctx, &e))?,
            row.try_get::<_, Option<String>>(1)
                .map_err(|e| err(&ctx, &e))?,
        );
        match a {
            Some(a) => matches.push_str(&a),
            None => matches.push_null(),
        }
        match b {
            Some(b) => values.push_str(&b),
            None => values.push_null(),
        }
    }
    let mut errors = RowErrors::new();
    let mut lossy = LossyCounts::default();
    let values = convert(
        &values,
        dtype,
        &mut ConvertCtx {
            errors: &mut errors,
            lossy: &mut lossy,
            column: Some(&spec.value),
        },
    );
    if let Some(e) = errors.errors().first() {
        return Err(Error::Decode {
            end: End::Target,
            context: ctx,
            message: e.reason.clone(),
        });
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new(spec.match_column.clone(), DataType::Text),
        Field::new(spec.value.clone(), dtype),
    ]));
    Batch::new(schema, vec![Arc::new(matches), Arc::new(values)])
        .ok_or_else(|| Error::Internal("lookup rows do not fit their schema".into()))
}
