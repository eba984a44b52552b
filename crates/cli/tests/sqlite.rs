//! End to end with real SQLite files and the real binary: the solar-readings example
//! (migration 4: wide readings → narrow points, kWh → Wh, seconds → ms) against an
//! independent SQL unpivot of the same source run by the `sqlite3` shell — row for row,
//! hostile values included — then verify, resume and rollback; and the same stream into a
//! real PostgreSQL target, compared there with the SQL unpivot's rows loaded exactly.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;
use tsmigrate_testkit::PgCluster;

fn repo() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs SQL through the `sqlite3` shell on `db`.
fn sqlite(db: &Path, sql: &str) -> String {
    run(Command::new("sqlite3").arg(db).arg(sql))
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

/// Rows of `a.point_readings` not in `b.point_readings` (as a multiset: counts per row).
fn rows_not_in(db: &Path, a: &Path, b: &Path) -> u64 {
    let sql = format!(
        "ATTACH '{}' AS a; ATTACH '{}' AS b; \
         SELECT count(*) FROM (SELECT system_id, point_id, measurement_time, value, typeof(value), count(*) FROM a.point_readings GROUP BY 1, 2, 3, 4, 5 \
                               EXCEPT SELECT system_id, point_id, measurement_time, value, typeof(value), count(*) FROM b.point_readings GROUP BY 1, 2, 3, 4, 5);",
        a.display(),
        b.display()
    );
    let out = sqlite(db, &sql);
    out.trim()
        .parse()
        .unwrap_or_else(|_| panic!("not a count: {out:?}"))
}

fn assert_equal_files(dir: &Path, expected: &Path, actual: &Path) {
    let scratch = dir.join("scratch.db");
    let count = |f: &Path| sqlite(f, "SELECT count(*) FROM point_readings");
    assert_eq!(count(expected), count(actual), "row counts differ");
    assert_eq!(
        rows_not_in(&scratch, expected, actual),
        0,
        "rows missing from the target"
    );
    assert_eq!(
        rows_not_in(&scratch, actual, expected),
        0,
        "rows the SQL unpivot does not have"
    );
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
    // The hostile values arrived as they are: NaN kept (as SQLite's text 'NaN'), ±infinity,
    // the largest and smallest doubles, -0.001 kWh → -1 Wh.
    let nasty = sqlite(
        &target,
        "SELECT count(*) FROM point_readings WHERE system_id = 1 AND \
         (value = 'NaN' OR value = 1.7976931348623157e308 OR value = -1.7976931348623157e308 \
          OR value = 5e-324 OR value > 1e308 OR value < -1e308 OR value = -1.0)",
    );
    assert!(nasty.trim().parse::<u64>().unwrap_or(0) >= 7, "{nasty}");

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
        sqlite(&target, "SELECT count(*) FROM point_readings").trim(),
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

/// `value` exactly, for PostgreSQL: text (`NaN`, SQLite's infinities) or a double's mantissa
/// and exponent (the `sqlite3` shell's ieee754 functions; its printf rounds the 17th digit).
const EXACT: &str = "CASE WHEN typeof(value) <> 'real' THEN value WHEN value = 9e999 THEN 'Infinity' WHEN value = -9e999 THEN '-Infinity' END, \
     CASE WHEN typeof(value) = 'real' AND abs(value) < 9e999 THEN ieee754_mantissa(value) END, \
     CASE WHEN typeof(value) = 'real' AND abs(value) < 9e999 THEN ieee754_exponent(value) END";

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
    // The SQL unpivot's rows, loaded into PostgreSQL with exact float text.
    let csv = d.join("expected.csv");
    run(Command::new("sqlite3")
        .arg(&expected)
        .args(["-csv", "-noheader"])
        .arg(format!(
            "SELECT system_id, point_id, measurement_time, {EXACT} FROM point_readings"
        ))
        .stdout(std::fs::File::create(&csv).unwrap_or_else(|e| panic!("{e}"))));
    let load = format!(
        "CREATE TABLE loaded (system_id bigint, point_id bigint, measurement_time bigint, t text, m bigint, e int);\n\\copy loaded FROM '{}' (FORMAT csv)\n\
         CREATE TABLE expected AS SELECT system_id, point_id, measurement_time, coalesce(t::float8, m * power(2::float8, e / 2) * power(2::float8, e - e / 2)) AS value FROM loaded;\n",
        csv.display()
    );
    cluster
        .psql("points", &load)
        .unwrap_or_else(|e| panic!("{e}"));
    let diff = |a: &str, b: &str| {
        cluster
            .psql(
                "points",
                &format!("SELECT count(*), string_agg(x::text, ' ') FROM (SELECT * FROM {a} EXCEPT ALL SELECT * FROM {b}) x"),
            )
            .unwrap_or_else(|e| panic!("{e}"))
    };
    assert_eq!(diff("expected", "point_readings").trim(), "0|");
    assert_eq!(diff("point_readings", "expected").trim(), "0|");
    let n = cluster
        .psql("points", "SELECT count(*) FROM point_readings")
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(n.trim().parse::<u64>().unwrap_or(0) > 1000, "{n}");
    let o = tsmigrate(d, &["verify", &plan], &src, &d.join("unused.db"));
    assert_exit(&o, 0);
}
