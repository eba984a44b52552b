//! Connecting the way `psql` does, end to end with the real binary against a server that asks
//! for a password (scram-sha-256): the password from `PGPASSWORD` or from a password file
//! (`PGPASSFILE`, refused when others may read it), host/port/user from the `PG*` environment
//! with an empty URL, a Unix-socket host, and a wrong password failing in one line that says
//! which end failed and where the password came from — without showing it.

mod common;

use std::path::Path;

use common::*;
use tsmigrate_testkit::PgCluster;

const RIGHT: &str = "Right-Pass-1";
const WRONG: &str = "Wrong-Pass-2";

/// A cluster where `pwuser` must give its password over TCP and the Unix socket.
fn cluster() -> PgCluster {
    let c = PgCluster::start().unwrap_or_else(|e| panic!("starting PostgreSQL: {e}"));
    c.create_database("src").unwrap_or_else(|e| panic!("{e}"));
    c.psql(
        "src",
        &format!(
            "CREATE ROLE pwuser LOGIN PASSWORD '{RIGHT}';
             CREATE TABLE readings (id bigint, v double precision);
             INSERT INTO readings SELECT g, g / 4.0 FROM generate_series(1, 100) g;
             GRANT SELECT ON readings TO pwuser;"
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let hba = c.data_dir().join("pg_hba.conf");
    let old = std::fs::read_to_string(&hba).unwrap_or_else(|e| panic!("{e}"));
    let new = format!(
        "host all pwuser 127.0.0.1/32 scram-sha-256\nlocal all pwuser scram-sha-256\n{old}"
    );
    std::fs::write(&hba, new).unwrap_or_else(|e| panic!("{e}"));
    c.psql("src", "SELECT pg_reload_conf()")
        .unwrap_or_else(|e| panic!("{e}"));
    c
}

fn plan(dir: &Path, source_url: &str) -> String {
    let target = dir.join("out.db");
    let _ = std::fs::remove_file(&target);
    let p = dir.join("plan.toml");
    std::fs::write(
        &p,
        format!(
            "[source]\nkind = \"postgres\"\nurl = \"{source_url}\"\n\n[target]\nkind = \"sqlite\"\npath = \"{}\"\n\n\
             [[streams]]\nname = \"readings\"\ncreate = true\n",
            target.display()
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    p.display().to_string()
}

fn rows(dir: &Path) -> String {
    sqlite(&dir.join("out.db"), "SELECT count(*), sum(v) FROM readings")
}

#[test]
fn passwords_hosts_and_users_come_from_where_libpq_takes_them() {
    let c = cluster();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let d = dir.path();
    let port = c.port().to_string();
    let tcp = format!("postgres://pwuser@127.0.0.1:{port}/src");

    // PGPASSWORD.
    let p = plan(d, &tcp);
    let out = run_tsmigrate(d, &["run", &p], &[("PGPASSWORD", RIGHT)]);
    assert_exit(&out, 0);
    assert_eq!(rows(d).trim(), "100|1262.5");

    // A wrong one: one line naming the end, the cause and where the password came from.
    let out = run_tsmigrate(d, &["run", &plan(d, &tcp)], &[("PGPASSWORD", WRONG)]);
    assert_exit(&out, 1);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    let line = err
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_else(|| panic!("no error line: {err}"));
    assert!(line.contains("cannot connect to the source"), "{line}");
    assert!(line.contains("password authentication failed"), "{line}");
    assert!(line.contains("the password came from PGPASSWORD"), "{line}");
    assert!(!text(&out).contains(WRONG), "the password is shown: {err}");

    // A password file, matched by host, port, database and user.
    let pass = d.join("pgpass");
    std::fs::write(
        &pass,
        format!("127.0.0.1:{port}:other:pwuser:nope\n127.0.0.1:{port}:src:pwuser:{RIGHT}\n"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let chmod = |mode: &str| {
        run(std::process::Command::new("chmod").arg(mode).arg(&pass));
    };
    chmod("600");
    let passfile = pass.display().to_string();
    let out = run_tsmigrate(d, &["run", &plan(d, &tcp)], &[("PGPASSFILE", &passfile)]);
    assert_exit(&out, 0);
    // …which is ignored, with a note, when others may read it.
    chmod("644");
    let out = run_tsmigrate(d, &["run", &plan(d, &tcp)], &[("PGPASSFILE", &passfile)]);
    assert_exit(&out, 1);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("chmod 0600"), "{err}");
    assert!(!err.contains(RIGHT), "{err}");

    // An empty URL: host, port, user, database and password from the environment.
    let out = run_tsmigrate(
        d,
        &["run", &plan(d, "postgresql://")],
        &[
            ("PGHOST", "127.0.0.1"),
            ("PGPORT", &port),
            ("PGUSER", "pwuser"),
            ("PGDATABASE", "src"),
            ("PGPASSWORD", RIGHT),
        ],
    );
    assert_exit(&out, 0);
    assert_eq!(rows(d).trim(), "100|1262.5");

    // A Unix-socket host, as a keyword string.
    let socket = c.dir().join("socket").display().to_string();
    let keyword = format!("host={socket} port={port} user=pwuser dbname=src");
    let out = run_tsmigrate(d, &["run", &plan(d, &keyword)], &[("PGPASSWORD", RIGHT)]);
    assert_exit(&out, 0);
    assert_eq!(rows(d).trim(), "100|1262.5");
}
