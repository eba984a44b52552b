//! The DynamoDB connector of tsmigrate: a target for single-table designs.
//!
//! Streams of records are mapped by the plan into items (key templates, constant entity
//! types, renamed and converted attributes, TTL), written with parallel BatchWriteItem
//! requests that survive throttling ([`write`]), into a table created with its GSIs and TTL
//! when missing ([`table`]). The ledger is a local SQLite state file. `verify` reads the table
//! back with a parallel Scan ([`reader`]).

pub mod client;
pub mod item;
pub mod options;
pub mod reader;
pub mod sink;
pub mod table;
pub mod write;

pub use options::DynamoOptions;
pub use reader::DynamoReader;
pub use sink::DynamoSink;
