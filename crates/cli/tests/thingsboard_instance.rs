//! A whole ThingsBoard instance, as real installations are: the schema of v3.6.4 and of
//! v4.3.1.3 (`crates/testkit/src/thingsboard/schema.rs`, from ThingsBoard's own schema files),
//! every entity type's telemetry, attributes of every scope, latest values, relations, entity
//! views, NULL_UUID for "no customer" — migrated with `examples/thingsboard-whole-instance.toml`
//! live and from a real `pg_dump -Fc`, every stream compared with SQL written here over the
//! source (never with tsmigrate's own reading), then `verify`.
//!
//! Then the day after: a device provisioned after the migration, a new key, late rows inside
//! and outside the overlap, a row from the future — each sync round exact, and the rows it
//! reads bounded by the new rows plus the overlap of each series.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use tsmigrate_testkit::thingsboard::{Dictionary, TbSpec, NULL_UUID};

/// A column of a record stream: name, and whether NULL_UUID is written as NULL in it (a
/// reference to another entity, not the row's own key).
type Col = (&'static str, bool);

/// The record streams of the example: (target table, source table, columns, order).
const RECORDS: &[(&str, &str, &[Col], &str)] = &[
    (
        "tb_tenant",
        "tenant",
        &[
            ("id", false),
            ("created_time", false),
            ("title", false),
            ("tenant_profile_id", true),
            ("additional_info", false),
            ("address", false),
            ("address2", false),
            ("city", false),
            ("country", false),
            ("email", false),
            ("phone", false),
            ("region", false),
            ("state", false),
            ("zip", false),
            ("version", false),
        ],
        "id",
    ),
    (
        "tb_customer",
        "customer",
        &[
            ("id", false),
            ("created_time", false),
            ("title", false),
            ("tenant_id", true),
            ("additional_info", false),
            ("address", false),
            ("address2", false),
            ("city", false),
            ("country", false),
            ("email", false),
            ("phone", false),
            ("state", false),
            ("zip", false),
            ("external_id", true),
            ("is_public", false),
            ("version", false),
        ],
        "id",
    ),
    (
        "tb_device",
        "device",
        &[
            ("id", false),
            ("name", false),
            ("type", false),
            ("label", false),
            ("additional_info", false),
            ("tenant_id", true),
            ("customer_id", true),
            ("created_time", false),
            ("device_profile_id", true),
            ("device_data", false),
            ("firmware_id", true),
            ("software_id", true),
            ("external_id", true),
            ("version", false),
        ],
        "id",
    ),
    (
        "tb_asset",
        "asset",
        &[
            ("id", false),
            ("name", false),
            ("type", false),
            ("label", false),
            ("additional_info", false),
            ("tenant_id", true),
            ("customer_id", true),
            ("created_time", false),
            ("asset_profile_id", true),
            ("external_id", true),
            ("version", false),
        ],
        "id",
    ),
    (
        "tb_device_profile",
        "device_profile",
        &[
            ("id", false),
            ("created_time", false),
            ("name", false),
            ("type", false),
            ("image", false),
            ("transport_type", false),
            ("provision_type", false),
            ("profile_data", false),
            ("description", false),
            ("is_default", false),
            ("tenant_id", true),
            ("firmware_id", true),
            ("software_id", true),
            ("default_rule_chain_id", true),
            ("default_dashboard_id", true),
            ("default_queue_name", false),
            ("provision_device_key", false),
            ("default_edge_rule_chain_id", true),
            ("external_id", true),
            ("version", false),
        ],
        "id",
    ),
    (
        "tb_asset_profile",
        "asset_profile",
        &[
            ("id", false),
            ("created_time", false),
            ("name", false),
            ("image", false),
            ("description", false),
            ("is_default", false),
            ("tenant_id", true),
            ("default_rule_chain_id", true),
            ("default_dashboard_id", true),
            ("default_queue_name", false),
            ("default_edge_rule_chain_id", true),
            ("external_id", true),
            ("version", false),
        ],
        "id",
    ),
    (
        "tb_entity_view",
        "entity_view",
        &[
            ("id", false),
            ("created_time", false),
            ("entity_id", true),
            ("entity_type", false),
            ("tenant_id", true),
            ("customer_id", true),
            ("type", false),
            ("name", false),
            ("keys", false),
            ("start_ts", false),
            ("end_ts", false),
            ("additional_info", false),
            ("external_id", true),
            ("version", false),
        ],
        "id",
    ),
    (
        "tb_relation",
        "relation",
        &[
            ("from_id", false),
            ("from_type", false),
            ("to_id", false),
            ("to_type", false),
            ("relation_type_group", false),
            ("relation_type", false),
            ("additional_info", false),
            ("version", false),
        ],
        "1, 2, 3, 4, 5, 6",
    ),
];

/// JSON columns: compared as `jsonb` (the target stores `jsonb`, which normalises the text).
const JSON_COLUMNS: [&str; 2] = ["device_data", "profile_data"];

/// The example plan reading `source` (`url = …` or `dump = …`).
fn plan(env: &Env, name: &str, source: &str) -> PathBuf {
    let text = std::fs::read_to_string(format!(
        "{}/../../examples/thingsboard-whole-instance.toml",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(text.contains("url = \"${TB_URL}\""));
    let text = text.replace("url = \"${TB_URL}\"", source);
    let p = env.dir.path().join(name);
    std::fs::write(&p, text).unwrap_or_else(|e| panic!("{e}"));
    p
}

/// True when the source's `table` has `column` (v3.6.4 has no `version`, `is_public`).
fn has_column(env: &Env, table: &str, column: &str) -> bool {
    env.count(
        "tb",
        &format!(
            "SELECT count(*) FROM information_schema.columns WHERE table_name = '{table}' AND column_name = '{column}'"
        ),
    ) == 1
}

/// A record stream's rows, over the source (`source = true`) or the target.
fn record_sql(env: &Env, r: &(&str, &str, &[Col], &str), source: bool) -> String {
    let (target, table, cols, order) = *r;
    let list: Vec<String> = cols
        .iter()
        .map(|(c, refers)| {
            let json = JSON_COLUMNS.contains(c);
            if !source {
                return (*c).to_string();
            }
            if !has_column(env, table, c) {
                return "NULL".to_string();
            }
            match (refers, json) {
                (true, _) => format!("NULLIF({c}, '{NULL_UUID}')"),
                (_, true) => format!("{c}::jsonb"),
                _ => (*c).to_string(),
            }
        })
        .collect();
    let from = if source { table } else { target };
    format!("SELECT {} FROM {from} ORDER BY {order}", list.join(", "))
}

/// ThingsBoard's entity type of `col`, from which entity table holds the id.
fn entity_type_sql(env: &Env, col: &str) -> String {
    let mut cases = Vec::new();
    for (t, name) in [
        ("tenant", "TENANT"),
        ("customer", "CUSTOMER"),
        ("tb_user", "USER"),
        ("asset", "ASSET"),
        ("device", "DEVICE"),
        ("entity_view", "ENTITY_VIEW"),
        ("device_profile", "DEVICE_PROFILE"),
        ("asset_profile", "ASSET_PROFILE"),
        ("api_usage_state", "API_USAGE_STATE"),
        ("queue_stats", "QUEUE_STATS"),
    ] {
        if env.count(
            "tb",
            &format!("SELECT count(*) FROM pg_tables WHERE tablename = '{t}'"),
        ) == 1
        {
            cases.push(format!("WHEN {col} IN (SELECT id FROM {t}) THEN '{name}'"));
        }
    }
    format!("CASE {} ELSE 'DELETED' END", cases.join(" "))
}

/// Telemetry (`ts_kv`) or latest values (`ts_kv_latest`) of every entity over the source, as
/// the example maps them.
fn key_values_source(env: &Env, table: &str) -> String {
    let version_free = "";
    format!(
        "SELECT t.entity_id, {}, d.key, timestamptz 'epoch' + t.ts * interval '1 millisecond', \
                t.bool_v, t.str_v, t.long_v, t.dbl_v, t.json_v::jsonb{version_free} \
         FROM {table} t JOIN {} d ON d.key_id = t.key ORDER BY 1, 3, 4",
        entity_type_sql(env, "t.entity_id"),
        env.tb.dictionary_table
    )
}

fn key_values_target(table: &str) -> String {
    format!(
        "SELECT entity_id, entity_type, key, ts, bool_v, str_v, long_v, dbl_v, json_v FROM {table} ORDER BY 1, 3, 4"
    )
}

/// Attributes over the source, in either generation's layout.
fn attributes_source(env: &Env, dictionary: Dictionary) -> String {
    match dictionary {
        Dictionary::Legacy => "SELECT entity_id, entity_type, attribute_type, attribute_key, bool_v, str_v, long_v, dbl_v, \
                               json_v::jsonb, last_update_ts, NULL::bigint FROM attribute_kv ORDER BY 1, 3, 4"
            .to_string(),
        Dictionary::KeyDictionary => format!(
            "SELECT a.entity_id, {}, CASE a.attribute_type WHEN 1 THEN 'CLIENT_SCOPE' WHEN 2 THEN 'SERVER_SCOPE' \
                    WHEN 3 THEN 'SHARED_SCOPE' END, k.key, a.bool_v, a.str_v, a.long_v, a.dbl_v, a.json_v::jsonb, \
                    a.last_update_ts, a.version \
             FROM attribute_kv a JOIN key_dictionary k ON k.key_id = a.attribute_key ORDER BY 1, 3, 4",
            entity_type_sql(env, "a.entity_id")
        ),
    }
}

const ATTRIBUTES_TARGET: &str =
    "SELECT entity_id, entity_type, scope, key, bool_v, str_v, long_v, dbl_v, json_v, \
     last_update_ts, version FROM tb_attribute ORDER BY 1, 3, 4";

/// Every stream of the target database `db` equals the source, by SQL over each.
fn assert_instance_equal(env: &Env, db: &str, dictionary: Dictionary, what: &str) {
    for r in RECORDS {
        assert_same_rows(
            &format!("{what}: {}", r.0),
            &env.sql("tb", &record_sql(env, r, true)),
            &env.sql(db, &record_sql(env, r, false)),
        );
    }
    assert_same_rows(
        &format!("{what}: attributes"),
        &env.sql("tb", &attributes_source(env, dictionary)),
        &env.sql(db, ATTRIBUTES_TARGET),
    );
    assert_same_rows(
        &format!("{what}: latest"),
        &env.sql("tb", &key_values_source(env, "ts_kv_latest")),
        &env.sql(db, &key_values_target("tb_latest")),
    );
    assert_same_rows(
        &format!("{what}: telemetry"),
        &env.sql("tb", &key_values_source(env, "ts_kv")),
        &env.sql(db, &key_values_target("tb_telemetry")),
    );
}

/// Runs tsmigrate with TARGET_URL pointing at database `db`.
fn tsm(env: &Env, db: &str, args: &[&str]) -> std::process::Output {
    run_tsmigrate(
        env.dir.path(),
        args,
        &[
            ("TB_URL", &env.source_url()),
            ("TARGET_URL", &env.cluster.url(db)),
        ],
    )
}

fn whole_instance(dictionary: Dictionary) {
    let env = setup(TbSpec {
        dictionary,
        ..TbSpec::default()
    });
    // Every entity type the fixture gives telemetry really is there.
    let types = env.sql(
        "tb",
        &format!(
            "SELECT string_agg(DISTINCT {}, ',' ORDER BY {}) FROM ts_kv",
            entity_type_sql(&env, "entity_id"),
            entity_type_sql(&env, "entity_id")
        ),
    );
    let expected_types = match dictionary {
        Dictionary::Legacy => "API_USAGE_STATE,ASSET,CUSTOMER,DELETED,DEVICE,TENANT",
        Dictionary::KeyDictionary => {
            "API_USAGE_STATE,ASSET,CUSTOMER,DELETED,DEVICE,QUEUE_STATS,TENANT"
        }
    };
    assert_eq!(types, expected_types);

    // Live.
    let live = plan(&env, "live.toml", "url = \"${TB_URL}\"");
    let live = live.display().to_string();
    let out = tsm(&env, "iiot", &["check", &live]);
    assert_exit(&out, 0);
    let out = tsm(&env, "iiot", &["run", &live, "--progress", "off"]);
    assert_exit(&out, 0);
    assert_instance_equal(&env, "iiot", dictionary, "live");
    // NULL_UUID (no customer) arrived as NULL, and only where ThingsBoard wrote it: the
    // unassigned asset, the entity view (and in v3.6.4 the queue-statistics asset).
    assert_eq!(
        env.sql(
            "iiot",
            "SELECT (SELECT count(*) FROM tb_asset WHERE customer_id IS NULL), \
                    (SELECT count(*) FROM tb_entity_view WHERE customer_id IS NULL), \
                    (SELECT count(*) FROM tb_device WHERE customer_id IS NULL)"
        ),
        if dictionary == Dictionary::Legacy {
            "2|1|0"
        } else {
            "1|1|0"
        }
    );
    // Created tables got their key after the load.
    assert_eq!(
        env.count(
            "iiot",
            "SELECT count(*) FROM pg_constraint WHERE contype = 'p' AND conrelid::regclass::text LIKE 'tb\\_%'"
        ),
        11
    );
    let out = tsm(&env, "iiot", &["verify", &live]);
    assert_exit(&out, 0);

    // From the real pg_dump -Fc of the same database.
    let dump = env.dir.path().join("tb.dump");
    let status = Command::new(env.cluster.bin("pg_dump"))
        .args(["-Fc", "-f"])
        .arg(&dump)
        .arg(env.source_url())
        .status()
        .unwrap_or_else(|e| panic!("pg_dump: {e}"));
    assert!(status.success());
    env.cluster
        .create_database("fromdump")
        .unwrap_or_else(|e| panic!("{e}"));
    let from_dump = plan(&env, "dump.toml", &format!("dump = \"{}\"", dump.display()));
    let from_dump = from_dump.display().to_string();
    let out = tsm(&env, "fromdump", &["run", &from_dump, "--progress", "off"]);
    assert_exit(&out, 0);
    assert_instance_equal(&env, "fromdump", dictionary, "from the dump");
    let out = tsm(&env, "fromdump", &["verify", &from_dump]);
    assert_exit(&out, 0);
    // `limit` cannot be applied to a backup: a usage error (exit 2), not a store failure.
    let out = tsm(
        &env,
        "fromdump",
        &[
            "run",
            &from_dump,
            "--dry-run",
            "--limit",
            "5",
            "--stream",
            "telemetry",
        ],
    );
    assert_exit(&out, 2);
    // status of a backup's migration: complete up to the backup's time, not the run's.
    let st = tsm(&env, "fromdump", &["status", &from_dump, "--json"]);
    assert_exit(&st, 0);
    let st: serde_json::Value =
        serde_json::from_slice(&st.stdout).unwrap_or_else(|e| panic!("{e}"));
    let horizon = st["streams"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["stream"] == "telemetry"))
        .and_then(|s| s["horizon"].as_str())
        .unwrap_or_default()
        .to_string();
    let dumped = std::fs::metadata(&dump)
        .and_then(|m| m.modified())
        .unwrap_or_else(|e| panic!("{e}"));
    let dumped: chrono::DateTime<chrono::Utc> = dumped.into();
    let horizon = chrono::DateTime::parse_from_rfc3339(&horizon)
        .unwrap_or_else(|e| panic!("horizon {horizon:?}: {e}"));
    let gap = (dumped.timestamp() - horizon.timestamp()).abs();
    assert!(gap <= 2, "horizon {horizon} is the backup's time {dumped}");
}

#[test]
fn a_whole_v3_6_instance_migrates_live_and_from_its_dump() {
    whole_instance(Dictionary::Legacy);
}

#[test]
fn a_whole_v4_3_instance_migrates_live_and_from_its_dump() {
    whole_instance(Dictionary::KeyDictionary);
}

/// The current time on the source server, epoch milliseconds.
fn now_ms(env: &Env) -> i64 {
    env.count("tb", "SELECT (extract(epoch FROM now()) * 1000)::bigint") as i64
}

/// Rows a sync round reads at most: the new series whole, every other series from its
/// watermark (newest row not in the future) minus the overlap.
fn rows_within_floors(env: &Env, overlap_ms: i64) -> u64 {
    env.count(
        "tb",
        &format!(
            "SELECT count(*) FROM ts_kv t LEFT JOIN tsm_floor f ON f.entity_id = t.entity_id AND f.key = t.key \
             WHERE f.floor IS NULL OR t.ts >= f.floor - {overlap_ms}"
        ),
    )
}

fn report_rows(path: &Path, stream: &str, field: &str) -> u64 {
    let r = read_json(path);
    r["streams"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == stream))
        .and_then(|s| s[field].as_u64())
        .unwrap_or_else(|| panic!("{field} of {stream} in {r}"))
}

#[test]
fn the_day_after_new_devices_keys_late_and_future_rows_sync_exactly() {
    let dictionary = Dictionary::KeyDictionary;
    let env = setup(TbSpec {
        dictionary,
        ..TbSpec::default()
    });
    let live = plan(&env, "live.toml", "url = \"${TB_URL}\"")
        .display()
        .to_string();
    let out = tsm(&env, "iiot", &["run", &live, "--progress", "off"]);
    assert_exit(&out, 0);
    // Each series' watermark as the run left it: its newest row not stamped in the future.
    let now = now_ms(&env);
    env.sql(
        "tb",
        &format!(
            "CREATE TABLE tsm_floor AS SELECT entity_id, key, max(ts) FILTER (WHERE ts <= {now}) AS floor \
             FROM ts_kv GROUP BY 1, 2"
        ),
    );

    // A device provisioned after the migration, with attributes and telemetry, the way
    // ThingsBoard writes them (ts_kv, ts_kv_latest, attribute_kv).
    let new_device = "2f4c8d10-1d2e-11f0-9a3b-4b5c6d7e8f90";
    let (profile, tenant) = (
        env.sql("tb", "SELECT id FROM device_profile LIMIT 1"),
        env.tb.tenant_id.clone(),
    );
    env.sql(
        "tb",
        &format!(
            "INSERT INTO device (id, created_time, customer_id, device_profile_id, type, name, label, tenant_id) \
             VALUES ('{new_device}', {now}, '{NULL_UUID}', '{profile}', 'Tank Sensor', 'Tank 99', 'Area Z', '{tenant}');
             INSERT INTO attribute_kv (entity_id, attribute_type, attribute_key, bool_v, last_update_ts, version) \
             VALUES ('{new_device}', 2, (SELECT key_id FROM key_dictionary WHERE key = 'active'), true, {now}, nextval('attribute_kv_version_seq'));
             INSERT INTO ts_kv (entity_id, key, ts, dbl_v) SELECT '{new_device}', 1, {now} - g * 60000, g FROM generate_series(1, 50) g;
             INSERT INTO ts_kv_latest (entity_id, key, ts, dbl_v, version) VALUES ('{new_device}', 1, {now} - 60000, 1, nextval('ts_kv_latest_version_seq'));"
        ),
    );
    let device1 = &env.tb.devices[0].0;
    let device2 = &env.tb.devices[1].0;
    let device3 = &env.tb.devices[2].0;
    // A key reported for the first time by an existing device.
    env.sql(
        "tb",
        &format!(
            "INSERT INTO key_dictionary (key) VALUES ('pump_rpm');
             INSERT INTO ts_kv (entity_id, key, ts, long_v)
             SELECT '{device1}', (SELECT key_id FROM key_dictionary WHERE key = 'pump_rpm'), {now} - g * 1000, 1400 + g
             FROM generate_series(1, 20) g;"
        ),
    );
    // A late row inside the 5-minute overlap of device 2's humidity (key 2), one outside it
    // (an hour before device 3's humidity watermark), and a row from the future.
    env.sql(
        "tb",
        &format!(
            "INSERT INTO ts_kv (entity_id, key, ts, dbl_v)
             SELECT '{device2}', 2, floor - 60000 + 3, -7.25 FROM tsm_floor WHERE entity_id = '{device2}' AND key = 2;
             INSERT INTO ts_kv (entity_id, key, ts, dbl_v)
             SELECT '{device3}', 2, floor - 3600000 + 3, -8.5 FROM tsm_floor WHERE entity_id = '{device3}' AND key = 2;
             INSERT INTO ts_kv (entity_id, key, ts, dbl_v) VALUES ('{device2}', 3, {now} + 10 * 365 * 86400000::bigint, 42);"
        ),
    );
    // Device 4's `level` (key 6) stops reporting: nothing new for it.
    let expected_read = rows_within_floors(&env, 300_000);
    let report = env.dir.path().join("sync1.json");
    let report_arg = report.display().to_string();
    let out = tsm(&env, "iiot", &["sync", &live, "--report", &report_arg]);
    assert_exit(&out, 0);
    // Read: exactly the new series, and every other series from its floor — not their
    // history (19,800+ rows); nothing older is touched.
    let read = report_rows(&report, "telemetry", "rows_read");
    assert_eq!(read, expected_read, "rows a sync round reads");
    assert!(read < 400, "{read} rows read to copy ~75 new ones");

    // Exact, but for the late row outside the overlap, which sync does not see…
    let outside = format!("t.entity_id = '{device3}' AND t.key = 2 AND t.dbl_v = -8.5");
    let source_without = key_values_source(&env, "ts_kv").replace(
        "ORDER BY 1, 3, 4",
        &format!("WHERE NOT ({outside}) ORDER BY 1, 3, 4"),
    );
    assert_same_rows(
        "telemetry after the first sync",
        &env.sql("tb", &source_without),
        &env.sql("iiot", &key_values_target("tb_telemetry")),
    );
    for r in RECORDS {
        assert_same_rows(
            &format!("after the first sync: {}", r.0),
            &env.sql("tb", &record_sql(&env, r, true)),
            &env.sql("iiot", &record_sql(&env, r, false)),
        );
    }
    assert_same_rows(
        "attributes after the first sync",
        &env.sql("tb", &attributes_source(&env, dictionary)),
        &env.sql("iiot", ATTRIBUTES_TARGET),
    );
    // …and that verify does see: the one row, missing.
    let out = tsm(
        &env,
        "iiot",
        &["verify", &live, "--stream", "telemetry", "--no-horizon"],
    );
    assert_exit(&out, 4);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("missing from the target: 1, extra in the target: 0, different values: 0"),
        "{stdout}"
    );
    // A wider overlap copies it.
    let out = tsm(&env, "iiot", &["sync", &live, "--overlap", "2h"]);
    assert_exit(&out, 0);
    assert_same_rows(
        "telemetry after the wide sync",
        &env.sql("tb", &key_values_source(&env, "ts_kv")),
        &env.sql("iiot", &key_values_target("tb_telemetry")),
    );
    // A second sync: nothing new; the future row is re-read (its series' watermark stays at
    // its last real row), found present and not written again.
    let report = env.dir.path().join("sync3.json");
    let report_arg = report.display().to_string();
    let out = tsm(&env, "iiot", &["sync", &live, "--report", &report_arg]);
    assert_exit(&out, 0);
    assert_eq!(report_rows(&report, "telemetry", "rows_written"), 0);
    assert_instance_equal(&env, "iiot", dictionary, "after the last sync");
    // status shows the real newest row, in the future, instead of a lag clamped to now.
    let st = tsm(&env, "iiot", &["status", &live]);
    assert_exit(&st, 0);
    let st = String::from_utf8_lossy(&st.stdout);
    assert!(st.contains("in the future (a device clock ahead?)"), "{st}");
    let out = tsm(&env, "iiot", &["verify", &live]);
    assert_exit(&out, 0);
}

/// The example's devices stream over the source and the target.
const SOURCE_DEVICES: &str =
    "SELECT id, name, type, label, additional_info::jsonb, 'unknown', 'mqtt', 'online', tenant_id \
     FROM device WHERE additional_info IS NULL OR additional_info <> '{\"broken\": ' ORDER BY id";
const TARGET_DEVICES: &str =
    "SELECT id, name, type, area, metadata, location, protocol, status, tenant_id FROM devices ORDER BY id";

#[test]
fn rollback_then_sync_at_four_jobs_never_writes_a_row_twice() {
    let env = setup(TbSpec {
        rows: 5_000,
        ..TbSpec::default()
    });
    // Tables of the user's, without a key: nothing but tsmigrate itself keeps a row from
    // being written twice.
    env.sql(
        "iiot",
        "CREATE TABLE devices (id uuid, name text, type text, area text, metadata jsonb, location text, \
                               protocol text, status text, tenant_id uuid);
         CREATE TABLE telemetry (device_id uuid, \"timestamp\" timestamptz, key text, value float8, \
                                 text_value text, metadata jsonb);",
    );
    let plan = example_plan();
    let jobs = ["--jobs", "4", "--max-rejects", "10"];
    let mut args = vec!["run", plan.as_str(), "--progress", "off"];
    args.extend(jobs);
    assert_exit(&env.tsmigrate(&args), 0);
    let dict = env.tb.dictionary_table;
    for round in 0..3 {
        // A device provisioned after the migration, with telemetry.
        let id = format!("5a0c1e20-1d2e-11f0-8a3b-00000000000{round}");
        let now = now_ms(&env);
        env.sql(
            "tb",
            &format!(
                "INSERT INTO device (id, created_time, additional_info, customer_id, device_profile_id, type, name, label, tenant_id) \
                 SELECT '{id}', {now}, '{{}}', customer_id, device_profile_id, type, 'Tank 10{round}', 'Area N', tenant_id FROM device LIMIT 1;
                 INSERT INTO ts_kv (entity_id, key, ts, dbl_v) SELECT '{id}', 1 + g % 3, {now} - g * 1000, g FROM generate_series(1, 30) g;"
            ),
        );
        let mut sync = vec!["sync", plan.as_str()];
        sync.extend(jobs);
        assert_exit(&env.tsmigrate(&sync), 0);
        let runs = env.tsmigrate(&["runs", &plan, "--json"]);
        let runs: serde_json::Value =
            serde_json::from_slice(&runs.stdout).unwrap_or_else(|e| panic!("{e}"));
        let last = runs["runs"]
            .as_array()
            .and_then(|r| r.last())
            .and_then(|r| r["id"].as_i64())
            .unwrap_or_else(|| panic!("no run in {runs}"));
        let last = last.to_string();
        assert_exit(
            &env.tsmigrate(&["rollback", &plan, "--run", &last, "--yes"]),
            0,
        );
        assert_exit(&env.tsmigrate(&sync), 0);
        let what = format!("round {round}: rollback then sync");
        assert_same_rows(
            &what,
            &env.sql("tb", SOURCE_DEVICES),
            &env.sql("iiot", TARGET_DEVICES),
        );
        assert_same_rows(
            &what,
            &env.sql("tb", &expected_telemetry(dict)),
            &env.sql("iiot", TARGET_TELEMETRY),
        );
    }
}

#[test]
fn the_example_runs_where_renamed_keys_are_missing_and_renames_them_when_they_appear() {
    let env = setup(TbSpec {
        rows: 3_000,
        ..TbSpec::default()
    });
    let dict = env.tb.dictionary_table;
    // An instance whose devices never reported key "151" (the example renames it).
    env.sql(
        "tb",
        &format!(
            "DELETE FROM ts_kv WHERE key = (SELECT key_id FROM {dict} WHERE key = '151');
             DELETE FROM ts_kv_latest WHERE key = (SELECT key_id FROM {dict} WHERE key = '151');
             DELETE FROM {dict} WHERE key = '151';"
        ),
    );
    let plan = example_plan();
    let out = env.tsmigrate(&["check", &plan]);
    assert_exit(&out, 0);
    let note = "rename_keys names 1 key(s) not in ts_kv_dictionary yet (151): renamed when ThingsBoard adds them";
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(note),
        "{}",
        text(&out)
    );
    let out = env.tsmigrate(&["run", &plan, "--progress", "off", "--max-rejects", "10"]);
    assert_exit(&out, 0);
    assert!(text(&out).contains(note), "{}", text(&out));
    assert_same_rows(
        "the run",
        &env.sql("tb", &expected_telemetry(dict)),
        &env.sql("iiot", TARGET_TELEMETRY),
    );
    // ThingsBoard adds the key when a device first reports it: the sync renames it.
    let now = now_ms(&env);
    let device = &env.tb.devices[0].0;
    env.sql(
        "tb",
        &format!(
            "INSERT INTO {dict} (key) VALUES ('151');
             INSERT INTO ts_kv (entity_id, key, ts, dbl_v)
             SELECT '{device}', (SELECT key_id FROM {dict} WHERE key = '151'), {now} - g * 1000, -60 - g FROM generate_series(1, 5) g;"
        ),
    );
    let out = env.tsmigrate(&["sync", &plan, "--max-rejects", "10"]);
    assert_exit(&out, 0);
    assert_eq!(
        env.count(
            "iiot",
            "SELECT count(*) FROM telemetry WHERE key = 'signal_rssi'"
        ),
        5
    );
    assert_same_rows(
        "the sync",
        &env.sql("tb", &expected_telemetry(dict)),
        &env.sql("iiot", TARGET_TELEMETRY),
    );
}
