//! The DynamoDB target against a real DynamoDB-API server (moto, started here on loopback),
//! fed from a real PostgreSQL cluster; items read back with boto3, an independent client.
//! The retry path runs behind a proxy that throttles 30% of the writes or leaves half of
//! their items unprocessed.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{assert_exit, read_json, run, run_tsmigrate, text};
use serde_json::{json, Value};
use tsmigrate_testkit::PgCluster;

/// A server process on loopback, stopped when dropped.
struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}

fn start(mut cmd: Command, port: u16, what: &str) -> Server {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("starting {what}: {e} (is it installed? scripts/test.sh installs it)")
        });
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            let mut err = String::new();
            if let Some(e) = child.stderr.take() {
                for line in BufReader::new(e).lines().map_while(Result::ok) {
                    err.push_str(&line);
                    err.push('\n');
                }
            }
            panic!("{what} exited ({status}) before listening:\n{err}");
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{what} did not listen on port {port} within 60 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Keep reading its log: a server whose stderr pipe fills up (moto logs a line per
    // request) blocks on its next log line and stops answering.
    if let Some(e) = child.stderr.take() {
        std::thread::spawn(move || {
            BufReader::new(e)
                .lines()
                .map_while(Result::ok)
                .for_each(drop)
        });
    }
    Server {
        child,
        url: format!("http://127.0.0.1:{port}"),
    }
}

/// A moto DynamoDB server (PyPI `moto[server]`).
fn moto() -> Server {
    let port = free_port();
    let mut cmd = Command::new("python3");
    cmd.args(["-m", "moto.server", "-p", &port.to_string()]);
    start(cmd, port, "moto server (python3 -m moto.server)")
}

fn helper(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/dynamodb")
        .join(name)
}

/// The fault-injecting proxy in front of `upstream`.
fn fault_proxy(upstream: &Server, rate: f64, seed: u64) -> Server {
    let port = free_port();
    let mut cmd = Command::new("python3");
    cmd.arg(helper("fault_proxy.py")).args([
        port.to_string(),
        upstream.url.clone(),
        rate.to_string(),
        seed.to_string(),
    ]);
    start(cmd, port, "fault proxy")
}

/// Every item of `table`, read by boto3, in DynamoDB's typed JSON.
fn scan(endpoint: &str, table: &str, region: &str) -> Vec<Value> {
    let out = run(Command::new("python3")
        .arg(helper("scan.py"))
        .args([endpoint, table, region]));
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// Runs Python with boto3's client for `endpoint` bound to `c`.
fn boto(endpoint: &str, region: &str, code: &str) -> String {
    let prelude = format!(
        "import boto3, json\nc = boto3.client('dynamodb', endpoint_url='{endpoint}', region_name='{region}', \
         aws_access_key_id='test', aws_secret_access_key='test')\n"
    );
    run(Command::new("python3").args(["-c", &format!("{prelude}{code}")]))
}

/// A typed DynamoDB attribute as plain JSON, numbers as f64 (as both sides are compared).
fn plain(attr: &Value) -> Value {
    let Some((ty, v)) = attr.as_object().and_then(|o| o.iter().next()) else {
        panic!("not an attribute: {attr}")
    };
    match ty.as_str() {
        "S" => v.clone(),
        "N" => json!(v.as_str().and_then(|s| s.parse::<f64>().ok())),
        "BOOL" => v.clone(),
        "NULL" => Value::Null,
        "M" => Value::Object(
            v.as_object()
                .into_iter()
                .flatten()
                .map(|(k, x)| (k.clone(), plain(x)))
                .collect(),
        ),
        "L" => Value::Array(v.as_array().into_iter().flatten().map(plain).collect()),
        "B" => v.clone(),
        other => panic!("unexpected attribute type {other}"),
    }
}

fn plain_item(item: &Value) -> Value {
    Value::Object(
        item.as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), plain(v)))
            .collect(),
    )
}

/// A JSON value with every number as f64 and NULL members left out (DynamoDB omits them).
fn normalized(v: &Value) -> Value {
    match v {
        Value::Number(n) => json!(n.as_f64()),
        Value::Array(a) => Value::Array(a.iter().map(normalized).collect()),
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, x)| !x.is_null())
                .map(|(k, x)| (k.clone(), normalized(x)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn key_of(item: &Value) -> String {
    format!("{}|{}", item["PK"], item["SK"])
}

/// Source rows as JSON objects, from a query.
fn pg_json(cluster: &PgCluster, db: &str, query: &str) -> Vec<Value> {
    cluster
        .psql(db, &format!("SELECT row_to_json(q) FROM ({query}) q"))
        .unwrap_or_else(|e| panic!("{e}"))
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// Asserts the items (plain) equal the expected rows, matched by PK and SK.
fn assert_items_equal(what: &str, expected: &[Value], items: &[Value]) {
    let mut want: BTreeMap<String, Value> = BTreeMap::new();
    for e in expected {
        let e = normalized(e);
        assert!(
            want.insert(key_of(&e), e).is_none(),
            "{what}: duplicate expected key"
        );
    }
    let mut got: BTreeMap<String, Value> = BTreeMap::new();
    for i in items {
        let i = normalized(&plain_item(i));
        assert!(
            got.insert(key_of(&i), i).is_none(),
            "{what}: duplicate item key"
        );
    }
    assert_eq!(want.len(), got.len(), "{what}: item count");
    for (k, w) in &want {
        assert_eq!(Some(w), got.get(k), "{what}: item {k}");
    }
}

fn entity_counts(items: &[Value]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for i in items {
        let t = i["entityType"]["S"]
            .as_str()
            .unwrap_or("(none)")
            .to_string();
        *out.entry(t).or_insert(0) += 1;
    }
    out
}

fn parking_source() -> PgCluster {
    let cluster = PgCluster::start().unwrap_or_else(|e| panic!("starting PostgreSQL: {e}"));
    cluster
        .create_database("parking")
        .unwrap_or_else(|e| panic!("{e}"));
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    cluster
        .psql_file("parking", &repo.join("examples/data/smart-parking.sql"))
        .unwrap_or_else(|e| panic!("{e}"));
    cluster
}

#[test]
fn the_example_moves_all_seven_entity_types_and_verify_proves_every_attribute() {
    let cluster = parking_source();
    let server = moto();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let plan =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/timescaledb-to-dynamodb.toml");
    let plan = plan.to_string_lossy();
    let url = cluster.url("parking");
    let env = [
        ("SOURCE_URL", url.as_str()),
        ("DYNAMODB_ENDPOINT", server.url.as_str()),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "sekrit-never-printed"),
    ];
    let o = run_tsmigrate(dir.path(), &["run", &plan, "--report", "run.json"], &env);
    assert_exit(&o, 0);
    assert!(!text(&o).contains("sekrit"), "{}", text(&o));
    let items = scan(&server.url, "parking", "eu-south-1");
    // The seed's table of seven counts, against the source's own counts.
    let source: BTreeMap<String, usize> = [
        ("TENANT", "tenants"),
        ("SITE", "sites"),
        ("ZONE", "zones"),
        ("BAY", "bays"),
        ("SENSOR", "sensors"),
        ("EVENT", "sensor_events"),
        ("ALERT", "alerts"),
    ]
    .into_iter()
    .map(|(e, t)| {
        let n = cluster
            .psql("parking", &format!("SELECT count(*) FROM {t}"))
            .unwrap_or_else(|e| panic!("{e}"));
        (e.to_string(), n.trim().parse().unwrap_or(0))
    })
    .collect();
    assert_eq!(entity_counts(&items), source);
    assert_eq!(source.values().sum::<usize>(), 356);

    // Events and sensors compared attribute by attribute with SQL written independently of
    // the plan: key templates, ISO-8601 times (UTC, milliseconds), TTL, nested payloads,
    // omitted NULLs, GSI keys.
    let iso = |col: &str| {
        format!(
            "regexp_replace(to_char({col} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US'), '\\.?0+$', '') || 'Z'"
        )
    };
    // The sort key's time is fixed width (iso_time: all six fractional digits), so keys of
    // one sensor sort as their times do.
    let fixed = |col: &str| {
        format!("to_char({col} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US') || 'Z'")
    };
    let events = pg_json(
        &cluster,
        "parking",
        &format!(
            "SELECT 'SENSOR#' || sensor_id AS \"PK\", 'EVENT#' || {f} AS \"SK\", 'EVENT' AS \"entityType\", \
             id AS \"eventId\", {t} AS \"time\", event_type AS \"eventType\", payload, rssi, snr, \
             floor(extract(epoch FROM time))::bigint + 7776000 AS ttl FROM sensor_events",
            t = iso("time"),
            f = fixed("time")
        ),
    );
    let of = |t: &str| -> Vec<Value> {
        items
            .iter()
            .filter(|i| i["entityType"]["S"] == t)
            .cloned()
            .collect()
    };
    assert_items_equal("events", &events, &of("EVENT"));
    // Within a sensor, events sorted by their sort key are in time order (issue 23, item 6:
    // a sort key built from `time::text` put …08.49382Z after …08.493828Z).
    let mut by_sensor: BTreeMap<String, Vec<(String, chrono::DateTime<chrono::FixedOffset>)>> =
        BTreeMap::new();
    for e in of("EVENT") {
        let sk = e["SK"]["S"].as_str().unwrap_or_default().to_string();
        let t = chrono::DateTime::parse_from_rfc3339(e["time"]["S"].as_str().unwrap_or_default())
            .unwrap_or_else(|err| panic!("{err}: {e}"));
        by_sensor
            .entry(e["PK"]["S"].as_str().unwrap_or_default().to_string())
            .or_default()
            .push((sk, t));
    }
    for (sensor, mut events) in by_sensor {
        events.sort();
        assert!(
            events.windows(2).all(|w| w[0].1 <= w[1].1),
            "{sensor}: sort keys out of time order: {events:?}"
        );
    }
    let sensors = pg_json(
        &cluster,
        "parking",
        &format!(
            "SELECT 'SENSOR#' || id AS \"PK\", 'METADATA' AS \"SK\", 'ZONE#' || zone_id AS \"GSI1PK\", 'SENSOR#' || id AS \"GSI1SK\", \
             'DEVEUI#' || dev_eui AS \"GSI2PK\", 'SENSOR#' || id AS \"GSI2SK\", 'SENSOR' AS \"entityType\", id AS \"sensorId\", \
             bay_id AS \"bayId\", dev_eui AS \"devEui\", model, {t} AS \"installedAt\", firmware, battery_pct AS \"batteryPct\" FROM sensors",
            t = iso("installed_at")
        ),
    );
    assert_items_equal("sensors", &sensors, &of("SENSOR"));
    // A zone-level sensor has no bayId attribute at all, and an open alert no GSI1PK.
    assert!(of("SENSOR").iter().any(|i| i.get("bayId").is_none()));
    assert!(of("ALERT").iter().any(|i| i.get("GSI1PK").is_none()));
    let zone1 = of("ZONE")
        .into_iter()
        .find(|i| i["PK"]["S"] == "ZONE#1")
        .unwrap_or_else(|| panic!("no ZONE#1"));
    assert_eq!(zone1["areaM2"], json!({"N": "127.25"}));
    assert_eq!(zone1["metadata"]["M"]["tags"]["L"][0], json!({"S": "zone"}));
    let ttl = boto(
        &server.url,
        "eu-south-1",
        "print(c.describe_time_to_live(TableName='parking')['TimeToLiveDescription'])",
    );
    assert!(ttl.contains("'ENABLED'") && ttl.contains("'ttl'"), "{ttl}");
    let indexes = boto(
        &server.url,
        "eu-south-1",
        "print(sorted(g['IndexName'] for g in c.describe_table(TableName='parking')['Table']['GlobalSecondaryIndexes']))",
    );
    assert_eq!(indexes.trim(), "['GSI1', 'GSI2']");
    // GSI2 finds a sensor by its DevEUI.
    let by_eui = boto(
        &server.url,
        "eu-south-1",
        "r = c.query(TableName='parking', IndexName='GSI2', KeyConditionExpression='GSI2PK = :k', \
         ExpressionAttributeValues={':k': {'S': 'DEVEUI#0000000070B3D3EF'}})\nprint(r['Items'][0]['PK']['S'])",
    );
    assert_eq!(by_eui.trim(), "SENSOR#1");

    // Every attribute of every item, and 30 items per stream looked up by key (BatchGetItem).
    let o = run_tsmigrate(dir.path(), &["verify", &plan, "--sample", "30"], &env);
    assert_exit(&o, 0);
    let out = text(&o);
    for t in ["tenants", "zones", "sensor_events", "alerts"] {
        assert!(out.contains(&format!("{t} → parking: EQUAL")), "{out}");
    }
    assert!(
        out.contains("30 source row(s) looked up by key: 30 equal, 0 missing, 0 different"),
        "{out}"
    );

    // Verify sees one changed attribute, one deleted item and one extra item of an entity.
    boto(
        &server.url,
        "eu-south-1",
        "c.update_item(TableName='parking', Key={'PK': {'S': 'ZONE#7'}, 'SK': {'S': 'METADATA'}}, \
         UpdateExpression='SET #n = :v', ExpressionAttributeNames={'#n': 'name'}, ExpressionAttributeValues={':v': {'S': 'renamed'}})\n\
         c.delete_item(TableName='parking', Key={'PK': {'S': 'ZONE#3'}, 'SK': {'S': 'BAY#B-01'}})\n\
         c.put_item(TableName='parking', Item={'PK': {'S': 'SENSOR#999'}, 'SK': {'S': 'METADATA'}, 'entityType': {'S': 'SENSOR'}})",
    );
    let o = run_tsmigrate(dir.path(), &["verify", &plan, "--report", "v.json"], &env);
    assert_exit(&o, 4);
    let report = read_json(&dir.path().join("v.json"));
    let stream = |name: &str| {
        report["streams"]
            .as_array()
            .and_then(|s| s.iter().find(|x| x["name"] == name))
            .cloned()
            .unwrap_or_else(|| panic!("no {name} in {report}"))
    };
    assert_eq!(
        (
            stream("zones")["different"].as_u64(),
            stream("zones")["missing"].as_u64()
        ),
        (Some(1), Some(0)),
        "{report}"
    );
    assert_eq!(stream("bays")["missing"].as_u64(), Some(1), "{report}");
    assert_eq!(stream("sensors")["extra"].as_u64(), Some(1), "{report}");
    assert_eq!(stream("sensor_events")["equal"], json!(true), "{report}");
    let out = text(&o);
    assert!(
        out.contains("renamed") && out.contains("BAY#B-01") && out.contains("SENSOR#999"),
        "{out}"
    );
}

/// A plan writing `readings` (20,000 rows) into one table through `endpoint`.
fn readings_plan(dir: &Path, endpoint: &str, extra_target: &str) -> PathBuf {
    let plan = format!(
        r#"
[source]
kind = "postgres"
url = "${{SOURCE_URL}}"

[target]
kind = "dynamodb"
table = "readings"
region = "us-east-1"
endpoint_url = "{endpoint}"
partition_key = "PK"
sort_key = "SK"
attribute_types = {{ SK = "N" }}
{extra_target}

[[streams]]
name = "readings"
columns = [
  {{ name = "PK", expr = "'DEV#' || device" }},
  {{ name = "SK", expr = "seq" }},
  {{ name = "entityType", expr = "'READING'" }},
  {{ name = "value" }},
  {{ name = "note" }},
]
"#
    );
    let path = dir.join("readings.toml");
    std::fs::write(&path, plan).unwrap_or_else(|e| panic!("{e}"));
    path
}

fn readings_source(rows: u32) -> PgCluster {
    let cluster = PgCluster::start().unwrap_or_else(|e| panic!("starting PostgreSQL: {e}"));
    cluster
        .create_database("src")
        .unwrap_or_else(|e| panic!("{e}"));
    cluster
        .psql(
            "src",
            &format!(
                "CREATE TABLE readings (device int, seq bigint, value float8, note text, PRIMARY KEY (device, seq));
                 INSERT INTO readings SELECT g % 50, g, g * 0.001, CASE WHEN g % 3 = 0 THEN NULL ELSE 'r' || g END
                 FROM generate_series(1, {rows}) g;"
            ),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    cluster
}

fn expected_readings(cluster: &PgCluster) -> Vec<Value> {
    pg_json(
        cluster,
        "src",
        "SELECT 'DEV#' || device AS \"PK\", seq AS \"SK\", 'READING' AS \"entityType\", value, note FROM readings",
    )
}

#[test]
fn under_thirty_percent_injected_throttling_every_item_lands_exactly_once() {
    let cluster = readings_source(20_000);
    let server = moto();
    let proxy = fault_proxy(&server, 0.3, 7);
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let plan = readings_plan(dir.path(), &proxy.url, "concurrency = 4");
    let url = cluster.url("src");
    let env = [
        ("SOURCE_URL", url.as_str()),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
    ];
    let plan = plan.to_string_lossy();
    let o = run_tsmigrate(
        dir.path(),
        &[
            "run",
            &plan,
            "-j",
            "2",
            "--partition-rows",
            "4000",
            "--report",
            "run.json",
        ],
        &env,
    );
    assert_exit(&o, 0);
    let stats: Value = serde_json::from_str(&run(Command::new("python3").args([
        "-c",
        &format!(
            "import urllib.request; print(urllib.request.urlopen('{}/__stats').read().decode())",
            proxy.url
        ),
    ])))
    .unwrap_or_else(|e| panic!("{e}"));
    let writes = stats["batch_writes"].as_u64().unwrap_or(0);
    let faults = stats["throttled"].as_u64().unwrap_or(0) + stats["partial"].as_u64().unwrap_or(0);
    assert!(writes >= 800, "{stats}");
    // About 30% of the write requests failed, both ways.
    assert!(
        faults * 100 >= writes * 20 && faults * 100 <= writes * 40,
        "{stats}"
    );
    assert!(
        stats["throttled"].as_u64() > Some(50) && stats["partial"].as_u64() > Some(50),
        "{stats}"
    );
    assert!(stats["unprocessed_items"].as_u64() > Some(500), "{stats}");
    let report = read_json(&dir.path().join("run.json"));
    assert_eq!(
        report["streams"][0]["rows_written"].as_u64(),
        Some(20_000),
        "{report}"
    );
    assert!(
        report["streams"][0]["notes"]
            .to_string()
            .contains("throttled or failed"),
        "{report}"
    );
    // Every item is there once, with its values: items are compared one by one.
    let items = scan(&server.url, "readings", "us-east-1");
    assert_eq!(items.len(), 20_000);
    assert_items_equal("readings", &expected_readings(&cluster), &items);
    let o = run_tsmigrate(dir.path(), &["verify", &plan], &env);
    assert_exit(&o, 0);
}

#[test]
fn a_killed_run_resumes_and_puts_the_unfinished_partitions_again() {
    let cluster = readings_source(6_000);
    let server = moto();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    // 1,500 items per second: the run takes about 4 s, and is killed after about 1.5 s.
    let plan = readings_plan(
        dir.path(),
        &server.url,
        "max_writes_per_second = 1500\nstate = \"state/ledger.sqlite\"",
    );
    let plan = plan.to_string_lossy().into_owned();
    let url = cluster.url("src");
    let mut child = Command::new(env!("CARGO_BIN_EXE_tsmigrate"))
        .args(["run", &plan, "-j", "2", "--partition-rows", "500"])
        .current_dir(dir.path())
        .env("SOURCE_URL", &url)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let ledger = dir.path().join("state/ledger.sqlite");
    let started = Instant::now();
    // Killed once at least one partition is recorded as done.
    loop {
        let done = Command::new("sqlite3")
            .args(["-cmd", ".timeout 5000"])
            .arg(&ledger)
            .arg("SELECT count(*) FROM tsmigrate_partitions WHERE state = 'done'")
            .output()
            .ok()
            .filter(|o| o.status.success() && ledger.exists())
            .and_then(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .unwrap_or(0);
        if done >= 1 {
            break;
        }
        assert!(
            child.try_wait().ok().flatten().is_none(),
            "the run ended before it could be killed"
        );
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no partition done in 60 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    unsafe_kill9(&mut child);
    let before = scan(&server.url, "readings", "us-east-1").len();
    assert!(
        before < 6_000,
        "the run was killed too late to test resuming ({before} items)"
    );
    let env = [
        ("SOURCE_URL", url.as_str()),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
    ];
    let o = run_tsmigrate(
        dir.path(),
        &[
            "run",
            &plan,
            "-j",
            "2",
            "--partition-rows",
            "500",
            "--report",
            "r.json",
        ],
        &env,
    );
    assert_exit(&o, 0);
    let report = read_json(&dir.path().join("r.json"));
    assert!(
        report["streams"][0]["partitions_skipped"].as_u64() >= Some(1),
        "{report}"
    );
    let items = scan(&server.url, "readings", "us-east-1");
    assert_items_equal("readings", &expected_readings(&cluster), &items);
    let o = run_tsmigrate(dir.path(), &["verify", &plan], &env);
    assert_exit(&o, 0);
}

/// SIGKILL: the run gets no chance to clean up.
fn unsafe_kill9(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-9", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

#[test]
fn nasty_values_are_stored_exactly_or_rejected_with_the_reason() {
    let cluster = PgCluster::start().unwrap_or_else(|e| panic!("starting PostgreSQL: {e}"));
    cluster
        .create_database("src")
        .unwrap_or_else(|e| panic!("{e}"));
    cluster
        .psql(
            "src",
            r#"CREATE TABLE nasty (id int PRIMARY KEY, k text, f float8, big bigint, n numeric, t text, j jsonb, ts timestamptz, b bytea,
                    r real, jn json);
INSERT INTO nasty (id, k, f, big, n, t, j, ts, b, r, jn) VALUES
 -- issue 23: a float4 written as the float4 it is (not 0.10000000149011612), JSON numbers
 -- never through f64 (30 and 37 digits), a numeric far from 1 in scientific notation, -0.0
 -- into a float attribute (DynamoDB has no negative zero: run and verify both write 0).
 (11, 'dev-11', -0.0, 1, 1.2E+125, 'x', NULL, NULL, NULL, 0.1,
      '{"big":123456789012345678901234567890,"max":9999999999999999999999999999999999999,"f4":3.3}'),
 (12, 'dev-12', 1, 1, 1, 'x', NULL, NULL, NULL, 3.3, NULL);
INSERT INTO nasty (id, k, f, big, n, t, j, ts, b) VALUES
 (1, 'dev-1', 0.1, 9007199254740993, 12345678901234567890.123456789,
     E'tab\there\nnew "line" \\ back, ünïcødé ☃', '{"a": {"b": [1, 2.5, null, "x"]}, "c": true}', '1970-01-01 00:00:00+00', '\x00ff'),
 (2, 'dev-2', 'NaN', 1, 1, 'x', NULL, NULL, NULL),
 (3, 'dev-3', '-Infinity', 1, 1, 'x', NULL, NULL, NULL),
 (4, 'dev-4', 1, 1, 1234567890123456789012345678901234567890, 'x', NULL, NULL, NULL),
 (5, '', 1, 1, 1, 'x', NULL, NULL, NULL),
 (6, NULL, 1, 1, 1, 'x', NULL, NULL, NULL),
 (7, 'dev-1', 2, 2, 2, 'same key as row 1', NULL, NULL, NULL),
 (8, 'dev-8', NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (9, 'dev-9', -0.0, -9223372036854775808, -0.000000000000000000000000000001, '{"a":', '"just a string"', '9999-12-31 23:59:59.999999+00', ''),
 (10, 'dev-10', 1e300, 1, 1, 'x', NULL, NULL, NULL);"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let server = moto();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let plan = format!(
        r#"
[source]
kind = "postgres"
url = "${{SOURCE_URL}}"

[target]
kind = "dynamodb"
table = "nasty"
region = "us-east-1"
endpoint_url = "{}"
partition_key = "PK"
sort_key = "SK"

[[streams]]
name = "nasty"
columns = [
  {{ name = "PK", expr = "k" }},
  {{ name = "SK", expr = "CASE WHEN id = 7 THEN '1' ELSE id::text END" }},
  {{ name = "f" }}, {{ name = "big" }}, {{ name = "n" }}, {{ name = "t" }}, {{ name = "j" }}, {{ name = "ts" }}, {{ name = "b" }},
  {{ name = "r" }}, {{ name = "jn", type = "jsonb" }}, {{ name = "lat", type = "float8", expr = "f" }},
]
"#,
        server.url
    );
    let plan_path = dir.path().join("nasty.toml");
    std::fs::write(&plan_path, plan).unwrap_or_else(|e| panic!("{e}"));
    let plan = plan_path.to_string_lossy();
    let url = cluster.url("src");
    let env = [
        ("SOURCE_URL", url.as_str()),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
    ];
    // Rejects stop a run by default (exit 3); with room for them, the rest is written.
    let o = run_tsmigrate(dir.path(), &["run", &plan], &env);
    assert_exit(&o, 3);
    let o = run_tsmigrate(
        dir.path(),
        &["run", &plan, "--max-rejects", "20", "--report", "r.json"],
        &env,
    );
    assert_exit(&o, 0);
    let rejects = std::fs::read_to_string(dir.path().join("nasty.rejects.csv"))
        .unwrap_or_else(|e| panic!("{e}"));
    for (id, reason) in [
        (2, "NaN"),
        (3, "cannot be NaN or infinite"),
        (4, "39 significant digits"),
        (5, "empty string"),
        (6, "is NULL, and it is a key attribute"),
        (7, "same key (PK = \"\"dev-1\"\", SK = \"\"1\"\")"),
        (10, "outside DynamoDB's number range"),
    ] {
        let line = rejects
            .lines()
            .find(|l| l.contains(&format!("\"\"id\"\":{id},")))
            .unwrap_or_else(|| panic!("row {id} is not in the rejects:\n{rejects}"));
        assert!(line.contains(reason), "row {id}: {line}");
    }
    assert_eq!(rejects.lines().count(), 1 + 7, "{rejects}");
    let mut items = scan(&server.url, "nasty", "us-east-1");
    items.sort_by_key(key_of);
    assert_eq!(
        items,
        vec![
            json!({
                "PK": {"S": "dev-1"}, "SK": {"S": "1"}, "f": {"N": "0.1"}, "lat": {"N": "0.1"}, "big": {"N": "9007199254740993"},
                "n": {"N": "12345678901234567890.123456789"},
                "t": {"S": "tab\there\nnew \"line\" \\ back, ünïcødé ☃"},
                "j": {"M": {"a": {"M": {"b": {"L": [{"N": "1"}, {"N": "2.5"}, {"NULL": true}, {"S": "x"}]}}}, "c": {"BOOL": true}}},
                "ts": {"S": "1970-01-01T00:00:00Z"}, "b": {"B": "AP8="}
            }),
            json!({
                "PK": {"S": "dev-11"}, "SK": {"S": "11"}, "f": {"N": "0"}, "lat": {"N": "0"}, "big": {"N": "1"},
                "n": {"N": "1.2E+125"}, "t": {"S": "x"}, "r": {"N": "0.1"},
                "jn": {"M": {"big": {"N": "123456789012345678901234567890"},
                             "max": {"N": "9999999999999999999999999999999999999"}, "f4": {"N": "3.3"}}}
            }),
            json!({
                "PK": {"S": "dev-12"}, "SK": {"S": "12"}, "f": {"N": "1"}, "lat": {"N": "1"}, "big": {"N": "1"},
                "n": {"N": "1"}, "t": {"S": "x"}, "r": {"N": "3.3"}
            }),
            json!({"PK": {"S": "dev-8"}, "SK": {"S": "8"}}),
            json!({
                "PK": {"S": "dev-9"}, "SK": {"S": "9"}, "f": {"N": "0"}, "lat": {"N": "0"}, "big": {"N": "-9223372036854775808"},
                "n": {"N": "-0.000000000000000000000000000001"}, "t": {"S": "{\"a\":"}, "j": {"S": "just a string"},
                "ts": {"S": "9999-12-31T23:59:59.999999Z"}, "b": {"B": ""}
            }),
        ]
    );
    // verify names exactly the seven rejected rows as missing, and nothing else.
    let o = run_tsmigrate(dir.path(), &["verify", &plan, "--report", "v.json"], &env);
    assert_exit(&o, 4);
    let v = read_json(&dir.path().join("v.json"));
    assert_eq!(
        (
            v["streams"][0]["missing"].as_u64(),
            v["streams"][0]["extra"].as_u64(),
            v["streams"][0]["different"].as_u64()
        ),
        (Some(7), Some(0), Some(0)),
        "{v}"
    );
    // A changed 38th digit of a JSON number is a difference: verify compares decimals, not
    // their f64 roundings.
    boto(
        &server.url,
        "us-east-1",
        "c.update_item(TableName='nasty', Key={'PK': {'S': 'dev-11'}, 'SK': {'S': '11'}}, \
         UpdateExpression='SET jn.#m = :v', ExpressionAttributeNames={'#m': 'max'}, \
         ExpressionAttributeValues={':v': {'N': '9999999999999999999999999999999999998'}})",
    );
    let o = run_tsmigrate(dir.path(), &["verify", &plan, "--report", "v2.json"], &env);
    assert_exit(&o, 4);
    let v = read_json(&dir.path().join("v2.json"));
    assert_eq!(v["streams"][0]["different"].as_u64(), Some(1), "{v}");
}

#[test]
fn plans_the_table_cannot_take_are_refused_before_writing() {
    let cluster = readings_source(100);
    let server = moto();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let url = cluster.url("src");
    let env = [
        ("SOURCE_URL", url.as_str()),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
    ];
    let write = |name: &str, target: &str, stream: &str| -> String {
        let p = dir.path().join(name);
        let text = format!(
            "[source]\nkind = \"postgres\"\nurl = \"${{SOURCE_URL}}\"\n\n[target]\nkind = \"dynamodb\"\nregion = \"us-east-1\"\n\
             endpoint_url = \"{}\"\n{target}\n\n[[streams]]\nname = \"readings\"\n{stream}\n",
            server.url
        );
        std::fs::write(&p, text).unwrap_or_else(|e| panic!("{e}"));
        p.to_string_lossy().into_owned()
    };
    let cols = "columns = [ { name = \"PK\", expr = \"'DEV#' || device\" }, { name = \"SK\", expr = \"seq::text\" }, { name = \"entityType\", expr = \"'READING'\" }, { name = \"value\" } ]";
    let cases = [
        (
            write(
                "skip.toml",
                "table = \"t1\"\npartition_key = \"PK\"\nsort_key = \"SK\"",
                &format!("write = \"skip\"\nkey = [\"PK\", \"SK\"]\n{cols}"),
            ),
            2,
            "BatchWriteItem does not take",
        ),
        (
            write(
                "nosk.toml",
                "table = \"t1\"\npartition_key = \"PK\"\nsort_key = \"SORT\"",
                cols,
            ),
            2,
            "the stream gives no `SORT`",
        ),
        (
            write(
                "ttl.toml",
                "table = \"t1\"\npartition_key = \"PK\"\nsort_key = \"SK\"\nttl = \"expires\"",
                &cols.replace(
                    " ]",
                    ", { name = \"expires\", expr = \"to_timestamp(seq)\" } ]",
                ),
            ),
            2,
            "compute it as epoch_s(",
        ),
        (
            write(
                "badopt.toml",
                "table = \"t1\"\npartition_key = \"PK\"\nbilling = \"provisioned\"",
                cols,
            ),
            2,
            "needs read_capacity",
        ),
    ];
    for (plan, code, wanted) in &cases {
        let o = run_tsmigrate(dir.path(), &["run", plan], &env);
        assert_exit(&o, *code);
        assert!(text(&o).contains(wanted), "{plan}: {}", text(&o));
    }
    // None of them created the table.
    let tables = boto(
        &server.url,
        "us-east-1",
        "print(c.list_tables()['TableNames'])",
    );
    assert_eq!(tables.trim(), "[]");

    // An existing table with another key is refused, not written.
    boto(
        &server.url,
        "us-east-1",
        "c.create_table(TableName='other', KeySchema=[{'AttributeName': 'id', 'KeyType': 'HASH'}], \
         AttributeDefinitions=[{'AttributeName': 'id', 'AttributeType': 'S'}], BillingMode='PAY_PER_REQUEST')",
    );
    let plan = write(
        "other.toml",
        "table = \"other\"\npartition_key = \"PK\"\nsort_key = \"SK\"",
        cols,
    );
    let o = run_tsmigrate(dir.path(), &["run", &plan], &env);
    assert_exit(&o, 2);
    assert!(
        text(&o).contains("exists with key id + (no sort key)"),
        "{}",
        text(&o)
    );

    // A table holding items of the same entity that this plan's ledger did not write: an
    // `append` is refused (a put would replace them); `upsert` says so and writes.
    let plan = write(
        "first.toml",
        "table = \"shared\"\npartition_key = \"PK\"\nsort_key = \"SK\"\nstate = \"first.sqlite\"",
        cols,
    );
    assert_exit(&run_tsmigrate(dir.path(), &["run", &plan], &env), 0);
    // A run cannot be rolled back: its items carry no mark of it.
    let o = run_tsmigrate(
        dir.path(),
        &["rollback", &plan, "--run", "1", "--yes"],
        &env,
    );
    assert!(
        text(&o).contains("carry no mark of the run"),
        "{}",
        text(&o)
    );
    assert_ne!(o.status.code(), Some(0));
    assert_eq!(scan(&server.url, "shared", "us-east-1").len(), 100);
    let plan = write(
        "second.toml",
        "table = \"shared\"\npartition_key = \"PK\"\nsort_key = \"SK\"\nstate = \"second.sqlite\"",
        cols,
    );
    let o = run_tsmigrate(dir.path(), &["run", &plan], &env);
    assert_exit(&o, 2);
    assert!(
        text(&o).contains("already holds items with entityType = \"READING\""),
        "{}",
        text(&o)
    );
    // With write = "upsert" the same plan puts over them: still one item per key.
    let plan = write(
        "second-upsert.toml",
        "table = \"shared\"\npartition_key = \"PK\"\nsort_key = \"SK\"\nstate = \"second.sqlite\"",
        &format!("write = \"upsert\"\nkey = [\"PK\", \"SK\"]\n{cols}"),
    );
    assert_exit(&run_tsmigrate(dir.path(), &["run", &plan], &env), 0);
    assert_eq!(scan(&server.url, "shared", "us-east-1").len(), 100);
    // Items of another entity are no obstacle.
    let other_entity = cols
        .replace("'READING'", "'OTHER'")
        .replace("'DEV#'", "'OTHER#'");
    let plan = write(
        "third.toml",
        "table = \"shared\"\npartition_key = \"PK\"\nsort_key = \"SK\"\nstate = \"third.sqlite\"",
        &other_entity,
    );
    assert_exit(&run_tsmigrate(dir.path(), &["run", &plan], &env), 0);
    let counts = entity_counts(&scan(&server.url, "shared", "us-east-1"));
    assert_eq!(
        counts,
        BTreeMap::from([("OTHER".to_string(), 100), ("READING".to_string(), 100)])
    );

    // No credentials: a clear error, exit 1.
    let o = run_tsmigrate(
        dir.path(),
        &["check", &plan],
        &[
            ("SOURCE_URL", url.as_str()),
            ("AWS_ACCESS_KEY_ID", ""),
            ("AWS_SECRET_ACCESS_KEY", ""),
        ],
    );
    assert!(
        text(&o).contains("set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"),
        "{}",
        text(&o)
    );
    assert_ne!(o.status.code(), Some(0));
}
