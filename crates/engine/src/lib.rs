//! Engine of tsmigrate: prepares the streams of a plan, splits them into partitions, runs
//! `jobs` partitions at once through bounded `read → map → convert → write` pipelines, commits
//! each partition atomically, accounts for every row (written, rejected into a rejects file,
//! or rolled back) and reports.

pub mod aggregate;
pub mod cancel;
pub mod counters;
pub mod lookup;
pub mod pivot;
pub mod points_table;
pub mod rejects;
pub mod report;
pub mod retry;
pub mod run;
pub mod series_rows;
pub mod unpivot;
pub mod verify;
pub mod watermark;

pub use cancel::Cancel;
pub use counters::StreamCounters;
pub use report::{RunReport, StreamReport};
pub use retry::{retry_phase, RetryPolicy};
pub use run::{
    execute, now_us, prepare, report, run_report, EngineError, EngineOptions, PreparedStream,
    SyncRound, SYNC_PREFIX,
};
pub use verify::{verify_plan, StreamVerify, VerifyOptions, VerifyReport};
