//! End to end: the ledger — resuming after kill -9 and Ctrl-C, retrying transient errors,
//! incremental sync (once and --follow), status, runs and rollback, and the refusals that keep
//! a target free of duplicates — against real PostgreSQL clusters and the real binary, the
//! target compared with the source row by row.
//!
//! Runs that must be caught in flight write into a target table made slow on purpose: a
//! statement trigger sleeps in every partition's transaction, so a test can act while
//! partitions are being written without relying on how fast the machine is.

mod common;

use std::io::Write as _;
use std::os::unix::process::ExitStatusExt as _;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;
use tsmigrate_testkit::thingsboard::TbSpec;

/// The example plan's telemetry mapping (renamed keys, device_id/timestamp/key/value/
/// text_value/metadata), so the stream's key (device_id, timestamp, key) can be inferred and
/// [`expected_telemetry`] describes the target.
const TELEMETRY_MAPPING: &str = r#"
[streams.rename_keys]
"86"  = "pump_pressure_bar"
"87"  = "pump_flow_lpm"
"146" = "tank_level_pct"
"147" = "tank_temperature_c"
"148" = "inlet_valve_open"
"149" = "outlet_valve_open"
"150" = "battery_v"
"151" = "signal_rssi"

[[streams.columns]]
name = "device_id"
type = "uuid"
expr = "entity_id"

[[streams.columns]]
name = "timestamp"
type = "timestamptz"
expr = "from_epoch_ms(ts)"

[[streams.columns]]
name = "key"
type = "text"
expr = "key"

[[streams.columns]]
name = "value"
type = "double precision"
expr = """
COALESCE(dbl_v,
         CASE WHEN long_v BETWEEN -9007199254740992 AND 9007199254740992 THEN long_v::float8 END,
         bool_v::int::float8)"""

[[streams.columns]]
name = "text_value"
type = "text"
expr = """
COALESCE(str_v,
         json_v::text,
         CASE WHEN long_v NOT BETWEEN -9007199254740992 AND 9007199254740992 THEN long_v::text END)"""

[[streams.columns]]
name = "metadata"
type = "jsonb"
expr = """'{"migrated_from":"thingsboard"}'::jsonb"""
"#;

/// The target table of [`TELEMETRY_MAPPING`], without a key.
const TELEMETRY_DDL: &str = r#"CREATE TABLE telemetry (
    device_id uuid, "timestamp" timestamptz, key text, value double precision,
    text_value text, metadata jsonb)"#;

/// The same table with the stream's key as its primary key.
const TELEMETRY_DDL_WITH_KEY: &str = r#"CREATE TABLE telemetry (
    device_id uuid, "timestamp" timestamptz, key text, value double precision,
    text_value text, metadata jsonb, PRIMARY KEY (device_id, key, "timestamp"))"#;

/// Terminates the target's sessions that are copying rows (a partition in flight); prints how
/// many. Materialized first, so `pg_terminate_backend` only ever sees the chosen sessions.
const TERMINATE_COPY: &str = "WITH victims AS MATERIALIZED (
    SELECT pid FROM pg_stat_activity
    WHERE datname = 'iiot' AND application_name = 'tsmigrate' AND query ILIKE 'COPY%'
      AND pid <> pg_backend_pid())
SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM victims";

/// Rows inserted by the tests are `dbl_v` rows of these dictionary key ids (temperature,
/// humidity, "86" — renamed pump_pressure_bar — and pressure).
const DBL_KEYS: [i32; 4] = [1, 2, 3, 4];

/// A fixture of about `rows` telemetry rows over 7 devices and 3 months (2025-08 to
/// 2025-10), with the hostile rows (NaN, ±Infinity, longs above 2^53, awkward strings, a row
/// stamped in 2100 — copied, and capping its series' watermark at the time of the read).
fn fixture(rows: u64) -> Env {
    setup(TbSpec {
        rows,
        nasty: true,
        ..TbSpec::default()
    })
}

/// A plan with the example's telemetry stream; `run` goes into `[run]`, `stream` into the
/// stream's table (before its sub-tables).
fn telemetry_plan(run: &str, stream: &str) -> String {
    format!(
        r#"
[source]
kind = "thingsboard"
url = "@SOURCE@"

[target]
kind = "postgres"
url = "@TARGET@"

[run]
{run}

[[streams]]
name = "telemetry"
from = "telemetry"
table = "telemetry"
create = true
filter = {{ entity_types = ["DEVICE"] }}
{stream}
{TELEMETRY_MAPPING}"#
    )
}

fn path_arg(p: &Path) -> String {
    p.display().to_string()
}

/// Creates the (empty) target table with a statement trigger sleeping `seconds` in every
/// insert statement, so each partition's transaction lasts at least that long.
fn create_slow_target(env: &Env, seconds: f64) {
    env.sql(
        "iiot",
        &format!(
            "{TELEMETRY_DDL};
             CREATE FUNCTION tsm_test_slow() RETURNS trigger LANGUAGE plpgsql AS
               $$ BEGIN PERFORM pg_sleep({seconds}); RETURN NULL; END $$;
             CREATE TRIGGER tsm_test_slow AFTER INSERT ON telemetry
               FOR EACH STATEMENT EXECUTE FUNCTION tsm_test_slow();"
        ),
    );
}

/// Rows of the target that are not `legacy` rows planted by a test, in
/// [`expected_telemetry`]'s order.
const TARGET_MIGRATED: &str =
    "SELECT device_id, \"timestamp\", key, value, text_value, metadata FROM telemetry
     WHERE key <> 'legacy' ORDER BY 1, 3, 2";

/// Target (device_id, key, timestamp) keys present more than once.
fn duplicate_keys(env: &Env) -> u64 {
    env.count(
        "iiot",
        "SELECT count(*) FROM (SELECT 1 FROM telemetry GROUP BY device_id, key, \"timestamp\" HAVING count(*) > 1) d",
    )
}

/// Device telemetry rows in the source.
fn source_rows(env: &Env) -> u64 {
    env.count(
        "tb",
        "SELECT count(*) FROM ts_kv WHERE entity_id IN (SELECT id FROM device)",
    )
}

/// Asserts the target holds every source device row exactly once, mapped, and nothing else
/// (but the test's own `legacy` rows).
fn assert_target_is_source(env: &Env, what: &str) {
    let expected = env.sql("tb", &expected_telemetry(env.tb.dictionary_table));
    assert!(
        expected.lines().count() > 1000,
        "{what}: fixture too small: {} rows",
        expected.lines().count()
    );
    let actual = env.sql("iiot", TARGET_MIGRATED);
    assert_same_rows(what, &expected, &actual);
    assert_eq!(
        duplicate_keys(env),
        0,
        "{what}: duplicate keys in the target"
    );
}

fn ledger_exists(env: &Env) -> bool {
    env.sql(
        "iiot",
        "SELECT to_regclass('tsmigrate.partitions') IS NOT NULL",
    )
    .trim()
        == "t"
}

/// Ledger partitions in one of `states` (an SQL list, e.g. `'running', 'failed'`); 0 while
/// the ledger does not exist yet.
fn partitions_in(env: &Env, states: &str) -> u64 {
    if !ledger_exists(env) {
        return 0;
    }
    env.count(
        "iiot",
        &format!("SELECT count(*) FROM tsmigrate.partitions WHERE state IN ({states})"),
    )
}

fn partitions_total(env: &Env) -> u64 {
    env.count("iiot", "SELECT count(*) FROM tsmigrate.partitions")
}

/// Rows the ledger says its done partitions committed.
fn ledger_done_rows(env: &Env) -> u64 {
    env.count(
        "iiot",
        "SELECT COALESCE(sum(rows), 0) FROM tsmigrate.partitions WHERE state = 'done'",
    )
}

fn target_rows(env: &Env) -> u64 {
    if env
        .sql("iiot", "SELECT to_regclass('telemetry') IS NULL")
        .trim()
        == "t"
    {
        return 0;
    }
    env.count("iiot", "SELECT count(*) FROM telemetry")
}

/// Polls `ready` every 20 ms; panics with `what` after `timeout`. (A safety net for a hung
/// test, never an assertion on speed.)
fn wait_until(what: &str, timeout: Duration, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ready() {
        assert!(
            Instant::now() < deadline,
            "gave up after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Starts tsmigrate in the test's directory, its output going to `<name>.stdout` and
/// `<name>.stderr` there.
fn spawn(env: &Env, name: &str, args: &[&str]) -> Child {
    let file = |ext: &str| {
        let p = env.dir.path().join(format!("{name}.{ext}"));
        std::fs::File::create(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    };
    Command::new(env!("CARGO_BIN_EXE_tsmigrate"))
        .args(args)
        .current_dir(env.dir.path())
        .env("TB_URL", env.source_url())
        .env("TARGET_URL", env.target_url())
        .stdin(Stdio::null())
        .stdout(Stdio::from(file("stdout")))
        .stderr(Stdio::from(file("stderr")))
        .spawn()
        .unwrap_or_else(|e| panic!("starting tsmigrate {args:?}: {e}"))
}

/// What a process started by [`spawn`] printed so far.
fn logs(env: &Env, name: &str) -> (String, String) {
    (
        env.file(&format!("{name}.stdout")),
        env.file(&format!("{name}.stderr")),
    )
}

/// Whether the child has exited (without reaping information being lost: the status stays
/// available to a later `wait`).
fn has_exited(child: &mut Child) -> bool {
    matches!(child.try_wait(), Ok(Some(_)))
}

/// Waits for a process started by [`spawn`] to exit (killing it and failing after
/// `timeout`) and returns its status and output.
fn wait_child(env: &Env, mut child: Child, name: &str, timeout: Duration) -> Output {
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                let (out, err) = logs(env, name);
                panic!(
                    "tsmigrate ({name}) still running after {timeout:?}; killed it\n--- stdout\n{out}\n--- stderr\n{err}"
                );
            }
            Err(e) => panic!("waiting for tsmigrate ({name}): {e}"),
        }
    };
    let (stdout, stderr) = logs(env, name);
    Output {
        status,
        stdout: stdout.into_bytes(),
        stderr: stderr.into_bytes(),
    }
}

/// kill -9, after checking the process was still running (so the kill lands mid-run).
fn kill_9(env: &Env, mut child: Child, name: &str) {
    if let Ok(Some(status)) = child.try_wait() {
        let (out, err) = logs(env, name);
        panic!("tsmigrate ({name}) exited ({status}) before it could be killed mid-run\n--- stdout\n{out}\n--- stderr\n{err}");
    }
    child
        .kill()
        .unwrap_or_else(|e| panic!("kill -9 tsmigrate ({name}): {e}"));
    let status = child
        .wait()
        .unwrap_or_else(|e| panic!("waiting for tsmigrate ({name}): {e}"));
    if status.signal() != Some(9) {
        let (out, err) = logs(env, name);
        panic!("tsmigrate ({name}) exited ({status}) before the kill landed\n--- stdout\n{out}\n--- stderr\n{err}");
    }
}

/// Sends SIGINT (what Ctrl-C sends).
fn ctrl_c(child: &Child) {
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap_or_else(|e| panic!("running kill -INT: {e}"));
    assert!(
        status.success(),
        "kill -INT {} failed: {status}",
        child.id()
    );
}

/// Waits until the server has no tsmigrate session left (the server notices a killed
/// client's closed connection and rolls its transaction back).
fn wait_for_sessions_to_end(env: &Env) {
    wait_until(
        "the killed tsmigrate's sessions to end",
        Duration::from_secs(60),
        || {
            env.count(
                "postgres",
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'tsmigrate'",
            ) == 0
        },
    );
}

/// Runs tsmigrate with `input` on its stdin.
fn tsmigrate_with_input(env: &Env, args: &[&str], input: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tsmigrate"))
        .args(args)
        .current_dir(env.dir.path())
        .env("TB_URL", env.source_url())
        .env("TARGET_URL", env.target_url())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting tsmigrate {args:?}: {e}"));
    if let Some(mut stdin) = child.stdin.take() {
        // It may exit before reading (e.g. refusing outright): a broken pipe is fine.
        let _ = stdin.write_all(input.as_bytes());
    }
    child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("running tsmigrate {args:?}: {e}"))
}

/// The `telemetry` stream of a JSON report.
fn telemetry_of(report: &Value) -> Value {
    report["streams"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == "telemetry"))
        .cloned()
        .unwrap_or_else(|| panic!("no telemetry stream in the report: {report}"))
}

/// A number in a JSON object, failing with the object when missing.
fn num(v: &Value, field: &str) -> u64 {
    v[field]
        .as_u64()
        .unwrap_or_else(|| panic!("no number `{field}` in {v}"))
}

fn json_stdout(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e})\n{}", text(o)))
}

/// `tsmigrate status PLAN --json`, its telemetry stream.
fn status(env: &Env, plan: &str) -> Value {
    let out = env.tsmigrate(&["status", plan, "--json"]);
    assert_exit(&out, 0);
    let v = json_stdout(&out);
    v["streams"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["stream"] == "telemetry"))
        .cloned()
        .unwrap_or_else(|| panic!("no telemetry stream in status --json: {v}"))
}

/// `tsmigrate runs PLAN --json`, the runs oldest first.
fn runs(env: &Env, plan: &str) -> Vec<Value> {
    let out = env.tsmigrate(&["runs", plan, "--json"]);
    assert_exit(&out, 0);
    let v = json_stdout(&out);
    v["runs"]
        .as_array()
        .cloned()
        .unwrap_or_else(|| panic!("no runs array in runs --json: {v}"))
}

/// The current time on the source server, epoch milliseconds.
fn now_ms(env: &Env) -> i64 {
    env.count("tb", "SELECT (extract(epoch FROM now()) * 1000)::bigint") as i64
}

/// Inserts a `dbl_v` row into the source's `ts_kv` for every (device index, key id, ts);
/// returns how many.
fn insert_source_rows(env: &Env, devices: &[usize], keys: &[i32], stamps: &[i64]) -> u64 {
    let mut values = Vec::new();
    for &d in devices {
        let device = &env.tb.devices[d].0;
        for &k in keys {
            for &ts in stamps {
                values.push(format!(
                    "('{device}', {k}, {ts}, {}.25)",
                    (ts / 1000) % 1000 + i64::from(k)
                ));
            }
        }
    }
    env.sql(
        "tb",
        &format!(
            "INSERT INTO ts_kv (entity_id, key, ts, dbl_v) VALUES {}",
            values.join(", ")
        ),
    );
    values.len() as u64
}

/// Lines of the output mentioning a sync round.
fn sync_rounds(o: &Output) -> Vec<String> {
    let all = format!(
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    all.lines()
        .filter(|l| l.to_lowercase().contains("sync round"))
        .map(str::to_string)
        .collect()
}

/// The rows a sync round line says were copied: the number right before the first word
/// starting with "new" or "row" (e.g. `27 new row(s) copied`, `copied 27 rows`).
fn rows_copied(line: &str) -> Option<u64> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let at = words.iter().position(|w| {
        let w = w.to_lowercase();
        w.starts_with("new") || w.starts_with("row")
    })?;
    words.get(at.checked_sub(1)?)?.replace(',', "").parse().ok()
}

// ---------------------------------------------------------------------------------------------

#[test]
fn kill_9_at_random_points_then_resume_is_exact() {
    let env = fixture(60_000);
    create_slow_target(&env, 0.1);
    let plan = path_arg(&env.plan(
        "resume.toml",
        &telemetry_plan("jobs = 2\npartition_rows = 1000", ""),
    ));

    // Kill -9 three times, each time later in the plan, resuming in between.
    let mut total = 0;
    let mut done_before = 0;
    for round in 0..3u64 {
        let name = format!("killed{round}");
        let threshold = if round == 0 {
            3
        } else {
            done_before + (total - done_before) / 3 + 1
        };
        let mut child = spawn(&env, &name, &["run", &plan, "--progress", "off"]);
        wait_until(
            &format!("{threshold} partitions done ({name})"),
            Duration::from_secs(180),
            || partitions_in(&env, "'done'") >= threshold || has_exited(&mut child),
        );
        kill_9(&env, child, &name);
        wait_for_sessions_to_end(&env);

        total = partitions_total(&env);
        let done = partitions_in(&env, "'done'");
        assert!(total >= 20, "too few partitions planned: {total}");
        assert!(
            done >= threshold && done < total,
            "round {round}: {done} of {total} partitions done after the kill"
        );
        // What is committed is exactly what the ledger says is committed: whole partitions.
        assert_eq!(
            target_rows(&env),
            ledger_done_rows(&env),
            "round {round}: target rows vs the ledger's done partitions"
        );
        assert_eq!(
            env.count("iiot", "SELECT count(*) FROM tsmigrate.writes"),
            done,
            "one write per committed partition"
        );
        assert_eq!(duplicate_keys(&env), 0);
        if round > 0 {
            let (_, err) = logs(&env, &name);
            assert!(
                err.to_lowercase().contains("resum"),
                "a second run of the plan should say it resumes:\n{err}"
            );
        }
        done_before = done;
    }

    // status sees the interrupted plan as the ledger has it.
    let st = status(&env, &plan);
    assert_eq!(num(&st, "partitions_total"), total, "{st}");
    assert_eq!(num(&st, "partitions_done"), done_before, "{st}");
    assert_eq!(num(&st, "rows"), ledger_done_rows(&env), "{st}");

    // The last resume finishes the job.
    let unfinished = partitions_in(&env, "'running', 'failed'");
    let rows_before = ledger_done_rows(&env);
    let out = env.tsmigrate(&["run", &plan, "--progress", "off", "--report", "final.json"]);
    assert_exit(&out, 0);
    let stderr = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(stderr.contains("resum"), "{}", text(&out));
    assert_target_is_source(&env, "after three kill -9 and resumes");
    assert_eq!(partitions_in(&env, "'done'"), total);
    assert_eq!(partitions_total(&env), total, "a resume must not replan");
    assert_eq!(ledger_done_rows(&env), source_rows(&env));
    assert_eq!(
        env.count("iiot", "SELECT count(*) FROM tsmigrate.writes"),
        total,
        "exactly one committed write per partition"
    );

    let report = read_json(&env.dir.path().join("final.json"));
    let tel = telemetry_of(&report);
    assert_eq!(
        num(&tel, "partitions_skipped"),
        done_before,
        "done partitions are skipped: {tel}"
    );
    assert!(num(&tel, "partitions_skipped") > 0, "{tel}");
    assert_eq!(
        num(&tel, "partitions_redone"),
        unfinished,
        "partitions left running or failed by the kill are redone: {tel}"
    );
    assert_eq!(
        num(&tel, "rows_written"),
        source_rows(&env) - rows_before,
        "the resume writes only the rows of the partitions not done: {tel}"
    );
    let run_id = report["run_id"]
        .as_i64()
        .unwrap_or_else(|| panic!("no run_id in the report: {report}"));
    assert_eq!(
        env.sql(
            "iiot",
            &format!("SELECT state FROM tsmigrate.runs WHERE run_id = {run_id}")
        )
        .trim(),
        "done"
    );
    assert_eq!(
        env.sql("iiot", "SELECT DISTINCT plan_id FROM tsmigrate.partitions")
            .trim(),
        "resume",
        "the plan id is the plan file's name"
    );
    let st = status(&env, &plan);
    assert_eq!(num(&st, "partitions_done"), total, "{st}");
    assert_eq!(num(&st, "partitions_failed"), 0, "{st}");
    assert_eq!(num(&st, "rows"), source_rows(&env), "{st}");
}

#[test]
fn terminated_target_connection_is_retried() {
    let env = fixture(60_000);
    create_slow_target(&env, 0.1);
    let plan = path_arg(&env.plan(
        "retry.toml",
        &telemetry_plan(
            "jobs = 1\npartition_rows = 1000\nretries = 5\nretry_delay = \"200ms\"\nretry_max_delay = \"1s\"",
            "",
        ),
    ));
    let mut child = spawn(
        &env,
        "retry",
        &["run", &plan, "--progress", "off", "--report", "retry.json"],
    );
    // Terminate the partition's COPY session three times, each time a new one.
    let mut terminated = 0;
    let deadline = Instant::now() + Duration::from_secs(180);
    while terminated < 3 && !has_exited(&mut child) && Instant::now() < deadline {
        let n = env.count("postgres", TERMINATE_COPY);
        terminated += n;
        std::thread::sleep(Duration::from_millis(if n > 0 { 600 } else { 20 }));
    }
    let out = wait_child(&env, child, "retry", Duration::from_secs(180));
    assert_exit(&out, 0);
    assert!(terminated >= 1, "no COPY session was caught in flight");
    assert_target_is_source(&env, "after terminated connections");
    let total = partitions_total(&env);
    assert_eq!(partitions_in(&env, "'done'"), total);
    assert_eq!(
        env.count("iiot", "SELECT count(*) FROM tsmigrate.writes"),
        total,
        "exactly one committed write per partition"
    );
    let retried = env.count(
        "iiot",
        "SELECT count(*) FROM tsmigrate.partitions WHERE attempts > 1",
    );
    assert!(
        retried >= 1,
        "{terminated} sessions terminated, but no partition has more than one attempt\n{}",
        env.sql(
            "iiot",
            "SELECT partition_id, state, attempts, error FROM tsmigrate.partitions ORDER BY seq"
        )
    );
    let report = read_json(&env.dir.path().join("retry.json"));
    let tel = telemetry_of(&report);
    assert!(
        num(&tel, "retries") >= terminated,
        "{terminated} sessions terminated: {tel}"
    );
    assert_eq!(num(&tel, "rows_written"), source_rows(&env), "{tel}");
}

#[test]
fn exhausted_retries_fail_the_run_and_status_shows_why() {
    let env = fixture(60_000);
    create_slow_target(&env, 0.1);
    let plan = path_arg(&env.plan(
        "fail.toml",
        &telemetry_plan("jobs = 1\npartition_rows = 1000\nretries = 0", ""),
    ));
    let mut child = spawn(&env, "fail", &["run", &plan, "--progress", "off"]);
    let mut terminated = 0;
    wait_until(
        "a COPY session to terminate",
        Duration::from_secs(180),
        || {
            terminated += env.count("postgres", TERMINATE_COPY);
            terminated > 0 || has_exited(&mut child)
        },
    );
    let out = wait_child(&env, child, "fail", Duration::from_secs(180));
    assert!(
        terminated > 0,
        "the run ended before a COPY could be terminated\n{}",
        text(&out)
    );
    assert!(
        !out.status.success() && out.status.code() != Some(2),
        "with retries = 0 a terminated connection fails the run\n{}",
        text(&out)
    );

    let st = status(&env, &plan);
    assert!(num(&st, "partitions_failed") >= 1, "{st}");
    assert!(
        num(&st, "partitions_done") < num(&st, "partitions_total"),
        "{st}"
    );
    let failed = st["failed"]
        .as_array()
        .cloned()
        .unwrap_or_else(|| panic!("no failed list in {st}"));
    assert!(!failed.is_empty(), "{st}");
    for f in &failed {
        assert!(f["id"].as_str().is_some_and(|s| !s.is_empty()), "{f}");
        assert!(
            f["error"].as_str().is_some_and(|s| !s.is_empty()),
            "a failed partition shows its error: {f}"
        );
    }
    let human = env.tsmigrate(&["status", &plan]);
    assert_exit(&human, 0);
    assert!(
        String::from_utf8_lossy(&human.stdout).contains("fail"),
        "{}",
        text(&human)
    );
    let all = runs(&env, &plan);
    let last = all.last().cloned().unwrap_or_default();
    assert_eq!(last["state"], "failed", "{all:?}");
    assert!(
        last["error"].as_str().is_some_and(|s| !s.is_empty()),
        "{last}"
    );
    assert_eq!(target_rows(&env), ledger_done_rows(&env));

    // The next run redoes the failed partitions and completes.
    let failed_before = partitions_in(&env, "'failed', 'running'");
    let out = env.tsmigrate(&["run", &plan, "--progress", "off", "--report", "r.json"]);
    assert_exit(&out, 0);
    assert_target_is_source(&env, "after a failed run and a resume");
    let tel = telemetry_of(&read_json(&env.dir.path().join("r.json")));
    assert_eq!(num(&tel, "partitions_redone"), failed_before, "{tel}");
    let st = status(&env, &plan);
    assert_eq!(num(&st, "partitions_failed"), 0, "{st}");
    assert_eq!(
        num(&st, "partitions_done"),
        num(&st, "partitions_total"),
        "{st}"
    );
}

#[test]
fn ctrl_c_interrupts_a_run_and_resume_completes() {
    let env = fixture(60_000);
    create_slow_target(&env, 0.1);
    let plan = path_arg(&env.plan(
        "ctrlc.toml",
        &telemetry_plan("jobs = 2\npartition_rows = 1000", ""),
    ));
    let mut child = spawn(&env, "ctrlc", &["run", &plan, "--progress", "off"]);
    wait_until("5 partitions done", Duration::from_secs(180), || {
        partitions_in(&env, "'done'") >= 5 || has_exited(&mut child)
    });
    assert!(
        !has_exited(&mut child),
        "the run finished before Ctrl-C: {:?}",
        logs(&env, "ctrlc")
    );
    // verify while the run writes says its totals cannot add up.
    let out = env.tsmigrate(&["verify", &plan, "--stream", "telemetry"]);
    assert!(
        text(&out).contains("of this plan (started")
            && text(&out).contains("is recorded as running"),
        "{}",
        text(&out)
    );
    ctrl_c(&child);
    let out = wait_child(&env, child, "ctrlc", Duration::from_secs(120));
    assert_exit(&out, 130);
    assert!(
        text(&out).contains("tsmigrate run"),
        "the message says how to resume\n{}",
        text(&out)
    );
    wait_for_sessions_to_end(&env);
    let total = partitions_total(&env);
    let done = partitions_in(&env, "'done'");
    assert!(done >= 5 && done < total, "{done} of {total} done");
    assert_eq!(target_rows(&env), ledger_done_rows(&env));
    assert_eq!(
        env.count(
            "iiot",
            "SELECT count(*) FROM pg_stat_activity WHERE datname = 'iiot' AND state LIKE 'idle in transaction%'"
        ),
        0
    );
    let all = runs(&env, &plan);
    assert_eq!(
        all.last().map(|r| r["state"].clone()),
        Some(Value::from("interrupted")),
        "{all:?}"
    );

    let out = env.tsmigrate(&["run", &plan, "--progress", "off", "--report", "r.json"]);
    assert_exit(&out, 0);
    assert_target_is_source(&env, "after Ctrl-C and a resume");
    let tel = telemetry_of(&read_json(&env.dir.path().join("r.json")));
    assert_eq!(num(&tel, "partitions_skipped"), done, "{tel}");
    assert_eq!(partitions_in(&env, "'done'"), total);
}

/// Inserts, after a run, rows the run could not have seen: new rows (newer than anything),
/// late rows (a minute older than their series' newest row, inside the default 5-minute
/// overlap) and the rows of a key new to the dictionary. Returns how many.
fn insert_new_and_late_rows(env: &Env) -> u64 {
    let now = now_ms(env);
    let stamps: Vec<i64> = (0..5).map(|i| now - 1_800_000 + i * 10_000).collect();
    let mut n = insert_source_rows(env, &[0, 1], &[1, 3], &stamps);
    // Late rows of existing series of devices 3 and 4.
    let late = format!(
        "INSERT INTO ts_kv (entity_id, key, ts, dbl_v)
         SELECT entity_id, key, max(ts) - 60000, -7.25 FROM ts_kv
         WHERE entity_id IN ('{}', '{}') AND key IN (2, 5) GROUP BY entity_id, key
         RETURNING 1",
        env.tb.devices[3].0, env.tb.devices[4].0
    );
    let late_rows = env.sql("tb", &late).lines().count() as u64;
    assert_eq!(late_rows, 4, "late rows inserted");
    n += late_rows;
    // A key reported for the first time.
    env.sql(
        "tb",
        &format!(
            "INSERT INTO {} (key, key_id) VALUES ('tsm_new_key', 100)",
            env.tb.dictionary_table
        ),
    );
    n += insert_source_rows(
        env,
        &[5],
        &[100],
        &[now - 1_200_000, now - 1_100_000, now - 1_000_000],
    );
    n
}

#[test]
fn sync_copies_new_and_late_rows_exactly_once() {
    let env = fixture(20_000);
    let plan = path_arg(&env.plan(
        "sync.toml",
        &telemetry_plan("jobs = 2\npartition_rows = 2000", ""),
    ));
    let out = env.tsmigrate(&["run", &plan, "--progress", "off"]);
    assert_exit(&out, 0);
    assert_target_is_source(&env, "after the run");
    let before = target_rows(&env);

    let inserted = insert_new_and_late_rows(&env);
    let out = env.tsmigrate(&["sync", &plan]);
    assert_exit(&out, 0);
    assert_target_is_source(&env, "after the first sync");
    assert_eq!(target_rows(&env), before + inserted);
    assert_eq!(
        env.count("iiot", "SELECT count(*) FROM telemetry WHERE value = -7.25"),
        4,
        "the late rows"
    );
    assert_eq!(
        env.count(
            "iiot",
            "SELECT count(*) FROM telemetry WHERE key = 'tsm_new_key'"
        ),
        3,
        "the new key's rows"
    );
    let rounds = sync_rounds(&out);
    assert!(!rounds.is_empty(), "no sync round line\n{}", text(&out));
    assert!(
        rounds.iter().any(|l| rows_copied(l) == Some(inserted)),
        "a sync round line says {inserted} rows were copied: {rounds:?}"
    );

    // Nothing new: nothing copied.
    let snapshot = env.sql("iiot", TARGET_TELEMETRY);
    let out = env.tsmigrate(&["sync", &plan]);
    assert_exit(&out, 0);
    assert_same_rows("second sync", &snapshot, &env.sql("iiot", TARGET_TELEMETRY));
    let rounds = sync_rounds(&out);
    assert!(
        !rounds.is_empty() && rounds.iter().all(|l| rows_copied(l) == Some(0)),
        "the second sync copies 0 rows: {rounds:?}\n{}",
        text(&out)
    );

    // --follow --rounds N stops by itself after N rounds.
    let out = env.tsmigrate(&["sync", &plan, "--follow", "--every", "1s", "--rounds", "2"]);
    assert_exit(&out, 0);
    let rounds = sync_rounds(&out);
    assert_eq!(rounds.len(), 2, "{}", text(&out));
    assert!(
        rounds.iter().all(|l| rows_copied(l) == Some(0)),
        "{rounds:?}"
    );
    assert_same_rows(
        "after sync --rounds 2",
        &snapshot,
        &env.sql("iiot", TARGET_TELEMETRY),
    );

    let all = runs(&env, &plan);
    let commands: Vec<_> = all
        .iter()
        .map(|r| {
            (
                r["command"].as_str().unwrap_or("?"),
                r["state"].as_str().unwrap_or("?"),
            )
        })
        .collect();
    assert_eq!(
        commands,
        vec![
            ("run", "done"),
            ("sync", "done"),
            ("sync", "done"),
            ("sync", "done"),
            ("sync", "done")
        ],
        "{all:?}"
    );
    assert_eq!(num(&all[1], "rows"), inserted, "{:?}", all[1]);
    assert_eq!(num(&all[2], "rows"), 0, "{:?}", all[2]);
    let st = status(&env, &plan);
    assert!(st["last_sync_at"].is_string(), "{st}");
    assert_eq!(num(&st, "partitions_failed"), 0, "{st}");
}

#[test]
fn sync_follow_keeps_up_and_stops_on_ctrl_c() {
    let env = fixture(20_000);
    let plan = path_arg(&env.plan(
        "follow.toml",
        &telemetry_plan("jobs = 2\npartition_rows = 2000", ""),
    ));
    let out = env.tsmigrate(&["run", &plan, "--progress", "off"]);
    assert_exit(&out, 0);

    let mut child = spawn(
        &env,
        "follow",
        &["sync", &plan, "--follow", "--every", "1s"],
    );
    let base = now_ms(&env) - 600_000;
    let mut inserted = 0;
    for batch in 0..3i64 {
        let stamps: Vec<i64> = (0..3).map(|i| base + batch * 60_000 + i * 1_000).collect();
        inserted += insert_source_rows(&env, &[0, 1, 2], &[1, 4], &stamps);
        std::thread::sleep(Duration::from_millis(1500));
    }
    let expected = source_rows(&env);
    wait_until(
        "the follower to copy the new rows",
        Duration::from_secs(60),
        || {
            assert!(
                !has_exited(&mut child),
                "sync --follow exited on its own: {:?}",
                logs(&env, "follow")
            );
            target_rows(&env) >= expected
        },
    );
    assert!(!has_exited(&mut child), "sync --follow keeps following");
    ctrl_c(&child);
    let out = wait_child(&env, child, "follow", Duration::from_secs(60));
    assert!(
        matches!(out.status.code(), Some(0) | Some(130)),
        "{}",
        text(&out)
    );
    wait_for_sessions_to_end(&env);
    assert_target_is_source(&env, "after sync --follow");
    let rounds = sync_rounds(&out);
    assert!(rounds.len() >= 2, "one line per round\n{}", text(&out));
    assert_eq!(
        rounds
            .iter()
            .map(|l| rows_copied(l).unwrap_or(u64::MAX))
            .sum::<u64>(),
        inserted,
        "the rounds copied each new row once: {rounds:?}"
    );
}

#[test]
fn rollback_removes_only_that_runs_rows() {
    let env = fixture(20_000);
    // A target table holding rows of its own, which no rollback may touch.
    env.sql(
        "iiot",
        &format!(
            "{TELEMETRY_DDL_WITH_KEY};
             INSERT INTO telemetry
             SELECT '00000000-0000-0000-0000-00000000beef', timestamptz '2020-01-01' + i * interval '1 hour',
                    'legacy', i, NULL, '{{}}' FROM generate_series(1, 3) i;"
        ),
    );
    let legacy = env.sql(
        "iiot",
        "SELECT * FROM telemetry WHERE key = 'legacy' ORDER BY 2",
    );
    let plan = path_arg(&env.plan(
        "rollback.toml",
        &telemetry_plan(
            "jobs = 2\npartition_rows = 2000",
            "write = \"skip\"\nkey = [\"device_id\", \"timestamp\", \"key\"]",
        ),
    ));
    let out = env.tsmigrate(&["run", &plan, "--progress", "off"]);
    assert_exit(&out, 0);
    assert_target_is_source(&env, "run A");
    let after_a = env.sql("iiot", TARGET_TELEMETRY);

    let now = now_ms(&env);
    let inserted = insert_source_rows(&env, &[0, 2, 4], &DBL_KEYS, &[now - 900_000, now - 800_000]);
    let out = env.tsmigrate(&["sync", &plan]);
    assert_exit(&out, 0);
    assert_target_is_source(&env, "sync B");
    let after_b = env.sql("iiot", TARGET_TELEMETRY);

    let all = runs(&env, &plan);
    let a = all
        .iter()
        .find(|r| r["command"] == "run")
        .cloned()
        .unwrap_or_else(|| panic!("no run in {all:?}"));
    let b = all
        .iter()
        .find(|r| r["command"] == "sync")
        .cloned()
        .unwrap_or_else(|| panic!("no sync in {all:?}"));
    assert_eq!(b["state"], "done", "{b}");
    assert_eq!(num(&b, "rows"), inserted, "{b}");
    let b_id = b["id"]
        .as_i64()
        .unwrap_or_else(|| panic!("no id in {b}"))
        .to_string();

    // Asked to confirm, anything but "yes" aborts.
    let out = tsmigrate_with_input(&env, &["rollback", &plan, "--run", &b_id], "no\n");
    assert!(!out.status.success(), "{}", text(&out));
    assert_same_rows(
        "after an aborted rollback",
        &after_b,
        &env.sql("iiot", TARGET_TELEMETRY),
    );

    let out = env.tsmigrate(&["rollback", &plan, "--run", &b_id, "--yes"]);
    assert_exit(&out, 0);
    assert_same_rows(
        "after rolling back the sync",
        &after_a,
        &env.sql("iiot", TARGET_TELEMETRY),
    );
    assert_eq!(
        env.sql(
            "iiot",
            "SELECT * FROM telemetry WHERE key = 'legacy' ORDER BY 2"
        ),
        legacy,
        "rows the ledger did not write survive"
    );
    let all = runs(&env, &plan);
    let state = |id: &Value| {
        all.iter()
            .find(|r| r["id"] == *id)
            .map(|r| r["state"].clone())
            .unwrap_or_default()
    };
    assert_eq!(state(&b["id"]), "rolled back", "{all:?}");
    assert_eq!(state(&a["id"]), "done", "{all:?}");
    assert!(
        all.iter()
            .any(|r| r["command"] == "rollback" && r["state"] == "done"),
        "{all:?}"
    );
    assert_eq!(
        env.count(
            "iiot",
            &format!(
                "SELECT count(*) FROM tsmigrate.writes WHERE run_id = {b_id} AND rolled_back_by IS NULL"
            )
        ),
        0
    );

    // The rolled-back rows come back with the next sync, once.
    let out = env.tsmigrate(&["sync", &plan]);
    assert_exit(&out, 0);
    assert_target_is_source(&env, "sync after the rollback");
    assert_eq!(
        env.sql(
            "iiot",
            "SELECT * FROM telemetry WHERE key = 'legacy' ORDER BY 2"
        ),
        legacy
    );
}

#[test]
fn changed_plan_is_refused_and_restart_replans() {
    let env = fixture(20_000);
    let text_of_plan = telemetry_plan("jobs = 2\npartition_rows = 2000", "");
    let plan = path_arg(&env.plan("changes.toml", &text_of_plan));
    let out = env.tsmigrate(&["run", &plan, "--progress", "off"]);
    assert_exit(&out, 0);
    assert_target_is_source(&env, "first run");
    let total = partitions_total(&env);

    // The same plan again: everything is done, nothing is written twice.
    let out = env.tsmigrate(&["run", &plan, "--progress", "off", "--report", "again.json"]);
    assert_exit(&out, 0);
    assert_target_is_source(&env, "second run of a finished plan");
    let tel = telemetry_of(&read_json(&env.dir.path().join("again.json")));
    assert_eq!(num(&tel, "partitions_skipped"), total, "{tel}");
    assert_eq!(num(&tel, "rows_written"), 0, "{tel}");

    // A changed mapping is refused: resuming would mix two mappings in one table.
    let fingerprint = env.sql("iiot", "SELECT fingerprint FROM tsmigrate.streams");
    let changed = text_of_plan.replace(
        r#"'{"migrated_from":"thingsboard"}'::jsonb"#,
        r#"'{"migrated_from":"tb"}'::jsonb"#,
    );
    assert_ne!(changed, text_of_plan);
    env.plan("changes.toml", &changed);
    let snapshot = env.sql("iiot", TARGET_TELEMETRY);
    let out = env.tsmigrate(&["run", &plan, "--progress", "off"]);
    assert_exit(&out, 2);
    assert!(text(&out).contains("--restart"), "{}", text(&out));
    assert_same_rows(
        "after the refusal",
        &snapshot,
        &env.sql("iiot", TARGET_TELEMETRY),
    );

    // --restart plans again from scratch (into an emptied table).
    env.sql("iiot", "DROP TABLE telemetry");
    let out = env.tsmigrate(&["run", &plan, "--restart", "--progress", "off"]);
    assert_exit(&out, 0);
    let expected = env
        .sql("tb", &expected_telemetry(env.tb.dictionary_table))
        .replace(
            r#"{"migrated_from": "thingsboard"}"#,
            r#"{"migrated_from": "tb"}"#,
        );
    assert!(expected.contains(r#"{"migrated_from": "tb"}"#));
    assert_same_rows(
        "after --restart",
        &expected,
        &env.sql("iiot", TARGET_TELEMETRY),
    );
    assert_ne!(
        env.sql("iiot", "SELECT fingerprint FROM tsmigrate.streams"),
        fingerprint
    );
    assert_eq!(
        partitions_in(&env, "'done'"),
        partitions_total(&env),
        "every replanned partition is done"
    );
    assert_eq!(ledger_done_rows(&env), source_rows(&env));
}

#[test]
fn append_into_non_empty_table_is_refused() {
    let env = fixture(20_000);
    // Six source rows already in the target (the sixth with another value), and a row of
    // the target's own.
    let expected = env.sql("tb", &expected_telemetry(env.tb.dictionary_table));
    let seeded: Vec<&str> = expected
        .lines()
        .filter(|l| l.split('|').nth(4) == Some(""))
        .take(6)
        .collect();
    assert_eq!(seeded.len(), 6);
    let mut values = Vec::new();
    let mut conflict = (String::new(), String::new());
    for (i, line) in seeded.iter().enumerate() {
        let f: Vec<&str> = line.split('|').collect();
        assert_eq!(f.len(), 6, "{line}");
        let value = if i == 5 { "-1" } else { f[3] };
        if i == 5 {
            conflict = (
                line.to_string(),
                [f[0], f[1], f[2], "-1", f[4], f[5]].join("|"),
            );
        }
        values.push(format!(
            "('{}', '{}', '{}', '{value}'::float8, NULL, '{}'::jsonb)",
            f[0], f[1], f[2], f[5]
        ));
    }
    values.push(
        "('00000000-0000-0000-0000-00000000beef', '2020-01-01', 'legacy', 1, NULL, '{}')".into(),
    );
    env.sql(
        "iiot",
        &format!(
            "{TELEMETRY_DDL_WITH_KEY}; INSERT INTO telemetry VALUES {};",
            values.join(", ")
        ),
    );
    let snapshot = env.sql("iiot", TARGET_TELEMETRY);

    // Append (the default) would duplicate them: refused, nothing written.
    let plan = path_arg(&env.plan(
        "existing.toml",
        &telemetry_plan("jobs = 2\npartition_rows = 2000", ""),
    ));
    let out = env.tsmigrate(&["run", &plan, "--progress", "off"]);
    assert_exit(&out, 2);
    assert!(text(&out).contains("write = \"skip\""), "{}", text(&out));
    assert_same_rows(
        "after the refusal",
        &snapshot,
        &env.sql("iiot", TARGET_TELEMETRY),
    );

    // write = "skip" (key inferred from the mapping): rows already there are skipped.
    env.plan(
        "existing.toml",
        &telemetry_plan("jobs = 2\npartition_rows = 2000", "write = \"skip\""),
    );
    let out = env.tsmigrate(&["run", &plan, "--progress", "off", "--report", "skip.json"]);
    assert_exit(&out, 0);
    let (conflict_source, conflict_target) = conflict;
    let expected_target = expected.replace(&conflict_source, &conflict_target);
    assert_same_rows(
        "skip into a non-empty table",
        &expected_target,
        &env.sql("iiot", TARGET_MIGRATED),
    );
    assert_eq!(duplicate_keys(&env), 0);
    assert_eq!(target_rows(&env), source_rows(&env) + 1);
    assert_eq!(
        env.count(
            "iiot",
            "SELECT count(*) FROM telemetry WHERE key = 'legacy'"
        ),
        1
    );
    let tel = telemetry_of(&read_json(&env.dir.path().join("skip.json")));
    assert_eq!(num(&tel, "rows_skipped"), 6, "{tel}");
    assert_eq!(num(&tel, "rows_written"), source_rows(&env) - 6, "{tel}");
}

#[test]
fn watermarks_stay_compact_under_follow() {
    let env = fixture(20_000);
    let plan = path_arg(&env.plan(
        "compact.toml",
        &telemetry_plan("jobs = 2\npartition_rows = 2000", ""),
    ));
    let out = env.tsmigrate(&["run", &plan, "--progress", "off"]);
    assert_exit(&out, 0);
    // The series of the row stamped in 2100 has its watermark capped at the time of each
    // read, so it moves; every other series' newest time must not.
    const NEWEST: &str = "SELECT series, max(ts) FROM tsmigrate.watermarks GROUP BY 1 \
         HAVING max(ts) < extract(epoch FROM now()) * 1000 - 86400000 ORDER BY 1";
    let before = env.sql("iiot", NEWEST);
    let series = env.count(
        "iiot",
        "SELECT count(DISTINCT series) FROM tsmigrate.watermarks",
    );
    assert!(series > 100, "{series} series");

    // Every round re-reads each series' overlap window and records its watermark again.
    let out = env.tsmigrate(&[
        "sync", &plan, "--follow", "--every", "50ms", "--rounds", "13",
    ]);
    assert_exit(&out, 0);
    assert_eq!(sync_rounds(&out).len(), 13, "{}", text(&out));
    assert_same_rows("newest time per series", &before, &env.sql("iiot", NEWEST));
    // Without compaction: at least 1 + 13 rows per series. With it: the 10 latest runs' rows.
    let rows = env.count("iiot", "SELECT count(*) FROM tsmigrate.watermarks");
    assert!(
        rows <= 10 * series,
        "{rows} watermark rows for {series} series after 13 rounds"
    );
    assert_target_is_source(&env, "after 13 rounds");
}

#[test]
fn run_redoing_a_rolled_back_sync_skips_rows_already_there() {
    let env = fixture(20_000);
    let plan = path_arg(&env.plan(
        "redo.toml",
        &telemetry_plan("jobs = 2\npartition_rows = 2000", ""),
    ));
    assert_exit(&env.tsmigrate(&["run", &plan, "--progress", "off"]), 0);
    insert_new_and_late_rows(&env);
    assert_exit(&env.tsmigrate(&["sync", &plan]), 0);
    let sync_id = runs(&env, &plan)
        .iter()
        .rev()
        .find(|r| r["command"] == "sync")
        .and_then(|r| r["id"].as_i64())
        .unwrap_or_else(|| panic!("no sync in runs"));
    let out = env.tsmigrate(&["rollback", &plan, "--run", &sync_id.to_string(), "--yes"]);
    assert_exit(&out, 0);
    // `run` redoes the rolled-back sync partitions. They re-read each series' overlap
    // window, whose rows are still in the target: they must be skipped, not appended.
    let out = env.tsmigrate(&["run", &plan, "--progress", "off", "--report", "redo.json"]);
    assert_exit(&out, 0);
    assert_eq!(duplicate_keys(&env), 0, "{}", text(&out));
    assert_target_is_source(&env, "after the run redid the sync's partitions");
    let report = read_json(&env.dir.path().join("redo.json"));
    let tel = telemetry_of(&report);
    assert!(num(&tel, "rows_skipped") > 0, "{tel}");
    assert!(num(&tel, "partitions_redone") > 0, "{tel}");
}

/// Terminates the sessions holding a plan's lock in the target (what `idle_session_timeout`,
/// a pooler or an administrator does); returns how many.
const TERMINATE_PLAN_LOCKS: &str = "WITH victims AS MATERIALIZED (
    SELECT DISTINCT l.pid FROM pg_locks l JOIN pg_database d ON d.oid = l.database
    WHERE l.locktype = 'advisory' AND d.datname = 'iiot' AND l.pid <> pg_backend_pid())
SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM victims";

#[test]
fn a_run_that_lost_its_plan_to_another_commits_nothing_more() {
    let env = fixture(60_000);
    create_slow_target(&env, 0.3);
    let plan = path_arg(&env.plan(
        "taken.toml",
        &telemetry_plan("jobs = 2\npartition_rows = 1000", ""),
    ));
    let mut first = spawn(&env, "first", &["run", &plan, "--progress", "off"]);
    wait_until("3 partitions done", Duration::from_secs(180), || {
        partitions_in(&env, "'done'") >= 3 || has_exited(&mut first)
    });
    assert!(
        !has_exited(&mut first),
        "the first run ended before the test could act"
    );

    // The first run's lock connection dies; a second process takes the plan while the first
    // still runs. (The first's heartbeat takes its lock back within 5 s when nobody took it:
    // then the second is refused, and the test kills the lock again.)
    let mut second = None;
    for attempt in 0..5 {
        assert_eq!(
            env.count("postgres", TERMINATE_PLAN_LOCKS),
            1,
            "attempt {attempt}"
        );
        let name = format!("second{attempt}");
        let child = spawn(&env, &name, &["run", &plan, "--progress", "off"]);
        let out = wait_child(&env, child, &name, Duration::from_secs(300));
        if out.status.code() == Some(2) && text(&out).contains("another tsmigrate process") {
            continue;
        }
        second = Some(out);
        break;
    }
    let second = second.unwrap_or_else(|| panic!("the plan could not be taken over"));
    assert_exit(&second, 0);
    let first = wait_child(&env, first, "first", Duration::from_secs(120));
    assert_ne!(first.status.code(), Some(0), "{}", text(&first));
    assert!(
        text(&first).contains("took this plan over"),
        "the first run must say why it stopped:\n{}",
        text(&first)
    );
    assert_target_is_source(&env, "after a takeover");
    assert_eq!(
        env.count("iiot", "SELECT count(*) FROM tsmigrate.writes"),
        partitions_total(&env),
        "exactly one committed write per partition"
    );
    assert_eq!(ledger_done_rows(&env), source_rows(&env));
}

#[test]
fn two_plans_appending_into_one_table_are_refused() {
    let env = fixture(20_000);
    create_slow_target(&env, 0.3);
    let a = path_arg(&env.plan(
        "plan-a.toml",
        &telemetry_plan("jobs = 1\npartition_rows = 1000", ""),
    ));
    let b = path_arg(&env.plan(
        "plan-b.toml",
        &telemetry_plan("jobs = 1\npartition_rows = 1000", ""),
    ));
    // Plan a starts; before it commits anything, plan b starts into the same table (which
    // is still empty, so only the claim stands in its way).
    let mut first = spawn(&env, "a", &["run", &a, "--progress", "off"]);
    wait_until("plan a's claim", Duration::from_secs(120), || {
        ledger_exists(&env)
            && env.count(
                "iiot",
                "SELECT count(*) FROM tsmigrate.claims WHERE plan_id = 'plan-a'",
            ) == 1
            || has_exited(&mut first)
    });
    let out = env.tsmigrate(&["run", &b, "--progress", "off"]);
    assert_exit(&out, 2);
    assert!(
        text(&out).contains("is appended into by plan \"plan-a\""),
        "{}",
        text(&out)
    );
    let out = wait_child(&env, first, "a", Duration::from_secs(300));
    assert_exit(&out, 0);
    assert_target_is_source(&env, "plan a alone");

    // Rolled back, plan a's rows and claim are gone: plan b may append.
    let run_id = env.count(
        "iiot",
        "SELECT max(run_id) FROM tsmigrate.runs WHERE plan_id = 'plan-a'",
    );
    let out = env.tsmigrate(&["rollback", &a, "--run", &run_id.to_string(), "--yes"]);
    assert_exit(&out, 0);
    let out = env.tsmigrate(&["run", &b, "--progress", "off"]);
    assert_exit(&out, 0);
    assert_target_is_source(&env, "plan b after plan a's rollback");
}

#[test]
fn a_server_away_when_the_run_starts_is_waited_for() {
    let mut env = fixture(5_000);
    let plan = path_arg(&env.plan(
        "away.toml",
        &telemetry_plan(
            "jobs = 2\npartition_rows = 1000\nretries = 8\nretry_delay = \"300ms\"\nretry_max_delay = \"2s\"",
            "",
        ),
    ));
    env.cluster
        .stop()
        .unwrap_or_else(|e| panic!("stopping PostgreSQL: {e}"));
    let child = spawn(&env, "away", &["run", &plan, "--progress", "off"]);
    wait_until(
        "a retry while the server is away",
        Duration::from_secs(60),
        || logs(&env, "away").1.contains("retrying in"),
    );
    env.cluster
        .restart()
        .unwrap_or_else(|e| panic!("starting PostgreSQL again: {e}"));
    let out = wait_child(&env, child, "away", Duration::from_secs(120));
    assert_exit(&out, 0);
    assert!(
        text(&out).contains("opening the ledger: "),
        "{}",
        text(&out)
    );
    assert_target_is_source(&env, "after waiting for the server");
}

/// A small xorshift generator: the kill loop's choices, reproducible from the seed it prints.
struct Dice(u64);

impl Dice {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

#[test]
fn kill_loop_over_run_sync_and_rollback_keeps_the_target_exact() {
    let env = fixture(20_000);
    // A keyless table (as `create = true` makes, where skipping by key is hardest), each
    // partition's transaction lasting at least 30 ms so that kills land in every phase.
    create_slow_target(&env, 0.03);
    let plan = path_arg(&env.plan(
        "loop.toml",
        &telemetry_plan("jobs = 2\npartition_rows = 700\nretries = 0", ""),
    ));
    let seed = std::env::var("TSM_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
                | 1
        });
    eprintln!("kill loop seed {seed} (set TSM_KILL_SEED to repeat it)");
    let mut dice = Dice(seed);
    let (mut kills, mut finished, mut new_rows) = (0u32, 0u32, 0u64);
    let mut log = Vec::new();
    let start = Instant::now();
    for step in 0..200 {
        if kills >= 32 {
            break;
        }
        // Now and then the source gets new rows, each stamp unique to its step.
        if dice.below(4) == 0 {
            let base = now_ms(&env) - 600_000 + step * 1000;
            new_rows += insert_source_rows(&env, &[dice.below(7) as usize], &[1, 4], &[base]);
        }
        let args: Vec<String> = match dice.below(5) {
            0 | 1 => vec!["run".into(), plan.clone()],
            2 | 3 => vec!["sync".into(), plan.clone()],
            _ if !ledger_exists(&env) => continue,
            _ => {
                let id = env.count(
                    "iiot",
                    "SELECT COALESCE((SELECT run_id FROM tsmigrate.runs \
                     WHERE command IN ('run', 'sync') AND state <> 'rolled back' \
                     ORDER BY random() LIMIT 1), 0)",
                );
                if id == 0 {
                    continue;
                }
                ["rollback", &plan, "--run", &id.to_string(), "--yes"]
                    .map(String::from)
                    .to_vec()
            }
        };
        let mut argv: Vec<&str> = args.iter().map(String::as_str).collect();
        if argv[0] == "run" {
            argv.extend(["--progress", "off"]);
        }
        let name = format!("step{step}");
        let mut child = spawn(&env, &name, &argv);
        let delay = Duration::from_millis(10 + dice.below(450));
        let deadline = Instant::now() + delay;
        while Instant::now() < deadline && !has_exited(&mut child) {
            std::thread::sleep(Duration::from_millis(5));
        }
        if has_exited(&mut child) {
            finished += 1;
            let out = wait_child(&env, child, &name, Duration::from_secs(5));
            log.push(format!("{argv:?} → exit {:?}", out.status.code()));
            // A refusal (exit 2: the run is not complete for sync, nothing to roll back)
            // is expected; a failure is not.
            assert!(
                matches!(out.status.code(), Some(0 | 2)),
                "seed {seed}, {argv:?}:\n{}",
                text(&out)
            );
            if out.status.code() == Some(2) {
                log.push(format!("  {}", text(&out).lines().last().unwrap_or("")));
            }
        } else {
            let _ = child.kill();
            let _ = child.wait();
            kills += 1;
            log.push(format!("{argv:?} killed after {delay:?}"));
            wait_for_sessions_to_end(&env);
        }
        // After every step the target holds whole partitions: what the ledger says, no row twice.
        if ledger_exists(&env) {
            assert_eq!(
                duplicate_keys(&env),
                0,
                "seed {seed}: duplicates after\n{}",
                log.join("\n")
            );
            assert_eq!(
                target_rows(&env),
                env.count(
                    "iiot",
                    "SELECT COALESCE(sum(rows), 0) FROM tsmigrate.writes WHERE rolled_back_by IS NULL"
                ),
                "seed {seed}: the target's rows are not the ledger's committed writes after\n{}",
                log.join("\n")
            );
        }
    }
    assert!(
        kills >= 30,
        "seed {seed}: only {kills} kills landed mid-command:\n{}",
        log.join("\n")
    );
    // Then without kills: the run completes, a sync catches up, and the target is the source.
    let out = env.tsmigrate(&["run", &plan, "--progress", "off"]);
    assert_exit(&out, 0);
    let out = env.tsmigrate(&["sync", &plan]);
    assert_exit(&out, 0);
    assert_target_is_source(
        &env,
        &format!("after the kill loop (seed {seed})\n{}", log.join("\n")),
    );
    eprintln!(
        "kill loop: {kills} kills, {finished} commands finished, {new_rows} new source rows, {:.1}s",
        start.elapsed().as_secs_f64()
    );
}
