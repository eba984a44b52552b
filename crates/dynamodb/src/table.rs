//! The table: created as the plan describes it (keys, GSIs, billing, TTL) when missing, or
//! checked against the plan when it exists.

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, IndexStatus, KeySchemaElement,
    KeyType as DynKeyType, Projection as DynProjection, ProjectionType, ProvisionedThroughput,
    ScalarAttributeType, TableDescription, TableStatus, TimeToLiveSpecification, TimeToLiveStatus,
};
use tsmigrate_core::{End, Error, Result};

use crate::client::{is_not_found, store_error, Dynamo};
use crate::options::{Billing, DynamoOptions, IndexSpec, KeyType, Projection};

/// How long a new table (and its indexes) may take to become ACTIVE.
const ACTIVE_TIMEOUT: Duration = Duration::from_secs(600);

fn built<T>(r: std::result::Result<T, aws_sdk_dynamodb::error::BuildError>) -> Result<T> {
    r.map_err(|e| Error::Internal(format!("a DynamoDB request could not be built: {e}")))
}

fn scalar(t: KeyType) -> ScalarAttributeType {
    match t {
        KeyType::S => ScalarAttributeType::S,
        KeyType::N => ScalarAttributeType::N,
        KeyType::B => ScalarAttributeType::B,
    }
}

fn key_schema(partition: &str, sort: Option<&str>) -> Result<Vec<KeySchemaElement>> {
    let mut out = vec![built(
        KeySchemaElement::builder()
            .attribute_name(partition)
            .key_type(DynKeyType::Hash)
            .build(),
    )?];
    if let Some(s) = sort {
        out.push(built(
            KeySchemaElement::builder()
                .attribute_name(s)
                .key_type(DynKeyType::Range)
                .build(),
        )?);
    }
    Ok(out)
}

/// The table's description, or `None` when it does not exist.
pub async fn describe(dynamo: &Dynamo, table: &str) -> Result<Option<TableDescription>> {
    match dynamo
        .client
        .describe_table()
        .table_name(table)
        .send()
        .await
    {
        Ok(out) => Ok(out.table),
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => Err(store_error(&format!("DescribeTable {table}"), &e)),
    }
}

/// What creating the table would do, in words (for `check` and dry runs).
pub fn creation_text(opts: &DynamoOptions, table: &str) -> String {
    let key = |p: &str, s: Option<&str>| match s {
        Some(s) => format!(
            "{p} ({}) + {s} ({})",
            opts.key_type(p).name(),
            opts.key_type(s).name()
        ),
        None => format!("{p} ({})", opts.key_type(p).name()),
    };
    let mut out = format!(
        "CreateTable {table}: key {}; {}",
        key(&opts.partition_key, opts.sort_key.as_deref()),
        match opts.billing {
            Billing::OnDemand => "on demand".to_string(),
            Billing::Provisioned { read, write } => format!("provisioned {read} RCU / {write} WCU"),
        }
    );
    for ix in &opts.indexes {
        out.push_str(&format!(
            "; GSI {} on {}",
            ix.name,
            key(&ix.partition_key, ix.sort_key.as_deref())
        ));
    }
    if let Some(ttl) = &opts.ttl {
        out.push_str(&format!("; TTL on `{ttl}`"));
    }
    out
}

/// Creates the table with its indexes and waits until it and they are ACTIVE.
pub async fn create(dynamo: &Dynamo, opts: &DynamoOptions, table: &str) -> Result<()> {
    let mut defs = Vec::new();
    for a in opts.key_attributes() {
        defs.push(built(
            AttributeDefinition::builder()
                .attribute_name(a)
                .attribute_type(scalar(opts.key_type(a)))
                .build(),
        )?);
    }
    let mut req = dynamo
        .client
        .create_table()
        .table_name(table)
        .set_attribute_definitions(Some(defs))
        .set_key_schema(Some(key_schema(
            &opts.partition_key,
            opts.sort_key.as_deref(),
        )?));
    req = match opts.billing {
        Billing::OnDemand => req.billing_mode(BillingMode::PayPerRequest),
        Billing::Provisioned { read, write } => req
            .billing_mode(BillingMode::Provisioned)
            .provisioned_throughput(throughput(read, write)?),
    };
    for ix in &opts.indexes {
        req = req.global_secondary_indexes(index(ix)?);
    }
    req.send()
        .await
        .map_err(|e| store_error(&format!("CreateTable {table}"), &e))?;
    wait_active(dynamo, table).await
}

fn throughput(read: i64, write: i64) -> Result<ProvisionedThroughput> {
    built(
        ProvisionedThroughput::builder()
            .read_capacity_units(read)
            .write_capacity_units(write)
            .build(),
    )
}

fn index(ix: &IndexSpec) -> Result<GlobalSecondaryIndex> {
    let projection = match &ix.projection {
        Projection::All => DynProjection::builder()
            .projection_type(ProjectionType::All)
            .build(),
        Projection::KeysOnly => DynProjection::builder()
            .projection_type(ProjectionType::KeysOnly)
            .build(),
        Projection::Include(attrs) => DynProjection::builder()
            .projection_type(ProjectionType::Include)
            .set_non_key_attributes(Some(attrs.clone()))
            .build(),
    };
    let mut b = GlobalSecondaryIndex::builder()
        .index_name(&ix.name)
        .set_key_schema(Some(key_schema(&ix.partition_key, ix.sort_key.as_deref())?))
        .projection(projection);
    if let Some((r, w)) = ix.capacity {
        b = b.provisioned_throughput(throughput(r, w)?);
    }
    built(b.build())
}

async fn wait_active(dynamo: &Dynamo, table: &str) -> Result<()> {
    let started = Instant::now();
    loop {
        if let Some(d) = describe(dynamo, table).await? {
            let table_active = d.table_status() == Some(&TableStatus::Active);
            let indexes_active = d
                .global_secondary_indexes()
                .iter()
                .all(|g| g.index_status().is_none_or(|s| *s == IndexStatus::Active));
            if table_active && indexes_active {
                return Ok(());
            }
        }
        if started.elapsed() > ACTIVE_TIMEOUT {
            return Err(Error::Store {
                end: End::Target,
                context: format!("CreateTable {table}"),
                message: format!(
                    "the table (or one of its indexes) was not ACTIVE after {} s; run again when it is",
                    ACTIVE_TIMEOUT.as_secs()
                ),
                transient: true,
            });
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn keys_of(schema: &[KeySchemaElement]) -> (Option<&str>, Option<&str>) {
    let find = |t: DynKeyType| {
        schema
            .iter()
            .find(|k| *k.key_type() == t)
            .map(|k| k.attribute_name())
    };
    (find(DynKeyType::Hash), find(DynKeyType::Range))
}

/// Checks an existing table against the plan: the same keys (names and types) and every
/// index the plan names, with the same keys. Returns facts for the notes.
pub fn check_existing(
    opts: &DynamoOptions,
    table: &str,
    d: &TableDescription,
) -> Result<Vec<String>> {
    let ctx = format!("DynamoDB table {table}");
    let (pk, sk) = keys_of(d.key_schema());
    if pk != Some(opts.partition_key.as_str()) || sk != opts.sort_key.as_deref() {
        return Err(Error::Plan(format!(
            "{ctx} exists with key {} + {}, and the plan says {} + {}; set [target] partition_key/sort_key to the table's, or choose another table",
            pk.unwrap_or("?"),
            sk.unwrap_or("(no sort key)"),
            opts.partition_key,
            opts.sort_key.as_deref().unwrap_or("(no sort key)")
        )));
    }
    for def in d.attribute_definitions() {
        let name = def.attribute_name();
        if !opts.key_attributes().contains(&name) {
            continue;
        }
        let want = scalar(opts.key_type(name));
        if *def.attribute_type() != want {
            return Err(Error::Plan(format!(
                "{ctx}: key attribute `{name}` is of type {} in the table and {} in the plan; set [target] attribute_types.{name} = \"{}\"",
                def.attribute_type().as_str(),
                want.as_str(),
                def.attribute_type().as_str()
            )));
        }
    }
    let existing = d.global_secondary_indexes();
    for ix in &opts.indexes {
        let Some(g) = existing
            .iter()
            .find(|g| g.index_name() == Some(ix.name.as_str()))
        else {
            return Err(Error::Plan(format!(
                "{ctx} exists without the index {} that the plan names; add it (UpdateTable) or remove it from [target.indexes]",
                ix.name
            )));
        };
        let (p, s) = keys_of(g.key_schema());
        if p != Some(ix.partition_key.as_str()) || s != ix.sort_key.as_deref() {
            return Err(Error::Plan(format!(
                "{ctx}: index {} has key {} + {}, and the plan says {} + {}",
                ix.name,
                p.unwrap_or("?"),
                s.unwrap_or("(no sort key)"),
                ix.partition_key,
                ix.sort_key.as_deref().unwrap_or("(no sort key)")
            )));
        }
    }
    let mut notes = vec![format!(
        "{ctx} exists (about {} items, as DynamoDB last counted them)",
        d.item_count().unwrap_or(0)
    )];
    let extra: Vec<&str> = existing
        .iter()
        .filter_map(|g| g.index_name())
        .filter(|n| !opts.indexes.iter().any(|ix| ix.name == *n))
        .collect();
    if !extra.is_empty() {
        notes.push(format!(
            "{ctx} also has index(es) the plan does not name: {}",
            extra.join(", ")
        ));
    }
    Ok(notes)
}

/// Enables TTL on the plan's attribute unless it already is; `dry_run` only says what it
/// would do. A table with TTL on another attribute is refused (DynamoDB allows one).
pub async fn ensure_ttl(
    dynamo: &Dynamo,
    opts: &DynamoOptions,
    table: &str,
    dry_run: bool,
) -> Result<Option<String>> {
    let Some(attr) = &opts.ttl else {
        return Ok(None);
    };
    let ctx = format!("DescribeTimeToLive {table}");
    let out = dynamo
        .client
        .describe_time_to_live()
        .table_name(table)
        .send()
        .await
        .map_err(|e| store_error(&ctx, &e))?;
    let desc = out.time_to_live_description();
    let status = desc.and_then(|d| d.time_to_live_status());
    let current = desc.and_then(|d| d.attribute_name());
    let on = matches!(
        status,
        Some(TimeToLiveStatus::Enabled) | Some(TimeToLiveStatus::Enabling)
    );
    if on {
        if current == Some(attr.as_str()) {
            return Ok(Some(format!("TTL is on, on `{attr}`")));
        }
        return Err(Error::Plan(format!(
            "DynamoDB table {table} has TTL on `{}`, and the plan asks for `{attr}`; a table has one TTL attribute: \
             set [target] ttl = \"{}\" or turn TTL off on the table first",
            current.unwrap_or("?"),
            current.unwrap_or("?")
        )));
    }
    if dry_run {
        return Ok(Some(format!("would turn TTL on, on `{attr}`")));
    }
    let spec = built(
        TimeToLiveSpecification::builder()
            .enabled(true)
            .attribute_name(attr)
            .build(),
    )?;
    dynamo
        .client
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(spec)
        .send()
        .await
        .map_err(|e| store_error(&format!("UpdateTimeToLive {table}"), &e))?;
    Ok(Some(format!("turned TTL on, on `{attr}`")))
}
