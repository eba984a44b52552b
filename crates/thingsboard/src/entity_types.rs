//! ThingsBoard's entity types, and which type each entity id has.
//!
//! `ts_kv`, `ts_kv_latest` and (from 3.7) `attribute_kv` do not store an entity's type: it is
//! known only by which entity table holds the id. [`ENTITY_TYPES`] lists ThingsBoard's
//! `EntityType` names with their tables (`common/data/.../EntityType.java`, v3.6.4 and
//! v4.3.1.3: the table is the lower-case name, except `USER` → `tb_user` and `TB_RESOURCE` →
//! `resource`). An id found in no table is [`DELETED`]: ThingsBoard keeps the telemetry of a
//! deleted entity until its TTL runs out.
//!
//! [`EntityTypes`] caches what is known: a live database is asked for the ids it has not seen
//! yet (one query over every entity table it has), a backup is read whole once.

use std::collections::HashMap;
use std::sync::Mutex;

use tsmigrate_core::{Column, DataType};

/// `EntityType` name and table, in the enum's order.
pub const ENTITY_TYPES: &[(&str, &str)] = &[
    ("TENANT", "tenant"),
    ("CUSTOMER", "customer"),
    ("USER", "tb_user"),
    ("DASHBOARD", "dashboard"),
    ("ASSET", "asset"),
    ("DEVICE", "device"),
    ("ALARM", "alarm"),
    ("RULE_CHAIN", "rule_chain"),
    ("RULE_NODE", "rule_node"),
    ("ENTITY_VIEW", "entity_view"),
    ("WIDGETS_BUNDLE", "widgets_bundle"),
    ("WIDGET_TYPE", "widget_type"),
    ("TENANT_PROFILE", "tenant_profile"),
    ("DEVICE_PROFILE", "device_profile"),
    ("ASSET_PROFILE", "asset_profile"),
    ("API_USAGE_STATE", "api_usage_state"),
    ("TB_RESOURCE", "resource"),
    ("OTA_PACKAGE", "ota_package"),
    ("EDGE", "edge"),
    ("RPC", "rpc"),
    ("QUEUE", "queue"),
    ("NOTIFICATION_TARGET", "notification_target"),
    ("NOTIFICATION_TEMPLATE", "notification_template"),
    ("NOTIFICATION_REQUEST", "notification_request"),
    ("NOTIFICATION", "notification"),
    ("NOTIFICATION_RULE", "notification_rule"),
    ("QUEUE_STATS", "queue_stats"),
    ("OAUTH2_CLIENT", "oauth2_client"),
    ("DOMAIN", "domain"),
    ("MOBILE_APP", "mobile_app"),
    ("MOBILE_APP_BUNDLE", "mobile_app_bundle"),
    ("CALCULATED_FIELD", "calculated_field"),
    ("JOB", "job"),
    ("ADMIN_SETTINGS", "admin_settings"),
    ("AI_MODEL", "ai_model"),
    ("API_KEY", "api_key"),
];

/// The type of an id that no entity table holds.
pub const DELETED: &str = "DELETED";

/// Index of [`DELETED`] among type indexes (past [`ENTITY_TYPES`]).
pub const DELETED_INDEX: u8 = u8::MAX;

/// The index of a type name (any case; `DELETED` included), or `None`.
pub fn type_index(name: &str) -> Option<u8> {
    if name.eq_ignore_ascii_case(DELETED) {
        return Some(DELETED_INDEX);
    }
    ENTITY_TYPES
        .iter()
        .position(|(n, _)| n.eq_ignore_ascii_case(name))
        .and_then(|i| u8::try_from(i).ok())
}

/// The name of a type index.
pub fn type_name(index: u8) -> &'static str {
    ENTITY_TYPES
        .get(usize::from(index))
        .map_or(DELETED, |(n, _)| n)
}

/// Every type name a filter may use, for messages.
pub fn all_type_names() -> String {
    let mut names: Vec<&str> = ENTITY_TYPES.iter().map(|(n, _)| *n).collect();
    names.push(DELETED);
    names.join(", ")
}

/// What is known of entity ids' types.
#[derive(Default)]
pub struct EntityTypes {
    known: Mutex<HashMap<[u8; 16], u8>>,
}

impl EntityTypes {
    /// Records that `ids` have type `index`.
    pub fn insert(&self, ids: impl IntoIterator<Item = [u8; 16]>, index: u8) {
        if let Ok(mut k) = self.known.lock() {
            for id in ids {
                k.insert(id, index);
            }
        }
    }

    /// The type of `id`, when known.
    pub fn get(&self, id: &[u8; 16]) -> Option<u8> {
        self.known.lock().ok().and_then(|k| k.get(id).copied())
    }

    /// The ids among `ids` whose type is not known yet (each once).
    pub fn unknown<'a>(&self, ids: impl IntoIterator<Item = &'a [u8; 16]>) -> Vec<[u8; 16]> {
        let Ok(k) = self.known.lock() else {
            return Vec::new();
        };
        let mut out: Vec<[u8; 16]> = ids
            .into_iter()
            .filter(|i| !k.contains_key(*i))
            .copied()
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Forgets the ids recorded as [`DELETED`]: a later look finds them if they were created
    /// since (a sync round of a live database).
    pub fn forget_deleted(&self) {
        if let Ok(mut k) = self.known.lock() {
            k.retain(|_, t| *t != DELETED_INDEX);
        }
    }

    /// The `entity_type` column of a batch whose entity ids are `ids` (unknown ids are
    /// [`DELETED`]).
    pub fn column(&self, ids: &Column) -> Column {
        let mut out = Column::with_capacity(DataType::Text, ids.len());
        let (Some(raw), Ok(known)) = (ids.uuids(), self.known.lock()) else {
            for _ in 0..ids.len() {
                out.push_null();
            }
            return out;
        };
        let mut last: Option<(&[u8; 16], &'static str)> = None;
        for (i, id) in raw.iter().enumerate() {
            if !ids.is_valid(i) {
                out.push_null();
                continue;
            }
            let name = match last {
                Some((prev, name)) if prev == id => name,
                _ => {
                    let name = type_name(known.get(id).copied().unwrap_or(DELETED_INDEX));
                    last = Some((id, name));
                    name
                }
            };
            out.push_str(name);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_indexes_round_trip() {
        assert_eq!(type_index("device"), Some(5));
        assert_eq!(type_name(5), "DEVICE");
        assert_eq!(type_index("USER").map(type_name), Some("USER"));
        assert_eq!(type_index("deleted"), Some(DELETED_INDEX));
        assert_eq!(type_name(DELETED_INDEX), DELETED);
        assert_eq!(type_index("GADGET"), None);
        assert!(all_type_names().ends_with("API_KEY, DELETED"));
    }

    #[test]
    fn column_names_known_ids_and_calls_the_rest_deleted() {
        let types = EntityTypes::default();
        types.insert([[1u8; 16]], 5);
        types.insert([[2u8; 16]], 4);
        let mut ids = Column::with_capacity(DataType::Uuid, 4);
        ids.push_uuid([1u8; 16]);
        ids.push_uuid([1u8; 16]);
        ids.push_uuid([3u8; 16]);
        ids.push_null();
        ids.push_uuid([2u8; 16]);
        let col = types.column(&ids);
        let names: Vec<String> = (0..col.len())
            .map(|i| tsmigrate_core::convert::value_to_string(col.get(i)))
            .collect();
        assert_eq!(names, ["DEVICE", "DEVICE", "DELETED", "NULL", "ASSET"]);
        assert_eq!(
            types.unknown([&[3u8; 16], &[1u8; 16], &[3u8; 16]]),
            vec![[3u8; 16]]
        );
        types.insert([[3u8; 16]], DELETED_INDEX);
        types.forget_deleted();
        assert_eq!(types.get(&[3u8; 16]), None);
        assert_eq!(types.get(&[1u8; 16]), Some(5));
    }
}
