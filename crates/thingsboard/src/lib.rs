//! ThingsBoard source of tsmigrate.
//!
//! Reads ThingsBoard's PostgreSQL database directly, or a pg_dump backup of it, in both
//! schema generations (≤ 3.6 with `ts_kv_dictionary` and text-keyed attributes, ≥ 3.7 with
//! `key_dictionary`): `telemetry` (`ts_kv`, every partition, the default `ts_kv_indefinite`
//! included), `latest` (`ts_kv_latest`), `attributes` (`attribute_kv`) — keys resolved to
//! names, each row's entity type found from the entity tables — and the entity tables as
//! record streams (devices, assets, customers, tenants, profiles, entity views, relations).
//! Each value column (`bool_v`, `str_v`, `long_v`, `dbl_v`, `json_v`) keeps its type; `ts` is
//! epoch milliseconds as ThingsBoard stores it.

pub mod catalog;
pub mod dump;
pub mod enrich;
pub mod entity_types;
pub mod keys;
pub mod partitioning;
mod read;
pub mod source;
pub mod streams;
pub mod telemetry;

pub use source::TbSource;
pub use streams::{telemetry_schema, STREAMS};
