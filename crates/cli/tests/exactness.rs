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
