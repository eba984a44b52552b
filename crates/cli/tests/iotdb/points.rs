//! Points of an IoTDB export in one canonical form, from the two independent readings the
//! differential tests compare: tsmigrate's (a run into a CSV target, read back) and
//! `import_reader.py`'s (IoTDB's import tool re-implemented; JSON lines).

use std::collections::BTreeSet;
use std::path::Path;

use tsmigrate_files::csv_format::CsvFile;

/// One point: file name, line, device, measurement, time (ticks of the unit), IoTDB type,
/// value (`bool:…`, `int:…`, `double:NaN` or `double:<bits hex>`, `text:…`).
pub type Point = (String, u64, String, String, i64, String, String);

/// Both readings of one export: the points, and the `(file, line)` of every rejected line or
/// value.
#[derive(Debug, Default, PartialEq)]
pub struct Reading {
    pub points: Vec<Point>,
    pub rejected: BTreeSet<(String, u64)>,
}

/// tsmigrate's points, from the CSV files a run wrote into `dir` (columns of the `points`
/// stream), with times in `per_second` ticks; the rejects from the run's rejects file.
pub fn tsmigrate_reading(dir: &Path, rejects: &Path, per_second: i64) -> Reading {
    let mut points = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "csv"))
        .collect();
    files.sort();
    for path in files {
        let mut csv = CsvFile::open(&path).unwrap_or_else(|e| panic!("{e}"));
        let col = |name: &str| {
            csv.header
                .iter()
                .position(|h| h == name)
                .unwrap_or_else(|| panic!("no column {name} in {:?}", csv.header))
        };
        let at = [
            "file",
            "line",
            "device",
            "measurement",
            "time",
            "data_type",
            "bool_value",
            "int_value",
            "double_value",
            "text_value",
        ]
        .map(col);
        while let Some(r) = csv.next_record().unwrap_or_else(|e| panic!("{e}")) {
            let cell = |i: usize| {
                r.cells
                    .get(at[i])
                    .filter(|c| c.quoted || !c.text.is_empty())
                    .map(|c| c.text.as_str())
            };
            let text = |i: usize| cell(i).unwrap_or_default().to_string();
            let file = Path::new(&text(0))
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            points.push((
                file,
                text(1).parse().unwrap_or_else(|e| panic!("line: {e}")),
                text(2),
                text(3),
                ticks(&text(4), per_second),
                text(5),
                canonical(cell(6), cell(7), cell(8), cell(9)),
            ));
        }
    }
    points.sort();
    let rejected = std::fs::read_to_string(rejects)
        .map(|t| reject_sites(&t))
        .unwrap_or_default();
    Reading { points, rejected }
}

/// `import_reader.py`'s reading of `files` (times in `precision`: ms, us or ns).
pub fn python_reading(
    precision: &str,
    schema: Option<&Path>,
    files: &[std::path::PathBuf],
) -> Reading {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/iotdb/import_reader.py");
    let mut cmd = std::process::Command::new("python3");
    cmd.arg(script).arg(precision);
    if let Some(s) = schema {
        cmd.arg("--schema").arg(s);
    }
    let out = cmd
        .args(files)
        .output()
        .unwrap_or_else(|e| panic!("python3: {e}"));
    assert!(
        out.status.success(),
        "import_reader.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut reading = Reading::default();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        let s = |k: &str| v[k].as_str().unwrap_or_default().to_string();
        let n = |k: &str| v[k].as_i64().unwrap_or_else(|| panic!("{k} in {line}"));
        if v.get("failed").is_some() {
            reading.rejected.insert((s("file"), n("line") as u64));
            continue;
        }
        reading.points.push((
            s("file"),
            n("line") as u64,
            s("device"),
            s("measurement"),
            n("time"),
            s("type"),
            s("value"),
        ));
    }
    reading.points.sort();
    reading
}

/// A value in the canonical form `import_reader.py` writes.
fn canonical(b: Option<&str>, i: Option<&str>, d: Option<&str>, t: Option<&str>) -> String {
    match (b, i, d, t) {
        (Some(b), None, None, None) => format!("bool:{}", b == "true" || b == "t"),
        (None, Some(i), None, None) => format!("int:{i}"),
        (None, None, Some(d), None) => match d.parse::<f64>() {
            Ok(x) if x.is_nan() => "double:NaN".into(),
            Ok(x) => format!("double:{:016x}", x.to_bits()),
            Err(_) => match d {
                "Infinity" => format!("double:{:016x}", f64::INFINITY.to_bits()),
                "-Infinity" => format!("double:{:016x}", f64::NEG_INFINITY.to_bits()),
                _ => panic!("double_value {d:?}"),
            },
        },
        (None, None, None, Some(t)) => format!("text:{t}"),
        other => panic!("a point holds one value: {other:?}"),
    }
}

/// An RFC 3339 time as ticks of `per_second` since the epoch.
fn ticks(text: &str, per_second: i64) -> i64 {
    let t = chrono::DateTime::parse_from_rfc3339(text).unwrap_or_else(|e| panic!("{text}: {e}"));
    let step = 1_000_000_000 / i128::from(per_second);
    let n = i128::from(t.timestamp()) * i128::from(per_second)
        + i128::from(t.timestamp_subsec_nanos()) / step;
    i64::try_from(n).unwrap_or_else(|e| panic!("{text}: {e}"))
}

/// Every `<file>.csv, line N` a rejects file names, as (file name, N).
pub fn reject_sites(rejects: &str) -> BTreeSet<(String, u64)> {
    let mut out = BTreeSet::new();
    let mut rest = rejects;
    while let Some(at) = rest.find(".csv, line ") {
        let before = &rest[..at];
        let start = before
            .rfind(['/', '\\', '"', ' ', ','])
            .map_or(0, |p| p + 1);
        let after = &rest[at + ".csv, line ".len()..];
        let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
        if let Ok(line) = digits.parse() {
            out.insert((format!("{}.csv", &before[start..]), line));
        }
        rest = after;
    }
    out
}
