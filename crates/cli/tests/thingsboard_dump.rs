//! ThingsBoard read from its pg_dump backup (`dump = "…"`), end to end: a generated
//! ThingsBoard database (monthly ts_kv partitions, the default partition, nasty values) is
//! dumped by the real pg_dump in the custom, directory and plain formats; migrating each dump
//! with the example plan must give the target the source's rows, row for row — the same
//! comparison the live-database tests make — and filters must select the same rows.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use tsmigrate_testkit::thingsboard::{Dictionary, TbSpec};

/// The example plan with its live source replaced by `dump`.
fn dump_plan(env: &Env, name: &str, dump: &Path) -> PathBuf {
    let text = std::fs::read_to_string(example_plan()).unwrap_or_else(|e| panic!("{e}"));
    assert!(text.contains("url = \"${TB_URL}\""));
    let text = text.replace(
        "url = \"${TB_URL}\"",
        &format!("dump = \"{}\"", dump.display()),
    );
    let p = env.dir.path().join(name);
    std::fs::write(&p, text).unwrap_or_else(|e| panic!("{e}"));
    p
}

/// Runs `plan` into a new database `db`; the run's output.
fn run_into(env: &Env, plan: &Path, db: &str, extra: &[&str]) -> std::process::Output {
    env.cluster
        .create_database(db)
        .unwrap_or_else(|e| panic!("{e}"));
    let target = env.cluster.url(db);
    let mut args = vec!["run", plan.to_str().unwrap_or("")];
    args.extend_from_slice(extra);
    run_tsmigrate(
        env.dir.path(),
        &args,
        &[("TARGET_URL", &target), ("TB_URL", &env.source_url())],
    )
}

#[test]
fn a_backup_in_every_format_migrates_like_the_live_database() {
    let env = setup(TbSpec {
        dictionary: Dictionary::KeyDictionary,
        ..TbSpec::default()
    });
    let dict = env.tb.dictionary_table;
    let expected = env.sql("tb", &expected_telemetry(dict));
    assert!(expected.len() > 100_000, "fixture too small");
    let d = env.dir.path();
    let bin = env.cluster.bin("pg_dump").display().to_string();
    let url = env.source_url();
    let file = |n: &str| d.join(n);
    // (label, dump, the shell command that writes it with the real pg_dump)
    let dumps = [
        (
            "custom",
            file("tb.dump"),
            format!("'{bin}' -Fc -d '{url}' -f '{}'", file("tb.dump").display()),
        ),
        // Written to a pipe: its TOC has no data offsets.
        (
            "custom_pipe",
            file("tb_pipe.dump"),
            format!(
                "'{bin}' -Fc -d '{url}' | cat > '{}'",
                file("tb_pipe.dump").display()
            ),
        ),
        (
            "directory",
            file("tb_dir"),
            format!("'{bin}' -Fd -d '{url}' -f '{}'", file("tb_dir").display()),
        ),
        (
            "plain_gz",
            file("tb.sql.gz"),
            format!(
                "'{bin}' -Fp -d '{url}' | gzip > '{}'",
                file("tb.sql.gz").display()
            ),
        ),
    ];
    for (label, path, command) in &dumps {
        run(Command::new("sh").arg("-c").arg(command));
        let plan = dump_plan(&env, &format!("{label}.toml"), path);
        let db = format!("from_{label}");
        let out = run_into(&env, &plan, &db, &["--max-rejects", "10"]);
        assert_exit(&out, 0);
        let actual = env.sql(&db, TARGET_TELEMETRY);
        assert_same_rows(
            &format!("telemetry from the {label} backup"),
            &expected,
            &actual,
        );
        let devices = "SELECT id, name, type, area, metadata, tenant_id FROM devices ORDER BY id";
        let live_devices = env.sql(
            "tb",
            "SELECT id, name, type, label, additional_info::jsonb, tenant_id FROM device \
             WHERE additional_info IS NULL OR additional_info NOT LIKE '{\"broken%' ORDER BY id",
        );
        assert_same_rows(
            &format!("devices from the {label} backup"),
            &live_devices,
            &env.sql(&db, devices),
        );
    }

    // verify reads the backup and compares it with the target, row by row.
    let plan = d.join("custom.toml");
    let target = env.cluster.url("from_custom");
    let out = run_tsmigrate(
        d,
        &["verify", plan.to_str().unwrap_or("")],
        &[("TARGET_URL", &target)],
    );
    assert_exit(&out, 0);

    // Filters select the same rows from the backup as from the database.
    let (tank1, tank3) = (&env.tb.devices[0].1, &env.tb.devices[2].1);
    let filtered = format!(
        r#"
[source]
kind = "thingsboard"
SOURCE

[target]
kind = "postgres"
url = "${{TARGET_URL}}"

[[streams]]
name = "telemetry"
create = true
filter = {{ devices = ["{tank1}", "{tank3}"], keys = ["temperature", "146"], since = "2025-08-20T00:00:00Z", until = "2025-10-10T00:00:00Z" }}
"#
    );
    let live = d.join("filtered_live.toml");
    std::fs::write(&live, filtered.replace("SOURCE", "url = \"${TB_URL}\""))
        .unwrap_or_else(|e| panic!("{e}"));
    let from_dump = d.join("filtered_dump.toml");
    std::fs::write(
        &from_dump,
        filtered.replace("SOURCE", &format!("dump = \"{}\"", dumps[0].1.display())),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_exit(&run_into(&env, &live, "filtered_live", &[]), 0);
    assert_exit(&run_into(&env, &from_dump, "filtered_dump", &[]), 0);
    let q = "SELECT * FROM telemetry ORDER BY entity_id, key, ts";
    let want = env.sql("filtered_live", q);
    assert!(
        want.lines().count() > 100,
        "the filter keeps rows: {}",
        want.lines().count()
    );
    assert_same_rows("filtered telemetry", &want, &env.sql("filtered_dump", q));
}

#[test]
fn the_quickstart_migrates_the_shipped_backup_into_sqlite_and_verifies() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    // The plan's paths are relative to where it runs: the repository root. Run it in a copy
    // of the layout so the test writes nothing into the repository.
    let examples = dir.path().join("examples");
    std::fs::create_dir_all(examples.join("data")).unwrap_or_else(|e| panic!("{e}"));
    for f in ["examples/quickstart.toml", "examples/data/thingsboard.dump"] {
        std::fs::copy(root.join(f), dir.path().join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
    }
    let out = run_tsmigrate(dir.path(), &["run", "examples/quickstart.toml"], &[]);
    assert_exit(&out, 0);
    let db = dir.path().join("quickstart.db");
    let count = sqlite(&db, "SELECT count(*) FROM telemetry");
    assert!(
        count.trim().parse::<u64>().unwrap_or(0) > 300_000,
        "{count}"
    );
    // The values careless migrations lose arrived: 2^53+1 as text, NaN, a tab and a newline.
    let nasty = sqlite(
        &db,
        "SELECT count(*) FROM telemetry WHERE text_value = '9007199254740993' \
         OR text_value = 'tab' || char(9) || 'here' || char(10) || 'new line' OR value = 'NaN'",
    );
    assert_eq!(nasty.trim(), "3", "{nasty}");
    let rejects =
        std::fs::read_to_string(dir.path().join("devices.rejects.csv")).unwrap_or_default();
    assert!(rejects.contains("is not valid JSON"), "{rejects}");
    let out = run_tsmigrate(dir.path(), &["verify", "examples/quickstart.toml"], &[]);
    assert_exit(&out, 0);
    // Run again: everything is in the ledger, nothing is written twice.
    let out = run_tsmigrate(dir.path(), &["run", "examples/quickstart.toml"], &[]);
    assert_exit(&out, 0);
    assert_eq!(sqlite(&db, "SELECT count(*) FROM telemetry"), count);
}

#[test]
fn sync_from_a_newer_backup_copies_the_new_and_late_rows_once() {
    let env = setup(TbSpec::default());
    let d = env.dir.path();
    let current = d.join("current.dump");
    let bin = env.cluster.bin("pg_dump");
    let dump_now = || {
        run(Command::new(&bin)
            .args(["-Fc", "-f"])
            .arg(&current)
            .arg("-d")
            .arg(env.source_url()));
    };
    dump_now();
    let plan = dump_plan(&env, "nightly.toml", &current);
    let target = env.target_url();
    let tsm = |args: &[&str]| {
        let mut a = args.to_vec();
        a.insert(1, plan.to_str().unwrap_or(""));
        run_tsmigrate(d, &a, &[("TARGET_URL", &target)])
    };
    assert_exit(&tsm(&["run", "--max-rejects", "10"]), 0);
    let dict = env.tb.dictionary_table;
    let before = env.count("iiot", "SELECT count(*) FROM telemetry");

    // The next night's backup: new rows, a late row inside the sync overlap, a new key.
    let (tank1, tank4) = (&env.tb.devices[0].0, &env.tb.devices[3].0);
    env.sql(
        "tb",
        &format!(
            "INSERT INTO ts_kv (entity_id, key, ts, dbl_v)
               SELECT '{tank1}', 1, max(ts) + g * 1000, g FROM ts_kv, generate_series(1, 5) g
               WHERE entity_id = '{tank1}' AND key = 1 GROUP BY g;
             INSERT INTO ts_kv (entity_id, key, ts, dbl_v)
               SELECT entity_id, key, max(ts) - 60000, -7.25 FROM ts_kv
               WHERE entity_id = '{tank4}' AND key = 2 GROUP BY entity_id, key;
             INSERT INTO {dict} (key, key_id) VALUES ('tsm_new_key', 100);
             INSERT INTO ts_kv (entity_id, key, ts, dbl_v)
               SELECT '{tank1}', 100, max(ts), 1.5 FROM ts_kv WHERE entity_id = '{tank1}';"
        ),
    );
    dump_now();
    let out = tsm(&["sync", "--max-rejects", "10"]);
    assert_exit(&out, 0);
    let after = env.count("iiot", "SELECT count(*) FROM telemetry");
    assert_eq!(
        after,
        before + 7,
        "5 new, 1 late and 1 new-key row\n{}",
        text(&out)
    );
    // Each series was read from its watermark minus the overlap, not from its beginning.
    // (A floor is per entity, the lowest of its series, so some rows are re-read.)
    let report = text(&out);
    let present: u64 = report
        .lines()
        .find(|l| l.contains("telemetry: ") && l.contains("new row(s) copied, "))
        .and_then(|l| l.split("new row(s) copied, ").nth(1))
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.replace(',', "").parse().ok())
        .unwrap_or_else(|| panic!("no sync line: {report}"));
    assert!(
        present < before / 2,
        "{present} rows re-read of {before}: {report}"
    );
    assert_same_rows(
        "telemetry after a sync from the newer backup",
        &env.sql("tb", &expected_telemetry(dict)),
        &env.sql("iiot", TARGET_TELEMETRY),
    );
    // Again with the same backup: nothing new, nothing doubled.
    assert_exit(&tsm(&["sync", "--max-rejects", "10"]), 0);
    assert_eq!(env.count("iiot", "SELECT count(*) FROM telemetry"), after);
}
