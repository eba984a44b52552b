//! In-memory fakes of a source, a sink and a ledger, for testing the engine's own logic —
//! retries, a commit whose answer was lost, rows a target refuses, `--max-rejects`, dry
//! runs — without a server. They are fakes of the *contract* (the traits of
//! `tsmigrate_core`), not of any store: a store's behaviour is tested against the real store.
//!
//! [`MemSource`] serves rows given as `(series, time, value)` triples in partitions of fixed
//! size; [`MemSink`] keeps what committed partitions wrote, per table, and fails on command
//! ([`Fault`]); [`MemLedger`] is the ledger, recording a partition inside the sink's commit
//! as a transactional target does.

mod ledger;
mod sink;
mod source;

pub use ledger::{MemLedger, MemRecorded};
pub use sink::{Fault, MemSink};
pub use source::MemSource;
