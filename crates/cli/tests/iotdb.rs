//! IoTDB CSV exports as a source (`[source] kind = "iotdb"`), end to end with the real binary.
//!
//! No IoTDB server can be installed here, so the export files are written by the test in the
//! formats IoTDB's `export-data`/`export-csv` tools document: both layouts, headers with and
//! without `(TYPE)`, ISO-8601 and integer times, quoted TEXT with commas, quotes, backslash
//! escapes and newlines, empty fields (nulls), a file split in three, and malformed lines.
//! Every point is compared with the list the test expects, and the malformed lines must be in
//! the rejects file with their file and line.

mod common;

use std::path::Path;

use common::*;

/// Aligned by time, typed header, ISO times with an offset; split into three files (IoTDB
/// writes the header into each).
const BY_TIME_0: &str = "Time,root.factory.plant1.pump3.pressure(DOUBLE),root.factory.plant1.pump3.running(BOOLEAN),root.factory.plant1.pump3.note(TEXT)\n\
1970-01-01T08:00:00.001+08:00,1.5,true,\"plain\"\n\
2024-03-01T12:00:00.000+01:00,NaN,false,\"a, b \\\"c\\\" \\\\ d\"\n";
const BY_TIME_1: &str = "Time,root.factory.plant1.pump3.pressure(DOUBLE),root.factory.plant1.pump3.running(BOOLEAN),root.factory.plant1.pump3.note(TEXT)\n\
2024-03-01T12:00:01.000+01:00,-Infinity,,\"two\nlines\"\n\
2024-03-01T12:00:02.000+01:00,not-a-number,true,\n\
2024-03-01T12:00:03.000+01:00,2.25\n";
const BY_TIME_10: &str = "Time,root.factory.plant1.pump3.pressure(DOUBLE),root.factory.plant1.pump3.running(BOOLEAN),root.factory.plant1.pump3.note(TEXT)\n\
yesterday,1,true,\"x\"\n\
2024-03-01T12:00:04.000+01:00,1e300,true,\"\"\n";

/// Aligned by device, untyped header, integer ms times (one with its Time cell empty).
const BY_DEVICE: &str = "Time,Device,temperature,status,count\n\
1709294400000,root.factory.plant2.`tank.7`,21.5,\"OK\",9007199254740993\n\
1709294401000,root.factory.plant2.`tank.7`,,\"ALARM: level, high\",12\n\
,root.factory.plant2.tank8,-0.0,root.factory.plant2,\n\
1709294402000,,1,2,3\n";

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn exports_of_both_layouts_become_points_and_bad_lines_become_rejects() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let d = dir.path();
    std::fs::create_dir(d.join("by_time")).unwrap_or_else(|e| panic!("{e}"));
    // Written out of order: files are read in natural order of their names.
    write(&d.join("by_time"), "dump0_10.csv", BY_TIME_10);
    write(&d.join("by_time"), "dump0_0.csv", BY_TIME_0);
    write(&d.join("by_time"), "dump0_1.csv", BY_TIME_1);
    write(&d.join("by_time"), "notes.txt", "not an export");
    write(d, "by_device.csv", BY_DEVICE);
    let plan = |path: &str, extra: &str| {
        format!(
            "[source]\nkind = \"iotdb\"\npath = \"{path}\"\nstrip_prefix = \"root.factory.\"\n{extra}\n\
             [target]\nkind = \"sqlite\"\npath = \"points.db\"\n\
             [run]\nmax_rejects = 10\n\
             [[streams]]\nname = \"points\"\ncreate = true\n"
        )
    };
    write(
        d,
        "time.toml",
        &plan(
            "by_time/dump0_*.csv",
            "devices = { \"plant1.pump3\" = \"Pump 3\" }",
        ),
    );
    let out = run_tsmigrate(d, &["run", "time.toml", "--report", "time.json"], &[]);
    assert_exit(&out, 0);
    let t = text(&out);
    assert!(t.contains("3 row(s) rejected"), "{t}");

    // Every point, in the form SQLite holds it.
    let got = sqlite(
        &d.join("points.db"),
        "SELECT device, measurement, time, data_type, quote(bool_value), quote(int_value), quote(double_value), quote(text_value), replace(file, rtrim(file, replace(file, '/', '')), ''), line \
         FROM points ORDER BY line, file, measurement",
    );
    let expected = [
        "Pump 3|note|1970-01-01T00:00:00.001Z|TEXT|NULL|NULL|NULL|'plain'|dump0_0.csv|2",
        "Pump 3|pressure|1970-01-01T00:00:00.001Z|DOUBLE|NULL|NULL|1.5|NULL|dump0_0.csv|2",
        "Pump 3|running|1970-01-01T00:00:00.001Z|BOOLEAN|1|NULL|NULL|NULL|dump0_0.csv|2",
        "Pump 3|note|2024-03-01T11:00:01.000Z|TEXT|NULL|NULL|NULL|'two\nlines'|dump0_1.csv|2",
        "Pump 3|pressure|2024-03-01T11:00:01.000Z|DOUBLE|NULL|NULL|-Inf|NULL|dump0_1.csv|2",
        "Pump 3|note|2024-03-01T11:00:04.000Z|TEXT|NULL|NULL|NULL|''|dump0_10.csv|3",
        "Pump 3|pressure|2024-03-01T11:00:04.000Z|DOUBLE|NULL|NULL|1.0e+300|NULL|dump0_10.csv|3",
        "Pump 3|running|2024-03-01T11:00:04.000Z|BOOLEAN|1|NULL|NULL|NULL|dump0_10.csv|3",
        "Pump 3|note|2024-03-01T11:00:00.000Z|TEXT|NULL|NULL|NULL|'a, b \"c\" \\ d'|dump0_0.csv|3",
        "Pump 3|pressure|2024-03-01T11:00:00.000Z|DOUBLE|NULL|NULL|'NaN'|NULL|dump0_0.csv|3",
        "Pump 3|running|2024-03-01T11:00:00.000Z|BOOLEAN|0|NULL|NULL|NULL|dump0_0.csv|3",
        "Pump 3|running|2024-03-01T11:00:02.000Z|BOOLEAN|1|NULL|NULL|NULL|dump0_1.csv|4",
    ];
    let mut expected: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
    let mut got_lines: Vec<String> = split_records(&got);
    expected.sort();
    got_lines.sort();
    assert_eq!(got_lines, expected, "\n{got}");

    // The bad value, the short line and the bad time are in the rejects file, with file and
    // line; the rest of their lines and files was read.
    let rejects = std::fs::read_to_string(d.join("points.rejects.csv")).unwrap_or_default();
    assert!(
        rejects.contains(
            "dump0_1.csv, line 4, pressure: \"\"not-a-number\"\" is not a number (DOUBLE)"
        ),
        "{rejects}"
    );
    assert!(
        rejects.contains("dump0_1.csv, line 5: 2 fields where the header has 4"),
        "{rejects}"
    );
    assert!(
        rejects.contains("dump0_10.csv, line 2: time \"\"yesterday\"\" is neither"),
        "{rejects}"
    );
    let report = read_json(&d.join("time.json"));
    assert_eq!(
        report["streams"][0]["rows_rejected"].as_u64(),
        Some(3),
        "{report}"
    );

    // The device layout (a fresh target).
    let _ = std::fs::remove_file(d.join("points.db"));
    let _ = std::fs::remove_file(d.join("points.rejects.csv"));
    write(
        d,
        "device.toml",
        &plan("by_device.csv", "time_unit = \"ms\""),
    );
    let out = run_tsmigrate(d, &["run", "device.toml"], &[]);
    assert_exit(&out, 0);
    let got = sqlite(
        &d.join("points.db"),
        "SELECT device, measurement, time, data_type, quote(int_value), quote(double_value), quote(text_value), line FROM points ORDER BY line, measurement",
    );
    assert_eq!(
        split_records(&got),
        [
            "plant2.tank.7|count|2024-03-01T12:00:00.000Z|INT64|9007199254740993|NULL|NULL|2",
            "plant2.tank.7|status|2024-03-01T12:00:00.000Z|TEXT|NULL|NULL|'OK'|2",
            "plant2.tank.7|temperature|2024-03-01T12:00:00.000Z|DOUBLE|NULL|21.5|NULL|2",
            "plant2.tank.7|count|2024-03-01T12:00:01.000Z|INT64|12|NULL|NULL|3",
            "plant2.tank.7|status|2024-03-01T12:00:01.000Z|TEXT|NULL|NULL|'ALARM: level, high'|3",
            "plant2.tank8|status|1970-01-01T00:00:00.000Z|TEXT|NULL|NULL|'root.factory.plant2'|4",
            "plant2.tank8|temperature|1970-01-01T00:00:00.000Z|DOUBLE|NULL|0.0|NULL|4",
        ],
        "\n{got}"
    );
    let rejects = std::fs::read_to_string(d.join("points.rejects.csv")).unwrap_or_default();
    assert!(
        rejects.contains("by_device.csv, line 5: the Device field is empty"),
        "{rejects}"
    );
}

#[test]
fn bad_times_unknown_units_and_wrong_options_are_explained() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let d = dir.path();
    write(d, "a.csv", "Time,root.sg.d1.s1\n42,1\nsoon,2\n43,3\n");
    let plan = |extra: &str| {
        format!(
            "[source]\nkind = \"iotdb\"\npath = \"a.csv\"\n{extra}\n[target]\nkind = \"sqlite\"\npath = \"p.db\"\n\
             [run]\nmax_rejects = 5\n[[streams]]\nname = \"p\"\nfrom = \"points\"\ncreate = true\n"
        )
    };
    // 42 says nothing about its unit.
    write(d, "p.toml", &plan(""));
    let out = run_tsmigrate(d, &["run", "p.toml"], &[]);
    assert_exit(&out, 2);
    assert!(
        text(&out).contains("does not tell its unit; set [source] time_unit"),
        "{}",
        text(&out)
    );
    write(d, "p.toml", &plan("time_unit = \"ms\""));
    let out = run_tsmigrate(d, &["run", "p.toml"], &[]);
    assert_exit(&out, 0);
    // The two good lines, at 42 and 43 ms, read as the integers they hold.
    assert_eq!(
        sqlite(
            &d.join("p.db"),
            "SELECT device, measurement, time, data_type, int_value, line FROM p ORDER BY line"
        )
        .trim(),
        "root.sg.d1|s1|1970-01-01T00:00:00.042Z|INT64|1|2\nroot.sg.d1|s1|1970-01-01T00:00:00.043Z|INT64|3|4"
    );
    let rejects = std::fs::read_to_string(d.join("p.rejects.csv")).unwrap_or_default();
    assert!(
        rejects.contains(
            "a.csv, line 3: time \"\"soon\"\" is neither an integer nor an ISO-8601 time"
        ),
        "{rejects}"
    );
    // max_rejects = 0 stops at the first bad line, with exit 3.
    let _ = std::fs::remove_file(d.join("p.db"));
    write(
        d,
        "p.toml",
        &plan("time_unit = \"ms\"").replace("max_rejects = 5", "max_rejects = 0"),
    );
    assert_exit(&run_tsmigrate(d, &["run", "p.toml"], &[]), 3);
    for (extra, says) in [
        ("url = \"x\"", "give path"),
        ("colour = \"red\"", "has no option `colour`"),
        (
            "time_unit = \"fortnights\"",
            "[source] time_unit = \"fortnights\": use",
        ),
    ] {
        write(d, "p.toml", &plan(extra));
        let out = run_tsmigrate(d, &["check", "p.toml"], &[]);
        assert_exit(&out, 2);
        assert!(text(&out).contains(says), "{extra}: {}", text(&out));
    }
    write(
        d,
        "p.toml",
        &plan("time_unit = \"ms\"").replace("from = \"points\"", "from = \"root.sg.d1\""),
    );
    let out = run_tsmigrate(d, &["check", "p.toml"], &[]);
    assert_exit(&out, 2);
    assert!(
        text(&out).contains("read as one stream, `points`"),
        "{}",
        text(&out)
    );
}

/// sqlite3's output split into records: a record continues on the next line when its text
/// holds a newline (the expected rows write it as `\n`).
fn split_records(out: &str) -> Vec<String> {
    let mut recs: Vec<String> = Vec::new();
    for line in out.lines() {
        // A record starts with a device name; continuation lines do not hold 7 separators.
        if line.matches('|').count() >= 6 || recs.is_empty() {
            recs.push(line.to_string());
        } else if let Some(last) = recs.last_mut() {
            last.push('\n');
            last.push_str(line);
        }
    }
    recs
}

/// The example plan on the example's generated export (600 lines × 28 series, split in three):
/// every point lands in `telemetry_data` in the column of its type, equal to what the generator
/// wrote (`truth.csv`), `verify` agrees, and each malformed line is in the rejects file.
#[test]
fn the_example_lands_every_value_in_its_typed_column() {
    let cluster = tsmigrate_testkit::PgCluster::start().unwrap_or_else(|e| panic!("{e}"));
    cluster
        .create_database("iiot")
        .unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let d = dir.path();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let export = d.join("export");
    run(std::process::Command::new("python3")
        .arg(repo.join("examples/data/make-iotdb-export.py"))
        .arg(&export)
        .arg("600"));
    let plan = std::fs::read_to_string(repo.join("examples/iotdb-to-postgres.toml"))
        .unwrap_or_default()
        .replace(
            "examples/data/iotdb/dump0_*.csv",
            &format!("{}/dump0_*.csv", export.display()),
        )
        .replace(
            "\"examples/sql/",
            &format!("\"{}/examples/sql/", repo.display()),
        );
    write(d, "plan.toml", &plan);
    let url = cluster.url("iiot");
    let env = [("TARGET_URL", url.as_str())];
    let sql = |q: &str| {
        cluster
            .psql("iiot", q)
            .unwrap_or_else(|e| panic!("{e}\n{q}"))
    };
    // One device is there before the migration, with an id of its own: its points must get
    // that id; the other three are added by the lookup.
    let schema =
        std::fs::read_to_string(repo.join("examples/sql/iiot/001_schema.sql")).unwrap_or_default();
    sql(&schema);
    sql("INSERT INTO devices (id, name) VALUES (100, 'plant1.pump1')");
    let out = run_tsmigrate(d, &["run", "plan.toml", "--report", "r.json"], &env);
    assert_exit(&out, 0);
    assert_eq!(
        sql("SELECT string_agg(name || '=' || (id = 100)::text, ',' ORDER BY name) FROM devices")
            .trim(),
        "plant1.pump.3=false,plant1.pump1=true,plant1.pump2=false,plant2.tank7=false"
    );
    // The `after` file's indexes exist.
    assert_eq!(
        sql("SELECT count(*) FROM pg_indexes WHERE tablename = 'telemetry_data'").trim(),
        "2"
    );

    // What the generator meant, loaded beside the target (device ids back to names through
    // `devices`), compared both ways.
    let truth = export.join("truth.csv");
    sql("CREATE VIEW landed AS SELECT d.name AS device_id, t.\"timestamp\", t.measurement_name, t.numeric_value, \
         t.text_value, t.boolean_value, t.json_value FROM telemetry_data t JOIN devices d ON d.id = t.device_id");
    sql(&format!(
        "CREATE TABLE truth (device_id text, \"timestamp\" timestamptz, measurement_name text, numeric_value float8, \
         text_value text, boolean_value boolean, json_value jsonb);
         \\copy truth FROM '{}' (FORMAT csv)",
        truth.display()
    ));
    let cols = "device_id, \"timestamp\", measurement_name, numeric_value, text_value, boolean_value, json_value";
    let n: u64 = sql("SELECT count(*) FROM truth")
        .trim()
        .parse()
        .unwrap_or(0);
    assert!(n > 15_000, "{n} points");
    for (a, b) in [("truth", "landed"), ("landed", "truth")] {
        let diff = sql(&format!(
            "SELECT count(*) FROM (SELECT {cols} FROM {a} EXCEPT ALL SELECT {cols} FROM {b}) x"
        ));
        assert_eq!(diff.trim(), "0", "rows of {a} not in {b}");
    }
    assert_eq!(
        sql("SELECT count(*) FROM telemetry_data").trim(),
        n.to_string()
    );
    // The nasty ones made it, typed.
    for (q, want) in [
        ("SELECT count(*) > 0 FROM telemetry_data WHERE text_value = '9007199254740995'", "t"),
        ("SELECT count(*) > 0 FROM telemetry_data WHERE numeric_value = 'NaN'", "t"),
        ("SELECT count(*) > 0 FROM telemetry_data WHERE text_value = E'two\\nlines'", "t"),
        ("SELECT count(*) > 0 FROM telemetry_data WHERE text_value = 'ALARM: \"overload\", E-17'", "t"),
        ("SELECT count(*) > 0 FROM telemetry_data WHERE json_value ? 'setpoint'", "t"),
        ("SELECT count(DISTINCT device_id) FROM telemetry_data", "4"),
    ] {
        assert_eq!(sql(q).trim(), want, "{q}");
    }
    let out = run_tsmigrate(d, &["verify", "plan.toml"], &env);
    assert_exit(&out, 0);

    // Each line the generator broke is in the rejects file, with its file and line.
    let rejects = std::fs::read_to_string(d.join("telemetry_data.rejects.csv")).unwrap_or_default();
    let expected = std::fs::read_to_string(export.join("truth_rejects.txt")).unwrap_or_default();
    assert_eq!(expected.lines().count(), 4);
    for at in expected.lines() {
        let (file, line) = at.split_once(':').unwrap_or(("", ""));
        let named = rejects.contains(&format!("{file}, line {line}"))
            || rejects
                .lines()
                .any(|r| r.contains(file) && r.contains(&format!("\"\"line\"\":{line},")));
        assert!(named, "{at} not in the rejects:\n{rejects}");
    }
    let report = read_json(&d.join("r.json"));
    assert_eq!(
        report["streams"][0]["rows_rejected"].as_u64(),
        Some(4),
        "{report}"
    );
}

/// A lookup that does not create: points of a device `devices` has get its id (a uuid here),
/// points of a device it lacks are rejected naming the device and the table, and nothing is
/// added to `devices`; `verify` compares ids with ids. A lookup table that is missing, or a
/// target that cannot look up, is refused before anything is written.
#[test]
fn a_lookup_without_create_rejects_unknown_devices() {
    let cluster = tsmigrate_testkit::PgCluster::start().unwrap_or_else(|e| panic!("{e}"));
    cluster
        .create_database("iiot")
        .unwrap_or_else(|e| panic!("{e}"));
    let sql = |q: &str| {
        cluster
            .psql("iiot", q)
            .unwrap_or_else(|e| panic!("{e}\n{q}"))
    };
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let d = dir.path();
    write(d, "by_device.csv", BY_DEVICE);
    let plan = |create: bool| {
        format!(
            "[source]\nkind = \"iotdb\"\npath = \"by_device.csv\"\nstrip_prefix = \"root.factory.\"\ntime_unit = \"ms\"\n\
             [target]\nkind = \"postgres\"\nurl = \"${{TARGET_URL}}\"\n\
             [run]\nmax_rejects = 10\n\
             [[streams]]\nname = \"points\"\nkey = [\"device_id\", \"time\", \"measurement\"]\n\
             columns = [{{ name = \"device_id\", type = \"uuid\", expr = \"device\" }}, {{ name = \"time\" }}, {{ name = \"measurement\" }}, {{ name = \"double_value\" }}]\n\
             [streams.lookup.device_id]\ntable = \"registry.devices\"\nmatch = \"name\"\nvalue = \"id\"\ncreate = {create}\n"
        )
    };
    write(d, "plan.toml", &plan(false));
    let url = cluster.url("iiot");
    let env = [("TARGET_URL", url.as_str())];

    // No lookup table yet: check and run say which table is missing.
    sql("CREATE TABLE points (device_id uuid, \"time\" timestamptz, measurement text, double_value float8)");
    let out = run_tsmigrate(d, &["run", "plan.toml"], &env);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        text(&out).contains("lookup table \"registry\".\"devices\"")
            && text(&out).contains("does not exist"),
        "{}",
        text(&out)
    );
    assert_eq!(sql("SELECT count(*) FROM points").trim(), "0");

    sql("CREATE SCHEMA registry; CREATE TABLE registry.devices (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), name text); \
         INSERT INTO registry.devices VALUES ('6f1c1a5e-0000-4000-8000-000000000007', 'plant2.tank.7')");
    let out = run_tsmigrate(d, &["run", "plan.toml"], &env);
    assert_exit(&out, 0);
    assert_eq!(
        sql("SELECT string_agg(device_id || ' ' || measurement, ',' ORDER BY \"time\", measurement) FROM points").trim(),
        "6f1c1a5e-0000-4000-8000-000000000007 count,6f1c1a5e-0000-4000-8000-000000000007 status,\
         6f1c1a5e-0000-4000-8000-000000000007 temperature,6f1c1a5e-0000-4000-8000-000000000007 count,\
         6f1c1a5e-0000-4000-8000-000000000007 status"
    );
    let rejects = std::fs::read_to_string(d.join("points.rejects.csv")).unwrap_or_default();
    assert!(
        rejects.contains("\"\"plant2.tank8\"\" is not in registry.devices.name"),
        "{rejects}"
    );
    assert_eq!(sql("SELECT count(*) FROM registry.devices").trim(), "1");
    let out = run_tsmigrate(d, &["verify", "plan.toml"], &env);
    assert_exit(&out, 0);
    // A point moved to another device is a difference.
    sql("INSERT INTO registry.devices (name) VALUES ('other'); \
         UPDATE points SET device_id = (SELECT id FROM registry.devices WHERE name = 'other') WHERE measurement = 'count'");
    let out = run_tsmigrate(d, &["verify", "plan.toml"], &env);
    assert_exit(&out, 4);

    // A SQLite target has no lookup tables.
    let sqlite_plan = plan(true).replace(
        "kind = \"postgres\"\nurl = \"${TARGET_URL}\"",
        "kind = \"sqlite\"\npath = \"t.db\"",
    );
    write(d, "sqlite.toml", &sqlite_plan);
    let out = run_tsmigrate(d, &["run", "sqlite.toml"], &env);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        text(&out).contains("cannot look values up"),
        "{}",
        text(&out)
    );
}

/// Filters on an export: `since`/`until` (times), `devices` (names after strip_prefix) and
/// `keys` (measurements) select exactly their points; a line that cannot be read in the
/// window is still a reject.
#[test]
fn filters_select_exactly_their_points() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let d = dir.path();
    write(d, "by_device.csv", BY_DEVICE);
    write(
        d,
        "plan.toml",
        "[source]\nkind = \"iotdb\"\npath = \"by_device.csv\"\nstrip_prefix = \"root.factory.\"\ntime_unit = \"ms\"\n\
         [target]\nkind = \"sqlite\"\npath = \"points.db\"\n\
         [run]\nmax_rejects = 10\n\
         [[streams]]\nname = \"points\"\ncreate = true\n\
         filter = { since = \"2024-03-01T12:00:00.001Z\", until = \"2024-03-01T12:00:03Z\", devices = [\"plant2.tank.7\", \"plant2.tank8\"], keys = [\"status\", \"count\"] }\n",
    );
    let out = run_tsmigrate(d, &["run", "plan.toml"], &[]);
    assert_exit(&out, 0);
    let got = sqlite(
        &d.join("points.db"),
        "SELECT device, measurement, time, quote(int_value), quote(text_value), line FROM points ORDER BY line, measurement",
    );
    assert_eq!(
        got.lines().collect::<Vec<_>>(),
        [
            "plant2.tank.7|count|2024-03-01T12:00:01.000Z|12|NULL|3",
            "plant2.tank.7|status|2024-03-01T12:00:01.000Z|NULL|'ALARM: level, high'|3",
        ],
        "\n{got}"
    );
    let rejects = std::fs::read_to_string(d.join("points.rejects.csv")).unwrap_or_default();
    assert!(
        rejects.contains("by_device.csv, line 5: the Device field is empty"),
        "{rejects}"
    );
    let out = run_tsmigrate(d, &["verify", "plan.toml"], &[]);
    assert_exit(&out, 0);
}
