//! IoTDB CSV exports as a source (`[source] kind = "iotdb"`), end to end with the real binary.
//!
//! No IoTDB server can be installed here. The exports come from three places:
//! - `tests/data/iotdb/`: files printed by the real Apache Commons CSV 1.10.0 through a harness
//!   that follows IoTDB's row-building code (its README says which file and lines each rule
//!   follows); each is read by tsmigrate and by `tests/iotdb/import_reader.py`, a re-reading of
//!   IoTDB's own import tool, and the two readings must be equal point for point;
//! - `examples/data/make-iotdb-export.py`, which prints a larger export the same way (with its
//!   truth file), read the same two ways, and migrated by the example plan;
//! - small files written here, in the exporter's dialect (one line per record, CRLF, `\,`
//!   `\\` `\r` `\n` escapes, TEXT wrapped in one `"` each side with inner quotes raw), for
//!   each case on its own: the issue's four lines, both layouts, and every way a line or a
//!   value is rejected (with file and line).
//!
//! The upstream facts each case follows are cited at the case: the release and the IoTDB file
//! (paths as in the fact sheet of the export tools, e.g. v1.3.0 `ExportCsv.java`).

mod common;

#[path = "iotdb/points.rs"]
mod points;

use std::path::{Path, PathBuf};

use common::*;

/// Aligned by time, typed header (`-datatype true`, v1.3.0 `ExportCsv.java` L346-356), ISO
/// times with an offset (`RpcUtils.parseLongToDateWithPrecision`), TEXT wrapped with inner
/// quotes raw and `,` `\` LF escaped (v1.3.0 `ExportCsv.java` L382-403 printing through
/// `AbstractCsvTool.java` L245-254); split into three files, each with the header (v1.3.0
/// L375-412). Every line ends in CRLF.
const BY_TIME_0: &str = "Time,root.factory.plant1.pump3.pressure(DOUBLE),root.factory.plant1.pump3.running(BOOLEAN),root.factory.plant1.pump3.note(TEXT)\r\n\
1970-01-01T08:00:00.001+08:00,1.5,true,\"plain\"\r\n\
2024-03-01T12:00:00.000+01:00,NaN,false,\"a\\, b \"c\" \\\\ d\"\r\n";
const BY_TIME_1: &str = "Time,root.factory.plant1.pump3.pressure(DOUBLE),root.factory.plant1.pump3.running(BOOLEAN),root.factory.plant1.pump3.note(TEXT)\r\n\
2024-03-01T12:00:01.000+01:00,-Infinity,,\"two\\nlines\"\r\n\
2024-03-01T12:00:02.000+01:00,not-a-number,true,\r\n\
2024-03-01T12:00:03.000+01:00,2.25\r\n";
const BY_TIME_10: &str = "Time,root.factory.plant1.pump3.pressure(DOUBLE),root.factory.plant1.pump3.running(BOOLEAN),root.factory.plant1.pump3.note(TEXT)\r\n\
yesterday,1.0,true,\"x\"\r\n\
2024-03-01T12:00:04.000+01:00,1.0E300,true,\"\"\r\n";

/// Aligned by device (`Time,Device,…`), untyped header (the real default: `-datatype` reads as
/// false unless given, v0.13.4 `ExportCsv.java` L180-185), integer ms times (`-tf timestamp`,
/// v1.3.0 `ExportCsv.java` L356-369), Device cells bare as `root.…` values are (v1.3.0
/// L382-403), a backquoted node; the last line has an empty Device.
const BY_DEVICE: &str = "Time,Device,temperature,status,count\r\n\
1709294400000,root.factory.plant2.`tank.7`,21.5,\"OK\",9007199254740993\r\n\
1709294401000,root.factory.plant2.`tank.7`,,\"ALARM: level\\, high\",12\r\n\
1709294399000,root.factory.plant2.tank8,-0.0,root.factory.plant2,\r\n\
1709294402000,,1.0,\"2\",3\r\n";

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn exports_of_both_layouts_become_points_and_bad_lines_become_rejects() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let d = dir.path();
    std::fs::create_dir(d.join("by_time")).unwrap_or_else(|e| panic!("{e}"));
    // Written out of order: files are read in natural order of their names.
    write(&d.join("by_time"), "dump0_10.csv", BY_TIME_10);
    write(&d.join("by_time"), "dump0_0.csv", BY_TIME_0);
    write(&d.join("by_time"), "dump0_1.csv", BY_TIME_1);
    write(&d.join("by_time"), "notes.txt", "not an export");
    write(d, "by_device.csv", BY_DEVICE);
    let plan = |path: &str, extra: &str| {
        format!(
            "[source]\nkind = \"iotdb\"\npath = \"{path}\"\nstrip_prefix = \"root.factory.\"\n{extra}\n\
             [target]\nkind = \"sqlite\"\npath = \"points.db\"\n\
             [run]\nmax_rejects = 10\n\
             [[streams]]\nname = \"points\"\ncreate = true\n"
        )
    };
    write(
        d,
        "time.toml",
        &plan(
            "by_time/dump0_*.csv",
            "devices = { \"plant1.pump3\" = \"Pump 3\" }",
        ),
    );
    let out = run_tsmigrate(d, &["run", "time.toml", "--report", "time.json"], &[]);
    assert_exit(&out, 0);
    let t = text(&out);
    assert!(t.contains("3 row(s) rejected"), "{t}");

    // Every point, in the form SQLite holds it.
    let got = sqlite(
        &d.join("points.db"),
        "SELECT device, measurement, time, data_type, quote(bool_value), quote(int_value), quote(double_value), quote(text_value), replace(file, rtrim(file, replace(file, '/', '')), ''), line \
         FROM points ORDER BY line, file, measurement",
    );
    let expected = [
        "Pump 3|note|1970-01-01T00:00:00.001Z|TEXT|NULL|NULL|NULL|'plain'|dump0_0.csv|2",
        "Pump 3|pressure|1970-01-01T00:00:00.001Z|DOUBLE|NULL|NULL|1.5|NULL|dump0_0.csv|2",
        "Pump 3|running|1970-01-01T00:00:00.001Z|BOOLEAN|1|NULL|NULL|NULL|dump0_0.csv|2",
        "Pump 3|note|2024-03-01T11:00:01.000Z|TEXT|NULL|NULL|NULL|'two\nlines'|dump0_1.csv|2",
        "Pump 3|pressure|2024-03-01T11:00:01.000Z|DOUBLE|NULL|NULL|-Inf|NULL|dump0_1.csv|2",
        "Pump 3|note|2024-03-01T11:00:04.000Z|TEXT|NULL|NULL|NULL|''|dump0_10.csv|3",
        "Pump 3|pressure|2024-03-01T11:00:04.000Z|DOUBLE|NULL|NULL|1.0e+300|NULL|dump0_10.csv|3",
        "Pump 3|running|2024-03-01T11:00:04.000Z|BOOLEAN|1|NULL|NULL|NULL|dump0_10.csv|3",
        "Pump 3|note|2024-03-01T11:00:00.000Z|TEXT|NULL|NULL|NULL|'a, b \"c\" \\ d'|dump0_0.csv|3",
        "Pump 3|pressure|2024-03-01T11:00:00.000Z|DOUBLE|NULL|NULL|'NaN'|NULL|dump0_0.csv|3",
        "Pump 3|running|2024-03-01T11:00:00.000Z|BOOLEAN|0|NULL|NULL|NULL|dump0_0.csv|3",
        "Pump 3|running|2024-03-01T11:00:02.000Z|BOOLEAN|1|NULL|NULL|NULL|dump0_1.csv|3",
    ];
    let mut expected: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
    let mut got_lines: Vec<String> = split_records(&got);
    expected.sort();
    got_lines.sort();
    assert_eq!(got_lines, expected, "\n{got}");

    // The bad value, the short line and the bad time are in the rejects file, with file and
    // line; the rest of their lines and files was read.
    let rejects = std::fs::read_to_string(d.join("points.rejects.csv")).unwrap_or_default();
    assert!(
        rejects.contains(
            "dump0_1.csv, line 3, pressure: \"\"not-a-number\"\" is not a number (DOUBLE)"
        ),
        "{rejects}"
    );
    assert!(
        rejects.contains("dump0_1.csv, line 4: 2 fields where the header has 4"),
        "{rejects}"
    );
    assert!(
        rejects.contains("dump0_10.csv, line 2: time \"\"yesterday\"\" is neither"),
        "{rejects}"
    );
    let report = read_json(&d.join("time.json"));
    assert_eq!(
        report["streams"][0]["rows_rejected"].as_u64(),
        Some(3),
        "{report}"
    );

    // The device layout (a fresh target).
    let _ = std::fs::remove_file(d.join("points.db"));
    let _ = std::fs::remove_file(d.join("points.rejects.csv"));
    write(
        d,
        "device.toml",
        &plan("by_device.csv", "time_unit = \"ms\""),
    );
    let out = run_tsmigrate(d, &["run", "device.toml"], &[]);
    assert_exit(&out, 0);
    let got = sqlite(
        &d.join("points.db"),
        "SELECT device, measurement, time, data_type, quote(int_value), quote(double_value), quote(text_value), line FROM points ORDER BY line, measurement",
    );
    assert_eq!(
        split_records(&got),
        [
            "plant2.tank.7|count|2024-03-01T12:00:00.000Z|INT64|9007199254740993|NULL|NULL|2",
            "plant2.tank.7|status|2024-03-01T12:00:00.000Z|TEXT|NULL|NULL|'OK'|2",
            "plant2.tank.7|temperature|2024-03-01T12:00:00.000Z|DOUBLE|NULL|21.5|NULL|2",
            "plant2.tank.7|count|2024-03-01T12:00:01.000Z|INT64|12|NULL|NULL|3",
            "plant2.tank.7|status|2024-03-01T12:00:01.000Z|TEXT|NULL|NULL|'ALARM: level, high'|3",
            "plant2.tank8|status|2024-03-01T11:59:59.000Z|TEXT|NULL|NULL|'root.factory.plant2'|4",
            "plant2.tank8|temperature|2024-03-01T11:59:59.000Z|DOUBLE|NULL|0.0|NULL|4",
        ],
        "\n{got}"
    );
    let rejects = std::fs::read_to_string(d.join("points.rejects.csv")).unwrap_or_default();
    assert!(
        rejects.contains("by_device.csv, line 5: the Device field is empty"),
        "{rejects}"
    );
}

/// The four lines of issue 23, exactly (CRLF): IoTDB wraps TEXT in one `"` each side without
/// escaping inner quotes, so `end quote"` is printed `"end quote""` and `say "hi", bye<LF>next`
/// is printed `"say "hi"\, bye\nnext"` (v1.3.0 `ExportCsv.java` L382-403; Commons CSV 1.10.0
/// `CSVFormat.printWithEscapes` via `AbstractCsvTool.java` L245-254; fact sheet §3). Every x
/// lands under its own time and every s is its whole value, with nothing rejected.
#[test]
fn the_issues_four_lines_read_every_value_under_its_time() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let d = dir.path();
    write(
        d,
        "dump0_0.csv",
        "Time,root.a.b.s(TEXT),root.a.b.x(DOUBLE)\r\n\
         2024-01-01T00:00:07.123+05:30,\"end quote\"\",1.5\r\n\
         2024-01-01T00:00:08.000+05:30,\"ok\",2.5\r\n\
         2024-01-01T00:00:09.000+05:30,\"say \"hi\"\\, bye\\nnext\",3.5\r\n",
    );
    write(
        d,
        "plan.toml",
        "[source]\nkind = \"iotdb\"\npath = \"dump0_0.csv\"\n\
         [target]\nkind = \"sqlite\"\npath = \"points.db\"\n\
         [[streams]]\nname = \"points\"\ncreate = true\n",
    );
    let out = run_tsmigrate(d, &["run", "plan.toml", "--report", "r.json"], &[]);
    assert_exit(&out, 0);
    let got = sqlite(
        &d.join("points.db"),
        "SELECT measurement, time, data_type, ifnull(double_value, '-'), \
         ifnull(replace(text_value, char(10), '<LF>'), '-'), line FROM points ORDER BY time, measurement",
    );
    assert_eq!(
        got.lines().collect::<Vec<_>>(),
        [
            "s|2023-12-31T18:30:07.123Z|TEXT|-|end quote\"|2",
            "x|2023-12-31T18:30:07.123Z|DOUBLE|1.5|-|2",
            "s|2023-12-31T18:30:08.000Z|TEXT|-|ok|3",
            "x|2023-12-31T18:30:08.000Z|DOUBLE|2.5|-|3",
            "s|2023-12-31T18:30:09.000Z|TEXT|-|say \"hi\", bye<LF>next|4",
            "x|2023-12-31T18:30:09.000Z|DOUBLE|3.5|-|4",
        ],
        "\n{got}"
    );
    assert!(!d.join("points.rejects.csv").exists());
    let report = read_json(&d.join("r.json"));
    assert_eq!(
        report["streams"][0]["rows_rejected"].as_u64(),
        Some(0),
        "{report}"
    );
}

/// Every way a line or a value is not what IoTDB's exporter writes, each rejected with its
/// file and line (a bad value alone, a bad line whole), the rest read:
/// - a lone `"` and a bare TEXT (the exporter wraps every TEXT not starting with `root.`,
///   v1.3.0 `ExportCsv.java` L382-403; IoTDB's importer crashes on a lone `"`, v1.3.0
///   `ImportCsv.java` L967-970);
/// - a line ending in a lone backslash (Commons CSV escapes every `\`, 1.10.0
///   `CSVFormat.printWithEscapes`; the importer's lexer fails at it, `Lexer.readEscape`);
/// - a line one field short, the time-0 row of v0.13.4-v1.3.3 and the 2.0.x tree export
///   (`if (rowRecord.getTimestamp() != 0)`, v1.3.0 `ExportCsv.java` L382; v2.0.5
///   `ExportDataTree.java` L277), and one field too many;
/// - INT32 and FLOAT beyond their range (`Integer.parseInt`, `Float.parseFloat` as the
///   importer's typeTrans; the exporter cannot print them);
/// - a line that is not UTF-8 (a GBK export: `new PrintWriter(path)` writes the JVM's charset,
///   v1.3.0 `ExportCsv.java`; fact sheet §8), a raw CR inside a line (the exporter writes
///   `\r`), an empty Time cell (the exporter leaves the cell out, never empty).
#[test]
fn lines_and_values_the_exporter_cannot_have_written_are_rejected_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let d = dir.path();
    let mut file: Vec<u8> = b"Time,root.sg.d1.s(TEXT),root.sg.d1.n(INT32),root.sg.d1.f(FLOAT)\r\n\
        1700000000000,\"ok\",1,1.5\r\n\
        1700000001000,\",2,2.5\r\n\
        1700000002000,bare,3,3.5\r\n\
        1700000003000,\"a\",4,4.5\\\r\n\
        \"b\",5,5.5\r\n\
        1700000005000,\"c\",6,6.5,extra\r\n\
        1700000006000,\"d\",3000000000,1.0E39\r\n"
        .to_vec();
    file.extend_from_slice(b"1700000007000,\"e\xC4\xE3\",7,7.5\r\n");
    file.extend_from_slice(b"1700000008000,\"f\rg\",8,8.5\r\n,\"g\",9,9.5\r\n");
    file.extend_from_slice(b"1700000010000,root.sg.d2,10,1.0E10\r\n");
    std::fs::write(d.join("dump0_0.csv"), file).unwrap_or_else(|e| panic!("{e}"));
    write(
        d,
        "plan.toml",
        "[source]\nkind = \"iotdb\"\npath = \"dump0_0.csv\"\ntime_unit = \"ms\"\n\
         [target]\nkind = \"sqlite\"\npath = \"points.db\"\n[run]\nmax_rejects = 100\n\
         [[streams]]\nname = \"points\"\ncreate = true\n",
    );
    let out = run_tsmigrate(d, &["run", "plan.toml"], &[]);
    assert_exit(&out, 0);
    let got = sqlite(
        &d.join("points.db"),
        "SELECT line, measurement, data_type, ifnull(int_value, '-'), ifnull(double_value, '-'), \
         ifnull(text_value, '-') FROM points ORDER BY line, measurement",
    );
    assert_eq!(
        got.lines().collect::<Vec<_>>(),
        [
            "2|f|FLOAT|-|1.5|-",
            "2|n|INT32|1|-|-",
            "2|s|TEXT|-|-|ok",
            "3|f|FLOAT|-|2.5|-",
            "3|n|INT32|2|-|-",
            "4|f|FLOAT|-|3.5|-",
            "4|n|INT32|3|-|-",
            "8|s|TEXT|-|-|d",
            "12|f|FLOAT|-|10000000000.0|-",
            "12|n|INT32|10|-|-",
            "12|s|TEXT|-|-|root.sg.d2",
        ],
        "\n{got}"
    );
    let rejects = std::fs::read_to_string(d.join("points.rejects.csv")).unwrap_or_default();
    for reason in [
        "dump0_0.csv, line 3, s: a lone double quote, which IoTDB's exporter does not write",
        "dump0_0.csv, line 4, s: \"\"bare\"\" is not wrapped in double quotes",
        "dump0_0.csv, line 5: the line ends in an escape with nothing after it",
        "dump0_0.csv, line 6: 3 fields where the header has 4: IoTDB's exporter leaves out the Time cell of a row at time 0",
        "dump0_0.csv, line 7: 5 fields where the header has 4",
        "dump0_0.csv, line 8, n: \"\"3000000000\"\" is out of range for INT32",
        "dump0_0.csv, line 8, f: \"\"1.0E39\"\" is out of range for FLOAT",
        "dump0_0.csv, line 9: byte 17 of the line is not UTF-8",
        "dump0_0.csv, line 10: a carriage return at byte 17 inside the line",
        "dump0_0.csv, line 11: the Time cell is empty",
    ] {
        assert!(rejects.contains(reason), "{reason}\nnot in\n{rejects}");
    }
    assert_eq!(
        points::reject_sites(&rejects)
            .into_iter()
            .map(|(_, line)| line)
            .collect::<Vec<_>>(),
        [3, 4, 5, 6, 7, 8, 9, 10, 11]
    );
}

/// One export read twice: by tsmigrate (a run into a CSV target) and by `import_reader.py`.
fn both_readings(
    files: &str,
    unit: &str,
    schema: Option<&Path>,
) -> (points::Reading, points::Reading, String) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let d = dir.path();
    write(
        d,
        "plan.toml",
        &format!(
            "[source]\nkind = \"iotdb\"\npath = \"{files}\"\ntime_unit = \"{unit}\"\n\
             [target]\nkind = \"csv\"\npath = \"out\"\n[run]\nmax_rejects = 1000\n\
             [[streams]]\nname = \"points\"\ncreate = true\n"
        ),
    );
    let out = run_tsmigrate(d, &["run", "plan.toml"], &[]);
    assert_exit(&out, 0);
    let per_second = match unit {
        "ms" => 1_000,
        "us" => 1_000_000,
        _ => 1_000_000_000,
    };
    let ours = points::tsmigrate_reading(
        &d.join("out/points"),
        &d.join("points.rejects.csv"),
        per_second,
    );
    let rejects = std::fs::read_to_string(d.join("points.rejects.csv")).unwrap_or_default();
    let mut paths: Vec<PathBuf> = glob_csv(files);
    paths.sort();
    let theirs = points::python_reading(unit, schema, &paths);
    (ours, theirs, rejects)
}

/// The files `dir/dump0_*.csv` names.
fn glob_csv(pattern: &str) -> Vec<PathBuf> {
    let (dir, _) = pattern.rsplit_once('/').unwrap_or((".", pattern));
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("dump0_") && n.ends_with(".csv"))
        })
        .collect()
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/iotdb")
}

/// The point of `reading` at `file`/`line` for `measurement`.
fn point<'a>(
    reading: &'a points::Reading,
    file: &str,
    line: u64,
    measurement: &str,
) -> &'a points::Point {
    reading
        .points
        .iter()
        .find(|p| p.0 == file && p.1 == line && p.3 == measurement)
        .unwrap_or_else(|| panic!("no point {file}:{line} {measurement}"))
}

/// The exports printed by the real Commons CSV (tests/data/iotdb/README.md: v1.3.0 typed,
/// v1.3.4 STRING/DATE/BLOB/TIMESTAMP with the negative-offset times, v1.3.0 ALIGN BY DEVICE in
/// ns, a v2.0.5 tree export split in two untyped files) read by tsmigrate and by IoTDB's import
/// rules (`import_reader.py`): equal points, equal rejected lines. A few points are checked
/// against what the harness printed, so the two cannot agree on a wrong reading unseen.
#[test]
fn real_printer_exports_read_as_iotdbs_importer_reads_them() {
    let f = fixtures();
    let path = |dir: &str| format!("{}/{dir}/dump0_*.csv", f.display());
    for (dir, unit, schema) in [
        ("v1.3.0-typed", "ms", None),
        ("v1.3.4-new-types", "us", None),
        ("v1.3.0-by-device", "ns", None),
        (
            "v2.0.5-tree-split",
            "ms",
            Some(f.join("v2.0.5-tree-split/timeseries.json")),
        ),
    ] {
        let (ours, theirs, rejects) = both_readings(&path(dir), unit, schema.as_deref());
        assert!(!ours.points.is_empty(), "{dir}");
        assert_eq!(
            ours.rejected, theirs.rejected,
            "{dir}: rejected lines\n{rejects}"
        );
        for (a, b) in ours.points.iter().zip(&theirs.points) {
            assert_eq!(
                a, b,
                "{dir}: tsmigrate (left) and the importer's reading (right)"
            );
        }
        assert_eq!(ours.points.len(), theirs.points.len(), "{dir}");
        match dir {
            "v1.3.0-typed" => {
                // The time-0 row without its Time cell (v1.3.0 ExportCsv.java L382) is refused,
                // saying why.
                assert_eq!(
                    ours.rejected.iter().collect::<Vec<_>>(),
                    [&("dump0_0.csv".to_string(), 26)]
                );
                assert!(rejects.contains("line 26: 6 fields where the header has 7: IoTDB's exporter leaves out the Time cell"), "{rejects}");
                // `end quote"` printed `"end quote""` at 05:30:01.123+05:30.
                let p = point(&ours, "dump0_0.csv", 3, "note");
                assert_eq!(
                    (p.2.as_str(), p.4, p.6.as_str()),
                    ("root.plant.pump,1", 1_717_200_001_123, "text:end quote\"")
                );
                assert_eq!(
                    point(&ours, "dump0_0.csv", 6, "note").6,
                    "text:say \"hi\", bye\nnext"
                );
                assert_eq!(point(&ours, "dump0_0.csv", 17, "note").6, "text:crlf\r\nx");
                // FLOAT 1.1 is the 32-bit float Float.parseFloat gives; DOUBLE 4.9E-324.
                assert_eq!(
                    point(&ours, "dump0_0.csv", 2, "flow").6,
                    format!("double:{:016x}", f64::from(1.1f32).to_bits())
                );
                assert_eq!(
                    point(&ours, "dump0_0.csv", 5, "pressure").6,
                    format!("double:{:016x}", 5e-324f64.to_bits())
                );
            }
            "v1.3.4-new-types" => {
                // `2023-11-14T17:13:20-05:00.123456` is 1700000000123456 µs.
                let p = point(&ours, "dump0_0.csv", 2, "payload");
                assert_eq!(
                    (p.4, p.5.as_str(), p.6.as_str()),
                    (1_700_000_000_123_456, "BLOB", "text:0x0aff")
                );
                assert_eq!(point(&ours, "dump0_0.csv", 3, "day").6, "text:1970-01-01");
                assert_eq!(point(&ours, "dump0_0.csv", 4, "seen").6, "int:-1");
                assert_eq!(point(&ours, "dump0_0.csv", 27, "label").4, 0);
                assert!(ours.rejected.is_empty(), "{rejects}");
            }
            "v1.3.0-by-device" => {
                let p = point(&ours, "dump0_0.csv", 3, "status");
                assert_eq!(
                    (p.2.as_str(), p.4, p.6.as_str()),
                    ("root.site.tank,8", 1_700_000_000_123_456_789, "text:a,b")
                );
            }
            _ => {
                assert_eq!(
                    ours.rejected.iter().collect::<Vec<_>>(),
                    [&("dump0_0.csv".to_string(), 2)]
                );
                let p = point(&ours, "dump0_1.csv", 3, "msg");
                assert_eq!((p.4, p.5.as_str()), (1_704_067_440_000, "TEXT"));
                assert_eq!(
                    p.6,
                    "text:{\"k\": \"v, w\", \"n\": [1, 2.5], \"q\": \"\\\"\"}"
                );
            }
        }
    }
}

/// The example's generator prints as IoTDB does (examples/data/make-iotdb-export.py): its
/// export read by tsmigrate and by IoTDB's import rules gives the same points, and the lines
/// both refuse are those the generator broke (the config that is not JSON is TEXT to both:
/// only the example plan's `::jsonb` refuses it).
#[test]
fn the_generators_export_reads_as_iotdbs_importer_reads_it() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let export = dir.path().join("export");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    run(std::process::Command::new("python3")
        .arg(repo.join("examples/data/make-iotdb-export.py"))
        .arg(&export)
        .arg("300"));
    let (ours, theirs, rejects) =
        both_readings(&format!("{}/dump0_*.csv", export.display()), "ms", None);
    assert_eq!(ours.rejected, theirs.rejected, "\n{rejects}");
    assert_eq!(ours, theirs);
    let broken: Vec<(String, u64)> = std::fs::read_to_string(export.join("truth_rejects.txt"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(f, n)| (f.to_string(), n.parse().unwrap_or(0)))
        .collect();
    let not_refused: Vec<_> = broken
        .iter()
        .filter(|b| !ours.rejected.contains(b))
        .collect();
    assert_eq!(not_refused.len(), 1, "{not_refused:?}");
    let (file, line) = not_refused[0];
    let text = std::fs::read_to_string(export.join(file)).unwrap_or_default();
    let at = text
        .split("\r\n")
        .nth((*line - 1) as usize)
        .unwrap_or_default();
    assert!(at.contains("\"{not json\""), "{file}:{line}: {at}");
    assert!(
        ours.rejected.iter().all(|r| broken.contains(r)),
        "{:?}",
        ours.rejected
    );
}

#[test]
fn bad_times_unknown_units_and_wrong_options_are_explained() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let d = dir.path();
    write(d, "a.csv", "Time,root.sg.d1.s1\n42,1\nsoon,2\n43,3\n");
    let plan = |extra: &str| {
        format!(
            "[source]\nkind = \"iotdb\"\npath = \"a.csv\"\n{extra}\n[target]\nkind = \"sqlite\"\npath = \"p.db\"\n\
             [run]\nmax_rejects = 5\n[[streams]]\nname = \"p\"\nfrom = \"points\"\ncreate = true\n"
        )
    };
    // 42 says nothing about its unit.
    write(d, "p.toml", &plan(""));
    let out = run_tsmigrate(d, &["run", "p.toml"], &[]);
    assert_exit(&out, 2);
    assert!(
        text(&out).contains("does not tell its unit; set [source] time_unit"),
        "{}",
        text(&out)
    );
    write(d, "p.toml", &plan("time_unit = \"ms\""));
    let out = run_tsmigrate(d, &["run", "p.toml"], &[]);
    assert_exit(&out, 0);
    // The two good lines, at 42 and 43 ms, read as the integers they hold.
    assert_eq!(
        sqlite(
            &d.join("p.db"),
            "SELECT device, measurement, time, data_type, int_value, line FROM p ORDER BY line"
        )
        .trim(),
        "root.sg.d1|s1|1970-01-01T00:00:00.042Z|INT64|1|2\nroot.sg.d1|s1|1970-01-01T00:00:00.043Z|INT64|3|4"
    );
    let rejects = std::fs::read_to_string(d.join("p.rejects.csv")).unwrap_or_default();
    assert!(
        rejects.contains(
            "a.csv, line 3: time \"\"soon\"\" is neither an integer nor an ISO-8601 time"
        ),
        "{rejects}"
    );
    // max_rejects = 0 stops at the first bad line, with exit 3.
    let _ = std::fs::remove_file(d.join("p.db"));
    write(
        d,
        "p.toml",
        &plan("time_unit = \"ms\"").replace("max_rejects = 5", "max_rejects = 0"),
    );
    assert_exit(&run_tsmigrate(d, &["run", "p.toml"], &[]), 3);
    for (extra, says) in [
        ("url = \"x\"", "give path"),
        ("colour = \"red\"", "has no option `colour`"),
        (
            "time_unit = \"fortnights\"",
            "[source] time_unit = \"fortnights\": use",
        ),
    ] {
        write(d, "p.toml", &plan(extra));
        let out = run_tsmigrate(d, &["check", "p.toml"], &[]);
        assert_exit(&out, 2);
        assert!(text(&out).contains(says), "{extra}: {}", text(&out));
    }
    write(
        d,
        "p.toml",
        &plan("time_unit = \"ms\"").replace("from = \"points\"", "from = \"root.sg.d1\""),
    );
    let out = run_tsmigrate(d, &["check", "p.toml"], &[]);
    assert_exit(&out, 2);
    assert!(
        text(&out).contains("read as one stream, `points`"),
        "{}",
        text(&out)
    );
}

/// sqlite3's output split into records: a record continues on the next line when its text
/// holds a newline (the expected rows write it as `\n`).
fn split_records(out: &str) -> Vec<String> {
    let mut recs: Vec<String> = Vec::new();
    for line in out.lines() {
        // A record starts with a device name; continuation lines do not hold 7 separators.
        if line.matches('|').count() >= 6 || recs.is_empty() {
            recs.push(line.to_string());
        } else if let Some(last) = recs.last_mut() {
            last.push('\n');
            last.push_str(line);
        }
    }
    recs
}

/// The example plan on the example's generated export (600 lines × 28 series, printed as
/// IoTDB's exporter prints, split in three files and the header-only one 1.x adds): every point
/// lands in `telemetry_data` in the column of its type, equal to what the generator wrote
/// (`truth.csv`), `verify` agrees, and each broken line or value is in the rejects file.
#[test]
fn the_example_lands_every_value_in_its_typed_column() {
    let cluster = tsmigrate_testkit::PgCluster::start().unwrap_or_else(|e| panic!("{e}"));
    cluster
        .create_database("iiot")
        .unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let d = dir.path();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let export = d.join("export");
    run(std::process::Command::new("python3")
        .arg(repo.join("examples/data/make-iotdb-export.py"))
        .arg(&export)
        .arg("600"));
    let plan = std::fs::read_to_string(repo.join("examples/iotdb-to-postgres.toml"))
        .unwrap_or_default()
        .replace(
            "examples/data/iotdb/dump0_*.csv",
            &format!("{}/dump0_*.csv", export.display()),
        )
        .replace(
            "\"examples/sql/",
            &format!("\"{}/examples/sql/", repo.display()),
        );
    write(d, "plan.toml", &plan);
    let url = cluster.url("iiot");
    let env = [("TARGET_URL", url.as_str())];
    let sql = |q: &str| {
        cluster
            .psql("iiot", q)
            .unwrap_or_else(|e| panic!("{e}\n{q}"))
    };
    // One device is there before the migration, with an id of its own: its points must get
    // that id; the other three are added by the lookup.
    let schema =
        std::fs::read_to_string(repo.join("examples/sql/iiot/001_schema.sql")).unwrap_or_default();
    sql(&schema);
    sql("INSERT INTO devices (id, name) VALUES (100, 'plant1.pump1')");
    let out = run_tsmigrate(d, &["run", "plan.toml", "--report", "r.json"], &env);
    assert_exit(&out, 0);
    assert_eq!(
        sql("SELECT string_agg(name || '=' || (id = 100)::text, ',' ORDER BY name) FROM devices")
            .trim(),
        "plant1.pump.3=false,plant1.pump1=true,plant1.pump2=false,plant2.tank7=false"
    );
    // The `after` file's indexes exist.
    assert_eq!(
        sql("SELECT count(*) FROM pg_indexes WHERE tablename = 'telemetry_data'").trim(),
        "2"
    );

    // What the generator meant, loaded beside the target (device ids back to names through
    // `devices`), compared both ways.
    let truth = export.join("truth.csv");
    sql("CREATE VIEW landed AS SELECT d.name AS device_id, t.\"timestamp\", t.measurement_name, t.numeric_value, \
         t.text_value, t.boolean_value, t.json_value FROM telemetry_data t JOIN devices d ON d.id = t.device_id");
    sql(&format!(
        "CREATE TABLE truth (device_id text, \"timestamp\" timestamptz, measurement_name text, numeric_value float8, \
         text_value text, boolean_value boolean, json_value jsonb);
         \\copy truth FROM '{}' (FORMAT csv)",
        truth.display()
    ));
    let cols = "device_id, \"timestamp\", measurement_name, numeric_value, text_value, boolean_value, json_value";
    let n: u64 = sql("SELECT count(*) FROM truth")
        .trim()
        .parse()
        .unwrap_or(0);
    assert!(n > 15_000, "{n} points");
    for (a, b) in [("truth", "landed"), ("landed", "truth")] {
        let diff = sql(&format!(
            "SELECT count(*) FROM (SELECT {cols} FROM {a} EXCEPT ALL SELECT {cols} FROM {b}) x"
        ));
        assert_eq!(diff.trim(), "0", "rows of {a} not in {b}");
    }
    assert_eq!(
        sql("SELECT count(*) FROM telemetry_data").trim(),
        n.to_string()
    );
    // The nasty ones made it, typed.
    for (q, want) in [
        ("SELECT count(*) > 0 FROM telemetry_data WHERE text_value = '9007199254740995'", "t"),
        ("SELECT count(*) > 0 FROM telemetry_data WHERE numeric_value = 'NaN'", "t"),
        ("SELECT count(*) > 0 FROM telemetry_data WHERE text_value = E'two\\nlines'", "t"),
        ("SELECT count(*) > 0 FROM telemetry_data WHERE text_value = 'ALARM: \"overload\", E-17'", "t"),
        // Quotes where an RFC 4180 reader would take them for quoting (issue 23).
        ("SELECT count(*) > 0 FROM telemetry_data WHERE text_value = 'end quote\"'", "t"),
        ("SELECT count(*) > 0 FROM telemetry_data WHERE text_value = E'say \"hi\", bye\\nnext'", "t"),
        ("SELECT count(*) > 0 FROM telemetry_data WHERE text_value = '\"'", "t"),
        ("SELECT count(*) > 0 FROM telemetry_data WHERE text_value = E'crlf\\r\\nx'", "t"),
        ("SELECT count(*) > 0 FROM telemetry_data WHERE text_value = 'root.not.a.device'", "t"),
        ("SELECT count(*) > 0 FROM telemetry_data WHERE json_value->>'note' = 'a \"quoted\", word'", "t"),
        ("SELECT count(*) > 0 FROM telemetry_data WHERE json_value ? 'setpoint'", "t"),
        ("SELECT count(DISTINCT device_id) FROM telemetry_data", "4"),
    ] {
        assert_eq!(sql(q).trim(), want, "{q}");
    }
    let out = run_tsmigrate(d, &["verify", "plan.toml"], &env);
    assert_exit(&out, 0);

    // Each line the generator broke is in the rejects file, with its file and line.
    let rejects = std::fs::read_to_string(d.join("telemetry_data.rejects.csv")).unwrap_or_default();
    let expected = std::fs::read_to_string(export.join("truth_rejects.txt")).unwrap_or_default();
    assert_eq!(expected.lines().count(), 4);
    for at in expected.lines() {
        let (file, line) = at.split_once(':').unwrap_or(("", ""));
        let named = rejects.contains(&format!("{file}, line {line}"))
            || rejects
                .lines()
                .any(|r| r.contains(file) && r.contains(&format!("\"\"line\"\":{line},")));
        assert!(named, "{at} not in the rejects:\n{rejects}");
    }
    let report = read_json(&d.join("r.json"));
    assert_eq!(
        report["streams"][0]["rows_rejected"].as_u64(),
        Some(4),
        "{report}"
    );
}

/// A lookup that does not create: points of a device `devices` has get its id (a uuid here),
/// points of a device it lacks are rejected naming the device and the table, and nothing is
/// added to `devices`; `verify` compares ids with ids. A lookup table that is missing, or a
/// target that cannot look up, is refused before anything is written.
#[test]
fn a_lookup_without_create_rejects_unknown_devices() {
    let cluster = tsmigrate_testkit::PgCluster::start().unwrap_or_else(|e| panic!("{e}"));
    cluster
        .create_database("iiot")
        .unwrap_or_else(|e| panic!("{e}"));
    let sql = |q: &str| {
        cluster
            .psql("iiot", q)
            .unwrap_or_else(|e| panic!("{e}\n{q}"))
    };
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let d = dir.path();
    write(d, "by_device.csv", BY_DEVICE);
    let plan = |create: bool| {
        format!(
            "[source]\nkind = \"iotdb\"\npath = \"by_device.csv\"\nstrip_prefix = \"root.factory.\"\ntime_unit = \"ms\"\n\
             [target]\nkind = \"postgres\"\nurl = \"${{TARGET_URL}}\"\n\
             [run]\nmax_rejects = 10\n\
             [[streams]]\nname = \"points\"\nkey = [\"device_id\", \"time\", \"measurement\"]\n\
             columns = [{{ name = \"device_id\", type = \"uuid\", expr = \"device\" }}, {{ name = \"time\" }}, {{ name = \"measurement\" }}, {{ name = \"double_value\" }}]\n\
             [streams.lookup.device_id]\ntable = \"registry.devices\"\nmatch = \"name\"\nvalue = \"id\"\ncreate = {create}\n"
        )
    };
    write(d, "plan.toml", &plan(false));
    let url = cluster.url("iiot");
    let env = [("TARGET_URL", url.as_str())];

    // No lookup table yet: check and run say which table is missing.
    sql("CREATE TABLE points (device_id uuid, \"time\" timestamptz, measurement text, double_value float8)");
    let out = run_tsmigrate(d, &["run", "plan.toml"], &env);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        text(&out).contains("lookup table \"registry\".\"devices\"")
            && text(&out).contains("does not exist"),
        "{}",
        text(&out)
    );
    assert_eq!(sql("SELECT count(*) FROM points").trim(), "0");

    sql("CREATE SCHEMA registry; CREATE TABLE registry.devices (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), name text); \
         INSERT INTO registry.devices VALUES ('6f1c1a5e-0000-4000-8000-000000000007', 'plant2.tank.7')");
    let out = run_tsmigrate(d, &["run", "plan.toml"], &env);
    assert_exit(&out, 0);
    assert_eq!(
        sql("SELECT string_agg(device_id || ' ' || measurement, ',' ORDER BY \"time\", measurement) FROM points").trim(),
        "6f1c1a5e-0000-4000-8000-000000000007 count,6f1c1a5e-0000-4000-8000-000000000007 status,\
         6f1c1a5e-0000-4000-8000-000000000007 temperature,6f1c1a5e-0000-4000-8000-000000000007 count,\
         6f1c1a5e-0000-4000-8000-000000000007 status"
    );
    let rejects = std::fs::read_to_string(d.join("points.rejects.csv")).unwrap_or_default();
    assert!(
        rejects.contains("\"\"plant2.tank8\"\" is not in registry.devices.name"),
        "{rejects}"
    );
    assert_eq!(sql("SELECT count(*) FROM registry.devices").trim(), "1");
    let out = run_tsmigrate(d, &["verify", "plan.toml"], &env);
    assert_exit(&out, 0);
    // A point moved to another device is a difference.
    sql("INSERT INTO registry.devices (name) VALUES ('other'); \
         UPDATE points SET device_id = (SELECT id FROM registry.devices WHERE name = 'other') WHERE measurement = 'count'");
    let out = run_tsmigrate(d, &["verify", "plan.toml"], &env);
    assert_exit(&out, 4);

    // A SQLite target has no lookup tables.
    let sqlite_plan = plan(true).replace(
        "kind = \"postgres\"\nurl = \"${TARGET_URL}\"",
        "kind = \"sqlite\"\npath = \"t.db\"",
    );
    write(d, "sqlite.toml", &sqlite_plan);
    let out = run_tsmigrate(d, &["run", "sqlite.toml"], &env);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        text(&out).contains("cannot look values up"),
        "{}",
        text(&out)
    );
}

/// Filters on an export: `since`/`until` (times), `devices` (names after strip_prefix) and
/// `keys` (measurements) select exactly their points; a line that cannot be read in the
/// window is still a reject.
#[test]
fn filters_select_exactly_their_points() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let d = dir.path();
    write(d, "by_device.csv", BY_DEVICE);
    write(
        d,
        "plan.toml",
        "[source]\nkind = \"iotdb\"\npath = \"by_device.csv\"\nstrip_prefix = \"root.factory.\"\ntime_unit = \"ms\"\n\
         [target]\nkind = \"sqlite\"\npath = \"points.db\"\n\
         [run]\nmax_rejects = 10\n\
         [[streams]]\nname = \"points\"\ncreate = true\n\
         filter = { since = \"2024-03-01T12:00:00.001Z\", until = \"2024-03-01T12:00:03Z\", devices = [\"plant2.tank.7\", \"plant2.tank8\"], keys = [\"status\", \"count\"] }\n",
    );
    let out = run_tsmigrate(d, &["run", "plan.toml"], &[]);
    assert_exit(&out, 0);
    let got = sqlite(
        &d.join("points.db"),
        "SELECT device, measurement, time, quote(int_value), quote(text_value), line FROM points ORDER BY line, measurement",
    );
    assert_eq!(
        got.lines().collect::<Vec<_>>(),
        [
            "plant2.tank.7|count|2024-03-01T12:00:01.000Z|12|NULL|3",
            "plant2.tank.7|status|2024-03-01T12:00:01.000Z|NULL|'ALARM: level, high'|3",
        ],
        "\n{got}"
    );
    let rejects = std::fs::read_to_string(d.join("points.rejects.csv")).unwrap_or_default();
    assert!(
        rejects.contains("by_device.csv, line 5: the Device field is empty"),
        "{rejects}"
    );
    let out = run_tsmigrate(d, &["verify", "plan.toml"], &[]);
    assert_exit(&out, 0);
}
