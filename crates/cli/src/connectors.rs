//! The registry of connectors: turns a plan endpoint's `kind` into a source or sink.

use std::sync::Arc;

use tsmigrate_core::{Endpoint, Error, Plan, Result, Sink, Source};

/// Source kinds this build supports.
pub const SOURCE_KINDS: [&str; 8] = [
    "thingsboard",
    "postgres",
    "postgresql",
    "sqlite",
    "pgdump",
    "iotdb",
    "parquet",
    "csv",
];
/// Target kinds this build supports.
pub const TARGET_KINDS: [&str; 7] = [
    "postgres",
    "postgresql",
    "timescaledb",
    "sqlite",
    "parquet",
    "csv",
    "dynamodb",
];

/// Opens the source named by `[source] kind`.
pub fn open_source(endpoint: &Endpoint) -> Result<Arc<dyn Source>> {
    match endpoint.kind.as_str() {
        "thingsboard" => Ok(Arc::new(tsmigrate_thingsboard::TbSource::open(endpoint)?)),
        "postgres" | "postgresql" => Ok(Arc::new(tsmigrate_postgres::PgSource::open(endpoint)?)),
        "sqlite" | "libsql" => Ok(Arc::new(tsmigrate_sqlite::SqliteSource::open(endpoint)?)),
        "pgdump" | "pg_dump" => Ok(Arc::new(tsmigrate_pgdump::PgDumpSource::open(endpoint)?)),
        "iotdb" => Ok(Arc::new(tsmigrate_files::IotdbSource::open(endpoint)?)),
        "parquet" | "csv" => Ok(Arc::new(tsmigrate_files::FileSource::open(endpoint)?)),
        other => Err(Error::Plan(format!(
            "[source] kind = {other:?} is not supported; supported kinds: {}",
            SOURCE_KINDS.join(", ")
        ))),
    }
}

/// Opens the sink of a `run` or `sync`: `[target] kind`, with `--compress` turned into the
/// target's `compress = true` (refused for targets that do not compress).
pub fn open_target(plan: &Plan, compress: bool) -> Result<Arc<dyn Sink>> {
    if !compress {
        return open_sink(&plan.target);
    }
    if plan.target.kind != "timescaledb" {
        return Err(Error::Plan(format!(
            "--compress compresses TimescaleDB hypertables, and the target is kind = {:?}",
            plan.target.kind
        )));
    }
    let mut target = plan.target.clone();
    target
        .options
        .insert("compress".into(), toml::Value::Boolean(true));
    open_sink(&target)
}

/// Opens the sink named by `[target] kind`.
pub fn open_sink(endpoint: &Endpoint) -> Result<Arc<dyn Sink>> {
    match endpoint.kind.as_str() {
        "postgres" | "postgresql" | "timescaledb" => {
            Ok(Arc::new(tsmigrate_postgres::PgSink::open(endpoint)?))
        }
        "sqlite" | "libsql" => Ok(Arc::new(tsmigrate_sqlite::SqliteSink::open(endpoint)?)),
        "parquet" | "csv" => Ok(Arc::new(tsmigrate_files::FileSink::open(endpoint)?)),
        "dynamodb" => Ok(Arc::new(tsmigrate_dynamodb::DynamoSink::open(endpoint)?)),
        other => Err(Error::Plan(format!(
            "[target] kind = {other:?} is not supported; supported kinds: {}",
            TARGET_KINDS.join(", ")
        ))),
    }
}
