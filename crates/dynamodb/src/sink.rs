//! `[target] kind = "dynamodb"`: streams of records (any source table or query, mapped by the
//! plan into items) written into one table or several.
//!
//! Every stream's `columns` build its items: key templates are expressions
//! (`PK = 'ZONE#' || id`), constants name the entity (`entityType = 'ZONE'`), renames give
//! camelCase attributes, timestamps become ISO-8601 text, JSON columns nested maps, and a TTL
//! is epoch seconds (`epoch_s(ts) + 7776000`). The streams share the table of `[target]
//! table` unless they name their own; constant columns tell their items apart (for `verify`
//! and for the check that an `append` does not write among items of another run).
//!
//! DynamoDB has no transaction over a partition's items: a partition is committed when every
//! item is acknowledged, and a partition written again (a resumed run) puts the same items
//! again, which replaces them: puts by key are idempotent. `append` and `upsert` therefore
//! both put; `skip` (insert only new keys) is refused, as BatchWriteItem takes no conditions.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use futures_util::stream::{self, StreamExt};
use tsmigrate_core::{
    Batch, CommitInfo, DataType, Endpoint, Error, Field, FinishReport, Ledger, LedgerOptions,
    Partition, PartitionCommit, PartitionWriter, PreparedTarget, Result, RowError, Sink,
    TableReader, TargetRequest, WriteMode, WriteOutcome,
};
use tsmigrate_sqlite::StateLedger;

use crate::client::{store_error, Dynamo};
use crate::item::{describe_attr, Encoder, Item, Role};
use crate::options::{DynamoOptions, KeyType};
use crate::reader::DynamoReader;
use crate::table;
use crate::write::{write_chunk, Pending, WriteStats, BATCH_ITEMS};

/// Whether a table was there before this run or made by it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TableOrigin {
    Existing,
    Created,
}

/// The DynamoDB target.
pub struct DynamoSink {
    opts: DynamoOptions,
    dynamo: Dynamo,
    tables: tokio::sync::Mutex<HashMap<String, TableOrigin>>,
    ledger: OnceLock<Arc<StateLedger>>,
    stats: Arc<WriteStats>,
}

impl DynamoSink {
    /// The sink of a `[target] kind = "dynamodb"` endpoint (no request is sent yet).
    pub fn open(endpoint: &Endpoint) -> Result<DynamoSink> {
        let opts = DynamoOptions::parse(endpoint)?;
        let dynamo = Dynamo::connect(&opts)?;
        Ok(DynamoSink {
            stats: Arc::new(WriteStats::new(opts.max_writes_per_second)),
            opts,
            dynamo,
            tables: tokio::sync::Mutex::new(HashMap::new()),
            ledger: OnceLock::new(),
        })
    }

    /// The table a stream writes: its own `table` when the plan names one, else `[target]
    /// table`, else the stream's name.
    fn table_of(&self, request: &TargetRequest) -> String {
        match (&self.opts.table, request.table_given) {
            (Some(t), false) => t.clone(),
            _ => request.table.clone(),
        }
    }

    /// The role of each column and the type the sink takes it in.
    /// What attribute `name` is to the table: a key of it or of an index (with its type), or
    /// a plain attribute.
    fn role(&self, name: &str) -> Role {
        if self.opts.key_attributes().contains(&name) {
            Role::Key {
                ty: self.opts.key_type(name),
                table_key: self.opts.table_key().iter().any(|k| k == name),
            }
        } else {
            Role::Plain
        }
    }

    /// The type the sink takes each column in, after checking the table key is mapped.
    fn columns(&self, request: &TargetRequest, ctx: &str) -> Result<Vec<Field>> {
        let table_key = self.opts.table_key();
        for k in &table_key {
            if !request.columns.iter().any(|c| c.name == *k) {
                return Err(Error::Plan(format!(
                    "{ctx}: the stream gives no `{k}`, a key attribute of the table; every item needs it. \
                     Add it to the stream's columns, such as {{ name = \"{k}\", expr = \"'ENTITY#' || id\" }}"
                )));
            }
        }
        let mut fields = Vec::new();
        for c in &request.columns {
            let dtype = match self.role(&c.name) {
                Role::Key { ty: KeyType::S, .. } => DataType::Text,
                Role::Key { ty: KeyType::N, .. } => DataType::Numeric,
                Role::Key { ty: KeyType::B, .. } => DataType::Bytes,
                Role::Plain if self.opts.ttl.as_deref() == Some(c.name.as_str()) => match c.dtype {
                    DataType::Timestamp(_) => {
                        return Err(Error::Plan(format!(
                            "{ctx}: `{}` is the TTL attribute, which DynamoDB reads as epoch seconds (a Number), and the stream gives a timestamp; \
                             compute it as epoch_s(<time column>) + <seconds to keep>",
                            c.name
                        )))
                    }
                    DataType::Int16 | DataType::Int32 | DataType::Int64 => DataType::Int64,
                    DataType::Float32 | DataType::Float64 | DataType::Numeric => c.dtype,
                    _ => DataType::Int64,
                },
                Role::Plain => match c.dtype {
                    DataType::Timestamp(_) | DataType::Uuid => DataType::Text,
                    DataType::Int16 | DataType::Int32 => DataType::Int64,
                    // A float4 stays one, so it is written as the float4 it is (`0.1`).
                    other => other,
                },
            };
            fields.push(Field::new(c.name.clone(), dtype));
        }
        Ok(fields)
    }

    /// True when the plan's ledger has planned the stream: items of it in the table may be
    /// from an earlier run of this plan that stopped before recording a partition.
    async fn ledger_knows(&self, stream: &str) -> Result<bool> {
        match self.ledger.get() {
            Some(l) => Ok(l.stream(stream).await?.is_some()),
            None => Ok(false),
        }
    }

    /// One item of `table` whose scope attributes hold the stream's constants, if any.
    async fn any_item(
        &self,
        table: &str,
        scope: &[(String, String)],
        fields: &[Field],
    ) -> Result<Option<Item>> {
        let (filter, names, values) = crate::reader::scope_filter(scope, fields);
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .dynamo
                .client
                .scan()
                .table_name(table)
                .set_filter_expression(filter.clone())
                .set_expression_attribute_names(names.clone())
                .set_expression_attribute_values(values.clone())
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| store_error(&format!("Scan {table}"), &e))?;
            if let Some(item) = out.items().first() {
                return Ok(Some(item.clone()));
            }
            match out.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => return Ok(None),
            }
        }
    }
}

#[async_trait]
impl Sink for DynamoSink {
    fn describe(&self) -> String {
        self.dynamo.describe.clone()
    }

    async fn check(&self) -> Result<Vec<String>> {
        let mut out = vec![self.dynamo.describe.clone()];
        // Reaches the endpoint with the credentials (the answer itself is not needed).
        self.dynamo
            .client
            .list_tables()
            .limit(1)
            .send()
            .await
            .map_err(|e| {
                let mut err = store_error("ListTables", &e);
                if let Error::Store { message, .. } = &mut err {
                    message.push_str(" (check the endpoint, the region and AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)");
                }
                err
            })?;
        if let Some(t) = &self.opts.table {
            match table::describe(&self.dynamo, t).await? {
                Some(d) => out.extend(table::check_existing(&self.opts, t, &d)?),
                None => out.push(format!(
                    "table {t} does not exist yet: `run` creates it ({})",
                    table::creation_text(&self.opts, t)
                )),
            }
        }
        Ok(out)
    }

    async fn prepare(&self, request: &TargetRequest, dry_run: bool) -> Result<PreparedTarget> {
        let table = self.table_of(request);
        let ctx = format!("stream `{}`, DynamoDB table {table}", request.stream);
        if request.write == WriteMode::Skip {
            return Err(Error::Plan(format!(
                "{ctx}: write = \"skip\" needs a condition per item, which BatchWriteItem does not take; \
                 a DynamoDB put replaces the item with the same key, so use write = \"append\" or \"upsert\" (both put)"
            )));
        }
        let fields = self.columns(request, &ctx)?;
        let mut notes = Vec::new();
        let mut created = None;
        let mut tables = self.tables.lock().await;
        let origin = match tables.get(&table) {
            Some(o) => Some(*o),
            None => match table::describe(&self.dynamo, &table).await? {
                Some(d) => {
                    notes.extend(table::check_existing(&self.opts, &table, &d)?);
                    notes.extend(
                        table::ensure_ttl(&self.dynamo, &self.opts, &table, dry_run).await?,
                    );
                    tables.insert(table.clone(), TableOrigin::Existing);
                    Some(TableOrigin::Existing)
                }
                None => {
                    created = Some(table::creation_text(&self.opts, &table));
                    if dry_run {
                        None
                    } else {
                        table::create(&self.dynamo, &self.opts, &table).await?;
                        notes.extend(
                            table::ensure_ttl(&self.dynamo, &self.opts, &table, false).await?,
                        );
                        tables.insert(table.clone(), TableOrigin::Created);
                        Some(TableOrigin::Created)
                    }
                }
            },
        };
        drop(tables);
        if request.require_empty
            && origin == Some(TableOrigin::Existing)
            && !self.ledger_knows(&request.stream).await?
        {
            if let Some(item) = self.any_item(&table, &request.scope, &fields).await? {
                let scope = if request.scope.is_empty() {
                    "items (the stream has no constant attribute, such as entityType = 'ZONE', to tell its items from others')".to_string()
                } else {
                    let s: Vec<String> = request
                        .scope
                        .iter()
                        .map(|(k, v)| format!("{k} = {v:?}"))
                        .collect();
                    format!("items with {}", s.join(" and "))
                };
                let key: Vec<String> = self
                    .opts
                    .table_key()
                    .iter()
                    .map(|k| {
                        format!(
                            "{k} = {}",
                            item.get(k).map(describe_attr).unwrap_or_default()
                        )
                    })
                    .collect();
                let msg = format!(
                    "{ctx}: the table already holds {scope} that this plan's ledger did not write (such as {}); \
                     a put replaces an item with the same key. To write over them, set write = \"upsert\" in the stream; \
                     otherwise choose another table",
                    key.join(", ")
                );
                // Refused in a dry run and `check` too: they must not pass what `run` refuses.
                return Err(Error::Plan(msg));
            }
        }
        // A DynamoDB number has no negative zero: -0.0 is stored (and read back) as 0.
        let limits = fields
            .iter()
            .map(|_| tsmigrate_core::ColumnLimits {
                no_negative_zero: true,
                ..Default::default()
            })
            .collect();
        Ok(PreparedTarget {
            stream: request.stream.clone(),
            table,
            limits,
            columns: fields,
            created,
            notes,
            write: request.write,
            key: self.opts.table_key(),
        })
    }

    async fn begin(
        &self,
        target: &PreparedTarget,
        partition: &Partition,
    ) -> Result<Box<dyn PartitionWriter>> {
        let ctx = format!(
            "stream `{}`, partition {}, DynamoDB table {}",
            target.stream, partition.id, target.table
        );
        if target.write == WriteMode::Skip {
            return Err(Error::Unsupported(format!(
                "{ctx}: skipping items already written needs a condition per item, which BatchWriteItem does not take"
            )));
        }
        let roles = target.columns.iter().map(|f| self.role(&f.name)).collect();
        let key = self
            .opts
            .table_key()
            .iter()
            .filter_map(|k| target.columns.iter().position(|f| f.name == *k))
            .collect();
        Ok(Box::new(DynamoWriter {
            dynamo: self.dynamo.clone(),
            table: target.table.clone(),
            encoder: Arc::new(Encoder::new(&target.columns, roles, key, self.opts.nulls)),
            seen: HashSet::new(),
            stats: self.stats.clone(),
            concurrency: self.opts.concurrency,
            context: ctx,
            written: 0,
        }))
    }

    async fn finish(&self, _target: &PreparedTarget) -> Result<FinishReport> {
        let retried = self
            .stats
            .retried_requests
            .load(std::sync::atomic::Ordering::Relaxed);
        let resent = self
            .stats
            .resent_items
            .load(std::sync::atomic::Ordering::Relaxed);
        let mut notes = Vec::new();
        if retried > 0 || resent > 0 {
            notes.push(format!(
                "DynamoDB throttled or failed {retried} request(s) and left {resent} item(s) unprocessed so far in this run; all were sent again"
            ));
        }
        Ok(FinishReport {
            notes,
            compression: None,
        })
    }

    fn ledger(&self, plan_id: &str, _opts: &LedgerOptions) -> Result<Option<Arc<dyn Ledger>>> {
        let ledger = Arc::new(StateLedger::new(
            self.opts.state.clone(),
            plan_id,
            "DynamoDB items carry no mark of the run that wrote them, so a run cannot be taken back by itself; \
             delete the stream's items (or the table) and run `tsmigrate run --restart`"
                .to_string(),
        ));
        let _ = self.ledger.set(ledger.clone());
        Ok(Some(ledger))
    }

    fn reader(&self) -> Option<Arc<dyn TableReader>> {
        Some(Arc::new(DynamoReader::new(self.dynamo.clone())))
    }
}

/// Writes one partition's items.
struct DynamoWriter {
    dynamo: Dynamo,
    table: String,
    encoder: Arc<Encoder>,
    /// Table keys written by this partition: a second row with one of them is rejected.
    seen: HashSet<u128>,
    stats: Arc<WriteStats>,
    concurrency: usize,
    context: String,
    written: u64,
}

#[async_trait]
impl PartitionWriter for DynamoWriter {
    async fn write(&mut self, batch: &Batch) -> Result<WriteOutcome> {
        let mut rejected = Vec::new();
        let mut pending = Vec::with_capacity(batch.len());
        for r in 0..batch.len() {
            match self.encoder.item(batch, r) {
                Err((column, reason)) => rejected.push(RowError {
                    row: r,
                    column: Some(column),
                    reason,
                }),
                Ok(item) => {
                    let key = self.encoder.key_hash(&item);
                    if self.seen.insert(key) {
                        pending.push(Pending { row: r, key, item });
                    } else {
                        rejected.push(RowError {
                            row: r,
                            column: None,
                            reason: format!(
                                "another row of this partition has the same key ({}): both would be one item, the later replacing the earlier; \
                                 make the key templates unique",
                                self.encoder.describe_key(&item)
                            ),
                        });
                    }
                }
            }
        }
        let sent = pending.len() as u64;
        let mut chunks = Vec::new();
        let mut it = pending.into_iter().peekable();
        while it.peek().is_some() {
            chunks.push(it.by_ref().take(BATCH_ITEMS).collect::<Vec<_>>());
        }
        let encoder = self.encoder.clone();
        let key_of = move |item: &Item| encoder.key_hash(item);
        let (dynamo, table, stats, ctx) = (&self.dynamo, &self.table, &self.stats, &self.context);
        let key_of = &key_of;
        let results: Vec<Result<Vec<(usize, String)>>> = stream::iter(chunks)
            .map(|chunk| write_chunk(dynamo, table, chunk, stats, ctx, key_of))
            .buffer_unordered(self.concurrency)
            .collect()
            .await;
        let mut refused = 0u64;
        for r in results {
            for (row, reason) in r? {
                refused += 1;
                rejected.push(RowError {
                    row,
                    column: None,
                    reason,
                });
            }
        }
        self.written += sent - refused;
        Ok(WriteOutcome {
            bytes: batch.byte_size() as u64,
            rejected,
        })
    }

    async fn commit(self: Box<Self>, _ledger: Option<&PartitionCommit>) -> Result<CommitInfo> {
        Ok(CommitInfo {
            written: self.written,
            skipped: 0,
            recorded: false,
        })
    }

    async fn abort(self: Box<Self>) -> Result<()> {
        // What was put stays: a resumed run puts the partition's items again (idempotent).
        Ok(())
    }
}
