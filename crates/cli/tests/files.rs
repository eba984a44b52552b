//! Parquet and CSV files as target and source (`kind = "parquet"` / `"csv"`), end to end with
//! the real binary, a real PostgreSQL server and pyarrow as the independent reader.
//!
//! The source table holds a column of every type tsmigrate moves, with the hostile values
//! (NULLs, NaN, ±Infinity, -0, i64 ends, 2^53 + 1, text with tabs, newlines, backslashes,
//! quotes and unicode, empty strings, timestamps at PostgreSQL's edges, invalid JSON in text)
//! and enough bulk rows for several partitions and row groups. Every comparison is of every
//! value, by exact bits for floats and bytes for text.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;
use tsmigrate_testkit::PgCluster;

const SOURCE: &str = r#"
CREATE TABLE readings (
  id bigint, small smallint, i4 integer, i8 bigint, r real, d double precision, n numeric,
  t text, j jsonb, ts timestamptz, b boolean, u uuid, bin bytea);
INSERT INTO readings
  SELECT g, (g % 300)::smallint, g * 7, g::bigint * 1000003, g / 3.0, g / 7.0, g / 4.0,
         CASE WHEN g % 11 = 0 THEN NULL ELSE 'row ' || g END,
         jsonb_build_object('g', g, 'even', g % 2 = 0),
         '2025-01-01T00:00:00Z'::timestamptz + g * interval '1.5 seconds',
         g % 3 = 0, md5(g::text)::uuid, decode(lpad(to_hex(g), 8, '0'), 'hex')
  FROM generate_series(1, 9000) g;
INSERT INTO readings VALUES
  (100001, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  (100002, -32768, -2147483648, -9223372036854775808, 'NaN', 'NaN', 'NaN', '', '{}', '4713-01-01 00:00:00+00 BC', false, '00000000-0000-0000-0000-000000000000', ''),
  (100003, 32767, 2147483647, 9223372036854775807, 'Infinity', 'Infinity', 123456789012345678901234567890.123456789, E'tab\there', '[1, "two", null]', '9999-12-31 23:59:59.999999+00', true, 'ffffffff-ffff-ffff-ffff-ffffffffffff', '\x00ff'),
  (100004, 0, 0, 9007199254740993, '-Infinity', '-Infinity', -0.000000000000000000001, E'new\nline and \r\n CRLF', '"just a string"', '1970-01-01 00:00:00+00', NULL, NULL, '\x5c785c'),
  (100005, -1, -1, -1, '-0', '-0', 0, E'back\\slash \\N \\\\ trailing\\', '{"nested": {"a": [1.5e300, -0.0]}}', '1969-12-31 23:59:59.999999+00', true, NULL, NULL),
  (100006, 1, 1, 1, 1.17549435e-38, 5e-324, 1e-130, 'it''s "quoted", a|pipe; and, a,comma', '{"ünï": "日本語 🚀"}', '2000-02-29 12:34:56.789012+00', false, NULL, NULL),
  (100007, 2, 2, 2, 3.4028235e38, 1.7976931348623157e308, 99999999999999999999, 'ünïcødé — 日本語 🚀 ∞ ½', NULL, '2262-04-11 23:47:16.854775+00', NULL, NULL, NULL),
  (100008, 3, 3, 3, 0.1, 0.1, 0.1, 'NULL', NULL, NULL, NULL, NULL, NULL),
  (100009, 4, 4, 4, 1, 2, 3, '{not json', NULL, NULL, NULL, NULL, NULL),
  (100010, 5, 5, 5, 1, 2, 3, ' leading and trailing spaces ', NULL, NULL, NULL, NULL, NULL),
  (100011, 6, 6, 6, 1, 2, 3, E'\x01\x02\x7f control', NULL, NULL, NULL, NULL, NULL),
  (100012, 7, 7, 7, 1, 2, 3, '"', NULL, NULL, NULL, NULL, NULL),
  (100012, 7, 7, 7, 1, 2, 3, '"', NULL, NULL, NULL, NULL, NULL);
"#;

/// A row of `readings` as text, by exact value: floats as their bits, text and JSON as UTF-8
/// hex after `T` (NULL is `N`), timestamps as µs since the epoch, bytes and UUIDs as hex.
const PG_ROW: &str = "concat_ws('|', id, coalesce(small::text, 'N'), coalesce(i4::text, 'N'), coalesce(i8::text, 'N'), \
     coalesce(encode(float4send(r), 'hex'), 'N'), coalesce(encode(float8send(d), 'hex'), 'N'), coalesce('T' || encode(convert_to(n::text, 'UTF8'), 'hex'), 'N'), \
     coalesce('T' || encode(convert_to(t, 'UTF8'), 'hex'), 'N'), coalesce('T' || encode(convert_to(j::text, 'UTF8'), 'hex'), 'N'), \
     coalesce(((extract(epoch from ts) * 1000000)::numeric(30,0))::text, 'N'), coalesce(b::text, 'N'), \
     coalesce(replace(u::text, '-', ''), 'N'), coalesce(encode(bin, 'hex'), 'N'))";

/// The same canonical rows of a Parquet dataset, read by pyarrow (`argv[1]`: the directory),
/// after one line with the schema's types.
const PYARROW_ROWS: &str = r#"
import struct, sys, uuid
import pyarrow as pa, pyarrow.parquet as pq
t = pq.read_table(sys.argv[1])
print(";".join(f"{f.name}:{f.type}" for f in t.schema))
def storage(typ):
    return getattr(typ, "storage_type", typ)
def enc(typ, v):
    if v is None:
        return "N"
    typ = storage(typ)
    if pa.types.is_float32(typ):
        return struct.pack(">f", v).hex()
    if pa.types.is_float64(typ):
        return struct.pack(">d", v).hex()
    if pa.types.is_string(typ) or pa.types.is_large_string(typ):
        return "T" + v.encode("utf-8").hex()
    if pa.types.is_boolean(typ):
        return "true" if v else "false"
    if isinstance(v, uuid.UUID):
        return v.hex
    if isinstance(v, bytes):
        return v.hex()
    return str(v)
cols = {}
for f in t.schema:
    c = t.column(f.name)
    if pa.types.is_timestamp(f.type):
        c = c.cast(pa.int64())
    cols[f.name] = c.to_pylist()
for i in range(t.num_rows):
    print("|".join(enc(f.type, cols[f.name][i]) for f in t.schema))
"#;

struct Setup {
    cluster: PgCluster,
    dir: tempfile::TempDir,
}

impl Setup {
    fn new() -> Setup {
        let cluster = PgCluster::start().unwrap_or_else(|e| panic!("starting PostgreSQL: {e}"));
        for db in ["src", "dst"] {
            cluster
                .create_database(db)
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let s = Setup { cluster, dir };
        s.sql("src", SOURCE);
        s
    }

    fn sql(&self, db: &str, sql: &str) -> String {
        self.cluster
            .psql(db, sql)
            .unwrap_or_else(|e| panic!("{e}\nquery: {sql}"))
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn plan(&self, name: &str, text: &str) -> String {
        let p = self.path(name);
        let text = text
            .replace("@SRC@", &self.cluster.url("src"))
            .replace("@DST@", &self.cluster.url("dst"));
        std::fs::write(&p, text).unwrap_or_else(|e| panic!("{e}"));
        p.to_string_lossy().into_owned()
    }

    fn tsmigrate(&self, args: &[&str]) -> Output {
        run_tsmigrate(self.dir.path(), args, &[])
    }

    /// The canonical rows of a table, sorted.
    fn rows(&self, db: &str, table: &str) -> Vec<String> {
        let mut rows: Vec<String> = self
            .sql(db, &format!("SELECT {PG_ROW} FROM {table}"))
            .lines()
            .map(str::to_string)
            .collect();
        rows.sort();
        rows
    }
}

/// pyarrow's reading of a Parquet directory: its schema line and canonical rows, sorted.
fn pyarrow_rows(dir: &Path) -> (String, Vec<String>) {
    let out = run(Command::new("python3").arg("-c").arg(PYARROW_ROWS).arg(dir));
    let mut lines = out.lines().map(str::to_string);
    let schema = lines.next().unwrap_or_default();
    let mut rows: Vec<String> = lines.collect();
    rows.sort();
    (schema, rows)
}

fn assert_rows(what: &str, expected: &[String], actual: &[String]) {
    assert_same_rows(what, &expected.join("\n"), &actual.join("\n"));
}

const TO_PARQUET: &str = r#"
[source]
kind = "postgres"
url = "@SRC@"

[target]
kind = "parquet"
path = "archive"
row_group_rows = 1000

[[streams]]
name = "readings"
from = "public.readings"
table = "readings"
"#;

const FROM_PARQUET: &str = r#"
[source]
kind = "parquet"
path = "archive"

[target]
kind = "postgres"
url = "@DST@"

[[streams]]
name = "readings"
from = "readings"
table = "readings"
create = true
"#;

#[test]
fn postgres_to_parquet_is_read_by_pyarrow_exactly_and_comes_back_equal() {
    let s = Setup::new();
    let source = s.rows("src", "readings");
    assert_eq!(source.len(), 9013);

    let plan = s.plan("to-parquet.toml", TO_PARQUET);
    // `check` changes nothing: not even the directory is made.
    let o = s.tsmigrate(&["check", &plan]);
    assert_exit(&o, 0);
    assert!(
        !s.path("archive").exists(),
        "check created the target directory"
    );
    let o = s.tsmigrate(&["run", &plan, "--partition-rows", "4000", "-j", "2"]);
    assert_exit(&o, 0);
    let files: Vec<String> = std::fs::read_dir(s.path("archive/readings"))
        .unwrap_or_else(|e| panic!("{e}"))
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    assert!(
        files.len() >= 2
            && files
                .iter()
                .all(|f| f.starts_with("part-") && f.ends_with(".parquet")),
        "one file per partition, no temporaries: {files:?}"
    );

    // pyarrow reads every value as PostgreSQL holds it, with the types Parquet readers expect.
    let (schema, rows) = pyarrow_rows(&s.path("archive/readings"));
    for want in [
        "id:int64",
        "small:int16",
        "i4:int32",
        "i8:int64",
        "r:float",
        "d:double",
        "n:string",
        "t:string",
        "ts:timestamp[us, tz=UTC]",
        "b:bool",
        "bin:binary",
    ] {
        assert!(schema.split(';').any(|f| f == want), "{want} in {schema}");
    }
    assert!(
        schema.contains("j:extension<arrow.json") || schema.contains("j:string"),
        "{schema}"
    );
    assert!(
        schema.contains("u:extension<arrow.uuid") || schema.contains("u:fixed_size_binary[16]"),
        "{schema}"
    );
    assert_rows("PostgreSQL → Parquet (pyarrow)", &source, &rows);

    let o = s.tsmigrate(&["verify", &plan]);
    assert_exit(&o, 0);

    // Parquet → PostgreSQL: a created table of the same types, every value equal.
    let back = s.plan("from-parquet.toml", FROM_PARQUET);
    let o = s.tsmigrate(&["run", &back]);
    assert_exit(&o, 0);
    let types = s.sql(
        "dst",
        "SELECT string_agg(format_type(atttypid, atttypmod), ', ' ORDER BY attnum) FROM pg_attribute \
         WHERE attrelid = 'readings'::regclass AND attnum > 0 AND NOT attisdropped",
    );
    assert_eq!(
        types.trim(),
        "bigint, smallint, integer, bigint, real, double precision, numeric, text, jsonb, timestamp with time zone, boolean, uuid, bytea"
    );
    assert_rows("Parquet → PostgreSQL", &source, &s.rows("dst", "readings"));
    let o = s.tsmigrate(&["verify", &back]);
    assert_exit(&o, 0);

    // A changed file is found by verify.
    s.sql("dst", "UPDATE readings SET d = d + 1 WHERE id = 5");
    let o = s.tsmigrate(&["verify", &back]);
    assert_exit(&o, 4);

    // Running again writes nothing new: the ledger has every partition.
    let before = files.len();
    let o = s.tsmigrate(&["run", &plan]);
    assert_exit(&o, 0);
    let (_, again) = pyarrow_rows(&s.path("archive/readings"));
    assert_eq!(again.len(), source.len());
    assert_eq!(
        std::fs::read_dir(s.path("archive/readings"))
            .map(|d| d.count())
            .unwrap_or(0),
        before
    );
    // A file target is rolled back by deleting its files, which tsmigrate says, deleting none.
    let o = s.tsmigrate(&["rollback", &plan, "--run", "1", "--yes"]);
    assert_ne!(o.status.code(), Some(0));
    assert!(
        text(&o).contains("rolled back by deleting them"),
        "{}",
        text(&o)
    );
    assert_eq!(
        pyarrow_rows(&s.path("archive/readings")).1.len(),
        source.len()
    );
}

#[test]
fn postgres_to_csv_and_back_keeps_every_value_and_bad_lines_are_rejected() {
    let s = Setup::new();
    let source = s.rows("src", "readings");
    let plan = s.plan(
        "to-csv.toml",
        &TO_PARQUET
            .replace("kind = \"parquet\"", "kind = \"csv\"")
            .replace("row_group_rows = 1000\n", "")
            .replace("path = \"archive\"", "path = \"csv\""),
    );
    let o = s.tsmigrate(&["run", &plan, "--partition-rows", "4000"]);
    assert_exit(&o, 0);
    let o = s.tsmigrate(&["verify", &plan]);
    assert_exit(&o, 0);

    // CSV holds text: back into a table of the source's types, every value converts exactly.
    s.sql(
        "dst",
        "CREATE TABLE readings (id bigint, small smallint, i4 integer, i8 bigint, r real, d double precision, n numeric, \
         t text, j jsonb, ts timestamptz, b boolean, u uuid, bin bytea)",
    );
    let back = s.plan(
        "from-csv.toml",
        &FROM_PARQUET
            .replace("kind = \"parquet\"", "kind = \"csv\"")
            .replace(
                "path = \"archive\"",
                "path = \"csv\"\ntypes = { bin = \"bytea\" }",
            )
            .replace("create = true\n", ""),
    );
    let o = s.tsmigrate(&["run", &back]);
    assert_exit(&o, 0);
    assert_rows("CSV → PostgreSQL", &source, &s.rows("dst", "readings"));

    // A hand-made CSV with broken lines: each one is a reject with its file and line.
    std::fs::create_dir_all(s.path("hand")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(
        s.path("hand/points.csv"),
        "ts,value,note\n\
         2025-01-01T00:00:00Z,1.5,\"plain\"\n\
         2025-01-01T00:00:01Z,2.5\n\
         yesterday,3.5,x\n\
         2025-01-01T00:00:03Z,not a number,\"a, \"\"quoted\"\"\nnote\"\n\
         2025-01-01T00:00:04Z,,\"\"\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let hand = s.plan(
        "hand.toml",
        r#"
[source]
kind = "csv"
path = "hand"
types = { ts = "timestamptz", value = "float8" }

[target]
kind = "postgres"
url = "@DST@"

[run]
max_rejects = 10

[[streams]]
name = "points"
table = "hand_points"
create = true
"#,
    );
    let o = s.tsmigrate(&["run", &hand]);
    assert_exit(&o, 0);
    let got = s.sql(
        "dst",
        "SELECT concat_ws('|', extract(epoch from ts)::bigint, coalesce(value::text, 'N'), coalesce('T' || note, 'N')) FROM hand_points ORDER BY ts",
    );
    assert_eq!(got.trim(), "1735689600|1.5|Tplain\n1735689604|N|T");
    let rejects = std::fs::read_to_string(s.path("points.rejects.csv")).unwrap_or_default();
    for want in [
        "points.csv, line 3: 2 field(s), the header has 3",
        "points.csv, line 4, column `ts`",
        "points.csv, line 5, column `value`",
    ] {
        assert!(
            rejects.contains(want),
            "{want} in the rejects:\n{rejects}\n{}",
            text(&o)
        );
    }
}

#[test]
fn file_targets_refuse_what_they_cannot_do() {
    let s = Setup::new();
    let plan = s.plan(
        "skip.toml",
        &format!("{TO_PARQUET}write = \"skip\"\nkey = [\"id\"]\n"),
    );
    let o = s.tsmigrate(&["run", &plan]);
    assert_exit(&o, 2);
    assert!(text(&o).contains("only appends"), "{}", text(&o));

    let plan = s.plan(
        "codec.toml",
        &TO_PARQUET.replace("row_group_rows = 1000", "compression = \"lzma\""),
    );
    let o = s.tsmigrate(&["check", &plan]);
    assert_exit(&o, 2);
    assert!(
        text(&o).contains("\"zstd\" (default), \"snappy\" or \"none\""),
        "{}",
        text(&o)
    );

    // A directory that holds files this plan's ledger did not write is refused.
    let plan = s.plan("to-parquet.toml", TO_PARQUET);
    std::fs::create_dir_all(s.path("archive/readings")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(s.path("archive/readings/other.parquet"), b"x")
        .unwrap_or_else(|e| panic!("{e}"));
    let o = s.tsmigrate(&["run", &plan]);
    assert_exit(&o, 2);
    assert!(text(&o).contains("already holds files"), "{}", text(&o));
}

/// The example plan on the example's source database: both tables archived, pyarrow reads
/// every row as PostgreSQL holds it, and `verify` agrees.
#[test]
fn the_parquet_example_archives_the_factory_database() {
    let cluster = PgCluster::start().unwrap_or_else(|e| panic!("starting PostgreSQL: {e}"));
    cluster
        .create_database("factory")
        .unwrap_or_else(|e| panic!("{e}"));
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let script = std::fs::read_to_string(repo.join("examples/data/factory-metrics.sql"))
        .unwrap_or_else(|e| panic!("{e}"));
    cluster
        .psql(
            "factory",
            &format!("\\set days 1\n\\set metrics 6\n{script}"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let plan = repo.join("examples/postgres-to-parquet.toml");
    let plan = plan.to_string_lossy();
    let url = cluster.url("factory");
    let env = [("SOURCE_URL", url.as_str())];
    let o = run_tsmigrate(dir.path(), &["run", &plan, "--report", "r.json"], &env);
    assert_exit(&o, 0);
    let sql = |q: &str| {
        let mut rows: Vec<String> = cluster
            .psql("factory", q)
            .unwrap_or_else(|e| panic!("{e}"))
            .lines()
            .map(str::to_string)
            .collect();
        rows.sort();
        rows
    };
    let hist = sql(
        "SELECT concat_ws('|', 'T' || encode(convert_to(replace(metric_def_id::text, '-', ''), 'UTF8'), 'hex'), \
         ((extract(epoch from ts) * 1000000)::numeric(30,0))::text, coalesce(encode(float8send(value_real), 'hex'), 'N'), \
         coalesce(value_int::text, 'N'), coalesce('T' || encode(convert_to(value_text, 'UTF8'), 'hex'), 'N'), quality) \
         FROM metric_hist",
    );
    assert!(hist.len() > 40_000, "{} rows", hist.len());
    let (schema, rows) = pyarrow_rows(&dir.path().join("archive/metric_hist"));
    assert!(
        schema.contains("metric_def_id:extension<arrow.uuid>")
            || schema.contains("metric_def_id:fixed_size_binary[16]"),
        "{schema}"
    );
    // The uuid's hex, as the canonical row writes it (T + hex of its text without dashes).
    let rows: Vec<String> = rows
        .into_iter()
        .map(|r| match r.split_once('|') {
            Some((id, rest)) => format!(
                "T{}|{rest}",
                id.bytes().map(|b| format!("{b:02x}")).collect::<String>()
            ),
            None => r,
        })
        .collect();
    let mut rows = rows;
    rows.sort();
    assert_rows("metric_hist → Parquet (pyarrow)", &hist, &rows);
    let (_, defs) = pyarrow_rows(&dir.path().join("archive/metric_def"));
    assert_eq!(defs.len(), 6);
    let o = run_tsmigrate(dir.path(), &["verify", &plan], &env);
    assert_exit(&o, 0);
}

/// kill -9 in the middle of writing a Parquet archive, then the same command again: the
/// directory never holds a partial file, the ledger knows every renamed file, and the resumed
/// run ends with every row exactly once (count, distinct ids and their sum, read by pyarrow).
#[test]
fn kill_9_mid_archive_then_resume_writes_every_row_once() {
    use std::os::unix::process::ExitStatusExt;
    use std::time::{Duration, Instant};

    const FILES: u64 = 20;
    const ROWS: u64 = 40_000;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let d = dir.path();
    run(Command::new("python3").arg("-c").arg(format!(
        "import os\nos.makedirs('{0}/in/readings')\nfor f in range({FILES}):\n    with open(f'{0}/in/readings/r{{f:02}}.csv', 'w') as out:\n        out.write('id,at,value,note\\n')\n        out.writelines(f'{{f * {ROWS} + i}},2025-01-01T00:00:{{i % 60:02}}Z,{{i / 7}},\"n,{{i}}\"\\n' for i in range({ROWS}))\n",
        d.display()
    )));
    std::fs::write(
        d.join("plan.toml"),
        "[source]\nkind = \"csv\"\npath = \"in\"\ntypes = { id = \"bigint\", at = \"timestamptz\", value = \"float8\" }\n\
         [target]\nkind = \"parquet\"\npath = \"out\"\nrow_group_rows = 20000\ncompression = \"snappy\"\n\
         [run]\njobs = 1\n\
         [[streams]]\nname = \"readings\"\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let files_in = |what: &str| -> Vec<String> {
        std::fs::read_dir(d.join("out/readings"))
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.ends_with(what))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut child = Command::new(env!("CARGO_BIN_EXE_tsmigrate"))
        .args(["run", "plan.toml", "--progress", "off"])
        .current_dir(d)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let start = Instant::now();
    while files_in(".parquet").len() < 3 {
        assert!(
            child.try_wait().ok().flatten().is_none(),
            "tsmigrate ended before it could be killed"
        );
        assert!(start.elapsed() < Duration::from_secs(120), "no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        child.try_wait().ok().flatten().is_none(),
        "tsmigrate ended before it could be killed"
    );
    child.kill().unwrap_or_else(|e| panic!("{e}"));
    let status = child.wait().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(status.signal(), Some(9));

    let written = files_in(".parquet").len() as u64;
    assert!((3..FILES).contains(&written), "{written} files");
    let done: u64 = sqlite(
        &d.join("out/_tsmigrate_ledger.sqlite"),
        "SELECT count(*) FROM tsmigrate_partitions WHERE state = 'done'",
    )
    .trim()
    .parse()
    .unwrap_or(u64::MAX);
    // The kill may land between a file's rename and its ledger entry (one partition at a time).
    assert!(
        done == written || done + 1 == written,
        "{done} done, {written} files"
    );

    let out = run_tsmigrate(d, &["run", "plan.toml", "--progress", "off"], &[]);
    assert_exit(&out, 0);
    assert!(
        text(&out).to_lowercase().contains("resum"),
        "{}",
        text(&out)
    );
    assert_eq!(files_in(".parquet").len() as u64, FILES);
    assert!(files_in(".tmp").is_empty(), "temporaries left");
    let n = FILES * ROWS;
    let got = run(Command::new("python3").arg("-c").arg(
        "import sys, pyarrow.parquet as pq, pyarrow.compute as pc\n\
         t = pq.read_table(sys.argv[1])\n\
         print(t.num_rows, pc.count_distinct(t['id']).as_py(), pc.sum(t['id']).as_py(), t.schema.field('at').type)",
    ).arg(d.join("out/readings")));
    assert_eq!(
        got.trim(),
        format!("{n} {n} {} timestamp[us, tz=UTC]", n * (n - 1) / 2)
    );
}

/// Parquet written by another tool (pyarrow) with the types tsmigrate does not write itself —
/// DECIMAL (in INT32, INT64 and fixed bytes), DATE, INT8, UINT32, UINT64, nanosecond and
/// second timestamps (which Parquet holds as milliseconds), dictionary-encoded strings, a NULL
/// in every column — is read with each value exact (into SQLite, no server needed); a nested
/// column is refused by name.
#[test]
fn parquet_from_other_writers_is_read_exactly() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let d = dir.path();
    run(Command::new("python3").arg("-c").arg(
        r#"
import datetime as dt, decimal as de, os, sys
import pyarrow as pa, pyarrow.parquet as pq
D = de.Decimal
t = pa.table({
    "id": pa.array([1, 2, 3], pa.int8()),
    "d9": pa.array([D("-1234.5678"), D("0.0001"), None], pa.decimal128(9, 4)),
    "d18": pa.array([D("123456789012.345678"), None, D("-0.000001")], pa.decimal128(18, 6)),
    "d38": pa.array([D("12345678901234567890123456789.123456789"), D("-1"), None], pa.decimal128(38, 9)),
    "day": pa.array([dt.date(2025, 1, 31), None, dt.date(1969, 12, 31)], pa.date32()),
    "u32": pa.array([4294967295, 0, None], pa.uint32()),
    "u64": pa.array([18446744073709551615, None, 7], pa.uint64()),
    "ns": pa.array([1700000000123456789, -1, None], pa.timestamp("ns", tz="UTC")),
    "s": pa.array([1700000000, None, 0], pa.timestamp("s")),
    "cat": pa.array(["a", "b", None]).dictionary_encode(),
})
os.makedirs(sys.argv[1] + "/in/others")
pq.write_table(t, sys.argv[1] + "/in/others/x.parquet", use_dictionary=True)
nested = pa.table({"id": [1], "tags": pa.array([["a", "b"]])})
os.makedirs(sys.argv[1] + "/in/nested")
pq.write_table(nested, sys.argv[1] + "/in/nested/y.parquet")
"#,
    ).arg(d));
    std::fs::write(
        d.join("plan.toml"),
        "[source]\nkind = \"parquet\"\npath = \"in\"\n\
         [target]\nkind = \"sqlite\"\npath = \"out.db\"\n\
         [[streams]]\nname = \"others\"\ncreate = true\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let o = run_tsmigrate(d, &["run", "plan.toml"], &[]);
    assert_exit(&o, 0);
    let got = sqlite(
        &d.join("out.db"),
        "SELECT id, quote(d9), quote(d18), quote(d38), quote(day), quote(u32), quote(u64), quote(ns), quote(s), quote(cat) FROM others ORDER BY id",
    );
    assert_eq!(
        got.trim(),
        "1|'-1234.5678'|'123456789012.345678'|'12345678901234567890123456789.123456789'|'2025-01-31T00:00:00Z'|4294967295|'18446744073709551615'|'2023-11-14T22:13:20.123456789Z'|'2023-11-14T22:13:20.000Z'|'a'\n\
         2|'0.0001'|NULL|'-1.000000000'|NULL|0|NULL|'1969-12-31T23:59:59.999999999Z'|NULL|'b'\n\
         3|NULL|'-0.000001'|NULL|'1969-12-31T00:00:00Z'|NULL|'7'|NULL|'1970-01-01T00:00:00.000Z'|NULL",
        "{}",
        text(&o)
    );
    std::fs::write(
        d.join("nested.toml"),
        "[source]\nkind = \"parquet\"\npath = \"in\"\n\
         [target]\nkind = \"sqlite\"\npath = \"out.db\"\n\
         [[streams]]\nname = \"nested\"\ncreate = true\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let o = run_tsmigrate(d, &["check", "nested.toml"], &[]);
    assert_ne!(o.status.code(), Some(0));
    assert!(
        text(&o).contains("column `tags.list.element` is nested"),
        "{}",
        text(&o)
    );
}

/// A damaged Parquet file is an error naming the file (and, for damaged pages, the row group
/// and column), never a crash: bytes overwritten in its pages, and a file cut in half.
#[test]
fn damaged_parquet_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let d = dir.path();
    run(Command::new("python3")
        .arg("-c")
        .arg(
            r#"
import os, sys
import pyarrow as pa, pyarrow.parquet as pq
t = pa.table({"id": list(range(100000)), "s": ["x" * 20] * 100000})
for name in ("pages", "cut"):
    os.makedirs(f"{sys.argv[1]}/{name}/t")
pq.write_table(t, sys.argv[1] + "/good.parquet", row_group_size=10000)
b = bytearray(open(sys.argv[1] + "/good.parquet", "rb").read())
for i in range(2000, 6000):
    b[i] = (b[i] * 7 + 13) % 256
open(sys.argv[1] + "/pages/t/x.parquet", "wb").write(bytes(b))
good = open(sys.argv[1] + "/good.parquet", "rb").read()
open(sys.argv[1] + "/cut/t/x.parquet", "wb").write(good[: len(good) // 2])
"#,
        )
        .arg(d));
    for (name, want) in [
        ("pages", "pages/t/x.parquet, row group 0, column `id`"),
        ("cut", "cut/t/x.parquet: malformed data"),
    ] {
        std::fs::write(
            d.join(format!("{name}.toml")),
            format!(
                "[source]\nkind = \"parquet\"\npath = \"{name}\"\n[target]\nkind = \"sqlite\"\npath = \"{name}.db\"\n\
                 [[streams]]\nname = \"t\"\ncreate = true\n"
            ),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let o = run_tsmigrate(d, &["run", &format!("{name}.toml")], &[]);
        assert_exit(&o, 1);
        let t = text(&o);
        assert!(t.contains(want), "{want} in:\n{t}");
        assert!(!t.contains("panicked"), "{t}");
    }
}
