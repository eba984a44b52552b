//! End to end: `tsmigrate verify` against real PostgreSQL clusters and the real binary —
//! equal after a clean migration (the hostile values included), the exact rows listed after
//! three rows of the target were tampered with, no false alarm from allowed float and
//! timestamp conversions while a 1-ulp change is caught, windows, the spot check, and the
//! result recorded in the ledger for `status`.

mod common;

use std::process::Output;

use common::*;
use serde_json::Value;
use tsmigrate_testkit::thingsboard::TbSpec;

fn json_report(env: &Env, name: &str) -> Value {
    read_json(&env.dir.path().join(name))
}

fn stream<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["streams"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["name"] == name))
        .unwrap_or_else(|| panic!("no stream {name} in {report:#}"))
}

fn num(v: &Value, field: &str) -> u64 {
    v[field]
        .as_u64()
        .unwrap_or_else(|| panic!("{field} missing in {v:#}"))
}

/// The value of column `col` in a list of (column, value) pairs.
fn col<'a>(pairs: &'a Value, name: &str) -> &'a str {
    pairs
        .as_array()
        .and_then(|a| a.iter().find(|p| p[0] == name))
        .and_then(|p| p[1].as_str())
        .unwrap_or_else(|| panic!("no column {name} in {pairs:#}"))
}

fn verify(env: &Env, plan: &str, extra: &[&str]) -> Output {
    let mut args = vec!["verify", plan, "--report", "verify.json"];
    args.extend_from_slice(extra);
    env.tsmigrate(&args)
}

/// One row of the target telemetry table, as `device_id|timestamp (RFC 3339 to the
/// second)|key|value`.
fn pick(env: &Env, filter: &str) -> Vec<String> {
    let line = env.sql(
        "iiot",
        &format!(
            "SELECT device_id, to_char(\"timestamp\" AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS'), key, value \
             FROM telemetry WHERE {filter} ORDER BY device_id, \"timestamp\", key LIMIT 1"
        ),
    );
    let parts: Vec<String> = line.trim().split('|').map(str::to_string).collect();
    assert_eq!(parts.len(), 4, "{line:?}");
    parts
}

fn row_where(p: &[String]) -> String {
    format!(
        "device_id = '{}' AND to_char(\"timestamp\" AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS') = '{}' AND key = '{}'",
        p[0], p[1], p[2]
    )
}

#[test]
fn equal_after_a_clean_migration_then_exactly_the_three_tampered_rows() {
    let env = setup(TbSpec {
        rows: 20_000,
        nasty: true,
        ..TbSpec::default()
    });
    let out = env.tsmigrate(&["run", &example_plan(), "--max-rejects", "10"]);
    assert_exit(&out, 0);

    // Clean: equal, every stream, with the hostile values (NaN, ±Infinity, longs above 2^53,
    // strings with tabs, newlines, quotes and unicode; JSON reformatted by jsonb).
    let out = verify(&env, &example_plan(), &["--sample", "40", "--seed", "7"]);
    assert_exit(&out, 0);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        stdout.contains("telemetry → \"telemetry\": EQUAL"),
        "{stdout}"
    );
    assert!(stdout.contains("devices → \"devices\": EQUAL"), "{stdout}");
    let report = json_report(&env, "verify.json");
    assert_eq!(report["status"], "equal", "{report:#}");
    let t = stream(&report, "telemetry");
    // Every row, the one stamped in 2100 included: future-dated when the run read it, it
    // was copied, and is compared (only rows stamped between the run and now are left out).
    let target_rows = env.count("iiot", "SELECT count(*) FROM telemetry");
    assert_eq!(
        env.count(
            "iiot",
            "SELECT count(*) FROM telemetry WHERE \"timestamp\" > now() + interval '10 years'"
        ),
        1
    );
    assert_eq!(num(t, "source_rows"), target_rows, "{t:#}");
    assert_eq!(num(t, "target_rows"), target_rows, "{t:#}");
    assert!(target_rows > 15_000, "{target_rows}");
    assert_eq!(num(t, "passes"), 1);
    assert_eq!(
        t["key"],
        serde_json::json!(["device_id", "key", "timestamp"])
    );
    assert!(
        t["window"].as_str().unwrap_or("").contains("but not from"),
        "{t:#}"
    );
    assert_eq!(num(&t["sample"], "checked"), 40, "{t:#}");
    assert_eq!(num(&t["sample"], "equal"), 40, "{t:#}");
    let d = stream(&report, "devices");
    assert_eq!(
        num(d, "target_rows"),
        env.count("iiot", "SELECT count(*) FROM devices")
    );
    assert_eq!(d["key"], serde_json::json!(["id"]));
    // Every row, with no window at all.
    let out = verify(
        &env,
        &example_plan(),
        &["--no-horizon", "--stream", "telemetry"],
    );
    assert_exit(&out, 0);
    let all = stream(&json_report(&env, "verify.json"), "telemetry").clone();
    assert_eq!(num(&all, "target_rows"), target_rows);
    assert_eq!(all["window"], "all rows");

    // A future-dated row lost from the target is found by the default window.
    let future = pick(&env, "\"timestamp\" > now() + interval '10 years'");
    env.sql(
        "iiot",
        &format!(
            "CREATE TABLE saved AS SELECT * FROM telemetry WHERE {w}; DELETE FROM telemetry WHERE {w}",
            w = row_where(&future)
        ),
    );
    let out = verify(&env, &example_plan(), &["--stream", "telemetry"]);
    assert_exit(&out, 4);
    let lost = stream(&json_report(&env, "verify.json"), "telemetry").clone();
    assert_eq!(num(&lost, "missing"), 1, "{lost:#}");
    env.sql(
        "iiot",
        "INSERT INTO telemetry SELECT * FROM saved; DROP TABLE saved",
    );

    // `status` shows the last verification.
    let out = env.tsmigrate(&["status", &example_plan()]);
    assert_exit(&out, 0);
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.contains("last verified") && s.contains(": equal"), "{s}");

    // Tamper: delete one row, change one value, insert one row.
    let deleted = pick(&env, "key = 'battery_v' AND value > 0");
    let changed = pick(&env, "key = 'tank_level_pct' AND value BETWEEN 1 AND 1000");
    let device = &deleted[0];
    env.sql(
        "iiot",
        &format!("DELETE FROM telemetry WHERE {}", row_where(&deleted)),
    );
    env.sql(
        "iiot",
        &format!(
            "UPDATE telemetry SET value = value + 1 WHERE {}",
            row_where(&changed)
        ),
    );
    env.sql(
        "iiot",
        &format!(
            "INSERT INTO telemetry VALUES ('{device}', '2025-08-15T12:34:56.789Z', 'extra_key', 42.5, 'tab\there', '{{\"x\": 1}}')"
        ),
    );
    let out = verify(&env, &example_plan(), &["--stream", "telemetry"]);
    assert_exit(&out, 4);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(stdout.contains("3 DIFFERENCE(S)"), "{stdout}");
    let report = json_report(&env, "verify.json");
    assert_eq!(report["status"], "differences");
    let t = stream(&report, "telemetry");
    assert_eq!(
        (num(t, "missing"), num(t, "extra"), num(t, "different")),
        (1, 1, 1),
        "{t:#}"
    );
    assert!(num(t, "passes") >= 2, "{t:#}");
    let diffs = t["diffs"].as_array().cloned().unwrap_or_default();
    assert_eq!(diffs.len(), 3, "{t:#}");
    let find = |kind: &str| {
        diffs
            .iter()
            .find(|d| d["kind"] == kind)
            .unwrap_or_else(|| panic!("no {kind} in {t:#}"))
    };
    let missing = find("missing");
    assert_eq!(col(&missing["key"], "device_id"), deleted[0]);
    assert!(col(&missing["key"], "timestamp").starts_with(&deleted[1]));
    assert_eq!(col(&missing["key"], "key"), "battery_v");
    assert_eq!(col(&missing["source"], "value"), deleted[3]);
    assert!(missing["target"].is_null());
    let different = find("different");
    assert_eq!(col(&different["key"], "device_id"), changed[0]);
    assert!(col(&different["key"], "timestamp").starts_with(&changed[1]));
    assert_eq!(different["columns"], serde_json::json!(["value"]));
    let (sv, tv): (f64, f64) = (
        col(&different["source"], "value")
            .parse()
            .unwrap_or(f64::NAN),
        col(&different["target"], "value")
            .parse()
            .unwrap_or(f64::NAN),
    );
    assert_eq!(sv.to_string(), changed[3]);
    assert_eq!(tv, sv + 1.0);
    let extra = find("extra");
    assert_eq!(col(&extra["key"], "key"), "extra_key");
    assert_eq!(col(&extra["key"], "timestamp"), "2025-08-15T12:34:56.789Z");
    assert_eq!(col(&extra["target"], "text_value"), "tab\there");
    assert_eq!(col(&extra["target"], "metadata"), "{\"x\":1}");
    // The printed summary names the three keys too.
    assert!(
        stdout.contains(&format!("device_id={}", deleted[0])),
        "{stdout}"
    );
    assert!(stdout.contains("extra_key"), "{stdout}");
    assert!(stdout.contains("value: source"), "{stdout}");

    // --max-diffs bounds the listing, not the totals.
    let out = verify(
        &env,
        &example_plan(),
        &["--stream", "telemetry", "--max-diffs", "1"],
    );
    assert_exit(&out, 4);
    let t = stream(&json_report(&env, "verify.json"), "telemetry").clone();
    assert_eq!(
        num(&t, "missing") + num(&t, "extra") + num(&t, "different"),
        3
    );
    assert_eq!(t["diffs"].as_array().map(Vec::len), Some(1));
    assert_eq!(t["diffs_truncated"], true);

    // A window that excludes August sees no difference.
    let out = verify(
        &env,
        &example_plan(),
        &["--stream", "telemetry", "--since", "2025-09-01T00:00:00Z"],
    );
    assert_exit(&out, 0);
    let t = stream(&json_report(&env, "verify.json"), "telemetry").clone();
    assert_eq!(
        num(&t, "target_rows"),
        env.count(
            "iiot",
            "SELECT count(*) FROM telemetry WHERE \"timestamp\" >= '2025-09-01T00:00:00Z'"
        )
    );

    // The spot check finds the changed row when it draws it: draw every row.
    let out = verify(
        &env,
        &example_plan(),
        &["--stream", "telemetry", "--sample", "100000"],
    );
    assert_exit(&out, 4);
    let t = stream(&json_report(&env, "verify.json"), "telemetry").clone();
    assert_eq!(num(&t["sample"], "missing"), 1, "{:#}", t["sample"]);
    assert_eq!(num(&t["sample"], "different"), 1, "{:#}", t["sample"]);
    assert_eq!(num(&t["sample"], "checked"), num(&t, "source_rows"));

    // The ledger keeps the latest result per stream, and status shows it.
    let out = env.tsmigrate(&["status", &example_plan()]);
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(
        s.contains("2 differences") || s.contains("difference"),
        "{s}"
    );
    assert!(
        env.count(
            "iiot",
            "SELECT count(*) FROM tsmigrate.verifications WHERE NOT equal"
        ) >= 2
    );
}

/// A target holding values as `real` and times as `timestamptz(3)`: the plan allows the
/// float narrowing, so the rounded values are what the source maps to — no false alarm. A
/// 1-ulp change (of a double and of a real) is a difference.
#[test]
fn allowed_conversions_raise_no_false_alarm_and_one_ulp_does() {
    let env = setup(TbSpec {
        rows: 5_000,
        nasty: false,
        ..TbSpec::default()
    });
    env.sql(
        "iiot",
        "CREATE TABLE narrow (device_id uuid, ts timestamptz(3), key text, value real, PRIMARY KEY (device_id, ts, key));
         CREATE TABLE wide (device_id uuid, ts timestamptz, key text, value double precision)",
    );
    let stream_toml = |name: &str, lossy: &str| {
        format!(
            r#"
[[streams]]
name = "{name}"
from = "telemetry"
table = "{name}"
filter = {{ entity_types = ["DEVICE"], keys = ["146", "147"] }}
allow_lossy = [{lossy}]
columns = [
  {{ name = "device_id", expr = "entity_id" }},
  {{ name = "ts", expr = "from_epoch_ms(ts)" }},
  {{ name = "key", expr = "key" }},
  {{ name = "value", expr = "dbl_v" }},
]
"#
        )
    };
    let plan = env.plan(
        "conv.toml",
        &format!(
            "[source]\nkind = \"thingsboard\"\nurl = \"@SOURCE@\"\n[target]\nkind = \"postgres\"\nurl = \"@TARGET@\"\n{}{}",
            stream_toml("narrow", "\"float_narrowing\""),
            stream_toml("wide", "")
        ),
    );
    let plan = plan.display().to_string();
    let out = env.tsmigrate(&["run", &plan]);
    assert_exit(&out, 0);
    let narrowed = env.count(
        "iiot",
        "SELECT count(*) FROM narrow n JOIN wide w USING (device_id, ts, key) WHERE n.value::float8 <> w.value",
    );
    assert!(
        narrowed > 50,
        "the fixture must hold values real cannot hold exactly: {narrowed}"
    );
    let out = env.tsmigrate(&["verify", &plan, "--report", "v.json"]);
    assert_exit(&out, 0);
    let report = read_json(&env.dir.path().join("v.json"));
    for s in ["narrow", "wide"] {
        let st = stream(&report, s);
        assert!(
            st["equal"] == true && num(st, "source_rows") > 300,
            "{st:#}"
        );
    }

    // One ulp up, of a double and of a real (the next value up, printed exactly).
    let one_ulp_up = |table: &str, next: &dyn Fn(&str) -> String| {
        let row = env.sql(
            "iiot",
            &format!("SELECT device_id, ts, key, value FROM {table} WHERE value > 0 ORDER BY 1, 2, 3 LIMIT 1"),
        );
        let p: Vec<&str> = row.trim().split('|').collect();
        assert_eq!(p.len(), 4, "{row:?}");
        env.sql(
            "iiot",
            &format!(
                "UPDATE {table} SET value = {} WHERE device_id = '{}' AND ts = '{}' AND key = '{}'",
                next(p[3]),
                p[0],
                p[1],
                p[2]
            ),
        );
    };
    one_ulp_up("wide", &|v| {
        let x: f64 = v.parse().unwrap_or_else(|_| panic!("{v}"));
        format!("{:?}::float8", f64::from_bits(x.to_bits() + 1))
    });
    one_ulp_up("narrow", &|v| {
        let x: f32 = v.parse().unwrap_or_else(|_| panic!("{v}"));
        format!("{:?}::real", f32::from_bits(x.to_bits() + 1))
    });
    let out = env.tsmigrate(&["verify", &plan, "--report", "v.json"]);
    assert_exit(&out, 4);
    let report = read_json(&env.dir.path().join("v.json"));
    let w = stream(&report, "wide");
    assert_eq!(num(w, "different"), 1, "{w:#}");
    assert_eq!(num(w, "missing") + num(w, "extra"), 0, "{w:#}");
    let d = &w["diffs"][0];
    let (sv, tv): (f64, f64) = (
        col(&d["source"], "value").parse().unwrap_or(f64::NAN),
        col(&d["target"], "value").parse().unwrap_or(f64::NAN),
    );
    assert_eq!(tv.to_bits(), sv.to_bits() + 1, "{d:#}");
    let n = stream(&report, "narrow");
    assert_eq!(num(n, "different"), 1, "{n:#}");
    let d = &n["diffs"][0];
    let (sv, tv): (f32, f32) = (
        col(&d["source"], "value").parse().unwrap_or(f32::NAN),
        col(&d["target"], "value").parse().unwrap_or(f32::NAN),
    );
    assert_eq!(tv.to_bits(), sv.to_bits() + 1, "{d:#}");
}

#[test]
fn clear_errors_for_a_missing_table_and_bad_arguments() {
    let env = setup(TbSpec {
        rows: 500,
        nasty: false,
        ..TbSpec::default()
    });
    // Nothing migrated yet: the tables do not exist.
    let out = env.tsmigrate(&["verify", &example_plan()]);
    assert_exit(&out, 1);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("does not exist") && err.contains("run the migration first"),
        "{err}"
    );
    let out = env.tsmigrate(&["verify", &example_plan(), "--since", "yesterday"]);
    assert_exit(&out, 2);
    let out = env.tsmigrate(&["verify", &example_plan(), "--stream", "nope"]);
    assert_exit(&out, 2);
}
