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
