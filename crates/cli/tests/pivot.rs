//! End to end with real SQLite files and the real binary: narrow → wide (`[streams.pivot]`).
//! The solar example's point readings pivoted back into rows (examples/
//! sqlite-points-to-readings.toml), compared row for row with an independent SQL pivot and with
//! the original wide rows; and a hand-made narrow table of hostile values, read in many small
//! partitions, with duplicate and unmatched readings, for numbers, text and big integers.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;

fn repo() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// The measurement columns of the solar example, in order.
const COLUMNS: &[&str] = &[
    "solar_w",
    "battery_w",
    "grid_w",
    "load_w",
    "battery_soc",
    "battery_v",
    "inverter_temp_c",
    "pv1_v",
    "pv2_v",
    "pv1_a",
    "pv2_a",
    "grid_v",
    "grid_hz",
    "load_kwh",
    "solar_kwh",
    "grid_import_kwh",
    "grid_export_kwh",
    "battery_cycles",
];

/// `SELECT <key>, <each value and its storage type> FROM <from>`.
fn typed_select(key: &[&str], values: &[&str], from: &str) -> String {
    let mut cols: Vec<String> = key.iter().map(|k| k.to_string()).collect();
    for v in values {
        cols.push(v.to_string());
        cols.push(format!("typeof({v})"));
    }
    format!("SELECT {} FROM {from}", cols.join(", "))
}

/// Rows of one query not returned by the other, both ways (multisets of distinct rows are
/// enough here: both sides have a primary key).
fn differences(db: &Path, attach: &str, a: &str, b: &str) -> (u64, u64) {
    let count = |x: &str, y: &str| -> u64 {
        let out = sqlite(
            db,
            &format!("{attach} SELECT count(*) FROM ({x} EXCEPT {y});"),
        );
        out.trim()
            .parse()
            .unwrap_or_else(|_| panic!("not a count: {out:?}"))
    };
    (count(a, b), count(b, a))
}

/// Asserts that `expected` and `actual` (tables or parenthesised queries, `actual` may name
/// the attached database) hold the same rows: the key and each value with its storage type.
fn assert_same_rows(
    db: &Path,
    attach: &str,
    key: &[&str],
    values: &[&str],
    expected: &str,
    actual: &str,
    what: &str,
) {
    assert_eq!(
        differences(
            db,
            attach,
            &typed_select(key, values, expected),
            &typed_select(key, values, actual),
        ),
        (0, 0),
        "{what}"
    );
}

/// A plan reading table `kv` of `src` (series `device`, time `ts` in ms) into `dst`, with
/// `rest` (run options and streams) after it; written to `plan.toml` in `dir`.
fn kv_plan(dir: &Path, src: &Path, dst: &Path, rest: &str) -> String {
    let plan = dir.join("plan.toml");
    std::fs::write(
        &plan,
        format!(
            "[source]\nkind = \"sqlite\"\npath = \"{}\"\n\
             [source.tables.kv]\nseries = [\"device\"]\ntime = \"ts\"\ntime_unit = \"ms\"\n\
             [target]\nkind = \"sqlite\"\npath = \"{}\"\n{rest}",
            src.display(),
            dst.display(),
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    plan.display().to_string()
}

fn count(db: &Path, sql: &str) -> u64 {
    let out = sqlite(db, sql);
    out.trim()
        .parse()
        .unwrap_or_else(|_| panic!("not a count: {out:?} from {sql}"))
}

fn run_in(dir: &Path, args: &[&str], env: &[(&str, &Path)]) -> Output {
    let env: Vec<(&str, String)> = env
        .iter()
        .map(|(k, p)| (*k, p.display().to_string()))
        .collect();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    run_tsmigrate(dir, args, &env)
}

#[test]
fn the_example_pivots_point_readings_back_into_rows() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let d = dir.path();
    let (solar, points, wide) = (d.join("solar.db"), d.join("points.db"), d.join("wide.db"));
    run(Command::new("python3")
        .arg(repo().join("examples/data/make-solar-db.py"))
        .arg(&solar)
        .args(["--systems", "4", "--rows", "400"]));
    let env = [
        ("SOLAR_DB", solar.as_path()),
        ("POINTS_DB", points.as_path()),
        ("READINGS_DB", wide.as_path()),
    ];
    let unpivot = repo().join("examples/sqlite-readings-to-points.toml");
    let pivot = repo().join("examples/sqlite-points-to-readings.toml");
    let (unpivot, pivot) = (unpivot.display().to_string(), pivot.display().to_string());
    assert_exit(&run_in(d, &["run", &unpivot], &env), 0);
    // `check` leaves a missing target file for `run` to create.
    let out = run_in(d, &["check", &pivot], &env);
    assert_exit(&out, 0);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("the file does not exist yet")
            && !wide.exists(),
        "{}",
        text(&out)
    );
    let out = run_in(
        d,
        &[
            "run",
            &pivot,
            "--partition-rows",
            "500",
            "--report",
            "r.json",
        ],
        &env,
    );
    assert_exit(&out, 0);
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("r.json")).unwrap_or_default())
            .unwrap_or_else(|e| panic!("report: {e}"));
    let stream = &report["streams"][0];
    assert!(
        stream["partitions"].as_u64().unwrap_or(0) > 4,
        "the large systems should be split by time: {stream}"
    );

    // (a) An independent SQL pivot of the point readings (with point_info), Wh → kWh, ms → s.
    let cases: Vec<String> = COLUMNS
        .iter()
        .map(|c| {
            let v = if c.ends_with("_kwh") {
                "r.value / 1000"
            } else {
                "r.value"
            };
            format!("max(CASE WHEN i.column_name = '{c}' THEN {v} END) AS {c}")
        })
        .collect();
    sqlite(
        &points,
        &format!(
            "CREATE TABLE expected AS SELECT r.system_id, r.measurement_time / 1000 AS inverter_time, {} \
             FROM point_readings r JOIN point_info i ON i.system_id = r.system_id AND i.point_id = r.point_id \
             GROUP BY r.system_id, r.measurement_time;",
            cases.join(", ")
        ),
    );
    let attach = format!("ATTACH '{}' AS w;", wide.display());
    let key = ["system_id", "inverter_time"];
    let expected_rows = count(&points, "SELECT count(*) FROM expected");
    assert_eq!(count(&wide, "SELECT count(*) FROM readings"), expected_rows);
    assert_same_rows(
        &points,
        &attach,
        &key,
        COLUMNS,
        "expected",
        "w.readings",
        "the pivot differs from the SQL pivot",
    );

    // (b) The original wide rows: every measured row comes back, values bit for bit (kWh
    // columns as × 1000 then / 1000 in SQLite), the NaN TEXT and ±inf included.
    let back: Vec<String> = COLUMNS
        .iter()
        .map(|c| {
            if c.ends_with("_kwh") {
                format!("{c} * 1000 / 1000 AS {c}")
            } else {
                c.to_string()
            }
        })
        .collect();
    // Only the columns point_info maps hold values (the others are NULL in the source too).
    let measured = COLUMNS
        .iter()
        .map(|c| format!("{c} IS NOT NULL"))
        .collect::<Vec<_>>()
        .join(" OR ");
    sqlite(
        &solar,
        &format!(
            "CREATE TABLE original AS SELECT system_id, inverter_time, {} FROM readings WHERE {measured};",
            back.join(", ")
        ),
    );
    assert_eq!(
        count(&solar, "SELECT count(*) FROM original"),
        expected_rows
    );
    assert_same_rows(
        &solar,
        &attach,
        &key,
        COLUMNS,
        "original",
        "w.readings",
        "the round trip changed rows",
    );
    assert!(
        count(
            &wide,
            "SELECT count(*) FROM readings WHERE battery_soc = 'NaN' OR grid_w IN (9e999, -9e999)"
        ) >= 3,
        "the hostile values should have made the round trip"
    );

    // Verify pivots the source the same way; a changed value is found.
    let out = run_in(d, &["verify", &pivot], &env);
    assert_exit(&out, 0);
    assert!(String::from_utf8_lossy(&out.stdout).contains("EQUAL"));
    sqlite(
        &wide,
        "UPDATE readings SET grid_v = grid_v + 1 WHERE rowid = (SELECT min(rowid) FROM readings WHERE grid_v IS NOT NULL);",
    );
    let out = run_in(d, &["verify", &pivot], &env);
    assert_exit(&out, 4);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("grid_v"),
        "{}",
        text(&out)
    );
}

/// A narrow table with numbers, text and big integers per (device, ts, key): hostile values,
/// a duplicate reading, an unmatched key, a NULL value, and a group of only an unmatched key.
const NARROW: &str = "
CREATE TABLE kv(device TEXT NOT NULL, ts INTEGER NOT NULL, key TEXT NOT NULL,
                num REAL, txt TEXT, big INTEGER);
WITH RECURSIVE i(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM i WHERE n < 59)
INSERT INTO kv SELECT 'd' || (n % 3), 1700000000000 + (n / 3) * 1500 + (n % 2) * 1,
       k.key, n * 0.1, 'v' || n, n * 1000003
  FROM i, (SELECT 'a' AS key UNION ALL SELECT 'b' UNION ALL SELECT 'c') k
  WHERE NOT (k.key = 'c' AND n % 4 = 0);
INSERT INTO kv VALUES
  ('d0', 1700000100000, 'a', 'NaN', 'tab\there', 9007199254740993),
  ('d0', 1700000100000, 'b', 9e999, 'line
break', -9223372036854775808),
  ('d0', 1700000100000, 'c', -9e999, 'back\\slash \"quoted\" ''single''', 9223372036854775807),
  ('d1', 1700000100000, 'a', 4.9406564584124654e-324, 'ünï€ødé 🌞', 0),
  ('d1', 1700000100000, 'b', 1.7976931348623157e308, '', -1),
  ('d1', 1700000100000, 'c', NULL, NULL, NULL),
  ('d2', 1700000100000, 'a', 1152921504606846976.0, 'x', 1),
  ('d2', 1700000100000, 'zzz', 1, 'unmatched', 1),
  ('d2', 1700000200000, 'zzz', 2, 'only unmatched', 2);
INSERT INTO kv VALUES ('d0', 1700000100000, 'a', 12345, 'duplicate', 12345);
";

/// The SQL pivot of `value` over keys a, b, c, without the duplicate reading.
fn expected_pivot(value: &str) -> String {
    format!(
        "SELECT device, ts, max(CASE WHEN key = 'a' THEN {value} END) AS a, \
         max(CASE WHEN key = 'b' THEN {value} END) AS b, max(CASE WHEN key = 'c' THEN {value} END) AS c \
         FROM kv WHERE key IN ('a', 'b', 'c') AND txt IS NOT 'duplicate' GROUP BY device, ts"
    )
}

#[test]
fn pivots_hostile_values_across_small_partitions_and_rejects_what_it_cannot_place() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let d = dir.path();
    let (src, dst) = (d.join("narrow.db"), d.join("wide.db"));
    sqlite(&src, NARROW);
    let stream = |name: &str, value: &str, unmatched: &str| {
        format!(
            "[[streams]]\nname = \"{name}\"\nfrom = \"kv\"\ncreate = true\n\
             [streams.pivot]\nby = [\"device\", \"ts\"]\nname = \"key\"\nvalue = \"{value}\"\n\
             columns = [\"a\", \"b\", \"c\"]\nunmatched = \"{unmatched}\"\n"
        )
    };
    let plan = kv_plan(
        d,
        &src,
        &dst,
        &format!(
            "[run]\npartition_rows = 7\nmax_rejects = 10\n{}{}{}",
            stream("nums", "num", "reject"),
            stream("texts", "txt", "reject"),
            stream("bigs", "big", "skip"),
        ),
    );
    let out = run_in(d, &["run", &plan, "--report", "r.json"], &[]);
    assert_exit(&out, 0);
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("r.json")).unwrap_or_default())
            .unwrap_or_else(|e| panic!("report: {e}"));
    let attach = format!("ATTACH '{}' AS w;", dst.display());
    for (i, (table, value)) in [("nums", "num"), ("texts", "txt"), ("bigs", "big")]
        .into_iter()
        .enumerate()
    {
        let s = &report["streams"][i];
        assert_eq!(s["name"], table);
        assert!(
            s["partitions"].as_u64().unwrap_or(0) >= 6,
            "small partitions expected: {s}"
        );
        assert_same_rows(
            &src,
            &attach,
            &["device", "ts"],
            &["a", "b", "c"],
            &format!("({})", expected_pivot(value)),
            &format!("w.{table}"),
            &format!("{table}: the pivot differs from the SQL pivot"),
        );
        // The duplicate's group keeps the first reading.
        let kept = sqlite(
            &dst,
            &format!("SELECT quote(a) FROM {table} WHERE device = 'd0' AND ts = 1700000100000"),
        );
        let first = if value == "txt" {
            "'tab\there'"
        } else if value == "big" {
            "9007199254740993"
        } else {
            "'NaN'"
        };
        assert_eq!(kept.trim(), first, "{table}");
        let rejects = std::fs::read_to_string(d.join(format!("{table}.rejects.csv")));
        if value == "big" {
            // unmatched = "skip": the two unmatched readings are counted, the duplicate rejected.
            assert_eq!(s["values_unmatched"], 2, "{s}");
            assert_eq!(s["rows_rejected"], 1, "{s}");
        } else {
            // The duplicate and the two unmatched readings.
            assert_eq!(s["rows_rejected"], 3, "{s}");
            let rejects = rejects.unwrap_or_else(|e| panic!("{table} rejects: {e}"));
            assert!(
                rejects.contains("a second value for column `a`"),
                "{rejects}"
            );
            assert!(
                rejects.contains("zzz names none of the wide columns"),
                "{rejects}"
            );
            assert!(
                rejects.contains("partition,device,ts,column,reason"),
                "{rejects}"
            );
        }
        // Every row read is accounted for: wide rows written plus narrow rows rejected.
        assert_eq!(
            s["rows_read"].as_u64(),
            Some(
                s["rows_written"].as_u64().unwrap_or(0) + s["rows_rejected"].as_u64().unwrap_or(0)
            ),
            "{s}"
        );
    }
    let out = run_in(d, &["verify", &plan], &[]);
    assert_exit(&out, 0);

    // `by` must hold the series and time the source's partitions are cut by.
    let bad = d.join("bad.toml");
    let bad_plan = std::fs::read_to_string(&plan)
        .unwrap_or_default()
        .replace("by = [\"device\", \"ts\"]", "by = [\"ts\"]");
    std::fs::write(&bad, bad_plan).unwrap_or_else(|e| panic!("{e}"));
    let out = run_in(d, &["run", &bad.display().to_string(), "--dry-run"], &[]);
    assert_exit(&out, 2);
    assert!(
        text(&out).contains("`by` must include device"),
        "{}",
        text(&out)
    );
}

/// A sync round on a SQLite source reads each series from its watermark (minus the overlap),
/// not the whole table: a plain stream copies the new rows, and a pivot upserts its wide
/// rows, so a reading that arrived late completes a row written by the first run.
#[test]
fn sync_reads_from_each_series_floor_and_completes_pivoted_rows() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let d = dir.path();
    let (src, dst) = (d.join("narrow.db"), d.join("wide.db"));
    // Two devices, 200 seconds of readings a and b — except b of d0's last 3 seconds.
    sqlite(
        &src,
        "CREATE TABLE kv(device TEXT NOT NULL, ts INTEGER NOT NULL, key TEXT NOT NULL, v REAL);
         WITH RECURSIVE i(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM i WHERE n < 199)
         INSERT INTO kv SELECT dev, 1700000000000 + n * 1000, key, n + 0.25
           FROM i, (SELECT 'd0' AS dev UNION ALL SELECT 'd1'), (SELECT 'a' AS key UNION ALL SELECT 'b')
           WHERE NOT (dev = 'd0' AND key = 'b' AND n >= 197);",
    );
    let plan = kv_plan(
        d,
        &src,
        &dst,
        "[run]\npartition_rows = 150\n[sync]\noverlap = \"10s\"\n\
             [[streams]]\nname = \"rows\"\nfrom = \"kv\"\ncreate = true\nkey = [\"device\", \"ts\", \"key\"]\n\
             [[streams]]\nname = \"wide\"\nfrom = \"kv\"\ncreate = true\nkey = [\"device\", \"ts\"]\n\
         [streams.pivot]\nby = [\"device\", \"ts\"]\nname = \"key\"\nvalue = \"v\"\ncolumns = [\"a\", \"b\"]\n",
    );
    assert_exit(&run_in(d, &["run", &plan], &[]), 0);
    assert_eq!(
        count(&dst, "SELECT count(*) FROM wide WHERE b IS NULL"),
        3,
        "d0's last rows lack b after the first run"
    );
    // The late readings (within the overlap) and 5 new seconds for both devices.
    sqlite(
        &src,
        "INSERT INTO kv SELECT 'd0', 1700000000000 + n * 1000, 'b', -n
           FROM (SELECT 197 AS n UNION ALL SELECT 198 UNION ALL SELECT 199);
         WITH RECURSIVE i(n) AS (SELECT 200 UNION ALL SELECT n + 1 FROM i WHERE n < 204)
         INSERT INTO kv SELECT dev, 1700000000000 + n * 1000, key, n * 1.5
           FROM i, (SELECT 'd0' AS dev UNION ALL SELECT 'd1'), (SELECT 'a' AS key UNION ALL SELECT 'b');",
    );
    let out = run_in(d, &["sync", &plan, "--report", "s.json"], &[]);
    assert_exit(&out, 0);
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("s.json")).unwrap_or_default())
            .unwrap_or_else(|e| panic!("report: {e}"));

    let attach = format!("ATTACH '{}' AS w;", dst.display());
    let all = count(&src, "SELECT count(*) FROM kv");
    assert_eq!(count(&dst, "SELECT count(*) FROM rows"), all);
    assert_same_rows(
        &src,
        &attach,
        &["device", "ts", "key"],
        &["v"],
        "kv",
        "w.rows",
        "rows: the target differs from the source",
    );
    let pivoted = "(SELECT device, ts, max(CASE WHEN key = 'a' THEN v END) AS a, \
                   max(CASE WHEN key = 'b' THEN v END) AS b FROM kv GROUP BY device, ts)";
    assert_eq!(count(&dst, "SELECT count(*) FROM wide"), 2 * 205);
    assert_same_rows(
        &src,
        &attach,
        &["device", "ts"],
        &["a", "b"],
        pivoted,
        "w.wide",
        "wide: the late readings should complete their rows",
    );
    // Each device was read from its watermark minus 10 s, not from its beginning: about
    // 11 overlapping and 5 new seconds per device, of 205.
    for s in report["streams"].as_array().into_iter().flatten() {
        let read = s["rows_read"].as_u64().unwrap_or(u64::MAX);
        assert!(read > 0 && read < 100, "{}: read {read} rows", s["name"]);
    }
}
