//! The PostgreSQL sink: checks or creates the target table, then writes each partition in
//! its own transaction through binary COPY encoded by [`crate::codec`].

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Mutex;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::SinkExt;
use tokio_postgres::{Client, CopyInSink};
use tsmigrate_core::{
    Batch, ConnString, DataType, End, Endpoint, Error, Field, Partition, PartitionWriter,
    PreparedTarget, Result, Sink, TargetRequest, WriteOutcome,
};

use crate::codec::{encode_batch, write_header, write_trailer, PgType};
use crate::connect::{connect, quote_ident, quote_table, store_error};

/// Writes streams into PostgreSQL tables.
pub struct PgSink {
    url: ConnString,
    /// Wire types of each prepared stream's columns.
    types: Mutex<HashMap<String, Vec<PgType>>>,
}

impl PgSink {
    /// A sink for the `[target]` endpoint (`kind = "postgres"`, `url = …`).
    pub fn open(endpoint: &Endpoint) -> Result<PgSink> {
        let url = endpoint.url.clone().ok_or_else(|| {
            Error::Plan(
                "[target] kind = \"postgres\" needs url = \"postgres://user@host/db\"".into(),
            )
        })?;
        if let Some(k) = endpoint.options.keys().next() {
            return Err(Error::Plan(format!(
                "[target]: unknown option `{k}` for kind = \"postgres\""
            )));
        }
        Ok(PgSink {
            url,
            types: Mutex::new(HashMap::new()),
        })
    }

    async fn client(&self) -> Result<Client> {
        connect(&self.url, End::Target).await
    }

    fn err(&self, context: &str, e: &tokio_postgres::Error) -> Error {
        store_error(End::Target, context, e, &self.url)
    }
}

/// A column of an existing target table.
struct TableColumn {
    name: String,
    typname: String,
    formatted: String,
    not_null: bool,
    has_default: bool,
}

async fn table_columns(
    client: &Client,
    oid: u32,
) -> std::result::Result<Vec<TableColumn>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT a.attname::text, COALESCE(bt.typname, t.typname)::text, format_type(a.atttypid, a.atttypmod), \
                    a.attnotnull, a.atthasdef OR a.attidentity <> '' OR a.attgenerated <> '' \
             FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid \
             LEFT JOIN pg_type bt ON t.typtype = 'd' AND bt.oid = t.typbasetype \
             WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
            &[&oid],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| TableColumn {
            name: r.get(0),
            typname: r.get(1),
            formatted: r.get(2),
            not_null: r.get(3),
            has_default: r.get(4),
        })
        .collect())
}

async fn table_oid(
    client: &Client,
    quoted: &str,
) -> std::result::Result<Option<u32>, tokio_postgres::Error> {
    let row = client
        .query_one("SELECT to_regclass($1)::oid", &[&quoted])
        .await?;
    Ok(row.get::<_, Option<u32>>(0))
}

/// True for a type name safe to put into `CREATE TABLE` verbatim.
fn plain_type_name(t: &str) -> bool {
    !t.is_empty()
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b" _(),[]".contains(&b))
}

#[async_trait]
impl Sink for PgSink {
    fn describe(&self) -> String {
        format!("postgres {}", self.url.redacted())
    }

    async fn check(&self) -> Result<Vec<String>> {
        let client = self.client().await?;
        let row = client
            .query_one("SELECT current_setting('server_version'), current_user::text, current_database()::text", &[])
            .await
            .map_err(|e| self.err("checking the server", &e))?;
        let (v, u, d): (String, String, String) = (row.get(0), row.get(1), row.get(2));
        Ok(vec![format!("PostgreSQL {v}, database `{d}` as `{u}`")])
    }

    async fn prepare(&self, request: &TargetRequest, dry_run: bool) -> Result<PreparedTarget> {
        let client = self.client().await?;
        let table = quote_table(&request.table);
        let ctx = format!("stream `{}`, table {table}", request.stream);
        let mut notes = Vec::new();
        let mut created = None;
        let mut oid = table_oid(&client, &table)
            .await
            .map_err(|e| self.err(&ctx, &e))?;
        if oid.is_none() {
            if !request.create {
                return Err(Error::NotFound(format!(
                    "{ctx}: the target table does not exist; create it, or set create = true in the stream to let tsmigrate create it"
                )));
            }
            let mut cols = Vec::new();
            for c in &request.columns {
                let ty = match &c.declared {
                    Some(t) if plain_type_name(t) => t.clone(),
                    Some(t) => {
                        return Err(Error::Plan(format!(
                            "{ctx}: column `{}` has type {t:?}, which is not a plain SQL type name",
                            c.name
                        )))
                    }
                    None => c.dtype.pg_name().to_string(),
                };
                cols.push(format!("{} {ty}", quote_ident(&c.name)));
            }
            let ddl = format!("CREATE TABLE {table} ({})", cols.join(", "));
            if dry_run {
                notes.push("the table does not exist yet; it would be created".to_string());
            } else {
                client
                    .batch_execute(&ddl)
                    .await
                    .map_err(|e| self.err(&format!("{ctx}: creating the table"), &e))?;
                oid = table_oid(&client, &table)
                    .await
                    .map_err(|e| self.err(&ctx, &e))?;
            }
            created = Some(ddl);
        }
        let mut fields = Vec::new();
        let mut types = Vec::new();
        match oid {
            None => {
                // Dry run of a table to be created: the declared or inferred types.
                for c in &request.columns {
                    let dt = c
                        .declared
                        .as_deref()
                        .and_then(DataType::parse_sql)
                        .unwrap_or(c.dtype);
                    let pt = PgType::for_dtype(dt);
                    types.push(pt);
                    fields.push(Field::new(c.name.clone(), pt.dtype()));
                }
            }
            Some(oid) => {
                let existing = table_columns(&client, oid)
                    .await
                    .map_err(|e| self.err(&ctx, &e))?;
                for c in &request.columns {
                    let col = existing
                        .iter()
                        .find(|t| t.name == c.name)
                        .or_else(|| {
                            existing
                                .iter()
                                .find(|t| t.name.eq_ignore_ascii_case(&c.name))
                        })
                        .ok_or_else(|| {
                            let names: Vec<_> = existing.iter().map(|t| t.name.as_str()).collect();
                            Error::Plan(format!(
                                "{ctx}: the table has no column `{}`; its columns are: {}",
                                c.name,
                                names.join(", ")
                            ))
                        })?;
                    let pt = PgType::from_typname(&col.typname).ok_or_else(|| {
                        Error::Unsupported(format!(
                            "{ctx}: column `{}` has type {}, which tsmigrate cannot write yet",
                            col.name, col.formatted
                        ))
                    })?;
                    types.push(pt);
                    fields.push(Field::new(col.name.clone(), pt.dtype()));
                }
                for t in &existing {
                    let mapped = fields.iter().any(|f| f.name == t.name);
                    if !mapped && t.not_null && !t.has_default {
                        return Err(Error::Plan(format!(
                            "{ctx}: column `{}` is NOT NULL without a default, and the stream does not map it",
                            t.name
                        )));
                    }
                }
                let row = client
                    .query_one(
                        "SELECT (SELECT count(*) FROM pg_index WHERE indrelid = $1), \
                                (SELECT reltuples::float8 FROM pg_class WHERE oid = $1)",
                        &[&oid],
                    )
                    .await
                    .map_err(|e| self.err(&ctx, &e))?;
                let (indexes, tuples): (i64, f64) = (row.get(0), row.get(1));
                if tuples > 0.0 {
                    notes.push(format!(
                        "the table already holds about {} rows",
                        tuples as u64
                    ));
                }
                if indexes > 0 {
                    notes.push(format!(
                        "the table has {indexes} index(es); loading is several times faster without them (create them after the load)"
                    ));
                }
            }
        }
        if let Ok(mut map) = self.types.lock() {
            map.insert(request.stream.clone(), types);
        }
        Ok(PreparedTarget {
            stream: request.stream.clone(),
            table,
            columns: fields,
            created,
            notes,
        })
    }

    async fn begin(
        &self,
        target: &PreparedTarget,
        partition: &Partition,
    ) -> Result<Box<dyn PartitionWriter>> {
        let types = self
            .types
            .lock()
            .ok()
            .and_then(|m| m.get(&target.stream).cloned())
            .ok_or_else(|| {
                Error::Plan(format!(
                    "internal error: stream `{}` was not prepared",
                    target.stream
                ))
            })?;
        let context = format!(
            "stream `{}`, partition {}, table {}",
            target.stream, partition.id, target.table
        );
        let client = self.client().await?;
        client
            .batch_execute("BEGIN")
            .await
            .map_err(|e| self.err(&context, &e))?;
        let cols: Vec<String> = target
            .columns
            .iter()
            .map(|f| quote_ident(&f.name))
            .collect();
        let sql = format!(
            "COPY {} ({}) FROM STDIN (FORMAT binary)",
            target.table,
            cols.join(", ")
        );
        let sink = client
            .copy_in::<_, Bytes>(sql.as_str())
            .await
            .map_err(|e| self.err(&context, &e))?;
        Ok(Box::new(PgPartitionWriter {
            client,
            sink: Box::pin(sink),
            types,
            url: self.url.clone(),
            context,
            header_written: false,
        }))
    }

    async fn finish(&self, _target: &PreparedTarget) -> Result<()> {
        Ok(())
    }
}

/// One partition's transaction: `BEGIN; COPY … FROM STDIN (FORMAT binary); COMMIT`.
struct PgPartitionWriter {
    client: Client,
    sink: Pin<Box<CopyInSink<Bytes>>>,
    types: Vec<PgType>,
    url: ConnString,
    context: String,
    header_written: bool,
}

#[async_trait]
impl PartitionWriter for PgPartitionWriter {
    async fn write(&mut self, batch: &Batch) -> Result<WriteOutcome> {
        let mut buf =
            Vec::with_capacity(batch.byte_size() + batch.len() * 4 * self.types.len() + 32);
        if !self.header_written {
            write_header(&mut buf);
            self.header_written = true;
        }
        let rejected = encode_batch(batch, &self.types, &mut buf);
        let bytes = buf.len() as u64;
        self.sink
            .send(Bytes::from(buf))
            .await
            .map_err(|e| store_error(End::Target, &self.context, &e, &self.url))?;
        Ok(WriteOutcome { bytes, rejected })
    }

    async fn commit(mut self: Box<Self>) -> Result<()> {
        let mut buf = Vec::with_capacity(32);
        if !self.header_written {
            write_header(&mut buf);
        }
        write_trailer(&mut buf);
        self.sink
            .send(Bytes::from(buf))
            .await
            .map_err(|e| store_error(End::Target, &self.context, &e, &self.url))?;
        self.sink
            .as_mut()
            .finish()
            .await
            .map_err(|e| store_error(End::Target, &self.context, &e, &self.url))?;
        self.client.batch_execute("COMMIT").await.map_err(|e| {
            store_error(
                End::Target,
                format!("{}: COMMIT", self.context),
                &e,
                &self.url,
            )
        })
    }

    async fn abort(self: Box<Self>) -> Result<()> {
        // Dropping the connection mid-COPY makes the server roll the transaction back.
        drop(self);
        Ok(())
    }
}
