//! Values written exactly or rejected with their reason — never changed by the store, never
//! fatal to a run — against real PostgreSQL and SQLite targets:
//!
//! - target columns narrower than their type (`numeric(10,2)`, `timestamptz(0)`,
//!   `varchar(3)`, `char(3)`, `jsonb`): PostgreSQL would round, cut trailing spaces or refuse
//!   the whole partition; tsmigrate rejects the row (or, where the plan allows the named loss,
//!   makes it fit and counts it), and `verify` agrees with what was written;
//! - a SQLite source whose REAL column holds text: that row rejected with its rowid, the rest
//!   moved;
//! - a unit conversion that overflows: the rejected row shows the value as read;
//! - `check` refuses what `run` refuses (a declared type the table cannot take exactly, an
//!   `append` into rows the ledger did not write) and knows what the ledger did write.

mod common;

use std::path::PathBuf;
use std::process::Output;

use common::*;
use tsmigrate_testkit::PgCluster;

struct Env {
    cluster: PgCluster,
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        let cluster = PgCluster::start().unwrap_or_else(|e| panic!("starting PostgreSQL: {e}"));
        for db in ["src", "dst"] {
            cluster
                .create_database(db)
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        Env { cluster, dir }
    }

    fn sql(&self, db: &str, q: &str) -> String {
        self.cluster
            .psql(db, q)
            .unwrap_or_else(|e| panic!("{e}\n{q}"))
    }

    fn plan(&self, name: &str, text: &str) -> String {
        let p = self.dir.path().join(name);
        let text = text
            .replace("@SRC@", &self.cluster.url("src"))
            .replace("@DST@", &self.cluster.url("dst"));
        std::fs::write(&p, text).unwrap_or_else(|e| panic!("{e}"));
        p.display().to_string()
    }

    fn tsm(&self, args: &[&str]) -> Output {
        run_tsmigrate(self.dir.path(), args, &[])
    }

    fn file(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default()
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

const NARROW_SOURCE: &str = r#"
CREATE TABLE readings (id int PRIMARY KEY, n numeric, ts timestamptz, v text, c text, j text);
INSERT INTO readings VALUES
 (1, 1.23,         '2025-01-01 00:00:00+00',        'abc',  'ab',   '{"a":1}'),
 (2, 1.234,        '2025-01-01 00:00:01+00',        'abc',  'ab',   '{"a":2}'),
 (3, 2.5,          '2025-01-01 00:00:02.999999+00', 'abc',  'ab',   '{"a":3}'),
 (4, 4,            '2025-01-01 00:00:03+00',        'abcd', 'ab',   '{"a":4}'),
 (5, 5,            '2025-01-01 00:00:04+00',        'ab  ', 'ab',   '{"a":5}'),
 (6, 6,            '2025-01-01 00:00:05+00',        'abc',  'abcd', '{"a":6}'),
 (7, 7,            '2025-01-01 00:00:06+00',        'abc',  'ab',   '{"a":"x\u0000y"}'),
 (8, 8,            '2025-01-01 00:00:07+00',        'abc',  'ab',   '{"a":1e999999}'),
 (9, 123456789.12, '2025-01-01 00:00:08+00',        'abc',  'ab',   '{"a":9}'),
 (10, 10,          '2025-01-01 00:00:09+00',        'abc',  'ab ',  '{"a":10}');
"#;

const NARROW_TARGET: &str =
    "CREATE TABLE readings (id int PRIMARY KEY, n numeric(10,2), ts timestamptz(0), \
     v varchar(3), c char(3), j jsonb)";

fn narrow_plan(allow: &str) -> String {
    format!(
        r#"
[source]
kind = "postgres"
url = "@SRC@"

[target]
kind = "postgres"
url = "@DST@"

[[streams]]
name = "readings"
{allow}
"#
    )
}

/// The rejects file's lines mentioning row `id`.
fn reject_of(rejects: &str, id: i32) -> String {
    rejects
        .lines()
        .filter(|l| l.contains(&format!("\"\"id\"\":{id},")))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn narrow_postgresql_columns_reject_what_they_would_change_or_refuse() {
    let env = Env::new();
    env.sql("src", NARROW_SOURCE);
    env.sql("dst", NARROW_TARGET);
    let plan = env.plan("narrow.toml", &narrow_plan(""));
    // PostgreSQL alone would store 1.234 as 1.23, …02.999999 as …03, 'ab  ' as 'ab ', and
    // stop at 'abcd', \u0000, 1e999999 and 123456789.12: each is a rejected row instead.
    let out = env.tsm(&["run", &plan, "--max-rejects", "20"]);
    assert_exit(&out, 0);
    assert_eq!(
        env.sql(
            "dst",
            "SELECT string_agg(id::text, ',' ORDER BY id) FROM readings"
        ),
        "1,10"
    );
    let rejects = env.file("readings.rejects.csv");
    for (id, why) in [
        (
            2,
            "more than the 2 decimal place(s) of the column's numeric(10,2)",
        ),
        (3, "more than the 0 fractional digit(s) of a second"),
        (
            4,
            "is 4 characters, more than the column's varchar(3) holds",
        ),
        (
            5,
            "is 4 characters, more than the column's varchar(3) holds",
        ),
        (6, "is 4 characters, more than the column's char(3) holds"),
        (
            7,
            "\\u0000 is not allowed in JSON text stored by PostgreSQL",
        ),
        (8, "beyond the range of PostgreSQL's jsonb"),
        (9, "does not fit the column's numeric(10,2)"),
    ] {
        let line = reject_of(&rejects, id);
        assert!(line.contains(why), "row {id}: {line:?}\n{rejects}");
    }
    // 'ab ' into char(3) is stored padded, and equal to the source on verify.
    assert_eq!(
        env.sql("dst", "SELECT n, ts, v, c || '|', j FROM readings ORDER BY id"),
        "1.23|2025-01-01 00:00:00+00|abc|ab||{\"a\": 1}\n10.00|2025-01-01 00:00:09+00|abc|ab||{\"a\": 10}"
    );
    let out = env.tsm(&["verify", &plan]);
    assert_exit(&out, 0);

    // With the losses allowed, rows are made to fit as PostgreSQL would (and counted); what
    // no loss can fit stays rejected.
    env.sql(
        "dst",
        &format!("DROP TABLE readings; DROP SCHEMA tsmigrate CASCADE; {NARROW_TARGET}"),
    );
    let plan = env.plan(
        "narrow-lossy.toml",
        &narrow_plan(
            r#"allow_lossy = ["numeric_rounding", "timestamp_truncation", "text_truncation"]"#,
        ),
    );
    let out = env.tsm(&["run", &plan, "--max-rejects", "20", "--report", "r.json"]);
    assert_exit(&out, 0);
    assert_eq!(
        env.sql(
            "dst",
            "SELECT id, n, ts, v, c || '|' FROM readings WHERE id IN (2, 3, 4, 5, 6) ORDER BY id"
        ),
        "2|1.23|2025-01-01 00:00:01+00|abc|ab|\n\
         3|2.50|2025-01-01 00:00:03+00|abc|ab|\n\
         4|4.00|2025-01-01 00:00:03+00|abc|ab|\n\
         5|5.00|2025-01-01 00:00:04+00|ab |ab|\n\
         6|6.00|2025-01-01 00:00:05+00|abc|abc|"
    );
    let r = read_json(&env.path("r.json"));
    let lossy = &r["streams"][0]["lossy_conversions"];
    assert_eq!(lossy["numeric_rounding"].as_u64(), Some(1), "{r}");
    assert_eq!(lossy["timestamp_truncation"].as_u64(), Some(1), "{r}");
    assert_eq!(lossy["text_truncation"].as_u64(), Some(3), "{r}");
    assert_eq!(r["streams"][0]["rows_rejected"].as_u64(), Some(3), "{r}");
    // verify applies the same rule to the source side: equal.
    let out = env.tsm(&["verify", &plan]);
    assert_exit(&out, 0);
}

/// The rows of `readings.rejects.csv` (after the header), sorted.
fn reject_rows(env: &Env) -> Vec<String> {
    let mut rows: Vec<String> = env
        .file("readings.rejects.csv")
        .lines()
        .skip(1)
        .map(String::from)
        .collect();
    rows.sort();
    rows
}

#[test]
fn rows_the_target_refuses_are_rejected_not_fatal() {
    let env = Env::new();
    // A PostgreSQL target with a CHECK constraint, and a JSON document nested deeper than the
    // server's parser takes (neither foreseen by the conversion rules): the partition fails,
    // is written again isolating the refused rows, and only they are rejected.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    std::fs::write(env.path("deep.json"), &deep).unwrap_or_else(|e| panic!("{e}"));
    env.sql(
        "src",
        &format!(
            "CREATE TABLE readings (id int PRIMARY KEY, v int, j text);
             INSERT INTO readings SELECT g, g % 50, '{{\"n\":' || g || '}}' FROM generate_series(1, 3000) g;
             CREATE TEMP TABLE d (j text); COPY d FROM '{}';
             UPDATE readings SET j = (SELECT j FROM d) WHERE id = 1500;",
            env.path("deep.json").display()
        ),
    );
    env.sql(
        "dst",
        "CREATE TABLE readings (id int PRIMARY KEY, v int CHECK (v <> 13), j jsonb)",
    );
    let plan = env.plan("refused.toml", &narrow_plan(""));
    let out = env.tsm(&["run", &plan, "--max-rejects", "100", "--batch-rows", "500"]);
    assert_exit(&out, 0);
    assert!(
        text(&out).contains("isolating the rows the target refuses"),
        "{}",
        text(&out)
    );
    let expected: Vec<String> = (1..=3000)
        .filter(|g| g % 50 != 13 && *g != 1500)
        .map(|g| g.to_string())
        .collect();
    assert_eq!(
        env.sql(
            "dst",
            "SELECT string_agg(id::text, ',' ORDER BY id) FROM readings"
        ),
        expected.join(",")
    );
    let rejects = reject_rows(&env);
    assert_eq!(
        rejects.len(),
        61,
        "60 rows with v = 13 and the deep document"
    );
    assert!(
        reject_of(&rejects.join("\n"), 63).contains("violates check constraint"),
        "{rejects:?}"
    );
    assert!(
        reject_of(&rejects.join("\n"), 1500).contains("stack depth limit exceeded"),
        "{rejects:?}"
    );

    // A SQLite target with a CHECK constraint: the refused rows are rejected as the others
    // are written.
    let db = env.path("t.db");
    run(std::process::Command::new("sqlite3").arg(&db).arg(
        "CREATE TABLE readings (id INTEGER PRIMARY KEY, v INTEGER CHECK (v <> 13), j TEXT CHECK (json_valid(j)))",
    ));
    std::fs::remove_file(env.path("readings.rejects.csv")).unwrap_or_default();
    env.sql(
        "src",
        "UPDATE readings SET j = '{\"n\":1500}' WHERE id = 1500",
    );
    let plan = env.plan(
        "refused-sqlite.toml",
        &format!(
            "[source]\nkind = \"postgres\"\nurl = \"@SRC@\"\n[target]\nkind = \"sqlite\"\npath = \"{}\"\n[[streams]]\nname = \"readings\"\n",
            db.display()
        ),
    );
    let out = env.tsm(&["run", &plan, "--max-rejects", "100"]);
    assert_exit(&out, 0);
    let written = sqlite(&db, "SELECT count(*), sum(v = 13) FROM readings");
    assert_eq!(written.trim(), "2940|0");
    assert_eq!(reject_rows(&env).len(), 60);
}

#[test]
fn a_sqlite_source_value_that_does_not_fit_its_column_is_a_rejected_row() {
    let env = Env::new();
    let db = env.path("src.db");
    // SQLite keeps whatever it is given: text in a REAL column, a fraction in an INTEGER one.
    run(std::process::Command::new("sqlite3").arg(&db).arg(
        "CREATE TABLE readings (id INTEGER PRIMARY KEY, v REAL, n INTEGER);
         INSERT INTO readings VALUES (1, 1.5, 1), (2, 'abc', 2), (3, 3.5, 3), (4, 4.5, '4.25'), (5, 'NaN', 5);",
    ));
    env.sql(
        "dst",
        "CREATE TABLE readings (id bigint, v float8, n bigint)",
    );
    let plan = env.plan(
        "sqlite-src.toml",
        &format!(
            "[source]\nkind = \"sqlite\"\npath = \"{}\"\n[target]\nkind = \"postgres\"\nurl = \"@DST@\"\n[[streams]]\nname = \"readings\"\n",
            db.display()
        ),
    );
    // A reject by default stops the run (exit 3); with room, the others are moved.
    assert_exit(&env.tsm(&["run", &plan]), 3);
    env.sql("dst", "TRUNCATE readings; DROP SCHEMA tsmigrate CASCADE");
    let out = env.tsm(&["run", &plan, "--max-rejects", "5"]);
    assert_exit(&out, 0);
    assert_eq!(
        env.sql("dst", "SELECT id, v, n FROM readings ORDER BY id"),
        "1|1.5|1\n3|3.5|3\n5|NaN|5"
    );
    let rejects = reject_rows(&env);
    assert_eq!(rejects.len(), 2, "{rejects:?}");
    assert!(rejects[0].contains("rowid 2, column `v`"), "{rejects:?}");
    assert!(rejects[1].contains("rowid 4, column `n`"), "{rejects:?}");
}

#[test]
fn check_refuses_what_run_refuses_and_knows_what_the_ledger_wrote() {
    let env = Env::new();
    env.sql("src", "CREATE TABLE readings (id int PRIMARY KEY, v text); INSERT INTO readings VALUES (1, 'a'), (2, 'b');");
    // A declared type the table's column cannot take exactly.
    env.sql("dst", "CREATE TABLE readings (id int, v int)");
    let typed = env.plan(
        "typed.toml",
        "[source]\nkind = \"postgres\"\nurl = \"@SRC@\"\n[target]\nkind = \"postgres\"\nurl = \"@DST@\"\n\
         [[streams]]\nname = \"readings\"\ncolumns = [{ name = \"id\" }, { name = \"v\", type = \"text\" }]\n",
    );
    for cmd in ["check", "run"] {
        let out = env.tsm(&[cmd, &typed]);
        assert_exit(&out, 2);
        assert!(
            text(&out).contains("declares type = \"text\""),
            "{cmd}: {}",
            text(&out)
        );
    }
    // An append into a table holding rows the ledger did not write: refused by both.
    env.sql("dst", "DROP TABLE readings; CREATE TABLE readings (id int, v text); INSERT INTO readings VALUES (9, 'z')");
    let plan = env.plan("append.toml", &narrow_plan(""));
    for cmd in ["check", "run"] {
        let out = env.tsm(&[cmd, &plan]);
        assert_exit(&out, 2);
        assert!(
            text(&out).contains("already holds rows that this plan's ledger did not write"),
            "{cmd}: {}",
            text(&out)
        );
    }
    // After a run wrote the table, check knows it from the ledger: no such complaint.
    env.sql("dst", "TRUNCATE readings");
    assert_exit(&env.tsm(&["run", &plan]), 0);
    let out = env.tsm(&["check", &plan]);
    assert_exit(&out, 0);
    assert!(!text(&out).contains("did not write"), "{}", text(&out));
}

#[test]
fn a_unit_conversion_that_overflows_keeps_the_value_as_read_in_the_rejects() {
    let env = Env::new();
    let db = env.path("wide.db");
    run(std::process::Command::new("sqlite3").arg(&db).arg(
        "CREATE TABLE readings (system_id INTEGER, t INTEGER, temp_c REAL, PRIMARY KEY (system_id, t));
         INSERT INTO readings VALUES (1, 0, 21.5), (1, 60, 1e308), (1, 120, -40);",
    ));
    let plan = env.plan(
        "units.toml",
        &format!(
            "[source]\nkind = \"sqlite\"\npath = \"{}\"\n[target]\nkind = \"postgres\"\nurl = \"@DST@\"\n\
             [[streams]]\nname = \"points\"\nfrom = \"readings\"\ncreate = true\n\
             [streams.unpivot]\nkeep = [\"system_id\", \"t\"]\n\
             [streams.unpivot.point.temp_c]\nid = 1\nunit = \"°F\"\nscale = 1.8\noffset = 32\n",
            db.display()
        ),
    );
    let out = env.tsm(&["run", &plan, "--max-rejects", "1"]);
    assert_exit(&out, 0);
    assert_eq!(
        env.sql("dst", "SELECT t, value FROM points ORDER BY t"),
        "0|70.7\n120|-40"
    );
    let rejects = env.file("points.rejects.csv");
    let line = rejects.lines().nth(1).unwrap_or_default();
    // The row shows 1e308 as read, not the NULL of the failed result (issue 23, item 9).
    assert!(line.contains(r#"""value"":1e+308"#), "{rejects}");
}

#[test]
fn rejects_survive_a_kill_and_a_redone_partition_lists_them_once() {
    let env = Env::new();
    // 40 partitions of 500 rows; every 100th row cannot be stored (varchar(2)), and the
    // target is slow (a trigger sleeps), so a kill lands mid-run.
    env.sql(
        "src",
        "CREATE TABLE readings (id int PRIMARY KEY, v text);
         INSERT INTO readings SELECT g, CASE WHEN g % 100 = 0 THEN 'too long' ELSE 'ok' END FROM generate_series(1, 20000) g;",
    );
    env.sql(
        "dst",
        "CREATE TABLE readings (id int, v varchar(2));
         CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(0.05); RETURN NULL; END $$;
         CREATE TRIGGER slow AFTER INSERT ON readings FOR EACH STATEMENT EXECUTE FUNCTION slow();",
    );
    let plan = env.plan("kill.toml", &narrow_plan(""));
    let args = [
        "run",
        &plan,
        "--max-rejects",
        "1000",
        "--partition-rows",
        "500",
        "--batch-rows",
        "100",
        "-j",
        "2",
    ];
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tsmigrate"))
        .args(args)
        .current_dir(env.dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    // Kill once a few partitions committed (their rejects must survive).
    let t0 = std::time::Instant::now();
    loop {
        let done: u64 = env
            .sql(
                "dst",
                "SELECT CASE WHEN to_regclass('tsmigrate.partitions') IS NULL THEN 0 ELSE 1 END",
            )
            .trim()
            .parse()
            .unwrap_or(0);
        let committed: u64 = if done == 1 {
            env.sql(
                "dst",
                "SELECT count(*) FROM tsmigrate.partitions WHERE state = 'done'",
            )
            .trim()
            .parse()
            .unwrap_or(0)
        } else {
            0
        };
        if committed >= 3 || t0.elapsed().as_secs() > 60 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    let committed_before = env.sql(
        "dst",
        "SELECT count(*) FROM tsmigrate.partitions WHERE state = 'done'",
    );
    assert!(
        committed_before.trim().parse::<u64>().unwrap_or(0) < 40,
        "killed mid-run"
    );
    // Resume; then roll back the run and run again: partitions redone replace their rejects.
    assert_exit(&env.tsm(&args), 0);
    let expected: Vec<String> = (1..=200).map(|i| format!("{}", i * 100)).collect();
    let ids = |env: &Env| -> Vec<String> {
        let mut ids: Vec<String> = reject_rows(env)
            .iter()
            .filter_map(|l| l.split(',').nth(1).map(String::from))
            .collect();
        ids.sort_by_key(|i| i.parse::<u64>().unwrap_or(0));
        ids
    };
    assert_eq!(
        ids(&env),
        expected,
        "every rejected row once, the killed run's included"
    );
    let st = env.tsm(&["status", &plan, "--json"]);
    let st: serde_json::Value =
        serde_json::from_slice(&st.stdout).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        st["streams"][0]["rows_rejected"].as_u64(),
        Some(200),
        "{st}"
    );
    assert_eq!(env.sql("dst", "SELECT count(*) FROM readings"), "19800");
    // Roll the resumed run back and run again: its partitions are written again, and their
    // rejects replace theirs instead of being listed twice.
    let runs = env.tsm(&["runs", &plan, "--json"]);
    let runs: serde_json::Value =
        serde_json::from_slice(&runs.stdout).unwrap_or_else(|e| panic!("{e}"));
    let last = runs["runs"]
        .as_array()
        .and_then(|r| r.last())
        .and_then(|r| r["id"].as_i64());
    let last = last.unwrap_or_else(|| panic!("{runs}")).to_string();
    assert_exit(&env.tsm(&["rollback", &plan, "--run", &last, "--yes"]), 0);
    assert_exit(&env.tsm(&args), 0);
    assert_eq!(ids(&env), expected, "every rejected row once after a redo");
    assert_eq!(env.sql("dst", "SELECT count(*) FROM readings"), "19800");
}
