//! What the engine has to say while it works — setup steps, the streams as prepared,
//! retries, partitions written again — as events handed to its caller, who decides what to
//! do with them: the CLI prints them, a program embedding the engine can log or ignore
//! them. The engine itself never prints.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tsmigrate_core::SetupPhase;

use crate::error::EngineError;
use crate::stream::PreparedStream;

/// Something that happened.
pub enum Event<'a> {
    /// A step of the target's setup files (`phase`): applied, or found applied.
    Setup {
        /// Before or after the streams.
        phase: SetupPhase,
        /// What was done.
        line: &'a str,
    },
    /// The streams of a run or sync round are prepared; their partitions start.
    Prepared {
        /// The run's id in the ledger (none in a dry run or without a ledger).
        run_id: Option<i64>,
        /// True for a dry run.
        dry_run: bool,
        /// The streams, their counters live from now on.
        streams: &'a [Arc<PreparedStream>],
    },
    /// The partitions have all ended (committed, or the run stopped).
    Executed,
    /// A partition failed with a transient error; everything it wrote was rolled back, and
    /// it is written again after `delay`.
    RetryingPartition {
        /// Stream.
        stream: &'a str,
        /// Partition.
        partition: &'a str,
        /// The failure.
        error: &'a EngineError,
        /// The wait before the next attempt.
        delay: Duration,
        /// This retry's number (from 1).
        attempt: u32,
        /// Retries allowed.
        retries: u32,
    },
    /// A phase (`what`: "opening the ledger", "preparing the streams", …) failed with a
    /// transient error, and is tried again whole after `delay`.
    Retrying {
        /// What is retried.
        what: &'a str,
        /// The failure.
        error: &'a EngineError,
        /// The wait before the next attempt.
        delay: Duration,
        /// This retry's number (from 1).
        attempt: u32,
        /// Retries allowed.
        retries: u32,
    },
    /// A partition is written again, isolating the rows the target refuses (they are then
    /// rejected, not fatal to the run).
    Isolating {
        /// Stream.
        stream: &'a str,
        /// Partition.
        partition: &'a str,
        /// The refusal.
        error: &'a EngineError,
    },
    /// The connection was lost at commit, and the ledger shows the partition committed: it
    /// is not written again.
    CommittedBeforeLoss {
        /// Stream.
        stream: &'a str,
        /// Partition.
        partition: &'a str,
    },
    /// Something went wrong that does not change the outcome (the end of a run or a
    /// verification could not be recorded in the ledger).
    Warning(String),
}

/// Receives the engine's events.
#[async_trait]
pub trait Events: Send + Sync {
    /// Called for each event, in the order they happen (from several workers at once).
    async fn event(&self, event: Event<'_>);
}

/// Ignores every event.
pub struct Silent;

#[async_trait]
impl Events for Silent {
    async fn event(&self, _event: Event<'_>) {}
}

/// The events of a caller that wants none.
pub fn silent() -> Arc<dyn Events> {
    Arc::new(Silent)
}
