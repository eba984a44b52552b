//! Secrets never leak: a password planted in both connection strings (through `${ENV}`, as
//! plans are meant to carry them) is searched for in every channel a run writes — stdout,
//! stderr, the JSON report, the rejects file, every ledger table — for a succeeding run, a
//! dry run, `check`, `status`, `runs`, `verify`, and runs failing to connect or to write.

mod common;

use common::*;
use tsmigrate_testkit::thingsboard::TbSpec;

const PLANTED: &str = "planted-Secret-42";

/// The URL with the planted password (trust authentication ignores it; tsmigrate must still
/// never print it).
fn with_password(url: &str) -> String {
    url.replacen(
        "postgres://postgres@",
        &format!("postgres://postgres:{PLANTED}@"),
        1,
    )
}

fn scan(what: &str, text: &str) {
    assert!(
        !text.contains(PLANTED),
        "{what} shows the password:\n{text}"
    );
}

fn run_scanned(env: &Env, args: &[&str], source: &str, target: &str) -> std::process::Output {
    let out = run_tsmigrate(
        env.dir.path(),
        args,
        &[("TB_URL", source), ("TARGET_URL", target)],
    );
    scan(&format!("`tsmigrate {}`", args.join(" ")), &text(&out));
    out
}

#[test]
fn a_planted_password_appears_in_no_output_report_rejects_or_ledger() {
    let env = setup(TbSpec::default());
    let source = with_password(&env.source_url());
    let target = with_password(&env.target_url());
    assert!(source.contains(PLANTED) && target.contains(PLANTED));
    let plan = example_plan();

    run_scanned(&env, &["check", &plan], &source, &target);
    run_scanned(
        &env,
        &["run", &plan, "--dry-run", "--limit", "3", "--preview", "3"],
        &source,
        &target,
    );
    let out = run_scanned(
        &env,
        &[
            "run",
            &plan,
            "--max-rejects",
            "10",
            "--report",
            "report.json",
        ],
        &source,
        &target,
    );
    assert_exit(&out, 0);
    scan("the report", &env.file("report.json"));
    let rejects = env.file("devices.rejects.csv");
    assert!(
        rejects.contains("not valid JSON"),
        "the run rejected a row: {rejects}"
    );
    scan("the rejects file", &rejects);
    run_scanned(&env, &["status", &plan], &source, &target);
    run_scanned(&env, &["runs", &plan, "--json"], &source, &target);
    run_scanned(&env, &["verify", &plan], &source, &target);
    // Every row of every ledger table, as text.
    let tables = env.sql(
        "iiot",
        "SELECT string_agg(format('%I.%I', table_schema, table_name), ' ') FROM information_schema.tables \
         WHERE table_schema = 'tsmigrate'",
    );
    assert!(tables.contains("partitions"), "the ledger exists: {tables}");
    for t in tables.split_whitespace() {
        let rows = env.sql("iiot", &format!("SELECT x::text FROM {t} x"));
        scan(&format!("ledger table {t}"), &rows);
    }

    // Failures: a target that refuses the connection, and a source that is not ThingsBoard.
    let closed = with_password(&env.cluster.url("iiot"))
        .replace(&format!(":{}/", env.cluster.port()), ":1/");
    let out = run_scanned(&env, &["run", &plan], &source, &closed);
    assert_exit(&out, 1);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("postgres:***@"), "{}", text(&out));
    assert!(
        err.contains("cannot connect to the target"),
        "names the end: {err}"
    );
    assert!(
        err.contains("nothing listens at `127.0.0.1`"),
        "says what to check: {err}"
    );
    let not_tb = with_password(&env.cluster.url("postgres"));
    let out = run_scanned(&env, &["run", &plan], &not_tb, &target);
    assert_ne!(out.status.code(), Some(0));
}

/// A cluster with a small `src.readings` table and an empty `dst`, and a plan copying it
/// from `${SRC}` to `${DST}`.
fn small_env() -> (tsmigrate_testkit::PgCluster, tempfile::TempDir, String) {
    let c = tsmigrate_testkit::PgCluster::start().unwrap_or_else(|e| panic!("{e}"));
    for db in ["src", "dst"] {
        c.create_database(db).unwrap_or_else(|e| panic!("{e}"));
    }
    c.psql(
        "src",
        "CREATE TABLE readings (id bigint, v double precision);
         INSERT INTO readings SELECT g, g / 4.0 FROM generate_series(1, 50) g;",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let plan = dir.path().join("spellings.toml");
    std::fs::write(
        &plan,
        "[source]\nkind = \"postgres\"\nurl = \"${SRC}\"\n\n[target]\nkind = \"postgres\"\nurl = \"${DST}\"\n\n\
         [[streams]]\nname = \"readings\"\ncreate = true\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let plan = plan.display().to_string();
    (c, dir, plan)
}

/// Runs tsmigrate with `SRC`/`DST` set and scans everything it printed for the password, its
/// percent-encoded spelling and its first half (a masking that cut it would leave a piece).
fn scanned(dir: &std::path::Path, args: &[&str], src: &str, dst: &str) -> std::process::Output {
    let out = run_tsmigrate(dir, args, &[("SRC", src), ("DST", dst)]);
    let all = text(&out);
    for secret in [PLANTED, "planted%2DSecret", "planted-Se"] {
        assert!(
            !all.contains(secret),
            "`tsmigrate {}` with SRC={src:?} shows {secret:?}:\n{all}",
            args.join(" ")
        );
    }
    out
}

#[test]
fn every_spelling_of_a_planted_password_is_masked_in_every_command() {
    let (c, dir, plan) = small_env();
    let d = dir.path();
    let port = c.port();
    let dst = format!("host=127.0.0.1 port={port} user=postgres dbname=dst password = '{PLANTED}'");
    // The spellings of issue 30 (F): trust authentication ignores the password, so each
    // connects and runs; masking must hold in every command's output.
    let spellings = [
        format!("host=127.0.0.1 port={port} user=postgres password = '{PLANTED}' dbname=src"),
        format!("host=127.0.0.1 port={port} user=postgres password= {PLANTED} dbname=src"),
        format!("host=127.0.0.1 port={port} user=postgres password=a\\ {PLANTED} dbname=src"),
        format!("host=127.0.0.1 port={port} user=postgres dbname=src password='it\\'s {PLANTED}'"),
        format!("postgres://postgres:{PLANTED}@127.0.0.1:{port}/src"),
        format!(
            "postgresql://postgres:{}@127.0.0.1:{port}/src",
            PLANTED.replace('-', "%2D")
        ),
        format!("postgres://127.0.0.1:{port}/src?user=postgres&password={PLANTED}"),
    ];
    for src in &spellings {
        let out = scanned(d, &["check", &plan], src, &dst);
        assert_exit(&out, 0);
        assert!(text(&out).contains("***"), "shown masked: {}", text(&out));
        assert_exit(&scanned(d, &["run", &plan], src, &dst), 0);
        assert_exit(&scanned(d, &["verify", &plan], src, &dst), 0);
        scanned(d, &["status", &plan], src, &dst);
        // Errors: the same string to a port nothing listens on.
        let closed = src
            .replace(&format!("port={port}"), "port=1")
            .replace(&format!(":{port}/"), ":1/");
        let out = scanned(d, &["run", &plan], &closed, &dst);
        assert_exit(&out, 1);
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("cannot connect to the source"),
            "{}",
            text(&out)
        );
    }
    let rows = c
        .psql("dst", "SELECT count(*), sum(v) FROM readings")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rows.trim(), "50|318.75");

    // Strings that do not parse (a mistyped scheme, an unencoded `@`, a password with a
    // blank): refused as plan errors saying what is wrong, nothing of them shown.
    for bad in [
        format!("postgres:/postgres:{PLANTED}@127.0.0.1:{port}/src"),
        format!("postgresql//postgres:{PLANTED}@127.0.0.1:{port}/src"),
        format!("postgres://postgres:{PLANTED}@x@127.0.0.1:{port}/src"),
        format!("host=127.0.0.1 port={port} password=my {PLANTED} dbname=src"),
    ] {
        for cmd in ["check", "run", "verify"] {
            let out = scanned(d, &[cmd, &plan], &bad, &dst);
            assert_exit(&out, 2);
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                err.contains("source.url is not a connection string"),
                "{cmd}: {err}"
            );
            assert!(err.contains("near character"), "{cmd}: {err}");
        }
    }

    // A source whose connector opens without looking at the string (ThingsBoard) shows it
    // in `check`'s header: a string that does not parse is not shown at all.
    let tb = d.join("tb.toml");
    std::fs::write(
        &tb,
        "[source]\nkind = \"thingsboard\"\nurl = \"${SRC}\"\n\n[target]\nkind = \"postgres\"\nurl = \"${DST}\"\n\n\
         [[streams]]\nname = \"telemetry\"\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let tb = tb.display().to_string();
    for bad in [
        format!("postgres:/postgres:{PLANTED}@127.0.0.1:{port}/src"),
        format!("postgresql//postgres:{PLANTED}@127.0.0.1:{port}/src"),
    ] {
        for cmd in ["check", "run"] {
            let out = scanned(d, &[cmd, &tb], &bad, &dst);
            assert_ne!(out.status.code(), Some(0), "{}", text(&out));
            assert!(
                text(&out).contains("source.url is not a connection string"),
                "{}",
                text(&out)
            );
        }
    }

    // A password from PGPASSWORD: a failed connection does not show it either.
    let out = run_tsmigrate(
        d,
        &["check", &plan],
        &[
            ("SRC", "host=127.0.0.1 port=1 user=postgres dbname=src"),
            ("DST", &dst),
            ("PGPASSWORD", PLANTED),
        ],
    );
    assert!(!text(&out).contains(PLANTED), "{}", text(&out));
}
