//! File sources of tsmigrate. Today: Apache IoTDB's CSV exports ([`iotdb`] reads the format,
//! [`source`] is `[source] kind = "iotdb"`).

pub mod iotdb;
pub mod source;

pub use source::IotdbSource;
