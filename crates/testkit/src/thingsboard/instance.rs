//! The rest of a ThingsBoard instance around the telemetry: tenant profile, tenant,
//! customers, a user, device and asset profiles, devices and assets, an entity view,
//! relations, attributes of every scope, the tenant's API usage state and a queue-statistics
//! entity — as ThingsBoard's services write them (facts from the schema files named in
//! [`super::schema`] and the DAO code):
//!
//! - "no customer" is `NULL_UUID` ([`NULL_UUID`], `EntityId.NULL_UUID`), never SQL NULL: the
//!   data validators put it into `customer_id` of unassigned assets and entity views;
//! - a device's `type` is its profile's name;
//! - `attribute_kv`: v3.6.4 keys rows by the entity type name, the scope name
//!   (`'SERVER_SCOPE'`) and the key text; v4.3.1.3 by the scope id (`AttributeScope`:
//!   CLIENT 1, SERVER 2, SHARED 3) and the key's id in `key_dictionary`, shared with
//!   telemetry, with a `version` from `attribute_kv_version_seq`;
//! - `relation.from_type`/`to_type` hold `EntityType` names, `relation_type_group` a
//!   `RelationTypeGroup` name;
//! - queue statistics: v3.6.4 writes them as telemetry of an asset of type `TbServiceQueue`
//!   named `<queue>_<service>`; v4.3.1.3 has a `queue_stats` table (its ids reuse the assets').

use std::fmt::Write as _;

use super::{sql_literal, Dictionary, Plan, HOUR_MS, SECOND_MS};

/// ThingsBoard's "no entity" id (`EntityId.NULL_UUID`, `Uuids.startOf(0)`): the
/// `customer_id` of an unassigned entity and the system tenant's id.
pub const NULL_UUID: &str = "13814000-1dd2-11b2-8080-808080808080";

/// Attributes every device gets: (scope, key, value column, SQL value). `{n}` in a value is
/// replaced by the device's number (1-based).
const DEVICE_ATTRIBUTES: &[(&str, &str, &str, &str)] = &[
    ("SERVER_SCOPE", "active", "bool_v", "({n} % 2 = 1)"),
    (
        "SERVER_SCOPE",
        "lastActivityTime",
        "long_v",
        "1754006400000 + {n}",
    ),
    ("CLIENT_SCOPE", "firmwareVersion", "str_v", "'1.2.' || {n}"),
    ("SHARED_SCOPE", "targetLevel", "dbl_v", "70.5 + {n}"),
    (
        "SHARED_SCOPE",
        "config",
        "json_v",
        r#"('{"mode":"auto","limits":[1,2.5,null],"n":' || {n} || '}')::json"#,
    ),
];

/// The id of an attribute scope in v4.3.1.3's `attribute_kv.attribute_type`.
pub fn scope_id(scope: &str) -> i32 {
    match scope {
        "CLIENT_SCOPE" => 1,
        "SERVER_SCOPE" => 2,
        "SHARED_SCOPE" => 3,
        _ => 0,
    }
}

impl Plan {
    /// Every row but telemetry: tenancy, profiles, devices, assets, the entity view,
    /// relations, attributes, the API usage state and the queue-statistics entity.
    pub(super) fn instance_sql(&self, d: Dictionary) -> String {
        let mut sql = self.tenancy_sql(d);
        sql.push_str(&self.devices_and_assets_sql(d));
        sql.push_str(&self.entity_view_sql());
        sql.push_str(&self.relations_sql(d));
        sql.push_str(&self.attributes_sql(d));
        sql
    }

    fn created(&self) -> i64 {
        self.months[0].start_ms - 30 * 24 * HOUR_MS
    }

    fn tenancy_sql(&self, d: Dictionary) -> String {
        let c = self.created();
        let (t, c1, c2) = (&self.tenant_id, &self.customer_id, &self.public_customer_id);
        let customer_cols = match d {
            Dictionary::Legacy => "",
            Dictionary::KeyDictionary => ", is_public",
        };
        let (public_false, public_true) = match d {
            Dictionary::Legacy => ("", ""),
            Dictionary::KeyDictionary => (", false", ", true"),
        };
        let mut sql = format!(
            "INSERT INTO tenant_profile (id, created_time, name, profile_data, description, is_default, isolated_tb_core, isolated_tb_rule_engine) \
             VALUES ('{tp}', {c}, 'Default', '{{\"configuration\":{{\"type\":\"DEFAULT\",\"maxDevices\":0}}}}', 'Default tenant profile', true, false, false);\n\
             INSERT INTO tenant (id, created_time, additional_info, tenant_profile_id, address, city, country, email, phone, region, state, title, zip) \
             VALUES ('{t}', {c}, '{{\"description\":\"\"}}', '{tp}', 'Water Street 1', 'Lyon', 'France', 'ops@acme.example', '+33 1 23', 'Global', NULL, 'Acme Water', '69001');\n\
             INSERT INTO customer (id, created_time, additional_info, address, city, country, email, tenant_id, title{customer_cols}) \
             VALUES ('{c1}', {c}, NULL, 'Quai 3', 'Lyon', 'France', 'city@example.org', '{t}', 'Municipal Utility'{public_false}),\n\
                    ('{c2}', {c}, '{{\"isPublic\":true}}', NULL, NULL, NULL, NULL, '{t}', 'Public'{public_true});\n\
             INSERT INTO tb_user (id, created_time, additional_info, authority, customer_id, email, first_name, last_name, tenant_id) \
             VALUES ('{u}', {c}, '{{}}', 'TENANT_ADMIN', '{NULL_UUID}', 'admin@acme.example', 'Ada', 'Admin', '{t}');\n\
             INSERT INTO api_usage_state (id, created_time, tenant_id, entity_type, entity_id, transport, db_storage, re_exec, js_exec, tbel_exec, email_exec, sms_exec, alarm_exec) \
             VALUES ('{au}', {c}, '{t}', 'TENANT', '{t}', 'ENABLED', 'ENABLED', 'ENABLED', 'ENABLED', 'ENABLED', 'ENABLED', 'ENABLED', 'ENABLED');\n",
            tp = self.tenant_profile_id,
            u = self.user_id,
            au = self.api_usage_id,
        );
        let _ = writeln!(
            sql,
            "INSERT INTO device_profile (id, created_time, name, type, transport_type, provision_type, profile_data, description, is_default, tenant_id, default_queue_name) \
             VALUES ('{}', {c}, 'Tank Sensor', 'DEFAULT', 'DEFAULT', 'DISABLED', '{{\"configuration\":{{\"type\":\"DEFAULT\"}},\"alarms\":null}}', 'Water tank sensors', true, '{t}', 'Main');\n\
             INSERT INTO asset_profile (id, created_time, name, description, is_default, tenant_id) \
             VALUES ('{}', {c}, 'Pump Station', NULL, true, '{t}');",
            self.profile_id, self.asset_profile_id,
        );
        sql
    }

    fn devices_and_assets_sql(&self, d: Dictionary) -> String {
        let c = self.created();
        let t = &self.tenant_id;
        let mut sql = String::new();
        for (index, (id, name)) in self.devices.iter().enumerate() {
            let area = char::from(b'A' + (index % 3) as u8);
            let info = match index {
                1 => "NULL".to_string(),
                2 => sql_literal(r#"{"broken": "#),
                _ => sql_literal(&format!(
                    r#"{{"gateway":false,"overwriteActivityTime":false,"description":"Water tank {} in area {area}"}}"#,
                    index + 1
                )),
            };
            let _ = writeln!(
                sql,
                "INSERT INTO device (id, created_time, additional_info, customer_id, \
                 device_profile_id, device_data, type, name, label, tenant_id) VALUES \
                 ('{id}', {}, {info}, '{}', '{}', \
                 '{{\"configuration\":{{\"type\":\"DEFAULT\"}},\"transportConfiguration\":{{\"type\":\"DEFAULT\"}}}}', \
                 'Tank Sensor', {}, 'Area {area}', '{t}');",
                c + index as i64 * SECOND_MS,
                self.customer_id,
                self.profile_id,
                sql_literal(name),
            );
        }
        for (index, (id, name)) in self.assets.iter().enumerate() {
            // The second asset is not assigned to a customer: NULL_UUID, as ThingsBoard writes it.
            let customer = if index == 1 {
                NULL_UUID
            } else {
                &self.customer_id
            };
            let _ = writeln!(
                sql,
                "INSERT INTO asset (id, created_time, additional_info, customer_id, \
                 asset_profile_id, name, label, tenant_id, type) VALUES \
                 ('{id}', {}, '{{\"description\":\"Pumping station\"}}', '{customer}', '{}', {}, \
                 'Site {}', '{t}', 'Pump Station');",
                c + index as i64 * SECOND_MS,
                self.asset_profile_id,
                sql_literal(name),
                index + 1,
            );
        }
        let q = &self.queue_stats_id;
        match d {
            Dictionary::Legacy => {
                let _ = writeln!(
                    sql,
                    "INSERT INTO asset_profile (id, created_time, name, is_default, tenant_id) \
                     VALUES ('{}', {c}, 'TbServiceQueue', false, '{t}');\n\
                     INSERT INTO asset (id, created_time, additional_info, customer_id, asset_profile_id, name, tenant_id, type) \
                     VALUES ('{q}', {c}, NULL, '{NULL_UUID}', '{}', 'Main_tb-core-0', '{t}', 'TbServiceQueue');",
                    self.queue_profile_id, self.queue_profile_id,
                );
            }
            Dictionary::KeyDictionary => {
                let _ = writeln!(
                    sql,
                    "INSERT INTO queue_stats (id, created_time, tenant_id, queue_name, service_id) \
                     VALUES ('{q}', {c}, '{t}', 'Main', 'tb-core-0');"
                );
            }
        }
        sql
    }

    fn entity_view_sql(&self) -> String {
        let device1 = &self.devices[0].0;
        format!(
            "INSERT INTO entity_view (id, created_time, entity_id, entity_type, tenant_id, customer_id, type, name, keys, start_ts, end_ts, additional_info) \
             VALUES ('{}', {}, '{device1}', 'DEVICE', '{}', '{NULL_UUID}', 'Tank Sensor', 'Tank 1 public view', \
             '{{\"timeseries\":[\"temperature\",\"level\"],\"attributes\":{{\"cs\":[],\"ss\":[\"active\"],\"sh\":[]}}}}', 0, 0, '{{\"description\":\"\"}}');\n",
            self.entity_view_id,
            self.created(),
            self.tenant_id,
        )
    }

    fn relations_sql(&self, d: Dictionary) -> String {
        let mut rows: Vec<(String, &str, String, &str, &str, &str, String)> = Vec::new();
        if let Some((asset, _)) = self.assets.first() {
            rows.push((
                self.tenant_id.clone(),
                "TENANT",
                asset.clone(),
                "ASSET",
                "COMMON",
                "Contains",
                "NULL".into(),
            ));
            for (device, _) in self.devices.iter().take(3) {
                rows.push((
                    asset.clone(),
                    "ASSET",
                    device.clone(),
                    "DEVICE",
                    "COMMON",
                    "Contains",
                    "NULL".into(),
                ));
            }
        }
        rows.push((
            self.customer_id.clone(),
            "CUSTOMER",
            self.devices[0].0.clone(),
            "DEVICE",
            "COMMON",
            "Manages",
            sql_literal(r#"{"note":"a \"quoted\" note, tab	and unicode é"}"#),
        ));
        let version = match d {
            Dictionary::Legacy => ("", ""),
            Dictionary::KeyDictionary => (", version", ", nextval('relation_version_seq')"),
        };
        let mut sql = String::new();
        for (from, ft, to, tt, group, ty, info) in rows {
            let _ = writeln!(
                sql,
                "INSERT INTO relation (from_id, from_type, to_id, to_type, relation_type_group, relation_type, additional_info{}) \
                 VALUES ('{from}', '{ft}', '{to}', '{tt}', '{group}', '{ty}', {info}{});",
                version.0, version.1
            );
        }
        sql
    }

    /// (entity type name, entity id, scope, key, value column, SQL value) of every attribute.
    fn attributes(
        &self,
    ) -> Vec<(
        &'static str,
        String,
        &'static str,
        String,
        &'static str,
        String,
    )> {
        let mut out = Vec::new();
        for (n, (id, _)) in self.devices.iter().enumerate() {
            for (scope, key, col, value) in DEVICE_ATTRIBUTES {
                out.push((
                    "DEVICE",
                    id.clone(),
                    *scope,
                    (*key).to_string(),
                    *col,
                    value.replace("{n}", &(n + 1).to_string()),
                ));
            }
        }
        let d1 = self.devices[0].0.clone();
        out.push((
            "DEVICE",
            d1.clone(),
            "SHARED_SCOPE",
            "note".into(),
            "str_v",
            sql_literal("tab\there, line1\nline2, \"quoted\", back\\slash, 温度 🌡️"),
        ));
        out.push((
            "DEVICE",
            d1.clone(),
            "SERVER_SCOPE",
            "bigCounter".into(),
            "long_v",
            "9007199254740993".into(),
        ));
        out.push((
            "DEVICE",
            d1,
            "SERVER_SCOPE",
            "calibration".into(),
            "dbl_v",
            "'-0'::float8".into(),
        ));
        if let Some((asset, _)) = self.assets.first() {
            out.push((
                "ASSET",
                asset.clone(),
                "SERVER_SCOPE",
                "address".into(),
                "str_v",
                "'Pump road 7'".into(),
            ));
        }
        out.push((
            "TENANT",
            self.tenant_id.clone(),
            "SERVER_SCOPE",
            "billingPlan".into(),
            "str_v",
            "'enterprise'".into(),
        ));
        out
    }

    fn attributes_sql(&self, d: Dictionary) -> String {
        let mut sql = String::new();
        let attributes = self.attributes();
        if d == Dictionary::KeyDictionary {
            // v4.3.1.3: attribute keys live in key_dictionary, next to telemetry keys.
            for (_, _, _, key, _, _) in &attributes {
                let _ = writeln!(
                    sql,
                    "INSERT INTO key_dictionary (key) VALUES ({}) ON CONFLICT DO NOTHING;",
                    sql_literal(key)
                );
            }
        }
        let updated = self.months[0].start_ms;
        for (i, (etype, id, scope, key, col, value)) in attributes.into_iter().enumerate() {
            let ts = updated + i as i64 * SECOND_MS;
            let _ = match d {
                Dictionary::Legacy => writeln!(
                    sql,
                    "INSERT INTO attribute_kv (entity_type, entity_id, attribute_type, attribute_key, {col}, last_update_ts) \
                     VALUES ('{etype}', '{id}', '{scope}', {}, {value}, {ts});",
                    sql_literal(&key)
                ),
                Dictionary::KeyDictionary => writeln!(
                    sql,
                    "INSERT INTO attribute_kv (entity_id, attribute_type, attribute_key, {col}, last_update_ts, version) \
                     VALUES ('{id}', {}, (SELECT key_id FROM key_dictionary WHERE key = {}), {value}, {ts}, nextval('attribute_kv_version_seq'));",
                    scope_id(scope),
                    sql_literal(&key)
                ),
            };
        }
        sql
    }
}
