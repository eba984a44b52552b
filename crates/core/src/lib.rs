//! Core of tsmigrate: the logical types and columnar batches every connector speaks, the plan
//! file, checked conversions, column mappings compiled from SQL expressions, and the
//! [`Source`]/[`Sink`] traits connectors implement.

pub mod batch;
pub mod column;
pub mod connector;
pub mod convert;
pub mod decimal;
pub mod digest;
pub mod error;
pub mod human;
pub mod ledger;
pub mod limits;
pub mod mapping;
pub mod plan;
pub mod secret;
pub mod types;

pub use batch::{Batch, Field, Schema, MAX_BATCH_BYTES};
pub use column::{Column, ColumnData, StrBuf, ValueRef};
pub use connector::{
    BatchTx, CommitInfo, CompressionSizes, FinishReport, LateReject, Partition, PartitionWriter,
    PreparedTarget, ReadOptions, ScanRange, SeriesInfo, SetupPhase, Sink, Source, StreamInfo,
    SyncFloors, TableReader, TableScan, TargetColumn, TargetRequest, WriteOutcome,
};
pub use convert::{Lossy, LossyCounts, RowError, RowErrors};
pub use error::{End, Error, Result};
pub use ledger::{
    claimed_by_other, taken_over, Ledger, LedgerPartition, LedgerStream, PartitionCommit,
    PartitionState, RollbackOutcome, RunRecord, VerificationRecord,
};
pub use limits::ColumnLimits;
pub use plan::{
    check_run_sizes, parse_duration, parse_time_us, AggregateSpec, ColumnSpec, Endpoint,
    LedgerOptions, LookupSpec, PivotSpec, Plan, PointSpec, PointsTable, RunOptions,
    SourceTableOptions, StreamFilter, StreamSpec, SyncOptions, UnitSpec, Unmatched, UnpivotSpec,
    WriteMode,
};
pub use secret::ConnString;
pub use types::{DataType, TimeUnit};
