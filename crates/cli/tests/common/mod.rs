//! Shared helpers of the end-to-end tests: a throwaway cluster with a ThingsBoard database and
//! an empty target database, running the real `tsmigrate` binary, comparing query results.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tsmigrate_testkit::thingsboard::{create_thingsboard, Dictionary, TbFixture, TbSpec};
use tsmigrate_testkit::PgCluster;

/// A cluster holding a ThingsBoard database `tb` and an empty target database `iiot`.
pub struct Env {
    pub cluster: PgCluster,
    pub tb: TbFixture,
    pub dir: tempfile::TempDir,
}

pub fn setup(spec: TbSpec) -> Env {
    let cluster = PgCluster::start().unwrap_or_else(|e| panic!("starting PostgreSQL: {e}"));
    let tb = create_thingsboard(&cluster, "tb", &spec)
        .unwrap_or_else(|e| panic!("creating the fixture: {e}"));
    cluster
        .create_database("iiot")
        .unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    Env { cluster, tb, dir }
}

pub fn spec(dictionary: Dictionary) -> TbSpec {
    TbSpec {
        dictionary,
        ..TbSpec::default()
    }
}

impl Env {
    pub fn source_url(&self) -> String {
        self.cluster.url("tb")
    }

    pub fn target_url(&self) -> String {
        self.cluster.url("iiot")
    }

    /// Writes a plan into the test's directory, with `@SOURCE@`/`@TARGET@` replaced.
    pub fn plan(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        let text = text
            .replace("@SOURCE@", &self.source_url())
            .replace("@TARGET@", &self.target_url());
        std::fs::write(&p, text).unwrap_or_else(|e| panic!("{e}"));
        p
    }

    /// Runs tsmigrate in the test's directory with TB_URL / TARGET_URL set.
    pub fn tsmigrate(&self, args: &[&str]) -> Output {
        run_tsmigrate(
            self.dir.path(),
            args,
            &[
                ("TB_URL", &self.source_url()),
                ("TARGET_URL", &self.target_url()),
            ],
        )
    }

    pub fn sql(&self, db: &str, sql: &str) -> String {
        self.cluster
            .psql(db, sql)
            .unwrap_or_else(|e| panic!("{e}\nquery: {sql}"))
    }

    pub fn count(&self, db: &str, sql: &str) -> u64 {
        let out = self.sql(db, sql);
        out.trim()
            .parse()
            .unwrap_or_else(|_| panic!("not a count: {out:?} from {sql}"))
    }

    pub fn file(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default()
    }
}

pub fn run_tsmigrate(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tsmigrate"));
    cmd.args(args).current_dir(cwd);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output()
        .unwrap_or_else(|e| panic!("running tsmigrate: {e}"))
}

/// Runs a command that must succeed; its stdout.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs SQL through the `sqlite3` shell on `db`; its output.
pub fn sqlite(db: &Path, sql: &str) -> String {
    run(Command::new("sqlite3").arg(db).arg(sql))
}

pub fn text(o: &Output) -> String {
    format!(
        "exit: {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

pub fn assert_exit(o: &Output, code: i32) {
    assert_eq!(o.status.code(), Some(code), "{}", text(o));
}

/// Asserts two query outputs are equal, showing the first differing line.
pub fn assert_same_rows(what: &str, expected: &str, actual: &str) {
    if expected != actual {
        let (e, a): (Vec<_>, Vec<_>) = (expected.lines().collect(), actual.lines().collect());
        let first = e
            .iter()
            .zip(&a)
            .position(|(x, y)| x != y)
            .unwrap_or(e.len().min(a.len()));
        let clip = |s: Option<&&str>| {
            s.map(|s| s.chars().take(300).collect::<String>())
                .unwrap_or_default()
        };
        panic!(
            "{what}: target differs from source ({} expected lines, {} actual); first difference at line {first}:\n expected: {}\n   actual: {}",
            e.len(),
            a.len(),
            clip(e.get(first)),
            clip(a.get(first))
        );
    }
}

pub fn read_json(path: &Path) -> serde_json::Value {
    let t = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&t).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn example_plan() -> String {
    format!(
        "{}/../../examples/thingsboard-to-postgres.toml",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// The example plan's telemetry mapping written in SQL over the source (device telemetry,
/// keys renamed as the example does), ordered like [`TARGET_TELEMETRY`].
pub fn expected_telemetry(dict: &str) -> String {
    format!(
        "SELECT t.entity_id, timestamptz 'epoch' + t.ts * interval '1 millisecond',
                COALESCE(r.new, d.key),
                COALESCE(t.dbl_v, CASE WHEN t.long_v BETWEEN -9007199254740992 AND 9007199254740992 THEN t.long_v::float8 END, t.bool_v::int::float8),
                COALESCE(t.str_v, t.json_v::text, CASE WHEN t.long_v NOT BETWEEN -9007199254740992 AND 9007199254740992 THEN t.long_v::text END),
                '{{\"migrated_from\":\"thingsboard\"}}'::jsonb
         FROM ts_kv t JOIN {dict} d ON d.key_id = t.key
         LEFT JOIN (VALUES ('86','pump_pressure_bar'),('87','pump_flow_lpm'),('146','tank_level_pct'),
                           ('147','tank_temperature_c'),('148','inlet_valve_open'),('149','outlet_valve_open'),
                           ('150','battery_v'),('151','signal_rssi')) r(old, new) ON r.old = d.key
         WHERE t.entity_id IN (SELECT id FROM device)
         ORDER BY 1, 3, 2"
    )
}

pub const TARGET_TELEMETRY: &str =
    "SELECT device_id, \"timestamp\", key, value, text_value, metadata FROM telemetry ORDER BY 1, 3, 2";
