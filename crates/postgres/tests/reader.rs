//! The PostgreSQL table reader (`verify` reading a target back) and the ledger's
//! verification records, against throwaway PostgreSQL clusters.
//!
//! The test table's rows are generated from their id by a formula that this file repeats in
//! Rust ([`expected`]), so every value read back is checked, not just counted: NaN, ±Infinity
//! and -0, integers above 2^53, text with tabs, newlines, quotes, backslashes and non-ASCII
//! characters, JSON, numeric, NULLs in every nullable column.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use tsmigrate_core::{
    Batch, Column, ConnString, DataType, Endpoint, Error, Field, Ledger, Partition, ScanRange,
    Schema, Sink, TableReader, TableScan, TimeUnit, ValueRef, VerificationRecord,
};
use tsmigrate_postgres::{PgLedger, PgSink, PgTableReader};
use tsmigrate_testkit::PgCluster;

/// Rows of the test table.
const ROWS: i64 = 50_000;
/// 2024-01-01T00:00:00Z in µs since the Unix epoch.
const T0_US: i64 = 1_704_067_200_000_000;

/// The test table, `n` rows generated server-side (ids 1..=n), with a unique (device, ts) key.
fn create_sql(table: &str, n: i64) -> String {
    format!(
        r#"
CREATE TABLE {table} (
  id int8 PRIMARY KEY,
  device uuid NOT NULL,
  ts timestamptz NOT NULL,
  label text,
  value float8,
  big int8 NOT NULL,
  amount numeric(12,2),
  flag boolean,
  doc jsonb,
  UNIQUE (device, ts)
);
{}"#,
        insert_sql(table, 1, n)
    )
}

/// Inserts the rows with ids `from..=to`.
fn insert_sql(table: &str, from: i64, to: i64) -> String {
    format!(
        r#"
INSERT INTO {table}
SELECT g,
  ('00000000-0000-4000-8000-' || lpad(to_hex((g % 37) * 7919), 12, '0'))::uuid,
  timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second' + (g % 1000) * interval '1 microsecond',
  CASE WHEN g % 11 = 0 THEN NULL ELSE 'row ' || g || E'\t"quoted" ''single''\nnaïve ☃ \\ end' END,
  CASE g % 7 WHEN 0 THEN 'NaN'::float8 WHEN 1 THEN 'Infinity'::float8 WHEN 2 THEN '-Infinity'::float8
             WHEN 3 THEN '-0'::float8 WHEN 4 THEN NULL ELSE g::float8 / 3 END,
  9007199254740993 + g,
  CASE WHEN g % 13 = 0 THEN NULL ELSE g::numeric / 100 END,
  CASE WHEN g % 17 = 0 THEN NULL ELSE g % 2 = 0 END,
  CASE WHEN g % 5 = 0 THEN NULL ELSE jsonb_build_object('g', g, 's', E'x"y\n') END
FROM generate_series({from}, {to}) g;
"#
    )
}

/// The columns read, in the table's types.
fn fields() -> Vec<Field> {
    vec![
        Field::new("id", DataType::Int64),
        Field::new("device", DataType::Uuid),
        Field::new("ts", DataType::Timestamp(TimeUnit::Micros)),
        Field::new("label", DataType::Text),
        Field::new("value", DataType::Float64),
        Field::new("big", DataType::Int64),
        Field::new("amount", DataType::Numeric),
        Field::new("flag", DataType::Bool),
        Field::new("doc", DataType::Json),
    ]
}

fn scan(table: &str, range: Option<ScanRange>) -> TableScan {
    TableScan {
        stream: "telemetry".into(),
        table: table.into(),
        columns: fields(),
        range,
        scope: Vec::new(),
    }
}

fn device(g: i64) -> [u8; 16] {
    let mut u = [0u8; 16];
    u[6] = 0x40;
    u[8] = 0x80;
    let v = ((g % 37) * 7919) as u64;
    u[10..16].copy_from_slice(&v.to_be_bytes()[2..8]);
    u
}

fn ts_us(g: i64) -> i64 {
    T0_US + g * 1_000_000 + g % 1000
}

/// A value as the test table holds it, owned.
#[derive(Debug, Clone, PartialEq)]
enum V {
    Null,
    Int(i64),
    Uuid([u8; 16]),
    Ts(i64),
    Text(String),
    /// Float as its bits, so NaN and -0 compare exactly.
    Float(u64),
    Bool(bool),
}

fn owned(v: ValueRef<'_>) -> V {
    match v {
        ValueRef::Null => V::Null,
        ValueRef::Int(x) => V::Int(x),
        ValueRef::Uuid(u) => V::Uuid(*u),
        ValueRef::Timestamp(t, TimeUnit::Micros) => V::Ts(t),
        ValueRef::Timestamp(t, unit) => panic!("timestamp {t} in {unit:?}, expected µs"),
        ValueRef::Str(s) => V::Text(s.to_string()),
        ValueRef::Float(f) => V::Float(if f.is_nan() {
            f64::NAN.to_bits()
        } else {
            f.to_bits()
        }),
        ValueRef::Bool(b) => V::Bool(b),
        ValueRef::Bytes(b) => panic!("unexpected bytes {b:?}"),
    }
}

/// The row with id `g`, column by column as [`fields`] lists them.
fn expected(g: i64) -> Vec<V> {
    let value = match g % 7 {
        0 => V::Float(f64::NAN.to_bits()),
        1 => V::Float(f64::INFINITY.to_bits()),
        2 => V::Float(f64::NEG_INFINITY.to_bits()),
        3 => V::Float((-0.0f64).to_bits()),
        4 => V::Null,
        _ => V::Float((g as f64 / 3.0).to_bits()),
    };
    vec![
        V::Int(g),
        V::Uuid(device(g)),
        V::Ts(ts_us(g)),
        if g % 11 == 0 {
            V::Null
        } else {
            V::Text(format!("row {g}\t\"quoted\" 'single'\nnaïve ☃ \\ end"))
        },
        value,
        V::Int(9_007_199_254_740_993 + g),
        if g % 13 == 0 {
            V::Null
        } else {
            V::Text(format!("{}.{:02}", g / 100, g % 100))
        },
        if g % 17 == 0 {
            V::Null
        } else {
            V::Bool(g % 2 == 0)
        },
        if g % 5 == 0 {
            V::Null
        } else {
            V::Text(format!(r#"{{"g": {g}, "s": "x\"y\n"}}"#))
        },
    ]
}

/// Checks every row of `batches` against the formula; returns the ids seen (each once).
fn check_rows(batches: &[Batch]) -> BTreeSet<i64> {
    let mut ids = BTreeSet::new();
    for b in batches {
        assert_eq!(b.schema.fields, fields());
        for i in 0..b.len() {
            let row: Vec<V> = b.row(i).into_iter().map(owned).collect();
            let V::Int(id) = row[0] else {
                panic!("id of row {i} is {:?}", row[0]);
            };
            assert_eq!(row, expected(id), "row with id {id}");
            assert!(ids.insert(id), "id {id} read twice");
        }
    }
    ids
}

async fn read_partition(
    reader: &PgTableReader,
    scan: &TableScan,
    partition: &Partition,
) -> Vec<Batch> {
    let (tx, mut rx) = tokio::sync::mpsc::channel(4);
    let read = async {
        let r = reader.read(scan, partition, 3000, tx).await;
        r.unwrap_or_else(|e| panic!("reading {}: {e}", partition.id));
    };
    let gather = async {
        let mut got = Vec::new();
        while let Some(b) = rx.recv().await {
            got.push(b);
        }
        got
    };
    let ((), batches) = tokio::join!(read, gather);
    for b in &batches {
        assert!(b.len() <= 3000, "batch of {} rows", b.len());
    }
    batches
}

async fn read_all(reader: &PgTableReader, scan: &TableScan, parts: &[Partition]) -> Vec<Batch> {
    let mut all = Vec::new();
    for p in parts {
        all.extend(read_partition(reader, scan, p).await);
    }
    all
}

fn start() -> PgCluster {
    let cluster = PgCluster::start().unwrap_or_else(|e| panic!("starting PostgreSQL: {e}"));
    cluster
        .create_database("target")
        .unwrap_or_else(|e| panic!("{e}"));
    cluster
}

fn sql(cluster: &PgCluster, sql: &str) -> String {
    cluster
        .psql("target", sql)
        .unwrap_or_else(|e| panic!("{e}\nquery: {sql}"))
}

fn number(cluster: &PgCluster, query: &str) -> i64 {
    let out = sql(cluster, query);
    out.trim()
        .parse()
        .unwrap_or_else(|_| panic!("not a number: {out:?} from {query}"))
}

fn check_partition_ids(parts: &[Partition]) {
    let last = parts.len() - 1;
    for (i, p) in parts.iter().enumerate() {
        assert!(p.id.starts_with("blocks-"), "{}", p.id);
        let blocks = p.spec["blocks"]
            .as_array()
            .unwrap_or_else(|| panic!("spec {}", p.spec));
        assert_eq!(blocks.len(), 2);
        if i == last {
            assert!(
                blocks[1].is_null(),
                "last partition must be open: {}",
                p.spec
            );
            assert!(p.id.ends_with("-end"), "{}", p.id);
        } else {
            assert_eq!(blocks[1], parts[i + 1].spec["blocks"][0], "gap or overlap");
        }
    }
    assert_eq!(parts[0].spec["blocks"][0], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_back_every_row_in_block_partitions() {
    let cluster = start();
    sql(&cluster, &create_sql("readings", ROWS));
    // The same rows in a table that is never analyzed (its row count is sampled).
    sql(
        &cluster,
        &create_sql("fresh", ROWS).replacen(");\n", ") WITH (autovacuum_enabled = false);\n", 1),
    );
    sql(&cluster, "ANALYZE readings");
    assert_eq!(
        sql(
            &cluster,
            "SELECT relname, reltuples < 0 FROM pg_class WHERE relname IN ('readings', 'fresh') ORDER BY 1"
        ),
        "fresh|t\nreadings|f"
    );

    // Through the sink, as `verify` gets it; the password never shows.
    let url = cluster
        .url("target")
        .replace("postgres@", "postgres:s3cret-pw@");
    let sink = PgSink::open(&Endpoint {
        kind: "postgres".into(),
        url: Some(ConnString::new(url.clone())),
        options: Default::default(),
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let from_sink = sink
        .reader()
        .unwrap_or_else(|| panic!("the sink has no reader"));
    assert!(
        !from_sink.describe().contains("s3cret"),
        "{}",
        from_sink.describe()
    );
    let reader = PgTableReader::new(ConnString::new(url));

    // (a) Several partitions, reading exactly the table's rows.
    for table in ["readings", "public.fresh"] {
        let scan = scan(table, None);
        let parts = from_sink
            .partitions(&scan, 10_000)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            (3..=10).contains(&parts.len()),
            "{table}: {} partitions: {parts:?}",
            parts.len()
        );
        check_partition_ids(&parts);
        let estimated: u64 = parts.iter().filter_map(|p| p.estimated_rows).sum();
        assert!(
            (35_000..=65_000).contains(&estimated),
            "{table}: estimated {estimated} rows"
        );
        let ids = check_rows(&read_all(&reader, &scan, &parts).await);
        assert_eq!(ids.len() as i64, ROWS, "{table}");
        assert_eq!(ids.first(), Some(&1));
        assert_eq!(ids.last(), Some(&ROWS));
    }

    // (b) Rows added after the partitions were planned are read too (the last partition is
    // open-ended).
    let scan_all = scan("readings", None);
    let parts = reader
        .partitions(&scan_all, 10_000)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    sql(&cluster, &insert_sql("readings", ROWS + 1, ROWS + 1000));
    let ids = check_rows(&read_all(&reader, &scan_all, &parts).await);
    assert_eq!(ids.len() as i64, ROWS + 1000);
    assert_eq!(ids.last(), Some(&(ROWS + 1000)));
    assert_eq!(
        number(&cluster, "SELECT count(*) FROM readings"),
        ROWS + 1000
    );

    // (c) A time range reads exactly the rows SQL says are in it, in every partition.
    let (lo, hi) = (ts_us(10_000), ts_us(20_000));
    let ranged = scan(
        "readings",
        Some(ScanRange {
            column: "ts".into(),
            lo: Some(lo),
            hi: Some(hi),
        }),
    );
    let ids = check_rows(&read_all(&reader, &ranged, &parts).await);
    let in_sql = sql(
        &cluster,
        &format!(
            "SELECT count(*), min(id), max(id), sum(id) FROM readings \
             WHERE (extract(epoch FROM ts) * 1000000)::int8 >= {lo} AND (extract(epoch FROM ts) * 1000000)::int8 < {hi}"
        ),
    );
    assert_eq!(in_sql, "10000|10000|19999|149995000");
    assert_eq!(ids.len(), 10_000);
    assert_eq!(ids.first(), Some(&10_000));
    assert_eq!(ids.last(), Some(&19_999));
    assert_eq!(ids.iter().sum::<i64>(), 149_995_000);

    // The same window in nanoseconds, starting 1 ns after row 10000: that row is left out.
    let mut ns_scan = scan(
        "readings",
        Some(ScanRange {
            column: "ts".into(),
            lo: Some(lo * 1000 + 1),
            hi: Some(hi * 1000),
        }),
    );
    ns_scan.columns[2].dtype = DataType::Timestamp(TimeUnit::Nanos);
    let ids = check_rows(&read_all(&reader, &ns_scan, &parts).await);
    assert_eq!(ids.len(), 9_999);
    assert_eq!(ids.first(), Some(&10_001));

    // An open-ended range on an integer column.
    let by_id = scan(
        "readings",
        Some(ScanRange {
            column: "id".into(),
            lo: Some(ROWS - 99),
            hi: None,
        }),
    );
    let ids = check_rows(&read_all(&reader, &by_id, &parts).await);
    assert_eq!(ids.len(), 1100);
    assert_eq!(ids.first(), Some(&(ROWS - 99)));

    // A partitioned table has no blocks of its own: one partition, every row.
    sql(
        &cluster,
        "CREATE TABLE parted (id int8 NOT NULL) PARTITION BY RANGE (id);
         CREATE TABLE parted_a PARTITION OF parted FOR VALUES FROM (0) TO (500);
         CREATE TABLE parted_b PARTITION OF parted FOR VALUES FROM (500) TO (1000);
         INSERT INTO parted SELECT generate_series(0, 999);",
    );
    let mut parted = scan("parted", None);
    parted.columns = vec![Field::new("id", DataType::Int64)];
    let parted_parts = reader
        .partitions(&parted, 100)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(parted_parts.len(), 1, "{parted_parts:?}");
    assert_eq!(parted_parts[0].id, "all");
    assert_eq!(parted_parts[0].spec, serde_json::json!({ "blocks": null }));
    let batches = read_partition(&reader, &parted, &parted_parts[0]).await;
    let ids: Vec<i64> = batches
        .iter()
        .flat_map(|b| b.columns[0].ints().unwrap_or(&[]).to_vec())
        .collect();
    assert_eq!(ids.len(), 1000);
    assert_eq!(ids.iter().sum::<i64>(), 499_500);

    // Errors name the stream, the table and what to do.
    let missing = reader
        .partitions(&scan("nowhere", None), 10_000)
        .await
        .err()
        .unwrap_or_else(|| panic!("a missing table must be an error"));
    assert!(
        matches!(&missing, Error::NotFound(m) if m.contains("telemetry") && m.contains("\"nowhere\"") && m.contains("does not exist")),
        "{missing}"
    );
    let mut bad = scan("readings", None);
    bad.columns.push(Field::new("humidity", DataType::Float64));
    let e = read_partition_err(&reader, &bad, &parts[0]).await;
    assert!(
        matches!(&e, Error::Plan(m) if m.contains("`humidity`") && m.contains("\"readings\"") && m.contains("telemetry")),
        "{e}"
    );
    sql(&cluster, "CREATE TABLE shapes (id int8, p point)");
    let mut shapes = scan("shapes", None);
    shapes.columns = vec![
        Field::new("id", DataType::Int64),
        Field::new("p", DataType::Text),
    ];
    let shape_parts = reader
        .partitions(&shapes, 10_000)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(shape_parts.len(), 1);
    let e = read_partition_err(&reader, &shapes, &shape_parts[0]).await;
    assert!(
        matches!(&e, Error::Unsupported(m) if m.contains("`p`") && m.contains("point")),
        "{e}"
    );
}

async fn read_partition_err(reader: &PgTableReader, scan: &TableScan, p: &Partition) -> Error {
    let (tx, _rx) = tokio::sync::mpsc::channel(4);
    reader
        .read(scan, p, 1000, tx)
        .await
        .err()
        .unwrap_or_else(|| panic!("reading {} must fail", p.id))
}

/// A keys batch of (device, ts) with ts in `unit`; `None` makes a NULL ts.
fn keys(rows: &[([u8; 16], Option<i64>)], unit: TimeUnit) -> Batch {
    let mut d = Column::with_capacity(DataType::Uuid, rows.len());
    let mut t = Column::with_capacity(DataType::Timestamp(unit), rows.len());
    for (dev, ts) in rows {
        d.push_uuid(*dev);
        match ts {
            Some(x) => t.push_i64(*x),
            None => t.push_null(),
        }
    }
    let schema = Schema::new(vec![
        Field::new("device", DataType::Uuid),
        Field::new("ts", DataType::Timestamp(unit)),
    ]);
    Batch::new(Arc::new(schema), vec![Arc::new(d), Arc::new(t)])
        .unwrap_or_else(|| panic!("keys batch"))
}

fn key_of(g: i64) -> ([u8; 16], Option<i64>) {
    (device(g), Some(ts_us(g)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn looks_rows_up_by_key() {
    let cluster = start();
    sql(&cluster, &create_sql("readings", ROWS));
    let reader = PgTableReader::new(ConnString::new(cluster.url("target")));
    let all = scan("readings", None);

    // (d) Composite key (uuid, timestamptz): four present (one twice), one absent, one NULL.
    let k = keys(
        &[
            key_of(5),
            key_of(77),
            (device(5), Some(ts_us(5) + 1)),
            key_of(4242),
            (device(6), None),
            key_of(49_999),
            key_of(5),
        ],
        TimeUnit::Micros,
    );
    let got = reader
        .lookup(&all, &k)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let ids = check_rows(std::slice::from_ref(&got));
    assert_eq!(ids, BTreeSet::from([5, 77, 4242, 49_999]));

    // Keys in nanoseconds: a whole microsecond matches, one nanosecond more matches nothing.
    let k = keys(
        &[
            (device(5), Some(ts_us(5) * 1000)),
            (device(77), Some(ts_us(77) * 1000 + 1)),
        ],
        TimeUnit::Nanos,
    );
    let got = reader
        .lookup(&all, &k)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(check_rows(&[got]), BTreeSet::from([5]));

    // A float key is compared exactly: g/3 matches row g, the next float up matches nothing.
    let mut v = Column::with_capacity(DataType::Float64, 3);
    v.push_f64(5.0 / 3.0);
    v.push_f64(13.0 / 3.0);
    v.push_f64(f64::from_bits((20.0f64 / 3.0).to_bits() + 1));
    let k = Batch::new(
        Arc::new(Schema::new(vec![Field::new("value", DataType::Float64)])),
        vec![Arc::new(v)],
    )
    .unwrap_or_else(|| panic!("keys batch"));
    let got = reader
        .lookup(&all, &k)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(check_rows(&[got]), BTreeSet::from([5, 13]));

    // More keys than one statement takes (500): all 1200 found.
    let many: Vec<_> = (1..=1200).map(key_of).collect();
    let got = reader
        .lookup(&all, &keys(&many, TimeUnit::Micros))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(got.len(), 1200);
    assert_eq!(check_rows(&[got]), (1..=1200).collect::<BTreeSet<i64>>());

    // The scan's time range applies to lookups too.
    let ranged = scan(
        "readings",
        Some(ScanRange {
            column: "ts".into(),
            lo: Some(ts_us(10_000)),
            hi: Some(ts_us(20_000)),
        }),
    );
    let got = reader
        .lookup(
            &ranged,
            &keys(&[key_of(5), key_of(15_000)], TimeUnit::Micros),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(check_rows(&[got]), BTreeSet::from([15_000]));

    // No keys: an empty batch of the scan's columns.
    let got = reader
        .lookup(&all, &keys(&[], TimeUnit::Micros))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(got.is_empty());
    assert_eq!(got.schema.fields, fields());

    // Keys of a type the column cannot hold are refused with the column named.
    let mut t = Column::with_capacity(DataType::Text, 1);
    t.push_str("2024-01-01");
    let k = Batch::new(
        Arc::new(Schema::new(vec![Field::new("ts", DataType::Text)])),
        vec![Arc::new(t)],
    )
    .unwrap_or_else(|| panic!("keys batch"));
    let e = reader
        .lookup(&all, &k)
        .await
        .err()
        .unwrap_or_else(|| panic!("text keys for a timestamptz column must be refused"));
    assert!(
        matches!(&e, Error::Unsupported(m) if m.contains("`ts`") && m.contains("timestamp with time zone")),
        "{e}"
    );
}

fn record(stream: &str, equal: bool, missing: u64, seconds: f64) -> VerificationRecord {
    VerificationRecord {
        stream: stream.into(),
        verified_at: None,
        equal,
        source_rows: 1000,
        target_rows: 1000 - missing,
        missing,
        extra: 0,
        different: 2,
        window: "rows before 2026-11-22T10:00:00Z".into(),
        seconds,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_verifications_without_opening_the_ledger() {
    let cluster = start();
    let url = ConnString::new(cluster.url("target"));
    let ledger = PgLedger::new(url.clone(), "tsmigrate", "plan-a");

    // (e) A database without the ledger schema: no verifications, no error.
    assert!(ledger
        .verifications()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .is_empty());

    for r in [
        record("telemetry", false, 7, 1.5),
        record("devices", true, 0, 0.25),
        record("telemetry", true, 0, 2.75),
    ] {
        ledger
            .record_verification(&r)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let got: BTreeMap<String, VerificationRecord> = ledger
        .verifications()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .map(|v| (v.stream.clone(), v))
        .collect();
    assert_eq!(got.len(), 2);
    let t = &got["telemetry"];
    assert!(t.equal);
    assert_eq!(
        (
            t.source_rows,
            t.target_rows,
            t.missing,
            t.extra,
            t.different
        ),
        (1000, 1000, 0, 0, 2)
    );
    assert_eq!(t.seconds, 2.75);
    assert_eq!(t.window, "rows before 2026-11-22T10:00:00Z");
    let at = t
        .verified_at
        .as_deref()
        .unwrap_or_else(|| panic!("no verified_at"));
    assert!(
        at.len() == 24 && at.ends_with('Z') && at.as_bytes()[10] == b'T',
        "{at}"
    );
    assert_eq!(got["devices"].seconds, 0.25);
    assert!(got["devices"].verified_at.is_some());

    // Another plan in the same schema sees none of them.
    let other = PgLedger::new(url.clone(), "tsmigrate", "plan-b");
    assert!(other
        .verifications()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .is_empty());

    // Only the 50 newest per stream are kept.
    for i in 0..55 {
        ledger
            .record_verification(&record("devices", i % 2 == 0, i, i as f64))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    assert_eq!(
        number(
            &cluster,
            "SELECT count(*) FROM tsmigrate.verifications WHERE plan_id = 'plan-a' AND stream = 'devices'"
        ),
        50
    );
    assert_eq!(
        number(
            &cluster,
            "SELECT min(missing) FROM tsmigrate.verifications WHERE plan_id = 'plan-a' AND stream = 'devices'"
        ),
        5
    );
    let latest = ledger
        .verifications()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let d = latest
        .iter()
        .find(|v| v.stream == "devices")
        .unwrap_or_else(|| panic!("{latest:?}"));
    assert_eq!((d.missing, d.equal, d.seconds), (54, true, 54.0));
    assert_eq!(
        number(
            &cluster,
            "SELECT count(*) FROM tsmigrate.verifications WHERE stream = 'telemetry'"
        ),
        2
    );

    // A ledger written before the table existed gets it on the first verification.
    sql(&cluster, "DROP TABLE tsmigrate.verifications");
    assert!(ledger
        .verifications()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .is_empty());
    ledger
        .record_verification(&record("telemetry", true, 0, 1.0))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        ledger
            .verifications()
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .len(),
        1
    );
}
