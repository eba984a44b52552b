//! The errors that stop a run, sync round or verify: a core error (plan, mapping, store),
//! too many rejected rows, or Ctrl-C.

use thiserror::Error;

/// Errors that stop a run.
#[derive(Debug, Error)]
pub enum EngineError {
    /// A plan, mapping, connection or store error.
    #[error(transparent)]
    Core(#[from] tsmigrate_core::Error),
    /// More rows were rejected than `--max-rejects` allows.
    #[error("{0}")]
    TooManyRejects(Box<RejectStop>),
    /// Ctrl-C.
    #[error("interrupted: partitions in flight were rolled back; committed partitions stay in the target")]
    Interrupted,
}

/// The rejected row that made the run stop.
#[derive(Debug, Error)]
#[error(
    "stream `{stream}`, partition {partition}: row ({key}) rejected{column}: {reason}\n\
     {total} row(s) rejected, more than --max-rejects {max}: the run stopped and the partitions in flight were rolled back. \
     Rejected rows are listed in {file}. Fix the mapping (or allow the loss in the plan), or raise --max-rejects to go on past bad rows."
)]
pub struct RejectStop {
    /// Stream.
    pub stream: String,
    /// Partition.
    pub partition: String,
    /// The row's key.
    pub key: String,
    /// `, column `x`` or empty.
    pub column: String,
    /// Why.
    pub reason: String,
    /// Rejected so far.
    pub total: u64,
    /// The limit.
    pub max: u64,
    /// Rejects file.
    pub file: String,
}
