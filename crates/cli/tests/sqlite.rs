//! End to end with real SQLite files and the real binary: the solar-readings example
//! (migration 4: wide readings → narrow points, kWh → Wh, seconds → ms) against an
//! independent SQL unpivot of the same source run by the `sqlite3` shell — row for row,
//! hostile values included — and its 5-minute aggregates against an independent Python
//! computation (examples/data/solar-aggregates.py); then verify, resume and rollback; the same
//! streams into a real PostgreSQL target, compared there with the reference rows loaded
//! exactly; and the source's own aggregate table copied as a plain stream.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;
use tsmigrate_testkit::PgCluster;

fn repo() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// A generated source file (with hostile values) in `dir`, and the SQL unpivot of it.
fn source_and_expected(dir: &Path, systems: u32, rows: u32) -> (PathBuf, PathBuf) {
    let src = dir.join("solar.db");
    let expected = dir.join("expected.db");
    run(Command::new("python3")
        .arg(repo().join("examples/data/make-solar-db.py"))
        .arg(&src)
        .args([
            "--systems",
            &systems.to_string(),
            "--rows",
            &rows.to_string(),
        ]));
    run(Command::new("sqlite3")
        .arg(&src)
        .arg(format!("ATTACH '{}' AS t", expected.display()))
        .arg(format!(
            ".read {}",
            repo().join("examples/data/solar-unpivot.sql").display()
        )));
    run(Command::new("python3")
        .arg(repo().join("examples/data/solar-aggregates.py"))
        .arg(&expected));
    (src, expected)
}

fn tsmigrate(dir: &Path, args: &[&str], src: &Path, target: &Path) -> Output {
    run_tsmigrate(
        dir,
        args,
        &[
            ("SOLAR_DB", &src.display().to_string()),
            ("POINTS_DB", &target.display().to_string()),
        ],
    )
}

/// The value columns of the point rows and of their aggregates.
const POINT_VALUES: &[&str] = &["value"];
const AGG_VALUES: &[&str] = &["min", "max", "avg", "last", "count"];

/// Rows of `a.<table>` not in `b.<table>` (as a multiset: counts per row), comparing the
/// key columns and each of `values` with its storage type.
fn rows_not_in(db: &Path, a: &Path, b: &Path, table: &str, values: &[&str]) -> u64 {
    let mut cols = vec![
        "system_id".to_string(),
        "point_id".into(),
        "measurement_time".into(),
    ];
    for v in values {
        cols.push(format!("\"{v}\""));
        cols.push(format!("typeof(\"{v}\")"));
    }
    let list = cols.join(", ");
    let group: Vec<String> = (1..=cols.len()).map(|i| i.to_string()).collect();
    let group = group.join(", ");
    let sql = format!(
        "ATTACH '{}' AS a; ATTACH '{}' AS b; \
         SELECT count(*) FROM (SELECT {list}, count(*) FROM a.{table} GROUP BY {group} \
                               EXCEPT SELECT {list}, count(*) FROM b.{table} GROUP BY {group});",
        a.display(),
        b.display()
    );
    let out = sqlite(db, &sql);
    out.trim()
        .parse()
        .unwrap_or_else(|_| panic!("not a count: {out:?}"))
}

/// The point rows and their aggregates of `actual` equal those of `expected`.
fn assert_equal_files(dir: &Path, expected: &Path, actual: &Path) {
    let scratch = dir.join("scratch.db");
    for (table, values) in [
        ("point_readings", POINT_VALUES),
        ("point_readings_agg_5m", AGG_VALUES),
    ] {
        let count = |f: &Path| sqlite(f, &format!("SELECT count(*) FROM {table}"));
        assert_eq!(count(expected), count(actual), "{table}: row counts differ");
        assert_eq!(
            rows_not_in(&scratch, expected, actual, table, values),
            0,
            "{table}: rows missing from the target"
        );
        assert_eq!(
            rows_not_in(&scratch, actual, expected, table, values),
            0,
            "{table}: rows the reference does not have"
        );
    }
}

#[test]
fn solar_example_equals_an_independent_sql_unpivot() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let d = dir.path();
    let (src, expected) = source_and_expected(d, 5, 400);
    let target = d.join("points.db");
    let plan = repo().join("examples/sqlite-readings-to-points.toml");
    let plan = plan.to_string_lossy();

    // Small partitions: several per system, cut at whole hours.
    let o = tsmigrate(
        d,
        &["run", &plan, "--partition-rows", "150", "-j", "2"],
        &src,
        &target,
    );
    assert_exit(&o, 0);
    assert_equal_files(d, &expected, &target);
    // The summary counts rows per system, as the SQL unpivot has them.
    let per_system: Vec<String> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| l.trim().strip_prefix("system_id "))
        .map(|l| l.replace(',', "").replace(": ", "|"))
        .collect();
    let want = sqlite(
        &expected,
        "SELECT system_id || '|' || count(*) FROM point_readings GROUP BY system_id ORDER BY system_id",
    );
    assert_eq!(per_system.join("\n"), want.trim(), "{}", text(&o));
    // The hostile values arrived as they are: NaN kept (as SQLite's text 'NaN'), ±infinity,
    // the largest and smallest doubles, -0.001 kWh → -1 Wh.
    let nasty = sqlite(
        &target,
        "SELECT count(*) FROM point_readings WHERE system_id = 1 AND \
         (value = 'NaN' OR value = 1.7976931348623157e308 OR value = -1.7976931348623157e308 \
          OR value = 5e-324 OR value > 1e308 OR value < -1e308 OR value = -1.0)",
    );
    assert!(nasty.trim().parse::<u64>().unwrap_or(0) >= 7, "{nasty}");
    // …and were aggregated: NaN maxima, infinite averages, the largest doubles as extremes.
    let nasty = sqlite(
        &target,
        "SELECT (SELECT count(*) FROM point_readings_agg_5m WHERE max = 'NaN' AND avg = 'NaN'), \
                (SELECT count(*) FROM point_readings_agg_5m WHERE abs(avg) > 1e308), \
                (SELECT count(*) FROM point_readings_agg_5m WHERE min = -1.7976931348623157e308 OR max = 1.7976931348623157e308)",
    );
    let counts: Vec<u64> = nasty
        .trim()
        .split('|')
        .filter_map(|x| x.parse().ok())
        .collect();
    assert!(
        counts.len() == 3 && counts.iter().all(|c| *c >= 1),
        "{nasty}"
    );

    // verify agrees, then catches one changed value.
    let o = tsmigrate(d, &["verify", &plan, "--sample", "50"], &src, &target);
    assert_exit(&o, 0);
    sqlite(
        &target,
        "UPDATE point_readings SET value = value + 1 WHERE rowid = (SELECT max(rowid) FROM point_readings WHERE typeof(value) = 'real' AND abs(value) < 1e6)",
    );
    let o = tsmigrate(d, &["verify", &plan], &src, &target);
    assert_exit(&o, 4);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("different values: 1"),
        "{}",
        text(&o)
    );

    // The ledger lives in the target file: a second run has nothing to do, rollback deletes
    // exactly the run's rows, and a new run writes them again.
    let o = tsmigrate(d, &["run", &plan], &src, &target);
    assert_exit(&o, 0);
    assert!(text(&o).contains("nothing to do"), "{}", text(&o));
    let o = tsmigrate(
        d,
        &["rollback", &plan, "--run", "1", "--yes"],
        &src,
        &target,
    );
    assert_exit(&o, 0);
    assert_eq!(
        sqlite(
            &target,
            "SELECT (SELECT count(*) FROM point_readings) + (SELECT count(*) FROM point_readings_agg_5m)"
        )
        .trim(),
        "0"
    );
    let o = tsmigrate(d, &["run", &plan], &src, &target);
    assert_exit(&o, 0);
    assert_equal_files(d, &expected, &target);
}

#[test]
fn production_plans_ask_for_yes() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let d = dir.path();
    let (src, _) = source_and_expected(d, 2, 50);
    let text_plan = std::fs::read_to_string(repo().join("examples/sqlite-readings-to-points.toml"))
        .unwrap_or_else(|e| panic!("{e}"))
        .replace("production = false", "production = true");
    let plan = d.join("prod.toml");
    std::fs::write(&plan, text_plan).unwrap_or_else(|e| panic!("{e}"));
    let plan = plan.to_string_lossy();
    let target = d.join("points.db");
    // No terminal answer: nothing is written.
    let o = tsmigrate(d, &["run", &plan], &src, &target);
    assert_exit(&o, 2);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("Type YES"),
        "{}",
        text(&o)
    );
    assert!(
        !target.exists(),
        "the target file was created before the answer"
    );
    let o = tsmigrate(d, &["run", &plan, "--yes"], &src, &target);
    assert_exit(&o, 0);
}

/// Column `v` exactly, for PostgreSQL, as three CSV fields: text (`NaN`, SQLite's
/// infinities) or a double's mantissa and exponent (the `sqlite3` shell's ieee754 functions;
/// its printf rounds the 17th digit).
fn exact(v: &str) -> String {
    format!(
        "CASE WHEN typeof({v}) <> 'real' THEN {v} WHEN {v} = 9e999 THEN 'Infinity' WHEN {v} = -9e999 THEN '-Infinity' END, \
         CASE WHEN typeof({v}) = 'real' AND abs({v}) < 9e999 THEN ieee754_mantissa({v}) END, \
         CASE WHEN typeof({v}) = 'real' AND abs({v}) < 9e999 THEN ieee754_exponent({v}) END"
    )
}

/// The PostgreSQL double of the three fields [`exact`] wrote as `{v}_t, {v}_m, {v}_e`.
fn from_exact(v: &str) -> String {
    format!(
        "coalesce({v}_t::float8, {v}_m * power(2::float8, {v}_e / 2) * power(2::float8, {v}_e - {v}_e / 2)) AS \"{v}\""
    )
}

/// Loads `table` of the SQLite file `expected` into PostgreSQL as `expected_<table>`, every
/// double exact: the key columns, then `doubles`, then `ints`.
fn load_exactly(
    cluster: &PgCluster,
    dir: &Path,
    expected: &Path,
    table: &str,
    doubles: &[&str],
    ints: &[&str],
) {
    let csv = dir.join(format!("{table}.csv"));
    let mut select = vec!["system_id, point_id, measurement_time".to_string()];
    let mut loaded = vec!["system_id bigint, point_id bigint, measurement_time bigint".to_string()];
    let mut out = vec!["system_id, point_id, measurement_time".to_string()];
    for v in doubles {
        select.push(exact(&format!("\"{v}\"")));
        loaded.push(format!("{v}_t text, {v}_m bigint, {v}_e int"));
        out.push(from_exact(v));
    }
    for v in ints {
        select.push(format!("\"{v}\""));
        loaded.push(format!("\"{v}\" bigint"));
        out.push(format!("\"{v}\""));
    }
    run(Command::new("sqlite3")
        .arg(expected)
        .args(["-csv", "-noheader"])
        .arg(format!("SELECT {} FROM {table}", select.join(", ")))
        .stdout(std::fs::File::create(&csv).unwrap_or_else(|e| panic!("{e}"))));
    let load = format!(
        "CREATE TABLE loaded_{table} ({});\n\\copy loaded_{table} FROM '{}' (FORMAT csv)\n\
         CREATE TABLE expected_{table} AS SELECT {} FROM loaded_{table};\n",
        loaded.join(", "),
        csv.display(),
        out.join(", ")
    );
    cluster
        .psql("points", &load)
        .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn solar_readings_into_postgres_equal_the_sql_unpivot() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let d = dir.path();
    let (src, expected) = source_and_expected(d, 4, 300);
    let cluster = PgCluster::start().unwrap_or_else(|e| panic!("starting PostgreSQL: {e}"));
    cluster
        .create_database("points")
        .unwrap_or_else(|e| panic!("{e}"));
    let text_plan = std::fs::read_to_string(repo().join("examples/sqlite-readings-to-points.toml"))
        .unwrap_or_else(|e| panic!("{e}"))
        .replace(
            "[target]\nkind = \"sqlite\"\npath = \"${POINTS_DB:-/tmp/points.db}\"",
            &format!(
                "[target]\nkind = \"postgres\"\nurl = \"{}\"",
                cluster.url("points")
            ),
        );
    assert!(text_plan.contains("kind = \"postgres\""));
    let plan = d.join("pg.toml");
    std::fs::write(&plan, text_plan).unwrap_or_else(|e| panic!("{e}"));
    let plan = plan.to_string_lossy();
    let o = tsmigrate(
        d,
        &["run", &plan, "--partition-rows", "200"],
        &src,
        &d.join("unused.db"),
    );
    assert_exit(&o, 0);
    // The reference rows, loaded into PostgreSQL exactly.
    load_exactly(&cluster, d, &expected, "point_readings", &["value"], &[]);
    load_exactly(
        &cluster,
        d,
        &expected,
        "point_readings_agg_5m",
        &["min", "max", "avg", "last"],
        &["count"],
    );
    let diff = |a: &str, b: &str| {
        cluster
            .psql(
                "points",
                &format!(
                    "WITH d AS (SELECT * FROM {a} EXCEPT ALL SELECT * FROM {b}) \
                     SELECT count(*), (SELECT string_agg(x::text, ' ') FROM (SELECT * FROM d LIMIT 5) x) FROM d"
                ),
            )
            .unwrap_or_else(|e| panic!("{e}"))
    };
    for table in ["point_readings", "point_readings_agg_5m"] {
        let expected = format!("expected_{table}");
        assert_eq!(diff(&expected, table).trim(), "0|", "{table}");
        assert_eq!(diff(table, &expected).trim(), "0|", "{table}");
    }
    let n = cluster
        .psql("points", "SELECT count(*) FROM point_readings")
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(n.trim().parse::<u64>().unwrap_or(0) > 1000, "{n}");
    let o = tsmigrate(d, &["verify", &plan], &src, &d.join("unused.db"));
    assert_exit(&o, 0);
}

/// The source's own aggregate table, copied as a plain stream (every column as it is),
/// arrives row for row.
#[test]
fn an_existing_aggregate_table_is_copied_like_any_stream() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let d = dir.path();
    let (src, _) = source_and_expected(d, 3, 200);
    let target = d.join("copy.db");
    let plan = d.join("copy.toml");
    std::fs::write(
        &plan,
        "[source]\nkind = \"sqlite\"\npath = \"${SOLAR_DB}\"\n\
         [target]\nkind = \"sqlite\"\npath = \"${POINTS_DB}\"\n\
         [[streams]]\nname = \"readings_agg_5m\"\ncreate = true\n\
         key = [\"system_id\", \"bucket\", \"column_name\"]\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let plan = plan.to_string_lossy();
    let o = tsmigrate(d, &["run", &plan, "--partition-rows", "100"], &src, &target);
    assert_exit(&o, 0);
    let cols = "system_id, bucket, column_name, min, typeof(min), max, typeof(max), avg, typeof(avg), last, typeof(last), count";
    let diff = |a: &Path, b: &Path| {
        sqlite(
            &d.join("scratch.db"),
            &format!(
                "ATTACH '{}' AS a; ATTACH '{}' AS b; SELECT count(*) FROM \
                 (SELECT {cols}, count(*) FROM a.readings_agg_5m GROUP BY {cols} \
                  EXCEPT SELECT {cols}, count(*) FROM b.readings_agg_5m GROUP BY {cols});",
                a.display(),
                b.display()
            ),
        )
    };
    assert_eq!(diff(&src, &target).trim(), "0");
    assert_eq!(diff(&target, &src).trim(), "0");
    let n = sqlite(&target, "SELECT count(*) FROM readings_agg_5m");
    assert!(n.trim().parse::<u64>().unwrap_or(0) > 500, "{n}");
    // SQLite's REAL is a double: it is read (and created) as one, never as float4.
    let ddl = sqlite(
        &target,
        "SELECT sql FROM sqlite_master WHERE name = 'readings_agg_5m'",
    );
    assert!(ddl.contains("\"avg\" DOUBLE"), "{ddl}");
    let o = tsmigrate(d, &["verify", &plan], &src, &target);
    assert_exit(&o, 0);
}
