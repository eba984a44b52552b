//! End to end: real PostgreSQL clusters, ThingsBoard-shaped databases (both dictionary
//! variants, monthly partitions plus the default partition, every value type and the nasty
//! values), the real binary, and the target compared with the source row by row.

mod common;

use common::*;
use tsmigrate_testkit::thingsboard::{Dictionary, TbSpec};

fn example_plan_migrates_everything(dictionary: Dictionary) {
    let env = setup(spec(dictionary));
    let dict = env.tb.dictionary_table;
    let out = env.tsmigrate(&[
        "run",
        &example_plan(),
        "--max-rejects",
        "10",
        "--report",
        "report.json",
    ]);
    assert_exit(&out, 0);

    // Telemetry: every device row, every value, exactly.
    let expected = env.sql("tb", &expected_telemetry(dict));
    let actual = env.sql("iiot", TARGET_TELEMETRY);
    assert!(
        expected.len() > 100_000,
        "fixture too small: {} bytes",
        expected.len()
    );
    assert_same_rows("telemetry", &expected, &actual);
    // The nasty values made it: 2^53+1 as text, NaN and infinities as floats, the default partition.
    assert_eq!(
        env.count(
            "iiot",
            "SELECT count(*) FROM telemetry WHERE text_value = '9007199254740993'"
        ),
        1
    );
    assert_eq!(
        env.count(
            "iiot",
            "SELECT count(*) FROM telemetry WHERE text_value = '9223372036854775807'"
        ),
        1
    );
    assert!(env.count("iiot", "SELECT count(*) FROM telemetry WHERE value = 'NaN'") >= 1);
    assert!(
        env.count(
            "iiot",
            "SELECT count(*) FROM telemetry WHERE value = '-Infinity'"
        ) >= 1
    );
    assert!(
        env.count(
            "iiot",
            "SELECT count(*) FROM telemetry WHERE \"timestamp\" >= '2100-01-01'"
        ) >= 1
    );
    assert!(
        env.count(
            "iiot",
            "SELECT count(*) FROM telemetry WHERE key = 'tank_level_pct'"
        ) > 0
    );
    assert_eq!(
        env.count("iiot", "SELECT count(*) FROM telemetry WHERE key = '146'"),
        0
    );

    // Devices: all but the one whose additional_info is not JSON, which is rejected with its reason.
    let expected_devices = env.sql(
        "tb",
        "SELECT id, name, type, label, additional_info::jsonb, 'unknown', 'mqtt', 'online', tenant_id FROM device
         WHERE additional_info IS NULL OR additional_info <> '{\"broken\": ' ORDER BY id",
    );
    let actual_devices = env.sql(
        "iiot",
        "SELECT id, name, type, area, metadata, location, protocol, status, tenant_id FROM devices ORDER BY id",
    );
    assert_same_rows("devices", &expected_devices, &actual_devices);
    let broken = env.sql(
        "tb",
        "SELECT id FROM device WHERE additional_info = '{\"broken\": '",
    );
    let rejects = env.file("devices.rejects.csv");
    assert!(
        rejects.contains(broken.trim()),
        "rejects file lacks the broken device:\n{rejects}"
    );
    assert!(rejects.contains("not valid JSON"), "{rejects}");
    assert!(rejects.contains("metadata"), "{rejects}");

    // The report adds up.
    let report = read_json(&env.dir.path().join("report.json"));
    let streams = report["streams"].as_array().cloned().unwrap_or_default();
    let tel = streams
        .iter()
        .find(|s| s["name"] == "telemetry")
        .cloned()
        .unwrap_or_default();
    let n = env.count(
        "tb",
        &format!("SELECT count(*) FROM ({}) x", expected_telemetry(dict)),
    );
    assert_eq!(env.count("iiot", "SELECT count(*) FROM telemetry"), n);
    assert_eq!(tel["rows_read"].as_u64(), Some(n));
    assert_eq!(tel["rows_written"].as_u64(), Some(n));
    assert_eq!(tel["rows_rejected"].as_u64(), Some(0));
    let dev = streams
        .iter()
        .find(|s| s["name"] == "devices")
        .cloned()
        .unwrap_or_default();
    assert_eq!(dev["rows_rejected"].as_u64(), Some(1));
    assert_eq!(
        dev["rows_read"].as_u64(),
        Some(dev["rows_written"].as_u64().unwrap_or(0) + 1),
        "{dev}"
    );
    assert_eq!(report["status"], "ok");
}

#[test]
fn example_plan_migrates_everything_ts_kv_dictionary() {
    example_plan_migrates_everything(Dictionary::Legacy);
}

#[test]
fn example_plan_migrates_everything_key_dictionary() {
    example_plan_migrates_everything(Dictionary::KeyDictionary);
}

#[test]
fn raw_copy_keeps_every_row_of_every_partition() {
    let env = setup(spec(Dictionary::Legacy));
    let plan = env.plan(
        "raw.toml",
        r#"
[source]
kind = "thingsboard"
url = "@SOURCE@"
[target]
kind = "postgres"
url = "@TARGET@"
[run]
partition_rows = 3000
[[streams]]
name = "telemetry"
table = "raw_ts_kv"
create = true
"#,
    );
    let out = env.tsmigrate(&["run", plan.to_str().unwrap_or_default(), "--jobs", "3"]);
    assert_exit(&out, 0);
    let dict = env.tb.dictionary_table;
    let expected = env.sql(
        "tb",
        &format!(
            "SELECT t.entity_id, d.key, t.ts, t.bool_v, t.str_v, t.long_v, t.dbl_v, t.json_v::jsonb
             FROM ts_kv t JOIN {dict} d ON d.key_id = t.key ORDER BY 1, 2, 3"
        ),
    );
    let actual = env.sql(
        "iiot",
        "SELECT entity_id, key, ts, bool_v, str_v, long_v, dbl_v, json_v FROM raw_ts_kv ORDER BY 1, 2, 3",
    );
    assert_same_rows("raw ts_kv", &expected, &actual);
    assert_eq!(
        env.count("iiot", "SELECT count(*) FROM raw_ts_kv"),
        env.tb.ts_kv_rows
    );
    // Several partitions were planned (3000-row target) and all committed.
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.lines().any(|l| l.starts_with("telemetry")),
        "{stdout}"
    );
    // The orphan entity (neither device nor asset) and the default partition are included.
    let orphan = env.tb.orphan_entity_id.clone().unwrap_or_default();
    assert!(
        env.count(
            "iiot",
            &format!("SELECT count(*) FROM raw_ts_kv WHERE entity_id = '{orphan}'")
        ) > 0
    );
    assert!(
        env.count(
            "iiot",
            "SELECT count(*) FROM raw_ts_kv WHERE ts < 1754006400000"
        ) > 0
    );
}

#[test]
fn filters_rename_and_limit() {
    let env = setup(spec(Dictionary::KeyDictionary));
    let (dev_id, dev_name) = env.tb.devices[1].clone();
    let plan = env.plan(
        "filtered.toml",
        &format!(
            r#"
[source]
kind = "thingsboard"
url = "@SOURCE@"
[target]
kind = "postgres"
url = "@TARGET@"
[[streams]]
name = "telemetry"
create = true
filter = {{ since = "2025-09-01T00:00:00Z", until = "2025-10-15T00:00:00Z", devices = ["{dev_name}"], keys = ["146", "temperature"] }}
rename_keys = {{ "146" = "tank_level_pct" }}
columns = [
  {{ name = "device_id", type = "uuid", expr = "entity_id" }},
  {{ name = "ts", type = "bigint", expr = "ts" }},
  {{ name = "key", type = "text" }},
  {{ name = "value", type = "float8", expr = "dbl_v" }},
]
"#
        ),
    );
    let out = env.tsmigrate(&["run", plan.to_str().unwrap_or_default()]);
    assert_exit(&out, 0);
    let expected = env.sql(
        "tb",
        &format!(
            "SELECT t.entity_id, t.ts, CASE d.key WHEN '146' THEN 'tank_level_pct' ELSE d.key END, t.dbl_v
             FROM ts_kv t JOIN key_dictionary d ON d.key_id = t.key
             WHERE t.entity_id = '{dev_id}' AND d.key IN ('146', 'temperature')
               AND t.ts >= 1756684800000 AND t.ts < 1760486400000
             ORDER BY 1, 3, 2"
        ),
    );
    assert!(expected.lines().count() > 10, "{expected}");
    let actual = env.sql(
        "iiot",
        "SELECT device_id, ts, key, value FROM telemetry ORDER BY 1, 3, 2",
    );
    assert_same_rows("filtered telemetry", &expected, &actual);

    // --limit N: the first N rows per device, in time order.
    env.sql("iiot", "DROP TABLE telemetry");
    // The plan changed (--limit): --restart plans it again instead of resuming.
    let out = env.tsmigrate(&[
        "run",
        plan.to_str().unwrap_or_default(),
        "--limit",
        "7",
        "--restart",
    ]);
    assert_exit(&out, 0);
    let expected = env.sql(
        "tb",
        &format!(
            "SELECT t.entity_id, t.ts, CASE d.key WHEN '146' THEN 'tank_level_pct' ELSE d.key END, t.dbl_v
             FROM ts_kv t JOIN key_dictionary d ON d.key_id = t.key
             WHERE t.entity_id = '{dev_id}' AND d.key IN ('146', 'temperature')
               AND t.ts >= 1756684800000 AND t.ts < 1760486400000
             ORDER BY t.ts, t.key LIMIT 7"
        ),
    );
    let actual = env.sql(
        "iiot",
        "SELECT device_id, ts, key, value FROM telemetry ORDER BY ts, key",
    );
    let sort = |s: &str| {
        let mut v: Vec<_> = s.lines().map(str::to_string).collect();
        v.sort();
        v.join("\n")
    };
    assert_eq!(actual.lines().count(), 7);
    assert_same_rows("limited telemetry", &sort(&expected), &sort(&actual));
}

#[test]
fn dry_run_writes_nothing_and_shows_what_it_would_write() {
    let env = setup(spec(Dictionary::Legacy));
    let out = env.tsmigrate(&["run", &example_plan(), "--dry-run", "--limit", "5"]);
    assert_exit(&out, 0);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("would create: CREATE TABLE \"telemetry\""),
        "{stdout}"
    );
    assert!(
        stdout.contains("first rows: (device_id, timestamp, key, value, text_value, metadata)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("would reject"),
        "the broken device should be reported:\n{stdout}"
    );
    assert_eq!(
        env.sql(
            "iiot",
            "SELECT to_regclass('telemetry') IS NULL AND to_regclass('devices') IS NULL"
        )
        .trim(),
        "t"
    );
    assert!(!env.dir.path().join("devices.rejects.csv").exists());
}

#[test]
fn values_that_cannot_be_stored_exactly_are_rejected_with_reasons() {
    let env = setup(spec(Dictionary::Legacy));
    let plan = env.plan(
        "strict.toml",
        r#"
[source]
kind = "thingsboard"
url = "@SOURCE@"
[target]
kind = "postgres"
url = "@TARGET@"
[[streams]]
name = "telemetry"
create = true
columns = [
  { name = "entity_id", type = "uuid" },
  { name = "key", type = "text" },
  { name = "ts", type = "bigint" },
  { name = "value", type = "float8", expr = "COALESCE(dbl_v, long_v)" },
  { name = "exact", type = "numeric", expr = "dbl_v" },
  { name = "parsed", type = "float8", expr = "CASE WHEN str_v = 'N/A' THEN str_v END" },
]
"#,
    );
    // Default --max-rejects 0: stop at the first bad row, naming it.
    let out = env.tsmigrate(&["run", plan.to_str().unwrap_or_default()]);
    assert_exit(&out, 3);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("rejected"), "{stderr}");
    assert!(
        stderr.contains("entity_id="),
        "the error names the row: {stderr}"
    );
    assert!(stderr.contains("telemetry.rejects.csv"), "{stderr}");

    // With room for them, every bad row is listed with its reason and the rest is written.
    // The table is dropped, so the stream starts over (--restart) rather than resuming.
    env.sql("iiot", "DROP TABLE telemetry");
    let out = env.tsmigrate(&[
        "run",
        plan.to_str().unwrap_or_default(),
        "--max-rejects",
        "100000",
        "--report",
        "r.json",
        "--restart",
    ]);
    assert_exit(&out, 0);
    let rejects = env.file("telemetry.rejects.csv");
    // Expected rejects computed independently, value by value.
    let rows = env.sql(
        "tb",
        &format!(
            "SELECT t.entity_id, d.key, t.ts, t.dbl_v, t.long_v, COALESCE(t.str_v = 'N/A', false)
             FROM ts_kv t JOIN {} d ON d.key_id = t.key",
            env.tb.dictionary_table
        ),
    );
    let mut expected_rejects = 0u64;
    let mut expected_written = 0u64;
    for line in rows.lines() {
        let f: Vec<&str> = line.split('|').collect();
        if f.len() < 6 {
            continue; // a continuation line of a multi-line string value
        }
        let dbl = f[3];
        let long = f[4].parse::<i64>().ok();
        let bad_numeric = matches!(dbl, "NaN" | "Infinity" | "-Infinity");
        let bad_float = dbl.is_empty() && long.is_some_and(|v| (v as f64) as i128 != v as i128);
        let bad_parse = f[5] == "t"; // the type-drift string 'N/A' is not a number
        if bad_numeric || bad_float || bad_parse {
            expected_rejects += 1;
        } else {
            expected_written += 1;
        }
    }
    assert!(expected_rejects >= 4, "fixture lacks bad values");
    let report = read_json(&env.dir.path().join("r.json"));
    let tel = &report["streams"][0];
    assert_eq!(
        tel["rows_rejected"].as_u64(),
        Some(expected_rejects),
        "{tel}"
    );
    assert_eq!(
        tel["rows_written"].as_u64(),
        Some(expected_written),
        "{tel}"
    );
    assert_eq!(
        env.count("iiot", "SELECT count(*) FROM telemetry"),
        expected_written
    );
    assert_eq!(
        rejects.lines().next(),
        Some("partition,entity_id,key,ts,column,reason,source_row")
    );
    assert!(
        rejects.contains("9007199254740993 cannot be represented exactly in float8"),
        "{rejects}"
    );
    assert!(
        rejects.contains("NaN cannot be stored in a numeric column"),
        "{rejects}"
    );
    assert!(rejects.contains("is not a number"), "{rejects}");
    // The row holding 2^53 + 1 was rejected, not written rounded to 2^53.
    let bad = env.sql(
        "tb",
        &format!(
            "SELECT t.entity_id, d.key, t.ts FROM ts_kv t JOIN {} d ON d.key_id = t.key WHERE t.long_v = 9007199254740993",
            env.tb.dictionary_table
        ),
    );
    let f: Vec<&str> = bad.trim().split('|').collect();
    assert_eq!(f.len(), 3, "{bad}");
    let q = format!(
        "SELECT count(*) FROM telemetry WHERE entity_id = '{}' AND key = '{}' AND ts = {}",
        f[0], f[1], f[2]
    );
    assert_eq!(env.count("iiot", &q), 0);
    assert!(
        rejects.contains(&format!("{},{},{}", f[0], f[1], f[2])),
        "{rejects}"
    );
}

#[test]
fn kill_9_leaves_no_partial_partition() {
    // 7 devices x 3 months, ~48k rows per (device, month); partition_rows 60k puts each
    // (device, month table) in a partition of its own: 21 partitions of one transaction each.
    let env = setup(TbSpec {
        rows: 1_000_000,
        nasty: false,
        ..TbSpec::default()
    });
    let plan = env.plan(
        "big.toml",
        r#"
[source]
kind = "thingsboard"
url = "@SOURCE@"
[target]
kind = "postgres"
url = "@TARGET@"
[run]
jobs = 2
partition_rows = 60000
batch_rows = 2048
[[streams]]
name = "telemetry"
create = true
columns = [
  { name = "entity_id", type = "uuid" },
  { name = "ts", type = "bigint" },
  { name = "key", type = "text" },
  { name = "dbl_v", type = "float8" },
]
"#,
    );
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tsmigrate"))
        .args([
            "run",
            plan.to_str().unwrap_or_default(),
            "--progress",
            "off",
        ])
        .current_dir(env.dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    // Wait for the first committed partition, then SIGKILL while the others are mid-COPY.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
    loop {
        let exists = env
            .sql("iiot", "SELECT to_regclass('telemetry') IS NOT NULL")
            .trim()
            == "t";
        if exists && env.count("iiot", "SELECT count(*) FROM telemetry") > 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no partition committed in time"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    child.kill().unwrap_or_else(|e| panic!("{e}"));
    let _ = child.wait();

    let source: std::collections::BTreeMap<String, u64> = env
        .sql(
            "tb",
            "SELECT entity_id || '/' || tableoid::regclass, count(*) FROM ts_kv GROUP BY 1",
        )
        .lines()
        .filter_map(|l| {
            Some((
                l.split('|').next()?.to_string(),
                l.split('|').nth(1)?.parse().ok()?,
            ))
        })
        .collect();
    assert_eq!(
        source.len(),
        21,
        "one partition per (device, month): {source:?}"
    );
    let target: std::collections::BTreeMap<String, u64> = env
        .sql(
            "iiot",
            "SELECT entity_id || '/' || CASE WHEN ts < 1756684800000 THEN 'ts_kv_2025_08'
                    WHEN ts < 1759276800000 THEN 'ts_kv_2025_09' ELSE 'ts_kv_2025_10' END, count(*)
             FROM telemetry GROUP BY 1",
        )
        .lines()
        .filter_map(|l| {
            Some((
                l.split('|').next()?.to_string(),
                l.split('|').nth(1)?.parse().ok()?,
            ))
        })
        .collect();
    assert!(
        !target.is_empty() && target.len() < source.len(),
        "the kill should land mid-run: {} of 21 committed",
        target.len()
    );
    for (pair, n) in &target {
        assert_eq!(Some(n), source.get(pair), "partition {pair} is partial");
    }
    // The committed partitions hold exactly the source rows.
    assert_eq!(
        env.count("iiot", "SELECT count(*) FROM telemetry"),
        target
            .keys()
            .map(|k| source.get(k).copied().unwrap_or(0))
            .sum::<u64>()
    );
    // No transaction is left open in the target.
    let open = "SELECT count(*) FROM pg_stat_activity WHERE datname = 'iiot' AND state LIKE 'idle in transaction%'";
    assert_eq!(env.count("iiot", open), 0);
}

#[test]
fn errors_are_clear_and_never_show_passwords() {
    let env = setup(TbSpec {
        rows: 100,
        nasty: false,
        ..TbSpec::default()
    });
    // Unreachable source with a password in the URL.
    let free_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(1);
    let plan = env.plan(
        "down.toml",
        &format!(
            r#"
[source]
kind = "thingsboard"
url = "postgres://tb:Sup3rS3cret@127.0.0.1:{free_port}/tb"
[target]
kind = "postgres"
url = "@TARGET@"
[[streams]]
name = "telemetry"
create = true
"#
        ),
    );
    let out = env.tsmigrate(&["run", plan.to_str().unwrap_or_default()]);
    assert_exit(&out, 1);
    let all = text(&out);
    assert!(!all.contains("Sup3rS3cret"), "{all}");
    assert!(all.contains("cannot connect to the source"), "{all}");
    assert!(all.contains("tb:***@127.0.0.1"), "{all}");

    // A variable that is not set.
    let plan = env.plan("env.toml", "[source]\nkind = \"thingsboard\"\nurl = \"${TSM_NOT_SET_ANYWHERE}\"\n[target]\nkind = \"postgres\"\nurl = \"@TARGET@\"\n[[streams]]\nname = \"telemetry\"\n");
    let out = env.tsmigrate(&["run", plan.to_str().unwrap_or_default()]);
    assert_exit(&out, 2);
    assert!(
        text(&out).contains("source.url uses ${TSM_NOT_SET_ANYWHERE}, which is not set"),
        "{}",
        text(&out)
    );

    // A malformed plan.
    let plan = env.plan("bad.toml", "[source]\nkind = \"thingsboard\"\nurl = \"@SOURCE@\"\n[target]\nkind = \"postgres\"\nurl = \"@TARGET@\"\n[[streams]]\nname = \"telemetry\"\ncolums = []\n");
    let out = env.tsmigrate(&["run", plan.to_str().unwrap_or_default()]);
    assert_exit(&out, 2);
    assert!(text(&out).contains("colums"), "{}", text(&out));

    // A mapping naming a column that does not exist.
    let plan = env.plan("col.toml", "[source]\nkind = \"thingsboard\"\nurl = \"@SOURCE@\"\n[target]\nkind = \"postgres\"\nurl = \"@TARGET@\"\n[[streams]]\nname = \"telemetry\"\ncreate = true\ncolumns = [{ name = \"v\", expr = \"dbl_value\" }]\n");
    let out = env.tsmigrate(&["run", plan.to_str().unwrap_or_default()]);
    assert_exit(&out, 2);
    assert!(text(&out).contains("dbl_value"), "{}", text(&out));
    assert_eq!(
        env.sql("iiot", "SELECT to_regclass('telemetry') IS NULL")
            .trim(),
        "t",
        "nothing may be written"
    );

    // A missing target table without create = true.
    let plan = env.plan("notable.toml", "[source]\nkind = \"thingsboard\"\nurl = \"@SOURCE@\"\n[target]\nkind = \"postgres\"\nurl = \"@TARGET@\"\n[[streams]]\nname = \"telemetry\"\n");
    let out = env.tsmigrate(&["run", plan.to_str().unwrap_or_default()]);
    assert_ne!(out.status.code(), Some(0));
    assert!(text(&out).contains("create = true"), "{}", text(&out));

    // An unknown device in a filter lists the known ones.
    let plan = env.plan("dev.toml", "[source]\nkind = \"thingsboard\"\nurl = \"@SOURCE@\"\n[target]\nkind = \"postgres\"\nurl = \"@TARGET@\"\n[[streams]]\nname = \"telemetry\"\ncreate = true\nfilter = { devices = [\"Tank 404\"] }\n");
    let out = env.tsmigrate(&["run", plan.to_str().unwrap_or_default()]);
    assert_exit(&out, 2);
    assert!(
        text(&out).contains("Tank 404") && text(&out).contains("Tank 1"),
        "{}",
        text(&out)
    );
}

#[test]
fn check_finds_both_dictionary_variants() {
    for dictionary in [Dictionary::Legacy, Dictionary::KeyDictionary] {
        let env = setup(TbSpec {
            dictionary,
            rows: 2_000,
            ..TbSpec::default()
        });
        let out = env.tsmigrate(&["check", &example_plan()]);
        assert_exit(&out, 0);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains(&format!("key dictionary: {}", env.tb.dictionary_table)),
            "{stdout}"
        );
        assert!(
            stdout.contains("ts_kv partitioned by ts into 4 tables"),
            "{stdout}"
        );
        assert!(stdout.contains("ts_kv_indefinite"), "{stdout}");
        assert!(
            stdout.contains("stream telemetry: telemetry → \"telemetry\""),
            "{stdout}"
        );
        assert!(stdout.contains("the table will be created"), "{stdout}");
        assert!(stdout.contains("check passed"), "{stdout}");
        // check writes nothing.
        assert_eq!(
            env.sql("iiot", "SELECT to_regclass('telemetry') IS NULL")
                .trim(),
            "t"
        );
    }
}
