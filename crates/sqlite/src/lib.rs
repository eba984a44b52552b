//! SQLite connector of tsmigrate. A libSQL / Turso database file is a SQLite file, so this
//! connector reads and writes both.
//!
//! - [`SqliteSource`]: reads tables in partitions (rowid ranges, or per series and time range
//!   when the plan names the table's series and time columns);
//! - [`SqliteSink`]: creates tables from the mapping and writes each partition in one
//!   transaction through a cached prepared statement, on one writer thread per file;
//! - [`SqliteLedger`]: the plan's ledger in the same file, recorded in each partition's own
//!   transaction;
//! - [`SqliteTableReader`]: reads written tables back for `verify`.

pub mod db;
pub mod ledger;
mod read;
pub mod reader;
pub mod sink;
pub mod source;
pub mod state_ledger;
pub mod values;
mod writer;

pub use db::Db;
pub use ledger::SqliteLedger;
pub use reader::SqliteTableReader;
pub use sink::SqliteSink;
pub use source::SqliteSource;
pub use state_ledger::StateLedger;
