//! The streams the ThingsBoard source offers and their columns, the same for every
//! ThingsBoard generation (columns a generation lacks, such as v4's `version`, read as NULL).
//!
//! - `telemetry` (`ts_kv`), `latest` (`ts_kv_latest`): key ids resolved to names, an
//!   `entity_type` column;
//! - `attributes` (`attribute_kv`): scope and key as names in both generations (v3.6.4 stores
//!   them as text, v4.3.1.3 as ids), an `entity_type` column;
//! - record streams, one row per table row: `devices`, `assets`, `customers`, `tenants`,
//!   `device_profiles`, `asset_profiles`, `entity_views`, `relations` ([`RECORDS`]).
//!
//! Column facts follow `dao/src/main/resources/sql/schema-entities.sql` of v3.6.4 and
//! v4.3.1.3.

use std::sync::Arc;

use tsmigrate_core::{DataType, Field, Schema};

use DataType::{Bool, Float64, Int32, Int64, Json, Text, Uuid};

/// A stream read from one table, one row per table row.
#[derive(Debug)]
pub struct RecordStream {
    /// Stream name.
    pub name: &'static str,
    /// The table.
    pub table: &'static str,
    /// Columns identifying a row.
    pub key: &'static [&'static str],
    /// Columns, in stream order, with their types.
    pub columns: &'static [(&'static str, DataType)],
}

/// The record streams.
pub const RECORDS: &[RecordStream] = &[
    RecordStream {
        name: "devices",
        table: "device",
        key: &["id"],
        columns: &[
            ("id", Uuid),
            ("name", Text),
            ("type", Text),
            ("label", Text),
            ("additional_info", Text),
            ("tenant_id", Uuid),
            ("customer_id", Uuid),
            ("created_time", Int64),
            ("device_profile_id", Uuid),
            ("device_data", Json),
            ("firmware_id", Uuid),
            ("software_id", Uuid),
            ("external_id", Uuid),
            ("version", Int64),
        ],
    },
    RecordStream {
        name: "assets",
        table: "asset",
        key: &["id"],
        columns: &[
            ("id", Uuid),
            ("name", Text),
            ("type", Text),
            ("label", Text),
            ("additional_info", Text),
            ("tenant_id", Uuid),
            ("customer_id", Uuid),
            ("created_time", Int64),
            ("asset_profile_id", Uuid),
            ("external_id", Uuid),
            ("version", Int64),
        ],
    },
    RecordStream {
        name: "customers",
        table: "customer",
        key: &["id"],
        columns: &[
            ("id", Uuid),
            ("created_time", Int64),
            ("title", Text),
            ("tenant_id", Uuid),
            ("additional_info", Text),
            ("address", Text),
            ("address2", Text),
            ("city", Text),
            ("country", Text),
            ("email", Text),
            ("phone", Text),
            ("state", Text),
            ("zip", Text),
            ("external_id", Uuid),
            ("is_public", Bool),
            ("version", Int64),
        ],
    },
    RecordStream {
        name: "tenants",
        table: "tenant",
        key: &["id"],
        columns: &[
            ("id", Uuid),
            ("created_time", Int64),
            ("title", Text),
            ("tenant_profile_id", Uuid),
            ("additional_info", Text),
            ("address", Text),
            ("address2", Text),
            ("city", Text),
            ("country", Text),
            ("email", Text),
            ("phone", Text),
            ("region", Text),
            ("state", Text),
            ("zip", Text),
            ("version", Int64),
        ],
    },
    RecordStream {
        name: "device_profiles",
        table: "device_profile",
        key: &["id"],
        columns: &[
            ("id", Uuid),
            ("created_time", Int64),
            ("name", Text),
            ("type", Text),
            ("image", Text),
            ("transport_type", Text),
            ("provision_type", Text),
            ("profile_data", Json),
            ("description", Text),
            ("is_default", Bool),
            ("tenant_id", Uuid),
            ("firmware_id", Uuid),
            ("software_id", Uuid),
            ("default_rule_chain_id", Uuid),
            ("default_dashboard_id", Uuid),
            ("default_queue_name", Text),
            ("provision_device_key", Text),
            ("default_edge_rule_chain_id", Uuid),
            ("external_id", Uuid),
            ("version", Int64),
        ],
    },
    RecordStream {
        name: "asset_profiles",
        table: "asset_profile",
        key: &["id"],
        columns: &[
            ("id", Uuid),
            ("created_time", Int64),
            ("name", Text),
            ("image", Text),
            ("description", Text),
            ("is_default", Bool),
            ("tenant_id", Uuid),
            ("default_rule_chain_id", Uuid),
            ("default_dashboard_id", Uuid),
            ("default_queue_name", Text),
            ("default_edge_rule_chain_id", Uuid),
            ("external_id", Uuid),
            ("version", Int64),
        ],
    },
    RecordStream {
        name: "entity_views",
        table: "entity_view",
        key: &["id"],
        columns: &[
            ("id", Uuid),
            ("created_time", Int64),
            ("entity_id", Uuid),
            ("entity_type", Text),
            ("tenant_id", Uuid),
            ("customer_id", Uuid),
            ("type", Text),
            ("name", Text),
            ("keys", Text),
            ("start_ts", Int64),
            ("end_ts", Int64),
            ("additional_info", Text),
            ("external_id", Uuid),
            ("version", Int64),
        ],
    },
    RecordStream {
        name: "relations",
        table: "relation",
        key: &[
            "from_id",
            "from_type",
            "relation_type_group",
            "relation_type",
            "to_id",
            "to_type",
        ],
        columns: &[
            ("from_id", Uuid),
            ("from_type", Text),
            ("to_id", Uuid),
            ("to_type", Text),
            ("relation_type_group", Text),
            ("relation_type", Text),
            ("additional_info", Text),
            ("version", Int64),
        ],
    },
];

/// Every stream name, for messages.
pub const STREAMS: [&str; 11] = [
    "telemetry",
    "latest",
    "attributes",
    "devices",
    "assets",
    "customers",
    "tenants",
    "device_profiles",
    "asset_profiles",
    "entity_views",
    "relations",
];

/// The record stream named `name`.
pub fn record(name: &str) -> Option<&'static RecordStream> {
    RECORDS.iter().find(|r| r.name == name)
}

/// The value columns of `ts_kv`, `ts_kv_latest` and `attribute_kv`.
const VALUES: [(&str, DataType); 5] = [
    ("bool_v", Bool),
    ("str_v", Text),
    ("long_v", Int64),
    ("dbl_v", Float64),
    ("json_v", Json),
];

fn schema(columns: &[(&str, DataType)]) -> Schema {
    Schema::new(columns.iter().map(|(n, t)| Field::new(*n, *t)).collect())
}

/// The telemetry stream: `entity_id, key, ts, <values>, entity_type`.
pub fn telemetry_schema() -> Schema {
    let mut cols = vec![("entity_id", Uuid), ("key", Text), ("ts", Int64)];
    cols.extend(VALUES);
    cols.push(("entity_type", Text));
    schema(&cols)
}

/// The latest stream: `entity_id, key, ts, <values>, version, entity_type`.
pub fn latest_schema() -> Schema {
    let mut cols = vec![("entity_id", Uuid), ("key", Text), ("ts", Int64)];
    cols.extend(VALUES);
    cols.push(("version", Int64));
    cols.push(("entity_type", Text));
    schema(&cols)
}

/// The attributes stream: `entity_id, entity_type, scope, key, <values>, last_update_ts,
/// version`.
pub fn attributes_schema() -> Schema {
    let mut cols = vec![
        ("entity_id", Uuid),
        ("entity_type", Text),
        ("scope", Text),
        ("key", Text),
    ];
    cols.extend(VALUES);
    cols.push(("last_update_ts", Int64));
    cols.push(("version", Int64));
    schema(&cols)
}

/// A record stream's schema.
pub fn record_schema(r: &RecordStream) -> Arc<Schema> {
    Arc::new(schema(r.columns))
}

/// The attribute scope names of v4.3.1.3's ids (`AttributeScope`: CLIENT 1, SERVER 2,
/// SHARED 3); another id keeps its number.
pub fn scope_name(id: i64) -> Option<&'static str> {
    match id {
        1 => Some("CLIENT_SCOPE"),
        2 => Some("SERVER_SCOPE"),
        3 => Some("SHARED_SCOPE"),
        _ => None,
    }
}

/// Type of a column in `telemetry`/`latest` read from the database before key resolution:
/// the key is the dictionary id.
pub const RAW_KEY: DataType = Int32;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_record_key_is_a_column_and_names_are_unique() {
        for r in RECORDS {
            for k in r.key {
                assert!(r.columns.iter().any(|(c, _)| c == k), "{}: {k}", r.name);
            }
            assert!(STREAMS.contains(&r.name));
        }
        assert_eq!(telemetry_schema().fields.len(), 9);
        assert_eq!(scope_name(2), Some("SERVER_SCOPE"));
        assert_eq!(scope_name(7), None);
    }
}
