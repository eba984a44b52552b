//! ThingsBoard source of tsmigrate.
//!
//! Reads ThingsBoard's PostgreSQL database directly: the `telemetry` stream is `ts_kv` (every
//! partition, the default `ts_kv_indefinite` included) with key ids resolved through
//! `key_dictionary` (ThingsBoard ≥ 3.7) or `ts_kv_dictionary` (≤ 3.6); `devices` and `assets`
//! are the entity tables. Each value column (`bool_v`, `str_v`, `long_v`, `dbl_v`, `json_v`)
//! keeps its type; `ts` is epoch milliseconds as ThingsBoard stores it.

pub mod catalog;
pub mod dump;
pub mod partitioning;
pub mod source;

pub use source::{entity_schema, telemetry_schema, TbSource, STREAMS};
