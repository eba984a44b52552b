//! The SQLite sink: checks or creates the target table, then writes each partition in one
//! transaction on the file's writer thread ([`crate::writer`]).
//!
//! Write modes: `append` inserts every row; `skip` inserts rows whose key is new (`ON
//! CONFLICT DO NOTHING` with a unique index on the key, a `NOT EXISTS` probe without; the
//! first row of a key wins); `upsert` overwrites the non-key columns of existing keys (needs
//! a unique index; a table created for `skip` or `upsert` gets the key as primary key).
//! After a stream is loaded, a table with a key gets an index on it when it has none, so
//! later `sync` rounds and `verify` spot checks find keys quickly (`index_key = false` in
//! `[target]` leaves that out: building it costs about as long as loading the rows).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use async_trait::async_trait;
use rusqlite::Connection;
use tsmigrate_core::connector::{existing_column, refuse_append};
use tsmigrate_core::{
    Batch, CommitInfo, End, Endpoint, Error, Field, FinishReport, Ledger, LedgerOptions, Partition,
    PartitionCommit, PartitionWriter, PreparedTarget, Result, Sink, TableReader, TargetRequest,
    WriteMode, WriteOutcome,
};

use crate::db::{blocking, quote_ident, quote_table, Db};
use crate::ledger::SqliteLedger;
use crate::read::table_columns;
use crate::reader::SqliteTableReader;
use crate::values::{decl_for, dtype_from_decl};
use crate::writer::{insert_sql, InsertPlan, Turn, Writer};

/// Writes streams into the tables of a SQLite file.
pub struct SqliteSink {
    db: Db,
    /// Insert statement per prepared stream.
    targets: Mutex<HashMap<String, String>>,
    /// The plan id whose ledger partitions record, once [`Sink::ledger`] was asked for.
    ledger: OnceLock<String>,
    /// The writer thread, started by the first partition.
    writer: tokio::sync::OnceCell<Writer>,
    /// Build an index on a stream's key after loading it (`index_key`, default true).
    index_key: bool,
}

impl SqliteSink {
    /// A sink for the `[target]` endpoint (`kind = "sqlite"`, `path = …`). The file is created
    /// when missing.
    pub fn open(endpoint: &Endpoint) -> Result<SqliteSink> {
        if let Some(k) = endpoint
            .options
            .keys()
            .find(|k| !["path", "index_key"].contains(&k.as_str()))
        {
            return Err(Error::Plan(format!(
                "[target] kind = \"sqlite\" has no option `{k}`; its options are path and index_key"
            )));
        }
        let index_key = match endpoint.options.get("index_key") {
            None => true,
            Some(toml::Value::Boolean(b)) => *b,
            Some(_) => {
                return Err(Error::Plan(
                    "target.index_key must be true or false".to_string(),
                ))
            }
        };
        Ok(SqliteSink {
            index_key,
            db: Db::from_endpoint(endpoint, End::Target)?,
            targets: Mutex::new(HashMap::new()),
            ledger: OnceLock::new(),
            writer: tokio::sync::OnceCell::new(),
        })
    }
}

/// The index names covering exactly `key` (as a set), and whether one of them is unique.
fn key_indexes(conn: &Connection, table: &str, key: &[String]) -> rusqlite::Result<(bool, bool)> {
    let mut want: Vec<String> = key.iter().map(|k| k.to_ascii_lowercase()).collect();
    want.sort();
    let mut stmt = conn.prepare(&format!("PRAGMA index_list({})", quote_ident(table)))?;
    let indexes = stmt
        .query_map([], |r| {
            Ok((r.get::<_, String>(1)?, r.get::<_, i64>(2)? != 0))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let (mut any, mut unique) = (false, false);
    for (name, is_unique) in indexes {
        let mut info = conn.prepare(&format!("PRAGMA index_info({})", quote_ident(&name)))?;
        let mut cols = info
            .query_map([], |r| r.get::<_, Option<String>>(2))?
            .collect::<rusqlite::Result<Vec<_>>>()?
            .into_iter()
            .map(|c| c.unwrap_or_default().to_ascii_lowercase())
            .collect::<Vec<_>>();
        cols.sort();
        if cols == want {
            any = true;
            unique |= is_unique;
        }
    }
    Ok((any, unique))
}

fn prepare_blocking(
    db: &Db,
    request: &TargetRequest,
    dry_run: bool,
) -> Result<(PreparedTarget, String)> {
    let table = quote_table(&request.table);
    let ctx = format!("stream `{}`, table {table}", request.stream);
    let conn = if dry_run && !db.path().exists() {
        Connection::open_in_memory().map_err(|e| db.connect_error(&e))?
    } else {
        db.open_write()?
    };
    let mut notes = Vec::new();
    let mut created = None;
    let existing = table_columns(&conn, &request.table).map_err(|e| db.error(&ctx, &e))?;
    let mut fields = Vec::with_capacity(request.columns.len());
    let mut unique_key = false;
    match existing {
        None => {
            if !request.create {
                return Err(Error::NotFound(format!(
                    "{ctx}: the target table does not exist in {}; create it, or set create = true in the stream to let tsmigrate create it",
                    db.path().display()
                )));
            }
            let mut cols: Vec<String> = request
                .columns
                .iter()
                .map(|c| format!("{} {}", quote_ident(&c.name), decl_for(c.dtype)))
                .collect();
            if request.write != WriteMode::Append && !request.key.is_empty() {
                let key: Vec<String> = request.key.iter().map(|k| quote_ident(k)).collect();
                cols.push(format!("PRIMARY KEY ({})", key.join(", ")));
                unique_key = true;
            }
            let ddl = format!("CREATE TABLE {table} ({})", cols.join(", "));
            if dry_run {
                notes.push("the table does not exist yet; it would be created".to_string());
            } else {
                conn.execute_batch(&ddl)
                    .map_err(|e| db.error(format!("{ctx}: creating the table"), &e))?;
            }
            created = Some(ddl);
            for c in &request.columns {
                fields.push(Field::new(c.name.clone(), c.dtype));
            }
        }
        Some(existing) => {
            for c in &request.columns {
                let col = existing_column(&existing, |t| t.name.as_str(), &c.name, &ctx)?;
                fields.push(Field::new(col.name.clone(), dtype_from_decl(&col.decl)));
            }
            for t in &existing {
                let mapped = fields.iter().any(|f| f.name == t.name);
                if !mapped && t.not_null && !t.has_default && t.pk == 0 {
                    return Err(Error::Plan(format!(
                        "{ctx}: column `{}` is NOT NULL without a default, and the stream does not map it",
                        t.name
                    )));
                }
            }
            if !request.key.is_empty() {
                unique_key = key_indexes(&conn, &request.table, &request.key)
                    .map_err(|e| db.error(&ctx, &e))?
                    .1;
            }
            let held: bool = conn
                .query_row(&format!("SELECT EXISTS (SELECT 1 FROM {table})"), [], |r| {
                    r.get(0)
                })
                .map_err(|e| db.error(&ctx, &e))?;
            if held && request.require_empty {
                // Refused in a dry run and `check` too: they must not pass what `run` refuses.
                return Err(Error::Plan(refuse_append(&ctx)));
            } else if held {
                notes.push("the table already holds rows".into());
            }
        }
    }
    if request.write == WriteMode::Upsert && !unique_key && created.is_none() {
        return Err(Error::Plan(format!(
            "{ctx}: write = \"upsert\" needs a unique index or primary key on exactly the key columns ({}); \
             create one (CREATE UNIQUE INDEX … ON {table} ({})), or use write = \"skip\"",
            request.key.join(", "),
            request.key.iter().map(|k| quote_ident(k)).collect::<Vec<_>>().join(", ")
        )));
    }
    if request.write != WriteMode::Append && request.key.is_empty() {
        return Err(Error::Plan(format!(
            "{ctx}: write = \"{}\" needs the stream's `key` (the target columns identifying a row)",
            request.write.name()
        )));
    }
    let names: Vec<String> = fields.iter().map(|f| f.name.clone()).collect();
    let sql = insert_sql(&table, &names, &request.key, request.write, unique_key);
    Ok((
        PreparedTarget {
            stream: request.stream.clone(),
            table,
            limits: no_negative_zero(&fields),
            columns: fields,
            created,
            notes,
            write: request.write,
            key: request.key.clone(),
        },
        sql,
    ))
}

#[async_trait]
impl Sink for SqliteSink {
    fn describe(&self) -> String {
        self.db.describe()
    }

    async fn check(&self) -> Result<Vec<String>> {
        let db = self.db.clone();
        blocking(move || {
            // A check changes nothing: a missing file is left for `run` to create.
            if !db.path().exists() {
                let dir = match db.path().parent() {
                    Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
                    _ => std::path::PathBuf::from("."),
                };
                if !dir.is_dir() {
                    return Err(Error::Connect {
                        end: End::Target,
                        what: db.describe(),
                        message: format!(
                            "the directory {} does not exist; create it, or name a file in an existing directory",
                            dir.display()
                        ),
                        transient: false,
                    });
                }
                let version = rusqlite::version();
                return Ok(vec![format!(
                    "{} (SQLite {version}; the file does not exist yet: `run` creates it)",
                    db.describe()
                )]);
            }
            let conn = db.open_write()?;
            let version: String = conn
                .query_row("SELECT sqlite_version()", [], |r| r.get(0))
                .map_err(|e| db.error("reading the version", &e))?;
            Ok(vec![format!("{} (SQLite {version})", db.describe())])
        })
        .await
    }

    async fn prepare(&self, request: &TargetRequest, dry_run: bool) -> Result<PreparedTarget> {
        let (db, req) = (self.db.clone(), request.clone());
        let (prepared, sql) = blocking(move || prepare_blocking(&db, &req, dry_run)).await?;
        if let Ok(mut map) = self.targets.lock() {
            map.insert(request.stream.clone(), sql);
        }
        Ok(prepared)
    }

    async fn begin(
        &self,
        target: &PreparedTarget,
        partition: &Partition,
    ) -> Result<Box<dyn PartitionWriter>> {
        let sql = self
            .targets
            .lock()
            .ok()
            .and_then(|m| m.get(&target.stream).cloned())
            .ok_or_else(|| {
                Error::Internal(format!("stream `{}` was not prepared", target.stream))
            })?;
        let writer = self
            .writer
            .get_or_try_init(|| async { Writer::start(&self.db) })
            .await?;
        let turn = writer
            .begin(InsertPlan {
                sql,
                write: target.write,
                table: target.table.clone(),
                ledger_plan: self.ledger.get().cloned(),
                context: format!(
                    "stream `{}`, partition {}, table {}",
                    target.stream, partition.id, target.table
                ),
            })
            .await?;
        Ok(Box::new(SqlitePartitionWriter { turn }))
    }

    async fn finish(&self, target: &PreparedTarget) -> Result<FinishReport> {
        if target.key.is_empty() || !self.index_key {
            return Ok(FinishReport::default());
        }
        let (db, table, key) = (self.db.clone(), target.table.clone(), target.key.clone());
        blocking(move || {
            let conn = db.open_write()?;
            let bare = table.trim_matches('"').replace("\"\"", "\"");
            let ctx = format!("indexing the key of {table}");
            let (any, _) = key_indexes(&conn, &bare, &key).map_err(|e| db.error(&ctx, &e))?;
            if !any {
                let cols: Vec<String> = key.iter().map(|k| quote_ident(k)).collect();
                let name = quote_ident(&format!("{bare}_tsmigrate_key"));
                // Unique when the rows allow it (so a later sync may upsert by the key),
                // else a plain index (an `append` table may hold a key twice).
                let unique = conn.execute_batch(&format!(
                    "CREATE UNIQUE INDEX IF NOT EXISTS {name} ON {table} ({})",
                    cols.join(", ")
                ));
                match unique {
                    Ok(()) => {}
                    Err(rusqlite::Error::SqliteFailure(e, _))
                        if e.code == rusqlite::ErrorCode::ConstraintViolation =>
                    {
                        conn.execute_batch(&format!(
                            "CREATE INDEX IF NOT EXISTS {name} ON {table} ({})",
                            cols.join(", ")
                        ))
                        .map_err(|e| db.error(&ctx, &e))?;
                    }
                    Err(e) => return Err(db.error(&ctx, &e)),
                }
            }
            Ok(FinishReport::default())
        })
        .await
    }

    fn ledger(&self, plan_id: &str, _opts: &LedgerOptions) -> Result<Option<Arc<dyn Ledger>>> {
        if let Some(existing) = self.ledger.get() {
            if existing != plan_id {
                return Err(Error::Internal(
                    "the target was asked for two different ledgers".into(),
                ));
            }
        }
        let _ = self.ledger.set(plan_id.to_string());
        Ok(Some(Arc::new(SqliteLedger::new(self.db.clone(), plan_id))))
    }

    fn reader(&self) -> Option<Arc<dyn TableReader>> {
        Some(Arc::new(SqliteTableReader::new(self.db.clone())))
    }
}

/// One partition's transaction on the writer thread.
struct SqlitePartitionWriter {
    turn: Turn,
}

#[async_trait]
impl PartitionWriter for SqlitePartitionWriter {
    async fn write(&mut self, batch: &Batch) -> Result<WriteOutcome> {
        let bytes = batch.byte_size() as u64;
        self.turn.write(batch.clone()).await?;
        Ok(WriteOutcome {
            bytes,
            rejected: Vec::new(),
        })
    }

    async fn take_rejects(&mut self) -> Result<Vec<tsmigrate_core::LateReject>> {
        self.turn.take_rejects().await
    }

    async fn commit(self: Box<Self>, ledger: Option<&PartitionCommit>) -> Result<CommitInfo> {
        self.turn.commit(ledger.cloned()).await
    }

    async fn abort(self: Box<Self>) -> Result<()> {
        self.turn.abort().await
    }
}

/// SQLite stores a REAL equal to a whole number as that integer, so -0.0 reads back as 0:
/// its float columns have no negative zero.
fn no_negative_zero(fields: &[Field]) -> Vec<tsmigrate_core::ColumnLimits> {
    fields
        .iter()
        .map(|f| tsmigrate_core::ColumnLimits {
            no_negative_zero: matches!(
                f.dtype,
                tsmigrate_core::DataType::Float32 | tsmigrate_core::DataType::Float64
            ),
            ..Default::default()
        })
        .collect()
}
