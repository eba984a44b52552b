//! File connectors of tsmigrate:
//!
//! - `[source] kind = "iotdb"`: Apache IoTDB's CSV exports ([`iotdb`] reads the format,
//!   [`source`] is the source);
//! - `[source]`/`[target] kind = "parquet"` and `"csv"`: a directory per stream of Parquet or
//!   CSV files ([`parquet_format`] and [`csv_format`] read and write the formats, with
//!   [`rfc4180`] splitting CSV records,
//!   [`sink`] writes them a partition per file, [`table`] reads them back as a source and
//!   for `verify`).

pub mod csv_format;
mod error;
pub mod iotdb;
pub mod ledger;
pub mod listing;
pub mod parquet_format;
pub mod rfc4180;
pub mod sink;
pub mod source;
pub mod table;

pub use sink::FileSink;
pub use source::IotdbSource;
pub use table::FileSource;
