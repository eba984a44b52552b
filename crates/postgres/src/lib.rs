//! PostgreSQL connector of tsmigrate: connections (with redacted errors), our binary COPY
//! column codec, a COPY-out reader used by PostgreSQL-backed sources, the PostgreSQL source
//! (any table or view), the PostgreSQL sink, and the table reader `verify` reads a PostgreSQL
//! target back with.

mod catalog;
mod chunks;
pub mod codec;
pub mod connect;
pub mod conninfo;
pub mod copy_out;
pub mod hypertable;
mod isolate;
pub mod ledger;
mod lookup;
pub mod reader;
pub mod setup;
pub mod sink;
pub mod source;
pub mod stall;
pub mod timescale;
pub mod tls;

pub use codec::{CopyDecoder, PgType};
pub use connect::{
    check_plan_names, check_table, connect, int8_literal, parse_table, quote_ident, quote_literal,
    quote_table, quote_table_checked, split_table, store_error,
};
pub use copy_out::copy_out_batches;
pub use ledger::PgLedger;
pub use reader::PgTableReader;
pub use sink::PgSink;
pub use source::PgSource;
pub use stall::{set_stall_timeout, stall_timeout, DEFAULT_STALL_TIMEOUT};
