//! Reading a DynamoDB table back for `verify`: a parallel Scan (one partition per segment),
//! limited to the stream's items by its constant attributes, and BatchGetItem for `--sample`
//! spot checks by key.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use tsmigrate_core::{
    Batch, BatchTx, DataType, End, Error, Field, Partition, Result, TableReader, TableScan,
};

use crate::client::{store_error, Dynamo};
use crate::item::{attribute, ColumnsBuilder, Item};

/// Items per BatchGetItem request (DynamoDB's limit).
const GET_ITEMS: usize = 100;

/// Reads items of a DynamoDB table as rows.
pub struct DynamoReader {
    dynamo: Dynamo,
}

impl DynamoReader {
    /// A reader through `dynamo`.
    pub fn new(dynamo: Dynamo) -> DynamoReader {
        DynamoReader { dynamo }
    }
}

type Names = Option<HashMap<String, String>>;
type Values = Option<HashMap<String, AttributeValue>>;

/// A filter expression keeping the items whose attributes hold the stream's constants
/// (`scope`, typed by `fields`), with its placeholders; all `None` for no scope.
pub fn scope_filter(
    scope: &[(String, String)],
    fields: &[Field],
) -> (Option<String>, Names, Values) {
    if scope.is_empty() {
        return (None, None, None);
    }
    let mut names = HashMap::new();
    let mut values = HashMap::new();
    let mut terms = Vec::new();
    for (i, (col, text)) in scope.iter().enumerate() {
        let dtype = fields
            .iter()
            .find(|f| f.name == *col)
            .map_or(DataType::Text, |f| f.dtype);
        let value = match dtype {
            DataType::Bool => AttributeValue::Bool(text == "true"),
            DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::Float32
            | DataType::Float64
            | DataType::Numeric => AttributeValue::N(text.clone()),
            _ => AttributeValue::S(text.clone()),
        };
        names.insert(format!("#s{i}"), col.clone());
        values.insert(format!(":s{i}"), value);
        terms.push(format!("#s{i} = :s{i}"));
    }
    (Some(terms.join(" AND ")), Some(names), Some(values))
}

/// A projection of `fields` with placeholders (attribute names may be reserved words).
fn projection(fields: &[Field], names: &mut HashMap<String, String>) -> String {
    let mut parts = Vec::with_capacity(fields.len());
    for (i, f) in fields.iter().enumerate() {
        names.insert(format!("#p{i}"), f.name.clone());
        parts.push(format!("#p{i}"));
    }
    parts.join(", ")
}

#[async_trait]
impl TableReader for DynamoReader {
    fn describe(&self) -> String {
        self.dynamo.describe.clone()
    }

    async fn partitions(&self, scan: &TableScan, partition_rows: u64) -> Result<Vec<Partition>> {
        let d = crate::table::describe(&self.dynamo, &scan.table)
            .await?
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "stream `{}`: DynamoDB table {} does not exist",
                    scan.stream, scan.table
                ))
            })?;
        // DynamoDB's item count is refreshed about every six hours: it sizes the segments only.
        let items = u64::try_from(d.item_count().unwrap_or(0)).unwrap_or(0);
        let segments = items.div_ceil(partition_rows.max(1)).clamp(1, 1_000_000);
        Ok((0..segments)
            .map(|i| Partition {
                id: format!("segment-{i}-of-{segments}"),
                estimated_rows: Some(items / segments),
                spec: serde_json::json!({ "segment": i, "of": segments }),
            })
            .collect())
    }

    async fn read(
        &self,
        scan: &TableScan,
        partition: &Partition,
        batch_rows: usize,
        out: BatchTx,
    ) -> Result<()> {
        let segment = partition.spec["segment"].as_i64();
        let of = partition.spec["of"].as_i64();
        let (Some(segment), Some(of)) = (segment, of) else {
            return Err(Error::Internal(format!(
                "{} is not a scan segment",
                partition.id
            )));
        };
        let ctx = format!(
            "stream `{}`, Scan {} segment {segment} of {of}",
            scan.stream, scan.table
        );
        let (filter, names, values) = scope_filter(&scan.scope, &scan.columns);
        let mut names = names.unwrap_or_default();
        let projection = projection(&scan.columns, &mut names);
        let mut rows = ColumnsBuilder::new(&scan.columns, batch_rows.min(65_536));
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .dynamo
                .client
                .scan()
                .table_name(&scan.table)
                .segment(i32::try_from(segment).unwrap_or(0))
                .total_segments(i32::try_from(of).unwrap_or(1))
                .projection_expression(&projection)
                .set_filter_expression(filter.clone())
                .set_expression_attribute_names(Some(names.clone()))
                .set_expression_attribute_values(values.clone())
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| store_error(&ctx, &e))?;
            for item in page.items() {
                rows.push(item);
                if rows.full(batch_rows) {
                    send(&mut rows, &out).await?;
                }
            }
            match page.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => break,
            }
        }
        if !rows.is_empty() {
            send(&mut rows, &out).await?;
        }
        Ok(())
    }

    async fn lookup(&self, scan: &TableScan, keys: &Batch) -> Result<Batch> {
        let ctx = format!("stream `{}`, BatchGetItem {}", scan.stream, scan.table);
        let mut wanted: Vec<Item> = Vec::with_capacity(keys.len());
        'rows: for r in 0..keys.len() {
            let mut key = Item::new();
            for (f, col) in keys.schema.fields.iter().zip(&keys.columns) {
                let v = col.get(r);
                if v == tsmigrate_core::ValueRef::Null {
                    continue 'rows;
                }
                match attribute(v, col.dtype()) {
                    Ok(a) => {
                        key.insert(f.name.clone(), a);
                    }
                    Err(_) => continue 'rows,
                }
            }
            // BatchGetItem refuses a request that names one key twice.
            if !wanted.contains(&key) {
                wanted.push(key);
            }
        }
        let mut names = HashMap::new();
        let projection = projection(&scan.columns, &mut names);
        let mut rows = ColumnsBuilder::new(&scan.columns, wanted.len());
        for chunk in wanted.chunks(GET_ITEMS) {
            let mut pending: Vec<Item> = chunk.to_vec();
            let mut attempts = 0u32;
            while !pending.is_empty() {
                let ka = KeysAndAttributes::builder()
                    .set_keys(Some(pending.clone()))
                    .projection_expression(&projection)
                    .set_expression_attribute_names(Some(names.clone()))
                    .build()
                    .map_err(|e| Error::Internal(format!("{e}")))?;
                let out = self
                    .dynamo
                    .client
                    .batch_get_item()
                    .request_items(&scan.table, ka)
                    .send()
                    .await
                    .map_err(|e| store_error(&ctx, &e))?;
                for item in out
                    .responses()
                    .and_then(|m| m.get(&scan.table))
                    .into_iter()
                    .flatten()
                {
                    rows.push(item);
                }
                pending = out
                    .unprocessed_keys()
                    .and_then(|m| m.get(&scan.table))
                    .map(|k| k.keys().to_vec())
                    .unwrap_or_default();
                attempts += 1;
                if !pending.is_empty() {
                    if attempts > 12 {
                        return Err(Error::Store {
                            end: End::Target,
                            context: ctx,
                            message: format!(
                                "{} key(s) stayed unprocessed after {attempts} attempts",
                                pending.len()
                            ),
                            transient: true,
                        });
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(50 << attempts.min(6)))
                        .await;
                }
            }
        }
        rows.take()
            .ok_or_else(|| Error::Internal("looked-up items do not make a batch".into()))
    }
}

async fn send(rows: &mut ColumnsBuilder, out: &BatchTx) -> Result<()> {
    let batch = rows
        .take()
        .ok_or_else(|| Error::Internal("scanned items do not make a batch".into()))?;
    out.send(batch).await.map_err(|_| Error::Cancelled)
}
