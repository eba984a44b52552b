//! Reading a query's result through binary `COPY (…) TO STDOUT` into batches; a stream that
//! sends nothing for the stall timeout ([`crate::stall`]) fails with a transient error.

use std::sync::Arc;

use futures_util::StreamExt;
use tokio_postgres::Client;
use tsmigrate_core::{Batch, BatchTx, ConnString, End, Error, Result, Schema};

use crate::codec::{CopyDecoder, PgType};
use crate::connect::store_error;
use crate::stall;

/// Runs `COPY (query) TO STDOUT (FORMAT binary)`, decodes the tuples (of `types`, named by
/// `schema`) into batches of `batch_rows`, passes each through `transform` and sends it to
/// `out`. Returns the number of rows read. `context` names the stream and partition in errors.
/// Waiting for the server's data is bounded by the stall timeout; waiting for `out` (the
/// writer's back-pressure) is not.
#[allow(clippy::too_many_arguments)]
pub async fn copy_out_batches(
    client: &Client,
    url: &ConnString,
    query: &str,
    schema: Arc<Schema>,
    types: Vec<PgType>,
    batch_rows: usize,
    context: &str,
    mut transform: impl FnMut(Batch) -> Result<Batch> + Send,
    out: &BatchTx,
) -> Result<u64> {
    let sql = format!("COPY ({query}) TO STDOUT (FORMAT binary)");
    let started = client.copy_out(sql.as_str());
    let stream = stall::within(started, End::Source, context, "starting COPY")
        .await?
        .map_err(|e| store_error(End::Source, context, &e, url))?;
    let mut stream = std::pin::pin!(stream);
    let mut decoder = CopyDecoder::new(schema, types, batch_rows);
    let mut ready = Vec::new();
    let mut rows = 0u64;
    while let Some(chunk) =
        stall::within(stream.next(), End::Source, context, "reading COPY data").await?
    {
        let chunk = chunk.map_err(|e| store_error(End::Source, context, &e, url))?;
        decoder
            .feed(&chunk, &mut ready)
            .map_err(|m| Error::Decode {
                end: End::Source,
                context: context.to_string(),
                message: m,
            })?;
        for batch in ready.drain(..) {
            rows += batch.len() as u64;
            out.send(transform(batch)?)
                .await
                .map_err(|_| Error::Cancelled)?;
        }
    }
    let last = decoder.finish().map_err(|m| Error::Decode {
        end: End::Source,
        context: context.to_string(),
        message: m,
    })?;
    if let Some(batch) = last {
        rows += batch.len() as u64;
        out.send(transform(batch)?)
            .await
            .map_err(|_| Error::Cancelled)?;
    }
    Ok(rows)
}
