//! Engine of tsmigrate: prepares the streams of a plan, splits them into partitions, runs
//! `jobs` partitions at once through bounded `read → map → convert → write` pipelines, commits
//! each partition atomically, accounts for every row (written, rejected into a rejects file,
//! or rolled back) and reports.

pub mod aggregate;
pub mod cancel;
pub mod compile;
pub mod counters;
pub mod error;
pub mod events;
pub mod execute;
pub mod keys;
pub mod lookup;
pub mod migration;
pub mod options;
pub mod pivot;
pub mod points_table;
pub mod prepare;
pub mod rejects;
pub mod report;
pub mod resume;
pub mod retry;
pub mod rollback;
pub mod series_rows;
pub mod stream;
pub mod target_rows;
pub mod unpivot;
pub mod verify;
pub mod watermark;
mod worker;

pub use cancel::Cancel;
pub use counters::StreamCounters;
pub use error::{EngineError, RejectStop};
pub use events::{silent, Event, Events, Silent};
pub use execute::execute;
pub use migration::{open_ledger, Migration, Outcome};
pub use options::{now_rfc3339, now_us, EngineOptions, SyncRound, SYNC_PREFIX};
pub use prepare::prepare;
pub use report::{report, run_report};
pub use report::{RunReport, StreamReport};
pub use retry::{retry_phase, RetryPolicy};
pub use stream::PreparedStream;
pub use verify::{verify_plan, StreamVerify, VerifyOptions, VerifyReport};
