//! Writing a partition so that a row PostgreSQL refuses is rejected, not fatal.
//!
//! A partition is one `COPY` in one transaction ([`crate::sink`]): fast, but one value the
//! server will not take (a check or foreign-key constraint, a JSON nested deeper than its
//! parser's stack, anything the conversion rules did not foresee) aborts it, and the error
//! names no row the engine still holds. Such an error ([`is_refusal`]) fails the attempt with
//! [`Error::RowRefused`]; the engine then writes the partition again through
//! [`IsolatingWriter`]: one `COPY` per batch inside a savepoint, and a batch that fails is
//! rolled back to its savepoint and cut in halves, again and again, until the refused rows
//! stand alone and are rejected with the server's reason. Slower (a round trip per batch, and
//! log₂(batch) more per refused row), so only after a refusal.

use bytes::Bytes;
use futures_util::SinkExt;
use tokio_postgres::Client;
use tsmigrate_core::{
    taken_over, Batch, CommitInfo, ConnString, End, Error, PartitionCommit, PartitionWriter,
    Result, RowError, WriteOutcome,
};

use crate::codec::{encode_batch, write_header, write_trailer, PgType};
use crate::connect::{describe, store_error};
use crate::ledger::{record_commit, LedgerPlace, Recorded};

/// True for an error that a row caused: a data exception (SQLSTATE class 22), an integrity
/// constraint (class 23), or a statement too complex for the server (54001, stack depth).
pub fn is_refusal(e: &tokio_postgres::Error) -> bool {
    e.code()
        .map(|c| c.code())
        .is_some_and(|c| c.starts_with("22") || c.starts_with("23") || c == "54001")
}

/// A driver error as the error the engine acts on: a row refusal, or a store error.
pub fn write_error(context: &str, e: &tokio_postgres::Error, url: &ConnString) -> Error {
    if is_refusal(e) {
        Error::RowRefused {
            end: End::Target,
            context: context.to_string(),
            message: describe(e, url),
        }
    } else {
        store_error(End::Target, context, e, url)
    }
}

/// What finishes a partition's transaction: the merge of `skip`/`upsert`, the ledger entry,
/// `COMMIT` — shared by both writers.
pub(crate) struct Finish {
    pub client: Client,
    pub url: ConnString,
    pub context: String,
    /// The lock taken before `merge`, if it needs one (`skip` without a unique key).
    pub merge_lock: Option<String>,
    /// Staging → table statement of `skip` and `upsert`.
    pub merge: Option<String>,
    pub table: String,
    pub ledger: Option<LedgerPlace>,
}

impl Finish {
    /// Rolls the transaction back; the connection is dropped after, so a failure here
    /// (the server gone) leaves nothing behind either.
    async fn rollback(&self) {
        let _ = self.client.batch_execute("ROLLBACK").await;
    }

    /// Moves staged rows (when staging), records the partition in the ledger, commits.
    pub async fn commit(self, copied: u64, ledger: Option<&PartitionCommit>) -> Result<CommitInfo> {
        let fail = |what: &str, e: &tokio_postgres::Error| {
            write_error(&format!("{}{what}", self.context), e, &self.url)
        };
        if let Some(lock) = &self.merge_lock {
            self.client
                .batch_execute(lock)
                .await
                .map_err(|e| fail(": locking the table for the merge", &e))?;
        }
        let written = match &self.merge {
            Some(sql) => self
                .client
                .execute(sql.as_str(), &[])
                .await
                .map_err(|e| fail(": moving staged rows into the table", &e))?,
            None => copied,
        };
        let mut recorded = false;
        if let (Some(commit), Some(place)) = (ledger, &self.ledger) {
            let found = record_commit(&self.client, place, commit, &self.table, written)
                .await
                .map_err(|e| fail(": recording the partition in the ledger", &e))?;
            match found {
                Recorded::Fresh => recorded = true,
                // This run's COMMIT landed before, its answer was lost: the rows are in.
                Recorded::DoneByThisRun(rows) => {
                    self.rollback().await;
                    return Ok(CommitInfo {
                        written: rows,
                        skipped: 0,
                        recorded: true,
                    });
                }
                Recorded::DoneByOther => {
                    self.rollback().await;
                    return Err(Error::Store {
                        end: End::Target,
                        context: self.context.clone(),
                        message: "the ledger says another run already committed this partition; this attempt was rolled back so its rows are not written twice".into(),
                        transient: false,
                    });
                }
                Recorded::TakenOver => {
                    self.rollback().await;
                    return Err(taken_over(&place.plan_id));
                }
            }
        }
        self.client
            .batch_execute("COMMIT")
            .await
            .map_err(|e| fail(": COMMIT", &e))?;
        Ok(CommitInfo {
            written,
            skipped: copied.saturating_sub(written),
            recorded,
        })
    }
}

/// One partition's transaction, one `COPY` per batch in a savepoint, refused rows isolated.
pub(crate) struct IsolatingWriter {
    pub finish: Finish,
    /// `COPY <table or stage> (<columns>) FROM STDIN (FORMAT binary)`.
    pub copy: String,
    pub types: Vec<PgType>,
    /// Rows copied so far.
    pub copied: u64,
}

impl IsolatingWriter {
    /// Copies the rows of `batch` that `rows` selects in a savepoint: `Ok(Ok(bytes))`, or
    /// `Ok(Err(reason))` when the server refused them (rolled back to the savepoint).
    async fn copy(
        &self,
        batch: &Batch,
        rows: &[usize],
    ) -> Result<std::result::Result<u64, String>> {
        let ctx = &self.finish.context;
        let url = &self.finish.url;
        let client = &self.finish.client;
        let mut mask = vec![false; batch.len()];
        for r in rows {
            mask[*r] = true;
        }
        let sub = batch.filter(&mask);
        let mut buf = Vec::with_capacity(sub.byte_size() + 64);
        write_header(&mut buf);
        // Values the encoder refuses were rejected by the first attempt already.
        let _ = encode_batch(&sub, &self.types, &mut buf);
        write_trailer(&mut buf);
        let bytes = buf.len() as u64;
        client
            .batch_execute("SAVEPOINT tsm_rows")
            .await
            .map_err(|e| store_error(End::Target, ctx, &e, url))?;
        let copied = crate::stall::within(
            async {
                let sink = client.copy_in::<_, Bytes>(self.copy.as_str()).await?;
                let mut sink = std::pin::pin!(sink);
                sink.send(Bytes::from(buf)).await?;
                sink.as_mut().finish().await
            },
            End::Target,
            ctx,
            "copying a batch",
        )
        .await?;
        match copied {
            Ok(_) => {
                client
                    .batch_execute("RELEASE SAVEPOINT tsm_rows")
                    .await
                    .map_err(|e| store_error(End::Target, ctx, &e, url))?;
                Ok(Ok(bytes))
            }
            Err(e) if is_refusal(&e) => {
                client
                    .batch_execute("ROLLBACK TO SAVEPOINT tsm_rows")
                    .await
                    .map_err(|e| store_error(End::Target, ctx, &e, url))?;
                Ok(Err(e
                    .as_db_error()
                    .map(|d| d.message().to_string())
                    .unwrap_or_else(|| describe(&e, url))))
            }
            Err(e) => Err(store_error(End::Target, ctx, &e, url)),
        }
    }
}

#[async_trait::async_trait]
impl PartitionWriter for IsolatingWriter {
    async fn write(&mut self, batch: &Batch) -> Result<WriteOutcome> {
        // Rows the encoder refuses (NUL in text, timestamps out of range) are rejected first.
        let mut scratch = Vec::new();
        let mut rejected: Vec<RowError> = encode_batch(batch, &self.types, &mut scratch);
        let bad: std::collections::HashSet<usize> = rejected.iter().map(|e| e.row).collect();
        let mut pending: Vec<Vec<usize>> =
            vec![(0..batch.len()).filter(|r| !bad.contains(r)).collect()];
        let mut bytes = 0;
        while let Some(rows) = pending.pop() {
            if rows.is_empty() {
                continue;
            }
            match self.copy(batch, &rows).await? {
                Ok(b) => {
                    bytes += b;
                    self.copied += rows.len() as u64;
                }
                Err(reason) if rows.len() == 1 => rejected.push(RowError {
                    row: rows[0],
                    column: None,
                    reason: format!("the target refused the row: {reason}"),
                }),
                Err(_) => {
                    let (a, b) = rows.split_at(rows.len() / 2);
                    pending.push(b.to_vec());
                    pending.push(a.to_vec());
                }
            }
        }
        rejected.sort_by_key(|e| e.row);
        Ok(WriteOutcome { bytes, rejected })
    }

    async fn commit(self: Box<Self>, ledger: Option<&PartitionCommit>) -> Result<CommitInfo> {
        let copied = self.copied;
        self.finish.commit(copied, ledger).await
    }

    async fn abort(self: Box<Self>) -> Result<()> {
        // Dropping the connection makes the server roll the transaction back.
        drop(self);
        Ok(())
    }
}
