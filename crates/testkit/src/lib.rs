//! Test support for tsmigrate.
//!
//! * [`PgCluster`] — a throwaway PostgreSQL server in a temporary directory,
//!   started per test and deleted on drop.
//! * [`thingsboard`] — builds ThingsBoard-shaped source databases (the
//!   partitioned `ts_kv` table, key dictionary, devices, assets, ...) with
//!   bulk telemetry generated server-side and, optionally, a catalogue of
//!   hostile values (NaN, 2^53+1, control characters, rows in the default
//!   partition, ...).
//! * [`fault_proxy`] — a TCP proxy on loopback that puts a network fault (a black hole, a
//!   stalled direction, a dropped connection) between a client and a real server.
//! * [`mem`] — in-memory fakes of a source, a sink and a ledger, for the engine's own logic.
//! * [`pgdump`] — pg_dump archives compressed with LZ4, Zstandard or gzip, synthesised
//!   from real uncompressed ones (the available pg_dump builds lack LZ4 and zstd).
//!
//! SQL is run through the `psql` command-line tool, so the kit needs no
//! database driver.

mod cluster;
mod error;
pub mod fault_proxy;
pub mod mem;
pub mod pgdump;
pub mod thingsboard;

pub use cluster::{find_bin_dir, has_extension_library, quote_ident, ClusterOptions, PgCluster};
pub use error::{Result, TestkitError};
pub use fault_proxy::{Direction, Fault, FaultProxy};
