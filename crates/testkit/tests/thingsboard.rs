//! Tests of the ThingsBoard fixture builder: the schema, partitions,
//! dictionary, entities, generated telemetry and every nasty row are really
//! in the database, for both dictionary generations.

use std::net::TcpStream;
use std::time::Duration;

use tsmigrate_testkit::thingsboard::{
    create_thingsboard, epoch_ms, nasty_strings, Dictionary, TbFixture, TbSpec, JSON_KEY,
    LONG_STRING_CHARS, NASTY_DOUBLES, NASTY_JSON, NASTY_LONGS, NULL_UUID, TELEMETRY_KEYS,
    UNUSED_KEY,
};
use tsmigrate_testkit::PgCluster;

/// Runs a query that must succeed.
fn q(cluster: &PgCluster, fixture: &TbFixture, sql: &str) -> String {
    cluster
        .psql(&fixture.db, sql)
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Lower-case hex of a string's UTF-8 bytes.
fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

fn key_id(fixture: &TbFixture, name: &str) -> i32 {
    fixture
        .keys
        .iter()
        .find(|(_, n)| n == name)
        .unwrap_or_else(|| panic!("no key {name}"))
        .0
}

#[test]
fn legacy_dictionary_fixture_is_complete() {
    check_nasty_fixture(Dictionary::Legacy);
}

#[test]
fn key_dictionary_fixture_is_complete() {
    check_nasty_fixture(Dictionary::KeyDictionary);
}

fn check_nasty_fixture(dictionary: Dictionary) {
    let cluster = PgCluster::start().unwrap();
    let port = cluster.port();
    let spec = TbSpec {
        dictionary,
        ..TbSpec::default()
    };
    let f = create_thingsboard(&cluster, "tb", &spec).unwrap();
    let c = &cluster;

    // --- schema and dictionary -------------------------------------------
    let (table, other, pkey) = match dictionary {
        Dictionary::Legacy => ("ts_kv_dictionary", "key_dictionary", "ts_key_id_pkey"),
        Dictionary::KeyDictionary => (
            "key_dictionary",
            "ts_kv_dictionary",
            "key_dictionary_id_pkey",
        ),
    };
    assert_eq!(f.dictionary_table, table);
    assert_eq!(f.db, "tb");
    assert_eq!(f.url, cluster.url("tb"));
    assert_eq!(
        q(
            c,
            &f,
            &format!("SELECT to_regclass('{table}') IS NOT NULL, to_regclass('{other}') IS NULL")
        ),
        "t|t"
    );
    assert_eq!(
        q(c, &f, &format!("SELECT conname FROM pg_constraint WHERE conrelid = '{table}'::regclass AND contype = 'p'")),
        pkey
    );
    assert_eq!(
        q(c, &f, "SELECT conname FROM pg_constraint WHERE conrelid = 'ts_kv'::regclass AND contype = 'p'"),
        "ts_kv_pkey"
    );
    assert_eq!(
        q(c, &f, "SELECT schema_version FROM tb_schema_settings"),
        dictionary.schema_version().to_string()
    );
    let latest_has_version = q(
        c,
        &f,
        "SELECT count(*) FROM information_schema.columns WHERE table_name = 'ts_kv_latest' AND column_name = 'version'",
    );
    assert_eq!(
        latest_has_version,
        if dictionary == Dictionary::KeyDictionary {
            "1"
        } else {
            "0"
        }
    );

    // 27 telemetry keys + the JSON key + the unused key + 3 keys of other entities' telemetry,
    // ids in insertion order, which is not alphabetical; v4.3.1.3 adds the attribute keys
    // that are not telemetry keys too (its key_dictionary is shared with attribute_kv).
    let db_keys = q(
        c,
        &f,
        &format!("SELECT key_id || '=' || key FROM {table} ORDER BY key_id"),
    );
    let listed: Vec<String> = f
        .keys
        .iter()
        .map(|(id, name)| format!("{id}={name}"))
        .collect();
    assert_eq!(db_keys.lines().collect::<Vec<_>>(), listed);
    let attribute_only_keys = [
        "lastActivityTime",
        "firmwareVersion",
        "targetLevel",
        "note",
        "bigCounter",
        "calibration",
        "address",
        "billingPlan",
    ];
    match dictionary {
        Dictionary::Legacy => assert_eq!(f.keys.len(), 32),
        Dictionary::KeyDictionary => {
            assert_eq!(f.keys.len(), 32 + attribute_only_keys.len());
            for name in attribute_only_keys {
                assert!(key_id(&f, name) > 32, "{name}");
            }
        }
    }
    for name in [
        "86",
        "87",
        "146",
        "147",
        "148",
        "149",
        "150",
        "151",
        "temperature",
        "status",
        "config",
    ] {
        key_id(&f, name);
    }
    for (index, (name, _)) in TELEMETRY_KEYS.iter().enumerate() {
        assert_eq!(f.keys[index], (index as i32 + 1, name.to_string()));
    }
    let mut by_name = f.keys.clone();
    by_name.sort_by(|a, b| a.1.cmp(&b.1));
    assert_ne!(
        by_name, f.keys,
        "key ids must not follow alphabetical order"
    );
    let unused = f.unused_key.clone().unwrap();
    assert_eq!(unused, (29, UNUSED_KEY.to_string()));
    assert_eq!(
        q(
            c,
            &f,
            &format!("SELECT count(*) FROM ts_kv WHERE key = {}", unused.0)
        ),
        "0"
    );

    // --- partitions --------------------------------------------------------
    let children = q(
        c,
        &f,
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
         WHERE i.inhparent = 'ts_kv'::regclass ORDER BY c.relname",
    );
    assert_eq!(
        children.lines().collect::<Vec<_>>(),
        [
            "ts_kv_2025_08",
            "ts_kv_2025_09",
            "ts_kv_2025_10",
            "ts_kv_indefinite"
        ]
    );
    assert_eq!(
        f.partitions,
        [
            "ts_kv_2025_08",
            "ts_kv_2025_09",
            "ts_kv_2025_10",
            "ts_kv_indefinite"
        ]
    );
    assert_eq!(
        q(c, &f, "SELECT pg_get_expr(relpartbound, oid) FROM pg_class WHERE relname = 'ts_kv_indefinite'"),
        "DEFAULT"
    );
    assert_eq!(
        q(
            c,
            &f,
            "SELECT pg_get_expr(relpartbound, oid) FROM pg_class WHERE relname = 'ts_kv_2025_09'"
        ),
        format!(
            "FOR VALUES FROM ('{}') TO ('{}')",
            epoch_ms(2025, 9, 1),
            epoch_ms(2025, 10, 1)
        )
    );
    // Every generated month holds data.
    for month in ["ts_kv_2025_08", "ts_kv_2025_09", "ts_kv_2025_10"] {
        let n: u64 = q(c, &f, &format!("SELECT count(*) FROM {month}"))
            .parse()
            .unwrap();
        assert!(n > 6_000, "{month} has {n} rows");
    }
    // The default partition holds exactly the out-of-range rows.
    assert_eq!(
        q(
            c,
            &f,
            "SELECT string_agg(ts::text, ',' ORDER BY ts) FROM ts_kv_indefinite"
        ),
        format!("-1,0,{},{}", epoch_ms(1971, 1, 1), epoch_ms(2100, 1, 1))
    );

    // --- counts and the generated distribution ---------------------------
    assert_eq!(
        q(c, &f, "SELECT count(*) FROM ts_kv"),
        f.ts_kv_rows.to_string()
    );
    assert!(
        (19_000..=21_000).contains(&f.generated_rows),
        "{}",
        f.generated_rows
    );
    let first_start = epoch_ms(2025, 8, 1);
    let generated = q(
        c,
        &f,
        &format!(
            "SELECT count(*) FROM ts_kv WHERE ts % 1000 = 0 AND ts > {first_start} AND ts < {}",
            epoch_ms(2025, 11, 1)
        ),
    );
    assert_eq!(generated, f.generated_rows.to_string());
    // Generated rows: exactly one value column, the one of their key.
    let wrong_column = q(
        c,
        &f,
        &format!(
            "SELECT count(*) FROM ts_kv WHERE ts % 1000 = 0 AND ts > {first_start} AND NOT (
                num_nonnulls(bool_v, str_v, long_v, dbl_v, json_v) = 1 AND CASE
                    WHEN key BETWEEN 1 AND 20 THEN dbl_v IS NOT NULL
                    WHEN key BETWEEN 21 AND 24 THEN long_v IS NOT NULL
                    WHEN key BETWEEN 25 AND 26 THEN bool_v IS NOT NULL
                    WHEN key = 27 THEN str_v IS NOT NULL
                END)"
        ),
    );
    assert_eq!(wrong_column, "0");
    assert_eq!(
        q(c, &f, "SELECT count(DISTINCT key) || '|' || count(DISTINCT entity_id) FROM ts_kv WHERE ts % 1000 = 0 AND ts > 1000"),
        "27|7"
    );

    // --- entities ------------------------------------------------------------
    assert_eq!(f.devices.len(), 7);
    assert_eq!(f.assets.len(), 2);
    assert_eq!(
        q(c, &f, "SELECT string_agg(name || '/' || label, ',' ORDER BY created_time) FROM device"),
        "Tank 1/Area A,Tank 2/Area B,Tank 3/Area C,Tank 4/Area A,Tank 5/Area B,Tank 6/Area C,Tank 7/Area A"
    );
    for (id, name) in &f.devices {
        assert_eq!(
            q(c, &f, &format!("SELECT name FROM device WHERE id = '{id}'")),
            *name
        );
    }
    assert_eq!(
        q(
            c,
            &f,
            "SELECT count(*) FROM device WHERE additional_info IS NULL"
        ),
        "1"
    );
    assert_eq!(
        q(
            c,
            &f,
            "SELECT name FROM device WHERE additional_info IS NULL"
        ),
        "Tank 2"
    );
    assert_eq!(
        q(
            c,
            &f,
            "SELECT additional_info FROM device WHERE name = 'Tank 3'"
        ),
        r#"{"broken": "#
    );
    assert!(c
        .psql(
            "tb",
            "SELECT additional_info::json FROM device WHERE name = 'Tank 3'"
        )
        .is_err());
    assert_eq!(
        q(
            c,
            &f,
            "SELECT count(additional_info::json) FROM device WHERE name <> 'Tank 3'"
        ),
        "5" // Tank 2 is NULL, Tank 3 is invalid
    );
    assert_eq!(q(c, &f, "SELECT count(*) FROM tenant"), "1");
    assert_eq!(
        q(
            c,
            &f,
            &format!(
                "SELECT count(*) FROM customer WHERE tenant_id = '{}'",
                f.tenant_id
            )
        ),
        "2"
    );
    assert_eq!(
        q(
            c,
            &f,
            &format!(
                "SELECT count(*) FROM device WHERE customer_id = '{}' AND tenant_id = '{}'",
                f.customer_id, f.tenant_id
            )
        ),
        "7"
    );

    // --- nasty doubles -----------------------------------------------------
    let temperature = key_id(&f, "temperature");
    let device1 = &f.devices[0].0;
    for value in NASTY_DOUBLES {
        let n = q(
            c,
            &f,
            &format!("SELECT count(*) FROM ts_kv WHERE entity_id = '{device1}' AND key = {temperature} AND dbl_v = '{value}'::float8 AND ts % 1000 = 7"),
        );
        assert_eq!(n, "1", "double {value}");
    }
    assert_eq!(
        q(c, &f, "SELECT count(*) FROM ts_kv WHERE dbl_v = 'NaN'"),
        "1"
    );
    assert_eq!(
        q(
            c,
            &f,
            "SELECT count(*) FROM ts_kv WHERE dbl_v = '-Infinity'"
        ),
        "1"
    );
    assert_eq!(
        q(c, &f, "SELECT dbl_v FROM ts_kv WHERE dbl_v::text = '-0'"),
        "-0"
    );
    assert_eq!(
        q(
            c,
            &f,
            "SELECT dbl_v FROM ts_kv WHERE dbl_v > 0 AND dbl_v < 1e-320"
        ),
        "5e-324"
    );
    assert_eq!(
        q(
            c,
            &f,
            "SELECT dbl_v FROM ts_kv WHERE dbl_v > 1e308 AND dbl_v < 'Infinity'"
        ),
        "1.7976931348623157e+308"
    );

    // --- nasty longs -------------------------------------------------------
    assert_eq!(
        q(
            c,
            &f,
            "SELECT long_v FROM ts_kv WHERE long_v = 9007199254740993"
        ),
        "9007199254740993"
    );
    let energy = key_id(&f, "energy_total_Wh");
    let longs = q(
        c,
        &f,
        &format!("SELECT string_agg(long_v::text, ',' ORDER BY ts) FROM ts_kv WHERE key = {energy} AND ts % 1000 = 7 AND long_v IS NOT NULL"),
    );
    let expected: Vec<String> = NASTY_LONGS.iter().map(i64::to_string).collect();
    assert_eq!(longs, expected.join(","));
    assert!(longs.contains("9223372036854775807") && longs.contains("-9223372036854775808"));

    // --- nasty strings, compared byte for byte ------------------------------
    let config = key_id(&f, "config");
    let device2 = &f.devices[1].0;
    let stored = q(
        c,
        &f,
        &format!("SELECT encode(convert_to(str_v, 'UTF8'), 'hex') FROM ts_kv WHERE entity_id = '{device2}' AND key = {config} AND ts % 1000 = 7 ORDER BY ts"),
    );
    let expected: Vec<String> = nasty_strings().iter().map(|s| hex(s)).collect();
    assert_eq!(stored.lines().collect::<Vec<_>>(), expected);
    assert_eq!(
        q(
            c,
            &f,
            "SELECT str_v FROM ts_kv WHERE str_v = 'tab' || chr(9) || 'here'"
        ),
        "tab\there"
    );
    assert_eq!(q(c, &f, "SELECT count(*) FROM ts_kv WHERE str_v = ''"), "1");
    assert_eq!(
        q(
            c,
            &f,
            &format!("SELECT count(*) FROM ts_kv WHERE length(str_v) = {LONG_STRING_CHARS}")
        ),
        "1"
    );
    assert_eq!(
        q(c, &f, r"SELECT count(*) FROM ts_kv WHERE str_v = '\N'"),
        "1"
    );
    assert_eq!(
        q(
            c,
            &f,
            "SELECT count(*) FROM ts_kv WHERE str_v LIKE '%e' || chr(769) || '%'"
        ),
        "1"
    );

    // --- nasty JSON, verbatim ---------------------------------------------
    let json_key = key_id(&f, JSON_KEY);
    let stored = q(
        c,
        &f,
        &format!("SELECT encode(convert_to(json_v::text, 'UTF8'), 'hex') FROM ts_kv WHERE key = {json_key} ORDER BY ts"),
    );
    let expected: Vec<String> = NASTY_JSON.iter().map(|s| hex(s)).collect();
    assert_eq!(stored.lines().collect::<Vec<_>>(), expected);
    assert_eq!(
        q(c, &f, &format!("SELECT count(*) FROM ts_kv WHERE key = {json_key} AND json_v IS NOT NULL AND json_v::text = 'null'")),
        "1"
    );

    // --- all-NULL rows and type drift ----------------------------------------
    assert_eq!(
        q(c, &f, "SELECT count(*) FROM ts_kv WHERE num_nonnulls(bool_v, str_v, long_v, dbl_v, json_v) = 0"),
        "3"
    );
    assert_eq!(
        q(
            c,
            &f,
            &format!("SELECT str_v FROM ts_kv WHERE key = {temperature} AND str_v IS NOT NULL")
        ),
        "N/A"
    );
    assert_eq!(
        q(
            c,
            &f,
            &format!("SELECT dbl_v FROM ts_kv WHERE key = {energy} AND dbl_v IS NOT NULL")
        ),
        "1.5"
    );

    // --- partition edges -----------------------------------------------------
    assert_eq!(
        q(
            c,
            &f,
            &format!("SELECT tableoid::regclass FROM ts_kv WHERE ts = {first_start}")
        ),
        "ts_kv_2025_08"
    );
    assert_eq!(
        q(
            c,
            &f,
            &format!(
                "SELECT tableoid::regclass FROM ts_kv WHERE ts = {}",
                epoch_ms(2025, 11, 1) - 1
            )
        ),
        "ts_kv_2025_10"
    );

    // --- assets and orphans ----------------------------------------------------
    assert_eq!(
        q(
            c,
            &f,
            "SELECT count(*) FROM ts_kv t JOIN asset a ON a.id = t.entity_id"
        ),
        // v3.6.4 keeps queue statistics as telemetry of a `TbServiceQueue` asset.
        if dictionary == Dictionary::Legacy {
            "6"
        } else {
            "4"
        }
    );
    assert_eq!(
        q(
            c,
            &f,
            &format!(
                "SELECT count(*) FROM ts_kv WHERE entity_id = '{}'",
                f.assets[0].0
            )
        ),
        "4"
    );
    let orphan = f.orphan_entity_id.clone().unwrap();
    assert_eq!(
        q(
            c,
            &f,
            &format!(
                "SELECT string_agg(DISTINCT entity_id::text, ',') || '|' || count(*) FROM ts_kv t \
                 WHERE entity_id NOT IN (SELECT id FROM device UNION SELECT id FROM asset \
                 UNION SELECT id FROM customer UNION SELECT id FROM tenant UNION SELECT id FROM api_usage_state \
                 UNION SELECT '{}'::uuid)",
                f.queue_stats_id
            )
        ),
        format!("{orphan}|3")
    );
    check_instance(c, &f, dictionary);

    // --- ts_kv_latest -------------------------------------------------------
    assert_eq!(
        q(c, &f, "SELECT count(*) FROM ts_kv_latest"),
        q(
            c,
            &f,
            "SELECT count(*) + 2 FROM (SELECT DISTINCT entity_id, key FROM ts_kv) s"
        )
    );
    assert_eq!(
        q(
            c,
            &f,
            &format!(
                "SELECT count(*) FROM ts_kv_latest l WHERE l.entity_id <> '{}' AND l.ts <> \
                 (SELECT max(ts) FROM ts_kv t WHERE t.entity_id = l.entity_id AND t.key = l.key)",
                f.entity_view_id
            )
        ),
        "0"
    );
    assert_eq!(
        q(c, &f, &format!("SELECT dbl_v FROM ts_kv_latest WHERE entity_id = '{device1}' AND key = {temperature}")),
        "2100"
    );

    // --- statistics exist ---------------------------------------------------
    assert_ne!(
        q(
            c,
            &f,
            "SELECT count(*) FROM pg_stats WHERE tablename = 'ts_kv_2025_08'"
        ),
        "0"
    );

    drop(cluster);
    assert!(
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(2)).is_err()
    );
}

#[test]
fn clean_fixture_has_only_generated_rows() {
    let cluster = PgCluster::start().unwrap();
    let spec = TbSpec {
        dictionary: Dictionary::KeyDictionary,
        devices: 2,
        assets: 0,
        // Unsorted, with a duplicate and a gap: partitions for three months.
        months: vec![(2024, 12), (2024, 2), (2024, 12), (2025, 1)],
        rows: 5_000,
        nasty: false,
        seed: 7,
    };
    let f = create_thingsboard(&cluster, "clean", &spec).unwrap();
    assert_eq!(f.ts_kv_rows, f.generated_rows);
    // 27 telemetry keys, then the 7 attribute keys that are not telemetry keys (no asset:
    // no `address`): v4.3.1.3 shares key_dictionary with attribute_kv.
    assert_eq!(f.keys.len(), 34);
    assert!(f.unused_key.is_none());
    assert!(f.orphan_entity_id.is_none());
    assert_eq!(
        f.partitions,
        [
            "ts_kv_2024_02",
            "ts_kv_2024_12",
            "ts_kv_2025_01",
            "ts_kv_indefinite"
        ]
    );
    assert_eq!(
        cluster
            .psql("clean", "SELECT count(*) FROM ts_kv_indefinite")
            .unwrap(),
        "0"
    );
    assert_eq!(
        cluster
            .psql("clean", "SELECT count(*) FROM ts_kv WHERE num_nonnulls(bool_v, str_v, long_v, dbl_v, json_v) <> 1")
            .unwrap(),
        "0"
    );
    // February 2024 (a leap month) got its share.
    let feb: u64 = cluster
        .psql("clean", "SELECT count(*) FROM ts_kv_2024_02")
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(feb * 3, f.generated_rows);

    // Same spec, same data: a second database is identical.
    let g = create_thingsboard(&cluster, "clean2", &spec).unwrap();
    assert_eq!(f.devices, g.devices);
    let digest = "SELECT md5(string_agg(t::text, ',' ORDER BY entity_id, key, ts)) FROM ts_kv t";
    assert_eq!(
        cluster.psql("clean", digest).unwrap(),
        cluster.psql("clean2", digest).unwrap()
    );

    // A different seed gives other ids.
    let h = create_thingsboard(
        &cluster,
        "clean3",
        &TbSpec {
            seed: 8,
            ..spec.clone()
        },
    )
    .unwrap();
    assert_ne!(f.devices, h.devices);

    // Invalid specs fail before touching the cluster.
    let bad = TbSpec {
        months: vec![(2025, 13)],
        ..spec
    };
    assert!(create_thingsboard(&cluster, "bad", &bad).is_err());
    assert_eq!(
        cluster
            .psql(
                "postgres",
                "SELECT count(*) FROM pg_database WHERE datname = 'bad'"
            )
            .unwrap(),
        "0"
    );
}

/// The entities around the telemetry, as each generation's ThingsBoard writes them.
fn check_instance(c: &PgCluster, f: &TbFixture, dictionary: Dictionary) {
    // "No customer" is NULL_UUID, never SQL NULL.
    assert_eq!(
        q(
            c,
            f,
            &format!(
                "SELECT (SELECT count(*) FROM asset WHERE customer_id = '{NULL_UUID}' AND type = 'Pump Station'), \
                        (SELECT count(*) FROM entity_view WHERE customer_id = '{NULL_UUID}'), \
                        (SELECT count(*) FROM device WHERE customer_id IS NULL)"
            )
        ),
        "1|1|0"
    );
    // A device's type is its profile's name.
    assert_eq!(
        q(
            c,
            f,
            "SELECT count(*) FROM device d JOIN device_profile p ON p.id = d.device_profile_id AND p.name = d.type"
        ),
        "7"
    );
    assert_eq!(
        q(
            c,
            f,
            "SELECT count(*), count(DISTINCT relation_type) FROM relation"
        ),
        "5|2"
    );
    let scopes = match dictionary {
        // v3.6.4: scope and key as text, the entity's type in the row.
        Dictionary::Legacy => q(
            c,
            f,
            "SELECT attribute_type || ':' || count(*) FROM attribute_kv GROUP BY attribute_type ORDER BY 1",
        ),
        // v4.3.1.3: AttributeScope ids, keys from key_dictionary.
        Dictionary::KeyDictionary => q(
            c,
            f,
            "SELECT attribute_type || ':' || count(*) FROM attribute_kv a \
             JOIN key_dictionary k ON k.key_id = a.attribute_key GROUP BY attribute_type ORDER BY 1",
        ),
    };
    let expected = match dictionary {
        Dictionary::Legacy => "CLIENT_SCOPE:7\nSERVER_SCOPE:18\nSHARED_SCOPE:15",
        Dictionary::KeyDictionary => "1:7\n2:18\n3:15",
    };
    assert_eq!(scopes, expected);
    let versions = "SELECT (SELECT count(*) FROM information_schema.columns WHERE column_name = 'version' \
                    AND table_name IN ('attribute_kv', 'relation', 'ts_kv_latest', 'device', 'tenant'))";
    assert_eq!(
        q(c, f, versions),
        if dictionary == Dictionary::Legacy {
            "0"
        } else {
            "5"
        }
    );
    let queue = match dictionary {
        Dictionary::Legacy => format!("SELECT type FROM asset WHERE id = '{}'", f.queue_stats_id),
        Dictionary::KeyDictionary => format!(
            "SELECT queue_name || '_' || service_id FROM queue_stats WHERE id = '{}'",
            f.queue_stats_id
        ),
    };
    assert_eq!(
        q(c, f, &queue),
        if dictionary == Dictionary::Legacy {
            "TbServiceQueue"
        } else {
            "Main_tb-core-0"
        }
    );
}
